//! The per-image signature that duplicates are found by: the 64-bit DCT perceptual hash of
//! the oriented picture under each of its eight dihedral variants (four rotations by a
//! quarter turn, each optionally mirrored), and the same of its central part, with
//! [`CROP_SHARE`] cut from every side.
//!
//! Rotations and mirrors are handled by hashing the transformed thumbnail rather than by
//! an invariant hash, so a match says which variant it was. A crop is handled by the
//! central hash: a copy cropped by about `CROP_SHARE` per side looks like the original's
//! centre, and the original's centre like the copy as a whole. Crops of 5 to 10 % per
//! side are found; much larger or off-centre ones are not. Brightness, gray conversion
//! and recompression are absorbed by the DCT hash itself (each bit compares a frequency
//! with the median of the others). The signature knows nothing of files: it takes the
//! thumbnail the loader made.
//!
//! A uniform picture (a plain background, a blank page, a transparent PNG flattened to
//! white) has no structure for the hash to describe: its DCT coefficients are zero or
//! noise, and its hash says nothing. The signature marks such a picture, and such a
//! centre, as flat (gray levels spread by less than [`FLAT_SPREAD`]) and keeps its tone,
//! so that flat pictures are compared by tone alone and never by hash.
//!
//! A hash match is a test of 64 bits, made up to 24 times per pair (three pairings of
//! picture and centre under eight variants), so chance matches between unrelated
//! pictures do happen, mostly between pictures with little texture. Each candidate is
//! therefore confirmed by a second, independent test: the correlation of the two parts'
//! [`Grid`]s (8x8 box averages) under the variant that matched. The correlation ignores
//! brightness and contrast, as the hash does.

use image::imageops;
use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::features::hash::{hash_image, HashError, HashKind};

/// Share of the thumbnail's width and height cut from each side for the central hash.
///
/// Between the two crops a copy is expected to have: a copy cut by 5 % per side is 2 %
/// larger than this centre, one cut by 10 % is 10 % smaller, and both are within the
/// hash's tolerance. Measured on near duplicates cut by 5 and 10 %: at 0.06 both are
/// found (recall 1.0 and 0.99), at 0.1 the 5 % crops only at 0.83.
pub const CROP_SHARE: f64 = 0.06;

/// Standard deviation of gray levels (of 255) below which a picture is flat.
pub const FLAT_SPREAD: f64 = 2.0;

/// The side of a [`Grid`].
pub const GRID_SIDE: usize = 8;

/// The number of dihedral variants: four rotations, each with and without a mirror.
pub const N_VARIANTS: usize = 8;

/// One of the eight ways of turning and mirroring a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    Identity,
    Rotate90,
    Rotate180,
    Rotate270,
    Mirror,
    MirrorRotate90,
    MirrorRotate180,
    MirrorRotate270,
}

impl Variant {
    /// Every variant, in the order of [`Signature`]'s arrays; `Identity` first.
    pub const ALL: [Variant; N_VARIANTS] = [
        Variant::Identity,
        Variant::Rotate90,
        Variant::Rotate180,
        Variant::Rotate270,
        Variant::Mirror,
        Variant::MirrorRotate90,
        Variant::MirrorRotate180,
        Variant::MirrorRotate270,
    ];

    /// The name the command line and JSON use.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Identity => "identity",
            Variant::Rotate90 => "rotate-90",
            Variant::Rotate180 => "rotate-180",
            Variant::Rotate270 => "rotate-270",
            Variant::Mirror => "mirror",
            Variant::MirrorRotate90 => "mirror-rotate-90",
            Variant::MirrorRotate180 => "mirror-rotate-180",
            Variant::MirrorRotate270 => "mirror-rotate-270",
        }
    }

    /// The picture turned clockwise by the rotation, after mirroring left-right if asked.
    pub fn apply(self, image: &GrayImage) -> GrayImage {
        let mirrored;
        let source = match self {
            Variant::Identity | Variant::Rotate90 | Variant::Rotate180 | Variant::Rotate270 => {
                image
            }
            _ => {
                mirrored = imageops::flip_horizontal(image);
                &mirrored
            }
        };
        match self {
            Variant::Identity | Variant::Mirror => source.clone(),
            Variant::Rotate90 | Variant::MirrorRotate90 => imageops::rotate90(source),
            Variant::Rotate180 | Variant::MirrorRotate180 => imageops::rotate180(source),
            Variant::Rotate270 | Variant::MirrorRotate270 => imageops::rotate270(source),
        }
    }
}

