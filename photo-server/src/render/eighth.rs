//! A progressive JPEG cut down to what a decode at 1/8 scale reads.
//!
//! At 1/8 scale libjpeg turns each 8 x 8 block of a component into one pixel
//! from the block's DC coefficient alone. A progressive JPEG sends the DC
//! coefficients in scans of their own, apart from the AC coefficients, which
//! make up most of the file; libjpeg would still decode every AC scan, only
//! to leave its coefficients unused. The stream built here keeps every
//! segment and the DC scans, and drops the AC scans of the components that
//! are decoded from DC alone, so the decode gives the same pixels for a
//! fraction of the work: a 16 MB 17.9 MP camera photo rendered to 240 or
//! 640 px is the case this is for.
//!
//! libjpeg decodes a chroma component subsampled 2:1 both ways (4:2:0) at
//! 1/4 rather than 1/8 to save upsampling it, and a 1/4 decode uses AC
//! coefficients too, so such components keep their AC scans.
//!
//! Anything unexpected (not progressive Huffman, a scan that does not parse,
//! no end marker) gives `None`, and the caller decodes the whole file as
//! before, which reports what is wrong with it.

use std::io::{self, BufRead, Read};

/// Start of frame, progressive, Huffman coding: the only kind cut down.
const SOF2: u8 = 0xC2;
const SOS: u8 = 0xDA;
const EOI: u8 = 0xD9;

/// The cut-down stream of the JPEG read from `source`, or `None` when it is
/// not a progressive Huffman JPEG or does not walk cleanly to its end.
/// Errors are read errors only.
pub fn dc_stream(source: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let mut start = [0u8; 2];
    if read_exact_or_end(source, &mut start)? != Some(()) || start != [0xFF, 0xD8] {
        return Ok(None);
    }
    out.extend_from_slice(&start);
    // Components that a 1/8 decode builds from DC alone, by id.
    let mut dc_only: Option<Vec<(u8, bool)>> = None;
    let mut next = next_marker(source)?;
    loop {
        let Some(marker) = next else {
            return Ok(None);
        };
        match marker {
            EOI => {
                out.extend_from_slice(&[0xFF, EOI]);
                return Ok(dc_only.is_some().then_some(out));
            }
            // Markers without a segment: restart markers outside a scan, TEM.
            0x01 | 0xD0..=0xD7 => {
                out.extend_from_slice(&[0xFF, marker]);
                next = next_marker(source)?;
            }
            _ => {
                let Some(segment) = read_segment(source)? else {
                    return Ok(None);
                };
                match marker {
                    SOF2 => match components(&segment) {
                        Some(c) => dc_only = Some(c),
                        None => return Ok(None),
                    },
                    // Any other frame type (baseline, extended, lossless,
                    // arithmetic): not cut down.
                    0xC0 | 0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                        return Ok(None);
                    }
                    _ => {}
                }
                if marker == SOS {
                    let Some(components) = &dc_only else {
                        return Ok(None);
                    };
                    let Some(keep) = scan_is_needed(&segment, components) else {
                        return Ok(None);
                    };
                    if keep {
                        push_segment(&mut out, marker, &segment);
                        next = entropy_data(source, Some(&mut out))?;
                    } else {
                        next = entropy_data(source, None)?;
                    }
                } else {
                    push_segment(&mut out, marker, &segment);
                    next = next_marker(source)?;
                }
            }
        }
    }
}

/// The frame header's components: for each id, whether libjpeg decodes it
/// at 1/8 scale from DC alone. It picks a larger IDCT for a component that
/// is subsampled by 2 (or more) both ways than the image's, so that it needs
/// no upsampling there (`jdmaster.c`); for a scaled size of 1 that is the
/// condition below.
fn components(sof: &[u8]) -> Option<Vec<(u8, bool)>> {
    let count = usize::from(*sof.get(5)?);
    let factors: Vec<(u8, u8, u8)> = (0..count)
        .map(|i| {
            let at = 6 + 3 * i;
            let sampling = *sof.get(at + 1)?;
            Some((*sof.get(at)?, sampling >> 4, sampling & 0x0F))
        })
        .collect::<Option<_>>()?;
    let max_h = factors.iter().map(|f| f.1).max()?;
    let max_v = factors.iter().map(|f| f.2).max()?;
    if factors.iter().any(|f| f.1 == 0 || f.2 == 0) {
        return None;
    }
    Some(
        factors
            .iter()
            .map(|&(id, h, v)| (id, !(max_h % (h * 2) == 0 && max_v % (v * 2) == 0)))
            .collect(),
    )
}

