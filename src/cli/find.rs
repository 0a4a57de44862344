//! `clustimage find`: fit a folder, then list the images most like each query, and with
//! `--report` draw them.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::args::FindArgs;
use super::{cluster, table};
use crate::batch::result::NOISE_LABEL;
use crate::cancel::CancelToken;
use crate::features;
use crate::imaging;
use crate::model::distribution::FittedDistribution;
use crate::model::find::{self, FindParams};
use crate::report;

/// The hits of one query, as printed with `--json`.
#[derive(Debug, serde::Serialize)]
struct QueryHits {
    query: PathBuf,
    hits: Vec<HitSummary>,
}

#[derive(Debug, serde::Serialize)]
struct HitSummary {
    path: PathBuf,
    distance: f64,
    p_value: f64,
    cluster: i64,
}

#[derive(Debug, serde::Serialize)]
struct FindOutput {
    queries: Vec<QueryHits>,
    null_distribution: FittedDistribution,
}

pub fn run(args: &FindArgs, cancel: &CancelToken) -> Result<()> {
    let settings = args.model.settings()?;
    let params = FindParams {
        k: args.k,
        alpha: args.alpha.or(if args.k.is_some() { None } else { Some(0.05) }),
        max_distance: args.max_distance,
        seed: settings.fit.cluster.seed,
        ..FindParams::default()
    };
    params.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let extracted = cluster::load_folders(&args.library, &settings, cancel)?;
    let model = cluster::fit(&extracted, &settings, cancel)?;
    let null = find::fit_null(model.features.view(), &params)?;
    let mut output = FindOutput { queries: Vec::new(), null_distribution: null };
    let mut found = Vec::new();
    for query in &args.queries {
        let loaded = imaging::load_file(query, &settings.limits, &settings.preprocessing)?;
        let vector = features::extract(&loaded.gray, &loaded.pixel_values(), &settings.features)
            .with_context(|| format!("cannot describe {}", query.display()))?;
        let point = model.project(&vector)?;
        let exclude = same_file_index(query, &extracted.paths);
        let hits = find::find(
            model.features.view(),
            point.view(),
            &output.null_distribution,
            &params,
            exclude,
        );
        found.push(report::FindQuery { path: query.clone(), hits: hits.clone() });
        let hits = hits
            .iter()
            .map(|hit| HitSummary {
                path: extracted.paths[hit.image_idx].clone(),
                distance: hit.distance,
                p_value: hit.p_value,
                cluster: model.clustering.labels[hit.image_idx].map_or(NOISE_LABEL, |c| c as i64),
            })
            .collect();
        output.queries.push(QueryHits { query: query.clone(), hits });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        print!("{}", render(&output));
    }
    if let Some(folder) = &args.report {
        let library =
            report::ReportInput::from_batch(&extracted, &model, &settings.fit, settings.limits);
        let null = &output.null_distribution;
        let written = report::write_find_report(folder, &library, &found, null, &params)?;
        eprintln!("report: {} ({} figures)", written.index.display(), written.figures.len());
    }
    Ok(())
}

/// The daemon query for `find` without `--in`.
pub fn request(args: &FindArgs) -> super::client::FindRequest<'_> {
    super::client::FindRequest {
        queries: &args.queries,
        k: args.k,
        alpha: args.alpha,
        max_distance: args.max_distance,
        json: args.json,
    }
}

/// The library row that is the query file itself, so that it is not its own hit.
fn same_file_index(query: &std::path::Path, library: &[PathBuf]) -> Option<usize> {
    let query = query.canonicalize().ok()?;
    library.iter().position(|path| path.canonicalize().ok().as_ref() == Some(&query))
}

fn render(output: &FindOutput) -> String {
    let mut text = String::new();
    for query in &output.queries {
        text += &format!("{}: {} hits\n", query.query.display(), query.hits.len());
        let rows: Vec<Vec<String>> = query
            .hits
            .iter()
            .enumerate()
            .map(|(rank, hit)| {
                vec![
                    (rank + 1).to_string(),
                    format!("{:.4}", hit.distance),
                    format!("{:.3e}", hit.p_value),
                    hit.cluster.to_string(),
                    hit.path.display().to_string(),
                ]
            })
            .collect();
        text += &table::render(&["rank", "distance", "p-value", "cluster", "path"], &rows);
        text.push('\n');
    }
    text
}
