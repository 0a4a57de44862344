//! A multi-index hash table over 64-bit hashes: the hashes within a Hamming radius of a
//! query, without scanning them all.
//!
//! The algorithm is Norouzi, Punjani and Fleet's multi-index hashing: each hash is cut
//! into [`N_BLOCKS`] blocks of 10 or 11 bits, and each block indexes a table of buckets.
//! Two hashes within distance `r` agree within `r / N_BLOCKS` bits on at least one block
//! (pigeonhole), so a query looks up, in each table, every block value within that many
//! bits of its own, and checks the full distance of the hashes found there.
//!
//! Why six blocks: the cost of a query is the buckets it visits (each a likely cache miss)
//! plus the hashes it checks (cheap: each bucket keeps its hashes in one dense array). At
//! the duplicate radius of 10, six blocks visit 6 x 12 buckets of about 50 hashes each at
//! 100,000 hashes; four blocks of 16 bits visited 4 x 137 buckets of under two, and took
//! three to four times as long. Past a few million hashes, more blocks would pay.

use std::collections::HashMap;

/// The number of blocks a 64-bit hash is cut into.
pub const N_BLOCKS: usize = 6;

/// Where each block starts, and how many bits it has: four of 11 bits, two of 10.
const BLOCK_SHIFTS: [u32; N_BLOCKS] = [0, 11, 22, 33, 44, 54];
const BLOCK_WIDTHS: [u32; N_BLOCKS] = [11, 11, 11, 11, 10, 10];

/// Masks are kept for block radii up to this (hash radii up to 29); larger radii are
/// searched at this block radius, which can miss hashes: keep radii under 30.
const MAX_BLOCK_RADIUS: u32 = 4;

/// The entries of one block value: their hashes, kept here and apart from their slots so
/// that checking the candidates reads one dense array, and their slots.
#[derive(Debug, Clone, Default)]
struct Bucket {
    hashes: Vec<u64>,
    slots: Vec<u32>,
}

/// Hashes indexed by slot, found by Hamming distance.
///
/// `K` is the caller's key of each hash; one key may hold several hashes (inserted one by
/// one), and [`HashIndex::remove`] drops them all.
#[derive(Debug, Clone)]
pub struct HashIndex<K> {
    /// `tables[block_idx][block_value]`: the entries with that block value.
    tables: Vec<Vec<Bucket>>,
    /// The hash and key in each slot; `None` for a free slot.
    slots: Vec<Option<(u64, K)>>,
    /// Slots freed by removals, reused by insertions.
    free_slots: Vec<u32>,
    /// The slots of each key, for removal.
    slots_of_key: HashMap<K, Vec<u32>>,
    /// `masks[block_idx][n]`: every mask of the block's width with at most `n` bits set,
    /// made once (making them per query cost more than the lookups).
    masks: Vec<Vec<Vec<u16>>>,
}

impl<K: Copy + Eq + std::hash::Hash> Default for HashIndex<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq + std::hash::Hash> HashIndex<K> {
    pub fn new() -> Self {
        HashIndex {
            tables: BLOCK_WIDTHS.iter().map(|&width| vec![Bucket::default(); 1 << width]).collect(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            slots_of_key: HashMap::new(),
            masks: BLOCK_WIDTHS
                .iter()
                .map(|&width| (0..=MAX_BLOCK_RADIUS).map(|n| masks_within(width, n)).collect())
                .collect(),
        }
    }

    /// The number of hashes held.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free_slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one hash under `key`.
    pub fn insert(&mut self, key: K, hash: u64) {
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some((hash, key));
                slot
            }
            None => {
                self.slots.push(Some((hash, key)));
                (self.slots.len() - 1) as u32
            }
        };
        for (block_idx, table) in self.tables.iter_mut().enumerate() {
            let bucket = &mut table[block_value(hash, block_idx)];
            bucket.hashes.push(hash);
            bucket.slots.push(slot);
        }
        self.slots_of_key.entry(key).or_default().push(slot);
    }

    /// Drops every hash of `key`; true when there was any.
    pub fn remove(&mut self, key: K) -> bool {
        let Some(slots) = self.slots_of_key.remove(&key) else { return false };
        for slot in slots {
            let Some((hash, _)) = self.slots[slot as usize].take() else { continue };
            for (block_idx, table) in self.tables.iter_mut().enumerate() {
                let bucket = &mut table[block_value(hash, block_idx)];
                if let Some(position) = bucket.slots.iter().position(|&held| held == slot) {
                    bucket.slots.swap_remove(position);
                    bucket.hashes.swap_remove(position);
                }
            }
            self.free_slots.push(slot);
        }
        true
    }

    /// Calls `found(key, distance)` for every held hash within `radius` bits of `query`.
    ///
    /// A hash may be reported more than once (once per block it agrees on); callers keep
    /// the smallest distance per key.
    pub fn for_each_within(&self, query: u64, radius: u32, mut found: impl FnMut(K, u32)) {
        let block_radius = (radius / N_BLOCKS as u32).min(MAX_BLOCK_RADIUS) as usize;
        for (block_idx, table) in self.tables.iter().enumerate() {
            let own = block_value(query, block_idx);
            for &mask in &self.masks[block_idx][block_radius] {
                let bucket = &table[own ^ mask as usize];
                for (entry_idx, &hash) in bucket.hashes.iter().enumerate() {
                    let distance = (hash ^ query).count_ones();
                    if distance <= radius {
                        if let Some((_, key)) = self.slots[bucket.slots[entry_idx] as usize] {
                            found(key, distance);
                        }
                    }
                }
            }
        }
    }

    /// Every key with a hash within `radius` of `query`, each once with its smallest
    /// distance, sorted by distance.
    pub fn within(&self, query: u64, radius: u32) -> Vec<(K, u32)>
    where
        K: Ord,
    {
        let mut best: HashMap<K, u32> = HashMap::new();
        self.for_each_within(query, radius, |key, distance| {
            let entry = best.entry(key).or_insert(distance);
            *entry = (*entry).min(distance);
        });
        let mut hits: Vec<(K, u32)> = best.into_iter().collect();
        hits.sort_by_key(|hit| (hit.1, hit.0));
        hits
    }
}

