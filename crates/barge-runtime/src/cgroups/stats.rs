//! Usage figures read back from the container's cgroup, v1 or v2 per controller, in one
//! typed struct ([`CgroupStats`]) for `events --stats` and the engine's `stats`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fs::{keyed, parse_u64, read_opt, read_u64_opt};
use super::manager::{Cgroup, Ctl};
use super::CgroupError;

/// Everything read back from a container's cgroup. Figures a host cannot provide are 0 or
/// empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupStats {
    /// CPU time and throttling.
    pub cpu: CpuStats,
    /// Memory and swap.
    pub memory: MemoryStats,
    /// Processes.
    pub pids: PidsStats,
    /// Block I/O.
    pub blkio: BlkioStats,
}

/// CPU figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Total CPU time of every task, nanoseconds.
    pub usage_total_ns: u64,
    /// CPU time per CPU, nanoseconds (v1 cpuacct only; empty on v2).
    pub usage_per_cpu_ns: Vec<u64>,
    /// Time in user mode, nanoseconds.
    pub usage_user_ns: u64,
    /// Time in kernel mode, nanoseconds.
    pub usage_system_ns: u64,
    /// Enforcement periods that elapsed (with a quota set).
    pub throttling_periods: u64,
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Total time throttled, nanoseconds.
    pub throttled_time_ns: u64,
}

/// Memory figures, bytes unless said otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Memory in use (v1 memory.usage_in_bytes, v2 memory.current).
    pub usage: u64,
    /// The highest usage seen (v1 memory.max_usage_in_bytes, v2 memory.peak where present).
    pub max_usage: u64,
    /// The limit; `u64::MAX` (or the kernel's huge v1 value) when unlimited.
    pub limit: u64,
    /// Page cache (v1 memory.stat `total_cache`, v2 memory.stat `file`).
    pub cache: u64,
    /// Times the limit was hit (v1 memory.failcnt; v2 memory.events `max`).
    pub failcnt: u64,
    /// Processes killed by the OOM killer (v1 memory.oom_control `oom_kill`, v2
    /// memory.events `oom_kill`).
    pub oom_kill: u64,
    /// Swap in use (v1 memsw usage minus usage, v2 memory.swap.current).
    pub swap_usage: u64,
    /// Swap limit (v1 memory+swap limit, v2 memory.swap.max).
    pub swap_limit: u64,
    /// The raw memory.stat entries.
    pub stat: std::collections::BTreeMap<String, u64>,
}

/// Process figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    /// Processes (tasks) in the cgroup.
    pub current: u64,
    /// The limit; 0 when unlimited.
    pub limit: u64,
}

/// One block-I/O figure for one device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    /// Device major.
    pub major: u64,
    /// Device minor.
    pub minor: u64,
    /// `Read`, `Write`, `Sync`, `Async`, `Discard` or `Total` as the kernel names it.
    pub op: String,
    /// The figure.
    pub value: u64,
}

/// Block I/O figures per device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioStats {
    /// Bytes transferred.
    pub io_service_bytes: Vec<BlkioEntry>,
    /// Operations done.
    pub io_serviced: Vec<BlkioEntry>,
}

/// Reads every figure the host offers for `cg`.
pub(crate) fn read(cg: &Cgroup) -> Result<CgroupStats, CgroupError> {
    Ok(CgroupStats {
        cpu: cpu(cg)?,
        memory: memory(cg)?,
        pids: pids(cg)?,
        blkio: blkio(cg)?,
    })
}

