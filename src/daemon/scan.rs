//! Reconcile: walk a folder, compare it with the store, and say what needs work.
//!
//! Files whose size and modification time match their record are left alone. New and
//! changed files are returned for the queue. Records of files that are gone are forgotten,
//! except under a root that is missing or empty while the store knew files there: that is
//! an unmounted disk, not a mass deletion, and its records are kept.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::ingest::{is_complete, stamp};
use crate::cancel::CancelToken;
use crate::imaging::is_image_path;
use crate::store::{ContentId, FileRecord, FileState, Store, StoreError};

/// What a walk found.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Image files seen.
    pub files: u64,
    /// Files that are new or changed since their record, to be read.
    pub queue: Vec<PathBuf>,
    /// Files whose record still matched.
    pub unchanged: u64,
    /// Records dropped because their file is gone, with the content they had.
    pub forgotten: Vec<(PathBuf, Option<ContentId>)>,
    /// Roots found missing or empty while the store knew files under them.
    pub unavailable: Vec<PathBuf>,
    /// Entries that could not be listed, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// True when `root` is a folder that can be trusted to show what is on it: it exists,
/// and it is not empty while the store knows files under it (an unmounted disk's mount
/// point is an empty folder).
pub fn root_available(root: &Path, store: &Store) -> bool {
    match std::fs::read_dir(root) {
        Ok(mut entries) => entries.next().is_some() || store.files_under(root).next().is_none(),
        Err(_) => false,
    }
}

/// Walks `folder` (a root or a folder under `root`) and reconciles it with the store.
pub fn scan(
    root: &Path,
    folder: &Path,
    store: &Store,
    follow_symlinks: bool,
    cancel: &CancelToken,
) -> Result<ScanReport, StoreError> {
    let mut report = ScanReport::default();
    let mut seen = HashSet::new();
    if !root_available(root, store) {
        report.unavailable.push(root.to_path_buf());
        return Ok(report);
    }
    let walk = walkdir::WalkDir::new(folder).follow_links(follow_symlinks);
    for entry in walk {
        if cancel.is_cancelled() {
            // Stopped half-way: what was not seen is not known to be gone.
            return Ok(report);
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                let path = error.path().unwrap_or(folder).to_path_buf();
                report.unreadable.push((path, error.to_string()));
                continue;
            }
        };
        if !entry.file_type().is_file() || !is_image_path(entry.path()) {
            continue;
        }
        let Ok(metadata) = entry.metadata() else { continue };
        report.files += 1;
        let (size_bytes, modified_ns) = stamp(&metadata);
        match store.file(entry.path())? {
            Some(record) if record.matches(size_bytes, modified_ns) => {
                if is_complete(&record, store)? {
                    report.unchanged += 1;
                } else {
                    report.queue.push(entry.path().to_path_buf());
                }
            }
            Some(_) => report.queue.push(entry.path().to_path_buf()),
            None => {
                let pending =
                    FileRecord { size_bytes: 0, modified_ns: 0, state: FileState::Pending };
                store.put_file(entry.path(), &pending)?;
                report.queue.push(entry.path().to_path_buf());
            }
        }
        seen.insert(entry.into_path());
    }
    if !root_available(root, store) {
        // The root went away during the walk: what was not seen may be on that disk.
        report.unavailable.push(root.to_path_buf());
        return Ok(report);
    }
    let mut gone = Vec::new();
    if folder != root && !seen.contains(folder) {
        if let Some(record) = store.file(folder)? {
            gone.push((folder.to_path_buf(), record));
        }
    }
    for entry in store.files_under(folder) {
        let (path, record) = entry?;
        if !seen.contains(&path) {
            gone.push((path, record));
        }
    }
    for (path, record) in gone {
        // Created after the walk passed its folder: keep it.
        if std::fs::symlink_metadata(&path).is_ok() {
            continue;
        }
        store.remove_file(&path)?;
        report.forgotten.push((path, record.content()));
    }
    Ok(report)
}

