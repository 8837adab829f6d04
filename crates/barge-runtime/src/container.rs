//! The container lifecycle: create, start, run, state, kill, delete, exec, ps, pause,
//! resume and list, per the OCI runtime specification's operations.
//!
//! `create` clones the container's init straight from the runtime process (no re-exec of our
//! binary): the parent writes the id maps, puts the child in its cgroup and tells it to go
//! over a SOCK_SEQPACKET pair; the child sets itself up (see [`crate::process`]), reports
//! READY and blocks opening the exec fifo until `start` opens its read end.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::cgroups::{self, CgroupManager, FreezerState};
use crate::hooks::{self, HookError};
use crate::process::{self, msg, ExecPlan, InitCtx, StepError, SyncSock};
use crate::rootfs::RootfsOptions;
use crate::state::{self, State, StateError, Status};
use crate::{Error, Result};

/// A lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The operation is not allowed in the container's current state.
    #[error("container {id} is {status}: cannot {operation}")]
    WrongState {
        /// The container id.
        id: String,
        /// Its current status.
        status: String,
        /// What was asked.
        operation: &'static str,
    },
    /// The container's process failed to set itself up; names the step.
    #[error("container init: {0}")]
    Init(String),
    /// A hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// A system call or file operation of the runtime failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// A command-line value is invalid.
    #[error("{0}")]
    Usage(String),
}

fn sys(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| ContainerError::Sys { what, source }.into()
}

fn last_os(what: impl Into<String>) -> Error {
    ContainerError::Sys {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
    .into()
}

/// Compiled seccomp filters are cached under the root in this directory.
const SECCOMP_CACHE: &str = ".seccomp-cache";

/// What `create` (and `run`) is asked.
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    /// The state root (default [`state::DEFAULT_ROOT`]).
    pub root: PathBuf,
    /// The container id.
    pub id: String,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// Where to send the pty master when `process.terminal` is set.
    pub console_socket: Option<PathBuf>,
    /// Where to write the init's pid.
    pub pid_file: Option<PathBuf>,
    /// Use a move + chroot instead of pivot_root (ramfs roots).
    pub no_pivot: bool,
    /// Extra fds (3..3+N) to pass to the container.
    pub preserve_fds: i32,
    /// Keep the runtime's init as the container's PID 1, a minimal init that runs the
    /// process as its child, forwards signals, reaps zombies (`--init`; see the `init` module).
    pub init: bool,
}

/// A created container: its init's pid (a child of this process).
#[derive(Debug)]
pub struct Created {
    /// The init's host pid.
    pub pid: i32,
    /// Our end of the sync socket: the init reports failures after READY here.
    sync: SyncSock,
}

impl Created {
    /// A failure the init reported after READY (startContainer hook, execve), if any.
    fn late_error(&self) -> Option<Error> {
        let mut buf = vec![0u8; 65536];
        // SAFETY: non-blocking recv into a buffer of buf.len() bytes.
        let n = unsafe {
            libc::recv(
                self.sync.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        (n > 0 && buf[0] == msg::ERROR).then(|| recv_child_error(&buf[..n as usize]))
    }
}

/// The spec's resources plus an allow rule for each of its `linux.devices` nodes (as runc
/// does), so the nodes made in the container can be used; except a node the spec's
/// `resources.devices` already has a rule for: that rule's access stands (Docker's
/// `--device /dev/sda:/dev/xvdc:r` must stay read-only, and an added `rwm` would widen it).
fn cgroup_resources(l: &oci_spec::runtime::Linux) -> Option<oci_spec::runtime::LinuxResources> {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let nodes = l.devices().as_deref().unwrap_or(&[]);
    if nodes.is_empty() {
        return l.resources().clone();
    }
    let mut r = l.resources().clone().unwrap_or_default();
    let mut rules = r.devices().clone().unwrap_or_default();
    let covered = |d: &oci_spec::runtime::LinuxDevice| {
        rules.iter().any(|r| {
            r.typ() == Some(d.typ()) && r.major() == Some(d.major()) && r.minor() == Some(d.minor())
        })
    };
    let extra: Vec<LinuxDeviceCgroup> = nodes
        .iter()
        .filter(|d| d.typ() != LinuxDeviceType::P && !covered(d))
        .map(LinuxDeviceCgroup::from)
        .collect();
    rules.extend(extra);
    r.set_devices(Some(rules));
    Some(r)
}

/// Removes what a failed create made: the child, the cgroup, the state dir.
struct CreateGuard<'a> {
    root: &'a Path,
    id: &'a str,
    child: i32,
    cgroup: Option<Box<dyn CgroupManager>>,
    armed: bool,
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.child > 0 {
            // SAFETY: signalling and reaping our own child.
            unsafe {
                libc::kill(self.child, libc::SIGKILL);
                libc::waitpid(self.child, std::ptr::null_mut(), 0);
            }
        }
        if let Some(m) = &self.cgroup {
            destroy_cgroup(m.as_ref());
        }
        let _ = state::remove(self.root, self.id);
    }
}

