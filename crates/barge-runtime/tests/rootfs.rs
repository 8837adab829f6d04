//! Root filesystem setup, run for real: each test forks a child that enters a new mount
//! namespace, builds a container root from a busybox rootfs, switches into it, and checks
//! the result from inside. Failures come back through a pipe. Needs root.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use barge_runtime::rootfs::{
    finalize_rootfs, mount_console, move_root_no_pivot, pivot_root, prepare_rootfs, RootfsError,
    RootfsOptions,
};
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::statfs::{statfs, PROC_SUPER_MAGIC, TMPFS_MAGIC};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;
use oci_spec::runtime::Spec;
use serde_json::json;

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("skipping {test}: needs root (mount namespaces, mknod, pivot_root)");
        false
    }
}

/// A fresh busybox rootfs under a tempdir.
fn busybox_rootfs(tmp: &Path) -> PathBuf {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/busybox-rootfs.sh");
    let dest = tmp.join("rootfs");
    let status = std::process::Command::new("sh")
        .arg(&script)
        .arg(&dest)
        .status()
        .expect("run busybox-rootfs.sh");
    assert!(status.success(), "busybox-rootfs.sh failed: {status}");
    dest
}

/// Runs `f` in a forked child in a new mount namespace; `Ok` when it returned `Ok` and exited
/// 0. With `slave_first` the child makes `/` rslave before `f`, so even a broken `f` cannot
/// propagate a mount to the host.
fn in_child(slave_first: bool, f: impl FnOnce() -> Check) -> Check {
    let (rd, wr): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    // SAFETY: the test binary is multi-threaded; the child only runs `f` (which allocates,
    // fine with glibc's fork-safe malloc, and makes syscalls) and leaves with _exit, never
    // returning into the test harness.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        ForkResult::Child => {
            drop(rd);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                nix::sched::unshare(CloneFlags::CLONE_NEWNS)
                    .map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
                if slave_first {
                    nix::mount::mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        MsFlags::MS_SLAVE | MsFlags::MS_REC,
                        None::<&str>,
                    )
                    .map_err(|e| format!("rslave /: {e}"))?;
                }
                f()
            }));
            let (code, msg) = match result {
                Ok(Ok(())) => (0, String::new()),
                Ok(Err(m)) => (1, m),
                Err(_) => (2, "the child panicked".to_string()),
            };
            let mut w = std::fs::File::from(wr);
            let _ = w.write_all(msg.as_bytes());
            drop(w);
            // SAFETY: _exit ends the child without running the parent's atexit handlers or
            // destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(wr);
            let mut msg = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut msg);
            match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, 0) => Ok(()),
                other => Err(format!("child {other:?}: {msg}")),
            }
        }
    }
}

fn spec(value: serde_json::Value) -> Spec {
    serde_json::from_value(value).expect("valid spec json")
}

/// runc's default mounts (as oci-spec has them) plus runc's masked and readonly paths.
fn default_spec(rootfs: &Path, readonly: bool) -> Spec {
    let mut s = Spec::default();
    let mut root = s.root().clone().expect("default root");
    root.set_path(rootfs.to_path_buf());
    root.set_readonly(Some(readonly));
    s.set_root(Some(root));
    s
}

fn opts_hybrid() -> RootfsOptions {
    RootfsOptions {
        cgroup_paths: vec![
            ("memory".into(), PathBuf::from("/sys/fs/cgroup/memory")),
            ("cpu".into(), PathBuf::from("/sys/fs/cgroup/cpu")),
            ("unified".into(), PathBuf::from("/sys/fs/cgroup/unified")),
        ],
        ..Default::default()
    }
}

/// Mount points under `dir` in this process's (the host's) mount table.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let d = dir.to_string_lossy().to_string();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with(&d))
        .map(str::to_string)
        .collect()
}

fn char_dev(path: &str) -> Result<(u64, u64), String> {
    let md = std::fs::symlink_metadata(path).map_err(|e| format!("stat {path}: {e}"))?;
    ensure!(
        md.file_type().is_char_device(),
        "{path} is not a char device: {:?}",
        md.file_type()
    );
    let rdev = md.rdev();
    Ok((nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)))
}

fn open_write_errno(path: &str) -> Option<Errno> {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .err()
}

/// This process's open fd numbers (including the one reading the directory, which gets the
/// same lowest free number each time).
fn open_fds() -> Result<Vec<u32>, String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        if let Ok(n) = e.file_name().to_string_lossy().parse() {
            v.push(n);
        }
    }
    v.sort_unstable();
    Ok(v)
}

fn link_target(path: &str) -> Result<String, String> {
    std::fs::read_link(path)
        .map(|p| p.to_string_lossy().to_string())
        .map_err(|e| format!("readlink {path}: {e}"))
}

