//! Turning an original into a rendition, and checking an upload before it is kept.
//!
//! CPU work, no async: callers run it on the bounded render pool (`pool.rs`).
//! Each piece of work is planned first from the original's headers
//! ([`open_file`], then [`Resize::plan`] or [`Check::plan`]), so the pool
//! knows the memory it takes before it starts (`schedule.rs`). The only other
//! I/O is reading an original as it is decoded (`source.rs` watches those
//! reads). The fast path follows libvips: a JPEG much
//! larger than the target is decoded at a reduced DCT scale (1/2, 1/4, 1/8),
//! then resized with SIMD convolution and encoded with a fast baseline encoder.
//!
//! Every decode is bounded before it starts, whoever sent the file, and the
//! same bounds hold for an upload's check and for every render of an
//! original already stored (an old one never went through them):
//!
//! - **Memory**: the plan's memory is everything the work holds, as read
//!   from the headers: the decoded pixels, the decoder's own buffers, and
//!   whatever it copies of the file (a WebP's lossy data, a PNG's text, the
//!   cut-down stream of `eighth.rs`). An opened original holds its file and
//!   a 64 KiB buffer, never the file itself (`source.rs`), so a render
//!   waiting in the queue takes next to nothing. Each admitted request used
//!   to hold a whole PNG or WebP (and a JPEG's segments before its image
//!   data) that no budget counted: 64 cold renders peaked at 1.55 GB.
//! - **CPU**: the pixels are bounded by `PHOTO_MAX_PIXELS` and the memory
//!   limit, the bytes by the upload limit, and what a JPEG's scans make
//!   libjpeg do, which neither bounds, by [`headers::ScanBudget`]: a file
//!   past it fails as soon as the decoder reaches the scan that crosses it,
//!   with [`RenderError::TooSlow`], which the render path remembers as it
//!   remembers any failed render. PNG metadata is bounded altogether, so
//!   the walk inflates at most [`headers::MAX_METADATA_TOTAL`].

mod eighth;
mod error;
mod exif;
mod format;
pub mod headers;
pub mod pool;
mod schedule;
mod source;

use std::io::{BufRead, Cursor, Read};
use std::panic::AssertUnwindSafe;

use fast_image_resize as fr;
use image::metadata::Orientation;
use image::{DynamicImage, ImageReader, RgbImage};

pub use error::RenderError;
pub use exif::PhotoExif;
pub use format::Format;
use source::{Source, Watched};

/// What any one decode may take: pixels (`PHOTO_MAX_PIXELS`) and memory
/// (`PHOTO_DECODE_MAX_BYTES`). Both are checked from the headers, before
/// anything large is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_pixels: u64,
    pub max_bytes: u64,
}

/// Largest side of a JPEG (the format stores sizes in 16 bits).
pub const MAX_JPEG_SIDE: u32 = 65_535;

/// Bumped whenever renders come out as different bytes: rendition ETags name
/// it, and a cache directory written by another version is emptied at start.
/// 2: encoded by libjpeg-turbo instead of `jpeg-encoder`.
pub const OUTPUT_VERSION: u32 = 2;

/// What an upload check learns about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub format: Format,
    /// As displayed, after EXIF orientation.
    pub width: u32,
    pub height: u32,
    pub exif: PhotoExif,
    /// Bytes that make up the image: less than the file when something was
    /// appended after its end (only this much is stored).
    pub image_len: u64,
}

/// Checks an upload completely before anything is stored: recognised
/// format, bounded metadata, dimensions within the pixel limit, every
/// rendition in `widths` possible (within JPEG's size limit and the memory
/// budget), and pixel data that actually decodes (a JPEG at 1/8 scale, so
/// the check is cheap even for large photos).
pub fn probe(bytes: &[u8], limits: DecodeLimits, widths: &[u32]) -> Result<Probe, RenderError> {
    Check::plan(
        Opened::new(Source::Memory(Cursor::new(bytes.to_vec())))?,
        limits,
        widths,
    )?
    .run()
}