/// Whether a scan is needed for a 1/8 decode: a DC scan (spectral selection
/// starting at 0), or an AC scan of a component that is not decoded from DC
/// alone. `None` when the scan header does not parse.
fn scan_is_needed(sos: &[u8], components: &[(u8, bool)]) -> Option<bool> {
    let count = usize::from(*sos.first()?);
    let spectral_start = *sos.get(1 + 2 * count)?;
    if spectral_start == 0 {
        return Some(true);
    }
    let mut needed = false;
    for i in 0..count {
        let id = *sos.get(1 + 2 * i)?;
        let (_, dc_only) = components.iter().find(|c| c.0 == id)?;
        needed |= !dc_only;
    }
    Some(needed)
}

fn push_segment(out: &mut Vec<u8>, marker: u8, segment: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    // The length field counts itself; segments come from a 16-bit length.
    let length = u16::try_from(segment.len() + 2).unwrap_or(u16::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(segment);
}

/// The next marker between segments, past any fill bytes. `None` at the end
/// of the stream or where something other than a marker stands.
fn next_marker(source: &mut impl BufRead) -> io::Result<Option<u8>> {
    let mut byte = [0u8; 1];
    if read_exact_or_end(source, &mut byte)? != Some(()) || byte[0] != 0xFF {
        return Ok(None);
    }
    loop {
        if read_exact_or_end(source, &mut byte)? != Some(()) {
            return Ok(None);
        }
        match byte[0] {
            0xFF => continue,
            0x00 => return Ok(None),
            marker => return Ok(Some(marker)),
        }
    }
}

/// A marker segment's payload, after its length field.
fn read_segment(source: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 2];
    if read_exact_or_end(source, &mut length)? != Some(()) {
        return Ok(None);
    }
    let Some(payload) = usize::from(u16::from_be_bytes(length)).checked_sub(2) else {
        return Ok(None);
    };
    let mut segment = vec![0u8; payload];
    Ok(read_exact_or_end(source, &mut segment)?.map(|_| segment))
}

/// Reads a scan's entropy-coded data up to the marker that ends it, copying
/// it to `out` if given (stuffed bytes and restart markers included).
/// Returns that marker, or `None` if the stream ends first.
fn entropy_data(
    source: &mut impl BufRead,
    mut out: Option<&mut Vec<u8>>,
) -> io::Result<Option<u8>> {
    let mut after_ff = false;
    loop {
        let buf = source.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        if after_ff {
            let byte = buf[0];
            source.consume(1);
            match byte {
                // A stuffed 0xFF, or a restart marker: still data.
                0x00 | 0xD0..=0xD7 => {
                    after_ff = false;
                    if let Some(out) = out.as_deref_mut() {
                        out.extend_from_slice(&[0xFF, byte]);
                    }
                }
                // Fill before a marker.
                0xFF => {}
                marker => return Ok(Some(marker)),
            }
            continue;
        }
        let (data, used) = match memchr::memchr(0xFF, buf) {
            Some(at) => {
                after_ff = true;
                (&buf[..at], at + 1)
            }
            None => (buf, buf.len()),
        };
        if let Some(out) = out.as_deref_mut() {
            out.extend_from_slice(data);
        }
        source.consume(used);
    }
}

