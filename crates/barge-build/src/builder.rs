//! The builder: a Dockerfile and a context to a layered image in a [`Store`], with a
//! persistent step cache. See the crate docs for the entry point.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use barge_image::digest::Hasher;
use barge_image::image::LayerRecord;
use barge_image::store::Lease;
use barge_image::{Digest, Reference, Store};
use serde_json::{json, Value};

use crate::ast::{Command, CommandLine, Dockerfile, Healthcheck, Instruction};
use crate::fsutil::{self, BENEATH};
use crate::graph::{StageBase, StageGraph};
use crate::ignore::DockerIgnore;
use crate::progress::{Event, Progress};
use crate::scope::Scope;

const CACHE_VERSION: &str = "barge-build-cache-v1";
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The options of a build (`docker build`'s flags, `POST /build`'s query).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `-t`: references to tag the image with (`name[:tag]`).
    pub tags: Vec<String>,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build (default: the last).
    pub target: Option<String>,
    /// `-f`: the Dockerfile's path inside the context (default `Dockerfile`).
    pub dockerfile: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: resolve every base image (and `--from` image) in its registry again and
    /// pull it if it changed. Needs [`BuildOptions::registry`].
    pub pull: bool,
    /// How to reach registries (insecure registries, credentials). With it, base images
    /// that are not in the store are pulled (as the classic builder does), and `--pull`
    /// works; without it, base images must be in the store.
    pub registry: Option<barge_image::registry::RegistryOptions>,
    /// `--label`: labels added to the final image.
    pub labels: BTreeMap<String, String>,
    /// `--cache-from`: images (in the store) whose layers may be reused: a RUN/COPY/ADD
    /// step that misses the local cache reuses an image's next layer when the image's
    /// history and layers start as the stage's do and its next history entry is this
    /// step (the classic builder's rule).
    pub cache_from: Vec<String>,
    /// `--network`: the network of RUN steps that do not say `--network=`: `default` /
    /// `bridge` (the default network through [`BuildOptions::network_provider`]; without
    /// one, an isolated namespace with only loopback), `none` (loopback only), `host`
    /// (also allows `RUN --network=host`), or a network name the provider knows.
    pub network: Option<String>,
    /// Puts RUN steps on a network (the daemon: its default bridge). barge-build does not
    /// depend on barge-network: the caller plugs it in.
    pub network_provider: Option<Arc<dyn BuildNetwork>>,
    /// `-q`: report only the image id.
    pub quiet: bool,
    /// `--platform`: must be the host's platform (`linux/amd64`, ...).
    pub platform: Option<String>,
    /// Set to `true` to stop the build (the client went away): checked before each step
    /// and while a RUN writes output; the build then fails with [`BuildError::Cancelled`].
    pub cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// The barge binary, whose `runtime` front end runs RUN steps as a subprocess
    /// (`<barge> runtime --root <dir> run --bundle <bundle> <id>`).
    pub barge_binary: PathBuf,
    /// `--secret`: what `RUN --mount=type=secret,id=<id>` reads, by id. A secret is
    /// only ever on a tmpfs during the RUN that mounts it: never in a layer, a cache
    /// record or key, the history or the image.
    pub secrets: BTreeMap<String, Secret>,
    /// `--add-host`: `(name, address)` lines added to RUN steps' /etc/hosts.
    pub extra_hosts: Vec<(String, String)>,
    /// `remote`: a git repository (`<url>[#<ref>[:<subdir>]]`), or an http(s) URL of a
    /// tar context or a plain Dockerfile, to build from instead of the request body (the
    /// caller passes it as [`BuildContext::Remote`]).
    pub remote: Option<String>,
}

/// Networking for RUN steps, given by the caller ([`BuildOptions::network_provider`]).
pub trait BuildNetwork: Send + Sync + std::fmt::Debug {
    /// Makes a network namespace connected to `network` (`bridge` for the default one)
    /// for the build step `id` (64 hex digits, unique); the returned attachment undoes it
    /// all when dropped, also when the step fails.
    fn attach(&self, id: &str, network: &str) -> Result<Box<dyn NetworkAttachment>, String>;
}

/// A build step's network namespace made by a [`BuildNetwork`].
pub trait NetworkAttachment: Send {
    /// The namespace (a bind-mounted nsfs file), which the step's container joins.
    fn netns_path(&self) -> &Path;
    /// The step's `/etc/resolv.conf`, if the network has one.
    fn resolv_conf(&self) -> Option<String>;
}

/// A build secret's content (its `Debug` does not show it).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// The request header carrying `barge build --secret` values to the daemon (Docker's
/// classic `POST /build` has no secrets): a JSON object of id to base64 content.
pub const SECRETS_HEADER: &str = "X-Barge-Build-Secrets";

/// Encodes secrets for [`SECRETS_HEADER`].
pub fn encode_secrets(secrets: &BTreeMap<String, Secret>) -> String {
    use base64::Engine;
    let m: BTreeMap<&str, String> = secrets
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                base64::engine::general_purpose::STANDARD.encode(&v.0),
            )
        })
        .collect();
    serde_json::to_string(&m).unwrap_or_default()
}

/// Decodes a [`SECRETS_HEADER`] value; the error names what is wrong (never a value).
pub fn decode_secrets(header: &str) -> Result<BTreeMap<String, Secret>, BuildError> {
    use base64::Engine;
    let m: BTreeMap<String, String> = serde_json::from_str(header)
        .map_err(|e| BuildError::Options(format!("invalid {SECRETS_HEADER} header: {e}")))?;
    m.into_iter()
        .map(|(k, v)| {
            let d = base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .map_err(|e| {
                    BuildError::Options(format!("invalid {SECRETS_HEADER} header: secret {k}: {e}"))
                })?;
            Ok((k, Secret(d)))
        })
        .collect()
}

/// Whether a build context argument is a URL to fetch (`remote`) rather than a path: a
/// git repository (Docker's rules: `git://`, `git@`, an http(s) or ssh URL ending in
/// `.git`, optionally `#ref:subdir`) or an http(s) URL of a tar or a Dockerfile.
pub fn is_remote_context(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    git::is_git(s) || l.starts_with("http://") || l.starts_with("https://")
}

fn query_bool(v: &str) -> bool {
    // Docker's httputils.BoolValue.
    !matches!(
        v.to_ascii_lowercase().as_str(),
        "" | "0" | "no" | "false" | "none"
    )
}

