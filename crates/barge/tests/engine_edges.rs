//! End-to-end edges of the engine issue: output to a closed pipe, `cp -L` to stdout, image
//! search, health events, and the API over TCP with TLS client certificates.

mod engine;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};

use engine::{eventually, skip, Daemon};

/// `barge -H <daemon> args...`.
fn barge(d: &Daemon, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_barge"));
    c.arg("-H")
        .arg(format!("unix://{}", d.sock.display()))
        .args(args);
    c
}

/// A pipe whose reading end is already closed: every write to the other end fails with EPIPE.
fn closed_pipe() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe fills two fds we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the fds are ours; the read end is closed at once.
    unsafe {
        libc::close(fds[0]);
        std::os::fd::OwnedFd::from_raw_fd(fds[1])
    }
}

/// Runs `cmd` with stdout (or stderr) on a closed pipe; returns the output of the other.
fn to_closed_pipe(mut cmd: Command, stderr_too: bool) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::from(closed_pipe()));
    if stderr_too {
        cmd.stderr(Stdio::from(closed_pipe()));
    } else {
        cmd.stderr(Stdio::piped());
    }
    cmd.output().expect("run barge")
}

#[test]
fn commands_writing_to_a_closed_pipe_exit_quietly() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "seq 1 2000; ln -s /etc/passwd /pw",
    ]);
    let cases: &[&[&str]] = &[
        &["ps", "-a"],
        &["ps", "-a", "--format", "{{.Names}}"],
        &["images"],
        &["inspect", "talker"],
        &["logs", "talker"],
        &["version"],
        &["info"],
        &["history", "busybox"],
        &["cp", "talker:/etc/passwd", "-"],
    ];
    for args in cases {
        let o = to_closed_pipe(barge(&d, args), false);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "barge {args:?} panicked: {err}");
        // As the docker CLI: ended by SIGPIPE, with nothing printed.
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGPIPE),
            "barge {args:?}: {:?} {err}",
            o.status
        );
        assert!(err.is_empty(), "barge {args:?} printed: {err}");
    }
    // An error message to a closed stderr: no panic either (a panic exits 101).
    let o = to_closed_pipe(barge(&d, &["inspect", "no-such-thing"]), true);
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{:?}", o.status);
    // A reader that stops early, the usual way.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} -H unix://{} logs talker | head -1",
            env!("CARGO_BIN_EXE_barge"),
            d.sock.display()
        ))
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1\n");
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The entries (path, content) of a tar stream.
fn tar_entries(data: &[u8]) -> Vec<(String, String)> {
    let mut ar = tar::Archive::new(data);
    let mut out = Vec::new();
    for e in ar.entries().expect("tar") {
        let mut e = e.expect("entry");
        let p = e.path().expect("path").display().to_string();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut e, &mut s).expect("read entry");
        out.push((p, s));
    }
    out
}

