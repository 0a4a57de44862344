//! Principal component analysis by randomized SVD (Halko, Martinsson and Tropp, 2011).
//!
//! The fit centres the data, multiplies it by a seeded Gaussian test matrix, refines the
//! range with a few power iterations, and takes the exact SVD of the small projected
//! matrix through the eigen-decomposition of its Gram matrix. When there are more images
//! than `max_fit_images`, it is fitted on a seeded random sample and then projects
//! everything. No BLAS is needed; large products run in parallel row blocks.
//!
//! The leading components agree with an exact SVD to many digits on image data, whose
//! spectrum decays fast; on flat spectra the trailing kept components are approximate.

use ndarray::{s, Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::ModelError;

/// How many components to keep.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentCount {
    /// The fewest components that explain at least this share of the variance, in (0, 1].
    Variance(f64),
    /// Exactly this many (fewer if the data has fewer dimensions).
    Fixed(usize),
}

/// Parameters of the PCA fit.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PcaParams {
    /// Default: 95 % of the variance, as in the Python package.
    pub components: ComponentCount,
    /// Above this many images the fit uses a random sample of this size. Default 20,000.
    pub max_fit_images: usize,
    pub seed: u64,
}

impl Default for PcaParams {
    fn default() -> Self {
        PcaParams { components: ComponentCount::Variance(0.95), max_fit_images: 20_000, seed: 0 }
    }
}

/// A fitted PCA.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Pca {
    /// Column means of the fitted data, shape `(n_features,)`.
    pub mean: Array1<f32>,
    /// Principal axes as rows, shape `(n_components, n_features)`.
    pub components: Array2<f32>,
    /// Share of the total variance explained by each kept component.
    pub explained_variance_ratio: Vec<f64>,
}

impl Pca {
    /// Fits on `data`, shape `(n_images, n_features)`.
    pub fn fit(data: ArrayView2<'_, f32>, params: &PcaParams) -> Result<Pca, ModelError> {
        let (n_images, n_features) = data.dim();
        if n_images < 2 || n_features == 0 {
            return Err(ModelError::TooFewImages { n_images, min_images: 2, step: "pca" });
        }
        let sample = sample_rows(data, params.max_fit_images, params.seed);
        let mean = sample.mean_axis(Axis(0)).expect("sample has rows");
        let centered = &sample - &mean;
        let total_variance = column_variance_sum(&centered);
        if total_variance <= 0.0 {
            return Err(ModelError::Degenerate { step: "pca", reason: "all images are equal" });
        }
        let (components, variances) = fit_components(&centered, params, total_variance);
        let explained_variance_ratio = variances.iter().map(|v| v / total_variance).collect();
        Ok(Pca { mean, components, explained_variance_ratio })
    }

    pub fn n_components(&self) -> usize {
        self.components.nrows()
    }

    /// Projects `data`, shape `(n_images, n_features)`, to `(n_images, n_components)`.
    pub fn transform(&self, data: ArrayView2<'_, f32>) -> Array2<f64> {
        let offset = self.components.dot(&self.mean);
        let projected = parallel_dot(data, &self.components.t().to_owned());
        (projected - &offset).mapv(f64::from)
    }
}

/// The upper bound on the rank tried when searching for a variance share.
fn rank_limit(centered: &Array2<f32>) -> usize {
    centered.nrows().min(centered.ncols())
}

fn fit_components(
    centered: &Array2<f32>,
    params: &PcaParams,
    total_variance: f64,
) -> (Array2<f32>, Vec<f64>) {
    if centered.ncols() <= EXACT_MAX_FEATURES {
        return keep_components(exact_components(centered), params.components, total_variance);
    }
    let limit = rank_limit(centered);
    let mut rank = match params.components {
        ComponentCount::Fixed(n) => n.clamp(1, limit),
        ComponentCount::Variance(_) => 100.min(limit),
    };
    loop {
        let (axes, variances) = randomized_svd(centered, rank, params.seed);
        let ComponentCount::Variance(share) = params.components else {
            return (axes, variances);
        };
        if let Some(n_kept) = count_for_share(&variances, total_variance, share) {
            return (axes.slice(s![..n_kept, ..]).to_owned(), variances[..n_kept].to_vec());
        }
        if rank == limit {
            return (axes, variances);
        }
        rank = (rank * 2).min(limit);
    }
}

/// Up to this many features, the covariance matrix is small enough to decompose exactly.
const EXACT_MAX_FEATURES: usize = 1024;

