//! The monitor zygote, daemon side.
//!
//! Forking a monitor from one long-lived `barge monitor-zygote` process instead of exec'ing
//! `barge monitor <dir>` for every container lets all monitors share the zygote's pages
//! copy-on-write, in particular the relocated read-only data of the (position-independent)
//! barge executable; each monitor then only owns the pages it writes.
//!
//! The daemon execs the zygote once (lazily, or from [`Zygote::ensure`] at start-up) with one
//! end of a `SOCK_SEQPACKET` socketpair as its stdin and `/dev/null` as stdout and stderr:
//! that socket is the zygote's only connection to the daemon, so no path can be connected to
//! and only the daemon can send requests. The zygote checks its peer (SO_PEERCRED: our uid,
//! its parent) and answers [`READY`]. A request is one message: the container's exec dir
//! (bytes) with two fds in `SCM_RIGHTS`, the read end of the monitor's stdin pipe and the write
//! end of its stdout pipe. The zygote forks; the child closes the zygote socket, puts the two
//! fds on 0 and 1 and runs exactly `barge monitor <dir>` (which forks again and detaches, so
//! the zygote only reaps that short-lived intermediate process). The protocol on the pipes is
//! the monitor's (see [`crate::monitor`]). There is no reply: a failed fork closes the pipes,
//! which the daemon reads as "the monitor failed to start".
//!
//! When the daemon exits (or is killed) the zygote reads EOF and exits; running monitors never
//! depend on it. If it dies the next request starts a new one; if that fails too the caller
//! falls back to exec'ing `barge monitor <dir>`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The byte the zygote sends when it is ready for requests.
pub const READY: u8 = b'R';

/// The argument that makes the barge binary a monitor zygote.
pub const ZYGOTE_ARG: &str = "monitor-zygote";

struct Running {
    sock: OwnedFd,
    child: std::process::Child,
}

/// The daemon's handle on its monitor zygote.
pub struct Zygote {
    /// False when `BARGE_MONITOR_ZYGOTE=0`: every monitor is exec'd.
    enabled: bool,
    exe: PathBuf,
    exec_root: PathBuf,
    state: Mutex<Option<Running>>,
}

impl std::fmt::Debug for Zygote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zygote")
            .field("exe", &self.exe)
            .field("pid", &self.pid())
            .finish()
    }
}

