//! Duplicates: each named transformation of a real photo is found as a duplicate, the
//! same bytes as exact, unrelated photos are not matched; and `clustimage dups` end to
//! end (JSON, table, keeper, bad files).

use std::fs;
use std::path::{Path, PathBuf};

use clustimage::dedup::{compute_signature, DuplicateIndex, MatchKind, MatchParams, Signature};
use clustimage::imaging::{load_file, LoadLimits, Preprocessing};
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, GenericImageView};

use crate::common::{clustimage, clustimage_ok, fixture};

/// Two real photos of different kinds (a textured wallpaper and a dark photo).
const PHOTOS: [&str; 2] = ["photos/030_Garden_half.jpg", "exif/047_DarkestHour.jpg"];

fn signature_of(path: &Path) -> ([u8; 32], Signature) {
    let loaded = load_file(path, &LoadLimits::default(), &Preprocessing::default()).unwrap();
    let content = *blake3::hash(&fs::read(path).unwrap()).as_bytes();
    (content, compute_signature(&loaded.gray).unwrap())
}

fn save_jpeg(image: &DynamicImage, path: &Path, quality: u8) {
    let mut bytes = Vec::new();
    let rgb = image.to_rgb8();
    JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(&rgb).unwrap();
    fs::write(path, bytes).unwrap();
}

fn scaled(image: &DynamicImage, factor: f32) -> DynamicImage {
    let mut out = image.to_rgb8();
    for pixel in out.pixels_mut() {
        for channel in &mut pixel.0 {
            *channel = (f32::from(*channel) * factor).round().min(255.0) as u8;
        }
    }
    DynamicImage::ImageRgb8(out)
}

fn cropped(image: &DynamicImage, share: f64) -> DynamicImage {
    let (width, height) = image.dimensions();
    let (cut_x, cut_y) = ((f64::from(width) * share) as u32, (f64::from(height) * share) as u32);
    image.crop_imm(cut_x, cut_y, width - 2 * cut_x, height - 2 * cut_y)
}

/// Writes the transformed copy named `transform` of `original` into `folder`.
fn write_copy(original: &DynamicImage, transform: &str, folder: &Path) -> PathBuf {
    let path = folder.join(format!("copy-{transform}.jpg"));
    match transform {
        "half" => save_jpeg(
            &original.resize(
                original.width() / 2,
                original.height() / 2,
                image::imageops::FilterType::Triangle,
            ),
            &path,
            90,
        ),
        "jpeg-q15" => save_jpeg(original, &path, 15),
        "gray" => {
            let path = folder.join("copy-gray.png");
            original.to_luma8().save(&path).unwrap();
            return path;
        }
        "brighter" => save_jpeg(&scaled(original, 1.3), &path, 90),
        "darker" => save_jpeg(&scaled(original, 0.7), &path, 90),
        "crop-10" => save_jpeg(&cropped(original, 0.1), &path, 90),
        "crop-5" => save_jpeg(&cropped(original, 0.05), &path, 90),
        "mirror" => save_jpeg(&original.fliph(), &path, 90),
        "rotate-90" => save_jpeg(&original.rotate90(), &path, 90),
        "rotate-180" => save_jpeg(&original.rotate180(), &path, 90),
        "rotate-270" => save_jpeg(&original.rotate270(), &path, 90),
        "exif-orientation" => {
            // Pixels turned a quarter counter-clockwise, tagged "turn 90 degrees clockwise
            // to display" (orientation 6): it shows as the original.
            let mut bytes = Vec::new();
            let turned = original.rotate270().to_rgb8();
            JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&turned).unwrap();
            fs::write(&path, with_orientation(&bytes, 6)).unwrap();
        }
        other => panic!("unknown transform {other}"),
    }
    path
}

/// A JPEG with an APP1 EXIF segment holding only an orientation tag, after its SOI.
fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD right after the header
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // one value
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]); // padding of the 4-byte value field
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend_from_slice(&tiff);
    let length = (segment.len() + 2) as u16;
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

