//! OCI image manifests, indexes and configs, and Docker v2 schema 2 manifests and manifest
//! lists, parsed into oci-spec's `image` types and checked before use.
//!
//! Docker schema 2 documents have the same JSON shape as OCI's, differing in media types, so
//! both parse into [`ImageManifest`] / [`ImageIndex`]; the media type says which it was.
//! Docker schema 1 (signed, v1-compat) manifests are refused: registries stopped serving them.

use crate::digest::Digest;
use crate::error::{Error, Result};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use std::fmt;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layers (deprecated, still seen).
pub const OCI_LAYER_ND: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable gzip layer.
pub const OCI_LAYER_ND_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable zstd layer.
pub const OCI_LAYER_ND_ZSTD: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 manifests (refused).
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Docker schema 1 signed manifests (refused).
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer (what `docker save` writes into archives).
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker zstd layer (written by buildx with compression=zstd).
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Windows foreign layers (refused: never on Linux hosts).
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The media types a client should list in `Accept` when fetching a manifest.
pub const MANIFEST_ACCEPT: &[&str] = &[
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression a layer media type announces; unknown media types are an error.
    pub fn from_layer_media_type(mt: &str) -> Result<Compression, String> {
        match mt {
            OCI_LAYER | OCI_LAYER_ND | DOCKER_LAYER => Ok(Compression::None),
            OCI_LAYER_GZIP | OCI_LAYER_ND_GZIP | DOCKER_LAYER_GZIP => Ok(Compression::Gzip),
            OCI_LAYER_ZSTD | OCI_LAYER_ND_ZSTD | DOCKER_LAYER_ZSTD => Ok(Compression::Zstd),
            DOCKER_FOREIGN_LAYER => Err(format!(
                "foreign (Windows) layer media type {mt:?} is not supported"
            )),
            other => Err(format!("unknown layer media type {other:?}")),
        }
    }
}

/// Which family of media types a manifest uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// OCI image-spec.
    Oci,
    /// Docker v2 schema 2.
    Docker,
}

/// A parsed and checked manifest document.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// A single-platform image manifest.
    Image {
        /// The document.
        manifest: Box<ImageManifest>,
        /// OCI or Docker.
        flavor: Flavor,
    },
    /// A multi-platform index / manifest list.
    Index {
        /// The document.
        index: Box<ImageIndex>,
        /// OCI or Docker.
        flavor: Flavor,
    },
}

impl Manifest {
    /// The media type of this document.
    pub fn media_type(&self) -> &'static str {
        match self {
            Manifest::Image {
                flavor: Flavor::Oci,
                ..
            } => OCI_MANIFEST,
            Manifest::Image {
                flavor: Flavor::Docker,
                ..
            } => DOCKER_MANIFEST,
            Manifest::Index {
                flavor: Flavor::Oci,
                ..
            } => OCI_INDEX,
            Manifest::Index {
                flavor: Flavor::Docker,
                ..
            } => DOCKER_MANIFEST_LIST,
        }
    }
}

