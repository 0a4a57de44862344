//! The daemon's durable state: an embedded sled database in the data folder.
//!
//! The store is the truth; the model and the index are derived from it and can be rebuilt.
//! It has six trees:
//!
//! | tree         | key                                 | value                          |
//! |--------------|-------------------------------------|--------------------------------|
//! | `meta`       | a name (`schema_version`)           | a big-endian `u32`             |
//! | `files`      | the file's path, as bytes           | [`FileRecord`] (bincode)       |
//! | `contents`   | [`ContentId`] (blake3 of the bytes) | [`ContentRecord`] (bincode)    |
//! | `features`   | `ContentId` + [`FeatureKey`]        | `f32` values, little-endian    |
//! | `signatures` | `ContentId`                         | version + [`Signature`]        |
//! | `verdicts`   | two `ContentId`s, smaller first     | [`Verdict`] (bincode)          |
//! | `links`      | two `ContentId`s, smaller first     | kind and distance (bincode)    |
//!
//! `links` holds the duplicate matches found between contents, so that a restart need not
//! search for them again. A content's key paired with itself marks it as checked; `meta`'s
//! `links_tag` names the thresholds and signature version they were found with, and links
//! of another tag are dropped and found again.
//!
//! A signature of another version than [`SIGNATURE_VERSION`] reads as missing, so the
//! file is read again once. A verdict says that two contents are not duplicates, whatever
//! their hashes say; being keyed by content, it holds for every copy and across renames.
//!
//! Content is identity: a renamed, moved or copied file points at a content record that
//! already has its features, so nothing is decoded again. Features are keyed by the
//! extractor's parameters and version as well, so a change of either misses cleanly and
//! the image is decoded again once.
//!
//! Writes for one file go content and features first, the file record last: a crash in
//! between leaves a file without a record, which the next scan queues again, and finds its
//! content already there.

mod records;

use std::path::{Path, PathBuf};

pub use records::{
    ContentId, ContentRecord, FailureKind, FeatureKey, FileRecord, FileState, Verdict,
};

use crate::dedup::{MatchKind, Signature};

/// The version of [`Signature`]s as computed by this build; bumped whenever
/// `dedup::compute_signature` changes its output.
pub const SIGNATURE_VERSION: u32 = 1;

/// Encodes any value as the store does (bincode, standard configuration).
pub fn encode_value(value: &impl serde::Serialize) -> Vec<u8> {
    records::encode(value)
}

/// Decodes a value written by [`encode_value`]; `name` names it in the error.
pub fn decode_value<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    name: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    records::decode(bytes, name)
}

/// Bumped whenever a record's encoding changes; an older store is refused, not misread.
pub const SCHEMA_VERSION: u32 = 1;

const SCHEMA_KEY: &[u8] = b"schema_version";

/// How often sled writes to disk in the background.
const FLUSH_EVERY_MS: u64 = 500;

/// Tries at opening a locked store, 100 ms apart: three flush periods.
const LOCK_ATTEMPTS: u32 = 15;

/// Why the store could not be used. Each variant names the data folder or the record.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store in {path}: {cause} (is another clustimage daemon using it?)")]
    Open { path: PathBuf, cause: sled::Error },
    #[error(
        "the store in {path} has schema version {found}, this build reads version {expected}; \
         move the folder aside to start a new store"
    )]
    Schema { path: PathBuf, found: u32, expected: u32 },
    #[error("store I/O: {0}")]
    Sled(#[from] sled::Error),
    #[error("the store's record for {key} is unreadable: {message}")]
    Corrupt { key: String, message: String },
}

