//! Namespace tests. Every test runs on a thread that first moves into a network namespace of
//! its own (`unshare(CLONE_NEWNET)`); "containers" are further namespaces held by open nsfs
//! files. All traffic stays inside them; when the thread ends and the files are closed, the
//! namespaces (and every link, address and nft table in them) are gone, also on failure.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sched::{setns, unshare, CloneFlags};

use crate::dns;
use crate::netlink::Netlink;
use crate::*;

/// Runs `f` on a thread inside a fresh network namespace (loopback up).
fn in_test_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            let mut nl = Netlink::new().expect("netlink");
            let lo = nl.link_index("lo").expect("lo").expect("lo exists");
            nl.set_up(lo, None).expect("lo up");
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// A container's network namespace, alive while this value is.
struct Cns {
    file: File,
}

impl Cns {
    fn new() -> Self {
        let file = std::thread::spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare");
            File::open("/proc/thread-self/ns/net").expect("open ns")
        })
        .join()
        .expect("ns thread");
        Self { file }
    }
    fn path(&self) -> PathBuf {
        format!("/proc/self/fd/{}", self.file.as_raw_fd()).into()
    }
    /// Runs `f` on a thread inside this namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                setns(&self.file, CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            });
            match h.join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }
    fn links(&self) -> Vec<String> {
        let mut nl = Netlink::in_netns(&self.file).expect("netlink");
        nl.links()
            .expect("links")
            .into_iter()
            .map(|l| l.name)
            .collect()
    }
}

fn cid(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

fn req(c: &Cns, n: u8, name: &str) -> ConnectRequest {
    ConnectRequest {
        container_id: cid(n),
        name: name.into(),
        netns_path: c.path(),
        ..Default::default()
    }
}

struct Host {
    nm: NetworkManager,
    _dir: tempfile::TempDir,
    resolv: PathBuf,
}

/// Opens a manager on a temp state dir, with an uplink stand-in `up0` = 10.99.0.1/24 and a
/// host resolv.conf naming a loopback and a 10.99.0.53 resolver.
fn host() -> Host {
    let dir = tempfile::tempdir().expect("tempdir");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.53\nnameserver 10.99.0.53\nsearch example.test\noptions ndots:0\n",
    )
    .expect("resolv");
    let mut nl = Netlink::new().expect("netlink");
    if nl.link_index("up0").expect("lookup").is_none() {
        let i = nl
            .add_bridge("up0", [2, 0x99, 0, 0, 0, 1], "test uplink")
            .expect("uplink");
        nl.add_addr(i, Ipv4Addr::new(10, 99, 0, 1), 24)
            .expect("addr");
        nl.add_addr(i, Ipv4Addr::new(10, 99, 0, 53), 24)
            .expect("addr");
        nl.set_up(i, None).expect("up");
    }
    let cfg = NetworkConfig {
        host_resolv_conf: resolv.clone(),
        ..Default::default()
    };
    let nm = NetworkManager::open(&dir.path().join("net"), cfg).expect("open");
    nm.repair().expect("repair");
    Host {
        nm,
        _dir: dir,
        resolv,
    }
}

fn host_links() -> BTreeSet<String> {
    Netlink::new()
        .expect("netlink")
        .links()
        .expect("links")
        .into_iter()
        .map(|l| l.name)
        .collect()
}

/// An echo server: answers each connection with `tag` followed by what it read (one line).
fn serve(l: TcpListener, tag: &'static str) {
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let peer = s
                .peer_addr()
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ = s.write_all(
                format!("{tag} {} from {peer}", String::from_utf8_lossy(&buf[..n])).as_bytes(),
            );
        }
    });
}

fn try_talk(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(1500))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"hi")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Talks to `addr`, retrying for a few seconds (links come up asynchronously).
fn talk(addr: &str) -> String {
    let a: SocketAddr = addr.parse().expect("addr");
    let t = Instant::now();
    loop {
        match try_talk(a) {
            Ok(s) => return s,
            Err(e) if t.elapsed() > Duration::from_secs(6) => panic!("talking to {addr}: {e}"),
            Err(e) => {
                eprintln!("RETRY {addr}: {e}");
                std::thread::sleep(Duration::from_millis(100))
            }
        }
    }
}

fn listen(c: &Cns, port: u16) -> TcpListener {
    c.run(|| TcpListener::bind(("0.0.0.0", port)).expect("bind in container"))
}

fn query(c: &Cns, server: Ipv4Addr, name: &str) -> Option<(u8, Vec<Ipv4Addr>)> {
    c.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        // like a stub resolver: a few tries
        for _ in 0..3 {
            s.send_to(&dns::build_query(0x1234, name, dns::TYPE_A), (server, 53))
                .ok()?;
            let mut buf = [0u8; 1500];
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return dns::parse_response(&buf[..n]);
            }
        }
        eprintln!("no DNS answer for {name} from {server}");
        None
    })
}

