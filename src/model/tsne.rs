//! Barnes-Hut t-SNE into two dimensions (van der Maaten 2014), deterministic for a given seed.
//!
//! This module owns the whole embedding pipeline: exact k-nearest-neighbour search, calibration
//! of each point's Gaussian bandwidth to the perplexity, the sparse symmetric input affinities,
//! the initialisation (first two principal components, scaled so that column 0 has standard
//! deviation 1e-4 like scikit-learn's `init="pca"`; a seeded Gaussian with standard deviation
//! 1e-4 when the input has fewer than two directions of variance) and gradient descent with
//! momentum, per-coordinate gains and early exaggeration. Repulsive forces come from a quadtree
//! (Barnes-Hut, `theta > 0`) or from the exact O(n²) sum (`theta == 0`). Every parallel step
//! writes per-point results into a buffer that is reduced sequentially, so the output is bitwise
//! reproducible for a given input and seed, whatever the number of threads. When there are too
//! few points for the requested perplexity (`3 * perplexity > n_points - 1`), the perplexity is
//! lowered to `(n_points - 1) / 3` instead of failing.
//!
//! Not done well yet: the neighbour search is brute force (O(n² · n_features), seconds at
//! 20,000 points), the exact mode still uses the sparse k-nearest-neighbour affinities rather
//! than dense ones, there is no early stop on a small gradient, only two output dimensions are
//! supported, and cancellation is polled between phases and once per iteration only, not inside
//! the neighbour search.

use std::cmp::Ordering;
use std::ops::Range;

use ndarray::{s, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// Parameters of the t-SNE embedding. Checked by [`TsneParams::validate`], which [`embed`] calls.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TsneParams {
    /// Effective number of neighbours of each point; lowered to `(n_points - 1) / 3` when
    /// there are too few points. Must be finite and positive. Default 30.
    pub perplexity: f64,
    /// Number of gradient-descent iterations, at least 1. Default 1000.
    pub n_iterations: usize,
    /// Factor on the input affinities during the first 250 iterations, finite and at least 1.
    /// Default 12.
    pub early_exaggeration: f64,
    /// Gradient-descent step; `None` means "auto": `max(n_points / early_exaggeration / 4, 50)`.
    pub learning_rate: Option<f64>,
    /// Barnes-Hut accuracy in `[0, 1]`, smaller is more exact; 0 means the exact O(n²)
    /// repulsion. Default 0.5.
    pub theta: f64,
    /// Seed of the initialisation (power-iteration start or Gaussian fallback). Default 0.
    pub seed: u64,
}

/// Why an embedding could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TsneError {
    /// t-SNE needs at least three points.
    #[error("t-SNE needs at least 3 points, got {n_points}")]
    TooFewPoints { n_points: usize },
    /// A field of [`TsneParams`] is out of range.
    #[error("invalid t-SNE parameter `{field}`: {reason}")]
    InvalidParameter { field: &'static str, reason: String },
    /// The input contains NaN or an infinity.
    #[error("non-finite feature value at row {row_idx}, column {col_idx}")]
    NonFiniteInput { row_idx: usize, col_idx: usize },
    /// `should_stop` returned true.
    #[error("t-SNE was cancelled")]
    Cancelled,
}

impl Default for TsneParams {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            n_iterations: 1000,
            early_exaggeration: 12.0,
            learning_rate: None,
            theta: 0.5,
            seed: 0,
        }
    }
}

impl TsneParams {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), TsneError> {
        if !(self.perplexity.is_finite() && self.perplexity > 0.0) {
            return Err(invalid("perplexity", self.perplexity, "finite and positive"));
        }
        if self.n_iterations == 0 {
            return Err(TsneError::InvalidParameter {
                field: "n_iterations",
                reason: "must be at least 1".to_string(),
            });
        }
        if !(self.early_exaggeration.is_finite() && self.early_exaggeration >= 1.0) {
            let value = self.early_exaggeration;
            return Err(invalid("early_exaggeration", value, "finite and at least 1"));
        }
        if let Some(rate) = self.learning_rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(invalid("learning_rate", rate, "finite and positive"));
            }
        }
        if !(0.0..=1.0).contains(&self.theta) {
            return Err(invalid("theta", self.theta, "between 0 and 1"));
        }
        Ok(())
    }
}

/// Embeds `features`, shape `(n_points, n_features)`, into the plane; returns
/// `(n_points, 2)`.
///
/// `should_stop` is polled on the calling thread before the neighbour search, before the
/// affinities, before the optimisation and once per iteration; when it returns true the
/// function returns [`TsneError::Cancelled`].
pub fn embed(
    features: ArrayView2<'_, f64>,
    params: &TsneParams,
    should_stop: &dyn Fn() -> bool,
) -> Result<Array2<f64>, TsneError> {
    let n_points = features.nrows();
    if n_points < MIN_POINTS {
        return Err(TsneError::TooFewPoints { n_points });
    }
    params.validate()?;
    check_finite(features)?;
    let features = features.as_standard_layout();
    let perplexity = effective_perplexity(params.perplexity, n_points);
    let n_neighbours = ((3.0 * perplexity).floor() as usize).clamp(1, n_points - 1);
    poll(should_stop)?;
    let neighbours = nearest_neighbours(features.view(), n_neighbours);
    poll(should_stop)?;
    let affinities = Affinities::from_neighbours(&neighbours, perplexity);
    let initial = initial_embedding(features.view(), params.seed);
    let embedding = optimise(&affinities, initial, params, should_stop)?;
    Ok(Array2::from_shape_fn((n_points, 2), |(point_idx, axis_idx)| embedding[point_idx][axis_idx]))
}

