//! After the root switch: readonly and masked paths, a readonly root, the console.
//!
//! Paths are resolved inside the new root with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` and
//! mounted through `/proc/self/fd/N` when the container's /proc is a real procfs, so a
//! path swapped after the check is not what gets mounted on.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use nix::sys::statfs::PROC_SUPER_MAGIC;

use super::resolve::{self, fd_path, lookup_in_root, lstat_at, open_in_root, parent_in_root};
use super::{sys, RootfsError};

/// The new root and how to name files for mount(2).
pub(crate) struct NewRoot {
    root: OwnedFd,
    /// /proc in the container is procfs: `/proc/self/fd/N` names an fd's file.
    proc_ok: bool,
}

impl NewRoot {
    /// Opens `/` (the container's root after the switch).
    pub fn open() -> Result<Self, RootfsError> {
        let root = resolve::open_dir_path(Path::new("/"))?;
        let proc_ok = open_in_root(
            root.as_fd(),
            Path::new("/proc"),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            ResolveFlag::RESOLVE_NO_SYMLINKS,
        )
        .ok()
        .and_then(|fd| sys::fs_type(fd.as_fd()).ok())
            == Some(PROC_SUPER_MAGIC);
        Ok(NewRoot { root, proc_ok })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The name to give mount(2) for `fd`, which was resolved from `path`. Without a procfs,
    /// the path itself: after the root switch every lookup stays in the container's root.
    fn name(&self, fd: &OwnedFd, path: &Path) -> PathBuf {
        if self.proc_ok {
            fd_path(fd)
        } else {
            path.to_path_buf()
        }
    }
}

/// Makes `path` readonly: a bind on itself, then a readonly bind remount that keeps its other
/// flags. A missing path is skipped.
pub(crate) fn readonly_path(r: &NewRoot, path: &Path) -> Result<(), RootfsError> {
    let Some(fd) = lookup_in_root(r.fd(), path)? else {
        return Ok(());
    };
    let name = r.name(&fd, path);
    sys::mount(
        Some(&name),
        &name,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(|e| RootfsError::sys("bind readonly path", path, e))?;
    drop(fd);
    let fresh = lookup_in_root(r.fd(), path)?
        .ok_or_else(|| RootfsError::sys("reopen", path, Errno::ENOENT))?;
    let name = r.name(&fresh, path);
    sys::remount_bind(
        fresh.as_fd(),
        &name,
        MsFlags::MS_RDONLY,
        MsFlags::empty(),
        false,
        true,
    )
    .map_err(|e| RootfsError::sys("remount readonly", path, e))
}

/// Opens /dev/null of the container and checks it is the real one (char 1:3, no symlink):
/// masking with a /dev/null swapped for a symlink or another file would bind that over the
/// masked path (CVE-2025-31133 class).
pub(crate) fn checked_dev_null(r: &NewRoot) -> Result<OwnedFd, RootfsError> {
    let p = Path::new("/dev/null");
    let fd = match open_in_root(r.fd(), p, OFlag::O_PATH, ResolveFlag::RESOLVE_NO_SYMLINKS) {
        Ok(fd) => fd,
        Err(Errno::ELOOP) => {
            return Err(RootfsError::Refused {
                path: p.to_path_buf(),
                reason: "/dev/null is a symlink in the container; refusing to mask paths with it"
                    .into(),
            })
        }
        Err(e) => return Err(RootfsError::sys("open", p, e)),
    };
    let st = nix::sys::stat::fstat(&fd).map_err(|e| RootfsError::sys("stat", p, e))?;
    let rdev = st.st_rdev;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || nix::sys::stat::major(rdev) != 1
        || nix::sys::stat::minor(rdev) != 3
    {
        return Err(RootfsError::Refused {
            path: p.to_path_buf(),
            reason: format!(
                "/dev/null is not the null device (mode {:o}, rdev {}:{}); refusing to mask paths with it",
                st.st_mode,
                nix::sys::stat::major(rdev),
                nix::sys::stat::minor(rdev)
            ),
        });
    }
    Ok(fd)
}

/// Masks `path`: /dev/null over a file, an empty readonly tmpfs over a directory. A missing
/// path is skipped. `null` is opened on first need.
pub(crate) fn mask_path(
    r: &NewRoot,
    path: &Path,
    null: &mut Option<OwnedFd>,
) -> Result<(), RootfsError> {
    let Some(fd) = lookup_in_root(r.fd(), path)? else {
        return Ok(());
    };
    let st = nix::sys::stat::fstat(&fd).map_err(|e| RootfsError::sys("stat", path, e))?;
    let name = r.name(&fd, path);
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        // An empty readonly tmpfs as small as tmpfs gets; some kernels refuse nr_inodes=1.
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        let tmpfs = |data: &str| {
            sys::mount(
                Some(Path::new("tmpfs")),
                &name,
                Some("tmpfs"),
                flags,
                Some(data),
            )
        };
        return tmpfs("nr_blocks=1,nr_inodes=1,mode=755")
            .or_else(|_| tmpfs("nr_blocks=1,nr_inodes=2,mode=755"))
            .map_err(|e| RootfsError::sys("mask directory", path, e));
    }
    if null.is_none() {
        *null = Some(checked_dev_null(r)?);
    }
    let Some(null_fd) = null.as_ref() else {
        return Err(RootfsError::sys(
            "open",
            Path::new("/dev/null"),
            Errno::ENOENT,
        ));
    };
    let src = r.name(null_fd, Path::new("/dev/null"));
    sys::mount(Some(&src), &name, None, MsFlags::MS_BIND, None)
        .map_err(|e| RootfsError::sys("mask file", path, e))
}

/// Remounts the root readonly (keeping its other flags).
pub(crate) fn readonly_root(r: &NewRoot) -> Result<(), RootfsError> {
    sys::remount_bind(
        r.fd(),
        Path::new("/"),
        MsFlags::MS_RDONLY,
        MsFlags::empty(),
        false,
        true,
    )
    .map_err(|e| RootfsError::sys("remount readonly", Path::new("/"), e))
}

/// See [`super::mount_console`].
pub(crate) fn mount_console(pty_slave: &Path) -> Result<(), RootfsError> {
    let r = NewRoot::open()?;
    let src = open_in_root(
        r.fd(),
        pty_slave,
        OFlag::O_PATH,
        ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
    .map_err(|e| RootfsError::sys("open pty", pty_slave, e))?;
    console_from(&r, src.as_fd(), pty_slave)
}

/// See [`super::mount_console_fd`].
pub(crate) fn mount_console_fd(pty: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let r = NewRoot::open()?;
    if !r.proc_ok {
        // Without procfs an fd cannot be named to mount(2).
        return Err(RootfsError::Refused {
            path: PathBuf::from("/proc"),
            reason: "binding the console from an fd needs procfs mounted at /proc".into(),
        });
    }
    console_from(&r, pty, Path::new("console pty"))
}

/// UNIX98 pty slaves have majors 136..=143.
fn is_pty_slave(st: &nix::sys::stat::FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR
        && (136..=143).contains(&nix::sys::stat::major(st.st_rdev))
}

fn console_from(r: &NewRoot, src: BorrowedFd<'_>, src_name: &Path) -> Result<(), RootfsError> {
    let console = Path::new("/dev/console");
    let (dev, name) = parent_in_root(r.fd(), console)?;
    match lstat_at(dev.as_fd(), &name).map_err(|e| RootfsError::sys("stat", console, e))? {
        Some(st) if resolve::file_type(&st) == libc::S_IFLNK => {
            return Err(RootfsError::Refused {
                path: console.to_path_buf(),
                reason: "/dev/console is a symlink in the container".into(),
            })
        }
        Some(st) if resolve::file_type(&st) == libc::S_IFDIR => {
            return Err(RootfsError::Refused {
                path: console.to_path_buf(),
                reason: "/dev/console is a directory in the container".into(),
            })
        }
        Some(_) => {}
        None => {
            // An empty 0666 file to bind on, whatever the umask (as runc).
            let old = nix::sys::stat::umask(Mode::empty());
            let made = nix::fcntl::openat(
                &dev,
                name.as_os_str(),
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o666),
            );
            nix::sys::stat::umask(old);
            match made {
                Ok(f) => {
                    nix::sys::stat::fchmod(&f, Mode::from_bits_truncate(0o666))
                        .map_err(|e| RootfsError::sys("chmod", console, e))?;
                }
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(RootfsError::sys("create", console, e)),
            }
        }
    }
    let target = open_in_root(
        dev.as_fd(),
        Path::new(&name),
        OFlag::O_PATH,
        ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
    .map_err(|e| match e {
        Errno::ELOOP => RootfsError::Refused {
            path: console.to_path_buf(),
            reason: "/dev/console became a symlink".into(),
        },
        e => RootfsError::sys("open", console, e),
    })?;
    // The source must be a pty slave on a devpts, not some other device or file.
    let st = nix::sys::stat::fstat(src).map_err(|e| RootfsError::sys("stat", src_name, e))?;
    let on_devpts = sys::fs_type(src).ok() == Some(sys::DEVPTS_SUPER_MAGIC);
    if !is_pty_slave(&st) || !on_devpts {
        return Err(RootfsError::Refused {
            path: src_name.to_path_buf(),
            reason: "the console's pty is not a pty slave on a devpts".into(),
        });
    }
    // The pty must be named through its fd: a dup'ed O_PATH fd names it via /proc/self/fd.
    let src_owned = src.try_clone_to_owned().map_err(|e| RootfsError::Io {
        path: src_name.to_path_buf(),
        source: e,
    })?;
    sys::mount(
        Some(&r.name(&src_owned, src_name)),
        &r.name(&target, console),
        None,
        MsFlags::MS_BIND,
        None,
    )
    .map_err(|e| RootfsError::sys("bind console", console, e))
}
