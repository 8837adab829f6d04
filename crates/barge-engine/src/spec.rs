//! Docker `Config` + `HostConfig` -> an OCI runtime spec (`config.json`), with Docker's
//! defaults: its capability set, its seccomp profile, masked and readonly paths, own cgroup.

use std::path::Path;

use serde_json::{json, Value};

use crate::model::{str_list, Container};
use crate::{Error, Result};

use barge_runtime::caps::DOCKER_DEFAULT as DEFAULT_CAPS;

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

/// Fills in `HostConfig.MaskedPaths` and `ReadonlyPaths` of a new unprivileged container
/// that gives none with the default lists, so inspect shows what the container gets (as
/// dockerd does at create); a list given, even an empty one, is kept.
pub(crate) fn default_path_lists(host_config: &mut Value) {
    if host_config.get("Privileged").and_then(Value::as_bool) == Some(true) {
        return;
    }
    for (key, default) in [("MaskedPaths", MASKED), ("ReadonlyPaths", READONLY)] {
        if host_config.get(key).is_none_or(Value::is_null) {
            host_config[key] = json!(default);
        }
    }
}

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
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        // root, with root's supplementary groups (busybox's `id`: groups=0(root),10(wheel)).
        return resolve_user(rootfs, "0");
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
        gid = group_id(&group, g)?;
    }
    // Supplementary groups: those of /etc/group listing the user by name (as Docker).
    let name = if u.parse::<u32>().is_ok() {
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[2] == u)
            .map(|f| f[0].to_string())
    } else {
        Some(u.to_string())
    };
    let gids = name
        .map(|n| {
            group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .filter(|f| f.len() > 3 && f[3].split(',').any(|m| m == n))
                .filter_map(|f| f[2].parse::<u32>().ok())
                .filter(|g| *g != gid)
                .collect()
        })
        .unwrap_or_default();
    Ok((uid, gid, gids))
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
/// dir holding its hosts/hostname/resolv.conf; `join` gives the pid of a running container
/// whose pid or ipc namespace `c` joins (`--pid container:x`).
pub fn build(
    c: &Container,
    rootfs: &Path,
    files: &Path,
    net: &NetMode,
    default_ulimits: &[(String, i64, i64)],
    join: &dyn Fn(&str) -> Result<i32>,
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
    let (uid, gid, gids) = resolve_user(rootfs, &c.config_str("User"))?;
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
    // The rootfs mountpoint sits in the container's exec dir, beside its subpath pins.
    user_mounts(c, rootfs.parent().unwrap_or(rootfs), &mut mounts)?;
    let mut namespaces = vec![json!({"type": "mount"})];
    // `word` is how dockerd's errors name the mode ("invalid PID mode: x").
    for (key, word, kind, private, joinable) in [
        ("PidMode", "PID", "pid", &[""][..], true),
        (
            "IpcMode",
            "IPC",
            "ipc",
            &["", "private", "shareable", "none"][..],
            true,
        ),
        ("UTSMode", "UTS", "uts", &[""][..], false),
        (
            "CgroupnsMode",
            "cgroup namespace",
            "cgroup",
            &["", "private"][..],
            false,
        ),
    ] {
        let mode = c.host_str(key);
        match mode.as_str() {
            m if private.contains(&m) => namespaces.push(json!({"type": kind})),
            "host" => {}
            m if joinable && m.starts_with("container:") => {
                let pid = join(&m["container:".len()..])?;
                namespaces.push(json!({"type": kind, "path": format!("/proc/{pid}/ns/{kind}")}));
            }
            m => {
                // dockerd's exact words (clients compare them whole).
                return Err(Error::BadRequest(format!("invalid {word} mode: {m}")));
            }
        }
    }
    let uts_host = c.host_str("UTSMode") == "host";
    for (key, fine) in [
        ("UsernsMode", &["host"][..]),
        ("Runtime", crate::engine::RUNTIMES),
    ] {
        let v = c.host_str(key);
        if !v.is_empty() && !fine.contains(&v.as_str()) {
            return Err(Error::BadRequest(format!(
                "{key} {v:?} is not supported by barge (it runs every container with its own runtime, without user namespace remapping)"
            )));
        }
    }
    // Features barge does not have: refused, not silently dropped.
    let set = |k: &str| {
        c.host_config.get(k).is_some_and(|v| match v {
            Value::Null => false,
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            Value::Number(n) => n.as_i64() != Some(0),
            Value::String(s) => !s.is_empty(),
            Value::Bool(b) => *b,
        })
    };
    for (key, what) in [
        ("DeviceRequests", "device requests (--gpus)"),
        ("StorageOpt", "storage options (--storage-opt)"),
        (
            "CpuRealtimePeriod",
            "real-time CPU scheduling (--cpu-rt-period)",
        ),
        (
            "CpuRealtimeRuntime",
            "real-time CPU scheduling (--cpu-rt-runtime)",
        ),
    ] {
        if set(key) {
            return Err(Error::BadRequest(format!(
                "{key}: {what} are not supported by barge"
            )));
        }
    }
    // `VolumeDriver` is checked where a volume needs it (crate::mounts::resolve): as
    // dockerd, a container that makes no volume is created with any driver name.
    if !c.host_str("CgroupParent").is_empty() {
        return Err(Error::BadRequest(format!(
            "CgroupParent {:?} is not supported: barge keeps every container's cgroup under barge/",
            c.host_str("CgroupParent")
        )));
    }
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
        // HostConfig's lists replace the defaults when given (Docker's API: an empty list
        // masks nothing).
        for (key, field, default) in [
            ("MaskedPaths", "maskedPaths", MASKED),
            ("ReadonlyPaths", "readonlyPaths", READONLY),
        ] {
            linux[field] = match c.host_config.get(key) {
                Some(v @ Value::Array(_)) => v.clone(),
                _ => json!(default),
            };
        }
    }
    if let Some(s) = seccomp {
        linux["seccomp"] = s;
    }
    // `HostConfig.ConsoleSize` ([height, width], API 1.42) sizes the pty before the process
    // runs, so its first look at the terminal (`stty size`) already sees it.
    let console_size = c
        .host_config
        .get("ConsoleSize")
        .and_then(Value::as_array)
        .and_then(|a| Some((a.first()?.as_u64()?, a.get(1)?.as_u64()?)))
        .filter(|&(h, w)| tty && h > 0 && w > 0);
    let groups = additional_gids(c, rootfs, gid, gids)?;
    let mut sysctl = c
        .host_config
        .get("Sysctls")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if matches!(net, NetMode::Path(_)) && !c.host_str("NetworkMode").starts_with("container:") {
        // dockerd's defaults for a container with a network namespace of its own: any
        // user may ping (ICMP echo sockets) and bind ports below 1024 there; the
        // container's own Sysctls win.
        for (k, v) in [
            ("net.ipv4.ping_group_range", "0 2147483647"),
            ("net.ipv4.ip_unprivileged_port_start", "0"),
        ] {
            sysctl.entry(k).or_insert_with(|| json!(v));
        }
    }
    if !sysctl.is_empty() {
        linux["sysctl"] = Value::Object(sysctl);
    }
    let mut spec = json!({
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
    });
    if let Some((h, w)) = console_size {
        spec["process"]["consoleSize"] = json!({"height": h, "width": w});
    }
    let domain = c.config_str("Domainname");
    if !domain.is_empty() && !uts_host {
        spec["domainname"] = json!(domain);
    }
    if uts_host {
        // The host's UTS namespace: setting a hostname there would rename the host.
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
        }
    }
    let adj = c.host_i64("OomScoreAdj");
    if !(-1000..=1000).contains(&adj) {
        return Err(Error::BadRequest(format!(
            "invalid OomScoreAdj {adj}: must be between -1000 and 1000"
        )));
    }
    if adj != 0 {
        spec["process"]["oomScoreAdj"] = json!(adj);
    }
    if let Some(a) = c.host_config.get("Annotations").and_then(Value::as_object) {
        if !a.is_empty() {
            spec["annotations"] = Value::Object(a.clone());
        }
    }
    Ok(spec)
}