/// Iterations with early exaggeration and the low momentum.
const N_EXPLORATION_ITERATIONS: usize = 250;
const MOMENTUM_EXPLORATION: f64 = 0.5;
const MOMENTUM_FINAL: f64 = 0.8;
const GAIN_INCREMENT: f64 = 0.2;
const GAIN_DECAY: f64 = 0.8;
const MIN_GAIN: f64 = 0.01;
/// Standard deviation of the initial embedding (of column 0 for the PCA initialisation).
const INIT_STD: f64 = 1e-4;
const MIN_POINTS: usize = 3;
/// Rows per parallel block of the brute-force neighbour search.
const KNN_BLOCK_ROWS: usize = 64;
const N_BANDWIDTH_STEPS: usize = 100;
const ENTROPY_TOLERANCE: f64 = 1e-5;
const N_PCA_ITERATIONS: usize = 100;
const PCA_TOLERANCE: f64 = 1e-6;
/// A principal component whose variance is below this fraction of the total is degenerate.
const PCA_DEGENERATE_RATIO: f64 = 1e-12;
/// Deeper quadtree cells become leaves holding all their points (duplicates, near-duplicates).
const MAX_TREE_DEPTH: usize = 40;
const TRAVERSAL_STACK_LEN: usize = 4 * MAX_TREE_DEPTH + 4;
/// Marks a quadtree node without children (the root is never a child).
const NO_CHILDREN: usize = 0;

fn invalid(field: &'static str, value: f64, expected: &str) -> TsneError {
    TsneError::InvalidParameter { field, reason: format!("must be {expected}, got {value}") }
}

fn poll(should_stop: &dyn Fn() -> bool) -> Result<(), TsneError> {
    if should_stop() {
        Err(TsneError::Cancelled)
    } else {
        Ok(())
    }
}

fn check_finite(features: ArrayView2<'_, f64>) -> Result<(), TsneError> {
    match features.indexed_iter().find(|(_, value)| !value.is_finite()) {
        Some(((row_idx, col_idx), _)) => Err(TsneError::NonFiniteInput { row_idx, col_idx }),
        None => Ok(()),
    }
}

/// The requested perplexity, lowered so that `3 * perplexity <= n_points - 1`.
fn effective_perplexity(perplexity: f64, n_points: usize) -> f64 {
    perplexity.min((n_points - 1) as f64 / 3.0)
}

/// Exact nearest neighbours of every point, row-major `(n_points, n_neighbours)`.
struct Neighbours {
    n_neighbours: usize,
    /// Neighbour indices of each point, by increasing distance (ties by index).
    idx: Vec<usize>,
    /// The matching squared Euclidean distances.
    sq_dists: Vec<f64>,
}

/// Brute-force exact neighbours of the rows of `features`, `(n_points, n_features)`.
fn nearest_neighbours(features: ArrayView2<'_, f64>, n_neighbours: usize) -> Neighbours {
    let n_points = features.nrows();
    let sq_norms: Vec<f64> = features.rows().into_iter().map(|row| row.dot(&row)).collect();
    let blocks: Vec<Vec<(f64, usize)>> = (0..n_points.div_ceil(KNN_BLOCK_ROWS))
        .into_par_iter()
        .map(|block_idx| {
            let start = block_idx * KNN_BLOCK_ROWS;
            let rows = start..(start + KNN_BLOCK_ROWS).min(n_points);
            knn_block(features, &sq_norms, rows, n_neighbours)
        })
        .collect();
    let (sq_dists, idx) = blocks.into_iter().flatten().unzip();
    Neighbours { n_neighbours, idx, sq_dists }
}

/// Neighbours `(squared distance, index)` of the points in `rows`, `n_neighbours` per point.
///
/// Candidates are chosen from Gram-matrix distances, then their distances are recomputed
/// exactly so that duplicates get exactly 0.
fn knn_block(
    features: ArrayView2<'_, f64>,
    sq_norms: &[f64],
    rows: Range<usize>,
    n_neighbours: usize,
) -> Vec<(f64, usize)> {
    let gram = features.slice(s![rows.clone(), ..]).dot(&features.t());
    let mut candidates: Vec<(f64, usize)> = Vec::with_capacity(features.nrows());
    let mut found = Vec::with_capacity(rows.len() * n_neighbours);
    for (point_idx, gram_row) in rows.zip(gram.rows()) {
        let sq_norm = sq_norms[point_idx];
        candidates.clear();
        let all = gram_row.iter().zip(sq_norms).enumerate();
        candidates.extend(all.filter(|(other_idx, _)| *other_idx != point_idx).map(
            |(other_idx, (&dot, &other_sq_norm))| {
                ((sq_norm + other_sq_norm - 2.0 * dot).max(0.0), other_idx)
            },
        ));
        candidates.select_nth_unstable_by(n_neighbours - 1, compare_candidates);
        candidates.truncate(n_neighbours);
        let row = features.row(point_idx);
        for candidate in &mut candidates {
            let other = features.row(candidate.1);
            candidate.0 = row.iter().zip(other).map(|(a, b)| (a - b) * (a - b)).sum();
        }
        candidates.sort_unstable_by(compare_candidates);
        found.extend_from_slice(&candidates);
    }
    found
}

