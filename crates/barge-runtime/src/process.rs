//! The container side of create and exec: what runs in the cloned init (or the forked exec
//! process) between clone and `execve`. Every step that fails is reported to the parent over
//! the sync socket as a message naming the step, then the process exits.
//!
//! The process is non-dumpable from its first instruction until `execve`, so nothing in the
//! container can ptrace it or open its /proc/<pid>/exe (the runtime's binary) or fds.

use std::ffi::{CString, OsStr};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Process, Spec};

use crate::caps::{self, CapMasks};
use crate::rootfs::{self, RootfsOptions};
use crate::seccomp::SeccompFilter;

/// A step of the container's setup failed.
#[derive(Debug)]
pub(crate) struct StepError {
    /// The step, e.g. `pivot_root`.
    pub step: &'static str,
    /// What went wrong.
    pub msg: String,
}

impl StepError {
    pub(crate) fn new(step: &'static str, msg: impl std::fmt::Display) -> Self {
        StepError {
            step,
            msg: msg.to_string(),
        }
    }
    fn os(step: &'static str) -> Self {
        Self::new(step, std::io::Error::last_os_error())
    }
}

type StepResult<T = ()> = Result<T, StepError>;

/// One end of the parent/child sync socket (SOCK_SEQPACKET: message boundaries kept).
#[derive(Debug)]
pub(crate) struct SyncSock(pub OwnedFd);

/// Message tags over the sync socket.
pub(crate) mod msg {
    /// Parent -> child: continue (followed by the child's host pid, 4 bytes LE).
    pub const GO: u8 = b'G';
    /// Child -> parent: run prestart/createRuntime hooks now.
    pub const HOOKS: u8 = b'H';
    /// Parent -> child: hooks done.
    pub const HOOKS_DONE: u8 = b'h';
    /// Child -> parent: set up, about to block on the exec fifo.
    pub const READY: u8 = b'R';
    /// Child -> parent: failed (followed by the message).
    pub const ERROR: u8 = b'E';
}

impl SyncSock {
    /// A connected pair, both ends close-on-exec.
    pub(crate) fn pair() -> std::io::Result<(SyncSock, SyncSock)> {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints for the kernel to fill.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        unsafe {
            Ok((
                SyncSock(OwnedFd::from_raw_fd(fds[0])),
                SyncSock(OwnedFd::from_raw_fd(fds[1])),
            ))
        }
    }

    /// Sends one message.
    pub(crate) fn send(&self, buf: &[u8]) -> std::io::Result<()> {
        loop {
            // SAFETY: buf is valid for buf.len() bytes.
            let r = unsafe {
                libc::send(
                    self.0.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one message into `buf`; 0 means the peer is gone.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            // SAFETY: buf is valid for writes of buf.len() bytes.
            let r =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Reports `err` to the parent and exits the process. Never returns.
    pub(crate) fn fail(&self, err: &StepError) -> ! {
        let m = format!("{}: {}", err.step, err.msg);
        let mut buf = Vec::with_capacity(m.len() + 1);
        buf.push(msg::ERROR);
        buf.extend_from_slice(&m.as_bytes()[..m.len().min(60_000)]);
        let _ = self.send(&buf);
        // SAFETY: _exit is always safe; no destructors of the parent's state may run here.
        unsafe { libc::_exit(1) }
    }
}

/// Makes the calling process non-dumpable (see the module docs).
pub(crate) fn set_non_dumpable() -> StepResult {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(StepError::os("prctl(PR_SET_DUMPABLE)"));
    }
    Ok(())
}

/// The file name under /proc/<pid>/ns of a namespace type.
pub(crate) fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The CLONE_NEW* flag of a namespace type.
pub(crate) fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80, // CLONE_NEWTIME
    }
}

/// Joins the namespace at `path` (a /proc/<pid>/ns/* file or a bind mount of one).
pub(crate) fn setns_path(path: &Path, t: LinuxNamespaceType) -> StepResult {
    let f = std::fs::File::open(path)
        .map_err(|e| StepError::new("setns", format!("{}: {e}", path.display())))?;
    // SAFETY: f is an open namespace fd; setns only reads it.
    if unsafe { libc::setns(f.as_raw_fd(), ns_flag(t)) } != 0 {
        return Err(StepError::new(
            "setns",
            format!(
                "{} namespace {}: {}",
                ns_name(t),
                path.display(),
                std::io::Error::last_os_error()
            ),
        ));
    }
    Ok(())
}

/// Opens a pty inside the container, makes its slave the controlling terminal and stdio,
/// and sends the master to `console_sock` with SCM_RIGHTS (the slave's name as payload).
pub(crate) fn setup_console(console_sock: RawFd, size: Option<(u16, u16)>) -> StepResult {
    // SAFETY: open with a NUL-terminated path; the result is checked.
    let master = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        return Err(StepError::os("console: open /dev/ptmx"));
    }
    // SAFETY: master is a fresh fd we own.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let mut unlock: libc::c_int = 0;
    let mut n: libc::c_uint = 0;
    // SAFETY: ioctls on a ptmx fd with pointers to properly typed locals.
    unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) != 0 {
            return Err(StepError::os("console: unlockpt"));
        }
        if libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) != 0 {
            return Err(StepError::os("console: ptsname"));
        }
    }
    // SAFETY: ioctl TIOCGPTPEER returns a new fd for the slave, checked below.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY,
        )
    };
    if slave < 0 {
        return Err(StepError::os("console: open pty slave"));
    }
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize struct that lives across the call.
        unsafe { libc::ioctl(slave, libc::TIOCSWINSZ, &ws) };
    }
    // SAFETY: setsid/dup2/ioctl on fds we own; results checked.
    unsafe {
        libc::setsid();
        for fd in 0..3 {
            if libc::dup2(slave, fd) < 0 {
                return Err(StepError::os("console: dup2"));
            }
        }
        if slave > 2 {
            libc::close(slave);
        }
        if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(StepError::os("console: TIOCSCTTY"));
        }
    }
    send_fd(
        console_sock,
        master.as_raw_fd(),
        format!("/dev/pts/{n}").as_bytes(),
    )
    .map_err(|e| StepError::new("console: send master over --console-socket", e))
}

