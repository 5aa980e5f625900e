//! A PNG's chunks: its header, and its metadata inflated into a counter.

use std::io::{BufRead, Read, Seek};

use super::walk::{
    MAX_EXIF_BYTES, MAX_METADATA_BYTES, MAX_METADATA_TOTAL, Walked, be32, corrupt,
    metadata_too_large, read_all, read_vec, skip,
};
use crate::render::error::RenderError;

/// A PNG's header, after a walk over all its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PngHeader {
    pub width: u32,
    pub height: u32,
    /// Bytes per pixel of the decoded image (palettes and transparency
    /// expanded).
    pub pixel_bytes: u8,
    /// Metadata the decoder keeps in memory: text and EXIF chunks as
    /// stored, the ICC profile inflated.
    pub metadata_bytes: u64,
    /// Where the `IEND` chunk ends.
    pub image_len: u64,
}

impl PngHeader {
    /// The decoded image, its conversion to 8-bit RGB, two rows of the
    /// decoder's, and the metadata it keeps. (It reads the file through the
    /// original's own buffer.)
    pub fn decode_bytes(&self) -> u64 {
        let pixels = u64::from(self.width) * u64::from(self.height);
        let row = u64::from(self.width) * u64::from(self.pixel_bytes) + 1;
        pixels * u64::from(self.pixel_bytes) + pixels * 3 + 2 * row + self.metadata_bytes
    }
}

/// Bytes a zlib stream inflates to, counting at most one past the limit.
pub(super) fn inflated_len(compressed: impl Read) -> u64 {
    let mut decoder = flate2::read::ZlibDecoder::new(compressed).take(MAX_METADATA_BYTES + 1);
    // A corrupt stream counts what it gave before failing; the decoder
    // reports the corruption itself if it matters.
    let mut total = 0u64;
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = decoder.read(&mut buf) {
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    total
}

/// Reads up to and including a NUL byte, at most `max` bytes; `false` if
/// none came.
pub(super) fn through_nul(source: &mut impl Read, max: usize) -> bool {
    let mut byte = [0u8; 1];
    for _ in 0..max {
        match source.read(&mut byte) {
            Ok(1) if byte[0] == 0 => return true,
            Ok(1) => {}
            _ => return false,
        }
    }
    false
}

/// What the zlib stream inside an `iCCP`, `zTXt` or (compressed) `iTXt`
/// chunk inflates to, read from `data` (the chunk's data); 0 when there is
/// none.
pub(super) fn inflated_metadata(kind: &[u8], mut data: impl Read) -> u64 {
    // keyword (1-79 bytes), 0
    if !through_nul(&mut data, 80) {
        return 0;
    }
    match kind {
        // method, stream
        b"iCCP" | b"zTXt" => {
            let mut method = [0u8; 1];
            if data.read_exact(&mut method).is_err() {
                return 0;
            }
            inflated_len(data)
        }
        // compressed flag, method, language, 0, translated keyword, 0, text
        b"iTXt" => {
            let mut flags = [0u8; 2];
            if data.read_exact(&mut flags).is_err() || flags[0] == 0 {
                return 0;
            }
            if !through_nul(&mut data, usize::MAX) || !through_nul(&mut data, usize::MAX) {
                return 0;
            }
            inflated_len(data)
        }
        _ => 0,
    }
}

/// Walks every chunk of a PNG.
pub fn png<R: BufRead + Seek>(source: &mut R) -> Result<Walked<PngHeader>, RenderError> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    let mut signature = [0u8; 8];
    if !read_all(source, &mut signature)? || signature != SIGNATURE {
        return Err(RenderError::Unsupported);
    }
    let mut at = 8u64;
    let mut header = None;
    let mut transparency = false;
    // What the decoder keeps of the metadata, and all of it stored or inflated.
    let (mut kept, mut metadata) = (0u64, 0u64);
    let mut exif = None;
    loop {
        let mut head = [0u8; 8];
        if !read_all(source, &mut head)? {
            return Err(corrupt("truncated PNG (no IEND)"));
        }
        let length = u64::from(be32(&head, 0).unwrap_or(0));
        let kind = &head[4..8];
        let end = at + 12 + length;
        // Data and CRC left to skip.
        let mut left = length + 4;
        match kind {
            b"IHDR" => {
                let data = read_vec(source, length.min(13))?;
                left -= length.min(13);
                let short = || corrupt("short IHDR");
                let width = be32(&data, 0).ok_or_else(short)?;
                let height = be32(&data, 4).ok_or_else(short)?;
                let depth = *data.get(8).ok_or_else(short)?;
                let colour = *data.get(9).ok_or_else(short)?;
                let channels = match colour {
                    0 => 1, // grey
                    2 => 3, // RGB
                    3 => 4, // palette, expanded to RGBA at most
                    4 => 2, // grey + alpha
                    6 => 4, // RGBA
                    _ => return Err(corrupt("unknown PNG colour type")),
                };
                let sample = if depth == 16 { 2 } else { 1 };
                header = Some((width, height, colour, channels, sample));
            }
            // Transparency of grey or RGB pixels: decoded with an alpha channel.
            b"tRNS" => transparency = true,
            b"iCCP" | b"zTXt" | b"iTXt" | b"tEXt" | b"eXIf" => {
                if length > MAX_METADATA_BYTES {
                    return Err(metadata_too_large(kind));
                }
                let inflated = if kind == b"tEXt" || kind == b"eXIf" {
                    0
                } else {
                    // Inflated as it is read, into a counter.
                    let mut data = source.by_ref().take(length);
                    let inflated = inflated_metadata(kind, &mut data);
                    left -= length - data.limit();
                    inflated
                };
                if inflated > MAX_METADATA_BYTES {
                    return Err(metadata_too_large(kind));
                }
                if kind == b"eXIf" && exif.is_none() && length <= MAX_EXIF_BYTES {
                    exif = Some(read_vec(source, length)?);
                    left -= length;
                }
                // The decoder keeps the profile inflated, the rest as stored.
                kept += if kind == b"iCCP" { inflated } else { length };
                metadata += length + inflated;
                if metadata > MAX_METADATA_TOTAL {
                    return Err(RenderError::Metadata(format!(
                        "its metadata chunks are larger than {} MiB together",
                        MAX_METADATA_TOTAL >> 20
                    )));
                }
            }
            b"IEND" => {
                let (width, height, colour, channels, sample) =
                    header.ok_or_else(|| corrupt("PNG without IHDR"))?;
                let channels = if transparency && matches!(colour, 0 | 2) {
                    channels + 1
                } else {
                    channels
                };
                // Its CRC, the last bytes of the image, must be there.
                read_vec(source, left)?;
                return Ok(Walked {
                    header: PngHeader {
                        width,
                        height,
                        pixel_bytes: channels * sample,
                        metadata_bytes: kept,
                        image_len: end,
                    },
                    exif,
                });
            }
            // Ancillary chunks (lower-case first letter) other than the
            // above are kept by nobody, but must not be huge either.
            _ if kind[0].is_ascii_lowercase() && length > MAX_METADATA_BYTES => {
                return Err(metadata_too_large(kind));
            }
            _ => {}
        }
        skip(source, left)?;
        at = end;
    }
}
