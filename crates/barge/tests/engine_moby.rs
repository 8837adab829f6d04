//! Behaviours of the Docker Engine API that moby's own integration suite (`integration/` of
//! moby/moby, see docs/conformance-moby-integration.md) found barge answering differently
//! from dockerd. CI does not run Go, so each difference fixed is pinned here: request bodies
//! (Content-Type, malformed JSON), refusals in dockerd's words and status codes, and the
//! container lifecycle (stop timeouts, kill and restart policies, restarting `--rm`
//! containers, update, console size, working directory, network sysctls).

mod engine;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use engine::{eventually, skip, Daemon};
use serde_json::Value;

/// A raw request with a chosen Content-Type (None: no header); returns the status, the
/// response head and the body.
fn request(
    d: &Daemon,
    method: &str,
    path: &str,
    ctype: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    d.api_raw(method, path, ctype, body)
}

/// The `message` of an error body.
fn message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string())
}

/// Creates a container from a JSON body; returns its id.
fn create(d: &Daemon, body: &str) -> String {
    let (code, b) = d.api("POST", "/containers/create", Some(body));
    assert_eq!(code, 201, "{body}: {b}");
    serde_json::from_str::<Value>(&b).expect("json")["Id"]
        .as_str()
        .expect("Id")
        .to_string()
}

