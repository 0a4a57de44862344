//! The numeric core above the features: PCA, clustering with the choice of the number of
//! clusters, the 2-D embedding, the representative ("unique") image of each cluster, and
//! `find` with its null distribution of distances. [`fit`] runs the whole model at once.
//!
//! This layer works on arrays only: it knows nothing of files, stores or transports.

pub mod cluster;
pub mod distribution;
pub mod evaluate;
pub mod find;
pub mod geo;
pub mod pca;
pub mod tsne;
pub mod unique;

use ndarray::{s, Array2, ArrayView2};

use crate::cancel::CancelToken;
use crate::features::FeatureMethod;
pub use cluster::{ClusterMethod, ClusterParams, Clustering, Evaluation, Linkage, SearchScore};
pub use geo::{ExifClusterParams, ExifInput};
pub use pca::{ComponentCount, Pca, PcaParams};
pub use tsne::TsneParams;
pub use unique::Representative;

/// Why the model could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{step} needs at least {min_images} images, got {n_images}")]
    TooFewImages { n_images: usize, min_images: usize, step: &'static str },
    #[error("{step}: {reason}")]
    Degenerate { step: &'static str, reason: &'static str },
    #[error("invalid parameter {field}: {message}")]
    InvalidParameter { field: &'static str, message: String },
    #[error("{step} failed: {message}")]
    Algorithm { step: &'static str, message: String },
    #[error("t-sne: {0}")]
    Tsne(#[from] tsne::TsneError),
    #[error("cancelled")]
    Cancelled,
}

/// Which 2-D embedding to compute, for plots and for clustering in the plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingKind {
    None,
    Tsne,
    Pca,
}

/// Where the clustering runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterSpace {
    /// The feature space (after PCA where the method has it); the default.
    High,
    /// The 2-D embedding.
    Low,
}

/// Everything the fit needs to know besides the data.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitParams {
    pub method: FeatureMethod,
    pub pca: PcaParams,
    pub cluster: ClusterParams,
    pub embedding: EmbeddingKind,
    pub cluster_space: ClusterSpace,
    pub tsne: TsneParams,
    pub exif: ExifClusterParams,
}

impl Default for FitParams {
    fn default() -> Self {
        FitParams {
            method: FeatureMethod::Pca,
            pca: PcaParams::default(),
            cluster: ClusterParams::default(),
            embedding: EmbeddingKind::None,
            cluster_space: ClusterSpace::High,
            tsne: TsneParams::default(),
            exif: ExifClusterParams::default(),
        }
    }
}

impl FitParams {
    /// Sets one seed for every random step.
    pub fn with_seed(mut self, seed: u64) -> FitParams {
        self.pca.seed = seed;
        self.cluster.seed = seed;
        self.tsne.seed = seed;
        self
    }
}

/// The input of a fit: a feature vector per image, or EXIF fields for EXIF methods.
/// Vectors are borrowed: they are the largest array of a run and need no copy.
#[derive(Debug, Clone)]
pub enum FitInput<'a> {
    /// Shape `(n_images, n_features)`.
    Vectors(ArrayView2<'a, f32>),
    Exif(ExifInput),
}

/// A fitted model of a set of images.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Model {
    pub method: FeatureMethod,
    /// The PCA, for methods that use one.
    pub pca: Option<Pca>,
    /// The reduced features, shape `(n_images, n_dims)`: PCA scores, raw features, or
    /// EXIF coordinates. `find` searches here.
    pub features: Array2<f64>,
    /// Whether the clustering ran on `features` or on the embedding.
    pub cluster_space: ClusterSpace,
    pub clustering: Clustering,
    /// The 2-D embedding, shape `(n_images, 2)`, when one was asked for or needed.
    pub embedding: Option<Array2<f64>>,
    /// One per cluster, in cluster order.
    pub representatives: Vec<Representative>,
}

/// Fits the whole model: reduce, embed if needed, cluster, pick representatives.
pub fn fit(
    input: &FitInput<'_>,
    params: &FitParams,
    cancel: &CancelToken,
) -> Result<Model, ModelError> {
    let started = std::time::Instant::now();
    let (pca, features) = match input {
        FitInput::Vectors(vectors) => reduce(*vectors, params)?,
        FitInput::Exif(exif) => return geo::fit(exif, params, cancel),
    };
    tracing::debug!(
        elapsed_s = started.elapsed().as_secs_f64(),
        dims = features.ncols(),
        "reduced"
    );
    fit_reduced(pca, features, params, cancel)
}

