//! Images made for a test: hostile ones (bombs, shapes that cannot be
//! rendered) and large ones, generated rather than committed.

use std::io::Write;

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

/// `len` zero bytes, zlib-compressed (about 1/1000 of `len`).
pub fn zlib_zeros(len: usize) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len());
        encoder.write_all(&zeros[..n]).expect("compress");
        left -= n;
    }
    encoder.finish().expect("compress")
}

/// A valid grey PNG of `width` x `height` (all black), with `extra`
/// chunks between the header and the pixels.
pub fn png(width: u32, height: u32, extra: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey
    let raw = (width as usize + 1) * height as usize; // filter byte + pixels per row
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    for (kind, data) in extra {
        out.extend(chunk(kind, data));
    }
    out.extend(chunk(b"IDAT", &zlib_zeros(raw)));
    out.extend(chunk(b"IEND", b""));
    out
}

/// A 10 x 10 PNG whose ICC profile inflates to `inflated` bytes.
pub fn png_icc_bomb(inflated: usize) -> Vec<u8> {
    let mut iccp = b"bomb\0\0".to_vec();
    iccp.extend(zlib_zeros(inflated));
    png(10, 10, &[(b"iCCP", iccp)])
}

/// A 10 x 10 PNG with a compressed text chunk that inflates to `inflated`.
pub fn png_text_bomb(inflated: usize) -> Vec<u8> {
    let mut ztxt = b"Comment\0\0".to_vec();
    ztxt.extend(zlib_zeros(inflated));
    png(10, 10, &[(b"zTXt", ztxt)])
}

/// A lossless WebP of `width` x `height`, one grey: a few kilobytes that
/// decode to `width * height * 4` bytes.
pub fn webp_flat(width: u32, height: u32) -> Vec<u8> {
    let pixels = vec![128u8; width as usize * height as usize];
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(&pixels, width, height, image::ExtendedColorType::L8)
        .expect("webp");
    out
}

/// A progressive 4:4:4 JPEG of `width` x `height`, one grey: small on disk,
/// but its decoder keeps every coefficient of the full image.
pub fn jpeg_progressive(width: u16, height: u16) -> Vec<u8> {
    let pixels = vec![128u8; width as usize * height as usize * 3];
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
    encoder.set_progressive(true);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_1_1);
    encoder
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .expect("jpeg");
    out
}

/// A baseline JPEG of noise, which hardly compresses: about
/// `width * height * 2` bytes at quality 100.
pub fn jpeg_noise(width: u16, height: u16) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let pixels: Vec<u8> = (0..width as usize * height as usize * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 100)
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .expect("jpeg");
    out
}
