//! The engine: container records in memory (and on disk), the monitor hand-off, exits,
//! restart policies, events, exec and the archive (cp) operations.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::broadcast;

use crate::model::{str_list, Container, State};
use crate::monitor::{ExitStatus, MonitorConfig, CONFIG_FILE, CTL_SOCK};
use crate::spec::NetMode;
use crate::util::{now, now_rfc3339, write_replace};
use crate::{Error, Result};

mod links;
pub mod net;

/// How many past events `/events?since=` can replay.
pub const EVENT_HISTORY: usize = 1024;

/// Where and how the engine keeps its state.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--data-root`.
    pub data_root: PathBuf,
    /// `--exec-root`.
    pub exec_root: PathBuf,
    /// `--default-ulimit`s: (name, soft, hard).
    pub default_ulimits: Vec<(String, i64, i64)>,
    /// `--init`: containers whose `HostConfig.Init` is unset run under an init.
    pub default_init: bool,
    /// The barge executable (for `barge monitor` and `barge runtime`).
    pub exe: PathBuf,
}

/// A wait registered with the engine (see [`Engine::waiter`]).
struct WaitReg {
    id: String,
    rx: broadcast::Receiver<String>,
    ev: broadcast::Receiver<Event>,
    started: String,
}

/// An event, in Docker's `/events` shape.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// container, image, network, volume, daemon.
    #[serde(rename = "Type")]
    pub kind: String,
    /// create, start, die, destroy, ...
    #[serde(rename = "Action")]
    pub action: String,
    /// What it happened to.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always "local".
    pub scope: String,
    /// Seconds since the epoch.
    pub time: i64,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
    /// Legacy field: the status (= action) for containers and images.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Legacy field: the id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Legacy field: the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// The subject of an event.
#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// name, image, exitCode, signal, labels...
    #[serde(rename = "Attributes")]
    pub attributes: HashMap<String, String>,
}

/// An exec instance.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Exec {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// The container's id.
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    /// Running now.
    pub running: bool,
    /// Exit code once done.
    pub exit_code: Option<i32>,
    /// The command.
    #[serde(skip)]
    pub cmd: Vec<String>,
    /// With a pty.
    #[serde(skip)]
    pub tty: bool,
    /// Attach stdin.
    pub open_stdin: bool,
    /// Attach stdout.
    pub open_stdout: bool,
    /// Attach stderr.
    pub open_stderr: bool,
    /// Extra environment.
    #[serde(skip)]
    pub env: Vec<String>,
    /// User.
    #[serde(skip)]
    pub user: String,
    /// Working dir.
    #[serde(skip)]
    pub workdir: String,
    /// `exec --privileged`: every capability the daemon can hand on.
    #[serde(skip)]
    pub privileged: bool,
    /// Pid (host) of the `barge runtime exec` process.
    #[serde(rename = "Pid")]
    pub pid: i32,
    /// Can be removed.
    #[serde(skip)]
    pub started: bool,
    /// The pty master of a tty exec while it runs (a dup of the one the API copies), so
    /// `POST /exec/{id}/resize` can set the window size.
    #[serde(skip)]
    pub console: Option<Arc<std::os::fd::OwnedFd>>,
    /// The last size asked for (rows, cols), applied when the pty arrives if it is not there
    /// yet: the docker CLI resizes as soon as it has started the exec.
    #[serde(skip)]
    pub size: Option<(u16, u16)>,
    /// The detach-key sequence for a tty exec (`DetachKeys`; empty: ctrl-p,ctrl-q).
    #[serde(skip)]
    pub detach_keys: String,
}

type AttachWaiter =
    tokio::sync::oneshot::Sender<std::result::Result<tokio::net::UnixStream, String>>;

/// The engine. Cheap to share (`Arc<Engine>`).
pub struct Engine {
    opts: Options,
    /// The image store.
    pub store: Arc<barge_image::Store>,
    /// The local volumes.
    pub volumes: Arc<crate::volumes::Volumes>,
    /// The last stats samples per container (the `precpu_stats` of `stream=false` reads).
    stats_cache: Mutex<HashMap<String, crate::stats::History>>,
    containers: Mutex<HashMap<String, Container>>,
    names: Mutex<HashMap<String, String>>,
    execs: Mutex<HashMap<String, Exec>>,
    attach_waiters: Mutex<HashMap<String, Vec<AttachWaiter>>>,
    events: broadcast::Sender<Event>,
    changes: broadcast::Sender<String>,
    network: std::sync::OnceLock<Arc<barge_network::NetworkManager>>,
    history: Mutex<std::collections::VecDeque<Event>>,
    last_exit: Mutex<HashMap<String, i32>>,
    /// Containers being restarted: their exit is part of the restart, so AutoRemove
    /// (`--rm`) does not remove them (dockerd's rule: only a kill or stop does).
    restarting: Mutex<std::collections::HashSet<String>>,
    start_lock: tokio::sync::Mutex<()>,
    /// Forks the monitors (see [`crate::zygote`]).
    zygote: crate::zygote::Zygote,
}

fn internal(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Internal(format!("{what}: {e}"))
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Bool(b) => !b,
        _ => false,
    }
}

