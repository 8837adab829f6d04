//! [`NetworkManager`]: the records on disk, the kernel objects and the DNS servers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::dns::{self, DnsServer};
use crate::ipam::{self, Ipv4Net, Ipv6Net};
use crate::netlink::Netlink;
use crate::nft::{self, NftNet, NftPort};
use crate::ports::{PortMapping, PortSpec, Proto};
use crate::reaper::Reaper;
use crate::NetworkError;

/// Daemon-level network configuration.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Device name of the default bridge (`barge0`).
    pub bridge_name: String,
    /// Gateway address and prefix of the default bridge (`172.17.0.1/16`).
    pub bridge_ip: Ipv4Net,
    /// Pools user networks get their subnet from when none is given: (pool, prefix length).
    pub default_pools: Vec<(Ipv4Net, u8)>,
    /// The host's resolv.conf (read for forwarding and for the default bridge's containers).
    pub host_resolv_conf: PathBuf,
    /// Name of barge's nftables table (family `ip`).
    pub nft_table: String,
    /// Nameservers written into containers' resolv.conf on the default bridge when the host
    /// has only loopback resolvers (Docker's 8.8.8.8/8.8.4.4). No traffic is sent to them here.
    pub fallback_nameservers: Vec<Ipv4Addr>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        let pools = (18..=31)
            .map(|b| {
                (
                    Ipv4Net {
                        addr: Ipv4Addr::new(172, b, 0, 0),
                        prefix: 16,
                    },
                    16,
                )
            })
            .chain(std::iter::once((
                Ipv4Net {
                    addr: Ipv4Addr::new(192, 168, 0, 0),
                    prefix: 16,
                },
                20,
            )))
            .collect();
        Self {
            bridge_name: "barge0".into(),
            bridge_ip: Ipv4Net {
                addr: Ipv4Addr::new(172, 17, 0, 1),
                prefix: 16,
            },
            default_pools: pools,
            host_resolv_conf: "/etc/resolv.conf".into(),
            nft_table: "barge".into(),
            fallback_nameservers: vec![Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)],
        }
    }
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    /// Network name (unique).
    pub name: String,
    /// Subnet; `None` takes the next free one from the default pools.
    pub subnet: Option<Ipv4Net>,
    /// Gateway; `None` is the first address of the subnet.
    pub gateway: Option<Ipv4Addr>,
    /// Sub-range dynamic addresses are taken from.
    pub ip_range: Option<Ipv4Net>,
    /// No outbound access, no forwarding of DNS queries.
    pub internal: bool,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// IPv6 on (`--ipv6`): the network is dual stack.
    pub ipv6: bool,
    /// IPv6 subnet; `None` with `ipv6` takes a random unique local /64 (RFC 4193).
    pub subnet6: Option<Ipv6Net>,
    /// IPv6 gateway; `None` is the first address of the IPv6 subnet.
    pub gateway6: Option<Ipv6Addr>,
    /// Sub-range dynamic IPv6 addresses are taken from.
    pub ip_range6: Option<Ipv6Net>,
    /// `AuxiliaryAddresses` of the IPv4 config: name -> address, kept out of allocation.
    pub aux_addresses: BTreeMap<String, String>,
    /// `AuxiliaryAddresses` of the IPv6 config.
    pub aux_addresses6: BTreeMap<String, String>,
}

/// A network, as stored and as reported (`network ls/inspect`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkInfo {
    /// 64 hex digits.
    pub id: String,
    /// Name (`bridge` for the default network).
    pub name: String,
    /// Always `bridge`.
    pub driver: String,
    /// Linux bridge device (`barge0`, `br-<12hex>`).
    pub bridge: String,
    /// Subnet.
    pub subnet: Ipv4Net,
    /// Gateway (the bridge's address; the DNS address of user networks).
    pub gateway: Ipv4Addr,
    /// Optional dynamic-allocation range.
    pub ip_range: Option<Ipv4Net>,
    /// Internal network.
    pub internal: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// The default bridge network.
    pub default: bool,
    /// IPv6 subnet (`None`: IPv4 only).
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    /// IPv6 gateway (the bridge's IPv6 address), set with `subnet6`.
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// Optional dynamic-allocation range for IPv6.
    #[serde(default)]
    pub ip_range6: Option<Ipv6Net>,
    /// IPv4 `AuxiliaryAddresses` (name -> address as sent; validated at create): addresses
    /// the IPAM never gives to a container, shown by inspect.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, String>,
    /// IPv6 `AuxiliaryAddresses`, as `aux_addresses`.
    #[serde(default)]
    pub aux_addresses6: BTreeMap<String, String>,
}

impl NetworkInfo {
    /// The IPv4 auxiliary addresses (valid: checked at create).
    pub fn reserved4(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> + '_ {
        self.aux_addresses
            .iter()
            .filter_map(|(n, a)| a.parse().ok().map(|ip| (n.as_str(), ip)))
    }

    /// The IPv6 auxiliary addresses (valid: checked at create).
    pub fn reserved6(&self) -> impl Iterator<Item = (&str, Ipv6Addr)> + '_ {
        self.aux_addresses6
            .iter()
            .filter_map(|(n, a)| a.parse().ok().map(|ip| (n.as_str(), ip)))
    }
}

/// Checks `AuxiliaryAddresses` against their subnet: each must parse as an address of the
/// family (`parse`) and be inside the subnet (`inside`).
fn check_aux<A>(
    aux: &BTreeMap<String, String>,
    subnet: &dyn std::fmt::Display,
    parse: impl Fn(&str) -> Option<A>,
    inside: impl Fn(A) -> bool,
) -> Result<(), NetworkError> {
    for (name, address) in aux {
        let bad = |reason: String| NetworkError::InvalidAuxAddress {
            name: name.clone(),
            address: address.clone(),
            reason,
        };
        let ip = parse(address).ok_or_else(|| bad(format!("not an address of subnet {subnet}")))?;
        if !inside(ip) {
            return Err(bad(format!("not inside subnet {subnet}")));
        }
    }
    Ok(())
}