#[test]
fn default_mounts_pivot_and_finalize() {
    if !root_or_skip("default_mounts_pivot_and_finalize") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    let before = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let s = default_spec(&rootfs, false);
    let host_has_kcore = Path::new("/proc/kcore").exists();
    let host_has_sysrq = Path::new("/proc/sysrq-trigger").exists();
    // No pre-slaving: prepare_rootfs itself must keep everything away from the host.
    let r = in_child(false, || {
        let fds_before = open_fds()?;
        prepare_rootfs(&s, &rootfs, &opts_hybrid()).map_err(|e| format!("prepare: {e}"))?;
        pivot_root(&rootfs).map_err(|e| format!("pivot: {e}"))?;
        finalize_rootfs(&s).map_err(|e| format!("finalize: {e}"))?;

        ensure!(
            std::env::current_dir().ok() == Some(PathBuf::from("/")),
            "cwd is not /"
        );
        let fds_after = open_fds()?;
        ensure!(
            fds_before == fds_after,
            "fds leaked: before {fds_before:?}, after {fds_after:?}"
        );
        ensure!(Path::new("/bin/busybox").exists(), "the rootfs is not /");
        let mi = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let host_root = rootfs.to_string_lossy().to_string();
        ensure!(
            !mi.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .any(|mp| mp.starts_with(&host_root)),
            "old root still visible:\n{mi}"
        );
        ensure!(
            mi.lines().count() < 40,
            "old root's mounts still attached:\n{mi}"
        );
        ensure!(
            statfs("/proc")
                .map_err(|e| e.to_string())?
                .filesystem_type()
                == PROC_SUPER_MAGIC,
            "/proc is not procfs"
        );
        // This kernel may lack /proc/kcore (CONFIG_PROC_KCORE); /proc/keys is always there.
        if host_has_kcore {
            ensure!(
                char_dev("/proc/kcore")? == (1, 3),
                "/proc/kcore is not masked by /dev/null"
            );
        }
        ensure!(
            char_dev("/proc/keys")? == (1, 3),
            "/proc/keys is not masked"
        );
        ensure!(
            open_write_errno("/proc/sys/kernel/hostname") == Some(Errno::EROFS),
            "/proc/sys is writable"
        );
        // Missing readonly paths are skipped (this kernel may lack CONFIG_MAGIC_SYSRQ).
        let sysrq = open_write_errno("/proc/sysrq-trigger");
        ensure!(
            sysrq == Some(Errno::EROFS) || (!host_has_sysrq && sysrq == Some(Errno::ENOENT)),
            "/proc/sysrq-trigger: {sysrq:?}"
        );
        let fw: Vec<_> = std::fs::read_dir("/sys/firmware")
            .map_err(|e| e.to_string())?
            .collect();
        ensure!(fw.is_empty(), "/sys/firmware is not masked");
        ensure!(
            open_write_errno("/sys/kernel/profiling") == Some(Errno::EROFS),
            "/sys is writable"
        );
        ensure!(char_dev("/dev/null")? == (1, 3), "/dev/null is not 1:3");
        ensure!(char_dev("/dev/zero")? == (1, 5), "/dev/zero is not 1:5");
        ensure!(char_dev("/dev/tty")? == (5, 0), "/dev/tty is not 5:0");
        let null_mode = std::fs::metadata("/dev/null")
            .map_err(|e| e.to_string())?
            .mode()
            & 0o7777;
        ensure!(null_mode == 0o666, "/dev/null mode {null_mode:o}");
        ensure!(link_target("/dev/ptmx")? == "pts/ptmx", "/dev/ptmx link");
        ensure!(link_target("/dev/fd")? == "/proc/self/fd", "/dev/fd link");
        ensure!(
            link_target("/dev/stderr")? == "/proc/self/fd/2",
            "/dev/stderr link"
        );
        ensure!(Path::new("/dev/pts/ptmx").exists(), "no devpts at /dev/pts");
        let shm = std::fs::metadata("/dev/shm")
            .map_err(|e| e.to_string())?
            .mode()
            & 0o7777;
        ensure!(shm == 0o1777, "/dev/shm mode {shm:o}");
        ensure!(Path::new("/dev/mqueue").is_dir(), "no /dev/mqueue");
        // cgroups: a readonly tmpfs with the container's hierarchies bound in.
        ensure!(
            statfs("/sys/fs/cgroup")
                .map_err(|e| e.to_string())?
                .filesystem_type()
                == TMPFS_MAGIC,
            "/sys/fs/cgroup is not a tmpfs"
        );
        ensure!(
            Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists(),
            "memory hierarchy not bound"
        );
        ensure!(
            Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists(),
            "unified not bound"
        );
        ensure!(
            open_write_errno("/sys/fs/cgroup/memory/cgroup.procs") == Some(Errno::EROFS),
            "cgroup bind is writable"
        );
        ensure!(
            std::fs::create_dir("/sys/fs/cgroup/x")
                .err()
                .and_then(|e| e.raw_os_error())
                == Some(libc::EROFS),
            "cgroup tmpfs is writable"
        );
        // Without CAP_SYS_ADMIN nothing of this can be undone.
        caps::drop(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_ADMIN,
        )
        .map_err(|e| e.to_string())?;
        ensure!(
            nix::mount::umount2("/proc/keys", nix::mount::MntFlags::MNT_DETACH)
                == Err(Errno::EPERM),
            "unprivileged umount of a masked path"
        );
        ensure!(
            nix::mount::mount(
                None::<&str>,
                "/proc/sys",
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND,
                None::<&str>
            ) == Err(Errno::EPERM),
            "unprivileged rw remount of /proc/sys"
        );
        Ok(())
    });
    let after = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    r.expect("container rootfs");
    assert!(
        host_mounts_under(tmp.path()).is_empty(),
        "mounts leaked to the host"
    );
    // Other tests may mount in parallel, but never under our tempdir nor at the host root.
    let root_line = |t: &str| {
        t.lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .map(str::to_string)
    };
    assert_eq!(root_line(&before), root_line(&after), "host / changed");
    assert!(!after.contains(&*tmp.path().to_string_lossy()));
}

