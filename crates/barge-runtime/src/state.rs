//! The OCI state model (creating, created, running, stopped) kept under a root directory,
//! one directory per container.
//!
//! Owned by the lifecycle work (see `container`).

/// The container's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No container of that id exists under the root.
    #[error("container {0} does not exist")]
    NotFound(String),
}
