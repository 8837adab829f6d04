//! Helpers for the integration tests of more than one barge crate. Only a dev-dependency:
//! these functions panic with a message instead of returning errors, as tests want.

pub mod busybox;
pub mod registry;

/// True (after printing why) when the test must skip because it does not run as root: the
/// engine, runtime and CLI tests make namespaces, mounts and cgroups.
pub fn skip_unless_root() -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return true;
    }
    false
}
