//! barge-runc end to end: real containers from busybox bundles.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn run_echo_stdout_and_exit_codes() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    assert_eq!(
        r.run_ok(&mut b, &["echo", "hello", "world"]),
        "hello world\n"
    );
    b.args(&["sh", "-c", "exit 3"]);
    let id = unique_id("exit");
    let (code, _, _) = r.run(&id, &b);
    assert_eq!(code, 3);
    // Killed: 128 + signal. Signals sent to `run` reach the container's init.
    b.args(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; while true; do usleep 10000; done",
    ]);
    for (sig, via_runtime, want) in [("KILL", true, 137), ("TERM", false, 42)] {
        let id = unique_id("sig");
        r.track(&id);
        let mut child = r
            .cmd(&["run", "-b", b.path().to_str().unwrap(), &id])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        while !r.out(&["state", &id]).status.success() || r.status(&id) != "running" {
            assert!(t.elapsed().as_secs() < 10);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        if via_runtime {
            r.ok(&["kill", &id, sig]);
        } else {
            // SAFETY: signalling the `run` process this test spawned.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        assert_eq!(child.wait().unwrap().code(), Some(want), "{sig}");
    }
    // run removes the container afterwards.
    assert!(r.ok(&["list", "-q"]).trim().is_empty());
    assert!(!cgroup_exists(&id), "cgroup of {id} left behind");
}

#[test]
fn create_start_state_kill_delete() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.args(&["sleep", "100"]);
    let id = unique_id("life");
    let pidfile = b.path().join("pid");
    r.create_args(
        &id,
        &[
            "-b",
            b.path().to_str().unwrap(),
            "--pid-file",
            pidfile.to_str().unwrap(),
        ],
    );
    assert_eq!(r.status(&id), "created");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, r.pid(&id));
    // The created init is blocked, not running sleep yet.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep");
    let state: Value = serde_json::from_str(&r.ok(&["state", &id])).unwrap();
    assert_eq!(state["id"], json!(id));
    assert_eq!(
        state["bundle"],
        json!(std::fs::canonicalize(b.path()).unwrap())
    );
    r.ok(&["start", &id]);
    assert_eq!(r.status(&id), "running");
    std::thread::sleep(std::time::Duration::from_millis(100));
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    // A running container is not deleted without --force.
    assert!(!r.out(&["delete", &id]).status.success());
    let list = r.ok(&["list", "--format", "json"]);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], json!(id));
    assert_eq!(list[0]["status"], json!("running"));
    assert!(r.ok(&["list"]).contains(&id));
    r.ok(&["kill", &id, "KILL"]);
    let t = std::time::Instant::now();
    while r.status(&id) != "stopped" {
        assert!(t.elapsed().as_secs() < 10, "not stopped");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    r.ok(&["delete", &id]);
    assert!(!r.out(&["state", &id]).status.success());
    assert!(!r.root.join(&id).exists());
    assert!(!cgroup_exists(&id));
}

