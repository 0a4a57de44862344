//! The quarantine: duplicate files set aside, never deleted, and put back on request.
//!
//! A quarantine is a folder. A file moved into it keeps its path below the root it came
//! from, as `FOLDER/<root's name>/<path under the root>`; a name already taken gets a
//! suffix (`name (1).jpg`), so nothing there is overwritten. `FOLDER/manifest.jsonl`
//! records every operation as JSON lines, each appended and synced to disk: first a
//! `started` record holding everything needed to finish or undo the operation, then, once
//! the file is in place, a `done` record.
//!
//! Within one filesystem a move is a rename. Across filesystems the file is copied to
//! `TARGET.ID.partial`, synced, checked against the expected blake3 hash, renamed into
//! place, and the target's folder synced; only then is the source removed. So a crash at
//! any point leaves the file whole in at least one of the two places, and
//! [`Quarantine::open`] settles every operation left `started` from what it finds on disk
//! (see [`State`]). [`Quarantine::restore`] is the same move the other way; it never
//! replaces a file at the original path and refuses a quarantined file whose bytes changed.
//! [`Quarantine::hardlink`] replaces an exact duplicate by a hard link to the copy kept:
//! the one operation here that replaces a file, and only by the same bytes.
//!
//! This module knows files, not the daemon: the caller decides what is a duplicate and
//! passes the content hash it checked. Paths must be valid UTF-8 to be recorded; other
//! paths are refused before anything moves. Two gaps remain:
//! - FIXME(locking): operations of one process run one at a time, but two processes that
//!   open one quarantine at once (a daemon and `clustimage restore`) are not kept apart.
//!   The steps are written so that the other's recovery loses no file (a `done` record is
//!   final, a source already removed is not an error), but one may record a conflict the
//!   other then resolves; an advisory lock on the manifest would close this.
//! - FIXME(no-replace): the check that a target is free and the rename are two steps, so a
//!   file created at that very path in between would be replaced; `renameat2` with
//!   `RENAME_NOREPLACE` would make it one.

use std::collections::HashMap;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, Serializer};

/// The manifest's file name inside the quarantine folder.
pub const MANIFEST_NAME: &str = "manifest.jsonl";

/// The raw OS error of a rename across filesystems (`EXDEV`), for kernels or libraries
/// whose error does not map to [`ErrorKind::CrossesDevices`].
const EXDEV: i32 = 18;

/// A quarantine folder and its manifest, ready for moves, restores and hard links.
///
/// Operations of one `Quarantine` run one at a time (they hold the manifest's lock), so it
/// can be shared between threads. Every method blocks on file I/O.
#[derive(Debug)]
pub struct Quarantine {
    folder: PathBuf,
    manifest_path: PathBuf,
    /// The manifest, open for appending. Its lock also keeps two operations from choosing
    /// the same target name.
    manifest: Mutex<File>,
    /// The operations that opening found unfinished, as it settled them.
    recovered: Vec<Entry>,
    /// How files are carried; tests force the copy a move across filesystems takes.
    transfer: Transfer,
    /// Test only: the step after which operations stop, as a crash would stop them.
    #[cfg(test)]
    stop_after: Option<Step>,
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// A file moved from a library into the quarantine.
    Move,
    /// A quarantined file put back at the path it came from.
    Restore,
    /// An exact duplicate replaced by a hard link to the copy kept.
    Hardlink,
}

/// Where an operation stands, and so where its file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Begun: seen while the operation runs, or when opening could not settle it.
    Started,
    /// Finished: the file is at the target. Final: no later record changes it.
    Done,
    /// Given up with nothing changed: the file is still at the source.
    Abandoned,
    /// Left for a person: both files exist with different bytes, or neither exists. Both
    /// are left as they are and the note says what was found.
    Conflict,
}

/// One operation of the manifest, folded to its latest state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Unique in the manifest: 16 hexadecimal digits.
    pub id: String,
    pub operation: Operation,
    /// Where the file was: the library path for a move, the quarantined file for a
    /// restore, the copy kept for a hard link.
    pub source: PathBuf,
    /// Where it goes: the quarantined file for a move, the library path for a restore, the
    /// duplicate replaced for a hard link.
    pub target: PathBuf,
    /// The blake3 hash of the file's bytes, checked before the operation.
    #[serde(serialize_with = "serialize_hex")]
    pub blake3: [u8; 32],
    /// Why, in the caller's words.
    pub reason: String,
    /// When the operation started, in seconds since the Unix epoch.
    pub unix_s: i64,
    pub state: State,
    /// What was found, for an operation settled after a crash or a failure.
    pub note: Option<String>,
    /// For a restore: the id of the move it undoes.
    pub undoes: Option<String>,
    /// For a move: the id of the finished restore that put the file back.
    pub restored_by: Option<String>,
}

/// What a restore did, file by file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    pub restored: Vec<Restored>,
    /// Files left in the quarantine, each with the reason.
    pub conflicts: Vec<RestoreConflict>,
    /// Files that an I/O error kept in the quarantine.
    pub failures: Vec<RestoreFailure>,
}

/// A file put back (or, for [`Quarantine::plan_restore`], that would be).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    /// The move undone.
    pub move_id: String,
    /// The quarantined file.
    pub from: PathBuf,
    /// The path it came from.
    pub to: PathBuf,
}

/// A file not put back, and why: a file is at its original path, or its bytes changed in
/// the quarantine, or it is gone from there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreConflict {
    pub move_id: String,
    /// The path the file came from.
    pub path: PathBuf,
    pub reason: String,
}

/// A file that could not be put back because of an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreFailure {
    pub move_id: String,
    /// The path the file came from.
    pub path: PathBuf,
    pub error: String,
}

/// Why an operation was refused or failed; each names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("{action}: {cause}")]
    Io { action: String, cause: io::Error },
    #[error("{path} is not under the root {root}")]
    OutsideRoot { path: PathBuf, root: PathBuf },
    #[error("{path} is inside the quarantine {folder}")]
    InsideQuarantine { path: PathBuf, folder: PathBuf },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path} is not valid UTF-8, which the manifest cannot record")]
    NotUtf8 { path: PathBuf },
    #[error("{path} changed since it was checked: its blake3 hash is {actual}, not {expected}")]
    Changed { path: PathBuf, expected: String, actual: String },
    #[error(
        "the copy {copy} of {original} does not have the expected bytes; the original is kept"
    )]
    BadCopy { copy: PathBuf, original: PathBuf },
    #[error("{path} already exists")]
    TargetExists { path: PathBuf },
    #[error("{keeper} and {duplicate} are on different filesystems: no hard link can join them")]
    DifferentFilesystems { keeper: PathBuf, duplicate: PathBuf },
    #[error("{keeper} and {duplicate} are already the same file")]
    AlreadyLinked { keeper: PathBuf, duplicate: PathBuf },
    #[error("{path} line {line}: {message}")]
    Manifest { path: PathBuf, line: usize, message: String },
    /// Test only: an operation stopped after a step, as a crash would stop it.
    #[cfg(test)]
    #[error("stopped after the {0} step for a test")]
    Stopped(String),
}

