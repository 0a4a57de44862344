//! Colour thumbnails, with the picture's own aspect, of the images a report shows.
//!
//! The batch run keeps only square, usually gray thumbnails; the report reads the few
//! images it shows again, in colour, at [`THUMBNAIL_SIDE_PX`] on the long side (JPEGs
//! are decoded at a reduced scale, so this is cheap). An image that cannot be read again
//! (a row of an array, a file gone since) falls back to the run's own thumbnail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use image::RgbImage;
use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::imaging::{self, ColorMode, LoadLimits, Preprocessing};

/// Long side of a loaded thumbnail, enough for the largest tile.
pub const THUMBNAIL_SIDE_PX: u32 = 192;

/// The run's own thumbnails: values in `[0, 1]`, shape `(n_images, n_values)`, one or
/// three channels of `width_px` by `height_px`.
#[derive(Debug, Clone, Copy)]
pub struct StoredThumbnails<'a> {
    pub values: ArrayView2<'a, f32>,
    pub width_px: u32,
    pub height_px: u32,
}

impl StoredThumbnails<'_> {
    /// The thumbnail of `image_idx` as an RGB image.
    pub fn rgb(&self, image_idx: usize) -> Option<RgbImage> {
        let n_pixels = self.width_px as usize * self.height_px as usize;
        let row = self.values.row(image_idx);
        let byte = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
        let bytes: Vec<u8> = if row.len() == 3 * n_pixels {
            row.iter().map(|&v| byte(v)).collect()
        } else if row.len() == n_pixels {
            row.iter().flat_map(|&v| [byte(v); 3]).collect()
        } else {
            return None;
        };
        RgbImage::from_raw(self.width_px, self.height_px, bytes)
    }
}

/// Where thumbnails come from: the files, else the run's own thumbnails.
#[derive(Debug, Clone, Copy)]
pub struct ThumbnailSource<'a> {
    pub paths: &'a [PathBuf],
    pub stored: Option<StoredThumbnails<'a>>,
    pub limits: LoadLimits,
}

/// The thumbnails loaded for one report, by image index.
#[derive(Debug, Default)]
pub struct Thumbnails {
    images: BTreeMap<usize, RgbImage>,
}

impl Thumbnails {
    /// The thumbnail of `image_idx`, if it was asked for and could be made.
    pub fn get(&self, image_idx: usize) -> Option<&RgbImage> {
        self.images.get(&image_idx)
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

impl ThumbnailSource<'_> {
    /// Loads the thumbnails of `indices` on all cores.
    pub fn load(&self, indices: &BTreeSet<usize>) -> Thumbnails {
        let indices: Vec<usize> = indices.iter().copied().collect();
        let loaded: Vec<(usize, Option<RgbImage>)> =
            indices.par_iter().map(|&idx| (idx, self.one(idx))).collect();
        let images = loaded.into_iter().filter_map(|(idx, image)| Some((idx, image?))).collect();
        Thumbnails { images }
    }

    /// The thumbnail of any file (not one of the run's images), read from it.
    pub fn of_path(&self, path: &std::path::Path) -> Option<RgbImage> {
        from_file(path, &self.limits)
            .map_err(
                |error| tracing::debug!(path = %path.display(), cause = %error, "no thumbnail"),
            )
            .ok()
    }

    fn one(&self, image_idx: usize) -> Option<RgbImage> {
        let path = self.paths.get(image_idx)?;
        match from_file(path, &self.limits) {
            Ok(image) => Some(image),
            Err(error) => {
                tracing::debug!(path = %path.display(), cause = %error, "thumbnail from the run");
                self.stored.and_then(|stored| stored.rgb(image_idx))
            }
        }
    }
}

/// Reads `path` into a colour thumbnail with the picture's aspect: decoded once into a
/// square, then squeezed back to the original's proportions.
fn from_file(
    path: &std::path::Path,
    limits: &LoadLimits,
) -> Result<RgbImage, imaging::ImagingError> {
    let side = THUMBNAIL_SIDE_PX;
    let preprocessing = Preprocessing { width_px: side, height_px: side, color: ColorMode::Rgb };
    let loaded = imaging::load_file(path, limits, &preprocessing)?;
    let original = (loaded.original_width_px, loaded.original_height_px);
    let square =
        loaded.rgb.unwrap_or_else(|| image::DynamicImage::ImageLuma8(loaded.gray).to_rgb8());
    let (width, height) = super::layout::fit_inside(original, (side, side));
    if (width, height) == (side, side) {
        return Ok(square);
    }
    Ok(image::imageops::resize(&square, width, height, image::imageops::FilterType::Triangle))
}

/// `image` scaled to fit `box_px`, keeping its aspect: smoothly when shrinking, with
/// sharp pixels when enlarging (tiny array thumbnails stay legible).
pub fn fitted(image: &RgbImage, box_px: (u32, u32)) -> RgbImage {
    let (width, height) = super::layout::fit_inside(image.dimensions(), box_px);
    if (width, height) == image.dimensions() {
        return image.clone();
    }
    let filter = if width > image.width() {
        image::imageops::FilterType::Nearest
    } else {
        image::imageops::FilterType::Triangle
    };
    image::imageops::resize(image, width, height, filter)
}
