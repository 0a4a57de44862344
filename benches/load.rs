//! Load benchmark of the gRPC API: several clients sending `FindSimilar` while the daemon
//! sits idle, ingests a burst of new files, and refits; with the recall of the answers
//! against an exact brute-force search over the same projected features.
//!
//! The daemon and its server run in this process (so that the benchmark can read the
//! fitted features for the brute-force reference); the clients talk to the server over a
//! loopback TCP port, each on its own connection, exactly as a remote client would.
//!
//! ```sh
//! cargo bench --bench load -- --images 10000
//! cargo bench --bench load -- --images 100000 --work target/load-library --out benches/load-results.md
//! ```
//!
//! The library is synthetic: 64x64 gray PNGs drawn from a few hundred smooth prototypes,
//! each shifted, lit and noised on its own, seeded, so there are clusters to find. With
//! `--work DIR` it is written once and reused (the data folder is always new).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use clustimage::daemon::{Daemon, DaemonConfig, DaemonHandle, Status};
use clustimage::server::pb::clustimage_client::ClustimageClient;
use clustimage::server::pb::{self, find_similar_request::Query};
use clustimage::server::{self, ServerConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

#[derive(Debug, Parser)]
#[command(about = "Load benchmark of FindSimilar over gRPC")]
struct Args {
    /// Images in the library before the load starts.
    #[arg(long, default_value_t = 10_000)]
    images: usize,
    /// New images dropped into the library while the clients keep asking.
    #[arg(long, default_value_t = 2_000)]
    arrivals: usize,
    /// Concurrent clients, each on its own connection.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Seconds of load on the idle daemon.
    #[arg(long, default_value_t = 10.0)]
    idle_seconds: f64,
    /// Hits asked for per call.
    #[arg(long, default_value_t = 10)]
    k: u32,
    /// Queries checked against brute force.
    #[arg(long, default_value_t = 500)]
    recall_queries: usize,
    /// Side of the thumbnails the features are computed from.
    #[arg(long, default_value_t = 32)]
    dim: u32,
    /// Folder for the synthetic library, kept and reused (default: a temporary folder).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Also write the Markdown report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the library and of the queries.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const PHASES: [&str; 3] = ["idle", "ingesting", "refitting"];
const SIDE: u32 = 64;
const PROTOTYPES: usize = 300;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    let work = args.work.clone().unwrap_or_else(|| scratch.path().to_path_buf());
    // One watched folder per size, so that a reused --work holds exactly the base images.
    let root = work.join(format!("library-{}-seed{}", args.images, args.seed));
    let started = Instant::now();
    let written = write_library(&root.join("base"), 0, args.images, args.seed)?;
    eprintln!("library: {} images under {} ({written} written now)", args.images, root.display());
    let arrivals = root.join("arrivals");
    if arrivals.exists() {
        std::fs::remove_dir_all(&arrivals)?;
    }
    let generate_s = started.elapsed().as_secs_f64();

    let mut config = DaemonConfig::new(vec![root.clone()], scratch.path().join("data"));
    config.preprocessing.width_px = args.dim;
    config.preprocessing.height_px = args.dim;
    config.quiet = Duration::from_millis(100);
    config.refit_after_changes = u64::MAX;
    config.refit_every = Duration::from_secs(24 * 3600);
    let workers = config.workers;
    let started = Instant::now();
    let daemon = Daemon::start(config).await?;
    let handle = daemon.handle();
    let listener = server::bind("127.0.0.1:0".parse()?).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let server_config = ServerConfig { max_concurrent_calls: 1024, ..ServerConfig::default() };
    let server_task = tokio::spawn(server::serve(handle.clone(), server_config, listener, async {
        let _ = stopped.await;
    }));
    wait_for(&handle, |status| {
        status.images as usize == args.images
            && status.pending == 0
            && status.model.as_ref().is_some_and(|model| model.images as usize == args.images)
    })
    .await;
    let cold_s = started.elapsed().as_secs_f64();
    eprintln!("first model after {cold_s:.1} s");

    // The queries: every fitted image, by id, in a seeded order.
    let view = handle.library().view().expect("a model");
    let fitted = view.fitted.clone();
    drop(view);
    let ids: Arc<Vec<String>> = Arc::new(fitted.contents.iter().map(|c| c.to_hex()).collect());

    let recall = measure_recall(&url, &fitted, args.recall_queries, args.k, args.seed).await?;
    eprintln!("recall@{}: {:.4}", args.k, recall.mean);

    // The load: clients run through all three phases; each call is counted in the phase
    // it started in.
    let phase = Arc::new(AtomicU8::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let mut clients = Vec::new();
    for client in 0..args.clients {
        let mut connection = ClustimageClient::connect(url.clone()).await?;
        let (ids, phase, done, samples) =
            (ids.clone(), phase.clone(), done.clone(), samples.clone());
        let k = args.k;
        let seed = args.seed.wrapping_add(1 + client as u64);
        clients.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut mine = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let id = ids[rng.gen_range(0..ids.len())].clone();
                let request = pb::FindSimilarRequest {
                    query: Some(Query::ImageId(id)),
                    k,
                    alpha: None,
                    max_distance: None,
                };
                let at = phase.load(Ordering::Relaxed);
                let sent = Instant::now();
                let outcome = connection.find_similar(request).await;
                let ok = outcome.is_ok_and(|found| found.into_inner().hits.len() == k as usize);
                mine.push(Sample { phase: at, latency: sent.elapsed(), ok });
            }
            samples.lock().unwrap().extend(mine);
        }));
    }

    tokio::time::sleep(Duration::from_secs_f64(args.idle_seconds)).await;
    let mut spans = vec![args.idle_seconds];

    phase.store(1, Ordering::Relaxed);
    let ingest_started = Instant::now();
    let seed = args.seed.wrapping_add(1_000_003);
    let (dir, n) = (arrivals.clone(), args.arrivals);
    tokio::task::spawn_blocking(move || write_library(&dir, args_offset(), n, seed)).await??;
    wait_for(&handle, |status| {
        status.images as usize == args.images + args.arrivals && status.pending == 0
    })
    .await;
    spans.push(ingest_started.elapsed().as_secs_f64());

    phase.store(2, Ordering::Relaxed);
    let refit_started = Instant::now();
    let summary = handle.refit(true).await?;
    spans.push(refit_started.elapsed().as_secs_f64());
    done.store(true, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }

    let _ = stop_server.send(());
    server_task.await??;
    drop(handle);
    daemon.shutdown().await?;

    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let report = Report {
        args: &args,
        workers,
        generate_s,
        cold_s,
        recall,
        spans,
        samples,
        refit_images: summary.map(|summary| summary.images),
    };
    let text = report.markdown();
    print!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text)?;
    }
    Ok(())
}

