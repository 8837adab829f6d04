//! End-to-end: volumes, resource limits and stats through the real docker CLI (and docker-py)
//! against `barge daemon` on its own roots.

mod engine;

use std::time::{Duration, Instant};

use engine::{eventually, skip, Daemon};

fn cg(ctl: &str, id: &str, file: &str) -> String {
    std::fs::read_to_string(format!("/sys/fs/cgroup/{ctl}/barge/{id}/{file}"))
        .unwrap_or_else(|e| panic!("read {ctl}/{file}: {e}"))
        .trim()
        .to_string()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("bad JSON {s:?}: {e}"))
}

#[test]
fn volumes_persist_share_copy_up_and_refuse() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    // create, inspect, write, survive rm
    d.ok(&["volume", "create", "--label", "team=data", "vol1"]);
    let mp = d.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Mountpoint}} {{.Scope}} {{.Driver}}",
        "vol1",
    ]);
    assert!(
        mp.starts_with(
            d.dir
                .path()
                .join("data/volumes/vol1/_data")
                .to_str()
                .expect("utf8")
        ),
        "{mp}"
    );
    assert!(mp.ends_with(" local local"), "{mp}");
    d.ok(&[
        "run",
        "--name",
        "w1",
        "-v",
        "vol1:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    d.ok(&["rm", "w1"]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "vol1:/data:ro",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept"
    );
    // two containers share one volume, one writing while the other reads
    d.ok(&[
        "run",
        "-d",
        "--name",
        "reader",
        "-v",
        "vol1:/shared",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "vol1:/data",
        "busybox",
        "sh",
        "-c",
        "echo shared > /data/g",
    ]);
    assert_eq!(d.ok(&["exec", "reader", "cat", "/shared/g"]), "shared");
    // in use: refused
    let o = d.docker(&["volume", "rm", "vol1"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("in use"),
        "{o:?}"
    );
    let (code, _) = d.api("DELETE", "/volumes/vol1?force=1", None);
    assert_eq!(code, 409);
    let m = d.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{end}}",
        "reader",
    ]);
    assert_eq!(m, "volume vol1 /shared true");
    // the daemon is killed -9 and restarted: the data is still there
    d.ok(&["rm", "-f", "reader"]);
    d.kill9();
    d.spawn();
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "vol1:/data",
            "busybox",
            "cat",
            "/data/f",
            "/data/g"
        ]),
        "kept\nshared"
    );
    // filters
    d.ok(&["volume", "create", "other"]);
    assert_eq!(
        d.ok(&["volume", "ls", "-q", "--filter", "label=team=data"]),
        "vol1"
    );
    assert_eq!(
        d.ok(&["volume", "ls", "-q", "--filter", "name=oth"]),
        "other"
    );
    // copy-up keeps ownership and modes; nocopy does not copy
    d.ok(&["run", "--name", "mk", "busybox", "sh", "-c",
        "mkdir -p /seed/sub && echo s > /seed/sub/file && chown -R 1234:5678 /seed/sub && chmod 0750 /seed/sub"]);
    d.ok(&["commit", "mk", "seeded:1"]);
    let st = d.ok(&[
        "run",
        "--rm",
        "-v",
        "fresh:/seed",
        "seeded:1",
        "stat",
        "-c",
        "%u:%g %a",
        "/seed/sub",
        "/seed/sub/file",
    ]);
    assert_eq!(st, "1234:5678 750\n1234:5678 644");
    let host = d.dir.path().join("data/volumes/fresh/_data/sub/file");
    assert_eq!(std::fs::read_to_string(&host).expect("copied file"), "s\n");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "empty:/seed:nocopy",
            "seeded:1",
            "ls",
            "/seed"
        ]),
        ""
    );
    // anonymous volumes: -v /path, removed by rm -v
    d.ok(&[
        "create", "--name", "anon", "-v", "/scratch", "busybox", "true",
    ]);
    let name = d.ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "anon"]);
    assert_eq!(name.len(), 64, "{name}");
    assert!(d.ok(&["volume", "ls", "-q"]).contains(&name));
    d.ok(&["rm", "-v", "anon"]);
    assert!(!d.ok(&["volume", "ls", "-q"]).contains(&name));
    // bad names, missing --mount bind source, -v bind source created
    let (code, body) = d.api("POST", "/volumes/create", Some(r#"{"Name":"a/b"}"#));
    assert_eq!(code, 400, "{body}");
    let (code, _) = d.api("POST", "/volumes/create", Some(r#"{"Name":".."}"#));
    assert_eq!(code, 400);
    let (code, _) = d.api(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Binds":["../x:/data"]}}"#),
    );
    assert_eq!(code, 400);
    let missing = d.dir.path().join("no-such-dir");
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={},target=/m", missing.display()),
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not exist"),
        "{o:?}"
    );
    d.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/m", missing.display()),
        "busybox",
        "touch",
        "/m/x",
    ]);
    assert!(missing.join("x").exists());
    // --mount type=volume and tmpfs, --volumes-from
    d.ok(&[
        "run",
        "-d",
        "--name",
        "src",
        "--mount",
        "type=volume,source=mvol,target=/mv",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert!(d.ok(&["exec", "src", "df", "/t"]).contains("1024"));
    d.ok(&["exec", "src", "sh", "-c", "echo from > /mv/x"]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "src:ro",
            "busybox",
            "cat",
            "/mv/x"
        ]),
        "from"
    );
    d.ok(&["rm", "-f", "src"]);
    // a tmpfs volume from driver options
    d.ok(&[
        "volume",
        "create",
        "--driver",
        "local",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=2m",
        "tvol",
    ]);
    assert!(d
        .ok(&["run", "--rm", "-v", "tvol:/tv", "busybox", "df", "/tv"])
        .contains("2048"));
    d.ok(&["volume", "rm", "tvol"]);
    // prune removes unused volumes (with --all also named ones)
    let pruned = d.ok(&["volume", "prune", "-a", "-f"]);
    assert!(
        pruned.contains("other") && pruned.contains("vol1"),
        "{pruned}"
    );
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn limits_oom_pids_cpu_update_and_stats() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // OOM: reported as docker does
    let since = d.ok(&["version", "-f", "{{.Server.Version}}"]);
    assert!(!since.is_empty());
    let o = d.docker(&[
        "run",
        "--name",
        "oom",
        "-m",
        "32m",
        "--memory-swap",
        "32m",
        "busybox",
        "sh",
        "-c",
        "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
    ]);
    assert_eq!(o.status.code(), Some(137), "{o:?}");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.OOMKilled}} {{.State.ExitCode}}",
            "oom"
        ]),
        "true 137"
    );
    std::thread::sleep(Duration::from_millis(1100));
    let ev = d.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        "0s",
        "--filter",
        "container=oom",
        "--format",
        "{{.Action}}",
    ]);
    assert!(ev.lines().any(|l| l == "oom"), "{ev}");
    // --pids-limit stops a fork loop
    let id = d.ok(&["run", "-d", "--pids-limit", "10", "busybox", "sh", "-c", "sh -c 'i=0; while [ $i -lt 40 ]; do sleep 100 & i=$((i+1)); done' 2>&1; echo done; exec sleep 100"]);
    assert!(
        eventually(10, || d.ok(&["logs", &id]).contains("done")),
        "{}",
        d.ok(&["logs", &id])
    );
    assert!(
        d.ok(&["logs", &id]).contains("fork"),
        "{}",
        d.ok(&["logs", &id])
    );
    assert_eq!(cg("pids", &id, "pids.max"), "10");
    let cur: u64 = cg("pids", &id, "pids.current").parse().expect("pids");
    assert!((2..=10).contains(&cur), "{cur}");
    d.ok(&["rm", "-f", &id]);
    // --cpus 0.5 holds a busy loop near half a CPU
    let id = d.ok(&[
        "run",
        "-d",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let u0: u64 = cg("cpuacct", &id, "cpuacct.usage").parse().expect("usage");
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let u1: u64 = cg("cpuacct", &id, "cpuacct.usage").parse().expect("usage");
    let ratio = (u1 - u0) as f64 / t0.elapsed().as_nanos() as f64;
    // Capped at half a CPU (throttled); the lower bound is wide as the 2 build cores are shared.
    assert!((0.1..=0.7).contains(&ratio), "cpu ratio {ratio}");
    let throttled = cg("cpu", &id, "cpu.stat");
    assert!(!throttled.contains("nr_throttled 0"), "{throttled}");
    eprintln!("--cpus 0.5: busy loop used {ratio:.2} CPU");
    assert_eq!(cg("cpu", &id, "cpu.cfs_quota_us"), "50000");
    d.ok(&["rm", "-f", &id]);
    // stats match the cgroup files; update changes the memory limit of a running container
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "st",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "sleep 1000 & sleep 1000 & wait",
    ]);
    assert_eq!(cg("memory", &id, "memory.limit_in_bytes"), "67108864");
    let (code, body) = d.api("GET", "/containers/st/stats?stream=0", None);
    assert_eq!(code, 200, "{body}");
    let s = json(&body);
    assert_eq!(s["memory_stats"]["limit"], 67108864);
    assert_eq!(
        s["pids_stats"]["current"].as_u64(),
        Some(cg("pids", &id, "pids.current").parse().expect("n"))
    );
    let total = s["cpu_stats"]["cpu_usage"]["total_usage"]
        .as_u64()
        .expect("cpu");
    let after: u64 = cg("cpuacct", &id, "cpuacct.usage").parse().expect("usage");
    assert!(total > 0 && total <= after, "{total} {after}");
    assert!(s["precpu_stats"]["system_cpu_usage"].as_u64().is_some());
    assert!(s["networks"]["eth0"]["rx_bytes"].is_u64() || s["networks"].as_object().is_some());
    let usage = s["memory_stats"]["usage"].as_u64().expect("usage");
    let cg_usage: u64 = cg("memory", &id, "memory.usage_in_bytes")
        .parse()
        .expect("n");
    assert!(usage.abs_diff(cg_usage) < 4 << 20, "{usage} vs {cg_usage}");
    let table = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.MemUsage}}|{{.PIDs}}",
        "st",
    ]);
    assert!(
        table.starts_with("st|") && table.contains("/ 64MiB|3"),
        "{table}"
    );
    d.ok(&["update", "-m", "100m", "--memory-swap", "200m", "st"]);
    assert_eq!(cg("memory", &id, "memory.limit_in_bytes"), "104857600");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "st"]),
        "104857600"
    );
    // docker-py
    let py = format!(
        "import docker\nc = docker.DockerClient(base_url='unix://{}')\n\
         s = c.containers.get('st').stats(stream=False)\nassert s['memory_stats']['limit'] == 104857600, s\n\
         v = c.volumes.create(name='pyvol', labels={{'k': 'v'}})\nassert c.volumes.get('pyvol').attrs['Labels'] == {{'k': 'v'}}\n\
         assert 'pyvol' in [x.name for x in c.volumes.list()]\nv.remove()\nprint('ok')\n",
        d.sock.display()
    );
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(&py)
        .output()
        .expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    d.ok(&["stop", "-t", "1", "st"]);
    let o = d.docker(&["update", "-m", "80m", "st"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not running"),
        "{o:?}"
    );
    // limits the kernel refuses or Docker's checks refuse
    let o = d.docker(&["run", "--rm", "-m", "1m", "busybox", "true"]);
    assert!(!o.status.success());
}
