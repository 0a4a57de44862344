//! An embedded HNSW graph (crate `hnsw_rs`) behind [`VectorIndex`], with its save and load.
//!
//! [`HnswIndex`] owns the graph, refuses bad vectors and reused ids, widens a filtered search
//! that comes back short, scans apart the few points that the graph cannot reach (about one in
//! a thousand: no other point links to them after pruning), and saves the graph as a folder:
//! the two `hnsw_rs` dump files plus a small sidecar that records the dimension, the
//! parameters, the point count and a blake3 checksum of each dump file. Loading checks all of
//! these before `hnsw_rs` reads a byte, because `hnsw_rs` panics or even ends the process on
//! damaged input.
//!
//! Not done well yet: nothing is ever deleted from the graph (the caller filters removed points
//! and rebuilds at refit); unreachable points are only looked for after a build or a load, so a
//! point orphaned by later inserts can be missed until the next one; a parallel build is not
//! reproducible bit for bit; dumps are written in the machine's byte order and word size, so
//! they only move between like machines; and a save swaps folders with two renames, so a crash
//! between them leaves no index under the tag (a load then reports [`IndexError::NotFound`] and
//! the caller rebuilds).

use std::any::Any;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::{Hnsw, Neighbour};
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::DistL2;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::{euclidean, Hit, IndexError, IndexParams, NearestK, PointId, VectorIndex};

/// An HNSW graph over Euclidean distance, safe to search and insert into from many threads.
///
/// Searches take a `keep` predicate, so removed points are skipped without rebuilding; a search
/// returns fewer than `k` hits only when fewer than `k` points are kept.
pub struct HnswIndex {
    /// The graph. Declared before `_loader` so that it is dropped first: see [`HnswIndex::load`].
    graph: Hnsw<'static, f32, DistL2>,
    /// The ids inserted so far, so that a second point under the same id is refused.
    ids: Mutex<HashSet<PointId>>,
    /// Taken shared by each insert and exclusively by a save, so that a dump never sees a point
    /// half linked or a point count that disagrees with its layers.
    insert_gate: RwLock<()>,
    /// The length of every vector.
    dim: usize,
    /// The parameters the graph was built with; `ef_search` is read on every query.
    params: IndexParams,
    /// The points no other point links to in the bottom layer, found after a build or a load,
    /// with their vectors: a graph search cannot reach them, so every search scans them apart.
    orphans: Vec<(PointId, Vec<f32>)>,
    /// The `hnsw_rs` reader a loaded graph came from, kept alive as long as `graph`.
    _loader: Option<Box<HnswIo>>,
}

impl HnswIndex {
    /// An empty index for vectors of length `dim`, with room reserved for `capacity_hint` points.
    pub fn new(dim: usize, capacity_hint: usize, params: IndexParams) -> Result<Self, IndexError> {
        params.validate()?;
        check_dim(dim)?;
        let graph = Hnsw::new(
            params.max_connections,
            capacity_hint,
            DUMP_LAYERS,
            params.ef_construction,
            DistL2,
        );
        Ok(HnswIndex::from_graph(graph, dim, params, HashSet::new(), None))
    }

    /// An index over `points`, `(id, vector)` pairs, inserted in parallel on the current rayon
    /// pool (run it inside `ThreadPool::install` to choose the threads).
    ///
    /// Every point is checked before the first is inserted, so an error leaves nothing half
    /// built. The graph is not reproducible bit for bit: threads race for the layer draws (from
    /// a generator with a fixed seed) and for the order of linking, so two builds over the same
    /// points give slightly different graphs and may differ in the last hits of a query. A
    /// one-thread pool removes both races.
    pub fn build<V>(
        dim: usize,
        points: &[(PointId, V)],
        params: IndexParams,
    ) -> Result<Self, IndexError>
    where
        V: AsRef<[f32]> + Sync,
    {
        let started = Instant::now();
        let mut index = HnswIndex::new(dim, points.len(), params)?;
        {
            let mut ids = index.lock_ids();
            for (id, vector) in points {
                check_vector(dim, vector.as_ref())?;
                if !ids.insert(*id) {
                    return Err(IndexError::DuplicateId { id: *id });
                }
            }
        }

        let batch: Vec<(&[f32], usize)> =
            points.iter().map(|(id, vector)| (vector.as_ref(), *id)).collect();
        index.graph.parallel_insert_slice(&batch);
        index.orphans = find_orphans(&index.graph);
        let n_orphans = index.orphans.len();
        let elapsed_ms = elapsed_ms(started);
        debug!(n_points = points.len(), n_orphans, dim, elapsed_ms, "index built");
        Ok(index)
    }

    /// Saves the index as the folder `dir/tag`, replacing any earlier save under that tag.
    ///
    /// The files are written and synced in a hidden sibling folder which is then renamed into
    /// place, so a reader never sees a half-written save. Inserts wait while the graph is
    /// dumped; searches do not. Two saves under one tag must not overlap.
    pub fn save(&self, dir: &Path, tag: &str) -> Result<(), IndexError> {
        check_tag(tag)?;
        let started = Instant::now();
        fs::create_dir_all(dir).map_err(|cause| io_error(dir, cause))?;
        remove_leftovers(dir, tag)?;

        let staging = dir.join(format!(".{tag}{STAGING_MARK}{}", unique_suffix()));
        fs::create_dir(&staging).map_err(|cause| io_error(&staging, cause))?;
        let target = dir.join(tag);
        let saved = self.write_folder(&staging).and_then(|n_points| {
            swap_into_place(&staging, &target, tag)?;
            Ok(n_points)
        });
        if saved.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }

