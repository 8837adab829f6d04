//! The spec's seccomp profile (`linux.seccomp`) compiled to a BPF program and loaded.
//!
//! Compilation happens before the container's process is cloned so that a bad profile fails
//! early and cleanly; loading happens in the container's init just before `execve`.

use oci_spec::runtime::LinuxSeccomp;

/// The seccomp profile could not be compiled or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile is invalid; names the field at fault.
    #[error("linux.seccomp: {field}: {reason}")]
    Invalid {
        /// The JSON path of the field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A compiled seccomp filter, ready to load.
#[derive(Debug, Clone)]
pub struct SeccompFilter {
    _private: (),
}

/// Compiles `profile` for the host's architectures.
pub fn compile(profile: &LinuxSeccomp) -> Result<SeccompFilter, SeccompError> {
    let _ = profile;
    unimplemented!("seccomp::compile")
}

impl SeccompFilter {
    /// Loads the filter into the calling thread's process. Returns the user-notification
    /// listener fd when the profile uses `SCMP_ACT_NOTIFY`.
    pub fn load(&self) -> Result<Option<std::os::fd::OwnedFd>, SeccompError> {
        unimplemented!("SeccompFilter::load")
    }
}
