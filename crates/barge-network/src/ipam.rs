//! IPv4 subnets and address allocation (IPAM). Pure functions: the manager keeps the state.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
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

/// `ADDRESS/PREFIX` as text and in JSON, the same for both families: Display, FromStr (errors
/// name the subnet and what is wrong with it) and serde through that text.
macro_rules! cidr_text {
    ($net:ident, $addr:ty, $family:literal) => {
        impl fmt::Display for $net {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}/{}", self.addr, self.prefix)
            }
        }

        impl FromStr for $net {
            type Err = NetworkError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bad = |reason: &str| NetworkError::InvalidSubnet {
                    subnet: s.to_string(),
                    reason: reason.to_string(),
                };
                let (a, p) = s
                    .split_once('/')
                    .ok_or_else(|| bad("expected ADDRESS/PREFIX"))?;
                let addr: $addr = a
                    .parse()
                    .map_err(|_| bad(concat!("not an ", $family, " address")))?;
                let prefix: u8 = p
                    .parse()
                    .map_err(|_| bad("prefix length is not a number"))?;
                $net::new(addr, prefix)
            }
        }

        impl Serialize for $net {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> Deserialize<'de> for $net {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

cidr_text!(Ipv4Net, Ipv4Addr, "IPv4");

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
                ip: ip.into(),
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

/// An IPv6 network in CIDR form, e.g. `fd00:db8:1::/64`; the address is kept as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Net {
    /// The address part as written.
    pub addr: Ipv6Addr,
    /// The prefix length, 0..=128.
    pub prefix: u8,
}

impl Ipv6Net {
    /// Builds a network; fails if `prefix > 128`.
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Result<Self, NetworkError> {
        if prefix > 128 {
            return Err(NetworkError::InvalidSubnet {
                subnet: format!("{addr}/{prefix}"),
                reason: "prefix length above 128".into(),
            });
        }
        Ok(Self { addr, prefix })
    }

    /// The netmask as a u128.
    pub fn mask(&self) -> u128 {
        if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & self.mask())
    }

    /// This network with host bits cleared.
    pub fn trunc(&self) -> Ipv6Net {
        Ipv6Net {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.network())
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Ipv6Net) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    /// The last address of the network.
    pub fn last(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) | !self.mask())
    }

    /// The first usable host address (network + 1).
    pub fn first_host(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network()).wrapping_add(1))
    }
}

cidr_text!(Ipv6Net, Ipv6Addr, "IPv6");

/// Validates a user-given IPv6 subnet for a bridge network: a prefix of /64 or longer would
/// leave room, but SLAAC-free static addressing works with any length up to /126 (a gateway
/// and one container); shorter than /48 is refused as certainly a mistake (a whole site).
pub fn validate_subnet6(subnet: &Ipv6Net) -> Result<(), NetworkError> {
    if subnet.prefix > 126 || subnet.prefix < 48 {
        return Err(NetworkError::InvalidSubnet {
            subnet: subnet.to_string(),
            reason: "IPv6 prefix length must be between 48 and 126".into(),
        });
    }
    let ip = subnet.network();
    if ip.is_multicast()
        || ip.is_loopback()
        || ip.is_unspecified()
        || (ip.segments()[0] & 0xffc0) == 0xfe80
    {
        return Err(NetworkError::InvalidSubnet {
            subnet: subnet.to_string(),
            reason: "not a unicast range usable for a network (multicast, loopback or link-local)"
                .into(),
        });
    }
    Ok(())
}

/// Whether `ip` can be given to a host in `subnet`: inside it and not its network address
/// (the subnet-router anycast address; IPv6 has no broadcast).
pub fn is_host_addr6(subnet: &Ipv6Net, ip: Ipv6Addr) -> bool {
    subnet.contains(ip) && ip != subnet.network()
}

/// A unique local /64 (RFC 4193: `fd` + 40 random bits of global id + subnet 0) for a network
/// created with IPv6 on but no IPv6 subnet, made from `random` (the network's id bytes).
pub fn ula_subnet(random: &[u8; 5]) -> Ipv6Net {
    let mut b = [0u8; 16];
    b[0] = 0xfd;
    b[1..6].copy_from_slice(random);
    Ipv6Net {
        addr: Ipv6Addr::from(b),
        prefix: 64,
    }
}

/// [`allocate_ip`] for IPv6: `requested` is validated (inside `subnet`, not its network
/// address, not `used`), otherwise the lowest free address of `range` (or `subnet`) is taken,
/// as dockerd's sequential allocator does. The search is bounded: a range holds 2^64
/// addresses, the used set a few thousand.
pub fn allocate_ip6(
    network: &str,
    subnet: &Ipv6Net,
    range: Option<&Ipv6Net>,
    used: &BTreeSet<Ipv6Addr>,
    requested: Option<Ipv6Addr>,
) -> Result<Ipv6Addr, NetworkError> {
    if let Some(ip) = requested {
        if !is_host_addr6(subnet, ip) {
            return Err(NetworkError::OutsideSubnet6 {
                ip,
                subnet: *subnet,
                network: network.to_string(),
            });
        }
        if used.contains(&ip) {
            return Err(NetworkError::AddressInUse {
                ip: ip.into(),
                network: network.to_string(),
            });
        }
        return Ok(ip);
    }
    let pool = range.copied().unwrap_or(*subnet);
    let start = u128::from(pool.network());
    let end = u128::from(pool.last());
    // at most one candidate per used address plus the network address can be taken
    let last = end.min(start.saturating_add(used.len() as u128 + 1));
    for cur in start..=last {
        let ip = Ipv6Addr::from(cur);
        if is_host_addr6(subnet, ip) && !used.contains(&ip) {
            return Ok(ip);
        }
    }
    Err(NetworkError::PoolExhausted(network.to_string()))
}

