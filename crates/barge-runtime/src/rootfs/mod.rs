//! The container's root filesystem: mount propagation, the bundle's rootfs bind, the spec's
//! mounts (proc, sysfs, tmpfs, devpts, mqueue, cgroup, binds) with destinations resolved
//! inside the rootfs, default devices and /dev symlinks, `pivot_root`, masked and readonly
//! paths, and a readonly root.
//!
//! Everything here runs in the container's init process, inside its new mount namespace.
//! The order is [`prepare_rootfs`], then [`pivot_root`] (or [`move_root_no_pivot`]), then
//! [`finalize_rootfs`] and, with a terminal, [`mount_console`].
//!
//! How it stays safe against a hostile image:
//! - every destination is resolved with openat2(`RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`)
//!   against an fd of the rootfs, missing components are created one by one inside it, and
//!   the mount goes onto the resolved fd (`/proc/self/fd/N`), so a symlink (`etc -> /`) or a
//!   component swapped meanwhile can never point a mount at the host (CVE-2021-30465 class);
//! - proc and sysfs destinations may not contain symlinks, the result is checked with
//!   fstatfs, and nothing but procfs (or the lxcfs files) may cover /proc or anything that
//!   resolves into procfs (CVE-2019-16884, CVE-2019-19921 class);
//! - masking uses a /dev/null opened without following symlinks and checked to be char 1:3,
//!   and the console target may not be a symlink (CVE-2025-31133/-52565 class);
//! - every fd is opened `O_CLOEXEC` and closed before returning.
//!
//! Semantics follow runc where the spec is silent: `rbind,ro` makes only the top mount
//! readonly (use `rro` for all of them, via mount_setattr(2)); a bind remount keeps the
//! ro/nosuid/nodev/noexec flags the mount already has unless an option clears them (and
//! always in a user namespace, where the kernel locks them).

mod devices;
mod finalize;
mod mountinfo;
mod mounts;
pub mod options;
mod pivot;
mod procfs;
mod resolve;
pub use resolve::{open_in_root, open_path_in_root};
mod sys;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

pub use options::{parse_mount_options, parse_propagation, MountOptions};

