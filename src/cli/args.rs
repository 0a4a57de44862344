//! The command line's raw flags, and their turning into validated settings.
//!
//! Every model option is optional here so that three layers can be merged: a flag beats
//! the `[cluster]` table of a `--config` file, which beats the built-in default. The
//! merged options are then checked once into [`Settings`]; an invalid value is reported
//! with the option's name.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::batch::organise::Action;
use crate::features::{FeatureMethod, FeatureParams, HogParams, PixelScaling};
use crate::imaging::{ColorMode, LoadLimits, Preprocessing};
use crate::model::{
    ClusterMethod, ClusterSpace, ComponentCount, EmbeddingKind, Evaluation, FitParams, Linkage,
};

/// Cluster, deduplicate and search photo collections.
#[derive(Debug, Parser)]
#[command(name = "clustimage", version, about)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub connection: super::client::Connection,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cluster the images under one or more folders (or the rows of a .npy array); or,
    /// given a cluster id that is not a path, list that cluster of the daemon's model.
    Cluster(ClusterArgs),
    /// Find the images most like each query image: in folders (--in), or in the daemon's
    /// library.
    Find(FindArgs),
    /// Find exact copies, duplicates and similar images under folders (or, without a
    /// folder, in the daemon's library), and the copy of each group to keep.
    Dups(super::dups::DupsArgs),
    /// Tell the daemon that some files are not duplicates of each other; the verdict is
    /// kept and holds across restarts.
    NotDuplicate(super::client::NotDuplicateArgs),
    /// Put quarantined files back at the paths they came from, never over an existing file.
    Restore(super::restore::RestoreArgs),
    /// Run the daemon: watch folders, index them as they change, refit in the background.
    Serve(super::serve::ServeArgs),
    /// The daemon's counts, counters and model.
    Status(super::client::Output),
    /// The daemon's clusters, largest first.
    Clusters(super::client::Output),
    /// The representative image of every cluster.
    Unique(super::client::Output),
    /// What the daemon knows about one file.
    Image(super::client::PathArgs),
    /// Ask the daemon to look at a file or folder now.
    Ingest(super::client::IngestArgs),
    /// Ask the daemon to refit its model now.
    Refit(super::client::RefitArgs),
    /// Print the daemon's events as they happen.
    Events(super::client::EventArgs),
    /// Have the daemon write the report of its library (figures and index.html) into a
    /// folder.
    Report(super::client::ReportArgs),
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Folders (searched recursively) or image files.
    #[arg(value_name = "DIR", required_unless_present = "array")]
    pub inputs: Vec<PathBuf>,
    /// A .npy array of shape (n_images, width*height): rows are flattened gray images.
    #[arg(long, value_name = "FILE.npy", conflicts_with = "inputs")]
    pub array: Option<PathBuf>,
    /// Write the full result as JSON to this file ("-" for standard output).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the full result as JSON on standard output (as `--out -`).
    #[arg(long, conflicts_with = "out")]
    pub json: bool,
    /// Write each cluster's mean image as a PNG into this folder.
    #[arg(long, value_name = "DIR")]
    pub mean_images: Option<PathBuf>,
    /// Put the files into one folder per cluster under this folder.
    #[arg(long, value_name = "DIR")]
    pub move_to: Option<PathBuf>,
    /// How --move-to places files.
    #[arg(long, value_enum, default_value = "copy", requires = "move_to")]
    pub action: ActionArg,
    /// Print what --move-to would do, and do nothing.
    #[arg(long, requires = "move_to")]
    pub dry_run: bool,
    /// Write figures (PNG, SVG) and an index.html that ties them together into this folder.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// With --report, also draw the embedding with a thumbnail at every image (at most
    /// 300, sampled).
    #[arg(long, requires = "report")]
    pub report_thumbnails: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// The images to look for.
    #[arg(value_name = "QUERY", required = true)]
    pub queries: Vec<PathBuf>,
    /// The folders to search in; without it, the running daemon's library is searched.
    #[arg(long = "in", value_name = "DIR")]
    pub library: Vec<PathBuf>,
    /// At most this many hits per query (`--k` instead fixes the number of clusters).
    #[arg(short = 'k', long = "hits", value_name = "N")]
    pub k: Option<usize>,
    /// Only hits whose distance has a p-value at most this [default: 0.05, or none with -k].
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Only hits at most this far away.
    #[arg(long)]
    pub max_distance: Option<f64>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write each query with its hits, and the null distribution, as figures and an
    /// index.html into this folder (needs --in).
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ActionArg {
    Copy,
    Move,
    Link,
}

