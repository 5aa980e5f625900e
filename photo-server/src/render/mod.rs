//! Turning an original into a rendition, and checking an upload before it is kept.
//!
//! Pure CPU work on byte slices, no I/O and no async: callers run it on the
//! bounded render pool (`pool.rs`). The fast path follows libvips: a JPEG much
//! larger than the target is decoded at a reduced DCT scale (1/2, 1/4, 1/8),
//! then resized with SIMD convolution and encoded with a fast baseline encoder.

mod exif;
pub mod pool;

use std::io::Cursor;

use fast_image_resize as fr;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

pub use exif::PhotoExif;

/// Formats accepted as originals. Renditions are always JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Png,
    Webp,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
        }
    }

    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "jpeg" => Some(Format::Jpeg),
            "png" => Some(Format::Png),
            "webp" => Some(Format::Webp),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
        }
    }

    /// Recognises a format from the file's first bytes; names and declared
    /// content types are never trusted.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        match image::guess_format(bytes).ok()? {
            image::ImageFormat::Jpeg => Some(Format::Jpeg),
            image::ImageFormat::Png => Some(Format::Png),
            image::ImageFormat::WebP => Some(Format::Webp),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("not a JPEG, PNG or WebP image")]
    Unsupported,
    #[error("the image is corrupt or truncated: {0}")]
    Corrupt(String),
    #[error(
        "the image has too many pixels ({width} x {height}; at most {max} pixels are accepted)"
    )]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error("cannot encode the rendition: {0}")]
    Encode(String),
}

/// What an upload check learns about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub format: Format,
    /// As displayed, after EXIF orientation.
    pub width: u32,
    pub height: u32,
    pub exif: PhotoExif,
}

/// Checks an upload completely before anything is stored: recognised format,
/// dimensions within `max_pixels` (read from the header, before any large
/// allocation), and pixel data that actually decodes (a JPEG at 1/8 scale, so
/// the check is cheap even for large photos).
pub fn probe(bytes: &[u8], max_pixels: u64) -> Result<Probe, RenderError> {
    let format = Format::sniff(bytes).ok_or(RenderError::Unsupported)?;
    let exif = exif::read(bytes);
    let (width, height) = match format {
        Format::Jpeg => {
            let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
            let (w, h) = jpeg_header(&mut decoder, max_pixels)?;
            decoder.scale(1, 1).map_err(corrupt)?;
            decoder.decode().map_err(corrupt)?;
            (w, h)
        }
        Format::Png | Format::Webp => {
            let image = decode_with_image(bytes, max_pixels)?.0;
            (image.width(), image.height())
        }
    };
    let (width, height) = if swaps_axes(exif.orientation) {
        (height, width)
    } else {
        (width, height)
    };
    Ok(Probe {
        format,
        width,
        height,
        exif,
    })
}

