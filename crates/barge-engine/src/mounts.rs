//! A container's mounts, resolved at create time from `HostConfig.Binds`, `HostConfig.Mounts`,
//! `HostConfig.VolumesFrom` and the image's (and the client's) `Volumes`, making the named
//! and anonymous volumes they need; and their preparation at start (driver mounts, copy-up).

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::model::{str_list, Container, MountPoint};
use crate::volumes::Volumes;
use crate::{Error, Result};

const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

fn check_dest(d: &str) -> Result<()> {
    if !d.starts_with('/') {
        return Err(Error::BadRequest(format!(
            "invalid mount config: mount path must be absolute: {d:?}"
        )));
    }
    let clean = d.trim_end_matches('/');
    if clean.is_empty() {
        // dockerd's words for "/" (and "//").
        return Err(Error::BadRequest(format!(
            "invalid mount destination {d:?}: destination can't be '/'"
        )));
    }
    if clean == "/proc"
        || clean.starts_with("/proc/")
        || clean == "/sys"
        || d.split('/').any(|c| c == "..")
    {
        return Err(Error::BadRequest(format!(
            "invalid mount destination {d:?}"
        )));
    }
    Ok(())
}

fn volume_mount(
    vols: &Volumes,
    name: Option<&str>,
    dst: &str,
    rw: bool,
    copy_up: bool,
    labels: BTreeMap<String, String>,
    opts: BTreeMap<String, String>,
) -> Result<MountPoint> {
    let anonymous = name.is_none_or(str::is_empty);
    let v = vols.create(name, labels, opts, anonymous)?;
    Ok(MountPoint {
        kind: "volume".into(),
        name: v.name.clone(),
        source: vols.mountpoint(&v.name).to_string_lossy().into_owned(),
        destination: dst.to_string(),
        driver: "local".into(),
        mode: String::new(),
        rw,
        propagation: String::new(),
        copy_up,
        anonymous: v.anonymous,
        ..Default::default()
    })
}

fn str_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Refuses a volume that would need `HostConfig.VolumeDriver` when that is not `local`: as
/// dockerd, the driver names the one for the volumes of `Binds` and of the image's and the
/// client's `Volumes` (not of `Mounts`, which carry their own), and a create that needs no
/// volume is accepted with any driver; barge has the local driver only.
fn check_volume_driver(host_config: &Value, volume: Option<&str>, dst: &str) -> Result<()> {
    let driver = host_config
        .get("VolumeDriver")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if driver.is_empty() || driver == "local" {
        return Ok(());
    }
    let what = match volume {
        Some(n) => format!("volume {n:?}"),
        None => "an anonymous volume".to_string(),
    };
    Err(Error::BadRequest(format!(
        "VolumeDriver {driver:?} is not supported: barge has the local driver only ({what} at {dst} needs it)"
    )))
}

