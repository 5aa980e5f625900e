//! A WebP's RIFF chunks.

use std::io::{BufRead, Seek};

use super::walk::{
    MAX_EXIF_BYTES, MAX_METADATA_BYTES, Walked, corrupt, le32, metadata_too_large, read_all,
    read_vec, skip,
};
use crate::render::error::RenderError;

/// What a WebP's chunks say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebpHeader {
    /// Where the RIFF container ends.
    pub image_len: u64,
    /// Bytes of lossy image data (`VP8 `, `ALPH` and animation frames),
    /// which the decoder reads into memory before decoding them.
    pub lossy_bytes: u64,
    /// Animated: the decoder composes the first frame on a canvas of its own.
    pub animated: bool,
}

impl WebpHeader {
    /// Bytes a decode of a `width` x `height` WebP takes: the RGBA output,
    /// its conversion to RGB, the decoder's YUV planes and alpha (and its
    /// canvas and frame for an animation), the file's bytes (a WebP is
    /// decoded from memory: its lossless decoder's many small reads took
    /// 10% longer through the file's buffer), and the lossy data the
    /// decoder copies, twice while it splits it into partitions.
    pub fn decode_bytes(&self, width: u32, height: u32) -> u64 {
        let per_pixel = if self.animated { 18 } else { 10 };
        u64::from(width) * u64::from(height) * per_pixel + self.image_len + 2 * self.lossy_bytes
    }
}

/// A WebP's chunks, `file_len` bytes long: the metadata ones are bounded.
pub fn webp<R: BufRead + Seek>(
    source: &mut R,
    file_len: u64,
) -> Result<Walked<WebpHeader>, RenderError> {
    let mut riff = [0u8; 12];
    if !read_all(source, &mut riff)? || &riff[..4] != b"RIFF" || &riff[8..12] != b"WEBP" {
        return Err(RenderError::Unsupported);
    }
    let riff_len = u64::from(le32(&riff, 4).unwrap_or(0)) + 8;
    if riff_len > file_len {
        return Err(corrupt("truncated WebP"));
    }
    let mut at = 12u64;
    let mut lossy_bytes = 0;
    let mut animated = false;
    let mut exif = None;
    while at + 8 <= riff_len {
        let mut head = [0u8; 8];
        if !read_all(source, &mut head)? {
            return Err(corrupt("truncated WebP"));
        }
        let kind = &head[..4];
        let length = u64::from(le32(&head, 4).unwrap_or(0));
        // Chunks are padded to an even length.
        let mut left = length + (length & 1);
        match kind {
            b"ICCP" | b"EXIF" | b"XMP " if length > MAX_METADATA_BYTES => {
                return Err(metadata_too_large(kind));
            }
            b"EXIF" if exif.is_none() && length <= MAX_EXIF_BYTES => {
                exif = Some(read_vec(source, length)?);
                left -= length;
            }
            b"VP8 " | b"ALPH" => lossy_bytes += length,
            b"ANMF" => {
                lossy_bytes += length;
                animated = true;
            }
            _ => {}
        }
        skip(source, left)?;
        at += 8 + length + (length & 1);
    }
    Ok(Walked {
        header: WebpHeader {
            image_len: riff_len,
            lossy_bytes,
            animated,
        },
        exif,
    })
}
