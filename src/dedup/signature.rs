//! The per-image signature that duplicates are found by: the 64-bit DCT perceptual hash of
//! the oriented picture under each of its eight dihedral variants (four rotations by a
//! quarter turn, each optionally mirrored), and the same of its central part, with
//! [`CROP_SHARE`] cut from every side.
//!
//! Rotations and mirrors are handled by hashing the transformed thumbnail rather than by
//! an invariant hash, so a match says which variant it was. A crop is handled by the
//! central hash: a copy cropped by about `CROP_SHARE` per side looks like the original's
//! centre, and the original's centre like the copy as a whole. Crops much larger than
//! that, or off-centre, are not found. Brightness, gray conversion and recompression are
//! absorbed by the DCT hash itself (each bit compares a frequency with the median of the
//! others). The signature knows nothing of files: it takes the thumbnail the loader made.

use image::imageops;
use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::features::hash::{hash_image, HashError, HashKind};

/// Share of the thumbnail's width and height cut from each side for the central hash.
pub const CROP_SHARE: f64 = 0.1;

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

/// What an image is compared by. 136 bytes; everything the index needs.
///
/// `full[v]` and `center[v]` are the perceptual hashes of the picture and of its central
/// part under `Variant::ALL[v]`; `full[0]` is the picture as oriented by its EXIF tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature {
    pub full: [u64; N_VARIANTS],
    pub center: [u64; N_VARIANTS],
}

/// Computes the signature of a gray thumbnail (already oriented; any size of at least
/// 10x10 pixels, 128x128 as the loader makes it by default).
///
/// This is the function the daemon's ingest calls on `LoadedImage::gray` to store the
/// signature with each content.
pub fn compute_signature(thumbnail: &GrayImage) -> Result<Signature, HashError> {
    let center = central_part(thumbnail);
    let mut signature = Signature { full: [0; N_VARIANTS], center: [0; N_VARIANTS] };
    for (variant_idx, variant) in Variant::ALL.into_iter().enumerate() {
        signature.full[variant_idx] = perceptual_hash(&variant.apply(thumbnail))?;
        signature.center[variant_idx] = perceptual_hash(&variant.apply(&center))?;
    }
    Ok(signature)
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
    fn variants_compose_as_named() {
        let image = pattern();
        let flipped = imageops::flip_vertical(&image);
        assert_eq!(Variant::MirrorRotate180.apply(&image), flipped);
        assert_eq!(Variant::Rotate180.apply(&image), imageops::rotate180(&image));
    }
}