/// The open store. Cloning shares it; every method is safe to call from many threads.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    files: sled::Tree,
    contents: sled::Tree,
    features: sled::Tree,
    signatures: sled::Tree,
    verdicts: sled::Tree,
    links: sled::Tree,
    meta: sled::Tree,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store in `folder`, checking its schema version.
    ///
    /// A store just closed by this process or another may keep its lock for up to one
    /// flush period (sled's flusher lets go when it next wakes), so a lock that is busy is
    /// tried again for a moment before the error.
    pub fn open(folder: &Path) -> Result<Store, StoreError> {
        let open_error = |cause| StoreError::Open { path: folder.to_path_buf(), cause };
        let config = sled::Config::new().path(folder).flush_every_ms(Some(FLUSH_EVERY_MS));
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(error))
                    if error.kind() == std::io::ErrorKind::WouldBlock
                        || error.to_string().contains("could not acquire lock") =>
                {
                    attempts += 1;
                    if attempts >= LOCK_ATTEMPTS {
                        return Err(open_error(sled::Error::Io(error)));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(error) => return Err(open_error(error)),
            }
        };
        let meta = db.open_tree("meta").map_err(open_error)?;
        match meta.get(SCHEMA_KEY)? {
            Some(bytes) => {
                let found =
                    <[u8; 4]>::try_from(bytes.as_ref()).map(u32::from_be_bytes).map_err(|_| {
                        StoreError::Corrupt {
                            key: "meta/schema_version".into(),
                            message: format!("{} bytes, expected 4", bytes.len()),
                        }
                    })?;
                if found != SCHEMA_VERSION {
                    let path = folder.to_path_buf();
                    return Err(StoreError::Schema { path, found, expected: SCHEMA_VERSION });
                }
            }
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
        }
        Ok(Store {
            files: db.open_tree("files")?,
            contents: db.open_tree("contents")?,
            features: db.open_tree("features")?,
            signatures: db.open_tree("signatures")?,
            verdicts: db.open_tree("verdicts")?,
            links: db.open_tree("links")?,
            meta,
            db,
            path: folder.to_path_buf(),
        })
    }

    /// The folder the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes everything to disk; returns when it is durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn file(&self, path: &Path) -> Result<Option<FileRecord>, StoreError> {
        let key = path_key(path);
        self.files.get(&key)?.map(|bytes| records::decode(&bytes, || path_name(&key))).transpose()
    }

    pub fn put_file(&self, path: &Path, record: &FileRecord) -> Result<(), StoreError> {
        self.files.insert(path_key(path), records::encode(record))?;
        Ok(())
    }

    /// Forgets a file; returns what was known about it.
    pub fn remove_file(&self, path: &Path) -> Result<Option<FileRecord>, StoreError> {
        let key = path_key(path);
        self.files
            .remove(&key)?
            .map(|bytes| records::decode(&bytes, || path_name(&key)))
            .transpose()
    }

    /// Every file record, in path order.
    pub fn files(&self) -> impl Iterator<Item = Result<(PathBuf, FileRecord), StoreError>> + '_ {
        decode_paths(self.files.iter())
    }

    /// The records of the files under `folder` (not `folder` itself), in path order.
    pub fn files_under(
        &self,
        folder: &Path,
    ) -> impl Iterator<Item = Result<(PathBuf, FileRecord), StoreError>> + '_ {
        let mut prefix = path_key(folder);
        if prefix.last() != Some(&b'/') {
            prefix.push(b'/');
        }
        decode_paths(self.files.scan_prefix(prefix))
    }

    pub fn n_files(&self) -> usize {
        self.files.len()
    }

    pub fn content(&self, id: &ContentId) -> Result<Option<ContentRecord>, StoreError> {
        let bytes = self.contents.get(id.as_bytes())?;
        bytes.map(|bytes| records::decode(&bytes, || format!("contents/{id}"))).transpose()
    }

    pub fn put_content(&self, id: &ContentId, record: &ContentRecord) -> Result<(), StoreError> {
        self.contents.insert(id.as_bytes(), records::encode(record))?;
        Ok(())
    }

    /// The feature vector of `id` extracted with the parameters of `key`, if stored.
    pub fn features(
        &self,
        id: &ContentId,
        key: &FeatureKey,
    ) -> Result<Option<Vec<f32>>, StoreError> {
        let Some(bytes) = self.features.get(feature_key(id, key))? else {
            return Ok(None);
        };
        if bytes.len() % 4 != 0 {
            let message = format!("{} bytes is not a whole number of f32 values", bytes.len());
            return Err(StoreError::Corrupt { key: format!("features/{id}"), message });
        }
        let values = bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes(chunk.try_into().expect("chunks of 4")))
            .collect();
        Ok(Some(values))
    }

    pub fn put_features(
        &self,
        id: &ContentId,
        key: &FeatureKey,
        values: &[f32],
    ) -> Result<(), StoreError> {
        let bytes: Vec<u8> = values.iter().flat_map(|value| value.to_le_bytes()).collect();
        self.features.insert(feature_key(id, key), bytes)?;
        Ok(())
    }

    /// The duplicate signature of `id`, if one of this build's version is stored.
    pub fn signature(&self, id: &ContentId) -> Result<Option<Signature>, StoreError> {
        let Some(bytes) = self.signatures.get(id.as_bytes())? else { return Ok(None) };
        let (version, signature): (u32, Signature) =
            records::decode(&bytes, || format!("signatures/{id}"))?;
        Ok((version == SIGNATURE_VERSION).then_some(signature))
    }

    /// True when `id` has a signature of this build's version; reads only the version,
    /// since scans ask it of every unchanged file.
    pub fn has_signature(&self, id: &ContentId) -> Result<bool, StoreError> {
        let Some(bytes) = self.signatures.get(id.as_bytes())? else { return Ok(false) };
        let version =
            bincode::serde::decode_from_slice::<u32, _>(&bytes, bincode::config::standard())
                .map(|(version, _)| version)
                .map_err(|error| StoreError::Corrupt {
                    key: format!("signatures/{id}"),
                    message: error.to_string(),
                })?;
        Ok(version == SIGNATURE_VERSION)
    }

    pub fn put_signature(&self, id: &ContentId, signature: &Signature) -> Result<(), StoreError> {
        let bytes = records::encode(&(SIGNATURE_VERSION, signature));
        self.signatures.insert(id.as_bytes(), bytes)?;
        Ok(())
    }

    /// Records that `a` and `b` are not duplicates (in either order); flushed at once, as
    /// a person asked for it.
    pub fn put_verdict(
        &self,
        a: &ContentId,
        b: &ContentId,
        verdict: &Verdict,
    ) -> Result<(), StoreError> {
        self.verdicts.insert(pair_key(a, b), records::encode(verdict))?;
        self.verdicts.flush()?;
        Ok(())
    }

    /// Every verdict, as `(smaller, larger, verdict)`.
    pub fn verdicts(
        &self,
    ) -> impl Iterator<Item = Result<(ContentId, ContentId, Verdict), StoreError>> + '_ {
        self.verdicts.iter().map(|entry| {
            let (key, value) = entry?;
            if key.len() != 64 {
                let message = format!("a key of {} bytes, expected 64", key.len());
                return Err(StoreError::Corrupt { key: "verdicts".into(), message });
            }
            let a = ContentId(key[..32].try_into().expect("32 bytes"));
            let b = ContentId(key[32..].try_into().expect("32 bytes"));
            let verdict = records::decode(&value, || format!("verdicts/{a}-{b}"))?;
            Ok((a, b, verdict))
        })
    }
}

