//! End-to-end tests of the `barge` CLI against a daemon on a private socket
//! (`BARGE_TEST_DAEMON=barge|dockerd`, default barge). See cli_support for the harness.

mod cli_support;

use barge_testsupport::registry::Registry;
use cli_support::{barge_bin, pty_session, skip_unless_root, Daemon};
use std::io::Write;
use std::process::{Command, Stdio};

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn no_daemon_and_bad_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = format!("unix://{}/none.sock", dir.path().display());
    let o = Command::new(barge_bin())
        .args(["-H", &sock, "ps"])
        .stdin(Stdio::null())
        .output()
        .expect("barge");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("Cannot connect to the barge daemon"),
        "{}",
        err(&o)
    );
    // The same over TCP (nothing listens on port 1), as docker.
    let o = Command::new(barge_bin())
        .args(["-H", "tcp://127.0.0.1:1", "ps"])
        .stdin(Stdio::null())
        .output()
        .expect("barge");
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(
        err(&o).contains("Cannot connect to the barge daemon at tcp://127.0.0.1:1"),
        "{}",
        err(&o)
    );
    // `run` reports engine failures as 125.
    let o = Command::new(barge_bin())
        .args(["-H", &sock, "run", "busybox", "true"])
        .stdin(Stdio::null())
        .output()
        .expect("barge");
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    // Bad flags and bad flag values: 125 before any connection.
    for args in [
        vec!["run", "--bogus", "busybox"],
        vec!["run", "-p", "70000:80", "busybox"],
        vec!["run", "-m", "12q", "busybox"],
        vec!["run", "--ulimit", "nofile=9:1", "busybox"],
        vec!["run", "--mount", "type=bind,dst=/x", "busybox"],
        vec!["ps", "--nope"],
        vec!["ps", "--format", "{{.ID"],
        vec!["-H", "tcp://127.0.0.1:x", "ps"],
        vec!["-H", "ssh://user@host", "ps"],
    ] {
        let mut a = vec!["-H", sock.as_str()];
        if args[0] == "-H" {
            a.clear();
        }
        a.extend(args.iter());
        let o = Command::new(barge_bin())
            .args(&a)
            .stdin(Stdio::null())
            .output()
            .expect("barge");
        assert_eq!(o.status.code(), Some(125), "{a:?}: {}", err(&o));
        assert!(!err(&o).is_empty(), "{a:?} printed no error");
    }
    let o = Command::new(barge_bin())
        .arg("--help")
        .output()
        .expect("barge");
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).contains("Create and run a new container"));
    let o = Command::new(barge_bin())
        .args(["completion", "bash"])
        .output()
        .expect("barge");
    assert!(o.status.success());
    assert!(out(&o).contains("_barge"), "no bash completion function");
    for (shell, marker) in [("zsh", "#compdef barge"), ("fish", "complete -c barge")] {
        let o = Command::new(barge_bin())
            .args(["completion", shell])
            .output()
            .expect("barge");
        assert!(o.status.success(), "{shell}: {}", err(&o));
        assert!(out(&o).contains(marker), "{shell}");
    }
    // A reader that stops early (`| head -1`) is no error: the script is bigger than a
    // pipe's buffer, so the rest of the write fails with EPIPE.
    let mut ch = Command::new(barge_bin())
        .args(["completion", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("barge");
    let mut first = [0u8; 16];
    std::io::Read::read_exact(ch.stdout.as_mut().expect("stdout"), &mut first).expect("read");
    drop(ch.stdout.take());
    let o = ch.wait_with_output().expect("wait");
    // Ended quietly by SIGPIPE, as the docker CLI (cli::out); a panic would exit 101.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {}",
        o.status,
        err(&o)
    );
    assert!(err(&o).is_empty(), "{}", err(&o));
}

