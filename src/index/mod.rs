//! The vector index: finds the points nearest a query under the Euclidean distance.
//!
//! This module owns the [`VectorIndex`] trait that the rest of the daemon talks to, its error
//! type, its validated parameters, and an exact brute-force search used as the reference in tests
//! and benchmarks. The one implementation today is [`hnsw::HnswIndex`], an embedded HNSW graph;
//! a remote engine can sit behind the same trait later.
//!
//! Points are never deleted from an index: the caller keeps its own set of removed points and
//! passes a `keep` predicate to every search, and rebuilds the index at the next refit. An index
//! with many removed points therefore gets slower to search until that rebuild.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod hnsw;

pub use hnsw::HnswIndex;

/// Identifies a point in the index; the daemon maps it to a content hash.
pub type PointId = usize;

/// One search result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// The point found.
    pub id: PointId,
    /// Its Euclidean (L2) distance to the query, not squared.
    pub distance: f32,
}

/// What can go wrong while building, searching, saving or loading an index.
#[derive(thiserror::Error, Debug)]
pub enum IndexError {
    /// A file or folder could not be read or written.
    #[error("cannot access {path}: {cause}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What the operating system said.
        cause: std::io::Error,
    },
    /// No index was saved under this name; the caller builds one.
    #[error("no saved index at {path}")]
    NotFound {
        /// The folder that was expected to hold the index.
        path: PathBuf,
    },
    /// A saved index cannot be trusted (damaged, stale, or made with other settings); the caller
    /// rebuilds it from the store.
    #[error("saved index at {path} is unusable: {message}")]
    Corrupt {
        /// The folder or file found wanting.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
    /// A vector's length differs from the index's dimension.
    #[error("vector has {got} values, the index expects {expected}")]
    Dimension {
        /// The index's dimension.
        expected: usize,
        /// The length of the vector given.
        got: usize,
    },
    /// A vector holds a NaN or an infinity, which has no place in a distance.
    #[error("vector value at position {position} is {value}, not a finite number")]
    NonFinite {
        /// Where the first offending value sits in the vector.
        position: usize,
        /// The offending value.
        value: f32,
    },
    /// A point with this id is already in the index.
    #[error("point {id} is already in the index")]
    DuplicateId {
        /// The id given twice.
        id: PointId,
    },
    /// An index parameter is out of its allowed range.
    #[error("index parameter {field} is {value}, expected {allowed}")]
    InvalidParameter {
        /// The name of the field in [`IndexParams`].
        field: &'static str,
        /// The value given.
        value: usize,
        /// The allowed range, as text.
        allowed: &'static str,
    },
    /// A name under which an index is saved is not a plain file name.
    #[error("index tag {tag:?} must be 1-100 letters, digits, '-', '_' or '.', not led by '.'")]
    InvalidTag {
        /// The name given.
        tag: String,
    },
}

/// The settings of an HNSW graph, checked by [`IndexParams::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexParams {
    /// Links kept per point in the upper layers (twice as many in the bottom one), the `M` of
    /// the HNSW paper. Default 16: more links cost memory and build time and raise recall.
    pub max_connections: usize,
    /// Candidates examined when linking a new point. Default 200: a better graph for a slower
    /// build.
    pub ef_construction: usize,
    /// Candidates examined per query, at least `k`. Default 128: recall 0.95 or more on the
    /// clustered data of the tests.
    pub ef_search: usize,
}

/// The vector index behind which an HNSW (today) or a remote engine (later) sits.
pub trait VectorIndex: Send + Sync {
    /// The length of every vector in the index.
    fn dim(&self) -> usize;

    /// The number of points inserted, removed ones included.
    fn len(&self) -> usize;

    /// Whether no point was ever inserted.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a point. Takes `&self` so that inserts can run while other threads search.
    fn insert(&self, id: PointId, vector: &[f32]) -> Result<(), IndexError>;

    /// The k nearest points for which `keep(id)` is true, nearest first.
    ///
    /// Fewer than `k` hits come back only when fewer than `k` points are kept.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        keep: &(dyn Fn(PointId) -> bool + Sync),
    ) -> Result<Vec<Hit>, IndexError>;
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams { max_connections: 16, ef_construction: 200, ef_search: 128 }
    }
}

impl IndexParams {
    /// Checks every field against its allowed range; the error names the first bad field.
    pub fn validate(&self) -> Result<(), IndexError> {
        // hnsw_rs stores the link count in one byte and ends the process above 256.
        check_range("max_connections", self.max_connections, 2, 255, "2..=255")?;
        check_range("ef_construction", self.ef_construction, 1, 10_000, "1..=10000")?;
        check_range("ef_search", self.ef_search, 1, 10_000, "1..=10000")
    }
}