/// Eigenvalues (descending) and eigenvectors (columns, in the same order) of a symmetric
/// positive semi-definite matrix.
///
/// The eigen-solver walks the matrix with its row length as stride; at a multiple of 256
/// values that stride maps every row onto the same cache sets, and a 1024 x 1024 matrix
/// took ten times as long as a 1030 x 1030 one. Such a matrix is decomposed inside one a
/// row and a column larger, whose extra diagonal entry is negative: its eigenvalue sorts
/// last and is dropped, and its eigenvector, zero elsewhere, is cut off with it.
fn symmetric_eigen_desc(matrix: Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    use linfa_linalg::eigh::{EigSort, Eigh};
    let n = matrix.nrows();
    if n < 256 || !n.is_multiple_of(256) {
        return matrix.eigh().expect("the matrix is symmetric").sort_eig_desc();
    }
    let scale = matrix.diag().iter().fold(0.0_f64, |top, &value| top.max(value.abs()));
    let mut padded = Array2::<f64>::zeros((n + 1, n + 1));
    padded.slice_mut(s![..n, ..n]).assign(&matrix);
    padded[(n, n)] = -(scale + 1.0);
    let (values, vectors) = padded.eigh().expect("the matrix is symmetric").sort_eig_desc();
    (values.slice(s![..n]).to_owned(), vectors.slice(s![..n, ..n]).to_owned())
}

/// Every principal axis (rows, descending) and its variance, from the eigenvectors of the
/// covariance matrix, shape `(n_features, n_features)`, or of the images' Gram matrix when
/// there are fewer images than features.
fn exact_components(centered: &Array2<f32>) -> (Array2<f32>, Vec<f64>) {
    if centered.nrows() < centered.ncols() {
        // Fewer images than features: the images' Gram matrix is the smaller one to
        // decompose, and gives the same axes.
        let (axes, squares) = right_singular_vectors(centered);
        let scale = (centered.nrows() - 1) as f64;
        return (axes, squares.iter().map(|square| square / scale).collect());
    }
    let wide = centered.mapv(f64::from);
    let covariance = parallel_gram(&wide) / (centered.nrows() - 1) as f64;
    let (values, vectors) = symmetric_eigen_desc(covariance);
    let n_positive = values.iter().take_while(|&&v| v > values[0] * 1e-12).count().max(1);
    let axes = vectors.slice(s![.., ..n_positive]).t().mapv(|v| v as f32);
    (axes, values.iter().take(n_positive).copied().collect())
}

/// Truncates all components to what `count` asks for.
fn keep_components(
    (axes, variances): (Array2<f32>, Vec<f64>),
    count: ComponentCount,
    total_variance: f64,
) -> (Array2<f32>, Vec<f64>) {
    let n_kept = match count {
        ComponentCount::Fixed(n) => n.clamp(1, variances.len()),
        ComponentCount::Variance(share) => {
            count_for_share(&variances, total_variance, share).unwrap_or(variances.len())
        }
    };
    (axes.slice(s![..n_kept, ..]).to_owned(), variances[..n_kept].to_vec())
}

/// `matrix.t().dot(matrix)`, summing per-block products in a fixed order.
fn parallel_gram(matrix: &Array2<f64>) -> Array2<f64> {
    const BLOCK_ROWS: usize = 1024;
    let partials: Vec<Array2<f64>> = matrix
        .axis_chunks_iter(Axis(0), BLOCK_ROWS)
        .into_par_iter()
        .map(|block| block.t().dot(&block))
        .collect();
    let mut total = Array2::<f64>::zeros((matrix.ncols(), matrix.ncols()));
    for partial in partials {
        total += &partial;
    }
    total
}

/// The fewest leading components reaching `share`, if these are enough.
fn count_for_share(variances: &[f64], total_variance: f64, share: f64) -> Option<usize> {
    let mut cumulative = 0.0;
    for (idx, variance) in variances.iter().enumerate() {
        cumulative += variance / total_variance;
        if cumulative >= share - 1e-12 {
            return Some(idx + 1);
        }
    }
    None
}

