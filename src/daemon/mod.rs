//! The running library: watch the roots, keep the store up to date, refit in the
//! background, answer queries from the model in use.
//!
//! One task, the coordinator, owns every decision: what to look at next, when to scan,
//! when to refit, what to tell subscribers. The work itself (reading, decoding, walking,
//! fitting) runs on blocking threads, at most `workers` files at a time, and reports back.
//! Queries read the [`Library`] directly and never wait for the coordinator.
//!
//! ```text
//!  watcher ── hints ──┐                  ┌─> look at a path (ingest, forget, scan)
//!  tickers ───────────┼─> coordinator ───┼─> scan the roots
//!  DaemonHandle ──────┘    (schedule)    └─> refit ──> swap the view
//! ```

pub mod config;
mod coordinator;
pub mod duplicates;
pub mod ingest;
pub mod library;
pub mod query;
pub mod refit;
pub mod report;
pub mod scan;
mod schedule;
pub mod status;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

pub use config::{Action, ConfigError, DaemonConfig, DupActions};
pub use library::{ClusterSummary, Library, QueryError, Similar};
pub use query::{
    DuplicateGroup, DuplicateList, DuplicatePair, ImageInfo, ImageQuery, InvalidQuery, Marked,
    SimilarImage, SimilarImages, SimilarQuery,
};
pub use status::{DuplicateOf, Event, Status};

use crate::store::StoreError;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("invalid setting {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot create the data folder {path}: {cause}")]
    DataDir { path: PathBuf, cause: std::io::Error },
    #[error("cannot watch: {0}")]
    Watch(#[from] watch::WatchError),
    #[error("{path} is not under a watched folder")]
    OutsideRoots { path: PathBuf },
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error("refit: {0}")]
    Refit(String),
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("{path} is not known to the library")]
    UnknownPath { path: PathBuf },
    #[error("{field}: {reason}")]
    BadQueryImage { field: &'static str, reason: String },
    #[error("{0}")]
    Invalid(#[from] InvalidQuery),
    #[error("report: {0}")]
    Report(String),
    #[error("quarantine: {0}")]
    Quarantine(#[from] crate::dedup::quarantine::QuarantineError),
}

/// A request to the coordinator.
#[derive(Debug)]
enum Command {
    /// Look at a path (file or folder) now; answer once the daemon is idle, if asked.
    Ingest {
        path: PathBuf,
        done: Option<oneshot::Sender<()>>,
    },
    /// Refit now; answer when the refit is over, if asked.
    Refit {
        done: Option<oneshot::Sender<Result<RefitSummary, String>>>,
    },
    /// Answer once nothing is queued, running or scanning.
    Idle {
        done: oneshot::Sender<()>,
    },
    Shutdown,
}

/// What a finished refit produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefitSummary {
    pub images: u64,
    pub clusters: u64,
    pub duration_s: f64,
}

/// The coordinator's state that status readers see.
#[derive(Debug, Default)]
struct Activity {
    pending: u64,
    scanning: bool,
    refitting: bool,
    changes_since_model: u64,
    roots: Vec<status::RootStatus>,
}

/// The parts shared by the coordinator and every handle.
#[derive(Debug)]
struct Shared {
    library: Library,
    /// Describes query images the same way the workers describe files.
    extractor: Arc<ingest::Extractor>,
    activity: Mutex<Activity>,
    roots: Vec<PathBuf>,
    started: Instant,
    /// The model's parameters, for reports.
    fit: crate::model::FitParams,
}

/// A cheap, cloneable way to query and steer a running daemon.
#[derive(Debug, Clone)]
pub struct DaemonHandle {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
}

/// A running daemon. Dropping it without [`Daemon::shutdown`] stops it less tidily.
#[derive(Debug)]
pub struct Daemon {
    handle: DaemonHandle,
    task: tokio::task::JoinHandle<Result<(), DaemonError>>,
}

impl Daemon {
    /// Opens the store, loads the saved model, starts watching and the first scan.
    /// Must be called inside a multi-threaded Tokio runtime.
    pub async fn start(config: DaemonConfig) -> Result<Daemon, DaemonError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|cause| DaemonError::DataDir { path: config.data_dir.clone(), cause })?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let (coordinator, shared) =
            tokio::task::spawn_blocking(move || coordinator::Coordinator::new(config, receiver))
                .await
                .expect("start-up does not panic")?;
        let task = tokio::spawn(coordinator.run());
        Ok(Daemon { handle: DaemonHandle { shared, commands }, task })
    }

    pub fn handle(&self) -> DaemonHandle {
        self.handle.clone()
    }

    /// Stops watching, lets running work finish, flushes the store.
    pub async fn shutdown(self) -> Result<(), DaemonError> {
        let _ = self.handle.commands.send(Command::Shutdown);
        self.task.await.expect("the coordinator does not panic")
    }

    /// Waits until the daemon stops on its own (it does not, unless it fails).
    pub async fn wait(&mut self) -> Result<(), DaemonError> {
        (&mut self.task).await.expect("the coordinator does not panic")
    }
}

