//! Matches joined into groups: the connected components of the graph whose edges are the
//! matching pairs (union-find), each group with its links.
//!
//! A group's kind is that of its weakest link: a group joined by one `similar` pair is a
//! `similar` group even if its other pairs are `exact`. Each link keeps its own kind and
//! distance, so a caller can tell. A chain can join two images that do not match each
//! other (A like B, B like C); at duplicate distances that is rare, at similar ones it is
//! what a burst looks like.

use serde::Serialize;

use super::MatchKind;

/// One matching pair, by row numbers `a < b` into the caller's list of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Link {
    pub a: usize,
    pub b: usize,
    pub kind: MatchKind,
    pub distance: u32,
}

/// A set of images joined by links; `members` sorted, at least two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub members: Vec<usize>,
    /// The weakest kind among `links`.
    pub kind: MatchKind,
    /// The largest distance among `links`.
    pub max_distance: u32,
    /// The links inside the group, sorted by `(a, b)`.
    pub links: Vec<Link>,
}

/// Groups `n_images` images by the links whose kind is at least as strong as `weakest`
/// (`Duplicate` keeps exact and duplicate links). Groups are sorted by their first member.
pub fn group_matches(n_images: usize, links: &[Link], weakest: MatchKind) -> Vec<Group> {
    let kept: Vec<Link> = links.iter().copied().filter(|link| link.kind <= weakest).collect();
    let mut parents: Vec<usize> = (0..n_images).collect();
    for link in &kept {
        let (root_a, root_b) = (find_root(&mut parents, link.a), find_root(&mut parents, link.b));
        if root_a != root_b {
            parents[root_a.max(root_b)] = root_a.min(root_b);
        }
    }
    let mut members_of_root: Vec<Vec<usize>> = vec![Vec::new(); n_images];
    for image_idx in 0..n_images {
        let root = find_root(&mut parents, image_idx);
        members_of_root[root].push(image_idx);
    }
    let mut links_of_root: Vec<Vec<Link>> = vec![Vec::new(); n_images];
    for link in kept {
        let root = find_root(&mut parents, link.a);
        links_of_root[root].push(link);
    }
    members_of_root
        .into_iter()
        .zip(links_of_root)
        .filter(|(members, _)| members.len() >= 2)
        .map(|(members, mut links)| {
            links.sort_by_key(|link| (link.a, link.b));
            let kind = links.iter().map(|link| link.kind).max().unwrap_or(MatchKind::Exact);
            let max_distance = links.iter().map(|link| link.distance).max().unwrap_or(0);
            Group { members, kind, max_distance, links }
        })
        .collect()
}

fn find_root(parents: &mut [usize], mut idx: usize) -> usize {
    while parents[idx] != idx {
        parents[idx] = parents[parents[idx]];
        idx = parents[idx];
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(a: usize, b: usize, kind: MatchKind, distance: u32) -> Link {
        Link { a, b, kind, distance }
    }

    #[test]
    fn a_group_takes_its_weakest_link_and_the_kind_filters_links() {
        let links = [
            link(0, 1, MatchKind::Exact, 0),
            link(1, 2, MatchKind::Duplicate, 6),
            link(3, 4, MatchKind::Similar, 14),
            link(2, 5, MatchKind::Similar, 15),
        ];
        let groups = group_matches(7, &links, MatchKind::Similar);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].members, vec![0, 1, 2, 5]);
        assert_eq!((groups[0].kind, groups[0].max_distance), (MatchKind::Similar, 15));
        assert_eq!(groups[1].members, vec![3, 4]);

        let groups = group_matches(7, &links, MatchKind::Duplicate);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].members, vec![0, 1, 2]);
        assert_eq!((groups[0].kind, groups[0].max_distance), (MatchKind::Duplicate, 6));

        let groups = group_matches(7, &links, MatchKind::Exact);
        assert_eq!(groups[0].members, vec![0, 1]);
        assert_eq!(groups[0].kind, MatchKind::Exact);
    }

    #[test]
    fn no_links_no_groups() {
        assert!(group_matches(3, &[], MatchKind::Similar).is_empty());
    }
}