fn destroy_cgroup(m: &dyn CgroupManager) {
    // A process leaves its cgroup a moment after it dies; retry briefly.
    for i in 0..50 {
        if m.destroy().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(if i < 10 { 2 } else { 20 }));
    }
}

/// Opens a namespace file of our own to return to after a temporary setns.
fn own_ns(name: &str) -> Result<std::fs::File> {
    std::fs::File::open(format!("/proc/self/ns/{name}"))
        .map_err(sys(format!("open /proc/self/ns/{name}")))
}

fn setns_fd(f: &std::fs::File, flag: libc::c_int, what: &str) -> Result<()> {
    // SAFETY: f is an open namespace fd.
    if unsafe { libc::setns(f.as_raw_fd(), flag) } != 0 {
        return Err(last_os(format!("setns {what}")));
    }
    Ok(())
}

fn write_file(path: &str, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).map_err(sys(format!("write {path}")))
}

fn id_map(maps: &[oci_spec::runtime::LinuxIdMapping]) -> String {
    let mut s = String::new();
    for m in maps {
        s.push_str(&format!(
            "{} {} {}\n",
            m.container_id(),
            m.host_id(),
            m.size()
        ));
    }
    s
}

/// Connects to the caller's console socket.
fn connect_console(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path).map_err(sys(format!("--console-socket {}", path.display())))
}

fn recv_child_error(buf: &[u8]) -> Error {
    ContainerError::Init(String::from_utf8_lossy(&buf[1..]).into_owned()).into()
}

/// Creates the container: validates the bundle, makes the cgroup and the state dir, clones
/// the init and waits until it blocks on the exec fifo. On error nothing is left behind.
pub fn create(opts: &CreateOpts) -> Result<Created> {
    let bundle = std::fs::canonicalize(&opts.bundle).map_err(|source| Error::Io {
        path: opts.bundle.clone(),
        source,
    })?;
    let spec = crate::spec::load(&bundle)?;
    create_from_spec(opts, &bundle, &spec)
}