#[test]
fn run_exit_codes_and_streams() {
    if skip_unless_root() {
        return;
    }
    let d = Daemon::start();
    // stdout and stderr are kept apart, exit codes come through.
    let o = d.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(out(&o), "out\n");
    assert_eq!(err(&o), "err\n");
    // 127: not found; 126: cannot invoke; 125: engine error.
    let o = d.run(&["run", "--rm", "busybox", "no-such-binary"]);
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert!(
        err(&o).contains("Error response from daemon"),
        "{}",
        err(&o)
    );
    let o = d.run(&["run", "--rm", "busybox", "/etc"]);
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    // Under --init the same codes, and 128 + n for a command killed by signal n.
    let o = d.run(&["run", "--rm", "--init", "busybox", "no-such-binary"]);
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    let o = d.run(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "kill -TERM $$",
    ]);
    assert_eq!(o.status.code(), Some(143), "{}", err(&o));
    assert_eq!(
        d.ok(&["run", "--rm", "--init", "busybox", "sh", "-c", "echo $PPID"]),
        "1"
    );
    let o = d.run(&["run", "--rm", "--pull", "never", "no-such-image:1", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains("Error response from daemon:"),
        "{}",
        err(&o)
    );
    // Names already taken: the daemon's message, 125.
    d.ok(&["create", "--name", "taken", "busybox", "true"]);
    let o = d.run(&["create", "--name", "taken", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err(&o).contains("already in use"), "{}", err(&o));
    // -i forwards stdin and closes it at EOF.
    let o = d.run_stdin(
        &[
            "run",
            "--rm",
            "-i",
            "busybox",
            "sh",
            "-c",
            "tr a-z A-Z; exit 7",
        ],
        b"hello\nworld\n",
    );
    assert_eq!(out(&o), "HELLO\nWORLD\n");
    assert_eq!(o.status.code(), Some(7));
    // Flags reach the container: env, env-file, workdir, user, hostname, labels, entrypoint.
    let envf = d.dir.path().join("env.list");
    std::fs::write(&envf, "# comment\nFROM_FILE=yes\n").expect("env file");
    let o = d.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        envf.to_str().unwrap_or_default(),
        "-w",
        "/tmp",
        "-u",
        "1000:1000",
        "--hostname",
        "boxy",
        "busybox",
        "sh",
        "-c",
        "echo $A $FROM_FILE $(pwd) $(id -u) $(hostname)",
    ]);
    assert_eq!(o, "1 yes /tmp 1000 boxy");
    let o = d.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        "busybox",
        "-n",
        "via-entrypoint",
    ]);
    assert_eq!(o, "via-entrypoint");
    // A read-only rootfs, a tmpfs and a bind mount.
    let host = d.dir.path().join("bind");
    std::fs::create_dir(&host).expect("mkdir");
    std::fs::write(host.join("f"), "from-host").expect("write");
    let o = d.run(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "-v",
        &format!("{}:/mnt:ro", host.display()),
        "busybox",
        "sh",
        "-c",
        "cat /mnt/f; touch /scratch/ok && echo tmpfs-ok; touch /nope 2>/dev/null || echo ro-ok",
    ]);
    assert_eq!(out(&o), "from-hosttmpfs-ok\nro-ok\n", "{}", err(&o));
    // Without a TTY, signals to the CLI are proxied to the container (--sig-proxy).
    let child = d
        .cmd(&[
            "run",
            "--rm",
            "--name",
            "sig",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    assert!(d.eventually(20, || d.run(&["logs", "sig"]).stdout.starts_with(b"ready")));
    // SAFETY: a signal to the barge CLI process this test spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(7), "{}", err(&o));
    assert_eq!(out(&o), "ready\ngot-term\n");
    // Detached run prints the full id.
    let id = d.ok(&["run", "-d", "busybox", "true"]);
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(d.ok(&["wait", &id]), "0");
    // A wait answers its headers before the container exits (clients start it after them),
    // and the exit code once it has.
    d.ok(&[
        "create", "--name", "waited", "busybox", "sh", "-c", "exit 3",
    ]);
    let mut s = std::os::unix::net::UnixStream::connect(&d.sock).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(
        b"POST /containers/waited/wait?condition=next-exit HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n",
    )
    .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&got).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "no headers before the exit: {head:?}"
    );
    assert!(!head.contains("StatusCode"), "{head}");
    d.ok(&["start", "waited"]);
    while !String::from_utf8_lossy(&got).contains("StatusCode") {
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    assert!(
        String::from_utf8_lossy(&got).contains("\"StatusCode\":3"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn lifecycle_ps_inspect_logs_exec() {
    if skip_unless_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-l",
        "tier=front",
        "busybox",
        "sh",
        "-c",
        "echo line1; echo line2; echo err1 >&2; exec sleep 300",
    ]);
    assert_eq!(id.len(), 64);
    // ps: table, -q, --format, --filter, --no-trunc.
    let ps = d.ok(&["ps"]);
    let mut lines = ps.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("CONTAINER ID   IMAGE"), "{header}");
    assert!(header.contains("NAMES"));
    let row = lines.next().unwrap_or_default();
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(row.ends_with("web"), "{row}");
    assert_eq!(d.ok(&["ps", "-q"]), id[..12]);
    assert_eq!(d.ok(&["ps", "-q", "--no-trunc"]), id);
    assert_eq!(
        d.ok(&["ps", "--format", "{{.Names}}|{{.Image}}|{{.Labels}}"]),
        "web|busybox|tier=front"
    );
    assert_eq!(d.ok(&["ps", "--format", "table {{.Names}}"]), "NAMES\nweb");
    let j: serde_json::Value =
        serde_json::from_str(&d.ok(&["ps", "--format", "json"])).expect("json");
    assert_eq!(j["Names"], "web");
    assert_eq!(d.ok(&["ps", "-q", "--filter", "label=tier=back"]), "");
    assert_eq!(d.ok(&["ps", "-q", "--filter", "name=web"]), id[..12]);
    assert_eq!(d.ok(&["container", "ls", "-q"]), id[..12]);
    // inspect -f with nesting, json, index, range.
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "running"
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .Config.Labels}}", "web"]),
        r#"{"tier":"front"}"#
    );
    assert_eq!(
        d.ok(&["inspect", "-f", r#"{{index .Config.Labels "tier"}}"#, "web"]),
        "front"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{range .Config.Cmd}}[{{.}}]{{end}}",
            "web"
        ])
        .matches('[')
        .count(),
        3
    );
    assert_eq!(
        d.ok(&["container", "inspect", "--format", "{{.Id}}", "web"]),
        id
    );
    let full: serde_json::Value =
        serde_json::from_str(&d.ok(&["inspect", "web"])).expect("inspect json");
    assert_eq!(full[0]["Name"], "/web");
    let o = d.run(&["inspect", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("No such object: nosuch"), "{}", err(&o));
    // logs: both streams, --tail, -t.
    assert!(d.eventually(10, || out(&d.run(&["logs", "web"])).contains("line2")));
    let o = d.run(&["logs", "web"]);
    assert_eq!(out(&o), "line1\nline2\n");
    assert_eq!(err(&o), "err1\n");
    // --tail counts lines of both streams (stdout and stderr interleave by time).
    let t1 = d.run(&["logs", "--tail", "1", "web"]);
    assert_eq!(format!("{}{}", out(&t1), err(&t1)).lines().count(), 1);
    let t0 = d.run(&["logs", "--tail", "0", "web"]);
    assert_eq!(format!("{}{}", out(&t0), err(&t0)), "");
    let ts = out(&d.run(&["logs", "-t", "web"]));
    assert!(
        ts.lines()
            .all(|l| l.len() > 30 && l.as_bytes()[4] == b'-' && l.contains('T')),
        "{ts}"
    );
    // exec: output, exit code, env, user, workdir.
    assert_eq!(d.ok(&["exec", "web", "echo", "hi"]), "hi");
    let o = d.run(&["exec", "web", "sh", "-c", "exit 9"]);
    assert_eq!(o.status.code(), Some(9));
    assert_eq!(
        d.ok(&[
            "exec",
            "-e",
            "X=y",
            "-u",
            "1000",
            "-w",
            "/tmp",
            "web",
            "sh",
            "-c",
            "echo $X $(id -u) $(pwd)"
        ]),
        "y 1000 /tmp"
    );
    let o = d.run(&["exec", "web", "no-such-binary"]);
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    assert!(
        format!("{}{}", out(&o), err(&o)).contains("executable file not found"),
        "{}",
        err(&o)
    );
    let o = d.run_stdin(&["exec", "-it", "web", "true"], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("the input device is not a TTY"),
        "{}",
        err(&o)
    );
    let o = d.run_stdin(&["exec", "-i", "web", "cat"], b"piped\n");
    assert_eq!(out(&o), "piped\n");
    d.ok(&["exec", "-d", "web", "touch", "/tmp/detached"]);
    assert!(d.eventually(10, || d
        .run(&["exec", "web", "test", "-e", "/tmp/detached"])
        .status
        .success()));
    // top lists the process.
    let top = d.ok(&["top", "web"]);
    assert!(top.contains("PID") && top.contains("sleep 300"), "{top}");
    // pause / unpause.
    d.ok(&["pause", "web"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "paused"
    );
    d.ok(&["unpause", "web"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "web"]),
        "running"
    );
    // rename.
    d.ok(&["rename", "web", "web2"]);
    assert_eq!(d.ok(&["ps", "--format", "{{.Names}}"]), "web2");
    // kill -> wait gives 137; restart; stop.
    d.ok(&["kill", "web2"]);
    assert_eq!(d.ok(&["wait", "web2"]), "137");
    assert_eq!(d.ok(&["ps", "-q"]), "");
    assert_eq!(d.ok(&["ps", "-aq"]).lines().count(), 1);
    assert!(d
        .ok(&["ps", "-a", "--format", "{{.Status}}"])
        .starts_with("Exited (137)"));
    d.ok(&["restart", "-t", "1", "web2"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "web2"]),
        "true"
    );
    d.ok(&["stop", "-t", "1", "web2"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "web2"]),
        "false"
    );
    d.ok(&["start", "web2"]);
    // rm without -f refuses a running container; -f removes it.
    let o = d.run(&["rm", "web2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).starts_with("Error response from daemon:"),
        "{}",
        err(&o)
    );
    d.ok(&["rm", "-f", "web2"]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    // -l / -n show the latest created containers, running or not.
    let latest = d.ok(&["create", "--name", "latest", "busybox", "true"]);
    assert_eq!(d.ok(&["ps", "-l", "-q"]), latest[..12]);
    assert_eq!(d.ok(&["ps", "-n", "1", "--format", "{{.Names}}"]), "latest");
    assert_eq!(d.ok(&["container", "ls", "-a", "-q"]).lines().count(), 1);
    d.ok(&["container", "rm", "latest"]);
    // start -a returns the container's exit code.
    d.ok(&[
        "create",
        "--name",
        "once",
        "busybox",
        "sh",
        "-c",
        "echo attached; exit 4",
    ]);
    let o = d.run(&["start", "-a", "once"]);
    assert_eq!(out(&o), "attached\n");
    assert_eq!(o.status.code(), Some(4));
    // logs -f streams while the container runs and ends when it exits; events follow.
    // `--since` a second back: events that happen before the stream is set up are replayed
    // (the `events` process may connect after `run` has created the container).
    let since = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        - 1)
    .to_string();
    let mut ev = d
        .cmd(&[
            "events",
            "--since",
            &since,
            "--filter",
            "type=container",
            "--filter",
            "container=follow",
            "--format",
            "{{.Action}}",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("events");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "follow",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 1; echo two",
    ]);
    let lf = d.run(&["logs", "-f", "follow"]);
    assert!(lf.status.success());
    assert_eq!(out(&lf), "one\ntwo\n");
    assert_eq!(d.ok(&["wait", "follow"]), "0");
    let mut evout = ev.stdout.take().expect("events stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        let mut all = String::new();
        while let Ok(n) = evout.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
            if all.contains("die") {
                break;
            }
        }
        let _ = tx.send(all);
    });
    let seen = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_default();
    // SAFETY: a signal to the `barge events` process this test spawned.
    unsafe {
        libc::kill(ev.id() as i32, libc::SIGTERM);
    }
    let _ = ev.wait();
    assert!(
        seen.contains("create\n") && seen.contains("start\n") && seen.contains("die"),
        "{seen}"
    );
    // stats --no-stream.
    if d.requires(&["stats"], "stats --no-stream") {
        d.ok(&["run", "-d", "--name", "st", "busybox", "sleep", "300"]);
        let s = d.ok(&["stats", "--no-stream", "st"]);
        assert!(s.starts_with("CONTAINER ID   NAME"), "{s}");
        assert!(s.contains("st "), "{s}");
        assert_eq!(
            d.ok(&["stats", "--no-stream", "--format", "{{.Name}}", "st"]),
            "st"
        );
    }
}

