//! Running the spec's hooks: each gets the container's state JSON on stdin, its own env
//! only, an optional timeout; a failure names the hook and carries its output.

use std::io::{Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

/// A hook failed.
#[derive(Debug, thiserror::Error)]
#[error("{kind} hook {path}: {reason}")]
pub struct HookError {
    /// Which hook list (prestart, createRuntime, ...).
    pub kind: &'static str,
    /// The hook's path.
    pub path: String,
    /// What went wrong, with the hook's output.
    pub reason: String,
}

/// Runs `hooks` in order with `state_json` on their stdin; stops at the first failure.
pub fn run(
    kind: &'static str,
    hooks: Option<&Vec<Hook>>,
    state_json: &str,
) -> Result<(), HookError> {
    for h in hooks.into_iter().flatten() {
        run_one(kind, h, state_json)?;
    }
    Ok(())
}

/// Runs every hook of `hooks` in order even when one fails, printing a warning for each
/// failure: the spec's rule for poststart and poststop ("the remaining hooks and lifecycle
/// continue as if the hook had succeeded").
pub fn run_warning(kind: &'static str, hooks: Option<&Vec<Hook>>, state_json: &str) {
    for h in hooks.into_iter().flatten() {
        if let Err(e) = run_one(kind, h, state_json) {
            eprintln!("warning: {e}");
        }
    }
}

fn run_one(kind: &'static str, h: &Hook, state_json: &str) -> Result<(), HookError> {
    let fail = |reason: String| HookError {
        kind,
        path: h.path().display().to_string(),
        reason,
    };
    // Output goes to an anonymous file rather than a pipe so a chatty hook cannot block on a
    // full pipe while we wait for it.
    // SAFETY: memfd_create with a valid NUL-terminated name; the fd is owned at once.
    let fd = unsafe { libc::memfd_create(c"barge-hook".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(fail(format!("memfd: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
    let out = unsafe { OwnedFd::from_raw_fd(fd) };
    let out2 = out.try_clone().map_err(|e| fail(e.to_string()))?;
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some(a0) = args.first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, a0);
        }
        cmd.args(args.iter().skip(1));
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(
            out2.try_clone().map_err(|e| fail(e.to_string()))?,
        ));
    let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin closes the pipe: not an error.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut nap = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(fail(format!("wait: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {}s",
                h.timeout().unwrap_or_default()
            )));
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    if status.success() {
        return Ok(());
    }
    let mut f = std::fs::File::from(out2);
    let mut text = String::new();
    let _ = f.rewind();
    let _ = f.take(64 * 1024).read_to_string(&mut text);
    Err(fail(format!("{status}: {}", text.trim_end())))
}
