//! The container record, kept in memory and on disk as `config.v2.json`.
//!
//! `Config` and `HostConfig` are kept as the JSON the client sent (merged with the image's
//! defaults), so inspect answers with Docker's field names and nothing is lost.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A container's state, as in Docker's inspect `State`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    /// created, running, paused, restarting, removing, exited, dead.
    pub status: String,
    /// Its init's host pid (0 when not running).
    pub pid: i32,
    /// The monitor's pid.
    #[serde(default)]
    pub monitor_pid: i32,
    /// The last exit code.
    pub exit_code: i32,
    /// Why the last start failed.
    pub error: String,
    /// When it last started.
    pub started_at: String,
    /// When it last stopped.
    pub finished_at: String,
    /// Killed by the OOM killer.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Health, when the container has a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// Health check state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// starting, healthy, unhealthy.
    pub status: String,
    /// Consecutive failures.
    pub failing_streak: u32,
    /// The last results (at most 5).
    pub log: Vec<HealthLog>,
}

/// One health probe result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthLog {
    /// When it started.
    pub start: String,
    /// When it ended.
    pub end: String,
    /// Its exit code.
    pub exit_code: i32,
    /// Its output (truncated).
    pub output: String,
}

/// A container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    /// 64-hex id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// Creation time (RFC 3339).
    pub created: String,
    /// The image as the user named it.
    pub image_name: String,
    /// The image id (`sha256:...`).
    pub image_id: String,
    /// Docker's `Config` (image defaults merged in).
    pub config: Value,
    /// Docker's `HostConfig`.
    pub host_config: Value,
    /// The state.
    pub state: State,
    /// Times restarted by the restart policy.
    pub restart_count: u32,
    /// Stopped by the user (unless-stopped and always policies do not restart it).
    pub manually_stopped: bool,
    /// The snapshot key in the image store.
    pub snapshot: String,
    /// Volumes, binds and tmpfs mounts, resolved at create time.
    #[serde(default)]
    pub mount_points: Vec<MountPoint>,
}

/// One of a container's mounts, in inspect's `Mounts` shape (plus what start needs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// volume, bind or tmpfs.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name (volumes only).
    #[serde(default)]
    pub name: String,
    /// The host path (a volume's `_data`, a bind's source).
    pub source: String,
    /// The path in the container.
    pub destination: String,
    /// `local` for volumes.
    #[serde(default)]
    pub driver: String,
    /// The mode as given (`ro`, `z`, ...).
    #[serde(default)]
    pub mode: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// Bind propagation (`rprivate` by default).
    #[serde(default)]
    pub propagation: String,
    /// Fill an empty volume from the image's content at the destination.
    #[serde(default)]
    pub copy_up: bool,
    /// tmpfs mount options (size=, mode=).
    #[serde(default)]
    pub tmpfs_options: Vec<String>,
    /// An anonymous volume made for this container (`rm -v` removes it).
    #[serde(default)]
    pub anonymous: bool,
    /// `VolumeOptions.Subpath`: only this path inside the volume is mounted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subpath: String,
    /// `BindOptions.NonRecursive`: the bind leaves out mounts below its source.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_recursive: bool,
    /// `BindOptions.ReadOnlyNonRecursive`: a read-only bind whose submounts stay as they are
    /// (read-only binds are otherwise read-only all the way down, as Docker's since 25.0).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ro_non_recursive: bool,
}

impl Container {
    /// `Config.<key>` as a string list (`Env`, `Cmd`, `Entrypoint`).
    pub fn config_list(&self, key: &str) -> Vec<String> {
        str_list(self.config.get(key))
    }

    /// `Config.<key>` as a string ("" when absent).
    pub fn config_str(&self, key: &str) -> String {
        self.config
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// The container's hostname: `Config.Hostname`, else its short id (containers made
    /// before create filled it in).
    pub fn hostname(&self) -> String {
        let h = self.config_str("Hostname");
        if h.is_empty() {
            self.id[..12].to_string()
        } else {
            h
        }
    }

    /// `HostConfig.<key>` as a string ("" when absent).
    pub fn host_str(&self, key: &str) -> String {
        self.host_config
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// `HostConfig.<key>` as a bool.
    pub fn host_bool(&self, key: &str) -> bool {
        self.host_config
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `HostConfig.<key>` as an integer (0 when absent).
    pub fn host_i64(&self, key: &str) -> i64 {
        self.host_config
            .get(key)
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// Whether its process is alive.
    pub fn running(&self) -> bool {
        matches!(self.state.status.as_str(), "running" | "paused")
    }

    /// The command line: entrypoint + cmd.
    pub fn argv(&self) -> Vec<String> {
        let mut a = self.config_list("Entrypoint");
        a.extend(self.config_list("Cmd"));
        a
    }

    /// The restart policy's name and maximum retry count.
    pub fn restart_policy(&self) -> (String, i64) {
        let p = self.host_config.get("RestartPolicy");
        let name = p
            .and_then(|p| p.get("Name"))
            .and_then(Value::as_str)
            .unwrap_or("no")
            .to_string();
        let max = p
            .and_then(|p| p.get("MaximumRetryCount"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        (if name.is_empty() { "no".into() } else { name }, max)
    }
}

/// A JSON string list (also accepts a single string, as Docker does for Cmd/Entrypoint).
pub fn str_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}
