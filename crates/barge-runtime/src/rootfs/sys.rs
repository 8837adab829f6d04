//! Thin wrappers over the mount syscalls used by the rootfs code.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::statfs::{fstatfs, FsType};

use super::options::{attr, MS_NOSYMFOLLOW};

/// mount(2).
pub(crate) fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    nix::mount::mount(source, target, fstype, flags, data)
}

/// The filesystem type of the file `fd` refers to.
pub(crate) fn fs_type(fd: BorrowedFd<'_>) -> nix::Result<FsType> {
    Ok(fstatfs(fd)?.filesystem_type())
}

/// `CGROUP2_SUPER_MAGIC`.
pub(crate) const CGROUP2_SUPER_MAGIC: FsType = FsType(libc::CGROUP2_SUPER_MAGIC as _);
/// `SYSFS_MAGIC`.
pub(crate) const SYSFS_MAGIC: FsType = FsType(libc::SYSFS_MAGIC as _);
/// `DEVPTS_SUPER_MAGIC`.
pub(crate) const DEVPTS_SUPER_MAGIC: FsType = FsType(libc::DEVPTS_SUPER_MAGIC as _);
/// `RAMFS_MAGIC` (not in libc for this target).
pub(crate) const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);

/// The per-mount flags of the mount `fd` is on, as `MS_*` flags (statvfs reports them as
/// `ST_*`, whose values differ for relatime). A mount with neither noatime nor relatime is
/// strictatime.
pub(crate) fn mount_flags(fd: BorrowedFd<'_>) -> nix::Result<MsFlags> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `st` is a writable statvfs buffer; the fd is valid for the call. nix's
    // wrapper truncates the flags to the ones it knows (no ST_RELATIME), hence libc.
    let r = unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) };
    Errno::result(r)?;
    // SAFETY: fstatvfs succeeded and filled the buffer.
    let raw = unsafe { st.assume_init() }.f_flag;
    let table: [(libc::c_ulong, MsFlags); 8] = [
        (libc::ST_RDONLY, MsFlags::MS_RDONLY),
        (libc::ST_NOSUID, MsFlags::MS_NOSUID),
        (libc::ST_NODEV, MsFlags::MS_NODEV),
        (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (libc::ST_NOATIME, MsFlags::MS_NOATIME),
        (libc::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (libc::ST_RELATIME, MsFlags::MS_RELATIME),
        (0x2000, MS_NOSYMFOLLOW), // ST_NOSYMFOLLOW
    ];
    let mut out = MsFlags::empty();
    for (st_flag, ms) in table {
        if raw & st_flag != 0 {
            out |= ms;
        }
    }
    if !out.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME) {
        out |= MsFlags::MS_STRICTATIME;
    }
    Ok(out)
}

/// The atime-related flags.
pub(crate) const ATIME_FLAGS: MsFlags = MsFlags::MS_NOATIME
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME)
    .union(MsFlags::MS_NODIRATIME);

/// The flags a bind remount may carry over from the mount it changes.
const KEEPABLE: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MS_NOSYMFOLLOW);

/// Changes the per-mount flags of the mount whose root `target` names (a path that reaches
/// it, normally `/proc/self/fd/N` of `fd`) with `MS_REMOUNT | MS_BIND`: `add` is set; the
/// mount's current ro/nosuid/nodev/noexec/nosymfollow stay unless listed in `cleared`, and
/// its atime mode stays unless `atime_given`. In a user namespace the flags the mount
/// already has are kept whatever `cleared` says: the kernel locks them and would refuse
/// the remount with EPERM.
pub(crate) fn remount_bind(
    fd: BorrowedFd<'_>,
    target: &Path,
    add: MsFlags,
    cleared: MsFlags,
    atime_given: bool,
    user_namespace: bool,
) -> nix::Result<()> {
    let current = mount_flags(fd)?;
    let mut keep = current & KEEPABLE;
    if !user_namespace {
        keep.remove(cleared);
    }
    let mut flags = add & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    flags |= keep;
    // In a user namespace the atime mode is locked too: keep it.
    if !atime_given || user_namespace {
        flags.remove(ATIME_FLAGS);
        flags |= current & ATIME_FLAGS;
    }
    mount(
        None,
        target,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags,
        None,
    )
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) with `AT_RECURSIVE` on the mount whose root `fd` is: the spec's
/// recursive options (`rro`, `rnosuid`, ...).
pub(crate) fn mount_setattr_recursive(fd: BorrowedFd<'_>, set: u64, clr: u64) -> nix::Result<()> {
    let mut clr = clr;
    if set & attr::ATIME_MASK != 0 {
        clr |= attr::ATIME_MASK;
    }
    let a = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: `empty` is a valid NUL-terminated string, `a` lives across the call and its
    // size is passed; the fd is borrowed and valid for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_fd().as_raw_fd(),
            empty.as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &a as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}
