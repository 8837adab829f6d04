//! A minimal init for containers run with `--init` (Docker's `HostConfig.Init`).
//!
//! Docker bind-mounts tini as `/sbin/docker-init` and makes it PID 1. barge needs no binary in
//! the container for that: the runtime's own init process, already loaded and fully set up
//! (user, capabilities, seccomp, cwd, no_new_privs), forks right before `execve`. The child
//! execs the user's program; the parent stays as PID 1 and does what tini does:
//! - forwards every catchable signal it gets (the stop signal included) to the child;
//! - reaps every child, including orphans reparented to it, so no zombie stays;
//! - exits with the child's status: its exit code, or 128 + the signal that killed it.
//!
//! It never runs code from the container (it does not exec) and stays non-dumpable, so the
//! container can neither ptrace it nor open its `/proc/1/exe` or fds (CVE-2019-5736 class).
//! Before waiting it closes every fd, renames itself `barge-init` (comm and cmdline, which
//! otherwise would name the monitor's host directory) and sheds its clean pages and free
//! heap ([`crate::idle`]), so a waiting init costs a few pages.

use crate::process::StepError;

/// The signals the init forwards: every one it can catch, except SIGCHLD (which it handles)
/// and the synchronous faults, which only the kernel sends for its own errors.
fn forwarded(sig: libc::c_int) -> bool {
    !matches!(
        sig,
        libc::SIGCHLD
            | libc::SIGKILL
            | libc::SIGSTOP
            | libc::SIGSEGV
            | libc::SIGBUS
            | libc::SIGILL
            | libc::SIGFPE
            | libc::SIGTRAP
            | libc::SIGSYS
    )
}

/// Every signal blocked. The caller holds them blocked from before the fork, so none sent to
/// the init before it waits is lost, and the child unblocks them itself before `execve`.
pub(crate) fn block_all() {
    // SAFETY: filling and installing a signal mask of this single-threaded process.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Forks the container's process. Returns in the child only (which then execs); the parent
/// becomes the init and never returns. Signals must be blocked (see [`block_all`]) and every
/// disposition at its default before this is called.
pub(crate) fn fork_under_init() -> Result<(), StepError> {
    // Before the fork, so the command never sees PID 1 under its old name (the child's copy
    // of the name goes with its execve).
    rename_self();
    // SAFETY: the init is single-threaded; the child only runs our code until execve.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(StepError::new(
            "fork the process under --init",
            std::io::Error::last_os_error(),
        ));
    }
    if pid == 0 {
        isolate_child();
        return Ok(());
    }
    supervise(pid)
}

/// In the child: its own process group, made the terminal's foreground group when there is a
/// terminal, so the keys (^C, ^Z, ^\) signal the program and not the init, as with tini.
fn isolate_child() {
    // SAFETY: setpgid/tcsetpgrp on ourselves; SIGTTOU is blocked (block_all), so taking the
    // foreground from a background group does not stop us.
    unsafe {
        if libc::setpgid(0, 0) == 0 && libc::isatty(0) == 1 {
            libc::tcsetpgrp(0, libc::getpgrp());
        }
    }
}

/// The init's whole life after the fork: wait for signals, forward or reap, exit with the
/// child's status.
fn supervise(child: libc::pid_t) -> ! {
    // The init does not exec, so it would keep the capabilities execve takes from a
    // non-root user's process; it needs none of them (signalling and reaping its own
    // children need no privilege): as tini exec'd as that user, it holds none.
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        let _ = crate::caps::capset(0, 0, 0);
    }
    // Nothing of the runtime's is needed any more: no stdio (the child has its own copies),
    // no sync socket, no fifo.
    // SAFETY: closing every fd of this process; none is used below.
    unsafe { libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) };
    crate::idle::shed_clean_pages();
    // SAFETY: an all-signals set for sigwaitinfo; the mask is already all-blocked.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t.
    unsafe { libc::sigfillset(&mut set) };
    loop {
        // SAFETY: info is a valid out parameter for one siginfo_t.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: set and info are valid for the call.
        let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
        if sig < 0 {
            continue;
        }
        if sig == libc::SIGCHLD {
            if let Some(code) = reap(child) {
                // SAFETY: _exit ends the init; the container's other processes are killed
                // by the kernel with the pid namespace, as when tini exits.
                unsafe { libc::_exit(code) };
            }
        } else if forwarded(sig) {
            // SAFETY: signalling our own child (a zombie at worst, then a no-op).
            unsafe { libc::kill(child, sig) };
        }
    }
}

/// Reaps every exited child; returns the exit code to leave with once `child` is among them.
fn reap(child: libc::pid_t) -> Option<i32> {
    let mut result = None;
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return result;
        }
        if pid == child {
            result = Some(exit_code(status));
        }
    }
}

/// A wait status as a shell (and tini) reports it: the exit code, or 128 + the signal.
fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// Sets comm and overwrites the argument area (what `/proc/1/cmdline` shows) with
/// `barge-init`: the init is a copy of the runtime's caller, whose arguments name host paths.
fn rename_self() {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"barge-init".as_ptr(), 0, 0, 0) };
    let Some((start, end)) = arg_area() else {
        return;
    };
    let name = b"barge-init\0";
    if end <= start {
        return;
    }
    let len = end - start;
    // SAFETY: [start, end) is this process's argument area on its initial stack (from
    // /proc/self/stat), mapped and writable; nothing in this process reads the arguments
    // again, so overwriting them in place affects only what /proc shows.
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, len);
        std::ptr::copy_nonoverlapping(name.as_ptr(), p, name.len().min(len - 1));
        // A non-NUL last byte tells the kernel the title was rewritten (setproctitle): it
        // then shows the area up to the first NUL, not the NUL padding after the name.
        if len > name.len() {
            *p.add(len - 1) = b' ';
        }
    }
}

/// `arg_start` and `arg_end` of /proc/self/stat (fields 48 and 49).
fn arg_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_arg_area(&stat)
}

fn parse_arg_area(stat: &str) -> Option<(usize, usize)> {
    // comm may hold spaces and parentheses: fields are counted after its closing one, which
    // is the last ')' of the line. Field 3 is the first after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(48 - 3);
    let start = f.next()?.parse().ok()?;
    let end = f.next()?.parse().ok()?;
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        // Built the way the kernel encodes wait statuses.
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(libc::SIGKILL), 137);
        assert_eq!(exit_code(libc::SIGTERM), 143);
    }

    #[test]
    fn the_stop_signal_is_forwarded_and_faults_are_not() {
        for s in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGWINCH,
        ] {
            assert!(forwarded(s), "signal {s}");
        }
        assert!(forwarded(libc::SIGRTMIN() + 3));
        for s in [libc::SIGCHLD, libc::SIGKILL, libc::SIGSEGV] {
            assert!(!forwarded(s), "signal {s}");
        }
    }

    #[test]
    fn arg_area_is_read_after_the_last_parenthesis() {
        let own = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let (s, e) = parse_arg_area(&own).expect("arg area of this process");
        assert!(e > s);
        // A comm with spaces and a ')' must not shift the fields.
        let idx = own.rfind(')').expect(")");
        let odd = format!("1 (a) b c){}", &own[idx + 1..]);
        assert_eq!(parse_arg_area(&odd), Some((s, e)));
        assert_eq!(parse_arg_area("1 (x) R 0"), None);
    }
}
