//! Turning a thumbnail into a feature vector: raw pixels, the HOG descriptor, or the bits
//! of a perceptual hash. EXIF-based methods take their input from the EXIF fields instead
//! and are handled by the model layer.
//!
//! Every extractor is a pure function of the thumbnail and [`FeatureParams`], so cached
//! features can be keyed by the content hash, the parameters and [`EXTRACTOR_VERSION`].

pub mod hash;
pub mod hog;

use image::GrayImage;

pub use hash::{hash_image, HashKind, ImageHash};
pub use hog::HogParams;

/// Bumped whenever an extractor's output changes for the same input and parameters.
pub const EXTRACTOR_VERSION: u32 = 1;

/// What the clustering runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureMethod {
    /// PCA of the thumbnail's pixels (the default).
    Pca,
    /// The HOG descriptor, without PCA.
    Hog,
    /// PCA of the HOG descriptor.
    PcaHog,
    /// The thumbnail's pixels, without PCA.
    Pixels,
    /// Bits of a perceptual hash.
    Hash(HashKind),
    /// The time the photo was taken.
    ExifTime,
    /// Where the photo was taken.
    ExifGps,
}

impl FeatureMethod {
    /// The method's name on the command line and in results.
    pub fn name(&self) -> &'static str {
        match self {
            FeatureMethod::Pca => "pca",
            FeatureMethod::Hog => "hog",
            FeatureMethod::PcaHog => "pca-hog",
            FeatureMethod::Pixels => "pixels",
            FeatureMethod::Hash(HashKind::Average) => "ahash",
            FeatureMethod::Hash(HashKind::Difference) => "dhash",
            FeatureMethod::Hash(HashKind::Perceptual) => "phash",
            FeatureMethod::Hash(HashKind::Wavelet) => "whash",
            FeatureMethod::ExifTime => "exif-time",
            FeatureMethod::ExifGps => "exif-gps",
        }
    }

    /// Every method, in the order the command line lists them.
    pub fn all() -> [FeatureMethod; 10] {
        [
            FeatureMethod::Pca,
            FeatureMethod::Hog,
            FeatureMethod::PcaHog,
            FeatureMethod::Pixels,
            FeatureMethod::Hash(HashKind::Average),
            FeatureMethod::Hash(HashKind::Perceptual),
            FeatureMethod::Hash(HashKind::Difference),
            FeatureMethod::Hash(HashKind::Wavelet),
            FeatureMethod::ExifTime,
            FeatureMethod::ExifGps,
        ]
    }

    /// Parses a method name as written on the command line.
    pub fn from_name(name: &str) -> Option<FeatureMethod> {
        Self::all().into_iter().find(|method| method.name() == name)
    }

    /// True when the features are reduced by PCA before clustering.
    pub fn uses_pca(&self) -> bool {
        matches!(self, FeatureMethod::Pca | FeatureMethod::PcaHog)
    }

    /// True when the method clusters EXIF fields rather than a feature vector.
    pub fn uses_exif(&self) -> bool {
        matches!(self, FeatureMethod::ExifTime | FeatureMethod::ExifGps)
    }
}

/// The parameters of feature extraction.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureParams {
    pub method: FeatureMethod,
    pub hog: HogParams,
    /// Side of the hash's bit grid: 8 gives 64-bit hashes. Default 8.
    pub hash_size: u32,
}

impl Default for FeatureParams {
    fn default() -> Self {
        FeatureParams { method: FeatureMethod::Pca, hog: HogParams::default(), hash_size: 8 }
    }
}

/// Why features could not be extracted.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("hog: {message}")]
    Hog { message: String },
    #[error("hash: {0}")]
    Hash(#[from] hash::HashError),
    #[error("method {method} has no feature vector: it clusters EXIF fields")]
    NoVector { method: &'static str },
}

/// Extracts the feature vector of one thumbnail.
///
/// `pixels` are the thumbnail's values in `[0, 1]` (three per pixel in colour mode);
/// `gray` is its gray version, used by HOG and the hashes.
pub fn extract(
    gray: &GrayImage,
    pixels: &[f32],
    params: &FeatureParams,
) -> Result<Vec<f32>, FeatureError> {
    match params.method {
        FeatureMethod::Pca | FeatureMethod::Pixels => Ok(pixels.to_vec()),
        FeatureMethod::Hog | FeatureMethod::PcaHog => hog::descriptor(gray, &params.hog),
        FeatureMethod::Hash(kind) => {
            let hash = hash_image(gray, kind, params.hash_size)?;
            Ok(hash.to_bits_f64().into_iter().map(|bit| bit as f32).collect())
        }
        FeatureMethod::ExifTime | FeatureMethod::ExifGps => {
            Err(FeatureError::NoVector { method: params.method.name() })
        }
    }
}
