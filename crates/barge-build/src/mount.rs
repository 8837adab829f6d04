//! RUN `--mount=` options, parsed as BuildKit does (CSV fields `key=value`).

use crate::shell::{Env, ExpandError, Lexer};
use crate::suggest::suggest;

/// A `--mount=` option as written. Its values may use variables, so the typed form is
/// made by [`MountSpec::resolve`] when the stage's variables are known; the parser checks
/// what it can without them (the CSV, the keys, `from` without variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The option value as written (after flag unquoting).
    pub raw: String,
    /// The `from=` field (a stage name or index, or an image), for the stage graph.
    pub from: Option<String>,
}

/// The kind of a RUN mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    /// A bind mount from the context or another stage/image (the default).
    Bind,
    /// A persistent cache directory.
    Cache,
    /// A tmpfs.
    Tmpfs,
    /// A secret file.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

/// Sharing of a cache mount between concurrent builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    /// Concurrent writers share the cache.
    Shared,
    /// Each writer gets its own instance.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// A typed RUN mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The kind.
    pub kind: MountType,
    /// `from=`: stage or image to mount from.
    pub from: Option<String>,
    /// `source=`/`src=`
    pub source: Option<String>,
    /// `target=`/`dst=`/`destination=`
    pub target: Option<String>,
    /// Read-only (defaults: cache and tmpfs writable, others read-only).
    pub readonly: bool,
    /// `size=` of a tmpfs, in bytes.
    pub size: Option<i64>,
    /// `id=` of a cache or secret.
    pub id: Option<String>,
    /// `sharing=` of a cache.
    pub sharing: Option<CacheSharing>,
    /// `required` for secret and ssh.
    pub required: bool,
    /// `mode=` (octal) for cache, secret, ssh.
    pub mode: Option<u32>,
    /// `uid=`
    pub uid: Option<u32>,
    /// `gid=`
    pub gid: Option<u32>,
    /// `env=` of a secret.
    pub env: Option<String>,
}

