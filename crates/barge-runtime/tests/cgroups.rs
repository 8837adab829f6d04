//! The cgroups module against the real kernel (root): every resource written and read back
//! from the cgroup files on the host's v1 hierarchies and on its cgroup2 tree (driven as a
//! pure v2 layout), device rules (v1 lists and the v2 eBPF filter, checked by opening device
//! nodes from a process inside), freezer, kill_all, destroy, path escapes, stats and OOM.
//! Every cgroup is made under a unique name and removed on drop, even when a test fails.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use barge_runtime::cgroups::layout::relative_path;
use barge_runtime::cgroups::{
    devices, Cgroup, CgroupError, CgroupManager, FreezerState, Layout, Mode,
};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

fn root() -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return false;
    }
    true
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "barge-test/{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn res(v: Value) -> LinuxResources {
    serde_json::from_value(v).expect("resources JSON")
}

fn read(p: impl AsRef<Path>) -> String {
    let p = p.as_ref();
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// The host's cgroup2 mount point, if any.
fn unified_root() -> Option<PathBuf> {
    Layout::detect().ok()?.unified.map(|(_, p)| p)
}

/// A cgroup made for one test; its processes are killed (by pid) and it is removed on drop.
struct TestCg {
    cg: Cgroup,
    children: Vec<Child>,
}

impl TestCg {
    fn new(layout: &Layout, tag: &str) -> TestCg {
        let cg = Cgroup::new(layout, Some(&unique(tag)), "unused").expect("cgroup path");
        TestCg {
            cg,
            children: Vec::new(),
        }
    }

    fn create(layout: &Layout, tag: &str, r: Option<Value>) -> TestCg {
        let t = TestCg::new(layout, tag);
        let r = r.map(res);
        t.cg.create(r.as_ref()).expect("create cgroup");
        t
    }

    /// Starts `args` already inside the cgroup (it joins before exec).
    fn spawn(&mut self, args: &[&str]) -> i32 {
        let procs: Vec<std::ffi::CString> = self
            .cg
            .paths()
            .iter()
            .map(|(_, p)| {
                std::ffi::CString::new(p.join("cgroup.procs").into_os_string().into_encoded_bytes())
                    .expect("path")
            })
            .collect();
        let mut c = Command::new(args[0]);
        c.args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the hook only calls open/write/close on pre-built C strings, which are
        // async-signal-safe.
        unsafe {
            c.pre_exec(move || {
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let r = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if r != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = c.spawn().expect("spawn in cgroup");
        let pid = child.id() as i32;
        self.children.push(child);
        pid
    }

    /// Runs `args` inside the cgroup to the end: (success, stderr).
    fn run(&mut self, args: &[&str]) -> (bool, String) {
        self.spawn(args);
        let child = self.children.pop().expect("child");
        let o = child.wait_with_output().expect("wait");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn v1(&self, ctl: &str) -> PathBuf {
        self.cg.v1_dir(ctl).expect("v1 controller").to_path_buf()
    }
}

impl Drop for TestCg {
    fn drop(&mut self) {
        // Everything in the cgroup (grandchildren too), thawing a frozen one, then reap.
        let _ = self.cg.kill_all();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let t = Instant::now();
        while self.cg.destroy().is_err() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn v1_host(l: &Layout) -> bool {
    if l.v1.is_empty() {
        eprintln!("skipped: no v1 hierarchies on this host");
        return false;
    }
    true
}

// ---- layout and paths ----

#[test]
fn layout_from_mounts_v1_hybrid_v2() {
    let v1 = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,cpu,cpuacct 0 0\n\
              cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
              cgroup /sys/fs/cgroup/systemd cgroup rw,xattr,name=systemd 0 0\n\
              proc /proc proc rw 0 0\n";
    let l = Layout::from_mounts(v1);
    assert_eq!(l.mode(), Mode::V1);
    assert_eq!(l.v1.len(), 3);
    assert_eq!(l.v1[0].name, "cpu,cpuacct");
    assert_eq!(l.v1[0].controllers, ["cpu", "cpuacct"]);
    assert_eq!(l.v1[2].controllers, ["name=systemd"]);

    let hybrid = format!("{v1}cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nsdelegate 0 0\n");
    let l = Layout::from_mounts(&hybrid);
    assert_eq!(l.mode(), Mode::Hybrid);
    assert_eq!(
        l.unified,
        Some(("unified".into(), PathBuf::from("/sys/fs/cgroup/unified")))
    );

    let l = Layout::from_mounts("cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n");
    assert_eq!(l.mode(), Mode::V2);
    assert_eq!(l.unified, Some((String::new(), "/sys/fs/cgroup".into())));
    // Mounts elsewhere (a container's, a test's) are not the host's hierarchies.
    let l = Layout::from_mounts("cgroup2 /tmp/x cgroup2 rw 0 0\n");
    assert!(l.unified.is_none() && l.v1.is_empty());
}

#[test]
fn layout_detect_matches_this_host() {
    let l = Layout::detect().expect("detect");
    let pure_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let want = if pure_v2 {
        Mode::V2
    } else if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        Mode::Hybrid
    } else {
        Mode::V1
    };
    assert_eq!(l.mode(), want);
    for h in &l.v1 {
        assert!(h.mountpoint.join("cgroup.procs").exists(), "{h:?}");
    }
}

#[test]
fn paths_default_absolute_relative_systemd() {
    let p = |s: Option<&str>| relative_path(s, "c1").expect("path");
    assert_eq!(p(None), PathBuf::from("barge/c1"));
    assert_eq!(p(Some("")), PathBuf::from("barge/c1"));
    assert_eq!(p(Some("/a/b")), PathBuf::from("a/b"));
    assert_eq!(p(Some("a/./b")), PathBuf::from("a/b"));
    assert_eq!(
        p(Some("system.slice:docker:abc")),
        PathBuf::from("system.slice/docker-abc.scope")
    );
    assert_eq!(
        p(Some("machine-web-db.slice:libpod:x")),
        PathBuf::from("machine.slice/machine-web.slice/machine-web-db.slice/libpod-x.scope")
    );
    assert_eq!(
        p(Some(":barge:x")),
        PathBuf::from("system.slice/barge-x.scope")
    );
    assert_eq!(
        p(Some("user.slice::x")),
        PathBuf::from("user.slice/x.scope")
    );
    assert_eq!(p(Some("-.slice:p:sub.slice")), PathBuf::from("sub.slice"));
}

#[test]
fn path_escapes_and_malformed_paths_are_refused() {
    for bad in [
        "../../etc",
        "/a/../../b",
        "a/..",
        "/",
        "..:p:n",
        "sys/../tem.slice:p:n",
        "system.slice:p:../../x",
        "nota-slice:p:n",
        "a--b.slice:p:n",
    ] {
        let e = relative_path(Some(bad), "c").expect_err(bad);
        assert!(matches!(e, CgroupError::Path { .. }), "{bad}: {e}");
        assert!(e.to_string().contains("cgroupsPath"), "{e}");
    }
    let e = relative_path(Some("/x/../.."), "c")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`..`"), "{e}");
    // The default path with an id that tries to climb is refused as well.
    assert!(relative_path(None, "../x").is_err());
    let l = Layout::from_mounts("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n");
    assert!(Cgroup::new(&l, Some("../../etc"), "c").is_err());
}

// ---- v1 ----

/// The first real disk's major:minor (for throttle rules).
fn a_disk() -> Option<(u64, u64)> {
    let mut names: Vec<_> = std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("zram") && !n.starts_with("ram"))
        .collect();
    names.sort();
    let dev = read(format!("/sys/block/{}/dev", names.first()?));
    let (a, b) = dev.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[test]
fn v1_resources_are_written_and_updated() {
    if !root() {
        return;
    }
    let l = Layout::detect().unwrap();
    if !v1_host(&l) {
        return;
    }
    let mut r = json!({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20,
                   "swappiness": 10, "kernel": 1 << 20, "disableOOMKiller": false},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
        "unified": {},
    });
    let disk = a_disk();
    if let Some((maj, min)) = disk {
        r["blockIO"] = json!({
            "throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": maj, "minor": min, "rate": 300}],
        });
    }
    let t = TestCg::create(&l, "v1res", Some(r));
    let mem = t.v1("memory");
    assert_eq!(
        read(mem.join("memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        read(mem.join("memory.soft_limit_in_bytes")),
        (32u64 << 20).to_string()
    );
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            read(mem.join("memory.memsw.limit_in_bytes")),
            (128u64 << 20).to_string()
        );
    }
    assert_eq!(read(mem.join("memory.swappiness")), "10");
    let cpu = t.v1("cpu");
    assert_eq!(read(cpu.join("cpu.shares")), "512");
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
    let cpuset = t.v1("cpuset");
    assert_eq!(read(cpuset.join("cpuset.cpus")), "0");
    assert_eq!(read(cpuset.join("cpuset.mems")), "0");
    assert_eq!(read(t.v1("pids").join("pids.max")), "42");
    if let Some((maj, min)) = disk {
        let b = t.v1("blkio");
        assert_eq!(
            read(b.join("blkio.throttle.read_bps_device")),
            format!("{maj}:{min} 1048576")
        );
        assert_eq!(
            read(b.join("blkio.throttle.write_iops_device")),
            format!("{maj}:{min} 300")
        );
    }

    // blkio weight: CFQ's or BFQ's file, or a clear refusal when the host has neither.
    let b = t.v1("blkio");
    match t.cg.apply(&res(json!({"blockIO": {"weight": 300}}))) {
        Ok(()) => {
            let f = ["blkio.weight", "blkio.bfq.weight"]
                .iter()
                .map(|f| b.join(f))
                .find(|f| f.exists())
                .expect("a weight file");
            assert!(read(&f).lines().any(|l| l.ends_with("300")), "{}", read(&f));
        }
        Err(e) => assert!(matches!(e, CgroupError::Unsupported { .. }), "{e}"),
    }
    let e =
        t.cg.apply(&res(json!({"blockIO": {"weight": 5}})))
            .unwrap_err();
    assert!(e.to_string().contains("blockIO.weight"), "{e}");

    // update: raise memory above the old memory+swap, lift the quota, change pids.
    t.cg.apply(&res(json!({
        "memory": {"limit": 256 << 20, "swap": 512 << 20},
        "cpu": {"quota": -1, "shares": 1024},
        "pids": {"limit": 0},
    })))
    .expect("update");
    assert_eq!(
        read(mem.join("memory.limit_in_bytes")),
        (256u64 << 20).to_string()
    );
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "-1");
    assert_eq!(read(cpu.join("cpu.shares")), "1024");
    assert_eq!(read(t.v1("pids").join("pids.max")), "max");
    // OOM killer switch.
    t.cg.apply(&res(json!({"memory": {"disableOOMKiller": true}})))
        .unwrap();
    assert!(read(mem.join("memory.oom_control")).contains("oom_kill_disable 1"));
}

#[test]
fn refused_values_name_the_file_and_leave_nothing() {
    if !root() {
        return;
    }
    let l = Layout::detect().unwrap();
    let t = TestCg::new(&l, "refused");
    let e =
        t.cg.create(Some(&res(json!({"cpu": {"cpus": "4095-4096"}}))))
            .expect_err("impossible cpuset");
    assert!(e.to_string().contains("cpuset.cpus"), "{e}");
    for (_, p) in t.cg.paths() {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    let e =
        t.cg.create(Some(&res(json!({"memory": {"limit": 100}}))))
            .expect_err("tiny limit");
    assert!(e.to_string().contains("memory.limit"), "{e}");
    let e =
        t.cg.create(Some(&res(
            json!({"memory": {"limit": 1 << 30, "swap": 1 << 20}}),
        )))
        .expect_err("swap below limit");
    assert!(e.to_string().contains("memory.swap"), "{e}");
    let e =
        t.cg.create(Some(&res(
            json!({"devices": [{"allow": true, "access": "rwx"}]}),
        )))
        .expect_err("bad access");
    assert!(e.to_string().contains("devices"), "{e}");
    for (_, p) in t.cg.paths() {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

/// Makes char device node `name` major:minor in `dir`.
fn mknod(dir: &Path, name: &str, major: u32, minor: u32) -> PathBuf {
    let p = dir.join(name);
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mknod with a NUL-terminated path.
    let r = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )
    };
    assert_eq!(r, 0, "mknod {}", p.display());
    p
}

/// Opens `node` for reading from inside the cgroup: Ok, or the error text.
fn open_in(t: &mut TestCg, node: &Path) -> Result<(), String> {
    let (ok, err) = t.run(&[
        "dd",
        &format!("if={}", node.display()),
        "of=/dev/null",
        "count=0",
    ]);
    if ok {
        Ok(())
    } else {
        Err(err)
    }
}

const EPERM: &str = "Operation not permitted";
/// What opening a device number no driver serves gives once the cgroup lets it through.
const ENXIO: &str = "No such device or address";

#[test]
fn v1_device_rules_default_list_and_spec_rules() {
    if !root() {
        return;
    }
    let l = Layout::detect().unwrap();
    if l.v1
        .iter()
        .all(|h| !h.controllers.iter().any(|c| c == "devices"))
    {
        eprintln!("skipped: no v1 devices controller");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let null = mknod(d.path(), "null", 1, 3);
    let other = mknod(d.path(), "other", 240, 0);
    let mut t = TestCg::create(&l, "v1dev", None);
    let list = read(t.v1("devices").join("devices.list"));
    for want in [
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:9 rwm",
        "c 5:1 rwm",
        "c 136:* rwm",
        "c *:* m",
    ] {
        assert!(
            list.lines().any(|x| x == want),
            "{want} missing from {list}"
        );
    }
    assert!(!list.contains("a *:* rwm"), "{list}");
    open_in(&mut t, &null).expect("/dev/null-like node opens");
    let e = open_in(&mut t, &other).expect_err("240:0 denied");
    assert!(e.contains(EPERM), "{e}");

    let mut t2 = TestCg::create(
        &l,
        "v1dev2",
        Some(
            json!({"devices": [{"allow": true, "type": "c", "major": 240, "minor": 0, "access": "r"}]}),
        ),
    );
    let e = open_in(&mut t2, &other).expect_err("no driver");
    assert!(e.contains(ENXIO), "{e}");
}

// ---- v2 (the host's cgroup2 tree driven as a pure v2 layout) ----

fn v2_layout() -> Option<Layout> {
    let Some(u) = unified_root() else {
        eprintln!("skipped: no cgroup2 tree");
        return None;
    };
    Some(Layout::v2_at(u))
}

#[test]
fn v2_device_filter_program_denies_and_update_replaces_it() {
    if !root() {
        return;
    }
    let Some(l) = v2_layout() else { return };
    let d = tempfile::tempdir().unwrap();
    let null = mknod(d.path(), "null", 1, 3);
    let zero = mknod(d.path(), "zero", 1, 5);
    let other = mknod(d.path(), "other", 240, 0);
    let mut t = TestCg::create(&l, "v2dev", None);
    let dir = t.cg.v2_dir().unwrap().to_path_buf();
    assert_eq!(devices::attached_count(&dir).unwrap(), 1);
    open_in(&mut t, &null).expect("null allowed");
    open_in(&mut t, &zero).expect("zero allowed");
    let e = open_in(&mut t, &other).expect_err("240:0 denied by the program");
    assert!(e.contains(EPERM), "{e}");

    // An update with a rule for 240:0 (read only) replaces the program.
    t.cg.apply(&res(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 240, "minor": 0, "access": "r"},
    ]})))
    .expect("update devices");
    assert_eq!(devices::attached_count(&dir).unwrap(), 1);
    let e = open_in(&mut t, &other).expect_err("no driver");
    assert!(e.contains(ENXIO), "read allowed now: {e}");
    // Write access is still denied.
    let (ok, e) = t.run(&[
        "dd",
        "if=/dev/zero",
        &format!("of={}", other.display()),
        "count=0",
    ]);
    assert!(!ok && e.contains(EPERM), "{e}");

    // A spec deny for /dev/zero after an allow-all: denied, the rest allowed.
    t.cg.apply(&res(json!({"devices": [
        {"allow": true, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rw"},
    ]})))
    .unwrap();
    let e = open_in(&mut t, &other).expect_err("no driver");
    assert!(e.contains(ENXIO), "{e}");
    // (the default list, last, allows 1:5 again: last match decides)
    open_in(&mut t, &zero).expect("default list re-allows zero");
}

#[test]
fn device_program_shape() {
    use devices::{Kind, Rule};
    let deny_null = Rule {
        allow: false,
        kind: Kind::Char,
        major: Some(1),
        minor: Some(3),
        access: 7,
    };
    let allow_all = Rule {
        allow: true,
        kind: Kind::All,
        major: None,
        minor: None,
        access: 7,
    };
    // 6 loads; deny 1:3 (type, major, minor, result, exit); allow-all (result, exit), after
    // which nothing is emitted: unreachable code would fail the verifier.
    let p = devices::program(&[allow_all.clone(), deny_null.clone()]);
    assert_eq!(p.len(), 6 + 5 + 2);
    // Without an unconditional rule a final deny closes the program.
    let q = devices::program(&[deny_null]);
    assert_eq!(q.len(), 6 + 5 + 2);
    let dflt = devices::program(&devices::effective_rules(&[]).unwrap());
    assert!(dflt.len() > 6 + 2 * devices::DEFAULT_ALLOWED.len());
    if root() {
        devices::load(&p).expect("verifier accepts the allow-all program");
        devices::load(&q).expect("verifier accepts the deny program");
        devices::load(&dflt).expect("verifier accepts the default program");
    }
}

#[test]
fn v2_unified_keys_and_available_controllers() {
    if !root() {
        return;
    }
    let Some(l) = v2_layout() else { return };
    let ctls = l.v2_controllers();
    let mut r = json!({"unified": {"cgroup.max.descendants": "3", "cgroup.max.depth": "2"}});
    if ctls.iter().any(|c| c == "memory") {
        r["memory"] = json!({"limit": 64 << 20, "reservation": 16 << 20});
    }
    if ctls.iter().any(|c| c == "pids") {
        r["pids"] = json!({"limit": 17});
    }
    if ctls.iter().any(|c| c == "cpu") {
        r["cpu"] = json!({"shares": 1024, "quota": 20000, "period": 100000});
    }
    let huge = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned());
    let page = huge.as_deref().and_then(|h| {
        let kb: u64 = h
            .strip_prefix("hugepages-")?
            .strip_suffix("kB")?
            .parse()
            .ok()?;
        Some(if kb >= 1 << 20 {
            format!("{}GB", kb >> 20)
        } else if kb >= 1024 {
            format!("{}MB", kb >> 10)
        } else {
            format!("{kb}KB")
        })
    });
    let hugetlb = ctls.iter().any(|c| c == "hugetlb") && page.is_some();
    if let (true, Some(p)) = (hugetlb, &page) {
        r["hugepageLimits"] = json!([{"pageSize": p, "limit": 4 << 21}]);
    }
    let t = TestCg::create(&l, "v2res", Some(r));
    let d = t.cg.v2_dir().unwrap();
    assert_eq!(read(d.join("cgroup.max.descendants")), "3");
    assert_eq!(read(d.join("cgroup.max.depth")), "2");
    if ctls.iter().any(|c| c == "memory") {
        assert_eq!(read(d.join("memory.max")), (64u64 << 20).to_string());
        assert_eq!(read(d.join("memory.low")), (16u64 << 20).to_string());
    }
    if ctls.iter().any(|c| c == "pids") {
        assert_eq!(read(d.join("pids.max")), "17");
    }
    if ctls.iter().any(|c| c == "cpu") {
        assert_eq!(read(d.join("cpu.weight")), "39");
        assert_eq!(read(d.join("cpu.max")), "20000 100000");
    }
    if let (true, Some(p)) = (hugetlb, &page) {
        assert_eq!(
            read(d.join(format!("hugetlb.{p}.max"))),
            (4u64 << 21).to_string()
        );
    }
    // A unified key naming no file, or leaving the directory, is refused.
    let e =
        t.cg.apply(&res(json!({"unified": {"no.such.file": "1"}})))
            .unwrap_err();
    assert!(e.to_string().contains("no.such.file"), "{e}");
    let e =
        t.cg.apply(&res(json!({"unified": {"../cgroup.procs": "1"}})))
            .unwrap_err();
    assert!(e.to_string().contains("unified"), "{e}");
}