#[test]
fn json_bodies_and_refusals_in_dockerds_words() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // Every JSON endpoint takes application/json only, checks the body before looking up
    // what the path names, and says what is wrong in dockerd's words (all 400).
    for ep in [
        "/containers/create",
        "/containers/nosuch/exec",
        "/containers/nosuch/update",
        "/exec/nosuch/start",
        "/commit?container=nosuch",
        "/networks/create",
        "/networks/nosuch/connect",
        "/volumes/create",
    ] {
        let (code, _, b) = request(&d, "POST", ep, Some("text/plain"), "{}");
        assert_eq!(code, 400, "{ep}: {b}");
        assert_eq!(
            message(&b),
            "unsupported Content-Type header (text/plain): must be 'application/json'",
            "{ep}"
        );
        let (code, _, b) = request(&d, "POST", ep, Some("application/json"), "{invalid json");
        assert_eq!(code, 400, "{ep}: {b}");
        assert!(message(&b).starts_with("invalid JSON: "), "{ep}: {b}");
        let (code, _, b) = request(
            &d,
            "POST",
            ep,
            Some("application/json"),
            "{} trailing content",
        );
        assert_eq!(code, 400, "{ep}: {b}");
        assert_eq!(message(&b), "unexpected content after JSON", "{ep}");
        // An empty body with no type is fine as far as decoding goes (never a 5xx).
        let (code, _, b) = request(&d, "POST", ep, None, "");
        assert!(code < 500, "{ep}: {code} {b}");
    }
    let (code, _, b) = request(&d, "POST", "/volumes/create", None, "{}");
    assert_eq!(code, 400, "a body needs a Content-Type: {b}");
    let (code, _, _) = request(
        &d,
        "POST",
        "/volumes/create",
        Some("application/json; charset=utf-8"),
        "{}",
    );
    assert_eq!(code, 201, "parameters of the media type are fine");

    let refused = |body: &str, want_code: u16, want: &str| {
        let (code, b) = d.api("POST", "/containers/create", Some(body));
        assert_eq!(code, want_code, "{body}: {b}");
        assert_eq!(message(&b), want, "{body}");
    };
    for (env, shown) in [("", ""), ("=", "="), ("=foo", "=foo")] {
        refused(
            &format!(r#"{{"Image":"busybox","Env":["{env}"]}}"#),
            400,
            &format!("invalid environment variable: {shown}"),
        );
    }
    for (field, value, want) in [
        (
            "Interval",
            "-1000000000",
            "Interval in Healthcheck cannot be less than 1ms",
        ),
        (
            "Interval",
            "100",
            "Interval in Healthcheck cannot be less than 1ms",
        ),
        (
            "Timeout",
            "100",
            "Timeout in Healthcheck cannot be less than 1ms",
        ),
        (
            "StartPeriod",
            "100",
            "StartPeriod in Healthcheck cannot be less than 1ms",
        ),
        ("Retries", "-1", "Retries in Healthcheck cannot be negative"),
    ] {
        refused(
            &format!(
                r#"{{"Image":"busybox","Healthcheck":{{"Test":["CMD","true"],"{field}":{value}}}}}"#
            ),
            400,
            want,
        );
    }
    for (key, value, want) in [
        ("PidMode", "invalid", "invalid PID mode: invalid"),
        ("PidMode", "container", "invalid PID mode: container"),
        ("IpcMode", "invalid", "invalid IPC mode: invalid"),
        ("UTSMode", "invalid", "invalid UTS mode: invalid"),
    ] {
        refused(
            &format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{{"{key}":"{value}"}}}}"#),
            400,
            want,
        );
    }
    for dst in ["/", "//"] {
        let (code, b) = d.api(
            "POST",
            "/containers/create",
            Some(&format!(
                r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{{"Tmpfs":{{"{dst}":""}}}}}}"#
            )),
        );
        assert_eq!(code, 400, "{b}");
        assert!(message(&b).contains("destination can't be '/'"), "{b}");
    }
    let (code, b) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"VolumesFrom":["nosuchcontainer"]}}"#),
    );
    assert_eq!(
        code, 400,
        "a missing VolumesFrom source is a bad request: {b}"
    );

    d.ok(&["create", "--name", "same", "busybox", "true"]);
    let (code, b) = d.api("POST", "/containers/same/rename?name=same", None);
    assert_eq!(code, 400, "{b}");
    assert_eq!(
        message(&b),
        "Renaming a container with the same name as its current name"
    );
    let (code, b) = d.api("POST", "/images/busybox/tag?repo=sha256&tag=sometag", None);
    assert_eq!(code, 400, "{b}");
    assert_eq!(
        message(&b),
        "refusing to create an ambiguous tag using digest algorithm as name"
    );
    // docker cp: a file where a directory is asked for, and a missing path named with the
    // reference the client used.
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "same"]);
    for m in ["GET", "HEAD", "PUT"] {
        let (code, _, b) = request(
            &d,
            m,
            &format!("/containers/{id}/archive?path=/etc/passwd/"),
            Some("application/x-tar"),
            "",
        );
        assert_eq!(code, 400, "{m}: {b}");
        if m != "HEAD" {
            assert!(message(&b).contains("not a directory"), "{m}: {b}");
        }
    }
    let (code, b) = d.api("GET", &format!("/containers/{id}/archive?path=/dne"), None);
    assert_eq!(code, 404, "{b}");
    assert_eq!(
        message(&b),
        format!("Could not find the file /dne in container {id}")
    );
    let (code, head, _) = request(&d, "GET", "/_ping", None, "");
    assert_eq!(code, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("pragma: no-cache"), "{head}");
    assert!(
        head.contains("cache-control: no-cache, no-store, must-revalidate"),
        "{head}"
    );
}

/// The daemon's clock now, as an RFC 3339 time for `events --until`.
fn chrono_now(d: &Daemon) -> String {
    let (_, b) = d.api("GET", "/info", None);
    let v: Value = serde_json::from_str(&b).expect("info");
    v["SystemTime"].as_str().expect("SystemTime").to_string()
}

