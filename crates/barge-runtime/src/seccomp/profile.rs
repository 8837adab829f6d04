//! Docker's default seccomp profile (moby `profiles/seccomp/default.json`) as data, resolved
//! for this host's architecture, kernel and a container's capability set.
//!
//! The profile is an allow-list: the default action is `SCMP_ACT_ERRNO` with `EPERM`. Some
//! groups of syscalls are only allowed when a capability is granted (`mount`, `unshare`,
//! `setns`, `bpf`, `perf_event_open`, ...), some only on an architecture, and `clone` is
//! allowed without namespace flags unless `CAP_SYS_ADMIN` is granted.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator,
    LinuxSyscall,
};

/// Syscalls allowed for every container (the profile's first, unconditional group).
const ALWAYS_ALLOWED: &str = "
    _llseek _newselect accept accept4 access adjtimex alarm bind brk cachestat capget capset
    chdir chmod chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64
    clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range
    connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl
    epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve
    execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
    fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64
    fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64
    fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait
    futex_waitv futex_wake futimesat get_robust_list get_thread_area getcpu getcwd getdents
    getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32
    getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
    getresgid32 getresuid getresuid32 getrlimit getrusage getsid getsockname getsockopt gettid
    gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
    inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents
    io_pgetevents_time64 io_setup io_submit ioctl ioprio_get ioprio_set ipc kill
    landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr
    link linkat listen listmount listxattr listxattrat llistxattr lremovexattr lseek lsetxattr
    lstat lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir
    mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify
    mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink
    mremap mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at
    nanosleep newfstatat open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
    pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
    prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read
    readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
    remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall
    riscv_hwprobe rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
    rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
    sched_get_priority_max sched_get_priority_min sched_getaffinity sched_getattr
    sched_getparam sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
    sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp
    select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg
    sendmsg sendto set_robust_list set_thread_area set_tid_address setfsgid setfsgid32 setfsuid
    setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid
    setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid
    setsockopt setuid setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown
    sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat
    stat64 statfs statfs64 statmount statx symlink symlinkat sync sync_file_range syncfs
    sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
    timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
    timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64
    ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes
    vfork vmsplice wait4 waitid waitpid write writev";

/// A condition on the host or the container under which a group applies.
#[derive(Clone, Copy)]
struct When {
    /// Native architectures (Go names, as moby's profile uses them); empty: any.
    arches: &'static [&'static str],
    /// Capabilities that must all be granted; empty: none needed.
    caps: &'static [&'static str],
    /// Minimum kernel (major, minor).
    min_kernel: Option<(u32, u32)>,
}

const ANY: When = When {
    arches: &[],
    caps: &[],
    min_kernel: None,
};

const fn cap(caps: &'static [&'static str]) -> When {
    When {
        arches: &[],
        caps,
        min_kernel: None,
    }
}

const fn arch(arches: &'static [&'static str]) -> When {
    When {
        arches,
        caps: &[],
        min_kernel: None,
    }
}

/// One argument comparison: (index, op, value, valueTwo).
type ArgRule = (usize, LinuxSeccompOperator, u64, u64);

/// A group of syscalls with one action, applied when `include` holds and `exclude` does not.
struct Group {
    names: &'static [&'static str],
    /// `None`: allow. `Some(errno)`: fail with that errno.
    errno: Option<u32>,
    args: &'static [ArgRule],
    include: When,
    /// Skipped when any of its arches matches or any of its caps is granted.
    exclude: Option<When>,
}

const fn allow(names: &'static [&'static str], include: When) -> Group {
    Group {
        names,
        errno: None,
        args: &[],
        include,
        exclude: None,
    }
}

const fn allow_if_arg(names: &'static [&'static str], arg: &'static [ArgRule]) -> Group {
    Group {
        names,
        errno: None,
        args: arg,
        include: ANY,
        exclude: None,
    }
}