const TRANSFORMS: [&str; 12] = [
    "half",
    "jpeg-q15",
    "gray",
    "brighter",
    "darker",
    "crop-10",
    "crop-5",
    "mirror",
    "rotate-90",
    "rotate-180",
    "rotate-270",
    "exif-orientation",
];

/// The kind and distance of the match of `copy` against `original`, each way.
fn matches(original: &Path, copy: &Path) -> Vec<(MatchKind, u32)> {
    let (original_content, original_signature) = signature_of(original);
    let (copy_content, copy_signature) = signature_of(copy);
    let mut found = Vec::new();
    for (held, query) in [
        ((original_content, original_signature), (copy_content, copy_signature)),
        ((copy_content, copy_signature), (original_content, original_signature)),
    ] {
        let mut index = DuplicateIndex::new(MatchParams::default());
        index.insert(0u32, held.0, &held.1);
        let hits = index.query(&query.0, &query.1);
        found.extend(hits.iter().map(|hit| (hit.kind, hit.distance)));
    }
    found
}

#[test]
fn every_transformation_of_a_photo_is_a_duplicate_either_way() {
    let folder = tempfile::tempdir().unwrap();
    for photo in PHOTOS {
        let original = fixture(photo);
        let image = image::open(&original).unwrap();
        for transform in TRANSFORMS {
            let copy = write_copy(&image, transform, folder.path());
            let found = matches(&original, &copy);
            assert_eq!(found.len(), 2, "{photo} {transform}: {found:?}");
            for (kind, distance) in found {
                assert_eq!(kind, MatchKind::Duplicate, "{photo} {transform} at {distance}");
            }
        }
    }
}

#[test]
fn geometric_invariance_can_be_turned_off() {
    let folder = tempfile::tempdir().unwrap();
    let original = fixture(PHOTOS[0]);
    let copy = write_copy(&image::open(&original).unwrap(), "rotate-90", folder.path());
    let (held_content, held) = signature_of(&original);
    let (query_content, query) = signature_of(&copy);
    let mut index = DuplicateIndex::new(MatchParams::new(10, 10, false).unwrap());
    index.insert(0u32, held_content, &held);
    assert!(index.query(&query_content, &query).is_empty());
}