fn create_from_spec(opts: &CreateOpts, bundle: &Path, spec: &Spec) -> Result<Created> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| crate::spec::SpecError::Invalid {
            field: "process".into(),
            reason: "missing".into(),
        })?;
    let rootfs = crate::spec::rootfs_path(spec, bundle);
    let rootfs = std::fs::canonicalize(&rootfs).map_err(|source| Error::Io {
        path: rootfs.clone(),
        source,
    })?;
    let linux = spec.linux().as_ref();
    let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::seccomp::compile_cached(
            s,
            &opts.root.join(SECCOMP_CACHE),
        )?),
        None => None,
    };
    let terminal = process.terminal().unwrap_or(false);
    let console = match (&opts.console_socket, terminal) {
        (Some(p), true) => Some(connect_console(p)?),
        (None, true) => {
            return Err(ContainerError::Usage(
                "process.terminal is set: --console-socket is required".into(),
            )
            .into())
        }
        _ => None,
    };

    let dir = state::create_dir(&opts.root, &opts.id)?;
    let mut guard = CreateGuard {
        root: &opts.root,
        id: &opts.id,
        child: 0,
        cgroup: None,
        armed: true,
    };
    let fifo = dir.join(state::EXEC_FIFO);
    let fifo_c = process::path_cstr(fifo.as_os_str())
        .ok_or_else(|| ContainerError::Usage(format!("bad path {}", fifo.display())))?;
    // SAFETY: mkfifo with a NUL-terminated path.
    if unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o622) } != 0 {
        return Err(last_os(format!("mkfifo {}", fifo.display())));
    }
    // mkfifo obeys the umask; the init, whatever its user, must be able to open it for
    // writing (it reaches it only through the fd we pass, not through the 0700 dir).
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .map_err(sys(format!("chmod {}", fifo.display())))?;
    // SAFETY: open with a NUL-terminated path; O_PATH does not block on a fifo.
    let fifo_fd = unsafe { libc::open(fifo_c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fifo_fd < 0 {
        return Err(last_os(format!("open {}", fifo.display())));
    }
    // SAFETY: fifo_fd was just opened and is ours.
    let fifo_fd = unsafe { OwnedFd::from_raw_fd(fifo_fd) };

    let cgroups_path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let cg = cgroups::manager(cgroups_path.as_deref(), &opts.id)?;
    cg.create(linux.and_then(cgroup_resources).as_ref())?;
    let cg_paths = cg.paths();
    guard.cgroup = Some(cg);

    // Namespaces: new ones are clone flags; joined ones are setns'd by the child (user
    // first), except pid and time, which only affect children and so are set in the parent
    // around the clone.
    let mut flags: libc::c_int = 0;
    let mut join: Vec<(LinuxNamespaceType, PathBuf)> = Vec::new();
    let mut parent_join: Vec<(LinuxNamespaceType, PathBuf)> = Vec::new();
    let (mut new_cgroupns, mut new_userns, mut new_mountns, mut new_timens) =
        (false, false, false, false);
    for ns in linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let t = ns.typ();
        match (t, ns.path()) {
            (LinuxNamespaceType::Pid | LinuxNamespaceType::Time, Some(p)) => {
                parent_join.push((t, p.clone()))
            }
            (_, Some(p)) => join.push((t, p.clone())),
            (LinuxNamespaceType::Cgroup, None) => new_cgroupns = true,
            (LinuxNamespaceType::Time, None) => new_timens = true,
            (t, None) => {
                flags |= process::ns_flag(t);
                new_userns |= t == LinuxNamespaceType::User;
                new_mountns |= t == LinuxNamespaceType::Mount;
            }
        }
    }
    join.sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
    if join.iter().any(|(t, _)| *t == LinuxNamespaceType::Mount) {
        new_mountns = true;
    }
    if !new_mountns {
        return Err(crate::spec::SpecError::Invalid {
            field: "linux.namespaces".into(),
            reason: "a mount namespace is required".into(),
        }
        .into());
    }

    let hooks_spec = spec.hooks().as_ref();
    let parent_hooks =
        hooks_spec.is_some_and(|h| h.prestart().is_some() || h.create_runtime().is_some());
    let mut st = State {
        oci_version: spec.version().clone(),
        id: opts.id.clone(),
        status: Status::Creating,
        pid: 0,
        bundle: bundle.to_path_buf(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        created: state::now_rfc3339(),
        rootfs: rootfs.clone(),
        cgroups_path,
        start_time: 0,
        // SAFETY: geteuid cannot fail.
        owner: unsafe { libc::geteuid() },
        hooks: hooks_spec
            .filter(|h| h.poststart().is_some() || h.poststop().is_some())
            .cloned(),
    };

    let (parent_sock, child_sock) = SyncSock::pair().map_err(sys("socketpair"))?;
    let restore: Vec<(std::fs::File, libc::c_int)> = {
        let mut r = Vec::new();
        for (t, p) in &parent_join {
            let name = if *t == LinuxNamespaceType::Pid {
                "pid_for_children"
            } else {
                "time_for_children"
            };
            r.push((own_ns(name)?, process::ns_flag(*t)));
            let f = std::fs::File::open(p).map_err(sys(format!("open {}", p.display())))?;
            setns_fd(&f, process::ns_flag(*t), &p.display().to_string())?;
        }
        if new_timens {
            r.push((own_ns("time_for_children")?, 0x80));
            // SAFETY: unshare with the time namespace flag affects only our future children.
            if unsafe { libc::unshare(0x80) } != 0 {
                return Err(last_os("unshare(CLONE_NEWTIME)"));
            }
            let mut offs = String::new();
            for (clock, o) in linux
                .and_then(|l| l.time_offsets().as_ref())
                .into_iter()
                .flatten()
            {
                offs.push_str(&format!(
                    "{clock} {} {}\n",
                    o.secs().unwrap_or(0),
                    o.nanosecs().unwrap_or(0)
                ));
            }
            if !offs.is_empty() {
                write_file("/proc/self/timens_offsets", offs.as_bytes())?;
            }
        }
        r
    };

    let ctx = InitCtx {
        spec,
        process,
        rootfs: &rootfs,
        rootfs_opts: RootfsOptions {
            cgroup_paths: cg_paths,
            user_namespace: new_userns || join.iter().any(|(t, _)| *t == LinuxNamespaceType::User),
            cgroup_namespace: new_cgroupns,
        },
        sync: &child_sock,
        fifo_fd: fifo_fd.as_raw_fd(),
        console_sock: console.as_ref().map(|c| c.as_raw_fd()),
        seccomp: seccomp.as_ref(),
        no_pivot: opts.no_pivot,
        preserve_fds: opts.preserve_fds,
        join,
        new_cgroupns,
        new_userns,
        new_mountns,
        parent_hooks,
        state: &st,
        init: opts.init,
    };
    // The runtime is non-dumpable before the clone so the child never is dumpable.
    process::set_non_dumpable().map_err(|e| ContainerError::Init(e.msg))?;
    let pid = clone_process(flags)?;
    if pid == 0 {
        process::init_main(&ctx);
    }
    drop(ctx);
    guard.child = pid;
    for (f, flag) in &restore {
        setns_fd(f, *flag, "back to the runtime's namespace")?;
    }
    drop(child_sock);
    drop(console);

    if new_userns {
        let l =
            linux.ok_or_else(|| ContainerError::Usage("user namespace without linux".into()))?;
        let uids = id_map(l.uid_mappings().as_deref().unwrap_or(&[]));
        let gids = id_map(l.gid_mappings().as_deref().unwrap_or(&[]));
        write_file(&format!("/proc/{pid}/uid_map"), uids.as_bytes())?;
        write_file(&format!("/proc/{pid}/gid_map"), gids.as_bytes())?;
    }
    if let Some(cg) = &guard.cgroup {
        cg.add_process(pid)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        write_file(
            &format!("/proc/{pid}/oom_score_adj"),
            adj.to_string().as_bytes(),
        )?;
    }
    let mut go = [msg::GO, 0, 0, 0, 0];
    go[1..5].copy_from_slice(&pid.to_le_bytes());
    parent_sock
        .send(&go)
        .map_err(sys("sync with container init"))?;
    st.pid = pid;

    let mut buf = vec![0u8; 65536];
    loop {
        let n = parent_sock
            .recv(&mut buf)
            .map_err(sys("sync with container init"))?;
        if n == 0 {
            return Err(ContainerError::Init(child_exit_reason(pid)).into());
        }
        match buf[0] {
            msg::HOOKS => {
                // "created", as runc reports it to these hooks (its exec fifo exists by
                // now) and as runtime-tools' hooks_stdin test expects.
                let json = st.oci_json(Status::Created);
                if let Some(h) = hooks_spec {
                    hooks::run("prestart", h.prestart().as_ref(), &json)
                        .map_err(ContainerError::from)?;
                    hooks::run("createRuntime", h.create_runtime().as_ref(), &json)
                        .map_err(ContainerError::from)?;
                }
                parent_sock
                    .send(&[msg::HOOKS_DONE])
                    .map_err(sys("sync with container init"))?;
            }
            msg::READY => break,
            msg::ERROR => return Err(recv_child_error(&buf[..n])),
            other => {
                return Err(ContainerError::Init(format!("unexpected sync message {other}")).into())
            }
        }
    }
    drop(buf);
    st.start_time = start_time(pid).unwrap_or(0);
    st.status = Status::Created;
    state::save(&opts.root, &st)?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    guard.armed = false;
    Ok(Created {
        pid,
        sync: parent_sock,
    })
}

fn child_exit_reason(pid: i32) -> String {
    let mut status = 0;
    // SAFETY: reaping our own child; status is a valid out pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r == pid {
        if libc::WIFSIGNALED(status) {
            return format!("exited on signal {}", libc::WTERMSIG(status));
        }
        return format!("exited with status {}", libc::WEXITSTATUS(status));
    }
    "exited without a word".into()
}

