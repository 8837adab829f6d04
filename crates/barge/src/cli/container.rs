//! Container verbs: run, create, start, stop, kill, rm, ps, logs, exec, attach, wait, inspect,
//! top, stats, pause, unpause, rename, update, port, cp, diff, export, commit.

use super::out::{errln, out, outln};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use futures_util::StreamExt;
use hyper::Method;
use serde_json::{json, Map, Value};

use super::args::*;
use super::client::{enc, filters_json, query, Client, Hijacked};
use super::error::{Error, Result};
use super::format::{human_duration, human_size, tabulate_min, unescape, ListFormat, Template};
use super::opts;
use super::report_each;
use super::stream::Demux;
use super::term::{self, PumpEnd};

fn usage(e: String) -> Error {
    Error::Usage(format!("invalid argument: {e}\nSee 'barge run --help'."))
}

/// Seconds since the epoch.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Go's `time.Time.String()` in UTC with its fraction of a second, if any
/// (`2024-01-02 03:04:05.5 +0000 UTC`).
pub(crate) fn go_time_nanos(secs: i64, nanos: u32) -> String {
    let t = go_time(secs);
    if nanos == 0 {
        return t;
    }
    let frac = format!("{nanos:09}");
    let frac = frac.trim_end_matches('0');
    match t.split_once(" +") {
        Some((a, b)) => format!("{a}.{frac} +{b}"),
        None => t,
    }
}

/// Go's `time.Time.String()` in UTC: `2024-01-02 03:04:05 +0000 UTC`.
pub(crate) fn go_time(secs: i64) -> String {
    let (y, m, d) = barge_util::time::civil_from_days(secs.div_euclid(86400));
    let r = secs.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        r / 3600,
        r / 60 % 60,
        r % 60
    )
}

/// Parses RFC 3339 (`2024-01-02T03:04:05.123Z`, `+01:00` offsets) to (secs, nanos).
pub(crate) use barge_util::time::parse_rfc3339;

/// `--since`/`--until` values: a Go duration (relative to now), unix seconds, or RFC 3339.
pub(crate) fn time_arg(s: &str) -> Result<String> {
    // "seconds.nanoseconds" as docker sends it (whole seconds would cut off the events of
    // the current second from --until 0s).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    if let Some(t) = barge_util::time::docker_timestamp(s, now) {
        return Ok(t);
    }
    Err(Error::Usage(format!(
        "invalid time value {s:?}: expected a duration (10m), unix seconds or RFC 3339"
    )))
}

pub(crate) fn short_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(12).collect()
}

