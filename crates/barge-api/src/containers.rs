//! Container endpoints.

use std::collections::HashMap;
use std::sync::Arc;

use barge_engine::model::Container;
use barge_engine::util::parse_rfc3339;
use barge_engine::Engine;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::decode::{decode_typed, read_json, Kind};
use crate::util::{
    channel_body, copy_detachable, frame, human_duration, json_labels_match, json_response,
    labels_match, status, ApiError, Body, Query,
};

type R = Result<Response<Body>, ApiError>;

pub(crate) async fn create(e: Arc<Engine>, q: &Query, req: Request<Incoming>) -> R {
    let mut v = read_json(Kind::ContainerCreate, req, 16 << 20).await?;
    // dockerd records the IPC mode a container gets: "private" (its default), or
    // "shareable" for clients older than API 1.40 (the default then).
    if let Some(o) = v.as_object_mut() {
        let hc = o.entry("HostConfig").or_insert_with(|| json!({}));
        if hc.is_null() {
            *hc = json!({});
        }
        if hc
            .get("IpcMode")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            if let Some(h) = hc.as_object_mut() {
                let mode = if q.api_before(40) {
                    "shareable"
                } else {
                    "private"
                };
                h.insert("IpcMode".into(), json!(mode));
            }
        }
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        check_image_platform(&e, v.get("Image").and_then(Value::as_str).unwrap_or(""), p).await?;
    }
    // Only a missing image is a 404 here: the docker CLI pulls the image on any 404 from
    // create, so a missing container or network named in the config (--volumes-from,
    // --network) is a bad request, as dockerd answers it.
    let id = e.create(q.get("name"), v).await.map_err(|err| match err {
        barge_engine::Error::NotFound(m) if !m.starts_with("No such image") => {
            ApiError::new(400, m)
        }
        err => err.into(),
    })?;
    Ok(json_response(201, &json!({"Id": id, "Warnings": []})))
}

/// `create?platform=`: as dockerd, an image of another platform is not the one asked for —
/// a 404 naming both platforms, so the docker CLI pulls the right one.
async fn check_image_platform(e: &Engine, image: &str, wanted: &str) -> Result<(), ApiError> {
    let want =
        barge_image::manifest::PlatformSpec::parse(wanted).map_err(|m| ApiError::new(400, m))?;
    let store = e.store.clone();
    let name = image.to_string();
    let Ok((_, cfg)) = crate::images::blocking(move || Ok(store.inspect(&name)?)).await else {
        // A missing image is create's own 404.
        return Ok(());
    };
    let (os, arch) = (cfg.os().to_string(), cfg.architecture().to_string());
    let variant = cfg.variant().clone();
    let variant_ok = match (&want.variant, &variant) {
        (Some(w), Some(v)) => w == v,
        _ => true,
    };
    if want.os != os || want.architecture != arch || !variant_ok {
        let actual = match variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        };
        return Err(ApiError::new(
            404,
            format!(
                "image with reference {image} was found but does not match the specified platform: wanted {wanted}, actual: {actual}"
            ),
        ));
    }
    Ok(())
}

fn status_text(c: &Container) -> String {
    let now = barge_engine::util::now().0 as f64;
    match c.state.status.as_str() {
        "running" | "paused" => {
            let since = parse_rfc3339(&c.state.started_at).unwrap_or(now);
            let mut s = format!("Up {}", human_duration(now - since));
            if c.state.status == "paused" {
                s.push_str(" (Paused)");
            }
            if let Some(h) = &c.state.health {
                s.push_str(&format!(" (health: {})", h.status));
            }
            s
        }
        "restarting" => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            human_duration(now - parse_rfc3339(&c.state.finished_at).unwrap_or(now))
        ),
        "exited" if !c.state.finished_at.is_empty() => format!(
            "Exited ({}) {} ago",
            c.state.exit_code,
            human_duration(now - parse_rfc3339(&c.state.finished_at).unwrap_or(now))
        ),
        _ => "Created".into(),
    }
}

fn summary(e: &Engine, c: &Container) -> Value {
    let argv = c.argv();
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image_name,
        "ImageID": c.image_id,
        // As dockerd: an argument with a space in it is shown in single quotes.
        "Command": argv
            .iter()
            .map(|a| if a.contains(' ') { format!("'{a}'") } else { a.clone() })
            .collect::<Vec<_>>()
            .join(" "),
        "Created": parse_rfc3339(&c.created).unwrap_or(0.0) as i64,
        "Ports": e.port_summary(c),
        "Labels": c.config.get("Labels").cloned().unwrap_or(json!({})),
        "State": c.state.status,
        "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.host_str("NetworkMode")},
        "NetworkSettings": {"Networks": e.networks_summary(c)},
        "Mounts": barge_engine::mounts::inspect(c),
    })
}

/// Whether container port `port` ("80/tcp") matches a `publish`/`expose` filter value:
/// `80`, `80/udp` or a range `8000-8080[/proto]` (tcp when no protocol is given).
fn port_filter_matches(port: &str, filter: &str) -> bool {
    let (fp, fproto) = filter.split_once('/').unwrap_or((filter, "tcp"));
    let (p, proto) = port.split_once('/').unwrap_or((port, "tcp"));
    if proto != fproto {
        return false;
    }
    let Ok(p) = p.parse::<u16>() else {
        return false;
    };
    match fp.split_once('-') {
        Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) => (a..=b).contains(&p),
            _ => false,
        },
        None => fp.parse::<u16>() == Ok(p),
    }
}

/// The container filters `GET /containers/json` knows (Docker's); any other is a 400.
const CONTAINER_FILTERS: &[&str] = &[
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];

/// [`summary`] with `SizeRw` (the container's own changes) and `SizeRootFs` (those and its
/// image), as `ps -s` and `system df` show them.
pub(crate) fn summary_with_size(
    e: &Engine,
    c: &Container,
    image_sizes: &std::collections::HashMap<String, u64>,
) -> Value {
    let mut s = summary(e, c);
    add_sizes(&mut s, e, c, image_sizes);
    s
}