/// A group's id: `g` itself when numeric, else its entry in the /etc/group text `group`.
fn group_id(group: &str, g: &str) -> Result<u32> {
    if let Ok(n) = g.parse::<u32>() {
        return Ok(n);
    }
    group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == g)
        .and_then(|f| f[2].parse().ok())
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "unable to find group {g}: no matching entries in group file"
            ))
        })
}

/// The process's supplementary groups, as dockerd lists them: the primary `gid` first, the
/// user's groups in the rootfs' /etc/group (`user_gids`), then `--group-add` (HostConfig
/// `GroupAdd`: names looked up there, or numbers).
pub(crate) fn additional_gids(
    c: &Container,
    rootfs: &Path,
    gid: u32,
    user_gids: Vec<u32>,
) -> Result<Vec<u32>> {
    let mut gids = vec![gid];
    for g in user_gids {
        if !gids.contains(&g) {
            gids.push(g);
        }
    }
    let add = str_list(c.host_config.get("GroupAdd"));
    if add.is_empty() {
        return Ok(gids);
    }
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    for g in add {
        let gid = group_id(&group, &g)?;
        if !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    Ok(gids)
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
    if clean.is_empty() {
        // dockerd's words for "/" (and "//").
        return Err(Error::BadRequest(format!(
            "invalid mount destination {d:?}: destination can't be '/'"
        )));
    }
    if clean == "/proc" || clean.starts_with("/proc/") || d.contains("/../") || d.ends_with("/..") {
        return Err(Error::BadRequest(format!(
            "invalid mount destination {d:?}"
        )));
    }
    Ok(())
}

fn user_mounts(c: &Container, exec_dir: &Path, mounts: &mut Vec<Value>) -> Result<()> {
    mounts.extend(crate::mounts::oci_mounts(c, exec_dir)?);
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