#[test]
fn readonly_root_when_asked() {
    if !root_or_skip("readonly_root_when_asked") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    let s = default_spec(&rootfs, true);
    let r = in_child(true, || {
        prepare_rootfs(&s, &rootfs, &opts_hybrid()).map_err(|e| format!("prepare: {e}"))?;
        pivot_root(&rootfs).map_err(|e| format!("pivot: {e}"))?;
        finalize_rootfs(&s).map_err(|e| format!("finalize: {e}"))?;
        let e = std::fs::write("/newfile", b"x")
            .err()
            .and_then(|e| e.raw_os_error());
        ensure!(e == Some(libc::EROFS), "root is writable: {e:?}");
        // Mounts on top stay as they were: /dev/shm is still writable.
        std::fs::write("/dev/shm/ok", b"x").map_err(|e| format!("/dev/shm: {e}"))?;
        caps::drop(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_ADMIN,
        )
        .map_err(|e| e.to_string())?;
        ensure!(
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND,
                None::<&str>
            ) == Err(Errno::EPERM),
            "unprivileged rw remount of /"
        );
        Ok(())
    });
    r.expect("readonly root");
    // The host's copy is untouched and writable.
    std::fs::write(rootfs.join("host-write"), b"x").expect("host rootfs writable");
}

#[test]
fn bind_destination_symlinks_stay_in_rootfs() {
    if !root_or_skip("bind_destination_symlinks_stay_in_rootfs") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    let outside = tmp.path().join("outside");
    let src = tmp.path().join("src");
    std::fs::create_dir(&outside).expect("outside");
    std::fs::create_dir(&src).expect("src");
    std::fs::write(src.join("marker"), b"m").expect("marker");
    std::os::unix::fs::symlink("/", rootfs.join("evil")).expect("evil");
    std::os::unix::fs::symlink("../../../../../../../..", rootfs.join("rel")).expect("rel");
    std::os::unix::fs::symlink(&outside, rootfs.join("hostlink")).expect("hostlink");
    let pid = std::process::id();
    let canary1 = format!("barge-canary-target-{pid}");
    let canary2 = format!("barge-canary-rel-{pid}");
    let s = spec(json!({
        "ociVersion": "1.2.0",
        "root": {"path": rootfs},
        "mounts": [
            {"destination": format!("/evil/{canary1}"), "type": "bind", "source": src, "options": ["rbind"]},
            {"destination": format!("/rel/{canary2}"), "type": "none", "source": src, "options": ["bind"]},
            {"destination": "/hostlink/sub", "type": "bind", "source": src, "options": ["bind"]},
            {"destination": "/evil/etc/../evil/tmp/file-target", "type": "bind", "source": src.join("marker"), "options": ["bind"]}
        ]
    }));
    let (rootfs_c, outside_c, c1, c2) = (
        rootfs.clone(),
        outside.clone(),
        canary1.clone(),
        canary2.clone(),
    );
    let r = in_child(true, move || {
        prepare_rootfs(&s, &rootfs_c, &RootfsOptions::default())
            .map_err(|e| format!("prepare: {e}"))?;
        for c in [&c1, &c2] {
            ensure!(
                rootfs_c.join(c).join("marker").exists(),
                "bind for {c} did not land in the rootfs"
            );
            ensure!(
                !Path::new("/").join(c).exists(),
                "/{c} appeared on the host root"
            );
        }
        let inner = rootfs_c.join(outside_c.strip_prefix("/").map_err(|e| e.to_string())?);
        ensure!(
            inner.join("sub/marker").exists(),
            "absolute host symlink not confined"
        );
        ensure!(
            !outside_c.join("sub").exists(),
            "mount escaped to the host directory"
        );
        ensure!(
            rootfs_c.join("tmp/file-target").is_file(),
            "file bind target missing"
        );
        ensure!(
            std::fs::read(rootfs_c.join("tmp/file-target")).map_err(|e| e.to_string())? == b"m",
            "file bind not mounted"
        );
        Ok(())
    });
    r.expect("confined binds");
    assert!(
        !Path::new("/").join(&canary1).exists(),
        "host canary {canary1}"
    );
    assert!(
        !Path::new("/").join(&canary2).exists(),
        "host canary {canary2}"
    );
    assert!(!outside.join("sub").exists(), "host dir got a mount target");
    assert!(
        host_mounts_under(tmp.path()).is_empty(),
        "mounts leaked to the host"
    );
}

fn expect_refused(r: Result<(), RootfsError>, needle: &str) -> Check {
    match r {
        Err(e @ RootfsError::Refused { .. }) => {
            let m = e.to_string();
            ensure!(m.contains(needle), "message {m:?} does not name {needle}");
            Ok(())
        }
        Err(e) => Err(format!("wrong error: {e}")),
        Ok(()) => Err("was not refused".into()),
    }
}

