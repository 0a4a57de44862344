//! The command line: parsing, the batch commands, and what they print.
//!
//! Tables go to standard output, logs and progress bars to standard error, so that
//! `--out -` or `--json` output can be piped.

pub mod args;
mod cluster;
pub mod config_file;
mod find;
mod progress;
pub mod serve;
mod table;

use anyhow::Result;

pub use args::{Cli, Command};

use crate::cancel::CancelToken;

/// Runs one parsed command line.
pub fn run(cli: Cli, cancel: &CancelToken) -> Result<()> {
    match cli.command {
        Command::Cluster(args) => cluster::run(&args, cancel),
        Command::Find(args) => find::run(&args, cancel),
        Command::Serve(args) => serve::run(&args),
    }
}
