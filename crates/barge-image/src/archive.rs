//! Moving images as files: docker-archive (`docker save` / `docker load`, `podman save`
//! / `podman load`) and OCI image layouts (directory or tar).
//!
//! Loading never extracts the outer archive to disk: every regular member is streamed into
//! the blob store (content-addressed, so members named `blobs/sha256/<hex>` are checked
//! against their name), symlinked members (older `docker save` deduplicated layers that
//! way) are resolved by name, and the images are then committed from the store like a pull
//! would. A failed load removes the blobs and layers it added.
//!
//! Saving writes the classic docker-archive layout, which both `docker load` and `podman
//! load` read: `manifest.json`, `repositories`, `<config hex>.json`, one uncompressed
//! `<diff id hex>.tar` per layer; entries in a fixed order with fixed metadata.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::ImageRecord;
use crate::manifest::{self, Manifest, PlatformSpec};
use crate::reference::Reference;
use crate::store::Store;
use crate::unpack::clean_path;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::path::Path;

/// An image brought in by a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// Its id.
    pub id: Digest,
    /// The references it was tagged with.
    pub tags: Vec<Reference>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The annotation OCI layouts name images with (a tag, or a full reference).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and Docker put the full image name in.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

fn arch_err(archive: &str, reason: impl Into<String>) -> Error {
    Error::Archive {
        archive: archive.to_string(),
        reason: reason.into(),
    }
}

impl Store {
    /// Loads a docker-archive or OCI-layout tar (`docker load`). `archive` names it in
    /// errors. Nothing is kept if any image in it fails.
    pub fn load(&self, r: impl Read, archive: &str) -> Result<Vec<LoadedImage>> {
        let lease = self.lease();
        let mut new_ids = BTreeSet::new();
        let res = self.load_inner(&lease, &mut new_ids, r, archive);
        self.finish_load(lease, &new_ids, res)
    }

    /// Ends a load: on failure forgets the images it added; then frees whatever it brought
    /// in that no image uses (archive members such as `repositories`, or everything).
    fn finish_load(
        &self,
        lease: crate::store::Lease<'_>,
        new_ids: &BTreeSet<Digest>,
        res: Result<Vec<LoadedImage>>,
    ) -> Result<Vec<LoadedImage>> {
        if res.is_err() {
            self.forget_images(new_ids);
        }
        drop(lease);
        let gc = self.gc();
        let out = res?;
        gc?;
        Ok(out)
    }

