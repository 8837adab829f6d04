//! Test helpers: a barge-runc symlink to the built binary with a per-test --root, and busybox
//! bundles made by tests/fixtures/busybox-rootfs.sh + `barge-runc spec`, edited as JSON.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};

/// True (after printing why) when the test must skip: not root.
#[allow(unused_imports)] // not every test binary that includes this module skips
pub use barge_testsupport::skip_unless_root;

/// A unique id for a container (cgroups are host-global, ids must not collide).
pub fn unique_id(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "bt-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The runtime under test.
pub struct Runc {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub root: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Runc {
    pub fn new() -> Runc {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("barge-runc");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_barge"), &bin).expect("symlink");
        let root = dir.path().join("root");
        Runc {
            dir,
            bin,
            root,
            ids: Default::default(),
        }
    }

    /// A command with --root set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Runs and captures (stdin null).
    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run barge-runc")
    }

    /// Runs, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "barge-runc {args:?} failed: {}\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Remembers `id` for cleanup.
    pub fn track(&self, id: &str) {
        self.ids.borrow_mut().push(id.to_string());
    }

    /// The container's status from `state`.
    pub fn status(&self, id: &str) -> String {
        let s: Value = serde_json::from_str(&self.ok(&["state", id])).expect("state JSON");
        s["status"].as_str().unwrap_or_default().to_string()
    }

    /// The init's pid from `state`.
    pub fn pid(&self, id: &str) -> i32 {
        let s: Value = serde_json::from_str(&self.ok(&["state", id])).expect("state JSON");
        s["pid"].as_i64().unwrap_or_default() as i32
    }

    /// Creates a container from `b` (bundle).
    pub fn create(&self, id: &str, b: &Bundle) {
        self.create_args(id, &["--bundle", b.path().to_str().unwrap()]);
    }

    /// `create ARGS... ID`. The container's init inherits create's stdio, so stdout is not
    /// captured (a pipe would stay open as long as the container) and stderr goes to a file.
    pub fn create_args(&self, id: &str, args: &[&str]) {
        self.track(id);
        let err = self.dir.path().join(format!("{id}.stderr"));
        let f = std::fs::File::create(&err).unwrap();
        let mut a = vec!["create"];
        a.extend_from_slice(args);
        a.push(id);
        let st = self
            .cmd(&a)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .status()
            .expect("run barge-runc");
        assert!(
            st.success(),
            "create {args:?} {id}: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    }

    /// Runs `b` to completion: (exit code, stdout, stderr).
    pub fn run(&self, id: &str, b: &Bundle) -> (i32, String, String) {
        self.track(id);
        let o = self.out(&["run", "--bundle", b.path().to_str().unwrap(), id]);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Runs `b` with `args` and returns stdout, asserting exit 0.
    pub fn run_ok(&self, b: &mut Bundle, args: &[&str]) -> String {
        b.args(args);
        let id = unique_id("run");
        let (code, out, err) = self.run(&id, b);
        assert_eq!(code, 0, "run {args:?}: stdout {out} stderr {err}");
        out
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self
                .cmd(&["delete", "--force", id])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// An OCI bundle: a busybox rootfs and a config.json from `barge-runc spec`.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub spec: Value,
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

impl Bundle {
    /// A busybox bundle running `args`, terminal off, writable root.
    pub fn new(runc: &Runc) -> Bundle {
        let dir = tempfile::tempdir().expect("tempdir");
        barge_testsupport::busybox::rootfs(&dir.path().join("rootfs"));
        let o = runc.out(&["spec", "--bundle", dir.path().to_str().unwrap()]);
        assert!(
            o.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let spec: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        let mut b = Bundle { dir, spec };
        b.spec["process"]["terminal"] = json!(false);
        b.spec["root"]["readonly"] = json!(false);
        b.save();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Writes config.json.
    pub fn save(&self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.spec).unwrap(),
        )
        .unwrap();
    }

    /// Sets process.args and saves.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.spec["process"]["args"] = json!(args);
        self.save();
        self
    }

    /// Edits the spec with `f` and saves.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.spec);
        self.save();
        self
    }

    /// Runs the container in a new user namespace mapping its IDs 0-65535 to the host's
    /// from `host_id`, and drops the spec's cgroup mount, which the tests using a user
    /// namespace do not mount; saves.
    pub fn user_ns(&mut self, host_id: u32) -> &mut Self {
        self.edit(|s| {
            s["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": host_id, "size": 65536}]);
            s["linux"]["uidMappings"] = map.clone();
            s["linux"]["gidMappings"] = map;
            s["mounts"] = json!(s["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["type"] != "cgroup")
                .cloned()
                .collect::<Vec<_>>());
        })
    }
}

/// A status line of /proc/self/status (e.g. "CapInh") from text.
pub fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}

/// Whether any cgroup dir named `id` exists under /sys/fs/cgroup.
pub fn cgroup_exists(id: &str) -> bool {
    fn walk(p: &Path, id: &str, depth: u32) -> bool {
        if depth > 4 {
            return false;
        }
        let Ok(rd) = std::fs::read_dir(p) else {
            return false;
        };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if e.file_name().to_string_lossy().contains(id) {
                    return true;
                }
                if walk(&e.path(), id, depth + 1) {
                    return true;
                }
            }
        }
        false
    }
    walk(Path::new("/sys/fs/cgroup"), id, 0)
}

