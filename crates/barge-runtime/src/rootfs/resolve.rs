//! Path resolution confined to a root directory (openat2 `RESOLVE_IN_ROOT`), with creation
//! of missing components inside that root, and fd-based mount targets.
//!
//! A symlink in the image (`etc -> /`, `x -> ../../../host`) is resolved as if the rootfs
//! were `/`, so nothing resolved here can name a host path (CVE-2021-30465 class).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::RootfsError;

/// At most this many symlinks are followed while creating a path (as the kernel's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// What to create at the end of a missing path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// A directory (mode 0755).
    Dir,
    /// An empty regular file (mode 0644), e.g. a bind-mount target for a file source.
    File,
}

/// `/proc/self/fd/N` for `fd`: a mount(2) target or source that names exactly the file the fd
/// refers to, without any path lookup an attacker could redirect.
pub(crate) fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` (absolute, on the host) as an `O_PATH` directory fd.
pub(crate) fn open_dir_path(path: &Path) -> Result<OwnedFd, RootfsError> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::sys("open", path, e))
}

/// The components of `path` relative to the root: `/`, `.` dropped, `..` kept (the kernel
/// clamps it at the root).
pub(crate) fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn join(components: &[OsString]) -> PathBuf {
    if components.is_empty() {
        return PathBuf::from(".");
    }
    let mut p = PathBuf::new();
    for c in components {
        p.push(c);
    }
    p
}

/// openat2 with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` (plus `extra`) relative to `root`:
/// every symlink and `..` on the way is resolved as if `root` were `/`, so the result never
/// names a file outside it, even while the tree changes under us (CVE-2018-15664 class).
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    extra: ResolveFlag,
) -> nix::Result<OwnedFd> {
    let rel: PathBuf = join(&components(path));
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS | extra);
    loop {
        match openat2(root, &rel, how) {
            // openat2 returns EAGAIN when a rename raced with a ".." lookup: retry.
            Err(Errno::EAGAIN) => continue,
            other => return other,
        }
    }
}

/// [`open_in_root`] for callers outside the runtime (`docker cp`): opens `path` inside the
/// directory `root` as an `O_PATH` fd; with `nofollow` a symlink as the last component is
/// opened itself, every earlier one is still resolved inside the root.
pub fn open_path_in_root(root: &Path, path: &Path, nofollow: bool) -> std::io::Result<OwnedFd> {
    let rootf = std::fs::File::open(root)?;
    let mut flags = OFlag::O_PATH;
    if nofollow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let fd = open_in_root(rootf.as_fd(), path, flags, ResolveFlag::empty())?;
    // A trailing slash asks for a directory, as it does of open(2).
    if path.as_os_str().as_bytes().ends_with(b"/")
        && file_type(&nix::sys::stat::fstat(fd.as_fd())?) != libc::S_IFDIR
    {
        return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    Ok(fd)
}

/// Opens `path` inside `root` as an `O_PATH` fd, `None` if it does not exist.
pub(crate) fn lookup_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
) -> Result<Option<OwnedFd>, RootfsError> {
    match open_in_root(root, path, OFlag::O_PATH, ResolveFlag::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(RootfsError::sys("resolve in rootfs", path, e)),
    }
}

/// Resolves `path` inside `root` and returns an `O_PATH` fd to it, creating the missing
/// components inside the root: directories, and at the end `create`. A dangling symlink on
/// the way is followed (inside the root) and its target created, as `mkdir -p` would through
/// a chroot.
pub(crate) fn mkdir_all_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    create: Create,
) -> Result<OwnedFd, RootfsError> {
    let err = |e: Errno| RootfsError::sys("create in rootfs", path, e);
    let mut comps = components(path);
    let mut links = 0usize;
    'restart: loop {
        match open_in_root(root, &join(&comps), OFlag::O_PATH, ResolveFlag::empty()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(err(e)),
        }
        // Find the first missing component and create it in its (resolved) parent.
        let mut parent =
            open_in_root(root, Path::new("."), OFlag::O_PATH, ResolveFlag::empty()).map_err(err)?;
        let mut i = 0;
        while i < comps.len() {
            match open_in_root(
                root,
                &join(&comps[..=i]),
                OFlag::O_PATH,
                ResolveFlag::empty(),
            ) {
                Ok(fd) => {
                    parent = fd;
                    i += 1;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(err(e)),
            }
            let name: &OsStr = &comps[i];
            match nix::fcntl::readlinkat(&parent, name) {
                Ok(target) => {
                    // A dangling symlink: continue with its target, still inside the root.
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(err(Errno::ELOOP));
                    }
                    let target = PathBuf::from(target);
                    let mut next = if target.is_absolute() {
                        Vec::new()
                    } else {
                        comps[..i].to_vec()
                    };
                    next.extend(components(&target));
                    next.extend_from_slice(&comps[i + 1..]);
                    comps = next;
                    continue 'restart;
                }
                Err(Errno::ENOENT) => {}
                // Not a symlink: it appeared meanwhile; look again.
                Err(Errno::EINVAL) => continue,
                Err(e) => return Err(err(e)),
            }
            if name.as_bytes() == b".." {
                // ".." of an existing directory always exists; ENOENT means it was removed.
                return Err(err(Errno::ENOENT));
            }
            let last = i + 1 == comps.len();
            let made = if last && create == Create::File {
                nix::fcntl::openat(
                    &parent,
                    name,
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o644),
                )
                .map(drop)
            } else {
                nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o755))
            };
            match made {
                // EEXIST: someone else made it meanwhile; look again.
                Ok(()) | Err(Errno::EEXIST) => continue,
                Err(e) => return Err(err(e)),
            }
        }
        // Every component exists now, but the whole path did not resolve a moment ago:
        // start over (bounded by the symlink count only through restarts above).
        links += 1;
        if links > MAX_SYMLINKS {
            return Err(err(Errno::ELOOP));
        }
    }
}

