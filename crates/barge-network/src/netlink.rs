//! A small synchronous rtnetlink client (links, addresses, routes) on netlink-sys.
//!
//! A socket belongs to the network namespace of the thread that created it; [`Netlink::in_netns`]
//! creates one in another namespace from a short-lived thread that `setns`es first.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A link as seen in a dump.
#[derive(Debug, Clone)]
pub(crate) struct LinkEntry {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    pub kind: Option<String>,
    /// Administratively up.
    pub up: bool,
}

pub(crate) struct Netlink {
    sock: Socket,
    seq: u32,
}

fn io_other(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// The index of the link named `name` in the calling thread's network namespace, if any.
/// `if_nametoindex` looks the name up under RCU (`SIOCGIFINDEX`): unlike a netlink request
/// it neither takes the RTNL lock nor makes the kernel process the link's pending carrier
/// events first (`RTM_GETLINK` does, and for a link that is up, losing carrier means waiting
/// for an expedited RCU grace period under that lock).
pub(crate) fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn new() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Self { sock, seq: 1 })
    }

    /// A socket in the network namespace `ns` (an open nsfs file). The calling thread enters
    /// `ns` for the socket(2) call and goes back at once: cheaper than a thread of its own,
    /// whose start and join are two scheduler round trips (milliseconds each on a loaded
    /// machine, on every container start).
    pub fn in_netns(ns: &File) -> io::Result<Self> {
        let home = File::open("/proc/thread-self/ns/net")?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        let r = Netlink::new();
        if let Err(e) = nix::sched::setns(&home, nix::sched::CloneFlags::CLONE_NEWNET) {
            // A thread left in a container's namespace would make the daemon's sockets
            // (published-port reservations, DNS servers) there: not survivable.
            tracing::error!("returning to the daemon's network namespace: {e}");
            std::process::abort();
        }
        r
    }

    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut nl =
            NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(msg));
        self.seq = self.seq.wrapping_add(1);
        nl.header.flags = NLM_F_REQUEST | flags;
        nl.header.sequence_number = self.seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut off = 0usize;
            while off < data.len() {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                    .map_err(|e| io_other(format!("bad netlink reply: {e}")))?;
                let len = m.header.length as usize;
                if len == 0 {
                    return Err(io_other("zero-length netlink message"));
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(_) => Err(e.to_io()),
                        }
                    }
                    NetlinkPayload::InnerMessage(i) => {
                        out.push(i);
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(out);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn ack(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.request(msg, NLM_F_ACK | flags).map(|_| ())
    }

    /// All links.
    pub fn links(&mut self) -> io::Result<Vec<LinkEntry>> {
        let msgs = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(entry(l)),
                _ => None,
            })
            .collect())
    }

    /// The index of the link named `name`, if any.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), NLM_F_ACK) {
            Ok(v) => Ok(v.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a bridge with a fixed MAC address (otherwise the bridge takes the lowest MAC of
    /// its ports, which changes as containers come and go and breaks the containers' ARP
    /// entries for the gateway).
    pub fn add_bridge(&mut self, name: &str, mac: [u8; 6], alias: &str) -> io::Result<u32> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.ack(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)?;
        let idx = self
            .link_index(name)?
            .ok_or_else(|| io_other(format!("bridge {name} vanished after creation")))?;
        self.set_alias(idx, alias)?;
        Ok(idx)
    }

    /// Creates a veth pair in one request: this end `name`, down (a port of bridge `master`,
    /// if given); the peer directly in the namespace `peer_ns`, down, named `peer_name`, with
    /// MAC `peer_mac`. Then marks this end with `alias` and turns on its hairpin mode as a
    /// bridge port (one more request). Returns this end's index. This end must be in the
    /// calling thread's namespace; bring it up with [`set_up`](Self::set_up) once the peer is
    /// up.
    ///
    /// Both ends get one queue each way: a veth made with the default (one per possible CPU)
    /// is cut down to one queue after it is registered, and each cut waits for an expedited
    /// RCU grace period under the RTNL lock (milliseconds on a busy machine, and every other
    /// container start waits for that lock). And this end is made down, to come up after the
    /// peer: up without a peer it has no carrier, and the kernel deactivating a link that is
    /// up and lost its carrier is one more such wait; coming up after the peer, it gets its
    /// carrier at once.
    pub fn add_veth(
        &mut self,
        name: &str,
        master: Option<u32>,
        alias: &str,
        peer_name: &str,
        peer_ns: &File,
        peer_mac: [u8; 6],
    ) -> io::Result<u32> {
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(peer_name.to_string()));
        peer.attributes
            .push(LinkAttribute::Address(peer_mac.to_vec()));
        peer.attributes
            .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
        peer.attributes.push(LinkAttribute::NumTxQueues(1));
        peer.attributes.push(LinkAttribute::NumRxQueues(1));
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::NumTxQueues(1));
        m.attributes.push(LinkAttribute::NumRxQueues(1));
        if let Some(master) = master {
            m.attributes.push(LinkAttribute::Controller(master));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)?;
        let r = self.mark_veth(name, master.is_some(), alias);
        if r.is_err() {
            // nothing half-made stays behind (deleting one end deletes both)
            let _ = self.del_link_by_name(name);
        }
        r
    }

    fn mark_veth(&mut self, name: &str, bridged: bool, alias: &str) -> io::Result<u32> {
        let idx = ifindex(name)
            .ok_or_else(|| io_other(format!("veth {name} vanished after creation")))?;
        // an existing link: the bridge-port data and the alias go in one message
        let mut m = LinkMessage::default();
        m.header.index = idx;
        m.attributes.push(LinkAttribute::IfAlias(alias.to_string()));
        if bridged {
            // a container reaching itself through a published port gets its packets back
            // through the port they came in on
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::PortKind(InfoPortKind::Bridge),
                LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                    true,
                )])),
            ]));
        }
        self.ack(RouteNetlinkMessage::NewLink(m), 0)?;
        Ok(idx)
    }

    /// (tx queues, rx queues, up, has carrier) of the link named `name` (tests).
    #[cfg(test)]
    pub fn link_state(&mut self, name: &str) -> io::Result<(u32, u32, bool, bool)> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let msgs = self.request(RouteNetlinkMessage::GetLink(m), NLM_F_ACK)?;
        let mut out = (0, 0, false, false);
        for msg in msgs {
            if let RouteNetlinkMessage::NewLink(l) = msg {
                out.2 = l.header.flags.contains(LinkFlags::Up);
                for a in l.attributes {
                    match a {
                        LinkAttribute::NumTxQueues(n) => out.0 = n,
                        LinkAttribute::NumRxQueues(n) => out.1 = n,
                        LinkAttribute::Carrier(c) => out.3 = c != 0,
                        _ => {}
                    }
                }
            }
        }
        Ok(out)
    }

    /// Sets the interface alias (our ownership mark).
    pub fn set_alias(&mut self, index: u32, alias: &str) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfAlias(alias.to_string()));
        self.ack(RouteNetlinkMessage::SetLink(m), 0)
    }

    /// Brings a link up, optionally enslaving it to `master` first.
    pub fn set_up(&mut self, index: u32, master: Option<u32>) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        if let Some(master) = master {
            m.attributes.push(LinkAttribute::Controller(master));
        }
        self.ack(RouteNetlinkMessage::SetLink(m), 0)
    }

    /// Deletes a link; a missing link is not an error.
    pub fn del_link(&mut self, index: u32) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.ack(RouteNetlinkMessage::DelLink(m), 0) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            r => r,
        }
    }

    /// Deletes the link named `name` if it exists.
    pub fn del_link_by_name(&mut self, name: &str) -> io::Result<bool> {
        match self.link_index(name)? {
            Some(i) => self.del_link(i).map(|_| true),
            None => Ok(false),
        }
    }

    /// Adds `ip/prefix` to a link; an existing identical address is not an error.
    pub fn add_addr(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(ip.into()));
        m.attributes.push(AddressAttribute::Address(ip.into()));
        if prefix < 31 {
            let mask = u32::MAX << (32 - u32::from(prefix));
            let b = Ipv4Addr::from(u32::from(ip) | !mask);
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        match self.ack(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Adds the IPv6 address `ip/prefix` to a link with duplicate address detection off
    /// (`IFA_F_NODAD`): with DAD the address stays tentative, unusable, for about a second
    /// after it is added, and a container's first packets would fail. The addresses come
    /// from the network's allocator, which hands each out once. An existing identical
    /// address is not an error.
    pub fn add_addr6(&mut self, index: u32, ip: Ipv6Addr, prefix: u8) -> io::Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.header.flags = AddressHeaderFlags::Nodad;
        m.attributes.push(AddressAttribute::Address(ip.into()));
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        match self.ack(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// IPv4 addresses of a link (or of all links with `index: None`), as (index, ip, prefix).
    pub fn addrs(&mut self, index: Option<u32>) -> io::Result<Vec<(u32, Ipv4Addr, u8)>> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        let msgs = self.request(RouteNetlinkMessage::GetAddress(m), NLM_F_DUMP)?;
        let mut out = Vec::new();
        for msg in msgs {
            if let RouteNetlinkMessage::NewAddress(a) = msg {
                if index.is_some_and(|i| i != a.header.index) {
                    continue;
                }
                for attr in &a.attributes {
                    if let AddressAttribute::Local(std::net::IpAddr::V4(ip)) = attr {
                        out.push((a.header.index, *ip, a.header.prefix_len));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Adds a default route (IPv4 or IPv6, as `gw`) via `gw` on `oif`; an existing default
    /// route of that family is left alone.
    pub fn add_default_route(&mut self, gw: IpAddr, oif: u32) -> io::Result<()> {
        let mut m = RouteMessage::default();
        let (family, gw) = match gw {
            IpAddr::V4(a) => (AddressFamily::Inet, RouteAddress::Inet(a)),
            IpAddr::V6(a) => (AddressFamily::Inet6, RouteAddress::Inet6(a)),
        };
        m.header.address_family = family;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Gateway(gw));
        m.attributes.push(RouteAttribute::Oif(oif));
        match self.ack(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Whether a default IPv4 route exists in the main table.
    pub fn has_default_route(&mut self) -> io::Result<bool> {
        self.has_default_route_of(AddressFamily::Inet)
    }

    /// Whether a default IPv6 route (with a gateway) exists in the main table.
    pub fn has_default_route6(&mut self) -> io::Result<bool> {
        self.has_default_route_of(AddressFamily::Inet6)
    }

    fn has_default_route_of(&mut self, family: AddressFamily) -> io::Result<bool> {
        let mut m = RouteMessage::default();
        m.header.address_family = family;
        let msgs = self.request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP)?;
        Ok(msgs.iter().any(|r| match r {
            RouteNetlinkMessage::NewRoute(r) => {
                r.header.destination_prefix_length == 0
                    && r.header.table == RouteHeader::RT_TABLE_MAIN
                    && r.attributes
                        .iter()
                        .any(|a| matches!(a, RouteAttribute::Gateway(_)))
            }
            _ => false,
        }))
    }
}

fn entry(l: LinkMessage) -> LinkEntry {
    let mut e = LinkEntry {
        index: l.header.index,
        name: String::new(),
        alias: None,
        kind: None,
        up: l.header.flags.contains(LinkFlags::Up),
    };
    for a in l.attributes {
        match a {
            LinkAttribute::IfName(n) => e.name = n,
            LinkAttribute::IfAlias(a) => e.alias = Some(a),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        e.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    e
}