#[test]
fn lifecycle_stop_kill_restart_and_update_as_dockerd() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let state = |n: &str| d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", n]);
    // stop with t=-1 waits for the process however long it takes: it exits by itself.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "busybox",
        "sh",
        "-c",
        "trap 'sleep 2; exit 42' TERM; sleep 100 & wait",
    ]);
    let (code, b) = d.api("POST", "/containers/slow/stop?t=-1", None);
    assert_eq!(code, 204, "{b}");
    assert_eq!(state("slow"), "exited 42");

    // A kill with the container's StopSignal ends its restart policy; another signal that
    // kills it does not (the container comes back).
    for (name, stop_signal) in [("same", "TERM"), ("other", "CONT")] {
        let (code, b) = d.api(
            "POST",
            &format!("/containers/create?name={name}"),
            Some(&format!(
                r#"{{"Image":"busybox","Cmd":["sh","-c","trap 'exit 3' TERM; sleep 100 & wait"],"StopSignal":"{stop_signal}","HostConfig":{{"RestartPolicy":{{"Name":"always"}}}}}}"#
            )),
        );
        assert_eq!(code, 201, "{b}");
        d.ok(&["start", name]);
        d.ok(&["kill", "-s", "TERM", name]);
    }
    assert!(
        eventually(15, || state("same") == "exited 3"),
        "{}",
        state("same")
    );
    assert!(
        eventually(15, || d.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}}",
            "other"
        ]) == "1 running"),
        "{}",
        state("other")
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        state("same"),
        "exited 3",
        "no restart after a kill with the stop signal"
    );

    // A stop whose client hangs up still ends in the kill when the timeout is up.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "hangup",
        "busybox",
        "sh",
        "-c",
        "trap 'echo received TERM' TERM; touch /ready; while true; do sleep 0.1; done",
    ]);
    assert!(eventually(10, || d
        .docker(&["exec", "hangup", "test", "-e", "/ready"])
        .status
        .success()));
    {
        let mut s = UnixStream::connect(&d.sock).expect("connect");
        s.write_all(b"POST /containers/hangup/stop?t=2 HTTP/1.1\r\nHost: barge\r\nContent-Length: 0\r\n\r\n")
            .expect("write");
        assert!(eventually(10, || d
            .ok(&["logs", "hangup"])
            .contains("received TERM")));
    }
    assert!(
        eventually(15, || state("hangup") == "exited 137"),
        "{}",
        state("hangup")
    );

    // restart's `signal` (API 1.42) is the signal the stop sends.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' USR1; touch /ready; while true; do sleep 0.1; done",
    ]);
    assert!(eventually(10, || d
        .docker(&["exec", "sig", "test", "-e", "/ready"])
        .status
        .success()));
    let since = d.ok(&["inspect", "-f", "{{.Created}}", "sig"]);
    let (code, b) = d.api("POST", "/containers/sig/restart?t=30&signal=SIGUSR1", None);
    assert_eq!(code, 204, "{b}");
    let until = chrono_now(&d);
    let codes = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=sig",
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.exitCode}}",
    ]);
    assert_eq!(codes, "7");

    // A --rm container survives a restart (overlay mounted again) and goes at stop.
    d.ok(&[
        "run", "-d", "--rm", "--name", "ar", "busybox", "sleep", "100",
    ]);
    d.ok(&["restart", "-t", "0", "ar"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "ar"]),
        "running"
    );
    d.ok(&["stop", "-t", "0", "ar"]);
    assert!(eventually(10, || !d
        .docker(&["inspect", "ar"])
        .status
        .success()));

    // PidsLimit: 0 or negative in an update is unlimited, shown as 0; before API 1.40 the
    // field is ignored.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "pids",
        "--pids-limit",
        "32",
        "busybox",
        "sleep",
        "100",
    ]);
    let pids = || d.ok(&["inspect", "-f", "{{.HostConfig.PidsLimit}}", "pids"]);
    let (code, b) = d.api(
        "POST",
        "/v1.39/containers/pids/update",
        Some(r#"{"PidsLimit":16}"#),
    );
    assert_eq!(code, 200, "{b}");
    assert_eq!(pids(), "32");
    for v in ["16", "-2"] {
        let (code, b) = d.api(
            "POST",
            "/containers/pids/update",
            Some(&format!(r#"{{"PidsLimit":{v}}}"#)),
        );
        assert_eq!(code, 200, "{b}");
    }
    assert_eq!(pids(), "0");
    let cg = d.ok(&[
        "exec",
        "pids",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
    ]);
    assert_eq!(cg, "max");
}

#[test]
fn container_setup_console_workdir_sysctls_masks_and_tmpfs() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // HostConfig.ConsoleSize is the pty's size from the first instruction on.
    let id = create(
        &d,
        r#"{"Image":"busybox","Tty":true,"Cmd":["stty","size"],"HostConfig":{"ConsoleSize":[57,123]}}"#,
    );
    d.ok(&["start", "-a", &id]);
    assert_eq!(d.ok(&["logs", &id]), "57 123");
    // So is an exec's (ConsoleSize of exec create, API 1.42).
    d.ok(&["run", "-d", "--name", "ex", "busybox", "sleep", "100"]);
    let (code, b) = d.api(
        "POST",
        "/containers/ex/exec",
        Some(r#"{"Cmd":["stty","size"],"Tty":true,"AttachStdout":true,"ConsoleSize":[57,123]}"#),
    );
    assert_eq!(code, 201, "{b}");
    let eid: Value = serde_json::from_str(&b).expect("json");
    let eid = eid["Id"].as_str().expect("Id");
    // Started as the docker CLI does: an upgraded connection carrying the raw tty stream.
    let mut s = UnixStream::connect(&d.sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let body = r#"{"Tty":true}"#;
    write!(
        s,
        "POST /exec/{eid}/start HTTP/1.1\r\nHost: barge\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, stream) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    assert!(head.starts_with("HTTP/1.1 101"), "{out}");
    assert_eq!(stream.trim(), "57 123");
    // A working directory the image lacks is made.
    assert_eq!(
        d.ok(&["run", "--rm", "-w", "/new/dir", "busybox", "pwd"]),
        "/new/dir"
    );
    // In its own network namespace any user may ping and bind low ports (dockerd's
    // defaults); Sysctls given win.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-u",
            "1000",
            "busybox",
            "cat",
            "/proc/sys/net/ipv4/ping_group_range",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start"
        ]),
        "0\t2147483647\n0"
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
    // Inspect shows the masked and read-only paths the container gets (the defaults when
    // none were given, an empty list kept empty).
    let id = create(&d, r#"{"Image":"busybox","Cmd":["true"]}"#);
    let v = d.inspect(&id);
    let masked = v["HostConfig"]["MaskedPaths"]
        .as_array()
        .expect("MaskedPaths");
    assert!(masked.iter().any(|p| p == "/proc/kcore"), "{masked:?}");
    let ro = v["HostConfig"]["ReadonlyPaths"]
        .as_array()
        .expect("ReadonlyPaths");
    assert!(ro.iter().any(|p| p == "/proc/sys"), "{ro:?}");
    let id = create(
        &d,
        r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"MaskedPaths":[]}}"#,
    );
    assert_eq!(
        d.inspect(&id)["HostConfig"]["MaskedPaths"],
        serde_json::json!([])
    );
    // The IPC mode is recorded: "private" by default, "shareable" for clients before 1.40.
    assert_eq!(d.inspect(&id)["HostConfig"]["IpcMode"], "private");
    let (code, b) = d.api(
        "POST",
        "/v1.39/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"]}"#),
    );
    assert_eq!(code, 201, "{b}");
    let old: Value = serde_json::from_str(&b).expect("json");
    let old = old["Id"].as_str().expect("Id");
    assert_eq!(d.inspect(old)["HostConfig"]["IpcMode"], "shareable");
    // A Tmpfs at a VOLUME's path replaces the anonymous volume.
    let id = create(
        &d,
        r#"{"Image":"busybox","Volumes":{"/foo":{},"/bar":{}},"HostConfig":{"Tmpfs":{"/foo":"","/bar":"size=999"}},
            "Cmd":["sh","-c","mount | grep ' /foo ' | grep -q tmpfs && mount | grep ' /bar ' | grep -q tmpfs"]}"#,
    );
    assert_eq!(d.inspect(&id)["Mounts"], serde_json::json!([]));
    d.ok(&["start", "-a", &id]);
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]), "0");
}

