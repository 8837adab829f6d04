//! The Docker Engine API shapes of networks, endpoints and published ports, so the API crate
//! can serve `GET /networks`, `/networks/{id}` and the network fields of container inspect
//! without knowing this crate's internals.

use serde_json::{json, Map, Value};

use crate::manager::{Endpoint, NetworkInfo};
use crate::ports::PortMapping;

/// RFC 3339 UTC time in whole seconds from seconds since the epoch (`2026-12-03T07:30:00Z`),
/// as Docker shows a network's `Created`.
pub fn rfc3339(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    barge_util::time::rfc3339(secs, 0, barge_util::time::Precision::Seconds)
}

impl NetworkInfo {
    /// The network as Docker's `NetworkResource` (`GET /networks/{id}`), with its endpoints.
    pub fn to_docker(&self, endpoints: &[Endpoint]) -> Value {
        let mut ipam = Map::new();
        ipam.insert("Subnet".into(), json!(self.subnet.to_string()));
        ipam.insert("Gateway".into(), json!(self.gateway.to_string()));
        if let Some(r) = self.ip_range {
            ipam.insert("IPRange".into(), json!(r.to_string()));
        }
        // as dockerd: only when some were given
        if !self.aux_addresses.is_empty() {
            ipam.insert("AuxiliaryAddresses".into(), json!(self.aux_addresses));
        }
        let mut configs = vec![Value::Object(ipam)];
        if let (Some(s6), Some(g6)) = (self.subnet6, self.gateway6) {
            let mut v6 = Map::new();
            v6.insert("Subnet".into(), json!(s6.to_string()));
            v6.insert("Gateway".into(), json!(g6.to_string()));
            if let Some(r) = self.ip_range6 {
                v6.insert("IPRange".into(), json!(r.to_string()));
            }
            if !self.aux_addresses6.is_empty() {
                v6.insert("AuxiliaryAddresses".into(), json!(self.aux_addresses6));
            }
            configs.push(Value::Object(v6));
        }
        let containers: Map<String, Value> = endpoints
            .iter()
            .filter(|e| e.network_id == self.id)
            .map(|e| {
                (
                    e.container_id.clone(),
                    json!({
                        "Name": e.name,
                        "EndpointID": e.endpoint_id,
                        "MacAddress": e.mac,
                        "IPv4Address": format!("{}/{}", e.ip, e.prefix_len),
                        "IPv6Address": e.ip6.map(|ip| format!("{ip}/{}", e.prefix_len6)).unwrap_or_default(),
                    }),
                )
            })
            .collect();
        // As Docker: a user network's Options are the driver options it was created with
        // (barge takes none), so clients that compare them with their own (docker-compose
        // recreates a network whose options differ) see no difference; the default bridge
        // shows its fixed ones.
        let mut options = Map::new();
        if self.default {
            options.insert("com.docker.network.bridge.name".into(), json!(self.bridge));
            options.insert(
                "com.docker.network.bridge.default_bridge".into(),
                json!("true"),
            );
            options.insert(
                "com.docker.network.bridge.enable_ip_masquerade".into(),
                json!("true"),
            );
            // Containers on it reach each other, published ports bind all addresses and the
            // bridge has the default MTU: dockerd's defaults, shown as dockerd shows them.
            options.insert("com.docker.network.bridge.enable_icc".into(), json!("true"));
            options.insert(
                "com.docker.network.bridge.host_binding_ipv4".into(),
                json!("0.0.0.0"),
            );
            options.insert("com.docker.network.driver.mtu".into(), json!("1500"));
        }
        json!({
            "Name": self.name,
            "Id": self.id,
            "Created": rfc3339(self.created),
            "Scope": "local",
            "Driver": self.driver,
            "EnableIPv4": true,
            "EnableIPv6": self.subnet6.is_some(),
            "IPAM": {"Driver": "default", "Options": null, "Config": configs},
            "Internal": self.internal,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": options,
            "Labels": self.labels,
        })
    }
}

impl Endpoint {
    /// The endpoint as Docker's `EndpointSettings` (container inspect
    /// `NetworkSettings.Networks[<network name>]`).
    pub fn to_docker(&self) -> Value {
        let mut dns_names = vec![self.name.trim_start_matches('/').to_string()];
        if self.container_id.len() >= 12 {
            dns_names.push(self.container_id[..12].to_string());
        }
        for a in &self.aliases {
            if !dns_names.contains(a) {
                dns_names.push(a.clone());
            }
        }
        json!({
            "IPAMConfig": null,
            "Links": null,
            "Aliases": if self.aliases.is_empty() { Value::Null } else { json!(self.aliases) },
            "MacAddress": self.mac,
            "DriverOpts": null,
            "NetworkID": self.network_id,
            "EndpointID": self.endpoint_id,
            "Gateway": self.gateway.map(|g| g.to_string()).unwrap_or_default(),
            "IPAddress": self.ip.to_string(),
            "IPPrefixLen": self.prefix_len,
            "IPv6Gateway": self.gateway6.map(|g| g.to_string()).unwrap_or_default(),
            "GlobalIPv6Address": self.ip6.map(|ip| ip.to_string()).unwrap_or_default(),
            "GlobalIPv6PrefixLen": if self.ip6.is_some() { self.prefix_len6 } else { 0 },
            "DNSNames": dns_names,
        })
    }
}