/// Sets `SizeRw` and `SizeRootFs` (a list entry's or inspect's).
fn add_sizes(
    v: &mut Value,
    e: &Engine,
    c: &Container,
    image_sizes: &std::collections::HashMap<String, u64>,
) {
    let rw = e.size_rw(c);
    v["SizeRw"] = json!(rw);
    v["SizeRootFs"] = json!(rw + image_sizes.get(&c.image_id).copied().unwrap_or(0));
}

pub(crate) fn list(e: Arc<Engine>, q: &Query) -> R {
    let all = q.bool("all");
    let filters = q.filters_of(CONTAINER_FILTERS)?;
    let limit = q.int("limit")?.unwrap_or(-1);
    let mut cs = e.all();
    cs.sort_by(|a, b| b.created.cmp(&a.created));
    let link_names = e.link_names();
    // before/since name a container; what counts is its creation time.
    let created_of = |k: &str| -> Result<Option<String>, ApiError> {
        match filters.get(k).and_then(|v| v.first()) {
            None => Ok(None),
            Some(r) => e
                .get(r)
                .map(|c| Some(c.created))
                .map_err(|_| ApiError::new(404, format!("No such container: {r}"))),
        }
    };
    // ps -s: the image sizes, read once.
    let sizes = if q.bool("size") {
        Some(crate::images::image_sizes(
            &e.store
                .list_images()
                .map_err(|err| ApiError::new(500, err.to_string()))?,
        ))
    } else {
        None
    };
    let before = created_of("before")?;
    let since = created_of("since")?;
    // As dockerd: a status filter names one of the states; `name` is a regular expression
    // (matched against the name with and without its leading slash).
    for v in filters.get("status").into_iter().flatten() {
        if !matches!(
            v.as_str(),
            "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead"
        ) {
            return Err(ApiError::new(400, format!("invalid filter 'status={v}'")));
        }
    }
    let name_patterns: Vec<regex::Regex> = filters
        .get("name")
        .into_iter()
        .flatten()
        .map(|v| regex::Regex::new(v).or_else(|_| regex::Regex::new(&regex::escape(v))))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::new(400, format!("invalid filter 'name': {e}")))?;
    let mut out = Vec::new();
    for c in cs {
        if before.as_ref().is_some_and(|t| c.created >= *t)
            || since.as_ref().is_some_and(|t| c.created <= *t)
        {
            continue;
        }
        // As Docker: a status, exited, before or since filter lists stopped containers too.
        let lists_stopped = ["status", "exited", "before", "since"]
            .iter()
            .any(|k| filters.contains_key(*k));
        if !all && !lists_stopped && !c.running() && c.state.status != "restarting" {
            continue;
        }
        let networks = e.networks_summary(&c);
        let ok = filters.iter().all(|(k, vals)| {
            if k == "label" {
                return json_labels_match(c.config.get("Labels"), vals);
            }
            if k == "name" {
                let slashed = format!("/{}", c.name);
                return name_patterns
                    .iter()
                    .any(|r| r.is_match(&c.name) || r.is_match(&slashed));
            }
            vals.iter().any(|v| match k.as_str() {
                "status" => c.state.status == *v,
                "id" => c.id.starts_with(v.as_str()),
                "ancestor" => {
                    c.image_name == *v
                        || c.image_id == *v
                        || c.image_id
                            .trim_start_matches("sha256:")
                            .starts_with(v.as_str())
                        || c.image_name == format!("{v}:latest")
                }
                "exited" => {
                    c.state.status == "exited" && v.parse::<i32>().ok() == Some(c.state.exit_code)
                }
                "health" => {
                    c.state
                        .health
                        .as_ref()
                        .map(|h| h.status.as_str())
                        .unwrap_or("none")
                        == v
                }
                "volume" => c
                    .mount_points
                    .iter()
                    .any(|m| m.name == *v || m.destination == *v || m.source == *v),
                "network" => networks.as_object().is_some_and(|n| {
                    n.iter().any(|(name, ep)| {
                        name == v
                            || ep
                                .get("NetworkID")
                                .and_then(Value::as_str)
                                .is_some_and(|id| !v.is_empty() && id.starts_with(v.as_str()))
                    })
                }),
                "expose" => c
                    .config
                    .get("ExposedPorts")
                    .and_then(Value::as_object)
                    .is_some_and(|p| p.keys().any(|p| port_filter_matches(p, v))),
                "publish" => c
                    .host_config
                    .get("PortBindings")
                    .and_then(Value::as_object)
                    .is_some_and(|p| p.keys().any(|p| port_filter_matches(p, v))),
                "is-task" => v == "false",
                "isolation" => v == "default" || v == "process",
                // before/since were applied above
                _ => true,
            })
        });
        if !ok {
            continue;
        }
        let mut s = match &sizes {
            Some(sizes) => summary_with_size(&e, &c, sizes),
            None => summary(&e, &c),
        };
        // dockerd lists the legacy links to a container among its names.
        if let (Some(more), Some(Value::Array(names))) =
            (link_names.get(&c.name), s.get_mut("Names"))
        {
            names.extend(more.iter().map(|n| json!(n)));
        }
        out.push(s);
        if limit > 0 && out.len() as i64 >= limit {
            break;
        }
    }
    Ok(json_response(200, &Value::Array(out)))
}

pub(crate) fn inspect_json(e: &Engine, c: &Container) -> Value {
    let argv = c.argv();
    let st = &c.state;
    let mut state = json!({
        "Status": st.status,
        "Running": c.running(),
        "Paused": st.status == "paused",
        "Restarting": st.status == "restarting",
        "OOMKilled": st.oom_killed,
        "Dead": st.status == "dead",
        "Pid": st.pid,
        "ExitCode": st.exit_code,
        "Error": st.error,
        "StartedAt": if st.started_at.is_empty() { "0001-01-01T00:00:00Z".to_string() } else { st.started_at.clone() },
        "FinishedAt": if st.finished_at.is_empty() { "0001-01-01T00:00:00Z".to_string() } else { st.finished_at.clone() },
    });
    if let Some(h) = &st.health {
        state["Health"] = serde_json::to_value(h).unwrap_or(Value::Null);
    }
    let mounts = barge_engine::mounts::inspect(c);
    json!({
        "Id": c.id,
        "Created": c.created,
        "Path": argv.first().cloned().unwrap_or_default(),
        "Args": argv.get(1..).unwrap_or_default(),
        "State": state,
        "Image": c.image_id,
        "ResolvConfPath": e.etc_file_path(&c.id, "resolv.conf"),
        "HostnamePath": e.etc_file_path(&c.id, "hostname"),
        "HostsPath": e.etc_file_path(&c.id, "hosts"),
        "LogPath": e.log_path(&c.id),
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": c.host_config,
        "GraphDriver": {"Name": "overlay2", "Data": e.graph_driver_data(c)},
        "Mounts": mounts,
        "Config": c.config,
        "NetworkSettings": e.network_settings(c),
    })
}