/// Clones the calling (single-threaded) process like fork, with namespace `flags`.
fn clone_process(flags: libc::c_int) -> Result<i32> {
    // SAFETY: with a NULL stack, clone behaves as fork: the child continues on a copy of our
    // stack. The runtime is single-threaded, so no lock is held by another thread.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if r < 0 {
        return Err(last_os(format!("clone (namespace flags {flags:#x})")));
    }
    Ok(r as i32)
}

fn write_pid_file(p: &Path, pid: i32) -> Result<()> {
    state::write_atomic(p, pid.to_string().as_bytes()).map_err(Error::from)
}

/// The start time (in clock ticks since boot) and the state letter of `pid`.
fn proc_stat(pid: i32) -> Option<(u64, u8)> {
    let s = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = s.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&s[close + 2..]).ok()?;
    let mut it = rest.split(' ');
    let st = it.next()?.bytes().next()?;
    // Field 3 is the state; field 22 the start time: 19 fields after the state.
    let start = it.nth(18)?.parse().ok()?;
    Some((start, st))
}

fn start_time(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|(s, _)| s)
}

/// Whether the init recorded in `st` is still alive (not gone, not a zombie, not reused).
fn alive(st: &State) -> bool {
    match proc_stat(st.pid) {
        Some((start, state)) => {
            state != b'Z' && state != b'X' && (st.start_time == 0 || start == st.start_time)
        }
        None => false,
    }
}

/// The container's live status.
pub fn status(root: &Path, st: &State) -> Status {
    if !alive(st) {
        return Status::Stopped;
    }
    if state::dir(root, &st.id).join(state::EXEC_FIFO).exists() {
        return Status::Created;
    }
    if st.status == Status::Paused {
        if let Ok(m) = cgroups::manager(st.cgroups_path.as_deref(), &st.id) {
            if m.freezer_state().is_ok_and(|f| f != FreezerState::Thawed) {
                return Status::Paused;
            }
        }
    }
    Status::Running
}

/// Loads container `id` and derives its live status.
pub fn load(root: &Path, id: &str) -> Result<(State, Status)> {
    let st = state::load(root, id)?;
    let s = status(root, &st);
    Ok((st, s))
}

