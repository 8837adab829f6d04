//! [`Cgroup`]: one container's cgroup across the host's hierarchies.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use super::fs::{self, read, read_opt, write};
use super::layout::{relative_path, Layout};
use super::{devices, resources, stats, CgroupError, CgroupManager, CgroupStats, FreezerState};

/// How long freezing and killing may take before giving up.
const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// The container's directory in one hierarchy.
#[derive(Debug, Clone)]
struct Dir {
    /// The hierarchy's name under /sys/fs/cgroup.
    name: String,
    /// The v1 controllers bound to it (empty for the cgroup2 tree).
    controllers: Vec<String>,
    /// The container's cgroup directory.
    path: PathBuf,
}

/// Where a controller's files for this cgroup are.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ctl<'a> {
    /// In this v1 directory.
    V1(&'a Path),
    /// In the cgroup2 directory.
    V2(&'a Path),
}

impl Ctl<'_> {
    /// The file `name` in the controller's directory.
    pub(crate) fn file(&self, name: &str) -> PathBuf {
        match self {
            Ctl::V1(d) | Ctl::V2(d) => d.join(name),
        }
    }
}

/// One container's cgroup on this host: a directory in each v1 hierarchy and in the
/// cgroup2 tree, at the same relative path.
#[derive(Debug, Clone)]
pub struct Cgroup {
    rel: PathBuf,
    v1: Vec<Dir>,
    v2: Option<Dir>,
    /// The controllers the cgroup2 tree offers.
    v2_controllers: Vec<String>,
}

impl Cgroup {
    /// The cgroup of container `id` at the spec's `cgroups_path` on `layout`. Nothing is made
    /// yet; an escaping or malformed path is refused here.
    pub fn new(
        layout: &Layout,
        cgroups_path: Option<&str>,
        id: &str,
    ) -> Result<Cgroup, CgroupError> {
        let rel = relative_path(cgroups_path, id)?;
        let v1 = layout
            .v1
            .iter()
            .map(|h| Dir {
                name: h.name.clone(),
                controllers: h.controllers.clone(),
                path: h.mountpoint.join(&rel),
            })
            .collect();
        let v2 = layout.unified.as_ref().map(|(name, mp)| Dir {
            name: name.clone(),
            controllers: Vec::new(),
            path: mp.join(&rel),
        });
        Ok(Cgroup {
            rel,
            v1,
            v2,
            v2_controllers: layout.v2_controllers(),
        })
    }

    /// The cgroup's path relative to each hierarchy root.
    pub fn relative(&self) -> &Path {
        &self.rel
    }

