//! The crate's error type. Every variant names the object at fault (blob digest, file path,
//! layer and entry, reference) so a CLI can print it as is.

use crate::digest::{Digest, DigestError};
use crate::reference::ReferenceError;
use std::io;
use std::path::PathBuf;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in barge-image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a file of the store (or an input file) failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("create", "rename", "read", ...).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A stream being ingested ended or failed while reading it.
    #[error("reading {what}: {source}")]
    Read {
        /// What was being read (a blob, a layer, an archive member).
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// Content did not hash to the digest it was announced with.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The announced digest.
        expected: Digest,
        /// The digest of the content received.
        actual: Digest,
    },
    /// Content did not have the announced size.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was checked.
        what: String,
        /// The announced size.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// A blob is not in the store.
    #[error("blob {0} not found in the store")]
    BlobNotFound(Digest),
    /// A blob is larger than allowed for what it is meant to be (manifests, configs).
    #[error("blob {digest} is {size} bytes, more than the {limit} allowed for {what}")]
    BlobTooLarge {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
        /// What the blob was read as.
        what: &'static str,
    },
    /// An invalid digest string.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// An invalid image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A manifest, index or config that cannot be used.
    #[error("{what}: {reason}")]
    Manifest {
        /// Which document ("manifest sha256:...", "manifest.json in archive x").
        what: String,
        /// Why it is refused.
        reason: String,
    },
    /// No manifest in an index matches the platform asked for.
    #[error("{what}: no manifest for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        /// The index.
        what: String,
        /// The platform asked for.
        platform: String,
        /// The platforms it offers.
        available: String,
    },
    /// A layer entry was refused or could not be written; nothing of the layer is kept.
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    Unpack {
        /// The layer (its digest, or a description when unknown).
        layer: String,
        /// The entry's path as written in the archive.
        entry: String,
        /// Why.
        reason: String,
    },
    /// A layer as a whole is unusable (bad compression, truncated, wrong diff id).
    #[error("layer {layer}: {reason}")]
    Layer {
        /// The layer.
        layer: String,
        /// Why.
        reason: String,
    },
    /// No image by that name or id.
    #[error("no such image: {0}")]
    ImageNotFound(String),
    /// An id prefix matches more than one image.
    #[error("image id prefix {0:?} is ambiguous")]
    AmbiguousImage(String),
    /// The image is in use (by a snapshot/container) and removal was not forced.
    #[error("image {image} is in use by {users} snapshot(s); remove them or force")]
    ImageInUse {
        /// The image.
        image: String,
        /// How many users.
        users: usize,
    },
    /// A snapshot key is unknown.
    #[error("snapshot {0:?} not found")]
    SnapshotNotFound(String),
    /// A snapshot key already exists.
    #[error("snapshot {0:?} already exists")]
    SnapshotExists(String),
    /// A snapshot key is not a valid file name.
    #[error("snapshot key {0:?} is invalid (use [A-Za-z0-9_.-], at most 128 characters, not starting with '.')")]
    BadSnapshotKey(String),
    /// A mount or unmount failed.
    #[error("{op} {target}: {source}")]
    Mount {
        /// "mount overlay", "umount", ...
        op: &'static str,
        /// Mount point.
        target: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// An archive (docker-archive, OCI layout) is malformed.
    #[error("archive {archive}: {reason}")]
    Archive {
        /// The archive.
        archive: String,
        /// Why.
        reason: String,
    },
    /// The registry does not have the image (unknown repository, tag or digest).
    #[error("{reference}: not found in the registry ({reason})")]
    RemoteNotFound {
        /// The reference asked for.
        reference: String,
        /// What the registry said.
        reason: String,
    },
    /// The registry refused the credentials (or wants some and none were given).
    #[error("{registry}: unauthorized ({reason}); use `barge login {registry}`")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// What the registry said.
        reason: String,
    },
    /// Talking to a registry failed (connection, protocol, server error).
    #[error("registry {registry}: {reason}")]
    Registry {
        /// The registry (and what was being done).
        registry: String,
        /// Why.
        reason: String,
    },
    /// The Docker client config (`config.json`) cannot be read, parsed or written.
    #[error("docker config {path}: {reason}")]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A credential helper (`docker-credential-<name>`, named by `credsStore` or
    /// `credHelpers` in `config.json`) could not be run or failed.
    #[error("credential helper docker-credential-{helper} {action}: {reason}")]
    CredentialHelper {
        /// The helper's name (`pass`, `secretservice`, ...).
        helper: String,
        /// What was asked of it: `get`, `store` or `erase`.
        action: &'static str,
        /// Why it failed (its own message when it gave one).
        reason: String,
    },
    /// A record file of the store could not be parsed.
    #[error("record {path}: {source}")]
    Record {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Adds an operation and a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