#[test]
fn volume_prune_by_api_version_and_commit_env_expansion() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // Since API 1.42 prune takes anonymous volumes only (unless all=true); before, every
    // unused local volume.
    d.ok(&["volume", "create", "named"]);
    let (code, b) = d.api("POST", "/volumes/create", Some("{}"));
    assert_eq!(code, 201, "{b}");
    let (_, b) = d.api("POST", "/volumes/prune", None);
    let v: Value = serde_json::from_str(&b).expect("json");
    assert_eq!(v["VolumesDeleted"].as_array().map(Vec::len), Some(1), "{b}");
    let (_, b) = d.api("POST", "/v1.41/volumes/prune", None);
    let v: Value = serde_json::from_str(&b).expect("json");
    assert_eq!(v["VolumesDeleted"], serde_json::json!(["named"]), "{b}");

    // commit --change ENV expands $VAR against the environment the image has.
    d.ok(&["create", "--name", "c1", "busybox", "true"]);
    d.ok(&["commit", "-c", "ENV PATH=/bin", "c1", "envimg:1"]);
    d.ok(&["create", "--name", "c2", "envimg:1", "true"]);
    d.ok(&["commit", "-c", "ENV PATH=/usr/bin:$PATH", "c2", "envimg:2"]);
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{json .Config.Env}}", "envimg:2"]),
        r#"["PATH=/usr/bin:/bin"]"#
    );
}