/// Opens the parent directory of `path` inside `root` (creating it) and returns it with the
/// last component's name. Used where the last component itself must not be followed.
pub(crate) fn parent_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
) -> Result<(OwnedFd, OsString), RootfsError> {
    let mut comps = components(path);
    let Some(name) = comps.pop() else {
        return Err(RootfsError::Refused {
            path: path.to_path_buf(),
            reason: "the path names the root itself".into(),
        });
    };
    if name.as_bytes() == b".." {
        return Err(RootfsError::Refused {
            path: path.to_path_buf(),
            reason: "the path ends in \"..\"".into(),
        });
    }
    let parent = mkdir_all_in_root(root, &join(&comps), Create::Dir)?;
    Ok((parent, name))
}

/// The file type and rdev of `name` in `dir`, not following a symlink; `None` if missing.
pub(crate) fn lstat_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
) -> nix::Result<Option<nix::sys::stat::FileStat>> {
    match nix::sys::stat::fstatat(dir.as_fd(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `st_mode`'s file type bits.
pub(crate) fn file_type(st: &nix::sys::stat::FileStat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn components_keep_dotdot_and_drop_root() {
        let c = components(Path::new("/a/./b/../c/"));
        assert_eq!(c, vec!["a", "b", "..", "c"]);
        assert!(components(Path::new("/")).is_empty());
    }

    #[test]
    fn creation_stays_inside_the_root_through_symlinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).expect("mkdir root");
        std::fs::create_dir_all(&outside).expect("mkdir outside");
        symlink("/", root.join("abs")).expect("symlink");
        symlink("../../../../../..", root.join("rel")).expect("symlink");
        symlink(&outside, root.join("host")).expect("symlink");
        symlink("/made/by/link", root.join("dangling")).expect("symlink");
        let rootfd = open_dir_path(&root).expect("open root");

        let fd = mkdir_all_in_root(rootfd.as_fd(), Path::new("/abs/x/y"), Create::Dir)
            .expect("mkdir abs");
        drop(fd);
        assert!(root.join("x/y").is_dir());
        mkdir_all_in_root(rootfd.as_fd(), Path::new("/rel/z"), Create::File).expect("file");
        assert!(root.join("z").is_file());
        mkdir_all_in_root(rootfd.as_fd(), Path::new("/host/w"), Create::Dir).expect("host");
        assert!(
            !outside.join("w").exists(),
            "escaped through an absolute symlink"
        );
        assert!(root
            .join(outside.strip_prefix("/").expect("abs"))
            .join("w")
            .is_dir());
        mkdir_all_in_root(rootfd.as_fd(), Path::new("/dangling/q"), Create::Dir).expect("dangling");
        assert!(root.join("made/by/link/q").is_dir());
        assert!(lookup_in_root(rootfd.as_fd(), Path::new("/nope"))
            .expect("lookup")
            .is_none());
    }

    #[test]
    fn open_path_in_root_confines_links_and_honours_a_trailing_slash() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("d")).expect("mkdir");
        std::fs::write(root.join("f"), b"inside").expect("file");
        std::fs::write(tmp.path().join("f"), b"outside").expect("host file");
        symlink("../../f", root.join("d/up")).expect("symlink");
        symlink("/f", root.join("abs")).expect("symlink");
        let inside =
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(root.join("f")).expect("stat"));
        for p in ["/d/up", "abs", "/../../f", "d/../../f"] {
            let fd = open_path_in_root(&root, Path::new(p), false).expect(p);
            let st = nix::sys::stat::fstat(fd.as_fd()).expect("fstat");
            assert_eq!(st.st_ino, inside, "{p} left the root");
        }
        // With nofollow the link itself is opened.
        let fd = open_path_in_root(&root, Path::new("/abs"), true).expect("link");
        let st = nix::sys::stat::fstat(fd.as_fd()).expect("fstat");
        assert_eq!(file_type(&st), libc::S_IFLNK);
        let e = open_path_in_root(&root, Path::new("/f/"), false).expect_err("file/");
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
        assert!(open_path_in_root(&root, Path::new("/d/"), false).is_ok());
    }

    #[test]
    fn symlink_loops_are_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        symlink("b", tmp.path().join("a")).expect("symlink");
        symlink("a", tmp.path().join("b")).expect("symlink");
        let rootfd = open_dir_path(tmp.path()).expect("open root");
        let e = mkdir_all_in_root(rootfd.as_fd(), Path::new("/a/x"), Create::Dir)
            .expect_err("loop must fail");
        assert!(e.to_string().contains("/a/x"), "{e}");
    }
}
