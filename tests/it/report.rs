//! The report: every figure drawn from the real fixture photos, checked as an image (its
//! size, that it is not blank, its tiles or points where they can be counted), and every
//! link and image of its pages resolving to a file in the report's folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clustimage::batch::{self, ExtractOptions, Extracted};
use clustimage::cancel::CancelToken;
use clustimage::features::{FeatureMethod, FeatureParams};
use clustimage::imaging::find_images;
use clustimage::model::{self, FitParams, Model};
use clustimage::report::build::{self, Plan};
use clustimage::report::figures::montage::Montage;
use clustimage::report::{self, DuplicateGroupInput, ReportInput, ReportOptions};

use crate::common::{clustimage_ok, fixture, photo_folder};

fn extract(folder: &Path, method: FeatureMethod) -> Extracted {
    let paths = find_images(&[folder.to_path_buf()]).unwrap().images;
    let options = ExtractOptions {
        features: FeatureParams { method, ..Default::default() },
        ..Default::default()
    };
    batch::extract_files(&paths, &options, &CancelToken::new(), &|| {}).unwrap()
}

fn fit(extracted: &Extracted, params: &FitParams) -> Model {
    let input = batch::fit_input(extracted, params.method);
    model::fit(&input, params, &CancelToken::new()).unwrap()
}

/// Reads a PNG of the report and checks its size and that it is not blank.
pub(crate) fn check_png(path: &Path, size_px: Option<(u32, u32)>) -> image::RgbImage {
    let picture = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let picture = picture.to_rgb8();
    if let Some(size_px) = size_px {
        assert_eq!(picture.dimensions(), size_px, "{}", path.display());
    }
    let values: Vec<f64> =
        picture.pixels().map(|p| f64::from(p.0[0]) + f64::from(p.0[1])).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    assert!(variance > 100.0, "{} looks blank (variance {variance:.1})", path.display());
    picture
}

/// Every `href` and `src` of every page in `folder`, with the page it is on.
fn links(folder: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let page = entry.unwrap().path();
        if page.extension().is_none_or(|e| e != "html") {
            continue;
        }
        let html = std::fs::read_to_string(&page).unwrap();
        for attribute in ["href=\"", "src=\""] {
            for (start, _) in html.match_indices(attribute) {
                let rest = &html[start + attribute.len()..];
                let target = &rest[..rest.find('"').unwrap()];
                found.push((page.clone(), target.to_string()));
            }
        }
    }
    found
}

/// Checks that every link of the report resolves inside `folder` (fragments aside),
/// that none leaves it, and that every figure file is linked from a page.
pub(crate) fn check_links(folder: &Path) {
    let links = links(folder);
    assert!(!links.is_empty());
    let mut linked = BTreeSet::new();
    for (page, target) in &links {
        if target.starts_with('#') {
            continue;
        }
        assert!(!target.contains("://") && !target.starts_with('/'), "{page:?}: {target}");
        assert!(!target.contains(".."), "{page:?}: {target}");
        let file = folder.join(target.replace("%20", " "));
        assert!(file.is_file(), "{}: {target} does not exist", page.display());
        linked.insert(target.clone());
    }
    for entry in std::fs::read_dir(folder).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "index.html" {
            assert!(linked.contains(&name), "{name} is not linked from any page");
        }
    }
}

/// The pixel at the centre of picture box `idx` of a montage is drawn on; the one where a
/// tile after the last would be is still white.
fn check_tiles(picture: &image::RgbImage, montage: &Montage, n_tiles: usize) {
    let is_white =
        |(x, y): (i32, i32)| picture.get_pixel(x as u32 + 40, y as u32 + 40).0 == [255; 3];
    for idx in 0..n_tiles {
        assert!(!is_white(montage.tile_origin(idx)), "{}: tile {idx} is empty", montage.name);
    }
    let after = montage.tile_origin(n_tiles);
    let inside =
        (after.0 as u32 + 40) < picture.width() && (after.1 as u32 + 40) < picture.height();
    if inside {
        assert!(is_white(after), "{}: more than {n_tiles} tiles", montage.name);
    }
}

