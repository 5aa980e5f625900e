use super::*;

#[test]
fn fit_width_keeps_aspect_and_never_upscales() {
    assert_eq!(fit_width(4000, 3000, 1440), (1440, 1080));
    assert_eq!(fit_width(3000, 4000, 240), (240, 320));
    assert_eq!(fit_width(200, 100, 640), (200, 100));
    assert_eq!(fit_width(10000, 1, 240), (240, 1));
}

#[test]
fn an_opened_original_holds_its_file_and_a_buffer_not_its_bytes() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    // Segments of 300 KB before its image data (an old open read such
    // a JPEG whole, as it did every PNG and WebP).
    let jpeg = std::fs::read(fixtures.join("landscape.jpg")).unwrap();
    let mut late = jpeg[..2].to_vec();
    for _ in 0..5 {
        late.extend_from_slice(&[0xFF, 0xE2, 0xEA, 0x62]);
        late.extend(std::iter::repeat_n(b'x', 60_000));
    }
    late.extend_from_slice(&jpeg[2..]);
    std::fs::write(dir.path().join("late.jpg"), &late).unwrap();
    for path in [
        fixtures.join("landscape.jpg"),
        fixtures.join("photo.png"),
        fixtures.join("photo.webp"),
        dir.path().join("late.jpg"),
    ] {
        let opened = open_file(std::fs::File::open(&path).unwrap()).unwrap();
        match &opened.source {
            Source::File(file) => assert_eq!(file.capacity(), 64 << 10, "{path:?}"),
            Source::Memory(_) => panic!("{path:?} read into memory"),
        }
        assert_eq!(opened.len, std::fs::metadata(&path).unwrap().len());
    }
}

#[test]
fn a_jpeg_with_more_scans_than_any_encoder_writes_is_refused_by_the_check_and_renders() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scans.jpg");
    let bytes = std::fs::read(fixture).unwrap();
    // A valid image: libjpeg alone decodes it, all 2001 scans of it.
    let mut decoder = mozjpeg::Decompress::new_mem(&bytes).unwrap();
    decoder.scale(8);
    let mut started = decoder.grayscale().unwrap();
    let pixels = started.read_scanlines::<u8>().unwrap();
    assert_eq!(pixels.len(), 64 * 48);
    let limits = DecodeLimits {
        max_pixels: 100_000_000,
        max_bytes: 256 << 20,
    };
    for result in [
        probe(&bytes, limits, &[240]).map(|_| ()),
        render(&bytes, 240, 80, limits).map(|_| ()),
    ] {
        match result {
            Err(RenderError::TooSlow(reason)) => {
                assert!(reason.contains("100 scans"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
    // Decoded at 1/8 from its DC scan alone (`eighth.rs`), libjpeg
    // reads one scan: within the budget, so that rendition is made.
    assert!(render(&bytes, 8, 80, limits).is_ok());
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
