#!/bin/bash
# Runtime benchmark: `run` of /bin/true in one busybox bundle (own pid, net, ipc, uts and
# mount namespaces, as `runc spec` makes it) by barge-runc, crun and runc, in one hyperfine
# run; then the resident memory of each runtime's own process while its container runs.
# Prints means and the ratios barge/crun and barge/runc. Needs root.
#
#   bench/runtime.sh [RUNS]     (default 50 runs after 5 warm-ups)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
sh scripts/setup.sh
cargo build --release -q -p barge
bin=$PWD/target/release/barge

. bench/lib.sh
bench_init barge-bench
bench_cleanup_hook() {
    for rt in barge-runc crun runc; do
        [ -x "$work/bin/$rt" ] && "$work/bin/$rt" --root "$work/root-$rt" delete -f "mem-$rt" >/dev/null 2>&1 || true
    done
}
bench_hugetlb

mkdir -p "$work/bin" "$work/bundle"
ln -s "$bin" "$work/bin/barge-runc"
ln -s "$(command -v crun)" "$work/bin/crun"
ln -s "$(command -v runc)" "$work/bin/runc"
sh tests/fixtures/busybox-rootfs.sh "$work/bundle/rootfs"
(cd "$work/bundle" && runc spec)
set_args() { # set_args ARG... : the bundle's process args, no terminal
    python3 - "$work/bundle/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
json.dump(c, open(path, "w"), indent=2)
PY
}
set_args /bin/true
cd "$work/bundle"

echo "== start: run /bin/true ($runs runs) =="
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/start.json" \
    -n barge-runc "$work/bin/barge-runc --root $work/root-barge run bench-barge" \
    -n crun "$work/bin/crun --root $work/root-crun run bench-crun" \
    -n runc "$work/bin/runc --root $work/root-runc run bench-runc"

echo "== memory: the runtime's own process while its container runs sleep =="
set_args /bin/sleep 3
mem_of() { # mem_of RUNTIME: prints "rss_kib pss_kib" of the waiting runtime process
    local rt=$1 pid rss pss
    "$work/bin/$rt" --root "$work/root-$rt" run "mem-$rt" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        [ -n "$(cat /proc/$pid/task/$pid/children 2>/dev/null)" ] && break
        sleep 0.02
    done
    sleep 0.3
    rss=$(awk '/^Rss:/ {print $2}' "/proc/$pid/smaps_rollup")
    pss=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")
    wait "$pid" || true
    echo "$rss $pss"
}
declare -A rss pss
for rt in barge-runc crun runc; do
    read -r r p < <(mem_of "$rt")
    rss[$rt]=$r; pss[$rt]=$p
    printf '%-10s RSS %6s KiB  PSS %6s KiB\n' "$rt" "$r" "$p"
done

echo "== summary =="
python3 - "$work/start.json" "${rss[barge-runc]}" "${rss[crun]}" "${rss[runc]}" "${pss[barge-runc]}" "${pss[crun]}" "${pss[runc]}" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
m = {k: v["mean"] * 1000 for k, v in res.items()}
s = {k: v["stddev"] * 1000 for k, v in res.items()}
for k in ("barge-runc", "crun", "runc"):
    print(f"start {k:10s} mean {m[k]:6.2f} ms  sd {s[k]:5.2f} ms")
print(f"start ratio barge/crun {m['barge-runc']/m['crun']:.2f}  barge/runc {m['barge-runc']/m['runc']:.2f}")
rb, rc, rr, pb, pc, pr = map(float, sys.argv[2:8])
print(f"memory ratio (RSS) barge/crun {rb/rc:.2f}  barge/runc {rb/rr:.2f}")
print(f"memory ratio (PSS) barge/crun {pb/pc:.2f}  barge/runc {pb/pr:.2f}")
PY
