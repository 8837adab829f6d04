//! Progress of a pull or push: events a CLI draws as bars, and that serialise to the JSON
//! progress messages of Docker's API ([`Progress::to_docker_json`]).
//!
//! Ids are the 12 first hex digits of a layer's blob digest, as Docker prints them.

use crate::digest::Digest;
use serde_json::{json, Value};

/// One progress event of [`crate::registry::pull`] or [`crate::registry::push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Start of a pull: `Pulling from library/busybox` (id: the tag or digest).
    PullingFrom {
        /// Repository path as Docker prints it (`library/busybox`).
        repository: String,
        /// The tag or digest pulled.
        id: String,
    },
    /// A layer blob is already in the store.
    AlreadyExists {
        /// Short layer id.
        id: String,
    },
    /// A layer will be downloaded.
    PullingFsLayer {
        /// Short layer id.
        id: String,
    },
    /// Bytes of a layer received so far.
    Downloading {
        /// Short layer id.
        id: String,
        /// Bytes received.
        current: u64,
        /// Size of the blob.
        total: u64,
    },
    /// A layer was received; its digest is being checked.
    VerifyingChecksum {
        /// Short layer id.
        id: String,
    },
    /// A layer was received and verified.
    DownloadComplete {
        /// Short layer id.
        id: String,
    },
    /// A layer is being unpacked.
    Extracting {
        /// Short layer id.
        id: String,
    },
    /// A layer is unpacked and part of the image.
    PullComplete {
        /// Short layer id.
        id: String,
    },
    /// The manifest (or index) digest that was pulled or pushed.
    Digest {
        /// The digest.
        digest: Digest,
    },
    /// A final status line (`Status: Downloaded newer image for busybox:latest`).
    Status {
        /// The line, without the `Status: ` prefix.
        message: String,
    },
    /// Start of a push: `The push refers to repository [host:5000/x]`.
    PushRefersTo {
        /// The repository, as Docker prints it.
        repository: String,
    },
    /// A layer will be pushed.
    Preparing {
        /// Short layer id.
        id: String,
    },
    /// Bytes of a layer sent so far.
    Pushing {
        /// Short layer id.
        id: String,
        /// Bytes sent.
        current: u64,
        /// Size of the blob.
        total: u64,
    },
    /// A layer was uploaded.
    Pushed {
        /// Short layer id.
        id: String,
    },
    /// The registry already had the layer (HEAD said so): nothing was sent.
    LayerAlreadyExists {
        /// Short layer id.
        id: String,
    },
    /// The layer was mounted from another repository of the same registry.
    MountedFrom {
        /// Short layer id.
        id: String,
        /// The repository it was mounted from (path within the registry).
        from: String,
    },
    /// End of a push: `latest: digest: sha256:... size: 527` followed by Docker's `aux`.
    PushDigest {
        /// The tag pushed.
        tag: String,
        /// The manifest digest.
        digest: Digest,
        /// The manifest size.
        size: u64,
    },
}

/// The short id Docker shows for a blob.
pub fn short_id(d: &Digest) -> String {
    d.short().to_string()
}

/// Docker's text bar: `[=====>      ]  1.2MB/3.4MB`.
fn bar(current: u64, total: u64) -> String {
    const W: u64 = 50;
    let filled = (current.min(total).saturating_mul(W))
        .checked_div(total)
        .unwrap_or(W);
    let mut s = String::from("[");
    for i in 0..W {
        s.push(if i < filled {
            '='
        } else if i == filled {
            '>'
        } else {
            ' '
        });
    }
    s.push(']');
    format!("{s} {}/{}", human(current), human(total))
}

fn human(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.3}GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.3}MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.3}kB", f / 1e3)
    } else {
        format!("{n}B")
    }
}

impl Progress {
    /// The messages of Docker's JSON progress stream for this event (one, except for the
    /// end of a push, which is the status line and the `aux` message).
    pub fn to_docker_json(&self) -> Vec<Value> {
        let simple =
            |status: &str, id: &str| json!({"status": status, "progressDetail": {}, "id": id});
        let v = match self {
            Progress::PullingFrom { repository, id } => {
                json!({"status": format!("Pulling from {repository}"), "id": id})
            }
            Progress::AlreadyExists { id } => simple("Already exists", id),
            Progress::PullingFsLayer { id } => simple("Pulling fs layer", id),
            Progress::Downloading { id, current, total } => json!({
                "status": "Downloading",
                "progressDetail": {"current": current, "total": total},
                "progress": bar(*current, *total),
                "id": id,
            }),
            Progress::VerifyingChecksum { id } => simple("Verifying Checksum", id),
            Progress::DownloadComplete { id } => simple("Download complete", id),
            Progress::Extracting { id } => simple("Extracting", id),
            Progress::PullComplete { id } => simple("Pull complete", id),
            Progress::Digest { digest } => json!({"status": format!("Digest: {digest}")}),
            Progress::Status { message } => json!({"status": format!("Status: {message}")}),
            Progress::PushRefersTo { repository } => {
                json!({"status": format!("The push refers to repository [{repository}]")})
            }
            Progress::Preparing { id } => simple("Preparing", id),
            Progress::Pushing { id, current, total } => json!({
                "status": "Pushing",
                "progressDetail": {"current": current, "total": total},
                "progress": bar(*current, *total),
                "id": id,
            }),
            Progress::Pushed { id } => simple("Pushed", id),
            Progress::LayerAlreadyExists { id } => simple("Layer already exists", id),
            Progress::MountedFrom { id, from } => simple(&format!("Mounted from {from}"), id),
            Progress::PushDigest { tag, digest, size } => {
                return vec![
                    json!({"status": format!("{tag}: digest: {digest} size: {size}")}),
                    json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest.to_string(), "Size": size}}),
                ]
            }
        };
        vec![v]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_json_shapes() {
        let d = Digest::of(b"x");
        let v = Progress::Downloading {
            id: short_id(&d),
            current: 5,
            total: 10,
        }
        .to_docker_json();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0]["status"], "Downloading");
        assert_eq!(v[0]["progressDetail"]["current"], 5);
        assert_eq!(v[0]["progressDetail"]["total"], 10);
        assert_eq!(v[0]["id"].as_str().map(str::len), Some(12));
        let v = Progress::PushDigest {
            tag: "latest".into(),
            digest: d.clone(),
            size: 527,
        }
        .to_docker_json();
        assert_eq!(v[0]["status"], format!("latest: digest: {d} size: 527"));
        assert_eq!(v[1]["aux"]["Size"], 527);
        assert_eq!(v[1]["aux"]["Digest"], d.to_string());
        let v = Progress::Status {
            message: "Downloaded newer image for busybox:latest".into(),
        }
        .to_docker_json();
        assert_eq!(
            v[0]["status"],
            "Status: Downloaded newer image for busybox:latest"
        );
    }
}