/// The namespace flags `clone` may not carry without `CAP_SYS_ADMIN`.
const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// `socket(2)` families the profile refuses: AF_ALG (38) and AF_VSOCK (40); the rules below
/// allow everything below, between and above them.
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

use LinuxSeccompOperator::{
    ScmpCmpEq as EQ, ScmpCmpGt as GT, ScmpCmpLt as LT, ScmpCmpMaskedEq as MASKED_EQ,
};

/// The conditional part of the profile, in moby's order.
const GROUPS: &[Group] = &[
    allow(
        &["process_vm_readv", "process_vm_writev", "ptrace"],
        When {
            arches: &[],
            caps: &[],
            min_kernel: Some((4, 8)),
        },
    ),
    allow_if_arg(&["socket"], &[(0, LT, AF_ALG, 0)]),
    allow_if_arg(&["socket"], &[(0, EQ, AF_ALG + 1, 0)]),
    allow_if_arg(&["socket"], &[(0, GT, AF_VSOCK, 0)]),
    // personality(2): only PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the
    // 0xffffffff query.
    allow_if_arg(&["personality"], &[(0, EQ, 0x0, 0)]),
    allow_if_arg(&["personality"], &[(0, EQ, 0x0008, 0)]),
    allow_if_arg(&["personality"], &[(0, EQ, 0x20000, 0)]),
    allow_if_arg(&["personality"], &[(0, EQ, 0x20008, 0)]),
    allow_if_arg(&["personality"], &[(0, EQ, 0xffff_ffff, 0)]),
    allow(&["sync_file_range2", "swapcontext"], arch(&["ppc64le"])),
    allow(
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        arch(&["arm", "arm64"]),
    ),
    allow(&["arch_prctl"], arch(&["amd64", "x32"])),
    allow(&["modify_ldt"], arch(&["amd64", "x32", "x86"])),
    allow(
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        arch(&["s390", "s390x"]),
    ),
    allow(&["riscv_flush_icache"], arch(&["riscv64"])),
    allow(&["open_by_handle_at"], cap(&["CAP_DAC_READ_SEARCH"])),
    allow(
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        cap(&["CAP_SYS_ADMIN"]),
    ),
    // clone(2) without namespace flags; s390 swaps clone's first two arguments.
    Group {
        names: &["clone"],
        errno: None,
        args: &[(0, MASKED_EQ, CLONE_NS_FLAGS, 0)],
        include: ANY,
        exclude: Some(When {
            arches: &["s390", "s390x"],
            caps: &["CAP_SYS_ADMIN"],
            min_kernel: None,
        }),
    },
    Group {
        names: &["clone"],
        errno: None,
        args: &[(1, MASKED_EQ, CLONE_NS_FLAGS, 0)],
        include: arch(&["s390", "s390x"]),
        exclude: Some(cap(&["CAP_SYS_ADMIN"])),
    },
    // clone3(2) passes its flags in memory seccomp cannot read: ENOSYS makes libc fall back
    // to clone(2), which the rule above checks.
    Group {
        names: &["clone3"],
        errno: Some(libc::ENOSYS as u32),
        args: &[],
        include: ANY,
        exclude: Some(cap(&["CAP_SYS_ADMIN"])),
    },
    allow(&["reboot"], cap(&["CAP_SYS_BOOT"])),
    allow(&["chroot"], cap(&["CAP_SYS_CHROOT"])),
    allow(
        &["delete_module", "init_module", "finit_module"],
        cap(&["CAP_SYS_MODULE"]),
    ),
    allow(&["acct"], cap(&["CAP_SYS_PACCT"])),
    allow(
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        cap(&["CAP_SYS_PTRACE"]),
    ),
    allow(&["iopl", "ioperm"], cap(&["CAP_SYS_RAWIO"])),
    allow(
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        cap(&["CAP_SYS_TIME"]),
    ),
    allow(&["vhangup"], cap(&["CAP_SYS_TTY_CONFIG"])),
    allow(
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        cap(&["CAP_SYS_NICE"]),
    ),
    allow(&["syslog"], cap(&["CAP_SYSLOG"])),
    allow(&["bpf"], cap(&["CAP_BPF"])),
    allow(&["perf_event_open"], cap(&["CAP_PERFMON"])),
];

