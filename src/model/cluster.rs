//! Clustering the projected features: agglomerative (Ward, complete, average, single),
//! k-means, DBSCAN and HDBSCAN, with the number of clusters (or DBSCAN's radius) chosen
//! by an evaluation score.
//!
//! To stay within memory on large libraries, the quadratic methods run on a seeded sample
//! of at most `max_fit_images` images and the rest are assigned afterwards: to the nearest
//! centroid for Ward, complete and average linkage, to the nearest fitted image for single
//! linkage, DBSCAN and HDBSCAN. K-means fits its search on the sample and then labels all.
//! Labels are renumbered so that cluster 0 is the largest; noise is `None`.

use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::evaluate::{self, CondensedDistances, DistanceMatrix};
use super::ModelError;
use crate::cancel::CancelToken;

/// How clusters are merged in agglomerative clustering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Linkage {
    Ward,
    Complete,
    Average,
    Single,
}

/// The clustering algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterMethod {
    Agglomerative,
    KMeans,
    Dbscan,
    Hdbscan,
}

/// The score that picks the number of clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Evaluation {
    /// Mean silhouette coefficient, higher is better.
    Silhouette,
    /// Davies-Bouldin index, lower is better.
    DbIndex,
    /// Second difference of the agglomerative merge heights, higher is better.
    Derivative,
}

/// Settings of the clustering step. Build with [`ClusterParams::validate`] before use.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterParams {
    pub method: ClusterMethod,
    pub linkage: Linkage,
    pub evaluation: Evaluation,
    /// Smallest number of clusters tried. Default 3.
    pub min_clusters: usize,
    /// Largest number of clusters tried, inclusive. Default 25.
    pub max_clusters: usize,
    /// Fixes the number of clusters instead of searching.
    pub fixed_clusters: Option<usize>,
    /// The search takes the smallest k whose silhouette or Davies-Bouldin score is within
    /// this share of the best one. Scores of image collections are flat near their peak,
    /// so differences this small are noise and the simpler answer is preferred. Default
    /// 0.02; 0 takes the plain optimum. Not used by the derivative method.
    pub k_tolerance: f64,
    /// DBSCAN's neighbourhood radius; searched when absent.
    pub eps: Option<f64>,
    /// Neighbours (including itself) that make a DBSCAN core point, and HDBSCAN's
    /// `min_samples`. Default 5.
    pub min_samples: usize,
    /// HDBSCAN's smallest cluster. Default 5.
    pub min_cluster_size: usize,
    /// Quadratic methods run on a sample of at most this many images. Default 10,000.
    pub max_fit_images: usize,
    /// The silhouette is computed on a sample of at most this many images. Default 5,000.
    pub max_silhouette_images: usize,
    pub seed: u64,
}

impl Default for ClusterParams {
    fn default() -> Self {
        ClusterParams {
            method: ClusterMethod::Agglomerative,
            linkage: Linkage::Ward,
            evaluation: Evaluation::Silhouette,
            min_clusters: 3,
            max_clusters: 25,
            fixed_clusters: None,
            k_tolerance: 0.02,
            eps: None,
            min_samples: 5,
            min_cluster_size: 5,
            max_fit_images: 10_000,
            max_silhouette_images: 5_000,
            seed: 0,
        }
    }
}

