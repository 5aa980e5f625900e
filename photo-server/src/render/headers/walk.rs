//! What every walk over a container shares: the bounds on what it reads,
//! reading big-endian and little-endian fields, and reading or skipping
//! pieces of a stream.

use std::io::{self, Read, Seek};

use crate::render::error::RenderError;

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

pub(super) fn corrupt(what: &str) -> RenderError {
    RenderError::Corrupt(what.to_string())
}

/// A read error while walking: the file's fault only if it ended early.
pub(super) fn walk_error(e: io::Error) -> RenderError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        corrupt("the file ends inside its headers")
    } else {
        RenderError::Read(e.to_string())
    }
}

pub(super) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

pub(super) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(super) fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Fills `buf`; `false` if the stream ended before (a partial fill is lost).
pub(super) fn read_all(source: &mut impl Read, buf: &mut [u8]) -> Result<bool, RenderError> {
    match source.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(RenderError::Read(e.to_string())),
    }
}

pub(super) fn read_byte(source: &mut impl Read) -> Result<u8, RenderError> {
    let mut byte = [0u8; 1];
    source.read_exact(&mut byte).map_err(walk_error)?;
    Ok(byte[0])
}

/// `len` bytes of the stream, read into memory (callers bound `len`).
pub(super) fn read_vec(source: &mut impl Read, len: u64) -> Result<Vec<u8>, RenderError> {
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
pub(super) fn skip(source: &mut impl Seek, len: u64) -> Result<(), RenderError> {
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

pub(super) fn metadata_too_large(kind: &[u8]) -> RenderError {
    RenderError::Metadata(format!(
        "its {} chunk is larger than {} MiB",
        String::from_utf8_lossy(kind),
        MAX_METADATA_BYTES >> 20
    ))
}
