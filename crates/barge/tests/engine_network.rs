//! Networking end to end: a `barge daemon` per test inside a network namespace the test
//! creates and deletes (see engine/mod.rs); traffic stays in that namespace (loopback, the
//! bridges, the containers). The docker CLI, the raw API and docker-py drive it.

mod engine;

use engine::{eventually, skip, text, Daemon};
use serde_json::Value;

const HTTPD: &str =
    "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www";

/// Link names in the daemon's namespace.
fn links(d: &Daemon) -> Vec<String> {
    d.host("ip -o link show")
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .collect()
}

/// Addresses (CIDR) in the daemon's namespace.
fn addrs(d: &Daemon) -> Vec<String> {
    d.host("ip -o -4 addr show")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

fn nft(d: &Daemon) -> String {
    d.host("nft list table ip barge 2>/dev/null")
}

/// Only the default bridge and loopback are left; no port rules or endpoints. (Exited
/// containers' links are deleted in the background: they get a moment.)
fn assert_clean(d: &Daemon) {
    let only_ours = || links(d).iter().all(|n| n == "lo" || n == "barge0");
    assert!(eventually(10, only_ours), "links left: {:?}", links(d));
    let a = addrs(d);
    assert!(
        a.iter()
            .all(|x| x.starts_with("127.") || x == "172.17.0.1/16"),
        "addresses left: {a:?}"
    );
    let t = nft(d);
    assert!(!t.contains("dport"), "port rules left:\n{t}");
    assert!(!t.contains("br-"), "user network rules left:\n{t}");
    let eps = std::fs::read_dir(d.dir.path().join("data/network/endpoints"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(eps, 0, "endpoint records left");
}

#[test]
fn published_ports_on_the_default_bridge() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "web1",
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1::80",
        "--expose",
        "81",
        "-P",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let c = d.inspect("web");
    let ns = &c["NetworkSettings"];
    let ip = ns["IPAddress"].as_str().unwrap_or_default().to_string();
    assert!(ip.starts_with("172.17."), "IPAddress {ip:?}: {ns}");
    assert_eq!(ns["Gateway"], "172.17.0.1");
    assert_eq!(ns["IPPrefixLen"], 16);
    let br = &ns["Networks"]["bridge"];
    assert_eq!(br["IPAddress"], ip.as_str());
    assert!(br["MacAddress"]
        .as_str()
        .is_some_and(|m| m.starts_with("02:42:")));
    assert_eq!(br["EndpointID"].as_str().map(str::len), Some(64));
    assert_eq!(br["NetworkID"].as_str().map(str::len), Some(64));
    let p80 = ns["Ports"]["80/tcp"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(p80.len(), 2, "{}", ns["Ports"]);
    let local = p80
        .iter()
        .find(|p| p["HostIp"] == "127.0.0.1")
        .and_then(|p| p["HostPort"].as_str())
        .expect("random host port on 127.0.0.1")
        .to_string();
    let p81 = ns["Ports"]["81/tcp"][0]["HostPort"]
        .as_str()
        .expect("-P published 81")
        .to_string();
    assert_eq!(
        c["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
        "8080"
    );
    // Reached from the namespace's host side: loopback, the bridge address, the container.
    assert!(eventually(10, || d
        .wget("http://127.0.0.1:8080/")
        .contains("hello-web1")));
    assert!(d.wget("http://172.17.0.1:8080/").contains("hello-web1"));
    assert!(d
        .wget(&format!("http://127.0.0.1:{local}/"))
        .contains("hello-web1"));
    assert!(d.wget(&format!("http://{ip}:80/")).contains("hello-web1"));
    // Hairpin: another container through the host's address.
    let o = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "timeout",
        "3",
        "wget",
        "-qO-",
        "http://172.17.0.1:8080/",
    ]);
    assert!(o.contains("hello-web1"), "{o}");
    // The port listing, ps and the container's own files.
    let port = d.ok(&["port", "web", "80"]);
    assert!(
        port.contains("0.0.0.0:8080") && port.contains(&format!("127.0.0.1:{local}")),
        "{port}"
    );
    assert!(d.ok(&["port", "web", "81"]).ends_with(&format!(":{p81}")));
    let ps = d.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    let hosts = d.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with(&ip) && l.contains("web1")),
        "{hosts}"
    );
    assert_eq!(d.ok(&["exec", "web", "hostname"]), "web1");
    let resolv = d.ok(&["exec", "web", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains("nameserver") && !resolv.contains("nameserver 127."),
        "{resolv}"
    );
    // inspect's paths are the files the container sees
    let c = d.inspect("web");
    for (field, inside) in [
        ("HostsPath", "/etc/hosts"),
        ("HostnamePath", "/etc/hostname"),
        ("ResolvConfPath", "/etc/resolv.conf"),
    ] {
        let path = c[field].as_str().unwrap_or_default();
        let on_host =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{field} {path}: {e}"));
        assert_eq!(
            on_host.trim(),
            d.ok(&["exec", "web", "cat", inside]),
            "{field}"
        );
    }
    let route = d.ok(&["exec", "web", "ip", "route"]);
    assert!(route.contains("default via 172.17.0.1"), "{route}");
    // A restart reconnects (same ports published again).
    d.ok(&["restart", "-t", "1", "web"]);
    assert!(eventually(10, || d
        .wget("http://127.0.0.1:8080/")
        .contains("hello-web1")));
    // Stop removes the endpoint, and rm everything.
    d.ok(&["stop", "-t", "1", "web"]);
    assert!(
        eventually(10, || !links(&d).iter().any(|l| l.starts_with("bv"))),
        "{:?}",
        links(&d)
    );
    let ns = &d.inspect("web")["NetworkSettings"];
    assert_eq!(ns["IPAddress"], "");
    assert!(ns["Networks"]["bridge"].is_object());
    assert!(!d.wget("http://127.0.0.1:8080/").contains("hello"));
    d.ok(&["start", "web"]);
    d.ok(&["rm", "-f", "web"]);
    // --rm removes its endpoint too.
    d.ok(&["run", "--rm", "-p", "8090:80", "busybox", "true"]);
    assert_clean(&d);
}

#[test]
fn user_networks_names_aliases_isolation() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let a = d.ok(&[
        "network",
        "create",
        "--subnet",
        "10.55.0.0/24",
        "--gateway",
        "10.55.0.1",
        "--label",
        "team=a",
        "neta",
    ]);
    assert_eq!(a.len(), 64);
    d.ok(&["network", "create", "netb"]);
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    for n in [
        "bridge bridge",
        "host host",
        "none null",
        "neta bridge",
        "netb bridge",
    ] {
        assert!(ls.lines().any(|l| l == n), "{n} missing from {ls}");
    }
    let f = d.ok(&["network", "ls", "-q", "--filter", "label=team=a"]);
    assert_eq!(f, a[..12]);
    let ni: Value = serde_json::from_str(&d.ok(&["network", "inspect", "neta"])).expect("json");
    assert_eq!(ni[0]["IPAM"]["Config"][0]["Subnet"], "10.55.0.0/24");
    assert_eq!(ni[0]["Labels"]["team"], "a");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "neta",
        "--network-alias",
        "api",
        "--ip",
        "10.55.0.50",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    let c = d.inspect("srv");
    let n = &c["NetworkSettings"]["Networks"]["neta"];
    assert_eq!(n["IPAddress"], "10.55.0.50");
    assert_eq!(n["Gateway"], "10.55.0.1");
    assert_eq!(n["IPAMConfig"]["IPv4Address"], "10.55.0.50");
    assert!(n["Aliases"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "api")));
    let ni: Value = serde_json::from_str(&d.ok(&["network", "inspect", "neta"])).expect("json");
    assert_eq!(
        ni[0]["Containers"][c["Id"].as_str().unwrap_or_default()]["IPv4Address"],
        "10.55.0.50/24"
    );
    // By name and alias on the same network.
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        "neta",
        "busybox",
        "sh",
        "-c",
        "wget -qO- http://srv/ && wget -qO- http://api/ && cat /etc/resolv.conf",
    ]);
    assert_eq!(o.matches("hello-").count(), 2, "{o}");
    assert!(o.contains("nameserver 10.55.0.1"), "{o}");
    // Not from another network: no name, no route to the address (the probe's SYNs are
    // dropped: after 3 s it has printed nothing and still waits).
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "netb",
        "busybox",
        "nslookup",
        "srv",
    ]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!text.contains("10.55.0.50"), "netb resolved srv: {text}");
    let probe = d.ok(&[
        "run",
        "-d",
        "--network",
        "netb",
        "busybox",
        "wget",
        "-qO-",
        "http://10.55.0.50/",
    ]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let logs = d.docker(&["logs", &probe]);
    assert!(
        !String::from_utf8_lossy(&logs.stdout).contains("hello-"),
        "netb reached neta"
    );
    d.ok(&["rm", "-f", &probe]);
    // network connect of a running container joins it to neta.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "netb",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&["network", "connect", "--alias", "cli2", "neta", "cli"]);
    let nets = d.inspect("cli")["NetworkSettings"]["Networks"].clone();
    assert!(
        nets["neta"]["IPAddress"]
            .as_str()
            .is_some_and(|s| s.starts_with("10.55.0.")),
        "{nets}"
    );
    assert!(nets["netb"]["IPAddress"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let o = d.ok(&[
        "exec",
        "cli",
        "timeout",
        "3",
        "wget",
        "-qO-",
        "http://10.55.0.50/",
    ]);
    assert!(o.contains("hello-"), "{o}");
    // Removing a network in use: 409, nothing removed.
    let (code, body) = d.api("DELETE", "/networks/neta", None);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("active endpoints"), "{body}");
    d.ok(&["network", "disconnect", "neta", "cli"]);
    let o = d.docker(&[
        "exec",
        "cli",
        "timeout",
        "2",
        "wget",
        "-qO-",
        "http://10.55.0.50/",
    ]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("hello-"));
    d.ok(&["rm", "-f", "srv", "cli"]);
    d.ok(&["network", "rm", "neta", "netb"]);
    let (code, _) = d.api("GET", "/networks/neta", None);
    assert_eq!(code, 404);
    assert_clean(&d);
}

#[test]
fn container_mode_none_and_host() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "app", "busybox", "sh", "-c", HTTPD]);
    let ip = d.inspect("app")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!ip.is_empty());
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        "container:app",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; wget -qO- http://127.0.0.1:80/",
    ]);
    assert!(o.contains(&format!("inet {ip}/")), "{o}");
    assert!(o.contains("hello-"), "{o}");
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    let names: Vec<&str> = o
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"], "{o}");
    let c = d.ok(&["create", "--network", "none", "busybox", "true"]);
    let nets = d.inspect(&c)["NetworkSettings"]["Networks"].clone();
    assert!(nets["none"].is_object(), "{nets}");
    // host: the daemon namespace's links are visible.
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(o.contains("barge0"), "{o}");
    // Joining a stopped container fails clearly.
    d.ok(&["stop", "-t", "1", "app"]);
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "container:app",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("non running container"));
    d.ok(&["rm", "-f", "app", &c]);
    assert_clean(&d);
}

