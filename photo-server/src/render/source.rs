//! Where an original's bytes come from, and the bytes a JPEG decoder reads,
//! watched.
//!
//! An original is read from its file as it is decoded, through a 64 KiB
//! buffer, never whole: a render planned from the headers may wait in the
//! queue, and every admitted request holds its opened original meanwhile,
//! so what it holds must be small. (The in-memory [`Source`] is for callers
//! that already hold the bytes: tests, and [`super::probe`].)
//!
//! The JPEG decoder reads through [`Watched`], which
//!
//! - walks every byte before the decoder gets it with a [`ScanBudget`], and
//!   fails the read from the scan header that takes the file past the
//!   budget on: libjpeg stops at once (a read error is fatal to it) and
//!   has decoded none of the scans past the budget. libjpeg-turbo's own
//!   defence against too many scans is a progress monitor that aborts
//!   after N of them (`TJPARAM_SCANLIMIT` in TurboJPEG), but the `mozjpeg`
//!   crate does not let its callers set one; counting in the source gives
//!   the same bound, ahead of the decoder, in safe code;
//! - counts how many bytes the decoder used, and whether the last two were
//!   the end-of-image marker: libjpeg answers a file that ends early (or a
//!   read error) with a fake end marker and grey pixels, and only a
//!   warning;
//! - keeps the first read error, which is not the image's fault.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom};

use super::error::RenderError;
use super::headers::ScanBudget;

/// An original's bytes: its file, read through a buffer as it is decoded,
/// or bytes the caller holds.
pub enum Source {
    File(BufReader<File>),
    Memory(Cursor<Vec<u8>>),
}

impl Source {
    pub fn file(file: File) -> Source {
        Source::File(BufReader::with_capacity(64 << 10, file))
    }

    /// Its length in bytes.
    pub fn len(&self) -> io::Result<u64> {
        match self {
            Source::File(file) => Ok(file.get_ref().metadata()?.len()),
            Source::Memory(bytes) => Ok(bytes.get_ref().len() as u64),
        }
    }

    /// Back to its first byte.
    pub fn rewind(&mut self) -> Result<(), RenderError> {
        self.seek(SeekFrom::Start(0))
            .map(|_| ())
            .map_err(|e| RenderError::Read(e.to_string()))
    }
}

impl Read for Source {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::File(file) => file.read(out),
            Source::Memory(bytes) => bytes.read(out),
        }
    }
}

impl BufRead for Source {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Source::File(file) => file.fill_buf(),
            Source::Memory(bytes) => bytes.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Source::File(file) => file.consume(amount),
            Source::Memory(bytes) => bytes.consume(amount),
        }
    }
}

impl Seek for Source {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            Source::File(file) => file.seek(to),
            Source::Memory(bytes) => bytes.seek(to),
        }
    }

    /// Within the buffer, without reading again (headers skip segments).
    fn seek_relative(&mut self, offset: i64) -> io::Result<()> {
        match self {
            Source::File(file) => file.seek_relative(offset),
            Source::Memory(bytes) => bytes.seek_relative(offset),
        }
    }
}

pub struct Watched<R> {
    inner: R,
    used: u64,
    /// Bytes walked by the budget: all that `fill_buf` handed out.
    walked: u64,
    last_two: [u8; 2],
    failed: Option<io::Error>,
    budget: ScanBudget,
    refused: Option<RenderError>,
}

impl<R: BufRead> Watched<R> {
    pub fn new(inner: R, budget: ScanBudget) -> Self {
        Watched {
            inner,
            used: 0,
            walked: 0,
            last_two: [0, 0],
            failed: None,
            budget,
            refused: None,
        }
    }

    /// Bytes the decoder consumed.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Whether the consumed bytes end with the end-of-image marker (which
    /// entropy-coded data cannot hold), as a whole image does.
    pub fn ends_with_end_marker(&self) -> bool {
        self.used >= 2 && self.last_two == [0xFF, 0xD9]
    }

    /// Why the budget refused the file, if it did (the reads failed from
    /// then on, and the decoder saw a read error).
    pub fn refusal(&self) -> Option<RenderError> {
        self.refused.clone()
    }

    /// The first read error, if any (the decoder saw it as the end of the file).
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.failed.take()
    }
}