#[test]
fn fake_proc_and_sys_are_refused() {
    if !root_or_skip("fake_proc_and_sys_are_refused") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    std::fs::remove_dir(rootfs.join("proc")).expect("rm proc");
    std::fs::create_dir_all(rootfs.join("tmp/x")).expect("tmp/x");
    std::os::unix::fs::symlink("/tmp/x", rootfs.join("proc")).expect("proc link");
    let proc_spec = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]
    }));
    let rootfs2 = busybox_rootfs(&tmp.path().join("two"));
    std::fs::remove_dir(rootfs2.join("sys")).expect("rm sys");
    std::os::unix::fs::symlink("tmp", rootfs2.join("sys")).expect("sys link");
    let sys_spec = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs2},
        "mounts": [{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]}]
    }));
    let vol_spec = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs2},
        "mounts": [{"destination": "/proc", "type": "bind", "source": tmp.path(), "options": ["rbind"]}]
    }));
    let typed_vol_spec = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs2},
        "mounts": [{"destination": "/proc", "type": "proc", "source": tmp.path(), "options": ["rbind"]}]
    }));
    std::os::unix::fs::symlink("proc", rootfs2.join("myproc")).expect("myproc link");
    let alias_spec = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs2},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/myproc/sys", "type": "bind", "source": tmp.path(), "options": ["rbind"]}
        ]
    }));
    let under_spec = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs2},
        "mounts": [{"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"}]
    }));
    let (r1, r2) = (rootfs.clone(), rootfs2.clone());
    let r = in_child(true, move || {
        let o = RootfsOptions::default();
        expect_refused(prepare_rootfs(&proc_spec, &r1, &o), "/proc")
            .map_err(|e| format!("proc symlink: {e}"))?;
        ensure!(
            std::fs::read_dir(r1.join("tmp/x"))
                .map_err(|e| e.to_string())?
                .next()
                .is_none(),
            "procfs got mounted through the symlink"
        );
        expect_refused(prepare_rootfs(&sys_spec, &r2, &o), "symlink")
            .map_err(|e| format!("sys symlink: {e}"))?;
        expect_refused(prepare_rootfs(&vol_spec, &r2, &o), "/proc")
            .map_err(|e| format!("bind over /proc: {e}"))?;
        expect_refused(prepare_rootfs(&typed_vol_spec, &r2, &o), "/proc")
            .map_err(|e| format!("bind typed proc over /proc: {e}"))?;
        expect_refused(prepare_rootfs(&alias_spec, &r2, &o), "procfs")
            .map_err(|e| format!("bind into procfs through a symlink: {e}"))?;
        expect_refused(prepare_rootfs(&under_spec, &r2, &o), "/proc/sys")
            .map_err(|e| format!("tmpfs over /proc/sys: {e}"))?;
        Ok(())
    });
    r.expect("refusals");
}

#[test]
fn symlinked_dev_null_is_refused_when_masking() {
    if !root_or_skip("symlinked_dev_null_is_refused_when_masking") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    std::fs::write(rootfs.join("etc/secret"), b"secret").expect("secret");
    std::fs::write(rootfs.join("etc/victim"), b"victim").expect("victim");
    // /dev is not a tmpfs from the spec: the image's /dev is used as is.
    std::os::unix::fs::symlink("../etc/victim", rootfs.join("dev/null")).expect("null link");
    let linked = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"maskedPaths": ["/etc/secret"]}
    }));
    let r = in_child(true, || {
        prepare_rootfs(&linked, &rootfs, &RootfsOptions::default())
            .map_err(|e| format!("prepare: {e}"))?;
        pivot_root(&rootfs).map_err(|e| format!("pivot: {e}"))?;
        expect_refused(finalize_rootfs(&linked), "/dev/null")?;
        ensure!(
            std::fs::read("/etc/secret").map_err(|e| e.to_string())? == b"secret",
            "secret changed"
        );
        // A regular file posing as /dev/null is refused too.
        std::fs::remove_file("/dev/null").map_err(|e| e.to_string())?;
        std::fs::write("/dev/null", b"").map_err(|e| e.to_string())?;
        expect_refused(finalize_rootfs(&linked), "null device")?;
        // And the console: a symlinked /dev/console is refused.
        std::os::unix::fs::symlink("../etc/victim", "/dev/console").map_err(|e| e.to_string())?;
        nix::sys::stat::mknod(
            "/dev/fakepty",
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(1, 5),
        )
        .map_err(|e| format!("mknod: {e}"))?;
        expect_refused(mount_console(Path::new("/dev/fakepty")), "/dev/console")?;
        ensure!(
            std::fs::read("/etc/victim").map_err(|e| e.to_string())? == b"victim",
            "console bind went through the symlink"
        );
        Ok(())
    });
    r.expect("masking refusal");
    assert_eq!(
        std::fs::read(rootfs.join("etc/victim")).expect("victim"),
        b"victim"
    );
}

