//! Container stats in Docker's JSON shape, read straight from the container's cgroup files and
//! its network namespace (`/proc/<pid>/net/dev`) — no process is spawned; and `update`'s
//! writes of new limits into a running container's cgroup.

use std::sync::OnceLock;

use barge_runtime::cgroups::{CgroupManager, CgroupStats, Layout};
use serde_json::{json, Map, Value};

use crate::model::Container;
use crate::{Error, Result};

fn layout() -> Result<&'static Layout> {
    static L: OnceLock<Layout> = OnceLock::new();
    if let Some(l) = L.get() {
        return Ok(l);
    }
    let l = Layout::detect().map_err(|e| Error::Internal(e.to_string()))?;
    Ok(L.get_or_init(|| l))
}

/// The container's cgroups path (the spec's `linux.cgroupsPath`).
pub fn cgroups_path(id: &str) -> String {
    format!("/barge/{id}")
}

/// The cgroup of container `id`.
pub fn cgroup(id: &str) -> Result<barge_runtime::cgroups::Cgroup> {
    barge_runtime::cgroups::Cgroup::new(layout()?, Some(&cgroups_path(id)), id)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// One sample: the cgroup figures, the host's CPU time and the network counters.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// When it was taken (RFC 3339).
    pub read: String,
    /// cgroup figures.
    pub cg: CgroupStats,
    /// The host's total CPU time in ns (/proc/stat).
    pub system_ns: u64,
    /// Per interface: rx bytes, rx packets, rx errors, rx dropped, tx bytes, tx packets, tx
    /// errors, tx dropped.
    pub net: Vec<(String, [u64; 8])>,
}

/// The host's CPU time in ns, as Docker's `system_cpu_usage`.
pub fn system_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    s.lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|x| x.parse::<u64>().ok())
                .sum::<u64>()
                * (1_000_000_000 / hz)
        })
        .unwrap_or(0)
}

/// Reads `/proc/<pid>/net/dev` (the container's namespace), without `lo`.
pub fn net_dev(pid: i32) -> Vec<(String, [u64; 8])> {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return vec![];
    };
    s.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if f.len() < 12 {
                return None;
            }
            Some((
                name.to_string(),
                [f[0], f[1], f[2], f[3], f[8], f[9], f[10], f[11]],
            ))
        })
        .collect()
}

/// Takes one sample of a running container.
pub fn sample(c: &Container) -> Result<Sample> {
    let cg = cgroup(&c.id)?
        .stats()
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Sample {
        read: crate::util::now_rfc3339(),
        cg,
        system_ns: system_cpu_ns(),
        net: if c.host_str("NetworkMode") == "host" {
            vec![]
        } else {
            net_dev(c.state.pid)
        },
    })
}

/// An earlier sample serves as `precpu_stats` only if at least this old: `/proc/stat` counts
/// in clock ticks (10 ms), so a closer pair gives a system delta of zero or a few ticks and a
/// meaningless CPU %.
pub const PRE_MIN_AGE: std::time::Duration = std::time::Duration::from_millis(100);
/// ...and at most this old (older ones average the CPU % over too long a window).
pub const PRE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30);

/// The last two samples of one run of a container, kept by the daemon so a `stream=false`
/// read gets a real `precpu_stats` without sleeping (Docker's daemon waits for a second
/// sample, about a second).
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The run they belong to (`State.StartedAt`): after a restart the cgroup counters begin
    /// again, so samples of an earlier run are never a `precpu`.
    pub started_at: String,
    older: Option<(std::time::Instant, Sample)>,
    latest: Option<(std::time::Instant, Sample)>,
}

impl History {
    /// An empty history of the run that started at `started_at`.
    pub fn new(started_at: &str) -> History {
        History {
            started_at: started_at.to_string(),
            ..History::default()
        }
    }

    /// The newest sample aged between [`PRE_MIN_AGE`] and [`PRE_MAX_AGE`] at `now`.
    pub fn pre(&self, now: std::time::Instant) -> Option<&Sample> {
        [&self.latest, &self.older]
            .into_iter()
            .flatten()
            .find(|(t, _)| {
                let age = now.saturating_duration_since(*t);
                (PRE_MIN_AGE..=PRE_MAX_AGE).contains(&age)
            })
            .map(|(_, s)| s)
    }

    /// Records a sample taken at `now`. The latest one moves back to `older` only once it is
    /// old enough to be a `precpu`, so a burst of reads never pushes out the useful sample.
    pub fn push(&mut self, now: std::time::Instant, s: Sample) {
        match self.latest.take() {
            Some((t, l)) if now.saturating_duration_since(t) >= PRE_MIN_AGE => {
                self.older = Some((t, l));
            }
            _ => {}
        }
        self.latest = Some((now, s));
    }
}

fn online_cpus() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.max(1) as u64
}

fn cpu_json(s: Option<&Sample>) -> Value {
    let Some(s) = s else {
        return json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}});
    };
    let c = &s.cg.cpu;
    let mut usage = json!({"total_usage": c.usage_total_ns,
        "usage_in_kernelmode": c.usage_system_ns, "usage_in_usermode": c.usage_user_ns});
    if !c.usage_per_cpu_ns.is_empty() {
        usage["percpu_usage"] = json!(c.usage_per_cpu_ns);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": s.system_ns,
        "online_cpus": online_cpus(),
        "throttling_data": {"periods": c.throttling_periods,
            "throttled_periods": c.throttled_periods, "throttled_time": c.throttled_time_ns},
    })
}