#[test]
fn two_containers_on_default_bridge_talk() {
    in_test_netns(|| {
        let h = host();
        let def = h.nm.ensure_default_network().expect("default");
        assert_eq!(
            (def.name.as_str(), def.bridge.as_str()),
            ("bridge", "barge0")
        );
        assert!(host_links().contains("barge0"));
        let (c1, c2) = (Cns::new(), Cns::new());
        let e1 =
            h.nm.connect("bridge", req(&c1, 1, "one"))
                .expect("connect 1");
        let e2 =
            h.nm.connect("default", req(&c2, 2, "two"))
                .expect("connect 2");
        assert_eq!(
            e2.network_name, "bridge",
            "NetworkMode default is the bridge"
        );
        assert_eq!(e1.ip, Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(e2.ip, Ipv4Addr::new(172, 17, 0, 3));
        assert_eq!(e1.mac, "02:42:ac:11:00:02");
        assert_eq!(e1.gateway, Some(Ipv4Addr::new(172, 17, 0, 1)));
        assert_eq!(e1.ifname, "eth0");
        assert!(c1.links().contains(&"eth0".to_string()));
        // both ends: one queue each way (see Netlink::add_veth), up, with carrier
        let host_end = Netlink::new()
            .expect("netlink")
            .link_state(&e1.host_veth)
            .expect("host end");
        let cont_end = Netlink::in_netns(&c1.file)
            .expect("netlink")
            .link_state("eth0")
            .expect("container end");
        assert_eq!(host_end, (1, 1, true, true), "{}", e1.host_veth);
        assert_eq!(cont_end, (1, 1, true, true), "eth0");
        serve(listen(&c1, 7000), "c1");
        let got = c2.run(|| talk("172.17.0.2:7000"));
        assert_eq!(got, "c1 hi from 172.17.0.3");
        // UDP the other way
        let u = c2.run(|| UdpSocket::bind("0.0.0.0:7001").expect("udp"));
        c1.run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").expect("udp");
            s.send_to(b"ping", "172.17.0.3:7001").expect("send");
        });
        u.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut b = [0u8; 8];
        let (n, from) = u.recv_from(&mut b).expect("udp datagram");
        assert_eq!(
            (&b[..n], from.ip().to_string().as_str()),
            (&b"ping"[..], "172.17.0.2")
        );
        // the container reaches the host through its gateway
        serve(
            TcpListener::bind("10.99.0.1:7002").expect("host listen"),
            "host",
        );
        assert_eq!(c1.run(|| talk("10.99.0.1:7002")), "host hi from 172.17.0.2");
        // files for the container
        let rc = h.nm.resolv_conf("bridge").expect("resolv");
        assert_eq!(
            rc, "nameserver 10.99.0.53\nsearch example.test\noptions ndots:0\n",
            "loopback resolver dropped"
        );
        std::fs::write(&h.resolv, "nameserver 127.0.0.1\n").expect("write");
        assert_eq!(
            h.nm.resolv_conf("bridge").expect("resolv"),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        let hosts = h.nm.hosts_file(&cid(1), "one");
        assert!(
            hosts.contains("127.0.0.1\tlocalhost") && hosts.contains("172.17.0.2\tone"),
            "{hosts}"
        );
        // stopping the container disconnects it
        h.nm.disconnect_all(&cid(2)).expect("disconnect");
        assert!(!c2.links().contains(&"eth0".to_string()));
        assert!(try_talk("172.17.0.3:7001".parse().expect("a")).is_err());
        // a container whose namespace is already gone (it exited) disconnects cleanly
        let c3 = Cns::new();
        let e3 =
            h.nm.connect("bridge", req(&c3, 3, "three"))
                .expect("connect 3");
        assert_eq!(e3.ip, Ipv4Addr::new(172, 17, 0, 3), "address reused");
        drop(c3);
        h.nm.disconnect_all(&cid(3)).expect("disconnect after exit");
        assert!(!host_links().contains(&e3.host_veth));
        assert!(h.nm.endpoints_of(&cid(3)).is_empty());
    })
}

#[test]
fn published_ports_from_host_localhost_and_hairpin() {
    in_test_netns(|| {
        let h = host();
        h.nm.ensure_default_network().expect("default");
        let (c1, c2) = (Cns::new(), Cns::new());
        let mut r = req(&c1, 1, "web");
        r.ports = parse_port_spec("8080:80").expect("spec");
        r.ports
            .extend(parse_port_spec("127.0.0.1::81").expect("spec"));
        let e1 = h.nm.connect("bridge", r).expect("connect");
        assert_eq!(e1.ports[0].host_port, 8080);
        let random = e1.ports[1].host_port;
        assert!(random > 1024 && random != 8080, "random host port {random}");
        h.nm.connect("bridge", req(&c2, 2, "client"))
            .expect("connect 2");
        serve(listen(&c1, 80), "p80");
        serve(listen(&c1, 81), "p81");
        // from the host: its address, the bridge address, loopback
        assert!(talk("10.99.0.1:8080").starts_with("p80 hi"));
        assert!(talk("172.17.0.1:8080").starts_with("p80 hi"));
        assert!(talk("127.0.0.1:8080").starts_with("p80 hi"));
        assert!(talk(&format!("127.0.0.1:{random}")).starts_with("p81 hi"));
        // bound to 127.0.0.1 only: not on the host's other addresses
        assert!(try_talk(format!("10.99.0.1:{random}").parse().expect("a")).is_err());
        // hairpin: another container and the container itself, through the host address
        assert!(c2.run(|| talk("10.99.0.1:8080")).starts_with("p80 hi"));
        assert!(c1.run(|| talk("10.99.0.1:8080")).starts_with("p80 hi"));
        // a host port already taken is an error and leaves nothing behind
        let before = host_links();
        let _taken = TcpListener::bind("0.0.0.0:9090").expect("bind");
        let c3 = Cns::new();
        let mut r = req(&c3, 3, "late");
        r.ports = parse_port_spec("9090:80").expect("spec");
        let err = h.nm.connect("bridge", r).expect_err("port in use");
        assert!(matches!(err, NetworkError::PortInUse { .. }), "{err}");
        assert!(err.to_string().contains("9090"), "{err}");
        // a host range takes its first free port
        let mut r = req(&c3, 3, "late");
        r.ports = parse_port_spec("8080-8082:80").expect("spec");
        let e3 = h.nm.connect("bridge", r).expect("range");
        assert_eq!(e3.ports[0].host_port, 8081, "8080 is taken by c1");
        h.nm.disconnect("bridge", &cid(3)).expect("disconnect c3");
        // a port published by another container is taken too
        let mut r = req(&c3, 3, "late");
        r.ports = parse_port_spec("8080:80").expect("spec");
        assert!(matches!(
            h.nm.connect("bridge", r),
            Err(NetworkError::PortInUse { .. })
        ));
        assert_eq!(host_links(), before);
        assert!(!c3.links().contains(&"eth0".to_string()));
        assert!(h.nm.endpoints_of(&cid(3)).is_empty());
        // unpublish: the rule goes with the endpoint
        h.nm.disconnect("bridge", &cid(1)).expect("disconnect");
        let fw = h.nm.firewall_dump().expect("nft").expect("table");
        assert!(!fw.contains("\"dnat\": {"), "{fw}");
        assert!(try_talk("127.0.0.1:8080".parse().expect("a")).is_err());
        // and the host port is free again
        drop(TcpListener::bind("0.0.0.0:8080").expect("port released"));
    })
}

