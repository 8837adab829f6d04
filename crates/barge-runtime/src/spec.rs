//! Loading and validating an OCI bundle's `config.json`.
//!
//! Owned by the lifecycle work (see `container`). Every error names the field at fault.

/// An invalid or unreadable `config.json`.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A field holds a value the runtime refuses; the first member names the field
    /// (for example `linux.namespaces[2].type`).
    #[error("config.json: {field}: {reason}")]
    Invalid {
        /// The JSON path of the field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}
