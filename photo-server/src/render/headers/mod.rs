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
//!
//! One file per format (`jpeg.rs`, `png.rs`, `webp.rs`); what the walks
//! share, the bounds included, is in `walk.rs`.

mod jpeg;
mod png;
mod walk;
mod webp;

pub use jpeg::{JpegHeader, MAX_JPEG_SCANS, SCAN_PASSES, ScanBudget, jpeg};
pub use png::{PngHeader, png};
pub use walk::{MAX_EXIF_BYTES, MAX_METADATA_BYTES, MAX_METADATA_TOTAL, Walked};
pub use webp::{WebpHeader, webp};

#[cfg(test)]
mod tests;
