//! Atomic file writes: the one temp-file + rename routine every barge record goes through, with
//! the file mode and the durability each caller asks for (see docs/decisions.md, "Atomic
//! writes").

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What must hold after a crash of the machine (a crash of the process alone never leaves a
/// torn file: the rename is atomic either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Nothing is fsynced: after a machine crash the path may hold the old content, the new
    /// one, or (on some filesystems) an empty file. For records that do not outlive a reboot.
    None,
    /// The file is fsynced before the rename, so the path never holds a torn or empty file;
    /// the rename itself may be lost (the old content comes back). For state on tmpfs or
    /// that is rebuilt at start-up.
    File,
    /// The file, then its directory, are fsynced: once the call returns the new content
    /// survives a machine crash.
    FileAndDir,
}

/// How [`write_atomic`] writes: the new file's permission bits (before the umask) and its
/// [`Durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtomicWrite {
    /// Permission bits of the new file, as for `open(2)` (the process umask applies).
    pub mode: u32,
    /// What must survive a machine crash.
    pub durability: Durability,
}

impl AtomicWrite {
    /// Private (0600) and durable: credentials, image store records.
    pub const PRIVATE_DURABLE: AtomicWrite = AtomicWrite {
        mode: 0o600,
        durability: Durability::FileAndDir,
    };
}

/// Why an atomic write failed: the step (`"create"`, `"write"`, `"fsync"`, `"rename"`), the
/// path it was done on and the OS error. Nothing is left behind: the temp file is removed.
#[derive(Debug)]
pub struct WriteError {
    /// The step that failed.
    pub op: &'static str,
    /// The file the step was done on (the temp file, the target or its directory).
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.source)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<WriteError> for std::io::Error {
    fn from(e: WriteError) -> std::io::Error {
        std::io::Error::new(e.source.kind(), e.to_string())
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temp file beside `path` that [`write_atomic`] writes first: it starts with `.tmp-`
/// (what the image store's start-up cleanup removes) and ends with `.tmp` (what the network
/// manager's record reader removes), and is unique to this process and call, so concurrent
/// writers of one path never share a temp file.
fn tmp_path(path: &Path) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{n}-{name}.tmp", std::process::id()))
}

/// Writes `data` to `path` so that readers see the old content or the new one, never a
/// part: a new temp file in the same directory, written (and fsynced as `how` says), then
/// renamed over `path`. On error the temp file is removed and `path` is unchanged (except
/// when only the final directory fsync fails: the rename is done, its durability unknown).
pub fn write_atomic(path: &Path, data: &[u8], how: AtomicWrite) -> Result<(), WriteError> {
    let tmp = tmp_path(path);
    let err = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { op, path, source }
    };
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(how.mode)
            .open(&tmp)
            .map_err(err("create", &tmp))?;
        f.write_all(data).map_err(err("write", &tmp))?;
        if how.durability != Durability::None {
            f.sync_all().map_err(err("fsync", &tmp))?;
        }
        drop(f);
        std::fs::rename(&tmp, path).map_err(err("rename", path))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return res;
    }
    if how.durability == Durability::FileAndDir {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err("fsync", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_replaces_and_sets_the_mode() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("rec.json");
        for (mode, durability) in [
            (0o600, Durability::FileAndDir),
            (0o640, Durability::File),
            (0o604, Durability::None),
        ] {
            std::fs::remove_file(&p).ok();
            write_atomic(&p, b"one", AtomicWrite { mode, durability }).expect("write");
            write_atomic(&p, b"second", AtomicWrite { mode, durability }).expect("replace");
            assert_eq!(std::fs::read(&p).expect("read"), b"second");
            let m = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
            // The umask may only take bits away.
            assert_eq!(m & !mode, 0, "{m:o} for {mode:o}");
            assert_eq!(m & 0o600, 0o600, "{m:o}");
        }
        assert_eq!(names(d.path()), ["rec.json"], "no temp file is left");
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let d = tempfile::tempdir().expect("tempdir");
        // The target is a non-empty directory: the rename fails after the temp file exists.
        let p = d.path().join("busy");
        std::fs::create_dir(&p).expect("mkdir");
        std::fs::write(p.join("inside"), b"x").expect("write");
        let e = write_atomic(&p, b"data", AtomicWrite::PRIVATE_DURABLE).expect_err("must fail");
        assert_eq!(e.op, "rename");
        assert_eq!(e.path, p);
        assert!(e.to_string().contains("busy"), "{e}");
        assert_eq!(names(d.path()), ["busy"], "the temp file is removed");
        assert_eq!(names(&p), ["inside"]);
        // A missing directory: the create step names the temp path.
        let e = write_atomic(
            &d.path().join("nope/x.json"),
            b"data",
            AtomicWrite::PRIVATE_DURABLE,
        )
        .expect_err("must fail");
        assert_eq!(e.op, "create");
        assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::NotFound);
    }
}
