//! End-to-end: the real docker CLI (and raw API requests) against `barge daemon`.

mod engine;

use engine::{eventually, skip, Daemon};

#[test]
fn run_logs_wait_inspect_ps() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "hello"]), "hello");
    let o = d.docker(&[
        "run",
        "--name",
        "seven",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "seven"
        ]),
        "exited 7"
    );
    assert_eq!(
        d.ok(&["ps", "-a", "--filter", "exited=7", "--format", "{{.Names}}"]),
        "seven"
    );
    // stdin through attach
    let o = d.docker_stdin(
        &["run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z"],
        b"shout\n",
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "SHOUT\n");
    // detached, logs, inspect fields, filters
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "FOO=bar",
        "-l",
        "tier=front",
        "-w",
        "/tmp",
        "--hostname",
        "hoster",
        "busybox",
        "sh",
        "-c",
        "echo start; echo $FOO; pwd; hostname; sleep 1000",
    ]);
    assert_eq!(id.len(), 64);
    assert!(eventually(10, || d.ok(&["logs", "web"]).lines().count() >= 4));
    assert_eq!(d.ok(&["logs", "web"]), "start\nbar\n/tmp\nhoster");
    assert_eq!(d.ok(&["logs", "--tail", "1", "web"]), "hoster");
    let ts = d.ok(&["logs", "-t", "--tail", "1", "web"]);
    assert!(ts.ends_with(" hoster") && ts.starts_with("20"), "{ts}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}} {{.Config.Hostname}} {{.Config.WorkingDir}} {{index .Config.Labels \"tier\"}} {{.Name}}", "web"]),
        "true hoster /tmp front /web"
    );
    let pid: i32 = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", "web"])
        .parse()
        .expect("pid");
    assert!(pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(
        d.ok(&[
            "ps",
            "--filter",
            "label=tier=front",
            "--format",
            "{{.Names}}"
        ]),
        "web"
    );
    assert_eq!(d.ok(&["ps", "--filter", "name=we", "-q", "--no-trunc"]), id);
    assert_eq!(
        d.ok(&[
            "ps",
            "--filter",
            "ancestor=busybox",
            "--format",
            "{{.Names}}"
        ]),
        "web"
    );
    assert_eq!(
        d.ok(&["ps", "--filter", "status=exited", "--format", "{{.Names}}"]),
        "seven"
    );
    assert!(d.ok(&["top", "web"]).contains("sleep 1000"));
    // kill, wait
    d.ok(&["kill", "web"]);
    assert_eq!(d.ok(&["wait", "web"]), "137");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "web"
        ]),
        "exited 137"
    );
    // stop with a signal that sh honours quickly
    d.ok(&[
        "run",
        "-d",
        "--name",
        "stoppable",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 12' USR1; while true; do sleep 0.1; done",
    ]);
    d.ok(&["stop", "-t", "5", "stoppable"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "stoppable"]),
        "12"
    );
    // logs -f follows until the container exits
    d.ok(&[
        "run",
        "-d",
        "--name",
        "follow",
        "busybox",
        "sh",
        "-c",
        "echo a; sleep 1; echo b >&2; sleep 0.5; echo c",
    ]);
    let o = d.docker(&["logs", "-f", "follow"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a\nc\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "b\n");
    // attach to a running container's output
    d.ok(&[
        "run",
        "-d",
        "--name",
        "att",
        "busybox",
        "sh",
        "-c",
        "sleep 1; echo attached-out; exit 3",
    ]);
    let o = d.docker(&["attach", "att"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "attached-out\n");
    assert_eq!(o.status.code(), Some(3));
    // restart and rm
    d.ok(&["start", "stoppable"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "stoppable"]),
        "running"
    );
    d.ok(&["rm", "-f", "stoppable", "web", "seven", "follow", "att"]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn exec_tty_and_security_defaults() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "c", "busybox", "sleep", "1000"]);
    let o = d.docker(&[
        "exec",
        "-u",
        "1000",
        "-w",
        "/tmp",
        "-e",
        "X=y",
        "c",
        "sh",
        "-c",
        "id -u; pwd; echo $X; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1000\n/tmp\ny\n");
    // Docker's defaults: capabilities, seccomp, masked paths, no inheritable caps.
    let st = d.ok(&["exec", "c", "cat", "/proc/1/status"]);
    let field = |k: &str| {
        st.lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(field("CapEff:"), "00000000a80425fb");
    assert_eq!(field("CapInh:"), "0000000000000000");
    assert_eq!(field("Seccomp:"), "2");
    assert_eq!(
        d.ok(&["exec", "c", "sh", "-c", "wc -c < /proc/timer_list"]),
        "0"
    );
    let o = d.docker(&[
        "exec",
        "c",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/domainname",
    ]);
    assert!(!o.status.success());
    // --privileged gets all capabilities; --cap-drop ALL none.
    let o = d.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(o.ends_with("0000000000000000"), "{o}");
    let o = d.ok(&[
        "run",
        "--rm",
        "--read-only",
        "busybox",
        "sh",
        "-c",
        "touch /x 2>&1 || echo ro",
    ]);
    assert!(o.ends_with("ro"), "{o}");
    // network none: only loopback, up.
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "cat",
        "/proc/net/dev",
    ]);
    assert!(o.contains("lo:") && !o.contains("eth0"), "{o}");
    // --security-opt: a seccomp profile file, no-new-privileges; seccomp=unconfined.
    let prof = d.dir.path().join("seccomp.json");
    std::fs::write(
        &prof,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .expect("write profile");
    let o = d.ok(&[
        "run",
        "--rm",
        "--security-opt",
        &format!("seccomp={}", prof.display()),
        "busybox",
        "sh",
        "-c",
        "mkdir /x 2>/dev/null && echo made || echo denied",
    ]);
    assert_eq!(o, "denied");
    let o = d.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    assert!(o.ends_with('1'), "{o}");
    let o = d.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert!(o.ends_with('0'), "{o}");
    // An -it session through a pty.
    let py = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp('docker', ['docker', 'run', '-it', '--rm', 'busybox', 'sh'])
import time
time.sleep(1.5)
os.write(fd, b'tty; echo hi-$((40+2)); exit 5\r')
out = b''
while True:
    try:
        data = os.read(fd, 1024)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
sys.stdout.write('\nEXIT=%d\n' % os.waitstatus_to_exitcode(status))
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(py)
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .output()
        .expect("python3");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("hi-42"), "{out}");
    assert!(out.contains("EXIT=5"), "{out}");
    // exec -t
    let o = d.ok(&["exec", "-t", "c", "tty"]);
    assert!(o.starts_with("/dev/pts/"), "{o}");
}

