//! Stream framing: the 8-byte multiplexed headers of attach/logs/exec without a TTY, and the
//! newline-separated JSON progress messages of pull/push/build/load.

use serde_json::Value;

/// Demultiplexes docker's `[stream, 0, 0, 0, len(be32)] payload` frames.
#[derive(Default)]
pub struct Demux {
    buf: Vec<u8>,
}

/// A decoded frame: stream 0 stdin, 1 stdout, 2 stderr (3 = system error in exec).
#[derive(Debug, PartialEq)]
pub struct Frame {
    /// The stream number.
    pub stream: u8,
    /// The payload.
    pub data: Vec<u8>,
}

impl Demux {
    /// Feeds bytes; returns the complete frames.
    pub fn push(&mut self, data: &[u8]) -> Vec<Frame> {
        self.buf.extend_from_slice(data);
        let mut out = vec![];
        let mut off = 0;
        while self.buf.len() - off >= 8 {
            let h = &self.buf[off..off + 8];
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if self.buf.len() - off - 8 < len {
                break;
            }
            out.push(Frame {
                stream: h[0],
                data: self.buf[off + 8..off + 8 + len].to_vec(),
            });
            off += 8 + len;
        }
        self.buf.drain(..off);
        out
    }

    /// Bytes held back waiting for the rest of a frame.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Encodes one frame (used by tests and for symmetry with the daemon).
#[cfg(test)]
pub fn encode_frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![stream, 0, 0, 0];
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// Splits a JSON message stream (objects separated by newlines, possibly split across reads).
#[derive(Default)]
pub struct JsonLines {
    buf: Vec<u8>,
}

impl JsonLines {
    /// Feeds bytes; returns the complete messages (lines that are not JSON are skipped).
    pub fn push(&mut self, data: &[u8]) -> Vec<Value> {
        self.buf.extend_from_slice(data);
        let mut out = vec![];
        while let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=p).collect();
            out.extend(parse_objects(&line));
        }
        out
    }

    /// The rest at end of stream.
    pub fn finish(&mut self) -> Vec<Value> {
        let rest = std::mem::take(&mut self.buf);
        parse_objects(&rest)
    }
}

fn parse_objects(b: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(b)
        .into_iter::<Value>()
        .filter_map(|v| v.ok())
        .collect()
}

/// Scans stdin bytes for the detach key sequence across reads.
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    /// A scanner for `keys` (empty: never detaches).
    pub fn new(keys: Vec<u8>) -> DetachScanner {
        DetachScanner { keys, matched: 0 }
    }

    /// Filters one read: returns the bytes to forward and whether the sequence completed.
    /// Bytes of a partial match are held back and released when the match fails.
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        if self.keys.is_empty() {
            return (data.to_vec(), false);
        }
        let mut out = vec![];
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                    if self.keys.len() == 1 {
                        return (out, true);
                    }
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demux_split_frames() {
        let mut wire = encode_frame(1, b"hello\n");
        wire.extend(encode_frame(2, b"oops\n"));
        wire.extend(encode_frame(1, b""));
        wire.extend(encode_frame(1, &[7u8; 70000]));
        let mut d = Demux::default();
        let mut frames = vec![];
        for chunk in wire.chunks(5) {
            frames.extend(d.push(chunk));
        }
        assert_eq!(d.pending(), 0);
        assert_eq!(frames.len(), 4);
        assert_eq!(
            frames[0],
            Frame {
                stream: 1,
                data: b"hello\n".to_vec()
            }
        );
        assert_eq!(frames[1].stream, 2);
        assert_eq!(frames[2].data.len(), 0);
        assert_eq!(frames[3].data.len(), 70000);
        let mut d = Demux::default();
        assert!(d.push(&[1, 0, 0, 0, 0, 0, 0, 9, b'x']).is_empty());
        assert_eq!(d.pending(), 9);
    }

    #[test]
    fn json_lines() {
        let mut j = JsonLines::default();
        assert!(j.push(br#"{"status":"a"#).is_empty());
        let v = j.push(b"\"}\r\n{\"stream\":\"x\"}\n{\"a\":1}{\"b\":2}\n");
        assert_eq!(v.len(), 4);
        assert_eq!(v[0]["status"], "a");
        assert_eq!(v[3]["b"], 2);
        assert!(j.push(b"not json\n").is_empty());
        j.push(br#"{"end":true}"#);
        assert_eq!(j.finish()[0]["end"], true);
    }

    #[test]
    fn detach_keys() {
        let mut s = DetachScanner::new(vec![16, 17]);
        assert_eq!(s.feed(b"ab"), (b"ab".to_vec(), false));
        assert_eq!(s.feed(&[b'x', 16]), (b"x".to_vec(), false));
        assert_eq!(s.feed(b"y"), (vec![16, b'y'], false));
        assert_eq!(s.feed(&[16]), (vec![], false));
        assert_eq!(s.feed(&[17, b'z']), (vec![], true));
        let mut s = DetachScanner::new(vec![16, 17]);
        assert_eq!(s.feed(&[16, 16, 17]), (vec![16], true));
        let mut s = DetachScanner::new(vec![]);
        assert_eq!(s.feed(&[16, 17]), (vec![16, 17], false));
    }
}
