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

/// How the pixel values of one thumbnail are scaled before they become features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelScaling {
    /// Zero mean and unit variance per image: exposure and contrast no longer matter.
    /// The default.
    Standard,
    /// Stretched to span `[0, 1]` per image, as the Python package does.
    MinMax,
    /// As decoded, in `[0, 1]`.
    None,
}

/// The parameters of feature extraction.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureParams {
    pub method: FeatureMethod,
    /// Scaling of the pixels for the `pca` and `pixels` methods.
    pub pixel_scaling: PixelScaling,
    pub hog: HogParams,
    /// Side of the hash's bit grid: 8 gives 64-bit hashes. Default 8.
    pub hash_size: u32,
}

impl Default for FeatureParams {
    fn default() -> Self {
        FeatureParams {
            method: FeatureMethod::Pca,
            pixel_scaling: PixelScaling::Standard,
            hog: HogParams::default(),
            hash_size: 8,
        }
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
        FeatureMethod::Pca | FeatureMethod::Pixels => {
            Ok(scale_pixels(pixels, params.pixel_scaling))
        }
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

/// Scales one image's pixel values as `scaling` says. A flat image becomes all zeros.
pub fn scale_pixels(pixels: &[f32], scaling: PixelScaling) -> Vec<f32> {
    match scaling {
        PixelScaling::None => pixels.to_vec(),
        PixelScaling::MinMax => {
            let min = pixels.iter().copied().fold(f32::INFINITY, f32::min);
            let max = pixels.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let range = if max > min { max - min } else { 1.0 };
            pixels.iter().map(|v| (v - min) / range).collect()
        }
        PixelScaling::Standard => {
            let n_values = pixels.len().max(1) as f64;
            let mean = pixels.iter().map(|&v| f64::from(v)).sum::<f64>() / n_values;
            let variance =
                pixels.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n_values;
            let scale = if variance > 1e-12 { 1.0 / variance.sqrt() } else { 0.0 };
            pixels.iter().map(|&v| ((f64::from(v) - mean) * scale) as f32).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_scaling_ignores_exposure_and_contrast() {
        let pixels = [0.1f32, 0.2, 0.4, 0.3];
        let brighter: Vec<f32> = pixels.iter().map(|v| v * 2.0 + 0.1).collect();
        let a = scale_pixels(&pixels, PixelScaling::Standard);
        let b = scale_pixels(&brighter, PixelScaling::Standard);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5);
        }
        let mean: f32 = a.iter().sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6);
    }

    #[test]
    fn min_max_spans_zero_to_one_and_flat_images_stay_finite() {
        let scaled = scale_pixels(&[0.25, 0.75, 0.5], PixelScaling::MinMax);
        assert_eq!(scaled, vec![0.0, 1.0, 0.5]);
        let flat = scale_pixels(&[0.5; 4], PixelScaling::Standard);
        assert!(flat.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn method_names_round_trip() {
        for method in FeatureMethod::all() {
            assert_eq!(FeatureMethod::from_name(method.name()), Some(method));
        }
    }
}
