//! Snapshots: a container's root filesystem on top of an image's layers, in containerd's
//! vocabulary (`prepare` an active snapshot on parent layers, get its `mounts`, `mount`,
//! `unmount`, `remove`).
//!
//! The overlay snapshotter stacks the shared, read-only unpacked layers (`layers/<diff id>`)
//! as lowerdirs under a fresh `upper` and `work` dir, so a snapshot costs two empty
//! directories and a small record. Mounting uses the new mount API with one `lowerdir+`
//! per layer (kernel >= 6.8), which has no length limit on the layer list; older kernels
//! get `mount(2)` with the short `l/<16 hex>` links, which keeps 100+ layers under the
//! page-size limit of the option string. Where overlayfs is missing, the copy snapshotter
//! applies the layers (whiteouts included) into a private `fs` dir, bind-mounted.
//!
//! Layout: `snapshots/<key>/{info.json, upper/, work/}` (overlay) or `{info.json, fs/}` (copy).

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::store::{atomic_write, remove_any, sync_dir, tmp_name, Store};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How a snapshot's filesystem is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Snapshotter {
    /// overlayfs over the shared layer dirs.
    Overlay,
    /// A private copy of the layers (no overlayfs available).
    Copy,
}

/// A mount to perform, as containerd's snapshotters return them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Filesystem type: `overlay` or `bind`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Source (`overlay`, or the directory to bind).
    pub source: PathBuf,
    /// Options; for overlay: `lowerdir=a:b` (topmost first), `upperdir=`, `workdir=`.
    pub options: Vec<String>,
    /// For overlay, the lower dirs one by one (topmost first), so the mount can be done
    /// with `lowerdir+` and no length limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lowerdirs: Vec<PathBuf>,
}

/// The record of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Its key.
    pub key: String,
    /// The layers under it, by diff id, bottom first.
    pub parents: Vec<Digest>,
    /// How it is made.
    pub snapshotter: Snapshotter,
}

/// Whether overlayfs can be used here (probed once per process).
pub fn overlay_supported() -> bool {
    static PROBE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROBE.get_or_init(|| {
        fs::read_to_string("/proc/filesystems")
            .map(|s| s.lines().any(|l| l.trim_end().ends_with("\toverlay")))
            .unwrap_or(false)
    })
}

/// The empty file that marks a snapshot made by [`Store::prepare_volatile`].
const VOLATILE_MARKER: &str = "volatile";

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 128
        && !k.starts_with('.')
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

impl Store {
    fn snapshot_dir(&self, key: &str) -> Result<PathBuf> {
        if !valid_key(key) {
            return Err(Error::BadSnapshotKey(key.to_string()));
        }
        Ok(self.root().join("snapshots").join(key))
    }

    /// Prepares an active snapshot `key` on `parents` (layer diff ids, bottom first) with the
    /// best snapshotter available, and returns its mounts.
    pub fn prepare(&self, key: &str, parents: &[Digest]) -> Result<Vec<Mount>> {
        let s = if overlay_supported() {
            Snapshotter::Overlay
        } else {
            Snapshotter::Copy
        };
        self.prepare_with(key, parents, s)
    }

    /// [`Store::prepare`] for a snapshot that need not survive a host crash (the root of a
    /// container removed when it exits; mount it with [`Store::mount_volatile`]): its record
    /// is written without fsyncs, which otherwise cost milliseconds on `run --rm`'s critical
    /// path. It carries an empty `volatile` marker (no data blocks, so it is on disk whenever
    /// the snapshot's directory is); a snapshot whose record a crash left unreadable is then
    /// known to be such a leftover and is skipped by [`Store::list_snapshots`].
    pub fn prepare_volatile(&self, key: &str, parents: &[Digest]) -> Result<Vec<Mount>> {
        let s = if overlay_supported() {
            Snapshotter::Overlay
        } else {
            Snapshotter::Copy
        };
        self.prepare_inner(key, parents, s, false)
    }

