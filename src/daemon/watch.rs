//! Turns file system notifications under the library's root folders into hints for the daemon.
//!
//! A hint only says where to look: the daemon stats the path itself before it believes
//! anything. What this module guarantees is that the fact that something changed is never
//! dropped silently; when it cannot say precisely what changed, it asks for a rescan of a
//! folder, or of every root.
//!
//! It sits on notify 8's raw inotify watcher (no debouncer: a debouncer merges a create and a
//! rename into one create, and a create then a delete into nothing). Notify's own recursive
//! mode is not used, because its walk stops at the first folder it cannot watch (a `lost+found`
//! owned by root is enough), leaving every folder after it unwatched, and it reports nothing
//! when it fails to watch a new folder for any reason but the watch limit. Instead, each folder
//! gets its own watch, added by this module: at [`Watcher::watch`], when a folder is created or
//! moved in, and on every root again after a kernel queue overflow (during which folder
//! creations may have been lost). A folder that cannot be watched is logged and skipped.
//! Symbolic links below a root are never followed, so a link loop cannot trap the walk; a root
//! that is itself a link is followed.
//!
//! How notify's events become hints (checked against the source of notify 8.2's inotify
//! backend, and by the tests below):
//!
//! | notify 8 event (inotify flag)                  | hint                                     |
//! |------------------------------------------------|------------------------------------------|
//! | `Create(File)` (`IN_CREATE`)                   | `Written`                                |
//! | `Create(Folder)` (`IN_CREATE`, `IN_ISDIR`)     | `Rescan(folder)`, once it is watched     |
//! | `Create(Any or Other)` (not sent by inotify)   | as a folder or a file, by its stat       |
//! | `Modify(Data, Any or Other)` (`IN_MODIFY`)     | `Written`                                |
//! | `Modify(Metadata)` (`IN_ATTRIB`: chmod, touch) | `Touched`; `Rescan` if unwatched folder  |
//! | `Access(Close(Write))` (`IN_CLOSE_WRITE`)      | `Closed`                                 |
//! | any other `Access` (`IN_OPEN`)                 | nothing                                  |
//! | `Name(From)`+`Name(To)`+`Name(Both)`, 1 cookie | `Renamed`; `Rescan(to)` if a folder      |
//! | `Name(From)` alone (moved out; `IN_MOVE_SELF`) | `Removed`                                |
//! | `Name(To)` alone (moved in from outside)       | `Touched`; `Rescan(to)` if a folder      |
//! | `Name(Any or Other)`, `Any`, `Other`           | `Rescan(parent)`; `RescanAll` if no path |
//! | `Remove(_)` (`IN_DELETE`, `IN_DELETE_SELF`)    | `Removed`                                |
//! | flagged `Rescan` (`IN_Q_OVERFLOW`, as `Other`) | `RescanAll`, once roots are re-watched   |
//! | an error naming paths                          | `Rescan` of each (parent of a file)      |
//! | an error naming no path                        | `RescanAll`                              |
//!
//! Notify sends the three rename events back to back, so a `Name(From)` waits a few
//! milliseconds for its other half before it is reported as `Removed`. A hint that would repeat
//! the previous one while that one is still unread is dropped, since it says nothing new.
//!
//! Hints go through a bounded channel so that a burst (a copy of a whole card of photos) cannot
//! grow memory without limit. When the channel is full, the hints that do not fit are folded
//! into rescans of their folders (up to [`MAX_BACKLOG_FOLDERS`], then into one `RescanAll`),
//! delivered as soon as there is room again. The notify callback never waits on that channel:
//! it only hands each event to a thread of this module, which does the translating.
//!
//! What it does not do well yet: an unmounted disk under a root sends no event at all (notify
//! ignores `IN_UNMOUNT`), and events inside a folder renamed a moment earlier may carry the
//! folder's old path; both are repaired only by the rescans above or by the daemon's periodic
//! reconcile. A folder left unwatched (unreadable, or past the inotify watch limit) is only
//! logged.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self as std_mpsc, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::{debug, info, trace, warn};

/// How many folders may wait for a rescan while the hint channel is full before they are
/// replaced by a single [`Hint::RescanAll`].
pub const MAX_BACKLOG_FOLDERS: usize = 1024;

/// How long the first half of a rename waits for its second half. Notify sends both halves
/// one right after the other, so this only covers a read that split them.
const RENAME_PAIR_WAIT: Duration = Duration::from_millis(50);

/// How often hints that did not fit into a full channel are offered again.
const BACKLOG_RETRY: Duration = Duration::from_millis(100);

/// What the daemon should look at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Something at this path was created or written; it may still be open for writing.
    /// The path may name a folder whose attributes changed.
    Written(PathBuf),
    /// A file opened for writing at this path was closed: its content is complete.
    Closed(PathBuf),
    /// Something arrived complete at this path (moved in from outside the roots), or its
    /// attributes changed: no write is under way, so no close will follow.
    Touched(PathBuf),
    /// The path was removed (or renamed away with no known destination). It may be a folder,
    /// or a root itself; a root stays watched until [`Watcher::unwatch`], and notify goes on
    /// reporting events below a root moved away under its old path.
    Removed(PathBuf),
    /// A rename whose both ends are known. For a folder, a [`Hint::Rescan`] of `to` follows.
    Renamed {
        /// Where the file or folder was.
        from: PathBuf,
        /// Where it is now.
        to: PathBuf,
    },
    /// Events may have been lost or are ambiguous: rescan this folder, recursively. The folder
    /// may lie above a root when the root itself changed: rescan only what lies within a root.
    Rescan(PathBuf),
    /// Events were lost everywhere (kernel queue overflow): rescan every root.
    RescanAll,
}

/// Watches root folders and sends [`Hint`]s about changes below them.
///
/// Dropping it stops the watching; hints already sent stay in the channel.
#[derive(Debug)]
pub struct Watcher {
    /// The notify watcher and the paths it watches. Shared with the translating thread, which
    /// adds watches for folders that appear; that thread holds only a weak reference, so that
    /// dropping this stops notify, which in turn ends the thread.
    tree: Arc<Mutex<WatchedTree>>,
}

