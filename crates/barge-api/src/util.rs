//! Response helpers, errors, query strings, framing.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::Response;

/// The response body type.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

/// An API error: a status and Docker's `{"message": ...}` body.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: u16, message: String) -> ApiError {
        ApiError { status, message }
    }

    /// The HTTP response.
    pub fn into_response(self) -> Response<Body> {
        if self.status == 304 {
            let mut r = Response::new(empty());
            *r.status_mut() = hyper::StatusCode::NOT_MODIFIED;
            return r;
        }
        json_response(self.status, &serde_json::json!({"message": self.message}))
    }
}

impl From<barge_engine::Error> for ApiError {
    fn from(e: barge_engine::Error) -> Self {
        ApiError::new(e.status(), e.to_string())
    }
}

impl From<barge_image::Error> for ApiError {
    fn from(e: barge_image::Error) -> Self {
        barge_engine::Error::from(e).into()
    }
}

/// An empty body.
pub fn empty() -> Body {
    Full::new(Bytes::new()).boxed_unsync()
}

/// A body of bytes.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed_unsync()
}

/// A JSON response.
pub fn json_response(status: u16, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A status-only response.
pub fn status(code: u16) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    r
}

/// A streamed body fed by a channel.
pub fn channel_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    let s = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    http_body_util::StreamBody::new(s).boxed_unsync()
}

/// A parsed query string, with the API version the path asked for (`/v1.41/...`): a few
/// endpoints keep the behaviour older versions documented.
#[derive(Debug, Default)]
pub struct Query(
    HashMap<String, String>,
    HashMap<String, Vec<String>>,
    Option<u32>,
);

fn unescape(s: &str) -> String {
    unescape_with(s, true)
}

/// Percent-decodes one path segment (`+` stays `+`): clients may escape `:` and `/` in
/// names (`/images/committed%3Av1/history`).
pub fn path_unescape(s: &str) -> String {
    if s.contains('%') {
        unescape_with(s, false)
    } else {
        s.to_string()
    }
}

fn unescape_with(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes `%XX` escapes of a URL path (`+` stays as is): clients escape the `:` and `/`
/// of image names in paths such as `/images/{name}/tag`.
pub fn decode_path(p: &str) -> String {
    if !p.contains('%') {
        return p.to_string();
    }
    unescape(&p.replace('+', "%2B"))
}

impl Query {
    /// The query of a request whose path named API version 1.`minor` (`None`: no version
    /// in the path, i.e. the current one).
    pub fn with_api_minor(mut self, minor: Option<u32>) -> Query {
        self.2 = minor;
        self
    }

    /// Whether the request asked for an API version older than 1.`minor`.
    pub fn api_before(&self, minor: u32) -> bool {
        self.2.is_some_and(|m| m < minor)
    }

    /// Parses `a=b&c=d`.
    pub fn parse(q: &str) -> Query {
        let mut m = HashMap::new();
        let mut all: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in Query::pairs(q) {
            all.entry(k.clone()).or_default().push(v.clone());
            m.insert(k, v);
        }
        Query(m, all, None)
    }

    /// Every value of a key that may repeat (`changes` of commit and import), in order.
    pub fn all(&self, k: &str) -> &[String] {
        self.1.get(k).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every `key=value` pair of `q` in order, decoded (keys may repeat, as `t` of `/build`).
    pub fn pairs(q: &str) -> Vec<(String, String)> {
        q.split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (unescape(k), unescape(v))
            })
            .collect()
    }

    /// A value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// A boolean as dockerd reads one (`httputils.BoolValue`): present and not one of "",
    /// `0`, `no`, `false`, `none` (any case). docker-py sends Python's `True`/`False`.
    pub fn bool(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            )
        })
    }

    /// [`Query::bool`], or `default` when the key is absent (`BoolValueOrDefault`).
    pub fn bool_or(&self, k: &str, default: bool) -> bool {
        match self.get(k) {
            None => default,
            Some(_) => self.bool(k),
        }
    }

    /// An integer, or 400.
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::new(400, format!("invalid value for {k}: {v:?}"))),
        }
    }

    /// [`Query::filters`] where only the keys in `known` are allowed: any other is a 400
    /// naming it, as Docker answers (an ignored filter would list too much).
    pub fn filters_of(&self, known: &[&str]) -> Result<HashMap<String, Vec<String>>, ApiError> {
        let f = self.filters()?;
        if let Some(k) = f.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ApiError::new(400, format!("invalid filter '{k}'")));
        }
        Ok(f)
    }

    /// `filters` as a map of key -> values (Docker's two JSON shapes).
    pub fn filters(&self) -> Result<HashMap<String, Vec<String>>, ApiError> {
        let Some(f) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(HashMap::new());
        };
        let v: serde_json::Value = serde_json::from_str(f)
            .map_err(|e| ApiError::new(400, format!("invalid filter: {e}")))?;
        let mut out = HashMap::new();
        let obj = v
            .as_object()
            .ok_or_else(|| ApiError::new(400, "invalid filter: not an object".into()))?;
        for (k, vals) in obj {
            let list = match vals {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                serde_json::Value::Object(o) => o.keys().cloned().collect(),
                _ => return Err(ApiError::new(400, format!("invalid filter {k}"))),
            };
            out.insert(k.clone(), list);
        }
        Ok(out)
    }
}

