//! Harness for the CLI end-to-end tests: a daemon on a private socket and data root
//! (`BARGE_TEST_DAEMON=barge` (default) or `dockerd`), run in a private mount namespace and a
//! fresh network namespace that the harness creates and deletes; a busybox image imported
//! from tests/fixtures/busybox-rootfs.sh; helpers to run the built `barge` against it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// True (after printing why) when the test must skip: not root.
#[allow(unused_imports)] // not every test binary that includes this module skips
pub use barge_testsupport::skip_unless_root;

/// The built CLI.
pub fn barge_bin() -> &'static str {
    env!("CARGO_BIN_EXE_barge")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// API areas that barge's own daemon does not serve yet because another helper branch is
/// still wiring them in: (area, branch and what it brings). Tests call [`Daemon::requires`],
/// which skips (loudly) the parts needing these areas against the barge daemon only; dockerd
/// runs everything. Remove an entry when its branch is merged.
pub const BARGE_PENDING: &[(&str, &str)] = &[];

/// A daemon under test.
pub struct Daemon {
    /// Temp dir holding socket, roots, logs.
    pub dir: tempfile::TempDir,
    /// The API socket.
    pub sock: PathBuf,
    /// `dockerd` or `barge`.
    pub kind: String,
    pid: i32,
    netns: String,
}

fn ping(sock: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: t\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).contains(" 200"),
        Err(_) => false,
    }
}

