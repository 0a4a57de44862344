//! The library's duplicates, kept up to date as contents arrive and leave.
//!
//! Every distinct content with a stored signature is held in a [`DuplicateIndex`]; a new
//! content is checked against those before it is added, and the matches found are kept as
//! links between contents. Listing the groups is then a union-find over the links, with no
//! search at all. Copies of one content (same bytes, several paths) are exact duplicates
//! of each other by definition and need no link: the catalog knows their paths.
//!
//! A verdict ("these two are not duplicates") removes the link and keeps it from coming
//! back; verdicts are loaded from the store, so they hold across refits and restarts.
//!
//! The links are written through to the store as they are found, and each content is
//! marked checked once its links are all there. A restart then loads the links and fills
//! the index without a single search: only contents not yet checked (an older store, a
//! crash between reading a file and recording its links) are searched again, and all of
//! them when the thresholds changed.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::dedup::{group_matches, DuplicateIndex, Link, Match, MatchKind, MatchParams, Signature};
use crate::store::{ContentId, Store, StoreError};

/// The duplicate state of the library.
#[derive(Debug)]
pub struct Duplicates {
    index: DuplicateIndex<ContentId>,
    /// Matches between distinct contents, keyed by the pair (smaller first).
    links: HashMap<(ContentId, ContentId), (MatchKind, u32)>,
    /// The other end of every link of each content, for removal.
    linked: HashMap<ContentId, BTreeSet<ContentId>>,
    verdicts: HashSet<(ContentId, ContentId)>,
    /// Bumped by every change, so that a page token of an older listing is refused.
    generation: u64,
    /// Where links are written through; none in tests of the logic alone.
    store: Option<Store>,
}

/// A set of contents joined by links, or one content with several paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentGroup {
    /// Sorted.
    pub contents: Vec<ContentId>,
    /// The weakest kind among the links; `Exact` for copies of one content.
    pub kind: MatchKind,
    pub max_distance: u32,
    /// The links inside the group, as `(a, b, kind, distance)` with `a < b`, sorted.
    pub links: Vec<(ContentId, ContentId, MatchKind, u32)>,
}

impl Duplicates {
    pub fn new(params: MatchParams) -> Duplicates {
        Duplicates {
            index: DuplicateIndex::new(params),
            links: HashMap::new(),
            linked: HashMap::new(),
            verdicts: HashSet::new(),
            generation: 0,
            store: None,
        }
    }

    /// Loads the verdicts, the signatures of `contents` and their stored links, and checks
    /// the contents not checked yet (in order, so that the links found do not depend on
    /// the store's layout). Returns the contents that have no signature of this version:
    /// their files must be read again.
    pub fn load(
        params: MatchParams,
        store: &Store,
        contents: &[ContentId],
    ) -> Result<(Duplicates, Vec<ContentId>), StoreError> {
        let mut duplicates = Duplicates::new(params);
        for verdict in store.verdicts() {
            let (a, b, _) = verdict?;
            duplicates.verdicts.insert(ordered(a, b));
        }
        let tag = crate::store::encode_value(&(crate::store::SIGNATURE_VERSION, params));
        if store.links_tag()?.as_deref() != Some(tag.as_slice()) {
            tracing::info!("duplicate thresholds or signatures changed: every image is checked");
            store.reset_links(&tag)?;
        }
        let (links, checked) = store.links()?;
        let checked: HashSet<ContentId> = checked.into_iter().collect();
        let mut missing = Vec::new();
        let mut unchecked = Vec::new();
        for content in contents {
            match store.signature(content)? {
                Some(signature) if checked.contains(content) => {
                    duplicates.index.insert(*content, *content.as_bytes(), &signature);
                }
                Some(signature) => unchecked.push((*content, signature)),
                None => missing.push(*content),
            }
        }
        for (a, b, kind, distance) in links {
            let live = duplicates.index.contains(a) && duplicates.index.contains(b);
            if live && !duplicates.verdicts.contains(&(a, b)) {
                duplicates.link(a, b, kind, distance);
            }
        }
        if !unchecked.is_empty() {
            tracing::info!(images = unchecked.len(), "checking images for duplicates");
        }
        duplicates.store = Some(store.clone());
        for (content, signature) in unchecked {
            duplicates.add(content, &signature);
        }
        Ok((duplicates, missing))
    }

    pub fn params(&self) -> &MatchParams {
        self.index.params()
    }