/// Renders `original` at `target_width` (never upscaled) as a baseline JPEG.
pub fn render(
    original: &[u8],
    target_width: u32,
    quality: u8,
    limits: DecodeLimits,
) -> Result<Vec<u8>, RenderError> {
    Resize::plan(
        Opened::new(Source::Memory(Cursor::new(original.to_vec())))?,
        target_width,
        quality,
        limits,
    )?
    .run()
}

/// Renders the original in `file` as [`render`] does, read as it is
/// decoded. The render pool takes the same steps apart, to grant the memory
/// the plan names before the work runs: [`open_file`] and
/// [`Resize::plan`], then [`Resize::run`].
pub fn render_file(
    file: std::fs::File,
    target_width: u32,
    quality: u8,
    limits: DecodeLimits,
) -> Result<Vec<u8>, RenderError> {
    Resize::plan(open_file(file)?, target_width, quality, limits)?.run()
}

/// Checks the upload in `file` as [`probe`] does (in steps on the render
/// pool: [`open_file`] and [`Check::plan`], then [`Check::run`]).
pub fn probe_file(
    file: std::fs::File,
    limits: DecodeLimits,
    widths: &[u32],
) -> Result<Probe, RenderError> {
    Check::plan(open_file(file)?, limits, widths)?.run()
}

/// Opens the original in `file` and reads its headers. It keeps the file
/// and a 64 KiB buffer, not its bytes: they are read again as the image
/// is decoded, since a planned render may wait in the queue.
pub fn open_file(file: std::fs::File) -> Result<Opened, RenderError> {
    Opened::new(Source::file(file))
}

/// An original whose headers have been read, and whose pixels have not.
pub struct Opened {
    source: Source,
    /// The file's length.
    len: u64,
    exif: PhotoExif,
    pixels: Pixels,
}

/// What the headers say the pixels are.
enum Pixels {
    Jpeg(headers::JpegHeader),
    /// PNG and WebP: their size, the memory their decode takes and where
    /// the image ends.
    Other {
        format: Format,
        width: u32,
        height: u32,
        decode_bytes: u64,
        image_len: u64,
    },
}

impl Opened {
    fn new(mut source: Source) -> Result<Opened, RenderError> {
        let len = source.len().map_err(read_error)?;
        let mut magic = Vec::with_capacity(16);
        (&mut source)
            .take(16)
            .read_to_end(&mut magic)
            .map_err(read_error)?;
        let format = Format::sniff(&magic).ok_or(RenderError::Unsupported)?;
        source.rewind()?;
        let (pixels, exif) = match format {
            Format::Jpeg => {
                let walked = headers::jpeg(&mut source)?;
                (Pixels::Jpeg(walked.header), walked.exif)
            }
            Format::Png => {
                let walked = headers::png(&mut source)?;
                let header = walked.header;
                let pixels = Pixels::Other {
                    format,
                    width: header.width,
                    height: header.height,
                    decode_bytes: header.decode_bytes(),
                    image_len: header.image_len,
                };
                (pixels, walked.exif)
            }
            Format::Webp => {
                let walked = headers::webp(&mut source, len)?;
                source.rewind()?;
                let (width, height) =
                    ImageReader::with_format(&mut source, image::ImageFormat::WebP)
                        .into_dimensions()
                        .map_err(corrupt)?;
                let header = walked.header;
                let pixels = Pixels::Other {
                    format,
                    width,
                    height,
                    decode_bytes: header.decode_bytes(width, height),
                    image_len: header.image_len,
                };
                (pixels, walked.exif)
            }
        };
        Ok(Opened {
            source,
            len,
            exif: exif::parse(exif),
            pixels,
        })
    }

    fn format(&self) -> Format {
        match &self.pixels {
            Pixels::Jpeg(_) => Format::Jpeg,
            Pixels::Other { format, .. } => *format,
        }
    }

    /// Size as stored (before EXIF orientation).
    fn stored_size(&self) -> (u32, u32) {
        match &self.pixels {
            Pixels::Jpeg(header) => (header.width, header.height),
            Pixels::Other { width, height, .. } => (*width, *height),
        }
    }
}

