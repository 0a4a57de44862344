//! Duplicates: which images are the same bytes, the same picture, or the same scene.
//!
//! - [`signature`]: what an image is compared by (perceptual hashes of its dihedral
//!   variants and of its centre), computed from the loader's gray thumbnail;
//! - [`hash_index`]: hashes within a Hamming radius, by multi-index hashing;
//! - [`DuplicateIndex`] (here): the images known so far, which can be added and removed one
//!   at a time, and the query "which known images does this one match, of which kind, at
//!   what distance";
//! - [`group`]: matches joined into groups; [`keeper`]: which copy of a group to keep;
//! - [`quarantine`]: duplicate files set aside (never deleted) and put back, crash-safely;
//!   the one part of this module that touches files.
//!
//! Apart from [`quarantine`], and like the rest of the numeric core, this module knows
//! nothing of files, flags or output formats: callers give it content hashes, signatures
//! and file facts. Verdicts ("not a duplicate") are the daemon's, which keeps them and
//! filters matches (`daemon::duplicates`).

pub mod group;
pub mod hash_index;
pub mod keeper;
pub mod quarantine;
pub mod signature;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

pub use group::{group_matches, Group, Link};
pub use hash_index::HashIndex;
pub use keeper::{choose_keeper, FileFacts};
pub use signature::{compute_signature, Grid, Signature, Variant};

/// How two images are related, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchKind {
    /// The same bytes (equal blake3 hashes).
    Exact,
    /// The same picture, re-encoded, resized, recompressed, gray, brighter or darker,
    /// cropped a little, mirrored or turned: perceptual hashes within
    /// [`MatchParams::duplicate_max_distance`], over every variant.
    Duplicate,
    /// The same scene (a burst, a re-shot): hashes of the pictures as they are within
    /// [`MatchParams::similar_max_distance`].
    Similar,
}

impl MatchKind {
    pub const ALL: [MatchKind; 3] = [MatchKind::Exact, MatchKind::Duplicate, MatchKind::Similar];

    /// The name the command line and JSON use.
    pub fn name(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::Duplicate => "duplicate",
            MatchKind::Similar => "similar",
        }
    }

    pub fn from_name(name: &str) -> Option<MatchKind> {
        MatchKind::ALL.into_iter().find(|kind| kind.name().eq_ignore_ascii_case(name))
    }
}

/// The thresholds of the match kinds, checked by [`MatchParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchParams {
    /// Largest Hamming distance (of 64 bits) between the closest pair of variants for a
    /// duplicate. Default 10: precision 0.99 or better on the measured near duplicates
    /// (see `BENCHMARKS.md`).
    duplicate_max_distance: u32,
    /// Largest distance between the pictures as they are for a similar image. Default 16.
    similar_max_distance: u32,
    /// Whether duplicates may be mirrored or turned copies. Default true.
    geometric: bool,
}

/// Why thresholds were refused; each names its configuration key.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    #[error("{field}: {value} is over the limit of {limit} bits")]
    DistanceTooLarge { field: &'static str, value: u32, limit: u32 },
    #[error("similar-max-distance: {similar} is below duplicate-max-distance {duplicate}")]
    SimilarBelowDuplicate { similar: u32, duplicate: u32 },
}

/// Past this radius the multi-index lookups cost more than a scan of a large library.
pub const MAX_DISTANCE: u32 = 24;

impl Default for MatchParams {
    fn default() -> Self {
        MatchParams { duplicate_max_distance: 10, similar_max_distance: 16, geometric: true }
    }
}

impl MatchParams {
    pub fn new(
        duplicate_max_distance: u32,
        similar_max_distance: u32,
        geometric: bool,
    ) -> Result<MatchParams, DedupError> {
        for (field, value) in [
            ("duplicate-max-distance", duplicate_max_distance),
            ("similar-max-distance", similar_max_distance),
        ] {
            if value > MAX_DISTANCE {
                return Err(DedupError::DistanceTooLarge { field, value, limit: MAX_DISTANCE });
            }
        }
        if similar_max_distance < duplicate_max_distance {
            return Err(DedupError::SimilarBelowDuplicate {
                similar: similar_max_distance,
                duplicate: duplicate_max_distance,
            });
        }
        Ok(MatchParams { duplicate_max_distance, similar_max_distance, geometric })
    }

