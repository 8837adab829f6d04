//! `docker cp` inside a container's root: every path is resolved with openat2
//! `RESOLVE_IN_ROOT`, so symlinks in the container (even swapped in concurrently) cannot
//! lead outside its root (CVE-2018-15664).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Opens `path` (container-absolute) inside `root` as an `O_PATH` fd.
pub fn open_in_root(root: &Path, path: &str) -> io::Result<OwnedFd> {
    open_at(root, path, false)
}

/// [`open_in_root`]; with `nofollow` a symlink as the last component is opened itself
/// (`O_PATH | O_NOFOLLOW`), every earlier one is still resolved inside the root.
fn open_at(root: &Path, path: &str, nofollow: bool) -> io::Result<OwnedFd> {
    barge_runtime::rootfs::open_path_in_root(root, Path::new(path), nofollow)
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

/// Go's `filepath.Base`: the last element, trailing slashes ignored; `/` for the root.
fn base_name(path: &str) -> String {
    let t = path.trim_end_matches('/');
    match t.rsplit('/').next() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => "/".to_string(),
    }
}

/// Go's `filepath.Clean` of an absolute path: no `.`, no `..` above the root, no `//`.
fn clean_abs(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A container path as dockerd takes it: absolute and cleaned, but keeping a trailing `/`
/// or `/.` (moby's `PreserveTrailingDotOrSeparator`), which asks to follow a last
/// component that is a symlink.
fn docker_abs(path: &str) -> String {
    let mut abs = clean_abs(path);
    let dot = path == "." || path.ends_with("/.");
    if dot && !abs.ends_with("/.") {
        if !abs.ends_with('/') {
            abs.push('/');
        }
        abs.push('.');
    }
    if path.ends_with('/') && !abs.ends_with('/') {
        abs.push('/');
    }
    abs
}

/// Whether the last component is followed when it is a symlink: as in dockerd, only
/// when the path ends in `/` or `/.` (the link itself is copied otherwise, like `cp -P`).
fn follows_last(abs: &str) -> bool {
    abs.ends_with('/') || abs.ends_with("/.")
}

/// Where `path` (container-absolute) lives on the host: the volume or bind mount whose
/// destination holds it (the deepest one), as that mount's source and the path inside it
/// (trailing `/` or `/.` kept), and whether the mount is writable; `None` when it is in the
/// container's own root. Volumes are mounted only inside the container's mount namespace,
/// so `docker cp` reaches them here, as dockerd does by mounting them over the rootfs.
pub fn in_mount<'a>(
    mounts: &'a [crate::model::MountPoint],
    path: &str,
) -> Option<(&'a crate::model::MountPoint, String)> {
    let abs = docker_abs(path);
    let clean = clean_abs(path);
    let m = mounts
        .iter()
        .filter(|m| m.kind != "tmpfs" && !m.source.is_empty())
        .filter(|m| {
            let d = clean_abs(&m.destination);
            d != "/" && (clean == d || clean.starts_with(&format!("{d}/")))
        })
        .max_by_key(|m| clean_abs(&m.destination).len())?;
    let rest = &clean[clean_abs(&m.destination).len()..];
    let suffix = abs.get(clean.len()..).unwrap_or("");
    let inner = format!("/{}{}", rest.trim_start_matches('/'), suffix);
    Some((m, inner.replace("//", "/")))
}