fn is_mountpoint(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

/// The attributes of a container's events: its name, image and labels.
fn container_event_attributes(c: &Container) -> HashMap<String, String> {
    let mut attrs = HashMap::new();
    attrs.insert("name".into(), c.name.clone());
    attrs.insert("image".into(), c.image_name.clone());
    if let Some(l) = c.config.get("Labels").and_then(Value::as_object) {
        for (k, v) in l {
            if let Some(v) = v.as_str() {
                attrs.insert(k.clone(), v.to_string());
            }
        }
    }
    attrs
}

/// A container's record in its data directory.
const RECORD_FILE: &str = "config.v2.json";

/// Deletes what a removed container leaves on disk: its snapshot and both directories.
fn remove_container_files(store: &barge_image::Store, key: &str, exec_dir: &Path, data_dir: &Path) {
    let _ = store.remove_snapshot(key);
    // Nothing may still be mounted below the exec dir when it is removed recursively: a
    // subpath pin is a volume's own data.
    crate::mounts::release_subpaths(exec_dir);
    let _ = std::fs::remove_dir_all(exec_dir);
    let _ = std::fs::remove_dir_all(data_dir);
}

/// Docker's name characters. Unlike dockerd, one character is enough: barge's own tests
/// and users' scripts name containers `a` and `b`, and nothing is gained by refusing them.
fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

impl Engine {
    /// Opens the engine on its roots, loads the container records and reconnects to the
    /// monitors of running containers (live restore). Call [`Engine::restore`] next.
    pub fn open(opts: Options) -> Result<Arc<Engine>> {
        for d in [
            opts.data_root.join("containers"),
            opts.exec_root.join("containers"),
            opts.exec_root.join("runtime"),
        ] {
            std::fs::create_dir_all(&d).map_err(internal("create state dirs"))?;
        }
        let store = barge_image::Store::open(opts.data_root.join("image"))?;
        let (events, _) = broadcast::channel(1024);
        let (changes, _) = broadcast::channel(1024);
        let mut containers = HashMap::new();
        let mut names = HashMap::new();
        if let Ok(rd) = std::fs::read_dir(opts.data_root.join("containers")) {
            for e in rd.flatten() {
                let p = e.path().join(RECORD_FILE);
                let data = match std::fs::read(&p) {
                    Ok(d) => d,
                    // A removal or a create that a crash cut short: nothing refers to it.
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                        let id = e.file_name().to_string_lossy().into_owned();
                        let ed = opts.exec_root.join("containers").join(&id);
                        if crate::util::valid_id(&id) && !is_mountpoint(&ed.join("rootfs")) {
                            tracing::info!("removing the leftovers of container {id}");
                            remove_container_files(&store, &id, &ed, &e.path());
                        }
                        continue;
                    }
                    Err(_) => continue,
                };
                match serde_json::from_slice::<Container>(&data) {
                    Ok(c) => {
                        names.insert(c.name.clone(), c.id.clone());
                        containers.insert(c.id.clone(), c);
                    }
                    Err(e) => tracing::warn!("skipping {}: {e}", p.display()),
                }
            }
        }
        let zygote = crate::zygote::Zygote::new(opts.exe.clone(), opts.exec_root.clone());
        let volumes = crate::volumes::Volumes::open(opts.data_root.join("volumes"))?;
        Ok(Arc::new(Engine {
            zygote,
            opts,
            store: Arc::new(store),
            volumes: Arc::new(volumes),
            stats_cache: Mutex::new(HashMap::new()),
            containers: Mutex::new(containers),
            names: Mutex::new(names),
            execs: Mutex::new(HashMap::new()),
            attach_waiters: Mutex::new(HashMap::new()),
            events,
            changes,
            network: std::sync::OnceLock::new(),
            history: Mutex::new(std::collections::VecDeque::new()),
            last_exit: Mutex::new(HashMap::new()),
            restarting: Mutex::new(Default::default()),
            start_lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// Starts the monitor zygote now rather than at the first container start (a failure is
    /// logged: monitors are then exec'd).
    pub fn start_zygote(&self) {
        if let Err(e) = self.zygote.ensure() {
            tracing::warn!("monitor zygote: {e}; monitors will be exec'd");
        }
    }

    /// The monitor zygote's pid, if it runs.
    pub fn zygote_pid(&self) -> Option<u32> {
        self.zygote.pid()
    }

    /// Starts `barge monitor <dir>`: forked by the zygote, or exec'd when the zygote cannot
    /// be reached. Returns the daemon's ends of the handshake pipes (monitor stdin, stdout).
    fn start_monitor(
        &self,
        dir: &Path,
    ) -> Result<(
        tokio::net::unix::pipe::Sender,
        tokio::net::unix::pipe::Receiver,
    )> {
        let (in_r, in_w) = crate::zygote::pipe().map_err(Error::Internal)?;
        let (out_r, out_w) = crate::zygote::pipe().map_err(Error::Internal)?;
        use std::os::fd::AsFd;
        if let Err(e) = self.zygote.spawn_monitor(dir, in_r.as_fd(), out_w.as_fd()) {
            tracing::warn!("monitor zygote unavailable ({e}); exec'ing the monitor");
            let mut child = tokio::process::Command::new(&self.opts.exe)
                .arg("monitor")
                .arg(dir)
                .stdin(std::process::Stdio::from(in_r))
                .stdout(std::process::Stdio::from(out_w))
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(internal("spawn monitor"))?;
            // Its parent exits as soon as the monitor has forked away.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        // Our copies of the monitor's ends are closed here (dropped), so a monitor that dies
        // reads as EOF.
        let stdin =
            tokio::net::unix::pipe::Sender::from_owned_fd(in_w).map_err(internal("monitor"))?;
        let stdout =
            tokio::net::unix::pipe::Receiver::from_owned_fd(out_r).map_err(internal("monitor"))?;
        Ok((stdin, stdout))
    }

    /// The engine's options.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live restore: watches the monitors of containers that were running; records the exit
    /// of those that ended while the daemon was away; applies restart policies.
    /// Containers whose monitor is gone are settled before this returns, so the API never
    /// shows them running.
    pub async fn restore(self: &Arc<Self>) {
        let ids: Vec<(String, bool)> = self
            .lock()
            .values()
            .map(|c| (c.id.clone(), c.running() || c.state.status == "restarting"))
            .collect();
        for (id, running) in ids {
            let me = self.clone();
            if running {
                match self.connect_monitor(&id, "watch").await {
                    Ok(s) => {
                        if self.get(&id).ok().and_then(|c| c.state.health).is_some() {
                            let me2 = self.clone();
                            let id2 = id.clone();
                            tokio::spawn(async move { me2.health_loop(id2).await });
                        }
                        tokio::spawn(Self::boxed_watch(me, id, s));
                    }
                    Err(_) => self.on_exit(&id).await,
                }
            } else {
                let c = self.lock().get(&id).cloned();
                if let Some(c) = c {
                    // As dockerd: `always` comes back with the daemon even when it was
                    // stopped by hand; `unless-stopped` only when it was not.
                    let (p, _) = c.restart_policy();
                    if p == "always" || (p == "unless-stopped" && !c.manually_stopped) {
                        tokio::spawn(async move {
                            let _ = me.start(&id).await;
                        });
                    }
                }
            }
        }
    }

    fn data_dir(&self, id: &str) -> PathBuf {
        self.opts.data_root.join("containers").join(id)
    }

    fn exec_dir(&self, id: &str) -> PathBuf {
        self.opts.exec_root.join("containers").join(id)
    }

    fn netns_path(&self, id: &str) -> PathBuf {
        self.opts.exec_root.join("netns").join(id)
    }

    /// The file the container sees as `/etc/<name>` (`hosts`, `hostname`, `resolv.conf`):
    /// written at each start, bind-mounted in; inspect's `HostsPath`, `HostnamePath`,
    /// `ResolvConfPath`. A `container:<x>` container gets copies of x's.
    pub fn etc_file_path(&self, id: &str, name: &str) -> PathBuf {
        self.exec_dir(id).join("files").join(name)
    }

    /// `GraphDriver.Data` of a container's inspect, as dockerd's overlay2 shows it: the
    /// layer directories (topmost first), the upper and work dirs of its snapshot, and
    /// where its root filesystem is mounted. Tools read these to look at a container's files
    /// from the host. Null when the snapshot is not an overlay (the copying fallback).
    pub fn graph_driver_data(&self, c: &Container) -> Value {
        let Ok(mounts) = self.store.mounts(&c.id) else {
            return Value::Null;
        };
        let Some(m) = mounts.iter().find(|m| m.kind == "overlay") else {
            return Value::Null;
        };
        let opt = |k: &str| {
            m.options
                .iter()
                .find_map(|o| o.strip_prefix(k))
                .map(str::to_string)
                .unwrap_or_default()
        };
        let lower = m
            .lowerdirs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        json!({
            "LowerDir": lower,
            "UpperDir": opt("upperdir="),
            "WorkDir": opt("workdir="),
            "MergedDir": self.exec_dir(&c.id).join("rootfs"),
        })
    }

    /// The json-file log of a container.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.data_dir(id).join(format!("{id}-json.log"))
    }

    fn runtime_root(&self) -> PathBuf {
        self.opts.exec_root.join("runtime")
    }

    fn save(&self, c: &Container) -> Result<()> {
        let data = serde_json::to_vec(c).map_err(|e| Error::Internal(e.to_string()))?;
        // An auto-removed container's record is deleted when it exits, and a host crash kills
        // its processes too, so nothing is lost if the record is not synced.
        let durable = !c.host_bool("AutoRemove");
        write_replace(&self.data_dir(&c.id).join(RECORD_FILE), &data, durable)
            .map_err(internal("write container record"))
    }

    /// An image event as dockerd's: the image id as actor, `name` as attribute (the new
    /// reference for `tag`, the id for `untag` and `delete`).
    pub fn emit_image_event(&self, action: &str, id: &str, name: &str) {
        self.emit(
            "image",
            action,
            id,
            [("name".to_string(), name.to_string())].into(),
        );
    }

    /// Emits an event: records it and sends it to the subscribers.
    pub fn emit(&self, kind: &str, action: &str, id: &str, mut attrs: HashMap<String, String>) {
        let (s, n) = now();
        let mut from = None;
        if kind == "container" {
            if let Some(c) = self.lock().get(id) {
                attrs.extend(container_event_attributes(c));
            }
            from = attrs.get("image").cloned();
        }
        let legacy = kind == "container" || kind == "image";
        let ev = Event {
            kind: kind.into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes: attrs,
            },
            scope: "local".into(),
            time: s,
            time_nano: s * 1_000_000_000 + n as i64,
            status: legacy.then(|| action.to_string()),
            id: legacy.then(|| id.to_string()),
            from,
        };
        {
            let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            if h.len() >= EVENT_HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        let _ = self.events.send(ev);
    }

    /// Past events (the last [`EVENT_HISTORY`]) at or after `since` (nanoseconds).
    pub fn events_since(&self, since_nano: i64) -> Vec<Event> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.time_nano >= since_nano)
            .cloned()
            .collect()
    }

    /// Subscribes to events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn changed(&self, id: &str) {
        let _ = self.changes.send(id.to_string());
    }

    /// Resolves a container by full id, name, or unique id prefix.
    pub fn lookup(&self, r: &str) -> Result<String> {
        let r = r.strip_prefix('/').unwrap_or(r);
        let map = self.lock();
        if map.contains_key(r) {
            return Ok(r.to_string());
        }
        if let Some(id) = self.names.lock().unwrap_or_else(|e| e.into_inner()).get(r) {
            return Ok(id.clone());
        }
        if !r.is_empty() {
            let m: Vec<&String> = map.keys().filter(|k| k.starts_with(r)).collect();
            if m.len() == 1 {
                return Ok(m[0].clone());
            }
            if m.len() > 1 {
                return Err(Error::BadRequest(format!(
                    "multiple IDs found with provided prefix: {r}"
                )));
            }
        }
        Err(Error::NotFound(format!("No such container: {r}")))
    }

    /// A copy of a container's record.
    pub fn get(&self, r: &str) -> Result<Container> {
        let id = self.lookup(r)?;
        self.lock()
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("No such container: {r}")))
    }

    /// All containers.
    pub fn all(&self) -> Vec<Container> {
        self.lock().values().cloned().collect()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container> {
        let c = {
            let mut map = self.lock();
            let c = map
                .get_mut(id)
                .ok_or_else(|| Error::NotFound(format!("No such container: {id}")))?;
            f(c);
            c.clone()
        };
        self.save(&c)?;
        self.changed(id);
        Ok(c)
    }

    /// `POST /containers/create`.
    pub async fn create(self: &Arc<Self>, name: Option<&str>, body: Value) -> Result<String> {
        let Value::Object(mut cfg) = body else {
            return Err(Error::BadRequest(
                "config cannot be empty in order to create a container".into(),
            ));
        };
        let host_config = cfg.remove("HostConfig").unwrap_or(json!({}));
        if !host_config.is_object() && !host_config.is_null() {
            return Err(Error::BadRequest("HostConfig must be an object".into()));
        }
        let mut host_config = if host_config.is_null() {
            json!({})
        } else {
            host_config
        };
        for d in crate::model::str_list(host_config.get("Dns")) {
            if d.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::BadRequest(format!(
                    "invalid DNS server address {d:?}: want an IP address"
                )));
            }
        }
        if cfg.get("NetworkDisabled").and_then(Value::as_bool) == Some(true) {
            // No networking at all: what `--network none` gives.
            host_config["NetworkMode"] = json!("none");
        }
        let networking = cfg.remove("NetworkingConfig");
        // A chosen MAC address (`Config.MacAddress`, an endpoint's `MacAddress`) is checked
        // here, before anything is made: plan_networks gives it to its endpoint.
        let macs = std::iter::once(cfg.get("MacAddress")).chain(
            networking
                .as_ref()
                .and_then(|n| n.get("EndpointsConfig"))
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|eps| eps.values().map(|ep| ep.get("MacAddress"))),
        );
        for m in macs {
            net::mac_option(m)?;
        }
        let image = cfg
            .get("Image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if image.is_empty() {
            return Err(Error::BadRequest(
                "no image specified: config.Image is empty".into(),
            ));
        }
        let store = self.store.clone();
        let img2 = image.clone();
        let (rec, icfg) = tokio::task::spawn_blocking(move || store.inspect(&img2))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| match e {
                barge_image::Error::ImageNotFound(_) | barge_image::Error::Reference(_) => {
                    Error::NotFound(format!(
                        "No such image: {}",
                        barge_image::Reference::missing_image_name(&image)
                    ))
                }
                e => e.into(),
            })?;
        let icfg = serde_json::to_value(&icfg).unwrap_or(Value::Null);
        let ic = icfg.get("config").cloned().unwrap_or(json!({}));
        // Merge the image's defaults.
        let mut env = str_list(ic.get("Env"));
        if let Some(e) = str_list(cfg.get("Env"))
            .into_iter()
            .find(|e| e.split('=').next().unwrap_or_default().is_empty())
        {
            // A variable needs a name: "", "=" and "=foo" are refused as dockerd does.
            return Err(Error::BadRequest(format!(
                "invalid environment variable: {e}"
            )));
        }
        check_healthcheck(cfg.get("Healthcheck"))?;
        for e in str_list(cfg.get("Env")) {
            let k = e.split('=').next().unwrap_or_default().to_string();
            env.retain(|x| x.split('=').next() != Some(k.as_str()));
            env.push(e);
        }
        cfg.insert("Env".into(), json!(env));
        let user_entry = cfg.get("Entrypoint").filter(|v| !v.is_null()).cloned();
        let user_cmd = cfg
            .get("Cmd")
            .filter(|v| !str_list(Some(v)).is_empty())
            .cloned();
        let entry = match &user_entry {
            // `--entrypoint ''` ([""]): no entrypoint at all, not the image's (as dockerd).
            Some(e) if str_list(Some(e)).iter().all(String::is_empty) => Value::Null,
            Some(e) => Value::Array(str_list(Some(e)).into_iter().map(Value::String).collect()),
            None => ic.get("Entrypoint").cloned().unwrap_or(Value::Null),
        };
        let cmd = match (&user_cmd, &user_entry) {
            (Some(c), _) => {
                Value::Array(str_list(Some(c)).into_iter().map(Value::String).collect())
            }
            (None, Some(_)) => Value::Null,
            (None, None) => ic.get("Cmd").cloned().unwrap_or(Value::Null),
        };
        cfg.insert("Entrypoint".into(), entry);
        cfg.insert("Cmd".into(), cmd);
        if let Some(sig) = cfg.get("StopSignal").and_then(Value::as_str) {
            if !sig.is_empty() {
                parse_signal(sig)?;
            }
        }
        for k in ["WorkingDir", "User", "StopSignal"] {
            let empty = cfg
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .is_empty();
            if empty {
                if let Some(v) = ic.get(k).and_then(Value::as_str) {
                    cfg.insert(k.into(), json!(v));
                }
            }
        }
        let mut labels = ic
            .get("Labels")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or(json!({}));
        if let Some(Value::Object(l)) = cfg.get("Labels") {
            for (k, v) in l {
                labels[k] = v.clone();
            }
        }
        cfg.insert("Labels".into(), labels);
        if let Some(Value::Object(ports)) = ic.get("ExposedPorts") {
            let mut all = cfg
                .get("ExposedPorts")
                .cloned()
                .filter(Value::is_object)
                .unwrap_or(json!({}));
            for k in ports.keys() {
                all[k] = json!({});
            }
            cfg.insert("ExposedPorts".into(), all);
        }
        if cfg.get("Healthcheck").is_none_or(Value::is_null) {
            if let Some(h) = ic.get("Healthcheck") {
                cfg.insert("Healthcheck".into(), h.clone());
            }
        }
        cfg.insert("Image".into(), json!(image));
        let id = crate::util::new_id();
        // Host config checks.
        let wanted_nets = if self.network.get().is_some() {
            self.plan_networks(&mut host_config, networking, &Value::Object(cfg.clone()))
                .await?
        } else {
            let net = host_config
                .get("NetworkMode")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string();
            match net.as_str() {
                "" | "default" | "bridge" | "none" | "host" => {}
                other => {
                    return Err(Error::NotFound(format!("network {other} not found")));
                }
            }
            if net.is_empty() {
                host_config["NetworkMode"] = json!("default");
            }
            Vec::new()
        };
        // As Docker, inspect shows the hostname the container gets: its short id, the
        // host's with --network host, none when it joins another container's namespace.
        if cfg
            .get("Hostname")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            let mode = host_config
                .get("NetworkMode")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let uts = host_config
                .get("UTSMode")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let hostname = if mode == "host" || uts == "host" {
                crate::util::host_name()
            } else if mode.starts_with("container:") {
                String::new()
            } else {
                id[..12].to_string()
            };
            cfg.insert("Hostname".into(), json!(hostname));
        }
        // Defaults dockerd fills in at create, shown as it shows them: what barge does
        // (a private cgroup namespace, a 64 MiB /dev/shm; the API layer records the IPC
        // mode, which depends on the client's API version), and no swappiness rather than
        // the CLI's -1.
        if host_config
            .get("CgroupnsMode")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            host_config["CgroupnsMode"] = json!("private");
        }
        if host_config
            .get("ShmSize")
            .and_then(Value::as_i64)
            .is_none_or(|n| n == 0)
        {
            host_config["ShmSize"] = json!(64u64 << 20);
        }
        if host_config.get("MemorySwappiness").and_then(Value::as_i64) == Some(-1) {
            host_config["MemorySwappiness"] = Value::Null;
        }
        if cfg
            .get("Env")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            cfg.insert("Env".into(), Value::Null);
        }
        if cfg
            .get("Volumes")
            .is_none_or(|v| v.as_object().is_some_and(|o| o.is_empty()))
        {
            cfg.insert("Volumes".into(), Value::Null);
        }
        if host_config
            .get("LogConfig")
            .and_then(|l| l.get("Type"))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            let cfg = host_config
                .get("LogConfig")
                .and_then(|l| l.get("Config"))
                .cloned()
                .unwrap_or(json!({}));
            host_config["LogConfig"] = json!({"Type": "json-file", "Config": cfg});
        }
        match host_config
            .get("LogConfig")
            .and_then(|l| l.get("Type"))
            .and_then(Value::as_str)
        {
            Some(driver @ ("json-file" | "local")) => {
                // As dockerd: each driver's own options, and the ones every driver takes.
                let known: &[&str] = if driver == "local" {
                    &[
                        "max-size",
                        "max-file",
                        "compress",
                        "mode",
                        "max-buffer-size",
                    ]
                } else {
                    &[
                        "max-size",
                        "max-file",
                        "compress",
                        "labels",
                        "labels-regex",
                        "env",
                        "env-regex",
                        "tag",
                        "mode",
                        "max-buffer-size",
                    ]
                };
                if let Some(k) = host_config
                    .pointer("/LogConfig/Config")
                    .and_then(Value::as_object)
                    .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())))
                {
                    return Err(Error::BadRequest(format!(
                        "unknown log opt '{k}' for {driver} log driver"
                    )));
                }
            }
            Some("none") => {
                let opts = host_config
                    .pointer("/LogConfig/Config")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if let Some(k) = opts.keys().next() {
                    return Err(Error::BadRequest(format!(
                        "unknown log opt '{k}' for none log driver"
                    )));
                }
            }
            Some(
                other @ ("syslog" | "journald" | "gelf" | "fluentd" | "awslogs" | "splunk"
                | "etwlogs" | "gcplogs" | "logentries"),
            ) => {
                return Err(Error::BadRequest(format!(
                    "logging driver {other:?} is not supported (json-file, local and none are)"
                )));
            }
            // dockerd's words for a driver it does not know either (docker-py checks them).
            Some(other) => {
                return Err(Error::BadRequest(format!(
                    "logger: no log driver named '{other}' is registered"
                )));
            }
            None => {}
        }
        // One built-in runtime, runc-compatible (`barge-runc`): inspect shows it as `runc`,
        // dockerd's default name, when none was asked for (spec.rs refuses other names).
        if host_config
            .get("Runtime")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            host_config["Runtime"] = json!(DEFAULT_RUNTIME);
        }
        if host_config.get("RestartPolicy").is_none_or(Value::is_null) {
            host_config["RestartPolicy"] = json!({"Name": "no", "MaximumRetryCount": 0});
        }
        if let Some(rp) = host_config.get("RestartPolicy") {
            let n = rp.get("Name").and_then(Value::as_str).unwrap_or("");
            if !matches!(n, "" | "no" | "always" | "unless-stopped" | "on-failure") {
                return Err(Error::BadRequest(format!("invalid restart policy '{n}'")));
            }
            let max = rp
                .get("MaximumRetryCount")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if max != 0 && n != "on-failure" {
                return Err(Error::BadRequest("invalid restart policy: maximum retry count can only be used with 'on-failure'".to_string()));
            }
            if host_config.get("AutoRemove").and_then(Value::as_bool) == Some(true)
                && !matches!(n, "" | "no")
            {
                return Err(Error::Conflict(
                    "conflicting options: cannot specify both --restart and --rm".into(),
                ));
            }
        }
        let name = match name {
            Some(n) if !n.is_empty() => {
                let n = n.strip_prefix('/').unwrap_or(n);
                if !valid_name(n) {
                    return Err(Error::BadRequest(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                n.to_string()
            }
            _ => format!(
                "{}_{}",
                ["brave", "calm", "eager", "keen", "lucid", "quirky", "zen"]
                    [(id.as_bytes()[0] % 7) as usize],
                &id[..8]
            ),
        };
        self.plan_links(&name, &mut host_config)?;
        crate::spec::default_path_lists(&mut host_config);
        let mut c = Container {
            id: id.clone(),
            name: name.clone(),
            created: now_rfc3339(),
            image_name: image,
            image_id: rec.id.to_string(),
            config: Value::Object(cfg),
            host_config,
            state: State {
                status: "created".into(),
                ..Default::default()
            },
            restart_count: 0,
            manually_stopped: false,
            snapshot: id.clone(),
            mount_points: Vec::new(),
        };
        // Validate what the spec will need (all but the user and groups, which need the rootfs).
        {
            let mut probe = c.clone();
            probe.config["User"] = json!("");
            probe.host_config["GroupAdd"] = json!([]);
            if probe.argv().is_empty() {
                return Err(Error::BadRequest("no command specified".into()));
            }
            crate::spec::build(
                &probe,
                Path::new("/nonexistent"),
                Path::new("/nonexistent"),
                &NetMode::Host,
                &[],
                // Checked at start, as Docker does: the other may not run yet.
                &|_| Ok(1),
            )
            .map(|_| ())?;
        }
        {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(other) = names.get(&name) {
                return Err(Error::Conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            names.insert(name.clone(), id.clone());
        }
        let mut vol_dsts: Vec<String> = Vec::new();
        for v in [ic.get("Volumes"), c.config.get("Volumes")]
            .into_iter()
            .flatten()
        {
            if let Some(o) = v.as_object() {
                for k in o.keys() {
                    if !vol_dsts.contains(k) {
                        vol_dsts.push(k.clone());
                    }
                }
            }
        }
        if !vol_dsts.is_empty() {
            let o: serde_json::Map<String, Value> =
                vol_dsts.iter().map(|k| (k.clone(), json!({}))).collect();
            c.config["Volumes"] = Value::Object(o);
        }
        match crate::mounts::resolve(&self.volumes, &c.host_config, &vol_dsts, |r| self.get(r)) {
            Ok(m) => c.mount_points = m,
            Err(e) => {
                self.names
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&name);
                return Err(e);
            }
        }
        let store = self.store.clone();
        let diff_ids = rec.diff_ids();
        let key = id.clone();
        let dd = self.data_dir(&id);
        let volatile = c.host_bool("AutoRemove");
        let r = tokio::task::spawn_blocking(move || -> Result<()> {
            std::fs::create_dir_all(&dd).map_err(internal("create container dir"))?;
            if volatile {
                store.prepare_volatile(&key, &diff_ids)?;
            } else {
                store.prepare(&key, &diff_ids)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))
        .and_then(|r| r);
        if let Err(e) = r {
            self.names
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
            let _ = std::fs::remove_dir_all(self.data_dir(&id));
            self.remove_anonymous_volumes(&c);
            return Err(e);
        }
        c.state.status = "created".into();
        self.record_networks(&id, &wanted_nets, !c.host_bool("AutoRemove"))?;
        self.save(&c)?;
        self.lock().insert(id.clone(), c);
        self.emit("container", "create", &id, HashMap::new());
        Ok(id)
    }

    /// Waits for an attach connection to the container's next start (docker run attaches
    /// before it starts, so no output is lost); resolves when the monitor accepted it.
    pub fn attach_on_start(
        &self,
        id: &str,
    ) -> tokio::sync::oneshot::Receiver<std::result::Result<tokio::net::UnixStream, String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.attach_waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_default()
            .push(tx);
        rx
    }

    /// Connects to a running container's monitor with `cmd` (`attach`, `watch`, `resize r c`).
    pub async fn connect_monitor(&self, id: &str, cmd: &str) -> Result<tokio::net::UnixStream> {
        // Through an fd of the exec dir: socket paths are limited to 108 bytes.
        let dir = std::fs::File::open(self.exec_dir(id))
            .map_err(|e| Error::Conflict(format!("container {id} is not running: {e}")))?;
        let path = format!("/proc/self/fd/{}/{CTL_SOCK}", dir.as_raw_fd());
        let mut s = tokio::net::UnixStream::connect(&path)
            .await
            .map_err(|e| Error::Conflict(format!("container {id} is not running: {e}")))?;
        drop(dir);
        s.write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(internal("monitor"))?;
        Ok(s)
    }

    /// `POST /containers/{id}/start`.
    pub async fn start(self: &Arc<Self>, r: &str) -> Result<()> {
        let _g = self.start_lock.lock().await;
        let c = self.get(r)?;
        let id = c.id.clone();
        if c.state.status == "paused" {
            return Err(Error::Conflict(
                "cannot start a paused container, try unpause instead".to_string(),
            ));
        }
        if c.running() {
            return Err(Error::NotModified("container already started".into()));
        }
        match self.start_inner(&c).await {
            Ok(()) => Ok(()),
            Err(e) => {
                // The docker CLI maps these lower-case phrases to exit codes 127 and 126.
                let msg = e
                    .to_string()
                    .replace("No such file or directory", "no such file or directory")
                    .replace("Permission denied", "permission denied");
                let left = self.cleanup_after_exit(&c).await;
                self.emit_disconnects(&id, &left);
                let _ = self.update(&id, |c| {
                    c.state.status = if c.state.started_at.is_empty() {
                        "created".into()
                    } else {
                        "exited".into()
                    };
                    c.state.error = msg.clone();
                    c.state.exit_code = if msg.contains("no such file") || msg.contains("not found")
                    {
                        127
                    } else if msg.contains("permission denied") {
                        126
                    } else {
                        128
                    };
                });
                // Fail the attach clients that waited for this start.
                let waiters = self
                    .attach_waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                for w in waiters.into_iter().flatten() {
                    let _ = w.send(Err(msg.clone()));
                }
                if c.host_bool("AutoRemove") {
                    let _ = self.remove(&id, true).await;
                }
                if msg.contains("no such file")
                    || msg.contains("not found")
                    || msg.contains("permission denied")
                {
                    Err(Error::BadRequest(format!(
                        "failed to create task for container: {msg}"
                    )))
                } else {
                    Err(Error::Internal(msg))
                }
            }
        }
    }

    async fn start_inner(self: &Arc<Self>, c: &Container) -> Result<()> {
        let id = c.id.clone();
        let ed = self.exec_dir(&id);
        let rootfs = ed.join("rootfs");
        let files = ed.join("files");
        let (net, own_ns) = self.net_target(c)?;
        // Legacy links: their targets must run (checked before anything is set up).
        self.resolve_links(c)?;
        {
            let me = self.clone();
            let store = self.store.clone();
            let (vols, c2) = (self.volumes.clone(), c.clone());
            let (ed, rootfs, files, net, id2) = (
                ed.clone(),
                rootfs.clone(),
                files.clone(),
                net.clone(),
                id.clone(),
            );
            let hostname = c.hostname();
            let hostnet = matches!(net, NetMode::Host);
            // An auto-removed container's writes are discarded anyway: no syncs for them.
            let volatile_rootfs = c.host_bool("AutoRemove");
            tokio::task::spawn_blocking(move || -> Result<()> {
                use std::os::unix::fs::PermissionsExt;
                std::fs::create_dir_all(&rootfs).map_err(internal("create exec dir"))?;
                std::fs::set_permissions(&ed, std::fs::Permissions::from_mode(0o700))
                    .map_err(internal("chmod exec dir"))?;
                std::fs::create_dir_all(&files).map_err(internal("create files dir"))?;
                if !is_mountpoint(&rootfs) {
                    if volatile_rootfs {
                        store.mount_volatile(&id2, &rootfs)?;
                    } else {
                        store.mount(&id2, &rootfs)?;
                    }
                }
                crate::mounts::prepare(&vols, &c2, &rootfs, &ed)?;
                std::fs::write(files.join("hostname"), format!("{hostname}\n"))
                    .map_err(internal("hostname"))?;
                let hosts = if hostnet {
                    std::fs::read_to_string("/etc/hosts").unwrap_or_default()
                } else {
                    // Without a network (`none`): the standard lines only, as dockerd.
                    barge_network::HOSTS_HEADER.to_string()
                };
                std::fs::write(files.join("hosts"), hosts).map_err(internal("hosts"))?;
                let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                std::fs::write(files.join("resolv.conf"), resolv)
                    .map_err(internal("resolv.conf"))?;
                if let (NetMode::Path(p), true) = (&net, own_ns) {
                    crate::netns::remove(p);
                    crate::netns::create(p).map_err(internal("network namespace"))?;
                }
                let _ = std::fs::remove_file(ed.join(CTL_SOCK));
                // on this thread too: one more hand-over between threads costs milliseconds
                // on a loaded machine
                if let NetMode::Path(p) = &net {
                    me.net_attach(&c2, p, &files)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        }
        // The links' variables, resolved now that the targets' addresses are known.
        let links = self.resolve_links(c)?;
        let with_links;
        let c = if links.is_empty() {
            c
        } else {
            let mut l = c.clone();
            l.config["Env"] = json!(links::merge_env(&links, c.config_list("Env")));
            with_links = l;
            &with_links
        };
        let spec = crate::spec::build(
            c,
            &rootfs,
            &files,
            &net,
            &self.opts.default_ulimits,
            &|r| match self.get(r) {
                Ok(o) if o.running() && o.state.pid > 0 => Ok(o.state.pid),
                Ok(o) => Err(Error::Conflict(format!(
                    "cannot join the namespaces of container {}: it is not running",
                    o.name.trim_start_matches('/')
                ))),
                Err(e) => Err(Error::Conflict(format!(
                    "cannot join the namespaces of container {r}: {e}"
                ))),
            },
        )?;
        std::fs::write(
            ed.join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap_or_default(),
        )
        .map_err(internal("write config.json"))?;
        let (max_size, max_files) = log_opts(c);
        let tty = c
            .config
            .get("Tty")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mc = MonitorConfig {
            id: id.clone(),
            bundle: ed.clone(),
            runtime_root: self.runtime_root(),
            // The `none` driver: no log file at all (output still reaches attached clients).
            log_path: if c
                .host_config
                .pointer("/LogConfig/Type")
                .and_then(Value::as_str)
                == Some("none")
            {
                PathBuf::new()
            } else {
                self.log_path(&id)
            },
            log_max_size: max_size,
            log_max_files: max_files,
            exit_path: self.data_dir(&id).join("exit.json"),
            tty,
            open_stdin: c
                .config
                .get("OpenStdin")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            stdin_once: c
                .config
                .get("StdinOnce")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            init: c
                .host_config
                .get("Init")
                .and_then(Value::as_bool)
                .unwrap_or(self.opts.default_init),
            volatile: c.host_bool("AutoRemove"),
        };
        let _ = std::fs::remove_file(&mc.exit_path);
        std::fs::write(
            ed.join(CONFIG_FILE),
            serde_json::to_vec(&mc).unwrap_or_default(),
        )
        .map_err(internal("write monitor.json"))?;
        let (mut stdin, stdout) = self.start_monitor(&ed)?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next_line()
            .await
            .map_err(internal("monitor"))?
            .unwrap_or_default();
        let Some(rest) = first.strip_prefix("created ") else {
            let msg = first.strip_prefix("err ").unwrap_or(&first);
            return Err(Error::Internal(if msg.is_empty() {
                "the monitor failed to start".into()
            } else {
                msg.to_string()
            }));
        };
        let mut it = rest.split_whitespace();
        let pid: i32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let mpid: i32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        // Connect the attach clients waiting for this start, before the process runs.
        let waiters = self
            .attach_waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        for w in waiters.into_iter().flatten() {
            let s = self
                .connect_monitor(&id, "attach")
                .await
                .map_err(|e| e.to_string());
            let _ = w.send(s);
        }
        // The daemon's own watch connection, also before the process runs.
        let watch = self.connect_monitor(&id, "watch").await?;
        stdin
            .write_all(b"go\n")
            .await
            .map_err(internal("monitor"))?;
        let second = lines
            .next_line()
            .await
            .map_err(internal("monitor"))?
            .unwrap_or_default();
        if second != "ok" {
            let msg = second.strip_prefix("err ").unwrap_or(&second).to_string();
            drop(watch);
            return Err(Error::Internal(if msg.is_empty() {
                "the container failed to start".into()
            } else {
                msg
            }));
        }
        self.update(&id, |c| {
            c.state.status = "running".into();
            // A started container is no longer "manually stopped": its restart policy
            // applies again (dockerd resets HasBeenManuallyStopped on start too).
            c.manually_stopped = false;
            c.state.pid = pid;
            c.state.monitor_pid = mpid;
            c.state.started_at = now_rfc3339();
            c.state.error.clear();
            c.state.exit_code = 0;
            if c.config
                .get("Healthcheck")
                .and_then(|h| h.get("Test"))
                .is_some_and(|t| str_list(Some(t)).first().is_some_and(|x| x != "NONE"))
            {
                c.state.health = Some(crate::model::Health {
                    status: "starting".into(),
                    ..Default::default()
                });
            }
        })?;
        self.emit("container", "start", &id, HashMap::new());
        let me = self.clone();
        let id2 = id.clone();
        tokio::spawn(Self::boxed_watch(me, id2, watch));
        if self.get(&id).ok().and_then(|c| c.state.health).is_some() {
            let me = self.clone();
            tokio::spawn(async move { me.health_loop(id).await });
        }
        Ok(())
    }

    fn boxed_watch(
        me: Arc<Self>,
        id: String,
        s: tokio::net::UnixStream,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { me.watch_conn(id, s).await })
    }

    async fn watch_conn(self: Arc<Self>, id: String, mut s: tokio::net::UnixStream) {
        let mut buf = [0u8; 64];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        self.on_exit(&id).await;
    }

    /// Releases what a stopped container held (endpoints, mounts, runtime state); returns
    /// the networks (id, name) it was disconnected from, for the caller's
    /// `network disconnect` events (after `die`, as dockerd orders them).
    async fn cleanup_after_exit(&self, c: &Container) -> Vec<(String, String)> {
        let exec_dir = self.exec_dir(&c.id);
        let rootfs = exec_dir.join("rootfs");
        let ns = self.netns_path(&c.id);
        let runtime_root = self.runtime_root();
        let nm = self.network_manager();
        let id = c.id.clone();
        let left: Vec<(String, String)> = nm
            .as_ref()
            .map(|nm| {
                nm.endpoints_of(&c.id)
                    .into_iter()
                    .map(|ep| (ep.network_id, ep.network_name))
                    .collect()
            })
            .unwrap_or_default();
        // one blocking task for all of it: each hand-over between threads costs
        // milliseconds on a loaded machine
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(nm) = nm {
                net::net_release(&nm, &id);
            }
            // The monitor deletes the runtime's container (its cgroup with it) when the
            // container exits; a monitor that was killed could not, and its processes and
            // cgroup would outlive it. Normally this finds nothing (one failed stat).
            let _ = barge_runtime::container::delete(&runtime_root, &id, true);
            if is_mountpoint(&rootfs) {
                let _ = barge_image::snapshot::unmount(&rootfs);
            }
            crate::mounts::release_subpaths(&exec_dir);
            crate::netns::remove(&ns);
        })
        .await;
        left
    }

    /// Docker's `network disconnect` events for the networks a container left.
    fn emit_disconnects(&self, cid: &str, left: &[(String, String)]) {
        for (net_id, net_name) in left {
            self.emit_network_event("disconnect", net_id, net_name, cid);
        }
    }

    async fn on_exit(self: &Arc<Self>, id: &str) {
        let Ok(c) = self.get(id) else { return };
        let exit: ExitStatus = std::fs::read(self.data_dir(id).join("exit.json"))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or(ExitStatus {
                code: 255,
                finished_at: now_rfc3339(),
                oom_killed: false,
                error: "the container's monitor exited without recording an exit status".into(),
            });
        let left = self.cleanup_after_exit(&c).await;
        let (policy, max) = c.restart_policy();
        let ran_long = crate::util::parse_rfc3339(&c.state.started_at)
            .zip(crate::util::parse_rfc3339(&exit.finished_at))
            .is_some_and(|(a, b)| b - a >= 10.0);
        let restart = !c.manually_stopped
            && match policy.as_str() {
                "always" | "unless-stopped" => true,
                "on-failure" => exit.code != 0 && (max == 0 || (c.restart_count as i64) < max),
                _ => false,
            };
        let updated = self.update(id, |c| {
            c.state.status = if restart {
                "restarting".into()
            } else {
                "exited".into()
            };
            c.state.pid = 0;
            c.state.monitor_pid = 0;
            c.state.exit_code = exit.code;
            c.state.finished_at = exit.finished_at.clone();
            c.state.oom_killed = exit.oom_killed;
            c.state.error = exit.error.clone();
            if let Some(h) = &mut c.state.health {
                h.status = "unhealthy".into();
            }
            if ran_long {
                c.restart_count = 0;
            }
        });
        if updated.is_err() {
            self.emit_disconnects(id, &left);
            return;
        }
        if exit.oom_killed {
            self.emit("container", "oom", id, container_event_attributes(&c));
        }
        // The attributes from the record read before the update: a waiter woken by the
        // update may remove the container before this event is made (docker-py's
        // `run(remove=True)`), and the event must still name it and its image.
        let mut a = container_event_attributes(&c);
        a.insert("exitCode".to_string(), exit.code.to_string());
        self.emit("container", "die", id, a);
        self.emit_disconnects(id, &left);
        let restarting = self
            .restarting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id);
        if c.host_bool("AutoRemove") && !restarting {
            if self.remove(id, true).await.is_ok() {
                self.remove_anonymous_volumes(&c);
            }
            return;
        }
        if restart {
            let count = if ran_long { 0 } else { c.restart_count };
            let delay = Duration::from_millis(100u64.saturating_mul(1u64 << count.min(10)))
                .min(Duration::from_secs(60));
            let me = self.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let still = me
                    .get(&id)
                    .is_ok_and(|c| c.state.status == "restarting" && !c.manually_stopped);
                if !still {
                    return;
                }
                let _ = me.update(&id, |c| c.restart_count += 1);
                if me.start(&id).await.is_ok() {
                    me.emit("container", "restart", &id, HashMap::new());
                }
            });
        }
    }

    /// Waits until `id` is not running (or the deadline passes); returns whether it stopped.
    pub async fn wait_stopped(&self, id: &str, timeout: Option<Duration>) -> bool {
        let mut rx = self.changes.subscribe();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            match self.get(id) {
                Ok(c) if c.running() => {}
                _ => return true,
            }
            let recv = rx.recv();
            let r = match deadline {
                Some(d) => match tokio::time::timeout_at(d, recv).await {
                    Ok(r) => r,
                    Err(_) => return false,
                },
                None => recv.await,
            };
            if let Err(broadcast::error::RecvError::Closed) = r {
                return false;
            }
        }
    }

    /// `POST /containers/{id}/wait`: waits for the condition; returns the exit code.
    pub async fn wait(&self, r: &str, condition: &str) -> Result<(i32, String)> {
        let w = self.wait_register(r)?;
        self.wait_registered(w, condition).await
    }

    /// [`Engine::wait`] in two steps: the registration (subscriptions and the state seen)
    /// happens now, the waiting in the returned future. The API answers a wait's headers
    /// only after this, so a `next-exit` that a client starts right after is never missed.
    pub fn waiter(
        self: &Arc<Self>,
        r: &str,
        condition: &str,
    ) -> Result<impl std::future::Future<Output = Result<(i32, String)>> + Send + 'static> {
        let w = self.wait_register(r)?;
        let this = self.clone();
        let condition = condition.to_string();
        Ok(async move { this.wait_registered(w, &condition).await })
    }

    fn wait_register(&self, r: &str) -> Result<WaitReg> {
        let id = self.lookup(r)?;
        let rx = self.changes.subscribe();
        let ev = self.events.subscribe();
        let c = self.get(&id)?;
        Ok(WaitReg {
            started: c.state.started_at.clone(),
            id,
            rx,
            ev,
        })
    }

    async fn wait_registered(&self, w: WaitReg, condition: &str) -> Result<(i32, String)> {
        let WaitReg {
            id,
            mut rx,
            mut ev,
            started,
        } = w;
        let mut seen_exit = false;
        loop {
            match self.get(&id) {
                Ok(c) => {
                    let stopped = !c.running() && c.state.status != "restarting";
                    let done = match condition {
                        "next-exit" => {
                            seen_exit
                                || (c.state.status == "exited"
                                    && c.state.started_at != started
                                    && c.state.status != "restarting")
                        }
                        "removed" => false,
                        _ => stopped,
                    };
                    if done {
                        return Ok((c.state.exit_code, c.state.error.clone()));
                    }
                    if condition == "next-exit"
                        && c.state.status == "exited"
                        && started.is_empty()
                        && c.state.finished_at.is_empty()
                    {
                        // never started: keep waiting for the next exit
                    }
                }
                Err(_) => {
                    return Ok((
                        self.last_exit
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&id)
                            .copied()
                            .unwrap_or(0),
                        String::new(),
                    ));
                }
            }
            tokio::select! {
                r = rx.recv() => { if let Err(broadcast::error::RecvError::Closed) = r { return Err(Error::Internal("shutting down".into())); } }
                e = ev.recv() => {
                    if let Ok(e) = e {
                        if e.actor.id == id && e.action == "die" {
                            seen_exit = true;
                            if condition == "next-exit" || condition == "not-running" || condition.is_empty() {
                                let code = e.actor.attributes.get("exitCode").and_then(|x| x.parse().ok()).unwrap_or(0);
                                return Ok((code, String::new()));
                            }
                        }
                    }
                }
            }
        }
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill(&self, r: &str, signal: &str) -> Result<()> {
        let c = self.get(r)?;
        if !c.running() {
            return Err(Error::Conflict(format!(
                "Cannot kill container: {r}: Container {} is not running",
                c.id
            )));
        }
        let sig = if signal.is_empty() {
            libc::SIGKILL
        } else {
            parse_signal(signal)?
        };
        // As dockerd: a kill ends the restart policy for this run, unless the container
        // has a StopSignal of its own and this is neither it nor SIGKILL (a reload or
        // status signal the process is meant to survive or die of and come back from);
        // and any kill counts as a manual stop for unless-stopped.
        let stop_signal = c.config_str("StopSignal");
        let ends_restarts = sig == libc::SIGKILL
            || stop_signal.is_empty()
            || parse_signal(&stop_signal).ok() == Some(sig);
        if ends_restarts || c.restart_policy().0 == "unless-stopped" {
            self.update(&c.id, |c| c.manually_stopped = true)?;
        }
        self.signal(&c, sig)?;
        let mut a = HashMap::new();
        a.insert("signal".into(), sig.to_string());
        self.emit("container", "kill", &c.id, a);
        // As dockerd: a SIGKILL returns once the container has stopped (up to 10 s), so
        // an inspect right after `kill` sees it exited with 137.
        if sig == libc::SIGKILL {
            if c.state.status == "paused" {
                // A frozen task takes the pending SIGKILL when thawed.
                let _ = self.runtime(&["resume", &c.id]).await;
            }
            self.wait_stopped(&c.id, Some(Duration::from_secs(10)))
                .await;
        }
        Ok(())
    }

    fn signal(&self, c: &Container, sig: i32) -> Result<()> {
        if c.state.pid <= 0 {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        // SAFETY: kill(2) on the container init's pid recorded by its monitor.
        if unsafe { libc::kill(c.state.pid, sig) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(Error::Internal(format!("kill: {e}")));
            }
        }
        Ok(())
    }

    /// `POST /containers/{id}/stop`: the stop signal, `timeout` seconds, then SIGKILL.
    pub async fn stop(&self, r: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let c = self.get(r)?;
        let id = c.id.clone();
        if c.state.status == "restarting" {
            self.update(&id, |c| {
                c.manually_stopped = true;
                c.state.status = "exited".into();
            })?;
            return Ok(());
        }
        if !c.running() {
            return Err(Error::NotModified("container already stopped".into()));
        }
        self.update(&id, |c| c.manually_stopped = true)?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => {
                let s = c.config_str("StopSignal");
                if s.is_empty() {
                    libc::SIGTERM
                } else {
                    parse_signal(&s)?
                }
            }
        };
        let t = timeout
            .or_else(|| c.config.get("StopTimeout").and_then(Value::as_i64))
            .unwrap_or(10);
        if c.state.status == "paused" {
            let _ = self.runtime(&["resume", &id]).await;
        }
        self.signal(&c, sig)?;
        // A negative timeout waits for as long as the container takes (dockerd's rule);
        // only a limited wait ends in SIGKILL.
        let limit = u64::try_from(t).ok().map(Duration::from_secs);
        let stopped = self.wait_stopped(&id, limit).await;
        if !stopped {
            let _ = self.signal(&c, libc::SIGKILL);
            self.wait_stopped(&id, Some(Duration::from_secs(30))).await;
        }
        self.emit("container", "stop", &id, HashMap::new());
        Ok(())
    }

    /// `POST /containers/{id}/restart` (`signal`: the stop signal to send instead of the
    /// container's own, API 1.42).
    pub async fn restart(
        self: &Arc<Self>,
        r: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let c = self.get(r)?;
        self.restarting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(c.id.clone());
        let r = async {
            match self.stop(&c.id, timeout, signal).await {
                Ok(()) | Err(Error::NotModified(_)) => {}
                Err(e) => return Err(e),
            }
            self.update(&c.id, |c| c.manually_stopped = false)?;
            self.start(&c.id).await
        }
        .await;
        self.restarting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&c.id);
        r?;
        self.emit("container", "restart", &c.id, HashMap::new());
        Ok(())
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove(&self, r: &str, force: bool) -> Result<()> {
        let c = self.get(r)?;
        let id = c.id.clone();
        if c.running() || c.state.status == "restarting" {
            if !force {
                return Err(Error::Conflict(format!(
                    "cannot remove container \"/{}\": container is {}: stop the container before removing or force remove",
                    c.name, c.state.status
                )));
            }
            let _ = self.update(&id, |c| c.manually_stopped = true);
            if c.state.status == "paused" {
                let _ = self.runtime(&["resume", &id]).await;
            }
            let _ = self.signal(&c, libc::SIGKILL);
            self.wait_stopped(&id, Some(Duration::from_secs(30))).await;
        }
        let c = self.get(&id)?;
        let left = self.cleanup_after_exit(&c).await;
        self.emit_disconnects(&id, &left);
        // The record goes first: from here on the container is gone, also for a daemon that
        // restarts (which deletes a container directory without a record, see `open`), so
        // `wait?condition=removed` (`run --rm`) is answered before the files are deleted.
        let _ = std::fs::remove_file(self.data_dir(&id).join(RECORD_FILE));
        self.last_exit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), c.state.exit_code);
        self.emit("container", "destroy", &id, HashMap::new());
        self.lock().remove(&id);
        self.names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&c.name);
        // As dockerd: the links to a removed container go with it (a later container of the
        // same name is not linked by them).
        if let Err(e) = self.drop_links_to(&c.name) {
            tracing::warn!("removing the links to {}: {e}", c.name);
        }
        self.stats_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.changed(&id);
        let store = self.store.clone();
        let (dd, ed, key) = (self.data_dir(&id), self.exec_dir(&id), c.snapshot.clone());
        let _ = tokio::task::spawn_blocking(move || remove_container_files(&store, &key, &ed, &dd))
            .await;
        Ok(())
    }

    /// Removes the anonymous volumes of a removed container (`rm -v`, `--rm`) that no other
    /// container uses.
    pub fn remove_anonymous_volumes(&self, c: &Container) {
        for m in c.mount_points.iter().filter(|m| m.anonymous) {
            if self.volume_users(&m.name).iter().all(|u| *u == c.id) {
                let _ = self.volumes.remove(&m.name);
                self.emit(
                    "volume",
                    "destroy",
                    &m.name,
                    [("driver".to_string(), "local".to_string())].into(),
                );
            }
        }
    }

    /// The ids of the containers (in any state) that use volume `name`.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.lock()
            .values()
            .filter(|c| {
                c.mount_points
                    .iter()
                    .any(|m| m.kind == "volume" && m.name == name)
            })
            .map(|c| c.id.clone())
            .collect()
    }

    /// `DELETE /volumes/{name}`: refused (409) while a container uses it, even with `force`
    /// (Docker's force only ignores a missing volume).
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        match self.volumes.remove(name) {
            Err(Error::NotFound(_)) if force => Ok(()),
            Err(e) => Err(e),
            Ok(()) => {
                self.emit(
                    "volume",
                    "destroy",
                    name,
                    [("driver".to_string(), "local".to_string())].into(),
                );
                Ok(())
            }
        }
    }

    /// `POST /volumes/prune`: removes unused volumes (anonymous ones only unless `all`) whose
    /// labels match; returns their names and the bytes freed.
    pub fn volume_prune(
        &self,
        all: bool,
        label_ok: impl Fn(&crate::volumes::Volume) -> bool,
    ) -> (Vec<String>, u64) {
        let mut names = Vec::new();
        let mut freed = 0u64;
        for v in self.volumes.list() {
            if (!all && !v.anonymous) || !label_ok(&v) || !self.volume_users(&v.name).is_empty() {
                continue;
            }
            let sz = self.volumes.size(&v.name).max(0) as u64;
            if self.volume_remove(&v.name, false).is_ok() {
                freed += sz;
                names.push(v.name);
            }
        }
        (names, freed)
    }

    /// `GET /containers/{id}/stats` (one sample): Docker's JSON. `precpu_stats` is the
    /// daemon's earlier sample of this run of the container when there is one 0.1 to 30 s
    /// old (see [`crate::stats::History`]); else, with `pre_ms` > 0, a first sample taken
    /// `pre_ms` before this one (Docker waits about a second for it).
    pub async fn stats(&self, r: &str, pre_ms: u64) -> Result<Value> {
        let c = self.get(r)?;
        if !c.running() {
            return Ok(crate::stats::empty_json(&c));
        }
        let now = std::time::Instant::now();
        let cached = self
            .stats_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&c.id)
            .filter(|h| h.started_at == c.state.started_at)
            .and_then(|h| h.pre(now).cloned());
        let pre = match cached {
            Some(p) => Some(p),
            None if pre_ms > 0 => {
                let p = crate::stats::sample(&c)?;
                tokio::time::sleep(Duration::from_millis(pre_ms)).await;
                Some(p)
            }
            None => None,
        };
        let cur = crate::stats::sample(&c)?;
        let v = crate::stats::to_json(&c, &cur, pre.as_ref());
        let mut cache = self.stats_cache.lock().unwrap_or_else(|e| e.into_inner());
        let h = cache
            .entry(c.id.clone())
            .or_insert_with(|| crate::stats::History::new(&c.state.started_at));
        if h.started_at != c.state.started_at {
            *h = crate::stats::History::new(&c.state.started_at);
        }
        h.push(std::time::Instant::now(), cur);
        Ok(v)
    }

    /// `POST /containers/{id}/update`: new limits (written into a running container's cgroup;
    /// kept for the next start of a stopped one, as Docker does) and a new restart policy.
    pub fn update_container(&self, r: &str, body: &Value) -> Result<()> {
        let c = self.get(r)?;
        let Some(obj) = body.as_object() else {
            return Err(Error::BadRequest("update body must be an object".into()));
        };
        if let Some(rp) = obj.get("RestartPolicy").filter(|v| !v.is_null()) {
            let n = rp.get("Name").and_then(Value::as_str).unwrap_or("");
            if !matches!(n, "" | "no" | "always" | "unless-stopped" | "on-failure") {
                return Err(Error::BadRequest(format!("invalid restart policy '{n}'")));
            }
            if c.host_bool("AutoRemove") && !matches!(n, "" | "no") {
                return Err(Error::BadRequest(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container"
                        .into(),
                ));
            }
        }
        let mut limits: serde_json::Map<String, Value> = obj
            .iter()
            .filter(|(k, v)| *k != "RestartPolicy" && !v.is_null() && !is_zero(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // For PidsLimit (unlike the other limits) 0 and any negative value mean "unlimited",
        // which dockerd stores (and inspect shows) as 0.
        if obj
            .get("PidsLimit")
            .and_then(Value::as_i64)
            .is_some_and(|p| p <= 0)
        {
            limits.insert("PidsLimit".into(), json!(0));
        }
        if !limits.is_empty() {
            if c.running() {
                crate::stats::update_limits(&c, &Value::Object(limits.clone()))?;
            } else {
                // As Docker: a stopped container keeps the new limits and gets them at its
                // next start (the spec is built from HostConfig then). They are checked now,
                // together with the ones it has, so a bad combination fails here, not at start.
                let mut merged = c.host_config.clone();
                for (k, v) in &limits {
                    merged[k] = v.clone();
                }
                crate::limits::resources(&merged, &mut serde_json::json!({}), false).map_err(
                    |e| match e {
                        Error::BadRequest(m) => {
                            Error::BadRequest(format!("Cannot update container {}: {m}", c.id))
                        }
                        e => e,
                    },
                )?;
            }
        }
        self.update(&c.id, |c| {
            for (k, v) in &limits {
                c.host_config[k] = v.clone();
            }
            if let Some(rp) = obj.get("RestartPolicy").filter(|v| !v.is_null()) {
                c.host_config["RestartPolicy"] = rp.clone();
            }
        })?;
        self.emit("container", "update", &c.id, HashMap::new());
        Ok(())
    }

    /// `POST /containers/{id}/rename`.
    pub fn rename(&self, r: &str, new: &str) -> Result<()> {
        let c = self.get(r)?;
        let new = new.strip_prefix('/').unwrap_or(new);
        if !valid_name(new) {
            return Err(Error::BadRequest(format!(
                "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        if new == c.name {
            // dockerd's words and status (400), rather than a conflict with itself.
            return Err(Error::BadRequest(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        {
            let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(o) = names.get(new) {
                return Err(Error::Conflict(format!("Conflict. The container name \"/{new}\" is already in use by container \"{o}\". You have to remove (or rename) that container to be able to reuse that name.")));
            }
            names.remove(&c.name);
            names.insert(new.to_string(), c.id.clone());
        }
        self.update(&c.id, |c| c.name = new.to_string())?;
        self.rename_in_links(&c.id, &c.name, new)?;
        self.emit("container", "rename", &c.id, HashMap::new());
        Ok(())
    }

    /// Runs `barge runtime --root <root> args...`; returns its stdout.
    pub async fn runtime(&self, args: &[&str]) -> Result<String> {
        let out = tokio::process::Command::new(&self.opts.exe)
            .arg("runtime")
            .arg("--root")
            .arg(self.runtime_root())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(internal("barge runtime"))?;
        if !out.status.success() {
            return Err(Error::Internal(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `pause` / `unpause` (the freezer).
    pub async fn pause(&self, r: &str, pause: bool) -> Result<()> {
        let c = self.get(r)?;
        if !c.running() {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        if pause == (c.state.status == "paused") {
            return Err(Error::Conflict(format!(
                "Container {} is {}paused",
                c.id,
                if pause { "already " } else { "not " }
            )));
        }
        self.runtime(&[if pause { "pause" } else { "resume" }, &c.id])
            .await?;
        self.update(&c.id, |c| {
            c.state.status = if pause {
                "paused".into()
            } else {
                "running".into()
            }
        })?;
        self.emit(
            "container",
            if pause { "pause" } else { "unpause" },
            &c.id,
            HashMap::new(),
        );
        Ok(())
    }

    /// The pids of a running container's processes.
    pub async fn pids(&self, r: &str) -> Result<Vec<i32>> {
        let c = self.get(r)?;
        if !c.running() {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let out = self.runtime(&["ps", "--format", "json", &c.id]).await?;
        Ok(serde_json::from_str(&out).unwrap_or_default())
    }

    /// Creates an exec instance.
    pub fn exec_create(&self, r: &str, body: &Value) -> Result<String> {
        let c = self.get(r)?;
        if c.state.status == "paused" {
            return Err(Error::Conflict(format!(
                "Container {r} is paused, unpause the container before exec"
            )));
        }
        if !c.running() {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let cmd = str_list(body.get("Cmd"));
        if cmd.is_empty() {
            return Err(Error::BadRequest("No exec command specified".into()));
        }
        let b = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
        let s = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let id = crate::util::new_id();
        let cmd_line = cmd.join(" ");
        let e = Exec {
            id: id.clone(),
            container_id: c.id.clone(),
            running: false,
            exit_code: None,
            cmd,
            tty: b("Tty"),
            open_stdin: b("AttachStdin"),
            open_stdout: b("AttachStdout"),
            open_stderr: b("AttachStderr"),
            env: str_list(body.get("Env")),
            user: s("User"),
            workdir: s("WorkingDir"),
            privileged: b("Privileged"),
            pid: 0,
            started: false,
            console: None,
            // `ConsoleSize` ([rows, columns], API 1.42) of a tty exec: the pty's size from
            // the start (see exec_start).
            size: body
                .get("ConsoleSize")
                .and_then(Value::as_array)
                .and_then(|a| {
                    Some((
                        u16::try_from(a.first()?.as_u64()?).ok()?,
                        u16::try_from(a.get(1)?.as_u64()?).ok()?,
                    ))
                })
                .filter(|&(r, c)| b("Tty") && r > 0 && c > 0),
            detach_keys: s("DetachKeys"),
        };
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), e);
        let mut a = HashMap::new();
        a.insert("execID".into(), id.clone());
        self.emit("container", &format!("exec_create: {}", cmd_line), &c.id, a);
        Ok(id)
    }

    /// An exec instance.
    pub fn exec_get(&self, id: &str) -> Result<Exec> {
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))
    }

    /// Starts an exec instance: a `barge runtime exec` child with piped stdio (or a pty via
    /// `console`, a socket path to receive the master on).
    pub fn exec_spawn(&self, id: &str, console: Option<&Path>) -> Result<tokio::process::Child> {
        let e = {
            let mut m = self.execs.lock().unwrap_or_else(|e| e.into_inner());
            let e = m
                .get_mut(id)
                .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))?;
            if e.started {
                return Err(Error::Conflict(format!(
                    "Error: Exec command {id} has already run"
                )));
            }
            e.started = true;
            e.running = true;
            e.clone()
        };
        let c = self.get(&e.container_id)?;
        if !c.running() {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let mut cmd = tokio::process::Command::new(&self.opts.exe);
        cmd.arg("runtime")
            .arg("--root")
            .arg(self.runtime_root())
            .arg("--log")
            .arg(self.exec_log_path(id))
            .arg("--log-format")
            .arg("json")
            .arg("exec");
        let user = if e.user.is_empty() {
            c.config_str("User")
        } else {
            e.user.clone()
        };
        let rootfs = self.exec_dir(&c.id).join("rootfs");
        let (uid, gid, gids) = crate::spec::resolve_user(&rootfs, &user)?;
        cmd.arg("--user").arg(format!("{uid}:{gid}"));
        // As Docker's exec: the user's groups and the container's --group-add.
        for g in crate::spec::additional_gids(&c, &rootfs, gid, gids)? {
            cmd.arg("--additional-gids").arg(g.to_string());
        }
        if e.privileged {
            for cap in barge_runtime::caps::bounding_names() {
                cmd.arg("--cap").arg(cap);
            }
        }
        if !e.workdir.is_empty() {
            cmd.arg("--cwd").arg(&e.workdir);
        }
        for v in &e.env {
            cmd.arg("--env").arg(v);
        }
        if let Some(p) = console {
            cmd.arg("--tty").arg("--console-socket").arg(p);
            if let Some((rows, cols)) = e.size {
                cmd.arg("--console-size").arg(format!("{rows}x{cols}"));
            }
            cmd.arg("--env").arg("TERM=xterm");
        }
        cmd.arg(&c.id).args(&e.cmd);
        cmd.stdin(if e.open_stdin && console.is_none() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().map_err(internal("spawn exec"))?;
        let pid = child.id().unwrap_or(0) as i32;
        if let Some(x) = self
            .execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            x.pid = pid;
        }
        let mut a = HashMap::new();
        a.insert("execID".into(), id.to_string());
        self.emit(
            "container",
            &format!("exec_start: {}", e.cmd.join(" ")),
            &c.id,
            a,
        );
        Ok(child)
    }

    /// Where the runtime reports an exec that failed to start.
    fn exec_log_path(&self, id: &str) -> PathBuf {
        self.opts
            .exec_root
            .join(format!("x-{}.log", &id[..12.min(id.len())]))
    }

    /// Hands the engine a running tty exec's pty master (see [`Exec::console`]); a size
    /// asked for before it came is applied now.
    pub fn exec_set_console(&self, id: &str, master: Arc<std::os::fd::OwnedFd>) {
        let mut m = self.execs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(x) = m.get_mut(id) else { return };
        if let Some((rows, cols)) = x.size {
            let _ = crate::util::set_winsize(&master, rows, cols);
        }
        x.console = Some(master);
    }

    /// Sets a tty exec's window size (`POST /exec/{id}/resize`). Before its pty exists the
    /// size is kept for it; a finished exec is a conflict, as in Docker.
    pub fn exec_resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let mut m = self.execs.lock().unwrap_or_else(|e| e.into_inner());
        let x = m
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))?;
        if x.exit_code.is_some() {
            return Err(Error::Conflict(format!("Exec {id} is not running")));
        }
        x.size = Some((rows, cols));
        if let Some(master) = &x.console {
            crate::util::set_winsize(master, rows, cols)
                .map_err(|e| Error::Internal(format!("resize exec {id}: {e}")))?;
        }
        Ok(())
    }

    /// Records an exec's exit. `code` is the runtime's exit status; when the runtime logged
    /// that the process could not be started (not found, not executable), the exec's exit
    /// code is 126, as Docker's.
    pub fn exec_done(&self, id: &str, code: i32) {
        let log = self.exec_log_path(id);
        let failed_start = code != 0
            && std::fs::metadata(&log)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
        let _ = std::fs::remove_file(&log);
        let code = if failed_start { 126 } else { code };
        let cid = {
            let mut m = self.execs.lock().unwrap_or_else(|e| e.into_inner());
            let Some(e) = m.get_mut(id) else { return };
            e.running = false;
            e.exit_code = Some(code);
            e.console = None;
            e.container_id.clone()
        };
        let mut a = HashMap::new();
        a.insert("execID".into(), id.to_string());
        a.insert("exitCode".into(), code.to_string());
        self.emit("container", "exec_die", &cid, a);
    }

    async fn health_loop(self: Arc<Self>, id: String) {
        let Ok(c) = self.get(&id) else { return };
        let h = c.config.get("Healthcheck").cloned().unwrap_or(Value::Null);
        let test = str_list(h.get("Test"));
        let ns = |k: &str, d: u64| {
            h.get(k)
                .and_then(Value::as_u64)
                .filter(|x| *x > 0)
                .unwrap_or(d)
        };
        let interval = Duration::from_nanos(ns("Interval", 30_000_000_000));
        let timeout = Duration::from_nanos(ns("Timeout", 30_000_000_000));
        let start_period =
            Duration::from_nanos(h.get("StartPeriod").and_then(Value::as_u64).unwrap_or(0));
        let retries = ns("Retries", 3) as u32;
        let argv: Vec<String> = match test.first().map(String::as_str) {
            Some("CMD") => test[1..].to_vec(),
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")],
            _ => return,
        };
        let begun = tokio::time::Instant::now();
        let started_at = c.state.started_at.clone();
        loop {
            tokio::time::sleep(interval).await;
            match self.get(&id) {
                Ok(c) if c.running() && c.state.started_at == started_at => {}
                _ => return,
            }
            let start = now_rfc3339();
            let mut cmd = tokio::process::Command::new(&self.opts.exe);
            cmd.arg("runtime")
                .arg("--root")
                .arg(self.runtime_root())
                .arg("exec")
                .arg(&id)
                .args(&argv);
            cmd.stdin(std::process::Stdio::null());
            let r = tokio::time::timeout(timeout, cmd.kill_on_drop(true).output()).await;
            let (code, output) = match r {
                Ok(Ok(o)) => (
                    o.status.code().unwrap_or(1),
                    String::from_utf8_lossy(&[o.stdout, o.stderr].concat())
                        .chars()
                        .take(4096)
                        .collect(),
                ),
                Ok(Err(e)) => (1, e.to_string()),
                Err(_) => (1, format!("Health check exceeded timeout ({timeout:?})")),
            };
            let in_grace = begun.elapsed() < start_period;
            let mut new_status = None;
            let _ = self.update(&id, |c| {
                let Some(hs) = &mut c.state.health else {
                    return;
                };
                hs.log.push(crate::model::HealthLog {
                    start,
                    end: now_rfc3339(),
                    exit_code: code,
                    output,
                });
                if hs.log.len() > 5 {
                    hs.log.remove(0);
                }
                let old = hs.status.clone();
                if code == 0 {
                    hs.failing_streak = 0;
                    hs.status = "healthy".into();
                } else if !in_grace {
                    hs.failing_streak += 1;
                    if hs.failing_streak >= retries {
                        hs.status = "unhealthy".into();
                    }
                }
                if hs.status != old {
                    new_status = Some(hs.status.clone());
                }
            });
            if let Some(s) = new_status {
                self.emit(
                    "container",
                    &format!("health_status: {s}"),
                    &id,
                    HashMap::new(),
                );
            }
        }
    }

    /// The container's root filesystem, mounted (mounting it if the container is stopped);
    /// the bool says whether the caller must unmount it.
    pub fn mount_rootfs(&self, c: &Container) -> Result<(PathBuf, bool)> {
        let rootfs = self.exec_dir(&c.id).join("rootfs");
        if is_mountpoint(&rootfs) {
            return Ok((rootfs, false));
        }
        if c.running() && c.state.pid > 0 {
            // Its mount is not visible here (a daemon restarted in another mount namespace):
            // go through the container's own root. A second read-write mount of the snapshot
            // would reset its work dir under the running container.
            return Ok((PathBuf::from(format!("/proc/{}/root", c.state.pid)), false));
        }
        std::fs::create_dir_all(&rootfs).map_err(internal("create rootfs dir"))?;
        self.store.mount(&c.snapshot, &rootfs)?;
        Ok((rootfs, true))
    }

    /// `docker commit`: a new image from the container's changes.
    pub fn commit(
        &self,
        r: &str,
        reference: Option<&str>,
        comment: &str,
        author: &str,
        overrides: Option<&Value>,
    ) -> Result<String> {
        let c = self.get(r)?;
        let reference = match reference.filter(|x| !x.is_empty()) {
            Some(x) => Some(
                barge_image::Reference::parse(x).map_err(|e| Error::BadRequest(e.to_string()))?,
            ),
            None => None,
        };
        let base = self.store.resolve(&c.image_id)?;
        let base_cfg = self.store.image_config(&base.id)?;
        let mut cfg =
            serde_json::to_value(&base_cfg).map_err(|e| Error::Internal(e.to_string()))?;
        let lease = self.store.lease();
        let layer = self.store.commit_snapshot(&c.snapshot, &lease)?;
        let mut layers = base.layers.clone();
        layers.push(layer.clone());
        let mut ccfg = cfg.get("config").cloned().unwrap_or(json!({}));
        for k in [
            "Env",
            "Cmd",
            "Entrypoint",
            "WorkingDir",
            "User",
            "Labels",
            "StopSignal",
            "ExposedPorts",
        ] {
            if let Some(v) = c.config.get(k).filter(|v| !v.is_null()) {
                ccfg[k] = v.clone();
            }
        }
        if let Some(Value::Object(o)) = overrides {
            for (k, v) in o {
                if !v.is_null() {
                    ccfg[k] = v.clone();
                }
            }
        }
        cfg["config"] = ccfg;
        let now = now_rfc3339();
        cfg["created"] = json!(now);
        if !author.is_empty() {
            cfg["author"] = json!(author);
        }
        // As dockerd's image config: the local image it was made from, and the message.
        cfg["parent"] = json!(base.id.to_string());
        if !comment.is_empty() {
            cfg["comment"] = json!(comment);
        }
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
        cfg["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        let mut hist = cfg
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // As dockerd: the step is the container's command (Cmd, as it ran) and its author.
        let created_by = c
            .config
            .get("Cmd")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let mut step = json!({"created": now, "created_by": created_by, "comment": comment});
        if !author.is_empty() {
            step["author"] = json!(author);
        }
        hist.push(step);
        cfg["history"] = Value::Array(hist);
        let bytes = serde_json::to_vec(&cfg).map_err(|e| Error::Internal(e.to_string()))?;
        let rec = self
            .store
            .create_image(&lease, &bytes, &layers, reference.as_ref())?;
        drop(lease);
        self.emit("container", "commit", &c.id, HashMap::new());
        Ok(rec.id.to_string())
    }

    /// `docker diff`: (path, kind) with kind 0 modified, 1 added, 2 deleted.
    pub fn changes(&self, r: &str) -> Result<Vec<(String, u8)>> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let c = self.get(r)?;
        let upper = self.store.snapshot_upper(&c.snapshot)?;
        let base = self.store.resolve(&c.image_id)?;
        let layers: Vec<PathBuf> = base
            .diff_ids()
            .iter()
            .map(|d| self.store.layer_path(d))
            .collect();
        let mut out = Vec::new();
        let mut holders: Vec<String> = Vec::new();
        let mut stack = vec![(upper.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let p = format!("{rel}/{name}");
                // Mount points the runtime made for the engine's own bind mounts.
                if matches!(
                    p.as_str(),
                    "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf"
                ) {
                    holders.push(rel.clone());
                    continue;
                }
                let Ok(md) = e.path().symlink_metadata() else {
                    continue;
                };
                let whiteout = md.file_type().is_char_device() && md.rdev() == 0;
                let in_lower = layers
                    .iter()
                    .any(|l| l.join(p.trim_start_matches('/')).symlink_metadata().is_ok());
                let kind = if whiteout {
                    2
                } else if in_lower {
                    0
                } else {
                    1
                };
                out.push((p.clone(), kind));
                if md.is_dir() {
                    stack.push((e.path(), p));
                }
            }
        }
        // A directory of the image copied up only to hold those mount points is no change
        // (dockerd keeps them in an init layer under the container's).
        let paths: Vec<String> = out.iter().map(|(p, _)| format!("{p}/")).collect();
        out.retain(|(p, kind)| {
            *kind != 0
                || !holders.contains(p)
                || paths
                    .iter()
                    .any(|q| q.starts_with(&format!("{p}/")) && q.len() > p.len() + 1)
        });
        out.sort();
        Ok(out)
    }

    /// The size of a container's writable layer (its upper dir), `SizeRw`.
    pub fn size_rw(&self, c: &Container) -> u64 {
        self.store
            .snapshot_upper(&c.snapshot)
            .map(|u| crate::util::dir_size(&u))
            .unwrap_or(0)
    }

    /// `docker container prune`: removes the stopped containers `selected` accepts; returns their ids and the
    /// bytes their writable layers held.
    pub async fn prune(&self, selected: impl Fn(&Container) -> bool) -> (Vec<String>, u64) {
        let ids: Vec<String> = self
            .all()
            .into_iter()
            .filter(|c| !c.running() && c.state.status != "restarting" && selected(c))
            .map(|c| c.id)
            .collect();
        let mut out = Vec::new();
        let mut reclaimed = 0;
        for id in ids {
            let size = self.get(&id).map(|c| self.size_rw(&c)).unwrap_or(0);
            if self.remove(&id, false).await.is_ok() {
                out.push(id);
                reclaimed += size;
            }
        }
        (out, reclaimed)
    }
}

/// The name of barge's runtime in `HostConfig.Runtime` and `info` (dockerd's default).
pub const DEFAULT_RUNTIME: &str = "runc";

/// The runtime names a container may ask for: both are barge's own runtime.
pub const RUNTIMES: &[&str] = &[DEFAULT_RUNTIME, "barge"];

/// (max-size, max-file) from `HostConfig.LogConfig.Config`.
fn log_opts(c: &Container) -> (u64, u32) {
    let cfg = c.host_config.get("LogConfig").and_then(|l| l.get("Config"));
    let get = |k: &str| {
        cfg.and_then(|c| c.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let size = parse_size(&get("max-size")).unwrap_or(0);
    let files = get("max-file").parse::<u32>().unwrap_or(1).max(1);
    (size, files)
}

/// `10m`, `1k`, `512` -> bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    let (n, mul) = match s.trim_end_matches('b').chars().last()? {
        'k' => (&s[..s.trim_end_matches('b').len() - 1], 1024),
        'm' => (&s[..s.trim_end_matches('b').len() - 1], 1024 * 1024),
        'g' => (&s[..s.trim_end_matches('b').len() - 1], 1024 * 1024 * 1024),
        _ => (s.trim_end_matches('b'), 1),
    };
    n.trim().parse::<u64>().ok().map(|n| n * mul)
}

/// Parses a signal name (`KILL`, `SIGKILL`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    barge_runtime::container::parse_signal(s)
        .map_err(|_| Error::BadRequest(format!("Invalid signal: {s}")))
}

/// The limits dockerd puts on a container's `Healthcheck` at create: each duration is 0 (the
/// default) or at least 1ms, and `Retries` is not negative.
fn check_healthcheck(h: Option<&Value>) -> Result<()> {
    let Some(h) = h.filter(|h| h.is_object()) else {
        return Ok(());
    };
    for k in ["Interval", "Timeout", "StartPeriod"] {
        let ns = h.get(k).and_then(Value::as_i64).unwrap_or(0);
        if ns != 0 && ns < 1_000_000 {
            return Err(Error::BadRequest(format!(
                "{k} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if h.get("Retries").and_then(Value::as_i64).unwrap_or(0) < 0 {
        return Err(Error::BadRequest(
            "Retries in Healthcheck cannot be negative".into(),
        ));
    }
    Ok(())
}
