//! A plotters drawing backend that writes SVG, with bitmaps (thumbnails) embedded as PNG.
//!
//! Plotters' own SVG backend embeds bitmaps only through an older version of the `image`
//! crate; this one encodes them with ours. It writes shapes and text as SVG elements in
//! drawing order, with coordinates in whole pixels, so the same drawing always gives the
//! same file. Text names the bundled font's family (see [`super::font`]).

use std::fmt::Write as _;
use std::io::Cursor;

use base64::Engine as _;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontStyle, FontTransform,
};

/// Draws into an SVG document, written to `target` on `present` (and on drop).
pub struct SvgBackend<'a> {
    target: &'a mut String,
    width_px: u32,
    height_px: u32,
    body: String,
    presented: bool,
}

impl<'a> SvgBackend<'a> {
    pub fn new(target: &'a mut String, (width_px, height_px): (u32, u32)) -> SvgBackend<'a> {
        SvgBackend { target, width_px, height_px, body: String::new(), presented: false }
    }

    fn write_document(&mut self) {
        let (w, h) = (self.width_px, self.height_px);
        self.target.clear();
        let _ = write!(
            self.target,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\">\n{}</svg>\n",
            self.body
        );
        self.presented = true;
    }
}

impl Drop for SvgBackend<'_> {
    fn drop(&mut self) {
        if !self.presented {
            self.write_document();
        }
    }
}

type DrawResult = Result<(), DrawingErrorKind<std::io::Error>>;

impl DrawingBackend for SvgBackend<'_> {
    type ErrorType = std::io::Error;

    fn get_size(&self) -> (u32, u32) {
        (self.width_px, self.height_px)
    }

    fn ensure_prepared(&mut self) -> DrawResult {
        Ok(())
    }

    fn present(&mut self) -> DrawResult {
        self.write_document();
        Ok(())
    }

    fn draw_pixel(&mut self, (x, y): BackendCoord, color: BackendColor) -> DrawResult {
        if color.alpha > 0.0 {
            let fill = paint("fill", color);
            let _ =
                writeln!(self.body, "<rect x=\"{x}\" y=\"{y}\" width=\"1\" height=\"1\" {fill}/>");
        }
        Ok(())
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        (x1, y1): BackendCoord,
        (x2, y2): BackendCoord,
        style: &S,
    ) -> DrawResult {
        if style.color().alpha > 0.0 {
            let stroke = stroke(style);
            let _ = writeln!(
                self.body,
                "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" {stroke}/>"
            );
        }
        Ok(())
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        (x1, y1): BackendCoord,
        (x2, y2): BackendCoord,
        style: &S,
        fill: bool,
    ) -> DrawResult {
        if style.color().alpha > 0.0 {
            let (x, y) = (x1.min(x2), y1.min(y2));
            let (w, h) = ((x2 - x1).abs(), (y2 - y1).abs());
            let paint = if fill { paint("fill", style.color()) } else { stroke_only(style) };
            let _ = writeln!(
                self.body,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" {paint}/>"
            );
        }
        Ok(())
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> DrawResult {
        if style.color().alpha > 0.0 {
            let points = points(path);
            let stroke = stroke_only(style);
            let _ = writeln!(self.body, "<polyline points=\"{points}\" {stroke}/>");
        }
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        (x, y): BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> DrawResult {
        if style.color().alpha > 0.0 {
            let paint = if fill { paint("fill", style.color()) } else { stroke_only(style) };
            let _ = writeln!(self.body, "<circle cx=\"{x}\" cy=\"{y}\" r=\"{radius}\" {paint}/>");
        }
        Ok(())
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vertices: I,
        style: &S,
    ) -> DrawResult {
        if style.color().alpha > 0.0 {
            let points = points(vertices);
            let fill = paint("fill", style.color());
            let _ = writeln!(self.body, "<polygon points=\"{points}\" {fill}/>");
        }
        Ok(())
    }

    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        (x, y): BackendCoord,
    ) -> DrawResult {
        if style.color().alpha == 0.0 {
            return Ok(());
        }
        let anchor = match style.anchor().h_pos {
            HPos::Left => "start",
            HPos::Center => "middle",
            HPos::Right => "end",
        };
        let baseline = match style.anchor().v_pos {
            VPos::Top => "text-before-edge",
            VPos::Center => "central",
            VPos::Bottom => "text-after-edge",
        };
        let rotation = match style.transform() {
            FontTransform::None => 0,
            FontTransform::Rotate90 => 90,
            FontTransform::Rotate180 => 180,
            FontTransform::Rotate270 => 270,
        };
        let transform = match rotation {
            0 => String::new(),
            degrees => format!(" transform=\"rotate({degrees}, {x}, {y})\""),
        };
        let weight = match style.style() {
            FontStyle::Bold => " font-weight=\"bold\"",
            FontStyle::Italic | FontStyle::Oblique => " font-style=\"italic\"",
            FontStyle::Normal => "",
        };
        let fill = paint("fill", style.color());
        let _ = writeln!(
            self.body,
            "<text x=\"{x}\" y=\"{y}\" font-family=\"{}\" font-size=\"{:.0}\" \
             text-anchor=\"{anchor}\" dominant-baseline=\"{baseline}\"{weight}{transform} \
             {fill}>{}</text>",
            super::font::SVG_FAMILIES,
            style.size(),
            escape(text)
        );
        Ok(())
    }

    fn blit_bitmap(
        &mut self,
        (x, y): BackendCoord,
        (width_px, height_px): (u32, u32),
        rgb: &[u8],
    ) -> DrawResult {
        let image =
            image::RgbImage::from_raw(width_px, height_px, rgb.to_vec()).ok_or_else(|| {
                DrawingErrorKind::DrawingError(std::io::Error::other("bitmap of the wrong size"))
            })?;
        let mut png = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|error| DrawingErrorKind::DrawingError(std::io::Error::other(error)))?;
        let data = base64::engine::general_purpose::STANDARD.encode(&png);
        let _ = writeln!(
            self.body,
            "<image x=\"{x}\" y=\"{y}\" width=\"{width_px}\" height=\"{height_px}\" \
             href=\"data:image/png;base64,{data}\"/>"
        );
        Ok(())
    }
}

