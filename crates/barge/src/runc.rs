//! `barge-runc`: runc's command line over barge-runtime, for podman, conmon, containerd and
//! docker. Global options, subcommands, flags, output formats and exit codes follow runc's.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use barge_runtime::container::{self, CreateOpts, ExecOpts};
use barge_runtime::state::{self, Status};
use clap::{Parser, Subcommand};

// Output as the CLI's: a reader that went away (`barge-runc state ID | head -c1`) ends the
// process quietly, as SIGPIPE ends runc, instead of a panic in println!.
use crate::cli::out::{errln, outln};

#[derive(Parser, Debug)]
#[command(
    name = "barge-runc",
    version,
    disable_version_flag = true,
    about = "barge's OCI runtime, runc-compatible"
)]
struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = state::DEFAULT_ROOT)]
    root: PathBuf,
    /// Log file for errors (runc-compatible).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    /// Debug logging (accepted).
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd cgroups (accepted; barge uses cgroupfs paths).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Rootless mode (accepted).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    /// Path to criu (accepted, unused).
    #[arg(long, global = true)]
    criu: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// Container id.
    id: String,
    /// Bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket to send the pty master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// File to write the init's pid to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Do not use pivot_root.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a session keyring (accepted).
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass N extra fds (3..3+N).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
}

// Parsed once per process; boxing variants would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a container.
    Create(CreateArgs),
    /// Create and start a container.
    Run {
        #[command(flatten)]
        c: CreateArgs,
        /// Detach from the container.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container after it exits.
        #[arg(long)]
        keep: bool,
        /// Accepted for runc compatibility.
        #[arg(long = "no-subreaper")]
        no_subreaper: bool,
    },
    /// Start a created container.
    Start {
        /// Container id.
        id: String,
    },
    /// Print a container's state.
    State {
        /// Container id.
        id: String,
    },
    /// Send a signal to a container.
    Kill {
        /// Container id.
        id: String,
        /// Signal (name or number).
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Signal every process of the container.
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Delete a container.
    Delete {
        /// Container id.
        id: String,
        /// Kill a running container first.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Run a process in a container.
    Exec {
        /// Container id.
        id: String,
        /// Command and arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
        /// process.json to run.
        #[arg(short = 'p', long)]
        process: Option<PathBuf>,
        /// Detach.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Pid file.
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        /// Console socket.
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        /// Allocate a pty.
        #[arg(short = 't', long)]
        tty: bool,
        /// Working directory.
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Environment variables.
        #[arg(short = 'e', long)]
        env: Vec<String>,
        /// uid[:gid].
        #[arg(short = 'u', long)]
        user: Option<String>,
        /// Additional gids.
        #[arg(short = 'g', long = "additional-gids")]
        additional_gids: Vec<u32>,
        /// The pty's size before the process runs, ROWSxCOLUMNS (with --tty; barge's own
        /// flag: runc takes it in a --process file).
        #[arg(long = "console-size", value_parser = parse_console_size)]
        console_size: Option<(u16, u16)>,
        /// Extra capabilities.
        #[arg(short = 'c', long = "cap")]
        cap: Vec<String>,
        /// Set no_new_privs.
        #[arg(long = "no-new-privs")]
        no_new_privs: bool,
        /// Pass N extra fds.
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: i32,
        /// Accepted, unused.
        #[arg(long)]
        apparmor: Option<String>,
        /// Accepted, unused.
        #[arg(long = "process-label")]
        process_label: Option<String>,
        /// Accepted, unused.
        #[arg(long)]
        cgroup: Option<String>,
        /// Accepted, unused.
        #[arg(long = "ignore-paused")]
        ignore_paused: bool,
    },
    /// List a container's processes.
    Ps {
        /// Container id.
        id: String,
        /// table or json.
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        /// Arguments for ps(1).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze a container.
    Pause {
        /// Container id.
        id: String,
    },
    /// Thaw a container.
    Resume {
        /// Container id.
        id: String,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        /// table or json.
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        /// Print ids only.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json.
    Spec {
        /// Bundle directory.
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print the runtime's OCI features JSON.
    Features,
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Print a container's resource usage (runc's JSON events).
    Events {
        /// Container id.
        id: String,
        /// Print one stats event and exit.
        #[arg(long)]
        stats: bool,
        /// Time between stats events when streaming (e.g. 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
    },
}

#[derive(clap::Args, Debug)]
struct UpdateArgs {
    /// Container id.
    id: String,
    /// A JSON file of linux.resources (`-` for stdin); flags override it.
    #[arg(short = 'r', long)]
    resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k, m, g suffix).
    #[arg(long)]
    memory: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for unlimited).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-shares")]
    cpu_shares: Option<u64>,
    /// CPU CFS period, microseconds.
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CPU CFS quota, microseconds (-1 for unlimited).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPUs allowed (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Maximum number of tasks (-1 or 0 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Block I/O weight (10 to 1000).
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
}

/// Runs barge-runc with `args` (argv[0] included); returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let (log, fmt) = (cli.log.clone(), cli.log_format.clone());
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            report(log.as_deref(), &fmt, &msg);
            1
        }
    }
}

