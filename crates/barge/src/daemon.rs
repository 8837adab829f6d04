//! `barge daemon`: serves the Docker Engine API on a unix socket (barge-api over barge-engine).
//!
//! Takes dockerd's flags for what the two share: `-H/--host`, `--data-root`, `--exec-root`,
//! `--pidfile`, `--config-file` (daemon.json), `--insecure-registry`, `--default-ulimit`, `--init`,
//! `--log-level`, and the networking ones: `--bridge` (`none` disables networking), `--bip`,
//! `--default-address-pool` (daemon.json `bridge`, `bip`, `default-address-pools`), and
//! `--metrics-addr` (daemon.json `metrics-addr`: a TCP address serving Prometheus `/metrics`;
//! off unless given). Several
//! daemons with their own roots and sockets can run side by side; the network state lives
//! under `<data-root>/network` and is repaired at start-up, so run each daemon in its own
//! network namespace.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "barge daemon",
    about = "Run the barge engine daemon (Docker Engine API)"
)]
struct Args {
    /// Daemon socket(s) to listen on: unix:///path, or tcp://IP:PORT, which needs
    /// --tlsverify with --tlscacert, --tlscert and --tlskey (or an explicit --tls=false).
    #[arg(short = 'H', long = "host")]
    host: Vec<String>,
    /// `--tls=false` serves tcp:// hosts as plain, unauthenticated HTTP (dockerd's explicit
    /// opt-in); `--tls` alone is accepted as part of `--tlsverify`.
    #[arg(long = "tls", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    tls: Option<bool>,
    /// Serve TCP hosts with TLS and require client certificates signed by --tlscacert.
    #[arg(long = "tlsverify")]
    tlsverify: bool,
    /// CA certificate (PEM) that clients' certificates must chain to.
    #[arg(long = "tlscacert")]
    tlscacert: Option<PathBuf>,
    /// The daemon's TLS certificate (PEM).
    #[arg(long = "tlscert")]
    tlscert: Option<PathBuf>,
    /// The daemon's TLS private key (PEM).
    #[arg(long = "tlskey")]
    tlskey: Option<PathBuf>,
    /// Root directory of persistent state.
    #[arg(long = "data-root")]
    data_root: Option<PathBuf>,
    /// Root directory of execution state.
    #[arg(long = "exec-root")]
    exec_root: Option<PathBuf>,
    /// Path of the daemon's pid file.
    #[arg(short = 'p', long = "pidfile")]
    pidfile: Option<PathBuf>,
    /// Daemon configuration file.
    #[arg(long = "config-file", default_value = "/etc/barge/daemon.json")]
    config_file: PathBuf,
    /// Registries reached over plain HTTP.
    #[arg(long = "insecure-registry")]
    insecure_registry: Vec<String>,
    /// Default ulimits for containers (name=soft[:hard]).
    #[arg(long = "default-ulimit")]
    default_ulimit: Vec<String>,
    /// Run containers under an init (barge-init) unless they say otherwise (`HostConfig.Init`).
    #[arg(long = "init")]
    init: bool,
    /// Logging level (debug, info, warn, error, fatal).
    #[arg(short = 'l', long = "log-level")]
    log_level: Option<String>,
    /// Debug mode.
    #[arg(short = 'D', long = "debug")]
    debug: bool,
    /// The default bridge's device name; `none` runs without networking (containers get a
    /// namespace with loopback only, no bridge or nftables table is made).
    #[arg(long = "bridge", short = 'b')]
    bridge: Option<String>,
    /// The default bridge's address and prefix (`172.17.0.1/16`).
    #[arg(long = "bip")]
    bip: Option<String>,
    /// A pool user networks get subnets from: `base=10.10.0.0/16,size=24` (repeatable).
    #[arg(long = "default-address-pool")]
    default_address_pool: Vec<String>,
    /// Serve Prometheus metrics at `http://<addr>/metrics` (e.g. `127.0.0.1:9323`); off by
    /// default.
    #[arg(long = "metrics-addr")]
    metrics_addr: Option<String>,
}

