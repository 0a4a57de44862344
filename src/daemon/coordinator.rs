//! The coordinator: the one task that decides what the daemon does next.
//!
//! It owns the schedule of paths, the set of paths being worked on, the roots' state and
//! the refit's. Work runs on blocking threads in a `JoinSet` and comes back as a [`Done`];
//! applying a `Done` (catalog, view, counters, events) happens here, in order, so that the
//! catalog and the view never disagree about which images exist.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::duplicates::Duplicates;
use super::ingest::{self, Extractor, Outcome};
use super::library::{Catalog, ContentChange, Library, View};
use super::refit::{self, RefitError, RefitParams};
use super::scan::{self, ScanReport};
use super::schedule::Schedule;
use super::status::{Counter, DuplicateOf, Event, RootStatus};
use super::watch::{Hint, Watcher};
use super::{Action, Activity, Command, DaemonConfig, DaemonError, RefitSummary, Shared};
use crate::cancel::CancelToken;
use crate::dedup::quarantine::{Entry, Quarantine, QuarantineError};
use crate::dedup::{self, FileFacts, Match, MatchKind};
use crate::imaging::is_image_path;
use crate::store::{ContentId, Store, StoreError};

/// Hints waiting for the coordinator; past this the watcher folds them into rescans.
const HINT_BUFFER: usize = 8192;

/// How often the roots are checked for having gone or come back.
const ROOT_CHECK: Duration = Duration::from_secs(2);

/// Work that came back from a blocking thread.
enum Done {
    Look { path: PathBuf, result: Result<Looked, StoreError> },
    Move { from: PathBuf, to: PathBuf, result: Result<Vec<Moved>, StoreError> },
    Scan { result: Result<Vec<ScanReport>, StoreError> },
    Refit { result: Box<Result<View, RefitError>>, changes_at_start: u64 },
    Acted { results: Vec<(Act, Result<Entry, QuarantineError>)> },
}

/// One action to take on a duplicate file.
#[derive(Debug, Clone)]
struct Act {
    action: Action,
    /// The file acted on, its content and the watched folder it is under.
    path: PathBuf,
    content: ContentId,
    root: PathBuf,
    /// The suggested keeper of the two, which is never touched.
    keeper: PathBuf,
    kind: MatchKind,
}

type Moved = (PathBuf, PathBuf, Option<ContentId>);

/// What looking at a path did.
enum Looked {
    Outcome(Outcome),
    Forgotten(Vec<(PathBuf, Option<ContentId>)>),
    Scanned(ScanReport),
}

struct Root {
    path: PathBuf,
    available: bool,
}

#[derive(Default)]
struct RefitState {
    running: bool,
    again: bool,
    cancel: CancelToken,
    waiters: Vec<oneshot::Sender<Result<RefitSummary, String>>>,
    /// Set once the first scan is over and the saved model was checked against the store.
    checked_at_start: bool,
    /// The number of images the last failed refit had: no retry until that changes.
    failed_with: Option<usize>,
    /// The number of images of the refit running.
    images: usize,
}

pub(super) struct Coordinator {
    config: Arc<DaemonConfig>,
    shared: Arc<Shared>,
    extractor: Arc<Extractor>,
    refit_params: Arc<RefitParams>,
    commands: mpsc::UnboundedReceiver<Command>,
    hints: mpsc::Receiver<Hint>,
    watcher: Watcher,
    roots: Vec<Root>,
    schedule: Schedule,
    /// Paths being looked at; no second job starts for them until the first is back.
    busy: HashSet<PathBuf>,
    /// Where duplicates are set aside, when an action is configured.
    quarantine: Option<Arc<Quarantine>>,
    /// Busy paths that had another event meanwhile.
    again: HashSet<PathBuf>,
    jobs: JoinSet<Done>,
    n_looks: usize,
    scanning: bool,
    scan_again: bool,
    refit: RefitState,
    changes_since_model: u64,
    idle_waiters: Vec<oneshot::Sender<()>>,
    /// Paths that appeared, and contents whose last path vanished, in the last moments:
    /// the two halves of a move whose rename events were not paired.
    recent: RecentChanges,
    cancel: CancelToken,
    shutting_down: bool,
}

/// How long an appearance and a disappearance of the same content count as one move.
const MOVE_WINDOW: Duration = Duration::from_secs(5);

/// The recent halves of possible moves, by content.
#[derive(Default)]
struct RecentChanges {
    appeared: std::collections::HashMap<ContentId, (PathBuf, Instant)>,
    vanished: std::collections::HashMap<ContentId, (PathBuf, Instant)>,
}