impl From<ActionArg> for Action {
    fn from(arg: ActionArg) -> Action {
        match arg {
            ActionArg::Copy => Action::Copy,
            ActionArg::Move => Action::Move,
            ActionArg::Link => Action::Link,
        }
    }
}

/// The options that shape loading, features and the model, each optional.
#[derive(Debug, Clone, Default, Args, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelArgs {
    /// Read defaults from a TOML file ([cluster], and for serve [daemon] and [index]).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Thumbnail size, WIDTHxHEIGHT or one number for a square [default: 128]; for
    /// --array, the shape of a row.
    #[arg(long)]
    pub dim: Option<String>,
    /// Keep three colour channels instead of one gray channel.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub color: Option<bool>,
    /// Features: pca, hog, pca-hog, pixels, ahash, phash, dhash, whash, exif-time, exif-gps
    /// [default: pca].
    #[arg(long)]
    pub method: Option<String>,
    /// Per-image scaling of the pixels for pca and pixels: standard (zero mean, unit
    /// variance), minmax (as the Python package), none [default: standard].
    #[arg(long)]
    pub pixel_scaling: Option<String>,
    /// Side of a hash's bit grid: 8 gives 64 bits [default: 8].
    #[arg(long)]
    pub hash_size: Option<u32>,
    /// HOG orientation bins [default: 8].
    #[arg(long)]
    pub hog_orientations: Option<usize>,
    /// HOG cell side in pixels [default: 8].
    #[arg(long)]
    pub hog_cell: Option<usize>,
    /// HOG block side in cells [default: 1].
    #[arg(long)]
    pub hog_block: Option<usize>,
    /// Keep the PCA components that explain this share of the variance [default: 0.95].
    #[arg(long, conflicts_with = "pca_components")]
    pub pca_variance: Option<f64>,
    /// Keep exactly this many PCA components.
    #[arg(long)]
    pub pca_components: Option<usize>,
    /// Clustering: agglomerative, kmeans, dbscan, hdbscan [default: agglomerative].
    #[arg(long)]
    pub cluster: Option<String>,
    /// Agglomerative linkage: ward, complete, average, single [default: ward].
    #[arg(long)]
    pub linkage: Option<String>,
    /// Choice of the number of clusters: silhouette, dbindex, derivative
    /// [default: silhouette].
    #[arg(long)]
    pub evaluate: Option<String>,
    /// Fewest clusters tried [default: 3].
    #[arg(long)]
    pub min_clust: Option<usize>,
    /// Most clusters tried, inclusive [default: 25].
    #[arg(long)]
    pub max_clust: Option<usize>,
    /// Take the smallest k whose score is within this share of the best [default: 0.02].
    #[arg(long)]
    pub k_tolerance: Option<f64>,
    /// Use exactly this many clusters instead of searching.
    #[arg(long = "k", visible_alias = "n-clusters", value_name = "N")]
    #[serde(rename = "k")]
    pub k_clusters: Option<usize>,
    /// DBSCAN radius; searched over the data's own neighbour distances when absent.
    #[arg(long)]
    pub eps: Option<f64>,
    /// DBSCAN and HDBSCAN min_samples [default: 5].
    #[arg(long)]
    pub min_samples: Option<usize>,
    /// HDBSCAN smallest cluster [default: 5].
    #[arg(long)]
    pub min_cluster_size: Option<usize>,
    /// exif-time: photos less than this many hours apart belong together [default: 5].
    #[arg(long)]
    pub time_window_h: Option<f64>,
    /// exif-gps: photos less than this many metres apart belong together [default: 1000].
    #[arg(long)]
    pub gps_radius_m: Option<f64>,
    /// 2-D embedding: none, tsne, pca [default: none, or tsne for --cluster-space low].
    #[arg(long)]
    pub embedding: Option<String>,
    /// Cluster in the feature space (high) or in the 2-D embedding (low) [default: high].
    #[arg(long)]
    pub cluster_space: Option<String>,
    /// t-SNE perplexity [default: 30].
    #[arg(long)]
    pub perplexity: Option<f64>,
    /// Seed of every random step [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Quadratic steps run on a sample of at most this many images [default: 10000].
    #[arg(long)]
    pub max_fit_images: Option<usize>,
    /// Skip files larger than this many megabytes [default: 256].
    #[arg(long)]
    pub max_file_mb: Option<u64>,
    /// Skip images with more than this many megapixels [default: 200].
    #[arg(long)]
    pub max_megapixels: Option<u64>,
}

