//! Volumes with the local driver: `<data-root>/volumes/<name>/_data` plus `volume.json`
//! (labels, driver options, creation time). Driver options `type`/`device`/`o` make the
//! volume a mount (tmpfs, bind, nfs...) done with mount(2) on first use and undone on removal.
//! Also: the copy-up of an image's content into a new empty volume.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A volume's record, as kept in `volume.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// User labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options (`type`, `device`, `o`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Made for one container (image VOLUME, `-v /path`): removed with `rm -v`.
    #[serde(default)]
    pub anonymous: bool,
}

/// The local volume driver's store.
pub struct Volumes {
    root: PathBuf,
    lock: Mutex<()>,
}

/// Whether `n` is a valid volume name (Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
        && !n.contains("..")
}

/// Whether `p` is the root of a mount. statx's STATX_ATTR_MOUNT_ROOT also sees a bind mount
/// of a directory of the same filesystem (an `o=bind` volume), which comparing st_dev with
/// the parent's does not: missing it made `volume rm` delete the bound host directory's
/// files. The st_dev test stays as the fallback for kernels without the attribute.
fn mountpoint(p: &Path) -> bool {
    if let Ok(cp) = CString::new(p.as_os_str().as_bytes()) {
        // SAFETY: an all-zero statx is a valid out buffer.
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: cp is a NUL-terminated path and stx a writable statx.
        let r = unsafe {
            libc::statx(
                libc::AT_FDCWD,
                cp.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
                libc::STATX_BASIC_STATS,
                &mut stx,
            )
        };
        let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
        if r == 0 && stx.stx_attributes_mask & bit != 0 {
            return stx.stx_attributes & bit != 0;
        }
    }
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev() || a.ino() == b.ino(),
        _ => false,
    }
}

