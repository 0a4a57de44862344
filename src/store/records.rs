//! The records the store holds, and their encoding (bincode, standard configuration).

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::StoreError;
use crate::features::hash::HashKind;
use crate::imaging::exif::ExifFields;

/// The identity of an image's content: the blake3 hash of the file's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContentId(pub [u8; 32]);

impl ContentId {
    pub fn of(bytes: &[u8]) -> ContentId {
        ContentId(*blake3::hash(bytes).as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The full hash in lowercase hexadecimal.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses [`ContentId::to_hex`]'s output.
    pub fn from_hex(text: &str) -> Option<ContentId> {
        blake3::Hash::from_hex(text).ok().map(|hash| ContentId(*hash.as_bytes()))
    }
}

/// The first 16 hexadecimal digits, enough to tell contents apart in logs.
impl std::fmt::Display for ContentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex()[..16])
    }
}

impl std::fmt::Debug for ContentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentId({self})")
    }
}

/// What is known about one path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub size_bytes: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub modified_ns: i128,
    pub state: FileState,
}

impl FileRecord {
    /// True when `size_bytes` and `modified_ns` still describe the file: it needs no work.
    pub fn matches(&self, size_bytes: u64, modified_ns: i128) -> bool {
        self.size_bytes == size_bytes && self.modified_ns == modified_ns
    }

    pub fn content(&self) -> Option<ContentId> {
        match self.state {
            FileState::Indexed { content } => Some(content),
            _ => None,
        }
    }
}

/// Where a file stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FileState {
    /// Seen and queued, not yet read.
    Pending,
    /// Read, and its content's features are stored.
    Indexed { content: ContentId },
    /// Could not be read or decoded; retried only when the file changes.
    Failed { kind: FailureKind, reason: String },
}

/// The class of a failure, for counting in the status; the reason says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FailureKind {
    /// The file could not be read (permissions, I/O error).
    Unreadable,
    /// Zero bytes long.
    Empty,
    /// Over the file-size or pixel limit.
    TooLarge,
    /// Not an image in a supported format.
    UnknownFormat,
    /// A supported format, but the data is corrupt or truncated.
    Corrupt,
    /// Decoded, but no features could be extracted from it.
    Features,
}

impl FailureKind {
    pub fn name(&self) -> &'static str {
        match self {
            FailureKind::Unreadable => "unreadable",
            FailureKind::Empty => "empty",
            FailureKind::TooLarge => "too-large",
            FailureKind::UnknownFormat => "unknown-format",
            FailureKind::Corrupt => "corrupt",
            FailureKind::Features => "features",
        }
    }
}

/// What is known about one distinct content, whatever its paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentRecord {
    pub size_bytes: u64,
    /// The picture's size after EXIF orientation.
    pub width_px: u32,
    pub height_px: u32,
    /// The format found in the bytes (`jpeg`, `png`, ...), whatever the file's name says.
    pub format: Option<String>,
    pub exif: Option<ExifFields>,
    /// 64-bit perceptual hashes of the oriented picture.
    pub hashes: Vec<(HashKind, u64)>,
}

/// A person's word that two contents are not duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// When it was given, in seconds since the Unix epoch.
    pub marked_unix_s: i64,
}

/// Names one way of extracting features: a hash of the extractor's parameters and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FeatureKey(pub [u8; 8]);

impl FeatureKey {
    /// The key of any serialisable description of the parameters.
    pub fn new(parameters: &impl Serialize) -> FeatureKey {
        let bytes = encode(parameters);
        let hash = blake3::hash(&bytes);
        FeatureKey(hash.as_bytes()[..8].try_into().expect("8 of 32 bytes"))
    }
}

pub(crate) fn encode(value: &impl Serialize) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("store records always encode")
}

pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    key: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    match bincode::serde::decode_from_slice(bytes, bincode::config::standard()) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(StoreError::Corrupt {
            key: key(),
            message: format!("{} bytes left over after the record", bytes.len() - used),
        }),
        Err(error) => Err(StoreError::Corrupt { key: key(), message: error.to_string() }),
    }
}
