//! `docker cp` inside a container's root: every path is resolved with openat2
//! `RESOLVE_IN_ROOT`, so symlinks in the container (even swapped in concurrently) cannot
//! lead outside its root (CVE-2018-15664).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::Serialize;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens `path` (container-absolute) inside `root` as an `O_PATH` fd.
pub fn open_in_root(root: &Path, path: &str) -> io::Result<OwnedFd> {
    let rootf = std::fs::File::open(root)?;
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let c = std::ffi::CString::new(rel).map_err(io::Error::other)?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 with a valid dirfd, NUL-terminated path and open_how of the right size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            rootf.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by openat2 and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Docker's `X-Docker-Container-Path-Stat`.
#[derive(Debug, Clone, Serialize)]
pub struct PathStat {
    /// Base name.
    pub name: String,
    /// Size.
    pub size: u64,
    /// Go's os.FileMode.
    pub mode: u32,
    /// Modification time (RFC 3339).
    pub mtime: String,
    /// Symlink target.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

fn base_name(path: &str) -> String {
    let t = path.trim_end_matches('/');
    match t.rsplit('/').next() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => "/".to_string(),
    }
}

/// Stats `path` inside `root`.
pub fn stat(root: &Path, path: &str) -> io::Result<PathStat> {
    use std::os::unix::fs::MetadataExt;
    let fd = open_in_root(root, path)?;
    let md = std::fs::metadata(fd_path(&fd))?;
    Ok(PathStat {
        name: base_name(path),
        size: md.len(),
        mode: go_file_mode(md.mode()),
        mtime: barge_runtime::state::rfc3339(md.mtime(), md.mtime_nsec() as u32),
        link_target: String::new(),
    })
}

/// A `st_mode` as Go's `os.FileMode`: permission bits, then the type and special bits
/// where Go keeps them (ModeDir 1<<31, ModeSymlink 1<<27, ModeNamedPipe 1<<25, ModeSocket
/// 1<<24, ModeSetuid 1<<23, ModeSetgid 1<<22, ModeCharDevice 1<<21, ModeSticky 1<<20,
/// ModeDevice 1<<26), which docker clients test to tell a directory from a file.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut mode = st_mode & 0o777;
    match st_mode & libc::S_IFMT {
        libc::S_IFDIR => mode |= 1 << 31,
        libc::S_IFLNK => mode |= 1 << 27,
        libc::S_IFIFO => mode |= 1 << 25,
        libc::S_IFSOCK => mode |= 1 << 24,
        libc::S_IFBLK => mode |= 1 << 26,
        libc::S_IFCHR => mode |= (1 << 26) | (1 << 21),
        _ => {}
    }
    if st_mode & libc::S_ISUID != 0 {
        mode |= 1 << 23;
    }
    if st_mode & libc::S_ISGID != 0 {
        mode |= 1 << 22;
    }
    if st_mode & libc::S_ISVTX != 0 {
        mode |= 1 << 20;
    }
    mode
}

/// A tar of `path` inside `root` (a directory's content under its base name).
pub fn get(root: &Path, path: &str) -> io::Result<Vec<u8>> {
    let fd = open_in_root(root, path)?;
    let src = fd_path(&fd);
    let md = std::fs::metadata(&src)?;
    let name = base_name(path);
    let name = if name == "/" { ".".to_string() } else { name };
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    if md.is_dir() {
        b.append_dir_all(&name, &src)?;
    } else {
        let mut f = std::fs::File::open(&src)?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata(&md);
        b.append_data(&mut h, &name, &mut f)?;
    }
    b.into_inner()
}

/// Extracts a tar into the directory `path` inside `root`, confined to it.
pub fn put(root: &Path, path: &str, data: &[u8]) -> crate::Result<()> {
    let fd = open_in_root(root, path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            crate::Error::NotFound(format!("Could not find the file {path} in container"))
        }
        _ => crate::Error::Internal(format!("{path}: {e}")),
    })?;
    let dst = fd_path(&fd);
    if !std::fs::metadata(&dst).map(|m| m.is_dir()).unwrap_or(false) {
        return Err(crate::Error::BadRequest(format!(
            "extraction point is not a directory: {path}"
        )));
    }
    // Reopen as a real directory fd so the extraction is relative to it.
    let real = std::fs::File::open(&dst)?;
    let target = PathBuf::from(format!("/proc/self/fd/{}", real.as_raw_fd()));
    barge_image::unpack::unpack(
        data,
        &target,
        "archive",
        &barge_image::unpack::UnpackOptions::default(),
    )
    .map_err(|e| crate::Error::BadRequest(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_file_modes() {
        assert_eq!(super::go_file_mode(0o40755), (1 << 31) | 0o755);
        assert_eq!(super::go_file_mode(0o41777), (1 << 31) | (1 << 20) | 0o777);
        assert_eq!(super::go_file_mode(0o100644), 0o644);
        assert_eq!(super::go_file_mode(0o104755), (1 << 23) | 0o755);
        assert_eq!(super::go_file_mode(0o120777), (1 << 27) | 0o777);
    }
}
