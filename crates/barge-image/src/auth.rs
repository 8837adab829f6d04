//! Registry credentials in Docker's client config (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): the `auths` map of registry -> `{"auth": base64("user:pass")}`.
//! Other keys of the file are kept as they are when it is rewritten.
//!
//! Credential helpers work as in the docker CLI: `credHelpers[host]` names the helper of one
//! registry, else `credsStore` the helper of all; the helper is the program
//! `docker-credential-<name>` on `$PATH`, run as `get` / `store` / `erase` with the server
//! URL (or a `{"ServerURL","Username","Secret"}` JSON object) on stdin. With a helper the
//! secret never enters the file: `auths` only lists the registry (an empty object), as
//! docker does.

use crate::error::{Error, Result};
use base64::Engine;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The key Docker uses for Docker Hub in `auths`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or token) for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Decodes the Docker API's `X-Registry-Auth` header (base64url of
/// `{"username":..,"password":..,"serveraddress":..}`, padded or not). `None` for an empty
/// header or one without a user name (an `identitytoken` alone is not supported).
pub fn parse_x_registry_auth(value: &str) -> Result<Option<Credentials>> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let bad = |reason: String| Error::DockerConfig {
        path: PathBuf::from("X-Registry-Auth"),
        reason,
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(v))
        .map_err(|e| bad(format!("not base64: {e}")))?;
    let j: Value = serde_json::from_slice(&raw).map_err(|e| bad(format!("not JSON: {e}")))?;
    match (
        j.get("username").and_then(Value::as_str),
        j.get("password").and_then(Value::as_str),
    ) {
        (Some(u), p) if !u.is_empty() => Ok(Some(Credentials {
            username: u.to_string(),
            password: p.unwrap_or_default().to_string(),
        })),
        _ => Ok(None),
    }
}

/// The directory of Docker's client config: `dir` if given, else `$DOCKER_CONFIG`, else
/// `$HOME/.docker`.
pub fn docker_config_dir(dir: Option<&Path>) -> Result<PathBuf> {
    config_dir_from(
        dir,
        std::env::var_os("DOCKER_CONFIG"),
        std::env::var_os("HOME"),
    )
}

fn config_dir_from(
    dir: Option<&Path>,
    docker_config: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf> {
    if let Some(d) = dir {
        return Ok(d.to_path_buf());
    }
    if let Some(d) = docker_config.filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    match home.filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".docker")),
        None => Err(Error::DockerConfig {
            path: PathBuf::from("~/.docker/config.json"),
            reason: "neither $DOCKER_CONFIG nor $HOME is set".into(),
        }),
    }
}

/// The `auths` key for a registry domain (`docker.io` -> Docker Hub's historical key).
pub fn auth_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_AUTH_KEY.into(),
        r => r.to_string(),
    }
}

/// Reduces an `auths` key to a host[:port] (`https://host:5000/v1/` -> `host:5000`).
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn read_config(path: &Path) -> Result<Map<String, Value>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&data) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::DockerConfig {
            path: path.to_path_buf(),
            reason: "not a JSON object".into(),
        }),
        Err(e) => Err(Error::DockerConfig {
            path: path.to_path_buf(),
            reason: format!("invalid JSON: {e}"),
        }),
    }
}

fn write_config(dir: &Path, m: &Map<String, Value>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    let path = dir.join("config.json");
    let mut data =
        serde_json::to_vec_pretty(&Value::Object(m.clone())).map_err(|e| Error::DockerConfig {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    data.push(b'\n');
    // 0600: it may hold secrets. The file is fsynced, not its directory, as the docker CLI.
    let how = barge_util::fs::AtomicWrite {
        mode: 0o600,
        durability: barge_util::fs::Durability::File,
    };
    barge_util::fs::write_atomic(&path, &data, how).map_err(|e| Error::io(e.op, e.path, e.source))
}

/// Where `config.json` keeps the credentials of a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialStore {
    /// In the file itself (`auths[registry].auth`).
    File,
    /// In the credential helper `docker-credential-<name>`.
    Helper(String),
}

/// The store of `registry`'s credentials in the config object `cfg`: its `credHelpers`
/// entry (keyed by host, as docker's `ConvertToHostname` makes it: Docker Hub is
/// `index.docker.io`), else `credsStore`, else the file.
fn store_in(cfg: &Map<String, Value>, registry: &str) -> CredentialStore {
    let want = auth_key(registry);
    let host = key_host(&want);
    let named = |v: &Value| v.as_str().filter(|n| !n.is_empty()).map(str::to_string);
    if let Some(Value::Object(h)) = cfg.get("credHelpers") {
        if let Some(n) = h
            .iter()
            .find(|(k, _)| key_host(k) == host)
            .and_then(|(_, v)| named(v))
        {
            return CredentialStore::Helper(n);
        }
    }
    match cfg.get("credsStore").and_then(named) {
        Some(n) => CredentialStore::Helper(n),
        None => CredentialStore::File,
    }
}

/// Where the credentials of `registry` are kept according to the config under `dir`.
pub fn credential_store(dir: Option<&Path>, registry: &str) -> Result<CredentialStore> {
    let dir = docker_config_dir(dir)?;
    Ok(store_in(&read_config(&dir.join("config.json"))?, registry))
}

/// What the helpers print when they have nothing for a server (docker-credential-helpers'
/// `ErrCredentialsNotFound`).
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";

/// Runs `docker-credential-<helper> <action>` with `input` on stdin. Returns whether it
/// succeeded and what it printed (stdout, else stderr, trimmed).
fn run_helper(helper: &str, action: &'static str, input: &[u8]) -> Result<(bool, String)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let err = |reason: String| Error::CredentialHelper {
        helper: helper.to_string(),
        action,
        reason,
    };
    // The name comes from a file: it must not turn the program into a path.
    if !helper
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        || helper.starts_with('.')
    {
        return Err(err(format!("invalid helper name {helper:?}")));
    }
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run {prog}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe: its exit status tells.
        match stdin.write_all(input) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(format!("writing to it: {e}")));
            }
            _ => {}
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("waiting for it: {e}")))?;
    let mut msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if msg.is_empty() {
        msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    }
    Ok((out.status.success(), msg))
}

