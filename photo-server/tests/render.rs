//! The renderer on real photographs: sizes, aspect ratio, EXIF orientation,
//! and pictures that look like a careful reference resize of the original.

mod common;

use common::fixture;
use image::{DynamicImage, GenericImageView, RgbImage, imageops::FilterType};
use photo_server::render::{self, DecodeLimits, Format, RenderError};

const LIMITS: DecodeLimits = DecodeLimits {
    max_pixels: 100_000_000,
    max_bytes: 256 << 20,
};
const WIDTHS: &[u32] = &[240, 640, 1440, 2048];

fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("rendition decodes")
}

/// Peak signal-to-noise ratio of two same-size images, in dB.
fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let mse: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum::<f64>()
        / a.as_raw().len() as f64;
    10.0 * (255.0 * 255.0 / mse.max(1e-9)).log10()
}

/// The slow, careful way: full decode, orientation, Lanczos3 resize.
fn reference(original: &[u8], width: u32) -> RgbImage {
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(original))
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    use image::ImageDecoder;
    let orientation = decoder.orientation().unwrap();
    let mut img = DynamicImage::from_decoder(decoder).unwrap();
    img.apply_orientation(orientation);
    let height =
        (f64::from(img.height()) * f64::from(width) / f64::from(img.width())).round() as u32;
    img.resize_exact(width, height, FilterType::Lanczos3)
        .to_rgb8()
}

#[test]
fn renditions_match_a_reference_resize() {
    for name in [
        "landscape.jpg",
        "portrait.jpg",
        "photo.png",
        "photo.webp",
        "rotated.jpg",
        "gray.jpg",
        // The reference decoder (zune-jpeg) converts CMYK itself: a wrong
        // conversion here shows up as a badly off colour.
        "cmyk.jpg",
    ] {
        let original = fixture(name);
        for width in [120, 240] {
            let out = render::render(&original, width, 90, LIMITS).unwrap();
            let got = decode(&out).to_rgb8();
            let want = reference(&original, width);
            assert_eq!(got.dimensions(), want.dimensions(), "{name} at {width}");
            let score = psnr(&got, &want);
            assert!(score > 28.0, "{name} at {width}: PSNR {score:.1} dB");
        }
    }
}

#[test]
fn exif_orientation_is_applied() {
    let upright = fixture("landscape.jpg");
    let rotated = fixture("rotated.jpg");
    let (w, h) = decode(&upright).dimensions();
    // The stored pixels are the same; orientation 6 means "display rotated 90° clockwise".
    let out = decode(&render::render(&rotated, 240, 90, LIMITS).unwrap());
    let expected_h = (f64::from(w) * 240.0 / f64::from(h)).round() as u32;
    assert_eq!(out.width(), 240);
    assert!(
        out.height().abs_diff(expected_h) <= 1,
        "{} vs {expected_h}",
        out.height()
    );
    // And it is the upright photo turned clockwise, not some other turn.
    let turned = DynamicImage::ImageRgb8(decode(&upright).rotate90().to_rgb8());
    let want = turned
        .resize_exact(240, out.height(), FilterType::Lanczos3)
        .to_rgb8();
    let wrong = DynamicImage::ImageRgb8(decode(&upright).rotate270().to_rgb8())
        .resize_exact(240, out.height(), FilterType::Lanczos3)
        .to_rgb8();
    let (right_score, wrong_score) = (psnr(&out.to_rgb8(), &want), psnr(&out.to_rgb8(), &wrong));
    assert!(
        right_score > 28.0 && right_score > wrong_score + 5.0,
        "{right_score:.1} vs {wrong_score:.1}"
    );
    // The probe reports displayed dimensions.
    let probe = render::probe(&rotated, LIMITS, WIDTHS).unwrap();
    assert_eq!((probe.width, probe.height), (h, w));
}

#[test]
fn never_upscales_and_keeps_aspect() {
    let original = fixture("photo.png");
    let (w, h) = decode(&original).dimensions();
    let out = decode(&render::render(&original, 4000, 85, LIMITS).unwrap());
    assert_eq!(out.dimensions(), (w, h));
    let portrait = fixture("portrait.jpg");
    let (pw, ph) = decode(&portrait).dimensions();
    let out = decode(&render::render(&portrait, 240, 85, LIMITS).unwrap());
    assert_eq!(out.width(), 240);
    let ratio = f64::from(ph) / f64::from(pw);
    assert!((f64::from(out.height()) - 240.0 * ratio).abs() <= 1.0);
}