#[test]
fn ro_bind_and_tmpfs_mode() {
    if !root_or_skip("ro_bind_and_tmpfs_mode") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("data");
    std::fs::write(data.join("marker"), b"m").expect("marker");
    let s = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/mnt/data", "type": "bind", "source": data, "options": ["rbind", "ro", "nosuid"]},
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]}
        ],
        "linux": {"readonlyPaths": ["/etc/passwd", "/no/such/path"], "maskedPaths": ["/no/such/file"],
                  "rootfsPropagation": "rshared"}
    }));
    let r = in_child(true, || {
        prepare_rootfs(&s, &rootfs, &RootfsOptions::default())
            .map_err(|e| format!("prepare: {e}"))?;
        pivot_root(&rootfs).map_err(|e| format!("pivot: {e}"))?;
        finalize_rootfs(&s).map_err(|e| format!("finalize: {e}"))?;
        ensure!(
            std::fs::read("/mnt/data/marker").map_err(|e| e.to_string())? == b"m",
            "bind content"
        );
        let e = std::fs::write("/mnt/data/x", b"x")
            .err()
            .and_then(|e| e.raw_os_error());
        ensure!(e == Some(libc::EROFS), "ro bind is writable: {e:?}");
        ensure!(
            open_write_errno("/etc/passwd") == Some(Errno::EROFS),
            "readonly file path is writable"
        );
        // rootfsPropagation applies to the new root.
        let mi = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let root_line = mi
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .unwrap_or_default();
        ensure!(
            root_line.contains(" shared:"),
            "/ is not shared: {root_line}"
        );
        std::fs::write("/etc/group-new", b"x").map_err(|e| format!("/etc writable: {e}"))?;
        let md = std::fs::metadata("/scratch").map_err(|e| e.to_string())?;
        ensure!(
            md.is_dir() && md.permissions().mode() & 0o7777 == 0o1777,
            "/scratch mode {:o}",
            md.permissions().mode()
        );
        let st = statfs("/scratch").map_err(|e| e.to_string())?;
        ensure!(st.filesystem_type() == TMPFS_MAGIC, "/scratch not tmpfs");
        let size = st.blocks() * st.block_size() as u64;
        ensure!(size == 65536 * 1024, "/scratch size {size}");
        let flags = nix::sys::statvfs::statvfs("/scratch")
            .map_err(|e| e.to_string())?
            .flags();
        ensure!(
            flags.contains(
                nix::sys::statvfs::FsFlags::ST_NOSUID | nix::sys::statvfs::FsFlags::ST_NODEV
            ),
            "/scratch flags {flags:?}"
        );
        Ok(())
    });
    r.expect("ro bind and tmpfs");
    // The source stays writable on the host.
    std::fs::write(data.join("host"), b"x").expect("host data writable");
}

#[test]
fn user_namespace_devices_are_bind_mounts() {
    if !root_or_skip("user_namespace_devices_are_bind_mounts") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    let s = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
        ],
        "linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 384}]}
    }));
    let opts = RootfsOptions {
        user_namespace: true,
        ..Default::default()
    };
    let r = in_child(true, || {
        prepare_rootfs(&s, &rootfs, &opts).map_err(|e| format!("prepare: {e}"))?;
        pivot_root(&rootfs).map_err(|e| format!("pivot: {e}"))?;
        let mi = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let points: Vec<&str> = mi.lines().filter_map(|l| l.split(' ').nth(4)).collect();
        for d in ["/dev/null", "/dev/urandom", "/dev/tty"] {
            ensure!(points.contains(&d), "{d} is not a bind mount");
        }
        ensure!(char_dev("/dev/null")? == (1, 3), "/dev/null");
        if Path::new("/dev/fuse").exists() {
            ensure!(points.contains(&"/dev/fuse"), "/dev/fuse not bound");
        }
        ensure!(!points.contains(&"/dev/pts"), "no devpts was asked");
        ensure!(
            std::fs::symlink_metadata("/dev/ptmx").is_err(),
            "ptmx link without devpts"
        );
        Ok(())
    });
    r.expect("user namespace devices");
}

#[test]
fn spec_devices_get_mode_and_owner() {
    if !root_or_skip("spec_devices_get_mode_and_owner") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    let s = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs},
        "mounts": [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}],
        "linux": {"devices": [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 416, "uid": 1000, "gid": 1000},
            {"path": "/dev/sub/blk", "type": "b", "major": 7, "minor": 0, "fileMode": 384},
            {"path": "/dev/fifo", "type": "p", "fileMode": 420}
        ]}
    }));
    // A device path outside the fresh /dev that is a symlink in the image: refused.
    let rootfs2 = busybox_rootfs(&tmp.path().join("two"));
    std::os::unix::fs::symlink("/etc/passwd", rootfs2.join("etc/evil")).expect("evil link");
    let s2 = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs2},
        "mounts": [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}],
        "linux": {"devices": [{"path": "/etc/evil", "type": "c", "major": 1, "minor": 3}]}
    }));
    let r = in_child(true, || {
        expect_refused(
            prepare_rootfs(&s2, &rootfs2, &RootfsOptions::default()),
            "symlink",
        )
        .map_err(|e| format!("symlinked device path: {e}"))?;
        let passwd =
            std::fs::symlink_metadata(rootfs2.join("etc/passwd")).map_err(|e| e.to_string())?;
        ensure!(passwd.is_file(), "etc/passwd was replaced");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        prepare_rootfs(&s, &rootfs, &RootfsOptions::default())
            .map_err(|e| format!("prepare: {e}"))?;
        nix::sys::stat::umask(old);
        let dev = rootfs.join("dev");
        let fuse = std::fs::symlink_metadata(dev.join("fuse")).map_err(|e| e.to_string())?;
        ensure!(fuse.file_type().is_char_device(), "fuse type");
        ensure!(fuse.mode() & 0o7777 == 0o640, "fuse mode {:o}", fuse.mode());
        ensure!((fuse.uid(), fuse.gid()) == (1000, 1000), "fuse owner");
        ensure!(
            (
                nix::sys::stat::major(fuse.rdev()),
                nix::sys::stat::minor(fuse.rdev())
            ) == (10, 229),
            "fuse rdev"
        );
        let blk = std::fs::symlink_metadata(dev.join("sub/blk")).map_err(|e| e.to_string())?;
        ensure!(
            blk.file_type().is_block_device() && blk.mode() & 0o7777 == 0o600,
            "blk {:o}",
            blk.mode()
        );
        let fifo = std::fs::symlink_metadata(dev.join("fifo")).map_err(|e| e.to_string())?;
        ensure!(fifo.file_type().is_fifo(), "fifo type");
        let null = std::fs::symlink_metadata(dev.join("null")).map_err(|e| e.to_string())?;
        ensure!(
            null.mode() & 0o7777 == 0o666,
            "null mode {:o} (umask leaked in)",
            null.mode()
        );
        // No devpts from the spec: no ptmx link; core only when the host has /proc/kcore.
        ensure!(
            std::fs::symlink_metadata(dev.join("ptmx")).is_err(),
            "ptmx link"
        );
        ensure!(
            link_target(&dev.join("stdin").to_string_lossy())? == "/proc/self/fd/0",
            "stdin"
        );
        Ok(())
    });
    r.expect("spec devices");
}

