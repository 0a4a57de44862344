//! Small drawing steps that several figures share: text at an anchor, a picture centred
//! in a box, a titled header, and a legend of cluster colours.

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{cluster_colour, DrawError};
use super::font::{font, size};

/// Background of an empty picture box.
pub const BOX_GRAY: RGBColor = RGBColor(236, 236, 236);
/// Colour of secondary text.
pub const TEXT_GRAY: RGBColor = RGBColor(90, 90, 90);

/// Where a piece of text is pinned.
#[derive(Debug, Clone, Copy)]
pub enum Anchor {
    TopLeft,
    TopCentre,
    Centre,
    CentreLeft,
}

impl Anchor {
    fn pos(self) -> Pos {
        match self {
            Anchor::TopLeft => Pos::new(HPos::Left, VPos::Top),
            Anchor::TopCentre => Pos::new(HPos::Center, VPos::Top),
            Anchor::Centre => Pos::new(HPos::Center, VPos::Center),
            Anchor::CentreLeft => Pos::new(HPos::Left, VPos::Center),
        }
    }
}

/// Draws `text` at `at` in the bundled font.
pub fn text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    at: (i32, i32),
    size_px: u32,
    anchor: Anchor,
    colour: &RGBColor,
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    let style = font(size_px).color(colour).pos(anchor.pos());
    area.draw(&Text::new(text.to_string(), at, style))?;
    Ok(())
}

/// The title and, when given, a line under it; returns the height they take.
pub fn header<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: Option<&str>,
) -> Result<u32, DrawError>
where
    DB::ErrorType: 'static,
{
    let (width, _) = area.dim_in_pixel();
    let centre = (width / 2) as i32;
    self::text(area, title, (centre, 12), size::TITLE, Anchor::TopCentre, &BLACK)?;
    let Some(subtitle) = subtitle else { return Ok(48) };
    self::text(area, subtitle, (centre, 46), size::LABEL, Anchor::TopCentre, &TEXT_GRAY)?;
    Ok(76)
}

/// Draws `image` scaled to fit the box at `origin` of `box_px`, centred, on gray.
pub fn picture<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    image: &RgbImage,
    origin: (i32, i32),
    box_px: (u32, u32),
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    filled_box(area, origin, box_px, &BOX_GRAY)?;
    let fitted = super::thumbnails::fitted(image, box_px);
    let (width, height) = fitted.dimensions();
    let x = origin.0 + ((box_px.0 - width) / 2) as i32;
    let y = origin.1 + ((box_px.1 - height) / 2) as i32;
    let element = BitMapElement::with_owned_buffer((x, y), (width, height), fitted.into_raw())
        .ok_or("thumbnail of the wrong size")?;
    area.draw(&element)?;
    Ok(())
}

pub fn filled_box<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    origin: (i32, i32),
    box_px: (u32, u32),
    colour: &RGBColor,
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    let corner = (origin.0 + box_px.0 as i32, origin.1 + box_px.1 as i32);
    area.draw(&Rectangle::new([origin, corner], colour.filled()))?;
    Ok(())
}

/// A frame `width_px` wide just outside the box at `origin`.
pub fn frame<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    origin: (i32, i32),
    box_px: (u32, u32),
    colour: &RGBColor,
    width_px: u32,
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    let w = width_px as i32;
    let (x0, y0) = (origin.0 - w, origin.1 - w);
    let (x1, y1) = (origin.0 + box_px.0 as i32 + w, origin.1 + box_px.1 as i32 + w);
    for (a, b) in [
        ((x0, y0), (x1, origin.1)),
        ((x0, y1 - w), (x1, y1)),
        ((x0, y0), (origin.0, y1)),
        ((x1 - w, y0), (x1, y1)),
    ] {
        area.draw(&Rectangle::new([a, b], colour.filled()))?;
    }
    Ok(())
}

/// One line of a legend.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    pub label: Option<usize>,
    pub text: String,
}

/// Most entries a legend lists; the rest are summed up in one line.
pub const MAX_LEGEND_ENTRIES: usize = 24;

/// The legend's entries for clusters of `sizes` and `n_noise` noise images: the largest
/// clusters (which come first), a line for the rest, and one for noise.
pub fn legend_entries(sizes: &[usize], n_noise: usize) -> Vec<LegendEntry> {
    let mut entries: Vec<LegendEntry> = sizes
        .iter()
        .enumerate()
        .take(MAX_LEGEND_ENTRIES)
        .map(|(cluster, size)| LegendEntry {
            label: Some(cluster),
            text: format!("cluster {cluster} ({size})"),
        })
        .collect();
    if sizes.len() > MAX_LEGEND_ENTRIES {
        let n_rest = sizes.len() - MAX_LEGEND_ENTRIES;
        let n_images: usize = sizes[MAX_LEGEND_ENTRIES..].iter().sum();
        let text = format!("+{n_rest} more clusters ({n_images})");
        entries.push(LegendEntry { label: None, text });
    }
    if n_noise > 0 {
        entries.push(LegendEntry { label: None, text: format!("noise ({n_noise})") });
    }
    entries
}

/// Draws `entries` down the area from its top-left corner plus `top_px`.
pub fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    heading: &str,
    entries: &[LegendEntry],
    top_px: i32,
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    text(area, heading, (10, top_px), size::LABEL, Anchor::TopLeft, &BLACK)?;
    for (row, entry) in entries.iter().enumerate() {
        let y = top_px + 34 + row as i32 * 24;
        let colour = cluster_colour(entry.label);
        area.draw(&Circle::new((20, y), 7, colour.filled()))?;
        text(area, &entry.text, (34, y), size::CAPTION, Anchor::CentreLeft, &BLACK)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legend_lists_the_largest_clusters_then_the_rest_then_noise() {
        let sizes: Vec<usize> = (0..30).map(|c| 100 - c).collect();
        let entries = legend_entries(&sizes, 4);
        assert_eq!(entries.len(), MAX_LEGEND_ENTRIES + 2);
        assert_eq!(entries[0].text, "cluster 0 (100)");
        let rest: usize = (24..30).map(|c| 100 - c).sum();
        assert_eq!(entries[MAX_LEGEND_ENTRIES].text, format!("+6 more clusters ({rest})"));
        assert_eq!(entries.last().unwrap().text, "noise (4)");
        assert_eq!(legend_entries(&[3, 2], 0).len(), 2);
    }
}
