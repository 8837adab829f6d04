//! `POST /build` (Docker's classic builder protocol: a tar context as the body, options in
//! the query, a JSON-lines stream of `{"stream": ..}`, `{"aux": {"ID": ..}}` and errors) and
//! `POST /build/prune`, on barge-build's [`Builder`].

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use barge_build::{BuildContext, BuildError, BuildOptions, Builder, Event};
use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};

use crate::util::{channel_body, json_response, ApiError, Body, Query};
use crate::Api;

type R = Result<Response<Body>, ApiError>;

fn builder(api: &Api) -> Result<Arc<Builder>, ApiError> {
    api.builder.clone().ok_or_else(|| {
        ApiError::new(
            500,
            "the builder could not be set up when the daemon started (see its log)".into(),
        )
    })
}

/// RUN steps' networking on the daemon: a namespace of their own under
/// `<exec-root>/netns/`, connected to the daemon's network like a container's endpoint.
struct DaemonBuildNetwork {
    nm: Arc<barge_network::NetworkManager>,
    dir: std::path::PathBuf,
}

impl std::fmt::Debug for DaemonBuildNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DaemonBuildNetwork({})", self.dir.display())
    }
}

/// One step's attachment: disconnected and its namespace removed on drop.
struct DaemonAttachment {
    nm: Arc<barge_network::NetworkManager>,
    id: String,
    path: std::path::PathBuf,
    resolv: Option<String>,
}

impl barge_build::BuildNetwork for DaemonBuildNetwork {
    fn attach(
        &self,
        id: &str,
        network: &str,
    ) -> Result<Box<dyn barge_build::NetworkAttachment>, String> {
        let path = self.dir.join(format!("build-{}", &id[..id.len().min(24)]));
        barge_engine::netns::create(&path).map_err(|e| e.to_string())?;
        // From here on, dropping `a` undoes what was done.
        let mut a = DaemonAttachment {
            nm: self.nm.clone(),
            id: id.to_string(),
            path: path.clone(),
            resolv: None,
        };
        let req = barge_network::ConnectRequest {
            container_id: id.to_string(),
            name: format!("build-{}", &id[..id.len().min(12)]),
            aliases: Vec::new(),
            netns_path: path,
            ports: Vec::new(),
            ..Default::default()
        };
        self.nm.connect(network, req).map_err(|e| e.to_string())?;
        a.resolv = self.nm.resolv_conf(network).ok();
        Ok(Box::new(a))
    }
}

/// Removes the build steps' namespaces an interrupted daemon left under
/// `<exec-root>/netns` (call before the network repair: their veths then go, and the
/// repair drops the endpoint records).
pub fn remove_stale_build_netns(exec_root: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(exec_root.join("netns")) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with("build-") {
            barge_engine::netns::remove(&e.path());
        }
    }
}

/// Disconnects the endpoints of build steps an interrupted daemon left (their names
/// start with `build-`; no container owns them). Call after the network repair.
pub fn remove_stale_build_endpoints(nm: &barge_network::NetworkManager) {
    for net in nm.list() {
        let Ok((_, eps)) = nm.inspect(&net.id) else {
            continue;
        };
        for e in eps.iter().filter(|e| e.name.starts_with("build-")) {
            if let Err(err) = nm.disconnect(&net.id, &e.container_id) {
                tracing::warn!("removing a stale build endpoint on {}: {err}", net.name);
            }
        }
    }
}

impl barge_build::NetworkAttachment for DaemonAttachment {
    fn netns_path(&self) -> &std::path::Path {
        &self.path
    }
    fn resolv_conf(&self) -> Option<String> {
        self.resolv.clone()
    }
}

impl Drop for DaemonAttachment {
    fn drop(&mut self) {
        if let Err(e) = self.nm.disconnect_all(&self.id) {
            tracing::warn!(
                "disconnecting build step {}: {e}",
                &self.id[..12.min(self.id.len())]
            );
        }
        barge_engine::netns::remove(&self.path);
    }
}

/// A blocking reader over the request body's chunks, which an async task forwards.
struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}

