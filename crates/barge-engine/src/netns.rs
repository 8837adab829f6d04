//! Per-container network namespaces, bind-mounted at `<exec-root>/netns/<id>`.
//!
//! The engine makes one (loopback up) before the container starts, unless the container
//! uses the host's network. This is the seam for network drivers: they get the namespace's
//! path (see [`crate::engine::net`]) and configure it before the container's
//! process runs.

use std::io;
use std::path::Path;

fn last(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Brings `lo` up in the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last("socket"));
    }
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: ioctls on our socket with a valid ifreq; union field access of plain data.
    let r = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            -1
        } else {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr)
        }
    };
    let err = (r < 0).then(|| last("bring lo up"));
    // SAFETY: closing the socket we opened.
    unsafe { libc::close(fd) };
    err.map_or(Ok(()), Err)
}

/// Creates a new network namespace with loopback up and bind-mounts it at `path`.
pub fn create(path: &Path) -> io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::File::create(path)?;
    let p = path.to_path_buf();
    // unshare(CLONE_NEWNET) affects only the calling thread: do it in a thread of its own.
    let r = std::thread::spawn(move || -> io::Result<()> {
        // SAFETY: unshare of this thread's network namespace only.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(last("unshare(CLONE_NEWNET)"));
        }
        loopback_up()?;
        // SAFETY: gettid cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        let src = std::ffi::CString::new(format!("/proc/self/task/{tid}/ns/net"))
            .map_err(io::Error::other)?;
        let dst =
            std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
        // SAFETY: bind mount with NUL-terminated paths.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(last("bind-mount the network namespace"));
        }
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?;
    if r.is_err() {
        let _ = std::fs::remove_file(path);
    }
    r
}

/// Unmounts and removes a namespace made by [`create`] (no error if it is gone).
pub fn remove(path: &Path) {
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: umount2 with a NUL-terminated path.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = std::fs::remove_file(path);
}
