//! Decoding one image into the thumbnail the feature extractors use.
//!
//! The steps follow the Python package: decode, orient by EXIF, reduce to one gray
//! channel (or keep three), and resize to a fixed square with an area average, ignoring
//! the aspect ratio (enlarging, for images smaller than the thumbnail, is bilinear).
//! Limits on the file size and the pixel count are checked before the pixels are
//! allocated, so a decompression bomb is refused cheaply.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use fast_image_resize as fr;
use image::{DynamicImage, GrayImage, ImageReader, RgbImage};

use super::exif::{apply_orientation, read_exif, ExifFields};
use super::ImagingError;

/// Upper bounds on what a single file may cost to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadLimits {
    /// Files larger than this are refused before being read. Default 256 MiB, far above
    /// any photo, low enough that a stray disk image does not fill memory.
    pub max_file_bytes: u64,
    /// Images with more pixels than this are refused before decoding. Default 200
    /// megapixels: larger than any camera, smaller than a decompression bomb.
    pub max_image_pixels: u64,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits { max_file_bytes: 256 << 20, max_image_pixels: 200_000_000 }
    }
}

/// Whether thumbnails keep colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorMode {
    /// One luma channel; the default, as in the Python package.
    Gray,
    /// Three channels, red, green and blue.
    Rgb,
}

/// How a decoded image is reduced before features are extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Preprocessing {
    /// Thumbnail width and height in pixels. Default 128x128.
    pub width_px: u32,
    pub height_px: u32,
    pub color: ColorMode,
}

impl Default for Preprocessing {
    fn default() -> Self {
        Preprocessing { width_px: 128, height_px: 128, color: ColorMode::Gray }
    }
}

impl Preprocessing {
    /// Checks that the thumbnail size is usable.
    pub fn validate(&self) -> Result<(), ImagingError> {
        let valid = |side: u32| (8..=4096).contains(&side);
        if !valid(self.width_px) || !valid(self.height_px) {
            let message =
                format!("{}x{} is outside 8x8 to 4096x4096", self.width_px, self.height_px);
            return Err(ImagingError::InvalidSetting { field: "dim", message });
        }
        Ok(())
    }

    /// Number of values in one thumbnail: pixels times channels.
    pub fn n_values(&self) -> usize {
        let channels = if self.color == ColorMode::Rgb { 3 } else { 1 };
        self.width_px as usize * self.height_px as usize * channels
    }
}

/// An image reduced to its thumbnail, with what was learnt about the original.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The gray thumbnail, always present: hashes and HOG work on it.
    pub gray: GrayImage,
    /// The colour thumbnail, when [`ColorMode::Rgb`] was asked for.
    pub rgb: Option<RgbImage>,
    /// Size of the original after orientation, in pixels.
    pub original_width_px: u32,
    pub original_height_px: u32,
    /// EXIF fields, when the file has them.
    pub exif: Option<ExifFields>,
}

impl LoadedImage {
    /// The thumbnail's values scaled to `[0, 1]`, row-major, channels interleaved.
    pub fn pixel_values(&self) -> Vec<f32> {
        let raw: &[u8] = match &self.rgb {
            Some(rgb) => rgb.as_raw(),
            None => self.gray.as_raw(),
        };
        raw.iter().map(|&value| f32::from(value) / 255.0).collect()
    }
}

/// Reads and reduces the image at `path`.
pub fn load_file(
    path: &Path,
    limits: &LoadLimits,
    preprocessing: &Preprocessing,
) -> Result<LoadedImage, ImagingError> {
    let metadata = std::fs::metadata(path).map_err(|cause| read_error(path, cause))?;
    check_file_size(path, metadata.len(), limits)?;
    let bytes = std::fs::read(path).map_err(|cause| read_error(path, cause))?;
    load_bytes(&bytes, path, limits, preprocessing)
}

