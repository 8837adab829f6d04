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

use barge_runtime::caps::DOCKER_DEFAULT as CAPS;

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

/// A mount point the rootfs lacked: `path` (absolute) and how many of its leading
/// components existed before the RUN (the runtime made the others).
struct Stub {
    path: String,
    existing: usize,
}

/// The stub of `dest` if the rootfs lacks it (resolved inside the rootfs).
fn stub_of(root: std::os::fd::RawFd, dest: &str) -> Option<Stub> {
    let parts: Vec<&str> = dest.split('/').filter(|p| !p.is_empty()).collect();
    let missing = |n: usize| {
        fsutil::openat2(root, &parts[..n].join("/"), libc::O_PATH, fsutil::IN_ROOT)
            .is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT))
    };
    if parts.is_empty() || !missing(parts.len()) {
        return None;
    }
    let existing = (0..parts.len())
        .take_while(|&n| n == 0 || !missing(n))
        .count()
        - 1;
    Some(Stub {
        path: dest.to_string(),
        existing,
    })
}

/// Removes the mount points the runtime made for RUN's mounts, and the directories it
/// made for them, so they stay out of the layer (as BuildKit does): each only if it is an
/// empty directory or an empty file, resolved inside the rootfs, the last component never
/// followed (rmdir / unlink).
fn remove_stubs(rootfs: &std::path::Path, stubs: &[Stub]) {
    let Ok(root) = fsutil::open_root(rootfs) else {
        return;
    };
    for s in stubs {
        let parts: Vec<&str> = s.path.split('/').filter(|p| !p.is_empty()).collect();
        // Deepest first; stop at the first that is not an empty stub.
        for n in (s.existing + 1..=parts.len()).rev() {
            let dir = parts[..n - 1].join("/");
            let name = parts[n - 1];
            let Ok(pfd) = fsutil::openat2(
                root.as_raw_fd(),
                &dir,
                libc::O_PATH | libc::O_DIRECTORY,
                fsutil::IN_ROOT,
            ) else {
                break;
            };
            let removed = match fsutil::lstat_at(pfd.as_raw_fd(), name) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                    fsutil::unlink_at(pfd.as_raw_fd(), name, true).is_ok()
                }
                // A file stub (for a file bind mount) is empty.
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_size == 0 => {
                    fsutil::unlink_at(pfd.as_raw_fd(), name, false).is_ok()
                }
                _ => false,
            };
            if !removed {
                break;
            }
        }
    }
}

/// The directories that already existed above the stubs (`etc` for an /etc/hosts stub),
/// with their owner and mode before the RUN: the runtime's stub made overlayfs copy them
/// up, so they would reach the layer with nothing changed but their times.
fn stub_parents(root: std::os::fd::RawFd, stubs: &[Stub]) -> Vec<(String, (u32, u32, u32))> {
    let mut out: Vec<(String, (u32, u32, u32))> = Vec::new();
    for s in stubs {
        let parts: Vec<&str> = s.path.split('/').filter(|p| !p.is_empty()).collect();
        for n in 1..=s.existing.min(parts.len()) {
            let dir = parts[..n].join("/");
            if out.iter().any(|(d, _)| *d == dir) {
                continue;
            }
            if let Some(m) = dir_meta(root, &dir) {
                out.push((dir, m));
            }
        }
    }
    out
}

/// Owner and mode of the directory `rel` inside the rootfs `root` (None if it is none).
fn dir_meta(root: std::os::fd::RawFd, rel: &str) -> Option<(u32, u32, u32)> {
    let fd = fsutil::openat2(root, rel, libc::O_PATH | libc::O_DIRECTORY, fsutil::IN_ROOT).ok()?;
    let st = fsutil::fstat(fd.as_raw_fd()).ok()?;
    Some((st.st_uid, st.st_gid, st.st_mode))
}

