//! barge-network: bridges, veth pairs, IPAM, published ports and per-network DNS, all through
//! netlink (netlink-packet-route/netlink-sys) and nftables (the `nftables` crate driving `nft`)
//! from Rust (see DESIGN.md). Knows nothing of images or the API.
//!
//! # How the engine uses it
//!
//! ```text
//! // daemon start-up, in the host network namespace (every call must come from a thread in
//! // the namespace `open` was called in; all calls are blocking, a few ms):
//! let nm = Arc::new(NetworkManager::open(&data_root.join("network"), NetworkConfig {
//!     bridge_name: "barge0".into(), bridge_ip: "172.17.0.1/16".parse()?,   // --bip
//!     default_pools: vec![("172.18.0.0/15".parse()?, 16)], ..Default::default() })?);
//! nm.repair()?;                  // recreate bridges, drop dead endpoints and orphan links,
//!                                // rewrite the nft table, re-reserve ports, start DNS servers
//! nm.ensure_default_network()?;  // network "bridge", device barge0
//!
//! // network create / ls / inspect / rm / prune (Docker JSON: NetworkInfo::to_docker(&eps)):
//! nm.create_network(NetworkSpec { name, subnet, gateway, ip_range, internal, labels,
//!     ipv6, subnet6, gateway6, ip_range6 })?;                           // --ipv6, v6 --subnet
//! nm.list(); let (info, eps) = nm.inspect("name-or-id")?; nm.remove_network("name-or-id")?;
//! nm.prune(|n| n.labels.is_empty())?;                            // prune, with a filter
//!
//! // container start, once the runtime created the init process (its netns exists), before
//! // the user's process runs:
//! let ep = nm.connect("bridge", ConnectRequest { container_id, name, aliases,
//!     netns_path: format!("/proc/{pid}/ns/net").into(), ipv4: None,     // --ip
//!     ipv6: None, mac: None,                                             // --ip6, --mac-address
//!     ports: parse_port_spec("127.0.0.1:8080:80/tcp")? })?;              // -p; -P: host_port None
//! // the container's /etc/hosts and /etc/resolv.conf (first network decides resolv.conf):
//! nm.hosts_file(&container_id, &hostname); nm.resolv_conf("bridge")?;
//! // container inspect: ep.to_docker() per network, docker_ports(&ep.ports, &exposed)
//! // `network connect` of a running container: nm.connect("other", ..) gives eth1, ...
//!
//! // container exited (stop / rm / --rm): endpoints dropped now, links deleted in the
//! // background (their addresses held until then); `network disconnect` of a running one:
//! nm.release(&container_id)?;          // or nm.disconnect(network, &container_id)
//! ```
//!
//! `--network host|none|container:<id>` never reach this crate: the engine keeps the host
//! namespace, an empty namespace, or joins the other container's namespace.
//!
//! # What it builds
//!
//! * A Linux bridge per network (fixed MAC, address = gateway, alias `barge:<id>` marking it
//!   as ours), a veth pair per endpoint (`bv<12hex>` on the bridge, hairpin on; `ethN` created
//!   directly in the container's namespace with the MAC `02:42:<ip>` or the one asked for), an
//!   address and a default route (none on internal networks) inside; on networks with IPv6
//!   also an IPv6 address (no DAD: usable at once) on the bridge and inside, and an IPv6
//!   default route.
//! * One nftables table `ip barge`, rewritten whole in one transaction when networks change;
//!   published ports are rules in its `ports` chain (added on connect, chain rewritten on
//!   disconnect): DNAT from prerouting and output for local destinations (so the host's
//!   addresses, 127.0.0.1 with `route_localnet`, and other containers through the host's
//!   address all work), masquerade for outbound traffic and for hairpin/localhost clients,
//!   isolation between bridges in `forward`, and a guard dropping bridge traffic to 127/8.
//!   Networks with IPv6 get the same in a table `ip6 barge` (no loopback guard), deleted with
//!   the last of them.
//!   Host ports are reserved by binding them (no proxy): a port in use is an error.
//! * A DNS server per user network on the gateway (UDP and TCP 53) answering (A, AAAA) the names,
//!   aliases and short ids of the containers on that network only, forwarding the rest to the
//!   host's non-loopback resolvers (not on internal networks), refusing other networks' clients.
//! * Records under the state dir (`networks/<id>.json`, `endpoints/<net>-<container>.json`),
//!   written temp + fsync + rename; the kernel is changed before a record is written and the
//!   record removed after the kernel objects, so `repair` can always converge.

mod dns;
mod docker;
mod ipam;
mod manager;
mod netlink;
mod netns;
mod nft;
mod ports;
mod reaper;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// The lines every container's /etc/hosts starts with (localhost and the IPv6 names),
/// as dockerd writes them.
pub const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
     fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
     ff02::2\tip6-allrouters\n";
pub use docker::{docker_ports, rfc3339};
pub use ipam::{is_host_addr, is_host_addr6, mac_from_ip, mac_string, parse_mac, Ipv4Net, Ipv6Net};
pub use manager::{
    ConnectRequest, Endpoint, NetworkConfig, NetworkInfo, NetworkManager, NetworkSpec, RepairReport,
};
pub use netns::{create_netns, is_netns, remove_netns};
pub use ports::{parse_port_spec, PortMapping, PortSpec, Proto};

