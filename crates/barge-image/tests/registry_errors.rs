//! Registry errors against a tiny fake registry served by the test itself on 127.0.0.1 (a
//! std `TcpListener` thread answering canned HTTP/1.1): 401, 404, 429 and 5xx, retried
//! where sensible, each a clear error and nothing kept in the store.

use barge_image::progress::Progress;
use barge_image::registry::{self, RegistryOptions};
use barge_image::{Error, Reference, Store};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A canned answer.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn ok(content_type: &str, body: &[u8], digest: &str) -> Resp {
        Resp {
            status: 200,
            headers: vec![
                ("Content-Type".into(), content_type.into()),
                ("Docker-Content-Digest".into(), digest.into()),
            ],
            body: body.to_vec(),
        }
    }

    fn error(status: u16, code: &str, message: &str) -> Resp {
        Resp {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#)
                .into_bytes(),
        }
    }
}

type Handler = dyn Fn(&str, &str, usize) -> Resp + Send + Sync;

/// The fake registry: `handler(method, path, nth)` answers the `nth` (from 1) request for
/// that method and path. Every request is logged. Stopped (thread joined) on drop.
struct Fake {
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    /// Body bytes the client accepted (written to its socket).
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fake {
    fn start(handler: Box<Handler>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (l2, s2, n2) = (log.clone(), stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let counts: Mutex<HashMap<String, usize>> = Mutex::new(HashMap::new());
            // Each connection on a thread of its own: clients may hold one open (a pool)
            // while they make their next request on another.
            std::thread::scope(|sc| {
                while !s2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (h, c, l, n) = (&*handler, &counts, &*l2, &*n2);
                            sc.spawn(move || {
                                let _ = serve(conn, h, c, l, n);
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            });
        });
        Fake {
            port,
            log,
            sent,
            stop,
            thread: Some(thread),
        }
    }

    fn r(&self, s: &str) -> Reference {
        format!("127.0.0.1:{}/{s}", self.port).parse().expect("ref")
    }

    /// How many requests were made for `method path`.
    fn count(&self, method: &str, path: &str) -> usize {
        let want = format!("{method} {path}");
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| **l == want)
            .count()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers requests on one connection (keep-alive) until the client closes it.
fn serve(
    conn: TcpStream,
    handler: &Handler,
    counts: &Mutex<HashMap<String, usize>>,
    log: &Mutex<Vec<String>>,
    sent: &AtomicU64,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default().to_string();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Ok(());
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        let key = format!("{method} {path}");
        log.lock().expect("log").push(key.clone());
        let nth = {
            let mut c = counts.lock().expect("counts");
            let n = c.entry(key).or_insert(0);
            *n += 1;
            *n
        };
        let resp = handler(&method, &path, nth);
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            resp.status,
            resp.body.len()
        );
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        w.write_all(head.as_bytes())?;
        if method != "HEAD" {
            // In pieces, counted: a client that stops reading shows as bytes not sent.
            for piece in resp.body.chunks(64 << 10) {
                w.write_all(piece)?;
                sent.fetch_add(piece.len() as u64, Ordering::Relaxed);
            }
        }
        w.flush()?;
    }
}

fn sha(data: &[u8]) -> String {
    barge_image::Digest::of(data).to_string()
}

/// A one-layer OCI image: (manifest, config, layer) bytes.
struct Img {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Vec<u8>,
}

impl Img {
    fn new() -> Img {
        Img::with_diff_id(None)
    }

