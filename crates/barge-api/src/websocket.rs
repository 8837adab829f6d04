//! The server side of RFC 6455 websockets, as much as `GET /containers/{id}/attach/ws`
//! needs: the opening handshake, and a bridge that turns the upgraded connection into a
//! plain byte stream (what the client sends in data frames in, each write out as one frame).
//!
//! A small frame codec of our own instead of a websocket crate: the attach uses none of
//! extensions, subprotocols or fragmented sends, and the bridge lets the attach code stay
//! the one the hijacked endpoint runs.

use std::sync::Arc;

use base64::Engine as _;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::Response;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::Mutex;

use crate::util::{status, Body};

/// RFC 6455's GUID, appended to the client's key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest client frame accepted (stdin arrives in small pieces; this bounds memory).
const MAX_FRAME: u64 = 16 << 20;

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Checks an opening handshake's headers; returns the `Sec-WebSocket-Accept` value, or what
/// is wrong with the request.
pub fn accept(h: &HeaderMap) -> Result<String, String> {
    let has = |name: &str, want: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(want))
        })
    };
    if !has("upgrade", "websocket") || !has("connection", "upgrade") {
        return Err(
            "not a websocket handshake: want \"Upgrade: websocket\" and \"Connection: Upgrade\""
                .into(),
        );
    }
    if !has("sec-websocket-version", "13") {
        return Err("unsupported websocket version: want Sec-WebSocket-Version: 13".into());
    }
    let key = h
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k)
                .is_ok_and(|b| b.len() == 16)
        })
        .ok_or("missing or malformed Sec-WebSocket-Key")?;
    Ok(accept_key(key))
}

/// `base64(SHA-1(key + GUID))` (RFC 6455 section 4.2.2).
fn accept_key(key: &str) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(d.as_ref())
}

/// The `101 Switching Protocols` answer to a handshake accepted with `accept`.
pub fn switching_protocols(accept: &str) -> Response<Body> {
    let mut r = status(101);
    let h = r.headers_mut();
    h.insert("Upgrade", HeaderValue::from_static("websocket"));
    h.insert("Connection", HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(accept) {
        h.insert("Sec-WebSocket-Accept", v);
    }
    r
}

/// The header of an unmasked (server) frame with FIN set.
fn frame_header(op: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0x80 | op];
    if len < 126 {
        f.push(len as u8);
    } else if len <= 0xffff {
        f.push(126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    f
}

/// Writes one frame; the lock keeps frames of the two pumps from interleaving.
async fn send<W: AsyncWrite + Unpin>(w: &Mutex<W>, op: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut f = frame_header(op, payload.len());
    f.extend_from_slice(payload);
    let mut w = w.lock().await;
    w.write_all(&f).await?;
    w.flush().await
}

/// One frame from the client: (opcode, unmasked payload); None at EOF or on a protocol
/// error (unmasked or oversized frame), after which the connection is dropped.
async fn recv<R: AsyncRead + Unpin>(r: &mut R) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).await.ok()?;
    let op = h[0] & 0x0f;
    // Clients must mask (RFC 6455 5.1); a server must close on an unmasked frame.
    if h[1] & 0x80 == 0 {
        return None;
    }
    let len = match h[1] & 0x7f {
        126 => u64::from(r.read_u16().await.ok()?),
        127 => r.read_u64().await.ok()?,
        n => u64::from(n),
    };
    if len > MAX_FRAME {
        return None;
    }
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask).await.ok()?;
    let mut data = vec![0u8; len as usize];
    r.read_exact(&mut data).await.ok()?;
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Some((op, data))
}

