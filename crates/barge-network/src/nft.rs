//! barge's nftables table, generated whole from the state and replaced atomically.
//!
//! One `nft -j -f -` transaction (through the `nftables` crate) does `add table; delete table;
//! add table; chains; rules`, so the kernel always holds exactly what the records describe:
//! start-up repair is the same call as any update, and with no network left the table is gone.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::ipam::Ipv4Net;
use crate::ports::Proto;
use crate::NetworkError;

/// A bridge network as the firewall sees it.
pub(crate) struct NftNet {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
}

/// One DNAT rule.
pub(crate) struct NftPort {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub proto: Proto,
    pub container_ip: Ipv4Addr,
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
fn prefix(n: &Ipv4Net) -> Value {
    json!({"prefix": {"addr": n.network().to_string(), "len": n.prefix}})
}

/// Builds the JSON command list for the whole table.
pub(crate) fn build(table: &str, nets: &[NftNet], ports: &[NftPort]) -> Value {
    let t = json!({"family": "ip", "name": table});
    let mut cmds = vec![
        json!({"add": {"table": t}}),
        json!({"delete": {"table": t}}),
    ];
    if nets.is_empty() {
        return json!({"nftables": cmds});
    }
    cmds.push(json!({"add": {"table": t}}));
    let chain = |name: &str, ty: &str, hook: &str, prio: i32| {
        json!({"add": {"chain": {"family": "ip", "table": table, "name": name,
            "type": ty, "hook": hook, "prio": prio, "policy": "accept"}}})
    };
    cmds.push(chain("prerouting", "nat", "prerouting", -100));
    cmds.push(chain("output", "nat", "output", -100));
    cmds.push(chain("postrouting", "nat", "postrouting", 100));
    cmds.push(chain("forward", "filter", "forward", 0));
    cmds.push(chain("guard", "filter", "prerouting", -300));
    cmds.push(json!({"add": {"chain": {"family": "ip", "table": table, "name": "ports"}}}));
    let mut rule = |chain: &str, expr: Vec<Value>| {
        cmds.push(
            json!({"add": {"rule": {"family": "ip", "table": table, "chain": chain,
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
    for n in nets {
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
        if !n.internal {
            rule(
                "postrouting",
                vec![
                    m(payload("ip", "saddr"), "==", prefix(&n.subnet)),
                    m(meta("oifname"), "!=", br.clone()),
                    json!({"masquerade": null}),
                ],
            );
        }
        // host-local clients (127.0.0.1 through route_localnet) and hairpin clients on the
        // same bridge must see replies come back through the host
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
        rule(
            "postrouting",
            vec![
                m(meta("oifname"), "==", br),
                m(json!({"ct": {"key": "status"}}), "in", json!("dnat")),
                m(payload("ip", "saddr"), "==", prefix(&n.subnet)),
                json!({"masquerade": null}),
            ],
        );
    }
    cmds.extend(port_rules(table, ports));
    json!({"nftables": cmds})
}

fn port_rules(table: &str, ports: &[NftPort]) -> Vec<Value> {
    ports
        .iter()
        .map(|p| {
            let mut e = Vec::new();
            if let Some(ip) = p.host_ip {
                e.push(m(payload("ip", "daddr"), "==", json!(ip.to_string())));
            }
            let proto = p.proto.to_string();
            e.push(m(payload(&proto, "dport"), "==", json!(p.host_port)));
            e.push(json!({"counter": null}));
            e.push(json!({"dnat": {"addr": p.container_ip.to_string(), "port": p.container_port}}));
            json!({"add": {"rule": {"family": "ip", "table": table, "chain": "ports", "expr": e}}})
        })
        .collect()
}

/// Replaces only the published-port rules (one transaction: flush the `ports` chain, add the
/// rules); the table must exist. Much cheaper than [`build`] (no hook re-registration).
pub(crate) fn build_ports(table: &str, ports: &[NftPort]) -> Value {
    let mut cmds =
        vec![json!({"flush": {"chain": {"family": "ip", "table": table, "name": "ports"}}})];
    cmds.extend(port_rules(table, ports));
    json!({"nftables": cmds})
}

/// Adds port rules to the `ports` chain without touching the existing ones (connect: adding
/// rules is cheap, deleting them waits for an RCU grace period in the kernel).
pub(crate) fn build_port_additions(table: &str, ports: &[NftPort]) -> Value {
    json!({"nftables": port_rules(table, ports)})
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