    /// With `diff_id` (if given) in the config instead of the layer's real one.
    fn with_diff_id(diff_id: Option<String>) -> Img {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        let data = b"hello from the fake registry\n";
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, "hello.txt", &data[..])
            .expect("tar");
        let raw = tar.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).expect("gz");
        let layer = gz.finish().expect("gz");
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id.unwrap_or_else(|| sha(&raw))]},
            "history": [{"created_by": "fake"}],
        }))
        .expect("json");
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(&config),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha(&layer),
                "size": layer.len(),
            }],
        }))
        .expect("json");
        Img {
            manifest,
            config,
            layer,
        }
    }

    /// The successful answer to `path` for repository `repo`, or 404.
    fn answer(&self, repo: &str, method: &str, path: &str) -> Resp {
        let blob = |data: &[u8]| Resp::ok("application/octet-stream", data, &sha(data));
        if path == "/v2/" {
            return Resp::ok("application/json", b"{}", "");
        }
        if path == format!("/v2/{repo}/manifests/v1") && method == "GET" {
            return Resp::ok(
                "application/vnd.oci.image.manifest.v1+json",
                &self.manifest,
                &sha(&self.manifest),
            );
        }
        for data in [&self.config, &self.layer] {
            if path == format!("/v2/{repo}/blobs/{}", sha(data)) {
                return blob(data);
            }
        }
        Resp::error(404, "NAME_UNKNOWN", "repository name not known to registry")
    }

    fn layer_path(&self, repo: &str) -> String {
        format!("/v2/{repo}/blobs/{}", sha(&self.layer))
    }
}

fn opts() -> RegistryOptions {
    RegistryOptions {
        docker_config_dir: Some(PathBuf::from("/nonexistent/barge-test-docker-config")),
        ..Default::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn pull(store: &Arc<Store>, r: &Reference) -> barge_image::Result<registry::PullReport> {
    let noop = |_: Progress| {};
    rt().block_on(registry::pull(store.clone(), r, &opts(), &noop))
}

fn assert_store_empty(store: &Store) {
    assert!(store.list_images().expect("list").is_empty());
    assert!(
        store.list_blobs().expect("blobs").is_empty(),
        "blobs left: {:?}",
        store.list_blobs()
    );
    let layers: Vec<_> = std::fs::read_dir(store.root().join("layers"))
        .expect("layers dir")
        .collect();
    assert!(layers.is_empty(), "layers left: {layers:?}");
}

#[test]
fn the_fake_registry_serves_a_pullable_image() {
    // The control: without injected errors the pull works, so the failures below are
    // the registry's answers and not the fake's shortcomings.
    let img = Arc::new(Img::new());
    let i2 = img.clone();
    let fake = Fake::start(Box::new(move |m, p, _| i2.answer("t/img", m, p)));
    let td = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(td.path().join("s")).expect("store"));
    let rep = pull(&store, &fake.r("t/img:v1")).expect("pull");
    assert_eq!(rep.digest.to_string(), sha(&img.manifest));
    assert_eq!(fake.count("GET", &img.layer_path("t/img")), 1);
    assert!(store
        .resolve(&format!("127.0.0.1:{}/t/img:v1", fake.port))
        .is_ok());
}

#[test]
fn unauthorized_is_reported_without_retry_and_keeps_nothing() {
    let fake = Fake::start(Box::new(|_, _, _| {
        let mut r = Resp::error(401, "UNAUTHORIZED", "authentication required");
        r.headers
            .push(("WWW-Authenticate".into(), "Basic realm=\"fake\"".into()));
        r
    }));
    let td = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(td.path().join("s")).expect("store"));
    let e = pull(&store, &fake.r("t/img:v1")).expect_err("401");
    assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
    assert!(e.to_string().contains("barge login"), "{e}");
    assert_eq!(
        fake.count("GET", "/v2/t/img/manifests/v1"),
        1,
        "401 is not retried"
    );
    assert_store_empty(&store);
}

#[test]
fn not_found_names_the_reference_without_retry() {
    let img = Img::new();
    let fake = Fake::start(Box::new(move |m, p, _| img.answer("t/img", m, p)));
    let td = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(td.path().join("s")).expect("store"));
    let e = pull(&store, &fake.r("t/other:v1")).expect_err("404");
    match &e {
        Error::RemoteNotFound { reference, .. } => {
            assert!(reference.contains("t/other"), "{e}")
        }
        other => panic!("expected RemoteNotFound, got {other:?}"),
    }
    assert_eq!(fake.count("GET", "/v2/t/other/manifests/v1"), 1);
    assert_store_empty(&store);
}

