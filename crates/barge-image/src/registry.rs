//! Pull, push, login and logout against registries speaking the OCI distribution API (and
//! Docker's v2 schema 2), through the `oci-client` crate (reqwest + rustls with the `ring`
//! provider; no OpenSSL).
//!
//! * [`pull`]: fetches the manifest (an index / manifest list is resolved to the host's
//!   platform, or [`RegistryOptions::platform`]), then the config (its diff ids), then the
//!   layers in parallel (at most [`RegistryOptions::max_concurrent`] at a time). Each
//!   layer streams once through the store: its blob is written and hashed, and in the same
//!   pass decompressed, hashed (diff id) and unpacked into a temp directory; the blob is
//!   committed only if its digest and size match, the layer renamed into place only if its
//!   diff id matches. Blobs already in the store are not downloaded. Then the image is
//!   committed and tagged. On failure, what the pull brought in is garbage-collected:
//!   nothing is kept.
//! * [`list_tags`] and [`pull_all_tags`] (`docker pull --all-tags`): `tags/list`, page by
//!   page, then a pull of each tag.
//! * [`push`]: for each blob, `HEAD` first (present: "Layer already exists"), then a
//!   cross-repository mount from another repository of the same registry that has the
//!   image, then an upload; then the stored manifest bytes are `PUT` with their media
//!   type, so the digest is the one the store has.
//! * Auth: explicit [`RegistryOptions::credentials`], else those of Docker's
//!   `config.json` or of its credential helper (see [`crate::auth`]), else anonymous;
//!   bearer tokens (anonymous or with credentials, as Docker Hub does it) and HTTP basic
//!   auth both work. [`login`] checks the credentials against the registry before storing
//!   them.
//! * Plain HTTP only for loopback registries (`localhost`, `127.*`, `::1`) and for those in
//!   [`RegistryOptions::insecure_registries`].
//!
//! Store work that blocks (hashing, fsync, unpacking) runs on tokio's blocking pool, so
//! these functions can be awaited from the daemon's runtime; the store is shared as an
//! `Arc<Store>`.

use crate::auth::{self, Credentials};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::ImageRecord;
use crate::manifest::{self, Manifest, PlatformSpec};
use crate::progress::{short_id, Progress};
use crate::reference::Reference;
use crate::store::{Lease, Store, MAX_DOCUMENT_SIZE};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A progress callback: called from the task doing the pull or push, it must not block.
pub type ProgressFn = dyn Fn(Progress) + Send + Sync;

/// A progress callback that drops every event.
pub fn no_progress(_: Progress) {}

/// Settings of a pull, push or login (the daemon fills them from its config and the
/// request's `X-Registry-Auth`).
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host` or `host:port`) reached over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Credentials to use instead of those of `config.json`.
    pub credentials: Option<Credentials>,
    /// Where Docker's `config.json` is; `None`: `$DOCKER_CONFIG`, else `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
    /// At most this many blobs are transferred at once (Docker's default is 3).
    pub max_concurrent: usize,
    /// The platform to pick from an index; `None`: the host's.
    pub platform: Option<PlatformSpec>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure_registries: Vec::new(),
            credentials: None,
            docker_config_dir: None,
            max_concurrent: 3,
            platform: None,
        }
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// What was pulled (as asked: a tag or a digest).
    pub reference: Reference,
    /// The image (its record in the store; `id` is the config digest).
    pub image: ImageRecord,
    /// The digest of what the reference resolved to in the registry (the index when the
    /// image is multi-platform), as `docker pull` prints it.
    pub digest: Digest,
    /// Whether the reference now points at an image it did not point at before.
    pub updated: bool,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The tag pushed.
    pub tag: String,
    /// The manifest digest in the registry.
    pub digest: Digest,
    /// The manifest size.
    pub size: u64,
    /// Blobs uploaded.
    pub uploaded: Vec<Digest>,
    /// Blobs the registry already had in the repository.
    pub existing: Vec<Digest>,
    /// Blobs mounted from another repository: (blob, repository path).
    pub mounted: Vec<(Digest, String)>,
}

/// The host part of a registry domain (`127.0.0.1:5000` -> `127.0.0.1`, `[::1]:5000` ->
/// `::1`).
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    }
}

/// Whether `registry` is reached over plain HTTP: loopback hosts, and those listed in
/// `insecure` (by `host:port` or by host).
pub fn is_insecure(registry: &str, insecure: &[String]) -> bool {
    let host = host_of(registry);
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
        || insecure.iter().any(|r| r == registry || r == host)
}

/// Normalizes what a user gives `login`/`logout` (`https://host:5000/v2/`, `docker.io`,
/// `index.docker.io`) to a registry domain as references have it.
pub fn normalize_registry(s: &str) -> String {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// Installs rustls's `ring` provider once per process (reqwest with `rustls-no-provider`
/// needs one before its first client is made).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err: another provider is installed already; that one is used then.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The host name requests go to (`docker.io` is served by `registry-1.docker.io`).
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

fn client_for(registry: &str, opts: &RegistryOptions) -> Result<Client> {
    install_crypto_provider();
    let resolved = if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    };
    let protocol = if is_insecure(registry, &opts.insecure_registries) {
        ClientProtocol::HttpsExcept(vec![resolved.to_string()])
    } else {
        ClientProtocol::Https
    };
    let n = opts.max_concurrent.max(1);
    let cfg = ClientConfig {
        protocol,
        use_monolithic_push: true,
        max_concurrent_download: n,
        max_concurrent_upload: n,
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout: Some(Duration::from_secs(300)),
        platform_resolver: None,
        ..Default::default()
    };
    Client::try_from(cfg).map_err(|e| Error::Registry {
        registry: registry.to_string(),
        reason: format!("cannot make an HTTP client: {e}"),
    })
}

/// `http` for the registries reached over plain HTTP (see [`is_insecure`]), else `https`.
fn scheme_of(registry: &str, opts: &RegistryOptions) -> &'static str {
    if is_insecure(registry, &opts.insecure_registries) {
        "http"
    } else {
        "https"
    }
}

/// A reqwest client for requests made without oci-client (login checks, manifests).
fn http_client(registry: &str) -> Result<reqwest::Client> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(60));
    if is_insecure(registry, &[]) {
        builder = builder.no_proxy(); // loopback: never through a proxy
    }
    builder.build().map_err(|e| Error::Registry {
        registry: registry.to_string(),
        reason: format!("cannot make an HTTP client: {}", chain(&e)),
    })
}

fn registry_auth(registry: &str, opts: &RegistryOptions) -> Result<RegistryAuth> {
    let creds = match &opts.credentials {
        Some(c) => Some(c.clone()),
        None => auth::load_credentials(opts.docker_config_dir.as_deref(), registry)?,
    };
    Ok(match creds {
        Some(c) => RegistryAuth::Basic(c.username, c.password),
        None => RegistryAuth::Anonymous,
    })
}

