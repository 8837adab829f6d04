//! IPv4 subnets and address allocation (IPAM). Pure functions: the manager keeps the state.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::NetworkError;

/// An IPv4 network in CIDR form, e.g. `172.18.0.0/16`. The address is kept as given (so a
/// gateway-with-prefix like `172.17.0.1/16` round-trips); [`Ipv4Net::network`] masks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    /// The address part as written.
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub prefix: u8,
}

impl Ipv4Net {
    /// Builds a network; fails if `prefix > 32`.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, NetworkError> {
        if prefix > 32 {
            return Err(NetworkError::InvalidSubnet {
                subnet: format!("{addr}/{prefix}"),
                reason: "prefix length above 32".into(),
            });
        }
        Ok(Self { addr, prefix })
    }

    /// The netmask as a u32.
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// This network with host bits cleared.
    pub fn trunc(&self) -> Ipv4Net {
        Ipv4Net {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    /// Number of addresses (2^(32-prefix)).
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The first usable host address (network + 1).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()).wrapping_add(1))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = NetworkError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| NetworkError::InvalidSubnet {
            subnet: s.to_string(),
            reason: reason.to_string(),
        };
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| bad("prefix length is not a number"))?;
        Ipv4Net::new(addr, prefix)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Validates a user-given subnet for a bridge network: host bits must be zero and the network
/// must leave room for a gateway and at least one container.
pub fn validate_subnet(subnet: &Ipv4Net) -> Result<(), NetworkError> {
    if subnet.addr != subnet.network() {
        return Err(NetworkError::InvalidSubnet {
            subnet: subnet.to_string(),
            reason: format!("host bits are set (did you mean {}?)", subnet.trunc()),
        });
    }
    if subnet.prefix > 30 || subnet.prefix < 8 {
        return Err(NetworkError::InvalidSubnet {
            subnet: subnet.to_string(),
            reason: "prefix length must be between 8 and 30".into(),
        });
    }
    Ok(())
}

/// Whether `ip` can be given to a host in `subnet` (not the network or broadcast address).
pub fn is_host_addr(subnet: &Ipv4Net, ip: Ipv4Addr) -> bool {
    subnet.contains(ip) && ip != subnet.network() && ip != subnet.broadcast()
}

/// Picks the next free subnet of `size` prefix out of `pools`, avoiding `used`.
pub fn allocate_subnet(pools: &[(Ipv4Net, u8)], used: &[Ipv4Net]) -> Result<Ipv4Net, NetworkError> {
    for (pool, size) in pools {
        if *size < pool.prefix || *size > 30 {
            continue;
        }
        let step = 1u64 << (32 - u32::from(*size));
        let mut cur = u64::from(u32::from(pool.network()));
        let end = cur + pool.size();
        while cur < end {
            let cand = Ipv4Net {
                addr: Ipv4Addr::from(cur as u32),
                prefix: *size,
            };
            if !used.iter().any(|u| u.overlaps(&cand)) {
                return Ok(cand);
            }
            cur += step;
        }
    }
    Err(NetworkError::NoFreeSubnet)
}