fn compare_candidates(a: &(f64, usize), b: &(f64, usize)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// Symmetric joint affinities P, `(n_points, n_points)` in CSR form, entries summing to 1.
struct Affinities {
    row_ptr: Vec<usize>,
    col_idx: Vec<usize>,
    values: Vec<f64>,
}

impl Affinities {
    /// Calibrates the conditional affinities of every point, then symmetrises them.
    fn from_neighbours(neighbours: &Neighbours, perplexity: f64) -> Self {
        let n_neighbours = neighbours.n_neighbours;
        let mut conditional = vec![0.0; neighbours.idx.len()];
        conditional
            .par_chunks_mut(n_neighbours)
            .zip(neighbours.sq_dists.par_chunks(n_neighbours))
            .for_each(|(out, sq_dists)| conditional_affinities(sq_dists, perplexity, out));
        Self::symmetrise(&neighbours.idx, &conditional, n_neighbours)
    }

    /// P = (P_cond + P_cond^T) / sum, from row-major `(n_points, n_neighbours)` inputs.
    fn symmetrise(neighbour_idx: &[usize], conditional: &[f64], n_neighbours: usize) -> Self {
        let n_points = neighbour_idx.len() / n_neighbours;
        let mut rows: Vec<Vec<(usize, f64)>> =
            (0..n_points).map(|_| Vec::with_capacity(2 * n_neighbours)).collect();
        let idx_rows = neighbour_idx.chunks(n_neighbours);
        for (point_idx, (idx_row, p_row)) in
            idx_rows.zip(conditional.chunks(n_neighbours)).enumerate()
        {
            for (&other_idx, &p) in idx_row.iter().zip(p_row) {
                rows[point_idx].push((other_idx, p));
                rows[other_idx].push((point_idx, p));
            }
        }
        rows.par_iter_mut().for_each(merge_row);
        let total: f64 = rows.iter().flatten().map(|&(_, p)| p).sum();
        let mut row_ptr = Vec::with_capacity(n_points + 1);
        row_ptr.push(0);
        let mut col_idx = Vec::new();
        let mut values = Vec::new();
        for row in rows {
            col_idx.extend(row.iter().map(|&(other_idx, _)| other_idx));
            values.extend(row.iter().map(|&(_, p)| p / total));
            row_ptr.push(col_idx.len());
        }
        Self { row_ptr, col_idx, values }
    }

    /// Unnormalised attraction on `point_idx`: sum over j of P_ij q_ij (y_i - y_j).
    fn attraction(&self, embedding: &[[f64; 2]], point_idx: usize) -> [f64; 2] {
        let entries = self.row_ptr[point_idx]..self.row_ptr[point_idx + 1];
        let position = embedding[point_idx];
        let mut force = [0.0; 2];
        let pairs = self.col_idx[entries.clone()].iter().zip(&self.values[entries]);
        for (&other_idx, &p) in pairs {
            let other = embedding[other_idx];
            let offset = [position[0] - other[0], position[1] - other[1]];
            let weight = p / (1.0 + offset[0] * offset[0] + offset[1] * offset[1]);
            force[0] += weight * offset[0];
            force[1] += weight * offset[1];
        }
        force
    }
}

/// Sorts a row by column (stably) and sums the entries of equal columns.
fn merge_row(row: &mut Vec<(usize, f64)>) {
    row.sort_by_key(|&(other_idx, _)| other_idx);
    row.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 += next.1;
        }
        same
    });
}

/// Writes p_{j|i} for one point's neighbours into `out`, the Gaussian bandwidth found by
/// bisection so that the entropy matches `ln(perplexity)`; `sq_dists` ascending.
fn conditional_affinities(sq_dists: &[f64], perplexity: f64, out: &mut [f64]) {
    let target_entropy = perplexity.ln();
    let min_sq_dist = sq_dists[0];
    let excess_sum: f64 = sq_dists.iter().map(|d| d - min_sq_dist).sum();
    let mean_excess = excess_sum / sq_dists.len() as f64;
    let mut beta = if mean_excess > 0.0 { 1.0 / mean_excess } else { 1.0 };
    let (mut beta_low, mut beta_high) = (0.0, f64::INFINITY);
    for _ in 0..N_BANDWIDTH_STEPS {
        let entropy_excess = gaussian_row(sq_dists, beta, out) - target_entropy;
        if entropy_excess.abs() < ENTROPY_TOLERANCE {
            return;
        }
        if entropy_excess > 0.0 {
            beta_low = beta;
            beta = if beta_high.is_finite() {
                (beta + beta_high) / 2.0
            } else {
                (beta * 2.0).min(f64::MAX)
            };
        } else {
            beta_high = beta;
            beta = (beta + beta_low) / 2.0;
        }
    }
    gaussian_row(sq_dists, beta, out);
}

/// Normalised `exp(-beta * d)` of `sq_dists` (ascending) into `out`; returns its entropy.
fn gaussian_row(sq_dists: &[f64], beta: f64, out: &mut [f64]) -> f64 {
    let min_sq_dist = sq_dists[0];
    for (p, d) in out.iter_mut().zip(sq_dists) {
        *p = (-beta * (d - min_sq_dist)).exp();
    }
    let sum: f64 = out.iter().sum();
    let mut weighted_excess = 0.0;
    for (p, d) in out.iter_mut().zip(sq_dists) {
        *p /= sum;
        weighted_excess += *p * (d - min_sq_dist);
    }
    sum.ln() + beta * weighted_excess
}