impl ClusterParams {
    /// Checks the settings against each other, naming the first bad field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let invalid = |field: &'static str, message: String| {
            Err(ModelError::InvalidParameter { field, message })
        };
        if self.min_clusters < 2 {
            return invalid("min_clust", format!("{} is below 2", self.min_clusters));
        }
        if self.max_clusters < self.min_clusters {
            let message = format!("{} is below min_clust {}", self.max_clusters, self.min_clusters);
            return invalid("max_clust", message);
        }
        if !(0.0..1.0).contains(&self.k_tolerance) {
            return invalid("k_tolerance", format!("{} is outside [0, 1)", self.k_tolerance));
        }
        if self.fixed_clusters == Some(0) {
            return invalid("k", "must be at least 1".into());
        }
        if self.eps.is_some_and(|eps| !(eps.is_finite() && eps > 0.0)) {
            return invalid("eps", "must be a positive number".into());
        }
        if self.min_samples == 0 || self.min_cluster_size < 2 {
            return invalid(
                "min_samples",
                "min_samples must be >= 1, min_cluster_size >= 2".into(),
            );
        }
        if self.max_fit_images < 10 || self.max_silhouette_images < 10 {
            return invalid("max_fit_images", "sample sizes must be at least 10".into());
        }
        if self.evaluation == Evaluation::Derivative && self.method != ClusterMethod::Agglomerative
        {
            return invalid("evaluate", "derivative needs agglomerative clustering".into());
        }
        Ok(())
    }
}

/// The score of one candidate setting tried during the search.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchScore {
    /// Number of clusters this candidate gave.
    pub k: usize,
    /// DBSCAN's radius for this candidate.
    pub eps: Option<f64>,
    /// The evaluation's value; `None` where it is undefined (a single cluster).
    pub score: Option<f64>,
}

/// One merge of the agglomerative dendrogram, in `kodama`'s labelling: leaves are
/// `0..n_fit_images`, merge `i` creates cluster `n_fit_images + i`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Merge {
    pub left: usize,
    pub right: usize,
    pub height: f64,
    pub size: usize,
}

/// The outcome of clustering.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Clustering {
    /// One label per image, `None` for noise; cluster 0 is the largest.
    pub labels: Vec<Option<usize>>,
    pub n_clusters: usize,
    /// Every candidate tried, in the order tried.
    pub scores: Vec<SearchScore>,
    /// The candidate chosen, when there was a search.
    pub chosen: Option<SearchScore>,
    /// The images the quadratic step ran on (all of them unless sampled).
    pub fit_indices: Vec<usize>,
    /// The dendrogram over `fit_indices`, for agglomerative clustering.
    pub dendrogram: Vec<Merge>,
}

/// Clusters `points`, shape `(n_images, n_dims)`.
pub fn cluster(
    points: ArrayView2<'_, f64>,
    params: &ClusterParams,
    cancel: &CancelToken,
) -> Result<Clustering, ModelError> {
    params.validate()?;
    let n_images = points.nrows();
    if n_images < 3 {
        return Err(ModelError::TooFewImages { n_images, min_images: 3, step: "clustering" });
    }
    let fit_indices = sample_indices(n_images, params.max_fit_images, params.seed);
    let fit_points = points.select(Axis(0), &fit_indices);
    let scorer = Scorer::new(fit_points.view(), params);
    let mut outcome = match params.method {
        ClusterMethod::Agglomerative => agglomerative(fit_points.view(), params, &scorer, cancel)?,
        ClusterMethod::KMeans => kmeans(points, fit_points.view(), params, &scorer, cancel)?,
        ClusterMethod::Dbscan => dbscan(fit_points.view(), params, &scorer, cancel)?,
        ClusterMethod::Hdbscan => hdbscan(fit_points.view(), params)?,
    };
    if outcome.labels.len() != n_images {
        outcome.labels = assign_rest(points, &fit_indices, &outcome.labels, params);
    }
    let (labels, n_clusters) = renumber_by_size(&outcome.labels);
    let Outcome { scores, chosen, dendrogram, .. } = outcome;
    Ok(Clustering { labels, n_clusters, scores, chosen, fit_indices, dendrogram })
}

/// Mean of each cluster's points, shape `(n_clusters, n_dims)`; empty clusters stay zero.
pub fn centroids(
    points: ArrayView2<'_, f64>,
    labels: &[Option<usize>],
    n_clusters: usize,
) -> Array2<f64> {
    let mut sums = Array2::<f64>::zeros((n_clusters, points.ncols()));
    let mut counts = vec![0usize; n_clusters];
    for (row, label) in points.axis_iter(Axis(0)).zip(labels) {
        if let Some(cluster) = *label {
            sums.row_mut(cluster).scaled_add(1.0, &row);
            counts[cluster] += 1;
        }
    }
    for (mut row, count) in sums.axis_iter_mut(Axis(0)).zip(counts) {
        if count > 0 {
            row /= count as f64;
        }
    }
    sums
}

