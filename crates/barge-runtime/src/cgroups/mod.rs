//! cgroup managers for v2, v1 and hybrid hosts behind one trait: create the container's
//! cgroup, apply the spec's resources, move processes in, freeze and thaw, list pids, read
//! usage for stats, and remove it.

use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

/// A cgroup could not be created, configured, read or removed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup file or directory could not be read, made or removed.
    #[error("cgroup {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The kernel refused a value; names the file and the value.
    #[error("cgroup {file}: cannot set {value:?}: {source}")]
    Write {
        /// The cgroup file.
        file: PathBuf,
        /// The value written.
        value: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
}

/// Whether a cgroup's processes are frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    /// Processes run.
    Thawed,
    /// Freezing is in progress.
    Freezing,
    /// Processes are frozen.
    Frozen,
}

/// Usage figures read back from the container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CgroupStats {
    /// Total CPU time, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory in use, bytes.
    pub memory_usage: u64,
    /// Memory limit, bytes (`u64::MAX` when unlimited).
    pub memory_limit: u64,
    /// Number of processes.
    pub pids_current: u64,
}

/// One container's cgroup on this host.
pub trait CgroupManager {
    /// Creates the cgroup (all hierarchies) and applies `resources`. On error nothing is left.
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError>;
    /// Applies `resources` to an existing cgroup (for `update`).
    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Moves process `pid` into the cgroup.
    fn add_process(&self, pid: i32) -> Result<(), CgroupError>;
    /// Freezes every process of the cgroup.
    fn freeze(&self) -> Result<(), CgroupError>;
    /// Thaws every process of the cgroup.
    fn thaw(&self) -> Result<(), CgroupError>;
    /// The freezer's state.
    fn freezer_state(&self) -> Result<FreezerState, CgroupError>;
    /// The pids of every process in the cgroup.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Usage figures.
    fn stats(&self) -> Result<CgroupStats, CgroupError>;
    /// The container's cgroup directories, as (hierarchy name under /sys/fs/cgroup, host
    /// path), for the container's `cgroup` mount.
    fn paths(&self) -> Vec<(String, PathBuf)>;
    /// Removes the cgroup (its processes must be gone).
    fn destroy(&self) -> Result<(), CgroupError>;
}

/// The manager for the container `container_id` at `cgroups_path` (the spec's
/// `linux.cgroupsPath`, absolute, relative, or systemd `slice:prefix:name`), on the host's
/// cgroup layout (v2, v1 or hybrid), detected from /sys/fs/cgroup.
pub fn manager(
    cgroups_path: Option<&str>,
    container_id: &str,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    fallback::manager(cgroups_path, container_id)
}

mod fallback;
