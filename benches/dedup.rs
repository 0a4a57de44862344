//! `cargo bench --bench dedup`: the cost of checking one new image against 100,000 known
//! signatures with the [`DuplicateIndex`] (multi-index hashing), against a brute-force
//! scan that compares the same hashes with every known image.
//!
//! The known signatures are random (seeded), with one image in ten a near copy of an
//! earlier one (a few bits flipped), so that queries find something; real perceptual
//! hashes are less uniform than random bits, which fills some buckets more than others.
//! Each near copy keeps its parent's grids, so its hash matches are confirmed; a chance
//! match with a random image is not. The cost of computing the new image's signature
//! (decoding, hashing) is not included.
//! Options: `--images N` (default 100000), `--queries N` (default 2000).

use std::time::{Duration, Instant};

use clustimage::daemon::duplicates::Duplicates;
use clustimage::dedup::{
    DuplicateIndex, Grid, MatchParams, Signature, Variant, MIN_GRID_CORRELATION,
};
use clustimage::store::{ContentId, Store};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() {
    let n_images = option("--images", 100_000);
    let n_queries = option("--queries", 2_000);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let signatures: Vec<Signature> = (0..n_images).map(|_| random_signature(&mut rng)).collect();
    let signatures = with_near_copies(signatures, &mut rng);
    let params = MatchParams::default();

    let started = Instant::now();
    let mut index = DuplicateIndex::new(params);
    for (key, signature) in signatures.iter().enumerate() {
        index.insert(key as u32, content_of(key), signature);
    }
    let build = started.elapsed();

    let queries: Vec<Signature> = (0..n_queries)
        .map(|query_idx| {
            if query_idx % 2 == 0 {
                near(&signatures[rng.gen_range(0..n_images)], 4, &mut rng)
            } else {
                random_signature(&mut rng)
            }
        })
        .collect();
    let content = [0xab; 32];

    let mut indexed_times = Vec::with_capacity(n_queries);
    let mut indexed_found = 0;
    for query in &queries {
        let started = Instant::now();
        let hits = index.query(&content, query);
        indexed_times.push(started.elapsed());
        indexed_found += hits.len();
    }
    let mut scan_times = Vec::with_capacity(n_queries);
    let mut scan_found = 0;
    for query in &queries {
        let started = Instant::now();
        scan_found += brute_force(&signatures, query, &params);
        scan_times.push(started.elapsed());
    }
    assert_eq!(indexed_found, scan_found, "the index and the scan disagree");

    println!("{n_images} known images, {n_queries} queries (half near a known image)");
    println!(
        "index built in {:.2} s ({:.1} us per insert)",
        build.as_secs_f64(),
        build.as_secs_f64() * 1e6 / n_images as f64
    );
    println!("{:<22} {:>10} {:>10} {:>10}", "per query", "median", "p99", "max");
    report("DuplicateIndex::query", &mut indexed_times);
    report("brute-force scan", &mut scan_times);
    println!("matches found: {indexed_found} (both)");

    // The daemon's start: every signature from the store, then the links.
    let folder = tempfile::tempdir().expect("a temporary folder");
    let store = Store::open(folder.path()).expect("a store");
    let contents: Vec<ContentId> = (0..n_images).map(|key| ContentId(content_of(key))).collect();
    for (content, signature) in contents.iter().zip(&signatures) {
        store.put_signature(content, signature).expect("a write");
    }
    let mut sorted = contents.clone();
    sorted.sort_unstable();
    let started = Instant::now();
    let (first, _) = Duplicates::load(params, &store, &sorted).expect("a load");
    let searched = started.elapsed();
    let n_links = first.n_links();
    drop(first);
    store.flush().expect("a flush");
    let started = Instant::now();
    let (again, _) = Duplicates::load(params, &store, &sorted).expect("a load");
    let reloaded = started.elapsed();
    assert_eq!(again.n_links(), n_links);
    println!(
        "daemon start: {:.1} s to check every image once (a new store, or new thresholds), \
         {:.2} s to load them with their {n_links} links",
        searched.as_secs_f64(),
        reloaded.as_secs_f64()
    );
}

fn option(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|idx| args.get(idx + 1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn report(name: &str, times: &mut [Duration]) {
    times.sort();
    let us = |d: Duration| format!("{:.1} us", d.as_secs_f64() * 1e6);
    let p99 = times[(times.len() * 99 / 100).min(times.len() - 1)];
    println!(
        "{name:<22} {:>10} {:>10} {:>10}",
        us(times[times.len() / 2]),
        us(p99),
        us(times[times.len() - 1])
    );
}

fn content_of(key: usize) -> [u8; 32] {
    let mut content = [0; 32];
    content[..8].copy_from_slice(&(key as u64).to_le_bytes());
    content
}

fn random_signature(rng: &mut ChaCha8Rng) -> Signature {
    let grid = |rng: &mut ChaCha8Rng| Grid(std::array::from_fn(|_| rng.gen()));
    let (full, center) = (rng.gen(), rng.gen());
    let (grid, center_grid) = (grid(rng), grid(rng));
    Signature { full, center, tone: rng.gen(), flat: false, center_flat: false, grid, center_grid }
}

fn flip(hash: u64, n_bits: u32, rng: &mut ChaCha8Rng) -> u64 {
    (0..n_bits).fold(hash, |hash, _| hash ^ (1 << rng.gen_range(0..64)))
}

fn near(signature: &Signature, n_bits: u32, rng: &mut ChaCha8Rng) -> Signature {
    let mut copy = *signature;
    for hash in copy.full.iter_mut().chain(copy.center.iter_mut()) {
        *hash = flip(*hash, n_bits, rng);
    }
    copy
}

fn with_near_copies(mut signatures: Vec<Signature>, rng: &mut ChaCha8Rng) -> Vec<Signature> {
    for idx in (10..signatures.len()).step_by(10) {
        let parent = signatures[rng.gen_range(0..idx)];
        let n_bits = rng.gen_range(0..12);
        signatures[idx] = near(&parent, n_bits, rng);
    }
    signatures
}

/// The matches a scan finds: the same comparisons as the index makes, each hash match
/// confirmed by the grids in the same way, with every image.
fn brute_force(signatures: &[Signature], query: &Signature, params: &MatchParams) -> usize {
    let radius = params.duplicate_max_distance();
    let similar = params.similar_max_distance();
    let distance = |a: u64, b: u64| (a ^ b).count_ones();
    let agree = |a: &Grid, b: &Grid| a.correlation(b) >= MIN_GRID_CORRELATION;
    let grids: Vec<(Grid, Grid)> = Variant::ALL
        .iter()
        .map(|&variant| (query.grid.apply(variant), query.center_grid.apply(variant)))
        .collect();
    signatures
        .iter()
        .filter(|held| {
            let duplicate = (0..8).any(|v| {
                let (grid, center_grid) = &grids[v];
                (distance(query.full[v], held.full[0]) <= radius && agree(grid, &held.grid))
                    || (distance(query.full[v], held.center[0]) <= radius
                        && agree(grid, &held.center_grid))
                    || (distance(query.center[v], held.full[0]) <= radius
                        && agree(center_grid, &held.grid))
            });
            duplicate
                || (distance(query.full[0], held.full[0]) <= similar
                    && agree(&query.grid, &held.grid))
        })
        .count()
}