    pub fn duplicate_max_distance(&self) -> u32 {
        self.duplicate_max_distance
    }

    pub fn similar_max_distance(&self) -> u32 {
        self.similar_max_distance
    }

    pub fn geometric(&self) -> bool {
        self.geometric
    }
}

/// One known image that a query matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match<K> {
    pub key: K,
    pub kind: MatchKind,
    /// Hamming distance of the closest pair of hashes compared (0 for exact).
    pub distance: u32,
}

/// How far apart (in gray levels of 255) the tones of two flat pictures may be for them
/// to match: a plain picture brightened a little still matches, a plain dark one and a
/// plain light one do not.
pub const FLAT_TONE_TOLERANCE: u8 = 12;

/// The images known so far, by caller key `K` (a row number, a content id).
///
/// Holds, per image, its content hash (for exact matches), its hash as oriented and its
/// central hash (each in a [`HashIndex`]); a query probes with every variant of the new
/// image's signature. Flat pictures are kept apart, by tone, and flat centres are left
/// out (see [`signature`]). About 400 bytes per image (its grids, content hash and two
/// hashes in six tables) plus the tables' 0.6 MB.
#[derive(Debug, Clone)]
pub struct DuplicateIndex<K> {
    params: MatchParams,
    by_content: HashMap<[u8; 32], Vec<K>>,
    held: HashMap<K, Held>,
    /// `Signature::full[0]` of every picture that is not flat.
    full: HashIndex<K>,
    /// `Signature::center[0]` of every picture whose centre is not flat.
    center: HashIndex<K>,
    /// The flat pictures, by tone.
    flat: BTreeMap<u8, BTreeSet<K>>,
}

/// The smallest correlation of the [`Grid`]s of two parts whose hashes match for the
/// match to stand. The matched near duplicates of the measured set correlate at 0.59 or
/// more; the unrelated pairs whose hashes met by chance at 0.33 or less.
pub const MIN_GRID_CORRELATION: f32 = 0.5;

/// What the index keeps of each image besides its hashes.
#[derive(Debug, Clone, Copy)]
struct Held {
    content: [u8; 32],
    /// The tone, for a flat picture.
    flat_tone: Option<u8>,
    grid: Grid,
    center_grid: Grid,
}

impl<K: Copy + Eq + Ord + std::hash::Hash> DuplicateIndex<K> {
    pub fn new(params: MatchParams) -> Self {
        DuplicateIndex {
            params,
            by_content: HashMap::new(),
            held: HashMap::new(),
            full: HashIndex::new(),
            center: HashIndex::new(),
            flat: BTreeMap::new(),
        }
    }

    pub fn params(&self) -> &MatchParams {
        &self.params
    }

