//! Container networking on top of barge-network: the network modes (`bridge`/`default`, a
//! user network, `none`, `host`, `container:<id|name>`), connecting a container once its
//! network namespace exists and before its process runs, its /etc/hosts and
//! /etc/resolv.conf, published ports, `network connect/disconnect` and the network fields of
//! container inspect.
//!
//! The networks a container should be on (Docker's `NetworkingConfig.EndpointsConfig`, the
//! primary network first) are kept in `<data-root>/containers/<id>/networks.json`; its
//! endpoints exist only while it runs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use barge_network::{ConnectRequest, Endpoint, NetworkError, NetworkManager, PortSpec};
use serde::Deserialize;
use serde_json::Map;

use super::*;

/// File (in the container's data dir) holding its wanted attachments.
const WANTED_FILE: &str = "networks.json";

/// One network a container should be attached to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WantedEndpoint {
    /// The network's name.
    pub network: String,
    /// `--network-alias` values.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6`.
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// `--mac-address` (validated, `aa:bb:cc:dd:ee:ff`).
    #[serde(default)]
    pub mac: Option<String>,
    /// Links on this network (`name:alias`, as given): the alias resolves to the target
    /// through the network's DNS, for this container only.
    #[serde(default)]
    pub links: Vec<String>,
    /// `IPAMConfig.LinkLocalIPs` (`--link-local-ip`): validated link-local addresses, added
    /// to the container's interface and shown by inspect.
    #[serde(default)]
    pub link_local: Vec<IpAddr>,
    /// The endpoint's `DriverOpts` (`--driver-opt`): kept and shown by inspect (`None`
    /// shows as `null`, as dockerd); the bridge driver reads none of them.
    #[serde(default)]
    pub driver_opts: Option<BTreeMap<String, String>>,
}

impl WantedEndpoint {
    /// The links as (target name, alias).
    fn link_pairs(&self) -> Vec<(String, String)> {
        self.links
            .iter()
            .filter_map(|l| super::links::parse(l).ok())
            .collect()
    }
}

/// How a container is networked, from `HostConfig.NetworkMode`.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// The host's namespace.
    Host,
    /// A namespace with loopback only.
    None,
    /// Another container's namespace.
    Container(String),
    /// A namespace of its own on bridge networks.
    Networks,
}

/// Classifies a `NetworkMode` value.
pub fn mode_of(netmode: &str) -> Mode {
    match netmode {
        "host" => Mode::Host,
        "none" => Mode::None,
        m => match m.strip_prefix("container:") {
            Some(c) => Mode::Container(c.to_string()),
            None => Mode::Networks,
        },
    }
}

/// The primary network's name for a `Networks` mode (`default` is the `bridge` network).
fn primary_network(netmode: &str) -> &str {
    match netmode {
        "" | "default" | "bridge" => "bridge",
        n => n,
    }
}

/// Maps a network error to the engine error carrying Docker's status code.
pub fn net_error(e: NetworkError) -> Error {
    use NetworkError as N;
    let msg = e.to_string();
    match e {
        N::NotFound(_) => Error::NotFound(msg),
        N::Overlap { .. }
        | N::Overlap6 { .. }
        | N::NameInUse(_)
        | N::ActiveEndpoints { .. }
        | N::AlreadyConnected { .. }
        | N::AddressInUse { .. }
        | N::MacInUse { .. }
        | N::NotConnected { .. }
        | N::Predefined(_)
        | N::NoFreeSubnet
        | N::PoolExhausted(_) => Error::Conflict(msg),
        N::InvalidSubnet { .. }
        | N::InvalidAuxAddress { .. }
        | N::OutsideSubnet { .. }
        | N::OutsideSubnet6 { .. }
        | N::NoIpv6(_)
        | N::InvalidPortSpec { .. }
        | N::InvalidName(_)
        | N::PortsOnInternal(_)
        | N::Ambiguous(_) => Error::BadRequest(msg),
        _ => Error::Internal(msg),
    }
}

