//! `clustimage restore`: put quarantined files back where they came from, without a daemon.
//!
//! Opening the quarantine first settles any operation a crash interrupted. Then every file
//! still quarantined (or each that came from under `--path`) goes back to its original
//! path. A file already at that path is never replaced: it is a conflict, as is a
//! quarantined file whose bytes changed; conflicts are listed, warned about on standard
//! error, and left in the quarantine, and they do not make the command fail. A running
//! daemon simply sees the files reappear in the folders it watches.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use super::table;
use crate::dedup::quarantine::{Entry, Quarantine, RestoreReport, MANIFEST_NAME};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The quarantine folder (the one holding manifest.jsonl).
    #[arg(long, value_name = "DIR")]
    pub quarantine: PathBuf,
    /// Restore only the files that came from under this folder (or this one file).
    #[arg(long, value_name = "PREFIX")]
    pub path: Option<PathBuf>,
    /// Print what would be restored and what conflicts, and move nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct RestoreOutput {
    dry_run: bool,
    restored: Vec<RestoredFile>,
    conflicts: Vec<ConflictFile>,
    failures: Vec<FailedFile>,
}

#[derive(Debug, Serialize)]
struct RestoredFile {
    /// The file in the quarantine.
    from: PathBuf,
    /// The path it came from, where it is now.
    to: PathBuf,
}

#[derive(Debug, Serialize)]
struct ConflictFile {
    /// The path the file came from.
    path: PathBuf,
    reason: String,
}

#[derive(Debug, Serialize)]
struct FailedFile {
    path: PathBuf,
    error: String,
}

pub fn run(args: &RestoreArgs) -> Result<()> {
    if !args.quarantine.join(MANIFEST_NAME).is_file() {
        bail!("{} holds no quarantine: it has no {MANIFEST_NAME}", args.quarantine.display());
    }
    let quarantine = Quarantine::open(&args.quarantine)?;
    let prefix = match &args.path {
        Some(path) => Some(
            std::path::absolute(path)
                .with_context(|| format!("--path: cannot make {} absolute", path.display()))?,
        ),
        None => None,
    };
    let chosen =
        |entry: &Entry| prefix.as_ref().is_none_or(|prefix| entry.source.starts_with(prefix));
    let report =
        if args.dry_run { quarantine.plan_restore(chosen)? } else { quarantine.restore(chosen)? };

    for conflict in &report.conflicts {
        let path = conflict.path.display();
        tracing::warn!(path = %path, reason = %conflict.reason, "not restored");
    }
    for failure in &report.failures {
        tracing::error!(path = %failure.path.display(), cause = %failure.error, "cannot restore");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&output(&report, args.dry_run))?);
    } else {
        print!("{}", summary(&report, args.dry_run));
    }
    if !report.failures.is_empty() {
        bail!("{} of the files could not be restored", report.failures.len());
    }
    Ok(())
}

fn output(report: &RestoreReport, dry_run: bool) -> RestoreOutput {
    RestoreOutput {
        dry_run,
        restored: report
            .restored
            .iter()
            .map(|file| RestoredFile { from: file.from.clone(), to: file.to.clone() })
            .collect(),
        conflicts: report
            .conflicts
            .iter()
            .map(|file| ConflictFile { path: file.path.clone(), reason: file.reason.clone() })
            .collect(),
        failures: report
            .failures
            .iter()
            .map(|file| FailedFile { path: file.path.clone(), error: file.error.clone() })
            .collect(),
    }
}

fn summary(report: &RestoreReport, dry_run: bool) -> String {
    let verb = if dry_run { "would restore" } else { "restored" };
    let mut text = format!(
        "{verb} {}; {}, {} failed{}\n",
        count(report.restored.len(), "file"),
        count(report.conflicts.len(), "conflict"),
        report.failures.len(),
        if dry_run { " (dry run: nothing was moved)" } else { "" },
    );
    let mut rows = Vec::new();
    for file in &report.restored {
        let from = format!("from {}", file.from.display());
        rows.push(vec![verb.to_string(), file.to.display().to_string(), from]);
    }
    for file in &report.conflicts {
        rows.push(vec!["conflict".into(), file.path.display().to_string(), file.reason.clone()]);
    }
    for file in &report.failures {
        rows.push(vec!["failed".into(), file.path.display().to_string(), file.error.clone()]);
    }
    if !rows.is_empty() {
        text += "\n";
        text += &table::render(&["outcome", "path", "detail"], &rows);
    }
    text
}

/// `1 file`, `2 files`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