#[test]
fn files_images_and_volumes() {
    if skip_unless_root() {
        return;
    }
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "300"]);
    // cp host -> container (file, dir) and back.
    let src = d.dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    std::fs::write(src.join("a.txt"), "alpha").expect("write");
    std::fs::write(src.join("sub/b.txt"), "beta").expect("write");
    d.ok(&[
        "cp",
        src.join("a.txt").to_str().unwrap_or_default(),
        "box:/tmp/",
    ]);
    assert_eq!(d.ok(&["exec", "box", "cat", "/tmp/a.txt"]), "alpha");
    d.ok(&[
        "cp",
        src.join("a.txt").to_str().unwrap_or_default(),
        "box:/tmp/renamed.txt",
    ]);
    assert_eq!(d.ok(&["exec", "box", "cat", "/tmp/renamed.txt"]), "alpha");
    d.ok(&["cp", src.to_str().unwrap_or_default(), "box:/srv"]);
    assert_eq!(d.ok(&["exec", "box", "cat", "/srv/sub/b.txt"]), "beta");
    let back = d.dir.path().join("back");
    std::fs::create_dir(&back).expect("mkdir");
    d.ok(&["cp", "box:/srv", back.to_str().unwrap_or_default()]);
    assert_eq!(
        std::fs::read_to_string(back.join("srv/sub/b.txt")).unwrap_or_default(),
        "beta"
    );
    let f = back.join("hosts-copy");
    d.ok(&["cp", "box:/etc/passwd", f.to_str().unwrap_or_default()]);
    assert!(std::fs::read_to_string(&f)
        .unwrap_or_default()
        .starts_with("root:"));
    let o = d.run(&["cp", "box:/no/such", back.to_str().unwrap_or_default()]);
    assert_eq!(o.status.code(), Some(1));
    // diff shows the additions.
    let diff = d.ok(&["diff", "box"]);
    assert!(diff.lines().any(|l| l == "A /tmp/a.txt"), "{diff}");
    // commit -> a runnable image with the change.
    let img = d.ok(&["commit", "-c", "ENV COMMITTED=1", "box", "committed:v1"]);
    assert!(img.starts_with("sha256:"), "{img}");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "committed:v1",
            "sh",
            "-c",
            "cat /tmp/a.txt; echo $COMMITTED"
        ]),
        "alpha1"
    );
    // images: table, -q, --format; tag, history, rmi.
    let imgs = d.ok(&["images"]);
    assert!(imgs.starts_with("REPOSITORY   TAG"), "{imgs}");
    assert!(imgs.contains("committed") && imgs.contains("busybox"));
    d.ok(&["tag", "busybox", "mybox:2"]);
    assert!(d
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .any(|l| l == "mybox:2"));
    assert!(d.ok(&["history", "committed:v1"]).starts_with("IMAGE"));
    // As dockerd, the committed step is the container's command.
    let steps = d.ok(&["history", "--format", "{{.CreatedBy}}", "committed:v1"]);
    assert_eq!(steps.lines().next(), Some("sleep 300"), "{steps}");
    let rmi = d.ok(&["rmi", "mybox:2"]);
    assert!(rmi.contains("Untagged: mybox:2"), "{rmi}");
    let o = d.run(&["rmi", "nosuch:1"]);
    assert_eq!(o.status.code(), Some(1));
    // save -> rmi -> load round trip.
    let tar = d.dir.path().join("saved.tar");
    d.ok(&[
        "save",
        "-o",
        tar.to_str().unwrap_or_default(),
        "committed:v1",
    ]);
    assert!(std::fs::metadata(&tar).map(|m| m.len()).unwrap_or(0) > 1000);
    d.ok(&["rm", "-f", "box"]);
    d.ok(&["rmi", "committed:v1"]);
    let loaded = d.ok(&["load", "-i", tar.to_str().unwrap_or_default()]);
    assert!(loaded.contains("committed:v1"), "{loaded}");
    // export a container's filesystem.
    d.ok(&["create", "--name", "ex", "busybox", "true"]);
    let exp = d.dir.path().join("ex.tar");
    d.ok(&["export", "-o", exp.to_str().unwrap_or_default(), "ex"]);
    let list = Command::new("tar")
        .arg("-tf")
        .arg(&exp)
        .output()
        .expect("tar");
    assert!(out(&list)
        .lines()
        .any(|l| l.trim_start_matches("./") == "bin/busybox"));
    // volumes.
    if d.requires(
        &["volume"],
        "volume create/ls/inspect/rm, -v and --mount of a named volume",
    ) {
        assert_eq!(d.ok(&["volume", "create", "vol1"]), "vol1");
        assert!(d.ok(&["volume", "ls", "-q"]).lines().any(|l| l == "vol1"));
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "vol1:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f",
        ]);
        assert_eq!(
            d.ok(&[
                "run",
                "--rm",
                "--mount",
                "type=volume,src=vol1,dst=/d",
                "busybox",
                "cat",
                "/d/f"
            ]),
            "kept"
        );
        assert_eq!(
            d.ok(&["volume", "inspect", "-f", "{{.Name}}", "vol1"]),
            "vol1"
        );
        assert_eq!(d.ok(&["volume", "rm", "vol1"]), "vol1");
    }
    // system df and prune. A second image of busybox's layer adds nothing to the images'
    // size (dockerd's LayersSize counts each layer once), and reports the layer as shared.
    let df = || d.ok(&["system", "df", "--format", "{{.Type}}={{.Size}}"]);
    let before = df();
    assert!(before.starts_with("Images="), "{before}");
    let tar = d.dir.path().join("busybox.tar");
    d.ok(&["import", tar.to_str().unwrap_or_default(), "busybox-twin:1"]);
    assert_eq!(df(), before);
    let one = d.ok(&["image", "ls", "--format", "{{.Size}}", "busybox-twin:1"]);
    let shared = d.ok(&["system", "df", "-v", "--format", "{{json .Images}}"]);
    assert!(
        shared.contains(&format!("\"SharedSize\":\"{one}\"")),
        "{shared}"
    );
    d.ok(&["rmi", "busybox-twin:1"]);
    let p = d.ok(&["container", "prune", "-f"]);
    assert!(p.contains("Total reclaimed space"), "{p}");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    // build: .dockerignore honoured, build args, labels, tag.
    if d.requires(
        &["build"],
        "build (context, .dockerignore, args, labels, -q, stdin)",
    ) {
        let ctx = d.dir.path().join("ctx");
        std::fs::create_dir(&ctx).expect("mkdir");
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM busybox\nARG GREETING=default\nCOPY . /ctx/\nRUN echo $GREETING > /greeting\n",
        )
        .expect("write");
        std::fs::write(ctx.join(".dockerignore"), "*.secret\n").expect("write");
        std::fs::write(ctx.join("app.txt"), "app").expect("write");
        std::fs::write(ctx.join("key.secret"), "nope").expect("write");
        let o = d.run(&[
            "build",
            "-t",
            "built:1",
            "--build-arg",
            "GREETING=hi",
            "--label",
            "l=v",
            ctx.to_str().unwrap_or_default(),
        ]);
        assert!(o.status.success(), "{}{}", out(&o), err(&o));
        assert!(
            out(&o).contains("Successfully tagged built:1"),
            "{}",
            out(&o)
        );
        assert_eq!(
            d.ok(&[
                "run",
                "--rm",
                "built:1",
                "sh",
                "-c",
                "cat /greeting; ls /ctx"
            ]),
            "hi\nDockerfile\napp.txt"
        );
        assert_eq!(
            d.ok(&["image", "inspect", "-f", "{{.Config.Labels.l}}", "built:1"]),
            "v"
        );
        let q = d.ok(&["build", "-q", ctx.to_str().unwrap_or_default()]);
        assert!(q.starts_with("sha256:") && !q.contains('\n'), "{q}");
        let o = d.run_stdin(&["build", "-"], b"FROM busybox\nRUN false\n");
        assert_eq!(o.status.code(), Some(1), "{}", out(&o));
        assert!(
            err(&o).contains("returned a non-zero code: 1"),
            "{}",
            err(&o)
        );
    }
    // cp from a tar on stdin.
    let mut t = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_cksum();
    t.append_data(&mut h, "fromstdin.txt", &b"stdin"[..])
        .expect("tar");
    let tarball = t.into_inner().expect("tar");
    d.ok(&["run", "-d", "--name", "cpdst", "busybox", "sleep", "300"]);
    let o = d.run_stdin(&["cp", "-", "cpdst:/tmp"], &tarball);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        d.ok(&["exec", "cpdst", "cat", "/tmp/fromstdin.txt"]),
        "stdin"
    );
    d.ok(&["rm", "-f", "cpdst"]);
    // cp to stdout is a tar stream.
    d.ok(&["create", "--name", "cpsrc", "busybox", "true"]);
    let o = d.run(&["cp", "cpsrc:/etc/passwd", "-"]);
    assert!(o.status.success());
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let names: Vec<String> = ar
        .entries()
        .expect("tar")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.path().ok().map(|p| p.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(names, vec!["passwd"]);
    d.ok(&["rm", "cpsrc"]);
    let p = d.ok(&["image", "prune", "-f"]);
    assert!(p.contains("Total reclaimed space"), "{p}");
    // info, version.
    assert!(d.ok(&["info"]).contains("Containers:"));
    assert!(d
        .ok(&["version", "--format", "{{.Server.ApiVersion}}"])
        .starts_with("1."));
    // events --since/--until replays what happened.
    let ev = d.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "type=container",
        "--format",
        "{{.Action}}",
    ]);
    assert!(
        ev.lines().any(|l| l == "create") && ev.lines().any(|l| l == "destroy"),
        "{ev}"
    );
}