/// Initial positions, one per row of `features` `(n_points, n_features)`: principal
/// components scaled to standard deviation `INIT_STD` on axis 0, or seeded Gaussian noise.
fn initial_embedding(features: ArrayView2<'_, f64>, seed: u64) -> Vec<[f64; 2]> {
    let Some(scores) = principal_scores(features, seed) else {
        return random_embedding(features.nrows(), seed);
    };
    let n_points = scores.nrows() as f64;
    let first = scores.column(0);
    let scale = INIT_STD / (first.dot(&first) / n_points).sqrt();
    scores.rows().into_iter().map(|row| [row[0] * scale, row[1] * scale]).collect()
}

fn random_embedding(n_points: usize, seed: u64) -> Vec<[f64; 2]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample = || -> f64 { StandardNormal.sample(&mut rng) };
    (0..n_points)
        .map(|_| {
            let x = sample();
            let y = sample();
            [x * INIT_STD, y * INIT_STD]
        })
        .collect()
}

/// Centred scores on the first two principal components, `(n_points, 2)`, by subspace
/// iteration from a seeded random start; `None` when either component is degenerate.
fn principal_scores(features: ArrayView2<'_, f64>, seed: u64) -> Option<Array2<f64>> {
    let n_features = features.ncols();
    let total_variance = total_variance(features)?;
    if n_features < 2 || total_variance <= 0.0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut basis = Array2::from_shape_fn((n_features, 2), |_| StandardNormal.sample(&mut rng));
    orthonormalise(&mut basis)?;
    for _ in 0..N_PCA_ITERATIONS {
        let mut next = features.t().dot(&centred_scores(features, &basis)?);
        orthonormalise(&mut next)?;
        let change = (&next - &basis).iter().fold(0.0_f64, |acc, v| acc.max(v.abs()));
        basis = next;
        if change < PCA_TOLERANCE {
            break;
        }
    }
    let scores = centred_scores(features, &basis)?;
    let n_points = features.nrows() as f64;
    let degenerate = scores
        .columns()
        .into_iter()
        .any(|column| column.dot(&column) / n_points <= PCA_DEGENERATE_RATIO * total_variance);
    (!degenerate).then_some(scores)
}

/// Mean squared distance of the rows of `features` `(n_points, n_features)` to their mean.
fn total_variance(features: ArrayView2<'_, f64>) -> Option<f64> {
    let mean = features.mean_axis(Axis(0))?;
    let sum: f64 = features
        .rows()
        .into_iter()
        .map(|row| row.iter().zip(&mean).map(|(v, m)| (v - m) * (v - m)).sum::<f64>())
        .sum();
    Some(sum / features.nrows() as f64)
}

/// `(features - mean) . basis`, shape `(n_points, 2)`, without a centred copy of `features`.
fn centred_scores(features: ArrayView2<'_, f64>, basis: &Array2<f64>) -> Option<Array2<f64>> {
    let mut scores = features.dot(basis);
    let mean = scores.mean_axis(Axis(0))?;
    scores -= &mean;
    Some(scores)
}

/// Gram-Schmidt on the two columns of `basis` `(n_features, 2)`; `None` if they are dependent.
fn orthonormalise(basis: &mut Array2<f64>) -> Option<()> {
    normalise_column(basis, 0)?;
    let first = basis.column(0).to_owned();
    let overlap = first.dot(&basis.column(1));
    basis.column_mut(1).scaled_add(-overlap, &first);
    normalise_column(basis, 1)
}

fn normalise_column(basis: &mut Array2<f64>, column_idx: usize) -> Option<()> {
    let norm = basis.column(column_idx).dot(&basis.column(column_idx)).sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return None;
    }
    basis.column_mut(column_idx).mapv_inplace(|v| v / norm);
    Some(())
}

/// Runs the gradient descent from `embedding` and returns the final positions.
fn optimise(
    affinities: &Affinities,
    mut embedding: Vec<[f64; 2]>,
    params: &TsneParams,
    should_stop: &dyn Fn() -> bool,
) -> Result<Vec<[f64; 2]>, TsneError> {
    let n_points = embedding.len();
    let learning_rate = params
        .learning_rate
        .unwrap_or_else(|| (n_points as f64 / params.early_exaggeration / 4.0).max(50.0));
    let mut descent = Descent {
        update: vec![[0.0; 2]; n_points],
        gains: vec![[1.0; 2]; n_points],
        learning_rate,
    };
    let mut gradient = vec![[0.0; 2]; n_points];
    for iteration_idx in 0..params.n_iterations {
        poll(should_stop)?;
        let exploring = iteration_idx < N_EXPLORATION_ITERATIONS;
        let exaggeration = if exploring { params.early_exaggeration } else { 1.0 };
        let momentum = if exploring { MOMENTUM_EXPLORATION } else { MOMENTUM_FINAL };
        compute_gradient(affinities, &embedding, exaggeration, params.theta, &mut gradient);
        descent.step(&mut embedding, &gradient, momentum);
    }
    Ok(embedding)
}