fn block_value(hash: u64, block_idx: usize) -> usize {
    let width = BLOCK_WIDTHS[block_idx];
    ((hash >> BLOCK_SHIFTS[block_idx]) & ((1 << width) - 1)) as usize
}

/// Every `width`-bit mask with at most `n_bits` bits set, fewest bits first.
fn masks_within(width: u32, n_bits: u32) -> Vec<u16> {
    let mut masks: Vec<u16> =
        (0..1u32 << width).map(|mask| mask as u16).filter(|m| m.count_ones() <= n_bits).collect();
    masks.sort_by_key(|mask| mask.count_ones());
    masks
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Random hashes, with some close relatives of each other so that small radii find
    /// something.
    fn random_hashes(n: usize, rng: &mut ChaCha8Rng) -> Vec<u64> {
        let mut hashes: Vec<u64> = Vec::with_capacity(n);
        for idx in 0..n {
            let hash = if idx % 3 == 0 || hashes.is_empty() {
                rng.gen()
            } else {
                let parent = hashes[rng.gen_range(0..hashes.len())];
                let n_flips = rng.gen_range(0..16);
                (0..n_flips).fold(parent, |hash, _| hash ^ (1 << rng.gen_range(0..64)))
            };
            hashes.push(hash);
        }
        hashes
    }

    fn brute_force(hashes: &[(u32, u64)], query: u64, radius: u32) -> Vec<(u32, u32)> {
        let mut best: HashMap<u32, u32> = HashMap::new();
        for &(key, hash) in hashes {
            let distance = (hash ^ query).count_ones();
            if distance <= radius {
                let entry = best.entry(key).or_insert(distance);
                *entry = (*entry).min(distance);
            }
        }
        let mut hits: Vec<(u32, u32)> = best.into_iter().collect();
        hits.sort_by_key(|hit| (hit.1, hit.0));
        hits
    }

    #[test]
    fn queries_equal_a_brute_force_scan() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let hashes = random_hashes(3_000, &mut rng);
        let mut index = HashIndex::new();
        let mut held = Vec::new();
        for (idx, &hash) in hashes.iter().enumerate() {
            let key = (idx / 2) as u32; // two hashes per key, as full and central hashes
            index.insert(key, hash);
            held.push((key, hash));
        }
        for query_idx in 0..200 {
            let query = if query_idx % 2 == 0 { hashes[query_idx * 7] ^ 0b1011 } else { rng.gen() };
            for radius in [0, 3, 5, 6, 7, 11, 12, 16, 20, 24] {
                assert_eq!(
                    index.within(query, radius),
                    brute_force(&held, query, radius),
                    "query {query:016x} radius {radius}"
                );
            }
        }
    }

    #[test]
    fn blocks_cover_every_bit_once() {
        let mut covered = 0u64;
        for block_idx in 0..N_BLOCKS {
            let bits = ((1u64 << BLOCK_WIDTHS[block_idx]) - 1) << BLOCK_SHIFTS[block_idx];
            assert_eq!(covered & bits, 0, "block {block_idx} overlaps");
            covered |= bits;
        }
        assert_eq!(covered, u64::MAX);
        assert_eq!(block_value(u64::MAX, N_BLOCKS - 1), (1 << 10) - 1);
    }

    #[test]
    fn removed_keys_are_not_found_and_slots_are_reused() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let hashes = random_hashes(1_000, &mut rng);
        let mut index = HashIndex::new();
        for (idx, &hash) in hashes.iter().enumerate() {
            index.insert(idx as u32, hash);
        }
        for idx in (0..1_000).step_by(2) {
            assert!(index.remove(idx as u32));
        }
        assert!(!index.remove(0));
        assert_eq!(index.len(), 500);
        let held: Vec<(u32, u64)> =
            hashes.iter().enumerate().skip(1).step_by(2).map(|(i, &h)| (i as u32, h)).collect();
        for &query in hashes.iter().take(100) {
            assert_eq!(index.within(query, 12), brute_force(&held, query, 12));
        }
        index.insert(5_000, hashes[0]);
        assert_eq!(index.len(), 501);
        assert_eq!(index.within(hashes[0], 0).first(), Some(&(5_000, 0)));
    }
}
