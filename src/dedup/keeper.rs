//! Which copy of a group to keep: the suggested keeper.
//!
//! The policy compares, in order, and the first difference decides:
//! 1. more pixels (width times height, after EXIF orientation);
//! 2. a larger file (less compressed);
//! 3. a better format: `tiff`, `png` (lossless), `jpeg`, `webp` (lossy or lossless cannot
//!    be told apart here), `bmp`, `gif` (a palette), then anything else;
//! 4. more EXIF fields (capture time, GPS, camera, ...);
//! 5. the older file (earlier modification time; unknown times lose);
//! 6. the path, alphabetically, so that the choice is always the same.
//!
//! Only a suggestion: nothing here moves or deletes a file.

use std::cmp::Ordering;
use std::path::PathBuf;

/// What the policy looks at for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    pub path: PathBuf,
    pub width_px: u32,
    pub height_px: u32,
    pub size_bytes: u64,
    /// The format found in the bytes (`jpeg`, `png`, ...), lowercase.
    pub format: Option<String>,
    /// Number of EXIF fields present (see `ExifFields::field_count`).
    pub n_exif_fields: usize,
    /// Modification time in seconds since the Unix epoch, when known.
    pub modified_unix_s: Option<i64>,
}

/// The index in `files` of the copy to keep; `None` for an empty slice.
pub fn choose_keeper(files: &[FileFacts]) -> Option<usize> {
    (0..files.len()).min_by(|&a, &b| compare(&files[a], &files[b]))
}

/// `Less` when `a` is the better copy to keep.
pub fn compare(a: &FileFacts, b: &FileFacts) -> Ordering {
    let pixels = |f: &FileFacts| u64::from(f.width_px) * u64::from(f.height_px);
    let age = |f: &FileFacts| f.modified_unix_s.unwrap_or(i64::MAX);
    pixels(b)
        .cmp(&pixels(a))
        .then(b.size_bytes.cmp(&a.size_bytes))
        .then(format_rank(a.format.as_deref()).cmp(&format_rank(b.format.as_deref())))
        .then(b.n_exif_fields.cmp(&a.n_exif_fields))
        .then(age(a).cmp(&age(b)))
        .then(a.path.cmp(&b.path))
}

/// Lower is better.
fn format_rank(format: Option<&str>) -> u8 {
    match format {
        Some("tiff" | "tif") => 0,
        Some("png") => 1,
        Some("jpeg" | "jpg") => 2,
        Some("webp") => 3,
        Some("bmp") => 4,
        Some("gif") => 5,
        _ => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(name: &str) -> FileFacts {
        FileFacts {
            path: PathBuf::from(name),
            width_px: 1000,
            height_px: 800,
            size_bytes: 100_000,
            format: Some("jpeg".to_string()),
            n_exif_fields: 3,
            modified_unix_s: Some(1_000),
        }
    }

    fn keeper(files: &[FileFacts]) -> &str {
        files[choose_keeper(files).unwrap()].path.to_str().unwrap()
    }

    #[test]
    fn each_rule_decides_when_the_earlier_ones_tie() {
        let base = facts("a");
        let bigger = FileFacts { width_px: 2000, size_bytes: 1, ..facts("pixels") };
        assert_eq!(keeper(&[base.clone(), bigger]), "pixels");
        let larger = FileFacts { size_bytes: 200_000, format: None, ..facts("bytes") };
        assert_eq!(keeper(&[base.clone(), larger]), "bytes");
        let png = FileFacts { format: Some("png".into()), n_exif_fields: 0, ..facts("png") };
        assert_eq!(keeper(&[base.clone(), png]), "png");
        let exif = FileFacts { n_exif_fields: 5, modified_unix_s: Some(9_999), ..facts("exif") };
        assert_eq!(keeper(&[base.clone(), exif]), "exif");
        let older = FileFacts { modified_unix_s: Some(10), ..facts("older") };
        assert_eq!(keeper(&[base.clone(), older]), "older");
        let unknown_age = FileFacts { modified_unix_s: None, ..facts("0-unknown") };
        assert_eq!(keeper(&[base.clone(), unknown_age]), "a");
        assert_eq!(keeper(&[facts("b"), base]), "a");
    }

    #[test]
    fn rotated_copies_compare_by_pixel_count() {
        let landscape = facts("landscape");
        let portrait = FileFacts { width_px: 800, height_px: 1000, ..facts("portrait") };
        assert_eq!(keeper(&[portrait, landscape]), "landscape");
    }

    #[test]
    fn no_files_no_keeper() {
        assert_eq!(choose_keeper(&[]), None);
    }
}