/// A progressive JPEG cut down to its scans that a decode at 1/8 reads
/// (`eighth.rs`), or `None` (the whole file is decoded then). The walk
/// costs a pass over the file; its scans are held to the budget when the
/// cut-down stream is decoded, and only those scans cost libjpeg anything.
fn cut_for_eighth_scale(source: &mut Source) -> Result<Option<Vec<u8>>, RenderError> {
    source.rewind()?;
    eighth::dc_stream(source).map_err(read_error)
}

/// A resize of an original to one width (a rendition), planned from its
/// headers: what it takes in memory is known before any of it is taken.
pub struct Resize {
    original: Opened,
    target_width: u32,
    quality: u8,
    limits: DecodeLimits,
    /// JPEG DCT scale (decode at 1/scale).
    scale: u32,
    /// A progressive JPEG decoded from its cut-down stream (`eighth.rs`).
    cut: bool,
    memory: u64,
}

impl Resize {
    /// Checks the pixel count and the decode's memory against `limits`.
    pub fn plan(
        original: Opened,
        target_width: u32,
        quality: u8,
        limits: DecodeLimits,
    ) -> Result<Resize, RenderError> {
        let (w, h) = original.stored_size();
        check_pixels(w, h, limits.max_pixels)?;
        let (scale, mut decode_bytes) = match &original.pixels {
            Pixels::Jpeg(header) => {
                let scale = jpeg_scale(header, original.exif.orientation, target_width);
                (scale, header.decode_bytes(scale))
            }
            Pixels::Other { decode_bytes, .. } => (1, *decode_bytes),
        };
        check_memory(decode_bytes, limits)?;
        // The cut-down stream is held in memory while it is decoded: no
        // more than the file, and only where that fits in the decode's
        // memory limit (the whole file is decoded otherwise, as at upload).
        let cut = matches!(&original.pixels, Pixels::Jpeg(header) if header.progressive)
            && scale == 8
            && decode_bytes + original.len <= limits.max_bytes;
        if cut {
            decode_bytes += original.len;
        }
        // The resized pixels and their turned copy, beside the decoded ones.
        let (dw, dh) = if swaps_axes(original.exif.orientation) {
            (h, w)
        } else {
            (w, h)
        };
        let (out_w, out_h) = fit_width(dw, dh, target_width);
        let memory = decode_bytes + u64::from(out_w) * u64::from(out_h) * 3 * 2;
        Ok(Resize {
            original,
            target_width,
            quality,
            limits,
            scale,
            cut,
            memory,
        })
    }

    /// Bytes the render takes at its peak, from the headers.
    pub fn memory(&self) -> u64 {
        self.memory
    }

    pub fn run(self) -> Result<Vec<u8>, RenderError> {
        let Opened {
            mut source,
            exif,
            pixels,
            ..
        } = self.original;
        let image = match pixels {
            Pixels::Jpeg(header) => {
                let cut = if self.cut {
                    cut_for_eighth_scale(&mut source)?
                } else {
                    None
                };
                let (image, _) = match cut {
                    Some(stream) => decode_jpeg(Cursor::new(stream), &header, 8, self.limits)?,
                    None => {
                        source.rewind()?;
                        decode_jpeg(&mut source, &header, self.scale, self.limits)?
                    }
                };
                image
            }
            Pixels::Other {
                format,
                width,
                height,
                image_len,
                ..
            } => decode_with_image(&mut source, format, (width, height, image_len), self.limits)?
                .into_rgb8(),
        };
        finish(image, exif.orientation, self.target_width, self.quality)
    }
}

/// The check of an upload, planned from its headers.
pub struct Check {
    original: Opened,
    limits: DecodeLimits,
    widths: Vec<u32>,
    memory: u64,
}

impl Check {
    /// Checks the pixel count, and the memory of every rendition in `widths`.
    pub fn plan(
        original: Opened,
        limits: DecodeLimits,
        widths: &[u32],
    ) -> Result<Check, RenderError> {
        let (w, h) = original.stored_size();
        check_pixels(w, h, limits.max_pixels)?;
        let memory = match &original.pixels {
            Pixels::Jpeg(header) => {
                for &width in widths {
                    let scale = jpeg_scale(header, original.exif.orientation, width);
                    check_memory(header.decode_bytes(scale), limits)?;
                }
                header.decode_bytes(8)
            }
            Pixels::Other { decode_bytes, .. } => {
                check_memory(*decode_bytes, limits)?;
                *decode_bytes
            }
        };
        Ok(Check {
            original,
            limits,
            widths: widths.to_vec(),
            memory,
        })
    }