#[test]
fn user_networks_dns_isolation_and_internal() {
    in_test_netns(|| {
        let h = host();
        // a stand-in upstream resolver on the "host": knows elsewhere.example only
        let up = UdpSocket::bind("10.99.0.53:53").expect("upstream");
        std::thread::spawn(move || {
            let mut b = [0u8; 1500];
            while let Ok((n, p)) = up.recv_from(&mut b) {
                let q = &b[..n];
                let Some(parsed) = dns::parse_query(q) else {
                    continue;
                };
                let mut r = q.to_vec();
                r[2] |= 0x80;
                if parsed.name == "elsewhere.example" {
                    r[7] = 1;
                    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
                } else {
                    r[3] = (r[3] & 0xf0) | dns::RCODE_NXDOMAIN;
                }
                let _ = up.send_to(&r, p);
            }
        });
        let a =
            h.nm.create_network(NetworkSpec {
                name: "a".into(),
                subnet: Some("10.10.0.0/24".parse().expect("net")),
                ..Default::default()
            })
            .expect("net a");
        let b =
            h.nm.create_network(NetworkSpec {
                name: "b".into(),
                ..Default::default()
            })
            .expect("net b");
        assert_eq!(
            b.subnet.to_string(),
            "172.18.0.0/16",
            "from the default pool"
        );
        // a host network inside the pool is skipped
        let mut nl = Netlink::new().expect("nl");
        let up = nl.link_index("up0").expect("lookup").expect("up0");
        nl.add_addr(up, Ipv4Addr::new(172, 19, 7, 1), 24)
            .expect("addr");
        let c =
            h.nm.create_network(NetworkSpec {
                name: "c".into(),
                ..Default::default()
            })
            .expect("net c");
        assert_eq!(
            c.subnet.to_string(),
            "172.20.0.0/16",
            "skips the host's 172.19.7.0/24"
        );
        h.nm.remove_network("c").expect("rm c");
        assert!(a.bridge.starts_with("br-") && a.bridge.len() == 15);
        let (c1, c2, c3) = (Cns::new(), Cns::new(), Cns::new());
        let mut r1 = req(&c1, 1, "web");
        r1.aliases = vec!["api".into()];
        let e1 = h.nm.connect("a", r1).expect("c1");
        let e2 = h.nm.connect("a", req(&c2, 2, "client")).expect("c2");
        let mut r3 = req(&c3, 3, "other");
        r3.ports = parse_port_spec("8087:80").expect("spec");
        let e3 = h.nm.connect("b", r3).expect("c3");
        assert_eq!(
            h.nm.resolv_conf("a").expect("rc").lines().next(),
            Some("nameserver 10.10.0.1")
        );
        // names and aliases on the same network
        assert_eq!(query(&c2, a.gateway, "web"), Some((0, vec![e1.ip])));
        assert_eq!(query(&c2, a.gateway, "API"), Some((0, vec![e1.ip])));
        assert_eq!(query(&c1, a.gateway, "client"), Some((0, vec![e2.ip])));
        // DNS over TCP too
        let tcp_answer = c2.run(|| {
            let mut s = TcpStream::connect_timeout(
                &SocketAddr::from((a.gateway, 53)),
                Duration::from_secs(3),
            )
            .expect("tcp 53");
            s.set_read_timeout(Some(Duration::from_secs(3)))
                .expect("timeout");
            let q = dns::build_query(7, "web", dns::TYPE_A);
            s.write_all(&(q.len() as u16).to_be_bytes()).expect("len");
            s.write_all(&q).expect("query");
            let mut len = [0u8; 2];
            s.read_exact(&mut len).expect("reply length");
            let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut r).expect("reply");
            dns::parse_response(&r)
        });
        assert_eq!(tcp_answer, Some((0, vec![e1.ip])));
        // others forwarded to the host's (non-loopback) resolver
        assert_eq!(
            query(&c2, a.gateway, "elsewhere.example"),
            Some((0, vec![Ipv4Addr::new(1, 2, 3, 4)]))
        );
        // not visible from another network, neither through its own server nor a's
        assert_eq!(
            query(&c3, b.gateway, "web"),
            Some((dns::RCODE_NXDOMAIN, vec![]))
        );
        assert_eq!(query(&c3, b.gateway, "other"), Some((0, vec![e3.ip])));
        assert_eq!(
            query(&c3, a.gateway, "web").map(|r| r.0),
            Some(5),
            "refused"
        );
        // isolation: c3 (b) cannot reach c1 (a); c2 (a) can
        serve(listen(&c1, 80), "c1");
        assert!(c2
            .run(|| talk("10.10.0.2:80"))
            .starts_with("c1 hi from 10.10.0.3"));
        assert!(
            c3.run(|| try_talk("10.10.0.2:80".parse().expect("a")))
                .is_err(),
            "b reached a"
        );
        // ... unless it joins both networks (eth1)
        let e3a = h.nm.connect("a", req(&c3, 3, "other")).expect("c3 on a");
        assert_eq!(e3a.ifname, "eth1");
        assert!(c3
            .run(|| talk("10.10.0.2:80"))
            .starts_with("c1 hi from 10.10.0.4"));
        assert_eq!(query(&c1, a.gateway, "other"), Some((0, vec![e3a.ip])));
        // leaving b (which held the default route) moves the default route to a
        h.nm.disconnect("b", &cid(3)).expect("leave b");
        assert_eq!(c3.links(), vec!["lo".to_string(), "eth1".to_string()]);
        serve(
            TcpListener::bind("10.99.0.1:7003").expect("host listen"),
            "host",
        );
        assert_eq!(c3.run(|| talk("10.99.0.1:7003")), "host hi from 10.10.0.4");
        // ... and its published ports with it (same host port, now to its address on a)
        let moved: Vec<_> =
            h.nm.endpoints_of(&cid(3))
                .into_iter()
                .map(|e| (e.network_name, e.ports))
                .collect();
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].0, "a");
        assert_eq!(
            moved[0]
                .1
                .iter()
                .map(|p| (p.host_port, p.container_port))
                .collect::<Vec<_>>(),
            vec![(8087, 80)]
        );
        assert!(
            TcpListener::bind("0.0.0.0:8087").is_err(),
            "host port still reserved"
        );
        serve(listen(&c3, 80), "c3");
        assert!(
            talk("10.99.0.1:8087").starts_with("c3 hi"),
            "published port follows the default route"
        );
        h.nm.disconnect("a", &cid(3)).expect("disconnect");
        assert_eq!(
            query(&c1, a.gateway, "other"),
            Some((dns::RCODE_NXDOMAIN, vec![]))
        );
        // internal network: no route out
        h.nm.create_network(NetworkSpec {
            name: "i".into(),
            subnet: Some("10.30.0.0/24".parse().expect("net")),
            internal: true,
            ..Default::default()
        })
        .expect("internal");
        let c4 = Cns::new();
        let e4 = h.nm.connect("i", req(&c4, 4, "locked")).expect("c4");
        assert_eq!(e4.gateway, None);
        serve(
            TcpListener::bind("10.99.0.1:7002").expect("host listen"),
            "host",
        );
        assert!(c1
            .run(|| talk("10.99.0.1:7002"))
            .starts_with("host hi from 10.10.0.2"));
        assert!(
            c4.run(|| try_talk("10.99.0.1:7002".parse().expect("a")))
                .is_err(),
            "internal got out"
        );
        let mut r = req(&Cns::new(), 5, "x");
        r.ports = parse_port_spec("8081:80").expect("spec");
        assert!(matches!(
            h.nm.connect("i", r),
            Err(NetworkError::PortsOnInternal(_))
        ));
    })
}

