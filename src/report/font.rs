//! The one font every figure is drawn with: DejaVu Sans, bundled in the binary so that
//! the figures look the same on every machine, whatever fonts it has installed.
//!
//! The font file and its licence live in `assets/fonts/`. SVG files name the family
//! instead of embedding 750 KB of font; a viewer without DejaVu Sans falls back to its
//! own sans-serif, with text of about the same width.

use std::sync::OnceLock;

use plotters::style::{FontDesc, FontFamily, FontStyle, IntoFont};

/// The family name figures ask for.
pub const FAMILY: &str = "DejaVu Sans";

/// What SVG text asks the viewer for, best first.
pub const SVG_FAMILIES: &str = "'DejaVu Sans', 'Bitstream Vera Sans', Verdana, sans-serif";

static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the bundled font with plotters, once; later calls return the first outcome.
pub fn ensure_registered() -> Result<(), super::ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        // Plotters' own defaults (axis labels) ask for "sans-serif": both names get it.
        let named = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT_BYTES);
        let generic = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT_BYTES);
        named.is_ok() && generic.is_ok()
    });
    match registered {
        true => Ok(()),
        false => Err(super::ReportError::Font),
    }
}

/// The bundled font at `size_px` pixels.
pub fn font(size_px: u32) -> FontDesc<'static> {
    (FontFamily::Name(FAMILY), f64::from(size_px)).into_font()
}

/// Text sizes, in pixels, shared by every figure so that they read alike.
pub mod size {
    pub const TITLE: u32 = 26;
    pub const AXIS_DESCRIPTION: u32 = 20;
    pub const LABEL: u32 = 17;
    pub const CAPTION: u32 = 15;
}
