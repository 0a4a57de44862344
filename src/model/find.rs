//! Finding the images nearest to a query, with a p-value for each distance.
//!
//! The p-value of a distance is the probability of seeing one at least that small between
//! two unrelated images, under a distribution fitted to a seeded random sample of
//! distances between distinct library images (see [`super::distribution`]). The search
//! itself is exact, over every image; the daemon's index answers the same question
//! approximately at scale.

use ndarray::{ArrayView1, ArrayView2, Axis};

use super::distribution::{self, FittedDistribution};
use super::evaluate::euclidean;
use super::ModelError;

/// What makes an image a hit.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FindParams {
    /// At most this many nearest images.
    pub k: Option<usize>,
    /// Only images whose distance has a p-value at most this. Default 0.05.
    pub alpha: Option<f64>,
    /// Only images at most this far away.
    pub max_distance: Option<f64>,
    /// Pairs sampled to fit the null distribution. Default 10,000.
    pub n_null_pairs: usize,
    pub seed: u64,
}

impl Default for FindParams {
    fn default() -> Self {
        FindParams { k: None, alpha: Some(0.05), max_distance: None, n_null_pairs: 10_000, seed: 0 }
    }
}

impl FindParams {
    /// Checks the settings, naming the first bad field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let invalid = |field, message: &str| {
            Err(ModelError::InvalidParameter { field, message: message.to_string() })
        };
        if self.k == Some(0) {
            return invalid("k", "must be at least 1");
        }
        if self.alpha.is_some_and(|a| !(a > 0.0 && a <= 1.0)) {
            return invalid("alpha", "must be in (0, 1]");
        }
        if self.max_distance.is_some_and(|d| !(d.is_finite() && d >= 0.0)) {
            return invalid("max_distance", "must be a finite number >= 0");
        }
        if self.k.is_none() && self.alpha.is_none() && self.max_distance.is_none() {
            return invalid("k", "give at least one of k, alpha or max_distance");
        }
        Ok(())
    }
}

/// One image found for a query.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    pub image_idx: usize,
    pub distance: f64,
    pub p_value: f64,
}

/// Fits the null distribution to distances between random pairs of rows of `space`,
/// shape `(n_images, n_dims)`.
pub fn fit_null(
    space: ArrayView2<'_, f64>,
    params: &FindParams,
) -> Result<FittedDistribution, ModelError> {
    let pairs = distribution::sample_pairs(space.nrows(), params.n_null_pairs, params.seed);
    let distances: Vec<f64> =
        pairs.iter().map(|&(i, j)| euclidean(space.row(i), space.row(j))).collect();
    distribution::fit_best(&distances).map_err(|error| ModelError::Algorithm {
        step: "null distribution",
        message: error.to_string(),
    })
}

/// The hits for `query`, nearest first. `exclude` leaves out one row (the query itself
/// when it is part of the library). All conditions of `params` must hold for a hit.
pub fn find(
    space: ArrayView2<'_, f64>,
    query: ArrayView1<'_, f64>,
    null: &FittedDistribution,
    params: &FindParams,
    exclude: Option<usize>,
) -> Vec<Hit> {
    let mut hits: Vec<Hit> = space
        .axis_iter(Axis(0))
        .enumerate()
        .filter(|(image_idx, _)| Some(*image_idx) != exclude)
        .map(|(image_idx, row)| {
            let distance = euclidean(row, query);
            Hit { image_idx, distance, p_value: null.p_value(distance) }
        })
        .filter(|hit| params.alpha.is_none_or(|alpha| hit.p_value <= alpha))
        .filter(|hit| params.max_distance.is_none_or(|max| hit.distance <= max))
        .collect();
    hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.image_idx.cmp(&b.image_idx)));
    if let Some(k) = params.k {
        hits.truncate(k);
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    fn random_space(n_images: usize) -> Array2<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        Array2::from_shape_simple_fn((n_images, 8), || StandardNormal.sample(&mut rng))
    }

    #[test]
    fn near_copy_is_significant_and_random_images_are_not() {
        let mut space = random_space(300);
        let copy = &space.row(0) + 0.01;
        space.row_mut(1).assign(&copy);
        let params = FindParams::default();
        let null = fit_null(space.view(), &params).unwrap();
        let hits = find(space.view(), space.row(0), &null, &params, Some(0));
        assert_eq!(hits.first().map(|h| h.image_idx), Some(1));
        assert!(hits[0].p_value < 1e-3, "p {}", hits[0].p_value);
        // Random points in 8-D are rarely significantly close: only a few percent may pass.
        assert!(hits.len() < 300 / 10, "{} hits", hits.len());
    }

    #[test]
    fn k_limits_and_orders_hits() {
        let space = random_space(50);
        let params = FindParams { k: Some(5), alpha: None, ..Default::default() };
        let null = fit_null(space.view(), &params).unwrap();
        let hits = find(space.view(), space.row(3), &null, &params, None);
        assert_eq!(hits.len(), 5);
        assert_eq!(hits[0].image_idx, 3);
        assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
    }

    #[test]
    fn settings_are_checked() {
        let none = FindParams { alpha: None, ..Default::default() };
        assert!(none.validate().is_err());
        let bad_alpha = FindParams { alpha: Some(1.5), ..Default::default() };
        assert!(bad_alpha.validate().unwrap_err().to_string().contains("alpha"));
    }
}
