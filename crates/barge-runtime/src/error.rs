//! The runtime's error type. Each module has its own typed error; [`Error`] gathers them so
//! that a caller sees one type and a message that names the problem.

use std::path::PathBuf;

/// Any error of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json is missing, malformed, or asks for something invalid.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// A cgroup could not be created, configured, read or removed.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    /// The seccomp profile could not be compiled or loaded.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// The container's root filesystem could not be set up.
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    /// The container's state could not be read or written.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// A container lifecycle operation failed.
    #[error(transparent)]
    Container(#[from] crate::container::ContainerError),
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path the operation was on.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