#[test]
fn network_names_that_look_like_ids_resolve_as_dockerd() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // A full ID wins over a network named like it, and a name over an ID prefix.
    let id = d.ok(&["network", "create", "testnet"]);
    let full_named = d.ok(&["network", "create", &id]);
    let prefix_named = d.ok(&["network", "create", &id[..12]]);
    d.ok(&["network", "rm", &id[..12]]);
    d.ok(&["network", "rm", &id]);
    let left = d.ok(&["network", "ls", "-q", "--no-trunc"]);
    assert!(left.contains(&full_named), "{left}");
    assert!(
        !left.contains(&id) || left.lines().all(|l| l != id),
        "{left}"
    );
    assert!(left.lines().all(|l| l != prefix_named), "{left}");
}

#[test]
fn import_platform_and_pull_platform_errors() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let tar = std::fs::read(engine::busybox_tar()).expect("busybox tar");
    // The platform of an import is the image's; an OS alone gets the host's architecture;
    // what is not a linux platform is refused (400) before anything is stored.
    let o = d.docker_stdin(
        &["import", "--platform", "linux/sparc64", "-", "imp:sparc"],
        &tar,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.Architecture}}",
            "imp:sparc"
        ]),
        "linux/sparc64"
    );
    let o = d.docker_stdin(&["import", "--platform", "LINUX", "-", "imp:upper"], &tar);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Os}}", "imp:upper"]),
        "linux"
    );
    for (bad, words) in [
        ("       ", "is an invalid component"),
        ("/", "is an invalid component"),
        ("macos", "operating system is not supported"),
        ("macos/arm64", "operating system is not supported"),
        ("nintendo64", "unknown operating system or architecture"),
    ] {
        let (code, b) = d.api(
            "POST",
            &format!(
                "/images/create?fromSrc=-&repo=imp&tag=bad&platform={}",
                bad.replace(' ', "%20")
            ),
            None,
        );
        assert_eq!(code, 400, "{bad:?}: {b}");
        assert!(message(&b).contains(words), "{bad:?}: {b}");
    }
    assert!(!d.docker(&["image", "inspect", "imp:bad"]).status.success());
    // A pull's platform that is no platform says so in dockerd's words.
    let (code, b) = d.api(
        "POST",
        "/images/create?fromImage=busybox&tag=latest&platform=foobar",
        None,
    );
    assert_eq!(code, 400, "{b}");
    assert!(
        message(&b).contains("unknown operating system or architecture"),
        "{b}"
    );
}