/// `POST /containers/prune`: stopped containers, filtered by `until` and `label`/`label!`.
pub(crate) async fn prune(e: Arc<Engine>, q: &Query) -> R {
    let pf = crate::util::PruneFilters::parse(&q.filters()?, true, &[])?;
    let (ids, reclaimed) = e
        .prune(|c| {
            let created = barge_util::time::parse_rfc3339(&c.created)
                .map_or(0.0, |(s, n)| s as f64 + f64::from(n) / 1e9);
            pf.selects_json(created, c.config.get("Labels"))
        })
        .await;
    Ok(json_response(
        200,
        &json!({"ContainersDeleted": ids, "SpaceReclaimed": reclaimed}),
    ))
}

fn upgrade_response(content_type: &'static str) -> Response<Body> {
    let mut r = status(101);
    let h = r.headers_mut();
    h.insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static(content_type),
    );
    h.insert(
        "Connection",
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    h.insert("Upgrade", hyper::header::HeaderValue::from_static("tcp"));
    r
}

fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Copies monitor frames to the client (`raw`: payloads only, else Docker's multiplexed
/// frames; filtered by stream) until EOF.
async fn frames_to_client<W: tokio::io::AsyncWrite + Unpin>(
    mut mr: impl tokio::io::AsyncRead + Unpin,
    cw: &mut W,
    raw: bool,
    out: bool,
    err: bool,
) {
    let mut hdr = [0u8; 8];
    loop {
        if mr.read_exact(&mut hdr).await.is_err() {
            break;
        }
        let len = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
        let mut data = vec![0u8; len];
        if mr.read_exact(&mut data).await.is_err() {
            break;
        }
        let want = if hdr[0] == 2 { err } else { out };
        if !want {
            continue;
        }
        let r = if raw {
            cw.write_all(&data).await
        } else {
            cw.write_all(&frame(hdr[0], &data)).await
        };
        if r.is_err() || cw.flush().await.is_err() {
            break;
        }
    }
}

/// What one attach asks for, checked before the connection is upgraded.
struct AttachPlan {
    tty: bool,
    want_in: bool,
    want_out: bool,
    want_err: bool,
    logs: bool,
    keys: Vec<u8>,
    /// The monitor's connection: now (running), at the next start (created/exited), or
    /// none without `stream`.
    mon: Option<Result<tokio::net::UnixStream, MonitorOnStart>>,
    log_path: std::path::PathBuf,
}

/// The monitor connection a container not yet running hands over when it starts.
type MonitorOnStart =
    tokio::sync::oneshot::Receiver<std::result::Result<tokio::net::UnixStream, String>>;

/// Resolves the container and the query of an attach (hijacked or websocket alike); the
/// three streams are taken as given.
async fn attach_plan(
    e: &Engine,
    id: &str,
    q: &Query,
    streams: (bool, bool, bool),
) -> Result<AttachPlan, ApiError> {
    let c = e.get(id)?;
    let tty = c
        .config
        .get("Tty")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let keys = crate::util::detach_keys(q.get("detachKeys").unwrap_or(""))
        .map_err(|m| ApiError::new(400, m))?;
    // As dockerd: an `attach` event for every attach, streaming or not.
    e.emit("container", "attach", &c.id, Default::default());
    // Without `stream` only the logs are sent (to a stopped container too, as dockerd).
    let mon = if !q.bool("stream") {
        None
    } else if c.running() {
        Some(Ok(e.connect_monitor(&c.id, "attach").await?))
    } else {
        Some(Err(e.attach_on_start(&c.id)))
    };
    Ok(AttachPlan {
        tty,
        want_in: streams.0,
        want_out: streams.1,
        want_err: streams.2,
        logs: q.bool("logs"),
        keys,
        mon,
        log_path: e.log_path(&c.id),
    })
}

/// Runs an attach on `client` until the container's output ends or the client goes:
/// the logs first when asked, then the live streams; `mux` frames stdout and stderr as
/// Docker's multiplexed stream (never with a TTY, never on a websocket).
async fn run_attach<S>(client: S, p: AttachPlan, mux: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let mux = mux && !p.tty;
    let (mut cr, mut cw) = tokio::io::split(client);
    if p.logs {
        for en in barge_engine::logs::read_all(&p.log_path) {
            let s = if en.stream == "stderr" { 2 } else { 1 };
            if (s == 2 && !p.want_err) || (s == 1 && !p.want_out) {
                continue;
            }
            let _ = if mux {
                cw.write_all(&frame(s, en.log.as_bytes())).await
            } else {
                cw.write_all(en.log.as_bytes()).await
            };
        }
    }
    let mon = match p.mon {
        Some(Ok(m)) => m,
        Some(Err(rx)) => match rx.await {
            Ok(Ok(m)) => m,
            _ => {
                let _ = cw.shutdown().await;
                return;
            }
        },
        None => {
            let _ = cw.shutdown().await;
            return;
        }
    };
    let (mr, mut mw) = mon.into_split();
    let (tty, want_in, keys) = (p.tty, p.want_in, p.keys);
    let mut input = tokio::spawn(async move {
        if want_in {
            // With a TTY the detach keys end the attach (dockerd's escape proxy).
            if tty {
                if copy_detachable(&mut cr, &mut mw, &keys).await {
                    return;
                }
            } else {
                let _ = tokio::io::copy(&mut cr, &mut mw).await;
            }
            let _ = mw.shutdown().await;
        }
        // Keep the write half (and the monitor's view of us) open otherwise.
        std::future::pending::<()>().await;
    });
    tokio::select! {
        _ = frames_to_client(mr, &mut cw, !mux, p.want_out, p.want_err) => {}
        _ = &mut input => {}
    }
    let _ = cw.shutdown().await;
    input.abort();
}

async fn attach(e: Arc<Engine>, id: &str, q: &Query, mut req: Request<Incoming>) -> R {
    let streams = (q.bool("stdin"), q.bool("stdout"), q.bool("stderr"));
    let plan = attach_plan(&e, id, q, streams).await?;
    let tty = plan.tty;
    let on = hyper::upgrade::on(&mut req);
    let peer = req.extensions().get::<crate::util::PeerSocket>().copied();
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        crate::util::wait_headers_read(peer).await;
        run_attach(TokioIo::new(up), plan, true).await;
    });
    Ok(upgrade_response(stream_type(tty)))
}

