//! Switching the root: pivot_root(2), or MS_MOVE + chroot for --no-pivot.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;

use super::{mountinfo, sys, RootfsError};

fn open_dir(path: &Path) -> Result<std::os::fd::OwnedFd, RootfsError> {
    nix::fcntl::open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::sys("open", path, e))
}

/// See [`super::pivot_root`].
pub(crate) fn pivot_root(rootfs: &Path) -> Result<(), RootfsError> {
    let old_root = open_dir(Path::new("/"))?;
    let new_root = open_dir(rootfs)?;
    nix::unistd::fchdir(&new_root).map_err(|e| RootfsError::sys("chdir", rootfs, e))?;
    // pivot_root(".", ".") stacks the old root on top of the new one at "/"; no put_old
    // directory is needed inside the rootfs (which may be readonly).
    if let Err(e) = nix::unistd::pivot_root(".", ".") {
        let on_ramfs = sys::fs_type(old_root.as_fd())
            .map(|t| t == sys::RAMFS_MAGIC || t == nix::sys::statfs::TMPFS_MAGIC)
            .unwrap_or(false);
        // Go back where we were so the caller's state is as before.
        let _ = nix::unistd::fchdir(&old_root);
        if e == Errno::EINVAL {
            return Err(RootfsError::PivotRoot {
                rootfs: rootfs.to_path_buf(),
                source: e,
                hint: if on_ramfs {
                    "the current root is an initramfs/ramfs, which pivot_root(2) cannot move; \
                     run with --no-pivot"
                } else {
                    "pivot_root(2) refused the rootfs (not a mount point, a shared parent mount, \
                     or an initramfs root); --no-pivot avoids pivot_root"
                },
            });
        }
        return Err(RootfsError::PivotRoot {
            rootfs: rootfs.to_path_buf(),
            source: e,
            hint: "",
        });
    }
    // The old root is now on top of "/": go to it, cut its propagation to the host
    // (umount must not propagate out), and detach it.
    nix::unistd::fchdir(&old_root)
        .map_err(|e| RootfsError::sys("fchdir", Path::new("old root"), e))?;
    sys::mount(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )
    .map_err(|e| RootfsError::sys("make old root rslave", Path::new("."), e))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| RootfsError::sys("detach old root", Path::new("."), e))?;
    nix::unistd::chdir("/").map_err(|e| RootfsError::sys("chdir", Path::new("/"), e))?;
    drop(new_root);
    drop(old_root);
    Ok(())
}

/// See [`super::move_root_no_pivot`].
pub(crate) fn move_root(rootfs: &Path) -> Result<(), RootfsError> {
    let rootfs_real = std::fs::canonicalize(rootfs).map_err(|e| RootfsError::Io {
        path: rootfs.to_path_buf(),
        source: e,
    })?;
    // Detach every mount that is neither the rootfs, under it, nor one of its ancestors:
    // the chroot will not see them, but a process escaping the chroot must not find them
    // either. What cannot be unmounted (locked in a user namespace) is covered by an empty
    // readonly tmpfs, as runc does for /proc and /sys.
    let mounts = mountinfo::read().map_err(|e| RootfsError::Io {
        path: PathBuf::from("/proc/self/mountinfo"),
        source: e,
    })?;
    let mut others: Vec<PathBuf> = mounts
        .iter()
        .map(|m| m.mount_point.clone())
        .filter(|p| !p.starts_with(&rootfs_real) && !rootfs_real.starts_with(p))
        .collect();
    // Deepest first, so children go before their parents.
    others.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    others.dedup();
    for p in others {
        match nix::mount::umount2(&p, MntFlags::MNT_DETACH) {
            // EINVAL: already gone with a detached parent.
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(_) => {
                if p.is_dir() {
                    sys::mount(
                        Some(Path::new("tmpfs")),
                        &p,
                        Some("tmpfs"),
                        MsFlags::MS_RDONLY,
                        Some("size=0"),
                    )
                    .map_err(|e| RootfsError::sys("hide mount", &p, e))?;
                }
            }
        }
    }
    nix::unistd::chdir(&rootfs_real).map_err(|e| RootfsError::sys("chdir", &rootfs_real, e))?;
    sys::mount(
        Some(Path::new(".")),
        Path::new("/"),
        None,
        MsFlags::MS_MOVE,
        None,
    )
    .map_err(|e| RootfsError::sys("move rootfs onto /", &rootfs_real, e))?;
    nix::unistd::chroot(".").map_err(|e| RootfsError::sys("chroot", &rootfs_real, e))?;
    nix::unistd::chdir("/").map_err(|e| RootfsError::sys("chdir", Path::new("/"), e))?;
    Ok(())
}