/// runc's `state` output for one container.
pub fn state_json(st: &State, status: Status) -> String {
    let v = serde_json::json!({
        "ociVersion": st.oci_version,
        "id": st.id,
        "pid": if status == Status::Stopped { 0 } else { st.pid },
        "status": status.to_string(),
        "bundle": st.bundle,
        "rootfs": st.rootfs,
        "created": st.created,
        "owner": owner_name(st.owner),
        "annotations": st.annotations,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

fn owner_name(uid: u32) -> String {
    if uid == 0 {
        return "root".into();
    }
    uid.to_string()
}

/// Releases a created container's init into `execve`, marks it running and runs the
/// poststart hooks (their failure is reported as a warning, as the spec says).
pub fn start(root: &Path, id: &str) -> Result<()> {
    let (mut st, s) = load(root, id)?;
    if s != Status::Created {
        return Err(ContainerError::WrongState {
            id: id.into(),
            status: s.to_string(),
            operation: "start",
        }
        .into());
    }
    release(root, &st)?;
    st.status = Status::Running;
    state::save(root, &st)?;
    if let Some(h) = &st.hooks {
        hooks::run_warning(
            "poststart",
            h.poststart().as_ref(),
            &st.oci_json(Status::Running),
        );
    }
    Ok(())
}

/// Opens the exec fifo's read end (waking the init blocked on its write end), reads the
/// byte the init writes, and removes the fifo.
fn release(root: &Path, st: &State) -> Result<()> {
    let fifo = state::dir(root, &st.id).join(state::EXEC_FIFO);
    let c = process::path_cstr(fifo.as_os_str())
        .ok_or_else(|| ContainerError::Usage(format!("bad path {}", fifo.display())))?;
    // Non-blocking, so a dead init cannot hang us; then poll for its byte.
    // SAFETY: open with a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last_os(format!("open {}", fifo.display())));
    }
    // SAFETY: fd was just opened and is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: pfd is one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, 100) };
        if r > 0 {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(last_os("poll exec fifo"));
        }
        if !alive(st) {
            let _ = std::fs::remove_file(&fifo);
            return Err(
                ContainerError::Init("the container's init exited before start".into()).into(),
            );
        }
    }
    let mut b = [0u8; 1];
    // SAFETY: reads at most one byte into b.
    let n = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
    let _ = std::fs::remove_file(&fifo);
    if n != 1 {
        return Err(ContainerError::Init("the container's init exited before start".into()).into());
    }
    Ok(())
}

static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Waits for our child `pid`, forwarding the signals we get to it; returns its exit code
/// (128 + signal when killed).
pub fn wait_forwarding(pid: i32) -> Result<i32> {
    crate::idle::shed_clean_pages();
    FORWARD_TO.store(pid, Ordering::Relaxed);
    for sig in 1..32 {
        if matches!(
            sig,
            libc::SIGCHLD
                | libc::SIGKILL
                | libc::SIGSTOP
                | libc::SIGSEGV
                | libc::SIGBUS
                | libc::SIGILL
                | libc::SIGFPE
                | libc::SIGPIPE
        ) {
            continue;
        }
        // SAFETY: installing an async-signal-safe handler with SA_RESTART.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child; status is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(last_os("waitpid"));
        }
    }
    FORWARD_TO.store(0, Ordering::Relaxed);
    if libc::WIFSIGNALED(status) {
        Ok(128 + libc::WTERMSIG(status))
    } else {
        Ok(libc::WEXITSTATUS(status))
    }
}

/// `run`: create, start, and unless `detach`, wait for the init, remove the container and
/// return its exit code.
pub fn run(opts: &CreateOpts, detach: bool, keep: bool) -> Result<i32> {
    let created = create(opts)?;
    let st = state::load(&opts.root, &opts.id)?;
    if let Err(e) = release(&opts.root, &st) {
        let e = created.late_error().unwrap_or(e);
        let _ = delete(&opts.root, &opts.id, true);
        return Err(e);
    }
    let mut st = st;
    st.status = Status::Running;
    state::save(&opts.root, &st)?;
    if let Some(h) = &st.hooks {
        hooks::run_warning(
            "poststart",
            h.poststart().as_ref(),
            &st.oci_json(Status::Running),
        );
    }
    if detach {
        return Ok(0);
    }
    drop(st);
    let code = wait_forwarding(created.pid)?;
    if let Some(e) = created.late_error() {
        eprintln!("barge-runc: {e}");
    }
    if !keep {
        delete(&opts.root, &opts.id, true)?;
    }
    Ok(code)
}

/// Parses a signal given as a name (`KILL`, `SIGKILL`) or a number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            if let Some(rest) = name.strip_prefix("RTMIN+") {
                match rest.parse::<i32>() {
                    Ok(n) if n <= 30 => libc::SIGRTMIN() + n,
                    _ => return Err(ContainerError::Usage(format!("unknown signal {s:?}")).into()),
                }
            } else {
                return Err(ContainerError::Usage(format!("unknown signal {s:?}")).into());
            }
        }
    };
    Ok(n)
}

