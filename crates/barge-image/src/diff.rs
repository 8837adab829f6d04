//! Diffs: a snapshot's upper directory to a layer tar, and applying an unpacked layer onto
//! a directory (the copy snapshotter).
//!
//! The tar is deterministic: entries in byte order of their paths (a directory before its
//! children), mtimes, modes, owners and xattrs taken from the files, no user/group names,
//! atimes or ctimes. Overlay whiteouts (0:0 character devices) become `.wh.NAME` entries and
//! an opaque directory (`trusted.overlay.opaque=y`) gets a `.wh..wh..opq` entry right after
//! it, as Docker writes them. Unpacking such a tar (see `unpack`) gives back the same tree.

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::unpack::{check, cstr, lstat_at, open_dir_at, open_dir_path};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

const OPAQUE: &str = "trusted.overlay.opaque";

/// Lists the xattrs of `p` (not following symlinks).
fn list_xattrs(p: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let cp = CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        Error::io(
            "list xattrs",
            p,
            io::Error::from(io::ErrorKind::InvalidInput),
        )
    })?;
    let mut names = vec![0u8; 1024];
    let n = loop {
        // SAFETY: cp is NUL-terminated; names is a buffer of names.len() bytes.
        let n = unsafe { libc::llistxattr(cp.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(vec![]),
            _ => return Err(Error::io("list xattrs", p, e)),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let Ok(cn) = CString::new(name) else { continue };
        let mut val = vec![0u8; 256];
        let len = loop {
            // SAFETY: cp and cn are NUL-terminated; val is a buffer of val.len() bytes.
            let l = unsafe {
                libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len())
            };
            if l >= 0 {
                break l as usize;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) && val.len() < (1 << 20) {
                val.resize(val.len() * 8, 0);
                continue;
            }
            return Err(Error::io("read xattr", p, e));
        };
        val.truncate(len);
        out.push((String::from_utf8_lossy(name).into_owned(), val));
    }
    out.sort();
    Ok(out)
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn pax_records(recs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in recs {
        // "LEN KEY=VALUE\n", LEN counting its own digits.
        let body = 1 + k.len() + 1 + v.len() + 1;
        let mut len = body + 1;
        while len.to_string().len() + body != len {
            len += 1;
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

struct Differ<'a, W: Write> {
    b: tar::Builder<W>,
    src: &'a Path,
    /// (dev, ino) of multiply-linked files already written -> their archive path.
    links: HashMap<(u64, u64), Vec<u8>>,
}

/// Names in a directory (without `.` and `..`), read through its fd.
fn read_names(dir: RawFd) -> io::Result<Vec<Vec<u8>>> {
    // fdopendir takes ownership of the fd it is given: hand it a duplicate.
    // SAFETY: dir is an open fd; the result is checked.
    let fd = unsafe { libc::fcntl(dir, libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh directory descriptor; fdopendir owns it from here on.
    let dirp = unsafe { libc::fdopendir(fd) };
    if dirp.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so fd is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    // SAFETY: rewind so a duplicated fd that was read before starts at the beginning.
    unsafe { libc::rewinddir(dirp) };
    let mut out = Vec::new();
    loop {
        // SAFETY: dirp is a valid DIR*; readdir returns null at the end.
        let ent = unsafe { libc::readdir(dirp) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name of a dirent returned by readdir is a NUL-terminated string.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            out.push(name.to_vec());
        }
    }
    // SAFETY: dirp is valid and closed once.
    unsafe { libc::closedir(dirp) };
    out.sort();
    Ok(out)
}

/// The xattrs of an open file or directory.
fn fd_xattrs(fd: RawFd) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        // SAFETY: fd is open; names is a buffer of names.len() bytes.
        let n = unsafe { libc::flistxattr(fd, names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) if names.len() < (1 << 20) => names.resize(names.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(vec![]),
            _ => return Err(e),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let Ok(cn) = CString::new(name) else { continue };
        let mut val = vec![0u8; 256];
        let len = loop {
            // SAFETY: fd is open, cn NUL-terminated, val a buffer of val.len() bytes.
            let l = unsafe { libc::fgetxattr(fd, cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
            if l >= 0 {
                break l as usize;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) && val.len() < (1 << 20) {
                val.resize(val.len() * 8, 0);
                continue;
            }
            return Err(e);
        };
        val.truncate(len);
        out.push((String::from_utf8_lossy(name).into_owned(), val));
    }
    out.sort();
    Ok(out)
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: a zeroed stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open and st a valid pointer.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

fn kind(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

impl<W: Write> Differ<'_, W> {
    fn err(&self, name: &[u8], what: &str, e: impl std::fmt::Display) -> Error {
        Error::Layer {
            layer: format!("diff of {}", self.src.display()),
            reason: format!("{:?}: {what}: {e}", String::from_utf8_lossy(name)),
        }
    }

    fn header(
        &mut self,
        name: &[u8],
        kind: tar::EntryType,
        st: &libc::stat,
        size: u64,
        link: Option<&[u8]>,
        xattrs: &[(String, Vec<u8>)],
    ) -> Result<tar::Header> {
        let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut h = tar::Header::new_gnu();
        if name.len() > 99 {
            recs.push(("path".into(), name.to_vec()));
        }
        if let Some(l) = link {
            if l.len() > 99 {
                recs.push(("linkpath".into(), l.to_vec()));
            }
        }
        for (k, v) in xattrs {
            recs.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        if !recs.is_empty() {
            let data = pax_records(&recs);
            let mut ph = tar::Header::new_ustar();
            let pn = b"PaxHeader";
            ph.as_old_mut().name[..pn.len()].copy_from_slice(pn);
            ph.set_entry_type(tar::EntryType::XHeader);
            ph.set_size(data.len() as u64);
            ph.set_mode(0o644);
            ph.set_mtime(0);
            ph.set_cksum();
            self.b.append(&ph, &data[..]).ctx("write tar", self.src)?;
        }
        let n = &name[..name.len().min(99)];
        h.as_old_mut().name[..n.len()].copy_from_slice(n);
        if let Some(l) = link {
            let l = &l[..l.len().min(99)];
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
        }
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        h.set_cksum();
        Ok(h)
    }

    fn walk(&mut self, dir: &OwnedFd, prefix: &[u8]) -> Result<()> {
        let names =
            read_names(dir.as_raw_fd()).map_err(|e| self.err(prefix, "read directory", e))?;
        for n in names {
            let mut name = prefix.to_vec();
            name.extend_from_slice(&n);
            self.one(dir.as_raw_fd(), &n, &name)?;
        }
        Ok(())
    }

    /// Writes one entry. Everything is reached from the parent's fd without following a
    /// symlink, and files are read through fds checked to be what was listed: a running
    /// container swapping a path for a symlink cannot make the diff read a host file.
    fn one(&mut self, dirfd: RawFd, base: &[u8], name: &[u8]) -> Result<()> {
        let cname = cstr(base).map_err(|e| self.err(name, "name", e))?;
        let Some(st) = lstat_at(dirfd, &cname).map_err(|e| self.err(name, "stat", e))? else {
            return Ok(()); // removed meanwhile
        };
        let k = kind(&st);
        if k == libc::S_IFCHR && st.st_rdev == 0 {
            let (parent, basename) = match name.iter().rposition(|&b| b == b'/') {
                Some(i) => (&name[..=i], &name[i + 1..]),
                None => (&b""[..], name),
            };
            let mut wh = parent.to_vec();
            wh.extend_from_slice(b".wh.");
            wh.extend_from_slice(basename);
            let h = self.header(&wh, tar::EntryType::Regular, &st, 0, None, &[])?;
            self.b.append(&h, io::empty()).ctx("write tar", self.src)?;
            return Ok(());
        }
        if k == libc::S_IFDIR {
            let fd = open_dir_at(dirfd, &cname).map_err(|e| self.err(name, "open directory", e))?;
            let st = fstat(fd.as_raw_fd()).map_err(|e| self.err(name, "stat", e))?;
            let all = fd_xattrs(fd.as_raw_fd()).map_err(|e| self.err(name, "xattrs", e))?;
            if all.iter().any(|(k, _)| k == "trusted.overlay.redirect") {
                return Err(self.err(
                    name,
                    "renamed directory",
                    "an overlay redirect cannot be expressed in a layer",
                ));
            }
            let opaque = all.iter().any(|(k, v)| k == OPAQUE && v == b"y");
            let xattrs: Vec<_> = all
                .into_iter()
                .filter(|(k, _)| !k.starts_with("trusted.overlay."))
                .collect();
            let mut dname = name.to_vec();
            dname.push(b'/');
            let h = self.header(&dname, tar::EntryType::Directory, &st, 0, None, &xattrs)?;
            self.b.append(&h, io::empty()).ctx("write tar", self.src)?;
            if opaque {
                let mut o = dname.clone();
                o.extend_from_slice(b".wh..wh..opq");
                let h = self.header(&o, tar::EntryType::Regular, &st, 0, None, &[])?;
                self.b.append(&h, io::empty()).ctx("write tar", self.src)?;
            }
            return self.walk(&fd, &dname);
        }
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                let h = self.header(name, tar::EntryType::Link, &st, 0, Some(&first), &[])?;
                self.b.append(&h, io::empty()).ctx("write tar", self.src)?;
                return Ok(());
            }
            self.links.insert(key, name.to_vec());
        }
        match k {
            libc::S_IFREG => {
                // SAFETY: dirfd open, cname NUL-terminated; result checked and owned.
                let fd = unsafe {
                    libc::openat(
                        dirfd,
                        cname.as_ptr(),
                        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
                    )
                };
                if fd < 0 {
                    return Err(self.err(name, "open", io::Error::last_os_error()));
                }
                // SAFETY: fd was just opened and is owned by this File.
                let f = unsafe { fs::File::from_raw_fd(fd) };
                let fst = fstat(f.as_raw_fd()).map_err(|e| self.err(name, "stat", e))?;
                if kind(&fst) != libc::S_IFREG || fst.st_ino != st.st_ino || fst.st_dev != st.st_dev
                {
                    return Err(self.err(
                        name,
                        "changed during diff",
                        "not the file that was listed",
                    ));
                }
                let xattrs: Vec<_> = fd_xattrs(f.as_raw_fd())
                    .map_err(|e| self.err(name, "xattrs", e))?
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with("trusted.overlay."))
                    .collect();
                let size = u64::try_from(fst.st_size).unwrap_or(0);
                let h = self.header(name, tar::EntryType::Regular, &fst, size, None, &xattrs)?;
                let mut counted = Counted {
                    inner: io::Read::take(f, size),
                    n: 0,
                };
                self.b.append(&h, &mut counted).ctx("write tar", self.src)?;
                if counted.n != size {
                    return Err(self.err(
                        name,
                        "changed during diff",
                        format!("shrank from {size} to {} bytes", counted.n),
                    ));
                }
            }
            libc::S_IFLNK => {
                let mut buf = vec![0u8; libc::PATH_MAX as usize];
                // SAFETY: dirfd open, cname NUL-terminated, buf a buffer of buf.len() bytes.
                let n = unsafe {
                    libc::readlinkat(dirfd, cname.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                };
                if n < 0 {
                    return Err(self.err(name, "read link", io::Error::last_os_error()));
                }
                buf.truncate(n as usize);
                let h = self.header(name, tar::EntryType::Symlink, &st, 0, Some(&buf), &[])?;
                self.b.append(&h, io::empty()).ctx("write tar", self.src)?;
            }
            libc::S_IFCHR | libc::S_IFBLK => {
                let ty = if k == libc::S_IFCHR {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                let mut h = self.header(name, ty, &st, 0, None, &[])?;
                h.set_device_major(libc::major(st.st_rdev))
                    .ctx("write tar", self.src)?;
                h.set_device_minor(libc::minor(st.st_rdev))
                    .ctx("write tar", self.src)?;
                h.set_cksum();
                self.b.append(&h, io::empty()).ctx("write tar", self.src)?;
            }
            libc::S_IFIFO => {
                let h = self.header(name, tar::EntryType::Fifo, &st, 0, None, &[])?;
                self.b.append(&h, io::empty()).ctx("write tar", self.src)?;
            }
            // Sockets are not part of images (Docker skips them too).
            _ => {}
        }
        Ok(())
    }
}

struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: io::Read> io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Writes the changes in `upper` (an overlay upper dir, or any directory) as an
/// uncompressed layer tar to `w`. Returns the tar's digest (the layer's diff id) and size.
pub fn diff_dir(upper: &Path, w: impl Write) -> Result<(Digest, u64)> {
    let hw = HashingWriter::new(w);
    let mut d = Differ {
        b: tar::Builder::new(hw),
        src: upper,
        links: HashMap::new(),
    };
    let root = open_dir_path(upper).map_err(|e| Error::io("open", upper, e))?;
    d.walk(&root, b"")?;
    let hw = d.b.into_inner().ctx("write tar", upper)?;
    let (digest, size, mut w) = hw.finish();
    w.flush().ctx("write tar", upper)?;
    Ok((digest, size))
}

/// Applies the unpacked layer `layer` onto `dest` (the copy snapshotter): whiteouts remove
/// what they name, opaque directories drop what was below them, everything else is copied
/// with its metadata. A non-directory in `dest` where the layer has a directory (a symlink
/// for instance) is replaced, never followed.
pub fn apply_dir(layer: &Path, dest: &Path) -> Result<()> {
    let mut names: Vec<std::ffi::OsString> = fs::read_dir(layer)
        .ctx("read directory", layer)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .ctx("read directory", layer)?;
    names.sort();
    for n in names {
        let src = layer.join(&n);
        let dst = dest.join(&n);
        let md = fs::symlink_metadata(&src).ctx("stat", &src)?;
        let existing = fs::symlink_metadata(&dst).ok();
        if is_whiteout(&md) {
            if existing.is_some() {
                crate::store::remove_any(&dst)?;
            }
            continue;
        }
        if md.is_dir() {
            let opaque = list_xattrs(&src)?
                .iter()
                .any(|(k, v)| k == OPAQUE && v == b"y");
            match existing {
                Some(e) if e.is_dir() && !opaque => {}
                Some(_) => {
                    crate::store::remove_any(&dst)?;
                    fs::create_dir(&dst).ctx("create directory", &dst)?;
                }
                None => fs::create_dir(&dst).ctx("create directory", &dst)?,
            }
            apply_dir(&src, &dst)?;
            copy_meta(&src, &dst, &md)?;
            continue;
        }
        if existing.is_some() {
            crate::store::remove_any(&dst)?;
        }
        let ft = md.file_type();
        if ft.is_symlink() {
            let t = fs::read_link(&src).ctx("read link", &src)?;
            std::os::unix::fs::symlink(&t, &dst).ctx("symlink", &dst)?;
        } else if ft.is_file() {
            fs::copy(&src, &dst).ctx("copy", &dst)?;
        } else {
            let c = cstring(&dst)?;
            // SAFETY: c is NUL-terminated; mode and rdev come from an existing node.
            if unsafe { libc::mknod(c.as_ptr(), md.mode(), md.rdev()) } < 0 {
                return Err(Error::io("mknod", &dst, io::Error::last_os_error()));
            }
        }
        copy_meta(&src, &dst, &md)?;
    }
    Ok(())
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::io("use path", p, io::Error::from(io::ErrorKind::InvalidInput)))
}

fn copy_meta(src: &Path, dst: &Path, md: &fs::Metadata) -> Result<()> {
    let c = cstring(dst)?;
    // SAFETY: c is NUL-terminated; AT_SYMLINK_NOFOLLOW changes a symlink itself.
    if unsafe {
        libc::fchownat(
            libc::AT_FDCWD,
            c.as_ptr(),
            md.uid(),
            md.gid(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } < 0
    {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(Error::io("chown", dst, e));
        }
    }
    for (k, v) in list_xattrs(src)? {
        if k.starts_with("trusted.overlay.") {
            continue;
        }
        let Ok(ck) = CString::new(k.as_bytes()) else {
            continue;
        };
        // SAFETY: c and ck are NUL-terminated; v is a buffer of v.len() bytes.
        unsafe { libc::lsetxattr(c.as_ptr(), ck.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
    }
    if !md.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))
            .ctx("chmod", dst)?;
    }
    let ts = [
        libc::timespec {
            tv_sec: md.atime() as libc::time_t,
            tv_nsec: md.atime_nsec() as _,
        },
        libc::timespec {
            tv_sec: md.mtime() as libc::time_t,
            tv_nsec: md.mtime_nsec() as _,
        },
    ];
    // SAFETY: c is NUL-terminated; ts holds two timespecs.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } < 0
    {
        return Err(Error::io("set times", dst, io::Error::last_os_error()));
    }
    Ok(())
}

impl crate::Store {
    /// `docker export`: writes the whole filesystem of snapshot `key` (layers and changes
    /// merged) as a tar to `w`. The snapshot is mounted read-only on a private temp
    /// mountpoint for the duration, which is safe while a container runs on it.
    pub fn export(&self, key: &str, w: impl Write) -> Result<(Digest, u64)> {
        let info = self.snapshot_info(key)?;
        if info.snapshotter == crate::snapshot::Snapshotter::Copy {
            return diff_dir(&self.snapshot_upper(key)?, w);
        }
        let mnt = self
            .root()
            .join("snapshots")
            .join(crate::store::tmp_name("export"));
        fs::create_dir(&mnt).ctx("create directory", &mnt)?;
        let res = (|| {
            self.mount_readonly(key, &mnt)?;
            let out = diff_dir(&mnt, w);
            let um = crate::snapshot::unmount_settled(&mnt);
            let out = out?;
            um?;
            Ok(out)
        })();
        let _ = fs::remove_dir(&mnt);
        res
    }

    /// Writes the changes of snapshot `key` as an uncompressed layer tar to `w`; returns its
    /// diff id and size.
    pub fn diff(&self, key: &str, w: impl Write) -> Result<(Digest, u64)> {
        diff_dir(&self.snapshot_upper(key)?, w)
    }
}

/// Removes the overlayfs xattrs that would steer a lower layer (everything
/// `trusted.overlay.*` on directories but `opaque=y`), and sockets (a tar cannot hold
/// them), under `dir`: an overlay upper dir about to become a layer.
fn clean_upper_for_layer(dir: &Path) -> Result<()> {
    let fd = open_dir_path(dir).map_err(|e| Error::io("open", dir, e))?;
    clean_dir_fd(fd.as_raw_fd(), dir)
}

fn clean_dir_fd(fd: RawFd, path: &Path) -> Result<()> {
    for (k, v) in fd_xattrs(fd).map_err(|e| Error::io("list xattrs", path, e))? {
        if k.starts_with("trusted.overlay.") && !(k == OPAQUE && v == b"y") {
            let c = CString::new(k)
                .map_err(|_| Error::io("xattr", path, io::ErrorKind::InvalidData.into()))?;
            // SAFETY: fd is open, c NUL-terminated.
            if unsafe { libc::fremovexattr(fd, c.as_ptr()) } < 0 {
                return Err(Error::io("remove xattr", path, io::Error::last_os_error()));
            }
        }
    }
    for name in read_names(fd).map_err(|e| Error::io("read directory", path, e))? {
        let cname = CString::new(name.clone())
            .map_err(|_| Error::io("name", path, io::ErrorKind::InvalidData.into()))?;
        let child = path.join(std::ffi::OsStr::from_bytes(&name));
        let Some(st) = lstat_at(fd, &cname).map_err(|e| Error::io("stat", &child, e))? else {
            continue;
        };
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let d = open_dir_at(fd, &cname).map_err(|e| Error::io("open", &child, e))?;
                clean_dir_fd(d.as_raw_fd(), &child)?;
            }
            // SAFETY: fd is open, cname NUL-terminated.
            libc::S_IFSOCK if unsafe { libc::unlinkat(fd, cname.as_ptr(), 0) } < 0 => {
                return Err(Error::io("remove", &child, io::Error::last_os_error()));
            }
            _ => {}
        }
    }
    Ok(())
}

impl crate::Store {
    /// [`Store::commit_snapshot`] for a snapshot that is unmounted and about to be removed
    /// (a build step): the layer blob is written from the upper dir as usual, then the
    /// upper dir itself becomes the unpacked layer instead of being extracted again from
    /// the blob, so every file is written once, not twice. Copy snapshots take the
    /// ordinary path. The snapshot must be removed afterwards (its upper dir is gone).
    pub fn commit_snapshot_adopt(
        &self,
        key: &str,
        lease: &crate::store::Lease<'_>,
    ) -> Result<crate::image::LayerRecord> {
        let info = self.snapshot_info(key)?;
        if info.snapshotter != crate::snapshot::Snapshotter::Overlay {
            return self.commit_snapshot(key, lease);
        }
        let upper = self.snapshot_upper(key)?;
        let mut w = self.blob_writer()?;
        let (diff_id, size) = diff_dir(&upper, &mut w)?;
        let (blob, _) = w.commit(lease, Some((&diff_id, size)))?;
        lease.hold(&diff_id);
        if !self.has_layer(&diff_id) {
            clean_upper_for_layer(&upper)?;
            let tmp = self
                .root()
                .join("layers")
                .join(crate::store::tmp_name("adopt"));
            fs::rename(&upper, &tmp).ctx("rename", &upper)?;
            if let Err(e) = self.publish_layer(&tmp, &diff_id, size, None) {
                let _ = crate::store::remove_any(&tmp);
                return Err(e);
            }
        }
        Ok(crate::image::LayerRecord {
            blob,
            media_type: crate::manifest::OCI_LAYER.to_string(),
            size,
            diff_id,
            uncompressed_size: size,
        })
    }
}
