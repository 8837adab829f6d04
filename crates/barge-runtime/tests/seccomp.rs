//! Seccomp: profiles compiled in the test process, loaded in forked children (a filter
//! cannot be removed, so it must never land in the test harness itself).

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use barge_runtime::seccomp::{compile, docker_default_profile, flag, SeccompError};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("test profile is valid JSON for oci-spec")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The errno of the last failed libc call.
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Fails the child with `code` unless `cond`.
fn ensure(cond: bool, code: i32) -> Result<(), i32> {
    if cond {
        Ok(())
    } else {
        Err(code)
    }
}

/// Forks; the child runs `f` and exits with 0 on `Ok`, the error's code otherwise (100 on a
/// panic). Returns the child's pid without waiting.
fn spawn_child(f: impl FnOnce() -> Result<(), i32>) -> Pid {
    // SAFETY: the child only runs `f` (which sticks to syscalls and glibc's fork-safe
    // malloc) and then _exits; it never returns into the test harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                Ok(Ok(())) => 0,
                Ok(Err(code)) => code,
                Err(_) => 100,
            };
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    }
}

/// Forks, runs `f` in the child and waits for it.
fn in_child(f: impl FnOnce() -> Result<(), i32>) -> WaitStatus {
    let pid = spawn_child(f);
    waitpid(pid, None).expect("waitpid")
}

fn set_nnp() -> Result<(), i32> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    ensure(rc == 0, 90)
}

/// Compiles `p` in the parent; the child sets no_new_privs, loads it and runs `f`.
fn with_filter(p: &LinuxSeccomp, f: impl FnOnce() -> Result<(), i32>) -> WaitStatus {
    let filter = compile(p).expect("profile compiles");
    in_child(move || {
        set_nnp()?;
        filter.load().map_err(|_| 91)?;
        f()
    })
}

fn sys_mkdir(path: &std::ffi::CStr) -> libc::c_long {
    // SAFETY: mkdir reads a NUL-terminated path we own.
    unsafe { libc::syscall(libc::SYS_mkdir, path.as_ptr(), 0o755) }
}

fn cpath(p: &std::path::Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path has no NUL")
}

#[test]
fn errno_rule_fails_mkdir_with_eperm_and_leaves_getpid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("made");
    let path = cpath(&target);
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let status = with_filter(&p, || {
        ensure(sys_mkdir(&path) == -1, 1)?;
        ensure(errno() == libc::EPERM, 2)?;
        // SAFETY: getpid has no arguments.
        let pid = unsafe { libc::syscall(libc::SYS_getpid) };
        ensure(pid > 0, 3)
    });
    assert_eq!(status, WaitStatus::Exited(status_pid(&status), 0));
    assert!(!target.exists(), "mkdir went through the filter");
}

fn status_pid(s: &WaitStatus) -> Pid {
    s.pid().expect("a waited child has a pid")
}

#[test]
fn custom_errno_ret_and_trace_without_tracer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = cpath(&dir.path().join("made"));
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["getpgid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["getsid"], "action": "SCMP_ACT_LOG"}
        ]
    }));
    let status = with_filter(&p, || {
        ensure(sys_mkdir(&path) == -1, 1)?;
        ensure(errno() == libc::ENOSYS, 2)?;
        // SECCOMP_RET_TRACE with no tracer attached: the kernel fails the call with ENOSYS.
        // SAFETY: getpgid with an integer argument.
        let rc = unsafe { libc::syscall(libc::SYS_getpgid, 0) };
        ensure(rc == -1 && errno() == libc::ENOSYS, 3)?;
        // SCMP_ACT_LOG lets the call through. getsid may return 0 when the session leader lives
        // in an ancestor pid namespace (as under CI), so only a failure counts.
        // SAFETY: getsid with an integer argument.
        ensure(unsafe { libc::syscall(libc::SYS_getsid, 0) } >= 0, 4)
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

#[test]
fn kill_actions_kill_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
    ] {
        let p = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": action}]
        }));
        let status = with_filter(&p, || {
            // SAFETY: getppid has no arguments.
            unsafe { libc::syscall(libc::SYS_getppid) };
            Err(1)
        });
        assert!(
            matches!(status, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
            "{action}: {status:?}"
        );
    }
}

