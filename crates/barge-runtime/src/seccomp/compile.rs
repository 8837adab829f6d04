//! `linux.seccomp` -> libseccomp filter context -> BPF instructions.
//!
//! Semantics follow runc (the reference for what profiles in the wild expect):
//! - a syscall name libseccomp does not know is skipped, not an error: profiles list
//!   syscalls newer than the host's libseccomp or kernel;
//! - a rule whose action equals the default action is skipped (libseccomp refuses it and it
//!   would change nothing);
//! - the args of one rule are ANDed, except that when two or more args name the same index
//!   each arg becomes a rule of its own (ORed), since libseccomp cannot AND two comparisons
//!   on one argument;
//! - `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` default to `EPERM` when no errno is given;
//! - `SCMP_ACT_KILL` is "kill the thread" (`SCMP_ACT_KILL_THREAD`);
//! - unless the default action allows, native syscalls numbered above every syscall the
//!   profile names return `ENOSYS` rather than the default action (runc's "-ENOSYS stub"),
//!   so that libc falls back from syscalls newer than the profile or the host's libseccomp.

use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::{flag, SeccompError, SeccompFilter};

/// The kernel's limit on a classic BPF program's length (`BPF_MAXINSNS`).
pub(super) const BPF_MAXINSNS: usize = 4096;

/// The number of syscall arguments seccomp can look at.
const SYSCALL_ARGS: usize = 6;

/// Syscalls the runtime's init may need between loading the filter and handing the listener
/// fd to the parent; sending them to the (not yet connected) agent would hang the container.
const NOT_NOTIFIABLE: &[&str] = &["write", "sendmsg"];

fn invalid(field: String, reason: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Compiles `profile` for the host's architectures.
///
/// Everything that can fail does so here, in the runtime's parent: the profile is validated
/// (errors name the field, e.g. `linux.seccomp.syscalls[3].args[0].index`), the requested
/// flags are probed against the kernel, and the filter is exported as BPF so that
/// [`SeccompFilter::load`] is a lone system call.
pub fn compile(profile: &LinuxSeccomp) -> Result<SeccompFilter, SeccompError> {
    let default_action = to_action(
        profile.default_action(),
        profile.default_errno_ret(),
        "linux.seccomp.defaultAction",
        "linux.seccomp.defaultErrnoRet",
    )?;
    if default_action == ScmpAction::Notify {
        return Err(invalid(
            "linux.seccomp.defaultAction".into(),
            "SCMP_ACT_NOTIFY cannot be the default action: the container's init could not \
             hand the listener fd over before its own syscalls block",
        ));
    }
    if profile.listener_metadata().is_some() && profile.listener_path().is_none() {
        return Err(invalid(
            "linux.seccomp.listenerMetadata".into(),
            "must not be set without linux.seccomp.listenerPath",
        ));
    }
    if let Some(path) = profile.listener_path() {
        if path.as_os_str().is_empty() {
            return Err(invalid(
                "linux.seccomp.listenerPath".into(),
                "must not be empty",
            ));
        }
    }

    let mut ctx =
        ScmpFilterContext::new(default_action).map_err(|source| SeccompError::Libseccomp {
            op: "creating the filter context",
            source,
        })?;

    for (i, arch) in profile.architectures().iter().flatten().enumerate() {
        ctx.add_arch(to_arch(*arch)).map_err(|e| {
            invalid(
                format!("linux.seccomp.architectures[{i}]"),
                format!("not supported on this host: libseccomp cannot add {arch}: {e}"),
            )
        })?;
    }

    let flags = profile_flags(profile)?;

    let mut notify = false;
    let mut max_native_nr: Option<i32> = None;
    for (i, syscall) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let action = to_action(
            syscall.action(),
            syscall.errno_ret(),
            &format!("{field}.action"),
            &format!("{field}.errnoRet"),
        )?;
        if syscall.names().is_empty() {
            return Err(invalid(
                format!("{field}.names"),
                "must contain at least one syscall name",
            ));
        }
        let conditions = to_conditions(syscall.args().as_deref().unwrap_or(&[]), &field)?;
        let separate = has_repeated_index(syscall.args().as_deref().unwrap_or(&[]));
        for (j, name) in syscall.names().iter().enumerate() {
            if name.is_empty() {
                return Err(invalid(format!("{field}.names[{j}]"), "empty syscall name"));
            }
            if action == ScmpAction::Notify && NOT_NOTIFIABLE.contains(&name.as_str()) {
                return Err(invalid(
                    format!("{field}.names[{j}]"),
                    format!(
                        "SCMP_ACT_NOTIFY on {name} would block the runtime's own hand-over \
                         of the listener fd"
                    ),
                ));
            }
            // A name libseccomp does not know: an old libseccomp, or a syscall of another
            // architecture; runc skips those and so do we.
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let raw = nr.as_raw_syscall();
            if raw >= 0 {
                max_native_nr = Some(max_native_nr.map_or(raw, |m| m.max(raw)));
            }
            if action == default_action {
                continue;
            }
            let result = if conditions.is_empty() {
                ctx.add_rule(action, nr).map(|_| ())
            } else if separate {
                conditions.iter().try_for_each(|c| {
                    ctx.add_rule_conditional(action, nr, std::slice::from_ref(c))
                        .map(|_| ())
                })
            } else {
                ctx.add_rule_conditional(action, nr, &conditions)
                    .map(|_| ())
            };
            result.map_err(|e| {
                invalid(
                    format!("{field}.names[{j}]"),
                    format!("libseccomp refused the rule for {name}: {e}"),
                )
            })?;
            if action == ScmpAction::Notify {
                notify = true;
            }
        }
    }

    if notify && flags & flag::TSYNC != 0 && !kernel_supports_flag(flag::TSYNC | flag::TSYNC_ESRCH)
    {
        // TSYNC with a listener needs TSYNC_ESRCH (Linux 5.7).
        return Err(invalid(
            "linux.seccomp.flags".into(),
            "not supported on this host: SECCOMP_FILTER_FLAG_TSYNC together with \
             SCMP_ACT_NOTIFY needs SECCOMP_FILTER_FLAG_TSYNC_ESRCH (Linux 5.7)",
        ));
    }

    let mut program = export(&ctx)?;
    // Permissive defaults need no ENOSYS prologue, nor does a default that is ENOSYS already.
    if !matches!(
        default_action,
        ScmpAction::Allow | ScmpAction::Log | ScmpAction::Errno(libc::ENOSYS)
    ) {
        if let Some(max) = max_native_nr {
            program = enosys_prologue(max).into_iter().chain(program).collect();
        }
    }
    if program.len() > BPF_MAXINSNS {
        return Err(invalid(
            "linux.seccomp.syscalls".into(),
            format!(
                "the compiled filter has {} BPF instructions, more than the kernel's {BPF_MAXINSNS}",
                program.len()
            ),
        ));
    }

    Ok(SeccompFilter {
        program,
        flags,
        notify,
        listener_path: profile.listener_path().clone(),
        listener_metadata: profile.listener_metadata().clone(),
    })
}