#[test]
fn process_settings_hostname_env_cwd_user_umask_rlimits() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| {
        s["hostname"] = json!("bargehost");
        s["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
        s["process"]["cwd"] = json!("/tmp");
        s["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 65534], "umask": 23});
        s["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 777, "hard": 888}]);
    });
    let out = r.run_ok(
        &mut b,
        &[
            "sh",
            "-c",
            "hostname; echo $FOO; pwd; id; umask; ulimit -n; ulimit -Hn; echo $HOME",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");
    assert_eq!(lines[0], "bargehost");
    assert_eq!(lines[1], "bar baz");
    assert_eq!(lines[2], "/tmp");
    assert!(
        lines[3].starts_with("uid=1000(user) gid=1000(user) groups="),
        "{}",
        lines[3]
    );
    assert!(
        lines[3].contains("5") && lines[3].contains("65534"),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], "0027");
    assert_eq!(lines[5], "777");
    assert_eq!(lines[6], "888");
    assert_eq!(lines[7], "/home/user");
}

#[test]
fn capabilities_are_exactly_the_spec() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    // Default spec: CapInh 0, no ambient.
    let out = r.run_ok(&mut b, &["cat", "/proc/self/status"]);
    assert_eq!(status_field(&out, "CapInh"), Some("0000000000000000"));
    assert_eq!(status_field(&out, "CapAmb"), Some("0000000000000000"));
    // AUDIT_WRITE(29) KILL(5) NET_BIND_SERVICE(10)
    let want = format!("{:016x}", (1u64 << 29) | (1 << 5) | (1 << 10));
    assert_eq!(status_field(&out, "CapBnd"), Some(want.as_str()));
    assert_eq!(status_field(&out, "CapEff"), Some(want.as_str()));
    // A non-root user with no ambient set has nothing.
    b.edit(|s| s["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let out = r.run_ok(&mut b, &["cat", "/proc/self/status"]);
    for k in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(status_field(&out, k), Some("0000000000000000"), "{k}");
    }
    // Ambient as asked (needs inheritable + permitted).
    b.edit(|s| {
        let c = &mut s["process"]["capabilities"];
        c["inheritable"] = json!(["CAP_NET_BIND_SERVICE"]);
        c["ambient"] = json!(["CAP_NET_BIND_SERVICE"]);
    });
    let out = r.run_ok(&mut b, &["cat", "/proc/self/status"]);
    let nbs = format!("{:016x}", 1u64 << 10);
    assert_eq!(status_field(&out, "CapAmb"), Some(nbs.as_str()));
    assert_eq!(status_field(&out, "CapEff"), Some(nbs.as_str()));
    assert_eq!(status_field(&out, "NoNewPrivs"), Some("1"));
    b.edit(|s| s["process"]["noNewPrivileges"] = json!(false));
    let out = r.run_ok(&mut b, &["cat", "/proc/self/status"]);
    assert_eq!(status_field(&out, "NoNewPrivs"), Some("0"));
}

#[test]
fn namespaces_pid_readonly_root_masked_paths() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| s["root"]["readonly"] = json!(true));
    let out = r.run_ok(
        &mut b,
        &["sh", "-c", "echo $$; touch /x 2>/dev/null && echo writable || echo ro; wc -c < /proc/timer_list; readlink /proc/self/ns/net"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1], "ro");
    // Masked (this kernel has no /proc/kcore; timer_list is masked the same way).
    assert!(std::fs::metadata("/proc/timer_list")
        .is_ok_and(|_| std::fs::read("/proc/timer_list").is_ok_and(|d| !d.is_empty())));
    assert_eq!(lines[2].trim(), "0");
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(lines[3], host_net.to_str().unwrap());
}

#[test]
fn user_namespace_with_mappings() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    // The rootfs must be owned by the mapped root for a sane container.
    let st = std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(st.success());
    // sysfs cannot be mounted without a netns owner; keep the default netns-new.
    b.user_ns(100000);
    let out = r.run_ok(&mut b, &["sh", "-c", "cat /proc/self/uid_map; id -u"]);
    let mut l = out.lines();
    let map: Vec<&str> = l.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"]);
    assert_eq!(l.next(), Some("0"));
}

struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[test]
fn join_network_namespace_by_path() {
    if skip_unless_root() {
        return;
    }
    let name = unique_id("ns");
    let ok = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipped: `ip netns add` unavailable");
        return;
    }
    let _ns = Netns(name.clone());
    let want = std::fs::metadata(format!("/run/netns/{name}")).unwrap();
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| {
        for ns in s["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(format!("/run/netns/{name}"));
            }
        }
    });
    let out = r.run_ok(&mut b, &["readlink", "/proc/self/ns/net"]);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(out.trim(), format!("net:[{}]", want.ino()));
}

