//! The work done for one path, on a worker thread: look, read, hash, decode, describe.
//!
//! Every step is cheaper than the next, and each stops as early as it can: a file whose
//! size and modification time match its record is not read; a file whose content hash is
//! known is not decoded. The worker writes the store itself (content and features first,
//! the file record last) and returns what changed for the coordinator to publish.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::dedup::{self, Signature};
use crate::features::hash::{hash_image, HashKind};
use crate::features::{self, FeatureParams, EXTRACTOR_VERSION};
use crate::imaging::{self, ImagingError, LoadLimits, Preprocessing};
use crate::store::{
    ContentId, ContentRecord, FailureKind, FeatureKey, FileRecord, FileState, Store, StoreError,
};

/// The hash kinds stored for every content, at 64 bits each.
pub const STORED_HASHES: [HashKind; 4] =
    [HashKind::Average, HashKind::Difference, HashKind::Perceptual, HashKind::Wavelet];

/// Turns bytes into a content record and a feature vector, with fixed parameters.
#[derive(Debug, Clone)]
pub struct Extractor {
    pub limits: LoadLimits,
    pub preprocessing: Preprocessing,
    pub features: FeatureParams,
    /// The store key of features made with these parameters by this version.
    pub key: FeatureKey,
}

impl Extractor {
    pub fn new(limits: LoadLimits, preprocessing: Preprocessing, features: FeatureParams) -> Self {
        let key = FeatureKey::new(&(EXTRACTOR_VERSION, &preprocessing, &features));
        Extractor { limits, preprocessing, features, key }
    }

    /// Decodes `bytes` (read from `path`, named in errors) and describes the picture.
    pub fn describe(&self, bytes: &[u8], path: &Path) -> Result<Described, (FailureKind, String)> {
        let loaded = imaging::load_bytes(bytes, path, &self.limits, &self.preprocessing)
            .map_err(|error| (failure_kind(&error), error.to_string()))?;
        let features_failed = |message: String| (FailureKind::Features, message);
        let mut hashes = Vec::with_capacity(STORED_HASHES.len());
        for kind in STORED_HASHES {
            let hash = hash_image(&loaded.gray, kind, 8)
                .map_err(|error| features_failed(format!("{}: {error}", path.display())))?;
            hashes.push((kind, hash.as_u64().expect("an 8x8 hash is one word")));
        }
        let vector = features::extract(&loaded.gray, &loaded.pixel_values(), &self.features)
            .map_err(|error| features_failed(format!("{}: {error}", path.display())))?;
        let signature = dedup::compute_signature(&loaded.gray)
            .map_err(|error| features_failed(format!("{}: {error}", path.display())))?;
        let format = image::guess_format(bytes).ok().map(|format| {
            format.extensions_str().first().copied().unwrap_or("unknown").to_string()
        });
        let record = ContentRecord {
            size_bytes: bytes.len() as u64,
            width_px: loaded.original_width_px,
            height_px: loaded.original_height_px,
            format,
            exif: loaded.exif,
            hashes,
        };
        Ok(Described { record, vector, signature })
    }
}

/// What decoding one content gives, for the store.
#[derive(Debug, Clone)]
pub struct Described {
    pub record: ContentRecord,
    pub vector: Vec<f32>,
    /// Computed from the same gray thumbnail as the features.
    pub signature: Signature,
}

fn failure_kind(error: &ImagingError) -> FailureKind {
    match error {
        ImagingError::Read { .. } => FailureKind::Unreadable,
        ImagingError::Empty { .. } => FailureKind::Empty,
        ImagingError::FileTooLarge { .. } | ImagingError::TooManyPixels { .. } => {
            FailureKind::TooLarge
        }
        ImagingError::UnknownFormat { .. } => FailureKind::UnknownFormat,
        _ => FailureKind::Corrupt,
    }
}

