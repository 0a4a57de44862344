//! What a figure is, and how one is written to disk as PNG (always) and SVG (for charts).
//!
//! A figure draws itself on any plotters backend; [`render`] draws it twice, once on a
//! bitmap that is encoded as PNG, once on [`SvgBackend`]. Montages of thumbnails are
//! bitmaps at heart, so they are written as PNG only.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::svg::SvgBackend;
use super::ReportError;

/// Any error from drawing, whatever the backend.
pub type DrawError = Box<dyn std::error::Error + Send + Sync>;

/// The files a figure is written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formats {
    PngAndSvg,
    PngOnly,
}

/// Something that draws itself.
pub trait Figure {
    /// The file stem, unique within a report: `scatter-pca`, `cluster-3`.
    fn name(&self) -> String;
    /// Width and height in pixels.
    fn size_px(&self) -> (u32, u32);
    fn formats(&self) -> Formats;
    /// Draws on `root`, which is `size_px` large and blank.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>
    where
        DB::ErrorType: 'static;
}

/// A figure written to disk: its file names relative to the report's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFigure {
    pub name: String,
    pub png: PathBuf,
    pub svg: Option<PathBuf>,
    pub width_px: u32,
    pub height_px: u32,
}

/// Draws `figure` into `folder` as `NAME.png`, and `NAME.svg` when it has one.
pub fn render<F: Figure>(figure: &F, folder: &Path) -> Result<WrittenFigure, ReportError> {
    let name = figure.name();
    let (width_px, height_px) = figure.size_px();
    let draw_error =
        |error: DrawError| ReportError::Draw { figure: name.clone(), message: error.to_string() };
    let png = PathBuf::from(format!("{name}.png"));
    let pixels = draw_bitmap(figure).map_err(draw_error)?;
    let path = folder.join(&png);
    let image = image::RgbImage::from_raw(width_px, height_px, pixels).ok_or_else(|| {
        ReportError::Draw { figure: name.clone(), message: "bitmap of the wrong size".into() }
    })?;
    write_png(&image, &path)?;
    let svg = match figure.formats() {
        Formats::PngOnly => None,
        Formats::PngAndSvg => {
            let document = draw_svg(figure).map_err(draw_error)?;
            let svg = PathBuf::from(format!("{name}.svg"));
            let path = folder.join(&svg);
            std::fs::write(&path, document).map_err(|cause| ReportError::Write { path, cause })?;
            Some(svg)
        }
    };
    Ok(WrittenFigure { name, png, svg, width_px, height_px })
}

/// Writes `image` as a PNG compressed as far as it goes: figures are mostly flat colour,
/// and the report is read far more often than it is written.
fn write_png(image: &image::RgbImage, path: &Path) -> Result<(), ReportError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder as _;
    let file = std::fs::File::create(path)
        .map_err(|cause| ReportError::Write { path: path.to_path_buf(), cause })?;
    let encoder = PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        CompressionType::Best,
        FilterType::Adaptive,
    );
    let (width, height) = image.dimensions();
    encoder.write_image(image.as_raw(), width, height, image::ExtendedColorType::Rgb8).map_err(
        |error| ReportError::Encode { path: path.to_path_buf(), message: error.to_string() },
    )
}

/// The figure as RGB pixels, row by row.
pub fn draw_bitmap<F: Figure>(figure: &F) -> Result<Vec<u8>, DrawError> {
    let (width_px, height_px) = figure.size_px();
    let mut pixels = vec![255u8; width_px as usize * height_px as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width_px, height_px));
        let root = root.into_drawing_area();
        root.fill(&WHITE)?;
        figure.draw(&root)?;
        root.present()?;
    }
    Ok(pixels)
}

/// The figure as an SVG document.
pub fn draw_svg<F: Figure>(figure: &F) -> Result<String, DrawError> {
    let mut document = String::new();
    {
        let root = SvgBackend::new(&mut document, figure.size_px()).into_drawing_area();
        root.fill(&WHITE)?;
        figure.draw(&root)?;
        root.present()?;
    }
    Ok(document)
}

/// Colours of clusters: twenty that stay apart from each other, then again from the
/// first. Noise is light gray.
pub fn cluster_colour(label: Option<usize>) -> RGBColor {
    const PALETTE: [(u8, u8, u8); 20] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (174, 199, 232),
        (255, 187, 120),
        (152, 223, 138),
        (255, 152, 150),
        (197, 176, 213),
        (196, 156, 148),
        (247, 182, 210),
        (219, 219, 141),
        (158, 218, 229),
        (57, 59, 121),
    ];
    match label {
        Some(cluster) => {
            let (r, g, b) = PALETTE[cluster % PALETTE.len()];
            RGBColor(r, g, b)
        }
        None => RGBColor(200, 200, 200),
    }
}

/// Number of distinct cluster colours before they repeat.
pub const N_COLOURS: usize = 20;