/// Sends `signal` to the init, or with `all` to every process of the container's cgroup.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let (st, s) = load(root, id)?;
    if s == Status::Stopped && !all {
        return Err(ContainerError::WrongState {
            id: id.into(),
            status: s.to_string(),
            operation: "kill",
        }
        .into());
    }
    if all {
        let m = cgroups::manager(st.cgroups_path.as_deref(), id)?;
        kill_cgroup(m.as_ref(), signal)?;
        return Ok(());
    }
    // SAFETY: sending a signal to the pid we recorded and just checked alive.
    if unsafe { libc::kill(st.pid, signal) } != 0 {
        return Err(last_os(format!("kill {} (pid {})", id, st.pid)));
    }
    Ok(())
}

fn kill_cgroup(m: &dyn CgroupManager, signal: i32) -> Result<()> {
    // A frozen task only acts on SIGKILL once thawed.
    let frozen = m.freezer_state().is_ok_and(|f| f != FreezerState::Thawed);
    for pid in m.pids()? {
        // SAFETY: signalling a process of the container's cgroup.
        unsafe { libc::kill(pid, signal) };
    }
    if frozen {
        let _ = m.thaw();
    }
    Ok(())
}

/// Waits up to `limit` for the init of `st` to be gone.
fn wait_gone(st: &State, limit: Duration) -> bool {
    let t = Instant::now();
    let mut nap = Duration::from_micros(200);
    while alive(st) {
        // Our own child (run): reap it.
        // SAFETY: non-blocking reap of a possible child.
        unsafe { libc::waitpid(st.pid, std::ptr::null_mut(), libc::WNOHANG) };
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
    true
}

/// Deletes the container: refuses one that is not stopped (created, running, paused) unless
/// `force` (then kills everything of it), removes the cgroup and the state dir, runs poststop
/// hooks. runc deletes a created container without `--force`; the runtime spec says "MUST
/// generate an error" and crun agrees, and containerd kills a created task before deleting it.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let (st, s) = load(root, id)?;
    if s != Status::Stopped && !force {
        return Err(ContainerError::WrongState {
            id: id.into(),
            status: s.to_string(),
            operation: "delete (use --force)",
        }
        .into());
    }
    let m = cgroups::manager(st.cgroups_path.as_deref(), id);
    if s != Status::Stopped {
        // SAFETY: signalling the recorded, alive init.
        unsafe { libc::kill(st.pid, libc::SIGKILL) };
    }
    if let Ok(m) = &m {
        if s != Status::Stopped || m.pids().is_ok_and(|p| !p.is_empty()) {
            let _ = m.kill_all();
        }
    }
    if !wait_gone(&st, Duration::from_secs(10)) {
        return Err(
            ContainerError::Init(format!("pid {} did not die after SIGKILL", st.pid)).into(),
        );
    }
    if let Ok(m) = &m {
        destroy_cgroup(m.as_ref());
    }
    if let Some(h) = &st.hooks {
        hooks::run_warning(
            "poststop",
            h.poststop().as_ref(),
            &st.oci_json(Status::Stopped),
        );
    }
    state::remove(root, id)?;
    Ok(())
}

/// Applies `resources` to a created, running or paused container's cgroup (`update`).
pub fn update(root: &Path, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let (st, s) = load(root, id)?;
    if s == Status::Stopped {
        return Err(ContainerError::WrongState {
            id: id.into(),
            status: s.to_string(),
            operation: "update",
        }
        .into());
    }
    let m = cgroups::manager(st.cgroups_path.as_deref(), id)?;
    m.apply(resources)?;
    Ok(())
}

/// Usage figures of the container's cgroup, and whether its status is still alive.
pub fn stats(root: &Path, id: &str) -> Result<(cgroups::CgroupStats, Status)> {
    let (st, s) = load(root, id)?;
    let m = cgroups::manager(st.cgroups_path.as_deref(), id)?;
    Ok((m.stats()?, s))
}

/// The pids of the container's cgroup.
pub fn ps(root: &Path, id: &str) -> Result<Vec<i32>> {
    let st = state::load(root, id)?;
    let m = cgroups::manager(st.cgroups_path.as_deref(), id)?;
    Ok(m.pids()?)
}

/// Freezes (`pause = true`) or thaws the container.
pub fn pause(root: &Path, id: &str, pause: bool) -> Result<()> {
    let (mut st, s) = load(root, id)?;
    let ok = if pause {
        s == Status::Running
    } else {
        s == Status::Paused
    };
    if !ok {
        return Err(ContainerError::WrongState {
            id: id.into(),
            status: s.to_string(),
            operation: if pause { "pause" } else { "resume" },
        }
        .into());
    }
    let m = cgroups::manager(st.cgroups_path.as_deref(), id)?;
    if pause {
        m.freeze()?;
        st.status = Status::Paused;
    } else {
        m.thaw()?;
        st.status = Status::Running;
    }
    state::save(root, &st)?;
    Ok(())
}

