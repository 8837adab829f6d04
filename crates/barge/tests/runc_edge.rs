//! barge-runc: terminal, hooks, seccomp, bad input, and the SECURITY.md rows.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use common::*;
use serde_json::json;

fn assert_nothing_left(r: &Runc, id: &str) {
    let left: Vec<_> = std::fs::read_dir(&r.root)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name())
                .filter(|n| !n.to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "state left under --root: {left:?}");
    assert!(!cgroup_exists(id), "cgroup of {id} left");
    // No process of ours still runs with the id in its command line.
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c);
            assert!(
                !(c.contains(id) && c.contains("barge-runc")),
                "process left: {c}"
            );
        }
    }
}

fn create_fails(r: &Runc, b: &Bundle, want: &str) {
    let id = unique_id("bad");
    // stdio to files: a create that wrongly succeeds leaves an init holding them.
    let errf = r.dir.path().join("create.err");
    let st = r
        .cmd(&["create", "-b", b.path().to_str().unwrap(), &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&errf).unwrap())
        .status()
        .unwrap();
    let err = std::fs::read_to_string(&errf).unwrap_or_default();
    if st.success() {
        r.track(&id);
    }
    assert!(!st.success(), "create succeeded; want error {want:?}");
    assert!(err.contains(want), "error {err:?} does not name {want:?}");
    assert_nothing_left(r, &id);
}

#[test]
fn bad_input_fails_cleanly_naming_the_field() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    let good = b.spec.clone();
    std::fs::write(b.path().join("config.json"), "{ \"ociVersion\": ").unwrap();
    create_fails(&r, &b, "malformed JSON");
    b.edit(|s| s["root"]["path"] = json!("nope"));
    create_fails(&r, &b, "root.path");
    b.spec = good.clone();
    b.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "foo"}))
    });
    create_fails(
        &r,
        &b,
        "linux.namespaces[6].type: unknown namespace \"foo\"",
    );
    b.spec = good.clone();
    b.edit(|s| {
        s["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "pid"}))
    });
    create_fails(&r, &b, "duplicate namespace");
    b.spec = good.clone();
    b.edit(|s| s["process"]["capabilities"]["bounding"] = json!(["CAP_CHOWN", "CAP_BOGUS"]));
    create_fails(
        &r,
        &b,
        "process.capabilities.bounding[1]: unknown capability \"CAP_BOGUS\"",
    );
    b.spec = good.clone();
    b.edit(|s| s["process"]["cwd"] = json!("tmp"));
    create_fails(&r, &b, "process.cwd");
    for (k, v, want) in [
        ("kernel.shmmax", "1+2", "contains '+'"),
        ("kernel.core_pattern", "|/x", "not a namespaced sysctl"),
        (
            "net.ipv4.ip_forward",
            "1\nx",
            "contains '+', '=' or a newline",
        ),
    ] {
        b.spec = good.clone();
        b.edit(|s| s["linux"]["sysctl"] = json!({k: v}));
        create_fails(&r, &b, want);
    }
    // net.* with the host's network namespace.
    b.spec = good.clone();
    b.edit(|s| {
        s["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
    });
    create_fails(&r, &b, "linux.sysctl.\"net.ipv4.ip_forward\"");
    // A value the kernel refuses.
    b.spec = good.clone();
    b.edit(|s| s["linux"]["resources"]["cpu"] = json!({"cpus": "999"}));
    create_fails(&r, &b, "999");
    // A missing binary is reported at create time.
    b.spec = good;
    b.args(&["no-such-binary"]);
    create_fails(&r, &b, "no-such-binary");
}

#[test]
fn sysctl_is_applied_in_the_container() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| s["linux"]["sysctl"] = json!({"kernel.shmmni": "1234", "net.ipv4.ip_forward": "1"}));
    let host = std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    let out = r.run_ok(
        &mut b,
        &[
            "sh",
            "-c",
            "cat /proc/sys/kernel/shmmni /proc/sys/net/ipv4/ip_forward",
        ],
    );
    assert_eq!(out, "1234\n1\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(),
        host
    );
}