/// An error in a `--mount=` option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// The CSV did not parse.
    #[error("failed to parse csv mounts: {0}")]
    Csv(String),
    /// An unknown mount type.
    #[error("unsupported mount type {value:?}{}", hint(.suggestion))]
    Type {
        /// The type as written.
        value: String,
        /// The closest known type.
        suggestion: Option<String>,
    },
    /// An unknown sharing mode.
    #[error("unsupported sharing value {value:?}{}", hint(.suggestion))]
    Sharing {
        /// The mode as written.
        value: String,
        /// The closest known mode.
        suggestion: Option<String>,
    },
    /// An unknown key.
    #[error("unexpected key '{key}' in '{field}'{}", hint(.suggestion))]
    Key {
        /// The key.
        key: String,
        /// The whole field.
        field: String,
        /// The closest known key.
        suggestion: Option<String>,
    },
    /// A key that the mount type does not take.
    #[error("unexpected key '{0}' for mount type '{1}'")]
    KeyForType(String, &'static str),
    /// A field without `=` that needs a value.
    #[error("invalid field '{0}' must be a key=value pair")]
    NoValue(String),
    /// A value that does not parse.
    #[error("invalid value for {0}: {1}")]
    Value(String, String),
    /// `from=` with a variable.
    #[error("'from' doesn't support variable expansion, define alias stage instead")]
    FromVariable,
    /// mode/uid/gid on a mount type that has no files of its own.
    #[error("{0} not allowed for \"{1}\" type mounts")]
    FileInfo(&'static str, &'static str),
    /// Other invalid combinations.
    #[error("{0}")]
    Invalid(&'static str),
    /// `sharing=` on a mount that is not a cache.
    #[error("invalid cache sharing set for {0} mount")]
    SharingNotCache(&'static str),
    /// A variable in a value did not expand.
    #[error(transparent)]
    Expand(#[from] ExpandError),
}

fn hint(s: &Option<String>) -> String {
    match s {
        Some(m) => format!(" (did you mean {m}?)"),
        None => String::new(),
    }
}

impl MountType {
    /// The name as in `type=`.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

const KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// Splits one CSV record (RFC 4180 quoting, as Go's csv reader with default options).
pub(crate) fn csv_fields(s: &str) -> Result<Vec<String>, MountError> {
    let mut fields = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(MountError::Csv(format!(
                            "extraneous or missing \" in quoted-field: {s}"
                        )))
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
            match chars.get(i) {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {
                    i += 1;
                    fields.push(field);
                }
                Some(_) => {
                    return Err(MountError::Csv(format!(
                        "extraneous or missing \" in quoted-field: {s}"
                    )))
                }
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(MountError::Csv(format!("bare \" in non-quoted-field: {s}")));
                }
                field.push(c);
                i += 1;
            }
            fields.push(field);
            if i >= chars.len() {
                return Ok(fields);
            }
            i += 1; // ','
        }
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, MountError> {
    // Go's strconv.ParseBool.
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(MountError::Value(key.to_string(), v.to_string())),
    }
}

/// Docker's RAMInBytes: a number with an optional unit b, k, m, g, t, p (powers of 1024),
/// optionally followed by `b` or `ib`, case-insensitive.
pub(crate) fn parse_ram_size(s: &str) -> Option<i64> {
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    if num.is_empty() {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| {
            if unit.len() > 1 {
                unit.strip_suffix('b')
            } else {
                None
            }
        })
        .unwrap_or(&unit);
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        "p" => 1024.0f64.powi(5),
        _ => return None,
    };
    let v = n * mult;
    if !v.is_finite() || v > i64::MAX as f64 {
        return None;
    }
    Some(v as i64)
}

impl MountSpec {
    /// Checks `raw` without expanding variables, as the parser does.
    pub fn new(raw: &str) -> Result<MountSpec, MountError> {
        let m = parse_mount(raw, None)?;
        Ok(MountSpec {
            raw: raw.to_string(),
            from: m.from,
        })
    }

    /// The typed mount, each value expanded with `env` (as the builder does per stage).
    pub fn resolve(&self, lexer: &Lexer, env: &dyn Env) -> Result<Mount, MountError> {
        parse_mount(&self.raw, Some((lexer, env)))
    }
}

fn parse_mount(raw: &str, expander: Option<(&Lexer, &dyn Env)>) -> Result<Mount, MountError> {
    let fields = csv_fields(raw)?;
    let mut m = Mount {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        readonly: false,
        size: None,
        id: None,
        sharing: None,
        required: false,
        mode: None,
        uid: None,
        gid: None,
        env: None,
    };
    let mut ro_auto = true;
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        if !KEYS.contains(&key.as_str()) {
            return Err(MountError::Key {
                suggestion: suggest(&key, KEYS.iter().copied(), true),
                key,
                field: field.clone(),
            });
        }
        let Some(mut value) = value else {
            if expander.is_none() {
                continue; // checked when resolved: the type may come later
            }
            match key.as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true
                }
                "required" => return Err(MountError::KeyForType(key, m.kind.as_str())),
                _ => return Err(MountError::NoValue(field.clone())),
            }
            continue;
        };
        match expander {
            Some((lex, env)) => value = lex.expand(&value, env)?,
            None if key == "from" => {
                if let Some(idx) = value.find('$') {
                    if idx != value.len() - 1 {
                        return Err(MountError::FromVariable);
                    }
                }
                m.from = Some(value);
                continue;
            }
            None => continue,
        }
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        let suggestion =
                            suggest(&value, ["bind", "cache", "tmpfs", "secret", "ssh"], true);
                        return Err(MountError::Type { value, suggestion });
                    }
                }
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.readonly = parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&key, &value)?;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(MountError::KeyForType(key, m.kind.as_str()));
                }
                m.required = parse_bool(&key, &value)?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(MountError::KeyForType(key, m.kind.as_str()));
                }
                m.size = Some(parse_ram_size(&value).ok_or(MountError::Value(key, value))?);
            }
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => {
                        let suggestion = suggest(&value, ["shared", "private", "locked"], true);
                        return Err(MountError::Sharing { value, suggestion });
                    }
                })
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| MountError::Value("mode".into(), value))?,
                )
            }
            "uid" => {
                m.uid = Some(
                    value
                        .parse()
                        .map_err(|_| MountError::Value("uid".into(), value))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    value
                        .parse()
                        .map_err(|_| MountError::Value("gid".into(), value))?,
                )
            }
            "env" => m.env = Some(value),
            _ => {}
        }
    }
    if expander.is_none() {
        return Ok(m);
    }
    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        let t = m.kind.as_str();
        if m.mode.is_some() {
            return Err(MountError::FileInfo("mode", t));
        }
        if m.uid.is_some() {
            return Err(MountError::FileInfo("uid", t));
        }
        if m.gid.is_some() {
            return Err(MountError::FileInfo("gid", t));
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err(MountError::Invalid("secret mount should not have a from"));
        }
        if m.sharing.is_some() {
            return Err(MountError::Invalid(
                "secret mount should not define sharing",
            ));
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err(MountError::Invalid(
                "invalid secret mount. one of source, target required",
            ));
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(MountError::Invalid("both source and id can't be set"));
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(MountError::SharingNotCache(m.kind.as_str()));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::EmptyEnv;

    fn resolve(s: &str) -> Result<Mount, MountError> {
        MountSpec::new(s)?.resolve(&Lexer::default(), &[("DIR", "/cache")])
    }

    #[test]
    fn cache_mount() {
        let m = resolve("type=cache,target=$DIR,id=go,sharing=locked,mode=0755,uid=1000").unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/cache"));
        assert_eq!(m.id.as_deref(), Some("go"));
        assert_eq!(m.sharing, Some(CacheSharing::Locked));
        assert_eq!(m.mode, Some(0o755));
        assert_eq!(m.uid, Some(1000));
        assert!(!m.readonly, "cache mounts are writable by default");
    }

    #[test]
    fn bind_defaults_readonly() {
        let m = resolve("target=/src,from=builder,source=/out").unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.readonly);
        assert_eq!(m.from.as_deref(), Some("builder"));
        let m = resolve("type=bind,target=/src,rw").unwrap();
        assert!(!m.readonly);
    }

    #[test]
    fn spec_records_from_without_expanding() {
        let s = MountSpec::new("type=bind,from=build,target=/x").unwrap();
        assert_eq!(s.from.as_deref(), Some("build"));
        assert_eq!(
            MountSpec::new("from=$X,target=/x"),
            Err(MountError::FromVariable)
        );
    }

    #[test]
    fn tmpfs_and_secret() {
        let m = resolve("type=tmpfs,target=/t,size=64m").unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = resolve("type=secret,id=tok,required,env=TOKEN").unwrap();
        assert!(m.required);
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        assert!(m.readonly);
    }

    #[test]
    fn quoted_csv() {
        let m = resolve("type=bind,\"target=/a,b\"").unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
        assert_eq!(
            csv_fields("a,\"b\"\"c\",d").unwrap(),
            vec!["a", "b\"c", "d"]
        );
        assert!(csv_fields("a\"b").is_err());
        assert!(csv_fields("\"ab").is_err());
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            (
                "type=cahce,target=/x",
                "unsupported mount type \"cahce\" (did you mean cache?)",
            ),
            (
                "type=cache,taget=/x",
                "unexpected key 'taget' in 'taget=/x' (did you mean target?)",
            ),
            (
                "type=bind,target=/x,mode=0700",
                "mode not allowed for \"bind\" type mounts",
            ),
            (
                "type=bind,target=/x,size=1m",
                "unexpected key 'size' for mount type 'bind'",
            ),
            (
                "type=cache,target=/x,sharing=nope",
                "unsupported sharing value \"nope\"",
            ),
            ("type=cache,target=/x,uid=abc", "invalid value for uid: abc"),
            (
                "type=secret",
                "invalid secret mount. one of source, target required",
            ),
            (
                "type=cache,target",
                "invalid field 'target' must be a key=value pair",
            ),
            (
                "type=bind,required,target=/x",
                "unexpected key 'required' for mount type 'bind'",
            ),
            (
                "type=cache,target=/x,ro=maybe",
                "invalid value for ro: maybe",
            ),
        ];
        for (spec, want) in cases {
            let got = resolve(spec).unwrap_err().to_string();
            assert_eq!(&got, want, "spec {spec}");
        }
        // Unknown keys are caught by the parser already.
        assert!(MountSpec::new("type=cache,bogus=1").is_err());
        let e = MountSpec::new("target=${X:?need X}")
            .unwrap()
            .resolve(&Lexer::default(), &EmptyEnv);
        assert!(e.unwrap_err().to_string().contains("X: need X"));
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(parse_ram_size("1024"), Some(1024));
        assert_eq!(parse_ram_size("1k"), Some(1024));
        assert_eq!(parse_ram_size("1KiB"), Some(1024));
        assert_eq!(parse_ram_size("2g"), Some(2 << 30));
        assert_eq!(parse_ram_size("1.5m"), Some(1536 * 1024));
        assert_eq!(parse_ram_size("12x"), None);
        assert_eq!(parse_ram_size("m"), None);
    }
}
