//! The Docker Engine API client: HTTP/1.1 over the daemon's unix socket or TCP (with TLS;
//! see [`super::endpoint`]) (hyper 1), JSON bodies, streamed responses and hijacked
//! (upgraded) attach/exec connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::endpoint::{Conn, Endpoint};
use super::error::{Error, Result};

/// The API version the CLI speaks (dockerd 20.10's; barge's daemon serves it too).
pub const API_VERSION: &str = "1.41";

/// A client of one daemon.
pub struct Client {
    ep: Endpoint,
    /// Start a daemon in the background when none answers (only for the default socket, as root).
    autostart: bool,
    tried_autostart: AtomicBool,
    /// Extra headers sent with every request (none by default).
    pub user_agent: String,
}

/// Percent-encodes a query component.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds a query string (`?a=1&b=2`) from pairs, skipping none.
pub fn query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", k, enc(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

/// Turns `--filter k=v` flags into the API's JSON filter map (`{"k":["v",...]}`).
pub fn filters_json(filters: &[String]) -> Result<Option<String>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut map = serde_json::Map::new();
    for f in filters {
        let (k, v) = f.split_once('=').ok_or_else(|| {
            Error::Usage(format!("bad format of filter (expected name=value): {f}"))
        })?;
        let k = k.trim().to_lowercase();
        let e = map.entry(k).or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(a) = e {
            a.push(Value::String(v.to_string()));
        }
    }
    Ok(Some(Value::Object(map).to_string()))
}

/// A request body: whole bytes, or chunks produced on a thread (streamed, never held whole).
pub type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A request body of whole bytes.
pub fn bytes_body(b: Vec<u8>) -> ReqBody {
    Full::new(Bytes::from(b))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A streamed request body: `produce` writes it on a thread (tar builders, file copies).
/// An error while producing aborts the request.
pub fn writer_body<F>(produce: F) -> ReqBody
where
    F: FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    std::thread::spawn(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let r = produce(&mut w).and_then(|_| std::io::Write::flush(&mut w));
        if let Err(e) = r {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item.map(Frame::data), rx))
    });
    StreamBody::new(stream).boxed_unsync()
}

/// A streamed request body copied from a reader (a file, stdin).
pub fn reader_body(mut r: Box<dyn std::io::Read + Send>) -> ReqBody {
    writer_body(move |w| std::io::copy(&mut r, w).map(|_| ()))
}

const CHUNK: usize = 256 * 1024;

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "request aborted"))
    }
}

/// A response body read chunk by chunk.
pub struct Body(Incoming);

impl Body {
    /// The next data chunk, or None at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.0.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(Error::Msg(format!("reading response: {e}"))),
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        if !d.is_empty() {
                            return Ok(Some(d));
                        }
                    }
                }
            }
        }
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes> {
        self.0
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| Error::Msg(format!("reading response: {e}")))
    }
}

/// A hijacked connection: the raw stream after the HTTP upgrade.
pub struct Hijacked {
    /// The connection, positioned after the response headers.
    pub stream: Conn,
    /// Bytes read past the headers (the start of the stream).
    pub leftover: Vec<u8>,
}

impl Client {
    /// A client of `ep`; `autostart` lets it start a daemon when none answers.
    pub fn new(ep: Endpoint, autostart: bool) -> Client {
        Client {
            ep,
            autostart,
            tried_autostart: AtomicBool::new(false),
            user_agent: format!("barge/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Another client of the same daemon (never starting one).
    pub fn sibling(&self) -> Client {
        Client::new(self.ep.clone(), false)
    }

    async fn connect(&self) -> Result<Conn> {
        match self.ep.connect().await {
            Ok(s) => Ok(s),
            Err(e) => {
                if let (true, Some(sock)) = (self.autostart, self.ep.socket()) {
                    if !self.tried_autostart.swap(true, Ordering::SeqCst) {
                        super::autostart::start_daemon(sock).await?;
                        if let Ok(s) = self.ep.connect().await {
                            return Ok(s);
                        }
                    }
                }
                Err(Error::Connect(format!(
                    "Cannot connect to the barge daemon at {}. Is the barge daemon running? ({e})",
                    self.ep.url()
                )))
            }
        }
    }

    /// Sends one request; returns the response (any status).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let (body, ctype) = body.unwrap_or_default();
        self.raw_body(method, path, bytes_body(body), ctype, headers)
            .await
    }

    /// Sends one request with any body; returns the response (any status).
    pub async fn raw_body(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        ctype: &str,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Error::Connect(format!("handshake with the daemon: {}", chain(&e))))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let uri = if path == "/_ping" {
            path.to_string()
        } else {
            format!("/v{API_VERSION}{path}")
        };
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("Host", self.ep.authority())
            .header("User-Agent", &self.user_agent);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if !ctype.is_empty() {
            req = req.header("Content-Type", ctype);
        }
        let req = req
            .body(body)
            .map_err(|e| Error::Msg(format!("building request: {e}")))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| Error::Connect(format!("request to the daemon failed: {}", chain(&e))))
    }