#[test]
fn terminal_sessions() {
    if skip_unless_root() {
        return;
    }
    let d = Daemon::start();
    let env = [("BARGE_HOST", format!("unix://{}", d.sock.display()))];
    // -it: a shell on a pty of the client's size; exit code comes back.
    let (o, code) = pty_session(
        &env,
        &[barge_bin(), "run", "-it", "--rm", "busybox", "sh"],
        33,
        101,
        &[
            ("# ", b"stty size; echo $((6*7))x\r"),
            ("42x", b"\0resize:40x120"),
            ("", b"stty size\r"),
            ("\u{1}40 120", b"exit 5\r"),
        ],
    );
    assert!(o.contains("33 101"), "{o}");
    assert!(o.contains("40 120"), "resize on SIGWINCH: {o}");
    assert_eq!(code, 5, "{o}");
    // --init: the shell is PID 1's child and owns the terminal; ^C stops its `sleep` and
    // the session goes on. The word is printed by the process ^C is meant for, once it is
    // the terminal's foreground job (a ^C that reached the shell first would be lost).
    let (o, code) = pty_session(
        &env,
        &[barge_bin(), "run", "-it", "--rm", "--init", "busybox", "sh"],
        24,
        80,
        &[
            (
                "# ",
                b"echo ppid=$PPID; sh -c 'echo sl\"\"eeping; exec sleep 1000'\r",
            ),
            ("sleeping", &[3]),
            ("", b"echo done$((2+3))\r"),
            ("done5", b"exit 4\r"),
        ],
    );
    assert!(o.contains("ppid=1"), "{o}");
    assert!(o.contains("done5"), "{o}");
    assert_eq!(code, 4, "{o}");
    // Detach keys leave the container running; the client exits 0.
    let (o, code) = pty_session(
        &env,
        &[barge_bin(), "run", "-it", "--name", "det", "busybox", "sh"],
        24,
        80,
        &[("# ", b"echo ready\r"), ("ready", &[16, 17])],
    );
    assert_eq!(code, 0, "{o}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "det"]),
        "true"
    );
    // exec -it into it; then attach and exit from the attached shell.
    let (o, code) = pty_session(
        &env,
        &[barge_bin(), "exec", "-it", "det", "sh"],
        24,
        80,
        &[("# ", b"tty; exit 3\r")],
    );
    assert!(o.contains("/dev/pts/"), "{o}");
    assert_eq!(code, 3, "{o}");
    // An exec's pty takes the client's size, and its new size on SIGWINCH (exec resize),
    // with the barge CLI and with the docker CLI.
    let docker_env = [("DOCKER_HOST", format!("unix://{}", d.sock.display()))];
    for (env, argv) in [
        (&env, [barge_bin(), "exec", "-it", "det", "sh"]),
        (&docker_env, ["docker", "exec", "-it", "det", "sh"]),
    ] {
        let (o, code) = pty_session(
            env,
            &argv,
            21,
            77,
            &[
                ("# ", b"stty size; echo $((6*7))x\r"),
                ("42x", b"\0resize:31x93"),
                ("", b"stty size\r"),
                ("\u{1}31 93", b"exit 2\r"),
            ],
        );
        assert!(o.contains("21 77"), "{argv:?}: {o}");
        assert!(o.contains("31 93"), "{argv:?} exec resize: {o}");
        assert_eq!(code, 2, "{argv:?}: {o}");
    }
    // docker run -it: the container's pty (in its monitor) is resized the same way.
    let (o, code) = pty_session(
        &docker_env,
        &["docker", "run", "-it", "--rm", "busybox", "sh"],
        22,
        70,
        &[
            ("# ", b"stty size; echo $((6*7))x\r"),
            ("42x", b"\0resize:44x111"),
            ("", b"stty size\r"),
            ("\u{1}44 111", b"exit 9\r"),
        ],
    );
    assert!(o.contains("22 70"), "{o}");
    assert!(o.contains("44 111"), "container resize: {o}");
    assert_eq!(code, 9, "{o}");
    // Detach and attach again, a few times: the detached client's connection goes away
    // while the new one arrives, which once made the monitor read from the wrong client
    // and hang (its poll results no longer matched its client list).
    for round in 0..4 {
        let (o, code) = pty_session(
            &env,
            &[barge_bin(), "attach", "det"],
            24,
            80,
            &[
                ("", b"\r"),
                ("\u{1}# ", b"echo round$((40+2))\r"),
                ("round42", &[16, 17]),
            ],
        );
        assert_eq!(code, 0, "detach round {round}: {o}");
    }
    let (o, code) = pty_session(
        &env,
        &[barge_bin(), "attach", "det"],
        24,
        80,
        &[("", b"\r"), ("\u{1}# ", b"exit 6\r")],
    );
    if code != 6 {
        let st = d.run(&["inspect", "-f", "{{json .State}}", "det"]);
        let ps = d.run(&["exec", "det", "ps", "-o", "pid,stat,args"]);
        panic!(
            "attach: code {code}, output {o:?}\nstate: {}\nps: {}{}",
            out(&st),
            out(&ps),
            err(&ps)
        );
    }
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "det"]), "6");
}

