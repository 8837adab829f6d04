//! The per-network DNS service: answers A and AAAA queries for the names and aliases of the containers
//! on one network, forwards every other query to the host's resolvers (UDP), and refuses
//! clients that are not on the network.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::ipam::Ipv4Net;

/// Name (lower case, no trailing dot) -> addresses.
pub(crate) type Records = Arc<RwLock<HashMap<String, Vec<IpAddr>>>>;

/// Client address -> name (lower case) -> addresses: the links of one container, which only
/// it resolves.
pub(crate) type LinkRecords = Arc<RwLock<HashMap<Ipv4Addr, HashMap<String, Vec<IpAddr>>>>>;

/// A running DNS server; dropping it stops it.
pub(crate) struct DnsServer {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub records: Records,
    pub links: LinkRecords,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Ctx {
    records: Records,
    links: LinkRecords,
    subnet: Ipv4Net,
    upstreams: Vec<Ipv4Addr>,
}

impl DnsServer {
    /// Binds UDP and TCP port 53 on `addr` (in the calling thread's network namespace) and
    /// serves from a dedicated thread.
    pub fn start(addr: Ipv4Addr, subnet: Ipv4Net, upstreams: Vec<Ipv4Addr>) -> io::Result<Self> {
        Self::start_on(SocketAddr::from((addr, 53)), subnet, upstreams)
    }

    pub fn start_on(
        bind: SocketAddr,
        subnet: Ipv4Net,
        upstreams: Vec<Ipv4Addr>,
    ) -> io::Result<Self> {
        let udp = std::net::UdpSocket::bind(bind)?;
        udp.set_nonblocking(true)?;
        let tcp = std::net::TcpListener::bind(bind)?;
        tcp.set_nonblocking(true)?;
        let records: Records = Arc::default();
        let links: LinkRecords = Arc::default();
        let ctx = Arc::new(Ctx {
            records: records.clone(),
            links: links.clone(),
            subnet,
            upstreams,
        });
        let (tx, rx) = oneshot::channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("barge-dns-{bind}"))
            .spawn(move || {
                rt.block_on(async move {
                    let (udp, tcp) = match (
                        tokio::net::UdpSocket::from_std(udp),
                        tokio::net::TcpListener::from_std(tcp),
                    ) {
                        (Ok(u), Ok(t)) => (Arc::new(u), t),
                        _ => return,
                    };
                    tokio::select! {
                        _ = rx => {}
                        _ = serve_udp(udp, ctx.clone()) => {}
                        _ = serve_tcp(tcp, ctx) => {}
                    }
                })
            })?;
        Ok(Self {
            stop: Some(tx),
            thread: Some(thread),
            records,
            links,
        })
    }
}

async fn serve_udp(sock: Arc<tokio::net::UdpSocket>, ctx: Arc<Ctx>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let q = buf[..n].to_vec();
        let (sock, ctx) = (sock.clone(), ctx.clone());
        tokio::spawn(async move {
            if let Some(resp) = handle(&ctx, peer, &q).await {
                let _ = sock.send_to(&resp, peer).await;
            }
        });
    }
}

async fn serve_tcp(l: tokio::net::TcpListener, ctx: Arc<Ctx>) {
    loop {
        let Ok((mut s, peer)) = l.accept().await else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    let mut len = [0u8; 2];
                    s.read_exact(&mut len).await?;
                    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                    s.read_exact(&mut q).await?;
                    let Some(resp) = handle(&ctx, peer, &q).await else {
                        return Ok::<(), io::Error>(());
                    };
                    let n = u16::try_from(resp.len()).unwrap_or(0).to_be_bytes();
                    s.write_all(&n).await?;
                    s.write_all(&resp).await?;
                }
            })
            .await;
        });
    }
}

