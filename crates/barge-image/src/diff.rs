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
use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
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

/// The header with its checksum computed (`Builder::append` writes headers as given).
fn cks(mut h: tar::Header) -> tar::Header {
    h.set_cksum();
    h
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

impl<W: Write> Differ<'_, W> {
    fn header(
        &mut self,
        name: &[u8],
        kind: tar::EntryType,
        md: Option<&fs::Metadata>,
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
        match md {
            Some(md) => {
                h.set_mode(md.permissions().mode() & 0o7777);
                h.set_uid(u64::from(md.uid()));
                h.set_gid(u64::from(md.gid()));
                h.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
            }
            None => {
                h.set_mode(0o644);
                h.set_mtime(0);
            }
        }
        Ok(h)
    }

    fn walk(&mut self, dir: &Path, prefix: &[u8]) -> Result<()> {
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(dir)
            .ctx("read directory", dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .ctx("read directory", dir)?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for n in names {
            let p = dir.join(&n);
            let mut name = prefix.to_vec();
            name.extend_from_slice(n.as_bytes());
            self.one(&p, &name)?;
        }
        Ok(())
    }

    fn one(&mut self, p: &Path, name: &[u8]) -> Result<()> {
        let md = fs::symlink_metadata(p).ctx("stat", p)?;
        let ft = md.file_type();
        if is_whiteout(&md) {
            let (parent, base) = match name.iter().rposition(|&b| b == b'/') {
                Some(i) => (&name[..=i], &name[i + 1..]),
                None => (&b""[..], name),
            };
            let mut wh = parent.to_vec();
            wh.extend_from_slice(b".wh.");
            wh.extend_from_slice(base);
            let h = self.header(&wh, tar::EntryType::Regular, Some(&md), 0, None, &[])?;
            self.b.append(&cks(h), io::empty()).ctx("write tar", p)?;
            return Ok(());
        }
        let all = list_xattrs(p)?;
        if all.iter().any(|(k, _)| k == "trusted.overlay.redirect") {
            return Err(Error::Layer {
                layer: format!("diff of {}", self.src.display()),
                reason: format!(
                    "{}: renamed directory (overlay redirect) cannot be expressed in a layer",
                    p.display()
                ),
            });
        }
        let opaque = all.iter().any(|(k, v)| k == OPAQUE && v == b"y");
        let xattrs: Vec<_> = all
            .into_iter()
            .filter(|(k, _)| !k.starts_with("trusted.overlay."))
            .collect();
        if ft.is_dir() {
            let mut dname = name.to_vec();
            dname.push(b'/');
            let h = self.header(
                &dname,
                tar::EntryType::Directory,
                Some(&md),
                0,
                None,
                &xattrs,
            )?;
            self.b.append(&cks(h), io::empty()).ctx("write tar", p)?;
            if opaque {
                let mut o = dname.clone();
                o.extend_from_slice(b".wh..wh..opq");
                let h = self.header(&o, tar::EntryType::Regular, Some(&md), 0, None, &[])?;
                self.b.append(&cks(h), io::empty()).ctx("write tar", p)?;
            }
            return self.walk(p, &dname);
        }
        if md.nlink() > 1 && !ft.is_dir() {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                let h = self.header(name, tar::EntryType::Link, Some(&md), 0, Some(&first), &[])?;
                self.b.append(&cks(h), io::empty()).ctx("write tar", p)?;
                return Ok(());
            }
            self.links.insert(key, name.to_vec());
        }
        if ft.is_file() {
            let f = fs::File::open(p).ctx("open", p)?;
            let h = self.header(
                name,
                tar::EntryType::Regular,
                Some(&md),
                md.len(),
                None,
                &xattrs,
            )?;
            self.b.append(&cks(h), f).ctx("write tar", p)?;
        } else if ft.is_symlink() {
            let t = fs::read_link(p).ctx("read link", p)?;
            let h = self.header(
                name,
                tar::EntryType::Symlink,
                Some(&md),
                0,
                Some(t.as_os_str().as_bytes()),
                &xattrs,
            )?;
            self.b.append(&cks(h), io::empty()).ctx("write tar", p)?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = self.header(name, kind, Some(&md), 0, None, &xattrs)?;
            let rdev = md.rdev();
            h.set_device_major(libc::major(rdev)).ctx("write tar", p)?;
            h.set_device_minor(libc::minor(rdev)).ctx("write tar", p)?;
            self.b.append(&cks(h), io::empty()).ctx("write tar", p)?;
        } else if ft.is_fifo() {
            let h = self.header(name, tar::EntryType::Fifo, Some(&md), 0, None, &xattrs)?;
            self.b.append(&cks(h), io::empty()).ctx("write tar", p)?;
        }
        // Sockets are not part of images (Docker skips them too).
        Ok(())
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
    d.walk(upper, b"")?;
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
    /// Writes the changes of snapshot `key` as an uncompressed layer tar to `w`; returns its
    /// diff id and size.
    pub fn diff(&self, key: &str, w: impl Write) -> Result<(Digest, u64)> {
        diff_dir(&self.snapshot_upper(key)?, w)
    }
}
