//! LIFECYCLE STAND-IN, to be replaced by the cgroups branch: a minimal cgroupfs manager so
//! the lifecycle works end to end. It handles v1, hybrid and v2 mounts found in
//! /proc/self/mounts, creates the container's directory in each hierarchy, applies cpuset,
//! memory, pids and cpu limits, moves processes, freezes (v1 freezer or v2 cgroup.freeze),
//! lists pids and removes the directories. No device rules, no stats, no systemd.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use super::{CgroupError, CgroupManager, CgroupStats, FreezerState};

#[derive(Debug)]
struct Hierarchy {
    /// Name under /sys/fs/cgroup (`memory`, `unified`, `` for pure v2).
    name: String,
    /// The container's directory.
    dir: PathBuf,
    v2: bool,
}

#[derive(Debug)]
struct Fallback {
    hier: Vec<Hierarchy>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write(file: PathBuf, value: &str) -> Result<(), CgroupError> {
    std::fs::write(&file, value).map_err(|source| CgroupError::Write {
        file,
        value: value.to_string(),
        source,
    })
}

/// The relative cgroup path for the spec's `cgroupsPath`.
fn rel_path(cgroups_path: Option<&str>, id: &str) -> PathBuf {
    match cgroups_path {
        None | Some("") => PathBuf::from(format!("barge-runc/{id}")),
        Some(p) if !p.starts_with('/') && p.matches(':').count() == 2 => {
            // systemd form slice:prefix:name, mapped onto cgroupfs.
            let mut it = p.split(':');
            let (slice, prefix, name) = (
                it.next().unwrap_or(""),
                it.next().unwrap_or(""),
                it.next().unwrap_or(id),
            );
            let slice = if slice.is_empty() {
                "system.slice"
            } else {
                slice
            };
            PathBuf::from(format!("{slice}/{prefix}-{name}.scope"))
        }
        Some(p) => PathBuf::from(p.trim_start_matches('/')),
    }
}

pub(super) fn manager(
    cgroups_path: Option<&str>,
    id: &str,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let rel = rel_path(cgroups_path, id);
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(CgroupError::Io {
            path: rel,
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").map_err(io(Path::new("/proc/self/mounts")))?;
    let mut hier = Vec::new();
    for l in mounts.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() < 3 || (f[2] != "cgroup" && f[2] != "cgroup2") {
            continue;
        }
        let mp = Path::new(f[1]);
        let name = mp
            .strip_prefix("/sys/fs/cgroup")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !mp.starts_with("/sys/fs/cgroup") {
            continue;
        }
        hier.push(Hierarchy {
            name,
            dir: mp.join(&rel),
            v2: f[2] == "cgroup2",
        });
    }
    Ok(Box::new(Fallback { hier }))
}

impl Fallback {
    fn find(&self, name: &str) -> Option<&Hierarchy> {
        self.hier.iter().find(|h| h.name == name)
    }
    fn pure_v2(&self) -> Option<&Hierarchy> {
        self.hier.iter().find(|h| h.v2 && h.name.is_empty())
    }
    /// The file `v1` in hierarchy `ctl`, or `v2` in a pure v2 host.
    fn file(&self, ctl: &str, v1: &str, v2: &str) -> Option<PathBuf> {
        if let Some(h) = self.pure_v2() {
            return Some(h.dir.join(v2));
        }
        self.find(ctl).map(|h| h.dir.join(v1))
    }
}

/// mkdir -p that copies cpuset.cpus/mems from the parent into each new v1 cpuset level
/// (an empty cpuset cannot take tasks).
fn make_dir(h: &Hierarchy) -> Result<(), CgroupError> {
    let mut missing = Vec::new();
    let mut d = h.dir.as_path();
    while !d.exists() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    for m in missing.iter().rev() {
        match std::fs::create_dir(m) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(m)(e)),
        }
        if h.name == "cpuset" {
            if let Some(parent) = m.parent() {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let v = std::fs::read_to_string(parent.join(f)).map_err(io(&parent.join(f)))?;
                    write(m.join(f), v.trim())?;
                }
            }
        }
    }
    Ok(())
}

