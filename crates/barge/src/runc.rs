//! `barge-runc`: runc's command line over barge-runtime, for podman, conmon, containerd and
//! docker. Global options, subcommands, flags, output formats and exit codes follow runc's.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use barge_runtime::container::{self, CreateOpts, ExecOpts};
use barge_runtime::state::{self, Status};
use clap::{Parser, Subcommand};

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
    eprintln!("barge-runc: {msg}");
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
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    if cli.version {
        println!(
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
            println!("{}", container::state_json(&st, s));
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
        Cmd::Spec { bundle } => {
            let p = bundle.join("config.json");
            if p.exists() {
                anyhow::bail!("{}: file exists; remove it first", p.display());
            }
            std::fs::write(&p, DEFAULT_SPEC).with_context(|| format!("write {}", p.display()))?;
            Ok(0)
        }
        Cmd::Features => {
            println!("{}", features());
            Ok(0)
        }
    }
}

fn ps(root: &Path, id: &str, format: &str, ps_args: &[String]) -> Result<i32> {
    let pids = container::ps(root, id)?;
    match format {
        "json" => {
            println!("{}", serde_json::to_string(&pids)?);
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
            println!("{header}");
            for l in lines {
                let pid = l
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{l}");
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
            println!("{}", st.id);
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
            println!("{}", serde_json::to_string(&v)?);
        }
        "table" => {
            println!(
                "{:<12} {:<10} {:<10} {:<40} {:<30} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for (st, s) in &all {
                let pid = if *s == Status::Stopped { 0 } else { st.pid };
                println!(
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