impl DaemonHandle {
    pub fn library(&self) -> &Library {
        &self.shared.library
    }

    /// The watched folders.
    pub fn roots(&self) -> &[PathBuf] {
        &self.shared.roots
    }

    /// Events from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.shared.library.subscribe()
    }

    /// The state of the library now.
    pub fn status(&self) -> Status {
        let library = &self.shared.library;
        let activity = self.shared.activity.lock().expect("activity lock");
        let catalog = library.catalog.read().expect("catalog lock");
        let failed = catalog
            .failures()
            .into_iter()
            .map(|(kind, count)| (kind.name().to_string(), count))
            .collect();
        let model = library.view().map(|view| {
            let fitted = &view.fitted;
            status::ModelStatus {
                method: fitted.model.method.name().to_string(),
                images: fitted.contents.len() as u64,
                clusters: fitted.model.clustering.n_clusters as u64,
                fitted_at_unix_s: fitted.fitted_at_unix_s,
                age_s: refit::unix_now_s().saturating_sub(fitted.fitted_at_unix_s) as f64,
                duration_s: fitted.duration_s,
                provisional: view.n_provisional() as u64,
            }
        });
        Status {
            roots: activity.roots.clone(),
            files: library.store.n_files() as u64,
            images: catalog.n_images() as u64,
            pending: activity.pending,
            failed,
            scanning: activity.scanning,
            refitting: activity.refitting,
            model,
            changes_since_model: activity.changes_since_model,
            counters: library.counters.values(),
            uptime_s: self.shared.started.elapsed().as_secs_f64(),
        }
    }

    /// The watched root that holds `path`, after making `path` absolute and resolving
    /// `..`; refuses paths outside every root, through links included.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, DaemonError> {
        let outside = || DaemonError::OutsideRoots { path: path.to_path_buf() };
        let absolute = std::path::absolute(path).map_err(|_| outside())?;
        let mut normal = PathBuf::new();
        for part in absolute.components() {
            match part {
                std::path::Component::ParentDir => {
                    normal.pop();
                }
                std::path::Component::CurDir => {}
                other => normal.push(other),
            }
        }
        // A link inside a root may point outside it: judge where the path really is.
        let real = match std::fs::canonicalize(&normal) {
            Ok(real) => real,
            Err(_) => normal.clone(),
        };
        if self.inside_roots(&normal) && self.inside_roots(&real) {
            Ok(normal)
        } else {
            Err(outside())
        }
    }

    /// True when `candidate` is under a watched root, as configured or with its links
    /// resolved.
    fn inside_roots(&self, candidate: &Path) -> bool {
        self.shared.roots.iter().any(|root| {
            let real_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
            candidate.starts_with(root) || candidate.starts_with(real_root)
        })
    }

    /// Looks at `path` (a file or a folder under a root) now. With `wait`, returns once
    /// the daemon has nothing left to do.
    pub async fn ingest(&self, path: &Path, wait: bool) -> Result<(), DaemonError> {
        let path = self.resolve(path)?;
        let (done, finished) = if wait {
            let (sender, receiver) = oneshot::channel();
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        self.send(Command::Ingest { path, done })?;
        if let Some(finished) = finished {
            finished.await.map_err(|_| DaemonError::ShuttingDown)?;
        }
        Ok(())
    }

    /// Starts a refit; with `wait`, returns its outcome.
    pub async fn refit(&self, wait: bool) -> Result<Option<RefitSummary>, DaemonError> {
        if !wait {
            self.send(Command::Refit { done: None })?;
            return Ok(None);
        }
        let (done, finished) = oneshot::channel();
        self.send(Command::Refit { done: Some(done) })?;
        let outcome = finished.await.map_err(|_| DaemonError::ShuttingDown)?;
        outcome.map(Some).map_err(DaemonError::Refit)
    }

    /// Returns once nothing is queued, being read, scanned or refitted.
    pub async fn idle(&self) -> Result<(), DaemonError> {
        let (done, finished) = oneshot::channel();
        self.send(Command::Idle { done })?;
        finished.await.map_err(|_| DaemonError::ShuttingDown)
    }

    fn send(&self, command: Command) -> Result<(), DaemonError> {
        self.commands.send(command).map_err(|_| DaemonError::ShuttingDown)
    }
}