#[test]
fn cp_commit_diff_events() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let host = d.dir.path();
    let (code, _) = d.api("GET", "/events?since=0&until=0", None);
    assert_eq!(code, 200);
    d.ok(&["run", "-d", "--name", "c", "busybox", "sleep", "1000"]);
    std::fs::write(host.join("in.txt"), "from host\n").expect("write");
    d.ok(&["cp", &host.join("in.txt").display().to_string(), "c:/tmp/"]);
    assert_eq!(d.ok(&["exec", "c", "cat", "/tmp/in.txt"]), "from host");
    d.ok(&["exec", "c", "sh", "-c", "echo inside > /root/made.txt"]);
    let out = host.join("out");
    std::fs::create_dir(&out).expect("mkdir");
    d.ok(&["cp", "c:/root/made.txt", &out.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(out.join("made.txt")).expect("read"),
        "inside\n"
    );
    // Symlink escapes: /w -> / inside the container must stay inside.
    d.ok(&["exec", "c", "ln", "-s", "/", "/w"]);
    let canary_dir = host.join("canary");
    std::fs::create_dir(&canary_dir).expect("mkdir");
    std::fs::write(canary_dir.join("secret"), "host secret\n").expect("write");
    let target = format!("c:/w{}/", canary_dir.display());
    let o = d.docker(&["cp", &host.join("in.txt").display().to_string(), &target]);
    assert!(
        !canary_dir.join("in.txt").exists(),
        "cp wrote through a symlink to the host"
    );
    let _ = o;
    let o = d.docker(&[
        "cp",
        &format!("c:/w{}/secret", canary_dir.display()),
        &out.display().to_string(),
    ]);
    assert!(
        !o.status.success(),
        "read a host file through a container symlink"
    );
    assert!(!out.join("secret").exists());
    // diff and commit
    let diff = d.ok(&["diff", "c"]);
    assert!(diff.contains("A /root/made.txt"), "{diff}");
    assert!(diff.contains("A /tmp/in.txt"), "{diff}");
    d.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/root/made.txt\"]",
        "c",
        "committed:v1",
    ]);
    assert_eq!(d.ok(&["run", "--rm", "committed:v1"]), "inside");
    assert!(d
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .contains("committed:v1"));
    // events: a stream filtered by container
    let ev = d
        .docker_cmd(&[
            "events",
            "--filter",
            "container=evc",
            "--format",
            "{{.Action}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("events");
    std::thread::sleep(std::time::Duration::from_millis(500));
    d.ok(&["run", "--name", "evc", "busybox", "true"]);
    d.ok(&["rm", "evc"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: SIGTERM to the docker events process we started.
    unsafe { libc::kill(ev.id() as i32, libc::SIGTERM) };
    let o = ev.wait_with_output().expect("events output");
    let actions = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        actions.starts_with("create attach start die destroy")
            || actions.starts_with("create start die destroy"),
        "{actions}"
    );
    // The same from the daemon's history: --since/--until replay past events and end.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs_f64();
    let (code, raw) = d.api(
        "GET",
        &format!(
            "/events?since={}&until={now}&filters=%7B%22container%22%3A%5B%22evc%22%5D%7D",
            now - 600.0
        ),
        None,
    );
    assert_eq!(code, 200);
    let past: Vec<String> = raw
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["Action"].as_str().map(str::to_string))
        .collect();
    assert_eq!(past.join(" "), actions, "{raw}");
}

#[test]
fn live_restore_after_kill9() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "lr",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do echo n$i; sleep 0.5; done; exit 4",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "forever",
        "busybox",
        "sh",
        "-c",
        "echo up; sleep 1000",
    ]);
    // Waiting for input that comes through an attach after the restart, and writing late.
    d.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "late",
        "busybox",
        "sh",
        "-c",
        "read x; echo got-$x; exit 6",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "echo t1; sleep 5; echo t2",
    ]);
    assert!(eventually(10, || d.ok(&["logs", "lr"]).contains("n1")));
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "forever"]);
    d.kill9();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    d.spawn();
    // ps, logs -f, attach on containers this daemon did not start.
    let ps = d.ok(&["ps", "--format", "{{.Names}}"]);
    for n in ["forever", "late"] {
        assert!(ps.lines().any(|l| l == n), "{n} missing from ps: {ps}");
    }
    let o = d.docker(&["logs", "-f", "ticker"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "t1\nt2\n");
    let o = d.docker_stdin(&["attach", "late"], b"hello\n");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "got-hello\n", "{o:?}");
    assert_eq!(o.status.code(), Some(6));
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Pid}}",
            "forever"
        ]),
        format!("running {pid}")
    );
    assert_eq!(d.ok(&["wait", "lr"]), "4");
    assert_eq!(d.ok(&["logs", "lr"]), "n1\nn2\nn3\nn4\nn5\nn6\nn7\nn8");
    // exited while the daemon was away
    d.ok(&[
        "run",
        "-d",
        "--name",
        "short",
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; echo bye; exit 9",
    ]);
    d.kill9();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    d.spawn();
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "short"
        ]),
        "exited 9"
    );
    assert_eq!(d.ok(&["logs", "short"]), "bye");
    assert_eq!(d.ok(&["exec", "forever", "echo", "still"]), "still");
    d.ok(&["stop", "-t", "1", "forever"]);
}