/// Resolves the mounts of a new container. `lookup` finds a container for `VolumesFrom`;
/// `volumes` are the image's and the client's `Volumes` keys.
pub fn resolve(
    vols: &Volumes,
    host_config: &Value,
    volumes: &[String],
    lookup: impl Fn(&str) -> Result<Container>,
) -> Result<Vec<MountPoint>> {
    let mut out: Vec<MountPoint> = Vec::new();
    let mut user: Vec<MountPoint> = Vec::new();
    let dup = |v: &[MountPoint], d: &str| {
        v.iter()
            .any(|m| m.destination.trim_end_matches('/') == d.trim_end_matches('/'))
    };
    for b in str_list(host_config.get("Binds")) {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [d] => ("", *d, ""),
            [s, d] => (*s, *d, ""),
            [s, d, m] => (*s, *d, *m),
            _ => {
                return Err(Error::BadRequest(format!(
                    "invalid volume specification: {b:?}"
                )))
            }
        };
        check_dest(dst)?;
        if dup(&user, dst) {
            return Err(Error::BadRequest(format!("Duplicate mount point: {dst}")));
        }
        let (mut rw, mut prop, mut nocopy) = (true, String::new(), false);
        for o in mode.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => rw = false,
                "rw" | "z" | "Z" => {}
                "nocopy" => nocopy = true,
                p if PROPAGATIONS.contains(&p) => prop = p.to_string(),
                _ => {
                    return Err(Error::BadRequest(format!(
                        "invalid mode {o:?} in volume specification {b:?}"
                    )))
                }
            }
        }
        let mut mp = if src.starts_with('/') {
            if !Path::new(src).exists() {
                std::fs::create_dir_all(src)
                    .map_err(|e| Error::BadRequest(format!("create bind source {src}: {e}")))?;
            }
            MountPoint {
                kind: "bind".into(),
                source: src.to_string(),
                destination: dst.to_string(),
                rw,
                propagation: if prop.is_empty() {
                    "rprivate".into()
                } else {
                    prop
                },
                ..Default::default()
            }
        } else {
            if !src.is_empty() && !crate::volumes::valid_name(src) {
                return Err(Error::BadRequest(format!(
                    "create {src}: {src:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
                )));
            }
            let name = (!src.is_empty()).then_some(src);
            check_volume_driver(host_config, name, dst)?;
            volume_mount(
                vols,
                name,
                dst,
                rw,
                !nocopy,
                BTreeMap::new(),
                BTreeMap::new(),
            )?
        };
        mp.mode = mode.to_string();
        user.push(mp);
    }
    if let Some(ms) = host_config.get("Mounts").and_then(Value::as_array) {
        for m in ms {
            let ty = m.get("Type").and_then(Value::as_str).unwrap_or("volume");
            let dst = m.get("Target").and_then(Value::as_str).unwrap_or_default();
            check_dest(dst)?;
            if dup(&user, dst) {
                return Err(Error::BadRequest(format!("Duplicate mount point: {dst}")));
            }
            let rw = !m.get("ReadOnly").and_then(Value::as_bool).unwrap_or(false);
            let src = m.get("Source").and_then(Value::as_str).unwrap_or_default();
            let mp = match ty {
                "bind" => {
                    let bo = m.get("BindOptions");
                    let flag = |k: &str| {
                        bo.and_then(|b| b.get(k))
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    };
                    if flag("ReadOnlyNonRecursive") && flag("ReadOnlyForceRecursive") {
                        return Err(Error::BadRequest(
                            "invalid mount config: ReadOnlyNonRecursive and ReadOnlyForceRecursive are mutually exclusive".into(),
                        ));
                    }
                    if rw && (flag("ReadOnlyNonRecursive") || flag("ReadOnlyForceRecursive")) {
                        return Err(Error::BadRequest(
                            "invalid mount config: ReadOnlyNonRecursive and ReadOnlyForceRecursive need ReadOnly".into(),
                        ));
                    }
                    if flag("NonRecursive") && flag("ReadOnlyForceRecursive") {
                        return Err(Error::BadRequest(
                            "invalid mount config: NonRecursive and ReadOnlyForceRecursive are mutually exclusive".into(),
                        ));
                    }
                    if flag("CreateMountpoint") && src.starts_with('/') && !Path::new(src).exists()
                    {
                        std::fs::create_dir_all(src).map_err(|e| {
                            Error::BadRequest(format!(
                                "invalid mount config for type \"bind\": creating bind source {src}: {e}"
                            ))
                        })?;
                    }
                    if !src.starts_with('/') || !Path::new(src).exists() {
                        return Err(Error::BadRequest(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                        )));
                    }
                    let prop = m
                        .get("BindOptions")
                        .and_then(|b| b.get("Propagation"))
                        .and_then(Value::as_str)
                        .filter(|p| !p.is_empty())
                        .unwrap_or("rprivate");
                    if !PROPAGATIONS.contains(&prop) {
                        return Err(Error::BadRequest(format!(
                            "invalid mount config: invalid propagation mode {prop:?}"
                        )));
                    }
                    MountPoint {
                        kind: "bind".into(),
                        source: src.into(),
                        destination: dst.into(),
                        rw,
                        propagation: prop.into(),
                        non_recursive: flag("NonRecursive"),
                        ro_non_recursive: flag("ReadOnlyNonRecursive"),
                        ..Default::default()
                    }
                }
                "volume" => {
                    let vo = m.get("VolumeOptions");
                    let subpath = vo
                        .and_then(|v| v.get("Subpath"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    check_subpath(subpath)?;
                    let nocopy = vo
                        .and_then(|v| v.get("NoCopy"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if !src.is_empty() && !crate::volumes::valid_name(src) {
                        return Err(Error::BadRequest(format!(
                            "invalid mount config for type \"volume\": invalid volume name {src:?}"
                        )));
                    }
                    let labels = str_map(vo.and_then(|v| v.get("Labels")));
                    let opts = str_map(
                        vo.and_then(|v| v.get("DriverConfig"))
                            .and_then(|d| d.get("Options")),
                    );
                    let mut mp = volume_mount(
                        vols,
                        (!src.is_empty()).then_some(src),
                        dst,
                        rw,
                        // Docker fills only a whole volume from the image.
                        !nocopy && subpath.is_empty(),
                        labels,
                        opts,
                    )?;
                    mp.subpath = subpath.to_string();
                    mp
                }
                "tmpfs" => {
                    if !src.is_empty() {
                        return Err(Error::BadRequest(
                            "invalid mount config for type \"tmpfs\": Source must not be specified"
                                .into(),
                        ));
                    }
                    let t = m.get("TmpfsOptions");
                    let mut o = Vec::new();
                    if let Some(sz) = t.and_then(|t| t.get("SizeBytes")).and_then(Value::as_i64) {
                        if sz > 0 {
                            o.push(format!("size={sz}"));
                        }
                    }
                    if let Some(md) = t.and_then(|t| t.get("Mode")).and_then(Value::as_u64) {
                        o.push(format!("mode={md:o}"));
                    }
                    MountPoint {
                        kind: "tmpfs".into(),
                        destination: dst.into(),
                        rw,
                        tmpfs_options: o,
                        ..Default::default()
                    }
                }
                other => {
                    return Err(Error::BadRequest(format!(
                        "invalid mount config: mount type {other:?} is not supported"
                    )))
                }
            };
            user.push(mp);
        }
    }
    for vf in str_list(host_config.get("VolumesFrom")) {
        let (name, mode) = vf.split_once(':').unwrap_or((&vf, ""));
        // A missing source is a mistake in the request (400 as dockerd), not a missing
        // resource of the URL.
        let from = lookup(name).map_err(|e| match e {
            Error::NotFound(m) => Error::BadRequest(format!("VolumesFrom {name:?}: {m}")),
            e => e,
        })?;
        for m in from.mount_points {
            if dup(&user, &m.destination) || dup(&out, &m.destination) || m.kind == "tmpfs" {
                continue;
            }
            let mut m = m;
            m.anonymous = false;
            m.copy_up = false;
            match mode {
                "ro" => m.rw = false,
                "rw" => m.rw = true,
                "" => {}
                _ => {
                    return Err(Error::BadRequest(format!(
                        "invalid mode for --volumes-from: {mode:?}"
                    )))
                }
            }
            out.push(m);
        }
    }
    out.retain(|m| !dup(&user, &m.destination));
    out.extend(user);
    for dst in volumes {
        if dst.is_empty() || !dst.starts_with('/') {
            return Err(Error::BadRequest(format!(
                "invalid VOLUME path {dst:?}: it must be absolute"
            )));
        }
        check_dest(dst)?;
        // A `HostConfig.Tmpfs` at the same place replaces the anonymous volume (as dockerd:
        // no volume is made for it).
        let on_tmpfs = host_config
            .get("Tmpfs")
            .and_then(Value::as_object)
            .is_some_and(|t| {
                t.keys()
                    .any(|k| k.trim_end_matches('/') == dst.trim_end_matches('/'))
            });
        if dup(&out, dst) || on_tmpfs {
            continue;
        }
        check_volume_driver(host_config, None, dst)?;
        let mp = volume_mount(
            vols,
            None,
            dst,
            true,
            true,
            BTreeMap::new(),
            BTreeMap::new(),
        )?;
        out.push(mp);
    }
    Ok(out)
}

/// `VolumeOptions.Subpath` as Docker takes it: a relative path that stays inside the volume
/// (no `..`); empty for the whole volume.
fn check_subpath(subpath: &str) -> Result<()> {
    if subpath.starts_with('/') {
        return Err(Error::BadRequest(format!(
            "invalid mount config: subpath must be a relative path within the volume: {subpath:?}"
        )));
    }
    if Path::new(subpath)
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(Error::BadRequest(format!(
            "invalid mount config: subpath must not escape the volume: {subpath:?}"
        )));
    }
    Ok(())
}

/// Where a container's `n`th mount point's volume subpath is pinned while it runs: a bind
/// mount, made by [`prepare`], of the directory or file that the subpath resolved to inside
/// the volume. The runtime binds from here, so a symlink that another container swaps into
/// the volume afterwards cannot redirect the mount (the CVE-2018-15664 class).
fn subpath_stage(exec_dir: &Path, n: usize) -> PathBuf {
    exec_dir.join("subpaths").join(n.to_string())
}

/// Undoes [`prepare`]'s subpath pins under `exec_dir` (after the container's exit).
pub fn release_subpaths(exec_dir: &Path) {
    let dir = exec_dir.join("subpaths");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
            // SAFETY: c is NUL-terminated; failing (not mounted) is fine.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
        }
        let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir(&p));
    }
    let _ = std::fs::remove_dir(&dir);
}

