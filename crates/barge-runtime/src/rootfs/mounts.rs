//! The spec's mounts, one by one, onto targets resolved inside the rootfs.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use nix::sys::statfs::{PROC_SUPER_MAGIC, TMPFS_MAGIC};
use oci_spec::runtime::Mount;

use super::options::{parse_mount_options, MountOptions};
use super::resolve::{self, fd_path, mkdir_all_in_root, open_in_root, Create};
use super::{sys, RootfsError, RootfsOptions};

/// Destinations under /proc that a non-proc mount may cover: what lxcfs provides (the same
/// list as runc's).
const PROC_OVERRIDES: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
];

/// State carried across the spec's mounts.
pub(crate) struct Ctx<'a> {
    /// The rootfs (the bind mount of it), `O_PATH`.
    pub root: OwnedFd,
    /// Runtime options.
    pub opts: &'a RootfsOptions,
    /// /dev is a tmpfs from the spec: devices and /dev links are set up.
    pub dev_tmpfs: bool,
    /// /dev/pts is a devpts from the spec: /dev/ptmx links to pts/ptmx.
    pub devpts: bool,
}

fn merr(destination: &Path, what: impl std::fmt::Display) -> RootfsError {
    RootfsError::Mount {
        destination: destination.to_path_buf(),
        reason: what.to_string(),
    }
}

/// The destination as a clean absolute path (`.` dropped, `..` kept), for comparisons.
fn clean(dest: &Path) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in resolve::components(dest) {
        p.push(c);
    }
    p
}

/// Reopens the destination after a mount on it: the fd then names the new mount's root.
fn reopen(ctx: &Ctx<'_>, dest: &Path) -> Result<OwnedFd, RootfsError> {
    open_in_root(ctx.root.as_fd(), dest, OFlag::O_PATH, ResolveFlag::empty())
        .map_err(|e| merr(dest, format!("reopening the new mount: {e}")))
}

/// Applies the propagation changes and recursive attributes of `o` to the mount at `dest`.
fn after_mount(ctx: &Ctx<'_>, dest: &Path, o: &MountOptions) -> Result<(), RootfsError> {
    if o.propagation.is_empty() && o.rec_attr_set == 0 && o.rec_attr_clr == 0 {
        return Ok(());
    }
    let fd = reopen(ctx, dest)?;
    for p in &o.propagation {
        sys::mount(None, &fd_path(&fd), None, *p, None)
            .map_err(|e| merr(dest, format!("setting propagation {p:?}: {e}")))?;
    }
    if o.rec_attr_set != 0 || o.rec_attr_clr != 0 {
        sys::mount_setattr_recursive(fd.as_fd(), o.rec_attr_set, o.rec_attr_clr).map_err(|e| {
            match e {
                Errno::ENOSYS => merr(
                    dest,
                    "recursive mount options (rro, rnosuid, ...) need mount_setattr(2), Linux 5.12",
                ),
                e => merr(dest, format!("applying recursive options: {e}")),
            }
        })?;
    }
    Ok(())
}

/// Mounts one entry of the spec's `mounts` (index `index`, for messages).
pub(crate) fn mount_entry(ctx: &mut Ctx<'_>, index: usize, m: &Mount) -> Result<(), RootfsError> {
    let dest = clean(m.destination());
    if dest == Path::new("/") {
        return Err(RootfsError::InvalidSpec {
            field: format!("mounts[{index}].destination"),
            reason: "a mount cannot cover the container's root".into(),
        });
    }
    let typ = m.typ().as_deref().unwrap_or("");
    let mut o = parse_mount_options(m.options().as_deref().unwrap_or(&[]));
    if o.idmap {
        return Err(merr(
            &dest,
            "idmapped mounts (idmap, ridmap) are not supported",
        ));
    }
    if typ == "bind" {
        o.flags |= MsFlags::MS_BIND;
    }
    check_proc_destination(&dest, typ, &o, m.source().as_deref())?;
    match typ {
        "cgroup" | "cgroup2" => mount_cgroup(ctx, &dest, typ, &o),
        // A bind option wins over the type (rootless specs bind /sys with type "sysfs" or
        // "none"), as in runc.
        _ if o.is_bind() => {
            let Some(source) = m.source() else {
                return Err(RootfsError::InvalidSpec {
                    field: format!("mounts[{index}].source"),
                    reason: format!("a bind mount on {} needs a source", dest.display()),
                });
            };
            mount_bind(ctx, &dest, source, &o)
        }
        "proc" | "sysfs" => mount_kernel_fs(ctx, &dest, typ, &o),
        _ => {
            let source = m
                .source()
                .as_deref()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(typ));
            mount_fs(ctx, &dest, typ, &source, &o)
        }
    }
}