#[test]
fn log_rotation_and_restart_policies() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    let log = d.ok(&["inspect", "-f", "{{.LogPath}}", "chatty"]);
    assert!(std::path::Path::new(&log).exists());
    assert!(std::path::Path::new(&format!("{log}.1")).exists());
    assert!(std::path::Path::new(&format!("{log}.2")).exists());
    assert!(!std::path::Path::new(&format!("{log}.3")).exists());
    for f in [log.clone(), format!("{log}.1"), format!("{log}.2")] {
        let n = std::fs::metadata(&f).expect("stat").len();
        assert!(n <= 2048, "{f} is {n} bytes");
    }
    let logs = d.ok(&["logs", "chatty"]);
    assert!(logs.ends_with("line-299"), "{logs}");
    assert!(!logs.contains("line-0\n"));
    // on-failure:2 restarts twice, then stays exited
    d.ok(&[
        "run",
        "-d",
        "--name",
        "fail",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo try; exit 3",
    ]);
    assert!(eventually(20, || d.ok(&[
        "inspect",
        "-f",
        "{{.RestartCount}} {{.State.Status}}",
        "fail"
    ]) == "2 exited"));
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
            "fail"
        ]),
        "2 exited 3"
    );
    assert_eq!(d.ok(&["logs", "fail"]), "try\ntry\ntry");
    // always: restarted after a kill, not after stop
    d.ok(&[
        "run",
        "-d",
        "--name",
        "alw",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    let p1 = d.ok(&["inspect", "-f", "{{.State.Pid}}", "alw"]);
    // SAFETY: kill the container's init by its pid (as a crash would).
    unsafe { libc::kill(p1.parse().expect("pid"), libc::SIGKILL) };
    assert!(eventually(10, || {
        let s = d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Pid}} {{.RestartCount}}",
            "alw",
        ]);
        s.starts_with("running") && !s.contains(&format!(" {p1} ")) && s.ends_with(" 1")
    }));
    // health checks: inspect and ps report them
    d.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "sleep 1.5; touch /tmp/ok; sleep 1000",
    ]);
    assert!(eventually(10, || d.ok(&[
        "inspect",
        "-f",
        "{{.State.Health.Status}}",
        "hc"
    ]) == "unhealthy"));
    assert!(eventually(10, || d.ok(&[
        "inspect",
        "-f",
        "{{.State.Health.Status}}",
        "hc"
    ]) == "healthy"));
    assert!(d
        .ok(&["ps", "--filter", "name=hc", "--format", "{{.Status}}"])
        .ends_with("(health: healthy)"));
    d.ok(&["stop", "-t", "1", "alw"]);
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "alw"]),
        "exited"
    );
}

