//! Helpers shared by the integration tests: tar builders that can write hostile headers,
//! and a snapshot of a directory tree to prove it was not touched.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// One entry of a test tar; names and link names are written raw (no validation).
pub enum E<'a> {
    File(&'a str, &'a [u8]),
    FileMode(&'a str, &'a [u8], u32, u64, u64),
    Dir(&'a str),
    DirMode(&'a str, u32, u64),
    Sym(&'a str, &'a str),
    Link(&'a str, &'a str),
    Char(&'a str, u32, u32),
    /// A header announcing `size` bytes followed by only the given data (truncated stream).
    Truncated(&'a str, u64, &'a [u8]),
    /// A file with PAX records (xattrs, long names).
    Pax(&'a str, &'a [u8], Vec<(&'a str, &'a [u8])>),
}

fn raw_header(name: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let n = name.as_bytes();
    assert!(n.len() < 100, "test names must fit the old header");
    h.as_old_mut().name[..n.len()].copy_from_slice(n);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn set_link(h: &mut tar::Header, target: &str) {
    let t = target.as_bytes();
    assert!(t.len() < 100);
    h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
}

/// Builds an uncompressed tar of the entries.
pub fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let (mut h, data): (tar::Header, &[u8]) = match e {
            E::File(n, d) => (
                raw_header(n, tar::EntryType::Regular, d.len() as u64, 0o644),
                d,
            ),
            E::FileMode(n, d, m, u, g) => {
                let mut h = raw_header(n, tar::EntryType::Regular, d.len() as u64, *m);
                h.set_uid(*u);
                h.set_gid(*g);
                (h, d)
            }
            E::Dir(n) => (raw_header(n, tar::EntryType::Directory, 0, 0o755), &[]),
            E::DirMode(n, m, mtime) => {
                let mut h = raw_header(n, tar::EntryType::Directory, 0, *m);
                h.set_mtime(*mtime);
                (h, &[])
            }
            E::Sym(n, t) => {
                let mut h = raw_header(n, tar::EntryType::Symlink, 0, 0o777);
                set_link(&mut h, t);
                (h, &[])
            }
            E::Link(n, t) => {
                let mut h = raw_header(n, tar::EntryType::Link, 0, 0o644);
                set_link(&mut h, t);
                (h, &[])
            }
            E::Char(n, ma, mi) => {
                let mut h = raw_header(n, tar::EntryType::Char, 0, 0o666);
                h.set_device_major(*ma).expect("major");
                h.set_device_minor(*mi).expect("minor");
                (h, &[])
            }
            E::Truncated(n, size, d) => {
                let mut h = raw_header(n, tar::EntryType::Regular, *size, 0o644);
                h.set_cksum();
                out.extend_from_slice(h.as_bytes());
                out.extend_from_slice(d);
                return out; // the stream ends here
            }
            E::Pax(n, d, recs) => {
                let mut pax = Vec::new();
                for (k, v) in recs {
                    // "len key=value\n" where len counts itself.
                    let body_len = 1 + k.len() + 1 + v.len() + 1;
                    let mut len = body_len + 1;
                    while format!("{len}").len() + body_len != len {
                        len += 1;
                    }
                    pax.extend_from_slice(format!("{len} {k}=").as_bytes());
                    pax.extend_from_slice(v);
                    pax.push(b'\n');
                }
                let mut ph = raw_header(
                    "PaxHeaders/x",
                    tar::EntryType::XHeader,
                    pax.len() as u64,
                    0o644,
                );
                ph.set_cksum();
                out.extend_from_slice(ph.as_bytes());
                out.extend_from_slice(&pax);
                pad(&mut out);
                (
                    raw_header(n, tar::EntryType::Regular, d.len() as u64, 0o644),
                    d,
                )
            }
        };
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn pad(out: &mut Vec<u8>) {
    while out.len() % 512 != 0 {
        out.push(0);
    }
}

/// A description of every node under `root` (type, mode, owner, size, content, link
/// target, mtime), to compare before and after.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    walk(root, root, &mut m);
    m
}

fn walk(root: &Path, p: &Path, m: &mut BTreeMap<String, String>) {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    let rel = p
        .strip_prefix(root)
        .map(|r| r.display().to_string())
        .unwrap_or_default();
    let ft = md.file_type();
    let desc = if ft.is_symlink() {
        format!("link {:?}", std::fs::read_link(p).ok())
    } else if ft.is_file() {
        format!("file {:?}", std::fs::read(p).ok())
    } else if ft.is_dir() {
        "dir".to_string()
    } else {
        format!("other rdev={}", md.rdev())
    };
    m.insert(
        rel,
        format!(
            "{desc} mode={:o} uid={} gid={} mtime={} nlink={}",
            md.permissions().mode(),
            md.uid(),
            md.gid(),
            md.mtime(),
            if ft.is_dir() { 0 } else { md.nlink() }
        ),
    );
    if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(p)
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        for n in names {
            walk(root, &n, m);
        }
    }
}

/// True when running as root; otherwise prints why the calling test skips.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let ok = unsafe { libc::geteuid() } == 0;
    if !ok {
        eprintln!("{test}: skipped: needs root (whiteouts, ownership, device nodes)");
    }
    ok
}

/// Makes a canary tree: files, a directory, a symlink.
pub fn make_canary(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).expect("canary dir");
    std::fs::write(dir.join("victim"), b"do not touch").expect("canary");
    std::fs::write(dir.join("shadow"), b"root:secret").expect("canary");
    std::fs::write(dir.join("sub/x"), b"x").expect("canary");
}

/// Reads an xattr without following symlinks.
pub fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let cp = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    let cn = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of buf.len() bytes.
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}