/// Row indices of a seeded sample of at most `max_images`, sorted; all when fewer.
pub fn sample_indices(n_images: usize, max_images: usize, seed: u64) -> Vec<usize> {
    if n_images <= max_images {
        return (0..n_images).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut chosen = rand::seq::index::sample(&mut rng, n_images, max_images).into_vec();
    chosen.sort_unstable();
    chosen
}

/// Computes the chosen evaluation for candidate labelings of the fitted points.
struct Scorer<'a> {
    evaluation: Evaluation,
    points: ArrayView2<'a, f64>,
    /// For the silhouette: which fitted points it samples, and their distances.
    silhouette_sample: Option<(Vec<usize>, DistanceMatrix)>,
}

impl<'a> Scorer<'a> {
    fn new(points: ArrayView2<'a, f64>, params: &ClusterParams) -> Scorer<'a> {
        let needs_silhouette =
            params.evaluation == Evaluation::Silhouette || params.method == ClusterMethod::Dbscan;
        let silhouette_sample = needs_silhouette.then(|| {
            let seed = params.seed.wrapping_add(1);
            let chosen = sample_indices(points.nrows(), params.max_silhouette_images, seed);
            let distances = DistanceMatrix::new(points.select(Axis(0), &chosen).view());
            (chosen, distances)
        });
        Scorer { evaluation: params.evaluation, points, silhouette_sample }
    }

    /// Scores a labeling of the fitted points; `merge_heights` serve the derivative.
    fn score(&self, labels: &[Option<usize>], k: usize, merge_heights: &[f64]) -> Option<f64> {
        match self.evaluation {
            Evaluation::Silhouette => self.silhouette(labels),
            Evaluation::DbIndex => evaluate::davies_bouldin(self.points, labels),
            Evaluation::Derivative => evaluate::merge_height_acceleration(merge_heights, k),
        }
    }

    fn silhouette(&self, labels: &[Option<usize>]) -> Option<f64> {
        let (chosen, distances) = self.silhouette_sample.as_ref()?;
        let sampled: Vec<Option<usize>> = chosen.iter().map(|&idx| labels[idx]).collect();
        evaluate::silhouette(distances, &sampled)
    }

    /// The index of the chosen candidate: the smallest k whose score is within
    /// `tolerance` of the best (the plain best for the derivative); the first candidate
    /// when no score is defined.
    fn choose(&self, candidates: &[SearchScore], tolerance: f64) -> usize {
        choose_candidate(self.evaluation, candidates, tolerance)
    }
}

/// See [`Scorer::choose`].
fn choose_candidate(evaluation: Evaluation, candidates: &[SearchScore], tolerance: f64) -> usize {
    let lower_is_better = evaluation == Evaluation::DbIndex;
    let defined = candidates.iter().filter_map(|c| c.score);
    let best = if lower_is_better {
        defined.fold(f64::INFINITY, f64::min)
    } else {
        defined.fold(f64::NEG_INFINITY, f64::max)
    };
    let tolerance = if evaluation == Evaluation::Derivative { 0.0 } else { tolerance };
    let margin = tolerance * best.abs();
    let good_enough = |score: f64| match lower_is_better {
        true => score <= best + margin,
        false => score >= best - margin,
    };
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&idx| candidates[idx].k);
    order.into_iter().find(|&idx| candidates[idx].score.is_some_and(good_enough)).unwrap_or(0)
}

/// Intermediate result of a method, before assignment and renumbering.
struct Outcome {
    labels: Vec<Option<usize>>,
    scores: Vec<SearchScore>,
    chosen: Option<SearchScore>,
    dendrogram: Vec<Merge>,
}

