//! The report of the running library: the same figures and pages as `cluster --report`,
//! drawn from the model in use and the files the store knows, plus the groups of
//! duplicates (exact copies and duplicates), into a folder the caller names.
//!
//! The model holds no thumbnails, so each picture shown is read again from its file (the
//! report reads only the few it draws). An image whose files are all gone since the fit
//! keeps its place in the figures, without a picture.

use std::path::{Path, PathBuf};

use super::library::QueryError;
use super::query::InvalidQuery;
use super::{DaemonError, DaemonHandle};
use crate::dedup::MatchKind;
use crate::report::{self, DuplicateGroupInput, ReportInput, ReportOptions, ThumbnailSource};

/// What [`DaemonHandle::write_report`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryReport {
    /// The report's `index.html`.
    pub index: PathBuf,
    /// Every file written: figures (PNG and SVG) and pages.
    pub files: Vec<PathBuf>,
    /// The images of the model the report shows.
    pub images: usize,
}

impl DaemonHandle {
    /// Writes the report of the model in use into `folder`, which must be an absolute path
    /// outside every watched folder (the daemon would index its pictures). Blocking: call
    /// it off the async runtime.
    pub fn write_report(
        &self,
        folder: &Path,
        options: &ReportOptions,
    ) -> Result<LibraryReport, DaemonError> {
        let invalid = |message: String| InvalidQuery { field: "out_dir", message };
        if !folder.is_absolute() {
            return Err(invalid(format!("{} is not an absolute path", folder.display())).into());
        }
        let real = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
        if self.inside_roots(folder) || self.inside_roots(&real) {
            let message = format!(
                "{} is under a watched folder: the daemon would index the report's pictures; \
                 write it elsewhere",
                folder.display()
            );
            return Err(invalid(message).into());
        }
        let library = self.library();
        let view = library.view().ok_or(QueryError::NoModel)?;
        let paths: Vec<PathBuf> = {
            let catalog = library.catalog.read().expect("catalog lock");
            view.fitted
                .contents
                .iter()
                .map(|content| catalog.paths(content).into_iter().next().unwrap_or_default())
                .collect()
        };
        let duplicates = self
            .duplicate_list(MatchKind::Duplicate)?
            .groups
            .into_iter()
            .map(|group| DuplicateGroupInput {
                kind: group.kind.name().to_string(),
                max_distance: group.max_distance,
                paths: group.paths,
            })
            .collect();
        let n_failed: u64 = library.catalog.read().expect("catalog lock").failures().values().sum();
        let extractor = &self.shared.extractor;
        let input = ReportInput {
            paths: &paths,
            model: &view.fitted.model,
            params: &self.shared.fit,
            exif: None,
            thumbnails: ThumbnailSource { paths: &paths, stored: None, limits: extractor.limits },
            mean_images: Vec::new(),
            n_skipped: n_failed as usize,
            duplicates,
        };
        let written = report::write_cluster_report(folder, &input, options)
            .map_err(|error| DaemonError::Report(error.to_string()))?;
        let mut files: Vec<PathBuf> = Vec::new();
        for figure in &written.figures {
            files.push(folder.join(&figure.png));
            files.extend(figure.svg.as_ref().map(|svg| folder.join(svg)));
        }
        files.extend(written.pages.iter().map(|page| folder.join(page)));
        let index = folder.join(&written.index);
        files.push(index.clone());
        Ok(LibraryReport { index, files, images: paths.len() })
    }
}
