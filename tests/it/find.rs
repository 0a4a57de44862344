//! The `clustimage find` command: the other version of a picture is its best hit.

use std::path::Path;

use crate::common::{clustimage_ok, fixture, photo_folder};

/// Runs `find QUERY --in LIBRARY -k HITS --json` and parses its output.
fn find_json(query: &Path, library: &Path, hits: usize) -> serde_json::Value {
    let hits = hits.to_string();
    let query = query.to_str().unwrap();
    let library = library.to_str().unwrap();
    let stdout = clustimage_ok(&["find", query, "--in", library, "-k", &hits, "--json"]);
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn the_other_version_of_a_picture_is_the_nearest_and_significant() {
    let folder = photo_folder();
    let query = fixture("photos/040_Autumn-2560x1600_q35.jpg");
    let output = find_json(&query, folder.path(), 3);
    let hits = output["queries"][0]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    // The library holds a byte-identical copy of the query (a different file, so it is a
    // hit) and the half-size version: those two come first.
    let best: Vec<&str> = hits[..2].iter().map(|h| h["path"].as_str().unwrap()).collect();
    assert!(best.iter().any(|p| p.ends_with("040_Autumn-2560x1600_half.jpg")), "{best:?}");
    assert!(hits[0]["p_value"].as_f64().unwrap() < 0.05);
    assert!(hits.windows(2).all(|w| w[0]["distance"].as_f64() <= w[1]["distance"].as_f64()));
    assert!(hits[0]["cluster"].as_i64().unwrap() >= 0);
    assert!(output["null_distribution"]["kind"].is_string());
}

#[test]
fn a_query_inside_the_library_is_not_its_own_hit() {
    let folder = photo_folder();
    let query = folder.path().join("030_Garden_half.jpg");
    let output = find_json(&query, folder.path(), 1);
    let best = output["queries"][0]["hits"][0]["path"].as_str().unwrap();
    assert!(best.ends_with("030_Garden_q35.jpg"), "{best}");
}
