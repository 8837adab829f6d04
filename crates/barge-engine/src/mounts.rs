//! A container's mounts, resolved at create time from `HostConfig.Binds`, `HostConfig.Mounts`,
//! `HostConfig.VolumesFrom` and the image's (and the client's) `Volumes`, making the named
//! and anonymous volumes they need; and their preparation at start (driver mounts, copy-up).

use std::collections::BTreeMap;
use std::path::Path;

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
    if clean.is_empty()
        || clean == "/proc"
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
        tmpfs_options: vec![],
        anonymous: v.anonymous,
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
                    if flag("NonRecursive") {
                        return Err(Error::BadRequest(
                            "invalid mount config: BindOptions.NonRecursive is not supported by barge (binds are recursive)".into(),
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
                        ..Default::default()
                    }
                }
                "volume" => {
                    let vo = m.get("VolumeOptions");
                    if let Some(sp) = vo
                        .and_then(|v| v.get("Subpath"))
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                    {
                        return Err(Error::BadRequest(format!(
                            "invalid mount config: VolumeOptions.Subpath ({sp:?}) is not supported by barge"
                        )));
                    }
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
                    volume_mount(
                        vols,
                        (!src.is_empty()).then_some(src),
                        dst,
                        rw,
                        !nocopy,
                        labels,
                        opts,
                    )?
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
        let from = lookup(name)?;
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
        if dup(&out, dst) {
            continue;
        }
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

/// At start: mounts volumes with driver options and copies the image's content into new
/// empty volumes (resolving the destination inside `rootfs`).
pub fn prepare(vols: &Volumes, c: &Container, rootfs: &Path) -> Result<()> {
    for m in &c.mount_points {
        if m.kind != "volume" {
            continue;
        }
        let data = vols.prepare(&m.name)?;
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

/// The OCI mounts for a container's mount points.
pub fn oci_mounts(c: &Container) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for m in &c.mount_points {
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
        let mut o = vec!["rbind".to_string()];
        if !m.rw {
            o.push("ro".into());
        }
        o.push(if m.propagation.is_empty() {
            "rprivate".to_string()
        } else {
            m.propagation.clone()
        });
        out.push(serde_json::json!({"destination": m.destination, "type": "bind", "source": m.source, "options": o}));
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
