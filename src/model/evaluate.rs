//! Scores for choosing the number of clusters: the silhouette coefficient, the
//! Davies-Bouldin index, and the second difference of the agglomerative merge heights
//! (the "derivative" method).
//!
//! The silhouette is quadratic in the number of images, so callers hand it a
//! [`CondensedDistances`] over a bounded sample rather than the whole library.

use ndarray::{s, ArrayView2, Axis};
use rayon::prelude::*;

/// The label of every image: `Some(cluster)` or `None` for noise.
pub type Labels = [Option<usize>];

/// Pairwise Euclidean distances of a set of points, upper triangle only.
///
/// Holds `n_points * (n_points - 1) / 2` values in `f32`: 5,000 points take 50 MB.
#[derive(Debug, Clone)]
pub struct CondensedDistances {
    n_points: usize,
    values: Vec<f32>,
}

impl CondensedDistances {
    /// Computes the distances between the rows of `points`, shape `(n_points, n_dims)`.
    ///
    /// Works in blocks of rows through matrix products, |a - b|^2 = |a|^2 + |b|^2 - 2 a.b,
    /// which is several times faster than a loop over coordinates.
    pub fn new(points: ArrayView2<'_, f64>) -> CondensedDistances {
        const BLOCK_ROWS: usize = 128;
        let n_points = points.nrows();
        let norms: Vec<f64> = points.rows().into_iter().map(|row| row.dot(&row)).collect();
        let blocks: Vec<Vec<f32>> = (0..n_points.div_ceil(BLOCK_ROWS))
            .into_par_iter()
            .map(|block_idx| {
                let start = block_idx * BLOCK_ROWS;
                let end = (start + BLOCK_ROWS).min(n_points);
                let products =
                    points.slice(s![start..end, ..]).dot(&points.slice(s![start.., ..]).t());
                let mut values = Vec::new();
                for i_idx in start..end {
                    let row = products.row(i_idx - start);
                    for j_idx in i_idx + 1..n_points {
                        let squared = norms[i_idx] + norms[j_idx] - 2.0 * row[j_idx - start];
                        values.push(squared.max(0.0).sqrt() as f32);
                    }
                }
                values
            })
            .collect();
        CondensedDistances { n_points, values: blocks.concat() }
    }

    pub fn n_points(&self) -> usize {
        self.n_points
    }

    /// The distance between points `i_idx` and `j_idx`; zero on the diagonal.
    pub fn get(&self, i_idx: usize, j_idx: usize) -> f32 {
        if i_idx == j_idx {
            return 0.0;
        }
        let (low, high) = if i_idx < j_idx { (i_idx, j_idx) } else { (j_idx, i_idx) };
        self.values[self.position(low, high)]
    }

    /// The upper triangle, row by row, as `kodama` expects it.
    pub fn as_slice(&self) -> &[f32] {
        &self.values
    }

    fn position(&self, low: usize, high: usize) -> usize {
        self.n_points * low - low * (low + 1) / 2 + high - low - 1
    }
}

/// All pairwise Euclidean distances of a set of points, as a full square matrix in `f32`,
/// so that each point's distances are one contiguous row: 5,000 points take 100 MB.
#[derive(Debug, Clone)]
pub struct DistanceMatrix {
    n_points: usize,
    values: Vec<f32>,
}

impl DistanceMatrix {
    /// Computes the distances between the rows of `points`, shape `(n_points, n_dims)`.
    pub fn new(points: ArrayView2<'_, f64>) -> DistanceMatrix {
        let condensed = CondensedDistances::new(points);
        let n_points = condensed.n_points();
        let mut values = vec![0.0f32; n_points * n_points];
        values.par_chunks_mut(n_points.max(1)).enumerate().for_each(|(i_idx, row)| {
            for (j_idx, value) in row.iter_mut().enumerate() {
                *value = condensed.get(i_idx, j_idx);
            }
        });
        DistanceMatrix { n_points, values }
    }

    pub fn n_points(&self) -> usize {
        self.n_points
    }