impl Quarantine {
    /// Opens the quarantine in `folder`, creating the folder and its manifest if missing.
    ///
    /// Every operation an earlier process left `started` is settled from the disk, logged
    /// as a warning and listed by [`Quarantine::recovered`]; one that cannot be settled (an
    /// unreadable file) stays `started` and is tried again at the next open. An incomplete
    /// last line (an append a crash cut short, whose operation never began) is dropped
    /// with a warning; any other line that does not parse is an error naming it.
    pub fn open(folder: &Path) -> Result<Quarantine, QuarantineError> {
        let folder = absolute(folder)?;
        create_folders(&folder)?;
        let manifest_path = folder.join(MANIFEST_NAME);
        let existed = exists(&manifest_path)?;
        let manifest = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&manifest_path)
            .map_err(io_error(format!("cannot open {}", manifest_path.display())))?;
        if !existed {
            sync_folder(&folder)?;
        }
        drop_incomplete_line(&manifest, &manifest_path)?;
        let mut quarantine = Quarantine {
            folder,
            manifest_path,
            manifest: Mutex::new(manifest),
            recovered: Vec::new(),
            transfer: Transfer::Rename,
            #[cfg(test)]
            stop_after: None,
        };
        quarantine.recovered = quarantine.recover()?;
        Ok(quarantine)
    }

    /// The quarantine folder, absolute.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The operations that [`Quarantine::open`] found unfinished, as it settled them.
    pub fn recovered(&self) -> &[Entry] {
        &self.recovered
    }

    /// Moves `path`, a file under the folder `root`, into the quarantine, at
    /// `FOLDER/<root's name>/<path under root>` (with a suffix if that name is taken).
    ///
    /// `expected` is the blake3 hash of the bytes the caller checked: a file whose bytes
    /// differ now is refused and nothing moves. The entry returned is done.
    pub fn move_in(
        &self,
        root: &Path,
        path: &Path,
        expected: &[u8; 32],
        reason: &str,
    ) -> Result<Entry, QuarantineError> {
        let root = absolute(root)?;
        let source = absolute(path)?;
        let relative = relative_under(&root, &source)?.to_path_buf();
        if source.starts_with(&self.folder) {
            return Err(QuarantineError::InsideQuarantine {
                path: source,
                folder: self.folder.clone(),
            });
        }
        require_utf8(&source)?;
        regular_file(&source)?;
        check_content(&source, expected)?;

        let mut manifest = self.lock();
        let target = free_name(&self.folder.join(folder_name_of(&root)).join(relative))?;
        require_utf8(&target)?;
        create_folders(parent_of(&target))?;
        let entry = Entry::started(Operation::Move, source, target, *expected, reason);
        self.append(&mut manifest, &Record::intent(&entry))?;
        self.carry_or_settle(&mut manifest, &entry)?;
        let (from, to) = (entry.source.display(), entry.target.display());
        tracing::debug!(id = %entry.id, from = %from, to = %to, "quarantined");
        Ok(Entry { state: State::Done, ..entry })
    }

    /// Replaces the exact duplicate `duplicate` by a hard link to `keeper`: both must hash
    /// to `expected`, be distinct files, and lie on one filesystem.
    ///
    /// The link is made at a temporary name beside the duplicate, then renamed over it, so
    /// the duplicate's path always holds the same bytes. Such a link is not restored: the
    /// bytes are all there, and copying the file breaks the link.
    pub fn hardlink(
        &self,
        keeper: &Path,
        duplicate: &Path,
        expected: &[u8; 32],
        reason: &str,
    ) -> Result<Entry, QuarantineError> {
        let keeper = absolute(keeper)?;
        let duplicate = absolute(duplicate)?;
        require_utf8(&keeper)?;
        require_utf8(&duplicate)?;
        let keeper_metadata = regular_file(&keeper)?;
        let duplicate_metadata = regular_file(&duplicate)?;
        if keeper_metadata.dev() != duplicate_metadata.dev() {
            return Err(QuarantineError::DifferentFilesystems { keeper, duplicate });
        }
        if keeper_metadata.ino() == duplicate_metadata.ino() {
            return Err(QuarantineError::AlreadyLinked { keeper, duplicate });
        }
        check_content(&keeper, expected)?;
        check_content(&duplicate, expected)?;

        let mut manifest = self.lock();
        let entry = Entry::started(Operation::Hardlink, keeper, duplicate, *expected, reason);
        self.append(&mut manifest, &Record::intent(&entry))?;
        self.carry_or_settle(&mut manifest, &entry)?;
        Ok(Entry { state: State::Done, ..entry })
    }

    /// Every operation of the manifest, in the order they started, each in its latest
    /// state.
    pub fn entries(&self) -> Result<Vec<Entry>, QuarantineError> {
        let _manifest = self.lock();
        self.read_entries()
    }

    /// The moves whose file is in the quarantine now (done, and not restored).
    pub fn quarantined(&self) -> Result<Vec<Entry>, QuarantineError> {
        Ok(self.entries()?.into_iter().filter(Entry::in_quarantine).collect())
    }

    /// Puts back every quarantined file for which `filter` is true (it sees the move's
    /// entry), at the path it came from, creating missing folders.
    ///
    /// A file is left in the quarantine, as a conflict, when a file is at its original path
    /// (never replaced), when its bytes no longer hash to the recorded blake3, or when it
    /// is gone from the quarantine. Only an error of the manifest itself stops the run.
    pub fn restore(
        &self,
        filter: impl Fn(&Entry) -> bool,
    ) -> Result<RestoreReport, QuarantineError> {
        self.restore_matching(filter, RestoreMode::Carry)
    }

    /// What [`Quarantine::restore`] with this filter would do, with the same checks (the
    /// files are read to check their hashes), changing nothing.
    pub fn plan_restore(
        &self,
        filter: impl Fn(&Entry) -> bool,
    ) -> Result<RestoreReport, QuarantineError> {
        self.restore_matching(filter, RestoreMode::Plan)
    }
}

impl Entry {
    /// True for a move whose file is in the quarantine: done, and not restored.
    pub fn in_quarantine(&self) -> bool {
        self.operation == Operation::Move && self.state == State::Done && self.restored_by.is_none()
    }

    fn started(
        operation: Operation,
        source: PathBuf,
        target: PathBuf,
        blake3: [u8; 32],
        reason: &str,
    ) -> Entry {
        Entry {
            // Ids only need to be unique, not reproducible: a random 64-bit number.
            id: format!("{:016x}", rand::random::<u64>()),
            operation,
            source,
            target,
            blake3,
            reason: reason.to_string(),
            unix_s: now_unix_s(),
            state: State::Started,
            note: None,
            undoes: None,
            restored_by: None,
        }
    }
}

/// How a file is carried from one path to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    /// A rename; the verified copy when the paths are on different filesystems.
    Rename,
    /// Always the verified copy, so that tests take the cross-filesystem path on one.
    #[cfg_attr(not(test), expect(dead_code, reason = "only tests force the copy"))]
    Copy,
}

/// The steps after which a test can stop an operation, as a crash would stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The `started` record is written; nothing else is.
    Intent,
    /// Within one filesystem: the file is renamed, `done` is not written.
    Rename,
    /// Across filesystems: the copy is written, synced and verified.
    Copy,
    /// Across filesystems: the copy has its final name; the source is not removed yet.
    PartialRename,
    /// Across filesystems: the source is removed, `done` is not written.
    SourceRemoval,
    /// Hard link: the link is at its temporary name, the duplicate not yet replaced.
    Link,
}

/// Whether a restore moves files or only reports what it would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestoreMode {
    Carry,
    Plan,
}

/// Why one file was not restored.
enum NotRestored {
    Conflict(String),
    Failed(QuarantineError),
}

impl From<QuarantineError> for NotRestored {
    fn from(error: QuarantineError) -> Self {
        NotRestored::Failed(error)
    }
}

/// One line of the manifest: an operation's start (with `op` and every field) or a later
/// state of it (`id` and `state`, and a note).
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    op: Option<Operation>,
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    undoes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blake3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unix_s: Option<i64>,
    state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

