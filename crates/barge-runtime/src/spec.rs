//! Loading and validating an OCI bundle's `config.json`.
//!
//! Owned by the lifecycle work (see `container`). Every error names the field at fault.
//!
//! The hot path deserializes straight into [`Spec`]; only when that fails is the file parsed
//! again as plain JSON to find and name the offending field, so a good config costs one parse.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// An invalid or unreadable `config.json`.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A field holds a value the runtime refuses; the first member names the field
    /// (for example `linux.namespaces[2].type`).
    #[error("config.json: {field}: {reason}")]
    Invalid {
        /// The JSON path of the field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// config.json could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// config.json is not valid JSON.
    #[error("config.json: malformed JSON: {0}")]
    Malformed(String),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Reads `bundle/config.json` and validates it (see [`validate`]).
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    let spec: Spec = match serde_json::from_slice(&data) {
        Ok(s) => s,
        Err(e) => return Err(diagnose(&data, e)),
    };
    validate(&spec, bundle)?;
    Ok(spec)
}

/// Explains why `data` did not deserialize as a spec, naming the field when it can.
fn diagnose(data: &[u8], err: serde_json::Error) -> SpecError {
    let v: serde_json::Value = match serde_json::from_slice(data) {
        Ok(v) => v,
        Err(e) => return SpecError::Malformed(e.to_string()),
    };
    const NS: [&str; 8] = [
        "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time",
    ];
    if let Some(list) = v.pointer("/linux/namespaces").and_then(|n| n.as_array()) {
        for (i, ns) in list.iter().enumerate() {
            let t = ns.get("type").and_then(|t| t.as_str()).unwrap_or("");
            if !NS.contains(&t) {
                return invalid(
                    format!("linux.namespaces[{i}].type"),
                    format!("unknown namespace {t:?}"),
                );
            }
        }
    }
    if let Some(caps) = v
        .pointer("/process/capabilities")
        .and_then(|c| c.as_object())
    {
        for (set, list) in caps {
            for (i, c) in list.as_array().into_iter().flatten().enumerate() {
                let name = c.as_str().unwrap_or("");
                let probe = format!("[{:?}]", name);
                if serde_json::from_str::<oci_spec::runtime::Capabilities>(&probe).is_err() {
                    return invalid(
                        format!("process.capabilities.{set}[{i}]"),
                        format!("unknown capability {name:?}"),
                    );
                }
            }
        }
    }
    SpecError::Malformed(err.to_string())
}

/// Sysctls the kernel scopes to a namespace, by prefix (as runc's validator).
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: [&str; 7] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
    ];
    if IPC.contains(&key) || key == "kernel.shm_rmid_forced" || key.starts_with("fs.mqueue.") {
        return Some(LinuxNamespaceType::Ipc);
    }
    if key.starts_with("net.") {
        return Some(LinuxNamespaceType::Network);
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        return Some(LinuxNamespaceType::Uts);
    }
    None
}

/// Checks what serde cannot: the rootfs exists, namespaces are unique, process.cwd is
/// absolute, sysctls are namespaced and safe, a net.* sysctl has a network namespace.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<(), SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    let rootfs = rootfs_path(spec, bundle);
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(invalid(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ))
        }
        Err(e) => {
            return Err(invalid(
                "root.path",
                format!("{}: {e}", root.path().display()),
            ))
        }
    }
    if let Some(p) = spec.process() {
        if !p.cwd().is_absolute() {
            return Err(invalid(
                "process.cwd",
                format!("{:?} is not an absolute path", p.cwd()),
            ));
        }
        if p.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(invalid("process.args", "empty"));
        }
    }
    let linux = match spec.linux() {
        Some(l) => l,
        None => return Err(invalid("linux", "missing")),
    };
    let mut seen = HashSet::new();
    let nss = linux.namespaces().as_deref().unwrap_or(&[]);
    for (i, ns) in nss.iter().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                format!("linux.namespaces[{i}].type"),
                format!("duplicate namespace {:?}", ns.typ().to_string()),
            ));
        }
    }
    let has_new = |t: LinuxNamespaceType| nss.iter().any(|n| n.typ() == t && n.path().is_none());
    let has = |t: LinuxNamespaceType| nss.iter().any(|n| n.typ() == t);
    // Setting them without a UTS namespace of the container's own would rename the host.
    if spec.hostname().is_some() && !has(LinuxNamespaceType::Uts) {
        return Err(invalid("hostname", "requires a uts namespace"));
    }
    if spec.domainname().is_some() && !has(LinuxNamespaceType::Uts) {
        return Err(invalid("domainname", "requires a uts namespace"));
    }
    if has_new(LinuxNamespaceType::User) {
        if linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(invalid(
                "linux.uidMappings",
                "required with a new user namespace",
            ));
        }
        if linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(invalid(
                "linux.gidMappings",
                "required with a new user namespace",
            ));
        }
    }
    if !has(LinuxNamespaceType::Mount) {
        return Err(invalid("linux.namespaces", "a mount namespace is required"));
    }
    if let Some(sysctl) = linux.sysctl() {
        for (k, v) in sysctl {
            let field = format!("linux.sysctl.{k:?}");
            if v.contains(['+', '=', '\n']) {
                return Err(invalid(
                    field,
                    format!("value {v:?} contains '+', '=' or a newline"),
                ));
            }
            if k.is_empty() || k.contains(['/', '\0']) || k.contains("..") {
                return Err(invalid(field, "invalid sysctl name"));
            }
            match sysctl_namespace(k) {
                None => return Err(invalid(field, "not a namespaced sysctl")),
                Some(t) => {
                    if !has(t) {
                        return Err(invalid(
                            field,
                            format!("requires a new {t} namespace; the host's would be changed"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The rootfs as an absolute path (`root.path` is relative to the bundle when not absolute).
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> PathBuf {
    match spec.root() {
        Some(r) if r.path().is_absolute() => r.path().clone(),
        Some(r) => bundle.join(r.path()),
        None => bundle.join("rootfs"),
    }
}
