//! The photographs the uploaders send: real JPEGs (the test fixtures, or
//! camera photos from a Debian wallpaper package for the long form), each
//! upload made unique by a JPEG comment so that its checksum names it.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// One photograph.
#[derive(Debug, Clone)]
pub struct Photo {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The fixtures that are plain photographs (the others are broken on purpose).
pub const FIXTURES: [&str; 5] = [
    "landscape.jpg",
    "portrait.jpg",
    "rotated.jpg",
    "gray.jpg",
    "cmyk.jpg",
];

/// Loads the named files of `dir`, or every `.jpg` in it when `names` is empty.
pub fn load(dir: &Path, names: &[&str]) -> Result<Vec<Photo>> {
    let mut paths: Vec<std::path::PathBuf> = if names.is_empty() {
        std::fs::read_dir(dir)
            .map_err(Error::io(format!("list {}", dir.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg")
                })
            })
            .collect()
    } else {
        names.iter().map(|n| dir.join(n)).collect()
    };
    paths.sort();
    let mut photos = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path).map_err(Error::io(format!("read {}", path.display())))?;
        if !is_jpeg(&bytes) {
            return Err(Error::Setup(format!("{} is not a JPEG", path.display())));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        photos.push(Photo { name, bytes });
    }
    if photos.is_empty() {
        return Err(Error::Setup(format!("no JPEG photos in {}", dir.display())));
    }
    Ok(photos)
}

fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// `jpeg` with a comment segment (`FF FE`) carrying `tag`, inserted after
/// the leading APPn segments (so EXIF stays where readers look for it). The
/// picture is unchanged; the bytes, and so the checksum, are unique.
pub fn tagged(jpeg: &[u8], tag: &str) -> Vec<u8> {
    // Skip SOI, then every APPn (FFE0..FFEF) segment.
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF && (0xE0..=0xEF).contains(&jpeg[at + 1]) {
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        at += 2 + len;
    }
    let at = at.min(jpeg.len());
    let text = tag.as_bytes();
    let len = u16::try_from(text.len() + 2).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(jpeg.len() + text.len() + 4);
    out.extend_from_slice(&jpeg[..at]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&text[..usize::from(len) - 2]);
    out.extend_from_slice(&jpeg[at..]);
    out
}

/// Hex SHA-256.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_goes_after_the_app_segments_and_changes_the_checksum() {
        // SOI, APP1 (4 payload bytes), DQT marker start.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, b'E', b'x', b'i', b'f', 0xFF, 0xDB, 0x00,
        ];
        let out = tagged(&jpeg, "drill 1");
        assert_eq!(&out[..10], &jpeg[..10]);
        assert_eq!(&out[10..14], &[0xFF, 0xFE, 0x00, 0x09]);
        assert_eq!(&out[14..21], b"drill 1");
        assert_eq!(&out[21..], &jpeg[10..]);
        assert_ne!(sha256(&out), sha256(&tagged(&jpeg, "drill 2")));
    }
}