/// Docker's stats JSON from the current sample and the previous one (for CPU %).
pub fn to_json(c: &Container, cur: &Sample, pre: Option<&Sample>) -> Value {
    let m = &cur.cg.memory;
    let mut mem = json!({"usage": m.usage, "max_usage": m.max_usage, "limit": m.limit,
        "failcnt": m.failcnt, "stats": m.stat});
    if m.limit == 0 || m.limit >= i64::MAX as u64 / 2 {
        // Unlimited: Docker reports the host's memory.
        mem["limit"] = json!(host_mem());
    }
    let blk = |v: &[barge_runtime::cgroups::stats::BlkioEntry]| -> Value {
        Value::Array(
            v.iter()
                .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}))
                .collect(),
        )
    };
    let b = &cur.cg.blkio;
    let mut nets = Map::new();
    for (n, f) in &cur.net {
        nets.insert(
            n.clone(),
            json!({"rx_bytes": f[0], "rx_packets": f[1], "rx_errors": f[2], "rx_dropped": f[3],
                "tx_bytes": f[4], "tx_packets": f[5], "tx_errors": f[6], "tx_dropped": f[7]}),
        );
    }
    let mut out = json!({
        "read": cur.read,
        "preread": pre.map(|p| p.read.clone()).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "name": format!("/{}", c.name),
        "id": c.id,
        "num_procs": 0,
        "pids_stats": {"current": cur.cg.pids.current},
        "cpu_stats": cpu_json(Some(cur)),
        "precpu_stats": cpu_json(pre),
        "memory_stats": mem,
        "blkio_stats": {"io_service_bytes_recursive": blk(&b.io_service_bytes),
            "io_serviced_recursive": blk(&b.io_serviced),
            "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null,
            "io_time_recursive": null, "sectors_recursive": null},
        "storage_stats": {},
    });
    if cur.cg.pids.limit > 0 && cur.cg.pids.limit < u64::MAX / 2 {
        out["pids_stats"]["limit"] = json!(cur.cg.pids.limit);
    }
    if c.host_str("NetworkMode") != "host" {
        out["networks"] = Value::Object(nets);
    }
    out
}

/// Docker's stats JSON for a container that is not running (all zero).
pub fn empty_json(c: &Container) -> Value {
    json!({
        "read": "0001-01-01T00:00:00Z", "preread": "0001-01-01T00:00:00Z",
        "name": format!("/{}", c.name), "id": c.id, "num_procs": 0,
        "pids_stats": {}, "cpu_stats": cpu_json(None), "precpu_stats": cpu_json(None),
        "memory_stats": {}, "blkio_stats": {"io_service_bytes_recursive": null, "io_serviced_recursive": null},
        "storage_stats": {},
    })
}

fn host_mem() -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Writes new limits (an `update` body, Docker's field names) into a running container's
/// cgroup. Returns the fields to merge into its `HostConfig`.
pub fn update_limits(c: &Container, body: &Value) -> Result<()> {
    let mut res = json!({});
    crate::limits::resources(body, &mut res, true)?;
    // Raising a memory limit above the swap limit (v1) needs the swap limit first.
    if let Some(m) = res.get_mut("memory") {
        if m.get("limit").is_some() && m.get("swap").is_none() {
            let cur_swap = c.host_i64("MemorySwap");
            if cur_swap > 0 {
                let lim = m["limit"].as_i64().unwrap_or(0);
                if lim > cur_swap {
                    m["swap"] = json!(lim.max(cur_swap));
                }
            } else if cur_swap == 0 {
                let lim = m["limit"].as_i64().unwrap_or(0);
                m["swap"] = json!(lim * 2);
            }
        }
    }
    let r: oci_spec::runtime::LinuxResources = serde_json::from_value(res)
        .map_err(|e| Error::BadRequest(format!("invalid resources: {e}")))?;
    cgroup(&c.id)?
        .apply(&r)
        .map_err(|e| Error::BadRequest(format!("Cannot update container {}: {e}", c.id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn at(ns: u64) -> Sample {
        let mut s = Sample::default();
        s.cg.cpu.usage_total_ns = ns;
        s
    }

    #[test]
    fn history_gives_a_pre_sample_old_enough_and_not_too_old() {
        let t0 = Instant::now();
        let mut h = History::new("run1");
        assert!(h.pre(t0).is_none());
        h.push(t0, at(1));
        // too fresh
        assert!(h.pre(t0 + Duration::from_millis(10)).is_none());
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(h.pre(t1).map(|s| s.cg.cpu.usage_total_ns), Some(1));
        h.push(t1, at(2));
        // right after a read, the one before it is the precpu, not the 1 ms old one
        let t2 = t1 + Duration::from_millis(1);
        assert_eq!(h.pre(t2).map(|s| s.cg.cpu.usage_total_ns), Some(1));
        // a burst of reads keeps the older sample
        h.push(t2, at(3));
        h.push(t2 + Duration::from_millis(2), at(4));
        let t3 = t2 + Duration::from_millis(3);
        assert_eq!(h.pre(t3).map(|s| s.cg.cpu.usage_total_ns), Some(1));
        // once the burst's last sample is old enough, it is the precpu
        let t4 = t2 + Duration::from_millis(200);
        assert_eq!(h.pre(t4).map(|s| s.cg.cpu.usage_total_ns), Some(4));
        // nothing older than PRE_MAX_AGE
        assert!(h.pre(t0 + Duration::from_secs(60)).is_none());
    }
}
