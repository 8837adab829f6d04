//! Where the CLI finds the daemon: docker's client flags and variables. `-H` (else
//! `$BARGE_HOST`, else `$DOCKER_HOST`, else the default socket) names a `unix://` socket or a
//! `tcp://host:port`; on TCP, `--tls`/`--tlsverify` (or `$DOCKER_TLS`/`$DOCKER_TLS_VERIFY`)
//! turn on TLS with the PEM files of `--tlscacert`/`--tlscert`/`--tlskey`, by default `ca.pem`,
//! `cert.pem` and `key.pem` in `$DOCKER_CERT_PATH` (else the docker config dir, `~/.docker`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;

use super::error::{Error, Result};

/// The default daemon socket.
pub const DEFAULT_SOCKET: &str = "/run/barge/barge.sock";
/// docker's default TCP ports: plain and TLS.
const PORT_PLAIN: u16 = 2375;
const PORT_TLS: u16 = 2376;

/// A daemon address as written in `-H`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket.
    Unix(PathBuf),
    /// `tcp://host[:port]` (no port: docker's 2375, or 2376 with TLS).
    Tcp { host: String, port: Option<u16> },
}

/// Parses `-H`/`BARGE_HOST`/`DOCKER_HOST`: `unix:///path`, a plain path, or `tcp://host:port`.
pub fn parse_host(host: &str) -> Result<Host> {
    if let Some(p) = host.strip_prefix("unix://") {
        if p.is_empty() {
            return Err(Error::Usage(format!(
                "invalid host {host:?}: empty socket path"
            )));
        }
        return Ok(Host::Unix(PathBuf::from(p)));
    }
    if host.starts_with('/') {
        return Ok(Host::Unix(PathBuf::from(host)));
    }
    if let Some(rest) = host.strip_prefix("tcp://") {
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(Error::Usage(format!(
                "invalid host {host:?}: a tcp:// host takes no path"
            )));
        }
        let bad_port = || Error::Usage(format!("invalid host {host:?}: bad port"));
        // [v6]:port, [v6], host:port, host.
        let (h, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, tail) = r
                .split_once(']')
                .ok_or_else(|| Error::Usage(format!("invalid host {host:?}: unclosed '['")))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| bad_port())?),
                None if tail.is_empty() => None,
                None => return Err(bad_port()),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    Some(p.parse::<u16>().map_err(|_| bad_port())?),
                ),
                None => (rest.to_string(), None),
            }
        };
        if port == Some(0) {
            return Err(bad_port());
        }
        // As docker: an empty host is localhost.
        let h = if h.is_empty() { "localhost".into() } else { h };
        return Ok(Host::Tcp { host: h, port });
    }
    if let Some((scheme, _)) = host.split_once("://") {
        return Err(Error::Usage(format!(
            "unsupported host {host:?}: barge's CLI speaks to unix:// and tcp:// hosts, not {scheme}://"
        )));
    }
    Err(Error::Usage(format!(
        "invalid host {host:?}: expected unix:///path/to/socket or tcp://host:port"
    )))
}

/// docker's client TLS flags as given (None: not on the command line).
#[derive(Debug, Clone, Default)]
pub struct TlsFlags {
    /// `--tls`.
    pub tls: Option<bool>,
    /// `--tlsverify` (given at all, even `=false`, it turns TLS on, as docker).
    pub tlsverify: Option<bool>,
    /// `--tlscacert`.
    pub cacert: Option<PathBuf>,
    /// `--tlscert`.
    pub cert: Option<PathBuf>,
    /// `--tlskey`.
    pub key: Option<PathBuf>,
}

