//! The spec's seccomp profile (`linux.seccomp`) compiled to a BPF program and loaded.
//!
//! Compilation happens before the container's process is cloned so that a bad profile fails
//! early and cleanly; loading happens in the container's init just before `execve`.
//!
//! The split is deliberate: [`compile`] does all the work (validation, libseccomp, syscall
//! tables, architecture handling, probing the kernel for flags) in the runtime's parent and
//! exports the result as a plain array of BPF instructions. [`SeccompFilter::load`] in the
//! child is then a single `seccomp(2)` system call: it neither allocates nor touches
//! libseccomp, so it is safe after `clone`/`fork` and costs next to nothing at start time.
//!
//! How the lifecycle uses it:
//! 1. parent, before cloning: `let filter = compile_cached(profile, &cache_dir)?` (or
//!    [`compile`]); optionally [`validate_json`] on the raw `linux.seccomp` first, for
//!    field-precise errors on unknown names;
//! 2. init, last step before `execve`: `prctl(PR_SET_NO_NEW_PRIVS)` if the spec asks, then
//!    `filter.load()`. Without `noNewPrivileges` the init must still hold `CAP_SYS_ADMIN`
//!    (in its user namespace) at that point, so load before dropping capabilities;
//! 3. if `load` returned a listener fd: the init passes it to the parent (SCM_RIGHTS over the
//!    sync socket) and closes its copy before `execve`; the parent calls
//!    [`SeccompFilter::send_listener`] with the container's state JSON, then closes it.
//!
//! Submodules:
//! - `compile`: profile -> libseccomp context -> BPF;
//! - `cache`: [`compile_cached`], the same with compiled BPF reused across starts;
//! - `json`: [`validate_json`], field-precise errors for unknown names in the raw JSON;
//! - `profile`: [`docker_default_profile`], moby's default allow-list as data;
//! - `notify`: [`send_listener_fd`], the hand-over of the user-notification fd to a seccomp
//!   agent (`linux.seccomp.listenerPath`).

mod cache;
mod compile;
mod json;
mod notify;
mod profile;

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub use cache::compile_cached;
pub use compile::compile;
pub use json::validate_json;
pub use notify::send_listener_fd;
pub use profile::docker_default_profile;

/// seccomp(2)'s `SECCOMP_FILTER_FLAG_*` as `u64` (libc has them as `c_ulong`).
#[allow(clippy::unnecessary_cast)] // c_ulong is u32 on 32-bit targets.
pub mod flag {
    /// Synchronise all threads of the process to the filter.
    pub const TSYNC: u64 = libc::SECCOMP_FILTER_FLAG_TSYNC as u64;
    /// Log every action but `SECCOMP_RET_ALLOW`.
    pub const LOG: u64 = libc::SECCOMP_FILTER_FLAG_LOG as u64;
    /// Disable the speculative store bypass mitigation.
    pub const SPEC_ALLOW: u64 = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u64;
    /// Return a user-notification listener fd.
    pub const NEW_LISTENER: u64 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u64;
    /// With `TSYNC`: fail with ESRCH instead of returning a thread id (needed with a listener).
    pub const TSYNC_ESRCH: u64 = libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u64;
    /// Wait killably once the agent has received a notification.
    pub const WAIT_KILLABLE_RECV: u64 = libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u64;
}