/// The exact k nearest points of `vectors` for which `keep(id)` is true, nearest first.
///
/// A linear scan, `O(n_points * dim)`: the reference that approximate searches are measured
/// against in tests and benchmarks.
///
/// # Panics
///
/// If a vector's length differs from the query's.
pub fn brute_force(
    vectors: &[(PointId, Vec<f32>)],
    query: &[f32],
    k: usize,
    keep: &(dyn Fn(PointId) -> bool + Sync),
) -> Vec<Hit> {
    let mut nearest = NearestK::new(k);
    for (id, vector) in vectors {
        assert_eq!(vector.len(), query.len(), "point {id} has the wrong length");
        if keep(*id) {
            nearest.offer(*id, euclidean(query, vector));
        }
    }
    nearest.into_sorted()
}

/// The share of the exact hits that were found, from 0 to 1; 1 when `exact` is empty.
pub fn recall_at_k(found: &[Hit], exact: &[Hit]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let n_found = exact.iter().filter(|truth| found.iter().any(|hit| hit.id == truth.id)).count();
    n_found as f64 / exact.len() as f64
}

/// Collects the `k` nearest points offered to it, in one pass and `O(k)` memory.
pub(crate) struct NearestK {
    /// How many points to keep.
    k: usize,
    /// The best points so far, the farthest on top so that it is the one replaced.
    heap: BinaryHeap<Candidate>,
}

impl NearestK {
    /// An empty collector for the `k` nearest points.
    pub(crate) fn new(k: usize) -> Self {
        NearestK { k, heap: BinaryHeap::with_capacity(k.saturating_add(1).min(4096)) }
    }

    /// Considers one point at `distance` from the query.
    pub(crate) fn offer(&mut self, id: PointId, distance: f32) {
        let candidate = Candidate(Hit { id, distance });
        if self.heap.len() < self.k {
            self.heap.push(candidate);
        } else if self.heap.peek().is_some_and(|farthest| candidate < *farthest) {
            self.heap.pop();
            self.heap.push(candidate);
        }
    }

    /// The points kept, nearest first; ties go to the smaller id.
    pub(crate) fn into_sorted(self) -> Vec<Hit> {
        self.heap.into_sorted_vec().into_iter().map(|candidate| candidate.0).collect()
    }
}

/// The Euclidean distance between two vectors of the same length.
pub(crate) fn euclidean(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
}

/// A hit ordered by distance, then by id, so that results do not depend on scan order.
struct Candidate(Hit);

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.distance.total_cmp(&other.0.distance).then(self.0.id.cmp(&other.0.id))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

fn check_range(
    field: &'static str,
    value: usize,
    min: usize,
    max: usize,
    allowed: &'static str,
) -> Result<(), IndexError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(IndexError::InvalidParameter { field, value, allowed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep_all(_: PointId) -> bool {
        true
    }

    #[test]
    fn default_params_are_valid() {
        assert!(IndexParams::default().validate().is_ok());
    }

    #[test]
    fn invalid_params_name_the_field() {
        let params = IndexParams { max_connections: 300, ..IndexParams::default() };
        let message = params.validate().unwrap_err().to_string();
        assert!(message.contains("max_connections"), "{message}");

        let params = IndexParams { ef_search: 0, ..IndexParams::default() };
        let message = params.validate().unwrap_err().to_string();
        assert!(message.contains("ef_search"), "{message}");
    }

    #[test]
    fn brute_force_orders_by_distance_then_id() {
        let vectors = vec![
            (7, vec![3.0, 4.0]),
            (2, vec![0.0, 1.0]),
            (5, vec![1.0, 0.0]),
            (9, vec![10.0, 10.0]),
        ];
        let hits = brute_force(&vectors, &[0.0, 0.0], 3, &keep_all);
        let ids: Vec<PointId> = hits.iter().map(|hit| hit.id).collect();
        assert_eq!(ids, vec![2, 5, 7]);
        assert!((hits[2].distance - 5.0).abs() < 1e-6);
    }

    #[test]
    fn brute_force_honours_keep() {
        let vectors = vec![(1, vec![0.0]), (2, vec![1.0]), (3, vec![2.0])];
        let hits = brute_force(&vectors, &[0.0], 5, &|id| id != 1);
        let ids: Vec<PointId> = hits.iter().map(|hit| hit.id).collect();
        assert_eq!(ids, vec![2, 3]);
    }

    #[test]
    fn recall_counts_shared_ids() {
        let hit = |id| Hit { id, distance: 0.0 };
        let exact = [hit(1), hit(2), hit(3), hit(4)];
        assert!((recall_at_k(&[hit(4), hit(2), hit(9)], &exact) - 0.5).abs() < 1e-12);
        assert!((recall_at_k(&[], &[]) - 1.0).abs() < 1e-12);
    }
}