/// How a client reaches its daemon.
#[derive(Clone)]
pub enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// TCP, with TLS when configured.
    Tcp {
        host: String,
        port: u16,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

/// A connection to the daemon (unix, TCP or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A boxed connection.
pub type Conn = Box<dyn Io>;

/// Reads an environment variable; unset and empty are the same (as docker).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Endpoint {
    /// Resolves the host and TLS settings; `Ok((endpoint, is_default))` where `is_default`
    /// says no host was chosen (the default socket, which the CLI may start a daemon on).
    pub fn resolve(host: Option<&str>, flags: &TlsFlags) -> Result<(Endpoint, bool)> {
        let given = host
            .map(str::to_string)
            .or_else(|| env("BARGE_HOST"))
            .or_else(|| env("DOCKER_HOST"));
        let Some(h) = given else {
            return Ok((Endpoint::Unix(DEFAULT_SOCKET.into()), true));
        };
        let ep = match parse_host(&h)? {
            // As docker: TLS settings do not apply to a unix socket.
            Host::Unix(p) => Endpoint::Unix(p),
            Host::Tcp { host, port } => {
                let tls = tls_config(flags)?;
                let port = port.unwrap_or(if tls.is_some() { PORT_TLS } else { PORT_PLAIN });
                Endpoint::Tcp { host, port, tls }
            }
        };
        Ok((ep, false))
    }

    /// The address as docker writes it (`unix:///path`, `tcp://host:port`).
    pub fn url(&self) -> String {
        match self {
            Endpoint::Unix(p) => format!("unix://{}", p.display()),
            Endpoint::Tcp { host, port, .. } if host.contains(':') => {
                format!("tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port, .. } => format!("tcp://{host}:{port}"),
        }
    }

    /// The `Host` header of requests.
    pub fn authority(&self) -> String {
        match self {
            Endpoint::Unix(_) => "barge".into(),
            Endpoint::Tcp { .. } => self.url().trim_start_matches("tcp://").to_string(),
        }
    }

    /// The socket path, for a unix endpoint.
    pub fn socket(&self) -> Option<&Path> {
        match self {
            Endpoint::Unix(p) => Some(p),
            Endpoint::Tcp { .. } => None,
        }
    }

    /// Opens a connection (after the TLS handshake, when TLS is on). The error says whether
    /// the daemon was unreachable or refused the handshake.
    pub async fn connect(&self) -> std::io::Result<Conn> {
        match self {
            Endpoint::Unix(p) => Ok(Box::new(tokio::net::UnixStream::connect(p).await?)),
            Endpoint::Tcp { host, port, tls } => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                let _ = tcp.set_nodelay(true);
                let Some(cfg) = tls else {
                    return Ok(Box::new(tcp));
                };
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{host:?} is not a TLS server name: {e}"),
                    )
                })?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("TLS handshake failed: {e}"))
                    })?;
                Ok(Box::new(tls))
            }
        }
    }
}

/// The client TLS configuration docker's flags and variables ask for, or None for plain TCP.
fn tls_config(f: &TlsFlags) -> Result<Option<Arc<rustls::ClientConfig>>> {
    let verify = f
        .tlsverify
        .unwrap_or_else(|| env("DOCKER_TLS_VERIFY").is_some());
    let on = f.tls.unwrap_or(false)
        || f.tlsverify.is_some()
        || env("DOCKER_TLS").is_some()
        || env("DOCKER_TLS_VERIFY").is_some();
    if !on {
        return Ok(None);
    }
    let dir = match env("DOCKER_CERT_PATH") {
        Some(d) => PathBuf::from(d),
        None => barge_image::auth::docker_config_dir(None).unwrap_or_else(|_| ".docker".into()),
    };
    // A default cert or key that does not exist is not used (no client certificate); a
    // file named on the command line must be there.
    let pick = |given: &Option<PathBuf>, name: &str| match given {
        Some(p) => Some(p.clone()),
        None => Some(dir.join(name)).filter(|p| p.exists()),
    };
    let cert_key = match (pick(&f.cert, "cert.pem"), pick(&f.key, "key.pem")) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(c), None) => {
            return Err(Error::Usage(format!(
            "TLS client certificate {} has no key: give --tlskey (or put key.pem beside it in {})",
            c.display(),
            dir.display()
        )))
        }
        (None, Some(k)) => {
            return Err(Error::Usage(format!(
                "TLS client key {} has no certificate: give --tlscert (or put cert.pem in {})",
                k.display(),
                dir.display()
            )))
        }
    };
    let ca = verify.then(|| f.cacert.clone().unwrap_or_else(|| dir.join("ca.pem")));
    let files = barge_api::tls::ClientFiles { ca, cert_key };
    barge_api::tls::client_config(&files)
        .map(Some)
        .map_err(|e| Error::Usage(format!("TLS configuration: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            parse_host("unix:///run/x.sock").unwrap(),
            Host::Unix("/run/x.sock".into())
        );
        assert_eq!(parse_host("/a/b").unwrap(), Host::Unix("/a/b".into()));
        let tcp = |h: &str, p: Option<u16>| Host::Tcp {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            parse_host("tcp://1.2.3.4:2375").unwrap(),
            tcp("1.2.3.4", Some(2375))
        );
        assert_eq!(
            parse_host("tcp://example.org/").unwrap(),
            tcp("example.org", None)
        );
        assert_eq!(
            parse_host("tcp://:2376").unwrap(),
            tcp("localhost", Some(2376))
        );
        assert_eq!(parse_host("tcp://[::1]:9").unwrap(), tcp("::1", Some(9)));
        assert_eq!(parse_host("tcp://[::1]").unwrap(), tcp("::1", None));
        for bad in [
            "unix://",
            "foo",
            "tcp://h:x",
            "tcp://h:0",
            "tcp://h:99999",
            "tcp://h:1/path",
            "tcp://[::1",
            "ssh://u@h",
        ] {
            let e = parse_host(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn urls() {
        let ep = Endpoint::Tcp {
            host: "::1".into(),
            port: 2376,
            tls: None,
        };
        assert_eq!(ep.url(), "tcp://[::1]:2376");
        assert_eq!(ep.authority(), "[::1]:2376");
        assert_eq!(Endpoint::Unix("/x".into()).url(), "unix:///x");
    }
}