#[test]
fn cp_follow_link_to_stdout_streams_the_target_as_the_docker_cli_does() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "links",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data/dir && echo content > /data/real && echo inner > /data/dir/f \
         && ln -s /data/real /data/link && ln -s dir /data/dlink",
    ]);
    // Without -L: the link itself.
    let o = barge(&d, &["cp", "links:/data/link", "-"])
        .output()
        .expect("cp");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(tar_entries(&o.stdout), vec![("link".into(), "".into())]);
    // With -L: the target's content under the target's own name, exactly as the docker CLI
    // (28) streams it through barge's stat and archive endpoints.
    let o = barge(&d, &["cp", "-L", "links:/data/link", "-"])
        .output()
        .expect("cp");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours = tar_entries(&o.stdout);
    assert_eq!(ours, vec![("real".into(), "content\n".into())]);
    let o = d.docker(&["cp", "-L", "links:/data/link", "-"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(tar_entries(&o.stdout), ours);
    // A link to a directory: the target's whole tree, as the docker CLI streams it.
    let o = barge(&d, &["cp", "-L", "links:/data/dlink", "-"])
        .output()
        .expect("cp");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e = tar_entries(&o.stdout);
    assert!(e.contains(&("dir/f".into(), "inner\n".into())), "{e:?}");
    let o = d.docker(&["cp", "-L", "links:/data/dlink", "-"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(tar_entries(&o.stdout), e);
}

#[test]
fn image_search_answers_not_supported_in_dockers_shape() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let (code, body) = d.api("GET", "/v1.47/images/search?term=busybox", None);
    assert_eq!(code, 501, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    let msg = v["message"].as_str().expect("message");
    assert!(msg.contains("not supported"), "{msg}");
    let o = d.docker(&["search", "busybox"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Error response from daemon") && err.contains("search is not supported"),
        "{err}"
    );
}

#[test]
fn health_status_changes_are_events() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        .to_string();
    // Healthy while /tmp/ok exists, unhealthy after the container removes it.
    let id = d.ok(&[
        "run",
        "-d",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "300ms",
        "--health-retries",
        "1",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; sleep 2; rm /tmp/ok; sleep 60",
    ]);
    let health = || d.ok(&["inspect", "-f", "{{.State.Health.Status}}", &id]);
    assert!(eventually(20, || health() == "healthy"), "{}", health());
    assert!(eventually(20, || health() == "unhealthy"), "{}", health());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        + 1;
    let ev = d.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &now.to_string(),
        "--filter",
        "event=health_status",
        "--format",
        "{{.Status}} {{.ID}}",
    ]);
    let lines: Vec<&str> = ev.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("health_status: healthy {id}"),
            format!("health_status: unhealthy {id}")
        ],
        "{ev}"
    );
    // The exact action filters too, and other events are left out.
    let ev = d.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &now.to_string(),
        "--filter",
        "event=health_status: unhealthy",
        "--format",
        "{{.Status}}",
    ]);
    assert_eq!(ev, "health_status: unhealthy");
    d.ok(&["rm", "-f", &id]);
}

