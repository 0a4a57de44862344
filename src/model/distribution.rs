//! Null distributions of image distances, used by `find` to judge which images are
//! significantly close to a query. This module owns fitting a normal, exponential, gamma or
//! log-normal distribution to a sample of pairwise library distances, choosing the kind that
//! fits best by the Kolmogorov-Smirnov (KS) statistic, turning a distance into a lower-tail
//! p-value, and drawing the random pairs the sample is computed on. It also owns the special
//! functions this needs (ln Gamma, digamma, trigamma, the regularised incomplete gamma
//! function and the normal CDF), written from their series, continued fractions and
//! asymptotic expansions. What it does not do well yet: the positive distributions have no
//! location shift (they start at distance 0, unlike scipy-style fits with a `loc`); zero and
//! negative distances are clamped to a tiny positive value for the exponential, gamma and
//! log-normal fits, so a sample with many exact duplicates fits those kinds poorly; the KS
//! statistic only ranks the kinds, no goodness-of-fit test is made; and gamma CDFs with a
//! shape above one million use the Wilson-Hilferty approximation.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Fewest samples `fit` and `fit_best` accept.
pub const MIN_SAMPLES: usize = 10;

/// Zero and negative samples are clamped to this fraction of the mean absolute sample
/// before fitting the positive distributions (exponential, gamma, log-normal).
pub const ZERO_CLAMP_FRACTION: f64 = 1e-6;

/// In `fit_best`, KS statistics within `KS_TIE_WIDTH / sqrt(n_samples)` of the smallest are
/// ties (the difference is below the sampling resolution of the statistic), broken in the
/// enum order. This keeps, e.g., exponential samples from going to the gamma by chance.
pub const KS_TIE_WIDTH: f64 = 0.5;

/// Gamma shapes above this use the Wilson-Hilferty approximation in the CDF.
const WILSON_HILFERTY_MIN_SHAPE: f64 = 1e6;
/// Upper bound on a fitted gamma shape (reached only by nearly constant samples).
const MAX_GAMMA_SHAPE: f64 = 1e12;
/// Relative tolerance of the series and continued fractions.
const REL_TOL: f64 = 1e-15;
/// Relative step size at which the Newton iteration for the gamma shape stops.
const NEWTON_REL_TOL: f64 = 1e-12;
/// Stand-in for zero in the modified Lentz algorithm.
const LENTZ_TINY: f64 = 1e-300;
/// Arguments at or above this use the asymptotic expansions of ln Gamma and digamma.
const ASYMPTOTIC_MIN: f64 = 10.0;
const MAX_NEWTON_STEPS: usize = 100;

/// A family of distributions that distances can be fitted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistributionKind {
    /// Parameters `mean` and `std`.
    Normal,
    /// Parameter `scale` (the mean, 1 / rate); support x >= 0.
    Exponential,
    /// Parameters `shape` and `scale` (mean = shape * scale); support x >= 0.
    Gamma,
    /// Parameters `mu` and `sigma`, the mean and standard deviation of ln x; support x > 0.
    LogNormal,
}

/// A fitted distribution of distances.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FittedDistribution {
    /// The family.
    pub kind: DistributionKind,
    /// The parameters by name, as listed on [`DistributionKind`]'s variants.
    pub params: BTreeMap<String, f64>,
    /// Kolmogorov-Smirnov statistic of the fit on the sample (smaller is better).
    pub ks_statistic: f64,
    /// Number of samples fitted.
    pub n_samples: usize,
}

/// Why a sample could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    /// Fewer samples than `min_samples`.
    #[error("too few samples to fit a distribution: {n_samples} < {min_samples}")]
    TooFewSamples {
        /// Samples given.
        n_samples: usize,
        /// Samples needed.
        min_samples: usize,
    },
    /// The sample at `index` is NaN or infinite.
    #[error("sample {index} is not finite")]
    NonFinite {
        /// Position of the first non-finite sample.
        index: usize,
    },
    /// All samples are equal (for a positive distribution: after clamping to its support).
    #[error("samples have no spread to fit (all equal)")]
    Degenerate,
}

impl DistributionKind {
    /// Every kind, in the order used to break ties.
    pub const ALL: [DistributionKind; 4] = [
        DistributionKind::Normal,
        DistributionKind::Exponential,
        DistributionKind::Gamma,
        DistributionKind::LogNormal,
    ];

    /// Lowercase name, as serialised.
    pub fn name(self) -> &'static str {
        match self {
            DistributionKind::Normal => "normal",
            DistributionKind::Exponential => "exponential",
            DistributionKind::Gamma => "gamma",
            DistributionKind::LogNormal => "lognormal",
        }
    }

    /// Names of the parameters in [`FittedDistribution::params`].
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            DistributionKind::Normal => &["mean", "std"],
            DistributionKind::Exponential => &["scale"],
            DistributionKind::Gamma => &["shape", "scale"],
            DistributionKind::LogNormal => &["mu", "sigma"],
        }
    }
}

impl fmt::Display for DistributionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FittedDistribution {
    /// The parameter called `name`, if this kind has it.
    pub fn param(&self, name: &str) -> Option<f64> {
        self.params.get(name).copied()
    }