/// Why watching could not start, or a root could not be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Inotify could not be set up (for example past `fs.inotify.max_user_instances`).
    #[error("cannot start the file watcher")]
    Start(#[source] notify::Error),
    /// The thread that turns notifications into hints could not be started.
    #[error("cannot start the thread that turns file notifications into hints")]
    Thread(#[source] io::Error),
    /// A relative root could not be made absolute.
    #[error("cannot make {} absolute", .path.display())]
    Absolute {
        /// The root as given.
        path: PathBuf,
        /// Why the current directory could not be read.
        #[source]
        source: io::Error,
    },
    /// The root does not exist.
    #[error("cannot watch {}: it does not exist", .path.display())]
    NotFound {
        /// The missing root.
        path: PathBuf,
    },
    /// The kernel refused another inotify watch.
    #[error(
        "cannot watch {}: the inotify watch limit is reached \
         (raise fs.inotify.max_user_watches)",
        .path.display()
    )]
    WatchLimit {
        /// The folder that could not be watched.
        path: PathBuf,
    },
    /// Any other failure to watch a root.
    #[error("cannot watch {}", .path.display())]
    Watch {
        /// The root.
        path: PathBuf,
        /// What notify reported.
        #[source]
        source: notify::Error,
    },
    /// Notify failed to remove a watch for a reason other than it being gone already.
    #[error("cannot stop watching {}", .path.display())]
    Unwatch {
        /// The folder whose watch could not be removed.
        path: PathBuf,
        /// What notify reported.
        #[source]
        source: notify::Error,
    },
}

impl Watcher {
    /// Starts watching nothing; hints go to `sender`.
    ///
    /// The channel is bounded so that a burst of changes cannot exhaust memory; a few thousand
    /// places are plenty. Other senders on the same channel are allowed, but they turn off the
    /// dropping of repeated hints, which needs the newest message in the channel to be ours.
    pub fn new(sender: mpsc::Sender<Hint>) -> Result<Watcher, WatchError> {
        let (notification_sender, notifications) = std_mpsc::channel();
        // Notify follows links only in its recursive mode, which is not used; say it anyway.
        let config = notify::Config::default().with_follow_symlinks(false);
        let notify = notify::RecommendedWatcher::new(notification_sender, config)
            .map_err(WatchError::Start)?;
        let tree = Arc::new(Mutex::new(WatchedTree {
            notify,
            roots: BTreeSet::new(),
            watched: BTreeSet::new(),
        }));

        let translator = Translator::new(Arc::downgrade(&tree), sender);
        thread::Builder::new()
            .name("watch-hints".to_owned())
            .spawn(move || translator.run(notifications))
            .map_err(WatchError::Thread)?;
        Ok(Watcher { tree })
    }

    /// Watches `root` and every folder below it, without following symbolic links.
    ///
    /// This walks the folders under `root`, so it blocks for a while on a large tree: call it
    /// from a blocking thread. A folder below the root that cannot be watched is logged and
    /// skipped. On error, nothing stays watched for this root.
    pub fn watch(&mut self, root: &Path) -> Result<(), WatchError> {
        let root = absolute(root)?;
        let mut tree = lock(&self.tree);
        tree.roots.insert(root.clone());

        match tree.watch_tree(&root) {
            Ok(n_folders) => {
                info!(root = %root.display(), n_folders, "watching root");
                Ok(())
            }
            Err(error) => {
                if let Err(cleanup_error) = tree.unwatch_root(&root) {
                    warn!(root = %root.display(), cause = %cleanup_error, "cleanup failed");
                }
                Err(error)
            }
        }
    }

    /// Stops watching `root`. A root that vanished, or was never watched, is not an error.
    /// Folders below it that also lie below another root stay watched.
    pub fn unwatch(&mut self, root: &Path) -> Result<(), WatchError> {
        let root = absolute(root)?;
        lock(&self.tree).unwatch_root(&root)?;
        info!(root = %root.display(), "stopped watching root");
        Ok(())
    }
}

/// The notify watcher with the roots and the paths it watches.
#[derive(Debug)]
struct WatchedTree {
    /// Inotify behind notify's event loop; every path here is watched on its own.
    notify: notify::RecommendedWatcher,
    /// The roots asked for, to re-watch them after lost events and to keep the folders of
    /// nested roots watched when one of them is unwatched.
    roots: BTreeSet<PathBuf>,
    /// Every path given a watch, to remove them when their root is unwatched. Notify drops
    /// the watch of a folder deleted or moved away by itself; this set follows it from the
    /// `Removed` and `Renamed` hints.
    watched: BTreeSet<PathBuf>,
}