#[test]
fn seccomp_profile_denies_mkdir() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| {
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let out = r.run_ok(
        &mut b,
        &[
            "sh",
            "-c",
            "mkdir /tmp/d 2>&1; test -d /tmp/d && echo made || echo denied",
        ],
    );
    assert!(
        out.contains("denied") && out.contains("Operation not permitted"),
        "{out}"
    );
    // Without noNewPrivileges the filter is loaded before the capability drop.
    b.edit(|s| s["process"]["noNewPrivileges"] = json!(false));
    let out = r.run_ok(
        &mut b,
        &[
            "sh",
            "-c",
            "mkdir /tmp/e 2>/dev/null; test -d /tmp/e && echo made || echo denied",
        ],
    );
    assert_eq!(out, "denied\n");
}

fn recv_fd(sock: &std::os::unix::net::UnixStream) -> OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let m = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    for c in m.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd was just received and is ours.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received");
}

#[test]
fn terminal_through_console_socket() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| s["process"]["terminal"] = json!(true));
    b.args(&[
        "sh",
        "-c",
        "echo hi-from-tty; tty; readlink /proc/self/fd/1",
    ]);
    let sock_path = r.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let id = unique_id("tty");
    r.create_args(
        &id,
        &[
            "-b",
            b.path().to_str().unwrap(),
            "--console-socket",
            sock_path.to_str().unwrap(),
        ],
    );
    let (conn, _) = listener.accept().unwrap();
    let master = recv_fd(&conn);
    r.ok(&["start", &id]);
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    use std::io::Read;
    // Read until the slave side closes (EIO).
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("hi-from-tty"), "{out}");
    assert!(
        out.contains("/dev/console") || out.contains("/dev/pts/"),
        "{out}"
    );
}

#[test]
fn hooks_run_in_order_with_state_on_stdin() {
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    let order = b.rootfs().join("order");
    let state_copy = b.path().join("prestart-state.json");
    let host = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >> {}", order.display())]});
    b.edit(|s| {
        s["hooks"] = json!({
            "prestart": [{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}; echo prestart >> {}", state_copy.display(), order.display())]}],
            "createRuntime": [host("createRuntime")],
            "createContainer": [host("createContainer")],
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer >> /order"]}],
            "poststart": [host("poststart")],
            "poststop": [host("poststop")],
        });
    });
    let id = unique_id("hooks");
    let (code, out, err) = {
        b.args(&["true"]);
        r.run(&id, &b)
    };
    assert_eq!(code, 0, "{out} {err}");
    let got = std::fs::read_to_string(&order).unwrap();
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_copy).unwrap()).unwrap();
    assert_eq!(st["id"], json!(id));
    assert!(st["pid"].as_i64().unwrap() > 1);
    // runc reports "created" to prestart hooks; runtime-tools' hooks_stdin checks it.
    assert_eq!(st["status"], json!("created"));
    assert_eq!(
        st["bundle"],
        json!(std::fs::canonicalize(b.path()).unwrap())
    );

    // A failing hook fails create, with its output, and leaves nothing.
    b.edit(|s| {
        s["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-said-no >&2; exit 3"]}]});
    });
    create_fails(&r, &b, "hook-said-no");
    b.edit(|s| {
        s["hooks"] = json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo cc-said-no; exit 1"]}]});
    });
    create_fails(&r, &b, "cc-said-no");
    b.edit(|s| {
        s["hooks"] =
            json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}]});
    });
    create_fails(&r, &b, "timed out");
}

#[test]
fn cwd_through_leaked_fds_never_reaches_the_host() {
    // CVE-2024-21626.
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.args(&["sh", "-c", "pwd"]);
    for n in 3..=32 {
        b.edit(|s| s["process"]["cwd"] = json!(format!("/proc/self/fd/{n}")));
        let id = unique_id("cwd");
        let (code, out, _) = r.run(&id, &b);
        if code == 0 {
            assert!(
                out.starts_with('/') && !out.contains("unreachable"),
                "fd {n}: cwd {out:?}"
            );
        }
    }
    // The init holds only 0-2 (plus what --preserve-fds asks).
    b.edit(|s| s["process"]["cwd"] = json!("/"));
    b.args(&["sleep", "100"]);
    let id = unique_id("fds");
    r.create(&id, &b);
    r.ok(&["start", &id]);
    let fds = r.ok(&["exec", &id, "ls", "/proc/1/fd"]);
    assert_eq!(fds.split_whitespace().collect::<Vec<_>>(), ["0", "1", "2"]);
    r.ok(&["delete", "--force", &id]);
}