    /// The container's directory in the v1 hierarchy holding `controller`.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.path.as_path())
    }

    /// The container's directory in the cgroup2 tree.
    pub fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_ref().map(|d| d.path.as_path())
    }

    /// Where the controller (`v1` name, `v2` name) is: its v1 hierarchy, else the cgroup2
    /// tree if that offers it.
    pub(crate) fn ctl(&self, v1: &str, v2: &str) -> Option<Ctl<'_>> {
        if let Some(d) = self.v1_dir(v1) {
            return Some(Ctl::V1(d));
        }
        let d = self.v2_dir()?;
        self.v2_controllers
            .iter()
            .any(|c| c == v2)
            .then_some(Ctl::V2(d))
    }

    /// The directory whose `cgroup.procs` lists the container's processes.
    fn procs_dir(&self) -> Option<&Path> {
        self.v2_dir()
            .or_else(|| self.v1_dir("pids"))
            .or_else(|| self.v1_dir("freezer"))
            .or_else(|| self.v1.first().map(|d| d.path.as_path()))
    }

    /// Turns on every controller the cgroup2 tree offers in each level above the
    /// container's directory, so its files appear there. Refusals (a level with processes
    /// of its own) are left for the resource writes to report.
    fn enable_v2_controllers(&self, root: &Path) {
        if self.v2_controllers.is_empty() {
            return;
        }
        // The root and every directory between it and the container's own: `barge/<id>`
        // needs them on in the root and in `barge`.
        let parts: Vec<_> = self.rel.components().collect();
        let mut level = root.to_path_buf();
        for i in 0..parts.len() {
            if i > 0 {
                level.push(parts[i - 1]);
            }
            let file = level.join("cgroup.subtree_control");
            let on = read_opt(&file).ok().flatten().unwrap_or_default();
            for ctl in &self.v2_controllers {
                if !on.split_whitespace().any(|x| x == ctl) {
                    let _ = std::fs::write(&file, format!("+{ctl}"));
                }
            }
        }
    }

    fn make(&self) -> Result<(), CgroupError> {
        for d in &self.v1 {
            let cpuset = d.controllers.iter().any(|c| c == "cpuset");
            fs::make_dirs(&d.path, &|m: &Path| {
                // A new v1 cpuset is empty and cannot take tasks: copy the parent's.
                if cpuset {
                    if let Some(parent) = m.parent() {
                        for f in ["cpuset.cpus", "cpuset.mems"] {
                            if read(&m.join(f))?.trim().is_empty() {
                                write(&m.join(f), read(&parent.join(f))?.trim())?;
                            }
                        }
                    }
                }
                Ok(())
            })?;
        }
        if let Some(d) = &self.v2 {
            fs::make_dirs(&d.path, &|_: &Path| Ok(()))?;
            if let Some(root) = self.v2_root() {
                self.enable_v2_controllers(&root);
            }
        }
        Ok(())
    }

    /// The cgroup2 tree's root.
    fn v2_root(&self) -> Option<PathBuf> {
        let d = self.v2.as_ref()?;
        let mut root = d.path.clone();
        for _ in self.rel.components() {
            root.pop();
        }
        Some(root)
    }

    /// Kills every pid listed until the cgroup is empty.
    fn kill_each(&self) -> Result<(), CgroupError> {
        let t = Instant::now();
        loop {
            if self
                .freezer_state()
                .is_ok_and(|s| s != FreezerState::Thawed)
            {
                self.thaw()?;
            }
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            for pid in pids {
                // SAFETY: kill(2) with a pid listed in the container's cgroup; no memory
                // is shared with the callee.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if t.elapsed() > WAIT_LIMIT {
                return Err(self.timeout("killing every process"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn timeout(&self, what: &'static str) -> CgroupError {
        CgroupError::Timeout {
            path: self.procs_dir().unwrap_or(&self.rel).to_path_buf(),
            what,
        }
    }

    /// Waits until the freezer reports `want`; rewrites the request now and then (a task
    /// in an uninterruptible sleep can hold up v1 freezing).
    fn wait_freezer(
        &self,
        want: FreezerState,
        retry: &dyn Fn() -> Result<(), CgroupError>,
    ) -> Result<(), CgroupError> {
        let t = Instant::now();
        let mut nap = Duration::from_micros(100);
        let mut last_retry = Instant::now();
        loop {
            if self.freezer_state()? == want {
                return Ok(());
            }
            if t.elapsed() > WAIT_LIMIT {
                return Err(self.timeout("freezing"));
            }
            if last_retry.elapsed() > Duration::from_millis(100) {
                retry()?;
                last_retry = Instant::now();
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }
}

/// Every pid in `cgroup.procs` of `dir` and the cgroups below it.
fn procs_under(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    let Some(s) = read_opt(&dir.join("cgroup.procs"))? else {
        return Ok(());
    };
    out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                procs_under(&e.path(), out)?;
            }
        }
    }
    Ok(())
}

impl CgroupManager for Cgroup {
    fn create(&self, res: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let r = (|| {
            self.make()?;
            if let Some(res) = res {
                resources::apply(self, res)?;
            }
            let rules = res.and_then(|r| r.devices().as_deref()).unwrap_or(&[]);
            devices::apply(self, rules)
        })();
        if r.is_err() {
            let _ = self.destroy();
        }
        r
    }

    fn apply(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        resources::apply(self, res)?;
        if let Some(rules) = res.devices().as_deref().filter(|r| !r.is_empty()) {
            devices::apply(self, rules)?;
        }
        Ok(())
    }

    fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        let p = pid.to_string();
        for d in self.v1.iter().chain(self.v2.iter()) {
            write(&d.path.join("cgroup.procs"), &p)?;
        }
        Ok(())
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        let (file, value) = if let Some(d) = self.v1_dir("freezer") {
            (d.join("freezer.state"), "FROZEN")
        } else if let Some(d) = self.v2_dir() {
            (d.join("cgroup.freeze"), "1")
        } else {
            return Err(CgroupError::Unsupported {
                field: "freezer",
                what: "a freezer (v1 freezer or cgroup2 cgroup.freeze)".into(),
            });
        };
        write(&file, value)?;
        let r = self.wait_freezer(FreezerState::Frozen, &|| write(&file, value));
        if r.is_err() {
            let _ = self.thaw();
        }
        r
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        if let Some(d) = self.v1_dir("freezer") {
            write(&d.join("freezer.state"), "THAWED")?;
        } else if let Some(d) = self.v2_dir() {
            write(&d.join("cgroup.freeze"), "0")?;
        } else {
            return Ok(());
        }
        self.wait_freezer(FreezerState::Thawed, &|| Ok(()))
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        if let Some(d) = self.v1_dir("freezer") {
            let s = read(&d.join("freezer.state"))?;
            return Ok(match s.trim() {
                "FROZEN" => FreezerState::Frozen,
                "FREEZING" => FreezerState::Freezing,
                _ => FreezerState::Thawed,
            });
        }
        if let Some(d) = self.v2_dir() {
            let want = read_opt(&d.join("cgroup.freeze"))?.unwrap_or_default();
            let events = read(&d.join("cgroup.events"))?;
            let frozen = fs::keyed(&events, "frozen") == Some(1);
            return Ok(match (want.trim() == "1", frozen) {
                (_, true) => FreezerState::Frozen,
                (true, false) => FreezerState::Freezing,
                (false, false) => FreezerState::Thawed,
            });
        }
        Ok(FreezerState::Thawed)
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut out = Vec::new();
        if let Some(d) = self.procs_dir() {
            procs_under(d, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        if let Some(kill) = self.v2_dir().map(|d| d.join("cgroup.kill")) {
            if kill.exists() {
                write(&kill, "1")?;
                if self
                    .freezer_state()
                    .is_ok_and(|s| s != FreezerState::Thawed)
                {
                    self.thaw()?;
                }
            }
        }
        self.kill_each()
    }

    fn stats(&self) -> Result<CgroupStats, CgroupError> {
        stats::read(self)
    }

    fn oom_killed(&self) -> Result<bool, CgroupError> {
        stats::oom_kills(self).map(|n| n > 0)
    }

    fn paths(&self) -> Vec<(String, PathBuf)> {
        self.v1
            .iter()
            .chain(self.v2.iter())
            .map(|d| (d.name.clone(), d.path.clone()))
            .collect()
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let mut first = None;
        for d in self.v1.iter().chain(self.v2.iter()) {
            if let Err(e) = fs::remove_tree(&d.path) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
