//! Paths to the fixtures, running the binary, and the adjusted Rand index.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The fixture photos copied into a fresh temporary folder, which the caller may change.
pub fn photo_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("photos")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// The picture a fixture photo shows: its name without the variant suffix.
pub fn picture_of(path: &Path) -> String {
    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
    stem.trim_end_matches("_half").trim_end_matches("_q35").to_string()
}

/// Digit labels of the digits fixture, by file name.
pub fn digit_labels() -> HashMap<String, usize> {
    let text = std::fs::read_to_string(fixture("digits/labels.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let (file, label) = line.split_once(',').unwrap();
            (file.to_string(), label.parse().unwrap())
        })
        .collect()
}

pub fn clustimage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clustimage")).args(args).output().unwrap()
}

/// Runs the binary, asserts success, and returns standard output.
pub fn clustimage_ok(args: &[&str]) -> String {
    let output = clustimage(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "clustimage {args:?} failed: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `cluster` with `--out -` and parses the JSON result.
pub fn cluster_json(args: &[&str]) -> serde_json::Value {
    let mut full = vec!["cluster", "--out", "-"];
    full.extend_from_slice(args);
    serde_json::from_str(&clustimage_ok(&full)).unwrap()
}

/// Adjusted Rand index of two labelings of the same items.
pub fn adjusted_rand_index<A: Eq + std::hash::Hash, B: Eq + std::hash::Hash>(
    a: &[A],
    b: &[B],
) -> f64 {
    assert_eq!(a.len(), b.len());
    let pairs = |n: f64| n * (n - 1.0) / 2.0;
    let mut table: HashMap<(&A, &B), f64> = HashMap::new();
    let mut rows: HashMap<&A, f64> = HashMap::new();
    let mut cols: HashMap<&B, f64> = HashMap::new();
    for (x, y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *rows.entry(x).or_default() += 1.0;
        *cols.entry(y).or_default() += 1.0;
    }
    let index: f64 = table.values().map(|&n| pairs(n)).sum();
    let row_sum: f64 = rows.values().map(|&n| pairs(n)).sum();
    let col_sum: f64 = cols.values().map(|&n| pairs(n)).sum();
    let expected = row_sum * col_sum / pairs(a.len() as f64);
    let maximum = (row_sum + col_sum) / 2.0;
    if maximum == expected {
        return 1.0;
    }
    (index - expected) / (maximum - expected)
}

#[test]
fn adjusted_rand_index_is_one_for_equal_partitions_and_near_zero_for_unrelated() {
    assert_eq!(adjusted_rand_index(&[0, 0, 1, 1], &["a", "a", "b", "b"]), 1.0);
    let a: Vec<usize> = (0..1000).map(|i| i % 2).collect();
    let b: Vec<usize> = (0..1000).map(|i| (i / 2) % 2).collect();
    assert!(adjusted_rand_index(&a, &b).abs() < 0.01);
}