/// The effective settings, from flags over daemon.json over defaults.
#[derive(Debug)]
struct Settings {
    hosts: Vec<String>,
    /// The TLS configuration of the tcp:// hosts: present whenever there is one, unless
    /// plain TCP was asked for with `--tls=false`.
    tls: Option<barge_api::tls::ServerConfig>,
    data_root: PathBuf,
    exec_root: PathBuf,
    pidfile: PathBuf,
    insecure: Vec<String>,
    ulimits: Vec<(String, i64, i64)>,
    init: bool,
    log_level: String,
    network: Option<barge_network::NetworkConfig>,
    metrics_addr: Option<std::net::SocketAddr>,
}

fn parse_pool(base: &str, size: u64) -> Result<(barge_network::Ipv4Net, u8)> {
    let net: barge_network::Ipv4Net = base
        .parse()
        .with_context(|| format!("invalid address pool base {base:?}"))?;
    let size = u8::try_from(size)
        .ok()
        .filter(|s| *s <= 30 && *s >= net.prefix)
        .with_context(|| format!("invalid address pool size {size} for {base}"))?;
    Ok((net, size))
}

fn network_config(
    a_bridge: Option<String>,
    a_bip: Option<String>,
    a_pools: &[String],
    file: &serde_json::Value,
) -> Result<Option<barge_network::NetworkConfig>> {
    let mut cfg = barge_network::NetworkConfig::default();
    let bridge = a_bridge.or_else(|| {
        file.get("bridge")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    });
    match bridge.as_deref() {
        Some("none") => return Ok(None),
        Some(b) if !b.is_empty() => cfg.bridge_name = b.to_string(),
        _ => {}
    }
    let bip = a_bip.or_else(|| file.get("bip").and_then(|v| v.as_str()).map(str::to_string));
    if let Some(b) = bip {
        cfg.bridge_ip = b.parse().with_context(|| {
            format!("invalid --bip {b:?}: want an address with a prefix length")
        })?;
    }
    let mut pools = Vec::new();
    if let Some(list) = file.get("default-address-pools").and_then(|v| v.as_array()) {
        for p in list {
            let base = p.get("base").and_then(|v| v.as_str()).unwrap_or_default();
            let size = p.get("size").and_then(|v| v.as_u64()).unwrap_or(24);
            pools.push(parse_pool(base, size)?);
        }
    }
    for p in a_pools {
        let mut base = "";
        let mut size = 24u64;
        for kv in p.split(',') {
            match kv.split_once('=') {
                Some(("base", v)) => base = v,
                Some(("size", v)) => {
                    size = v
                        .parse()
                        .with_context(|| format!("invalid size in --default-address-pool {p:?}"))?
                }
                _ => bail!("invalid --default-address-pool {p:?}: want base=CIDR,size=N"),
            }
        }
        pools.push(parse_pool(base, size)?);
    }
    if !pools.is_empty() {
        cfg.default_pools = pools;
    }
    Ok(Some(cfg))
}

fn parse_ulimit(s: &str) -> Result<(String, i64, i64)> {
    crate::cli::opts::parse_ulimit_parts(s).map_err(|e| anyhow::anyhow!(e))
}

