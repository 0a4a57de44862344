//! Choosing the number of clusters: the evaluation's score for every candidate tried
//! (k, or DBSCAN's radius), the chosen one marked.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::model::SearchScore;
use crate::report::draw;
use crate::report::figure::{DrawError, Figure, Formats};
use crate::report::font::{font, size};
use crate::report::layout::padded_range;

/// One candidate as plotted: x (k, or eps for DBSCAN), its score, and the k it gave.
pub type Candidate = (f64, f64, usize);

/// The candidates of a search, ready to plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Plotted {
    /// Sorted by x.
    pub candidates: Vec<Candidate>,
    pub chosen: Option<Candidate>,
    /// Whether x is DBSCAN's radius rather than k.
    pub by_radius: bool,
}

#[derive(Debug, Clone)]
pub struct Scores {
    pub title: String,
    pub subtitle: String,
    /// What the y axis shows, with its direction: "silhouette (higher is better)".
    pub score_name: String,
    /// Candidates with a defined score, as (x, score, k); x is k, or eps for DBSCAN.
    pub candidates: Vec<Candidate>,
    pub x_name: String,
    pub chosen: Option<Candidate>,
}

impl Scores {
    /// The plotted candidates of a search: by k, or by radius when the search was over
    /// DBSCAN's radius; `None` when fewer than two scores are defined.
    pub fn candidates(scores: &[SearchScore], chosen: Option<SearchScore>) -> Option<Plotted> {
        let by_radius = scores.iter().any(|s| s.eps.is_some());
        let x_of = |s: &SearchScore| if by_radius { s.eps.unwrap_or(0.0) } else { s.k as f64 };
        let mut candidates: Vec<Candidate> =
            scores.iter().filter_map(|s| Some((x_of(s), s.score?, s.k))).collect();
        if candidates.len() < 2 {
            return None;
        }
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
        let chosen = chosen.and_then(|c| Some((x_of(&c), c.score?, c.k)));
        Some(Plotted { candidates, chosen, by_radius })
    }
}

const WIDTH_PX: u32 = 1100;
const HEIGHT_PX: u32 = 700;
const LINE: RGBColor = RGBColor(31, 119, 180);

impl Figure for Scores {
    fn name(&self) -> String {
        "choosing-k".to_string()
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
        let x_range = padded_range(self.candidates.iter().map(|c| c.0), 0.04);
        let y_range = padded_range(self.candidates.iter().map(|c| c.1), 0.08);
        let mut chart = ChartBuilder::on(&body)
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_name)
            .y_desc(&self.score_name)
            .x_label_formatter(&|x| match (x - x.round()).abs() < 1e-9 {
                true => format!("{x:.0}"),
                false => format!("{x:.3}"),
            })
            .label_style(font(size::LABEL))
            .axis_desc_style(font(size::AXIS_DESCRIPTION))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()?;
        let line = self.candidates.iter().map(|c| (c.0, c.1));
        chart.draw_series(LineSeries::new(line, LINE.stroke_width(2)))?;
        chart.draw_series(
            self.candidates.iter().map(|c| Circle::new((c.0, c.1), 5, LINE.filled())),
        )?;
        if let Some((x, score, k)) = self.chosen {
            let guide = vec![(x, y_range.0), (x, y_range.1)];
            chart.draw_series(std::iter::once(PathElement::new(guide, RED.stroke_width(1))))?;
            chart.draw_series(std::iter::once(Circle::new((x, score), 9, RED.stroke_width(3))))?;
            let (px, py) = chart.backend_coord(&(x, score));
            let style = font(size::LABEL).color(&RED).pos(Pos::new(HPos::Left, VPos::Bottom));
            root.draw(&Text::new(format!("chosen: k = {k}"), (px + 12, py - 10), style))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(k: usize, eps: Option<f64>, score: Option<f64>) -> SearchScore {
        SearchScore { k, eps, score }
    }

    #[test]
    fn candidates_are_plotted_by_k_and_undefined_scores_left_out() {
        let scores = [score(3, None, Some(0.2)), score(4, None, None), score(5, None, Some(0.4))];
        let Plotted { candidates, chosen, by_radius } =
            Scores::candidates(&scores, Some(scores[2])).unwrap();
        assert_eq!(candidates, vec![(3.0, 0.2, 3), (5.0, 0.4, 5)]);
        assert_eq!(chosen, Some((5.0, 0.4, 5)));
        assert!(!by_radius);
        assert!(Scores::candidates(&scores[..2], None).is_none());
    }

    #[test]
    fn a_radius_search_is_plotted_by_radius() {
        let scores = [score(4, Some(2.0), Some(0.3)), score(9, Some(1.0), Some(0.1))];
        let Plotted { candidates, by_radius, .. } = Scores::candidates(&scores, None).unwrap();
        assert!(by_radius);
        assert_eq!(candidates[0], (1.0, 0.1, 9));
    }
}
