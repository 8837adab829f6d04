//! The container lifecycle: create, start, run, state, kill, delete, exec, ps, pause,
//! resume and list, per the OCI runtime specification's operations.

/// A lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The operation is not allowed in the container's current state.
    #[error("container {id} is {status}: cannot {operation}")]
    WrongState {
        /// The container id.
        id: String,
        /// Its current status.
        status: String,
        /// What was asked.
        operation: &'static str,
    },
}