    /// The distances from point `idx` to every point.
    pub fn row(&self, idx: usize) -> &[f32] {
        &self.values[idx * self.n_points..(idx + 1) * self.n_points]
    }
}

/// Mean silhouette coefficient over the non-noise points, in `[-1, 1]`, higher is better.
///
/// A point alone in its cluster scores 0. Returns `None` unless there are at least two
/// clusters and fewer clusters than labelled points.
pub fn silhouette(distances: &DistanceMatrix, labels: &Labels) -> Option<f64> {
    assert_eq!(distances.n_points(), labels.len(), "one label per point");
    let n_clusters = labels.iter().flatten().max().map_or(0, |max| max + 1);
    let sizes = cluster_sizes(labels, n_clusters);
    let n_labelled: usize = sizes.iter().sum();
    if sizes.iter().filter(|&&size| size > 0).count() < 2 || n_labelled <= n_clusters {
        return None;
    }
    let scores: Vec<f64> = (0..labels.len())
        .into_par_iter()
        .map_init(
            || vec![0.0f64; n_clusters],
            |sums, idx| point_silhouette(distances.row(idx), labels, &sizes, idx, sums),
        )
        .flatten()
        .collect();
    let total: f64 = scores.iter().sum();
    Some(total / n_labelled as f64)
}

/// Davies-Bouldin index over the non-noise points, lower is better.
///
/// `points` has shape `(n_points, n_dims)`. Returns `None` with fewer than two clusters.
pub fn davies_bouldin(points: ArrayView2<'_, f64>, labels: &Labels) -> Option<f64> {
    let n_clusters = labels.iter().flatten().max().map_or(0, |max| max + 1);
    let centroids = super::cluster::centroids(points, labels, n_clusters);
    let mut scatter = vec![0.0; n_clusters];
    let sizes = cluster_sizes(labels, n_clusters);
    for (row, label) in points.axis_iter(Axis(0)).zip(labels) {
        if let Some(cluster) = label {
            scatter[*cluster] += euclidean(row.iter(), centroids.row(*cluster).iter());
        }
    }
    let live: Vec<usize> = (0..n_clusters).filter(|&c| sizes[c] > 0).collect();
    if live.len() < 2 {
        return None;
    }
    for &c in &live {
        scatter[c] /= sizes[c] as f64;
    }
    let worst_ratio = |a: usize| {
        live.iter()
            .filter(|&&b| b != a)
            .map(|&b| {
                let separation = euclidean(centroids.row(a).iter(), centroids.row(b).iter());
                (scatter[a] + scatter[b]) / separation.max(f64::MIN_POSITIVE)
            })
            .fold(0.0, f64::max)
    };
    Some(live.iter().map(|&a| worst_ratio(a)).sum::<f64>() / live.len() as f64)
}

/// Scores each k in `ks` by the second difference of the merge heights around it.
///
/// `merge_heights` are the dissimilarities of a dendrogram's merges in the order they
/// happened (ascending for monotone linkages). Cutting before the last `k - 1` merges
/// leaves `k` clusters; a large jump in height right after that cut, relative to its
/// neighbours, marks a natural `k`. Higher is better; `None` where undefined.
pub fn merge_height_acceleration(merge_heights: &[f64], k: usize) -> Option<f64> {
    // reversed[i] is the height of the merge that turns i + 2 clusters into i + 1.
    let reversed: Vec<f64> = merge_heights.iter().rev().copied().collect();
    if k < 2 || k > reversed.len() {
        return None;
    }
    let at = |i: usize| reversed.get(i).copied();
    Some(at(k - 2)? - 2.0 * at(k - 1)? + at(k)?)
}

/// Number of points per cluster, noise excluded.
pub fn cluster_sizes(labels: &Labels, n_clusters: usize) -> Vec<usize> {
    let mut sizes = vec![0; n_clusters];
    for cluster in labels.iter().flatten() {
        sizes[*cluster] += 1;
    }
    sizes
}

