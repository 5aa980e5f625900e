//! The few EXIF fields the site uses: orientation (applied to every
//! rendition), camera and date (shown on the photo page).
//!
//! The EXIF block is found by the walk over the container (`headers/`),
//! which reads it only if it is at most `MAX_EXIF_BYTES`: parsing it here
//! takes no second read of the file, and no more of it in memory.

use exif::{In, Tag};
use image::metadata::Orientation;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoExif {
    pub orientation: Orientation,
    pub camera: Option<String>,
    pub taken_at: Option<String>,
}

impl Default for PhotoExif {
    fn default() -> Self {
        PhotoExif {
            orientation: Orientation::NoTransforms,
            camera: None,
            taken_at: None,
        }
    }
}

/// Parses an EXIF block (TIFF data, as a JPEG's APP1 segment, a PNG's
/// `eXIf` chunk or a WebP's `EXIF` chunk holds it). Missing or broken EXIF
/// is not an error: the photo is shown as stored.
pub fn parse(block: Option<Vec<u8>>) -> PhotoExif {
    let Some(Ok(exif)) = block.map(|data| exif::Reader::new().read_raw(data)) else {
        return PhotoExif::default();
    };
    let text = |tag: Tag| {
        exif.get_field(tag, In::PRIMARY)
            .and_then(|f| match &f.value {
                exif::Value::Ascii(parts) => parts
                    .first()
                    .map(|p| {
                        String::from_utf8_lossy(p)
                            .trim()
                            .trim_matches('\0')
                            .to_string()
                    })
                    .filter(|s| !s.is_empty()),
                _ => None,
            })
    };
    let orientation = exif
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|v| u8::try_from(v).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);
    let camera = match (text(Tag::Make), text(Tag::Model)) {
        (Some(make), Some(model)) if model.starts_with(&make) => Some(model),
        (Some(make), Some(model)) => Some(format!("{make} {model}")),
        (make, model) => make.or(model),
    }
    .map(|c| c.chars().take(120).collect());
    let taken_at = text(Tag::DateTimeOriginal)
        .or_else(|| text(Tag::DateTime))
        .map(|d| exif_date_to_iso(&d));
    PhotoExif {
        orientation,
        camera,
        taken_at,
    }
}

/// `2019:07:14 18:02:11` -> `2019-07-14T18:02:11`; anything else is kept as is.
fn exif_date_to_iso(text: &str) -> String {
    let b = text.as_bytes();
    if b.len() >= 19 && b[4] == b':' && b[7] == b':' && b[10] == b' ' {
        format!(
            "{}-{}-{}T{}",
            &text[0..4],
            &text[5..7],
            &text[8..10],
            &text[11..19]
        )
    } else {
        text.chars().take(40).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_become_iso() {
        assert_eq!(
            exif_date_to_iso("2019:07:14 18:02:11"),
            "2019-07-14T18:02:11"
        );
        assert_eq!(exif_date_to_iso("yesterday"), "yesterday");
    }

    #[test]
    fn no_exif_is_not_an_error() {
        assert_eq!(parse(None), PhotoExif::default());
        assert_eq!(parse(Some(b"not TIFF data".to_vec())), PhotoExif::default());
    }
}
