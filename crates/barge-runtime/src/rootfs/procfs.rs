//! Opening files under the container's /proc for writing (sysctls, oom_score_adj, ...)
//! without being redirected: /proc must be procfs, the path may not contain symlinks or
//! cross into another mount (a bind over a procfs file is how CVE-2025-52881 redirected
//! writes), and the opened file itself must be on procfs.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::statfs::PROC_SUPER_MAGIC;

use super::{resolve, sys, RootfsError};

/// See [`super::open_procfs`].
pub(crate) fn open(rel: &Path, flags: OFlag) -> Result<OwnedFd, RootfsError> {
    let shown = Path::new("/proc").join(rel);
    let refuse = |reason: String| RootfsError::Refused {
        path: shown.clone(),
        reason,
    };
    let proc = resolve::open_dir_path(Path::new("/proc"))?;
    if sys::fs_type(proc.as_fd()).map_err(|e| RootfsError::sys("statfs", Path::new("/proc"), e))?
        != PROC_SUPER_MAGIC
    {
        return Err(refuse("/proc is not procfs".into()));
    }
    let mut comps = resolve::components(rel);
    // "self" and "thread-self" are symlinks: replace them by what this procfs says they
    // are (a pid number), so the no-symlinks walk below can accept the path.
    if let Some(first) = comps.first_mut() {
        if first == "self" || first == "thread-self" {
            let target = nix::fcntl::readlinkat(&proc, first.as_os_str())
                .map_err(|e| RootfsError::sys("readlink", &shown, e))?;
            // "<pid>" or "<pid>/task/<tid>".
            let ok = target.to_str().is_some_and(|t| {
                t.split('/').all(|part| {
                    part == "task" || (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                })
            });
            if !ok {
                return Err(refuse(format!(
                    "/proc/{} points to {target:?}",
                    first.to_string_lossy()
                )));
            }
            *first = target;
        }
    }
    let rel: PathBuf = comps.iter().collect();
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    let fd = loop {
        match openat2(&proc, &rel, how) {
            Err(Errno::EAGAIN) => continue,
            Err(Errno::EXDEV) => {
                return Err(refuse(
                    "the path crosses a mount inside /proc (masked or overmounted)".into(),
                ))
            }
            Err(Errno::ELOOP) => return Err(refuse("the path contains a symlink".into())),
            Err(e) => return Err(RootfsError::sys("open", &shown, e)),
            Ok(fd) => break fd,
        }
    };
    if sys::fs_type(fd.as_fd()).map_err(|e| RootfsError::sys("statfs", &shown, e))?
        != PROC_SUPER_MAGIC
    {
        return Err(refuse("the opened file is not on procfs".into()));
    }
    Ok(fd)
}
