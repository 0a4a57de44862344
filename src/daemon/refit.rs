//! Fitting the model on the stored features, building its index, and keeping both on disk.
//!
//! The data folder holds `model.bin` (a [`Fitted`], bincode) and `index/` (the HNSW dump).
//! Both are written beside the old ones and renamed into place, so a crash leaves either
//! the old pair or the new one. Both are derived: a model that cannot be read is refitted,
//! an index that fails its checks is rebuilt from the model.
//!
//! A refit never holds every raw feature vector at once (the pixels of a 128x128 thumbnail
//! are 64 KB): the PCA is fitted on a sample and the store is projected a chunk at a time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use ndarray::Array2;

use super::library::{Fitted, View};
use crate::cancel::CancelToken;
use crate::index::{HnswIndex, IndexError, IndexParams, VectorIndex};
use crate::model::cluster::sample_indices;
use crate::model::distribution::FittedDistribution;
use crate::model::find::FindParams;
use crate::model::{self, FitParams, ModelError, Pca};
use crate::store::{ContentId, FeatureKey, Store, StoreError};

/// Bumped whenever [`Fitted`]'s encoding changes.
const MODEL_FORMAT: u32 = 2;
const MODEL_FILE: &str = "model.bin";
const INDEX_DIR: &str = "index";