#[test]
fn argument_filters_eq_and_masked_eq() {
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18,
             "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18,
             "args": [{"index": 0, "value": 0xffff, "valueTwo": 0x1234, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }));
    let status = with_filter(&p, || {
        // SAFETY: personality with an integer argument; 0xffffffff only queries.
        let rc = unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) };
        ensure(rc == -1 && errno() == libc::EXDEV, 1)?;
        // PER_LINUX (0), the current persona: allowed, and a no-op.
        // SAFETY: as above.
        let rc = unsafe { libc::syscall(libc::SYS_personality, 0u64) };
        ensure(rc >= 0, 2)?;
        // pids above pid_max: ESRCH unless the filter answers first.
        // SAFETY: getpgid with an integer argument.
        let rc = unsafe { libc::syscall(libc::SYS_getpgid, 0x7000_1234u64) };
        ensure(rc == -1 && errno() == libc::EXDEV, 3)?;
        // SAFETY: as above.
        let rc = unsafe { libc::syscall(libc::SYS_getpgid, 0x7000_1235u64) };
        ensure(rc == -1 && errno() == libc::ESRCH, 4)?;
        // SAFETY: as above.
        ensure(unsafe { libc::syscall(libc::SYS_getpgid, 0) } >= 0, 5)
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

#[test]
fn same_index_args_are_ored_other_indexes_anded() {
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18,
             "args": [{"index": 0, "value": 0x7000_0001u64, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 0x7000_0002u64, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18,
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 0x7000_0001u64, "op": "SCMP_CMP_EQ"}]}
        ]
    }));
    let status = with_filter(&p, || {
        let getpgid = |pid: u64| {
            // SAFETY: getpgid with an integer argument.
            let rc = unsafe { libc::syscall(libc::SYS_getpgid, pid) };
            (rc, errno())
        };
        ensure(getpgid(0x7000_0001) == (-1, libc::EXDEV), 1)?;
        ensure(getpgid(0x7000_0002) == (-1, libc::EXDEV), 2)?;
        ensure(getpgid(0x7000_0003) == (-1, libc::ESRCH), 3)?;
        let getpriority = |which: u64, who: u64| {
            // SAFETY: getpriority with integer arguments.
            let rc = unsafe { libc::syscall(libc::SYS_getpriority, which, who) };
            (rc, errno())
        };
        ensure(getpriority(0, 0x7000_0001) == (-1, libc::EXDEV), 4)?;
        // Only one of the two ANDed conditions holds: not filtered.
        ensure(getpriority(1, 0x7000_0001) == (-1, libc::ESRCH), 5)?;
        ensure(getpriority(0, 0).0 >= 0, 6)
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

/// What the child of the default-profile test checks before exec'ing a shell.
fn default_profile_checks(admin: bool) -> Result<(), i32> {
    let src = c"none";
    let target = c"/nonexistent-barge-seccomp-test/mnt";
    let fstype = c"tmpfs";
    // SAFETY: mount reads NUL-terminated strings we own; the target does not exist, so an
    // unfiltered call fails with ENOENT and mounts nothing.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    let e = errno();
    ensure(rc == -1, 10)?;
    ensure(e == if admin { libc::ENOENT } else { libc::EPERM }, 11)?;

    // SAFETY: clone with only flags and no stack behaves like fork; the new child exits at
    // once.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUTS | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if rc == 0 {
        // SAFETY: in the clone child: leave at once.
        unsafe { libc::_exit(0) }
    }
    let e = errno();
    if admin {
        ensure(rc > 0, 12)?;
        waitpid(Pid::from_raw(rc as i32), None).map_err(|_| 13)?;
    } else {
        ensure(rc == -1 && e == libc::EPERM, 14)?;
    }
    // clone3 -> ENOSYS without CAP_SYS_ADMIN (so libc falls back to clone).
    if !admin {
        // SAFETY: a NULL clone_args with size 0 fails in the kernel (EINVAL/EFAULT) if the
        // filter lets it through; no process is created.
        let rc = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
        ensure(rc == -1 && errno() == libc::ENOSYS, 15)?;
        // AF_VSOCK is refused, AF_UNIX allowed.
        // SAFETY: socket with integer arguments; the fds are closed below.
        let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) };
        ensure(fd == -1 && errno() == libc::EPERM, 16)?;
        // SAFETY: as above.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
        ensure(fd >= 0, 17)?;
        // SAFETY: closing the fd we just got.
        unsafe { libc::close(fd) };
        // A known syscall the profile does not list: EPERM; a number beyond every syscall
        // of the profile: ENOSYS (the prologue), so libc would fall back.
        // SAFETY: acct(NULL) would only turn accounting off, and is filtered.
        let rc = unsafe { libc::syscall(libc::SYS_acct, std::ptr::null::<u8>()) };
        ensure(rc == -1 && errno() == libc::EPERM, 18)?;
        // SAFETY: syscall number 1000 does not exist; no arguments are read.
        let rc = unsafe { libc::syscall(1000) };
        ensure(rc == -1 && errno() == libc::ENOSYS, 19)?;
    }

    // unshare(CLONE_NEWUSER) last: when allowed it changes our user namespace.
    // SAFETY: unshare with a flag only.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
    let e = errno();
    if admin {
        ensure(rc == 0, 20)?;
    } else {
        ensure(rc == -1 && e == libc::EPERM, 21)?;
    }

    // A dynamically linked program still runs under the profile.
    let sh = c"/bin/sh";
    let arg0 = c"sh";
    let arg1 = c"-c";
    let script = c"x=$(echo ok); [ \"$x\" = ok ] && cat /proc/self/status >/dev/null && exit 42";
    let argv = [
        arg0.as_ptr(),
        arg1.as_ptr(),
        script.as_ptr(),
        std::ptr::null(),
    ];
    let envp = [c"PATH=/usr/bin:/bin".as_ptr(), std::ptr::null()];
    // SAFETY: NULL-terminated arrays of NUL-terminated strings that live across the call.
    unsafe { libc::execve(sh.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Err(30)
}

#[test]
fn docker_default_profile_denies_namespaces_and_mount_unless_sys_admin() {
    if !is_root() {
        eprintln!("skipped: needs root (mount's EPERM must come from the filter alone)");
        return;
    }
    let docker_caps: Vec<String> = barge_runtime::caps::DOCKER_DEFAULT
        .iter()
        .map(|s| s.to_string())
        .collect();

    let p = docker_default_profile(&docker_caps);
    let status = with_filter(&p, || default_profile_checks(false));
    assert!(matches!(status, WaitStatus::Exited(_, 42)), "{status:?}");

    let mut admin_caps = docker_caps.clone();
    admin_caps.push("CAP_SYS_ADMIN".into());
    let p = docker_default_profile(&admin_caps);
    let status = with_filter(&p, || default_profile_checks(true));
    assert!(matches!(status, WaitStatus::Exited(_, 42)), "{status:?}");
}

#[test]
fn notify_listener_receives_and_answers_a_notification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).expect("bind agent socket");
    let mkdir_path = cpath(&dir.path().join("notified"));
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "hello-agent",
        // TSYNC with a listener needs TSYNC_ESRCH, WAIT_KILLABLE_RECV needs the listener:
        // both must reach the kernel right.
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let filter = compile(&p).expect("compiles");
    assert!(filter.uses_notify());
    assert_eq!(filter.listener_path(), Some(sock.as_path()));
    assert_eq!(
        filter.load_flags(),
        flag::TSYNC | flag::WAIT_KILLABLE_RECV | flag::NEW_LISTENER | flag::TSYNC_ESRCH
    );

    let child = spawn_child(move || {
        set_nnp()?;
        let fd = filter.load().map_err(|_| 1)?.ok_or(2)?;
        // SAFETY: getpid has no arguments.
        let pid = unsafe { libc::getpid() };
        let state = json!({"ociVersion": "1.2.0", "id": "c1", "status": "creating",
                           "pid": pid, "bundle": "/b"})
        .to_string();
        filter.send_listener(fd.as_fd(), &state).map_err(|_| 3)?;
        drop(fd);
        // The agent answers this one with EXDEV.
        ensure(sys_mkdir(&mkdir_path) == -1, 4)?;
        ensure(errno() == libc::EXDEV, 5)
    });
    use std::os::fd::AsFd;

    // The agent side, with timeouts so a broken child cannot hang the test.
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (stream, _) = loop {
        match listener.accept() {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the child never connected");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = nix::sys::socket::recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::empty(),
    )
    .expect("recvmsg");
    let mut notify_fd = None;
    for c in msg.cmsgs().expect("cmsgs") {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS fds are new descriptors owned by us.
            notify_fd = fds.first().map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    let len = msg.bytes;
    let mut data = buf[..len].to_vec();
    // The JSON may come in several pieces; read to EOF.
    let mut s = &stream;
    std::io::Read::read_to_end(&mut s, &mut data).expect("read state");
    let state: serde_json::Value = serde_json::from_slice(&data).expect("state JSON");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["pid"], json!(child.as_raw()));
    assert_eq!(state["metadata"], json!("hello-agent"));
    assert_eq!(state["state"]["id"], json!("c1"));
    assert_eq!(state["ociVersion"], json!("1.2.0"));
    let notify_fd = notify_fd.expect("an fd came with the state");

    // Wait for the notification, then answer it.
    let mut pfd = [nix::poll::PollFd::new(
        notify_fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let n = nix::poll::poll(&mut pfd, 20_000u16).expect("poll");
    assert_eq!(n, 1, "no seccomp notification arrived");
    // SAFETY: seccomp_notif is plain old data; all-zero is the state RECV requires.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: SECCOMP_IOCTL_NOTIF_RECV writes one seccomp_notif into `req`.
    let rc = unsafe {
        libc::ioctl(
            notify_fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV as _,
            &mut req,
        )
    };
    assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
    assert_eq!(req.data.nr as libc::c_long, libc::SYS_mkdir);
    assert_eq!(req.pid as i32, child.as_raw());
    let resp = libc::seccomp_notif_resp {
        id: req.id,
        val: 0,
        error: -libc::EXDEV,
        flags: 0,
    };
    // SAFETY: SECCOMP_IOCTL_NOTIF_SEND reads one seccomp_notif_resp.
    let rc = unsafe {
        libc::ioctl(
            notify_fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            &resp,
        )
    };
    assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());

    let status = waitpid(child, None).expect("waitpid");
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    assert!(!dir.path().join("notified").exists());
}

#[test]
fn flags_are_passed_and_loadable() {
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]
    }));
    let filter = compile(&p).expect("compiles");
    let want = flag::TSYNC | flag::LOG | flag::SPEC_ALLOW | flag::WAIT_KILLABLE_RECV;
    assert_eq!(filter.flags(), want);
    assert!(!filter.uses_notify());
    // Without a listener, WAIT_KILLABLE_RECV is dropped (the kernel would refuse it).
    assert_eq!(filter.load_flags(), want & !flag::WAIT_KILLABLE_RECV);
    let status = in_child(move || {
        set_nnp()?;
        filter.load().map_err(|_| 1)?;
        // SAFETY: getppid has no arguments.
        let rc = unsafe { libc::syscall(libc::SYS_getppid) };
        ensure(rc == -1 && errno() == libc::EXDEV, 2)
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

#[test]
fn load_without_nnp_or_cap_sys_admin_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to drop CAP_SYS_ADMIN itself");
        return;
    }
    let p = profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]}));
    let filter = compile(&p).expect("compiles");
    let status = in_child(move || {
        caps::drop(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_ADMIN,
        )
        .map_err(|_| 1)?;
        match filter.load() {
            Err(SeccompError::Load {
                errno: nix::errno::Errno::EACCES,
                ..
            }) => Ok(()),
            _ => Err(2),
        }
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

/// The error of compiling `v`, as text.
fn compile_err(v: serde_json::Value) -> String {
    match compile(&profile(v.clone())) {
        Ok(_) => panic!("profile compiled but should not: {v}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_profiles_name_the_field() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getpid"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}),
            "linux.seccomp.syscalls[1].errnoRet",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": [], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[0].names",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read", ""], "action": "SCMP_ACT_ERRNO"}]}),
            "linux.seccomp.syscalls[0].names[1]",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["write"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[3].args[1].index",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}),
            "linux.seccomp.defaultErrnoRet",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}),
            "linux.seccomp.defaultErrnoRet",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            "linux.seccomp.defaultAction",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}),
            "linux.seccomp.listenerMetadata",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.syscalls[0].names[0]",
        ),
    ];
    for (v, field) in cases {
        let msg = compile_err(v.clone());
        assert!(msg.starts_with(field), "{v}: {msg:?} does not name {field}");
    }

    // An architecture the host's libseccomp does not know (2.5 has no LoongArch): named.
    let v = json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_LOONGARCH64"]});
    if libseccomp::ScmpVersion::current().is_ok_and(|v| (v.major, v.minor) < (2, 6)) {
        let msg = compile_err(v);
        assert!(msg.starts_with("linux.seccomp.architectures[1]"), "{msg:?}");
    }

    // Unknown action, op or flag strings never reach compile: oci-spec's enums refuse them
    // when config.json is parsed, naming the value.
    let bad = serde_json::from_value::<LinuxSeccomp>(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_BOGUS"}]}]}));
    assert!(bad.is_err_and(|e| e.to_string().contains("SCMP_CMP_BOGUS")));
}

