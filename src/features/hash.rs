//! Perceptual image hashes: average (aHash), difference (dHash), DCT perceptual (pHash) and Haar
//! wavelet (wHash) hashes of a grayscale image, packed into an [`ImageHash`] that is compared by
//! Hamming distance. The definitions follow the Python `imagehash` package in spirit, but every
//! resize here is an exact, deterministic area average (box filter) instead of PIL's Lanczos, so
//! hashes are not bit-identical to `imagehash`. Colour hashes, crop-resistant and rotation- or
//! mirror-invariant hashing are not done. Because the resize is itself an area average, the Haar
//! LL band of the wavelet hash equals a box average, so `Wavelet` differs from `Average` mainly by
//! thresholding at the median instead of the mean.

use image::GrayImage;
use serde::{Deserialize, Serialize};

/// Smallest accepted `hash_size` (side of the bit grid).
pub const MIN_HASH_SIZE: u32 = 2;

/// Largest accepted `hash_size` (side of the bit grid); 64 gives 4096 bits.
pub const MAX_HASH_SIZE: u32 = 64;

/// The working image of the perceptual hash is this many times `hash_size` on each side.
const DCT_SCALE: u32 = 4;

/// The working image of the wavelet hash is this many times `hash_size` on each side (a power
/// of two, so that `log2(WAVELET_SCALE)` Haar steps reach `hash_size`).
const WAVELET_SCALE: u32 = 8;

/// The hash algorithms, named after `imagehash`'s `ahash`, `dhash`, `phash` and `whash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashKind {
    /// Area-resize to `hash_size` squared; a bit is set when the pixel is above the mean.
    Average,
    /// Area-resize to `(hash_size + 1) x hash_size`; a bit is set when a pixel is darker than
    /// its right neighbour (horizontal gradient).
    Difference,
    /// Area-resize to `(4 * hash_size)` squared, take the 2-D DCT-II, keep the lowest
    /// `hash_size` squared frequencies; a bit is set when a coefficient is above their median.
    Perceptual,
    /// Area-resize to `(8 * hash_size)` squared, take three Haar steps down to the
    /// `hash_size` squared LL band; a bit is set when a coefficient is above its median.
    Wavelet,
}

impl HashKind {
    /// The kind's name as the API and the command line spell it.
    pub fn name(self) -> &'static str {
        match self {
            HashKind::Average => "average",
            HashKind::Difference => "difference",
            HashKind::Perceptual => "perceptual",
            HashKind::Wavelet => "wavelet",
        }
    }
}

/// A perceptual hash of `hash_size * hash_size` bits, packed.
///
/// Bit `i` (row-major over the bit grid) lives in `words[i / 64]` at bit `i % 64`; unused high
/// bits of the last word are zero.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageHash {
    words: Vec<u64>,
    n_bits: usize,
}

/// Why an image could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// `hash_size` is outside `MIN_HASH_SIZE..=MAX_HASH_SIZE`.
    #[error("invalid hash size {hash_size}: expected {MIN_HASH_SIZE}..={MAX_HASH_SIZE}")]
    InvalidHashSize {
        /// The rejected size.
        hash_size: u32,
    },
    /// The wavelet hash needs a power-of-two `hash_size`.
    #[error("invalid wavelet hash size {hash_size}: expected a power of two")]
    WaveletSizeNotPowerOfTwo {
        /// The rejected size.
        hash_size: u32,
    },
    /// The image has no pixels.
    #[error("cannot hash an empty {width}x{height} image")]
    EmptyImage {
        /// Width of the rejected image.
        width: u32,
        /// Height of the rejected image.
        height: u32,
    },
}

impl ImageHash {
    /// Number of bits in the hash (`hash_size * hash_size`).
    pub fn n_bits(&self) -> usize {
        self.n_bits
    }

    /// Number of differing bits between two hashes.
    ///
    /// Hashes of different lengths are a caller bug: debug builds panic on a `debug_assert`,
    /// release builds compare only the first `min(n_bits)` bits.
    pub fn hamming(&self, other: &ImageHash) -> u32 {
        debug_assert_eq!(self.n_bits, other.n_bits, "hamming distance of unequal hash lengths");
        let n_bits = self.n_bits.min(other.n_bits);
        let mut distance = 0;
        for (index, (a, b)) in self.words.iter().zip(&other.words).enumerate() {
            let start = index * 64;
            if start >= n_bits {
                break;
            }
            distance += ((a ^ b) & low_bits_mask(n_bits - start)).count_ones();
        }
        distance
    }