    /// Cumulative distribution function at `x`: in [0, 1], non-decreasing in `x` (up to
    /// rounding near 1e-15), 0 below the support. NaN for NaN `x`. If the parameters are
    /// missing or invalid (only possible for a hand-made or deserialised value) it is 1.0,
    /// so that nothing is reported as significant.
    pub fn cdf(&self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        Law::from_params(self.kind, &self.params).map_or(1.0, |law| law.cdf(x))
    }

    /// Lower-tail p-value of a distance: the CDF at it (small distances are significant).
    pub fn p_value(&self, distance: f64) -> f64 {
        self.cdf(distance)
    }
}

/// Fits every kind (see [`fit`]) and returns the one with the smallest KS statistic, where
/// statistics within `KS_TIE_WIDTH / sqrt(n)` of the smallest count as ties broken in the
/// enum order (normal, exponential, gamma, log-normal). Kinds that cannot be fitted to this
/// sample are skipped.
pub fn fit_best(samples: &[f64]) -> Result<FittedDistribution, DistributionError> {
    let scaled = Scaled::new(samples)?;
    let sorted = sorted_copy(samples);
    let fits: Vec<(Law, f64)> = DistributionKind::ALL
        .iter()
        .filter_map(|&kind| scaled.fit(kind).ok())
        .map(|law| (law, ks_statistic(&law, &sorted)))
        .collect();
    let min_ks = fits.iter().map(|&(_, ks)| ks).fold(f64::INFINITY, f64::min);
    let tie = KS_TIE_WIDTH / (samples.len() as f64).sqrt();
    fits.into_iter()
        .find(|&(_, ks)| ks <= min_ks + tie)
        .map(|(law, ks)| law.fitted(ks, samples.len()))
        .ok_or(DistributionError::Degenerate)
}

/// Fits one kind to `samples` (at least [`MIN_SAMPLES`], all finite, not all equal).
///
/// Normal, exponential and log-normal use their closed-form maximum-likelihood estimates
/// (standard deviations with denominator n). Gamma uses the maximum-likelihood shape:
/// Newton's method on ln(a) - digamma(a) = ln(mean) - mean(ln x), started from Minka's
/// approximation, and scale = mean / shape. For the three positive kinds, samples below
/// `ZERO_CLAMP_FRACTION` times the mean absolute sample are raised to that value first.
/// Samples are divided by their largest magnitude while fitting, so huge or tiny distances
/// do not overflow.
pub fn fit(
    samples: &[f64],
    kind: DistributionKind,
) -> Result<FittedDistribution, DistributionError> {
    let law = Scaled::new(samples)?.fit(kind)?;
    let ks = ks_statistic(&law, &sorted_copy(samples));
    Ok(law.fitted(ks, samples.len()))
}

/// Draws up to `n_pairs` distinct random pairs `(i, j)` with `i < j < n_points` from a
/// `ChaCha8Rng` seeded with `seed`, for the caller to compute distances on. Returns all
/// pairs when `n_points * (n_points - 1) / 2 <= n_pairs`. The result is sorted and the same
/// for the same arguments.
pub fn sample_pairs(n_points: usize, n_pairs: usize, seed: u64) -> Vec<(usize, usize)> {
    let total = pair_count(n_points);
    if total <= n_pairs {
        return all_pairs(n_points);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pairs = if n_pairs <= total / 2 {
        pairs_by_rejection(n_points, n_pairs, &mut rng)
    } else {
        pairs_by_shuffle(total, n_pairs, &mut rng)
    };
    pairs.sort_unstable();
    pairs
}

/// A distribution with typed parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Law {
    Normal { mean: f64, std: f64 },
    Exponential { scale: f64 },
    Gamma { shape: f64, scale: f64 },
    LogNormal { mu: f64, sigma: f64 },
}

impl Law {
    /// The law described by `params`, if they are all present and valid.
    fn from_params(kind: DistributionKind, params: &BTreeMap<String, f64>) -> Option<Law> {
        let get = |name: &str| params.get(name).copied();
        let law = match kind {
            DistributionKind::Normal => Law::Normal { mean: get("mean")?, std: get("std")? },
            DistributionKind::Exponential => Law::Exponential { scale: get("scale")? },
            DistributionKind::Gamma => Law::Gamma { shape: get("shape")?, scale: get("scale")? },
            DistributionKind::LogNormal => Law::LogNormal { mu: get("mu")?, sigma: get("sigma")? },
        };
        law.is_valid().then_some(law)
    }

    fn kind(&self) -> DistributionKind {
        match self {
            Law::Normal { .. } => DistributionKind::Normal,
            Law::Exponential { .. } => DistributionKind::Exponential,
            Law::Gamma { .. } => DistributionKind::Gamma,
            Law::LogNormal { .. } => DistributionKind::LogNormal,
        }
    }

    /// Parameter values in the order of `DistributionKind::param_names`.
    fn values(&self) -> Vec<f64> {
        match *self {
            Law::Normal { mean, std } => vec![mean, std],
            Law::Exponential { scale } => vec![scale],
            Law::Gamma { shape, scale } => vec![shape, scale],
            Law::LogNormal { mu, sigma } => vec![mu, sigma],
        }
    }

    fn is_valid(&self) -> bool {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        match *self {
            Law::Normal { mean, std } => mean.is_finite() && positive(std),
            Law::Exponential { scale } => positive(scale),
            Law::Gamma { shape, scale } => positive(shape) && positive(scale),
            Law::LogNormal { mu, sigma } => mu.is_finite() && positive(sigma),
        }
    }