#[test]
fn teardown_leaves_no_links_addresses_or_rules() {
    in_test_netns(|| {
        let before = host_links();
        let h = host();
        let baseline: BTreeSet<String> = host_links();
        // forwarding is turned on only when a network needs it (not for internal ones)
        let fwd = || std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("sysctl");
        // A new namespace may start with the host's setting: start this one from "off".
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "0").expect("sysctl");
        assert_eq!(fwd().trim(), "0");
        h.nm.create_network(NetworkSpec {
            name: "only-internal".into(),
            internal: true,
            ..Default::default()
        })
        .expect("internal");
        assert_eq!(fwd().trim(), "0");
        h.nm.remove_network("only-internal").expect("rm");
        h.nm.ensure_default_network().expect("default");
        assert_eq!(fwd().trim(), "1");
        h.nm.create_network(NetworkSpec {
            name: "t".into(),
            ..Default::default()
        })
        .expect("net");
        let (c1, c2) = (Cns::new(), Cns::new());
        let mut r = req(&c1, 1, "a");
        r.ports = parse_port_spec("8000-8001:80-81/tcp").expect("spec");
        r.ports
            .extend(parse_port_spec("5353:53/udp").expect("spec"));
        let e = h.nm.connect("bridge", r).expect("c1");
        assert_eq!(e.ports.len(), 3);
        h.nm.connect("t", req(&c2, 2, "b")).expect("c2");
        h.nm.connect("t", req(&c1, 1, "a")).expect("c1 on t");
        let fw = h.nm.firewall_dump().expect("nft").expect("table");
        assert!(
            fw.contains("\"dnat\": {") && fw.contains("masquerade"),
            "{fw}"
        );
        assert!(
            host_links().len() >= baseline.len() + 5,
            "2 bridges + 3 veths"
        );
        // removing a network in use is refused and changes nothing
        assert!(matches!(
            h.nm.remove_network("t"),
            Err(NetworkError::ActiveEndpoints { .. })
        ));
        h.nm.disconnect_all(&cid(1)).expect("c1 off");
        h.nm.disconnect("t", &cid(2)).expect("c2 off");
        assert_eq!(c1.links(), vec!["lo".to_string()]);
        assert_eq!(c2.links(), vec!["lo".to_string()]);
        let fw = h.nm.firewall_dump().expect("nft").expect("table");
        assert!(!fw.contains("\"dnat\": {"), "{fw}");
        h.nm.remove_network("t").expect("rm t");
        assert!(matches!(
            h.nm.remove_network("bridge"),
            Err(NetworkError::Predefined(_))
        ));
        let mut links = host_links();
        links.remove("barge0");
        assert_eq!(links, baseline, "only the default bridge is left");
        assert_eq!(h.nm.list().len(), 1);
        h.nm.destroy_all().expect("destroy");
        assert_eq!(host_links(), baseline);
        assert_eq!(h.nm.firewall_dump().expect("nft"), None, "table removed");
        let addrs = Netlink::new().expect("nl").addrs(None).expect("addrs");
        assert!(
            addrs
                .iter()
                .all(|(_, ip, _)| ip.is_loopback() || ip.octets()[..2] == [10, 99]),
            "{addrs:?}"
        );
        assert!(before.is_subset(&baseline));
    })
}