/// `get` from a helper: `None` when it has nothing for `server`, or only an identity
/// token (user `<token>`, an OAuth refresh token barge cannot use).
fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let (ok, out) = run_helper(helper, "get", server.as_bytes())?;
    let err = |reason: String| Error::CredentialHelper {
        helper: helper.to_string(),
        action: "get",
        reason,
    };
    if !ok {
        if out.contains(HELPER_NOT_FOUND) {
            return Ok(None);
        }
        return Err(err(if out.is_empty() { "failed".into() } else { out }));
    }
    let j: Value = serde_json::from_str(&out)
        .map_err(|e| err(format!("answer is not JSON ({e}): {out:?}")))?;
    let field = |k: &str| j.get(k).and_then(Value::as_str).unwrap_or_default();
    let (user, secret) = (field("Username"), field("Secret"));
    if user.is_empty() || user == "<token>" {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: user.to_string(),
        password: secret.to_string(),
    }))
}

/// Reads the credentials stored for `registry` (a domain such as `docker.io` or
/// `localhost:5000`) in the config under `dir` (see [`docker_config_dir`]), or in its
/// credential helper. `None` when there are none.
pub fn load_credentials(dir: Option<&Path>, registry: &str) -> Result<Option<Credentials>> {
    let dir = match docker_config_dir(dir) {
        Ok(d) => d,
        // No config dir at all (no $HOME): no credentials, an anonymous pull.
        Err(_) => return Ok(None),
    };
    let path = dir.join("config.json");
    let cfg = read_config(&path)?;
    if let CredentialStore::Helper(h) = store_in(&cfg, registry) {
        return helper_get(&h, &auth_key(registry));
    }
    let Some(Value::Object(auths)) = cfg.get("auths") else {
        return Ok(None);
    };
    let want = auth_key(registry);
    let entry = auths.get(&want).or_else(|| {
        let host = key_host(&want);
        auths
            .iter()
            .find(|(k, _)| key_host(k) == host)
            .map(|(_, v)| v)
    });
    let Some(entry) = entry else { return Ok(None) };
    let bad = |reason: String| Error::DockerConfig {
        path: path.clone(),
        reason: format!("auths[{want:?}]: {reason}"),
    };
    if let Some(a) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|e| bad(format!("\"auth\" is not base64: {e}")))?;
        let s = String::from_utf8(raw).map_err(|_| bad("\"auth\" is not UTF-8".into()))?;
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| bad("\"auth\" is not user:password".into()))?;
        return Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    match (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        (Some(u), Some(p)) => Ok(Some(Credentials {
            username: u.into(),
            password: p.into(),
        })),
        _ => Ok(None),
    }
}

