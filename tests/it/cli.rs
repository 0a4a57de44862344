//! The `clustimage cluster` command on real folders: what it reads, what it skips, what
//! it prints and writes, and how it fails.

use std::fs;
use std::path::Path;

use crate::common::{cluster_json, clustimage, clustimage_ok, fixture, photo_folder};

fn paths_in(result: &serde_json::Value) -> Vec<String> {
    let images = result["images"].as_array().unwrap();
    images.iter().map(|i| i["path"].as_str().unwrap().to_string()).collect()
}

#[test]
fn result_json_has_the_documented_fields() {
    let folder = photo_folder();
    let result = cluster_json(&[folder.path().to_str().unwrap()]);
    assert_eq!(result["n_images"], 12);
    let n_clusters = result["n_clusters"].as_u64().unwrap() as usize;
    let clusters = result["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), n_clusters);
    let sizes: u64 = clusters.iter().map(|c| c["size"].as_u64().unwrap()).sum();
    assert_eq!(sizes, 12);
    let scores = result["evaluation"]["scores"].as_array().unwrap();
    // k from 3 to 25 inclusive, limited by the 12 images to 3..=11.
    assert_eq!(scores.first().unwrap()["k"], 3);
    assert_eq!(scores.last().unwrap()["k"], 11);
    assert_eq!(result["evaluation"]["chosen"]["k"].as_u64().unwrap() as usize, n_clusters);
    let ratios = result["pca"]["explained_variance_ratio"].as_array().unwrap();
    assert_eq!(ratios.len() as u64, result["pca"]["n_components"].as_u64().unwrap());
    assert_eq!(result["params"]["cluster"]["linkage"], "ward");
}

#[test]
fn representative_belongs_to_its_own_cluster() {
    let folder = photo_folder();
    for method in ["pca", "hog", "phash"] {
        let result = cluster_json(&[folder.path().to_str().unwrap(), "--method", method]);
        for cluster in result["clusters"].as_array().unwrap() {
            let representative = &cluster["representative"];
            let image = result["images"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| &i["path"] == representative)
                .unwrap();
            assert_eq!(image["cluster"], cluster["id"], "{method}");
            assert_eq!(image["representative"], true);
        }
    }
}

#[test]
fn same_named_files_in_two_folders_are_two_images_and_upper_case_extensions_count() {
    let dir = tempfile::tempdir().unwrap();
    for (folder, source) in [("a", "010_truchet-d_half.jpg"), ("b", "030_Garden_half.jpg")] {
        fs::create_dir(dir.path().join(folder)).unwrap();
        fs::copy(fixture("photos").join(source), dir.path().join(folder).join("IMG.JPG")).unwrap();
    }
    fs::copy(fixture("photos/020_Flow_half.jpg"), dir.path().join("c.Jpeg")).unwrap();
    let result = cluster_json(&[dir.path().to_str().unwrap(), "--k", "2", "--min-clust", "2"]);
    let paths = paths_in(&result);
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("a/IMG.JPG")));
    assert!(paths.iter().any(|p| p.ends_with("b/IMG.JPG")));
}