impl Store {
    /// What the stored links were found with; `None` before any.
    pub fn links_tag(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(LINKS_TAG_KEY)?.map(|bytes| bytes.to_vec()))
    }

    /// Drops every link and mark, and records that those to come are found with `tag`.
    pub fn reset_links(&self, tag: &[u8]) -> Result<(), StoreError> {
        self.links.clear()?;
        self.meta.insert(LINKS_TAG_KEY, tag)?;
        Ok(())
    }

    /// Records a match between two contents.
    pub fn put_link(
        &self,
        a: &ContentId,
        b: &ContentId,
        kind: MatchKind,
        distance: u32,
    ) -> Result<(), StoreError> {
        self.links.insert(pair_key(a, b), records::encode(&(kind, distance)))?;
        Ok(())
    }

    pub fn remove_link(&self, a: &ContentId, b: &ContentId) -> Result<(), StoreError> {
        self.links.remove(pair_key(a, b))?;
        Ok(())
    }

    /// Marks `content` as checked against the library: its links are all stored.
    pub fn mark_checked(&self, content: &ContentId) -> Result<(), StoreError> {
        self.links.insert(pair_key(content, content), records::encode(&()))?;
        Ok(())
    }

    /// Every stored link, and every checked content.
    pub fn links(&self) -> Result<(Vec<StoredLink>, Vec<ContentId>), StoreError> {
        let mut links = Vec::new();
        let mut checked = Vec::new();
        for entry in self.links.iter() {
            let (key, value) = entry?;
            if key.len() != 64 {
                let message = format!("a key of {} bytes, expected 64", key.len());
                return Err(StoreError::Corrupt { key: "links".into(), message });
            }
            let a = ContentId(key[..32].try_into().expect("32 bytes"));
            let b = ContentId(key[32..].try_into().expect("32 bytes"));
            if a == b {
                checked.push(a);
            } else {
                let (kind, distance) = records::decode(&value, || format!("links/{a}-{b}"))?;
                links.push((a, b, kind, distance));
            }
        }
        Ok((links, checked))
    }
}