/// lstat of what an `O_PATH` fd refers to (a symlink itself when opened `O_NOFOLLOW`).
fn fstat_fd(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid out buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstatat with an fd we own, an empty NUL-terminated path and AT_EMPTY_PATH.
    let r = unsafe { libc::fstatat(fd.as_raw_fd(), c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// The target of the symlink an `O_PATH | O_NOFOLLOW` fd refers to, as stored.
fn read_link_fd(fd: &OwnedFd) -> io::Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat writes at most buf.len() bytes into buf; an empty path reads the
    // link the fd itself refers to.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

/// Where the symlink at `abs` leads, as a container path (dockerd's `linkTarget`): every
/// link resolved inside the root; a dangling link's target joined lexically to its directory.
fn link_target(root: &Path, abs: &str, link: &Path) -> String {
    let resolved = (|| {
        let fd = open_at(root, abs.trim_end_matches('/'), false).ok()?;
        let real = std::fs::read_link(fd_path(&fd)).ok()?;
        let root = std::fs::canonicalize(root).ok()?;
        let rel = real.strip_prefix(&root).ok()?;
        Some(clean_abs(&rel.to_string_lossy()))
    })();
    resolved.unwrap_or_else(|| {
        let link = link.to_string_lossy();
        if link.starts_with('/') {
            clean_abs(&link)
        } else {
            let dir = abs.trim_end_matches('/');
            let dir = &dir[..dir.rfind('/').unwrap_or(0)];
            clean_abs(&format!("{dir}/{link}"))
        }
    })
}

/// Stats `path` inside `root`, as dockerd does: a symlink as the last component is
/// reported itself (mode with Go's ModeSymlink, the size of its text, and `linkTarget`)
/// unless the path ends in `/` or `/.`.
pub fn stat(root: &Path, path: &str) -> io::Result<PathStat> {
    stat_named(root, path, path)
}

/// [`stat`] of `path` inside `root`, named after `asked` (the path the client gave, which
/// differs from `path` when it is inside a mount: see [`in_mount`]).
pub fn stat_named(root: &Path, path: &str, asked: &str) -> io::Result<PathStat> {
    let abs = docker_abs(path);
    let fd = open_at(root, &abs, !follows_last(&abs))?;
    let st = fstat_fd(&fd)?;
    let link_target = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        link_target(root, &abs, &read_link_fd(&fd)?)
    } else {
        String::new()
    };
    Ok(PathStat {
        name: base_name(&docker_abs(asked)),
        size: st.st_size as u64,
        mode: go_file_mode(st.st_mode),
        mtime: barge_runtime::state::rfc3339(st.st_mtime, st.st_mtime_nsec as u32),
        link_target,
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

/// A tar of `path` inside `root` (a directory's content under its base name). A symlink
/// as the last component is archived as the link (see [`stat`]).
pub fn get(root: &Path, path: &str) -> io::Result<Vec<u8>> {
    get_named(root, path, path)
}

/// [`get`] of `path` inside `root`, its entries named after `asked` (see [`stat_named`]).
pub fn get_named(root: &Path, path: &str, asked: &str) -> io::Result<Vec<u8>> {
    let abs = docker_abs(path);
    let fd = open_at(root, &abs, !follows_last(&abs))?;
    let name = base_name(&docker_abs(asked));
    let name = if name == "/" { ".".to_string() } else { name };
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let st = fstat_fd(&fd)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        let target = read_link_fd(&fd)?;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(st.st_uid.into());
        h.set_gid(st.st_gid.into());
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        b.append_link(&mut h, &name, &target)?;
        return b.into_inner();
    }
    let src = fd_path(&fd);
    let md = std::fs::metadata(&src)?;
    if md.is_dir() && name == "." {
        // A directory's content (`dir/.`): docker clients rebase entries by replacing their
        // leading "." with the destination's name, so the names must be "./" and "./f";
        // the tar crate writes "f", hence a PAX path record for each entry.
        b.append_dir_all(".", &src)?;
        return dot_prefixed(&b.into_inner()?);
    }
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

/// Rewrites an archive so every entry's name starts with `./` (the root is `./`), with a
/// PAX `path` (and `linkpath`) record before each entry; headers and data are kept.
fn dot_prefixed(inner: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(inner);
    for e in a.entries()? {
        let mut e = e?;
        let path = e.path_bytes().into_owned();
        let rest = path.strip_prefix(b"./").unwrap_or(&path);
        let rest = if rest == b"." { &b""[..] } else { rest };
        let mut name = b"./".to_vec();
        name.extend_from_slice(rest);
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let mut records: Vec<(&str, &[u8])> = vec![("path", &name)];
        if let Some(l) = &link {
            records.push(("linkpath", l));
        }
        append_pax(&mut out, &records)?;
        let h = e.header().clone();
        out.append(&h, &mut e)?;
    }
    out.into_inner()
}

/// Appends a PAX extended header (type `x`) whose records apply to the next entry.
fn append_pax(b: &mut tar::Builder<Vec<u8>>, records: &[(&str, &[u8])]) -> io::Result<()> {
    let mut data = Vec::new();
    for (k, v) in records {
        // "<len> <key>=<value>\n", where len counts the whole record, its own digits too.
        let rest = k.len() + v.len() + 3;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_path("PaxHeader")?;
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, &data[..])
}

/// What a failed look-up of `path` in a container means for the client: a missing file
/// (404, dockerd's words; the API adds which container), a file where the path needs a
/// directory (`/etc/passwd/`: 400, the client's mistake), or an internal error.
pub fn path_error(path: &str, e: io::Error) -> crate::Error {
    match e.kind() {
        io::ErrorKind::NotFound => {
            crate::Error::NotFound(format!("Could not find the file {path} in container"))
        }
        io::ErrorKind::NotADirectory => {
            crate::Error::BadRequest(format!("{path}: not a directory"))
        }
        _ => crate::Error::Internal(format!("{path}: {e}")),
    }
}

/// Extracts a tar into the directory `path` inside `root`, confined to it.
pub fn put(root: &Path, path: &str, data: &[u8]) -> crate::Result<()> {
    let fd = open_in_root(root, path).map_err(|e| path_error(path, e))?;
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
    use super::*;

    #[test]
    fn paths_are_taken_as_dockerd_takes_them() {
        assert_eq!(docker_abs("a/b"), "/a/b");
        assert_eq!(docker_abs("/a//b/../c"), "/a/c");
        assert_eq!(docker_abs("/a/b/"), "/a/b/");
        assert_eq!(docker_abs("/a/b/."), "/a/b/.");
        assert_eq!(docker_abs("../../x"), "/x");
        assert_eq!(docker_abs("/"), "/");
        assert_eq!(docker_abs("."), "/.");
        assert!(!follows_last("/a/b"));
        assert!(follows_last("/a/b/") && follows_last("/a/b/.") && follows_last("/"));
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("/a/b/."), ".");
    }

    /// A root with `etc/passwd`, `dir/f`, `abs -> /etc` (absolute: must stay in the root),
    /// `rel -> dir`, `up -> ../../../../etc` (leads above the root: clamped to it),
    /// `dangling -> nowhere/x` and `chain -> abs`.
    fn root_with_links() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        std::fs::create_dir_all(r.join("etc")).expect("etc");
        std::fs::write(r.join("etc/passwd"), "in-root\n").expect("passwd");
        std::fs::create_dir_all(r.join("dir")).expect("dir");
        std::fs::write(r.join("dir/f"), "f\n").expect("f");
        for (l, t) in [
            ("abs", "/etc"),
            ("rel", "dir"),
            ("up", "../../../../etc"),
            ("dangling", "nowhere/x"),
            ("chain", "abs"),
        ] {
            std::os::unix::fs::symlink(t, r.join(l)).expect("symlink");
        }
        t
    }

    fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, String)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let link = e
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (
                    e.path().expect("path").to_string_lossy().into_owned(),
                    e.header().entry_type(),
                    link,
                )
            })
            .collect()
    }

    #[test]
    fn a_symlink_is_reported_and_copied_as_the_link() {
        let t = root_with_links();
        let r = t.path();
        for (path, text, target) in [
            ("/abs", "/etc", "/etc"),
            ("rel", "dir", "/dir"),
            ("/up", "../../../../etc", "/etc"),
            ("/dangling", "nowhere/x", "/nowhere/x"),
            ("/chain", "abs", "/etc"),
        ] {
            let st = stat(r, path).expect(path);
            assert_eq!(st.name, path.trim_start_matches('/'), "{path}");
            assert_eq!(st.mode, (1 << 27) | 0o777, "{path}");
            assert_eq!(st.size, text.len() as u64, "{path}");
            assert_eq!(st.link_target, target, "{path}");
            let e = entries(&get(r, path).expect(path));
            assert_eq!(
                e,
                vec![(
                    path.trim_start_matches('/').to_string(),
                    tar::EntryType::Symlink,
                    text.to_string()
                )],
                "{path}"
            );
        }
    }

    #[test]
    fn a_trailing_slash_or_dot_follows_the_link_inside_the_root() {
        let t = root_with_links();
        let r = t.path();
        for path in ["/abs/", "/abs/.", "/up/.", "/chain/"] {
            let st = stat(r, path).expect(path);
            assert_eq!(st.mode & (1 << 31), 1 << 31, "{path} is the root's etc dir");
            assert_eq!(st.link_target, "", "{path}");
            let e = entries(&get(r, path).expect(path));
            // The root's etc/passwd, never the host's.
            assert!(
                e.iter().any(|(p, _, _)| p.ends_with("passwd")),
                "{path}: {e:?}"
            );
            let data = get(r, path).expect(path);
            let mut a = tar::Archive::new(&data[..]);
            for en in a.entries().expect("entries") {
                let mut en = en.expect("entry");
                if en.path().expect("p").ends_with("passwd") {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut en, &mut s).expect("read");
                    assert_eq!(s, "in-root\n");
                }
            }
        }
        assert_eq!(base_name("/abs/."), stat(r, "/abs/.").expect("st").name);
        // A directory's content: "./" then "./name", as docker clients rebase them.
        let long = "l".repeat(150);
        std::fs::write(r.join("dir").join(&long), "x").expect("long");
        std::os::unix::fs::symlink("f", r.join("dir/s")).expect("symlink");
        let mut e = entries(&get(r, "/rel/.").expect("get"));
        e.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            e,
            vec![
                ("./".into(), tar::EntryType::Directory, String::new()),
                ("./f".into(), tar::EntryType::Regular, String::new()),
                (format!("./{long}"), tar::EntryType::Regular, String::new()),
                ("./s".into(), tar::EntryType::Symlink, "f".into()),
            ]
        );
        assert!(stat(r, "/dangling/").is_err());
        // Through a link in the middle of a path, also confined.
        assert_eq!(stat(r, "/up/passwd").expect("st").size, 8);
    }
    #[test]
    fn go_file_modes() {
        assert_eq!(super::go_file_mode(0o40755), (1 << 31) | 0o755);
        assert_eq!(super::go_file_mode(0o41777), (1 << 31) | (1 << 20) | 0o777);
        assert_eq!(super::go_file_mode(0o100644), 0o644);
        assert_eq!(super::go_file_mode(0o104755), (1 << 23) | 0o755);
        assert_eq!(super::go_file_mode(0o120777), (1 << 27) | 0o777);
    }
}
