//! Starting a daemon in the background when none answers at the default socket (root only).

use super::out::errln;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::client::Client;
use super::endpoint::{Endpoint, DEFAULT_SOCKET};
use super::error::Result;

/// Where the auto-started daemon logs.
pub const DAEMON_LOG: &str = "/run/barge/daemon.log";

/// Starts `barge daemon` with default paths, waits for `_ping`, says so once on stderr.
/// Does nothing (and lets the caller report the connection error) when not root or when
/// `sock` is not the default socket.
pub async fn start_daemon(sock: &Path) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 || sock != Path::new(DEFAULT_SOCKET) {
        return Ok(());
    }
    let Ok(exe) = std::env::current_exe() else {
        return Ok(());
    };
    if std::fs::create_dir_all("/run/barge").is_err() {
        return Ok(());
    }
    let Ok(log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(DAEMON_LOG)
    else {
        return Ok(());
    };
    let Ok(log2) = log.try_clone() else {
        return Ok(());
    };
    let mut cmd = Command::new(exe);
    cmd.arg("daemon")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    // SAFETY: setsid is async-signal-safe; the child only execs afterwards.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(_) => return Ok(()),
    };
    let c = Client::new(Endpoint::Unix(sock.to_path_buf()), false);
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if c.wait_ping(Duration::from_millis(200)).await {
            errln!(
                "barge: no daemon was running; started one in the background (pid {}, log {DAEMON_LOG})",
                child.id()
            );
            // The daemon lives on in its own session; a reaper thread keeps it from
            // becoming a zombie while this CLI runs.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok(());
        }
        if let Ok(Some(st)) = child.try_wait() {
            errln!("barge: tried to start a daemon, but it exited ({st}); see {DAEMON_LOG}");
            return Ok(());
        }
    }
    Ok(())
}