impl Volumes {
    /// Opens (and creates) the store at `root`.
    pub fn open(root: PathBuf) -> Result<Volumes> {
        std::fs::create_dir_all(&root)?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o701))?;
        Ok(Volumes {
            root,
            lock: Mutex::new(()),
        })
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The host path of a volume's data (its `Mountpoint`).
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir(name).join("_data")
    }

    /// Creates a volume (or returns the existing one of that name, as Docker does).
    pub fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<Volume> {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => crate::util::new_id(),
        };
        if !valid_name(&name) {
            return Err(Error::BadRequest(format!(
                "create {name}: {name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        for k in options.keys() {
            if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
                return Err(Error::BadRequest(format!("invalid option key: {k:?}")));
            }
        }
        if options.contains_key("device") != options.contains_key("type") {
            return Err(Error::BadRequest(
                "missing required option: \"type\" and \"device\" go together".into(),
            ));
        }
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(v) = self.get(&name) {
            return Ok(v);
        }
        let v = Volume {
            name: name.clone(),
            driver: "local".into(),
            labels,
            options,
            created_at: crate::util::now_rfc3339(),
            anonymous,
        };
        let d = self.dir(&name);
        std::fs::create_dir_all(d.join("_data"))?;
        std::fs::set_permissions(d.join("_data"), std::fs::Permissions::from_mode(0o755))?;
        let data = serde_json::to_vec(&v).map_err(|e| Error::Internal(e.to_string()))?;
        crate::util::write_atomic(&d.join("volume.json"), &data)?;
        Ok(v)
    }

    /// A volume by name.
    pub fn get(&self, name: &str) -> Result<Volume> {
        if !valid_name(name) {
            return Err(Error::NotFound(format!("get {name}: no such volume")));
        }
        let data = std::fs::read(self.dir(name).join("volume.json"))
            .map_err(|_| Error::NotFound(format!("get {name}: no such volume")))?;
        serde_json::from_slice(&data)
            .map_err(|e| Error::Internal(format!("volume {name}: bad record: {e}")))
    }

    /// Every volume.
    pub fn list(&self) -> Vec<Volume> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            for e in rd.flatten() {
                if let Some(n) = e.file_name().to_str() {
                    if let Ok(v) = self.get(n) {
                        out.push(v);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Makes sure a volume with driver options is mounted; returns its data path.
    pub fn prepare(&self, name: &str) -> Result<PathBuf> {
        let v = self.get(name)?;
        let p = self.mountpoint(name);
        let Some(ty) = v.options.get("type") else {
            return Ok(p);
        };
        if mountpoint(&p) {
            return Ok(p);
        }
        let device = v.options.get("device").cloned().unwrap_or_default();
        let mut o: Vec<String> = v
            .options
            .get("o")
            .map(|o| o.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let mut flags: libc::c_ulong = 0;
        let mut device = device;
        if ty == "none" || o.iter().any(|x| x == "bind" || x == "rbind") {
            flags |= libc::MS_BIND | libc::MS_REC;
            o.retain(|x| x != "bind" && x != "rbind");
            if !Path::new(&device).is_absolute() {
                return Err(Error::BadRequest(format!(
                    "volume {name}: bind device must be an absolute path: {device:?}"
                )));
            }
        } else if ty == "nfs" {
            // The kernel's nfs wants `addr=` and `host:/path`; pass as given.
            // Docker's form `device=:/path` takes the host from `addr=`.
            if let Some(a) = o.iter().find_map(|x| x.strip_prefix("addr=")) {
                if device.starts_with(':') {
                    device = format!("{a}{device}");
                }
            }
        }
        let data = o.join(",");
        let c = |s: &str| CString::new(s).map_err(|_| Error::BadRequest("NUL in option".into()));
        let (src, fst, dat) = (c(&device)?, c(ty)?, c(&data)?);
        let dst = CString::new(p.as_os_str().as_bytes())
            .map_err(|_| Error::BadRequest("NUL in path".into()))?;
        // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                fst.as_ptr(),
                flags,
                if data.is_empty() {
                    std::ptr::null()
                } else {
                    dat.as_ptr().cast()
                },
            )
        };
        if r != 0 {
            return Err(Error::Internal(format!(
                "error while mounting volume {name} ({ty} {device:?} {data:?}): {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(p)
    }

    /// Removes a volume (the caller has checked it is not in use).
    pub fn remove(&self, name: &str) -> Result<()> {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.get(name)?;
        let p = self.mountpoint(name);
        while mountpoint(&p) {
            let cp = CString::new(p.as_os_str().as_bytes())
                .map_err(|_| Error::Internal("NUL in path".into()))?;
            // SAFETY: cp is a valid NUL-terminated path.
            if unsafe { libc::umount2(cp.as_ptr(), libc::MNT_DETACH) } != 0 {
                return Err(Error::Internal(format!(
                    "unmount volume {name}: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        std::fs::remove_dir_all(self.dir(name))?;
        Ok(())
    }

    /// Bytes used by a volume's data (for `system df`), or -1 when unknown.
    pub fn size(&self, name: &str) -> i64 {
        fn walk(p: &Path, dev: u64) -> u64 {
            let mut n = 0;
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    if let Ok(m) = e.metadata() {
                        if m.is_dir() && m.dev() == dev {
                            n += walk(&e.path(), dev);
                        } else if m.is_file() {
                            n += m.blocks() * 512;
                        }
                    }
                }
            }
            n
        }
        let p = self.mountpoint(name);
        match std::fs::metadata(&p) {
            Ok(m) => walk(&p, m.dev()) as i64,
            Err(_) => -1,
        }
    }
}

/// Resolves `path` inside `root` as if `root` were `/`: symlinks (absolute or relative) and
/// `..` never leave `root`. Returns the host path, or None when something is missing.
pub fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut todo: Vec<std::ffi::OsString> = Path::new(path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut cur: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        let mut p = root.to_path_buf();
        p.extend(&cur);
        p.push(&c);
        let m = std::fs::symlink_metadata(&p).ok()?;
        if m.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return None;
            }
            let t = std::fs::read_link(&p).ok()?;
            if t.is_absolute() {
                cur.clear();
            }
            for tc in t.components().rev() {
                match tc {
                    Component::Normal(n) => todo.push(n.to_os_string()),
                    Component::ParentDir => todo.push("..".into()),
                    _ => {}
                }
            }
        } else {
            cur.push(c);
        }
    }
    let mut p = root.to_path_buf();
    p.extend(&cur);
    Some(p)
}

fn cstr(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}

fn copy_xattrs(src: &Path, dst: &Path) -> std::io::Result<()> {
    let (s, d) = (cstr(src)?, cstr(dst)?);
    let mut names = vec![0u8; 4096];
    // SAFETY: s is a valid path; names is a writable buffer of the given length.
    let n = unsafe { libc::llistxattr(s.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Ok(());
    }
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|x| !x.is_empty())
    {
        let Ok(cn) = CString::new(name) else { continue };
        let mut val = vec![0u8; 65536];
        // SAFETY: valid path and name; val is a writable buffer of the given length.
        let l =
            unsafe { libc::lgetxattr(s.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if l < 0 {
            continue;
        }
        // SAFETY: valid path and name; val holds l initialised bytes.
        unsafe { libc::lsetxattr(d.as_ptr(), cn.as_ptr(), val.as_ptr().cast(), l as usize, 0) };
    }
    Ok(())
}

fn copy_meta(src: &Path, dst: &Path, m: &std::fs::Metadata) -> std::io::Result<()> {
    let d = cstr(dst)?;
    // SAFETY: d is a valid path.
    if unsafe { libc::lchown(d.as_ptr(), m.uid(), m.gid()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    copy_xattrs(src, dst)?;
    if !m.file_type().is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
    }
    Ok(())
}

/// Docker's copy-up: copies the tree at `src` (already resolved on the host) into the empty
/// directory `dst`, keeping ownership, modes, xattrs, symlinks and device nodes. Symlinks
/// are copied as links, never followed.
pub fn copy_up(src: &Path, dst: &Path) -> std::io::Result<()> {
    let m = std::fs::symlink_metadata(src)?;
    if !m.is_dir() {
        return Ok(());
    }
    copy_tree(src, dst)?;
    copy_meta(src, dst, &m)
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let (s, d) = (e.path(), dst.join(e.file_name()));
        let m = std::fs::symlink_metadata(&s)?;
        let ft = m.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&d)?;
            copy_tree(&s, &d)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&s)?, &d)?;
        } else if ft.is_file() {
            std::fs::copy(&s, &d)?;
        } else {
            let cd = cstr(&d)?;
            // SAFETY: cd is a valid path; mode and rdev come from lstat.
            if unsafe { libc::mknod(cd.as_ptr(), m.mode(), m.rdev()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        copy_meta(&s, &d, &m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("data"));
        assert!(valid_name("my-vol_1.x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(".."));
        assert!(!valid_name("a..b"));
        assert!(!valid_name("x"));
        assert!(!valid_name("-x"));
    }

    #[test]
    fn resolve_stays_in_root() {
        let t = std::env::temp_dir().join(format!("barge-vol-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("a")).expect("mkdir");
        std::os::unix::fs::symlink("/", t.join("a/up")).expect("symlink");
        std::os::unix::fs::symlink("../../../etc", t.join("a/rel")).expect("symlink");
        assert_eq!(resolve_in_root(&t, "/a/up/a"), Some(t.join("a")));
        assert_eq!(resolve_in_root(&t, "/a/rel"), None);
        assert_eq!(resolve_in_root(&t, "/../../a"), Some(t.join("a")));
        let _ = std::fs::remove_dir_all(&t);
    }
}