fn bad(what: &str, reason: impl Into<String>) -> Error {
    Error::Manifest {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// The sha256 digest of a descriptor, converted to ours (other algorithms are refused).
pub fn descriptor_digest(d: &Descriptor, what: &str) -> Result<Digest> {
    Digest::parse(d.digest().as_ref()).map_err(|e| bad(what, format!("descriptor digest: {e}")))
}

/// Parses a manifest or index. `declared` is the media type it came with (HTTP
/// `Content-Type`, or the descriptor that pointed at it); the document's own `mediaType`
/// must agree with it. `what` names the document in errors.
pub fn parse_manifest(bytes: &[u8], declared: Option<&str>, what: &str) -> Result<Manifest> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(what, format!("not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad(what, "not a JSON object"))?;
    let embedded = match obj.get("mediaType") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(bad(what, "\"mediaType\" is not a string")),
    };
    match obj.get("schemaVersion").and_then(|s| s.as_u64()) {
        Some(2) => {}
        Some(1) => {
            return Err(bad(
                what,
                "Docker schema 1 manifests are not supported (deprecated; re-push the image)",
            ))
        }
        Some(n) => return Err(bad(what, format!("unsupported schemaVersion {n}"))),
        None => return Err(bad(what, "missing or non-integer \"schemaVersion\"")),
    }
    let declared = declared.map(|d| d.split(';').next().unwrap_or(d).trim());
    if let (Some(d), Some(e)) = (declared, embedded) {
        if d != e {
            return Err(bad(
                what,
                format!("media type {d:?} does not match the document's mediaType {e:?}"),
            ));
        }
    }
    // OCI lets mediaType be absent; then the shape decides.
    let mt = match declared.or(embedded) {
        Some(m) => m,
        None if obj.contains_key("manifests") => OCI_INDEX,
        None if obj.contains_key("config") => OCI_MANIFEST,
        None => {
            return Err(bad(
                what,
                "no mediaType and neither \"manifests\" nor \"config\"",
            ))
        }
    };
    let (is_index, flavor) = match mt {
        OCI_MANIFEST => (false, Flavor::Oci),
        DOCKER_MANIFEST => (false, Flavor::Docker),
        OCI_INDEX => (true, Flavor::Oci),
        DOCKER_MANIFEST_LIST => (true, Flavor::Docker),
        DOCKER_MANIFEST_V1 | DOCKER_MANIFEST_V1_SIGNED => {
            return Err(bad(what, "Docker schema 1 manifests are not supported"))
        }
        other => return Err(bad(what, format!("unknown manifest media type {other:?}"))),
    };
    if is_index {
        let index: ImageIndex =
            serde_json::from_value(v).map_err(|e| bad(what, format!("malformed index: {e}")))?;
        for (i, m) in index.manifests().iter().enumerate() {
            descriptor_digest(m, &format!("{what}: manifests[{i}]"))?;
        }
        Ok(Manifest::Index {
            index: Box::new(index),
            flavor,
        })
    } else {
        let manifest: ImageManifest =
            serde_json::from_value(v).map_err(|e| bad(what, format!("malformed manifest: {e}")))?;
        check_image_manifest(&manifest, what)?;
        Ok(Manifest::Image {
            manifest: Box::new(manifest),
            flavor,
        })
    }
}

fn check_image_manifest(m: &ImageManifest, what: &str) -> Result<()> {
    let cmt = m.config().media_type().to_string();
    if cmt != OCI_CONFIG && cmt != DOCKER_CONFIG {
        return Err(bad(
            what,
            format!("config media type {cmt:?} is not an image config (not a container image?)"),
        ));
    }
    descriptor_digest(m.config(), &format!("{what}: config"))?;
    for (i, l) in m.layers().iter().enumerate() {
        let w = format!("{what}: layers[{i}]");
        Compression::from_layer_media_type(l.media_type().as_ref()).map_err(|r| bad(&w, r))?;
        descriptor_digest(l, &w)?;
    }
    Ok(())
}

/// The layer compression of a manifest's layer descriptor.
pub fn layer_compression(d: &Descriptor, what: &str) -> Result<Compression> {
    Compression::from_layer_media_type(d.media_type().as_ref()).map_err(|r| bad(what, r))
}

/// Parses and checks an image config: rootfs type `layers`, sha256 diff ids.
pub fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfiguration> {
    let c: ImageConfiguration = serde_json::from_slice(bytes)
        .map_err(|e| bad(what, format!("malformed image config: {e}")))?;
    if c.rootfs().typ() != "layers" {
        return Err(bad(
            what,
            format!("rootfs.type is {:?}, expected \"layers\"", c.rootfs().typ()),
        ));
    }
    config_diff_ids(&c, what)?;
    Ok(c)
}

/// The diff ids of a config, bottom layer first.
pub fn config_diff_ids(c: &ImageConfiguration, what: &str) -> Result<Vec<Digest>> {
    c.rootfs()
        .diff_ids()
        .iter()
        .enumerate()
        .map(|(i, d)| Digest::parse(d).map_err(|e| bad(what, format!("rootfs.diff_ids[{i}]: {e}"))))
        .collect()
}

/// A platform to select from an index: `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    /// GOOS value, `linux`.
    pub os: String,
    /// GOARCH value, `amd64`, `arm64`, ...
    pub architecture: String,
    /// CPU variant (`v7`, `v8`), if any.
    pub variant: Option<String>,
}

impl PlatformSpec {
    /// The platform of this host, in Go's names.
    pub fn host() -> PlatformSpec {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        PlatformSpec {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    /// Parses `os/arch[/variant]` (as `--platform` takes it). Errors use containerd's (so
    /// dockerd's) words: a bad component "is an invalid component", a wrong number of them
    /// "unknown operating system or architecture".
    pub fn parse(s: &str) -> Result<PlatformSpec, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if let Some(bad) = parts.iter().find(|p| !ok(p)) {
            return Err(format!(
                "{s:?}: {bad:?} is an invalid component of {s:?}: platform specifier component must match \"^[A-Za-z0-9_-]+$\""
            ));
        }
        match parts.as_slice() {
            [os, arch] => Ok(PlatformSpec {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] => Ok(PlatformSpec {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(format!(
                "invalid platform {s:?}: unknown operating system or architecture (expected os/arch[/variant])"
            )),
        }
    }

    /// How well a descriptor's platform fits: `None` if not at all, higher is better.
    fn score(&self, p: &oci_spec::image::Platform) -> Option<u8> {
        if p.os().to_string() != self.os || p.architecture().to_string() != self.architecture {
            return None;
        }
        let theirs = p.variant().as_deref();
        match (self.variant.as_deref(), theirs) {
            (a, b) if a == b => Some(3),
            // arm64 images mostly omit "v8"; amd64 images mostly omit variants.
            (Some("v8"), None) if self.architecture == "arm64" => Some(2),
            (None, Some("v1")) if self.architecture == "amd64" => Some(2),
            (_, None) => Some(1),
            // arm: v7 runs v6 and v5 images.
            (Some(want), Some(have)) if self.architecture == "arm" && have < want => Some(0),
            _ => None,
        }
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the manifest for `platform` from an index (the first of the best-fitting ones).
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    platform: &PlatformSpec,
    what: &str,
) -> Result<&'a Descriptor> {
    let mut best: Option<(u8, &Descriptor)> = None;
    for d in index.manifests() {
        let mt = d.media_type().to_string();
        if mt != OCI_MANIFEST && mt != DOCKER_MANIFEST {
            continue;
        }
        let Some(p) = d.platform() else { continue };
        if let Some(s) = platform.score(p) {
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, d));
            }
        }
    }
    match best {
        Some((_, d)) => Ok(d),
        None => Err(Error::NoMatchingPlatform {
            what: what.to_string(),
            platform: platform.to_string(),
            available: index
                .manifests()
                .iter()
                .filter_map(|d| d.platform().as_ref())
                .map(|p| {
                    let mut s = format!("{}/{}", p.os(), p.architecture());
                    if let Some(v) = p.variant() {
                        s.push('/');
                        s.push_str(v);
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn docker_manifest(layer_mt: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"{DOCKER_CONFIG}","size":10,"digest":"{}"}},
            "layers":[{{"mediaType":"{layer_mt}","size":20,"digest":"{}"}}]}}"#,
            h('a'),
            h('b')
        )
    }

    #[test]
    fn docker_and_oci_manifests_parse() {
        let m = parse_manifest(
            docker_manifest(DOCKER_LAYER_GZIP).as_bytes(),
            Some(DOCKER_MANIFEST),
            "m",
        )
        .expect("docker manifest");
        match m {
            Manifest::Image { manifest, flavor } => {
                assert_eq!(flavor, Flavor::Docker);
                assert_eq!(
                    layer_compression(&manifest.layers()[0], "l").expect("compression"),
                    Compression::Gzip
                );
            }
            other => panic!("expected image manifest, got {other:?}"),
        }
        let oci = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","size":1,"digest":"{}"}},
            "layers":[{{"mediaType":"{OCI_LAYER_ZSTD}","size":2,"digest":"{}"}}]}}"#,
            h('c'),
            h('d')
        );
        let m = parse_manifest(oci.as_bytes(), None, "m").expect("oci manifest");
        assert_eq!(m.media_type(), OCI_MANIFEST);
    }

    #[test]
    fn bad_manifests_are_refused_with_reason() {
        let e = |b: &str, d: Option<&str>| {
            parse_manifest(b.as_bytes(), d, "manifest x")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e("{", None).contains("not valid JSON"));
        assert!(e("[]", None).contains("not a JSON object"));
        assert!(e(r#"{"schemaVersion":1,"name":"x"}"#, None).contains("schema 1"));
        assert!(e(
            r#"{"schemaVersion":2,"mediaType":"text/html","config":{}}"#,
            None
        )
        .contains("unknown manifest media type \"text/html\""));
        assert!(
            e(&docker_manifest("application/x-bogus"), None).contains("unknown layer media type")
        );
        assert!(e(&docker_manifest(DOCKER_FOREIGN_LAYER), None).contains("foreign"));
        assert!(e(&docker_manifest(DOCKER_LAYER), Some(OCI_MANIFEST)).contains("does not match"));
        let bad_digest = docker_manifest(DOCKER_LAYER).replace(&h('b'), "sha256:xyz");
        assert!(!e(&bad_digest, None).is_empty());
        let not_image = docker_manifest(DOCKER_LAYER)
            .replace(DOCKER_CONFIG, "application/vnd.cncf.helm.config.v1+json");
        assert!(e(&not_image, None).contains("not an image config"));
    }

    #[test]
    fn platform_selection() {
        let entry = |c: char, arch: &str, variant: Option<&str>| {
            let v = variant
                .map(|v| format!(r#","variant":"{v}""#))
                .unwrap_or_default();
            format!(
                r#"{{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"{}","platform":{{"os":"linux","architecture":"{arch}"{v}}}}}"#,
                h(c)
            )
        };
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[{},{},{},{}]}}"#,
            entry('1', "arm", Some("v6")),
            entry('2', "arm", Some("v7")),
            entry('3', "arm64", None),
            entry('4', "amd64", None),
        );
        let Manifest::Index { index, .. } =
            parse_manifest(list.as_bytes(), None, "l").expect("list")
        else {
            panic!("expected index")
        };
        let pick = |p: &str| {
            let spec = PlatformSpec::parse(p).expect("platform");
            select_platform(&index, &spec, "l").map(|d| d.digest().to_string())
        };
        assert_eq!(pick("linux/amd64").expect("amd64"), h('4'));
        assert_eq!(pick("linux/arm64/v8").expect("arm64"), h('3'));
        assert_eq!(pick("linux/arm/v7").expect("armv7"), h('2'));
        assert_eq!(pick("linux/arm/v6").expect("armv6"), h('1'));
        let e = pick("linux/s390x").expect_err("no s390x");
        assert!(e.to_string().contains("linux/arm/v7"), "{e}");
        assert_eq!(
            PlatformSpec::host().to_string(),
            if cfg!(target_arch = "x86_64") {
                "linux/amd64"
            } else {
                "linux/arm64/v8"
            }
        );
    }

    #[test]
    fn config_checks() {
        let good = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            h('e')
        );
        let c = parse_config(good.as_bytes(), "c").expect("config");
        assert_eq!(config_diff_ids(&c, "c").expect("ids").len(), 1);
        let bad = good.replace(&h('e'), "sha256:nothex");
        assert!(parse_config(bad.as_bytes(), "c").is_err());
        let bad = good.replace("\"layers\"", "\"bogus\"");
        assert!(parse_config(bad.as_bytes(), "c")
            .expect_err("type")
            .to_string()
            .contains("rootfs.type"));
    }
}