#[test]
fn networks_ports_update() {
    if skip_unless_root() {
        return;
    }
    let d = Daemon::start();
    if !d.requires(
        &["network", "update"],
        "networks, ports, --ip/--network-alias, -m/--pids-limit, update",
    ) {
        return;
    }
    let net = d.ok(&["network", "create", "--subnet", "10.199.0.0/24", "testnet"]);
    assert_eq!(net.len(), 64, "{net}");
    assert!(d
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|l| l == "testnet"));
    assert_eq!(
        d.ok(&["network", "inspect", "-f", "{{.Driver}}", "testnet"]),
        "bridge"
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "n1",
        "--network",
        "testnet",
        "--ip",
        "10.199.0.5",
        "--network-alias",
        "web",
        "-p",
        "127.0.0.1:18080:80",
        "-m",
        "64m",
        "--pids-limit",
        "50",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            "n1"
        ]),
        "10.199.0.5"
    );
    assert_eq!(d.ok(&["port", "n1"]), "80/tcp -> 127.0.0.1:18080");
    assert_eq!(d.ok(&["port", "n1", "80"]), "127.0.0.1:18080");
    assert_eq!(
        d.ok(&["ps", "--format", "{{.Ports}}"]),
        "127.0.0.1:18080->80/tcp"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
            "n1"
        ]),
        "67108864 50"
    );
    d.ok(&["update", "-m", "128m", "--memory-swap", "256m", "n1"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "n1"]),
        "134217728"
    );
    // The rest of docker's resource flags, on update and on create.
    d.ok(&[
        "update",
        "--cpu-period",
        "100000",
        "--cpu-quota",
        "50000",
        "--cpuset-mems",
        "0",
        "n1",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpusetMems}}",
            "n1"
        ]),
        "100000 50000 0"
    );
    let mut create = vec![
        "create",
        "--name",
        "lim",
        "--oom-kill-disable",
        "--memory-swappiness",
        "10",
        "--cpu-quota",
        "20000",
        "--blkio-weight",
        "300",
    ];
    use std::os::unix::fs::FileTypeExt;
    let block = std::fs::read_dir("/dev")
        .expect("/dev")
        .flatten()
        .find(|e| e.metadata().is_ok_and(|m| m.file_type().is_block_device()))
        .map(|e| e.path().display().to_string());
    let (bps, iops) = block
        .as_ref()
        .map(|b| (format!("{b}:1mb"), format!("{b}:100")))
        .unwrap_or_default();
    if block.is_some() {
        create.extend(["--device-read-bps", &bps, "--device-write-iops", &iops]);
    }
    create.extend(["busybox", "true"]);
    d.ok(&create);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.OomKillDisable}} {{.HostConfig.MemorySwappiness}} {{.HostConfig.CpuQuota}} {{.HostConfig.BlkioWeight}}", "lim"]),
        "true 10 20000 300"
    );
    if let Some(b) = &block {
        assert_eq!(
            d.ok(&["inspect", "-f", "{{range .HostConfig.BlkioDeviceReadBps}}{{.Path}} {{.Rate}}{{end}}/{{range .HostConfig.BlkioDeviceWriteIOps}}{{.Rate}}{{end}}", "lim"]),
            format!("{b} 1048576/100")
        );
    }
    d.ok(&["rm", "lim"]);
    let o = d.run(&["create", "--device-read-bps", "sda:1mb", "busybox"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("PATH:RATE"), "{}", err(&o));
    let o = d.run(&["port", "n1", "81"]);
    assert_eq!(o.status.code(), Some(1));
    // connect/disconnect a second container; rm of a network in use fails.
    d.ok(&[
        "create",
        "--name",
        "n2",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    d.ok(&["network", "disconnect", "none", "n2"]);
    d.ok(&["network", "connect", "--alias", "second", "testnet", "n2"]);
    assert!(d
        .ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "n2"])
        .contains("testnet"));
    let o = d.run(&["network", "rm", "testnet"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("Error response from daemon"),
        "{}",
        err(&o)
    );
    d.ok(&["rm", "-f", "n1", "n2"]);
    assert_eq!(d.ok(&["network", "rm", "testnet"]), "testnet");
}

#[test]
fn registry_login_push_pull() {
    if skip_unless_root() {
        return;
    }
    let d = Daemon::start();
    if !d.requires(
        &["registry"],
        "login, push, pull, run pulling a missing image",
    ) {
        return;
    }
    // In the daemon's namespace, where it is `localhost:5000`; user `u`, password `p`.
    let _reg = Registry::start_in_netns(d.netns(), 5000, ("u", "p"));
    d.ok(&["tag", "busybox", "localhost:5000/bb:1"]);
    // Without credentials the registry refuses.
    let o = d.run(&["push", "localhost:5000/bb:1"]);
    assert_eq!(o.status.code(), Some(1));
    // dockerd words it "no basic auth credentials"; barge names the 401 and the fix.
    let e = err(&o);
    assert!(
        e.contains("no basic auth credentials")
            || (e.contains("unauthorized") && e.contains("login")),
        "{e}"
    );
    let o = d.run_stdin(
        &["login", "-u", "u", "--password-stdin", "localhost:5000"],
        b"wrong\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("Error response from daemon"),
        "{}",
        err(&o)
    );
    let o = d.run_stdin(
        &["login", "-u", "u", "--password-stdin", "localhost:5000"],
        b"p\n",
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("Login Succeeded"));
    let cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.dir.path().join(".docker/config.json")).expect("config.json"),
    )
    .expect("json");
    assert_eq!(cfg["auths"]["localhost:5000"]["auth"], "dTpw"); // base64("u:p")
    let o = d.run(&["push", "localhost:5000/bb:1"]);
    assert!(o.status.success(), "{}", err(&o));
    // pull and push print their progress on stdout, as the docker CLI does.
    assert!(out(&o).contains("Pushed"), "{}", out(&o));
    assert!(out(&o).contains("digest: sha256:"), "{}", out(&o));
    assert_eq!(err(&o), "");
    d.ok(&["rmi", "localhost:5000/bb:1"]);
    let o = d.run(&["pull", "localhost:5000/bb:1"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("Downloaded newer image"), "{}", out(&o));
    assert_eq!(err(&o), "");
    d.ok(&["rmi", "localhost:5000/bb:1"]);
    // On a terminal: a line per layer, redrawn in place (a bar while it downloads), ending
    // with its last status. The image needs a layer that is not here already: one committed
    // from a container, pushed, then removed.
    d.ok(&[
        "run",
        "--name",
        "mk",
        "busybox",
        "sh",
        "-c",
        "echo new > /new-file",
    ]);
    d.ok(&["commit", "mk", "localhost:5000/bb:2"]);
    d.ok(&["rm", "mk"]);
    let o = d.run(&["push", "localhost:5000/bb:2"]);
    assert!(o.status.success(), "{}", err(&o));
    d.ok(&["rmi", "localhost:5000/bb:2"]);
    let env = [
        ("BARGE_HOST", format!("unix://{}", d.sock.display())),
        ("HOME", d.dir.path().display().to_string()),
    ];
    let (o, code) = pty_session(
        &env,
        &[barge_bin(), "pull", "localhost:5000/bb:2"],
        24,
        100,
        &[],
    );
    assert_eq!(code, 0, "{o}");
    assert!(o.contains(": Pull complete"), "no finished layer line: {o}");
    assert!(o.contains(": Already exists"), "busybox's layer: {o}");
    assert!(o.contains("\x1b["), "not drawn as a terminal display: {o}");
    assert!(
        !o.contains("Pulling from bb █"),
        "a bar for a status line: {o}"
    );
    assert!(o.contains("Downloaded newer image"), "{o}");
    d.ok(&["rmi", "localhost:5000/bb:2"]);
    // run pulls a missing image.
    let o = d.run(&[
        "run",
        "--rm",
        "localhost:5000/bb:1",
        "echo",
        "pulled-and-ran",
    ]);
    assert_eq!(out(&o), "pulled-and-ran\n", "{}", err(&o));
    assert!(err(&o).contains("Unable to find image 'localhost:5000/bb:1' locally"));
    assert_eq!(
        d.ok(&["logout", "localhost:5000"]),
        "Removing login credentials for localhost:5000"
    );
    d.ok(&["rmi", "localhost:5000/bb:1"]);
    let o = d.run(&["pull", "-q", "localhost:5000/bb:1"]);
    assert_eq!(o.status.code(), Some(1));
}