        let n_points = saved?;
        debug!(path = %target.display(), n_points, elapsed_ms = elapsed_ms(started), "index saved");
        Ok(())
    }

    /// Loads the index saved as `dir/tag` by [`HnswIndex::save`].
    ///
    /// Fails with [`IndexError::NotFound`] when nothing was saved there, and with
    /// [`IndexError::Corrupt`] when the save is damaged, from another format version, or made
    /// for another dimension or other `max_connections` or `ef_construction`; the caller then
    /// rebuilds. `ef_search` is taken from `params`, not from the save.
    pub fn load(
        dir: &Path,
        tag: &str,
        expected_dim: usize,
        params: IndexParams,
    ) -> Result<Self, IndexError> {
        check_tag(tag)?;
        params.validate()?;
        check_dim(expected_dim)?;
        let started = Instant::now();
        let folder = dir.join(tag);
        check_is_folder(&folder)?;

        let sidecar = read_sidecar(&folder)?;
        sidecar.check_matches(&folder, expected_dim, &params)?;
        let index = match &sidecar.dump {
            None => HnswIndex::new(expected_dim, 0, params)?,
            Some(dump) => {
                dump.verify(&folder)?;
                HnswIndex::read_dump(&folder, dump, expected_dim, params)?
            }
        };
        if index.len() as u64 != sidecar.n_points {
            let message =
                format!("holds {} points, sidecar says {}", index.len(), sidecar.n_points);
            return Err(IndexError::Corrupt { path: folder, message });
        }

        let (n_points, n_orphans) = (index.len(), index.orphans.len());
        let elapsed_ms = elapsed_ms(started);
        debug!(path = %folder.display(), n_points, n_orphans, elapsed_ms, "index loaded");
        Ok(index)
    }

    /// The parameters this index searches with.
    pub fn params(&self) -> IndexParams {
        self.params
    }

    fn from_graph(
        graph: Hnsw<'static, f32, DistL2>,
        dim: usize,
        params: IndexParams,
        ids: HashSet<PointId>,
        loader: Option<Box<HnswIo>>,
    ) -> Self {
        HnswIndex {
            ids: Mutex::new(ids),
            insert_gate: RwLock::new(()),
            dim,
            params,
            orphans: find_orphans(&graph),
            graph,
            _loader: loader,
        }
    }

    /// Reads the `hnsw_rs` dump files, already checked against their checksums.
    fn read_dump(
        folder: &Path,
        dump: &DumpFiles,
        dim: usize,
        params: IndexParams,
    ) -> Result<Self, IndexError> {
        let corrupt = |message: String| IndexError::Corrupt { path: folder.to_path_buf(), message };
        let mut loader = Box::new(HnswIo::new(folder, &dump.basename));
        let loader_ref: &mut HnswIo = &mut loader;
        let loaded = catch_panic(move || loader_ref.load_hnsw::<f32, DistL2>())
            .map_err(|panic| corrupt(format!("hnsw_rs panicked while reading it: {panic}")))?
            .map_err(|cause| corrupt(format!("hnsw_rs could not read it: {cause:#}")))?;

        // SAFETY: the lifetime parameter of `Hnsw` only bounds vectors that `hnsw_rs` maps from
        // the data file into memory, and that map is owned by the `HnswIo`. The loader above
        // uses the default `ReloadOptions`, which map nothing: every vector is copied into a
        // `Vec` owned by the graph, so the graph borrows nothing and `'static` is truthful. The
        // loader is kept anyway, boxed (its address never changes) and in a field declared after
        // `graph` (fields drop in declaration order), so the graph would still be dropped first
        // if mapping were turned on. No `Arc<Point>` taken from the graph is kept beyond a call.
        let mut graph = unsafe {
            std::mem::transmute::<Hnsw<'_, f32, DistL2>, Hnsw<'static, f32, DistL2>>(loaded)
        };
        // A reloaded graph extends candidates on insert where a new one does not; match them.
        graph.set_extend_candidates(false);

        let stored_dim = graph.get_point_indexation().get_data_dimension();
        if stored_dim != dim {
            return Err(corrupt(format!("holds vectors of length {stored_dim}, expected {dim}")));
        }
        let ids = collect_ids(&graph).map_err(corrupt)?;
        Ok(HnswIndex::from_graph(graph, dim, params, ids, Some(loader)))
    }

    /// Dumps the graph and the sidecar into `folder` and syncs them; returns the point count.
    fn write_folder(&self, folder: &Path) -> Result<u64, IndexError> {
        let (n_points, dump) = {
            let _gate = self.insert_gate.write().unwrap_or_else(PoisonError::into_inner);
            let n_points = self.graph.get_nb_point() as u64;
            // hnsw_rs cannot dump a graph without points, so an empty index is a sidecar alone.
            let dump = if n_points == 0 { None } else { Some(self.dump_graph(folder)?) };
            (n_points, dump)
        };
        let sidecar = Sidecar {
            magic: SIDECAR_MAGIC,
            format_version: FORMAT_VERSION,
            dim: self.dim as u64,
            params: self.params,
            n_points,
            dump,
        };
        write_sidecar(folder, &sidecar)?;
        sync_folder(folder)?;
        Ok(n_points)
    }

    fn dump_graph(&self, folder: &Path) -> Result<DumpFiles, IndexError> {
        let failed = |message: String| io_error(folder, io::Error::other(message));
        let basename = catch_panic(|| self.graph.file_dump(folder, DUMP_BASENAME))
            .map_err(|panic| failed(format!("hnsw_rs panicked while dumping: {panic}")))?
            .map_err(|cause| failed(format!("hnsw_rs could not dump: {cause:#}")))?;

        // hnsw_rs may pick another base name than the one asked for: use the one it returns.
        let graph = digest_and_sync(folder, &format!("{basename}.hnsw.graph"))?;
        let data = digest_and_sync(folder, &format!("{basename}.hnsw.data"))?;
        Ok(DumpFiles { basename, graph, data })
    }

    /// The k nearest kept points that the graph finds, or `None` if it finds fewer than k.
    fn search_graph(
        &self,
        query: &[f32],
        k: usize,
        keep: &(dyn Fn(PointId) -> bool + Sync),
    ) -> Option<Vec<Hit>> {
        // Most points are kept, and an unfiltered search filtered afterwards costs about half
        // of what hnsw_rs's filtered search does (which never stops early). Its answer is
        // trusted when k kept points lie in the nearer half of the beam, where it is accurate.
        let mut ef = self.params.ef_search.max(k);
        let found = self.graph.search(query, ef, ef);
        let trusted = (ef / 2).max(k);
        let kept: Vec<Hit> = found
            .iter()
            .take(trusted)
            .filter(|neighbour| keep(neighbour.get_origin_id()))
            .take(k)
            .map(to_hit)
            .collect();
        if kept.len() == k {
            return Some(kept);
        }

        // Too many were filtered out: search among the kept points only, widening the beam at
        // each retry, since the kept points may be few or poorly linked.
        let n_points = self.len();
        let filter = |id: &PointId| keep(*id);
        for _ in 0..=MAX_WIDENINGS {
            let found = self.graph.search_filter(query, k, ef, Some(&filter));
            if found.len() >= k {
                return Some(found.iter().take(k).map(to_hit).collect());
            }
            if ef >= n_points {
                break;
            }
            ef = ef.saturating_mul(WIDENING_FACTOR).min(n_points);
        }
        None
    }

    /// Merges the kept orphans nearer than the farthest hit into `hits`.
    fn add_orphans(
        &self,
        hits: Vec<Hit>,
        query: &[f32],
        k: usize,
        keep: &(dyn Fn(PointId) -> bool + Sync),
    ) -> Vec<Hit> {
        if self.orphans.is_empty() {
            return hits;
        }
        let mut nearest = NearestK::new(k);
        for hit in &hits {
            nearest.offer(hit.id, hit.distance);
        }
        for (id, vector) in &self.orphans {
            // The graph may have reached an orphan all the same, from an upper layer.
            if keep(*id) && hits.iter().all(|hit| hit.id != *id) {
                nearest.offer(*id, euclidean(query, vector));
            }
        }
        nearest.into_sorted()
    }

    /// The k nearest kept points by a scan of every point: the last resort of a search.
    fn scan(&self, query: &[f32], k: usize, keep: &(dyn Fn(PointId) -> bool + Sync)) -> Vec<Hit> {
        let mut nearest = NearestK::new(k);
        let points = self.graph.get_point_indexation();
        for layer in 0..DUMP_LAYERS {
            // The iterator indexes the layer table unchecked; an absent layer counts 0 points.
            if points.get_layer_nb_point(layer) == 0 {
                continue;
            }
            for point in points.get_layer_iterator(layer) {
                let id = point.get_origin_id();
                if keep(id) {
                    nearest.offer(id, euclidean(query, point.get_v()));
                }
            }
        }
        nearest.into_sorted()
    }

    fn lock_ids(&self) -> MutexGuard<'_, HashSet<PointId>> {
        // A panic elsewhere cannot leave the set half changed: one insert is one call.
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl VectorIndex for HnswIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.graph.get_nb_point()
    }

    fn insert(&self, id: PointId, vector: &[f32]) -> Result<(), IndexError> {
        check_vector(self.dim, vector)?;
        let _gate = self.insert_gate.read().unwrap_or_else(PoisonError::into_inner);
        if !self.lock_ids().insert(id) {
            return Err(IndexError::DuplicateId { id });
        }
        self.graph.insert_slice((vector, id));
        Ok(())
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        keep: &(dyn Fn(PointId) -> bool + Sync),
    ) -> Result<Vec<Hit>, IndexError> {
        check_vector(self.dim, query)?;
        let n_points = self.len();
        if k == 0 || n_points == 0 {
            return Ok(Vec::new());
        }

        match self.search_graph(query, k, keep) {
            Some(hits) => Ok(self.add_orphans(hits, query, k, keep)),
            None => {
                debug!(k, n_points, "filtered search came back short, scanning every point");
                Ok(self.scan(query, k, keep))
            }
        }
    }
}

