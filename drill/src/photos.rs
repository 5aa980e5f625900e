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
        let mut bytes =
            std::fs::read(&path).map_err(Error::io(format!("read {}", path.display())))?;
        if !is_jpeg(&bytes) {
            return Err(Error::Setup(format!("{} is not a JPEG", path.display())));
        }
        // photo-server keeps only the image, not what follows its end
        // marker (issue 9): send what it keeps, so that an acknowledged
        // upload must come back byte for byte.
        if let Some(end) = jpeg_end(&bytes)
            && end < bytes.len()
        {
            tracing::info!(
                photo = %path.display(),
                dropped = bytes.len() - end,
                "bytes after the JPEG's end marker left out of the uploads"
            );
            bytes.truncate(end);
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

/// Where a JPEG's image ends (just past its EOI marker), found by walking
/// its segments and skipping entropy-coded data (where `FF` is stuffed or a
/// restart marker); `None` when it never ends.
pub fn jpeg_end(b: &[u8]) -> Option<usize> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    loop {
        i += b.get(i..)?.iter().position(|&x| x == 0xFF)?;
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *b.get(i)?;
        i += 1;
        match marker {
            0xD9 => return Some(i),
            0x01 | 0xD0..=0xD7 => {}
            _ => {
                let len = u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]) as usize;
                i += len;
                if marker == 0xDA {
                    // Scan data runs to the first marker that is neither a
                    // stuffed FF00 nor a restart marker.
                    loop {
                        let ff = i + b.get(i..)?.iter().position(|&x| x == 0xFF)?;
                        match *b.get(ff + 1)? {
                            0x00 | 0xD0..=0xD7 => i = ff + 2,
                            _ => {
                                i = ff;
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
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
    fn the_end_of_a_jpeg_is_its_eoi_not_one_inside_its_metadata_or_padding() {
        // SOI, an APP1 holding an FF D9 (as an EXIF thumbnail does), a
        // scan with a stuffed FF00 and a restart marker, EOI, padding.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0x00, 0x00];
        jpeg.extend([
            0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56,
        ]);
        jpeg.extend([0xFF, 0xD9]);
        let image = jpeg.len();
        jpeg.extend([0x00; 16]);
        jpeg.extend([0xFF, 0xD9]);
        assert_eq!(jpeg_end(&jpeg), Some(image));
        assert_eq!(jpeg_end(&jpeg[..image - 1]), None);
        assert_eq!(jpeg_end(b"not a jpeg"), None);
    }

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
