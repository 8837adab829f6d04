//! Image references with Docker's grammar and defaults (distribution/reference).
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [domain "/"] path            (at most 255 characters, normalized)
//! domain     := host [":" port]              host: dns labels, IPv4, or [IPv6]
//! path       := component ("/" component)*   component: [a-z0-9]+ ([_.]|__|-+ [a-z0-9]+)*
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```
//!
//! Normalization as Docker does it: a first component is a registry domain only if it
//! contains `.` or `:`, is `localhost`, or has an uppercase letter; otherwise the registry is
//! `docker.io`, and a single-component name there gets `library/`. `index.docker.io` becomes
//! `docker.io`. With neither tag nor digest, the tag is `latest`.

use crate::digest::{Digest, DigestError};
use std::fmt;
use std::str::FromStr;

/// The default registry.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy name of the default registry, normalized to [`DEFAULT_DOMAIN`].
pub const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The namespace of official images on the default registry.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag used when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest normalized name (domain + "/" + path) accepted.
pub const NAME_TOTAL_MAX: usize = 255;
/// The longest tag accepted.
pub const TAG_MAX: usize = 128;

/// Why a reference string was refused. Each names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The empty string.
    #[error("invalid reference format: empty reference")]
    Empty,
    /// 64 hex digits alone are an image id, not a name (Docker refuses them as names too).
    #[error("invalid reference format {0:?}: a 64-character hexadecimal string is an image id, not a repository name")]
    HexName(String),
    /// The repository path has uppercase letters.
    #[error("invalid reference format {0:?}: repository name must be lowercase")]
    Uppercase(String),
    /// The normalized name is longer than [`NAME_TOTAL_MAX`].
    #[error(
        "invalid reference format {0:?}: repository name must not be more than 255 characters"
    )]
    NameTooLong(String),
    /// A path component does not match the grammar.
    #[error("invalid reference format {reference:?}: bad repository path component {component:?}")]
    BadPathComponent {
        /// The whole input.
        reference: String,
        /// The component at fault.
        component: String,
    },
    /// The registry domain does not match the grammar.
    #[error("invalid reference format {reference:?}: bad registry domain {domain:?}")]
    BadDomain {
        /// The whole input.
        reference: String,
        /// The domain at fault.
        domain: String,
    },
    /// The tag does not match the grammar or is longer than 128 characters.
    #[error("invalid reference format {reference:?}: bad tag {tag:?}")]
    BadTag {
        /// The whole input.
        reference: String,
        /// The tag at fault.
        tag: String,
    },
    /// The part after `@` is not a valid digest.
    #[error("invalid reference format {reference:?}: {source}")]
    BadDigest {
        /// The whole input.
        reference: String,
        /// Why the digest was refused.
        source: DigestError,
    },
}

/// A normalized image reference: registry domain, repository path, and tag and/or digest.
///
/// `Display` gives the fully normalized form (`docker.io/library/busybox:latest`);
/// [`Reference::familiar`] gives the short form Docker prints (`busybox:latest`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes a reference; with neither tag nor digest, the tag is `latest`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let mut r = Self::parse_name_only(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses and normalizes a reference without adding the default tag (for `docker
    /// images busybox` style filters or `docker pull --all-tags`).
    pub fn parse_name_only(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(ReferenceError::HexName(s.to_string()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = Digest::parse(d).map_err(|source| ReferenceError::BadDigest {
                    reference: s.to_string(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // The tag separator is the last ':' after the last '/', so "host:5000/x" has no tag.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(&rest[at + 1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::BadTag {
                    reference: s.to_string(),
                    tag: t.to_string(),
                });
            }
        }
        let (domain, path) = split_domain(name);
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(s.to_string()));
        }
        if path.is_empty() {
            return Err(ReferenceError::BadPathComponent {
                reference: s.to_string(),
                component: String::new(),
            });
        }
        for c in path.split('/') {
            if !valid_path_component(c) {
                return Err(ReferenceError::BadPathComponent {
                    reference: s.to_string(),
                    component: c.to_string(),
                });
            }
        }
        if !valid_domain(&domain) {
            return Err(ReferenceError::BadDomain {
                reference: s.to_string(),
                domain,
            });
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_MAX {
            return Err(ReferenceError::NameTooLong(s.to_string()));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Builds a reference from a validated name and a tag (`docker tag`).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::BadTag {
                reference: self.to_string(),
                tag: tag.to_string(),
            });
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The same repository pinned to `digest` (no tag).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The registry domain (`docker.io`, `localhost:5000`, ...).
    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// The repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    /// The normalized repository name, `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
    /// The short repository name Docker prints (`busybox`, `user/app`, `localhost:5000/x`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                // Keep the registry when the first path component would read as a
                // domain ("docker.io/a.b/c" is not "a.b/c").
                _ => {
                    let first = self.path.split('/').next().unwrap_or_default();
                    if first.contains(['.', ':']) || first == "localhost" {
                        self.name()
                    } else {
                        self.path.clone()
                    }
                }
            }
        } else {
            self.name()
        }
    }
    /// The short form Docker prints: `busybox:latest`, `quay.io/x/y@sha256:...`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// How dockerd names an image it did not find: a reference in its familiar form with
    /// the default tag (`busybox` -> `busybox:latest`); an image id or id prefix, or text
    /// that is no reference, as given.
    pub fn missing_image_name(name: &str) -> String {
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if name.starts_with("sha256:")
            || (hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return name.to_string();
        }
        Reference::parse(name).map_or_else(|_| name.to_string(), |r| r.familiar())
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse_name_only(&s).map_err(serde::de::Error::custom)
    }
}

