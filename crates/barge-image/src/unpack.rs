//! Secure layer unpacking: a (gzip, zstd or plain) tar stream into an empty directory,
//! confined to it, with overlayfs whiteouts, and the diff id computed on the way.
//!
//! Confinement does not rely on the tar crate's `unpack`: every entry's path is cleaned
//! (no `..`, no absolute path, no NUL), and its parent is reached from a directory fd of
//! the layer root one component at a time with `O_NOFOLLOW | O_DIRECTORY`, creating missing
//! directories; a symlink on the way is an error, never followed. The final component is
//! created with `*at` calls that do not follow symlinks either (`O_EXCL|O_NOFOLLOW`,
//! `AT_SYMLINK_NOFOLLOW`, `linkat` without `AT_SYMLINK_FOLLOW`). Hardlink targets are
//! resolved the same way, so they cannot point outside or through a symlink. A layer is
//! unpacked into a fresh private directory, so nothing else races with these checks.
//!
//! Whiteouts follow the OCI image-spec: `.wh.NAME` becomes an overlayfs whiteout (a 0:0
//! character device named NAME); `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its
//! directory; a bare `.wh.` is refused; other `.wh..wh.*` (aufs metadata) are skipped.
//! Device nodes are created only as root; setuid/setgid bits and ownership are kept only
//! as root. `trusted.overlay.*` xattrs from the archive are dropped: they would steer
//! overlayfs (redirects, metacopy) from inside an image.

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, Result};
use std::ffi::CString;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What unpacking produced.
#[derive(Debug, Clone)]
pub struct UnpackStats {
    /// sha256 of the uncompressed tar stream (the layer's diff id).
    pub diff_id: Digest,
    /// Length of the uncompressed stream.
    pub uncompressed_size: u64,
    /// Entries written.
    pub entries: u64,
    /// Entries skipped (device nodes when not root, aufs metadata, global PAX headers).
    pub skipped: u64,
}

/// Options for [`unpack`].
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Keep ownership, setuid/setgid bits and create device nodes. Defaults to whether the
    /// process runs as root.
    pub privileged: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        UnpackOptions {
            privileged: euid == 0,
        }
    }
}

/// The compression of a layer stream, from its magic bytes.
fn sniff(r: &mut impl BufRead, layer: &str) -> Result<crate::manifest::Compression> {
    use crate::manifest::Compression;
    let head = r.fill_buf().map_err(|e| Error::Read {
        what: format!("layer {layer}"),
        source: e,
    })?;
    Ok(match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            return Err(Error::Layer {
                layer: layer.to_string(),
                reason: "xz-compressed layers are not supported".into(),
            })
        }
        [b'B', b'Z', b'h', ..] => {
            return Err(Error::Layer {
                layer: layer.to_string(),
                reason: "bzip2-compressed layers are not supported".into(),
            })
        }
        _ => Compression::None,
    })
}

/// Wraps `r` in the decompressor its magic bytes call for.
pub fn decompress<'a>(r: impl Read + Send + 'a, layer: &str) -> Result<Box<dyn Read + Send + 'a>> {
    open_layer(r, layer).map(|(_, r)| r)
}

fn open_layer<'a>(
    r: impl Read + Send + 'a,
    layer: &str,
) -> Result<(crate::manifest::Compression, Box<dyn Read + Send + 'a>)> {
    use crate::manifest::Compression;
    let mut br = BufReader::with_capacity(128 << 10, r);
    let c = sniff(&mut br, layer)?;
    let r: Box<dyn Read + Send + 'a> = match c {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => {
            Box::new(zstd::Decoder::with_buffer(br).map_err(|e| Error::Layer {
                layer: layer.to_string(),
                reason: format!("zstd: {e}"),
            })?)
        }
        Compression::None => Box::new(br),
    };
    Ok((c, r))
}