#[test]
fn repair_after_simulated_crash() {
    in_test_netns(|| {
        let h = host();
        let state = h._dir.path().join("net");
        h.nm.ensure_default_network().expect("default");
        let u =
            h.nm.create_network(NetworkSpec {
                name: "u".into(),
                ..Default::default()
            })
            .expect("net");
        let (c1, c2) = (Cns::new(), Cns::new());
        let mut r = req(&c1, 1, "survivor");
        r.ports = parse_port_spec("8080:80").expect("spec");
        h.nm.connect("u", r).expect("c1");
        h.nm.connect("u", req(&c2, 2, "victim")).expect("c2");
        let cfg = NetworkConfig {
            host_resolv_conf: h.resolv.clone(),
            ..Default::default()
        };
        // crash: the daemon goes away without cleaning up (its DNS threads die with it)...
        let Host { nm, _dir, .. } = h;
        drop(nm);
        // ... a container dies meanwhile, someone flushes the firewall, the bridge of `u` is
        // lost, and a link of ours is left without a record
        drop(c2);
        crate::nft::delete_table("barge").expect("flush");
        let mut nl = Netlink::new().expect("nl");
        assert!(nl.del_link_by_name(&u.bridge).expect("del"));
        nl.add_bridge("br-0123456789ab", [2, 1, 0, 0, 0, 1], "barge:0123456789ab")
            .expect("orphan");
        nl.add_bridge("br-notours0000", [2, 1, 0, 0, 0, 2], "someone else")
            .expect("foreign");
        // wait for the kernel to reap the dead namespace's veth
        let t = Instant::now();
        while host_links().len() > 6 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let nm = NetworkManager::open(&state, cfg).expect("reopen");
        let rep = nm.repair().expect("repair");
        assert_eq!(rep.removed_endpoints, vec![(u.id.clone(), cid(2))]);
        assert_eq!(rep.removed_links, vec!["br-0123456789ab".to_string()]);
        assert_eq!(rep.recreated_bridges, vec![u.bridge.clone()]);
        assert!(
            host_links().contains("br-notours0000"),
            "foreign links are left alone"
        );
        // the survivor works again: port, DNS
        serve(listen(&c1, 80), "c1");
        assert!(talk("127.0.0.1:8080").starts_with("c1 hi"));
        assert!(talk("10.99.0.1:8080").starts_with("c1 hi"));
        let c3 = Cns::new();
        let e3 = nm.connect("u", req(&c3, 3, "new")).expect("c3");
        assert_eq!(
            e3.ip,
            Ipv4Addr::new(172, 18, 0, 3),
            "the dead container's address is free again"
        );
        assert_eq!(
            query(&c3, u.gateway, "survivor").map(|r| r.1),
            Some(vec![Ipv4Addr::new(172, 18, 0, 2)])
        );
        assert_eq!(
            query(&c3, u.gateway, "victim").map(|r| r.1),
            Some(vec![]),
            "victim gone"
        );
        // the port reservation came back too
        assert!(TcpListener::bind("0.0.0.0:8080").is_err());
        // a second repair finds nothing to do
        let again = nm.repair().expect("repair 2");
        assert!(again.removed_links.is_empty() && again.removed_endpoints.is_empty());
        nm.destroy_all().expect("destroy");
        drop(_dir);
    })
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    in_test_netns(|| {
        let h = host();
        h.nm.ensure_default_network().expect("default");
        let n =
            h.nm.create_network(NetworkSpec {
                name: "n".into(),
                subnet: Some("10.40.0.0/24".parse().expect("net")),
                ip_range: Some("10.40.0.128/25".parse().expect("net")),
                ..Default::default()
            })
            .expect("net");
        let links = host_links();
        let spec = |name: &str, subnet: &str| NetworkSpec {
            name: name.into(),
            subnet: Some(subnet.parse().expect("net")),
            ..Default::default()
        };
        let e =
            h.nm.create_network(spec("o", "10.40.0.0/16"))
                .expect_err("overlap");
        assert!(
            matches!(e, NetworkError::Overlap { .. })
                && e.to_string().contains("overlaps with network n"),
            "{e}"
        );
        assert!(matches!(
            h.nm.create_network(spec("o", "172.17.5.0/24")),
            Err(NetworkError::Overlap { .. })
        ));
        assert!(matches!(
            h.nm.create_network(spec("n", "10.41.0.0/24")),
            Err(NetworkError::NameInUse(_))
        ));
        assert!(matches!(
            h.nm.create_network(spec("bad/name", "10.41.0.0/24")),
            Err(NetworkError::InvalidName(_))
        ));
        assert!(matches!(
            h.nm.create_network(spec("o", "10.41.0.1/24")),
            Err(NetworkError::InvalidSubnet { .. })
        ));
        let mut s = spec("o", "10.41.0.0/24");
        s.gateway = Some(Ipv4Addr::new(10, 42, 0, 1));
        assert!(matches!(
            h.nm.create_network(s),
            Err(NetworkError::OutsideSubnet { .. })
        ));
        let mut s = spec("o", "10.41.0.0/24");
        s.ip_range = Some("10.42.0.0/25".parse().expect("net"));
        assert!(matches!(
            h.nm.create_network(s),
            Err(NetworkError::InvalidSubnet { .. })
        ));
        // auxiliary addresses: inside their subnet, of their family, IPv6 ones need IPv6
        for (aux, v6) in [
            ("10.42.0.1", false),
            ("fd00::1", false),
            ("10.41.0.9", true),
        ] {
            let mut s = spec("o", "10.41.0.0/24");
            if v6 {
                s.aux_addresses6 = [("r".to_string(), aux.to_string())].into();
            } else {
                s.aux_addresses = [("r".to_string(), aux.to_string())].into();
            }
            let e = h.nm.create_network(s).expect_err(aux);
            assert!(
                matches!(e, NetworkError::InvalidAuxAddress { .. })
                    && e.to_string().contains(&format!("r={aux}")),
                "{e}"
            );
        }
        assert_eq!(host_links(), links);
        assert_eq!(h.nm.list().len(), 2);
        // addresses
        let c1 = Cns::new();
        let e1 = h.nm.connect("n", req(&c1, 1, "one")).expect("c1");
        assert_eq!(e1.ip, Ipv4Addr::new(10, 40, 0, 128), "from the ip-range");
        let c2 = Cns::new();
        let mut r = req(&c2, 2, "two");
        r.ipv4 = Some(e1.ip);
        assert!(matches!(
            h.nm.connect("n", r.clone()),
            Err(NetworkError::AddressInUse { .. })
        ));
        r.ipv4 = Some(Ipv4Addr::new(10, 40, 1, 5));
        assert!(matches!(
            h.nm.connect("n", r.clone()),
            Err(NetworkError::OutsideSubnet { .. })
        ));
        r.ipv4 = Some(n.gateway);
        assert!(matches!(
            h.nm.connect("n", r.clone()),
            Err(NetworkError::AddressInUse { .. })
        ));
        assert!(matches!(
            h.nm.connect("nope", r.clone()),
            Err(NetworkError::NotFound(_))
        ));
        r.ipv4 = None;
        r.netns_path = "/nonexistent/ns".into();
        assert!(matches!(
            h.nm.connect("n", r.clone()),
            Err(NetworkError::Netns { .. })
        ));
        assert!(matches!(
            h.nm.connect("n", req(&c1, 1, "one")),
            Err(NetworkError::AlreadyConnected { .. })
        ));
        assert!(matches!(
            h.nm.disconnect("n", &cid(2)),
            Err(NetworkError::NotConnected { .. })
        ));
        assert_eq!(c2.links(), vec!["lo".to_string()]);
        // static address that is free works
        r.netns_path = c2.path();
        r.ipv4 = Some(Ipv4Addr::new(10, 40, 0, 9));
        assert_eq!(
            h.nm.connect("n", r).expect("static").ip,
            Ipv4Addr::new(10, 40, 0, 9)
        );
        let e = h.nm.remove_network("n").expect_err("in use");
        assert!(
            e.to_string().contains("one") && e.to_string().contains("two"),
            "{e}"
        );
        assert!(matches!(
            h.nm.remove_network("zzz"),
            Err(NetworkError::NotFound(_))
        ));
        let (info, eps) = h.nm.inspect("n").expect("inspect");
        assert_eq!((info.name.as_str(), eps.len()), ("n", 2));
        assert_eq!(
            h.nm.inspect(&info.id[..12]).expect("by prefix").0.id,
            info.id
        );
        h.nm.disconnect_all(&cid(1)).expect("d1");
        h.nm.disconnect_all(&cid(2)).expect("d2");
        assert_eq!(h.nm.prune(|_| true).expect("prune"), vec!["n".to_string()]);
        h.nm.destroy_all().expect("destroy");
    })
}

#[test]
fn connect_time() {
    in_test_netns(|| {
        let h = host();
        h.nm.ensure_default_network().expect("default");
        let mut plain = Vec::new();
        let mut ported = Vec::new();
        let nss: Vec<Cns> = (0..10).map(|_| Cns::new()).collect();
        for (i, c) in nss.iter().enumerate() {
            let mut r = req(c, i as u8 + 1, "x");
            if i % 2 == 1 {
                r.ports = parse_port_spec(&format!("{}:80", 20000 + i)).expect("spec");
            }
            let t = Instant::now();
            let e = h.nm.connect("bridge", r).expect("connect");
            let d = t.elapsed();
            assert!(c.links().contains(&e.ifname));
            if i % 2 == 1 {
                ported.push(d)
            } else {
                plain.push(d)
            }
        }
        plain.sort();
        ported.sort();
        eprintln!(
            "connect time: no ports median {:?} (max {:?}); one port median {:?} (max {:?})",
            plain[plain.len() / 2],
            plain[plain.len() - 1],
            ported[ported.len() / 2],
            ported[ported.len() - 1]
        );
        h.nm.destroy_all().expect("destroy");
    })
}