/// A mount on /proc itself must be a fresh procfs or a bind of a procfs, and under /proc only
/// the lxcfs-style overrides are allowed: a volume or bind there would hide the real procfs
/// from the checks and writes that trust it (CVE-2019-19921).
fn check_proc_destination(
    dest: &Path,
    typ: &str,
    o: &MountOptions,
    source: Option<&Path>,
) -> Result<(), RootfsError> {
    // A fresh procfs is fine anywhere; a bind is judged by its source whatever its type.
    if (typ == "proc" && !o.is_bind()) || !dest.starts_with("/proc") {
        return Ok(());
    }
    if dest == Path::new("/proc") {
        if o.is_bind() {
            if let Some(src) = source {
                if source_is_procfs(src)? {
                    return Ok(());
                }
            }
        }
        return Err(RootfsError::Refused {
            path: dest.to_path_buf(),
            reason: format!("only a proc filesystem may be mounted on /proc, not {typ:?}"),
        });
    }
    if PROC_OVERRIDES.iter().any(|p| Path::new(p) == dest) {
        return Ok(());
    }
    Err(RootfsError::Refused {
        path: dest.to_path_buf(),
        reason: "only the lxcfs-style /proc files may be mounted over inside /proc".into(),
    })
}

fn source_is_procfs(src: &Path) -> Result<bool, RootfsError> {
    let fd = nix::fcntl::open(src, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| RootfsError::sys("open mount source", src, e))?;
    Ok(
        sys::fs_type(fd.as_fd()).map_err(|e| RootfsError::sys("statfs", src, e))?
            == PROC_SUPER_MAGIC,
    )
}

/// The lexical check above cannot see a destination that reaches procfs through a symlink
/// in the image (`/myproc -> /proc`): check where the resolved target really is.
fn check_resolved_target(dest: &Path, target: &OwnedFd) -> Result<(), RootfsError> {
    let fs = sys::fs_type(target.as_fd()).map_err(|e| RootfsError::sys("statfs", dest, e))?;
    if fs == PROC_SUPER_MAGIC && !PROC_OVERRIDES.iter().any(|p| Path::new(p) == dest) {
        return Err(RootfsError::Refused {
            path: dest.to_path_buf(),
            reason: "the destination resolves into procfs (through a symlink in the rootfs?)"
                .into(),
        });
    }
    Ok(())
}

