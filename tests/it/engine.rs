//! The engine through the library: every method, clustering and evaluation path on real
//! images, determinism, and representatives.

use std::collections::HashMap;
use std::path::PathBuf;

use clustimage::batch::{self, ExtractOptions, Extracted};
use clustimage::cancel::CancelToken;
use clustimage::features::{FeatureMethod, FeatureParams};
use clustimage::imaging::{find_images, Preprocessing};
use clustimage::model::{
    self, ClusterMethod, ClusterSpace, EmbeddingKind, Evaluation, FitParams, Linkage, Model,
};

use crate::common::{adjusted_rand_index, digit_labels, fixture, picture_of};

fn extract(folder: PathBuf, method: FeatureMethod, side_px: u32) -> Extracted {
    let paths = find_images(&[folder]).unwrap().images;
    let options = ExtractOptions {
        preprocessing: Preprocessing {
            width_px: side_px,
            height_px: side_px,
            ..Default::default()
        },
        features: FeatureParams { method, ..Default::default() },
        ..Default::default()
    };
    batch::extract_files(&paths, &options, &CancelToken::new(), &|| {}).unwrap()
}

fn fit(extracted: &Extracted, params: &FitParams) -> Model {
    let input = batch::fit_input(extracted, params.method);
    model::fit(&input, params, &CancelToken::new()).unwrap()
}

/// Checks what must hold for any clustering: labels in range and used, sizes add up,
/// and each representative belongs to its own cluster.
fn assert_consistent(model: &Model) {
    let labels = &model.clustering.labels;
    let n_clusters = model.clustering.n_clusters;
    assert!(labels.iter().flatten().all(|&c| c < n_clusters));
    assert_eq!(model.representatives.len(), n_clusters);
    for representative in &model.representatives {
        assert_eq!(labels[representative.image_idx], Some(representative.cluster));
        let members = labels.iter().filter(|&&l| l == Some(representative.cluster)).count();
        assert_eq!(members, representative.size);
    }
}

#[test]
fn every_feature_method_keeps_the_versions_of_a_picture_together() {
    let methods = ["pca", "hog", "pca-hog", "pixels", "ahash", "phash", "dhash", "whash"];
    for name in methods {
        let method = FeatureMethod::from_name(name).unwrap();
        let extracted = extract(fixture("photos"), method, 128);
        let mut params = FitParams { method, ..Default::default() };
        // Four pictures in two versions each, and four pictures alone.
        params.cluster.fixed_clusters = Some(8);
        let model = fit(&extracted, &params);
        assert_consistent(&model);
        let mut cluster_of_picture: HashMap<String, Option<usize>> = HashMap::new();
        for (path, label) in extracted.paths.iter().zip(&model.clustering.labels) {
            let previous = cluster_of_picture.insert(picture_of(path), *label);
            if let Some(previous) = previous {
                assert_eq!(previous, *label, "{name}: versions of {} split", picture_of(path));
            }
        }
    }
}

fn digits() -> (Extracted, Vec<usize>) {
    let extracted = extract(fixture("digits"), FeatureMethod::Pca, 20);
    let labels = digit_labels();
    let truth =
        extracted.paths.iter().map(|p| labels[p.file_name().unwrap().to_str().unwrap()]).collect();
    (extracted, truth)
}

#[test]
fn every_clustering_and_evaluation_path_gives_sensible_digit_clusters() {
    let (extracted, _) = digits();
    let mut cases = Vec::new();
    for linkage in [Linkage::Ward, Linkage::Complete, Linkage::Average, Linkage::Single] {
        for evaluation in [Evaluation::Silhouette, Evaluation::DbIndex, Evaluation::Derivative] {
            cases.push((ClusterMethod::Agglomerative, linkage, evaluation));
        }
    }
    cases.push((ClusterMethod::KMeans, Linkage::Ward, Evaluation::Silhouette));
    cases.push((ClusterMethod::KMeans, Linkage::Ward, Evaluation::DbIndex));
    for (method, linkage, evaluation) in cases {
        let mut params = FitParams::default();
        params.cluster.method = method;
        params.cluster.linkage = linkage;
        params.cluster.evaluation = evaluation;
        let model = fit(&extracted, &params);
        assert_consistent(&model);
        let ks: Vec<usize> = model.clustering.scores.iter().map(|s| s.k).collect();
        assert_eq!(ks, (3..=25).collect::<Vec<_>>(), "{method:?} {linkage:?} {evaluation:?}");
        let chosen = model.clustering.chosen.unwrap();
        assert_eq!(chosen.k, model.clustering.n_clusters, "{method:?} {linkage:?} {evaluation:?}");
    }
}