    /// The bits as `0.0` / `1.0`, row-major over the bit grid; the length is `n_bits`.
    pub fn to_bits_f64(&self) -> Vec<f64> {
        (0..self.n_bits).map(|index| if self.bit(index) { 1.0 } else { 0.0 }).collect()
    }

    /// Lowercase hexadecimal, as `imagehash` prints it: the bits read row-major as one binary
    /// number with the first bit most significant, zero-padded to `ceil(n_bits / 4)` digits.
    pub fn to_hex(&self) -> String {
        let n_digits = self.n_bits.div_ceil(4);
        let pad = n_digits * 4 - self.n_bits;
        (0..n_digits)
            .map(|digit| {
                let nibble = (0..4).fold(0u32, |acc, offset| {
                    let padded_index = digit * 4 + offset;
                    let set = padded_index >= pad && self.bit(padded_index - pad);
                    (acc << 1) | u32::from(set)
                });
                char::from_digit(nibble, 16).unwrap_or('0')
            })
            .collect()
    }

    /// Packs bits given in row-major order.
    fn from_bits(bits: impl Iterator<Item = bool>) -> Self {
        let mut words = Vec::new();
        let mut n_bits = 0;
        for bit in bits {
            if n_bits % 64 == 0 {
                words.push(0);
            }
            if bit {
                if let Some(word) = words.last_mut() {
                    *word |= 1 << (n_bits % 64);
                }
            }
            n_bits += 1;
        }
        Self { words, n_bits }
    }

    /// The hash as one word, when it has at most 64 bits.
    pub fn as_u64(&self) -> Option<u64> {
        match self.words.as_slice() {
            [word] => Some(*word),
            _ => None,
        }
    }

    /// Bit `index`; out-of-range bits (possible only in a malformed deserialized hash) read 0.
    fn bit(&self, index: usize) -> bool {
        self.words.get(index / 64).is_some_and(|word| (word >> (index % 64)) & 1 == 1)
    }
}

/// Hashes a grayscale image of any size of at least 1x1.
///
/// `hash_size` is the side of the bit grid (8 gives 64 bits); valid sizes are
/// `MIN_HASH_SIZE..=MAX_HASH_SIZE`, and [`HashKind::Wavelet`] also needs a power of two.
/// The result is deterministic for a given image, kind and size.
pub fn hash_image(
    image: &GrayImage,
    kind: HashKind,
    hash_size: u32,
) -> Result<ImageHash, HashError> {
    check_hash_size(kind, hash_size)?;
    if image.width() == 0 || image.height() == 0 {
        return Err(HashError::EmptyImage { width: image.width(), height: image.height() });
    }
    let side = hash_size as usize;
    let hash = match kind {
        HashKind::Average => average_hash(image, side),
        HashKind::Difference => difference_hash(image, side),
        HashKind::Perceptual => perceptual_hash(image, side),
        HashKind::Wavelet => wavelet_hash(image, side),
    };
    Ok(hash)
}

/// Rejects sizes outside the valid range, and non-powers of two for the wavelet hash.
fn check_hash_size(kind: HashKind, hash_size: u32) -> Result<(), HashError> {
    if !(MIN_HASH_SIZE..=MAX_HASH_SIZE).contains(&hash_size) {
        return Err(HashError::InvalidHashSize { hash_size });
    }
    if kind == HashKind::Wavelet && !hash_size.is_power_of_two() {
        return Err(HashError::WaveletSizeNotPowerOfTwo { hash_size });
    }
    Ok(())
}

/// aHash: bits of the `side x side` area average above its mean.
fn average_hash(image: &GrayImage, side: usize) -> ImageHash {
    let pixels = area_resize(image, side, side);
    let mean = pixels.iter().sum::<f64>() / pixels.len() as f64;
    let tolerance = rounding_tolerance(&pixels);
    ImageHash::from_bits(pixels.iter().map(|&value| value > mean + tolerance))
}

/// dHash: for each row of a `(side + 1) x side` area average, left pixel < right pixel.
fn difference_hash(image: &GrayImage, side: usize) -> ImageHash {
    let width = side + 1;
    let pixels = area_resize(image, width, side);
    let tolerance = rounding_tolerance(&pixels);
    let bits = pixels
        .chunks_exact(width)
        .flat_map(|row| row.windows(2).map(move |pair| pair[0] + tolerance < pair[1]));
    ImageHash::from_bits(bits)
}