/// Returns the top `rank` right singular vectors as rows, and the variance along each.
fn randomized_svd(centered: &Array2<f32>, rank: usize, seed: u64) -> (Array2<f32>, Vec<f64>) {
    const OVERSAMPLING: usize = 10;
    // Two passes suffice for the fast-decaying spectra of images (Halko et al., section 4.5).
    const POWER_ITERATIONS: usize = 3;
    let (n_images, n_features) = centered.dim();
    let width = (rank + OVERSAMPLING).min(n_images.min(n_features));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let test_matrix = Array2::from_shape_simple_fn((n_features, width), || {
        let value: f32 = StandardNormal.sample(&mut rng);
        value
    });
    // Range of the data, shape (n_images, width), sharpened by power iterations.
    let mut basis = orthonormalize(parallel_dot(centered.view(), &test_matrix));
    for _ in 0..POWER_ITERATIONS {
        let back = orthonormalize(parallel_transpose_dot(centered.view(), &basis));
        basis = orthonormalize(parallel_dot(centered.view(), &back));
    }
    // Small matrix, shape (width, n_features), whose SVD gives the data's.
    let small = parallel_transpose_dot(centered.view(), &basis).reversed_axes();
    let (axes, singular_squares) = right_singular_vectors(&small);
    let n_kept = rank.min(axes.nrows());
    let variances = singular_squares[..n_kept].iter().map(|s| s / (n_images - 1) as f64).collect();
    (axes.slice(s![..n_kept, ..]).to_owned(), variances)
}

/// Right singular vectors of `small` (rows, descending) and the squared singular values.
fn right_singular_vectors(small: &Array2<f32>) -> (Array2<f32>, Vec<f64>) {
    let small64 = small.mapv(f64::from);
    let gram = small64.dot(&small64.t());
    let (values, vectors) = symmetric_eigen_desc(gram);
    let mut axes = Array2::<f64>::zeros((0, small.ncols()));
    let mut squares = Vec::new();
    let largest = values.first().copied().unwrap_or(0.0).max(0.0);
    for (idx, &value) in values.iter().enumerate() {
        if value <= largest * 1e-12 || value <= 0.0 {
            break;
        }
        let axis = vectors.column(idx).dot(&small64) / value.sqrt();
        axes.push_row(axis.view()).expect("row has n_features values");
        squares.push(value);
    }
    (axes.mapv(|v| v as f32), squares)
}

/// An orthonormal basis of the column space of `matrix`, shape `(n_rows, n_columns)` or
/// narrower when the columns are dependent.
///
/// It whitens the columns with the eigen-decomposition of their Gram matrix and does it
/// twice, which restores the orthogonality the first pass loses to rounding (as in
/// CholeskyQR2). Both passes are matrix products, far faster here than Householder QR.
fn orthonormalize(matrix: Array2<f32>) -> Array2<f32> {
    let once = whiten_columns(matrix);
    whiten_columns(once)
}

fn whiten_columns(matrix: Array2<f32>) -> Array2<f32> {
    let wide = matrix.mapv(f64::from);
    let gram = parallel_gram(&wide);
    let (values, vectors) = symmetric_eigen_desc(gram);
    let largest = values[0].max(0.0);
    let n_kept = values.iter().take_while(|&&v| v > largest * 1e-10 && v > 0.0).count().max(1);
    let mut transform = vectors.slice(s![.., ..n_kept]).to_owned();
    for (mut column, value) in transform.columns_mut().into_iter().zip(&values) {
        column /= value.sqrt();
    }
    parallel_dot(matrix.view(), &transform.mapv(|v| v as f32))
}

/// `data.dot(right)`, in parallel blocks of rows.
fn parallel_dot(data: ArrayView2<'_, f32>, right: &Array2<f32>) -> Array2<f32> {
    const BLOCK_ROWS: usize = 256;
    let mut output = Array2::<f32>::zeros((data.nrows(), right.ncols()));
    output
        .axis_chunks_iter_mut(Axis(0), BLOCK_ROWS)
        .into_par_iter()
        .zip(data.axis_chunks_iter(Axis(0), BLOCK_ROWS).into_par_iter())
        .for_each(|(mut out_block, in_block)| out_block.assign(&in_block.dot(right)));
    output
}

/// `data.t().dot(right)`, summing per-block products in a fixed order for determinism.
fn parallel_transpose_dot(data: ArrayView2<'_, f32>, right: &Array2<f32>) -> Array2<f32> {
    const BLOCK_ROWS: usize = 1024;
    let partials: Vec<Array2<f32>> = data
        .axis_chunks_iter(Axis(0), BLOCK_ROWS)
        .into_par_iter()
        .zip(right.axis_chunks_iter(Axis(0), BLOCK_ROWS).into_par_iter())
        .map(|(data_block, right_block)| data_block.t().dot(&right_block))
        .collect();
    let mut total = Array2::<f32>::zeros((data.ncols(), right.ncols()));
    for partial in partials {
        total += &partial;
    }
    total
}

