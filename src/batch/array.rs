//! Reading a NumPy array whose rows are flattened grayscale images, as the Python package
//! accepts. Rows are used at their own size; nothing is resized.

use std::path::{Path, PathBuf};

use image::GrayImage;
use ndarray::Array2;
use ndarray_npy::ReadNpyExt;

use super::extract::{assemble, Row};
use super::{BatchError, Extracted};
use crate::features::{self, FeatureParams};
use crate::imaging::{ColorMode, Preprocessing};

/// Reads `path`, shape `(n_images, width * height)`, and describes each row.
///
/// `dim` gives the image's width and height; without it the rows must be square.
/// Values above 1 are taken as 0-255 intensities (or scaled by the maximum when larger).
pub fn extract_array(
    path: &Path,
    dim: Option<(u32, u32)>,
    params: &FeatureParams,
) -> Result<Extracted, BatchError> {
    let data = read_any_npy(path)?;
    let (width_px, height_px) = image_shape(path, data.ncols(), dim)?;
    let scale = intensity_scale(&data);
    let preprocessing = Preprocessing { width_px, height_px, color: ColorMode::Gray };
    let mut rows = Vec::with_capacity(data.nrows());
    for (idx, raw) in data.rows().into_iter().enumerate() {
        let thumbnail: Vec<f32> = raw.iter().map(|&v| (v / scale).clamp(0.0, 1.0) as f32).collect();
        let gray = to_gray(&thumbnail, width_px, height_px);
        let vector = if params.method.uses_exif() {
            return Err(array_error(path, "exif methods need image files, not an array"));
        } else {
            features::extract(&gray, &thumbnail, params)?
        };
        let row_path = PathBuf::from(format!("{}[{idx}]", path.display()));
        rows.push(Row { path: row_path, vector, thumbnail, exif: None });
    }
    assemble(rows, Vec::new(), &preprocessing)
}

fn array_error(path: &Path, message: impl Into<String>) -> BatchError {
    BatchError::Array { path: path.to_path_buf(), message: message.into() }
}

/// Reads a 2-D array of any common numeric type as `f64`.
fn read_any_npy(path: &Path) -> Result<Array2<f64>, BatchError> {
    let open = || {
        std::fs::File::open(path)
            .map_err(|cause| BatchError::Io { path: path.to_path_buf(), cause })
    };
    macro_rules! try_type {
        ($t:ty) => {
            if let Ok(array) = Array2::<$t>::read_npy(open()?) {
                return Ok(array.mapv(|v| v as f64));
            }
        };
    }
    try_type!(f64);
    try_type!(f32);
    try_type!(u8);
    try_type!(i64);
    try_type!(i32);
    try_type!(u16);
    try_type!(i16);
    try_type!(u32);
    try_type!(u64);
    Err(array_error(path, "not a 2-D .npy array of numbers (rows of flattened images)"))
}

fn image_shape(
    path: &Path,
    n_values: usize,
    dim: Option<(u32, u32)>,
) -> Result<(u32, u32), BatchError> {
    if let Some((width, height)) = dim {
        if (width as usize) * (height as usize) != n_values {
            let message =
                format!("--dim {width}x{height} does not match rows of {n_values} values");
            return Err(array_error(path, message));
        }
        return Ok((width, height));
    }
    let side = (n_values as f64).sqrt().round() as usize;
    if side * side != n_values || side == 0 {
        let message = format!("rows of {n_values} values are not square images; give --dim");
        return Err(array_error(path, message));
    }
    Ok((side as u32, side as u32))
}

/// The divisor that brings the array's values into `[0, 1]`.
fn intensity_scale(data: &Array2<f64>) -> f64 {
    let max = data.iter().copied().fold(0.0f64, f64::max);
    match max {
        m if m <= 1.0 => 1.0,
        m if m <= 255.0 => 255.0,
        m => m,
    }
}

fn to_gray(values: &[f32], width_px: u32, height_px: u32) -> GrayImage {
    let bytes = values.iter().map(|v| (v * 255.0).round() as u8).collect();
    GrayImage::from_raw(width_px, height_px, bytes).expect("one value per pixel")
}