/// The seccomp(2) flags of `linux.seccomp.flags`, each probed against the running kernel.
pub(super) fn profile_flags(profile: &LinuxSeccomp) -> Result<u64, SeccompError> {
    let mut flags = 0u64;
    for (i, flag) in profile.flags().iter().flatten().enumerate() {
        let bit = flag_bit(*flag);
        if !kernel_supports_flag(bit) {
            return Err(invalid(
                format!("linux.seccomp.flags[{i}]"),
                format!("not supported on this host: the kernel does not know {flag}"),
            ));
        }
        flags |= bit;
    }
    Ok(flags)
}

/// The libseccomp action for an OCI action and its optional errno.
fn to_action(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    action_field: &str,
    errno_field: &str,
) -> Result<ScmpAction, SeccompError> {
    let errno_value = |errno: Option<u32>| -> Result<u16, SeccompError> {
        match errno {
            None => Ok(libc::EPERM as u16),
            Some(v) => u16::try_from(v).map_err(|_| {
                invalid(
                    errno_field.to_string(),
                    format!("{v} does not fit seccomp's 16-bit return data"),
                )
            }),
        }
    };
    let act = match action {
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(errno_value(errno)?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno_value(errno)?),
        other => {
            if let Some(v) = errno {
                return Err(invalid(
                    errno_field.to_string(),
                    format!(
                        "{v} given but {action_field} is {other}, which returns no errno \
                         (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
                    ),
                ));
            }
            match other {
                LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
                    ScmpAction::KillThread
                }
                LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
                LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
                LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
                LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
                LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
                LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace => {
                    unreachable!("handled above")
                }
            }
        }
    };
    Ok(act)
}

/// The libseccomp comparisons for a rule's args.
fn to_conditions(
    args: &[oci_spec::runtime::LinuxSeccompArg],
    field: &str,
) -> Result<Vec<ScmpArgCompare>, SeccompError> {
    args.iter()
        .enumerate()
        .map(|(k, arg)| {
            let index = arg.index();
            if index >= SYSCALL_ARGS {
                return Err(invalid(
                    format!("{field}.args[{k}].index"),
                    format!("{index} is not a syscall argument index (0 to 5)"),
                ));
            }
            let op = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
                LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
                // For MASKED_EQ, `value` is the mask and `valueTwo` the value compared with
                // the masked argument (as runc and libseccomp's datum_a/datum_b).
                LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
            };
            let datum = match arg.op() {
                LinuxSeccompOperator::ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
                _ => arg.value(),
            };
            // `index` < 6 was checked above.
            Ok(ScmpArgCompare::new(index as u32, op, datum))
        })
        .collect()
}

