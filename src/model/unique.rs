//! The representative ("unique") image of each cluster and the mean image.
//!
//! The representative is the member nearest to its cluster's centre, chosen among the
//! cluster's own members. (The Python package searches all images, so its representative
//! can belong to another cluster.)

use ndarray::{Array2, ArrayView2, Axis};

use super::cluster::centroids;
use super::evaluate::{cluster_sizes, euclidean};

/// The image that stands for a cluster.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Representative {
    pub cluster: usize,
    /// Row of the image in the fitted data.
    pub image_idx: usize,
    /// Number of members of the cluster.
    pub size: usize,
    /// Euclidean distance from the image to the cluster's centre, in the clustered space.
    pub distance_to_centre: f64,
}

/// One representative per cluster, in cluster order, for `space` of shape
/// `(n_images, n_dims)`. Ties go to the lower image index.
pub fn representatives(
    space: ArrayView2<'_, f64>,
    labels: &[Option<usize>],
) -> Vec<Representative> {
    let n_clusters = labels.iter().flatten().max().map_or(0, |max| max + 1);
    let centres = centroids(space, labels, n_clusters);
    let sizes = cluster_sizes(labels, n_clusters);
    let mut best: Vec<Option<Representative>> = vec![None; n_clusters];
    for (image_idx, (row, label)) in space.axis_iter(Axis(0)).zip(labels).enumerate() {
        let Some(cluster) = *label else { continue };
        let centre = centres.row(cluster);
        let distance = euclidean(row, centre);
        let slot = &mut best[cluster];
        if slot.is_none_or(|current| distance < current.distance_to_centre) {
            let size = sizes[cluster];
            *slot = Some(Representative { cluster, image_idx, size, distance_to_centre: distance });
        }
    }
    best.into_iter().flatten().collect()
}

/// The mean of each cluster's rows of `data`, shape `(n_clusters, n_values)`: with pixel
/// values as rows, the cluster's mean image.
pub fn cluster_means(
    data: ArrayView2<'_, f32>,
    labels: &[Option<usize>],
    n_clusters: usize,
) -> Array2<f32> {
    let mut sums = Array2::<f64>::zeros((n_clusters, data.ncols()));
    for (row, label) in data.axis_iter(Axis(0)).zip(labels) {
        if let Some(cluster) = *label {
            let mut target = sums.row_mut(cluster);
            target.zip_mut_with(&row, |sum, &value| *sum += f64::from(value));
        }
    }
    let sizes = cluster_sizes(labels, n_clusters);
    for (mut row, size) in sums.axis_iter_mut(Axis(0)).zip(sizes) {
        row /= size.max(1) as f64;
    }
    sums.mapv(|v| v as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn representative_is_a_member_nearest_the_centre() {
        // Cluster 0's centre (0, 0) lies nearer to point 3 (cluster 1) than to any of its
        // own members; the representative must still come from cluster 0.
        let space =
            array![[-2.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.1, 0.1], [0.2, 0.1], [-1.0, -3.0]];
        let labels = vec![Some(0), Some(0), Some(0), Some(1), Some(1), Some(0)];
        let chosen = representatives(space.view(), &labels);
        assert_eq!(chosen.len(), 2);
        assert_eq!(labels[chosen[0].image_idx], Some(0));
        assert_eq!(chosen[0].size, 4);
        assert_eq!(labels[chosen[1].image_idx], Some(1));
    }

    #[test]
    fn noise_is_never_a_representative() {
        let space = array![[0.0], [1.0], [0.5]];
        let labels = vec![Some(0), Some(0), None];
        let chosen = representatives(space.view(), &labels);
        assert_eq!(chosen.len(), 1);
        assert_ne!(chosen[0].image_idx, 2);
    }

    #[test]
    fn mean_image_averages_members_only() {
        let data = array![[0.0f32, 1.0], [1.0, 1.0], [0.5, 0.0]];
        let means = cluster_means(data.view(), &[Some(0), Some(0), None], 1);
        assert_eq!(means, array![[0.5f32, 1.0]]);
    }
}
