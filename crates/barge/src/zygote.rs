//! `barge monitor-zygote <exec root>`: forks the per-container monitors for the daemon, so they
//! share this process's pages (the relocated data of the executable, ...) copy-on-write
//! instead of each carrying its own copy. The protocol is described in
//! `barge_engine::zygote`.
//!
//! Single-threaded, no allocator-heavy start-up: it checks its socket, then loops on one
//! blocking recvmsg(2). Each forked child is `barge monitor <dir>` from its first line on.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The daemon's socket (the zygote's stdin).
const SOCK: RawFd = 0;

/// Runs the zygote until the daemon closes its socket; returns the process exit code.
pub fn main(args: Vec<std::ffi::OsString>) -> i32 {
    let Some(root) = args.get(2).map(PathBuf::from) else {
        eprintln!("usage: barge monitor-zygote <exec root>");
        return 2;
    };
    // SAFETY: closes every fd above stderr: the zygote keeps nothing but its socket and the
    // /dev/null stdout/stderr the daemon gave it.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if let Err(e) = check_peer() {
        eprintln!("barge monitor-zygote: {e}");
        return 1;
    }
    let ready = [barge_engine::zygote::READY];
    // SAFETY: sends one byte from a valid buffer; MSG_NOSIGNAL: no SIGPIPE.
    if unsafe { libc::send(SOCK, ready.as_ptr().cast(), 1, libc::MSG_NOSIGNAL) } != 1 {
        return 1;
    }
    let containers = root.join("containers");
    let mut buf = [0u8; 4096];
    loop {
        let (n, fds) = match recv(&mut buf) {
            Ok(Some(r)) => r,
            // The daemon is gone: so is its zygote.
            Ok(None) => return 0,
            Err(e) => {
                eprintln!("barge monitor-zygote: {e}");
                return 1;
            }
        };
        let dir = PathBuf::from(std::ffi::OsStr::from_bytes(&buf[..n]));
        let Ok([stdin, stdout]) = <[OwnedFd; 2]>::try_from(fds) else {
            continue;
        };
        if !valid_dir(&containers, &dir) {
            // Dropping the fds closes the pipes: the daemon reads EOF.
            continue;
        }
        // SAFETY: fork in a single-threaded process; the child runs the monitor and leaves
        // with _exit, never returning into this loop.
        match unsafe { libc::fork() } {
            -1 => continue,
            0 => become_monitor(dir, stdin, stdout),
            pid => {
                drop((stdin, stdout));
                // The child forks the monitor away at once and exits: reap it.
                let mut status = 0;
                // SAFETY: waitpid on our own child with a valid status pointer.
                while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                }
            }
        }
    }
}

/// In the forked child: the handshake pipes become stdin/stdout (replacing the zygote's
/// socket on fd 0), every other fd is closed, then it is `barge monitor <dir>`.
fn become_monitor(dir: PathBuf, stdin: OwnedFd, stdout: OwnedFd) -> ! {
    // SAFETY: dup2 onto 0 and 1 of fds we own (dup2 closes the zygote socket on 0), then
    // close everything above stderr (the received originals included).
    let ok = unsafe {
        libc::dup2(stdin.as_raw_fd(), 0) == 0
            && libc::dup2(stdout.as_raw_fd(), 1) == 1
            && libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) == 0
    };
    // The fds are closed already; forget the owners.
    std::mem::forget((stdin, stdout));
    let code = if ok {
        crate::monitor::main(vec!["barge".into(), "monitor".into(), dir.into()])
    } else {
        1
    };
    // SAFETY: leave without unwinding into the zygote's loop.
    unsafe { libc::_exit(code) }
}

/// Only the daemon that exec'd us, running as our uid, may send requests.
fn check_peer() -> Result<(), String> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED into a ucred of the given length.
    let r = unsafe {
        libc::getsockopt(
            SOCK,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(format!(
            "stdin is not the daemon's socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: geteuid and getppid cannot fail.
    let (uid, ppid) = unsafe { (libc::geteuid(), libc::getppid()) };
    if cred.uid != uid || cred.pid != ppid {
        return Err(format!(
            "peer uid {} pid {} is not the daemon (uid {uid}, pid {ppid})",
            cred.uid, cred.pid
        ));
    }
    Ok(())
}

/// A container exec dir: `<exec root>/containers/<one plain name>`.
fn valid_dir(containers: &Path, dir: &Path) -> bool {
    let Ok(rest) = dir.strip_prefix(containers) else {
        return false;
    };
    let mut c = rest.components();
    matches!((c.next(), c.next()), (Some(Component::Normal(_)), None))
}

/// Receives one request: its length in `buf` and the fds that came with it; None at EOF.
fn recv(buf: &mut [u8]) -> Result<Option<(usize, Vec<OwnedFd>)>, String> {
    loop {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut cbuf = [0u64; 16];
        // SAFETY: msghdr is plain data; zeroed then filled with valid pointers below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        // SAFETY: recvmsg into the buffers described by msg; received fds are close-on-exec.
        let n = unsafe { libc::recvmsg(SOCK, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
        }
        let mut fds = Vec::new();
        // SAFETY: walking the control messages recvmsg filled in; each SCM_RIGHTS entry is
        // an fd now owned by this process.
        unsafe {
            let mut cm = libc::CMSG_FIRSTHDR(&msg);
            while !cm.is_null() {
                if (*cm).cmsg_level == libc::SOL_SOCKET && (*cm).cmsg_type == libc::SCM_RIGHTS {
                    let bytes = (*cm).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    let p = libc::CMSG_DATA(cm).cast::<RawFd>();
                    for i in 0..bytes / std::mem::size_of::<RawFd>() {
                        fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p.add(i))));
                    }
                }
                cm = libc::CMSG_NXTHDR(&msg, cm);
            }
        }
        if n == 0 && fds.is_empty() {
            return Ok(None);
        }
        if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
            // Not a request of ours: drop it (and its fds).
            continue;
        }
        return Ok(Some((n as usize, fds)));
    }
}
