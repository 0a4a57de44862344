//! Pure decisions about what a figure shows and where: grids of tiles, caps with
//! "+N more", seeded samples of large sets, fitting a picture in a box, shortening names,
//! and the folders a set of files lives in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Columns and rows of a grid of equal tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub n_columns: usize,
    pub n_rows: usize,
}

impl Grid {
    /// At most `max_columns` columns, as few rows as hold `n_tiles`; at least one of each.
    pub fn new(n_tiles: usize, max_columns: usize) -> Grid {
        let n_columns = n_tiles.clamp(1, max_columns.max(1));
        let n_rows = n_tiles.div_ceil(n_columns).max(1);
        Grid { n_columns, n_rows }
    }

    /// The top-left corner of tile `idx`, for tiles of `tile_px` with `gap_px` between them.
    pub fn origin(&self, idx: usize, tile_px: (u32, u32), gap_px: u32) -> (i32, i32) {
        let (column, row) = (idx % self.n_columns, idx / self.n_columns);
        let x = column as u32 * (tile_px.0 + gap_px);
        let y = row as u32 * (tile_px.1 + gap_px);
        (x as i32, y as i32)
    }

    /// The size of the whole grid.
    pub fn size_px(&self, tile_px: (u32, u32), gap_px: u32) -> (u32, u32) {
        let (columns, rows) = (self.n_columns as u32, self.n_rows as u32);
        (columns * tile_px.0 + (columns - 1) * gap_px, rows * tile_px.1 + (rows - 1) * gap_px)
    }
}

/// The items shown when at most `max_tiles` tiles fit: all of them if they fit, otherwise
/// the first `max_tiles - 1` and a last tile saying how many more there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capped<T> {
    pub shown: Vec<T>,
    pub n_more: usize,
}

impl<T> Capped<T> {
    pub fn new(items: Vec<T>, max_tiles: usize) -> Capped<T> {
        let max_tiles = max_tiles.max(2);
        if items.len() <= max_tiles {
            return Capped { shown: items, n_more: 0 };
        }
        let n_more = items.len() - (max_tiles - 1);
        let mut shown = items;
        shown.truncate(max_tiles - 1);
        Capped { shown, n_more }
    }

    /// Tiles drawn: the shown items plus one for "+N more".
    pub fn n_tiles(&self) -> usize {
        self.shown.len() + usize::from(self.n_more > 0)
    }
}

/// At most `max_items` of `0..n_items`, a seeded sample in increasing order when there are
/// more; the same for the same seed.
pub fn sample(n_items: usize, max_items: usize, seed: u64) -> Vec<usize> {
    crate::model::cluster::sample_indices(n_items, max_items, seed)
}

/// The largest size with the aspect of `size_px` that fits in `box_px`, at least 1x1.
pub fn fit_inside(size_px: (u32, u32), box_px: (u32, u32)) -> (u32, u32) {
    let (width, height) = (f64::from(size_px.0.max(1)), f64::from(size_px.1.max(1)));
    let scale = (f64::from(box_px.0) / width).min(f64::from(box_px.1) / height);
    let fitted = |side: f64| ((side * scale).round() as u32).max(1);
    (fitted(width).min(box_px.0.max(1)), fitted(height).min(box_px.1.max(1)))
}

/// `text` in at most `max_chars` characters, the middle replaced by an ellipsis when it is
/// longer (file names differ at both ends: the start and the extension both matter).
pub fn shorten(text: &str, max_chars: usize) -> String {
    let n_chars = text.chars().count();
    if n_chars <= max_chars || max_chars < 3 {
        return text.to_string();
    }
    let n_tail = (max_chars - 1) / 2;
    let n_head = max_chars - 1 - n_tail;
    let head: String = text.chars().take(n_head).collect();
    let tail: String = text.chars().skip(n_chars - n_tail).collect();
    format!("{head}…{tail}")
}

/// The file name of `path`, or the whole path when it has none.
pub fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into())
}

/// The folders holding `paths`, with how many of them each holds: most first, then by
/// name.
pub fn folder_counts<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Vec<(PathBuf, usize)> {
    let mut counts: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for path in paths {
        let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
        *counts.entry(folder).or_default() += 1;
    }
    let mut counts: Vec<(PathBuf, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

/// A range that holds every value with a margin of `margin` of its width on each side;
/// a single value gets a unit-wide range around it.
pub fn padded_range(values: impl IntoIterator<Item = f64>, margin: f64) -> (f64, f64) {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for value in values.into_iter().filter(|v| v.is_finite()) {
        low = low.min(value);
        high = high.max(value);
    }
    if low > high {
        return (0.0, 1.0);
    }
    let width = high - low;
    if width <= f64::EPSILON * high.abs().max(1.0) {
        let half = (high.abs() * 0.01).max(0.5);
        return (low - half, high + half);
    }
    (low - margin * width, high + margin * width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_fills_rows_left_to_right() {
        let grid = Grid::new(10, 4);
        assert_eq!(grid, Grid { n_columns: 4, n_rows: 3 });
        assert_eq!(grid.origin(5, (100, 50), 10), (110, 60));
        assert_eq!(grid.size_px((100, 50), 10), (430, 170));
        assert_eq!(Grid::new(2, 4), Grid { n_columns: 2, n_rows: 1 });
        assert_eq!(Grid::new(0, 4), Grid { n_columns: 1, n_rows: 1 });
    }

    #[test]
    fn capping_keeps_one_tile_for_the_rest() {
        let capped = Capped::new((0..100).collect::<Vec<_>>(), 48);
        assert_eq!(capped.shown.len(), 47);
        assert_eq!(capped.n_more, 53);
        assert_eq!(capped.n_tiles(), 48);
        let all = Capped::new((0..48).collect::<Vec<_>>(), 48);
        assert_eq!((all.shown.len(), all.n_more, all.n_tiles()), (48, 0, 48));
    }

    #[test]
    fn samples_are_sorted_bounded_and_repeatable() {
        let first = sample(100_000, 500, 7);
        assert_eq!(first.len(), 500);
        assert!(first.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(first, sample(100_000, 500, 7));
        assert_ne!(first, sample(100_000, 500, 8));
        assert_eq!(sample(5, 500, 7), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn fitting_keeps_the_aspect() {
        assert_eq!(fit_inside((1600, 1000), (160, 160)), (160, 100));
        assert_eq!(fit_inside((20, 20), (160, 120)), (120, 120));
        assert_eq!(fit_inside((1, 10_000), (50, 50)), (1, 50));
    }

    #[test]
    fn long_names_lose_their_middle() {
        assert_eq!(shorten("short.jpg", 20), "short.jpg");
        let shortened = shorten("050_FallenLeaf-2560x1600_half.jpg", 16);
        assert_eq!(shortened.chars().count(), 16);
        assert_eq!(shortened, "050_Fall…alf.jpg");
    }

    #[test]
    fn folders_are_counted_largest_first() {
        let paths = [Path::new("b/1.jpg"), Path::new("a/2.jpg"), Path::new("b/3.jpg")];
        let counts = folder_counts(paths);
        assert_eq!(counts, vec![(PathBuf::from("b"), 2), (PathBuf::from("a"), 1)]);
    }

    #[test]
    fn ranges_are_padded_and_never_empty() {
        assert_eq!(padded_range([0.0, 10.0], 0.1), (-1.0, 11.0));
        assert_eq!(padded_range([3.0, 3.0], 0.1), (2.5, 3.5));
        assert_eq!(padded_range([], 0.1), (0.0, 1.0));
    }
}