/// Momentum and delta-bar-delta gains of the gradient descent, one entry per point.
struct Descent {
    update: Vec<[f64; 2]>,
    gains: Vec<[f64; 2]>,
    learning_rate: f64,
}

impl Descent {
    fn step(&mut self, embedding: &mut [[f64; 2]], gradient: &[[f64; 2]], momentum: f64) {
        let states = self.update.iter_mut().zip(&mut self.gains);
        for ((position, grad), (update, gain)) in embedding.iter_mut().zip(gradient).zip(states) {
            for axis_idx in 0..2 {
                if update[axis_idx] * grad[axis_idx] < 0.0 {
                    gain[axis_idx] += GAIN_INCREMENT;
                } else {
                    gain[axis_idx] *= GAIN_DECAY;
                }
                gain[axis_idx] = gain[axis_idx].max(MIN_GAIN);
                let step = self.learning_rate * gain[axis_idx] * grad[axis_idx];
                update[axis_idx] = momentum * update[axis_idx] - step;
                position[axis_idx] += update[axis_idx];
            }
        }
    }
}

/// Writes the KL-divergence gradient, `(n_points, 2)`, into `gradient`.
fn compute_gradient(
    affinities: &Affinities,
    embedding: &[[f64; 2]],
    exaggeration: f64,
    theta: f64,
    gradient: &mut [[f64; 2]],
) {
    let repulsion = if theta == 0.0 {
        exact_repulsion(embedding)
    } else {
        QuadTree::new(embedding).repulsion(embedding, theta)
    };
    let normaliser: f64 = repulsion.iter().map(|r| r.q_sum).sum();
    gradient.par_iter_mut().enumerate().for_each(|(point_idx, grad)| {
        let attraction = affinities.attraction(embedding, point_idx);
        let force = repulsion[point_idx].force;
        for axis_idx in 0..2 {
            let attractive = exaggeration * attraction[axis_idx];
            grad[axis_idx] = 4.0 * (attractive - force[axis_idx] / normaliser);
        }
    });
}

/// Unnormalised repulsion on one point: force = sum of q² (y_i - y_j), q_sum = sum of q,
/// with q = 1 / (1 + |y_i - y_j|²).
#[derive(Debug, Clone, Copy, Default)]
struct Repulsion {
    force: [f64; 2],
    q_sum: f64,
}

impl Repulsion {
    /// Adds `weight` points at `offset` (= y_i - y_j) from the point.
    fn add(&mut self, offset: [f64; 2], weight: f64) {
        let q = 1.0 / (1.0 + offset[0] * offset[0] + offset[1] * offset[1]);
        let weighted_q = weight * q;
        self.q_sum += weighted_q;
        self.force[0] += weighted_q * q * offset[0];
        self.force[1] += weighted_q * q * offset[1];
    }
}

/// Exact O(n²) repulsion on every point of `embedding`.
fn exact_repulsion(embedding: &[[f64; 2]]) -> Vec<Repulsion> {
    (0..embedding.len())
        .into_par_iter()
        .map(|point_idx| {
            let position = embedding[point_idx];
            let mut repulsion = Repulsion::default();
            for (other_idx, other) in embedding.iter().enumerate() {
                if other_idx != point_idx {
                    repulsion.add([position[0] - other[0], position[1] - other[1]], 1.0);
                }
            }
            repulsion
        })
        .collect()
}

/// Quadtree over the embedding; each node covers a square and knows its centre of mass.
struct QuadTree {
    nodes: Vec<Node>,
    /// Point indices ordered so that every node's points are contiguous.
    point_order: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    centre: [f64; 2],
    half_width: f64,
    centre_of_mass: [f64; 2],
    n_points: usize,
    /// Index of the first of four consecutive children, or `NO_CHILDREN` for a leaf.
    first_child_idx: usize,
    /// Range of the node's points in `point_order`.
    start: usize,
    end: usize,
}

impl Node {
    fn new(centre: [f64; 2], half_width: f64, points: Range<usize>) -> Self {
        Self {
            centre,
            half_width,
            centre_of_mass: centre,
            n_points: points.len(),
            first_child_idx: NO_CHILDREN,
            start: points.start,
            end: points.end,
        }
    }

    /// Whether `position` lies in the node's closed square.
    fn contains(&self, position: [f64; 2]) -> bool {
        (position[0] - self.centre[0]).abs() <= self.half_width
            && (position[1] - self.centre[1]).abs() <= self.half_width
    }
}

impl QuadTree {
    fn new(embedding: &[[f64; 2]]) -> Self {
        let (centre, half_width) = bounding_square(embedding);
        let mut tree = Self {
            nodes: vec![Node::new(centre, half_width, 0..embedding.len())],
            point_order: (0..embedding.len()).collect(),
        };
        let mut scratch = Vec::with_capacity(embedding.len());
        tree.split(embedding, 0, 0, &mut scratch);
        tree
    }