fn file_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("read binary")
}

#[test]
fn runtime_process_is_unreachable_from_the_container() {
    // CVE-2019-5736 / CVE-2016-9962 class: the exec'ing runtime process is non-dumpable, so
    // a container root (same uid, all caps in its user namespace) cannot read its exe link
    // or fds, let alone write the binary.
    if skip_unless_root() {
        return;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_barge"));
    let before = file_bytes(bin);
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    // Every capability this process can hand on.
    let all: Vec<String> = barge_runtime::caps::bounding_names().collect();
    b.user_ns(0).edit(|s| {
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set] = json!(all);
        }
        s["process"]["noNewPrivileges"] = json!(false);
    });
    // Shell builtins only (no fork per probe) so the loop is fast enough to catch the
    // joining process between setns and execve: opening /proc/<pid>/environ needs ptrace
    // read access, and the runtime's environment carries a marker.
    b.args(&["sh", "-c", "while true; do for p in /proc/[0-9]*; do x=; IFS= read -r x < $p/environ 2>/dev/null; case \"$x\" in *host-secret-marker*) echo \"$p\" >> /breach;; esac; { echo x >> $p/exe; } 2>/dev/null && echo \"wrote $p\" >> /breach; done; done"]);
    let id = unique_id("exe");
    r.create(&id, &b);
    r.ok(&["start", &id]);
    for _ in 0..150 {
        let o = r
            .cmd(&["exec", &id, "true"])
            .env("BARGE_TEST", "host-secret-marker")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    r.ok(&["delete", "--force", &id]);
    let breach = std::fs::read_to_string(b.rootfs().join("breach")).unwrap_or_default();
    assert!(breach.is_empty(), "container reached the runtime: {breach}");
    assert!(file_bytes(bin) == before, "the barge binary changed");
}