/// Docker's `label` filter: every `key` or `key=value` in `wanted` must match (labels are
/// ANDed, unlike the values of other filter keys, which are ORed); `get` looks a label up.
/// docker-compose depends on this: it finds a service's containers by
/// `label=com.docker.compose.project=P` plus `label=com.docker.compose.service=S`.
pub fn labels_match<'a>(get: impl Fn(&str) -> Option<&'a str>, wanted: &[String]) -> bool {
    wanted.iter().all(|l| match l.split_once('=') {
        Some((k, v)) => get(k) == Some(v),
        None => get(l).is_some(),
    })
}

/// The `filters` of a prune (`POST /{containers,images,networks,volumes}/prune`), as
/// dockerd reads them: `until` (only what was created before it: unix seconds, RFC 3339 or
/// a Go duration back from now), `label` (every `key` or `key=value` must match) and
/// `label!` (not pruned when every one of them matches).
pub struct PruneFilters {
    until: Option<f64>,
    labels: Vec<String>,
    not_labels: Vec<String>,
}

impl PruneFilters {
    /// Reads the filters; `extra` are the other keys this prune allows (`all`,
    /// `dangling`): those are the caller's. Any other key, or a bad `until`, is a 400.
    pub fn parse(
        f: &HashMap<String, Vec<String>>,
        with_until: bool,
        extra: &[&str],
    ) -> Result<PruneFilters, ApiError> {
        let known = |k: &str| {
            matches!(k, "label" | "label!") || (with_until && k == "until") || extra.contains(&k)
        };
        if let Some(k) = f.keys().find(|k| !known(k)) {
            return Err(ApiError::new(400, format!("invalid filter '{k}'")));
        }
        let until = match f.get("until").map(Vec::as_slice) {
            None | Some([]) => None,
            Some([u]) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as i64)
                    .unwrap_or(0);
                let t = barge_util::time::docker_timestamp(u, now)
                    .and_then(|t| t.parse::<f64>().ok())
                    .ok_or_else(|| {
                        ApiError::new(
                            400,
                            format!("invalid filter 'until={u}': not a timestamp or duration"),
                        )
                    })?;
                Some(t)
            }
            Some(_) => {
                return Err(ApiError::new(
                    400,
                    "more than one until filter specified".into(),
                ))
            }
        };
        Ok(PruneFilters {
            until,
            labels: f.get("label").cloned().unwrap_or_default(),
            not_labels: f.get("label!").cloned().unwrap_or_default(),
        })
    }

    /// True when something created at `created` (unix seconds) with labels found by
    /// `get` may be pruned.
    pub fn selects<'a>(&self, created: f64, get: impl Fn(&str) -> Option<&'a str> + Copy) -> bool {
        self.until.is_none_or(|u| created < u)
            && labels_match(get, &self.labels)
            && (self.not_labels.is_empty() || !labels_match(get, &self.not_labels))
    }

    /// [`PruneFilters::selects`] with labels in a JSON object.
    pub fn selects_json(&self, created: f64, labels: Option<&serde_json::Value>) -> bool {
        self.selects(created, |k| {
            labels
                .and_then(|l| l.get(k))
                .and_then(serde_json::Value::as_str)
        })
    }
}

/// [`labels_match`] on a JSON object of labels (`{"k": "v"}`), as containers and networks
/// keep them.
pub fn json_labels_match(labels: Option<&serde_json::Value>, wanted: &[String]) -> bool {
    labels_match(
        |k| {
            labels
                .and_then(|l| l.get(k))
                .and_then(serde_json::Value::as_str)
        },
        wanted,
    )
}

