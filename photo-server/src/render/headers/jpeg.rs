//! A JPEG's markers before its image data, and the budget of the scans
//! after it ([`ScanBudget`]).

use std::io::{BufRead, Seek};

use super::walk::{Walked, be16, corrupt, read_all, read_byte, read_vec, skip, walk_error};
use crate::render::error::RenderError;

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

pub(super) const SOI: u8 = 0xD8;
pub(super) const EOI: u8 = 0xD9;
pub(super) const SOS: u8 = 0xDA;
pub(super) const APP1: u8 = 0xE1;
pub(super) const APP14: u8 = 0xEE;

/// Start-of-frame markers: SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC).
pub(super) fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// Markers that stand alone, without a length: restart markers, TEM and the
/// start of the image.
pub(super) fn stands_alone(marker: u8) -> bool {
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
pub(super) fn frame_header(marker: u8, seg: &[u8]) -> Result<JpegHeader, RenderError> {
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
pub(super) const COEFFICIENT_BYTES_PER_BLOCK: u64 = 128;

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
    pub(super) max_blocks: u64,
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
pub(super) struct Frame {
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
pub(super) enum Walk {
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