impl Record {
    fn intent(entry: &Entry) -> Record {
        Record {
            op: Some(entry.operation),
            id: entry.id.clone(),
            undoes: entry.undoes.clone(),
            source: Some(entry.source.clone()),
            target: Some(entry.target.clone()),
            blake3: Some(to_hex(&entry.blake3)),
            reason: Some(entry.reason.clone()),
            unix_s: Some(entry.unix_s),
            state: State::Started,
            note: None,
        }
    }

    fn state(id: &str, state: State, note: Option<String>) -> Record {
        Record {
            op: None,
            id: id.to_string(),
            undoes: None,
            source: None,
            target: None,
            blake3: None,
            reason: None,
            unix_s: None,
            state,
            note,
        }
    }

    /// The entry this start record opens; the message names what is wrong.
    fn into_entry(self, operation: Operation) -> Result<Entry, String> {
        let missing =
            |field: &str| format!("the {} record {} has no {field}", op_name(operation), self.id);
        if self.state != State::Started {
            return Err(format!("the {} record {} does not start it", op_name(operation), self.id));
        }
        if (operation == Operation::Restore) != self.undoes.is_some() {
            return Err(format!(
                "undoes is for restore records only, and they need it ({})",
                self.id
            ));
        }
        let hex = self.blake3.as_deref().ok_or_else(|| missing("blake3"))?;
        let blake3 = from_hex(hex).ok_or_else(|| format!("blake3 {hex:?} is not 64 hex digits"))?;
        Ok(Entry {
            operation,
            source: self.source.clone().ok_or_else(|| missing("source"))?,
            target: self.target.clone().ok_or_else(|| missing("target"))?,
            blake3,
            reason: self.reason.clone().ok_or_else(|| missing("reason"))?,
            unix_s: self.unix_s.ok_or_else(|| missing("unix_s"))?,
            state: State::Started,
            note: None,
            undoes: self.undoes,
            restored_by: None,
            id: self.id,
        })
    }
}

// The steps of an operation, and their settling.
impl Quarantine {
    fn lock(&self) -> MutexGuard<'_, File> {
        // A panic in another operation leaves the file handle as usable as before.
        self.manifest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one record and syncs the manifest.
    fn append(&self, manifest: &mut File, record: &Record) -> Result<(), QuarantineError> {
        let action = || format!("cannot append to {}", self.manifest_path.display());
        let mut line = serde_json::to_vec(record).map_err(|error| QuarantineError::Io {
            action: action(),
            cause: io::Error::other(error),
        })?;
        line.push(b'\n');
        manifest
            .write_all(&line)
            .and_then(|()| manifest.sync_all())
            .map_err(|cause| QuarantineError::Io { action: action(), cause })
    }

    /// Reads and folds the manifest; the caller holds the lock.
    fn read_entries(&self) -> Result<Vec<Entry>, QuarantineError> {
        let bytes = fs::read(&self.manifest_path)
            .map_err(io_error(format!("cannot read {}", self.manifest_path.display())))?;
        fold(&self.manifest_path, &bytes)
    }

    /// Settles every operation left started; the outcomes, as entries.
    fn recover(&self) -> Result<Vec<Entry>, QuarantineError> {
        let mut manifest = self.lock();
        let unfinished: Vec<Entry> = self
            .read_entries()?
            .into_iter()
            .filter(|entry| entry.state == State::Started)
            .collect();
        let mut settled = Vec::new();
        for entry in unfinished {
            match self.settle(&mut manifest, &entry) {
                Ok(entry) => {
                    tracing::warn!(
                        id = %entry.id,
                        operation = op_name(entry.operation),
                        state = ?entry.state,
                        note = entry.note.as_deref().unwrap_or(""),
                        "settled an interrupted operation"
                    );
                    settled.push(entry);
                }
                Err(error) => tracing::warn!(
                    id = %entry.id,
                    cause = %error,
                    "cannot settle an interrupted operation; it stays started"
                ),
            }
        }
        Ok(settled)
    }

    /// Runs the steps of a started operation and writes `done`; after a failure, records
    /// what the disk shows, so that the manifest says where the file is.
    fn carry_or_settle(&self, manifest: &mut File, entry: &Entry) -> Result<(), QuarantineError> {
        let outcome = match entry.operation {
            Operation::Move | Operation::Restore => self.transfer_file(entry),
            Operation::Hardlink => self.link(entry),
        };
        let error = match outcome {
            Ok(()) => return self.append(manifest, &Record::state(&entry.id, State::Done, None)),
            #[cfg(test)]
            Err(stopped @ QuarantineError::Stopped(_)) => return Err(stopped),
            Err(error) => error,
        };
        let settled = match &error {
            // A file appeared at the target: ours is untouched at the source.
            QuarantineError::TargetExists { path } => remove_if_present(&partial_path(entry))
                .and_then(|()| {
                    let note = format!("{} appeared meanwhile; nothing was moved", path.display());
                    let record = Record::state(&entry.id, State::Abandoned, Some(note));
                    self.append(manifest, &record)
                }),
            _ => self.settle(manifest, entry).map(|_| ()),
        };
        if let Err(settle_error) = settled {
            let id = &entry.id;
            tracing::warn!(id = %id, cause = %settle_error, "cannot record a failed operation");
        }
        Err(error)
    }

    /// Moves `entry.source` to `entry.target`: a rename, or the verified copy.
    fn transfer_file(&self, entry: &Entry) -> Result<(), QuarantineError> {
        let (from, to) = (entry.source.as_path(), entry.target.as_path());
        self.checkpoint(Step::Intent)?;
        if self.transfer == Transfer::Rename && rename_within_filesystem(from, to)? {
            sync_folder(parent_of(to))?;
            sync_folder(parent_of(from))?;
            return self.checkpoint(Step::Rename);
        }
        let partial = partial_path(entry);
        copy_verified(from, &partial, &entry.blake3)?;
        self.checkpoint(Step::Copy)?;
        refuse_existing(to)?;
        rename(&partial, to)?;
        sync_folder(parent_of(to))?;
        self.checkpoint(Step::PartialRename)?;
        if let Err(error) = remove_if_present(from) {
            // The source stays: take the copy back, so the file is in one place.
            remove_if_present(to)?;
            sync_folder(parent_of(to))?;
            return Err(error);
        }
        sync_folder(parent_of(from))?;
        self.checkpoint(Step::SourceRemoval)
    }

    /// Links `entry.source` (the keeper) at a temporary name, then over `entry.target`.
    fn link(&self, entry: &Entry) -> Result<(), QuarantineError> {
        self.checkpoint(Step::Intent)?;
        let temporary = link_path(entry);
        fs::hard_link(&entry.source, &temporary).map_err(io_error(format!(
            "cannot link {} at {}",
            entry.source.display(),
            temporary.display()
        )))?;
        self.checkpoint(Step::Link)?;
        rename(&temporary, &entry.target)?;
        sync_folder(parent_of(&entry.target))
    }

    /// Decides from the disk where a started operation's file is, finishes or undoes what
    /// is safe, and records the outcome.
    fn settle(&self, manifest: &mut File, entry: &Entry) -> Result<Entry, QuarantineError> {
        let (state, note) = match entry.operation {
            Operation::Move | Operation::Restore => settle_transfer(entry)?,
            Operation::Hardlink => settle_link(entry)?,
        };
        self.append(manifest, &Record::state(&entry.id, state, Some(note.clone())))?;
        Ok(Entry { state, note: Some(note), ..entry.clone() })
    }

