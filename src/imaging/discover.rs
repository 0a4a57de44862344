//! Finding the image files under a set of root folders.
//!
//! Extensions are matched case-insensitively (`.JPG` counts). Symbolic links are not
//! followed, so a link loop cannot hang the walk. Entries that cannot be listed are
//! reported, not fatal. Results are sorted so that runs are reproducible.

use std::path::{Path, PathBuf};

use super::ImagingError;

/// The file extensions read as images, lowercase.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "tiff", "tif", "bmp", "gif"];

/// What a walk over the roots found.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Image files, sorted, without duplicates.
    pub images: Vec<PathBuf>,
    /// Entries that could not be listed, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// True when the path's extension is one of [`IMAGE_EXTENSIONS`], in any case.
pub fn is_image_path(path: &Path) -> bool {
    let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
        return false;
    };
    IMAGE_EXTENSIONS.iter().any(|known| known.eq_ignore_ascii_case(extension))
}

/// Walks every root recursively and collects the image files.
///
/// A root may also be a single image file. A root that does not exist is an error,
/// because silently clustering nothing would hide a typo.
pub fn find_images(roots: &[PathBuf]) -> Result<Discovery, ImagingError> {
    let mut discovery = Discovery::default();
    for root in roots {
        walk_root(root, &mut discovery)?;
    }
    discovery.images.sort();
    discovery.images.dedup();
    Ok(discovery)
}

fn walk_root(root: &Path, discovery: &mut Discovery) -> Result<(), ImagingError> {
    if root.is_file() {
        discovery.images.push(root.to_path_buf());
        return Ok(());
    }
    if !root.is_dir() {
        return Err(ImagingError::MissingRoot { path: root.to_path_buf() });
    }
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        match entry {
            Ok(entry) if entry.file_type().is_file() && is_image_path(entry.path()) => {
                discovery.images.push(entry.into_path());
            }
            Ok(_) => {}
            Err(error) => {
                let path = error.path().unwrap_or(root).to_path_buf();
                discovery.unreadable.push((path, error.to_string()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_matching_ignores_case() {
        assert!(is_image_path(Path::new("a/b/IMG_0001.JPG")));
        assert!(is_image_path(Path::new("scan.TiF")));
        assert!(!is_image_path(Path::new("notes.txt")));
        assert!(!is_image_path(Path::new("jpg")));
    }

    #[test]
    fn walk_is_recursive_sorted_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        for name in ["b/c/z.PNG", "a.jpg", "b/readme.md", "b/y.Jpeg"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let found = find_images(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> =
            found.images.iter().map(|p| p.strip_prefix(dir.path()).unwrap()).collect();
        assert_eq!(names, [Path::new("a.jpg"), Path::new("b/c/z.PNG"), Path::new("b/y.Jpeg")]);
    }

    #[test]
    fn missing_root_is_an_error_naming_it() {
        let error = find_images(&[PathBuf::from("/no/such/folder")]).unwrap_err();
        assert!(error.to_string().contains("/no/such/folder"));
    }
}