/// Writes an error to stderr and, with --log, to the log file (json lines with
/// --log-format json, as runc's logrus does; conmon and podman read them).
fn report(log: Option<&Path>, fmt: &str, msg: &str) {
    errln!("barge-runc: {msg}");
    if let Some(p) = log {
        let line = if fmt == "json" {
            serde_json::json!({"level": "error", "msg": msg, "time": state::now_rfc3339()})
                .to_string()
        } else {
            format!(
                "time=\"{}\" level=error msg={:?}",
                state::now_rfc3339(),
                msg
            )
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn create_opts(root: &Path, c: CreateArgs) -> CreateOpts {
    let listen: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    CreateOpts {
        root: root.to_path_buf(),
        id: c.id,
        bundle: c.bundle,
        console_socket: c.console_socket,
        pid_file: c.pid_file,
        no_pivot: c.no_pivot,
        preserve_fds: c.preserve_fds + listen,
        init: false,
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    if cli.version {
        outln!(
            "barge-runc version {}\nspec: 1.2.0",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(0);
    }
    let root = cli.root;
    let Some(cmd) = cli.cmd else {
        anyhow::bail!("no command given (try --help)");
    };
    match cmd {
        Cmd::Create(c) => {
            container::create(&create_opts(&root, c))?;
            Ok(0)
        }
        Cmd::Run {
            c, detach, keep, ..
        } => Ok(container::run(&create_opts(&root, c), detach, keep)?),
        Cmd::Start { id } => {
            container::start(&root, &id)?;
            Ok(0)
        }
        Cmd::State { id } => {
            let (st, s) = container::load(&root, &id)?;
            outln!("{}", container::state_json(&st, s));
            Ok(0)
        }
        Cmd::Kill { id, signal, all } => {
            let sig = container::parse_signal(&signal)?;
            container::kill(&root, &id, sig, all)?;
            Ok(0)
        }
        Cmd::Delete { id, force } => {
            match container::delete(&root, &id, force) {
                Err(barge_runtime::Error::State(state::StateError::NotFound(_))) if force => {}
                r => r?,
            }
            Ok(0)
        }
        Cmd::Exec {
            id,
            args,
            process,
            detach,
            pid_file,
            console_socket,
            tty,
            cwd,
            env,
            user,
            additional_gids,
            console_size,
            cap,
            no_new_privs,
            preserve_fds,
            ..
        } => {
            let o = ExecOpts {
                root,
                id,
                process,
                args,
                tty,
                console_socket,
                detach,
                pid_file,
                cwd,
                env,
                user,
                caps: cap,
                no_new_privs,
                preserve_fds,
                additional_gids,
                console_size,
            };
            Ok(container::exec(&o)?)
        }
        Cmd::Ps {
            id,
            format,
            ps_args,
        } => ps(&root, &id, &format, &ps_args),
        Cmd::Pause { id } => {
            container::pause(&root, &id, true)?;
            Ok(0)
        }
        Cmd::Resume { id } => {
            container::pause(&root, &id, false)?;
            Ok(0)
        }
        Cmd::List { format, quiet } => list(&root, &format, quiet),
        Cmd::Update(u) => update(&root, u),
        Cmd::Events {
            id,
            stats,
            interval,
        } => events(&root, &id, stats, &interval),
        Cmd::Spec { bundle } => {
            let p = bundle.join("config.json");
            if p.exists() {
                anyhow::bail!("{}: file exists; remove it first", p.display());
            }
            std::fs::write(&p, DEFAULT_SPEC).with_context(|| format!("write {}", p.display()))?;
            Ok(0)
        }
        Cmd::Features => {
            outln!("{}", features());
            Ok(0)
        }
    }
}

fn ps(root: &Path, id: &str, format: &str, ps_args: &[String]) -> Result<i32> {
    let pids = container::ps(root, id)?;
    match format {
        "json" => {
            outln!("{}", serde_json::to_string(&pids)?);
            Ok(0)
        }
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("run ps")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            outln!("{header}");
            for l in lines {
                let pid = l
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    outln!("{l}");
                }
            }
            Ok(0)
        }
        other => anyhow::bail!("invalid --format {other:?}: use table or json"),
    }
}

fn list(root: &Path, format: &str, quiet: bool) -> Result<i32> {
    let all = container::list(root)?;
    if quiet {
        for (st, _) in &all {
            outln!("{}", st.id);
        }
        return Ok(0);
    }
    match format {
        "json" => {
            let v: Vec<serde_json::Value> = all
                .iter()
                .map(|(st, s)| {
                    serde_json::json!({
                        "ociVersion": st.oci_version,
                        "id": st.id,
                        "pid": if *s == Status::Stopped { 0 } else { st.pid },
                        "status": s.to_string(),
                        "bundle": st.bundle,
                        "rootfs": st.rootfs,
                        "created": st.created,
                        "owner": if st.owner == 0 { "root".to_string() } else { st.owner.to_string() },
                    })
                })
                .collect();
            outln!("{}", serde_json::to_string(&v)?);
        }
        "table" => {
            outln!(
                "{:<12} {:<10} {:<10} {:<40} {:<30} OWNER",
                "ID",
                "PID",
                "STATUS",
                "BUNDLE",
                "CREATED"
            );
            for (st, s) in &all {
                let pid = if *s == Status::Stopped { 0 } else { st.pid };
                outln!(
                    "{:<12} {:<10} {:<10} {:<40} {:<30} {}",
                    st.id,
                    pid,
                    s.to_string(),
                    st.bundle.display(),
                    st.created,
                    if st.owner == 0 {
                        "root".to_string()
                    } else {
                        st.owner.to_string()
                    }
                );
            }
        }
        other => anyhow::bail!("invalid --format {other:?}: use table or json"),
    }
    Ok(0)
}

fn features() -> String {
    let caps: Vec<String> = barge_runtime::caps::known_names().collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
            "mand", "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime",
            "nosuid", "private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared", "rslave",
            "runbindable", "rw", "shared", "slave", "strictatime", "suid", "sync", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": true},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {"org.opencontainers.runc.version": "barge"}
    })
    .to_string()
}

/// runc's default config.json (`runc spec`).
const DEFAULT_SPEC: &str = r#"{
	"ociVersion": "1.2.0",
	"process": {
		"terminal": true,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			"sh"
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "runc",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": [
				"nosuid",
				"strictatime",
				"mode=755",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": [
				"nosuid",
				"noexec",
				"newinstance",
				"ptmxmode=0666",
				"mode=0620",
				"gid=5"
			]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"mode=1777",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": [
				"nosuid",
				"noexec",
				"nodev"
			]
		},
		{
			"destination": "/sys",
			"type": "sysfs",
			"source": "sysfs",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"relatime",
				"ro"
			]
		}
	],
	"linux": {
		"resources": {
			"devices": [
				{
					"allow": false,
					"access": "rwm"
				}
			]
		},
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "network"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			},
			{
				"type": "cgroup"
			}
		],
		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
}
"#;

