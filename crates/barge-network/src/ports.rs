//! Published-port specifications (`-p [ip:][hostPort[-end]:]containerPort[-end][/tcp|udp]`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::NetworkError;

/// Transport protocol of a published port.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One requested publication: a container port and where to publish it on the host.
/// `host_port: None` asks for a random free host port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// Host address to listen on; `None` is every host address (0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    /// Host port; `None` picks a free one.
    pub host_port: Option<u16>,
    /// With `host_port`, the end of a host port range (`8000-8010:80`): the first free port
    /// of `host_port..=host_port_end` is used.
    #[serde(default)]
    pub host_port_end: Option<u16>,
    /// Port inside the container.
    pub container_port: u16,
    /// Protocol.
    pub proto: Proto,
}

/// A publication in force: the host port is always known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Host address (`None` = all).
    pub host_ip: Option<Ipv4Addr>,
    /// Host port.
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
    /// Protocol.
    pub proto: Proto,
}

fn bad(spec: &str, reason: impl Into<String>) -> NetworkError {
    NetworkError::InvalidPortSpec {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

fn parse_range(spec: &str, s: &str, what: &str) -> Result<(u16, u16), NetworkError> {
    let one = |p: &str| -> Result<u16, NetworkError> {
        let v: u16 = p
            .parse()
            .map_err(|_| bad(spec, format!("{what} {p:?} is not a port number")))?;
        if v == 0 {
            return Err(bad(spec, format!("{what} 0 is not allowed")));
        }
        Ok(v)
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if b < a {
                return Err(bad(spec, format!("{what} range {s} ends before it starts")));
            }
            Ok((a, b))
        }
        None => {
            let v = one(s)?;
            Ok((v, v))
        }
    }
}

/// Parses one `-p` value into one spec per container port (ranges expand).
///
/// Forms: `80`, `80/udp`, `8080:80`, `127.0.0.1:8080:80`, `127.0.0.1::80`,
/// `8000-8002:80-82/tcp` (ranges of the same length pair up), `8000-8010:80` (the first free
/// host port of the range is used).
pub fn parse_port_spec(spec: &str) -> Result<Vec<PortSpec>, NetworkError> {
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, p)) => {
            let proto = match p.to_ascii_lowercase().as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                other => return Err(bad(spec, format!("unknown protocol {other:?}"))),
            };
            (b, proto)
        }
        None => (spec, Proto::Tcp),
    };
    if body.is_empty() {
        return Err(bad(spec, "empty"));
    }
    let parts: Vec<&str> = body.split(':').collect();
    let (ip, host, cont) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [ip, h, c] => (Some(*ip), Some(*h), *c),
        _ => return Err(bad(spec, "too many ':'")),
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(ip) => {
            let a: Ipv4Addr = ip
                .parse()
                .map_err(|_| bad(spec, format!("{ip:?} is not an IPv4 address")))?;
            if a.is_unspecified() {
                None
            } else {
                Some(a)
            }
        }
    };
    let (c0, c1) = parse_range(spec, cont, "container port")?;
    let host = match host {
        None | Some("") => None,
        Some(h) => Some(parse_range(spec, h, "host port")?),
    };
    let n = c1 - c0;
    let mut out = Vec::new();
    match host {
        None => {
            for c in c0..=c1 {
                out.push(PortSpec {
                    host_ip,
                    host_port: None,
                    host_port_end: None,
                    container_port: c,
                    proto,
                })
            }
        }
        Some((h0, h1)) => {
            if h1 - h0 == n {
                for i in 0..=n {
                    out.push(PortSpec {
                        host_ip,
                        host_port: Some(h0 + i),
                        host_port_end: None,
                        container_port: c0 + i,
                        proto,
                    })
                }
            } else if n == 0 {
                out.push(PortSpec {
                    host_ip,
                    host_port: Some(h0),
                    host_port_end: (h1 > h0).then_some(h1),
                    container_port: c0,
                    proto,
                })
            } else {
                return Err(bad(
                    spec,
                    "host and container port ranges have different lengths",
                ));
            }
        }
    }
    Ok(out)
}

impl FromStr for PortSpec {
    type Err = NetworkError;
    /// Parses a spec that names exactly one container port.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut v = parse_port_spec(s)?;
        if v.len() != 1 {
            return Err(bad(s, "a range where a single port was expected"));
        }
        Ok(v.remove(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> PortSpec {
        s.parse().unwrap()
    }

    #[test]
    fn forms() {
        assert_eq!(
            one("80"),
            PortSpec {
                host_ip: None,
                host_port: None,
                host_port_end: None,
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        assert_eq!(one("53/udp").proto, Proto::Udp);
        let p = one("8080:80");
        assert_eq!((p.host_port, p.container_port), (Some(8080), 80));
        let p = one("127.0.0.1:8080:80/tcp");
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        let p = one("127.0.0.1::80");
        assert_eq!((p.host_ip, p.host_port), (Some(Ipv4Addr::LOCALHOST), None));
        assert_eq!(one("0.0.0.0:81:80").host_ip, None);
    }

    #[test]
    fn ranges() {
        let v = parse_port_spec("8000-8002:80-82/udp").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!((v[2].host_port, v[2].container_port), (Some(8002), 82));
        let v = parse_port_spec("9000-9005:80").unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].host_port, v[0].host_port_end),
            (Some(9000), Some(9005))
        );
        let v = parse_port_spec("80-81").unwrap();
        assert!(v.iter().all(|p| p.host_port.is_none()));
        assert!(parse_port_spec("8000-8002:80-81").is_err());
        assert!(parse_port_spec("82-80").is_err());
    }

    #[test]
    fn bad_input() {
        for s in [
            "",
            "/tcp",
            "abc",
            "80/sctp",
            "1:2:3:4",
            "x:80:80",
            "70000",
            "0",
            "8080:0",
            "::1:80:80",
        ] {
            assert!(parse_port_spec(s).is_err(), "{s:?} accepted");
        }
        assert!("80-81".parse::<PortSpec>().is_err());
    }
}