#[test]
fn probe_reads_format_size_and_camera() {
    let probe = render::probe(&fixture("landscape.jpg"), LIMITS, WIDTHS).unwrap();
    assert_eq!(probe.format, Format::Jpeg);
    let (w, h) = decode(&fixture("landscape.jpg")).dimensions();
    assert_eq!((probe.width, probe.height), (w, h));
    assert!(
        probe.exif.camera.is_some(),
        "the fixture carries EXIF Make/Model"
    );
    assert_eq!(
        render::probe(&fixture("photo.webp"), LIMITS, WIDTHS)
            .unwrap()
            .format,
        Format::Webp
    );
    assert_eq!(
        render::probe(&fixture("photo.png"), LIMITS, WIDTHS)
            .unwrap()
            .format,
        Format::Png
    );
}

#[test]
fn bad_images_are_refused_with_the_right_reason() {
    assert_eq!(
        render::probe(&fixture("not-an-image.jpg"), LIMITS, WIDTHS),
        Err(RenderError::Unsupported)
    );
    assert!(matches!(
        render::probe(&fixture("truncated.jpg"), LIMITS, WIDTHS),
        Err(RenderError::Corrupt(_))
    ));
    for bomb in ["bomb.png", "bomb.jpg"] {
        match render::probe(&fixture(bomb), LIMITS, WIDTHS) {
            Err(RenderError::TooManyPixels { width, height, .. }) => {
                assert_eq!((width, height), (50000, 50000), "{bomb}")
            }
            other => panic!("{bomb}: {other:?}"),
        }
        // Rendering refuses it the same way, before allocating.
        assert!(matches!(
            render::render(&fixture(bomb), 240, 80, LIMITS),
            Err(RenderError::TooManyPixels { .. })
        ));
    }
    // A tighter limit refuses an ordinary photo too.
    assert!(matches!(
        render::probe(
            &fixture("landscape.jpg"),
            DecodeLimits {
                max_pixels: 1000,
                ..LIMITS
            },
            WIDTHS
        ),
        Err(RenderError::TooManyPixels { .. })
    ));
}

#[test]
fn the_probe_finds_where_the_image_ends() {
    for name in [
        "landscape.jpg",
        "rotated.jpg",
        "gray.jpg",
        "cmyk.jpg",
        "photo.png",
        "photo.webp",
    ] {
        let clean = fixture(name);
        let mut padded = clean.clone();
        padded.extend_from_slice(&[0xFF, 0xD9, 0, 1, 2, 3, b'P', b'K', 3, 4]);
        let probe = render::probe(&padded, LIMITS, WIDTHS).unwrap();
        assert_eq!(probe.image_len, clean.len() as u64, "{name}");
        assert_eq!(
            render::probe(&clean, LIMITS, WIDTHS).unwrap().image_len,
            clean.len() as u64,
            "{name}"
        );
    }
}

