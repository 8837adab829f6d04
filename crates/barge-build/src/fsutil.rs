//! Confined file access for COPY/ADD: sources are opened beneath the context root
//! (`openat2` `RESOLVE_BENEATH`: `..` and symlinks leading out fail), destinations inside
//! the build rootfs (`RESOLVE_IN_ROOT`: symlinks resolve as in the container), and the
//! last component of everything written is created with `O_NOFOLLOW`/`O_EXCL`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: stay under the directory, or fail (EXDEV).
pub(crate) const BENEATH: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
/// `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`: the directory is `/` for the resolution.
pub(crate) const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
/// No symlink at all on the way.
pub(crate) const NO_SYMLINKS: u64 = libc::RESOLVE_NO_SYMLINKS;

pub(crate) fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// `openat2(dir, path, flags | O_CLOEXEC, resolve)`; an empty path opens `dir` itself.
pub(crate) fn openat2(dir: RawFd, path: &str, flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    let p = if path.is_empty() { "." } else { path };
    let c = cstr(p.as_bytes())?;
    // SAFETY: open_how is plain old data; zeroed is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & libc::O_CREAT != 0 { 0o600 } else { 0 };
    how.resolve = resolve;
    // SAFETY: c is NUL-terminated, how lives across the call and its size is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Opens a directory by host path (the roots: context, mounted rootfs).
pub(crate) fn open_root(p: &Path) -> io::Result<OwnedFd> {
    let c = cstr(p.as_os_str().as_bytes())?;
    // SAFETY: c is NUL-terminated.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)` (empty name: the fd itself).
pub(crate) fn lstat_at(dir: RawFd, name: &str) -> io::Result<libc::stat> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: stat is plain old data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let flags = if name.is_empty() {
        libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    // SAFETY: c is NUL-terminated, st is writable.
    if unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `fstat(fd)`.
pub(crate) fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    lstat_at(fd, "")
}

/// The names in directory `fd` (sorted; `.`/`..` left out).
pub(crate) fn read_names(fd: RawFd) -> io::Result<Vec<String>> {
    // Reading through /proc/self/fd keeps the resolution on the fd we hold.
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/self/fd/{fd}"))? {
        let e = e?;
        match e.file_name().into_string() {
            Ok(n) => out.push(n),
            Err(n) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("file name {n:?} is not UTF-8"),
                ))
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The target of symlink `name` in `dir`.
pub(crate) fn readlink_at(dir: RawFd, name: &str) -> io::Result<Vec<u8>> {
    let c = cstr(name.as_bytes())?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: c is NUL-terminated, buf is writable for its length.
    let n = unsafe { libc::readlinkat(dir, c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// The path (as the host sees it) of an open fd.
pub(crate) fn fd_path(fd: RawFd) -> io::Result<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
}

/// Creates directory `name` in `dir` (mode `mode`), fine if a directory is already there;
/// a non-directory in the way is replaced. Returns whether it was created.
pub(crate) fn mkdir_at(dir: RawFd, name: &str, mode: u32) -> io::Result<bool> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: c is NUL-terminated.
    if unsafe { libc::mkdirat(dir, c.as_ptr(), mode) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EEXIST) {
        return Err(e);
    }
    let st = lstat_at(dir, name)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Ok(false);
    }
    unlink_at(dir, name, false)?;
    // SAFETY: as above.
    if unsafe { libc::mkdirat(dir, c.as_ptr(), mode) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}

/// `unlinkat`.
pub(crate) fn unlink_at(dir: RawFd, name: &str, is_dir: bool) -> io::Result<()> {
    let c = cstr(name.as_bytes())?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: c is NUL-terminated.
    if unsafe { libc::unlinkat(dir, c.as_ptr(), flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes a non-directory at `name` in `dir` if there is one; errors if a directory is
/// in the way (`what` names the destination in the message).
pub(crate) fn clear_for_file(dir: RawFd, name: &str, what: &str) -> io::Result<()> {
    match lstat_at(dir, name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("cannot overwrite directory {what} with a non-directory"),
        )),
        Ok(_) => unlink_at(dir, name, false),
    }
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn lchown_at(dir: RawFd, name: &str, uid: u32, gid: u32) -> io::Result<()> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: c is NUL-terminated.
    if unsafe { libc::fchownat(dir, c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fchown` + `fchmod` on an open fd (chown first: it clears set-id bits).
pub(crate) fn set_owner_mode(fd: &OwnedFd, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscalls on an fd we own.
    unsafe {
        if libc::fchown(fd.as_raw_fd(), uid, gid) < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::fchmod(fd.as_raw_fd(), mode & 0o7777) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sets atime and mtime of `name` in `dir` (not following a symlink).
pub(crate) fn set_times_at(dir: RawFd, name: &str, st: &libc::stat) -> io::Result<()> {
    let c = cstr(name.as_bytes())?;
    let ts = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    // SAFETY: c is NUL-terminated and ts holds two timespecs.
    if unsafe { libc::utimensat(dir, c.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `symlinkat(target, dir, name)`.
pub(crate) fn symlink_at(target: &[u8], dir: RawFd, name: &str) -> io::Result<()> {
    let t = cstr(target)?;
    let c = cstr(name.as_bytes())?;
    // SAFETY: both NUL-terminated.
    if unsafe { libc::symlinkat(t.as_ptr(), dir, c.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Cleans a `/`-separated path lexically into its components; `None` if `..` climbs above
/// the start. Leading `/` is ignored (paths are relative to a root).
pub(crate) fn clean(p: &str) -> Option<Vec<&str>> {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Opens (creating as needed, mode 0755, owned by `owner`) directory `rel` in the rootfs
/// `root`, resolving symlinks on the way as the container would (inside the root); a
/// dangling symlink on the way gets its target created (inside the root), as Docker does.
pub(crate) fn mkdir_all_in_root(
    root: RawFd,
    rel: &str,
    owner: Option<(u32, u32)>,
) -> io::Result<OwnedFd> {
    mkdir_all_depth(root, rel, owner, 0)
}

fn mkdir_all_depth(
    root: RawFd,
    rel: &str,
    owner: Option<(u32, u32)>,
    depth: u32,
) -> io::Result<OwnedFd> {
    if depth > 16 {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let parts = clean(rel).unwrap_or_default();
    let mut cur = openat2(root, "", libc::O_PATH | libc::O_DIRECTORY, IN_ROOT)?;
    let mut prefix = String::new();
    for part in parts {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        match openat2(root, &prefix, libc::O_PATH | libc::O_DIRECTORY, IN_ROOT) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let st = lstat_at(cur.as_raw_fd(), part).ok();
                if st.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK) {
                    // Dangling: make its target, resolved from where the link is.
                    let target = String::from_utf8(readlink_at(cur.as_raw_fd(), part)?)
                        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                    let path = if target.starts_with('/') {
                        target
                    } else {
                        let base = fd_path(cur.as_raw_fd())?;
                        let root_path = fd_path(root)?;
                        let base = base
                            .strip_prefix(&root_path)
                            .map_err(|_| io::Error::from_raw_os_error(libc::EXDEV))?
                            .to_string_lossy()
                            .into_owned();
                        format!("{base}/{target}")
                    };
                    cur = mkdir_all_depth(root, &path, owner, depth + 1)?;
                    continue;
                }
                mkdir_at(cur.as_raw_fd(), part, 0o755)?;
                if let Some((u, g)) = owner {
                    lchown_at(cur.as_raw_fd(), part, u, g)?;
                }
                cur = openat2(
                    cur.as_raw_fd(),
                    part,
                    libc::O_PATH | libc::O_DIRECTORY,
                    BENEATH | NO_SYMLINKS,
                )?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// Reads a small file of the rootfs (`/etc/passwd`), resolved inside it; `None` if absent.
pub(crate) fn read_in_root(root: RawFd, rel: &str) -> io::Result<Option<Vec<u8>>> {
    match openat2(root, rel, libc::O_RDONLY, IN_ROOT) {
        Ok(fd) => {
            let mut f = std::fs::File::from(fd);
            let mut v = Vec::new();
            io::Read::read_to_end(&mut io::Read::take(&mut f, 4 << 20), &mut v)?;
            Ok(Some(v))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `name` matches the glob `pat` (`*`, `?`, `[...]`, `\` escapes; no `/`).
pub(crate) fn glob_match(pat: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| m(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && m(&p[1..], &n[1..]),
            Some('[') => {
                let Some(&c) = n.first() else { return false };
                let mut i = 1;
                let negate = matches!(p.get(1), Some('^') | Some('!'));
                if negate {
                    i += 1;
                }
                let mut hit = false;
                let mut first = true;
                while i < p.len() && (first || p[i] != ']') {
                    first = false;
                    let lo = if p[i] == '\\' && i + 1 < p.len() {
                        i += 1;
                        p[i]
                    } else {
                        p[i]
                    };
                    if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                        if lo <= c && c <= p[i + 2] {
                            hit = true;
                        }
                        i += 3;
                    } else {
                        if lo == c {
                            hit = true;
                        }
                        i += 1;
                    }
                }
                if i >= p.len() {
                    return false; // unterminated class
                }
                hit != negate && m(&p[i + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => !n.is_empty() && n[0] == p[1] && m(&p[2..], &n[1..]),
            Some(&c) => !n.is_empty() && n[0] == c && m(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

/// Whether a path component has glob characters.
pub(crate) fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}
