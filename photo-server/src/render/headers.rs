//! What an image's container says before any pixel is decoded: dimensions,
//! the memory a decode will take, where the image ends, and whether its
//! metadata is within bounds.
//!
//! Decoders check their output size, but not everything they allocate: a
//! 10 x 10 PNG whose ICC profile (or compressed text) inflates to 700 MB
//! passes a pixel limit, and a progressive JPEG keeps every DCT coefficient
//! of the full-size image in memory whatever scale it is decoded at. So
//! every decode is preceded by a walk over the container that
//!
//! - refuses ancillary chunks (PNG `iCCP`, `zTXt`, `iTXt`; any WebP metadata
//!   chunk) larger than [`MAX_METADATA_BYTES`], inflating compressed ones
//!   into a byte counter, never into memory;
//! - gives the memory the decode will need, which the caller holds to a
//!   fixed budget;
//! - finds where the image ends, so bytes appended after it are not stored.

use std::io::Read;

use super::RenderError;

/// Largest metadata chunk accepted, once decompressed. Real ICC profiles
/// and text chunks are a few kilobytes, rarely a megabyte.
pub const MAX_METADATA_BYTES: u64 = 4 << 20;

fn corrupt(what: &str) -> RenderError {
    RenderError::Corrupt(what.to_string())
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A JPEG's frame header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegHeader {
    pub width: u32,
    pub height: u32,
    /// Horizontal and vertical sampling factors of each component.
    pub sampling: Vec<(u8, u8)>,
    pub progressive: bool,
    /// An Adobe (APP14) segment came before the frame: its CMYK is stored inverted.
    pub adobe: bool,
}

impl JpegHeader {
    /// Bytes a decode at 1/`scale` (1, 2, 4 or 8) takes with libjpeg: its
    /// output (one byte per component and pixel), the RGB copy of a gray or
    /// CMYK output, a few rows of working buffers, and, for a progressive
    /// JPEG, the coefficients of the whole image (two bytes per sample at
    /// full size, whatever the scale).
    pub fn decode_bytes(&self, scale: u32) -> u64 {
        let (w, h) = (u64::from(self.width), u64::from(self.height));
        let hmax = u64::from(self.sampling.iter().map(|s| s.0).max().unwrap_or(1).max(1));
        let vmax = u64::from(self.sampling.iter().map(|s| s.1).max().unwrap_or(1).max(1));
        let comps = self.sampling.len().max(1) as u64;
        let scale = u64::from(scale.max(1));
        let out_w = w.div_ceil(scale);
        let out = out_w * h.div_ceil(scale);
        let mut bytes = out * comps;
        if comps != 3 {
            bytes += out * 3;
        }
        // Upsampling context: three rows of blocks of each component.
        bytes += (out_w + 8 * hmax) * comps * 3 * 8 * vmax;
        if self.progressive {
            for &(hs, vs) in &self.sampling {
                let cw = (w * u64::from(hs)).div_ceil(hmax).div_ceil(8) * 8 + 8 * hmax;
                let ch = (h * u64::from(vs)).div_ceil(vmax).div_ceil(8) * 8 + 8 * vmax;
                bytes += cw * ch * 2;
            }
        }
        bytes
    }
}

/// One JPEG marker segment before the image data: its marker, where the
/// marker starts, and the segment's length field (which counts itself).
struct Segment {
    marker: u8,
    at: usize,
    length: usize,
}

/// Walks a JPEG's marker segments from the start of the file, stopping after
/// the first start-of-scan or end-of-image marker (the segments that follow
/// lie after entropy-coded data, which is not walked).
fn segments(bytes: &[u8]) -> impl Iterator<Item = Result<Segment, RenderError>> + '_ {
    let mut at = 2;
    let mut done = bytes.get(..2) != Some(&[0xFF, 0xD8][..]);
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        // Markers may be preceded by fill bytes (0xFF).
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let segment = (|| {
            if bytes.get(at) != Some(&0xFF) {
                return Err(corrupt("no JPEG frame header"));
            }
            let marker = *bytes.get(at + 1).ok_or_else(|| corrupt("truncated JPEG"))?;
            if marker == 0xD9 {
                return Ok(Segment {
                    marker,
                    at,
                    length: 0,
                });
            }
            let length = usize::from(be16(bytes, at + 2).ok_or_else(|| corrupt("truncated JPEG"))?);
            Ok(Segment { marker, at, length })
        })();
        match &segment {
            Ok(s) if !matches!(s.marker, 0xDA | 0xD9) => at += 2 + s.length,
            _ => done = true,
        }
        Some(segment)
    })
}