/// Every container under `root` with its live status.
pub fn list(root: &Path) -> Result<Vec<(State, Status)>> {
    let mut out = Vec::new();
    for id in state::list(root)? {
        match load(root, &id) {
            Ok(x) => out.push(x),
            Err(Error::State(StateError::NotFound(_))) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// What `exec` is asked.
#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    /// The state root.
    pub root: PathBuf,
    /// The container id.
    pub id: String,
    /// A process.json (OCI `process`) to run, instead of `args` and the flags below.
    pub process: Option<PathBuf>,
    /// The command and its arguments.
    pub args: Vec<String>,
    /// Allocate a pty (the master goes to `console_socket`).
    pub tty: bool,
    /// Where to send the pty master.
    pub console_socket: Option<PathBuf>,
    /// Do not wait for the process.
    pub detach: bool,
    /// Where to write the process' pid.
    pub pid_file: Option<PathBuf>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Extra environment (`K=V`).
    pub env: Vec<String>,
    /// `uid[:gid]`.
    pub user: Option<String>,
    /// Extra capabilities.
    pub caps: Vec<String>,
    /// Set no_new_privs.
    pub no_new_privs: bool,
    /// Extra fds (3..3+N) to pass.
    pub preserve_fds: i32,
    /// Additional gids.
    pub additional_gids: Vec<u32>,
    /// The pty's size (rows, columns) before the process runs (with `tty`).
    pub console_size: Option<(u16, u16)>,
}

fn exec_process(opts: &ExecOpts, spec: &Spec) -> Result<Process> {
    if let Some(p) = &opts.process {
        let data = std::fs::read(p).map_err(|source| Error::Io {
            path: p.clone(),
            source,
        })?;
        let proc: Process = serde_json::from_slice(&data).map_err(|e| {
            ContainerError::Usage(format!("{}: invalid process JSON: {e}", p.display()))
        })?;
        if !proc.cwd().is_absolute() {
            return Err(ContainerError::Usage(format!(
                "{}: cwd {:?} is not absolute",
                p.display(),
                proc.cwd()
            ))
            .into());
        }
        return Ok(proc);
    }
    let mut p = spec.process().clone().unwrap_or_default();
    if opts.args.is_empty() {
        return Err(ContainerError::Usage("exec: no command given".into()).into());
    }
    p.set_args(Some(opts.args.clone()));
    p.set_terminal(Some(opts.tty));
    if let (Some((rows, cols)), true) = (opts.console_size, opts.tty) {
        let b = oci_spec::runtime::BoxBuilder::default()
            .height(u64::from(rows))
            .width(u64::from(cols))
            .build()
            .map_err(|e| ContainerError::Usage(format!("--console-size: {e}")))?;
        p.set_console_size(Some(b));
    }
    if let Some(c) = &opts.cwd {
        if !c.is_absolute() {
            return Err(ContainerError::Usage(format!("--cwd {c:?} is not absolute")).into());
        }
        p.set_cwd(c.clone());
    }
    if !opts.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(opts.env.iter().cloned());
        p.set_env(Some(env));
    }
    if let Some(u) = &opts.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let uid: u32 = uid
            .parse()
            .map_err(|_| ContainerError::Usage(format!("--user {u:?}: uid must be numeric")))?;
        let gid: u32 = match gid {
            Some(g) => g
                .parse()
                .map_err(|_| ContainerError::Usage(format!("--user {u:?}: gid must be numeric")))?,
            None => 0,
        };
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid);
        p.set_user(user);
    }
    if !opts.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(opts.additional_gids.clone()));
        p.set_user(user);
    }
    if opts.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !opts.caps.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_default();
        for name in &opts.caps {
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::Value::String(name.clone())).map_err(|_| {
                    ContainerError::Usage(format!("--cap: unknown capability {name:?}"))
                })?;
            for set in [
                c.bounding().clone(),
                c.effective().clone(),
                c.permitted().clone(),
            ]
            .iter()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => c.set_bounding(Some(s)),
                    1 => c.set_effective(Some(s)),
                    _ => c.set_permitted(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(c));
    }
    Ok(p)
}