/// An "outside" host: a namespace linked to the test's host namespace by a veth pair
/// (host `up1` 10.98.0.1/24, outside `eth0` 10.98.0.2/24) with no route to container subnets.
fn outside() -> Cns {
    let o = Cns::new();
    let mut nl = Netlink::new().expect("nl");
    let i = nl
        .add_veth(
            "up1",
            None,
            "test outside",
            "eth0",
            &o.file,
            [2, 0x98, 0, 0, 0, 2],
        )
        .expect("veth");
    nl.add_addr(i, Ipv4Addr::new(10, 98, 0, 1), 24)
        .expect("addr");
    nl.set_up(i, None).expect("up");
    let mut onl = Netlink::in_netns(&o.file).expect("nl");
    let oi = onl.link_index("eth0").expect("eth0").expect("eth0");
    onl.add_addr(oi, Ipv4Addr::new(10, 98, 0, 2), 24)
        .expect("addr");
    onl.set_up(oi, None).expect("up");
    let lo = onl.link_index("lo").expect("lo").expect("lo");
    onl.set_up(lo, None).expect("lo up");
    // a route back to everything, so only the firewall and NAT decide what gets through
    onl.add_default_route(Ipv4Addr::new(10, 98, 0, 1).into(), oi)
        .expect("route");
    o
}

#[test]
fn outbound_masquerade_and_ports_from_another_host() {
    in_test_netns(|| {
        let h = host();
        h.nm.ensure_default_network().expect("default");
        let o = outside();
        let c1 = Cns::new();
        let mut r = req(&c1, 1, "web");
        r.ports = parse_port_spec("8080:80").expect("spec");
        r.ports
            .extend(parse_port_spec("5300:53/udp").expect("spec"));
        h.nm.connect("bridge", r).expect("c1");
        // outbound: the outside sees the host's address, not the container's
        serve(listen(&o, 7100), "outside");
        assert_eq!(
            c1.run(|| talk("10.98.0.2:7100")),
            "outside hi from 10.98.0.1"
        );
        // inbound from another host through the host's address: TCP and UDP
        serve(listen(&c1, 80), "c1");
        assert_eq!(o.run(|| talk("10.98.0.1:8080")), "c1 hi from 10.98.0.2");
        let u = c1.run(|| UdpSocket::bind("0.0.0.0:53").expect("udp"));
        std::thread::spawn(move || {
            let mut b = [0u8; 64];
            while let Ok((n, p)) = u.recv_from(&mut b) {
                let _ = u.send_to(&b[..n], p);
            }
        });
        let echoed = o.run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").expect("udp");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let mut b = [0u8; 64];
            for _ in 0..3 {
                s.send_to(b"udp?", "10.98.0.1:5300").expect("send");
                if let Ok((n, from)) = s.recv_from(&mut b) {
                    return Some((b[..n].to_vec(), from));
                }
            }
            None
        });
        let (data, from) = echoed.expect("udp echo through the published port");
        assert_eq!(
            (data.as_slice(), from.to_string().as_str()),
            (&b"udp?"[..], "10.98.0.1:5300")
        );
        // an internal network has no way out
        h.nm.create_network(NetworkSpec {
            name: "i".into(),
            internal: true,
            ..Default::default()
        })
        .expect("internal");
        let c2 = Cns::new();
        let e2 = h.nm.connect("i", req(&c2, 2, "locked")).expect("c2");
        assert!(c2
            .run(|| try_talk("10.98.0.2:7100".parse().expect("a")))
            .is_err());
        // even a container that adds its own default route is stopped by the firewall
        let gw = h.nm.inspect("i").expect("inspect").0.gateway;
        let mut cnl = Netlink::in_netns(&c2.file).expect("nl");
        let idx = cnl.link_index(&e2.ifname).expect("lookup").expect("eth0");
        cnl.add_default_route(gw.into(), idx).expect("route");
        assert!(cnl.has_default_route().expect("routes"));
        assert!(c2
            .run(|| try_talk("10.98.0.2:7100".parse().expect("a")))
            .is_err());
        assert_eq!(
            c1.run(|| talk("10.98.0.2:7100")),
            "outside hi from 10.98.0.1"
        );
        h.nm.destroy_all().expect("destroy");
        assert!(try_talk("10.98.0.1:8080".parse().expect("a")).is_err());
    })
}

/// An Ethernet/IPv4/UDP frame (UDP checksum 0 = none).
fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dport: u16,
    data: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + data.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(data);
    f
}

/// Sends a raw frame out of interface `ifindex` of the calling thread's namespace.
fn send_raw(ifindex: u32, frame: &[u8]) {
    // SAFETY: plain socket(2) call; the result is checked and owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: buf/len describe `frame`; the address points to a live sockaddr_ll of the
    // size given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(
        n,
        frame.len() as isize,
        "sendto: {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn container_cannot_reach_host_loopback_services() {
    in_test_netns(|| {
        let h = host();
        let def = h.nm.ensure_default_network().expect("default");
        let c1 = Cns::new();
        let mut r = req(&c1, 1, "attacker");
        // a published port on 127.0.0.1 turns route_localnet on for the bridge
        r.ports = parse_port_spec("127.0.0.1:8080:80").expect("spec");
        let e = h.nm.connect("bridge", r).expect("connect");
        let secret = UdpSocket::bind("127.0.0.1:9999").expect("bind lo");
        let open = UdpSocket::bind((def.gateway, 9998)).expect("bind gw");
        for s in [&secret, &open] {
            s.set_read_timeout(Some(Duration::from_millis(800)))
                .expect("timeout");
        }
        let bridge_mac = mac_from_ip(def.gateway);
        let my_mac = mac_from_ip(e.ip);
        let idx = Netlink::in_netns(&c1.file)
            .expect("nl")
            .link_index("eth0")
            .expect("lookup")
            .expect("eth0");
        let mut b = [0u8; 16];
        // control: the same kind of frame to the gateway address arrives
        c1.run(|| {
            send_raw(
                idx,
                &udp_frame(bridge_mac, my_mac, e.ip, def.gateway, 9998, b"ok"),
            )
        });
        let (n, _) = open
            .recv_from(&mut b)
            .expect("crafted frame to the gateway arrives");
        assert_eq!(&b[..n], b"ok");
        // the attack: a frame to 127.0.0.1 through the bridge is dropped
        c1.run(|| {
            send_raw(
                idx,
                &udp_frame(bridge_mac, my_mac, e.ip, Ipv4Addr::LOCALHOST, 9999, b"leak"),
            )
        });
        assert!(
            secret.recv_from(&mut b).is_err(),
            "container reached 127.0.0.1 on the host"
        );
        let fw = h.nm.firewall_dump().expect("nft").expect("table");
        assert!(fw.contains("\"guard\""), "{fw}");
    })
}