#[test]
fn no_pivot_moves_the_root() {
    if !root_or_skip("no_pivot_moves_the_root") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    let s = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}
        ],
        "linux": {"maskedPaths": ["/proc/keys"], "readonlyPaths": ["/proc/sys"]}
    }));
    let r = in_child(true, || {
        prepare_rootfs(&s, &rootfs, &RootfsOptions::default())
            .map_err(|e| format!("prepare: {e}"))?;
        move_root_no_pivot(&rootfs).map_err(|e| format!("no-pivot: {e}"))?;
        finalize_rootfs(&s).map_err(|e| format!("finalize: {e}"))?;
        ensure!(Path::new("/bin/busybox").exists(), "the rootfs is not /");
        ensure!(
            std::env::current_dir().ok() == Some(PathBuf::from("/")),
            "cwd"
        );
        ensure!(char_dev("/proc/keys")? == (1, 3), "/proc/keys not masked");
        ensure!(
            open_write_errno("/proc/sys/kernel/hostname") == Some(Errno::EROFS),
            "/proc/sys is writable"
        );
        let mi = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        ensure!(
            !mi.contains(" /run/netns "),
            "host mounts still attached:\n{mi}"
        );
        Ok(())
    });
    r.expect("no-pivot");
}

#[test]
fn pivot_root_failure_suggests_no_pivot() {
    if !root_or_skip("pivot_root_failure_suggests_no_pivot") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().to_path_buf();
    let r = in_child(true, || {
        // A root that is not a mount point (as after a chroot, or an initramfs): pivot_root(2)
        // answers EINVAL.
        let inner = base.join("inner");
        let newroot = inner.join("newroot");
        std::fs::create_dir_all(&newroot).map_err(|e| e.to_string())?;
        nix::mount::mount(
            Some("tmpfs"),
            &newroot,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| e.to_string())?;
        nix::unistd::chroot(&inner).map_err(|e| e.to_string())?;
        nix::unistd::chdir("/").map_err(|e| e.to_string())?;
        match pivot_root(Path::new("/newroot")) {
            Err(e @ RootfsError::PivotRoot { .. }) => {
                ensure!(e.to_string().contains("--no-pivot"), "no hint: {e}");
                Ok(())
            }
            other => Err(format!("expected a PivotRoot error, got {other:?}")),
        }
    });
    r.expect("pivot_root error");
}

#[test]
fn console_is_bound_from_the_pty() {
    if !root_or_skip("console_is_bound_from_the_pty") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    let s = default_spec(&rootfs, false);
    let r = in_child(true, || {
        prepare_rootfs(&s, &rootfs, &opts_hybrid()).map_err(|e| format!("prepare: {e}"))?;
        pivot_root(&rootfs).map_err(|e| format!("pivot: {e}"))?;
        finalize_rootfs(&s).map_err(|e| format!("finalize: {e}"))?;
        let master =
            nix::pty::posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY)
                .map_err(|e| format!("openpt: {e}"))?;
        nix::pty::grantpt(&master).map_err(|e| e.to_string())?;
        nix::pty::unlockpt(&master).map_err(|e| e.to_string())?;
        let name = nix::pty::ptsname_r(&master).map_err(|e| e.to_string())?;
        ensure!(name.starts_with("/dev/pts/"), "pty {name}");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        mount_console(Path::new(&name)).map_err(|e| format!("console: {e}"))?;
        nix::sys::stat::umask(old);
        let c = std::fs::metadata("/dev/console").map_err(|e| e.to_string())?;
        let p = std::fs::metadata(&name).map_err(|e| e.to_string())?;
        ensure!(
            c.file_type().is_char_device() && c.rdev() == p.rdev(),
            "console is not the pty"
        );
        // The underlying /dev/console file was made 0666 despite the umask.
        nix::mount::umount2("/dev/console", nix::mount::MntFlags::empty())
            .map_err(|e| format!("umount console: {e}"))?;
        let under = std::fs::metadata("/dev/console").map_err(|e| e.to_string())?;
        ensure!(
            under.is_file() && under.mode() & 0o7777 == 0o666,
            "console target mode {:o}",
            under.mode()
        );
        // The fd variant: a pty slave fd is accepted, /dev/null is not.
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&name)
            .map_err(|e| format!("open {name}: {e}"))?;
        barge_runtime::rootfs::mount_console_fd(slave.as_fd())
            .map_err(|e| format!("console fd: {e}"))?;
        let c = std::fs::metadata("/dev/console").map_err(|e| e.to_string())?;
        ensure!(c.rdev() == p.rdev(), "console (fd) is not the pty");
        let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
        expect_refused(barge_runtime::rootfs::mount_console_fd(null.as_fd()), "pty")?;
        let _ = master.as_raw_fd();
        Ok(())
    });
    r.expect("console");
}