/// pHash: lowest `side x side` DCT-II frequencies above their median.
fn perceptual_hash(image: &GrayImage, side: usize) -> ImageHash {
    let size = side * DCT_SCALE as usize;
    let pixels = area_resize(image, size, size);
    let coefficients = low_frequency_dct(&pixels, size, side);
    threshold_at_median(&coefficients)
}

/// wHash: Haar LL band of a `(8 * side)` square, above its median.
///
/// `imagehash` by default first removes the coarsest LL coefficient (the image mean); that
/// only shifts every coefficient and the median by the same amount, so it is skipped here.
fn wavelet_hash(image: &GrayImage, side: usize) -> ImageHash {
    let mut size = side * WAVELET_SCALE as usize;
    let mut band = area_resize(image, size, size);
    while size > side {
        band = haar_low_band(&band, size);
        size /= 2;
    }
    threshold_at_median(&band)
}

/// Bits set where a value is above the median of all values by more than rounding noise.
fn threshold_at_median(values: &[f64]) -> ImageHash {
    let threshold = median(values) + rounding_tolerance(values);
    ImageHash::from_bits(values.iter().map(|&value| value > threshold))
}

/// A margin well above floating-point noise and well below any real difference, so that flat
/// images (whose DCT or gradients are zero up to rounding) give stable bits.
fn rounding_tolerance(values: &[f64]) -> f64 {
    let magnitude = values.iter().fold(1.0, |max: f64, value| max.max(value.abs()));
    magnitude * 1e-9
}

/// Median; the mean of the two middle values for an even count, 0 for no values.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => 0.0,
        len if len % 2 == 1 => sorted[middle],
        _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
    }
}