/// Reads chunks that another thread decompressed, so decompression and writing files
/// overlap (as `tar -xz` overlaps gzip and tar).
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    /// Chunks read to the end go back to the producer, which fills them again: fresh
    /// 1 MiB buffers would cost a page fault per 4 KiB and a memset each.
    back: std::sync::mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let done = std::mem::replace(&mut self.cur, chunk);
                    if done.capacity() > 0 {
                        // The producer may have finished: then the buffer is just dropped.
                        let _ = self.back.send(done);
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The producer finished: end of stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Unpacks the layer stream `r` (compression detected by magic bytes) into `target`, which
/// must be an existing empty directory. `layer` names the layer in errors. On error,
/// `target` may hold a partial tree: the caller unpacks into a temp directory and removes
/// it (as [`crate::Store::unpack_layer`] does).
///
/// A compressed layer goes through a pipeline of three threads, as `tar -xz` overlaps
/// gzip and tar: one decompresses into 1 MiB chunks, one hashes them (the diff id) and
/// passes them on, and this one writes the files.
pub fn unpack(
    r: impl Read + Send,
    target: &Path,
    layer: &str,
    opts: &UnpackOptions,
) -> Result<UnpackStats> {
    let (compression, dec) = open_layer(r, layer)?;
    if compression == crate::manifest::Compression::None {
        let mut hashing = HashingReader::new(dec);
        let (entries, skipped) = unpack_stream(&mut hashing, target, layer, opts)?;
        let uncompressed_size = hashing.len();
        let (diff_id, _) = hashing.finish();
        return Ok(UnpackStats {
            diff_id,
            uncompressed_size,
            entries,
            skipped,
        });
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
        let (hashed_tx, hashed_rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
        let (back, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
        let spawn_err = |e| Error::Layer {
            layer: layer.to_string(),
            reason: format!("cannot start a thread: {e}"),
        };
        let inflate = std::thread::Builder::new()
            .name("barge-inflate".into())
            .spawn_scoped(s, move || {
                let mut dec = dec;
                loop {
                    let mut buf = match recycled.try_recv() {
                        Ok(mut b) => {
                            // Back to full length: its bytes were written before, no memset.
                            b.resize(b.capacity().max(1 << 20), 0);
                            b
                        }
                        Err(_) => vec![0u8; 1 << 20],
                    };
                    let mut filled = 0;
                    // Fill whole chunks: fewer, larger messages.
                    while filled < buf.len() {
                        match dec.read(&mut buf[filled..]) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        }
                    }
                    if filled == 0 {
                        return;
                    }
                    buf.truncate(filled);
                    // A send error means the next stage stopped (an error): stop too.
                    if tx.send(Ok(buf)).is_err() {
                        return;
                    }
                }
            })
            .map_err(spawn_err)?;
        // The diff id, hashed beside the decompression and the file writes.
        let hasher = std::thread::Builder::new()
            .name("barge-diff-id".into())
            .spawn_scoped(s, move || {
                let mut h = crate::digest::Hasher::new();
                for chunk in rx {
                    if let Ok(c) = &chunk {
                        h.update(c);
                    }
                    if hashed_tx.send(chunk).is_err() {
                        break;
                    }
                }
                h
            })
            .map_err(spawn_err)?;
        let res = unpack_stream(
            ChannelReader {
                rx: hashed_rx,
                back,
                cur: Vec::new(),
                pos: 0,
            },
            target,
            layer,
            opts,
        );
        // Joined explicitly, also after an error (the reader is dropped: both stop): the
        // scope's implicit join only waits for their closures, not for the threads to
        // exit, and LeakSanitizer (the fuzz targets) then sees the thread-local
        // destructor list of a thread still exiting as a leak.
        let hashed = hasher.join();
        let inflated = inflate.join();
        let (entries, skipped) = res?;
        let h = match (hashed, inflated) {
            (Ok(h), Ok(())) => h,
            _ => {
                return Err(Error::Layer {
                    layer: layer.to_string(),
                    reason: "a thread decompressing or hashing it panicked".into(),
                })
            }
        };
        let uncompressed_size = h.len();
        Ok(UnpackStats {
            diff_id: h.finish(),
            uncompressed_size,
            entries,
            skipped,
        })
    })
}

/// Unpacks the tar stream `r` into `target`, then reads `r` to its end (the diff id covers
/// the whole stream, including the end-of-archive blocks and padding). Returns the entries
/// written and skipped.
fn unpack_stream(
    mut r: impl Read,
    target: &Path,
    layer: &str,
    opts: &UnpackOptions,
) -> Result<(u64, u64)> {
    let root = open_dir_path(target).map_err(|e| Error::io("open", target, e))?;
    // SAFETY: a zeroed stat is a valid out-buffer; root is an open fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: root is open, st a valid pointer.
    check(unsafe { libc::fstat(root.as_raw_fd(), &mut st) })
        .map_err(|e| Error::io("stat", target, e))?;
    let creator = (st.st_mode & libc::S_ISGID == 0)
        // SAFETY: geteuid and getegid have no preconditions and cannot fail.
        .then(|| unsafe { (libc::geteuid(), libc::getegid()) });
    let mut u = Unpacker {
        root,
        root_path: target,
        layer,
        opts,
        creator,
        open_dirs: Vec::new(),
        deep: None,
        dirs: Vec::new(),
        stats_entries: 0,
        stats_skipped: 0,
        buf: Vec::new(),
    };
    {
        let mut ar = tar::Archive::new(&mut r);
        let entries = ar
            .entries()
            .map_err(|e| u.layer_err(format!("reading tar: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| u.layer_err(format!("reading tar: {e}")))?;
            u.entry(entry)?;
        }
    }
    u.finish_dirs()?;
    io::copy(&mut r, &mut io::sink())
        .map_err(|e| u.layer_err(format!("reading after end of archive: {e}")))?;
    Ok((u.stats_entries, u.stats_skipped))
}

/// How deep the unpacker keeps the directories of the current path open (a hostile path
/// thousands of components deep must not exhaust the process's descriptors).
const MAX_OPEN_DIRS: usize = 64;

/// A directory whose mode and times are applied after its children were written.
struct PendingDir {
    comps: Vec<Vec<u8>>,
    mode: u32,
    mtime: i64,
}

struct Unpacker<'a> {
    root: OwnedFd,
    root_path: &'a Path,
    layer: &'a str,
    opts: &'a UnpackOptions,
    /// Who owns what this process creates in the layer: its effective uid and gid (no
    /// directory of the tree has the setgid bit while unpacking: modes are applied at
    /// the end). `None` when the layer root is setgid (new entries take its group).
    creator: Option<(u32, u32)>,
    /// The directories along the last parent path reached, outermost first, by name.
    open_dirs: Vec<(Vec<u8>, OwnedFd)>,
    /// The last parent reached when it lies deeper than [`MAX_OPEN_DIRS`].
    deep: Option<OwnedFd>,
    dirs: Vec<PendingDir>,
    stats_entries: u64,
    stats_skipped: u64,
    /// The buffer file contents go through (see [`copy_large`]).
    buf: Vec<u8>,
}

/// `io::copy` with a large reused buffer: std's 8 KiB one makes a `write` per 8 KiB,
/// thousands of syscalls for a layer's larger files.
fn copy_large(r: &mut impl Read, w: &mut std::fs::File, buf: &mut Vec<u8>) -> io::Result<u64> {
    use std::io::Write;
    if buf.is_empty() {
        buf.resize(256 << 10, 0);
    }
    let mut n = 0u64;
    loop {
        let k = match r.read(buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}

/// What an entry creates, with what its creation needs.
enum Node {
    File,
    Dir,
    /// The target, stored as data.
    Symlink(CString),
    /// The target's parent (held open), its name, and the target as the archive wrote it.
    Link(OwnedFd, CString, String),
    /// `mknod`'s mode (type and permission bits) and device number.
    Dev(libc::mode_t, libc::dev_t),
}

impl Node {
    /// Creates the node `name` in `dir`; never follows or replaces what is there (EEXIST).
    /// A file comes back open for writing.
    fn create(&self, dir: RawFd, name: &CString) -> io::Result<Option<std::fs::File>> {
        match self {
            Node::File => {
                // SAFETY: dir is open, name NUL-terminated; the result is checked and owned.
                let fd = unsafe {
                    libc::openat(
                        dir,
                        name.as_ptr(),
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        0o600,
                    )
                };
                if fd < 0 {
                    return Err(last_err());
                }
                // SAFETY: fd was just opened and is owned by this File.
                return Ok(Some(unsafe { std::fs::File::from_raw_fd(fd) }));
            }
            // SAFETY (all below): dir and the fds are open, the names NUL-terminated.
            Node::Dir => check(unsafe { libc::mkdirat(dir, name.as_ptr(), 0o700) }),
            Node::Symlink(target) => {
                check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) })
            }
            // flags 0: a symlink target is linked itself, never followed.
            Node::Link(tdir, tname, _) => check(unsafe {
                libc::linkat(tdir.as_raw_fd(), tname.as_ptr(), dir, name.as_ptr(), 0)
            }),
            Node::Dev(mode, dev) => {
                check(unsafe { libc::mknodat(dir, name.as_ptr(), *mode, *dev) })
            }
        }
        .map(|()| None)
    }

    /// What creating it is called in errors.
    fn verb(&self) -> String {
        match self {
            Node::File => "create".into(),
            Node::Dir => "mkdir".into(),
            Node::Symlink(_) => "symlink".into(),
            Node::Link(_, _, target) => format!("hardlink to {target:?}"),
            Node::Dev(..) => "mknod".into(),
        }
    }
}

/// Metadata of an entry, PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

pub(crate) fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

pub(crate) fn open_dir_path(p: &Path) -> io::Result<OwnedFd> {
    let c = cstr(p.as_os_str().as_bytes())?;
    // SAFETY: c is a valid NUL-terminated string; the returned fd is checked and owned.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last_err());
    }
    // SAFETY: fd is a freshly opened descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `name` under `dir` without following a symlink.
pub(crate) fn open_dir_at(dir: RawFd, name: &CString) -> io::Result<OwnedFd> {
    // SAFETY: dir is a valid open fd; name is NUL-terminated; the result is checked and owned.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last_err());
    }
    // SAFETY: fd is a freshly opened descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `None` when absent.
pub(crate) fn lstat_at(dir: RawFd, name: &CString) -> io::Result<Option<libc::stat>> {
    // SAFETY: a zeroed stat is a valid out-buffer for fstatat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: dir is open, name NUL-terminated, st a valid pointer.
    let r = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if r == 0 {
        return Ok(Some(st));
    }
    let e = last_err();
    if e.raw_os_error() == Some(libc::ENOENT) {
        Ok(None)
    } else {
        Err(e)
    }
}

pub(crate) fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(last_err())
    } else {
        Ok(())
    }
}