/// `hnsw_rs` only dumps graphs created with this many layers.
const DUMP_LAYERS: usize = 16;

/// How many times a short search is retried with a wider beam before a full scan.
const MAX_WIDENINGS: usize = 2;

/// How much wider the beam gets at each retry.
const WIDENING_FACTOR: usize = 4;

/// The base name asked of `hnsw_rs` for its two dump files.
const DUMP_BASENAME: &str = "index";

/// The sidecar's file name inside a saved folder.
const SIDECAR_FILE: &str = "index.meta";

/// Marks a sidecar as ours before anything else in it is trusted.
const SIDECAR_MAGIC: [u8; 8] = *b"CLUSTIDX";

/// Changes whenever the layout of a saved folder changes; older saves are then rebuilt.
const FORMAT_VERSION: u32 = 1;

/// A sidecar is a few hundred bytes; a larger one is not ours.
const SIDECAR_MAX_BYTES: usize = 64 * 1024;

/// Marks a hidden sibling folder that a save is being written into.
const STAGING_MARK: &str = ".staging-";

/// Marks a hidden sibling folder holding the save that the last one replaced.
const RETIRED_MARK: &str = ".retired-";

/// What a save records beside the dump, to decide at load whether the dump can be trusted.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    magic: [u8; 8],
    format_version: u32,
    dim: u64,
    params: IndexParams,
    n_points: u64,
    /// `None` for an index without points, which `hnsw_rs` cannot dump.
    dump: Option<DumpFiles>,
}