/// A git repository served by `git-daemon` on loopback (killed by pid on drop): a work
/// tree under `<dir>/work` pushed to the bare `<dir>/srv/repo.git`, which clients fetch
/// as `git://127.0.0.1:<port>/repo.git`.
pub struct GitServer {
    /// The daemon's port.
    pub port: u16,
    work: PathBuf,
    child: std::process::Child,
}

/// Runs git in `dir` with a fixed identity; panics with git's stderr on failure.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=barge-test",
            "-c",
            "user.email=t@barge.invalid",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

impl GitServer {
    /// A repository with `files` committed on branch `main`, served from `dir`.
    pub fn start(dir: &Path, files: &[(&str, &str)]) -> GitServer {
        let work = dir.join("work");
        let srv = dir.join("srv");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&srv).unwrap();
        git_in(&work, &["init", "-q", "-b", "main"]);
        git_in(&srv, &["init", "-q", "--bare", "-b", "main", "repo.git"]);
        let s = GitServer {
            port: 0,
            work,
            child: Command::new("true").spawn().unwrap(),
        };
        s.commit(files, "first");
        // A free port: bound, noted, released for the daemon.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
        // git-daemon itself, not the `git daemon` wrapper: the wrapper's child would
        // outlive a kill of the wrapper's pid.
        let exec_path = git_in(&srv, &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .arg("--verbose")
            .arg("--reuseaddr")
            .arg(format!("--base-path={}", srv.display()))
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(&srv)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("git daemon");
        let mut s = s;
        let mut old = std::mem::replace(&mut s.child, child);
        let _ = old.wait();
        s.port = port;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("git daemon did not listen on port {port}");
    }

    /// Writes `files` in the work tree, commits them and pushes `main` (and tags);
    /// returns the new commit id.
    pub fn commit(&self, files: &[(&str, &str)], msg: &str) -> String {
        for (p, c) in files {
            let f = self.work.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, c).unwrap();
        }
        git_in(&self.work, &["add", "-A"]);
        git_in(&self.work, &["commit", "-q", "--allow-empty", "-m", msg]);
        self.push();
        git_in(&self.work, &["rev-parse", "HEAD"])
    }

    /// Tags HEAD (annotated) as `tag` and pushes it.
    pub fn tag(&self, tag: &str) {
        git_in(&self.work, &["tag", "-a", "-m", tag, tag]);
        self.push();
    }

    /// How many requests (`ls-remote`, fetches) the daemon has served so far.
    pub fn requests(&self) -> usize {
        let log = self.work.parent().unwrap().join("daemon.log");
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("Request upload-pack")
            .count()
    }

    /// The work tree (pushed by [`GitServer::commit`]).
    pub fn work(&self) -> &Path {
        &self.work
    }

    /// Runs git in the work tree.
    pub fn git(&self, args: &[&str]) -> String {
        git_in(&self.work, args)
    }

    /// Pushes every branch and tag to the served repository.
    pub fn push(&self) {
        let bare = self.work.parent().unwrap().join("srv/repo.git");
        let b = bare.to_str().unwrap();
        git_in(&self.work, &["push", "-q", "--force", b, "--all"]);
        git_in(&self.work, &["push", "-q", "--force", b, "--tags"]);
    }

    /// `git://127.0.0.1:<port>/repo.git` followed by `suffix` (`#ref:subdir`).
    pub fn url(&self, suffix: &str) -> String {
        format!("git://127.0.0.1:{}/repo.git{suffix}", self.port)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        // Stops the daemon this server started, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