#[test]
fn unknown_syscalls_are_skipped_and_dead_notify_rules_need_no_listener() {
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["no_such_syscall_barge", "getppid"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["no_such_syscall_either"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    let filter = compile(&p).expect("unknown names are skipped");
    assert!(!filter.uses_notify());
    let status = in_child(move || {
        set_nnp()?;
        ensure(filter.load().map_err(|_| 1)?.is_none(), 2)?;
        // SAFETY: getppid has no arguments.
        let rc = unsafe { libc::syscall(libc::SYS_getppid) };
        ensure(rc == -1 && errno() == libc::EPERM, 3)
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

#[test]
fn compile_never_panics_on_odd_input() {
    let actions = [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
    ];
    let errnos = [
        None,
        Some(0u64),
        Some(1),
        Some(4095),
        Some(65535),
        Some(65536),
        Some(u32::MAX as u64),
    ];
    let names: [&[&str]; 6] = [
        &[],
        &["read"],
        &["no_such_syscall"],
        &["socketcall", "_llseek"],
        &["read\u{0}x"],
        &["", "write"],
    ];
    let ops = [
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ];
    let values = [0u64, 1, u32::MAX as u64, u64::MAX];
    let indexes = [0u64, 5, 6, u32::MAX as u64];
    let mut compiled = 0;
    for (ai, default) in actions.iter().enumerate() {
        for action in actions.iter().skip(ai % 3) {
            for errno in errnos {
                for name_set in names {
                    let mut rule = json!({"names": name_set, "action": action});
                    if let Some(e) = errno {
                        rule["errnoRet"] = json!(e);
                    }
                    let p = profile(json!({"defaultAction": default, "syscalls": [rule]}));
                    compiled += usize::from(compile(&p).is_ok());
                }
            }
        }
    }
    for op in ops {
        for value in values {
            for index in indexes {
                let p = profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read", "mmap"], "action": "SCMP_ACT_ERRNO", "args": [
                        {"index": index, "value": value, "valueTwo": value, "op": op},
                        {"index": 0, "value": value, "op": op},
                        {"index": 1, "value": !value, "op": op}]}]}));
                compiled += usize::from(compile(&p).is_ok());
            }
        }
    }
    // Random profiles from a fixed-seed generator: several rules, arches, flags and args.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let arches = [
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_NATIVE",
    ];
    let flags = [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ];
    let syscall_names = [
        "read",
        "write",
        "mmap",
        "socketcall",
        "clone",
        "nope",
        "open",
        "ioctl",
    ];
    for _ in 0..300 {
        let mut rules = Vec::new();
        for _ in 0..next(6) {
            let args: Vec<_> = (0..next(4))
                .map(|_| {
                    json!({"index": next(8), "value": values[next(values.len())],
                           "valueTwo": values[next(values.len())], "op": ops[next(ops.len())]})
                })
                .collect();
            let mut rule = json!({
                "names": (0..1 + next(3)).map(|_| syscall_names[next(syscall_names.len())]).collect::<Vec<_>>(),
                "action": actions[next(actions.len())],
                "args": args,
            });
            if next(3) == 0 {
                rule["errnoRet"] = json!(errnos[next(errnos.len())]);
            }
            rules.push(rule);
        }
        let p = profile(json!({
            "defaultAction": actions[next(actions.len())],
            "architectures": (0..next(3)).map(|_| arches[next(arches.len())]).collect::<Vec<_>>(),
            "flags": (0..next(3)).map(|_| flags[next(flags.len())]).collect::<Vec<_>>(),
            "syscalls": rules,
        }));
        compiled += usize::from(compile(&p).is_ok());
    }
    assert!(compiled > 0);
}

