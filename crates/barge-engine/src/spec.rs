//! Docker `Config` + `HostConfig` -> an OCI runtime spec (`config.json`), with Docker's
//! defaults: its capability set, its seccomp profile, masked and readonly paths, own cgroup.

use std::path::Path;

use serde_json::{json, Value};

use crate::model::{str_list, Container};
use crate::{Error, Result};

/// Docker's default capabilities.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// How the container's network namespace is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetMode {
    /// The host's namespace.
    Host,
    /// A namespace of its own, bind-mounted at this path (prepared by the engine).
    Path(std::path::PathBuf),
}

fn cap_name(c: &str) -> String {
    let u = c.trim().to_ascii_uppercase();
    if u.starts_with("CAP_") {
        u
    } else {
        format!("CAP_{u}")
    }
}

/// The capability set: Docker's defaults, +CapAdd, -CapDrop (`ALL` understood), or every
/// capability the daemon itself holds in its bounding set when privileged (or `--cap-add
/// ALL`): asking for more fails at start.
pub fn capabilities(c: &Container) -> Result<Vec<String>> {
    let all: Vec<String> = barge_runtime::caps::known_names().collect();
    if c.host_bool("Privileged") {
        return Ok(barge_runtime::caps::bounding_names().collect());
    }
    let mut set: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    let adds = str_list(c.host_config.get("CapAdd"));
    let drops = str_list(c.host_config.get("CapDrop"));
    for d in &drops {
        let d = cap_name(d);
        if d == "CAP_ALL" {
            set.clear();
        } else if !all.contains(&d) {
            return Err(Error::BadRequest(format!(
                "unknown capability to drop: {d:?}"
            )));
        } else {
            set.retain(|x| *x != d);
        }
    }
    for a in &adds {
        let a = cap_name(a);
        if a == "CAP_ALL" {
            set = barge_runtime::caps::bounding_names().collect();
        } else if !all.contains(&a) {
            return Err(Error::BadRequest(format!(
                "unknown capability to add: {a:?}"
            )));
        } else if !set.contains(&a) {
            set.push(a);
        }
    }
    Ok(set)
}

