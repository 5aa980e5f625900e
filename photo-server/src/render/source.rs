//! The bytes a JPEG decoder reads, watched: how many it used, whether the
//! last two were the end-of-image marker, and whether reading failed.
//!
//! libjpeg answers a file that ends early (or a read error) with a fake end
//! marker and grey pixels, and only a warning. Decoding from a slice, the
//! caller can look at the bytes the decoder used; decoding from a file as it
//! is read, this wrapper is what sees them go by.

use std::io::{self, BufRead, Read};

pub struct Watched<R> {
    inner: R,
    used: u64,
    last_two: [u8; 2],
    failed: Option<io::Error>,
}

impl<R: BufRead> Watched<R> {
    pub fn new(inner: R) -> Self {
        Watched {
            inner,
            used: 0,
            last_two: [0, 0],
            failed: None,
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
        match self.inner.fill_buf() {
            Ok(buf) => Ok(buf),
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
        self.inner.consume(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    #[test]
    fn counts_what_is_consumed_and_remembers_its_last_two_bytes() {
        // A tiny buffer, so the end marker straddles two refills.
        let data = [1u8, 2, 3, 0xFF, 0xD9, 7, 8];
        let mut w = Watched::new(BufReader::with_capacity(4, Cursor::new(data)));
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
        let mut w = Watched::new(BufReader::new(Failing));
        assert!(w.fill_buf().is_err());
        let e = w.take_error().expect("the error is kept");
        assert_eq!(e.to_string(), "EIO on the originals volume");
    }
}