/// `GET /containers/{id}/attach/ws`: the attach over a websocket (RFC 6455). As dockerd:
/// never multiplexed (stdout and stderr arrive as they are), output in binary frames from
/// API 1.28 on (text before), and `stdin`/`stdout`/`stderr` honoured from API 1.42 on
/// (all three before). Whatever the client sends, in any data frame, is the stdin.
async fn attach_ws(e: Arc<Engine>, id: &str, q: &Query, mut req: Request<Incoming>) -> R {
    let minor = crate::util::api_minor(req.uri().path());
    let accept = crate::websocket::accept(req.headers()).map_err(|m| ApiError::new(400, m))?;
    let streams = if minor >= 42 {
        (q.bool("stdin"), q.bool("stdout"), q.bool("stderr"))
    } else {
        (true, true, true)
    };
    let plan = attach_plan(&e, id, q, streams).await?;
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let bytes = crate::websocket::bridge(TokioIo::new(up), minor >= 28);
        run_attach(bytes, plan, false).await;
    });
    Ok(crate::websocket::switching_protocols(&accept))
}

async fn logs(e: Arc<Engine>, id: &str, q: &Query) -> R {
    let c = e.get(id)?;
    if c.host_config
        .pointer("/LogConfig/Type")
        .and_then(Value::as_str)
        == Some("none")
    {
        return Err(ApiError::new(
            501,
            "configured logging driver does not support reading".into(),
        ));
    }
    let tty = c
        .config
        .get("Tty")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (out, err) = (q.bool("stdout"), q.bool("stderr"));
    if !out && !err {
        return Err(ApiError::new(
            400,
            "Bad parameters: you must choose at least one stream".into(),
        ));
    }
    let follow = q.bool("follow");
    let ts = q.bool("timestamps");
    let since = q
        .get("since")
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0);
    let until = q
        .get("until")
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|x| *x > 0.0);
    let tail: Option<usize> = match q.get("tail") {
        None | Some("all") | Some("") => None,
        // As dockerd: a negative count means all of it.
        Some(t) => match t.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => return Err(ApiError::new(400, format!("invalid tail value {t:?}"))),
        },
    };
    let path = e.log_path(&c.id);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let cid = c.id.clone();
    tokio::spawn(async move {
        let emit = |en: &barge_engine::logs::Entry| -> Option<Bytes> {
            let s = if en.stream == "stderr" { 2u8 } else { 1u8 };
            if (s == 2 && !err) || (s == 1 && !out) {
                return None;
            }
            let t = parse_rfc3339(&en.time).unwrap_or(0.0);
            if t < since || until.is_some_and(|u| t > u) {
                return None;
            }
            let text = if ts {
                format!("{} {}", en.time, en.log)
            } else {
                en.log.clone()
            };
            Some(Bytes::from(if tty {
                text.into_bytes()
            } else {
                frame(s, text.as_bytes())
            }))
        };
        let mut follower = barge_engine::logs::Follower::open(&path);
        let all = follower.read_existing();
        let skip = tail.map(|t| all.len().saturating_sub(t)).unwrap_or(0);
        for en in &all[skip..] {
            if let Some(b) = emit(en) {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        }
        if !follow {
            return;
        }
        loop {
            let running = e
                .get(&cid)
                .map(|c| c.running() || c.state.status == "restarting")
                .unwrap_or(false);
            for en in &follower.read_new() {
                if let Some(b) = emit(en) {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
            if !running {
                return;
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let mut r = Response::new(channel_body(rx));
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static(stream_type(tty)),
    );
    Ok(r)
}

async fn wait(e: Arc<Engine>, id: &str, q: &Query) -> R {
    let cid = e.lookup(id)?;
    let cond = q.get("condition").unwrap_or("not-running").to_string();
    if !matches!(cond.as_str(), "not-running" | "next-exit" | "removed" | "") {
        return Err(ApiError::new(400, format!("invalid condition: {cond:?}")));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    // Register interest before answering (the headers go out when this returns, and
    // clients start the container then), so an exit right after is not missed.
    let fut = e.waiter(&cid, &cond)?;
    tokio::spawn(async move {
        // An empty first chunk makes hyper send the headers now, as dockerd flushes them
        // before waiting: clients (docker run) wait for them before starting the container.
        let _ = tx.send(Bytes::new()).await;
        let v = match fut.await {
            Ok((code, err)) => {
                json!({"StatusCode": code, "Error": if err.is_empty() { Value::Null } else { json!({"Message": err}) }})
            }
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.to_string()}}),
        };
        let _ = tx.send(Bytes::from(format!("{v}\n"))).await;
    });
    let mut r = Response::new(channel_body(rx));
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

pub(crate) async fn dispatch(
    e: Arc<Engine>,
    m: Method,
    id: &str,
    rest: &[&str],
    q: &Query,
    req: Request<Incoming>,
) -> R {
    match (&m, rest) {
        (&Method::GET, ["json"]) => {
            let c = e.get(id)?;
            let mut v = inspect_json(&e, &c);
            if q.bool("size") {
                let sizes = crate::images::image_sizes(
                    &e.store
                        .list_images()
                        .map_err(|err| ApiError::new(500, err.to_string()))?,
                );
                add_sizes(&mut v, &e, &c, &sizes);
            }
            Ok(json_response(200, &v))
        }
        (&Method::POST, ["start"]) => {
            e.start(id).await?;
            Ok(status(204))
        }
        (&Method::POST, ["stop"]) => {
            let t = match q.int("t")? {
                Some(t) => Some(t),
                None => q.int("timeout")?,
            };
            let (id, signal) = (id.to_string(), q.get("signal").map(str::to_string));
            detached(async move { e.stop(&id, t, signal.as_deref()).await }).await?;
            Ok(status(204))
        }
        (&Method::POST, ["kill"]) => {
            e.kill(id, q.get("signal").unwrap_or("")).await?;
            Ok(status(204))
        }
        (&Method::POST, ["restart"]) => {
            let (id, t, signal) = (
                id.to_string(),
                q.int("t")?,
                q.get("signal").map(str::to_string),
            );
            detached(async move { e.restart(&id, t, signal.as_deref()).await }).await?;
            Ok(status(204))
        }
        (&Method::POST, ["wait"]) => wait(e, id, q).await,
        // `rm --link linker/alias`: the path's last segment is the link's alias.
        (&Method::DELETE, [alias]) if q.bool("link") => {
            e.remove_link(id, alias).await?;
            Ok(status(204))
        }
        (&Method::DELETE, []) if q.bool("link") => {
            e.get(id)?;
            Err(ApiError::new(
                409,
                "Conflict, cannot remove the default link name of the container".into(),
            ))
        }
        (&Method::DELETE, []) => {
            let c = e.get(id)?;
            e.remove(id, q.bool("force")).await?;
            if q.bool("v") {
                e.remove_anonymous_volumes(&c);
            }
            Ok(status(204))
        }
        (&Method::GET, ["logs"]) => logs(e, id, q).await,
        (&Method::POST, ["attach"]) => attach(e, id, q, req).await,
        (&Method::GET, ["attach", "ws"]) => attach_ws(e, id, q, req).await,
        (&Method::POST, ["resize"]) => {
            let c = e.get(id)?;
            let (h, w) = tty_size(q)?;
            if !c.running() {
                return Err(ApiError::new(
                    409,
                    format!("Container {} is not running", c.id),
                ));
            }
            // The monitor owns the container's pty master.
            e.connect_monitor(&c.id, &format!("resize {h} {w}"))
                .await
                .map_err(|x| ApiError::new(500, format!("resize: {x}")))?;
            Ok(status(200))
        }
        (&Method::POST, ["rename"]) => {
            e.rename(id, q.get("name").unwrap_or(""))?;
            Ok(status(204))
        }
        (&Method::POST, ["pause"]) => {
            e.pause(id, true).await?;
            Ok(status(204))
        }
        (&Method::POST, ["unpause"]) => {
            e.pause(id, false).await?;
            Ok(status(204))
        }
        (&Method::GET, ["top"]) => top(e, id, q).await,
        (&Method::GET, ["changes"]) => {
            let e2 = e.clone();
            let id = id.to_string();
            let ch = tokio::task::spawn_blocking(move || e2.changes(&id))
                .await
                .map_err(|x| ApiError::new(500, x.to_string()))??;
            let v: Vec<Value> = ch
                .into_iter()
                .map(|(p, k)| json!({"Path": p, "Kind": k}))
                .collect();
            Ok(json_response(200, &Value::Array(v)))
        }
        (&Method::GET, ["export"]) => {
            let c = e.get(id)?;
            let e2 = e.clone();
            let data =
                tokio::task::spawn_blocking(move || -> Result<Vec<u8>, barge_image::Error> {
                    let mut buf = Vec::new();
                    e2.store.export(&c.snapshot, &mut buf)?;
                    Ok(buf)
                })
                .await
                .map_err(|x| ApiError::new(500, x.to_string()))??;
            let mut r = Response::new(crate::util::full(data));
            r.headers_mut().insert(
                "Content-Type",
                hyper::header::HeaderValue::from_static("application/x-tar"),
            );
            Ok(r)
        }
        (&Method::GET | &Method::HEAD | &Method::PUT, ["archive"]) => {
            crate::images::archive(e, m.clone(), id, q, req).await
        }
        (&Method::POST, ["exec"]) => {
            let v = read_json(Kind::ExecCreate, req, 1 << 20).await?;
            if let Some(k) = v.get("DetachKeys").and_then(Value::as_str) {
                crate::util::detach_keys(k).map_err(|m| ApiError::new(400, m))?;
            }
            let eid = e.exec_create(id, &v)?;
            Ok(json_response(201, &json!({"Id": eid})))
        }
        (&Method::POST, ["update"]) => {
            let mut v = read_json(Kind::ContainerUpdate, req, 1 << 20).await?;
            if q.api_before(40) {
                // PidsLimit became updatable in API 1.40; older clients' value is ignored.
                if let Some(o) = v.as_object_mut() {
                    o.remove("PidsLimit");
                }
            }
            e.update_container(id, &v)?;
            Ok(json_response(200, &json!({"Warnings": []})))
        }
        (&Method::GET, ["stats"]) => stats(e, id, q).await,
        _ => Err(ApiError::new(
            404,
            format!("page not found: {m} /containers/{id}/{}", rest.join("/")),
        )),
    }
}

/// `GET /containers/{id}/top?ps_args=...`: as dockerd, the host's `ps` with `ps_args`
/// (default `-ef`) restricted to the container's pids (`-q`, retried without it for options
/// that refuse it), rows kept by the PID column, the last column holding the rest of a line.
async fn top(e: Arc<Engine>, id: &str, q: &Query) -> R {
    let pids = e.pids(id).await?;
    let ps_args = q.get("ps_args").filter(|a| !a.is_empty()).unwrap_or("-ef");
    let args: Vec<String> = ps_args.split_whitespace().map(str::to_string).collect();
    let list = pids
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let run = |extra: bool| {
        let mut c = tokio::process::Command::new("ps");
        c.args(&args);
        if extra && !list.is_empty() {
            c.arg("-q").arg(&list);
        }
        c.stdin(std::process::Stdio::null()).output()
    };
    let out = match run(true).await {
        Ok(o) if o.status.success() => o,
        _ => run(false)
            .await
            .map_err(|x| ApiError::new(500, format!("running ps: {x}")))?,
    };
    if !out.status.success() {
        return Err(ApiError::new(
            500,
            format!("ps: {}", String::from_utf8_lossy(&out.stderr).trim_end()),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let titles: Vec<&str> = lines
        .next()
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let pid_index = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| ApiError::new(500, "Couldn't find PID field in ps output".into()))?;
    let mut procs = Vec::new();
    let mut in_container = false;
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() <= pid_index {
            continue;
        }
        let keep = if fields[pid_index] == "-" {
            in_container
        } else {
            let p: i32 = fields[pid_index].parse().map_err(|_| {
                ApiError::new(500, format!("Unexpected pid '{}'", fields[pid_index]))
            })?;
            in_container = pids.contains(&p);
            in_container
        };
        if keep && !titles.is_empty() {
            let n = titles.len() - 1;
            let mut row: Vec<String> = fields.iter().take(n).map(|f| f.to_string()).collect();
            row.push(fields.get(n..).map(|r| r.join(" ")).unwrap_or_default());
            procs.push(row);
        }
    }
    Ok(json_response(
        200,
        &json!({"Titles": titles, "Processes": procs}),
    ))
}

pub(crate) async fn exec_start(e: Arc<Engine>, id: &str, mut req: Request<Incoming>) -> R {
    // The body is checked before the exec is looked up, as dockerd does.
    let ct = crate::decode::content_type(&req);
    let body = read_body_ref(&mut req).await?;
    let v = decode_typed(Kind::ExecStart, ct.as_deref(), &body)?;
    let x = e.exec_get(id)?;
    let detach = v.get("Detach").and_then(Value::as_bool).unwrap_or(false);
    // As dockerd: the exec's own `Tty` (from create) decides whether it gets a pty; the
    // start request's `Tty` only whether the stream is raw or multiplexed (docker-py starts
    // a tty exec with `Tty: false` and reads the pty's output in stdout frames).
    let tty = x.tty;
    let raw = v.get("Tty").and_then(Value::as_bool).unwrap_or(x.tty);
    // API 1.42+: the client's terminal size, [rows, cols], for the exec's pty.
    if let Some(size) = v.get("ConsoleSize").filter(|s| !s.is_null()) {
        let dims: Option<Vec<u16>> = size.as_array().and_then(|a| {
            a.iter()
                .map(|d| d.as_u64().and_then(|d| u16::try_from(d).ok()))
                .collect()
        });
        match dims.as_deref() {
            Some([h, w]) if tty && (*h, *w) != (0, 0) => e.exec_resize(id, *h, *w)?,
            Some([_, _]) => {}
            _ => {
                return Err(ApiError::new(
                    400,
                    format!("ConsoleSize must be [height, width], not {size}"),
                ))
            }
        }
    }
    let console = if tty {
        let p = e
            .options()
            .exec_root
            .join(format!("x-{}.sock", &id[..12.min(id.len())]));
        let _ = std::fs::remove_file(&p);
        let l = std::os::unix::net::UnixListener::bind(&p)
            .map_err(|x| ApiError::new(500, format!("console socket: {x}")))?;
        Some((p, l))
    } else {
        None
    };
    let mut child = e.exec_spawn(id, console.as_ref().map(|(p, _)| p.as_path()))?;
    let master = match console {
        Some((p, l)) => {
            let r = tokio::task::spawn_blocking(move || {
                let _ = l.set_nonblocking(false);
                barge_engine::util::recv_fd(&l)
            })
            .await
            .map_err(|x| ApiError::new(500, x.to_string()))?;
            let _ = std::fs::remove_file(&p);
            let m = r.map_err(|x| ApiError::new(500, x))?;
            // A copy for resize; the engine drops it when the exec is done.
            if let Ok(dup) = m.try_clone() {
                e.exec_set_console(id, Arc::new(dup));
            }
            Some(m)
        }
        None => None,
    };
    let eid = id.to_string();
    if detach {
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
            drop(master);
            e.exec_done(&eid, code);
        });
        return Ok(status(200));
    }
    let on = hyper::upgrade::on(&mut req);
    let peer = req.extensions().get::<crate::util::PeerSocket>().copied();
    let (want_in, want_out, want_err) = (x.open_stdin, x.open_stdout, x.open_stderr);
    let keys = crate::util::detach_keys(&x.detach_keys).map_err(|m| ApiError::new(400, m))?;
    tokio::spawn(async move {
        let up = on.await;
        let Ok(up) = up else {
            let _ = child.kill().await;
            return;
        };
        crate::util::wait_headers_read(peer).await;
        let (mut cr, mut cw) = tokio::io::split(TokioIo::new(up));
        if let Some(m) = master {
            let mf = std::fs::File::from(m);
            let mf2 = mf.try_clone();
            let mut mr = tokio::fs::File::from_std(mf);
            let mut inp = tokio::spawn(async move {
                if let (true, Ok(f)) = (want_in, mf2) {
                    let mut mw = tokio::fs::File::from_std(f);
                    if copy_detachable(&mut cr, &mut mw, &keys).await {
                        return;
                    }
                }
                std::future::pending::<()>().await;
            });
            let mut buf = vec![0u8; 16384];
            loop {
                let r = tokio::select! {
                    r = mr.read(&mut buf) => r,
                    // Detached: the client goes, the exec keeps running on its pty.
                    _ = &mut inp => {
                        let _ = cw.shutdown().await;
                        drop(cw);
                        let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
                        drop(mr);
                        e.exec_done(&eid, code);
                        return;
                    }
                };
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let out = framed(raw, 1, &buf[..n]);
                        if cw.write_all(&out).await.is_err() {
                            break;
                        }
                        let _ = cw.flush().await;
                    }
                }
            }
            inp.abort();
        } else {
            let mut so = child.stdout.take();
            let mut se = child.stderr.take();
            let mut si = child.stdin.take();
            let inp = tokio::spawn(async move {
                if let Some(w) = si.as_mut() {
                    let _ = tokio::io::copy(&mut cr, w).await;
                }
                drop(si);
                std::future::pending::<()>().await;
            });
            let mut b1 = vec![0u8; 16384];
            let mut b2 = vec![0u8; 16384];
            while so.is_some() || se.is_some() {
                tokio::select! {
                    r = async { match so.as_mut() { Some(s) => s.read(&mut b1).await, None => std::future::pending().await } } => {
                        match r { Ok(n) if n > 0 => { if want_out { let _ = cw.write_all(&framed(raw, 1, &b1[..n])).await; } } _ => so = None }
                    }
                    r = async { match se.as_mut() { Some(s) => s.read(&mut b2).await, None => std::future::pending().await } } => {
                        match r { Ok(n) if n > 0 => { if want_err { let _ = cw.write_all(&framed(raw, 2, &b2[..n])).await; } } _ => se = None }
                    }
                }
            }
            inp.abort();
        }
        let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
        e.exec_done(&eid, code);
        let _ = cw.flush().await;
        let _ = cw.shutdown().await;
    });
    Ok(upgrade_response(stream_type(raw)))
}

/// `data` as sent on an exec's stream: as is when raw, else in a frame of `stream`.
fn framed(raw: bool, stream: u8, data: &[u8]) -> Vec<u8> {
    if raw {
        data.to_vec()
    } else {
        frame(stream, data)
    }
}

async fn read_body_ref(req: &mut Request<Incoming>) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let body = http_body_util::Limited::new(req.body_mut(), 1 << 20);
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|x| ApiError::new(400, format!("reading the request body: {x}")))
}

