#!/bin/bash
# Engine benchmark: `run --rm busybox true` end to end through each engine's API, side by side
# in one run: barge (its CLI and the real docker CLI against barge's socket), dockerd (the docker
# CLI) and podman; then N idle containers (`sleep`) started with `run -d`: time per container,
# barge's per-container memory (monitor PSS + daemon growth) and `ps` of them all.
# Every daemon runs in a network namespace and mount namespace of its own that this script
# makes and removes (podman, which has no daemon, runs in that network namespace too). The
# `run --rm` comparison is made twice: with --network none, so all engines do the same work,
# and on each engine's default bridge network (the issue's target command as typed).
# Prints means and ratios. Needs root.
#
#   [BARGE_BIN=path] bench/engine.sh [RUNS] [IDLE]     (defaults: 30 runs, 200 idle containers)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
idle=${2:-200}
sh scripts/setup.sh
. bench/lib.sh
bench_barge
bench_init barge-bench-engine
ns=barge-bench-$$
bench_cleanup_hook() {
    podman --root "$work/podman" --runroot "$work/podman-run" rm -af -t 0 >/dev/null 2>&1
    podman --root "$work/podman" --runroot "$work/podman-run" system reset -f >/dev/null 2>&1
}
bench_hugetlb
bench_netns_add "$ns"
bench_busybox "$work"

mkdir -p "$work/barge" "$work/dockerd"
bench_daemon "$ns" "$work/barge.sock" "$work/barge.log" "$barge" daemon --host "unix://$work/barge.sock" \
    --data-root "$work/barge/data" --exec-root "$work/barge/exec" --pidfile "$work/barge/pid"
bench_daemon "$ns" "$work/dockerd.sock" "$work/dockerd.log" /usr/sbin/dockerd --ip6tables=false \
    -H "unix://$work/dockerd.sock" --data-root "$work/dockerd/data" \
    --exec-root "$work/dockerd/exec" --pidfile "$work/dockerd/pid"
wait_sock "$work/barge.sock"
wait_sock "$work/dockerd.sock"

B="$barge -H unix://$work/barge.sock"
D="$docker_cli -H unix://$work/dockerd.sock"
DB="$docker_cli -H unix://$work/barge.sock"
P="podman --root $work/podman --runroot $work/podman-run --cgroup-manager cgroupfs --events-backend none"
# podman makes its default bridge in the namespace it runs in: the bench's.
PN="nsenter --net=/run/netns/$ns $P"
# This host's hard rlimits are below podman's rootful defaults (1048576): ask for less.
PL="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
$B import "$work/busybox.tar" busybox >/dev/null
$D import "$work/busybox.tar" busybox >/dev/null
$P import "$work/busybox.tar" busybox >/dev/null

echo "== run --rm busybox true ($runs runs) =="
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/run.json" \
    -n barge "$B run --rm --network none busybox true" \
    -n docker-cli-on-barge "$DB run --rm --network none busybox true" \
    -n dockerd "$D run --rm --network none busybox true" \
    -n podman "$P run --rm --network none $PL busybox true"

echo "== run --rm busybox true, default bridge network ($runs runs) =="
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/run-bridge.json" \
    -n barge "$B run --rm busybox true" \
    -n docker-cli-on-barge "$DB run --rm busybox true" \
    -n dockerd "$D run --rm busybox true" \
    -n podman "$PN run --rm $PL busybox true"

echo "== $idle idle containers =="
pss_of() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
daemon_before=$(pss_of "$(cat "$work/barge/pid")")
t0=$(date +%s.%N)
for i in $(seq "$idle"); do $B run -d --network none busybox sleep 3600 >/dev/null; done
t1=$(date +%s.%N)
for i in $(seq "$idle"); do $P run -d --network none $PL busybox sleep 3600 >/dev/null; done
t2=$(date +%s.%N)
daemon_after=$(pss_of "$(cat "$work/barge/pid")")
monitors=$(python3 - "$work/barge/exec" <<'PY'
import os, sys
# The monitors are the parents of the containers' init processes: every process whose
# command line is `barge monitor` and that runs under this bench's exec root.
total = n = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        # Monitors forked by the zygote keep its argv (`barge monitor-zygote <exec root>`);
        # the zygote itself counts too.
        if len(cmd) > 1 and cmd[1] in (b"monitor", b"monitor-zygote") and sys.argv[1].encode() in b" ".join(cmd):
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1]); n += 1
    except OSError:
        pass
print(n, total)
PY
)
read -r n_mon mon_pss <<<"$monitors"
hyperfine -N --warmup 2 --runs 10 --export-json "$work/ps.json" \
    -n "barge ps" "$B ps -q" -n "podman ps" "$P ps -q" >/dev/null

echo "== summary =="
python3 - "$work/run.json" "$work/run-bridge.json" "$work/ps.json" "$idle" "$t0" "$t1" "$t2" "$daemon_before" "$daemon_after" "$n_mon" "$mon_pss" <<'PY'
import json, sys
args = sys.argv[1:]
ps = {r["command"]: r for r in json.load(open(args[2]))["results"]}
idle = int(args[3]); t0, t1, t2 = map(float, args[4:7])
d0, d1, nmon, mpss = map(int, args[7:11])
for title, f in (("--network none", args[0]), ("default bridge", args[1])):
    run = {r["command"]: r for r in json.load(open(f))["results"]}
    m = {k: v["mean"] * 1000 for k, v in run.items()}
    for k in m:
        print(f"run --rm ({title}) {k:20s} mean {m[k]:7.1f} ms  sd {run[k]['stddev']*1000:5.1f} ms")
    print(f"ratio ({title}) dockerd/barge {m['dockerd']/m['barge']:.1f}x  podman/barge {m['podman']/m['barge']:.1f}x  "
          f"podman/docker-cli-on-barge {m['podman']/m['docker-cli-on-barge']:.1f}x")
bb, pp = (t1 - t0) / idle * 1000, (t2 - t1) / idle * 1000
print(f"run -d per container: barge {bb:.1f} ms  podman {pp:.1f} ms  ratio podman/barge {pp/bb:.1f}x")
per = (mpss + max(d1 - d0, 0)) / idle
print(f"barge memory per idle container: {per:.0f} KiB (monitors+zygote {nmon}, PSS {mpss} KiB; daemon growth {d1-d0} KiB)")
print(f"ps of {idle}: barge {ps['barge ps']['mean']*1000:.1f} ms  podman {ps['podman ps']['mean']*1000:.1f} ms")
PY