/// Why a refit, or loading its result, failed.
#[derive(Debug, thiserror::Error)]
pub enum RefitError {
    #[error("{n_images} images is too few to fit a model (at least {min_images})")]
    TooFewImages { n_images: usize, min_images: usize },
    #[error("no stored features for image {0}")]
    MissingFeatures(ContentId),
    #[error("fit: {0}")]
    Model(#[from] ModelError),
    #[error("index: {0}")]
    Index(#[from] IndexError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot write {path}: {cause}")]
    Write { path: PathBuf, cause: std::io::Error },
    #[error("{path} is unreadable: {message}")]
    Unreadable { path: PathBuf, message: String },
}

/// Everything a refit needs besides the contents.
#[derive(Debug, Clone)]
pub struct RefitParams {
    pub fit: FitParams,
    pub index: IndexParams,
    pub feature_key: FeatureKey,
    pub min_images: usize,
}

impl RefitParams {
    /// The fingerprint of a fit of `contents` with these parameters.
    pub fn fingerprint(&self, contents: &[ContentId]) -> [u8; 32] {
        Fitted::fingerprint(contents, &(MODEL_FORMAT, &self.fit, self.feature_key))
    }
}

/// Fits a model on `contents` (sorted), builds its index, saves both in `data_dir`.
pub fn refit(
    contents: Vec<ContentId>,
    store: &Store,
    params: &RefitParams,
    data_dir: &Path,
    cancel: &CancelToken,
) -> Result<View, RefitError> {
    let started = Instant::now();
    if contents.len() < params.min_images {
        let (n_images, min_images) = (contents.len(), params.min_images);
        return Err(RefitError::TooFewImages { n_images, min_images });
    }
    let (pca, features) = reduce(&contents, store, params, cancel)?;
    let model = model::fit_reduced(pca, features, &params.fit, cancel)?;
    let null = fit_null(&model, params.fit.pca.seed);
    let fitted = Fitted {
        fingerprint: params.fingerprint(&contents),
        contents,
        model,
        null,
        fitted_at_unix_s: unix_now_s(),
        duration_s: started.elapsed().as_secs_f64(),
    };
    let index = build_index(&fitted, &params.index)?;
    save(&fitted, &index, data_dir)?;
    Ok(View::new(Arc::new(fitted), index))
}

/// The null distribution of distances over the model's rows; logged and left out when
/// the rows are too alike to fit one.
fn fit_null(model: &model::Model, seed: u64) -> Option<FittedDistribution> {
    let params = FindParams { seed, ..FindParams::default() };
    match model::find::fit_null(model.features.view(), &params) {
        Ok(null) => Some(null),
        Err(error) => {
            tracing::warn!(%error, "no null distribution of distances: hits get no p-value");
            None
        }
    }
}

/// Rows read from the store at once while projecting.
const PROJECT_CHUNK: usize = 4096;

/// The reduced features of `contents`, without ever holding every raw vector: the PCA is
/// fitted on a seeded sample, then the store is read and projected a chunk at a time.
/// Methods without PCA keep their raw features, widened to `f64`.
fn reduce(
    contents: &[ContentId],
    store: &Store,
    params: &RefitParams,
    cancel: &CancelToken,
) -> Result<(Option<Pca>, Array2<f64>), RefitError> {
    let key = &params.feature_key;
    if !params.fit.method.uses_pca() {
        return Ok((None, load_vectors(contents, store, key)?.mapv(f64::from)));
    }
    let pca_params = &params.fit.pca;
    let sample = sample_indices(contents.len(), pca_params.max_fit_images, pca_params.seed);
    let sampled: Vec<ContentId> = sample.iter().map(|&row| contents[row]).collect();
    let pca = Pca::fit(load_vectors(&sampled, store, key)?.view(), pca_params)?;
    let mut features = Array2::zeros((contents.len(), pca.n_components()));
    for (chunk_idx, chunk) in contents.chunks(PROJECT_CHUNK).enumerate() {
        if cancel.is_cancelled() {
            return Err(ModelError::Cancelled.into());
        }
        let projected = pca.transform(load_vectors(chunk, store, key)?.view());
        let start = chunk_idx * PROJECT_CHUNK;
        features.slice_mut(ndarray::s![start..start + chunk.len(), ..]).assign(&projected);
    }
    Ok((Some(pca), features))
}

/// Stacks the stored feature vectors of `contents` into one table.
fn load_vectors(
    contents: &[ContentId],
    store: &Store,
    key: &FeatureKey,
) -> Result<Array2<f32>, RefitError> {
    let mut table: Option<Array2<f32>> = None;
    for (row, content) in contents.iter().enumerate() {
        let vector = store.features(content, key)?.ok_or(RefitError::MissingFeatures(*content))?;
        let table = table.get_or_insert_with(|| Array2::zeros((contents.len(), vector.len())));
        if vector.len() != table.ncols() {
            let message = format!("{} values, others have {}", vector.len(), table.ncols());
            return Err(StoreError::Corrupt { key: format!("features/{content}"), message }.into());
        }
        table.row_mut(row).assign(&ndarray::ArrayView1::from(&vector));
    }
    Ok(table.unwrap_or_else(|| Array2::zeros((0, 0))))
}

fn build_index(fitted: &Fitted, params: &IndexParams) -> Result<HnswIndex, IndexError> {
    let points = fitted.points();
    let dim = fitted.model.features.ncols();
    let pairs: Vec<(usize, &[f32])> =
        points.iter().enumerate().map(|(id, point)| (id, point.as_slice())).collect();
    HnswIndex::build(dim, &pairs, *params)
}

/// Writes the model and its index, each beside the old one and then renamed into place.
fn save(fitted: &Fitted, index: &HnswIndex, data_dir: &Path) -> Result<(), RefitError> {
    let index_dir = data_dir.join(INDEX_DIR);
    index.save(&index_dir, &tag(fitted))?;
    let path = data_dir.join(MODEL_FILE);
    let temporary = data_dir.join(format!("{MODEL_FILE}.tmp"));
    let write_error = |cause| RefitError::Write { path: path.clone(), cause };
    let mut bytes = MODEL_FORMAT.to_le_bytes().to_vec();
    bytes.extend(crate::store::encode_value(fitted));
    let mut file = std::fs::File::create(&temporary).map_err(write_error)?;
    file.write_all(&bytes).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    std::fs::rename(&temporary, &path).map_err(write_error)?;
    Ok(())
}

/// The name under which a model's index is saved, so that an index of another model is
/// never taken for this one's.
fn tag(fitted: &Fitted) -> String {
    blake3::Hash::from_bytes(fitted.fingerprint).to_hex()[..16].to_string()
}

/// Loads the saved model and its index. `Ok(None)` when there is no saved model; an
/// unreadable model is an error (the caller refits); an index that fails its checks is
/// rebuilt from the model and saved again.
pub fn load(data_dir: &Path, params: &IndexParams) -> Result<Option<View>, RefitError> {
    let path = data_dir.join(MODEL_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(RefitError::Unreadable { path, message: error.to_string() }),
    };
    let unreadable = |message: String| RefitError::Unreadable { path: path.clone(), message };
    let (format, body) = bytes.split_at_checked(4).ok_or_else(|| unreadable("truncated".into()))?;
    let format = u32::from_le_bytes(format.try_into().expect("4 bytes"));
    if format != MODEL_FORMAT {
        return Err(unreadable(format!("format {format}, this build reads {MODEL_FORMAT}")));
    }
    let fitted: Fitted = crate::store::decode_value(body, || path.display().to_string())
        .map_err(|error| unreadable(error.to_string()))?;
    let dim = fitted.model.features.ncols();
    let index_dir = data_dir.join(INDEX_DIR);
    let index = match HnswIndex::load(&index_dir, &tag(&fitted), dim, *params) {
        Ok(index) if index.len() == fitted.contents.len() => index,
        outcome => {
            let reason = match outcome {
                Ok(index) => format!("{} points for {} images", index.len(), fitted.contents.len()),
                Err(error) => error.to_string(),
            };
            tracing::warn!(%reason, "saved index unusable; rebuilding it from the model");
            let index = build_index(&fitted, params)?;
            index.save(&index_dir, &tag(&fitted))?;
            index
        }
    };
    Ok(Some(View::new(Arc::new(fitted), index)))
}

pub fn unix_now_s() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}
