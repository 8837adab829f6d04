//! The spec's `linux.resources` written to v1 or v2 cgroup files. Each value goes to the
//! hierarchy that holds its controller (v1 if bound there, else the cgroup2 tree), so hybrid
//! hosts get v1 files for v1 controllers and v2 files for the rest.

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork, LinuxResources,
    LinuxThrottleDevice,
};

use super::fs::{read_opt, write};
use super::manager::{Cgroup, Ctl};
use super::CgroupError;

/// Applies every resource of `res` except devices (see [`super::devices`]).
pub(crate) fn apply(cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = res.memory() {
        memory(cg, m)?;
    }
    if let Some(c) = res.cpu() {
        cpu(cg, c)?;
    }
    if let Some(p) = res.pids() {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".to_string()
        };
        let ctl = need(cg.ctl("pids", "pids"), "pids.limit", "the pids controller")?;
        write(&ctl.file("pids.max"), &v)?;
    }
    if let Some(b) = res.block_io() {
        block_io(cg, b)?;
    }
    if let Some(h) = res.hugepage_limits() {
        hugepages(cg, h)?;
    }
    if let Some(n) = res.network() {
        network(cg, n)?;
    }
    if let Some(u) = res.unified() {
        unified(cg, u)?;
    }
    Ok(())
}