/// The candidate numbers of clusters, limited by the number of points.
fn candidate_ks(params: &ClusterParams, n_points: usize) -> Vec<usize> {
    match params.fixed_clusters {
        Some(k) => vec![k.min(n_points)],
        None => {
            let max = params.max_clusters.min(n_points - 1);
            (params.min_clusters.min(max)..=max).collect()
        }
    }
}

fn check_cancel(cancel: &CancelToken) -> Result<(), ModelError> {
    if cancel.is_cancelled() {
        return Err(ModelError::Cancelled);
    }
    Ok(())
}

fn agglomerative(
    points: ArrayView2<'_, f64>,
    params: &ClusterParams,
    scorer: &Scorer<'_>,
    cancel: &CancelToken,
) -> Result<Outcome, ModelError> {
    let n_points = points.nrows();
    let mut condensed: Vec<f64> =
        CondensedDistances::new(points).as_slice().iter().map(|&d| f64::from(d)).collect();
    check_cancel(cancel)?;
    let dendrogram = kodama::linkage(&mut condensed, n_points, kodama_method(params.linkage));
    drop(condensed);
    let merges: Vec<Merge> = dendrogram
        .steps()
        .iter()
        .map(|step| Merge {
            left: step.cluster1,
            right: step.cluster2,
            height: step.dissimilarity,
            size: step.size,
        })
        .collect();
    let heights: Vec<f64> = merges.iter().map(|merge| merge.height).collect();
    let mut scores = Vec::new();
    for k in candidate_ks(params, n_points) {
        check_cancel(cancel)?;
        let labels = cut_dendrogram(&merges, n_points, k);
        scores.push(SearchScore { k, eps: None, score: scorer.score(&labels, k, &heights) });
    }
    let chosen = scores[scorer.choose(&scores, params.k_tolerance)];
    let labels = cut_dendrogram(&merges, n_points, chosen.k);
    let chosen = params.fixed_clusters.is_none().then_some(chosen);
    Ok(Outcome { labels, scores, chosen, dendrogram: merges })
}

fn kodama_method(linkage: Linkage) -> kodama::Method {
    match linkage {
        Linkage::Ward => kodama::Method::Ward,
        Linkage::Complete => kodama::Method::Complete,
        Linkage::Average => kodama::Method::Average,
        Linkage::Single => kodama::Method::Single,
    }
}

/// Labels from the first `n_points - k` merges; clusters numbered by first member.
pub fn cut_dendrogram(merges: &[Merge], n_points: usize, k: usize) -> Vec<Option<usize>> {
    let n_merges = n_points.saturating_sub(k.max(1));
    // A union-find over the leaves; `leaf_of[c]` is some leaf of created cluster `c`.
    let mut owner: Vec<usize> = (0..n_points).collect();
    let mut leaf_of: Vec<usize> = (0..n_points).collect();
    for merge in merges.iter().take(n_merges) {
        let left = find_root(&mut owner, leaf_of[merge.left]);
        let right = find_root(&mut owner, leaf_of[merge.right]);
        owner[left.max(right)] = left.min(right);
        leaf_of.push(left.min(right));
    }
    let mut label_of_root = vec![usize::MAX; n_points];
    let mut n_labels = 0;
    (0..n_points)
        .map(|leaf| {
            let root = find_root(&mut owner, leaf);
            if label_of_root[root] == usize::MAX {
                label_of_root[root] = n_labels;
                n_labels += 1;
            }
            Some(label_of_root[root])
        })
        .collect()
}

/// The root of `idx`'s set, halving the path on the way.
pub(crate) fn find_root(owner: &mut [usize], mut idx: usize) -> usize {
    while owner[idx] != idx {
        owner[idx] = owner[owner[idx]];
        idx = owner[idx];
    }
    idx
}

