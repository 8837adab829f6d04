#!/bin/bash
# Image benchmark (issue 3's targets), driving barge-image through
# crates/barge-image/examples/{image_bench,unpack_bench}.rs:
#   (a) disk: 100 snapshots prepared from one image add < 100 KiB each (du -x, image once);
#   (b) unpacking a real-size gzip layer vs `tar -xzf` of it (hyperfine);
#   (c) pull of a 3-layer image (1, 61 and 14 MiB gzip; 9300 files) from a local
#       docker-registry on 127.0.0.1 vs `skopeo copy docker://... dir:...` of it and vs
#       skopeo copy to an OCI layout + `umoci raw unpack` (hyperfine; on disk and on tmpfs);
#   (d) snapshot create incl. mount: mean < 5 ms.
# Prints figures and ratios; everything it makes is removed on exit. Needs root.
#
#   bench/image.sh [RUNS]     (hyperfine runs, default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
[ "$(id -u)" = 0 ] || { echo "bench/image.sh needs root" >&2; exit 1; }
cargo build --release -q -p barge-image --example image_bench --example unpack_bench
ib=$PWD/target/release/examples/image_bench
ub=$PWD/target/release/examples/unpack_bench

work=$(mktemp -d /var/tmp/barge-image-bench.XXXXXX)
reg_pid=
cleanup() {
    set +e
    [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null || true
    # Snapshot mounts the example may have left on a failure.
    awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$work"
}
trap cleanup EXIT

echo "== layers =="
sh tests/fixtures/busybox-rootfs.sh "$work/busybox" >/dev/null
tar -C "$work/busybox" -czf "$work/busybox.tar.gz" .
tar -C / -czf "$work/doc.tar.gz" usr/share/doc
tar -C / -czf "$work/python.tar.gz" usr/lib/python3
tar -C / -czf "$work/big.tar.gz" usr/share/doc usr/lib/python3
for f in busybox doc python big; do
    printf '%-8s %6s MiB gz, %6s entries\n' "$f" \
        "$(($(stat -c %s "$work/$f.tar.gz") >> 20))" "$(tar -tzf "$work/$f.tar.gz" | wc -l)"
done

echo "== (a) disk: 100 snapshots of one image (du -x) =="
"$ib" prepare "$work/s0" "$work/busybox.tar.gz" 0 >/dev/null
"$ib" prepare "$work/s100" "$work/busybox.tar.gz" 100 >/dev/null
du0=$(du -sxk "$work/s0" | cut -f1)
du100=$(du -sxk "$work/s100" | cut -f1)
per=$(python3 -c "print(f'{($du100 - $du0) / 100:.1f}')")
echo "store with the image: $du0 KiB; with 100 snapshots: $du100 KiB; per snapshot: $per KiB (target < 100)"
rm -rf "$work/s0" "$work/s100"

echo "== (b) unpack of big.tar.gz: barge vs tar -xzf ($runs runs; on disk, then on tmpfs) =="
hyperfine --warmup 1 --runs "$runs" --export-json "$work/unpack.json" \
    --prepare "rm -rf $work/u-barge.d $work/u-tar.d && mkdir $work/u-barge.d $work/u-tar.d && sync" \
    -n barge "$ub $work/big.tar.gz $work/u-barge.d" \
    -n tar "tar -xzf $work/big.tar.gz -C $work/u-tar.d" \
    2>&1 | grep -v '^$' || true
rm -rf "$work/u-barge.d" "$work/u-tar.d"
# The same on a tmpfs: the CPU side, without the disk (shared with other work) in the way.
mkdir "$work/tmpfs"
mount -t tmpfs -o size=2g barge-bench "$work/tmpfs"
hyperfine --warmup 1 --runs "$runs" --export-json "$work/unpack-tmpfs.json" \
    --prepare "rm -rf $work/tmpfs/b $work/tmpfs/t && mkdir $work/tmpfs/b $work/tmpfs/t" \
    -n barge "$ub $work/big.tar.gz $work/tmpfs/b" \
    -n tar "tar -xzf $work/big.tar.gz -C $work/tmpfs/t" \
    2>&1 | grep -v '^$' || true
umount "$work/tmpfs"

echo "== (c) pull from a local docker-registry: barge vs skopeo copy to dir: ($runs runs) =="
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
  secret: barge-bench
EOF
/usr/bin/docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break
    sleep 0.1
done
ref=127.0.0.1:$port/bench/img:1
"$ib" push "$work/push-store" "$ref" "$work/busybox.tar.gz" "$work/doc.tar.gz" "$work/python.tar.gz" >/dev/null
rm -rf "$work/push-store"
# barge's pull also verifies and unpacks every layer (as docker pull does); skopeo's copy to
# dir: only stores the blobs. "skopeo+umoci" (copy to an OCI layout, then unpack it) is
# the comparison that does the same work.
#
# On disk every run pulls into a fresh directory and nothing is deleted between runs: on
# an ext4 without a journal (this host's), allocating an inode skips, one by one, the
# inodes freed in the last ~30 s (find_inode_bit -> recently_deleted), so an `rm -rf` of
# the last run's tree before each run made the side that creates thousands of files pay
# several times over. The runs' trees are removed after the whole comparison, and the
# comparison starts once the trees deleted by (a) and (b) are older than that window.
mkdir "$work/pulls"
sleep 31
fresh() { echo "\$(mktemp -u -p $work/pulls)"; }
hyperfine --warmup 1 --runs "$runs" --export-json "$work/pull.json" \
    -n barge-pull "sh -c 'exec $ib pull $(fresh) $ref'" \
    -n skopeo-copy "sh -c 'exec skopeo copy -q --src-tls-verify=false docker://$ref dir:$(fresh)'" \
    -n skopeo+umoci "sh -c 'd=$(fresh); skopeo copy -q --src-tls-verify=false docker://$ref oci:\$d:1 && exec umoci raw unpack --image \$d:1 \$d.rootfs'" \
    2>&1 | grep -v '^$' || true
rm -rf "$work/pulls"
# The same on a tmpfs (deleting there is free): the CPU and network side, without the
# disk (shared with other work) and its inode allocator in the way.
mount -t tmpfs -o size=3g barge-bench "$work/tmpfs"
hyperfine --warmup 1 --runs "$runs" --export-json "$work/pull-tmpfs.json" \
    --prepare "rm -rf $work/tmpfs/s $work/tmpfs/d $work/tmpfs/o $work/tmpfs/r" \
    -n barge-pull "$ib pull $work/tmpfs/s $ref" \
    -n skopeo-copy "skopeo copy -q --src-tls-verify=false docker://$ref dir:$work/tmpfs/d" \
    -n skopeo+umoci "skopeo copy -q --src-tls-verify=false docker://$ref oci:$work/tmpfs/o:1 && umoci raw unpack --image $work/tmpfs/o:1 $work/tmpfs/r" \
    2>&1 | grep -v '^$' || true
umount "$work/tmpfs"

echo "== (d) snapshot create incl. mount (200 runs) =="
"$ib" snap "$work/snap-store" "$work/busybox.tar.gz" 200
# Most of it is the fsyncs that make the snapshot record durable, i.e. the disk's journal
# latency (high while the disk is busy); on a tmpfs (fsync free) what is left is barge's own
# work: directories, record, overlay mount.
mount -t tmpfs -o size=256m barge-bench "$work/tmpfs"
"$ib" snap "$work/tmpfs/snap-store" "$work/busybox.tar.gz" 200 | sed 's/^/tmpfs: /'
umount "$work/tmpfs"

echo "== summary =="
python3 - "$work" <<'PY'
import json, statistics, sys
w = sys.argv[1]
for name, a, b in (("unpack", "barge", "tar"), ("unpack-tmpfs", "barge", "tar"),
                   ("pull", "barge-pull", "skopeo-copy"), ("pull", "barge-pull", "skopeo+umoci"),
                   ("pull-tmpfs", "barge-pull", "skopeo-copy"), ("pull-tmpfs", "barge-pull", "skopeo+umoci")):
    r = {x["command"]: x for x in json.load(open(f"{w}/{name}.json"))["results"]}
    ma, mb = r[a]["mean"], r[b]["mean"]
    da, db = statistics.median(r[a]["times"]), statistics.median(r[b]["times"])
    # CPU time (user + system, children included): on a host shared with other work the
    # wall times follow its load; what each side costs does not.
    ca, cb = r[a]["user"] + r[a]["system"], r[b]["user"] + r[b]["system"]
    print(f"{name:12s} {a:10s} mean {ma*1e3:7.0f} ms (median {da*1e3:7.0f}, cpu {ca*1e3:5.0f})  {b:12s} mean {mb*1e3:7.0f} ms (median {db*1e3:7.0f}, cpu {cb*1e3:5.0f})  "
          f"ratio {a}/{b}: mean {ma/mb:.2f}, median {da/db:.2f}, cpu {ca/cb:.2f}")
PY