/// How many processes the OOM killer killed in `cg`. v1 kernels without the `oom_kill`
/// counter in memory.oom_control fall back to memory.failcnt with `under_oom`.
pub(crate) fn oom_kills(cg: &Cgroup) -> Result<u64, CgroupError> {
    match cg.ctl("memory", "memory") {
        Some(c @ Ctl::V1(_)) => {
            let oc = read_opt(&c.file("memory.oom_control"))?.unwrap_or_default();
            match keyed(&oc, "oom_kill") {
                Some(n) => Ok(n),
                None => Ok(u64::from(keyed(&oc, "under_oom") == Some(1))
                    * read_u64_opt(&c.file("memory.failcnt"))?),
            }
        }
        Some(c @ Ctl::V2(_)) => {
            let ev = read_opt(&c.file("memory.events"))?.unwrap_or_default();
            Ok(keyed(&ev, "oom_kill").unwrap_or(0))
        }
        None => Ok(0),
    }
}

fn cpu(cg: &Cgroup) -> Result<CpuStats, CgroupError> {
    let mut s = CpuStats::default();
    if let Some(d) = cg.v1_dir("cpuacct") {
        s.usage_total_ns = read_u64_opt(&d.join("cpuacct.usage"))?;
        let f = d.join("cpuacct.usage_percpu");
        if let Some(t) = read_opt(&f)? {
            s.usage_per_cpu_ns = t
                .split_whitespace()
                .map(|v| parse_u64(&f, v))
                .collect::<Result<_, _>>()?;
        }
        let st = read_opt(&d.join("cpuacct.stat"))?.unwrap_or_default();
        let ns_per_tick = 1_000_000_000 / clock_ticks();
        s.usage_user_ns = keyed(&st, "user").unwrap_or(0) * ns_per_tick;
        s.usage_system_ns = keyed(&st, "system").unwrap_or(0) * ns_per_tick;
    } else if let Some(d) = cg.v2_dir() {
        // cpu.stat's usage lines are there even without the cpu controller.
        let st = read_opt(&d.join("cpu.stat"))?.unwrap_or_default();
        s.usage_total_ns = keyed(&st, "usage_usec").unwrap_or(0) * 1000;
        s.usage_user_ns = keyed(&st, "user_usec").unwrap_or(0) * 1000;
        s.usage_system_ns = keyed(&st, "system_usec").unwrap_or(0) * 1000;
    }
    match cg.ctl("cpu", "cpu") {
        Some(c @ Ctl::V1(_)) => {
            let st = read_opt(&c.file("cpu.stat"))?.unwrap_or_default();
            s.throttling_periods = keyed(&st, "nr_periods").unwrap_or(0);
            s.throttled_periods = keyed(&st, "nr_throttled").unwrap_or(0);
            s.throttled_time_ns = keyed(&st, "throttled_time").unwrap_or(0);
        }
        Some(c @ Ctl::V2(_)) => {
            let st = read_opt(&c.file("cpu.stat"))?.unwrap_or_default();
            s.throttling_periods = keyed(&st, "nr_periods").unwrap_or(0);
            s.throttled_periods = keyed(&st, "nr_throttled").unwrap_or(0);
            s.throttled_time_ns = keyed(&st, "throttled_usec").unwrap_or(0) * 1000;
        }
        None => {}
    }
    Ok(s)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn stat_map(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

fn memory(cg: &Cgroup) -> Result<MemoryStats, CgroupError> {
    let mut m = MemoryStats::default();
    match cg.ctl("memory", "memory") {
        Some(c @ Ctl::V1(_)) => {
            m.usage = read_u64_opt(&c.file("memory.usage_in_bytes"))?;
            m.max_usage = read_u64_opt(&c.file("memory.max_usage_in_bytes"))?;
            m.limit = read_u64_opt(&c.file("memory.limit_in_bytes"))?;
            m.failcnt = read_u64_opt(&c.file("memory.failcnt"))?;
            m.stat = stat_map(&read_opt(&c.file("memory.stat"))?.unwrap_or_default());
            m.cache = m
                .stat
                .get("total_cache")
                .or_else(|| m.stat.get("cache"))
                .copied()
                .unwrap_or(0);
            let memsw = read_u64_opt(&c.file("memory.memsw.usage_in_bytes"))?;
            m.swap_usage = memsw.saturating_sub(m.usage);
            m.swap_limit = read_u64_opt(&c.file("memory.memsw.limit_in_bytes"))?;
        }
        Some(c @ Ctl::V2(_)) => {
            m.usage = read_u64_opt(&c.file("memory.current"))?;
            m.max_usage = read_u64_opt(&c.file("memory.peak"))?;
            m.limit = read_u64_opt(&c.file("memory.max"))?;
            let ev = read_opt(&c.file("memory.events"))?.unwrap_or_default();
            m.failcnt = keyed(&ev, "max").unwrap_or(0);
            m.stat = stat_map(&read_opt(&c.file("memory.stat"))?.unwrap_or_default());
            m.cache = m.stat.get("file").copied().unwrap_or(0);
            m.swap_usage = read_u64_opt(&c.file("memory.swap.current"))?;
            m.swap_limit = read_u64_opt(&c.file("memory.swap.max"))?;
        }
        None => return Ok(m),
    }
    m.oom_kill = oom_kills(cg)?;
    Ok(m)
}

fn pids(cg: &Cgroup) -> Result<PidsStats, CgroupError> {
    let Some(c) = cg.ctl("pids", "pids") else {
        return Ok(PidsStats::default());
    };
    let limit = read_u64_opt(&c.file("pids.max"))?;
    Ok(PidsStats {
        current: read_u64_opt(&c.file("pids.current"))?,
        limit: if limit == u64::MAX { 0 } else { limit },
    })
}

/// v1 `maj:min Op value` lines (a `Total` line without a device is skipped).
fn v1_entries(file: &Path) -> Result<Vec<BlkioEntry>, CgroupError> {
    let Some(t) = read_opt(file)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for l in t.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [dev, op, v] = f[..] else { continue };
        let Some((maj, min)) = dev.split_once(':') else {
            continue;
        };
        out.push(BlkioEntry {
            major: parse_u64(file, maj)?,
            minor: parse_u64(file, min)?,
            op: op.to_string(),
            value: parse_u64(file, v)?,
        });
    }
    Ok(out)
}

fn blkio(cg: &Cgroup) -> Result<BlkioStats, CgroupError> {
    let mut b = BlkioStats::default();
    match cg.ctl("blkio", "io") {
        Some(c @ Ctl::V1(_)) => {
            // The throttle files count every I/O whatever the scheduler; the recursive
            // ones include child cgroups.
            let pick = |names: &[&str]| {
                names
                    .iter()
                    .map(|n| c.file(n))
                    .find(|f| f.exists())
                    .unwrap_or_else(|| c.file(names[0]))
            };
            b.io_service_bytes = v1_entries(&pick(&[
                "blkio.throttle.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes",
            ]))?;
            b.io_serviced = v1_entries(&pick(&[
                "blkio.throttle.io_serviced_recursive",
                "blkio.throttle.io_serviced",
            ]))?;
        }
        Some(c @ Ctl::V2(_)) => {
            let f = c.file("io.stat");
            for l in read_opt(&f)?.unwrap_or_default().lines() {
                let mut it = l.split_whitespace();
                let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
                    continue;
                };
                let (major, minor) = (parse_u64(&f, maj)?, parse_u64(&f, min)?);
                for kv in it {
                    let Some((k, v)) = kv.split_once('=') else {
                        continue;
                    };
                    let (list, op) = match k {
                        "rbytes" => (&mut b.io_service_bytes, "Read"),
                        "wbytes" => (&mut b.io_service_bytes, "Write"),
                        "dbytes" => (&mut b.io_service_bytes, "Discard"),
                        "rios" => (&mut b.io_serviced, "Read"),
                        "wios" => (&mut b.io_serviced, "Write"),
                        "dios" => (&mut b.io_serviced, "Discard"),
                        _ => continue,
                    };
                    list.push(BlkioEntry {
                        major,
                        minor,
                        op: op.to_string(),
                        value: parse_u64(&f, v)?,
                    });
                }
            }
        }
        None => {}
    }
    Ok(b)
}