/// Docker's `NetworkSettings.Ports` map (`{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort":
/// "8080"}]}`) for the given mappings; `exposed` lists container ports (`"80/tcp"`) that are
/// exposed but not published (they map to `null`).
pub fn docker_ports(mappings: &[PortMapping], exposed: &[String]) -> Value {
    let mut m = Map::new();
    for e in exposed {
        m.insert(e.clone(), Value::Null);
    }
    for p in mappings {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = json!({
            "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
            "HostPort": p.host_port.to_string(),
        });
        match m.get_mut(&key) {
            Some(Value::Array(a)) => a.push(entry),
            _ => {
                m.insert(key, json!([entry]));
            }
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Proto;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_276_096), "2026-12-03T05:34:56Z");
    }

    #[test]
    fn shapes() {
        let net = NetworkInfo {
            id: "ab".repeat(32),
            name: "n".into(),
            driver: "bridge".into(),
            bridge: "br-abababababab".into(),
            subnet: "10.1.0.0/24".parse().unwrap(),
            gateway: "10.1.0.1".parse().unwrap(),
            ip_range: None,
            internal: false,
            labels: [("a".to_string(), "b".to_string())].into(),
            created: 0,
            default: false,
            subnet6: Some("fd00:db8:1::/64".parse().unwrap()),
            gateway6: Some("fd00:db8:1::1".parse().unwrap()),
            ip_range6: None,
            aux_addresses: Default::default(),
            aux_addresses6: Default::default(),
        };
        let ep = Endpoint {
            endpoint_id: "cd".repeat(32),
            network_id: net.id.clone(),
            network_name: "n".into(),
            container_id: "ef".repeat(32),
            name: "web".into(),
            aliases: vec!["efefefefefef".into(), "api".into()],
            ifname: "eth0".into(),
            host_veth: "bvcdcdcdcdcdcd".into(),
            ip: "10.1.0.2".parse().unwrap(),
            prefix_len: 24,
            gateway: Some("10.1.0.1".parse().unwrap()),
            mac: "02:42:0a:01:00:02".into(),
            ports: vec![],
            netns_path: "/proc/1/ns/net".into(),
            ip6: Some("fd00:db8:1::2".parse().unwrap()),
            prefix_len6: 64,
            gateway6: Some("fd00:db8:1::1".parse().unwrap()),
            links: vec![],
        };
        let v = net.to_docker(std::slice::from_ref(&ep));
        assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "10.1.0.0/24");
        assert_eq!(v["EnableIPv6"], true);
        assert_eq!(
            v["IPAM"]["Config"][1],
            json!({"Subnet": "fd00:db8:1::/64", "Gateway": "fd00:db8:1::1"})
        );
        assert_eq!(
            v["Containers"][&ep.container_id]["IPv6Address"],
            "fd00:db8:1::2/64"
        );
        assert_eq!(
            v["Containers"][&ep.container_id]["IPv4Address"],
            "10.1.0.2/24"
        );
        assert_eq!(
            v["Options"],
            json!({}),
            "a user network has no driver options"
        );
        assert_eq!(v["Labels"]["a"], "b");
        let s = ep.to_docker();
        assert_eq!(
            (s["IPAddress"].as_str(), s["IPPrefixLen"].as_u64()),
            (Some("10.1.0.2"), Some(24))
        );
        assert_eq!(s["DNSNames"], json!(["web", "efefefefefef", "api"]));
        assert_eq!(
            (
                s["GlobalIPv6Address"].as_str(),
                s["GlobalIPv6PrefixLen"].as_u64(),
                s["IPv6Gateway"].as_str()
            ),
            (Some("fd00:db8:1::2"), Some(64), Some("fd00:db8:1::1"))
        );
        let p = docker_ports(
            &[
                PortMapping {
                    host_ip: None,
                    host_port: 8080,
                    container_port: 80,
                    proto: Proto::Tcp,
                },
                PortMapping {
                    host_ip: Some("127.0.0.1".parse().unwrap()),
                    host_port: 8081,
                    container_port: 80,
                    proto: Proto::Tcp,
                },
            ],
            &["80/tcp".to_string(), "53/udp".to_string()],
        );
        assert_eq!(p["80/tcp"][1]["HostIp"], "127.0.0.1");
        assert_eq!(p["80/tcp"][0]["HostPort"], "8080");
        assert_eq!(p["53/udp"], Value::Null);
    }
}