/// Parses a MAC address (`aa:bb:cc:dd:ee:ff`, `-` also accepted as separator) for a
/// container's interface: it must be a unicast address (the low bit of the first byte clear)
/// and not all zeros, which the kernel would refuse or misroute.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    let ok = parts.len() == 6
        && parts
            .iter()
            .zip(mac.iter_mut())
            .all(|(p, b)| p.len() == 2 && u8::from_str_radix(p, 16).map(|v| *b = v).is_ok());
    if !ok {
        return Err(format!(
            "invalid MAC address {s:?}: want six hex bytes like 02:42:ac:11:00:02"
        ));
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "invalid MAC address {s}: a multicast address cannot be an interface's address"
        ));
    }
    if mac == [0u8; 6] {
        return Err(format!("invalid MAC address {s}: all zeros"));
    }
    Ok(mac)
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

    fn net6(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_parse_contains_overlap() {
        let n = net6("fd00:db8:1::/64");
        assert!(n.contains("fd00:db8:1::ffff:1".parse().unwrap()));
        assert!(!n.contains("fd00:db8:2::1".parse().unwrap()));
        assert_eq!(net6("2001:389::1/64").trunc(), net6("2001:389::/64"));
        assert!(n.overlaps(&net6("fd00:db8:1:0:8000::/65")));
        assert!(net6("fd00:db8::/40").overlaps(&n));
        assert!(!n.overlaps(&net6("fd00:db8:2::/64")));
        assert!("fd00::/129".parse::<Ipv6Net>().is_err());
        assert!("10.0.0.0/8".parse::<Ipv6Net>().is_err());
        assert!(validate_subnet6(&n).is_ok());
        assert!(validate_subnet6(&net6("fe80::/64")).is_err());
        assert!(validate_subnet6(&net6("ff00::/64")).is_err());
        assert!(validate_subnet6(&net6("fd00::/32")).is_err());
        assert!(validate_subnet6(&net6("fd00::/127")).is_err());
        let u = ula_subnet(&[1, 2, 3, 4, 5]);
        assert_eq!(u, net6("fd01:203:405::/64"));
    }

    #[test]
    fn ipv6_allocation() {
        let s = net6("fd00:db8:1::/64");
        let mut used = BTreeSet::new();
        used.insert("fd00:db8:1::1".parse().unwrap()); // gateway
        let a = allocate_ip6("n", &s, None, &used, None).unwrap();
        assert_eq!(a, "fd00:db8:1::2".parse::<Ipv6Addr>().unwrap());
        used.insert(a);
        let st: Ipv6Addr = "fd00:db8:1::f00d".parse().unwrap();
        assert_eq!(allocate_ip6("n", &s, None, &used, Some(st)).unwrap(), st);
        used.insert(st);
        assert!(matches!(
            allocate_ip6("n", &s, None, &used, Some(st)),
            Err(NetworkError::AddressInUse { .. })
        ));
        for bad in ["fd00:db8:2::5", "fd00:db8:1::"] {
            assert!(matches!(
                allocate_ip6("n", &s, None, &used, Some(bad.parse().unwrap())),
                Err(NetworkError::OutsideSubnet6 { .. })
            ));
        }
        // the range restricts dynamic allocation; a gateway outside it is no obstacle
        let r = net6("fd00:db8:1::100/120");
        assert_eq!(
            allocate_ip6("n", &s, Some(&r), &used, None).unwrap(),
            "fd00:db8:1::100".parse::<Ipv6Addr>().unwrap()
        );
        // exhaustion of a tiny subnet
        let tiny = net6("fd00:db8:1::/126");
        let mut u2 = BTreeSet::new();
        for i in 1..=3u16 {
            u2.insert(Ipv6Addr::new(0xfd00, 0xdb8, 1, 0, 0, 0, 0, i));
        }
        assert!(matches!(
            allocate_ip6("n", &tiny, None, &u2, None),
            Err(NetworkError::PoolExhausted(_))
        ));
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("02:42:AC:11:00:99").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 0x99]
        );
        assert_eq!(parse_mac("92-d0-c6-0a-29-33").unwrap()[5], 0x33);
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:9g",
            "002:42:ac:11:00:99",
            "02:42:ac:11:00:99:01",
        ] {
            assert!(
                parse_mac(bad).unwrap_err().contains("invalid MAC address"),
                "{bad}"
            );
        }
        assert!(parse_mac("01:00:5e:00:00:01")
            .unwrap_err()
            .contains("multicast"));
        assert!(parse_mac("00:00:00:00:00:00")
            .unwrap_err()
            .contains("zeros"));
    }
}