/// After the RUN, with the snapshot unmounted: removes from its upper dir each of `dirs`
/// (deepest first) that is still an empty, non-opaque directory there, i.e. was copied
/// up only for a stub. rmdir refuses one holding anything (a file, a whiteout), and an
/// opaque one (the RUN emptied it) is kept; nothing is followed (no symlinks).
fn prune_copied_up(upper: &std::path::Path, dirs: &[String]) {
    let Ok(top) = fsutil::open_root(upper) else {
        return;
    };
    let mut dirs: Vec<&String> = dirs.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for d in dirs {
        let (parent, name) = match d.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", d.as_str()),
        };
        let Ok(pfd) = fsutil::openat2(
            top.as_raw_fd(),
            parent,
            libc::O_PATH | libc::O_DIRECTORY,
            fsutil::BENEATH | fsutil::NO_SYMLINKS,
        ) else {
            continue;
        };
        let Ok(fd) = fsutil::openat2(
            pfd.as_raw_fd(),
            name,
            libc::O_RDONLY | libc::O_DIRECTORY,
            fsutil::BENEATH | fsutil::NO_SYMLINKS,
        ) else {
            continue;
        };
        let mut v = [0u8; 2];
        // SAFETY: fgetxattr on an fd we hold into a buffer of the given size.
        let opaque = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                c"trusted.overlay.opaque".as_ptr(),
                v.as_mut_ptr().cast(),
                v.len(),
            )
        } >= 0;
        drop(fd);
        if !opaque {
            let _ = fsutil::unlink_at(pfd.as_raw_fd(), name, true);
        }
    }
}

/// A tmpfs holding one RUN's secret files, so they never touch a disk nor the snapshot;
/// unmounted and removed on drop.
struct SecretFiles {
    dir: std::path::PathBuf,
    mounted: bool,
}

impl SecretFiles {
    fn new(parent: &std::path::Path) -> std::io::Result<SecretFiles> {
        let dir = parent.join(super::unique("secrets-"));
        std::fs::create_dir(&dir)?;
        let mut s = SecretFiles {
            dir,
            mounted: false,
        };
        let c = fsutil::cstr(s.dir.as_os_str().as_encoded_bytes())?;
        let opts = fsutil::cstr(b"mode=0700,size=16m")?;
        // SAFETY: NUL-terminated strings; a tmpfs on a directory we just made.
        if unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                c.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                opts.as_ptr().cast(),
            )
        } < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        s.mounted = true;
        Ok(s)
    }

    /// Writes secret number `n` with its owner and mode; returns its host path.
    fn write(
        &self,
        n: usize,
        data: &[u8],
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> std::io::Result<std::path::PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.dir.join(format!("s{n}"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)?;
        f.write_all(data)?;
        let fd: OwnedFd = f.into();
        fsutil::set_owner_mode(&fd, uid, gid, mode)?;
        Ok(p)
    }
}