/// What looking at one path found. Store writes are already done.
#[derive(Debug)]
pub enum Outcome {
    /// The path's content is indexed. `previous` is the content it had before, if any.
    Indexed { content: ContentId, decoded: bool, previous: Option<ContentId> },
    /// The path could not be indexed; its record says why.
    Failed { kind: FailureKind, reason: String, previous: Option<ContentId> },
    /// Size and modification time match the record: nothing to do.
    Unchanged,
    /// The file changed while it was being read, or was written moments ago: try later.
    Unsettled,
    /// The path does not exist.
    Vanished,
    /// Not a file this daemon reads (a folder, a link not followed, another extension).
    Ignored,
}

/// The size and modification time of a file, as the store compares them.
pub fn stamp(metadata: &std::fs::Metadata) -> (u64, i128) {
    let modified_ns = metadata
        .modified()
        .ok()
        .map(|time| match time.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => after.as_nanos() as i128,
            Err(before) => -(before.duration().as_nanos() as i128),
        })
        .unwrap_or(0);
    (metadata.len(), modified_ns)
}

/// Looks at `path` and brings its record up to date.
///
/// A file modified less than `quiet` ago is reported [`Outcome::Unsettled`]: it may still be
/// being written.
pub fn ingest(
    path: &Path,
    store: &Store,
    extractor: &Extractor,
    follow_symlinks: bool,
    quiet: Duration,
) -> Result<Outcome, StoreError> {
    let metadata = match file_metadata(path, follow_symlinks) {
        Ok(Some(metadata)) => metadata,
        Ok(None) => return Ok(Outcome::Ignored),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Vanished),
        Err(error) => {
            return fail(path, store, None, FailureKind::Unreadable, read_error(path, error))
        }
    };
    if !imaging::is_image_path(path) {
        return Ok(Outcome::Ignored);
    }
    let (size_bytes, modified_ns) = stamp(&metadata);
    let known = store.file(path)?;
    if let Some(record) = &known {
        if record.matches(size_bytes, modified_ns) && is_complete(record, store)? {
            return Ok(Outcome::Unchanged);
        }
    }
    let previous = known.as_ref().and_then(FileRecord::content);
    if recently_modified(&metadata, quiet) {
        return Ok(Outcome::Unsettled);
    }
    let record = |state| FileRecord { size_bytes, modified_ns, state };
    if size_bytes > extractor.limits.max_file_bytes {
        let reason = ImagingError::FileTooLarge {
            path: path.to_path_buf(),
            size_bytes,
            limit_bytes: extractor.limits.max_file_bytes,
        }
        .to_string();
        return fail_with(path, store, record, previous, FailureKind::TooLarge, reason);
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Vanished),
        Err(error) => {
            let reason = read_error(path, error);
            return fail_with(path, store, record, previous, FailureKind::Unreadable, reason);
        }
    };
    // The file must not have changed while it was read.
    match file_metadata(path, follow_symlinks) {
        Ok(Some(after)) if stamp(&after) == (size_bytes, modified_ns) => {}
        Ok(_) | Err(_) if !path.exists() => return Ok(Outcome::Vanished),
        _ => return Ok(Outcome::Unsettled),
    }
    if bytes.len() as u64 != size_bytes {
        return Ok(Outcome::Unsettled);
    }
    let content = ContentId::of(&bytes);
    let have_features = store.features(&content, &extractor.key)?.is_some();
    let decoded =
        if have_features && store.content(&content)?.is_some() && store.has_signature(&content)? {
            false
        } else {
            match extractor.describe(&bytes, path) {
                Ok(described) => {
                    store.put_content(&content, &described.record)?;
                    store.put_features(&content, &extractor.key, &described.vector)?;
                    store.put_signature(&content, &described.signature)?;
                    true
                }
                Err((kind, reason)) => {
                    return fail_with(path, store, record, previous, kind, reason);
                }
            }
        };
    store.put_file(path, &record(FileState::Indexed { content }))?;
    Ok(Outcome::Indexed { content, decoded, previous })
}

