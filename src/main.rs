//! The `clustimage` binary: logging, Ctrl-C, and a hand-off to [`clustimage::cli`].

use std::process::ExitCode;

use clap::Parser;
use clustimage::cancel::CancelToken;
use clustimage::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let cancel = CancelToken::new();
    install_interrupt_handler(cancel.clone());
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

fn init_logging(verbosity: u8) {
    let default = match verbosity {
        0 => "clustimage=warn",
        1 => "clustimage=debug",
        _ => "clustimage=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
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