/// Reduces an image held in memory; `path` is used only to name it in errors.
pub fn load_bytes(
    bytes: &[u8],
    path: &Path,
    limits: &LoadLimits,
    preprocessing: &Preprocessing,
) -> Result<LoadedImage, ImagingError> {
    check_file_size(path, bytes.len() as u64, limits)?;
    if is_truncated_jpeg(bytes) {
        let message = "truncated: the JPEG data has no end-of-image marker".to_string();
        return Err(ImagingError::Decode { path: path.to_path_buf(), message });
    }
    let exif = read_exif(bytes);
    let smallest_side = preprocessing.width_px.max(preprocessing.height_px);
    let scaled = decode_scaled_jpeg(bytes, smallest_side, limits.max_image_pixels);
    let (decoded, (full_width, full_height)) = match scaled {
        Some(scaled) => scaled,
        None => decode(bytes, path, limits).map(|image| {
            let size = (image.width(), image.height());
            (image, size)
        })?,
    };
    let orientation = exif.as_ref().and_then(|fields| fields.orientation).unwrap_or(1);
    let oriented = apply_orientation(decoded, orientation);
    // Orientations 5 to 8 turn the picture by a quarter.
    let (original_width_px, original_height_px) = match orientation {
        5..=8 => (full_height, full_width),
        _ => (full_width, full_height),
    };
    let gray = resize_gray(&oriented.to_luma8(), preprocessing, path)?;
    let rgb = match preprocessing.color {
        ColorMode::Rgb => Some(resize_rgb(&oriented.to_rgb8(), preprocessing, path)?),
        ColorMode::Gray => None,
    };
    Ok(LoadedImage { gray, rgb, original_width_px, original_height_px, exif })
}

fn read_error(path: &Path, cause: std::io::Error) -> ImagingError {
    ImagingError::Read { path: path.to_path_buf(), cause }
}

fn check_file_size(path: &Path, size_bytes: u64, limits: &LoadLimits) -> Result<(), ImagingError> {
    if size_bytes == 0 {
        return Err(ImagingError::Empty { path: path.to_path_buf() });
    }
    if size_bytes > limits.max_file_bytes {
        let limit_bytes = limits.max_file_bytes;
        return Err(ImagingError::FileTooLarge {
            path: path.to_path_buf(),
            size_bytes,
            limit_bytes,
        });
    }
    Ok(())
}

/// Decodes after checking the header's dimensions against the pixel limit.
fn decode(bytes: &[u8], path: &Path, limits: &LoadLimits) -> Result<DynamicImage, ImagingError> {
    let reader = guessed_reader(bytes, path)?;
    let (width, height) = reader.into_dimensions().map_err(|e| decode_error(path, e))?;
    if u64::from(width) * u64::from(height) > limits.max_image_pixels {
        let limit_pixels = limits.max_image_pixels;
        let path = path.to_path_buf();
        return Err(ImagingError::TooManyPixels { path, width, height, limit_pixels });
    }
    let mut reader = guessed_reader(bytes, path)?;
    let mut decoder_limits = image::Limits::default();
    // Room for the decoded pixels at up to 16 bytes each (RGBA, 32-bit float) and scratch.
    decoder_limits.max_alloc = Some(limits.max_image_pixels.saturating_mul(16));
    reader.limits(decoder_limits);
    reader.decode().map_err(|e| decode_error(path, e))
}

/// A decoded image and the full size of the original, `(width, height)`.
type Decoded = (DynamicImage, (u32, u32));

/// Decodes a JPEG at the smallest DCT scale (1/8, 1/4, 1/2 or 1) whose sides are still at
/// least `smallest_side`: skipping the fine coefficients costs nothing in a thumbnail and
/// makes decoding several times faster. `None` for anything else, for an original over
/// `max_image_pixels`, or on any trouble, so that the general decoder takes over and
/// reports the error (before decoding anything, for the pixel limit).
/// True for a JPEG whose compressed data stops before its end-of-image marker: decoders
/// fill the missing part with gray, so a half-copied photo would pass for a picture.
///
/// Inside the entropy-coded data every `0xFF` byte is followed by `0x00` or a restart
/// marker, so the first `FF D9` after the first start-of-scan is the real end marker.
fn is_truncated_jpeg(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xff, 0xd8]) {
        return false;
    }
    let Some(scan) = bytes.windows(2).position(|pair| pair == [0xff, 0xda]) else {
        return true;
    };
    !bytes[scan..].windows(2).any(|pair| pair == [0xff, 0xd9])
}