#[test]
fn unrelated_photos_are_not_matched() {
    let photos: Vec<PathBuf> = fs::read_dir(fixture("photos"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .chain(fs::read_dir(fixture("exif")).unwrap().map(|entry| entry.unwrap().path()))
        .collect();
    let picture = |path: &Path| {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        name[..3].to_string() // 030_Garden_half and 030_Garden_q35 show one picture
    };
    let mut index: DuplicateIndex<usize> = DuplicateIndex::new(MatchParams::default());
    let signatures: Vec<_> = photos.iter().map(|path| signature_of(path)).collect();
    for (key, (content, signature)) in signatures.iter().enumerate() {
        for hit in index.query(content, signature) {
            let (a, b) = (photos[hit.key].as_path(), photos[key].as_path());
            assert_eq!(picture(a), picture(b), "{a:?} matches {b:?}: {hit:?}");
        }
        index.insert(key, *content, signature);
    }
}

fn dups_json(args: &[&str]) -> serde_json::Value {
    let mut full = vec!["dups", "--json"];
    full.extend_from_slice(args);
    serde_json::from_str(&clustimage_ok(&full)).unwrap()
}

fn group_names(group: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = group["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|path| Path::new(path.as_str().unwrap()).file_name().unwrap().to_string_lossy().into())
        .collect();
    names.sort();
    names
}

#[test]
fn the_fixture_photos_give_their_four_pairs_with_the_larger_picture_kept() {
    let result = dups_json(&[fixture("photos").to_str().unwrap()]);
    assert_eq!(result["n_images"], 12);
    let groups = result["groups"].as_array().unwrap();
    let names: Vec<Vec<String>> = groups.iter().map(group_names).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for (group, members) in groups.iter().zip(&names) {
        assert_eq!(members.len(), 2, "{members:?}");
        assert_eq!(members[0][..3], members[1][..3], "{members:?}");
        assert_eq!(group["kind"], "duplicate");
        // The q35 copies have twice the side of the half-size ones: more pixels wins.
        let keeper = group["keeper"].as_str().unwrap();
        assert!(keeper.ends_with("_q35.jpg"), "{keeper}");
        assert_eq!(group["paths"][0], group["keeper"]);
        let pair = &group["pairs"][0];
        assert!(pair["distance"].as_u64().unwrap() <= 10, "{pair}");
    }
}

#[test]
fn the_same_bytes_are_exact_and_bad_files_are_skipped_by_name() {
    let folder = tempfile::tempdir().unwrap();
    let original = fixture(PHOTOS[1]);
    fs::copy(&original, folder.path().join("a.jpg")).unwrap();
    fs::copy(&original, folder.path().join("b.jpg")).unwrap();
    let image = image::open(&original).unwrap();
    write_copy(&image, "mirror", folder.path());
    fs::write(folder.path().join("broken.jpg"), b"not a picture").unwrap();
    fs::copy(fixture(PHOTOS[0]), folder.path().join("other.jpg")).unwrap();
    let dir = folder.path().to_str().unwrap();

    let exact = dups_json(&[dir, "--kind", "exact"]);
    let groups = exact["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(group_names(&groups[0]), ["a.jpg", "b.jpg"]);
    assert_eq!(groups[0]["kind"], "exact");
    assert_eq!(groups[0]["max_distance"], 0);
    assert_eq!(exact["n_skipped"], 1);
    assert!(exact["skipped"][0]["reason"].as_str().unwrap().contains("broken.jpg"));

    let duplicates = dups_json(&[dir]);
    let groups = duplicates["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(group_names(&groups[0]), ["a.jpg", "b.jpg", "copy-mirror.jpg"]);
    assert_eq!(groups[0]["kind"], "duplicate");
    // The three have the same pixels, so the keeper is the largest file.
    let keeper = groups[0]["keeper"].as_str().unwrap();
    let size = |name: &str| fs::metadata(folder.path().join(name)).unwrap().len();
    let largest = ["a.jpg", "b.jpg", "copy-mirror.jpg"].map(size).into_iter().max().unwrap();
    assert_eq!(fs::metadata(keeper).unwrap().len(), largest, "keeper {keeper}");

    let output = clustimage(&["dups", dir]);
    assert!(output.status.success());
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("duplicate") && table.contains("copy-mirror.jpg"), "{table}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.jpg"), "{stderr}");
}

#[test]
fn a_bad_kind_or_threshold_names_its_option() {
    let dir = fixture("photos");
    let dir = dir.to_str().unwrap();
    let output = clustimage(&["dups", dir, "--kind", "twins"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--kind"));
    let output = clustimage(&["dups", dir, "--duplicate-max-distance", "40"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("duplicate-max-distance"));
}

#[test]
fn the_dups_table_of_a_configuration_file_is_read() {
    let folder = tempfile::tempdir().unwrap();
    let config = folder.path().join("c.toml");
    fs::write(&config, "[dups]\nkind = \"exact\"\nduplicate-max-distance = 4\n").unwrap();
    let dir = fixture("photos");
    let result = dups_json(&[dir.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert_eq!(result["kind"], "exact");
    assert_eq!(result["duplicate_max_distance"], 4);
    assert_eq!(result["groups"].as_array().unwrap().len(), 0);
    fs::write(&config, "[dups]\nkinds = \"exact\"\n").unwrap();
    let output = clustimage(&["dups", dir.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("kinds"));
}
