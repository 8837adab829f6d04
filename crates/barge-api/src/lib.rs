//! barge-api: the Docker Engine API (HTTP/1.1 over a unix socket) on top of barge-engine.
//!
//! Paths may carry a version prefix (`/v1.47/containers/json`); errors are
//! `{"message": "..."}` with Docker's status codes; attach and exec start are hijacked
//! connections (HTTP upgrade to a raw stream) with Docker's 8-byte multiplexed framing when
//! the container has no TTY.

#![recursion_limit = "256"]

mod build;
mod containers;
pub mod decode;
mod distribution;
mod images;
pub mod metrics;
mod networks;
pub mod tls;
mod util;
mod volumes;
pub mod websocket;

use std::convert::Infallible;
use std::os::fd::RawFd;
use std::sync::Arc;

use barge_engine::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;

pub use build::{remove_stale_build_endpoints, remove_stale_build_netns};
use util::{empty, json_response, Query};
pub use util::{ApiError, Body};

/// The API version barge speaks.
pub const API_VERSION: &str = "1.47";
/// The oldest API version accepted.
pub const MIN_API_VERSION: &str = "1.24";

/// Daemon facts for `/info` and `/version`.
#[derive(Debug, Clone, Default)]
pub struct DaemonInfo {
    /// `--data-root`.
    pub data_root: String,
    /// `--exec-root`.
    pub exec_root: String,
    /// `--insecure-registry` values.
    pub insecure_registries: Vec<String>,
    /// The daemon's version.
    pub version: String,
}

/// Shared state of the API server.
pub struct Api {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Daemon facts.
    pub info: DaemonInfo,
    /// The image builder (`POST /build`); `None` when it could not be set up.
    pub builder: Option<Arc<barge_build::Builder>>,
}