/// The host's architecture as moby's profile names it (Go's GOARCH spelling).
fn host_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "x86") {
        "x86"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else if cfg!(target_arch = "arm") {
        "arm"
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        "ppc64le"
    } else if cfg!(target_arch = "powerpc64") {
        "ppc64"
    } else if cfg!(target_arch = "s390x") {
        "s390x"
    } else if cfg!(target_arch = "riscv64") {
        "riscv64"
    } else if cfg!(target_arch = "loongarch64") {
        "loong64"
    } else if cfg!(all(target_arch = "mips64", target_endian = "little")) {
        "mipsel64"
    } else if cfg!(target_arch = "mips64") {
        "mips64"
    } else {
        "unknown"
    }
}

/// The architectures the filter covers on this host: the native one and the ABIs its
/// kernel also runs (moby's `archMap`); empty (native only) where moby lists none.
fn host_architectures() -> Vec<Arch> {
    match host_arch() {
        "amd64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "arm64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "mips64" => vec![
            Arch::ScmpArchMips64,
            Arch::ScmpArchMips,
            Arch::ScmpArchMips64n32,
        ],
        "mipsel64" => vec![
            Arch::ScmpArchMipsel64,
            Arch::ScmpArchMipsel,
            Arch::ScmpArchMipsel64n32,
        ],
        "s390x" => vec![Arch::ScmpArchS390x, Arch::ScmpArchS390],
        "riscv64" => vec![Arch::ScmpArchRiscv64],
        "loong64" => vec![Arch::ScmpArchLoongarch64],
        _ => Vec::new(),
    }
}