    /// The number of contents held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// True when `content` is held.
    pub fn holds(&self, content: ContentId) -> bool {
        self.index.contains(content)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The number of links between distinct contents.
    pub fn n_links(&self) -> usize {
        self.links.len()
    }

    /// Checks a new content against the held ones, keeps the matches that no verdict
    /// forbids, and holds it. Returns those matches, strongest first.
    pub fn add(&mut self, content: ContentId, signature: &Signature) -> Vec<Match<ContentId>> {
        self.remove(content);
        let matches: Vec<Match<ContentId>> = self
            .index
            .query(content.as_bytes(), signature)
            .into_iter()
            .filter(|found| found.key != content)
            .filter(|found| !self.verdicts.contains(&ordered(content, found.key)))
            .collect();
        for found in &matches {
            self.link(content, found.key, found.kind, found.distance);
            self.write(|store| store.put_link(&content, &found.key, found.kind, found.distance));
        }
        self.write(|store| store.mark_checked(&content));
        self.index.insert(content, *content.as_bytes(), signature);
        self.generation += 1;
        matches
    }

    fn link(&mut self, a: ContentId, b: ContentId, kind: MatchKind, distance: u32) {
        self.links.insert(ordered(a, b), (kind, distance));
        self.linked.entry(a).or_default().insert(b);
        self.linked.entry(b).or_default().insert(a);
    }

    /// Writes through to the store, if any. A failed write is logged: the state in memory
    /// is still right, and a content whose mark is missing is checked again at the next
    /// start.
    fn write(&self, operation: impl FnOnce(&Store) -> Result<(), StoreError>) {
        if let Some(store) = &self.store {
            if let Err(error) = operation(store) {
                tracing::error!(%error, "cannot record duplicate links");
            }
        }
    }

    /// Forgets a content that left the library, with its links.
    pub fn remove(&mut self, content: ContentId) {
        if !self.index.remove(content) {
            return;
        }
        for other in self.linked.remove(&content).unwrap_or_default() {
            self.links.remove(&ordered(content, other));
            self.write(|store| store.remove_link(&content, &other));
            if let Some(others) = self.linked.get_mut(&other) {
                others.remove(&content);
            }
        }
        // Unmarked, so that a content that comes back is checked again.
        self.write(|store| store.remove_link(&content, &content));
        self.generation += 1;
    }

    /// Records that `a` and `b` are not duplicates: their link goes, and does not return.
    /// The caller stores the verdict.
    /// True when the two were matched until now.
    pub fn mark_not_duplicate(&mut self, a: ContentId, b: ContentId) -> bool {
        let pair = ordered(a, b);
        self.verdicts.insert(pair);
        let linked = self.links.remove(&pair).is_some();
        if linked {
            self.write(|store| store.remove_link(&a, &b));
            for (one, other) in [(a, b), (b, a)] {
                if let Some(others) = self.linked.get_mut(&one) {
                    others.remove(&other);
                }
            }
        }
        self.generation += 1;
        linked
    }

    pub fn is_marked_not_duplicate(&self, a: ContentId, b: ContentId) -> bool {
        self.verdicts.contains(&ordered(a, b))
    }

    /// The groups of matches at least as strong as `weakest`, each with its links, sorted
    /// by their first content. `n_paths` tells how many paths a content has: a content
    /// with two or more is a group of exact copies on its own.
    pub fn groups(
        &self,
        weakest: MatchKind,
        n_paths: impl Fn(&ContentId) -> usize,
    ) -> Vec<ContentGroup> {
        let mut kept: Vec<(ContentId, ContentId, MatchKind, u32)> = self
            .links
            .iter()
            .filter(|(_, (kind, _))| *kind <= weakest)
            .map(|(&(a, b), &(kind, distance))| (a, b, kind, distance))
            .collect();
        kept.sort_unstable();
        // Row numbers for `group_matches`: the linked contents, sorted, so that `a < b`
        // holds for the rows as it does for the contents.
        let mut linked: Vec<ContentId> = kept.iter().flat_map(|&(a, b, _, _)| [a, b]).collect();
        linked.sort_unstable();
        linked.dedup();
        let row = |content: &ContentId| linked.binary_search(content).expect("a linked content");
        let rows: Vec<Link> = kept
            .iter()
            .map(|(a, b, kind, distance)| Link {
                a: row(a),
                b: row(b),
                kind: *kind,
                distance: *distance,
            })
            .collect();
        let mut groups: Vec<ContentGroup> = group_matches(linked.len(), &rows, weakest)
            .into_iter()
            .map(|group| ContentGroup {
                contents: group.members.iter().map(|&member| linked[member]).collect(),
                kind: group.kind,
                max_distance: group.max_distance,
                links: group
                    .links
                    .iter()
                    .map(|link| (linked[link.a], linked[link.b], link.kind, link.distance))
                    .collect(),
            })
            .collect();
        // Copies of one content that no link joins to another.
        for content in self.index.keys() {
            if linked.binary_search(&content).is_err() && n_paths(&content) >= 2 {
                groups.push(ContentGroup {
                    contents: vec![content],
                    kind: MatchKind::Exact,
                    max_distance: 0,
                    links: Vec::new(),
                });
            }
        }
        groups.sort_unstable_by(|a, b| a.contents.cmp(&b.contents));
        groups
    }
}

fn ordered(a: ContentId, b: ContentId) -> (ContentId, ContentId) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma};

    fn pattern(seed: u32) -> GrayImage {
        GrayImage::from_fn(64, 64, |x, y| {
            Luma([((x * (seed + 3) + y * y * (seed + 1) / 5) % 251) as u8])
        })
    }

    fn picture(seed: u32) -> Signature {
        crate::dedup::compute_signature(&pattern(seed)).unwrap()
    }

    fn id(name: &str) -> ContentId {
        ContentId::of(name.as_bytes())
    }

    #[test]
    fn links_form_groups_and_leave_with_their_content() {
        let mut duplicates = Duplicates::new(MatchParams::default());
        assert!(duplicates.add(id("a"), &picture(1)).is_empty());
        let found = duplicates.add(id("b"), &picture(1));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].key, found[0].kind), (id("a"), MatchKind::Duplicate));
        duplicates.add(id("c"), &picture(7));
        let groups = duplicates.groups(MatchKind::Duplicate, |_| 1);
        assert_eq!(groups.len(), 1);
        let mut expected = vec![id("a"), id("b")];
        expected.sort();
        assert_eq!(groups[0].contents, expected);
        // c has two paths: exact copies of itself.
        let groups = duplicates.groups(MatchKind::Duplicate, |c| if *c == id("c") { 2 } else { 1 });
        assert_eq!(groups.len(), 2);
        assert!(groups.iter().any(|g| g.contents == vec![id("c")] && g.kind == MatchKind::Exact));
        // Exact only: the a-b link is a duplicate, not an exact one.
        assert!(duplicates.groups(MatchKind::Exact, |_| 1).is_empty());
        duplicates.remove(id("a"));
        assert!(duplicates.groups(MatchKind::Duplicate, |_| 1).is_empty());
        assert_eq!(duplicates.n_links(), 0);
    }

    #[test]
    fn links_are_stored_and_a_reload_searches_only_what_is_unchecked() {
        let folder = tempfile::tempdir().unwrap();
        let store = Store::open(folder.path()).unwrap();
        let (a, b, c) = (id("a"), id("b"), id("c"));
        store.put_signature(&a, &picture(1)).unwrap();
        store.put_signature(&b, &picture(1)).unwrap();
        // c is a mirrored a: a duplicate only while mirrors count.
        let mirrored = image::imageops::flip_horizontal(&pattern(1));
        store.put_signature(&c, &crate::dedup::compute_signature(&mirrored).unwrap()).unwrap();
        let params = MatchParams::default();
        let (duplicates, missing) = Duplicates::load(params, &store, &[a, b]).unwrap();
        assert!(missing.is_empty());
        assert_eq!(duplicates.n_links(), 1);
        let (links, checked) = store.links().unwrap();
        assert_eq!((links.len(), checked.len()), (1, 2));
        drop(duplicates);
        // c was never checked: the reload searches for it alone and records its links.
        let (duplicates, _) = Duplicates::load(params, &store, &[a, b, c]).unwrap();
        assert_eq!(duplicates.n_links(), 3);
        assert_eq!(store.links().unwrap().1.len(), 3);
        // Other thresholds: the stored links are dropped and found again under them.
        let strict = MatchParams::new(0, 0, false).unwrap();
        let (duplicates, _) = Duplicates::load(strict, &store, &[a, b, c]).unwrap();
        assert_eq!(duplicates.n_links(), 1, "only a and b are equal as they are");
        assert_eq!(store.links().unwrap().0.len(), 1);
        let (mut duplicates, _) = Duplicates::load(strict, &store, &[a, b, c]).unwrap();
        assert_eq!(duplicates.n_links(), 1);
        // A content that leaves takes its links and its mark with it.
        duplicates.remove(b);
        assert_eq!(store.links().unwrap(), (Vec::new(), vec![a.min(c), a.max(c)]));
    }

    #[test]
    fn a_verdict_removes_a_link_and_keeps_it_away() {
        let mut duplicates = Duplicates::new(MatchParams::default());
        duplicates.add(id("a"), &picture(1));
        duplicates.add(id("b"), &picture(1));
        duplicates.mark_not_duplicate(id("b"), id("a"));
        assert!(duplicates.groups(MatchKind::Similar, |_| 1).is_empty());
        // The content leaves and comes back: the verdict still holds.
        duplicates.remove(id("b"));
        assert!(duplicates.add(id("b"), &picture(1)).is_empty());
        assert!(duplicates.is_marked_not_duplicate(id("a"), id("b")));
    }
}