/// True when a record whose size and time still match needs no work: it is not pending,
/// and an indexed content has a signature of this build's version (a store written by an
/// older build has none, and its files are read once more).
pub fn is_complete(record: &FileRecord, store: &Store) -> Result<bool, StoreError> {
    Ok(match &record.state {
        FileState::Pending => false,
        FileState::Indexed { content } => store.has_signature(content)?,
        FileState::Failed { .. } => true,
    })
}

/// The metadata of a regular file at `path`; `None` for anything else.
fn file_metadata(path: &Path, follow_symlinks: bool) -> std::io::Result<Option<std::fs::Metadata>> {
    let metadata = std::fs::symlink_metadata(path)?;
    let metadata = if metadata.file_type().is_symlink() && follow_symlinks {
        std::fs::metadata(path)?
    } else {
        metadata
    };
    Ok(metadata.is_file().then_some(metadata))
}

fn recently_modified(metadata: &std::fs::Metadata, quiet: Duration) -> bool {
    metadata
        .modified()
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age < quiet)
}

fn read_error(path: &Path, error: std::io::Error) -> String {
    ImagingError::Read { path: path.to_path_buf(), cause: error }.to_string()
}

fn fail(
    path: &Path,
    store: &Store,
    previous: Option<ContentId>,
    kind: FailureKind,
    reason: String,
) -> Result<Outcome, StoreError> {
    let record = |state| FileRecord { size_bytes: 0, modified_ns: 0, state };
    fail_with(path, store, record, previous, kind, reason)
}

fn fail_with(
    path: &Path,
    store: &Store,
    record: impl FnOnce(FileState) -> FileRecord,
    previous: Option<ContentId>,
    kind: FailureKind,
    reason: String,
) -> Result<Outcome, StoreError> {
    store.put_file(path, &record(FileState::Failed { kind, reason: reason.clone() }))?;
    Ok(Outcome::Failed { kind, reason, previous })
}