fn oci_ref(r: &Reference) -> oci_client::Reference {
    let (d, p) = (r.domain().to_string(), r.path().to_string());
    match (r.tag(), r.digest()) {
        (Some(t), Some(g)) => {
            oci_client::Reference::with_tag_and_digest(d, p, t.to_string(), g.to_string())
        }
        (None, Some(g)) => oci_client::Reference::with_digest(d, p, g.to_string()),
        (Some(t), None) => oci_client::Reference::with_tag(d, p, t.to_string()),
        (None, None) => oci_client::Reference::with_tag(d, p, "latest".into()),
    }
}

/// The error with its chain of causes (reqwest hides "connection refused" in a source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn map_err(e: OciDistributionError, registry: &str, what: &str) -> Error {
    use OciDistributionError as O;
    let not_found = |reason: String| Error::RemoteNotFound {
        reference: what.to_string(),
        reason,
    };
    let unauthorized = |reason: String| Error::Unauthorized {
        registry: registry.to_string(),
        reason,
    };
    match &e {
        O::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|x| &x.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                not_found(envelope.to_string())
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                unauthorized(envelope.to_string())
            } else {
                Error::Registry {
                    registry: registry.to_string(),
                    reason: format!("{what}: {envelope}"),
                }
            }
        }
        O::DigestError(oci_client::errors::DigestError::VerificationError { expected, actual }) => {
            match (Digest::parse(expected), Digest::parse(actual)) {
                (Ok(expected), Ok(actual)) => Error::DigestMismatch {
                    what: what.to_string(),
                    expected,
                    actual,
                },
                _ => Error::Registry {
                    registry: registry.to_string(),
                    reason: format!("{what}: {}", chain(&e)),
                },
            }
        }
        O::ImageManifestNotFoundError(m) => not_found(m.clone()),
        O::UnauthorizedError { url } => unauthorized(format!("401 from {url}")),
        O::AuthenticationFailure(r) => unauthorized(format!("token request refused: {r}")),
        O::ServerError {
            code: 404, message, ..
        } => not_found(message.clone()),
        O::ServerError {
            code: 401 | 403,
            message,
            ..
        } => unauthorized(message.clone()),
        O::RequestError(re) if matches!(re.status().map(|s| s.as_u16()), Some(401 | 403)) => {
            unauthorized(chain(re))
        }
        O::RequestError(re) if re.status().map(|s| s.as_u16()) == Some(404) => not_found(chain(re)),
        _ => Error::Registry {
            registry: registry.to_string(),
            reason: format!("{what}: {}", chain(&e)),
        },
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Registry {
            registry: "(local)".into(),
            reason: format!("blocking task failed: {e}"),
        })?
}

/// Whether an error of the registry is worth retrying: 429 and 5xx answers, and
/// connections that failed or were cut.
fn transient(e: &OciDistributionError) -> bool {
    use OciDistributionError as O;
    match e {
        O::ServerError { code, .. } => *code == 429 || *code >= 500,
        O::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|x| matches!(x.code, OciErrorCode::Toomanyrequests)),
        O::RequestError(re) => {
            re.is_connect()
                || re.is_timeout()
                || re
                    .status()
                    .is_some_and(|s| s.as_u16() == 429 || s.is_server_error())
        }
        _ => false,
    }
}

/// An error that may go away when the request is made again.
trait Transient {
    fn is_transient(&self) -> bool;
    /// How long the registry asked to wait before the next attempt (`Retry-After`).
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Transient for OciDistributionError {
    fn is_transient(&self) -> bool {
        transient(self)
    }
}

/// How many times a request failing with a [`transient`] error is tried.
const ATTEMPTS: u32 = 3;

/// The longest `Retry-After` honoured. A registry asking for a longer wait gets its answer
/// reported at once: a pull does not hang for minutes behind a rate limit, and waiting
/// less than asked would only earn another 429.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Runs `f` again while it fails with a transient error: after the `Retry-After` the
/// registry sent (at most [`MAX_RETRY_AFTER`]; longer ends the retries), else after 0.5 s,
/// then 1 s. At most [`ATTEMPTS`] tries in all.
async fn retry<T, E, F, Fut>(mut f: F) -> std::result::Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if attempt < ATTEMPTS && e.is_transient() => {
                let wait = match e.retry_after() {
                    Some(d) if d > MAX_RETRY_AFTER => return Err(e),
                    Some(d) => d,
                    None => Duration::from_millis(500 << (attempt - 1)),
                };
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 10.2.3). A date
/// in the past means no wait; a value of neither form is ignored.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A failed request made without oci-client (manifests, tag lists): the registry's answer
/// (with the `Retry-After` it sent), or a document over the size limit.
enum GetError {
    Oci(OciDistributionError, Option<Duration>),
    TooLarge(u64),
}

impl Transient for GetError {
    fn is_transient(&self) -> bool {
        matches!(self, GetError::Oci(e, _) if transient(e))
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            GetError::Oci(_, d) => *d,
            GetError::TooLarge(_) => None,
        }
    }
}

impl GetError {
    /// The error for a registry's answer; `what` names what was asked for. A transient
    /// answer whose `Retry-After` is past [`MAX_RETRY_AFTER`] says so.
    fn into_error(self, registry: &str, what: &str, too_large: impl FnOnce(u64) -> Error) -> Error {
        match self {
            GetError::TooLarge(n) => too_large(n),
            GetError::Oci(e, Some(d)) if d > MAX_RETRY_AFTER && transient(&e) => Error::Registry {
                registry: registry.to_string(),
                reason: format!(
                    "{what}: {}; the registry asks to retry after {} s, longer than the {} s \
                     barge waits: try again later",
                    chain(&e),
                    d.as_secs(),
                    MAX_RETRY_AFTER.as_secs()
                ),
            },
            GetError::Oci(e, _) => map_err(e, registry, what),
        }
    }
}

