//! Docker's json-file log format: one JSON object per line,
//! `{"log":"...\n","stream":"stdout","time":"2024-...Z"}`, rotated as `<file>.1`, `.2`, ...

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One log entry.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    /// The text, with its newline.
    pub log: String,
    /// stdout or stderr.
    pub stream: String,
    /// RFC 3339 time.
    pub time: String,
}

/// The files of a log, oldest first.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for i in (1..100).rev() {
        let p = PathBuf::from(format!("{}.{i}", path.display()));
        if p.exists() {
            out.push(p);
        }
    }
    out.push(path.to_path_buf());
    out
}

/// Reads all entries of a log (all rotated files, oldest first).
pub fn read_all(path: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    for f in files(path) {
        if let Ok(file) = std::fs::File::open(&f) {
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                    out.push(e);
                }
            }
        }
    }
    out
}

/// Reads the entries of the current file from byte `offset`; returns them and the offset
/// after the last complete line.
pub fn read_from(path: &Path, offset: u64) -> (Vec<Entry>, u64) {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = Vec::new();
    let Ok(mut f) = std::fs::File::open(path) else {
        return (out, offset);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    // Rotated under us: start over on the new file.
    let offset = if len < offset { 0 } else { offset };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return (out, offset);
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return (out, offset);
    }
    let mut consumed = 0;
    while let Some(nl) = buf[consumed..].iter().position(|b| *b == b'\n') {
        let line = &buf[consumed..consumed + nl];
        if let Ok(e) = serde_json::from_slice::<Entry>(line) {
            out.push(e);
        }
        consumed += nl + 1;
    }
    (out, offset + consumed as u64)
}