impl<R: BufRead> Read for Watched<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Watched<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.refused.is_some() {
            return Err(io::Error::other("over the decode budget"));
        }
        match self.inner.fill_buf() {
            Ok(buf) => {
                // The buffer starts at the first unconsumed byte; what lies
                // past the bytes walked already is new.
                let new = usize::try_from(self.walked - self.used)
                    .ok()
                    .and_then(|walked| buf.get(walked..))
                    .unwrap_or_default();
                if !new.is_empty() {
                    if let Err(refused) = self.budget.feed(new) {
                        self.refused = Some(refused);
                        return Err(io::Error::other("over the decode budget"));
                    }
                    self.walked = self.used + buf.len() as u64;
                }
                Ok(buf)
            }
            Err(e) => {
                let kind = e.kind();
                self.failed.get_or_insert(e);
                Err(io::Error::from(kind))
            }
        }
    }

    fn consume(&mut self, amount: usize) {
        if amount == 0 {
            return;
        }
        // The bytes being consumed are still at the front of the inner
        // buffer: a buffered reader hands them out again without reading.
        if let Ok(buf) = self.inner.fill_buf() {
            match buf.get(..amount) {
                Some([.., a, b]) => self.last_two = [*a, *b],
                Some([b]) => self.last_two = [self.last_two[1], *b],
                _ => {}
            }
        }
        self.used += amount as u64;
        self.walked = self.walked.max(self.used);
        self.inner.consume(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn unlimited() -> ScanBudget {
        ScanBudget::new(256 << 20)
    }

    #[test]
    fn counts_what_is_consumed_and_remembers_its_last_two_bytes() {
        // A tiny buffer, so the end marker straddles two refills.
        let data = [1u8, 2, 3, 0xFF, 0xD9, 7, 8];
        let mut w = Watched::new(BufReader::with_capacity(4, Cursor::new(data)), unlimited());
        let mut first = [0u8; 4];
        w.read_exact(&mut first).unwrap();
        assert!(!w.ends_with_end_marker());
        let mut one = [0u8; 1];
        w.read_exact(&mut one).unwrap();
        assert_eq!(w.used(), 5);
        assert!(w.ends_with_end_marker());
        w.read_exact(&mut one).unwrap();
        assert!(!w.ends_with_end_marker());
    }

    #[test]
    fn keeps_the_first_read_error() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("EIO on the originals volume"))
            }
        }
        let mut w = Watched::new(BufReader::new(Failing), unlimited());
        assert!(w.fill_buf().is_err());
        let e = w.take_error().expect("the error is kept");
        assert_eq!(e.to_string(), "EIO on the originals volume");
        assert_eq!(w.refusal(), None);
    }

    /// A stream of `scans` scan headers of one 8 x 8 component.
    fn scans(scans: usize) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        out.extend([0xFF, 0xC2, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
        for _ in 0..scans {
            out.extend([0xFF, 0xDA, 0, 8, 1, 1, 0, 1, 63, 0, 0x12, 0x34]);
        }
        out
    }

    #[test]
    fn the_reads_fail_before_the_decoder_gets_a_scan_past_the_budget() {
        let stream = scans(150);
        // Refills of 64 bytes: the decoder has had the bytes of a few
        // scans past the 100th at most when the reads start to fail.
        let mut w = Watched::new(
            BufReader::with_capacity(64, Cursor::new(&stream)),
            unlimited(),
        );
        let mut read = Vec::new();
        let result = w.read_to_end(&mut read);
        assert!(result.is_err());
        assert!(matches!(w.refusal(), Some(RenderError::TooSlow(_))));
        // Start and frame header, 15 bytes; scans of 12, whose header is
        // whole after 10: the 101st never reached the decoder whole.
        assert!(read.len() < 15 + 100 * 12 + 10, "{} bytes read", read.len());
        assert_eq!(
            w.take_error().map(|e| e.to_string()),
            None,
            "not a read error"
        );
        // Within the budget, every byte goes through.
        let stream = scans(100);
        let mut w = Watched::new(
            BufReader::with_capacity(64, Cursor::new(&stream)),
            unlimited(),
        );
        let mut read = Vec::new();
        w.read_to_end(&mut read).unwrap();
        assert!(read == stream);
        assert_eq!(w.refusal(), None);
    }
}