/// Pins `subpath` of the volume directory `data` at `stage`: resolved inside the volume
/// only (a symlink in it cannot lead out), then bind-mounted through its fd.
fn pin_subpath(data: &Path, subpath: &str, stage: &Path) -> Result<()> {
    let fd =
        barge_runtime::rootfs::open_path_in_root(data, Path::new(subpath), false).map_err(|e| {
            Error::BadRequest(format!(
                "cannot access subpath {subpath:?} of the volume: {e}"
            ))
        })?;
    let st = nix_fstat(&fd)?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if let Some(parent) = stage.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::Internal(format!("create {}: {e}", parent.display())))?;
    }
    let made = if is_dir {
        std::fs::create_dir(stage)
    } else {
        std::fs::File::create(stage).map(drop)
    };
    made.map_err(|e| Error::Internal(format!("create {}: {e}", stage.display())))?;
    let src = std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| Error::Internal(e.to_string()))?;
    let dst = std::ffi::CString::new(stage.as_os_str().as_encoded_bytes())
        .map_err(|e| Error::Internal(e.to_string()))?;
    // SAFETY: both are NUL-terminated; a plain bind of the fd's file.
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
        return Err(Error::Internal(format!(
            "pin volume subpath {subpath:?}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn nix_fstat(fd: &std::os::fd::OwnedFd) -> Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open; st is a valid out pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(Error::Internal(format!(
            "stat volume subpath: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(st)
}

/// At start: mounts volumes with driver options, pins volume subpaths (under `exec_dir`)
/// and copies the image's content into new empty volumes (resolving the destination
/// inside `rootfs`).
pub fn prepare(vols: &Volumes, c: &Container, rootfs: &Path, exec_dir: &Path) -> Result<()> {
    release_subpaths(exec_dir);
    for (n, m) in c.mount_points.iter().enumerate() {
        if m.kind != "volume" {
            continue;
        }
        let data = vols.prepare(&m.name)?;
        if !m.subpath.is_empty() {
            pin_subpath(&data, &m.subpath, &subpath_stage(exec_dir, n))?;
        }
        if !m.copy_up {
            continue;
        }
        let empty = std::fs::read_dir(&data)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            continue;
        }
        if let Some(src) = crate::volumes::resolve_in_root(rootfs, &m.destination) {
            if src.is_dir() {
                crate::volumes::copy_up(&src, &data).map_err(|e| {
                    Error::Internal(format!("copy image content into volume {}: {e}", m.name))
                })?;
            }
        }
    }
    Ok(())
}

/// The OCI mounts for a container's mount points (`exec_dir` holds the subpath pins).
pub fn oci_mounts(c: &Container, exec_dir: &Path) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (n, m) in c.mount_points.iter().enumerate() {
        check_dest(&m.destination)?;
        if m.kind == "tmpfs" {
            let mut o = vec!["nosuid".to_string(), "nodev".to_string()];
            o.extend(m.tmpfs_options.iter().cloned());
            if !m.rw {
                o.push("ro".into());
            }
            out.push(serde_json::json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": o}));
            continue;
        }
        let mut o = vec![if m.non_recursive { "bind" } else { "rbind" }.to_string()];
        if !m.rw {
            o.push("ro".into());
            if !m.ro_non_recursive && !m.non_recursive {
                o.push("rro".into());
            }
        }
        o.push(if m.propagation.is_empty() {
            "rprivate".to_string()
        } else {
            m.propagation.clone()
        });
        let source = if m.subpath.is_empty() {
            m.source.clone()
        } else {
            subpath_stage(exec_dir, n).display().to_string()
        };
        out.push(serde_json::json!({"destination": m.destination, "type": "bind", "source": source, "options": o}));
    }
    Ok(out)
}

/// inspect's `Mounts`.
pub fn inspect(c: &Container) -> Value {
    Value::Array(
        c.mount_points
            .iter()
            .map(|m| {
                let mut v = serde_json::json!({
                    "Type": m.kind, "Source": m.source, "Destination": m.destination,
                    "Mode": m.mode, "RW": m.rw, "Propagation": m.propagation,
                });
                if m.kind == "volume" {
                    v["Name"] = Value::String(m.name.clone());
                    v["Driver"] = Value::String(m.driver.clone());
                }
                v
            })
            .collect(),
    )
}
