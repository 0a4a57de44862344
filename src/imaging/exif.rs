//! Reading the few EXIF fields the tool uses (orientation, capture time, GPS position, camera
//! make and model, pixel dimensions) from the bytes of an image file, and applying an EXIF
//! orientation to a decoded image. Container parsing (JPEG, TIFF, PNG `eXIf`, WebP, HEIF) is
//! left to the `kamadak-exif` crate; this module only interprets fields and never panics or
//! fails on malformed input, it just yields fewer fields. Not done well yet: capture times
//! without an offset tag are local times read as if they were UTC, sub-second tags are
//! ignored, only the primary image's fields are read, and XMP metadata is not consulted.

use std::io::Cursor;

use exif::{Exif, In, Tag, Value};
use image::DynamicImage;
use serde::{Deserialize, Serialize};

/// The EXIF fields the tool uses; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExifFields {
    /// EXIF orientation, `1..=8` (other values are dropped).
    pub orientation: Option<u16>,
    /// Capture time in seconds since 1970-01-01 00:00:00 UTC, from `DateTimeOriginal`, else
    /// `DateTimeDigitized`, else `DateTime`. The matching offset tag (`OffsetTimeOriginal`,
    /// `OffsetTimeDigitized`, `OffsetTime`) is applied when present; without it the camera's
    /// local time is read as UTC.
    pub taken_at_unix_s: Option<i64>,
    /// Where the photo was taken; `None` when absent, out of range, or exactly (0, 0).
    pub gps: Option<GpsPosition>,
    /// Camera maker (`Make`), trimmed; `None` when empty.
    pub camera_make: Option<String>,
    /// Camera model (`Model`), trimmed; `None` when empty.
    pub camera_model: Option<String>,
    /// `PixelXDimension` of the Exif IFD, when present and non-zero.
    pub width_px: Option<u32>,
    /// `PixelYDimension` of the Exif IFD, when present and non-zero.
    pub height_px: Option<u32>,
}

/// A WGS-84 position in decimal degrees (north and east positive).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GpsPosition {
    /// Latitude in `-90.0..=90.0`.
    pub latitude_deg: f64,
    /// Longitude in `-180.0..=180.0`.
    pub longitude_deg: f64,
    /// Altitude above sea level in metres (negative below), when recorded.
    pub altitude_m: Option<f64>,
}

impl ExifFields {
    /// Number of fields that are `Some`, used to rank "more complete EXIF" (0 to 7).
    pub fn field_count(&self) -> usize {
        [
            self.orientation.is_some(),
            self.taken_at_unix_s.is_some(),
            self.gps.is_some(),
            self.camera_make.is_some(),
            self.camera_model.is_some(),
            self.width_px.is_some(),
            self.height_px.is_some(),
        ]
        .into_iter()
        .filter(|&present| present)
        .count()
    }
}

/// Reads EXIF from the bytes of a whole image file (JPEG, TIFF, PNG `eXIf`, WebP, HEIF).
///
/// Returns `None` when the file has no EXIF block, is not a recognised container, or its EXIF
/// is too damaged to parse at all; the reason is logged at debug level, so callers need not
/// log it again. A partly damaged block yields the fields that could be read. A parsed block
/// gives `Some` even when none of the fields of [`ExifFields`] is present
/// (`field_count() == 0`). Never panics.
pub fn read_exif(file_bytes: &[u8]) -> Option<ExifFields> {
    let exif = parse_container(file_bytes)?;
    Some(ExifFields {
        orientation: orientation(&exif),
        taken_at_unix_s: taken_at(&exif),
        gps: gps_position(&exif),
        camera_make: text_field(&exif, Tag::Make),
        camera_model: text_field(&exif, Tag::Model),
        width_px: dimension(&exif, Tag::PixelXDimension),
        height_px: dimension(&exif, Tag::PixelYDimension),
    })
}