/// Opens (creating if missing) a proc/sysfs destination, refusing any symlink on the way: a
/// rootfs whose /proc is a symlink would redirect the mount and every later procfs write
/// (CVE-2019-16884 class).
fn open_no_symlinks(ctx: &Ctx<'_>, dest: &Path, what: &str) -> Result<OwnedFd, RootfsError> {
    let refuse_link = || RootfsError::Refused {
        path: dest.to_path_buf(),
        reason: format!(
            "{what} destination is (or passes through) a symlink in the rootfs; refusing to \
             mount {what} there"
        ),
    };
    let open = || {
        open_in_root(
            ctx.root.as_fd(),
            dest,
            OFlag::O_PATH,
            ResolveFlag::RESOLVE_NO_SYMLINKS,
        )
    };
    let fd = match open() {
        Ok(fd) => fd,
        Err(Errno::ELOOP) => return Err(refuse_link()),
        Err(Errno::ENOENT) => {
            drop(mkdir_all_in_root(ctx.root.as_fd(), dest, Create::Dir)?);
            match open() {
                Ok(fd) => fd,
                Err(Errno::ELOOP) => return Err(refuse_link()),
                Err(e) => return Err(RootfsError::sys("open", dest, e)),
            }
        }
        Err(e) => return Err(RootfsError::sys("open", dest, e)),
    };
    let st = nix::sys::stat::fstat(&fd).map_err(|e| RootfsError::sys("stat", dest, e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(RootfsError::Refused {
            path: dest.to_path_buf(),
            reason: format!("{what} destination is not a directory"),
        });
    }
    Ok(fd)
}

fn mount_kernel_fs(
    ctx: &mut Ctx<'_>,
    dest: &Path,
    typ: &str,
    o: &MountOptions,
) -> Result<(), RootfsError> {
    let target = open_no_symlinks(ctx, dest, typ)?;
    let data = o.data_string();
    let r = sys::mount(
        Some(Path::new(typ)),
        &fd_path(&target),
        Some(typ),
        o.flags,
        data.as_deref(),
    );
    match r {
        Ok(()) => {}
        // Without its own network namespace a user-namespaced container may not mount
        // sysfs: bind the host's instead, as runc does.
        Err(Errno::EPERM) if typ == "sysfs" && ctx.opts.user_namespace => {
            let mut bind = o.clone();
            bind.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
            drop(target);
            return mount_bind(ctx, dest, Path::new("/sys"), &bind);
        }
        Err(e) => return Err(merr(dest, format!("mounting {typ}: {e}"))),
    }
    // Check the result is what was asked before anything trusts it.
    let fresh = open_in_root(
        ctx.root.as_fd(),
        dest,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
    .map_err(|e| merr(dest, format!("reopening the new {typ} mount: {e}")))?;
    let want = if typ == "proc" {
        PROC_SUPER_MAGIC
    } else {
        sys::SYSFS_MAGIC
    };
    let got = sys::fs_type(fresh.as_fd()).map_err(|e| RootfsError::sys("statfs", dest, e))?;
    if got != want {
        return Err(RootfsError::Refused {
            path: dest.to_path_buf(),
            reason: format!("after mounting {typ} the destination is not {typ} (fs type {got:?})"),
        });
    }
    after_mount(ctx, dest, o)
}

/// Generic filesystems: tmpfs, devpts, mqueue and anything else with a type.
fn mount_fs(
    ctx: &mut Ctx<'_>,
    dest: &Path,
    typ: &str,
    source: &Path,
    o: &MountOptions,
) -> Result<(), RootfsError> {
    if typ.is_empty() {
        return Err(merr(dest, "the mount has no type and no bind option"));
    }
    let target = mkdir_all_in_root(ctx.root.as_fd(), dest, Create::Dir)?;
    check_resolved_target(dest, &target)?;
    let data = o.data_string();
    let mut r = sys::mount(
        Some(source),
        &fd_path(&target),
        Some(typ),
        o.flags,
        data.as_deref(),
    );
    if r == Err(Errno::EINVAL) && typ == "devpts" && ctx.opts.user_namespace {
        // gid=5 may not be mapped in the user namespace: retry without it, as runc does.
        let d: Vec<&str> = o
            .data
            .iter()
            .map(String::as_str)
            .filter(|s| !s.starts_with("gid="))
            .collect();
        let d = d.join(",");
        r = sys::mount(
            Some(source),
            &fd_path(&target),
            Some(typ),
            o.flags,
            Some(d.as_str()).filter(|s| !s.is_empty()),
        );
    }
    if r == Err(Errno::EPERM) && typ == "mqueue" && ctx.opts.user_namespace {
        // No IPC namespace of its own: bind the host's mqueue instead.
        drop(target);
        let mut bind = o.clone();
        bind.flags |= MsFlags::MS_BIND;
        return mount_bind(ctx, dest, Path::new("/dev/mqueue"), &bind);
    }
    r.map_err(|e| {
        merr(
            dest,
            format!("mounting {typ} from {}: {e}", source.display()),
        )
    })?;
    if dest == Path::new("/dev") && typ == "tmpfs" {
        ctx.dev_tmpfs = true;
    }
    if dest == Path::new("/dev/pts") && typ == "devpts" {
        let fresh = reopen(ctx, dest)?;
        if sys::fs_type(fresh.as_fd()).ok() == Some(sys::DEVPTS_SUPER_MAGIC) {
            ctx.devpts = true;
        }
    }
    after_mount(ctx, dest, o)
}

/// A bind mount of host path `source` at `dest` (inside the rootfs).
pub(crate) fn mount_bind(
    ctx: &mut Ctx<'_>,
    dest: &Path,
    source: &Path,
    o: &MountOptions,
) -> Result<(), RootfsError> {
    // The source is the spec author's host path: follow its symlinks on the host, but pin
    // what was looked at with an fd so the mount uses exactly that.
    let src = nix::fcntl::open(source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| merr(dest, format!("bind source {}: {e}", source.display())))?;
    let st = nix::sys::stat::fstat(&src).map_err(|e| RootfsError::sys("stat", source, e))?;
    let kind = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        Create::Dir
    } else {
        Create::File
    };
    let target = mkdir_all_in_root(ctx.root.as_fd(), dest, kind)?;
    if !(dest == Path::new("/proc") && sys::fs_type(src.as_fd()).ok() == Some(PROC_SUPER_MAGIC)) {
        check_resolved_target(dest, &target)?;
    }
    let rec = o.flags & MsFlags::MS_REC;
    sys::mount(
        Some(&fd_path(&src)),
        &fd_path(&target),
        None,
        MsFlags::MS_BIND | rec,
        None,
    )
    .map_err(|e| merr(dest, format!("bind mounting {}: {e}", source.display())))?;
    drop(target);
    let extra = o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() || !o.cleared.is_empty() {
        let fresh = reopen(ctx, dest)?;
        sys::remount_bind(
            fresh.as_fd(),
            &fd_path(&fresh),
            extra,
            o.cleared,
            o.atime_given,
            ctx.opts.user_namespace,
        )
        .map_err(|e| {
            merr(
                dest,
                format!(
                    "remounting the bind of {} with {extra:?}: {e}",
                    source.display()
                ),
            )
        })?;
    }
    after_mount(ctx, dest, o)
}

/// Is the host's /sys/fs/cgroup a cgroup2 mount (a pure v2 host)?
fn host_is_cgroup2() -> bool {
    nix::fcntl::open(
        "/sys/fs/cgroup",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()
    .and_then(|fd| sys::fs_type(fd.as_fd()).ok())
        == Some(sys::CGROUP2_SUPER_MAGIC)
}

fn mount_cgroup(
    ctx: &mut Ctx<'_>,
    dest: &Path,
    typ: &str,
    o: &MountOptions,
) -> Result<(), RootfsError> {
    let v2_host = host_is_cgroup2();
    if typ == "cgroup2" || v2_host {
        let unified = ctx
            .opts
            .cgroup_paths
            .iter()
            .find(|(name, _)| name.is_empty() || name == "unified")
            .map(|(_, p)| p.clone());
        if ctx.opts.cgroup_namespace {
            let target = open_no_symlinks(ctx, dest, "cgroup2")?;
            let data = o.data_string();
            match sys::mount(
                Some(Path::new("cgroup2")),
                &fd_path(&target),
                Some("cgroup2"),
                o.flags,
                data.as_deref(),
            ) {
                Ok(()) => return after_mount(ctx, dest, o),
                // E.g. a user namespace that does not own the cgroup namespace: fall
                // back to binding the container's own cgroup.
                Err(Errno::EPERM | Errno::EBUSY) if unified.is_some() => {}
                Err(e) => return Err(merr(dest, format!("mounting cgroup2: {e}"))),
            }
        }
        let Some(path) = unified else {
            return Err(merr(
                dest,
                "no cgroup2 path of the container is known to bind (RootfsOptions.cgroup_paths)",
            ));
        };
        let mut bind = o.clone();
        bind.flags |= MsFlags::MS_BIND;
        bind.data.clear();
        return mount_bind(ctx, dest, &path, &bind);
    }
    // A v1 or hybrid host: a tmpfs holding one bind per hierarchy of the container.
    let target = open_no_symlinks(ctx, dest, "cgroup")?;
    let tmpfs_flags = o.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    sys::mount(
        Some(Path::new("tmpfs")),
        &fd_path(&target),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .map_err(|e| merr(dest, format!("mounting the cgroup tmpfs: {e}")))?;
    drop(target);
    let bind_flags = o.flags & !(MsFlags::MS_REMOUNT);
    for (name, host) in &ctx.opts.cgroup_paths {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(merr(
                dest,
                format!("bad cgroup hierarchy name {name:?} in RootfsOptions.cgroup_paths"),
            ));
        }
        let sub = dest.join(name);
        let bind = MountOptions {
            flags: bind_flags | MsFlags::MS_BIND,
            cleared: o.cleared,
            atime_given: o.atime_given,
            ..Default::default()
        };
        mount_bind(ctx, &sub, host, &bind)?;
        // Co-mounted controllers (cpu,cpuacct) are reachable by each name.
        if name.contains(',') {
            let dir = reopen(ctx, dest)?;
            for part in name.split(',') {
                let part = part.strip_prefix("name=").unwrap_or(part);
                if part.is_empty() || part == name {
                    continue;
                }
                match nix::unistd::symlinkat(name.as_str(), &dir, OsStr::new(part)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(RootfsError::sys("symlink", &dest.join(part), e)),
                }
            }
        }
    }
    let fresh = reopen(ctx, dest)?;
    let fs = sys::fs_type(fresh.as_fd()).map_err(|e| RootfsError::sys("statfs", dest, e))?;
    if fs != TMPFS_MAGIC {
        return Err(merr(dest, "the cgroup tmpfs is not on top after the binds"));
    }
    if o.flags.contains(MsFlags::MS_RDONLY) {
        sys::remount_bind(
            fresh.as_fd(),
            &fd_path(&fresh),
            MsFlags::MS_RDONLY | tmpfs_flags,
            MsFlags::empty(),
            false,
            ctx.opts.user_namespace,
        )
        .map_err(|e| merr(dest, format!("remounting the cgroup tmpfs readonly: {e}")))?;
    }
    after_mount(ctx, dest, o)
}

/// For the caller: a borrowed root fd.
impl Ctx<'_> {
    /// The rootfs fd.
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }
}
