//! Small helpers over cgroupfs files.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::CgroupError;

/// Maps an I/O error on `path` to [`CgroupError::Io`].
pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `value` to `file` in one write(2), naming both on error.
pub(crate) fn write(file: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(file, value).map_err(|source| CgroupError::Write {
        file: file.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// Reads `file` whole.
pub(crate) fn read(file: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(file).map_err(io(file))
}

/// Reads `file` if it exists.
pub(crate) fn read_opt(file: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(file)(e)),
    }
}

/// Parses a number as cgroup files print it; `max` (v2) reads as `u64::MAX`.
pub(crate) fn parse_u64(file: &Path, s: &str) -> Result<u64, CgroupError> {
    let t = s.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| CgroupError::Parse {
        file: file.to_path_buf(),
        value: t.to_string(),
    })
}

/// Reads a single-number file, 0 when it does not exist.
pub(crate) fn read_u64_opt(file: &Path) -> Result<u64, CgroupError> {
    match read_opt(file)? {
        Some(s) => parse_u64(file, &s),
        None => Ok(0),
    }
}

/// The value of `key` in a flat keyed file (`key value` per line, e.g. memory.stat).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next().and_then(|v| v.parse().ok()))
            .flatten()
    })
}

/// Makes `dir` and its missing parents; `init` runs on each new level (v1 cpuset copies its
/// parent's cpus and mems). Returns the directories made, outermost first.
pub(crate) fn make_dirs(
    dir: &Path,
    init: &dyn Fn(&Path) -> Result<(), CgroupError>,
) -> Result<Vec<PathBuf>, CgroupError> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.exists() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    let mut made = Vec::new();
    for m in missing.iter().rev() {
        match std::fs::create_dir(m) {
            Ok(()) => made.push(m.clone()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(m)(e)),
        }
        init(m)?;
    }
    Ok(made)
}

/// Removes the cgroup directory `dir` and any cgroups under it, deepest first, retrying
/// while the kernel answers EBUSY (a dead task leaves its cgroup a moment late).
pub(crate) fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(dir)(e)),
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    let mut nap = Duration::from_millis(1);
    for _ in 0..8 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(nap);
                nap *= 2;
            }
            Err(e) => return Err(io(dir)(e)),
        }
    }
    std::fs::remove_dir(dir).map_err(io(dir))
}