    fn restore_matching(
        &self,
        filter: impl Fn(&Entry) -> bool,
        mode: RestoreMode,
    ) -> Result<RestoreReport, QuarantineError> {
        let mut manifest = self.lock();
        let entries = self.read_entries()?;
        let mut report = RestoreReport::default();
        for moved in entries.iter().filter(|entry| entry.in_quarantine() && filter(entry)) {
            let (move_id, path) = (moved.id.clone(), moved.source.clone());
            match self.restore_one(&mut manifest, moved, mode) {
                Ok(()) => {
                    let (from, to) = (moved.target.clone(), moved.source.clone());
                    report.restored.push(Restored { move_id, from, to });
                }
                Err(NotRestored::Conflict(reason)) => {
                    report.conflicts.push(RestoreConflict { move_id, path, reason });
                }
                Err(NotRestored::Failed(error)) => {
                    let error = error.to_string();
                    report.failures.push(RestoreFailure { move_id, path, error });
                }
            }
        }
        Ok(report)
    }

    fn restore_one(
        &self,
        manifest: &mut File,
        moved: &Entry,
        mode: RestoreMode,
    ) -> Result<(), NotRestored> {
        let (from, to) = (&moved.target, &moved.source);
        if !exists(from)? {
            return Err(NotRestored::Conflict(format!(
                "{} is no longer in the quarantine",
                from.display()
            )));
        }
        if exists(to)? {
            return Err(NotRestored::Conflict("a file is already at this path".to_string()));
        }
        if hash_file(from)? != moved.blake3 {
            return Err(NotRestored::Conflict(format!(
                "altered in the quarantine: {} no longer has the recorded blake3 hash {}",
                from.display(),
                to_hex(&moved.blake3)
            )));
        }
        if mode == RestoreMode::Plan {
            return Ok(());
        }
        create_folders(parent_of(to))?;
        let mut entry =
            Entry::started(Operation::Restore, from.clone(), to.clone(), moved.blake3, "restore");
        entry.undoes = Some(moved.id.clone());
        self.append(manifest, &Record::intent(&entry))?;
        match self.carry_or_settle(manifest, &entry) {
            Ok(()) => Ok(()),
            Err(QuarantineError::TargetExists { .. }) => {
                Err(NotRestored::Conflict("a file appeared at this path meanwhile".to_string()))
            }
            Err(error) => Err(NotRestored::Failed(error)),
        }
    }

    /// Stops an operation after `step` when a test asks for it.
    fn checkpoint(&self, step: Step) -> Result<(), QuarantineError> {
        #[cfg(test)]
        if self.stop_after == Some(step) {
            return Err(QuarantineError::Stopped(format!("{step:?}")));
        }
        #[cfg(not(test))]
        let _ = step;
        Ok(())
    }
}

/// Where a started move or restore's file is, from the disk; removes what is redundant.
fn settle_transfer(entry: &Entry) -> Result<(State, String), QuarantineError> {
    let (from, to) = (entry.source.as_path(), entry.target.as_path());
    let partial = partial_path(entry);
    let (from_shown, to_shown) = (from.display(), to.display());
    let outcome = match (exists(from)?, exists(to)?) {
        (true, false) => {
            remove_if_present(&partial)?;
            (State::Abandoned, format!("nothing was moved: the file is still at {from_shown}"))
        }
        (false, true) if hash_file(to)? == entry.blake3 => {
            (State::Done, format!("the move had finished: the file is at {to_shown}"))
        }
        (false, true) => (
            State::Done,
            format!("the file is at {to_shown}, but its bytes no longer match the recorded hash"),
        ),
        (true, true) if hash_file(from)? == hash_file(to)? => {
            // The copy at the target is whole: finish by removing the source.
            remove_if_present(from)?;
            sync_folder(parent_of(from))?;
            remove_if_present(&partial)?;
            (State::Done, format!("the copy at {to_shown} was whole; {from_shown} is removed"))
        }
        (true, true) => (
            State::Conflict,
            format!("{from_shown} and {to_shown} both exist with different bytes; both are kept"),
        ),
        (false, false) => {
            let copy = if exists(&partial)? {
                format!(" ({} holds a copy)", partial.display())
            } else {
                String::new()
            };
            (State::Conflict, format!("neither {from_shown} nor {to_shown} exists{copy}"))
        }
    };
    Ok(outcome)
}

/// Whether a started hard link replaced its duplicate; removes a temporary link left.
fn settle_link(entry: &Entry) -> Result<(State, String), QuarantineError> {
    let (keeper, duplicate) = (entry.source.as_path(), entry.target.as_path());
    remove_if_present(&link_path(entry))?;
    let outcome = if same_file(keeper, duplicate)? {
        (State::Done, format!("{} is a link to {}", duplicate.display(), keeper.display()))
    } else if exists(duplicate)? {
        (State::Abandoned, format!("nothing was changed: {} is its own file", duplicate.display()))
    } else {
        (State::Conflict, format!("{} is missing", duplicate.display()))
    };
    Ok(outcome)
}

/// Folds the manifest's lines into entries. A last line without its newline is an append
/// still being written (or cut short): it is left out.
fn fold(manifest_path: &Path, bytes: &[u8]) -> Result<Vec<Entry>, QuarantineError> {
    let mut lines: Vec<&[u8]> = bytes.split(|&byte| byte == b'\n').collect();
    lines.pop();
    let mut entries: Vec<Entry> = Vec::new();
    let mut index_of: HashMap<String, usize> = HashMap::new();
    for (line_idx, line) in lines.into_iter().enumerate() {
        let bad = |message: String| QuarantineError::Manifest {
            path: manifest_path.to_path_buf(),
            line: line_idx + 1,
            message,
        };
        let record: Record =
            serde_json::from_slice(line).map_err(|error| bad(error.to_string()))?;
        let Some(operation) = record.op else {
            let Some(&entry_idx) = index_of.get(&record.id) else {
                return Err(bad(format!("a state for the unknown operation {}", record.id)));
            };
            if record.state == State::Started {
                return Err(bad(format!("operation {} is started twice", record.id)));
            }
            let entry = &mut entries[entry_idx];
            if entry.state != State::Done {
                entry.state = record.state;
                entry.note = record.note;
            }
            continue;
        };
        if index_of.contains_key(&record.id) {
            return Err(bad(format!("operation {} is started twice", record.id)));
        }
        let entry = record.into_entry(operation).map_err(bad)?;
        if let Some(undone) = &entry.undoes {
            let is_move = |&idx: &usize| entries[idx].operation == Operation::Move;
            if !index_of.get(undone).is_some_and(is_move) {
                return Err(bad(format!("restore {} undoes the unknown move {undone}", entry.id)));
            }
        }
        index_of.insert(entry.id.clone(), entries.len());
        entries.push(entry);
    }
    let finished_restores: Vec<(usize, String)> = entries
        .iter()
        .filter(|entry| entry.operation == Operation::Restore && entry.state == State::Done)
        .filter_map(|entry| Some((*index_of.get(entry.undoes.as_ref()?)?, entry.id.clone())))
        .collect();
    for (move_idx, restore_id) in finished_restores {
        entries[move_idx].restored_by = Some(restore_id);
    }
    Ok(entries)
}

/// Cuts an incomplete last line (an append a crash interrupted) off the manifest.
fn drop_incomplete_line(manifest: &File, path: &Path) -> Result<(), QuarantineError> {
    let read_error = || io_error(format!("cannot read {}", path.display()));
    let length = manifest.metadata().map_err(read_error())?.len();
    let mut last = [0u8; 1];
    if length == 0
        || (manifest.read_at(&mut last, length - 1).map_err(read_error())? == 1 && last[0] == b'\n')
    {
        return Ok(());
    }
    let bytes = fs::read(path).map_err(read_error())?;
    let kept =
        bytes.iter().rposition(|&byte| byte == b'\n').map_or(0, |newline_idx| newline_idx + 1);
    let write_error =
        io_error(format!("cannot cut the incomplete last line of {}", path.display()));
    manifest.set_len(kept as u64).and_then(|()| manifest.sync_all()).map_err(write_error)?;
    let n_bytes = bytes.len() - kept;
    tracing::warn!(manifest = %path.display(), n_bytes, "dropped an incomplete last line");
    Ok(())
}