#[test]
fn bad_input_status_codes() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let (c, b) = d.api(
        "POST",
        "/v1.47/containers/create",
        Some(r#"{"Image": "nosuch:latest", "Cmd": ["true"]}"#),
    );
    assert_eq!(c, 404, "{b}");
    assert!(b.contains("No such image"), "{b}");
    let (c, b) = d.api("POST", "/containers/create", Some("{not json"));
    assert_eq!(c, 400, "{b}");
    assert!(b.contains("\"message\""), "{b}");
    // Values of the wrong type: 400, naming the field (as dockerd's Go decoding refuses them).
    for (path, body, field) in [
        (
            "/containers/create",
            r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Init":"yes"}}"#,
            "HostConfig.Init must be a boolean",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":1.5}}"#,
            "HostConfig.Memory must be an integer",
        ),
        (
            "/containers/create",
            r#"{"Image":"busybox","Env":["A=1",2]}"#,
            "Env[1] must be a string",
        ),
        (
            "/networks/create",
            r#"{"Name":"n","Internal":"no"}"#,
            "Internal must be a boolean",
        ),
        (
            "/volumes/create",
            r#"{"Name":"v","Labels":{"a":1}}"#,
            "Labels[\"a\"] must be a string",
        ),
        ("/volumes/create", r#"{"Name":"#, "EOF while parsing"),
    ] {
        let (c, b) = d.api("POST", path, Some(body));
        assert_eq!(c, 400, "{path} {body}: {b}");
        let m = serde_json::from_str::<serde_json::Value>(&b).expect("a JSON error body");
        let m = m["message"].as_str().expect("message").to_string();
        assert!(m.contains(field), "{path} {body}: {m}");
    }
    assert_eq!(
        d.ok(&["ps", "-aq"]),
        "",
        "refused bodies left no container behind"
    );
    for junk in [
        "[]",
        "null",
        "3",
        "\"x\"",
        r#"{"Image": 5}"#,
        r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": 7}"#,
        r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"CapAdd":["NOPE"]}}"#,
    ] {
        let (c, b) = d.api("POST", "/containers/create", Some(junk));
        assert_eq!(c, 400, "{junk}: {b}");
    }
    let (c, _) = d.api(
        "POST",
        "/containers/create?name=dup",
        Some(r#"{"Image": "busybox", "Cmd": ["sleep", "100"]}"#),
    );
    assert_eq!(c, 201);
    let (c, b) = d.api(
        "POST",
        "/containers/create?name=dup",
        Some(r#"{"Image": "busybox", "Cmd": ["true"]}"#),
    );
    assert_eq!(c, 409, "{b}");
    let (c, _) = d.api("POST", "/containers/dup/kill", None);
    assert_eq!(c, 409);
    let (c, _) = d.api("POST", "/containers/dup/start", None);
    assert_eq!(c, 204);
    let (c, _) = d.api("POST", "/containers/dup/start", None);
    assert_eq!(c, 304);
    let (c, _) = d.api("DELETE", "/containers/dup", None);
    assert_eq!(c, 409);
    // Resizes: sizes a terminal can hold; unknown execs 404; stopped containers 409.
    let (c, b) = d.api("POST", "/containers/dup/resize?h=70000&w=80", None);
    assert_eq!(c, 400, "{b}");
    assert!(b.contains("invalid value for h"), "{b}");
    let (c, b) = d.api("POST", "/containers/dup/resize?h=x&w=80", None);
    assert_eq!(c, 400, "{b}");
    let (c, b) = d.api("POST", "/exec/nosuch/resize?h=20&w=80", None);
    assert_eq!(c, 404, "{b}");
    let (c, b) = d.api(
        "POST",
        "/containers/dup/exec",
        Some(r#"{"Cmd": ["true"], "Tty": true}"#),
    );
    assert_eq!(c, 201, "{b}");
    let eid = serde_json::from_str::<serde_json::Value>(&b).expect("json")["Id"]
        .as_str()
        .expect("Id")
        .to_string();
    let (c, b) = d.api("POST", &format!("/exec/{eid}/resize?h=-1&w=80"), None);
    assert_eq!(c, 400, "{b}");
    let (c, b) = d.api("POST", &format!("/exec/{eid}/resize?h=20&w=80"), None);
    assert_eq!(c, 200, "{b}");
    let (c, b) = d.api(
        "POST",
        &format!("/exec/{eid}/start"),
        Some(r#"{"Detach": true, "Tty": true, "ConsoleSize": "big"}"#),
    );
    assert_eq!(c, 400, "{b}");
    assert!(b.contains("ConsoleSize"), "{b}");
    let (c, _) = d.api("GET", "/containers/nope/json", None);
    assert_eq!(c, 404);
    let (c, _) = d.api("GET", "/v1.12/version", None);
    assert_eq!(c, 400);
    let (c, b) = d.api("GET", "/_ping", None);
    assert_eq!((c, b.as_str()), (200, "OK"));
    let (c, b) = d.api("GET", "/v1.44/version", None);
    assert_eq!(c, 200);
    assert!(
        b.contains("\"ApiVersion\":\"1.47\"") && b.contains("\"MinAPIVersion\":\"1.24\""),
        "{b}"
    );
    let o = d.docker(&["run", "--rm", "busybox", "/no/such/binary"]);
    assert_eq!(
        o.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (c, _) = d.api("DELETE", "/containers/dup?force=1", None);
    assert_eq!(c, 204);
    d.ok(&["create", "--name", "idle", "busybox", "true"]);
    let (c, b) = d.api("POST", "/containers/idle/resize?h=20&w=80", None);
    assert_eq!(c, 409, "{b}");
    assert!(b.contains("is not running"), "{b}");
    // Fuzz the JSON decoding: every field of a valid body replaced by values of other types
    // and truncations of it get a 4xx with a message (or a 201), never a 500 or a dead daemon.
    let valid = r#"{"Image":"busybox","Cmd":["true"],"Env":["A=b"],"Entrypoint":null,"WorkingDir":"/","User":"","Labels":{"a":"b"},"Tty":false,"OpenStdin":false,"StopTimeout":3,"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"HostConfig":{"Binds":["/tmp:/mnt:ro"],"CapAdd":["NET_ADMIN"],"CapDrop":["MKNOD"],"Memory":67108864,"NanoCpus":500000000,"PidsLimit":50,"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"Ulimits":[{"Name":"nofile","Soft":100,"Hard":200}],"LogConfig":{"Type":"json-file","Config":{"max-size":"1m"}},"Tmpfs":{"/run":"size=1m"},"Mounts":[{"Type":"tmpfs","Target":"/t"}],"SecurityOpt":["no-new-privileges"],"NetworkMode":"none","ReadonlyRootfs":true}}"#;
    let v: serde_json::Value = serde_json::from_str(valid).expect("valid");
    let (c, b) = d.api("POST", "/containers/create", Some(valid));
    assert_eq!(c, 201, "{b}");
    let junk = [
        serde_json::json!(null),
        serde_json::json!(-1),
        serde_json::json!("x"),
        serde_json::json!([1, {}]),
        serde_json::json!({"a": []}),
        serde_json::json!(true),
        serde_json::json!(1e300),
    ];
    let mut bodies = Vec::new();
    for key in v.as_object().expect("object").keys() {
        for j in &junk {
            let mut m = v.clone();
            m[key] = j.clone();
            bodies.push(m.to_string());
        }
    }
    for key in v["HostConfig"].as_object().expect("object").keys() {
        for j in &junk {
            let mut m = v.clone();
            m["HostConfig"][key] = j.clone();
            bodies.push(m.to_string());
        }
    }
    for cut in (1..valid.len()).step_by(37) {
        bodies.push(valid[..cut].to_string());
    }
    for body in &bodies {
        let (c, b) = d.api("POST", "/containers/create", Some(body));
        assert!(
            matches!(c, 201 | 400 | 404 | 409 | 501),
            "{c} for {body}: {b}"
        );
        if c != 201 {
            assert!(b.contains("\"message\""), "{body}: {b}");
        }
    }
    let (c, _) = d.api("GET", "/_ping", None);
    assert_eq!(c, 200, "the daemon died on fuzzed input");
}

#[test]
fn docker_py_sdk() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/py/engine_sdk.py");
    let o = std::process::Command::new("python3")
        .arg(&script)
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "docker-py script failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        d.log()
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("ALL OK"));
}

/// The parent pid of `pid` (from /proc/<pid>/stat), if it exists.
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces: the fields after the last ')' are "state ppid ...".
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| ppid(*p) == Some(parent))
        .collect()
}