/// Container port keys (`"80/tcp"`) of `Config.ExposedPorts`.
pub fn exposed_ports(config: &Value) -> Vec<String> {
    config
        .get("ExposedPorts")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .map(|k| {
                    if k.contains('/') {
                        k.clone()
                    } else {
                        format!("{k}/tcp")
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The publications asked by `HostConfig.PortBindings` and `PublishAllPorts` (the image's
/// and `--expose`d ports on random host ports).
pub fn port_specs(host_config: &Value, config: &Value) -> Result<Vec<PortSpec>> {
    let mut out = Vec::new();
    let mut bound = Vec::new();
    if let Some(m) = host_config.get("PortBindings").and_then(Value::as_object) {
        for (key, binds) in m {
            let key_full = if key.contains('/') {
                key.clone()
            } else {
                format!("{key}/tcp")
            };
            let (cport, proto) = key_full
                .split_once('/')
                .unwrap_or((key_full.as_str(), "tcp"));
            bound.push(key_full.clone());
            let list = binds.as_array().cloned().unwrap_or_default();
            let list = if list.is_empty() {
                vec![json!({})]
            } else {
                list
            };
            for b in list {
                let ip = b.get("HostIp").and_then(Value::as_str).unwrap_or("");
                let hp = b.get("HostPort").and_then(Value::as_str).unwrap_or("");
                if ip.contains(':') {
                    // IPv6 host addresses: barge publishes IPv4 only.
                    continue;
                }
                let spec = match (ip, hp) {
                    ("", "") => format!("{cport}/{proto}"),
                    ("", hp) => format!("{hp}:{cport}/{proto}"),
                    (ip, hp) => format!("{ip}:{hp}:{cport}/{proto}"),
                };
                out.extend(barge_network::parse_port_spec(&spec).map_err(net_error)?);
            }
        }
    }
    if host_config
        .get("PublishAllPorts")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        for e in exposed_ports(config) {
            if !bound.contains(&e) {
                out.extend(barge_network::parse_port_spec(&e).map_err(net_error)?);
            }
        }
    }
    Ok(out)
}

#[derive(Deserialize, Default)]
struct IpamConfig {
    #[serde(rename = "IPv4Address", default)]
    ipv4: Option<String>,
    #[serde(rename = "IPv6Address", default)]
    ipv6: Option<String>,
    #[serde(rename = "LinkLocalIPs", default)]
    link_local: Option<Vec<String>>,
}

/// Parses `IPAMConfig.LinkLocalIPs`: each must be a link-local address (169.254.0.0/16 or
/// fe80::/10), as dockerd requires.
fn link_local_ips(list: &[String]) -> Result<Vec<IpAddr>> {
    list.iter()
        .map(|s| {
            let ip: IpAddr = s.parse().map_err(|_| {
                Error::BadRequest(format!(
                    "invalid link-local IP address {s:?}: not an address"
                ))
            })?;
            let link_local = match ip {
                IpAddr::V4(a) => a.is_link_local(),
                IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
            };
            if !link_local {
                return Err(Error::BadRequest(format!(
                    "invalid link-local IP address {s}: not in 169.254.0.0/16 or fe80::/10"
                )));
            }
            Ok(ip)
        })
        .collect()
}

/// Validates a MAC address asked for a container (`--mac-address`, an endpoint's
/// `MacAddress`) and returns it in Docker's lower-case form; `""` is none.
pub fn mac_option(v: Option<&Value>) -> Result<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => barge_network::parse_mac(s)
            .map(|m| Some(barge_network::mac_string(&m)))
            .map_err(Error::BadRequest),
        Some(other) => Err(Error::BadRequest(format!(
            "invalid MAC address {other}: want a string"
        ))),
    }
}

/// Parses one Docker `EndpointSettings` (`Aliases`, `IPAMConfig.IPv4Address`,
/// `IPAMConfig.IPv6Address`, `IPAMConfig.LinkLocalIPs`, `MacAddress`, `DriverOpts`).
fn endpoint_config(network: &str, v: &Value) -> Result<WantedEndpoint> {
    let aliases = crate::model::str_list(v.get("Aliases"));
    let ipam: IpamConfig = v
        .get("IPAMConfig")
        .filter(|x| !x.is_null())
        .map(|x| serde_json::from_value(x.clone()))
        .transpose()
        .map_err(|e| Error::BadRequest(format!("invalid IPAMConfig: {e}")))?
        .unwrap_or_default();
    let ipv4 = match ipam.ipv4.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<Ipv4Addr>()
                .map_err(|_| Error::BadRequest(format!("invalid IPv4 address: {s}")))?,
        ),
    };
    let ipv6 = match ipam.ipv6.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<Ipv6Addr>()
                .map_err(|_| Error::BadRequest(format!("invalid IPv6 address: {s}")))?,
        ),
    };
    let links = crate::model::str_list(v.get("Links"));
    for l in &links {
        super::links::parse(l)?;
    }
    let driver_opts = match v.get("DriverOpts") {
        None | Some(Value::Null) => None,
        Some(o) => Some(
            serde_json::from_value(o.clone())
                .map_err(|e| Error::BadRequest(format!("invalid DriverOpts: {e}")))?,
        ),
    };
    Ok(WantedEndpoint {
        network: network.to_string(),
        aliases,
        ipv4,
        ipv6,
        mac: mac_option(v.get("MacAddress"))?,
        links,
        link_local: link_local_ips(ipam.link_local.as_deref().unwrap_or_default())?,
        driver_opts,
    })
}