#[test]
fn bad_files_are_skipped_with_a_reason_naming_them() {
    let folder = photo_folder();
    let dir = folder.path();
    fs::write(dir.join("zero.jpg"), b"").unwrap();
    fs::write(dir.join("notes.png"), b"this is text, not a picture").unwrap();
    let photo = fs::read(fixture("photos/020_Flow_half.jpg")).unwrap();
    fs::write(dir.join("truncated.jpg"), &photo[..photo.len() / 3]).unwrap();
    let mut corrupt = photo.clone();
    corrupt[200..4000].fill(0xff);
    fs::write(dir.join("corrupt.jpg"), corrupt).unwrap();
    let output = clustimage(&["cluster", dir.to_str().unwrap(), "--out", "-"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let skipped: Vec<String> = result["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_string())
        .collect();
    for name in ["zero.jpg", "notes.png"] {
        assert!(skipped.iter().any(|p| p.ends_with(name)), "{name} not in {skipped:?}");
    }
    // A truncated or damaged JPEG may still decode partly; it must either be skipped
    // or clustered, never lost.
    let listed = paths_in(&result).len() + skipped.len();
    assert_eq!(listed, 16);
    assert_eq!(result["n_skipped"].as_u64().unwrap() as usize, skipped.len());
    let reasons = result["skipped"].as_array().unwrap();
    assert!(reasons
        .iter()
        .all(|s| s["reason"].as_str().unwrap().contains(s["path"].as_str().unwrap())));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("zero.jpg"), "warning names the file: {stderr}");
}

#[test]
fn the_summary_table_lists_every_cluster() {
    let folder = photo_folder();
    let stdout = clustimage_ok(&["cluster", folder.path().to_str().unwrap(), "--k", "4"]);
    assert!(stdout.starts_with("12 images in 4 clusters"), "{stdout}");
    let rows = stdout.lines().skip_while(|l| !l.starts_with("cluster")).skip(1);
    assert_eq!(rows.filter(|l| !l.is_empty()).count(), 4, "{stdout}");
}

#[test]
fn same_seed_same_result_for_every_clustering_method() {
    let folder = photo_folder();
    let dir = folder.path().to_str().unwrap();
    for method in ["agglomerative", "kmeans", "dbscan", "hdbscan"] {
        let args = [dir, "--cluster", method, "--seed", "7", "--min-samples", "2"];
        let first = cluster_json(&args);
        let second = cluster_json(&args);
        assert_eq!(first["images"], second["images"], "{method}");
    }
}

#[test]
fn arrays_of_flattened_images_are_clustered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digits.npy");
    write_digit_array(&path);
    let result = cluster_json(&["--array", path.to_str().unwrap(), "--k", "10"]);
    assert_eq!(result["n_images"], 200);
    assert_eq!(result["n_clusters"], 10);
    assert!(paths_in(&result)[0].ends_with("digits.npy[0]"));
    let wrong = clustimage(&["cluster", "--array", path.to_str().unwrap(), "--dim", "10x10"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--dim"));
}

/// Writes the digits fixture as a (200, 400) `u8` array.
fn write_digit_array(path: &Path) {
    use ndarray_npy::WriteNpyExt;
    let mut names: Vec<_> = fs::read_dir(fixture("digits"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    names.sort();
    let mut data = ndarray::Array2::<u8>::zeros((names.len(), 400));
    for (mut row, name) in data.rows_mut().into_iter().zip(&names) {
        let image = image::open(name).unwrap().to_luma8();
        row.assign(&ndarray::ArrayView1::from(image.as_raw().as_slice()));
    }
    data.write_npy(fs::File::create(path).unwrap()).unwrap();
}

#[test]
fn move_to_copies_into_cluster_folders_and_dry_run_touches_nothing() {
    let folder = photo_folder();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("sorted");
    let dir = folder.path().to_str().unwrap();
    let plan = clustimage_ok(&[
        "cluster",
        dir,
        "--k",
        "4",
        "--move-to",
        target.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(plan.lines().filter(|l| l.contains(" -> ")).count(), 12);
    assert!(!target.exists());
    clustimage_ok(&["cluster", dir, "--k", "4", "--move-to", target.to_str().unwrap()]);
    let mut placed = 0;
    for cluster in fs::read_dir(&target).unwrap() {
        let cluster = cluster.unwrap().path();
        assert!(cluster.file_name().unwrap().to_str().unwrap().starts_with("cluster-"));
        for file in fs::read_dir(&cluster).unwrap() {
            let file = file.unwrap().path();
            let original = folder.path().join(file.file_name().unwrap());
            assert_eq!(fs::read(&file).unwrap(), fs::read(&original).unwrap());
            placed += 1;
        }
    }
    assert_eq!(placed, 12);
    assert_eq!(fs::read_dir(folder.path()).unwrap().count(), 12, "sources stay with copy");
}

#[test]
fn mean_images_are_written_per_cluster() {
    let folder = photo_folder();
    let out = tempfile::tempdir().unwrap();
    let means = out.path().join("means");
    clustimage_ok(&[
        "cluster",
        folder.path().to_str().unwrap(),
        "--k",
        "3",
        "--mean-images",
        means.to_str().unwrap(),
    ]);
    for cluster in 0..3 {
        let image = image::open(means.join(format!("cluster-{cluster}-mean.png"))).unwrap();
        assert_eq!((image.width(), image.height()), (128, 128));
    }
}

#[test]
fn mistakes_get_one_clear_line() {
    let cases: [(&[&str], &str); 4] = [
        (&["cluster", "/no/such/folder"], "/no/such/folder"),
        (&["cluster", ".", "--method", "sift"], "--method"),
        (&["cluster", ".", "--linkage", "median"], "--linkage"),
        (&["cluster", ".", "--min-clust", "1"], "--min-clust"),
    ];
    for (args, expected) in cases {
        let output = clustimage(args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[test]
fn the_bundled_configuration_file_is_valid() {
    let folder = photo_folder();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/clustimage.toml");
    let text = fs::read_to_string(&config).unwrap();
    // Every documented key, uncommented, must parse and validate.
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if is_setting(rest) && !rest.starts_with("pca-components") => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let all_keys = folder.path().join("all.toml");
    let token = folder.path().join("token");
    fs::write(&token, "secret\n").unwrap();
    let uncommented = uncommented
        .replace("k = 10", "k = 3")
        .replace("/etc/clustimage/token", token.to_str().unwrap());
    fs::write(&all_keys, uncommented).unwrap();
    let result =
        cluster_json(&[folder.path().to_str().unwrap(), "--config", all_keys.to_str().unwrap()]);
    assert_eq!(result["n_clusters"], 3);
    // The daemon's tables too, with the environment over the file.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_clustimage"))
        .args(["serve", "--check", "--config", all_keys.to_str().unwrap()])
        .env("CLUSTIMAGE__INDEX__EF_SEARCH", "99")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("workers: 4") && stdout.contains("ef_search: 99"), "{stdout}");
    assert!(stdout.contains("token: \"set\"") && !stdout.contains("secret"), "{stdout}");
    assert!(stdout.contains("max_concurrent_calls: 64"), "{stdout}");
}

/// True for `key = value` with a plain key, as opposed to prose.
fn is_setting(line: &str) -> bool {
    line.split_once(" = ")
        .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
}

#[test]
fn colour_keeps_three_channels_through_to_the_mean_images() {
    let folder = photo_folder();
    let means = folder.path().join("means");
    let dir = folder.path().to_str().unwrap();
    let args = ["cluster", dir, "--color", "--dim", "32", "--k", "8", "--mean-images"];
    let mut args = args.to_vec();
    args.push(means.to_str().unwrap());
    clustimage_ok(&args);
    let mean = image::open(means.join("cluster-0-mean.png")).unwrap();
    assert_eq!(mean.color(), image::ColorType::Rgb8);
    assert_eq!((mean.width(), mean.height()), (32, 32));
}
