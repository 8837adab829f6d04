//! Device nodes (the default set and `linux.devices`) and the /dev symlinks.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::resolve::{self, fd_path, lstat_at, open_in_root, parent_in_root};
use super::{sys, RootfsError};

/// One device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Device {
    /// Path inside the container.
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: SFlag,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// runc's and Docker's default devices.
fn defaults() -> Vec<Device> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, major, minor)| Device {
        path: PathBuf::from(p),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// Converts `linux.devices[index]`.
fn from_spec(index: usize, d: &LinuxDevice) -> Result<Device, RootfsError> {
    let bad = |field: &str, reason: String| RootfsError::InvalidSpec {
        field: format!("linux.devices[{index}].{field}"),
        reason,
    };
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => return Err(bad("type", "\"a\" is not a device type".into())),
    };
    let major = u64::try_from(d.major()).map_err(|_| bad("major", d.major().to_string()))?;
    let minor = u64::try_from(d.minor()).map_err(|_| bad("minor", d.minor().to_string()))?;
    if !d.path().is_absolute() || resolve::components(d.path()).is_empty() {
        return Err(bad(
            "path",
            format!("{} is not an absolute file path", d.path().display()),
        ));
    }
    Ok(Device {
        path: d.path().clone(),
        kind,
        major,
        minor,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// The devices to create: the defaults not overridden by a spec device of the same path,
/// then the spec's devices.
pub(crate) fn device_list(spec_devices: &[LinuxDevice]) -> Result<Vec<Device>, RootfsError> {
    let spec: Vec<Device> = spec_devices
        .iter()
        .enumerate()
        .map(|(i, d)| from_spec(i, d))
        .collect::<Result<_, _>>()?;
    let mut out: Vec<Device> = defaults()
        .into_iter()
        .filter(|d| !spec.iter().any(|s| s.path == d.path))
        .collect();
    out.extend(spec);
    Ok(out)
}

/// Sets the umask to 0 for its life, so created nodes get exactly the asked mode.
struct UmaskGuard(Mode);

impl UmaskGuard {
    fn zero() -> Self {
        UmaskGuard(nix::sys::stat::umask(Mode::empty()))
    }
}

impl Drop for UmaskGuard {
    fn drop(&mut self) {
        nix::sys::stat::umask(self.0);
    }
}

/// Creates `dev` inside `root`: mknod (with mode and owner), or, in a user namespace where
/// mknod is not allowed, a bind mount of the host's node of the same path.
pub(crate) fn create_device(
    root: BorrowedFd<'_>,
    dev: &Device,
    user_namespace: bool,
) -> Result<(), RootfsError> {
    let path = &dev.path;
    let (dir, name) = parent_in_root(root, path)?;
    let name: &OsStr = &name;
    match lstat_at(dir.as_fd(), name).map_err(|e| RootfsError::sys("stat", path, e))? {
        None => {}
        Some(st) if resolve::file_type(&st) == libc::S_IFLNK => {
            return Err(RootfsError::Refused {
                path: path.clone(),
                reason: "the device path is a symlink in the rootfs".into(),
            })
        }
        Some(st) if resolve::file_type(&st) == libc::S_IFDIR => {
            return Err(RootfsError::Refused {
                path: path.clone(),
                reason: "the device path is a directory in the rootfs".into(),
            })
        }
        Some(_) => nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
            .map_err(|e| RootfsError::sys("unlink", path, e))?,
    }
    let _umask = UmaskGuard::zero();
    if user_namespace {
        let host = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| RootfsError::sys("open host device", path, e))?;
        nix::fcntl::openat(
            &dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(|e| RootfsError::sys("create bind target", path, e))?;
        let target = open_in_root(
            dir.as_fd(),
            Path::new(name),
            OFlag::O_PATH,
            ResolveFlag::RESOLVE_NO_SYMLINKS,
        )
        .map_err(|e| RootfsError::sys("open bind target", path, e))?;
        sys::mount(
            Some(&fd_path(&host)),
            &fd_path(&target),
            None,
            MsFlags::MS_BIND,
            None,
        )
        .map_err(|e| RootfsError::sys("bind mount host device", path, e))?;
        return Ok(());
    }
    let dev_t = nix::sys::stat::makedev(dev.major, dev.minor);
    nix::sys::stat::mknodat(
        &dir,
        name,
        dev.kind,
        Mode::from_bits_truncate(dev.mode),
        dev_t,
    )
    .map_err(|e| RootfsError::sys("mknod", path, e))?;
    nix::unistd::fchownat(
        &dir,
        name,
        Some(nix::unistd::Uid::from_raw(dev.uid)),
        Some(nix::unistd::Gid::from_raw(dev.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| RootfsError::sys("chown", path, e))
}

/// Makes `name -> target` in `dir`; an existing identical link is fine, `replace` removes
/// any other non-directory first.
fn link(dir: BorrowedFd<'_>, name: &str, target: &str, replace: bool) -> Result<(), RootfsError> {
    let path = Path::new("/dev").join(name);
    if replace {
        match lstat_at(dir, OsStr::new(name)) {
            Ok(Some(st)) if resolve::file_type(&st) != libc::S_IFDIR => {
                nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| RootfsError::sys("unlink", &path, e))?
            }
            Ok(_) => {}
            Err(e) => return Err(RootfsError::sys("stat", &path, e)),
        }
    }
    match nix::unistd::symlinkat(target, dir, name) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => match nix::fcntl::readlinkat(dir, name) {
            Ok(t) if t == OsStr::new(target) => Ok(()),
            _ => Err(RootfsError::Refused {
                path,
                reason: format!("exists and is not a symlink to {target}"),
            }),
        },
        Err(e) => Err(RootfsError::sys("symlink", &path, e)),
    }
}

/// The /dev symlinks: fd, stdin, stdout, stderr, core (when the host has /proc/kcore) and
/// ptmx (when /dev/pts is a devpts from the spec).
pub(crate) fn create_dev_links(root: BorrowedFd<'_>, devpts: bool) -> Result<(), RootfsError> {
    let dev = open_in_root(
        root,
        Path::new("/dev"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
    .map_err(|e| RootfsError::sys("open", Path::new("/dev"), e))?;
    let mut links = vec![
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("core", "/proc/kcore"));
    }
    for (name, target) in links {
        link(dev.as_fd(), name, target, false)?;
    }
    if devpts {
        link(dev.as_fd(), "ptmx", "pts/ptmx", true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_dev(json: &str) -> LinuxDevice {
        serde_json::from_str(json).expect("device json")
    }

    #[test]
    fn spec_devices_override_defaults_and_convert() {
        let d = spec_dev(
            r#"{"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":420,"uid":5,"gid":6}"#,
        );
        let f = spec_dev(r#"{"path":"/dev/fuse","type":"u","major":10,"minor":229}"#);
        let list = device_list(&[d, f]).expect("devices");
        assert_eq!(list.len(), 7);
        let null: Vec<&Device> = list
            .iter()
            .filter(|d| d.path == Path::new("/dev/null"))
            .collect();
        assert_eq!(null.len(), 1);
        assert_eq!((null[0].mode, null[0].uid, null[0].gid), (0o644, 5, 6));
        let fuse = list
            .iter()
            .find(|d| d.path == Path::new("/dev/fuse"))
            .expect("fuse");
        assert_eq!(
            (fuse.kind, fuse.major, fuse.minor, fuse.mode),
            (SFlag::S_IFCHR, 10, 229, 0o666)
        );
    }

    #[test]
    fn bad_spec_devices_are_refused_with_the_field() {
        let d = spec_dev(r#"{"path":"/dev/x","type":"c","major":-1,"minor":3}"#);
        let e = device_list(&[d]).expect_err("negative major");
        assert!(e.to_string().contains("linux.devices[0].major"), "{e}");
        let d = spec_dev(r#"{"path":"dev/x","type":"b","major":8,"minor":0}"#);
        let e = device_list(&[d]).expect_err("relative path");
        assert!(e.to_string().contains("linux.devices[0].path"), "{e}");
        let d = spec_dev(r#"{"path":"/dev/x","type":"a"}"#);
        assert!(device_list(&[d]).is_err());
    }
}
