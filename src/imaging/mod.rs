//! Reading image files: finding them under folders, enforcing size limits, decoding,
//! applying the EXIF orientation, and reducing them to the small grayscale (or colour)
//! thumbnails the feature extractors work on.
//!
//! This layer knows nothing of features or clustering. JPEGs are decoded at a reduced DCT
//! scale (`jpeg-decoder`), everything else through the `image` crate; decoding still
//! dominates the cost of a run, and large PNGs and WebPs are decoded at full size.

pub mod discover;
pub mod exif;
pub mod load;

use std::path::PathBuf;

pub use discover::{find_images, is_image_path, Discovery, IMAGE_EXTENSIONS};
pub use load::{load_bytes, load_file, ColorMode, LoadLimits, LoadedImage, Preprocessing};

/// Why an image could not be read. Every variant names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    #[error("cannot read {path}: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("{path} is empty (0 bytes)")]
    Empty { path: PathBuf },
    #[error("{path} is {size_bytes} bytes, over the limit of {limit_bytes} bytes")]
    FileTooLarge { path: PathBuf, size_bytes: u64, limit_bytes: u64 },
    #[error("{path} is {width}x{height} pixels, over the limit of {limit_pixels} pixels")]
    TooManyPixels { path: PathBuf, width: u32, height: u32, limit_pixels: u64 },
    #[error("{path} is not an image in a supported format")]
    UnknownFormat { path: PathBuf },
    #[error("cannot decode {path}: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("root folder {path} does not exist or is not a folder")]
    MissingRoot { path: PathBuf },
    #[error("invalid preprocessing setting {field}: {message}")]
    InvalidSetting { field: &'static str, message: String },
}