/// Sends `fd` over the unix socket `sock` with `name` as the payload (runc's format).
pub(crate) fn send_fd(sock: RawFd, fd: RawFd, name: &[u8]) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd];
    let iov = [IoSlice::new(name)];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None)
        .map(|_| ())
        .map_err(std::io::Error::from)
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType as R;
    match t {
        R::RlimitCpu => libc::RLIMIT_CPU,
        R::RlimitFsize => libc::RLIMIT_FSIZE,
        R::RlimitData => libc::RLIMIT_DATA,
        R::RlimitStack => libc::RLIMIT_STACK,
        R::RlimitCore => libc::RLIMIT_CORE,
        R::RlimitRss => libc::RLIMIT_RSS,
        R::RlimitNproc => libc::RLIMIT_NPROC,
        R::RlimitNofile => libc::RLIMIT_NOFILE,
        R::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        R::RlimitAs => libc::RLIMIT_AS,
        R::RlimitLocks => libc::RLIMIT_LOCKS,
        R::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        R::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        R::RlimitNice => libc::RLIMIT_NICE,
        R::RlimitRtprio => libc::RLIMIT_RTPRIO,
        R::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// How the process must look when it calls `execve`.
pub(crate) struct ExecPlan<'a> {
    /// The spec's (or exec's) process.
    pub process: &'a Process,
    /// The five capability sets.
    pub caps: CapMasks,
    /// The seccomp filter, if any.
    pub seccomp: Option<&'a SeccompFilter>,
    /// fds 3..3+preserve_fds stay open across execve.
    pub preserve_fds: i32,
    /// Other fds (close-on-exec) that must stay open until execve.
    pub keep: &'a [RawFd],
    /// The container's state JSON, sent with a seccomp notify listener.
    pub state_json: String,
}

/// What `execve` needs, computed before blocking on the exec fifo.
pub(crate) struct ExecArgs {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    nnp: bool,
    state_json: String,
}

fn cstr(s: &[u8], what: &'static str) -> StepResult<CString> {
    CString::new(s).map_err(|_| StepError::new(what, "contains a NUL byte"))
}

