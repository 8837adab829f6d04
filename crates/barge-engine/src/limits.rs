//! Docker's resource fields (`HostConfig.Memory`, `NanoCpus`, `BlkioDeviceReadBps`, `Devices`,
//! ...) -> the OCI spec's `linux.resources` and `linux.devices`; also used by `update`.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use serde_json::{json, Map, Value};

use crate::model::Container;
use crate::{Error, Result};

fn i64_of(h: &Value, k: &str) -> i64 {
    h.get(k).and_then(Value::as_i64).unwrap_or(0)
}

fn str_of<'a>(h: &'a Value, k: &str) -> &'a str {
    h.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn dev_numbers(path: &str) -> Result<(char, u64, u64, u32)> {
    let m = std::fs::metadata(path).map_err(|e| {
        Error::BadRequest(format!(
            "error gathering device information while adding custom device {path:?}: {e}"
        ))
    })?;
    let ft = m.file_type();
    let ty = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return Err(Error::BadRequest(format!("{path:?} is not a device node")));
    };
    let rdev = m.rdev();
    Ok((
        ty,
        libc::major(rdev) as u64,
        libc::minor(rdev) as u64,
        m.mode() & 0o777,
    ))
}

fn throttle(h: &Value, k: &str, rate_key: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for d in h.get(k).and_then(Value::as_array).into_iter().flatten() {
        let path = str_of(d, "Path");
        let rate = d.get(rate_key).and_then(Value::as_u64).unwrap_or(0);
        let (ty, major, minor, _) = dev_numbers(path)?;
        // The kernel takes throttles for block devices only, and refuses others at start
        // with a bare ENODEV: say so at create, naming the device.
        if ty != 'b' {
            return Err(Error::BadRequest(format!(
                "{k}: {path:?} is not a block device (I/O throttles apply to block devices)"
            )));
        }
        out.push(json!({"major": major, "minor": minor, "rate": rate}));
    }
    Ok(out)
}

/// A kernel id list (`0-3,8,10-11`, as cpuset and sysfs write them) as inclusive ranges;
/// None if it is not one (a range running backwards included).
fn id_list(s: &str) -> Option<Vec<(u32, u32)>> {
    s.split(',')
        .map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b) = (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?);
            (a <= b).then_some((a, b))
        })
        .collect()
}

/// Whether every id of `want` is in `avail` (id by id, so `0-1` is within `0,1`; a range
/// wider than any host's id space is not, without walking it).
fn ids_within(want: &[(u32, u32)], avail: &[(u32, u32)]) -> bool {
    want.iter().all(|&(a, b)| {
        b - a <= 1 << 16 && (a..=b).all(|id| avail.iter().any(|r| r.0 <= id && id <= r.1))
    })
}

