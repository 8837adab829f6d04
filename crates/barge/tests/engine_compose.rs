//! docker-compose (Debian's 1.29, on docker-py) against barge: the daemon runs inside a
//! network namespace the test creates and deletes (see engine/mod.rs); compose talks to its
//! socket; published ports are reached from the namespace's host side. Each test is a
//! project users would write: services that find each other by name, ports, volumes, env,
//! builds, health checks, restart policies, one-off runs, scaling and `down -v`.

mod engine;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use engine::{eventually, skip, Daemon};
use serde_json::Value;

/// A compose project in a directory of its own.
struct Project<'a> {
    d: &'a Daemon,
    dir: PathBuf,
    name: String,
}

impl<'a> Project<'a> {
    /// Writes `files` (path relative to the project dir, content) and returns the project.
    fn new(d: &'a Daemon, name: &str, files: &[(&str, &str)]) -> Project<'a> {
        let dir = d.dir.path().join(name);
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write");
        }
        Project {
            d,
            dir,
            name: name.to_string(),
        }
    }

    /// `docker-compose -H unix://<sock> -p <name> args...` in the project dir (bounded in
    /// time so a hang fails the test instead of stalling it).
    fn compose(&self, args: &[&str]) -> Output {
        let host = format!("unix://{}", self.d.sock.display());
        let out = Command::new("timeout")
            .args([
                "180",
                "docker-compose",
                "--ansi",
                "never",
                "-H",
                &host,
                "-p",
                &self.name,
            ])
            .args(args)
            .current_dir(&self.dir)
            .env("DOCKER_HOST", &host)
            .env("DOCKER_CONFIG", self.d.dir.path().join("docker-config"))
            // Builds through the API's POST /build (docker-py), not the docker CLI.
            .env("COMPOSE_DOCKER_CLI_BUILD", "0")
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) => o,
            Err(e) => panic!("docker-compose: {e} (scripts/setup.sh installs it)"),
        }
    }

    /// [`Project::compose`], asserting success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.compose(args);
        assert!(
            o.status.success(),
            "docker-compose {args:?} failed ({:?}):\n{}\n{}\ndaemon log:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.d.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Container ids of `service` (all services when empty), stopped ones included.
    fn ids(&self, service: &str) -> Vec<String> {
        let mut args = vec!["ps", "-q"];
        if !service.is_empty() {
            args.push(service);
        }
        self.ok(&args)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// `logs --no-color service`: stdout.
    fn logs(&self, service: &str) -> String {
        self.ok(&["logs", "--no-color", service])
    }
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Nothing of a project is left: no container, no user network, no volume, and in the
/// namespace no link but loopback and the default bridge.
fn assert_nothing_left(d: &Daemon) {
    assert_eq!(d.ok(&["ps", "-aq"]), "", "containers left");
    let nets = lines(&d.ok(&["network", "ls", "--format", "{{.Name}}"]));
    let mut nets: Vec<&str> = nets.iter().map(String::as_str).collect();
    nets.sort();
    assert_eq!(nets, ["bridge", "host", "none"], "networks left");
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "", "volumes left");
    let only_ours = || {
        d.host("ip -o link show")
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
            .all(|n| n == "lo" || n == "barge0")
    };
    assert!(
        eventually(10, only_ours),
        "links left: {}",
        d.host("ip -o link show")
    );
}

const APP: &str = r#"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports:
      - "8080:80"
    volumes:
      - data:/data
      - ./bind:/bind:ro
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1/"]
      interval: 1s
      timeout: 2s
      retries: 5
    restart: unless-stopped
  client:
    image: busybox
    entrypoint: ["sh", "-c"]
    command: ["echo client-env $$FOO $$BAR $$BAZ; while true; do wget -qO- http://web/; sleep 1; done"]
    env_file: app.env
    environment:
      BAZ: baz1
    depends_on:
      web:
        condition: service_healthy
  built:
    build: ./ctx
    image: cmp-built:1
  flaky:
    image: busybox
    command: ["sh", "-c", "echo flaky-run; exit 3"]
    restart: on-failure:2
volumes:
  data: {}
"#;

const DOCKERFILE: &str = "FROM busybox\nENV STAGE=built\nRUN echo built-by-compose > /built.txt\nCMD [\"cat\", \"/built.txt\"]\n";

#[test]
fn compose_app_lifecycle() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let p = Project::new(
        &d,
        "app",
        &[
            ("docker-compose.yml", APP),
            ("app.env", "FOO=from-env-file\nBAR=bar1\n"),
            ("bind/file.txt", "from-bind\n"),
            ("ctx/Dockerfile", DOCKERFILE),
        ],
    );
    p.ok(&["build"]);
    let img = d.inspect("cmp-built:1");
    assert_eq!(
        img["Config"]["Cmd"],
        serde_json::json!(["cat", "/built.txt"])
    );
    p.ok(&["up", "-d"]);

    // One container per service, numbered 1, no duplicates in ps.
    let all = p.ids("");
    assert_eq!(all.len(), 4, "ps -q: {all:?}");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 4, "{all:?}");
    for s in ["web", "client", "built", "flaky"] {
        let ids = p.ids(s);
        assert_eq!(ids.len(), 1, "{s}: {ids:?}");
        let c = d.inspect(&ids[0]);
        assert_eq!(c["Name"], format!("/app_{s}_1"));
        assert_eq!(c["Config"]["Labels"]["com.docker.compose.service"], s);
    }
    let ps = p.ok(&["ps"]);
    assert!(
        ps.lines().any(|l| l.starts_with("app_web_1")
            && l.contains("Up (healthy)")
            && l.contains("0.0.0.0:8080->80/tcp")),
        "{ps}"
    );

    // depends_on with service_healthy: web was healthy before client started.
    let web = d.inspect("app_web_1");
    assert_eq!(web["State"]["Health"]["Status"], "healthy");
    assert_eq!(web["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
    let client = d.inspect("app_client_1");
    assert!(
        client["State"]["StartedAt"].as_str() > web["State"]["StartedAt"].as_str(),
        "client started before web"
    );
    assert_eq!(
        client["Config"]["Entrypoint"],
        serde_json::json!(["sh", "-c"])
    );

    // The client finds web by its service name on the project's network; env and env_file.
    assert!(
        eventually(20, || p.logs("client").contains("hello-web")),
        "{}",
        p.logs("client")
    );
    assert!(
        p.logs("client")
            .contains("client-env from-env-file bar1 baz1"),
        "{}",
        p.logs("client")
    );
    // The published port from the namespace's host side.
    assert!(eventually(10, || d
        .wget("http://127.0.0.1:8080/")
        .contains("hello-web")));

    // port, top, images: what compose shows of the running services.
    assert_eq!(p.ok(&["port", "web", "80"]).trim(), "0.0.0.0:8080");
    assert!(p.ok(&["top", "web"]).contains("httpd"));
    let images = p.ok(&["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("app_built_1") && l.contains("cmp-built")),
        "{images}"
    );

    // exec -T: the bind mount (read-only), the named volume, exit codes.
    assert_eq!(
        p.ok(&["exec", "-T", "web", "cat", "/bind/file.txt"]).trim(),
        "from-bind"
    );
    let ro = p.compose(&["exec", "-T", "web", "touch", "/bind/new"]);
    assert!(!ro.status.success(), "bind mount is writable");
    p.ok(&["exec", "-T", "web", "sh", "-c", "echo kept > /data/f"]);
    let code = p.compose(&["exec", "-T", "web", "sh", "-c", "exit 7"]);
    assert_eq!(code.status.code(), Some(7));
    let env = p.ok(&["exec", "-T", "client", "env"]);
    for kv in ["FOO=from-env-file", "BAR=bar1", "BAZ=baz1"] {
        assert!(env.lines().any(|l| l == kv), "{kv} not in {env}");
    }

    // The built image ran its CMD; its logs are kept after it exited.
    assert!(p.logs("built").contains("built-by-compose"));
    assert_eq!(d.inspect("app_built_1")["State"]["ExitCode"], 0);

    // on-failure:2: two restarts, then it stays exited with its code.
    assert!(
        eventually(30, || {
            let c = d.inspect("app_flaky_1");
            c["RestartCount"] == 2 && c["State"]["Status"] == "exited"
        }),
        "{}",
        d.inspect("app_flaky_1")
    );
    assert_eq!(d.inspect("app_flaky_1")["State"]["ExitCode"], 3);
    assert_eq!(p.logs("flaky").matches("flaky-run").count(), 3);

    // run --rm: a one-off container on the project's network, with the service's volumes.
    let out = p.ok(&["run", "--rm", "client", "wget -qO- http://web/"]);
    assert!(out.contains("hello-web"), "{out}");
    let out = p.ok(&["run", "--rm", "--no-deps", "web", "cat", "/data/f"]);
    assert_eq!(out.trim(), "kept");
    let code = p.compose(&["run", "--rm", "--no-deps", "built", "sh", "-c", "exit 4"]);
    assert_eq!(code.status.code(), Some(4));
    assert_eq!(
        d.ok(&[
            "ps",
            "-aq",
            "--filter",
            "label=com.docker.compose.oneoff=True"
        ]),
        "",
        "one-off containers left"
    );

    // stop / start.
    p.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(d.inspect("app_web_1")["State"]["Status"], "exited");
    assert!(!d.wget("http://127.0.0.1:8080/").contains("hello-web"));
    p.ok(&["start", "web"]);
    assert!(eventually(10, || d
        .wget("http://127.0.0.1:8080/")
        .contains("hello-web")));

    // scale up and down, both spellings.
    p.ok(&["up", "-d", "--no-recreate", "--scale", "client=3"]);
    let ids = p.ids("client");
    assert_eq!(ids.len(), 3, "{ids:?}");
    let mut names: Vec<String> = ids
        .iter()
        .map(|i| {
            d.inspect(i)["Name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["/app_client_1", "/app_client_2", "/app_client_3"]);
    p.ok(&["scale", "client=1"]);
    assert_eq!(p.ids("client").len(), 1);

    // A second `up -d` finds everything up to date: nothing recreated.
    let again = p.compose(&["up", "-d"]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(!err.contains("Recreating"), "{err}");
    assert_eq!(d.inspect("app_web_1")["Id"], web["Id"]);

    p.ok(&["down", "-v", "-t", "1"]);
    assert_nothing_left(&d);
    // The built image stays (down removes images only with --rmi).
    d.inspect("cmp-built:1");
}

const NET: &str = r#"
services:
  srv:
    image: busybox
    command: ["sh", "-c", "echo hi-$$HOSTNAME > /index.html; exec httpd -f -p 80 -h /"]
    networks:
      backend:
        aliases:
          - api.internal
  probe:
    image: busybox
    command: ["sleep", "3600"]
    networks:
      - backend
      - front
  batch:
    image: busybox
    command: ["sh", "-c", "echo batch-out; exit 5"]
    profiles: ["batch"]
networks:
  backend:
    labels:
      tier: back
  front: {}
"#;

#[test]
fn compose_custom_networks_aliases_scale() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let p = Project::new(&d, "net", &[("docker-compose.yml", NET)]);
    p.ok(&["up", "-d", "--scale", "srv=2"]);
    let srv = p.ids("srv");
    assert_eq!(srv.len(), 2, "{srv:?}");
    let srv_ips: HashSet<String> = srv
        .iter()
        .map(|i| {
            d.inspect(i)["NetworkSettings"]["Networks"]["net_backend"]["IPAddress"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(srv_ips.len(), 2, "{srv_ips:?}");

    // The alias and the service name reach the replicas; probe is on both networks.
    for name in ["api.internal", "srv"] {
        let out = p.ok(&[
            "exec",
            "-T",
            "probe",
            "wget",
            "-qO-",
            &format!("http://{name}/"),
        ]);
        assert!(out.starts_with("hi-"), "{name}: {out}");
    }
    let probe = d.inspect("net_probe_1");
    let nets = probe["NetworkSettings"]["Networks"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut names: Vec<&String> = nets.keys().collect();
    names.sort();
    assert_eq!(names, ["net_backend", "net_front"]);
    let aliases =
        d.inspect(&srv[0])["NetworkSettings"]["Networks"]["net_backend"]["Aliases"].clone();
    assert!(
        aliases
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "api.internal") && a.iter().any(|x| x == "srv")),
        "{aliases}"
    );
    // The network carries compose's labels and the user's.
    let net: Value =
        serde_json::from_str(&d.ok(&["network", "inspect", "net_backend"])).expect("network JSON");
    assert_eq!(net[0]["Labels"]["tier"], "back");
    assert_eq!(net[0]["Labels"]["com.docker.compose.network"], "backend");
    assert_eq!(
        net[0]["Containers"].as_object().map(|m| m.len()),
        Some(3),
        "{}",
        net[0]["Containers"]
    );

    // Label filters are ANDed (compose finds a service's containers by project + service).
    let filter = |f: &str| {
        let (code, body) = d.api(
            "GET",
            &format!("/containers/json?all=1&filters={}", urlencode(f)),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        v.as_array().map(Vec::len).unwrap_or_default()
    };
    assert_eq!(
        filter(
            r#"{"label":["com.docker.compose.project=net","com.docker.compose.service=probe"]}"#
        ),
        1
    );
    assert_eq!(
        filter(r#"{"label":["com.docker.compose.project=net","com.docker.compose.service=srv"]}"#),
        2
    );
    assert_eq!(
        filter(
            r#"{"label":["com.docker.compose.project=other","com.docker.compose.service=srv"]}"#
        ),
        0
    );
    let (code, body) = d.api(
        "GET",
        &format!(
            "/networks?filters={}",
            urlencode(r#"{"label":["tier=back","com.docker.compose.network=front"]}"#)
        ),
        None,
    );
    assert_eq!((code, body.trim()), (200, "[]"));

    // A second up leaves the networks alone (their options match what compose asked for).
    let again = p.compose(&["up", "-d", "--scale", "srv=2"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let (_, body) = d.api("GET", "/networks/net_backend", None);
    let same: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(same["Id"], net[0]["Id"]);

    // A profile's service in the foreground: its output, and its exit code through
    // --exit-code-from (attach + wait).
    let o = p.compose(&[
        "--profile",
        "batch",
        "up",
        "--no-color",
        "--exit-code-from",
        "batch",
        "batch",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("batch-out"), "{text}");

    p.ok(&["--profile", "batch", "down", "-t", "1"]);
    assert_nothing_left(&d);
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