/// The two files of an `hnsw_rs` dump.
#[derive(Debug, Serialize, Deserialize)]
struct DumpFiles {
    /// The base name `hnsw_rs` wrote under; the files are `<basename>.hnsw.{graph,data}`.
    basename: String,
    graph: FileDigest,
    data: FileDigest,
}

/// A file's name, length and blake3 hash at the time it was saved.
#[derive(Debug, Serialize, Deserialize)]
struct FileDigest {
    file_name: String,
    n_bytes: u64,
    blake3: [u8; 32],
}

impl Sidecar {
    fn check_matches(
        &self,
        folder: &Path,
        expected_dim: usize,
        params: &IndexParams,
    ) -> Result<(), IndexError> {
        let corrupt = |message: String| IndexError::Corrupt { path: folder.to_path_buf(), message };
        if self.magic != SIDECAR_MAGIC {
            return Err(corrupt("sidecar is not a clustimage index sidecar".to_string()));
        }
        if self.format_version != FORMAT_VERSION {
            let message =
                format!("format version {}, expected {FORMAT_VERSION}", self.format_version);
            return Err(corrupt(message));
        }
        if self.dim != expected_dim as u64 {
            return Err(corrupt(format!(
                "built for dimension {}, expected {expected_dim}",
                self.dim
            )));
        }
        if self.params.max_connections != params.max_connections
            || self.params.ef_construction != params.ef_construction
        {
            let message = format!(
                "built with max_connections {} and ef_construction {}, expected {} and {}",
                self.params.max_connections,
                self.params.ef_construction,
                params.max_connections,
                params.ef_construction
            );
            return Err(corrupt(message));
        }
        if self.dump.is_none() && self.n_points != 0 {
            return Err(corrupt(format!("sidecar counts {} points but no dump", self.n_points)));
        }
        Ok(())
    }
}

impl DumpFiles {
    fn verify(&self, folder: &Path) -> Result<(), IndexError> {
        for expected in [&self.graph, &self.data] {
            let path = folder.join(&expected.file_name);
            let found = digest(&path)?;
            if found.n_bytes != expected.n_bytes || found.blake3 != expected.blake3 {
                let message = format!(
                    "{} bytes with another checksum than the {} bytes saved",
                    found.n_bytes, expected.n_bytes
                );
                return Err(IndexError::Corrupt { path, message });
            }
        }
        Ok(())
    }
}

fn to_hit(neighbour: &Neighbour) -> Hit {
    // DistL2 from anndists returns the square root of the summed squares: a true distance.
    Hit { id: neighbour.get_origin_id(), distance: neighbour.get_distance() }
}

/// The points that no other point links to in the bottom layer, with copies of their vectors.
///
/// hnsw_rs drops a point's farthest link when a new point crowds its list, so a point can lose
/// every incoming link; a search only reaches such a point if it happens to start there.
fn find_orphans(graph: &Hnsw<'static, f32, DistL2>) -> Vec<(PointId, Vec<f32>)> {
    let points = graph.get_point_indexation();
    let layers = (0..DUMP_LAYERS).filter(|layer| points.get_layer_nb_point(*layer) > 0);
    let mut linked = HashSet::with_capacity(graph.get_nb_point());
    for layer in layers.clone() {
        for point in points.get_layer_iterator(layer) {
            let links = point.get_neighborhood_id().into_iter().next().unwrap_or_default();
            let id = point.get_origin_id();
            linked.extend(links.iter().map(Neighbour::get_origin_id).filter(|to| *to != id));
        }
    }

    let mut orphans = Vec::new();
    for layer in layers {
        for point in points.get_layer_iterator(layer) {
            if !linked.contains(&point.get_origin_id()) {
                orphans.push((point.get_origin_id(), point.get_v().to_vec()));
            }
        }
    }
    orphans
}