/// Splits a name into (domain, path) with Docker's rules and normalizes the default registry.
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+ (([_.]|__|[-]+) [a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-", followed by an alnum.
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// host [":" port], host being dns labels, or an IPv6 address in brackets.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let l = label.as_bytes();
            !l.is_empty()
                && l[0].is_ascii_alphanumeric()
                && l[l.len() - 1].is_ascii_alphanumeric()
                && l.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= TAG_MAX
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn docker_defaults() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            norm("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        assert_eq!(norm("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        assert_eq!(norm("127.0.0.1:5000/x"), "127.0.0.1:5000/x:latest");
        assert_eq!(norm("[::1]:5000/x:v"), "[::1]:5000/x:v");
        assert_eq!(norm("quay.io/a/b/c:v1.2-rc_3"), "quay.io/a/b/c:v1.2-rc_3");
        assert_eq!(
            norm("a__b-c---d/e_f.g"),
            "docker.io/a__b-c---d/e_f.g:latest"
        );
    }

    #[test]
    fn digests_and_tags() {
        let d = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let r = Reference::parse(&format!("busybox@{d}")).expect("digest ref");
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().map(|x| x.to_string()), Some(d.clone()));
        assert_eq!(r.familiar(), format!("busybox@{d}"));
        let r = Reference::parse(&format!("h:1/busybox:t@{d}")).expect("tag+digest ref");
        assert_eq!(r.tag(), Some("t"));
        assert_eq!(r.to_string(), format!("h:1/busybox:t@{d}"));
        assert!(matches!(
            Reference::parse("busybox@sha256:abc"),
            Err(ReferenceError::BadDigest { .. })
        ));
        assert!(matches!(
            Reference::parse("busybox@md5:abc"),
            Err(ReferenceError::BadDigest { .. })
        ));
    }

    #[test]
    fn familiar_forms() {
        let f = |s: &str| {
            Reference::parse(s)
                .map(|r| r.familiar())
                .unwrap_or_default()
        };
        assert_eq!(f("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(f("docker.io/user/app:1"), "user/app:1");
        assert_eq!(f("docker.io/library/a/b"), "library/a/b:latest");
        assert_eq!(f("localhost/x"), "localhost/x:latest");
        assert_eq!(f("quay.io/x/y:z"), "quay.io/x/y:z");
        // Found by the fuzzer: a domain-looking first component keeps its registry.
        assert_eq!(f("docker.io/a.b/c"), "docker.io/a.b/c:latest");
        assert_eq!(f("docker.io/localhost/c"), "docker.io/localhost/c:latest");
    }

    #[test]
    fn refusals() {
        let err = |s: &str| Reference::parse(s).err();
        assert_eq!(err(""), Some(ReferenceError::Empty));
        assert!(matches!(err("Busybox"), Some(ReferenceError::Uppercase(_))));
        assert!(err("a.io/x").is_none());
        assert!(err("My.io/x").is_none());
        assert!(matches!(
            err("docker.io/User/app"),
            Some(ReferenceError::Uppercase(_))
        ));
        assert!(matches!(
            err(&"a".repeat(64)),
            Some(ReferenceError::HexName(_))
        ));
        assert!(matches!(
            err("busybox:"),
            Some(ReferenceError::BadTag { .. })
        ));
        assert!(matches!(
            err("busybox:-x"),
            Some(ReferenceError::BadTag { .. })
        ));
        assert!(matches!(
            err(&format!("busybox:{}", "t".repeat(129))),
            Some(ReferenceError::BadTag { .. })
        ));
        assert!(Reference::parse(&format!("busybox:{}", "t".repeat(128))).is_ok());
        assert!(matches!(
            err(&"a".repeat(256)),
            Some(ReferenceError::NameTooLong(_))
        ));
        assert!(matches!(
            err("a//b"),
            Some(ReferenceError::BadPathComponent { .. })
        ));
        assert!(matches!(
            err("a/b/"),
            Some(ReferenceError::BadPathComponent { .. })
        ));
        assert!(matches!(
            err("-a"),
            Some(ReferenceError::BadPathComponent { .. })
        ));
        assert!(matches!(
            err("a..b"),
            Some(ReferenceError::BadPathComponent { .. })
        ));
        assert!(matches!(
            err("a___b"),
            Some(ReferenceError::BadPathComponent { .. })
        ));
        assert!(matches!(
            err("-host.io/x"),
            Some(ReferenceError::BadDomain { .. })
        ));
        assert!(matches!(
            err("host.io:port/x"),
            Some(ReferenceError::BadDomain { .. })
        ));
        assert!(matches!(
            err("host.io:/x"),
            Some(ReferenceError::BadDomain { .. })
        ));
        assert!(
            matches!(err("localhost:5000"), Some(ReferenceError::BadTag { .. }))
                || err("localhost:5000").is_none()
        );
    }

    #[test]
    fn roundtrip_display_parse() {
        for s in ["busybox", "a/b:c", "localhost:5000/x/y:z", "quay.io/a"] {
            let r = Reference::parse(s).expect("valid");
            assert_eq!(Reference::parse(&r.to_string()).as_ref(), Ok(&r));
            assert_eq!(Reference::parse(&r.familiar()).as_ref(), Ok(&r));
        }
    }
}