#[test]
fn user_namespace_keeps_locked_flags() {
    if !root_or_skip("user_namespace_keeps_locked_flags") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    let locked = tmp.path().join("locked");
    std::fs::create_dir(&locked).expect("locked dir");
    let s = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs},
        "mounts": [
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/data", "type": "bind", "source": locked, "options": ["bind", "ro", "suid", "dev", "exec"]}
        ]
    }));
    let r = in_child(true, || {
        // A nosuid,nodev,noexec mount made outside the user namespace: inside it those
        // flags are locked and a remount that drops them fails with EPERM.
        nix::mount::mount(
            Some("tmpfs"),
            &locked,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| format!("tmpfs: {e}"))?;
        std::fs::write(locked.join("marker"), b"m").map_err(|e| e.to_string())?;
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("unshare(NEWUSER|NEWNS): {e}"))?;
        std::fs::write("/proc/self/setgroups", "deny").map_err(|e| format!("setgroups: {e}"))?;
        std::fs::write("/proc/self/uid_map", "0 0 1").map_err(|e| format!("uid_map: {e}"))?;
        std::fs::write("/proc/self/gid_map", "0 0 1").map_err(|e| format!("gid_map: {e}"))?;
        let opts = RootfsOptions {
            user_namespace: true,
            ..Default::default()
        };
        prepare_rootfs(&s, &rootfs, &opts).map_err(|e| format!("prepare: {e}"))?;
        pivot_root(&rootfs).map_err(|e| format!("pivot: {e}"))?;
        ensure!(
            std::fs::read("/data/marker").map_err(|e| e.to_string())? == b"m",
            "bind content"
        );
        let e = std::fs::write("/data/x", b"x")
            .err()
            .and_then(|e| e.raw_os_error());
        ensure!(e == Some(libc::EROFS), "ro bind is writable: {e:?}");
        use nix::sys::statvfs::FsFlags;
        let flags = nix::sys::statvfs::statvfs("/data")
            .map_err(|e| e.to_string())?
            .flags();
        ensure!(
            flags.contains(FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOEXEC),
            "locked flags lost: {flags:?}"
        );
        // Devices are binds of the host's nodes (mknod is not allowed here).
        ensure!(char_dev("/dev/null")? == (1, 3), "/dev/null");
        ensure!(
            Path::new("/dev/pts/ptmx").exists(),
            "devpts (retried without gid=5)"
        );
        ensure!(link_target("/dev/ptmx")? == "pts/ptmx", "/dev/ptmx link");
        Ok(())
    });
    r.expect("user namespace");
}

#[test]
fn cgroup2_mounts_with_and_without_cgroupns() {
    if !root_or_skip("cgroup2_mounts_with_and_without_cgroupns") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let unified = PathBuf::from("/sys/fs/cgroup/unified");
    let host_v2 = statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false);
    let unified = if host_v2 {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        unified
    };
    if !unified.join("cgroup.procs").exists() {
        eprintln!("skipping cgroup2_mounts_with_and_without_cgroupns: no cgroup2 on this host");
        return;
    }
    let mk = |name: &str| {
        let rootfs = busybox_rootfs(&tmp.path().join(name));
        let s = spec(json!({
            "ociVersion": "1.2.0", "root": {"path": rootfs},
            "mounts": [
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup",
                 "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
            ]
        }));
        (rootfs, s)
    };
    let (bind_root, bind_spec) = mk("bind");
    let (ns_root, ns_spec) = mk("ns");
    let paths = vec![(String::new(), unified.clone())];
    let r = in_child(true, || {
        for (rootfs, s, cgroupns) in [(&bind_root, &bind_spec, false), (&ns_root, &ns_spec, true)] {
            let opts = RootfsOptions {
                cgroup_paths: paths.clone(),
                cgroup_namespace: cgroupns,
                ..Default::default()
            };
            prepare_rootfs(s, rootfs, &opts).map_err(|e| format!("prepare ({cgroupns}): {e}"))?;
            let cg = rootfs.join("sys/fs/cgroup");
            let st = statfs(&cg).map_err(|e| e.to_string())?;
            ensure!(
                st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC,
                "cgroupns={cgroupns}: not cgroup2"
            );
            ensure!(
                cg.join("cgroup.procs").exists(),
                "cgroupns={cgroupns}: no cgroup.procs"
            );
            let procs = cg.join("cgroup.procs");
            ensure!(
                open_write_errno(&procs.to_string_lossy()) == Some(Errno::EROFS),
                "cgroupns={cgroupns}: cgroup2 is writable"
            );
        }
        Ok(())
    });
    r.expect("cgroup2");
}