/// Arrivals are drawn from the same prototypes but numbered apart from the base images,
/// so their bytes differ from every base image's.
fn args_offset() -> usize {
    1 << 40
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    phase: u8,
    latency: Duration,
    ok: bool,
}

async fn wait_for(handle: &DaemonHandle, condition: impl Fn(&Status) -> bool) {
    let mut last = Instant::now();
    loop {
        let status = handle.status();
        if condition(&status) {
            return;
        }
        if last.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  ... {} images, {} pending, refitting: {}",
                status.images, status.pending, status.refitting
            );
            last = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Recall {
    mean: f64,
    worst: f64,
    queries: usize,
    brute_force_ms: f64,
    api_ms: f64,
}

/// Recall@k of `FindSimilar` (through the API, so through the index) against an exact
/// scan of the fitted features, on a seeded sample of the fitted images.
async fn measure_recall(
    url: &str,
    fitted: &clustimage::daemon::library::Fitted,
    queries: usize,
    k: u32,
    seed: u64,
) -> anyhow::Result<Recall> {
    let points = fitted.points();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let rows: Vec<usize> =
        (0..queries.min(points.len())).map(|_| rng.gen_range(0..points.len())).collect();
    let mut client = ClustimageClient::connect(url.to_string()).await?;
    let (mut total, mut worst) = (0.0, 1.0_f64);
    let (mut brute_time, mut api_time) = (Duration::ZERO, Duration::ZERO);
    for &row in &rows {
        let started = Instant::now();
        let exact = brute_force(&points, row, k as usize);
        brute_time += started.elapsed();
        let request = pb::FindSimilarRequest {
            query: Some(Query::ImageId(fitted.contents[row].to_hex())),
            k,
            alpha: None,
            max_distance: None,
        };
        let started = Instant::now();
        let hits = client.find_similar(request).await?.into_inner().hits;
        api_time += started.elapsed();
        let exact: Vec<String> =
            exact.iter().map(|&other| fitted.contents[other].to_hex()).collect();
        let found = hits.iter().filter(|hit| exact.contains(&hit.image_id)).count();
        let recall = found as f64 / exact.len().max(1) as f64;
        total += recall;
        worst = worst.min(recall);
    }
    let n = rows.len().max(1) as f64;
    Ok(Recall {
        mean: total / n,
        worst,
        queries: rows.len(),
        brute_force_ms: brute_time.as_secs_f64() * 1e3 / n,
        api_ms: api_time.as_secs_f64() * 1e3 / n,
    })
}

/// The `k` rows nearest to row `query` (itself left out), by exact squared distance.
fn brute_force(points: &[Vec<f32>], query: usize, k: usize) -> Vec<usize> {
    let target = &points[query];
    let mut scored: Vec<(f32, usize)> = points
        .par_iter()
        .enumerate()
        .filter(|(row, _)| *row != query)
        .map(|(row, point)| {
            let distance = point.iter().zip(target).map(|(a, b)| (a - b) * (a - b)).sum::<f32>();
            (distance, row)
        })
        .collect();
    let nth = k.min(scored.len() - 1);
    scored.select_nth_unstable_by(nth, |a, b| a.0.total_cmp(&b.0));
    scored.truncate(k);
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.into_iter().map(|(_, row)| row).collect()
}

/// Writes `n` synthetic PNGs numbered from `first` into `dir` (folders of 1,000), keeping
/// any that are already there. Returns how many it wrote.
fn write_library(dir: &Path, first: usize, n: usize, seed: u64) -> anyhow::Result<usize> {
    let prototypes = prototypes(seed);
    let written: Vec<bool> = (0..n)
        .into_par_iter()
        .map(|i| -> anyhow::Result<bool> {
            let number = first + i;
            let folder = dir.join(format!("{:04}", i / 1000));
            let path = folder.join(format!("img{number:013}.png"));
            if path.exists() {
                return Ok(false);
            }
            std::fs::create_dir_all(&folder)?;
            let picture = draw(&prototypes, seed, number);
            let partial = path.with_extension("part");
            picture.save_with_format(&partial, image::ImageFormat::Png)?;
            std::fs::rename(&partial, &path)?;
            Ok(true)
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(written.into_iter().filter(|&new| new).count())
}

/// A prototype: a few Gaussian blobs over a gradient.
struct Prototype {
    blobs: Vec<(f32, f32, f32, f32)>,
    gradient: (f32, f32),
}

fn prototypes(seed: u64) -> Vec<Prototype> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..PROTOTYPES)
        .map(|_| Prototype {
            blobs: (0..rng.gen_range(2..6))
                .map(|_| {
                    let side = SIDE as f32;
                    (
                        rng.gen_range(0.0..side),
                        rng.gen_range(0.0..side),
                        rng.gen_range(3.0..side / 3.0),
                        rng.gen_range(-1.0..1.0),
                    )
                })
                .collect(),
            gradient: (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)),
        })
        .collect()
}