fn check_dim(dim: usize) -> Result<(), IndexError> {
    if dim == 0 {
        return Err(IndexError::InvalidParameter { field: "dim", value: 0, allowed: "1 or more" });
    }
    Ok(())
}

fn check_vector(dim: usize, vector: &[f32]) -> Result<(), IndexError> {
    if vector.len() != dim {
        return Err(IndexError::Dimension { expected: dim, got: vector.len() });
    }
    match vector.iter().position(|value| !value.is_finite()) {
        Some(position) => Err(IndexError::NonFinite { position, value: vector[position] }),
        None => Ok(()),
    }
}

fn check_tag(tag: &str) -> Result<(), IndexError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let valid = (1..=100).contains(&tag.len()) && !tag.starts_with('.') && tag.chars().all(allowed);
    if valid {
        Ok(())
    } else {
        Err(IndexError::InvalidTag { tag: tag.to_string() })
    }
}

fn check_is_folder(folder: &Path) -> Result<(), IndexError> {
    match fs::metadata(folder) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(IndexError::Corrupt {
            path: folder.to_path_buf(),
            message: "not a folder".to_string(),
        }),
        Err(cause) if cause.kind() == io::ErrorKind::NotFound => {
            Err(IndexError::NotFound { path: folder.to_path_buf() })
        }
        Err(cause) => Err(io_error(folder, cause)),
    }
}

/// The ids of every point of a freshly loaded graph; an error if one appears twice.
fn collect_ids(graph: &Hnsw<'static, f32, DistL2>) -> Result<HashSet<PointId>, String> {
    let points = graph.get_point_indexation();
    let mut ids = HashSet::with_capacity(graph.get_nb_point());
    for layer in 0..DUMP_LAYERS {
        if points.get_layer_nb_point(layer) == 0 {
            continue;
        }
        for point in points.get_layer_iterator(layer) {
            if !ids.insert(point.get_origin_id()) {
                return Err(format!("point {} appears twice", point.get_origin_id()));
            }
        }
    }
    Ok(ids)
}

fn read_sidecar(folder: &Path) -> Result<Sidecar, IndexError> {
    let path = folder.join(SIDECAR_FILE);
    let corrupt = |message: String| IndexError::Corrupt { path: path.clone(), message };
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(cause) if cause.kind() == io::ErrorKind::NotFound => {
            return Err(corrupt("sidecar is missing".to_string()));
        }
        Err(cause) => return Err(io_error(&path, cause)),
    };
    if bytes.len() > SIDECAR_MAX_BYTES {
        return Err(corrupt(format!("sidecar is {} bytes long", bytes.len())));
    }

    let config = bincode::config::standard().with_limit::<SIDECAR_MAX_BYTES>();
    let (sidecar, n_read) = bincode::serde::decode_from_slice::<Sidecar, _>(&bytes, config)
        .map_err(|cause| corrupt(format!("sidecar does not decode: {cause}")))?;
    if n_read != bytes.len() {
        return Err(corrupt(format!(
            "sidecar has {} bytes of trailing data",
            bytes.len() - n_read
        )));
    }
    Ok(sidecar)
}

fn write_sidecar(folder: &Path, sidecar: &Sidecar) -> Result<(), IndexError> {
    let path = folder.join(SIDECAR_FILE);
    let bytes = bincode::serde::encode_to_vec(sidecar, bincode::config::standard())
        .map_err(|cause| io_error(&path, io::Error::other(cause)))?;
    fs::write(&path, bytes).map_err(|cause| io_error(&path, cause))?;
    File::open(&path).and_then(|file| file.sync_all()).map_err(|cause| io_error(&path, cause))
}

fn digest(path: &Path) -> Result<FileDigest, IndexError> {
    let (digest, _file) = open_and_digest(path)?;
    Ok(digest)
}

/// Hashes a freshly dumped file and flushes it to the disk.
fn digest_and_sync(folder: &Path, file_name: &str) -> Result<FileDigest, IndexError> {
    let path = folder.join(file_name);
    let (digest, file) = open_and_digest(&path)?;
    file.sync_all().map_err(|cause| io_error(&path, cause))?;
    Ok(digest)
}

fn open_and_digest(path: &Path) -> Result<(FileDigest, File), IndexError> {
    let fail = |cause: io::Error| match cause.kind() {
        io::ErrorKind::NotFound => IndexError::Corrupt {
            path: path.to_path_buf(),
            message: "dump file is missing".to_string(),
        },
        _ => io_error(path, cause),
    };
    let mut file = File::open(path).map_err(fail)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&mut file).map_err(fail)?;

    let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned());
    let digest = FileDigest {
        file_name: file_name.unwrap_or_default(),
        n_bytes: hasher.count(),
        blake3: *hasher.finalize().as_bytes(),
    };
    Ok((digest, file))
}

