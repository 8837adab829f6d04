//! RUN: a container on a snapshot of the build rootfs, run by the barge binary's runc
//! front end as a subprocess (the daemon never forks the runtime in-process).

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command as Proc, Stdio};

use barge_image::image::LayerRecord;
use barge_image::Digest;
use serde_json::json;

use super::copy::resolve_user;
use super::{BuildError, Run, Snap, StageCtx, State, DEFAULT_PATH};
use crate::ast::{CommandLine, Instruction, NetworkMode, SecurityMode};
use crate::fsutil::{self, BENEATH};
use crate::mount::MountType;

/// Docker's default capabilities.
const CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The most of a failing RUN's output kept for the error.
const TAIL: usize = 4096;

/// The shell script of a shell-form RUN with heredocs: a lone `<<EOF` runs the body as
/// the script; otherwise the heredocs are appended so the shell feeds them itself.
fn script(cmd: &str, heredocs: &[crate::Heredoc]) -> String {
    if heredocs.len() == 1 && crate::is_heredoc_word(cmd.trim()) {
        return heredocs[0].content.clone();
    }
    let mut s = cmd.to_string();
    for h in heredocs {
        s.push('\n');
        s.push_str(&h.content);
        s.push_str(&h.name);
    }
    s
}

/// How many of the spec's mounts are the standard ones (proc, dev, ...), before RUN's.
const BASE_MOUNTS: usize = 6;

/// Removes the mount points the runtime made for RUN's mounts, so they stay out of the
/// layer (as BuildKit does): each only if it is an empty directory or an empty file,
/// resolved inside the rootfs, the last component never followed (rmdir / unlink).
fn remove_stubs(rootfs: &std::path::Path, stubs: &[String]) {
    let Ok(root) = fsutil::open_root(rootfs) else {
        return;
    };
    for s in stubs {
        let path = s.trim_matches('/');
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        if name.is_empty() {
            continue;
        }
        if let Ok(pfd) = fsutil::openat2(
            root.as_raw_fd(),
            dir,
            libc::O_PATH | libc::O_DIRECTORY,
            fsutil::IN_ROOT,
        ) {
            match fsutil::lstat_at(pfd.as_raw_fd(), name) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                    let _ = fsutil::unlink_at(pfd.as_raw_fd(), name, true);
                }
                // A file stub (for a file bind mount) is empty.
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_size == 0 => {
                    let _ = fsutil::unlink_at(pfd.as_raw_fd(), name, false);
                }
                _ => {}
            }
        }
    }
}