/// The OCI `linux.resources` fields (memory, cpu, pids, blockIO) for a Docker `HostConfig`
/// (or an `update` body), merged into `resources`. `update` is true for `POST .../update`,
/// where absent (zero) fields are left alone.
pub fn resources(h: &Value, resources: &mut Value, update: bool) -> Result<()> {
    let mem = i64_of(h, "Memory");
    if mem < 0 || (mem > 0 && mem < 6 * 1024 * 1024) {
        return Err(Error::BadRequest(
            "Minimum memory limit allowed is 6MB".into(),
        ));
    }
    let swap = i64_of(h, "MemorySwap");
    let reservation = i64_of(h, "MemoryReservation");
    if swap > 0 && mem > 0 && swap < mem {
        return Err(Error::BadRequest(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        ));
    }
    if swap > 0 && mem == 0 && !update {
        return Err(Error::BadRequest(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        ));
    }
    if reservation > 0 && mem > 0 && reservation > mem {
        return Err(Error::BadRequest(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        ));
    }
    let mut m = Map::new();
    if mem > 0 {
        m.insert("limit".into(), json!(mem));
        if swap == 0 && !update {
            m.insert("swap".into(), json!(mem * 2));
        }
    }
    if swap != 0 {
        m.insert("swap".into(), json!(swap));
    }
    if reservation > 0 {
        m.insert("reservation".into(), json!(reservation));
    }
    if h.get("OomKillDisable").and_then(Value::as_bool) == Some(true) {
        m.insert("disableOOMKiller".into(), json!(true));
    }
    if let Some(sw) = h.get("MemorySwappiness").and_then(Value::as_i64) {
        if (0..=100).contains(&sw) {
            m.insert("swappiness".into(), json!(sw));
        }
    }
    if !m.is_empty() {
        resources["memory"] = Value::Object(m);
    }
    let nano = i64_of(h, "NanoCpus");
    let quota = i64_of(h, "CpuQuota");
    let period = i64_of(h, "CpuPeriod");
    if nano > 0 && (quota > 0 || period > 0) {
        return Err(Error::Conflict(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
        ));
    }
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if nano < 0 || nano > ncpu * 1_000_000_000 {
        return Err(Error::BadRequest(format!(
            "range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        return Err(Error::BadRequest(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
                .into(),
        ));
    }
    if quota > 0 && quota < 1000 {
        return Err(Error::BadRequest(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)".into(),
        ));
    }
    let mut cpu = Map::new();
    if nano > 0 {
        cpu.insert("period".into(), json!(100000));
        cpu.insert("quota".into(), json!(nano / 10000));
    }
    if quota != 0 {
        cpu.insert("quota".into(), json!(quota));
    }
    if period > 0 {
        cpu.insert("period".into(), json!(period));
    }
    let shares = i64_of(h, "CpuShares");
    if shares > 0 {
        cpu.insert("shares".into(), json!(shares.max(2)));
    }
    for (k, o, online, what) in [
        (
            "CpusetCpus",
            "cpus",
            "/sys/devices/system/cpu/online",
            "CPUs",
        ),
        (
            "CpusetMems",
            "mems",
            "/sys/devices/system/node/online",
            "memory nodes",
        ),
    ] {
        let v = str_of(h, k);
        if !v.is_empty() {
            let Some(want) = id_list(v) else {
                return Err(Error::BadRequest(format!("invalid value {v:?} for {k}")));
            };
            // Checked here (create, update) as dockerd does: the kernel would refuse the
            // write only at start, with an errno instead of what is available. A host
            // without NUMA has no node directory: node 0 only.
            let have = std::fs::read_to_string(online).unwrap_or_else(|_| "0".into());
            let have = have.trim();
            if let Some(avail) = id_list(have) {
                if !ids_within(&want, &avail) {
                    return Err(Error::BadRequest(format!(
                        "Requested {what} are not available - requested {v}, available: {have}"
                    )));
                }
            }
            cpu.insert(o.into(), json!(v));
        }
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = h.get("PidsLimit").and_then(Value::as_i64) {
        if p > 0 {
            resources["pids"] = json!({"limit": p});
        } else if p < 0 || (update && h.get("PidsLimit").is_some()) {
            resources["pids"] = json!({"limit": -1});
        }
    }
    let mut b = Map::new();
    let w = i64_of(h, "BlkioWeight");
    if w != 0 {
        if !(10..=1000).contains(&w) {
            return Err(Error::BadRequest(
                "Range of blkio weight is from 10 to 1000".into(),
            ));
        }
        b.insert("weight".into(), json!(w));
    }
    for (k, o, r) in [
        ("BlkioDeviceReadBps", "throttleReadBpsDevice", "Rate"),
        ("BlkioDeviceWriteBps", "throttleWriteBpsDevice", "Rate"),
        ("BlkioDeviceReadIOps", "throttleReadIOPSDevice", "Rate"),
        ("BlkioDeviceWriteIOps", "throttleWriteIOPSDevice", "Rate"),
    ] {
        let t = throttle(h, k, r)?;
        if !t.is_empty() {
            b.insert(o.into(), Value::Array(t));
        }
    }
    if !b.is_empty() {
        resources["blockIO"] = Value::Object(b);
    }
    Ok(())
}

/// Applies a container's limits to its spec's `resources`.
pub fn apply(c: &Container, res: &mut Value) -> Result<()> {
    resources(&c.host_config, res, false)
}

/// The host's device nodes under `dir` (recursively), as a privileged container gets them:
/// as Docker, without the directories the container has its own of (pts, shm, mqueue, fd)
/// or that belong to other tools, without `console` (the container's is its terminal) and
/// without symlinks.
fn host_devices(dir: &std::path::Path, out: &mut Vec<Value>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let Ok(m) = e.metadata() else { continue };
        let ft = m.file_type();
        if ft.is_dir() {
            let skip = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
            if !skip.iter().any(|s| name == *s) {
                host_devices(&e.path(), out);
            }
            continue;
        }
        let ty = if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            continue;
        };
        if name == "console" {
            continue;
        }
        let rdev = m.rdev();
        out.push(json!({"path": e.path(), "type": ty.to_string(),
            "major": libc::major(rdev) as u64, "minor": libc::minor(rdev) as u64,
            "fileMode": m.mode() & 0o777, "uid": m.uid(), "gid": m.gid()}));
    }
}