    /// Bytes the check's decode takes, from the headers.
    pub fn memory(&self) -> u64 {
        self.memory
    }

    pub fn run(self) -> Result<Probe, RenderError> {
        let format = self.original.format();
        let stored = self.original.stored_size();
        let Opened {
            mut source,
            exif,
            pixels,
            ..
        } = self.original;
        let image_len = match pixels {
            Pixels::Jpeg(header) => {
                source.rewind()?;
                decode_jpeg(&mut source, &header, 8, self.limits)?.1
            }
            Pixels::Other {
                format,
                width,
                height,
                image_len,
                ..
            } => {
                decode_with_image(&mut source, format, (width, height, image_len), self.limits)?;
                image_len
            }
        };
        probed(format, stored, exif, image_len, &self.widths)
    }
}

/// The probe of a decoded image `stored` (width, height) pixels large,
/// once every rendition in `widths` is known to be possible.
fn probed(
    format: Format,
    stored: (u32, u32),
    exif: PhotoExif,
    image_len: u64,
    widths: &[u32],
) -> Result<Probe, RenderError> {
    let (width, height) = if swaps_axes(exif.orientation) {
        (stored.1, stored.0)
    } else {
        stored
    };
    for &target in widths {
        let (w, h) = fit_width(width, height, target);
        if w > MAX_JPEG_SIDE || h > MAX_JPEG_SIDE {
            return Err(RenderError::Unrenderable {
                width: target,
                reason: format!(
                    "that would be a {w} x {h} JPEG, and JPEG allows at most {MAX_JPEG_SIDE} pixels a side"
                ),
            });
        }
    }
    Ok(Probe {
        format,
        width,
        height,
        exif,
        image_len,
    })
}

/// Resizes a decoded image to `target_width`, turns it as its EXIF says, and
/// encodes it.
fn finish(
    image: RgbImage,
    orientation: Orientation,
    target_width: u32,
    quality: u8,
) -> Result<Vec<u8>, RenderError> {
    // Resize before rotating: fewer pixels to move.
    let (display_w, display_h) = if swaps_axes(orientation) {
        (image.height(), image.width())
    } else {
        (image.width(), image.height())
    };
    let (out_w, out_h) = fit_width(display_w, display_h, target_width);
    let (raw_w, raw_h) = if swaps_axes(orientation) {
        (out_h, out_w)
    } else {
        (out_w, out_h)
    };
    let resized = resize(image, raw_w, raw_h)?;
    let mut oriented = DynamicImage::ImageRgb8(resized);
    oriented.apply_orientation(orientation);
    encode_jpeg(&oriented.into_rgb8(), quality)
}

/// Output size for `target_width`, keeping the aspect ratio and never upscaling.
pub fn fit_width(width: u32, height: u32, target_width: u32) -> (u32, u32) {
    if width <= target_width {
        return (width, height);
    }
    let h = (u64::from(height) * u64::from(target_width) + u64::from(width) / 2) / u64::from(width);
    (target_width, (h as u32).max(1))
}

fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

fn corrupt(e: impl std::fmt::Display) -> RenderError {
    RenderError::Corrupt(e.to_string())
}

fn read_error(e: std::io::Error) -> RenderError {
    RenderError::Read(e.to_string())
}

fn check_pixels(width: u32, height: u32, max: u64) -> Result<(), RenderError> {
    if width == 0 || height == 0 {
        return Err(RenderError::Corrupt("zero width or height".into()));
    }
    if u64::from(width) * u64::from(height) > max {
        return Err(RenderError::TooManyPixels { width, height, max });
    }
    Ok(())
}

fn check_memory(needed: u64, limits: DecodeLimits) -> Result<(), RenderError> {
    if needed > limits.max_bytes {
        return Err(RenderError::TooMuchMemory {
            needed,
            max: limits.max_bytes,
        });
    }
    Ok(())
}