    /// [`Store::prepare`] with a chosen snapshotter.
    pub fn prepare_with(
        &self,
        key: &str,
        parents: &[Digest],
        snapshotter: Snapshotter,
    ) -> Result<Vec<Mount>> {
        self.prepare_inner(key, parents, snapshotter, true)
    }

    fn prepare_inner(
        &self,
        key: &str,
        parents: &[Digest],
        snapshotter: Snapshotter,
        durable: bool,
    ) -> Result<Vec<Mount>> {
        let dir = self.snapshot_dir(key)?;
        if dir.exists() {
            return Err(Error::SnapshotExists(key.to_string()));
        }
        for p in parents {
            if !self.has_layer(p) {
                return Err(Error::Layer {
                    layer: p.to_string(),
                    reason: format!("not unpacked; cannot prepare snapshot {key:?} on it"),
                });
            }
        }
        let tmp = self.root().join("snapshots").join(tmp_name("snap"));
        let res = (|| {
            fs::create_dir(&tmp).ctx("create directory", &tmp)?;
            match snapshotter {
                Snapshotter::Overlay => {
                    fs::create_dir(tmp.join("upper")).ctx("create directory", tmp.join("upper"))?;
                    fs::create_dir(tmp.join("work")).ctx("create directory", tmp.join("work"))?;
                }
                Snapshotter::Copy => {
                    let fsdir = tmp.join("fs");
                    fs::create_dir(&fsdir).ctx("create directory", &fsdir)?;
                    for p in parents {
                        crate::diff::apply_dir(&self.layer_path(p), &fsdir)?;
                    }
                }
            }
            let info = SnapshotInfo {
                key: key.to_string(),
                parents: parents.to_vec(),
                snapshotter,
            };
            let json = serde_json::to_vec(&info).map_err(|e| Error::Record {
                path: tmp.join("info.json"),
                source: e,
            })?;
            if durable {
                atomic_write(&tmp.join("info.json"), &json)?;
            } else {
                let m = tmp.join(VOLATILE_MARKER);
                fs::write(&m, b"").ctx("create", &m)?;
                let p = tmp.join("info.json");
                fs::write(&p, &json).ctx("write", &p)?;
            }
            // rename fails if the key appeared meanwhile: never replace another snapshot.
            let r = rename_noreplace(&tmp, &dir);
            match r {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    Err(Error::SnapshotExists(key.to_string()))
                }
                Err(e) => Err(Error::io("rename", &dir, e)),
                Ok(()) if durable => sync_dir(&self.root().join("snapshots")),
                Ok(()) => Ok(()),
            }
        })();
        if res.is_err() {
            let _ = remove_any(&tmp);
        }
        res?;
        self.mounts(key)
    }

    /// The record of a snapshot.
    pub fn snapshot_info(&self, key: &str) -> Result<SnapshotInfo> {
        let p = self.snapshot_dir(key)?.join("info.json");
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::SnapshotNotFound(key.to_string()))
            }
            Err(e) => return Err(Error::io("read", p, e)),
        };
        serde_json::from_slice(&data).map_err(|e| Error::Record { path: p, source: e })
    }

    /// All snapshots.
    pub fn list_snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let dir = self.root().join("snapshots");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx("read directory", &dir)? {
            let e = e.ctx("read directory", &dir)?;
            if let Some(k) = e.file_name().to_str() {
                if valid_key(k) {
                    match self.snapshot_info(k) {
                        Ok(i) => out.push(i),
                        // A volatile snapshot a host crash cut short: only good for removal.
                        Err(_) if e.path().join(VOLATILE_MARKER).exists() => {}
                        Err(err) => return Err(err),
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The directory holding a snapshot's changes (overlay `upper`, copy `fs`).
    pub fn snapshot_upper(&self, key: &str) -> Result<PathBuf> {
        let info = self.snapshot_info(key)?;
        let dir = self.snapshot_dir(key)?;
        Ok(match info.snapshotter {
            Snapshotter::Overlay => dir.join("upper"),
            Snapshotter::Copy => dir.join("fs"),
        })
    }

    /// The mounts that make the snapshot's root filesystem.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let info = self.snapshot_info(key)?;
        let dir = self.snapshot_dir(key)?;
        Ok(match info.snapshotter {
            Snapshotter::Copy => vec![Mount {
                kind: "bind".into(),
                source: dir.join("fs"),
                options: vec!["rbind".into(), "rw".into()],
                lowerdirs: vec![],
            }],
            Snapshotter::Overlay if info.parents.is_empty() => vec![Mount {
                kind: "bind".into(),
                source: dir.join("upper"),
                options: vec!["rbind".into(), "rw".into()],
                lowerdirs: vec![],
            }],
            Snapshotter::Overlay => {
                // Layers are shared by diff id, so an image may list one twice (two RUNs
                // that changed nothing both give the empty layer): overlay refuses a lower
                // dir given twice (ELOOP). Only the topmost occurrence is kept, which gives
                // the same tree: everything that layer holds is applied again there.
                let mut seen = std::collections::BTreeSet::new();
                let top_first: Vec<&Digest> = info
                    .parents
                    .iter()
                    .rev()
                    .filter(|p| seen.insert(*p))
                    .collect();
                // lowerdir+ takes full paths one by one; the classic option string uses the
                // short links (verified to point at the right layer) to stay under a page.
                let lowers: Vec<PathBuf> = top_first.iter().map(|p| self.layer_path(p)).collect();
                let joined = top_first
                    .iter()
                    .map(|p| {
                        self.layer_short_path(p)
                            .unwrap_or_else(|| self.layer_path(p))
                            .display()
                            .to_string()
                    })
                    .collect::<Vec<_>>()
                    .join(":");
                vec![Mount {
                    kind: "overlay".into(),
                    source: PathBuf::from("overlay"),
                    options: vec![
                        format!("lowerdir={joined}"),
                        format!("upperdir={}", dir.join("upper").display()),
                        format!("workdir={}", dir.join("work").display()),
                    ],
                    lowerdirs: lowers,
                }]
            }
        })
    }

    /// Mounts the snapshot `key` on `target` (an existing directory).
    pub fn mount(&self, key: &str, target: &Path) -> Result<()> {
        for m in self.mounts(key)? {
            mount_one(&m, target)?;
        }
        Ok(())
    }

    /// Mounts the snapshot `key` read-only on `target`, its upper dir as the topmost lower
    /// layer: safe while the snapshot is also mounted read-write (a container running on it),
    /// since a second mount with the same upper and work dirs would reset the work dir under
    /// the first (overlay empties `work/` at mount), after which every copy-up in the running
    /// container fails with ENOENT. Whiteouts and opaque dirs of the upper apply as in any
    /// lower layer.
    pub fn mount_readonly(&self, key: &str, target: &Path) -> Result<()> {
        for mut m in self.mounts(key)? {
            if m.kind == "overlay" {
                let upper = self.snapshot_dir(key)?.join("upper");
                m.lowerdirs.insert(0, upper.clone());
                m.options = m
                    .options
                    .iter()
                    .filter(|o| o.starts_with("lowerdir="))
                    .map(|o| format!("lowerdir={}:{}", upper.display(), &o["lowerdir=".len()..]))
                    .collect();
            }
            mount_one(&m, target)?;
        }
        Ok(())
    }

    /// [`Store::mount`] for a snapshot whose writes need not survive a host crash, such as the
    /// root of a container removed when it exits: overlay's `volatile` option skips every sync
    /// of the upper directory, notably the sync of the whole upper filesystem at unmount,
    /// which otherwise dominates a short container's teardown. (After a crash overlay refuses
    /// such an upper dir; the snapshot is then only good for removal, which is all it is for.)
    pub fn mount_volatile(&self, key: &str, target: &Path) -> Result<()> {
        for mut m in self.mounts(key)? {
            if m.kind == "overlay" {
                // overlayfs leaves `work/incompat/volatile` in the workdir of a volatile
                // mount and refuses (EINVAL) to mount it again while it is there. The last
                // mount is gone (a restarted `--rm` container), so it may go.
                for w in m.options.iter().filter_map(|o| o.strip_prefix("workdir=")) {
                    let marker = Path::new(w).join("work").join("incompat").join("volatile");
                    if marker.exists() {
                        fs::remove_dir_all(&marker).ctx("remove", &marker)?;
                    }
                }
                m.options.push("volatile".into());
            }
            mount_one(&m, target)?;
        }
        Ok(())
    }

    /// Removes a snapshot (it must not be mounted).
    pub fn remove_snapshot(&self, key: &str) -> Result<()> {
        let dir = self.snapshot_dir(key)?;
        if !dir.exists() {
            return Err(Error::SnapshotNotFound(key.to_string()));
        }
        // Rename first so a crash mid-removal leaves a temp dir that open() cleans up.
        let tmp = self.root().join("snapshots").join(tmp_name("rm"));
        fs::rename(&dir, &tmp).ctx("rename", &dir)?;
        remove_any(&tmp)
    }

    /// How many snapshots use each layer (for reference counting of layers).
    pub fn layer_users(&self) -> Result<std::collections::HashMap<Digest, usize>> {
        let mut m = std::collections::HashMap::new();
        for s in self.list_snapshots()? {
            for p in s.parents {
                *m.entry(p).or_insert(0) += 1;
            }
        }
        Ok(m)
    }
}

/// Unmounts a snapshot's root filesystem from `target`.
pub fn unmount(target: &Path) -> Result<()> {
    let c = cpath(target)?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::UMOUNT_NOFOLLOW) } < 0 {
        return Err(Error::Mount {
            op: "umount",
            target: target.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// [`unmount`] of a private mount nobody else should hold, such as export's: a process
/// forked elsewhere in the daemon can hold one of our directory fds for the moment
/// before its exec closes it, so EBUSY is retried for up to a second, then the mount is
/// detached (it goes once that fd closes) rather than left behind.
pub(crate) fn unmount_settled(target: &Path) -> Result<()> {
    for _ in 0..50 {
        match unmount(target) {
            Err(Error::Mount { source, .. }) if source.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
    let c = cpath(target)?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) } < 0 {
        return Err(Error::Mount {
            op: "umount",
            target: target.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        Error::io(
            "use path",
            p,
            io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"),
        )
    })
}

fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (f, t) = (
        CString::new(from.as_os_str().as_bytes())?,
        CString::new(to.as_os_str().as_bytes())?,
    );
    // SAFETY: both are valid NUL-terminated paths.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    let merr = |op: &'static str, e: io::Error| Error::Mount {
        op,
        target: target.to_path_buf(),
        source: e,
    };
    match m.kind.as_str() {
        "bind" => {
            let src = cpath(&m.source)?;
            let dst = cpath(target)?;
            // SAFETY: valid NUL-terminated paths; null fstype/data are allowed for MS_BIND.
            let r = unsafe {
                libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )
            };
            if r < 0 {
                return Err(merr("bind mount", io::Error::last_os_error()));
            }
            Ok(())
        }
        "overlay" => match mount_overlay_fsconfig(m, target) {
            Ok(()) => Ok(()),
            // No new mount API or no lowerdir+ (kernel < 6.8): the classic option string.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) => {
                let data = m.options.join(",");
                if data.len() >= 4096 {
                    return Err(merr(
                        "mount overlay",
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("option string is {} bytes (page-size limit)", data.len()),
                        ),
                    ));
                }
                let dst = cpath(target)?;
                let d = CString::new(data).map_err(|_| {
                    merr(
                        "mount overlay",
                        io::Error::from(io::ErrorKind::InvalidInput),
                    )
                })?;
                // SAFETY: valid NUL-terminated strings.
                let r = unsafe {
                    libc::mount(
                        c"overlay".as_ptr(),
                        dst.as_ptr(),
                        c"overlay".as_ptr(),
                        0,
                        d.as_ptr().cast(),
                    )
                };
                if r < 0 {
                    return Err(merr("mount overlay", io::Error::last_os_error()));
                }
                Ok(())
            }
            Err(e) => Err(merr("mount overlay", e)),
        },
        other => Err(merr(
            "mount",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown mount type {other:?}"),
            ),
        )),
    }
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn sys_fd(r: libc::c_long) -> io::Result<OwnedFd> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

