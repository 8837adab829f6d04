//! barge's nftables table, generated whole from the state and replaced atomically.
//!
//! One `nft -j -f -` transaction (through the `nftables` crate) does `add table; delete table;
//! add table; chains; rules`, so the kernel always holds exactly what the records describe:
//! start-up repair is the same call as any update, and with no network left the table is gone.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{json, Value};

use crate::ipam::{Ipv4Net, Ipv6Net};
use crate::ports::Proto;
use crate::NetworkError;

/// A bridge network as the firewall sees it.
#[derive(Clone)]
pub(crate) struct NftNet {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub subnet6: Option<Ipv6Net>,
    pub internal: bool,
}

/// One DNAT rule.
pub(crate) struct NftPort {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub proto: Proto,
    pub container_ip: Ipv4Addr,
    /// The container's IPv6 address: the port is published over IPv6 too.
    pub container_ip6: Option<Ipv6Addr>,
    pub container_port: u16,
}

fn m(left: Value, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}
fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}
fn payload(proto: &str, field: &str) -> Value {
    json!({"payload": {"protocol": proto, "field": field}})
}
/// The address family of one of barge's two tables: `ip` for IPv4, `ip6` for the networks
/// with IPv6 (a second table of the same name, so IPv4-only hosts never load IPv6 rules).
#[derive(Clone, Copy, PartialEq)]
enum Fam {
    V4,
    V6,
}

impl Fam {
    fn name(self) -> &'static str {
        match self {
            Fam::V4 => "ip",
            Fam::V6 => "ip6",
        }
    }
}

/// A network's subnet of the family, as an nft prefix.
fn prefix(n: &NftNet, fam: Fam) -> Option<Value> {
    match fam {
        Fam::V4 => Some(
            json!({"prefix": {"addr": n.subnet.network().to_string(), "len": n.subnet.prefix}}),
        ),
        Fam::V6 => n
            .subnet6
            .map(|s| json!({"prefix": {"addr": s.network().to_string(), "len": s.prefix}})),
    }
}

/// Builds the JSON command list for both tables (`ip` always, `ip6` when a network has
/// IPv6; each is deleted when it has nothing to hold).
pub(crate) fn build(table: &str, nets: &[NftNet], ports: &[NftPort]) -> Value {
    let mut cmds = build_family(Fam::V4, table, nets, ports);
    let nets6: Vec<NftNet> = nets
        .iter()
        .filter(|n| n.subnet6.is_some())
        .cloned()
        .collect();
    cmds.extend(build_family(Fam::V6, table, &nets6, ports));
    json!({"nftables": cmds})
}

fn build_family(fam: Fam, table: &str, nets: &[NftNet], ports: &[NftPort]) -> Vec<Value> {
    let family = fam.name();
    let t = json!({"family": family, "name": table});
    let mut cmds = vec![
        json!({"add": {"table": t}}),
        json!({"delete": {"table": t}}),
    ];
    if nets.is_empty() {
        return cmds;
    }
    cmds.push(json!({"add": {"table": t}}));
    let chain = |name: &str, ty: &str, hook: &str, prio: i32| {
        json!({"add": {"chain": {"family": family, "table": table, "name": name,
            "type": ty, "hook": hook, "prio": prio, "policy": "accept"}}})
    };
    cmds.push(chain("prerouting", "nat", "prerouting", -100));
    cmds.push(chain("output", "nat", "output", -100));
    cmds.push(chain("postrouting", "nat", "postrouting", 100));
    cmds.push(chain("forward", "filter", "forward", 0));
    if fam == Fam::V4 {
        cmds.push(chain("guard", "filter", "prerouting", -300));
    }
    cmds.push(json!({"add": {"chain": {"family": family, "table": table, "name": "ports"}}}));
    let mut rule = |chain: &str, expr: Vec<Value>| {
        cmds.push(
            json!({"add": {"rule": {"family": family, "table": table, "chain": chain,
            "expr": expr}}}),
        );
    };
    let local = m(
        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
        "==",
        json!("local"),
    );
    rule(
        "prerouting",
        vec![local.clone(), json!({"jump": {"target": "ports"}})],
    );
    rule("output", vec![local, json!({"jump": {"target": "ports"}})]);
    // forward: replies, published ports, then per-network isolation
    rule(
        "forward",
        vec![
            m(
                json!({"ct": {"key": "state"}}),
                "in",
                json!(["established", "related"]),
            ),
            json!({"accept": null}),
        ],
    );
    rule(
        "forward",
        vec![
            m(json!({"ct": {"key": "status"}}), "in", json!("dnat")),
            json!({"accept": null}),
        ],
    );
    for n in nets.iter().filter(|_| fam == Fam::V4) {
        // route_localnet is on for the bridges (published ports on 127.0.0.1): never let a
        // container address the host's loopback services directly (CVE-2020-8558)
        rule(
            "guard",
            vec![
                m(meta("iifname"), "==", json!(n.bridge)),
                m(
                    payload("ip", "daddr"),
                    "==",
                    json!({"prefix": {"addr": "127.0.0.0", "len": 8}}),
                ),
                json!({"counter": null}),
                json!({"drop": null}),
            ],
        );
    }
    for n in nets {
        let br = json!(n.bridge);
        if n.internal {
            rule(
                "forward",
                vec![
                    m(meta("iifname"), "==", br.clone()),
                    m(meta("oifname"), "!=", br.clone()),
                    json!({"drop": null}),
                ],
            );
        }
        rule(
            "forward",
            vec![
                m(meta("iifname"), "==", br.clone()),
                m(meta("oifname"), "==", br.clone()),
                json!({"accept": null}),
            ],
        );
    }
    for n in nets {
        // nothing new enters a bridge from elsewhere (other networks, outside) unless DNATed
        rule(
            "forward",
            vec![
                m(meta("oifname"), "==", json!(n.bridge)),
                json!({"drop": null}),
            ],
        );
    }
    for n in nets {
        let br = json!(n.bridge);
        let Some(sub) = prefix(n, fam) else {
            continue;
        };
        if !n.internal {
            rule(
                "postrouting",
                vec![
                    m(payload(family, "saddr"), "==", sub.clone()),
                    m(meta("oifname"), "!=", br.clone()),
                    json!({"masquerade": null}),
                ],
            );
        }
        // host-local clients (127.0.0.1 through route_localnet) and hairpin clients on the
        // same bridge must see replies come back through the host
        if fam == Fam::V4 {
            rule(
                "postrouting",
                vec![
                    m(meta("oifname"), "==", br.clone()),
                    m(json!({"ct": {"key": "status"}}), "in", json!("dnat")),
                    m(
                        payload("ip", "saddr"),
                        "==",
                        json!({"prefix": {"addr": "127.0.0.0", "len": 8}}),
                    ),
                    json!({"masquerade": null}),
                ],
            );
        }
        rule(
            "postrouting",
            vec![
                m(meta("oifname"), "==", br),
                m(json!({"ct": {"key": "status"}}), "in", json!("dnat")),
                m(payload(family, "saddr"), "==", sub.clone()),
                json!({"masquerade": null}),
            ],
        );
    }
    cmds.extend(port_rules(fam, table, ports));
    cmds
}