impl WatchedTree {
    /// Watches `top` and the folders below it, returning how many were watched.
    ///
    /// Fails only when `top` itself cannot be watched or the watch limit is reached.
    fn watch_tree(&mut self, top: &Path) -> Result<usize, WatchError> {
        let mut n_folders = 0;
        let mut pending = vec![top.to_path_buf()];

        // Watch a folder before listing it, so that what appears after the listing has an
        // event and what appeared before it is in the listing.
        while let Some(folder) = pending.pop() {
            match self.notify.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    n_folders += 1;
                    pending.extend(subfolders(&folder));
                    self.watched.insert(folder);
                }
                Err(cause) => {
                    let error = watch_error(folder, cause);
                    if error.path() == Some(top) || matches!(error, WatchError::WatchLimit { .. }) {
                        return Err(error);
                    }
                    log_unwatched(&error);
                }
            }
        }
        Ok(n_folders)
    }

    /// Removes the watches below `root` that no other root needs, and forgets the root.
    fn unwatch_root(&mut self, root: &Path) -> Result<(), WatchError> {
        self.roots.remove(root);
        let to_remove: Vec<PathBuf> = paths_below(&self.watched, root)
            .filter(|path| !self.roots.iter().any(|other| path.starts_with(other)))
            .cloned()
            .collect();

        let mut first_error = None;
        for path in to_remove {
            self.watched.remove(&path);
            match self.notify.unwatch(&path) {
                Ok(()) => {}
                // Notify dropped it already: its folder was deleted or moved away.
                Err(cause) if matches!(cause.kind, notify::ErrorKind::WatchNotFound) => {}
                Err(cause) => {
                    warn!(path = %path.display(), cause = %cause, "cannot remove watch");
                    first_error.get_or_insert(WatchError::Unwatch { path, source: cause });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Forgets the watches at and below `path`, which notify has dropped (deleted or moved).
    ///
    /// Not for a root: notify keeps the watches of a root moved away (it sees no
    /// `IN_MOVED_FROM` for it), so they stay known until the root is unwatched.
    fn forget(&mut self, path: &Path) {
        if self.roots.contains(path) {
            return;
        }
        let gone: Vec<PathBuf> = paths_below(&self.watched, path).cloned().collect();
        for path in gone {
            self.watched.remove(&path);
        }
    }

    /// Whether `folder` has a watch.
    fn is_watched(&self, folder: &Path) -> bool {
        self.watched.contains(folder)
    }

    /// Watches every root again, to cover folders whose creation events were lost.
    fn rewatch_roots(&mut self) {
        let roots: Vec<PathBuf> = self.roots.iter().cloned().collect();
        for root in roots {
            if let Err(error) = self.watch_tree(&root) {
                log_unwatched(&error);
            }
        }
    }
}

impl WatchError {
    /// The path the error is about, if any.
    fn path(&self) -> Option<&Path> {
        match self {
            WatchError::Start(_) | WatchError::Thread(_) => None,
            WatchError::Absolute { path, .. }
            | WatchError::NotFound { path }
            | WatchError::WatchLimit { path }
            | WatchError::Watch { path, .. }
            | WatchError::Unwatch { path, .. } => Some(path),
        }
    }
}

/// Turns notify's events into hints, on a thread of its own.
struct Translator {
    /// Where to add watches for folders that appear; gone once the [`Watcher`] is dropped.
    tree: Weak<Mutex<WatchedTree>>,
    /// The hint channel and what did not fit into it yet.
    output: Output,
    /// The first half of a rename, waiting for its second.
    rename: Option<PendingRename>,
}

/// A `Name(From)` waiting for the `Name(To)` and `Name(Both)` with the same cookie.
struct PendingRename {
    from: PathBuf,
    cookie: usize,
    /// Set once the `Name(To)` has arrived; the `Name(Both)` follows it directly.
    to: Option<PathBuf>,
    /// When to give up waiting and report `from` as removed.
    deadline: Instant,
}

/// What an event means, before looking at the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// Nothing changed (a file was opened or read).
    Nothing,
    /// Content or existence changed.
    Written,
    /// Something was created: a folder (to watch and rescan) or not.
    Created,
    /// A folder was created.
    FolderCreated,
    /// Attributes changed: a folder that could not be watched may have become readable.
    AttributesChanged,
    /// A file open for writing was closed.
    Closed,
    /// Something was deleted.
    Removed,
    /// One half of a rename, or the pair (`Both`).
    Rename(RenameMode),
    /// Something changed in an unknown way: rescan the parent folder.
    Unknown,
}

impl Translator {
    fn new(tree: Weak<Mutex<WatchedTree>>, sender: mpsc::Sender<Hint>) -> Translator {
        Translator { tree, output: Output::new(sender), rename: None }
    }

    /// Translates until notify stops (when the [`Watcher`] is dropped).
    fn run(mut self, notifications: std_mpsc::Receiver<notify::Result<Event>>) {
        loop {
            let received = match self.next_deadline() {
                Some(deadline) => {
                    notifications.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                }
                None => notifications.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(notification) => self.handle(notification),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.expire_rename(Instant::now());
            self.output.deliver_backlog();
        }

        self.flush_rename();
        self.output.deliver_backlog();
        debug!("file notifications ended");
    }

    /// When the loop must wake up even without a notification.
    fn next_deadline(&self) -> Option<Instant> {
        let rename = self.rename.as_ref().map(|pending| pending.deadline);
        let backlog = self.output.has_backlog().then(|| Instant::now() + BACKLOG_RETRY);
        rename.into_iter().chain(backlog).min()
    }

    fn handle(&mut self, notification: notify::Result<Event>) {
        let event = match notification {
            Ok(event) => event,
            Err(error) => return self.handle_error(error),
        };
        trace!(kind = ?event.kind, paths = ?event.paths, "file notification");
        if event.need_rescan() {
            warn!("file events were lost (kernel queue overflow): rescanning every root");
            return self.rescan_everything();
        }

        let cookie = event.tracker();
        let meaning = meaning(&event.kind);
        let is_rename_half = matches!(
            meaning,
            Meaning::Rename(RenameMode::From | RenameMode::To | RenameMode::Both)
        );
        if meaning != Meaning::Nothing && !is_rename_half {
            self.flush_rename();
        }
        match meaning {
            // Its two paths are those of the halves already received.
            Meaning::Rename(RenameMode::Both) => return self.rename_both(cookie),
            Meaning::Unknown if event.paths.is_empty() => return self.rescan_everything(),
            _ => {}
        }
        for path in event.paths {
            self.apply(meaning, path, cookie);
        }
    }

    fn apply(&mut self, meaning: Meaning, path: PathBuf, cookie: Option<usize>) {
        match meaning {
            Meaning::Nothing => {}
            Meaning::Written => self.output.send(Hint::Written(path)),
            Meaning::Created if is_folder(&path) => self.rescan_folder(path),
            Meaning::Created => self.output.send(Hint::Written(path)),
            Meaning::FolderCreated => self.rescan_folder(path),
            Meaning::AttributesChanged if self.is_unwatched_folder(&path) => {
                self.rescan_folder(path)
            }
            Meaning::AttributesChanged => self.output.send(Hint::Touched(path)),
            Meaning::Closed => self.output.send(Hint::Closed(path)),
            Meaning::Removed => self.send_removed(path),
            Meaning::Rename(RenameMode::From) => self.rename_from(path, cookie),
            Meaning::Rename(RenameMode::To) => self.rename_to(path, cookie),
            Meaning::Rename(RenameMode::Both) => self.rename_both(cookie),
            Meaning::Rename(_) | Meaning::Unknown => self.rescan_folder(parent(&path)),
        }
    }

    /// An error from notify: its paths, or everything, may have missed events.
    fn handle_error(&mut self, error: notify::Error) {
        if matches!(error.kind, notify::ErrorKind::MaxFilesWatch) {
            warn!(cause = %error, "inotify watch limit reached: raise fs.inotify.max_user_watches");
        } else {
            warn!(cause = %error, "file watcher failed: rescanning");
        }
        self.flush_rename();
        if error.paths.is_empty() {
            return self.rescan_everything();
        }
        for path in error.paths {
            let folder = if is_folder(&path) { path } else { parent(&path) };
            self.rescan_folder(folder);
        }
    }

    fn rename_from(&mut self, from: PathBuf, cookie: Option<usize>) {
        self.flush_rename();
        match cookie {
            Some(cookie) => {
                let deadline = Instant::now() + RENAME_PAIR_WAIT;
                self.rename = Some(PendingRename { from, cookie, to: None, deadline });
            }
            // A watched folder or root moved (`IN_MOVE_SELF`): where to is unknown.
            None => self.send_removed(from),
        }
    }

    fn rename_to(&mut self, to: PathBuf, cookie: Option<usize>) {
        match &mut self.rename {
            Some(pending) if pending.to.is_none() && Some(pending.cookie) == cookie => {
                pending.to = Some(to);
            }
            _ => {
                self.flush_rename();
                self.send_arrived(to);
            }
        }
    }

    fn rename_both(&mut self, cookie: Option<usize>) {
        let is_pair =
            |pending: &PendingRename| pending.to.is_some() && Some(pending.cookie) == cookie;
        match self.rename.take_if(|pending| is_pair(pending)) {
            Some(PendingRename { from, to: Some(to), .. }) => self.send_renamed(from, to),
            // Its halves were reported on their own already.
            _ => trace!(?cookie, "rename pair already reported"),
        }
    }

    /// Reports a rename still waiting for its other half as what is known of it.
    fn flush_rename(&mut self) {
        if let Some(pending) = self.rename.take() {
            self.send_removed(pending.from);
            if let Some(to) = pending.to {
                self.send_arrived(to);
            }
        }
    }

    fn expire_rename(&mut self, now: Instant) {
        if self.rename.as_ref().is_some_and(|pending| pending.deadline <= now) {
            self.flush_rename();
        }
    }

    fn send_removed(&mut self, path: PathBuf) {
        self.with_tree(|tree| tree.forget(&path));
        self.output.send(Hint::Removed(path));
    }

    /// Something was moved in from outside the watched folders.
    fn send_arrived(&mut self, path: PathBuf) {
        if is_folder(&path) {
            self.rescan_folder(path);
        } else {
            self.output.send(Hint::Touched(path));
        }
    }

    fn send_renamed(&mut self, from: PathBuf, to: PathBuf) {
        self.with_tree(|tree| tree.forget(&from));
        let is_folder = is_folder(&to);
        self.output.send(Hint::Renamed { from, to: to.clone() });

        // Notify dropped the watches under the old name; files written inside since the
        // rename may have been reported under the old name, or not at all.
        if is_folder {
            self.rescan_folder(to);
        }
    }

    /// Watches `folder` and what lies below it (again, if it was), then asks for its rescan:
    /// only in that order does the rescan see whatever was written before the watches existed.
    fn rescan_folder(&mut self, folder: PathBuf) {
        match self.with_tree(|tree| tree.watch_tree(&folder)) {
            Some(Err(error)) => log_unwatched(&error),
            Some(Ok(n_folders)) => debug!(folder = %folder.display(), n_folders, "watching"),
            None => {}
        }
        self.output.send(Hint::Rescan(folder));
    }

    fn rescan_everything(&mut self) {
        self.flush_rename();
        self.with_tree(WatchedTree::rewatch_roots);
        self.output.send(Hint::RescanAll);
    }

    fn is_unwatched_folder(&self, path: &Path) -> bool {
        is_folder(path) && self.with_tree(|tree| !tree.is_watched(path)).unwrap_or(false)
    }

    /// Runs `work` on the watched tree, unless the [`Watcher`] is gone.
    fn with_tree<R>(&self, work: impl FnOnce(&mut WatchedTree) -> R) -> Option<R> {
        let tree = self.tree.upgrade()?;
        let mut guard = lock(&tree);
        Some(work(&mut guard))
    }
}

/// The hint channel, and the folders to rescan for the hints that did not fit into it.
struct Output {
    sender: mpsc::Sender<Hint>,
    /// The hint sent last, to drop an identical one while it is still unread.
    last_sent: Option<Hint>,
    backlog: Backlog,
}

/// Hints that did not fit into the channel, folded into rescans.
#[derive(Debug, PartialEq, Eq)]
enum Backlog {
    Empty,
    /// Folders to rescan, none below another.
    Folders(BTreeSet<PathBuf>),
    /// Too many folders: rescan every root.
    Everything,
}

impl Output {
    fn new(sender: mpsc::Sender<Hint>) -> Output {
        Output { sender, last_sent: None, backlog: Backlog::Empty }
    }

    /// Sends `hint`, or folds it into the backlog when the channel is full. Never waits.
    fn send(&mut self, hint: Hint) {
        self.deliver_backlog();
        if self.has_backlog() {
            return self.fold(hint);
        }
        if self.is_unread(&hint) {
            trace!(?hint, "same hint still unread");
            return;
        }

        match self.sender.try_send(hint.clone()) {
            Ok(()) => self.last_sent = Some(hint),
            Err(TrySendError::Full(hint)) => {
                warn!("hint channel full: folding hints into folder rescans");
                self.fold(hint);
            }
            Err(TrySendError::Closed(_)) => trace!("hint receiver gone"),
        }
    }

    fn has_backlog(&self) -> bool {
        self.backlog != Backlog::Empty
    }

    /// Sends as much of the backlog as the channel has room for.
    fn deliver_backlog(&mut self) {
        match std::mem::replace(&mut self.backlog, Backlog::Empty) {
            Backlog::Empty => return,
            Backlog::Everything => {
                if !self.try_deliver(Hint::RescanAll) {
                    self.backlog = Backlog::Everything;
                    return;
                }
            }
            Backlog::Folders(mut folders) => {
                while let Some(folder) = folders.pop_first() {
                    if !self.try_deliver(Hint::Rescan(folder.clone())) {
                        folders.insert(folder);
                        self.backlog = Backlog::Folders(folders);
                        return;
                    }
                }
            }
        }
        info!("hint channel has room again: backlog delivered");
    }

    /// Whether the hint left this side (sent, or its receiver is gone).
    fn try_deliver(&mut self, hint: Hint) -> bool {
        match self.sender.try_send(hint.clone()) {
            Ok(()) => {
                self.last_sent = Some(hint);
                true
            }
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Closed(_)) => true,
        }
    }

    /// Whether `hint` was the last one sent and is still waiting in the channel. With a
    /// single sender, a channel holding anything still holds the last message sent.
    fn is_unread(&self, hint: &Hint) -> bool {
        let sender = &self.sender;
        let single_sender = sender.strong_count() == 1 && sender.weak_count() == 0;
        self.last_sent.as_ref() == Some(hint)
            && single_sender
            && sender.capacity() < sender.max_capacity()
    }

    /// Remembers what `hint` was about as folders to rescan.
    fn fold(&mut self, hint: Hint) {
        let folders = match hint {
            Hint::Written(path)
            | Hint::Closed(path)
            | Hint::Touched(path)
            | Hint::Removed(path) => vec![parent(&path)],
            Hint::Renamed { from, to } => vec![parent(&from), parent(&to)],
            Hint::Rescan(folder) => vec![folder],
            Hint::RescanAll => {
                self.backlog = Backlog::Everything;
                return;
            }
        };

        let mut backlog = match std::mem::replace(&mut self.backlog, Backlog::Everything) {
            Backlog::Everything => return,
            Backlog::Empty => BTreeSet::new(),
            Backlog::Folders(backlog) => backlog,
        };
        for folder in folders {
            add_folder(&mut backlog, folder);
        }
        self.backlog = if backlog.len() > MAX_BACKLOG_FOLDERS {
            warn!(n_folders = backlog.len(), "too many folders waiting: will rescan every root");
            Backlog::Everything
        } else {
            Backlog::Folders(backlog)
        };
    }
}

/// Adds `folder` to a set of folders to rescan recursively, keeping none below another.
fn add_folder(folders: &mut BTreeSet<PathBuf>, folder: PathBuf) {
    if folder.ancestors().any(|ancestor| folders.contains(ancestor)) {
        return;
    }
    folders.retain(|known| !known.starts_with(&folder));
    folders.insert(folder);
}

/// What a notify event means; see the table in the module documentation.
fn meaning(kind: &EventKind) -> Meaning {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Meaning::Closed,
        EventKind::Access(_) => Meaning::Nothing,
        EventKind::Create(CreateKind::File) => Meaning::Written,
        EventKind::Create(CreateKind::Folder) => Meaning::FolderCreated,
        EventKind::Create(CreateKind::Any | CreateKind::Other) => Meaning::Created,
        EventKind::Modify(ModifyKind::Name(mode)) => Meaning::Rename(*mode),
        EventKind::Modify(ModifyKind::Metadata(_)) => Meaning::AttributesChanged,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any | ModifyKind::Other) => {
            Meaning::Written
        }
        EventKind::Remove(_) => Meaning::Removed,
        EventKind::Any | EventKind::Other => Meaning::Unknown,
    }
}

