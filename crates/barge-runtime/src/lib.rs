//! barge-runtime: an OCI runtime. Given an OCI bundle (a `config.json` per the OCI runtime
//! specification 1.2 and a root filesystem) it creates and runs the container's process with
//! the namespaces, mounts, cgroups, capabilities, seccomp filter and hooks the spec asks for,
//! and keeps the container's state (creating, created, running, stopped) under a root directory.
//!
//! It knows nothing of images, daemons or networks: those are the other crates' business.
//! It owns:
//! - [`spec`]: loading and validating `config.json` (errors name the offending field);
//! - [`state`]: the per-container state directory and the OCI state model;
//! - [`cgroups`]: cgroup v1, v2 and hybrid managers (limits, freezer, stats, device rules);
//! - [`seccomp`]: compiling the spec's seccomp profile to BPF and loading it;
//! - [`rootfs`]: the container's mounts, devices, `pivot_root`, masked and readonly paths;
//! - [`container`]: the lifecycle (create, start, run, kill, delete, exec, pause, resume).
//!
//! The runtime is single-threaded by design: it forks, and a fork from a multi-threaded
//! process is only safe when followed at once by `exec`.

pub mod caps;
pub mod cgroups;
pub mod container;
pub mod error;
pub mod hooks;
pub mod idle;
pub(crate) mod init;
pub(crate) mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;

pub use error::{Error, Result};