/// Renames `from` to a free `to`; false when they are on different filesystems.
fn rename_within_filesystem(from: &Path, to: &Path) -> Result<bool, QuarantineError> {
    refuse_existing(to)?;
    match fs::rename(from, to) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == ErrorKind::CrossesDevices => Ok(false),
        Err(error) if error.raw_os_error() == Some(EXDEV) => Ok(false),
        Err(cause) => Err(QuarantineError::Io {
            action: format!("cannot rename {} to {}", from.display(), to.display()),
            cause,
        }),
    }
}

/// Copies `from` into the new file `copy` with its permissions and modification time,
/// syncs it, and checks that it hashes to `expected`; a bad copy is removed.
fn copy_verified(from: &Path, copy: &Path, expected: &[u8; 32]) -> Result<(), QuarantineError> {
    let action = format!("cannot copy {} to {}", from.display(), copy.display());
    let written = (|| {
        let mut input = File::open(from)?;
        let metadata = input.metadata()?;
        let mut output = OpenOptions::new().write(true).create_new(true).open(copy)?;
        io::copy(&mut input, &mut output)?;
        output.set_permissions(metadata.permissions())?;
        output.set_modified(metadata.modified()?)?;
        output.sync_all()
    })();
    if let Err(cause) = written {
        if cause.kind() != ErrorKind::AlreadyExists {
            remove_if_present(copy)?;
        }
        return Err(QuarantineError::Io { action, cause });
    }
    if hash_file(copy)? != *expected {
        remove_if_present(copy)?;
        return Err(QuarantineError::BadCopy {
            copy: copy.to_path_buf(),
            original: from.to_path_buf(),
        });
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<(), QuarantineError> {
    fs::rename(from, to).map_err(io_error(format!(
        "cannot rename {} to {}",
        from.display(),
        to.display()
    )))
}

/// Removes a file; one already gone is not an error.
fn remove_if_present(path: &Path) -> Result<(), QuarantineError> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != ErrorKind::NotFound => Err(QuarantineError::Io {
            action: format!("cannot remove {}", path.display()),
            cause: error,
        }),
        _ => Ok(()),
    }
}

/// Whether anything (a file, a folder, a link) is at `path`.
fn exists(path: &Path) -> Result<bool, QuarantineError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(cause) => {
            Err(QuarantineError::Io { action: format!("cannot look at {}", path.display()), cause })
        }
    }
}

fn refuse_existing(path: &Path) -> Result<(), QuarantineError> {
    match exists(path)? {
        true => Err(QuarantineError::TargetExists { path: path.to_path_buf() }),
        false => Ok(()),
    }
}

/// Whether both paths exist and name one file.
fn same_file(a: &Path, b: &Path) -> Result<bool, QuarantineError> {
    if !exists(a)? || !exists(b)? {
        return Ok(false);
    }
    let (a, b) = (regular_file(a)?, regular_file(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// The metadata of a regular file (not a folder, not a symbolic link).
fn regular_file(path: &Path) -> Result<Metadata, QuarantineError> {
    let metadata = fs::symlink_metadata(path)
        .map_err(io_error(format!("cannot look at {}", path.display())))?;
    if !metadata.is_file() {
        return Err(QuarantineError::NotAFile { path: path.to_path_buf() });
    }
    Ok(metadata)
}

fn check_content(path: &Path, expected: &[u8; 32]) -> Result<(), QuarantineError> {
    let actual = hash_file(path)?;
    if actual != *expected {
        return Err(QuarantineError::Changed {
            path: path.to_path_buf(),
            expected: to_hex(expected),
            actual: to_hex(&actual),
        });
    }
    Ok(())
}

/// The blake3 hash of a file's bytes.
fn hash_file(path: &Path) -> Result<[u8; 32], QuarantineError> {
    let mut hasher = blake3::Hasher::new();
    File::open(path)
        .and_then(|mut file| hasher.update_reader(&mut file).map(|_| ()))
        .map_err(io_error(format!("cannot read {}", path.display())))?;
    Ok(*hasher.finalize().as_bytes())
}

/// Creates a folder and its missing parents, and syncs the folder holding each new one.
fn create_folders(folder: &Path) -> Result<(), QuarantineError> {
    let missing: Vec<&Path> = folder.ancestors().take_while(|path| !path.exists()).collect();
    fs::create_dir_all(folder)
        .map_err(io_error(format!("cannot create the folder {}", folder.display())))?;
    for created in missing {
        sync_folder(parent_of(created))?;
    }
    Ok(())
}

/// Syncs a folder, so that the names created or removed in it are on disk.
fn sync_folder(folder: &Path) -> Result<(), QuarantineError> {
    File::open(folder)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error(format!("cannot sync the folder {}", folder.display())))
}

/// The first of `wanted`, `stem (1).ext`, `stem (2).ext`, ... at which nothing exists.
fn free_name(wanted: &Path) -> Result<PathBuf, QuarantineError> {
    if !exists(wanted)? {
        return Ok(wanted.to_path_buf());
    }
    let stem = wanted.file_stem().unwrap_or_default().to_string_lossy();
    let extension = wanted.extension().map(|e| format!(".{}", e.to_string_lossy()));
    let extension = extension.unwrap_or_default();
    for n in 1.. {
        let candidate = parent_of(wanted).join(format!("{stem} ({n}){extension}"));
        if !exists(&candidate)? {
            return Ok(candidate);
        }
    }
    unreachable!("some suffix is free")
}

/// `path` relative to `root`: below it, without `..`.
fn relative_under<'a>(root: &Path, path: &'a Path) -> Result<&'a Path, QuarantineError> {
    let outside =
        || QuarantineError::OutsideRoot { path: path.to_path_buf(), root: root.to_path_buf() };
    let relative = path.strip_prefix(root).map_err(|_| outside())?;
    let plain = relative.components().all(|component| matches!(component, Component::Normal(_)));
    if relative.as_os_str().is_empty() || !plain {
        return Err(outside());
    }
    Ok(relative)
}

/// The folder of the quarantine that holds a root's files: the root's own name.
fn folder_name_of(root: &Path) -> &std::ffi::OsStr {
    root.file_name().unwrap_or("root".as_ref())
}

/// Where a copy in progress is written: beside the target, named after it and the
/// operation, so that recovery removes only its own.
fn partial_path(entry: &Entry) -> PathBuf {
    beside(&entry.target, &format!(".{}.partial", entry.id), "")
}

/// Where a hard link waits before it replaces the duplicate: a hidden name beside it.
fn link_path(entry: &Entry) -> PathBuf {
    beside(&entry.target, &format!(".{}.link", entry.id), ".")
}

fn beside(path: &Path, suffix: &str, prefix: &str) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    parent_of(path).join(format!("{prefix}{name}{suffix}"))
}

/// The folder holding `path`; absolute paths other than `/` always have one.
fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("/"))
}

fn absolute(path: &Path) -> Result<PathBuf, QuarantineError> {
    std::path::absolute(path).map_err(io_error(format!("cannot make {} absolute", path.display())))
}

fn require_utf8(path: &Path) -> Result<(), QuarantineError> {
    match path.to_str() {
        Some(_) => Ok(()),
        None => Err(QuarantineError::NotUtf8 { path: path.to_path_buf() }),
    }
}