/// `h` and `w` of a resize request: window sizes a terminal can hold (0..=65535).
fn tty_size(q: &Query) -> Result<(u16, u16), ApiError> {
    let dim = |k: &str| -> Result<u16, ApiError> {
        let v = q.int(k)?.unwrap_or(0);
        u16::try_from(v).map_err(|_| {
            ApiError::new(
                400,
                format!("invalid value for {k}: {v} (a terminal size is 0 to 65535)"),
            )
        })
    };
    Ok((dim("h")?, dim("w")?))
}

/// `POST /exec/{id}/resize`: the exec's pty lives in the daemon (see `exec_start`).
pub(crate) async fn exec_resize(e: Arc<Engine>, id: &str, q: &Query) -> R {
    let (h, w) = tty_size(q)?;
    e.exec_resize(id, h, w)?;
    Ok(status(200))
}

pub(crate) fn exec_inspect(e: Arc<Engine>, id: &str) -> R {
    let x = e.exec_get(id)?;
    Ok(json_response(
        200,
        &json!({
            "ID": x.id, "Running": x.running, "ExitCode": x.exit_code, "ContainerID": x.container_id,
            "OpenStdin": x.open_stdin, "OpenStdout": x.open_stdout, "OpenStderr": x.open_stderr,
            "Pid": x.pid, "CanRemove": false, "DetachKeys": x.detach_keys,
            "ProcessConfig": {"tty": x.tty, "entrypoint": x.cmd.first(), "arguments": x.cmd.get(1..).unwrap_or_default(), "privileged": x.privileged, "user": x.user, "workingDir": x.workdir},
        }),
    ))
}