/// Everything from rlimits to no_new_privs, in runc's order: rlimits, close every other fd
/// and enter the cwd (both before seccomp: a profile may deny close_range or chdir), seccomp
/// (when noNewPrivileges is off it needs CAP_SYS_ADMIN, so before the drop), bounding set,
/// user and groups, capabilities, cwd again if root was refused it, the check that the cwd is
/// inside the root, umask, no_new_privs; then resolves args[0] in the container's PATH.
pub(crate) fn prepare_exec(plan: &ExecPlan<'_>) -> StepResult<ExecArgs> {
    let p = plan.process;
    for rl in p.rlimits().iter().flatten() {
        let lim = libc::rlimit {
            rlim_cur: rl.soft(),
            rlim_max: rl.hard(),
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        if unsafe { libc::setrlimit(rlimit_resource(rl.typ()), &lim) } != 0 {
            return Err(StepError::new(
                "setrlimit",
                format!(
                    "process.rlimits {} soft {} hard {}: {}",
                    serde_json::to_string(&rl.typ()).unwrap_or_default(),
                    rl.soft(),
                    rl.hard(),
                    std::io::Error::last_os_error()
                ),
            ));
        }
    }
    let nnp = p.no_new_privileges().unwrap_or(false);
    // Other fds are closed and the cwd entered before the filter goes in: the profile may
    // block close_range or chdir. The cwd is entered as root (the user may lack search
    // permission on the path only root can cross); on EACCES it is retried as the user.
    close_fds(3 + plan.preserve_fds.max(0), plan.keep)?;
    let cwd = cstr(p.cwd().as_os_str().as_bytes(), "process.cwd")?;
    let chdir_failed = |e: std::io::Error| {
        StepError::new("chdir", format!("process.cwd {}: {e}", p.cwd().display()))
    };
    // SAFETY: chdir with a NUL-terminated path.
    let cwd_done = unsafe { libc::chdir(cwd.as_ptr()) } == 0;
    if !cwd_done {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EACCES) {
            return Err(chdir_failed(e));
        }
    }
    if cwd_done {
        check_cwd_in_root(p, false)?;
    }
    let filtered = plan.seccomp.is_some() && !nnp;
    if let (Some(f), false) = (plan.seccomp, nnp) {
        load_seccomp(f, &plan.state_json)?;
    }
    caps::drop_bounding(plan.caps.bounding)
        .map_err(|e| StepError::new("drop capability bounding set", e))?;
    let u = p.user();
    // SAFETY: prctl/setgroups/setresgid/setresuid with valid arguments; results checked.
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(StepError::os("prctl(PR_SET_KEEPCAPS)"));
        }
        let groups: &[u32] = u.additional_gids().as_deref().unwrap_or(&[]);
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(StepError::new(
                "setgroups",
                format!("{groups:?}: {}", std::io::Error::last_os_error()),
            ));
        }
        if libc::setresgid(u.gid(), u.gid(), u.gid()) != 0 {
            return Err(StepError::new(
                "setgid",
                format!("{}: {}", u.gid(), std::io::Error::last_os_error()),
            ));
        }
        if libc::setresuid(u.uid(), u.uid(), u.uid()) != 0 {
            return Err(StepError::new(
                "setuid",
                format!("{}: {}", u.uid(), std::io::Error::last_os_error()),
            ));
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0 {
            return Err(StepError::os("prctl(PR_SET_KEEPCAPS)"));
        }
    }
    let c = plan.caps;
    caps::capset(c.effective, c.permitted, c.inheritable)
        .map_err(|e| StepError::new("set capabilities", e))?;
    // Ambient needs each cap in both permitted and inheritable; the rest is dropped as runc
    // does rather than granting inheritable behind the spec's back.
    caps::raise_ambient(c.ambient & c.permitted & c.inheritable)
        .map_err(|e| StepError::new("raise ambient capabilities", e))?;

    // SAFETY: chdir with a NUL-terminated path.
    if !cwd_done && unsafe { libc::chdir(cwd.as_ptr()) } != 0 {
        return Err(chdir_failed(std::io::Error::last_os_error()));
    }
    if !cwd_done {
        check_cwd_in_root(p, filtered)?;
    }
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(u.umask().unwrap_or(0o022) as libc::mode_t) };
    if nnp {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(StepError::os("prctl(PR_SET_NO_NEW_PRIVS)"));
        }
    }

    let args = p.args().as_deref().unwrap_or(&[]);
    let arg0 = args
        .first()
        .ok_or_else(|| StepError::new("exec", "process.args is empty"))?;
    let env = p.env().as_deref().unwrap_or(&[]);
    let path = resolve_exe(arg0, env)?;
    let argv = args
        .iter()
        .map(|a| cstr(a.as_bytes(), "process.args"))
        .collect::<StepResult<Vec<_>>>()?;
    let mut envp = env
        .iter()
        .map(|a| cstr(a.as_bytes(), "process.env"))
        .collect::<StepResult<Vec<_>>>()?;
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        // As runc: HOME from the container's /etc/passwd, else "/".
        let home = home_of(u.uid()).unwrap_or_else(|| "/".into());
        envp.push(cstr(format!("HOME={home}").as_bytes(), "HOME")?);
    }
    Ok(ExecArgs {
        path,
        argv,
        envp,
        nnp,
        state_json: plan.state_json.clone(),
    })
}