/// The container's root filesystem could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A mount failed; names the destination and what was asked.
    #[error("mount {destination}: {reason}")]
    Mount {
        /// The mount's destination inside the container.
        destination: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A system call on a path failed.
    #[error("{op} {path}: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The path (inside the container unless said otherwise).
        path: PathBuf,
        /// The kernel's answer.
        source: Errno,
    },
    /// An I/O error on a host file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The rootfs or a mount would be unsafe to use (symlinked /proc or /dev/null, a mount
    /// over /proc, ...): refused.
    #[error("refusing {path}: {reason}")]
    Refused {
        /// The path at fault, inside the container.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The spec asks for something invalid.
    #[error("invalid {field}: {reason}")]
    InvalidSpec {
        /// The config.json field, e.g. `mounts[3].source`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// pivot_root(2) failed; `hint` says what to do (e.g. use --no-pivot on an initramfs).
    #[error("pivot_root to {rootfs}: {source}{}", if hint.is_empty() { String::new() } else { format!(": {hint}") })]
    PivotRoot {
        /// The rootfs.
        rootfs: PathBuf,
        /// The kernel's answer.
        source: Errno,
        /// Advice for the user, may be empty.
        hint: &'static str,
    },
}

impl RootfsError {
    pub(crate) fn sys(op: &'static str, path: &Path, source: Errno) -> Self {
        RootfsError::Sys {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What the rootfs setup needs to know beyond the spec.
#[derive(Debug, Clone, Default)]
pub struct RootfsOptions {
    /// The container's cgroup directories on the host, as (hierarchy name under
    /// /sys/fs/cgroup, e.g. `memory` or `unified` or `` for a pure v2 host, host path).
    /// A `cgroup` mount on a v1/hybrid host becomes a tmpfs with one bind per entry (with or
    /// without a cgroup namespace; a name like `cpu,cpuacct` also gets `cpu` and `cpuacct`
    /// symlinks). On a v2 host, or for a `cgroup2` mount, the `` (or `unified`) entry is
    /// bound when there is no cgroup namespace, or when mounting a fresh cgroup2 fails.
    pub cgroup_paths: Vec<(String, PathBuf)>,
    /// The container has its own user namespace (device nodes must be bind-mounted, not made).
    pub user_namespace: bool,
    /// The container has its own cgroup namespace.
    pub cgroup_namespace: bool,
}

/// Sets up the rootfs at `rootfs` (an absolute host path) in the current (new) mount
/// namespace: propagation, the rootfs bind mount, the spec's mounts, devices and /dev links.
/// Runs before the createContainer hooks and before [`pivot_root`].
pub fn prepare_rootfs(spec: &Spec, rootfs: &Path, opts: &RootfsOptions) -> Result<(), RootfsError> {
    if !rootfs.is_absolute() {
        return Err(RootfsError::InvalidSpec {
            field: "root.path".into(),
            reason: format!("{} is not an absolute path", rootfs.display()),
        });
    }
    let linux = spec.linux().as_ref();
    let propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => parse_propagation(p).ok_or_else(|| RootfsError::InvalidSpec {
            field: "linux.rootfsPropagation".into(),
            reason: format!("{p:?} is not one of shared, slave, private, unbindable (or r-)"),
        })?,
    };
    // "unbindable" is "private" that also refuses bind mounts, and the rootfs bind below
    // needs to bind: private until finalize_rootfs makes the new `/` unbindable.
    let propagation = if propagation.contains(MsFlags::MS_UNBINDABLE) {
        (propagation - MsFlags::MS_UNBINDABLE) | MsFlags::MS_PRIVATE
    } else {
        propagation
    };
    // Nothing mounted from here on may reach the host (unless the spec asks for sharing).
    sys::mount(None, Path::new("/"), None, propagation, None)
        .map_err(|e| RootfsError::sys("set propagation of", Path::new("/"), e))?;
    let real = std::fs::canonicalize(rootfs).map_err(|e| RootfsError::Io {
        path: rootfs.to_path_buf(),
        source: e,
    })?;
    make_parent_private(&real)?;
    // The rootfs must be a mount point for pivot_root.
    sys::mount(
        Some(real.as_path()),
        &real,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(|e| RootfsError::sys("bind mount rootfs", &real, e))?;

    // Mount targets are named as /proc/self/fd/N: that needs the host's real procfs.
    let proc = resolve::open_dir_path(Path::new("/proc"))?;
    if sys::fs_type(proc.as_fd()).ok() != Some(nix::sys::statfs::PROC_SUPER_MAGIC) {
        return Err(RootfsError::Refused {
            path: PathBuf::from("/proc"),
            reason: "the runtime's /proc is not procfs".into(),
        });
    }
    drop(proc);

    let mut ctx = mounts::Ctx {
        root: resolve::open_dir_path(&real)?,
        opts,
        dev_tmpfs: false,
        devpts: false,
    };
    for (i, m) in spec.mounts().as_deref().unwrap_or(&[]).iter().enumerate() {
        mounts::mount_entry(&mut ctx, i, m)?;
    }
    if ctx.dev_tmpfs {
        let spec_devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
        for dev in devices::device_list(spec_devices)? {
            devices::create_device(ctx.root(), &dev, opts.user_namespace)?;
        }
        devices::create_dev_links(ctx.root(), ctx.devpts)?;
    }
    // A `process.cwd` the rootfs lacks is made (0755, inside the root, after the mounts so
    // it lands on a mount that covers it), as runc does: `docker run -w /new` works. Best
    // effort: if it cannot be made, entering it fails later with the precise error. Never
    // under /proc or /sys: nothing is made there, and their magic links (/proc/self/fd/N,
    // CVE-2024-21626) are left to the checks of the chdir step.
    if let Some(cwd) = spec.process().as_ref().map(|p| p.cwd()) {
        let kernel_fs = cwd.starts_with("/proc")
            || cwd.starts_with("/sys")
            || cwd
                .components()
                .any(|c| c == std::path::Component::ParentDir);
        if cwd.is_absolute() && cwd != Path::new("/") && !kernel_fs {
            let _ = resolve::mkdir_all_in_root(ctx.root(), cwd, resolve::Create::Dir);
        }
    }
    Ok(())
}

/// pivot_root(2) refuses a new root whose parent mount is shared: make that mount private
/// (only it, not its children) when it is.
fn make_parent_private(rootfs: &Path) -> Result<(), RootfsError> {
    let mounts = mountinfo::read().map_err(|e| RootfsError::Io {
        path: PathBuf::from("/proc/self/mountinfo"),
        source: e,
    })?;
    if let Some(m) = mountinfo::mount_of(&mounts, rootfs) {
        if m.is_shared() {
            sys::mount(None, &m.mount_point, None, MsFlags::MS_PRIVATE, None)
                .map_err(|e| RootfsError::sys("make private", &m.mount_point, e))?;
        }
    }
    Ok(())
}

/// Makes `rootfs` the root of the current mount namespace with `pivot_root(2)` and detaches
/// the old root; the working directory is `/` afterwards. When pivot_root(2) cannot work
/// (the current root is an initramfs), the error says to use --no-pivot
/// ([`move_root_no_pivot`]).
pub fn pivot_root(rootfs: &Path) -> Result<(), RootfsError> {
    pivot::pivot_root(rootfs)
}

/// The --no-pivot alternative to [`pivot_root`] (for an initramfs root): detaches the mounts
/// outside the rootfs, moves the rootfs onto `/` with `MS_MOVE` and chroots into it. Weaker
/// than pivot_root: the old root stays underneath, reachable by a process that can escape a
/// chroot (CAP_SYS_CHROOT), which is why pivot_root is the default.
pub fn move_root_no_pivot(rootfs: &Path) -> Result<(), RootfsError> {
    pivot::move_root(rootfs)
}

/// After `pivot_root`: applies masked and readonly paths and, if asked, remounts the root
/// readonly; then applies `linux.rootfsPropagation` to the new `/`. None of this can be
/// undone by a process without CAP_SYS_ADMIN in the container's user namespace.
pub fn finalize_rootfs(spec: &Spec) -> Result<(), RootfsError> {
    let r = finalize::NewRoot::open()?;
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or(&[])
    {
        finalize::readonly_path(&r, Path::new(p))?;
    }
    let mut null = None;
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or(&[])
    {
        finalize::mask_path(&r, Path::new(p), &mut null)?;
    }
    drop(null);
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        finalize::readonly_root(&r)?;
    }
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        if !p.is_empty() {
            let flags = parse_propagation(p).ok_or_else(|| RootfsError::InvalidSpec {
                field: "linux.rootfsPropagation".into(),
                reason: format!("{p:?} is not a propagation mode"),
            })?;
            sys::mount(None, Path::new("/"), None, flags, None)
                .map_err(|e| RootfsError::sys("set propagation of", Path::new("/"), e))?;
        }
    }
    Ok(())
}

/// After `pivot_root`: bind-mounts the console's pty slave (a path inside the container,
/// e.g. `/dev/pts/0`) on /dev/console, created first as an empty 0666 file. Refuses a
/// /dev/console that is a symlink or directory, and a source that is not a pty slave on a
/// devpts.
pub fn mount_console(pty_slave: &Path) -> Result<(), RootfsError> {
    finalize::mount_console(pty_slave)
}

/// As [`mount_console`], with the pty slave given as an open fd (e.g. from
/// `ioctl(TIOCGPTPEER)`), so no path to it needs trusting.
pub fn mount_console_fd(pty_slave: std::os::fd::BorrowedFd<'_>) -> Result<(), RootfsError> {
    finalize::mount_console_fd(pty_slave)
}

/// Opens `/proc/<rel>` of the current root (e.g. `sys/net/ipv4/ip_forward`,
/// `self/oom_score_adj`) with `flags`, for a write that must reach the real procfs: /proc
/// must be procfs, the path may not contain symlinks nor cross a mount (so call it before
/// [`finalize_rootfs`], whose readonly and masked paths are mounts), and the opened file is
/// checked to be on procfs.
pub fn open_procfs(
    rel: &Path,
    flags: nix::fcntl::OFlag,
) -> Result<std::os::fd::OwnedFd, RootfsError> {
    procfs::open(rel, flags)
}