/// Makes a CA, a server certificate for 127.0.0.1 and a client certificate in `dir`.
fn make_certs(dir: &std::path::Path) {
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=barge-test-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout key.pem -out client.csr -subj /CN=client 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 2 -extfile client.ext 2>/dev/null
"#;
    let o = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn tcp_needs_tls_with_client_certificates() {
    if skip() {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    let c = certs.path();
    make_certs(c);
    let p = |n: &str| c.join(n).display().to_string();

    // Plain TCP, or TLS without the files, does not start, and leaves nothing on disk.
    let roots = tempfile::tempdir().expect("tempdir");
    let data = roots.path().join("data");
    for extra in [
        vec![],
        vec!["--tlsverify".to_string()],
        vec![
            "--tlsverify".into(),
            "--tlscacert".into(),
            p("ca.pem"),
            "--tlscert".into(),
            p("server.pem"),
        ],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_barge"))
            .args(["daemon", "-H", "tcp://127.0.0.1:2376", "--data-root"])
            .arg(&data)
            .arg("--exec-root")
            .arg(roots.path().join("exec"))
            .arg("--config-file")
            .arg(roots.path().join("daemon.json"))
            .args(&extra)
            .stdin(Stdio::null())
            .output()
            .expect("barge daemon");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?}: started");
        assert!(
            err.contains("refusing to serve the API over plain TCP") && err.contains("--tlsverify"),
            "{extra:?}: {err}"
        );
        assert!(!data.exists(), "{extra:?}: created {}", data.display());
    }
    // A key that is not a key: named.
    let o = Command::new(env!("CARGO_BIN_EXE_barge"))
        .args(["daemon", "-H", "tcp://127.0.0.1:2376", "--tlsverify"])
        .args(["--tlscacert", &p("ca.pem"), "--tlscert", &p("server.pem")])
        .args(["--tlskey", &p("ca.pem"), "--data-root"])
        .arg(&data)
        .arg("--config-file")
        .arg(roots.path().join("daemon.json"))
        .output()
        .expect("barge daemon");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--tlskey"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!data.exists());

    // With the files: TCP in the daemon's namespace, plus its unix socket.
    let mut d = Daemon::start();
    d.restart_with(&[
        "-H",
        "tcp://127.0.0.1:2376",
        "--tlsverify",
        "--tlscacert",
        &p("ca.pem"),
        "--tlscert",
        &p("server.pem"),
        "--tlskey",
        &p("server-key.pem"),
    ]);
    let cfg = d.dir.path().join("docker-config").display().to_string();
    let docker = |flags: &str, args: &str| {
        d.sh(&format!(
            "DOCKER_CONFIG={cfg} docker {flags} -H tcp://127.0.0.1:2376 {args}"
        ))
    };
    let tls = format!(
        "--tlsverify --tlscacert {} --tlscert {} --tlskey {}",
        p("ca.pem"),
        p("cert.pem"),
        p("key.pem")
    );
    let ready = || {
        docker(&tls, "version --format {{.Server.Version}}")
            .status
            .success()
    };
    assert!(eventually(10, ready), "{}", d.log());
    let o = docker(&tls, "run --rm busybox echo over-tls");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "over-tls\n");
    // A client without a certificate gets no answer.
    let o = docker(
        &format!("--tlsverify --tlscacert {}", p("ca.pem")),
        "version --format {{.Server.Version}}",
    );
    assert!(!o.status.success(), "a client without a certificate got in");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("certificate required"), "{err}");
    let o = d.sh(&format!(
        "curl -s --max-time 5 --cacert {} https://127.0.0.1:2376/_ping",
        p("ca.pem")
    ));
    assert!(!o.status.success() && o.stdout.is_empty(), "{o:?}");
    // A certificate from another CA neither.
    let other = tempfile::tempdir().expect("tempdir");
    make_certs(other.path());
    let o = d.sh(&format!(
        "curl -s --max-time 5 --cacert {} --cert {} --key {} https://127.0.0.1:2376/_ping",
        p("ca.pem"),
        other.path().join("cert.pem").display(),
        other.path().join("key.pem").display()
    ));
    assert!(!o.status.success() && o.stdout.is_empty(), "{o:?}");
    // Plain HTTP on the TLS port is not served.
    let o = d.sh("curl -s --max-time 5 http://127.0.0.1:2376/_ping");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("OK"), "{o:?}");
    // With the certificate: the API.
    let o = d.sh(&format!(
        "curl -s --max-time 5 --cacert {} --cert {} --key {} https://127.0.0.1:2376/_ping",
        p("ca.pem"),
        p("cert.pem"),
        p("key.pem")
    ));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "OK", "{o:?}");
    // Back to the harness's usual daemon for its teardown.
    d.restart_with(&[]);
}

#[test]
fn removed_containers_leave_no_files_even_after_a_crash_mid_removal() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    let data = d.dir.path().join("data");
    let exec = d.dir.path().join("exec/containers");
    let ls = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(p)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "gone"]), "gone");
    // The files go right after `run --rm` returns (the record went before it returned).
    let empty = || {
        ls(&data.join("containers")).is_empty()
            && ls(&data.join("image/snapshots")).is_empty()
            && ls(&exec).is_empty()
    };
    assert!(eventually(10, empty), "{:?}", ls(&data.join("containers")));
    // A daemon that died after deleting a record but before the files: the next start
    // deletes them.
    let id = d.ok(&["create", "busybox", "true"]);
    d.restart_with(&[]);
    assert_eq!(ls(&data.join("image/snapshots")), std::slice::from_ref(&id));
    d.kill9();
    std::fs::remove_file(data.join("containers").join(&id).join("config.v2.json"))
        .expect("remove record");
    d.spawn();
    assert!(empty(), "{:?}", ls(&data.join("image/snapshots")));
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}
