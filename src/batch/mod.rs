//! The engine run once over a folder or an array, in memory: load every image, extract
//! features, fit the model, and shape the result for people and scripts.
//!
//! This is what `clustimage cluster` and `clustimage find` run. It holds every thumbnail
//! in memory (16 KB per image at 128x128 gray), which is fine up to a few hundred
//! thousand images; the daemon keeps them in its store instead.

pub mod array;
pub mod extract;
pub mod organise;
pub mod result;

use std::path::PathBuf;

use crate::features::FeatureMethod;
use crate::model::{ExifInput, FitInput};

pub use extract::{extract_files, ExtractOptions, Extracted, Skipped};
pub use result::{BatchResult, ClusterSummary, ImageSummary};

/// Why a batch run failed as a whole (single bad files are skipped, not errors).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Imaging(#[from] crate::imaging::ImagingError),
    #[error(transparent)]
    Features(#[from] crate::features::FeatureError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error("no image could be read ({n_skipped} skipped)")]
    NoImages { n_skipped: usize },
    #[error("cannot read array {path}: {message}")]
    Array { path: PathBuf, message: String },
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("cancelled")]
    Cancelled,
}

/// The model's input for the extracted images: their vectors, or for EXIF methods the
/// time or place of each photo. A photo without an EXIF time falls back to its file's
/// modification time, as in the Python package; arrays have neither.
pub fn fit_input(extracted: &Extracted, method: FeatureMethod) -> FitInput<'_> {
    match method {
        FeatureMethod::ExifTime => {
            let times = extracted
                .exif
                .iter()
                .zip(&extracted.paths)
                .map(|(exif, path)| {
                    exif.as_ref().and_then(|e| e.taken_at_unix_s).or_else(|| modified_s(path))
                })
                .collect();
            FitInput::Exif(ExifInput::Times(times))
        }
        FeatureMethod::ExifGps => {
            let positions =
                extracted.exif.iter().map(|exif| exif.as_ref().and_then(|e| e.gps)).collect();
            FitInput::Exif(ExifInput::Positions(positions))
        }
        _ => FitInput::Vectors(extracted.vectors.view()),
    }
}

fn modified_s(path: &std::path::Path) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let since_epoch = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_secs()).ok()
}
