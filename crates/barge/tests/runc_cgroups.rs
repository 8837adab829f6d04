//! cgroups end to end through barge-runc with busybox bundles (root): memory limit and OOM
//! kill detection, a pids limit stopping a fork loop, `update` on a running container,
//! `events --stats`, pause/resume through the freezer, and the default device list.
//! Containers have unique ids; the Runc helper force-deletes them (and so their cgroups).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use barge_runtime::cgroups::{Cgroup, CgroupManager, Layout};
use common::{skip_unless_root, unique_id, Bundle, Runc};
use serde_json::{json, Value};

/// The container's cgroup as the runtime lays it out (default path, host layout).
fn cgroup_of(id: &str) -> Cgroup {
    Cgroup::new(&Layout::detect().expect("layout"), None, id).expect("cgroup")
}

/// The file `name` of controller (`v1`, `v2`) for container `id`.
fn ctl_file(id: &str, v1: &str, v2_name: &str, v1_name: &str) -> PathBuf {
    let cg = cgroup_of(id);
    match cg.v1_dir(v1) {
        Some(d) => d.join(v1_name),
        None => cg.v2_dir().expect("cgroup2 dir").join(v2_name),
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

fn stats(r: &Runc, id: &str) -> Value {
    let out = r.ok(&["events", "--stats", id]);
    let v: Value = serde_json::from_str(out.trim()).expect("events JSON");
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], id, "{v}");
    v
}

/// Waits until `path` (in the rootfs) exists and returns its content.
fn wait_file(path: &Path, limit: Duration) -> String {
    let t = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return s.trim().to_string();
            }
        }
        assert!(t.elapsed() < limit, "{} never written", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(r: &Runc, b: &Bundle, tag: &str) -> String {
    let id = unique_id(tag);
    r.create(&id, b);
    r.ok(&["start", &id]);
    id
}

#[test]
fn memory_limit_applied_and_oom_kill_detected() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| {
        s["linux"]["resources"]["memory"] = json!({"limit": 32 << 20, "swap": 32 << 20});
    });
    // dd's 96 MiB buffer cannot fit: the kernel kills dd, the shell records its status.
    b.args(&[
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=96M count=1; echo $? > /tmp/rc; sleep 100",
    ]);
    let id = start(&r, &b, "oom");
    assert_eq!(
        read(&ctl_file(
            &id,
            "memory",
            "memory.max",
            "memory.limit_in_bytes"
        )),
        (32u64 << 20).to_string()
    );
    let rc = wait_file(&b.rootfs().join("tmp/rc"), Duration::from_secs(20));
    assert_eq!(rc, "137", "dd was not SIGKILLed");
    let v = stats(&r, &id);
    assert!(
        v["data"]["memory"]["oom_kill"].as_u64().unwrap() >= 1,
        "{v}"
    );
    assert_eq!(v["data"]["memory"]["usage"]["limit"], json!(32u64 << 20));
    assert!(cgroup_of(&id).oom_killed().unwrap());
    r.ok(&["delete", "--force", &id]);
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| s["linux"]["resources"]["pids"] = json!({"limit": 8}));
    b.args(&[
        "sh",
        "-c",
        "(i=0; while [ $i -lt 50 ]; do sleep 100 & i=$((i+1)); done) 2>/tmp/err; echo done > /tmp/done; sleep 100",
    ]);
    let id = start(&r, &b, "pids");
    wait_file(&b.rootfs().join("tmp/done"), Duration::from_secs(20));
    let err = std::fs::read_to_string(b.rootfs().join("tmp/err")).unwrap();
    assert!(
        err.contains("fork") || err.contains("Resource temporarily unavailable"),
        "the loop was not stopped: {err:?}"
    );
    assert_eq!(read(&ctl_file(&id, "pids", "pids.max", "pids.max")), "8");
    let v = stats(&r, &id);
    let cur = v["data"]["pids"]["current"].as_u64().unwrap();
    assert!((2..=8).contains(&cur), "{v}");
    assert_eq!(v["data"]["pids"]["limit"], 8);
    r.ok(&["delete", "--force", &id]);
}

