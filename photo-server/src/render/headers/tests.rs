use super::jpeg::*;
use super::png::*;
use super::walk::*;
use crate::render::RenderError;
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