/// The DCT scale (1, 2, 4 or 8: decode at 1/scale) for a rendition
/// `target_width` wide: the largest that still leaves at least that many
/// pixels across the displayed width (the stored height, when the photo is
/// turned a quarter).
fn jpeg_scale(header: &headers::JpegHeader, orientation: Orientation, target_width: u32) -> u32 {
    let (w, h) = (header.width.max(1), header.height.max(1));
    let (along, across) = if swaps_axes(orientation) {
        (h, w)
    } else {
        (w, h)
    };
    let target = target_width.min(along).max(1);
    let needed_across = (u64::from(across) * u64::from(target)).div_ceil(u64::from(along));
    [8u32, 4, 2, 1]
        .into_iter()
        .find(|&s| along.div_ceil(s) >= target && u64::from(across.div_ceil(s)) >= needed_across)
        .unwrap_or(1)
}

/// Decodes a JPEG at 1/`scale` with libjpeg-turbo (through `mozjpeg`: SIMD,
/// and DCT scaling that skips most of the work for a large photo). Returns
/// the RGB pixels and how many bytes of `source` the image took (up to its
/// end marker). The memory was checked when the work was planned; the
/// scans are held to the budget of `limits` as they are read.
fn decode_jpeg(
    source: impl BufRead,
    header: &headers::JpegHeader,
    scale: u32,
    limits: DecodeLimits,
) -> Result<(RgbImage, u64), RenderError> {
    let mut source = Watched::new(source, headers::ScanBudget::new(limits.max_bytes));
    // libjpeg reports a fatal error by unwinding out of the decoder (the
    // `mozjpeg` crate's error manager, which skips the panic hook).
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
        decode_jpeg_unwinding(&mut source, header, scale)
    }));
    // The budget stopped it: that is why its reads failed.
    if let Some(refused) = source.refusal() {
        return Err(refused);
    }
    // A read error looks like the end of the file to libjpeg: it is not the
    // image's fault, so it must not be reported (and remembered) as corrupt.
    if let Some(e) = source.take_error() {
        return Err(read_error(e));
    }
    let image = decoded.unwrap_or_else(|payload| Err(corrupt(libjpeg_message(&*payload))))?;
    // libjpeg fills a file that ends early with grey and warns; a whole
    // image ends with its end marker (which entropy-coded data cannot hold).
    if !source.ends_with_end_marker() {
        return Err(corrupt("the image data ends before the image does"));
    }
    Ok((image, source.used()))
}

/// What libjpeg hands out, before it is made RGB.
enum Colour {
    Rgb,
    Gray,
    Cmyk,
}

fn decode_jpeg_unwinding(
    source: impl BufRead,
    header: &headers::JpegHeader,
    scale: u32,
) -> Result<RgbImage, RenderError> {
    let mut decoder = mozjpeg::Decompress::new_reader(source).map_err(corrupt)?;
    decoder.scale((8 / scale.clamp(1, 8)) as u8);
    // Smoothing only helps a progressive image shown before it has fully
    // arrived; for a complete file it is pure cost.
    decoder.do_block_smoothing(false);
    let (mut started, colour) = match decoder.image().map_err(corrupt)? {
        mozjpeg::Format::RGB(started) => (started, Colour::Rgb),
        mozjpeg::Format::Gray(started) => (started, Colour::Gray),
        mozjpeg::Format::CMYK(started) => (started, Colour::Cmyk),
    };
    let (width, height) = (started.width(), started.height());
    let samples = started.read_scanlines::<u8>().map_err(corrupt)?;
    // Hands back what libjpeg read ahead but did not use, so the source
    // counts exactly the image's bytes.
    started.finish_into_inner().map_err(corrupt)?;
    let pixels = match colour {
        Colour::Rgb => samples,
        Colour::Gray => samples.iter().flat_map(|&l| [l, l, l]).collect(),
        Colour::Cmyk => {
            // Adobe's files (nearly every CMYK JPEG) store the inks inverted:
            // 255 is no ink. Naive CMYK to RGB either way.
            let paper = |v: u8| u16::from(if header.adobe { v } else { 255 - v });
            samples
                .chunks_exact(4)
                .flat_map(|c| {
                    let white = paper(c[3]);
                    let channel = |v: u8| ((paper(v) * white) / 255) as u8;
                    [channel(c[0]), channel(c[1]), channel(c[2])]
                })
                .collect()
        }
    };
    let (width, height) = (
        u32::try_from(width).map_err(corrupt)?,
        u32::try_from(height).map_err(corrupt)?,
    );
    RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| RenderError::Corrupt("decoded pixel data has the wrong length".into()))
}