/// The process arguments of a RUN (exec form as is; shell form through the SHELL).
pub(super) fn run_args(sc: &StageCtx, inst: &Instruction, r: &crate::ast::Run) -> Vec<String> {
    match &r.command {
        CommandLine::Exec(v) => v.clone(),
        CommandLine::Shell(s) => {
            let mut v = sc.shell.clone();
            v.push(script(s, &inst.heredocs));
            v
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Run<'_> {
    /// Runs a RUN; returns its layer and its history `created_by`.
    pub(crate) fn run_step(
        &self,
        st: &State,
        sc: &StageCtx,
        inst: &Instruction,
        r: &crate::ast::Run,
    ) -> Result<(LayerRecord, String), BuildError> {
        if self.opts.barge_binary.as_os_str().is_empty() {
            return Err(self.step_err(
                inst,
                "RUN needs the barge binary (BuildOptions::barge_binary) to run containers",
            ));
        }
        if r.security == Some(SecurityMode::Insecure) {
            return Err(self.step_err(
                inst,
                "RUN --security=insecure is not allowed (no entitlement security.insecure)",
            ));
        }
        let args = run_args(sc, inst, r);
        if args.is_empty() {
            return Err(self.step_err(inst, "RUN with an empty command"));
        }
        let created_by = args.join(" ");
        let host_net = match r.network.unwrap_or(NetworkMode::Default) {
            NetworkMode::Host if self.opts.network.as_deref() == Some("host") => true,
            NetworkMode::Host => return Err(self.step_err(
                inst,
                "RUN --network=host is not allowed: the build was not started with --network host",
            )),
            NetworkMode::None => false,
            NetworkMode::Default => self.opts.network.as_deref() == Some("host"),
        };
        let lexer = self.df.lexer();
        let mut mounts = vec![
            json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
            json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
            json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
            json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
            json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        ];
        // Snapshots of stages bind-mounted into this RUN, unmounted when it is done.
        let mut from_snaps = Vec::new();
        for spec in &r.mounts {
            let m = spec
                .resolve(&lexer, &sc.scope)
                .map_err(|e| self.step_err(inst, e))?;
            let target = m.target.clone().unwrap_or_default();
            match m.kind {
                MountType::Tmpfs => {
                    let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
                    if let Some(s) = m.size {
                        opts.push(format!("size={s}"));
                    }
                    mounts.push(json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts}));
                }
                MountType::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = self
                        .b
                        .root
                        .join("mounts")
                        .join(format!("cache-{}", &Digest::of(id.as_bytes()).hex()[..24]));
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir).map_err(|e| self.step_err(inst, e))?;
                        let c = fsutil::cstr(dir.as_os_str().as_encoded_bytes())
                            .map_err(|e| self.step_err(inst, e))?;
                        // SAFETY: c is NUL-terminated; a directory we just made.
                        unsafe {
                            libc::chown(c.as_ptr(), m.uid.unwrap_or(0), m.gid.unwrap_or(0));
                            libc::chmod(c.as_ptr(), m.mode.unwrap_or(0o755));
                        }
                    }
                    let rw = if m.readonly { "ro" } else { "rw" };
                    mounts.push(json!({"destination": target, "type": "bind", "source": dir, "options": ["rbind", rw]}));
                }
                MountType::Bind if m.from.is_some() => {
                    let f = m.from.as_deref().unwrap_or_default();
                    let state = self.state_for_from(f, inst)?;
                    let s = Snap::new(self.b, &state.layers)?;
                    let src = m.source.clone().unwrap_or_default();
                    let path = {
                        let rfd =
                            fsutil::open_root(&s.rootfs()).map_err(|e| self.step_err(inst, e))?;
                        let fd = fsutil::openat2(
                            rfd.as_raw_fd(),
                            src.trim_start_matches('/'),
                            libc::O_PATH,
                            fsutil::IN_ROOT,
                        )
                        .map_err(|e| {
                            self.step_err(inst, format!("bind mount source {src} in {f}: {e}"))
                        })?;
                        fsutil::fd_path(fd.as_raw_fd()).map_err(|e| self.step_err(inst, e))?
                    };
                    // Read-only: the stage's snapshot is thrown away after the step anyway.
                    mounts.push(json!({"destination": target, "type": "bind", "source": path, "options": ["rbind", "ro"]}));
                    from_snaps.push(s);
                }
                MountType::Bind => {
                    let src = m.source.clone().unwrap_or_default();
                    if fsutil::clean(&src).is_none() {
                        return Err(self.step_err(
                            inst,
                            format!("forbidden path outside the build context: {src}"),
                        ));
                    }
                    let fd = fsutil::openat2(self.ctx_fd.as_raw_fd(), &src, libc::O_PATH, BENEATH)
                        .map_err(|e| {
                            self.step_err(inst, format!("bind mount source {src}: {e}"))
                        })?;
                    let path =
                        fsutil::fd_path(fd.as_raw_fd()).map_err(|e| self.step_err(inst, e))?;
                    // Always read-only: writes would land in the caller's context.
                    mounts.push(json!({"destination": target, "type": "bind", "source": path, "options": ["rbind", "ro"]}));
                }
                MountType::Secret | MountType::Ssh => {
                    if m.required {
                        return Err(self.step_err(
                            inst,
                            format!(
                                "{} {} is required but the build has no secrets or SSH agents",
                                if m.kind == MountType::Secret {
                                    "secret"
                                } else {
                                    "ssh"
                                },
                                m.id.as_deref().unwrap_or("default")
                            ),
                        ));
                    }
                }
            }
        }
        let snap = Snap::new(self.b, &st.layers)?;
        let mut args = args;
        // A lone heredoc with a shebang is a script for its interpreter (as BuildKit):
        // written to a file in the bundle, bind-mounted under /dev (a tmpfs, so nothing
        // of it lands in the layer) and executed.
        if let (CommandLine::Shell(c), [h]) = (&r.command, inst.heredocs.as_slice()) {
            if crate::is_heredoc_word(c.trim()) && h.content.starts_with("#!") {
                let host = snap.dir.join("heredoc");
                std::fs::write(&host, &h.content).map_err(|e| self.step_err(inst, e))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| self.step_err(inst, e))?;
                let dst = "/dev/.barge-heredoc";
                mounts.push(json!({"destination": dst, "type": "bind", "source": host, "options": ["bind", "ro"]}));
                args = vec![dst.to_string()];
            }
        }
        let root = fsutil::open_root(&snap.rootfs()).map_err(|e| self.step_err(inst, e))?;
        // /etc/hosts with localhost, as Docker gives a build container (when the rootfs
        // has an /etc); the bind mount keeps RUN's writes to it out of the layer.
        let has_etc = fsutil::openat2(
            root.as_raw_fd(),
            "etc",
            libc::O_PATH | libc::O_DIRECTORY,
            fsutil::IN_ROOT,
        )
        .is_ok();
        if has_etc && !host_net {
            let hosts = snap.dir.join("hosts");
            std::fs::write(
                &hosts,
                "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            )
            .map_err(|e| self.step_err(inst, e))?;
            mounts.push(json!({"destination": "/etc/hosts", "type": "bind", "source": hosts, "options": ["bind", "ro"]}));
        }
        let user = st.config["config"]["User"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let (uid, gid) =
            resolve_user(root.as_raw_fd(), &user).map_err(|e| self.step_err(inst, e))?;
        let cwd = st.config["config"]["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string();
        fsutil::mkdir_all_in_root(root.as_raw_fd(), &cwd, None)
            .map_err(|e| self.step_err(inst, format!("WORKDIR {cwd}: {e}")))?;
        // Mount targets the rootfs lacks: the runtime makes stubs for them, removed after.
        let stubs: Vec<String> = mounts
            .iter()
            .skip(BASE_MOUNTS)
            .filter_map(|m| m["destination"].as_str())
            .filter(|d| !d.starts_with("/dev/"))
            .filter(|d| {
                fsutil::openat2(
                    root.as_raw_fd(),
                    d.trim_start_matches('/'),
                    libc::O_PATH,
                    fsutil::IN_ROOT,
                )
                .is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT))
            })
            .map(String::from)
            .collect();
        drop(root);
        let mut env: Vec<String> = sc
            .scope
            .run_env()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_string());
        }
        let mut namespaces = vec![
            json!({"type": "pid"}),
            json!({"type": "ipc"}),
            json!({"type": "uts"}),
            json!({"type": "mount"}),
        ];
        if !host_net {
            namespaces.push(json!({"type": "network"}));
        }
        let caps: Vec<String> = CAPS.iter().map(|c| c.to_string()).collect();
        let seccomp = serde_json::to_value(barge_runtime::seccomp::docker_default_profile(&caps))
            .map_err(|e| self.step_err(inst, format!("seccomp profile: {e}")))?;
        let spec = json!({
            "ociVersion": "1.2.0",
            "process": {
                "terminal": false,
                "user": {"uid": uid, "gid": gid},
                "args": args,
                "env": env,
                "cwd": cwd,
                "capabilities": {"bounding": CAPS, "effective": CAPS, "permitted": CAPS},
                "noNewPrivileges": false
            },
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "buildkitsandbox",
            "mounts": mounts,
            "linux": {
                "namespaces": namespaces,
                "seccomp": seccomp,
                "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
            }
        });
        let cfg = snap.dir.join("config.json");
        let bytes = serde_json::to_vec(&spec).map_err(|e| self.step_err(inst, e))?;
        std::fs::write(&cfg, bytes)
            .map_err(|e| self.step_err(inst, format!("{}: {e}", cfg.display())))?;
        self.emit(crate::progress::Event::Running {
            id: snap.key.clone(),
        });
        let (code, tail) = match self.spawn(&snap.dir, &snap.key) {
            Ok(r) => r,
            Err(_) if self.cancelled() => return Err(BuildError::Cancelled),
            Err(e) => return Err(self.step_err(inst, format!("running the build container: {e}"))),
        };
        if code != 0 {
            return Err(BuildError::RunFailed {
                file: self.file.clone(),
                line: inst.start_line,
                instruction: inst.original.clone(),
                command: created_by,
                code,
                output: tail,
            });
        }
        drop(from_snaps);
        remove_stubs(&snap.rootfs(), &stubs);
        let layer = snap.commit(self.lease)?;
        Ok((layer, created_by))
    }

    /// The runtime front end: `<barge> runtime`, or a `barge-runc`/`runc` link as is.
    fn runtime_cmd(&self) -> Proc {
        let bin = &self.opts.barge_binary;
        let mut c = Proc::new(bin);
        let name = bin.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name != "barge-runc" && name != "runc" {
            c.arg("runtime");
        }
        c
    }

    /// Runs the bundle to completion, streaming its output; returns the exit code and
    /// the tail of the output.
    fn spawn(&self, bundle: &std::path::Path, id: &str) -> std::io::Result<(i32, String)> {
        let (r, w) = pipe()?;
        let w2 = w.try_clone()?;
        let mut cmd = self.runtime_cmd();
        cmd.arg("--root")
            .arg(self.b.root.join("runtime"))
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(w))
            .stderr(Stdio::from(w2));
        let mut child = cmd.spawn()?;
        drop(cmd); // closes our copies of the write end
        let mut f = std::fs::File::from(r);
        let mut buf = vec![0u8; 16 << 10];
        let mut tail: Vec<u8> = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e);
                }
            };
            if self.cancelled() {
                // `delete --force` kills the container; then its `run` front end exits.
                let _ = self
                    .runtime_cmd()
                    .arg("--root")
                    .arg(self.b.root.join("runtime"))
                    .args(["delete", "--force", id])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::other("cancelled"));
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * TAIL {
                tail.drain(..tail.len() - TAIL);
            }
            pending.extend_from_slice(&buf[..n]);
            // Report whole lines (and whatever is left at the end).
            if let Some(p) = pending.iter().rposition(|&b| b == b'\n') {
                let rest = pending.split_off(p + 1);
                self.emit(crate::progress::Event::Output(
                    String::from_utf8_lossy(&pending).into_owned(),
                ));
                pending = rest;
            }
        }
        if !pending.is_empty() {
            self.emit(crate::progress::Event::Output(
                String::from_utf8_lossy(&pending).into_owned(),
            ));
        }
        let status = child.wait()?;
        let code = status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        });
        if tail.len() > TAIL {
            tail.drain(..tail.len() - TAIL);
        }
        Ok((code, String::from_utf8_lossy(&tail).into_owned()))
    }
}