pub(crate) async fn commit(e: Arc<Engine>, q: &Query, req: Request<Incoming>) -> R {
    let v = read_json(Kind::Commit, req, 16 << 20).await?;
    let container = q.get("container").unwrap_or("").to_string();
    let reference = match (
        q.get("repo").filter(|s| !s.is_empty()),
        q.get("tag").filter(|s| !s.is_empty()),
    ) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r.to_string()),
        _ => None,
    };
    let mut v = v;
    // As dockerd, `changes` merge into the container's config: an ENV, LABEL or EXPOSE
    // adds to what the container has (not replacing the list with its one entry).
    let c = e.get(&container)?;
    if !v.is_object() {
        v = json!({});
    }
    for k in ["Env", "Labels", "ExposedPorts"] {
        if v.get(k).is_none_or(Value::is_null) {
            if let Some(x) = c.config.get(k).filter(|x| !x.is_null()) {
                v[k] = x.clone();
            }
        }
    }
    apply_changes(&mut v, &q.all("changes").join("\n"))?;
    let comment = q.get("comment").unwrap_or("").to_string();
    let author = q.get("author").unwrap_or("").to_string();
    let id = tokio::task::spawn_blocking(move || {
        e.commit(
            &container,
            reference.as_deref(),
            &comment,
            &author,
            Some(&v),
        )
    })
    .await
    .map_err(|x| ApiError::new(500, x.to_string()))??;
    Ok(json_response(201, &json!({"Id": id})))
}

