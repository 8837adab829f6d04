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

/// Runs `argv` inside the daemon's network namespace on a pseudo-terminal, typing `input`
/// once `ready` has been printed; returns everything the terminal showed and the exit code.
fn on_a_pty(d: &Daemon, argv: &[String], ready: &str, input: &str) -> (String, i32) {
    let prog = r#"
import os, pty, select, sys, time
argv, ready, data = sys.argv[1:-2], sys.argv[-2].encode(), sys.argv[-1].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out, sent, end = b"", False, time.time() + 60
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    if not sent and ready in out:
        os.write(fd, data)
        sent = True
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        pid = 0
        break
if pid:
    os.kill(pid, 9)
    out += b"[killed: the client did not exit]"
    st = os.waitpid(pid, 0)[1]
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(st) & 255)
"#;
    let o = Command::new("ip")
        .args(["netns", "exec", d.netns(), "python3", "-c", prog])
        .args(argv)
        .args([ready, input])
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

#[test]
fn tls_serves_docker_py_and_interactive_sessions_and_plain_tcp_needs_tls_false() {
    if skip() {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    let c = certs.path();
    make_certs(c);
    let p = |n: &str| c.join(n).display().to_string();
    let other = tempfile::tempdir().expect("tempdir");
    make_certs(other.path());
    let o = |n: &str| other.path().join(n).display().to_string();

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
    // docker-py's TLSConfig: client certificate, CA, verify=True.
    let py = |cert: &str, key: &str, code: &str| {
        let script = format!(
            "import docker, docker.tls, sys\n\
             tls = docker.tls.TLSConfig(client_cert=({cert:?}, {key:?}), ca_cert={ca:?}, verify=True)\n\
             c = docker.DockerClient(base_url='https://127.0.0.1:2376', tls=tls)\n\
             {code}\n",
            ca = p("ca.pem"),
        );
        Command::new("ip")
            .args(["netns", "exec", d.netns(), "python3", "-c", &script])
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
            // requests lets these override the CA docker-py passes it.
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE")
            .stdin(Stdio::null())
            .output()
            .expect("python3")
    };
    let up = || {
        py(&p("cert.pem"), &p("key.pem"), "c.ping()")
            .status
            .success()
    };
    assert!(eventually(10, up), "{}", d.log());
    let out = py(
        &p("cert.pem"),
        &p("key.pem"),
        "sys.stdout.buffer.write(c.containers.run('busybox', 'echo hi-from-py', remove=True))",
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi-from-py\n");
    // A certificate from another CA is refused at the handshake: docker-py sees an SSL error.
    let out = py(&o("cert.pem"), &o("key.pem"), "c.ping()");
    assert!(!out.status.success(), "a foreign client certificate got in");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SSL"), "{err}");

    // `-it`: the hijacked attach (run) and exec connections over TLS, on a terminal.
    let docker = |args: &[&str]| -> Vec<String> {
        [
            "docker",
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            &p("cert.pem"),
            "--tlskey",
            &p("key.pem"),
            "-H",
            "tcp://127.0.0.1:2376",
        ]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect()
    };
    let (out, code) = on_a_pty(
        &d,
        &docker(&["run", "-it", "--rm", "--name", "tty-run", "busybox", "sh"]),
        "#",
        "tty; echo sum=$((6*7)); exit 3\n",
    );
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("/dev/pts/0") && out.contains("sum=42"),
        "{out}"
    );
    d.ok(&["run", "-d", "--name", "tty-exec", "busybox", "sleep", "300"]);
    let (out, _) = on_a_pty(
        &d,
        &docker(&["exec", "-it", "tty-exec", "sh"]),
        "#",
        "tty; echo product=$((6*8)); exit\n",
    );
    assert!(
        out.contains("/dev/pts/") && out.contains("product=48"),
        "{out}"
    );
    d.ok(&["rm", "-f", "tty-exec"]);

    // Plain TCP only when asked for by name (dockerd >= 27's --tls=false); never with
    // --tlsverify at the same time.
    let roots = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_barge"))
        .args(["daemon", "-H", "tcp://127.0.0.1:2375", "--tls=false"])
        .args(["--tlsverify", "--data-root"])
        .arg(roots.path().join("data"))
        .arg("--config-file")
        .arg(roots.path().join("daemon.json"))
        .stdin(Stdio::null())
        .output()
        .expect("barge daemon");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls=false") && err.contains("--tlsverify"),
        "{err}"
    );
    // TLS without client certificates (dockerd's --tls alone) is refused by name.
    let out = Command::new(env!("CARGO_BIN_EXE_barge"))
        .args(["daemon", "-H", "tcp://127.0.0.1:2376", "--tls"])
        .args([
            "--tlscert",
            &p("server.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ])
        .arg("--data-root")
        .arg(roots.path().join("data"))
        .arg("--config-file")
        .arg(roots.path().join("daemon.json"))
        .stdin(Stdio::null())
        .output()
        .expect("barge daemon");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing --tls without --tlsverify"), "{err}");
    assert!(!roots.path().join("data").exists());
    d.restart_with(&["-H", "tcp://127.0.0.1", "--tls=false"]);
    let ping = || {
        let o = d.sh("curl -s --max-time 5 http://127.0.0.1:2375/_ping");
        String::from_utf8_lossy(&o.stdout) == "OK"
    };
    assert!(eventually(10, ping), "{}", d.log());
    assert!(d.log().contains("plain TCP"), "{}", d.log());
    let out = d.sh(&format!(
        "DOCKER_CONFIG={} docker -H tcp://127.0.0.1:2375 run --rm busybox echo plain",
        d.dir.path().join("docker-config").display()
    ));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "plain\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

#[test]
fn a_killed_monitor_leaves_no_processes_or_cgroups() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let id = d.ok(&["run", "-d", "busybox", "sleep", "300"]);
    let pid: i32 = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", &id])
        .parse()
        .expect("pid");
    // The container's parent is its monitor.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let monitor: i32 = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("ppid");
    let cmdline = std::fs::read(format!("/proc/{monitor}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("monitor"),
        "parent {monitor} is not a monitor: {:?}",
        String::from_utf8_lossy(&cmdline)
    );
    let cgroups = || -> Vec<String> {
        ["pids", "memory", "cpu", "unified"]
            .iter()
            .map(|c| format!("/sys/fs/cgroup/{c}/barge/{id}"))
            .filter(|p| std::path::Path::new(p).exists())
            .collect()
    };
    assert!(
        !cgroups().is_empty(),
        "no cgroup found for the running container"
    );
    // SAFETY: signalling the monitor process this test's daemon started.
    unsafe { libc::kill(monitor, libc::SIGKILL) };
    assert!(
        eventually(20, || d.ok(&["inspect", "-f", "{{.State.Running}}", &id])
            == "false"),
        "the daemon did not notice its monitor die"
    );
    let gone = |p: i32| {
        !std::path::Path::new(&format!("/proc/{p}")).exists()
            || std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
    };
    assert!(
        eventually(20, || gone(pid)),
        "the container's process outlived its monitor"
    );
    assert!(
        eventually(20, || cgroups().is_empty()),
        "cgroups left: {:?}",
        cgroups()
    );
    d.ok(&["rm", &id]);
}

/// `barge` (the CLI) inside the daemon's network namespace, with `env` and none of the
/// outer environment's daemon variables; stdin from `input`.
fn barge_in_netns(d: &Daemon, env: &[(&str, &str)], args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut c = Command::new("ip");
    c.args(["netns", "exec", d.netns(), env!("CARGO_BIN_EXE_barge")])
        .args(args);
    for v in [
        "BARGE_HOST",
        "DOCKER_HOST",
        "DOCKER_TLS",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "DOCKER_CONFIG",
    ] {
        c.env_remove(v);
    }
    c.envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut ch = c.spawn().expect("barge");
    let mut w = ch.stdin.take().expect("stdin");
    w.write_all(input).expect("stdin");
    drop(w);
    ch.wait_with_output().expect("barge output")
}

#[test]
fn cli_over_tcp_with_tls_flags_and_variables() {
    if skip() {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    let c = certs.path();
    make_certs(c);
    let p = |n: &str| c.join(n).display().to_string();
    let other = tempfile::tempdir().expect("tempdir");
    make_certs(other.path());
    let empty = tempfile::tempdir().expect("tempdir");
    let empty_dir = empty.path().display().to_string();

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
    let (ca, cert, key) = (p("ca.pem"), p("cert.pem"), p("key.pem"));
    let tls: Vec<&str> = vec![
        "-H",
        "tcp://127.0.0.1:2376",
        "--tlsverify",
        "--tlscacert",
        &ca,
        "--tlscert",
        &cert,
        "--tlskey",
        &key,
    ];
    // No default files may leak in from a home directory.
    let no_defaults = [("DOCKER_CERT_PATH", empty_dir.as_str())];
    let run = |env: &[(&str, &str)], extra: &[&str], input: &[u8]| {
        let mut env = env.to_vec();
        if !env.iter().any(|(k, _)| *k == "DOCKER_CERT_PATH") {
            env.extend(no_defaults);
        }
        barge_in_netns(&d, &env, extra, input)
    };
    let ok = |env: &[(&str, &str)], args: &[&str], input: &[u8]| -> String {
        let o = run(env, args, input);
        assert!(
            o.status.success(),
            "barge {args:?} {env:?}: {:?} {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            d.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let with = |args: &[&str]| -> Vec<String> {
        tls.iter()
            .chain(args.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let ok_tls = |args: &[&str], input: &[u8]| -> String {
        let a = with(args);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ok(&[], &a, input)
    };
    assert!(
        eventually(10, || run(
            &[],
            &with(&["version"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            b""
        )
        .status
        .success()),
        "{}",
        d.log()
    );

    // The flags: ps, run --rm, logs, exec (plain and with stdin through the TLS stream).
    assert!(ok_tls(&["ps"], b"").starts_with("CONTAINER ID"));
    assert_eq!(
        ok_tls(&["run", "--rm", "busybox", "echo", "over-tls"], b""),
        "over-tls\n"
    );
    let id = ok_tls(
        &[
            "run",
            "-d",
            "--name",
            "tlsbox",
            "busybox",
            "sh",
            "-c",
            "echo from-logs; exec sleep 300",
        ],
        b"",
    );
    assert_eq!(id.trim().len(), 64, "{id}");
    assert!(eventually(10, || ok_tls(&["logs", "tlsbox"], b"") == "from-logs\n"));
    assert_eq!(
        ok_tls(&["exec", "tlsbox", "echo", "exec-ok"], b""),
        "exec-ok\n"
    );
    assert_eq!(
        ok_tls(&["exec", "-i", "tlsbox", "cat"], b"stdin through TLS\n"),
        "stdin through TLS\n"
    );
    assert!(ok_tls(&["ps", "--format", "{{.Names}}"], b"").contains("tlsbox"));

    // docker's variables: DOCKER_HOST without a port takes 2376 under TLS, and the files
    // come from DOCKER_CERT_PATH under their default names.
    let env_tls = [
        ("DOCKER_HOST", "tcp://127.0.0.1"),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", c.to_str().expect("utf-8")),
    ];
    assert_eq!(
        ok(&env_tls, &["ps", "--format", "{{.Names}}"], b"").trim(),
        "tlsbox"
    );
    // ... and so does DOCKER_CONFIG when DOCKER_CERT_PATH is unset (docker's ~/.docker).
    let cfg_tls = [
        ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CONFIG", c.to_str().expect("utf-8")),
        ("DOCKER_CERT_PATH", ""),
    ];
    assert_eq!(ok(&cfg_tls, &["logs", "tlsbox"], b""), "from-logs\n");
    // BARGE_HOST wins over DOCKER_HOST, and -H over both.
    let sock = format!("unix://{}", d.sock.display());
    let bogus = [
        ("DOCKER_HOST", "tcp://127.0.0.1:1"),
        ("BARGE_HOST", sock.as_str()),
    ];
    assert!(ok(&bogus, &["ps"], b"").contains("tlsbox"));
    let o = run(
        &[("BARGE_HOST", "tcp://127.0.0.1:1")],
        &["-H", &sock, "ps"],
        b"",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Refused: no client certificate (the daemon requires one), plain TCP to the TLS port,
    // a server certificate from a CA the client does not trust.
    let refused = |env: &[(&str, &str)], args: &[&str], want: &str| {
        let o = run(env, args, b"");
        let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
        assert!(!o.status.success(), "{args:?} got in");
        assert!(o.stdout.is_empty(), "{args:?}: {o:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    };
    refused(
        &[],
        &[
            "-H",
            "tcp://127.0.0.1:2376",
            "--tlsverify",
            "--tlscacert",
            &ca,
            "ps",
        ],
        "certificate",
    );
    refused(
        &[],
        &["-H", "tcp://127.0.0.1:2376", "ps"],
        "request to the daemon failed",
    );
    let other_ca = other.path().join("ca.pem").display().to_string();
    let o = run(
        &[],
        &[
            "-H",
            "tcp://127.0.0.1:2376",
            "--tlsverify",
            "--tlscacert",
            &other_ca,
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
            "ps",
        ],
        b"",
    );
    assert!(!o.status.success(), "a server from another CA was trusted");
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(err.contains("certificate") && err.contains("tls"), "{err}");
    // --tls alone does not verify the server (docker's semantics), but still shows our
    // certificate, so the daemon lets it in.
    assert!(ok(
        &[],
        &[
            "-H",
            "tcp://127.0.0.1:2376",
            "--tls",
            "--tlscacert",
            &other_ca,
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
            "ps"
        ],
        b"",
    )
    .contains("tlsbox"));
    // --tlsverify=false is TLS without verification too.
    assert!(ok(
        &[],
        &[
            "-H",
            "tcp://127.0.0.1:2376",
            "--tlsverify=false",
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
            "ps"
        ],
        b"",
    )
    .contains("tlsbox"));
    // Files named on the command line must exist; the error names the flag and the file.
    let missing = c.join("nope.pem").display().to_string();
    let o = run(
        &[],
        &[
            "-H",
            "tcp://127.0.0.1:2376",
            "--tlsverify",
            "--tlscacert",
            &missing,
            "ps",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--tlscacert") && err.contains(&missing),
        "{err}"
    );
    let o = run(
        &[],
        &[
            "-H",
            "tcp://127.0.0.1:2376",
            "--tls",
            "--tlscert",
            &cert,
            "ps",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(125), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--tlskey"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&[], &["-H", "ssh://u@h", "ps"], b"");
    assert_eq!(o.status.code(), Some(125), "{o:?}");

    // The docker CLI with --tlsverify reads what barge made over TLS.
    let cfg = d.dir.path().join("docker-config").display().to_string();
    let o = d.sh(&format!(
        "DOCKER_CONFIG={cfg} docker -H tcp://127.0.0.1:2376 --tlsverify --tlscacert {ca} \
         --tlscert {cert} --tlskey {key} exec tlsbox echo docker-exec"
    ));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "docker-exec\n", "{o:?}");
    ok_tls(&["rm", "-f", "tlsbox"], b"");
    d.restart_with(&[]);
}

/// The soft and hard values of a line of /proc/<pid>/limits (`Max open files  1 2 files`).
fn limit(limits: &str, name: &str) -> (String, String) {
    let l = limits
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name:?} in {limits}"));
    let mut f = l.split_whitespace();
    (
        f.next().unwrap_or_default().to_string(),
        f.next().unwrap_or_default().to_string(),
    )
}

/// `barge daemon` with `args` on fresh roots under `dir`; returns (success, stderr). Only for
/// daemons expected to refuse to start (they are killed if they do not).
fn daemon_refuses(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut ch = Command::new(env!("CARGO_BIN_EXE_barge"))
        .arg("daemon")
        .arg("-H")
        .arg(format!("unix://{}", dir.join("r.sock").display()))
        .arg("--data-root")
        .arg(dir.join("rdata"))
        .arg("--exec-root")
        .arg(dir.join("rexec"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("barge daemon");
    let exited = eventually(20, || matches!(ch.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = ch.kill();
    }
    let o = ch.wait_with_output().expect("wait");
    (
        exited && o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn daemon_flags_pidfile_config_file_default_ulimits_log_level() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    let dir = d.dir.path().to_path_buf();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    // The default pidfile is <exec-root>/barge.pid; the default log level shows INFO lines.
    let pid = d.pid().expect("pid").to_string();
    assert_eq!(read(&dir.join("exec/barge.pid")).trim(), pid);
    // The socket is for root (and the socket's group) only.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::metadata(&d.sock).expect("socket");
    assert_eq!((m.permissions().mode() & 0o777, m.uid()), (0o660, 0));
    assert!(d.log().contains(" INFO "), "{}", d.log());

    // --pidfile, --default-ulimit, --log-level.
    let pidfile = dir.join("elsewhere/custom.pid");
    let pidfile_s = pidfile.display().to_string();
    let before = d.log().len();
    d.restart_with(&[
        "--pidfile",
        &pidfile_s,
        "--default-ulimit",
        "nofile=1000:2000",
        "--log-level",
        "error",
        "--insecure-registry",
        "myreg.example:5000",
    ]);
    // --insecure-registry shows where docker's `info` lists it.
    let info = d.ok(&["info"]);
    let listed = info
        .split("Insecure Registries:")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .collect::<Vec<_>>();
    assert!(listed.contains(&"myreg.example:5000"), "{info}");
    let o = barge(&d, &["info"]).output().expect("barge info");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("  myreg.example:5000\n"),
        "{o:?}"
    );
    assert_eq!(read(&pidfile).trim(), d.pid().expect("pid").to_string());
    assert!(
        !dir.join("exec/barge.pid").exists(),
        "the old pidfile outlived its daemon"
    );
    let lim = d.ok(&["run", "--rm", "busybox", "cat", "/proc/self/limits"]);
    assert_eq!(
        limit(&lim, "Max open files"),
        ("1000".into(), "2000".into())
    );
    let lim = d.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=300:400",
        "busybox",
        "cat",
        "/proc/self/limits",
    ]);
    assert_eq!(limit(&lim, "Max open files"), ("300".into(), "400".into()));
    // (The previous daemon's own "shutting down" line lands after `before`.)
    let info_lines = |log: &str| {
        log.lines()
            .filter(|l| l.contains(" INFO ") && !l.contains("shutting down"))
            .count()
    };
    let log = d.log()[before..].to_string();
    assert_eq!(info_lines(&log), 0, "--log-level error logged INFO: {log}");
    // While it runs, another daemon on its pidfile or its socket is refused.
    let other = tempfile::tempdir().expect("tempdir");
    let (ok, err) = daemon_refuses(other.path(), &["--pidfile", &pidfile_s]);
    assert!(!ok && err.contains("pid file found"), "{err}");
    let (ok, err) = Some(&d.sock)
        .map(|s| {
            // In the test's network namespace: were it to set networking up, it would not
            // be the host's.
            let o = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", d.netns()))
                .arg(env!("CARGO_BIN_EXE_barge"))
                .args(["daemon", "-H", &format!("unix://{}", s.display())])
                .arg("--data-root")
                .arg(other.path().join("d2"))
                .arg("--exec-root")
                .arg(other.path().join("e2"))
                .stdin(Stdio::null())
                .output()
                .expect("barge daemon");
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .expect("sock");
    assert!(!ok && err.contains("in use by another daemon"), "{err}");
    // Refused before anything was made: no state, no bridge, no nft table.
    assert!(
        !other.path().join("d2").exists(),
        "the refused daemon made its data root"
    );

    // daemon.json (--config-file): default-ulimits in dockerd's shape, log-level, pidfile.
    let cfg = dir.join("daemon.json");
    let pid2 = dir.join("fromjson.pid");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"default-ulimits": {{"nproc": {{"Name": "nproc", "Soft": 500, "Hard": 600}}}},
                "log-level": "warn", "pidfile": "{}"}}"#,
            pid2.display()
        ),
    )
    .expect("daemon.json");
    let before = d.log().len();
    d.restart_with(&[]);
    assert!(!pidfile.exists(), "the stopped daemon left its pidfile");
    assert_eq!(read(&pid2).trim(), d.pid().expect("pid").to_string());
    let lim = d.ok(&["run", "--rm", "busybox", "cat", "/proc/self/limits"]);
    assert_eq!(limit(&lim, "Max processes"), ("500".into(), "600".into()));
    let log = d.log()[before..].to_string();
    assert_eq!(info_lines(&log), 0, "log-level warn logged INFO: {log}");

    // Bad values: refused before anything is created, with a message naming the problem.
    let bad = tempfile::tempdir().expect("tempdir");
    let b = bad.path();
    let write = |name: &str, text: &str| {
        let p = b.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--log-level".into(), "loud".into()], "loud"),
        (
            vec!["--default-ulimit".into(), "nofile=x".into()],
            "nofile=x",
        ),
        (vec!["--default-ulimit".into(), "bogus=1".into()], "bogus"),
        (
            vec![
                "--config-file".into(),
                write("a.json", r#"{"default-ulimits": {"nofile": "1024"}}"#),
            ],
            "default-ulimits.nofile",
        ),
        (
            vec![
                "--config-file".into(),
                write(
                    "b.json",
                    r#"{"default-ulimits": {"nofile": {"Soft": 9, "Hard": 1}}}"#,
                ),
            ],
            "soft limit must be less than or equal to hard limit",
        ),
        (
            vec!["--config-file".into(), write("c.json", "{not json")],
            "invalid JSON",
        ),
        (
            vec![
                "--config-file".into(),
                write("d.json", r#"{"log-level": "loud"}"#),
            ],
            "loud",
        ),
    ];
    for (args, want) in cases {
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        let none = b.join("none.json").display().to_string();
        if !a.contains(&"--config-file") {
            a.extend(["--config-file", &none]);
        }
        let (ok, err) = daemon_refuses(b, &a);
        assert!(!ok, "{a:?} started");
        assert!(err.contains(want), "{a:?}: {err}");
        assert!(!b.join("rdata").exists(), "{a:?} created its data root");
    }
    std::fs::write(&cfg, "{}").expect("daemon.json");
    d.restart_with(&[]);
}

#[test]
fn daemons_side_by_side_keep_to_their_own_roots() {
    if skip() {
        return;
    }
    let a = Daemon::start();
    let b = Daemon::start();
    let ia = a.ok(&["run", "-d", "--name", "same", "busybox", "sleep", "300"]);
    let ib = b.ok(&["run", "-d", "--name", "same", "busybox", "sleep", "300"]);
    assert_ne!(ia, ib);
    assert_eq!(a.ok(&["ps", "-q", "--no-trunc"]), ia);
    assert_eq!(b.ok(&["ps", "-q", "--no-trunc"]), ib);
    let root = |d: &Daemon| d.ok(&["info", "--format", "{{.DockerRootDir}}"]);
    assert_eq!(root(&a), a.dir.path().join("data").display().to_string());
    assert_eq!(root(&b), b.dir.path().join("data").display().to_string());
    // The barge CLI picks one by -H.
    let o = barge(&b, &["ps", "-q", "--no-trunc"])
        .output()
        .expect("barge");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), ib);
    a.ok(&["rm", "-f", "same"]);
    assert_eq!(a.ok(&["ps", "-aq"]), "");
    assert_eq!(
        b.ok(&["inspect", "-f", "{{.State.Status}}", "same"]),
        "running"
    );
    b.ok(&["rm", "-f", "same"]);
}

/// The `timeNano` of container `name`'s `start` events since `since` (seconds), in order.
fn start_times(d: &Daemon, name: &str, since: f64) -> Vec<f64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs_f64();
    let f = format!(r#"{{"container":["{name}"],"event":["start"]}}"#);
    let enc: String = f
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (code, raw) = d.api(
        "GET",
        &format!("/events?since={since}&until={now}&filters={enc}"),
        None,
    );
    assert_eq!(code, 200, "{raw}");
    raw.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["timeNano"].as_i64())
        .map(|n| n as f64 / 1e9)
        .collect()
}

#[test]
fn restart_back_off_and_policies_across_a_daemon_restart() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs_f64()
        - 1.0;
    let count = |d: &Daemon, n: &str| -> u32 {
        d.ok(&["inspect", "-f", "{{.RestartCount}}", n])
            .parse()
            .expect("RestartCount")
    };
    // Stopped by hand: unless-stopped stays down across a daemon restart, always comes back
    // (dockerd's rules); one killed while the daemon is away is restarted when it returns.
    for (n, p) in [
        ("us", "unless-stopped"),
        ("al", "always"),
        ("crash", "always"),
    ] {
        d.ok(&[
            "run",
            "-d",
            "--name",
            n,
            "--restart",
            p,
            "busybox",
            "sleep",
            "300",
        ]);
    }
    d.ok(&["stop", "-t", "1", "us", "al"]);
    let pid: i32 = d
        .ok(&["inspect", "-f", "{{.State.Pid}}", "crash"])
        .parse()
        .expect("pid");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    assert!(eventually(30, || count(&d, "loop") >= 4), "{}", d.log());
    let rc = count(&d, "loop");
    // Docker's back-off: 100 ms before the first restart, doubling each time (lower bounds
    // only: a loaded machine makes the gaps longer, never shorter).
    // (RestartCount goes up just before the start it counts.)
    assert!(eventually(30, || start_times(&d, "loop", t0).len() >= 5));
    let starts = start_times(&d, "loop", t0);
    for (i, w) in starts.windows(2).take(4).enumerate() {
        let want = 0.1 * f64::from(1u32 << i) * 0.9;
        assert!(
            w[1] - w[0] >= want,
            "restart {i}: {:.3}s < {want}s ({starts:?})",
            w[1] - w[0]
        );
    }
    d.kill9();
    // SAFETY: SIGKILL to the init of a container this test made, by its pid.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let back = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs_f64();
    d.spawn();
    let state = |n: &str| d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", n]);
    assert!(
        eventually(20, || {
            let s = state("crash");
            s.starts_with("running ") && s != format!("running {pid}")
        }),
        "{}",
        state("crash")
    );
    assert_eq!(count(&d, "crash"), 1);
    assert!(
        eventually(20, || state("al").starts_with("running")),
        "{}",
        state("al")
    );
    assert!(state("us").starts_with("exited"), "{}", state("us"));
    // The crash loop goes on with its back-off where it was: RestartCount was at least rc,
    // so the second start after the daemon's return waits at least 2^rc x 100 ms.
    assert!(
        eventually(60, || start_times(&d, "loop", back).len() >= 2),
        "{}",
        d.log()
    );
    let s = start_times(&d, "loop", back);
    let want = 0.1 * f64::from(1u32 << rc.min(10)) * 0.9;
    assert!(
        s[1] - s[0] >= want,
        "{s:?}: want >= {want}s (RestartCount {rc})"
    );
    d.ok(&["rm", "-f", "loop", "us", "al", "crash"]);
}

#[test]
fn privileged_cap_add_stop_timeout_health_options_and_id_filter() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let caps = |args: &[&str]| -> u64 {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend(["busybox", "grep", "CapEff", "/proc/self/status"]);
        let o = d.ok(&a);
        u64::from_str_radix(o.split_whitespace().nth(1).unwrap_or_default(), 16).expect("hex")
    };
    let default = caps(&[]);
    assert_eq!(default, 0xa80425fb);
    // CAP_NET_ADMIN is bit 12; dropping CAP_CHOWN (bit 0) takes it away.
    assert_eq!(caps(&["--cap-add", "NET_ADMIN"]), default | 1 << 12);
    assert_eq!(
        caps(&["--cap-add", "net_admin", "--cap-drop", "CHOWN"]),
        (default | 1 << 12) & !1
    );
    // --privileged: every capability the daemon holds (its bounding set, which is this
    // test's: a host may withhold some).
    let bnd = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .expect("CapBnd");
    let bnd = u64::from_str_radix(&bnd, 16).expect("hex");
    assert_eq!(caps(&["--privileged"]), bnd);
    assert_eq!(caps(&["--cap-add", "ALL"]), bnd);
    // exec --privileged: every capability, in a container that has the default set.
    d.ok(&["run", "-d", "--name", "px", "busybox", "sleep", "1000"]);
    let eff = |args: &[&str]| -> u64 {
        let mut a = vec!["exec"];
        a.extend_from_slice(args);
        a.extend(["px", "grep", "CapEff", "/proc/self/status"]);
        let o = d.ok(&a);
        u64::from_str_radix(o.split_whitespace().nth(1).unwrap_or_default(), 16).expect("hex")
    };
    assert_eq!(eff(&[]), default);
    assert_eq!(eff(&["--privileged"]), bnd);
    // inspect -s: the container's size fields (absent without it).
    assert_eq!(d.ok(&["inspect", "-f", "{{.SizeRw}}", "px"]), "<nil>");
    let sizes = d.ok(&["inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "px"]);
    let n: Vec<u64> = sizes
        .split_whitespace()
        .map(|x| x.parse().expect("number"))
        .collect();
    assert!(n.len() == 2 && n[1] > n[0] && n[1] > 1_000_000, "{sizes}");
    d.ok(&["rm", "-f", "px"]);
    // --privileged also gives the host's devices (as Docker: all but console and the
    // directories the container has its own of); without it only the default few.
    use std::os::unix::fs::FileTypeExt;
    let host_devs: Vec<String> = std::fs::read_dir("/dev")
        .expect("/dev")
        .flatten()
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| m.file_type().is_char_device() || m.file_type().is_block_device())
                && e.file_name() != "console"
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let inside = d.ok(&["run", "--rm", "--privileged", "busybox", "ls", "/dev"]);
    let inside: Vec<&str> = inside.split_whitespace().collect();
    for dev in &host_devs {
        assert!(
            inside.contains(&dev.as_str()),
            "--privileged lacks /dev/{dev}: {inside:?}"
        );
    }
    if host_devs.iter().any(|d| d == "loop-control") {
        let plain = d.docker(&["run", "--rm", "busybox", "test", "-e", "/dev/loop-control"]);
        assert!(
            !plain.status.success(),
            "an unprivileged container got /dev/loop-control"
        );
        // and the node works: its cgroup allows it (LOOP_CTL_GET_FREE is an ioctl; reading
        // is refused with EINVAL, not EPERM, by the driver).
        let o = d.docker(&[
            "run",
            "--rm",
            "--privileged",
            "busybox",
            "sh",
            "-c",
            "cat /dev/loop-control 2>&1; test -c /dev/loop-control",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        assert!(!String::from_utf8_lossy(&o.stdout).contains("not permitted"));
    }
    // --stop-timeout: the container's own grace period for a plain `stop`. Its TERM trap
    // needs 5 s, more than the 1 s given and less than the default 10 s: killed means the
    // container's timeout was used.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "st",
        "--stop-timeout",
        "1",
        "busybox",
        "sh",
        "-c",
        "trap 'sleep 5; exit 5' TERM; while :; do sleep 0.1; done",
    ]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Config.StopTimeout}}", "st"]),
        "1"
    );
    d.ok(&["stop", "st"]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "st"
        ]),
        "exited 137"
    );
    d.ok(&["rm", "st"]);
    // --health-timeout: a check that outlives it fails; --health-start-period: failures
    // inside it do not count (the status stays "starting").
    let hc = |name: &str, f: &str| d.ok(&["inspect", "-f", f, name]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 5",
        "--health-timeout",
        "200ms",
        "--health-interval",
        "300ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    assert!(
        eventually(20, || hc("slow", "{{.State.Health.Status}}") == "unhealthy"),
        "{}",
        hc("slow", "{{json .State.Health}}")
    );
    let out = hc("slow", "{{(index .State.Health.Log 0).Output}}");
    assert!(out.contains("Health check exceeded timeout"), "{out}");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "young",
        "--health-cmd",
        "false",
        "--health-start-period",
        "1h",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    assert!(
        eventually(20, || hc("young", "{{len .State.Health.Log}}")
            .parse::<u32>()
            .is_ok_and(|n| n >= 3)),
        "{}",
        hc("young", "{{json .State.Health}}")
    );
    assert_eq!(
        hc(
            "young",
            "{{.State.Health.Status}} {{.State.Health.FailingStreak}}"
        ),
        "starting 0"
    );
    // ps --filter id= (a prefix of the id).
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "young"]);
    assert_eq!(
        d.ok(&[
            "ps",
            "--filter",
            &format!("id={}", &id[..10]),
            "--format",
            "{{.Names}}"
        ]),
        "young"
    );
    d.ok(&["rm", "-f", "slow", "young"]);
}

#[test]
fn namespace_modes_sysctls_groups_and_oom_score() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let link = |p: &str| {
        std::fs::read_link(p)
            .expect("ns link")
            .display()
            .to_string()
    };
    let run = |args: &[&str]| -> String {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        d.ok(&a)
    };
    // A `run` refused before its command runs, the error naming `word`.
    let refused = |args: &[&str], word: &str| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend(["busybox", "true"]);
        let o = d.docker(&a);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(word),
            "{args:?}: {o:?}"
        );
    };
    // host: the host's namespace; the default: one of its own.
    for (flag, ns) in [
        ("--pid", "pid"),
        ("--ipc", "ipc"),
        ("--uts", "uts"),
        ("--cgroupns", "cgroup"),
    ] {
        let path = format!("/proc/self/ns/{ns}");
        let host = link(&path);
        assert_eq!(
            run(&[flag, "host", "busybox", "readlink", &path]),
            host,
            "{flag} host"
        );
        assert_ne!(run(&["busybox", "readlink", &path]), host, "{flag} default");
    }
    // --uts host: the host's name, and the host keeps it.
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(run(&["--uts", "host", "busybox", "hostname"]), name.trim());
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname"),
        name
    );
    // --pid / --ipc container:<name>: the other container's namespaces and processes.
    d.ok(&["run", "-d", "--name", "nsowner", "busybox", "sleep", "1000"]);
    let owner_pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "nsowner"]);
    for ns in ["pid", "ipc"] {
        let want = link(&format!("/proc/{owner_pid}/ns/{ns}"));
        let got = run(&[
            &format!("--{ns}"),
            "container:nsowner",
            "busybox",
            "readlink",
            &format!("/proc/self/ns/{ns}"),
        ]);
        assert_eq!(got, want, "--{ns} container:");
    }
    let ps = run(&["--pid", "container:nsowner", "busybox", "ps", "-o", "args"]);
    assert!(ps.contains("sleep 1000"), "{ps}");
    d.ok(&["rm", "-f", "nsowner"]);
    refused(&["--pid", "container:nosuch"], "nosuch");
    // --sysctl: a namespaced one is set; one that is not is refused, naming it.
    assert_eq!(
        run(&[
            "--sysctl",
            "kernel.shmmax=123456789",
            "busybox",
            "cat",
            "/proc/sys/kernel/shmmax"
        ]),
        "123456789"
    );
    refused(&["--sysctl", "kernel.panic=7"], "kernel.panic");
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/panic")
            .expect("panic")
            .trim(),
        "7"
    );
    // --group-add (a name from the image's /etc/group and a number), and the user's own
    // supplementary groups from /etc/group.
    assert_eq!(
        run(&[
            "--group-add",
            "nogroup",
            "--group-add",
            "1234",
            "busybox",
            "id",
            "-G"
        ]),
        "0 1234 65534"
    );
    let ctx = tempfile::tempdir().expect("context");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo staff:x:50:user,root >> /etc/group\n",
    )
    .expect("Dockerfile");
    let o = d.docker_build(&["-q", "-t", "groups", &ctx.path().display().to_string()]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(run(&["--user", "user", "groups", "id", "-G"]), "1000 50");
    assert_eq!(run(&["groups", "id", "-G"]), "0 50");
    refused(&["--group-add", "nosuchgroup"], "nosuchgroup");
    // exec gets them too.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ga",
        "--group-add",
        "1234",
        "groups",
        "sleep",
        "1000",
    ]);
    assert_eq!(d.ok(&["exec", "ga", "id", "-G"]), "0 50 1234");
    assert_eq!(
        d.ok(&["exec", "-u", "user", "ga", "id", "-G"]),
        "1000 50 1234"
    );
    d.ok(&["rm", "-f", "ga"]);
    // --oom-score-adj
    assert_eq!(
        run(&[
            "--oom-score-adj",
            "500",
            "busybox",
            "cat",
            "/proc/self/oom_score_adj"
        ]),
        "500"
    );
    // What barge does not do is refused at create, not ignored.
    for args in [
        &["--runtime", "kata", "busybox"][..],
        &["--cgroup-parent", "mine", "busybox"][..],
    ] {
        let mut a = vec!["create"];
        a.extend_from_slice(args);
        let o = d.docker(&a);
        assert!(!o.status.success(), "{args:?} was accepted");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("Error response from daemon"), "{args:?}: {e}");
    }
    // (the docker CLI itself refuses a --userns other than host, or a bad --pid/--uts)
    let (code, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"UsernsMode": "private"}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("UsernsMode"), "{body}");
    let (code, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"PidMode": "bogus"}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid PID mode: "), "{body}");
}

