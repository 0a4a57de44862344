//! The `clustimage` binary: logging, Ctrl-C, and a hand-off to [`clustimage::cli`].

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use clustimage::cancel::CancelToken;
use clustimage::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon reports each step of its life; batch commands speak only when asked.
    let serving = matches!(cli.command, cli::Command::Serve(_));
    init_logging(cli.verbose, if serving { "info" } else { "warn" });
    let cancel = CancelToken::new();
    if !serving {
        // The daemon handles SIGINT and SIGTERM itself, to shut down cleanly.
        install_interrupt_handler(cancel.clone());
    }
    match cli::run(cli, &cancel) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if cancel.is_cancelled() => {
            eprintln!("clustimage: interrupted");
            ExitCode::from(130)
        }
        Err(error) => {
            eprintln!("clustimage: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbosity: u8, quiet_level: &str) {
    let level = match verbosity {
        0 => quiet_level,
        1 => "debug",
        _ => "trace",
    };
    let default = format!("clustimage={level}");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        // Reporting a failed log write goes to stderr too, and panics when stderr is a
        // closed pipe: a daemon whose log reader went away must keep serving.
        .log_internal_errors(false)
        .init();
}

/// The first Ctrl-C asks the work to stop; a second one ends the process at once.
fn install_interrupt_handler(cancel: CancelToken) {
    let result = ctrlc::set_handler(move || {
        if cancel.is_cancelled() {
            std::process::exit(130);
        }
        cancel.cancel();
    });
    if let Err(error) = result {
        tracing::warn!(cause = %error, "cannot install the Ctrl-C handler");
    }
}