/// The same commands through barge's CLI and docker's CLI against one daemon print the same.
#[test]
fn output_matches_docker_cli() {
    if skip_unless_root() {
        return;
    }
    let d = Daemon::start();
    let ports = d.requires(&["network"], "comparing a published port (-p, port)");
    let volumes = d.requires(&["volume"], "comparing volume create/ls");
    let mut run = vec!["run", "-d", "--name", "a1", "-l", "x=1"];
    if ports {
        run.extend(["-p", "127.0.0.1:18081:81"]);
    }
    run.extend([
        "busybox",
        "sh",
        "-c",
        "echo hello; echo oops >&2; exec sleep 300",
    ]);
    d.ok(&run);
    d.ok(&[
        "create",
        "--name",
        "a2",
        "-e",
        "K=V",
        "busybox",
        "echo",
        "a very long command line indeed",
    ]);
    d.ok(&["exec", "a1", "touch", "/tmp/new"]);
    if volumes {
        d.ok(&["volume", "create", "v1"]);
    }
    assert!(d.eventually(10, || out(&d.run(&["logs", "a1"])) == "hello\n"));
    // The docker CLI of the issue (28.x) lives in /usr/local/bin; Debian's (20.10) words a few
    // client-side errors differently, so those rows are compared with 23+ only.
    let docker_bin = if std::path::Path::new("/usr/local/bin/docker").exists() {
        "/usr/local/bin/docker"
    } else {
        "docker"
    };
    let v = Command::new(docker_bin)
        .arg("--version")
        .output()
        .expect("docker --version");
    let major: u32 = out(&v)
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let docker = |args: &[&str]| {
        let o = Command::new(docker_bin)
            .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
            .env("HOME", d.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker CLI");
        (o.status.code(), out(&o), err(&o))
    };
    for args in [
        vec![
            "ps",
            "-a",
            "--format",
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Ports}}\t{{.Names}}",
        ],
        vec![
            "ps",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Names}} {{.Labels}} {{.Command}}",
        ],
        vec!["ps", "-q"],
        vec![
            "ps",
            "-a",
            "--filter",
            "label=x=1",
            "--format",
            "{{.Names}}",
        ],
        vec![
            "inspect",
            "-f",
            "{{json .Config.Env}} {{.Config.Labels}} {{.State.Running}} {{.Name}}",
            "a1",
            "a2",
        ],
        vec![
            "inspect",
            "--format",
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}{{index .Config.Labels \"x\"}}",
            "a1",
        ],
        vec![
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}",
        ],
        vec!["images", "-q"],
        vec!["logs", "a1"],
        vec!["exec", "a1", "sh", "-c", "echo $HOSTNAME; exit 0"],
        vec!["exec", "a1", "no-such-binary"],
        vec!["port", "a1"],
        vec!["diff", "a1"],
        vec!["top", "a1", "-o", "comm"],
        vec!["volume", "ls"],
        vec!["system", "df"],
        // (ages like "3 seconds ago" are left out: they may tick between the two runs)
        vec![
            "images",
            "--format",
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}",
        ],
        vec![
            "history",
            "--format",
            "table {{.ID}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
            "busybox",
        ],
        vec!["network", "ls"],
        vec!["network", "ls", "--format", "{{.Name}} {{.Driver}}"],
        // Formatter contexts as JSON (HTML-escaped as Go's json.Marshal), and df -v's
        // lists for templates.
        vec!["network", "ls", "--format", "json"],
        vec!["volume", "ls", "--format", "json"],
        vec![
            "ps",
            "-a",
            "--format",
            "{{json .Ports}} {{.LocalVolumes}} {{.Size}}",
        ],
        vec![
            "images",
            "--format",
            "{{.ID}} {{.SharedSize}} {{.UniqueSize}} {{.Digest}}",
        ],
        vec![
            "system",
            "df",
            "-v",
            "--format",
            "{{range .Images}}{{.Repository}} {{.ID}} {{.Size}} {{.SharedSize}} {{.UniqueSize}} {{.Containers}};{{end}}{{json .Volumes}}",
        ],
        vec![
            "system",
            "df",
            "-v",
            "--format",
            "{{range .Containers}}{{.ID}} {{.Command}} {{.LocalVolumes}} {{.Size}} {{.Names}};{{end}}",
        ],
        vec!["inspect", "nosuch"],
        vec!["rm", "nosuch"],
        vec![
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Server.Version}} {{.Server.Os}}",
        ],
    ] {
        if major < 23 && args[0] == "rm" {
            continue;
        }
        if (!ports && args[0] == "port") || (!volumes && args[0] == "volume") {
            continue;
        }
        let o = d.run(&args);
        let (code, dout, derr) = docker(&args);
        assert_eq!(
            o.status.code(),
            code,
            "{args:?}: barge {} / docker {derr}",
            err(&o)
        );
        assert_eq!(out(&o), dout, "{args:?}");
        assert_eq!(err(&o), derr, "{args:?}");
    }
}