#[test]
fn api_fields_masked_paths_domainname_network_disabled_and_refusals() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let create = |body: &str| -> (u16, String) { d.api("POST", "/containers/create", Some(body)) };
    let run_api = |name: &str, body: &str| -> String {
        let (code, out) = d.api(
            "POST",
            &format!("/containers/create?name={name}"),
            Some(body),
        );
        assert_eq!(code, 201, "{out}");
        d.ok(&["start", "-a", name])
    };
    // MaskedPaths / ReadonlyPaths replace the defaults.
    let out = run_api(
        "mp",
        r#"{"Image": "busybox", "Cmd": ["sh", "-c", "wc -c < /proc/timer_list; wc -c < /etc/passwd"],
            "HostConfig": {"MaskedPaths": ["/etc/passwd"], "ReadonlyPaths": []}}"#,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.last().map(|l| l.trim()),
        Some("0"),
        "/etc/passwd masked: {out}"
    );
    assert_ne!(
        lines.first().map(|l| l.trim()),
        Some("0"),
        "/proc/kcore no longer masked: {out}"
    );
    // Domainname
    let out = run_api(
        "dn",
        r#"{"Image": "busybox", "Domainname": "example.test", "Cmd": ["cat", "/proc/sys/kernel/domainname"]}"#,
    );
    assert_eq!(out.trim(), "example.test");
    // NetworkDisabled: only lo.
    let out = run_api(
        "nd",
        r#"{"Image": "busybox", "NetworkDisabled": true, "Cmd": ["ls", "/sys/class/net"]}"#,
    );
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"], "{out}");
    // A chosen MAC address (an endpoint's MacAddress, API 1.44+) is the interface's.
    let out = run_api(
        "mac",
        r#"{"Image": "busybox", "Cmd": ["cat", "/sys/class/net/eth0/address"],
            "NetworkingConfig": {"EndpointsConfig": {"bridge": {"MacAddress": "02:42:ac:11:00:99"}}}}"#,
    );
    assert_eq!(out.trim(), "02:42:ac:11:00:99");
    // What barge does not have is a 400 naming it, and nothing is created.
    let before = d.ok(&["ps", "-aq"]);
    for (body, word) in [
        (
            r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"DeviceRequests": [{"Count": -1, "Capabilities": [["gpu"]]}]}}"#,
            "DeviceRequests",
        ),
        (
            r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"StorageOpt": {"size": "1G"}}}"#,
            "StorageOpt",
        ),
        (
            r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"VolumeDriver": "nfs-plugin", "Binds": ["vd:/v"]}}"#,
            "VolumeDriver",
        ),
        (
            r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Mounts": [{"Type": "volume", "Source": "v", "Target": "/v", "VolumeOptions": {"Subpath": "a/../../x"}}]}}"#,
            "subpath must not escape the volume",
        ),
        (
            r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/t", "ReadOnly": true, "BindOptions": {"NonRecursive": true, "ReadOnlyForceRecursive": true}}]}}"#,
            "NonRecursive and ReadOnlyForceRecursive",
        ),
        (
            r#"{"Image": "busybox", "Cmd": ["true"], "NetworkingConfig": {"EndpointsConfig": {"bridge": {"MacAddress": "03:42:ac:11:00:99"}}}}"#,
            "invalid MAC address 03:42:ac:11:00:99: a multicast address",
        ),
    ] {
        let (code, out) = create(body);
        assert_eq!(code, 400, "{word}: {out}");
        assert!(out.contains(word), "{word}: {out}");
    }
    assert_eq!(d.ok(&["ps", "-aq"]), before);
    // BindOptions.CreateMountpoint makes a missing bind source.
    let src = d.dir.path().join("made-by-bind");
    let body = format!(
        r#"{{"Image": "busybox", "Cmd": ["true"], "HostConfig": {{"Mounts": [{{"Type": "bind", "Source": "{}", "Target": "/m", "BindOptions": {{"CreateMountpoint": true}}}}]}}}}"#,
        src.display()
    );
    let (code, out) = create(&body);
    assert_eq!(code, 201, "{out}");
    assert!(src.is_dir());
}