/// Bridges the websocket on `conn` to a byte stream, which is returned: what is written to
/// it goes to the client, a frame per write (binary frames, or text ones when `binary` is
/// false, as dockerd before API 1.28); the payloads of the client's data frames are read
/// from it. Pings are answered; a close frame (or EOF) from the client ends both sides;
/// the end of the writing side sends a close frame.
pub fn bridge<S>(conn: S, binary: bool) -> DuplexStream
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(64 << 10);
    let (mut from_client, to_client) = tokio::io::split(conn);
    let to_client = Arc::new(Mutex::new(to_client));
    let (mut rd, mut wr) = tokio::io::split(ours);
    let out = to_client.clone();
    let mut outgoing = tokio::spawn(async move {
        let op = if binary { OP_BINARY } else { OP_TEXT };
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if send(&out, op, &buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        // 1000: normal closure.
        let _ = send(&out, OP_CLOSE, &1000u16.to_be_bytes()).await;
        let _ = out.lock().await.shutdown().await;
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut outgoing => return,
                f = recv(&mut from_client) => match f {
                    Some((OP_TEXT | OP_BINARY | OP_CONT, data)) => {
                        if wr.write_all(&data).await.is_err() {
                            break;
                        }
                    }
                    Some((OP_PING, data)) => {
                        let _ = send(&to_client, OP_PONG, &data).await;
                    }
                    Some((OP_PONG, _)) => {}
                    Some((OP_CLOSE, data)) => {
                        // Echo the status code back (RFC 6455 5.5.1); stdin ends.
                        let code = data.get(..2).unwrap_or(&[0x03, 0xe8]).to_vec();
                        let _ = send(&to_client, OP_CLOSE, &code).await;
                        break;
                    }
                    _ => break,
                }
            }
        }
        // The client is done (closed, gone or broke the protocol): stdin ends, and so does
        // the output, which nobody reads any more.
        let _ = wr.shutdown().await;
        outgoing.abort();
        let _ = to_client.lock().await.shutdown().await;
    });
    theirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_is_rfc_6455s_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn handshakes_without_the_websocket_headers_are_refused_by_name() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert("sec-websocket-version", HeaderValue::from_static("13"));
        assert!(accept(&h).unwrap_err().contains("Sec-WebSocket-Key"));
        h.insert(
            "sec-websocket-key",
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert_eq!(accept(&h).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        h.insert("sec-websocket-version", HeaderValue::from_static("8"));
        assert!(accept(&h).unwrap_err().contains("version"));
        h.remove("upgrade");
        assert!(accept(&h).unwrap_err().contains("Upgrade: websocket"));
    }

    #[test]
    fn frame_lengths_use_the_short_16_and_64_bit_forms() {
        assert_eq!(frame_header(OP_BINARY, 5), vec![0x82, 5]);
        assert_eq!(frame_header(OP_TEXT, 300), vec![0x81, 126, 1, 44]);
        assert_eq!(
            frame_header(OP_BINARY, 70000),
            vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
    }

    #[tokio::test]
    async fn client_frames_are_unmasked_and_pings_answered() {
        let (client, server) = tokio::io::duplex(4096);
        let mut bytes = bridge(server, true);
        let (mut cr, mut cw) = tokio::io::split(client);
        let masked = |op: u8, p: &[u8]| {
            let mask = [1u8, 2, 3, 4];
            let mut f = vec![0x80 | op, 0x80 | p.len() as u8];
            f.extend_from_slice(&mask);
            f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            f
        };
        cw.write_all(&masked(OP_PING, b"hey")).await.unwrap();
        let mut pong = [0u8; 5];
        cr.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, &[0x8A, 3, b'h', b'e', b'y']);
        cw.write_all(&masked(OP_TEXT, b"stdin\n")).await.unwrap();
        let mut got = [0u8; 6];
        bytes.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"stdin\n");
        bytes.write_all(b"out").await.unwrap();
        let mut f = [0u8; 5];
        cr.read_exact(&mut f).await.unwrap();
        assert_eq!(&f, &[0x82, 3, b'o', b'u', b't']);
        // Close from the client: echoed, and stdin ends.
        cw.write_all(&masked(OP_CLOSE, &1000u16.to_be_bytes()))
            .await
            .unwrap();
        let mut c = [0u8; 4];
        cr.read_exact(&mut c).await.unwrap();
        assert_eq!(&c, &[0x88, 2, 0x03, 0xe8]);
        let mut rest = Vec::new();
        bytes.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
}
