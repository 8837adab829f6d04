//! The content-addressed, verified blob store and the atomic record files under a data root.
//!
//! Layout under the root (every path component is either fixed or a validated hex digest):
//!
//! ```text
//! blobs/sha256/<hex>     verified blobs (manifests, configs, compressed layers)
//! ingest/                temp files of blobs being written (same filesystem, so rename works)
//! layers/<hex>/          unpacked layers by diff id (see `unpack`), `layers/.tmp-*` while unpacking
//! l/<short>              short symlinks to layers/<hex>, to keep overlay lowerdir strings short
//! snapshots/<key>/       container snapshots (see `snapshot`)
//! images.json            the image index (see `image`)
//! ```
//!
//! Blobs become visible only by `rename` after their digest and size are verified and the
//! temp file is fsynced; a failed or truncated ingest unlinks its temp file. Records are
//! written temp + fsync + rename + fsync(dir), so a crash leaves the old or the new one.
//! Opening the store deletes leftovers of interrupted writes.

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The largest manifest, index or config read into memory (Docker's limit is 4 MiB for
/// manifests; configs of images with long histories can be bigger).
pub const MAX_DOCUMENT_SIZE: u64 = 16 << 20;

/// A data root holding blobs, unpacked layers, snapshots and records.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// Serializes read-modify-write of the image index within this process.
    index_lock: std::sync::Mutex<()>,
    /// Blobs and layers held by operations in progress (digest -> holders): `gc` keeps them.
    leases: std::sync::Mutex<std::collections::HashMap<Digest, usize>>,
}

/// Protects the blobs and layers an operation (pull, load, import, commit) brings in from
/// garbage collection until the operation has recorded its image, or failed: drop it then,
/// and a following [`Store::gc`] frees whatever the operation left unreferenced.
pub struct Lease<'a> {
    store: &'a Store,
    held: std::sync::Mutex<Vec<Digest>>,
}

impl Lease<'_> {
    /// Keeps `d` (a blob digest or a layer diff id) from garbage collection while held.
    pub fn hold(&self, d: &Digest) {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut leases = self.store.leases();
        *leases.entry(d.clone()).or_insert(0) += 1;
        held.push(d.clone());
    }

    /// [`Store::ingest`], holding the result.
    pub fn ingest(
        &self,
        reader: impl Read,
        expected: Option<(&Digest, u64)>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        if let Some((d, _)) = expected {
            // Hold before writing so a concurrent gc cannot take it between rename and hold.
            self.hold(d);
        }
        let (d, n) = self.store.ingest(reader, expected, what)?;
        if expected.is_none() {
            self.hold(&d);
        }
        Ok((d, n))
    }

    /// [`Store::put_blob`], holding the result.
    pub fn put_blob(&self, data: &[u8]) -> Result<Digest> {
        let d = Digest::of(data);
        self.ingest(data, Some((&d, data.len() as u64)), &d.to_string())?;
        Ok(d)
    }

    /// The store this lease belongs to.
    pub fn store(&self) -> &Store {
        self.store
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let held = std::mem::take(
            &mut *self
                .held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut leases = self.store.leases();
        for d in held {
            if let Some(n) = leases.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    leases.remove(&d);
                }
            }
        }
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp-file name unique within this process and across processes.
pub(crate) fn tmp_name(prefix: &str) -> String {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(".tmp-{prefix}-{}-{n}-{t:x}", std::process::id())
}

/// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename,
/// fsync of the directory; mode 0600.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    barge_util::fs::write_atomic(path, data, barge_util::fs::AtomicWrite::PRIVATE_DURABLE)
        .map_err(|e| Error::io(e.op, e.path, e.source))
}

/// fsyncs a directory so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync", dir)
}

