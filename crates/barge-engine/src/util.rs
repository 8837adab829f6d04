//! Small helpers: ids, time, atomic writes.

use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;

/// Whether `s` has the shape of an id from [`new_id`] (64 lower-case hex digits).
pub fn valid_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new random 64-hex id, as Docker's.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8 ^ (std::process::id() as u8).wrapping_mul(i as u8);
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Now as (seconds, nanoseconds) since the epoch.
pub use barge_util::time::now_unix as now;

/// Now in RFC 3339 with nanoseconds (Docker's time format): the runtime's clock, shared.
pub use barge_runtime::state::now_rfc3339;

/// Parses an RFC 3339 time (as written by [`now_rfc3339`]) to seconds.fraction since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    barge_util::time::parse_rfc3339(s).map(|(secs, nanos)| secs as f64 + f64::from(nanos) / 1e9)
}

/// Writes `data` to `path` through a temp file, fsync, rename and an fsync of the directory
/// (the daemon's records must survive a machine crash); mode 0644 (root reads them, and
/// so may tools inspecting the data root, as with Docker's).
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_replace(path, data, true)
}

/// Writes `data` to `path` through a temp file and rename, so a reader (or a daemon restarted
/// after a crash of its own) sees the old or the new content, never half. `durable` adds the
/// fsyncs that make this hold across a host crash too; records that a host crash makes moot
/// anyway (those of a container removed when it exits, whose processes die with the host)
/// skip them: each fsync costs milliseconds on the critical path of `run --rm`.
pub fn write_replace(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let how = barge_util::fs::AtomicWrite {
        mode: 0o644,
        durability: if durable {
            barge_util::fs::Durability::FileAndDir
        } else {
            barge_util::fs::Durability::None
        },
    };
    Ok(barge_util::fs::write_atomic(path, data, how)?)
}

/// Accepts one connection on `l` and receives an fd sent with SCM_RIGHTS.
pub fn recv_fd(l: &std::os::unix::net::UnixListener) -> Result<std::os::fd::OwnedFd, String> {
    let (s, _) = l
        .accept()
        .map_err(|e| format!("console socket accept: {e}"))?;
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; zeroed then filled with valid pointers below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: recvmsg into the buffers described by msg.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!(
            "console socket recvmsg: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: walking the control messages recvmsg filled in.
    unsafe {
        let cm = libc::CMSG_FIRSTHDR(&msg);
        if !cm.is_null()
            && (*cm).cmsg_level == libc::SOL_SOCKET
            && (*cm).cmsg_type == libc::SCM_RIGHTS
        {
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cm) as *const std::os::fd::RawFd);
            return Ok(std::os::fd::OwnedFd::from_raw_fd(fd));
        }
    }
    Err("console socket: no fd received".into())
}

/// Sets a terminal's window size (TIOCSWINSZ) on `fd`, a pty master or slave; the
/// foreground process group gets SIGWINCH when it changes.
pub fn set_winsize(fd: &impl AsRawFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize struct that outlives the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The host's name (as `hostname` prints it; "" if unreadable).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The bytes of the files under `p` (directories themselves not counted; links not
/// followed).
pub fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if let Ok(md) = e.path().symlink_metadata() {
                if md.is_dir() {
                    stack.push(e.path());
                } else {
                    total += md.len();
                }
            }
        }
    }
    total
}