/// What the engine passes to [`NetworkManager::connect`].
#[derive(Debug, Clone, Default)]
pub struct ConnectRequest {
    /// Full container id.
    pub container_id: String,
    /// Container name (resolvable on user networks).
    pub name: String,
    /// `--network-alias` values.
    pub aliases: Vec<String>,
    /// The container's network namespace (`/proc/<pid>/ns/net` or a bind-mounted nsfs file).
    pub netns_path: PathBuf,
    /// `--ip`.
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6` (the network must have IPv6).
    pub ipv6: Option<Ipv6Addr>,
    /// `--mac-address`; `None` derives it from the IPv4 address (`02:42:` + its bytes).
    pub mac: Option<[u8; 6]>,
    /// Published ports (`-p`, and `-P` expanded by the engine to `PortSpec{host_port: None}`).
    pub ports: Vec<PortSpec>,
    /// Links on this network, (target container name, alias): the alias resolves to the
    /// target for this container only (dockerd's links on user networks).
    pub links: Vec<(String, String)>,
    /// `IPAMConfig.LinkLocalIPs`: extra link-local addresses (169.254/16, fe80::/10) put on
    /// the container's interface, as dockerd does; the caller validated them.
    pub link_local: Vec<IpAddr>,
}

/// A container's attachment to one network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Endpoint {
    /// 64 hex digits.
    pub endpoint_id: String,
    /// Network id.
    pub network_id: String,
    /// Network name.
    pub network_name: String,
    /// Container id.
    pub container_id: String,
    /// Container name.
    pub name: String,
    /// Aliases.
    pub aliases: Vec<String>,
    /// Interface name inside the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// Host side of the veth pair.
    pub host_veth: String,
    /// Address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Gateway (`None` on internal networks: no default route is installed).
    pub gateway: Option<Ipv4Addr>,
    /// MAC address (`02:42:` + the IPv4 bytes unless one was asked for).
    pub mac: String,
    /// IPv6 address (networks with IPv6).
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// IPv6 prefix length (0 without IPv6).
    #[serde(default)]
    pub prefix_len6: u8,
    /// IPv6 gateway (`None` without IPv6 and on internal networks).
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// Published ports in force.
    pub ports: Vec<PortMapping>,
    /// The namespace path given at connect (used to move the default route to another
    /// network when this one is disconnected).
    #[serde(default)]
    pub netns_path: PathBuf,
    /// Links, (target container name, alias), resolved by this network's DNS for this
    /// endpoint only.
    #[serde(default)]
    pub links: Vec<(String, String)>,
}

/// What [`NetworkManager::repair`] found and fixed.
#[derive(Debug, Default, Clone)]
pub struct RepairReport {
    /// Links (bridges, veths) marked as barge's with no record, deleted.
    pub removed_links: Vec<String>,
    /// Endpoint records whose veth was gone (container died), deleted: (network id, container id).
    pub removed_endpoints: Vec<(String, String)>,
    /// Bridges recreated from records.
    pub recreated_bridges: Vec<String>,
}

struct Inner {
    nets: BTreeMap<String, NetworkInfo>,
    eps: BTreeMap<(String, String), Endpoint>,
    reservations: HashMap<(String, String), Vec<OwnedFd>>,
    dns: HashMap<String, DnsServer>,
    nl: Netlink,
}

/// The network subsystem. One per daemon; every call must come from a thread in the host's
/// network namespace (the namespace `open` was called in).
pub struct NetworkManager {
    dir: PathBuf,
    cfg: NetworkConfig,
    inner: Mutex<Inner>,
    reaper: Reaper,
}

/// How long network removal waits for the links of exited containers to be deleted.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

const ALIAS_PREFIX: &str = "barge:";

// The engine shares one manager between tasks.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<NetworkManager>();
};

fn state_err(path: &Path, source: io::Error) -> NetworkError {
    NetworkError::State {
        path: path.to_path_buf(),
        source,
    }
}

fn nl_err(op: impl Into<String>) -> impl FnOnce(io::Error) -> NetworkError {
    let op = op.into();
    move |source| NetworkError::Netlink { op, source }
}

/// Writes `value` as JSON through temp + rename, with fsyncs when `durable`: a record is then
/// the old or the new one after a crash of the process or of the machine. Endpoint records
/// are not durable: a rename is still atomic for a crashed daemon, and after a crash of the
/// machine no container (so no endpoint) is left, and `open` drops what the crash tore.
/// The two fsyncs were most of a connect's time.
fn write_record<T: Serialize>(path: &Path, value: &T, durable: bool) -> Result<(), NetworkError> {
    let data =
        serde_json::to_vec_pretty(value).map_err(|e| state_err(path, io::Error::other(e)))?;
    let how = barge_util::fs::AtomicWrite {
        mode: 0o644,
        durability: if durable {
            barge_util::fs::Durability::FileAndDir
        } else {
            barge_util::fs::Durability::None
        },
    };
    barge_util::fs::write_atomic(path, &data, how).map_err(|e| state_err(&e.path, e.source))
}

/// Reads the records of `dir`; unreadable ones are skipped, and deleted when `drop_bad`.
fn read_records<T: DeserializeOwned>(dir: &Path, drop_bad: bool) -> Result<Vec<T>, NetworkError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| state_err(dir, e))? {
        let p = e.map_err(|e| state_err(dir, e))?.path();
        match p.extension().and_then(|x| x.to_str()) {
            Some("json") => {
                let data = fs::read(&p).map_err(|e| state_err(&p, e))?;
                match serde_json::from_slice(&data) {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        tracing::warn!("ignoring unreadable record {}: {e}", p.display());
                        if drop_bad {
                            let _ = fs::remove_file(&p);
                        }
                    }
                }
            }
            Some("tmp") => {
                let _ = fs::remove_file(&p);
            }
            _ => {}
        }
    }
    Ok(out)
}

fn remove_file(path: &Path) -> Result<(), NetworkError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(state_err(path, e)),
        _ => Ok(()),
    }
}

fn random_hex() -> Result<String, NetworkError> {
    let mut b = [0u8; 32];
    let p = Path::new("/dev/urandom");
    File::open(p)
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| state_err(p, e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn write_sysctl(path: &str, value: &str) -> Result<(), NetworkError> {
    fs::write(path, value).map_err(|e| state_err(Path::new(path), e))
}

/// A network name: as dockerd, spaces and punctuation are accepted (`"some network"`); it
/// must start with a letter or digit and hold no `/` and no control character.
fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_alphanumeric()) && c.all(|ch| ch != '/' && !ch.is_control())
}

impl NetworkManager {
    /// Opens (creating) the state under `state_dir` (`networks/`, `endpoints/`). Touches no
    /// kernel object: call [`repair`](Self::repair) next.
    pub fn open(state_dir: &Path, cfg: NetworkConfig) -> Result<Self, NetworkError> {
        for d in ["networks", "endpoints"] {
            let p = state_dir.join(d);
            fs::create_dir_all(&p).map_err(|e| state_err(&p, e))?;
        }
        let nets: Vec<NetworkInfo> = read_records(&state_dir.join("networks"), false)?;
        // an endpoint record torn by a crash of the machine belongs to a container that
        // died with it (see write_record)
        let eps: Vec<Endpoint> = read_records(&state_dir.join("endpoints"), true)?;
        let nets: BTreeMap<_, _> = nets.into_iter().map(|n| (n.id.clone(), n)).collect();
        let eps = eps
            .into_iter()
            .filter(|e| nets.contains_key(&e.network_id))
            .map(|e| ((e.network_id.clone(), e.container_id.clone()), e))
            .collect();
        let nl = Netlink::new().map_err(nl_err("opening a netlink socket"))?;
        let reaper = Reaper::start().map_err(nl_err("starting the link reaper"))?;
        Ok(Self {
            dir: state_dir.to_path_buf(),
            cfg,
            reaper,
            inner: Mutex::new(Inner {
                nets,
                eps,
                reservations: HashMap::new(),
                dns: HashMap::new(),
                nl,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn net_path(&self, id: &str) -> PathBuf {
        self.dir.join("networks").join(format!("{id}.json"))
    }

    fn ep_path(&self, net: &str, cid: &str) -> PathBuf {
        self.dir.join("endpoints").join(format!("{net}-{cid}.json"))
    }

    fn find(inner: &Inner, key: &str) -> Result<String, NetworkError> {
        if key == "default" {
            // Docker's NetworkMode "default" is the default bridge
            if let Some(n) = inner.nets.values().find(|n| n.default) {
                return Ok(n.id.clone());
            }
        }
        // dockerd's order: the full ID, then the name, then an ID prefix (a network may be
        // named like another's ID; the map's order must not decide which one is meant).
        if inner.nets.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(n) = inner.nets.values().find(|n| n.name == key) {
            return Ok(n.id.clone());
        }
        let by_prefix: Vec<_> = inner
            .nets
            .keys()
            .filter(|id| key.len() >= 3 && id.starts_with(key))
            .collect();
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(NetworkError::NotFound(key.to_string())),
            _ => Err(NetworkError::Ambiguous(key.to_string())),
        }
    }

    fn host_resolv(&self) -> String {
        fs::read_to_string(&self.cfg.host_resolv_conf).unwrap_or_default()
    }

    /// Host nameservers usable from containers (loopback ones skipped).
    fn upstreams(&self) -> Vec<Ipv4Addr> {
        dns::nameservers(&self.host_resolv())
            .iter()
            .filter_map(|s| s.parse::<Ipv4Addr>().ok())
            .filter(|ip| !ip.is_loopback())
            .collect()
    }

    /// Creates/fixes the bridge of `net` in the kernel (idempotent). Returns whether it was
    /// created.
    fn setup_bridge(&self, nl: &mut Netlink, net: &NetworkInfo) -> Result<bool, NetworkError> {
        let (idx, created) = match nl
            .link_index(&net.bridge)
            .map_err(nl_err("looking up bridge"))?
        {
            Some(i) => (i, false),
            None => {
                let alias = format!("{ALIAS_PREFIX}{}", &net.id[..12]);
                let i = nl
                    .add_bridge(&net.bridge, ipam::mac_from_ip(net.gateway), &alias)
                    .map_err(nl_err(format!("creating bridge {}", net.bridge)))?;
                (i, true)
            }
        };
        let r = (|| {
            nl.add_addr(idx, net.gateway, net.subnet.prefix)
                .map_err(nl_err(format!("adding {} to {}", net.gateway, net.bridge)))?;
            nl.set_up(idx, None)
                .map_err(nl_err(format!("bringing {} up", net.bridge)))?;
            if let (Some(s6), Some(g6)) = (net.subnet6, net.gateway6) {
                // a host booted with IPv6 off by default would refuse the address
                write_sysctl(
                    &format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", net.bridge),
                    "0",
                )?;
                // after the link is up: the kernel drops IPv6 state of a link coming up
                nl.add_addr6(idx, g6, s6.prefix)
                    .map_err(nl_err(format!("adding {g6} to {}", net.bridge)))?;
                if !net.internal {
                    // containers' outbound IPv6 is routed by the host, as dockerd does
                    write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")?;
                }
            }
            if !net.internal {
                // published ports reached through 127.0.0.1 are routed out of the bridge
                write_sysctl(
                    &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge),
                    "1",
                )?;
                write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            if created {
                let _ = nl.del_link(idx);
            }
            return Err(e);
        }
        Ok(created)
    }

    /// Rewrites the published-port rules only (endpoint changes).
    fn apply_nft_ports(&self, inner: &Inner) -> Result<(), NetworkError> {
        nft::apply(&nft::build_ports(
            &self.cfg.nft_table,
            &Self::nft_ports(inner),
            Self::any_v6(inner),
        ))
        .or_else(|e| {
            tracing::warn!("nftables port update failed ({e}); rewriting the table");

            self.apply_nft(inner)
        })
    }

    fn nft_ports(inner: &Inner) -> Vec<NftPort> {
        inner
            .eps
            .values()
            .flat_map(|e| {
                e.ports.iter().map(move |p| NftPort {
                    host_ip: p.host_ip,
                    host_port: p.host_port,
                    proto: p.proto,
                    container_ip: e.ip,
                    container_ip6: e.ip6,
                    container_port: p.container_port,
                })
            })
            .collect()
    }

    /// Whether any network has IPv6 (then the `ip6` table exists).
    fn any_v6(inner: &Inner) -> bool {
        inner.nets.values().any(|n| n.subnet6.is_some())
    }

    /// Rewrites the whole table (network changes, repair).
    fn apply_nft(&self, inner: &Inner) -> Result<(), NetworkError> {
        let nets: Vec<NftNet> = inner
            .nets
            .values()
            .map(|n| NftNet {
                bridge: n.bridge.clone(),
                subnet: n.subnet,
                subnet6: n.subnet6,
                internal: n.internal,
            })
            .collect();
        let ports = Self::nft_ports(inner);
        nft::apply(&nft::build(&self.cfg.nft_table, &nets, &ports))
    }

    fn start_dns(&self, inner: &mut Inner, net_id: &str) -> Result<(), NetworkError> {
        let Some(net) = inner.nets.get(net_id) else {
            return Ok(());
        };
        if net.default || inner.dns.contains_key(net_id) {
            return Ok(());
        }
        let ups = if net.internal {
            Vec::new()
        } else {
            self.upstreams()
        };
        let srv =
            DnsServer::start(net.gateway, net.subnet, ups).map_err(|e| NetworkError::Dns {
                network: net.name.clone(),
                source: e,
            })?;
        inner.dns.insert(net_id.to_string(), srv);
        Self::refresh_dns(inner, net_id);
        Ok(())
    }

    fn refresh_dns(inner: &Inner, net_id: &str) {
        let Some(srv) = inner.dns.get(net_id) else {
            return;
        };
        let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for e in inner.eps.values().filter(|e| e.network_id == net_id) {
            let mut names: BTreeSet<String> =
                e.aliases.iter().map(|a| a.to_ascii_lowercase()).collect();
            if !e.name.is_empty() {
                names.insert(e.name.trim_start_matches('/').to_ascii_lowercase());
            }
            if e.container_id.len() >= 12 {
                names.insert(e.container_id[..12].to_ascii_lowercase());
            }
            for n in names {
                let ips = map.entry(n).or_default();
                ips.push(e.ip.into());
                ips.extend(e.ip6.map(IpAddr::from));
            }
        }
        // Links: per client address, alias -> the target's address on this network, while
        // the target is on it (a target that joins later is picked up by that refresh).
        let mut links: HashMap<Ipv4Addr, HashMap<String, Vec<IpAddr>>> = HashMap::new();
        for e in inner.eps.values().filter(|e| e.network_id == net_id) {
            for (target, alias) in &e.links {
                let target = target.trim_start_matches('/').to_ascii_lowercase();
                if let Some(ips) = map.get(&target) {
                    links
                        .entry(e.ip)
                        .or_default()
                        .insert(alias.to_ascii_lowercase(), ips.clone());
                }
            }
        }
        if let Ok(mut r) = srv.records.write() {
            *r = map;
        }
        if let Ok(mut r) = srv.links.write() {
            *r = links;
        }
    }

    /// Start-up reconciliation after a (possibly crashed) previous run: recreates the bridges
    /// of recorded networks, drops endpoint records whose veth is gone, deletes links marked as
    /// barge's that no record owns, re-reserves published host ports, rewrites the nftables
    /// table from the records and starts the DNS servers.
    pub fn repair(&self) -> Result<RepairReport, NetworkError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut report = RepairReport::default();
        let links = inner.nl.links().map_err(nl_err("listing links"))?;
        let names: BTreeSet<&str> = links.iter().map(|l| l.name.as_str()).collect();
        // endpoints whose container is gone
        let dead: Vec<(String, String)> = inner
            .eps
            .iter()
            .filter(|(_, e)| !names.contains(e.host_veth.as_str()))
            .map(|(k, _)| k.clone())
            .collect();
        for k in dead {
            remove_file(&self.ep_path(&k.0, &k.1))?;
            inner.eps.remove(&k);
            report.removed_endpoints.push(k);
        }
        // links we own but no record does
        let owned: BTreeSet<String> = inner
            .nets
            .values()
            .map(|n| n.bridge.clone())
            .chain(inner.eps.values().map(|e| e.host_veth.clone()))
            .collect();
        for l in &links {
            let ours = l
                .alias
                .as_deref()
                .is_some_and(|a| a.starts_with(ALIAS_PREFIX));
            if ours && !owned.contains(&l.name) {
                inner
                    .nl
                    .del_link(l.index)
                    .map_err(nl_err(format!("deleting {}", l.name)))?;
                report.removed_links.push(l.name.clone());
            }
        }
        let nets: Vec<NetworkInfo> = inner.nets.values().cloned().collect();
        for n in &nets {
            if self.setup_bridge(&mut inner.nl, n)? {
                report.recreated_bridges.push(n.bridge.clone());
            }
        }
        // re-attach surviving veths (their bridge may have been recreated)
        for e in inner.eps.values() {
            let Some(net) = inner.nets.get(&e.network_id) else {
                continue;
            };
            let br = inner
                .nl
                .link_index(&net.bridge)
                .map_err(nl_err("looking up bridge"))?;
            let v = inner
                .nl
                .link_index(&e.host_veth)
                .map_err(nl_err("looking up veth"))?;
            if let (Some(br), Some(v)) = (br, v) {
                inner
                    .nl
                    .set_up(v, Some(br))
                    .map_err(nl_err(format!("attaching {}", e.host_veth)))?;
            }
        }
        inner.reservations.clear();
        let keys: Vec<_> = inner.eps.keys().cloned().collect();
        for k in keys {
            let ports = inner.eps[&k].ports.clone();
            let v6 = inner.eps[&k].ip6.is_some();
            let mut fds = Vec::new();
            for p in &ports {
                match reserve(p.host_ip, Some(p.host_port), p.proto, v6) {
                    Ok((_, fd)) => fds.extend(fd),
                    Err(e) => tracing::warn!("re-reserving a published port: {e}"),
                }
            }
            inner.reservations.insert(k, fds);
        }
        self.apply_nft(inner)?;
        for n in &nets {
            self.start_dns(inner, &n.id)?;
        }
        Ok(report)
    }

    /// Creates the default bridge network (`bridge`, device `barge0`) if it does not exist.
    pub fn ensure_default_network(&self) -> Result<NetworkInfo, NetworkError> {
        if let Some(n) = self.lock().nets.values().find(|n| n.default) {
            return Ok(n.clone());
        }
        self.create_inner(
            NetworkSpec {
                name: "bridge".into(),
                subnet: Some(self.cfg.bridge_ip.trunc()),
                gateway: Some(self.cfg.bridge_ip.addr),
                ..Default::default()
            },
            true,
        )
    }

    /// Creates a user-defined bridge network (`br-<12hex>`), with its DNS server on the gateway.
    pub fn create_network(&self, spec: NetworkSpec) -> Result<NetworkInfo, NetworkError> {
        self.create_inner(spec, false)
    }

    fn create_inner(&self, spec: NetworkSpec, default: bool) -> Result<NetworkInfo, NetworkError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if !valid_name(&spec.name) {
            return Err(NetworkError::InvalidName(spec.name));
        }
        if inner.nets.values().any(|n| n.name == spec.name) {
            return Err(NetworkError::NameInUse(spec.name));
        }
        let used: Vec<Ipv4Net> = inner.nets.values().map(|n| n.subnet).collect();
        let subnet = match spec.subnet {
            Some(s) => {
                ipam::validate_subnet(&s)?;
                if let Some(o) = inner.nets.values().find(|n| n.subnet.overlaps(&s)) {
                    return Err(NetworkError::Overlap {
                        subnet: s,
                        other: o.name.clone(),
                        existing: o.subnet,
                    });
                }
                s
            }
            None => {
                // also stay clear of the host's own networks (e.g. a LAN inside a pool)
                let mut used = used;
                let host = inner
                    .nl
                    .addrs(None)
                    .map_err(nl_err("listing host addresses"))?;
                used.extend(
                    host.into_iter()
                        .filter(|(_, ip, _)| !ip.is_loopback())
                        .filter_map(|(_, ip, p)| Ipv4Net::new(ip, p).ok())
                        .map(|n| n.trunc()),
                );
                ipam::allocate_subnet(&self.cfg.default_pools, &used)?
            }
        };
        let gateway = spec.gateway.unwrap_or_else(|| subnet.first_host());
        if !ipam::is_host_addr(&subnet, gateway) {
            return Err(NetworkError::OutsideSubnet {
                ip: gateway,
                subnet,
                network: spec.name,
            });
        }
        if let Some(r) = spec.ip_range {
            if !subnet.contains(r.network()) || r.prefix < subnet.prefix {
                return Err(NetworkError::InvalidSubnet {
                    subnet: r.to_string(),
                    reason: format!("ip-range is not inside subnet {subnet}"),
                });
            }
        }
        check_aux(
            &spec.aux_addresses,
            &subnet,
            |a| a.parse::<Ipv4Addr>().ok(),
            |ip| subnet.contains(ip),
        )?;
        let id = random_hex()?;
        let (subnet6, gateway6) = self.plan_v6(inner, &spec, &id)?;
        match subnet6 {
            Some(s6) => check_aux(
                &spec.aux_addresses6,
                &s6,
                |a| a.parse::<Ipv6Addr>().ok(),
                |ip| s6.contains(ip),
            )?,
            None => {
                if let Some((name, address)) = spec.aux_addresses6.iter().next() {
                    return Err(NetworkError::InvalidAuxAddress {
                        name: name.clone(),
                        address: address.clone(),
                        reason: "the network has no IPv6 subnet".into(),
                    });
                }
            }
        }
        let bridge = if default {
            self.cfg.bridge_name.clone()
        } else {
            format!("br-{}", &id[..12])
        };
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let net = NetworkInfo {
            id: id.clone(),
            name: spec.name,
            driver: "bridge".into(),
            bridge,
            subnet,
            gateway,
            ip_range: spec.ip_range.map(|r| r.trunc()),
            internal: spec.internal,
            labels: spec.labels,
            created,
            default,
            subnet6,
            gateway6,
            ip_range6: spec.ip_range6.map(|r| r.trunc()),
            aux_addresses: spec.aux_addresses,
            aux_addresses6: spec.aux_addresses6,
        };
        // kernel first, record next, firewall and DNS last; undo on any failure
        self.setup_bridge(&mut inner.nl, &net)?;
        let undo = |inner: &mut Inner| {
            inner.dns.remove(&id);
            inner.nets.remove(&id);
            let _ = remove_file(&self.net_path(&id));
            let _ = inner.nl.del_link_by_name(&net.bridge);
            let _ = self.apply_nft(inner);
        };
        inner.nets.insert(id.clone(), net.clone());
        let r = write_record(&self.net_path(&id), &net, true)
            .and_then(|_| self.apply_nft(inner))
            .and_then(|_| self.start_dns(inner, &id));
        if let Err(e) = r {
            undo(inner);
            return Err(e);
        }
        Ok(net)
    }

    /// The IPv6 subnet and gateway of a network being created (`None`s without IPv6):
    /// validated, clear of other networks' IPv6 subnets. A given subnet with host bits set
    /// is truncated (`2001:db8::1/64` is `2001:db8::/64`), as dockerd did before 26 and as
    /// docker-py's tests still send it; without a subnet a unique local /64 is made from
    /// the network's random id.
    fn plan_v6(
        &self,
        inner: &Inner,
        spec: &NetworkSpec,
        id: &str,
    ) -> Result<(Option<Ipv6Net>, Option<Ipv6Addr>), NetworkError> {
        if !spec.ipv6 {
            if let Some(s) = spec.subnet6 {
                return Err(NetworkError::InvalidSubnet {
                    subnet: s.to_string(),
                    reason: "an IPv6 subnet needs IPv6 enabled on the network (--ipv6)".into(),
                });
            }
            if spec.gateway6.is_some() || spec.ip_range6.is_some() {
                return Err(NetworkError::NoIpv6(spec.name.clone()));
            }
            return Ok((None, None));
        }
        let overlap = |s: &Ipv6Net| {
            inner
                .nets
                .values()
                .find(|n| n.subnet6.is_some_and(|o| o.overlaps(s)))
        };
        let subnet = match spec.subnet6 {
            Some(s) => {
                let s = s.trunc();
                ipam::validate_subnet6(&s)?;
                if let Some(o) = overlap(&s) {
                    return Err(NetworkError::Overlap6 {
                        subnet: s,
                        other: o.name.clone(),
                        existing: o.subnet6.unwrap_or(s),
                    });
                }
                s
            }
            None => {
                let mut bytes = [0u8; 5];
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = u8::from_str_radix(id.get(2 * i..2 * i + 2).unwrap_or("00"), 16)
                        .unwrap_or(0);
                }
                let s = ipam::ula_subnet(&bytes);
                if overlap(&s).is_some() {
                    // 40 random bits: a collision is a one-in-a-trillion event
                    return Err(NetworkError::NoFreeSubnet);
                }
                s
            }
        };
        let gateway = spec.gateway6.unwrap_or_else(|| subnet.first_host());
        if !ipam::is_host_addr6(&subnet, gateway) {
            return Err(NetworkError::OutsideSubnet6 {
                ip: gateway,
                subnet,
                network: spec.name.clone(),
            });
        }
        if let Some(r) = spec.ip_range6 {
            if !subnet.contains(r.network()) || r.prefix < subnet.prefix {
                return Err(NetworkError::InvalidSubnet {
                    subnet: r.to_string(),
                    reason: format!("ip-range is not inside subnet {subnet}"),
                });
            }
        }
        Ok((Some(subnet), Some(gateway)))
    }

    /// Removes a network with no endpoints (the default one cannot be removed): stops its DNS
    /// server, deletes its bridge, its firewall rules and its record.
    pub fn remove_network(&self, id_or_name: &str) -> Result<(), NetworkError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let id = Self::find(inner, id_or_name)?;
        let net = inner.nets[&id].clone();
        if net.default {
            return Err(NetworkError::Predefined(net.name));
        }
        let users: Vec<String> = inner
            .eps
            .values()
            .filter(|e| e.network_id == id)
            .map(|e| {
                if e.name.is_empty() {
                    e.container_id.clone()
                } else {
                    e.name.clone()
                }
            })
            .collect();
        if !users.is_empty() {
            return Err(NetworkError::ActiveEndpoints {
                network: net.name,
                containers: users.join(", "),
            });
        }
        // the links of its exited containers go with it
        self.reaper.settle(SETTLE_LIMIT);
        inner.dns.remove(&id);
        inner
            .nl
            .del_link_by_name(&net.bridge)
            .map_err(nl_err(format!("deleting bridge {}", net.bridge)))?;
        inner.nets.remove(&id);
        self.apply_nft(inner)?;
        remove_file(&self.net_path(&id))
    }

    /// Removes every user network without endpoints that `selected` accepts; returns their
    /// names.
    pub fn prune(
        &self,
        selected: impl Fn(&NetworkInfo) -> bool,
    ) -> Result<Vec<String>, NetworkError> {
        let candidates: Vec<(String, String)> = {
            let inner = self.lock();
            inner
                .nets
                .values()
                .filter(|n| !n.default && !inner.eps.values().any(|e| e.network_id == n.id))
                .filter(|n| selected(n))
                .map(|n| (n.id.clone(), n.name.clone()))
                .collect()
        };
        let mut out = Vec::new();
        for (id, name) in candidates {
            match self.remove_network(&id) {
                Ok(()) => out.push(name),
                Err(NetworkError::ActiveEndpoints { .. }) | Err(NetworkError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// All networks.
    pub fn list(&self) -> Vec<NetworkInfo> {
        self.lock().nets.values().cloned().collect()
    }

    /// One network (by id, name or unique id prefix) and its endpoints.
    pub fn inspect(&self, id_or_name: &str) -> Result<(NetworkInfo, Vec<Endpoint>), NetworkError> {
        let inner = self.lock();
        let id = Self::find(&inner, id_or_name)?;
        let eps = inner
            .eps
            .values()
            .filter(|e| e.network_id == id)
            .cloned()
            .collect();
        Ok((inner.nets[&id].clone(), eps))
    }

    /// The endpoints of a container, on every network.
    pub fn endpoints_of(&self, container_id: &str) -> Vec<Endpoint> {
        self.lock()
            .eps
            .values()
            .filter(|e| e.container_id == container_id)
            .cloned()
            .collect()
    }

    /// Connects a container (its network namespace) to a network: address, veth pair (`ethN`
    /// inside), default route (not on internal networks, and only if the container has none
    /// yet), published ports, DNS names. Nothing is left behind on error.
    pub fn connect(&self, network: &str, req: ConnectRequest) -> Result<Endpoint, NetworkError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let id = Self::find(inner, network)?;
        let net = inner.nets[&id].clone();
        let key = (id.clone(), req.container_id.clone());
        if req.container_id.is_empty() {
            return Err(NetworkError::InvalidName("(empty container id)".into()));
        }
        if inner.eps.contains_key(&key) {
            return Err(NetworkError::AlreadyConnected {
                container: req.container_id,
                network: net.name,
            });
        }
        if net.internal && !req.ports.is_empty() {
            return Err(NetworkError::PortsOnInternal(net.name));
        }
        let mut used: BTreeSet<Ipv4Addr> = inner
            .eps
            .values()
            .filter(|e| e.network_id == id)
            .map(|e| e.ip)
            .collect();
        used.insert(net.gateway);
        used.extend(net.reserved4().map(|(_, ip)| ip));
        if req
            .ipv4
            .is_some_and(|ip| self.reaper.quarantined(&id).contains(&ip.into()))
        {
            // a static address whose previous holder just exited: its link goes soon
            self.reaper.settle(SETTLE_LIMIT);
        }
        let quarantined = self.reaper.quarantined(&id);
        used.extend(quarantined.iter().filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        }));
        let ip = ipam::allocate_ip(
            &net.name,
            &net.subnet,
            net.ip_range.as_ref(),
            &used,
            req.ipv4,
        )?;
        let ip6 = match (net.subnet6, req.ipv6) {
            (None, Some(_)) => return Err(NetworkError::NoIpv6(net.name.clone())),
            (None, None) => None,
            (Some(s6), want) => {
                let mut used6: BTreeSet<Ipv6Addr> = inner
                    .eps
                    .values()
                    .filter(|e| e.network_id == id)
                    .filter_map(|e| e.ip6)
                    .collect();
                used6.extend(net.gateway6);
                used6.extend(net.reserved6().map(|(_, ip)| ip));
                if want.is_some_and(|ip| quarantined.contains(&ip.into())) {
                    // as for IPv4: the previous holder's link goes soon
                    self.reaper.settle(SETTLE_LIMIT);
                } else {
                    used6.extend(quarantined.iter().filter_map(|ip| match ip {
                        IpAddr::V6(a) => Some(*a),
                        IpAddr::V4(_) => None,
                    }));
                }
                Some(ipam::allocate_ip6(
                    &net.name,
                    &s6,
                    net.ip_range6.as_ref(),
                    &used6,
                    want,
                )?)
            }
        };
        // host ports: reserve (bind) them all before touching the kernel
        let mut mappings = Vec::new();
        let mut fds = Vec::new();
        for p in &req.ports {
            let (port, fd) = match (p.host_port, p.host_port_end) {
                (Some(start), Some(end)) if end > start => {
                    let mut found = None;
                    for port in start..=end {
                        if let Ok(r) = reserve(p.host_ip, Some(port), p.proto, ip6.is_some()) {
                            found = Some(r);
                            break;
                        }
                    }
                    match found {
                        Some(r) => r,
                        None => reserve(p.host_ip, Some(end), p.proto, ip6.is_some())?,
                    }
                }
                _ => reserve(p.host_ip, p.host_port, p.proto, ip6.is_some())?,
            };
            mappings.push(PortMapping {
                host_ip: p.host_ip,
                host_port: port,
                container_port: p.container_port,
                proto: p.proto,
            });
            fds.extend(fd);
        }
        let ns = File::open(&req.netns_path).map_err(|source| NetworkError::Netns {
            path: req.netns_path.clone(),
            source,
        })?;
        let mut cnl = Netlink::in_netns(&ns)
            .map_err(nl_err("opening netlink in the container's namespace"))?;
        let existing = cnl
            .links()
            .map_err(nl_err("listing the container's links"))?;
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !existing.iter().any(|l| &l.name == n))
            .unwrap_or_else(|| "eth0".into());
        let endpoint_id = random_hex()?;
        let host_veth = format!("bv{}", &endpoint_id[..12]);
        let mac = req.mac.unwrap_or_else(|| ipam::mac_from_ip(ip));
        if req.mac.is_some() {
            let s = ipam::mac_string(&mac);
            let taken = s == ipam::mac_string(&ipam::mac_from_ip(net.gateway))
                || inner.eps.values().any(|e| e.network_id == id && e.mac == s);
            if taken {
                return Err(NetworkError::MacInUse {
                    mac: s,
                    network: net.name,
                });
            }
        }
        let alias = format!(
            "{ALIAS_PREFIX}{}:{}",
            &id[..12],
            req.container_id.get(..12).unwrap_or(&req.container_id)
        );
        let bridge_idx = crate::netlink::ifindex(&net.bridge)
            .ok_or_else(|| NetworkError::BridgeMissing(net.bridge.clone()))?;
        // one request makes both ends, the host end a port of the bridge; it comes up last
        let vidx = inner
            .nl
            .add_veth(&host_veth, Some(bridge_idx), &alias, &ifname, &ns, mac)
            .map_err(nl_err(format!("creating veth pair {host_veth}/{ifname}")))?;
        let ep = Endpoint {
            endpoint_id,
            network_id: id.clone(),
            network_name: net.name.clone(),
            container_id: req.container_id.clone(),
            name: req.name.clone(),
            aliases: req.aliases.clone(),
            ifname: ifname.clone(),
            host_veth: host_veth.clone(),
            ip,
            prefix_len: net.subnet.prefix,
            gateway: (!net.internal).then_some(net.gateway),
            mac: ipam::mac_string(&mac),
            ports: mappings,
            netns_path: req.netns_path.clone(),
            ip6,
            prefix_len6: net.subnet6.map_or(0, |s| s.prefix),
            gateway6: net.gateway6.filter(|_| ip6.is_some() && !net.internal),
            links: req.links.clone(),
        };
        let r = (|| -> Result<(), NetworkError> {
            // the engine's namespaces come with lo up: no request for it then
            if let Some(lo) = existing.iter().find(|l| l.name == "lo" && !l.up) {
                cnl.set_up(lo.index, None)
                    .map_err(nl_err("bringing lo up"))?;
            }
            let cidx = cnl
                .link_index(&ifname)
                .map_err(nl_err("looking up the container interface"))?
                .ok_or_else(|| NetworkError::BridgeMissing(ifname.clone()))?;
            cnl.add_addr(cidx, ip, net.subnet.prefix)
                .map_err(nl_err(format!("adding {ip} to {ifname}")))?;
            cnl.set_up(cidx, None)
                .map_err(nl_err(format!("bringing {ifname} up")))?;
            for ll in &req.link_local {
                // the prefixes of the link-local ranges, so the peers they reach are on-link
                match *ll {
                    IpAddr::V4(a) => cnl.add_addr(cidx, a, 16),
                    IpAddr::V6(a) => cnl.add_addr6(cidx, a, 64),
                }
                .map_err(nl_err(format!(
                    "adding link-local address {ll} to {ifname}"
                )))?;
            }
            // a namespace with nothing but lo has no default route: no dump for it
            let fresh = existing.iter().all(|l| l.name == "lo");
            if !net.internal
                && (fresh || !cnl.has_default_route().map_err(nl_err("listing routes"))?)
            {
                cnl.add_default_route(net.gateway.into(), cidx)
                    .map_err(nl_err("adding the default route"))?;
            }
            if let Some(ip6) = ep.ip6 {
                // the address after the link is up (its prefix route is then usable for
                // the gateway route); no DAD, see Netlink::add_addr6
                cnl.add_addr6(cidx, ip6, ep.prefix_len6)
                    .map_err(nl_err(format!("adding {ip6} to {ifname}")))?;
                if let Some(g6) = ep.gateway6 {
                    if fresh || !cnl.has_default_route6().map_err(nl_err("listing routes"))? {
                        cnl.add_default_route(g6.into(), cidx)
                            .map_err(nl_err("adding the IPv6 default route"))?;
                    }
                }
            }
            // after the peer: it has its carrier at once (see Netlink::add_veth)
            inner
                .nl
                .set_up(vidx, None)
                .map_err(nl_err(format!("bringing {host_veth} up")))?;
            write_record(&self.ep_path(&key.0, &key.1), &ep, false)?;
            inner.eps.insert(key.clone(), ep.clone());
            if !ep.ports.is_empty() {
                let new: Vec<NftPort> = ep
                    .ports
                    .iter()
                    .map(|p| NftPort {
                        host_ip: p.host_ip,
                        host_port: p.host_port,
                        proto: p.proto,
                        container_ip: ep.ip,
                        container_ip6: ep.ip6,
                        container_port: p.container_port,
                    })
                    .collect();
                nft::apply(&nft::build_port_additions(&self.cfg.nft_table, &new)).or_else(|e| {
                    tracing::warn!("adding port rules failed ({e}); rewriting the table");
                    self.apply_nft(inner)
                })?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            let _ = inner.nl.del_link(vidx);
            if inner.eps.remove(&key).is_some() {
                let _ = remove_file(&self.ep_path(&key.0, &key.1));
                let _ = self.apply_nft_ports(inner);
            }
            return Err(e);
        }
        inner.reservations.insert(key, fds);
        Self::refresh_dns(inner, &id);
        Ok(ep)
    }

    /// Disconnects a container from a network: deletes the veth pair, its port rules and
    /// reservations, its DNS names and its record.
    pub fn disconnect(&self, network: &str, container_id: &str) -> Result<(), NetworkError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let id = Self::find(inner, network)?;
        let key = (id.clone(), container_id.to_string());
        let Some(ep) = inner.eps.get(&key).cloned() else {
            return Err(NetworkError::NotConnected {
                container: container_id.to_string(),
                network: inner.nets[&id].name.clone(),
            });
        };
        inner
            .nl
            .del_link_by_name(&ep.host_veth)
            .map_err(nl_err(format!("deleting {}", ep.host_veth)))?;
        inner.eps.remove(&key);
        let fds = inner.reservations.remove(&key);
        if !ep.ports.is_empty() {
            self.move_ports(inner, &ep, fds.unwrap_or_default());
            self.apply_nft_ports(inner)?;
        }
        Self::refresh_dns(inner, &id);
        remove_file(&self.ep_path(&key.0, &key.1))?;
        if ep.gateway.is_some() {
            Self::move_default_route(inner, container_id);
        }
        Ok(())
    }

    /// Published ports go with the container's default route, as Docker's do (a host port
    /// leads to one address): when the endpoint holding them is disconnected, the container's
    /// next non-internal endpoint takes them over, with the same host ports (their
    /// reservations move along). Without such an endpoint they are dropped.
    fn move_ports(&self, inner: &mut Inner, from: &Endpoint, fds: Vec<OwnedFd>) {
        let Some(next) = inner
            .eps
            .values_mut()
            .find(|e| e.container_id == from.container_id && e.gateway.is_some())
        else {
            return;
        };
        next.ports.extend(from.ports.iter().cloned());
        let key = (next.network_id.clone(), next.container_id.clone());
        if let Err(e) = write_record(&self.ep_path(&key.0, &key.1), &*next, false) {
            tracing::warn!("recording moved ports: {e}");
        }
        inner.reservations.entry(key).or_default().extend(fds);
    }

    /// After the endpoint holding a container's default route went away, gives the container
    /// a default route through another of its (non-internal) networks, as Docker does.
    /// Best effort: the container may be gone already.
    fn move_default_route(inner: &Inner, container_id: &str) {
        let Some(next) = inner
            .eps
            .values()
            .find(|e| e.container_id == container_id && e.gateway.is_some())
        else {
            return;
        };
        let r = (|| -> io::Result<()> {
            let ns = File::open(&next.netns_path)?;
            let mut cnl = Netlink::in_netns(&ns)?;
            if cnl.has_default_route()? {
                return Ok(());
            }
            let idx = cnl
                .link_index(&next.ifname)?
                .ok_or_else(|| io::Error::other(format!("{} is gone", next.ifname)))?;
            if let Some(gw) = next.gateway {
                cnl.add_default_route(gw.into(), idx)?;
            }
            if let Some(g6) = next.gateway6 {
                if !cnl.has_default_route6()? {
                    cnl.add_default_route(g6.into(), idx)?;
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            tracing::debug!("moving the default route of {container_id}: {e}");
        }
    }

    /// Disconnects a container from every network it is on (container stop/removal).
    pub fn disconnect_all(&self, container_id: &str) -> Result<(), NetworkError> {
        let nets: Vec<String> = self
            .endpoints_of(container_id)
            .into_iter()
            .map(|e| e.network_id)
            .collect();
        for n in nets {
            self.disconnect(&n, container_id)?;
        }
        Ok(())
    }

    /// A container has exited (or never ran): drops its endpoints on every network at once
    /// (records, published ports in one nftables run, DNS names) and leaves its veth pairs to
    /// the death of its namespace, which deletes them (the caller removes the namespace next);
    /// a background thread waits for them to vanish and deletes those still there after a
    /// grace time. Their addresses are not handed out again until they are gone. A link
    /// deletion is 10-25 ms of RCU grace periods under the RTNL lock, which a starting
    /// container needs too: the namespace's cleanup pays them once for its `lo` and the pairs.
    /// Use [`disconnect`](Self::disconnect) for a running container (`network disconnect`).
    pub fn release(&self, container_id: &str) -> Result<(), NetworkError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let keys: Vec<(String, String)> = inner
            .eps
            .keys()
            .filter(|(_, c)| c == container_id)
            .cloned()
            .collect();
        let mut gone = Vec::new();
        for k in &keys {
            if let Some(ep) = inner.eps.remove(k) {
                gone.push(ep);
            }
        }
        // rules first, then the host ports: no new container can publish a port while an old
        // rule for it still exists
        let r = if gone.iter().any(|e| !e.ports.is_empty()) {
            self.apply_nft_ports(inner)
        } else {
            Ok(())
        };
        for (k, ep) in keys.iter().zip(&gone) {
            inner.reservations.remove(k);
            Self::refresh_dns(inner, &k.0);
            let mut ips = vec![IpAddr::from(ep.ip)];
            ips.extend(ep.ip6.map(IpAddr::from));
            self.reaper
                .delete(&mut inner.nl, &ep.network_id, &ips, &ep.host_veth);
        }
        let mut first_err = r.err();
        for k in &keys {
            if let Err(e) = remove_file(&self.ep_path(&k.0, &k.1)) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Deletes the links [`release`](Self::release) left that are still there and waits
    /// until they are gone.
    pub fn settle(&self) {
        self.reaper.settle(SETTLE_LIMIT);
    }

    /// resolv.conf for a container whose first network is `network`: user networks use the
    /// network's DNS server (the gateway); the default bridge gets the host's resolv.conf with
    /// loopback nameservers removed (and the fallback ones if none is left).
    pub fn resolv_conf(&self, network: &str) -> Result<String, NetworkError> {
        let net = {
            let inner = self.lock();
            let id = Self::find(&inner, network)?;
            inner.nets[&id].clone()
        };
        let host = self.host_resolv();
        let others: Vec<&str> = host
            .lines()
            .filter(|l| {
                let w = l.split_whitespace().next();
                matches!(w, Some("search") | Some("options") | Some("domain"))
            })
            .collect();
        let mut out = String::new();
        if net.default {
            let ns: Vec<String> = dns::nameservers(&host)
                .into_iter()
                .filter(|s| {
                    s.parse::<std::net::IpAddr>()
                        .map(|ip| !ip.is_loopback())
                        .unwrap_or(false)
                })
                .collect();
            let ns = if ns.is_empty() {
                self.cfg
                    .fallback_nameservers
                    .iter()
                    .map(|i| i.to_string())
                    .collect()
            } else {
                ns
            };
            for n in ns {
                out.push_str(&format!("nameserver {n}\n"));
            }
        } else {
            out.push_str(&format!("nameserver {}\n", net.gateway));
        }
        for l in others {
            out.push_str(l);
            out.push('\n');
        }
        Ok(out)
    }

    /// /etc/hosts for a container: localhost entries and `<ip> <hostname>` for each of its
    /// addresses.
    pub fn hosts_file(&self, container_id: &str, hostname: &str) -> String {
        let mut s = String::from(crate::HOSTS_HEADER);
        for e in self.endpoints_of(container_id) {
            s.push_str(&format!("{}\t{}\n", e.ip, hostname));
            if let Some(ip6) = e.ip6 {
                s.push_str(&format!("{ip6}\t{hostname}\n"));
            }
        }
        s
    }

    /// The nftables table's current contents as `nft -j` JSON (`None` if absent); diagnostics.
    pub fn firewall_dump(&self) -> Result<Option<String>, NetworkError> {
        nft::list_table(&self.cfg.nft_table)
    }

    /// Tears everything down (all endpoints, user networks, the default bridge and the
    /// nftables table) and deletes the records. For uninstall and tests.
    pub fn destroy_all(&self) -> Result<(), NetworkError> {
        let eps: Vec<(String, String)> = self.lock().eps.keys().cloned().collect();
        for (n, c) in eps {
            self.disconnect(&n, &c)?;
        }
        self.reaper.settle(SETTLE_LIMIT);
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.dns.clear();
        let nets: Vec<NetworkInfo> = inner.nets.values().cloned().collect();
        for n in nets {
            inner
                .nl
                .del_link_by_name(&n.bridge)
                .map_err(nl_err(format!("deleting {}", n.bridge)))?;
            inner.nets.remove(&n.id);
            remove_file(&self.net_path(&n.id))?;
        }
        nft::delete_table(&self.cfg.nft_table)
    }
}

/// Binds (without listening) the host port so nothing else can take it while published;
/// `port: None` lets the kernel pick a free one. With `v6` (the container has an IPv6
/// address, so the port is published over IPv6 too) and no host address, the same port of
/// `[::]` is bound as well (IPv6 only: the IPv4 one is the first socket), as dockerd does:
/// a host service there would otherwise be shadowed by the IPv6 DNAT rule.
fn reserve(
    ip: Option<Ipv4Addr>,
    port: Option<u16>,
    proto: Proto,
    v6: bool,
) -> Result<(u16, Vec<OwnedFd>), NetworkError> {
    let ty = match proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
    };
    let addr = SocketAddrV4::new(ip.unwrap_or(Ipv4Addr::UNSPECIFIED), port.unwrap_or(0));
    let in_use = |addr: SocketAddr| {
        move |source: io::Error| NetworkError::PortInUse {
            addr,
            proto,
            source,
        }
    };
    let err4 = in_use(addr.into());
    let fd = socket::socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| err4(e.into()))?;
    socket::bind(fd.as_raw_fd(), &SockaddrIn::from(addr)).map_err(|e| err4(e.into()))?;
    let bound: SockaddrIn = socket::getsockname(fd.as_raw_fd()).map_err(|e| err4(e.into()))?;
    let mut fds = vec![fd];
    if v6 && ip.is_none() {
        let addr6 = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, bound.port(), 0, 0);
        let err6 = in_use(addr6.into());
        let fd6 = socket::socket(AddressFamily::Inet6, ty, SockFlag::SOCK_CLOEXEC, None)
            .map_err(|e| err6(e.into()))?;
        socket::setsockopt(&fd6, socket::sockopt::Ipv6V6Only, &true).map_err(|e| err6(e.into()))?;
        socket::bind(fd6.as_raw_fd(), &SockaddrIn6::from(addr6)).map_err(|e| err6(e.into()))?;
        fds.push(fd6);
    }
    Ok((bound.port(), fds))
}