#[test]
fn too_many_requests_and_server_errors_are_retried_then_succeed() {
    // The manifest answers 429 once, the layer 503 once: both are retried.
    let img = Arc::new(Img::new());
    let i2 = img.clone();
    let lp = img.layer_path("t/img");
    let lp2 = lp.clone();
    let fake = Fake::start(Box::new(move |m, p, n| {
        if p == "/v2/t/img/manifests/v1" && n == 1 {
            let mut r = Resp::error(429, "TOOMANYREQUESTS", "slow down");
            r.headers.push(("Retry-After".into(), "0".into()));
            return r;
        }
        if p == lp2 && n == 1 {
            return Resp::error(503, "UNAVAILABLE", "try later");
        }
        i2.answer("t/img", m, p)
    }));
    let td = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(td.path().join("s")).expect("store"));
    let rep = pull(&store, &fake.r("t/img:v1")).expect("pull succeeds after retries");
    assert_eq!(rep.digest.to_string(), sha(&img.manifest));
    assert_eq!(fake.count("GET", "/v2/t/img/manifests/v1"), 2);
    assert_eq!(fake.count("GET", &lp), 2);
    let rec = store
        .resolve(&format!("127.0.0.1:{}/t/img:v1", fake.port))
        .expect("resolve");
    assert_eq!(rec.id.to_string(), sha(&img.config));
}

#[test]
fn persistent_server_errors_give_up_after_three_attempts_and_keep_nothing() {
    // Manifest fine, the layer always 500: the pull fails naming the registry, and the
    // manifest and config already fetched are not kept.
    let img = Arc::new(Img::new());
    let i2 = img.clone();
    let lp = img.layer_path("t/img");
    let lp2 = lp.clone();
    let fake = Fake::start(Box::new(move |m, p, _| {
        if p == lp2 {
            return Resp::error(500, "UNKNOWN", "disk on fire");
        }
        i2.answer("t/img", m, p)
    }));
    let td = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(td.path().join("s")).expect("store"));
    let e = pull(&store, &fake.r("t/img:v1")).expect_err("500");
    assert!(matches!(e, Error::Registry { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&format!("127.0.0.1:{}", fake.port)),
        "{e}"
    );
    assert_eq!(fake.count("GET", &lp), 3, "tried three times");
    assert_store_empty(&store);

    // A manifest that is always 502: the same, three attempts.
    let fake = Fake::start(Box::new(|_, p, _| {
        if p == "/v2/" {
            return Resp::ok("application/json", b"{}", "");
        }
        Resp::error(502, "UNKNOWN", "bad gateway")
    }));
    let e = pull(&store, &fake.r("t/img:v1")).expect_err("502");
    assert!(matches!(e, Error::Registry { .. }), "{e:?}");
    assert_eq!(fake.count("GET", "/v2/t/img/manifests/v1"), 3);
    assert_store_empty(&store);
}

#[test]
fn malformed_manifest_and_unknown_media_type_from_a_registry_keep_nothing() {
    for (ct, body, want) in [
        (
            "application/vnd.oci.image.manifest.v1+json",
            &b"{\"schemaVersion\": 2, \"layers\": ["[..],
            "manifest",
        ),
        ("text/html", &b"<html>hello</html>"[..], "manifest"),
    ] {
        let body = body.to_vec();
        let fake = Fake::start(Box::new(move |_, p, _| {
            if p == "/v2/" {
                return Resp::ok("application/json", b"{}", "");
            }
            Resp::ok(ct, &body, &sha(&body))
        }));
        let td = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(td.path().join("s")).expect("store"));
        let e = pull(&store, &fake.r("t/img:v1")).expect_err("bad manifest");
        assert!(
            matches!(e, Error::Manifest { .. } | Error::Registry { .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains(want), "{e}");
        assert_store_empty(&store);
    }
}

#[test]
fn an_endless_manifest_is_refused_without_reading_it_all() {
    // 64 MiB of "manifest": the client must stop at the 16 MiB document limit instead of
    // buffering whatever the registry sends (socket buffers take a few MiB more).
    let huge = Arc::new(vec![b' '; 64 << 20]);
    let h2 = huge.clone();
    let fake = Fake::start(Box::new(move |_, p, _| {
        if p == "/v2/" {
            return Resp::ok("application/json", b"{}", "");
        }
        Resp {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            body: h2.to_vec(),
        }
    }));
    let td = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(td.path().join("s")).expect("store"));
    let e = pull(&store, &fake.r("t/img:v1")).expect_err("endless manifest");
    assert!(matches!(e, Error::Manifest { .. }), "{e:?}");
    assert!(e.to_string().contains("too large"), "{e}");
    // The announced length alone is enough to refuse it: nothing near 64 MiB was read.
    let sent = fake.sent.load(Ordering::Relaxed);
    assert!(sent < 48 << 20, "client read {sent} bytes of the manifest");
    assert_eq!(
        fake.count("GET", "/v2/t/img/manifests/v1"),
        1,
        "not retried"
    );
    assert_store_empty(&store);
}

