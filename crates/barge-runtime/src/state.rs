//! The OCI state model (creating, created, running, stopped, paused) kept under a root
//! directory, one directory per container holding `state.json` and, until `start`, the
//! exec fifo the container's init blocks on.
//!
//! Owned by the lifecycle work (see `container`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hooks;
use serde::{Deserialize, Serialize};

/// The container's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No container of that id exists under the root.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// A container of that id exists already.
    #[error("container {0} already exists")]
    Exists(String),
    /// The id is not usable as a directory name.
    #[error("invalid container id {0:?}: use letters, digits, '_', '-', '.', '+'")]
    InvalidId(String),
    /// A state file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// state.json is corrupt.
    #[error("{path}: corrupt state: {reason}")]
    Corrupt {
        /// The path.
        path: PathBuf,
        /// What serde said.
        reason: String,
    },
}

/// The default root directory.
pub const DEFAULT_ROOT: &str = "/run/barge-runc";

/// File name of the exec fifo inside a container's state dir.
pub const EXEC_FIFO: &str = "exec.fifo";

/// A container's status, per the OCI runtime spec (plus `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created.
    Creating,
    /// Created; the init waits for `start`.
    Created,
    /// The user process runs.
    Running,
    /// The cgroup is frozen.
    Paused,
    /// The init has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What is kept on disk for one container: the OCI state plus what later operations need.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// OCI version of the spec the container runs.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Status as last recorded; [`crate::container::status`] derives the live one.
    pub status: Status,
    /// The init's pid on the host.
    pub pid: i32,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// The spec's annotations.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// The spec's linux.cgroupsPath.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
    /// The init's start time (field 22 of /proc/pid/stat), to tell a reused pid.
    pub start_time: u64,
    /// The uid that created the container.
    pub owner: u32,
    /// The spec's hooks (poststart and poststop run after create exits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
}

impl State {
    /// The OCI state JSON (`ociVersion`, `id`, `status`, `pid`, `bundle`, `annotations`)
    /// with `status`, as given to hooks and printed by `state`.
    pub fn oci_json(&self, status: Status) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Oci<'a> {
            oci_version: &'a str,
            id: &'a str,
            status: Status,
            #[serde(skip_serializing_if = "Option::is_none")]
            pid: Option<i32>,
            bundle: &'a Path,
            #[serde(skip_serializing_if = "HashMap::is_empty")]
            annotations: &'a HashMap<String, String>,
        }
        let o = Oci {
            oci_version: &self.oci_version,
            id: &self.id,
            status,
            pid: (status != Status::Stopped).then_some(self.pid),
            bundle: &self.bundle,
            annotations: &self.annotations,
        };
        serde_json::to_string(&o).unwrap_or_default()
    }
}

/// Checks that `id` is a safe directory name.
pub fn check_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_string()))
    }
}

/// The state directory of container `id` under `root`.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Makes the state directory of a new container (0700), failing if it exists.
pub fn create_dir(root: &Path, id: &str) -> Result<PathBuf, StateError> {
    check_id(id)?;
    if let Err(source) = std::fs::create_dir_all(root) {
        return Err(StateError::Io {
            path: root.to_path_buf(),
            source,
        });
    }
    let d = dir(root, id);
    let mut b = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    match b.create(&d) {
        Ok(()) => Ok(d),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(StateError::Exists(id.to_string()))
        }
        Err(source) => Err(StateError::Io { path: d, source }),
    }
}

/// Writes `data` to `path` atomically: a temp file beside it and a rename, so a reader never
/// sees half a file. No fsync: runtime state lives on a run root (tmpfs, `/run`) and describes
/// live processes, which a host crash ends along with any state it could lose; an fsync per
/// state change would only slow every create, start and delete.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StateError> {
    let how = barge_util::fs::AtomicWrite {
        mode: 0o600,
        durability: barge_util::fs::Durability::None,
    };
    barge_util::fs::write_atomic(path, data, how).map_err(|e| StateError::Io {
        path: e.path,
        source: e.source,
    })
}

/// Saves `state` to its container's dir under `root`.
pub fn save(root: &Path, state: &State) -> Result<(), StateError> {
    let data = serde_json::to_vec(state).map_err(|e| StateError::Corrupt {
        path: dir(root, &state.id),
        reason: e.to_string(),
    })?;
    write_atomic(&dir(root, &state.id).join("state.json"), &data)
}

/// Loads the state of container `id` under `root`.
pub fn load(root: &Path, id: &str) -> Result<State, StateError> {
    check_id(id)?;
    let path = dir(root, id).join("state.json");
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StateError::NotFound(id.to_string()))
        }
        Err(source) => return Err(StateError::Io { path, source }),
    };
    serde_json::from_slice(&data).map_err(|e| StateError::Corrupt {
        path,
        reason: e.to_string(),
    })
}

/// Removes container `id`'s state dir.
pub fn remove(root: &Path, id: &str) -> Result<(), StateError> {
    let d = dir(root, id);
    match std::fs::remove_dir_all(&d) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateError::Io { path: d, source }),
    }
}

/// The ids of every container under `root`, sorted.
pub fn list(root: &Path) -> Result<Vec<String>, StateError> {
    let rd = match std::fs::read_dir(root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateError::Io {
                path: root.to_path_buf(),
                source,
            })
        }
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter(|e| e.path().join("state.json").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Formats a unix time (seconds, nanoseconds) as RFC 3339 UTC with nine fraction digits
/// (the OCI state's and Docker's format).
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    barge_util::time::rfc3339(secs, nanos, barge_util::time::Precision::Nanos)
}

/// Now, RFC 3339 UTC with nine fraction digits.
pub fn now_rfc3339() -> String {
    barge_util::time::now_rfc3339(barge_util::time::Precision::Nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_700_000_000, 0), "2023-11-14T22:13:20.000000000Z");
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }
}