/// Kills and reaps a helper process when dropped, also when a check fails.
struct KillOnDrop(nix::unistd::Pid);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(self.0, None);
    }
}

#[test]
fn racing_symlink_swap_never_reaches_the_host() {
    if !root_or_skip("racing_symlink_swap_never_reaches_the_host") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    let host_target = tmp.path().join("host-target");
    let src = tmp.path().join("src");
    std::fs::create_dir(&host_target).expect("host target");
    std::fs::create_dir(&src).expect("src");
    std::fs::create_dir(rootfs.join("race")).expect("race dir");
    // `race` and `race-link` swap places all the time: the destination /race/canary is
    // sometimes a directory, sometimes behind a symlink to a host path.
    std::os::unix::fs::symlink(&host_target, rootfs.join("race-link")).expect("race link");
    let s = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs},
        "mounts": [{"destination": "/race/canary", "type": "bind", "source": src, "options": ["bind"]}]
    }));
    let r = in_child(true, || {
        let rootfs_dir = nix::fcntl::open(
            &rootfs,
            nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| e.to_string())?;
        // SAFETY: this child is single-threaded (forked from the test); the racer only
        // loops on renameat2 and is killed by the guard.
        let racer = match unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())? {
            ForkResult::Child => loop {
                let _ = nix::fcntl::renameat2(
                    &rootfs_dir,
                    "race",
                    &rootfs_dir,
                    "race-link",
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
            },
            ForkResult::Parent { child } => KillOnDrop(child),
        };
        let mut landed_inside = 0;
        for _ in 0..150 {
            // SAFETY: as above; the grandchild only runs prepare_rootfs and _exits.
            match unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())? {
                ForkResult::Child => {
                    let ok = nix::sched::unshare(CloneFlags::CLONE_NEWNS).is_ok()
                        && prepare_rootfs(&s, &rootfs, &RootfsOptions::default()).is_ok();
                    // SAFETY: leave without running anything of the parent's.
                    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
                }
                ForkResult::Parent { child } => {
                    if let Ok(WaitStatus::Exited(_, 0)) = waitpid(child, None) {
                        landed_inside += 1;
                    }
                }
            }
            let entries = std::fs::read_dir(&host_target)
                .map_err(|e| e.to_string())?
                .count();
            ensure!(
                entries == 0,
                "a mount target appeared in the host directory"
            );
        }
        drop(racer);
        ensure!(
            landed_inside > 0,
            "no prepare_rootfs succeeded during the race"
        );
        Ok(())
    });
    r.expect("race");
    assert_eq!(
        std::fs::read_dir(&host_target)
            .expect("host target")
            .count(),
        0,
        "host directory got an entry"
    );
    assert!(host_mounts_under(tmp.path()).is_empty());
}

#[test]
fn open_procfs_refuses_redirected_paths() {
    if !root_or_skip("open_procfs_refuses_redirected_paths") {
        return;
    }
    use barge_runtime::rootfs::open_procfs;
    use nix::fcntl::OFlag;
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(tmp.path());
    let s = spec(json!({
        "ociVersion": "1.2.0", "root": {"path": rootfs},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}
        ],
        "linux": {"maskedPaths": ["/proc/keys"], "readonlyPaths": ["/proc/sys"]}
    }));
    let r = in_child(true, || {
        prepare_rootfs(&s, &rootfs, &RootfsOptions::default())
            .map_err(|e| format!("prepare: {e}"))?;
        pivot_root(&rootfs).map_err(|e| format!("pivot: {e}"))?;
        // Before finalize: plain procfs files open, "self" included.
        open_procfs(Path::new("sys/kernel/hostname"), OFlag::O_RDONLY)
            .map_err(|e| format!("hostname: {e}"))?;
        let fd = open_procfs(Path::new("self/oom_score_adj"), OFlag::O_RDONLY)
            .map_err(|e| format!("self: {e}"))?;
        let mut v = String::new();
        std::fs::File::from(fd)
            .read_to_string(&mut v)
            .map_err(|e| e.to_string())?;
        ensure!(v.trim().parse::<i32>().is_ok(), "oom_score_adj {v:?}");
        finalize_rootfs(&s).map_err(|e| format!("finalize: {e}"))?;
        // A masked file (a /dev/null bind) and a readonly bind are other mounts: refused.
        expect_refused(
            open_procfs(Path::new("keys"), OFlag::O_RDONLY).map(drop),
            "/proc/keys",
        )?;
        expect_refused(
            open_procfs(Path::new("sys/kernel/hostname"), OFlag::O_WRONLY).map(drop),
            "mount",
        )?;
        // A tmpfs over /proc: refused.
        nix::mount::mount(
            Some("tmpfs"),
            "/proc",
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| e.to_string())?;
        std::fs::write("/proc/fake", b"").map_err(|e| e.to_string())?;
        expect_refused(
            open_procfs(Path::new("fake"), OFlag::O_RDONLY).map(drop),
            "not procfs",
        )?;
        Ok(())
    });
    r.expect("open_procfs");
}