#[test]
fn config_comes_first_and_a_layer_with_a_wrong_diff_id_is_refused() {
    // The config is fetched before any layer (its diff ids let each layer be unpacked as
    // soon as it arrives); a layer whose content does not match its diff id fails the pull.
    let wrong = sha(b"not the layer");
    let img = Arc::new(Img::with_diff_id(Some(wrong.clone())));
    let i2 = img.clone();
    let fake = Fake::start(Box::new(move |m, p, _| i2.answer("t/img", m, p)));
    let td = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(td.path().join("s")).expect("store"));
    let e = pull(&store, &fake.r("t/img:v1")).expect_err("wrong diff id");
    match &e {
        Error::DigestMismatch { what, expected, .. } => {
            assert!(what.contains("diff id"), "{e}");
            assert_eq!(expected.to_string(), wrong);
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    let log = fake.log.lock().expect("log").clone();
    let pos = |p: String| log.iter().position(|l| *l == format!("GET {p}"));
    let cfg = pos(format!("/v2/t/img/blobs/{}", sha(&img.config))).expect("config fetched");
    let layer = pos(img.layer_path("t/img")).expect("layer fetched");
    assert!(cfg < layer, "config before layers: {log:?}");
    assert_store_empty(&store);
}

#[test]
fn retry_after_is_waited_for_then_the_pull_succeeds() {
    // The manifest answers 429 with `Retry-After: 2` once: the next attempt comes no
    // sooner than the 2 s asked (the default backoff would retry after 0.5 s).
    let img = Arc::new(Img::new());
    let i2 = img.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let fake = Fake::start(Box::new(move |m, p, n| {
        if p == "/v2/t/img/manifests/v1" {
            s2.lock().expect("seen").push(std::time::Instant::now());
            if n == 1 {
                let mut r = Resp::error(429, "TOOMANYREQUESTS", "slow down");
                r.headers.push(("Retry-After".into(), "2".into()));
                return r;
            }
        }
        i2.answer("t/img", m, p)
    }));
    let td = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(td.path().join("s")).expect("store"));
    let rep = pull(&store, &fake.r("t/img:v1")).expect("pull succeeds after the wait");
    assert_eq!(rep.digest.to_string(), sha(&img.manifest));
    let seen = seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 2, "one retry");
    let gap = seen[1] - seen[0];
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
}