impl RecentChanges {
    fn forget_old(&mut self, now: Instant) {
        let fresh = |(_, at): &mut (PathBuf, Instant)| now.duration_since(*at) < MOVE_WINDOW;
        self.appeared.retain(|_, entry| fresh(entry));
        self.vanished.retain(|_, entry| fresh(entry));
    }
}

impl Coordinator {
    /// Opens the store and the saved model, and starts watching. Blocking.
    pub(super) fn new(
        config: DaemonConfig,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<(Coordinator, Arc<Shared>), DaemonError> {
        let store = Store::open(&config.data_dir.join("store"))?;
        let extractor = Extractor::new(config.limits, config.preprocessing, config.features);
        let catalog = Catalog::load(&store)?;
        let (duplicates, unsigned) = Duplicates::load(config.dups, &store, &catalog.contents())?;
        if !unsigned.is_empty() {
            // A store from an older build: the scan reads those files once more.
            tracing::info!(images = unsigned.len(), "duplicate signatures to compute");
        }
        tracing::info!(
            images = duplicates.len(),
            links = duplicates.n_links(),
            "duplicates loaded"
        );
        let library = Library::new(store, catalog, extractor.key, duplicates);
        let refit_params = RefitParams {
            fit: config.fit.clone(),
            index: config.index,
            feature_key: extractor.key,
            min_images: config.min_images,
        };
        match refit::load(&config.data_dir, &config.index) {
            Ok(Some(view)) => {
                tracing::info!(
                    images = view.fitted.contents.len(),
                    clusters = view.fitted.model.clustering.n_clusters,
                    "saved model loaded"
                );
                library.swap_view(Arc::new(view));
            }
            Ok(None) => tracing::info!("no saved model yet"),
            Err(error) => tracing::warn!(%error, "saved model unusable; it will be refitted"),
        }
        let quarantine = match &config.dup_actions.quarantine {
            Some(folder) if config.dup_actions.any() => {
                let quarantine = Quarantine::open(folder)?;
                tracing::info!(folder = %folder.display(), "duplicates are set aside here");
                Some(Arc::new(quarantine))
            }
            _ => None,
        };
        let (hint_sender, hints) = mpsc::channel(HINT_BUFFER);
        let mut watcher = Watcher::new(hint_sender)?;
        let mut roots = Vec::new();
        for path in &config.roots {
            let available = scan::root_available(path, &library.store);
            if available {
                watcher.watch(path)?;
            } else {
                tracing::warn!(
                    root = %path.display(),
                    "watched folder is missing or empty; its files are kept until it is back"
                );
            }
            roots.push(Root { path: path.clone(), available });
        }
        let extractor = Arc::new(extractor);
        let shared = Arc::new(Shared {
            library,
            extractor: Arc::clone(&extractor),
            activity: Mutex::new(Activity::default()),
            roots: config.roots.clone(),
            started: Instant::now(),
            fit: config.fit.clone(),
        });
        let coordinator = Coordinator {
            schedule: Schedule::new(config.quiet, config.write_timeout),
            config: Arc::new(config),
            shared: Arc::clone(&shared),
            extractor,
            refit_params: Arc::new(refit_params),
            commands,
            hints,
            watcher,
            roots,
            busy: HashSet::new(),
            quarantine,
            again: HashSet::new(),
            jobs: JoinSet::new(),
            n_looks: 0,
            scanning: false,
            scan_again: false,
            refit: RefitState::default(),
            changes_since_model: 0,
            idle_waiters: Vec::new(),
            recent: RecentChanges::default(),
            cancel: CancelToken::new(),
            shutting_down: false,
        };
        coordinator.publish_activity();
        Ok((coordinator, shared))
    }

    fn library(&self) -> &Library {
        &self.shared.library
    }

    fn store(&self) -> &Store {
        &self.shared.library.store
    }

    /// Runs until shut down.
    pub(super) async fn run(mut self) -> Result<(), DaemonError> {
        self.start_scan();
        let mut reconcile = tokio::time::interval(self.config.reconcile_every);
        reconcile.tick().await;
        let mut refit_timer = tokio::time::interval(self.config.refit_every);
        refit_timer.tick().await;
        let mut root_check = tokio::time::interval(ROOT_CHECK);
        loop {
            self.dispatch();
            self.publish_activity();
            self.maybe_refit();
            self.answer_idle_waiters();
            if self.shutting_down && self.jobs.is_empty() {
                break;
            }
            let next_due = self.schedule.next_due();
            tokio::select! {
                Some(done) = self.jobs.join_next() => {
                    match done {
                        Ok(done) => self.apply(done),
                        Err(error) => tracing::error!(%error, "a worker panicked"),
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => self.begin_shutdown(),
                },
                Some(hint) = self.hints.recv() => self.hint(hint),
                _ = sleep_until(next_due), if next_due.is_some() => {}
                _ = reconcile.tick() => self.start_scan(),
                _ = refit_timer.tick() => {
                    if self.changes_since_model > 0 {
                        self.start_refit();
                    }
                }
                _ = root_check.tick() => self.check_roots(),
            }
        }
        for root in &self.roots {
            let _ = self.watcher.unwatch(&root.path);
        }
        let store = self.store().clone();
        tokio::task::spawn_blocking(move || store.flush()).await.expect("flush does not panic")?;
        tracing::info!("store flushed; stopped");
        Ok(())
    }

    fn begin_shutdown(&mut self) {
        if !self.shutting_down {
            self.shutting_down = true;
            self.cancel.cancel();
            self.refit.cancel.cancel();
            for waiter in self.refit.waiters.drain(..) {
                let _ = waiter.send(Err("the daemon is shutting down".into()));
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Ingest { path, done } => {
                self.schedule.at(path, None, Instant::now());
                if let Some(done) = done {
                    self.idle_waiters.push(done);
                }
            }
            Command::Refit { done } => {
                if let Some(done) = done {
                    self.refit.waiters.push(done);
                }
                self.start_refit();
            }
            Command::Idle { done } => self.idle_waiters.push(done),
            Command::Shutdown => self.begin_shutdown(),
        }
    }

    fn hint(&mut self, hint: Hint) {
        let now = Instant::now();
        tracing::trace!(?hint, "hint");
        match hint {
            // A file that cannot be an image under its name (a download's `.part`, an
            // editor's temporary) is never read: waiting for its close would only hold it
            // as pending, for the whole write timeout if that close is lost in an overflow.
            // If it is renamed to an image name, the rename brings it in.
            Hint::Written(path) | Hint::Closed(path) if !is_image_path(&path) => {
                tracing::trace!(path = %path.display(), "not an image name; ignored");
            }
            Hint::Written(path) => self.schedule.event(path, true, now),
            Hint::Closed(path) => self.schedule.closed(path, now),
            Hint::Touched(path) | Hint::Removed(path) => self.schedule.event(path, false, now),
            Hint::Renamed { from, to } => self.start_move(from, to),
            Hint::Rescan(folder) if self.root_of(&folder).is_none() => {
                // A folder above roots (a root itself was moved or replaced): look at them.
                let roots: Vec<PathBuf> = self
                    .roots
                    .iter()
                    .filter(|root| root.path.starts_with(&folder))
                    .map(|root| root.path.clone())
                    .collect();
                for root in roots {
                    self.schedule.event(root, false, now);
                }
            }
            Hint::Rescan(folder) => self.schedule.event(folder, false, now),
            Hint::RescanAll => {
                tracing::info!("events were lost; scanning every root");
                self.start_scan();
            }
        }
    }

    /// The root that holds `path`.
    fn root_of(&self, path: &Path) -> Option<&Root> {
        self.roots
            .iter()
            .filter(|root| path.starts_with(&root.path))
            .max_by_key(|root| root.path.components().count())
    }

    /// Starts jobs for due paths while workers are free.
    fn dispatch(&mut self) {
        if self.shutting_down {
            return;
        }
        let now = Instant::now();
        while self.n_looks < self.config.workers {
            let Some(path) = self.schedule.pop_due(now) else { break };
            if self.busy.contains(&path) {
                self.again.insert(path);
                continue;
            }
            let Some(root) = self.root_of(&path) else {
                tracing::debug!(path = %path.display(), "not under a watched root; ignored");
                continue;
            };
            if !root.available {
                continue;
            }
            let root = root.path.clone();
            self.busy.insert(path.clone());
            self.n_looks += 1;
            let store = self.store().clone();
            let extractor = Arc::clone(&self.extractor);
            let (follow, quiet) = (self.config.follow_symlinks, self.config.quiet);
            let cancel = self.cancel.clone();
            self.jobs.spawn_blocking(move || {
                let result = look(&path, &root, &store, &extractor, follow, quiet, &cancel);
                Done::Look { path, result }
            });
        }
    }

    fn start_move(&mut self, from: PathBuf, to: PathBuf) {
        let now = Instant::now();
        let inside = |path: &Path| self.root_of(path).is_some_and(|root| root.available);
        if !inside(&from) || !inside(&to) || self.busy.contains(&from) || self.busy.contains(&to) {
            // Not a move within the roots, or racing other work: look at both ends.
            self.schedule.event(from, false, now);
            self.schedule.event(to, false, now);
            return;
        }
        self.busy.insert(from.clone());
        self.busy.insert(to.clone());
        let store = self.store().clone();
        self.jobs.spawn_blocking(move || {
            let result = ingest::move_records(&from, &to, &store);
            Done::Move { from, to, result }
        });
    }

    fn start_scan(&mut self) {
        if self.scanning {
            self.scan_again = true;
            return;
        }
        if self.shutting_down {
            return;
        }
        self.scanning = true;
        let roots: Vec<PathBuf> = self.roots.iter().map(|root| root.path.clone()).collect();
        tracing::info!(roots = roots.len(), "scan started");
        let store = self.store().clone();
        let follow = self.config.follow_symlinks;
        let cancel = self.cancel.clone();
        self.jobs.spawn_blocking(move || {
            let result =
                roots.iter().map(|root| scan::scan(root, root, &store, follow, &cancel)).collect();
            Done::Scan { result }
        });
    }

    fn apply(&mut self, done: Done) {
        match done {
            Done::Look { path, result } => {
                self.n_looks -= 1;
                self.busy.remove(&path);
                if self.again.remove(&path) {
                    self.schedule.event(path.clone(), false, Instant::now());
                }
                match result {
                    Ok(looked) => self.apply_look(path, looked),
                    Err(error) => tracing::error!(path = %path.display(), %error, "store error"),
                }
            }
            Done::Move { from, to, result } => {
                self.busy.remove(&from);
                self.busy.remove(&to);
                match result {
                    Ok(moved) => self.apply_moves(moved),
                    Err(error) => tracing::error!(from = %from.display(), %error, "store error"),
                }
                // Whatever the records did not cover is looked at normally.
                let now = Instant::now();
                self.schedule.at(from, None, now);
                self.schedule.at(to, None, now);
            }
            Done::Scan { result } => {
                self.scanning = false;
                match result {
                    Ok(reports) => {
                        for report in reports {
                            self.apply_scan(report);
                        }
                    }
                    Err(error) => tracing::error!(%error, "scan failed"),
                }
                if self.scan_again {
                    self.scan_again = false;
                    self.start_scan();
                }
            }
            Done::Refit { result, changes_at_start } => {
                self.finish_refit(*result, changes_at_start)
            }
            Done::Acted { results } => self.finish_actions(results),
        }
    }

    fn apply_look(&mut self, path: PathBuf, looked: Looked) {
        let counters = &self.shared.library.counters;
        match looked {
            Looked::Outcome(outcome) => {
                counters.add(Counter::FilesSeen, 1);
                self.apply_outcome(path, outcome);
            }
            Looked::Forgotten(forgotten) => self.apply_forgotten(forgotten),
            Looked::Scanned(report) => self.apply_scan(report),
        }
    }

    fn apply_outcome(&mut self, path: PathBuf, outcome: Outcome) {
        let shared = Arc::clone(&self.shared);
        let counters = &shared.library.counters;
        match outcome {
            Outcome::Indexed { content, decoded, previous } => {
                counters.add(if decoded { Counter::Decoded } else { Counter::KnownContent }, 1);
                tracing::debug!(path = %path.display(), %content, decoded, "indexed");
                let change = self.catalog_write().index(path.clone(), content);
                self.apply_change(change);
                let matches = self.hold_for_duplicates(content);
                let now = Instant::now();
                self.recent.forget_old(now);
                if previous.is_none() {
                    // The other half of a move whose events were not paired?
                    if let Some((from, _)) = self.recent.vanished.remove(&content) {
                        counters.add(Counter::Moved, 1);
                        self.library().publish(Event::Moved { from, to: path });
                        return;
                    }
                    self.recent.appeared.insert(content, (path.clone(), now));
                }
                let event = match previous {
                    None => Some(Event::Added { path: path.clone(), content, decoded }),
                    Some(old) if old != content => {
                        Some(Event::Changed { path: path.clone(), content, decoded })
                    }
                    Some(_) => None,
                };
                if let Some(event) = event {
                    // First that the path holds an image, then what that image duplicates.
                    self.library().publish(event);
                    self.report_duplicates(&path, content, matches);
                }
            }
            Outcome::Failed { kind, reason, .. } => {
                counters.add(Counter::Failed, 1);
                tracing::warn!(path = %path.display(), cause = %reason, "cannot index");
                let change = self.catalog_write().fail(path.clone(), kind);
                self.apply_change(change);
                self.library().publish(Event::Failed { path, failure: kind, reason });
            }
            Outcome::Unchanged => counters.add(Counter::Unchanged, 1),
            Outcome::Unsettled => {
                tracing::debug!(path = %path.display(), "still changing; later");
                self.schedule.event(path, false, Instant::now());
            }
            Outcome::Vanished | Outcome::Ignored => {}
        }
    }

    fn apply_forgotten(&mut self, forgotten: Vec<(PathBuf, Option<ContentId>)>) {
        let now = Instant::now();
        self.recent.forget_old(now);
        for (path, content) in forgotten {
            tracing::debug!(path = %path.display(), "forgotten");
            let change = self.catalog_write().forget(&path);
            self.apply_change(change);
            let counters = &self.shared.library.counters;
            let Some(content) = content else {
                counters.add(Counter::Removed, 1);
                self.library().publish(Event::Removed { path });
                continue;
            };
            // The content appeared elsewhere moments ago: a move seen as two halves.
            match self.recent.appeared.remove(&content) {
                Some((to, _)) if to != path && change.removed.is_none() => {
                    counters.add(Counter::Moved, 1);
                    self.library().publish(Event::Moved { from: path, to });
                }
                _ => {
                    if change.removed.is_some() {
                        self.recent.vanished.insert(content, (path.clone(), now));
                    }
                    counters.add(Counter::Removed, 1);
                    self.library().publish(Event::Removed { path });
                }
            }
        }
    }

    fn apply_moves(&mut self, moved: Vec<Moved>) {
        for (from, to, _) in moved {
            self.shared.library.counters.add(Counter::Moved, 1);
            tracing::debug!(from = %from.display(), to = %to.display(), "moved");
            self.catalog_write().rename(&from, to.clone());
            self.library().publish(Event::Moved { from, to });
        }
    }

    fn apply_scan(&mut self, report: ScanReport) {
        let now = Instant::now();
        let counters = &self.shared.library.counters;
        counters.add(Counter::FilesSeen, report.unchanged);
        counters.add(Counter::Unchanged, report.unchanged);
        for (path, cause) in &report.unreadable {
            tracing::warn!(path = %path.display(), %cause, "cannot list");
        }
        for root in &report.unavailable {
            self.set_root_available(root, false);
        }
        let (files, queued, forgotten) =
            (report.files, report.queue.len() as u64, report.forgotten.len() as u64);
        for path in report.queue {
            self.schedule.at(path, None, now);
        }
        self.apply_forgotten(report.forgotten);
        tracing::info!(files, queued, forgotten, "scan finished");
        self.library().publish(Event::ScanFinished { files, queued, forgotten });
    }

    /// Keeps the view in step with a change in the set of distinct contents.
    fn apply_change(&mut self, change: ContentChange) {
        if let Some(content) = change.added {
            self.changes_since_model += 1;
            self.add_to_view(content);
        }
        if let Some(content) = change.removed {
            self.changes_since_model += 1;
            self.library().duplicates.write().expect("duplicates lock").remove(content);
        }
    }

    /// Holds `content` in the duplicate index if it is not there yet (a new content, or
    /// one whose signature was just computed), and returns what it matched then.
    fn hold_for_duplicates(&self, content: ContentId) -> Vec<Match<ContentId>> {
        let library = self.library();
        if library.duplicates.read().expect("duplicates lock").holds(content) {
            return Vec::new();
        }
        match library.store.signature(&content) {
            Ok(Some(signature)) => {
                library.duplicates.write().expect("duplicates lock").add(content, &signature)
            }
            Ok(None) => {
                tracing::warn!(%content, "indexed without a duplicate signature");
                Vec::new()
            }
            Err(error) => {
                tracing::error!(%content, %error, "store error");
                Vec::new()
            }
        }
    }

    /// Logs and publishes what a path that now holds `content` duplicates: the other paths
    /// of the same bytes, and the contents it matched when it was first held.
    fn report_duplicates(
        &mut self,
        path: &Path,
        content: ContentId,
        matches: Vec<Match<ContentId>>,
    ) {
        let library = self.library();
        let catalog = library.catalog.read().expect("catalog lock");
        let mut found = Vec::new();
        let copies: Vec<PathBuf> =
            catalog.paths(&content).into_iter().filter(|other| other != path).collect();
        if !copies.is_empty() {
            found.push(DuplicateOf { content, paths: copies, kind: MatchKind::Exact, distance: 0 });
        }
        for matched in matches {
            let paths = catalog.paths(&matched.key);
            if !paths.is_empty() {
                let (kind, distance) = (matched.kind, matched.distance);
                found.push(DuplicateOf { content: matched.key, paths, kind, distance });
            }
        }
        drop(catalog);
        let Some(strongest) = found.first() else { return };
        self.shared.library.counters.add(Counter::DuplicatesFound, 1);
        tracing::info!(
            path = %path.display(),
            kind = strongest.kind.name(),
            distance = strongest.distance,
            of = %strongest.paths[0].display(),
            matches = found.len(),
            "duplicate arrived"
        );
        library.publish(Event::Duplicate { path: path.to_path_buf(), matches: found.clone() });
        let acts = self.plan_actions(path, content, &found);
        self.start_actions(acts);
    }

    /// What the configured actions do about an arriving file and the files it matches
    /// (those whose kind has an action other than `report`): when the best of those is a
    /// better copy than the arriving file, the arriving file is acted on, by that match's
    /// action; otherwise each of them is, the arriving file being their keeper. Copies
    /// already in the library are never acted on between themselves.
    fn plan_actions(&self, path: &Path, content: ContentId, found: &[DuplicateOf]) -> Vec<Act> {
        if self.quarantine.is_none() {
            return Vec::new();
        }
        let library = self.library();
        let facts = |path: &Path, content: &ContentId| match library.file_facts(path, content) {
            Ok(facts) => Some(facts),
            Err(error) => {
                let shown = path.display();
                tracing::warn!(path = %shown, %error, "no action: cannot read its records");
                None
            }
        };
        let Some(arriving) = facts(path, &content) else { return Vec::new() };
        // The matched files whose kind has an action.
        let mut matched: Vec<(FileFacts, ContentId, MatchKind, Action)> = Vec::new();
        for found in found {
            let action = self.config.dup_actions.of(found.kind);
            if action == Action::Report {
                continue;
            }
            for other in &found.paths {
                if let Some(other) = facts(other, &found.content) {
                    matched.push((other, found.content, found.kind, action));
                }
            }
        }
        let act = |target: &FileFacts, content, keeper: &Path, kind, action| {
            let root = self.root_of(&target.path)?.path.clone();
            let (path, keeper) = (target.path.clone(), keeper.to_path_buf());
            Some(Act { action, path, content, root, keeper, kind })
        };
        let best = matched.iter().min_by(|a, b| dedup::keeper::compare(&a.0, &b.0));
        match best {
            None => Vec::new(),
            // A copy the library has is the better one: the arriving file is set aside.
            Some((keeper, _, kind, action))
                if dedup::keeper::compare(keeper, &arriving) == std::cmp::Ordering::Less =>
            {
                act(&arriving, content, &keeper.path, *kind, *action).into_iter().collect()
            }
            Some(_) => matched
                .iter()
                .filter_map(|(other, other_content, kind, action)| {
                    act(other, *other_content, path, *kind, *action)
                })
                .collect(),
        }
    }

    /// Runs actions on a blocking thread; their paths are busy until they are done.
    fn start_actions(&mut self, acts: Vec<Act>) {
        let Some(quarantine) = self.quarantine.clone() else { return };
        let acts: Vec<Act> =
            acts.into_iter().filter(|act| !self.busy.contains(&act.path)).collect();
        if acts.is_empty() {
            return;
        }
        for act in &acts {
            self.busy.insert(act.path.clone());
        }
        self.jobs.spawn_blocking(move || {
            let results = acts
                .into_iter()
                .map(|act| {
                    let reason = format!("{} of {}", act.kind.name(), act.keeper.display());
                    let expected = act.content.as_bytes();
                    let result = match act.action {
                        Action::Move => quarantine.move_in(&act.root, &act.path, expected, &reason),
                        Action::Hardlink => {
                            quarantine.hardlink(&act.keeper, &act.path, expected, &reason)
                        }
                        Action::Report => unreachable!("report is never planned"),
                    };
                    (act, result)
                })
                .collect();
            Done::Acted { results }
        });
    }

    fn finish_actions(&mut self, results: Vec<(Act, Result<Entry, QuarantineError>)>) {
        for (act, result) in results {
            self.busy.remove(&act.path);
            match result {
                Ok(entry) => {
                    self.shared.library.counters.add(Counter::DuplicatesActed, 1);
                    tracing::info!(
                        path = %act.path.display(),
                        action = act.action.name(),
                        kind = act.kind.name(),
                        keeper = %act.keeper.display(),
                        to = %entry.target.display(),
                        "duplicate set aside"
                    );
                }
                Err(error) => tracing::warn!(
                    path = %act.path.display(),
                    action = act.action.name(),
                    %error,
                    "duplicate left in place"
                ),
            }
            // Whatever happened, the path is looked at again.
            self.schedule.at(act.path, None, Instant::now());
        }
    }

    /// Places a new content in the view in use until the next refit.
    fn add_to_view(&self, content: ContentId) {
        let Some(view) = self.library().view() else { return };
        let library = self.library();
        let added = tokio::task::block_in_place(|| {
            let vector = library.vector(&content)?;
            view.add(content, &vector, &library.catalog)
        });
        if let Err(error) = added {
            tracing::warn!(%content, %error, "cannot place the new image in the index");
        }
    }

    fn catalog_write(&self) -> std::sync::RwLockWriteGuard<'_, Catalog> {
        self.shared.library.catalog.write().expect("catalog lock")
    }

    fn check_roots(&mut self) {
        for idx in 0..self.roots.len() {
            let path = self.roots[idx].path.clone();
            let available = scan::root_available(&path, self.store());
            self.set_root_available(&path, available);
        }
    }

    fn set_root_available(&mut self, path: &Path, available: bool) {
        let Some(idx) = self.roots.iter().position(|root| root.path == path) else { return };
        if self.roots[idx].available == available {
            return;
        }
        self.roots[idx].available = available;
        let path = path.to_path_buf();
        if available {
            tracing::info!(root = %path.display(), "watched folder is back; scanning it");
            let watched = tokio::task::block_in_place(|| self.watcher.watch(&path));
            if let Err(error) = watched {
                tracing::warn!(root = %path.display(), %error, "cannot watch");
            }
            self.schedule.at(path.clone(), None, Instant::now());
            self.library().publish(Event::RootRestored { path });
        } else {
            tracing::warn!(
                root = %path.display(),
                "watched folder is missing or empty; its files are kept until it is back"
            );
            let _ = self.watcher.unwatch(&path);
            self.library().publish(Event::RootUnavailable { path });
        }
    }

    /// Starts the refits that are due: the first check against the saved model, and any
    /// refit owed to many changes.
    fn maybe_refit(&mut self) {
        let quiet = self.schedule.is_empty() && self.busy.is_empty() && !self.scanning;
        if !self.refit.checked_at_start && quiet {
            self.refit.checked_at_start = true;
            let contents = self.shared.library.catalog.read().expect("catalog lock").contents();
            let fingerprint = self.refit_params.fingerprint(&contents);
            match self.library().view() {
                Some(view) if view.fitted.fingerprint == fingerprint => {
                    tracing::info!("the saved model matches the library; no refit needed");
                }
                Some(view) => {
                    let fitted: HashSet<&ContentId> = view.fitted.contents.iter().collect();
                    let live: HashSet<&ContentId> = contents.iter().collect();
                    let changes = fitted.symmetric_difference(&live).count().max(1) as u64;
                    self.changes_since_model = changes;
                    tracing::info!(changes, "the library changed since the saved model");
                    self.start_refit();
                }
                None => {
                    self.changes_since_model = contents.len() as u64;
                    if contents.len() >= self.config.min_images {
                        self.start_refit();
                    }
                }
            }
        }
        if !self.refit.checked_at_start || self.refit.running {
            return;
        }
        if self.changes_since_model >= self.config.refit_after_changes {
            self.start_refit();
            return;
        }
        // The first model comes as soon as there are enough images, not at the next tick.
        let images = self.shared.library.catalog.read().expect("catalog lock").n_images();
        let first = self.library().view().is_none() && images >= self.config.min_images;
        if first && quiet && self.refit.failed_with != Some(images) {
            self.start_refit();
        }
    }

    fn start_refit(&mut self) {
        if self.shutting_down {
            return;
        }
        if self.refit.running {
            self.refit.again = true;
            return;
        }
        let contents = self.shared.library.catalog.read().expect("catalog lock").contents();
        self.refit.running = true;
        self.refit.images = contents.len();
        self.refit.cancel = CancelToken::new();
        let images = contents.len() as u64;
        tracing::info!(images, "refit started");
        self.library().publish(Event::RefitStarted { images });
        let changes_at_start = self.changes_since_model;
        let store = self.store().clone();
        let params = Arc::clone(&self.refit_params);
        let data_dir = self.config.data_dir.clone();
        let cancel = self.refit.cancel.clone();
        self.jobs.spawn_blocking(move || {
            let result = refit::refit(contents, &store, &params, &data_dir, &cancel);
            Done::Refit { result: Box::new(result), changes_at_start }
        });
    }

    fn finish_refit(&mut self, result: Result<View, RefitError>, changes_at_start: u64) {
        self.refit.running = false;
        self.refit.failed_with = result.is_err().then_some(self.refit.images);
        let outcome = match result {
            Ok(view) => {
                let view = Arc::new(view);
                self.catch_up(&view);
                let fitted = &view.fitted;
                let summary = RefitSummary {
                    images: fitted.contents.len() as u64,
                    clusters: fitted.model.clustering.n_clusters as u64,
                    duration_s: fitted.duration_s,
                };
                self.library().swap_view(Arc::clone(&view));
                self.changes_since_model =
                    self.changes_since_model.saturating_sub(changes_at_start);
                self.shared.library.counters.add(Counter::Refits, 1);
                tracing::info!(
                    images = summary.images,
                    k = summary.clusters,
                    duration_s = format!("{:.2}", summary.duration_s),
                    "refit finished"
                );
                self.library().publish(Event::RefitFinished {
                    images: summary.images,
                    clusters: summary.clusters,
                    duration_s: summary.duration_s,
                });
                Ok(summary)
            }
            Err(RefitError::TooFewImages { n_images, min_images }) => {
                tracing::info!(n_images, min_images, "too few images for a model yet");
                Err(format!("{n_images} images is too few to fit a model (at least {min_images})"))
            }
            Err(RefitError::Model(crate::model::ModelError::Cancelled)) => {
                Err("the refit was cancelled".into())
            }
            Err(error) => {
                tracing::warn!(%error, "refit failed; the previous model stays in use");
                self.library().publish(Event::RefitFailed { reason: error.to_string() });
                Err(error.to_string())
            }
        };
        // Whoever waited for this refit reads the status next: bring it up to date first.
        self.publish_activity();
        for waiter in self.refit.waiters.drain(..) {
            let _ = waiter.send(outcome.clone());
        }
        if self.refit.again {
            self.refit.again = false;
            self.start_refit();
        }
    }

    /// Adds to a new view the images that arrived while it was being fitted.
    fn catch_up(&self, view: &View) {
        let library = self.library();
        let contents = library.catalog.read().expect("catalog lock").contents();
        let missing: Vec<ContentId> =
            contents.into_iter().filter(|content| !view.contains(content)).collect();
        if missing.is_empty() {
            return;
        }
        tokio::task::block_in_place(|| {
            for content in missing {
                let added = library
                    .vector(&content)
                    .and_then(|vector| view.add(content, &vector, &library.catalog));
                if let Err(error) = added {
                    tracing::warn!(%content, %error, "cannot place the new image in the index");
                }
            }
        });
    }

    fn is_idle(&self) -> bool {
        self.schedule.is_empty() && self.jobs.is_empty() && !self.scanning
    }

    fn answer_idle_waiters(&mut self) {
        if self.is_idle() || self.shutting_down {
            for waiter in self.idle_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn publish_activity(&self) {
        let mut activity = self.shared.activity.lock().expect("activity lock");
        *activity = Activity {
            pending: (self.schedule.len() + self.n_looks) as u64,
            scanning: self.scanning,
            refitting: self.refit.running,
            changes_since_model: self.changes_since_model,
            roots: self
                .roots
                .iter()
                .map(|root| RootStatus { path: root.path.clone(), available: root.available })
                .collect(),
        };
    }
}

/// Looks at one path on a worker thread: a file is ingested, a folder scanned, a path that
/// is gone forgotten (with everything under it).
fn look(
    path: &Path,
    root: &Path,
    store: &Store,
    extractor: &Extractor,
    follow_symlinks: bool,
    quiet: Duration,
    cancel: &CancelToken,
) -> Result<Looked, StoreError> {
    match ingest::ingest(path, store, extractor, follow_symlinks, quiet)? {
        Outcome::Vanished => Ok(Looked::Forgotten(scan::forget(path, root, store)?)),
        Outcome::Ignored if path.is_dir() => {
            Ok(Looked::Scanned(scan::scan(root, path, store, follow_symlinks, cancel)?))
        }
        outcome => Ok(Looked::Outcome(outcome)),
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due.into()).await;
    }
}