impl BuildOptions {
    /// The options of a Docker API `POST /build` request, from its query pairs (already
    /// percent-decoded; `t` may repeat): `t`, `dockerfile`, `buildargs` (JSON object),
    /// `target`, `nocache`, `pull`, `labels` (JSON object), `cachefrom` (JSON array),
    /// `networkmode`, `q`, `platform`, `extrahosts`, `remote` (checked: a git URL whose ref
    /// or subdir could be an option or leave the checkout is refused). `rm`, `forcerm`,
    /// resource limits and the like are accepted and ignored; `version=2` (BuildKit) is
    /// refused.
    /// [`BuildOptions::barge_binary`] is left for the caller to set.
    pub fn from_query<K: AsRef<str>, V: AsRef<str>>(
        pairs: &[(K, V)],
    ) -> Result<BuildOptions, BuildError> {
        let mut o = BuildOptions::default();
        let bad = |k: &str, e: serde_json::Error| BuildError::Options(format!("invalid {k}: {e}"));
        for (k, v) in pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            match k {
                "t" if !v.is_empty() => o.tags.push(v.to_string()),
                // Single-valued keys read as their first value, as Go's `Form.Get`
                // (docker-py sends `dockerfile` twice for a Dockerfile outside the
                // context: the name it gave it in the tar, then its content).
                "dockerfile" if !v.is_empty() && o.dockerfile.is_none() => {
                    o.dockerfile = Some(v.to_string())
                }
                "target" if !v.is_empty() => o.target = Some(v.to_string()),
                "platform" if !v.is_empty() => o.platform = Some(v.to_string()),
                "networkmode" if !v.is_empty() => o.network = Some(v.to_string()),
                "nocache" => o.no_cache = query_bool(v),
                "pull" => o.pull = query_bool(v),
                "q" => o.quiet = query_bool(v),
                "buildargs" if !v.is_empty() => {
                    // `null` (what Go clients send for no map at all) is no build args.
                    let m: Option<BTreeMap<String, Option<String>>> =
                        serde_json::from_str(v).map_err(|e| bad(k, e))?;
                    // A null value means "take it from the client's environment": absent here.
                    o.build_args.extend(
                        m.into_iter()
                            .flatten()
                            .filter_map(|(k, v)| v.map(|v| (k, v))),
                    );
                }
                "labels" if !v.is_empty() => {
                    let m: Option<BTreeMap<String, String>> =
                        serde_json::from_str(v).map_err(|e| bad(k, e))?;
                    o.labels.extend(m.into_iter().flatten());
                }
                "cachefrom" if !v.is_empty() => {
                    let l: Option<Vec<String>> = serde_json::from_str(v).map_err(|e| bad(k, e))?;
                    o.cache_from.extend(l.into_iter().flatten());
                }
                // `host:ip` (or `host=ip`); repeated, or several joined by commas.
                "extrahosts" if !v.is_empty() => {
                    for h in v.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                        let (name, ip) = h
                            .split_once('=')
                            .or_else(|| h.split_once(':'))
                            .filter(|(n, ip)| {
                                !n.is_empty() && ip.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok()
                            })
                            .ok_or_else(|| {
                                BuildError::Options(format!(
                                    "invalid extra host {h:?}: want host:ip"
                                ))
                            })?;
                        o.extra_hosts
                            .push((name.to_string(), ip.trim_matches(['[', ']']).to_string()));
                    }
                }
                "remote" if !v.is_empty() => {
                    if !is_remote_context(v) {
                        return Err(BuildError::Options(format!(
                            "unsupported remote build context {v:?}: want a git repository URL or an http(s) URL of a tar archive or a Dockerfile"
                        )));
                    }
                    if git::is_git(v) {
                        git::GitSource::parse(v).map_err(BuildError::Options)?;
                    }
                    o.remote = Some(v.to_string());
                }
                "version" if v == "2" => {
                    return Err(BuildError::Options(
                        "BuildKit (version=2) is not supported: use the classic builder (DOCKER_BUILDKIT=0)".into(),
                    ))
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// Where the build context comes from.
pub enum BuildContext {
    /// A directory on the host (read, never written).
    Dir(PathBuf),
    /// A tar stream (plain, gzip or zstd), as `POST /build` receives it; unpacked
    /// (confined) into a private directory for the build.
    Tar(Box<dyn Read + Send>),
    /// A URL (`POST /build?remote=`): a git repository (`<url>[#<ref>[:<subdir>]]`,
    /// checked out with `git`), or over http(s) a tar archive (plain, gzip or zstd) or
    /// a plain Dockerfile (the context is then that file alone).
    Remote(String),
}

/// What a successful build made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    /// The image id (`sha256:...`).
    pub id: Digest,
    /// The references it was tagged with (Docker's familiar form, `name:tag`).
    pub tags: Vec<String>,
}

/// What [`Builder::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Cache records removed.
    pub records: usize,
    /// Blobs and layers freed in the store.
    pub objects: usize,
    /// Bytes freed in the builder's own directories (cache records, RUN cache mounts).
    pub bytes: u64,
}

/// A build that failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile does not parse.
    #[error("{0}")]
    Parse(#[from] crate::ParseError),
    /// The stages cannot be built (unknown target, cycle, ...).
    #[error("{file}: {error}")]
    Graph {
        /// The Dockerfile's name.
        file: String,
        /// The error (it names the line).
        error: crate::GraphError,
    },
    /// A step failed; `line` is the instruction's first line in the Dockerfile.
    #[error("{file}:{line}: {instruction}: {message}")]
    Step {
        /// The Dockerfile's name.
        file: String,
        /// The line.
        line: usize,
        /// The instruction as written.
        instruction: String,
        /// What went wrong.
        message: String,
    },
    /// A RUN exited non-zero.
    #[error(
        "{file}:{line}: {instruction}: The command '{command}' returned a non-zero code: {code}"
    )]
    RunFailed {
        /// The Dockerfile's name.
        file: String,
        /// The line.
        line: usize,
        /// The instruction as written.
        instruction: String,
        /// The command as run.
        command: String,
        /// Its exit code.
        code: i32,
        /// The end of its output (stdout and stderr).
        output: String,
    },
    /// [`BuildOptions::cancel`] was set.
    #[error("the build was cancelled")]
    Cancelled,
    /// A bad option (tag, platform, Dockerfile path).
    #[error("{0}")]
    Options(String),
    /// The context cannot be read.
    #[error("build context: {0}")]
    Context(String),
    /// The image store failed.
    #[error("image store: {0}")]
    Store(#[from] barge_image::Error),
    /// The builder's own files.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.into();
    move |source| BuildError::Io { what, path, source }
}

/// The builder: owns a state directory (cache records, RUN bundles, runtime state, cache
/// mounts) and builds into a [`Store`]. Cheap to share: `build` takes `&self` and several
/// builds may run at once.
pub struct Builder {
    store: Arc<Store>,
    root: PathBuf,
    cleanups: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Whether `new` bind-mounted `<root>/tmp` on itself (undone on drop).
    tmp_bound: bool,
}

impl Drop for Builder {
    fn drop(&mut self) {
        let hs = std::mem::take(
            &mut *self
                .cleanups
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for h in hs {
            let _ = h.join();
        }
        if self.tmp_bound {
            let _ = unmount_retry(&self.root.join("tmp"));
        }
    }
}

/// The result of a stage (or of a step): an image config and its layers.
#[derive(Debug, Clone)]
struct State {
    config: Value,
    layers: Vec<LayerRecord>,
    /// The cache chain key of the last step.
    key: Digest,
    /// The id (config digest) of the last step.
    id: Digest,
    /// The config's bytes as stored, while the state is an unchanged base image (so a
    /// build that changes nothing gives the base's id, as Docker does).
    raw: Option<Vec<u8>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheRecord {
    config: String,
    layers: Vec<LayerRecord>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let d = Digest::of(format!("{}-{nanos}-{n}", std::process::id()).as_bytes());
    format!("{prefix}{}", &d.hex()[..16])
}

fn host_platform() -> (String, String) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux".to_string(), arch.to_string())
}

impl Builder {
    /// A builder storing images in `store` and its own state under `root` (created if
    /// needed; e.g. `<data-root>/builder`). Leftovers of an interrupted build (bundles,
    /// unpacked contexts) are removed; the cache records are kept.
    pub fn new(store: Arc<Store>, root: impl Into<PathBuf>) -> Result<Builder, BuildError> {
        let root = root.into();
        for d in ["", "cache", "tmp", "runtime", "mounts"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io_err("create directory", &p))?;
            // Unpacked contexts may hold device nodes and set-id files (kept as root, as
            // Docker does): nobody else may reach them.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err("chmod", &p))?;
        }
        let root = std::fs::canonicalize(&root).map_err(io_err("resolve", &root))?;
        // Without the right to mount (not root) builds cannot RUN or COPY anyway; the
        // builder still opens, for prune and parsing errors.
        let tmp_bound = make_private(&root.join("tmp")).unwrap_or(false);
        let b = Builder {
            store,
            root,
            cleanups: Mutex::new(Vec::new()),
            tmp_bound,
        };
        b.cleanup_tmp();
        Ok(b)
    }