#[test]
fn a_retry_after_past_the_limit_is_reported_at_once_and_keeps_nothing() {
    // A registry asking for an hour's wait: no retry, an error saying what it asked.
    let fake = Fake::start(Box::new(|_, p, _| {
        if p == "/v2/" {
            return Resp::ok("application/json", b"{}", "");
        }
        let mut r = Resp::error(429, "TOOMANYREQUESTS", "slow down");
        r.headers.push(("Retry-After".into(), "3600".into()));
        r
    }));
    let td = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(td.path().join("s")).expect("store"));
    let e = pull(&store, &fake.r("t/img:v1")).expect_err("429 for an hour");
    assert!(matches!(e, Error::Registry { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("retry after 3600 s"), "{msg}");
    assert!(msg.contains("try again later"), "{msg}");
    assert_eq!(
        fake.count("GET", "/v2/t/img/manifests/v1"),
        1,
        "not retried"
    );
    assert_store_empty(&store);
}

fn list_tags(fake: &Fake, repo: &str) -> barge_image::Result<Vec<String>> {
    rt().block_on(registry::list_tags(&fake.r(repo), &opts()))
}

#[test]
fn tag_lists_are_read_page_by_page() {
    // A full page of 1000 tags, then a short one: both read, merged and sorted.
    let fake = Fake::start(Box::new(|_, p, n| {
        if p != "/v2/t/img/tags/list" {
            return Resp::ok("application/json", b"{}", "");
        }
        let tags: Vec<String> = match n {
            1 => (0..1000).map(|i| format!("t{i:04}")).collect(),
            _ => vec!["u1".into(), "a0".into()],
        };
        let body =
            serde_json::to_vec(&serde_json::json!({"name": "t/img", "tags": tags})).expect("json");
        Resp::ok("application/json", &body, "")
    }));
    let tags = list_tags(&fake, "t/img").expect("tags");
    assert_eq!(tags.len(), 1002);
    assert_eq!(tags.first().map(String::as_str), Some("a0"));
    assert_eq!(tags.last().map(String::as_str), Some("u1"));
    assert_eq!(fake.count("GET", "/v2/t/img/tags/list"), 2);
}

#[test]
fn an_endless_tag_list_is_refused_without_reading_it_all() {
    // 64 MiB of tag list: refused at the 16 MiB document limit, as a manifest is.
    let huge = Arc::new(vec![b' '; 64 << 20]);
    let h2 = huge.clone();
    let fake = Fake::start(Box::new(move |_, p, _| {
        if p == "/v2/" {
            return Resp::ok("application/json", b"{}", "");
        }
        Resp {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: h2.to_vec(),
        }
    }));
    let e = list_tags(&fake, "t/img").expect_err("endless tag list");
    assert!(matches!(e, Error::Registry { .. }), "{e:?}");
    assert!(e.to_string().contains("tag list"), "{e}");
    assert!(e.to_string().contains("too large"), "{e}");
    let sent = fake.sent.load(Ordering::Relaxed);
    assert!(sent < 48 << 20, "client read {sent} bytes of the tag list");
    assert_eq!(fake.count("GET", "/v2/t/img/tags/list"), 1, "not retried");

    // A malformed page is an error naming the tag list, not a panic or an empty list.
    let fake = Fake::start(Box::new(|_, p, _| {
        if p == "/v2/" {
            return Resp::ok("application/json", b"{}", "");
        }
        Resp::ok("application/json", b"{\"tags\": 7}", "")
    }));
    let e = list_tags(&fake, "t/img").expect_err("malformed tag list");
    assert!(e.to_string().contains("malformed"), "{e}");
}

#[test]
fn a_damaged_layer_served_as_a_range_is_refused_and_keeps_nothing() {
    // Blobs are asked for as `Range: bytes=0-`; a 206 answer is not checked by oci-client,
    // so the store's own check is the one that must refuse a damaged layer.
    let img = Arc::new(Img::new());
    let i2 = img.clone();
    let lp = img.layer_path("t/img");
    let lp2 = lp.clone();
    let fake = Fake::start(Box::new(move |m, p, _| {
        if p == lp2 {
            let mut bad = i2.layer.clone();
            let n = bad.len();
            bad[n / 2] ^= 0xff;
            return Resp {
                status: 206,
                headers: vec![
                    ("Content-Type".into(), "application/octet-stream".into()),
                    ("Content-Range".into(), format!("bytes 0-{}/{n}", n - 1)),
                ],
                body: bad,
            };
        }
        i2.answer("t/img", m, p)
    }));
    let td = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(td.path().join("s")).expect("store"));
    let e = pull(&store, &fake.r("t/img:v1")).expect_err("damaged layer");
    match &e {
        Error::DigestMismatch { expected, .. } => {
            assert_eq!(expected.to_string(), sha(&img.layer), "{e}")
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert_eq!(fake.count("GET", &lp), 1);
    assert_store_empty(&store);
}
