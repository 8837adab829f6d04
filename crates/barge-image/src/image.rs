//! Images in the store: the image index (`images.json`: image id -> record, reference ->
//! image id), committing a manifest whose blobs are in the store, and list / inspect /
//! history / tag / untag / remove with reference counting of blobs and layers, and
//! `import` of a rootfs tarball.
//!
//! An image id is the digest of its config, as Docker has it. Committing reads and checks
//! the manifest and config, unpacks each layer (once per diff id, verified against the
//! config's `rootfs.diff_ids`) and only then writes the index: an image is listed only when
//! everything it needs is in place. A registry pull plugs in the same way: ingest blobs
//! with their expected digests, then [`Store::commit_image`].

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{self, Manifest};
use crate::reference::Reference;
use crate::store::Store;
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

const INDEX: &str = "images.json";

/// A layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The blob as distributed (compressed or not).
    pub blob: Digest,
    /// Its media type.
    pub media_type: String,
    /// Size of the blob.
    pub size: u64,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Image id: the config's digest.
    pub id: Digest,
    /// The manifest blob.
    pub manifest: Digest,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// The config's `created`, if any.
    #[serde(default)]
    pub created: Option<String>,
    /// Digests this image was pulled by (`repo@sha256:...`), for `RepoDigests`.
    #[serde(default)]
    pub repo_digests: Vec<String>,
}

impl ImageRecord {
    /// The diff ids of the layers, bottom first (what a snapshot is prepared on).
    pub fn diff_ids(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ImageIndex {
    images: BTreeMap<Digest, ImageRecord>,
    /// Normalized reference (`docker.io/library/busybox:latest`) -> image id.
    tags: BTreeMap<String, Digest>,
}

/// A row of `docker images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Image id.
    pub id: Digest,
    /// References pointing at it (normalized).
    pub tags: Vec<Reference>,
    /// Uncompressed size of all its layers.
    pub size: u64,
    /// The part of `size` in layers shared with other images.
    pub shared_size: u64,
    /// Config's `created`.
    pub created: Option<String>,
}

/// What an image prune removed: the references untagged, then the images deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneImagesReport {
    /// References removed (with `all`).
    pub untagged: Vec<Reference>,
    /// Images deleted.
    pub deleted: Vec<Digest>,
}

/// One step of `docker history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// When.
    pub created: Option<String>,
    /// The command.
    pub created_by: Option<String>,
    /// A comment.
    pub comment: Option<String>,
    /// Whether no layer came of it.
    pub empty_layer: bool,
    /// The layer it made (if not empty), with its uncompressed size.
    pub layer: Option<(Digest, u64)>,
}

/// What a removal did, as `docker rmi` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveReport {
    /// References removed.
    pub untagged: Vec<Reference>,
    /// Image ids deleted.
    pub deleted: Vec<Digest>,
}

impl Store {
    fn load_index(&self) -> Result<ImageIndex> {
        match self.read_record(INDEX)? {
            None => Ok(ImageIndex::default()),
            Some(d) => serde_json::from_slice(&d).map_err(|e| Error::Record {
                path: self.root().join(INDEX),
                source: e,
            }),
        }
    }

    fn save_index(&self, idx: &ImageIndex) -> Result<()> {
        let d = serde_json::to_vec_pretty(idx).map_err(|e| Error::Record {
            path: self.root().join(INDEX),
            source: e,
        })?;
        self.write_record(INDEX, &d)
    }

    /// Runs `f` on the index under the store's lock and saves it if `f` succeeds.
    fn with_index<T>(&self, f: impl FnOnce(&mut ImageIndex) -> Result<T>) -> Result<T> {
        let _g = self.index_lock();
        let mut idx = self.load_index()?;
        let out = f(&mut idx)?;
        self.save_index(&idx)?;
        Ok(out)
    }

    /// Reads and checks an image config blob.
    pub fn image_config(&self, id: &Digest) -> Result<ImageConfiguration> {
        let bytes = self.read_document(id, "image config")?;
        manifest::parse_config(&bytes, &format!("config {id}"))
    }