/// Puts the folder `staging` at `target`, retiring whatever was there.
fn swap_into_place(staging: &Path, target: &Path, tag: &str) -> Result<(), IndexError> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let retired = parent.join(format!(".{tag}{RETIRED_MARK}{}", unique_suffix()));
    // A folder cannot be renamed over a folder that has files in it, so the old one steps
    // aside first.
    let had_previous = match fs::rename(target, &retired) {
        Ok(()) => true,
        Err(cause) if cause.kind() == io::ErrorKind::NotFound => false,
        Err(cause) => return Err(io_error(target, cause)),
    };
    if let Err(cause) = fs::rename(staging, target) {
        if had_previous {
            let _ = fs::rename(&retired, target);
        }
        return Err(io_error(target, cause));
    }
    sync_folder(parent)?;

    if had_previous {
        if let Err(cause) = fs::remove_dir_all(&retired) {
            warn!(path = %retired.display(), %cause, "cannot remove the previous index");
        }
    }
    Ok(())
}

/// Removes the hidden folders that an interrupted save of `tag` left behind.
fn remove_leftovers(dir: &Path, tag: &str) -> Result<(), IndexError> {
    let prefixes = [format!(".{tag}{STAGING_MARK}"), format!(".{tag}{RETIRED_MARK}")];
    let entries = fs::read_dir(dir).map_err(|cause| io_error(dir, cause))?;
    for entry in entries {
        let entry = entry.map_err(|cause| io_error(dir, cause))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if prefixes.iter().any(|prefix| name.starts_with(prefix.as_str())) {
            let path = entry.path();
            debug!(path = %path.display(), "removing what an interrupted save left");
            if let Err(cause) = fs::remove_dir_all(&path) {
                warn!(path = %path.display(), %cause, "cannot remove an interrupted save");
            }
        }
    }
    Ok(())
}

fn sync_folder(folder: &Path) -> Result<(), IndexError> {
    File::open(folder).and_then(|file| file.sync_all()).map_err(|cause| io_error(folder, cause))
}

/// A suffix that no other save, in this process or an earlier one, has used.
fn unique_suffix() -> String {
    static N_SAVES: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    format!("{}-{nanos}-{}", std::process::id(), N_SAVES.fetch_add(1, Ordering::Relaxed))
}

fn io_error(path: &Path, cause: io::Error) -> IndexError {
    IndexError::Io { path: PathBuf::from(path), cause }
}