impl CgroupManager for Fallback {
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let r = (|| {
            for h in &self.hier {
                make_dir(h)?;
            }
            if let Some(res) = resources {
                self.apply(res)?;
            }
            Ok(())
        })();
        if r.is_err() {
            let _ = self.destroy();
        }
        r
    }

    fn apply(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(c) = res.cpu() {
            if let (Some(cpus), Some(f)) =
                (c.cpus(), self.file("cpuset", "cpuset.cpus", "cpuset.cpus"))
            {
                write(f, cpus)?;
            }
            if let (Some(mems), Some(f)) =
                (c.mems(), self.file("cpuset", "cpuset.mems", "cpuset.mems"))
            {
                write(f, mems)?;
            }
            if self.pure_v2().is_none() {
                if let (Some(v), Some(h)) = (c.shares(), self.find("cpu")) {
                    write(h.dir.join("cpu.shares"), &v.to_string())?;
                }
                if let (Some(v), Some(h)) = (c.period(), self.find("cpu")) {
                    write(h.dir.join("cpu.cfs_period_us"), &v.to_string())?;
                }
                if let (Some(v), Some(h)) = (c.quota(), self.find("cpu")) {
                    write(h.dir.join("cpu.cfs_quota_us"), &v.to_string())?;
                }
            } else if let (Some(q), Some(h)) = (c.quota(), self.pure_v2()) {
                let p = c.period().unwrap_or(100_000);
                let q = if q < 0 {
                    "max".to_string()
                } else {
                    q.to_string()
                };
                write(h.dir.join("cpu.max"), &format!("{q} {p}"))?;
            }
        }
        if let Some(m) = res.memory() {
            if let Some(l) = m.limit() {
                let v = if l < 0 {
                    "max".to_string()
                } else {
                    l.to_string()
                };
                if let Some(h) = self.pure_v2() {
                    write(h.dir.join("memory.max"), &v)?;
                } else if let Some(h) = self.find("memory") {
                    write(
                        h.dir.join("memory.limit_in_bytes"),
                        if l < 0 { "-1" } else { &v },
                    )?;
                }
            }
        }
        if let Some(p) = res.pids() {
            let l = p.limit();
            let v = if l <= 0 {
                "max".to_string()
            } else {
                l.to_string()
            };
            if let Some(f) = self.file("pids", "pids.max", "pids.max") {
                write(f, &v)?;
            }
        }
        Ok(())
    }

    fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        let p = pid.to_string();
        for h in &self.hier {
            write(h.dir.join("cgroup.procs"), &p)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        match self.find("freezer") {
            Some(h) => write(h.dir.join("freezer.state"), "FROZEN")?,
            None => match self.pure_v2() {
                Some(h) => write(h.dir.join("cgroup.freeze"), "1")?,
                None => return Ok(()),
            },
        }
        for _ in 0..1000 {
            if self.freezer_state()? == FreezerState::Frozen {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        match self.find("freezer") {
            Some(h) => write(h.dir.join("freezer.state"), "THAWED"),
            None => match self.pure_v2() {
                Some(h) => write(h.dir.join("cgroup.freeze"), "0"),
                None => Ok(()),
            },
        }
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        if let Some(h) = self.find("freezer") {
            let f = h.dir.join("freezer.state");
            let s = std::fs::read_to_string(&f).map_err(io(&f))?;
            return Ok(match s.trim() {
                "FROZEN" => FreezerState::Frozen,
                "FREEZING" => FreezerState::Freezing,
                _ => FreezerState::Thawed,
            });
        }
        if let Some(h) = self.pure_v2() {
            let f = h.dir.join("cgroup.events");
            let s = std::fs::read_to_string(&f).map_err(io(&f))?;
            return Ok(if s.lines().any(|l| l == "frozen 1") {
                FreezerState::Frozen
            } else {
                FreezerState::Thawed
            });
        }
        Ok(FreezerState::Thawed)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let h = self
            .pure_v2()
            .or_else(|| self.find("pids"))
            .or_else(|| self.find("freezer"))
            .or_else(|| self.hier.first());
        let Some(h) = h else { return Ok(Vec::new()) };
        let f = h.dir.join("cgroup.procs");
        let s = std::fs::read_to_string(&f).map_err(io(&f))?;
        Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    fn stats(&self) -> Result<CgroupStats, CgroupError> {
        Ok(CgroupStats::default())
    }

    fn paths(&self) -> Vec<(String, PathBuf)> {
        self.hier
            .iter()
            .map(|h| (h.name.clone(), h.dir.clone()))
            .collect()
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let mut first = None;
        for h in &self.hier {
            match std::fs::remove_dir(&h.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    first.get_or_insert(CgroupError::Io {
                        path: h.dir.clone(),
                        source: e,
                    });
                }
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