    /// Makes an image of a single-platform manifest whose blobs are all in the store:
    /// checks manifest and config, unpacks the layers (verified against the diff ids), and
    /// records the image (untagged; see [`Store::tag`]). Idempotent.
    pub fn commit_image(&self, manifest_digest: &Digest) -> Result<ImageRecord> {
        self.commit_image_new(manifest_digest).map(|(r, _)| r)
    }

    /// [`Store::commit_image`], also telling whether the image is new to the index. On
    /// error, layers it unpacked are freed (unless something else holds or uses them).
    pub(crate) fn commit_image_new(&self, manifest_digest: &Digest) -> Result<(ImageRecord, bool)> {
        let lease = self.lease();
        let res = self.commit_inner(&lease, manifest_digest);
        drop(lease);
        if res.is_err() {
            let _ = self.gc();
        }
        res
    }

    fn commit_inner(
        &self,
        lease: &crate::store::Lease<'_>,
        manifest_digest: &Digest,
    ) -> Result<(ImageRecord, bool)> {
        lease.hold(manifest_digest);
        let what = format!("manifest {manifest_digest}");
        let bytes = self.read_document(manifest_digest, "manifest")?;
        let parsed = manifest::parse_manifest(&bytes, None, &what)?;
        let (m, mt) = match &parsed {
            Manifest::Image { manifest, .. } => (manifest, parsed.media_type()),
            Manifest::Index { .. } => {
                return Err(Error::Manifest {
                    what,
                    reason: "is an index: select a platform first".into(),
                })
            }
        };
        let config_digest = manifest::descriptor_digest(m.config(), &what)?;
        lease.hold(&config_digest);
        let config = self.image_config(&config_digest)?;
        let diff_ids = manifest::config_diff_ids(&config, &format!("config {config_digest}"))?;
        if diff_ids.len() != m.layers().len() {
            return Err(Error::Manifest {
                what,
                reason: format!(
                    "{} layers but the config lists {} diff ids",
                    m.layers().len(),
                    diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for (i, (l, diff_id)) in m.layers().iter().zip(&diff_ids).enumerate() {
            let lw = format!("{what}: layers[{i}]");
            let blob = manifest::descriptor_digest(l, &lw)?;
            manifest::layer_compression(l, &lw)?;
            let size = self.blob_size(&blob)?;
            if size != l.size() {
                return Err(Error::SizeMismatch {
                    what: format!("layer blob {blob}"),
                    expected: l.size(),
                    actual: size,
                });
            }
            lease.hold(&blob);
            lease.hold(diff_id);
            self.unpack_layer_blob(&blob, diff_id)?;
            let uncompressed_size = self.layer_size(diff_id, &blob)?;
            layers.push(LayerRecord {
                blob,
                media_type: l.media_type().to_string(),
                size,
                diff_id: diff_id.clone(),
                uncompressed_size,
            });
        }
        let rec = ImageRecord {
            id: config_digest.clone(),
            manifest: manifest_digest.clone(),
            manifest_media_type: mt.to_string(),
            layers,
            created: config.created().clone(),
            repo_digests: Vec::new(),
        };
        self.with_index(|idx| {
            let new = !idx.images.contains_key(&config_digest);
            let entry = idx
                .images
                .entry(config_digest)
                .or_insert_with(|| rec.clone());
            Ok((entry.clone(), new))
        })
    }

    /// The uncompressed size of a layer: its blob size if the blob is the plain tar.
    fn layer_size(&self, diff_id: &Digest, blob: &Digest) -> Result<u64> {
        if diff_id == blob {
            return self.blob_size(blob);
        }
        if let Some(n) = self.layer_uncompressed_size(diff_id) {
            return Ok(n);
        }
        let f = self.open_blob(blob)?;
        let mut r = crate::unpack::decompress(f, &blob.to_string())?;
        std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| Error::Read {
            what: format!("layer {blob}"),
            source: e,
        })
    }

    /// Points `reference` (a tag; digests are refused) at the image `target` (name or id).
    pub fn tag(&self, target: &str, reference: &Reference) -> Result<()> {
        if reference.digest().is_some() {
            return Err(Error::Reference(crate::reference::ReferenceError::BadTag {
                reference: reference.to_string(),
                tag: "(a digest cannot be a tag)".into(),
            }));
        }
        self.with_index(|idx| {
            let id = resolve_in(idx, target)?.id.clone();
            idx.tags.insert(reference.to_string(), id);
            Ok(())
        })
    }

    /// Records that image `id` is known to a registry as `repo_digest`
    /// (`docker.io/library/busybox@sha256:...`), for `RepoDigests` and for cross-repository
    /// mounts on push. Idempotent.
    pub fn add_repo_digest(&self, id: &Digest, repo_digest: &str) -> Result<()> {
        self.with_index(|idx| {
            let img = idx
                .images
                .get_mut(id)
                .ok_or_else(|| Error::ImageNotFound(id.to_string()))?;
            if !img.repo_digests.iter().any(|r| r == repo_digest) {
                img.repo_digests.push(repo_digest.to_string());
            }
            Ok(())
        })
    }

    /// Removes a reference; the image stays (see [`Store::remove_image`]).
    pub fn untag(&self, reference: &Reference) -> Result<()> {
        self.with_index(|idx| match idx.tags.remove(&reference.to_string()) {
            Some(_) => Ok(()),
            None => Err(Error::ImageNotFound(reference.familiar())),
        })
    }

    /// Finds an image by reference (`busybox`, `host:5000/x:tag`), full id
    /// (`sha256:...`), or id prefix (`ab12cd`).
    pub fn resolve(&self, name: &str) -> Result<ImageRecord> {
        let idx = self.load_index()?;
        resolve_in(&idx, name).cloned()
    }

    /// The distinct layers of all images: how many, and their uncompressed bytes (each layer
    /// is unpacked once by diff id, so this is the layers' disk use, not a sum per image).
    pub fn layers_usage(&self) -> Result<(usize, u64)> {
        let idx = self.load_index()?;
        let mut seen: HashMap<&Digest, u64> = HashMap::new();
        for l in idx.images.values().flat_map(|i| &i.layers) {
            seen.insert(&l.diff_id, l.uncompressed_size);
        }
        Ok((seen.len(), seen.values().sum()))
    }

    /// All images with their tags and sizes (shared = in layers other images use too).
    pub fn list_images(&self) -> Result<Vec<ImageSummary>> {
        let idx = self.load_index()?;
        let mut users: HashMap<&Digest, usize> = HashMap::new();
        for img in idx.images.values() {
            let uniq: BTreeSet<&Digest> = img.layers.iter().map(|l| &l.diff_id).collect();
            for d in uniq {
                *users.entry(d).or_insert(0) += 1;
            }
        }
        let mut out = Vec::new();
        for img in idx.images.values() {
            let tags = idx
                .tags
                .iter()
                .filter(|(_, id)| *id == &img.id)
                .filter_map(|(r, _)| Reference::parse(r).ok())
                .collect();
            let mut seen = BTreeSet::new();
            let (mut size, mut shared) = (0, 0);
            for l in &img.layers {
                if !seen.insert(&l.diff_id) {
                    continue;
                }
                size += l.uncompressed_size;
                if users.get(&l.diff_id).copied().unwrap_or(0) > 1 {
                    shared += l.uncompressed_size;
                }
            }
            out.push(ImageSummary {
                id: img.id.clone(),
                tags,
                size,
                shared_size: shared,
                created: img.created.clone(),
            });
        }
        Ok(out)
    }

    /// The record and config of an image (`docker image inspect`).
    pub fn inspect(&self, name: &str) -> Result<(ImageRecord, ImageConfiguration)> {
        let rec = self.resolve(name)?;
        let cfg = self.image_config(&rec.id)?;
        Ok((rec, cfg))
    }

    /// The history of an image, newest first (`docker history`), with layers matched to
    /// the non-empty steps.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        let (rec, cfg) = self.inspect(name)?;
        let mut layers = rec.layers.iter();
        let mut out: Vec<HistoryEntry> = cfg
            .history()
            .iter()
            .flatten()
            .map(|h| {
                let empty = h.empty_layer().unwrap_or(false);
                HistoryEntry {
                    created: h.created().clone(),
                    created_by: h.created_by().clone(),
                    comment: h.comment().clone(),
                    empty_layer: empty,
                    layer: if empty {
                        None
                    } else {
                        layers
                            .next()
                            .map(|l| (l.diff_id.clone(), l.uncompressed_size))
                    },
                }
            })
            .collect();
        // Layers without history entries still show, as Docker shows "<missing>" steps.
        for l in layers {
            out.push(HistoryEntry {
                created: None,
                created_by: None,
                comment: None,
                empty_layer: false,
                layer: Some((l.diff_id.clone(), l.uncompressed_size)),
            });
        }
        out.reverse();
        Ok(out)
    }

    /// `docker rmi`: a reference with other references to the same image is only
    /// untagged; otherwise the image is deleted, refused while a snapshot is prepared on its
    /// layers unless `force`. Blobs and layers no other image (or snapshot) uses are freed.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<RemoveReport> {
        let snapshots = self.list_snapshots()?;
        let report = self.with_index(|idx| {
            let rec = resolve_in(idx, name)?.clone();
            let mut report = RemoveReport::default();
            let by_ref = Reference::parse(name)
                .ok()
                .filter(|r| idx.tags.contains_key(&r.to_string()));
            let refs: Vec<String> = idx
                .tags
                .iter()
                .filter(|(_, id)| *id == &rec.id)
                .map(|(r, _)| r.clone())
                .collect();
            if let Some(r) = by_ref {
                if refs.len() > 1 {
                    idx.tags.remove(&r.to_string());
                    report.untagged.push(r);
                    return Ok(report);
                }
            } else if refs.len() > 1 && !force {
                return Err(Error::ImageInUse {
                    image: format!(
                        "{} (referenced by {} tags; use force)",
                        rec.id.short(),
                        refs.len()
                    ),
                    users: 0,
                });
            }
            let ids = rec.diff_ids();
            // Snapshots on these layers keep them whatever happens to this image when
            // another image has the very same layers (the same rootfs imported or built
            // twice): then they are that image's users, not this one's.
            let twin = idx
                .images
                .values()
                .any(|i| i.id != rec.id && i.diff_ids() == ids);
            let users = snapshots
                .iter()
                .filter(|s| !twin && !ids.is_empty() && s.parents == ids)
                .count();
            if users > 0 && !force {
                return Err(Error::ImageInUse {
                    image: rec.id.to_string(),
                    users,
                });
            }
            for r in refs {
                idx.tags.remove(&r);
                if let Ok(r) = Reference::parse(&r) {
                    report.untagged.push(r);
                }
            }
            idx.images.remove(&rec.id);
            report.deleted.push(rec.id.clone());
            Ok(report)
        })?;
        self.gc()?;
        Ok(report)
    }

    /// `docker image prune`: removes images without any reference that no snapshot uses,
    /// then frees what they held. Returns the ids removed.
    pub fn prune_dangling(&self) -> Result<Vec<Digest>> {
        Ok(self
            .prune_images(false, &BTreeSet::new(), |_| true)?
            .deleted)
    }

    /// `docker image prune [-a]` for an engine that knows which images its containers use
    /// (`in_use`, by id: those stay). Removes the images `selected` accepts that have no
    /// reference (with `all`, also those that have: their references go too). A snapshot
    /// on a candidate's layers keeps it, unless an image that stays has the same layers.
    pub fn prune_images(
        &self,
        all: bool,
        in_use: &BTreeSet<Digest>,
        selected: impl Fn(&Digest) -> bool,
    ) -> Result<PruneImagesReport> {
        let snapshots = self.list_snapshots()?;
        let report = self.with_index(|idx| {
            let tagged: BTreeSet<Digest> = idx.tags.values().cloned().collect();
            let candidate =
                |id: &Digest| (all || !tagged.contains(id)) && !in_use.contains(id) && selected(id);
            let kept_chains: BTreeSet<Vec<Digest>> = idx
                .images
                .values()
                .filter(|i| !candidate(&i.id))
                .map(|i| i.diff_ids())
                .collect();
            let victims: Vec<Digest> = idx
                .images
                .values()
                .filter(|i| candidate(&i.id))
                .filter(|i| {
                    let ids = i.diff_ids();
                    kept_chains.contains(&ids)
                        || !snapshots
                            .iter()
                            .any(|s| !ids.is_empty() && s.parents == ids)
                })
                .map(|i| i.id.clone())
                .collect();
            let mut report = PruneImagesReport::default();
            for v in &victims {
                let refs: Vec<String> = idx
                    .tags
                    .iter()
                    .filter(|(_, id)| *id == v)
                    .map(|(r, _)| r.clone())
                    .collect();
                for r in refs {
                    idx.tags.remove(&r);
                    if let Ok(r) = Reference::parse(&r) {
                        report.untagged.push(r);
                    }
                }
                idx.images.remove(v);
            }
            report.deleted = victims;
            Ok(report)
        })?;
        self.gc()?;
        Ok(report)
    }

    /// Frees blobs and unpacked layers that no image and no snapshot use (`image prune`
    /// of what is already unreferenced). Returns how many objects were removed.
    pub fn gc(&self) -> Result<usize> {
        let _g = self.index_lock();
        let idx = self.load_index()?;
        let mut keep_blobs = BTreeSet::new();
        let mut keep_layers = BTreeSet::new();
        for img in idx.images.values() {
            keep_blobs.insert(img.id.clone());
            keep_blobs.insert(img.manifest.clone());
            for l in &img.layers {
                keep_blobs.insert(l.blob.clone());
                keep_layers.insert(l.diff_id.clone());
            }
        }
        // Index blobs (multi-platform lists) that point at kept manifests are kept too.
        for b in self.list_blobs()? {
            if keep_blobs.contains(&b) {
                continue;
            }
            if let Ok(bytes) = self.read_document(&b, "document") {
                if let Ok(Manifest::Index { index, .. }) =
                    manifest::parse_manifest(&bytes, None, "gc")
                {
                    if index.manifests().iter().any(|d| {
                        manifest::descriptor_digest(d, "gc").is_ok_and(|d| keep_blobs.contains(&d))
                    }) {
                        keep_blobs.insert(b);
                    }
                }
            }
        }
        for s in self.list_snapshots()? {
            keep_layers.extend(s.parents);
        }
        let mut removed = 0;
        for b in self.list_blobs()? {
            if !keep_blobs.contains(&b) && !self.is_leased(&b) {
                self.delete_blob(&b)?;
                removed += 1;
            }
        }
        let dir = self.root().join("layers");
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))? {
            let e = e.map_err(|e| Error::io("read directory", &dir, e))?;
            if let Some(d) = e
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                if !keep_layers.contains(&d) && !self.is_leased(&d) {
                    self.remove_layer(&d)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// `docker import`: makes a one-layer image of a rootfs tarball (plain, gzip or zstd),
    /// tagged `reference` if given. The tarball is stored as is as the layer blob.
    pub fn import(
        &self,
        tarball: impl Read,
        reference: Option<&Reference>,
        comment: &str,
    ) -> Result<ImageRecord> {
        self.import_with_config(tarball, reference, comment, serde_json::json!({}), None)
    }

    /// [`Store::import`] with the image's `config` (`Cmd`, `Env`, ... as `docker import
    /// --change` sets them) and the platform it says it is for (`None`: the host's).
    pub fn import_with_config(
        &self,
        tarball: impl Read,
        reference: Option<&Reference>,
        comment: &str,
        image_config: serde_json::Value,
        platform: Option<&manifest::PlatformSpec>,
    ) -> Result<ImageRecord> {
        let lease = self.lease();
        let res = self.import_inner(&lease, tarball, reference, comment, image_config, platform);
        drop(lease);
        if res.is_err() {
            let _ = self.gc();
        }
        res
    }

    fn import_inner(
        &self,
        lease: &crate::store::Lease<'_>,
        tarball: impl Read,
        reference: Option<&Reference>,
        comment: &str,
        image_config: serde_json::Value,
        platform: Option<&manifest::PlatformSpec>,
    ) -> Result<ImageRecord> {
        let (blob, size) = lease.ingest(tarball, None, "imported tarball")?;
        let f = self.open_blob(&blob)?;
        let diff_id = self.unpack_layer(f, None, &format!("imported tarball {blob}"))?;
        lease.hold(&diff_id);
        let mut head = [0u8; 4];
        let n = self
            .open_blob(&blob)?
            .read(&mut head)
            .map_err(|e| Error::Read {
                what: format!("blob {blob}"),
                source: e,
            })?;
        let media_type = match &head[..n] {
            [0x1f, 0x8b, ..] => manifest::OCI_LAYER_GZIP,
            [0x28, 0xb5, 0x2f, 0xfd] => manifest::OCI_LAYER_ZSTD,
            _ => manifest::OCI_LAYER,
        };
        let created = now_rfc3339();
        let host = platform
            .cloned()
            .unwrap_or_else(manifest::PlatformSpec::host);
        let mut config = serde_json::json!({
            "created": created,
            "architecture": host.architecture,
            "os": host.os,
            "config": image_config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
            // As dockerd's import: no step that made it, the comment on the image and its
            // one history entry.
            "history": [{"created": created, "comment": comment}],
        });
        if !comment.is_empty() {
            config["comment"] = serde_json::Value::String(comment.to_string());
        }
        if let Some(v) = &host.variant {
            config["variant"] = serde_json::Value::String(v.clone());
        }
        let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::Manifest {
            what: "import config".into(),
            reason: e.to_string(),
        })?;
        let config_digest = lease.put_blob(&config_bytes)?;
        let manifest_digest = self.put_manifest(
            lease,
            &config_digest,
            config_bytes.len() as u64,
            &[(blob, size, media_type)],
            false,
        )?;
        let rec = self.commit_image(&manifest_digest)?;
        if let Some(r) = reference {
            self.tag(&rec.id.to_string(), r)?;
        }
        Ok(rec)
    }

    /// Writes an image manifest (OCI, or Docker schema 2 when `docker`) for a config and
    /// layer blobs `(digest, size, media type)`; returns its digest.
    pub(crate) fn put_manifest(
        &self,
        lease: &crate::store::Lease<'_>,
        config: &Digest,
        config_size: u64,
        layers: &[(Digest, u64, &str)],
        docker: bool,
    ) -> Result<Digest> {
        let (mt, cmt) = if docker {
            (manifest::DOCKER_MANIFEST, manifest::DOCKER_CONFIG)
        } else {
            (manifest::OCI_MANIFEST, manifest::OCI_CONFIG)
        };
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": {"mediaType": cmt, "size": config_size, "digest": config.to_string()},
            "layers": layers.iter().map(|(d, s, t)| serde_json::json!({"mediaType": t, "size": s, "digest": d.to_string()})).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&m).map_err(|e| Error::Manifest {
            what: "new manifest".into(),
            reason: e.to_string(),
        })?;
        lease.put_blob(&bytes)
    }