/// Everything that can go wrong; each variant names the problem.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A malformed or unusable subnet.
    #[error("invalid subnet {subnet}: {reason}")]
    InvalidSubnet {
        /// The subnet as given.
        subnet: String,
        /// Why.
        reason: String,
    },
    /// The requested subnet overlaps an existing network's.
    #[error("subnet {subnet} overlaps with network {other} ({existing})")]
    Overlap {
        /// Requested.
        subnet: Ipv4Net,
        /// Name of the existing network.
        other: String,
        /// Its subnet.
        existing: Ipv4Net,
    },
    /// The requested IPv6 subnet overlaps an existing network's.
    #[error("subnet {subnet} overlaps with network {other} ({existing})")]
    Overlap6 {
        /// Requested.
        subnet: Ipv6Net,
        /// Name of the existing network.
        other: String,
        /// Its subnet.
        existing: Ipv6Net,
    },
    /// The default pools are used up.
    #[error("no free subnet left in the default address pools")]
    NoFreeSubnet,
    /// An address (static IP or gateway) outside the subnet, or its network/broadcast address.
    #[error("address {ip} is not a usable address of subnet {subnet} (network {network})")]
    OutsideSubnet {
        /// The address.
        ip: Ipv4Addr,
        /// The subnet.
        subnet: Ipv4Net,
        /// Network name.
        network: String,
    },
    /// An IPv6 address (static or gateway) outside the subnet, or its network address.
    #[error("address {ip} is not a usable address of subnet {subnet} (network {network})")]
    OutsideSubnet6 {
        /// The address.
        ip: Ipv6Addr,
        /// The subnet.
        subnet: Ipv6Net,
        /// Network name.
        network: String,
    },
    /// An IPv6 address or subnet asked of a network that has no IPv6.
    #[error("network {0} does not have IPv6 enabled: no IPv6 address can be given on it")]
    NoIpv6(String),
    /// A static address already taken.
    #[error("address {ip} is already in use on network {network}")]
    AddressInUse {
        /// The address.
        ip: IpAddr,
        /// Network name.
        network: String,
    },
    /// A chosen MAC address another endpoint of the network (or its bridge) has: two
    /// interfaces with one MAC on a bridge steal each other's frames.
    #[error("MAC address {mac} is already in use on network {network}")]
    MacInUse {
        /// The address.
        mac: String,
        /// Network name.
        network: String,
    },
    /// An `IPAM.Config[].AuxiliaryAddresses` entry that is not an address of its subnet.
    #[error("invalid auxiliary address {name}={address}: {reason}")]
    InvalidAuxAddress {
        /// Its name (the map key).
        name: String,
        /// The address as given.
        address: String,
        /// Why.
        reason: String,
    },
    /// No free address left.
    #[error("no free address left on network {0}")]
    PoolExhausted(String),
    /// A bad `-p` value.
    #[error("invalid port specification {spec:?}: {reason}")]
    InvalidPortSpec {
        /// As given.
        spec: String,
        /// Why.
        reason: String,
    },
    /// The host port cannot be bound.
    #[error("host port {addr}/{proto} is not available: {source}")]
    PortInUse {
        /// Host address and port.
        addr: SocketAddr,
        /// Protocol.
        proto: Proto,
        /// The bind error.
        source: std::io::Error,
    },
    /// Ports cannot be published on internal networks.
    #[error("network {0} is internal: ports cannot be published on it")]
    PortsOnInternal(String),
    /// No such network.
    #[error("network {0} not found")]
    NotFound(String),
    /// An id prefix matching several networks.
    #[error("network id prefix {0} is ambiguous")]
    Ambiguous(String),
    /// A network name already taken.
    #[error("network with name {0} already exists")]
    NameInUse(String),
    /// A name that is empty, does not start with a letter or digit, or holds a `/` or a
    /// control character.
    #[error("invalid name {0:?}: must start with a letter or digit and hold no '/' or control character")]
    InvalidName(String),
    /// The default network cannot be removed.
    #[error("{0} is a pre-defined network and cannot be removed")]
    Predefined(String),
    /// A network still has containers.
    #[error("network {network} has active endpoints: {containers}")]
    ActiveEndpoints {
        /// Network name.
        network: String,
        /// Container names or ids.
        containers: String,
    },
    /// `connect` twice.
    #[error("container {container} is already connected to network {network}")]
    AlreadyConnected {
        /// Container id.
        container: String,
        /// Network name.
        network: String,
    },
    /// `disconnect` of a container that is not on the network.
    #[error("container {container} is not connected to network {network}")]
    NotConnected {
        /// Container id.
        container: String,
        /// Network name.
        network: String,
    },
    /// A bridge or interface expected to exist is missing.
    #[error("link {0} is missing")]
    BridgeMissing(String),
    /// The container's network namespace cannot be opened.
    #[error("opening network namespace {path}: {source}")]
    Netns {
        /// The path given.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("netlink: {op}: {source}")]
    Netlink {
        /// What was being done.
        op: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// `nft` failed.
    #[error("nftables: {0}")]
    Nft(String),
    /// The DNS server of a network could not start.
    #[error("DNS server of network {network}: {source}")]
    Dns {
        /// Network name.
        network: String,
        /// The error.
        source: std::io::Error,
    },
    /// Reading or writing state files (or sysctls).
    #[error("{path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}