#[test]
fn update_changes_a_running_containers_limits() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.args(&["sleep", "100"]);
    let id = start(&r, &b, "update");
    r.ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--memory-reservation",
        "32m",
        "--cpu-period",
        "100000",
        "--cpu-quota",
        "20000",
        "--cpu-shares",
        "256",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "30",
        &id,
    ]);
    let f = |v1: &str, v2n: &str, v1n: &str| read(&ctl_file(&id, v1, v2n, v1n));
    assert_eq!(
        f("memory", "memory.max", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(f("pids", "pids.max", "pids.max"), "30");
    assert_eq!(f("cpuset", "cpuset.cpus", "cpuset.cpus"), "0");
    let cg = cgroup_of(&id);
    if let Some(d) = cg.v1_dir("cpu") {
        assert_eq!(read(&d.join("cpu.cfs_quota_us")), "20000");
        assert_eq!(read(&d.join("cpu.shares")), "256");
    } else if let Some(d) = cg.v2_dir() {
        assert_eq!(read(&d.join("cpu.max")), "20000 100000");
    }
    if let Some(d) = cg.v1_dir("memory") {
        assert_eq!(
            read(&d.join("memory.soft_limit_in_bytes")),
            (32u64 << 20).to_string()
        );
    }
    // -r resources.json, with a flag overriding one of its values.
    let res = r.dir.path().join("res.json");
    std::fs::write(
        &res,
        json!({"pids": {"limit": 12}, "memory": {"limit": 96 << 20, "swap": 192 << 20}})
            .to_string(),
    )
    .unwrap();
    r.ok(&[
        "update",
        "-r",
        res.to_str().unwrap(),
        "--pids-limit",
        "13",
        &id,
    ]);
    assert_eq!(f("pids", "pids.max", "pids.max"), "13");
    assert_eq!(
        f("memory", "memory.max", "memory.limit_in_bytes"),
        (96u64 << 20).to_string()
    );
    // Refused values name the problem and change nothing.
    let o = r.out(&["update", "--memory", "lots", &id]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--memory"));
    let o = r.out(&["update", "--cpuset-cpus", "4095", &id]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cpuset.cpus"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(f("pids", "pids.max", "pids.max"), "13");
    r.ok(&["kill", &id, "KILL"]);
    let t = Instant::now();
    while r.status(&id) != "stopped" && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = r.out(&["update", "--pids-limit", "5", &id]);
    assert!(!o.status.success(), "update of a stopped container");
    r.ok(&["delete", "--force", &id]);
}

#[test]
fn events_stats_match_the_cgroup_files() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| {
        s["linux"]["resources"] = json!({"memory": {"limit": 80 << 20}, "pids": {"limit": 50}})
    });
    b.args(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo x > /tmp/ready; sleep 100",
    ]);
    let id = start(&r, &b, "events");
    wait_file(&b.rootfs().join("tmp/ready"), Duration::from_secs(30));
    let v = stats(&r, &id);
    let d = &v["data"];
    assert_eq!(d["memory"]["usage"]["limit"], json!(80u64 << 20));
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{v}");
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{v}");
    // sh execs its last command: one process, sleeping.
    assert_eq!(d["pids"]["current"], 1, "{v}");
    assert_eq!(d["pids"]["limit"], 50);
    assert!(d["blkio"]["ioServiceBytesRecursive"].is_array());
    let cg = cgroup_of(&id);
    if let Some(dir) = cg.v1_dir("cpuacct") {
        let total: u64 = read(&dir.join("cpuacct.usage")).parse().unwrap();
        assert_eq!(
            d["cpu"]["usage"]["total"], total,
            "sleeping: cpu time does not move"
        );
    }
    // Streaming: two events at a short interval.
    let mut child = r
        .cmd(&["events", "--interval", "100ms", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    for _ in 0..2 {
        let l = lines.next().unwrap().unwrap();
        let e: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(e["type"], "stats");
    }
    // The stream ends when the container stops.
    r.ok(&["kill", &id, "KILL"]);
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success());
            break;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("events did not end with the container");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    r.ok(&["delete", "--force", &id]);
    let o = r.out(&["events", "--stats", &id]);
    assert!(!o.status.success(), "events of a deleted container");
}

#[test]
fn pause_resume_freezes_through_the_cgroup() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.args(&["sh", "-c", "while :; do :; done"]);
    let id = start(&r, &b, "freeze");
    r.ok(&["pause", &id]);
    assert_eq!(r.status(&id), "paused");
    let cg = cgroup_of(&id);
    if let Some(d) = cg.v1_dir("freezer") {
        assert_eq!(read(&d.join("freezer.state")), "FROZEN");
    } else {
        assert!(read(&cg.v2_dir().unwrap().join("cgroup.events")).contains("frozen 1"));
    }
    let a = stats(&r, &id)["data"]["cpu"]["usage"]["total"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let b2 = stats(&r, &id)["data"]["cpu"]["usage"]["total"]
        .as_u64()
        .unwrap();
    assert_eq!(a, b2, "CPU used while frozen");
    r.ok(&["resume", &id]);
    assert_eq!(r.status(&id), "running");
    std::thread::sleep(Duration::from_millis(300));
    let c = stats(&r, &id)["data"]["cpu"]["usage"]["total"]
        .as_u64()
        .unwrap();
    assert!(c > b2, "no CPU used after resume");
    // delete --force of a paused container kills everything and removes the cgroup.
    r.ok(&["pause", &id]);
    r.ok(&["delete", "--force", &id]);
    for (_, p) in cg.paths() {
        assert!(!p.exists(), "{} left", p.display());
    }
}

#[test]
fn default_device_list_denies_other_devices() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    // A host node with a number not on the default list, bind-mounted in.
    let node = r.dir.path().join("other");
    let c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
    // SAFETY: mknod with a NUL-terminated path.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(240, 0)) };
    assert_eq!(rc, 0);
    b.edit(|s| {
        s["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/other", "type": "bind", "source": node, "options": ["bind"]
        }));
        // A node the spec asks for is allowed (no driver serves 240:1: ENXIO, not EPERM).
        s["linux"]["devices"] =
            json!([{"path": "/dev/extra", "type": "c", "major": 240, "minor": 1}]);
    });
    let out = r.run_ok(
        &mut b,
        &[
            "sh",
            "-c",
            "cat /dev/null && echo null-ok; head -c 1 /dev/zero >/dev/null && echo zero-ok; cat /other 2>&1; cat /dev/extra 2>&1; true",
        ],
    );
    assert!(out.contains("null-ok") && out.contains("zero-ok"), "{out}");
    assert!(out.contains("'/other': Operation not permitted"), "{out}");
    assert!(
        out.contains("'/dev/extra': No such device or address"),
        "{out}"
    );
}

#[test]
fn memory_kernel_tcp_limit_written_on_v1() {
    // runtime-tools' linux_cgroups_memory reads memory.kmem.tcp.limit_in_bytes back.
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    let mem = json!({"limit": 50593792, "kernelTCP": 50593792, "swappiness": 10});
    b.edit(|s| s["linux"]["resources"]["memory"] = mem);
    b.args(&["sleep", "100"]);
    let id = unique_id("ktcp");
    r.create(&id, &b);
    let cg = cgroup_of(&id);
    match cg.v1_dir("memory") {
        Some(d) => {
            assert_eq!(read(&d.join("memory.kmem.tcp.limit_in_bytes")), "50593792");
            assert_eq!(read(&d.join("memory.limit_in_bytes")), "50593792");
            assert_eq!(read(&d.join("memory.swappiness")), "10");
        }
        // v2 has no TCP limit of its own: ignored, as runc does; the rest applies.
        None => assert_eq!(
            read(&cg.v2_dir().expect("cgroup2 dir").join("memory.max")),
            "50593792"
        ),
    }
    r.ok(&["delete", "--force", &id]);
}