/// The silhouette of one point from its row of distances; `sums` is scratch space of one
/// value per cluster.
fn point_silhouette(
    distances: &[f32],
    labels: &Labels,
    sizes: &[usize],
    idx: usize,
    sums: &mut [f64],
) -> Option<f64> {
    let own = labels[idx]?;
    if sizes[own] == 1 {
        return Some(0.0);
    }
    sums.fill(0.0);
    for (distance, other) in distances.iter().zip(labels) {
        if let Some(cluster) = other {
            sums[*cluster] += f64::from(*distance);
        }
    }
    let within = sums[own] / (sizes[own] - 1) as f64;
    let nearest_other = (0..sizes.len())
        .filter(|&c| c != own && sizes[c] > 0)
        .map(|c| sums[c] / sizes[c] as f64)
        .fold(f64::INFINITY, f64::min);
    let spread = within.max(nearest_other);
    Some(if spread > 0.0 { (nearest_other - within) / spread } else { 0.0 })
}

/// The Euclidean distance between two equally long sequences of coordinates.
pub(crate) fn euclidean<'a, 'b>(
    a: impl IntoIterator<Item = &'a f64>,
    b: impl IntoIterator<Item = &'b f64>,
) -> f64 {
    a.into_iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn two_blobs() -> (ndarray::Array2<f64>, Vec<Option<usize>>) {
        let points = array![[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]];
        (points, vec![Some(0), Some(0), Some(1), Some(1)])
    }

    #[test]
    fn condensed_indexing_is_symmetric() {
        let (points, _) = two_blobs();
        let distances = CondensedDistances::new(points.view());
        assert_eq!(distances.as_slice().len(), 6);
        assert_eq!(distances.get(0, 1), 1.0);
        assert_eq!(distances.get(3, 0), distances.get(0, 3));
        assert_eq!(distances.get(2, 2), 0.0);
    }

    #[test]
    fn silhouette_matches_hand_computation() {
        let (points, labels) = two_blobs();
        let distances = DistanceMatrix::new(points.view());
        // Point 0: a = 1, b = (10 + sqrt(101)) / 2; all four points are symmetric.
        let b = (10.0 + 101f64.sqrt()) / 2.0;
        let expected = (b - 1.0) / b;
        let score = silhouette(&distances, &labels).unwrap();
        assert!((score - expected).abs() < 1e-6, "{score} vs {expected}");
    }

    #[test]
    fn silhouette_prefers_the_true_split_and_needs_two_clusters() {
        let (points, good) = two_blobs();
        let distances = DistanceMatrix::new(points.view());
        let bad = vec![Some(0), Some(1), Some(0), Some(1)];
        assert!(silhouette(&distances, &good) > silhouette(&distances, &bad));
        assert_eq!(silhouette(&distances, &[Some(0); 4]), None);
        let with_noise = vec![Some(0), Some(0), Some(1), None];
        assert!(silhouette(&distances, &with_noise).is_some());
    }

    #[test]
    fn davies_bouldin_is_lower_for_the_true_split() {
        let (points, good) = two_blobs();
        let bad = vec![Some(0), Some(1), Some(0), Some(1)];
        let good_score = davies_bouldin(points.view(), &good).unwrap();
        let bad_score = davies_bouldin(points.view(), &bad).unwrap();
        assert!(good_score < bad_score, "{good_score} vs {bad_score}");
        // Scatter 0.5 in each cluster, centroids 10 apart.
        assert!((good_score - 0.1).abs() < 1e-9);
    }

    #[test]
    fn acceleration_peaks_where_heights_jump() {
        // Many small merges, then a big jump when going from 3 clusters to 2.
        let heights = [1.0, 1.1, 1.2, 1.3, 1.4, 10.0, 11.0];
        let best = (2..=5).max_by(|&a, &b| {
            let score = |k| merge_height_acceleration(&heights, k).unwrap();
            score(a).total_cmp(&score(b))
        });
        assert_eq!(best, Some(3));
        assert_eq!(merge_height_acceleration(&heights, 1), None);
    }
}