/// One `accept`'s connection, or `None` once its failure is logged and a short pause has
/// passed (EMFILE and the like are transient; retrying at once would spin).
pub(crate) async fn accepted<T>(what: &str, r: std::io::Result<T>) -> Option<T> {
    match r {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("{what}: {e}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            None
        }
    }
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(api: Arc<Api>, listener: tokio::net::UnixListener) {
    loop {
        let Some((stream, _)) = accepted("accept", listener.accept().await).await else {
            continue;
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        tokio::spawn(serve_connection(api.clone(), stream, Some(fd)));
    }
}

/// Serves the API over plain TCP, without authentication: only for a daemon started with an
/// explicit `--tls=false` (dockerd's opt-in since v27), since whoever connects is root here.
pub async fn serve_tcp(api: Arc<Api>, listener: tokio::net::TcpListener) {
    loop {
        let Some((stream, _)) = accepted("accept", listener.accept().await).await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(api.clone(), stream, None));
    }
}

/// Serves the API on one accepted connection (unix socket, TCP or TLS stream) until it closes.
/// `peer` is the connection's unix socket (see [`util::PeerSocket`]).
pub(crate) async fn serve_connection<S>(api: Arc<Api>, stream: S, peer: Option<RawFd>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        if let Some(fd) = peer {
            req.extensions_mut().insert(util::PeerSocket(fd));
        }
        let api = api.clone();
        async move { Ok::<_, Infallible>(handle(api, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("connection: {e}");
    }
}

async fn handle(api: Arc<Api>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    tracing::debug!("{method} {path}");
    let mut resp = match route(api, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        "Api-Version",
        hyper::header::HeaderValue::from_static(API_VERSION),
    );
    h.insert("Server", hyper::header::HeaderValue::from_static("barge"));
    h.insert("Ostype", hyper::header::HeaderValue::from_static("linux"));
    resp
}

/// Strips `/v1.xx` from the path; checks the version; returns the rest and the minor
/// version (`None` when the path has no version).
fn split_version(path: &str) -> Result<(&str, Option<u32>), ApiError> {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            let v = &rest[..i];
            if v.split('.').all(|p| p.parse::<u32>().is_ok()) && v.contains('.') {
                let minor: u32 = v
                    .split('.')
                    .nth(1)
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
                let major: u32 = v
                    .split('.')
                    .next()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
                if major != 1 || minor < 24 {
                    return Err(ApiError::new(400, format!("client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version")));
                }
                if minor > 47 {
                    return Err(ApiError::new(400, format!("client version {v} is too new. Maximum supported API version is {API_VERSION}")));
                }
                return Ok((&path[i + 2..], Some(minor)));
            }
        }
    }
    Ok((path, None))
}

async fn route(api: Arc<Api>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = util::decode_path(req.uri().path());
    let (path, minor) = split_version(&path)?;
    let path = path.to_string();
    let q = Query::parse(req.uri().query().unwrap_or("")).with_api_minor(minor);
    let decoded: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(util::path_unescape)
        .collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let m = req.method().clone();
    let e = api.engine.clone();
    match (&m, segs.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => {
            let mut r = Response::new(if m == Method::HEAD {
                empty()
            } else {
                util::full("OK")
            });
            let h = r.headers_mut();
            h.insert(
                "Builder-Version",
                hyper::header::HeaderValue::from_static("1"),
            );
            h.insert(
                "Cache-Control",
                hyper::header::HeaderValue::from_static("no-cache, no-store, must-revalidate"),
            );
            // HTTP/1.0 caches read only this one.
            h.insert(
                "Pragma",
                hyper::header::HeaderValue::from_static("no-cache"),
            );
            h.insert(
                "Content-Type",
                hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(r)
        }
        (&Method::GET, ["version"]) => Ok(json_response(200, &version(&api.info))),
        (&Method::GET, ["info"]) => Ok(json_response(200, &info(&api))),
        (&Method::GET, ["events"]) => containers::events(e, &q).await,
        (&Method::GET, ["system", "df"]) => images::system_df(e).await,
        (&Method::POST, ["containers", "create"]) => containers::create(e, &q, req).await,
        (&Method::GET, ["containers", "json"]) => containers::list(e, &q),
        (&Method::POST, ["containers", "prune"]) => containers::prune(e, &q).await,
        (_, ["containers", id, rest @ ..]) => {
            containers::dispatch(e, m.clone(), id, rest, &q, req).await
        }
        (&Method::POST, ["exec", id, "start"]) => containers::exec_start(e, id, req).await,
        (&Method::POST, ["exec", id, "resize"]) => containers::exec_resize(e, id, &q).await,
        (&Method::GET, ["exec", id, "json"]) => containers::exec_inspect(e, id),
        (&Method::POST, ["commit"]) => containers::commit(e, &q, req).await,
        (&Method::POST, ["build"]) => build::build(&api, req).await,
        (&Method::POST, ["build", "prune"]) => build::prune(&api).await,
        (&Method::POST, ["images", "create"])
            if q.get("fromSrc").is_none() && q.get("fromImage").is_some() =>
        {
            distribution::pull(&api, &q, req).await
        }
        (&Method::POST, ["images", name @ .., "push"]) if !name.is_empty() => {
            let name = name.join("/");
            distribution::push(&api, &name, &q, req).await
        }
        (_, ["images", ..]) => images::dispatch(e, m.clone(), &segs[1..], &q, req).await,
        (_, ["networks", ..]) => networks::dispatch(e, m.clone(), &segs[1..], &q, req).await,
        (_, ["volumes", rest @ ..]) => volumes::dispatch(e, m.clone(), rest, &q, req).await,
        (&Method::POST, ["auth"]) => {
            let body = read_body(req, 1 << 20).await?;
            distribution::auth(&api, body).await
        }
        (_, ["swarm", rest @ ..]) => Err(swarm_unavailable(rest)),
        (_, ["nodes" | "services" | "tasks" | "secrets" | "configs", ..]) => {
            Err(swarm_unavailable(&[]))
        }
        (&Method::GET, ["plugins"]) => Ok(json_response(200, &json!([]))),
        (&Method::GET, ["plugins", name @ .., "json"]) if !name.is_empty() => Err(ApiError::new(
            404,
            format!("plugin \"{}\" not found", name.join("/")),
        )),
        (_, ["plugins", ..]) => Err(ApiError::new(
            501,
            "managed plugins are not supported by barge".into(),
        )),
        _ => Err(ApiError::new(
            404,
            format!("page not found: {} {}", m, path),
        )),
    }
}

/// What a dockerd that is not in a swarm answers on the swarm endpoints (503, its words, so
/// clients that tolerate "not part of a swarm", as docker-py's `leave_swarm(force=True)`
/// does, carry on); joining or making one is refused: barge has no swarm mode (DESIGN.md:
/// Kubernetes through CRI is how it scales past one host).
fn swarm_unavailable(rest: &[&str]) -> ApiError {
    match rest {
        ["leave"] => ApiError::new(503, "This node is not part of a swarm".into()),
        ["init"] | ["join"] => ApiError::new(
            503,
            "barge does not support swarm mode (it runs containers on one host)".into(),
        ),
        _ => ApiError::new(
            503,
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.".into(),
        ),
    }
}

fn version(i: &DaemonInfo) -> serde_json::Value {
    let uname = util::uname();
    json!({
        "Platform": {"Name": "barge"},
        "Components": [{"Name": "Engine", "Version": i.version, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": util::goarch(), "KernelVersion": uname}}],
        "Version": i.version,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "rust",
        "Os": "linux",
        "Arch": util::goarch(),
        "KernelVersion": uname,
        "BuildTime": "",
    })
}

fn info(api: &Api) -> serde_json::Value {
    let all = api.engine.all();
    let running = all.iter().filter(|c| c.state.status == "running").count();
    let paused = all.iter().filter(|c| c.state.status == "paused").count();
    let images = api.engine.store.list_images().map(|v| v.len()).unwrap_or(0);
    let (mem, ncpu) = util::host_resources();
    let hostname = barge_engine::util::host_name();
    json!({
        "ID": "barge",
        "Containers": all.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": all.len() - running - paused,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"]],
        "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Log": ["json-file", "local", "none"]},
        "MemoryLimit": true, "SwapLimit": false, "CpuCfsPeriod": true, "CpuCfsQuota": true,
        "CPUShares": true, "CPUSet": true, "PidsLimit": true, "IPv4Forwarding": true,
        "Debug": false, "NFd": 0, "OomKillDisable": false, "NGoroutines": 0,
        "SystemTime": barge_engine::util::now_rfc3339(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { "2" } else { "1" },
        "NEventsListener": 0,
        "KernelVersion": util::uname(),
        "OperatingSystem": "barge",
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config(&api.info.insecure_registries),
        "NCPU": ncpu,
        "MemTotal": mem,
        "DockerRootDir": api.info.data_root,
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": api.info.version,
        "Runtimes": barge_engine::engine::RUNTIMES
            .iter()
            .map(|r| (r.to_string(), json!({"path": "barge-runc"})))
            .collect::<serde_json::Map<_, _>>(),
        "DefaultRuntime": barge_engine::engine::DEFAULT_RUNTIME,
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "Warnings": [],
    })
}

/// Reads a request body (up to `limit` bytes).
pub(crate) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let body = http_body_util::Limited::new(req.into_body(), limit);
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::new(400, format!("reading the request body: {e}")))
}

/// `info`'s `RegistryConfig` in dockerd's shape: loopback as an insecure CIDR (barge reaches
/// loopback registries over HTTP), one `IndexConfigs` entry per `--insecure-registry` with
/// `Secure: false` (what `docker info` lists under "Insecure Registries"), and Docker Hub.
fn registry_config(insecure: &[String]) -> serde_json::Value {
    let mut index = serde_json::Map::new();
    index.insert(
        "docker.io".into(),
        serde_json::json!({"Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true}),
    );
    for r in insecure {
        index.insert(
            r.clone(),
            serde_json::json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false}),
        );
    }
    serde_json::json!({
        "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
        "IndexConfigs": index,
        "Mirrors": [],
    })
}