    /// Sends a request and turns an error status into `Error::Api`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        headers: &[(&str, String)],
    ) -> Result<Body> {
        let (body, ctype) = body.unwrap_or_default();
        self.call_body(method, path, bytes_body(body), ctype, headers)
            .await
    }

    /// Like [`Client::call`] with any (e.g. streamed) body.
    pub async fn call_body(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        ctype: &str,
        headers: &[(&str, String)],
    ) -> Result<Body> {
        let resp = self.raw_body(method, path, body, ctype, headers).await?;
        let status = resp.status().as_u16();
        let body = Body(resp.into_body());
        if status >= 400 {
            let b = body.bytes().await.unwrap_or_default();
            return Err(Error::Api {
                status,
                message: error_message(&b),
            });
        }
        Ok(body)
    }

    /// GET returning JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        let b = self
            .call(Method::GET, path, None, &[])
            .await?
            .bytes()
            .await?;
        parse_json(&b)
    }

    /// POST with an optional JSON body, returning JSON (Null for an empty body).
    pub async fn post_json(&self, path: &str, body: Option<&Value>) -> Result<Value> {
        let body = body.map(|v| (v.to_string().into_bytes(), "application/json"));
        let b = self
            .call(Method::POST, path, body, &[])
            .await?
            .bytes()
            .await?;
        if b.iter().all(|c| c.is_ascii_whitespace()) {
            return Ok(Value::Null);
        }
        parse_json(&b)
    }

    /// DELETE returning JSON (Null for an empty body).
    pub async fn delete(&self, path: &str) -> Result<Value> {
        let b = self
            .call(Method::DELETE, path, None, &[])
            .await?
            .bytes()
            .await?;
        if b.iter().all(|c| c.is_ascii_whitespace()) {
            return Ok(Value::Null);
        }
        parse_json(&b)
    }

    /// POST and hijack the connection (attach, exec start), as the docker CLI does.
    pub async fn hijack(&self, path: &str, body: Option<&Value>) -> Result<Hijacked> {
        let mut stream = self.connect().await?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "POST /v{API_VERSION}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            self.ep.authority(),
            self.user_agent,
            body.len(),
            body
        );
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::with_capacity(1024);
        let mut tmp = [0u8; 4096];
        let end = loop {
            let n = stream.read(&mut tmp).await?;
            if n == 0 {
                return Err(Error::Msg("the daemon closed the connection".into()));
            }
            buf.extend_from_slice(&tmp[..n]);
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > 64 * 1024 {
                return Err(Error::Msg("response headers too long".into()));
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Msg("malformed response from the daemon".into()))?;
        let mut leftover = buf[end..].to_vec();
        if status >= 400 {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while leftover.len() < len {
                let n = stream.read(&mut tmp).await?;
                if n == 0 {
                    break;
                }
                leftover.extend_from_slice(&tmp[..n]);
            }
            return Err(Error::Api {
                status,
                message: error_message(&leftover),
            });
        }
        Ok(Hijacked { stream, leftover })
    }

    /// Waits until the daemon answers `_ping`, up to `timeout` (plain HTTP/1.0, no autostart).
    pub async fn wait_ping(&self, timeout: Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if let Ok(mut s) = self.ep.connect().await {
                let mut buf = vec![0u8; 64];
                if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: barge\r\n\r\n")
                    .await
                    .is_ok()
                {
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await
                    {
                        if String::from_utf8_lossy(&buf[..n]).contains(" 200") {
                            return true;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// An error with its causes (`a: b: c`): hyper's own message alone hides a TLS alert.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s = format!("{s}: {m}");
        }
        src = c.source();
    }
    s
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// The `message` of an error body, or the body as text.
pub fn error_message(b: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(b) {
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
    }
    String::from_utf8_lossy(b).trim().to_string()
}

/// Parses a JSON body.
pub fn parse_json(b: &[u8]) -> Result<Value> {
    serde_json::from_slice(b).map_err(|e| Error::Msg(format!("bad JSON from the daemon: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_filters() {
        assert_eq!(enc("a b/c=d"), "a%20b%2Fc%3Dd");
        assert_eq!(
            query(&[("all", "1".into()), ("x", "a&b".into())]),
            "?all=1&x=a%26b"
        );
        let f = filters_json(&[
            "status=exited".into(),
            "label=a=b".into(),
            "status=created".into(),
        ])
        .unwrap()
        .unwrap();
        let v: Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["status"], serde_json::json!(["exited", "created"]));
        assert_eq!(v["label"], serde_json::json!(["a=b"]));
        assert!(filters_json(&["nope".into()]).is_err());
        assert_eq!(error_message(br#"{"message":"boom"}"#), "boom");
        assert_eq!(error_message(b"plain\n"), "plain");
    }
}