    /// The store images are built into.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn cleanup_tmp(&self) {
        let tmp = self.root.join("tmp");
        let Ok(rd) = std::fs::read_dir(&tmp) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            // A mount left by a crash: unmount before removing anything under it.
            let _ = barge_image::snapshot::unmount(&p.join("rootfs"));
            let _ = barge_image::snapshot::unmount(&p);
            let _ = std::fs::remove_dir_all(&p);
        }
        if let Ok(snaps) = self.store.list_snapshots() {
            for s in snaps {
                if s.key.starts_with("build-") {
                    let _ = self.store.remove_snapshot(&s.key);
                }
            }
        }
    }

    /// `builder prune`: drops every cache record and the RUN cache mounts, then frees
    /// the store's blobs and layers no image uses any more.
    pub fn prune(&self) -> Result<PruneReport, BuildError> {
        let mut rep = PruneReport::default();
        let cache = self.root.join("cache");
        for e in std::fs::read_dir(&cache).map_err(io_err("read directory", &cache))? {
            let e = e.map_err(io_err("read directory", &cache))?;
            rep.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(e.path()).map_err(io_err("remove", e.path()))?;
            rep.records += 1;
        }
        let mounts = self.root.join("mounts");
        for e in std::fs::read_dir(&mounts).map_err(io_err("read directory", &mounts))? {
            let e = e.map_err(io_err("read directory", &mounts))?;
            rep.bytes += dir_size(&e.path());
            std::fs::remove_dir_all(e.path()).map_err(io_err("remove", e.path()))?;
        }
        rep.objects = self.store.gc()?;
        Ok(rep)
    }

    /// Builds an image. Blocking (it runs RUN steps as subprocesses and does file I/O):
    /// call it from a blocking thread (`tokio::task::spawn_blocking`). Every event goes to
    /// `progress`, including the final error (as [`Event::Error`]) when the build fails.
    pub fn build(
        &self,
        options: &BuildOptions,
        context: BuildContext,
        progress: &dyn Progress,
    ) -> Result<BuildOutput, BuildError> {
        let mut tmp_ctx = None;
        let r = self.build_inner(options, context, progress, &mut tmp_ctx);
        if let Some(p) = tmp_ctx {
            // Removing an unpacked context can take seconds: not on the build's time. The
            // thread is joined when the Builder drops; a crash leaves it to `new`.
            let h = std::thread::spawn(move || {
                let _ = std::fs::remove_dir_all(p);
            });
            let mut c = self
                .cleanups
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            c.retain(|h| !h.is_finished());
            c.push(h);
        }
        if let Err(e) = &r {
            progress.event(&Event::Error(e.to_string()));
        }
        r
    }

    fn build_inner(
        &self,
        opts: &BuildOptions,
        context: BuildContext,
        progress: &dyn Progress,
        tmp_ctx: &mut Option<PathBuf>,
    ) -> Result<BuildOutput, BuildError> {
        // Tags first: a bad tag must fail before any work.
        let mut refs = Vec::new();
        for t in &opts.tags {
            let r = Reference::parse(t)
                .map_err(|e| BuildError::Options(format!("invalid tag {t:?}: {e}")))?;
            refs.push(r);
        }
        if let Some(p) = &opts.platform {
            check_platform(p).map_err(BuildError::Options)?;
        }
        let mut cache_from = Vec::new();
        for c in &opts.cache_from {
            let rec = self.store.resolve(c)?;
            let cfg: Value =
                serde_json::from_slice(&self.store.read_document(&rec.id, "image config")?)
                    .map_err(|e| BuildError::Options(format!("--cache-from {c}: {e}")))?;
            cache_from.push((cfg, rec.layers));
        }
        if opts.pull && opts.registry.is_none() {
            progress.event(&Event::Warning(
                "--pull: this builder has no registry access; base images come from the store"
                    .into(),
            ));
        }
        let ctx_dir = match context {
            BuildContext::Dir(d) => d,
            BuildContext::Tar(r) => {
                let d = self.root.join("tmp").join(unique("ctx-"));
                std::fs::create_dir(&d).map_err(io_err("create directory", &d))?;
                *tmp_ctx = Some(d.clone());
                unpack_context(r, &d)?;
                d
            }
            BuildContext::Remote(url) => {
                let d = self.root.join("tmp").join(unique("ctx-"));
                *tmp_ctx = Some(d.clone());
                remote_context(&url, &d, opts)?
            }
        };
        let ctx_fd = fsutil::open_root(&ctx_dir)
            .map_err(|e| BuildError::Context(format!("{}: {e}", ctx_dir.display())))?;
        let file = opts
            .dockerfile
            .clone()
            .unwrap_or_else(|| "Dockerfile".to_string());
        let text = read_dockerfile(ctx_fd.as_raw_fd(), &file)?;
        let df = crate::parse_named(&text, &file)?;
        let ignore = read_ignore(ctx_fd.as_raw_fd(), &file)?;
        let graph = StageGraph::new(&df, &opts.build_args).map_err(|error| BuildError::Graph {
            file: file.clone(),
            error,
        })?;
        let plan = graph
            .plan(opts.target.as_deref())
            .map_err(|error| BuildError::Graph {
                file: file.clone(),
                error,
            })?;
        let mut meta = df
            .meta_arg_values(&opts.build_args)
            .map_err(|e| BuildError::Step {
                file: file.clone(),
                line: df.meta_args.first().map_or(1, |i| i.start_line),
                instruction: "ARG".into(),
                message: e.to_string(),
            })?;
        let (os, arch) = host_platform();
        for (k, v) in [
            ("TARGETPLATFORM", format!("{os}/{arch}")),
            ("TARGETOS", os.clone()),
            ("TARGETARCH", arch.clone()),
            ("BUILDPLATFORM", format!("{os}/{arch}")),
            ("BUILDOS", os.clone()),
            ("BUILDARCH", arch.clone()),
        ] {
            meta.entry(k.to_string()).or_insert(v);
        }
        let mut offsets = vec![0usize; df.stages.len()];
        let mut total = 0;
        for i in plan.order() {
            offsets[i] = total;
            total += 1 + df.stages[i].instructions.len();
        }
        let lease = self.store.lease();
        let run = Run {
            b: self,
            opts,
            df: &df,
            graph: &graph,
            file: file.clone(),
            ctx_fd,
            ignore,
            lease: &lease,
            progress,
            meta,
            results: Mutex::new(vec![None; df.stages.len()]),
            offsets,
            total,
            unused_args: Mutex::new(None),
            cache_from,
            pulled: Mutex::new(BTreeMap::new()),
        };
        for (_, layers) in &run.cache_from {
            for l in layers {
                lease.hold(&l.blob);
                lease.hold(&l.diff_id);
            }
        }
        for level in &plan.levels {
            if level.len() == 1 {
                run.stage(level[0])?;
            } else {
                let errs: Vec<Result<(), BuildError>> = std::thread::scope(|s| {
                    let hs: Vec<_> = level
                        .iter()
                        .map(|&i| {
                            let run = &run;
                            s.spawn(move || run.stage(i))
                        })
                        .collect();
                    hs.into_iter()
                        .map(|h| {
                            h.join().unwrap_or_else(|_| {
                                Err(BuildError::Options("a stage's thread panicked".into()))
                            })
                        })
                        .collect()
                });
                for e in errs {
                    e?;
                }
            }
        }
        let unused = run
            .unused_args
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        if !unused.is_empty() {
            let list: Vec<String> = unused.into_iter().collect();
            run.emit(Event::Warning(format!(
                "One or more build-args [{}] were not consumed",
                list.join(" ")
            )));
        }
        let fin = run
            .result(plan.target)
            .ok_or_else(|| BuildError::Options("the target stage was not built".into()))?;
        let mut config = fin.config.clone();
        if !opts.labels.is_empty() {
            let labels = obj(&mut config["config"], "Labels");
            for (k, v) in &opts.labels {
                labels.insert(k.clone(), Value::String(v.clone()));
            }
        }
        let bytes = match &fin.raw {
            Some(raw) if opts.labels.is_empty() => raw.clone(),
            _ => serde_json::to_vec(&config).map_err(|e| BuildError::Options(e.to_string()))?,
        };
        // An all-cached rebuild gives an image that exists already: nothing to write.
        let id = Digest::of(&bytes);
        let rec = match self.store.resolve(&id.to_string()) {
            Ok(rec) if rec.id == id => rec,
            _ => self.store.create_image(&lease, &bytes, &fin.layers, None)?,
        };
        progress.event(&Event::Built {
            id: rec.id.to_string(),
            quiet: opts.quiet,
        });
        let mut tags = Vec::new();
        for r in &refs {
            let current = self.store.resolve(&r.to_string()).ok().map(|i| i.id);
            if current.as_ref() != Some(&rec.id) {
                self.store.tag(&rec.id.to_string(), r)?;
            }
            let name = r.familiar();
            if !opts.quiet {
                progress.event(&Event::Tagged(name.clone()));
            }
            tags.push(name);
        }
        drop(run);
        drop(lease);
        Ok(BuildOutput { id: rec.id, tags })
    }

    fn record_path(&self, key: &Digest) -> PathBuf {
        self.root.join("cache").join(format!("{}.json", key.hex()))
    }

    fn load_record(
        &self,
        key: &Digest,
        lease: &Lease<'_>,
    ) -> Option<(Value, Vec<LayerRecord>, Digest)> {
        let data = std::fs::read(self.record_path(key)).ok()?;
        let rec: CacheRecord = serde_json::from_slice(&data).ok()?;
        for l in &rec.layers {
            lease.hold(&l.blob);
            lease.hold(&l.diff_id);
            if !self.store.has_layer(&l.diff_id) || !self.store.has_blob(&l.blob) {
                return None;
            }
        }
        let config: Value = serde_json::from_str(&rec.config).ok()?;
        let id = Digest::of(rec.config.as_bytes());
        Some((config, rec.layers, id))
    }

    fn save_record(
        &self,
        key: &Digest,
        config: &str,
        layers: &[LayerRecord],
    ) -> Result<(), BuildError> {
        let rec = CacheRecord {
            config: config.to_string(),
            layers: layers.to_vec(),
        };
        let data = serde_json::to_vec(&rec).map_err(|e| BuildError::Options(e.to_string()))?;
        barge_image::store::atomic_write(&self.record_path(key), &data)?;
        Ok(())
    }
}