fn column_variance_sum(centered: &Array2<f32>) -> f64 {
    let n_images = centered.nrows();
    let sum_squares: f64 = centered.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    sum_squares / (n_images - 1) as f64
}

/// All rows when there are at most `max_rows`, else a seeded sample in row order.
fn sample_rows(data: ArrayView2<'_, f32>, max_rows: usize, seed: u64) -> Array2<f32> {
    if data.nrows() <= max_rows {
        return data.to_owned();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5a5a);
    let mut chosen = rand::seq::index::sample(&mut rng, data.nrows(), max_rows).into_vec();
    chosen.sort_unstable();
    data.select(Axis(0), &chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data of rank 3 plus tiny noise, shape (200, 50).
    fn low_rank_data() -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut normal = || -> f32 { StandardNormal.sample(&mut rng) };
        let scores = Array2::from_shape_simple_fn((200, 3), &mut normal) * 10.0;
        let axes = Array2::from_shape_simple_fn((3, 50), &mut normal);
        let noise = Array2::from_shape_simple_fn((200, 50), &mut normal) * 0.01;
        scores.dot(&axes) + noise + 5.0
    }

    #[test]
    fn variance_threshold_finds_the_true_rank() {
        let data = low_rank_data();
        let pca = Pca::fit(data.view(), &PcaParams::default()).unwrap();
        assert_eq!(pca.n_components(), 3);
        let explained: f64 = pca.explained_variance_ratio.iter().sum();
        assert!(explained > 0.99, "explained {explained}");
    }

    #[test]
    fn components_are_orthonormal_and_ordered() {
        let data = low_rank_data();
        let params = PcaParams { components: ComponentCount::Fixed(5), ..Default::default() };
        let pca = Pca::fit(data.view(), &params).unwrap();
        let gram = pca.components.dot(&pca.components.t());
        for i in 0..5 {
            for j in 0..5 {
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((gram[[i, j]] - expected).abs() < 1e-3, "gram[{i},{j}] {}", gram[[i, j]]);
            }
        }
        let ratios = &pca.explained_variance_ratio;
        assert!(ratios.windows(2).all(|pair| pair[0] >= pair[1]));
    }

    #[test]
    fn projection_preserves_distances_of_low_rank_data() {
        let data = low_rank_data();
        let pca = Pca::fit(data.view(), &PcaParams::default()).unwrap();
        let projected = pca.transform(data.view());
        let original = (&data.row(0) - &data.row(1)).mapv(|v| f64::from(v).powi(2)).sum().sqrt();
        let reduced = (&projected.row(0) - &projected.row(1)).mapv(|v| v * v).sum().sqrt();
        assert!((original - reduced).abs() / original < 0.01, "{original} vs {reduced}");
    }

    #[test]
    fn sampled_fit_is_deterministic_and_close_to_full_fit() {
        let data = low_rank_data();
        let sampled = PcaParams { max_fit_images: 100, ..Default::default() };
        let first = Pca::fit(data.view(), &sampled).unwrap();
        let second = Pca::fit(data.view(), &sampled).unwrap();
        assert_eq!(first.components, second.components);
        // The three true axes have similar variance, so compare subspaces, not single axes.
        let full = Pca::fit(data.view(), &PcaParams::default()).unwrap();
        for axis in full.components.rows() {
            let inside = first.components.dot(&axis).mapv(|v| v * v).sum().sqrt();
            assert!(inside > 0.999, "axis leaves the sampled subspace: {inside}");
        }
    }

    #[test]
    fn randomized_svd_matches_the_exact_decomposition() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut normal = || -> f32 { StandardNormal.sample(&mut rng) };
        // Six axes of decaying strength in 300 features.
        let strengths = Array1::from(vec![20.0f32, 12.0, 8.0, 5.0, 3.0, 2.0]);
        let scores = Array2::from_shape_simple_fn((150, 6), &mut normal) * &strengths;
        let axes = Array2::from_shape_simple_fn((6, 300), &mut normal);
        let noise = Array2::from_shape_simple_fn((150, 300), &mut normal) * 0.05;
        let data = scores.dot(&axes) + noise;
        let centered = &data - &data.mean_axis(Axis(0)).unwrap();
        let (randomized_axes, randomized_variances) = randomized_svd(&centered, 6, 0);
        let (exact_axes, exact_variances) = exact_components(&centered);
        for (idx, axis) in randomized_axes.rows().into_iter().enumerate() {
            let alignment = axis.dot(&exact_axes.row(idx)).abs();
            assert!(alignment > 0.999, "axis {idx}: alignment {alignment}");
            let ratio = randomized_variances[idx] / exact_variances[idx];
            assert!((ratio - 1.0).abs() < 1e-3, "variance {idx}: ratio {ratio}");
        }
    }

    #[test]
    fn wide_data_reaches_the_variance_share() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let mut normal = || -> f32 { StandardNormal.sample(&mut rng) };
        // Wider than EXACT_MAX_FEATURES, so the randomized path runs.
        let scores = Array2::from_shape_simple_fn((60, 4), &mut normal) * 10.0;
        let axes = Array2::from_shape_simple_fn((4, EXACT_MAX_FEATURES + 10), &mut normal);
        let data = scores.dot(&axes);
        let params = PcaParams { components: ComponentCount::Variance(0.99), ..Default::default() };
        let pca = Pca::fit(data.view(), &params).unwrap();
        let explained: f64 = pca.explained_variance_ratio.iter().sum();
        assert!(explained >= 0.99 && pca.n_components() <= 4, "{explained}");
    }

    #[test]
    fn orthonormalized_columns_are_orthonormal() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let matrix =
            Array2::from_shape_simple_fn((500, 20), || -> f32 { StandardNormal.sample(&mut rng) });
        let basis = orthonormalize(matrix);
        let gram = basis.t().dot(&basis);
        let identity = Array2::<f32>::eye(20);
        assert!((gram - identity).iter().all(|v| v.abs() < 1e-4));
    }

    #[test]
    fn identical_images_are_degenerate() {
        let data = Array2::<f32>::ones((10, 4));
        assert!(matches!(
            Pca::fit(data.view(), &PcaParams::default()),
            Err(ModelError::Degenerate { .. })
        ));
    }

    #[test]
    fn padded_eigen_decomposition_matches_the_plain_one() {
        use linfa_linalg::eigh::{EigSort, Eigh};
        // 256 rows takes the padded path; a rank-deficient Gram matrix, as covariances of
        // fewer images than features are.
        let factors = Array2::from_shape_fn((256, 40), |(i, j)| ((i * 7 + j * 13) as f64).sin());
        let matrix = factors.dot(&factors.t());
        let (values, vectors) = symmetric_eigen_desc(matrix.clone());
        let (plain, _) = matrix.clone().eigh().unwrap().sort_eig_desc();
        assert_eq!(values.len(), 256);
        for (a, b) in values.iter().zip(&plain) {
            assert!((a - b).abs() < 1e-8 * plain[0], "{a} against {b}");
        }
        for idx in 0..40 {
            let vector = vectors.column(idx);
            let residual = &matrix.dot(&vector) - &(&vector * values[idx]);
            let norm = residual.iter().map(|r| r * r).sum::<f64>().sqrt();
            assert!(norm < 1e-8 * values[0], "eigenpair {idx}: residual {norm}");
        }
    }

    #[test]
    fn fewer_images_than_features_give_the_covariance_axes() {
        let data = Array2::from_shape_fn((30, 200), |(i, j)| {
            ((i * 37 + j * 11) as f32 * 0.37).sin() + 0.1 * (j as f32).cos()
        });
        let mean = data.mean_axis(Axis(0)).unwrap();
        let centered = &data - &mean;
        let (axes, variances) = exact_components(&centered);
        let wide = centered.mapv(f64::from);
        let covariance = wide.t().dot(&wide) / 29.0;
        let (plain, vectors) = symmetric_eigen_desc(covariance);
        assert!(variances.len() <= 29, "{} axes from 30 centred images", variances.len());
        for (idx, variance) in variances.iter().enumerate().take(10) {
            assert!((variance - plain[idx]).abs() < 1e-4 * plain[0], "variance {idx}");
            let agreement: f64 = axes
                .row(idx)
                .iter()
                .zip(vectors.column(idx))
                .map(|(&a, &b)| f64::from(a) * b)
                .sum();
            assert!(agreement.abs() > 0.999, "axis {idx}: |cos| {agreement}");
        }
    }
}