/// Forgets `path` and every record under it, unless it exists again or its root is
/// unavailable. Returns what was forgotten.
pub fn forget(
    path: &Path,
    root: &Path,
    store: &Store,
) -> Result<Vec<(PathBuf, Option<ContentId>)>, StoreError> {
    if !root_available(root, store) || std::fs::symlink_metadata(path).is_ok() {
        return Ok(Vec::new());
    }
    let mut forgotten = Vec::new();
    if let Some(record) = store.remove_file(path)? {
        forgotten.push((path.to_path_buf(), record.content()));
    }
    let under: Vec<(PathBuf, FileRecord)> = store.files_under(path).collect::<Result<_, _>>()?;
    for (child, record) in under {
        if std::fs::symlink_metadata(&child).is_err() {
            store.remove_file(&child)?;
            forgotten.push((child, record.content()));
        }
    }
    Ok(forgotten)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content: u8) -> FileRecord {
        FileRecord {
            size_bytes: 1,
            modified_ns: 1,
            state: FileState::Indexed { content: ContentId([content; 32]) },
        }
    }

    #[test]
    fn new_changed_unchanged_and_gone() {
        let data = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let same = root.path().join("same.jpg");
        let changed = root.path().join("sub/changed.png");
        let new = root.path().join("NEW.JPG");
        // Unchanged, but stored by a build that made no duplicate signature: read again.
        let unsigned = root.path().join("unsigned.jpg");
        std::fs::create_dir(root.path().join("sub")).unwrap();
        for path in [&same, &changed, &new, &unsigned] {
            std::fs::write(path, b"bytes").unwrap();
        }
        std::fs::write(root.path().join("notes.txt"), b"not an image").unwrap();
        for (path, content) in [(&same, 1), (&unsigned, 4)] {
            let (size, modified) = stamp(&std::fs::metadata(path).unwrap());
            let mut matching = record(content);
            (matching.size_bytes, matching.modified_ns) = (size, modified);
            store.put_file(path, &matching).unwrap();
        }
        let thumbnail = image::GrayImage::from_fn(32, 32, |x, y| image::Luma([(x * y) as u8]));
        let signature = crate::dedup::compute_signature(&thumbnail).unwrap();
        store.put_signature(&ContentId([1; 32]), &signature).unwrap();
        store.put_file(&changed, &record(2)).unwrap();
        store.put_file(&root.path().join("gone.jpg"), &record(3)).unwrap();
        let report = scan(root.path(), root.path(), &store, false, &CancelToken::new()).unwrap();
        assert_eq!(report.files, 4);
        assert_eq!(report.unchanged, 1);
        let mut queued = report.queue.clone();
        queued.sort();
        assert_eq!(queued, vec![new.clone(), changed, unsigned]);
        assert_eq!(
            report.forgotten,
            vec![(root.path().join("gone.jpg"), Some(ContentId([3; 32])))]
        );
        assert_eq!(store.file(&new).unwrap().unwrap().state, FileState::Pending);
    }

    #[test]
    fn a_missing_or_empty_root_keeps_its_records() {
        let data = tempfile::tempdir().unwrap();
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("disk");
        let store = Store::open(data.path()).unwrap();
        store.put_file(&root.join("a.jpg"), &record(1)).unwrap();
        let report = scan(&root, &root, &store, false, &CancelToken::new()).unwrap();
        assert_eq!(report.unavailable, vec![root.clone()]);
        assert!(report.forgotten.is_empty());
        std::fs::create_dir(&root).unwrap();
        let report = scan(&root, &root, &store, false, &CancelToken::new()).unwrap();
        assert_eq!(report.unavailable, vec![root.clone()]);
        assert!(forget(&root.join("a.jpg"), &root, &store).unwrap().is_empty());
        assert_eq!(store.n_files(), 1);
    }

    #[test]
    fn a_link_loop_does_not_hang_the_walk() {
        let data = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        std::fs::create_dir(root.path().join("dir")).unwrap();
        std::os::unix::fs::symlink(root.path(), root.path().join("dir/loop")).unwrap();
        std::fs::write(root.path().join("dir/a.jpg"), b"x").unwrap();
        for follow in [false, true] {
            let report =
                scan(root.path(), root.path(), &store, follow, &CancelToken::new()).unwrap();
            assert_eq!(report.files, 1, "follow {follow}");
        }
    }
}