/// The error for a registry's non-success answer, as oci-client makes it (so [`map_err`]
/// and [`transient`] judge it the same way): its error envelope when it sent one.
fn status_error(status: reqwest::StatusCode, body: &[u8], url: &str) -> OciDistributionError {
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return OciDistributionError::UnauthorizedError {
            url: url.to_string(),
        };
    }
    match serde_json::from_slice::<oci_client::errors::OciEnvelope>(body) {
        Ok(envelope) if status.is_client_error() => OciDistributionError::RegistryError {
            envelope,
            url: url.to_string(),
        },
        _ => OciDistributionError::ServerError {
            code: status.as_u16(),
            url: url.to_string(),
            message: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

/// Reads a response body, stopping with [`GetError::TooLarge`] past `limit` bytes.
async fn read_bounded(
    res: &mut reqwest::Response,
    limit: u64,
) -> std::result::Result<Vec<u8>, GetError> {
    if let Some(n) = res.content_length().filter(|n| *n > limit) {
        return Err(GetError::TooLarge(n));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| GetError::Oci(OciDistributionError::RequestError(e), None))?
    {
        let n = (buf.len() + chunk.len()) as u64;
        if n > limit {
            return Err(GetError::TooLarge(n));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// `GET url` (accepting `accept`) with the pull's bearer token, else the basic-auth
/// credentials: the response when it is a success, else the registry's error (its body
/// read up to 64 KiB) with the `Retry-After` it sent.
async fn get_checked(
    http: &reqwest::Client,
    auth: &RegistryAuth,
    token: Option<&str>,
    url: &str,
    accept: &str,
) -> std::result::Result<reqwest::Response, GetError> {
    let mut req = http.get(url).header(reqwest::header::ACCEPT, accept);
    req = match (token, auth) {
        (Some(t), _) => req.bearer_auth(t),
        (None, RegistryAuth::Basic(u, p)) => req.basic_auth(u, Some(p)),
        _ => req,
    };
    let mut res = req
        .send()
        .await
        .map_err(|e| GetError::Oci(OciDistributionError::RequestError(e), None))?;
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    let retry_after = res
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    // An error body is only shown: a little of it is enough.
    let body = match read_bounded(&mut res, 64 << 10).await {
        Ok(b) => b,
        Err(GetError::TooLarge(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    Err(GetError::Oci(status_error(status, &body, url), retry_after))
}

/// `GET /v2/<name>/manifests/<tag or digest>` with the pull's token (or basic auth):
/// the body and the `Docker-Content-Digest` the registry announced for it. Not
/// through oci-client, whose `pull_manifest_raw` buffers the whole body however large a
/// registry makes it: this one stops at [`MAX_DOCUMENT_SIZE`].
async fn get_manifest(
    cx: &Ctx<'_>,
    token: Option<&str>,
    r: &oci_client::Reference,
) -> std::result::Result<(Bytes, Option<String>), GetError> {
    let which = r.digest().or(r.tag()).unwrap_or("latest");
    let url = format!(
        "{}://{}/v2/{}/manifests/{which}",
        cx.scheme,
        api_host(&cx.registry),
        r.repository()
    );
    let accept = manifest::MANIFEST_ACCEPT.join(", ");
    let mut res = get_checked(&cx.http, &cx.auth, token, &url, &accept).await?;
    let announced = res
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_bounded(&mut res, MAX_DOCUMENT_SIZE).await?;
    Ok((Bytes::from(body), announced))
}

/// Reads what the download task sends, for [`Store::ingest`] on the blocking pool.
struct ChanReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// Passes on the chunks of a layer download to the unpacker (as a reader) and, without
/// copying them, to the thread writing and hashing the blob (see [`ingest_and_unpack`]).
/// Refuses more than `limit` bytes. The blob thread gets `None` after the last chunk: a
/// stream that stopped early (an error, the unpacker dropping it) is never committed.
struct ForkReader<I> {
    chunks: I,
    cur: Bytes,
    to_blob: Option<std::sync::mpsc::SyncSender<Option<Bytes>>>,
    n: u64,
    limit: u64,
    done: bool,
    /// A transfer error seen: every later read repeats it.
    failed: Option<String>,
}

impl<I: Iterator<Item = io::Result<Bytes>>> Read for ForkReader<I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if let Some(e) = &self.failed {
                return Err(io::Error::other(e.clone()));
            }
            if self.n > self.limit {
                return Err(io::Error::other(format!(
                    "more than the {} bytes announced",
                    self.limit
                )));
            }
            if self.done {
                return Ok(0);
            }
            match self.chunks.next() {
                None => {
                    self.done = true;
                    if let Some(tx) = self.to_blob.take() {
                        tx.send(None).map_err(|_| blob_stopped())?;
                    }
                }
                Some(Ok(c)) => {
                    self.n += c.len() as u64;
                    if self.n > self.limit {
                        self.to_blob = None;
                        continue;
                    }
                    if let Some(tx) = &self.to_blob {
                        tx.send(Some(c.clone())).map_err(|_| blob_stopped())?;
                    }
                    self.cur = c;
                }
                Some(Err(e)) => {
                    self.to_blob = None;
                    self.failed = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

fn blob_stopped() -> io::Error {
    io::Error::other("the blob writer stopped")
}

/// Stores the layer blob `d` (`size` bytes) arriving as `chunks` and, in the same pass,
/// unpacks it as the layer `diff_id` into a temp directory. The blob is written and hashed
/// on a thread of its own, beside the unpacker's (decompression, diff id, files), and
/// committed (fsynced) as soon as the stream ends, if its digest and size match; the layer
/// is renamed into place only after that, and only if its diff id matches. When the blob
/// does not match, that is the error (even if unpacking failed on the damaged bytes), and
/// nothing of it is kept.
fn ingest_and_unpack(
    st: &Store,
    chunks: impl Iterator<Item = io::Result<Bytes>> + Send,
    d: &Digest,
    size: u64,
    diff_id: &Digest,
) -> Result<()> {
    let what = format!("blob {d}");
    if st.has_blob(d) {
        for c in chunks {
            c.map_err(|e| Error::Read {
                what: what.clone(),
                source: e,
            })?;
        }
        return st.unpack_layer_blob(d, diff_id);
    }
    let lease = st.lease();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Option<Bytes>>(64);
        let blob = std::thread::Builder::new()
            .name("barge-blob".into())
            .spawn_scoped(s, || -> Result<bool> {
                let mut w = st.blob_writer()?;
                for c in rx {
                    let Some(c) = c else {
                        return w.commit(&lease, Some((d, size))).map(|_| true);
                    };
                    io::Write::write_all(&mut w, &c).map_err(|e| Error::Read {
                        what: what.clone(),
                        source: e,
                    })?;
                }
                // The stream stopped early: the reader's error is the one to report.
                Ok(false)
            })
            .map_err(|e| Error::Read {
                what: what.clone(),
                source: e,
            })?;
        let reader = ForkReader {
            chunks,
            cur: Bytes::new(),
            to_blob: Some(tx),
            n: 0,
            limit: size,
            done: false,
            failed: None,
        };
        st.unpack_layer_then(reader, Some(diff_id), Some(d), &what, |mut r| {
            // The rest of the stream (what the unpacker did not need: tar padding, a gzip
            // trailer), then the blob's digest and size.
            let rest = io::copy(&mut r, &mut io::sink());
            drop(r);
            let committed = blob.join().map_err(|_| Error::Read {
                what: what.clone(),
                source: io::Error::other("the thread writing it panicked"),
            })??;
            rest.map_err(|e| Error::Read {
                what: what.clone(),
                source: e,
            })?;
            if committed {
                Ok(())
            } else {
                Err(Error::Read {
                    what: what.clone(),
                    source: io::Error::other("the stream ended before the blob was complete"),
                })
            }
        })?;
        Ok(())
    })
}

struct Ctx<'a> {
    client: Client,
    /// For what oci-client cannot bound (manifests): plain reqwest.
    http: reqwest::Client,
    /// `http` or `https`, as for `client`.
    scheme: &'static str,
    oref: oci_client::Reference,
    auth: RegistryAuth,
    registry: String,
    what: String,
    store: Arc<Store>,
    progress: &'a ProgressFn,
}

/// One blob to download.
struct Want {
    digest: Digest,
    size: u64,
    media_type: String,
    layer: bool,
    /// For a layer: its diff id (from the config), to unpack it once downloaded.
    diff_id: Option<Digest>,
}

/// Fetches a manifest document (at most [`MAX_DOCUMENT_SIZE`] bytes), checks its size and
/// (when known) its digest. `token`: the pull's bearer token, if the registry gave one.
async fn fetch_document(
    cx: &Ctx<'_>,
    token: Option<&str>,
    r: &oci_client::Reference,
    expected: Option<(&Digest, Option<u64>)>,
) -> Result<(Bytes, Digest)> {
    let (bytes, announced) = retry(|| get_manifest(cx, token, r)).await.map_err(|e| {
        e.into_error(&cx.registry, &cx.what, |n| Error::Manifest {
            what: format!("manifest of {}", cx.what),
            reason: format!("{n} bytes or more is too large (the limit is {MAX_DOCUMENT_SIZE})"),
        })
    })?;
    let d = Digest::of(&bytes);
    // Pulled by tag: the digest the registry announced is the one to match.
    let announced = announced.and_then(|a| Digest::parse(&a).ok());
    if let (None, Some(a)) = (expected, &announced) {
        if a.algorithm() == d.algorithm() && a != &d {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {}", cx.what),
                expected: a.clone(),
                actual: d,
            });
        }
    }
    if let Some((want, size)) = expected {
        if let Some(s) = size {
            if s != bytes.len() as u64 {
                return Err(Error::SizeMismatch {
                    what: format!("manifest {want}"),
                    expected: s,
                    actual: bytes.len() as u64,
                });
            }
        }
        if &d != want {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {}", cx.what),
                expected: want.clone(),
                actual: d,
            });
        }
    }
    Ok((bytes, d))
}

async fn put_document(cx: &Ctx<'_>, lease: &Lease<'_>, bytes: Bytes, d: &Digest) -> Result<()> {
    lease.hold(d);
    let st = cx.store.clone();
    let d2 = d.clone();
    blocking(move || {
        st.ingest(
            &bytes[..],
            Some((&d2, bytes.len() as u64)),
            &format!("manifest {d2}"),
        )
        .map(|_| ())
    })
    .await
}

async fn fetch_blob(cx: &Ctx<'_>, lease: &Lease<'_>, w: Want) -> Result<()> {
    let id = short_id(&w.digest);
    lease.hold(&w.digest);
    let desc = OciDescriptor {
        digest: w.digest.to_string(),
        media_type: w.media_type.clone(),
        size: i64::try_from(w.size).unwrap_or(i64::MAX),
        ..Default::default()
    };
    // Asked as the range `bytes=0-`: a registry answering 206 gets its stream passed on
    // as is, where `pull_blob_stream` would hash it once more (oci-client checks the
    // digest of full answers) on top of the store's own check of digest and size, which
    // every blob goes through before it is visible. A registry ignoring the range
    // answers 200, checked by both.
    let stream = retry(|| cx.client.pull_blob_stream_partial(&cx.oref, &desc, 0, None))
        .await
        .map_err(|e| map_err(e, &cx.registry, &format!("blob {}", w.digest)))?;
    let mut stream = match stream {
        BlobResponse::Full(s) | BlobResponse::Partial(s) => s,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(16);
    let st = cx.store.clone();
    let (d, size) = (w.digest.clone(), w.size);
    if let Some(diff) = &w.diff_id {
        // Held before the layer exists, so a concurrent gc cannot take it.
        lease.hold(diff);
    }
    let diff_id = w.diff_id.clone();
    let job = tokio::task::spawn_blocking(move || {
        let mut rx = rx;
        match diff_id {
            // A layer is unpacked (and its diff id verified) as it streams in, while other
            // blobs still download.
            Some(diff) => ingest_and_unpack(
                &st,
                std::iter::from_fn(|| rx.blocking_recv()),
                &d,
                size,
                &diff,
            ),
            None => {
                let reader = ChanReader {
                    rx,
                    cur: Bytes::new(),
                };
                st.ingest(reader, Some((&d, size)), &format!("blob {d}"))
                    .map(|_| ())
            }
        }
    });
    let announced = stream.content_length;
    let (mut current, mut shown) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                current += c.len() as u64;
                if tx.send(Ok(c)).await.is_err() {
                    break; // the ingest failed (too long): its error is reported below
                }
                if w.layer && (current - shown >= 512 << 10 || current == w.size) {
                    shown = current;
                    (cx.progress)(Progress::Downloading {
                        id: id.clone(),
                        current,
                        total: w.size,
                    });
                }
            }
            Err(e) => {
                // With every byte the server announced received, the error is oci-client's
                // own digest check: let the store verify and name the mismatch (size or
                // digest). Otherwise the transfer broke: pass its error on.
                if current != w.size && Some(current) != announced {
                    let _ = tx.send(Err(io::Error::other(chain(&e)))).await;
                }
                break;
            }
        }
    }
    drop(tx);
    job.await.map_err(|e| Error::Registry {
        registry: cx.registry.clone(),
        reason: format!("ingest task failed: {e}"),
    })??;
    if w.layer {
        (cx.progress)(Progress::VerifyingChecksum { id: id.clone() });
        (cx.progress)(Progress::DownloadComplete { id });
    }
    Ok(())
}

/// Pulls `reference` (a tag or a digest) into `store` and tags it (a pull by digest only
/// records the repo digest). Emits [`Progress`] events as `docker pull` prints them.
/// Nothing of a failed pull is kept. The config is fetched first; then the layers, up to
/// `max_concurrent` at a time, each stored and unpacked in one pass as it streams in (its
/// blob digest and diff id both verified), so layers unpack while others still download.
pub async fn pull(
    store: Arc<Store>,
    reference: &Reference,
    opts: &RegistryOptions,
    progress: &ProgressFn,
) -> Result<PullReport> {
    let registry = reference.domain().to_string();
    let cx = Ctx {
        client: client_for(&registry, opts)?,
        http: http_client(&registry)?,
        scheme: scheme_of(&registry, opts),
        oref: oci_ref(reference),
        auth: registry_auth(&registry, opts)?,
        what: reference.familiar(),
        registry,
        store: store.clone(),
        progress,
    };
    let res = {
        let lease = store.lease();
        pull_inner(&cx, &lease, reference, opts).await
    };
    if res.is_err() {
        // Free what this pull brought in and no image uses.
        let st = store.clone();
        let _ = blocking(move || st.gc()).await;
    } else {
        // The layers were published before their files reached the disk (behind markers
        // that make a crash safe, see `Store::publish_layer`): sync them off the pull's
        // path. A plain thread, not the blocking pool: a runtime shutting down would wait
        // for it, and an exiting process need not (the markers stay until the next sync).
        let root = store.root().to_path_buf();
        let _ = std::thread::Builder::new()
            .name("barge-layer-sync".into())
            .spawn(move || crate::unpack::settle_unsynced_layers(&root));
    }
    res
}

async fn pull_inner(
    cx: &Ctx<'_>,
    lease: &Lease<'_>,
    reference: &Reference,
    opts: &RegistryOptions,
) -> Result<PullReport> {
    let token = cx
        .client
        .auth(&cx.oref, &cx.auth, RegistryOperation::Pull)
        .await
        .map_err(|e| map_err(e, &cx.registry, &cx.what))?;
    let token = token.as_deref();
    (cx.progress)(Progress::PullingFrom {
        repository: reference.path().to_string(),
        id: match (reference.tag(), reference.digest()) {
            (_, Some(d)) => d.to_string(),
            (Some(t), None) => t.to_string(),
            (None, None) => "latest".into(),
        },
    });
    let (top, top_digest) =
        fetch_document(cx, token, &cx.oref, reference.digest().map(|d| (d, None))).await?;
    let what = format!("manifest of {}", cx.what);
    let parsed = manifest::parse_manifest(&top, None, &what)?;
    put_document(cx, lease, top, &top_digest).await?;
    let (manifest_digest, m) = match parsed {
        Manifest::Image { manifest, .. } => (top_digest.clone(), manifest),
        Manifest::Index { index, .. } => {
            let platform = opts.platform.clone().unwrap_or_else(PlatformSpec::host);
            let desc = manifest::select_platform(&index, &platform, &what)?;
            let d = manifest::descriptor_digest(desc, &what)?;
            let child = oci_ref(&reference.with_digest(d.clone()));
            let (bytes, _) =
                fetch_document(cx, token, &child, Some((&d, Some(desc.size())))).await?;
            let cwhat = format!("manifest {d} of {}", cx.what);
            let m =
                match manifest::parse_manifest(&bytes, Some(desc.media_type().as_ref()), &cwhat)? {
                    Manifest::Image { manifest, .. } => manifest,
                    Manifest::Index { .. } => {
                        return Err(Error::Manifest {
                            what: cwhat,
                            reason: "an index inside an index is not supported".into(),
                        })
                    }
                };
            put_document(cx, lease, bytes, &d).await?;
            (d, m)
        }
    };
    let config = manifest::descriptor_digest(m.config(), &what)?;
    let st = cx.store.clone();
    let present = blocking(move || Ok(st.image_ids()?.contains(&config))).await?;
    let mut fresh = Vec::new();
    if !present {
        let mut wants = Vec::new();
        let cfg = m.config();
        let config = manifest::descriptor_digest(cfg, &what)?;
        for (i, l) in m.layers().iter().enumerate() {
            manifest::descriptor_digest(l, &format!("{what}: layers[{i}]"))?;
            manifest::layer_compression(l, &format!("{what}: layers[{i}]"))?;
        }
        // The config first (it is small): its diff ids let each layer be unpacked, and
        // verified, as soon as it is downloaded, while the others still download.
        if cx.store.has_blob(&config) {
            lease.hold(&config);
        } else {
            fetch_blob(
                cx,
                lease,
                Want {
                    digest: config.clone(),
                    size: cfg.size(),
                    media_type: cfg.media_type().to_string(),
                    layer: false,
                    diff_id: None,
                },
            )
            .await?;
        }
        let st = cx.store.clone();
        let cd = config.clone();
        let diff_ids = blocking(move || {
            let c = st.image_config(&cd)?;
            manifest::config_diff_ids(&c, &format!("config {cd}"))
        })
        .await?;
        // A count that does not match is reported by commit_image below.
        let diff_ids = (diff_ids.len() == m.layers().len()).then_some(diff_ids);
        let mut seen = BTreeSet::new();
        for (i, l) in m.layers().iter().enumerate() {
            let d = manifest::descriptor_digest(l, &format!("{what}: layers[{i}]"))?;
            if !seen.insert(d.clone()) {
                continue;
            }
            let id = short_id(&d);
            if cx.store.has_blob(&d) {
                lease.hold(&d);
                (cx.progress)(Progress::AlreadyExists { id });
            } else {
                (cx.progress)(Progress::PullingFsLayer { id: id.clone() });
                fresh.push(id);
                wants.push(Want {
                    digest: d,
                    size: l.size(),
                    media_type: l.media_type().to_string(),
                    layer: true,
                    diff_id: diff_ids.as_ref().map(|x| x[i].clone()),
                });
            }
        }
        // The largest first: its decompression (one thread per layer) is what a pull of
        // more layers than `max_concurrent` waits for last.
        wants.sort_by_key(|w| std::cmp::Reverse(w.size));
        // Every transfer runs to its end (no short-circuit), so no ingest is still running
        // when a failed pull garbage-collects what it brought in.
        let results: Vec<Result<()>> = futures_util::stream::iter(wants)
            .map(|w| fetch_blob(cx, lease, w))
            .buffer_unordered(opts.max_concurrent.max(1))
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>>>()?;
        for id in &fresh {
            (cx.progress)(Progress::Extracting { id: id.clone() });
        }
    }
    let st = cx.store.clone();
    let md = manifest_digest.clone();
    let r = reference.clone();
    let repo_digest = format!("{}@{}", reference.name(), top_digest);
    let (image, updated) = blocking(move || {
        let rec = st.commit_image(&md)?;
        let mut updated = false;
        if r.tag().is_some() {
            let before = st.resolve(&r.to_string()).ok().map(|x| x.id);
            updated = before.as_ref() != Some(&rec.id);
            st.tag(&rec.id.to_string(), &r)?;
        } else if !present {
            updated = true;
        }
        st.add_repo_digest(&rec.id, &repo_digest)?;
        Ok((st.resolve(&rec.id.to_string())?, updated))
    })
    .await?;
    for id in fresh {
        (cx.progress)(Progress::PullComplete { id });
    }
    (cx.progress)(Progress::Digest {
        digest: top_digest.clone(),
    });
    (cx.progress)(Progress::Status {
        message: if updated {
            format!("Downloaded newer image for {}", cx.what)
        } else {
            format!("Image is up to date for {}", cx.what)
        },
    });
    Ok(PullReport {
        reference: reference.clone(),
        image,
        digest: top_digest,
        updated,
    })
}

/// Tags asked for per page of `tags/list`.
const TAGS_PAGE: usize = 1000;

/// At most this many pages of tags are read (a registry that keeps answering full pages
/// would otherwise keep the listing going for ever).
const TAGS_MAX_PAGES: usize = 100;

/// One page of `tags/list` (`tags` is null for a repository without tags on some
/// registries).
#[derive(serde::Deserialize)]
struct TagPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// Lists the tags of `repository`'s repository (its tag or digest, if any, is ignored):
/// `GET /v2/<name>/tags/list`, page by page (`n` and `last`), sorted and without duplicates.
/// Read with reqwest, not oci-client's `list_tags` (which buffers a body whole): the pages
/// together may hold at most [`MAX_DOCUMENT_SIZE`] bytes, as a manifest.
pub async fn list_tags(repository: &Reference, opts: &RegistryOptions) -> Result<Vec<String>> {
    let registry = repository.domain().to_string();
    let client = client_for(&registry, opts)?;
    let http = http_client(&registry)?;
    let auth = registry_auth(&registry, opts)?;
    let what = repository.familiar_name();
    let oref = oci_client::Reference::with_tag(
        registry.clone(),
        repository.path().to_string(),
        "latest".into(),
    );
    let token = client
        .auth(&oref, &auth, RegistryOperation::Pull)
        .await
        .map_err(|e| map_err(e, &registry, &what))?;
    let url = format!(
        "{}://{}/v2/{}/tags/list",
        scheme_of(&registry, opts),
        api_host(&registry),
        repository.path()
    );
    let too_large = |n: u64| Error::Registry {
        registry: registry.clone(),
        reason: format!(
            "tag list of {what}: {n} bytes or more is too large (the limit is \
             {MAX_DOCUMENT_SIZE})"
        ),
    };
    let mut tags = BTreeSet::new();
    let mut last: Option<String> = None;
    let mut budget = MAX_DOCUMENT_SIZE;
    for _ in 0..TAGS_MAX_PAGES {
        let mut page_url = reqwest::Url::parse(&url).map_err(|e| Error::Registry {
            registry: registry.clone(),
            reason: format!("tag list URL {url:?}: {e}"),
        })?;
        page_url
            .query_pairs_mut()
            .append_pair("n", &TAGS_PAGE.to_string());
        if let Some(l) = &last {
            page_url.query_pairs_mut().append_pair("last", l);
        }
        let body = retry(|| async {
            let mut res = get_checked(
                &http,
                &auth,
                token.as_deref(),
                page_url.as_str(),
                "application/json",
            )
            .await?;
            read_bounded(&mut res, budget).await
        })
        .await
        .map_err(|e| {
            // Past the budget: name the whole list's size, not the page's.
            e.into_error(&registry, &what, |n| {
                too_large(n + (MAX_DOCUMENT_SIZE - budget))
            })
        })?;
        budget -= body.len() as u64;
        let page: TagPage = serde_json::from_slice(&body).map_err(|e| Error::Registry {
            registry: registry.clone(),
            reason: format!("tag list of {what}: malformed answer: {e}"),
        })?;
        let page = page.tags.unwrap_or_default();
        let n = page.len();
        let before = tags.len();
        let next = page.last().cloned();
        tags.extend(page);
        // A short page is the last; so is one that brought nothing new (a registry that
        // ignores `last`).
        if n < TAGS_PAGE || tags.len() == before {
            break;
        }
        last = next;
    }
    Ok(tags.into_iter().collect())
}

/// Pulls every tag of `repository` (a name without tag or digest), as `docker pull
/// --all-tags` does: the tags are listed, then pulled one after the other; the first
/// failure ends it (the tags pulled before it stay). Returns one report per tag.
pub async fn pull_all_tags(
    store: Arc<Store>,
    repository: &Reference,
    opts: &RegistryOptions,
    progress: &ProgressFn,
) -> Result<Vec<PullReport>> {
    if repository.tag().is_some() || repository.digest().is_some() {
        return Err(Error::Registry {
            registry: repository.domain().to_string(),
            reason: format!(
                "{}: a tag or digest can't be used with --all-tags",
                repository.familiar()
            ),
        });
    }
    let tags = list_tags(repository, opts).await?;
    if tags.is_empty() {
        return Err(Error::RemoteNotFound {
            reference: repository.familiar_name(),
            reason: "the repository has no tags".into(),
        });
    }
    let mut reports = Vec::with_capacity(tags.len());
    for t in &tags {
        let r = repository.with_tag(t)?;
        reports.push(pull(store.clone(), &r, opts, progress).await?);
    }
    Ok(reports)
}

/// How one blob got to the registry.
enum Sent {
    Uploaded,
    Existing,
    Mounted(String),
}

async fn push_blob(
    cx: &Ctx<'_>,
    digest: Digest,
    size: u64,
    layer: bool,
    sources: &[String],
) -> Result<(Digest, Sent)> {
    let id = short_id(&digest);
    let ds = digest.to_string();
    let err = |e| map_err(e, &cx.registry, &format!("blob {ds}"));
    if retry(|| cx.client.blob_exists(&cx.oref, &ds))
        .await
        .map_err(err)?
    {
        if layer {
            (cx.progress)(Progress::LayerAlreadyExists { id });
        }
        return Ok((digest, Sent::Existing));
    }
    for src in sources {
        let sref =
            oci_client::Reference::with_tag(cx.registry.clone(), src.clone(), "latest".into());
        if cx.client.mount_blob(&cx.oref, &sref, &ds).await.is_ok()
            && cx.client.blob_exists(&cx.oref, &ds).await.unwrap_or(false)
        {
            if layer {
                (cx.progress)(Progress::MountedFrom {
                    id,
                    from: src.clone(),
                });
            }
            return Ok((digest, Sent::Mounted(src.clone())));
        }
    }
    let path = cx.store.blob_path(&digest);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| Error::io("open", &path, e))?;
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let stream =
        futures_util::stream::unfold((Some(file), 0u64, ptx), |(file, sent, ptx)| async move {
            use tokio::io::AsyncReadExt;
            let mut f = file?;
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let sent = sent + n as u64;
                    let _ = ptx.send(sent);
                    Some((Ok(Bytes::from(buf)), (Some(f), sent, ptx)))
                }
                Err(e) => Some((Err(OciDistributionError::IoError(e)), (None, sent, ptx))),
            }
        });
    let upload = cx
        .client
        .push_blob_stream(&cx.oref, stream, &ds, Some(size));
    tokio::pin!(upload);
    let res = loop {
        tokio::select! {
            r = &mut upload => break r,
            Some(current) = prx.recv() => {
                if layer {
                    (cx.progress)(Progress::Pushing { id: id.clone(), current, total: size });
                }
            }
        }
    };
    res.map_err(err)?;
    if layer {
        (cx.progress)(Progress::Pushed { id });
    }
    Ok((digest, Sent::Uploaded))
}

