//! The 2-D embedding (t-SNE or the first two principal components) as a scatter plot:
//! points coloured by cluster, each cluster's representative thumbnail at the cluster's
//! centre, a legend; optionally a thumbnail at every (sampled) point instead of dots.

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::draw::{self, LegendEntry};
use crate::report::figure::{cluster_colour, DrawError, Figure, Formats};
use crate::report::font::{font, size};
use crate::report::layout::padded_range;

/// Most points drawn; larger sets are sampled (the subtitle says so).
pub const MAX_POINTS: usize = 10_000;
/// Most thumbnails drawn at points, for the variant with every thumbnail.
pub const MAX_POINT_THUMBNAILS: usize = 300;

/// One image's place in the plane.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub label: Option<usize>,
}

/// A thumbnail pinned at a place in the plane.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub x: f64,
    pub y: f64,
    pub label: Option<usize>,
    pub thumbnail: Option<RgbImage>,
}

#[derive(Debug, Clone)]
pub struct Scatter {
    pub name: String,
    pub title: String,
    pub subtitle: String,
    pub axes: (String, String),
    /// The points drawn (already sampled).
    pub points: Vec<Point>,
    /// Drawn as large thumbnails with a frame in the cluster's colour.
    pub centres: Vec<Pinned>,
    /// Drawn as small thumbnails instead of dots, when not empty.
    pub at_points: Vec<Pinned>,
    pub legend: Vec<LegendEntry>,
}

const WIDTH_PX: u32 = 1280;
const HEIGHT_PX: u32 = 900;
const LEGEND_PX: u32 = 250;
const CENTRE_THUMBNAIL_PX: u32 = 72;
const POINT_THUMBNAIL_PX: u32 = 40;

/// The centre of each cluster's points: their mean, in cluster order; `None` for a
/// cluster with no point.
pub fn centres(points: &[Point], n_clusters: usize) -> Vec<Option<(f64, f64)>> {
    let mut sums = vec![(0.0, 0.0, 0usize); n_clusters];
    for point in points {
        if let Some(sum) = point.label.and_then(|cluster| sums.get_mut(cluster)) {
            *sum = (sum.0 + point.x, sum.1 + point.y, sum.2 + 1);
        }
    }
    sums.into_iter().map(|(x, y, n)| (n > 0).then(|| (x / n as f64, y / n as f64))).collect()
}

impl Figure for Scatter {
    fn name(&self) -> String {
        self.name.clone()
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
        let (plot, side) = body.split_horizontally(WIDTH_PX - LEGEND_PX);
        let x_range = padded_range(self.points.iter().map(|p| p.x), 0.1);
        let y_range = padded_range(self.points.iter().map(|p| p.y), 0.1);
        let mut chart = ChartBuilder::on(&plot)
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
        chart
            .configure_mesh()
            .x_desc(&self.axes.0)
            .y_desc(&self.axes.1)
            .label_style(font(size::LABEL))
            .axis_desc_style(font(size::AXIS_DESCRIPTION))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        if self.at_points.is_empty() {
            chart.draw_series(
                self.points.iter().map(|p| {
                    Circle::new((p.x, p.y), 4, cluster_colour(p.label).mix(0.75).filled())
                }),
            )?;
        }
        let pixel = |x: f64, y: f64| chart.backend_coord(&(x, y));
        for pinned in &self.at_points {
            pin(root, pinned, pixel(pinned.x, pinned.y), POINT_THUMBNAIL_PX, 2)?;
        }
        for pinned in &self.centres {
            pin(root, pinned, pixel(pinned.x, pinned.y), CENTRE_THUMBNAIL_PX, 4)?;
        }
        draw::legend(&side, "clusters (images)", &self.legend, 24)?;
        Ok(())
    }
}

/// A thumbnail centred at `at`, framed in its cluster's colour.
fn pin<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pinned: &Pinned,
    at: (i32, i32),
    side_px: u32,
    frame_px: u32,
) -> Result<(), DrawError>
where
    DB::ErrorType: 'static,
{
    let Some(thumbnail) = &pinned.thumbnail else { return Ok(()) };
    let fitted = crate::report::thumbnails::fitted(thumbnail, (side_px, side_px));
    let (width, height) = fitted.dimensions();
    let origin = (at.0 - width as i32 / 2, at.1 - height as i32 / 2);
    draw::frame(root, origin, (width, height), &cluster_colour(pinned.label), frame_px)?;
    let element = BitMapElement::with_owned_buffer(origin, (width, height), fitted.into_raw())
        .ok_or("thumbnail of the wrong size")?;
    root.draw(&element)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centres_are_the_means_of_each_clusters_points() {
        let point = |x, y, label| Point { x, y, label };
        let points = [point(0.0, 0.0, Some(0)), point(2.0, 4.0, Some(0)), point(9.0, 9.0, None)];
        assert_eq!(centres(&points, 2), vec![Some((1.0, 2.0)), None]);
    }
}
