//! The host's cgroup layout (which hierarchies are mounted where) and the mapping of the
//! spec's `linux.cgroupsPath` onto it.

use std::path::{Component, Path, PathBuf};

use super::fs::{io, read_opt};
use super::CgroupError;

/// Where cgroup hierarchies are expected.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The v1 controllers barge knows by name (others in mount options are ignored).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The kind of host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only v1 hierarchies.
    V1,
    /// v1 controllers plus a cgroup2 tree (usually at /sys/fs/cgroup/unified).
    Hybrid,
    /// One cgroup2 tree at /sys/fs/cgroup.
    V2,
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    /// Its name under /sys/fs/cgroup (`memory`, `cpu,cpuacct`, `systemd`).
    pub name: String,
    /// The controllers bound to it (`name=systemd` for a named hierarchy).
    pub controllers: Vec<String>,
    /// Its mount point.
    pub mountpoint: PathBuf,
}

/// The cgroup hierarchies of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The v1 hierarchies.
    pub v1: Vec<V1Hierarchy>,
    /// The cgroup2 mount point, if any, with its name under /sys/fs/cgroup (`` or `unified`).
    pub unified: Option<(String, PathBuf)>,
}

impl Layout {
    /// Reads the hierarchies mounted under /sys/fs/cgroup from /proc/self/mounts.
    pub fn detect() -> Result<Layout, CgroupError> {
        let p = Path::new("/proc/self/mounts");
        let mounts = std::fs::read_to_string(p).map_err(io(p))?;
        let l = Layout::from_mounts(&mounts);
        if l.v1.is_empty() && l.unified.is_none() {
            return Err(CgroupError::NoHierarchy);
        }
        Ok(l)
    }

    /// The layout described by a /proc/self/mounts text.
    pub fn from_mounts(mounts: &str) -> Layout {
        let mut l = Layout {
            v1: Vec::new(),
            unified: None,
        };
        for line in mounts.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() < 4 || (f[2] != "cgroup" && f[2] != "cgroup2") {
                continue;
            }
            let mp = PathBuf::from(f[1]);
            let Ok(name) = mp.strip_prefix(CGROUP_ROOT) else {
                continue;
            };
            let name = name.to_string_lossy().into_owned();
            if f[2] == "cgroup2" {
                if l.unified.is_none() {
                    l.unified = Some((name, mp));
                }
                continue;
            }
            let controllers: Vec<String> = f[3]
                .split(',')
                .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                .map(str::to_string)
                .collect();
            if controllers.is_empty() || l.v1.iter().any(|h| h.controllers == controllers) {
                continue;
            }
            l.v1.push(V1Hierarchy {
                name,
                controllers,
                mountpoint: mp,
            });
        }
        l
    }

    /// A pure v2 layout with its cgroup2 tree at `root` (used to drive the v2 code on a
    /// hybrid host, with `root` its /sys/fs/cgroup/unified).
    pub fn v2_at(root: impl Into<PathBuf>) -> Layout {
        Layout {
            v1: Vec::new(),
            unified: Some((String::new(), root.into())),
        }
    }

    /// The kind of host.
    pub fn mode(&self) -> Mode {
        match (self.v1.is_empty(), self.unified.is_some()) {
            (true, _) => Mode::V2,
            (false, true) => Mode::Hybrid,
            (false, false) => Mode::V1,
        }
    }

    /// The controllers the cgroup2 tree offers (its root's `cgroup.controllers`).
    pub fn v2_controllers(&self) -> Vec<String> {
        let Some((_, root)) = &self.unified else {
            return Vec::new();
        };
        read_opt(&root.join("cgroup.controllers"))
            .ok()
            .flatten()
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

fn bad(path: &str, reason: &'static str) -> CgroupError {
    CgroupError::Path {
        path: path.to_string(),
        reason,
    }
}

/// The container's cgroup path relative to each hierarchy's root, from the spec's
/// `cgroupsPath`:
/// - none or empty: `barge/<id>`;
/// - `/a/b` or `a/b`: `a/b` (both are taken from the hierarchy root);
/// - systemd `slice:prefix:name`: `<slice path>/<prefix>-<name>.scope` on cgroupfs, with
///   `a-b.slice` nested as `a.slice/a-b.slice` and an empty slice meaning `system.slice`;
///   a name ending in `.slice` names the slice itself.
///
/// A path with `..` (which could leave the hierarchy) or naming the root is refused.
pub fn relative_path(cgroups_path: Option<&str>, id: &str) -> Result<PathBuf, CgroupError> {
    let given = cgroups_path.unwrap_or("");
    let rel = match given {
        "" => PathBuf::from("barge").join(id),
        p if !p.starts_with('/') && p.split(':').count() == 3 => systemd_path(p)?,
        p => PathBuf::from(p.trim_start_matches('/')),
    };
    let mut clean = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(bad(given, "`..` would leave the cgroup hierarchy"));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad(given, "malformed path"));
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(bad(given, "names the root cgroup"));
    }
    Ok(clean)
}

/// `slice:prefix:name` on cgroupfs.
fn systemd_path(p: &str) -> Result<PathBuf, CgroupError> {
    let mut it = p.splitn(3, ':');
    let (slice, prefix, name) = (
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
    );
    if [slice, prefix, name].iter().any(|s| s.contains('/')) {
        return Err(bad(p, "systemd slice, prefix and name cannot contain `/`"));
    }
    if name.is_empty() {
        return Err(bad(p, "systemd form needs a name (slice:prefix:name)"));
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut path = expand_slice(p, slice)?;
    if name.ends_with(".slice") {
        path.push(name);
    } else if prefix.is_empty() {
        path.push(format!("{name}.scope"));
    } else {
        path.push(format!("{prefix}-{name}.scope"));
    }
    Ok(path)
}

/// systemd's slice nesting: `a-b-c.slice` lives at `a.slice/a-b.slice/a-b-c.slice`.
fn expand_slice(given: &str, slice: &str) -> Result<PathBuf, CgroupError> {
    let Some(base) = slice.strip_suffix(".slice") else {
        return Err(bad(given, "a systemd slice must end in `.slice`"));
    };
    if base == "-" {
        return Ok(PathBuf::new());
    }
    if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
        return Err(bad(given, "malformed systemd slice name"));
    }
    let mut path = PathBuf::new();
    let mut acc = String::new();
    for part in base.split('-') {
        if !acc.is_empty() {
            acc.push('-');
        }
        acc.push_str(part);
        path.push(format!("{acc}.slice"));
    }
    Ok(path)
}