fn kmeans(
    all_points: ArrayView2<'_, f64>,
    fit_points: ArrayView2<'_, f64>,
    params: &ClusterParams,
    scorer: &Scorer<'_>,
    cancel: &CancelToken,
) -> Result<Outcome, ModelError> {
    use linfa::prelude::{Fit, Predict};
    use linfa::DatasetBase;
    use linfa_clustering::KMeans;

    let dataset = DatasetBase::from(fit_points.to_owned());
    let mut all_labels = Vec::new();
    let mut scores = Vec::new();
    for k in candidate_ks(params, fit_points.nrows()) {
        check_cancel(cancel)?;
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        let model = KMeans::params_with_rng(k, rng)
            .n_runs(3)
            .max_n_iterations(300)
            .tolerance(1e-4)
            .fit(&dataset)
            .map_err(|e| ModelError::Algorithm { step: "kmeans", message: e.to_string() })?;
        let labels: Vec<Option<usize>> =
            model.predict(&fit_points).iter().map(|&label| Some(label)).collect();
        scores.push(SearchScore { k, eps: None, score: scorer.score(&labels, k, &[]) });
        all_labels.push(model.predict(&all_points).iter().map(|&label| Some(label)).collect());
    }
    let chosen_idx = scorer.choose(&scores, params.k_tolerance);
    let (chosen, labels) = (scores[chosen_idx], all_labels.swap_remove(chosen_idx));
    let chosen = params.fixed_clusters.is_none().then_some(chosen);
    Ok(Outcome { labels, scores, chosen, dendrogram: Vec::new() })
}

fn dbscan(
    points: ArrayView2<'_, f64>,
    params: &ClusterParams,
    scorer: &Scorer<'_>,
    cancel: &CancelToken,
) -> Result<Outcome, ModelError> {
    let distances = CondensedDistances::new(points);
    let candidates = match params.eps {
        Some(eps) => vec![eps],
        None => eps_candidates(&distances, params.min_samples),
    };
    let mut scores = Vec::new();
    for eps in candidates {
        check_cancel(cancel)?;
        let labels = dbscan_labels(&distances, eps, params.min_samples);
        let k = labels.iter().flatten().max().map_or(0, |max| max + 1);
        let clustered = labels.iter().filter(|label| label.is_some()).count();
        // The silhouette of the clustered points, weighted by the share clustered, so
        // that a radius leaving most images as noise does not win by default.
        let share = clustered as f64 / labels.len() as f64;
        let score = scorer.silhouette(&labels).map(|s| s * share);
        scores.push(SearchScore { k, eps: Some(eps), score });
    }
    // The plain best radius: the tolerance is for numbers of clusters, not radii.
    let chosen = scores[choose_candidate(Evaluation::Silhouette, &scores, 0.0)];
    let eps = chosen.eps.expect("every DBSCAN candidate has a radius");
    let labels = dbscan_labels(&distances, eps, params.min_samples);
    let chosen = params.eps.is_none().then_some(chosen);
    Ok(Outcome { labels, scores, chosen, dendrogram: Vec::new() })
}

/// Radii between the 5th and 95th percentile of each point's distance to its
/// `min_samples`-th nearest neighbour: the scale of the data itself.
fn eps_candidates(distances: &CondensedDistances, min_samples: usize) -> Vec<f64> {
    const N_CANDIDATES: usize = 20;
    let n_points = distances.n_points();
    let neighbour_rank = min_samples.clamp(1, n_points - 1);
    let mut kth: Vec<f32> = (0..n_points)
        .into_par_iter()
        .map(|idx| {
            let mut row: Vec<f32> = (0..n_points)
                .filter(|&other| other != idx)
                .map(|other| distances.get(idx, other))
                .collect();
            let (_, kth, _) = row.select_nth_unstable_by(neighbour_rank - 1, f32::total_cmp);
            *kth
        })
        .collect();
    kth.sort_unstable_by(f32::total_cmp);
    let quantile = |q: f64| f64::from(kth[((kth.len() - 1) as f64 * q).round() as usize]);
    let mut candidates: Vec<f64> = (0..N_CANDIDATES)
        .map(|step| quantile(0.05 + 0.9 * step as f64 / (N_CANDIDATES - 1) as f64))
        .filter(|eps| *eps > 0.0)
        .collect();
    candidates.dedup();
    if candidates.is_empty() {
        candidates.push(f64::MIN_POSITIVE);
    }
    candidates
}