/// Reads segments up to the frame header (SOFn).
pub fn jpeg(bytes: &[u8]) -> Result<JpegHeader, RenderError> {
    if bytes.get(..2) != Some(&[0xFF, 0xD8][..]) {
        return Err(RenderError::Unsupported);
    }
    let mut adobe = false;
    for segment in segments(bytes) {
        let Segment { marker, at, length } = segment?;
        match marker {
            // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let seg = bytes
                    .get(at + 4..at + 2 + length)
                    .ok_or_else(|| corrupt("truncated JPEG frame header"))?;
                let height = be16(seg, 1).ok_or_else(|| corrupt("short frame header"))?;
                let width = be16(seg, 3).ok_or_else(|| corrupt("short frame header"))?;
                let count = usize::from(*seg.get(5).ok_or_else(|| corrupt("short frame header"))?);
                let sampling = (0..count)
                    .map(|i| {
                        let s = *seg.get(7 + 3 * i)?;
                        Some((s >> 4, s & 0x0F))
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| corrupt("short frame header"))?;
                return Ok(JpegHeader {
                    width: u32::from(width),
                    height: u32::from(height),
                    sampling,
                    progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                    adobe,
                });
            }
            0xEE => adobe |= bytes.get(at + 4..at + 9) == Some(&b"Adobe"[..]),
            0xDA | 0xD9 => return Err(corrupt("no JPEG frame header before the image data")),
            _ => {}
        }
    }
    Err(corrupt("no JPEG frame header"))
}

/// Where a JPEG's first scan (its image data) starts, if `bytes` reach that
/// far: every segment before it, EXIF and the frame header among them, lies
/// in `bytes[..offset]`.
pub fn jpeg_scan_start(bytes: &[u8]) -> Option<usize> {
    segments(bytes)
        .map_while(Result::ok)
        .find(|s| s.marker == 0xDA)
        .map(|s| s.at)
}

/// A PNG's header, after a walk over all its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PngHeader {
    pub width: u32,
    pub height: u32,
    /// Bytes per pixel of the decoded image (palettes expanded).
    pub pixel_bytes: u8,
    /// Where the `IEND` chunk ends.
    pub image_len: u64,
}

impl PngHeader {
    /// The decoded image plus its conversion to 8-bit RGB.
    pub fn decode_bytes(&self) -> u64 {
        let pixels = u64::from(self.width) * u64::from(self.height);
        pixels * u64::from(self.pixel_bytes) + pixels * 3
    }
}

/// Bytes a zlib stream inflates to, counting at most one past the limit.
fn inflated_len(compressed: &[u8]) -> u64 {
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

/// Walks every chunk of a PNG.
pub fn png(bytes: &[u8]) -> Result<PngHeader, RenderError> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.get(..8) != Some(SIGNATURE) {
        return Err(RenderError::Unsupported);
    }
    let mut at = 8usize;
    let mut header = None;
    loop {
        let length = be32(bytes, at).ok_or_else(|| corrupt("truncated PNG (no IEND)"))? as usize;
        let kind = bytes
            .get(at + 4..at + 8)
            .ok_or_else(|| corrupt("truncated PNG"))?;
        let data = bytes
            .get(at + 8..at + 8 + length)
            .ok_or_else(|| corrupt("truncated PNG chunk"))?;
        let end = at + 12 + length;
        match kind {
            b"IHDR" => {
                let width = be32(data, 0).ok_or_else(|| corrupt("short IHDR"))?;
                let height = be32(data, 4).ok_or_else(|| corrupt("short IHDR"))?;
                let depth = *data.get(8).ok_or_else(|| corrupt("short IHDR"))?;
                let colour = *data.get(9).ok_or_else(|| corrupt("short IHDR"))?;
                let channels = match colour {
                    0 => 1, // grey
                    2 => 3, // RGB
                    3 => 4, // palette, expanded to RGBA at most
                    4 => 2, // grey + alpha
                    6 => 4, // RGBA
                    _ => return Err(corrupt("unknown PNG colour type")),
                };
                let sample = if depth == 16 { 2 } else { 1 };
                header = Some((width, height, channels * sample));
            }
            b"iCCP" | b"zTXt" | b"iTXt" => {
                if length as u64 > MAX_METADATA_BYTES {
                    return Err(metadata_too_large(kind));
                }
                if let Some(compressed) = compressed_part(kind, data)
                    && inflated_len(compressed) > MAX_METADATA_BYTES
                {
                    return Err(metadata_too_large(kind));
                }
            }
            b"IEND" => {
                let (width, height, pixel_bytes) =
                    header.ok_or_else(|| corrupt("PNG without IHDR"))?;
                return Ok(PngHeader {
                    width,
                    height,
                    pixel_bytes,
                    image_len: end as u64,
                });
            }
            // Ancillary chunks (lower-case first letter) other than the
            // above are kept by nobody, but must not be huge either.
            _ if kind[0].is_ascii_lowercase() && length as u64 > MAX_METADATA_BYTES => {
                return Err(metadata_too_large(kind));
            }
            _ => {}
        }
        at = end;
    }
}