/// A size in bytes: a number with an optional k, m, g or t suffix (binary, as runc takes
/// them), or -1.
fn parse_bytes(flag: &str, v: &str) -> Result<i64> {
    let t = v.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1i64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some((i, 't')) => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("--{flag} {v:?}: not a size"))?;
    n.checked_mul(mul)
        .filter(|n| *n >= 0)
        .with_context(|| format!("--{flag} {v:?}: out of range"))
}

fn update(root: &Path, u: UpdateArgs) -> Result<i32> {
    let mut r: serde_json::Value = match &u.resources {
        Some(p) => {
            let text = if p.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("read resources from stdin")?
            } else {
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?
            };
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a resources JSON object", p.display()))?
        }
        None => serde_json::json!({}),
    };
    if !r.is_object() {
        anyhow::bail!("--resources: not a JSON object");
    }
    let mut set = |section: &str, key: &str, v: serde_json::Value| {
        if !r[section].is_object() {
            r[section] = serde_json::json!({});
        }
        r[section][key] = v;
    };
    if let Some(v) = &u.memory {
        set("memory", "limit", parse_bytes("memory", v)?.into());
    }
    if let Some(v) = &u.memory_reservation {
        set(
            "memory",
            "reservation",
            parse_bytes("memory-reservation", v)?.into(),
        );
    }
    if let Some(v) = &u.memory_swap {
        set("memory", "swap", parse_bytes("memory-swap", v)?.into());
    }
    if let Some(v) = u.cpu_shares {
        set("cpu", "shares", v.into());
    }
    if let Some(v) = u.cpu_period {
        set("cpu", "period", v.into());
    }
    if let Some(v) = u.cpu_quota {
        set("cpu", "quota", v.into());
    }
    if let Some(v) = &u.cpuset_cpus {
        set("cpu", "cpus", v.clone().into());
    }
    if let Some(v) = &u.cpuset_mems {
        set("cpu", "mems", v.clone().into());
    }
    if let Some(v) = u.pids_limit {
        set("pids", "limit", v.into());
    }
    if let Some(v) = u.blkio_weight {
        set("blockIO", "weight", v.into());
    }
    let res: oci_spec::runtime::LinuxResources =
        serde_json::from_value(r).context("resources: not valid linux.resources")?;
    container::update(root, &u.id, &res)?;
    Ok(0)
}