/// With no daemon at the default socket, root's `barge ps` starts `barge daemon` in the
/// background and says so once. Run in a private mount namespace with tmpfs over
/// /run/barge and /var/lib/barge (and a fresh network namespace), so the host's default
/// paths and any daemon on them are neither seen nor touched; the started daemon is stopped
/// by the PID in its pidfile before the namespace goes away.
#[test]
fn autostart_at_default_socket() {
    if skip_unless_root() {
        return;
    }
    for p in ["/run/barge", "/var/lib/barge"] {
        if !std::path::Path::new(p).is_dir() {
            // tmpfs needs a mount point; creating it would touch the host's paths.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED autostart_at_default_socket: {p} does not exist on this host"
            );
            return;
        }
    }
    let script = r#"
set -u
mount -t tmpfs -o mode=0700 tmpfs /run/barge || exit 90
mount -t tmpfs -o mode=0711 tmpfs /var/lib/barge || exit 91
ip link set lo up
env -u BARGE_HOST -u DOCKER_HOST "$BARGE" ps >/tmp/barge-autostart-$$.1 2>&1; c1=$?
env -u BARGE_HOST -u DOCKER_HOST "$BARGE" ps >/tmp/barge-autostart-$$.2 2>&1; c2=$?
pid=$(cat /run/barge/barge.pid 2>/dev/null)
echo "code1=$c1"
echo "code2=$c2"
echo "pid=$pid"
echo "--- first"
cat /tmp/barge-autostart-$$.1
echo "--- second"
cat /tmp/barge-autostart-$$.2
echo "--- end"
rm -f /tmp/barge-autostart-$$.1 /tmp/barge-autostart-$$.2
stopped=no
if [ -n "$pid" ]; then
    kill -TERM "$pid"
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; else stopped=yes; fi
fi
echo "stopped=$stopped"
"#;
    let o = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
        ])
        .env("BARGE", barge_bin())
        .stdin(Stdio::null())
        .output()
        .expect("unshare");
    let text = out(&o);
    assert!(o.status.success(), "{text}{}", err(&o));
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_string()
    };
    let section = |from: &str, to: &str| {
        let a = text.find(from).map(|i| i + from.len()).unwrap_or(0);
        let b = text[a..].find(to).map(|i| a + i).unwrap_or(a);
        text[a..b].to_string()
    };
    let first = section("--- first\n", "--- second");
    let second = section("--- second\n", "--- end");
    assert_eq!(field("code1"), "0", "{text}");
    assert_eq!(field("code2"), "0", "{text}");
    assert!(
        first.contains("started one in the background"),
        "first ps did not say it started a daemon: {text}"
    );
    assert_eq!(first.matches("started one").count(), 1, "{text}");
    assert!(first.contains("CONTAINER ID"), "{text}");
    assert!(
        !second.contains("started"),
        "the second ps started another daemon: {text}"
    );
    assert!(second.starts_with("CONTAINER ID"), "{text}");
    let pid: i32 = field("pid").parse().unwrap_or(0);
    assert!(pid > 0, "no pidfile at /run/barge/barge.pid: {text}");
    assert!(
        first.contains(&format!("pid {pid}")),
        "the message names another pid than the pidfile: {text}"
    );
    assert_eq!(
        field("stopped"),
        "yes",
        "the daemon ignored SIGTERM: {text}"
    );
}

