//! What an image's container says before any pixel is decoded: dimensions,
//! what a decode will take in memory and in work, where the image ends, and
//! whether its metadata is within bounds.
//!
//! Decoders check their output size, but not everything they allocate or
//! do: a 10 x 10 PNG whose ICC profile (or compressed text) inflates to
//! 700 MB passes a pixel limit, a progressive JPEG keeps every DCT
//! coefficient of the full-size image in memory whatever scale it is
//! decoded at, and libjpeg works through every block of the image for each
//! of a JPEG's scans, however few bytes the scan takes. So every decode is
//! preceded by a walk over the container that
//!
//! - refuses ancillary chunks (PNG `iCCP`, `zTXt`, `iTXt`; any WebP metadata
//!   chunk) larger than [`MAX_METADATA_BYTES`], and PNG metadata larger
//!   than [`MAX_METADATA_TOTAL`] altogether, inflating compressed chunks
//!   into a byte counter, never into memory;
//! - gives the memory the decode will need (what the decoder keeps of the
//!   file included), which the caller holds to a fixed budget;
//! - finds where the image ends, so bytes appended after it are not stored.
//!
//! The walks read the file as a stream and hold at most one small piece of
//! it at a time (a JPEG frame header, an EXIF block of at most
//! [`MAX_EXIF_BYTES`]): they run when a render is planned, before the render
//! pool has granted it any memory, for every request admitted at once.
//!
//! A JPEG's scans lie after the image data starts, among the entropy-coded
//! bytes, so they are counted by [`ScanBudget`] as the decoder reads them
//! (`source.rs`), not by the walk before it: see there for the bound.

use std::io::{self, BufRead, Read, Seek};

use super::RenderError;

/// Largest metadata chunk accepted, once decompressed. Real ICC profiles
/// and text chunks are a few kilobytes, rarely a megabyte.
pub const MAX_METADATA_BYTES: u64 = 4 << 20;

/// Most metadata one PNG may carry altogether: its text and EXIF chunks as
/// stored, plus what its compressed chunks inflate to. Each chunk is within
/// [`MAX_METADATA_BYTES`], but a 50 MiB file holds 12,800 chunks of 4 KB
/// that each inflate to 4 MiB: 50 GB to inflate, a minute or more of CPU
/// (zlib inflates zeros at 0.3 to 1 GB/s), before this bound.
/// It also bounds the text the PNG decoder keeps in memory (counted in the
/// decode's memory).
pub const MAX_METADATA_TOTAL: u64 = 16 << 20;

/// Largest EXIF block read for the orientation, camera and date. A JPEG's
/// cannot be larger (it is one marker segment), and PNG and WebP files
/// carry the camera's; a larger one is ignored as broken EXIF is.
pub const MAX_EXIF_BYTES: u64 = 64 << 10;

fn corrupt(what: &str) -> RenderError {
    RenderError::Corrupt(what.to_string())
}

/// A read error while walking: the file's fault only if it ended early.
fn walk_error(e: io::Error) -> RenderError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        corrupt("the file ends inside its headers")
    } else {
        RenderError::Read(e.to_string())
    }
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

/// Fills `buf`; `false` if the stream ended before (a partial fill is lost).
fn read_all(source: &mut impl Read, buf: &mut [u8]) -> Result<bool, RenderError> {
    match source.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(RenderError::Read(e.to_string())),
    }
}

fn read_byte(source: &mut impl Read) -> Result<u8, RenderError> {
    let mut byte = [0u8; 1];
    source.read_exact(&mut byte).map_err(walk_error)?;
    Ok(byte[0])
}

/// `len` bytes of the stream, read into memory (callers bound `len`).
fn read_vec(source: &mut impl Read, len: u64) -> Result<Vec<u8>, RenderError> {
    let mut data = Vec::new();
    let got = source
        .take(len)
        .read_to_end(&mut data)
        .map_err(walk_error)?;
    if (got as u64) < len {
        return Err(corrupt("the file ends inside its headers"));
    }
    Ok(data)
}

/// Skips `len` bytes; a file that ends before is found by the next read.
fn skip(source: &mut impl Seek, len: u64) -> Result<(), RenderError> {
    let len = i64::try_from(len).map_err(|_| corrupt("impossible length"))?;
    source
        .seek_relative(len)
        .map_err(|e| RenderError::Read(e.to_string()))
}