/// The folders directly inside `folder`, not following symbolic links.
fn subfolders(folder: &Path) -> Vec<PathBuf> {
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        // A root that is a file, or a folder deleted since it was watched.
        Err(error) if is_gone(&error) => return Vec::new(),
        Err(error) => {
            warn!(folder = %folder.display(), cause = %error, "cannot list folder");
            return Vec::new();
        }
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.path())
        .collect()
}

fn is_gone(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// The paths of `set` at or below `top`. Paths order by component, so they are contiguous.
fn paths_below<'a>(set: &'a BTreeSet<PathBuf>, top: &'a Path) -> impl Iterator<Item = &'a PathBuf> {
    set.range::<Path, _>((Bound::Included(top), Bound::Unbounded))
        .take_while(move |path| path.starts_with(top))
}

fn watch_error(path: PathBuf, cause: notify::Error) -> WatchError {
    match cause.kind {
        notify::ErrorKind::MaxFilesWatch => WatchError::WatchLimit { path },
        notify::ErrorKind::PathNotFound => WatchError::NotFound { path },
        _ => WatchError::Watch { path, source: cause },
    }
}

fn log_unwatched(error: &WatchError) {
    let folder = error.path().unwrap_or(Path::new("")).display();
    match error {
        // Deleted or moved away since it was seen: its own events say so.
        WatchError::NotFound { .. } => debug!(%folder, "folder gone before it was watched"),
        WatchError::Watch { source, .. } => {
            warn!(%folder, cause = %source, "folder left unwatched")
        }
        _ => warn!(%folder, cause = %error, "folder left unwatched"),
    }
}

fn is_folder(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|metadata| metadata.is_dir())
}

