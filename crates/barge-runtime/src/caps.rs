//! Capabilities: the spec's five sets as kernel bitmasks, and the syscalls that apply them
//! (bounding set drop, capset of effective/permitted/inheritable, ambient raise).
//!
//! A set the spec leaves out is empty: nothing is granted by default (CVE-2022-24769 class:
//! inheritable is only ever what the spec lists).

use oci_spec::runtime::{Capabilities, Capability};

/// Kernel capability names, indexed by capability number.
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default capability set for a container (what the engine and the builder's RUN
/// steps give unless told otherwise).
pub const DOCKER_DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// All capability names the runtime knows, `CAP_` prefixed (for `features`).
pub fn known_names() -> impl Iterator<Item = String> {
    NAMES.iter().map(|n| format!("CAP_{n}"))
}

/// The known capability names (`CAP_` prefixed) in this process's bounding set: what a
/// privileged container can be given (a host that withholds some, e.g. a container or a
/// session without CAP_SYS_RESOURCE, cannot hand them on). All known names when the set
/// cannot be read.
pub fn bounding_names() -> impl Iterator<Item = String> {
    let bnd = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    NAMES
        .iter()
        .enumerate()
        .filter(move |(i, _)| bnd & (1u64 << i) != 0)
        .map(|(_, n)| format!("CAP_{n}"))
}

/// The kernel number of `cap`.
pub fn number(cap: &Capability) -> Option<u32> {
    let name = cap.to_string();
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// The bitmask of a spec set (absent = empty).
pub fn mask(set: Option<&Capabilities>) -> u64 {
    set.into_iter()
        .flatten()
        .filter_map(number)
        .fold(0u64, |m, n| m | (1u64 << n))
}

/// The five sets as masks.
#[derive(Debug, Clone, Copy, Default)]
pub struct CapMasks {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Ambient set.
    pub ambient: u64,
}

impl CapMasks {
    /// The masks of a spec's `process.capabilities` (absent = all empty).
    pub fn from_spec(c: Option<&oci_spec::runtime::LinuxCapabilities>) -> Self {
        match c {
            None => CapMasks::default(),
            Some(c) => CapMasks {
                bounding: mask(c.bounding().as_ref()),
                effective: mask(c.effective().as_ref()),
                inheritable: mask(c.inheritable().as_ref()),
                permitted: mask(c.permitted().as_ref()),
                ambient: mask(c.ambient().as_ref()),
            },
        }
    }
}

/// The highest capability number the kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability not in `keep` from the bounding set. Needs CAP_SETPCAP.
pub fn drop_bounding(keep: u64) -> std::io::Result<()> {
    for n in 0..=last_cap().min(63) {
        if keep & (1u64 << n) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, n as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// Sets the effective, permitted and inheritable sets of the calling thread.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> std::io::Result<()> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: the header and two data structs are laid out as the kernel's v3 ABI expects
    // and live for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Raises each capability of `ambient` into the ambient set (after [`capset`]).
pub fn raise_ambient(ambient: u64) -> std::io::Result<()> {
    if ambient == 0 {
        return Ok(());
    }
    for n in 0..64u32 {
        if ambient & (1u64 << n) == 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                n as libc::c_ulong,
                0,
                0,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_match_kernel_numbers() {
        let set: Capabilities =
            serde_json::from_str(r#"["CAP_CHOWN","CAP_SYS_ADMIN","CAP_CHECKPOINT_RESTORE"]"#)
                .expect("valid caps");
        assert_eq!(mask(Some(&set)), 1 | (1 << 21) | (1 << 40));
        assert_eq!(mask(None), 0);
    }
}