/// Validated settings for a batch run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub preprocessing: Preprocessing,
    /// The row shape given for arrays, when one was.
    pub array_dim: Option<(u32, u32)>,
    pub limits: LoadLimits,
    pub features: FeatureParams,
    pub fit: FitParams,
}

impl ModelArgs {
    /// Merges flags over the configuration file (if any) and validates the result.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let file = super::config_file::load(self.config.as_deref())?;
        self.clone().or(file.cluster).validate()
    }

    /// Each option from `self` when given, else from `fallback`.
    pub(crate) fn or(self, fallback: ModelArgs) -> ModelArgs {
        ModelArgs {
            config: self.config,
            dim: self.dim.or(fallback.dim),
            color: self.color.or(fallback.color),
            method: self.method.or(fallback.method),
            hash_size: self.hash_size.or(fallback.hash_size),
            pixel_scaling: self.pixel_scaling.or(fallback.pixel_scaling),
            hog_orientations: self.hog_orientations.or(fallback.hog_orientations),
            hog_cell: self.hog_cell.or(fallback.hog_cell),
            hog_block: self.hog_block.or(fallback.hog_block),
            pca_variance: self.pca_variance.or(fallback.pca_variance),
            pca_components: self.pca_components.or(fallback.pca_components),
            cluster: self.cluster.or(fallback.cluster),
            linkage: self.linkage.or(fallback.linkage),
            evaluate: self.evaluate.or(fallback.evaluate),
            min_clust: self.min_clust.or(fallback.min_clust),
            max_clust: self.max_clust.or(fallback.max_clust),
            k_clusters: self.k_clusters.or(fallback.k_clusters),
            k_tolerance: self.k_tolerance.or(fallback.k_tolerance),
            eps: self.eps.or(fallback.eps),
            min_samples: self.min_samples.or(fallback.min_samples),
            min_cluster_size: self.min_cluster_size.or(fallback.min_cluster_size),
            time_window_h: self.time_window_h.or(fallback.time_window_h),
            gps_radius_m: self.gps_radius_m.or(fallback.gps_radius_m),
            embedding: self.embedding.or(fallback.embedding),
            cluster_space: self.cluster_space.or(fallback.cluster_space),
            perplexity: self.perplexity.or(fallback.perplexity),
            seed: self.seed.or(fallback.seed),
            max_fit_images: self.max_fit_images.or(fallback.max_fit_images),
            max_file_mb: self.max_file_mb.or(fallback.max_file_mb),
            max_megapixels: self.max_megapixels.or(fallback.max_megapixels),
        }
    }

    pub(crate) fn validate(&self) -> anyhow::Result<Settings> {
        let method = match &self.method {
            Some(name) => FeatureMethod::from_name(name)
                .with_context(|| format!("--method: unknown method {name:?}"))?,
            None => FeatureMethod::Pca,
        };
        let dim = self.dim.as_deref().map(parse_dim).transpose().context("--dim")?;
        let color = if self.color.unwrap_or(false) { ColorMode::Rgb } else { ColorMode::Gray };
        let (width_px, height_px) = dim.unwrap_or((128, 128));
        let preprocessing = Preprocessing { width_px, height_px, color };
        preprocessing.validate()?;
        let features = FeatureParams {
            method,
            pixel_scaling: parse_choice(&self.pixel_scaling, "--pixel-scaling", SCALINGS)?
                .unwrap_or(PixelScaling::Standard),
            hog: HogParams {
                orientations: positive(self.hog_orientations, 8, "--hog-orientations")?,
                cell_px: positive(self.hog_cell, 8, "--hog-cell")?,
                block_cells: positive(self.hog_block, 1, "--hog-block")?,
            },
            hash_size: self.hash_size.unwrap_or(8),
        };
        let limits = LoadLimits {
            max_file_bytes: positive(self.max_file_mb, 256, "--max-file-mb")? << 20,
            max_image_pixels: positive(self.max_megapixels, 200, "--max-megapixels")? * 1_000_000,
        };
        let fit = self.fit_params(method)?;
        Ok(Settings { preprocessing, array_dim: dim, limits, features, fit })
    }

    fn fit_params(&self, method: FeatureMethod) -> anyhow::Result<FitParams> {
        let mut fit =
            FitParams { method, ..FitParams::default() }.with_seed(self.seed.unwrap_or(0));
        fit.pca.components = match (self.pca_variance, self.pca_components) {
            (_, Some(n)) => ComponentCount::Fixed(positive(Some(n), 1, "--pca-components")?),
            (Some(share), None) if share > 0.0 && share <= 1.0 => ComponentCount::Variance(share),
            (Some(share), None) => bail!("--pca-variance: {share} is not in (0, 1]"),
            (None, None) => ComponentCount::Variance(0.95),
        };
        let cluster = &mut fit.cluster;
        cluster.method = parse_choice(&self.cluster, "--cluster", CLUSTER_METHODS)?
            .unwrap_or(ClusterMethod::Agglomerative);
        cluster.linkage =
            parse_choice(&self.linkage, "--linkage", LINKAGES)?.unwrap_or(Linkage::Ward);
        cluster.evaluation = parse_choice(&self.evaluate, "--evaluate", EVALUATIONS)?
            .unwrap_or(Evaluation::Silhouette);
        cluster.min_clusters = self.min_clust.unwrap_or(cluster.min_clusters);
        cluster.max_clusters = self.max_clust.unwrap_or(cluster.max_clusters);
        cluster.fixed_clusters = self.k_clusters;
        cluster.k_tolerance = self.k_tolerance.unwrap_or(cluster.k_tolerance);
        cluster.eps = self.eps;
        cluster.min_samples = self.min_samples.unwrap_or(cluster.min_samples);
        cluster.min_cluster_size = self.min_cluster_size.unwrap_or(cluster.min_cluster_size);
        cluster.max_fit_images = self.max_fit_images.unwrap_or(cluster.max_fit_images);
        cluster.validate().map_err(flag_error)?;
        fit.exif.time_window_h = self.time_window_h.unwrap_or(fit.exif.time_window_h);
        fit.exif.gps_radius_m = self.gps_radius_m.unwrap_or(fit.exif.gps_radius_m);
        fit.embedding = parse_choice(&self.embedding, "--embedding", EMBEDDINGS)?
            .unwrap_or(EmbeddingKind::None);
        fit.cluster_space = parse_choice(&self.cluster_space, "--cluster-space", SPACES)?
            .unwrap_or(ClusterSpace::High);
        if let Some(perplexity) = self.perplexity {
            if !(perplexity.is_finite() && perplexity > 0.0) {
                bail!("--perplexity: {perplexity} is not a positive number");
            }
            fit.tsne.perplexity = perplexity;
        }
        Ok(fit)
    }
}