#[test]
fn images_no_rendition_can_be_made_of_are_refused() {
    // 20 x 100000: never enlarged, so every rendition is 100000 tall, past
    // JPEG's 65535.
    let tall = common::images::png(20, 100_000, &[]);
    match render::probe(&tall, LIMITS, WIDTHS) {
        Err(RenderError::Unrenderable { width: 240, reason }) => {
            assert!(reason.contains("65535"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // The same shape, wide: 240 x 1 renditions are fine.
    assert!(render::probe(&common::images::png(100_000, 20, &[]), LIMITS, WIDTHS).is_ok());
}

#[test]
fn decodes_that_need_too_much_memory_are_refused_from_the_headers() {
    let small = DecodeLimits {
        max_bytes: 8 << 20,
        ..LIMITS
    };
    // 2000 x 2000 progressive 4:4:4: 24 MB of coefficients at any scale.
    let progressive = common::images::jpeg_progressive(2000, 2000);
    assert!(matches!(
        render::probe(&progressive, small, WIDTHS),
        Err(RenderError::TooMuchMemory { .. })
    ));
    assert!(matches!(
        render::render(&progressive, 240, 80, small),
        Err(RenderError::TooMuchMemory { .. })
    ));
    assert!(render::probe(&progressive, LIMITS, WIDTHS).is_ok());
    // A 2000 x 2000 WebP: RGBA, its RGB copy and the decoder's planes.
    let webp = common::images::webp_flat(2000, 2000);
    assert!(matches!(
        render::probe(&webp, small, WIDTHS),
        Err(RenderError::TooMuchMemory { .. })
    ));
    // A baseline photo at 1/8 scale fits in little.
    let tight = DecodeLimits {
        max_bytes: 4 << 20,
        ..LIMITS
    };
    assert!(render::render(&fixture("landscape.jpg"), 240, 80, tight).is_ok());
}

#[test]
fn metadata_bombs_are_refused() {
    for bomb in [
        common::images::png_icc_bomb(64 << 20),
        common::images::png_text_bomb(64 << 20),
    ] {
        assert!(matches!(
            render::probe(&bomb, LIMITS, WIDTHS),
            Err(RenderError::Metadata(_))
        ));
    }
}

/// `jpeg` with `extra` bytes of APP2 segments (where an ICC profile goes)
/// right after its start marker.
fn with_segments_before(jpeg: &[u8], extra: usize) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut left = extra;
    while left > 0 {
        let payload = left.min(65_000);
        out.extend_from_slice(&[0xFF, 0xE2]);
        out.extend_from_slice(&u16::try_from(payload + 2).unwrap().to_be_bytes());
        out.extend(std::iter::repeat_n(b'x', payload));
        left -= payload;
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The server renders from the originals volume and checks uploads from
/// their spool file, decoding a JPEG as it reads the file: renditions,
/// probes and refusals are those of the whole file in memory.
#[test]
fn rendering_from_a_file_gives_what_rendering_from_memory_gives() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::File::open(path).unwrap()
    };
    let progressive = common::images::jpeg_progressive(1200, 900);
    let cases = [
        ("landscape.jpg", fixture("landscape.jpg")),
        ("rotated.jpg", fixture("rotated.jpg")),
        ("gray.jpg", fixture("gray.jpg")),
        ("cmyk.jpg", fixture("cmyk.jpg")),
        ("photo.png", fixture("photo.png")),
        ("photo.webp", fixture("photo.webp")),
        ("progressive.jpg", progressive.clone()),
        // Its image data starts past the first 256 KiB: read whole.
        (
            "late.jpg",
            with_segments_before(&fixture("rotated.jpg"), 300_000),
        ),
    ];
    for (name, bytes) in &cases {
        for width in [240, 1440] {
            let from_file = render::render_file(file(name, bytes), width, 85, LIMITS);
            let from_memory = render::render(bytes, width, 85, LIMITS);
            assert!(from_memory.is_ok(), "{name}: {from_memory:?}");
            assert_eq!(from_file, from_memory, "{name} at {width}");
        }
        let probe = render::probe(bytes, LIMITS, WIDTHS);
        assert!(probe.is_ok(), "{name}: {probe:?}");
        assert_eq!(
            render::probe_file(file(name, bytes), LIMITS, WIDTHS),
            probe,
            "{name}"
        );
    }
    // Cut short, in the headers or in the image data: corrupt either way.
    let cut = progressive[..progressive.len() * 2 / 3].to_vec();
    for (name, bytes) in [
        ("truncated.jpg", fixture("truncated.jpg")),
        ("cut.jpg", cut),
    ] {
        let from_file = render::render_file(file(name, &bytes), 240, 85, LIMITS);
        assert!(
            matches!(&from_file, Err(RenderError::Corrupt(_))),
            "{name}: {from_file:?}"
        );
        assert_eq!(from_file, render::render(&bytes, 240, 85, LIMITS), "{name}");
        let probed = render::probe_file(file(name, &bytes), LIMITS, WIDTHS);
        assert!(
            matches!(&probed, Err(RenderError::Corrupt(_))),
            "{name}: {probed:?}"
        );
    }
    // Bytes appended after the image are ignored, as in memory, and the
    // probe says where the image ends.
    let clean = fixture("landscape.jpg");
    let mut padded = clean.clone();
    padded.extend_from_slice(b"appended junk");
    assert_eq!(
        render::render_file(file("padded.jpg", &padded), 240, 85, LIMITS).unwrap(),
        render::render(&clean, 240, 85, LIMITS).unwrap()
    );
    let probe = render::probe_file(file("padded.jpg", &padded), LIMITS, WIDTHS).unwrap();
    assert_eq!(probe.image_len, clean.len() as u64);
}

/// The memory layer of the rendition cache counts a rendition by its
/// length, so the buffer it keeps must be no larger.
#[test]
fn a_rendition_takes_no_more_memory_than_its_length() {
    for name in ["landscape.jpg", "portrait.jpg", "photo.png"] {
        for width in [240, 640, 1440] {
            let out = render::render(&fixture(name), width, 82, LIMITS).unwrap();
            assert_eq!(out.capacity(), out.len(), "{name} at {width}");
        }
    }
}