#[test]
fn shares_and_weights_convert() {
    use barge_runtime::cgroups::resources::{blkio_to_io_weight, shares_to_weight};
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(blkio_to_io_weight(10), 1);
    assert_eq!(blkio_to_io_weight(1000), 10_000);
    assert_eq!(blkio_to_io_weight(500), 4950);
}

// ---- freezer, kill_all, destroy ----

/// utime+stime of `pid` in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let s = read(format!("/proc/{pid}/stat"));
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn check_freezer(l: &Layout, tag: &str) {
    let mut t = TestCg::create(l, tag, None);
    let pid = t.spawn(&["sh", "-c", "while :; do :; done"]);
    t.cg.freeze().expect("freeze");
    assert_eq!(t.cg.freezer_state().unwrap(), FreezerState::Frozen);
    if let Some(d) = t.cg.v1_dir("freezer") {
        assert_eq!(read(d.join("freezer.state")), "FROZEN");
    } else {
        let d = t.cg.v2_dir().unwrap();
        assert!(read(d.join("cgroup.events")).contains("frozen 1"));
    }
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), before, "a frozen busy loop used CPU");
    t.cg.thaw().expect("thaw");
    assert_eq!(t.cg.freezer_state().unwrap(), FreezerState::Thawed);
    std::thread::sleep(Duration::from_millis(300));
    assert!(cpu_ticks(pid) > before, "the thawed loop does not run");
}