#[test]
fn throughput_through_published_port() {
    in_test_netns(|| {
        let h = host();
        h.nm.ensure_default_network().expect("default");
        let c1 = Cns::new();
        let mut r = req(&c1, 1, "sink");
        r.ports = parse_port_spec("5001:5001").expect("spec");
        h.nm.connect("bridge", r).expect("connect");
        let l = listen(&c1, 5001);
        let sink = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut total = 0u64;
            let mut b = vec![0u8; 1 << 16];
            loop {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n as u64,
                }
            }
        });
        const TOTAL: usize = 256 << 20;
        let mut s = TcpStream::connect("127.0.0.1:5001").expect("connect through the port");
        let chunk = vec![7u8; 1 << 16];
        let t = Instant::now();
        for _ in 0..TOTAL / chunk.len() {
            s.write_all(&chunk).expect("write");
        }
        drop(s);
        let got = sink.join().expect("sink");
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(got, TOTAL as u64, "every byte arrived");
        eprintln!(
            "published port 127.0.0.1:5001 -> container: {:.0} MB/s",
            TOTAL as f64 / secs / 1e6
        );
    })
}

#[test]
fn named_netns_file_for_a_container() {
    // a private mount namespace too, so the bind mounts never show on the host
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET).expect("unshare");
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .expect("make / private");
            let mut nl = Netlink::new().expect("netlink");
            let lo = nl.link_index("lo").expect("lo").expect("lo");
            nl.set_up(lo, None).expect("lo up");
            let h = host();
            h.nm.ensure_default_network().expect("default");
            let p = h._dir.path().join("sandbox-1");
            create_netns(&p).expect("create netns");
            assert!(is_netns(&p));
            assert!(!is_netns(h._dir.path()));
            assert!(matches!(create_netns(&p), Err(NetworkError::Netns { .. })));
            let mut r = req(&Cns::new(), 1, "sandboxed");
            r.netns_path = p.clone();
            let e = h.nm.connect("bridge", r).expect("connect by path");
            let c = Cns {
                file: File::open(&p).expect("open ns"),
            };
            assert!(c.links().contains(&e.ifname));
            serve(TcpListener::bind("10.99.0.1:7004").expect("listen"), "host");
            assert_eq!(c.run(|| talk("10.99.0.1:7004")), "host hi from 172.17.0.2");
            drop(c);
            h.nm.disconnect_all(&cid(1)).expect("disconnect");
            remove_netns(&p).expect("remove");
            assert!(!p.exists());
            remove_netns(&p).expect("removing twice is fine");
        });
        if let Err(p) = h.join() {
            std::panic::resume_unwind(p)
        }
    })
}

#[test]
fn release_deletes_links_in_the_background_and_quarantines_their_addresses() {
    in_test_netns(|| {
        let h = host();
        h.nm.ensure_default_network().expect("default");
        h.nm.create_network(NetworkSpec {
            name: "u".into(),
            subnet: Some("10.20.0.0/24".parse().expect("net")),
            ..Default::default()
        })
        .expect("net u");
        let nss: Vec<Cns> = (0..6).map(|_| Cns::new()).collect();
        let mut old = Vec::new();
        for (i, c) in nss.iter().enumerate().take(5) {
            let mut r = req(c, i as u8 + 1, "x");
            if i == 0 {
                r.ports = parse_port_spec("8086:80").expect("spec");
            }
            old.push(h.nm.connect("bridge", r).expect("connect"));
        }
        let mut r = req(&nss[0], 1, "x");
        r.ipv4 = Some(Ipv4Addr::new(10, 20, 0, 9));
        let static_ep = h.nm.connect("u", r).expect("connect u");
        for i in 1..=5 {
            h.nm.release(&cid(i)).expect("release");
        }
        // a new container never gets an address whose link is still there
        let e6 =
            h.nm.connect("bridge", req(&nss[5], 6, "six"))
                .expect("connect 6");
        let links = host_links();
        for o in &old {
            assert!(
                !(links.contains(&o.host_veth) && o.ip == e6.ip),
                "{} handed out while {} still exists",
                e6.ip,
                o.host_veth
            );
        }
        // records, port rules, host ports and DNS names go at once
        assert!((1..=5).all(|i| h.nm.endpoints_of(&cid(i)).is_empty()));
        let recs: Vec<String> = std::fs::read_dir(h._dir.path().join("net/endpoints"))
            .expect("endpoints dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert!(
            recs.iter().all(|r| r.contains(&cid(6))),
            "endpoint records left: {recs:?}"
        );
        let t = h.nm.firewall_dump().expect("nft").unwrap_or_default();
        assert!(!t.contains("8086"), "port rule left: {t}");
        drop(TcpListener::bind("0.0.0.0:8086").expect("host port 8086 is free again"));
        // a static address just released is waited for, not refused
        let mut r = req(&nss[1], 7, "seven");
        r.ipv4 = Some(static_ep.ip);
        let e7 =
            h.nm.connect("u", r)
                .expect("static address of an exited container");
        assert_eq!(e7.ip, static_ep.ip);
        assert!(!host_links().contains(&static_ep.host_veth));
        // once the links are gone, the addresses are free again
        h.nm.settle();
        let links = host_links();
        assert!(
            old.iter().all(|o| !links.contains(&o.host_veth)),
            "links left: {links:?}"
        );
        h.nm.release(&cid(6)).expect("release 6");
        h.nm.settle();
        let e8 =
            h.nm.connect("bridge", req(&nss[2], 8, "eight"))
                .expect("connect 8");
        assert_eq!(e8.ip, Ipv4Addr::new(172, 17, 0, 2), "lowest address reused");
        h.nm.destroy_all().expect("destroy");
        assert!(!host_links().iter().any(|l| l.starts_with("bv")));
    })
}

/// Whether barge's `ip6` nftables table exists in the calling thread's namespace.
fn ip6_table_exists() -> bool {
    nftables::helper::get_current_ruleset_raw(
        nftables::helper::DEFAULT_NFT,
        ["list", "table", "ip6", "barge"],
    )
    .is_ok()
}