/// Plain DBSCAN over precomputed distances: a core point has at least `min_samples`
/// points (itself included) within `eps`; clusters grow from core points.
fn dbscan_labels(
    distances: &CondensedDistances,
    eps: f64,
    min_samples: usize,
) -> Vec<Option<usize>> {
    let n_points = distances.n_points();
    let eps = eps as f32;
    let neighbours: Vec<Vec<usize>> = (0..n_points)
        .into_par_iter()
        .map(|idx| (0..n_points).filter(|&other| distances.get(idx, other) <= eps).collect())
        .collect();
    let is_core: Vec<bool> = neighbours.iter().map(|n| n.len() >= min_samples).collect();
    let mut labels = vec![None; n_points];
    let mut n_clusters = 0;
    for seed_idx in 0..n_points {
        if labels[seed_idx].is_some() || !is_core[seed_idx] {
            continue;
        }
        let mut frontier = vec![seed_idx];
        labels[seed_idx] = Some(n_clusters);
        while let Some(idx) = frontier.pop() {
            if !is_core[idx] {
                continue;
            }
            for &next in &neighbours[idx] {
                if labels[next].is_none() {
                    labels[next] = Some(n_clusters);
                    frontier.push(next);
                }
            }
        }
        n_clusters += 1;
    }
    labels
}

fn hdbscan(points: ArrayView2<'_, f64>, params: &ClusterParams) -> Result<Outcome, ModelError> {
    let rows: Vec<Vec<f64>> = points.axis_iter(Axis(0)).map(|row| row.to_vec()).collect();
    let hyper = hdbscan::HdbscanHyperParams::builder()
        .min_cluster_size(params.min_cluster_size)
        .min_samples(params.min_samples)
        .build();
    let raw = hdbscan::Hdbscan::new(&rows, hyper)
        .cluster()
        .map_err(|e| ModelError::Algorithm { step: "hdbscan", message: e.to_string() })?;
    let labels: Vec<Option<usize>> = raw.iter().map(|&label| usize::try_from(label).ok()).collect();
    let k = labels.iter().flatten().max().map_or(0, |max| max + 1);
    let scores = vec![SearchScore { k, eps: None, score: None }];
    Ok(Outcome { labels, scores, chosen: None, dendrogram: Vec::new() })
}

/// Labels every image from the labels of the fitted sample.
fn assign_rest(
    points: ArrayView2<'_, f64>,
    fit_indices: &[usize],
    fit_labels: &[Option<usize>],
    params: &ClusterParams,
) -> Vec<Option<usize>> {
    let fit_points = points.select(Axis(0), fit_indices);
    let by_centroid =
        params.method == ClusterMethod::Agglomerative && params.linkage != Linkage::Single;
    let (references, reference_labels) = if by_centroid {
        let n_clusters = fit_labels.iter().flatten().max().map_or(0, |max| max + 1);
        let centres = centroids(fit_points.view(), fit_labels, n_clusters);
        (centres, (0..n_clusters).map(Some).collect())
    } else {
        (fit_points, fit_labels.to_vec())
    };
    let nearest = nearest_rows(points, references.view());
    let mut labels: Vec<Option<usize>> = nearest.iter().map(|&idx| reference_labels[idx]).collect();
    for (&idx, &label) in fit_indices.iter().zip(fit_labels) {
        labels[idx] = label;
    }
    labels
}