/// The daemon's monitor zygote (its child `barge monitor-zygote`).
fn zygote_of(d: &Daemon) -> Option<u32> {
    let dpid = d.pid()?;
    children(dpid)
        .into_iter()
        .find(|p| cmdline(*p).contains(" monitor-zygote "))
}

/// The monitor of a running container: the parent of its init.
fn monitor_of(d: &Daemon, name: &str) -> u32 {
    let pid: u32 = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", name])
        .parse()
        .expect("pid");
    ppid(pid).expect("container init's parent")
}

#[test]
fn monitor_zygote_forks_monitors_and_can_die() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    let z = zygote_of(&d).expect("the daemon runs a monitor zygote");
    // Its only fds: the daemon's socket and /dev/null.
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{z}/fd"))
        .expect("zygote fds")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(fds.len(), 3, "zygote fds: {fds:?}");
    assert!(std::fs::read_link(format!("/proc/{z}/fd/0"))
        .expect("fd 0")
        .to_string_lossy()
        .starts_with("socket:"));
    d.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "busybox",
        "sh",
        "-c",
        "echo up; sleep 1000",
    ]);
    let ma = monitor_of(&d, "a");
    // Forked by the zygote (its argv), but neither its child nor holding its socket.
    assert!(cmdline(ma).contains(" monitor-zygote "), "{}", cmdline(ma));
    assert_ne!(ppid(ma), Some(z));
    let zsock = std::fs::read_link(format!("/proc/{z}/fd/0")).expect("zygote socket");
    for e in std::fs::read_dir(format!("/proc/{ma}/fd"))
        .expect("monitor fds")
        .flatten()
    {
        let t = std::fs::read_link(e.path()).unwrap_or_default();
        assert_ne!(t, zsock, "the monitor kept the zygote's socket");
    }
    // Short-lived containers leave no zombie behind in the zygote.
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi");
    assert!(
        eventually(5, || children(z).is_empty()),
        "{:?}",
        children(z)
    );

    // Kill the zygote: running containers do not notice, new ones still start.
    // SAFETY: SIGKILL to the zygote pid found above (a child of our daemon).
    assert_eq!(unsafe { libc::kill(z as i32, libc::SIGKILL) }, 0);
    assert!(eventually(5, || zygote_of(&d) != Some(z)
        || std::fs::read_to_string(format!("/proc/{z}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)));
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "a"]),
        "running"
    );
    assert_eq!(d.ok(&["exec", "a", "echo", "still"]), "still");
    assert_eq!(monitor_of(&d, "a"), ma);
    d.ok(&["run", "-d", "--name", "b", "busybox", "sleep", "1000"]);
    let z2 = zygote_of(&d).expect("a new zygote");
    assert_ne!(z2, z);
    let mb = monitor_of(&d, "b");
    assert!(cmdline(mb).contains(" monitor-zygote "), "{}", cmdline(mb));
    assert_eq!(d.ok(&["logs", "a"]), "up");

    // The daemon killed: its zygote exits with it; monitors and containers stay.
    d.kill9();
    assert!(eventually(5, || !std::path::Path::new(&format!(
        "/proc/{z2}"
    ))
    .exists()
        || ppid(z2) == Some(1)
            && std::fs::read_to_string(format!("/proc/{z2}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)));
    d.spawn();
    assert_eq!(
        d.ok(&["ps", "--format", "{{.Names}}"])
            .lines()
            .collect::<std::collections::BTreeSet<_>>(),
        ["a", "b"].into_iter().collect()
    );
    let z3 = zygote_of(&d).expect("the new daemon's zygote");
    assert_ne!(z3, z2);
    d.ok(&["stop", "-t", "1", "a", "b"]);
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "again"]), "again");
}

#[test]
fn monitors_are_execd_without_the_zygote() {
    if skip() {
        return;
    }
    let d = Daemon::start_with_env(&[("BARGE_MONITOR_ZYGOTE", "0")]);
    assert_eq!(zygote_of(&d), None);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "x",
        "busybox",
        "sh",
        "-c",
        "echo up; sleep 1000",
    ]);
    let m = monitor_of(&d, "x");
    assert!(cmdline(m).contains(" monitor "), "{}", cmdline(m));
    assert!(eventually(5, || d.ok(&["logs", "x"]) == "up"));
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi");
    d.ok(&["stop", "-t", "1", "x"]);
    assert!(d.log().contains("exec'ing the monitor"), "{}", d.log());
}