/// The DNAT rules of the family. IPv6: the ports of containers with an IPv6 address that
/// are published on every host address (one bound to an IPv4 host address is IPv4 only).
fn port_rules(fam: Fam, table: &str, ports: &[NftPort]) -> Vec<Value> {
    let family = fam.name();
    ports
        .iter()
        .filter_map(|p| {
            let to = match fam {
                Fam::V4 => p.container_ip.to_string(),
                Fam::V6 if p.host_ip.is_none() => p.container_ip6?.to_string(),
                Fam::V6 => return None,
            };
            let mut e = Vec::new();
            if let Some(ip) = p.host_ip {
                e.push(m(payload("ip", "daddr"), "==", json!(ip.to_string())));
            }
            let proto = p.proto.to_string();
            e.push(m(payload(&proto, "dport"), "==", json!(p.host_port)));
            e.push(json!({"counter": null}));
            e.push(json!({"dnat": {"addr": to, "port": p.container_port}}));
            Some(
                json!({"add": {"rule": {"family": family, "table": table, "chain": "ports",
                "expr": e}}}),
            )
        })
        .collect()
}

/// Replaces only the published-port rules (one transaction: flush the `ports` chains, add
/// the rules); the tables must exist (`v6`: the `ip6` one does). Much cheaper than [`build`]
/// (no hook re-registration).
pub(crate) fn build_ports(table: &str, ports: &[NftPort], v6: bool) -> Value {
    let mut cmds = Vec::new();
    for fam in [Fam::V4, Fam::V6] {
        if fam == Fam::V6 && !v6 {
            continue;
        }
        cmds.push(
            json!({"flush": {"chain": {"family": fam.name(), "table": table, "name": "ports"}}}),
        );
        cmds.extend(port_rules(fam, table, ports));
    }
    json!({"nftables": cmds})
}

/// Adds port rules to the `ports` chains without touching the existing ones (connect: adding
/// rules is cheap, deleting them waits for an RCU grace period in the kernel). A port with
/// an IPv6 container address is on a network with IPv6, so the `ip6` table exists.
pub(crate) fn build_port_additions(table: &str, ports: &[NftPort]) -> Value {
    let mut cmds = port_rules(Fam::V4, table, ports);
    cmds.extend(port_rules(Fam::V6, table, ports));
    json!({"nftables": cmds})
}

/// Applies a command list.
pub(crate) fn apply(v: &Value) -> Result<(), NetworkError> {
    let payload = v.to_string();

    nftables::helper::apply_ruleset_raw(
        &payload,
        nftables::helper::DEFAULT_NFT,
        nftables::helper::DEFAULT_ARGS,
    )
    .map(|_| ())
    .map_err(|e| NetworkError::Nft(e.to_string()))
}

/// Removes the table if present.
pub(crate) fn delete_table(table: &str) -> Result<(), NetworkError> {
    apply(&build(table, &[], &[]))
}

/// The current ruleset of the table as JSON text (empty string if absent); for tests and
/// diagnostics.
pub(crate) fn list_table(table: &str) -> Result<Option<String>, NetworkError> {
    match nftables::helper::get_current_ruleset_raw(
        nftables::helper::DEFAULT_NFT,
        ["list", "table", "ip", table],
    ) {
        Ok(s) => Ok(Some(s)),
        Err(nftables::helper::NftablesError::NftFailed { stderr, .. })
            if stderr.contains("No such file") =>
        {
            Ok(None)
        }
        Err(e) => Err(NetworkError::Nft(e.to_string())),
    }
}