fn settings(a: Args) -> Result<Settings> {
    let file: serde_json::Value = match std::fs::read(&a.config_file) {
        Ok(d) => serde_json::from_slice(&d)
            .with_context(|| format!("{}: invalid JSON", a.config_file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(e).with_context(|| format!("reading {}", a.config_file.display())),
    };
    if !file.is_object() {
        bail!("{}: must be a JSON object", a.config_file.display());
    }
    let fstr = |k: &str| file.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let flist = |k: &str| -> Vec<String> {
        file.get(k)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut hosts = if a.host.is_empty() {
        flist("hosts")
    } else {
        a.host.clone()
    };
    if hosts.is_empty() {
        hosts.push("unix:///run/barge/barge.sock".into());
    }
    let tls = tls_settings(&a, &hosts, &file)?;
    let mut ulimits = Vec::new();
    match file.get("default-ulimits") {
        None => {}
        Some(serde_json::Value::Object(m)) => {
            for (name, v) in m {
                // dockerd's shape: {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}};
                // checked as the flag's name=soft:hard is.
                let num = |k: &str| v.get(k).and_then(|x| x.as_i64());
                let (Some(soft), hard) = (num("Soft"), num("Hard")) else {
                    bail!(
                        "{}: default-ulimits.{name} needs an integer \"Soft\" (and \"Hard\"), \
                         e.g. {{\"Name\": \"{name}\", \"Soft\": 1024, \"Hard\": 2048}}",
                        a.config_file.display()
                    );
                };
                let hard = hard.unwrap_or(soft);
                let u = parse_ulimit(&format!("{name}={soft}:{hard}"))
                    .with_context(|| format!("{}: default-ulimits", a.config_file.display()))?;
                ulimits.push(u);
            }
        }
        Some(_) => bail!(
            "{}: default-ulimits must be an object of name -> {{\"Soft\": n, \"Hard\": n}}",
            a.config_file.display()
        ),
    }
    for u in &a.default_ulimit {
        let u = parse_ulimit(u)?;
        ulimits.retain(|x: &(String, i64, i64)| x.0 != u.0);
        ulimits.push(u);
    }
    let exec_root = a
        .exec_root
        .or_else(|| fstr("exec-root").map(PathBuf::from))
        .unwrap_or_else(|| "/run/barge".into());
    let network = network_config(
        a.bridge.clone(),
        a.bip.clone(),
        &a.default_address_pool,
        &file,
    )?;
    let mut insecure = a.insecure_registry;
    insecure.extend(flist("insecure-registries"));
    if file.get("metrics-addr").is_some_and(|v| !v.is_string()) {
        bail!(
            "{}: metrics-addr must be a string such as \"127.0.0.1:9323\"",
            a.config_file.display()
        );
    }
    let metrics_addr = match a.metrics_addr.or_else(|| fstr("metrics-addr")) {
        Some(m) if !m.is_empty() => Some(m.parse::<std::net::SocketAddr>().with_context(|| {
            format!("invalid metrics address {m:?}: want host:port, e.g. 127.0.0.1:9323")
        })?),
        _ => None,
    };
    Ok(Settings {
        metrics_addr,
        hosts,
        tls,
        data_root: a
            .data_root
            .or_else(|| fstr("data-root").map(PathBuf::from))
            .unwrap_or_else(|| "/var/lib/barge".into()),
        pidfile: a
            .pidfile
            .or_else(|| fstr("pidfile").map(PathBuf::from))
            .unwrap_or_else(|| exec_root.join("barge.pid")),
        exec_root,
        insecure,
        ulimits,
        init: a.init || file.get("init").and_then(|v| v.as_bool()).unwrap_or(false),
        network,
        log_level: if a.debug {
            "debug".into()
        } else {
            a.log_level
                .or_else(|| fstr("log-level"))
                .unwrap_or_else(|| "info".into())
        },
    })
}

/// The address of a `tcp://IP[:PORT]` host; without a port, dockerd's: 2376 for TLS, 2375
/// for plain TCP.
fn tcp_addr(h: &str, tls: bool) -> Result<Option<std::net::SocketAddr>> {
    let Some(rest) = h.strip_prefix("tcp://") else {
        return Ok(None);
    };
    let rest = rest.trim_end_matches('/');
    if let Ok(a) = rest.parse() {
        return Ok(Some(a));
    }
    match rest.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(Some(std::net::SocketAddr::new(
            ip,
            if tls { 2376 } else { 2375 },
        ))),
        Err(_) => bail!("invalid host {h:?}: want tcp://IP:PORT, e.g. tcp://127.0.0.1:2376"),
    }
}

/// Checks the hosts and, when one is tcp://, loads its TLS configuration. TCP is opt-in (a
/// `-H tcp://` host) and is then TLS with client certificates, unless plain TCP is asked for
/// by name with `--tls=false` (daemon.json `"tls": false`), as dockerd >= 27 requires: the
/// API is root on this machine. `--tls` without `--tlsverify` (TLS that lets any client in)
/// is refused: it protects no more than plain TCP and reads as if it did.
fn tls_settings(
    a: &Args,
    hosts: &[String],
    file: &serde_json::Value,
) -> Result<Option<barge_api::tls::ServerConfig>> {
    let fpath = |k: &str| file.get(k).and_then(|v| v.as_str()).map(PathBuf::from);
    let mut tcp = false;
    for h in hosts {
        if tcp_addr(h, true)?.is_some() {
            tcp = true;
        } else if !h.starts_with("unix://") {
            bail!("unsupported host {h:?}: want unix:///path or tcp://IP:PORT");
        }
    }
    let tls = a.tls.or_else(|| file.get("tls").and_then(|v| v.as_bool()));
    let verify = a.tlsverify || file.get("tlsverify").and_then(|v| v.as_bool()) == Some(true);
    if tls == Some(false) {
        if verify {
            bail!("--tls=false contradicts --tlsverify: choose one");
        }
        return Ok(None);
    }
    if !tcp {
        return Ok(None);
    }
    if tls == Some(true) && !verify {
        bail!(
            "refusing --tls without --tlsverify: TLS that does not check client certificates \
             lets anyone who reaches the port control this host; add --tlsverify with \
             --tlscacert (or use --tls=false to serve plain TCP on purpose)"
        );
    }
    let files = (
        a.tlscacert.clone().or_else(|| fpath("tlscacert")),
        a.tlscert.clone().or_else(|| fpath("tlscert")),
        a.tlskey.clone().or_else(|| fpath("tlskey")),
    );
    let (true, (Some(ca), Some(cert), Some(key))) = (verify, files) else {
        bail!(
            "refusing to serve the API over plain TCP: a tcp:// host needs TLS with client \
             certificates (--tlsverify --tlscacert CA.pem --tlscert SERVER.pem --tlskey KEY.pem), \
             or --tls=false to serve it unauthenticated on purpose"
        );
    };
    let cfg = barge_api::tls::server_config(&barge_api::tls::TlsFiles { ca, cert, key })
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
    Ok(Some(cfg))
}

/// Runs the daemon in the foreground; returns the process exit code.
pub fn main(args: Vec<std::ffi::OsString>) -> i32 {
    let a = match Args::try_parse_from(args.iter().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 125 } else { 0 };
        }
    };
    let s = match settings(a) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("barge daemon: {e:#}");
            return 1;
        }
    };
    let level = match s.log_level.as_str() {
        "fatal" => "error",
        l @ ("debug" | "info" | "warn" | "error" | "trace") => l,
        other => {
            eprintln!("barge daemon: invalid log level {other:?}");
            return 1;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("barge daemon: {e}");
            return 1;
        }
    };
    match rt.block_on(run(s)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("barge daemon: {e:#}");
            1
        }
    }
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    if pid <= 0 || unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    // A zombie (killed, not yet reaped) is not a running daemon.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !matches!(
        stat.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next()),
        Some("Z" | "X")
    )
}