const LINKS_TAG_KEY: &[u8] = b"links_tag";

/// A match between two contents as stored: `(a, b, kind, distance)` with `a < b`.
pub type StoredLink = (ContentId, ContentId, MatchKind, u32);

/// The key of an unordered pair of contents: the smaller first.
fn pair_key(a: &ContentId, b: &ContentId) -> Vec<u8> {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(low.as_bytes());
    bytes.extend_from_slice(high.as_bytes());
    bytes
}

/// The key of a path: its bytes as the platform holds them (not necessarily UTF-8).
fn path_key(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

fn key_path(key: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(key))
}

fn path_name(key: &[u8]) -> String {
    format!("files/{}", key_path(key).display())
}

fn decode_paths(
    entries: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
) -> impl Iterator<Item = Result<(PathBuf, FileRecord), StoreError>> {
    entries.map(|entry| {
        let (key, value) = entry?;
        let record = records::decode(&value, || path_name(&key))?;
        Ok((key_path(&key), record))
    })
}

fn feature_key(id: &ContentId, key: &FeatureKey) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(40);
    bytes.extend_from_slice(id.as_bytes());
    bytes.extend_from_slice(&key.0);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::hash::HashKind;

    fn indexed(content: ContentId) -> FileRecord {
        FileRecord {
            size_bytes: 10,
            modified_ns: 1_700_000_000_000_000_000,
            state: FileState::Indexed { content },
        }
    }

    #[test]
    fn records_survive_a_reopen() {
        let folder = tempfile::tempdir().unwrap();
        let id = ContentId::of(b"picture");
        let key = FeatureKey::new(&("pca", 128));
        {
            let store = Store::open(folder.path()).unwrap();
            store.put_file(Path::new("/photos/a.jpg"), &indexed(id)).unwrap();
            let content = ContentRecord {
                size_bytes: 7,
                width_px: 640,
                height_px: 480,
                format: Some("jpeg".into()),
                exif: None,
                hashes: vec![(HashKind::Average, 0xdead_beef)],
            };
            store.put_content(&id, &content).unwrap();
            store.put_features(&id, &key, &[1.0, -2.5, f32::MIN_POSITIVE]).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(folder.path()).unwrap();
        assert_eq!(store.file(Path::new("/photos/a.jpg")).unwrap(), Some(indexed(id)));
        assert_eq!(store.content(&id).unwrap().unwrap().width_px, 640);
        let values = store.features(&id, &key).unwrap().unwrap();
        assert_eq!(values, vec![1.0, -2.5, f32::MIN_POSITIVE]);
        let other_key = FeatureKey::new(&("pca", 64));
        assert_eq!(store.features(&id, &other_key).unwrap(), None);
    }

    #[test]
    fn signatures_of_this_version_and_verdicts_survive_a_reopen() {
        let folder = tempfile::tempdir().unwrap();
        let (a, b) = (ContentId::of(b"a"), ContentId::of(b"b"));
        let thumbnail = image::GrayImage::from_fn(64, 64, |x, y| image::Luma([(x * y) as u8]));
        let signature = crate::dedup::compute_signature(&thumbnail).unwrap();
        {
            let store = Store::open(folder.path()).unwrap();
            store.put_signature(&a, &signature).unwrap();
            store.put_verdict(&b, &a, &Verdict { marked_unix_s: 7 }).unwrap();
            // A signature of an older version is as good as none.
            let old = records::encode(&(SIGNATURE_VERSION - 1, &signature));
            store.signatures.insert(b.as_bytes(), old).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(folder.path()).unwrap();
        assert_eq!(store.signature(&a).unwrap(), Some(signature));
        assert_eq!(store.signature(&b).unwrap(), None);
        assert!(store.has_signature(&a).unwrap());
        assert!(!store.has_signature(&b).unwrap());
        assert!(!store.has_signature(&ContentId::of(b"c")).unwrap());
        let verdicts: Vec<_> = store.verdicts().map(Result::unwrap).collect();
        let (low, high) = if a < b { (a, b) } else { (b, a) };
        assert_eq!(verdicts, vec![(low, high, Verdict { marked_unix_s: 7 })]);
    }

    #[test]
    fn files_under_a_folder_exclude_its_namesakes() {
        let folder = tempfile::tempdir().unwrap();
        let store = Store::open(folder.path()).unwrap();
        let id = ContentId::of(b"x");
        for path in ["/r/a/1.jpg", "/r/a/sub/2.jpg", "/r/ab/3.jpg", "/r/b.jpg"] {
            store.put_file(Path::new(path), &indexed(id)).unwrap();
        }
        let under: Vec<PathBuf> =
            store.files_under(Path::new("/r/a")).map(|entry| entry.unwrap().0).collect();
        assert_eq!(under, vec![PathBuf::from("/r/a/1.jpg"), PathBuf::from("/r/a/sub/2.jpg")]);
        assert_eq!(store.files().count(), 4);
        assert_eq!(store.remove_file(Path::new("/r/b.jpg")).unwrap(), Some(indexed(id)));
        assert_eq!(store.n_files(), 3);
    }

    #[test]
    fn a_store_of_another_schema_is_refused_by_name() {
        let folder = tempfile::tempdir().unwrap();
        {
            let db = sled::open(folder.path()).unwrap();
            db.open_tree("meta").unwrap().insert(SCHEMA_KEY, &99u32.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let error = Store::open(folder.path()).unwrap_err().to_string();
        assert!(error.contains("schema version 99"), "{error}");
        assert!(error.contains(&folder.path().display().to_string()), "{error}");
    }

    #[test]
    fn a_second_opener_gets_a_clear_error() {
        let folder = tempfile::tempdir().unwrap();
        let _first = Store::open(folder.path()).unwrap();
        let error = Store::open(folder.path()).unwrap_err().to_string();
        assert!(error.contains("another clustimage daemon"), "{error}");
    }

    #[test]
    fn a_garbled_record_is_an_error_naming_it() {
        let folder = tempfile::tempdir().unwrap();
        let store = Store::open(folder.path()).unwrap();
        store.files.insert(b"/r/bad.jpg", &[0xff, 0xff, 0xff][..]).unwrap();
        let error = store.file(Path::new("/r/bad.jpg")).unwrap_err().to_string();
        assert!(error.contains("/r/bad.jpg"), "{error}");
    }
}
