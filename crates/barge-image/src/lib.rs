//! barge-image: image references, a content-addressed and verified blob store, OCI and
//! Docker manifests, secure layer unpacking, overlay snapshots, diffs, and save/load/import.
//!
//! Everything hangs off a [`Store`], which owns a data root:
//!
//! ```text
//! let store = Store::open("/var/lib/barge/image")?;          // cleans leftovers of crashes
//! let img = store.import(tarball, Some(&"busybox".parse()?), "")?;
//! store.prepare("ctr1", &img.diff_ids())?;                    // overlay snapshot (containerd's words)
//! store.mount("ctr1", Path::new("/run/barge/ctr1/rootfs"))?;
//! // ... run the container ...
//! barge_image::snapshot::unmount(Path::new("/run/barge/ctr1/rootfs"))?;
//! store.diff("ctr1", &mut layer_tar)?;                       // for commit/build
//! store.remove_snapshot("ctr1")?;
//! ```
//!
//! Modules: [`reference`](mod@reference) (Docker's grammar and defaults), [`digest`], [`store`] (verified
//! blob ingest, atomic records), [`manifest`] (OCI + Docker schema 2, platform selection),
//! [`unpack`] (confined tar extraction, whiteouts, diff ids), [`snapshot`] (overlay with a
//! copying fallback), [`diff`] (upper dir -> layer tar), [`image`] (the image index:
//! commit/tag/list/history/remove, import), [`archive`] (docker-archive, OCI layout),
//! [`registry`], [`auth`], [`progress`].
//!
//! Registries: [`registry`] (pull, push, login, logout through `oci-client`), [`auth`]
//! (credentials in Docker's `config.json`), [`progress`] (events for bars and for Docker's
//! JSON progress stream). The daemon calls, from its tokio runtime, with the store in an
//! `Arc` (store work that blocks runs on the blocking pool):
//!
//! ```text
//! use barge_image::registry::{self, RegistryOptions, PullReport, PushReport, ProgressFn};
//! let opts = RegistryOptions {
//!     insecure_registries: daemon_cfg.insecure_registries.clone(), // plain HTTP besides loopback
//!     credentials: auth::parse_x_registry_auth(header)?, // None: config.json
//!     docker_config_dir: None,               // None: $DOCKER_CONFIG, else ~/.docker
//!     max_concurrent: 3,                     // blobs in flight
//!     platform: None,                        // None: the host's, from an index
//! };
//! let on_progress = |p: Progress| for msg in p.to_docker_json() { send(msg) };
//! let pulled: PullReport = registry::pull(store.clone(), &reference, &opts, &on_progress).await?;
//! let pushed: PushReport = registry::push(store.clone(), &reference, &opts, &on_progress).await?;
//! registry::login("localhost:5000", &Credentials { username, password }, &opts).await?; // verifies, then stores
//! let had_creds: bool = registry::logout("localhost:5000", &opts).await?;
//! ```
//!
//! `pull` and `push` return futures that are `Send`; errors are [`Error::RemoteNotFound`]
//! (unknown repository/tag/digest), [`Error::Unauthorized`], [`Error::Registry`]
//! (connection, protocol, 5xx after retries), and the store's digest/size/unpack errors.
//! A failed pull keeps nothing. Other clients can use the same pieces: fetch a manifest
//! (select a platform with [`manifest::select_platform`]), [`Store::ingest`] each blob with
//! its expected digest and size, then [`Store::commit_image`] and [`Store::tag`].

pub mod archive;
pub mod auth;
pub mod diff;
pub mod digest;
pub mod error;
pub mod image;
pub mod manifest;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
pub use store::Store;