const CLUSTER_METHODS: &[(&str, ClusterMethod)] = &[
    ("agglomerative", ClusterMethod::Agglomerative),
    ("kmeans", ClusterMethod::KMeans),
    ("dbscan", ClusterMethod::Dbscan),
    ("hdbscan", ClusterMethod::Hdbscan),
];
const SCALINGS: &[(&str, PixelScaling)] = &[
    ("standard", PixelScaling::Standard),
    ("minmax", PixelScaling::MinMax),
    ("none", PixelScaling::None),
];
const LINKAGES: &[(&str, Linkage)] = &[
    ("ward", Linkage::Ward),
    ("complete", Linkage::Complete),
    ("average", Linkage::Average),
    ("single", Linkage::Single),
];
const EVALUATIONS: &[(&str, Evaluation)] = &[
    ("silhouette", Evaluation::Silhouette),
    ("dbindex", Evaluation::DbIndex),
    ("derivative", Evaluation::Derivative),
];
const EMBEDDINGS: &[(&str, EmbeddingKind)] =
    &[("none", EmbeddingKind::None), ("tsne", EmbeddingKind::Tsne), ("pca", EmbeddingKind::Pca)];
const SPACES: &[(&str, ClusterSpace)] = &[("high", ClusterSpace::High), ("low", ClusterSpace::Low)];