/// What an image is compared by. 260 bytes; everything the index needs.
///
/// `full[v]` and `center[v]` are the perceptual hashes of the picture and of its central
/// part under `Variant::ALL[v]`; `full[0]` is the picture as oriented by its EXIF tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature {
    pub full: [u64; N_VARIANTS],
    pub center: [u64; N_VARIANTS],
    /// The mean gray level of the picture, 0-255.
    pub tone: u8,
    /// Whether the picture is flat: its hashes carry nothing and only `tone` counts.
    pub flat: bool,
    /// Whether its centre is flat: `center` carries nothing.
    pub center_flat: bool,
    /// The picture and its centre, as oriented, in 8x8 gray levels.
    pub grid: Grid,
    pub center_grid: Grid,
}

/// A part of a picture reduced to `GRID_SIDE x GRID_SIDE` box averages, row by row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grid(pub [[u8; GRID_SIDE]; GRID_SIDE]);

impl Grid {
    /// The box averages of a gray image (of at least one pixel).
    pub fn of(image: &GrayImage) -> Grid {
        let (width, height) = (image.width() as usize, image.height() as usize);
        let mut cells = [[0u8; GRID_SIDE]; GRID_SIDE];
        for (cell_idx, cell) in cells.as_flattened_mut().iter_mut().enumerate() {
            let (row, column) = (cell_idx / GRID_SIDE, cell_idx % GRID_SIDE);
            let span = |idx: usize, side: usize| {
                let start = idx * side / GRID_SIDE;
                let end = ((idx + 1) * side / GRID_SIDE).max(start + 1).min(side);
                start.min(side - 1)..end
            };
            let (rows, columns) = (span(row, height), span(column, width));
            let (mut sum, mut count) = (0u32, 0u32);
            for y in rows {
                for x in columns.clone() {
                    sum += u32::from(image.get_pixel(x as u32, y as u32).0[0]);
                    count += 1;
                }
            }
            *cell = ((sum + count / 2) / count) as u8;
        }
        Grid(cells)
    }

    /// The grid of the picture transformed by `variant` (as [`Variant::apply`] would).
    pub fn apply(&self, variant: Variant) -> Grid {
        let side = GRID_SIDE as u32;
        let image =
            GrayImage::from_raw(side, side, self.0.as_flattened().to_vec()).expect("a full grid");
        let mut cells = [[0u8; GRID_SIDE]; GRID_SIDE];
        cells.as_flattened_mut().copy_from_slice(variant.apply(&image).as_raw());
        Grid(cells)
    }

    /// Pearson's correlation of the cells, in [-1, 1]; 0 when either grid is uniform.
    pub fn correlation(&self, other: &Grid) -> f32 {
        let n = (GRID_SIDE * GRID_SIDE) as f32;
        let mean =
            |grid: &Grid| grid.0.as_flattened().iter().map(|&v| f32::from(v)).sum::<f32>() / n;
        let (mean_a, mean_b) = (mean(self), mean(other));
        let (mut cross, mut square_a, mut square_b) = (0f32, 0f32, 0f32);
        for (&a, &b) in self.0.as_flattened().iter().zip(other.0.as_flattened()) {
            let (a, b) = (f32::from(a) - mean_a, f32::from(b) - mean_b);
            cross += a * b;
            square_a += a * a;
            square_b += b * b;
        }
        if square_a < 1e-3 || square_b < 1e-3 {
            return 0.0;
        }
        cross / (square_a * square_b).sqrt()
    }
}

/// Computes the signature of a gray thumbnail (already oriented; any size of at least
/// 10x10 pixels, 128x128 as the loader makes it by default).
///
/// This is the function the daemon's ingest calls on `LoadedImage::gray` to store the
/// signature with each content.
pub fn compute_signature(thumbnail: &GrayImage) -> Result<Signature, HashError> {
    let center = central_part(thumbnail);
    let (tone, spread) = tone_and_spread(thumbnail);
    let (_, center_spread) = tone_and_spread(&center);
    let mut signature = Signature {
        full: [0; N_VARIANTS],
        center: [0; N_VARIANTS],
        tone: tone.round().clamp(0.0, 255.0) as u8,
        flat: spread < FLAT_SPREAD,
        center_flat: center_spread < FLAT_SPREAD,
        grid: Grid::of(thumbnail),
        center_grid: Grid::of(&center),
    };
    for (variant_idx, variant) in Variant::ALL.into_iter().enumerate() {
        signature.full[variant_idx] = perceptual_hash(&variant.apply(thumbnail))?;
        signature.center[variant_idx] = perceptual_hash(&variant.apply(&center))?;
    }
    Ok(signature)
}