/// What a walk over a container found: the header of its pixels, and its
/// EXIF block (TIFF data) if it has one of at most [`MAX_EXIF_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walked<H> {
    pub header: H,
    pub exif: Option<Vec<u8>>,
}

/// A JPEG's frame header, and how its first scan starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegHeader {
    pub width: u32,
    pub height: u32,
    /// Horizontal and vertical sampling factors of each component.
    pub sampling: Vec<(u8, u8)>,
    pub progressive: bool,
    /// More than one scan: progressive, or a sequential JPEG whose first
    /// scan leaves components out. libjpeg then keeps the coefficients of
    /// the whole image until its last scan, as for a progressive one.
    pub multi_scan: bool,
    /// An Adobe (APP14) segment came before the image data: its CMYK is
    /// stored inverted.
    pub adobe: bool,
}

impl JpegHeader {
    /// Bytes a decode at 1/`scale` (1, 2, 4 or 8) takes with libjpeg: its
    /// output (one byte per component and pixel), the RGB copy of a gray or
    /// CMYK output, a few rows of working buffers, and, for a JPEG of more
    /// than one scan, the coefficients of the whole image (two bytes per
    /// sample at full size, whatever the scale).
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
        if self.multi_scan {
            for &(hs, vs) in &self.sampling {
                let cw = (w * u64::from(hs)).div_ceil(hmax).div_ceil(8) * 8 + 8 * hmax;
                let ch = (h * u64::from(vs)).div_ceil(vmax).div_ceil(8) * 8 + 8 * vmax;
                bytes += cw * ch * 2;
            }
        }
        bytes
    }
}

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP1: u8 = 0xE1;
const APP14: u8 = 0xEE;

/// Start-of-frame markers: SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC).
fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// Markers that stand alone, without a length: restart markers, TEM and the
/// start of the image.
fn stands_alone(marker: u8) -> bool {
    matches!(marker, 0x01 | 0xD0..=0xD7 | SOI)
}

/// Walks a JPEG's marker segments from the start of the file up to its
/// first scan header: the frame header, whether an Adobe segment came
/// before the image data, its first EXIF segment, and whether the first
/// scan holds every component. Reads no further than that scan header.
pub fn jpeg<R: BufRead + Seek>(source: &mut R) -> Result<Walked<JpegHeader>, RenderError> {
    let mut start = [0u8; 2];
    if !read_all(source, &mut start)? || start != [0xFF, SOI] {
        return Err(RenderError::Unsupported);
    }
    let mut adobe = false;
    let mut exif = None;
    let mut frame: Option<JpegHeader> = None;
    loop {
        if read_byte(source)? != 0xFF {
            return Err(corrupt("no JPEG frame header"));
        }
        // Markers may be preceded by fill bytes (0xFF).
        let mut marker = read_byte(source)?;
        while marker == 0xFF {
            marker = read_byte(source)?;
        }
        if stands_alone(marker) {
            continue;
        }
        if marker == EOI {
            return Err(corrupt("no JPEG frame header before the image data"));
        }
        let mut length = [0u8; 2];
        source.read_exact(&mut length).map_err(walk_error)?;
        let payload = u64::from(u16::from_be_bytes(length))
            .checked_sub(2)
            .ok_or_else(|| corrupt("a JPEG segment shorter than its length field"))?;
        match marker {
            m if is_sof(m) => {
                let seg = read_vec(source, payload)?;
                if frame.is_none() {
                    frame = Some(frame_header(m, &seg)?);
                }
            }
            APP14 => {
                let seg = read_vec(source, payload)?;
                adobe |= seg.starts_with(b"Adobe");
            }
            APP1 if exif.is_none() => {
                let seg = read_vec(source, payload)?;
                if let Some(tiff) = seg.strip_prefix(b"Exif\0\0") {
                    exif = Some(tiff.to_vec());
                }
            }
            SOS => {
                let mut header =
                    frame.ok_or_else(|| corrupt("no JPEG frame header before the image data"))?;
                let components = read_byte(source)?;
                header.multi_scan |= usize::from(components) < header.sampling.len();
                header.adobe = adobe;
                return Ok(Walked { header, exif });
            }
            _ => skip(source, payload)?,
        }
    }
}