    /// The number of images held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn contains(&self, key: K) -> bool {
        self.held.contains_key(&key)
    }

    /// The keys held, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.held.keys().copied()
    }

    /// Adds an image; a key already held is replaced.
    pub fn insert(&mut self, key: K, content: [u8; 32], signature: &Signature) {
        self.remove(key);
        self.by_content.entry(content).or_default().push(key);
        let flat_tone = signature.flat.then_some(signature.tone);
        let (grid, center_grid) = (signature.grid, signature.center_grid);
        self.held.insert(key, Held { content, flat_tone, grid, center_grid });
        match flat_tone {
            Some(tone) => {
                self.flat.entry(tone).or_default().insert(key);
            }
            None => {
                self.full.insert(key, signature.full[0]);
                if !signature.center_flat {
                    self.center.insert(key, signature.center[0]);
                }
            }
        }
    }

    /// Forgets an image; true when it was held.
    pub fn remove(&mut self, key: K) -> bool {
        let Some(held) = self.held.remove(&key) else { return false };
        if let Some(keys) = self.by_content.get_mut(&held.content) {
            keys.retain(|&other| other != key);
            if keys.is_empty() {
                self.by_content.remove(&held.content);
            }
        }
        match held.flat_tone {
            Some(tone) => {
                if let Some(keys) = self.flat.get_mut(&tone) {
                    keys.remove(&key);
                    if keys.is_empty() {
                        self.flat.remove(&tone);
                    }
                }
            }
            None => {
                self.full.remove(key);
                self.center.remove(key);
            }
        }
        true
    }

    /// Every held image that an image with this content and signature matches, each once
    /// with its strongest kind and smallest distance, sorted by kind, distance and key.
    ///
    /// A hash match is confirmed by the grids (see [`MIN_GRID_CORRELATION`]). A flat
    /// picture matches the flat pictures within [`FLAT_TONE_TOLERANCE`] of its tone as
    /// duplicates, at distance 0, and nothing else but exact copies.
    pub fn query(&self, content: &[u8; 32], signature: &Signature) -> Vec<Match<K>> {
        let mut best: HashMap<K, (MatchKind, u32)> = HashMap::new();
        let mut keep = |key: K, kind: MatchKind, distance: u32| {
            let entry = best.entry(key).or_insert((kind, distance));
            *entry = (*entry).min((kind, distance));
        };
        for &key in self.by_content.get(content).into_iter().flatten() {
            keep(key, MatchKind::Exact, 0);
        }
        if signature.flat {
            let low = signature.tone.saturating_sub(FLAT_TONE_TOLERANCE);
            let high = signature.tone.saturating_add(FLAT_TONE_TOLERANCE);
            for &key in self.flat.range(low..=high).flat_map(|(_, keys)| keys) {
                keep(key, MatchKind::Duplicate, 0);
            }
            return sorted_matches(best);
        }
        // A hash match stands when the grids of the two parts it compared agree too.
        let held = &self.held;
        let confirmed = |key: &K, query_grid: &Grid, part: Part| {
            held.get(key).is_some_and(|held| {
                let grid = match part {
                    Part::Full => &held.grid,
                    Part::Center => &held.center_grid,
                };
                query_grid.correlation(grid) >= MIN_GRID_CORRELATION
            })
        };
        let radius = self.params.duplicate_max_distance;
        let n_variants = if self.params.geometric { signature::N_VARIANTS } else { 1 };
        for (variant_idx, variant) in Variant::ALL.into_iter().enumerate().take(n_variants) {
            let (full, center) = (signature.full[variant_idx], signature.center[variant_idx]);
            let grid = signature.grid.apply(variant);
            let center_grid = signature.center_grid.apply(variant);
            let mut duplicate = |key, distance, query_grid: &Grid, part| {
                if confirmed(&key, query_grid, part) {
                    keep(key, MatchKind::Duplicate, distance);
                }
            };
            self.full.for_each_within(full, radius, |key, d| duplicate(key, d, &grid, Part::Full));
            self.center
                .for_each_within(full, radius, |key, d| duplicate(key, d, &grid, Part::Center));
            if !signature.center_flat {
                self.full.for_each_within(center, radius, |key, d| {
                    duplicate(key, d, &center_grid, Part::Full)
                });
            }
        }
        let similar_radius = self.params.similar_max_distance;
        if similar_radius > radius {
            self.full.for_each_within(signature.full[0], similar_radius, |key, distance| {
                if confirmed(&key, &signature.grid, Part::Full) {
                    keep(key, MatchKind::Similar, distance)
                }
            });
        }
        sorted_matches(best)
    }
}

/// Which part of a held image a probe compared with.
#[derive(Debug, Clone, Copy)]
enum Part {
    Full,
    Center,
}

