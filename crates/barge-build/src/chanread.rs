//! [`ChannelReader`]: a blocking [`Read`] over chunks sent from another thread, to feed a
//! request body that arrives asynchronously (the daemon's `POST /build`) into
//! [`crate::BuildContext::Tar`] on the build's blocking thread.

use std::io::{self, Read};
use std::sync::mpsc::Receiver;

/// Reads the chunks received on a channel, in order; the end of the stream is when every
/// sender is dropped. A chunk that is an `Err` is returned as the read error (a broken
/// request body).
pub struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    /// A reader over `rx` (pair it with a `std::sync::mpsc::sync_channel` so a slow build
    /// applies back-pressure to the body).
    pub fn new(rx: Receiver<io::Result<Vec<u8>>>) -> ChannelReader {
        ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chunks_in_order_then_eof_or_error() {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let t = std::thread::spawn(move || {
            for c in [&b"ab"[..], b"", b"cde"] {
                tx.send(Ok(c.to_vec())).unwrap();
            }
        });
        let mut s = String::new();
        ChannelReader::new(rx).read_to_string(&mut s).unwrap();
        t.join().unwrap();
        assert_eq!(s, "abcde");
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        tx.send(Ok(b"x".to_vec())).unwrap();
        tx.send(Err(io::Error::other("body broken"))).unwrap();
        let mut v = Vec::new();
        let e = ChannelReader::new(rx).read_to_end(&mut v).unwrap_err();
        assert_eq!(e.to_string(), "body broken");
    }
}