/// The frame header in an SOFn segment's payload.
fn frame_header(marker: u8, seg: &[u8]) -> Result<JpegHeader, RenderError> {
    let short = || corrupt("short frame header");
    let height = be16(seg, 1).ok_or_else(short)?;
    let width = be16(seg, 3).ok_or_else(short)?;
    let count = usize::from(*seg.get(5).ok_or_else(short)?);
    let sampling = (0..count)
        .map(|i| {
            let s = *seg.get(7 + 3 * i)?;
            Some((s >> 4, s & 0x0F))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(short)?;
    let progressive = matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
    Ok(JpegHeader {
        width: u32::from(width),
        height: u32::from(height),
        sampling,
        progressive,
        multi_scan: progressive,
        adobe: false,
    })
}

/// The most scans a JPEG may have. Encoders write one scan in a sequential
/// JPEG (one per component at most), and a handful in a progressive one:
/// libjpeg's default progression, which libjpeg-turbo, jpegtran and
/// ImageMagick use, has 10 for colour, 6 for grey and 18 for CMYK;
/// mozjpeg's searched progressions had 7 (colour) and 17 (CMYK) for a test
/// image; Photoshop offers 3 to 5. Skia (Chrome, Android) stops at a 100th
/// scan. 100 is five times anything an encoder writes.
pub const MAX_JPEG_SCANS: u32 = 100;

/// How many times a JPEG's scans may go over the largest multi-scan image
/// that the decode memory limit admits, altogether (see [`ScanBudget`]):
/// libjpeg's own progressions go over an image 5 to 6 times.
pub const SCAN_PASSES: u64 = 16;

/// Bytes of coefficients libjpeg keeps for each 8 x 8 block of a
/// multi-scan JPEG (64 of two bytes): how the memory limit bounds blocks.
const COEFFICIENT_BYTES_PER_BLOCK: u64 = 128;

/// The work libjpeg does for a JPEG's scans, counted from the scan headers
/// as the bytes go by, before the decoder reads them.
///
/// libjpeg decodes every scan over every block of the components the scan
/// holds, even when the scan's data says nothing about them: one
/// end-of-block run codes 32,767 blocks in 18 bits (libjpeg takes about
/// 5 ns a block to go through it), and a DC scan takes one bit a block
/// (about 20 ns). A 1.1 MB file of 60,000 end-of-block scans over a 12 MP
/// frame took 28 s of CPU to check. So a decode may read at most
/// [`MAX_JPEG_SCANS`] scans, which together cover at most [`SCAN_PASSES`]
/// times the blocks of the largest multi-scan image the memory limit
/// admits: with the default 256 MiB that is 2 Mi blocks, and the scans may
/// cover 32 Mi blocks, about 0.7 s of libjpeg's time at 20 ns a block. A
/// JPEG past either is refused as soon as the scan header that crosses the
/// line is read.
///
/// The walk follows libjpeg's reading of markers: `0xFF` followed by `0x00`
/// (stuffed data), another `0xFF` (fill), a restart marker, TEM or a
/// reserved marker (which libjpeg refuses, or skips while resynchronising)
/// is not a segment; every other marker is followed by its length, and its
/// segment is skipped whole; nothing after the end-of-image marker counts.
/// It can only see a scan libjpeg does not read (and count it against the
/// file), never miss one that libjpeg reads: segments are skipped by their
/// length as libjpeg skips them, and outside segments any `0xFF 0xDA` is a
/// scan header to libjpeg too.
#[derive(Debug, Clone)]
pub struct ScanBudget {
    max_blocks: u64,
    scans: u32,
    blocks: u64,
    /// Components of the first frame header: id, sampling factors.
    frame: Option<Frame>,
    walk: Walk,
    /// The payload of the frame or scan header being read.
    segment: Vec<u8>,
    refused: Option<RenderError>,
}

#[derive(Debug, Clone)]
struct Frame {
    width: u64,
    height: u64,
    components: Vec<(u8, u64, u64)>,
    hmax: u64,
    vmax: u64,
}

impl Frame {
    fn parse(seg: &[u8]) -> Option<Frame> {
        let height = u64::from(be16(seg, 1)?);
        let width = u64::from(be16(seg, 3)?);
        let count = usize::from(*seg.get(5)?);
        let components: Vec<(u8, u64, u64)> = (0..count)
            .map(|i| {
                let s = *seg.get(7 + 3 * i)?;
                // libjpeg refuses factors of 0; counted as 1 meanwhile.
                let h = u64::from(s >> 4).max(1);
                let v = u64::from(s & 0x0F).max(1);
                Some((*seg.get(6 + 3 * i)?, h, v))
            })
            .collect::<Option<_>>()?;
        let hmax = components.iter().map(|c| c.1).max().unwrap_or(1);
        let vmax = components.iter().map(|c| c.2).max().unwrap_or(1);
        Some(Frame {
            width,
            height,
            components,
            hmax,
            vmax,
        })
    }

    /// The blocks libjpeg decodes for the scan whose header is `sos`: one
    /// component's own blocks, or every block of the MCUs of an interleaved
    /// scan (padding included).
    fn scan_blocks(&self, sos: &[u8]) -> u64 {
        let count = sos.first().copied().map_or(0, usize::from);
        let in_scan = (0..count)
            .filter_map(|i| sos.get(1 + 2 * i))
            .filter_map(|id| self.components.iter().find(|c| c.0 == *id));
        if count == 1 {
            return in_scan
                .map(|&(_, h, v)| {
                    (self.width * h).div_ceil(self.hmax * 8)
                        * (self.height * v).div_ceil(self.vmax * 8)
                })
                .sum();
        }
        let mcus = self.width.div_ceil(self.hmax * 8) * self.height.div_ceil(self.vmax * 8);
        in_scan.map(|&(_, h, v)| mcus * h * v).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Looking for the next marker: between segments, or in a scan's
    /// entropy-coded data.
    Data,
    /// Just after a `0xFF` there.
    Ff,
    /// Reading the length of `marker`'s segment (its first byte, if read).
    Length { marker: u8, high: Option<u8> },
    /// Inside a segment, `left` bytes to go; `keep`: a frame or scan
    /// header, collected.
    Payload { marker: u8, left: usize, keep: bool },
    /// Past the end-of-image marker: libjpeg reads no further.
    End,
}

impl ScanBudget {
    /// The budget of a decode whose memory limit is `max_bytes`.
    pub fn new(max_bytes: u64) -> ScanBudget {
        ScanBudget::with_max_blocks(max_bytes / COEFFICIENT_BYTES_PER_BLOCK * SCAN_PASSES)
    }

    pub fn with_max_blocks(max_blocks: u64) -> ScanBudget {
        ScanBudget {
            max_blocks,
            scans: 0,
            blocks: 0,
            frame: None,
            walk: Walk::Data,
            segment: Vec::new(),
            refused: None,
        }
    }

    /// Scans whose headers were read so far.
    pub fn scans(&self) -> u32 {
        self.scans
    }

    /// Blocks those scans cover.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Walks the next bytes of the file. Fails from the scan header that
    /// takes the file past the budget on.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), RenderError> {
        if let Some(refused) = &self.refused {
            return Err(refused.clone());
        }
        while let Some((&byte, rest)) = bytes.split_first() {
            match self.walk {
                Walk::Data => {
                    // Stuffed bytes and restart markers are most of the
                    // 0xFFs in entropy-coded data: passed over here.
                    let mut from = 0;
                    loop {
                        let Some(at) = memchr::memchr(0xFF, &bytes[from..]) else {
                            return Ok(());
                        };
                        let at = from + at;
                        match bytes.get(at + 1) {
                            Some(0x00 | 0xD0..=0xD7) => from = at + 2,
                            _ => {
                                self.walk = Walk::Ff;
                                bytes = &bytes[at + 1..];
                                break;
                            }
                        }
                    }
                }
                Walk::Ff => {
                    bytes = rest;
                    self.walk = match byte {
                        0xFF => Walk::Ff,
                        EOI => Walk::End,
                        // Stuffed data, restart markers, TEM, the start of
                        // the image, and reserved markers: no length.
                        0x00..=0xBF => Walk::Data,
                        m if stands_alone(m) => Walk::Data,
                        marker => Walk::Length { marker, high: None },
                    };
                }
                Walk::Length { marker, high: None } => {
                    bytes = rest;
                    self.walk = Walk::Length {
                        marker,
                        high: Some(byte),
                    };
                }
                Walk::Length {
                    marker,
                    high: Some(high),
                } => {
                    bytes = rest;
                    // The length counts itself; libjpeg skips no less.
                    let left = usize::from(u16::from_be_bytes([high, byte])).saturating_sub(2);
                    self.segment.clear();
                    let keep = marker == SOS || is_sof(marker);
                    self.walk = Walk::Payload { marker, left, keep };
                    if left == 0 {
                        self.walk = Walk::Data;
                        self.segment_read(marker)?;
                    }
                }
                Walk::Payload { marker, left, keep } => {
                    let n = left.min(bytes.len());
                    if keep {
                        self.segment.extend_from_slice(&bytes[..n]);
                    }
                    bytes = &bytes[n..];
                    if n < left {
                        self.walk = Walk::Payload {
                            marker,
                            left: left - n,
                            keep,
                        };
                    } else {
                        self.walk = Walk::Data;
                        self.segment_read(marker)?;
                    }
                }
                Walk::End => return Ok(()),
            }
        }
        Ok(())
    }

    fn segment_read(&mut self, marker: u8) -> Result<(), RenderError> {
        if is_sof(marker) {
            if self.frame.is_none() {
                self.frame = Frame::parse(&self.segment);
            }
            return Ok(());
        }
        if marker != SOS {
            return Ok(());
        }
        self.scans += 1;
        self.blocks += self
            .frame
            .as_ref()
            .map_or(0, |frame| frame.scan_blocks(&self.segment));
        let refused = if self.scans > MAX_JPEG_SCANS {
            RenderError::TooSlow(format!(
                "it has more than {MAX_JPEG_SCANS} scans (cameras and encoders write at most about 20)"
            ))
        } else if self.blocks > self.max_blocks {
            RenderError::TooSlow(format!(
                "its first {} scans alone go over {:.1} million 8x8 blocks, and a JPEG's scans may go over at most {:.1} million",
                self.scans,
                self.blocks as f64 / 1e6,
                self.max_blocks as f64 / 1e6
            ))
        } else {
            return Ok(());
        };
        self.refused = Some(refused.clone());
        Err(refused)
    }
}

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
fn inflated_len(compressed: impl Read) -> u64 {
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
fn through_nul(source: &mut impl Read, max: usize) -> bool {
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
fn inflated_metadata(kind: &[u8], mut data: impl Read) -> u64 {
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

fn metadata_too_large(kind: &[u8]) -> RenderError {
    RenderError::Metadata(format!(
        "its {} chunk is larger than {} MiB",
        String::from_utf8_lossy(kind),
        MAX_METADATA_BYTES >> 20
    ))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

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

    fn walk_png(png: &[u8]) -> Result<Walked<PngHeader>, RenderError> {
        super::png(&mut Cursor::new(png))
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
        match walk_png(&png) {
            Err(RenderError::Metadata(m)) => assert!(m.contains("iCCP"), "{m}"),
            other => panic!("{other:?}"),
        }
        // The same profile at a sane size passes, and is counted inflated.
        let mut iccp = b"fine\0\0".to_vec();
        iccp.extend(zlib(3000));
        let header = walk_png(&png_with(&[chunk(b"iCCP", &iccp)]))
            .unwrap()
            .header;
        assert_eq!(header.metadata_bytes, 3000);
    }

    #[test]
    fn compressed_text_is_bounded_too() {
        let mut ztxt = b"Comment\0\0".to_vec();
        ztxt.extend(zlib(64 << 20));
        assert!(matches!(
            walk_png(&png_with(&[chunk(b"zTXt", &ztxt)])),
            Err(RenderError::Metadata(_))
        ));
        let mut itxt = b"Comment\0\x01\0en\0\0".to_vec();
        itxt.extend(zlib(64 << 20));
        assert!(matches!(
            walk_png(&png_with(&[chunk(b"iTXt", &itxt)])),
            Err(RenderError::Metadata(_))
        ));
        // Uncompressed iTXt is bounded by its own size.
        assert!(walk_png(&png_with(&[chunk(b"iTXt", b"Comment\0\0\0en\0\0hello")])).is_ok());
    }

    #[test]
    fn many_metadata_chunks_within_the_limit_each_are_bounded_together() {
        // Each inflates to 3 MiB, within the limit; six are 18 MiB.
        let mut ztxt = b"Comment\0\0".to_vec();
        ztxt.extend(zlib(3 << 20));
        let five: Vec<Vec<u8>> = (0..5).map(|_| chunk(b"zTXt", &ztxt)).collect();
        let header = walk_png(&png_with(&five)).unwrap().header;
        assert!(
            header.metadata_bytes < 64 << 10,
            "the decoder keeps them compressed"
        );
        let six: Vec<Vec<u8>> = (0..6).map(|_| chunk(b"zTXt", &ztxt)).collect();
        match walk_png(&png_with(&six)) {
            Err(RenderError::Metadata(m)) => assert!(m.contains("together"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_png_ends_at_iend() {
        let mut png = png_with(&[]);
        let len = png.len() as u64;
        png.extend_from_slice(b"appended junk");
        let header = walk_png(&png).unwrap().header;
        assert_eq!(header.image_len, len);
        assert_eq!(
            (header.width, header.height, header.pixel_bytes),
            (10, 10, 3)
        );
        assert!(walk_png(&png[..png.len() - 30]).is_err(), "no IEND");
        assert!(
            walk_png(&png[..len as usize - 2]).is_err(),
            "IEND cut short"
        );
    }

    #[test]
    fn transparency_and_exif_of_a_png() {
        let header = walk_png(&png_with(&[chunk(b"tRNS", &[0, 0, 0, 0, 0, 0])])).unwrap();
        assert_eq!(
            header.header.pixel_bytes, 4,
            "RGB with tRNS decodes as RGBA"
        );
        let walked = walk_png(&png_with(&[chunk(b"eXIf", b"MM\0*exif")])).unwrap();
        assert_eq!(walked.exif.as_deref(), Some(&b"MM\0*exif"[..]));
        let big = vec![0u8; MAX_EXIF_BYTES as usize + 1];
        let walked = walk_png(&png_with(&[chunk(b"eXIf", &big)])).unwrap();
        assert_eq!(walked.exif, None, "too large to read: ignored");
        assert_eq!(walked.header.metadata_bytes, big.len() as u64);
    }

    #[test]
    fn webp_metadata_and_lossy_data_are_found() {
        let mut riff = b"WEBP".to_vec();
        for (kind, data) in [
            (&b"VP8X"[..], vec![0u8; 10]),
            (b"EXIF", b"II*\0x".to_vec()),
            (b"VP8 ", vec![0u8; 1001]),
        ] {
            riff.extend_from_slice(kind);
            riff.extend_from_slice(&(data.len() as u32).to_le_bytes());
            riff.extend_from_slice(&data);
            if data.len() % 2 == 1 {
                riff.push(0);
            }
        }
        let mut webp = b"RIFF".to_vec();
        webp.extend_from_slice(&(riff.len() as u32).to_le_bytes());
        webp.extend_from_slice(&riff);
        let len = webp.len() as u64;
        webp.extend_from_slice(b"junk");
        let walked = super::webp(&mut Cursor::new(&webp), webp.len() as u64).unwrap();
        assert_eq!(walked.exif.as_deref(), Some(&b"II*\0x"[..]));
        assert_eq!(walked.header.image_len, len);
        assert_eq!(walked.header.lossy_bytes, 1001);
        assert!(!walked.header.animated);
        assert!(matches!(
            super::webp(&mut Cursor::new(&webp[..100]), 100),
            Err(RenderError::Corrupt(_))
        ));
    }

    #[test]
    fn multi_scan_jpegs_cost_their_coefficients_at_any_scale() {
        let baseline = JpegHeader {
            width: 8000,
            height: 6000,
            sampling: vec![(2, 2), (1, 1), (1, 1)],
            progressive: false,
            multi_scan: false,
            adobe: false,
        };
        let progressive = JpegHeader {
            progressive: true,
            multi_scan: true,
            ..baseline.clone()
        };
        // At 1/8 a baseline decode is small; a progressive one still holds
        // 48 MP x 1.5 samples x 2 bytes of coefficients.
        assert!(baseline.decode_bytes(8) < 10 << 20);
        let p = progressive.decode_bytes(8);
        assert!((140 << 20..160 << 20).contains(&p), "{p}");
        // So does a sequential one whose components come in scans of their own.
        let separate = JpegHeader {
            multi_scan: true,
            ..baseline
        };
        assert_eq!(separate.decode_bytes(8), p);
    }

    /// Builds JPEG marker streams (not decodable images: headers and
    /// stand-in entropy-coded data).
    struct Stream(Vec<u8>);

    impl Stream {
        fn new() -> Stream {
            Stream(vec![0xFF, SOI])
        }
        fn segment(mut self, marker: u8, payload: &[u8]) -> Stream {
            self.0.extend_from_slice(&[0xFF, marker]);
            self.0
                .extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
            self.0.extend_from_slice(payload);
            self
        }
        /// A frame header of `width` x `height` with components 1, 2, 3...
        fn frame(self, marker: u8, width: u16, height: u16, sampling: &[(u8, u8)]) -> Stream {
            let mut sof = vec![8];
            sof.extend(height.to_be_bytes());
            sof.extend(width.to_be_bytes());
            sof.push(sampling.len() as u8);
            for (i, (h, v)) in sampling.iter().enumerate() {
                sof.extend([i as u8 + 1, h << 4 | v, 0]);
            }
            self.segment(marker, &sof)
        }
        /// A scan of `components`, then `data` as its entropy-coded bytes.
        fn scan(self, components: &[u8], data: &[u8]) -> Stream {
            let mut sos = vec![components.len() as u8];
            for &c in components {
                sos.extend([c, 0]);
            }
            sos.extend([0, 63, 0]);
            let mut out = self.segment(SOS, &sos);
            out.0.extend_from_slice(data);
            out
        }
        fn raw(mut self, bytes: &[u8]) -> Stream {
            self.0.extend_from_slice(bytes);
            self
        }
        fn end(self) -> Vec<u8> {
            self.raw(&[0xFF, EOI]).0
        }
    }

    /// Data that looks like entropy-coded bytes to a marker walker: stuffed
    /// `0xFF`s, restart markers, and `0xDA` bytes after them.
    const DATA: &[u8] = &[
        1, 0xFF, 0x00, 0xDA, 2, 0xFF, 0xD0, 0xDA, 3, 0xFF, 0x00, 0xFF, 0x00, 4,
    ];

    fn budget_of(stream: &[u8]) -> (u32, u64, Result<(), RenderError>) {
        let mut budget = ScanBudget::new(256 << 20);
        let result = budget.feed(stream);
        (budget.scans(), budget.blocks(), result)
    }

    #[test]
    fn scans_are_counted_from_their_headers_only() {
        // An EXIF segment holding a whole JPEG (a thumbnail, scans and all)
        // is skipped by its length, and stuffed or restart bytes in the
        // data are not markers.
        let mut thumbnail = b"Exif\0\0".to_vec();
        thumbnail.extend(
            Stream::new()
                .frame(0xC2, 8, 8, &[(1, 1)])
                .scan(&[1], DATA)
                .end(),
        );
        let stream = Stream::new()
            .segment(APP1, &thumbnail)
            .frame(0xC2, 64, 48, &[(2, 2), (1, 1), (1, 1)])
            .scan(&[1, 2, 3], DATA)
            .scan(&[1], DATA)
            .raw(&[0xFF, 0xFF, 0xFF])
            .scan(&[2], DATA)
            .scan(&[3], DATA)
            .end();
        let (scans, blocks, result) = budget_of(&stream);
        assert!(result.is_ok());
        assert_eq!(scans, 4);
        // 64 x 48 at 4:2:0: 4 x 3 MCUs of 6 blocks; 8 x 6 luma blocks,
        // 4 x 3 of each chroma.
        assert_eq!(blocks, 72 + 48 + 12 + 12);
        // Whatever comes after the end of the image is not read.
        let mut appended = stream.clone();
        appended.extend(Stream::new().scan(&[1], DATA).0);
        assert_eq!(budget_of(&appended).0, 4);
        // Fed a byte at a time (as buffers may split it), the count is the same.
        let mut budget = ScanBudget::new(256 << 20);
        for byte in &stream {
            budget.feed(std::slice::from_ref(byte)).unwrap();
        }
        assert_eq!((budget.scans(), budget.blocks()), (4, 144));
    }

    #[test]
    fn a_jpeg_with_more_scans_than_any_encoder_writes_is_refused_at_the_scan_past_the_limit() {
        let mut stream = Stream::new().frame(0xC2, 16, 16, &[(1, 1)]);
        for _ in 0..MAX_JPEG_SCANS {
            stream = stream.scan(&[1], DATA);
        }
        let at_limit = stream.0.clone();
        assert_eq!(budget_of(&at_limit).2, Ok(()));
        let over = stream.scan(&[1], DATA).end();
        let mut budget = ScanBudget::new(256 << 20);
        match budget.feed(&over) {
            Err(RenderError::TooSlow(reason)) => assert!(reason.contains("100 scans"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(budget.scans(), MAX_JPEG_SCANS + 1, "stops at that scan");
        assert!(budget.feed(b"more").is_err(), "and stays refused");
    }

    #[test]
    fn scans_may_cover_only_so_many_blocks() {
        // 8000 x 8000 grey: 1 M blocks a scan, 16 M allowed.
        let mut budget = ScanBudget::with_max_blocks(16 << 20);
        let mut stream = Stream::new().frame(0xC2, 8000, 8000, &[(1, 1)]);
        for _ in 0..16 {
            stream = stream.scan(&[1], DATA);
        }
        assert_eq!(budget.feed(&stream.0), Ok(()));
        assert_eq!(budget.blocks(), 16 * 1_000_000);
        assert!(matches!(
            budget.feed(&Stream(Vec::new()).scan(&[1], DATA).0),
            Err(RenderError::TooSlow(_))
        ));
        // The budget follows the memory limit: 256 MiB admits 2 Mi blocks
        // of coefficients, and 16 passes over them.
        assert_eq!(ScanBudget::new(256 << 20).max_blocks, 32 << 20);
    }

    #[test]
    fn the_walk_before_the_image_data_finds_the_frame_exif_and_first_scan() {
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(b"MM\0*rest");
        let stream = Stream::new()
            .segment(APP1, b"http://ns.adobe.com/xap/1.0/\0<x/>")
            .segment(APP1, &exif)
            .frame(0xC0, 300, 200, &[(1, 1), (1, 1), (1, 1), (1, 1)])
            .segment(APP14, b"Adobe\0\x64\0\0\0\0\x02")
            .scan(&[1, 2, 3, 4], DATA)
            .end();
        let walked = super::jpeg(&mut Cursor::new(&stream)).unwrap();
        assert_eq!(walked.exif.as_deref(), Some(&b"MM\0*rest"[..]));
        let header = walked.header;
        assert_eq!((header.width, header.height), (300, 200));
        assert!(
            header.adobe,
            "an Adobe segment after the frame header counts too"
        );
        assert!(!header.progressive && !header.multi_scan);
        // A sequential JPEG whose first scan holds one component of three.
        let separate = Stream::new()
            .frame(0xC0, 300, 200, &[(1, 1), (1, 1), (1, 1)])
            .scan(&[1], DATA)
            .end();
        let header = super::jpeg(&mut Cursor::new(&separate)).unwrap().header;
        assert!(header.multi_scan && !header.progressive);
        // Cut short before its first scan, or with no frame header at all.
        assert!(matches!(
            super::jpeg(&mut Cursor::new(&separate[..20])),
            Err(RenderError::Corrupt(_))
        ));
        let no_frame = Stream::new().scan(&[1], DATA).end();
        assert!(matches!(
            super::jpeg(&mut Cursor::new(&no_frame)),
            Err(RenderError::Corrupt(_))
        ));
        assert_eq!(
            super::jpeg(&mut Cursor::new(b"GIF89a")),
            Err(RenderError::Unsupported)
        );
    }
}
