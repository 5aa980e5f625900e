//! The configured rendition sizes (`PHOTO_RENDITIONS`). Only these are
//! accepted in `/img/{size}/...`: arbitrary sizes would let anyone fill the
//! cache.

use std::fmt;
use std::str::FromStr;

/// A size named in a URL: a configured width or the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    Width(u32),
    Original,
}

impl Size {
    /// Where a photo is served at this size: `/img/{size}/{id}.jpg`.
    pub fn url(self, id: &str) -> String {
        format!("/img/{self}/{id}.jpg")
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Width(w) => write!(f, "{w}"),
            Size::Original => f.write_str("orig"),
        }
    }
}

/// Rendition widths, ascending and de-duplicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renditions(Vec<u32>);

impl Renditions {
    pub fn widths(&self) -> &[u32] {
        &self.0
    }

    /// Resolves a URL segment to a configured size, or `None` for anything else.
    pub fn parse_size(&self, segment: &str) -> Option<Size> {
        if segment == "orig" {
            return Some(Size::Original);
        }
        // Reject "0640", "+640" and the like: one spelling per size keeps one cache entry per size.
        if segment.starts_with('0') || !segment.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let width: u32 = segment.parse().ok()?;
        self.0.contains(&width).then_some(Size::Width(width))
    }

    /// Every size a photo is served at: the widths, then the original.
    pub fn sizes(&self) -> impl Iterator<Item = Size> + '_ {
        self.0
            .iter()
            .map(|&w| Size::Width(w))
            .chain(std::iter::once(Size::Original))
    }

    /// Every size name a photo is served at, for the `urls` map of the API.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.sizes().map(|size| size.to_string())
    }
}

impl FromStr for Renditions {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut widths = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let width: u32 = part
                .parse()
                .map_err(|_| format!("rendition `{part}` is not a width in pixels"))?;
            if !(16..=8192).contains(&width) {
                return Err(format!("rendition {width} is outside 16..=8192 pixels"));
            }
            widths.push(width);
        }
        if widths.is_empty() {
            return Err("at least one rendition width is needed".into());
        }
        widths.sort_unstable();
        widths.dedup();
        Ok(Renditions(widths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sorted_unique_widths() {
        let r: Renditions = "1440, 240,640,240".parse().unwrap();
        assert_eq!(r.widths(), &[240, 640, 1440]);
        assert_eq!(
            r.names().collect::<Vec<_>>(),
            ["240", "640", "1440", "orig"]
        );
    }

    #[test]
    fn refuses_bad_lists() {
        assert!("".parse::<Renditions>().is_err());
        assert!("abc".parse::<Renditions>().is_err());
        assert!("0".parse::<Renditions>().is_err());
        assert!("100000".parse::<Renditions>().is_err());
    }

    #[test]
    fn urls_name_the_size_and_the_photo() {
        assert_eq!(Size::Width(240).url("abc"), "/img/240/abc.jpg");
        assert_eq!(Size::Original.url("abc"), "/img/orig/abc.jpg");
    }

    #[test]
    fn only_configured_sizes_resolve() {
        let r: Renditions = "240,640".parse().unwrap();
        assert_eq!(r.parse_size("240"), Some(Size::Width(240)));
        assert_eq!(r.parse_size("orig"), Some(Size::Original));
        for bad in [
            "241",
            "0240",
            "+240",
            "-1",
            "",
            "240.0",
            "9999999999999",
            "ORIG",
        ] {
            assert_eq!(r.parse_size(bad), None, "{bad:?}");
        }
    }
}