/// The minor API version a request path asks for (`/v1.41/...` -> 41); a path without
/// one gets the current version, as dockerd serves it.
pub fn api_minor(path: &str) -> u32 {
    let current = || {
        crate::API_VERSION
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    };
    path.strip_prefix("/v1.")
        .and_then(|r| r.split('/').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(current)
}

/// The bytes of a detach-key sequence as Docker writes it (`ctrl-p,ctrl-q`, the default
/// when empty; `a`; `ctrl-@`, `ctrl-[` .. `ctrl-_`).
pub fn detach_keys(spec: &str) -> Result<Vec<u8>, String> {
    let spec = if spec.is_empty() {
        "ctrl-p,ctrl-q"
    } else {
        spec
    };
    let bad = || format!("Invalid detach keys ({spec}) provided");
    let mut out = Vec::new();
    for key in spec.split(',') {
        if key.len() == 1 {
            out.push(key.as_bytes()[0]);
            continue;
        }
        let k = key.to_ascii_lowercase();
        let c = match k.strip_prefix("ctrl-").map(str::as_bytes) {
            Some([c @ b'a'..=b'z']) => c - b'a' + 1,
            Some([b'@']) => 0,
            Some([c @ b'['..=b'_']) => c - b'[' + 27,
            _ => return Err(bad()),
        };
        out.push(c);
    }
    Ok(out)
}

/// Copies `r` to `w` until `r` ends (false) or the detach sequence `keys` arrives (true);
/// the sequence is not passed on, a partial one is once it breaks (Docker's escape proxy).
pub async fn copy_detachable<R, W>(r: &mut R, w: &mut W, keys: &[u8]) -> bool
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut matched = 0usize;
    let mut buf = vec![0u8; 16384];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n + keys.len());
        for &b in &buf[..n] {
            if keys.get(matched) == Some(&b) {
                matched += 1;
                if matched == keys.len() {
                    let _ = w.write_all(&out).await;
                    return true;
                }
                continue;
            }
            out.extend_from_slice(&keys[..matched]);
            matched = 0;
            if keys.first() == Some(&b) {
                matched = 1;
                if keys.len() == 1 {
                    let _ = w.write_all(&out).await;
                    return true;
                }
            } else {
                out.push(b);
            }
        }
        if w.write_all(&out).await.is_err() || w.flush().await.is_err() {
            return false;
        }
    }
}

/// The unix socket of a request's connection (a request extension; none over TLS).
#[derive(Clone, Copy, Debug)]
pub struct PeerSocket(pub std::os::fd::RawFd);

/// After a hijack's 101 response: waits (up to 200 ms) until the client has read it, i.e.
/// the unix socket holds no unread bytes (SIOCOUTQ), before the stream's first bytes go
/// out. Clients that read the response headers through a buffer and then the stream from
/// the raw socket (docker-py) lose whatever arrived together with the headers: the first
/// output of a quick exec, the logs of `attach?logs=1&stream=0`.
pub async fn wait_headers_read(peer: Option<PeerSocket>) {
    let Some(PeerSocket(fd)) = peer else { return };
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(200) {
        let mut queued: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (TIOCOUTQ) on the connection's socket, which the upgraded
        // connection keeps open while this runs, into a c_int.
        let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
        if r != 0 || queued == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// A frame of Docker's multiplexed stream.
pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + data.len());
    f.push(stream);
    f.extend_from_slice(&[0, 0, 0]);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// The kernel release.
pub fn uname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Go's name of this architecture.
pub fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// (memory bytes, cpus).
pub fn host_resources() -> (u64, usize) {
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|x| x.parse::<u64>().ok())
                })
        })
        .unwrap_or(0)
        * 1024;
    (
        mem,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    )
}

/// Docker's human "Up 3 seconds" / "Exited (0) 2 minutes ago" durations.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if s < 120 {
        "About a minute".into()
    } else if s < 3600 {
        format!("{} minutes", s / 60)
    } else if s < 7200 {
        "About an hour".into()
    } else if s < 48 * 3600 {
        format!("{} hours", s / 3600)
    } else {
        format!("{} days", s / 86400)
    }
}

#[cfg(test)]
mod query_tests {
    use super::*;

    #[test]
    fn paths_are_percent_decoded_but_plus_is_kept() {
        assert_eq!(
            decode_path("/images/busybox%3Alatest/tag"),
            "/images/busybox:latest/tag"
        );
        assert_eq!(decode_path("/images/a+b%2Fc/json"), "/images/a+b/c/json");
        assert_eq!(decode_path("/containers/json"), "/containers/json");
    }

    #[test]
    fn pairs_keep_repeated_keys_in_order() {
        let p = Query::pairs("t=a%3A1&t=b&buildargs=%7B%7D&q");
        assert_eq!(
            p,
            vec![
                ("t".to_string(), "a:1".to_string()),
                ("t".into(), "b".into()),
                ("buildargs".into(), "{}".into()),
                ("q".into(), String::new()),
            ]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_filters_are_anded() {
        let l = serde_json::json!({"p": "app", "s": "web", "flag": ""});
        let m = |w: &[&str]| {
            let w: Vec<String> = w.iter().map(|x| x.to_string()).collect();
            json_labels_match(Some(&l), &w)
        };
        assert!(m(&["p=app", "s=web"]));
        assert!(!m(&["p=app", "s=db"]), "one label off is no match");
        assert!(m(&["flag", "p"]), "a bare key needs only the label");
        assert!(!m(&["p=ap"]));
        assert!(m(&[]));
        assert!(!json_labels_match(None, &["p".to_string()]));
    }
}