impl Store {
    /// Opens (creating if needed) the store at `root`, and removes leftovers of interrupted
    /// writes: ingest temp files, half-unpacked layers, temp records.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        for d in ["", "blobs/sha256", "ingest", "layers", "l", "snapshots"] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx("create directory", &p)?;
        }
        // root may be relative; make it absolute so mount options and symlinks hold.
        let root = fs::canonicalize(&root).ctx("resolve", &root)?;
        let store = Store {
            root,
            index_lock: std::sync::Mutex::new(()),
            leases: std::sync::Mutex::new(std::collections::HashMap::new()),
        };
        store.cleanup()?;
        store.repair_unsynced_layers()?;
        Ok(store)
    }

    /// Takes the image-index lock (a poisoned lock is still usable: the index on disk is
    /// always whole, written by rename).
    pub(crate) fn index_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.index_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Digest, usize>> {
        self.leases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether an operation in progress holds `d`.
    pub(crate) fn is_leased(&self, d: &Digest) -> bool {
        self.leases().contains_key(d)
    }

    /// Starts a lease (see [`Lease`]).
    pub fn lease(&self) -> Lease<'_> {
        Lease {
            store: self,
            held: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes leftovers of interrupted writes (called by [`Store::open`]).
    pub fn cleanup(&self) -> Result<usize> {
        let mut removed = 0;
        let ingest = self.root.join("ingest");
        for e in fs::read_dir(&ingest).ctx("read directory", &ingest)? {
            let e = e.ctx("read directory", &ingest)?;
            remove_leftover(&e.path())?;
            removed += 1;
        }
        for dir in [
            self.root.clone(),
            self.root.join("layers"),
            self.root.join("blobs/sha256"),
            self.root.join("snapshots"),
        ] {
            for e in fs::read_dir(&dir).ctx("read directory", &dir)? {
                let e = e.ctx("read directory", &dir)?;
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    remove_leftover(&e.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Where the blob `d` lives (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// Whether the blob is in the store.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// The size of a blob.
    pub fn blob_size(&self, d: &Digest) -> Result<u64> {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::BlobNotFound(d.clone())),
            Err(e) => Err(Error::io("stat", self.blob_path(d), e)),
        }
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let p = self.blob_path(d);
        match File::open(&p) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::BlobNotFound(d.clone())),
            Err(e) => Err(Error::io("open", p, e)),
        }
    }

    /// Reads a whole blob that is a JSON document (at most [`MAX_DOCUMENT_SIZE`]).
    pub fn read_document(&self, d: &Digest, what: &'static str) -> Result<Vec<u8>> {
        let size = self.blob_size(d)?;
        if size > MAX_DOCUMENT_SIZE {
            return Err(Error::BlobTooLarge {
                digest: d.clone(),
                size,
                limit: MAX_DOCUMENT_SIZE,
                what,
            });
        }
        let p = self.blob_path(d);
        fs::read(&p).ctx("read", p)
    }

    /// Writes `data` as a blob and returns its digest.
    pub fn put_blob(&self, data: &[u8]) -> Result<Digest> {
        let d = Digest::of(data);
        self.ingest(data, Some((&d, data.len() as u64)), &d.to_string())?;
        Ok(d)
    }

    /// Streams `reader` into the store. While other operations may run a [`Store::gc`],
    /// use [`Lease::ingest`] instead, so the blob is not collected before it is used. With `expected`, the content must hash to that
    /// digest and have that size, else nothing is kept and a mismatch error is returned.
    /// A read error (a truncated download) also keeps nothing. Returns digest and size.
    pub fn ingest(
        &self,
        reader: impl Read,
        expected: Option<(&Digest, u64)>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        let tmp = self.root.join("ingest").join(tmp_name("blob"));
        let res = self.ingest_to(&tmp, reader, expected, what);
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    fn ingest_to(
        &self,
        tmp: &Path,
        mut reader: impl Read,
        expected: Option<(&Digest, u64)>,
        what: &str,
    ) -> Result<(Digest, u64)> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(tmp)
            .ctx("create", tmp)?;
        let mut w = HashingWriter::new(io::BufWriter::with_capacity(256 << 10, f));
        let mut buf = vec![0u8; 256 << 10];
        let limit = expected.map(|(_, s)| s);
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Read {
                        what: what.to_string(),
                        source: e,
                    })
                }
            };
            total += n as u64;
            // Stop early on an oversized stream instead of filling the disk.
            if let Some(l) = limit {
                if total > l {
                    return Err(Error::SizeMismatch {
                        what: what.to_string(),
                        expected: l,
                        actual: total,
                    });
                }
            }
            w.write_all(&buf[..n]).ctx("write", tmp)?;
        }
        let (digest, size, bw) = w.finish();
        let f = bw
            .into_inner()
            .map_err(|e| Error::io("write", tmp, e.into_error()))?;
        if let Some((d, s)) = expected {
            if size != s {
                return Err(Error::SizeMismatch {
                    what: what.to_string(),
                    expected: s,
                    actual: size,
                });
            }
            if &digest != d {
                return Err(Error::DigestMismatch {
                    what: what.to_string(),
                    expected: d.clone(),
                    actual: digest,
                });
            }
        }
        f.sync_all().ctx("fsync", tmp)?;
        drop(f);
        let dst = self.blob_path(&digest);
        fs::rename(tmp, &dst).ctx("rename", &dst)?;
        sync_dir(&self.root.join("blobs/sha256"))?;
        Ok((digest, size))
    }

    /// Deletes a blob (no error if absent).
    pub fn delete_blob(&self, d: &Digest) -> Result<()> {
        let p = self.blob_path(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", p, e)),
        }
    }

    /// Lists the blobs in the store.
    pub fn list_blobs(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx("read directory", &dir)? {
            let e = e.ctx("read directory", &dir)?;
            if let Some(d) = e
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Writes a record file (relative to the root) atomically.
    pub fn write_record(&self, name: &str, data: &[u8]) -> Result<()> {
        atomic_write(&self.root.join(name), data)
    }

    /// Reads a record file, `None` if it does not exist.
    pub fn read_record(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let p = self.root.join(name);
        match fs::read(&p) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", p, e)),
        }
    }
}

