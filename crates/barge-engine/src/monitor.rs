//! The contract between the engine and the per-container monitor (`barge monitor <dir>`).
//!
//! The daemon writes `<dir>/monitor.json` ([`MonitorConfig`]) and starts the monitor with stdin
//! and stdout as pipes (forked by the monitor zygote, see [`crate::zygote`], or exec'd). The monitor forks (its parent exits at once, so the monitor is not
//! the daemon's child), starts a new session, binds `ctl.sock`, creates the container
//! (its init blocked before exec) and writes `created <pid>\n` to stdout. The daemon then
//! connects the attach clients that are waiting and writes `go\n`; the monitor accepts every
//! connection already queued, starts the container and writes `ok\n` (or `err <message>\n`
//! at any step). From then on the monitor is on its own: it copies output to the json-file
//! log and attached clients, reaps the init, writes `exit.json` (temp + fsync + rename),
//! deletes the runtime state and exits.
//!
//! A connection to `ctl.sock` starts with one line: `attach\n` (output frames follow, with
//! Docker's 8-byte header: stream 1 stdout / 2 stderr, 3 bytes 0, u32 big-endian length;
//! what the client sends is the container's stdin), `watch\n` (nothing is sent; the
//! connection closes when the container has exited), or `resize <rows> <cols>\n`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a monitor is asked to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorConfig {
    /// Container id (also the runtime's id).
    pub id: String,
    /// The OCI bundle.
    pub bundle: PathBuf,
    /// barge-runtime's state root.
    pub runtime_root: PathBuf,
    /// The json-file log.
    pub log_path: PathBuf,
    /// Rotate when the log exceeds this many bytes (0: never).
    pub log_max_size: u64,
    /// Keep this many files in all (>= 1).
    pub log_max_files: u32,
    /// Where to write the exit status.
    pub exit_path: PathBuf,
    /// Allocate a pty.
    pub tty: bool,
    /// Keep stdin open (`-i`).
    pub open_stdin: bool,
    /// Close stdin when the first attached client detaches.
    pub stdin_once: bool,
    /// Run the process under the runtime's minimal init (`HostConfig.Init`).
    #[serde(default)]
    pub init: bool,
    /// The container is removed when it exits (`--rm`): its log and exit status need not
    /// survive a host crash, so the monitor writes them without fsync.
    #[serde(default)]
    pub volatile: bool,
}

/// What the monitor records when the container exits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code (128 + signal when killed).
    pub code: i32,
    /// When (RFC 3339).
    pub finished_at: String,
    /// Killed by the OOM killer.
    #[serde(default)]
    pub oom_killed: bool,
    /// Why the container could not start, if so.
    #[serde(default)]
    pub error: String,
}

/// File names inside a container's exec dir.
pub const CONFIG_FILE: &str = "monitor.json";
/// The control socket.
pub const CTL_SOCK: &str = "ctl.sock";
