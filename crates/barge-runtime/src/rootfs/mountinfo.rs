//! A minimal /proc/self/mountinfo reader: what the propagation and --no-pivot code needs.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountInfo {
    /// The mount point (octal escapes decoded).
    pub mount_point: PathBuf,
    /// The optional fields (`shared:N`, `master:N`, ...).
    pub optional: Vec<String>,
    /// The filesystem type.
    pub fstype: String,
}

impl MountInfo {
    /// The mount is in a shared peer group.
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }
}

/// Decodes mountinfo's `\NNN` octal escapes (space, tab, newline, backslash).
fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = u32::from(oct[0] - b'0') * 64
                    + u32::from(oct[1] - b'0') * 8
                    + u32::from(oct[2] - b'0');
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Parses mountinfo text; malformed lines are skipped.
pub(crate) fn parse(text: &str) -> Vec<MountInfo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 10 {
            continue;
        }
        let Some(sep) = fields.iter().skip(6).position(|f| *f == "-") else {
            continue;
        };
        let sep = sep + 6;
        let Some(fstype) = fields.get(sep + 1) else {
            continue;
        };
        out.push(MountInfo {
            mount_point: unescape(fields[4]),
            optional: fields[6..sep].iter().map(|s| s.to_string()).collect(),
            fstype: fstype.to_string(),
        });
    }
    out
}

/// Reads this process's mount table.
pub(crate) fn read() -> std::io::Result<Vec<MountInfo>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The mount that `path` (absolute, symlinks resolved) lives on: the last-listed mount whose
/// mount point is the longest prefix of `path` (later mounts cover earlier ones).
pub(crate) fn mount_of<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
    for m in mounts {
        if path.starts_with(&m.mount_point) {
            let better = match best {
                None => true,
                Some(b) => m.mount_point.as_os_str().len() >= b.mount_point.as_os_str().len(),
            };
            if better {
                best = Some(m);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime master:3 - tmpfs tmpfs rw,mode=755
44 27 0:40 / /mnt/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn parses_fields_and_escapes() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].mount_point, Path::new("/proc"));
        assert_eq!(m[0].fstype, "proc");
        assert!(!m[0].is_shared());
        assert!(m[1].is_shared());
        assert_eq!(m[2].optional, vec!["master:3"]);
        assert_eq!(m[3].mount_point, Path::new("/mnt/with space"));
    }

    #[test]
    fn mount_of_picks_longest_prefix() {
        let m = parse(SAMPLE);
        let hit = mount_of(&m, Path::new("/sys/fs/cgroup/memory")).expect("a mount");
        assert_eq!(hit.mount_point, Path::new("/sys/fs/cgroup"));
        let hit = mount_of(&m, Path::new("/var/lib")).expect("a mount");
        assert_eq!(hit.mount_point, Path::new("/"));
        // Path::starts_with is per component: /procfoo is not under /proc.
        let hit = mount_of(&m, Path::new("/procfoo")).expect("a mount");
        assert_eq!(hit.mount_point, Path::new("/"));
    }
}