/// Looks a user up in the rootfs' /etc/passwd and /etc/group: `name|uid[:group|gid]`.
/// Returns the uid, the gid and the supplementary gids.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, vec![]));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let (uid, mut gid) = if let Ok(n) = u.parse::<u32>() {
        let gid = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[2] == u)
            .and_then(|f| f[3].parse().ok())
            .unwrap_or(0);
        (n, gid)
    } else {
        let f = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[0] == u)
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "unable to find user {u}: no matching entries in passwd file"
                ))
            })?;
        (f[2].parse().unwrap_or(0), f[3].parse().unwrap_or(0))
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 2 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    Error::BadRequest(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    // As runc: the user's supplementary groups are those /etc/group lists it in.
    let name = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[2] == uid.to_string() && (f[0] == u || u.parse::<u32>().is_ok()))
        .map(|f| f[0].to_string());
    let mut extra = Vec::new();
    if let Some(name) = name {
        for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() > 3 && f[3].split(',').any(|m| m.trim() == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !extra.contains(&g) {
                        extra.push(g);
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

/// `HostConfig.GroupAdd` as gids: numbers as they are, names looked up in the rootfs'
/// /etc/group.
pub fn group_add(rootfs: &Path, groups: &[String]) -> Result<Vec<u32>> {
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    groups
        .iter()
        .map(|g| match g.parse::<u32>() {
            Ok(n) => Ok(n),
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() > 2 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    Error::BadRequest(format!(
                        "Unable to find group {g}: no matching entries in group file"
                    ))
                }),
        })
        .collect()
}

/// The supplementary gids of a process: the user's groups, then `GroupAdd`'s.
pub fn additional_gids(mut user: Vec<u32>, added: Vec<u32>) -> Vec<u32> {
    for g in added {
        if !user.contains(&g) {
            user.push(g);
        }
    }
    user
}

fn shm_size(c: &Container) -> Result<String> {
    let n = c.host_i64("ShmSize");
    if n < 0 {
        return Err(Error::BadRequest("SHM size can not be less than 0".into()));
    }
    Ok(if n == 0 {
        "size=65536k".into()
    } else {
        format!("size={n}")
    })
}

fn rlimit_name(n: &str) -> String {
    format!("RLIMIT_{}", n.to_ascii_uppercase())
}

/// Builds the OCI spec for `c`, whose root filesystem is mounted at `rootfs`; `files` is the
/// dir holding its hosts/hostname/resolv.conf.
pub fn build(
    c: &Container,
    rootfs: &Path,
    files: &Path,
    net: &NetMode,
    default_ulimits: &[(String, i64, i64)],
) -> Result<Value> {
    let caps = capabilities(c)?;
    let privileged = c.host_bool("Privileged");
    let tty = c
        .config
        .get("Tty")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let argv = c.argv();
    if argv.is_empty() {
        return Err(Error::BadRequest("no command specified".into()));
    }
    let (uid, gid, groups) = resolve_user(rootfs, &c.config_str("User"))?;
    let groups = additional_gids(groups, group_add(rootfs, &c.host_list("GroupAdd"))?);
    let hostname = c.hostname();
    let mut env: Vec<String> = c.config_list("Env");
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={hostname}"));
    }
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let cwd = {
        let w = c.config_str("WorkingDir");
        if w.is_empty() {
            "/".to_string()
        } else if !w.starts_with('/') {
            return Err(Error::BadRequest(format!(
                "the working directory '{w}' is invalid, it needs to be an absolute path"
            )));
        } else {
            w
        }
    };
    let mut nnp = false;
    let mut seccomp: Option<Value> = None;
    let mut seccomp_unconfined = privileged;
    if let Some(opts) = c.host_config.get("SecurityOpt").and_then(Value::as_array) {
        for o in opts.iter().filter_map(Value::as_str) {
            let (k, v) = o.split_once(['=', ':']).unwrap_or((o, ""));
            match k {
                "no-new-privileges" => nnp = v.is_empty() || v == "true",
                "seccomp" if v == "unconfined" => seccomp_unconfined = true,
                "seccomp" => {
                    let prof: Value = serde_json::from_str(v)
                        .map_err(|e| Error::BadRequest(format!("invalid seccomp profile: {e}")))?;
                    let prof = docker_seccomp_to_oci(&prof);
                    barge_runtime::seccomp::validate_json(&prof)
                        .map_err(|e| Error::BadRequest(format!("seccomp profile: {e}")))?;
                    seccomp = Some(prof);
                }
                "label" | "apparmor" => {}
                _ => return Err(Error::BadRequest(format!("invalid --security-opt: {o:?}"))),
            }
        }
    }
    if seccomp.is_none() && !seccomp_unconfined {
        let prof = barge_runtime::seccomp::docker_default_profile(&caps);
        seccomp =
            Some(serde_json::to_value(prof).map_err(|e| Error::Internal(format!("seccomp: {e}")))?);
    }
    let mut rlimits: Vec<Value> = Vec::new();
    let mut seen = Vec::new();
    if let Some(ul) = c.host_config.get("Ulimits").and_then(Value::as_array) {
        for u in ul {
            let name = u.get("Name").and_then(Value::as_str).unwrap_or_default();
            let soft = u.get("Soft").and_then(Value::as_i64).unwrap_or(0);
            let hard = u.get("Hard").and_then(Value::as_i64).unwrap_or(soft);
            if name.is_empty() || soft < 0 || hard < soft {
                return Err(Error::BadRequest(format!("invalid ulimit {u}")));
            }
            seen.push(name.to_string());
            rlimits.push(json!({"type": rlimit_name(name), "soft": soft, "hard": hard}));
        }
    }
    for (name, soft, hard) in default_ulimits {
        if !seen.contains(name) {
            rlimits.push(json!({"type": rlimit_name(name), "soft": soft, "hard": hard}));
        }
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged {"rw"} else {"ro"}]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", if privileged {"rw"} else {"ro"}]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", shm_size(c)?]}),
    ];
    for f in ["hostname", "hosts", "resolv.conf"] {
        mounts.push(json!({"destination": format!("/etc/{f}"), "type": "bind",
            "source": files.join(f), "options": ["rbind", "rprivate"]}));
    }
    user_mounts(c, &mut mounts)?;
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if let NetMode::Path(p) = net {
        namespaces.push(json!({"type": "network", "path": p}));
    }
    let mut resources = json!({
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        ]
    });
    if privileged {
        resources["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    crate::limits::apply(c, &mut resources)?;
    let devices = crate::limits::devices(c, &mut resources)?;
    let capv: Vec<Value> = caps.iter().map(|s| json!(s)).collect();
    let mut linux = json!({
        "devices": devices,
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": format!("/barge/{}", c.id),
    });
    if !privileged {
        linux["maskedPaths"] = json!(MASKED);
        linux["readonlyPaths"] = json!(READONLY);
    }
    if let Some(s) = seccomp {
        linux["seccomp"] = s;
    }
    Ok(json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": tty,
            "user": {"uid": uid, "gid": gid, "additionalGids": groups},
            "args": argv,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": capv, "effective": capv, "permitted": capv},
            "rlimits": rlimits,
            "noNewPrivileges": nnp,
        },
        "root": {"path": rootfs, "readonly": c.host_bool("ReadonlyRootfs")},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    }))
}

