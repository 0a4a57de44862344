//! The PCA: the share of the variance each component explains, the running total, and
//! the threshold that decided how many components were kept.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::draw;
use crate::report::figure::{DrawError, Figure, Formats};
use crate::report::font::{font, size};

/// Most components drawn; the subtitle says when there are more.
pub const MAX_COMPONENTS: usize = 100;

#[derive(Debug, Clone)]
pub struct Variance {
    pub title: String,
    pub subtitle: String,
    /// Share of the variance of each kept component, largest first (at most
    /// [`MAX_COMPONENTS`]).
    pub ratios: Vec<f64>,
    /// The share of the variance to keep, when the count was chosen by it.
    pub threshold: Option<f64>,
}

/// The running total of `ratios`.
pub fn cumulative(ratios: &[f64]) -> Vec<f64> {
    ratios
        .iter()
        .scan(0.0, |total, ratio| {
            *total += ratio;
            Some(*total)
        })
        .collect()
}

const WIDTH_PX: u32 = 1100;
const HEIGHT_PX: u32 = 700;
const BAR: RGBColor = RGBColor(158, 202, 225);
const LINE: RGBColor = RGBColor(31, 119, 180);

impl Figure for Variance {
    fn name(&self) -> String {
        "pca-variance".to_string()
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
        let n = self.ratios.len();
        let mut chart = ChartBuilder::on(&body)
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(0.5..n as f64 + 0.5, 0.0..1.02)?;
        chart
            .configure_mesh()
            .x_desc("principal component")
            .y_desc("share of the variance")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{:.0} %", y * 100.0))
            .label_style(font(size::LABEL))
            .axis_desc_style(font(size::AXIS_DESCRIPTION))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        chart.draw_series(self.ratios.iter().enumerate().map(|(idx, ratio)| {
            let x = idx as f64 + 1.0;
            Rectangle::new([(x - 0.4, 0.0), (x + 0.4, *ratio)], BAR.filled())
        }))?;
        let totals = cumulative(&self.ratios);
        let line = totals.iter().enumerate().map(|(idx, total)| (idx as f64 + 1.0, *total));
        chart
            .draw_series(LineSeries::new(line.clone(), LINE.stroke_width(2)))?
            .label("cumulative")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], LINE.stroke_width(2)));
        chart.draw_series(line.map(|(x, y)| Circle::new((x, y), 3, LINE.filled())))?;
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label("each component")
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], BAR.filled()));
        if let Some(threshold) = self.threshold {
            let guide = vec![(0.5, threshold), (n as f64 + 0.5, threshold)];
            chart.draw_series(std::iter::once(PathElement::new(guide, RED.stroke_width(2))))?;
            let (x, y) = chart.backend_coord(&(n as f64 + 0.5, threshold));
            let label = format!("threshold {:.0} %", threshold * 100.0);
            let style = font(size::LABEL).color(&RED).pos(Pos::new(HPos::Right, VPos::Top));
            root.draw(&Text::new(label, (x - 6, y + 6), style))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .label_font(font(size::LABEL))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(200, 200, 200))
            .draw()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_shares_add_up() {
        assert_eq!(cumulative(&[0.5, 0.25, 0.125]), vec![0.5, 0.75, 0.875]);
    }
}
