//! `clustimage cluster`: cluster a folder or an array, print a summary, and optionally
//! write the JSON result, the mean images, the report, and one folder per cluster.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::args::{ClusterArgs, Settings};
use super::{progress, table};
use crate::batch::{self, organise, BatchResult, ExtractOptions, Extracted};
use crate::cancel::CancelToken;
use crate::imaging;
use crate::model::{self, Model};
use crate::report;

pub fn run(args: &ClusterArgs, cancel: &CancelToken) -> Result<()> {
    let settings = args.model.settings()?;
    let started = Instant::now();
    let extracted = match &args.array {
        Some(path) => batch::array::extract_array(path, settings.array_dim, &settings.features)?,
        None => load_folders(&args.inputs, &settings, cancel)?,
    };
    let loaded_s = started.elapsed().as_secs_f64();
    let model = fit(&extracted, &settings, cancel)?;
    let result = BatchResult::new(&extracted, &model, &settings.fit);
    tracing::info!(
        n_images = result.n_images,
        n_clusters = result.n_clusters,
        load_s = format!("{loaded_s:.2}"),
        total_s = format!("{:.2}", started.elapsed().as_secs_f64()),
        "clustering finished"
    );
    let out = if args.json { Some(PathBuf::from("-")) } else { args.out.clone() };
    if out.as_deref() != Some(Path::new("-")) {
        print!("{}", summary(&result));
    }
    if let Some(out) = &out {
        write_json(out, &result)?;
    }
    if let Some(folder) = &args.mean_images {
        write_mean_images(folder, &extracted, &model)?;
    }
    if let Some(folder) = &args.report {
        write_report(folder, &extracted, &model, &settings, args.report_thumbnails)?;
    }
    if let Some(target) = &args.move_to {
        organise_files(&result, target, args)?;
    }
    Ok(())
}

fn write_report(
    folder: &Path,
    extracted: &Extracted,
    model: &Model,
    settings: &Settings,
    all_thumbnails: bool,
) -> Result<()> {
    let spinner = progress::spinner("drawing the report");
    let input = report::ReportInput::from_batch(extracted, model, &settings.fit, settings.limits);
    let options = report::ReportOptions { all_thumbnails };
    let written = report::write_cluster_report(folder, &input, &options);
    spinner.finish_and_clear();
    let written = written?;
    eprintln!("report: {} ({} figures)", written.index.display(), written.figures.len());
    Ok(())
}

/// Finds and loads the images under `inputs`, with a progress bar.
pub fn load_folders(
    inputs: &[std::path::PathBuf],
    settings: &Settings,
    cancel: &CancelToken,
) -> Result<Extracted> {
    let found = imaging::find_images(inputs)?;
    for (path, reason) in &found.unreadable {
        tracing::warn!(path = %path.display(), cause = %reason, "cannot list");
    }
    if found.images.is_empty() {
        bail!("no image files (jpg, jpeg, png, webp, tiff, tif, bmp, gif) under the given folders");
    }
    let options = ExtractOptions {
        limits: settings.limits,
        preprocessing: settings.preprocessing,
        features: settings.features,
    };
    let bar = progress::bar(found.images.len(), "reading");
    let extracted = batch::extract_files(&found.images, &options, cancel, &|| bar.inc(1));
    bar.finish_and_clear();
    Ok(extracted?)
}

/// Fits the model with a spinner.
pub fn fit(extracted: &Extracted, settings: &Settings, cancel: &CancelToken) -> Result<Model> {
    let spinner = progress::spinner("fitting");
    let input = batch::fit_input(extracted, settings.features.method);
    let model = model::fit(&input, &settings.fit, cancel);
    spinner.finish_and_clear();
    Ok(model?)
}

fn summary(result: &BatchResult) -> String {
    let mut text = format!(
        "{} images in {} clusters ({} noise), {} skipped; features: {}",
        result.n_images, result.n_clusters, result.n_noise, result.n_skipped, result.method
    );
    if let Some(pca) = &result.pca {
        let explained: f64 = pca.explained_variance_ratio.iter().sum();
        text += &format!(
            " ({} components, {:.1} % of the variance)",
            pca.n_components,
            100.0 * explained
        );
    }
    if let Some(chosen) = result.evaluation.chosen {
        let score = chosen.score.map_or("undefined".to_string(), |s| format!("{s:.4}"));
        text += &format!("; k = {} chosen by {} ({score})", chosen.k, result.evaluation.method);
        if let Some(eps) = chosen.eps {
            text += &format!(" at eps {eps:.4}");
        }
    }
    text.push_str("\n\n");
    let rows: Vec<Vec<String>> = result
        .clusters
        .iter()
        .map(|c| vec![c.id.to_string(), c.size.to_string(), c.representative.display().to_string()])
        .collect();
    text += &table::render(&["cluster", "size", "representative"], &rows);
    if !result.skipped.is_empty() {
        text += "\nskipped:\n";
        for skipped in &result.skipped {
            text += &format!("  {}\n", skipped.reason);
        }
    }
    text
}

fn write_json(out: &Path, result: &BatchResult) -> Result<()> {
    let json = serde_json::to_string_pretty(result)?;
    if out == Path::new("-") {
        println!("{json}");
        return Ok(());
    }
    std::fs::write(out, json + "\n").with_context(|| format!("cannot write {}", out.display()))
}

fn write_mean_images(folder: &Path, extracted: &Extracted, model: &Model) -> Result<()> {
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    for (cluster, image) in batch::result::mean_images(extracted, model).iter().enumerate() {
        let path = folder.join(format!("cluster-{cluster}-mean.png"));
        image.save(&path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn organise_files(result: &BatchResult, target: &Path, args: &ClusterArgs) -> Result<()> {
    if args.array.is_some() {
        bail!("--move-to needs image files, not an array");
    }
    let files: Vec<_> = result.images.iter().map(|i| (i.path.clone(), i.cluster)).collect();
    let plan = organise::plan(&files, target);
    if args.dry_run {
        for placement in &plan {
            println!("{} -> {}", placement.source.display(), placement.target.display());
        }
        return Ok(());
    }
    let (done, failures) = organise::execute(&plan, args.action.into());
    for failure in &failures {
        tracing::warn!(path = %failure.source.display(), cause = %failure.error, "not placed");
    }
    println!("\n{} files placed under {}, {} failed", done.len(), target.display(), failures.len());
    if !failures.is_empty() {
        bail!("{} files could not be placed", failures.len());
    }
    Ok(())
}
