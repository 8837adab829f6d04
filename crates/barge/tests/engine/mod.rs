//! Test helpers for the engine: a `barge daemon` per test on its own temp data root, exec
//! root and socket, inside a network namespace of its own (created here and deleted at the
//! end, so the daemon's bridges and nftables table never touch the host's), stopped by PID
//! at the end (and on failure); the docker CLI against it;
//! a raw HTTP client for status-code checks; a busybox image imported through the API.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `skip()`: true (after printing why) when the test must skip: not root.
#[allow(unused_imports)] // not every test binary that includes this module skips
pub use barge_testsupport::skip_unless_root as skip;

/// A busybox rootfs tarball, made once (kept in the temp dir and reused by later runs; made
/// in a temp dir of its own and renamed into place, so parallel runs never see half a file).
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let tar = std::env::temp_dir().join("barge-engine-busybox.tar");
        if tar.exists() {
            return tar;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("rootfs");
        barge_testsupport::busybox::rootfs(&root);
        let tmp = dir.path().join("busybox.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tmp)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success());
        std::fs::copy(
            &tmp,
            tar.with_extension(format!("tmp{}", std::process::id())),
        )
        .expect("copy");
        std::fs::rename(
            tar.with_extension(format!("tmp{}", std::process::id())),
            &tar,
        )
        .expect("rename");
        tar
    })
}

/// A running daemon.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    child: Option<Child>,
    /// Extra environment of the daemon process.
    pub env: Vec<(String, String)>,
    /// Extra arguments of `barge daemon` (see [`Daemon::restart_with`]).
    pub args: Vec<String>,
    netns: String,
    /// Run in the host's network namespace with networking off (`--bridge none`), for tests
    /// whose peers (a registry on 127.0.0.1) live there.
    host_net: bool,
}

impl Daemon {
    /// Starts a daemon on fresh roots and imports busybox as `busybox:latest`.
    pub fn start() -> Daemon {
        Daemon::start_with_env(&[])
    }

    /// A daemon in the host's network namespace with networking off (`--bridge none`), so
    /// it reaches services the test runs on the host's 127.0.0.1 (a registry). It changes
    /// no link or nft rule of the host.
    pub fn start_host_net() -> Daemon {
        Daemon::start_with_env_net(&[], true)
    }

    /// [`Daemon::start`] with extra environment variables for the daemon.
    pub fn start_with_env(env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with_env_net(env, false)
    }

    fn start_with_env_net(env: &[(&str, &str)], host_net: bool) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("bge")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let sock = dir.path().join("d.sock");
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let netns = format!(
            "barge-eng-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let st = Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .expect("ip netns add");
        assert!(st.success(), "ip netns add {netns} failed");
        let mut d = Daemon {
            dir,
            sock,
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: Vec::new(),
            netns,
            host_net,
        };
        d.sh("ip link set lo up");
        d.spawn();
        let out = d.docker_in(
            &["import", "-", "busybox:latest"],
            Some(&std::fs::read(busybox_tar()).expect("read tar")),
        );
        assert!(
            out.status.success(),
            "import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        d
    }

    /// (Re)starts the daemon process on the same roots.
    pub fn spawn(&mut self) {
        let p = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.join("daemon.log"))
            .expect("log");
        let mut cmd = if self.host_net {
            let mut c = Command::new(env!("CARGO_BIN_EXE_barge"));
            c.args(["daemon", "--bridge", "none"]);
            c
        } else {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{}", self.netns))
                .arg(env!("CARGO_BIN_EXE_barge"))
                .arg("daemon");
            c
        };
        let child = cmd
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .arg("--data-root")
            .arg(p.join("data"))
            .arg("--exec-root")
            .arg(p.join("exec"))
            .arg("--config-file")
            .arg(p.join("daemon.json"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        self.child = Some(child);
        let t = Instant::now();
        while UnixStream::connect(&self.sock).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "daemon did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The network namespace the daemon runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Runs `sh -c script` inside the daemon's network namespace; returns the output.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns, "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec")
    }

    /// `sh -c script` in the daemon's namespace (the "host side" of its networks): stdout.
    pub fn host(&self, script: &str) -> String {
        text(&self.sh(script).stdout)
    }

    /// An HTTP GET of `url` from the daemon's namespace (busybox wget, 5 s at most): the body,
    /// or wget's error text.
    pub fn wget(&self, url: &str) -> String {
        self.host(&format!("timeout 5 busybox wget -qO- {url} 2>&1"))
    }

    /// `docker inspect what`: the one object of its JSON array.
    pub fn inspect(&self, what: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", what]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("inspect JSON");
        v[0].clone()
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the daemon (SIGTERM) and starts it again on the same roots with `args` added.
    pub fn restart_with(&mut self, args: &[&str]) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: SIGTERM to the daemon we started, by its pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.spawn();
    }

    /// Kills the daemon with SIGKILL (containers keep running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A docker CLI command aimed at this daemon.
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .args(args);
        c
    }

    fn docker_in(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        output_of(self.docker_cmd(args), stdin)
    }

    /// `DOCKER_BUILDKIT=0 docker build <args>` (the classic builder, which barge serves)
    /// against this daemon, stdin closed.
    pub fn docker_build(&self, args: &[&str]) -> Output {
        self.docker_build_with(args, None)
    }

    /// [`Daemon::docker_build`] with `stdin` (a context or Dockerfile on `-`), or none.
    pub fn docker_build_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = self.docker_cmd(&[&["build"], args].concat());
        c.env("DOCKER_BUILDKIT", "0");
        output_of(c, stdin)
    }