/// Image `number`: one prototype shifted by a few pixels, with its own light and noise.
fn draw(prototypes: &[Prototype], seed: u64, number: usize) -> image::GrayImage {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (number as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let prototype = &prototypes[rng.gen_range(0..prototypes.len())];
    let (dx, dy) = (rng.gen_range(-3.0..3.0), rng.gen_range(-3.0..3.0));
    let (gain, offset) = (rng.gen_range(0.7..1.3), rng.gen_range(-0.15..0.15));
    let side = SIDE as f32;
    image::GrayImage::from_fn(SIDE, SIDE, |x, y| {
        let (x, y) = (x as f32 - dx, y as f32 - dy);
        let mut value = 0.5 + 0.2 * (prototype.gradient.0 * x + prototype.gradient.1 * y) / side;
        for &(cx, cy, radius, weight) in &prototype.blobs {
            let d2 = (x - cx).powi(2) + (y - cy).powi(2);
            value += 0.4 * weight * (-d2 / (2.0 * radius * radius)).exp();
        }
        let noise: f32 = rng.gen_range(-0.04..0.04);
        let value = (value * gain + offset + noise).clamp(0.0, 1.0);
        image::Luma([(value * 255.0).round() as u8])
    })
}

struct Report<'a> {
    args: &'a Args,
    workers: usize,
    generate_s: f64,
    cold_s: f64,
    recall: Recall,
    spans: Vec<f64>,
    samples: Vec<Sample>,
    refit_images: Option<u64>,
}

