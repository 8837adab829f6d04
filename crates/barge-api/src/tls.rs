//! The API over TCP, which is only ever served with TLS and client certificates (dockerd's
//! `--tlsverify`): whoever reaches the API is root on the host, so a TCP port without
//! mutual TLS would hand that to anyone who can connect.
//!
//! rustls with the ring provider (already the image crate's TLS stack); certificates and keys
//! are PEM files, as dockerd's `--tlscacert`, `--tlscert`, `--tlskey`. The client side (the
//! CLI's `--tls`/`--tlsverify`) is configured here too, so both ends load PEM files alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Api;

/// A loaded server configuration (see [`server_config`]).
pub type ServerConfig = Arc<rustls::ServerConfig>;

/// The PEM files of a TLS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate(s) that client certificates must chain to.
    pub ca: PathBuf,
    /// The server's certificate (chain).
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

/// The certificates of a PEM file; errors name `what` (the flag) and the file.
pub fn certs(p: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let v = CertificateDer::pem_file_iter(p)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{what} {}: {e}", p.display()))?;
    if v.is_empty() {
        return Err(format!("{what} {}: no PEM certificate in it", p.display()));
    }
    Ok(v)
}

/// A server configuration that requires a client certificate signed by `files.ca`. Errors name
/// the file at fault.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(&files.ca, "--tlscacert")? {
        roots
            .add(c)
            .map_err(|e| format!("--tlscacert {}: {e}", files.ca.display()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("--tlscacert {}: {e}", files.ca.display()))?;
    let chain = certs(&files.cert, "--tlscert")?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("--tlskey {}: {e}", files.key.display()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "--tlscert {} / --tlskey {}: {e}",
                files.cert.display(),
                files.key.display()
            )
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The PEM files of a TLS client (docker's `--tlscacert`, `--tlscert`, `--tlskey`).
#[derive(Debug, Clone, Default)]
pub struct ClientFiles {
    /// Verify the server's certificate against these CA certificate(s); None: do not verify
    /// it (docker's `--tls` without `--tlsverify`).
    pub ca: Option<PathBuf>,
    /// The client's certificate (chain) and key, sent when the server asks for one.
    pub cert_key: Option<(PathBuf, PathBuf)>,
}

/// A client configuration; errors name the flag and the file at fault.
pub fn client_config(files: &ClientFiles) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca, "--tlscacert")? {
                roots
                    .add(c)
                    .map_err(|e| format!("--tlscacert {}: {e}", ca.display()))?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoServerVerify(provider))),
    };
    let mut cfg = match &files.cert_key {
        Some((cert, key)) => {
            let chain = certs(cert, "--tlscert")?;
            let k = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("--tlskey {}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, k).map_err(|e| {
                format!(
                    "--tlscert {} / --tlskey {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// docker's `--tls` without `--tlsverify`: any server certificate is taken (the handshake's
/// signatures are still checked, so the session is bound to the certificate shown).
#[derive(Debug)]
struct NoServerVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoServerVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Serves the API on `listener`, each connection after a TLS handshake that verified the
/// client's certificate; a client without one never reaches the API.
pub async fn serve_tls(
    api: Arc<Api>,
    listener: tokio::net::TcpListener,
    cfg: Arc<rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    loop {
        let Some((tcp, peer)) = crate::accepted("accept", listener.accept().await).await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (api, acceptor) = (api.clone(), acceptor.clone());
        tokio::spawn(async move {
            // A client that connects and never completes the handshake must not hold a task.
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => crate::serve_connection(api, tls, None).await,
                Ok(Err(e)) => tracing::info!("TLS handshake with {peer} refused: {e}"),
                Err(_) => tracing::info!("TLS handshake with {peer} timed out"),
            }
        });
    }
}