fn fsconfig_flag(fd: &OwnedFd, key: &str) -> io::Result<()> {
    let k = CString::new(key)?;
    // SAFETY: fd is an fs context; key is NUL-terminated; a flag takes no value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd.as_raw_fd(),
            FSCONFIG_SET_FLAG,
            k.as_ptr(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn fsconfig_str(fd: &OwnedFd, key: &str, val: &Path) -> io::Result<()> {
    let k = CString::new(key)?;
    let v = CString::new(val.as_os_str().as_bytes())?;
    // SAFETY: fd is an fs context; key and value are NUL-terminated.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd.as_raw_fd(),
            FSCONFIG_SET_STRING,
            k.as_ptr(),
            v.as_ptr(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Mounts overlay with the new mount API: one `lowerdir+` per layer (topmost first).
fn mount_overlay_fsconfig(m: &Mount, target: &Path) -> io::Result<()> {
    // SAFETY: a valid NUL-terminated fs name and flags.
    let fsfd =
        sys_fd(unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) })?;
    for l in &m.lowerdirs {
        fsconfig_str(&fsfd, "lowerdir+", l)?;
    }
    for o in &m.options {
        if let Some(v) = o.strip_prefix("upperdir=") {
            fsconfig_str(&fsfd, "upperdir", Path::new(v))?;
        } else if let Some(v) = o.strip_prefix("workdir=") {
            fsconfig_str(&fsfd, "workdir", Path::new(v))?;
        } else if o == "volatile" {
            fsconfig_flag(&fsfd, "volatile")?;
        }
    }
    // SAFETY: fsfd is an fs context; null key/value for CMD_CREATE.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fsfd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fsfd is a created fs context.
    let mfd =
        sys_fd(unsafe { libc::syscall(libc::SYS_fsmount, fsfd.as_raw_fd(), FSMOUNT_CLOEXEC, 0) })?;
    let dst = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: mfd is a detached mount; "" with F_EMPTY_PATH names it; dst is NUL-terminated.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mfd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volatile_snapshot_cut_short_by_a_crash_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.prepare("durable", &[]).expect("prepare");
        store.prepare_volatile("volatile", &[]).expect("prepare");
        let root = dir.path().join("snapshots");
        assert!(root.join("volatile").join(VOLATILE_MARKER).exists());
        assert!(!root.join("durable").join(VOLATILE_MARKER).exists());
        let keys = |s: &Store| -> Vec<String> {
            s.list_snapshots()
                .expect("list")
                .into_iter()
                .map(|i| i.key)
                .collect()
        };
        assert_eq!(keys(&store), ["durable", "volatile"]);
        // What a host crash may leave of an unsynced record: an empty file.
        fs::write(root.join("volatile/info.json"), b"").expect("truncate");
        assert_eq!(keys(&store), ["durable"]);
        store.remove_snapshot("volatile").expect("remove");
        assert!(!root.join("volatile").exists());
        // A durable snapshot's broken record is still an error that names it.
        fs::write(root.join("durable/info.json"), b"").expect("truncate");
        let e = store.list_snapshots().expect_err("broken record");
        assert!(e.to_string().contains("durable"), "{e}");
    }
}