/// The states of the container's processes, from `/proc/*/stat` read inside it.
fn states_inside(d: &Daemon, name: &str) -> Vec<(String, char)> {
    let o = d.docker(&[
        "exec",
        name,
        "sh",
        "-c",
        "cat /proc/[0-9]*/stat 2>/dev/null",
    ]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (head, tail) = l.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_string();
            Some((comm, tail.trim_start().chars().next()?))
        })
        .collect()
}

#[test]
fn init_forwards_signals_reaps_and_exits_like_tini() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // PID 1 is the init, the command its child.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--init",
            "busybox",
            "sh",
            "-c",
            "echo $PPID; tr '\\0' ' ' </proc/1/cmdline"
        ]),
        "1\nbarge-init"
    );
    // The init is the runtime's own process: the container cannot reach its binary or
    // memory (non-dumpable, CVE-2019-5736 class), and for a non-root user it holds no
    // capability (as tini exec'd as that user).
    let o = d.docker(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/1/exe || echo exe-denied; cat /proc/1/environ || echo env-denied; \
         echo x 2>/dev/null >/proc/1/exe || echo write-denied",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    for w in ["exe-denied", "env-denied", "write-denied"] {
        assert!(text.contains(w), "{w}: {text}");
    }
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--init",
            "-u",
            "1000",
            "busybox",
            "sh",
            "-c",
            "grep -E '^(Uid|CapPrm|CapEff):' /proc/1/status | tr -s '\t' ' '"
        ]),
        "Uid: 1000 1000 1000 1000\nCapPrm: 0000000000000000\nCapEff: 0000000000000000"
    );
    // Without it, the command is PID 1.
    assert_eq!(
        d.ok(&["run", "--rm", "busybox", "sh", "-c", "echo $$"]),
        "1"
    );
    // Exit codes come through; death by a signal is 128 + n.
    let o = d.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    let o = d.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(137));
    // The stop signal reaches the command: `sleep` as PID 1 would ignore SIGTERM and be
    // killed after the grace period (137); under the init it dies of the SIGTERM (143).
    d.ok(&[
        "run", "-d", "--init", "--name", "sleeper", "busybox", "sleep", "1000",
    ]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.Init}}", "sleeper"]),
        "true"
    );
    d.ok(&["stop", "-t", "60", "sleeper"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "sleeper"]),
        "143"
    );
    // Any other signal is forwarded too (`kill -s USR1`): the command's default action.
    d.ok(&[
        "run", "-d", "--init", "--name", "usr1", "busybox", "sleep", "1000",
    ]);
    d.ok(&["kill", "-s", "USR1", "usr1"]);
    assert!(eventually(20, || d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}}",
        "usr1"
    ]) == "exited"));
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "usr1"]),
        (128 + libc::SIGUSR1).to_string()
    );
    // Orphans reparented to PID 1 are reaped. An exec leaves a subshell behind that exits
    // after touching /tmp/done; without an init, `sleep` as PID 1 leaves it a zombie.
    for (name, init) in [("reaped", true), ("zombies", false)] {
        let mut args = vec!["run", "-d", "--name", name];
        if init {
            args.push("--init");
        }
        args.extend(["busybox", "sleep", "1000"]);
        d.ok(&args);
        d.ok(&[
            "exec",
            name,
            "sh",
            "-c",
            "(sleep 0.2; touch /tmp/done) & exit 0",
        ]);
        assert!(eventually(20, || d
            .docker(&["exec", name, "test", "-e", "/tmp/done"])
            .status
            .success()));
        let zombie = |d: &Daemon| states_inside(d, name).iter().any(|(_, s)| *s == 'Z');
        if init {
            // The orphan is gone for good once it exited: no zombie, now or later.
            assert!(eventually(20, || !zombie(&d)
                && !states_inside(&d, name).iter().any(|(c, _)| c == "touch")));
            std::thread::sleep(std::time::Duration::from_millis(300));
            assert!(!zombie(&d), "{:?}", states_inside(&d, name));
        } else {
            assert!(
                eventually(20, || zombie(&d)),
                "no zombie without --init: {:?}",
                states_inside(&d, name)
            );
        }
    }
    // The daemon's default (dockerd's `--init`, daemon.json "init"): containers that do not
    // say otherwise run under the init; `--init=false` opts out.
    for n in ["sleeper", "usr1", "reaped", "zombies"] {
        d.ok(&["rm", "-f", n]);
    }
    std::fs::write(d.dir.path().join("daemon.json"), r#"{"init": true}"#).expect("daemon.json");
    let mut d = d;
    d.kill9();
    d.spawn();
    let ppid = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend(["busybox", "sh", "-c", "echo $PPID"]);
        d.ok(&args)
    };
    assert_eq!(ppid(&[]), "1");
    assert_eq!(ppid(&["--init=false"]), "0");
}

/// A raw request with a binary body; returns (status, body).
fn api_bytes(d: &Daemon, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&d.sock).expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: barge\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(out.len());
    let code = String::from_utf8_lossy(&out[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out[split..].to_vec())
}

