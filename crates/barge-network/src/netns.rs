//! Named network namespaces: an nsfs bind mount on a file, as `ip netns add` and Docker's
//! sandboxes do. The engine can create the namespace first, [`connect`] it, then hand the path
//! to the runtime (OCI `namespaces: [{type: network, path}]`), so the network is ready before
//! the container's first instruction.
//!
//! [`connect`]: crate::NetworkManager::connect

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::NetworkError;

fn err(path: &Path) -> impl FnOnce(io::Error) -> NetworkError + '_ {
    move |source| NetworkError::Netns {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a new, empty network namespace (loopback down) kept alive by a bind mount on
/// `path` (created; must not exist). The mount lives in the caller's mount namespace.
pub fn create_netns(path: &Path) -> Result<(), NetworkError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(err(path))?;
    let r = std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            // a thread of our own: only it moves into the new namespace, and it ends here
            unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(io::Error::from)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
    });
    if let Err(e) = r {
        let _ = fs::remove_file(path);
        return Err(err(path)(e));
    }
    Ok(())
}

/// Unmounts and removes a namespace file made by [`create_netns`]; the namespace goes away
/// once nothing else (a process, an open file) holds it. A missing file is not an error.
pub fn remove_netns(path: &Path) -> Result<(), NetworkError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(err(path)(e.into())),
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err(path)(e)),
        _ => Ok(()),
    }
}

/// Whether `path` is a network namespace file.
pub fn is_netns(path: &Path) -> bool {
    File::open(path)
        .ok()
        .and_then(|f| nix::sys::statfs::fstatfs(&f).ok())
        .is_some_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}