    /// Sets the centre of mass of `node_idx` and, unless it is a leaf, creates its subtree.
    fn split(
        &mut self,
        embedding: &[[f64; 2]],
        node_idx: usize,
        depth: usize,
        scratch: &mut Vec<usize>,
    ) {
        let node = self.nodes[node_idx];
        let points = node.start..node.end;
        let mut sum = [0.0; 2];
        for &point_idx in &self.point_order[points.clone()] {
            sum[0] += embedding[point_idx][0];
            sum[1] += embedding[point_idx][1];
        }
        if node.n_points > 0 {
            let n_points = node.n_points as f64;
            self.nodes[node_idx].centre_of_mass = [sum[0] / n_points, sum[1] / n_points];
        }
        if node.n_points <= 1 || depth >= MAX_TREE_DEPTH {
            return;
        }
        let counts = self.partition(embedding, node.centre, points, scratch);
        let first_child_idx = self.nodes.len();
        self.nodes[node_idx].first_child_idx = first_child_idx;
        let child_half_width = node.half_width / 2.0;
        let mut child_start = node.start;
        for (quadrant_idx, count) in counts.into_iter().enumerate() {
            let child_centre = quadrant_centre(node.centre, child_half_width, quadrant_idx);
            let child_points = child_start..child_start + count;
            self.nodes.push(Node::new(child_centre, child_half_width, child_points));
            child_start += count;
        }
        for quadrant_idx in 0..4 {
            self.split(embedding, first_child_idx + quadrant_idx, depth + 1, scratch);
        }
    }

    /// Stably reorders `point_order[points]` by quadrant around `centre`; returns the counts.
    fn partition(
        &mut self,
        embedding: &[[f64; 2]],
        centre: [f64; 2],
        points: Range<usize>,
        scratch: &mut Vec<usize>,
    ) -> [usize; 4] {
        let slice = &mut self.point_order[points];
        let mut counts = [0_usize; 4];
        for &point_idx in slice.iter() {
            counts[quadrant(centre, embedding[point_idx])] += 1;
        }
        let mut offsets = [0, counts[0], counts[0] + counts[1], counts[0] + counts[1] + counts[2]];
        scratch.clear();
        scratch.resize(slice.len(), 0);
        for &point_idx in slice.iter() {
            let quadrant_idx = quadrant(centre, embedding[point_idx]);
            scratch[offsets[quadrant_idx]] = point_idx;
            offsets[quadrant_idx] += 1;
        }
        slice.copy_from_slice(scratch);
        counts
    }

    /// Barnes-Hut repulsion on every point, indexed by point.
    fn repulsion(&self, embedding: &[[f64; 2]], theta: f64) -> Vec<Repulsion> {
        let theta_sq = theta * theta;
        let mut in_tree_order = Vec::with_capacity(embedding.len());
        self.point_order
            .par_iter()
            .map(|&point_idx| self.repulsion_on(embedding, point_idx, theta_sq))
            .collect_into_vec(&mut in_tree_order);
        let mut by_point = vec![Repulsion::default(); embedding.len()];
        for (&point_idx, repulsion) in self.point_order.iter().zip(in_tree_order) {
            by_point[point_idx] = repulsion;
        }
        by_point
    }

    /// Depth-first traversal summarising cells that are small and far from the point.
    fn repulsion_on(&self, embedding: &[[f64; 2]], point_idx: usize, theta_sq: f64) -> Repulsion {
        let position = embedding[point_idx];
        let mut repulsion = Repulsion::default();
        let mut stack = [0_usize; TRAVERSAL_STACK_LEN];
        let mut stack_len = 1;
        while stack_len > 0 {
            stack_len -= 1;
            let node = &self.nodes[stack[stack_len]];
            let com = node.centre_of_mass;
            let offset = [position[0] - com[0], position[1] - com[1]];
            if node.first_child_idx == NO_CHILDREN {
                if node.n_points > 1 {
                    self.add_leaf(embedding, node, point_idx, &mut repulsion);
                } else if self.point_order[node.start] != point_idx {
                    repulsion.add(offset, 1.0);
                }
                continue;
            }
            let sq_dist = offset[0] * offset[0] + offset[1] * offset[1];
            let width = 2.0 * node.half_width;
            if width * width < theta_sq * sq_dist && !node.contains(position) {
                repulsion.add(offset, node.n_points as f64);
                continue;
            }
            for child_idx in node.first_child_idx..node.first_child_idx + 4 {
                if self.nodes[child_idx].n_points > 0 {
                    stack[stack_len] = child_idx;
                    stack_len += 1;
                }
            }
        }
        repulsion
    }

    /// Exact repulsion from the points of a leaf, skipping the point itself.
    fn add_leaf(
        &self,
        embedding: &[[f64; 2]],
        node: &Node,
        point_idx: usize,
        repulsion: &mut Repulsion,
    ) {
        let position = embedding[point_idx];
        for &other_idx in &self.point_order[node.start..node.end] {
            if other_idx != point_idx {
                let other = embedding[other_idx];
                repulsion.add([position[0] - other[0], position[1] - other[1]], 1.0);
            }
        }
    }
}

/// Centre and half width of a square slightly larger than the bounding box of `embedding`.
fn bounding_square(embedding: &[[f64; 2]]) -> ([f64; 2], f64) {
    let mut min = [f64::INFINITY; 2];
    let mut max = [f64::NEG_INFINITY; 2];
    for position in embedding {
        for axis_idx in 0..2 {
            min[axis_idx] = min[axis_idx].min(position[axis_idx]);
            max[axis_idx] = max[axis_idx].max(position[axis_idx]);
        }
    }
    let centre = [(min[0] + max[0]) / 2.0, (min[1] + max[1]) / 2.0];
    let extent = (max[0] - min[0]).max(max[1] - min[1]);
    (centre, extent / 2.0 * (1.0 + 1e-9) + f64::MIN_POSITIVE)
}