async fn handle(ctx: &Ctx, peer: SocketAddr, q: &[u8]) -> Option<Vec<u8>> {
    let query = parse_query(q)?;
    let from_net = match peer.ip() {
        std::net::IpAddr::V4(ip) => ctx.subnet.contains(ip),
        _ => false,
    };
    if !from_net {
        return Some(response(q, &query, RCODE_REFUSED, &[]));
    }
    let client = match peer.ip() {
        std::net::IpAddr::V4(ip) => Some(ip),
        _ => None,
    };
    // The asking container's links first: an alias of its own shadows the network's names.
    let linked = client.and_then(|ip| {
        ctx.links
            .read()
            .ok()
            .and_then(|l| l.get(&ip).and_then(|m| m.get(&query.name)).cloned())
    });
    let known = linked.or_else(|| {
        ctx.records
            .read()
            .ok()
            .and_then(|r| r.get(&query.name).cloned())
    });
    if let Some(ips) = known {
        // a known name without an address of the asked type: no error, no answer (NODATA)
        let ans: Vec<IpAddr> = ips
            .into_iter()
            .filter(|ip| match ip {
                IpAddr::V4(_) => query.qtype == TYPE_A,
                IpAddr::V6(_) => query.qtype == TYPE_AAAA,
            })
            .collect();
        return Some(response(q, &query, 0, &ans));
    }
    if ctx.upstreams.is_empty() {
        return Some(response(q, &query, RCODE_NXDOMAIN, &[]));
    }
    for up in &ctx.upstreams {
        if let Some(r) = forward(q, *up).await {
            return Some(r);
        }
    }
    Some(response(q, &query, RCODE_SERVFAIL, &[]))
}

async fn forward(q: &[u8], up: Ipv4Addr) -> Option<Vec<u8>> {
    let s = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .await
        .ok()?;
    s.send_to(q, (up, 53)).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (n, from) = tokio::time::timeout_at(deadline, s.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        if from.ip() == std::net::IpAddr::V4(up) && n >= 2 && buf[..2] == q[..2] {
            return Some(buf[..n].to_vec());
        }
    }
}

pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_AAAA: u16 = 28;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_REFUSED: u8 = 5;
pub(crate) const RCODE_NXDOMAIN: u8 = 3;

pub(crate) struct Query {
    pub name: String,
    pub qtype: u16,
    /// Byte offset just past the question section.
    pub end: usize,
}

/// Parses the single question of a standard query.
pub(crate) fn parse_query(q: &[u8]) -> Option<Query> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let l = *q.get(i)? as usize;
        i += 1;
        if l == 0 {
            break;
        }
        if l & 0xc0 != 0 {
            return None;
        }
        let label = q.get(i..i + l)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += l;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    i += 4;
    if i > q.len() {
        return None;
    }
    Some(Query {
        name: labels.join("."),
        qtype,
        end: i,
    })
}

/// Builds a response to `q` with `rcode` and A/AAAA records `ips`.
fn response(q: &[u8], query: &Query, rcode: u8, ips: &[IpAddr]) -> Vec<u8> {
    let mut r = Vec::with_capacity(query.end + ips.len() * 16);
    r.extend_from_slice(&q[..2]);
    let rd = q[2] & 0x01;
    r.push(0x80 | 0x04 | rd); // QR, AA, RD copied
    r.push(0x80 | (rcode & 0x0f)); // RA
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&q[12..query.end]);
    for ip in ips {
        let (ty, data) = match ip {
            IpAddr::V4(a) => (TYPE_A, a.octets().to_vec()),
            IpAddr::V6(a) => (TYPE_AAAA, a.octets().to_vec()),
        };
        r.extend_from_slice(&[0xc0, 0x0c]);
        r.extend_from_slice(&ty.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&600u32.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(&data);
    }
    r
}

/// Builds a query (for tests).
#[cfg(test)]
pub(crate) fn build_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.trim_end_matches('.').split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// Parses a response: (rcode, A addresses). For tests.
#[cfg(test)]
pub(crate) fn parse_response(r: &[u8]) -> Option<(u8, Vec<Ipv4Addr>)> {
    let (rcode, ips) = parse_response_all(r)?;
    let v4 = ips
        .into_iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect();
    Some((rcode, v4))
}

