//! Loading many files in parallel into one table of features and thumbnails.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use rayon::prelude::*;

use super::BatchError;
use crate::cancel::CancelToken;
use crate::features::{self, FeatureParams};
use crate::imaging::exif::ExifFields;
use crate::imaging::{self, LoadLimits, Preprocessing};

/// How files are read and described.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ExtractOptions {
    pub limits: LoadLimits,
    pub preprocessing: Preprocessing,
    pub features: FeatureParams,
}

/// A file that was left out, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// Everything known about the images that could be read, in one order.
#[derive(Debug, Clone)]
pub struct Extracted {
    /// Where each image came from (a file, or `ARRAY.npy[row]`).
    pub paths: Vec<PathBuf>,
    /// Feature vectors, shape `(n_images, n_features)`; zero columns for EXIF methods.
    pub vectors: Array2<f32>,
    /// Thumbnails' values in `[0, 1]`, shape `(n_images, n_values)`, for mean images.
    pub thumbnails: Array2<f32>,
    pub thumbnail_width_px: u32,
    pub thumbnail_height_px: u32,
    pub exif: Vec<Option<ExifFields>>,
    /// Files left out, with the reason.
    pub skipped: Vec<Skipped>,
}

impl Extracted {
    pub fn n_images(&self) -> usize {
        self.paths.len()
    }
}

/// One image's share of an [`Extracted`] table.
pub(crate) struct Row {
    pub path: PathBuf,
    pub vector: Vec<f32>,
    pub thumbnail: Vec<f32>,
    pub exif: Option<ExifFields>,
}

/// Loads and describes `paths` on all cores. Unreadable files are skipped with a reason;
/// `on_progress` is called once per file.
pub fn extract_files(
    paths: &[PathBuf],
    options: &ExtractOptions,
    cancel: &CancelToken,
    on_progress: &(dyn Fn() + Sync),
) -> Result<Extracted, BatchError> {
    options.preprocessing.validate()?;
    let outcomes: Vec<Option<Result<Row, Skipped>>> = paths
        .par_iter()
        .map(|path| {
            if cancel.is_cancelled() {
                return None;
            }
            let outcome = extract_one(path, options);
            on_progress();
            Some(outcome)
        })
        .collect();
    if cancel.is_cancelled() {
        return Err(BatchError::Cancelled);
    }
    let mut rows = Vec::with_capacity(paths.len());
    let mut skipped = Vec::new();
    for outcome in outcomes.into_iter().flatten() {
        match outcome {
            Ok(row) => rows.push(row),
            Err(skip) => {
                tracing::warn!(path = %skip.path.display(), cause = %skip.reason, "skipped");
                skipped.push(skip);
            }
        }
    }
    assemble(rows, skipped, &options.preprocessing)
}

fn extract_one(path: &Path, options: &ExtractOptions) -> Result<Row, Skipped> {
    let skip = |reason: String| Skipped { path: path.to_path_buf(), reason };
    let loaded = imaging::load_file(path, &options.limits, &options.preprocessing)
        .map_err(|error| skip(error.to_string()))?;
    let thumbnail = loaded.pixel_values();
    let vector = if options.features.method.uses_exif() {
        Vec::new()
    } else {
        features::extract(&loaded.gray, &thumbnail, &options.features)
            .map_err(|error| skip(format!("{}: {error}", path.display())))?
    };
    Ok(Row { path: path.to_path_buf(), vector, thumbnail, exif: loaded.exif })
}

/// Stacks rows into one table; every row has the same lengths by construction.
pub(crate) fn assemble(
    rows: Vec<Row>,
    skipped: Vec<Skipped>,
    preprocessing: &Preprocessing,
) -> Result<Extracted, BatchError> {
    if rows.is_empty() {
        return Err(BatchError::NoImages { n_skipped: skipped.len() });
    }
    let n_images = rows.len();
    let n_features = rows[0].vector.len();
    let n_values = rows[0].thumbnail.len();
    let mut vectors = Array2::<f32>::zeros((n_images, n_features));
    let mut thumbnails = Array2::<f32>::zeros((n_images, n_values));
    let mut paths = Vec::with_capacity(n_images);
    let mut exif = Vec::with_capacity(n_images);
    for (idx, row) in rows.into_iter().enumerate() {
        vectors.row_mut(idx).assign(&ndarray::ArrayView1::from(&row.vector));
        thumbnails.row_mut(idx).assign(&ndarray::ArrayView1::from(&row.thumbnail));
        paths.push(row.path);
        exif.push(row.exif);
    }
    Ok(Extracted {
        paths,
        vectors,
        thumbnails,
        thumbnail_width_px: preprocessing.width_px,
        thumbnail_height_px: preprocessing.height_px,
        exif,
        skipped,
    })
}
