//! `find`'s figures: for a query, the query image and then its hits, each labelled with
//! distance and p-value; and the null distribution of distances (a histogram of the
//! sampled pairs with the fitted density), with the distance below which a hit is
//! significant at alpha and the hits' own distances marked.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::model::distribution::FittedDistribution;
use crate::report::draw;
use crate::report::figure::{DrawError, Figure, Formats};
use crate::report::font::{font, size};

/// Bars of the histogram.
pub const N_BINS: usize = 40;

/// The distance whose p-value is `alpha` under `null` (the CDF is increasing), found by
/// bisection; `None` when no distance reaches it.
pub fn threshold_distance(null: &FittedDistribution, alpha: f64) -> Option<f64> {
    let mut high = 1.0;
    while null.cdf(high) < alpha {
        high *= 2.0;
        if !high.is_finite() || high > 1e300 {
            return None;
        }
    }
    let mut low = 0.0;
    for _ in 0..200 {
        let middle = (low + high) / 2.0;
        if null.cdf(middle) < alpha {
            low = middle;
        } else {
            high = middle;
        }
    }
    Some((low + high) / 2.0)
}

/// Counts of `samples` in `n_bins` equal bins from 0 to `top`, as densities (the bars'
/// area sums to the share of samples inside).
pub fn histogram(samples: &[f64], top: f64, n_bins: usize) -> Vec<f64> {
    let mut counts = vec![0usize; n_bins];
    let width = top / n_bins as f64;
    for &sample in samples {
        if sample >= 0.0 && sample <= top {
            let bin = ((sample / width) as usize).min(n_bins - 1);
            counts[bin] += 1;
        }
    }
    let n = samples.len().max(1) as f64;
    counts.into_iter().map(|count| count as f64 / (n * width)).collect()
}

#[derive(Debug, Clone)]
pub struct NullDistribution {
    pub title: String,
    pub subtitle: String,
    /// Distances between the sampled pairs of library images.
    pub samples: Vec<f64>,
    pub null: FittedDistribution,
    pub alpha: Option<f64>,
    /// Distances of the hits shown, marked under the axis.
    pub hit_distances: Vec<f64>,
}

const WIDTH_PX: u32 = 1100;
const HEIGHT_PX: u32 = 700;
const BAR: RGBColor = RGBColor(190, 190, 190);
const CURVE: RGBColor = RGBColor(31, 119, 180);
const HIT: RGBColor = RGBColor(44, 160, 44);

impl Figure for NullDistribution {
    fn name(&self) -> String {
        "find-null-distribution".to_string()
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
        let largest = self.samples.iter().chain(&self.hit_distances).fold(0.0f64, |a, &b| a.max(b));
        let top = (largest * 1.05).max(f64::MIN_POSITIVE);
        let densities = histogram(&self.samples, top, N_BINS);
        let width = top / N_BINS as f64;
        let step = top / 400.0;
        let curve: Vec<(f64, f64)> = (1..400)
            .map(|i| {
                let x = i as f64 * step;
                let density =
                    (self.null.cdf(x + step / 2.0) - self.null.cdf(x - step / 2.0)) / step;
                (x, density.max(0.0))
            })
            .collect();
        let peak =
            densities.iter().chain(curve.iter().map(|c| &c.1)).fold(0.0f64, |a, &b| a.max(b));
        let y_top = (peak * 1.1).max(f64::MIN_POSITIVE);
        let mut chart = ChartBuilder::on(&body)
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(100)
            .build_cartesian_2d(0.0..top, 0.0..y_top)?;
        chart
            .configure_mesh()
            .x_desc("distance between two library images")
            .y_desc("density")
            .y_label_formatter(&|y| format!("{y:.2e}"))
            .label_style(font(size::LABEL))
            .axis_desc_style(font(size::AXIS_DESCRIPTION))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        chart
            .draw_series(densities.iter().enumerate().map(|(bin, density)| {
                let x = bin as f64 * width;
                Rectangle::new([(x, 0.0), (x + width, *density)], BAR.filled())
            }))?
            .label("sampled pairs")
            .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], BAR.filled()));
        chart
            .draw_series(LineSeries::new(curve, CURVE.stroke_width(3)))?
            .label(format!("fitted {}", self.null.kind))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], CURVE.stroke_width(3)));
        let tick = y_top * 0.04;
        chart
            .draw_series(
                self.hit_distances
                    .iter()
                    .map(|&d| PathElement::new(vec![(d, 0.0), (d, tick)], HIT.stroke_width(3))),
            )?
            .label("hits")
            .legend(|(x, y)| {
                PathElement::new(vec![(x + 10, y - 6), (x + 10, y + 6)], HIT.stroke_width(3))
            });
        if let Some(alpha) = self.alpha {
            if let Some(distance) = threshold_distance(&self.null, alpha).filter(|d| *d <= top) {
                let guide = vec![(distance, 0.0), (distance, y_top)];
                chart.draw_series(std::iter::once(PathElement::new(guide, RED.stroke_width(2))))?;
                let (x, y) = chart.backend_coord(&(distance, y_top));
                let label = format!("alpha = {alpha}: distance ≤ {distance:.3}");
                let style = font(size::LABEL).color(&RED).pos(Pos::new(HPos::Left, VPos::Top));
                root.draw(&Text::new(label, (x + 8, y + 8), style))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
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
    use crate::model::distribution::{fit, DistributionKind};

    #[test]
    fn threshold_has_the_p_value_alpha() {
        let samples: Vec<f64> = (1..=200).map(|i| f64::from(i) / 10.0).collect();
        let null = fit(&samples, DistributionKind::Normal).unwrap();
        let distance = threshold_distance(&null, 0.05).unwrap();
        assert!((null.cdf(distance) - 0.05).abs() < 1e-9);
        assert!(distance > 0.0 && distance < 10.0, "{distance}");
    }

    #[test]
    fn histogram_bars_have_unit_area() {
        let samples = [0.5, 1.5, 1.6, 3.9];
        let densities = histogram(&samples, 4.0, 4);
        assert_eq!(densities, vec![0.25, 0.5, 0.0, 0.25]);
        let area: f64 = densities.iter().sum::<f64>() * 1.0;
        assert!((area - 1.0).abs() < 1e-12);
    }
}