#[test]
fn freezer_v1_or_host_default() {
    if !root() {
        return;
    }
    check_freezer(&Layout::detect().unwrap(), "freeze");
}

#[test]
fn freezer_v2() {
    if !root() {
        return;
    }
    if let Some(l) = v2_layout() {
        check_freezer(&l, "freeze2");
    }
}

fn check_kill_all(l: &Layout, tag: &str) {
    let mut t = TestCg::create(l, tag, None);
    let pids: Vec<i32> = (0..3).map(|_| t.spawn(&["sleep", "1000"])).collect();
    // One more that forks a grandchild of its own.
    t.spawn(&["sh", "-c", "sleep 1000 & wait"]);
    let t0 = Instant::now();
    while t.cg.pids().unwrap().len() < 5 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    t.cg.freeze().unwrap();
    let listed = t.cg.pids().unwrap();
    for p in &pids {
        assert!(listed.contains(p), "{p} not in {listed:?}");
    }
    assert!(listed.len() >= 5, "{listed:?}");
    // Reap our children as they die, as an init would.
    let children = std::mem::take(&mut t.children);
    let reaper = std::thread::spawn(move || {
        for mut c in children {
            let _ = c.wait();
        }
    });
    t.cg.kill_all().expect("kill_all");
    assert!(t.cg.pids().unwrap().is_empty());
    reaper.join().unwrap();
    t.cg.destroy().expect("destroy after kill_all");
    for (_, p) in t.cg.paths() {
        assert!(!p.exists(), "{}", p.display());
    }
}