    /// Turns the changes of snapshot `key` into a layer (`docker commit`, a build step):
    /// an uncompressed layer blob, unpacked into the store, both held by `lease` until the
    /// caller records an image with [`Store::create_image`].
    pub fn commit_snapshot(
        &self,
        key: &str,
        lease: &crate::store::Lease<'_>,
    ) -> Result<LayerRecord> {
        let upper = self.snapshot_upper(key)?;
        let mut w = self.blob_writer()?;
        let (diff_id, size) = crate::diff::diff_dir(&upper, &mut w)?;
        let (blob, _) = w.commit(lease, Some((&diff_id, size)))?;
        lease.hold(&diff_id);
        self.unpack_layer_blob(&blob, &diff_id)?;
        Ok(LayerRecord {
            blob,
            media_type: manifest::OCI_LAYER.to_string(),
            size,
            diff_id,
            uncompressed_size: size,
        })
    }

    /// Records a new image from a config (JSON, whose `rootfs.diff_ids` must match the
    /// layers) and layers already in the store; tags it with `reference` if given.
    pub fn create_image(
        &self,
        lease: &crate::store::Lease<'_>,
        config: &[u8],
        layers: &[LayerRecord],
        reference: Option<&Reference>,
    ) -> Result<ImageRecord> {
        let cfg = manifest::parse_config(config, "new image config")?;
        let ids = manifest::config_diff_ids(&cfg, "new image config")?;
        let have: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        if ids != have {
            return Err(Error::Manifest {
                what: "new image config".into(),
                reason: format!("rootfs.diff_ids {ids:?} do not match the layers {have:?}"),
            });
        }
        let config_digest = lease.put_blob(config)?;
        let ls: Vec<(Digest, u64, &str)> = layers
            .iter()
            .map(|l| (l.blob.clone(), l.size, l.media_type.as_str()))
            .collect();
        let md = self.put_manifest(lease, &config_digest, config.len() as u64, &ls, false)?;
        let rec = self.commit_image(&md)?;
        if let Some(r) = reference {
            self.tag(&rec.id.to_string(), r)?;
        }
        Ok(rec)
    }