/// Parses a response: (rcode, A and AAAA addresses). For tests.
#[cfg(test)]
pub(crate) fn parse_response_all(r: &[u8]) -> Option<(u8, Vec<IpAddr>)> {
    if r.len() < 12 {
        return None;
    }
    let q = {
        let mut fake = r.to_vec();
        fake[2] &= 0x7f;
        fake[6] = 0;
        fake[7] = 0;
        parse_query(&fake)?
    };
    let rcode = r[3] & 0x0f;
    let an = u16::from_be_bytes([r[6], r[7]]);
    let mut i = q.end;
    let mut ips = Vec::new();
    for _ in 0..an {
        // name: pointer or labels
        if *r.get(i)? & 0xc0 == 0xc0 {
            i += 2;
        } else {
            while *r.get(i)? != 0 {
                i += 1 + *r.get(i)? as usize;
            }
            i += 1;
        }
        let t = u16::from_be_bytes([*r.get(i)?, *r.get(i + 1)?]);
        let len = u16::from_be_bytes([*r.get(i + 8)?, *r.get(i + 9)?]) as usize;
        i += 10;
        if t == TYPE_A && len == 4 {
            let b = r.get(i..i + 4)?;
            ips.push(IpAddr::from([b[0], b[1], b[2], b[3]]));
        }
        if t == TYPE_AAAA && len == 16 {
            let b: [u8; 16] = r.get(i..i + 16)?.try_into().ok()?;
            ips.push(IpAddr::from(b));
        }
        i += len;
    }
    Some((rcode, ips))
}

/// Nameservers of a resolv.conf text.
pub(crate) fn nameservers(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next().map(str::to_string))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_roundtrip() {
        let q = build_query(7, "Web.example", TYPE_A);
        let p = parse_query(&q).unwrap();
        assert_eq!(p.name, "web.example");
        assert_eq!(p.qtype, TYPE_A);
        let r = response(&q, &p, 0, &[Ipv4Addr::new(10, 0, 0, 2).into()]);
        assert_eq!(
            parse_response(&r).unwrap(),
            (0, vec![Ipv4Addr::new(10, 0, 0, 2)])
        );
        assert!(parse_query(&r).is_none(), "a response is not a query");
        assert!(parse_query(&q[..10]).is_none());
        assert!(parse_query(&q[..q.len() - 1]).is_none());
    }

    #[test]
    fn hostile_packets_do_not_panic() {
        let q = build_query(9, "some.name.example", TYPE_A);
        let mut seed = 0x2545_f491_u32;
        for len in 0..q.len() + 8 {
            for _ in 0..200 {
                let mut p: Vec<u8> = q.iter().copied().chain([0xc0, 0xff, 0x3f, 0]).collect();
                p.truncate(len);
                for b in p.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    if seed % 7 == 0 {
                        *b = seed as u8;
                    }
                }
                if let Some(parsed) = parse_query(&p) {
                    assert!(parsed.end <= p.len());
                    let r = response(&p, &parsed, 0, &[Ipv4Addr::LOCALHOST.into()]);
                    assert!(r.len() > parsed.end);
                }
                let _ = parse_response(&p);
            }
        }
    }

    #[test]
    fn aaaa_answers() {
        let q = build_query(8, "web", TYPE_AAAA);
        let p = parse_query(&q).unwrap();
        let v6: IpAddr = "fd00:db8:1::2".parse().unwrap();
        let r = response(&q, &p, 0, &[v6]);
        assert_eq!(parse_response_all(&r).unwrap(), (0, vec![v6]));
        // the answer's RDATA is the 16 address bytes
        assert_eq!(&r[r.len() - 16..], &v6_octets(v6)[..]);
    }

    fn v6_octets(ip: IpAddr) -> [u8; 16] {
        match ip {
            IpAddr::V6(a) => a.octets(),
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        }
    }

    #[test]
    fn resolv_conf_nameservers() {
        let t = "# c\nnameserver 127.0.0.53\nsearch x\nnameserver 10.0.0.1\nnameserver\n";
        assert_eq!(nameservers(t), vec!["127.0.0.53", "10.0.0.1"]);
    }
}