fn os(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os("pipe"));
    }
    // SAFETY: both fds were just created and are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Zygote {
    /// A handle; nothing is started until [`Zygote::ensure`] or the first request. The
    /// environment variable `BARGE_MONITOR_ZYGOTE=0` turns the zygote off.
    pub fn new(exe: PathBuf, exec_root: PathBuf) -> Zygote {
        Zygote {
            enabled: std::env::var_os("BARGE_MONITOR_ZYGOTE").is_none_or(|v| v != "0"),
            exe,
            exec_root,
            state: Mutex::new(None),
        }
    }

    /// The zygote's pid, if one is running.
    pub fn pid(&self) -> Option<u32> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|r| r.child.id())
    }

    /// Starts the zygote unless one is running.
    pub fn ensure(&self) -> Result<u32, String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.ensure_locked(&mut st)
    }

    fn ensure_locked(&self, st: &mut Option<Running>) -> Result<u32, String> {
        if !self.enabled {
            return Err("turned off (BARGE_MONITOR_ZYGOTE=0)".into());
        }
        if let Some(r) = st.as_mut() {
            match r.child.try_wait() {
                Ok(None) => return Ok(r.child.id()),
                Ok(Some(s)) => tracing::warn!("monitor zygote {} exited ({s})", r.child.id()),
                Err(e) => tracing::warn!("monitor zygote {}: {e}", r.child.id()),
            }
            *st = None;
        }
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two fds into the array.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        } != 0
        {
            return Err(os("socketpair"));
        }
        // SAFETY: both fds were just created and are ours.
        let (mine, theirs) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A stuck zygote must not hang a start for long: it is then replaced.
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: SO_SNDTIMEO with a valid timeval on our socket.
        unsafe {
            libc::setsockopt(
                mine.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        // std execs at once after its fork (never runs Rust code in the forked child).
        let child = std::process::Command::new(&self.exe)
            .arg(ZYGOTE_ARG)
            .arg(&self.exec_root)
            .current_dir(&self.exec_root)
            .stdin(std::process::Stdio::from(theirs))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("exec {} {ZYGOTE_ARG}: {e}", self.exe.display()))?;
        let mut r = Running { sock: mine, child };
        let pid = r.child.id();
        // It answers one byte once it has checked its socket: only then does it get requests
        // (a zygote that cannot run leaves the caller to exec monitors).
        if let Err(e) = wait_ready(&r.sock) {
            let _ = r.child.kill();
            let _ = r.child.wait();
            return Err(e);
        }
        tracing::info!("monitor zygote started (pid {pid})");
        *st = Some(r);
        Ok(pid)
    }

    /// Asks the zygote to fork a monitor for `dir` whose stdin is `stdin` and stdout `stdout`
    /// (the handshake pipes). Starts (or restarts) the zygote when needed.
    pub fn spawn_monitor(
        &self,
        dir: &Path,
        stdin: BorrowedFd<'_>,
        stdout: BorrowedFd<'_>,
    ) -> Result<(), String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = String::new();
        for _ in 0..2 {
            self.ensure_locked(&mut st)?;
            let Some(r) = st.as_mut() else {
                continue;
            };
            match send(&r.sock, dir, [stdin.as_raw_fd(), stdout.as_raw_fd()]) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // Gone or stuck: replace it (it is our child, killed by its pid).
                    let pid = r.child.id();
                    tracing::warn!("monitor zygote {pid}: {e}; starting a new one");
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    *st = None;
                    last = e;
                }
            }
        }
        Err(last)
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        // Closing the socket makes the zygote exit; reap it.
        if let Some(mut r) = self.state.get_mut().ok().and_then(Option::take) {
            drop(r.sock);
            let _ = r.child.wait();
        }
    }
}

/// Waits (at most 5 s) for the zygote's ready byte.
fn wait_ready(sock: &OwnedFd) -> Result<(), String> {
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, 5000) };
    if r <= 0 {
        return Err(if r == 0 {
            "the monitor zygote did not get ready".into()
        } else {
            os("poll the monitor zygote")
        });
    }
    let mut b = [0u8; 1];
    // SAFETY: reads at most one byte into b; MSG_DONTWAIT: poll said it is readable.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_DONTWAIT,
        )
    };
    if n == 1 && b[0] == READY {
        Ok(())
    } else {
        Err("the monitor zygote exited at start-up".into())
    }
}

/// Sends one request: `dir` with two fds.
fn send(sock: &OwnedFd, dir: &Path, fds: [i32; 2]) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let data = dir.as_os_str().as_bytes();
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(&fds) as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain data; zeroed then filled with valid pointers below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer holds one cmsg with room for two fds (CMSG_SPACE above).
    unsafe {
        let cm = libc::CMSG_FIRSTHDR(&msg);
        (*cm).cmsg_level = libc::SOL_SOCKET;
        (*cm).cmsg_type = libc::SCM_RIGHTS;
        (*cm).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(&fds) as u32) as _;
        std::ptr::copy_nonoverlapping(
            fds.as_ptr().cast::<u8>(),
            libc::CMSG_DATA(cm),
            std::mem::size_of_val(&fds),
        );
    }
    loop {
        // SAFETY: sendmsg of the message described above; MSG_NOSIGNAL: no SIGPIPE.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(os("send to the monitor zygote"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zygote_that_cannot_run_is_an_error_not_a_hang() {
        let z = Zygote::new("/bin/false".into(), std::env::temp_dir());
        assert!(z.ensure().is_err());
        assert_eq!(z.pid(), None);
        let (r, w) = pipe().expect("pipe");
        use std::os::fd::AsFd;
        let dir = std::env::temp_dir().join("containers/x");
        assert!(z.spawn_monitor(&dir, r.as_fd(), w.as_fd()).is_err());
    }
}
