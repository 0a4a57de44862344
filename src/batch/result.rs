//! The result of a batch run, as written to JSON with `--out`.
//!
//! Fields, for scripts:
//! - `images`: one entry per image read: `path`, `cluster` (0-based; [`NOISE_LABEL`] for
//!   noise), `representative` (true for the image that stands for its cluster), and
//!   `embedding` (`[x, y]`) when a 2-D embedding was computed;
//! - `clusters`: one per cluster, largest first: `id`, `size`, `representative` (a path),
//!   `representative_distance` (to the cluster's centre, in the clustered space);
//! - `n_images`, `n_clusters`, `n_noise`, `n_skipped`, and `skipped` (`path`, `reason`);
//! - `evaluation`: the `method`, the `scores` of every candidate tried (`k`, `eps` for
//!   DBSCAN, `score`, null where undefined) and the `chosen` one;
//! - `pca`: `n_components` and `explained_variance_ratio`, null without PCA;
//! - `params`: every setting of the run, so that it can be reproduced.

use std::path::PathBuf;

use image::{DynamicImage, GrayImage, RgbImage};

use super::{Extracted, Skipped};
use crate::model::{unique, FitParams, Model, SearchScore};

/// The `cluster` value of images that belong to no cluster.
pub const NOISE_LABEL: i64 = -1;

/// Version of the JSON layout; bumped when a field changes meaning.
pub const RESULT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BatchResult {
    pub format_version: u32,
    pub method: String,
    pub n_images: usize,
    pub n_clusters: usize,
    pub n_noise: usize,
    pub n_skipped: usize,
    pub images: Vec<ImageSummary>,
    pub clusters: Vec<ClusterSummary>,
    pub evaluation: EvaluationSummary,
    pub pca: Option<PcaSummary>,
    pub skipped: Vec<Skipped>,
    pub params: FitParams,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageSummary {
    pub path: PathBuf,
    pub cluster: i64,
    pub representative: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub embedding: Option<[f64; 2]>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterSummary {
    pub id: usize,
    pub size: usize,
    pub representative: PathBuf,
    pub representative_distance: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvaluationSummary {
    pub method: String,
    pub scores: Vec<SearchScore>,
    pub chosen: Option<SearchScore>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PcaSummary {
    pub n_components: usize,
    pub explained_variance_ratio: Vec<f64>,
}

impl BatchResult {
    /// Puts the extracted set and its fitted model into the published shape.
    pub fn new(extracted: &Extracted, model: &Model, params: &FitParams) -> BatchResult {
        let labels = &model.clustering.labels;
        let representatives: Vec<usize> =
            model.representatives.iter().map(|r| r.image_idx).collect();
        let images = extracted
            .paths
            .iter()
            .enumerate()
            .map(|(idx, path)| ImageSummary {
                path: path.clone(),
                cluster: labels[idx].map_or(NOISE_LABEL, |c| c as i64),
                representative: representatives.contains(&idx),
                embedding: model.embedding.as_ref().map(|e| [e[[idx, 0]], e[[idx, 1]]]),
            })
            .collect();
        let clusters = model
            .representatives
            .iter()
            .map(|r| ClusterSummary {
                id: r.cluster,
                size: r.size,
                representative: extracted.paths[r.image_idx].clone(),
                representative_distance: r.distance_to_centre,
            })
            .collect();
        let evaluation = EvaluationSummary {
            method: evaluation_name(model, params).to_string(),
            scores: model.clustering.scores.clone(),
            chosen: model.clustering.chosen,
        };
        let pca = model.pca.as_ref().map(|pca| PcaSummary {
            n_components: pca.n_components(),
            explained_variance_ratio: pca.explained_variance_ratio.clone(),
        });
        BatchResult {
            format_version: RESULT_FORMAT_VERSION,
            method: model.method.name().to_string(),
            n_images: extracted.n_images(),
            n_clusters: model.clustering.n_clusters,
            n_noise: labels.iter().filter(|label| label.is_none()).count(),
            n_skipped: extracted.skipped.len(),
            images,
            clusters,
            evaluation,
            pca,
            skipped: extracted.skipped.clone(),
            params: params.clone(),
        }
    }
}

/// The mean image of every cluster, in cluster order.
pub fn mean_images(extracted: &Extracted, model: &Model) -> Vec<DynamicImage> {
    let means = unique::cluster_means(
        extracted.thumbnails.view(),
        &model.clustering.labels,
        model.clustering.n_clusters,
    );
    let (width, height) = (extracted.thumbnail_width_px, extracted.thumbnail_height_px);
    let is_rgb = extracted.thumbnails.ncols() == 3 * (width * height) as usize;
    means
        .rows()
        .into_iter()
        .map(|row| {
            let bytes: Vec<u8> =
                row.iter().map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8).collect();
            if is_rgb {
                DynamicImage::ImageRgb8(
                    RgbImage::from_raw(width, height, bytes).expect("full image"),
                )
            } else {
                DynamicImage::ImageLuma8(
                    GrayImage::from_raw(width, height, bytes).expect("full image"),
                )
            }
        })
        .collect()
}

fn evaluation_name(model: &Model, params: &FitParams) -> &'static str {
    use crate::model::{ClusterMethod, Evaluation};
    if model.method.uses_exif() || params.cluster.method == ClusterMethod::Hdbscan {
        return "none";
    }
    if params.cluster.fixed_clusters.is_some() && params.cluster.method != ClusterMethod::Dbscan {
        return "fixed";
    }
    match (params.cluster.method, params.cluster.evaluation) {
        (ClusterMethod::Dbscan, _) => "silhouette",
        (_, Evaluation::Silhouette) => "silhouette",
        (_, Evaluation::DbIndex) => "dbindex",
        (_, Evaluation::Derivative) => "derivative",
    }
}