/// Turns a model error about a parameter into one that names the command-line flag.
fn flag_error(error: crate::model::ModelError) -> anyhow::Error {
    match error {
        crate::model::ModelError::InvalidParameter { field, message } => {
            anyhow::anyhow!("--{}: {message}", field.replace('_', "-"))
        }
        other => other.into(),
    }
}

fn parse_choice<T: Copy>(
    value: &Option<String>,
    flag: &str,
    choices: &[(&str, T)],
) -> anyhow::Result<Option<T>> {
    let Some(value) = value else { return Ok(None) };
    let found = choices.iter().find(|(name, _)| name.eq_ignore_ascii_case(value));
    match found {
        Some((_, choice)) => Ok(Some(*choice)),
        None => {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            bail!("{flag}: unknown value {value:?}, expected one of {}", names.join(", "))
        }
    }
}

fn positive<T: PartialOrd + Default + Copy + std::fmt::Display>(
    value: Option<T>,
    default: T,
    flag: &str,
) -> anyhow::Result<T> {
    let value = value.unwrap_or(default);
    if value <= T::default() {
        bail!("{flag}: must be positive, got {value}");
    }
    Ok(value)
}

/// Parses `128`, `128x96` or `128,96`.
fn parse_dim(text: &str) -> anyhow::Result<(u32, u32)> {
    let parts: Vec<&str> = text.split(['x', 'X', ',']).map(str::trim).collect();
    let number =
        |part: &str| part.parse::<u32>().with_context(|| format!("{part:?} is not a size"));
    match parts.as_slice() {
        [side] => Ok((number(side)?, number(side)?)),
        [width, height] => Ok((number(width)?, number(height)?)),
        _ => bail!("{text:?} is not WIDTHxHEIGHT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Settings> {
        let mut full = vec!["clustimage", "cluster", "dir"];
        full.extend_from_slice(args);
        let Cli { command: Command::Cluster(cluster), .. } = Cli::try_parse_from(full)? else {
            unreachable!("parsed a cluster command")
        };
        cluster.model.settings()
    }

    #[test]
    fn defaults_follow_the_python_package() {
        let settings = parse(&[]).unwrap();
        assert_eq!((settings.preprocessing.width_px, settings.preprocessing.height_px), (128, 128));
        assert_eq!(settings.fit.pca.components, ComponentCount::Variance(0.95));
        assert_eq!(settings.fit.cluster.linkage, Linkage::Ward);
        assert_eq!((settings.fit.cluster.min_clusters, settings.fit.cluster.max_clusters), (3, 25));
    }

    #[test]
    fn color_is_a_plain_flag() {
        assert_eq!(parse(&["--color"]).unwrap().preprocessing.color, ColorMode::Rgb);
        assert_eq!(parse(&[]).unwrap().preprocessing.color, ColorMode::Gray);
    }

    #[test]
    fn bad_values_name_their_flag() {
        let cases = [
            (&["--method", "nope"][..], "--method"),
            (&["--linkage", "median"][..], "--linkage"),
            (&["--pca-variance", "1.5"][..], "--pca-variance"),
            (&["--dim", "12y"][..], "--dim"),
            (&["--min-clust", "9", "--max-clust", "4"][..], "--max-clust"),
            (&["--cluster", "kmeans", "--evaluate", "derivative"][..], "--evaluate"),
        ];
        for (args, flag) in cases {
            let message = format!("{:#}", parse(args).unwrap_err());
            assert!(message.contains(flag), "{args:?}: {message}");
        }
    }

    #[test]
    fn flags_beat_the_configuration_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[cluster]\nmethod = \"hog\"\nmax-clust = 7\n").unwrap();
        let path = path.to_str().unwrap();
        let settings = parse(&["--config", path, "--max-clust", "9"]).unwrap();
        assert_eq!(settings.features.method, FeatureMethod::Hog);
        assert_eq!(settings.fit.cluster.max_clusters, 9);
        std::fs::write(dir.path().join("c.toml"), "[cluster]\nmethd = \"hog\"\n").unwrap();
        let message = format!("{:#}", parse(&["--config", path]).unwrap_err());
        assert!(message.contains("methd"), "{message}");
    }
}
