//! The agglomerative dendrogram: the top merges as a tree, branches under the cut in the
//! colour of the cluster they form, and the cut that gave the chosen number of clusters.
//!
//! A dendrogram of thousands of leaves is a black smear, so only the last
//! [`MAX_LEAVES`] - 1 merges are drawn; each subtree below them becomes one leaf, labelled
//! with its number of images (as scipy's `truncate_mode="lastp"`).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::model::cluster::Merge;
use crate::report::draw;
use crate::report::figure::{cluster_colour, DrawError, Figure, Formats};
use crate::report::font::{font, size};

/// Most leaves drawn.
pub const MAX_LEAVES: usize = 60;

/// One inverted U: two children joined at a height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    pub left: (f64, f64),
    pub right: (f64, f64),
    pub height: f64,
    /// The cluster every image under this link belongs to, if one does.
    pub label: Option<usize>,
}

/// A leaf as drawn: a single image or a subtree of `size` images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leaf {
    pub x: f64,
    pub size: usize,
    pub label: Option<usize>,
}

/// The drawn tree, with x from 0 to the number of leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeLayout {
    pub links: Vec<Link>,
    pub leaves: Vec<Leaf>,
    pub max_height: f64,
}

/// Lays out the last `max_leaves - 1` merges of `merges` (kodama's numbering: leaves
/// `0..n_leaves`, merge `i` creates node `n_leaves + i`). `leaf_labels` has one cluster
/// per leaf; a node's label is its leaves' cluster when they all share one.
pub fn layout(merges: &[Merge], leaf_labels: &[Option<usize>], max_leaves: usize) -> TreeLayout {
    let n_leaves = leaf_labels.len();
    let mut labels: Vec<Option<usize>> = leaf_labels.to_vec();
    let mut sizes: Vec<usize> = vec![1; n_leaves];
    for merge in merges {
        let (left, right) = (labels[merge.left], labels[merge.right]);
        labels.push(if left == right { left } else { None });
        sizes.push(merge.size);
    }
    let first_shown = n_leaves + merges.len().saturating_sub(max_leaves.max(2) - 1);
    let mut tree = TreeLayout { links: Vec::new(), leaves: Vec::new(), max_height: 0.0 };
    if merges.is_empty() {
        for (leaf, label) in leaf_labels.iter().enumerate() {
            tree.leaves.push(Leaf { x: leaf as f64 + 0.5, size: 1, label: *label });
        }
        return tree;
    }
    let walk = Walk { merges, n_leaves, first_shown, labels: &labels, sizes: &sizes };
    walk.place(n_leaves + merges.len() - 1, &mut tree);
    tree
}

/// The height halfway between the last merge applied for `k` clusters and the next one.
pub fn cut_height(merges: &[Merge], n_leaves: usize, k: usize) -> Option<f64> {
    let n_applied = n_leaves.checked_sub(k)?;
    let last = merges.get(n_applied.checked_sub(1)?)?;
    let next = merges.get(n_applied)?;
    Some((last.height + next.height) / 2.0)
}

struct Walk<'a> {
    merges: &'a [Merge],
    n_leaves: usize,
    first_shown: usize,
    labels: &'a [Option<usize>],
    sizes: &'a [usize],
}

impl Walk<'_> {
    /// Places `node` and what is under it; returns its (x, y) joint.
    fn place(&self, node: usize, tree: &mut TreeLayout) -> (f64, f64) {
        if node < self.first_shown {
            let x = tree.leaves.len() as f64 + 0.5;
            tree.leaves.push(Leaf { x, size: self.sizes[node], label: self.labels[node] });
            return (x, 0.0);
        }
        let merge = self.merges[node - self.n_leaves];
        let left = self.place(merge.left, tree);
        let right = self.place(merge.right, tree);
        let label = self.labels[node];
        tree.links.push(Link { left, right, height: merge.height, label });
        tree.max_height = tree.max_height.max(merge.height);
        ((left.0 + right.0) / 2.0, merge.height)
    }
}

#[derive(Debug, Clone)]
pub struct Dendrogram {
    pub title: String,
    pub subtitle: String,
    pub tree: TreeLayout,
    /// The cut's height and the k it gives.
    pub cut: Option<(f64, usize)>,
}