/// The zlib stream inside an `iCCP`, `zTXt` or (compressed) `iTXt` chunk.
fn compressed_part<'a>(kind: &[u8], data: &'a [u8]) -> Option<&'a [u8]> {
    let after_keyword = data.iter().position(|&b| b == 0)? + 1;
    match kind {
        // keyword, 0, method, stream
        b"iCCP" | b"zTXt" => data.get(after_keyword + 1..),
        // keyword, 0, compressed flag, method, language, 0, translated, 0, text
        b"iTXt" => {
            if *data.get(after_keyword)? == 0 {
                return None;
            }
            let rest = data.get(after_keyword + 2..)?;
            let language_end = rest.iter().position(|&b| b == 0)? + 1;
            let rest = rest.get(language_end..)?;
            let translated_end = rest.iter().position(|&b| b == 0)? + 1;
            rest.get(translated_end..)
        }
        _ => None,
    }
}

fn metadata_too_large(kind: &[u8]) -> RenderError {
    RenderError::Metadata(format!(
        "its {} chunk is larger than {} MiB",
        String::from_utf8_lossy(kind),
        MAX_METADATA_BYTES >> 20
    ))
}

/// A WebP's chunks: the metadata ones are bounded; returns where the RIFF
/// container ends.
pub fn webp(bytes: &[u8]) -> Result<u64, RenderError> {
    if bytes.get(..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WEBP") {
        return Err(RenderError::Unsupported);
    }
    let riff_len = u64::from(le32(bytes, 4).ok_or_else(|| corrupt("truncated WebP"))?) + 8;
    if riff_len > bytes.len() as u64 {
        return Err(corrupt("truncated WebP"));
    }
    let mut at = 12usize;
    while (at as u64) + 8 <= riff_len {
        let kind = &bytes[at..at + 4];
        let length = le32(bytes, at + 4).ok_or_else(|| corrupt("truncated WebP"))? as u64;
        if matches!(kind, b"ICCP" | b"EXIF" | b"XMP ") && length > MAX_METADATA_BYTES {
            return Err(metadata_too_large(kind));
        }
        // Chunks are padded to an even length.
        at += 8 + (length + (length & 1)) as usize;
    }
    Ok(riff_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
        out
    }

    fn png_with(extra: &[Vec<u8>]) -> Vec<u8> {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&10u32.to_be_bytes());
        ihdr.extend_from_slice(&10u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        for c in extra {
            png.extend_from_slice(c);
        }
        png.extend(chunk(b"IEND", b""));
        png
    }

    fn zlib(len: usize) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len());
            encoder.write_all(&zeros[..n]).unwrap();
            left -= n;
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn an_icc_profile_that_inflates_too_far_is_refused_without_inflating_it() {
        let mut iccp = b"bomb\0\0".to_vec();
        iccp.extend(zlib(64 << 20));
        let png = png_with(&[chunk(b"iCCP", &iccp)]);
        assert!(png.len() < 200_000, "{} bytes", png.len());
        match super::png(&png) {
            Err(RenderError::Metadata(m)) => assert!(m.contains("iCCP"), "{m}"),
            other => panic!("{other:?}"),
        }
        // The same profile at a sane size passes.
        let mut iccp = b"fine\0\0".to_vec();
        iccp.extend(zlib(3000));
        assert!(super::png(&png_with(&[chunk(b"iCCP", &iccp)])).is_ok());
    }

    #[test]
    fn compressed_text_is_bounded_too() {
        let mut ztxt = b"Comment\0\0".to_vec();
        ztxt.extend(zlib(64 << 20));
        assert!(matches!(
            super::png(&png_with(&[chunk(b"zTXt", &ztxt)])),
            Err(RenderError::Metadata(_))
        ));
        let mut itxt = b"Comment\0\x01\0en\0\0".to_vec();
        itxt.extend(zlib(64 << 20));
        assert!(matches!(
            super::png(&png_with(&[chunk(b"iTXt", &itxt)])),
            Err(RenderError::Metadata(_))
        ));
        // Uncompressed iTXt is bounded by its own size.
        assert!(super::png(&png_with(&[chunk(b"iTXt", b"Comment\0\0\0en\0\0hello")])).is_ok());
    }

    #[test]
    fn the_png_ends_at_iend() {
        let mut png = png_with(&[]);
        let len = png.len() as u64;
        png.extend_from_slice(b"appended junk");
        let header = super::png(&png).unwrap();
        assert_eq!(header.image_len, len);
        assert_eq!(
            (header.width, header.height, header.pixel_bytes),
            (10, 10, 3)
        );
        assert!(super::png(&png[..png.len() - 30]).is_err(), "no IEND");
    }

    #[test]
    fn progressive_jpegs_cost_their_coefficients_at_any_scale() {
        let baseline = JpegHeader {
            width: 8000,
            height: 6000,
            sampling: vec![(2, 2), (1, 1), (1, 1)],
            progressive: false,
            adobe: false,
        };
        let progressive = JpegHeader {
            progressive: true,
            ..baseline.clone()
        };
        // At 1/8 a baseline decode is small; a progressive one still holds
        // 48 MP x 1.5 samples x 2 bytes of coefficients.
        assert!(baseline.decode_bytes(8) < 10 << 20);
        let p = progressive.decode_bytes(8);
        assert!((140 << 20..160 << 20).contains(&p), "{p}");
    }
}