/// `read_exact`, with the end of the stream as `None` rather than an error.
fn read_exact_or_end(source: &mut impl Read, buf: &mut [u8]) -> io::Result<Option<()>> {
    match source.read_exact(buf) {
        Ok(()) => Ok(Some(())),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Pixels with detail at every frequency (noise over a gradient), so
    /// the AC scans carry real data.
    fn pixels(width: usize, height: usize, channels: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..width * height * channels)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((i / channels % width) as u64 * 255 / width as u64 / 2 + (state % 128)) as u8
            })
            .collect()
    }

    fn encoded(
        sampling: jpeg_encoder::SamplingFactor,
        colour: jpeg_encoder::ColorType,
        restart: u16,
    ) -> Vec<u8> {
        let channels = if colour == jpeg_encoder::ColorType::Luma {
            1
        } else {
            3
        };
        let (w, h) = (203u16, 157u16);
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
        encoder.set_progressive(true);
        encoder.set_sampling_factor(sampling);
        encoder.set_restart_interval(restart);
        encoder
            .encode(&pixels(w.into(), h.into(), channels), w, h, colour)
            .unwrap();
        out
    }

    /// libjpeg's own progression, with successive approximation (DC and AC
    /// refinement scans), at 4:2:0.
    fn libjpeg_progressive() -> Vec<u8> {
        let (w, h) = (211usize, 149usize);
        let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        compress.set_size(w, h);
        compress.set_quality(88.0);
        compress.set_progressive_mode();
        let mut started = compress.start_compress(Vec::new()).unwrap();
        started.write_scanlines(&pixels(w, h, 3)).unwrap();
        started.finish().unwrap()
    }

    /// Decodes at 1/8 scale, as the renderer does.
    fn decode_eighth(jpeg: &[u8]) -> Vec<u8> {
        let mut decoder = mozjpeg::Decompress::new_mem(jpeg).unwrap();
        decoder.scale(1);
        decoder.do_block_smoothing(false);
        let mut started = decoder.rgb().unwrap();
        let pixels = started.read_scanlines::<u8>().unwrap();
        started.finish().unwrap();
        pixels
    }

    #[test]
    fn the_cut_down_stream_decodes_to_the_same_pixels_at_one_eighth() {
        use jpeg_encoder::{ColorType, SamplingFactor};
        let cases = [
            ("4:4:4", encoded(SamplingFactor::F_1_1, ColorType::Rgb, 0)),
            ("4:2:2", encoded(SamplingFactor::F_2_1, ColorType::Rgb, 0)),
            ("4:2:0", encoded(SamplingFactor::F_2_2, ColorType::Rgb, 0)),
            (
                "4:2:0, restarts",
                encoded(SamplingFactor::F_2_2, ColorType::Rgb, 3),
            ),
            ("gray", encoded(SamplingFactor::F_1_1, ColorType::Luma, 0)),
            (
                "libjpeg 4:2:0, successive approximation",
                libjpeg_progressive(),
            ),
        ];
        for (name, jpeg) in cases {
            let cut = dc_stream(&mut Cursor::new(&jpeg))
                .unwrap()
                .unwrap_or_else(|| panic!("{name}: not cut down"));
            assert!(
                cut.len() * 2 < jpeg.len(),
                "{name}: {} of {} bytes kept",
                cut.len(),
                jpeg.len()
            );
            assert!(
                decode_eighth(&cut) == decode_eighth(&jpeg),
                "{name}: pixels differ"
            );
        }
    }

    #[test]
    fn anything_else_is_left_to_the_whole_decode() {
        let baseline = {
            let mut out = Vec::new();
            jpeg_encoder::Encoder::new(&mut out, 90)
                .encode(&pixels(64, 48, 3), 64, 48, jpeg_encoder::ColorType::Rgb)
                .unwrap();
            out
        };
        assert_eq!(dc_stream(&mut Cursor::new(&baseline)).unwrap(), None);
        let progressive = libjpeg_progressive();
        for cut_at in [progressive.len() / 2, progressive.len() - 2, 3] {
            let truncated = &progressive[..cut_at];
            assert_eq!(
                dc_stream(&mut Cursor::new(truncated)).unwrap(),
                None,
                "truncated at {cut_at}"
            );
        }
        assert_eq!(dc_stream(&mut Cursor::new(b"not a jpeg")).unwrap(), None);
    }
}