/// CVE-2024-21626: a cwd reached through a leaked host fd (/proc/self/fd/N) lies outside the
/// root; getcwd then fails or answers "(unreachable)...". Under a seccomp filter (`filtered`)
/// that denies getcwd the check is skipped: every inherited fd is closed by then.
fn check_cwd_in_root(p: &Process, filtered: bool) -> StepResult {
    let mut buf = [0u8; 4096];
    // SAFETY: getcwd writes at most buf.len() bytes into buf.
    let g = unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) };
    if g.is_null()
        && filtered
        && matches!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EPERM) | Some(libc::ENOSYS)
        )
    {
        return Ok(());
    }
    if g.is_null() || buf[0] != b'/' {
        return Err(StepError::new(
            "chdir",
            format!(
                "process.cwd {}: outside the container's root",
                p.cwd().display()
            ),
        ));
    }
    Ok(())
}

/// Loads the filter; a notify listener goes to the profile's listenerPath with the state.
fn load_seccomp(f: &SeccompFilter, state_json: &str) -> StepResult {
    let listener = f.load().map_err(|e| StepError::new("seccomp", e))?;
    if let Some(fd) = listener {
        use std::os::fd::AsFd;
        f.send_listener(fd.as_fd(), state_json)
            .map_err(|e| StepError::new("seccomp listener", e))?;
    }
    Ok(())
}

/// Closes every fd from `from` up, except those in `keep` (which are close-on-exec and
/// vanish at execve).
fn close_fds(from: RawFd, keep: &[RawFd]) -> StepResult {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&k| k >= from).collect();
    keep.sort_unstable();
    let mut start = from as libc::c_uint;
    for k in keep {
        let k = k as libc::c_uint;
        if k > start {
            close_range(start, k - 1)?;
        }
        start = k + 1;
    }
    close_range(start, libc::c_uint::MAX)
}

fn close_range(first: libc::c_uint, last: libc::c_uint) -> StepResult {
    // SAFETY: close_range only closes fds of this process; none is referenced afterwards
    // except the kept ones outside the range.
    if unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    // Before Linux 5.9, or under an outer seccomp profile that predates close_range (ENOSYS or
    // EPERM): close what /proc/self/fd lists instead, as runc falls back to.
    if !matches!(err.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) {
        return Err(StepError::new("close_range", err));
    }
    let fds: Vec<libc::c_uint> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| StepError::new("close fds: read /proc/self/fd", e))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd >= first && fd <= last)
        .collect();
    for fd in fds {
        // SAFETY: as above; the directory fd read_dir used is already closed (EBADF ignored).
        unsafe { libc::close(fd as RawFd) };
    }
    Ok(())
}

/// The home directory of `uid` in the container's /etc/passwd.
fn home_of(uid: u32) -> Option<String> {
    let data = std::fs::read_to_string("/etc/passwd").ok()?;
    data.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok()? == uid).then(|| f[5].to_string())
    })
}