/// A Docker seccomp profile (`defaultAction`, `syscalls`, ...) is already the OCI shape but
/// for `architectures`/`archMap`; keep what the OCI spec knows.
fn docker_seccomp_to_oci(p: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in ["defaultAction", "defaultErrnoRet", "flags", "architectures"] {
        if let Some(v) = p.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    let mut calls = Vec::new();
    for sc in p
        .get("syscalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let conditional = ["includes", "excludes"].iter().any(|k| {
            sc.get(*k)
                .and_then(Value::as_object)
                .is_some_and(|o| !o.is_empty())
        });
        if conditional {
            continue;
        }
        let mut e = serde_json::Map::new();
        for k in ["names", "action", "errnoRet", "args"] {
            if let Some(v) = sc.get(k) {
                e.insert(k.into(), v.clone());
            }
        }
        calls.push(Value::Object(e));
    }
    out.insert("syscalls".into(), Value::Array(calls));
    Value::Object(out)
}

fn check_dest(d: &str) -> Result<()> {
    if !d.starts_with('/') {
        return Err(Error::BadRequest(format!(
            "invalid mount config: mount path must be absolute: {d:?}"
        )));
    }
    let clean = d.trim_end_matches('/');
    if clean.is_empty()
        || clean == "/proc"
        || clean.starts_with("/proc/")
        || d.contains("/../")
        || d.ends_with("/..")
    {
        return Err(Error::BadRequest(format!(
            "invalid mount destination {d:?}"
        )));
    }
    Ok(())
}

fn user_mounts(c: &Container, mounts: &mut Vec<Value>) -> Result<()> {
    mounts.extend(crate::mounts::oci_mounts(c)?);
    if let Some(t) = c.host_config.get("Tmpfs").and_then(Value::as_object) {
        for (dst, opts) in t {
            check_dest(dst)?;
            let mut o = vec![
                "nosuid".to_string(),
                "nodev".to_string(),
                "noexec".to_string(),
            ];
            if let Some(s) = opts.as_str() {
                o.extend(s.split(',').filter(|x| !x.is_empty()).map(str::to_string));
            }
            mounts.push(
                json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": o}),
            );
        }
    }
    Ok(())
}