/// `HostConfig.Devices` (and `DeviceCgroupRules`): the spec's `linux.devices` entries, with
/// their cgroup permissions added to `resources.devices`; with `Privileged`, every device of
/// the host first (its cgroup already allows all).
pub fn devices(c: &Container, res: &mut Value) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    if c.host_bool("Privileged") {
        host_devices(std::path::Path::new("/dev"), &mut out);
    }
    let mut rules = Vec::new();
    for d in c
        .host_config
        .get("Devices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let host = str_of(d, "PathOnHost");
        let mut inside = str_of(d, "PathInContainer");
        if inside.is_empty() {
            inside = host;
        }
        let mut perms = str_of(d, "CgroupPermissions");
        if perms.is_empty() {
            perms = "rwm";
        }
        if !perms.chars().all(|c| "rwm".contains(c)) || !inside.starts_with("/dev/") {
            return Err(Error::BadRequest(format!("invalid device mapping {d}")));
        }
        let (ty, major, minor, mode) = dev_numbers(host)?;
        out.push(
            json!({"path": inside, "type": ty.to_string(), "major": major, "minor": minor,
            "fileMode": mode, "uid": 0, "gid": 0}),
        );
        rules.push(json!({"allow": true, "type": ty.to_string(), "major": major, "minor": minor, "access": perms}));
    }
    for r in crate::model::str_list(c.host_config.get("DeviceCgroupRules")) {
        let f: Vec<&str> = r.split_whitespace().collect();
        let bad = || Error::BadRequest(format!("invalid device cgroup rule {r:?}"));
        let [ty, mm, access] = f.as_slice() else {
            return Err(bad());
        };
        let (ma, mi) = mm.split_once(':').ok_or_else(bad)?;
        let num = |s: &str| -> Result<Value> {
            if s == "*" {
                Ok(Value::Null)
            } else {
                s.parse::<u64>().map(|n| json!(n)).map_err(|_| bad())
            }
        };
        if !matches!(*ty, "a" | "b" | "c") || !access.chars().all(|c| "rwm".contains(c)) {
            return Err(bad());
        }
        let mut rule = json!({"allow": true, "type": ty, "access": access});
        if let Value::Number(n) = num(ma)? {
            rule["major"] = Value::Number(n);
        }
        if let Value::Number(n) = num(mi)? {
            rule["minor"] = Value::Number(n);
        }
        rules.push(rule);
    }
    if let Some(a) = res.get_mut("devices").and_then(Value::as_array_mut) {
        a.extend(rules);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuset_lists_parse_and_must_be_available() {
        assert_eq!(id_list("0-3,8"), Some(vec![(0, 3), (8, 8)]));
        assert_eq!(id_list("3-1"), None);
        assert_eq!(id_list("1,,2"), None);
        assert_eq!(id_list("x"), None);
        let avail = id_list("0,1").expect("list");
        assert!(ids_within(&id_list("0-1").expect("list"), &avail));
        assert!(!ids_within(&id_list("1-2").expect("list"), &avail));
        assert!(!ids_within(&id_list("0-4000000000").expect("list"), &avail));
    }
}