/// Allocates an address for a container: `requested` is validated (inside `subnet`, a host
/// address, not `used`), otherwise the lowest free address of `range` (or `subnet`) is taken.
pub fn allocate_ip(
    network: &str,
    subnet: &Ipv4Net,
    range: Option<&Ipv4Net>,
    used: &BTreeSet<Ipv4Addr>,
    requested: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, NetworkError> {
    if let Some(ip) = requested {
        if !is_host_addr(subnet, ip) {
            return Err(NetworkError::OutsideSubnet {
                ip,
                subnet: *subnet,
                network: network.to_string(),
            });
        }
        if used.contains(&ip) {
            return Err(NetworkError::AddressInUse {
                ip,
                network: network.to_string(),
            });
        }
        return Ok(ip);
    }
    let pool = range.copied().unwrap_or(*subnet);
    let start = u32::from(pool.network());
    let end = u64::from(start) + pool.size();
    let mut cur = u64::from(start);
    while cur < end {
        let ip = Ipv4Addr::from(cur as u32);
        if is_host_addr(subnet, ip) && !used.contains(&ip) {
            return Ok(ip);
        }
        cur += 1;
    }
    Err(NetworkError::PoolExhausted(network.to_string()))
}

/// The MAC address Docker derives from an IPv4 address: `02:42` followed by the 4 address bytes.
pub fn mac_from_ip(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_contains() {
        let n = net("172.18.0.0/16");
        assert!(n.contains("172.18.255.254".parse().unwrap()));
        assert!(!n.contains("172.19.0.1".parse().unwrap()));
        assert_eq!(n.broadcast(), "172.18.255.255".parse::<Ipv4Addr>().unwrap());
        assert!("172.18.0.0".parse::<Ipv4Net>().is_err());
        assert!("172.18.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("foo/16".parse::<Ipv4Net>().is_err());
        assert_eq!(net("172.17.0.1/16").trunc(), net("172.17.0.0/16"));
    }

    #[test]
    fn validate_rejects_host_bits_and_tiny_nets() {
        assert!(validate_subnet(&net("10.1.0.0/24")).is_ok());
        assert!(validate_subnet(&net("10.1.0.5/24")).is_err());
        assert!(validate_subnet(&net("10.1.0.0/31")).is_err());
    }

    #[test]
    fn overlap() {
        assert!(net("10.0.0.0/8").overlaps(&net("10.5.0.0/16")));
        assert!(net("10.5.0.0/16").overlaps(&net("10.0.0.0/8")));
        assert!(!net("10.5.0.0/16").overlaps(&net("10.6.0.0/16")));
    }

    #[test]
    fn subnet_allocation_skips_used() {
        let pools = vec![(net("172.18.0.0/15"), 16)];
        let a = allocate_subnet(&pools, &[]).unwrap();
        assert_eq!(a, net("172.18.0.0/16"));
        let b = allocate_subnet(&pools, &[a]).unwrap();
        assert_eq!(b, net("172.19.0.0/16"));
        assert!(matches!(
            allocate_subnet(&pools, &[a, b]),
            Err(NetworkError::NoFreeSubnet)
        ));
        // a used network that overlaps only part of a candidate also blocks it
        let c = allocate_subnet(&pools, &[net("172.18.3.0/24")]).unwrap();
        assert_eq!(c, net("172.19.0.0/16"));
    }

    #[test]
    fn ip_allocation() {
        let s = net("10.9.0.0/29");
        let mut used = BTreeSet::new();
        used.insert("10.9.0.1".parse().unwrap()); // gateway
        let a = allocate_ip("n", &s, None, &used, None).unwrap();
        assert_eq!(a, "10.9.0.2".parse::<Ipv4Addr>().unwrap());
        used.insert(a);
        // static: inside, free
        let st = allocate_ip("n", &s, None, &used, Some("10.9.0.6".parse().unwrap())).unwrap();
        used.insert(st);
        // used
        assert!(matches!(
            allocate_ip("n", &s, None, &used, Some(st)),
            Err(NetworkError::AddressInUse { .. })
        ));
        // outside / broadcast / network address
        for bad in ["10.9.0.9", "10.9.0.7", "10.9.0.0"] {
            assert!(matches!(
                allocate_ip("n", &s, None, &used, Some(bad.parse().unwrap())),
                Err(NetworkError::OutsideSubnet { .. })
            ));
        }
        // ip-range restricts dynamic allocation
        let r = net("10.9.0.4/30");
        assert_eq!(
            allocate_ip("n", &s, Some(&r), &used, None).unwrap(),
            "10.9.0.4".parse::<Ipv4Addr>().unwrap()
        );
        // exhaustion
        for i in 2..=6 {
            used.insert(Ipv4Addr::new(10, 9, 0, i));
        }
        assert!(matches!(
            allocate_ip("n", &s, None, &used, None),
            Err(NetworkError::PoolExhausted(_))
        ));
    }

    #[test]
    fn docker_mac() {
        let m = mac_from_ip("172.17.0.2".parse().unwrap());
        assert_eq!(mac_string(&m), "02:42:ac:11:00:02");
    }
}