/// Applies an EXIF orientation (`1..=8`) to a decoded image, so that it displays upright.
///
/// 2 mirrors left-right, 3 rotates 180 degrees, 4 mirrors top-bottom, 5 transposes (mirror
/// about the main diagonal), 6 rotates 90 degrees clockwise, 7 transverses (mirror about the
/// anti-diagonal) and 8 rotates 90 degrees counter-clockwise. 1 and unknown values leave the
/// image unchanged.
pub fn apply_orientation(image: DynamicImage, orientation: u16) -> DynamicImage {
    match orientation {
        2 => image.fliph(),
        3 => image.rotate180(),
        4 => image.flipv(),
        5 => image.rotate90().fliph(),
        6 => image.rotate90(),
        7 => image.rotate90().flipv(),
        8 => image.rotate270(),
        _ => image,
    }
}

/// Parses the EXIF block of any container `kamadak-exif` knows, keeping partial results.
fn parse_container(file_bytes: &[u8]) -> Option<Exif> {
    let mut reader = exif::Reader::new();
    reader.continue_on_error(true);
    let result = reader.read_from_container(&mut Cursor::new(file_bytes)).or_else(|error| {
        error.distill_partial_result(|errors| {
            tracing::debug!(count = errors.len(), "ignored damaged exif fields");
        })
    });
    match result {
        Ok(exif) => Some(exif),
        Err(exif::Error::NotFound(_)) => None,
        Err(error) => {
            tracing::debug!(%error, "unreadable exif");
            None
        }
    }
}

/// Orientation of the primary image, if it is one of the eight defined values.
fn orientation(exif: &Exif) -> Option<u16> {
    let value = first_integer(&exif.get_field(Tag::Orientation, In::PRIMARY)?.value)?;
    u16::try_from(value).ok().filter(|v| (1..=8).contains(v))
}

/// Capture time from the first of the three date tags that parses, with its offset applied.
fn taken_at(exif: &Exif) -> Option<i64> {
    const DATE_TAGS: [(Tag, Tag); 3] = [
        (Tag::DateTimeOriginal, Tag::OffsetTimeOriginal),
        (Tag::DateTimeDigitized, Tag::OffsetTimeDigitized),
        (Tag::DateTime, Tag::OffsetTime),
    ];
    DATE_TAGS.iter().find_map(|&(date_tag, offset_tag)| {
        let local = parse_datetime(&text_field(exif, date_tag)?)?;
        let offset = text_field(exif, offset_tag).and_then(|text| parse_utc_offset(&text));
        Some(local - offset.unwrap_or(0))
    })
}

/// Position from the GPS IFD; `None` when incomplete, out of range or exactly (0, 0), which
/// cameras write when they have no fix.
fn gps_position(exif: &Exif) -> Option<GpsPosition> {
    let latitude = gps_coordinate(exif, Tag::GPSLatitude, Tag::GPSLatitudeRef, 'N', 'S')?;
    let longitude = gps_coordinate(exif, Tag::GPSLongitude, Tag::GPSLongitudeRef, 'E', 'W')?;
    let in_range = latitude.abs() <= 90.0 && longitude.abs() <= 180.0;
    if !in_range || (latitude == 0.0 && longitude == 0.0) {
        return None;
    }
    Some(GpsPosition {
        latitude_deg: latitude,
        longitude_deg: longitude,
        altitude_m: gps_altitude(exif),
    })
}

/// One signed coordinate in degrees from degrees, minutes and seconds plus a hemisphere
/// reference; a missing reference counts as positive, an unknown one rejects the value.
fn gps_coordinate(
    exif: &Exif,
    tag: Tag,
    ref_tag: Tag,
    positive: char,
    negative: char,
) -> Option<f64> {
    let parts = rationals(&exif.get_field(tag, In::PRIMARY)?.value)?;
    let degrees = degrees_from_parts(&parts)?;
    let hemisphere = text_field(exif, ref_tag).and_then(|text| text.chars().next());
    match hemisphere.map(|c| c.to_ascii_uppercase()) {
        None => Some(degrees),
        Some(c) if c == positive => Some(degrees),
        Some(c) if c == negative => Some(-degrees),
        Some(_) => None,
    }
}