fn decode_scaled_jpeg(bytes: &[u8], smallest_side: u32, max_image_pixels: u64) -> Option<Decoded> {
    if !bytes.starts_with(&[0xff, 0xd8]) {
        return None;
    }
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let full_size = (u32::from(info.width), u32::from(info.height));
    if u64::from(full_size.0) * u64::from(full_size.1) > max_image_pixels {
        return None;
    }
    let side = u16::try_from(smallest_side).unwrap_or(u16::MAX);
    let (width, height) = decoder.scale(side, side).ok()?;
    let (width, height) = (u32::from(width), u32::from(height));
    let pixels = decoder.decode().ok()?;
    let image = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            DynamicImage::ImageLuma8(GrayImage::from_raw(width, height, pixels)?)
        }
        jpeg_decoder::PixelFormat::RGB24 => {
            DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, pixels)?)
        }
        jpeg_decoder::PixelFormat::L16 | jpeg_decoder::PixelFormat::CMYK32 => return None,
    };
    Some((image, full_size))
}

fn guessed_reader<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<ImageReader<Cursor<&'a [u8]>>, ImagingError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|cause| read_error(path, cause))?;
    if reader.format().is_none() {
        return Err(ImagingError::UnknownFormat { path: path.to_path_buf() });
    }
    Ok(reader)
}

fn decode_error(path: &Path, error: image::ImageError) -> ImagingError {
    ImagingError::Decode { path: path.to_path_buf(), message: error.to_string() }
}

fn resize_gray(
    image: &GrayImage,
    preprocessing: &Preprocessing,
    path: &Path,
) -> Result<GrayImage, ImagingError> {
    let (width, height) = (preprocessing.width_px, preprocessing.height_px);
    let buffer = resize_raw(image.as_raw(), image.dimensions(), (width, height), fr::PixelType::U8)
        .map_err(|message| resize_error(path, message))?;
    Ok(GrayImage::from_raw(width, height, buffer).expect("resizer returns a full buffer"))
}

fn resize_rgb(
    image: &RgbImage,
    preprocessing: &Preprocessing,
    path: &Path,
) -> Result<RgbImage, ImagingError> {
    let (width, height) = (preprocessing.width_px, preprocessing.height_px);
    let buffer =
        resize_raw(image.as_raw(), image.dimensions(), (width, height), fr::PixelType::U8x3)
            .map_err(|message| resize_error(path, message))?;
    Ok(RgbImage::from_raw(width, height, buffer).expect("resizer returns a full buffer"))
}

fn resize_error(path: &Path, message: String) -> ImagingError {
    ImagingError::Decode { path: PathBuf::from(path), message: format!("resize failed: {message}") }
}