/// PNG and WebP through the `image` crate, once the headers were checked;
/// the decoder's own limits are set to the same budget. A PNG is read from
/// the file as it is decoded; a WebP's `image_len` bytes are read into
/// memory first (counted in its plan: `headers::WebpHeader`). (Their
/// orientation is the EXIF's, read by the walk.)
fn decode_with_image(
    source: &mut Source,
    format: Format,
    (width, height, image_len): (u32, u32, u64),
    limits: DecodeLimits,
) -> Result<DynamicImage, RenderError> {
    source.rewind()?;
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(width);
    decoder_limits.max_image_height = Some(height);
    decoder_limits.max_alloc = Some(limits.max_bytes);
    let decoded = if format == Format::Webp {
        let mut bytes = Vec::with_capacity(usize::try_from(image_len).unwrap_or(0));
        source
            .take(image_len)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format(format));
        reader.limits(decoder_limits);
        reader.decode()
    } else {
        let mut reader = ImageReader::with_format(source, image_format(format));
        reader.limits(decoder_limits);
        reader.decode()
    };
    decoded.map_err(corrupt)
}

fn image_format(format: Format) -> image::ImageFormat {
    match format {
        Format::Jpeg => image::ImageFormat::Jpeg,
        Format::Png => image::ImageFormat::Png,
        Format::Webp => image::ImageFormat::WebP,
    }
}

fn resize(image: RgbImage, width: u32, height: u32) -> Result<RgbImage, RenderError> {
    if image.width() == width && image.height() == height {
        return Ok(image);
    }
    let (src_w, src_h) = (image.width(), image.height());
    let src = fr::images::Image::from_vec_u8(src_w, src_h, image.into_raw(), fr::PixelType::U8x3)
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    let mut dst = fr::images::Image::new(width, height, fr::PixelType::U8x3);
    let options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    fr::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    RgbImage::from_raw(width, height, dst.into_vec())
        .ok_or_else(|| RenderError::Encode("resized buffer has the wrong length".into()))
}

/// Encodes with libjpeg-turbo (through `mozjpeg` with its fastest settings,
/// which are libjpeg-turbo's own: baseline, standard Huffman tables, no
/// trellis), at 4:2:0. Its SIMD colour conversion, DCT and Huffman coding
/// took 100 ms for the 60 renditions of the benchmark's photos where the
/// pure-Rust `jpeg-encoder` took 260 ms, for files of the same size.
fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, RenderError> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    if w.max(h) > MAX_JPEG_SIDE as usize {
        return Err(RenderError::Encode("too large for JPEG".into()));
    }
    // libjpeg reports a fatal error by unwinding, as when decoding.
    let encoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        compress.set_size(w, h);
        compress.set_fastest_defaults();
        compress.set_quality(f32::from(quality));
        compress.set_chroma_sampling_pixel_sizes((2, 2), (2, 2));
        let mut started = compress.start_compress(Vec::with_capacity(w * h / 4))?;
        started.write_scanlines(image.as_raw())?;
        started.finish()
    }));
    let out = match encoded {
        Ok(done) => done.map_err(|e| RenderError::Encode(e.to_string()))?,
        Err(payload) => return Err(RenderError::Encode(libjpeg_message(&*payload).into())),
    };
    // An exact-size copy (a few microseconds): the buffer above is sized by
    // a guess and doubles when the guess is short, and a rendition is kept
    // as it is returned, in the memory layer that counts it by its length.
    // (`shrink_to_fit` may leave the allocation as it is.)
    Ok(out.as_slice().to_vec())
}

/// The message of a libjpeg fatal error caught as a panic.
fn libjpeg_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("libjpeg failed")
        .trim_start_matches("libjpeg fatal error: ")
}

#[cfg(test)]
mod tests;
