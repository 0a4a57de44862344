//! The report: PNG and SVG figures of a fitted model and an `index.html` that ties them
//! together, self-contained (no script, no network, only relative links) and readable on
//! a laptop screen.
//!
//! [`write_cluster_report`] writes what `clustimage cluster --report DIR` shows: the 2-D
//! embedding, the dendrogram, one page per cluster, the unique images, the choice of k,
//! the PCA, and the EXIF plots; [`write_find_report`] what `clustimage find --report DIR`
//! shows. Both take a [`ReportInput`], which asks only for paths, a model and where
//! thumbnails come from, so that a report of the daemon's library needs no batch run.
//!
//! Layout: `figure.rs` (the [`figure::Figure`] trait and writing PNG and SVG), `svg.rs`
//! (our SVG backend), `font.rs` (the bundled font), `draw.rs` (shared drawing steps),
//! `layout.rs` (pure decisions: grids, caps, samples), `thumbnails.rs`, `figures/` (one
//! module per figure), `build.rs` (model to figures), `html.rs` (the pages).
//!
//! Large libraries stay usable because every figure caps what it draws and says so: at
//! most [`figures::scatter::MAX_POINTS`] points (a seeded sample), 60 dendrogram leaves,
//! [`build::MAX_CLUSTER_PAGES`] cluster pages of [`build::MAX_TILES`] thumbnails each,
//! [`build::MAX_UNIQUE`] unique tiles. What it does not do yet: the duplicate groups (a
//! montage of groups, each tile with kind, distance and the suggested keeper framed) and
//! a report of the running daemon's library (`clustimage report DIR`) belong here too.

pub mod build;
pub mod draw;
pub mod figure;
pub mod figures;
pub mod font;
pub mod html;
pub mod layout;
pub mod svg;
pub mod thumbnails;

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::batch::Extracted;
use crate::imaging::LoadLimits;
use crate::model::distribution::FittedDistribution;
use crate::model::find::{FindParams, Hit};
use crate::model::{ExifInput, FitParams, Model};
pub use figure::WrittenFigure;
pub use thumbnails::{StoredThumbnails, ThumbnailSource};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot create report folder {path}: {cause}")]
    CreateFolder { path: PathBuf, cause: std::io::Error },
    #[error("cannot write {path}: {cause}")]
    Write { path: PathBuf, cause: std::io::Error },
    #[error("cannot encode {path}: {message}")]
    Encode { path: PathBuf, message: String },
    #[error("cannot draw figure {figure}: {message}")]
    Draw { figure: String, message: String },
    #[error("the bundled font cannot be loaded")]
    Font,
}

/// What a report is made from.
#[derive(Debug)]
pub struct ReportInput<'a> {
    /// Where each image of the model came from, in the model's order.
    pub paths: &'a [PathBuf],
    pub model: &'a Model,
    pub params: &'a FitParams,
    /// The times or places the EXIF methods clustered.
    pub exif: Option<ExifInput>,
    pub thumbnails: ThumbnailSource<'a>,
    /// Each cluster's mean image, in cluster order; empty when unknown.
    pub mean_images: Vec<RgbImage>,
    /// Files that could not be read, for the summary.
    pub n_skipped: usize,
    /// Groups of duplicate files to draw; empty for none.
    pub duplicates: Vec<DuplicateGroupInput>,
}

/// One group of duplicate files, as the report draws it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateGroupInput {
    /// `exact`, `duplicate` or `similar`.
    pub kind: String,
    pub max_distance: u32,
    /// The suggested keeper first.
    pub paths: Vec<PathBuf>,
}