/// Stores credentials for `registry` in the config under `dir` (file mode 0600, written
/// atomically, other keys kept), or in its credential helper (the file then lists the
/// registry without a secret). Returns where they went.
pub fn store_credentials(
    dir: Option<&Path>,
    registry: &str,
    creds: &Credentials,
) -> Result<CredentialStore> {
    let dir = docker_config_dir(dir)?;
    let mut cfg = read_config(&dir.join("config.json"))?;
    let store = store_in(&cfg, registry);
    let key = auth_key(registry);
    let entry = match &store {
        CredentialStore::Helper(h) => {
            let input = serde_json::json!({
                "ServerURL": key,
                "Username": creds.username,
                "Secret": creds.password,
            });
            let (ok, out) = run_helper(h, "store", input.to_string().as_bytes())?;
            if !ok {
                return Err(Error::CredentialHelper {
                    helper: h.clone(),
                    action: "store",
                    reason: if out.is_empty() { "failed".into() } else { out },
                });
            }
            serde_json::json!({})
        }
        CredentialStore::File => {
            let auth = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", creds.username, creds.password));
            serde_json::json!({ "auth": auth })
        }
    };
    let auths = cfg
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    if let Value::Object(a) = auths {
        a.insert(key, entry);
    }
    write_config(&dir, &cfg)?;
    Ok(store)
}

/// Removes the credentials of `registry` from the config under `dir` and from its
/// credential helper; returns whether there were any.
pub fn remove_credentials(dir: Option<&Path>, registry: &str) -> Result<bool> {
    let dir = docker_config_dir(dir)?;
    let mut cfg = read_config(&dir.join("config.json"))?;
    let want = auth_key(registry);
    let mut erased = false;
    if let CredentialStore::Helper(h) = store_in(&cfg, registry) {
        let (ok, out) = run_helper(&h, "erase", want.as_bytes())?;
        if !ok && !out.contains(HELPER_NOT_FOUND) {
            return Err(Error::CredentialHelper {
                helper: h,
                action: "erase",
                reason: if out.is_empty() { "failed".into() } else { out },
            });
        }
        erased = ok;
    }
    let host = key_host(&want).to_string();
    let removed = match cfg.get_mut("auths") {
        Some(Value::Object(a)) => {
            let keys: Vec<String> = a
                .keys()
                .filter(|k| **k == want || key_host(k) == host)
                .cloned()
                .collect();
            for k in &keys {
                a.remove(k);
            }
            !keys.is_empty()
        }
        _ => false,
    };
    if removed {
        write_config(&dir, &cfg)?;
    }
    Ok(removed || erased)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_registry_auth_header() {
        use base64::Engine;
        let j = r#"{"username":"bob","password":"pw","serveraddress":"localhost:5000"}"#;
        for enc in [
            base64::engine::general_purpose::URL_SAFE.encode(j),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(j),
        ] {
            assert_eq!(
                parse_x_registry_auth(&enc).expect("parse"),
                Some(Credentials {
                    username: "bob".into(),
                    password: "pw".into()
                })
            );
        }
        assert_eq!(parse_x_registry_auth("").expect("empty"), None);
        let anon = base64::engine::general_purpose::URL_SAFE.encode("{}");
        assert_eq!(parse_x_registry_auth(&anon).expect("anon"), None);
        assert!(parse_x_registry_auth("%%%").is_err());
    }

    #[test]
    fn config_dir_precedence() {
        let some = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            config_dir_from(Some(Path::new("/x")), some("/d"), some("/h")).expect("dir"),
            PathBuf::from("/x")
        );
        assert_eq!(
            config_dir_from(None, some("/d"), some("/h")).expect("env"),
            PathBuf::from("/d")
        );
        assert_eq!(
            config_dir_from(None, some(""), some("/h")).expect("home"),
            PathBuf::from("/h/.docker")
        );
        assert!(config_dir_from(None, None, None).is_err());
    }

    #[test]
    fn store_load_remove_round_trip_keeps_other_keys() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            d.path().join("config.json"),
            r#"{"psFormat":"table","auths":{"https://quay.io/v1/":{"auth":"dTpw"}}}"#,
        )
        .expect("write");
        let c = Credentials {
            username: "bob".into(),
            password: "s:cret".into(),
        };
        store_credentials(Some(d.path()), "localhost:5000", &c).expect("store");
        assert_eq!(
            load_credentials(Some(d.path()), "localhost:5000").expect("load"),
            Some(c.clone())
        );
        let q = load_credentials(Some(d.path()), "quay.io")
            .expect("load")
            .expect("quay creds");
        assert_eq!((q.username.as_str(), q.password.as_str()), ("u", "p"));
        let raw: Value =
            serde_json::from_slice(&std::fs::read(d.path().join("config.json")).expect("read"))
                .expect("json");
        assert_eq!(raw["psFormat"], "table");
        assert_eq!(raw["auths"]["localhost:5000"]["auth"], "Ym9iOnM6Y3JldA==");
        assert!(remove_credentials(Some(d.path()), "localhost:5000").expect("rm"));
        assert!(!remove_credentials(Some(d.path()), "localhost:5000").expect("rm"));
        assert_eq!(
            load_credentials(Some(d.path()), "localhost:5000").expect("load"),
            None
        );
        assert_eq!(auth_key("docker.io"), DOCKER_HUB_AUTH_KEY);
    }
}