#[test]
fn exec_joins_the_container() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.args(&["sleep", "100"]);
    let id = unique_id("exec");
    r.create(&id, &b);
    r.ok(&["start", &id]);
    let pid = r.pid(&id);
    let out = r.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo $$; readlink /proc/self/ns/mnt; readlink /proc/self/ns/pid; hostname",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], "1");
    assert_eq!(
        lines[1],
        std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
            .unwrap()
            .to_str()
            .unwrap()
    );
    assert_eq!(
        lines[2],
        std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .unwrap()
            .to_str()
            .unwrap()
    );
    assert_eq!(lines[3], "runc");
    let o = r.out(&["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    let o = r.out(&[
        "exec",
        "--user",
        "1000:1000",
        "--cwd",
        "/tmp",
        "-e",
        "A=b",
        &id,
        "sh",
        "-c",
        "id -u; pwd; echo $A",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1000\n/tmp\nb\n");
    // process.json
    let pj = b.path().join("process.json");
    std::fs::write(&pj, r#"{"args":["sh","-c","echo from-json; exit 4"],"cwd":"/","user":{"uid":0,"gid":0},"env":["PATH=/bin"]}"#).unwrap();
    let o = r.out(&["exec", "--process", pj.to_str().unwrap(), &id]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "from-json\n");
    // A missing binary is an error naming it.
    let o = r.out(&["exec", &id, "nonexistent-binary"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nonexistent-binary"));
    // ps lists the init.
    let pids: Vec<i32> = serde_json::from_str(&r.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");
    r.ok(&["delete", "--force", &id]);
    assert!(!r.root.join(&id).exists());
}

#[test]
fn pause_and_resume() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.args(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; usleep 10000; done",
    ]);
    let id = unique_id("pause");
    r.create(&id, &b);
    r.ok(&["start", &id]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    r.ok(&["pause", &id]);
    assert_eq!(r.status(&id), "paused");
    let count = b.rootfs().join("tmp/count");
    let a = std::fs::read_to_string(&count).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        std::fs::read_to_string(&count).unwrap(),
        a,
        "advanced while paused"
    );
    r.ok(&["resume", &id]);
    assert_eq!(r.status(&id), "running");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_ne!(
        std::fs::read_to_string(&count).unwrap(),
        a,
        "did not advance after resume"
    );
    r.ok(&["kill", "--all", &id, "9"]);
    r.ok(&["delete", "--force", &id]);
}

#[test]
fn run_options_detach_no_pivot_preserve_fds() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    // --no-pivot
    b.args(&["echo", "no-pivot"]);
    let id = unique_id("np");
    r.track(&id);
    let o = r.out(&["run", "--no-pivot", "-b", b.path().to_str().unwrap(), &id]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "no-pivot\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // --preserve-fds 1: fd 3 of the caller reaches the container.
    let data = r.dir.path().join("fd3.txt");
    std::fs::write(&data, "through-fd-3\n").unwrap();
    let f = std::fs::File::open(&data).unwrap();
    b.args(&["sh", "-c", "cat <&3; ls /proc/self/fd"]);
    let id = unique_id("pfd");
    r.track(&id);
    let mut c = r.cmd(&[
        "run",
        "--preserve-fds",
        "1",
        "-b",
        b.path().to_str().unwrap(),
        &id,
    ]);
    {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let raw = f.as_raw_fd();
        // SAFETY: dup2 in the forked child before exec; async-signal-safe.
        unsafe {
            c.pre_exec(move || {
                // dup2(3, 3) would keep close-on-exec: clear it instead.
                let r = if raw == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(raw, 3)
                };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let o = c.output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("through-fd-3\n"),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // --detach returns with the container running.
    b.args(&["sleep", "100"]);
    let id = unique_id("det");
    r.track(&id);
    let st = r
        .cmd(&["run", "-d", "-b", b.path().to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(r.status(&id), "running");
    r.ok(&["delete", "-f", &id]);
}

#[test]
fn cli_misc_log_json_features_version() {
    let r = Runc::new();
    let log = r.dir.path().join("log.json");
    let o = r.out(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "no-such-container",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let line = std::fs::read_to_string(&log).unwrap();
    let v: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(v["level"], json!("error"));
    assert!(v["msg"].as_str().unwrap().contains("no-such-container"));
    assert!(v["time"].is_string());
    let f: Value = serde_json::from_str(&r.ok(&["features"])).unwrap();
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("user")));
    assert!(f["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("CAP_SYS_ADMIN")));
    assert!(r.ok(&["--version"]).contains("barge-runc version"));
    // Flags podman/conmon pass are accepted.
    let o = r.out(&[
        "--systemd-cgroup",
        "--debug",
        "create",
        "--no-new-keyring",
        "--bundle",
        "/nonexistent",
        "x",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent"));
    // spec refuses to overwrite.
    let d = tempfile::tempdir().unwrap();
    r.ok(&["spec", "--bundle", d.path().to_str().unwrap()]);
    assert!(!r
        .out(&["spec", "--bundle", d.path().to_str().unwrap()])
        .status
        .success());
}

/// Waits until `id` reports `want`.
fn wait_status(r: &Runc, id: &str, want: &str) {
    let t = std::time::Instant::now();
    while r.status(id) != want {
        assert!(t.elapsed().as_secs() < 10, "{id} never became {want}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn lifecycle_errors_as_the_runtime_spec_requires() {
    // runtime-tools' create, start, state, kill, kill_no_effect and delete validations.
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    let bundle = b.path().to_str().unwrap().to_string();
    // Every operation without an ID fails.
    for op in [
        vec!["create", "--bundle", &bundle],
        vec!["start"],
        vec!["state"],
        vec!["kill"],
        vec!["delete"],
    ] {
        assert!(!r.out(&op).status.success(), "{op:?} without an ID");
    }
    // Nor on an ID that does not exist.
    let ghost = unique_id("ghost");
    for op in ["start", "state", "kill", "delete"] {
        let o = r.out(&[op, &ghost]);
        assert!(!o.status.success(), "{op} of a missing container");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("does not exist"),
            "{op}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // A created container: a duplicate ID is refused, `delete` is refused and changes
    // nothing, `--force` deletes it.
    b.args(&["sh", "-c", "echo started >> /output"]);
    let id = unique_id("life");
    r.create(&id, &b);
    let o = r
        .cmd(&["create", "--bundle", &bundle, &id])
        .output()
        .unwrap();
    assert!(!o.status.success(), "duplicate ID accepted");
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let o = r.out(&["delete", &id]);
    assert!(!o.status.success(), "delete of a created container");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("created"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(r.status(&id), "created");
    // process.args ran only at start, once; start of a stopped container fails and does not
    // run them again.
    assert!(!b.rootfs().join("output").exists());
    r.ok(&["start", &id]);
    wait_status(&r, &id, "stopped");
    assert!(!r.out(&["start", &id]).status.success());
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("output")).unwrap(),
        "started\n"
    );
    // kill of a stopped container fails and leaves the state as it was.
    let before: Value = serde_json::from_str(&r.ok(&["state", &id])).unwrap();
    assert_eq!(before["status"], json!("stopped"));
    assert!(!r.out(&["kill", &id, "KILL"]).status.success());
    let after: Value = serde_json::from_str(&r.ok(&["state", &id])).unwrap();
    assert_eq!(before, after);
    r.ok(&["delete", &id]);
    assert!(!r.out(&["state", &id]).status.success());

    // A created container is removed by --force, its init killed.
    let id = unique_id("force");
    r.create(&id, &b);
    let pid = r.pid(&id);
    r.ok(&["delete", "--force", &id]);
    assert!(!r.out(&["state", &id]).status.success());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            // A zombie not yet reaped by its parent counts as gone.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
        }
    );
}

#[test]
fn devices_dev_links_mounts_and_oom_score_adj_as_runtimetest_checks() {
    // What runtime-tools' runtimetest checks inside the container for its default config plus
    // the linux_devices and process_oom_score_adj validations: the default devices with
    // their numbers, the /dev links, spec devices (char, block, fifo) with mode and owner,
    // the spec's mounts in order with their types, and oom_score_adj.
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| {
        s["process"]["oomScoreAdj"] = json!(100);
        s["linux"]["devices"] = json!([
            {"path": "/dev/test1", "type": "c", "major": 10, "minor": 666, "fileMode": 0o660, "uid": 0, "gid": 0},
            {"path": "/dev/test2", "type": "b", "major": 8, "minor": 666, "fileMode": 0o660, "uid": 1, "gid": 2},
            {"path": "/dev/test3", "type": "p", "major": 8, "minor": 666, "fileMode": 0o660},
        ]);
    });
    let script = "cat /proc/self/oom_score_adj; \
        for d in null zero full random urandom tty ptmx; do stat -L -c '%n %F %t:%T' /dev/$d; done; \
        for l in fd stdin stdout stderr ptmx; do echo /dev/$l $(readlink /dev/$l); done; \
        stat -c '%n %F %a %u %g' /dev/test1 /dev/test2 /dev/test3; stat -c '%t:%T' /dev/test1 /dev/test2; \
        cut -d' ' -f2,3 /proc/self/mounts";
    let out = r.run_ok(&mut b, &["sh", "-c", script]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "100", "{out}");
    // Default devices (config-linux.md "Default Devices"), numbers in hex as stat prints.
    let want_devs = [
        "/dev/null character special file 1:3",
        "/dev/zero character special file 1:5",
        "/dev/full character special file 1:7",
        "/dev/random character special file 1:8",
        "/dev/urandom character special file 1:9",
        "/dev/tty character special file 5:0",
        "/dev/ptmx character special file 5:2",
    ];
    assert_eq!(&lines[1..8], &want_devs, "{out}");
    // runtime-linux.md "/dev symbolic links".
    assert_eq!(
        &lines[8..13],
        &[
            "/dev/fd /proc/self/fd",
            "/dev/stdin /proc/self/fd/0",
            "/dev/stdout /proc/self/fd/1",
            "/dev/stderr /proc/self/fd/2",
            "/dev/ptmx pts/ptmx",
        ],
        "{out}"
    );
    assert_eq!(
        &lines[13..18],
        &[
            "/dev/test1 character special file 660 0 0",
            "/dev/test2 block special file 660 1 2",
            "/dev/test3 fifo 660 0 0",
            "a:29a",
            "8:29a",
        ],
        "{out}"
    );
    // The spec's mounts appear in its order (after the root), with their types. A "cgroup"
    // mount is a tmpfs of per-controller mounts on a v1 or hybrid host (as with runc).
    let mounts: Vec<&str> = lines[18..].to_vec();
    let spec_mounts: Vec<String> = b.spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] != json!("cgroup"))
        .map(|m| {
            format!(
                "{} {}",
                m["destination"].as_str().unwrap(),
                m["type"].as_str().unwrap()
            )
        })
        .collect();
    let mut at = 0;
    for want in &spec_mounts {
        let pos = mounts[at..]
            .iter()
            .position(|m| m == want)
            .unwrap_or_else(|| panic!("{want} not mounted after index {at}: {mounts:?}"));
        at += pos + 1;
    }
}