impl Report<'_> {
    fn markdown(&self) -> String {
        let args = self.args;
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mut text = format!(
            "# Load: FindSimilar over gRPC while the daemon ingests and refits\n\n\
             {} images (64x64 PNG, features at {}x{} pixels), {} clients on their own \
             connections, k = {}; {cores} cores, {} ingest workers. Library written in \
             {:.1} s; first model after {:.1} s. Reproduce: `cargo bench --bench load -- \
             --images {} --arrivals {} --clients {} --dim {}`.\n\n",
            args.images,
            args.dim,
            args.dim,
            args.clients,
            args.k,
            self.workers,
            self.generate_s,
            self.cold_s,
            args.images,
            args.arrivals,
            args.clients,
            args.dim,
        );
        text += "| phase | seconds | calls | failed | calls/s | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |\n";
        text += "|---|---|---|---|---|---|---|---|---|\n";
        for (index, name) in PHASES.iter().enumerate() {
            let mut latencies: Vec<f64> = self
                .samples
                .iter()
                .filter(|sample| usize::from(sample.phase) == index)
                .map(|sample| sample.latency.as_secs_f64() * 1e3)
                .collect();
            let failed =
                self.samples.iter().filter(|s| usize::from(s.phase) == index && !s.ok).count();
            latencies.sort_by(f64::total_cmp);
            let seconds = self.spans.get(index).copied().unwrap_or(0.0);
            let what = match index {
                1 => format!("{name} {} new files", args.arrivals),
                2 => format!(
                    "{name} on {} images",
                    self.refit_images.map_or("?".to_string(), |n| n.to_string())
                ),
                _ => name.to_string(),
            };
            text += &format!(
                "| {what} | {seconds:.1} | {} | {failed} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                latencies.len(),
                latencies.len() as f64 / seconds.max(1e-9),
                quantile(&latencies, 0.50),
                quantile(&latencies, 0.90),
                quantile(&latencies, 0.99),
                latencies.last().copied().unwrap_or(f64::NAN),
            );
        }
        let recall = &self.recall;
        text += &format!(
            "\nRecall@{k} of FindSimilar against an exact scan of the same {n} projected \
             vectors, over {q} seeded queries on the idle daemon: mean **{:.4}**, worst {:.2}. \
             One exact scan (all cores) took {:.2} ms a query; one FindSimilar call, \
             one at a time, {:.2} ms: {:.1}x.\n",
            recall.mean,
            recall.worst,
            recall.brute_force_ms,
            recall.api_ms,
            recall.brute_force_ms / recall.api_ms,
            k = args.k,
            n = args.images,
            q = recall.queries,
        );
        text
    }
}

/// The `q` quantile of sorted values, by the nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