/// CVE-2018-15664: while the container swaps `/w` between a symlink to `/` and one to a
/// directory of its own, `cp` in both directions through `/w<host path>` never reads or
/// writes the host's files.
#[test]
fn cp_symlink_swap_race_stays_in_the_container() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let canary = d.dir.path().join("canary");
    std::fs::create_dir(&canary).expect("canary dir");
    std::fs::write(canary.join("secret"), "host secret\n").expect("secret");
    let host = canary.display().to_string();
    let script = format!(
        "mkdir -p /real{host} && echo container > /real{host}/secret && \
         while true; do ln -sfn / /w; ln -sfn /real /w; done"
    );
    d.ok(&[
        "run", "-d", "--name", "racer", "busybox", "sh", "-c", &script,
    ]);
    let tar = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(6);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "pwned", &b"pwned\n"[..])
            .expect("tar");
        b.into_inner().expect("tar")
    };
    let (mut got_container, mut wrote_container) = (0, 0);
    for _ in 0..1000 {
        let (c, body) = api_bytes(
            &d,
            "GET",
            &format!("/containers/racer/archive?path=/w{host}/secret"),
            b"",
        );
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("host secret"), "read the host's file: {c}");
        if c == 200 && text.contains("container") {
            got_container += 1;
        }
        let (c, _) = api_bytes(
            &d,
            "PUT",
            &format!("/containers/racer/archive?path=/w{host}"),
            &tar,
        );
        assert!(
            !canary.join("pwned").exists(),
            "wrote into the host's directory ({c})"
        );
        if c == 200 {
            wrote_container += 1;
        }
    }
    // The race was real: some copies went through the container's own directory.
    assert!(
        got_container > 0 && wrote_container > 0,
        "{got_container} {wrote_container}"
    );
    assert_eq!(
        std::fs::read_to_string(canary.join("secret")).expect("secret"),
        "host secret\n"
    );
    let names: Vec<_> = std::fs::read_dir(&canary)
        .expect("canary")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["secret"]);
}