#[test]
fn ps_filters_publish_expose_volume_network_before_since() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let names = |filters: &[&str]| -> Vec<String> {
        let mut a = vec!["ps", "-a", "--format", "{{.Names}}"];
        for f in filters {
            a.extend(["--filter", f]);
        }
        let mut v: Vec<String> = d.ok(&a).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    d.ok(&["network", "create", "fnet"]);
    d.ok(&[
        "create", "--name", "f1", "-p", "18081:80", "--expose", "9000/udp", "busybox", "true",
    ]);
    d.ok(&[
        "create",
        "--name",
        "f2",
        "-v",
        "fvol:/data",
        "--network",
        "fnet",
        "busybox",
        "true",
    ]);
    d.ok(&["create", "--name", "f3", "busybox", "true"]);
    assert_eq!(names(&["publish=80"]), ["f1"]);
    assert_eq!(names(&["publish=79-81/tcp"]), ["f1"]);
    assert_eq!(names(&["publish=80/udp"]), Vec::<String>::new());
    assert_eq!(names(&["expose=9000/udp"]), ["f1"]);
    assert_eq!(names(&["volume=fvol"]), ["f2"]);
    assert_eq!(names(&["volume=/data"]), ["f2"]);
    assert_eq!(names(&["network=fnet"]), ["f2"]);
    assert_eq!(names(&["before=f2"]), ["f1"]);
    assert_eq!(names(&["since=f2"]), ["f3"]);
    assert_eq!(names(&["since=f1", "before=f3"]), ["f2"]);
    // ps shows a container's mounts (docker's Mounts column: the volume's name).
    assert_eq!(
        d.ok(&["ps", "-a", "--filter", "name=f2", "--format", "{{.Mounts}}"]),
        "fvol"
    );
    // ps -s: the container's own bytes and, with its image, the virtual size.
    d.ok(&[
        "run",
        "--name",
        "big",
        "busybox",
        "sh",
        "-c",
        "head -c 5000 /dev/zero > /f",
    ]);
    let size = d.ok(&[
        "ps",
        "-a",
        "-s",
        "--filter",
        "name=big",
        "--format",
        "{{.Size}}",
    ]);
    assert!(size.starts_with("5kB (virtual "), "{size}");
    d.ok(&["rm", "big"]);
    // An unknown filter is an error, not ignored.
    let (code, body) = d.api(
        "GET",
        "/containers/json?filters=%7B%22nosuch%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid filter 'nosuch'"), "{body}");
    d.ok(&["rm", "f1", "f2", "f3"]);
    d.ok(&["network", "rm", "fnet"]);
}

