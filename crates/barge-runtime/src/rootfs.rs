//! The container's root filesystem: mount propagation, the bundle's rootfs bind, the spec's
//! mounts (proc, sysfs, tmpfs, devpts, mqueue, cgroup, binds) with destinations resolved
//! inside the rootfs, default devices and /dev symlinks, `pivot_root`, masked and readonly
//! paths, and a readonly root.
//!
//! Everything here runs in the container's init process, inside its new mount namespace.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

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
}

/// What the rootfs setup needs to know beyond the spec.
#[derive(Debug, Clone, Default)]
pub struct RootfsOptions {
    /// The container's cgroup directories on the host, as (hierarchy name under
    /// /sys/fs/cgroup, e.g. `memory` or `unified` or `` for a pure v2 host, host path).
    /// Used to populate a `cgroup` mount when the container has no cgroup namespace of its own.
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
    let _ = (spec, rootfs, opts);
    unimplemented!("rootfs::prepare_rootfs")
}

/// Makes `rootfs` the root of the current mount namespace with `pivot_root(2)` and detaches
/// the old root; the working directory is `/` afterwards.
pub fn pivot_root(rootfs: &Path) -> Result<(), RootfsError> {
    let _ = rootfs;
    unimplemented!("rootfs::pivot_root")
}

/// After `pivot_root`: applies masked and readonly paths and, if asked, remounts the root
/// readonly.
pub fn finalize_rootfs(spec: &Spec) -> Result<(), RootfsError> {
    let _ = spec;
    unimplemented!("rootfs::finalize_rootfs")
}