/// A blob being written (a diff, a download): bytes go to a temp file in `ingest/` and are
/// hashed on the way; [`BlobWriter::commit`] fsyncs, checks, and renames it into place.
/// Dropped without commit, the temp file is removed.
pub struct BlobWriter<'a> {
    store: &'a Store,
    tmp: PathBuf,
    w: Option<HashingWriter<io::BufWriter<File>>>,
}

impl Store {
    /// Starts writing a blob (see [`BlobWriter`]).
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let tmp = self.root.join("ingest").join(tmp_name("blob"));
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .ctx("create", &tmp)?;
        Ok(BlobWriter {
            store: self,
            tmp,
            w: Some(HashingWriter::new(io::BufWriter::with_capacity(
                256 << 10,
                f,
            ))),
        })
    }
}

impl BlobWriter<'_> {
    /// Makes the blob visible, held by `lease`; with `expected`, only if digest and size
    /// match. Returns digest and size.
    pub fn commit(
        mut self,
        lease: &Lease<'_>,
        expected: Option<(&Digest, u64)>,
    ) -> Result<(Digest, u64)> {
        let w = self.w.take().ok_or_else(|| {
            Error::io(
                "commit",
                &self.tmp,
                io::Error::other("blob writer already finished"),
            )
        })?;
        let (digest, size, bw) = w.finish();
        let f = bw
            .into_inner()
            .map_err(|e| Error::io("write", &self.tmp, e.into_error()))?;
        if let Some((d, s)) = expected {
            if size != s {
                return Err(Error::SizeMismatch {
                    what: format!("blob {d}"),
                    expected: s,
                    actual: size,
                });
            }
            if &digest != d {
                return Err(Error::DigestMismatch {
                    what: format!("blob {d}"),
                    expected: d.clone(),
                    actual: digest,
                });
            }
        }
        f.sync_all().ctx("fsync", &self.tmp)?;
        lease.hold(&digest);
        let dst = self.store.blob_path(&digest);
        fs::rename(&self.tmp, &dst).ctx("rename", &dst)?;
        sync_dir(&self.store.root.join("blobs/sha256"))?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.w {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("blob writer already finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.w {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // After a successful commit the temp name no longer exists; this is a no-op then.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Removes a leftover of a crash. A temp mountpoint (an export in progress) may still be
/// mounted: detach it first, so the removal never walks into a mounted snapshot.
fn remove_leftover(p: &Path) -> Result<()> {
    if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
        // SAFETY: c is a valid NUL-terminated path; failure (not a mountpoint) is ignored.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
    }
    remove_any(p)
}

/// Removes a file, symlink or directory tree without following symlinks.
pub(crate) fn remove_any(p: &Path) -> Result<()> {
    let md = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", p, e)),
    };
    if md.is_dir() {
        // std's remove_dir_all does not follow symlinks (CVE-2022-21658 fixed in 1.58.1).
        fs::remove_dir_all(p).ctx("remove", p)
    } else {
        fs::remove_file(p).ctx("remove", p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FailAfter {
        data: Vec<u8>,
        pos: usize,
    }
    impl Read for FailAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos >= self.data.len() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "peer went away",
                ));
            }
            let n = buf.len().min(self.data.len() - self.pos).min(1000);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn entries(p: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(p)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn ingest_verifies_and_leaves_nothing_on_failure() {
        let td = tempfile::tempdir().expect("tempdir");
        let s = Store::open(td.path()).expect("open");
        let data = b"hello layer".repeat(1000);
        let d = Digest::of(&data);
        // Wrong digest: refused, nothing kept.
        let wrong = Digest::of(b"other");
        let e = s.ingest(&data[..], Some((&wrong, data.len() as u64)), "blob x");
        assert!(matches!(e, Err(Error::DigestMismatch { .. })), "{e:?}");
        // Truncated: size mismatch.
        let e = s.ingest(&data[..100], Some((&d, data.len() as u64)), "blob x");
        assert!(matches!(e, Err(Error::SizeMismatch { .. })), "{e:?}");
        // Longer than announced.
        let e = s.ingest(&data[..], Some((&d, 10)), "blob x");
        assert!(matches!(e, Err(Error::SizeMismatch { .. })), "{e:?}");
        // Reader fails midway (a dropped download).
        let e = s.ingest(
            FailAfter {
                data: data.clone(),
                pos: 0,
            },
            Some((&d, data.len() as u64)),
            "blob x",
        );
        assert!(matches!(e, Err(Error::Read { .. })), "{e:?}");
        assert!(entries(&td.path().join("ingest")).is_empty());
        assert!(entries(&td.path().join("blobs/sha256")).is_empty());
        // Good one.
        let (got, n) = s
            .ingest(&data[..], Some((&d, data.len() as u64)), "blob x")
            .expect("ingest");
        assert_eq!(got, d);
        assert_eq!(n, data.len() as u64);
        assert_eq!(fs::read(s.blob_path(&d)).expect("read"), data);
        assert_eq!(s.list_blobs().expect("list"), vec![d.clone()]);
        assert!(entries(&td.path().join("ingest")).is_empty());
        // Without an expected digest the content's digest is returned.
        let d2 = s.put_blob(b"{}").expect("put");
        assert_eq!(d2, Digest::of(b"{}"));
        assert!(matches!(s.open_blob(&wrong), Err(Error::BlobNotFound(_))));
    }

    #[test]
    fn blob_writer_commits_only_verified_content() {
        let td = tempfile::tempdir().expect("tempdir");
        let s = Store::open(td.path()).expect("open");
        let lease = s.lease();
        let mut w = s.blob_writer().expect("writer");
        w.write_all(b"partial").expect("write");
        drop(w);
        assert!(
            entries(&td.path().join("ingest")).is_empty(),
            "dropped writer leaves nothing"
        );
        let mut w = s.blob_writer().expect("writer");
        w.write_all(b"content").expect("write");
        let e = w.commit(&lease, Some((&Digest::of(b"other"), 7)));
        assert!(matches!(e, Err(Error::DigestMismatch { .. })), "{e:?}");
        assert!(entries(&td.path().join("ingest")).is_empty());
        assert!(s.list_blobs().expect("list").is_empty());
        let mut w = s.blob_writer().expect("writer");
        w.write_all(b"content").expect("write");
        let (d, n) = w.commit(&lease, None).expect("commit");
        assert_eq!((d.clone(), n), (Digest::of(b"content"), 7));
        assert_eq!(fs::read(s.blob_path(&d)).expect("read"), b"content");
    }

    #[test]
    fn open_cleans_leftovers_and_records_are_atomic() {
        let td = tempfile::tempdir().expect("tempdir");
        let s = Store::open(td.path()).expect("open");
        fs::write(td.path().join("ingest/.tmp-blob-1"), b"partial").expect("write");
        fs::create_dir_all(td.path().join("layers/.tmp-layer-1/x")).expect("mkdir");
        fs::write(td.path().join(".tmp-rec-9"), b"{").expect("write");
        s.write_record("images.json", b"{\"a\":1}").expect("record");
        drop(s);
        let s = Store::open(td.path()).expect("reopen");
        assert!(entries(&td.path().join("ingest")).is_empty());
        assert!(entries(&td.path().join("layers")).is_empty());
        assert!(!td.path().join(".tmp-rec-9").exists());
        assert_eq!(
            s.read_record("images.json").expect("read").as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(s.read_record("nope.json").expect("read"), None);
    }
}