/// An errno as Go prints it ("is a directory", "permission denied"): docker clients map
/// these words to exit codes 126/127.
fn go_errno_text(e: &std::io::Error) -> String {
    let t = e.to_string();
    let t = match t.find(" (os error") {
        Some(i) => &t[..i],
        None => &t[..],
    };
    let mut c = t.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Finds `arg0` as execve would with the container's PATH (from `env`).
fn resolve_exe(arg0: &str, env: &[String]) -> StepResult<CString> {
    // As Go's exec.LookPath: access(X_OK), and a directory is EISDIR (so "/etc" reads
    // "is a directory", exit code 126 for docker clients, not a stale errno).
    let executable = |p: &[u8]| -> std::result::Result<CString, std::io::Error> {
        let c = CString::new(p).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: c is NUL-terminated; stat fills st on success.
        if unsafe { libc::stat(c.as_ptr(), st.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: stat succeeded, so st is initialized.
        if unsafe { st.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
        }
        // SAFETY: as above.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(c)
    };
    if arg0.contains('/') {
        return executable(arg0.as_bytes())
            .map_err(|e| StepError::new("exec", format!("{arg0:?}: {}", go_errno_text(&e))));
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut buf = Vec::with_capacity(64);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        buf.clear();
        buf.extend_from_slice(dir.as_bytes());
        buf.push(b'/');
        buf.extend_from_slice(arg0.as_bytes());
        if let Ok(c) = executable(&buf) {
            return Ok(c);
        }
    }
    Err(StepError::new(
        "exec",
        format!("{arg0:?}: executable file not found in $PATH"),
    ))
}

/// Loads a late seccomp filter (noNewPrivileges on), restores SIGPIPE and calls execve.
/// With `init`, forks first and stays behind as the container's minimal init
/// ([`crate::init`]); only the child goes on to execve. Returns only on failure.
pub(crate) fn do_exec(a: &ExecArgs, seccomp: Option<&SeccompFilter>, init: bool) -> StepError {
    // Ignored signals and the signal mask survive execve: whoever started the runtime (Rust
    // ignores SIGPIPE; a monitor may ignore SIGTERM/SIGINT/SIGHUP and block SIGCHLD) must
    // not leak that into the container, whose process starts with every signal at its
    // default and none blocked (a shell cannot even trap a signal ignored at entry).
    // An init keeps every signal blocked from here on so none sent before it waits is lost
    // (an ignored one would be discarded, hence the defaults first).
    if init {
        crate::init::block_all();
    }
    // SAFETY: resetting dispositions of this single-threaded process.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
    if let (Some(f), true) = (seccomp, a.nnp) {
        if let Err(e) = load_seccomp(f, &a.state_json) {
            return e;
        }
    }
    if init {
        if let Err(e) = crate::init::fork_under_init() {
            return e;
        }
    }
    // SAFETY: emptying the signal mask of this single-threaded process.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    let mut argv: Vec<*const libc::c_char> = a.argv.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = a.envp.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: path, argv and envp are NUL-terminated strings in NULL-terminated arrays that
    // outlive the call.
    unsafe { libc::execve(a.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    StepError::new(
        "exec",
        format!(
            "{}: {}",
            a.path.to_string_lossy(),
            go_errno_text(&std::io::Error::last_os_error())
        ),
    )
}

/// Everything the cloned init needs (borrowed from the parent's memory, which the clone
/// shares copy-on-write).
pub(crate) struct InitCtx<'a> {
    pub spec: &'a Spec,
    pub process: &'a Process,
    pub rootfs: &'a Path,
    pub rootfs_opts: RootfsOptions,
    pub sync: &'a SyncSock,
    pub fifo_fd: RawFd,
    pub console_sock: Option<RawFd>,
    pub seccomp: Option<&'a SeccompFilter>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    /// Namespaces the init joins by path (user first).
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    pub new_cgroupns: bool,
    pub new_userns: bool,
    pub new_mountns: bool,
    /// The parent runs prestart/createRuntime hooks when told.
    pub parent_hooks: bool,
    /// The container state (pid filled in by the child) for createContainer and
    /// startContainer hooks.
    pub state: &'a crate::state::State,
    /// Stay as a minimal PID 1 and run the process as its child (`--init`).
    pub init: bool,
}

/// The init's whole life up to `execve`. Never returns.
pub(crate) fn init_main(ctx: &InitCtx<'_>) -> ! {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init_steps(ctx)));
    let err = match r {
        Ok(e) => e,
        Err(_) => StepError::new("init", "panicked"),
    };
    ctx.sync.fail(&err)
}

fn init_steps(ctx: &InitCtx<'_>) -> StepError {
    match init_setup(ctx) {
        Ok(a) => do_exec(&a, ctx.seccomp, ctx.init),
        Err(e) => e,
    }
}

fn init_setup(ctx: &InitCtx<'_>) -> StepResult<ExecArgs> {
    set_non_dumpable()?;
    // Die with the parent until it has recorded us; cleared before READY.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let mut buf = [0u8; 8];
    let n = ctx
        .sync
        .recv(&mut buf)
        .map_err(|e| StepError::new("sync with parent", e))?;
    if n < 5 || buf[0] != msg::GO {
        return Err(StepError::new("sync with parent", "parent went away"));
    }
    let host_pid = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let mut state = ctx.state.clone();
    state.pid = host_pid;

    for (t, path) in &ctx.join {
        setns_path(path, *t)?;
    }
    if ctx.new_userns {
        // SAFETY: plain id changes; the parent has written the maps.
        unsafe {
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(StepError::os("become root in the user namespace"));
            }
        }
    }
    if ctx.new_cgroupns {
        // After the parent put us in the container's cgroup, so that it is the ns root.
        // SAFETY: unshare with a namespace flag.
        if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } != 0 {
            return Err(StepError::os("unshare(CLONE_NEWCGROUP)"));
        }
    }
    if let Some(h) = ctx.spec.hostname() {
        nix::unistd::sethostname(h).map_err(|e| StepError::new("sethostname", e))?;
    }
    if let Some(d) = ctx.spec.domainname() {
        let c = cstr(d.as_bytes(), "domainname")?;
        // SAFETY: setdomainname reads len bytes of a valid string.
        if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } != 0 {
            return Err(StepError::os("setdomainname"));
        }
    }
    if ctx.new_mountns {
        rootfs::prepare_rootfs(ctx.spec, ctx.rootfs, &ctx.rootfs_opts)
            .map_err(|e| StepError::new("prepare rootfs", e))?;
    }
    if ctx.parent_hooks {
        ctx.sync
            .send(&[msg::HOOKS])
            .map_err(|e| StepError::new("sync with parent", e))?;
        let n = ctx
            .sync
            .recv(&mut buf)
            .map_err(|e| StepError::new("sync with parent", e))?;
        if n < 1 || buf[0] != msg::HOOKS_DONE {
            return Err(StepError::new("sync with parent", "parent went away"));
        }
    }
    let hooks = ctx.spec.hooks().as_ref();
    if let Some(h) = hooks {
        if h.create_container().is_some() {
            let json = state.oci_json(crate::state::Status::Creating);
            crate::hooks::run("createContainer", h.create_container().as_ref(), &json)
                .map_err(|e| StepError::new("createContainer hook", e))?;
        }
    }
    if ctx.no_pivot {
        rootfs::move_root_no_pivot(ctx.rootfs)
            .map_err(|e| StepError::new("move root (--no-pivot)", e))?;
    } else {
        rootfs::pivot_root(ctx.rootfs).map_err(|e| StepError::new("pivot_root", e))?;
    }
    if let Some(sysctl) = ctx.spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctl {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            std::fs::write(&path, v)
                .map_err(|e| StepError::new("sysctl", format!("linux.sysctl.{k}={v:?}: {e}")))?;
        }
    }
    if let Some(sock) = ctx.console_sock {
        let size = ctx
            .process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        setup_console(sock, size)?;
        // SAFETY: fd 0 is the pty slave setup_console just installed; it stays open.
        let slave = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
        rootfs::mount_console_fd(slave).map_err(|e| StepError::new("mount /dev/console", e))?;
        // SAFETY: the console socket is not needed past this point.
        unsafe { libc::close(sock) };
    }
    rootfs::finalize_rootfs(ctx.spec).map_err(|e| StepError::new("finalize rootfs", e))?;

    let keep = [ctx.sync.0.as_raw_fd(), ctx.fifo_fd];
    let plan = ExecPlan {
        process: ctx.process,
        caps: CapMasks::from_spec(ctx.process.capabilities().as_ref()),
        seccomp: ctx.seccomp,
        preserve_fds: ctx.preserve_fds,
        keep: &keep,
        state_json: if ctx.seccomp.is_some_and(|f| f.uses_notify()) {
            state.oci_json(crate::state::Status::Creating)
        } else {
            String::new()
        },
    };
    let args = prepare_exec(&plan)?;

    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
    ctx.sync
        .send(&[msg::READY])
        .map_err(|e| StepError::new("sync with parent", e))?;
    // Block until `start` opens the fifo for reading.
    let fifo = format!("/proc/self/fd/{}\0", ctx.fifo_fd);
    // SAFETY: fifo is NUL-terminated.
    let w = unsafe { libc::open(fifo.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if w < 0 {
        return Err(StepError::os("open exec fifo"));
    }
    // The startContainer hooks run before the byte is written: `start` runs the poststart
    // hooks once it reads it, and the spec orders those after these.
    if let Some(h) = hooks {
        if h.start_container().is_some() {
            let json = state.oci_json(crate::state::Status::Running);
            crate::hooks::run("startContainer", h.start_container().as_ref(), &json)
                .map_err(|e| StepError::new("startContainer hook", e))?;
        }
    }
    // SAFETY: w is an open fd; writes one byte from a static buffer.
    unsafe { libc::write(w, b"0".as_ptr().cast(), 1) };
    Ok(args)
}

/// A path as a C string (for syscalls).
pub(crate) fn path_cstr(p: &OsStr) -> Option<CString> {
    CString::new(p.as_bytes()).ok()
}