impl Daemon {
    /// Starts the daemon chosen by `BARGE_TEST_DAEMON` and imports `busybox:latest`.
    pub fn start() -> Daemon {
        static N: AtomicU32 = AtomicU32::new(0);
        let kind = std::env::var("BARGE_TEST_DAEMON").unwrap_or_else(|_| "barge".into());
        let dir = tempfile::Builder::new()
            .prefix("barge-cli-e2e-")
            .tempdir()
            .expect("tempdir");
        let sock = dir.path().join("api.sock");
        let netns = format!(
            "barge-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let st = Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .expect("ip netns add");
        assert!(st.success(), "ip netns add {netns} failed");
        let _ = Command::new("ip")
            .args(["netns", "exec", &netns, "ip", "link", "set", "lo", "up"])
            .status();
        let data = dir.path().join("data");
        let exec = dir.path().join("exec");
        let log = std::fs::File::create(dir.path().join("daemon.log")).expect("log");
        let log2 = log.try_clone().expect("log");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "nsenter"])
            .arg(format!("--net=/run/netns/{netns}"));
        let host = format!("unix://{}", sock.display());
        match kind.as_str() {
            "dockerd" => {
                cmd.args([
                    "/usr/sbin/dockerd",
                    "--bridge=none",
                    "--iptables=false",
                    "--ip6tables=false",
                    "-H",
                    &host,
                ])
                .arg("--data-root")
                .arg(&data)
                .arg("--exec-root")
                .arg(&exec)
                .arg("--pidfile")
                .arg(dir.path().join("daemon.pid"));
            }
            "barge" => {
                cmd.arg(barge_bin())
                    .args(["daemon", "--host", &host])
                    .arg("--data-root")
                    .arg(&data)
                    .arg("--exec-root")
                    .arg(&exec)
                    .arg("--pidfile")
                    .arg(dir.path().join("daemon.pid"));
            }
            other => panic!("BARGE_TEST_DAEMON={other}: expected barge or dockerd"),
        }
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = Command::new("ip")
                    .args(["netns", "delete", &netns])
                    .status();
                panic!("spawning the {kind} daemon: {e}");
            }
        };
        let d = Daemon {
            dir,
            sock,
            kind,
            pid: child.id() as i32,
            netns,
        };
        // Reap it in the background so it never lingers as a zombie.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        let start = Instant::now();
        while !ping(&d.sock) {
            if start.elapsed() > Duration::from_secs(60) || !d.alive() {
                let log =
                    std::fs::read_to_string(d.dir.path().join("daemon.log")).unwrap_or_default();
                panic!("the {} daemon did not answer _ping:\n{log}", d.kind);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        d.import_busybox();
        d
    }

    /// True when this daemon serves every API area in `areas`; otherwise prints which areas
    /// are pending on which branch (see [`BARGE_PENDING`]) and what `what` therefore skips.
    pub fn requires(&self, areas: &[&str], what: &str) -> bool {
        if self.kind != "barge" {
            return true;
        }
        let pending: Vec<String> = BARGE_PENDING
            .iter()
            .filter(|(a, _)| areas.contains(a))
            .map(|(a, why)| format!("{a} ({why})"))
            .collect();
        if pending.is_empty() {
            return true;
        }
        // Straight to fd 2 (not eprintln!), so the skip shows even when the test passes and
        // its output is captured.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED against the barge daemon: {what}: pending {}",
            pending.join(", ")
        );
        false
    }

    /// The network namespace the daemon runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    fn alive(&self) -> bool {
        // SAFETY: signal 0 only checks for existence.
        unsafe { libc::kill(self.pid, 0) == 0 }
    }

    fn import_busybox(&self) {
        let rootfs = self.dir.path().join("rootfs");
        let st = Command::new("sh")
            .arg(repo_root().join("tests/fixtures/busybox-rootfs.sh"))
            .arg(&rootfs)
            .status()
            .expect("busybox-rootfs.sh");
        assert!(st.success(), "busybox-rootfs.sh failed");
        let tar = self.dir.path().join("busybox.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success());
        let o = self.ok(&["import", tar.to_str().unwrap_or_default(), "busybox:latest"]);
        assert!(o.starts_with("sha256:"), "import printed {o:?}");
    }

    /// A `barge` command pointed at this daemon.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(barge_bin());
        c.env("BARGE_HOST", format!("unix://{}", self.sock.display()))
            .env("HOME", self.dir.path())
            .args(args);
        c
    }

    /// Runs `barge args` (stdin null) and returns the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run barge")
    }

    /// Runs with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut c = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn barge");
        let mut si = c.stdin.take().expect("stdin");
        si.write_all(input).expect("write stdin");
        drop(si);
        c.wait_with_output().expect("wait barge")
    }

    /// Runs and asserts success; returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "barge {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    }

    /// Polls `f` until true or `secs` pass.
    pub fn eventually(&self, secs: u64, mut f: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failed test shows what the daemon said (CI keeps only the test's output).
            let log =
                std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- daemon.log (last {} lines) ---", tail.len());
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
        // Remove every container first so no shim or monitor outlives the daemon.
        let ids = self.run(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.run(&["rm", "-f", id]);
        }
        // SAFETY: plain signals to the daemon we started (its pid, never a name).
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
        let start = Instant::now();
        while self.alive() && start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.alive() {
            // SAFETY: as above.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // The daemon's mounts lived in its private mount namespace, gone with it; a
        // leftover one in ours (none expected) is detached lazily.
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

/// Runs `argv` on a pseudo-terminal of `rows`x`cols` through python3's pty module, sending
/// `steps` (a list of (wait-for, send) pairs; a send of `\0resize:ROWSxCOLS` resizes the
/// terminal instead, which sends SIGWINCH; a wait-for that starts with `\u{1}` re-sends the
/// previous step's input every 2 s until its text appears, for effects that take an unknown time
/// such as a resize or an attach); returns (output, exit code).
pub fn pty_session(
    env: &[(&str, String)],
    argv: &[&str],
    rows: u16,
    cols: u16,
    steps: &[(&str, &[u8])],
) -> (String, i32) {
    let prog = r#"
import os, pty, sys, time, select, json, fcntl, termios, struct
cfg = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", cfg["rows"], cfg["cols"], 0, 0))
    os.execvp(cfg["argv"][0], cfg["argv"])
out = b""
def read_until(tok, t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return False
            if not d:
                return False
            out += d
            if tok and tok.encode() in out:
                return True
    return False
prev = b""
for wait, send in cfg["steps"]:
    if wait.startswith("\x01"):
        tok, seen = wait[1:], False
        for _ in range(10):
            if read_until(tok, 2):
                seen = True
                break
            os.write(fd, prev)
        if not seen:
            break
    elif wait and not read_until(wait, 20):
        break
    data = bytes(send)
    prev = data
    if data.startswith(b"\0resize:"):
        r, c = data[8:].decode().split("x")
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(r), int(c), 0, 0))
        time.sleep(0.5)
        continue
    os.write(fd, data)
read_until("", 3)
# A session whose steps went wrong must fail, not hang: the client gets 30 s to exit.
end = time.time() + 30
while True:
    p, st = os.waitpid(pid, os.WNOHANG)
    if p:
        break
    if time.time() > end:
        os.kill(pid, 9)
        _, st = os.waitpid(pid, 0)
        out += b"\n[pty helper: the client did not exit; killed]"
        break
    read_until("", 0.2)
sys.stdout.write(json.dumps({"out": out.decode("utf-8", "replace"), "code": os.waitstatus_to_exitcode(st)}))
"#;
    let cfg = serde_json::json!({
        "argv": argv,
        "rows": rows,
        "cols": cols,
        "steps": steps.iter().map(|(w, s)| serde_json::json!([w, s.to_vec()])).collect::<Vec<_>>(),
    });
    let mut c = Command::new("python3");
    c.arg("-c").arg(prog).arg(cfg.to_string());
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("python3");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!(
            "pty helper failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (
        v["out"].as_str().unwrap_or_default().to_string(),
        v["code"].as_i64().unwrap_or(-1) as i32,
    )
}