/// Pushes the image `reference` names in `store` (`host:5000/app:tag`) to its registry.
/// Emits [`Progress`] events as `docker push` prints them, ending with
/// [`Progress::PushDigest`].
pub async fn push(
    store: Arc<Store>,
    reference: &Reference,
    opts: &RegistryOptions,
    progress: &ProgressFn,
) -> Result<PushReport> {
    let registry = reference.domain().to_string();
    let Some(tag) = reference.tag().map(str::to_string) else {
        return Err(Error::Registry {
            registry,
            reason: format!(
                "cannot push {}: push a tag, not a digest",
                reference.familiar()
            ),
        });
    };
    let cx = Ctx {
        client: client_for(&registry, opts)?,
        http: http_client(&registry)?,
        scheme: scheme_of(&registry, opts),
        oref: oci_ref(&reference.with_tag(&tag)?),
        auth: registry_auth(&registry, opts)?,
        what: reference.familiar(),
        registry,
        store: store.clone(),
        progress,
    };
    let st = store.clone();
    let name = reference.to_string();
    let target = reference.clone();
    let (rec, mbytes, sources) = blocking(move || {
        let rec = st.resolve(&name)?;
        let bytes = st.read_document(&rec.manifest, "manifest")?;
        let sources = mount_sources(&st, &target)?;
        Ok((rec, bytes, sources))
    })
    .await?;
    let what = format!("manifest {}", rec.manifest);
    let Manifest::Image { manifest: m, .. } = manifest::parse_manifest(&mbytes, None, &what)?
    else {
        return Err(Error::Manifest {
            what,
            reason: "is an index; cannot push".into(),
        });
    };
    cx.client
        .auth(&cx.oref, &cx.auth, RegistryOperation::Push)
        .await
        .map_err(|e| map_err(e, &cx.registry, &cx.what))?;
    (cx.progress)(Progress::PushRefersTo {
        repository: reference.name(),
    });
    let mut blobs: Vec<(Digest, u64, bool)> = Vec::new();
    let mut seen = BTreeSet::new();
    for l in &rec.layers {
        if seen.insert(l.blob.clone()) {
            (cx.progress)(Progress::Preparing {
                id: short_id(&l.blob),
            });
            blobs.push((l.blob.clone(), l.size, true));
        }
    }
    let config = manifest::descriptor_digest(m.config(), &what)?;
    blobs.push((config, m.config().size(), false));
    let empty = Vec::new();
    let sent = futures_util::stream::iter(blobs)
        .map(|(d, size, layer)| {
            let src = sources
                .get(&d)
                .map(|s| s.as_slice())
                .unwrap_or(empty.as_slice());
            push_blob(&cx, d, size, layer, src)
        })
        .buffer_unordered(opts.max_concurrent.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    let content_type =
        reqwest::header::HeaderValue::from_str(&rec.manifest_media_type).map_err(|e| {
            Error::Manifest {
                what: what.clone(),
                reason: format!("media type {:?}: {e}", rec.manifest_media_type),
            }
        })?;
    let size = mbytes.len() as u64;
    let body = Bytes::from(mbytes);
    retry(|| {
        cx.client
            .push_manifest_raw(&cx.oref, body.clone(), content_type.clone())
    })
    .await
    .map_err(|e| map_err(e, &cx.registry, &what))?;
    let st = store.clone();
    let (id, rd) = (
        rec.id.clone(),
        format!("{}@{}", reference.name(), rec.manifest),
    );
    blocking(move || st.add_repo_digest(&id, &rd)).await?;
    (cx.progress)(Progress::PushDigest {
        tag: tag.clone(),
        digest: rec.manifest.clone(),
        size,
    });
    let mut report = PushReport {
        tag,
        digest: rec.manifest.clone(),
        size,
        uploaded: Vec::new(),
        existing: Vec::new(),
        mounted: Vec::new(),
    };
    for (d, s) in sent {
        match s {
            Sent::Uploaded => report.uploaded.push(d),
            Sent::Existing => report.existing.push(d),
            Sent::Mounted(from) => report.mounted.push((d, from)),
        }
    }
    Ok(report)
}

/// For each blob in the store, the other repositories of `target`'s registry known to have
/// it (images with a reference or repo digest there that contain the blob): candidates
/// for a cross-repository mount.
fn mount_sources(store: &Store, target: &Reference) -> Result<BTreeMap<Digest, Vec<String>>> {
    let mut repos_of: BTreeMap<Digest, BTreeSet<String>> = BTreeMap::new();
    let mut add = |id: Digest, r: &Reference| {
        if r.domain() == target.domain() && r.path() != target.path() {
            repos_of.entry(id).or_default().insert(r.path().to_string());
        }
    };
    for (r, id) in store.references()? {
        add(id, &r);
    }
    let mut images = Vec::new();
    for id in store.image_ids()? {
        if let Ok(img) = store.resolve(&id.to_string()) {
            for rd in &img.repo_digests {
                if let Ok(r) = Reference::parse(rd) {
                    add(id.clone(), &r);
                }
            }
            images.push(img);
        }
    }
    let mut out: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for img in images {
        let Some(repos) = repos_of.get(&img.id) else {
            continue;
        };
        let blobs = img.layers.iter().map(|l| &l.blob).chain([&img.id]);
        for b in blobs {
            let v = out.entry(b.clone()).or_default();
            for p in repos {
                if !v.contains(p) {
                    v.push(p.clone());
                }
            }
        }
    }
    Ok(out)
}

/// Checks `creds` against `registry` (a domain such as `docker.io` or `localhost:5000`):
/// basic auth on `/v2/`, or the token endpoint of a bearer challenge, as `docker login`
/// does; then stores them in Docker's `config.json`.
pub async fn login(registry: &str, creds: &Credentials, opts: &RegistryOptions) -> Result<()> {
    let registry = normalize_registry(registry);
    verify_credentials(&registry, creds, opts).await?;
    let dir = opts.docker_config_dir.clone();
    let c = creds.clone();
    blocking(move || auth::store_credentials(dir.as_deref(), &registry, &c))
        .await
        .map(|_| ())
}

/// Checks `creds` against `registry` as [`login`] does, without storing them (the daemon's
/// `POST /auth`: the client keeps the credentials, not the daemon).
pub async fn check_credentials(
    registry: &str,
    creds: &Credentials,
    opts: &RegistryOptions,
) -> Result<()> {
    verify_credentials(&normalize_registry(registry), creds, opts).await
}

/// Removes the credentials of `registry` from Docker's `config.json`; returns whether
/// there were any.
pub async fn logout(registry: &str, opts: &RegistryOptions) -> Result<bool> {
    let registry = normalize_registry(registry);
    let dir = opts.docker_config_dir.clone();
    blocking(move || auth::remove_credentials(dir.as_deref(), &registry)).await
}

/// Parses `Bearer realm="...",service="..."` (or `Basic realm=...`): scheme and params.
fn parse_challenge(h: &str) -> (String, BTreeMap<String, String>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = BTreeMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, v)) = s.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let v = v.trim_start();
        let (val, rest) = if let Some(q) = v.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match v.find(',') {
                Some(i) => (&v[..i], &v[i..]),
                None => (v, ""),
            }
        };
        params.insert(k, val.to_string());
        s = rest.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
}