/// The running kernel's (major, minor), if `uname` can be read and parsed.
fn kernel_version() -> Option<(u32, u32)> {
    let uts = nix::sys::utsname::uname().ok()?;
    let release = uts.release().to_str()?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `CAP_SYS_ADMIN`, `cap_sys_admin` and `SYS_ADMIN` are the same capability.
fn normalize_cap(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// Whether a condition holds: every part that is set must match.
fn holds(when: &When, arch: &str, caps: &[String], kernel: Option<(u32, u32)>) -> bool {
    (when.arches.is_empty() || when.arches.contains(&arch))
        && when.caps.iter().all(|c| caps.iter().any(|g| g == c))
        && when
            .min_kernel
            .is_none_or(|min| kernel.is_some_and(|k| k >= min))
}

/// Whether an exclusion applies: any of its parts matching is enough (as moby evaluates it).
fn excluded(when: &When, arch: &str, caps: &[String], kernel: Option<(u32, u32)>) -> bool {
    when.arches.contains(&arch)
        || when.caps.iter().any(|c| caps.iter().any(|g| g == c))
        || when
            .min_kernel
            .is_some_and(|min| kernel.is_some_and(|k| k >= min))
}

/// Docker's default seccomp profile for a container granted the capabilities `caps`
/// (`CAP_*` names, e.g. the process's bounding set), for this host's architecture.
///
/// Equivalent to moby's `profiles/seccomp/default.json` as Docker resolves it: an allow-list
/// with `SCMP_ACT_ERRNO`/`EPERM` as the default action; `mount`, `unshare`, `setns`, `bpf`,
/// `perf_event_open`, `ptrace` (before 4.8), ... and `clone` with namespace flags only when
/// the matching capability is granted. A kernel version that cannot be read counts as older
/// than any minimum (the stricter choice).
pub fn docker_default_profile(caps: &[String]) -> LinuxSeccomp {
    let caps: Vec<String> = caps.iter().map(|c| normalize_cap(c)).collect();
    let arch = host_arch();
    let kernel = kernel_version();

    let mut syscalls = vec![syscall(
        ALWAYS_ALLOWED
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        None,
        &[],
    )];
    for group in GROUPS {
        if !holds(&group.include, arch, &caps, kernel) {
            continue;
        }
        if group
            .exclude
            .as_ref()
            .is_some_and(|ex| excluded(ex, arch, &caps, kernel))
        {
            continue;
        }
        syscalls.push(syscall(
            group.names.iter().map(|n| n.to_string()).collect(),
            group.errno,
            group.args,
        ));
    }

    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(libc::EPERM as u32));
    let arches = host_architectures();
    profile.set_architectures((!arches.is_empty()).then_some(arches));
    profile.set_syscalls(Some(syscalls));
    profile
}

/// One OCI syscall rule: allow, or fail with `errno`.
fn syscall(names: Vec<String>, errno: Option<u32>, args: &[ArgRule]) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names);
    match errno {
        None => rule.set_action(LinuxSeccompAction::ScmpActAllow),
        Some(e) => {
            rule.set_action(LinuxSeccompAction::ScmpActErrno);
            rule.set_errno_ret(Some(e))
        }
    };
    if !args.is_empty() {
        rule.set_args(Some(
            args.iter()
                .filter_map(|&(index, op, value, value_two)| {
                    // The builder only fails on a missing field; all are set.
                    LinuxSeccompArgBuilder::default()
                        .index(index)
                        .op(op)
                        .value(value)
                        .value_two(value_two)
                        .build()
                        .ok()
                })
                .collect(),
        ));
    }
    rule
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(profile: &LinuxSeccomp) -> Vec<String> {
        profile
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn caps_gate_the_admin_syscalls() {
        let base = docker_default_profile(&["CAP_CHOWN".to_string()]);
        let n = names(&base);
        assert!(n.iter().any(|s| s == "read"));
        assert!(!n.iter().any(|s| s == "mount"));
        assert!(!n.iter().any(|s| s == "unshare"));
        assert!(!n.iter().any(|s| s == "bpf"));
        // clone3 gets ENOSYS and clone a namespace-flag mask without CAP_SYS_ADMIN.
        let clone3 = base
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &["clone3".to_string()])
            .expect("clone3 rule");
        assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));

        let admin = docker_default_profile(&["sys_admin".to_string()]);
        let n = names(&admin);
        assert!(n.iter().any(|s| s == "mount"));
        assert!(n.iter().any(|s| s == "unshare"));
        assert!(n.iter().any(|s| s == "clone"));
        assert!(!admin
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.names() == &["clone3".to_string()]
                && s.action() == LinuxSeccompAction::ScmpActErrno));

        let bpf = docker_default_profile(&["CAP_BPF".to_string()]);
        assert!(names(&bpf).iter().any(|s| s == "bpf"));
        assert!(!names(&bpf).iter().any(|s| s == "mount"));
    }

    #[test]
    fn security_md_syscalls_stay_denied_even_with_every_capability() {
        let all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        let p = docker_default_profile(&all);
        let listed: Vec<String> = p
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect();
        for denied in [
            "keyctl",
            "add_key",
            "request_key",
            "kexec_load",
            "kexec_file_load",
            "userfaultfd",
            "pivot_root",
            "swapon",
            "swapoff",
        ] {
            assert!(!listed.iter().any(|n| n == denied), "{denied} is allowed");
        }
        // ... while what CAP_SYS_ADMIN unlocks is there.
        assert!(listed.iter().any(|n| n == "setns"));
    }

    #[test]
    fn default_is_eperm_allow_list() {
        let p = docker_default_profile(&[]);
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(libc::EPERM as u32));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                p.architectures().as_deref(),
                Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
            );
            assert!(names(&p).iter().any(|s| s == "arch_prctl"));
        }
        assert!(names(&p).len() > 300);
    }
}
