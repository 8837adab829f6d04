//! cgroup management for v2, v1 and hybrid hosts: create the container's cgroup, apply the
//! spec's `linux.resources` (memory, cpu, cpuset, pids, block I/O, hugepages, network
//! class/priorities, `unified` keys and the device allow list), move processes in, freeze and
//! thaw, kill everything, read usage back for stats, and remove it.
//!
//! - [`layout`]: which hierarchies the host mounts and where, and how the spec's
//!   `cgroupsPath` (absolute, relative or systemd `slice:prefix:name`) maps onto them;
//! - [`resources`]: the spec's resources written to v1 or v2 files;
//! - [`devices`]: the device rules (v1 `devices.allow`/`devices.deny`, v2 an eBPF program);
//! - [`stats`]: usage figures read back ([`CgroupStats`]).

use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

pub mod devices;
mod fs;
pub mod layout;
mod manager;
pub mod resources;
pub mod stats;

pub use layout::{Layout, Mode};
pub use manager::Cgroup;
pub use stats::CgroupStats;

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
    /// The cgroups path leaves the cgroup root (`..`) or is malformed.
    #[error("linux.cgroupsPath {path:?}: {reason}")]
    Path {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A resource value is out of range or inconsistent; names the spec field.
    #[error("linux.resources.{field}: {reason}")]
    Invalid {
        /// The spec field, e.g. `memory.swap`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The spec asks for a controller or feature this host does not have.
    #[error("linux.resources.{field}: {what} is not available on this host")]
    Unsupported {
        /// The spec field.
        field: &'static str,
        /// The missing controller or file.
        what: String,
    },
    /// No cgroup hierarchy is mounted under /sys/fs/cgroup.
    #[error("no cgroup hierarchy is mounted under /sys/fs/cgroup")]
    NoHierarchy,
    /// A cgroup file did not hold what the kernel documents.
    #[error("cgroup {file}: cannot parse {value:?}")]
    Parse {
        /// The file.
        file: PathBuf,
        /// What it held.
        value: String,
    },
    /// A bpf(2) call for the v2 device filter failed.
    #[error("device filter: bpf {op}: {source}{log}")]
    Bpf {
        /// The bpf command.
        op: &'static str,
        /// The kernel's answer.
        source: std::io::Error,
        /// The verifier's log, if any (starting with a newline).
        log: String,
    },
    /// Freezing, killing or removing did not finish in time.
    #[error("cgroup {path}: {what} did not finish in time")]
    Timeout {
        /// The cgroup directory.
        path: PathBuf,
        /// What was waited for.
        what: &'static str,
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

/// One container's cgroup on this host.
pub trait CgroupManager {
    /// Creates the cgroup (all hierarchies) and applies `resources`. On error nothing is left.
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError>;
    /// Applies `resources` to an existing cgroup (for `update`).
    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Moves process `pid` into the cgroup.
    fn add_process(&self, pid: i32) -> Result<(), CgroupError>;
    /// Freezes every process of the cgroup and waits until the kernel reports it frozen.
    fn freeze(&self) -> Result<(), CgroupError>;
    /// Thaws every process of the cgroup.
    fn thaw(&self) -> Result<(), CgroupError>;
    /// The freezer's state.
    fn freezer_state(&self) -> Result<FreezerState, CgroupError>;
    /// The pids of every process in the cgroup.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Kills every process of the cgroup (v2 `cgroup.kill`, else SIGKILL to each pid, thawing
    /// a frozen cgroup) and waits until it is empty.
    fn kill_all(&self) -> Result<(), CgroupError>;
    /// Usage figures.
    fn stats(&self) -> Result<CgroupStats, CgroupError>;
    /// Whether the kernel's OOM killer has killed a process of this cgroup.
    fn oom_killed(&self) -> Result<bool, CgroupError>;
    /// The container's cgroup directories, as (hierarchy name under /sys/fs/cgroup, host
    /// path), for the container's `cgroup` mount.
    fn paths(&self) -> Vec<(String, PathBuf)>;
    /// Removes the cgroup (its processes must be gone); retries while the kernel says EBUSY.
    fn destroy(&self) -> Result<(), CgroupError>;
}

/// The manager for the container `container_id` at `cgroups_path` (the spec's
/// `linux.cgroupsPath`, absolute, relative, or systemd `slice:prefix:name`), on the host's
/// cgroup layout (v2, v1 or hybrid), detected from /proc/self/mounts.
pub fn manager(
    cgroups_path: Option<&str>,
    container_id: &str,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let layout = Layout::detect()?;
    Ok(Box::new(Cgroup::new(&layout, cgroups_path, container_id)?))
}