#[test]
fn ipv6_endpoints_talk_resolve_publish_and_go_away() {
    in_test_netns(|| {
        let h = host();
        // the host's own IPv6 address (the uplink stand-in's)
        let mut nl = Netlink::new().expect("netlink");
        let up = nl.link_index("up0").expect("lookup").expect("up0");
        nl.add_addr6(up, "fd99::1".parse().expect("ip"), 64)
            .expect("host v6");
        let net =
            h.nm.create_network(NetworkSpec {
                name: "v6".into(),
                subnet: Some("10.60.0.0/24".parse().expect("net")),
                ipv6: true,
                subnet6: Some("fd00:60::/64".parse().expect("net")),
                ..Default::default()
            })
            .expect("create");
        assert_eq!(net.gateway6, Some("fd00:60::1".parse().expect("ip")));
        assert!(ip6_table_exists());
        let (c1, c2) = (Cns::new(), Cns::new());
        let mut r = req(&c1, 1, "one");
        r.ipv6 = Some("fd00:60::99".parse().expect("ip"));
        r.mac = Some([0x02, 0, 0, 0, 0x60, 0x99]);
        r.ports = parse_port_spec("8086:80").expect("spec");
        let e1 = h.nm.connect("v6", r).expect("connect 1");
        assert_eq!(e1.ip6, Some("fd00:60::99".parse().expect("ip")));
        assert_eq!(e1.mac, "02:00:00:00:60:99");
        let e2 = h.nm.connect("v6", req(&c2, 2, "two")).expect("connect 2");
        assert_eq!(
            (e2.ip6, e2.prefix_len6, e2.gateway6),
            (
                Some("fd00:60::2".parse().expect("ip")),
                64,
                Some("fd00:60::1".parse().expect("ip"))
            )
        );
        let l = c1.run(|| TcpListener::bind("[::]:80").expect("bind v6"));
        serve(l, "v6");
        // container to container over IPv6, without NAT
        let o = c2.run(|| talk("[fd00:60::99]:80"));
        assert!(o.starts_with("v6 hi from fd00:60::2"), "{o}");
        // the published port at the host's IPv6 address, and at its IPv4 one
        assert!(talk("[fd99::1]:8086").starts_with("v6 hi"));
        assert!(talk("10.99.0.1:8086").starts_with("v6 hi"));
        // AAAA from the network's DNS server (asked over IPv4, as resolv.conf says)
        let aaaa = c2.run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").expect("udp");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            s.send_to(
                &dns::build_query(7, "one", dns::TYPE_AAAA),
                ("10.60.0.1", 53),
            )
            .expect("send");
            let mut buf = [0u8; 1500];
            let (n, _) = s.recv_from(&mut buf).expect("answer");
            dns::parse_response_all(&buf[..n]).expect("parse")
        });
        assert_eq!(aaaa, (0, vec!["fd00:60::99".parse().expect("ip")]));
        // a host port held by an IPv6-only host service is in use for an IPv6 endpoint
        let held = {
            let s = nix::sys::socket::socket(
                nix::sys::socket::AddressFamily::Inet6,
                nix::sys::socket::SockType::Stream,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                None,
            )
            .expect("socket");
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Ipv6V6Only, &true)
                .expect("v6only");
            let a = std::net::SocketAddrV6::new(std::net::Ipv6Addr::UNSPECIFIED, 8087, 0, 0);
            nix::sys::socket::bind(s.as_raw_fd(), &nix::sys::socket::SockaddrIn6::from(a))
                .expect("bind [::]:8087");
            s
        };
        let before = host_links();
        let mut r = req(&c2, 3, "x");
        r.ports = parse_port_spec("8087:80").expect("spec");
        let err = h.nm.connect("v6", r).expect_err("[::]:8087 is taken");
        assert!(
            matches!(err, NetworkError::PortInUse { .. }) && err.to_string().contains("[::]:8087"),
            "{err}"
        );
        assert_eq!(host_links(), before);
        drop(held);
        // a chosen MAC another endpoint or the bridge has
        for taken in [[0x02, 0, 0, 0, 0x60, 0x99], [0x02, 0x42, 10, 60, 0, 1]] {
            let mut r = req(&c2, 3, "x");
            r.mac = Some(taken);
            assert!(matches!(
                h.nm.connect("v6", r),
                Err(NetworkError::MacInUse { .. })
            ));
        }
        assert_eq!(host_links(), before);
        // bad input
        let mut r = req(&c2, 3, "x");
        r.ipv6 = Some("fd00:61::5".parse().expect("ip"));
        assert!(matches!(
            h.nm.connect("v6", r),
            Err(NetworkError::OutsideSubnet6 { .. })
        ));
        let mut r = req(&c2, 3, "x");
        r.ipv6 = Some("fd00:60::99".parse().expect("ip"));
        assert!(matches!(
            h.nm.connect("v6", r),
            Err(NetworkError::AddressInUse { .. })
        ));
        h.nm.create_network(NetworkSpec {
            name: "v4only".into(),
            ..Default::default()
        })
        .expect("v4 net");
        let mut r = req(&c2, 3, "x");
        r.ipv6 = Some("fd00:60::5".parse().expect("ip"));
        assert!(matches!(
            h.nm.connect("v4only", r),
            Err(NetworkError::NoIpv6(_))
        ));
        let before = host_links();
        assert!(matches!(
            h.nm.create_network(NetworkSpec {
                name: "over".into(),
                ipv6: true,
                subnet6: Some("fd00:60::8000/113".parse().expect("net")),
                ..Default::default()
            }),
            Err(NetworkError::Overlap6 { .. })
        ));
        assert!(matches!(
            h.nm.create_network(NetworkSpec {
                name: "off".into(),
                subnet6: Some("fd00:62::/64".parse().expect("net")),
                ..Default::default()
            }),
            Err(NetworkError::InvalidSubnet { .. })
        ));
        assert_eq!(host_links(), before, "a refused network left a link");
        // released endpoints: their IPv6 addresses stay in quarantine while their links
        // exist (the namespaces are still held here); a static one asked again waits for it
        h.nm.release(&cid(2)).expect("release 2");
        let c3 = Cns::new();
        let e3 = h.nm.connect("v6", req(&c3, 3, "three")).expect("connect 3");
        assert_eq!(e3.ip6, Some("fd00:60::3".parse().expect("ip")));
        h.nm.release(&cid(1)).expect("release 1");
        let c4 = Cns::new();
        let mut r = req(&c4, 4, "four");
        r.ipv6 = Some("fd00:60::99".parse().expect("ip"));
        let e4 =
            h.nm.connect("v6", r)
                .expect("a released static address again");
        assert_eq!(e4.ip6, Some("fd00:60::99".parse().expect("ip")));
        // teardown: no ip6 table once no network has IPv6
        for n in [3, 4] {
            h.nm.disconnect("v6", &cid(n)).expect("disconnect");
        }
        h.nm.remove_network("v6").expect("rm");
        assert!(!ip6_table_exists(), "the ip6 table outlived its networks");
        h.nm.remove_network("v4only").expect("rm");
    })
}