    /// The law of `factor * X` (factor > 0).
    fn rescaled(self, factor: f64) -> Law {
        match self {
            Law::Normal { mean, std } => Law::Normal { mean: mean * factor, std: std * factor },
            Law::Exponential { scale } => Law::Exponential { scale: scale * factor },
            Law::Gamma { shape, scale } => Law::Gamma { shape, scale: scale * factor },
            Law::LogNormal { mu, sigma } => Law::LogNormal { mu: mu + factor.ln(), sigma },
        }
    }

    fn cdf(&self, x: f64) -> f64 {
        let p = match *self {
            Law::Normal { mean, std } => normal_cdf((x - mean) / std),
            _ if x <= 0.0 => 0.0,
            Law::Exponential { scale } => -(-x / scale).exp_m1(),
            Law::Gamma { shape, scale } => gamma_pq(shape, x / scale).0,
            Law::LogNormal { mu, sigma } => normal_cdf((x.ln() - mu) / sigma),
        };
        p.clamp(0.0, 1.0)
    }

    fn fitted(self, ks_statistic: f64, n_samples: usize) -> FittedDistribution {
        let names = self.kind().param_names();
        let params = names.iter().map(|n| n.to_string()).zip(self.values()).collect();
        FittedDistribution { kind: self.kind(), params, ks_statistic, n_samples }
    }
}

/// Validated samples divided by their largest magnitude `factor`.
struct Scaled {
    values: Vec<f64>,
    factor: f64,
}

impl Scaled {
    fn new(samples: &[f64]) -> Result<Scaled, DistributionError> {
        validate(samples)?;
        let factor = samples.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
        let values = samples.iter().map(|x| x / factor).collect();
        Ok(Scaled { values, factor })
    }

    fn fit(&self, kind: DistributionKind) -> Result<Law, DistributionError> {
        let law = match kind {
            DistributionKind::Normal => fit_normal(&self.values),
            DistributionKind::Exponential => fit_exponential(&self.values),
            DistributionKind::Gamma => fit_gamma(&self.values),
            DistributionKind::LogNormal => fit_lognormal(&self.values),
        };
        let law = law.rescaled(self.factor);
        law.is_valid().then_some(law).ok_or(DistributionError::Degenerate)
    }
}