fn hex(color: BackendColor) -> String {
    let (r, g, b) = color.rgb;
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// `fill="#rrggbb"` (or `stroke=`), with an opacity when not opaque.
fn paint(attribute: &str, color: BackendColor) -> String {
    let mut text = format!("{attribute}=\"{}\"", hex(color));
    if color.alpha < 1.0 {
        let _ = write!(text, " {attribute}-opacity=\"{:.3}\"", color.alpha);
    }
    text
}

fn stroke<S: BackendStyle>(style: &S) -> String {
    format!("{} stroke-width=\"{}\"", paint("stroke", style.color()), style.stroke_width())
}

fn stroke_only<S: BackendStyle>(style: &S) -> String {
    format!("fill=\"none\" {}", stroke(style))
}

fn points<I: IntoIterator<Item = BackendCoord>>(coords: I) -> String {
    let mut text = String::new();
    for (x, y) in coords {
        if !text.is_empty() {
            text.push(' ');
        }
        let _ = write!(text, "{x},{y}");
    }
    text
}

/// Escapes text for an SVG or HTML element or attribute.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;

    #[test]
    fn shapes_text_and_bitmaps_become_svg_elements() {
        super::super::font::ensure_registered().unwrap();
        let mut document = String::new();
        {
            let root = SvgBackend::new(&mut document, (40, 30)).into_drawing_area();
            root.fill(&WHITE).unwrap();
            root.draw(&Circle::new((10, 10), 3, RED.filled())).unwrap();
            let font = super::super::font::font(12);
            root.draw(&Text::new("a < b", (5, 5), font)).unwrap();
            let pixels = vec![255u8; 2 * 2 * 3];
            root.draw(&BitMapElement::with_owned_buffer((1, 1), (2, 2), pixels).unwrap()).unwrap();
            root.present().unwrap();
        }
        assert!(document.starts_with("<svg "), "{document}");
        assert!(document.contains("<circle cx=\"10\" cy=\"10\" r=\"3\" fill=\"#ff0000\"/>"));
        assert!(document.contains(">a &lt; b</text>"));
        assert!(document.contains("href=\"data:image/png;base64,"));
        assert!(document.trim_end().ends_with("</svg>"));
    }
}