/// Whether two or more args compare the same argument index.
fn has_repeated_index(args: &[oci_spec::runtime::LinuxSeccompArg]) -> bool {
    let mut seen = [false; SYSCALL_ARGS];
    for arg in args {
        if let Some(slot) = seen.get_mut(arg.index()) {
            if *slot {
                return true;
            }
            *slot = true;
        }
    }
    false
}

/// The libseccomp architecture token for an OCI one.
fn to_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// The seccomp(2) flag bit for an OCI filter flag.
fn flag_bit(flag: LinuxSeccompFilterFlag) -> u64 {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flag::TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => flag::LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flag::SPEC_ALLOW,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => flag::WAIT_KILLABLE_RECV,
    }
}

/// Whether the kernel knows the filter flag `bit`: seccomp(2) with a NULL program fails with
/// EFAULT (reading the program) when the flags are valid and EINVAL when they are not; it
/// installs nothing either way (libseccomp probes the same way).
fn kernel_supports_flag(bit: u64) -> bool {
    let mut flags = bit;
    if bit & (flag::WAIT_KILLABLE_RECV | flag::TSYNC_ESRCH) != 0 {
        // Only valid (or only meaningful) together with a listener.
        flags |= flag::NEW_LISTENER;
    }
    // SAFETY: a NULL program pointer makes the kernel fail with EFAULT before it creates or
    // installs anything; no memory of ours is touched.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            flags as libc::c_ulong,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc < 0 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
}

/// Exports the context as BPF through a memfd (libseccomp 2.5 has no in-memory export)
/// and decodes it into instructions.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let fd =
        nix::sys::memfd::memfd_create(c"barge-seccomp-bpf", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| SeccompError::Export {
                op: "memfd_create",
                source: e.into(),
            })?;
    ctx.export_bpf(&fd)
        .map_err(|source| SeccompError::Libseccomp {
            op: "seccomp_export_bpf",
            source,
        })?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|source| SeccompError::Export {
            op: "reading the memfd back",
            source,
        })?;
    const INSN: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % INSN != 0 || bytes.is_empty() {
        return Err(SeccompError::Export {
            op: "decoding",
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} bytes is not a whole number of BPF instructions",
                    bytes.len()
                ),
            ),
        });
    }
    Ok(bytes
        .chunks_exact(INSN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

/// The audit architecture value seccomp reports for the native ABI, if we know it.
fn native_audit_arch() -> Option<u32> {
    // From <linux/audit.h>: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
    if cfg!(all(target_arch = "x86_64", target_pointer_width = "64")) {
        Some(0xc000_003e)
    } else if cfg!(target_arch = "aarch64") {
        Some(0xc000_00b7)
    } else if cfg!(target_arch = "riscv64") {
        Some(0xc000_00f3)
    } else if cfg!(target_arch = "s390x") {
        Some(0x8000_0016)
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        Some(0xc000_0015)
    } else if cfg!(target_arch = "loongarch64") {
        Some(0xc000_0102)
    } else {
        None
    }
}

/// A prologue returning `ENOSYS` for native syscalls numbered above every syscall the profile
/// names (like runc's patchbpf): such syscalls were added after the profile was written (or
/// after the host's libseccomp), and `ENOSYS` makes libc fall back to an older syscall where
/// the default action's `EPERM` would make it fail (`clone3`, `fchmodat2`, `cachestat`...).
/// Other architectures fall through to libseccomp's program unchanged.
fn enosys_prologue(max_nr: i32) -> Vec<libc::sock_filter> {
    let Some(audit_arch) = native_audit_arch() else {
        return Vec::new();
    };
    let Ok(max_nr) = u32::try_from(max_nr) else {
        return Vec::new();
    };
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // offsetof(struct seccomp_data, arch) = 4, nr = 0. Jumps are relative to the next
    // instruction; "out" is the first instruction after the prologue (index 6).
    let x32_bit: u32 = 0x4000_0000;
    vec![
        insn(LD_W_ABS, 0, 0, 4),
        insn(JEQ_K, 0, 4, audit_arch),
        insn(LD_W_ABS, 0, 0, 0),
        // x86_64's x32 ABI shares the audit arch and sets bit 30 of the number: leave those
        // to libseccomp's program. No other native ABI uses numbers that large.
        insn(JGE_K, 2, 0, x32_bit),
        insn(JGT_K, 0, 1, max_nr),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_index_detected() {
        let arg = |index| {
            oci_spec::runtime::LinuxSeccompArgBuilder::default()
                .index(index as usize)
                .value(1u64)
                .op(LinuxSeccompOperator::ScmpCmpEq)
                .build()
                .expect("valid arg")
        };
        assert!(!has_repeated_index(&[arg(0), arg(1)]));
        assert!(has_repeated_index(&[arg(0), arg(1), arg(0)]));
        assert!(!has_repeated_index(&[]));
    }
}