/// The seccomp profile could not be compiled or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile is invalid, or asks for what this host's kernel or libseccomp cannot do
    /// (an architecture, a filter flag); names the field at fault.
    #[error("{field}: {reason}")]
    Invalid {
        /// The JSON path of the field (for example `linux.seccomp.syscalls[3].args[0].op`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// libseccomp failed outside of any one field (creating the context, exporting BPF).
    #[error("libseccomp: {op}: {source}")]
    Libseccomp {
        /// What was being done.
        op: &'static str,
        /// libseccomp's error.
        source: libseccomp::error::SeccompError,
    },
    /// An I/O error while exporting the BPF program (memfd).
    #[error("exporting the seccomp BPF program: {op}: {source}")]
    Export {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The `seccomp(2)` system call refused the filter. `EACCES` means the caller holds
    /// neither `no_new_privs` nor `CAP_SYS_ADMIN`.
    #[error("seccomp(SECCOMP_SET_MODE_FILTER, flags {flags:#x}): {errno}")]
    Load {
        /// The flags passed to seccomp(2).
        flags: u64,
        /// The kernel's error.
        errno: nix::errno::Errno,
    },
    /// Sending the user-notification fd to the seccomp agent failed.
    #[error("linux.seccomp.listenerPath {path}: {reason}")]
    Listener {
        /// The agent's socket.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// A compiled seccomp filter, ready to load.
///
/// Holds the BPF program (for the native architecture and the profile's other
/// architectures), the `seccomp(2)` flags, whether the program can return
/// `SECCOMP_RET_USER_NOTIF`, and the profile's listener settings for the lifecycle.
#[derive(Clone)]
pub struct SeccompFilter {
    /// The BPF program, as exported by libseccomp (plus our ENOSYS prologue, if any).
    program: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` from the profile (without `NEW_LISTENER`, added by `load`).
    flags: u64,
    /// Whether any rule of the program uses `SCMP_ACT_NOTIFY`.
    notify: bool,
    /// `linux.seccomp.listenerPath`.
    listener_path: Option<PathBuf>,
    /// `linux.seccomp.listenerMetadata`.
    listener_metadata: Option<String>,
}

impl std::fmt::Debug for SeccompFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompFilter")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("notify", &self.notify)
            .field("listener_path", &self.listener_path)
            .field("listener_metadata", &self.listener_metadata)
            .finish()
    }
}

impl SeccompFilter {
    /// Loads the filter into the calling thread's process. Returns the user-notification
    /// listener fd when the profile uses `SCMP_ACT_NOTIFY`.
    ///
    /// The caller must hold `no_new_privs` (`prctl(PR_SET_NO_NEW_PRIVS)`) or `CAP_SYS_ADMIN`
    /// in its user namespace, else the kernel answers `EACCES`. So when the spec does not ask
    /// for `noNewPrivileges`, load the filter before dropping capabilities; otherwise as late
    /// as possible, just before `execve`. The filter applies to the calling thread (and, with
    /// `SECCOMP_FILTER_FLAG_TSYNC`, to its siblings) and is inherited across `execve`.
    ///
    /// This function does not allocate and does not call into libseccomp: it is a single
    /// `seccomp(2)` system call, safe in a child after `fork`/`clone`.
    ///
    /// When a listener fd is returned, the process has to hand it over (see
    /// [`send_listener_fd`]) before it makes any syscall the profile sends to the agent;
    /// `compile` refuses `SCMP_ACT_NOTIFY` as the default action and on `write`/`sendmsg` for
    /// that reason.
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        let flags = self.load_flags();
        let prog = libc::sock_fprog {
            // compile() checked the length fits the kernel's limit (BPF_MAXINSNS <= u16::MAX).
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: seccomp(2) reads `prog` and the `len` instructions it points to, both
        // alive for the duration of the call; it does not keep the pointers.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                flags as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc < 0 {
            return Err(SeccompError::Load {
                flags,
                errno: nix::errno::Errno::last(),
            });
        }
        if self.notify {
            let fd = libc::c_int::try_from(rc).map_err(|_| SeccompError::Load {
                flags,
                errno: nix::errno::Errno::EBADF,
            })?;
            // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER, a non-negative return value is
            // a new file descriptor that nothing else owns.
            Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
        } else if rc != 0 {
            // With TSYNC (and no TSYNC_ESRCH) a positive value is the id of a thread that
            // could not be synchronised; the filter was not installed.
            Err(SeccompError::Load {
                flags,
                errno: nix::errno::Errno::ESRCH,
            })
        } else {
            Ok(None)
        }
    }

    /// The flags `load` passes to seccomp(2): the profile's, plus `NEW_LISTENER` (and
    /// `TSYNC_ESRCH` when combined with `TSYNC`, which the kernel requires) for notify.
    pub fn load_flags(&self) -> u64 {
        let mut flags = self.flags;
        if self.notify {
            flags |= flag::NEW_LISTENER;
            if flags & flag::TSYNC != 0 {
                flags |= flag::TSYNC_ESRCH;
            }
        } else {
            // The kernel refuses WAIT_KILLABLE_RECV without a listener (EINVAL); without
            // notify rules it has nothing to act on, so it is dropped.
            flags &= !(flag::WAIT_KILLABLE_RECV);
        }
        flags
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits the profile asked for (`linux.seccomp.flags`).
    pub fn flags(&self) -> u64 {
        self.flags
    }

    /// Whether the filter uses `SCMP_ACT_NOTIFY`, i.e. whether `load` returns a listener fd.
    pub fn uses_notify(&self) -> bool {
        self.notify
    }

    /// `linux.seccomp.listenerPath`: where the lifecycle sends the listener fd.
    pub fn listener_path(&self) -> Option<&Path> {
        self.listener_path.as_deref()
    }

    /// `linux.seccomp.listenerMetadata`: opaque data for the seccomp agent.
    pub fn listener_metadata(&self) -> Option<&str> {
        self.listener_metadata.as_deref()
    }

    /// Sends the listener fd returned by [`SeccompFilter::load`] to the profile's
    /// `listenerPath` with the container's state (see [`send_listener_fd`]).
    pub fn send_listener(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        state_json: &str,
    ) -> Result<(), SeccompError> {
        let path = self
            .listener_path
            .as_deref()
            .ok_or_else(|| SeccompError::Invalid {
                field: "linux.seccomp.listenerPath".into(),
                reason: "SCMP_ACT_NOTIFY is used but no listenerPath is set".into(),
            })?;
        send_listener_fd(path, fd, state_json, self.listener_metadata.as_deref())
    }

    /// The BPF program's instructions.
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.program
    }
}