impl<'a> ReportInput<'a> {
    /// The input for a batch run's extracted images and their model.
    pub fn from_batch(
        extracted: &'a Extracted,
        model: &'a Model,
        params: &'a FitParams,
        limits: LoadLimits,
    ) -> ReportInput<'a> {
        let exif = match crate::batch::fit_input(extracted, params.method) {
            crate::model::FitInput::Exif(exif) => Some(exif),
            crate::model::FitInput::Vectors(_) => None,
        };
        let stored = StoredThumbnails {
            values: extracted.thumbnails.view(),
            width_px: extracted.thumbnail_width_px,
            height_px: extracted.thumbnail_height_px,
        };
        let mean_images = crate::batch::result::mean_images(extracted, model)
            .into_iter()
            .map(|image| image.to_rgb8())
            .collect();
        ReportInput {
            paths: &extracted.paths,
            model,
            params,
            exif,
            thumbnails: ThumbnailSource { paths: &extracted.paths, stored: Some(stored), limits },
            mean_images,
            n_skipped: extracted.skipped.len(),
            duplicates: Vec::new(),
        }
    }
}

/// Choices about what a report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportOptions {
    /// Also draw the embedding with a thumbnail at every (sampled) image.
    pub all_thumbnails: bool,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct WrittenReport {
    /// The report's `index.html`.
    pub index: PathBuf,
    pub figures: Vec<WrittenFigure>,
    /// Other pages, relative to the folder.
    pub pages: Vec<PathBuf>,
}

/// Writes the report of a fitted model into `folder` (created if needed; files of an
/// earlier report there are replaced).
pub fn write_cluster_report(
    folder: &Path,
    input: &ReportInput<'_>,
    options: &ReportOptions,
) -> Result<WrittenReport, ReportError> {
    font::ensure_registered()?;
    create_folder(folder)?;
    let plan = build::Plan::new(input, options);
    let thumbnails = input.thumbnails.load(&plan.shared_thumbnails());
    let mut rendered = html::ClusterFigures::default();
    for scatter in build::scatters(input, &plan, &thumbnails) {
        rendered.scatters.push((figure::render(&scatter, folder)?, scatter.title));
    }
    rendered.dendrogram =
        build::dendrogram(input).map(|f| figure::render(&f, folder)).transpose()?;
    rendered.scores = build::scores(input).map(|f| figure::render(&f, folder)).transpose()?;
    rendered.variance = build::variance(input).map(|f| figure::render(&f, folder)).transpose()?;
    rendered.exif = build::exif(input, &plan).map(|f| figure::render(&f, folder)).transpose()?;
    rendered.unique =
        build::unique(input, &plan, &thumbnails).map(|f| figure::render(&f, folder)).transpose()?;
    rendered.duplicates =
        build::duplicates(input).map(|f| figure::render(&f, folder)).transpose()?;
    drop(thumbnails);
    for cluster in 0..plan.n_pages() {
        // Each page loads its own thumbnails and lets them go: memory stays bounded by one
        // page, whatever the number of clusters.
        let page_thumbnails = input.thumbnails.load(&plan.page_thumbnails(cluster));
        let montage = build::cluster_page(input, &plan, &page_thumbnails, cluster);
        rendered.pages.push(figure::render(&montage, folder)?);
    }
    let pages = html::write_cluster_pages(folder, input, &plan, &rendered)?;
    let mut figures: Vec<WrittenFigure> = rendered.scatters.into_iter().map(|(f, _)| f).collect();
    figures.extend(rendered.dendrogram);
    figures.extend(rendered.scores);
    figures.extend(rendered.variance);
    figures.extend(rendered.exif);
    figures.extend(rendered.unique);
    figures.extend(rendered.duplicates);
    figures.extend(rendered.pages);
    Ok(WrittenReport { index: folder.join("index.html"), figures, pages })
}

/// One query of `find` and its hits, nearest first.
#[derive(Debug, Clone)]
pub struct FindQuery {
    pub path: PathBuf,
    pub hits: Vec<Hit>,
}

/// Writes the report of `find` into `folder`: each query with its hits, and the null
/// distribution with the threshold at alpha.
pub fn write_find_report(
    folder: &Path,
    library: &ReportInput<'_>,
    queries: &[FindQuery],
    null: &FittedDistribution,
    params: &FindParams,
) -> Result<WrittenReport, ReportError> {
    font::ensure_registered()?;
    create_folder(folder)?;
    build::write_find_report(folder, library, queries, null, params)
}

fn create_folder(folder: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(folder)
        .map_err(|cause| ReportError::CreateFolder { path: folder.to_path_buf(), cause })
}