async fn verify_credentials(
    registry: &str,
    creds: &Credentials,
    opts: &RegistryOptions,
) -> Result<()> {
    let rerr = |reason: String| Error::Registry {
        registry: registry.to_string(),
        reason,
    };
    let http = http_client(registry)?;
    let scheme = scheme_of(registry, opts);
    let url = format!("{scheme}://{}/v2/", api_host(registry));
    let send = |req: reqwest::RequestBuilder| async {
        req.send()
            .await
            .map_err(|e| rerr(format!("GET {url}: {}", chain(&e))))
    };
    let r = send(http.get(&url)).await?;
    if r.status().is_success() {
        return Ok(()); // no auth needed
    }
    if r.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(rerr(format!("GET {url}: unexpected status {}", r.status())));
    }
    let header = r
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (scheme, params) = parse_challenge(&header);
    let refused = |status: reqwest::StatusCode| Error::Unauthorized {
        registry: registry.to_string(),
        reason: format!("login refused ({status}): incorrect username or password"),
    };
    let r = match scheme.as_str() {
        "basic" => {
            send(
                http.get(&url)
                    .basic_auth(&creds.username, Some(&creds.password)),
            )
            .await?
        }
        "bearer" => {
            let realm = params
                .get("realm")
                .ok_or_else(|| rerr(format!("bearer challenge without realm: {header:?}")))?;
            let mut q = vec![("account", creds.username.clone())];
            if let Some(s) = params.get("service") {
                q.push(("service", s.clone()));
            }
            send(
                http.get(realm.as_str())
                    .query(&q)
                    .basic_auth(&creds.username, Some(&creds.password)),
            )
            .await?
        }
        _ => return Err(rerr(format!("unsupported auth challenge {header:?}"))),
    };
    let status = r.status();
    if status.is_success() {
        Ok(())
    } else if status == reqwest::StatusCode::UNAUTHORIZED
        || status == reqwest::StatusCode::FORBIDDEN
    {
        Err(refused(status))
    } else {
        Err(rerr(format!("login: unexpected status {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        b.append_data(&mut h, "f", &b"hello"[..]).expect("tar");
        b.into_inner().expect("tar")
    }

    /// `data` as a download delivers it: in chunks (of 100 bytes, so that a stream longer
    /// than announced has chunks within the limit before the one past it).
    fn chunks(data: &[u8]) -> impl Iterator<Item = io::Result<Bytes>> + Send {
        data.chunks(100)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn ingest_and_unpack_stores_blob_and_layer_in_one_pass() {
        let td = tempfile::tempdir().expect("tempdir");
        let st = Store::open(td.path().join("s")).expect("store");
        let tar = layer_tar();
        let d = Digest::of(&tar);
        // Uncompressed layer: blob digest and diff id are the same.
        ingest_and_unpack(&st, chunks(&tar), &d, tar.len() as u64, &d).expect("ok");
        assert!(st.has_blob(&d));
        assert!(st.has_layer(&d));
        assert_eq!(
            std::fs::read(st.layer_path(&d).join("f")).expect("file"),
            b"hello"
        );
    }

    #[test]
    fn ingest_and_unpack_reports_a_damaged_blob_before_the_unpacker() {
        let td = tempfile::tempdir().expect("tempdir");
        let st = Store::open(td.path().join("s")).expect("store");
        let tar = layer_tar();
        let d = Digest::of(&tar);
        // Garbage of the announced size: the unpacker fails, the blob check names the cause.
        let junk = vec![7u8; tar.len()];
        let e = ingest_and_unpack(&st, chunks(&junk), &d, tar.len() as u64, &d).expect_err("junk");
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
        // Longer than announced: refused while streaming.
        let mut long = tar.clone();
        long.extend_from_slice(&[0u8; 1024]);
        let e = ingest_and_unpack(&st, chunks(&long), &d, tar.len() as u64, &d).expect_err("long");
        assert!(e.to_string().contains("more than"), "{e}");
        // Shorter: a size mismatch.
        let e = ingest_and_unpack(&st, chunks(&tar[..600]), &d, tar.len() as u64, &d)
            .expect_err("short");
        assert!(matches!(e, Error::SizeMismatch { .. }), "{e:?}");
        assert!(!st.has_blob(&d));
        assert!(st.list_blobs().expect("blobs").is_empty());
    }

    #[test]
    fn ingest_and_unpack_keeps_nothing_of_a_stream_that_did_not_end_cleanly() {
        let td = tempfile::tempdir().expect("tempdir");
        let st = Store::open(td.path().join("s")).expect("store");
        let tar = layer_tar();
        let d = Digest::of(&tar);
        let n = tar.len() as u64;
        // Every byte, then a transfer error: not committed, the error is the transfer's.
        let broken = chunks(&tar).chain(std::iter::once(Err(io::Error::other("reset by peer"))));
        let e = ingest_and_unpack(&st, broken, &d, n, &d).expect_err("broken");
        assert!(e.to_string().contains("reset by peer"), "{e}");
        // Exactly the announced bytes in one chunk, then more: refused, although what the
        // blob thread was given would match.
        let extra = [Ok(Bytes::from(tar.clone())), Ok(Bytes::from_static(b"x"))];
        let e = ingest_and_unpack(&st, extra.into_iter(), &d, n, &d).expect_err("extra");
        assert!(e.to_string().contains("more than"), "{e}");
        assert!(st.list_blobs().expect("blobs").is_empty(), "blob kept");
        assert!(!st.has_layer(&d), "layer kept");
        let ingest = std::fs::read_dir(td.path().join("s/ingest"))
            .expect("ingest dir")
            .count();
        assert_eq!(ingest, 0, "temp blob left behind");
    }

    #[test]
    fn a_layer_appears_only_after_its_blob_digest_matched() {
        let td = tempfile::tempdir().expect("tempdir");
        let st = Store::open(td.path().join("s")).expect("store");
        let tar = layer_tar();
        let diff_id = Digest::of(&tar);
        // The right content (its diff id matches) under a blob digest it does not have.
        let wrong = Digest::of(b"another blob");
        let e = ingest_and_unpack(&st, chunks(&tar), &wrong, tar.len() as u64, &diff_id)
            .expect_err("wrong blob digest");
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
        assert!(
            !st.has_layer(&diff_id),
            "layer published before its blob was verified"
        );
        assert!(!st.has_blob(&wrong));
        let layers = std::fs::read_dir(td.path().join("s/layers"))
            .expect("layers dir")
            .count();
        assert_eq!(layers, 0, "temp layer directory left behind");
    }

    #[test]
    fn insecure_only_for_loopback_and_listed() {
        assert!(is_insecure("127.0.0.1:5000", &[]));
        assert!(is_insecure("localhost:5000", &[]));
        assert!(is_insecure("[::1]:5000", &[]));
        assert!(!is_insecure("docker.io", &[]));
        assert!(!is_insecure("reg.example:5000", &[]));
        assert!(is_insecure(
            "reg.example:5000",
            &["reg.example:5000".into()]
        ));
        assert!(is_insecure("reg.example:5000", &["reg.example".into()]));
        assert!(!is_insecure("127.0.0.1.example.com", &[]));
    }

    #[test]
    fn only_429_5xx_and_connection_errors_are_retried() {
        let server = |code| OciDistributionError::ServerError {
            code,
            url: "http://127.0.0.1:1/v2/".into(),
            message: String::new(),
        };
        assert!(transient(&server(503)));
        assert!(transient(&server(429)));
        assert!(!transient(&server(404)));
        assert!(!transient(&OciDistributionError::UnauthorizedError {
            url: "u".into()
        }));
    }

    #[test]
    fn challenge_parsing() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:x:pull""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        let (s, p) = parse_challenge(r#"Basic realm="basic-realm""#);
        assert_eq!(s, "basic");
        assert_eq!(p["realm"], "basic-realm");
    }

    #[test]
    fn registry_names_normalize() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            normalize_registry("http://localhost:5000/v2/"),
            "localhost:5000"
        );
    }

    #[test]
    fn pull_and_push_futures_are_send() {
        fn send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let r: Reference = "127.0.0.1:1/x:y".parse().expect("ref");
        let o = RegistryOptions::default();
        let f = pull(store.clone(), &r, &o, &no_progress);
        send(&f);
        let g = push(store, &r, &o, &no_progress);
        send(&g);
    }
}