/// Moves the records of a renamed file, or of every file under a renamed folder, from
/// `from` to `to` without reading anything, when the files at the new place still have the
/// recorded size and modification time. Returns the pairs moved; files that do not match
/// are left for a normal look.
pub fn move_records(
    from: &Path,
    to: &Path,
    store: &Store,
) -> Result<Vec<(PathBuf, PathBuf, Option<ContentId>)>, StoreError> {
    let mut candidates: Vec<(PathBuf, FileRecord)> = Vec::new();
    if let Some(record) = store.file(from)? {
        candidates.push((from.to_path_buf(), record));
    }
    for entry in store.files_under(from) {
        candidates.push(entry?);
    }
    let mut moved = Vec::new();
    for (old_path, record) in candidates {
        let Ok(suffix) = old_path.strip_prefix(from) else { continue };
        let new_path =
            if suffix.as_os_str().is_empty() { to.to_path_buf() } else { to.join(suffix) };
        if old_path.exists() {
            continue;
        }
        let Ok(metadata) = std::fs::symlink_metadata(&new_path) else { continue };
        if !metadata.is_file() || !record.matches(metadata.len(), stamp(&metadata).1) {
            continue;
        }
        if store.file(&new_path)?.is_some() {
            continue;
        }
        let content = record.content();
        store.put_file(&new_path, &record)?;
        store.remove_file(&old_path)?;
        moved.push((old_path, new_path, content));
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extractor() -> Extractor {
        Extractor::new(LoadLimits::default(), Preprocessing::default(), FeatureParams::default())
    }

    fn photo() -> Vec<u8> {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
        let mut names: Vec<_> =
            std::fs::read_dir(&fixtures).unwrap().map(|entry| entry.unwrap().path()).collect();
        names.sort();
        std::fs::read(&names[0]).unwrap()
    }

    #[test]
    fn a_second_look_skips_and_a_copy_decodes_nothing() {
        let data = tempfile::tempdir().unwrap();
        let photos = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let first = photos.path().join("a.jpg");
        std::fs::write(&first, photo()).unwrap();
        let look = |path: &Path| ingest(path, &store, &extractor(), false, Duration::ZERO).unwrap();
        let Outcome::Indexed { content, decoded: true, previous: None } = look(&first) else {
            panic!("the first look decodes");
        };
        assert!(matches!(look(&first), Outcome::Unchanged));
        let copy = photos.path().join("copy.JPG");
        std::fs::copy(&first, &copy).unwrap();
        let Outcome::Indexed { content: copied, decoded: false, .. } = look(&copy) else {
            panic!("a copy is not decoded");
        };
        assert_eq!(copied, content);
        let record = store.content(&content).unwrap().unwrap();
        assert_eq!(record.hashes.len(), 4);
        assert_eq!(record.format.as_deref(), Some("jpg"));
        assert!(record.width_px > 128);
    }

    #[test]
    fn bad_files_are_recorded_with_their_reason() {
        let data = tempfile::tempdir().unwrap();
        let photos = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let cases = [
            ("empty.jpg", Vec::new(), FailureKind::Empty),
            ("text.png", b"not a picture at all".to_vec(), FailureKind::UnknownFormat),
            ("half.jpg", photo()[..2000].to_vec(), FailureKind::Corrupt),
        ];
        for (name, bytes, expected) in cases {
            let path = photos.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let outcome = ingest(&path, &store, &extractor(), false, Duration::ZERO).unwrap();
            let Outcome::Failed { kind, reason, .. } = outcome else {
                panic!("{name}: {outcome:?}");
            };
            assert_eq!(kind, expected, "{name}: {reason}");
            assert!(reason.contains(name), "{reason}");
            let FileState::Failed { kind: stored, .. } = store.file(&path).unwrap().unwrap().state
            else {
                panic!("{name} has no failed record");
            };
            assert_eq!(stored, expected);
            let again = ingest(&path, &store, &extractor(), false, Duration::ZERO).unwrap();
            assert!(matches!(again, Outcome::Unchanged), "{name} is retried only when it changes");
        }
    }

    #[test]
    fn vanished_ignored_and_fresh_files() {
        let data = tempfile::tempdir().unwrap();
        let photos = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let gone = photos.path().join("gone.jpg");
        let look = |path: &Path, quiet| ingest(path, &store, &extractor(), false, quiet).unwrap();
        assert!(matches!(look(&gone, Duration::ZERO), Outcome::Vanished));
        let notes = photos.path().join("notes.txt");
        std::fs::write(&notes, "hello").unwrap();
        assert!(matches!(look(&notes, Duration::ZERO), Outcome::Ignored));
        assert!(matches!(look(photos.path(), Duration::ZERO), Outcome::Ignored));
        let fresh = photos.path().join("fresh.jpg");
        std::fs::write(&fresh, photo()).unwrap();
        assert!(matches!(look(&fresh, Duration::from_secs(3600)), Outcome::Unsettled));
        let link = photos.path().join("link.jpg");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        assert!(matches!(look(&link, Duration::ZERO), Outcome::Ignored));
    }

    #[test]
    fn a_rename_moves_the_record_without_reading() {
        let data = tempfile::tempdir().unwrap();
        let photos = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let old_dir = photos.path().join("old");
        std::fs::create_dir(&old_dir).unwrap();
        let old = old_dir.join("a.jpg");
        std::fs::write(&old, photo()).unwrap();
        ingest(&old, &store, &extractor(), false, Duration::ZERO).unwrap();
        let new_dir = photos.path().join("new");
        std::fs::rename(&old_dir, &new_dir).unwrap();
        let moved = move_records(&old_dir, &new_dir, &store).unwrap();
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].1, new_dir.join("a.jpg"));
        assert!(store.file(&old).unwrap().is_none());
        assert!(store.file(&new_dir.join("a.jpg")).unwrap().unwrap().content().is_some());
    }
}