/// One stats event in runc's JSON shape.
fn stats_event(id: &str, s: &barge_runtime::cgroups::CgroupStats) -> serde_json::Value {
    let entries = |v: &[barge_runtime::cgroups::stats::BlkioEntry]| -> Vec<serde_json::Value> {
        v.iter()
            .map(|e| {
                serde_json::json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value})
            })
            .collect()
    };
    let m = &s.memory;
    serde_json::json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": {
                "usage": {
                    "total": s.cpu.usage_total_ns,
                    "percpu": s.cpu.usage_per_cpu_ns,
                    "kernel": s.cpu.usage_system_ns,
                    "user": s.cpu.usage_user_ns,
                },
                "throttling": {
                    "periods": s.cpu.throttling_periods,
                    "throttledPeriods": s.cpu.throttled_periods,
                    "throttledTime": s.cpu.throttled_time_ns,
                },
            },
            "memory": {
                "cache": m.cache,
                "usage": {"limit": m.limit, "usage": m.usage, "max": m.max_usage, "failcnt": m.failcnt},
                "swap": {"limit": m.swap_limit, "usage": m.swap_usage},
                "oom_kill": m.oom_kill,
                "raw": m.stat,
            },
            "pids": {"current": s.pids.current, "limit": s.pids.limit},
            "blkio": {
                "ioServiceBytesRecursive": entries(&s.blkio.io_service_bytes),
                "ioServicedRecursive": entries(&s.blkio.io_serviced),
            },
        },
    })
}

/// `5s`, `500ms`, `1m` or plain seconds.
fn parse_interval(v: &str) -> Result<std::time::Duration> {
    let t = v.trim();
    let (num, unit) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("--interval {v:?}: not a duration"))?;
    if !(n > 0.0 && n.is_finite()) {
        anyhow::bail!("--interval {v:?}: must be positive");
    }
    Ok(std::time::Duration::from_secs_f64(n * unit))
}

fn events(root: &Path, id: &str, once: bool, interval: &str) -> Result<i32> {
    let every = parse_interval(interval)?;
    let mut out = crate::cli::out::stdout();
    let mut ooms = None;
    loop {
        let (s, status) = container::stats(root, id)?;
        if status == Status::Stopped && !once {
            return Ok(0);
        }
        if once {
            writeln!(out, "{}", stats_event(id, &s))?;
            return Ok(0);
        }
        if ooms.is_some_and(|n| s.memory.oom_kill > n) {
            writeln!(out, "{}", serde_json::json!({"type": "oom", "id": id}))?;
        }
        ooms = Some(s.memory.oom_kill);
        writeln!(out, "{}", stats_event(id, &s))?;
        out.flush()?;
        std::thread::sleep(every);
    }
}

/// `--console-size ROWSxCOLUMNS`.
fn parse_console_size(s: &str) -> Result<(u16, u16), String> {
    s.split_once('x')
        .and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)))
        .ok_or_else(|| format!("{s:?}: want ROWSxCOLUMNS, e.g. 24x80"))
}