/// The final error line; a failed RUN carries its exit code, which the docker CLI exits with.
fn error_line(e: &BuildError) -> Value {
    let msg = e.to_string();
    match e {
        BuildError::RunFailed { code, .. } => {
            json!({"errorDetail": {"code": code, "message": msg}, "error": msg})
        }
        _ => json!({"errorDetail": {"message": msg}, "error": msg}),
    }
}

/// `POST /build`.
pub(crate) async fn build(api: &Api, req: Request<Incoming>) -> R {
    let b = builder(api)?;
    let pairs = Query::pairs(req.uri().query().unwrap_or(""));
    let mut opts =
        BuildOptions::from_query(&pairs).map_err(|e| ApiError::new(400, e.to_string()))?;
    if let Some(h) = req.headers().get(barge_build::SECRETS_HEADER) {
        let v = h.to_str().map_err(|_| {
            ApiError::new(
                400,
                format!("invalid {} header", barge_build::SECRETS_HEADER),
            )
        })?;
        opts.secrets =
            barge_build::decode_secrets(v).map_err(|e| ApiError::new(400, e.to_string()))?;
    }
    // Base images missing from the store are pulled, and `--pull` re-resolves them, with
    // the daemon's registry settings (anonymous unless the client sent X-Registry-Auth).
    opts.registry = Some(crate::distribution::options(api, &req)?);
    // RUN steps join the daemon's networks (when it has networking).
    opts.network_provider = api.engine.network_manager().map(|nm| {
        Arc::new(DaemonBuildNetwork {
            nm,
            dir: api.engine.options().exec_root.join("netns"),
        }) as Arc<dyn barge_build::BuildNetwork>
    });
    // The path the daemon started from (read once then): after the binary is replaced on
    // disk (an upgrade), /proc/self/exe names the deleted file, the path the new one.
    opts.barge_binary = api.engine.options().exe.clone();
    let cancel = Arc::new(AtomicBool::new(false));
    opts.cancel = Some(cancel.clone());

    // The body, chunk by chunk, to the build's blocking thread (back-pressure: 16 chunks).
    let (body_tx, body_rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(16);
    let mut body = req.into_body();
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let item = match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => Ok(d),
                    Err(_) => continue, // trailers
                },
                Err(e) => Err(io::Error::other(format!("reading the build context: {e}"))),
            };
            let stop = item.is_err();
            if body_tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });

    let (out, out_rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let engine = api.engine.clone();
    tokio::task::spawn_blocking(move || {
        let line = |v: &Value| Bytes::from(format!("{v}\n"));
        let progress = |ev: &Event| {
            // The final error is written below, with the exit code of a failed RUN.
            if matches!(ev, Event::Error(_)) {
                return;
            }
            for v in ev.to_json() {
                if out.blocking_send(line(&v)).is_err() {
                    // The client left: stop the build.
                    cancel.store(true, Ordering::Relaxed);
                }
            }
        };
        // `remote`: the context is fetched from the URL and the body is not read.
        let ctx = match opts.remote.clone() {
            Some(url) => {
                // Nothing reads the body: its forwarder ends on its next send.
                drop(body_rx);
                BuildContext::Remote(url)
            }
            None => BuildContext::Tar(Box::new(BodyReader {
                rx: body_rx,
                cur: Bytes::new(),
            })),
        };
        match b.build(&opts, ctx, &progress) {
            Ok(o) => {
                for t in &o.tags {
                    engine.emit_image_event("tag", &o.id.to_string(), t);
                }
            }
            Err(e) => {
                let _ = out.blocking_send(line(&error_line(&e)));
            }
        }
    });
    let mut r = Response::new(channel_body(out_rx));
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// `POST /build/prune`: drops the build cache.
pub(crate) async fn prune(api: &Api) -> R {
    let b = builder(api)?;
    let rep = tokio::task::spawn_blocking(move || b.prune())
        .await
        .map_err(|e| ApiError::new(500, e.to_string()))?
        .map_err(|e| ApiError::new(500, e.to_string()))?;
    Ok(json_response(
        200,
        &json!({"CachesDeleted": [], "SpaceReclaimed": rep.bytes, "RecordsDeleted": rep.records}),
    ))
}