#[test]
fn ward_with_ten_clusters_recovers_most_digits() {
    let (extracted, truth) = digits();
    let mut params = FitParams::default();
    params.cluster.fixed_clusters = Some(10);
    let model = fit(&extracted, &params);
    let ari = adjusted_rand_index(&model.clustering.labels, &truth);
    assert!(ari > 0.4, "adjusted Rand index {ari}");
}

#[test]
fn density_methods_find_digit_clusters_and_mark_noise() {
    let (extracted, truth) = digits();
    for method in [ClusterMethod::Dbscan, ClusterMethod::Hdbscan] {
        let mut params = FitParams::default();
        params.cluster.method = method;
        params.cluster.min_samples = 3;
        params.cluster.min_cluster_size = 4;
        let model = fit(&extracted, &params);
        assert_consistent(&model);
        assert!(model.clustering.n_clusters >= 2, "{method:?}");
        let clustered: Vec<(usize, usize)> = model
            .clustering
            .labels
            .iter()
            .zip(&truth)
            .filter_map(|(label, t)| label.map(|l| (l, *t)))
            .collect();
        let (labels, digits): (Vec<usize>, Vec<usize>) = clustered.into_iter().unzip();
        let ari = adjusted_rand_index(&labels, &digits);
        assert!(ari > 0.1, "{method:?}: adjusted Rand index {ari} on clustered points");
    }
}

#[test]
fn same_seed_gives_same_labels_and_embedding() {
    let (extracted, _) = digits();
    let mut params = FitParams::default().with_seed(42);
    params.cluster.method = ClusterMethod::KMeans;
    params.embedding = EmbeddingKind::Tsne;
    params.tsne.n_iterations = 300;
    let first = fit(&extracted, &params);
    let second = fit(&extracted, &params);
    assert_eq!(first.clustering.labels, second.clustering.labels);
    assert_eq!(first.embedding, second.embedding);
}

#[test]
fn clustering_in_the_plane_uses_the_embedding() {
    let (extracted, truth) = digits();
    let mut params = FitParams { cluster_space: ClusterSpace::Low, ..Default::default() };
    params.tsne.n_iterations = 500;
    params.cluster.fixed_clusters = Some(10);
    let model = fit(&extracted, &params);
    assert_consistent(&model);
    assert_eq!(model.embedding.as_ref().unwrap().dim(), (200, 2));
    let ari = adjusted_rand_index(&model.clustering.labels, &truth);
    assert!(ari > 0.3, "adjusted Rand index {ari}");
}

#[test]
fn pca_embedding_is_the_first_two_scores() {
    let (extracted, _) = digits();
    let params = FitParams { embedding: EmbeddingKind::Pca, ..Default::default() };
    let model = fit(&extracted, &params);
    let plane = model.embedding.unwrap();
    assert_eq!(plane.column(0), model.features.column(0));
}

#[test]
fn exif_time_groups_photos_by_when_they_were_taken() {
    let extracted = extract(fixture("exif"), FeatureMethod::ExifTime, 64);
    let params = FitParams { method: FeatureMethod::ExifTime, ..Default::default() };
    let model = fit(&extracted, &params);
    assert_consistent(&model);
    let times: Vec<i64> =
        extracted.exif.iter().map(|e| e.as_ref().unwrap().taken_at_unix_s.unwrap()).collect();
    let apart_h = (times[0] - times[1]).abs() as f64 / 3600.0;
    let expected = if apart_h < 5.0 { 1 } else { 2 };
    assert_eq!(model.clustering.n_clusters, expected, "photos {apart_h:.1} h apart");
}

#[test]
fn exif_gps_puts_photos_without_a_position_in_noise() {
    let extracted = extract(fixture("exif"), FeatureMethod::ExifGps, 64);
    let params = FitParams { method: FeatureMethod::ExifGps, ..Default::default() };
    let model = fit(&extracted, &params);
    let with_gps: Vec<bool> =
        extracted.exif.iter().map(|e| e.as_ref().and_then(|e| e.gps).is_some()).collect();
    assert_eq!(with_gps.iter().filter(|&&g| g).count(), 1);
    for (label, has_gps) in model.clustering.labels.iter().zip(with_gps) {
        assert_eq!(label.is_some(), has_gps);
    }
}

#[test]
fn mean_images_have_the_thumbnail_size() {
    let extracted = extract(fixture("photos"), FeatureMethod::Pca, 64);
    let model = fit(&extracted, &FitParams::default());
    let means = batch::result::mean_images(&extracted, &model);
    assert_eq!(means.len(), model.clustering.n_clusters);
    assert!(means.iter().all(|m| m.width() == 64 && m.height() == 64));
}