/// Mask with the lowest `n` bits set (all 64 bits when `n >= 64`).
fn low_bits_mask(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Exact area-average resize to `width x height`, as row-major `f64` in `0.0..=255.0`.
///
/// Each output pixel is the mean of the source area it covers, with fractional weights for
/// partly covered source pixels; the weights come from integer arithmetic, so the result is
/// deterministic. Upscaling degrades to nearest-neighbour with blended seams.
fn area_resize(image: &GrayImage, width: usize, height: usize) -> Vec<f64> {
    let (src_width, src_height) = (image.width() as usize, image.height() as usize);
    let columns = area_weights(src_width, width);
    let rows = area_weights(src_height, height);
    let mut horizontal = vec![0.0; src_height * width];
    for (src_row, out_row) in
        image.as_raw().chunks_exact(src_width).zip(horizontal.chunks_exact_mut(width))
    {
        for (out, weights) in out_row.iter_mut().zip(&columns) {
            *out = weights.iter().map(|&(index, weight)| weight * f64::from(src_row[index])).sum();
        }
    }
    let mut resized = vec![0.0; width * height];
    for (out_row, weights) in resized.chunks_exact_mut(width).zip(&rows) {
        for &(index, weight) in weights {
            let src_row = &horizontal[index * width..(index + 1) * width];
            for (out, &value) in out_row.iter_mut().zip(src_row) {
                *out += weight * value;
            }
        }
    }
    resized
}

/// For each of `dst_len` output cells, the covered source cells and their weights (sum 1).
///
/// Output cell `i` covers `[i * src_len, (i + 1) * src_len)` and source cell `j` covers
/// `[j * dst_len, (j + 1) * dst_len)`, both in units of `1 / (src_len * dst_len)`.
fn area_weights(src_len: usize, dst_len: usize) -> Vec<Vec<(usize, f64)>> {
    let (src, dst) = (src_len as u64, dst_len as u64);
    (0..dst)
        .map(|i| {
            let (start, end) = (i * src, (i + 1) * src);
            (start / dst..end.div_ceil(dst))
                .map(|j| {
                    let overlap = end.min((j + 1) * dst) - start.max(j * dst);
                    (j as usize, overlap as f64 / src as f64)
                })
                .collect()
        })
        .collect()
}

/// The `keep x keep` lowest-frequency coefficients (row-major, vertical frequency first) of
/// the unnormalised 2-D DCT-II of a `size x size` row-major image.
fn low_frequency_dct(pixels: &[f64], size: usize, keep: usize) -> Vec<f64> {
    let basis = dct_basis(size, keep);
    let mut row_transformed = vec![0.0; size * keep];
    for (row, out) in pixels.chunks_exact(size).zip(row_transformed.chunks_exact_mut(keep)) {
        for (value, cosines) in out.iter_mut().zip(basis.chunks_exact(size)) {
            *value = dot(row, cosines);
        }
    }
    let mut coefficients = vec![0.0; keep * keep];
    for (out_row, cosines) in coefficients.chunks_exact_mut(keep).zip(basis.chunks_exact(size)) {
        for (y, &cosine) in cosines.iter().enumerate() {
            let source = &row_transformed[y * keep..(y + 1) * keep];
            for (out, &value) in out_row.iter_mut().zip(source) {
                *out += cosine * value;
            }
        }
    }
    coefficients
}

/// `keep x size` table of DCT-II cosines: entry `(k, n)` is `cos(pi * k * (2n + 1) / 2size)`.
fn dct_basis(size: usize, keep: usize) -> Vec<f64> {
    let scale = std::f64::consts::PI / (2 * size) as f64;
    (0..keep)
        .flat_map(|k| (0..size).map(move |n| (scale * (k * (2 * n + 1)) as f64).cos()))
        .collect()
}

/// Dot product of two equally long slices.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One orthonormal Haar step: the `size / 2` square LL band of a `size x size` image, each
/// coefficient being the sum of a 2x2 block divided by 2.
fn haar_low_band(pixels: &[f64], size: usize) -> Vec<f64> {
    let half = size / 2;
    let mut band = Vec::with_capacity(half * half);
    for y in 0..half {
        let top = &pixels[2 * y * size..(2 * y + 1) * size];
        let bottom = &pixels[(2 * y + 1) * size..(2 * y + 2) * size];
        for x in 0..half {
            let sum = top[2 * x] + top[2 * x + 1] + bottom[2 * x] + bottom[2 * x + 1];
            band.push(sum / 2.0);
        }
    }
    band
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::imageops::FilterType;
    use image::Luma;
    use std::path::PathBuf;

    const KINDS: [HashKind; 4] =
        [HashKind::Average, HashKind::Difference, HashKind::Perceptual, HashKind::Wavelet];

    /// Fixture folder; `CLUSTIMAGE_FIXTURES` overrides it (e.g. for a scratch crate).
    fn fixture(name: &str) -> PathBuf {
        let dir = std::env::var_os("CLUSTIMAGE_FIXTURES").map_or_else(
            || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")),
            PathBuf::from,
        );
        dir.join("exif").join(name)
    }

    fn load_gray(name: &str) -> GrayImage {
        image::open(fixture(name)).expect("fixture decodes").to_luma8()
    }

    fn cups() -> GrayImage {
        load_gray("046_ColorfulCups_half_exif.jpg")
    }

    fn dark_hour() -> GrayImage {
        load_gray("047_DarkestHour.jpg")
    }

    fn half_size(image: &GrayImage) -> GrayImage {
        let (width, height) = (image.width() / 2, image.height() / 2);
        image::imageops::resize(image, width, height, FilterType::Triangle)
    }

    fn jpeg_q35(image: &GrayImage) -> GrayImage {
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, 35).encode_image(image).expect("jpeg encodes");
        image::load_from_memory(&bytes).expect("jpeg decodes").to_luma8()
    }

    fn brighter(image: &GrayImage) -> GrayImage {
        let mut out = image.clone();
        for pixel in out.pixels_mut() {
            pixel.0[0] = (f64::from(pixel.0[0]) * 1.25).round().min(255.0) as u8;
        }
        out
    }

    fn hash(image: &GrayImage, kind: HashKind) -> ImageHash {
        hash_image(image, kind, 8).expect("valid hash size")
    }

    #[test]
    fn identical_images_have_distance_zero() {
        let image = cups();
        for kind in KINDS {
            let a = hash(&image, kind);
            let b = hash(&image.clone(), kind);
            assert_eq!(a.hamming(&b), 0, "{kind:?}");
            assert_eq!(a, b);
        }
    }

    #[test]
    fn near_duplicates_are_close_and_unrelated_photos_far() {
        for original in [cups(), dark_hour()] {
            let copies = [half_size(&original), jpeg_q35(&original), brighter(&original)];
            for kind in KINDS {
                let reference = hash(&original, kind);
                for copy in &copies {
                    let distance = reference.hamming(&hash(copy, kind));
                    assert!(distance <= 10, "{kind:?}: near duplicate at distance {distance}");
                }
            }
        }
        for kind in KINDS {
            let distance = hash(&cups(), kind).hamming(&hash(&dark_hour(), kind));
            assert!(distance >= 16, "{kind:?}: unrelated photos at distance {distance}");
        }
    }

    #[test]
    fn bit_vector_and_hex_lengths_match() {
        let image = cups();
        for kind in KINDS {
            for hash_size in [2, 4, 8, 16, 64] {
                let hash = hash_image(&image, kind, hash_size).expect("valid size");
                let n_bits = (hash_size * hash_size) as usize;
                assert_eq!(hash.n_bits(), n_bits);
                let bits = hash.to_bits_f64();
                assert_eq!(bits.len(), n_bits);
                assert!(bits.iter().all(|&bit| bit == 0.0 || bit == 1.0));
                assert_eq!(hash.to_hex().len(), n_bits.div_ceil(4));
            }
        }
    }

    #[test]
    fn invalid_sizes_are_rejected() {
        let image = GrayImage::new(16, 16);
        for kind in KINDS {
            for hash_size in [0, 1, 65, 1000] {
                let result = hash_image(&image, kind, hash_size);
                assert!(matches!(result, Err(HashError::InvalidHashSize { .. })));
            }
        }
        let result = hash_image(&image, HashKind::Wavelet, 12);
        assert!(matches!(result, Err(HashError::WaveletSizeNotPowerOfTwo { hash_size: 12 })));
        assert!(hash_image(&image, HashKind::Perceptual, 12).is_ok());
        let empty = GrayImage::new(0, 5);
        let result = hash_image(&empty, HashKind::Average, 8);
        assert!(matches!(result, Err(HashError::EmptyImage { width: 0, height: 5 })));
    }

    #[test]
    fn tiny_and_non_square_images_work() {
        let tiny = GrayImage::from_pixel(1, 1, Luma([200]));
        let gradient = GrayImage::from_fn(37, 5, |x, y| Luma([(x * 6 + y) as u8]));
        let tall = GrayImage::from_fn(3, 101, |x, y| Luma([((x * 50 + y * 2) % 256) as u8]));
        for kind in KINDS {
            for image in [&tiny, &gradient, &tall] {
                let hash = hash_image(image, kind, 8).expect("any non-empty image hashes");
                assert_eq!(hash.n_bits(), 64);
            }
            let flat = if kind == HashKind::Perceptual { "8" } else { "0" };
            let expected = format!("{flat}000000000000000");
            assert_eq!(hash(&tiny, kind).to_hex(), expected, "{kind:?}");
        }
    }

    #[test]
    fn difference_hash_follows_horizontal_gradient() {
        let rising = GrayImage::from_fn(90, 40, |x, _| Luma([(x * 2) as u8]));
        let falling = GrayImage::from_fn(90, 40, |x, _| Luma([255 - (x * 2) as u8]));
        assert_eq!(hash(&rising, HashKind::Difference).to_hex(), "ffffffffffffffff");
        assert_eq!(hash(&falling, HashKind::Difference).to_hex(), "0000000000000000");
    }

    #[test]
    fn average_hash_of_left_bright_half_sets_left_bits() {
        let image = GrayImage::from_fn(64, 64, |x, _| Luma([if x < 32 { 250 } else { 10 }]));
        let hash = hash(&image, HashKind::Average);
        assert_eq!(hash.to_hex(), "f0f0f0f0f0f0f0f0");
        let bits = hash.to_bits_f64();
        assert_eq!(&bits[..8], &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn hex_pads_sizes_not_multiple_of_four() {
        let hash = ImageHash::from_bits(
            [true, false, false, false, false, false, false, false, true].into_iter(),
        );
        assert_eq!(hash.n_bits(), 9);
        assert_eq!(hash.to_hex(), "101");
    }

    #[test]
    fn hamming_counts_differences_across_words() {
        let a = ImageHash::from_bits((0..100).map(|i| i % 3 == 0));
        let b = ImageHash::from_bits((0..100).map(|i| i % 3 == 0 || i >= 90));
        assert_eq!(a.hamming(&b), 6);
        assert_eq!(b.hamming(&a), 6);
    }

    #[test]
    fn area_resize_averages_exactly() {
        let image = GrayImage::from_fn(3, 1, |x, _| Luma([[0, 90, 180][x as usize]]));
        assert_eq!(area_resize(&image, 1, 1), vec![90.0]);
        let halves = area_resize(&image, 2, 1);
        assert!((halves[0] - 30.0).abs() < 1e-9 && (halves[1] - 150.0).abs() < 1e-9);
        let up = area_resize(&GrayImage::from_pixel(1, 1, Luma([7])), 4, 3);
        assert!(up.iter().all(|&value| (value - 7.0).abs() < 1e-9));
    }

    #[test]
    fn hashes_survive_serde_round_trip() {
        let hash = hash(&dark_hour(), HashKind::Perceptual);
        let json = serde_json::to_string(&hash).expect("serializes");
        let back: ImageHash = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, hash);
    }
}