/// The folder holding `path`, or `path` itself when it has none.
fn parent(path: &Path) -> PathBuf {
    path.parent().unwrap_or(path).to_path_buf()
}

fn absolute(path: &Path) -> Result<PathBuf, WatchError> {
    std::path::absolute(path)
        .map_err(|source| WatchError::Absolute { path: path.to_path_buf(), source })
}

/// Locks the tree; a panic elsewhere while holding it leaves it usable, so poisoning is ignored.
fn lock(tree: &Mutex<WatchedTree>) -> MutexGuard<'_, WatchedTree> {
    tree.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write as _;
    use std::os::unix::fs::{symlink, PermissionsExt};

    use notify::event::{Flag, MetadataKind, RemoveKind};
    use tempfile::TempDir;

    use super::*;

    /// How long a test waits for an expected hint before failing.
    const WAIT: Duration = Duration::from_secs(5);

    /// How long one probe file in [`wait_until_watched`] waits for its hint.
    const PROBE_WAIT: Duration = Duration::from_millis(200);

    /// A temporary folder by its canonical path, so that it compares equal to hint paths.
    fn temp_folder() -> (TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("create temp dir");
        let path = fs::canonicalize(dir.path()).expect("canonicalize temp dir");
        (dir, path)
    }

    fn watch(roots: &[&Path]) -> (Watcher, mpsc::Receiver<Hint>) {
        let (sender, hints) = mpsc::channel(1024);
        let mut watcher = Watcher::new(sender).expect("start watcher");
        for root in roots {
            watcher.watch(root).expect("watch root");
        }
        (watcher, hints)
    }

    fn write_file(path: &Path, content: &[u8]) {
        let mut file = File::create(path).expect("create file");
        file.write_all(content).expect("write file");
    }

    /// Collects hints until one satisfies `wanted`, and returns them all, that one last.
    async fn hints_until(
        hints: &mut mpsc::Receiver<Hint>,
        wanted: impl Fn(&Hint) -> bool,
    ) -> Vec<Hint> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, hints.recv()).await {
                Ok(Some(hint)) => {
                    let is_wanted = wanted(&hint);
                    seen.push(hint);
                    if is_wanted {
                        return seen;
                    }
                }
                Ok(None) => panic!("hint channel closed; seen: {seen:?}"),
                Err(_) => panic!("expected hint did not come; seen: {seen:?}"),
            }
        }
    }

    async fn wait_for(hints: &mut mpsc::Receiver<Hint>, hint: Hint) -> Vec<Hint> {
        hints_until(hints, |seen| *seen == hint).await
    }

    /// Writes a file and waits until its writing is reported complete.
    async fn settled_file(hints: &mut mpsc::Receiver<Hint>, path: &Path) {
        write_file(path, b"photo");
        wait_for(hints, Hint::Closed(path.to_path_buf())).await;
    }

    /// Writes probe files into `folder` until one is reported, which shows it is watched.
    ///
    /// Folders made in one go are watched one after the other, each on its own event; until
    /// the deepest one is, what is written there is covered by a rescan instead.
    async fn wait_until_watched(hints: &mut mpsc::Receiver<Hint>, folder: &Path) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let is_probe_closed = |hint: &Hint| match hint {
            Hint::Closed(path) => path.parent() == Some(folder),
            _ => false,
        };
        for attempt in 0.. {
            write_file(&folder.join(format!("probe-{attempt}.jpg")), b"photo");
            let attempt_deadline = deadline.min(tokio::time::Instant::now() + PROBE_WAIT);
            while let Ok(Some(hint)) = tokio::time::timeout_at(attempt_deadline, hints.recv()).await
            {
                if is_probe_closed(&hint) {
                    return;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "{} never watched", folder.display());
        }
    }

    fn mentions(hint: &Hint, path: &Path) -> bool {
        match hint {
            Hint::Written(p)
            | Hint::Closed(p)
            | Hint::Touched(p)
            | Hint::Removed(p)
            | Hint::Rescan(p) => p.starts_with(path),
            Hint::Renamed { from, to } => from.starts_with(path) || to.starts_with(path),
            Hint::RescanAll => false,
        }
    }

    #[tokio::test]
    async fn new_file_is_written_then_closed() {
        let (_dir, root) = temp_folder();
        let (_watcher, mut hints) = watch(&[&root]);
        let photo = root.join("a.jpg");

        write_file(&photo, b"photo");

        let seen = wait_for(&mut hints, Hint::Closed(photo.clone())).await;
        assert!(seen.contains(&Hint::Written(photo)), "{seen:?}");
    }

    #[tokio::test]
    async fn rename_within_root_is_one_renamed_hint() {
        let (_dir, root) = temp_folder();
        let (_watcher, mut hints) = watch(&[&root]);
        let (from, to) = (root.join("a.jpg"), root.join("b.jpg"));
        settled_file(&mut hints, &from).await;

        fs::rename(&from, &to).expect("rename");

        let seen = wait_for(&mut hints, Hint::Renamed { from: from.clone(), to }).await;
        assert!(!seen.contains(&Hint::Removed(from)), "{seen:?}");
    }

    #[tokio::test]
    async fn move_into_subfolder_is_renamed() {
        let (_dir, root) = temp_folder();
        let (_watcher, mut hints) = watch(&[&root]);
        let sub = root.join("sub");
        fs::create_dir(&sub).expect("mkdir");
        wait_for(&mut hints, Hint::Rescan(sub.clone())).await;
        let (from, to) = (root.join("a.jpg"), sub.join("a.jpg"));
        settled_file(&mut hints, &from).await;

        fs::rename(&from, &to).expect("rename");

        wait_for(&mut hints, Hint::Renamed { from, to }).await;
    }

    #[tokio::test]
    async fn move_out_of_tree_is_removed() {
        let (_dir, root) = temp_folder();
        let (_outside_dir, outside) = temp_folder();
        let (_watcher, mut hints) = watch(&[&root]);
        let photo = root.join("a.jpg");
        settled_file(&mut hints, &photo).await;

        fs::rename(&photo, outside.join("a.jpg")).expect("rename");

        wait_for(&mut hints, Hint::Removed(photo)).await;
    }

    #[tokio::test]
    async fn file_moved_in_is_touched() {
        let (_dir, root) = temp_folder();
        let (_outside_dir, outside) = temp_folder();
        let (_watcher, mut hints) = watch(&[&root]);
        write_file(&outside.join("a.jpg"), b"photo");

        fs::rename(outside.join("a.jpg"), root.join("a.jpg")).expect("rename");

        wait_for(&mut hints, Hint::Touched(root.join("a.jpg"))).await;
    }

    #[tokio::test]
    async fn folder_moved_in_is_rescanned_and_watched() {
        let (_dir, root) = temp_folder();
        let (_outside_dir, outside) = temp_folder();
        let (_watcher, mut hints) = watch(&[&root]);
        fs::create_dir_all(outside.join("album/day")).expect("mkdir");
        write_file(&outside.join("album/day/a.jpg"), b"photo");
        let album = root.join("album");

        fs::rename(outside.join("album"), &album).expect("rename");

        wait_for(&mut hints, Hint::Rescan(album.clone())).await;
        settled_file(&mut hints, &album.join("day/b.jpg")).await;
    }

    #[tokio::test]
    async fn folder_renamed_within_root_is_renamed_then_rescanned() {
        let (_dir, root) = temp_folder();
        let (_watcher, mut hints) = watch(&[&root]);
        let (from, to) = (root.join("old"), root.join("new"));
        fs::create_dir_all(from.join("day")).expect("mkdir");
        wait_for(&mut hints, Hint::Rescan(from.clone())).await;

        fs::rename(&from, &to).expect("rename");

        let renamed = Hint::Renamed { from, to: to.clone() };
        let seen = wait_for(&mut hints, Hint::Rescan(to.clone())).await;
        assert!(seen.contains(&renamed), "{seen:?}");
        settled_file(&mut hints, &to.join("day/a.jpg")).await;
    }

    #[tokio::test]
    async fn delete_is_removed() {
        let (_dir, root) = temp_folder();
        let (_watcher, mut hints) = watch(&[&root]);
        let photo = root.join("a.jpg");
        settled_file(&mut hints, &photo).await;

        fs::remove_file(&photo).expect("delete");

        wait_for(&mut hints, Hint::Removed(photo)).await;
    }

    #[tokio::test]
    async fn new_folder_is_watched_before_its_rescan() {
        let (_dir, root) = temp_folder();
        let (_watcher, mut hints) = watch(&[&root]);
        let folder = root.join("new");

        fs::create_dir(&folder).expect("mkdir");
        wait_for(&mut hints, Hint::Rescan(folder.clone())).await;

        settled_file(&mut hints, &folder.join("a.jpg")).await;
    }

    #[tokio::test]
    async fn nested_folders_made_at_once_are_covered() {
        let (_dir, root) = temp_folder();
        let (_watcher, mut hints) = watch(&[&root]);
        let deepest = root.join("a/b/c");

        fs::create_dir_all(&deepest).expect("mkdir -p");
        let early = deepest.join("early.jpg");
        write_file(&early, b"photo");

        // The file's own hint, or a rescan of a new folder holding it, whichever comes first.
        hints_until(&mut hints, |hint| match hint {
            Hint::Rescan(folder) => early.starts_with(folder) && *folder != root,
            hint => *hint == Hint::Closed(early.clone()),
        })
        .await;
        wait_until_watched(&mut hints, &deepest).await;
    }

    #[tokio::test]
    async fn symlink_loop_does_not_trap_the_walk() {
        let (_dir, root) = temp_folder();
        fs::create_dir(root.join("dir")).expect("mkdir");
        symlink(root.join("dir"), root.join("dir/loop")).expect("symlink");

        let (sender, mut hints) = mpsc::channel(1024);
        let (done_sender, done) = std_mpsc::channel();
        let root_for_thread = root.clone();
        thread::spawn(move || {
            let mut watcher = Watcher::new(sender).expect("start watcher");
            let watched = watcher.watch(&root_for_thread);
            let _ = done_sender.send((watcher, watched));
        });
        let (_watcher, watched) = done.recv_timeout(WAIT).expect("watch() did not return");
        watched.expect("watch root");

        // A folder holding a loop that appears later is walked without following it too.
        fs::create_dir(root.join("later")).expect("mkdir");
        symlink(root.join("later"), root.join("later/loop")).expect("symlink");
        wait_for(&mut hints, Hint::Rescan(root.join("later"))).await;
        settled_file(&mut hints, &root.join("dir/a.jpg")).await;
    }

    #[tokio::test]
    async fn unwatch_of_a_deleted_root_is_ok() {
        let (_dir, base) = temp_folder();
        let root = base.join("root");
        fs::create_dir_all(root.join("sub")).expect("mkdir");
        let (mut watcher, mut hints) = watch(&[&root]);

        fs::remove_dir_all(&root).expect("delete root");
        wait_for(&mut hints, Hint::Removed(root.clone())).await;

        watcher.unwatch(&root).expect("unwatch deleted root");
        watcher.unwatch(&base.join("never-watched")).expect("unwatch unknown root");
    }

    #[tokio::test]
    async fn root_moved_away_is_removed_and_unwatch_releases_it() {
        let (_dir, base) = temp_folder();
        let (_other_dir, other) = temp_folder();
        let root = base.join("root");
        fs::create_dir_all(root.join("sub")).expect("mkdir");
        let (mut watcher, mut hints) = watch(&[&root, &other]);

        fs::rename(&root, base.join("moved")).expect("move root");
        wait_for(&mut hints, Hint::Removed(root.clone())).await;
        watcher.unwatch(&root).expect("unwatch moved root");
        write_file(&base.join("moved/sub/a.jpg"), b"photo");
        write_file(&other.join("b.jpg"), b"photo");

        // Notify would report the write under the old path, had the watches stayed.
        let seen = wait_for(&mut hints, Hint::Closed(other.join("b.jpg"))).await;
        assert!(!seen.iter().any(|hint| mentions(hint, &root)), "{seen:?}");
    }

    #[tokio::test]
    async fn watch_of_a_missing_root_names_it() {
        let (_dir, base) = temp_folder();
        let (sender, _hints) = mpsc::channel(8);
        let mut watcher = Watcher::new(sender).expect("start watcher");
        let missing = base.join("missing");

        let error = watcher.watch(&missing).expect_err("missing root");

        assert!(matches!(&error, WatchError::NotFound { path } if *path == missing), "{error}");
        assert!(error.to_string().contains("missing"), "{error}");
    }

    #[tokio::test]
    async fn unwatch_stops_hints_for_that_root_only() {
        let (_dir_a, root_a) = temp_folder();
        let (_dir_b, root_b) = temp_folder();
        fs::create_dir(root_a.join("sub")).expect("mkdir");
        let (mut watcher, mut hints) = watch(&[&root_a, &root_b]);

        watcher.unwatch(&root_a).expect("unwatch");
        write_file(&root_a.join("sub/a.jpg"), b"photo");
        write_file(&root_b.join("b.jpg"), b"photo");

        // One inotify queue keeps order: a hint for root A would come before this one.
        let seen = wait_for(&mut hints, Hint::Closed(root_b.join("b.jpg"))).await;
        assert!(!seen.iter().any(|hint| mentions(hint, &root_a)), "{seen:?}");
    }

    #[tokio::test]
    async fn unwatching_an_outer_root_keeps_an_inner_root() {
        let (_dir, outer) = temp_folder();
        let inner = outer.join("inner");
        fs::create_dir_all(inner.join("sub")).expect("mkdir");
        let (mut watcher, mut hints) = watch(&[&outer, &inner]);

        watcher.unwatch(&outer).expect("unwatch");
        write_file(&outer.join("a.jpg"), b"photo");
        write_file(&inner.join("sub/b.jpg"), b"photo");

        let seen = wait_for(&mut hints, Hint::Closed(inner.join("sub/b.jpg"))).await;
        assert!(!seen.iter().any(|hint| mentions(hint, &outer.join("a.jpg"))), "{seen:?}");
    }

    #[tokio::test]
    async fn unreadable_folder_does_not_stop_the_walk() {
        let (_dir, root) = temp_folder();
        let locked = root.join("locked");
        fs::create_dir_all(locked.join("inner")).expect("mkdir");
        for name in ["a", "m", "z"] {
            fs::create_dir(root.join(name)).expect("mkdir");
        }
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod");

        let (_watcher, mut hints) = watch(&[&root]);
        for name in ["a", "m", "z"] {
            settled_file(&mut hints, &root.join(name).join("photo.jpg")).await;
        }

        // Once readable, it is watched (for a daemon not running as root, through the
        // attribute change).
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).expect("chmod back");
        wait_until_watched(&mut hints, &locked.join("inner")).await;
    }

    #[test]
    fn watch_limit_error_names_the_setting_and_the_folder() {
        let cause = notify::Error::new(notify::ErrorKind::MaxFilesWatch);

        let error = watch_error(PathBuf::from("/photos/2024"), cause);

        let message = error.to_string();
        assert!(message.contains("/photos/2024"), "{message}");
        assert!(message.contains("fs.inotify.max_user_watches"), "{message}");
    }

    fn translator() -> (Translator, mpsc::Receiver<Hint>) {
        let (sender, hints) = mpsc::channel(64);
        (Translator::new(Weak::new(), sender), hints)
    }

    fn drain(hints: &mut mpsc::Receiver<Hint>) -> Vec<Hint> {
        std::iter::from_fn(|| hints.try_recv().ok()).collect()
    }

    fn rename_event(mode: RenameMode, paths: &[&str], cookie: usize) -> notify::Result<Event> {
        let event = Event::new(EventKind::Modify(ModifyKind::Name(mode))).set_tracker(cookie);
        Ok(paths.iter().fold(event, |event, path| event.add_path(PathBuf::from(path))))
    }

    #[test]
    fn event_kinds_have_the_documented_meaning() {
        let cases = [
            (EventKind::Create(CreateKind::File), Meaning::Written),
            (EventKind::Create(CreateKind::Folder), Meaning::FolderCreated),
            (EventKind::Create(CreateKind::Any), Meaning::Created),
            (EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any)), Meaning::Written),
            (EventKind::Modify(ModifyKind::Any), Meaning::Written),
            (
                EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
                Meaning::AttributesChanged,
            ),
            (EventKind::Access(AccessKind::Close(AccessMode::Write)), Meaning::Closed),
            (EventKind::Access(AccessKind::Open(AccessMode::Any)), Meaning::Nothing),
            (EventKind::Access(AccessKind::Close(AccessMode::Read)), Meaning::Nothing),
            (EventKind::Remove(RemoveKind::Folder), Meaning::Removed),
            (
                EventKind::Modify(ModifyKind::Name(RenameMode::Any)),
                Meaning::Rename(RenameMode::Any),
            ),
            (EventKind::Any, Meaning::Unknown),
            (EventKind::Other, Meaning::Unknown),
        ];
        for (kind, expected) in cases {
            assert_eq!(meaning(&kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn queue_overflow_asks_to_rescan_everything() {
        let (mut translator, mut hints) = translator();

        translator.handle(Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan)));

        assert_eq!(drain(&mut hints), [Hint::RescanAll]);
    }

    #[test]
    fn watcher_error_asks_for_rescans() {
        let (mut translator, mut hints) = translator();

        translator.handle(Err(notify::Error::generic("read failed")));
        let missing = PathBuf::from("/nonexistent/album/a.jpg");
        translator.handle(Err(notify::Error::generic("read failed").add_path(missing)));

        let expected = [Hint::RescanAll, Hint::Rescan(PathBuf::from("/nonexistent/album"))];
        assert_eq!(drain(&mut hints), expected);
    }

    #[test]
    fn ambiguous_rename_asks_to_rescan_the_parent() {
        let (mut translator, mut hints) = translator();

        translator.handle(rename_event(RenameMode::Any, &["/r/album/a.jpg"], 0));

        assert_eq!(drain(&mut hints), [Hint::Rescan(PathBuf::from("/r/album"))]);
    }

    #[test]
    fn rename_halves_pair_into_one_hint() {
        let (mut translator, mut hints) = translator();

        translator.handle(rename_event(RenameMode::From, &["/r/a"], 7));
        translator.handle(rename_event(RenameMode::To, &["/r/b"], 7));
        translator.handle(rename_event(RenameMode::Both, &["/r/a", "/r/b"], 7));
        translator.expire_rename(Instant::now() + WAIT);

        let renamed = Hint::Renamed { from: PathBuf::from("/r/a"), to: PathBuf::from("/r/b") };
        assert_eq!(drain(&mut hints), [renamed]);
    }

    #[test]
    fn lone_rename_halves_are_removed_and_written() {
        let (mut translator, mut hints) = translator();

        translator.handle(rename_event(RenameMode::From, &["/r/a"], 7));
        assert_eq!(drain(&mut hints), []);
        translator.expire_rename(Instant::now() + WAIT);
        translator.handle(rename_event(RenameMode::To, &["/r/b"], 8));

        let expected = [Hint::Removed(PathBuf::from("/r/a")), Hint::Touched(PathBuf::from("/r/b"))];
        assert_eq!(drain(&mut hints), expected);
    }

    #[test]
    fn rename_split_by_the_wait_is_reported_once() {
        let (mut translator, mut hints) = translator();

        translator.handle(rename_event(RenameMode::From, &["/r/a"], 7));
        translator.expire_rename(Instant::now() + WAIT);
        translator.handle(rename_event(RenameMode::To, &["/r/b"], 7));
        translator.handle(rename_event(RenameMode::Both, &["/r/a", "/r/b"], 7));

        let expected = [Hint::Removed(PathBuf::from("/r/a")), Hint::Touched(PathBuf::from("/r/b"))];
        assert_eq!(drain(&mut hints), expected);
    }

    #[test]
    fn other_event_reports_a_waiting_rename_half_first() {
        let (mut translator, mut hints) = translator();

        translator.handle(rename_event(RenameMode::From, &["/r/a"], 7));
        let created = Event::new(EventKind::Create(CreateKind::File)).add_path("/r/c".into());
        translator.handle(Ok(created));

        let expected = [Hint::Removed(PathBuf::from("/r/a")), Hint::Written(PathBuf::from("/r/c"))];
        assert_eq!(drain(&mut hints), expected);
    }

    #[test]
    fn full_channel_folds_hints_into_folder_rescans() {
        let (sender, mut hints) = mpsc::channel(2);
        let mut output = Output::new(sender);
        let path = PathBuf::from;

        output.send(Hint::Written(path("/r/a/1.jpg")));
        output.send(Hint::Closed(path("/r/a/1.jpg")));
        output.send(Hint::Written(path("/r/b/2.jpg")));
        output.send(Hint::Removed(path("/r/a/3.jpg")));
        output.send(Hint::Renamed { from: path("/r/c/4.jpg"), to: path("/r/b/x/4.jpg") });
        assert_eq!(drain(&mut hints).len(), 2);

        output.deliver_backlog();
        let mut rescans = drain(&mut hints);
        output.deliver_backlog();
        rescans.extend(drain(&mut hints));

        let expected = ["/r/a", "/r/b", "/r/c"].map(|folder| Hint::Rescan(path(folder)));
        assert_eq!(rescans, expected);
        assert!(!output.has_backlog());
    }

    #[test]
    fn too_many_waiting_folders_become_one_rescan_all() {
        let (sender, mut hints) = mpsc::channel(1);
        let mut output = Output::new(sender);

        for index in 0..=MAX_BACKLOG_FOLDERS + 1 {
            output.send(Hint::Written(PathBuf::from(format!("/r/{index}/a.jpg"))));
        }
        assert_eq!(drain(&mut hints).len(), 1);
        output.deliver_backlog();

        assert_eq!(drain(&mut hints), [Hint::RescanAll]);
        assert!(!output.has_backlog());
    }

    #[test]
    fn repeated_hint_is_dropped_only_while_unread() {
        let (sender, mut hints) = mpsc::channel(8);
        let mut output = Output::new(sender);
        let written = Hint::Written(PathBuf::from("/r/a.jpg"));

        output.send(written.clone());
        output.send(written.clone());
        assert_eq!(drain(&mut hints), std::slice::from_ref(&written));
        output.send(written.clone());

        assert_eq!(drain(&mut hints), [written]);
    }

    #[test]
    fn waiting_folders_keep_none_below_another() {
        let mut folders = BTreeSet::new();

        add_folder(&mut folders, PathBuf::from("/r/a/b"));
        add_folder(&mut folders, PathBuf::from("/r/a b"));
        add_folder(&mut folders, PathBuf::from("/r/a"));
        add_folder(&mut folders, PathBuf::from("/r/a/c"));

        let expected: BTreeSet<PathBuf> = ["/r/a", "/r/a b"].map(PathBuf::from).into();
        assert_eq!(folders, expected);
    }
}