/// Quadrant of `position` around `centre`: bit 0 set right of it, bit 1 set above it.
fn quadrant(centre: [f64; 2], position: [f64; 2]) -> usize {
    usize::from(position[0] >= centre[0]) | (usize::from(position[1] >= centre[1]) << 1)
}

fn quadrant_centre(centre: [f64; 2], child_half_width: f64, quadrant_idx: usize) -> [f64; 2] {
    let shift = |bit: usize| {
        if quadrant_idx & bit == 0 {
            -child_half_width
        } else {
            child_half_width
        }
    };
    [centre[0] + shift(1), centre[1] + shift(2)]
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use ndarray::{array, Array2, ArrayView2};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    use super::*;

    /// `n_blobs` unit Gaussian blobs in `n_features` dimensions, centres 10 apart on the axes;
    /// returns the points `(n_points, n_features)` and each point's blob.
    fn blobs(n_per_blob: usize, n_blobs: usize, n_features: usize) -> (Array2<f64>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n_points = n_per_blob * n_blobs;
        let labels: Vec<usize> = (0..n_points).map(|point_idx| point_idx % n_blobs).collect();
        let features = Array2::from_shape_fn((n_points, n_features), |(point_idx, col_idx)| {
            let centre = if col_idx == labels[point_idx] { 10.0 } else { 0.0 };
            let noise: f64 = StandardNormal.sample(&mut rng);
            centre + noise
        });
        (features, labels)
    }

    fn quick_params() -> TsneParams {
        TsneParams { perplexity: 15.0, n_iterations: 350, ..TsneParams::default() }
    }

    fn run(features: &Array2<f64>, params: &TsneParams) -> Array2<f64> {
        embed(features.view(), params, &|| false).expect("embedding succeeds")
    }

    /// Indices of the `n_neighbours` nearest other rows of `points` to `point_idx`.
    fn nearest(points: ArrayView2<'_, f64>, point_idx: usize, n_neighbours: usize) -> Vec<usize> {
        let row = points.row(point_idx);
        let mut by_distance: Vec<(f64, usize)> = points
            .rows()
            .into_iter()
            .enumerate()
            .filter(|&(other_idx, _)| other_idx != point_idx)
            .map(|(other_idx, other)| {
                let sq_dist = row.iter().zip(other).map(|(a, b)| (a - b) * (a - b)).sum();
                (sq_dist, other_idx)
            })
            .collect();
        by_distance.sort_by(compare_candidates);
        by_distance.into_iter().take(n_neighbours).map(|(_, idx)| idx).collect()
    }

    /// Fraction of points whose 5 nearest embedded neighbours are mostly from their blob.
    fn blob_purity(embedding: &Array2<f64>, labels: &[usize]) -> f64 {
        let n_pure = (0..labels.len())
            .filter(|&point_idx| {
                let neighbours = nearest(embedding.view(), point_idx, 5);
                let n_same = neighbours.iter().filter(|&&n| labels[n] == labels[point_idx]);
                n_same.count() >= 3
            })
            .count();
        n_pure as f64 / labels.len() as f64
    }

    /// Mean overlap of the 10 nearest neighbours in the input and in the embedding.
    fn neighbourhood_preservation(features: &Array2<f64>, embedding: &Array2<f64>) -> f64 {
        let n_points = features.nrows();
        let overlap: usize = (0..n_points)
            .map(|point_idx| {
                let input = nearest(features.view(), point_idx, 10);
                let output = nearest(embedding.view(), point_idx, 10);
                output.iter().filter(|idx| input.contains(idx)).count()
            })
            .sum();
        overlap as f64 / (10 * n_points) as f64
    }

    fn assert_finite(embedding: &Array2<f64>, n_points: usize) {
        assert_eq!(embedding.dim(), (n_points, 2));
        assert!(embedding.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn separated_blobs_stay_separated() {
        let (features, labels) = blobs(60, 3, 10);
        let embedding = run(&features, &quick_params());
        assert_finite(&embedding, 180);
        let purity = blob_purity(&embedding, &labels);
        assert!(purity > 0.95, "purity {purity}");
    }

    #[test]
    fn same_seed_gives_identical_output() {
        let (features, _) = blobs(50, 3, 10);
        let params = TsneParams { n_iterations: 300, ..quick_params() };
        let first = run(&features, &params);
        let second = run(&features, &params);
        assert_finite(&first, 150);
        let identical = first.iter().zip(&second).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(identical);
    }

    #[test]
    fn barnes_hut_matches_exact_neighbourhoods() {
        let (features, labels) = blobs(50, 3, 10);
        let exact = run(&features, &TsneParams { theta: 0.0, ..quick_params() });
        let approximate = run(&features, &quick_params());
        let exact_score = neighbourhood_preservation(&features, &exact);
        let approximate_score = neighbourhood_preservation(&features, &approximate);
        assert!(exact_score > 0.3, "exact {exact_score}");
        assert!((exact_score - approximate_score).abs() < 0.1, "{approximate_score}");
        assert!(blob_purity(&exact, &labels) > 0.95);
    }

    #[test]
    fn quadtree_repulsion_approximates_exact_sum() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut embedding: Vec<[f64; 2]> =
            (0..400).map(|_| [rng.gen_range(-20.0..20.0), rng.gen_range(-20.0..20.0)]).collect();
        embedding.extend_from_within(0..20);
        let exact = exact_repulsion(&embedding);
        let tree = QuadTree::new(&embedding);
        let tight = tree.repulsion(&embedding, 1e-6);
        let loose = tree.repulsion(&embedding, 0.5);
        let exact_z: f64 = exact.iter().map(|r| r.q_sum).sum();
        let loose_z: f64 = loose.iter().map(|r| r.q_sum).sum();
        assert!(((exact_z - loose_z) / exact_z).abs() < 0.02);
        let (mut total_error, mut total_norm) = (0.0, 0.0);
        for ((e, t), l) in exact.iter().zip(&tight).zip(&loose) {
            assert!((e.q_sum - t.q_sum).abs() < 1e-9 * e.q_sum);
            assert!((e.force[0] - t.force[0]).abs() < 1e-9 * e.q_sum);
            total_norm += e.force[0].hypot(e.force[1]);
            total_error += (e.force[0] - l.force[0]).hypot(e.force[1] - l.force[1]);
        }
        assert!(total_error < 0.05 * total_norm, "error {total_error} of {total_norm}");
    }

    #[test]
    fn bandwidth_matches_perplexity() {
        let sq_dists: Vec<f64> = (0..45).map(|idx| (idx as f64).sqrt()).collect();
        let mut p = vec![0.0; sq_dists.len()];
        conditional_affinities(&sq_dists, 15.0, &mut p);
        let entropy: f64 = p.iter().filter(|&&v| v > 0.0).map(|v| -v * v.ln()).sum();
        assert!((entropy.exp() - 15.0).abs() < 1e-3, "perplexity {}", entropy.exp());
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn affinities_are_symmetric_and_normalised() {
        let (features, _) = blobs(10, 3, 4);
        let neighbours = nearest_neighbours(features.view(), 6);
        let affinities = Affinities::from_neighbours(&neighbours, 2.0);
        assert!((affinities.values.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let lookup = |row_idx: usize, col_idx: usize| {
            let entries = affinities.row_ptr[row_idx]..affinities.row_ptr[row_idx + 1];
            let position = affinities.col_idx[entries.clone()].iter().position(|&c| c == col_idx);
            position.map_or(0.0, |offset| affinities.values[entries.start + offset])
        };
        for row_idx in 0..30 {
            assert_eq!(nearest(features.view(), row_idx, 6), neighbours.idx[row_idx * 6..][..6]);
            for col_idx in 0..30 {
                assert_eq!(lookup(row_idx, col_idx), lookup(col_idx, row_idx));
            }
        }
    }

    #[test]
    fn cancellation_returns_cancelled() {
        let (features, _) = blobs(20, 3, 5);
        let params = quick_params();
        let result = embed(features.view(), &params, &|| true);
        assert_eq!(result.unwrap_err(), TsneError::Cancelled);
        let n_polls = Cell::new(0);
        let stop_later = || {
            n_polls.set(n_polls.get() + 1);
            n_polls.get() > 10
        };
        let result = embed(features.view(), &params, &stop_later);
        assert_eq!(result.unwrap_err(), TsneError::Cancelled);
        assert_eq!(n_polls.get(), 11);
    }

    #[test]
    fn duplicates_stay_finite() {
        let (mut features, _) = blobs(30, 3, 5);
        let copied = features.row(0).to_owned();
        for row_idx in 1..40 {
            features.row_mut(row_idx).assign(&copied);
        }
        assert_finite(&run(&features, &quick_params()), 90);
        let identical = Array2::from_elem((25, 4), 1.5);
        assert_finite(&run(&identical, &quick_params()), 25);
    }

    #[test]
    fn tiny_inputs() {
        let three = array![[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]];
        assert_finite(&run(&three, &TsneParams::default()), 3);
        let one_feature = array![[0.0], [1.0], [3.0], [7.0]];
        assert_finite(&run(&one_feature, &quick_params()), 4);
        let two = array![[0.0, 0.0], [1.0, 1.0]];
        let result = embed(two.view(), &TsneParams::default(), &|| false);
        assert_eq!(result.unwrap_err(), TsneError::TooFewPoints { n_points: 2 });
    }

    #[test]
    fn invalid_input_is_rejected() {
        let (mut features, _) = blobs(5, 3, 3);
        let field_of = |params: TsneParams| match embed(features.view(), &params, &|| false) {
            Err(TsneError::InvalidParameter { field, .. }) => field,
            other => panic!("expected an invalid parameter, got {other:?}"),
        };
        let defaults = TsneParams::default;
        assert_eq!(field_of(TsneParams { perplexity: 0.0, ..defaults() }), "perplexity");
        assert_eq!(field_of(TsneParams { n_iterations: 0, ..defaults() }), "n_iterations");
        let low = TsneParams { early_exaggeration: 0.5, ..defaults() };
        assert_eq!(field_of(low), "early_exaggeration");
        let nan_rate = TsneParams { learning_rate: Some(f64::NAN), ..defaults() };
        assert_eq!(field_of(nan_rate), "learning_rate");
        assert_eq!(field_of(TsneParams { theta: 1.5, ..defaults() }), "theta");
        features[[4, 2]] = f64::INFINITY;
        let result = embed(features.view(), &defaults(), &|| false);
        let expected = TsneError::NonFiniteInput { row_idx: 4, col_idx: 2 };
        assert_eq!(result.unwrap_err(), expected);
    }
}