#[test]
fn image_list_filters_and_labels() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let ctx = tempfile::tempdir().expect("context");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nLABEL tier=web\nRUN echo a > /a\n",
    )
    .expect("Dockerfile");
    let ctx_s = ctx.path().display().to_string();
    // Image times are whole seconds: a later second than busybox's, for since/before.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = d.docker_build(&["-q", "-t", "lbl/web:1", &ctx_s]);
    assert!(o.status.success(), "{o:?}");
    d.ok(&["tag", "lbl/web:1", "lbl/web:2"]);
    let images = |filters: &[&str]| -> Vec<String> {
        let mut a = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        for f in filters {
            a.extend(["--filter", f]);
        }
        let mut v: Vec<String> = d.ok(&a).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(images(&["reference=lbl/*"]), ["lbl/web:1", "lbl/web:2"]);
    assert_eq!(images(&["reference=lbl/web:2"]), ["lbl/web:2"]);
    assert_eq!(images(&["reference=busy*"]), ["busybox:latest"]);
    assert_eq!(images(&["label=tier=web"]), ["lbl/web:1", "lbl/web:2"]);
    assert_eq!(images(&["label=tier=db"]), Vec::<String>::new());
    assert_eq!(images(&["dangling=true"]), Vec::<String>::new());
    assert_eq!(images(&["since=busybox"]), ["lbl/web:1", "lbl/web:2"]);
    assert_eq!(images(&["before=lbl/web:1"]), ["busybox:latest"]);
    // `docker images REPO` is a reference filter.
    assert_eq!(
        d.ok(&["images", "--format", "{{.Tag}}", "busybox"]),
        "latest"
    );
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Config.Labels.tier}}",
            "lbl/web:1"
        ]),
        "web"
    );
    let (code, body) = d.api("GET", "/images/json", None);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let web = v
        .as_array()
        .expect("list")
        .iter()
        .find(|i| i["RepoTags"].to_string().contains("lbl/web:1"))
        .expect("lbl/web in the list");
    assert_eq!(web["Labels"]["tier"], "web");
    let (code, body) = d.api(
        "GET",
        "/images/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(code, 400, "{body}");
}

#[test]
fn log_driver_none_keeps_nothing_but_attach_works() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    assert_eq!(
        d.ok(&[
            "run",
            "--name",
            "quiet",
            "--log-driver",
            "none",
            "busybox",
            "echo",
            "hi"
        ]),
        "hi"
    );
    let o = d.docker(&["logs", "quiet"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("configured logging driver does not support reading"),
        "{e}"
    );
    let log = d.ok(&["inspect", "-f", "{{.LogPath}}", "quiet"]);
    assert!(!std::path::Path::new(&log).exists(), "{log} was written");
    // (the docker CLI refuses options for `none` itself; the API does too)
    let (code, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"LogConfig": {"Type": "none", "Config": {"max-size": "1k"}}}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown log opt 'max-size'"), "{body}");
    d.ok(&["rm", "quiet"]);
}