/// Runs `work`, turning a panic into an error. `hnsw_rs` asserts on much of what it reads and
/// writes; the checksums make those asserts unreachable for our own files, and this keeps any
/// that remain from taking the daemon down (unless it is built with `panic = "abort"`).
fn catch_panic<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(work)).map_err(panic_message)
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message.to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_string()
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis().try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{brute_force, recall_at_k};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn keep_all(_: PointId) -> bool {
        true
    }

    /// `n_points` vectors of length `dim` around `n_clusters` centres, ids `0..n_points`.
    fn clustered(n_points: usize, dim: usize, seed: u64) -> Vec<(PointId, Vec<f32>)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n_clusters = 40;
        let centres: Vec<Vec<f32>> = (0..n_clusters)
            .map(|_| (0..dim).map(|_| rng.gen_range(-10.0..10.0)).collect())
            .collect();
        (0..n_points)
            .map(|id| {
                let centre = &centres[rng.gen_range(0..n_clusters)];
                (id, centre.iter().map(|c| c + gaussian(&mut rng)).collect())
            })
            .collect()
    }

    /// A standard normal draw (Box-Muller).
    fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
        let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = rng.gen();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }

    fn build(points: &[(PointId, Vec<f32>)]) -> HnswIndex {
        let dim = points[0].1.len();
        HnswIndex::build(dim, points, IndexParams::default()).unwrap()
    }

    fn ids(hits: &[Hit]) -> Vec<PointId> {
        hits.iter().map(|hit| hit.id).collect()
    }

    fn mean_recall(
        index: &HnswIndex,
        points: &[(PointId, Vec<f32>)],
        queries: &[(PointId, Vec<f32>)],
        keep: &(dyn Fn(PointId) -> bool + Sync),
    ) -> f64 {
        let total: f64 = queries
            .iter()
            .map(|(_, query)| {
                let found = index.search(query, 10, keep).unwrap();
                assert!(found.windows(2).all(|pair| pair[0].distance <= pair[1].distance));
                recall_at_k(&found, &brute_force(points, query, 10, keep))
            })
            .sum();
        total / queries.len() as f64
    }

    #[test]
    fn recall_at_10_is_high_on_clustered_data() {
        let points = clustered(5_000, 32, 1);
        let index = build(&points);
        let queries = clustered(200, 32, 2);

        let recall = mean_recall(&index, &points, &queries, &keep_all);
        assert!(recall >= 0.95, "recall@10 {recall}");
    }

    #[test]
    fn distances_are_euclidean_not_squared() {
        let index = HnswIndex::new(2, 4, IndexParams::default()).unwrap();
        index.insert(1, &[3.0, 4.0]).unwrap();
        index.insert(2, &[30.0, 40.0]).unwrap();

        let hits = index.search(&[0.0, 0.0], 2, &keep_all).unwrap();
        assert_eq!(ids(&hits), vec![1, 2]);
        assert!((hits[0].distance - 5.0).abs() < 1e-5, "{hits:?}");
        assert!((hits[1].distance - 50.0).abs() < 1e-4, "{hits:?}");
    }

    #[test]
    fn self_query_finds_itself() {
        let points = clustered(5_000, 32, 3);
        let index = build(&points);

        // The graph is approximate and built in parallel, so a rare point may be missed
        // by its own query; one in a thousand is the budget.
        let missed: Vec<PointId> = points
            .iter()
            .filter(|(id, vector)| {
                let hits = index.search(vector, 10, &keep_all).unwrap();
                hits[0].id != *id || hits[0].distance >= 1e-4
            })
            .map(|(id, _)| *id)
            .collect();
        assert!(missed.len() <= points.len() / 1000, "not found by their own query: {missed:?}");
    }

    #[test]
    fn filtering_excludes_ids_and_still_returns_k() {
        let points = clustered(5_000, 32, 4);
        let index = build(&points);
        let queries = clustered(100, 32, 5);

        // One in ten kept mostly takes the unfiltered path, one in fifty the filtered one.
        for one_in in [10, 50] {
            let keep = |id: PointId| id.is_multiple_of(one_in);
            for (_, query) in &queries {
                let hits = index.search(query, 10, &keep).unwrap();
                assert_eq!(hits.len(), 10);
                assert!(hits.iter().all(|hit| keep(hit.id)), "{hits:?}");
            }
            let recall = mean_recall(&index, &points, &queries, &keep);
            assert!(recall >= 0.9, "recall@10 keeping one point in {one_in}: {recall}");
        }
    }

    #[test]
    fn filtering_down_to_fewer_than_k_returns_every_kept_point() {
        let points = clustered(2_000, 16, 6);
        let index = build(&points);
        let kept = [17, 401, 1_999];
        let keep = |id: PointId| kept.contains(&id);

        let hits = index.search(&points[5].1, 10, &keep).unwrap();
        assert_eq!(hits, brute_force(&points, &points[5].1, 10, &keep));
        assert_eq!(hits.len(), 3);
    }

    #[test]
    fn inserts_and_searches_run_concurrently() {
        let points = clustered(4_000, 16, 7);
        let index = build(&points[..2_000]);

        std::thread::scope(|scope| {
            scope.spawn(|| {
                for (id, vector) in &points[2_000..] {
                    index.insert(*id, vector).unwrap();
                }
            });
            scope.spawn(|| {
                for (_, query) in points.iter().take(2_000).step_by(4) {
                    assert_eq!(index.search(query, 5, &keep_all).unwrap().len(), 5);
                }
            });
        });

        assert_eq!(index.len(), 4_000);
        let (last_id, last_vector) = &points[3_999];
        assert_eq!(index.search(last_vector, 1, &keep_all).unwrap()[0].id, *last_id);
    }

    #[test]
    fn save_then_load_gives_the_same_results() {
        let dir = tempfile::tempdir().unwrap();
        let points = clustered(3_000, 24, 8);
        let index = build(&points);
        index.save(dir.path(), "main").unwrap();

        let loaded = HnswIndex::load(dir.path(), "main", 24, IndexParams::default()).unwrap();
        assert_eq!(loaded.len(), index.len());
        for (_, query) in clustered(50, 24, 9) {
            let before = index.search(&query, 10, &keep_all).unwrap();
            let after = loaded.search(&query, 10, &keep_all).unwrap();
            assert_eq!(ids(&before), ids(&after));
        }
    }

    #[test]
    fn reloaded_index_takes_inserts_and_saves_again() {
        let dir = tempfile::tempdir().unwrap();
        let points = clustered(1_200, 8, 10);
        build(&points[..1_000]).save(dir.path(), "main").unwrap();

        let loaded = HnswIndex::load(dir.path(), "main", 8, IndexParams::default()).unwrap();
        assert!(matches!(loaded.insert(0, &points[0].1), Err(IndexError::DuplicateId { id: 0 })));
        for (id, vector) in &points[1_000..] {
            loaded.insert(*id, vector).unwrap();
        }
        loaded.save(dir.path(), "main").unwrap();
        drop(loaded);

        let reloaded = HnswIndex::load(dir.path(), "main", 8, IndexParams::default()).unwrap();
        assert_eq!(reloaded.len(), 1_200);
        let (id, vector) = &points[1_100];
        assert_eq!(reloaded.search(vector, 1, &keep_all).unwrap()[0].id, *id);
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["main".to_string()], "leftover folders");
    }

    #[test]
    fn empty_index_saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        HnswIndex::new(4, 0, IndexParams::default()).unwrap().save(dir.path(), "empty").unwrap();

        let loaded = HnswIndex::load(dir.path(), "empty", 4, IndexParams::default()).unwrap();
        assert!(loaded.is_empty());
        assert!(loaded.search(&[0.0; 4], 3, &keep_all).unwrap().is_empty());
        loaded.insert(3, &[1.0; 4]).unwrap();
        assert_eq!(ids(&loaded.search(&[0.0; 4], 3, &keep_all).unwrap()), vec![3]);
    }

    /// Saves a small index under `main` and returns the folder and the dump file paths.
    fn saved_index(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        build(&clustered(500, 8, 11)).save(dir, "main").unwrap();
        let folder = dir.join("main");
        (folder.clone(), folder.join("index.hnsw.graph"), folder.join("index.hnsw.data"))
    }

    fn assert_corrupt(result: Result<HnswIndex, IndexError>, expected_path: &Path) {
        match result {
            Err(IndexError::Corrupt { path, .. }) => assert_eq!(path, expected_path),
            Err(other) => panic!("expected a corrupt index, got {other}"),
            Ok(_) => panic!("expected a corrupt index, got one that loaded"),
        }
    }

    #[test]
    fn truncated_dump_fails_to_load_without_panicking() {
        for victim in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let (_, graph_file, data_file) = saved_index(dir.path());
            let path = if victim == 1 { graph_file } else { data_file };
            let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
            let n_bytes = file.metadata().unwrap().len();
            file.set_len(n_bytes / 2).unwrap();

            let result = HnswIndex::load(dir.path(), "main", 8, IndexParams::default());
            assert_corrupt(result, &path);
        }
    }

    #[test]
    fn altered_dump_fails_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, data_file) = saved_index(dir.path());
        let mut bytes = fs::read(&data_file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        fs::write(&data_file, bytes).unwrap();

        let result = HnswIndex::load(dir.path(), "main", 8, IndexParams::default());
        assert_corrupt(result, &data_file);
    }

    #[test]
    fn missing_pieces_fail_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let result = HnswIndex::load(dir.path(), "absent", 8, IndexParams::default());
        assert!(matches!(result, Err(IndexError::NotFound { .. })));

        let (folder, graph_file, _) = saved_index(dir.path());
        fs::remove_file(&graph_file).unwrap();
        assert_corrupt(HnswIndex::load(dir.path(), "main", 8, IndexParams::default()), &graph_file);

        let sidecar = folder.join(SIDECAR_FILE);
        fs::write(&sidecar, b"not a sidecar").unwrap();
        assert_corrupt(HnswIndex::load(dir.path(), "main", 8, IndexParams::default()), &sidecar);
        fs::remove_file(&sidecar).unwrap();
        assert_corrupt(HnswIndex::load(dir.path(), "main", 8, IndexParams::default()), &sidecar);
    }

    #[test]
    fn mismatched_dimension_or_params_fail_to_load() {
        let dir = tempfile::tempdir().unwrap();
        let (folder, _, _) = saved_index(dir.path());

        assert_corrupt(HnswIndex::load(dir.path(), "main", 9, IndexParams::default()), &folder);
        let other = IndexParams { max_connections: 32, ..IndexParams::default() };
        assert_corrupt(HnswIndex::load(dir.path(), "main", 8, other), &folder);

        let wider_search = IndexParams { ef_search: 300, ..IndexParams::default() };
        let loaded = HnswIndex::load(dir.path(), "main", 8, wider_search).unwrap();
        assert_eq!(loaded.params(), wider_search);
    }

    #[test]
    fn wrong_dimensions_and_non_finite_values_are_refused() {
        let index = HnswIndex::new(3, 10, IndexParams::default()).unwrap();
        let result = index.insert(1, &[1.0, 2.0]);
        assert!(matches!(result, Err(IndexError::Dimension { expected: 3, got: 2 })));
        let result = index.insert(1, &[1.0, f32::NAN, 2.0]);
        assert!(matches!(result, Err(IndexError::NonFinite { position: 1, .. })));
        let result = index.search(&[f32::INFINITY, 0.0, 0.0], 1, &keep_all);
        assert!(matches!(result, Err(IndexError::NonFinite { position: 0, .. })));
        let result = index.search(&[0.0; 4], 1, &keep_all);
        assert!(matches!(result, Err(IndexError::Dimension { expected: 3, got: 4 })));
        assert!(index.is_empty());
    }

    #[test]
    fn build_refuses_bad_points_before_inserting_any() {
        let points = vec![(1, vec![0.0, 1.0]), (2, vec![1.0, 0.0]), (1, vec![2.0, 2.0])];
        let result = HnswIndex::build(2, &points, IndexParams::default());
        assert!(matches!(result, Err(IndexError::DuplicateId { id: 1 })));

        let points = vec![(1, vec![0.0, 1.0]), (2, vec![f32::NEG_INFINITY, 0.0])];
        let result = HnswIndex::build(2, &points, IndexParams::default());
        assert!(matches!(result, Err(IndexError::NonFinite { position: 0, .. })));
    }

    #[test]
    fn tags_that_are_not_plain_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let index = HnswIndex::new(2, 0, IndexParams::default()).unwrap();
        for tag in ["", "../up", ".hidden", "a/b"] {
            let result = index.save(dir.path(), tag);
            assert!(matches!(result, Err(IndexError::InvalidTag { .. })), "{tag:?}");
        }
    }
}