fn write_pidfile(p: &Path) -> Result<()> {
    if let Ok(old) = std::fs::read_to_string(p) {
        if let Ok(pid) = old.trim().parse::<i32>() {
            // SAFETY: getpid cannot fail.
            if pid != unsafe { libc::getpid() } && pid_alive(pid) {
                bail!(
                    "pid file found, ensure barge is not running or delete {}",
                    p.display()
                );
            }
        }
    }
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(p, format!("{}", std::process::id()))?;
    Ok(())
}

async fn run(s: Settings) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // A socket another daemon serves is refused before anything is made: no state opened,
    // no bridge or firewall table created in this network namespace.
    for h in &s.hosts {
        if let Some(path) = h.strip_prefix("unix://") {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!("{path} is in use by another daemon");
            }
        }
    }
    std::fs::create_dir_all(&s.exec_root)
        .with_context(|| format!("creating {}", s.exec_root.display()))?;
    std::fs::set_permissions(&s.exec_root, std::fs::Permissions::from_mode(0o700))?;
    std::fs::create_dir_all(&s.data_root)
        .with_context(|| format!("creating {}", s.data_root.display()))?;
    std::fs::set_permissions(&s.data_root, std::fs::Permissions::from_mode(0o711))?;
    write_pidfile(&s.pidfile)?;
    let exe = std::env::current_exe().context("finding the barge executable")?;
    let engine = barge_engine::Engine::open(barge_engine::engine::Options {
        data_root: s.data_root.clone(),
        exec_root: s.exec_root.clone(),
        default_ulimits: s.ulimits.clone(),
        default_init: s.init,
        exe,
    })
    .context("opening the engine state")?;
    // The builder's cache, RUN bundles and runtime state live under <data-root>/builder.
    let builder = match barge_build::Builder::new(engine.store.clone(), s.data_root.join("builder"))
    {
        Ok(b) => Some(Arc::new(b)),
        Err(e) => {
            tracing::error!("the builder cannot be set up, builds will fail: {e}");
            None
        }
    };
    // Networking: every netlink/nft call runs on a blocking thread of this process, which
    // lives in the daemon's (host) network namespace.
    if let Some(ncfg) = s.network.clone() {
        barge_api::remove_stale_build_netns(&s.exec_root);
        let nroot = s.data_root.join("network");
        let nm = tokio::task::spawn_blocking(move || -> Result<barge_network::NetworkManager> {
            let nm = barge_network::NetworkManager::open(&nroot, ncfg)
                .context("opening the network state")?;
            let report = nm.repair().context("repairing the networks")?;
            barge_api::remove_stale_build_endpoints(&nm);
            if !report.removed_endpoints.is_empty() || !report.removed_links.is_empty() {
                tracing::info!(
                    "network repair: removed {} dead endpoint(s), {} orphan link(s)",
                    report.removed_endpoints.len(),
                    report.removed_links.len()
                );
            }
            nm.ensure_default_network()
                .context("creating the default bridge network")?;
            Ok(nm)
        })
        .await
        .context("network start-up")??;
        engine.set_network_manager(Arc::new(nm));
    }
    let api = Arc::new(barge_api::Api {
        builder,
        engine: engine.clone(),
        info: barge_api::DaemonInfo {
            data_root: s.data_root.display().to_string(),
            exec_root: s.exec_root.display().to_string(),
            insecure_registries: s.insecure.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
    });
    // Live restore first: the API answers only once every record is settled.
    engine.restore().await;
    engine.start_zygote();
    // Metrics before the API: a client that sees the API up finds them listening too.
    if let Some(addr) = s.metrics_addr {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening for metrics on {addr}"))?;
        if !addr.ip().is_loopback() {
            // Like dockerd's: the endpoint has no authentication; it shows container names.
            tracing::warn!(
                "metrics on {addr} are reachable from other hosts, without authentication"
            );
        }
        tracing::info!("metrics listening on http://{addr}/metrics");
        tokio::spawn(barge_api::metrics::serve_metrics(engine.clone(), l));
    }
    let mut sockets = Vec::new();
    for h in &s.hosts {
        if let Some(addr) = tcp_addr(h, s.tls.is_some())? {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {h}"))?;
            if let Some(tls) = &s.tls {
                tracing::info!("API listening on {addr} (TLS, client certificates required)");
                tokio::spawn(barge_api::tls::serve_tls(api.clone(), l, tls.clone()));
            } else {
                // Only reachable with an explicit --tls=false.
                tracing::warn!(
                    "API listening on {addr} over plain TCP (--tls=false): anyone who can \
                     connect to it controls this host"
                );
                tokio::spawn(barge_api::serve_tcp(api.clone(), l));
            }
            continue;
        }
        let Some(path) = h.strip_prefix("unix://") else {
            bail!("unsupported host {h:?}: want unix:///path or tcp://IP:PORT");
        };
        let path = PathBuf::from(path);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        // Checked again: another daemon may have taken it meanwhile.
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            bail!("{} is in use by another daemon", path.display());
        }
        let _ = std::fs::remove_file(&path);
        let l = tokio::net::UnixListener::bind(&path)
            .with_context(|| format!("listening on {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
        tracing::info!("API listening on {}", path.display());
        sockets.push(path);
        tokio::spawn(barge_api::serve(api.clone(), l));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down; containers keep running (live restore)");
    for p in sockets {
        let _ = std::fs::remove_file(p);
    }
    let _ = std::fs::remove_file(&s.pidfile);
    Ok(())
}
