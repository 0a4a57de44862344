//! The EXIF methods' figures: photos over time, one row per cluster (`exif-time`), and
//! photo positions on a plain latitude-longitude plot (`exif-gps`; no map tiles, so no
//! network).

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::draw::{self, LegendEntry};
use crate::report::figure::{cluster_colour, DrawError, Figure, Formats};
use crate::report::font::{font, size};
use crate::report::layout::padded_range;

/// Most photos drawn; larger sets are sampled (the subtitle says so).
pub const MAX_PHOTOS: usize = 10_000;

/// Which EXIF field is plotted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExifPlot {
    /// x: time taken (seconds since the epoch), y: cluster.
    Time,
    /// x: longitude, y: latitude, in degrees.
    Place,
}

#[derive(Debug, Clone)]
pub struct ExifFigure {
    pub plot: ExifPlot,
    pub title: String,
    pub subtitle: String,
    /// (x, y, cluster) of each photo drawn.
    pub points: Vec<(f64, f64, Option<usize>)>,
    pub n_clusters: usize,
    pub legend: Vec<LegendEntry>,
}

/// `unix_s` as `YYYY-MM-DD`, with `HH:MM` when `with_time` (UTC, proleptic Gregorian).
pub fn format_date(unix_s: i64, with_time: bool) -> String {
    let days = unix_s.div_euclid(86_400);
    let seconds = unix_s.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (the algorithm of H. Hinnant's date library).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}-{month:02}-{day:02}");
    match with_time {
        true => format!("{date} {:02}:{:02}", seconds / 3600, seconds % 3600 / 60),
        false => date,
    }
}

const WIDTH_PX: u32 = 1280;
const HEIGHT_PX: u32 = 800;
const LEGEND_PX: u32 = 250;

impl Figure for ExifFigure {
    fn name(&self) -> String {
        match self.plot {
            ExifPlot::Time => "exif-time".to_string(),
            ExifPlot::Place => "exif-gps".to_string(),
        }
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
        let x_range = padded_range(self.points.iter().map(|p| p.0), 0.04);
        let y_range = match self.plot {
            ExifPlot::Time => (-0.5, self.n_clusters.max(1) as f64 - 0.5),
            ExifPlot::Place => padded_range(self.points.iter().map(|p| p.1), 0.06),
        };
        let mut chart = ChartBuilder::on(&plot)
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(120)
            .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
        let span_s = x_range.1 - x_range.0;
        let date = |x: &f64| format_date(x.round() as i64, span_s < 4.0 * 86_400.0);
        let degrees = |v: &f64| format!("{v:.3}°");
        let cluster = |y: &f64| format!("{y:.0}");
        let mut mesh = chart.configure_mesh();
        mesh.label_style(font(size::LABEL))
            .axis_desc_style(font(size::AXIS_DESCRIPTION))
            .light_line_style(RGBColor(238, 238, 238));
        match self.plot {
            ExifPlot::Time => mesh
                .x_desc("taken at (UTC)")
                .y_desc("cluster")
                .x_labels(6)
                .x_label_formatter(&date)
                .y_labels(self.n_clusters.clamp(1, 25))
                .y_label_formatter(&cluster)
                .draw()?,
            ExifPlot::Place => mesh
                .x_desc("longitude")
                .y_desc("latitude")
                .x_label_formatter(&degrees)
                .y_label_formatter(&degrees)
                .draw()?,
        }
        chart.draw_series(self.points.iter().map(|&(x, y, label)| {
            Circle::new((x, y), 5, cluster_colour(label).mix(0.8).filled())
        }))?;
        draw::legend(&side, "clusters (photos)", &self.legend, 24)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_dates_in_utc() {
        assert_eq!(format_date(0, false), "1970-01-01");
        assert_eq!(format_date(951_782_400, false), "2000-02-29");
        assert_eq!(format_date(1_700_000_000, true), "2023-11-14 22:13");
        assert_eq!(format_date(-86_400, false), "1969-12-31");
    }
}
