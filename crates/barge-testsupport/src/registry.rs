//! Debian's `docker-registry` on 127.0.0.1, for pull/push/login tests: a config in a temp dir,
//! optional htpasswd or any other `auth:` section, stopped by PID on drop. It runs either in
//! the test's own network namespace on a free port, or inside a namespace a test created (for
//! a daemon that runs there) on a port the test names.

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `docker-registry` process on 127.0.0.1:<free port>; stopped (by its PID) on drop.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry, with htpasswd auth for `(user, password)` when given.
    pub fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        Registry::start_with(htpasswd, "")
    }

    /// Starts a registry with `auth_yaml` (an `auth:` section of its config) unless
    /// `htpasswd` is given. The free port is picked before the registry binds it: if another
    /// process takes it first and the registry exits, it is tried again on another port.
    pub fn start_with(htpasswd: Option<(&str, &str)>, auth_yaml: &str) -> Registry {
        Registry::start_at(htpasswd, auth_yaml, None)
    }

    /// Starts a registry with htpasswd auth for `(user, password)` on 127.0.0.1:`port` inside
    /// the network namespace `netns` (a name under /run/netns), for a daemon that runs there
    /// and reaches it as `localhost:<port>`.
    pub fn start_in_netns(netns: &str, port: u16, htpasswd: (&str, &str)) -> Registry {
        Registry::start_at(Some(htpasswd), "", Some((netns, port)))
    }

    fn start_at(
        htpasswd: Option<(&str, &str)>,
        auth_yaml: &str,
        netns_port: Option<(&str, u16)>,
    ) -> Registry {
        for _ in 0..2 {
            if let Some(r) = Registry::try_start(htpasswd, auth_yaml, netns_port) {
                return r;
            }
        }
        Registry::try_start(htpasswd, auth_yaml, netns_port)
            .expect("docker-registry exited at start")
    }

    fn try_start(
        htpasswd: Option<(&str, &str)>,
        auth_yaml: &str,
        netns_port: Option<(&str, u16)>,
    ) -> Option<Registry> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (netns, port) = match netns_port {
            Some((ns, port)) => (Some(ns.to_string()), port),
            None => (
                None,
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("free port")
                    .port(),
            ),
        };
        let mut auth = auth_yaml.to_string();
        if let Some((user, pass)) = htpasswd {
            let out = Command::new("/usr/bin/python3")
                .args([
                    "-c",
                    "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(rounds=5)).decode())",
                    pass,
                ])
                .output()
                .expect("python3 bcrypt");
            assert!(
                out.status.success(),
                "bcrypt: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let hash = String::from_utf8(out.stdout).expect("utf8");
            let hp = dir.path().join("htpasswd");
            std::fs::write(&hp, format!("{user}:{}\n", hash.trim())).expect("htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: barge-test\n    path: {}\n",
                hp.display()
            );
        }
        // No blob descriptor cache: a deleted blob is gone at once, as the tests expect.
        let cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: \"\"\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: barge-test-secret\n{auth}",
            dir.path().join("data").display()
        );
        let cp = dir.path().join("config.yml");
        std::fs::write(&cp, cfg).expect("config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        // `ip netns exec` enters the namespace and then execs the registry, so the child's
        // PID is the registry's own and drop stops the right process.
        let mut cmd = match &netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/bin/docker-registry"]);
                c
            }
            None => Command::new("/usr/bin/docker-registry"),
        };
        let child = cmd
            .arg("serve")
            .arg(&cp)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut reg = Registry { child, port, dir };
        let t0 = Instant::now();
        while !listens(netns.as_deref(), port) {
            if let Ok(Some(st)) = reg.child.try_wait() {
                eprintln!("docker-registry exited ({st}): {}", reg.log());
                return None;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "docker-registry did not listen on {port}: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(reg)
    }

    /// `127.0.0.1:<port>`, the registry part of references to it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The directory the registry stores repositories and blobs in.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file the registry serves for the blob `sha256:<hex>`.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        let prefix = hex.get(..2).unwrap_or(hex);
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(prefix)
            .join(hex)
            .join("data")
    }

    /// What the registry has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The directory holding its config, log and storage.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Whether something accepts connections on 127.0.0.1:`port`, in `netns` when given. The
/// probe runs on a thread of its own that joins the namespace, so the test's threads stay in
/// theirs.
fn listens(netns: Option<&str>, port: u16) -> bool {
    let Some(ns) = netns else {
        return TcpStream::connect(("127.0.0.1", port)).is_ok();
    };
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a namespace file we opened; it changes this thread only.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .join()
        .expect("probe thread")
    })
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Child::kill signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