/// `cp` with symlinks as Docker documents it: a link in the container is copied as the link
/// (and stat'ed as one), `-L` copies its target, a path ending in `/.` copies what the link
/// leads to; a link at the destination is followed, all inside the container's root.
#[test]
fn cp_symlinks_like_docker() {
    if skip_unless_root() {
        return;
    }
    let d = Daemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "links",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d && echo in-d > /d/f && echo pw > /etc/pwfile && ln -s /etc/pwfile /abs \
         && ln -s /d /dl && ln -s ../../../../../etc /up && ln -s nowhere /dangling \
         && touch /ready && sleep 1000",
    ]);
    assert!(d.eventually(20, || d
        .run(&["exec", "links", "test", "-e", "/ready"])
        .status
        .success()));
    // The stat of a link: name, Go's ModeSymlink, linkTarget resolved in the container.
    let (c, b) = raw_head(&d, "/containers/links/archive?path=/abs");
    assert_eq!(c, 200, "{b}");
    let st: serde_json::Value = serde_json::from_str(&b).expect("stat json");
    assert_eq!(st["name"], "abs");
    assert_eq!(st["mode"], (1u64 << 27) | 0o777);
    assert_eq!(st["linkTarget"], "/etc/pwfile");
    let (_, b) = raw_head(&d, "/containers/links/archive?path=/up");
    let st: serde_json::Value = serde_json::from_str(&b).expect("stat json");
    assert_eq!(
        st["linkTarget"], "/etc",
        "a link above the root stays in it"
    );
    let docker_host = format!("unix://{}", d.sock.display());
    let docker = |args: &[&str]| {
        Command::new("docker")
            .env("DOCKER_HOST", &docker_host)
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker")
    };
    for client in ["barge", "docker"] {
        let run = |args: &[&str]| {
            let o = if client == "barge" {
                d.run(args)
            } else {
                docker(args)
            };
            assert!(o.status.success(), "{client} {args:?}: {}", err(&o));
        };
        let out = d.dir.path().join(format!("out-{client}"));
        std::fs::create_dir_all(&out).expect("out dir");
        let o = |n: &str| out.join(n);
        let at = |n: &str| o(n).to_string_lossy().into_owned();
        // The link itself, by default.
        run(&["cp", "links:/abs", &at("abs")]);
        assert_eq!(
            std::fs::read_link(o("abs")).expect("a symlink"),
            std::path::Path::new("/etc/pwfile")
        );
        run(&["cp", "links:/dl", &at("dl")]);
        assert_eq!(
            std::fs::read_link(o("dl")).expect("a symlink"),
            std::path::Path::new("/d")
        );
        run(&["cp", "links:/dangling", &at("dangling")]);
        assert!(std::fs::symlink_metadata(o("dangling")).is_ok_and(|m| m.is_symlink()));
        // -L: the target, under the link's name.
        run(&["cp", "-L", "links:/abs", &at("abs-l")]);
        assert_eq!(std::fs::read_to_string(o("abs-l")).expect("file"), "pw\n");
        run(&["cp", "-L", "links:/dl", &at("dl-l")]);
        assert_eq!(std::fs::read_to_string(o("dl-l/f")).expect("dir"), "in-d\n");
        std::fs::create_dir_all(o("into")).expect("into");
        run(&["cp", "-L", "links:/dl", &at("into")]);
        assert_eq!(
            std::fs::read_to_string(o("into/dl/f")).expect("dir"),
            "in-d\n"
        );
        // A trailing /. follows the link: its target's content.
        run(&["cp", "links:/dl/.", &at("dl-dot")]);
        assert_eq!(
            std::fs::read_to_string(o("dl-dot/f")).expect("dir"),
            "in-d\n"
        );
        // Through a link leading above the root: the container's file, not the host's.
        run(&["cp", "links:/up/pwfile", &at("up")]);
        assert_eq!(std::fs::read_to_string(o("up")).expect("file"), "pw\n");
        // To the container: a link at the destination is followed inside the root.
        let local = o(&format!("to-{client}"));
        std::fs::write(&local, client).expect("local");
        run(&["cp", &local.to_string_lossy(), "links:/dl"]);
        let got = d.ok(&["exec", "links", "cat", &format!("/d/to-{client}")]);
        assert_eq!(got, client);
        run(&["cp", &local.to_string_lossy(), "links:/up/"]);
        let got = d.ok(&["exec", "links", "cat", &format!("/etc/to-{client}")]);
        assert_eq!(got, client);
    }
    // The links in the container are untouched.
    assert_eq!(d.ok(&["exec", "links", "readlink", "/dl"]), "/d");
    assert!(!std::path::Path::new("/etc/to-barge").exists());
}

/// A HEAD request on the daemon's socket; returns the status and the decoded
/// X-Docker-Container-Path-Stat header.
fn raw_head(d: &Daemon, path: &str) -> (u16, String) {
    use base64::Engine;
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(&d.sock).expect("connect");
    write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: barge\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let stat = out
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("X-Docker-Container-Path-Stat")
                .then(|| v.trim().to_string())
        })
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or(out);
    (code, stat)
}

#[test]
fn run_flags_namespaces_labels_cidfile() {
    if skip_unless_root() {
        return;
    }
    let d = Daemon::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cid = dir.path().join("cid");
    let labels = dir.path().join("labels");
    std::fs::write(&labels, "# comment\na=1\n\nb=from-file\n").expect("labels");
    let (cid_s, labels_s) = (cid.display().to_string(), labels.display().to_string());
    let id = d.ok(&[
        "create",
        "--cidfile",
        &cid_s,
        "--label-file",
        &labels_s,
        "--label",
        "b=flag",
        "--uts",
        "host",
        "--cgroupns",
        "host",
        "--oom-score-adj",
        "-300",
        "--device-cgroup-rule",
        "c 10:200 rwm",
        "busybox",
        "true",
    ]);
    assert_eq!(std::fs::read_to_string(&cid).expect("cidfile"), id);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Config.Labels.a}} {{.Config.Labels.b}} {{.HostConfig.UTSMode}} {{.HostConfig.CgroupnsMode}} {{.HostConfig.OomScoreAdj}} {{.HostConfig.DeviceCgroupRules}}", &id]),
        "1 flag host host -300 [c 10:200 rwm]"
    );
    // An existing cidfile: refused before anything is created.
    let before = d.ok(&["ps", "-aq"]);
    let o = d.run(&["create", "--cidfile", &cid_s, "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(err(&o).contains("container ID file found"), "{}", err(&o));
    assert_eq!(d.ok(&["ps", "-aq"]), before);
    d.ok(&["rm", &id]);
    // (lowering it needs CAP_SYS_RESOURCE, which this host's root lacks)
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--oom-score-adj",
            "300",
            "busybox",
            "cat",
            "/proc/self/oom_score_adj"
        ]),
        "300"
    );
}
