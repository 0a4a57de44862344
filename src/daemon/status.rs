//! What the daemon reports about itself: counters, the status snapshot, and events.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::dedup::MatchKind;
use crate::store::{ContentId, FailureKind};

/// Counts since the daemon started. Cheap to bump from any thread.
#[derive(Debug, Default)]
pub struct Counters {
    files_seen: AtomicU64,
    decoded: AtomicU64,
    unchanged: AtomicU64,
    known_content: AtomicU64,
    moved: AtomicU64,
    removed: AtomicU64,
    failed: AtomicU64,
    refits: AtomicU64,
    duplicates_found: AtomicU64,
    duplicates_acted: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CounterValues {
    /// Files looked at, by a scan or after an event.
    pub files_seen: u64,
    /// Files decoded and described: their content was new.
    pub decoded: u64,
    /// Files skipped because their size and modification time had not changed.
    pub unchanged: u64,
    /// Files read and hashed whose content was already known: nothing was decoded.
    pub known_content: u64,
    /// Files renamed or moved: their record followed them, nothing was read.
    pub moved: u64,
    /// Files forgotten because they are gone.
    pub removed: u64,
    /// Files that could not be read, decoded or described.
    pub failed: u64,
    /// Models fitted.
    pub refits: u64,
    /// Paths that arrived as a duplicate of something the library had.
    pub duplicates_found: u64,
    /// Duplicate files moved into the quarantine or replaced by a hard link.
    pub duplicates_acted: u64,
}

/// Names one counter.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    FilesSeen,
    Decoded,
    Unchanged,
    KnownContent,
    Moved,
    Removed,
    Failed,
    Refits,
    DuplicatesFound,
    DuplicatesActed,
}

impl Counters {
    pub fn add(&self, counter: Counter, amount: u64) {
        let cell = match counter {
            Counter::FilesSeen => &self.files_seen,
            Counter::Decoded => &self.decoded,
            Counter::Unchanged => &self.unchanged,
            Counter::KnownContent => &self.known_content,
            Counter::Moved => &self.moved,
            Counter::Removed => &self.removed,
            Counter::Failed => &self.failed,
            Counter::Refits => &self.refits,
            Counter::DuplicatesFound => &self.duplicates_found,
            Counter::DuplicatesActed => &self.duplicates_acted,
        };
        cell.fetch_add(amount, Ordering::Relaxed);
    }

    pub fn values(&self) -> CounterValues {
        let get = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        CounterValues {
            files_seen: get(&self.files_seen),
            decoded: get(&self.decoded),
            unchanged: get(&self.unchanged),
            known_content: get(&self.known_content),
            moved: get(&self.moved),
            removed: get(&self.removed),
            failed: get(&self.failed),
            refits: get(&self.refits),
            duplicates_found: get(&self.duplicates_found),
            duplicates_acted: get(&self.duplicates_acted),
        }
    }
}

/// The state of the library at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub roots: Vec<RootStatus>,
    /// Paths known to the store, whatever their state.
    pub files: u64,
    /// Distinct contents with at least one indexed path.
    pub images: u64,
    /// Paths waiting to be read, or being read.
    pub pending: u64,
    /// Paths that failed, by class of failure (`corrupt`, `empty`, ...).
    pub failed: BTreeMap<String, u64>,
    /// A walk over the roots is running.
    pub scanning: bool,
    /// A refit is running.
    pub refitting: bool,
    pub model: Option<ModelStatus>,
    /// Distinct images added or removed since the model was fitted.
    pub changes_since_model: u64,
    pub counters: CounterValues,
    /// Seconds since the daemon started.
    pub uptime_s: f64,
}

impl Status {
    pub fn n_failed(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// One watched folder.
#[derive(Debug, Clone, Serialize)]
pub struct RootStatus {
    pub path: PathBuf,
    /// False while the folder is missing (an unmounted disk): its files are kept.
    pub available: bool,
}

/// The model in use.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub method: String,
    /// Images the model was fitted on.
    pub images: u64,
    pub clusters: u64,
    /// When the fit finished, in seconds since the Unix epoch.
    pub fitted_at_unix_s: u64,
    pub age_s: f64,
    /// How long the fit took.
    pub duration_s: f64,
    /// Images placed since the fit, each in the cluster of its nearest fitted image.
    pub provisional: u64,
}

/// Something that happened in the library. Sent to every subscriber; a slow subscriber
/// misses events rather than slowing the daemon down.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    /// A path appeared with content that is now indexed.
    Added {
        path: PathBuf,
        #[serde(serialize_with = "hex")]
        content: ContentId,
        decoded: bool,
    },
    /// A known path's content changed.
    Changed {
        path: PathBuf,
        #[serde(serialize_with = "hex")]
        content: ContentId,
        decoded: bool,
    },
    /// A path is gone.
    Removed {
        path: PathBuf,
    },
    /// A file was renamed or moved under the roots.
    Moved {
        from: PathBuf,
        to: PathBuf,
    },
    /// A path could not be indexed.
    Failed {
        path: PathBuf,
        failure: FailureKind,
        reason: String,
    },
    /// A watched folder went missing; its files are kept.
    RootUnavailable {
        path: PathBuf,
    },
    /// A missing watched folder is back.
    RootRestored {
        path: PathBuf,
    },
    /// A walk over the roots finished.
    ScanFinished {
        files: u64,
        queued: u64,
        forgotten: u64,
    },
    RefitStarted {
        images: u64,
    },
    RefitFinished {
        images: u64,
        clusters: u64,
        duration_s: f64,
    },
    RefitFailed {
        reason: String,
    },
    /// A path now holds a picture the library already had.
    Duplicate {
        path: PathBuf,
        /// What it matches, strongest first.
        matches: Vec<DuplicateOf>,
    },
}

/// One content that an arriving path duplicates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicateOf {
    #[serde(serialize_with = "hex")]
    pub content: ContentId,
    /// Its paths (other than the arriving one).
    pub paths: Vec<PathBuf>,
    pub kind: MatchKind,
    /// Hamming distance of the closest hashes compared; 0 for exact copies.
    pub distance: u32,
}

fn hex<S: serde::Serializer>(content: &ContentId, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&content.to_hex())
}