fn io_error(action: String) -> impl FnOnce(io::Error) -> QuarantineError {
    move |cause| QuarantineError::Io { action, cause }
}

fn op_name(operation: Operation) -> &'static str {
    match operation {
        Operation::Move => "move",
        Operation::Restore => "restore",
        Operation::Hardlink => "hardlink",
    }
}

fn now_unix_s() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

fn to_hex(bytes: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*bytes).to_hex().to_string()
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    blake3::Hash::from_hex(text).ok().map(|hash| *hash.as_bytes())
}

fn serialize_hex<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&to_hex(bytes))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A library root, `Photos`, and a quarantine folder beside it, in a fresh folder.
    struct Library {
        _dir: tempfile::TempDir,
        root: PathBuf,
        folder: PathBuf,
    }

    fn library() -> Library {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Photos");
        let folder = dir.path().join("quarantine");
        fs::create_dir_all(&root).unwrap();
        Library { root, folder, _dir: dir }
    }

    /// Writes a file (and its folders) with a known modification time; its blake3 hash.
    fn write(path: &Path, bytes: &[u8]) -> [u8; 32] {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000)).unwrap();
        *blake3::hash(bytes).as_bytes()
    }

    fn modified(path: &Path) -> SystemTime {
        fs::metadata(path).unwrap().modified().unwrap()
    }

    fn open(folder: &Path, transfer: Transfer) -> Quarantine {
        let mut quarantine = Quarantine::open(folder).unwrap();
        quarantine.transfer = transfer;
        quarantine
    }

    const TRANSFERS: [Transfer; 2] = [Transfer::Rename, Transfer::Copy];

    const STEPS: [Step; 6] = [
        Step::Intent,
        Step::Rename,
        Step::Copy,
        Step::PartialRename,
        Step::SourceRemoval,
        Step::Link,
    ];

    /// Files under `folder` that an operation leaves only while it runs.
    fn leftovers(folder: &Path) -> Vec<PathBuf> {
        walkdir::WalkDir::new(folder)
            .into_iter()
            .map(|item| item.unwrap().into_path())
            .filter(|path| {
                let name = path.file_name().unwrap().to_string_lossy();
                name.ends_with(".partial") || name.ends_with(".link")
            })
            .collect()
    }

    /// The file is whole at exactly one of `source` and `target`, the one `state` names.
    fn assert_in_one_place(source: &Path, target: &Path, bytes: &[u8], state: State) {
        let (here, gone) = match state {
            State::Done => (target, source),
            State::Abandoned => (source, target),
            other => {
                panic!("{} -> {}: unexpected state {other:?}", source.display(), target.display())
            }
        };
        assert_eq!(fs::read(here).unwrap(), bytes, "{state:?}: {}", here.display());
        assert!(!gone.exists(), "{state:?}: {} should be gone", gone.display());
    }

    #[test]
    fn a_move_keeps_the_path_under_the_root_and_a_restore_puts_back_the_same_bytes() {
        for transfer in TRANSFERS {
            let library = library();
            let source = library.root.join("2024/trip/a.jpg");
            let hash = write(&source, b"the picture");
            let quarantine = open(&library.folder, transfer);

            let entry = quarantine.move_in(&library.root, &source, &hash, "copy of b.jpg").unwrap();
            assert_eq!(entry.target, library.folder.join("Photos/2024/trip/a.jpg"), "{transfer:?}");
            assert_eq!((entry.operation, entry.state), (Operation::Move, State::Done));
            assert!(!source.exists());
            assert_eq!(fs::read(&entry.target).unwrap(), b"the picture");
            assert_eq!(modified(&entry.target), UNIX_EPOCH + Duration::from_secs(1_000_000));
            let quarantined = quarantine.quarantined().unwrap();
            assert_eq!(quarantined, vec![entry.clone()]);
            assert!(leftovers(&library.folder).is_empty());

            let report = quarantine.restore(|_| true).unwrap();
            let restored = Restored {
                move_id: entry.id.clone(),
                from: entry.target.clone(),
                to: source.clone(),
            };
            assert_eq!(report, RestoreReport { restored: vec![restored], ..Default::default() });
            assert_eq!(fs::read(&source).unwrap(), b"the picture");
            assert_eq!(modified(&source), UNIX_EPOCH + Duration::from_secs(1_000_000));
            assert!(!entry.target.exists());

            // Restored once: a second restore finds nothing, also after reopening.
            assert_eq!(quarantine.restore(|_| true).unwrap(), RestoreReport::default());
            drop(quarantine);
            let quarantine = Quarantine::open(&library.folder).unwrap();
            assert!(quarantine.recovered().is_empty());
            assert!(quarantine.quarantined().unwrap().is_empty());
            let entries = quarantine.entries().unwrap();
            assert_eq!(entries.len(), 2);
            assert_eq!(entries[0].restored_by.as_ref(), Some(&entries[1].id));
            assert_eq!(entries[1].undoes.as_ref(), Some(&entry.id));
            assert_eq!((entries[1].operation, entries[1].state), (Operation::Restore, State::Done));
        }
    }

    #[test]
    fn a_taken_name_gets_a_suffix_and_nothing_is_overwritten() {
        for transfer in TRANSFERS {
            let library = library();
            let precious = library.folder.join("Photos/a.jpg");
            write(&precious, b"already here");
            let quarantine = open(&library.folder, transfer);
            let source = library.root.join("a.jpg");

            let hash = write(&source, b"first");
            let first = quarantine.move_in(&library.root, &source, &hash, "dup").unwrap();
            let hash = write(&source, b"second");
            let second = quarantine.move_in(&library.root, &source, &hash, "dup").unwrap();

            assert_eq!(first.target, library.folder.join("Photos/a (1).jpg"));
            assert_eq!(second.target, library.folder.join("Photos/a (2).jpg"));
            assert_eq!(fs::read(&precious).unwrap(), b"already here");
            assert_eq!(fs::read(&first.target).unwrap(), b"first");
            assert_eq!(fs::read(&second.target).unwrap(), b"second");
        }
    }

    #[test]
    fn a_file_whose_bytes_changed_since_the_check_is_refused_and_stays() {
        let library = library();
        let source = library.root.join("a.jpg");
        let old_hash = write(&source, b"checked bytes");
        write(&source, b"edited since");
        let quarantine = Quarantine::open(&library.folder).unwrap();

        let error = quarantine.move_in(&library.root, &source, &old_hash, "dup").unwrap_err();
        assert!(matches!(error, QuarantineError::Changed { .. }), "{error}");
        assert!(error.to_string().contains("a.jpg changed since it was checked"), "{error}");
        assert_eq!(fs::read(&source).unwrap(), b"edited since");
        assert!(quarantine.entries().unwrap().is_empty());
        assert!(!library.folder.join("Photos").exists());
    }

    #[test]
    fn paths_outside_the_root_inside_the_quarantine_or_not_files_are_refused() {
        let library = library();
        let quarantine = Quarantine::open(&library.folder).unwrap();
        let elsewhere = library.root.parent().unwrap().join("elsewhere.jpg");
        let hash = write(&elsewhere, b"x");
        let escaping = library.root.join("../elsewhere.jpg");
        for path in [&elsewhere, &escaping, &library.root] {
            let error = quarantine.move_in(&library.root, path, &hash, "dup").unwrap_err();
            assert!(matches!(error, QuarantineError::OutsideRoot { .. }), "{error}");
        }

        let folder = library.root.join("folder");
        fs::create_dir(&folder).unwrap();
        let link = library.root.join("link.jpg");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        for path in [&folder, &link] {
            let error = quarantine.move_in(&library.root, path, &hash, "dup").unwrap_err();
            assert!(matches!(error, QuarantineError::NotAFile { .. }), "{error}");
        }

        let inside = library.folder.join("x.jpg");
        write(&inside, b"x");
        let parent = library.root.parent().unwrap();
        let error = quarantine.move_in(parent, &inside, &hash, "dup").unwrap_err();
        assert!(matches!(error, QuarantineError::InsideQuarantine { .. }), "{error}");
        assert!(elsewhere.exists() && link.exists() && inside.exists());
        assert!(quarantine.entries().unwrap().is_empty());
    }

    #[test]
    fn a_restore_never_overwrites_a_file_at_the_original_path() {
        for transfer in TRANSFERS {
            let library = library();
            let source = library.root.join("a.jpg");
            let hash = write(&source, b"old");
            let quarantine = open(&library.folder, transfer);
            let entry = quarantine.move_in(&library.root, &source, &hash, "dup").unwrap();
            write(&source, b"newer file at the same path");

            let report = quarantine.restore(|_| true).unwrap();
            assert!(report.restored.is_empty() && report.failures.is_empty());
            assert_eq!(report.conflicts.len(), 1);
            assert_eq!(report.conflicts[0].path, source);
            assert!(report.conflicts[0].reason.contains("already"), "{:?}", report.conflicts);
            assert_eq!(fs::read(&source).unwrap(), b"newer file at the same path");
            assert_eq!(fs::read(&entry.target).unwrap(), b"old");
            assert_eq!(quarantine.quarantined().unwrap().len(), 1);

            // Once the path is free, the same entry restores.
            fs::remove_file(&source).unwrap();
            assert_eq!(quarantine.restore(|_| true).unwrap().restored.len(), 1);
            assert_eq!(fs::read(&source).unwrap(), b"old");
        }
    }

    #[test]
    fn a_file_altered_in_the_quarantine_is_reported_not_restored() {
        let library = library();
        let source = library.root.join("a.jpg");
        let hash = write(&source, b"as moved");
        let quarantine = Quarantine::open(&library.folder).unwrap();
        let entry = quarantine.move_in(&library.root, &source, &hash, "dup").unwrap();
        fs::write(&entry.target, b"edited in the quarantine").unwrap();

        for report in [quarantine.plan_restore(|_| true), quarantine.restore(|_| true)] {
            let report = report.unwrap();
            assert!(report.restored.is_empty());
            assert!(report.conflicts[0].reason.contains("altered"), "{:?}", report.conflicts);
        }
        assert!(!source.exists());
        assert_eq!(fs::read(&entry.target).unwrap(), b"edited in the quarantine");
    }

    #[test]
    fn a_restore_follows_the_filter_recreates_folders_and_a_plan_changes_nothing() {
        let library = library();
        let trip = library.root.join("2024/trip/a.jpg");
        let home = library.root.join("2023/home/b.jpg");
        let quarantine = Quarantine::open(&library.folder).unwrap();
        for (path, bytes) in [(&trip, b"trip"), (&home, b"home")] {
            let hash = write(path, bytes);
            quarantine.move_in(&library.root, path, &hash, "dup").unwrap();
        }
        fs::remove_dir_all(library.root.join("2024")).unwrap();
        let in_trip = |entry: &Entry| entry.source.starts_with(library.root.join("2024"));

        let plan = quarantine.plan_restore(in_trip).unwrap();
        assert_eq!(plan.restored.len(), 1);
        assert_eq!(plan.restored[0].to, trip);
        assert!(!library.root.join("2024").exists());
        assert_eq!(quarantine.quarantined().unwrap().len(), 2);

        assert_eq!(quarantine.restore(in_trip).unwrap(), plan);
        assert_eq!(fs::read(&trip).unwrap(), b"trip");
        assert!(!home.exists());
        let left = quarantine.quarantined().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].source, home);
    }

    #[test]
    fn a_crash_after_any_step_of_a_move_leaves_the_file_in_one_place_as_the_manifest_says() {
        for transfer in TRANSFERS {
            for step in STEPS {
                let library = library();
                let source = library.root.join("sub/a.jpg");
                let hash = write(&source, b"precious bytes");
                let mut quarantine = open(&library.folder, transfer);
                quarantine.stop_after = Some(step);
                let outcome = quarantine.move_in(&library.root, &source, &hash, "dup");
                drop(quarantine);

                let quarantine = Quarantine::open(&library.folder).unwrap();
                let entries = quarantine.entries().unwrap();
                assert_eq!(entries.len(), 1, "{transfer:?} {step:?}");
                let entry = &entries[0];
                assert_in_one_place(&source, &entry.target, b"precious bytes", entry.state);
                assert!(leftovers(&library.folder).is_empty(), "{transfer:?} {step:?}");
                // A step the path does not take lets the move finish.
                let taken = match transfer {
                    Transfer::Rename => [Step::Intent, Step::Rename].contains(&step),
                    Transfer::Copy => ![Step::Rename, Step::Link].contains(&step),
                };
                assert_eq!(outcome.is_err(), taken, "{transfer:?} {step:?}");
                assert_eq!(quarantine.recovered().len(), usize::from(taken));
                // Before the file is in place nothing happened; after, the move is done.
                let before = [Step::Intent, Step::Copy].contains(&step);
                let expected = if taken && before { State::Abandoned } else { State::Done };
                assert_eq!(entry.state, expected, "{transfer:?} {step:?}");

                // Whatever the state, a restore then brings the file home.
                quarantine.restore(|_| true).unwrap();
                assert_eq!(fs::read(&source).unwrap(), b"precious bytes");
            }
        }
    }

    #[test]
    fn a_crash_after_any_step_of_a_restore_leaves_the_file_in_one_place_as_the_manifest_says() {
        for transfer in TRANSFERS {
            for step in STEPS {
                let library = library();
                let source = library.root.join("sub/a.jpg");
                let hash = write(&source, b"precious bytes");
                let mut quarantine = open(&library.folder, transfer);
                let moved = quarantine.move_in(&library.root, &source, &hash, "dup").unwrap();
                quarantine.stop_after = Some(step);
                let report = quarantine.restore(|_| true).unwrap();
                drop(quarantine);

                let quarantine = Quarantine::open(&library.folder).unwrap();
                let entries = quarantine.entries().unwrap();
                let restore = &entries[1];
                assert_eq!(restore.operation, Operation::Restore, "{transfer:?} {step:?}");
                assert_in_one_place(&moved.target, &source, b"precious bytes", restore.state);
                assert_eq!(entries[0].in_quarantine(), restore.state == State::Abandoned);
                assert!(leftovers(&library.root).is_empty(), "{transfer:?} {step:?}");
                assert_eq!(quarantine.recovered().len(), report.failures.len());
            }
        }
    }

    #[test]
    fn recovery_keeps_both_files_when_their_bytes_differ() {
        let library = library();
        let source = library.root.join("a.jpg");
        let hash = write(&source, b"copied");
        let mut quarantine = open(&library.folder, Transfer::Copy);
        quarantine.stop_after = Some(Step::PartialRename);
        quarantine.move_in(&library.root, &source, &hash, "dup").unwrap_err();
        drop(quarantine);
        fs::write(&source, b"edited before the crash was settled").unwrap();

        let quarantine = Quarantine::open(&library.folder).unwrap();
        let recovered = quarantine.recovered();
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].state, State::Conflict);
        assert!(recovered[0].note.as_ref().unwrap().contains("different bytes"));
        assert_eq!(fs::read(&source).unwrap(), b"edited before the crash was settled");
        assert_eq!(fs::read(&recovered[0].target).unwrap(), b"copied");
        // Settled once: a conflict is left for a person, not settled at every open.
        drop(quarantine);
        assert!(Quarantine::open(&library.folder).unwrap().recovered().is_empty());
    }

    #[test]
    fn a_move_across_filesystems_takes_the_verified_copy() {
        // /dev/shm is a separate memory filesystem on most Linux systems; elsewhere the
        // forced copy of the other tests stands in for it.
        let Ok(other) = tempfile::tempdir_in("/dev/shm") else { return };
        let library = library();
        let device = |path: &Path| fs::metadata(path).unwrap().dev();
        if device(other.path()) == device(&library.root) {
            return;
        }
        let source = library.root.join("a.jpg");
        let hash = write(&source, b"across");
        let quarantine = Quarantine::open(&other.path().join("quarantine")).unwrap();
        let entry = quarantine.move_in(&library.root, &source, &hash, "dup").unwrap();
        assert_eq!(fs::read(&entry.target).unwrap(), b"across");
        assert!(!source.exists());
        assert_eq!(modified(&entry.target), UNIX_EPOCH + Duration::from_secs(1_000_000));
        assert_eq!(quarantine.restore(|_| true).unwrap().restored.len(), 1);
        assert_eq!(fs::read(&source).unwrap(), b"across");

        let keeper = other.path().join("keeper.jpg");
        write(&keeper, b"across");
        let error = quarantine.hardlink(&keeper, &source, &hash, "exact").unwrap_err();
        assert!(matches!(error, QuarantineError::DifferentFilesystems { .. }), "{error}");
    }

    #[test]
    fn a_hard_link_replaces_an_exact_duplicate_by_the_kept_file() {
        let library = library();
        let keeper = library.root.join("keeper.jpg");
        let duplicate = library.root.join("sub/duplicate.jpg");
        let hash = write(&keeper, b"same bytes");
        write(&duplicate, b"same bytes");
        let quarantine = Quarantine::open(&library.folder).unwrap();

        let entry = quarantine.hardlink(&keeper, &duplicate, &hash, "exact").unwrap();
        assert_eq!((entry.operation, entry.state), (Operation::Hardlink, State::Done));
        let inode = |path: &Path| fs::metadata(path).unwrap().ino();
        assert_eq!(inode(&keeper), inode(&duplicate));
        assert_eq!(fs::read(&duplicate).unwrap(), b"same bytes");
        assert!(leftovers(&library.root).is_empty());
        assert!(quarantine.quarantined().unwrap().is_empty());

        let error = quarantine.hardlink(&keeper, &duplicate, &hash, "exact").unwrap_err();
        assert!(matches!(error, QuarantineError::AlreadyLinked { .. }), "{error}");
    }

    #[test]
    fn a_hard_link_is_refused_when_the_bytes_differ() {
        let library = library();
        let keeper = library.root.join("keeper.jpg");
        let duplicate = library.root.join("duplicate.jpg");
        let hash = write(&keeper, b"kept");
        write(&duplicate, b"not the same");
        let inode_before = fs::metadata(&duplicate).unwrap().ino();
        let quarantine = Quarantine::open(&library.folder).unwrap();

        let error = quarantine.hardlink(&keeper, &duplicate, &hash, "exact").unwrap_err();
        assert!(matches!(error, QuarantineError::Changed { ref path, .. } if *path == duplicate));
        assert_eq!(fs::metadata(&duplicate).unwrap().ino(), inode_before);
        assert_eq!(fs::read(&duplicate).unwrap(), b"not the same");
        assert!(quarantine.entries().unwrap().is_empty());
    }

    #[test]
    fn a_crash_during_a_hard_link_leaves_the_duplicate_whole() {
        for step in [Step::Intent, Step::Link] {
            let library = library();
            let keeper = library.root.join("keeper.jpg");
            let duplicate = library.root.join("duplicate.jpg");
            let hash = write(&keeper, b"same");
            write(&duplicate, b"same");
            let mut quarantine = Quarantine::open(&library.folder).unwrap();
            quarantine.stop_after = Some(step);
            quarantine.hardlink(&keeper, &duplicate, &hash, "exact").unwrap_err();
            assert_eq!(leftovers(&library.root).len(), usize::from(step == Step::Link));
            drop(quarantine);

            let quarantine = Quarantine::open(&library.folder).unwrap();
            let entry = &quarantine.entries().unwrap()[0];
            assert_eq!(entry.state, State::Abandoned, "{step:?}");
            assert_eq!(fs::read(&duplicate).unwrap(), b"same");
            assert!(leftovers(&library.root).is_empty(), "{step:?}");
            assert!(!same_file(&keeper, &duplicate).unwrap());
        }
    }

    #[test]
    fn manifest_lines_are_a_started_record_then_its_state() {
        let library = library();
        let source = library.root.join("a.jpg");
        let hash = write(&source, b"x");
        let quarantine = Quarantine::open(&library.folder).unwrap();
        let entry = quarantine.move_in(&library.root, &source, &hash, "copy of b.jpg").unwrap();

        let text = fs::read_to_string(library.folder.join(MANIFEST_NAME)).unwrap();
        let lines: Vec<serde_json::Value> =
            text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        let expected = serde_json::json!({
            "op": "move",
            "id": entry.id,
            "source": source,
            "target": library.folder.join("Photos/a.jpg"),
            "blake3": blake3::hash(b"x").to_hex().to_string(),
            "reason": "copy of b.jpg",
            "unix_s": entry.unix_s,
            "state": "started",
        });
        assert_eq!(lines[0], expected);
        assert_eq!(lines[1], serde_json::json!({ "id": entry.id, "state": "done" }));
    }

    #[test]
    fn a_manifest_line_that_does_not_parse_is_an_error_naming_the_file_and_line() {
        let library = library();
        let source = library.root.join("a.jpg");
        let hash = write(&source, b"x");
        let quarantine = Quarantine::open(&library.folder).unwrap();
        quarantine.move_in(&library.root, &source, &hash, "dup").unwrap();
        let manifest = library.folder.join(MANIFEST_NAME);
        let mut file = OpenOptions::new().append(true).open(&manifest).unwrap();
        file.write_all(b"{\"id\": \"0\", \"state\": \"sideways\"}\n").unwrap();

        let error = quarantine.entries().unwrap_err().to_string();
        assert!(error.starts_with(&format!("{} line 3: ", manifest.display())), "{error}");
        drop(quarantine);
        let error = Quarantine::open(&library.folder).unwrap_err().to_string();
        assert!(error.contains("manifest.jsonl line 3"), "{error}");
    }

    #[test]
    fn an_incomplete_last_line_is_dropped_and_appends_go_on() {
        let library = library();
        let quarantine = Quarantine::open(&library.folder).unwrap();
        let first = library.root.join("a.jpg");
        let hash = write(&first, b"a");
        quarantine.move_in(&library.root, &first, &hash, "dup").unwrap();
        drop(quarantine);
        let manifest = library.folder.join(MANIFEST_NAME);
        let mut file = OpenOptions::new().append(true).open(&manifest).unwrap();
        file.write_all(b"{\"op\":\"move\",\"id\":\"12").unwrap();

        let quarantine = Quarantine::open(&library.folder).unwrap();
        let second = library.root.join("b.jpg");
        let hash = write(&second, b"b");
        quarantine.move_in(&library.root, &second, &hash, "dup").unwrap();
        assert_eq!(quarantine.quarantined().unwrap().len(), 2);
        let text = fs::read_to_string(&manifest).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text.ends_with('\n'));
    }
}