#[test]
fn cluster_report_draws_every_figure_and_links_only_its_own_files() {
    let folder = photo_folder();
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("report");
    let json = out.path().join("result.json");
    let args = [
        "cluster",
        folder.path().to_str().unwrap(),
        "--embedding",
        "tsne",
        "--report",
        report.to_str().unwrap(),
        "--report-thumbnails",
        "--out",
        json.to_str().unwrap(),
    ];
    clustimage_ok(&args);
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let n_clusters = result["n_clusters"].as_u64().unwrap() as usize;
    for name in ["scatter-tsne", "scatter-pca", "dendrogram", "choosing-k", "pca-variance"] {
        check_png(&report.join(format!("{name}.png")), None);
        let svg = std::fs::read_to_string(report.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"), "{name}");
        assert!(svg.contains("<text "), "{name}.svg has no text");
    }
    for name in ["scatter-tsne", "scatter-pca"] {
        check_png(&report.join(format!("{name}.png")), Some((1280, 900)));
        check_png(&report.join(format!("{name}-thumbnails.png")), Some((1280, 900)));
        // One dot per image and one per legend entry (every cluster, no noise).
        let svg = std::fs::read_to_string(report.join(format!("{name}.svg"))).unwrap();
        assert_eq!(svg.matches("<circle ").count(), 12 + n_clusters, "{name}");
        // The representative of each cluster as a thumbnail at its centre.
        assert_eq!(svg.matches("<image ").count(), n_clusters, "{name}");
    }
    // Candidates k = 3 to 11 as dots, and a ring around the chosen one.
    let scores = std::fs::read_to_string(report.join("choosing-k.svg")).unwrap();
    assert_eq!(scores.matches("<circle ").count(), 9 + 1);
    check_png(&report.join("unique.png"), None);
    for cluster in 0..n_clusters {
        check_png(&report.join(format!("cluster-{cluster}.png")), None);
        let page = std::fs::read_to_string(report.join(format!("cluster-{cluster}.html"))).unwrap();
        assert!(page.contains("<h2>Folders</h2>"));
    }
    assert!(!report.join(format!("cluster-{n_clusters}.png")).exists());
    check_links(&report);
}

#[test]
fn montages_hold_one_tile_per_image_or_cluster() {
    let extracted = extract(&fixture("photos"), FeatureMethod::Pca);
    let params = FitParams::default();
    let model = fit(&extracted, &params);
    let input = ReportInput::from_batch(&extracted, &model, &params, Default::default());
    let out = tempfile::tempdir().unwrap();
    let written =
        report::write_cluster_report(out.path(), &input, &ReportOptions::default()).unwrap();
    assert_eq!(written.index, out.path().join("index.html"));
    let plan = Plan::new(&input, &ReportOptions::default());
    let thumbnails = input.thumbnails.load(&plan.shared_thumbnails());
    let unique = build::unique(&input, &plan, &thumbnails).unwrap();
    let picture = check_png(&out.path().join("unique.png"), Some(report_size(&unique)));
    check_tiles(&picture, &unique, model.clustering.n_clusters);
    for cluster in 0..model.clustering.n_clusters {
        let page = build::cluster_page(&input, &plan, &thumbnails, cluster);
        let path = out.path().join(format!("cluster-{cluster}.png"));
        let picture = check_png(&path, Some(report_size(&page)));
        check_tiles(&picture, &page, model.representatives[cluster].size);
    }
    check_links(out.path());
}

fn report_size(montage: &Montage) -> (u32, u32) {
    use clustimage::report::figure::Figure;
    montage.size_px()
}

#[test]
fn a_large_cluster_page_is_capped_with_a_tile_for_the_rest() {
    // The digits: 200 images in 3 clusters, so every page holds more than it can show.
    let extracted = extract(&fixture("digits"), FeatureMethod::Pca);
    let mut params = FitParams::default();
    params.cluster.fixed_clusters = Some(3);
    let model = fit(&extracted, &params);
    let input = ReportInput::from_batch(&extracted, &model, &params, Default::default());
    let out = tempfile::tempdir().unwrap();
    report::write_cluster_report(out.path(), &input, &ReportOptions::default()).unwrap();
    let plan = Plan::new(&input, &ReportOptions::default());
    let page = build::cluster_page(&input, &plan, &Default::default(), 0);
    assert!(model.representatives[0].size > build::MAX_TILES);
    assert_eq!(page.tiles.len(), build::MAX_TILES);
    let picture = check_png(&out.path().join("cluster-0.png"), Some(report_size(&page)));
    check_tiles(&picture, &page, build::MAX_TILES);
    let subtitle = page.subtitle.unwrap();
    assert!(subtitle.contains(&format!("41 of {}", model.representatives[0].size)), "{subtitle}");
}

#[test]
fn the_same_input_and_seed_give_the_same_report() {
    let folder = photo_folder();
    let out = tempfile::tempdir().unwrap();
    let (first, second) = (out.path().join("a"), out.path().join("b"));
    for report in [&first, &second] {
        let args =
            ["cluster", folder.path().to_str().unwrap(), "--report", report.to_str().unwrap()];
        clustimage_ok(&args);
    }
    let mut n_files = 0;
    for entry in std::fs::read_dir(&first).unwrap() {
        let name = entry.unwrap().file_name();
        let a = std::fs::read(first.join(&name)).unwrap();
        let b = std::fs::read(second.join(&name)).unwrap();
        assert!(a == b, "{name:?} differs between two runs");
        n_files += 1;
    }
    assert_eq!(n_files, std::fs::read_dir(&second).unwrap().count());
}

#[test]
fn exif_reports_plot_time_and_place() {
    let out = tempfile::tempdir().unwrap();
    let photos = fixture("exif");
    for (method, figure) in [("exif-time", "exif-time"), ("exif-gps", "exif-gps")] {
        let report = out.path().join(method);
        let args = ["cluster", photos.to_str().unwrap(), "--method", method, "--report"];
        let mut args = args.to_vec();
        args.push(report.to_str().unwrap());
        clustimage_ok(&args);
        check_png(&report.join(format!("{figure}.png")), Some((1280, 800)));
        let svg = std::fs::read_to_string(report.join(format!("{figure}.svg"))).unwrap();
        // Photos as dots, plus one legend dot per cluster and one for noise.
        let n_dots = svg.matches("<circle ").count();
        match method {
            // Both photos have a time (EXIF, or the file's); one cluster or two.
            "exif-time" => assert!(n_dots == 2 + 1 || n_dots == 2 + 2, "{n_dots}"),
            // One photo has a position: one cluster, and one photo of noise.
            _ => assert_eq!(n_dots, 1 + 2),
        }
        assert!(!report.join("scatter-pca.png").exists());
        check_links(&report);
    }
}

#[test]
fn find_report_shows_the_query_its_hits_and_the_null_distribution() {
    let folder = photo_folder();
    let out = tempfile::tempdir().unwrap();
    let query = fixture("photos/040_Autumn-2560x1600_q35.jpg");
    let args = [
        "find",
        query.to_str().unwrap(),
        "--in",
        folder.path().to_str().unwrap(),
        "-k",
        "3",
        "--report",
        out.path().to_str().unwrap(),
    ];
    clustimage_ok(&args);
    let picture = check_png(&out.path().join("find-1.png"), None);
    check_png(&out.path().join("find-null-distribution.png"), Some((1100, 700)));
    let svg = std::fs::read_to_string(out.path().join("find-null-distribution.svg")).unwrap();
    assert!(svg.contains("alpha") || svg.contains("hits"), "the distribution has no marks");

    // The same montage from the library: the query and its three hits.
    let extracted = extract(folder.path(), FeatureMethod::Pca);
    let params = FitParams::default();
    let model = fit(&extracted, &params);
    let library = ReportInput::from_batch(&extracted, &model, &params, Default::default());
    let find_params =
        clustimage::model::find::FindParams { k: Some(3), alpha: None, ..Default::default() };
    let hits: Vec<_> = (0..3)
        .map(|image_idx| clustimage::model::find::Hit { image_idx, distance: 1.0, p_value: 0.01 })
        .collect();
    let found = report::FindQuery { path: query.clone(), hits };
    let montage = build::find_montage(&library, &found, 0, &find_params);
    assert_eq!(picture.dimensions(), report_size(&montage));
    check_tiles(&picture, &montage, 4);
    check_links(out.path());
}

#[test]
fn the_duplicates_figure_has_one_tile_per_group_the_keeper_first() {
    let extracted = extract(&fixture("photos"), FeatureMethod::Pca);
    let params = FitParams::default();
    let model = fit(&extracted, &params);
    let mut input = ReportInput::from_batch(&extracted, &model, &params, Default::default());
    let photo = |name: &str| fixture("photos").join(name);
    input.duplicates = vec![
        DuplicateGroupInput {
            kind: "duplicate".into(),
            max_distance: 2,
            paths: vec![photo("030_Garden_q35.jpg"), photo("030_Garden_half.jpg")],
        },
        DuplicateGroupInput {
            kind: "exact".into(),
            max_distance: 0,
            paths: vec![photo("010_truchet-d_q35.jpg"), photo("010_truchet-d_half.jpg")],
        },
        DuplicateGroupInput {
            kind: "similar".into(),
            max_distance: 14,
            paths: vec![
                photo("040_Autumn-2560x1600_q35.jpg"),
                photo("040_Autumn-2560x1600_half.jpg"),
            ],
        },
    ];
    let out = tempfile::tempdir().unwrap();
    report::write_cluster_report(out.path(), &input, &ReportOptions::default()).unwrap();
    let montage = build::duplicates(&input).unwrap();
    let picture = check_png(&out.path().join("duplicates.png"), Some(report_size(&montage)));
    check_tiles(&picture, &montage, 3);
    assert_eq!(montage.pictures_per_tile, 2);
    assert!(montage.tiles[1].caption[0].contains("exact, distance 0"), "{:?}", montage.tiles[1]);
    assert!(montage.tiles[0].caption[1].contains("030_Garden_q35"), "{:?}", montage.tiles[0]);
    check_links(out.path());
    // Without groups there is no such figure.
    input.duplicates.clear();
    assert!(build::duplicates(&input).is_none());
}