impl Drop for SecretFiles {
    fn drop(&mut self) {
        if self.mounted {
            if let Ok(c) = fsutil::cstr(self.dir.as_os_str().as_encoded_bytes()) {
                // SAFETY: NUL-terminated; detach: the RUN is over, nothing uses it.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
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

/// A RUN's history entry (also its cache identity), as the classic builder writes it: the
/// ARGs it sees first (`|N k=v ...`), then the command it runs.
pub(super) fn run_created_by(sc: &StageCtx, inst: &Instruction, r: &crate::ast::Run) -> String {
    let args = sc.scope.run_args_for_history();
    let cmd = run_args(sc, inst, r).join(" ");
    if args.is_empty() {
        cmd
    } else {
        format!("|{} {} {cmd}", args.len(), args.join(" "))
    }
}

/// One output pipe of a RUN: what is read but not yet reported (a partial line).
struct OutStream {
    f: std::fs::File,
    pending: Vec<u8>,
    open: bool,
    stderr: bool,
}

impl OutStream {
    fn new(fd: OwnedFd, stderr: bool) -> OutStream {
        OutStream {
            f: fd.into(),
            pending: Vec::new(),
            open: true,
            stderr,
        }
    }

    fn report(&self, run: &Run<'_>, data: Vec<u8>) {
        let text = String::from_utf8_lossy(&data).into_owned();
        run.emit(if self.stderr {
            crate::progress::Event::Stderr(text)
        } else {
            crate::progress::Event::Output(text)
        });
    }

    /// Reports what is left at the end of the stream.
    fn flush(&mut self, run: &Run<'_>) {
        if !self.pending.is_empty() {
            let data = std::mem::take(&mut self.pending);
            self.report(run, data);
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
        let created_by = run_created_by(sc, inst, r);
        let build_net = self.opts.network.as_deref().unwrap_or("default");
        let host_net = match r.network.unwrap_or(NetworkMode::Default) {
            NetworkMode::Host if build_net == "host" => true,
            NetworkMode::Host => return Err(self.step_err(
                inst,
                "RUN --network=host is not allowed: the build was not started with --network host",
            )),
            NetworkMode::None => false,
            NetworkMode::Default => build_net == "host",
        };
        // The network to join through the provider (None: loopback only).
        let join = match (r.network.unwrap_or(NetworkMode::Default), build_net) {
            (NetworkMode::Default, "none" | "host")
            | (NetworkMode::None | NetworkMode::Host, _) => None,
            (NetworkMode::Default, "default" | "bridge" | "") => Some("bridge"),
            (NetworkMode::Default, other) => Some(other),
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
        let mut secrets: Option<SecretFiles> = None;
        // `env=` secrets: in the process's environment only (not in the key or history).
        let mut secret_env = Vec::new();
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
                MountType::Secret => {
                    // The id: `id=`, else `source=`, else the target's base name.
                    let id =
                        m.id.clone()
                            .or_else(|| m.source.clone())
                            .or_else(|| {
                                m.target
                                    .as_deref()
                                    .and_then(|t| t.rsplit('/').find(|n| !n.is_empty()))
                                    .map(String::from)
                            })
                            .unwrap_or_default();
                    let Some(value) = self.opts.secrets.get(&id) else {
                        if m.required {
                            return Err(self.step_err(
                                inst,
                                format!("secret {id} is required but was not given (barge build --secret id={id},src=<file>)"),
                            ));
                        }
                        continue;
                    };
                    if let Some(var) = &m.env {
                        let v = std::str::from_utf8(&value.0).map_err(|_| {
                            self.step_err(
                                inst,
                                format!("secret {id} is not UTF-8: it cannot be env={var}"),
                            )
                        })?;
                        secret_env.push(format!("{var}={v}"));
                    }
                    let target = match (&m.target, &m.env) {
                        (Some(t), _) => Some(t.clone()),
                        (None, Some(_)) => None,
                        (None, None) => Some(format!("/run/secrets/{id}")),
                    };
                    if let Some(target) = target {
                        if secrets.is_none() {
                            let s = SecretFiles::new(&self.b.root.join("tmp")).map_err(|e| {
                                self.step_err(inst, format!("a tmpfs for secrets: {e}"))
                            })?;
                            secrets = Some(s);
                        }
                        let Some(files) = &secrets else { continue };
                        let path = files
                            .write(
                                mounts.len(),
                                &value.0,
                                m.uid.unwrap_or(0),
                                m.gid.unwrap_or(0),
                                m.mode.unwrap_or(0o400),
                            )
                            .map_err(|e| self.step_err(inst, format!("secret {id}: {e}")))?;
                        mounts.push(json!({"destination": target, "type": "bind", "source": path, "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}));
                    }
                }
                MountType::Ssh => {
                    if m.required {
                        return Err(self.step_err(
                            inst,
                            "RUN --mount=type=ssh is not supported by barge's builder (no SSH agent forwarding)",
                        ));
                    }
                    self.emit(crate::progress::Event::Warning(format!(
                        "{}: --mount=type=ssh is not supported (no SSH agent is forwarded); the mount is skipped",
                        inst.original
                    )));
                }
            }
        }
        let mut snap = Snap::new(self.b, &st.layers)?;
        // Attached before the container exists, detached (dropped) after it is gone.
        let attachment = match (join, &self.opts.network_provider) {
            (Some(net), Some(p)) => Some(
                p.attach(Digest::of(snap.key.as_bytes()).hex(), net)
                    .map_err(|e| self.step_err(inst, format!("network {net}: {e}")))?,
            ),
            _ => None,
        };
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
            let mut text = String::from(
                "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            );
            for (name, ip) in &self.opts.extra_hosts {
                text.push_str(&format!("{ip}\t{name}\n"));
            }
            std::fs::write(&hosts, text).map_err(|e| self.step_err(inst, e))?;
            mounts.push(json!({"destination": "/etc/hosts", "type": "bind", "source": hosts, "options": ["bind", "ro"]}));
            if let Some(resolv) = attachment.as_ref().and_then(|a| a.resolv_conf()) {
                let p = snap.dir.join("resolv.conf");
                std::fs::write(&p, resolv).map_err(|e| self.step_err(inst, e))?;
                mounts.push(json!({"destination": "/etc/resolv.conf", "type": "bind", "source": p, "options": ["bind", "ro"]}));
            }
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
        let stubs: Vec<Stub> = mounts
            .iter()
            .skip(BASE_MOUNTS)
            .filter_map(|m| m["destination"].as_str())
            .filter(|d| !d.starts_with("/dev/"))
            .filter_map(|d| stub_of(root.as_raw_fd(), d))
            .collect();
        let stub_parents = stub_parents(root.as_raw_fd(), &stubs);
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
        // With secrets, the bundle (whose config.json holds `env=` secrets) is their
        // tmpfs, so no secret is ever written to a disk.
        if !secret_env.is_empty() && secrets.is_none() {
            let s = SecretFiles::new(&self.b.root.join("tmp"))
                .map_err(|e| self.step_err(inst, format!("a tmpfs for secrets: {e}")))?;
            secrets = Some(s);
        }
        env.extend(secret_env);
        let bundle = secrets
            .as_ref()
            .map_or_else(|| snap.dir.clone(), |s| s.dir.clone());
        let mut namespaces = vec![
            json!({"type": "pid"}),
            json!({"type": "ipc"}),
            json!({"type": "uts"}),
            json!({"type": "mount"}),
        ];
        match &attachment {
            Some(a) => namespaces.push(json!({"type": "network", "path": a.netns_path()})),
            None if !host_net => namespaces.push(json!({"type": "network"})),
            None => {}
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
            "root": {"path": snap.rootfs(), "readonly": false},
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
        let cfg = bundle.join("config.json");
        let bytes = serde_json::to_vec(&spec).map_err(|e| self.step_err(inst, e))?;
        std::fs::write(&cfg, bytes)
            .map_err(|e| self.step_err(inst, format!("{}: {e}", cfg.display())))?;
        self.emit(crate::progress::Event::Running {
            id: snap.key.clone(),
        });
        let (code, tail) = match self.spawn(&bundle, &snap.key) {
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
        drop(secrets);
        drop(attachment);
        remove_stubs(&snap.rootfs(), &stubs);
        // The stubs' parents the RUN left as they were (owner, mode) go from the upper dir,
        // so a RUN that changes nothing gives the empty layer, as the classic builder's
        // (whose mount points live in a layer of their own).
        let untouched: Vec<String> = match fsutil::open_root(&snap.rootfs()) {
            Ok(root) => stub_parents
                .into_iter()
                .filter(|(d, m)| dir_meta(root.as_raw_fd(), d) == Some(*m))
                .map(|(d, _)| d)
                .collect(),
            Err(_) => Vec::new(),
        };
        snap.unmount()?;
        if !untouched.is_empty() {
            if let Ok(upper) = self.b.store.snapshot_upper(&snap.key) {
                prune_copied_up(&upper, &untouched);
            }
        }
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

    /// Runs the bundle to completion, streaming its output (stdout and stderr on pipes of
    /// their own, so stderr is reported as such); returns the exit code and the tail of
    /// the output (both streams, in the order read).
    fn spawn(&self, bundle: &std::path::Path, id: &str) -> std::io::Result<(i32, String)> {
        let (r_out, w_out) = pipe()?;
        let (r_err, w_err) = pipe()?;
        let mut cmd = self.runtime_cmd();
        cmd.arg("--root")
            .arg(self.b.root.join("runtime"))
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(w_out))
            .stderr(Stdio::from(w_err));
        let mut child = cmd.spawn()?;
        drop(cmd); // closes our copies of the write ends
        let mut streams = [OutStream::new(r_out, false), OutStream::new(r_err, true)];
        let mut buf = vec![0u8; 16 << 10];
        let mut tail: Vec<u8> = Vec::new();
        while streams.iter().any(|s| s.open) {
            let mut pfds: Vec<libc::pollfd> = streams
                .iter()
                .map(|s| libc::pollfd {
                    fd: if s.open { s.f.as_raw_fd() } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: pfds is a valid array of pollfd of the length given.
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
            for (s, p) in streams.iter_mut().zip(&pfds) {
                if !s.open || p.revents == 0 {
                    continue;
                }
                let n = match s.f.read(&mut buf) {
                    Ok(0) => {
                        s.open = false;
                        s.flush(self);
                        continue;
                    }
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
                s.pending.extend_from_slice(&buf[..n]);
                // Report whole lines (and whatever is left at the end).
                if let Some(p) = s.pending.iter().rposition(|&b| b == b'\n') {
                    let rest = s.pending.split_off(p + 1);
                    let lines = std::mem::replace(&mut s.pending, rest);
                    s.report(self, lines);
                }
            }
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