/// The mean and standard deviation of the gray levels (0 and 0 for an empty image).
fn tone_and_spread(image: &GrayImage) -> (f64, f64) {
    let n_pixels = image.as_raw().len();
    if n_pixels == 0 {
        return (0.0, 0.0);
    }
    let (sum, sum_of_squares) = image.as_raw().iter().fold((0u64, 0u64), |(sum, squares), &v| {
        (sum + u64::from(v), squares + u64::from(v) * u64::from(v))
    });
    let mean = sum as f64 / n_pixels as f64;
    let variance = (sum_of_squares as f64 / n_pixels as f64 - mean * mean).max(0.0);
    (mean, variance.sqrt())
}

/// The thumbnail without [`CROP_SHARE`] of its width and height on each side.
fn central_part(image: &GrayImage) -> GrayImage {
    let cut = |side: u32| (f64::from(side) * CROP_SHARE).round() as u32;
    let (cut_x, cut_y) = (cut(image.width()), cut(image.height()));
    let width = image.width().saturating_sub(2 * cut_x).max(1);
    let height = image.height().saturating_sub(2 * cut_y).max(1);
    imageops::crop_imm(image, cut_x, cut_y, width, height).to_image()
}

fn perceptual_hash(image: &GrayImage) -> Result<u64, HashError> {
    let hash = hash_image(image, HashKind::Perceptual, 8)?;
    Ok(hash.as_u64().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn pattern() -> GrayImage {
        GrayImage::from_fn(96, 64, |x, y| Luma([((x * 7 + y * y / 3) % 251) as u8]))
    }

    #[test]
    fn a_turned_picture_has_the_turned_variants() {
        let original = compute_signature(&pattern()).unwrap();
        let turned = compute_signature(&imageops::rotate90(&pattern())).unwrap();
        // The original turned by 90 degrees is the turned picture as it is.
        assert_eq!(original.full[1], turned.full[0]);
        assert_eq!(original.center[1], turned.center[0]);
    }

    #[test]
    fn a_mirrored_picture_has_the_mirrored_variant() {
        let original = compute_signature(&pattern()).unwrap();
        let mirrored = compute_signature(&imageops::flip_horizontal(&pattern())).unwrap();
        assert_eq!(original.full[4], mirrored.full[0]);
    }

    #[test]
    fn uniform_pictures_and_centres_are_flat() {
        let plain = GrayImage::from_pixel(64, 48, Luma([200]));
        let signature = compute_signature(&plain).unwrap();
        assert!(signature.flat && signature.center_flat);
        assert_eq!(signature.tone, 200);
        // A frame around a plain middle: the picture has structure, its centre none.
        let framed = GrayImage::from_fn(100, 100, |x, y| {
            let edge = x < 5 || y < 5 || x >= 95 || y >= 95;
            Luma([if edge { 0 } else { 255 }])
        });
        let signature = compute_signature(&framed).unwrap();
        assert!(!signature.flat && signature.center_flat);
        assert!(!compute_signature(&pattern()).unwrap().flat);
    }

    #[test]
    fn grids_turn_with_their_picture_and_ignore_brightness() {
        let original = compute_signature(&pattern()).unwrap();
        let turned = compute_signature(&imageops::rotate90(&pattern())).unwrap();
        let mirrored = compute_signature(&imageops::flip_horizontal(&pattern())).unwrap();
        assert!(original.grid.apply(Variant::Rotate90).correlation(&turned.grid) > 0.99);
        assert!(original.grid.apply(Variant::Mirror).correlation(&mirrored.grid) > 0.99);
        let brighter = GrayImage::from_fn(96, 64, |x, y| {
            Luma([(pattern().get_pixel(x, y).0[0] as f32 * 0.5 + 60.0) as u8])
        });
        let brighter = compute_signature(&brighter).unwrap();
        assert!(original.grid.correlation(&brighter.grid) > 0.99);
        let plain = Grid([[7; GRID_SIDE]; GRID_SIDE]);
        assert_eq!(plain.correlation(&original.grid), 0.0);
    }

    #[test]
    fn variants_compose_as_named() {
        let image = pattern();
        let flipped = imageops::flip_vertical(&image);
        assert_eq!(Variant::MirrorRotate180.apply(&image), flipped);
        assert_eq!(Variant::Rotate180.apply(&image), imageops::rotate180(&image));
    }
}