/// The bytes of a MAC address recorded by [`mac_option`] (valid by then).
fn mac_bytes(mac: Option<&str>) -> Option<[u8; 6]> {
    mac.and_then(|m| barge_network::parse_mac(m).ok())
}

/// Checks a static `--ip`/`--ip6` against the network (create and `network connect`, so a
/// stopped container is refused at once rather than at its next start): user networks only,
/// inside the subnet, not the network, broadcast or gateway address; IPv6 needs a network
/// with IPv6.
fn check_static_addresses(info: &barge_network::NetworkInfo, w: &WantedEndpoint) -> Result<()> {
    if let Some(ip) = w.ipv4 {
        if info.default {
            return Err(Error::BadRequest(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if !barge_network::is_host_addr(&info.subnet, ip) || ip == info.gateway {
            return Err(Error::BadRequest(format!(
                "invalid --ip {ip}: not a usable address of network {} ({})",
                info.name, info.subnet
            )));
        }
        if let Some((name, _)) = info.reserved4().find(|(_, a)| *a == ip) {
            return Err(Error::Conflict(format!(
                "invalid --ip {ip}: address already in use (auxiliary address {name} of network {})",
                info.name
            )));
        }
    }
    if let Some(ip) = w.ipv6 {
        let Some(s6) = info.subnet6 else {
            return Err(Error::BadRequest(format!(
                "invalid --ip6 {ip}: network {} does not have IPv6 enabled",
                info.name
            )));
        };
        if !barge_network::is_host_addr6(&s6, ip) || Some(ip) == info.gateway6 {
            return Err(Error::BadRequest(format!(
                "invalid --ip6 {ip}: not a usable address of network {} ({s6})",
                info.name
            )));
        }
        if let Some((name, _)) = info.reserved6().find(|(_, a)| *a == ip) {
            return Err(Error::Conflict(format!(
                "invalid --ip6 {ip}: address already in use (auxiliary address {name} of network {})",
                info.name
            )));
        }
    }
    Ok(())
}

/// Removes every endpoint of a stopped (or never started) container; its links are deleted
/// in the background (see [`NetworkManager::release`]). Blocking.
pub(super) fn net_release(nm: &NetworkManager, id: &str) {
    let t = std::time::Instant::now();
    if let Err(e) = nm.release(id) {
        tracing::warn!("disconnecting a container: {e}");
    }
    tracing::debug!("network teardown took {:?}", t.elapsed());
}

impl Engine {
    /// Docker's `network connect` / `disconnect` event: the network as actor, the
    /// container, the network's name and its driver as attributes.
    pub(super) fn emit_network_event(&self, action: &str, net_id: &str, net_name: &str, cid: &str) {
        self.emit(
            "network",
            action,
            net_id,
            [
                ("container".to_string(), cid.to_string()),
                ("name".to_string(), net_name.to_string()),
                ("type".to_string(), "bridge".to_string()),
            ]
            .into(),
        );
    }

    /// Plugs the network manager in (daemon start-up, after `repair`).
    pub fn set_network_manager(&self, nm: Arc<NetworkManager>) {
        let _ = self.network.set(nm);
    }

    /// The network manager, if the daemon has one.
    pub fn network_manager(&self) -> Option<Arc<NetworkManager>> {
        self.network.get().cloned()
    }

    fn nm(&self) -> Result<Arc<NetworkManager>> {
        self.network_manager()
            .ok_or_else(|| Error::NotImplemented("networking is not enabled in this daemon".into()))
    }

    /// Runs a blocking network call off the async threads.
    async fn net_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&NetworkManager) -> std::result::Result<T, NetworkError> + Send + 'static,
    ) -> Result<T> {
        let nm = self.nm()?;
        tokio::task::spawn_blocking(move || f(&nm))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(net_error)
    }

    /// The networks container `id` should be on, primary first (none recorded: its
    /// `NetworkMode`'s network, for `Networks` mode).
    pub fn wanted_networks(&self, id: &str) -> Vec<WantedEndpoint> {
        let recorded: Option<Vec<WantedEndpoint>> =
            std::fs::read(self.data_dir(id).join(WANTED_FILE))
                .ok()
                .and_then(|d| serde_json::from_slice(&d).ok());
        match recorded {
            Some(w) => w,
            None => match self.get(id) {
                Ok(c) if mode_of(&c.host_str("NetworkMode")) == Mode::Networks => {
                    vec![WantedEndpoint {
                        network: primary_network(&c.host_str("NetworkMode")).to_string(),
                        ..Default::default()
                    }]
                }
                _ => Vec::new(),
            },
        }
    }

    fn save_wanted(&self, id: &str, w: &[WantedEndpoint]) -> Result<()> {
        self.save_wanted_as(id, w, true)
    }

    /// [`Engine::save_wanted`]; `durable: false` for an auto-removed container (see
    /// [`crate::util::write_replace`]).
    fn save_wanted_as(&self, id: &str, w: &[WantedEndpoint], durable: bool) -> Result<()> {
        let data = serde_json::to_vec_pretty(w).map_err(|e| Error::Internal(e.to_string()))?;
        crate::util::write_replace(&self.data_dir(id).join(WANTED_FILE), &data, durable)
            .map_err(internal("networks.json"))
    }

    /// Validates the network part of a create request (mode, networks, `--ip`, ports) and
    /// returns the attachments to record. Normalizes `NetworkMode` (`""` -> `default`).
    pub(super) async fn plan_networks(
        &self,
        host_config: &mut Value,
        networking: Option<Value>,
        config: &Value,
    ) -> Result<Vec<WantedEndpoint>> {
        let mut netmode = host_config
            .get("NetworkMode")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        if netmode.is_empty() {
            netmode = "default".into();
            host_config["NetworkMode"] = json!("default");
        }
        let ports = port_specs(host_config, config)?;
        let mode = mode_of(&netmode);
        // `Config.MacAddress` (the API before 1.44, and `docker run --mac-address` on the
        // primary network) is the primary endpoint's MAC
        let config_mac = mac_option(config.get("MacAddress"))?;
        if config_mac.is_some() && mode != Mode::Networks {
            return Err(Error::BadRequest(
                "conflicting options: mac-address and the network mode".into(),
            ));
        }
        if mode != Mode::Networks && !ports.is_empty() {
            if mode == Mode::Host {
                // Docker ignores published ports on the host's network.
                if let Some(h) = host_config.as_object_mut() {
                    h.remove("PortBindings");
                }
            } else {
                return Err(Error::BadRequest(
                    "conflicting options: port publishing and the container type network mode"
                        .into(),
                ));
            }
        }
        match &mode {
            Mode::Host | Mode::None => return Ok(Vec::new()),
            Mode::Container(other) => {
                if other.is_empty() {
                    return Err(Error::BadRequest(
                        "invalid network mode: container: needs a container".into(),
                    ));
                }
                let o = self
                    .lookup(other)
                    .map_err(|_| Error::NotFound(format!("No such container: {other}")))?;
                host_config["NetworkMode"] = json!(format!("container:{o}"));
                return Ok(Vec::new());
            }
            Mode::Networks => {}
        }
        let primary = primary_network(&netmode).to_string();
        let eps: Map<String, Value> = networking
            .as_ref()
            .and_then(|n| n.get("EndpointsConfig"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut names: Vec<String> = vec![primary.clone()];
        for k in eps.keys() {
            if primary_network(k) != primary && !names.iter().any(|n| n == k) {
                names.push(k.clone());
            }
        }
        let mut out = Vec::new();
        for n in names {
            let cfg = eps
                .get(&n)
                .or_else(|| {
                    if n == primary {
                        eps.get(&netmode)
                    } else {
                        None
                    }
                })
                .cloned()
                .unwrap_or(Value::Null);
            let mut w = endpoint_config(&n, &cfg)?;
            let n2 = primary_network(&n).to_string();
            let (info, _) = self.net_call(move |nm| nm.inspect(&n2)).await?;
            check_static_addresses(&info, &w)?;
            if info.default && !w.aliases.is_empty() {
                return Err(Error::BadRequest(
                    "network-scoped aliases are supported for user-defined networks only".into(),
                ));
            }
            w.network = info.name.clone();
            out.push(w);
        }
        if let (Some(m), Some(first)) = (config_mac, out.first_mut()) {
            match &first.mac {
                Some(other) if *other != m => {
                    return Err(Error::BadRequest(format!(
                        "conflicting options: Config.MacAddress {m} and the MacAddress {other} of network {}",
                        first.network
                    )))
                }
                _ => first.mac = Some(m),
            }
        }
        Ok(out)
    }

    /// Records the attachments planned by [`Engine::plan_networks`] (`durable` as in
    /// [`crate::util::write_replace`]).
    pub(super) fn record_networks(
        &self,
        id: &str,
        w: &[WantedEndpoint],
        durable: bool,
    ) -> Result<()> {
        if w.is_empty() {
            return Ok(());
        }
        self.save_wanted_as(id, w, durable)
    }

    /// The namespace a container's process joins, and whether the engine makes it.
    pub(super) fn net_target(&self, c: &Container) -> Result<(NetMode, bool)> {
        let netmode = c.host_str("NetworkMode");
        match mode_of(&netmode) {
            Mode::Host => Ok((NetMode::Host, false)),
            Mode::Container(other) => {
                let o = self.get(&other).map_err(|_| {
                    Error::NotFound(format!(
                        "No such container: {other} (network mode {netmode})"
                    ))
                })?;
                if !o.running() {
                    return Err(Error::Conflict(format!(
                        "cannot join network namespace of a non running container: {}",
                        o.name
                    )));
                }
                match mode_of(&o.host_str("NetworkMode")) {
                    Mode::Host => Ok((NetMode::Host, false)),
                    Mode::Container(_) => Err(Error::Conflict(format!(
                        "cannot join the network of {}: it shares another container's network",
                        o.name
                    ))),
                    _ => {
                        let p = self.netns_path(&o.id);
                        if barge_network::is_netns(&p) {
                            Ok((NetMode::Path(p), false))
                        } else {
                            Ok((
                                NetMode::Path(format!("/proc/{}/ns/net", o.state.pid).into()),
                                false,
                            ))
                        }
                    }
                }
            }
            Mode::None | Mode::Networks => Ok((NetMode::Path(self.netns_path(&c.id)), true)),
        }
    }

    /// Connects a starting container (its namespace `netns` exists, its process does not run
    /// yet) and writes its hosts, resolv.conf and hostname files under `files`. On error
    /// nothing stays connected. Blocking: the caller is on a blocking thread already (the one
    /// that made the namespace).
    pub(super) fn net_attach(&self, c: &Container, netns: &Path, files: &Path) -> Result<()> {
        let netmode = c.host_str("NetworkMode");
        match mode_of(&netmode) {
            Mode::Host | Mode::None => Ok(()),
            Mode::Container(other) => {
                let o = self.get(&other)?;
                let src = self.exec_dir(&o.id).join("files");
                for f in ["hosts", "resolv.conf", "hostname"] {
                    if let Ok(d) = std::fs::read(src.join(f)) {
                        std::fs::write(files.join(f), d).map_err(internal("network files"))?;
                    }
                }
                Ok(())
            }
            Mode::Networks => {
                let Some(nm) = self.network_manager() else {
                    return Ok(());
                };
                let wanted = self.wanted_networks(&c.id);
                if wanted.is_empty() {
                    return Ok(());
                }
                let t = std::time::Instant::now();
                let ports = port_specs(&c.host_config, &c.config)?;
                // Published ports go with the default route, on the first network that is
                // not internal (as Docker's gateway endpoint); all internal: the first, which
                // refuses them with a clear error.
                let gw = wanted
                    .iter()
                    .position(|w| nm.inspect(&w.network).is_ok_and(|(n, _)| !n.internal))
                    .unwrap_or(0);
                for (i, w) in wanted.iter().enumerate() {
                    let req = ConnectRequest {
                        container_id: c.id.clone(),
                        name: c.name.clone(),
                        aliases: w.aliases.clone(),
                        netns_path: netns.to_path_buf(),
                        ipv4: w.ipv4,
                        ipv6: w.ipv6,
                        mac: mac_bytes(w.mac.as_deref()),
                        ports: if i == gw { ports.clone() } else { Vec::new() },
                        links: w.link_pairs(),
                        link_local: w.link_local.clone(),
                    };
                    match nm.connect(&w.network, req) {
                        Ok(ep) => self.emit_network_event(
                            "connect",
                            &ep.network_id,
                            &ep.network_name,
                            &c.id,
                        ),
                        Err(e) => {
                            let _ = nm.release(&c.id);
                            return Err(net_error(e));
                        }
                    }
                }
                let resolv = nm.resolv_conf(&wanted[0].network).map_err(net_error)?;
                let embedded = nm
                    .inspect(&wanted[0].network)
                    .is_ok_and(|(n, _)| !n.default);
                let resolv = with_dns_options(&resolv, c, embedded);
                std::fs::write(files.join("resolv.conf"), resolv)
                    .map_err(internal("resolv.conf"))?;
                let r = self.write_hosts(c, files);
                tracing::debug!("network setup took {:?}", t.elapsed());
                r
            }
        }
    }

    /// (Re)writes a container's /etc/hosts from its endpoints (in place: the file is
    /// bind-mounted into a running container).
    pub(super) fn write_hosts(&self, c: &Container, files: &Path) -> Result<()> {
        let mut s = String::from(barge_network::HOSTS_HEADER);
        // `host-gateway` is the host as containers reach it: the default bridge's address
        // (Docker's default `host-gateway-ip`).
        let host_gateway = || {
            self.network_manager()
                .and_then(|nm| nm.inspect("bridge").ok())
                .map(|(n, _)| n.gateway.to_string())
        };
        for h in crate::model::str_list(c.host_config.get("ExtraHosts")) {
            if let Some((name, ip)) = h.split_once(':') {
                let ip = match ip {
                    "host-gateway" => host_gateway().ok_or_else(|| {
                        Error::BadRequest(format!(
                            "--add-host {h}: host-gateway needs the default bridge network, and this daemon has none"
                        ))
                    })?,
                    ip => ip.to_string(),
                };
                s.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        let eps = self
            .network_manager()
            .map(|nm| nm.endpoints_of(&c.id))
            .unwrap_or_default();
        // As dockerd: the container's own names are its host name, fully qualified first
        // when it has a domain (`h.example.com h`, or `a.b.c a` for a dotted host name);
        // its container name and aliases are for the network's DNS, not this file.
        let hostname = c.hostname();
        let domain = c.config_str("Domainname");
        let names = if !domain.is_empty() {
            format!("{hostname}.{domain} {hostname}")
        } else if let Some((short, _)) = hostname.split_once('.') {
            format!("{hostname} {short}")
        } else {
            hostname
        };
        for e in eps {
            s.push_str(&format!("{}\t{names}\n", e.ip));
            if let Some(ip6) = e.ip6 {
                s.push_str(&format!("{ip6}\t{names}\n"));
            }
        }
        // Legacy links (default bridge); a target that stopped since the start is left out.
        for l in self.resolve_links_as(c, false).unwrap_or_default() {
            s.extend(super::links::hosts_line(&l));
        }
        std::fs::write(files.join("hosts"), s).map_err(internal("hosts"))
    }

    /// `POST /networks/{id}/connect`: records the attachment and, if the container runs,
    /// connects it now (its hosts file is rewritten).
    pub async fn network_connect(&self, network: &str, container: &str, cfg: &Value) -> Result<()> {
        let c = self.get(container)?;
        if mode_of(&c.host_str("NetworkMode")) != Mode::Networks {
            return Err(Error::BadRequest(format!(
                "container {} uses network mode {}: it cannot be connected to other networks",
                c.name,
                c.host_str("NetworkMode")
            )));
        }
        let n2 = network.to_string();
        let (info, _) = self.net_call(move |nm| nm.inspect(&n2)).await?;
        let mut w = endpoint_config(&info.name, cfg)?;
        w.network = info.name.clone();
        if !c.running() {
            // a running one is connected now, and the manager's allocation checks them
            check_static_addresses(&info, &w)?;
        }
        let mut wanted = self.wanted_networks(&c.id);
        if wanted.iter().any(|x| x.network == info.name) {
            return Err(Error::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                c.name, info.name
            )));
        }
        if c.running() {
            let req = ConnectRequest {
                container_id: c.id.clone(),
                name: c.name.clone(),
                aliases: w.aliases.clone(),
                netns_path: self.live_netns(&c),
                ipv4: w.ipv4,
                ipv6: w.ipv6,
                mac: mac_bytes(w.mac.as_deref()),
                ports: Vec::new(),
                links: w.link_pairs(),
                link_local: w.link_local.clone(),
            };
            let net = info.id.clone();
            let _: Endpoint = self.net_call(move |nm| nm.connect(&net, req)).await?;
            let _ = self.write_hosts(&c, &self.exec_dir(&c.id).join("files"));
        }
        wanted.push(w);
        self.save_wanted(&c.id, &wanted)?;
        self.emit_network_event("connect", &info.id, &info.name, &c.id);
        Ok(())
    }

    fn live_netns(&self, c: &Container) -> PathBuf {
        let p = self.netns_path(&c.id);
        if barge_network::is_netns(&p) {
            p
        } else {
            format!("/proc/{}/ns/net", c.state.pid).into()
        }
    }

    /// `POST /networks/none/disconnect`: as Docker, a container that is not running leaves
    /// network mode `none` for the networks mode with no network, so it can then be
    /// connected to the networks of the user's choice.
    pub fn network_disconnect_none(&self, container: &str) -> Result<()> {
        let c = self.get(container)?;
        if mode_of(&c.host_str("NetworkMode")) != Mode::None {
            return Err(Error::Conflict(format!(
                "container {} is not connected to network none",
                c.name
            )));
        }
        if c.running() {
            return Err(Error::Conflict(format!(
                "container {} is running: stop it to disconnect it from network none",
                c.name
            )));
        }
        self.save_wanted(&c.id, &[])?;
        self.update(&c.id, |c| {
            if let Some(hc) = c.host_config.as_object_mut() {
                hc.insert("NetworkMode".into(), Value::String("bridge".into()));
            }
        })?;
        self.emit_network_event("disconnect", "none", "none", &c.id);
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn network_disconnect(&self, network: &str, container: &str) -> Result<()> {
        let n2 = network.to_string();
        let (info, _) = self.net_call(move |nm| nm.inspect(&n2)).await?;
        let c = self.get(container)?;
        let mut wanted = self.wanted_networks(&c.id);
        let live = self
            .nm()?
            .endpoints_of(&c.id)
            .iter()
            .any(|e| e.network_id == info.id);
        if !live && !wanted.iter().any(|w| w.network == info.name) {
            return Err(Error::Conflict(format!(
                "container {} is not connected to network {}",
                c.name, info.name
            )));
        }
        if live {
            let (net, id) = (info.id.clone(), c.id.clone());
            self.net_call(move |nm| nm.disconnect(&net, &id)).await?;
            let _ = self.write_hosts(&c, &self.exec_dir(&c.id).join("files"));
        }
        wanted.retain(|w| w.network != info.name);
        self.save_wanted(&c.id, &wanted)?;
        self.emit_network_event("disconnect", &info.id, &info.name, &c.id);
        Ok(())
    }

    /// Container inspect's `NetworkSettings`.
    pub fn network_settings(&self, c: &Container) -> Value {
        let netmode = c.host_str("NetworkMode");
        let mode = mode_of(&netmode);
        let eps = self
            .network_manager()
            .filter(|_| c.running())
            .map(|nm| nm.endpoints_of(&c.id))
            .unwrap_or_default();
        let empty = |net_id: &str| {
            json!({"IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                "NetworkID": net_id, "EndpointID": "", "Gateway": "", "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "DriverOpts": null, "DNSNames": null})
        };
        let mut nets = Map::new();
        match &mode {
            Mode::Host => {
                nets.insert("host".into(), empty("host"));
            }
            Mode::None => {
                nets.insert("none".into(), empty("none"));
            }
            Mode::Container(_) => {}
            Mode::Networks => {
                for w in self.wanted_networks(&c.id) {
                    let mut v = match eps.iter().find(|e| e.network_name == w.network) {
                        Some(e) => e.to_docker(),
                        None => empty(""),
                    };
                    if w.ipv4.is_some() || w.ipv6.is_some() || !w.link_local.is_empty() {
                        let mut ipam = Map::new();
                        if let Some(ip) = w.ipv4 {
                            ipam.insert("IPv4Address".into(), json!(ip.to_string()));
                        }
                        if let Some(ip) = w.ipv6 {
                            ipam.insert("IPv6Address".into(), json!(ip.to_string()));
                        }
                        if !w.link_local.is_empty() {
                            let ll: Vec<String> =
                                w.link_local.iter().map(ToString::to_string).collect();
                            ipam.insert("LinkLocalIPs".into(), json!(ll));
                        }
                        v["IPAMConfig"] = Value::Object(ipam);
                    }
                    v["DriverOpts"] = json!(w.driver_opts);
                    if let Some(m) = &w.mac {
                        // as Docker: the configured MAC shows before the container runs too
                        v["MacAddress"] = json!(m);
                    }
                    if !w.aliases.is_empty() {
                        v["Aliases"] = json!(w.aliases);
                    }
                    if !w.links.is_empty() {
                        v["Links"] = json!(w.links);
                    }
                    nets.insert(w.network.clone(), v);
                }
            }
        }
        let mappings: Vec<_> = eps.iter().flat_map(|e| e.ports.clone()).collect();
        let ports = if c.running() && mode == Mode::Networks {
            barge_network::docker_ports(&mappings, &exposed_ports(&c.config))
        } else {
            json!({})
        };
        let bridge = eps.iter().find(|e| e.network_name == "bridge");
        let sandbox = match mode {
            Mode::Host => String::new(),
            _ => self.netns_path(&c.id).display().to_string(),
        };
        json!({
            "Bridge": "",
            "SandboxID": if c.running() { c.id.clone() } else { String::new() },
            "SandboxKey": sandbox,
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": bridge.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
            "Gateway": bridge.and_then(|e| e.gateway).map(|g| g.to_string()).unwrap_or_default(),
            "GlobalIPv6Address": bridge.and_then(|e| e.ip6).map(|ip| ip.to_string()).unwrap_or_default(),
            "GlobalIPv6PrefixLen": bridge.filter(|e| e.ip6.is_some()).map(|e| e.prefix_len6).unwrap_or(0),
            "IPAddress": bridge.map(|e| e.ip.to_string()).unwrap_or_default(),
            "IPPrefixLen": bridge.map(|e| e.prefix_len).unwrap_or(0),
            "IPv6Gateway": bridge.and_then(|e| e.gateway6).map(|g| g.to_string()).unwrap_or_default(),
            "MacAddress": bridge.map(|e| e.mac.clone()).unwrap_or_default(),
            "Networks": nets,
        })
    }

    /// `/containers/json`'s `Ports` (published and exposed ports).
    pub fn port_summary(&self, c: &Container) -> Value {
        let mut out = Vec::new();
        let mut published = Vec::new();
        if c.running() {
            if let Some(nm) = self.network_manager() {
                for e in nm.endpoints_of(&c.id) {
                    for p in e.ports {
                        published.push(format!("{}/{}", p.container_port, p.proto));
                        out.push(json!({
                            "IP": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                            "PrivatePort": p.container_port,
                            "PublicPort": p.host_port,
                            "Type": p.proto.to_string(),
                        }));
                    }
                }
            }
        }
        for e in exposed_ports(&c.config) {
            if published.contains(&e) {
                continue;
            }
            let (p, t) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
            if let Ok(p) = p.parse::<u16>() {
                out.push(json!({"PrivatePort": p, "Type": t}));
            }
        }
        Value::Array(out)
    }

    /// `/containers/json`'s `NetworkSettings.Networks`.
    pub fn networks_summary(&self, c: &Container) -> Value {
        self.network_settings(c)["Networks"].clone()
    }

    /// Names of the containers (running or not) that want network `name`.
    pub fn containers_on_network(&self, name: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|c| {
                self.wanted_networks(&c.id)
                    .iter()
                    .any(|w| w.network == name)
            })
            .map(|c| c.id)
            .collect()
    }
}

/// A network's resolv.conf with the container's `--dns`, `--dns-search` and `--dns-option`
/// (HostConfig `Dns`, `DnsSearch`, `DnsOptions`), each replacing the lines of its kind as
/// Docker does; `--dns-search .` means no search domain. With the engine's DNS service
/// (`embedded`: a user-defined network) its nameserver stays first, so names of the network
/// still resolve, and the `--dns` servers follow it (Docker's embedded DNS forwards to them
/// instead; barge's forwards to the host's resolvers).
fn with_dns_options(base: &str, c: &Container, embedded: bool) -> String {
    let dns = crate::model::str_list(c.host_config.get("Dns"));
    let search = crate::model::str_list(c.host_config.get("DnsSearch"));
    let options = crate::model::str_list(c.host_config.get("DnsOptions"));
    if dns.is_empty() && search.is_empty() && options.is_empty() {
        return base.to_string();
    }
    let mut out = String::new();
    if !embedded {
        for d in &dns {
            out.push_str(&format!("nameserver {d}\n"));
        }
    }
    for l in base.lines() {
        let drop = match l.split_whitespace().next() {
            Some("nameserver") => !embedded && !dns.is_empty(),
            Some("search") | Some("domain") => !search.is_empty(),
            Some("options") => !options.is_empty(),
            _ => false,
        };
        if !drop {
            out.push_str(l);
            out.push('\n');
        }
    }
    if embedded {
        for d in &dns {
            out.push_str(&format!("nameserver {d}\n"));
        }
    }
    let search: Vec<&str> = search
        .iter()
        .map(String::as_str)
        .filter(|s| *s != ".")
        .collect();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}
