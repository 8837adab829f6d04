//! `ADD <http(s) URL>`: the download, over reqwest and rustls (the client barge-image's
//! registry code uses already), run on a small tokio runtime of its own because the
//! builder is blocking code.

use std::time::{Duration, SystemTime};

use barge_image::digest::Hasher;
use barge_image::Digest;

use super::git::is_git;

/// The most ADD downloads (it is held in memory until the step is written).
const MAX_DOWNLOAD: u64 = 512 << 20;

/// A fetched URL.
pub(crate) struct Download {
    /// The last segment of the URL's path (what a directory destination calls it).
    pub(crate) name: String,
    /// The body.
    pub(crate) data: Vec<u8>,
    /// `Last-Modified`, which becomes the file's mtime (as Docker's).
    pub(crate) modified: Option<SystemTime>,
}

/// Whether `s` is a source ADD fetches rather than reads from the context.
pub(crate) fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://") || is_git(s)
}

/// Parses `--checksum=` (`sha256:<64 hex>`): checked before anything is fetched.
pub(crate) fn parse_checksum(s: &str) -> Result<Digest, String> {
    Digest::parse(s).map_err(|e| format!("invalid --checksum={s}: {e}"))
}

/// The `host[:port]` of a URL, for error messages.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hp = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    hp.rsplit_once('@').map_or(hp, |(_, h)| h)
}

/// Every error's causes, joined (reqwest's Display hides them).
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

/// Downloads `url` (redirects followed), checks `checksum` if given, and names the file
/// from the final URL's path. Errors name the host and the HTTP status.
pub(crate) fn fetch(url: &str, checksum: Option<&Digest>) -> Result<Download, String> {
    barge_image::registry::install_crypto_provider();
    let host = host_of(url).to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
    let dl = rt.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {}", chain(&e)))?;
        let mut resp = client
            .get(url)
            .header("User-Agent", "barge-build")
            .send()
            .await
            .map_err(|e| format!("GET {url}: cannot reach {host}: {}", chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(
                format!("GET {url}: {host} answered HTTP status {}", status.as_u16())
                    + status
                        .canonical_reason()
                        .map(|r| format!(" {r}"))
                        .as_deref()
                        .unwrap_or(""),
            );
        }
        let modified = resp
            .headers()
            .get("last-modified")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let name = resp
            .url()
            .path_segments()
            .and_then(|mut s| s.rfind(|n| !n.is_empty()).map(String::from))
            .unwrap_or_else(|| "download".to_string());
        let mut data = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: reading from {host}: {}", chain(&e)))?
        {
            if (data.len() + chunk.len()) as u64 > MAX_DOWNLOAD {
                return Err(format!(
                    "GET {url}: larger than {MAX_DOWNLOAD} bytes, the most ADD downloads"
                ));
            }
            data.extend_from_slice(&chunk);
        }
        Ok(Download {
            name,
            data,
            modified,
        })
    })?;
    if let Some(want) = checksum {
        let mut h = Hasher::new();
        h.update(&dl.data);
        let got = h.finish();
        if &got != want {
            return Err(format!(
                "checksum of {url} does not match: --checksum={want}, downloaded {got}"
            ));
        }
    }
    Ok(dl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_kinds_and_checksums() {
        assert!(is_url("http://h/x") && is_url("HTTPS://h/x") && !is_url("x/http://"));
        assert_eq!(host_of("http://u:p@127.0.0.1:81/a?b"), "127.0.0.1:81");
        let d = Digest::of(b"x");
        assert_eq!(parse_checksum(&d.to_string()).unwrap(), d);
        let e = parse_checksum("md5:abc").unwrap_err();
        assert!(e.contains("--checksum=md5:abc"), "{e}");
    }
}