    /// The ID (`sha256:...`) of the image `name`, asserting it exists.
    pub fn image_id(&self, name: &str) -> String {
        self.ok(&["image", "inspect", "-f", "{{.Id}}", name])
    }

    /// A `barge` (the CLI) command aimed at this daemon, with the same client config dir as
    /// the docker CLI.
    pub fn barge_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_barge"));
        c.env("BARGE_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .args(args);
        c
    }

    /// Runs the barge CLI with `stdin` (or none); returns the output.
    pub fn barge(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        output_of(self.barge_cmd(args), stdin)
    }

    /// Runs the barge CLI, asserts success, returns its stdout.
    pub fn barge_ok(&self, args: &[&str]) -> String {
        let o = self.barge(args, None);
        assert!(
            o.status.success(),
            "barge {args:?} failed: {}{}\n{}",
            text(&o.stdout),
            text(&o.stderr),
            self.log()
        );
        text(&o.stdout)
    }

    /// Runs docker; returns the output.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_in(args, None)
    }

    /// Runs docker with stdin.
    pub fn docker_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        self.docker_in(args, Some(stdin))
    }

    /// Runs docker, asserts success, returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed ({:?}): {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// A raw API request; returns (status, body).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let (code, _, body) =
            self.api_raw(method, path, Some("application/json"), body.unwrap_or(""));
        (code, body)
    }

    /// A raw API request with a chosen Content-Type (None: no header); returns the status,
    /// the response head and the body.
    pub fn api_raw(
        &self,
        method: &str,
        path: &str,
        ctype: Option<&str>,
        body: &str,
    ) -> (u16, String, String) {
        let mut s = UnixStream::connect(&self.sock).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let ct = ctype
            .map(|c| format!("Content-Type: {c}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: barge\r\n{ct}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (code, head.to_string(), body.to_string())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        if let Some(mut c) = self.child.take() {
            // SAFETY: SIGTERM to the daemon we started, by its pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
        // Mounts the daemon left in our namespace (none expected) go lazily, then the netns.
        if let Ok(m) = std::fs::read_to_string("/proc/self/mounts") {
            let root = self.dir.path().to_string_lossy().into_owned();
            let mut points: Vec<&str> = m
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter(|p| p.starts_with(&root))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = Command::new("umount").args(["-l", p]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.netns])
            .status();
    }
}

/// Polls `f` until it returns true or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Writes `files` (path relative to `dir`, content) below `dir`, making parent directories:
/// a build context in one call.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, c).expect("write");
    }
}

/// The column titles of a CLI table: its first line, split where two or more spaces part
/// the columns (titles such as `CREATED BY` hold single spaces).
pub fn table_header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A process's output as text (lossy UTF-8).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `c` with `stdin` (or none) and its stdout and stderr captured; returns its output.
pub fn output_of(mut c: Command, stdin: Option<&[u8]>) -> Output {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut ch = c.spawn().expect("spawn");
    if let Some(data) = stdin {
        let mut w = ch.stdin.take().expect("stdin");
        w.write_all(data).expect("write stdin");
    }
    ch.wait_with_output().expect("output")
}