#[test]
fn kill_all_empties_a_frozen_cgroup() {
    if !root() {
        return;
    }
    check_kill_all(&Layout::detect().unwrap(), "killall");
}

#[test]
fn kill_all_v2() {
    if !root() {
        return;
    }
    if let Some(l) = v2_layout() {
        check_kill_all(&l, "killall2");
    }
}

#[test]
fn destroy_refuses_while_busy_then_removes_everything() {
    if !root() {
        return;
    }
    let l = Layout::detect().unwrap();
    let mut t = TestCg::create(&l, "destroy", None);
    // A nested cgroup made by the container itself goes too.
    let (_, first) = t.cg.paths()[0].clone();
    std::fs::create_dir(first.join("inner")).unwrap();
    t.spawn(&["sleep", "1000"]);
    let e = t.cg.destroy().expect_err("busy cgroup");
    assert!(
        e.to_string().contains("busy") || e.to_string().contains("Device or resource"),
        "{e}"
    );
    let mut c = t.children.pop().unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
    t.cg.destroy().expect("destroy");
    for (_, p) in t.cg.paths() {
        assert!(!p.exists(), "{} left", p.display());
    }
}

// ---- stats ----

#[test]
fn stats_match_the_cgroup_files() {
    if !root() {
        return;
    }
    let l = Layout::detect().unwrap();
    let mut t = TestCg::create(
        &l,
        "stats",
        Some(json!({"memory": {"limit": 96 << 20}, "pids": {"limit": 20}})),
    );
    t.spawn(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000",
    ]);
    t.spawn(&["sleep", "1000"]);
    std::thread::sleep(Duration::from_millis(400));
    let s = t.cg.stats().expect("stats");
    assert_eq!(s.pids.limit, 20);
    assert_eq!(s.pids.current, 3, "{s:?}");
    assert_eq!(s.memory.limit, 96 << 20);
    assert!(s.memory.usage > 0 && s.memory.usage <= 96 << 20, "{s:?}");
    assert!(s.cpu.usage_total_ns > 0, "{s:?}");
    assert!(!t.cg.oom_killed().unwrap());
    // Figures against the files, read right after (a sleeping cgroup does not move).
    if let Some(d) = t.cg.v1_dir("memory") {
        assert_eq!(
            s.memory.limit.to_string(),
            read(d.join("memory.limit_in_bytes"))
        );
        let failcnt: u64 = read(d.join("memory.failcnt")).parse().unwrap();
        assert_eq!(s.memory.failcnt, failcnt);
        let stat = read(d.join("memory.stat"));
        let cache = stat
            .lines()
            .find_map(|l| l.strip_prefix("total_cache "))
            .unwrap();
        assert_eq!(s.memory.cache.to_string(), cache);
    }
    if let Some(d) = t.cg.v1_dir("cpuacct") {
        let total: u64 = read(d.join("cpuacct.usage")).parse().unwrap();
        assert_eq!(s.cpu.usage_total_ns, total);
        let per: u64 = read(d.join("cpuacct.usage_percpu"))
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap())
            .sum();
        assert_eq!(s.cpu.usage_per_cpu_ns.iter().sum::<u64>(), per);
    }
    if let Some(d) = t.cg.v1_dir("pids") {
        assert_eq!(s.pids.current.to_string(), read(d.join("pids.current")));
    }
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["memory"]["usage"].is_u64());
}