/// Runs `barge-runc run` with fds 3, 4 and 5 open (not close-on-exec) and `--preserve-fds n`;
/// returns the container's stdout.
fn run_with_inherited_fds(r: &Runc, b: &Bundle, preserve: &str) -> String {
    use std::os::unix::process::CommandExt;
    let id = unique_id("fds");
    r.track(&id);
    let files: Vec<std::fs::File> = (0..3)
        .map(|_| std::fs::File::open(b.path().join("config.json")).unwrap())
        .collect();
    let raw: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
    let mut cmd = r.cmd(&[
        "run",
        "--preserve-fds",
        preserve,
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    // SAFETY: only dup2 (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Via fds 100+ first: a source may already sit at 3..5, and dup2(x, x) would
            // leave it close-on-exec.
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 100 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for i in 0..raw.len() as i32 {
                if libc::dup2(100 + i, 3 + i) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    drop(files);
    assert!(
        o.status.success(),
        "run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn fds_closed_and_cwd_entered_before_a_seccomp_filter_that_denies_them() {
    // runtime-tools' default config carries a seccomp profile without close_range; runc
    // closes inherited fds and enters process.cwd before loading the filter.
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| {
        s["process"]["noNewPrivileges"] = json!(false);
        s["process"]["cwd"] = json!("/tmp");
        s["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["close_range", "chdir", "fchdir", "getcwd"],
                          "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    // The shell (pid 1) lists its own fds; `; true` keeps it from exec'ing ls.
    b.args(&["sh", "-c", "readlink /proc/self/cwd; ls /proc/$$/fd; true"]);
    let out = run_with_inherited_fds(&r, &b, "0");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["/tmp", "0", "1", "2"],
        "{out}"
    );
    let out = run_with_inherited_fds(&r, &b, "1");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["/tmp", "0", "1", "2", "3"],
        "{out}"
    );
    // The same filter with noNewPrivileges (loaded last, just before execve).
    b.edit(|s| s["process"]["noNewPrivileges"] = json!(true));
    let out = run_with_inherited_fds(&r, &b, "2");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["/tmp", "0", "1", "2", "3", "4"],
        "{out}"
    );
}

#[test]
fn failing_poststart_and_poststop_hooks_warn_and_the_rest_run() {
    // runtime-tools' poststart_fail and poststop_fail: "the runtime MUST log a warning, but
    // the remaining hooks and lifecycle continue as if the hook had succeeded".
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    let out = b.rootfs().join("output");
    let ok = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >> {}", out.display())]});
    let fail = json!({"path": "/bin/false", "args": ["false"]});
    b.edit(|s| {
        s["hooks"] = json!({
            "poststart": [fail.clone(), ok("poststart")],
            "poststop": [fail.clone(), ok("poststop")],
        });
    });
    b.args(&["true"]);
    let id = unique_id("hookfail");
    r.create(&id, &b);
    let o = r.out(&["start", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning"));
    let t = std::time::Instant::now();
    while r.status(&id) != "stopped" {
        assert!(t.elapsed().as_secs() < 10);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = r.out(&["delete", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning"));
    assert!(!r.out(&["state", &id]).status.success());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "poststart\npoststop\n"
    );
}

#[test]
fn rootfs_propagation_unbindable_starts_and_refuses_binds_of_root() {
    // runtime-tools' linux_rootfs_propagation: with "unbindable" the container starts and a
    // bind mount of `/` inside it fails with EINVAL; with "private" it succeeds.
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    b.edit(|s| {
        for set in ["bounding", "effective", "permitted"] {
            s["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
    });
    let script = "mkdir -p /target && mount --rbind / /target 2>&1; echo rc=$?";
    for (mode, want) in [("unbindable", "rc=255"), ("private", "rc=0")] {
        b.edit(|s| s["linux"]["rootfsPropagation"] = json!(mode));
        let out = r.run_ok(&mut b, &["sh", "-c", script]);
        assert!(out.trim_end().ends_with(want), "{mode}: {out}");
        if mode == "unbindable" {
            assert!(out.contains("Invalid argument"), "{out}");
        }
    }
}

#[test]
fn cwd_only_root_can_enter_is_entered_before_the_user_switch() {
    // runc enters process.cwd while still root, so a non-root process can start in a
    // directory it could not enter itself (and retries as the user when root is refused).
    if skip_unless_root() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let r = Runc::new();
    let mut b = Bundle::new(&r);
    let dir = b.rootfs().join("private");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    b.edit(|s| {
        s["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        s["process"]["cwd"] = json!("/private");
    });
    let out = r.run_ok(
        &mut b,
        &[
            "sh",
            "-c",
            "readlink /proc/self/cwd; id -u; ls . >/dev/null 2>&1 || echo denied",
        ],
    );
    assert_eq!(out, "/private\n1000\ndenied\n");
}

/// A pipe whose reading end is already closed: every write to the other end gets EPIPE.
fn closed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two fds we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both fds are ours; the read end is closed at once.
    unsafe {
        libc::close(fds[0]);
        OwnedFd::from_raw_fd(fds[1])
    }
}

#[test]
fn output_to_a_closed_pipe_ends_quietly_as_runc_does() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    if skip_unless_root() {
        return;
    }
    let r = Runc::new();
    let b = Bundle::new(&r);
    let id = unique_id("epipe");
    r.create(&id, &b);
    // stdout (and, for an error, stderr) on a pipe nobody reads: killed by SIGPIPE as runc
    // (Go) would be, no panic, nothing printed.
    for (args, both) in [
        (vec!["state", id.as_str()], false),
        (vec!["list"], false),
        (vec!["features"], false),
        (vec!["ps", id.as_str()], false),
        (vec!["state", "no-such-container"], true),
    ] {
        let mut c = r.cmd(&args);
        c.stdin(Stdio::null()).stdout(Stdio::from(closed_pipe()));
        if both {
            c.stderr(Stdio::from(closed_pipe()));
        } else {
            c.stderr(Stdio::piped());
        }
        let o = c.output().expect("barge-runc");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
    // The usual way: a reader that takes one byte.
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --root {} state {id} | head -c1",
            r.bin.display(),
            r.root.display()
        ))
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    r.ok(&["delete", "--force", &id]);
}