/// Runs a new process in a running container: joins its namespaces and cgroup, applies the
/// process' user, capabilities, rlimits and the container's seccomp profile, and execs.
/// Without `detach` waits and returns the exit code.
pub fn exec(opts: &ExecOpts) -> Result<i32> {
    let (st, s) = load(&opts.root, &opts.id)?;
    if !matches!(s, Status::Running | Status::Created) {
        return Err(ContainerError::WrongState {
            id: opts.id.clone(),
            status: s.to_string(),
            operation: "exec",
        }
        .into());
    }
    let data = std::fs::read(st.bundle.join("config.json")).map_err(|source| Error::Io {
        path: st.bundle.join("config.json"),
        source,
    })?;
    let spec: Spec = serde_json::from_slice(&data)
        .map_err(|e| crate::spec::SpecError::Malformed(e.to_string()))?;
    drop(data);
    let p = exec_process(opts, &spec)?;
    let linux = spec.linux().as_ref();
    let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::seccomp::compile_cached(
            s,
            &opts.root.join(SECCOMP_CACHE),
        )?),
        None => None,
    };
    let terminal = p.terminal().unwrap_or(false);
    let console = match (&opts.console_socket, terminal) {
        (Some(c), true) => Some(connect_console(c)?),
        (None, true) => {
            return Err(ContainerError::Usage("--tty requires --console-socket".into()).into())
        }
        _ => None,
    };
    let m = cgroups::manager(st.cgroups_path.as_deref(), &opts.id)?;

    // Open every namespace of the init before anything changes; the user one first.
    let mut nss: Vec<(LinuxNamespaceType, std::fs::File)> = Vec::new();
    let mut types: Vec<LinuxNamespaceType> = linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .map(|n| n.typ())
        .collect();
    types.sort_by_key(|t| *t != LinuxNamespaceType::User);
    let mut pid_ns = None;
    for t in types {
        let path = format!("/proc/{}/ns/{}", st.pid, process::ns_name(t));
        let f = std::fs::File::open(&path).map_err(sys(format!("open {path}")))?;
        if t == LinuxNamespaceType::Pid {
            pid_ns = Some(f);
        } else {
            nss.push((t, f));
        }
    }
    // Joining the pid namespace affects only our children: join it here, fork into it.
    if let Some(f) = &pid_ns {
        setns_fd(f, libc::CLONE_NEWPID, "pid")?;
    }
    let (parent_sock, child_sock) = SyncSock::pair().map_err(sys("socketpair"))?;
    let caps = crate::caps::CapMasks::from_spec(p.capabilities().as_ref());
    let keep = [child_sock.0.as_raw_fd()];
    let plan = ExecPlan {
        process: &p,
        caps,
        seccomp: seccomp.as_ref(),
        preserve_fds: opts.preserve_fds,
        keep: &keep,
        state_json: st.oci_json(Status::Running),
    };
    process::set_non_dumpable().map_err(|e| ContainerError::Init(e.msg))?;
    // SAFETY: the runtime is single-threaded; the child only runs our own code until execve.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(last_os("fork"));
    }
    if pid == 0 {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            exec_child(
                &child_sock,
                &nss,
                console.as_ref().map(|c| c.as_raw_fd()),
                &plan,
            )
        }));
        let e = r.unwrap_or_else(|_| StepError::new("exec", "panicked"));
        child_sock.fail(&e);
    }
    drop(child_sock);
    drop(console);
    drop(nss);
    let reap = |e: Error| -> Error {
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        e
    };
    if let Err(e) = m.add_process(pid) {
        return Err(reap(e.into()));
    }
    let mut go = [msg::GO, 0, 0, 0, 0];
    go[1..5].copy_from_slice(&pid.to_le_bytes());
    if let Err(e) = parent_sock.send(&go) {
        return Err(reap(sys("sync with exec process")(e)));
    }
    let mut buf = vec![0u8; 65536];
    let n = parent_sock
        .recv(&mut buf)
        .map_err(|e| reap(sys("sync with exec process")(e)))?;
    if n > 0 && buf[0] == msg::ERROR {
        let e = recv_child_error(&buf[..n]);
        // SAFETY: reaping our own child, which has exited after reporting.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        return Err(e);
    }
    drop(buf);
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, pid)?;
    }
    if opts.detach {
        return Ok(0);
    }
    drop(spec);
    wait_forwarding(pid)
}

fn exec_child(
    sync: &SyncSock,
    nss: &[(LinuxNamespaceType, std::fs::File)],
    console: Option<RawFd>,
    plan: &ExecPlan<'_>,
) -> StepError {
    let mut buf = [0u8; 8];
    match sync.recv(&mut buf) {
        Ok(n) if n >= 1 && buf[0] == msg::GO => {}
        _ => return StepError::new("sync with parent", "parent went away"),
    }
    for (t, f) in nss {
        // SAFETY: f is an open namespace fd of the container's init.
        if unsafe { libc::setns(f.as_raw_fd(), process::ns_flag(*t)) } != 0 {
            return StepError::new(
                "setns",
                format!(
                    "{}: {}",
                    process::ns_name(*t),
                    std::io::Error::last_os_error()
                ),
            );
        }
    }
    if let Some(c) = console {
        let size = plan
            .process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        if let Err(e) = process::setup_console(c, size) {
            return e;
        }
    }
    match process::prepare_exec(plan) {
        Ok(a) => process::do_exec(&a, plan.seccomp, false),
        Err(e) => e,
    }
}
/// The annotations type of a state, for callers.
pub type Annotations = HashMap<String, String>;
