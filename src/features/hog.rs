//! The histogram of oriented gradients (HOG) descriptor.
//!
//! Unlike the Python package, which clusters the HOG *visualisation* image, this returns
//! the descriptor itself: one histogram of `orientations` bins per cell, normalised per
//! block. The computation is imageproc's.

use image::GrayImage;
use imageproc::hog::{hog, HogOptions};

use super::FeatureError;

/// Shape of the HOG descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HogParams {
    /// Number of unsigned orientation bins. Default 8.
    pub orientations: usize,
    /// Side of a cell in pixels. Default 8.
    pub cell_px: usize,
    /// Side of a normalisation block in cells. Default 1.
    pub block_cells: usize,
}

impl Default for HogParams {
    fn default() -> Self {
        HogParams { orientations: 8, cell_px: 8, block_cells: 1 }
    }
}

/// Computes the descriptor; with the defaults on a 128x128 image it has 2,048 values.
///
/// An image whose sides are not multiples of the cell side loses the remainder, split
/// between its edges (a 20x20 digit keeps its central 16x16 at 8-pixel cells).
pub fn descriptor(image: &GrayImage, params: &HogParams) -> Result<Vec<f32>, FeatureError> {
    let cell = params.cell_px.max(1) as u32;
    let (width, height) = (image.width() / cell * cell, image.height() / cell * cell);
    if width == 0 || height == 0 {
        let message = format!(
            "a {}x{} image is smaller than one {cell}x{cell} cell",
            image.width(),
            image.height()
        );
        return Err(FeatureError::Hog { message });
    }
    let (left, top) = ((image.width() - width) / 2, (image.height() - height) / 2);
    let cropped = image::imageops::crop_imm(image, left, top, width, height).to_image();
    let options = HogOptions {
        orientations: params.orientations,
        signed: false,
        cell_side: params.cell_px,
        block_side: params.block_cells,
        block_stride: 1,
    };
    hog(&cropped, options).map_err(|message| FeatureError::Hog { message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_descriptor_of_a_thumbnail_has_2048_values() {
        let image = GrayImage::from_fn(128, 128, |x, y| image::Luma([((x * y) % 256) as u8]));
        let values = descriptor(&image, &HogParams::default()).unwrap();
        assert_eq!(values.len(), 16 * 16 * 8);
        assert!(values.iter().any(|&v| v > 0.0));
    }

    #[test]
    fn vertical_edges_and_horizontal_edges_differ() {
        let vertical =
            GrayImage::from_fn(64, 64, |x, _| image::Luma([if x % 16 < 8 { 0 } else { 255 }]));
        let horizontal =
            GrayImage::from_fn(64, 64, |_, y| image::Luma([if y % 16 < 8 { 0 } else { 255 }]));
        let params = HogParams::default();
        let a = descriptor(&vertical, &params).unwrap();
        let b = descriptor(&horizontal, &params).unwrap();
        let distance: f32 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum();
        assert!(distance > 1.0, "distance {distance}");
    }

    #[test]
    fn sides_that_are_not_whole_cells_are_cropped() {
        let image = GrayImage::from_fn(20, 20, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]));
        let values = descriptor(&image, &HogParams::default()).unwrap();
        assert_eq!(values.len(), 2 * 2 * 8);
        let error = descriptor(&GrayImage::new(5, 12), &HogParams::default()).unwrap_err();
        assert!(error.to_string().contains("5x12"), "{error}");
    }
}