fn sorted_matches<K: Copy + Ord>(best: HashMap<K, (MatchKind, u32)>) -> Vec<Match<K>> {
    let mut matches: Vec<Match<K>> =
        best.into_iter().map(|(key, (kind, distance))| Match { key, kind, distance }).collect();
    matches.sort_by_key(|m| (m.kind, m.distance, m.key));
    matches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(full: u64, center: u64) -> Signature {
        // A grid every variant of which correlates with itself: symmetric under turns and
        // mirrors (a bright centre on a dark ground).
        let cells = std::array::from_fn(|row| {
            std::array::from_fn(|column| {
                if (2..6).contains(&row) && (2..6).contains(&column) {
                    200
                } else {
                    20
                }
            })
        });
        Signature {
            full: [full; 8],
            center: [center; 8],
            tone: 100,
            flat: false,
            center_flat: false,
            grid: Grid(cells),
            center_grid: Grid(cells),
        }
    }

    fn flat(tone: u8) -> Signature {
        Signature { tone, flat: true, center_flat: true, ..signature(0, 0) }
    }

    #[test]
    fn flat_pictures_match_by_tone_alone() {
        let mut index = DuplicateIndex::new(MatchParams::default());
        index.insert(1u32, [1; 32], &flat(35));
        index.insert(2, [2; 32], &flat(119));
        index.insert(3, [3; 32], &signature(0, 0)); // structure whose hashes are zero
                                                    // A flat centre is never compared.
        index.insert(4, [4; 32], &Signature { center_flat: true, ..signature(u64::MAX, 0) });
        let found = index.query(&[5; 32], &flat(40));
        assert_eq!(found, vec![Match { key: 1, kind: MatchKind::Duplicate, distance: 0 }]);
        let found = index.query(&[6; 32], &signature(0, 0));
        assert_eq!(found, vec![Match { key: 3, kind: MatchKind::Duplicate, distance: 0 }]);
        assert!(index.remove(1));
        assert!(index.query(&[5; 32], &flat(40)).is_empty());
        assert_eq!(index.query(&[1; 32], &flat(200)).len(), 0);
    }

    #[test]
    fn kinds_follow_bytes_and_distances() {
        let mut index = DuplicateIndex::new(MatchParams::default());
        index.insert(1u32, [1; 32], &signature(0, 0xffff));
        index.insert(2, [2; 32], &signature(0b111, 0xffff)); // 3 bits from 1
        index.insert(3, [3; 32], &signature(0xfff, 0)); // 12 bits from 1
        index.insert(4, [4; 32], &signature(0xffff_ffff_0000_0000, 0xffff_ffff_0000_0000));
        let found = index.query(&[1; 32], &signature(0, 0xffff));
        let kinds: Vec<(u32, MatchKind, u32)> =
            found.iter().map(|m| (m.key, m.kind, m.distance)).collect();
        assert_eq!(
            kinds,
            vec![
                (1, MatchKind::Exact, 0),
                (3, MatchKind::Duplicate, 0), // its centre is this picture
                (2, MatchKind::Duplicate, 3),
            ]
        );
    }

    #[test]
    fn hash_matches_whose_grids_disagree_are_dropped() {
        let mut index = DuplicateIndex::new(MatchParams::default());
        let mut unrelated = signature(0, 0xffff);
        // A ramp, which the symmetric grid of the others does not correlate with.
        unrelated.grid =
            Grid(std::array::from_fn(|row| std::array::from_fn(|col| (row * 8 + col) as u8 * 4)));
        index.insert(1u32, [1; 32], &unrelated);
        index.insert(2, [2; 32], &signature(0, 0xffff));
        let found = index.query(&[3; 32], &signature(0, 0xffff));
        assert_eq!(found, vec![Match { key: 2, kind: MatchKind::Duplicate, distance: 0 }]);
    }

    #[test]
    fn similar_is_between_the_two_thresholds() {
        let mut index = DuplicateIndex::new(MatchParams::default());
        index.insert(1u32, [1; 32], &signature(0x3fff, 0x5555_5555_5555_5555)); // 14 bits
        let found = index.query(&[9; 32], &signature(0, 0xaaaa_aaaa_aaaa_aaaa));
        assert_eq!(found, vec![Match { key: 1, kind: MatchKind::Similar, distance: 14 }]);
    }

    #[test]
    fn removed_images_are_not_matched() {
        let mut index = DuplicateIndex::new(MatchParams::default());
        index.insert(1u32, [1; 32], &signature(0, 0));
        index.insert(2, [1; 32], &signature(0, 0));
        assert!(index.remove(1));
        assert!(!index.remove(1));
        let found = index.query(&[1; 32], &signature(0, 0));
        assert_eq!(found, vec![Match { key: 2, kind: MatchKind::Exact, distance: 0 }]);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn thresholds_are_checked_and_name_their_key() {
        let error = MatchParams::new(30, 30, true).unwrap_err().to_string();
        assert!(error.contains("duplicate-max-distance"), "{error}");
        let error = MatchParams::new(10, 8, true).unwrap_err().to_string();
        assert!(error.contains("similar-max-distance"), "{error}");
    }
}
