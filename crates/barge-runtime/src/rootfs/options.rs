//! fstab-style mount options (as in config.json `mounts[].options`) to mount(2) flags, the
//! filesystem-specific data string, propagation changes and recursive mount attributes.

use nix::mount::MsFlags;

/// `MS_NOSYMFOLLOW` (Linux 5.10); not in nix's `MsFlags` yet.
pub(crate) const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// `MOUNT_ATTR_*` values of mount_setattr(2), used by the recursive (`rro`, `rnosuid`, ...)
/// options of the runtime spec.
pub mod attr {
    /// Read-only.
    pub const RDONLY: u64 = 0x0000_0001;
    /// No setuid.
    pub const NOSUID: u64 = 0x0000_0002;
    /// No device files.
    pub const NODEV: u64 = 0x0000_0004;
    /// No execution.
    pub const NOEXEC: u64 = 0x0000_0008;
    /// The mask of the atime modes.
    pub const ATIME_MASK: u64 = 0x0000_0070;
    /// relatime (the value 0 under the mask).
    pub const RELATIME: u64 = 0;
    /// noatime.
    pub const NOATIME: u64 = 0x0000_0010;
    /// strictatime.
    pub const STRICTATIME: u64 = 0x0000_0020;
    /// nodiratime.
    pub const NODIRATIME: u64 = 0x0000_0080;
    /// No symlink following.
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// Parsed mount options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to pass to mount(2) (never contains propagation flags).
    pub flags: MsFlags,
    /// Flags an option explicitly cleared (`rw`, `suid`, `dev`, `exec`, `atime`, ...): a
    /// bind remount must not carry them over from the source.
    pub cleared: MsFlags,
    /// An atime option (`atime`, `noatime`, `relatime`, `strictatime`, ...) was given.
    pub atime_given: bool,
    /// Propagation changes to apply after the mount, in order (`MS_SHARED`, `MS_SLAVE|MS_REC`...).
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes to set with mount_setattr(2) (`rro`, `rnosuid`, ...).
    pub rec_attr_set: u64,
    /// Recursive attributes to clear with mount_setattr(2) (`rrw`, `rsuid`, ...).
    pub rec_attr_clr: u64,
    /// `idmap`/`ridmap` was asked (not supported by barge yet).
    pub idmap: bool,
    /// Filesystem-specific options, comma-joined into mount(2)'s data (`mode=755,size=65536k`).
    pub data: Vec<String>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            atime_given: false,
            propagation: Vec::new(),
            rec_attr_set: 0,
            rec_attr_clr: 0,
            idmap: false,
            data: Vec::new(),
        }
    }
}

impl MountOptions {
    /// `bind` or `rbind` was given.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// The data string for mount(2), `None` when there is none.
    pub fn data_string(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }
}

/// What one option does.
enum Effect {
    Set(MsFlags),
    Clear(MsFlags),
    Propagation(MsFlags),
    RecSet(u64, bool),
    RecClear(u64, bool),
    Nothing,
}