#[test]
fn dns_servers_search_and_options() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // The default bridge: each flag replaces the lines of its kind.
    let r = d.ok(&[
        "run",
        "--rm",
        "--dns",
        "10.1.2.3",
        "--dns",
        "10.1.2.4",
        "--dns-search",
        "example.test",
        "--dns-option",
        "ndots:3",
        "--dns-option",
        "timeout:1",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(
        lines,
        [
            "nameserver 10.1.2.3",
            "nameserver 10.1.2.4",
            "search example.test",
            "options ndots:3 timeout:1"
        ],
        "{r}"
    );
    // --add-host NAME:host-gateway is the default bridge's gateway.
    let gw = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        "bridge",
    ]);
    let hosts = d.ok(&[
        "run",
        "--rm",
        "--add-host",
        "hgw:host-gateway",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(
        hosts.lines().any(|l| l == format!("{gw}\thgw")),
        "{gw}: {hosts}"
    );
    // `--dns-search .`: no search domain at all; the servers stay the network's.
    let plain = d.ok(&["run", "--rm", "busybox", "cat", "/etc/resolv.conf"]);
    let r = d.ok(&[
        "run",
        "--rm",
        "--dns-search",
        ".",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(
        !r.lines()
            .any(|l| l.starts_with("search") || l.starts_with("domain")),
        "{r}"
    );
    let servers = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with("nameserver"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(servers(&r), servers(&plain));
    // A user network: its DNS service stays first (names of the network resolve), the
    // given servers follow.
    d.ok(&["network", "create", "--subnet", "10.198.7.0/24", "dnsnet"]);
    let r = d.ok(&[
        "run",
        "--rm",
        "--network",
        "dnsnet",
        "--dns",
        "10.1.2.3",
        "--dns-option",
        "ndots:2",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    let ns = servers(&r);
    assert_eq!(ns, ["nameserver 10.198.7.1", "nameserver 10.1.2.3"], "{r}");
    assert!(r.lines().any(|l| l == "options ndots:2"), "{r}");
    // Not an address: refused at create, naming it.
    let (code, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "HostConfig": {"Dns": ["dns.example"]}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("invalid DNS server address") && body.contains("dns.example"),
        "{body}"
    );
    d.ok(&["network", "rm", "dnsnet"]);
}

#[test]
fn bad_input_is_refused_whole() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&["network", "create", "--subnet", "10.60.0.0/24", "n1"]);
    let create = |body: &str| d.api("POST", "/networks/create", Some(body));
    let (code, body) = create(r#"{"Name":"n2","IPAM":{"Config":[{"Subnet":"10.60.0.128/25"}]}}"#);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("overlaps"), "{body}");
    let (code, body) = create(r#"{"Name":"n2","IPAM":{"Config":[{"Subnet":"10.61.0.0/33"}]}}"#);
    assert_eq!(code, 400, "{body}");
    let (code, body) = create(r#"{"Name":"n1"}"#);
    assert_eq!(code, 409, "{body}");
    let (code, body) = create(
        r#"{"Name":"n3","IPAM":{"Config":[{"Subnet":"10.62.0.0/24","Gateway":"10.63.0.1"}]}}"#,
    );
    assert_eq!(code, 400, "{body}");
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls.lines().count(), 4, "half-created networks: {ls}");
    // An address outside the subnet: refused at create, no container.
    let o = d.docker(&[
        "run",
        "--network",
        "n1",
        "--ip",
        "10.70.0.5",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a usable address"));
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    // Unknown network: a bad create (400: a 404 would make the docker CLI pull the image);
    // a 404 on the network's own endpoints.
    let (code, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"nope"}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("network nope not found"), "{body}");
    let (code, _) = d.api("GET", "/networks/nope", None);
    assert_eq!(code, 404);
    let (code, _) = d.api("DELETE", "/networks/nope", None);
    assert_eq!(code, 404);
    // An address already used: the second container does not start and keeps no endpoint.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "n1",
        "--ip",
        "10.60.0.9",
        "busybox",
        "sleep",
        "600",
    ]);
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "b",
        "--network",
        "n1",
        "--ip",
        "10.60.0.9",
        "busybox",
        "sleep",
        "600",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already in use"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(d.inspect("b")["State"]["Running"], false);
    // A host port already bound: the second container does not start, nothing is left of it.
    d.ok(&[
        "run", "-d", "--name", "p1", "-p", "8085:80", "busybox", "sleep", "600",
    ]);
    let before = links(&d).len();
    let o = d.docker(&[
        "run", "-d", "--name", "p2", "-p", "8085:80", "busybox", "sleep", "600",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not available"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        links(&d).len(),
        before,
        "a half-made endpoint: {:?}",
        links(&d)
    );
    let ni: Value =
        serde_json::from_str(&d.ok(&["network", "inspect", "n1", "bridge"])).expect("json");
    assert_eq!(ni[0]["Containers"].as_object().map(|m| m.len()), Some(1));
    assert_eq!(ni[1]["Containers"].as_object().map(|m| m.len()), Some(1));
    // Removing a network in use, and the pre-defined ones.
    let o = d.docker(&["network", "rm", "n1"]);
    assert!(!o.status.success());
    let (code, _) = d.api("DELETE", "/networks/bridge", None);
    assert_eq!(code, 403);
    let (code, _) = d.api("DELETE", "/networks/host", None);
    assert_eq!(code, 403);
    // Port publishing with a shared namespace is refused.
    let (code, body) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"none","PortBindings":{"80/tcp":[{"HostPort":"9000"}]}}}"#),
    );
    assert_eq!(code, 400, "{body}");
    d.ok(&["rm", "-f", "a", "b", "p1", "p2"]);
    d.ok(&["network", "prune", "-f"]);
    assert!(!d.ok(&["network", "ls"]).contains("n1"));
    assert_clean(&d);
}

/// A process the test started, killed by its pid when the test ends (also on failure).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Endpoint records on disk.
fn endpoint_records(d: &Daemon) -> usize {
    std::fs::read_dir(d.dir.path().join("data/network/endpoints"))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// Interfaces inside a running container.
fn container_links(d: &Daemon, c: &str) -> Vec<String> {
    d.ok(&["exec", c, "ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn bad_input_names_the_problem_and_leaves_nothing() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&["network", "create", "--subnet", "10.64.0.0/24", "m1"]);
    // Overlapping the default bridge's subnet: the error names the network it overlaps.
    let o = d.docker(&["network", "create", "--subnet", "172.17.8.0/24", "m2"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("overlaps with network bridge"),
        "{}",
        text(&o.stderr)
    );
    assert!(!d.ok(&["network", "ls"]).contains("m2"));
    let bridges = links(&d)
        .into_iter()
        .filter(|l| l.starts_with("br-"))
        .count();
    assert_eq!(bridges, 1, "a half-made bridge: {:?}", links(&d));
    d.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "m1",
        "--ip",
        "10.64.0.9",
        "busybox",
        "sleep",
        "600",
    ]);
    let base_links = links(&d);
    let base_nft = nft(&d);
    let base_eps = endpoint_records(&d);
    let unchanged = |what: &str| {
        assert_eq!(links(&d), base_links, "{what}: links changed");
        assert_eq!(nft(&d), base_nft, "{what}: nft rules changed");
        assert_eq!(
            endpoint_records(&d),
            base_eps,
            "{what}: endpoint records changed"
        );
    };
    // The gateway is not a usable --ip; nor is an address of another subnet: no container.
    for ip in ["10.64.0.1", "10.64.1.5"] {
        let o = d.docker(&[
            "run",
            "--rm",
            "--name",
            "g",
            "--network",
            "m1",
            "--ip",
            ip,
            "busybox",
            "true",
        ]);
        assert!(!o.status.success());
        assert!(
            text(&o.stderr).contains(&format!("invalid --ip {ip}")),
            "{}",
            text(&o.stderr)
        );
        assert!(!d.docker(&["inspect", "g"]).status.success(), "record left");
        unchanged("--ip outside the subnet");
    }
    // An address already used, with --rm: the start fails, naming address and network, and
    // the container's record goes too.
    let o = d.docker(&[
        "run",
        "--rm",
        "--name",
        "u",
        "--network",
        "m1",
        "--ip",
        "10.64.0.9",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("address 10.64.0.9 is already in use on network m1"),
        "{}",
        text(&o.stderr)
    );
    assert!(!d.docker(&["inspect", "u"]).status.success(), "record left");
    unchanged("--ip in use");
    // A host port a host process listens on (in the daemon's namespace).
    let listener = KillOnDrop(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                d.netns(),
                "busybox",
                "nc",
                "-l",
                "-p",
                "8086",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nc"),
    );
    assert!(
        eventually(10, || !d.host("ss -Hltn 'sport = :8086'").trim().is_empty()),
        "the host listener did not come up"
    );
    let o = d.docker(&[
        "run", "--rm", "--name", "h", "-p", "8086:80", "busybox", "true",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("host port 0.0.0.0:8086/tcp is not available"),
        "{}",
        text(&o.stderr)
    );
    assert!(!d.docker(&["inspect", "h"]).status.success(), "record left");
    unchanged("host port held by a host process");
    // ... and one another container publishes: the record of a container made without
    // --rm stays (created, as Docker's), with no endpoint.
    d.ok(&[
        "run", "-d", "--name", "p1", "-p", "8087:80", "busybox", "sleep", "600",
    ]);
    let base_links = links(&d);
    let base_nft = nft(&d);
    let base_eps = endpoint_records(&d);
    let o = d.docker(&[
        "run", "-d", "--name", "p2", "-p", "8087:80", "busybox", "sleep", "600",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("host port 0.0.0.0:8087/tcp is not available"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(d.inspect("p2")["State"]["Status"], "created");
    assert_eq!(links(&d), base_links);
    assert_eq!(nft(&d), base_nft);
    assert_eq!(endpoint_records(&d), base_eps);
    drop(listener);
    // Unknown networks.
    for args in [
        &["network", "connect", "nope", "a"][..],
        &["network", "disconnect", "nope", "a"],
        &["network", "rm", "nope"],
    ] {
        let o = d.docker(args);
        assert!(!o.status.success(), "{args:?}");
        assert!(
            text(&o.stderr).contains("network nope not found"),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
    // A bad request, not a 404: the docker CLI answers a 404 from create by pulling the
    // image, and must show the network's error instead.
    let (code, body) = d.api(
        "POST",
        "/containers/create?name=nn",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"nope","AutoRemove":true}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("network nope not found"), "{body}");
    let o = d.docker(&["run", "--rm", "--network", "nope", "busybox", "true"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("network nope not found")
            && !text(&o.stderr).contains("Unable to find image"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        !d.docker(&["inspect", "nn"]).status.success(),
        "record left"
    );
    // Connecting a container to a network it is on: refused, it keeps one interface there.
    let before = container_links(&d, "a");
    for args in [
        &["network", "connect", "m1", "a"][..],
        &["network", "connect", "--ip", "10.64.0.20", "m1", "a"],
    ] {
        let o = d.docker(args);
        assert!(!o.status.success(), "{args:?}");
        assert!(
            text(&o.stderr).contains("already exists in network m1"),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
    assert_eq!(container_links(&d, "a"), before);
    // Connecting a running container with an address outside the subnet or in use: no
    // interface is added, the attachment is not recorded.
    d.ok(&["network", "create", "--subnet", "10.65.0.0/24", "m3"]);
    let base_links = links(&d);
    let o = d.docker(&["network", "connect", "--ip", "10.66.0.5", "m3", "a"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("10.66.0.5 is not a usable address of subnet 10.65.0.0/24"),
        "{}",
        text(&o.stderr)
    );
    d.ok(&["network", "connect", "--ip", "10.65.0.7", "m3", "p1"]);
    let base_links2 = links(&d);
    let o = d.docker(&["network", "connect", "--ip", "10.65.0.7", "m3", "a"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("address 10.65.0.7 is already in use on network m3"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(container_links(&d, "a"), before);
    assert_eq!(links(&d).len(), base_links.len() + 1);
    assert_eq!(links(&d), base_links2);
    let ni = d.inspect("a");
    assert!(
        ni["NetworkSettings"]["Networks"].get("m3").is_none(),
        "{ni}"
    );
    // Removing a network in use names the containers on it, and removes nothing.
    let o = d.docker(&["network", "rm", "m1"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("network m1 has active endpoints: a"),
        "{}",
        text(&o.stderr)
    );
    assert!(d.ok(&["network", "ls"]).contains("m1"));
    assert_eq!(container_links(&d, "a"), before);
    d.ok(&["rm", "-f", "a", "p1", "p2"]);
    d.ok(&["network", "rm", "m1", "m3"]);
    assert_clean(&d);
}

/// Sends `msg` to `addr` over UDP from the daemon's namespace; the answer, if one comes.
fn udp_ask(d: &Daemon, addr: &str, msg: &str) -> String {
    let (ip, port) = addr.rsplit_once(':').expect("ip:port");
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(2)\n\
         s.sendto(b'{msg}', ('{ip}', {port}))\ntry:\n    print(s.recv(100).decode())\n\
         except OSError:\n    pass\n"
    );
    let o = std::process::Command::new("ip")
        .args(["netns", "exec", d.netns(), "python3", "-c", &script])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("python3");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn udp_and_port_ranges() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // UDP: busybox has no UDP server, so the container's network namespace gets one (the
    // host's python3, entered into it): the datagrams travel the published port's path.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "u",
        "-p",
        "5353:53/udp",
        "-p",
        "127.0.0.1:5354:54/udp",
        "busybox",
        "sleep",
        "600",
    ]);
    let c = d.inspect("u");
    let pid = c["State"]["Pid"].as_i64().unwrap_or(0).to_string();
    let ip = c["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        c["NetworkSettings"]["Ports"]["53/udp"][0]["HostPort"],
        "5353"
    );
    let echo = r#"
import select, socket
socks = []
for port in (53, 54):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    socks.append(s)
while True:
    for s in select.select(socks, [], [])[0]:
        m, a = s.recvfrom(100)
        s.sendto(b"echo-" + m + b"-" + a[0].encode(), a)
"#;
    let _server = KillOnDrop(
        std::process::Command::new("nsenter")
            .args(["-t", &pid, "-n", "python3", "-c", echo])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("nsenter python3"),
    );
    let first = |addr: &str, msg: &str| {
        let mut got = String::new();
        eventually(10, || {
            got = udp_ask(&d, addr, msg);
            !got.is_empty()
        });
        got
    };
    // From the host side: the namespace's loopback and the bridge address. Answers come
    // back from the published address (conntrack), and the container sees the client behind
    // the gateway (127.0.0.1 clients are masqueraded) or as itself.
    let a = first("127.0.0.1:5353", "lo");
    assert!(a.starts_with("echo-lo-"), "{a}");
    let a = first("172.17.0.1:5353", "br");
    assert!(a.starts_with("echo-br-"), "{a}");
    let a = first(&format!("{ip}:53"), "direct");
    assert_eq!(a, "echo-direct-172.17.0.1");
    // 127.0.0.1:5354 is published on loopback only: not through the bridge address.
    assert!(first("127.0.0.1:5354", "l2").starts_with("echo-l2-"));
    assert_eq!(udp_ask(&d, "172.17.0.1:5354", "no"), "");
    let t = nft(&d);
    assert!(t.contains("udp dport 5353"), "{t}");
    assert!(d.ok(&["port", "u"]).contains("53/udp -> 0.0.0.0:5353"));
    // Ranges. A host range for one container port takes its first free port; when the whole
    // range is taken the start fails, naming the port.
    let range_web = |name: &str, publish: &str| {
        d.docker(&[
            "run",
            "-d",
            "--name",
            name,
            "-p",
            publish,
            "busybox",
            "sh",
            "-c",
            "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html && httpd -p 81 -h /www \
             && exec httpd -f -p 80 -h /www",
        ])
    };
    for (n, want) in [("r1", "9100"), ("r2", "9101")] {
        let o = range_web(n, "9100-9101:80");
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert_eq!(d.ok(&["port", n, "80"]), format!("0.0.0.0:{want}"));
    }
    let o = range_web("r3", "9100-9101:80");
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("host port 0.0.0.0:9101/tcp is not available"),
        "{}",
        text(&o.stderr)
    );
    let h1 = d.inspect("r1")["Id"].as_str().unwrap_or_default()[..12].to_string();
    assert!(eventually(10, || d
        .wget("http://127.0.0.1:9100/")
        .contains(&format!("hello-{h1}"))));
    let h2 = d.inspect("r2")["Id"].as_str().unwrap_or_default()[..12].to_string();
    assert!(d
        .wget("http://127.0.0.1:9101/")
        .contains(&format!("hello-{h2}")));
    // A host range paired with a container range: each port to its own.
    let o = range_web("r4", "127.0.0.1:9110-9111:80-81");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let ports = d.ok(&["port", "r4"]);
    assert!(
        ports.contains("80/tcp -> 127.0.0.1:9110") && ports.contains("81/tcp -> 127.0.0.1:9111"),
        "{ports}"
    );
    assert!(eventually(10, || d
        .wget("http://127.0.0.1:9110/")
        .contains("hello-")));
    assert!(d.wget("http://127.0.0.1:9111/").contains("hello-"));
    d.ok(&["rm", "-f", "u", "r1", "r2", "r3", "r4"]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert_clean(&d);
}

#[test]
fn docker_py_networks() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let script = r#"
import docker, sys
c = docker.DockerClient(base_url=sys.argv[1])
ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.66.0.0/24")])
n = c.networks.create("pynet", driver="bridge", ipam=ipam, labels={"k": "v"})
assert "pynet" in [x.name for x in c.networks.list()]
assert [x.name for x in c.networks.list(names=["pynet"])] == ["pynet"]
ct = c.containers.run("busybox", "sleep 600", network="pynet", detach=True, name="pyc")
ct.reload()
s = ct.attrs["NetworkSettings"]["Networks"]["pynet"]
assert s["IPAddress"].startswith("10.66.0."), s
assert s["NetworkID"] == n.id
n.reload()
assert ct.id in n.attrs["Containers"], n.attrs
n.disconnect(ct)
ct.reload()
assert "pynet" not in ct.attrs["NetworkSettings"]["Networks"]
n.connect(ct, aliases=["x"], ipv4_address="10.66.0.50")
ct.reload()
s = ct.attrs["NetworkSettings"]["Networks"]["pynet"]
assert s["IPAddress"] == "10.66.0.50", s
assert "x" in s["Aliases"], s
assert s["IPAMConfig"]["IPv4Address"] == "10.66.0.50", s
# another container on the network reaches it by its alias (through the network's DNS)
p = c.containers.run("busybox", "ping -c 1 -W 3 x", network="pynet", detach=True)
assert p.wait()["StatusCode"] == 0, p.logs()
assert b"10.66.0.50" in p.logs(), p.logs()
p.remove()
# bad input through the SDK: the status code and the message name the problem
try:
    c.networks.create("pybad", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.66.0.128/25")]))
    raise SystemExit("an overlapping subnet was accepted")
except docker.errors.APIError as e:
    assert e.status_code == 409 and "overlaps with network pynet" in str(e), e
try:
    n.connect(ct)
    raise SystemExit("a second endpoint on pynet was accepted")
except docker.errors.APIError as e:
    assert e.status_code == 409 and "already exists in network pynet" in str(e), e
# prune removes the unused network only
c.networks.create("pyidle")
pruned = c.networks.prune()
assert pruned["NetworksDeleted"] == ["pyidle"], pruned
assert "pynet" in [x.name for x in c.networks.list()]
n.disconnect(ct, force=True)
ct.reload()
assert "pynet" not in ct.attrs["NetworkSettings"]["Networks"]
ct.remove(force=True)
n.remove()
assert "pynet" not in [x.name for x in c.networks.list()]
print("ok")
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(format!("unix://{}", d.sock.display()))
        .output()
        .expect("python3");
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ok"),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        d.log()
    );
    assert_clean(&d);
}

#[test]
fn daemon_kill9_keeps_live_endpoints_and_cleans_dead_ones() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.ok(&["network", "create", "--subnet", "10.77.0.0/24", "kn"]);
    d.ok(&[
        "run", "-d", "--name", "web", "-p", "8088:80", "busybox", "sh", "-c", HTTPD,
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "kn",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "doomed",
        "--network",
        "kn",
        "-p",
        "8089:80",
        "busybox",
        "sleep",
        "600",
    ]);
    let ip = d.inspect("peer")["NetworkSettings"]["Networks"]["kn"]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let doomed_pid = d.inspect("doomed")["State"]["Pid"].as_i64().unwrap_or(0) as i32;
    assert!(doomed_pid > 0);
    assert!(eventually(10, || d
        .wget("http://127.0.0.1:8088/")
        .contains("hello-")));
    d.kill9();
    // While the daemon is down, one container dies.
    // SAFETY: SIGKILL to the pid of a container this test started.
    unsafe { libc::kill(doomed_pid, libc::SIGKILL) };
    d.spawn();
    assert!(
        d.wget("http://127.0.0.1:8088/").contains("hello-"),
        "{}",
        d.log()
    );
    let c = d.inspect("peer");
    assert_eq!(
        c["NetworkSettings"]["Networks"]["kn"]["IPAddress"],
        ip.as_str()
    );
    let o = d.ok(&["exec", "peer", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(o.contains(&ip), "{o}");
    assert!(eventually(10, || d.inspect("doomed")["State"]["Running"] == false));
    assert!(eventually(10, || !nft(&d).contains("8089")), "{}", nft(&d));
    let ni: Value = serde_json::from_str(&d.ok(&["network", "inspect", "kn"])).expect("json");
    assert_eq!(
        ni[0]["Containers"].as_object().map(|m| m.len()),
        Some(1),
        "{ni}"
    );
    // DNS of the user network is back after the restart.
    d.ok(&["start", "doomed"]);
    let o = d.ok(&["exec", "doomed", "nslookup", "peer"]);
    assert!(o.contains(&ip), "{o}");
    d.ok(&["rm", "-f", "web", "peer", "doomed"]);
    d.ok(&["network", "rm", "kn"]);
    assert_clean(&d);
    // And after a kill -9 with nothing running, a restart leaves the same clean state.
    d.kill9();
    d.spawn();
    assert_clean(&d);
}

#[test]
fn published_ports_follow_the_default_route_across_networks() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&["network", "create", "--subnet", "10.56.0.0/24", "pn"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "w",
        "--hostname",
        "w1",
        "-p",
        "8091:80",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    d.ok(&["network", "connect", "pn", "w"]);
    assert!(eventually(10, || d
        .wget("http://127.0.0.1:8091/")
        .contains("hello-w1")));
    // Leaving the network that held the default route and the ports: both move to pn.
    d.ok(&["network", "disconnect", "bridge", "w"]);
    let route = d.ok(&["exec", "w", "ip", "route"]);
    assert!(route.contains("default via 10.56.0.1"), "{route}");
    assert!(
        eventually(10, || d.wget("http://127.0.0.1:8091/").contains("hello-w1")),
        "{}",
        nft(&d)
    );
    assert_eq!(d.ok(&["port", "w", "80"]), "0.0.0.0:8091");
    let c = d.inspect("w");
    assert_eq!(
        c["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"], "8091",
        "{}",
        c["NetworkSettings"]
    );
    assert!(c["NetworkSettings"]["Networks"]["pn"]["IPAddress"]
        .as_str()
        .is_some_and(|ip| ip.starts_with("10.56.0.")));
    let ps = d.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains("0.0.0.0:8091->80/tcp"), "{ps}");
    d.ok(&["rm", "-f", "w"]);
    d.ok(&["network", "rm", "pn"]);
    assert_clean(&d);
}

/// A network namespace standing for another host on the daemon's LAN, deleted on drop.
struct Outside {
    name: String,
    server: Option<std::process::Child>,
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            // SAFETY: SIGTERM to the server this test started, by its pid.
            unsafe { libc::kill(s.id() as i32, libc::SIGTERM) };
            let _ = s.wait();
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn outbound_traffic_is_masqueraded_to_the_daemon_namespace_address() {
    if skip() {
        return;
    }
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("sysctl");
    let d = Daemon::start();
    // Forwarding is on in the daemon's namespace, and only there: the host's is unchanged.
    assert_eq!(d.host("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("sysctl"),
        host_fwd
    );
    let mut o = Outside {
        name: format!("barge-out-{}", std::process::id()),
        server: None,
    };
    let st = std::process::Command::new("ip")
        .args(["netns", "add", &o.name])
        .status()
        .expect("ip netns add");
    assert!(st.success());
    let setup = format!(
        "ip link add up9 type veth peer name eth0 netns {n} && ip addr add 10.97.0.1/24 dev up9 \
         && ip link set up9 up && ip -n {n} addr add 10.97.0.2/24 dev eth0 \
         && ip -n {n} link set eth0 up && ip -n {n} link set lo up",
        n = o.name
    );
    let out = d.sh(&setup);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The outside server answers with the address it sees the client at (a CGI script).
    let www = d.dir.path().join("outside-www");
    std::fs::create_dir_all(www.join("cgi-bin")).expect("www");
    let cgi = www.join("cgi-bin/addr");
    std::fs::write(
        &cgi,
        "#!/bin/busybox sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nfrom %s\\n' \"$REMOTE_ADDR\"\n",
    )
    .expect("cgi");
    std::fs::set_permissions(&cgi, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    o.server = Some(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &o.name,
                "busybox",
                "httpd",
                "-f",
                "-p",
                "10.97.0.2:9000",
                "-h",
            ])
            .arg(&www)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("httpd"),
    );
    // The outside host has no route to the containers' subnet: only a masqueraded
    // connection can be answered. (busybox wget's own -T crashes: `timeout` instead.)
    let got = (0..50)
        .find_map(|_| {
            let o = d.docker(&[
                "run",
                "--rm",
                "busybox",
                "timeout",
                "5",
                "wget",
                "-qO-",
                "http://10.97.0.2:9000/cgi-bin/addr",
            ]);
            let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if s.starts_with("from ") {
                Some(s)
            } else {
                std::thread::sleep(std::time::Duration::from_millis(100));
                None
            }
        })
        .expect("the container reached the outside server");
    assert_eq!(got, "from 10.97.0.1");
    // The rule doing it is barge's masquerade for the bridge's subnet.
    let t = nft(&d);
    assert!(
        t.contains("172.17.0.0/16") && t.contains("masquerade"),
        "{t}"
    );
    drop(o);
    assert_clean_links_except(&d, &["up9"]);
}

/// Like the links part of [`assert_clean`], allowing the test's own links (gone with their
/// namespace's peer).
fn assert_clean_links_except(d: &Daemon, extra: &[&str]) {
    let ok = || {
        links(d)
            .iter()
            .all(|n| n == "lo" || n == "barge0" || extra.contains(&n.as_str()))
    };
    assert!(eventually(10, ok), "links left: {:?}", links(d));
}

/// `DOCKER_BUILDKIT=0 docker build` of `dockerfile` against `d` (stdout+stderr, success).
fn build(d: &Daemon, dockerfile: &str, args: &[&str]) -> (String, bool) {
    let ctx = tempfile::tempdir().expect("tempdir");
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).expect("write");
    let dir = ctx.path().to_str().expect("utf8");
    let o = d.docker_build(&[&["--no-cache"], args, &[dir]].concat());
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    (out, o.status.success())
}

#[test]
fn build_run_network_modes() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let ifaces = "$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ,)";
    let df = format!(
        "FROM busybox\n\
         RUN --network=none echo \"none={ifaces}\"\n\
         RUN echo \"default={ifaces}\" && echo \"addr=$(ip -4 -o addr show eth0 | awk '{{print $4}}')\" \
             && ping -c1 -W5 172.17.0.1 >/dev/null && echo gateway-reachable\n"
    );
    let (out, ok) = build(&d, &df, &["-t", "net:1"]);
    assert!(ok, "{out}\n{}", d.log());
    assert!(out.contains("none=lo,"), "{out}");
    assert!(out.contains("default=eth0,lo,"), "{out}");
    assert!(out.contains("addr=172.17."), "{out}");
    assert!(out.contains("gateway-reachable"), "{out}");
    // The steps' endpoints and namespaces are gone.
    assert_clean(&d);
    let left: Vec<String> = std::fs::read_dir(d.dir.path().join("exec/netns"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("build-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "build namespaces left: {left:?}");

    // `--network <user network>`: the steps join it.
    d.ok(&["network", "create", "--subnet", "10.88.0.0/24", "bn"]);
    let user_df = "FROM busybox\nRUN echo \"addr=$(ip -4 -o addr show eth0 | awk '{print $4}')\"\n";
    let (out, ok) = build(&d, user_df, &["--network", "bn"]);
    assert!(ok, "{out}");
    assert!(out.contains("addr=10.88.0."), "{out}");
    let (out, ok) = build(&d, user_df, &["--network", "nosuchnet"]);
    assert!(!ok, "{out}");
    assert!(out.contains("nosuchnet"), "{out}");
    d.ok(&["network", "rm", "bn"]);
    // `--network none` on the build: every RUN has only loopback.
    let (out, ok) = build(
        &d,
        &df.replace(
            " && ping -c1 -W5 172.17.0.1 >/dev/null && echo gateway-reachable",
            "",
        ),
        &["--network", "none"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("default=lo,"), "{out}");
    // RUN --network=host needs the build's --network host; then it is the daemon's
    // namespace (the bridge is there).
    let host_df = format!("FROM busybox\nRUN --network=host echo \"host={ifaces}\"\n");
    let (out, ok) = build(&d, &host_df, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("--network=host is not allowed"), "{out}");
    let (out, ok) = build(&d, &host_df, &["--network", "host"]);
    assert!(ok, "{out}");
    assert!(out.contains("barge0"), "{out}");
    assert_clean(&d);
}

/// Pids of processes whose command line mentions `needle` (this test's own roots).
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cl) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cl).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

#[test]
fn a_daemon_killed_during_a_networked_run_leaves_nothing_after_restart() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    let ctx = tempfile::tempdir().expect("tempdir");
    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nRUN sleep 2\n").expect("write");
    let mut build = d
        .docker_cmd(&["build", ctx.path().to_str().expect("utf8")])
        .env("DOCKER_BUILDKIT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("docker build");
    let netns = d.dir.path().join("exec/netns");
    let has_build_ns = || {
        std::fs::read_dir(&netns)
            .map(|r| {
                r.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("build-"))
            })
            .unwrap_or(false)
    };
    assert!(eventually(20, has_build_ns), "{}", d.log());
    d.kill9();
    let _ = build.wait();
    // The RUN's runtime process outlives the daemon; let it finish its `sleep 2`.
    let roots = d.dir.path().join("data/builder").display().to_string();
    assert!(eventually(30, || pids_mentioning(&roots).is_empty()));
    d.spawn();
    assert!(!has_build_ns(), "a build namespace survived the restart");
    assert_clean(&d);
}

/// The host end of the only veth pair in the daemon's namespace.
fn only_veth(d: &Daemon) -> String {
    let v: Vec<String> = links(d)
        .into_iter()
        .filter(|n| n.starts_with("bv"))
        .collect();
    assert_eq!(v.len(), 1, "one veth expected: {:?}", links(d));
    v[0].clone()
}

/// Runs `name` (`sleep`) on the default bridge and `peer` in its network namespace; returns
/// the host end of `name`'s veth pair.
fn run_with_peer(d: &Daemon, name: &str, peer: &str) -> String {
    d.ok(&["run", "-d", "--name", name, "busybox", "sleep", "600"]);
    let veth = only_veth(d);
    let mode = format!("container:{name}");
    d.ok(&[
        "run",
        "-d",
        "--name",
        peer,
        "--network",
        &mode,
        "busybox",
        "sleep",
        "600",
    ]);
    veth
}

/// An exited container's veth pair goes with its namespace, not through a deletion of the
/// daemon's: gone soon after `rm`, and its address goes to the next container. A
/// `container:` peer keeping the namespace alive makes the daemon delete the link itself
/// after a grace time, and a daemon killed while it waits for that leaves nothing after its
/// restart.
#[test]
fn exited_containers_links_go_with_their_namespace() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.restart_with(&["--debug"]);
    let ip_of = |c: &str| {
        d.inspect(c)["NetworkSettings"]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    d.ok(&["run", "-d", "--name", "a", "busybox", "sleep", "600"]);
    let ip = ip_of("a");
    let veth = only_veth(&d);
    d.ok(&["rm", "-f", "a"]);
    assert!(
        eventually(10, || !links(&d).contains(&veth)),
        "{veth} left after rm"
    );
    // b's namespace outlives b: a peer has joined it
    let veth = run_with_peer(&d, "b", "peer");
    assert_eq!(
        ip_of("b"),
        ip,
        "the address of a removed container is reused"
    );
    d.ok(&["stop", "-t", "0", "b"]);
    assert!(
        eventually(10, || !links(&d).contains(&veth)),
        "{veth} outlived its grace time"
    );
    assert!(
        d.log()
            .contains(&format!("{veth} outlived its container's namespace")),
        "{}",
        d.log()
    );
    assert!(!container_links(&d, "peer").iter().any(|l| l == "eth0"));
    d.ok(&["rm", "-f", "peer", "b"]);
    // the same, with the daemon killed while it waits for the link
    let veth = run_with_peer(&d, "c", "peer2");
    d.ok(&["stop", "-t", "0", "c"]);
    // released (its endpoint record is gone) but not deleted yet
    assert!(eventually(10, || endpoint_records(&d) == 0), "{}", d.log());
    d.kill9();
    assert!(
        links(&d).contains(&veth),
        "{veth} went before the grace time was over"
    );
    d.spawn();
    assert!(
        eventually(10, || !links(&d).contains(&veth)),
        "{veth} left after the restart"
    );
    d.ok(&["rm", "-f", "peer2", "c"]);
    assert_clean(&d);
}

/// The daemon namespace's IPv6 addresses (CIDR), link-local ones left out.
fn addrs6(d: &Daemon) -> Vec<String> {
    d.host("ip -o -6 addr show")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .filter(|a| !a.starts_with("fe80:"))
        .collect()
}

/// An address of /proc/net/if_inet6 (32 hex digits) and its flags, from a container.
fn if_inet6(d: &Daemon, c: &str, hex: &str) -> Option<u32> {
    d.ok(&["exec", c, "cat", "/proc/net/if_inet6"])
        .lines()
        .find(|l| l.starts_with(hex))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|f| u32::from_str_radix(f, 16).ok())
}

#[test]
fn ipv6_dual_stack_names_static_addresses_published_ports_and_cleanup() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.56.0.0/24",
        "--subnet",
        "fd00:db8:1::/64",
        "--gateway",
        "fd00:db8:1::1",
        "--ip-range",
        "fd00:db8:1::100/120",
        "net6",
    ]);
    let ni: Value = serde_json::from_str(&d.ok(&["network", "inspect", "net6"])).expect("json");
    let ni = &ni[0];
    assert_eq!(ni["EnableIPv6"], true, "{ni}");
    let cfgs = ni["IPAM"]["Config"].as_array().cloned().unwrap_or_default();
    assert!(
        cfgs.iter().any(|c| c["Subnet"] == "10.56.0.0/24"),
        "{cfgs:?}"
    );
    assert!(
        cfgs.iter().any(|c| c["Subnet"] == "fd00:db8:1::/64"
            && c["Gateway"] == "fd00:db8:1::1"
            && c["IPRange"] == "fd00:db8:1::100/120"),
        "{cfgs:?}"
    );
    let br = format!("br-{}", &ni["Id"].as_str().unwrap_or_default()[..12]);
    assert!(
        d.host(&format!("ip -6 addr show dev {br}"))
            .contains("fd00:db8:1::1/64"),
        "the bridge has the IPv6 gateway address"
    );
    // A static address, and a dynamic one from the range.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "srv6",
        "--network",
        "net6",
        "--ip6",
        "fd00:db8:1::99",
        "-p",
        "9120:80",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cli6",
        "--network",
        "net6",
        "busybox",
        "sleep",
        "600",
    ]);
    let c = d.inspect("srv6");
    let n = &c["NetworkSettings"]["Networks"]["net6"];
    assert_eq!(n["GlobalIPv6Address"], "fd00:db8:1::99", "{n}");
    assert_eq!(n["GlobalIPv6PrefixLen"], 64, "{n}");
    assert_eq!(n["IPv6Gateway"], "fd00:db8:1::1", "{n}");
    assert_eq!(n["IPAMConfig"]["IPv6Address"], "fd00:db8:1::99", "{n}");
    assert!(
        n["IPAddress"]
            .as_str()
            .is_some_and(|a| a.starts_with("10.56.0.")),
        "dual stack: {n}"
    );
    let cli = d.inspect("cli6");
    assert_eq!(
        cli["NetworkSettings"]["Networks"]["net6"]["GlobalIPv6Address"], "fd00:db8:1::100",
        "dynamic addresses come from the ip-range"
    );
    let ni: Value = serde_json::from_str(&d.ok(&["network", "inspect", "net6"])).expect("json");
    assert_eq!(
        ni[0]["Containers"][c["Id"].as_str().unwrap_or_default()]["IPv6Address"],
        "fd00:db8:1::99/64"
    );
    // Inside: the address, usable at once (IFA_F_NODAD 0x02 set, never IFA_F_TENTATIVE
    // 0x40), and the default route.
    let flags = if_inet6(&d, "srv6", "fd000db8000100000000000000000099").expect("address inside");
    assert_eq!(
        flags & 0x42,
        0x02,
        "the address has DAD on or is tentative (flags {flags:#x})"
    );
    let routes = d.ok(&["exec", "cli6", "ip", "-6", "route"]);
    assert!(
        routes.contains("default via fd00:db8:1::1"),
        "no IPv6 default route: {routes}"
    );
    // By name over IPv6 (AAAA from the network's DNS), and the IPv4 name still works.
    let o = d.ok(&["exec", "cli6", "ping", "-6", "-c", "1", "-W", "3", "srv6"]);
    assert!(o.contains("fd00:db8:1::99"), "{o}");
    let o = d.ok(&["exec", "cli6", "nslookup", "-type=aaaa", "srv6"]);
    assert!(o.contains("fd00:db8:1::99"), "{o}");
    let o = d.ok(&["exec", "cli6", "nslookup", "-type=a", "srv6"]);
    assert!(o.contains("10.56.0."), "{o}");
    let o = d.ok(&["exec", "cli6", "wget", "-qO-", "http://[fd00:db8:1::99]/"]);
    assert!(o.contains("hello-"), "{o}");
    // The published port over IPv6, at the host's IPv6 address in the daemon's namespace.
    let out = d.sh("ip addr add fd99::1/128 dev lo nodad");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        eventually(10, || d.wget("http://[fd99::1]:9120/").contains("hello-")),
        "{}",
        d.host("nft list table ip6 barge")
    );
    assert!(d.wget("http://127.0.0.1:9120/").contains("hello-"));
    assert!(d.host("nft list table ip6 barge").contains("dport 9120"));
    // Bad input: a clear error, nothing made.
    let links_before = links(&d);
    for (body, code, word) in [
        (
            r#"{"Name": "o6", "EnableIPv6": true, "IPAM": {"Config": [{"Subnet": "fd00:db8:1:0:8000::/80"}]}}"#,
            409,
            "overlaps with network net6",
        ),
        (
            r#"{"Name": "o6", "EnableIPv6": true, "IPAM": {"Config": [{"Subnet": "fd00:db8:7::/64", "Gateway": "fd00:db8:8::1"}]}}"#,
            400,
            "fd00:db8:8::1 is not a usable address",
        ),
        (
            r#"{"Name": "o6", "EnableIPv6": false, "IPAM": {"Config": [{"Subnet": "fd00:db8:7::/64"}]}}"#,
            400,
            "needs IPv6 enabled",
        ),
        (
            r#"{"Name": "o6", "EnableIPv6": true, "IPAM": {"Config": [{"Subnet": "fd00:db8:7::/64", "IPRange": "fd00:db8:9::/80"}]}}"#,
            400,
            "ip-range is not inside subnet",
        ),
        (
            r#"{"Name": "o6", "IPAM": {"Config": [{"Subnet": "fd00:db8:7::/64"}, {"Subnet": "fd00:db8:8::/64"}]}}"#,
            400,
            "one IPv6",
        ),
        (
            r#"{"Name": "o6", "EnableIPv6": true, "IPAM": {"Config": [{"Subnet": "fd00:zz::/64"}]}}"#,
            400,
            "want an IPv6 CIDR",
        ),
    ] {
        let (c, b) = d.api("POST", "/networks/create", Some(body));
        assert_eq!(c, code, "{body}: {b}");
        assert!(b.contains(word), "{body}: {b}");
    }
    assert!(!d.ok(&["network", "ls"]).contains("o6"));
    assert_eq!(links(&d), links_before, "a refused network left a link");
    for (args, word) in [
        (
            vec!["--network", "net6", "--ip6", "fd00:db8:2::5"],
            "not a usable address of network net6",
        ),
        (
            vec!["--network", "bridge", "--ip6", "fd00:db8:1::5"],
            "does not have IPv6 enabled",
        ),
    ] {
        let mut a = vec!["create"];
        a.extend(args);
        a.extend(["busybox", "true"]);
        let o = d.docker(&a);
        assert!(!o.status.success());
        assert!(text(&o.stderr).contains(word), "{}", text(&o.stderr));
    }
    // `network connect --ip6` of a container that is not running is checked at once too.
    d.ok(&["create", "--name", "idle6", "busybox", "true"]);
    let o = d.docker(&[
        "network",
        "connect",
        "--ip6",
        "fd00:db8:9::5",
        "net6",
        "idle6",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("not a usable address of network net6"),
        "{}",
        text(&o.stderr)
    );
    d.ok(&["rm", "idle6"]);
    // An address in use: the start fails naming it, and leaves nothing connected.
    d.ok(&[
        "create",
        "--name",
        "dup6",
        "--network",
        "net6",
        "--ip6",
        "fd00:db8:1::99",
        "busybox",
        "sleep",
        "600",
    ]);
    let o = d.docker(&["start", "dup6"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("fd00:db8:1::99 is already in use on network net6"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(links(&d), links_before, "a failed start left a link");
    // Everything goes with the containers and the network.
    d.ok(&["rm", "-f", "srv6", "cli6", "dup6"]);
    d.ok(&["network", "rm", "net6"]);
    let out = d.sh("ip addr del fd99::1/128 dev lo");
    assert!(out.status.success());
    assert_clean(&d);
    assert_eq!(
        addrs6(&d),
        vec!["::1/128".to_string()],
        "IPv6 addresses left"
    );
    assert_eq!(
        d.host("nft list table ip6 barge 2>/dev/null"),
        "",
        "the ip6 table is left"
    );
}

#[test]
fn ipv6_network_without_a_subnet_gets_a_unique_local_one() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.ok(&["network", "create", "--ipv6", "ula6"]);
    d.ok(&["network", "create", "--ipv6", "ula6b"]);
    let subnet = |d: &Daemon, n: &str| -> String {
        let v: Value = serde_json::from_str(&d.ok(&["network", "inspect", n])).expect("json");
        v[0]["IPAM"]["Config"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|c| c["Subnet"].as_str().is_some_and(|s| s.contains(':')))
            })
            .map(|c| c["Subnet"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    let (a, b) = (subnet(&d, "ula6"), subnet(&d, "ula6b"));
    assert!(a.starts_with("fd") && a.ends_with("::/64"), "{a}");
    assert_ne!(a, b);
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        "ula6",
        "busybox",
        "cat",
        "/proc/net/if_inet6",
    ]);
    assert!(
        o.lines().any(|l| l.starts_with("fd") && l.contains("eth0")),
        "{o}"
    );
    // A daemon killed with a container running on the network: after the restart the
    // network still has IPv6 (the records), the live container keeps its address and its
    // name still answers AAAA.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "live6",
        "--network",
        "ula6",
        "busybox",
        "sleep",
        "600",
    ]);
    let before = d.inspect("live6")["NetworkSettings"]["Networks"]["ula6"]["GlobalIPv6Address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(before.starts_with("fd"), "{before}");
    d.kill9();
    d.restart_with(&[]);
    assert_eq!(subnet(&d, "ula6"), a);
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        "ula6",
        "busybox",
        "nslookup",
        "-type=aaaa",
        "live6",
    ]);
    assert!(o.contains(&before), "{o}");
    // Its IPv6 default route moves with the IPv4 one when the network holding it goes.
    d.ok(&["network", "connect", "ula6b", "live6"]);
    d.ok(&["network", "disconnect", "ula6", "live6"]);
    let gw6b = d.inspect("live6")["NetworkSettings"]["Networks"]["ula6b"]["IPv6Gateway"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        gw6b,
        b.replace("::/64", "::1"),
        "the first address is the gateway"
    );
    let routes = d.ok(&["exec", "live6", "ip", "-6", "route"]);
    assert!(routes.contains(&format!("default via {gw6b}")), "{routes}");
    d.ok(&["rm", "-f", "live6"]);
    // barge's own CLI: an IPv6 subnet turns IPv6 on unless `--ipv6=false` says otherwise;
    // `--ip6` and `--mac-address` on run.
    let o = d.barge(
        &[
            "network",
            "create",
            "--ipv6=false",
            "--subnet",
            "fd00:db8:5::/64",
            "nope6",
        ],
        None,
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("needs IPv6 enabled"),
        "{}",
        text(&o.stderr)
    );
    d.barge_ok(&["network", "create", "--subnet", "fd00:db8:5::/64", "cli6"]);
    // the docker CLI's `--subnet` of IPv6 without `--ipv6` too
    d.ok(&["network", "create", "--subnet", "fd00:db8:6::/64", "dock6"]);
    let v: Value = serde_json::from_str(&d.ok(&["network", "inspect", "dock6"])).expect("json");
    assert_eq!(v[0]["EnableIPv6"], true, "{v}");
    d.ok(&["network", "rm", "dock6"]);
    let o = d.barge_ok(&[
        "run",
        "--rm",
        "--network",
        "cli6",
        "--ip6",
        "fd00:db8:5::7",
        "--mac-address",
        "02:00:00:00:05:07",
        "busybox",
        "sh",
        "-c",
        "cat /sys/class/net/eth0/address /proc/net/if_inet6",
    ]);
    assert!(o.starts_with("02:00:00:00:05:07"), "{o}");
    assert!(o.contains("fd000db8000500000000000000000007"), "{o}");
    d.ok(&["network", "rm", "cli6"]);
    d.ok(&["network", "rm", "ula6", "ula6b"]);
    assert_clean(&d);
    assert_eq!(d.host("nft list table ip6 barge 2>/dev/null"), "");
}

#[test]
fn chosen_mac_addresses() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "m1",
        "--mac-address",
        "92:D0:C6:0A:29:33",
        "busybox",
        "sleep",
        "600",
    ]);
    assert_eq!(
        d.ok(&["exec", "m1", "cat", "/sys/class/net/eth0/address"])
            .trim(),
        "92:d0:c6:0a:29:33"
    );
    let c = d.inspect("m1");
    assert_eq!(
        c["NetworkSettings"]["Networks"]["bridge"]["MacAddress"],
        "92:d0:c6:0a:29:33"
    );
    assert_eq!(c["NetworkSettings"]["MacAddress"], "92:d0:c6:0a:29:33");
    // network connect with an endpoint MAC (API 1.44+), on a user network
    d.ok(&["network", "create", "macnet"]);
    let (code, b) = d.api(
        "POST",
        "/networks/macnet/connect",
        Some(r#"{"Container": "m1", "EndpointConfig": {"MacAddress": "02:00:00:00:00:42"}}"#),
    );
    assert_eq!(code, 200, "{b}");
    assert_eq!(
        d.ok(&["exec", "m1", "cat", "/sys/class/net/eth1/address"])
            .trim(),
        "02:00:00:00:00:42"
    );
    let c = d.inspect("m1");
    assert_eq!(
        c["NetworkSettings"]["Networks"]["macnet"]["MacAddress"],
        "02:00:00:00:00:42"
    );
    // A MAC another container on the network has: the start fails naming it (500, as
    // dockerd's failed starts and barge's for an IPv4 address in use).
    d.ok(&[
        "create",
        "--name",
        "m2",
        "--mac-address",
        "92:d0:c6:0a:29:33",
        "busybox",
        "sleep",
        "600",
    ]);
    let (code, b) = d.api("POST", "/containers/m2/start", None);
    assert_eq!(code, 500, "{b}");
    assert!(
        b.contains("MAC address 92:d0:c6:0a:29:33 is already in use on network bridge"),
        "{b}"
    );
    d.ok(&["rm", "m2"]);
    // A restart keeps the chosen addresses.
    d.ok(&["restart", "-t", "0", "m1"]);
    assert_eq!(
        d.ok(&["exec", "m1", "cat", "/sys/class/net/eth0/address"])
            .trim(),
        "92:d0:c6:0a:29:33"
    );
    // Bad MACs: 400 naming the problem, nothing created.
    let before = d.ok(&["ps", "-aq"]);
    for (body, word) in [
        (
            r#"{"Image": "busybox", "MacAddress": "01:00:5e:00:00:01"}"#,
            "multicast",
        ),
        (
            r#"{"Image": "busybox", "MacAddress": "92:d0:c6:0a:29"}"#,
            "invalid MAC address",
        ),
        (
            r#"{"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"bridge": {"MacAddress": "zz:d0:c6:0a:29:33"}}}}"#,
            "invalid MAC address",
        ),
        (
            r#"{"Image": "busybox", "MacAddress": "02:00:00:00:00:01", "HostConfig": {"NetworkMode": "host"}}"#,
            "conflicting options: mac-address and the network mode",
        ),
    ] {
        let (code, b) = d.api("POST", "/containers/create", Some(body));
        assert_eq!(code, 400, "{body}: {b}");
        assert!(b.contains(word), "{body}: {b}");
    }
    let (code, b) = d.api(
        "POST",
        "/networks/macnet/disconnect",
        Some(r#"{"Container": "m1"}"#),
    );
    assert_eq!(code, 200, "{b}");
    let (code, b) = d.api(
        "POST",
        "/networks/macnet/connect",
        Some(r#"{"Container": "m1", "EndpointConfig": {"MacAddress": "03:00:00:00:00:42"}}"#),
    );
    assert_eq!(code, 400, "{b}");
    assert!(b.contains("multicast"), "{b}");
    assert_eq!(d.ok(&["ps", "-aq"]), before);
    d.ok(&["rm", "-f", "m1"]);
    d.ok(&["network", "rm", "macnet"]);
    assert_clean(&d);
}

#[test]
fn legacy_links_on_the_default_bridge() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // Targets must exist (dockerd's 400 and words), and must run when the linker starts.
    let o = d.docker(&["create", "--link", "nosuch:db", "busybox", "true"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("could not get container for nosuch") && err.contains("No such container"),
        "{err}"
    );
    d.ok(&["create", "--name", "sleepy", "busybox", "sleep", "600"]);
    d.ok(&[
        "create", "--name", "early", "--link", "sleepy:s", "busybox", "true",
    ]);
    let o = d.docker(&["start", "early"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("Cannot link to a non running container: /sleepy AS /early/s"),
        "{err}"
    );
    // Host networking and links do not mix.
    let o = d.docker(&["create", "--network", "host", "--link", "sleepy", "busybox"]);
    assert!(text(&o.stderr).contains("host type networking can't be used with links"));

    d.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--hostname",
        "dbhost",
        "-e",
        "PASSWORD=s3cret",
        "--expose",
        "5432",
        "--expose",
        "53/udp",
        "busybox",
        "sleep",
        "600",
    ]);
    let db_ip = d.inspect("db")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        .as_str()
        .expect("db address")
        .to_string();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--link",
        "db:my-db",
        "--link",
        "db",
        "-e",
        "DB_NAME=mine",
        "busybox",
        "sleep",
        "600",
    ]);
    // Inspect shows the links as dockerd does: /target:/linker/alias.
    let links = d.inspect("web")["HostConfig"]["Links"].clone();
    assert_eq!(
        links,
        serde_json::json!(["/db:/web/my-db", "/db:/web/db"]),
        "{links}"
    );
    // The target lists the links among its names, as dockerd.
    let (code, body) = d.api("GET", "/v1.47/containers/json", None);
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).expect("list JSON");
    let db = list
        .as_array()
        .and_then(|l| l.iter().find(|c| c["Names"][0] == "/db"))
        .expect("db listed");
    assert_eq!(
        db["Names"],
        serde_json::json!(["/db", "/web/my-db", "/web/db"]),
        "{db}"
    );
    // /etc/hosts: alias, hostname, name.
    let hosts = d.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!("{db_ip}\tmy-db dbhost db")),
        "{hosts}"
    );
    assert!(hosts.contains(&format!("{db_ip}\tdb dbhost")), "{hosts}");
    let ping = d.docker(&["exec", "web", "ping", "-c", "1", "-W", "5", "my-db"]);
    assert!(ping.status.success(), "{}", text(&ping.stderr));
    // The environment of Docker's legacy links (ALIAS_PORT: the lowest port); the
    // container's own variables win.
    let env = d.ok(&["exec", "web", "env"]);
    for want in [
        format!("MY_DB_PORT=udp://{db_ip}:53"),
        format!("MY_DB_PORT_5432_TCP=tcp://{db_ip}:5432"),
        format!("MY_DB_PORT_5432_TCP_ADDR={db_ip}"),
        "MY_DB_PORT_5432_TCP_PORT=5432".to_string(),
        "MY_DB_PORT_5432_TCP_PROTO=tcp".to_string(),
        format!("MY_DB_PORT_53_UDP=udp://{db_ip}:53"),
        "MY_DB_PORT_53_UDP_PROTO=udp".to_string(),
        "MY_DB_NAME=/web/my-db".to_string(),
        "MY_DB_ENV_PASSWORD=s3cret".to_string(),
        "DB_ENV_PASSWORD=s3cret".to_string(),
        "DB_NAME=mine".to_string(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing:\n{env}");
    }
    assert!(!env.contains("_ENV_PATH="), "{env}");

    // `rm --link web/my-db` removes the link only: both containers stay, and the running
    // linker's /etc/hosts loses the alias.
    let o = d.docker(&["rm", "--link", "web"]);
    assert!(
        text(&o.stderr).contains("cannot remove the default link name"),
        "{}",
        text(&o.stderr)
    );
    let o = d.docker(&["rm", "--link", "web/nosuch"]);
    assert!(
        text(&o.stderr).contains("No such container"),
        "{}",
        text(&o.stderr)
    );
    d.ok(&["rm", "--link", "web/my-db"]);
    assert_eq!(
        d.inspect("web")["HostConfig"]["Links"],
        serde_json::json!(["/db:/web/db"])
    );
    let hosts = d.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("my-db"), "{hosts}");
    assert!(hosts.contains(&format!("{db_ip}\tdb dbhost")), "{hosts}");
    let names = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(names.contains("web") && names.contains("db"), "{names}");

    // Renaming the target or the linker keeps the links (dockerd tracks them by container);
    // a restart finds the renamed target.
    d.ok(&["rename", "db", "db2"]);
    d.ok(&["rename", "web", "web2"]);
    assert_eq!(
        d.inspect("web2")["HostConfig"]["Links"],
        serde_json::json!(["/db2:/web2/db"])
    );
    d.ok(&["restart", "-t", "0", "web2"]);
    let env = d.ok(&["exec", "web2", "env"]);
    assert!(env.lines().any(|l| l == "DB_NAME=mine"), "{env}");
    assert!(env.lines().any(|l| l == "DB_ENV_PASSWORD=s3cret"), "{env}");
    let hosts = d.ok(&["exec", "web2", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!("{db_ip}\tdb dbhost db2")),
        "{hosts}"
    );
    d.ok(&["rename", "db2", "db"]);
    d.ok(&["rename", "web2", "web"]);

    // docker-py's test_create_with_links: a dict of links, the env they give.
    let script = r#"
import docker, sys
api = docker.APIClient(base_url=sys.argv[1])
ids = []
for n in ("pylink1", "pylink2"):
    c = api.create_container("busybox", "cat", detach=True, stdin_open=True, environment={"FOO": "1"}, name=n)
    api.start(c)
    ids.append(c["Id"])
c = api.create_container("busybox", "env", host_config=api.create_host_config(
    links={"pylink1": "mylink1", "pylink2": "mylink2"}, network_mode="bridge"))
api.start(c)
assert api.wait(c)["StatusCode"] == 0
logs = api.logs(c).decode()
for p in ("MYLINK1", "MYLINK2"):
    assert p + "_NAME=" in logs, logs
    assert p + "_ENV_FOO=1" in logs, logs
name = api.inspect_container(c)["Name"][1:]
api.remove_container(name + "/mylink1", link=True)
links = api.inspect_container(c)["HostConfig"]["Links"]
assert links == ["/pylink2:/" + name + "/mylink2"], links
print("PY OK")
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(format!("unix://{}", d.sock.display()))
        .output()
        .expect("python3");
    assert!(
        text(&o.stdout).contains("PY OK"),
        "{}\n{}",
        text(&o.stderr),
        d.log()
    );
    // Removing a target removes the links to it: the linker starts again without it.
    d.ok(&["rm", "-f", "db"]);
    assert_eq!(
        d.inspect("web")["HostConfig"]["Links"],
        serde_json::json!([])
    );
    d.ok(&["restart", "-t", "0", "web"]);
    let env = d.ok(&["exec", "web", "env"]);
    assert!(!env.contains("DB_ENV_"), "{env}");
    for c in ["web", "early", "sleepy", "pylink1", "pylink2"] {
        d.ok(&["rm", "-f", c]);
    }
}

#[test]
fn links_on_a_user_network_are_dns_aliases_of_the_linking_container_only() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.ok(&["network", "create", "lnet"]);
    // docker-py's api_network_test: links in the endpoint config at create, and at connect;
    // the target is started after the linking container.
    let script = r#"
import docker, sys
api = docker.APIClient(base_url=sys.argv[1])
def run(**kw):
    c = api.create_container("busybox", "sleep 600", **kw)
    api.start(c)
    return c
a = run(host_config=api.create_host_config(network_mode="lnet"),
        networking_config=api.create_networking_config({
            "lnet": api.create_endpoint_config(links=[("upstream", "bar")])}))
assert api.inspect_container(a)["NetworkSettings"]["Networks"]["lnet"]["Links"] == ["upstream:bar"]
b = run(host_config=api.create_host_config(network_mode="lnet"), name="plain")
api.disconnect_container_from_network(b, "lnet")
api.connect_container_to_network(b, "lnet", links=[("upstream", "baz")])
assert api.inspect_container(b)["NetworkSettings"]["Networks"]["lnet"]["Links"] == ["upstream:baz"]
run(host_config=api.create_host_config(network_mode="lnet"), name="upstream")
def lookup(c, name):
    e = api.exec_create(c, ["nslookup", name])
    out = api.exec_start(e).decode()
    return api.exec_inspect(e)["ExitCode"], out
up = api.inspect_container("upstream")["NetworkSettings"]["Networks"]["lnet"]["IPAddress"]
code, out = lookup(a, "bar")
assert code == 0 and up in out, out
code, out = lookup(b, "baz")
assert code == 0 and up in out, out
# An alias is the linking container's alone.
code, out = lookup(b, "bar")
assert code != 0, out
code, out = lookup("upstream", "bar")
assert code != 0, out
print("PY OK")
"#;
    let o = std::process::Command::new("ip")
        .args(["netns", "exec", d.netns(), "python3", "-c", script])
        .arg(format!("unix://{}", d.sock.display()))
        .output()
        .expect("python3");
    assert!(
        text(&o.stdout).contains("PY OK"),
        "{}\n{}",
        text(&o.stderr),
        d.log()
    );
    // The CLI's --link on a user network does the same.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "lnet",
        "--link",
        "upstream:qux",
        "busybox",
        "sleep",
        "600",
    ]);
    let o = d.docker(&["exec", "cli", "nslookup", "qux"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let out = d.sh(&format!(
        "{} -H unix://{} run --rm --network lnet --link upstream:quux busybox nslookup quux",
        env!("CARGO_BIN_EXE_barge"),
        d.sock.display()
    ));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let all = d.ok(&["ps", "-aq"]);
    for id in all.lines() {
        d.ok(&["rm", "-f", id]);
    }
    d.ok(&["network", "rm", "lnet"]);
}