#[test]
fn stats_v2_cpu_and_block_io() {
    if !root() {
        return;
    }
    let Some(l) = v2_layout() else { return };
    let mut t = TestCg::create(&l, "stats2", None);
    t.spawn(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000",
    ]);
    std::thread::sleep(Duration::from_millis(400));
    let s = t.cg.stats().unwrap();
    let cpu = read(t.cg.v2_dir().unwrap().join("cpu.stat"));
    let usec: u64 = cpu
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(usec > 0);
    assert_eq!(s.cpu.usage_total_ns, usec * 1000);
}

#[test]
fn oom_kill_is_counted() {
    if !root() {
        return;
    }
    let l = Layout::detect().unwrap();
    if l.v1
        .iter()
        .all(|h| !h.controllers.iter().any(|c| c == "memory"))
        && !l.v2_controllers().iter().any(|c| c == "memory")
    {
        eprintln!("skipped: no memory controller");
        return;
    }
    let mut t = TestCg::create(
        &l,
        "oom",
        Some(json!({"memory": {"limit": 16 << 20, "swap": 16 << 20}})),
    );
    assert!(!t.cg.oom_killed().unwrap());
    // dd's 64 MiB buffer, filled from /dev/zero, cannot fit in 16 MiB.
    t.spawn(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    let c = t.children.pop().unwrap();
    let st = c.wait_with_output().unwrap().status;
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL), "{st:?}");
    assert!(t.cg.oom_killed().unwrap());
    let s = t.cg.stats().unwrap();
    assert!(s.memory.oom_kill >= 1, "{s:?}");
    assert_eq!(s.memory.max_usage, 16 << 20, "{s:?}");
}