#[test]
fn cached_filter_round_trips_and_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("seccomp-cache");
    let target = dir.path().join("made");
    let path = cpath(&target);
    let p = docker_default_profile(&[]);
    let mut p2 = p.clone();
    // The Docker profile plus one rule: mkdir refused.
    let mut rules = p2.syscalls().clone().unwrap_or_default();
    rules.retain(|r| {
        r.action() != oci_spec::runtime::LinuxSeccompAction::ScmpActAllow || r.args().is_some()
    });
    let mut allow = p.syscalls().clone().unwrap_or_default()[0].clone();
    let names: Vec<String> = allow
        .names()
        .iter()
        .filter(|n| *n != "mkdir")
        .cloned()
        .collect();
    allow.set_names(names);
    rules.insert(0, allow);
    p2.set_syscalls(Some(rules));

    let first = barge_runtime::seccomp::compile_cached(&p2, &cache).expect("compiles");
    let second = barge_runtime::seccomp::compile_cached(&p2, &cache).expect("cache hit");
    let fresh = compile(&p2).expect("compiles");
    let insns = |f: &barge_runtime::seccomp::SeccompFilter| -> Vec<(u16, u8, u8, u32)> {
        f.instructions()
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect()
    };
    assert_eq!(insns(&first), insns(&fresh));
    assert_eq!(insns(&second), insns(&fresh));
    assert_eq!(std::fs::read_dir(&cache).expect("cache dir").count(), 1);
    if cfg!(target_arch = "x86_64") {
        // The compat ABIs are covered: the program checks AUDIT_ARCH_I386 too.
        assert!(second.instructions().iter().any(|i| i.k == 0x4000_0003));
    }

    let status = in_child(move || {
        set_nnp()?;
        second.load().map_err(|_| 1)?;
        ensure(sys_mkdir(&path) == -1 && errno() == libc::EPERM, 2)?;
        // SAFETY: getpid has no arguments.
        ensure(unsafe { libc::syscall(libc::SYS_getpid) } > 0, 3)
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    assert!(!target.exists());
}
