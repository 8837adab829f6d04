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
        read_file(&f, &mut out);
    }
    out
}

/// Appends the entries of one log file to `out` (none if it cannot be opened).
fn read_file(path: &Path, out: &mut Vec<Entry>) {
    if let Ok(file) = std::fs::File::open(path) {
        for line in BufReader::new(file).lines().map_while(Result::ok) {
            if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                out.push(e);
            }
        }
    }
}

/// Reads a log and then what is appended to it. The current file is opened before anything
/// is read and kept open, so lines written meanwhile are not missed and a follower reads to
/// the end of a log whose container was removed (its file deleted) while it followed.
pub struct Follower {
    path: PathBuf,
    file: Option<std::fs::File>,
    offset: u64,
}

impl Follower {
    /// Opens the log's current file.
    pub fn open(path: &Path) -> Follower {
        Follower {
            path: path.to_path_buf(),
            file: std::fs::File::open(path).ok(),
            offset: 0,
        }
    }

    /// All entries so far: the rotated files, oldest first, then the current file.
    pub fn read_existing(&mut self) -> Vec<Entry> {
        let mut out = Vec::new();
        let rotated = files(&self.path);
        for f in &rotated[..rotated.len() - 1] {
            read_file(f, &mut out);
        }
        out.extend(self.read_new());
        out
    }

    /// The complete lines appended since the last read; after a rotation, once the old file
    /// is read to its end, the new file from its start.
    pub fn read_new(&mut self) -> Vec<Entry> {
        use std::os::unix::fs::MetadataExt;
        let out = self.read_open();
        if !out.is_empty() {
            return out;
        }
        let open_ino = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.ino());
        let path_ino = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        if path_ino.is_some() && path_ino != open_ino {
            self.file = std::fs::File::open(&self.path).ok();
            self.offset = 0;
            return self.read_open();
        }
        out
    }

    fn read_open(&mut self) -> Vec<Entry> {
        use std::io::{Read, Seek, SeekFrom};
        let mut out = Vec::new();
        let Some(f) = &mut self.file else {
            return out;
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut buf).is_err() {
            return out;
        }
        let mut consumed = 0;
        while let Some(nl) = buf[consumed..].iter().position(|b| *b == b'\n') {
            let line = &buf[consumed..consumed + nl];
            if let Ok(e) = serde_json::from_slice::<Entry>(line) {
                out.push(e);
            }
            consumed += nl + 1;
        }
        self.offset += consumed as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(text: &str) -> String {
        format!(
            "{{\"log\":\"{text}\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:00Z\"}}\n"
        )
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open log");
        f.write_all(line(text).as_bytes()).expect("write log");
    }

    fn texts(v: Vec<Entry>) -> Vec<String> {
        v.into_iter()
            .map(|e| e.log.trim_end().to_string())
            .collect()
    }

    #[test]
    fn a_follower_reads_to_the_end_of_a_deleted_log_and_across_rotations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        append(&path, "a");
        let mut f = Follower::open(&path);
        assert_eq!(texts(f.read_existing()), ["a"]);
        // A partial line waits for its newline.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut h| h.write_all(b"{\"log\":"))
            .expect("partial");
        assert!(f.read_new().is_empty());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut h| h.write_all(&line("b").as_bytes()[7..]))
            .expect("rest");
        assert_eq!(texts(f.read_new()), ["b"]);
        // Rotated: the old file's tail first, then the new file from its start.
        append(&path, "c");
        std::fs::rename(&path, dir.path().join("c-json.log.1")).expect("rotate");
        append(&path, "d");
        assert_eq!(texts(f.read_new()), ["c"]);
        assert_eq!(texts(f.read_new()), ["d"]);
        // The container is removed while followed: what was written is still read.
        append(&path, "e");
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(texts(f.read_new()), ["e"]);
        assert!(f.read_new().is_empty());
    }

    #[test]
    fn a_follower_of_a_log_not_yet_made_reads_it_once_it_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        let mut f = Follower::open(&path);
        assert!(f.read_existing().is_empty());
        append(&path, "x");
        assert_eq!(texts(f.read_new()), ["x"]);
    }
}