fn validate(samples: &[f64]) -> Result<(), DistributionError> {
    if samples.len() < MIN_SAMPLES {
        let n_samples = samples.len();
        return Err(DistributionError::TooFewSamples { n_samples, min_samples: MIN_SAMPLES });
    }
    if let Some(index) = samples.iter().position(|x| !x.is_finite()) {
        return Err(DistributionError::NonFinite { index });
    }
    if samples.iter().all(|&x| x == samples[0]) {
        return Err(DistributionError::Degenerate);
    }
    Ok(())
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Population standard deviation (denominator n), the maximum-likelihood estimate.
fn std_dev(xs: &[f64], mean: f64) -> f64 {
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
}

/// Samples raised to at least `ZERO_CLAMP_FRACTION` times their mean magnitude.
fn clamped_positive(xs: &[f64]) -> Vec<f64> {
    let floor = ZERO_CLAMP_FRACTION * xs.iter().map(|x| x.abs()).sum::<f64>() / xs.len() as f64;
    xs.iter().map(|x| x.max(floor)).collect()
}

fn fit_normal(xs: &[f64]) -> Law {
    let mean = mean(xs);
    Law::Normal { mean, std: std_dev(xs, mean) }
}

fn fit_exponential(xs: &[f64]) -> Law {
    Law::Exponential { scale: mean(&clamped_positive(xs)) }
}

fn fit_gamma(xs: &[f64]) -> Law {
    let xs = clamped_positive(xs);
    let m = mean(&xs);
    // s = ln(mean) - mean(ln x) = mean(d - ln(1 + d)) with d = x / mean - 1 (the d sum to
    // zero); each term is >= 0 and computed without cancellation against ln(mean).
    let s = xs.iter().map(|x| x / m - 1.0).map(|d| (d - d.ln_1p()).max(0.0)).sum::<f64>()
        / xs.len() as f64;
    let shape = if s > 0.0 { gamma_shape_mle(s) } else { MAX_GAMMA_SHAPE };
    Law::Gamma { shape, scale: m / shape }
}

fn fit_lognormal(xs: &[f64]) -> Law {
    let logs: Vec<f64> = clamped_positive(xs).iter().map(|x| x.ln()).collect();
    let mu = mean(&logs);
    Law::LogNormal { mu, sigma: std_dev(&logs, mu) }
}

/// Solves ln(a) - digamma(a) = s (s > 0) for the gamma shape a by Newton's method from
/// Minka's closed-form approximation. The left side decreases and is convex in a.
fn gamma_shape_mle(s: f64) -> f64 {
    let mut a = (3.0 - s + ((s - 3.0).powi(2) + 24.0 * s).sqrt()) / (12.0 * s);
    for _ in 0..MAX_NEWTON_STEPS {
        let f = ln_minus_digamma(a) - s;
        let slope = -trigamma_minus_recip(a);
        let next = a - f / slope;
        let next = if next > 0.0 { next } else { a / 2.0 };
        let done = (next - a).abs() <= NEWTON_REL_TOL * a;
        a = next.min(MAX_GAMMA_SHAPE);
        if done || a == MAX_GAMMA_SHAPE {
            break;
        }
    }
    a
}

fn sorted_copy(samples: &[f64]) -> Vec<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// Kolmogorov-Smirnov statistic sup |F_n(x) - F(x)| of `law` on sorted samples.
fn ks_statistic(law: &Law, sorted: &[f64]) -> f64 {
    let n = sorted.len() as f64;
    sorted.iter().enumerate().fold(0.0, |d, (i, &x)| {
        let f = law.cdf(x);
        d.max((i + 1) as f64 / n - f).max(f - i as f64 / n)
    })
}

/// n (n - 1) / 2, saturating at `usize::MAX`.
fn pair_count(n_points: usize) -> usize {
    let (even, odd) = if n_points.is_multiple_of(2) {
        (n_points / 2, n_points.saturating_sub(1))
    } else {
        ((n_points - 1) / 2, n_points)
    };
    even.saturating_mul(odd)
}

fn all_pairs(n_points: usize) -> Vec<(usize, usize)> {
    (0..n_points).flat_map(|i| (i + 1..n_points).map(move |j| (i, j))).collect()
}

/// Draws uniform pairs until `n_pairs` distinct ones are found (at most half of all pairs,
/// so each draw is new with probability at least 1/2).
fn pairs_by_rejection(
    n_points: usize,
    n_pairs: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<(usize, usize)> {
    let mut seen = HashSet::with_capacity(n_pairs);
    let mut pairs = Vec::with_capacity(n_pairs);
    while pairs.len() < n_pairs {
        let i = rng.gen_range(0..n_points);
        let j = rng.gen_range(0..n_points - 1);
        let j = if j >= i { j + 1 } else { j };
        let pair = (i.min(j), i.max(j));
        if seen.insert(pair) {
            pairs.push(pair);
        }
    }
    pairs
}

/// Partial Fisher-Yates shuffle of all pair ranks (used when `n_pairs > total / 2`).
fn pairs_by_shuffle(total: usize, n_pairs: usize, rng: &mut ChaCha8Rng) -> Vec<(usize, usize)> {
    let mut ranks: Vec<usize> = (0..total).collect();
    for k in 0..n_pairs {
        let r = rng.gen_range(k..total);
        ranks.swap(k, r);
    }
    ranks[..n_pairs].iter().map(|&k| pair_from_rank(k)).collect()
}

/// The pair (j, i), j < i, of rank k = i (i - 1) / 2 + j.
fn pair_from_rank(k: usize) -> (usize, usize) {
    let mut i = ((1.0 + (1.0 + 8.0 * k as f64).sqrt()) / 2.0) as usize;
    while i * (i - 1) / 2 > k {
        i -= 1;
    }
    while (i + 1) * i / 2 <= k {
        i += 1;
    }
    (k - i * (i - 1) / 2, i)
}

/// Standard normal CDF: Phi(z) = erfc(-z / sqrt 2) / 2, with erf(t) = P(1/2, t^2).
/// The lower tail is computed directly, so it keeps its relative accuracy for z << 0.
fn normal_cdf(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    let (p, q) = gamma_pq(0.5, 0.5 * z * z);
    if z < 0.0 {
        0.5 * q
    } else {
        0.5 + 0.5 * p
    }
}

/// Regularised incomplete gamma functions (P(a, x), Q(a, x) = 1 - P(a, x)) for a > 0:
/// the series for P when x < a + 1, the continued fraction for Q otherwise, and the
/// Wilson-Hilferty normal approximation for very large a.
fn gamma_pq(a: f64, x: f64) -> (f64, f64) {
    if x.is_nan() || a.is_nan() {
        (f64::NAN, f64::NAN)
    } else if x <= 0.0 {
        (0.0, 1.0)
    } else if x == f64::INFINITY {
        (1.0, 0.0)
    } else if a > WILSON_HILFERTY_MIN_SHAPE {
        gamma_pq_wilson_hilferty(a, x)
    } else if x < a + 1.0 {
        let p = gamma_p_series(a, x).clamp(0.0, 1.0);
        (p, 1.0 - p)
    } else {
        let q = gamma_q_continued_fraction(a, x).clamp(0.0, 1.0);
        (1.0 - q, q)
    }
}

/// Iteration cap of the series and continued fraction: both need O(sqrt a) terms near x = a.
fn max_terms(a: f64) -> usize {
    200 + (20.0 * a.sqrt()) as usize
}

/// P(a, x) = x^a e^-x / Gamma(a + 1) * sum_{n >= 0} x^n / ((a + 1) ... (a + n)).
fn gamma_p_series(a: f64, x: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..max_terms(a) {
        term *= x / (a + n as f64);
        sum += term;
        if term < sum * REL_TOL {
            break;
        }
    }
    (ln_gamma_prefactor(a, x).exp() / a) * sum
}

/// Q(a, x) = x^a e^-x / Gamma(a) / (b_0 + a_1 / (b_1 + a_2 / (b_2 + ...))) with
/// b_n = x + 2n + 1 - a and a_n = -n (n - a), evaluated by the modified Lentz method.
fn gamma_q_continued_fraction(a: f64, x: f64) -> f64 {
    let nonzero = |v: f64| if v.abs() < LENTZ_TINY { LENTZ_TINY } else { v };
    let mut h = nonzero(x + 1.0 - a);
    let mut c = h;
    let mut d = 0.0;
    for n in 1..max_terms(a) {
        let an = -(n as f64) * (n as f64 - a);
        let bn = x + 2.0 * n as f64 + 1.0 - a;
        d = 1.0 / nonzero(bn + an * d);
        c = nonzero(bn + an / c);
        let delta = c * d;
        h *= delta;
        if (delta - 1.0).abs() < REL_TOL {
            break;
        }
    }
    ln_gamma_prefactor(a, x).exp() / h
}

/// ln(x^a e^-x / Gamma(a)). For a >= 10 it is written as
/// -a (t - ln(1 + t)) + ln(a / 2 pi) / 2 - stirling_correction(a) with t = x / a - 1, which
/// avoids cancelling large terms.
fn ln_gamma_prefactor(a: f64, x: f64) -> f64 {
    if a < ASYMPTOTIC_MIN {
        return a * x.ln() - x - ln_gamma(a);
    }
    let t = (x - a) / a;
    -a * (t - t.ln_1p()) + 0.5 * (a / std::f64::consts::TAU).ln() - stirling_correction(a)
}

/// P and Q from the cube-root normal approximation of the gamma distribution.
fn gamma_pq_wilson_hilferty(a: f64, x: f64) -> (f64, f64) {
    let v = 1.0 / (9.0 * a);
    let z = ((x / a).cbrt() - 1.0 + v) / v.sqrt();
    (normal_cdf(z), normal_cdf(-z))
}

/// ln Gamma(x) for x > 0 (NaN otherwise): Stirling's series for x >= 10, and for smaller x
/// the recurrence Gamma(x) = Gamma(x + n) / (x (x + 1) ... (x + n - 1)).
fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    let (z, product) = shift_up(x);
    let stirling = (z - 0.5) * z.ln() - z + 0.5 * std::f64::consts::TAU.ln();
    stirling + stirling_correction(z) - product.ln()
}

/// ln Gamma(z) - ((z - 1/2) ln z - z + ln(2 pi) / 2) for z >= 10: the Bernoulli-number
/// series 1/(12 z) - 1/(360 z^3) + ..., truncated after the z^-11 term.
fn stirling_correction(z: f64) -> f64 {
    let w = 1.0 / (z * z);
    let poly = 1.0 / 12.0
        + w * (-1.0 / 360.0
            + w * (1.0 / 1260.0
                + w * (-1.0 / 1680.0 + w * (1.0 / 1188.0 + w * (-691.0 / 360360.0)))));
    poly / z
}

/// (x + n, x (x + 1) ... (x + n - 1)) for the smallest n >= 0 with x + n >= 10.
fn shift_up(x: f64) -> (f64, f64) {
    let mut z = x;
    let mut product = 1.0;
    while z < ASYMPTOTIC_MIN {
        product *= z;
        z += 1.0;
    }
    (z, product)
}

/// Digamma psi(x) = d ln Gamma(x) / dx for x > 0, by recurrence up to 10 and the asymptotic
/// expansion there.
fn digamma(x: f64) -> f64 {
    let mut z = x;
    let mut acc = 0.0;
    while z < ASYMPTOTIC_MIN {
        acc -= 1.0 / z;
        z += 1.0;
    }
    acc + z.ln() - ln_minus_digamma_asymptotic(z)
}

/// ln(x) - psi(x), without cancellation for large x.
fn ln_minus_digamma(x: f64) -> f64 {
    if x < ASYMPTOTIC_MIN {
        x.ln() - digamma(x)
    } else {
        ln_minus_digamma_asymptotic(x)
    }
}

/// ln z - psi(z) ~ 1/(2z) + 1/(12z^2) - 1/(120z^4) + 1/(252z^6) - 1/(240z^8) + 1/(132z^10).
fn ln_minus_digamma_asymptotic(z: f64) -> f64 {
    let w = 1.0 / (z * z);
    let even = w
        * (1.0 / 12.0
            + w * (-1.0 / 120.0 + w * (1.0 / 252.0 + w * (-1.0 / 240.0 + w * (1.0 / 132.0)))));
    0.5 / z + even
}

/// Trigamma psi'(x) for x > 0 (the fit uses `trigamma_minus_recip`).
#[cfg(test)]
fn trigamma(x: f64) -> f64 {
    1.0 / x + trigamma_minus_recip(x)
}

/// psi'(x) - 1/x, by recurrence up to 10 and there the asymptotic expansion
/// 1/(2z^2) + 1/(6z^3) - 1/(30z^5) + 1/(42z^7) - 1/(30z^9) + 5/(66z^11).
fn trigamma_minus_recip(x: f64) -> f64 {
    let mut z = x;
    let mut acc = -1.0 / x;
    while z < ASYMPTOTIC_MIN {
        acc += 1.0 / (z * z);
        z += 1.0;
    }
    let w = 1.0 / (z * z);
    let odd = w
        * (1.0 / 6.0 + w * (-1.0 / 30.0 + w * (1.0 / 42.0 + w * (-1.0 / 30.0 + w * (5.0 / 66.0)))));
    acc + 1.0 / z + 0.5 * w + odd / z
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Exp, Gamma, LogNormal, Normal};

    const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

    fn close(actual: f64, expected: f64, rel: f64) -> bool {
        (actual - expected).abs() <= rel * expected.abs().max(1e-300)
    }

    fn draw<D: Distribution<f64>>(dist: D, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| dist.sample(&mut rng)).collect()
    }

    fn gamma_samples(seed: u64) -> Vec<f64> {
        draw(Gamma::new(5.0, 2.0).unwrap(), 5000, seed)
    }

    fn exponential_samples(seed: u64) -> Vec<f64> {
        draw(Exp::new(1.0 / 3.0).unwrap(), 5000, seed)
    }

    fn normal_samples(seed: u64) -> Vec<f64> {
        draw(Normal::new(10.0, 1.0).unwrap(), 5000, seed)
    }

    fn lognormal_samples(seed: u64) -> Vec<f64> {
        draw(LogNormal::new(1.0, 0.8).unwrap(), 5000, seed)
    }

    fn param(fitted: &FittedDistribution, name: &str) -> f64 {
        fitted.param(name).unwrap()
    }

    #[test]
    fn ln_gamma_matches_known_values() {
        assert!(ln_gamma(1.0).abs() < 1e-14);
        assert!(ln_gamma(2.0).abs() < 1e-14);
        assert!(close(ln_gamma(5.0), 24.0_f64.ln(), 1e-14));
        assert!(close(ln_gamma(0.5), 0.5 * std::f64::consts::PI.ln(), 1e-14));
        assert!(close(ln_gamma(1.0 / 3.0), 0.985_420_646_927_767_1, 1e-13));
        assert!(close(ln_gamma(0.001), 6.907_178_885_383_853, 1e-13));
        assert!(close(ln_gamma(123.4), 469.336_097_442_190_6, 1e-14));
        assert!(ln_gamma(0.0).is_nan());
    }

    #[test]
    fn digamma_and_trigamma_match_known_values() {
        assert!(close(digamma(1.0), -EULER_GAMMA, 1e-13));
        assert!(close(digamma(2.0), 1.0 - EULER_GAMMA, 1e-13));
        assert!(close(digamma(0.5), -EULER_GAMMA - 2.0 * 2.0_f64.ln(), 1e-13));
        assert!(close(digamma(0.1), -10.423_754_940_411_077, 1e-13));
        assert!(close(digamma(7.3), 1.917_820_335_637_986, 1e-13));
        let pi2 = std::f64::consts::PI.powi(2);
        assert!(close(trigamma(1.0), pi2 / 6.0, 1e-12));
        assert!(close(trigamma(0.5), pi2 / 2.0, 1e-12));
        assert!(close(trigamma(0.2), 26.267_377_205_423_78, 1e-12));
        assert!(close(trigamma(15.0), 0.068_938_227_847_683_81, 1e-12));
        assert!(close(ln_minus_digamma(1e6), 0.5e-6 + 1.0 / 12e12, 1e-12));
    }

    #[test]
    fn incomplete_gamma_with_shape_one_is_exponential() {
        for x in [1e-8, 0.01, 0.5, 1.0, 1.9, 2.0, 3.7, 10.0, 40.0] {
            let (p, q) = gamma_pq(1.0, x);
            assert!(close(p, -(-x).exp_m1(), 1e-13), "P(1, {x}) = {p}");
            assert!(close(q, (-x).exp(), 1e-12), "Q(1, {x}) = {q}");
        }
    }

    #[test]
    fn incomplete_gamma_matches_independent_values() {
        // P(5/2, x) = erf(sqrt x) - 2 sqrt(x / pi) e^-x (1 + 2x / 3), by P(a + 1, x) =
        // P(a, x) - x^a e^-x / Gamma(a + 1) from P(1/2, x) = erf(sqrt x); evaluated in
        // 30-digit arithmetic. The others are 50-digit sums of the series.
        let cases = [
            (2.5, 1.3, 0.238_634_732_154_986_08),
            (0.1, 0.01, 0.662_621_259_954_479_8),
            (5.0, 0.5, 0.000_172_115_629_955_840_78),
            (0.5, 3.0, 0.985_694_121_564_570_4),
            (1e-3, 1e-5, 0.989_123_044_695_782_7),
            (50.0, 49.5, 0.490_527_801_201_625_87),
            (100.0, 80.0, 0.017_108_313_035_133_114),
            (1e5, 99_700.0, 0.171_417_314_514_502_92),
        ];
        for (a, x, expected) in cases {
            assert!(close(gamma_pq(a, x).0, expected, 1e-11), "P({a}, {x})");
        }
        assert!(close(gamma_pq(30.0, 60.0).1, 6.876_264_968_732_097e-6, 1e-11));
        assert!(close(gamma_pq(0.5, 3.0).1, 0.014_305_878_435_429_64, 1e-11));
    }

    #[test]
    fn wilson_hilferty_is_close_for_huge_shapes() {
        let cases = [
            (2e6, 1_999_000.0, 0.239_786_670_928_572_95),
            (2e6, 2_003_000.0, 0.983_017_892_682_111_5),
        ];
        for (a, x, expected) in cases {
            assert!((gamma_pq(a, x).0 - expected).abs() < 1e-7, "P({a}, {x})");
        }
        let exact = gamma_p_series(1e6, 995_000.0);
        assert!(close(exact, 2.749_580_359_270_071e-7, 1e-9));
        assert!(close(gamma_pq_wilson_hilferty(1e6, 995_000.0).0, exact, 1e-3));
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        assert_eq!(normal_cdf(0.0), 0.5);
        assert!(close(normal_cdf(1.96), 0.975_002_104_851_779_6, 1e-12));
        assert!(close(normal_cdf(-1.96), 1.0 - 0.975_002_104_851_779_6, 1e-11));
        assert!(close(normal_cdf(-5.0), 2.866_515_718_791_939e-7, 1e-11));
        assert!(close(normal_cdf(-10.0), 7.619_853_024_160_526e-24, 1e-11));
        assert_eq!(normal_cdf(f64::NEG_INFINITY), 0.0);
        assert_eq!(normal_cdf(f64::INFINITY), 1.0);
    }

    #[test]
    fn fit_recovers_normal_parameters() {
        let fitted = fit(&normal_samples(1), DistributionKind::Normal).unwrap();
        assert!(close(param(&fitted, "mean"), 10.0, 0.01));
        assert!(close(param(&fitted, "std"), 1.0, 0.03));
        assert_eq!(fitted.n_samples, 5000);
        assert!(fitted.ks_statistic < 0.03);
    }

    #[test]
    fn fit_recovers_exponential_parameters() {
        let fitted = fit(&exponential_samples(2), DistributionKind::Exponential).unwrap();
        assert!(close(param(&fitted, "scale"), 3.0, 0.04));
        assert!(fitted.ks_statistic < 0.03);
    }

    #[test]
    fn fit_recovers_gamma_parameters() {
        let fitted = fit(&gamma_samples(3), DistributionKind::Gamma).unwrap();
        assert!(close(param(&fitted, "shape"), 5.0, 0.05));
        assert!(close(param(&fitted, "scale"), 2.0, 0.05));
        assert!(fitted.ks_statistic < 0.03);
    }

    #[test]
    fn fit_recovers_gamma_shape_below_one() {
        let samples = draw(Gamma::new(0.3, 4.0).unwrap(), 5000, 4);
        let fitted = fit(&samples, DistributionKind::Gamma).unwrap();
        assert!(close(param(&fitted, "shape"), 0.3, 0.05));
        assert!(close(param(&fitted, "scale"), 4.0, 0.08));
    }

    #[test]
    fn fit_recovers_lognormal_parameters() {
        let fitted = fit(&lognormal_samples(5), DistributionKind::LogNormal).unwrap();
        assert!(close(param(&fitted, "mu"), 1.0, 0.03));
        assert!(close(param(&fitted, "sigma"), 0.8, 0.03));
        assert!(fitted.ks_statistic < 0.03);
    }

    #[test]
    fn fit_best_picks_the_generating_kind() {
        for seed in 10..13 {
            assert_eq!(fit_best(&gamma_samples(seed)).unwrap().kind, DistributionKind::Gamma);
            let exponential = fit_best(&exponential_samples(seed)).unwrap();
            assert_eq!(exponential.kind, DistributionKind::Exponential);
            assert_eq!(fit_best(&normal_samples(seed)).unwrap().kind, DistributionKind::Normal);
            let lognormal = fit_best(&lognormal_samples(seed)).unwrap();
            assert_eq!(lognormal.kind, DistributionKind::LogNormal);
        }
    }

    #[test]
    fn fit_best_reports_a_statistic_near_the_smallest() {
        let samples = gamma_samples(20);
        let best = fit_best(&samples).unwrap();
        let tie = KS_TIE_WIDTH / (samples.len() as f64).sqrt();
        for kind in DistributionKind::ALL {
            assert!(best.ks_statistic <= fit(&samples, kind).unwrap().ks_statistic + tie);
        }
    }

    #[test]
    fn cdf_is_monotone_and_within_unit_interval() {
        let samples = gamma_samples(6);
        let mut grid: Vec<f64> = (0..4000).map(|i| -5.0 + i as f64 * 0.01).collect();
        grid.extend([-1e300, -1.0, 0.0, 1e-300, 1e3, 1e300]);
        grid.sort_by(f64::total_cmp);
        for kind in DistributionKind::ALL {
            let fitted = fit(&samples, kind).unwrap();
            let values: Vec<f64> = grid.iter().map(|&x| fitted.cdf(x)).collect();
            assert!(values.iter().all(|p| (0.0..=1.0).contains(p)), "{kind}");
            assert!(values.windows(2).all(|w| w[1] >= w[0] - 1e-14), "{kind}");
            assert!(values[values.len() - 1] > 0.999_999, "{kind}");
        }
    }

    #[test]
    fn small_distances_have_small_p_values() {
        let fitted = fit_best(&gamma_samples(7)).unwrap();
        assert!(fitted.p_value(0.5) < 1e-3);
        assert!(fitted.p_value(0.0) == 0.0);
        assert!(fitted.p_value(10.0) > 0.4);
        let normal = fit(&normal_samples(7), DistributionKind::Normal).unwrap();
        assert!(normal.p_value(4.0) < 1e-8 && normal.p_value(4.0) > 0.0);
    }

    #[test]
    fn too_few_samples_are_rejected() {
        let err = fit_best(&[1.0, 2.0, 3.0]).unwrap_err();
        assert!(matches!(err, DistributionError::TooFewSamples { n_samples: 3, min_samples: 10 }));
        assert!(fit(&[], DistributionKind::Gamma).is_err());
        assert_eq!(err.to_string(), "too few samples to fit a distribution: 3 < 10");
    }

    #[test]
    fn non_finite_samples_are_rejected() {
        let mut samples = normal_samples(8);
        samples[17] = f64::NAN;
        samples[40] = f64::INFINITY;
        let err = fit_best(&samples).unwrap_err();
        assert!(matches!(err, DistributionError::NonFinite { index: 17 }));
        assert_eq!(err.to_string(), "sample 17 is not finite");
        samples[17] = 1.0;
        let err = fit(&samples, DistributionKind::LogNormal).unwrap_err();
        assert!(matches!(err, DistributionError::NonFinite { index: 40 }));
    }

    #[test]
    fn equal_samples_are_degenerate() {
        let err = fit_best(&[2.5; 20]).unwrap_err();
        assert!(matches!(err, DistributionError::Degenerate));
        assert!(matches!(
            fit(&[0.0; 20], DistributionKind::Gamma),
            Err(DistributionError::Degenerate)
        ));
    }

    #[test]
    fn zero_distances_do_not_break_positive_fits() {
        let mut samples = gamma_samples(9);
        samples.iter_mut().take(50).for_each(|x| *x = 0.0);
        for kind in DistributionKind::ALL {
            let fitted = fit(&samples, kind).unwrap();
            assert!(fitted.params.values().all(|v| v.is_finite()), "{kind}");
            assert!(fitted.cdf(0.0) <= 0.01 || kind == DistributionKind::Normal, "{kind}");
        }
        assert!(fit_best(&samples).is_ok());
    }

    #[test]
    fn negative_samples_fit_the_normal() {
        let samples: Vec<f64> = normal_samples(10).iter().map(|x| x - 10.0).collect();
        assert_eq!(fit_best(&samples).unwrap().kind, DistributionKind::Normal);
    }

    #[test]
    fn huge_and_tiny_scales_fit() {
        for factor in [1e200, 1e-200] {
            let samples: Vec<f64> = gamma_samples(11).iter().map(|x| x * factor).collect();
            let fitted = fit(&samples, DistributionKind::Gamma).unwrap();
            assert!(close(param(&fitted, "scale") / factor, 2.0, 0.05));
            let normal = fit(&samples, DistributionKind::Normal).unwrap();
            assert!(close(param(&normal, "mean") / factor, 10.0, 0.02));
            let lognormal = fit(&samples, DistributionKind::LogNormal).unwrap();
            assert!(param(&lognormal, "mu").is_finite());
        }
    }

    #[test]
    fn nearly_constant_samples_fit_gamma() {
        let samples: Vec<f64> = (0..100).map(|i| 1.0 + 1e-9 * (i % 7) as f64).collect();
        let fitted = fit(&samples, DistributionKind::Gamma).unwrap();
        assert!(param(&fitted, "shape") > 1e11);
        assert!(fitted.cdf(0.999) < 1e-6 && fitted.cdf(1.001) > 1.0 - 1e-6);
        assert_eq!(fit_best(&samples).unwrap().kind, DistributionKind::Normal);
    }

    #[test]
    fn serialises_to_readable_json() {
        let fitted = fit(&gamma_samples(12), DistributionKind::Gamma).unwrap();
        let json = serde_json::to_value(&fitted).unwrap();
        assert_eq!(json["kind"], "gamma");
        assert!(json["params"]["shape"].is_number() && json["params"]["scale"].is_number());
        let back: FittedDistribution = serde_json::from_value(json).unwrap();
        assert_eq!(back, fitted);
        let json = r#"{"kind":"lognormal","params":{"mu":0.0},"ks_statistic":0.1,"n_samples":3}"#;
        let broken: FittedDistribution = serde_json::from_str(json).unwrap();
        assert_eq!(broken.cdf(0.5), 1.0);
    }

    #[test]
    fn sample_pairs_are_distinct_and_ordered() {
        let pairs = sample_pairs(1000, 5000, 42);
        assert_eq!(pairs.len(), 5000);
        assert!(pairs.iter().all(|&(i, j)| i < j && j < 1000));
        assert!(pairs.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn sample_pairs_are_deterministic_per_seed() {
        assert_eq!(sample_pairs(500, 300, 7), sample_pairs(500, 300, 7));
        assert_ne!(sample_pairs(500, 300, 7), sample_pairs(500, 300, 8));
        assert_eq!(sample_pairs(30, 400, 7), sample_pairs(30, 400, 7));
    }

    #[test]
    fn sample_pairs_dense_draw_is_distinct() {
        // 30 points have 435 pairs, so 400 are drawn by shuffling the pair ranks.
        let pairs = sample_pairs(30, 400, 3);
        assert_eq!(pairs.len(), 400);
        assert!(pairs.iter().all(|&(i, j)| i < j && j < 30));
        assert!(pairs.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn sample_pairs_returns_all_pairs_when_few() {
        let expected = vec![(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];
        assert_eq!(sample_pairs(4, 6, 1), expected);
        assert_eq!(sample_pairs(4, 100, 1), expected);
        assert!(sample_pairs(1, 10, 1).is_empty());
        assert!(sample_pairs(0, 10, 1).is_empty());
        assert!(sample_pairs(10, 0, 1).is_empty());
    }

    #[test]
    fn pair_ranks_enumerate_the_lower_triangle() {
        let ranked: Vec<(usize, usize)> = (0..45).map(pair_from_rank).collect();
        let mut all = all_pairs(10);
        all.sort_by_key(|&(j, i)| (i, j));
        assert_eq!(ranked, all);
        assert_eq!(pair_count(10), 45);
        assert_eq!(pair_count(usize::MAX), usize::MAX);
    }
}