/// The create body for `run`/`create`, and the image.
pub(crate) fn create_body(a: &RunArgs) -> Result<(Value, String)> {
    let image = a.image_and_cmd[0].clone();
    let cmd: Vec<String> = a.image_and_cmd[1..].to_vec();
    let mut cfg = Map::new();
    let mut hc = Map::new();
    let attach_all = a.attach.is_empty();
    let att = |s: &str| attach_all || a.attach.iter().any(|x| x.eq_ignore_ascii_case(s));
    for s in &a.attach {
        if !matches!(s.to_lowercase().as_str(), "stdin" | "stdout" | "stderr") {
            return Err(usage(format!(
                "valid streams are STDIN, STDOUT and STDERR: {s}"
            )));
        }
    }
    if a.detach && !a.attach.is_empty() {
        return Err(Error::Usage("Conflicting options: -a and -d".into()));
    }
    cfg.insert("Image".into(), json!(image));
    if let Some(h) = &a.hostname {
        cfg.insert("Hostname".into(), json!(h));
    }
    if let Some(h) = &a.domainname {
        cfg.insert("Domainname".into(), json!(h));
    }
    if let Some(u) = &a.user {
        cfg.insert("User".into(), json!(u));
    }
    let stdin = a.interactive || (!a.attach.is_empty() && att("stdin"));
    cfg.insert("AttachStdin".into(), json!(!a.detach && stdin));
    cfg.insert("AttachStdout".into(), json!(!a.detach && att("stdout")));
    cfg.insert("AttachStderr".into(), json!(!a.detach && att("stderr")));
    cfg.insert("Tty".into(), json!(a.tty));
    cfg.insert("OpenStdin".into(), json!(a.interactive));
    cfg.insert("StdinOnce".into(), json!(a.interactive && !a.detach));
    let mut env = vec![];
    for f in &a.env_file {
        let text = std::fs::read_to_string(f).map_err(|e| usage(format!("open {f}: {e}")))?;
        env.extend(opts::parse_env_file(&text, f).map_err(usage)?);
    }
    for e in &a.env {
        env.push(opts::env_entry(e).map_err(usage)?);
    }
    if !env.is_empty() {
        cfg.insert("Env".into(), json!(env));
    }
    if !cmd.is_empty() {
        cfg.insert("Cmd".into(), json!(cmd));
    }
    if let Some(ep) = &a.entrypoint {
        cfg.insert("Entrypoint".into(), json!([ep]));
    }
    if let Some(w) = &a.workdir {
        if !w.starts_with('/') {
            return Err(usage(format!(
                "the working directory '{w}' is invalid, it needs to be an absolute path"
            )));
        }
        cfg.insert("WorkingDir".into(), json!(w));
    }
    // --label-file lines first, so a --label of the same key wins (as docker's).
    let mut labels = vec![];
    for f in &a.label_file {
        let text = std::fs::read_to_string(f).map_err(|e| usage(format!("open {f}: {e}")))?;
        labels.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    labels.extend(a.label.iter().cloned());
    if !labels.is_empty() {
        cfg.insert("Labels".into(), opts::kv_map(&labels));
    }
    if let Some(s) = &a.stop_signal {
        if opts::signal_number(s).is_none() {
            return Err(usage(format!("invalid signal: {s}")));
        }
        cfg.insert("StopSignal".into(), json!(s));
    }
    if let Some(t) = a.stop_timeout {
        cfg.insert("StopTimeout".into(), json!(t));
    }
    // Health check.
    if a.no_healthcheck {
        if a.health_cmd.is_some() {
            return Err(usage(
                "--no-healthcheck conflicts with --health-* options".into(),
            ));
        }
        cfg.insert("Healthcheck".into(), json!({"Test": ["NONE"]}));
    } else if a.health_cmd.is_some()
        || a.health_interval.is_some()
        || a.health_timeout.is_some()
        || a.health_retries.is_some()
        || a.health_start_period.is_some()
    {
        let mut h = Map::new();
        if let Some(c) = &a.health_cmd {
            h.insert("Test".into(), json!(["CMD-SHELL", c]));
        }
        for (k, v) in [
            ("Interval", &a.health_interval),
            ("Timeout", &a.health_timeout),
            ("StartPeriod", &a.health_start_period),
        ] {
            if let Some(v) = v {
                let ns = opts::parse_duration(v).map_err(usage)?;
                if ns < 0 {
                    return Err(usage(format!(
                        "--health-{} cannot be negative",
                        k.to_lowercase()
                    )));
                }
                h.insert(k.into(), json!(ns));
            }
        }
        if let Some(r) = a.health_retries {
            if r < 0 {
                return Err(usage("--health-retries cannot be negative".into()));
            }
            h.insert("Retries".into(), json!(r));
        }
        cfg.insert("Healthcheck".into(), Value::Object(h));
    }
    // Ports.
    let mut exposed = Map::new();
    let mut bindings: Map<String, Value> = Map::new();
    for p in &a.publish {
        for (cport, ip, hport) in opts::parse_publish(p).map_err(usage)? {
            exposed.insert(cport.clone(), json!({}));
            let e = bindings.entry(cport).or_insert_with(|| json!([]));
            if let Value::Array(v) = e {
                v.push(json!({"HostIp": ip, "HostPort": hport}));
            }
        }
    }
    for e in &a.expose {
        let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let (s, t) = match port.split_once('-') {
            Some((s, t)) => (s, t),
            None => (port, port),
        };
        let (s, t): (u16, u16) = match (s.parse(), t.parse()) {
            (Ok(s), Ok(t)) if s <= t => (s, t),
            _ => return Err(usage(format!("invalid range format for --expose: {e}"))),
        };
        for p in s..=t {
            exposed.insert(format!("{p}/{proto}"), json!({}));
        }
    }
    if !exposed.is_empty() {
        cfg.insert("ExposedPorts".into(), Value::Object(exposed));
    }
    if !bindings.is_empty() {
        hc.insert("PortBindings".into(), Value::Object(bindings));
    }
    if a.publish_all {
        hc.insert("PublishAllPorts".into(), json!(true));
    }
    // Volumes and mounts.
    let mut binds = vec![];
    let mut volumes = Map::new();
    for v in &a.volume {
        if v.is_empty() {
            return Err(usage("invalid empty volume spec".into()));
        }
        if v.contains(':') {
            let parts: Vec<&str> = v.split(':').collect();
            if parts.len() > 3 || parts[1].is_empty() || parts[0].is_empty() {
                return Err(usage(format!("invalid volume specification: '{v}'")));
            }
            if !parts[1].starts_with('/') {
                return Err(usage(format!(
                    "invalid volume specification: '{v}': invalid mount config for type \"bind\": invalid mount path: '{}' mount path must be absolute",
                    parts[1]
                )));
            }
            binds.push(v.clone());
        } else {
            if !v.starts_with('/') {
                return Err(usage(format!("invalid volume specification: '{v}'")));
            }
            volumes.insert(v.clone(), json!({}));
        }
    }
    if !binds.is_empty() {
        hc.insert("Binds".into(), json!(binds));
    }
    if !volumes.is_empty() {
        cfg.insert("Volumes".into(), Value::Object(volumes));
    }
    if !a.mount.is_empty() {
        let ms = a
            .mount
            .iter()
            .map(|m| opts::parse_mount(m).map_err(usage))
            .collect::<Result<Vec<_>>>()?;
        hc.insert("Mounts".into(), json!(ms));
    }
    if !a.tmpfs.is_empty() {
        let mut t = Map::new();
        for s in &a.tmpfs {
            let (p, o) = s.split_once(':').unwrap_or((s, ""));
            if !p.starts_with('/') {
                return Err(usage(format!("invalid tmpfs path {p:?}: must be absolute")));
            }
            t.insert(p.into(), json!(o));
        }
        hc.insert("Tmpfs".into(), Value::Object(t));
    }
    if !a.volumes_from.is_empty() {
        hc.insert("VolumesFrom".into(), json!(a.volumes_from));
    }
    if a.read_only {
        hc.insert("ReadonlyRootfs".into(), json!(true));
    }
    if !a.cap_add.is_empty() {
        hc.insert("CapAdd".into(), json!(a.cap_add));
    }
    if !a.cap_drop.is_empty() {
        hc.insert("CapDrop".into(), json!(a.cap_drop));
    }
    if a.privileged {
        hc.insert("Privileged".into(), json!(true));
    }
    if !a.security_opt.is_empty() {
        let mut so = vec![];
        for s in &a.security_opt {
            // As docker: a seccomp profile file is sent inline.
            let s = s.replacen("seccomp:", "seccomp=", 1);
            if let Some(path) = s.strip_prefix("seccomp=") {
                if path != "unconfined" && path != "builtin" {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        usage(format!("opening seccomp profile ({path}) failed: {e}"))
                    })?;
                    let v: Value = serde_json::from_str(&text).map_err(|e| {
                        usage(format!("parsing seccomp profile ({path}) failed: {e}"))
                    })?;
                    so.push(format!("seccomp={v}"));
                    continue;
                }
            }
            if !s.contains('=') && !s.contains(':') && s != "no-new-privileges" {
                return Err(usage(format!("Invalid --security-opt: {s:?}")));
            }
            so.push(s);
        }
        hc.insert("SecurityOpt".into(), json!(so));
    }
    if a.init {
        hc.insert("Init".into(), json!(true));
    }
    if !a.ulimit.is_empty() {
        let u = a
            .ulimit
            .iter()
            .map(|u| opts::parse_ulimit(u).map_err(usage))
            .collect::<Result<Vec<_>>>()?;
        hc.insert("Ulimits".into(), json!(u));
    }
    if let Some(r) = &a.restart {
        let p = opts::parse_restart(r).map_err(usage)?;
        if a.rm && p["Name"] != "no" {
            return Err(Error::Usage(
                "Conflicting options: --restart and --rm".into(),
            ));
        }
        hc.insert("RestartPolicy".into(), p);
    }
    if a.rm {
        hc.insert("AutoRemove".into(), json!(true));
    }
    if let Some(n) = &a.network {
        hc.insert("NetworkMode".into(), json!(n));
    }
    let net = a.network.clone().unwrap_or_else(|| "default".into());
    // As the docker CLI: on a user network the links also go to its endpoint, where the
    // daemon makes them DNS aliases for this container.
    let user_net = !matches!(net.as_str(), "default" | "bridge" | "host" | "none")
        && !net.starts_with("container:");
    let ep_links = user_net && !a.link.is_empty();
    if a.ip.is_some()
        || a.ip6.is_some()
        || a.mac_address.is_some()
        || !a.network_alias.is_empty()
        || ep_links
    {
        let mut ep = Map::new();
        let mut ipam = Map::new();
        if let Some(ip) = &a.ip {
            if ip.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(usage(format!("invalid IPv4 address: {ip}")));
            }
            ipam.insert("IPv4Address".into(), json!(ip));
        }
        if let Some(ip) = &a.ip6 {
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(usage(format!("invalid IPv6 address: {ip}")));
            }
            ipam.insert("IPv6Address".into(), json!(ip));
        }
        if !ipam.is_empty() {
            ep.insert("IPAMConfig".into(), Value::Object(ipam));
        }
        // as docker 28 against API 1.44+: the MAC of the primary network's endpoint
        if let Some(m) = &a.mac_address {
            ep.insert("MacAddress".into(), json!(m));
        }
        if !a.network_alias.is_empty() {
            ep.insert("Aliases".into(), json!(a.network_alias));
        }
        if ep_links {
            ep.insert("Links".into(), json!(a.link));
        }
        let mut eps = Map::new();
        eps.insert(net, Value::Object(ep));
        // Placed at the top level below as NetworkingConfig.
        cfg.insert("__net".into(), json!({"EndpointsConfig": eps}));
    }
    if !a.dns.is_empty() {
        hc.insert("Dns".into(), json!(a.dns));
    }
    if !a.dns_search.is_empty() {
        hc.insert("DnsSearch".into(), json!(a.dns_search));
    }
    if !a.dns_option.is_empty() {
        hc.insert("DnsOptions".into(), json!(a.dns_option));
    }
    if !a.link.is_empty() {
        hc.insert("Links".into(), json!(a.link));
    }
    if !a.add_host.is_empty() {
        hc.insert("ExtraHosts".into(), json!(a.add_host));
    }
    if !a.group_add.is_empty() {
        hc.insert("GroupAdd".into(), json!(a.group_add));
    }
    if let Some(p) = &a.pid {
        hc.insert("PidMode".into(), json!(p));
    }
    if let Some(p) = &a.ipc {
        hc.insert("IpcMode".into(), json!(p));
    }
    if let Some(p) = &a.uts {
        hc.insert("UTSMode".into(), json!(p));
    }
    if let Some(p) = &a.cgroupns {
        hc.insert("CgroupnsMode".into(), json!(p));
    }
    if let Some(v) = a.oom_score_adj {
        hc.insert("OomScoreAdj".into(), json!(v));
    }
    if !a.device_cgroup_rule.is_empty() {
        hc.insert("DeviceCgroupRules".into(), json!(a.device_cgroup_rule));
    }
    if !a.sysctl.is_empty() {
        hc.insert("Sysctls".into(), opts::kv_map(&a.sysctl));
    }
    if let Some(d) = &a.log_driver {
        hc.insert(
            "LogConfig".into(),
            json!({"Type": d, "Config": opts::kv_map(&a.log_opt)}),
        );
    } else if !a.log_opt.is_empty() {
        hc.insert(
            "LogConfig".into(),
            json!({"Type": "", "Config": opts::kv_map(&a.log_opt)}),
        );
    }
    // Resources.
    resources_to_json(&a.resources, &mut hc)?;
    if a.oom_kill_disable {
        hc.insert("OomKillDisable".into(), json!(true));
    }
    if let Some(v) = a.memory_swappiness {
        if !(0..=100).contains(&v) {
            return Err(usage(format!(
                "invalid --memory-swappiness {v}: must be between 0 and 100"
            )));
        }
        hc.insert("MemorySwappiness".into(), json!(v));
    }
    for (list, key, bytes) in [
        (&a.device_read_bps, "BlkioDeviceReadBps", true),
        (&a.device_write_bps, "BlkioDeviceWriteBps", true),
        (&a.device_read_iops, "BlkioDeviceReadIOps", false),
        (&a.device_write_iops, "BlkioDeviceWriteIOps", false),
    ] {
        if !list.is_empty() {
            let v = list
                .iter()
                .map(|d| opts::parse_throttle(d, bytes).map_err(usage))
                .collect::<Result<Vec<_>>>()?;
            hc.insert(key.into(), json!(v));
        }
    }
    let mem = |s: &Option<String>, what: &str| -> Result<Option<i64>> {
        s.as_deref()
            .map(|v| opts::parse_mem(v).map_err(|e| usage(format!("invalid --{what}: {e}"))))
            .transpose()
    };
    if let Some(s) = mem(&a.shm_size, "shm-size")? {
        hc.insert("ShmSize".into(), json!(s));
    }
    if !a.device.is_empty() {
        let d = a
            .device
            .iter()
            .map(|d| opts::parse_device(d).map_err(usage))
            .collect::<Result<Vec<_>>>()?;
        hc.insert("Devices".into(), json!(d));
    }
    if let Some(k) = &a.detach_keys {
        opts::parse_detach_keys(k).map_err(usage)?;
    }
    let netcfg = cfg.remove("__net");
    let mut body = Value::Object(cfg);
    body["HostConfig"] = Value::Object(hc);
    if let Some(n) = netcfg {
        body["NetworkingConfig"] = n;
    }
    Ok((body, image))
}

