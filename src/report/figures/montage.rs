//! A grid of tiles, each one or more pictures side by side with caption lines under
//! them and an optional coloured frame: the cluster pages, the unique images, the find
//! results and the groups of duplicates are all montages.

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::draw::{self, Anchor, BOX_GRAY, TEXT_GRAY};
use crate::report::figure::{DrawError, Figure, Formats};
use crate::report::font::size;
use crate::report::layout::Grid;

/// One picture of a tile.
#[derive(Debug, Clone)]
pub enum Picture {
    Image(RgbImage),
    /// The image could not be read again for the report.
    Missing,
    /// Stands for this many images that are not shown.
    More(usize),
}

/// One cell of the grid.
#[derive(Debug, Clone)]
pub struct Tile {
    pub pictures: Vec<Picture>,
    /// Lines under the pictures; the first is black, the others gray.
    pub caption: Vec<String>,
    /// A frame around the pictures, to single a tile out (the query, a keeper).
    pub frame: Option<RGBColor>,
}

/// A titled grid of tiles.
#[derive(Debug, Clone)]
pub struct Montage {
    pub name: String,
    pub title: String,
    pub subtitle: Option<String>,
    pub tiles: Vec<Tile>,
    /// The box each picture is fitted into.
    pub picture_px: (u32, u32),
    /// Pictures per tile: every tile of a montage has the same number.
    pub pictures_per_tile: usize,
    pub caption_lines: usize,
    pub max_columns: usize,
}

const MARGIN_PX: u32 = 24;
const GAP_PX: u32 = 14;
const PICTURE_GAP_PX: u32 = 4;
const LINE_PX: u32 = 20;

impl Montage {
    fn tile_px(&self) -> (u32, u32) {
        let n = self.pictures_per_tile.max(1) as u32;
        let width = n * self.picture_px.0 + (n - 1) * PICTURE_GAP_PX;
        let height = self.picture_px.1 + 6 + self.caption_lines as u32 * LINE_PX;
        (width, height)
    }

    fn grid(&self) -> Grid {
        Grid::new(self.tiles.len(), self.max_columns)
    }

    fn header_px(&self) -> u32 {
        if self.subtitle.is_some() {
            76
        } else {
            48
        }
    }

    /// Where tile `idx`'s top-left corner lands in the figure.
    pub fn tile_origin(&self, idx: usize) -> (i32, i32) {
        let (x, y) = self.grid().origin(idx, self.tile_px(), GAP_PX);
        (x + MARGIN_PX as i32, y + (self.header_px() + MARGIN_PX / 2) as i32)
    }

    fn draw_tile<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        tile: &Tile,
        origin: (i32, i32),
    ) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        let (box_w, box_h) = self.picture_px;
        for (idx, picture) in tile.pictures.iter().enumerate() {
            let x = origin.0 + (idx as u32 * (box_w + PICTURE_GAP_PX)) as i32;
            let at = (x, origin.1);
            match picture {
                Picture::Image(image) => draw::picture(root, image, at, self.picture_px)?,
                Picture::Missing => {
                    draw::filled_box(root, at, self.picture_px, &BOX_GRAY)?;
                    let centre = (x + box_w as i32 / 2, origin.1 + box_h as i32 / 2);
                    draw::text(
                        root,
                        "unreadable",
                        centre,
                        size::CAPTION,
                        Anchor::Centre,
                        &TEXT_GRAY,
                    )?;
                }
                Picture::More(n_more) => {
                    draw::filled_box(root, at, self.picture_px, &BOX_GRAY)?;
                    let centre = (x + box_w as i32 / 2, origin.1 + box_h as i32 / 2);
                    let label = format!("+{n_more} more");
                    draw::text(root, &label, centre, size::LABEL, Anchor::Centre, &BLACK)?;
                }
            }
        }
        if let Some(colour) = tile.frame {
            let width = self.tile_px().0;
            draw::frame(root, origin, (width, box_h), &colour, 4)?;
        }
        let centre = origin.0 + (self.tile_px().0 / 2) as i32;
        for (line, text) in tile.caption.iter().take(self.caption_lines).enumerate() {
            let y = origin.1 + (box_h + 6 + line as u32 * LINE_PX) as i32;
            let colour = if line == 0 { BLACK } else { TEXT_GRAY };
            draw::text(root, text, (centre, y), size::CAPTION, Anchor::TopCentre, &colour)?;
        }
        Ok(())
    }
}

impl Figure for Montage {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn size_px(&self) -> (u32, u32) {
        let (grid_w, grid_h) = self.grid().size_px(self.tile_px(), GAP_PX);
        let width = (grid_w + 2 * MARGIN_PX).max(640);
        (width, self.header_px() + MARGIN_PX / 2 + grid_h + MARGIN_PX)
    }

    fn formats(&self) -> Formats {
        Formats::PngOnly
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static,
    {
        draw::header(root, &self.title, self.subtitle.as_deref())?;
        for (idx, tile) in self.tiles.iter().enumerate() {
            self.draw_tile(root, tile, self.tile_origin(idx))?;
        }
        Ok(())
    }
}