/// Degrees from one to three non-negative parts (degrees, minutes, seconds); minutes and
/// seconds must be below 60.
fn degrees_from_parts(parts: &[f64]) -> Option<f64> {
    let (&degrees, rest) = parts.split_first()?;
    let minutes = rest.first().copied().unwrap_or(0.0);
    let seconds = rest.get(1).copied().unwrap_or(0.0);
    let valid = |value: f64, max: f64| value.is_finite() && (0.0..max).contains(&value);
    if !valid(degrees, 360.0) || !valid(minutes, 60.0) || !valid(seconds, 60.0) {
        return None;
    }
    Some(degrees + minutes / 60.0 + seconds / 3600.0)
}

/// Altitude in metres, negative when `GPSAltitudeRef` says below sea level.
fn gps_altitude(exif: &Exif) -> Option<f64> {
    let altitude = *rationals(&exif.get_field(Tag::GPSAltitude, In::PRIMARY)?.value)?.first()?;
    if !altitude.is_finite() {
        return None;
    }
    let below_sea_level = exif
        .get_field(Tag::GPSAltitudeRef, In::PRIMARY)
        .and_then(|field| first_integer(&field.value))
        == Some(1);
    Some(if below_sea_level { -altitude } else { altitude })
}

/// A pixel dimension, if present and non-zero.
fn dimension(exif: &Exif, tag: Tag) -> Option<u32> {
    let value = first_integer(&exif.get_field(tag, In::PRIMARY)?.value)?;
    u32::try_from(value).ok().filter(|&v| v > 0)
}

/// The first non-empty string of an ASCII field, lossily decoded and trimmed of spaces and
/// NULs; also accepts UTF-8 stored as UNDEFINED bytes.
fn text_field(exif: &Exif, tag: Tag) -> Option<String> {
    let field = exif.get_field(tag, In::PRIMARY)?;
    let trim = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let trimmed = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        (!trimmed.is_empty()).then(|| trimmed.to_string())
    };
    match &field.value {
        Value::Ascii(strings) => strings.iter().find_map(|bytes| trim(bytes)),
        Value::Undefined(bytes, _) | Value::Byte(bytes) => trim(bytes),
        _ => None,
    }
}

/// The first value of any integer-typed field, widened to `i64`.
fn first_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Byte(v) => v.first().map(|&x| i64::from(x)),
        Value::Short(v) => v.first().map(|&x| i64::from(x)),
        Value::Long(v) => v.first().map(|&x| i64::from(x)),
        Value::SByte(v) => v.first().map(|&x| i64::from(x)),
        Value::SShort(v) => v.first().map(|&x| i64::from(x)),
        Value::SLong(v) => v.first().map(|&x| i64::from(x)),
        _ => None,
    }
}

/// All values of a rational (or, from non-conforming writers, signed rational or float)
/// field as `f64`; `None` if any denominator is zero.
fn rationals(value: &Value) -> Option<Vec<f64>> {
    let ratio = |num: f64, denom: f64| (denom != 0.0).then(|| num / denom);
    match value {
        Value::Rational(v) => {
            v.iter().map(|r| ratio(f64::from(r.num), f64::from(r.denom))).collect()
        }
        Value::SRational(v) => {
            v.iter().map(|r| ratio(f64::from(r.num), f64::from(r.denom))).collect()
        }
        Value::Double(v) => Some(v.clone()),
        Value::Float(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
        _ => None,
    }
}

/// Seconds since the Unix epoch of an EXIF date such as `2004:05:20 14:23:11`, read as UTC.
///
/// Also accepts `-` as the date separator and `T` between date and time, as some writers use;
/// anything else, including the all-blank or all-zero "unknown" dates, gives `None`.
fn parse_datetime(text: &str) -> Option<i64> {
    let bytes = text.trim().as_bytes();
    if bytes.len() != 19 || !matches!(bytes[10], b' ' | b'T') {
        return None;
    }
    let date_sep = bytes[4];
    let separators_ok = matches!(date_sep, b':' | b'-')
        && bytes[7] == date_sep
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok {
        return None;
    }
    let number = |start: usize, len: usize| parse_digits(&bytes[start..start + len]);
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    let date_ok = year >= 1 && (1..=12).contains(&month) && day >= 1;
    if !date_ok || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Seconds east of UTC of an offset such as `+09:00` or `-05:30`; `None` if malformed or
/// beyond 14 hours.
fn parse_utc_offset(text: &str) -> Option<i64> {
    let bytes = text.trim().as_bytes();
    if bytes.len() != 6 || bytes[3] != b':' {
        return None;
    }
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = (parse_digits(&bytes[1..3])?, parse_digits(&bytes[4..6])?);
    if hours > 14 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3_600 + minutes * 60))
}