/// Creates a container, pulling the image when missing (per `--pull`). Returns the id.
async fn create_container(c: &Client, a: &RunArgs) -> Result<String> {
    let (body, image) = create_body(a)?;
    // As docker: an existing cidfile is an error before anything is created.
    let cidfile = match &a.cidfile {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .map_err(|e| {
                    usage(if e.kind() == std::io::ErrorKind::AlreadyExists {
                        format!("container ID file found, make sure the other container isn't running or delete {p}")
                    } else {
                        format!("failed to create the container ID file {p}: {e}")
                    })
                })?;
            Some((p.clone(), f))
        }
        None => None,
    };
    let id = create_with_pull(c, a, &body, &image).await;
    if let Some((p, mut f)) = cidfile {
        match &id {
            Ok(id) => {
                use std::io::Write;
                f.write_all(id.as_bytes())
                    .map_err(|e| Error::Msg(format!("writing the container ID file {p}: {e}")))?;
            }
            Err(_) => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    id
}

/// `POST /containers/create`, pulling a missing image first as `--pull` says.
async fn create_with_pull(c: &Client, a: &RunArgs, body: &Value, image: &str) -> Result<String> {
    let mut q = vec![];
    if let Some(n) = &a.name {
        q.push(("name", n.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    let path = format!("/containers/create{}", query(&q));
    if a.pull == "always" {
        super::image::pull_image(c, image, a.quiet, None).await?;
    }
    let resp = match c.post_json(&path, Some(body)).await {
        Err(e) if e.is_not_found() && a.pull != "never" && a.pull != "always" => {
            if !e.to_string().to_lowercase().contains("no such image") {
                return Err(e);
            }
            errln!("Unable to find image '{image}' locally");
            super::image::pull_image(c, image, a.quiet, None).await?;
            c.post_json(&path, Some(body)).await?
        }
        r => r?,
    };
    if let Some(w) = resp.get("Warnings").and_then(|w| w.as_array()) {
        for w in w {
            if let Some(s) = w.as_str() {
                errln!("WARNING: {s}");
            }
        }
    }
    resp.get("Id")
        .and_then(|i| i.as_str())
        .map(|s| s.to_string())
        .ok_or_else(|| Error::Msg("the daemon returned no container id".into()))
}

fn run_err(e: Error) -> Error {
    match e {
        Error::Exit(_) | Error::Status(..) => e,
        Error::Usage(m) => Error::Status(125, format!("barge: {m}")),
        e => Error::Status(125, format!("barge: {e}")),
    }
}

/// `create`
pub async fn create_cmd(c: &Client, a: RunArgs) -> Result<()> {
    let id = create_container(c, &a).await.map_err(run_err)?;
    outln!("{id}");
    Ok(())
}

/// Docker's exit code for a failed start: 127 not found, 126 cannot invoke, else 125.
pub(crate) fn start_error_code(msg: &str) -> i32 {
    if msg.contains("executable file not found")
        || msg.contains("no such file or directory")
        || msg.contains("system cannot find the file specified")
    {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    }
}

/// Runs an interactive session on a hijacked stream until it ends or is detached: the
/// terminal raw while a TTY session reads our stdin, the remote TTY sized to ours and kept
/// so, and `detach` (the detach keys) honoured only when stdin is forwarded.
async fn interact(
    c: &Client,
    h: Hijacked,
    path_prefix: &str,
    tty: bool,
    stdin: bool,
    detach: Vec<u8>,
) -> Result<PumpEnd> {
    let raw = if tty && stdin && term::is_tty(0) {
        term::RawMode::enable(0)
    } else {
        None
    };
    if tty {
        resize(c, path_prefix).await;
        spawn_resize_watcher(c, path_prefix.to_string());
    }
    let end = term::pump(h, tty, stdin, if stdin { detach } else { vec![] }).await;
    drop(raw);
    end
}

async fn resize(c: &Client, path_prefix: &str) {
    if let Some((h, w)) = term::size(1).or_else(|| term::size(0)) {
        let _ = c
            .post_json(&format!("{path_prefix}/resize?h={h}&w={w}"), None)
            .await;
    }
}

fn spawn_resize_watcher(c: &Client, path_prefix: String) {
    let c2 = c.sibling();
    // Installed now, not when the task first runs, so no early SIGWINCH is missed.
    let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return;
    };
    tokio::spawn(async move {
        while s.recv().await.is_some() {
            resize(&c2, &path_prefix).await;
        }
    });
}

/// Forwards the CLI's signals to the container (`--sig-proxy`). The handlers are installed
/// before this returns, so a signal that arrives right after is not lost.
fn spawn_sig_proxy(c: &Client, id: String) {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, num) in [
        (SignalKind::interrupt(), 2),
        (SignalKind::terminate(), 15),
        (SignalKind::hangup(), 1),
        (SignalKind::quit(), 3),
        (SignalKind::user_defined1(), 10),
        (SignalKind::user_defined2(), 12),
    ] {
        let Ok(mut s) = signal(kind) else { continue };
        let c2 = c.sibling();
        let id = id.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                let _ = c2
                    .post_json(&format!("/containers/{id}/kill?signal={num}"), None)
                    .await;
            }
        });
    }
}

fn detach_keys(k: &Option<String>) -> Result<Vec<u8>> {
    opts::parse_detach_keys(k.as_deref().unwrap_or("ctrl-p,ctrl-q")).map_err(Error::Usage)
}

/// Starts a wait request and returns once the daemon has accepted it (headers received),
/// so a fast exit after start is not missed; the result comes from the returned task.
async fn wait_registered(
    c: &Client,
    id: &str,
    cond: &str,
) -> Result<tokio::task::JoinHandle<Result<i64>>> {
    let resp = c
        .raw(
            Method::POST,
            &format!("/containers/{id}/wait?condition={cond}"),
            None,
            &[],
        )
        .await?;
    let status = resp.status().as_u16();
    Ok(tokio::spawn(async move {
        let b = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .map_err(|e| Error::Msg(format!("waiting: {e}")))?
            .to_bytes();
        if status >= 400 {
            return Err(Error::Api {
                status,
                message: super::client::error_message(&b),
            });
        }
        let v = super::client::parse_json(&b)?;
        if let Some(m) = v.pointer("/Error/Message").and_then(|m| m.as_str()) {
            if !m.is_empty() {
                return Err(Error::Msg(m.to_string()));
            }
        }
        Ok(v.get("StatusCode").and_then(|s| s.as_i64()).unwrap_or(0))
    }))
}

/// `run`
pub async fn run(c: &Client, a: RunArgs) -> Result<()> {
    let keys = detach_keys(&a.detach_keys).map_err(run_err)?;
    if a.tty && a.interactive && !a.detach && !term::is_tty(0) {
        return Err(Error::Msg("the input device is not a TTY".into()));
    }
    let id = create_container(c, &a).await.map_err(run_err)?;
    if a.detach {
        if let Err(e) = c.post_json(&format!("/containers/{id}/start"), None).await {
            let code = start_error_code(&e.to_string());
            return Err(Error::Status(code, format!("barge: {e}")));
        }
        outln!("{id}");
        return Ok(());
    }
    let attach_all = a.attach.is_empty();
    let att = |s: &str| attach_all || a.attach.iter().any(|x| x.eq_ignore_ascii_case(s));
    let stdin = a.interactive;
    let q = format!(
        "/containers/{id}/attach?stream=1&stdin={}&stdout={}&stderr={}",
        stdin as u8,
        att("stdout") as u8,
        att("stderr") as u8
    );
    let cond = if a.rm { "removed" } else { "next-exit" };
    // Both must be in place before the start; they do not depend on each other, so their
    // round trips overlap.
    let (h, waiter) =
        tokio::try_join!(c.hijack(&q, None), wait_registered(c, &id, cond)).map_err(run_err)?;
    if !a.tty && a.sig_proxy {
        spawn_sig_proxy(c, id.clone());
    }
    if let Err(e) = c.post_json(&format!("/containers/{id}/start"), None).await {
        let code = start_error_code(&e.to_string());
        if a.rm {
            let _ = c.delete(&format!("/containers/{id}?force=1")).await;
        }
        return Err(Error::Status(code, format!("barge: {e}")));
    }
    let end = interact(c, h, &format!("/containers/{id}"), a.tty, stdin, keys).await;
    if end? == PumpEnd::Detached {
        waiter.abort();
        return Ok(());
    }
    let code = waiter
        .await
        .map_err(|e| Error::Msg(e.to_string()))?
        .map_err(run_err)?;
    if code != 0 {
        return Err(Error::Exit(code as i32));
    }
    Ok(())
}

async fn inspect_container(c: &Client, id: &str) -> Result<Value> {
    c.get_json(&format!("/containers/{}/json", enc(id))).await
}

/// `start`
pub async fn start(c: &Client, a: StartArgs) -> Result<()> {
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            return Err(Error::Usage(
                "you cannot start and attach multiple containers at once".into(),
            ));
        }
        let id = &a.containers[0];
        let info = inspect_container(c, id).await?;
        let tty = info
            .pointer("/Config/Tty")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let open_stdin = info
            .pointer("/Config/OpenStdin")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let stdin = a.interactive && open_stdin;
        let full = info
            .get("Id")
            .and_then(|v| v.as_str())
            .unwrap_or(id)
            .to_string();
        let h = c
            .hijack(
                &format!(
                    "/containers/{full}/attach?stream=1&stdin={}&stdout=1&stderr=1",
                    stdin as u8
                ),
                None,
            )
            .await?;
        let waiter = wait_registered(c, &full, "next-exit").await?;
        if !tty {
            spawn_sig_proxy(c, full.clone());
        }
        if let Err(e) = c
            .post_json(&format!("/containers/{full}/start"), None)
            .await
        {
            return Err(Error::Status(
                start_error_code(&e.to_string()),
                e.to_string(),
            ));
        }
        let keys = detach_keys(&a.detach_keys)?;
        let end = interact(c, h, &format!("/containers/{full}"), tty, stdin, keys).await;
        if end? == PumpEnd::Detached {
            return Ok(());
        }
        let code = waiter.await.map_err(|e| Error::Msg(e.to_string()))??;
        if code != 0 {
            return Err(Error::Exit(code as i32));
        }
        return Ok(());
    }
    let mut errs = vec![];
    for id in &a.containers {
        match c
            .post_json(&format!("/containers/{}/start", enc(id)), None)
            .await
        {
            Ok(_) => outln!("{id}"),
            Err(e) => errs.push(e),
        }
    }
    report_each(errs)
}

/// `stop` / `restart`
pub async fn stop(c: &Client, a: StopArgs, restart: bool) -> Result<()> {
    let mut q = vec![];
    if let Some(t) = a.time {
        q.push(("t", t.to_string()));
    }
    if let Some(s) = &a.signal {
        if opts::signal_number(s).is_none() {
            return Err(Error::Usage(format!("invalid signal: {s}")));
        }
        q.push(("signal", s.clone()));
    }
    let verb = if restart { "restart" } else { "stop" };
    let mut errs = vec![];
    for id in &a.containers {
        let p = format!("/containers/{}/{verb}{}", enc(id), query(&q));
        match c.post_json(&p, None).await {
            Ok(_) => outln!("{id}"),
            Err(e) => errs.push(e),
        }
    }
    report_each(errs)
}