/// The filters dockerd's `GET /events` takes.
const EVENT_FILTERS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// Whether event `ev` passes filter `key=v` (dockerd's rules: an object filter matches its
/// own type's events by id prefix or by name; `image` also without the tag).
fn event_matches(ev: &barge_engine::engine::Event, key: &str, v: &str) -> bool {
    let attr = |k: &str| ev.actor.attributes.get(k).map(String::as_str);
    let strip_tag = |s: &str| -> String {
        match s.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') && !s.contains('@') => repo.to_string(),
            _ => s.to_string(),
        }
    };
    match key {
        "type" => ev.kind == v,
        "event" => ev.action == v || ev.action.split(':').next() == Some(v),
        "scope" => ev.scope == v,
        "image" => {
            let name = attr(if ev.kind == "image" { "name" } else { "image" }).unwrap_or("");
            [ev.actor.id.as_str(), name]
                .iter()
                .any(|s| !s.is_empty() && (*s == v || strip_tag(s) == v))
        }
        // container, network, volume, daemon, plugin, node, service, secret, config.
        kind => {
            ev.kind == kind
                && (!v.is_empty() && ev.actor.id.starts_with(v) || attr("name") == Some(v))
        }
    }
}

pub(crate) async fn events(e: Arc<Engine>, q: &Query) -> R {
    let filters = q.filters_of(EVENT_FILTERS)?;
    let until = q.get("until").and_then(|s| s.parse::<f64>().ok());
    let since = q.get("since").and_then(|s| s.parse::<f64>().ok());
    let mut rx = e.subscribe();
    let past = since
        .map(|s| e.events_since((s * 1e9) as i64))
        .unwrap_or_default();
    let (tx, brx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let names: HashMap<String, String> = HashMap::new();
    let _ = names;
    tokio::spawn(async move {
        let deadline = until.map(|u| {
            let now = barge_engine::util::now().0 as f64;
            tokio::time::Instant::now() + std::time::Duration::from_secs_f64((u - now).max(0.0))
        });
        // Send the headers at once.
        let _ = tx.send(Bytes::new()).await;
        let until_nano = until.map(|u| (u * 1e9) as i64);
        let last_past = past.last().map(|e| e.time_nano).unwrap_or(0);
        let mut queue: std::collections::VecDeque<barge_engine::engine::Event> = past.into();
        loop {
            let ev = if let Some(ev) = queue.pop_front() {
                Ok(ev)
            } else {
                Err(())
            };
            let ev = match ev {
                Ok(ev) => Ok(ev),
                Err(()) => {
                    let live = match deadline {
                        Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                            Ok(r) => r,
                            Err(_) => return,
                        },
                        None => rx.recv().await,
                    };
                    match live {
                        Ok(ev) if ev.time_nano <= last_past => continue,
                        Ok(ev) => Ok(ev),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    }
                }
            };
            let ev: barge_engine::engine::Event = match ev {
                Ok(ev) => ev,
                Err(()) => return,
            };
            if until_nano.is_some_and(|u| ev.time_nano > u) {
                if queue.is_empty() && deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
                    return;
                }
                continue;
            }
            // Label filters are ANDed (as Docker), every other key matches any of its values.
            let ok = filters.iter().all(|(k, vals)| {
                if k == "label" {
                    labels_match(|l| ev.actor.attributes.get(l).map(String::as_str), vals)
                } else {
                    vals.iter().any(|v| event_matches(&ev, k, v))
                }
            });
            if !ok {
                continue;
            }
            let line = format!("{}\n", serde_json::to_string(&ev).unwrap_or_default());
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(channel_body(brx));
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// Runs `f` as a task of its own: a client that hangs up (a cancelled `ContainerStop`) ends
/// only its wait for the answer, not the stop (as dockerd, the kill after the timeout still
/// comes).
async fn detached<T: Send + 'static>(
    f: impl std::future::Future<Output = barge_engine::Result<T>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(f)
        .await
        .map_err(|x| ApiError::new(500, x.to_string()))?
        .map_err(ApiError::from)
}

/// Applies `docker commit --change` instructions (one per line) to a config override.
pub(crate) fn apply_changes(v: &mut Value, changes: &str) -> Result<(), ApiError> {
    if !v.is_object() {
        *v = json!({});
    }
    for line in changes.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (ins, arg) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let arg = arg.trim();
        let list = |a: &str| -> Value {
            match serde_json::from_str::<Vec<String>>(a) {
                Ok(l) => json!(l),
                Err(_) => json!(["/bin/sh", "-c", a]),
            }
        };
        match ins.to_ascii_uppercase().as_str() {
            "CMD" => v["Cmd"] = list(arg),
            "ENTRYPOINT" => v["Entrypoint"] = list(arg),
            "WORKDIR" => v["WorkingDir"] = json!(arg),
            "USER" => v["User"] = json!(arg),
            "STOPSIGNAL" => v["StopSignal"] = json!(arg),
            "ENV" => {
                let (k, val) = arg
                    .split_once('=')
                    .or_else(|| arg.split_once(' '))
                    .unwrap_or((arg, ""));
                let mut env: Vec<String> = barge_engine::model::str_list(v.get("Env"));
                // As a Dockerfile's ENV: `$VAR` and quotes are processed, against the
                // environment the config has so far (`ENV PATH=/x:$PATH`).
                let vars: std::collections::BTreeMap<String, String> = env
                    .iter()
                    .filter_map(|e| e.split_once('='))
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect();
                let val = barge_build::expand(val.trim(), &vars)
                    .map_err(|x| ApiError::new(400, format!("ENV {k}: {x}")))?;
                env.retain(|e| e.split('=').next() != Some(k));
                env.push(format!("{k}={val}"));
                v["Env"] = json!(env);
            }
            "LABEL" => {
                let (k, val) = arg.split_once('=').unwrap_or((arg, ""));
                if !v.get("Labels").is_some_and(Value::is_object) {
                    v["Labels"] = json!({});
                }
                v["Labels"][k.trim()] = json!(val.trim().trim_matches('"'));
            }
            "EXPOSE" => {
                if !v.get("ExposedPorts").is_some_and(Value::is_object) {
                    v["ExposedPorts"] = json!({});
                }
                for p in arg.split_whitespace() {
                    let p = if p.contains('/') {
                        p.to_string()
                    } else {
                        format!("{p}/tcp")
                    };
                    v["ExposedPorts"][p] = json!({});
                }
            }
            "VOLUME" | "ONBUILD" | "HEALTHCHECK" => {}
            other => {
                return Err(ApiError::new(
                    400,
                    format!("{other} is not a valid change command"),
                ))
            }
        }
    }
    Ok(())
}

/// GET /containers/{id}/stats: `stream` (default true) sends one JSON document a second;
/// `stream=0` one document with `precpu_stats` filled (a cached or a 100 ms earlier sample);
/// `one-shot=1` (with stream=0) one document without waiting.
async fn stats(e: Arc<Engine>, id: &str, q: &Query) -> R {
    let stream = q.bool_or("stream", true);
    let one_shot = q.bool("one-shot");
    let c = e.get(id)?;
    if !stream {
        let v = e.stats(&c.id, if one_shot { 0 } else { 100 }).await?;
        return Ok(json_response(200, &v));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let id = c.id.clone();
    tokio::spawn(async move {
        loop {
            let v = match e.stats(&id, 100).await {
                Ok(v) => v,
                Err(_) => break,
            };
            let mut line = serde_json::to_vec(&v).unwrap_or_default();
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() {
                break;
            }
            if !e.get(&id).is_ok_and(|c| c.running()) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    let mut r = Response::new(crate::util::channel_body(rx));
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
