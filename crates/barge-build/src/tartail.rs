//! [`TarTail`]: a tar stream whose missing end is supplied, for build contexts.
//!
//! The docker CLI (28.x) sends a context whose last entry it appended itself (`-f` naming a
//! Dockerfile outside the context, the rewritten `.dockerignore`) without that entry's
//! padding or the end-of-archive blocks. Go's `archive/tar`, which dockerd reads it with,
//! takes the end of the stream right after an entry's data (or at a header boundary) as the
//! end of the archive; the `tar` crate wants the full blocks. This reader follows the
//! entries' headers and, when the stream ends exactly there, adds the zero blocks. A stream
//! that ends anywhere else (inside a header or an entry's data) is left short, so a
//! truncated context is still an error.

use std::io::{self, Read};

const BLOCK: u64 = 512;

/// Reads a plain (decompressed) tar stream, completing a tail cut at an entry boundary.
pub(crate) struct TarTail<R> {
    inner: R,
    /// Bytes of the current header block seen so far.
    header: Vec<u8>,
    /// Data bytes of the current entry still to come.
    data: u64,
    /// Padding bytes after them.
    pad: u64,
    /// Zero bytes still to supply once the inner stream ended at a boundary.
    tail: Option<u64>,
}

impl<R: Read> TarTail<R> {
    pub(crate) fn new(inner: R) -> Self {
        TarTail {
            inner,
            header: Vec::with_capacity(BLOCK as usize),
            data: 0,
            pad: 0,
            tail: None,
        }
    }

    /// Follows the entry structure over `buf` (bytes just read).
    fn track(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            if self.data > 0 {
                let n = self.data.min(buf.len() as u64);
                self.data -= n;
                buf = &buf[n as usize..];
            } else if self.pad > 0 {
                let n = self.pad.min(buf.len() as u64);
                self.pad -= n;
                buf = &buf[n as usize..];
            } else {
                let want = BLOCK as usize - self.header.len();
                let n = want.min(buf.len());
                self.header.extend_from_slice(&buf[..n]);
                buf = &buf[n..];
                if self.header.len() == BLOCK as usize {
                    let size = entry_size(&self.header);
                    self.data = size;
                    self.pad = (BLOCK - size % BLOCK) % BLOCK;
                    self.header.clear();
                }
            }
        }
    }
}

/// The size field of a header block (octal, or GNU base-256 when the top bit is set); a
/// zero block (end of archive) and an unreadable field are 0, which leaves the stream
/// to the tar reader to judge.
fn entry_size(h: &[u8]) -> u64 {
    let f = &h[124..136];
    if f[0] & 0x80 != 0 {
        return f[1..].iter().fold(0u64, |acc, b| {
            acc.saturating_mul(256).saturating_add(u64::from(*b))
        });
    }
    let text: String = f
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    u64::from_str_radix(text.trim(), 8).unwrap_or(0)
}

impl<R: Read> Read for TarTail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.tail {
            let n = left.min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            self.tail = Some(left - n as u64);
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.track(&buf[..n]);
            return Ok(n);
        }
        if buf.is_empty() || self.data > 0 || !self.header.is_empty() {
            return Ok(0);
        }
        // At an entry boundary: its padding, then two zero blocks (extra zero blocks after
        // a complete archive are ignored by the reader).
        self.tail = Some(self.pad + 2 * BLOCK);
        self.pad = 0;
        self.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("append");
        }
        b.into_inner().expect("finish")
    }

    fn names(bytes: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut a = tar::Archive::new(TarTail::new(bytes));
        let mut out = Vec::new();
        for e in a.entries()? {
            let mut e = e?;
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            out.push((e.path()?.to_string_lossy().into_owned(), data));
        }
        Ok(out)
    }

    #[test]
    fn completes_a_stream_cut_after_an_entry_and_only_there() {
        let full = archive(&[("a", b"hello"), ("Dockerfile", b"FROM busybox\n")]);
        let want = vec![
            ("a".to_string(), b"hello".to_vec()),
            ("Dockerfile".to_string(), b"FROM busybox\n".to_vec()),
        ];
        // Whole, without the trailer, and cut right after the last entry's data (the
        // docker CLI's shape): the same entries.
        assert_eq!(names(&full).expect("full"), want);
        let no_trailer = &full[..3 * 512 + 512];
        assert_eq!(names(no_trailer).expect("no trailer"), want);
        let cut = &full[..3 * 512 + 13];
        assert_eq!(names(cut).expect("cut after data"), want);
        // Cut inside the data or inside a header: still an error.
        assert!(names(&full[..3 * 512 + 5]).is_err());
        assert!(names(&full[..2 * 512 + 100]).is_err());
        // Empty input is an empty archive.
        assert_eq!(names(&[]).expect("empty"), vec![]);
    }

    #[test]
    fn sizes_in_octal_and_base_256() {
        let mut h = [0u8; 512];
        h[124..135].copy_from_slice(b"00000001750");
        assert_eq!(entry_size(&h), 1000);
        let mut h = [0u8; 512];
        h[124] = 0x80;
        h[134] = 0x01;
        h[135] = 0x02;
        assert_eq!(entry_size(&h), 258);
        assert_eq!(entry_size(&[0u8; 512]), 0);
    }
}