/// `kill`
pub async fn kill(c: &Client, a: KillArgs) -> Result<()> {
    if opts::signal_number(&a.signal).is_none() {
        return Err(Error::Usage(format!("invalid signal: {}", a.signal)));
    }
    let mut errs = vec![];
    for id in &a.containers {
        let p = format!("/containers/{}/kill?signal={}", enc(id), enc(&a.signal));
        match c.post_json(&p, None).await {
            Ok(_) => outln!("{id}"),
            Err(e) => errs.push(e),
        }
    }
    report_each(errs)
}

/// `rm`
pub async fn rm(c: &Client, a: RmArgs) -> Result<()> {
    let mut errs = vec![];
    for id in &a.containers {
        let p = format!(
            "/containers/{}?force={}&v={}&link={}",
            enc(id),
            a.force as u8,
            a.volumes as u8,
            a.link as u8
        );
        match c.delete(&p).await {
            Ok(_) => outln!("{id}"),
            Err(e) => errs.push(e),
        }
    }
    report_each(errs)
}

/// `pause` / `unpause`
pub async fn simple(c: &Client, a: Targets, verb: &str) -> Result<()> {
    let mut errs = vec![];
    for id in &a.containers {
        match c
            .post_json(&format!("/containers/{}/{verb}", enc(id)), None)
            .await
        {
            Ok(_) => outln!("{id}"),
            Err(e) => errs.push(e),
        }
    }
    report_each(errs)
}

fn ports_text(ports: &Value) -> String {
    let mut out = vec![];
    if let Some(ps) = ports.as_array() {
        for p in ps {
            let priv_ = p.get("PrivatePort").and_then(|v| v.as_i64()).unwrap_or(0);
            let typ = p.get("Type").and_then(|v| v.as_str()).unwrap_or("tcp");
            match p.get("PublicPort").and_then(|v| v.as_i64()) {
                Some(pub_) if pub_ > 0 => {
                    let ip = p.get("IP").and_then(|v| v.as_str()).unwrap_or("0.0.0.0");
                    let ip = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    out.push(format!("{ip}:{pub_}->{priv_}/{typ}"));
                }
                _ => out.push(format!("{priv_}/{typ}")),
            }
        }
    }
    out.join(", ")
}

fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

pub(crate) fn labels_text(v: &Value) -> String {
    let mut l: Vec<String> = v
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    l.sort();
    l.join(",")
}