fn need<'a>(ctl: Option<Ctl<'a>>, field: &'static str, what: &str) -> Result<Ctl<'a>, CgroupError> {
    ctl.ok_or_else(|| CgroupError::Unsupported {
        field,
        what: what.to_string(),
    })
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CgroupError {
    CgroupError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Current value of a v1 number file (`-1`/huge means unlimited: returned as `i64::MAX`).
fn current_v1(file: &Path) -> Result<i64, CgroupError> {
    Ok(read_opt(file)?
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or(i64::MAX, |v| i64::try_from(v).unwrap_or(i64::MAX)))
}

fn memory(cg: &Cgroup, m: &LinuxMemory) -> Result<(), CgroupError> {
    let (limit, swap) = (m.limit(), m.swap());
    if limit.is_some_and(|l| l < -1 || (0..4096).contains(&l) && l != 0) {
        return Err(invalid(
            "memory.limit",
            "must be -1 (unlimited), 0 (unset) or at least 4096 bytes",
        ));
    }
    if let (Some(l), Some(s)) = (limit, swap) {
        if l > 0 && s > 0 && s < l {
            return Err(invalid(
                "memory.swap",
                format!("memory+swap {s} is below the memory limit {l}"),
            ));
        }
    }
    let nothing = limit.is_none()
        && swap.is_none()
        && m.reservation().is_none()
        && m.swappiness().is_none()
        && m.disable_oom_killer().is_none()
        && m.kernel_tcp().is_none();
    if nothing {
        return Ok(());
    }
    let ctl = need(
        cg.ctl("memory", "memory"),
        "memory",
        "the memory controller",
    )?;
    let limit = limit.filter(|&l| l != 0);
    let swap = swap.filter(|&s| s != 0);
    match ctl {
        Ctl::V1(_) => {
            let lf = ctl.file("memory.limit_in_bytes");
            let sf = ctl.file("memory.memsw.limit_in_bytes");
            if swap.is_some() && !sf.exists() {
                return Err(CgroupError::Unsupported {
                    field: "memory.swap",
                    what: "swap accounting (memory.memsw.limit_in_bytes)".into(),
                });
            }
            // memory.limit <= memsw.limit always holds in the kernel: raise memsw first
            // when the new value is above the current memory limit.
            let sv = swap.map(|s| if s < 0 { i64::MAX } else { s });
            let swap_first = sv.is_some_and(|s| s > current_v1(&lf).unwrap_or(i64::MAX));
            let set_swap = |s: i64| write(&sf, &if s < 0 { "-1".into() } else { s.to_string() });
            if swap_first {
                if let Some(s) = swap {
                    set_swap(s)?;
                }
            }
            if let Some(l) = limit {
                write(&lf, &l.to_string())?;
            }
            if !swap_first {
                if let Some(s) = swap {
                    set_swap(s)?;
                }
            }
            if let Some(r) = m.reservation() {
                write(&ctl.file("memory.soft_limit_in_bytes"), &r.to_string())?;
            }
            if let Some(s) = m.swappiness() {
                if s > 100 {
                    return Err(invalid("memory.swappiness", format!("{s} is above 100")));
                }
                write(&ctl.file("memory.swappiness"), &s.to_string())?;
            }
            if m.disable_oom_killer() == Some(true) {
                write(&ctl.file("memory.oom_control"), "1")?;
            }
            // kernelTCP exists on v1 only (v2 has no separate TCP limit and, as runc, it is
            // ignored there). `kernel` (kmem.limit_in_bytes) is not written: Linux 5.16+
            // ignores it and runc dropped it.
            if let Some(t) = m.kernel_tcp().filter(|&t| t != 0) {
                let v = if t < 0 { "-1".into() } else { t.to_string() };
                write(&ctl.file("memory.kmem.tcp.limit_in_bytes"), &v)?;
            }
        }
        Ctl::V2(_) => {
            let max = |v: i64| {
                if v < 0 {
                    "max".to_string()
                } else {
                    v.to_string()
                }
            };
            if let Some(l) = limit {
                write(&ctl.file("memory.max"), &max(l))?;
            }
            if let Some(s) = swap {
                // OCI's swap is memory+swap; memory.swap.max is the swap alone.
                let v = match (s, limit) {
                    (s, _) if s < 0 => "max".to_string(),
                    (s, Some(l)) if l > 0 => (s - l).to_string(),
                    _ => {
                        return Err(invalid(
                            "memory.swap",
                            "on cgroup v2 a swap limit needs a memory limit",
                        ))
                    }
                };
                let f = ctl.file("memory.swap.max");
                if !f.exists() {
                    return Err(CgroupError::Unsupported {
                        field: "memory.swap",
                        what: "swap accounting (memory.swap.max)".into(),
                    });
                }
                write(&f, &v)?;
            }
            if let Some(r) = m.reservation() {
                write(&ctl.file("memory.low"), &max(r))?;
            }
            // cgroup v2 has neither swappiness nor an OOM-killer switch: ignored.
        }
    }
    Ok(())
}

/// cpu.shares (2..=262144) to cpu.weight (1..=10000), linearly.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio.weight (10..=1000) to io.weight (1..=10000), linearly.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + ((w - 10) * 9999) / 990
}

fn cpu(cg: &Cgroup, c: &LinuxCpu) -> Result<(), CgroupError> {
    if c.cpus().is_some() || c.mems().is_some() {
        let ctl = need(
            cg.ctl("cpuset", "cpuset"),
            "cpu.cpus",
            "the cpuset controller",
        )?;
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(&ctl.file("cpuset.cpus"), cpus)?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            write(&ctl.file("cpuset.mems"), mems)?;
        }
    }
    let any = c.shares().is_some_and(|s| s != 0)
        || c.quota().is_some_and(|q| q != 0)
        || c.period().is_some_and(|p| p != 0)
        || c.realtime_runtime().is_some_and(|r| r != 0)
        || c.realtime_period().is_some_and(|p| p != 0)
        || c.idle().is_some();
    if !any {
        return Ok(());
    }
    let ctl = need(cg.ctl("cpu", "cpu"), "cpu", "the cpu controller")?;
    match ctl {
        Ctl::V1(_) => {
            if let Some(s) = c.shares().filter(|&s| s != 0) {
                write(&ctl.file("cpu.shares"), &s.to_string())?;
            }
            if let Some(p) = c.period().filter(|&p| p != 0) {
                write(&ctl.file("cpu.cfs_period_us"), &p.to_string())?;
            }
            if let Some(q) = c.quota().filter(|&q| q != 0) {
                let q = if q < 0 { -1 } else { q };
                write(&ctl.file("cpu.cfs_quota_us"), &q.to_string())?;
            }
            let rt = c.realtime_runtime().is_some_and(|r| r != 0)
                || c.realtime_period().is_some_and(|p| p != 0);
            if rt && !ctl.file("cpu.rt_runtime_us").exists() {
                return Err(CgroupError::Unsupported {
                    field: "cpu.realtimeRuntime",
                    what: "realtime group scheduling (cpu.rt_runtime_us)".into(),
                });
            }
            if let Some(p) = c.realtime_period().filter(|&p| p != 0) {
                write(&ctl.file("cpu.rt_period_us"), &p.to_string())?;
            }
            if let Some(r) = c.realtime_runtime().filter(|&r| r != 0) {
                write(&ctl.file("cpu.rt_runtime_us"), &r.to_string())?;
            }
            if let Some(i) = c.idle() {
                let f = ctl.file("cpu.idle");
                if f.exists() {
                    write(&f, &i.to_string())?;
                }
            }
        }
        Ctl::V2(_) => {
            if let Some(s) = c.shares().filter(|&s| s != 0) {
                write(&ctl.file("cpu.weight"), &shares_to_weight(s).to_string())?;
            }
            if c.quota().is_some_and(|q| q != 0) || c.period().is_some_and(|p| p != 0) {
                let f = ctl.file("cpu.max");
                let cur = read_opt(&f)?.unwrap_or_default();
                let mut it = cur.split_whitespace();
                let (cur_q, cur_p) = (
                    it.next().unwrap_or("max").to_string(),
                    it.next().unwrap_or("100000").to_string(),
                );
                let q = match c.quota().filter(|&q| q != 0) {
                    Some(q) if q < 0 => "max".to_string(),
                    Some(q) => q.to_string(),
                    None => cur_q,
                };
                let p = c
                    .period()
                    .filter(|&p| p != 0)
                    .map_or(cur_p, |p| p.to_string());
                write(&f, &format!("{q} {p}"))?;
            }
            if c.realtime_runtime().is_some_and(|r| r != 0)
                || c.realtime_period().is_some_and(|p| p != 0)
            {
                return Err(CgroupError::Unsupported {
                    field: "cpu.realtimeRuntime",
                    what: "realtime scheduling on cgroup v2".into(),
                });
            }
            if let Some(i) = c.idle() {
                write(&ctl.file("cpu.idle"), &i.to_string())?;
            }
        }
    }
    Ok(())
}