/// Renders `original` at `target_width` (never upscaled) as a baseline JPEG.
pub fn render(
    original: &[u8],
    target_width: u32,
    quality: u8,
    max_pixels: u64,
) -> Result<Vec<u8>, RenderError> {
    let format = Format::sniff(original).ok_or(RenderError::Unsupported)?;
    let (image, orientation) = match format {
        Format::Jpeg => decode_jpeg_scaled(original, target_width, max_pixels)?,
        Format::Png | Format::Webp => {
            let (image, orientation) = decode_with_image(original, max_pixels)?;
            (image.to_rgb8(), orientation)
        }
    };
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
    encode_jpeg(&oriented.to_rgb8(), quality)
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

fn check_pixels(width: u32, height: u32, max: u64) -> Result<(), RenderError> {
    if width == 0 || height == 0 {
        return Err(RenderError::Corrupt("zero width or height".into()));
    }
    if u64::from(width) * u64::from(height) > max {
        return Err(RenderError::TooManyPixels { width, height, max });
    }
    Ok(())
}

fn jpeg_header(
    decoder: &mut jpeg_decoder::Decoder<Cursor<&[u8]>>,
    max_pixels: u64,
) -> Result<(u32, u32), RenderError> {
    decoder.read_info().map_err(corrupt)?;
    let info = decoder
        .info()
        .ok_or_else(|| RenderError::Corrupt("no JPEG frame header".into()))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    check_pixels(w, h, max_pixels)?;
    Ok((w, h))
}

/// Decodes a JPEG at the smallest DCT scale that still leaves at least
/// `target_width` pixels across the displayed width.
fn decode_jpeg_scaled(
    bytes: &[u8],
    target_width: u32,
    max_pixels: u64,
) -> Result<(RgbImage, Orientation), RenderError> {
    let orientation = exif::read(bytes).orientation;
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    let (w, h) = jpeg_header(&mut decoder, max_pixels)?;
    // The target applies to the displayed width, which is the stored height
    // when the photo is rotated a quarter turn.
    let (along, across) = if swaps_axes(orientation) {
        (h, w)
    } else {
        (w, h)
    };
    let target = target_width.min(along);
    let needed_across = (u64::from(across) * u64::from(target)).div_ceil(u64::from(along)) as u32;
    let (req_w, req_h) = if swaps_axes(orientation) {
        (needed_across, target)
    } else {
        (target, needed_across)
    };
    let (sw, sh) = decoder
        .scale(clamp_u16(req_w), clamp_u16(req_h))
        .map_err(corrupt)?;
    let pixels = decoder.decode().map_err(corrupt)?;
    let info = decoder
        .info()
        .ok_or_else(|| RenderError::Corrupt("no JPEG frame header".into()))?;
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l]).collect(),
        jpeg_decoder::PixelFormat::L16 => pixels
            .chunks_exact(2)
            .flat_map(|c| [c[0], c[0], c[0]])
            .collect(),
        jpeg_decoder::PixelFormat::CMYK32 => pixels
            .chunks_exact(4)
            .flat_map(|c| {
                // jpeg-decoder hands out ink amounts (0 = no ink), having
                // already undone Adobe's inversion: naive CMYK to RGB.
                let white = 255 - u16::from(c[3]);
                let channel = |ink: u8| (((255 - u16::from(ink)) * white) / 255) as u8;
                [channel(c[0]), channel(c[1]), channel(c[2])]
            })
            .collect(),
    };
    let image = RgbImage::from_raw(sw, sh, rgb)
        .ok_or_else(|| RenderError::Corrupt("decoded pixel data has the wrong length".into()))?;
    Ok((image, orientation))
}

fn clamp_u16(v: u32) -> u16 {
    v.clamp(1, u32::from(u16::MAX)) as u16
}

/// PNG and WebP through the `image` crate, with its allocation limits set so
/// that a bomb is refused from the header.
fn decode_with_image(
    bytes: &[u8],
    max_pixels: u64,
) -> Result<(DynamicImage, Orientation), RenderError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(corrupt)?;
    let (w, h) = reader.into_dimensions().map_err(corrupt)?;
    check_pixels(w, h, max_pixels)?;
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(corrupt)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    Ok((image, orientation))
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

fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, RenderError> {
    let (w, h) = (image.width(), image.height());
    let (w16, h16) = (
        u16::try_from(w).map_err(|_| RenderError::Encode("too wide for JPEG".into()))?,
        u16::try_from(h).map_err(|_| RenderError::Encode("too tall for JPEG".into()))?,
    );
    let mut out = Vec::with_capacity((w as usize * h as usize) / 4);
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder
        .encode(image.as_raw(), w16, h16, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| RenderError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_width_keeps_aspect_and_never_upscales() {
        assert_eq!(fit_width(4000, 3000, 1440), (1440, 1080));
        assert_eq!(fit_width(3000, 4000, 240), (240, 320));
        assert_eq!(fit_width(200, 100, 640), (200, 100));
        assert_eq!(fit_width(10000, 1, 240), (240, 1));
    }

    #[test]
    fn sniffs_by_content_not_name() {
        assert_eq!(
            Format::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]),
            Some(Format::Jpeg)
        );
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\n...."), Some(Format::Png));
        assert_eq!(Format::sniff(b"GIF89a......"), None);
        assert_eq!(Format::sniff(b"hello world, not an image"), None);
    }
}