/// The value of a run of ASCII digits; `None` if empty or any byte is not a digit.
fn parse_digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0, |acc, &b| acc * 10 + i64::from(b - b'0')))
}

/// Days in `month` (1..=12) of `year` in the proleptic Gregorian calendar.
fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a valid proleptic Gregorian date.
///
/// Counts in 400-year eras of 146 097 days over a calendar year that starts on March 1st, so
/// that the leap day falls at the end of the year.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719_468 days separate 0000-03-01 (day 0 of era 0) from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use exif::experimental::Writer;
    use exif::{Field, Rational};
    use image::codecs::jpeg::JpegEncoder;
    use image::codecs::png::PngEncoder;
    use image::codecs::webp::WebPEncoder;
    use image::metadata::Orientation;
    use image::{ExtendedColorType, GrayImage, ImageEncoder, Luma};
    use std::path::PathBuf;

    /// Fixture folder; `CLUSTIMAGE_FIXTURES` overrides it (e.g. for a scratch crate).
    fn fixture(name: &str) -> Vec<u8> {
        let dir = std::env::var_os("CLUSTIMAGE_FIXTURES").map_or_else(
            || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")),
            PathBuf::from,
        );
        std::fs::read(dir.join("exif").join(name)).expect("fixture exists")
    }

    fn ascii(tag: Tag, text: &str) -> Field {
        let value = Value::Ascii(vec![text.as_bytes().to_vec()]);
        Field { tag, ifd_num: In::PRIMARY, value }
    }

    fn rational_field(tag: Tag, parts: &[(u32, u32)]) -> Field {
        let values = parts.iter().map(|&(num, denom)| Rational { num, denom }).collect();
        Field { tag, ifd_num: In::PRIMARY, value: Value::Rational(values) }
    }

    fn short(tag: Tag, value: u16) -> Field {
        Field { tag, ifd_num: In::PRIMARY, value: Value::Short(vec![value]) }
    }

    /// A TIFF-structured EXIF blob (itself a valid TIFF container) holding `fields`.
    fn exif_blob(fields: &[Field]) -> Vec<u8> {
        let mut writer = Writer::new();
        for field in fields {
            writer.push_field(field);
        }
        let mut out = Cursor::new(Vec::new());
        writer.write(&mut out, false).expect("exif encodes");
        out.into_inner()
    }

    fn gps_fields(lat_ref: &str, lon_ref: &str) -> Vec<Field> {
        vec![
            ascii(Tag::GPSLatitudeRef, lat_ref),
            rational_field(Tag::GPSLatitude, &[(33, 1), (51, 1), (3156, 100)]),
            ascii(Tag::GPSLongitudeRef, lon_ref),
            rational_field(Tag::GPSLongitude, &[(151, 1), (12, 1), (3, 10)]),
            rational_field(Tag::GPSAltitude, &[(125, 10)]),
            Field { tag: Tag::GPSAltitudeRef, ifd_num: In::PRIMARY, value: Value::Byte(vec![1]) },
        ]
    }

    fn small_image() -> GrayImage {
        GrayImage::from_fn(8, 6, |x, y| Luma([(x * 30 + y * 5) as u8]))
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    #[test]
    fn real_photo_gives_camera_time_and_size() {
        let fields = read_exif(&fixture("047_DarkestHour.jpg")).expect("photo has exif");
        assert_eq!(fields.camera_make.as_deref(), Some("OLYMPUS IMAGING CORP."));
        assert_eq!(fields.camera_model.as_deref(), Some("E-M1"));
        // 2015:06:21 01:43:36, no offset tag: read as UTC.
        assert_eq!(fields.taken_at_unix_s, Some(1_434_851_016));
        assert_eq!((fields.width_px, fields.height_px), (Some(2560), Some(1600)));
        assert_eq!(fields.gps, None);
        assert_eq!(fields.orientation, None);
        assert_eq!(fields.field_count(), 5);
    }

    #[test]
    fn real_photo_with_gps_gives_position() {
        // The fixture is the half-size copy of 046_ColorfulCups-2560x1600.jpg with the
        // original's untouched EXIF segment spliced back in, to stay small.
        let fields = read_exif(&fixture("046_ColorfulCups_half_exif.jpg")).expect("has exif");
        assert_eq!(fields.camera_make.as_deref(), Some("SONY"));
        assert_eq!(fields.camera_model.as_deref(), Some("NEX-3N"));
        assert_eq!(fields.orientation, Some(1));
        // DateTimeOriginal 2014:04:29 14:25:26 wins over DateTime (a later edit).
        assert_eq!(fields.taken_at_unix_s, Some(1_398_781_526));
        let gps = fields.gps.expect("photo has gps");
        assert_close(gps.latitude_deg, 56.0 + 9.359705 / 60.0);
        assert_close(gps.longitude_deg, 10.0 + 12.492287 / 60.0);
        assert_eq!(gps.altitude_m, None);
        assert_eq!(fields.field_count(), 7);
    }

    #[test]
    fn image_without_exif_gives_none() {
        let mut jpeg = Vec::new();
        JpegEncoder::new(&mut jpeg).encode_image(&small_image()).expect("jpeg encodes");
        assert_eq!(read_exif(&jpeg), None);
    }

    #[test]
    fn synthetic_gps_southern_western_below_sea_level() {
        let blob = exif_blob(&gps_fields("S", "W"));
        let gps = read_exif(&blob).and_then(|fields| fields.gps).expect("gps parses");
        assert_close(gps.latitude_deg, -(33.0 + 51.0 / 60.0 + 31.56 / 3600.0));
        assert_close(gps.longitude_deg, -(151.0 + 12.0 / 60.0 + 0.3 / 3600.0));
        assert_eq!(gps.altitude_m, Some(-12.5));
    }

    #[test]
    fn gps_out_of_range_or_bad_reference_is_rejected() {
        let mut fields = gps_fields("N", "E");
        fields[1] = rational_field(Tag::GPSLatitude, &[(95, 1), (0, 1), (0, 1)]);
        assert_eq!(read_exif(&exif_blob(&fields)).expect("exif parses").gps, None);
        let mut fields = gps_fields("N", "E");
        fields[3] = rational_field(Tag::GPSLongitude, &[(10, 1), (75, 1), (0, 1)]);
        assert_eq!(read_exif(&exif_blob(&fields)).expect("exif parses").gps, None);
        let mut fields = gps_fields("N", "E");
        fields[1] = rational_field(Tag::GPSLatitude, &[(10, 0), (0, 1), (0, 1)]);
        assert_eq!(read_exif(&exif_blob(&fields)).expect("exif parses").gps, None);
        assert_eq!(read_exif(&exif_blob(&gps_fields("X", "E"))).expect("parses").gps, None);
        let null_island = [
            rational_field(Tag::GPSLatitude, &[(0, 1), (0, 1), (0, 1)]),
            rational_field(Tag::GPSLongitude, &[(0, 1), (0, 1), (0, 1)]),
        ];
        assert_eq!(read_exif(&exif_blob(&null_island)).expect("exif parses").gps, None);
    }

    #[test]
    fn offset_time_is_applied_and_fallback_tags_used() {
        let blob = exif_blob(&[
            ascii(Tag::DateTimeOriginal, "2004:05:20 14:23:11"),
            ascii(Tag::OffsetTimeOriginal, "+09:00"),
            ascii(Tag::DateTime, "2010:01:01 00:00:00"),
        ]);
        let fields = read_exif(&blob).expect("exif parses");
        assert_eq!(fields.taken_at_unix_s, Some(1_085_030_591));
        let blob = exif_blob(&[
            ascii(Tag::DateTimeOriginal, "    :  :     :  :  "),
            ascii(Tag::DateTimeDigitized, "0000:00:00 00:00:00"),
            ascii(Tag::DateTime, "2010:01:01 00:00:00"),
            ascii(Tag::OffsetTime, "-05:30"),
        ]);
        let fields = read_exif(&blob).expect("exif parses");
        assert_eq!(fields.taken_at_unix_s, Some(1_262_304_000 + 5 * 3_600 + 1_800));
    }

    #[test]
    fn odd_field_values_are_cleaned_or_dropped() {
        let blob = exif_blob(&[
            Field {
                tag: Tag::Make,
                ifd_num: In::PRIMARY,
                value: Value::Ascii(vec![b"".to_vec(), b"Nokia  ".to_vec()]),
            },
            ascii(Tag::Model, "   "),
            short(Tag::Orientation, 9),
            Field {
                tag: Tag::PixelXDimension,
                ifd_num: In::PRIMARY,
                value: Value::Long(vec![4000]),
            },
            short(Tag::PixelYDimension, 0),
        ]);
        let fields = read_exif(&blob).expect("exif parses");
        assert_eq!(fields.camera_make.as_deref(), Some("Nokia"));
        assert_eq!(fields.camera_model, None);
        assert_eq!(fields.orientation, None);
        assert_eq!((fields.width_px, fields.height_px), (Some(4000), None));
        assert_eq!(fields.field_count(), 2);
    }

    #[test]
    fn exif_is_found_in_png_and_webp() {
        let blob = exif_blob(&[short(Tag::Orientation, 6), ascii(Tag::Make, "Acme")]);
        let image = small_image();
        let (width, height) = image.dimensions();
        let mut png = Vec::new();
        let mut encoder = PngEncoder::new(&mut png);
        encoder.set_exif_metadata(blob.clone()).expect("png takes exif");
        encoder.write_image(image.as_raw(), width, height, ExtendedColorType::L8).expect("png");
        let mut webp = Vec::new();
        let mut encoder = WebPEncoder::new_lossless(&mut webp);
        encoder.set_exif_metadata(blob).expect("webp takes exif");
        let rgb = DynamicImage::ImageLuma8(image).to_rgb8();
        encoder.write_image(rgb.as_raw(), width, height, ExtendedColorType::Rgb8).expect("webp");
        for bytes in [png, webp] {
            let fields = read_exif(&bytes).expect("exif found");
            assert_eq!(fields.orientation, Some(6));
            assert_eq!(fields.camera_make.as_deref(), Some("Acme"));
        }
    }

    #[test]
    fn garbage_truncated_and_empty_input_never_panics() {
        assert_eq!(read_exif(&[]), None);
        assert_eq!(read_exif(b"definitely not an image"), None);
        assert_eq!(read_exif(&[0xFF, 0xD8]), None);
        assert_eq!(read_exif(b"II*\0"), None);
        let photo = fixture("046_ColorfulCups_half_exif.jpg");
        for len in (0..2_000).chain((2_000..photo.len()).step_by(997)) {
            let _ = read_exif(&photo[..len]);
        }
        let blob = exif_blob(&gps_fields("N", "E"));
        for len in 0..blob.len() {
            let _ = read_exif(&blob[..len]);
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..300 {
            let mut bytes = photo[..4_000].to_vec();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let index = (state % bytes.len() as u64) as usize;
                bytes[index] = (state >> 32) as u8;
            }
            let _ = read_exif(&bytes);
        }
    }

    #[test]
    fn all_orientations_map_pixels() {
        // Stored image, 3 wide and 2 high:  1 2 3 / 4 5 6.
        let stored = GrayImage::from_fn(3, 2, |x, y| Luma([(1 + x + 3 * y) as u8]));
        let expected: [(u16, u32, &[u8]); 8] = [
            (1, 3, &[1, 2, 3, 4, 5, 6]),
            (2, 3, &[3, 2, 1, 6, 5, 4]),
            (3, 3, &[6, 5, 4, 3, 2, 1]),
            (4, 3, &[4, 5, 6, 1, 2, 3]),
            (5, 2, &[1, 4, 2, 5, 3, 6]),
            (6, 2, &[4, 1, 5, 2, 6, 3]),
            (7, 2, &[6, 3, 5, 2, 4, 1]),
            (8, 2, &[3, 6, 2, 5, 1, 4]),
        ];
        for (orientation, width, pixels) in expected {
            let image = DynamicImage::ImageLuma8(stored.clone());
            let shown = apply_orientation(image, orientation).to_luma8();
            assert_eq!(shown.width(), width, "orientation {orientation}");
            assert_eq!(shown.as_raw().as_slice(), pixels, "orientation {orientation}");
            let mut reference = DynamicImage::ImageLuma8(stored.clone());
            reference
                .apply_orientation(Orientation::from_exif(orientation as u8).expect("defined"));
            assert_eq!(reference.to_luma8(), shown, "image crate agrees on {orientation}");
        }
        for unknown in [0, 9, 65_535] {
            let shown = apply_orientation(DynamicImage::ImageLuma8(stored.clone()), unknown);
            assert_eq!(shown.to_luma8(), stored);
        }
    }

    #[test]
    fn dates_parse_with_edge_cases() {
        assert_eq!(parse_datetime("1970:01:01 00:00:00"), Some(0));
        assert_eq!(parse_datetime("2004:05:20 14:23:11"), Some(1_085_062_991));
        assert_eq!(parse_datetime("2000:02:29 23:59:59"), Some(951_868_799));
        assert_eq!(parse_datetime("1969:12:31 23:59:59"), Some(-1));
        assert_eq!(parse_datetime("2004-05-20T14:23:11"), Some(1_085_062_991));
        assert_eq!(parse_datetime(" 2004:05:20 14:23:11 "), Some(1_085_062_991));
        for invalid in [
            "",
            "    :  :     :  :  ",
            "0000:00:00 00:00:00",
            "2001:02:29 00:00:00",
            "1900:02:29 00:00:00",
            "2004:13:01 00:00:00",
            "2004:04:31 00:00:00",
            "2004:05:20 24:00:00",
            "2004:05:20 14:60:00",
            "2004:05:20 14:23:60",
            "2004:05-20 14:23:11",
            "2004:05:20 14:23",
            "2004:05:20 14:23:11.5",
            "2004:0a:20 14:23:11",
            "+004:05:20 14:23:11",
        ] {
            assert_eq!(parse_datetime(invalid), None, "{invalid:?}");
        }
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_utc_offset("+09:00"), Some(32_400));
        assert_eq!(parse_utc_offset("-05:30"), Some(-19_800));
        assert_eq!(parse_utc_offset("+00:00"), Some(0));
        for invalid in ["", "09:00", "+9:00", "+15:00", "+09:60", "   :  ", "Z"] {
            assert_eq!(parse_utc_offset(invalid), None, "{invalid:?}");
        }
    }

    #[test]
    fn days_from_civil_matches_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1600, 1, 1), -135_140);
        assert_eq!(days_from_civil(9999, 12, 31), 2_932_896);
        assert_eq!(days_from_civil(1, 1, 1), -719_162);
    }
}