fn block_io(cg: &Cgroup, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let empty = Vec::new();
    let wd = b.weight_device().as_ref().unwrap_or(&empty);
    let tvec = Vec::new();
    let throttles: [(&[LinuxThrottleDevice], &str, &str); 4] = [
        (
            b.throttle_read_bps_device().as_deref().unwrap_or(&tvec),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            b.throttle_write_bps_device().as_deref().unwrap_or(&tvec),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            b.throttle_read_iops_device().as_deref().unwrap_or(&tvec),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            b.throttle_write_iops_device().as_deref().unwrap_or(&tvec),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    let weight = b.weight().filter(|&w| w != 0);
    if weight.is_some_and(|w| !(10..=1000).contains(&w)) {
        return Err(invalid("blockIO.weight", "must be between 10 and 1000"));
    }
    let nothing = weight.is_none()
        && b.leaf_weight().is_none()
        && wd.is_empty()
        && throttles.iter().all(|t| t.0.is_empty());
    if nothing {
        return Ok(());
    }
    let ctl = need(cg.ctl("blkio", "io"), "blockIO", "the blkio/io controller")?;
    match ctl {
        Ctl::V1(_) => {
            // CFQ's blkio.weight, or BFQ's blkio.bfq.weight on blk-mq kernels.
            let wfile = ["blkio.weight", "blkio.bfq.weight"]
                .into_iter()
                .map(|f| ctl.file(f))
                .find(|f| f.exists());
            let wdfile = ["blkio.weight_device", "blkio.bfq.weight_device"]
                .into_iter()
                .map(|f| ctl.file(f))
                .find(|f| f.exists());
            if let Some(w) = weight {
                let f = wfile.as_ref().ok_or_else(|| CgroupError::Unsupported {
                    field: "blockIO.weight",
                    what: "a proportional I/O scheduler (blkio.weight or blkio.bfq.weight)".into(),
                })?;
                write(f, &w.to_string())?;
            }
            if let Some(lw) = b.leaf_weight() {
                let f = ctl.file("blkio.leaf_weight");
                if f.exists() {
                    write(&f, &lw.to_string())?;
                }
            }
            for d in wd {
                if let Some(w) = d.weight() {
                    let f = wdfile.as_ref().ok_or_else(|| CgroupError::Unsupported {
                        field: "blockIO.weightDevice",
                        what: "a proportional I/O scheduler (blkio.weight_device)".into(),
                    })?;
                    write(f, &format!("{}:{} {}", d.major(), d.minor(), w))?;
                }
            }
            for (list, file, _) in throttles {
                for t in list {
                    write(
                        &ctl.file(file),
                        &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                    )?;
                }
            }
        }
        Ctl::V2(_) => {
            let bfq = ctl.file("io.bfq.weight");
            let (wfile, conv): (_, fn(u16) -> u64) = if bfq.exists() {
                (bfq, u64::from)
            } else {
                (ctl.file("io.weight"), blkio_to_io_weight)
            };
            if let Some(w) = weight {
                write(&wfile, &format!("default {}", conv(w)))?;
            }
            for d in wd {
                if let Some(w) = d.weight() {
                    write(&wfile, &format!("{}:{} {}", d.major(), d.minor(), conv(w)))?;
                }
            }
            let mut per_dev: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
            for (list, _, key) in throttles {
                for t in list {
                    per_dev
                        .entry((t.major(), t.minor()))
                        .or_default()
                        .push(format!("{key}={}", t.rate()));
                }
            }
            for ((maj, min), kv) in per_dev {
                write(
                    &ctl.file("io.max"),
                    &format!("{maj}:{min} {}", kv.join(" ")),
                )?;
            }
        }
    }
    Ok(())
}

fn hugepages(cg: &Cgroup, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    if limits.is_empty() {
        return Ok(());
    }
    let ctl = need(
        cg.ctl("hugetlb", "hugetlb"),
        "hugepageLimits",
        "the hugetlb controller",
    )?;
    for h in limits {
        let size = h.page_size();
        if size.is_empty() || !size.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "hugepageLimits.pageSize",
                format!("{size:?} is not a page size"),
            ));
        }
        let (file, v) = match ctl {
            Ctl::V1(_) => (
                format!("hugetlb.{size}.limit_in_bytes"),
                h.limit().to_string(),
            ),
            Ctl::V2(_) => (
                format!("hugetlb.{size}.max"),
                if h.limit() < 0 {
                    "max".into()
                } else {
                    h.limit().to_string()
                },
            ),
        };
        let f = ctl.file(&file);
        if !f.exists() {
            return Err(CgroupError::Unsupported {
                field: "hugepageLimits.pageSize",
                what: format!("huge page size {size}"),
            });
        }
        write(&f, &v)?;
    }
    Ok(())
}

