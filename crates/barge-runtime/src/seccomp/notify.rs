//! Handing the seccomp user-notification fd to a seccomp agent (runtime-spec "The Container
//! Process State", `linux.seccomp.listenerPath`).

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use super::SeccompError;

/// The runtime-spec version written when the state carries no `ociVersion`.
const OCI_VERSION: &str = "1.2.0";

/// Connects to the seccomp agent's unix socket `listener_path` and sends it the container
/// process state (JSON: `ociVersion`, `fds: ["seccompFd"]`, `pid`, `metadata`, `state`) with
/// `fd`, the listener returned by [`super::SeccompFilter::load`], as `SCM_RIGHTS` in the
/// first `sendmsg`. `state_json` is the container's OCI state (it must hold `pid`);
/// `metadata` is `linux.seccomp.listenerMetadata`. The connection is closed afterwards, as
/// the spec asks: one state per connection.
pub fn send_listener_fd(
    listener_path: &Path,
    fd: BorrowedFd<'_>,
    state_json: &str,
    metadata: Option<&str>,
) -> Result<(), SeccompError> {
    let err = |reason: String| SeccompError::Listener {
        path: listener_path.to_path_buf(),
        reason,
    };
    let payload = process_state(state_json, metadata).map_err(err)?;
    let stream = UnixStream::connect(listener_path).map_err(|e| err(format!("connect: {e}")))?;

    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let sent = loop {
        match sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(&payload)],
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(err(format!("sendmsg: {e}"))),
        }
    };
    // The fd went with the first message; the rest of the JSON, if the socket took only
    // part of it, follows as plain data.
    let mut rest = payload.get(sent..).unwrap_or_default();
    let mut stream = stream;
    while !rest.is_empty() {
        match stream.write(rest) {
            Ok(0) => return Err(err("the agent closed the connection".into())),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(format!("write: {e}"))),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// The container process state for `state_json` and `metadata`, serialized.
fn process_state(state_json: &str, metadata: Option<&str>) -> Result<Vec<u8>, String> {
    let state: serde_json::Value =
        serde_json::from_str(state_json).map_err(|e| format!("container state JSON: {e}"))?;
    let pid = state
        .get("pid")
        .and_then(serde_json::Value::as_i64)
        .ok_or("container state has no integer pid")?;
    let version = state
        .get("ociVersion")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(OCI_VERSION)
        .to_string();
    let mut out = serde_json::json!({
        "ociVersion": version,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let (Some(md), Some(obj)) = (metadata, out.as_object_mut()) {
        obj.insert("metadata".into(), serde_json::Value::String(md.to_string()));
    }
    serde_json::to_vec(&out).map_err(|e| format!("serializing the process state: {e}"))
}