fn dir_size(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

fn check_platform(p: &str) -> Result<(), String> {
    let (os, arch) = host_platform();
    let mut parts = p.split('/');
    let pos = parts.next().unwrap_or_default();
    let parch = parts.next().unwrap_or(arch.as_str());
    if pos == os && parch == arch {
        Ok(())
    } else {
        Err(format!(
            "platform {p:?} is not supported: barge builds for the host's platform ({os}/{arch}) only"
        ))
    }
}

/// Unpacks a context tar (plain, gzip or zstd) into `d`, confined.
fn unpack_context(r: impl Read + Send + 'static, d: &Path) -> Result<(), BuildError> {
    // Decompressed first, so TarTail sees tar blocks: the docker CLI may cut the stream
    // after its last entry (see tartail).
    let plain = barge_image::unpack::decompress(r, "build context")
        .map_err(|e| BuildError::Context(e.to_string()))?;
    barge_image::unpack::unpack(
        crate::tartail::TarTail::new(plain),
        d,
        "build context",
        &barge_image::unpack::UnpackOptions::default(),
    )
    .map_err(|e| BuildError::Context(e.to_string()))?;
    Ok(())
}

/// Fetches a remote context into the new directory `d` and returns the context
/// directory (a git source's subdir, resolved beneath the checkout).
fn remote_context(url: &str, d: &Path, opts: &BuildOptions) -> Result<PathBuf, BuildError> {
    if git::is_git(url) {
        let g = git::GitSource::parse(url).map_err(BuildError::Context)?;
        let commit =
            git::checkout(&g, None, d, false, opts.cancel.as_deref()).map_err(|e| {
                match e.as_str() {
                    git::CANCELLED => BuildError::Cancelled,
                    _ => BuildError::Context(e),
                }
            })?;
        let Some(sub) = &g.subdir else {
            return Ok(d.to_path_buf());
        };
        let root = fsutil::open_root(d).map_err(|e| BuildError::Context(e.to_string()))?;
        let fd = fsutil::openat2(
            root.as_raw_fd(),
            sub,
            libc::O_PATH | libc::O_DIRECTORY,
            fsutil::BENEATH,
        )
        .map_err(|e| {
            BuildError::Context(format!(
                "no directory {sub:?} in {} at commit {commit}: {e}",
                g.display_url()
            ))
        })?;
        return fsutil::fd_path(fd.as_raw_fd()).map_err(|e| BuildError::Context(e.to_string()));
    }
    let dl = fetch::fetch(url, None).map_err(BuildError::Context)?;
    std::fs::create_dir(d).map_err(io_err("create directory", d))?;
    if copy::is_archive_head(&dl.data[..dl.data.len().min(512)]) {
        unpack_context(std::io::Cursor::new(dl.data), d)?;
    } else {
        // A plain Dockerfile: the context is that file alone (as dockerd's).
        let name = opts
            .dockerfile
            .as_deref()
            .filter(|n| !n.contains('/'))
            .unwrap_or("Dockerfile");
        let p = d.join(name);
        std::fs::write(&p, &dl.data).map_err(io_err("write", &p))?;
    }
    Ok(d.to_path_buf())
}

fn read_dockerfile(ctx: RawFd, name: &str) -> Result<String, BuildError> {
    if fsutil::clean(name).is_none() {
        return Err(BuildError::Options(format!(
            "the Dockerfile ({name}) must be within the build context"
        )));
    }
    let open = |n: &str| fsutil::openat2(ctx, n, libc::O_RDONLY, BENEATH);
    let fd = match open(name) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && name == "Dockerfile" => {
            open("dockerfile").map_err(|_| {
                BuildError::Options(format!("Cannot locate specified Dockerfile: {name}"))
            })?
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            return Err(BuildError::Options(format!(
                "Cannot locate specified Dockerfile: {name}"
            )))
        }
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            return Err(BuildError::Options(format!(
                "the Dockerfile ({name}) must be within the build context"
            )))
        }
        Err(e) => return Err(BuildError::Options(format!("Dockerfile {name}: {e}"))),
    };
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(16 << 20)
        .read_to_string(&mut s)
        .map_err(|e| BuildError::Options(format!("Dockerfile {name}: {e}")))?;
    Ok(s)
}

fn read_ignore(ctx: RawFd, dockerfile: &str) -> Result<DockerIgnore, BuildError> {
    for name in [
        format!("{dockerfile}.dockerignore"),
        ".dockerignore".to_string(),
    ] {
        if let Ok(fd) = fsutil::openat2(ctx, &name, libc::O_RDONLY, BENEATH) {
            let mut s = String::new();
            std::fs::File::from(fd)
                .take(4 << 20)
                .read_to_string(&mut s)
                .map_err(|e| BuildError::Context(format!("{name}: {e}")))?;
            return DockerIgnore::parse(&s)
                .map_err(|e| BuildError::Context(format!("{name}: {e}")));
        }
    }
    DockerIgnore::parse("").map_err(|e| BuildError::Context(e.to_string()))
}