/// Fits the rest of the model (embedding, clustering, representatives) on features that
/// are already reduced: PCA scores from `pca`, or the raw features when there is no PCA.
///
/// This is the second half of [`fit`], for callers that cannot hold every raw feature
/// vector in memory at once: they fit the PCA on a sample and project the rest in chunks.
pub fn fit_reduced(
    pca: Option<Pca>,
    features: Array2<f64>,
    params: &FitParams,
    cancel: &CancelToken,
) -> Result<Model, ModelError> {
    let started = std::time::Instant::now();
    check(cancel)?;
    let embedding = embed(features.view(), pca.as_ref(), params, cancel)?;
    tracing::debug!(elapsed_s = started.elapsed().as_secs_f64(), "embedded");
    let space = match (params.cluster_space, &embedding) {
        (ClusterSpace::Low, Some(plane)) => plane.view(),
        _ => features.view(),
    };
    let clustering = cluster::cluster(space, &params.cluster, cancel)?;
    tracing::debug!(elapsed_s = started.elapsed().as_secs_f64(), "clustered");
    let representatives = unique::representatives(space, &clustering.labels);
    let cluster_space = params.cluster_space;
    Ok(Model {
        method: params.method,
        pca,
        features,
        cluster_space,
        clustering,
        embedding,
        representatives,
    })
}

impl Model {
    /// Maps a new image's raw feature vector into the space of [`Model::features`].
    pub fn project(&self, vector: &[f32]) -> Result<ndarray::Array1<f64>, ModelError> {
        let n_expected = match &self.pca {
            Some(pca) => pca.mean.len(),
            None => self.features.ncols(),
        };
        if self.method.uses_exif() || vector.len() != n_expected {
            let message = format!("expected {n_expected} values, got {}", vector.len());
            return Err(ModelError::InvalidParameter { field: "query", message });
        }
        let row = ndarray::ArrayView2::from_shape((1, vector.len()), vector).expect("one row");
        Ok(match &self.pca {
            Some(pca) => pca.transform(row).row(0).to_owned(),
            None => row.row(0).mapv(f64::from),
        })
    }
}

fn check(cancel: &CancelToken) -> Result<(), ModelError> {
    if cancel.is_cancelled() {
        return Err(ModelError::Cancelled);
    }
    Ok(())
}

/// Applies PCA where the method has it; otherwise widens the features to `f64`.
fn reduce(
    vectors: ArrayView2<'_, f32>,
    params: &FitParams,
) -> Result<(Option<Pca>, Array2<f64>), ModelError> {
    if !params.method.uses_pca() {
        return Ok((None, vectors.mapv(f64::from)));
    }
    let pca = Pca::fit(vectors, &params.pca)?;
    let projected = pca.transform(vectors);
    Ok((Some(pca), projected))
}

/// Computes the embedding when asked for, or when the clustering runs in the plane.
fn embed(
    features: ArrayView2<'_, f64>,
    pca: Option<&Pca>,
    params: &FitParams,
    cancel: &CancelToken,
) -> Result<Option<Array2<f64>>, ModelError> {
    let kind = match (params.embedding, params.cluster_space) {
        (EmbeddingKind::None, ClusterSpace::Low) => EmbeddingKind::Tsne,
        (kind, _) => kind,
    };
    match kind {
        EmbeddingKind::None => Ok(None),
        EmbeddingKind::Tsne => {
            let should_stop = || cancel.is_cancelled();
            Ok(Some(tsne::embed(features, &params.tsne, &should_stop)?))
        }
        EmbeddingKind::Pca => Ok(Some(pca_plane(features, pca, params)?)),
    }
}

/// The first two principal components: the PCA scores' first columns when the features
/// already are PCA scores, otherwise a fresh two-component PCA.
pub(crate) fn pca_plane(
    features: ArrayView2<'_, f64>,
    pca: Option<&Pca>,
    params: &FitParams,
) -> Result<Array2<f64>, ModelError> {
    if pca.is_some_and(|p| p.n_components() >= 2) {
        return Ok(features.slice(s![.., ..2]).to_owned());
    }
    let narrow = features.mapv(|v| v as f32);
    let plane_params = PcaParams { components: ComponentCount::Fixed(2), ..params.pca };
    let plane = Pca::fit(narrow.view(), &plane_params)?;
    let mut projected = plane.transform(narrow.view());
    if projected.ncols() < 2 {
        let mut padded = Array2::zeros((projected.nrows(), 2));
        padded.slice_mut(s![.., ..projected.ncols()]).assign(&projected);
        projected = padded;
    }
    Ok(projected)
}