/// For each row of `queries`, the index of the nearest row of `references`.
pub fn nearest_rows(queries: ArrayView2<'_, f64>, references: ArrayView2<'_, f64>) -> Vec<usize> {
    let reference_norms: Vec<f64> =
        references.axis_iter(Axis(0)).map(|row| row.dot(&row)).collect();
    let mut nearest = vec![0usize; queries.nrows()];
    nearest.par_chunks_mut(512).enumerate().for_each(|(block_idx, out)| {
        let start = block_idx * 512;
        let block = queries.slice(ndarray::s![start..start + out.len(), ..]);
        let products = block.dot(&references.t());
        for (row_idx, slot) in out.iter_mut().enumerate() {
            let row = products.row(row_idx);
            // |q - r|^2 = |q|^2 + |r|^2 - 2 q.r; |q|^2 is the same for every r.
            let mut best = (f64::INFINITY, 0);
            for (ref_idx, product) in row.iter().enumerate() {
                let distance = reference_norms[ref_idx] - 2.0 * product;
                if distance < best.0 {
                    best = (distance, ref_idx);
                }
            }
            *slot = best.1;
        }
    });
    nearest
}

/// Renumbers clusters by size, largest first, ties by first member; returns the count.
fn renumber_by_size(labels: &[Option<usize>]) -> (Vec<Option<usize>>, usize) {
    let n_clusters = labels.iter().flatten().max().map_or(0, |max| max + 1);
    let sizes = evaluate::cluster_sizes(labels, n_clusters);
    let mut first_member = vec![usize::MAX; n_clusters];
    for (idx, label) in labels.iter().enumerate() {
        if let Some(cluster) = *label {
            first_member[cluster] = first_member[cluster].min(idx);
        }
    }
    let mut order: Vec<usize> = (0..n_clusters).filter(|&c| sizes[c] > 0).collect();
    order.sort_by_key(|&c| (std::cmp::Reverse(sizes[c]), first_member[c]));
    let mut new_label = vec![None; n_clusters];
    for (rank, &cluster) in order.iter().enumerate() {
        new_label[cluster] = Some(rank);
    }
    let renumbered = labels.iter().map(|label| label.and_then(|c| new_label[c])).collect();
    (renumbered, order.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    /// Three tight blobs of `per_blob` points in 5-D, with their true labels.
    fn blobs(per_blob: usize) -> (Array2<f64>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let noise = Normal::new(0.0, 0.5).unwrap();
        let centres = [[0.0; 5], [10.0, 0.0, 0.0, 0.0, 0.0], [0.0, 10.0, 5.0, 0.0, 0.0]];
        let mut points = Array2::zeros((3 * per_blob, 5));
        let mut truth = Vec::new();
        for (idx, mut row) in points.axis_iter_mut(Axis(0)).enumerate() {
            let blob = idx % 3;
            for (dim, value) in row.iter_mut().enumerate() {
                *value = centres[blob][dim] + noise.sample(&mut rng);
            }
            truth.push(blob);
        }
        (points, truth)
    }

    /// True when `labels` put the same points together as `truth`.
    fn same_partition(labels: &[Option<usize>], truth: &[usize]) -> bool {
        let mut mapping = std::collections::HashMap::new();
        labels.iter().zip(truth).all(|(label, t)| match label {
            Some(l) => *mapping.entry(*l).or_insert(*t) == *t,
            None => false,
        }) && mapping.len() == 3
    }

    fn run(params: ClusterParams, points: &Array2<f64>) -> Clustering {
        cluster(points.view(), &params, &CancelToken::new()).unwrap()
    }

    #[test]
    fn every_method_and_evaluation_recovers_three_blobs() {
        let (points, truth) = blobs(40);
        let evaluations = [Evaluation::Silhouette, Evaluation::DbIndex, Evaluation::Derivative];
        for linkage in [Linkage::Ward, Linkage::Complete, Linkage::Average, Linkage::Single] {
            for evaluation in evaluations {
                let params = ClusterParams { linkage, evaluation, ..Default::default() };
                let result = run(params, &points);
                assert!(same_partition(&result.labels, &truth), "{linkage:?} {evaluation:?}");
                assert_eq!(result.chosen.unwrap().k, 3);
            }
        }
        for method in [ClusterMethod::KMeans, ClusterMethod::Dbscan, ClusterMethod::Hdbscan] {
            let params = ClusterParams { method, ..Default::default() };
            let result = run(params, &points);
            assert!(same_partition(&result.labels, &truth), "{method:?}: {:?}", result.labels);
        }
    }

    #[test]
    fn scores_cover_the_whole_inclusive_range() {
        let (points, _) = blobs(20);
        let result =
            run(ClusterParams { min_clusters: 2, max_clusters: 6, ..Default::default() }, &points);
        let ks: Vec<usize> = result.scores.iter().map(|s| s.k).collect();
        assert_eq!(ks, [2, 3, 4, 5, 6]);
    }

    #[test]
    fn sampled_fit_labels_every_image_consistently() {
        let (points, truth) = blobs(100);
        for method in [ClusterMethod::Agglomerative, ClusterMethod::KMeans, ClusterMethod::Dbscan] {
            let params = ClusterParams { method, max_fit_images: 60, ..Default::default() };
            let result = run(params, &points);
            assert_eq!(result.fit_indices.len(), 60);
            assert!(same_partition(&result.labels, &truth), "{method:?}");
        }
    }

    #[test]
    fn fixed_k_and_renumbering_put_the_largest_cluster_first() {
        let (mut points, _) = blobs(10);
        // Duplicate blob 0's points so it becomes the largest cluster.
        let extra = points.select(Axis(0), &[0, 3, 6, 9, 12]);
        points.append(Axis(0), extra.view()).unwrap();
        let result = run(ClusterParams { fixed_clusters: Some(3), ..Default::default() }, &points);
        assert_eq!(result.n_clusters, 3);
        assert_eq!(result.labels[0], Some(0));
        assert!(result.chosen.is_none());
    }

    #[test]
    fn same_seed_same_labels() {
        let (points, _) = blobs(50);
        for method in [ClusterMethod::Agglomerative, ClusterMethod::KMeans] {
            let params =
                ClusterParams { method, max_fit_images: 80, seed: 9, ..Default::default() };
            assert_eq!(run(params, &points).labels, run(params, &points).labels);
        }
    }

    #[test]
    fn tolerance_prefers_the_smallest_nearly_best_k() {
        let scored = |scores: [f64; 3]| -> Vec<SearchScore> {
            let ks = [3, 4, 5];
            ks.iter()
                .zip(scores)
                .map(|(&k, s)| SearchScore { k, eps: None, score: Some(s) })
                .collect()
        };
        let silhouettes = scored([0.50, 0.60, 0.61]);
        assert_eq!(silhouettes[choose_candidate(Evaluation::Silhouette, &silhouettes, 0.02)].k, 4);
        assert_eq!(silhouettes[choose_candidate(Evaluation::Silhouette, &silhouettes, 0.0)].k, 5);
        let indices = scored([1.0, 0.9, 0.89]);
        assert_eq!(indices[choose_candidate(Evaluation::DbIndex, &indices, 0.02)].k, 4);
        let accelerations = scored([0.50, 0.60, 0.61]);
        assert_eq!(
            accelerations[choose_candidate(Evaluation::Derivative, &accelerations, 0.02)].k,
            5
        );
    }

    #[test]
    fn invalid_settings_name_their_field() {
        let bad = ClusterParams { min_clusters: 5, max_clusters: 4, ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("max_clust"));
        let bad = ClusterParams {
            method: ClusterMethod::KMeans,
            evaluation: Evaluation::Derivative,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("evaluate"));
    }

    #[test]
    fn cancelled_search_stops() {
        let (points, _) = blobs(10);
        let cancel = CancelToken::new();
        cancel.cancel();
        let result = cluster(points.view(), &ClusterParams::default(), &cancel);
        assert!(matches!(result, Err(ModelError::Cancelled)));
    }
}