fn network(cg: &Cgroup, n: &LinuxNetwork) -> Result<(), CgroupError> {
    // Only v1 has net_cls and net_prio; skipped when the host does not mount them.
    if let (Some(id), Some(d)) = (n.class_id(), cg.v1_dir("net_cls")) {
        write(&d.join("net_cls.classid"), &id.to_string())?;
    }
    if let (Some(ps), Some(d)) = (n.priorities(), cg.v1_dir("net_prio")) {
        for p in ps {
            write(
                &d.join("net_prio.ifpriomap"),
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    Ok(())
}

fn unified(cg: &Cgroup, u: &std::collections::HashMap<String, String>) -> Result<(), CgroupError> {
    if u.is_empty() {
        return Ok(());
    }
    let Some(dir) = cg.v2_dir() else {
        return Err(CgroupError::Unsupported {
            field: "unified",
            what: "a cgroup2 hierarchy".into(),
        });
    };
    let mut keys: Vec<_> = u.keys().collect();
    keys.sort();
    for k in keys {
        if k.is_empty() || k.contains('/') || k.starts_with('.') {
            return Err(invalid(
                "unified",
                format!("{k:?} is not a cgroup file name"),
            ));
        }
        let f = dir.join(k);
        if !f.exists() {
            return Err(CgroupError::Unsupported {
                field: "unified",
                what: format!("cgroup file {k}"),
            });
        }
        write(&f, &u[k])?;
    }
    Ok(())
}
