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
//! commit/tag/list/history/remove, import), [`archive`] (docker-archive, OCI layout).
//!
//! A registry client plugs in without new store code: fetch the manifest (select a
//! platform with [`manifest::select_platform`]), [`Store::ingest`] each blob with its
//! expected digest and size, then [`Store::commit_image`] and [`Store::tag`].

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