    fn load_inner(
        &self,
        lease: &crate::store::Lease<'_>,
        new_ids: &mut BTreeSet<Digest>,
        r: impl Read,
        archive: &str,
    ) -> Result<Vec<LoadedImage>> {
        let mut members: BTreeMap<String, Digest> = BTreeMap::new();
        let mut links: BTreeMap<String, String> = BTreeMap::new();
        let mut ar = tar::Archive::new(r);
        let entries = ar
            .entries()
            .map_err(|e| arch_err(archive, format!("reading tar: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| arch_err(archive, format!("reading tar: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let comps = clean_path(&raw)
                .map_err(|e| arch_err(archive, format!("member {shown:?}: {e}")))?;
            let name = comps
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("/");
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let want = entry.size();
                    let (d, n) = lease.ingest(
                        &mut entry,
                        None,
                        &format!("member {shown:?} of {archive}"),
                    )?;
                    if n != want {
                        return Err(arch_err(
                            archive,
                            format!("member {shown:?} truncated: {n} of {want} bytes"),
                        ));
                    }
                    if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                        if hex != d.hex() {
                            return Err(Error::DigestMismatch {
                                what: format!("member {shown:?} of {archive}"),
                                expected: Digest::from_hex(hex).map_err(|_| {
                                    arch_err(
                                        archive,
                                        format!("member {shown:?}: not a sha256 name"),
                                    )
                                })?,
                                actual: d,
                            });
                        }
                    }
                    members.insert(name, d);
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    let is_sym = entry.header().entry_type() == tar::EntryType::Symlink;
                    // A symlink is relative to its directory; a hardlink to the archive root.
                    let mut full = Vec::new();
                    if is_sym {
                        if let Some((_, parent)) = comps.split_last() {
                            for c in parent {
                                full.extend_from_slice(c);
                                full.push(b'/');
                            }
                        }
                    }
                    full.extend_from_slice(&target);
                    let resolved = normalize(&full).ok_or_else(|| {
                        arch_err(
                            archive,
                            format!("member {shown:?}: link target escapes the archive"),
                        )
                    })?;
                    links.insert(name, resolved);
                }
                _ => {}
            }
        }
        let lookup = |name: &str| -> Result<Digest> {
            let mut n = normalize(name.as_bytes())
                .ok_or_else(|| arch_err(archive, format!("bad member name {name:?}")))?;
            for _ in 0..16 {
                if let Some(d) = members.get(&n) {
                    return Ok(d.clone());
                }
                match links.get(&n) {
                    Some(t) => n = t.clone(),
                    None => break,
                }
            }
            Err(arch_err(archive, format!("member {name:?} not found")))
        };
        if members.contains_key("manifest.json") {
            let bytes = self.read_document(&lookup("manifest.json")?, "manifest.json")?;
            let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&bytes)
                .map_err(|e| arch_err(archive, format!("manifest.json: {e}")))?;
            let mut out = Vec::new();
            for (i, e) in entries.iter().enumerate() {
                let config = lookup(&e.config)?;
                let cfg = self.image_config(&config)?;
                let config_size = self.blob_size(&config)?;
                let mut layers = Vec::new();
                for l in &e.layers {
                    let d = lookup(l)?;
                    let mut head = [0u8; 4];
                    let n = self
                        .open_blob(&d)?
                        .read(&mut head)
                        .map_err(|e| Error::Read {
                            what: format!("layer {l:?}"),
                            source: e,
                        })?;
                    let mt = match &head[..n] {
                        [0x1f, 0x8b, ..] => manifest::DOCKER_LAYER_GZIP,
                        [0x28, 0xb5, 0x2f, 0xfd] => manifest::DOCKER_LAYER_ZSTD,
                        _ => manifest::DOCKER_LAYER,
                    };
                    layers.push((d.clone(), self.blob_size(&d)?, mt));
                }
                let diff_ids = manifest::config_diff_ids(&cfg, &format!("config {config}"))?;
                if diff_ids.len() != layers.len() {
                    return Err(arch_err(
                        archive,
                        format!(
                            "manifest.json[{i}]: {} layers but the config lists {} diff ids",
                            layers.len(),
                            diff_ids.len()
                        ),
                    ));
                }
                let tags = e
                    .repo_tags
                    .iter()
                    .flatten()
                    .map(|t| Reference::parse(t))
                    .collect::<Result<Vec<_>, _>>()?;
                let md = self.put_manifest(lease, &config, config_size, &layers, true)?;
                let (rec, new) = self.commit_image_new(&md)?;
                if new {
                    new_ids.insert(rec.id.clone());
                }
                for r in &tags {
                    self.tag(&rec.id.to_string(), r)?;
                }
                out.push(LoadedImage { id: rec.id, tags });
            }
            return Ok(out);
        }
        if members.contains_key("index.json") {
            let bytes = self.read_document(&lookup("index.json")?, "index.json")?;
            return self.load_oci_index(new_ids, &bytes, archive, &mut |d, _| {
                lease.hold(d);
                Ok(())
            });
        }
        Err(arch_err(
            archive,
            "neither manifest.json (docker-archive) nor index.json (OCI layout) found",
        ))
    }

    /// Commits the images an OCI `index.json` names; `fetch` makes sure a blob (digest,
    /// size) is in the store.
    fn load_oci_index(
        &self,
        new_ids: &mut BTreeSet<Digest>,
        index_bytes: &[u8],
        archive: &str,
        fetch: &mut dyn FnMut(&Digest, u64) -> Result<()>,
    ) -> Result<Vec<LoadedImage>> {
        let index: oci_spec::image::ImageIndex = serde_json::from_slice(index_bytes)
            .map_err(|e| arch_err(archive, format!("index.json: {e}")))?;
        let mut out = Vec::new();
        for (i, desc) in index.manifests().iter().enumerate() {
            let what = format!("{archive}: index.json manifests[{i}]");
            let mut d = manifest::descriptor_digest(desc, &what)?;
            fetch(&d, desc.size())?;
            let mut parsed = manifest::parse_manifest(
                &self.read_document(&d, "manifest")?,
                Some(desc.media_type().as_ref()),
                &what,
            )?;
            if let Manifest::Index { index, .. } = &parsed {
                let pick = manifest::select_platform(index, &PlatformSpec::host(), &what)?;
                d = manifest::descriptor_digest(pick, &what)?;
                fetch(&d, pick.size())?;
                parsed = manifest::parse_manifest(
                    &self.read_document(&d, "manifest")?,
                    Some(pick.media_type().as_ref()),
                    &what,
                )?;
            }
            if let Manifest::Image { manifest: m, .. } = &parsed {
                fetch(
                    &manifest::descriptor_digest(m.config(), &what)?,
                    m.config().size(),
                )?;
                for l in m.layers() {
                    fetch(&manifest::descriptor_digest(l, &what)?, l.size())?;
                }
            }
            let ann = desc.annotations().clone().unwrap_or_default();
            let name = ann.get(ANNOTATION_IMAGE_NAME).cloned().or_else(|| {
                ann.get(ANNOTATION_REF_NAME)
                    .filter(|n| n.contains([':', '/']))
                    .cloned()
            });
            let tags = name
                .map(|n| Reference::parse(&n))
                .transpose()?
                .into_iter()
                .collect::<Vec<_>>();
            let (rec, new) = self.commit_image_new(&d)?;
            if new {
                new_ids.insert(rec.id.clone());
            }
            for r in &tags {
                self.tag(&rec.id.to_string(), r)?;
            }
            out.push(LoadedImage { id: rec.id, tags });
        }
        Ok(out)
    }

    /// Loads an OCI image layout directory.
    pub fn load_oci_dir(&self, dir: &Path) -> Result<Vec<LoadedImage>> {
        let archive = dir.display().to_string();
        let lease = self.lease();
        let mut new_ids = BTreeSet::new();
        let res = (|| {
            let p = dir.join("index.json");
            let bytes = std::fs::read(&p).map_err(|e| Error::io("read", &p, e))?;
            self.load_oci_index(&mut new_ids, &bytes, &archive, &mut |d, size| {
                lease.hold(d);
                if self.has_blob(d) {
                    return Ok(());
                }
                let p = dir.join("blobs/sha256").join(d.hex());
                let f = std::fs::File::open(&p).map_err(|e| Error::io("open", &p, e))?;
                lease.ingest(f, Some((d, size)), &format!("{}", p.display()))?;
                Ok(())
            })
        })();
        self.finish_load(lease, &new_ids, res)
    }

    fn records_for(&self, names: &[&str]) -> Result<Vec<(ImageRecord, Vec<Reference>)>> {
        let refs = self.references()?;
        names
            .iter()
            .map(|n| {
                let rec = self.resolve(n)?;
                // Saved by reference: that reference; by id (or an id prefix): none, as
                // dockerd (`RepoTags: null`; `docker load` then reports the id).
                let tags = match Reference::parse(n) {
                    Ok(r) if refs.iter().any(|(x, _)| x == &r) => vec![r],
                    _ => Vec::new(),
                };
                Ok((rec, tags))
            })
            .collect()
    }

    /// Writes the images `names` (references or ids) as a docker-archive tar to `w`, in the
    /// layout `docker save` has written since Docker 25: every file a blob under
    /// `blobs/sha256/` (layers uncompressed, so a layer's digest is its diff id), an OCI
    /// `index.json` and `oci-layout` beside the classic `manifest.json` and `repositories`,
    /// so the one archive loads as a docker-archive (docker, podman, older tools) and as an
    /// OCI image layout (skopeo, umoci, containerd).
    pub fn save_docker_archive(&self, names: &[&str], w: impl Write) -> Result<()> {
        let images = self.records_for(names)?;
        let mut b = tar::Builder::new(w);
        let mut written = BTreeSet::new();
        let mut manifest = Vec::new();
        let mut index_entries = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let blob_name = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        append(
            &mut b,
            "oci-layout",
            OCI_LAYOUT.len() as u64,
            OCI_LAYOUT.as_bytes(),
        )?;
        for (rec, tags) in &images {
            let mut layer_names = Vec::new();
            let mut layer_descs = Vec::new();
            for l in &rec.layers {
                let name = blob_name(&l.diff_id);
                if written.insert(name.clone()) {
                    let blob = self.open_blob(&l.blob)?;
                    let reader = crate::unpack::decompress(blob, &l.blob.to_string())?;
                    append(&mut b, &name, l.uncompressed_size, reader)?;
                }
                layer_descs.push(serde_json::json!({
                    "mediaType": manifest::OCI_LAYER, "digest": l.diff_id.to_string(),
                    "size": l.uncompressed_size,
                }));
                layer_names.push(name);
            }
            let config = self.read_document(&rec.id, "image config")?;
            let config_name = blob_name(&rec.id);
            if written.insert(config_name.clone()) {
                append(&mut b, &config_name, config.len() as u64, &config[..])?;
            }
            let oci_manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
                "config": {"mediaType": manifest::OCI_CONFIG, "digest": rec.id.to_string(), "size": config.len()},
                "layers": layer_descs,
            }))
            .map_err(|e| arch_err("docker-archive", e.to_string()))?;
            let manifest_digest = Digest::of(&oci_manifest);
            let manifest_name = blob_name(&manifest_digest);
            if written.insert(manifest_name.clone()) {
                append(
                    &mut b,
                    &manifest_name,
                    oci_manifest.len() as u64,
                    &oci_manifest[..],
                )?;
            }
            index_entries.extend(index_descriptors(
                manifest::OCI_MANIFEST,
                &manifest_digest,
                oci_manifest.len() as u64,
                tags,
            ));
            let top = rec
                .layers
                .last()
                .map(|l| l.diff_id.hex().to_string())
                .unwrap_or_default();
            for t in tags {
                if let Some(tag) = t.tag() {
                    repositories
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(tag.to_string(), top.clone());
                }
            }
            manifest.push(DockerManifestEntry {
                config: config_name,
                repo_tags: Some(
                    tags.iter()
                        .filter(|t| t.tag().is_some())
                        .map(|t| t.familiar())
                        .collect::<Vec<_>>(),
                )
                .filter(|t| !t.is_empty()),
                layers: layer_names,
            });
        }
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": index_entries,
        }))
        .map_err(|e| arch_err("docker-archive", e.to_string()))?;
        append(&mut b, "index.json", index.len() as u64, &index[..])?;
        let m =
            serde_json::to_vec(&manifest).map_err(|e| arch_err("docker-archive", e.to_string()))?;
        append(&mut b, "manifest.json", m.len() as u64, &m[..])?;
        let r = serde_json::to_vec(&repositories)
            .map_err(|e| arch_err("docker-archive", e.to_string()))?;
        append(&mut b, "repositories", r.len() as u64, &r[..])?;
        let mut w = b
            .into_inner()
            .map_err(|e| Error::io("write", "docker-archive", e))?;
        w.flush()
            .map_err(|e| Error::io("write", "docker-archive", e))
    }

    /// Writes the images as an OCI image layout tar to `w` (blobs as stored).
    pub fn save_oci_archive(&self, names: &[&str], w: impl Write) -> Result<()> {
        let images = self.records_for(names)?;
        let mut b = tar::Builder::new(w);
        let (index, blobs) = self.oci_index(&images)?;
        append(
            &mut b,
            "oci-layout",
            OCI_LAYOUT.len() as u64,
            OCI_LAYOUT.as_bytes(),
        )?;
        append(&mut b, "index.json", index.len() as u64, &index[..])?;
        for d in blobs {
            let size = self.blob_size(&d)?;
            append(
                &mut b,
                &format!("blobs/sha256/{}", d.hex()),
                size,
                self.open_blob(&d)?,
            )?;
        }
        let mut w = b
            .into_inner()
            .map_err(|e| Error::io("write", "oci-archive", e))?;
        w.flush().map_err(|e| Error::io("write", "oci-archive", e))
    }

    /// Writes the images as an OCI image layout directory `dir` (created if needed).
    pub fn save_oci_dir(&self, names: &[&str], dir: &Path) -> Result<()> {
        let images = self.records_for(names)?;
        let (index, blobs) = self.oci_index(&images)?;
        let bdir = dir.join("blobs/sha256");
        std::fs::create_dir_all(&bdir).map_err(|e| Error::io("create directory", &bdir, e))?;
        for d in blobs {
            let dst = bdir.join(d.hex());
            std::fs::copy(self.blob_path(&d), &dst).map_err(|e| Error::io("copy", &dst, e))?;
        }
        crate::store::atomic_write(&dir.join("oci-layout"), OCI_LAYOUT.as_bytes())?;
        crate::store::atomic_write(&dir.join("index.json"), &index)
    }

    fn oci_index(
        &self,
        images: &[(ImageRecord, Vec<Reference>)],
    ) -> Result<(Vec<u8>, BTreeSet<Digest>)> {
        let mut blobs = BTreeSet::new();
        let mut manifests = Vec::new();
        for (rec, tags) in images {
            blobs.insert(rec.manifest.clone());
            blobs.insert(rec.id.clone());
            blobs.extend(rec.layers.iter().map(|l| l.blob.clone()));
            let size = self.blob_size(&rec.manifest)?;
            manifests.extend(index_descriptors(
                &rec.manifest_media_type,
                &rec.manifest,
                size,
                tags,
            ));
        }
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": manifests});
        let bytes =
            serde_json::to_vec(&index).map_err(|e| arch_err("oci layout", e.to_string()))?;
        Ok((bytes, blobs))
    }
}

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI index's descriptors of one image's manifest: one per tag, annotated with the
/// full name and the tag as containerd and Docker write them (an image saved by id gets one
/// plain descriptor).
fn index_descriptors(
    media_type: &str,
    digest: &Digest,
    size: u64,
    tags: &[Reference],
) -> Vec<serde_json::Value> {
    let mut descs: Vec<serde_json::Value> = tags
        .iter()
        .filter_map(|t| {
            t.tag().map(|tag| {
                serde_json::json!({
                    "mediaType": media_type, "digest": digest.to_string(), "size": size,
                    "annotations": {ANNOTATION_IMAGE_NAME: t.to_string(), ANNOTATION_REF_NAME: tag},
                })
            })
        })
        .collect();
    if descs.is_empty() {
        descs.push(
            serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": size}),
        );
    }
    descs
}

/// Appends a regular file with fixed metadata (deterministic archives).
fn append<W: Write>(b: &mut tar::Builder<W>, name: &str, size: u64, data: impl Read) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    let mut counted = CountingReader { inner: data, n: 0 };
    b.append_data(&mut h, name, &mut counted)
        .map_err(|e| Error::io("write archive member", name, e))?;
    if counted.n != size {
        return Err(Error::SizeMismatch {
            what: format!("archive member {name}"),
            expected: size,
            actual: counted.n,
        });
    }
    Ok(())
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Normalizes an archive-relative path (`a/./b/../c` -> `a/c`); `None` if it climbs out.
fn normalize(p: &[u8]) -> Option<String> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(
        out.iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("/"),
    )
}
