//! Content digests (`sha256:<64 lowercase hex>`) and a hashing writer/reader.
//!
//! Only sha256 is accepted: it is what every registry and `docker save` uses, and the store
//! lays blobs out by it. A digest is validated when parsed so a path built from it
//! (`blobs/sha256/<hex>`) can never contain a separator or `..`.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `algorithm:` prefix.
    #[error("digest {0:?}: missing \"sha256:\" prefix")]
    MissingAlgorithm(String),
    /// An algorithm other than sha256.
    #[error("digest {0:?}: unsupported algorithm (only sha256)")]
    UnsupportedAlgorithm(String),
    /// The hex part is not 64 lowercase hex digits.
    #[error("digest {0:?}: expected 64 lowercase hex digits after \"sha256:\"")]
    BadHex(String),
}

/// A sha256 content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingAlgorithm(s.to_string()));
        };
        if alg != "sha256" {
            return Err(DigestError::UnsupportedAlgorithm(s.to_string()));
        }
        Self::from_hex(hex).map_err(|_| DigestError::BadHex(s.to_string()))
    }

    /// Builds a digest from its 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::BadHex(hex.to_string()));
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        let mut h = Hasher::new();
        h.update(data);
        h.finish()
    }

    /// The 64 hex digits (no algorithm prefix); safe to use as a file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The algorithm name (always `sha256`).
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The first 12 hex digits, as `docker images` shows image ids.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256 that also counts bytes.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
        self.len += data.len() as u64;
    }
    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// True when nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let out = self.inner.finalize();
        let mut hex = String::with_capacity(64);
        for b in out.iter() {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        Digest { hex }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }
    /// True when nothing was read yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }
    /// The digest of what was read, and the inner reader.
    pub fn finish(self) -> (Digest, R) {
        (self.hasher.finish(), self.inner)
    }
    /// The inner reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// The digest and length of what was written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        let len = self.hasher.len();
        (self.hasher.finish(), len, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest_is_known_value() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_refuses_bad_forms() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(Digest::parse(&good).is_ok());
        assert!(matches!(
            Digest::parse("a".repeat(64).as_str()),
            Err(DigestError::MissingAlgorithm(_))
        ));
        assert!(matches!(
            Digest::parse(&format!("sha512:{}", "a".repeat(64))),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            Digest::parse(&format!("sha256:{}", "A".repeat(64))),
            Err(DigestError::BadHex(_))
        ));
        assert!(matches!(
            Digest::parse(&format!("sha256:{}", "a".repeat(63))),
            Err(DigestError::BadHex(_))
        ));
        assert!(matches!(
            Digest::parse("sha256:../../../../etc/passwd"),
            Err(DigestError::BadHex(_))
        ));
    }
}