/// What a differential run of the docker CLI against dockerd and barge showed barge doing
/// differently, each as dockerd does it.
#[test]
fn behaviours_matched_to_dockerd() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).to_string();
    // A missing working directory is made (root's, 0755) before the process starts.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-w",
            "/a/b/c",
            "-u",
            "nobody",
            "busybox",
            "sh",
            "-c",
            "pwd; stat -c %U:%a /a/b/c /a"
        ]),
        "/a/b/c\nroot:755\nroot:755"
    );
    // `--entrypoint ''` drops the entrypoint: the command runs alone.
    assert_eq!(
        d.ok(&["run", "--rm", "--entrypoint", "", "busybox", "echo", "hi"]),
        "hi"
    );
    // The primary group is also a supplementary group.
    assert_eq!(
        d.ok(&["run", "--rm", "-u", "1234:5678", "busybox", "id", "-G"]),
        "5678"
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-u",
            "1234:5678",
            "--group-add",
            "42",
            "busybox",
            "id",
            "-G"
        ]),
        "5678 42"
    );
    // /etc/hosts names the container by its host name only (fully qualified first), and
    // without a network it has only the standard lines.
    let line = d.ok(&[
        "run",
        "--rm",
        "--hostname",
        "h1",
        "--domainname",
        "ex.com",
        "busybox",
        "tail",
        "-1",
        "/etc/hosts",
    ]);
    assert!(line.ends_with("\th1.ex.com h1"), "{line}");
    let none = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert_eq!(none.lines().count(), 6, "{none}");
    assert!(
        none.lines()
            .all(|l| l.contains("localhost") || l.contains("ip6-")),
        "{none}"
    );
    // In its own network namespace any user may bind low ports and ping; the container's
    // own sysctls win.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-u",
            "nobody",
            "busybox",
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range"
        ]),
        "0\n0\t2147483647"
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=1024",
            "busybox",
            "cat",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start"
        ]),
        "1024"
    );
    // --platform: an image of another platform is not used (a 404 naming both, so the
    // CLI would pull the right one); the image's own platform runs.
    let arch = d.ok(&["version", "-f", "{{.Server.Arch}}"]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--platform",
            &format!("linux/{arch}"),
            "busybox",
            "echo",
            "ok"
        ]),
        "ok"
    );
    let other = if arch == "s390x" { "ppc64le" } else { "s390x" };
    let o = d.docker(&[
        "create",
        "--platform",
        &format!("linux/{other}"),
        "--pull",
        "never",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!(
            "does not match the specified platform: wanted linux/{other}, actual: linux/{arch}"
        )),
        "{}",
        err(&o)
    );
    // Log options the driver does not know are refused.
    let o = d.docker(&["create", "--log-opt", "bogus=1", "busybox", "true"]);
    assert!(
        err(&o).contains("unknown log opt 'bogus' for json-file log driver"),
        "{}",
        err(&o)
    );
    // A bad stop signal is refused at create.
    let o = d.docker(&["create", "--stop-signal", "FOO", "busybox", "true"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("Invalid signal: FOO"), "{}", err(&o));
    // Defaults shown as dockerd fills them in.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "s1",
        "busybox",
        "sh",
        "-c",
        "echo 'a b'; sleep 100",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect", "-f",
            "{{.HostConfig.IpcMode}} {{.HostConfig.CgroupnsMode}} {{.HostConfig.ShmSize}} {{.HostConfig.MemorySwappiness}} {{json .Config.Env}} {{json .Config.Volumes}}",
            "s1"
        ]),
        "private private 67108864 <nil> null null"
    );
    // GraphDriver.Data names the container's directories: its changes are in UpperDir,
    // the image's files in LowerDir, its root at MergedDir.
    d.ok(&["exec", "s1", "touch", "/made-here"]);
    let data: serde_json::Value =
        serde_json::from_str(&d.ok(&["inspect", "-f", "{{json .GraphDriver.Data}}", "s1"]))
            .expect("json");
    let dir = |k: &str| std::path::PathBuf::from(data[k].as_str().unwrap_or_default());
    assert!(dir("UpperDir").join("made-here").exists(), "{data}");
    assert!(dir("WorkDir").is_dir(), "{data}");
    let lower = data["LowerDir"].as_str().unwrap_or_default();
    assert!(
        lower
            .split(':')
            .any(|l| std::path::Path::new(l).join("bin/busybox").exists()),
        "{data}"
    );
    assert!(dir("MergedDir").ends_with("rootfs"), "{data}");
    // An argument with a space is quoted in the list's command.
    assert_eq!(
        d.ok(&[
            "ps",
            "--no-trunc",
            "--format",
            "{{.Command}}",
            "--filter",
            "name=s1"
        ]),
        "\"sh -c 'echo 'a b'; sleep 100'\""
    );
    // ps: `name` is a regular expression (against the name with or without its slash);
    // an unknown status is refused.
    d.ok(&["create", "--name", "s1x", "busybox", "true"]);
    for pat in ["^s1$", "^/s1$"] {
        let f = format!("name={pat}");
        assert_eq!(
            d.ok(&["ps", "-a", "--filter", &f, "--format", "{{.Names}}"]),
            "s1",
            "{pat}"
        );
    }
    assert_eq!(
        d.ok(&["ps", "-a", "--filter", "name=s1", "--format", "{{.Names}}"])
            .lines()
            .count(),
        2
    );
    let o = d.docker(&["ps", "-a", "--filter", "status=bogus"]);
    assert!(
        err(&o).contains("invalid filter 'status=bogus'"),
        "{}",
        err(&o)
    );
    d.ok(&["rm", "s1x"]);
    // Logs: a negative tail is all of it.
    assert!(eventually(10, || d.ok(&["logs", "--tail", "-1", "s1"]) == "a b"));
    // Errors worded as dockerd's.
    let o = d.docker(&["rename", "s1", "s1"]);
    assert!(
        err(&o).contains("Renaming a container with the same name as its current name"),
        "{}",
        err(&o)
    );
    d.ok(&["pause", "s1"]);
    let o = d.docker(&["exec", "s1", "true"]);
    assert!(
        err(&o).contains("Container s1 is paused, unpause the container before exec"),
        "{}",
        err(&o)
    );
    d.ok(&["unpause", "s1"]);
    d.ok(&["create", "--name", "idle", "busybox", "true"]);
    let o = d.docker(&["kill", "idle"]);
    assert!(
        err(&o).contains("Cannot kill container: idle: Container ")
            && err(&o).contains("is not running"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["rmi", "nosuchimage"]);
    assert!(
        err(&o).contains("No such image: nosuchimage:latest"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["network", "rm", "bridge"]);
    assert!(
        err(&o).contains("bridge is a pre-defined network and cannot be removed"),
        "{}",
        err(&o)
    );
    d.ok(&["network", "create", "dup"]);
    let o = d.docker(&["network", "create", "dup"]);
    assert!(
        err(&o).contains("network with name dup already exists"),
        "{}",
        err(&o)
    );
    d.ok(&["network", "rm", "dup"]);
    // An imported image says where it came from, as its comment.
    let tar = engine::busybox_tar().to_str().unwrap_or_default();
    d.ok(&["import", tar, "imported:1"]);
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Comment}}", "imported:1"]),
        "Imported from -"
    );
    assert_eq!(
        d.ok(&[
            "history",
            "--format",
            "{{.CreatedBy}}|{{.Comment}}",
            "imported:1"
        ]),
        "|Imported from -"
    );
    d.ok(&["rm", "-f", "s1", "idle"]);

    // Events in dockerd's order and with its attributes: attach and the network's connect
    // and disconnect around a run, the volume's driver, the network's type, and an image's
    // tag and untag by its id.
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_secs() - 1)
        .unwrap_or(0)
        .to_string();
    d.ok(&["run", "--name", "ev1", "busybox", "true"]);
    d.ok(&["rm", "ev1"]);
    d.ok(&["volume", "create", "evv"]);
    d.ok(&["volume", "rm", "evv"]);
    d.ok(&["network", "create", "evn"]);
    d.ok(&["network", "rm", "evn"]);
    d.ok(&["tag", "busybox", "evt:1"]);
    d.ok(&["rmi", "evt:1"]);
    // Until just past now: the command returns with what happened (a future `until`
    // would wait for it).
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_secs() + 1)
        .unwrap_or(0)
        .to_string();
    let events = d.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--filter",
        "type=network",
        "--filter",
        "type=volume",
        "--filter",
        "type=image",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}}{{.Actor.Attributes.driver}}",
    ]);
    let tail: Vec<&str> = events
        .lines()
        .skip_while(|l| !l.starts_with("container create ev1"))
        .collect();
    let id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    let want = [
        "container create ev1 <no value><no value>".to_string(),
        "container attach ev1 <no value><no value>".to_string(),
        "network connect bridge bridge<no value>".to_string(),
        "container start ev1 <no value><no value>".to_string(),
        "container die ev1 <no value><no value>".to_string(),
        "network disconnect bridge bridge<no value>".to_string(),
        "container destroy ev1 <no value><no value>".to_string(),
        "volume create <no value> <no value>local".to_string(),
        "volume destroy <no value> <no value>local".to_string(),
        "network create evn bridge<no value>".to_string(),
        "network destroy evn bridge<no value>".to_string(),
        "image tag evt:1 <no value><no value>".to_string(),
        format!("image untag {id} <no value><no value>"),
    ];
    assert_eq!(tail, want, "{events}");
}