    /// The ids of all images.
    pub fn image_ids(&self) -> Result<BTreeSet<Digest>> {
        Ok(self.load_index()?.images.into_keys().collect())
    }

    /// Drops the images `ids` and their tags: undoes a failed multi-image load.
    pub(crate) fn forget_images(&self, ids: &BTreeSet<Digest>) {
        let _ = self.with_index(|idx| {
            idx.images.retain(|id, _| !ids.contains(id));
            idx.tags.retain(|_, id| !ids.contains(id));
            Ok(())
        });
    }

    /// All references in the index with their image ids.
    pub fn references(&self) -> Result<Vec<(Reference, Digest)>> {
        let idx = self.load_index()?;
        Ok(idx
            .tags
            .iter()
            .filter_map(|(r, id)| Reference::parse(r).ok().map(|r| (r, id.clone())))
            .collect())
    }
}

fn resolve_in<'a>(idx: &'a ImageIndex, name: &str) -> Result<&'a ImageRecord> {
    // A full or prefixed id first, as Docker does for 64-hex strings.
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    let looks_hex = !hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if name.starts_with("sha256:") || hex.len() == 64 {
        if let Ok(d) = Digest::from_hex(hex) {
            return idx
                .images
                .get(&d)
                .ok_or_else(|| Error::ImageNotFound(name.to_string()));
        }
    }
    if let Ok(r) = Reference::parse(name) {
        if let Some(id) = idx.tags.get(&r.to_string()) {
            return idx
                .images
                .get(id)
                .ok_or_else(|| Error::ImageNotFound(name.to_string()));
        }
        if let Some(d) = r.digest() {
            // repo@sha256:<manifest digest>
            if let Some(img) = idx.images.values().find(|i| &i.manifest == d) {
                return Ok(img);
            }
        }
    }
    if looks_hex {
        let mut it = idx.images.values().filter(|i| i.id.hex().starts_with(hex));
        if let Some(first) = it.next() {
            if it.next().is_some() {
                return Err(Error::AmbiguousImage(name.to_string()));
            }
            return Ok(first);
        }
    }
    Err(Error::ImageNotFound(name.to_string()))
}

/// The current UTC time as RFC 3339 in whole seconds (`2024-01-02T03:04:05Z`), as image
/// configs and history entries record it.
pub fn now_rfc3339() -> String {
    barge_util::time::now_rfc3339(barge_util::time::Precision::Seconds)
}
