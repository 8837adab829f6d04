//! podman 4.3 (with conmon) driving barge-runc: run, exec, logs, pause/unpause, stop.
//! Podman state lives in a per-test tempdir (vfs storage), removed afterwards.

mod common;

use std::process::{Command, Output};

use common::*;

struct Podman {
    dir: tempfile::TempDir,
    runc: Runc,
}

impl Podman {
    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .arg("--runtime")
            .arg(&self.runc.bin)
            .args(args);
        c
    }
    fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("podman")
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "podman {args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // A paused container is not removed by rm -f on podman 4.3: thaw first.
        let _ = self.cmd(&["unpause", "--all"]).output();
        let _ = self.cmd(&["rm", "-af", "-t", "0"]).output();
        let _ = self.cmd(&["rmi", "-af"]).output();
    }
}

// This host's hard limits are below podman's rootful defaults (1048576), as for crun.
const LIMITS: [&str; 6] = [
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

#[test]
fn podman_run_exec_logs_pause_stop() {
    if skip_unless_root() {
        return;
    }
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("skipped: podman not installed");
        return;
    }
    let p = Podman {
        dir: tempfile::tempdir().unwrap(),
        runc: Runc::new(),
    };
    let rootfs = p.dir.path().join("rootfs");
    barge_testsupport::busybox::rootfs(&rootfs);
    let tar = p.dir.path().join("bb.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let image = format!("localhost/{}:latest", unique_id("img"));
    p.ok(&["import", tar.to_str().unwrap(), &image]);

    let mut a = vec!["run", "--rm"];
    a.extend(LIMITS);
    a.extend([image.as_str(), "sh", "-c", "echo hi-podman; exit 0"]);
    assert_eq!(p.ok(&a), "hi-podman\n");
    let mut a = vec!["run", "--rm"];
    a.extend(LIMITS);
    a.extend([image.as_str(), "sh", "-c", "exit 3"]);
    assert_eq!(p.out(&a).status.code(), Some(3));

    let name = unique_id("pod");
    let mut a = vec!["run", "-d", "--name", &name];
    a.extend(LIMITS);
    a.extend([
        image.as_str(),
        "sh",
        "-c",
        "echo started; trap 'echo bye; exit 0' TERM; i=0; while true; do i=$((i+1)); echo $i > /tmp/n; usleep 20000; done",
    ]);
    p.ok(&a);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = p.out(&["exec", &name, "sh", "-c", "echo in-exec; exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "in-exec\n");
    assert_eq!(
        p.ok(&["exec", "-t", &name, "echo", "tty-exec"]).trim(),
        "tty-exec"
    );

    p.ok(&["pause", &name]);
    assert_eq!(
        p.ok(&["inspect", "-f", "{{.State.Status}}", &name]).trim(),
        "paused"
    );
    p.ok(&["unpause", &name]);
    assert_eq!(
        p.ok(&["inspect", "-f", "{{.State.Status}}", &name]).trim(),
        "running"
    );

    p.ok(&["stop", "-t", "5", &name]);
    assert_eq!(p.ok(&["logs", &name]), "started\nbye\n");
    assert_eq!(
        p.ok(&["inspect", "-f", "{{.State.ExitCode}}", &name])
            .trim(),
        "0"
    );
    p.ok(&["rm", &name]);
}