/// Cleans an archive path into components. Errors name the problem.
pub(crate) fn clean_path(raw: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if raw.contains(&0) {
        return Err("path contains a NUL byte".into());
    }
    if raw.first() == Some(&b'/') {
        return Err("absolute path refused (entries must be relative to the layer root)".into());
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path escapes the layer root (\"..\" component)".into()),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn show(comps: &[Vec<u8>]) -> String {
    comps
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

impl Unpacker<'_> {
    fn layer_err(&self, reason: String) -> Error {
        Error::Layer {
            layer: self.layer.to_string(),
            reason,
        }
    }

    fn err(&self, entry: &[u8], reason: impl Into<String>) -> Error {
        Error::Unpack {
            layer: self.layer.to_string(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    /// Reaches the directory `comps` under the root, creating missing directories, never
    /// following a symlink. Returns a raw fd valid until the next call. The directories
    /// of the last path reached stay open (up to [`MAX_OPEN_DIRS`] deep), so the next
    /// entry, usually a sibling or a child, starts from their common prefix instead of
    /// opening every component from the root again.
    fn parent(&mut self, comps: &[Vec<u8>]) -> Result<RawFd, String> {
        let common = self
            .open_dirs
            .iter()
            .zip(comps)
            .take_while(|((name, _), c)| name == *c)
            .count();
        self.open_dirs.truncate(common);
        self.deep = None;
        let start = self.open_dirs.len();
        for (i, c) in comps.iter().enumerate().skip(start) {
            let name = cstr(c).map_err(|e| e.to_string())?;
            let dirfd = match (&self.deep, self.open_dirs.last()) {
                (Some(fd), _) | (None, Some((_, fd))) => fd.as_raw_fd(),
                (None, None) => self.root.as_raw_fd(),
            };
            let next = match open_dir_at(dirfd, &name) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    // SAFETY: dirfd is open and name NUL-terminated.
                    check(unsafe { libc::mkdirat(dirfd, name.as_ptr(), 0o755) })
                        .map_err(|e| format!("creating parent {:?}: {e}", show(&comps[..=i])))?;
                    open_dir_at(dirfd, &name)
                        .map_err(|e| format!("opening parent {:?}: {e}", show(&comps[..=i])))?
                }
                // O_DIRECTORY|O_NOFOLLOW on a symlink gives ELOOP or ENOTDIR: tell them apart.
                Err(e)
                    if e.raw_os_error() == Some(libc::ELOOP)
                        || (e.raw_os_error() == Some(libc::ENOTDIR)
                            && lstat_at(dirfd, &name)
                                .ok()
                                .flatten()
                                .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFLNK)) =>
                {
                    return Err(format!(
                        "path goes through symlink {:?} (refused: it could lead outside the layer)",
                        show(&comps[..=i])
                    ))
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    return Err(format!(
                        "parent {:?} is not a directory",
                        show(&comps[..=i])
                    ))
                }
                Err(e) => return Err(format!("opening parent {:?}: {e}", show(&comps[..=i]))),
            };
            if self.deep.is_none() && self.open_dirs.len() < MAX_OPEN_DIRS {
                self.open_dirs.push((c.clone(), next));
            } else {
                // Deeper than that: walked with one descriptor at a time, not kept.
                self.deep = Some(next);
            }
        }
        Ok(match (&self.deep, self.open_dirs.last()) {
            (Some(fd), _) | (None, Some((_, fd))) => fd.as_raw_fd(),
            (None, None) => self.root.as_raw_fd(),
        })
    }

    /// Forgets the open directories (after a removal, which may have taken some of them).
    fn forget_dirs(&mut self) {
        self.open_dirs.clear();
        self.deep = None;
    }

    fn meta(&self, entry: &mut tar::Entry<'_, impl Read>, raw: &[u8]) -> Result<Meta> {
        let h = entry.header();
        let bad = |f: &str, e: io::Error| self.err(raw, format!("bad {f} field: {e}"));
        // As Go's archive/tar, a numeric field of only NULs and spaces reads as 0 (tar
        // writers such as a bare `tar::Header::new_gnu()` leave uid/gid empty).
        let old = h.as_old();
        let blank = |f: &[u8]| f.iter().all(|b| *b == 0 || *b == b' ');
        let mut m = Meta {
            mode: if blank(&old.mode) {
                0
            } else {
                h.mode().map_err(|e| bad("mode", e))? & 0o7777
            },
            uid: if blank(&old.uid) {
                0
            } else {
                h.uid().map_err(|e| bad("uid", e))?
            },
            gid: if blank(&old.gid) {
                0
            } else {
                h.gid().map_err(|e| bad("gid", e))?
            },
            mtime: if blank(&old.mtime) {
                0
            } else {
                i64::try_from(h.mtime().map_err(|e| bad("mtime", e))?).unwrap_or(i64::MAX)
            },
            xattrs: Vec::new(),
        };
        if let Some(exts) = entry.pax_extensions().map_err(|e| bad("PAX", e))? {
            for ext in exts {
                let ext = ext.map_err(|e| bad("PAX", e))?;
                let Ok(key) = ext.key() else { continue };
                let val = ext.value_bytes();
                let num = || {
                    std::str::from_utf8(val)
                        .ok()
                        .and_then(|s| s.split('.').next())
                        .and_then(|s| s.parse::<i64>().ok())
                };
                match key {
                    "uid" => m.uid = num().and_then(|v| u64::try_from(v).ok()).unwrap_or(m.uid),
                    "gid" => m.gid = num().and_then(|v| u64::try_from(v).ok()).unwrap_or(m.gid),
                    "mtime" => m.mtime = num().unwrap_or(m.mtime),
                    k => {
                        if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                            if name.starts_with("trusted.overlay.") {
                                continue;
                            }
                            if let Ok(c) = CString::new(name) {
                                m.xattrs.push((c, val.to_vec()));
                            }
                        }
                    }
                }
            }
        }
        if !self.opts.privileged {
            m.mode &= 0o1777;
        }
        Ok(m)
    }

    fn entry(&mut self, mut entry: tar::Entry<'_, impl Read>) -> Result<()> {
        use tar::EntryType as T;
        let raw = entry.path_bytes().into_owned();
        let et = entry.header().entry_type();
        match et {
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {
                self.stats_skipped += 1;
                return Ok(());
            }
            _ => {}
        }
        let comps = clean_path(&raw).map_err(|r| self.err(&raw, r))?;
        let Some((name, parent)) = comps.split_last() else {
            // The layer root itself ("." or "./"): its metadata is the snapshot's business,
            // and a non-directory there would replace the root.
            if et == T::Directory {
                self.stats_skipped += 1;
                return Ok(());
            }
            return Err(self.err(&raw, "entry names the layer root but is not a directory"));
        };
        let meta = self.meta(&mut entry, &raw)?;

        // Whiteouts.
        if let Some(target) = name.strip_prefix(b".wh.") {
            return self.whiteout(&raw, parent, target);
        }

        let cname = cstr(name).map_err(|e| self.err(&raw, e.to_string()))?;
        let layer = self.layer;
        let io_err = |what: &str, e: io::Error| Error::Unpack {
            layer: layer.to_string(),
            entry: String::from_utf8_lossy(&raw).into_owned(),
            reason: format!("{what}: {e}"),
        };
        // What to create, prepared before the entry's parent is reached (a hardlink's
        // target is reached first).
        let node = match et {
            T::Regular | T::Continuous | T::GNUSparse => Node::File,
            T::Directory => Node::Dir,
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.err(&raw, "symlink without a target"))?;
                // The target is stored as data and never followed by the unpacker.
                Node::Symlink(cstr(&target).map_err(|e| io_err("symlink target", e))?)
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.err(&raw, "hardlink without a target"))?
                    .into_owned();
                let shown = String::from_utf8_lossy(&target).into_owned();
                let tcomps = clean_path(&target)
                    .map_err(|r| self.err(&raw, format!("hardlink target {shown:?}: {r}")))?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(self.err(&raw, "hardlink to the layer root"));
                };
                let ctname = cstr(tname).map_err(|e| io_err("hardlink target", e))?;
                // Both parents must be held at once: keep the target's parent as an owned fd.
                let tfd = self
                    .parent(tparent)
                    .map_err(|r| self.err(&raw, format!("hardlink target {shown:?}: {r}")))?;
                // SAFETY: dup of an open fd; result checked and owned.
                let tfd = unsafe { libc::fcntl(tfd, libc::F_DUPFD_CLOEXEC, 0) };
                if tfd < 0 {
                    return Err(io_err("dup", last_err()));
                }
                // SAFETY: tfd is a fresh descriptor we own.
                Node::Link(unsafe { OwnedFd::from_raw_fd(tfd) }, ctname, shown)
            }
            T::Char | T::Block | T::Fifo => {
                if et != T::Fifo && !self.opts.privileged {
                    self.stats_skipped += 1;
                    return Ok(());
                }
                let kind = match et {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                Node::Dev(kind | (meta.mode & 0o777), libc::makedev(major, minor))
            }
            other => {
                return Err(self.err(&raw, format!("unsupported entry type {other:?}")));
            }
        };
        // Created without looking first (almost every entry is new): only when the name
        // exists is it looked at, then replaced (a directory kept for a directory entry)
        // and created once more.
        let mut pfd = self.parent(parent).map_err(|r| self.err(&raw, r))?;
        let mut replaced = false;
        let mut kept = false;
        let file = loop {
            let made = node.create(pfd, &cname);
            match made {
                Ok(f) => break f,
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) && !replaced => {
                    replaced = true;
                    let st = lstat_at(pfd, &cname).map_err(|e| io_err("stat", e))?;
                    let is_dir = st.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
                    if is_dir && matches!(node, Node::Dir) {
                        kept = true;
                        break None;
                    }
                    self.remove_existing(&raw, &comps, is_dir)?;
                    // The removal may have dropped the open parents; reach it again.
                    pfd = self.parent(parent).map_err(|r| self.err(&raw, r))?;
                }
                Err(e) => return Err(io_err(&node.verb(), e)),
            }
        };
        match node {
            Node::File => {
                let Some(mut f) = file else {
                    return Err(self.err(&raw, "file not created"));
                };
                let want = entry.size();
                let got = copy_large(&mut entry, &mut f, &mut self.buf)
                    .map_err(|e| io_err("write", e))?;
                if et != T::GNUSparse && got != want {
                    return Err(self.err(
                        &raw,
                        format!("truncated archive: header says {want} bytes, stream had {got}"),
                    ));
                }
                self.own(&raw, f.as_raw_fd(), None, &meta, true)?;
                // SAFETY: f's fd is open.
                check(unsafe { libc::fchmod(f.as_raw_fd(), meta.mode) })
                    .map_err(|e| io_err("chmod", e))?;
                self.xattrs(&raw, &comps, &meta)?;
                set_times(f.as_raw_fd(), None, meta.mtime).map_err(|e| io_err("set times", e))?;
            }
            Node::Dir => {
                self.own(&raw, pfd, Some(&cname), &meta, !kept)?;
                self.xattrs(&raw, &comps, &meta)?;
                self.dirs.push(PendingDir {
                    comps: comps.clone(),
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
            }
            Node::Symlink(_) => {
                self.own(&raw, pfd, Some(&cname), &meta, true)?;
                self.xattrs(&raw, &comps, &meta)?;
                set_times(pfd, Some(&cname), meta.mtime).map_err(|e| io_err("set times", e))?;
            }
            // A hardlink shares its target's inode, metadata included.
            Node::Link(..) => {}
            Node::Dev(..) => {
                self.own(&raw, pfd, Some(&cname), &meta, true)?;
                // SAFETY: pfd open, cname NUL-terminated; fchmodat does not follow here since
                // the entry was just created by mknodat and is not a symlink.
                check(unsafe { libc::fchmodat(pfd, cname.as_ptr(), meta.mode, 0) })
                    .map_err(|e| io_err("chmod", e))?;
                self.xattrs(&raw, &comps, &meta)?;
                set_times(pfd, Some(&cname), meta.mtime).map_err(|e| io_err("set times", e))?;
            }
        }
        self.stats_entries += 1;
        Ok(())
    }

    fn whiteout(&mut self, raw: &[u8], parent: &[Vec<u8>], target: &[u8]) -> Result<()> {
        if target == b".wh..opq" {
            let pfd = self.parent(parent).map_err(|r| self.err(raw, r))?;
            let n = c"trusted.overlay.opaque";
            // SAFETY: pfd is an open directory fd (O_RDONLY); name and value are valid.
            check(unsafe { libc::fsetxattr(pfd, n.as_ptr(), b"y".as_ptr().cast(), 1, 0) })
                .map_err(|e| self.err(raw, format!("marking directory opaque: {e}")))?;
            self.stats_entries += 1;
            return Ok(());
        }
        if target.is_empty() {
            return Err(self.err(
                raw,
                "bare whiteout \".wh.\" refused (it would hide its whole directory)",
            ));
        }
        if target.starts_with(b".wh.") {
            // aufs hardlink/metadata dirs (.wh..wh.plnk, .wh..wh.aufs): meaningless here.
            self.stats_skipped += 1;
            return Ok(());
        }
        if target == b"." || target == b".." {
            return Err(self.err(raw, "whiteout of \".\" or \"..\" refused"));
        }
        if !self.opts.privileged {
            return Err(self.err(
                raw,
                "whiteouts need root (overlayfs whiteouts are 0:0 character devices)",
            ));
        }
        let mut comps = parent.to_vec();
        comps.push(target.to_vec());
        let pfd = self.parent(parent).map_err(|r| self.err(raw, r))?;
        let cname = cstr(target).map_err(|e| self.err(raw, e.to_string()))?;
        if let Some(st) = lstat_at(pfd, &cname).map_err(|e| self.err(raw, format!("stat: {e}")))? {
            self.remove_existing(raw, &comps, st.st_mode & libc::S_IFMT == libc::S_IFDIR)?;
        }
        let pfd = self.parent(parent).map_err(|r| self.err(raw, r))?;
        // SAFETY: pfd open, cname NUL-terminated.
        check(unsafe { libc::mknodat(pfd, cname.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) })
            .map_err(|e| self.err(raw, format!("creating whiteout: {e}")))?;
        self.stats_entries += 1;
        Ok(())
    }

    /// Removes what an entry replaces. The path's parents were just walked without
    /// following symlinks inside our private directory, so the joined path is confined.
    fn remove_existing(&mut self, raw: &[u8], comps: &[Vec<u8>], is_dir: bool) -> Result<()> {
        self.forget_dirs();
        let mut p = self.root_path.to_path_buf();
        for c in comps {
            p.push(std::ffi::OsStr::from_bytes(c));
        }
        let r = if is_dir {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| self.err(raw, format!("replacing existing entry: {e}")))?;
        self.dirs.retain(|d| !d.comps.starts_with(comps));
        Ok(())
    }

    /// Gives the entry the archive's owner. `fresh`: the entry was just created by this
    /// process, so it is owned by [`Unpacker::creator`] already when that is known.
    fn own(
        &self,
        raw: &[u8],
        dirfd: RawFd,
        name: Option<&CString>,
        m: &Meta,
        fresh: bool,
    ) -> Result<()> {
        if !self.opts.privileged {
            return Ok(());
        }
        let (uid, gid) = match (u32::try_from(m.uid), u32::try_from(m.gid)) {
            (Ok(u), Ok(g)) if u != u32::MAX && g != u32::MAX => (u, g),
            _ => return Err(self.err(raw, format!("uid/gid {}:{} out of range", m.uid, m.gid))),
        };
        if fresh && self.creator == Some((uid, gid)) {
            // Most entries are root's, as is the daemon: no chown needed.
            return Ok(());
        }
        let r = match name {
            // SAFETY: dirfd open, name NUL-terminated; AT_SYMLINK_NOFOLLOW chowns a symlink itself.
            Some(n) => unsafe {
                libc::fchownat(dirfd, n.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
            },
            // SAFETY: dirfd is the open file itself.
            None => unsafe { libc::fchown(dirfd, uid, gid) },
        };
        check(r).map_err(|e| self.err(raw, format!("chown {uid}:{gid}: {e}")))
    }

    fn xattrs(&self, raw: &[u8], comps: &[Vec<u8>], m: &Meta) -> Result<()> {
        if m.xattrs.is_empty() {
            return Ok(());
        }
        let mut p = self.root_path.to_path_buf();
        for c in comps {
            p.push(std::ffi::OsStr::from_bytes(c));
        }
        let cp = cstr(p.as_os_str().as_bytes()).map_err(|e| self.err(raw, e.to_string()))?;
        for (k, v) in &m.xattrs {
            // lsetxattr: never through a final symlink; parents were walked without symlinks.
            // SAFETY: cp and k are NUL-terminated; v is a valid buffer of v.len() bytes.
            let r =
                unsafe { libc::lsetxattr(cp.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
            if r < 0 {
                let e = last_err();
                // Unprivileged: trusted.* and security.* need CAP_SYS_ADMIN; drop them.
                if !self.opts.privileged && e.raw_os_error() == Some(libc::EPERM) {
                    continue;
                }
                return Err(self.err(raw, format!("setting xattr {}: {e}", k.to_string_lossy())));
            }
        }
        Ok(())
    }

    /// Applies directory modes and mtimes, deepest first, after all children were written.
    fn finish_dirs(&mut self) -> Result<()> {
        self.forget_dirs();
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.comps.len()));
        for d in dirs {
            let raw = show(&d.comps).into_bytes();
            let Some((name, parent)) = d.comps.split_last() else {
                continue;
            };
            let pfd = self.parent(parent).map_err(|r| self.err(&raw, r))?;
            let cname = cstr(name).map_err(|e| self.err(&raw, e.to_string()))?;
            let fd = open_dir_at(pfd, &cname)
                .map_err(|e| self.err(&raw, format!("reopen directory: {e}")))?;
            // SAFETY: fd is an open directory.
            check(unsafe { libc::fchmod(fd.as_raw_fd(), d.mode) })
                .map_err(|e| self.err(&raw, format!("chmod: {e}")))?;
            set_times(fd.as_raw_fd(), None, d.mtime)
                .map_err(|e| self.err(&raw, format!("set times: {e}")))?;
        }
        Ok(())
    }
}

/// Sets atime and mtime to `mtime` (seconds) on `dirfd/name` (not following a symlink) or
/// on `dirfd` itself.
fn set_times(dirfd: RawFd, name: Option<&CString>, mtime: i64) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    match name {
        // SAFETY: dirfd open, name NUL-terminated, times points to two timespecs.
        Some(n) => check(unsafe {
            libc::utimensat(dirfd, n.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
        }),
        // SAFETY: dirfd is open; times points to two timespecs.
        None => check(unsafe { libc::futimens(dirfd, times.as_ptr()) }),
    }
}

impl crate::Store {
    /// Where the unpacked layer with this diff id lives (whether or not it exists).
    pub fn layer_path(&self, diff_id: &Digest) -> std::path::PathBuf {
        self.root().join("layers").join(diff_id.hex())
    }

    /// A short path to the layer (a symlink `l/<16 hex>`), to keep overlay mount options
    /// short; `None` when that name belongs to another layer.
    pub fn layer_short_path(&self, diff_id: &Digest) -> Option<std::path::PathBuf> {
        let short = self.root().join("l").join(&diff_id.hex()[..16]);
        let want = Path::new("../layers").join(diff_id.hex());
        match std::fs::read_link(&short) {
            Ok(t) if t == want => Some(short),
            _ => None,
        }
    }

    /// Whether the layer with this diff id is unpacked.
    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_path(diff_id).is_dir()
    }

    /// Unpacks a layer stream into the store, once per diff id. With `expected_diff_id`,
    /// an already unpacked layer is reused without reading, and a stream whose diff id
    /// differs is refused. On any error nothing of the layer is kept. Returns the diff id.
    pub fn unpack_layer(
        &self,
        r: impl Read + Send,
        expected_diff_id: Option<&Digest>,
        layer: &str,
    ) -> Result<Digest> {
        self.unpack_layer_then(r, expected_diff_id, None, layer, |_| Ok(()))
    }

    /// As [`Store::unpack_layer`], with `finish(r)` run on the rest of the stream once
    /// the unpacker is done with it (also when it failed), before the layer becomes
    /// visible: the layer is published only if both succeed. A pull uses it to check the
    /// compressed blob's digest first, so a layer appears only after both of its digests
    /// matched. `finish`'s error comes first: a damaged blob is the cause the unpacker
    /// only sees the effects of. `blob`: the stored blob the stream is (committed by
    /// `finish` at the latest), which lets the layer be published before its files are
    /// synced (see [`Store::publish_layer`]).
    pub(crate) fn unpack_layer_then<R: Read + Send>(
        &self,
        mut r: R,
        expected_diff_id: Option<&Digest>,
        blob: Option<&Digest>,
        layer: &str,
        finish: impl FnOnce(R) -> Result<()>,
    ) -> Result<Digest> {
        if let Some(d) = expected_diff_id {
            if self.has_layer(d) {
                finish(r)?;
                return Ok(d.clone());
            }
        }
        let tmp = self
            .root()
            .join("layers")
            .join(crate::store::tmp_name("layer"));
        std::fs::create_dir(&tmp).map_err(|e| Error::io("create directory", &tmp, e))?;
        let res = (|| {
            let unpacked = self.unpack_checked(&mut r, &tmp, expected_diff_id, layer);
            let finished = finish(r);
            let stats = match (finished, unpacked) {
                (Err(e), _) | (Ok(()), Err(e)) => return Err(e),
                (Ok(()), Ok(stats)) => stats,
            };
            self.publish_layer(&tmp, &stats.diff_id, stats.uncompressed_size, blob)?;
            Ok(stats.diff_id)
        })();
        if res.is_err() {
            let _ = crate::store::remove_any(&tmp);
        }
        res
    }

    /// Unpacks `r` into `tmp` and checks its diff id against `expected`.
    fn unpack_checked(
        &self,
        r: impl Read + Send,
        tmp: &Path,
        expected: Option<&Digest>,
        layer: &str,
    ) -> Result<UnpackStats> {
        let stats = unpack(r, tmp, layer, &UnpackOptions::default())?;
        if let Some(d) = expected {
            if &stats.diff_id != d {
                return Err(Error::DigestMismatch {
                    what: format!("layer {layer} (uncompressed diff id)"),
                    expected: d.clone(),
                    actual: stats.diff_id,
                });
            }
        }
        Ok(stats)
    }

    /// Makes the directory `tmp` (on the store's filesystem, holding exactly what the
    /// layer `diff_id` unpacks to) the unpacked layer: its size recorded, renamed into
    /// place, its short link made. If the layer exists already, `tmp` is removed.
    ///
    /// Durability: without `blob`, the layer's files are synced (`syncfs`) before it
    /// becomes visible. With `blob` (the verified, synced blob it was unpacked from), it is
    /// published at once, behind a marker `layers/<hex>.unsynced` (this boot's id and
    /// the blob) made durable before the rename: the files reach the disk with the
    /// kernel's writeback or [`settle_unsynced_layers`], which removes the marker after a
    /// `syncfs`. Only a machine crash loses page-cache data, and it changes the boot id:
    /// [`Store::open`] treats a layer whose marker names another boot as possibly torn and
    /// unpacks it again from its blob (see [`Store::repair_unsynced_layers`]).
    pub(crate) fn publish_layer(
        &self,
        tmp: &Path,
        diff_id: &Digest,
        size: u64,
        blob: Option<&Digest>,
    ) -> Result<()> {
        let dst = self.layer_path(diff_id);
        if dst.is_dir() {
            // Unpacked meanwhile (or under another name): keep the existing copy.
            crate::store::remove_any(tmp)?;
        } else {
            let size_path = self.layer_size_path(diff_id);
            let size_text = size.to_string();
            match (blob, boot_id()) {
                (Some(b), Some(boot)) => {
                    // Synced here; its directory entry is synced with the size record's
                    // below, both before the rename.
                    let m = self.layer_unsynced_path(diff_id);
                    let mut f =
                        std::fs::File::create(&m).map_err(|e| Error::io("create", &m, e))?;
                    std::io::Write::write_all(&mut f, format!("{boot}\n{b}\n").as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| Error::io("write", &m, e))?;
                    // The uncompressed size, kept beside the layer so image listings need
                    // not re-read blobs. No fsync of its own: the marker covers it (a
                    // machine crash has the layer, and its size record, made again).
                    barge_util::fs::write_atomic(
                        &size_path,
                        size_text.as_bytes(),
                        barge_util::fs::AtomicWrite {
                            mode: 0o600,
                            durability: barge_util::fs::Durability::None,
                        },
                    )
                    .map_err(|e| Error::io(e.op, e.path, e.source))?;
                    crate::store::sync_dir(&self.root().join("layers"))?;
                }
                _ => {
                    // One syncfs instead of an fsync per file: the layer must be durable
                    // before it becomes visible under its diff id.
                    let dir = open_dir_path(tmp).map_err(|e| Error::io("open", tmp, e))?;
                    // SAFETY: dir is an open fd.
                    check(unsafe { libc::syncfs(dir.as_raw_fd()) })
                        .map_err(|e| Error::io("syncfs", tmp, e))?;
                    // The size record, durable before the layer is visible.
                    crate::store::atomic_write(&size_path, size_text.as_bytes())?;
                }
            }
            std::fs::rename(tmp, &dst).map_err(|e| Error::io("rename", &dst, e))?;
        }
        let short = self.root().join("l").join(&diff_id.hex()[..16]);
        let rel = Path::new("../layers").join(diff_id.hex());
        // A short name already taken by another layer (a crafted 64-bit prefix collision)
        // is never re-pointed: that would swap the other image's content. This layer then
        // goes by its full path (see `Store::mounts`).
        match std::fs::read_link(&short) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::os::unix::fs::symlink(&rel, &short) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io("symlink", &short, e)),
                }
            }
            Err(e) => return Err(Error::io("read link", &short, e)),
        }
        crate::store::sync_dir(&self.root().join("layers"))?;
        Ok(())
    }

    /// Unpacks the layer blob `blob` (already in the store) and checks it against
    /// `diff_id`.
    pub fn unpack_layer_blob(&self, blob: &Digest, diff_id: &Digest) -> Result<()> {
        if self.has_layer(diff_id) {
            return Ok(());
        }
        let f = self.open_blob(blob)?;
        self.unpack_layer_then(f, Some(diff_id), Some(blob), &blob.to_string(), |_| Ok(()))?;
        Ok(())
    }

    fn layer_unsynced_path(&self, diff_id: &Digest) -> std::path::PathBuf {
        self.root()
            .join("layers")
            .join(format!("{}.unsynced", diff_id.hex()))
    }

    /// Start-up repair of layers published before their files were synced (see
    /// [`Store::publish_layer`]): a marker of an earlier boot means the machine went down
    /// before the layer was known to be on disk, so the layer is removed and unpacked
    /// again from its blob (verified against its diff id as any unpack); a marker without
    /// its layer (a crash before the rename) is dropped. Markers of this boot are
    /// settled ([`settle_unsynced_layers`]). Returns how many layers were unpacked again.
    pub(crate) fn repair_unsynced_layers(&self) -> Result<usize> {
        let dir = self.root().join("layers");
        let boot = boot_id();
        let mut redone = 0;
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))? {
            let e = e.map_err(|e| Error::io("read directory", &dir, e))?;
            let name = e.file_name();
            let Some(diff_id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".unsynced"))
                .and_then(|h| Digest::from_hex(h).ok())
            else {
                continue;
            };
            let marker = e.path();
            let text = std::fs::read_to_string(&marker).unwrap_or_default();
            let mut lines = text.lines();
            let (m_boot, m_blob) = (lines.next(), lines.next());
            if boot.is_some() && m_boot == boot.as_deref() {
                continue; // this boot: nothing was lost, settled below
            }
            if !self.layer_path(&diff_id).is_dir() {
                let _ = std::fs::remove_file(&marker);
                continue;
            }
            // Layer, size record and marker go; the unpack writes new ones.
            self.remove_layer(&diff_id)?;
            let blob = m_blob.and_then(|b| Digest::parse(b).ok());
            // A blob gone or damaged leaves the layer absent: the next pull of an image
            // using it unpacks it again (`commit_image`).
            if let Some(b) = blob.filter(|b| self.has_blob(b)) {
                if self.unpack_layer_blob(&b, &diff_id).is_ok() {
                    redone += 1;
                }
            }
        }
        settle_unsynced_layers(self.root())?;
        Ok(redone)
    }

    fn layer_size_path(&self, diff_id: &Digest) -> std::path::PathBuf {
        self.root()
            .join("layers")
            .join(format!("{}.size", diff_id.hex()))
    }

    /// The uncompressed tar size of an unpacked layer, if recorded.
    pub fn layer_uncompressed_size(&self, diff_id: &Digest) -> Option<u64> {
        std::fs::read_to_string(self.layer_size_path(diff_id))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Removes an unpacked layer (callers check that nothing uses it).
    pub fn remove_layer(&self, diff_id: &Digest) -> Result<()> {
        if let Some(short) = self.layer_short_path(diff_id) {
            let _ = std::fs::remove_file(short);
        }
        let _ = std::fs::remove_file(self.layer_size_path(diff_id));
        crate::store::remove_any(&self.layer_path(diff_id))?;
        // After the layer: a marker left by a crash in between is dropped at start-up.
        let _ = std::fs::remove_file(self.layer_unsynced_path(diff_id));
        Ok(())
    }
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`); `None` when it cannot be read, and
/// then layers are synced before they are published.
fn boot_id() -> Option<String> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.contains('\n'))
    })
    .clone()
}

/// Makes the layers published unsynced in this boot durable: one `syncfs` of the store's
/// filesystem, then their `.unsynced` markers (those that existed before it) are removed.
/// A pull runs it on a thread of its own once done, so the pull does not wait for the
/// disk (nor for other writers' dirty data, which `syncfs` flushes too).
pub fn settle_unsynced_layers(root: &Path) -> Result<()> {
    let dir = root.join("layers");
    let Some(boot) = boot_id() else {
        return Ok(());
    };
    let mut markers = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))? {
        let e = e.map_err(|e| Error::io("read directory", &dir, e))?;
        if e.file_name().to_string_lossy().ends_with(".unsynced") {
            let ours = std::fs::read_to_string(e.path())
                .is_ok_and(|t| t.lines().next() == Some(boot.as_str()));
            if ours {
                markers.push(e.path());
            }
        }
    }
    if markers.is_empty() {
        return Ok(());
    }
    let fd = open_dir_path(&dir).map_err(|e| Error::io("open", &dir, e))?;
    // SAFETY: fd is an open directory.
    check(unsafe { libc::syncfs(fd.as_raw_fd()) }).map_err(|e| Error::io("syncfs", &dir, e))?;
    for m in markers {
        let _ = std::fs::remove_file(m);
    }
    Ok(())
}
