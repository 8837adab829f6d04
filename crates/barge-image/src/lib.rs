//! barge-image: image references, a content-addressed and verified blob store, OCI and
//! Docker manifests, secure layer unpacking, overlay snapshots, registry pull and push,
//! and save/load/import/export.

pub mod digest;
pub mod reference;

pub use digest::Digest;
pub use reference::Reference;
pub mod archive;
pub mod diff;
pub mod error;
pub mod image;
pub mod manifest;
pub mod snapshot;
pub mod store;
pub mod unpack;

pub use error::{Error, Result};
pub use store::Store;
