//! The command line: parsing, the batch commands, and what they print.
//!
//! Tables go to standard output, logs and progress bars to standard error, so that
//! `--out -` or `--json` output can be piped.

pub mod args;
pub mod client;
mod cluster;
pub mod config_file;
pub mod dups;
mod find;
mod progress;
pub mod restore;
pub mod serve;
mod table;

use anyhow::Result;

pub use args::{Cli, Command};

use crate::cancel::CancelToken;

/// Runs one parsed command line.
pub fn run(cli: Cli, cancel: &CancelToken) -> Result<()> {
    use client::ClientCommand;
    let connection = &cli.connection;
    match &cli.command {
        Command::Cluster(args) => match daemon_cluster_id(args) {
            Some(id) => client::run(connection, ClientCommand::Cluster { id, json: args.json }),
            None => cluster::run(args, cancel),
        },
        Command::Find(args) if !args.library.is_empty() => find::run(args, cancel),
        Command::Find(args) if args.report.is_some() => {
            anyhow::bail!("--report needs --in DIR: a report of the daemon's find is not built yet")
        }
        Command::Find(args) => client::run(connection, ClientCommand::Find(find::request(args))),
        Command::Dups(args) if args.inputs.is_empty() => {
            let flags = args.options.folder_only_flags();
            if !flags.is_empty() {
                anyhow::bail!(
                    "{} apply to a run over folders: the daemon matches with the thresholds \
                     of its own [dups] table (give DIR to run without it)",
                    flags.join(", ")
                );
            }
            let kind = dups::parse_kind(args.options.kind.as_deref())?;
            client::run(connection, ClientCommand::Dups { kind, json: args.json })
        }
        Command::Dups(args) => dups::run(args, cancel),
        Command::NotDuplicate(args) => client::run(connection, ClientCommand::NotDuplicate(args)),
        Command::Restore(args) => restore::run(args),
        Command::Serve(args) => serve::run(args, connection),
        Command::Status(output) => client::run(connection, ClientCommand::Status(*output)),
        Command::Clusters(output) => client::run(connection, ClientCommand::Clusters(*output)),
        Command::Unique(output) => client::run(connection, ClientCommand::Unique(*output)),
        Command::Image(args) => client::run(connection, ClientCommand::Image(args)),
        Command::Ingest(args) => client::run(connection, ClientCommand::Ingest(args)),
        Command::Refit(args) => client::run(connection, ClientCommand::Refit(args)),
        Command::Events(args) => client::run(connection, ClientCommand::Events(args)),
        Command::Report(args) => client::run(connection, ClientCommand::Report(args)),
    }
}

/// `clustimage cluster 3` asks the daemon for its cluster 3, unless `3` is a folder here.
fn daemon_cluster_id(args: &args::ClusterArgs) -> Option<i32> {
    match (args.inputs.as_slice(), &args.array) {
        ([only], None) if !only.exists() => only.to_str()?.parse().ok(),
        _ => None,
    }
}