fn effect(option: &str) -> Option<Effect> {
    use Effect::*;
    let atime = MsFlags::MS_NOATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME;
    Some(match option {
        "defaults" => Nothing,
        "ro" => Set(MsFlags::MS_RDONLY),
        "rw" => Clear(MsFlags::MS_RDONLY),
        "nosuid" => Set(MsFlags::MS_NOSUID),
        "suid" => Clear(MsFlags::MS_NOSUID),
        "nodev" => Set(MsFlags::MS_NODEV),
        "dev" => Clear(MsFlags::MS_NODEV),
        "noexec" => Set(MsFlags::MS_NOEXEC),
        "exec" => Clear(MsFlags::MS_NOEXEC),
        "sync" => Set(MsFlags::MS_SYNCHRONOUS),
        "async" => Clear(MsFlags::MS_SYNCHRONOUS),
        "dirsync" => Set(MsFlags::MS_DIRSYNC),
        "remount" => Set(MsFlags::MS_REMOUNT),
        "mand" => Set(MsFlags::MS_MANDLOCK),
        "nomand" => Clear(MsFlags::MS_MANDLOCK),
        "silent" => Set(MsFlags::MS_SILENT),
        "loud" => Clear(MsFlags::MS_SILENT),
        "iversion" => Set(MsFlags::MS_I_VERSION),
        "noiversion" => Clear(MsFlags::MS_I_VERSION),
        "lazytime" => Set(MsFlags::MS_LAZYTIME),
        "nolazytime" => Clear(MsFlags::MS_LAZYTIME),
        "nosymfollow" => Set(MS_NOSYMFOLLOW),
        "symfollow" => Clear(MS_NOSYMFOLLOW),
        "diratime" => Clear(MsFlags::MS_NODIRATIME),
        "nodiratime" => Set(MsFlags::MS_NODIRATIME),
        // The atime modes exclude each other: setting one clears the others.
        "atime" => Clear(atime),
        "noatime" => Set(MsFlags::MS_NOATIME),
        "relatime" => Set(MsFlags::MS_RELATIME),
        "norelatime" => Clear(MsFlags::MS_RELATIME),
        "strictatime" => Set(MsFlags::MS_STRICTATIME),
        "nostrictatime" => Clear(MsFlags::MS_STRICTATIME),
        "bind" => Set(MsFlags::MS_BIND),
        "rbind" => Set(MsFlags::MS_BIND | MsFlags::MS_REC),
        "private" => Propagation(MsFlags::MS_PRIVATE),
        "rprivate" => Propagation(MsFlags::MS_PRIVATE | MsFlags::MS_REC),
        "shared" => Propagation(MsFlags::MS_SHARED),
        "rshared" => Propagation(MsFlags::MS_SHARED | MsFlags::MS_REC),
        "slave" => Propagation(MsFlags::MS_SLAVE),
        "rslave" => Propagation(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        "unbindable" => Propagation(MsFlags::MS_UNBINDABLE),
        "runbindable" => Propagation(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
        "rro" => RecSet(attr::RDONLY, false),
        "rrw" => RecClear(attr::RDONLY, false),
        "rnosuid" => RecSet(attr::NOSUID, false),
        "rsuid" => RecClear(attr::NOSUID, false),
        "rnodev" => RecSet(attr::NODEV, false),
        "rdev" => RecClear(attr::NODEV, false),
        "rnoexec" => RecSet(attr::NOEXEC, false),
        "rexec" => RecClear(attr::NOEXEC, false),
        "rnodiratime" => RecSet(attr::NODIRATIME, false),
        "rdiratime" => RecClear(attr::NODIRATIME, false),
        "rrelatime" => RecSet(attr::RELATIME, true),
        "rnorelatime" => RecClear(attr::RELATIME, true),
        "rnoatime" => RecSet(attr::NOATIME, true),
        "ratime" => RecClear(attr::NOATIME, true),
        "rstrictatime" => RecSet(attr::STRICTATIME, true),
        "rnostrictatime" => RecClear(attr::STRICTATIME, true),
        "rnosymfollow" => RecSet(attr::NOSYMFOLLOW, false),
        "rsymfollow" => RecClear(attr::NOSYMFOLLOW, false),
        // Copy-up of the image's content into a tmpfs is not implemented; the option is
        // accepted (runc's extension, not in the spec) so specs using it still run.
        "tmpcopyup" => Nothing,
        _ => return None,
    })
}

/// Parses `options` in order (a later option overrides an earlier one). Options that are
/// not flags go, in order, into the data string.
pub fn parse_mount_options<S: AsRef<str>>(options: &[S]) -> MountOptions {
    let atime = MsFlags::MS_NOATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME;
    let mut out = MountOptions::default();
    for option in options {
        let option = option.as_ref();
        if option.is_empty() {
            continue;
        }
        if option == "idmap" || option == "ridmap" {
            out.idmap = true;
            continue;
        }
        match effect(option) {
            Some(Effect::Set(f)) => {
                if f.intersects(atime) {
                    out.atime_given = true;
                    out.flags.remove(atime);
                }
                out.flags.insert(f);
                out.cleared.remove(f);
            }
            Some(Effect::Clear(f)) => {
                if f.intersects(atime) {
                    out.atime_given = true;
                }
                out.flags.remove(f);
                out.cleared.insert(f);
            }
            Some(Effect::Propagation(f)) => out.propagation.push(f),
            Some(Effect::RecSet(a, is_atime)) => {
                if is_atime {
                    out.rec_attr_clr |= attr::ATIME_MASK;
                    out.rec_attr_set &= !attr::ATIME_MASK;
                } else {
                    out.rec_attr_clr &= !a;
                }
                out.rec_attr_set |= a;
            }
            Some(Effect::RecClear(a, is_atime)) => {
                if is_atime {
                    // mount_setattr(2) changes the atime mode only as a whole: back to the
                    // default, relatime.
                    out.rec_attr_clr |= attr::ATIME_MASK;
                    out.rec_attr_set &= !attr::ATIME_MASK;
                } else {
                    out.rec_attr_set &= !a;
                    out.rec_attr_clr |= a;
                }
            }
            Some(Effect::Nothing) => {}
            None => out.data.push(option.to_string()),
        }
    }
    out
}

/// Parses `linux.rootfsPropagation`.
pub fn parse_propagation(value: &str) -> Option<MsFlags> {
    Some(match value {
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "private" => MsFlags::MS_PRIVATE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_data_are_split() {
        let o = parse_mount_options(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert!(o.atime_given);
        assert!(!o.is_bind());
        assert!(o.propagation.is_empty());
    }

    #[test]
    fn devpts_options_go_to_data() {
        let o = parse_mount_options(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC);
        assert_eq!(
            o.data_string().as_deref(),
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5")
        );
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = parse_mount_options(&["ro", "rw", "nosuid", "suid", "noexec"]);
        assert_eq!(o.flags, MsFlags::MS_NOEXEC);
        assert!(o.cleared.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
        let o = parse_mount_options(&["rw", "ro"]);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert!(!o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn atime_modes_exclude_each_other() {
        let o = parse_mount_options(&["noatime", "relatime"]);
        assert_eq!(o.flags, MsFlags::MS_RELATIME);
        let o = parse_mount_options(&["relatime", "strictatime", "nodiratime"]);
        assert_eq!(o.flags, MsFlags::MS_STRICTATIME | MsFlags::MS_NODIRATIME);
        let o = parse_mount_options(&["ro"]);
        assert!(!o.atime_given);
    }

    #[test]
    fn bind_and_rbind() {
        let o = parse_mount_options(&["bind", "ro"]);
        assert!(o.is_bind());
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_RDONLY);
        let o = parse_mount_options(&["rbind"]);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(o.data_string(), None);
    }

    #[test]
    fn propagation_is_kept_apart_in_order() {
        let o = parse_mount_options(&["rbind", "rprivate", "shared", "ro"]);
        assert_eq!(
            o.propagation,
            vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC, MsFlags::MS_SHARED]
        );
        assert!(!o.flags.intersects(
            MsFlags::MS_PRIVATE | MsFlags::MS_SHARED | MsFlags::MS_SLAVE | MsFlags::MS_UNBINDABLE
        ));
        let o = parse_mount_options(&["rslave", "unbindable", "runbindable", "slave"]);
        assert_eq!(
            o.propagation,
            vec![
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                MsFlags::MS_UNBINDABLE,
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
                MsFlags::MS_SLAVE
            ]
        );
    }

    #[test]
    fn unknown_options_go_to_data_in_order() {
        let o = parse_mount_options(&["size=1m", "frobnicate", "ro", "uid=1000", "tmpcopyup"]);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert_eq!(o.data, vec!["size=1m", "frobnicate", "uid=1000"]);
    }

    #[test]
    fn misc_flags() {
        let o = parse_mount_options(&[
            "sync",
            "remount",
            "mand",
            "dirsync",
            "lazytime",
            "nosymfollow",
            "nodev",
        ]);
        assert_eq!(
            o.flags,
            MsFlags::MS_SYNCHRONOUS
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_MANDLOCK
                | MsFlags::MS_DIRSYNC
                | MsFlags::MS_LAZYTIME
                | MS_NOSYMFOLLOW
                | MsFlags::MS_NODEV
        );
        let o = parse_mount_options(&["sync", "async", "mand", "nomand", "dev"]);
        assert!(o.flags.is_empty());
    }

    #[test]
    fn recursive_attributes() {
        let o = parse_mount_options(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert_eq!(o.rec_attr_set, attr::RDONLY | attr::NOSUID | attr::NOATIME);
        assert_eq!(o.rec_attr_clr, attr::ATIME_MASK);
        let o = parse_mount_options(&["rro", "rrw", "rexec"]);
        assert_eq!(o.rec_attr_set, 0);
        assert_eq!(o.rec_attr_clr, attr::RDONLY | attr::NOEXEC);
        assert!(o.data.is_empty());
        assert!(parse_mount_options(&["idmap"]).idmap);
    }

    #[test]
    fn rootfs_propagation_values() {
        assert_eq!(
            parse_propagation("rslave"),
            Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert_eq!(parse_propagation("shared"), Some(MsFlags::MS_SHARED));
        assert_eq!(
            parse_propagation("runbindable"),
            Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC)
        );
        assert_eq!(parse_propagation("bogus"), None);
        assert_eq!(parse_propagation(""), None);
    }
}