/// Returns the object at `v[key]`, making `v` an object and `v[key]` one if needed.
fn obj<'a>(v: &'a mut Value, key: &str) -> &'a mut serde_json::Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    let Value::Object(m) = v else {
        unreachable!("made an object above")
    };
    let e = m.entry(key.to_string()).or_insert_with(|| json!({}));
    if !e.is_object() {
        *e = json!({});
    }
    let Value::Object(inner) = e else {
        unreachable!("made an object above")
    };
    inner
}

/// Unmounts `target`; if it is busy (a container namespace made meanwhile may hold a
/// copy for a moment), retries briefly, then detaches it lazily: nothing writes to it any
/// more, and the detached copy goes away with its last user.
fn unmount_retry(target: &Path) -> Result<(), BuildError> {
    for _ in 0..20 {
        match barge_image::snapshot::unmount(target) {
            Ok(()) => return Ok(()),
            Err(barge_image::Error::Mount { source, .. })
                if source.raw_os_error() == Some(libc::EBUSY) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let c =
        fsutil::cstr(target.as_os_str().as_encoded_bytes()).map_err(io_err("unmount", target))?;
    // SAFETY: c is NUL-terminated.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) } < 0 {
        return Err(io_err("unmount", target)(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Whether `dir` is a mount point (listed in /proc/self/mountinfo).
fn is_mount_point(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    info.lines().any(|l| {
        l.split(' ').nth(4).is_some_and(|mp| {
            mp.replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\")
                == want
        })
    })
}

/// Makes `dir` a private mount (bind-mounting it on itself first unless it is a mount
/// point already), so the snapshot mounts under it do not propagate into, nor get kept
/// busy by, the mount namespaces of containers created meanwhile (Docker does the same
/// for its graph directory). Returns whether a bind mount was made.
fn make_private(dir: &Path) -> Result<bool, BuildError> {
    let c = fsutil::cstr(dir.as_os_str().as_encoded_bytes()).map_err(io_err("mount", dir))?;
    let mut bound = false;
    if !is_mount_point(dir) {
        // SAFETY: c is NUL-terminated; the other pointers may be null for MS_BIND.
        if unsafe {
            libc::mount(
                c.as_ptr(),
                c.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        } < 0
        {
            return Err(io_err("bind mount", dir)(std::io::Error::last_os_error()));
        }
        bound = true;
    }
    // SAFETY: as above; MS_PRIVATE takes no source.
    if unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_PRIVATE,
            std::ptr::null(),
        )
    } < 0
    {
        let e = std::io::Error::last_os_error();
        if bound {
            // SAFETY: c is NUL-terminated.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        return Err(io_err("make private", dir)(e));
    }
    Ok(bound)
}

/// A snapshot of some layers mounted at `<tmp>/<key>/rootfs`; unmounted and removed on
/// drop unless committed.
struct Snap<'a> {
    store: &'a Store,
    key: String,
    dir: PathBuf,
    mounted: bool,
    prepared: bool,
}

impl<'a> Snap<'a> {
    fn new(b: &'a Builder, layers: &[LayerRecord]) -> Result<Snap<'a>, BuildError> {
        let key = unique("build-");
        let dir = b.root.join("tmp").join(&key);
        let mut s = Snap {
            store: &b.store,
            key,
            dir,
            mounted: false,
            prepared: false,
        };
        let rootfs = s.rootfs();
        std::fs::create_dir_all(&rootfs).map_err(io_err("create directory", &rootfs))?;
        let ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        b.store.prepare(&s.key, &ids)?;
        s.prepared = true;
        b.store.mount(&s.key, &rootfs)?;
        s.mounted = true;
        Ok(s)
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    fn unmount(&mut self) -> Result<(), BuildError> {
        if self.mounted {
            unmount_retry(&self.rootfs())?;
            self.mounted = false;
        }
        Ok(())
    }

    fn commit(mut self, lease: &Lease<'_>) -> Result<LayerRecord, BuildError> {
        self.unmount()?;
        let l = self.store.commit_snapshot_adopt(&self.key, lease)?;
        lease.hold(&l.blob);
        lease.hold(&l.diff_id);
        Ok(l)
    }
}

impl Drop for Snap<'_> {
    fn drop(&mut self) {
        if self.mounted && unmount_retry(&self.rootfs()).is_err() {
            // Still mounted: removing anything under it could reach the layers.
            return;
        }
        if self.prepared {
            let _ = self.store.remove_snapshot(&self.key);
        }
        let _ = std::fs::remove_file(self.dir.join("config.json"));
        let _ = std::fs::remove_dir(self.rootfs());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One build in progress.
struct Run<'a> {
    b: &'a Builder,
    opts: &'a BuildOptions,
    df: &'a Dockerfile,
    graph: &'a StageGraph,
    file: String,
    ctx_fd: OwnedFd,
    ignore: DockerIgnore,
    lease: &'a Lease<'a>,
    progress: &'a dyn Progress,
    meta: BTreeMap<String, String>,
    results: Mutex<Vec<Option<Arc<State>>>>,
    offsets: Vec<usize>,
    total: usize,
    /// `--cache-from` images: config and layers.
    cache_from: Vec<(Value, Vec<LayerRecord>)>,
    /// Build args no built stage used so far (None: no stage done yet).
    unused_args: Mutex<Option<std::collections::BTreeSet<String>>>,
    /// Images pulled by this build (`--pull` pulls each once), and how that went.
    pulled: Mutex<BTreeMap<String, Result<(), String>>>,
}

/// The per-stage mutable state besides the image.
struct StageCtx {
    scope: Scope,
    shell: Vec<String>,
    cmd_set: bool,
}

impl<'a> Run<'a> {
    fn result(&self, i: usize) -> Option<Arc<State>> {
        self.results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(i)
            .cloned()
            .flatten()
    }

    fn cancelled(&self) -> bool {
        self.opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn emit(&self, e: Event) {
        if !self.opts.quiet {
            self.progress.event(&e);
        }
    }

    fn step_err(&self, inst: &Instruction, message: impl std::fmt::Display) -> BuildError {
        BuildError::Step {
            file: self.file.clone(),
            line: inst.start_line,
            instruction: inst.original.clone(),
            message: message.to_string(),
        }
    }

    /// Pulls `name` from its registry, once per build (concurrent stages asking for the
    /// same image wait for the first pull). Its status lines go to the progress.
    fn pull(&self, name: &str) -> Result<(), String> {
        let Some(reg) = &self.opts.registry else {
            return Err("this builder has no registry access".into());
        };
        let mut done = self
            .pulled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = done.get(name) {
            return r.clone();
        }
        let r = (|| {
            let reference = Reference::parse(name).map_err(|e| format!("{name}: {e}"))?;
            // The registry client wants a 'static callback: lines go through a channel and
            // are reported when the pull is over.
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            let report = move |p: barge_image::progress::Progress| {
                use barge_image::progress::Progress as P;
                if !matches!(
                    p,
                    P::PullingFrom { .. } | P::Digest { .. } | P::Status { .. }
                ) {
                    return;
                }
                for v in p.to_docker_json() {
                    let status = v["status"].as_str().unwrap_or_default();
                    let _ = tx.send(match v["id"].as_str() {
                        Some(id) => format!("{id}: {status}"),
                        None => status.to_string(),
                    });
                }
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the registry client: {e}"))?;
            let r = rt
                .block_on(barge_image::registry::pull(
                    self.b.store.clone(),
                    &reference,
                    reg,
                    &report,
                ))
                .map(|_| ())
                .map_err(|e| format!("pulling {name}: {e}"));
            drop(report);
            for line in rx.try_iter() {
                self.emit(Event::Pull(line));
            }
            r
        })();
        done.insert(name.to_string(), r.clone());
        r
    }

    /// The base of a stage (or a `--from` image) from the store; pulled first with
    /// `--pull`, or when it is missing and the builder can reach registries.
    fn image_state(&self, name: &str) -> Result<State, String> {
        if self.opts.pull && self.opts.registry.is_some() {
            self.pull(name)?;
        }
        let rec = match self.b.store.resolve(name) {
            Ok(rec) => rec,
            Err(_) if self.opts.registry.is_some() => {
                self.pull(name)?;
                self.b.store.resolve(name).map_err(|e| e.to_string())?
            }
            Err(e) => {
                return Err(format!(
                    "{e} (this builder uses images already in the store; pull or load it first)"
                ))
            }
        };
        let bytes = self
            .b
            .store
            .read_document(&rec.id, "image config")
            .map_err(|e| e.to_string())?;
        let config: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        for l in &rec.layers {
            self.lease.hold(&l.blob);
            self.lease.hold(&l.diff_id);
        }
        Ok(State {
            config,
            layers: rec.layers.clone(),
            key: Digest::of(format!("{CACHE_VERSION}\0from\0{}", rec.id).as_bytes()),
            id: rec.id,
            raw: Some(bytes),
        })
    }

    fn scratch_state(&self) -> State {
        let (os, arch) = host_platform();
        let config = json!({
            "architecture": arch,
            "os": os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        });
        let bytes = serde_json::to_vec(&config).unwrap_or_default();
        State {
            config,
            layers: Vec::new(),
            key: Digest::of(format!("{CACHE_VERSION}\0scratch").as_bytes()),
            id: Digest::of(&bytes),
            raw: None,
        }
    }

    fn stage(&self, i: usize) -> Result<(), BuildError> {
        let stage = &self.df.stages[i];
        let node = &self.graph.stages[i];
        let from = &stage.from;
        let mut number = self.offsets[i] + 1;
        let t0 = Instant::now();
        self.emit(Event::Step {
            number,
            total: self.total,
            instruction: from.original.clone(),
        });
        if let Some(p) = &stage.base.platform {
            let p = self
                .df
                .lexer()
                .expand(p, &self.meta)
                .map_err(|e| self.step_err(from, e))?;
            check_platform(&p).map_err(|e| self.step_err(from, e))?;
        }
        let mut st = match &node.base {
            StageBase::Scratch => self.scratch_state(),
            StageBase::Image(name) => self.image_state(name).map_err(|e| self.step_err(from, e))?,
            StageBase::Stage(j) => {
                let s = self
                    .result(*j)
                    .ok_or_else(|| self.step_err(from, "the base stage was not built"))?;
                (*s).clone()
            }
        };
        self.emit(Event::StepDone {
            id: st.id.to_string(),
            elapsed: t0.elapsed(),
        });
        let mut env: Vec<String> = st.config["config"]["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        // As the classic builder: a base without PATH gets the default one, so `$PATH`
        // expands to it and RUN and the built image find their programs.
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(DEFAULT_PATH.to_string());
            if !st.config["config"].is_object() {
                st.config["config"] = json!({});
            }
            st.config["config"]["Env"] = json!(env);
        }
        let shell: Vec<String> = st.config["config"]["Shell"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .filter(|v: &Vec<String>| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
        let mut sc = StageCtx {
            scope: Scope::new(self.meta.clone(), self.opts.build_args.clone(), &env),
            shell,
            cmd_set: false,
        };
        // ONBUILD triggers of the base image run first, then are cleared.
        let triggers: Vec<String> = st.config["config"]["OnBuild"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if !triggers.is_empty() {
            self.emit(Event::Triggers {
                count: triggers.len(),
            });
            if let Some(c) = st.config.get_mut("config").and_then(|c| c.as_object_mut()) {
                c.remove("OnBuild");
            }
            st.raw = None;
            for t in &triggers {
                let parsed = crate::parse_named(&format!("FROM scratch\n{t}\n"), "ONBUILD trigger")
                    .map_err(|e| self.step_err(from, format!("ONBUILD trigger {t:?}: {e}")))?;
                let inst = parsed
                    .stages
                    .first()
                    .and_then(|s| s.instructions.first())
                    .cloned()
                    .ok_or_else(|| self.step_err(from, format!("empty ONBUILD trigger {t:?}")))?;
                let mut inst = inst;
                // Errors in a trigger name the FROM line that pulled it in.
                inst.start_line = from.start_line;
                inst.end_line = from.end_line;
                self.step(&mut st, &mut sc, &inst, None)?;
            }
        }
        for inst in &stage.instructions {
            number += 1;
            self.step(&mut st, &mut sc, inst, Some(number))?;
        }
        {
            let mine: std::collections::BTreeSet<String> =
                sc.scope.unconsumed_build_args().into_iter().collect();
            let mut u = self
                .unused_args
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *u = Some(match u.take() {
                None => mine,
                Some(prev) => prev.intersection(&mine).cloned().collect(),
            });
        }
        let mut r = self
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        r[i] = Some(Arc::new(st));
        Ok(())
    }

    fn step(
        &self,
        st: &mut State,
        sc: &mut StageCtx,
        inst: &Instruction,
        number: Option<usize>,
    ) -> Result<(), BuildError> {
        let t0 = Instant::now();
        if self.cancelled() {
            return Err(BuildError::Cancelled);
        }
        if let Some(number) = number {
            self.emit(Event::Step {
                number,
                total: self.total,
                instruction: inst.original.clone(),
            });
        }
        let lexer = self.df.lexer();
        let cmd = sc
            .scope
            .apply(&lexer, &inst.command)
            .map_err(|e| self.step_err(inst, e))?;
        let mut h = Hasher::new();
        h.update(CACHE_VERSION.as_bytes());
        h.update(st.key.to_string().as_bytes());
        // An ARG's value reaches the key through what uses it (RUN's environment, the
        // expanded arguments of later instructions), as in the classic builder.
        let keyed = if matches!(cmd, Command::Arg(_)) {
            &inst.command
        } else {
            &cmd
        };
        h.update(format!("{keyed:?}\0{:?}", inst.heredocs).as_bytes());
        let mut copy_plan = None;
        match &cmd {
            Command::Run(_) => {
                // The predefined proxy args are left out, as Docker does: a proxy change
                // does not invalidate the cache.
                let env: Vec<(String, String)> = sc
                    .scope
                    .run_env()
                    .into_iter()
                    .filter(|(k, _)| !crate::PREDEFINED_ARGS.contains(&k.as_str()))
                    .collect();
                h.update(format!("{env:?}\0{:?}", sc.shell).as_bytes());
                if let Command::Run(r) = &cmd {
                    h.update(self.bind_sources_hash(sc, inst, r)?.hex().as_bytes());
                }
                h.update(format!("{:?}", self.opts.network).as_bytes());
            }
            Command::Copy(_) | Command::Add(_) => {
                let plan = self.plan_copy(st, &cmd, inst)?;
                h.update(plan.hash.hex().as_bytes());
                copy_plan = Some(plan);
            }
            _ => {}
        }
        let key = h.finish();
        if !self.opts.no_cache {
            if let Some((config, layers, id)) = self.b.load_record(&key, self.lease) {
                self.apply_meta_scope(sc, &cmd);
                *st = State {
                    config,
                    layers,
                    key,
                    id,
                    raw: None,
                };
                self.emit(Event::CacheHit);
                self.emit(Event::StepDone {
                    id: st.id.to_string(),
                    elapsed: t0.elapsed(),
                });
                return Ok(());
            }
        }
        let mut config = st.config.clone();
        let mut layers = st.layers.clone();
        let created = barge_image::image::now_rfc3339();
        let mut history = json!({"created": created});
        let mut new_layer = None;
        let planned_by = match (&cmd, &copy_plan) {
            (Command::Run(r), _) => Some(run::run_created_by(sc, inst, r)),
            (_, Some(plan)) => Some(copy_created_by(sc, inst, &cmd, plan)),
            _ => None,
        };
        let reused = match &planned_by {
            Some(by) if !self.opts.no_cache => self.reuse_cache_image(st, by, false),
            _ => None,
        };
        if let Some((layer, h)) = reused {
            self.emit(Event::CacheHit);
            history = h;
            new_layer = layer;
        } else {
            match &cmd {
                Command::Run(r) => {
                    let (layer, created_by) = self.run_step(st, sc, inst, r)?;
                    history["created_by"] = Value::String(created_by);
                    new_layer = Some(layer);
                }
                Command::Copy(_) | Command::Add(_) => {
                    let plan = copy_plan
                        .take()
                        .ok_or_else(|| self.step_err(inst, "no copy plan"))?;
                    let created_by = copy_created_by(sc, inst, &cmd, &plan);
                    let layer = self.copy_step(st, inst, plan)?;
                    history["created_by"] = Value::String(created_by);
                    new_layer = Some(layer);
                }
                _ => {
                    self.meta_step(&mut config, sc, inst, &cmd)?;
                    let by = meta_created_by(&config, sc, inst, &cmd);
                    // --cache-from matches metadata steps too (their history entry, with its
                    // time), so a build from a cache image gives that image's id again.
                    let cached = match self.opts.no_cache {
                        false => self.reuse_cache_image(st, &by, true),
                        true => None,
                    };
                    if let Some((_, h)) = cached {
                        self.emit(Event::CacheHit);
                        history = h;
                    } else {
                        history["created_by"] = Value::String(by);
                        history["empty_layer"] = Value::Bool(true);
                    }
                }
            }
        }
        if let Some(l) = new_layer {
            if let Some(ids) = config["rootfs"]["diff_ids"].as_array_mut() {
                ids.push(Value::String(l.diff_id.to_string()));
            } else {
                config["rootfs"] = json!({"type": "layers", "diff_ids": [l.diff_id.to_string()]});
            }
            layers.push(l);
        }
        // A step taken from a cache image keeps that image's time, as dockerd restores it.
        config["created"] = match history.get("created") {
            Some(Value::String(t)) => Value::String(t.clone()),
            _ => Value::String(created),
        };
        match config.get_mut("history").and_then(|h| h.as_array_mut()) {
            Some(a) => a.push(history),
            None => config["history"] = json!([history]),
        }
        let text = serde_json::to_string(&config).map_err(|e| self.step_err(inst, e))?;
        let id = Digest::of(text.as_bytes());
        self.b.save_record(&key, &text, &layers)?;
        *st = State {
            config,
            layers,
            key,
            id,
            raw: None,
        };
        self.emit(Event::StepDone {
            id: st.id.to_string(),
            elapsed: t0.elapsed(),
        });
        Ok(())
    }

    /// `--cache-from`: an image whose history and layers start as this stage's do and
    /// whose next history entry is this step (`created_by`, `empty` for a metadata step)
    /// gives the step's history entry and, unless `empty`, its layer.
    fn reuse_cache_image(
        &self,
        st: &State,
        created_by: &str,
        empty: bool,
    ) -> Option<(Option<LayerRecord>, Value)> {
        let ours = st.config["history"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let our_ids: Vec<&Digest> = st.layers.iter().map(|l| &l.diff_id).collect();
        let by = |h: &Value| {
            (
                h["created_by"].as_str().unwrap_or("").to_string(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        };
        for (cfg, layers) in &self.cache_from {
            let theirs = cfg["history"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            if theirs.len() <= ours.len() || layers.len() < our_ids.len() + usize::from(!empty) {
                continue;
            }
            if !ours.iter().zip(theirs).all(|(a, b)| by(a) == by(b)) {
                continue;
            }
            if !layers.iter().zip(&our_ids).all(|(l, d)| &l.diff_id == *d) {
                continue;
            }
            let next = &theirs[ours.len()];
            if by(next) != (created_by.to_string(), empty) {
                continue;
            }
            if empty {
                return Some((None, next.clone()));
            }
            let l = layers[our_ids.len()].clone();
            if self.b.store.has_layer(&l.diff_id) && self.b.store.has_blob(&l.blob) {
                return Some((Some(l), next.clone()));
            }
        }
        None
    }

    /// What a cached step would have changed in the stage context besides the image.
    fn apply_meta_scope(&self, sc: &mut StageCtx, cmd: &Command) {
        match cmd {
            Command::Shell(v) => sc.shell = v.clone(),
            Command::Cmd(_) => sc.cmd_set = true,
            _ => {}
        }
    }

    fn meta_step(
        &self,
        config: &mut Value,
        sc: &mut StageCtx,
        inst: &Instruction,
        cmd: &Command,
    ) -> Result<(), BuildError> {
        let cl = |c: &CommandLine, shell: &[String]| -> Value {
            match c {
                CommandLine::Exec(v) => json!(v),
                CommandLine::Shell(s) => {
                    let mut v = shell.to_vec();
                    v.push(s.clone());
                    json!(v)
                }
            }
        };
        if !config["config"].is_object() {
            config["config"] = json!({});
        }
        let c = &mut config["config"];
        match cmd {
            Command::Env(_) => {
                let env: Vec<String> = sc
                    .scope
                    .env()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                c["Env"] = json!(env);
            }
            Command::Arg(_) => {}
            Command::Label(kvs) => {
                let labels = obj(c, "Labels");
                for kv in kvs {
                    labels.insert(kv.key.clone(), Value::String(kv.value.clone()));
                }
            }
            Command::Maintainer(m) => {
                config["author"] = Value::String(m.clone());
                let labels = obj(&mut config["config"], "Labels");
                labels.insert("maintainer".into(), Value::String(m.clone()));
            }
            Command::Expose(ports) => {
                let ex = obj(c, "ExposedPorts");
                for p in ports {
                    let p = if p.contains('/') {
                        p.to_ascii_lowercase()
                    } else {
                        format!("{p}/tcp")
                    };
                    let port = p.split('/').next().unwrap_or_default();
                    let ok = port.split('-').all(|n| n.parse::<u16>().is_ok());
                    if !ok {
                        return Err(self.step_err(inst, format!("invalid port {p:?}")));
                    }
                    ex.insert(p, json!({}));
                }
            }
            Command::Volume(paths) => {
                let vols = obj(c, "Volumes");
                for p in paths {
                    if p.trim().is_empty() {
                        return Err(
                            self.step_err(inst, "VOLUME specified can not be an empty string")
                        );
                    }
                    vols.insert(p.clone(), json!({}));
                }
            }
            Command::Workdir(w) => {
                let cur = c["WorkingDir"].as_str().unwrap_or("/").to_string();
                let joined = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{cur}/{w}")
                };
                let parts = fsutil::clean(&joined).unwrap_or_default();
                c["WorkingDir"] = Value::String(format!("/{}", parts.join("/")));
            }
            Command::User(u) => c["User"] = Value::String(u.clone()),
            Command::StopSignal(s) => c["StopSignal"] = Value::String(s.clone()),
            Command::Cmd(cmdline) => {
                c["Cmd"] = cl(cmdline, &sc.shell);
                sc.cmd_set = true;
            }
            Command::Entrypoint(cmdline) => {
                c["Entrypoint"] = cl(cmdline, &sc.shell);
                if !sc.cmd_set {
                    // Docker: an ENTRYPOINT resets a CMD inherited from the base image.
                    c["Cmd"] = Value::Null;
                }
            }
            Command::Shell(v) => {
                c["Shell"] = json!(v);
                sc.shell = v.clone();
            }
            Command::Healthcheck(hc) => match hc {
                Healthcheck::None => c["Healthcheck"] = json!({"Test": ["NONE"]}),
                Healthcheck::Cmd {
                    test,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } => {
                    let mut v = json!({"Test": test});
                    let ns = |d: &Option<std::time::Duration>| d.map(|d| d.as_nanos() as u64);
                    for (k, d) in [
                        ("Interval", ns(interval)),
                        ("Timeout", ns(timeout)),
                        ("StartPeriod", ns(start_period)),
                        ("StartInterval", ns(start_interval)),
                    ] {
                        if let Some(d) = d {
                            v[k] = json!(d);
                        }
                    }
                    if let Some(r) = retries {
                        v["Retries"] = json!(r);
                    }
                    c["Healthcheck"] = v;
                }
            },
            Command::Onbuild(o) => {
                let kw = o.instruction.keyword;
                if matches!(
                    kw,
                    crate::Keyword::From | crate::Keyword::Maintainer | crate::Keyword::Onbuild
                ) {
                    return Err(
                        self.step_err(inst, format!("{kw} isn't allowed as an ONBUILD trigger"))
                    );
                }
                match c.get_mut("OnBuild").and_then(|v| v.as_array_mut()) {
                    Some(a) => a.push(Value::String(o.expression.clone())),
                    None => c["OnBuild"] = json!([o.expression]),
                }
            }
            Command::From(_) | Command::Run(_) | Command::Copy(_) | Command::Add(_) => {
                return Err(self.step_err(inst, "not a metadata instruction"));
            }
        }
        Ok(())
    }
}

mod chmod;
mod copy;
mod fetch;
mod git;
mod run;

/// The history text of a COPY or ADD, as the classic builder writes it: the stage's shell,
/// `#(nop)`, what was copied (`file:<hash>`, `dir:<hash>`, ...) and the destination as the
/// instruction gives it (expanded, not resolved against WORKDIR).
fn copy_created_by(
    sc: &StageCtx,
    inst: &Instruction,
    cmd: &Command,
    plan: &copy::CopyPlan,
) -> String {
    let dest = match cmd {
        Command::Copy(c) => c.dest.as_str(),
        Command::Add(a) => a.dest.as_str(),
        _ => plan.dest.as_str(),
    };
    format!(
        "{} #(nop) {} {} in {dest} ",
        sc.shell.join(" "),
        inst.keyword,
        plan.describe()
    )
}

/// The history text of a metadata-only step, as the classic builder records it (what
/// `docker history` shows): the stage's shell (the new one for SHELL itself), then
/// `#(nop)  <instruction>` with what the instruction set: CMD and ENTRYPOINT the argv (Go's
/// `%q` of the list, so the shell form shows its shell), ENV and LABEL their expanded
/// `key=value` pairs, EXPOSE its ports sorted, VOLUME and SHELL their lists as Go prints
/// them, WORKDIR the resolved directory after a single space.
fn meta_created_by(config: &Value, sc: &StageCtx, inst: &Instruction, cmd: &Command) -> String {
    let argv = |field: &str| -> Option<String> {
        let list = config["config"][field].as_array()?;
        let words: Vec<String> = list
            .iter()
            .map(|w| go_quote(w.as_str().unwrap_or_default()))
            .collect();
        Some(format!("[{}]", words.join(" ")))
    };
    let pairs = |kvs: &[crate::ast::KeyValue]| -> String {
        kvs.iter()
            .map(|kv| format!(" {}={}", kv.key, kv.value))
            .collect()
    };
    let shell = sc.shell.join(" ");
    let text = match cmd {
        Command::Cmd(_) => argv("Cmd").map(|a| format!("CMD {a}")),
        Command::Entrypoint(_) => argv("Entrypoint").map(|a| format!("ENTRYPOINT {a}")),
        Command::Env(kvs) => Some(format!("ENV{}", pairs(kvs))),
        Command::Label(kvs) => Some(format!("LABEL{}", pairs(kvs))),
        Command::Expose(ports) => {
            let mut p: Vec<String> = ports
                .iter()
                .map(|p| {
                    if p.contains('/') {
                        p.to_lowercase()
                    } else {
                        format!("{p}/tcp")
                    }
                })
                .collect();
            p.sort();
            p.dedup();
            Some(format!("EXPOSE {}", p.join(" ")))
        }
        Command::Volume(v) => Some(format!("VOLUME [{}]", v.join(" "))),
        Command::Shell(v) => Some(format!("SHELL [{}]", v.join(" "))),
        Command::Workdir(_) => {
            let dir = config["config"]["WorkingDir"].as_str().unwrap_or_default();
            return format!("{shell} #(nop) WORKDIR {dir}");
        }
        _ => None,
    };
    format!(
        "{shell} #(nop)  {}",
        text.unwrap_or_else(|| inst.original.clone())
    )
}

/// A string quoted as Go's `strconv.Quote` does for printable text (`"`, `\` and control
/// characters escaped), so history matches dockerd's byte for byte in the usual cases.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_the_build_query() {
        let q = [
            ("t", "a:1"),
            ("t", "b"),
            ("dockerfile", "sub/Dockerfile.dev"),
            ("buildargs", r#"{"X":"1","FROM_ENV":null}"#),
            ("labels", r#"{"l":"v"}"#),
            ("cachefrom", r#"["busybox"]"#),
            ("nocache", "1"),
            ("q", "false"),
            ("pull", "true"),
            ("target", "build"),
            ("networkmode", "none"),
            ("rm", "1"),
            ("memory", "0"),
        ];
        let o = BuildOptions::from_query(&q).unwrap();
        assert_eq!(o.tags, ["a:1", "b"]);
        assert_eq!(o.dockerfile.as_deref(), Some("sub/Dockerfile.dev"));
        assert_eq!(o.build_args.get("X").map(String::as_str), Some("1"));
        assert!(!o.build_args.contains_key("FROM_ENV"));
        assert_eq!(o.labels.get("l").map(String::as_str), Some("v"));
        assert_eq!(o.cache_from, ["busybox"]);
        assert!(o.no_cache && o.pull && !o.quiet);
        assert_eq!(o.target.as_deref(), Some("build"));
        assert_eq!(o.network.as_deref(), Some("none"));
        assert!(BuildOptions::from_query(&[("buildargs", "{")]).is_err());
        // The Go client (docker/client ImageBuild) sends `null` for each map or list it
        // was not given: that is none, not an error.
        let o = BuildOptions::from_query(&[
            ("buildargs", "null"),
            ("labels", "null"),
            ("cachefrom", "null"),
            ("ulimits", "null"),
        ])
        .unwrap();
        assert!(o.build_args.is_empty() && o.labels.is_empty() && o.cache_from.is_empty());
        assert!(BuildOptions::from_query(&[("version", "2")]).is_err());
        let o = BuildOptions::from_query(&[("remote", "https://x/y.git#v1:sub")]).unwrap();
        assert_eq!(o.remote.as_deref(), Some("https://x/y.git#v1:sub"));
        for bad in [
            "file:///etc",
            "https://x/y.git#--upload-pack=x",
            "git://h/r#m:../..",
        ] {
            let e = BuildOptions::from_query(&[("remote", bad)]).unwrap_err();
            assert!(
                e.to_string().contains(bad.split('#').next().unwrap()),
                "{e}"
            );
        }
    }

    #[test]
    fn globs_and_clean_paths() {
        use crate::fsutil::{clean, glob_match};
        assert!(glob_match("*.c", "a.c"));
        assert!(!glob_match("*.c", "a.h"));
        assert!(glob_match("f?le[0-9]", "file7"));
        assert!(!glob_match("f[!i]le", "file"));
        assert!(glob_match("\\*", "*"));
        assert_eq!(clean("a/./b/../c"), Some(vec!["a", "c"]));
        assert_eq!(clean("/x/"), Some(vec!["x"]));
        assert_eq!(clean("../x"), None);
        assert_eq!(clean("a/../../x"), None);
    }
}
