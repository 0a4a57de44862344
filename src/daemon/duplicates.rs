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

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::dedup::{DuplicateIndex, Match, MatchKind, MatchParams, Signature};
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
        }
    }

    /// Loads the verdicts and the signatures of `contents` (taken in order, so that the
    /// links found do not depend on the store's layout). Returns the contents that have no
    /// signature of this version: their files must be read again.
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
        let mut missing = Vec::new();
        for content in contents {
            match store.signature(content)? {
                Some(signature) => {
                    duplicates.add(*content, &signature);
                }
                None => missing.push(*content),
            }
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
            self.links.insert(ordered(content, found.key), (found.kind, found.distance));
            self.linked.entry(content).or_default().insert(found.key);
            self.linked.entry(found.key).or_default().insert(content);
        }
        self.index.insert(content, *content.as_bytes(), signature);
        self.generation += 1;
        matches
    }

    /// Forgets a content that left the library, with its links.
    pub fn remove(&mut self, content: ContentId) {
        if !self.index.remove(content) {
            return;
        }
        for other in self.linked.remove(&content).unwrap_or_default() {
            self.links.remove(&ordered(content, other));
            if let Some(others) = self.linked.get_mut(&other) {
                others.remove(&content);
            }
        }
        self.generation += 1;
    }

    /// Records that `a` and `b` are not duplicates: their link goes, and does not return.
    /// The caller stores the verdict.
    pub fn mark_not_duplicate(&mut self, a: ContentId, b: ContentId) {
        let pair = ordered(a, b);
        self.verdicts.insert(pair);
        if self.links.remove(&pair).is_some() {
            for (one, other) in [(a, b), (b, a)] {
                if let Some(others) = self.linked.get_mut(&one) {
                    others.remove(&other);
                }
            }
        }
        self.generation += 1;
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
        let mut parent: HashMap<ContentId, ContentId> = HashMap::new();
        fn root(parent: &mut HashMap<ContentId, ContentId>, item: ContentId) -> ContentId {
            let mut current = item;
            while let Some(&next) = parent.get(&current) {
                if next == current {
                    break;
                }
                current = next;
            }
            parent.insert(item, current);
            current
        }
        let mut kept: Vec<(ContentId, ContentId, MatchKind, u32)> = self
            .links
            .iter()
            .filter(|(_, (kind, _))| *kind <= weakest)
            .map(|(&(a, b), &(kind, distance))| (a, b, kind, distance))
            .collect();
        kept.sort_unstable();
        for &(a, b, _, _) in &kept {
            parent.entry(a).or_insert(a);
            parent.entry(b).or_insert(b);
            let (root_a, root_b) = (root(&mut parent, a), root(&mut parent, b));
            if root_a != root_b {
                parent.insert(root_a.max(root_b), root_a.min(root_b));
            }
        }
        let mut by_root: HashMap<ContentId, ContentGroup> = HashMap::new();
        let linked: Vec<ContentId> = parent.keys().copied().collect();
        for content in linked {
            let group_root = root(&mut parent, content);
            let group = by_root.entry(group_root).or_insert_with(|| ContentGroup {
                contents: Vec::new(),
                kind: MatchKind::Exact,
                max_distance: 0,
                links: Vec::new(),
            });
            group.contents.push(content);
        }
        for link in kept {
            let group_root = root(&mut parent, link.0);
            let group = by_root.get_mut(&group_root).expect("every linked content has a group");
            group.kind = group.kind.max(link.2);
            group.max_distance = group.max_distance.max(link.3);
            group.links.push(link);
        }
        let mut groups: Vec<ContentGroup> = by_root.into_values().collect();
        // Copies of one content that no link joins to another.
        for content in self.index.keys() {
            if !parent.contains_key(&content) && n_paths(&content) >= 2 {
                groups.push(ContentGroup {
                    contents: vec![content],
                    kind: MatchKind::Exact,
                    max_distance: 0,
                    links: Vec::new(),
                });
            }
        }
        for group in &mut groups {
            group.contents.sort_unstable();
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

    fn picture(seed: u32) -> Signature {
        let image = GrayImage::from_fn(64, 64, |x, y| {
            Luma([((x * (seed + 3) + y * y * (seed + 1) / 5) % 251) as u8])
        });
        crate::dedup::compute_signature(&image).unwrap()
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
