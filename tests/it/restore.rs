//! `clustimage restore` on a quarantine prepared through the library: every file returns
//! to its exact path with its exact bytes, a file found at an original path is a conflict
//! that does not fail the command, `--dry-run` moves nothing, and nothing is restored
//! twice.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use clustimage::dedup::quarantine::Quarantine;

use crate::common::{clustimage, clustimage_ok, fixture};

/// The fixture photos placed at these paths under the library root.
const PLACES: [(&str, &str); 4] = [
    ("001_adwaita-l_half.jpg", "2024/trip/adwaita.jpg"),
    ("010_truchet-d_q35.jpg", "2024/trip/truchet.jpg"),
    ("030_Garden_q35.jpg", "2023/garden.jpg"),
    ("040_Autumn-2560x1600_q35.jpg", "autumn.jpg"),
];

fn restore_json(folder: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["restore", "--quarantine", folder.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&clustimage_ok(&args)).unwrap()
}

/// The `(from, to)` pairs of a result's `restored` list.
fn pairs(result: &serde_json::Value) -> BTreeSet<(PathBuf, PathBuf)> {
    let restored = result["restored"].as_array().unwrap();
    let path = |value: &serde_json::Value| PathBuf::from(value.as_str().unwrap());
    restored.iter().map(|item| (path(&item["from"]), path(&item["to"]))).collect()
}

#[test]
fn restore_puts_every_file_back_byte_for_byte_and_a_taken_path_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Photos");
    let folder = dir.path().join("quarantine");
    let quarantine = Quarantine::open(&folder).unwrap();
    let mut moved = Vec::new();
    for (name, place) in PLACES {
        let bytes = fs::read(fixture("photos").join(name)).unwrap();
        let path = root.join(place);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &bytes).unwrap();
        let hash = *blake3::hash(&bytes).as_bytes();
        let entry = quarantine.move_in(&root, &path, &hash, "exact duplicate").unwrap();
        assert!(!path.exists());
        moved.push((entry.target, path, bytes));
    }
    drop(quarantine);
    // The first file's path is taken again; the 2023 folder is gone.
    let (_, taken, _) = &moved[0];
    fs::write(taken, b"a new file at the same path").unwrap();
    fs::remove_dir(root.join("2023")).unwrap();
    let expected: BTreeSet<(PathBuf, PathBuf)> =
        moved[1..].iter().map(|(from, to, _)| (from.clone(), to.clone())).collect();

    let planned = restore_json(&folder, &["--dry-run"]);
    assert_eq!(planned["dry_run"], true);
    assert_eq!(pairs(&planned), expected);
    assert!(moved.iter().all(|(from, _, _)| from.exists()));

    let output = clustimage(&["restore", "--quarantine", folder.to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "a conflict is no failure: {stderr}");
    assert!(stderr.contains("not restored") && stderr.contains("adwaita.jpg"), "{stderr}");
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(pairs(&result), expected);
    for (from, to, bytes) in &moved[1..] {
        assert_eq!(&fs::read(to).unwrap(), bytes, "{}", to.display());
        assert!(!from.exists(), "{}", from.display());
    }
    let conflicts = result["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0]["path"], taken.to_str().unwrap());
    assert!(conflicts[0]["reason"].as_str().unwrap().contains("already"), "{conflicts:?}");
    assert_eq!(fs::read(taken).unwrap(), b"a new file at the same path");
    assert_eq!(result["failures"], serde_json::json!([]));

    // Nothing is restored twice; the conflict stays until its path is free.
    let again = restore_json(&folder, &[]);
    assert!(pairs(&again).is_empty());
    assert_eq!(again["conflicts"].as_array().unwrap().len(), 1);
    fs::remove_file(taken).unwrap();
    let trip = root.join("2024/trip");
    let last = restore_json(&folder, &["--path", trip.to_str().unwrap()]);
    let (from, to, bytes) = &moved[0];
    assert_eq!(pairs(&last), BTreeSet::from([(from.clone(), to.clone())]));
    assert_eq!(&fs::read(to).unwrap(), bytes);
}

#[test]
fn restore_prints_a_table_and_refuses_a_folder_without_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-quarantine");
    let output = clustimage(&["restore", "--quarantine", missing.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("holds no quarantine") && stderr.contains("manifest.jsonl"),
        "{stderr}"
    );
    assert!(!missing.exists());

    let root = dir.path().join("Photos");
    let folder = dir.path().join("quarantine");
    let path = root.join("a.jpg");
    fs::create_dir_all(&root).unwrap();
    fs::write(&path, b"bytes").unwrap();
    let hash = *blake3::hash(b"bytes").as_bytes();
    Quarantine::open(&folder).unwrap().move_in(&root, &path, &hash, "dup").unwrap();
    let table = clustimage_ok(&["restore", "--quarantine", folder.to_str().unwrap()]);
    assert!(table.starts_with("restored 1 file; 0 conflicts, 0 failed\n"), "{table}");
    assert!(table.contains(&format!("restored  {}", path.display())), "{table}");
    assert_eq!(fs::read(&path).unwrap(), b"bytes");
}