/// Resizes to `(width, height)`: an area average when shrinking, bilinear when enlarging.
fn resize_raw(
    source: &[u8],
    (source_width, source_height): (u32, u32),
    (width, height): (u32, u32),
    pixel_type: fr::PixelType,
) -> Result<Vec<u8>, String> {
    let source = fr::images::ImageRef::new(source_width, source_height, source, pixel_type)
        .map_err(|e| e.to_string())?;
    let mut target = fr::images::Image::new(width, height, pixel_type);
    // Shrinking averages every source pixel under a target pixel; enlarging (small icons,
    // digits) interpolates linearly, since a box would only repeat pixels.
    let shrinks = width <= source_width && height <= source_height;
    let filter = if shrinks { fr::FilterType::Box } else { fr::FilterType::Bilinear };
    let options = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(filter));
    fr::Resizer::new().resize(&source, &mut target, &options).map_err(|e| e.to_string())?;
    Ok(target.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_png(image: &DynamicImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
        bytes
    }

    #[test]
    fn a_truncated_jpeg_is_an_error_not_a_gray_picture() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
        let bytes = std::fs::read(fixtures.join("020_Flow_half.jpg")).unwrap();
        let (limits, preprocessing) = (LoadLimits::default(), Preprocessing::default());
        load_bytes(&bytes, Path::new("whole.jpg"), &limits, &preprocessing).unwrap();
        for cut in [bytes.len() / 3, bytes.len() - 2] {
            let error = load_bytes(&bytes[..cut], Path::new("cut.jpg"), &limits, &preprocessing)
                .unwrap_err()
                .to_string();
            assert!(error.contains("cut.jpg") && error.contains("truncated"), "{error}");
        }
    }

    #[test]
    fn thumbnail_has_requested_size_and_one_channel() {
        let source = DynamicImage::ImageRgb8(RgbImage::from_fn(300, 200, |x, _| {
            image::Rgb([(x % 256) as u8, 0, 0])
        }));
        let loaded = load_bytes(
            &encode_png(&source),
            Path::new("a.png"),
            &LoadLimits::default(),
            &Preprocessing::default(),
        )
        .unwrap();
        assert_eq!(loaded.gray.dimensions(), (128, 128));
        assert!(loaded.rgb.is_none());
        assert_eq!((loaded.original_width_px, loaded.original_height_px), (300, 200));
        assert_eq!(loaded.pixel_values().len(), 128 * 128);
    }

    #[test]
    fn box_resize_averages_pixels() {
        // A 2x2 checkerboard of 0 and 200 shrinks to one pixel of 100.
        let source = GrayImage::from_raw(2, 2, vec![0, 200, 200, 0]).unwrap();
        let raw = resize_raw(source.as_raw(), (2, 2), (1, 1), fr::PixelType::U8).unwrap();
        assert_eq!(raw, vec![100]);
    }

    #[test]
    fn pixel_limit_refuses_before_decoding() {
        let source = DynamicImage::ImageLuma8(GrayImage::new(100, 100));
        let limits = LoadLimits { max_image_pixels: 9_999, ..LoadLimits::default() };
        let error =
            load_bytes(&encode_png(&source), Path::new("big.png"), &limits, &Default::default())
                .unwrap_err();
        assert!(matches!(error, ImagingError::TooManyPixels { width: 100, .. }));
        assert!(error.to_string().contains("big.png"));
    }

    #[test]
    fn empty_truncated_and_foreign_bytes_are_named_errors() {
        let limits = LoadLimits::default();
        let pre = Preprocessing::default();
        let empty = load_bytes(b"", Path::new("zero.jpg"), &limits, &pre).unwrap_err();
        assert!(matches!(empty, ImagingError::Empty { .. }));
        let text = load_bytes(b"hello world", Path::new("t.jpg"), &limits, &pre).unwrap_err();
        assert!(matches!(text, ImagingError::UnknownFormat { .. }));
        let png = encode_png(&DynamicImage::ImageLuma8(GrayImage::new(64, 64)));
        let cut = load_bytes(&png[..png.len() / 2], Path::new("cut.png"), &limits, &pre);
        assert!(cut.unwrap_err().to_string().contains("cut.png"));
    }
}

#[cfg(test)]
mod jpeg_tests {
    use super::*;

    fn photo() -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/photos/020_Flow_half.jpg");
        std::fs::read(path).unwrap()
    }

    #[test]
    fn scaled_jpeg_decoding_matches_full_decoding_in_the_thumbnail() {
        let bytes = photo();
        let (scaled, full_size) = decode_scaled_jpeg(&bytes, 128, u64::MAX).unwrap();
        let full = image::load_from_memory(&bytes).unwrap();
        assert_eq!(full_size, (full.width(), full.height()));
        assert!(scaled.width() >= 128 && scaled.width() < full.width());
        let pre = Preprocessing::default();
        let path = Path::new("flow.jpg");
        let a = resize_gray(&scaled.to_luma8(), &pre, path).unwrap();
        let b = resize_gray(&full.to_luma8(), &pre, path).unwrap();
        let mean_difference: f64 =
            a.iter().zip(b.iter()).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / 16384.0;
        // Measured at 2.4 of 255 levels: rounding in the reduced inverse DCT, far below
        // what tells two pictures apart.
        assert!(mean_difference < 4.0, "mean difference {mean_difference} grey levels");
    }

    #[test]
    fn scaled_jpeg_path_still_enforces_the_pixel_limit_and_reports_the_full_size() {
        let bytes = photo();
        let limits = LoadLimits { max_image_pixels: 1000, ..LoadLimits::default() };
        let error = load_bytes(&bytes, Path::new("flow.jpg"), &limits, &Preprocessing::default());
        assert!(matches!(error, Err(ImagingError::TooManyPixels { .. })));
        let loaded = load_bytes(
            &bytes,
            Path::new("flow.jpg"),
            &LoadLimits::default(),
            &Preprocessing::default(),
        )
        .unwrap();
        let full = image::load_from_memory(&bytes).unwrap();
        assert_eq!(loaded.original_width_px, full.width());
    }
}