/// A `ps` row with docker's formatter fields.
pub(crate) fn ps_row(v: &Value, no_trunc: bool) -> Value {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let id = if no_trunc {
        s("Id")
    } else {
        short_id(&s("Id"))
    };
    let cmd = if no_trunc {
        s("Command")
    } else {
        ellipsis(&s("Command"), 20)
    };
    let created = v.get("Created").and_then(|x| x.as_i64()).unwrap_or(0);
    let names: Vec<String> = v
        .get("Names")
        .and_then(|n| n.as_array())
        .map(|n| {
            n.iter()
                .filter_map(|x| x.as_str())
                .map(|x| x.trim_start_matches('/').to_string())
                .filter(|x| no_trunc || !x.contains('/'))
                .collect()
        })
        .unwrap_or_default();
    let size = match (
        v.get("SizeRw").and_then(|x| x.as_f64()),
        v.get("SizeRootFs").and_then(|x| x.as_f64()),
    ) {
        (Some(rw), Some(rootfs)) if rootfs > 0.0 => {
            format!("{} (virtual {})", human_size(rw), human_size(rootfs))
        }
        (Some(rw), _) => human_size(rw),
        _ => "0B".into(),
    };
    let mounts: Vec<String> = v
        .get("Mounts")
        .and_then(|m| m.as_array())
        .map(|m| {
            m.iter()
                .map(|x| {
                    let n = x.get("Name").and_then(|n| n.as_str()).unwrap_or("");
                    if n.is_empty() {
                        x.get("Source")
                            .and_then(|n| n.as_str())
                            .unwrap_or("")
                            .to_string()
                    } else {
                        n.to_string()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    // As docker's formatter: the mounts of the `local` volume driver.
    let local_volumes = v
        .get("Mounts")
        .and_then(|m| m.as_array())
        .map(|m| {
            m.iter()
                .filter(|x| x.get("Driver").and_then(|d| d.as_str()) == Some("local"))
                .count()
        })
        .unwrap_or(0);
    let nets: Vec<String> = v
        .pointer("/NetworkSettings/Networks")
        .and_then(|n| n.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    json!({
        "ID": id,
        "Image": s("Image"),
        "Command": format!("{cmd:?}"),
        "CreatedAt": go_time(created),
        "RunningFor": format!("{} ago", human_duration(now_unix() - created)),
        "Ports": ports_text(v.get("Ports").unwrap_or(&Value::Null)),
        "State": s("State"),
        "Status": s("Status"),
        "Size": size,
        "Names": names.join(","),
        "Labels": labels_text(v.get("Labels").unwrap_or(&Value::Null)),
        "Mounts": mounts.join(","),
        "Networks": nets.join(","),
        "LocalVolumes": local_volumes.to_string(),
        // The image manifest's platform (API 1.46+ ImageManifestDescriptor), not reported.
        "Platform": Value::Null,
        "_labels": v.get("Labels").cloned().unwrap_or(Value::Null),
    })
}

const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

fn tmpl_err(e: super::format::TemplateError) -> Error {
    Error::Usage(e.to_string())
}

/// `ps`
pub async fn ps(c: &Client, a: PsArgs) -> Result<()> {
    let default = if a.size {
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let f = ListFormat::new(a.format.as_deref(), default, PS_HEADERS).map_err(tmpl_err)?;
    let mut q = vec![];
    let limit = if a.latest { Some(1) } else { a.last };
    if a.all || limit.is_some() {
        q.push(("all", "1".to_string()));
    }
    if let Some(n) = limit {
        q.push(("limit", n.to_string()));
    }
    // As docker: sizes are asked for when the template shows them (`json .` shows all).
    let want_size = a.size
        || a.format.as_deref().is_some_and(|f| {
            let f: String = f.chars().filter(|c| !c.is_whitespace()).collect();
            f.contains(".Size") || f.contains("json.}}")
        });
    if want_size {
        q.push(("size", "1".to_string()));
    }
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let list = c
        .get_json(&format!("/containers/json{}", query(&q)))
        .await?;
    let items = list.as_array().cloned().unwrap_or_default();
    if a.quiet {
        let mut out = String::new();
        for i in &items {
            let id = i.get("Id").and_then(|v| v.as_str()).unwrap_or("");
            out.push_str(&if a.no_trunc {
                id.to_string()
            } else {
                short_id(id)
            });
            out.push('\n');
        }
        out!("{out}");
        return Ok(());
    }
    let rows: Vec<Value> = items.iter().map(|i| ps_row(i, a.no_trunc)).collect();
    let out = f.render(&rows).map_err(tmpl_err)?;
    let mut so = super::out::stdout();
    let _ = so.write_all(out.as_bytes());
    Ok(())
}

/// `logs`
pub async fn logs(c: &Client, a: LogsArgs) -> Result<()> {
    let info = inspect_container(c, &a.container).await?;
    let tty = info
        .pointer("/Config/Tty")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let mut q = vec![
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
        ("tail", a.tail.clone()),
    ];
    if a.follow {
        q.push(("follow", "1".into()));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if a.details {
        q.push(("details", "1".into()));
    }
    if let Some(s) = &a.since {
        q.push(("since", time_arg(s)?));
    }
    if let Some(s) = &a.until {
        q.push(("until", time_arg(s)?));
    }
    let mut body = c
        .call(
            Method::GET,
            &format!("/containers/{}/logs{}", enc(&a.container), query(&q)),
            None,
            &[],
        )
        .await?;
    let mut demux = Demux::default();
    while let Some(chunk) = body.chunk().await? {
        if tty {
            let mut o = super::out::stdout();
            let _ = o.write_all(&chunk);
            let _ = o.flush();
        } else {
            for f in demux.push(&chunk) {
                if f.stream == 2 {
                    let mut e = super::out::stderr();
                    let _ = e.write_all(&f.data);
                } else {
                    let mut o = super::out::stdout();
                    let _ = o.write_all(&f.data);
                    let _ = o.flush();
                }
            }
        }
    }
    Ok(())
}

/// `exec`
pub async fn exec(c: &Client, a: ExecArgs) -> Result<()> {
    let container = &a.container_and_cmd[0];
    let cmd = &a.container_and_cmd[1..];
    let keys = detach_keys(&a.detach_keys)?;
    let mut env = vec![];
    for f in &a.env_file {
        let text =
            std::fs::read_to_string(f).map_err(|e| Error::Usage(format!("open {f}: {e}")))?;
        env.extend(opts::parse_env_file(&text, f).map_err(Error::Usage)?);
    }
    for e in &a.env {
        env.push(opts::env_entry(e).map_err(Error::Usage)?);
    }
    let stdin = a.interactive && !a.detach;
    if a.tty && stdin && !term::is_tty(0) {
        return Err(Error::Msg("the input device is not a TTY".into()));
    }
    let mut body = json!({
        "AttachStdin": stdin,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Tty": a.tty,
        "Cmd": cmd,
        "Privileged": a.privileged,
    });
    if !env.is_empty() {
        body["Env"] = json!(env);
    }
    if let Some(u) = &a.user {
        body["User"] = json!(u);
    }
    if let Some(w) = &a.workdir {
        body["WorkingDir"] = json!(w);
    }
    if let Some(k) = &a.detach_keys {
        body["DetachKeys"] = json!(k);
    }
    let r = c
        .post_json(&format!("/containers/{}/exec", enc(container)), Some(&body))
        .await?;
    let eid = r
        .get("Id")
        .and_then(|v| v.as_str())
        .ok_or_else(|| Error::Msg("the daemon returned no exec id".into()))?
        .to_string();
    if a.detach {
        c.post_json(
            &format!("/exec/{eid}/start"),
            Some(&json!({"Detach": true, "Tty": a.tty})),
        )
        .await?;
        return Ok(());
    }
    let h = c
        .hijack(
            &format!("/exec/{eid}/start"),
            Some(&json!({"Detach": false, "Tty": a.tty})),
        )
        .await?;
    let end = interact(c, h, &format!("/exec/{eid}"), a.tty, stdin, keys).await;
    if end? == PumpEnd::Detached {
        return Ok(());
    }
    // The exit code may be recorded a moment after the stream closes.
    for _ in 0..100 {
        let info = c.get_json(&format!("/exec/{eid}/json")).await?;
        let running = info
            .get("Running")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if let Some(code) = info.get("ExitCode").and_then(|v| v.as_i64()) {
            if !running {
                if code != 0 {
                    return Err(Error::Exit(code as i32));
                }
                return Ok(());
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

/// `attach`
pub async fn attach(c: &Client, a: AttachArgs) -> Result<()> {
    let info = inspect_container(c, &a.container).await?;
    if !info
        .pointer("/State/Running")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
    {
        return Err(Error::Msg(
            "You cannot attach to a stopped container, start it first".into(),
        ));
    }
    if info
        .pointer("/State/Paused")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
    {
        return Err(Error::Msg(
            "You cannot attach to a paused container, unpause it first".into(),
        ));
    }
    let tty = info
        .pointer("/Config/Tty")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let open_stdin = info
        .pointer("/Config/OpenStdin")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let stdin = !a.no_stdin && open_stdin;
    let id = info
        .get("Id")
        .and_then(|v| v.as_str())
        .unwrap_or(&a.container)
        .to_string();
    let h = c
        .hijack(
            &format!(
                "/containers/{id}/attach?stream=1&stdin={}&stdout=1&stderr=1",
                stdin as u8
            ),
            None,
        )
        .await?;
    if !tty && a.sig_proxy {
        spawn_sig_proxy(c, id.clone());
    }
    let keys = detach_keys(&a.detach_keys)?;
    let end = interact(c, h, &format!("/containers/{id}"), tty, stdin, keys).await;
    if end? == PumpEnd::Detached {
        return Ok(());
    }
    let r = c.post_json(&format!("/containers/{id}/wait"), None).await?;
    let code = r.get("StatusCode").and_then(|v| v.as_i64()).unwrap_or(0);
    if code != 0 {
        return Err(Error::Exit(code as i32));
    }
    Ok(())
}

/// `wait`
pub async fn wait(c: &Client, a: Targets) -> Result<()> {
    let mut errs = vec![];
    for id in &a.containers {
        match c
            .post_json(&format!("/containers/{}/wait", enc(id)), None)
            .await
        {
            Ok(v) => outln!(
                "{}",
                v.get("StatusCode").and_then(|v| v.as_i64()).unwrap_or(0)
            ),
            Err(e) => errs.push(e),
        }
    }
    report_each(errs)
}

fn pretty(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    let _ = serde::Serialize::serialize(v, &mut ser);
    String::from_utf8_lossy(&buf).into_owned()
}

/// `inspect` (`typ` forced by `container inspect`, `image inspect`...).
pub async fn inspect(c: &Client, a: InspectArgs, typ: Option<&str>) -> Result<()> {
    let typ = typ.map(|s| s.to_string()).or(a.typ.clone());
    if let Some(t) = &typ {
        if !matches!(t.as_str(), "container" | "image" | "network" | "volume") {
            return Err(Error::Usage(format!(
                "\"{t}\" is not a valid value for --type"
            )));
        }
    }
    let tmpl = match a.format.as_deref() {
        None | Some("") | Some("json") => None,
        Some(f) => Some(Template::parse(&unescape(f)).map_err(tmpl_err)?),
    };
    let mut found = vec![];
    let mut errs = vec![];
    for name in &a.names {
        let n = enc(name);
        let kinds: Vec<&str> = match &typ {
            Some(t) => vec![t.as_str()],
            None => vec!["container", "image", "network", "volume"],
        };
        let mut got = None;
        for k in &kinds {
            let path = match *k {
                "container" => format!(
                    "/containers/{n}/json{}",
                    if a.size { "?size=1" } else { "" }
                ),
                "image" => format!("/images/{n}/json"),
                "network" => format!("/networks/{n}"),
                _ => format!("/volumes/{n}"),
            };
            match c.get_json(&path).await {
                Ok(v) => {
                    got = Some(v);
                    break;
                }
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        }
        match got {
            Some(v) => found.push(v),
            None => errs.push(match &typ {
                Some(t) => format!("Error: No such {t}: {name}"),
                None => format!("Error: No such object: {name}"),
            }),
        }
    }
    let mut out = String::new();
    match tmpl {
        None => {
            if !found.is_empty() || errs.is_empty() {
                out = pretty(&Value::Array(found));
                out.push('\n');
            } else {
                out = "[]\n".into();
            }
        }
        Some(t) => {
            for v in &found {
                out.push_str(&t.render(v).map_err(tmpl_err)?);
                out.push('\n');
            }
        }
    }
    out!("{out}");
    if !errs.is_empty() {
        for e in errs {
            errln!("{e}");
        }
        return Err(Error::Exit(1));
    }
    Ok(())
}

/// `top`
pub async fn top(c: &Client, a: TopArgs) -> Result<()> {
    let mut p = format!("/containers/{}/top", enc(&a.container));
    if !a.ps_args.is_empty() {
        p.push_str(&format!("?ps_args={}", enc(&a.ps_args.join(" "))));
    }
    let v = c.get_json(&p).await?;
    let mut out = String::new();
    let titles: Vec<String> = v
        .get("Titles")
        .and_then(|t| t.as_array())
        .map(|t| {
            t.iter()
                .map(|x| x.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&titles.join("\t"));
    out.push('\n');
    for row in v
        .get("Processes")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        let cells: Vec<String> = row
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|x| x.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    // docker's top writes through tabwriter.NewWriter(out, 20, 1, 3, ' ', 0).
    out!("{}", tabulate_min(&out, 20));
    Ok(())
}

fn stats_row(name: &str, id: &str, s: &Value, no_trunc: bool) -> Value {
    let f = |p: &str| s.pointer(p).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let cpu_delta =
        f("/cpu_stats/cpu_usage/total_usage") - f("/precpu_stats/cpu_usage/total_usage");
    let sys_delta = f("/cpu_stats/system_cpu_usage") - f("/precpu_stats/system_cpu_usage");
    let ncpu = s
        .pointer("/cpu_stats/online_cpus")
        .and_then(|v| v.as_f64())
        .filter(|n| *n > 0.0)
        .or_else(|| {
            s.pointer("/cpu_stats/cpu_usage/percpu_usage")
                .and_then(|v| v.as_array())
                .map(|a| a.len() as f64)
        })
        .unwrap_or(1.0);
    let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * ncpu * 100.0
    } else {
        0.0
    };
    // As docker: usage minus inactive file cache (cgroup v2) or total_inactive_file / cache (v1).
    let usage = f("/memory_stats/usage");
    let cache = s
        .pointer("/memory_stats/stats/inactive_file")
        .or_else(|| s.pointer("/memory_stats/stats/total_inactive_file"))
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let mem = (usage - cache).max(0.0);
    let limit = f("/memory_stats/limit");
    let memp = if limit > 0.0 {
        mem / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    if let Some(n) = s.get("networks").and_then(|n| n.as_object()) {
        for v in n.values() {
            rx += v.get("rx_bytes").and_then(|v| v.as_f64()).unwrap_or(0.0);
            tx += v.get("tx_bytes").and_then(|v| v.as_f64()).unwrap_or(0.0);
        }
    }
    let (mut br, mut bw) = (0.0, 0.0);
    if let Some(b) = s
        .pointer("/blkio_stats/io_service_bytes_recursive")
        .and_then(|b| b.as_array())
    {
        for e in b {
            let v = e.get("value").and_then(|v| v.as_f64()).unwrap_or(0.0);
            match e
                .get("op")
                .and_then(|o| o.as_str())
                .unwrap_or("")
                .to_lowercase()
                .as_str()
            {
                "read" => br += v,
                "write" => bw += v,
                _ => {}
            }
        }
    }
    let pids = s
        .pointer("/pids_stats/current")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    json!({
        "Container": if no_trunc { id.to_string() } else { short_id(id) },
        "ID": if no_trunc { id.to_string() } else { short_id(id) },
        "Name": name.trim_start_matches('/'),
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", super::format::bytes_size(mem), super::format::bytes_size(limit)),
        "MemPerc": format!("{memp:.2}%"),
        "NetIO": format!("{} / {}", human_size(rx), human_size(tx)),
        "BlockIO": format!("{} / {}", human_size(br), human_size(bw)),
        "PIDs": pids.to_string(),
    })
}

/// How many stats requests `stats` keeps in flight (bounded so hundreds of containers do not
/// open hundreds of sockets at once).
const STATS_IN_FLIGHT: usize = 64;

/// `stats`
pub async fn stats(c: &Client, a: StatsArgs) -> Result<()> {
    let f = ListFormat::new(
        a.format.as_deref(),
        "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
        &[
            ("ID", "CONTAINER ID"),
            ("Container", "CONTAINER"),
            ("Name", "NAME"),
            ("CPUPerc", "CPU %"),
            ("MemUsage", "MEM USAGE / LIMIT"),
            ("MemPerc", "MEM %"),
            ("NetIO", "NET I/O"),
            ("BlockIO", "BLOCK I/O"),
            ("PIDs", "PIDS"),
        ],
    )
    .map_err(tmpl_err)?;
    loop {
        let targets: Vec<String> = if a.containers.is_empty() {
            let l = c
                .get_json(&format!(
                    "/containers/json{}",
                    if a.all { "?all=1" } else { "" }
                ))
                .await?;
            l.as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("Id").and_then(|i| i.as_str()).map(|s| s.to_string()))
                .collect()
        } else {
            a.containers.clone()
        };
        let mut rows = vec![];
        let mut errs = vec![];
        // One request per container, all in flight at once (as docker's CLI does, one
        // goroutine each): each waits on the daemon's cgroup reads, not on the others. The
        // answers come back in the listing's order.
        let answers: Vec<(String, Result<Value>)> = futures_util::stream::iter(targets)
            .map(|t| async move {
                let r = c
                    .get_json(&format!("/containers/{}/stats?stream=0", enc(&t)))
                    .await;
                (t, r)
            })
            .buffered(STATS_IN_FLIGHT)
            .collect()
            .await;
        for (t, r) in answers {
            let t = &t;
            match r {
                Ok(s) => {
                    let name = s
                        .get("name")
                        .and_then(|v| v.as_str())
                        .unwrap_or(t)
                        .to_string();
                    let id = s
                        .get("id")
                        .and_then(|v| v.as_str())
                        .unwrap_or(t)
                        .to_string();
                    rows.push(stats_row(&name, &id, &s, a.no_trunc));
                }
                Err(e) => errs.push(e),
            }
        }
        if !errs.is_empty() && !a.containers.is_empty() {
            return report_each(errs);
        }
        let out = f.render(&rows).map_err(tmpl_err)?;
        if a.no_stream {
            out!("{out}");
            return Ok(());
        }
        out!("\x1b[2J\x1b[H{out}");
        let _ = super::out::stdout().flush();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// `rename`
pub async fn rename(c: &Client, container: &str, new_name: &str) -> Result<()> {
    if new_name.trim().is_empty() {
        return Err(Error::Usage(
            "Error: Neither old nor new names may be empty".into(),
        ));
    }
    c.post_json(
        &format!(
            "/containers/{}/rename?name={}",
            enc(container),
            enc(new_name)
        ),
        None,
    )
    .await?;
    Ok(())
}

/// The HostConfig fields of `run`'s and `update`'s resource flags.
fn resources_to_json(r: &ResourceArgs, hc: &mut Map<String, Value>) -> Result<()> {
    let mem = |s: &Option<String>, what: &str| -> Result<Option<i64>> {
        match s.as_deref() {
            None => Ok(None),
            Some("-1") if what == "memory-swap" => Ok(Some(-1)),
            Some(v) => opts::parse_mem(v)
                .map(Some)
                .map_err(|e| usage(format!("invalid --{what}: {e}"))),
        }
    };
    if let Some(m) = mem(&r.memory, "memory")? {
        if m > 0 && m < 6 * 1024 * 1024 {
            return Err(Error::Status(
                125,
                "barge: Error response from daemon: Minimum memory limit allowed is 6MB.".into(),
            ));
        }
        hc.insert("Memory".into(), json!(m));
    }
    if let Some(m) = mem(&r.memory_swap, "memory-swap")? {
        hc.insert("MemorySwap".into(), json!(m));
    }
    if let Some(m) = mem(&r.memory_reservation, "memory-reservation")? {
        hc.insert("MemoryReservation".into(), json!(m));
    }
    if let Some(c) = r.cpus {
        if !(c >= 0.0 && c.is_finite()) {
            return Err(usage(format!("invalid --cpus {c}")));
        }
        hc.insert("NanoCpus".into(), json!((c * 1e9) as i64));
    }
    let numbers = [
        ("CpuShares", r.cpu_shares),
        ("CpuPeriod", r.cpu_period),
        ("CpuQuota", r.cpu_quota),
        ("PidsLimit", r.pids_limit),
        ("BlkioWeight", r.blkio_weight.map(i64::from)),
    ];
    for (key, v) in numbers {
        if let Some(v) = v {
            hc.insert(key.into(), json!(v));
        }
    }
    for (key, v) in [
        ("CpusetCpus", &r.cpuset_cpus),
        ("CpusetMems", &r.cpuset_mems),
    ] {
        if let Some(v) = v {
            hc.insert(key.into(), json!(v));
        }
    }
    Ok(())
}

/// `update`
pub async fn update(c: &Client, a: UpdateArgs) -> Result<()> {
    let mut b = Map::new();
    resources_to_json(&a.resources, &mut b)?;
    if let Some(r) = &a.restart {
        b.insert(
            "RestartPolicy".into(),
            opts::parse_restart(r).map_err(Error::Usage)?,
        );
    }
    if b.is_empty() {
        return Err(Error::Usage(
            "you must provide one or more flags when using this command".into(),
        ));
    }
    let body = Value::Object(b);
    let mut errs = vec![];
    for id in &a.containers {
        match c
            .post_json(&format!("/containers/{}/update", enc(id)), Some(&body))
            .await
        {
            Ok(r) => {
                for w in r
                    .get("Warnings")
                    .and_then(|w| w.as_array())
                    .into_iter()
                    .flatten()
                {
                    errln!("WARNING: {}", w.as_str().unwrap_or(""));
                }
                outln!("{id}")
            }
            Err(e) => errs.push(e),
        }
    }
    report_each(errs)
}

/// `port`
pub async fn port(c: &Client, container: &str, port: Option<&str>) -> Result<()> {
    let info = inspect_container(c, container).await?;
    let ports = info
        .pointer("/NetworkSettings/Ports")
        .and_then(|p| p.as_object())
        .cloned()
        .unwrap_or_default();
    let want = port.map(|p| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort();
    let mut any = false;
    for k in keys {
        if let Some(w) = &want {
            if w != k {
                continue;
            }
        }
        for b in ports[k].as_array().into_iter().flatten() {
            let ip = b.get("HostIp").and_then(|v| v.as_str()).unwrap_or("");
            let hp = b.get("HostPort").and_then(|v| v.as_str()).unwrap_or("");
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            if want.is_some() {
                outln!("{ip}:{hp}");
            } else {
                outln!("{k} -> {ip}:{hp}");
            }
            any = true;
        }
    }
    if let (Some(p), false) = (port, any) {
        return Err(Error::Msg(format!(
            "Error: No public port '{}' published for {container}",
            want.unwrap_or_else(|| p.to_string())
        )));
    }
    Ok(())
}

/// Splits a `cp` argument into (container, path); a local path has no container.
fn split_cp(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') || arg == "-" {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.contains('/') && !c.is_empty() => (Some(c), p),
        _ => (None, arg),
    }
}

fn safe_rel(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// `cp`
pub async fn cp(c: &Client, a: CpArgs) -> Result<()> {
    let (sc, sp) = split_cp(&a.src);
    let (dc, dp) = split_cp(&a.dst);
    match (sc, dc) {
        (Some(_), Some(_)) => Err(Error::Usage(
            "copying between containers is not supported".into(),
        )),
        (None, None) => Err(Error::Usage(
            "must specify at least one container source".into(),
        )),
        (Some(ctr), None) => cp_from(c, ctr, sp, dp, a.archive, a.follow_link).await,
        (None, Some(ctr)) => cp_to(c, sp, ctr, dp, a.follow_link).await,
    }
}

/// Go's os.ModeSymlink and os.ModeDir in a path stat's `mode`.
const MODE_SYMLINK: u64 = 1 << 27;
const MODE_DIR: u64 = 1 << 31;

/// `HEAD /containers/{ctr}/archive?path=`: the path's stat (`X-Docker-Container-Path-Stat`),
/// or None when it does not exist.
async fn stat_path(c: &Client, ctr: &str, path: &str) -> Result<Option<Value>> {
    let r = c
        .raw(
            Method::HEAD,
            &format!("/containers/{}/archive?path={}", enc(ctr), enc(path)),
            None,
            &[],
        )
        .await?;
    match r.status().as_u16() {
        200 => Ok(r
            .headers()
            .get("X-Docker-Container-Path-Stat")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(h).ok()
            })
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())),
        404 => Ok(None),
        status => {
            let b = Body2(r).bytes().await;
            Err(Error::Api {
                status,
                message: super::client::error_message(&b),
            })
        }
    }
}

/// The stat's `mode` (Go's os.FileMode), 0 when absent.
fn stat_mode(st: &Value) -> u64 {
    st.get("mode").and_then(Value::as_u64).unwrap_or(0)
}

/// Where a symlink at `path` leads per its stat's `linkTarget` (relative ones from the
/// link's directory), keeping a trailing `/` or `/.` of `path`; and the name the copy must
/// carry when that changes the last component (docker's `GetRebaseName`).
fn follow_link_target(path: &str, st: &Value) -> (String, Option<String>) {
    let target = st.get("linkTarget").and_then(Value::as_str).unwrap_or("");
    let mut resolved = if target.starts_with('/') {
        target.to_string()
    } else {
        let dir = path.trim_end_matches('/');
        let dir = &dir[..dir.rfind('/').map(|i| i + 1).unwrap_or(0)];
        format!("{dir}{target}")
    };
    let base = |p: &str| {
        p.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string()
    };
    if (path == "." || path.ends_with("/.")) && !resolved.ends_with("/.") {
        resolved.push_str("/.");
    }
    if path.ends_with('/') && !resolved.ends_with('/') {
        resolved.push('/');
    }
    let rebase = (base(path) != base(&resolved)).then(|| base(path));
    (resolved, rebase)
}

async fn cp_from(
    c: &Client,
    ctr: &str,
    src: &str,
    dst: &str,
    archive: bool,
    follow: bool,
) -> Result<()> {
    if src.is_empty() {
        return Err(Error::Usage("source can not be empty".into()));
    }
    // The daemon archives a symlink itself; -L copies what it points to, under the link's
    // name (as the docker CLI does it: client side, from the stat's linkTarget).
    let mut src = src.to_string();
    let mut rebase = None;
    if follow {
        if let Some(st) = stat_path(c, ctr, &src).await? {
            if stat_mode(&st) & MODE_SYMLINK != 0 {
                (src, rebase) = follow_link_target(&src, &st);
            }
        }
    }
    let src = src.as_str();
    let mut resp = c
        .call(
            Method::GET,
            &format!("/containers/{}/archive?path={}", enc(ctr), enc(src)),
            None,
            &[],
        )
        .await?;
    if dst == "-" {
        // The archive goes out as the daemon made it: a followed link's target keeps its own
        // name, as the docker CLI streams it (only a copy into a directory is renamed).
        let mut o = super::out::stdout();
        while let Some(chunk) = resp.chunk().await? {
            o.write_all(&chunk)?;
        }
        o.flush()?;
        return Ok(());
    }
    let body = resp.bytes().await?;
    // SRC ending in `/.` copies a directory's content: into DEST, created if need be.
    let dst_path = Path::new(dst);
    if (src == "." || src.ends_with("/.")) && std::fs::symlink_metadata(dst_path).is_err() {
        std::fs::create_dir(dst_path)
            .map_err(|e| Error::Msg(format!("cannot create destination directory {dst}: {e}")))?;
    }
    extract_copy(&body, dst_path, archive, rebase.as_deref())
}

/// Whether `name` can replace an archive's top entry name (one plain path component).
fn valid_rebase(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// `rel` with its first component replaced by `name`.
fn rebased(rel: &Path, name: &str) -> PathBuf {
    let mut c = rel.components();
    match c.next() {
        // (joining an empty rest would add a trailing slash: a file would read as a dir)
        Some(_) if c.as_path().as_os_str().is_empty() => PathBuf::from(name),
        Some(_) => Path::new(name).join(c.as_path()),
        None => rel.to_path_buf(),
    }
}

/// Extracts a `GET /archive` tar at `dst` with docker's cp semantics (into an existing
/// directory, else renamed to `dst`), refusing entries that leave `dst`, writes through
/// symlinks and hard links to anything outside what it extracted. `rebase` renames the
/// archive's top entry (a followed link's target takes the link's name).
fn extract_copy(body: &[u8], dst: &Path, archive: bool, rebase: Option<&str>) -> Result<()> {
    let into_dir = dst.is_dir();
    if !into_dir {
        if let Some(parent) = dst.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(Error::Msg(format!(
                    "destination directory {} does not exist",
                    parent.display()
                )));
            }
        }
    }
    let mut ar = tar::Archive::new(std::io::Cursor::new(body));
    ar.set_preserve_ownerships(archive);
    ar.set_preserve_permissions(true);
    let mut root: Option<PathBuf> = None;
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(mut rel) = safe_rel(&path) else {
            return Err(Error::Msg(format!(
                "refusing to extract {}: it leaves the destination",
                path.display()
            )));
        };
        if let Some(name) = rebase.filter(|n| valid_rebase(n)) {
            rel = rebased(&rel, name);
        }
        if rel.as_os_str().is_empty() {
            continue;
        }
        let top = rel
            .components()
            .next()
            .map(|c| PathBuf::from(c.as_os_str()));
        if root.is_none() {
            root = top.clone();
        }
        let map = |rel: &Path| -> PathBuf {
            if into_dir {
                return dst.join(rel);
            }
            let rest = rel
                .strip_prefix(root.as_deref().unwrap_or(rel))
                .unwrap_or(rel)
                .to_path_buf();
            if rest.as_os_str().is_empty() {
                dst.to_path_buf()
            } else {
                dst.join(rest)
            }
        };
        let target = map(&rel);
        // Never write through a symlink that an earlier entry created.
        if let Some(parent) = target.parent() {
            let mut p = PathBuf::new();
            for comp in parent.components() {
                p.push(comp);
                if let Ok(m) = std::fs::symlink_metadata(&p) {
                    if m.file_type().is_symlink() && p.starts_with(dst) && p != dst {
                        return Err(Error::Msg(format!(
                            "refusing to extract through symlink {}",
                            p.display()
                        )));
                    }
                }
            }
            std::fs::create_dir_all(parent)?;
        }
        // Replace (never follow) a symlink already at the target.
        if std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::remove_file(&target)?;
        }
        if entry.header().entry_type() == tar::EntryType::Link {
            // A hard link must point inside what this archive extracted, never at a host file.
            let link = entry
                .link_name()?
                .map(|l| l.into_owned())
                .unwrap_or_default();
            let Some(lrel) = safe_rel(&link).filter(|l| !l.as_os_str().is_empty()) else {
                return Err(Error::Msg(format!(
                    "refusing to extract hard link {} -> {}: it leaves the destination",
                    path.display(),
                    link.display()
                )));
            };
            std::fs::hard_link(map(&lrel), &target)?;
            continue;
        }
        entry.unpack(&target)?;
    }
    Ok(())
}

async fn cp_to(c: &Client, src: &str, ctr: &str, dst: &str, follow: bool) -> Result<()> {
    if dst.is_empty() {
        return Err(Error::Usage("destination can not be empty".into()));
    }
    // Where does it go: into an existing directory, or renamed to dst's last component.
    // A symlink at dst is followed (inside the container), as the docker CLI does.
    let mut dst = dst.to_string();
    let mut st = stat_path(c, ctr, &dst).await?;
    if let Some(s) = st.as_ref().filter(|s| stat_mode(s) & MODE_SYMLINK != 0) {
        dst = follow_link_target(&dst, s).0;
        st = stat_path(c, ctr, &dst).await?;
    }
    let dst = dst.as_str();
    let dst_is_dir = match &st {
        Some(s) => stat_mode(s) & MODE_DIR != 0,
        None if dst.ends_with('/') => {
            return Err(Error::Msg(format!(
                "Error: No such container:path: {ctr}:{dst}"
            )));
        }
        None => false,
    };
    let tarball = if src == "-" {
        super::client::reader_body(Box::new(std::io::stdin()))
    } else {
        let sp = PathBuf::from(src);
        let meta = if follow {
            std::fs::metadata(&sp)
        } else {
            std::fs::symlink_metadata(&sp)
        }
        .map_err(|e| Error::Msg(format!("lstat {src}: {e}")))?;
        let name = if dst_is_dir {
            sp.file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| ".".into())
        } else {
            Path::new(dst)
                .file_name()
                .map(|n| n.to_os_string())
                .ok_or_else(|| Error::Usage(format!("invalid destination {dst}")))?
        };
        super::client::writer_body(move |w| {
            let mut b = tar::Builder::new(w);
            b.follow_symlinks(follow);
            if meta.is_dir() {
                b.append_dir_all(&name, &sp)?;
            } else {
                b.append_path_with_name(&sp, &name)?;
            }
            b.finish()
        })
    };
    let target_dir = if dst_is_dir || src == "-" {
        dst.to_string()
    } else {
        match Path::new(dst).parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_string_lossy().into_owned(),
            _ => "/".into(),
        }
    };
    c.call_body(
        Method::PUT,
        &format!(
            "/containers/{}/archive?path={}&noOverwriteDirNonDir=true",
            enc(ctr),
            enc(&target_dir)
        ),
        tarball,
        "application/x-tar",
        &[],
    )
    .await?;
    Ok(())
}

struct Body2(hyper::Response<hyper::body::Incoming>);
impl Body2 {
    async fn bytes(self) -> Vec<u8> {
        http_body_util::BodyExt::collect(self.0.into_body())
            .await
            .map(|c| c.to_bytes().to_vec())
            .unwrap_or_default()
    }
}

/// `diff`
pub async fn diff(c: &Client, container: &str) -> Result<()> {
    let v = c
        .get_json(&format!("/containers/{}/changes", enc(container)))
        .await?;
    let mut out = String::new();
    for ch in v.as_array().into_iter().flatten() {
        let k = match ch.get("Kind").and_then(|k| k.as_i64()) {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        out.push_str(&format!(
            "{k} {}\n",
            ch.get("Path").and_then(|p| p.as_str()).unwrap_or("")
        ));
    }
    out!("{out}");
    Ok(())
}

/// Streams a response body to `-o FILE` or stdout (refusing a terminal, as docker).
pub(crate) async fn body_to_output(
    mut body: super::client::Body,
    output: Option<String>,
) -> Result<()> {
    let mut w: Box<dyn Write> = match &output {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|e| Error::Msg(format!("{p}: {e}")))?),
        None => {
            if term::is_tty(1) {
                return Err(Error::Msg(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
                ));
            }
            Box::new(super::out::stdout())
        }
    };
    while let Some(ch) = body.chunk().await? {
        w.write_all(&ch)?;
    }
    w.flush()?;
    Ok(())
}

/// `export`
pub async fn export(c: &Client, container: &str, output: Option<String>) -> Result<()> {
    if output.is_none() && term::is_tty(1) {
        return Err(Error::Msg(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
        ));
    }
    let body = c
        .call(
            Method::GET,
            &format!("/containers/{}/export", enc(container)),
            None,
            &[],
        )
        .await?;
    body_to_output(body, output).await
}

/// Splits `repo[:tag]` (a `:` after the last `/` is the tag).
pub(crate) fn split_ref(r: &str) -> (String, String) {
    if let Some((repo, _digest)) = r.split_once('@') {
        return (repo.to_string(), String::new());
    }
    match r.rfind(':') {
        Some(i) if !r[i..].contains('/') => (r[..i].to_string(), r[i + 1..].to_string()),
        _ => (r.to_string(), String::new()),
    }
}

/// `commit`
pub async fn commit(c: &Client, a: CommitArgs) -> Result<()> {
    let mut q = vec![
        ("container", a.container.clone()),
        ("pause", (a.pause as u8).to_string()),
    ];
    if let Some(r) = &a.repository {
        let (repo, tag) = split_ref(r);
        q.push(("repo", repo));
        if !tag.is_empty() {
            q.push(("tag", tag));
        }
    }
    if let Some(m) = &a.message {
        q.push(("comment", m.clone()));
    }
    if let Some(au) = &a.author {
        q.push(("author", au.clone()));
    }
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    let v = c
        .post_json(&format!("/commit{}", query(&q)), Some(&json!({})))
        .await?;
    outln!("{}", v.get("Id").and_then(|i| i.as_str()).unwrap_or(""));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn body(args: &[&str]) -> Result<Value> {
        let mut v = vec!["barge", "run"];
        v.extend_from_slice(args);
        let cli =
            super::super::args::Cli::try_parse_from(v).map_err(|e| Error::Usage(e.to_string()))?;
        match cli.cmd {
            Some(super::super::args::Cmd::Run(a)) => create_body(&a).map(|b| b.0),
            _ => panic!("not run"),
        }
    }

    #[test]
    fn run_flags_to_body() {
        let b = body(&[
            "-d",
            "--name",
            "x",
            "-e",
            "A=1",
            "-p",
            "8080:80",
            "-v",
            "/h:/c:ro",
            "-v",
            "/anon",
            "--mount",
            "type=tmpfs,dst=/t",
            "--tmpfs",
            "/run:size=1m",
            "-m",
            "64m",
            "--cpus",
            "1.5",
            "--ulimit",
            "nofile=10:20",
            "--restart",
            "on-failure:2",
            "--read-only",
            "--init",
            "--cap-add",
            "NET_ADMIN",
            "--health-cmd",
            "true",
            "--health-interval",
            "2s",
            "-w",
            "/w",
            "-u",
            "1000",
            "--entrypoint",
            "/bin/sh",
            "-l",
            "k=v",
            "-h",
            "host",
            "--network",
            "none",
            "--pids-limit",
            "10",
            "--device",
            "/dev/null:/dev/n",
            "--security-opt",
            "no-new-privileges",
            "--stop-signal",
            "TERM",
            "--stop-timeout",
            "3",
            "busybox",
            "ls",
            "-l",
        ])
        .unwrap();
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], json!(["ls", "-l"]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["ExposedPorts"]["80/tcp"], json!({}));
        assert_eq!(
            b["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
            "8080"
        );
        assert_eq!(b["HostConfig"]["Binds"], json!(["/h:/c:ro"]));
        assert_eq!(b["Volumes"]["/anon"], json!({}));
        assert_eq!(b["HostConfig"]["Mounts"][0]["Type"], "tmpfs");
        assert_eq!(b["HostConfig"]["Tmpfs"]["/run"], "size=1m");
        assert_eq!(b["HostConfig"]["Memory"], 64 << 20);
        assert_eq!(b["HostConfig"]["NanoCpus"], 1_500_000_000i64);
        assert_eq!(b["HostConfig"]["Ulimits"][0]["Hard"], 20);
        assert_eq!(b["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
        assert_eq!(b["HostConfig"]["ReadonlyRootfs"], true);
        assert_eq!(b["HostConfig"]["Init"], true);
        assert_eq!(b["HostConfig"]["NetworkMode"], "none");
        assert_eq!(b["HostConfig"]["PidsLimit"], 10);
        assert_eq!(b["HostConfig"]["Devices"][0]["PathInContainer"], "/dev/n");
        assert_eq!(b["Healthcheck"]["Test"], json!(["CMD-SHELL", "true"]));
        assert_eq!(b["Healthcheck"]["Interval"], 2_000_000_000i64);
        assert_eq!(b["WorkingDir"], "/w");
        assert_eq!(b["User"], "1000");
        assert_eq!(b["Entrypoint"], json!(["/bin/sh"]));
        assert_eq!(b["Labels"]["k"], "v");
        assert_eq!(b["Hostname"], "host");
        assert_eq!(b["StopTimeout"], 3);
        assert_eq!(b["AttachStdout"], false);
    }

    #[test]
    fn run_flag_errors() {
        assert!(body(&["-p", "99999:80", "busybox"]).is_err());
        assert!(body(&["-m", "12q", "busybox"]).is_err());
        assert!(body(&["--ulimit", "nofile", "busybox"]).is_err());
        assert!(body(&["--restart", "bogus", "busybox"]).is_err());
        assert!(body(&["--rm", "--restart", "always", "busybox"]).is_err());
        assert!(body(&["-w", "rel", "busybox"]).is_err());
        assert!(body(&["-v", "rel:/x", "busybox"]).is_ok());
        assert!(body(&["-v", "/x:rel", "busybox"]).is_err());
        assert!(body(&["--stop-signal", "NOPE", "busybox"]).is_err());
        assert!(body(&["--detach-keys", "ctrl-", "busybox"]).is_err());
        assert!(body(&["--bogus", "busybox"]).is_err());
        assert!(body(&[]).is_err());
        // Flags after the image belong to the command.
        assert_eq!(
            body(&["busybox", "-l", "x"]).unwrap()["Cmd"],
            json!(["-l", "x"])
        );
    }

    #[test]
    fn times() {
        assert_eq!(go_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_time(1_700_000_000), "2023-11-14 22:13:20 +0000 UTC");
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20Z"),
            Some((1_700_000_000, 0))
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.5+01:00"),
            Some((1_700_000_000, 500_000_000))
        );
        assert!(parse_rfc3339("yesterday").is_none());
        assert_eq!(time_arg("1700000000").unwrap(), "1700000000");
        let rel = time_arg("10m").unwrap();
        let (secs, nanos) = rel.split_once('.').unwrap();
        assert_eq!(nanos.len(), 9, "{rel}");
        assert!((now_unix() - 600 - secs.parse::<i64>().unwrap()).abs() <= 2);
        assert!(time_arg("whenever").is_err());
    }

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, typ, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*typ);
            h.set_mode(0o644);
            match typ {
                tar::EntryType::Link | tar::EntryType::Symlink => {
                    h.set_size(0);
                    h.set_link_name(data).unwrap();
                    h.set_path(path).unwrap();
                    h.set_cksum();
                    b.append(&h, &[][..]).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    h.set_path(path).unwrap();
                    h.set_cksum();
                    b.append(&h, data.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn cp_extraction_is_confined() {
        use tar::EntryType::*;
        let d = tempfile::tempdir().unwrap();
        // Renamed copy: "f" lands at dst itself.
        let t = tar_of(&[("f", Regular, "data")]);
        extract_copy(&t, &d.path().join("renamed"), false, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("renamed")).unwrap(),
            "data"
        );
        // Into an existing directory, with an internal hard link.
        let t = tar_of(&[
            ("dir", Directory, ""),
            ("dir/a", Regular, "A"),
            ("dir/b", Link, "dir/a"),
        ]);
        extract_copy(&t, d.path(), false, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("dir/b")).unwrap(),
            "A"
        );
        // A hard link to a host file is refused.
        let t = tar_of(&[("evil", Link, "/etc/passwd")]);
        assert!(extract_copy(&t, d.path(), false, None).is_err());
        let t = tar_of(&[("evil", Link, "../../etc/passwd")]);
        assert!(extract_copy(&t, d.path(), false, None).is_err());
        assert!(!d.path().join("evil").exists());
        // Writing through a symlink from the same archive is refused.
        let out = tempfile::tempdir().unwrap();
        let t = tar_of(&[
            ("s", Symlink, out.path().to_str().unwrap()),
            ("s/pwned", Regular, "x"),
        ]);
        assert!(extract_copy(&t, d.path(), false, None).is_err());
        assert!(!out.path().join("pwned").exists());
        // A file entry replaces a symlink instead of following it.
        let victim = out.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let t = tar_of(&[
            ("l", Symlink, victim.to_str().unwrap()),
            ("l", Regular, "new"),
        ]);
        extract_copy(&t, d.path(), false, None).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(d.path().join("l")).unwrap(), "new");
        // A followed link's target takes the link's name (cp -L into a directory).
        let t = tar_of(&[("target", Directory, ""), ("target/x", Regular, "X")]);
        extract_copy(&t, d.path(), false, Some("link")).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("link/x")).unwrap(),
            "X"
        );
        assert!(!d.path().join("target").exists());
    }

    #[test]
    fn cp_follows_link_targets_like_docker() {
        let st = serde_json::json!({"linkTarget": "/etc/real"});
        assert_eq!(
            follow_link_target("/x/link", &st),
            ("/etc/real".into(), Some("link".into()))
        );
        assert_eq!(
            follow_link_target("/x/link/", &st),
            ("/etc/real/".into(), Some("link".into()))
        );
        let rel = serde_json::json!({"linkTarget": "sub/link"});
        assert_eq!(
            follow_link_target("/x/link", &rel),
            ("/x/sub/link".into(), None)
        );
    }

    #[test]
    fn only_one_plain_component_can_rename_a_copy() {
        assert!(!valid_rebase("a/b") && !valid_rebase("..") && valid_rebase("link"));
    }

    #[test]
    fn cp_args_and_refs() {
        assert_eq!(split_cp("ctr:/etc/hosts"), (Some("ctr"), "/etc/hosts"));
        assert_eq!(split_cp("/tmp/a:b"), (None, "/tmp/a:b"));
        assert_eq!(split_cp("./x:y"), (None, "./x:y"));
        assert_eq!(split_cp("-"), (None, "-"));
        assert_eq!(split_cp("dir/x:y"), (None, "dir/x:y"));
        assert!(safe_rel(Path::new("a/../../b")).is_none());
        assert!(safe_rel(Path::new("/abs")).is_none());
        assert_eq!(safe_rel(Path::new("./a/b")).unwrap(), PathBuf::from("a/b"));
        assert_eq!(split_ref("busybox:1.36"), ("busybox".into(), "1.36".into()));
        assert_eq!(
            split_ref("localhost:5000/x"),
            ("localhost:5000/x".into(), "".into())
        );
        assert_eq!(
            split_ref("localhost:5000/x:t"),
            ("localhost:5000/x".into(), "t".into())
        );
        assert_eq!(
            start_error_code("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(start_error_code("exec /etc: permission denied"), 126);
        assert_eq!(start_error_code("something else"), 125);
        assert_eq!(
            ellipsis("abcdefghijklmnopqrstuvwxyz", 20).chars().count(),
            20
        );
    }
}