const WIDTH_PX: u32 = 1280;
const HEIGHT_PX: u32 = 800;
/// Colour of links above the cut, joining clusters.
const ABOVE_CUT: RGBColor = RGBColor(60, 60, 60);

impl Figure for Dendrogram {
    fn name(&self) -> String {
        "dendrogram".to_string()
    }

    fn size_px(&self) -> (u32, u32) {
        (WIDTH_PX, HEIGHT_PX)
    }

    fn formats(&self) -> Formats {
        Formats::PngAndSvg
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let header_px = draw::header(root, &self.title, Some(&self.subtitle))?;
        let (_, body) = root.split_vertically(header_px);
        let n_leaves = self.tree.leaves.len().max(1) as f64;
        let top = (self.tree.max_height * 1.05).max(f64::MIN_POSITIVE);
        let mut chart = ChartBuilder::on(&body)
            .margin(16)
            .x_label_area_size(70)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..n_leaves, 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_desc("groups of images (the number under each is its size)")
            .y_desc("merge height")
            .label_style(font(size::LABEL))
            .axis_desc_style(font(size::AXIS_DESCRIPTION))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        for link in &self.tree.links {
            let colour = link.label.map_or(ABOVE_CUT, |label| cluster_colour(Some(label)));
            let path = vec![
                link.left,
                (link.left.0, link.height),
                (link.right.0, link.height),
                link.right,
            ];
            chart.draw_series(std::iter::once(PathElement::new(path, colour.stroke_width(2))))?;
        }
        let leaf_anchor = Pos::new(HPos::Center, VPos::Top);
        for leaf in &self.tree.leaves {
            let (x, y) = chart.backend_coord(&(leaf.x, 0.0));
            let colour = leaf.label.map_or(ABOVE_CUT, |label| cluster_colour(Some(label)));
            let style = font(size::CAPTION).color(&colour).pos(leaf_anchor);
            root.draw(&Text::new(leaf.size.to_string(), (x, y + 8), style))?;
        }
        if let Some((height, k)) = self.cut {
            let line = vec![(0.0, height), (n_leaves, height)];
            chart.draw_series(std::iter::once(PathElement::new(line, RED.stroke_width(2))))?;
            let (x, y) = chart.backend_coord(&(n_leaves, height));
            let label = format!("cut: k = {k}");
            let style = font(size::LABEL).color(&RED).pos(Pos::new(HPos::Right, VPos::Bottom));
            root.draw(&Text::new(label, (x - 6, y - 4), style))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(left: usize, right: usize, height: f64, size: usize) -> Merge {
        Merge { left, right, height, size }
    }

    /// Four leaves: (0, 1) at 1, (2, 3) at 2, both at 5.
    fn four() -> Vec<Merge> {
        vec![merge(0, 1, 1.0, 2), merge(2, 3, 2.0, 2), merge(4, 5, 5.0, 4)]
    }

    #[test]
    fn a_small_tree_is_drawn_whole_with_labels_below_the_cut() {
        let labels = [Some(0), Some(0), Some(1), Some(1)];
        let tree = layout(&four(), &labels, 60);
        assert_eq!(tree.leaves.len(), 4);
        assert_eq!(tree.links.len(), 3);
        assert_eq!(tree.max_height, 5.0);
        let root = tree.links.last().unwrap();
        assert_eq!(root.label, None);
        assert_eq!((root.left.0, root.right.0), (1.0, 3.0));
        assert_eq!(tree.links[0].label, Some(0));
    }

    #[test]
    fn a_large_tree_keeps_only_its_top_merges() {
        let labels = [Some(0), Some(0), Some(1), Some(1)];
        let tree = layout(&four(), &labels, 2);
        assert_eq!(tree.links.len(), 1);
        let sizes: Vec<usize> = tree.leaves.iter().map(|leaf| leaf.size).collect();
        assert_eq!(sizes, vec![2, 2]);
        assert_eq!(tree.leaves[1].label, Some(1));
    }

    #[test]
    fn the_cut_lies_between_the_last_merge_kept_and_the_next() {
        assert_eq!(cut_height(&four(), 4, 2), Some(3.5));
        assert_eq!(cut_height(&four(), 4, 3), Some(1.5));
        assert_eq!(cut_height(&four(), 4, 1), None);
        assert_eq!(cut_height(&four(), 4, 4), None);
    }
}
