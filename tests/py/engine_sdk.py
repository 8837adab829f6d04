"""The Docker SDK for Python against barge's daemon (DOCKER_HOST points at it)."""
import docker

c = docker.from_env()
assert c.ping()
assert c.version()["ApiVersion"] == "1.47"
out = c.containers.run("busybox", ["sh", "-c", "echo sdk; echo e >&2"], remove=True)
assert out == b"sdk\n", out
ct = c.containers.run("busybox", ["sh", "-c", "echo one; sleep 1000"], detach=True, name="pyc", environment={"A": "b"})
import time
for _ in range(100):
    if b"one" in ct.logs():
        break
    time.sleep(0.05)
assert ct.logs() == b"one\n", ct.logs()
ct.reload()
assert ct.status == "running", ct.status
assert "A=b" in ct.attrs["Config"]["Env"]
code, out = ct.exec_run(["sh", "-c", "echo $A; exit 2"])
assert (code, out) == (2, b"b\n"), (code, out)
code, out = ct.exec_run("pwd", workdir="/tmp", user="1000")
assert (code, out) == (0, b"/tmp\n"), (code, out)
assert any(x.name == "pyc" for x in c.containers.list())
ct.kill()
res = ct.wait()
assert res["StatusCode"] == 137, res
ct.remove()
# attach to a container started after the attach
ct2 = c.containers.create("busybox", ["sh", "-c", "echo attached"])
sock = ct2.attach(stdout=True, stderr=True, stream=True, logs=True)
ct2.start()
data = b"".join(sock)
assert b"attached" in data, data
assert ct2.wait()["StatusCode"] == 0
ct2.remove()
img = c.images.get("busybox")
assert "busybox:latest" in img.tags

# --- What docker-py users call beyond run/logs/exec: the rest of issue #4's container verbs.
import io
import tarfile
import threading
import datetime


def wait_for(pred, secs=10.0, what="condition"):
    end = time.time() + secs
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


t0 = time.time() - 1
ct = c.containers.run("busybox", ["sh", "-c", "echo early; sleep 1.2; echo late >&2; exec sleep 1000"],
                      detach=True, name="py2", labels={"suite": "sdk"})
wait_for(lambda: b"late" in ct.logs(), what="late line")
# logs: timestamps, tail, since/until (by the timestamps the daemon gave), stream choice.
stamped = ct.logs(timestamps=True).decode().splitlines()
assert len(stamped) == 2, stamped
def rfc3339(ts):
    """Seconds since the epoch of Docker's RFC 3339 (nano) timestamp."""
    whole, _, frac = ts.rstrip("Z").partition(".")
    t = datetime.datetime.fromisoformat(whole + "+00:00").timestamp()
    return t + float("0." + (frac or "0"))


stamps = [rfc3339(l.split(" ", 1)[0]) for l in stamped]
assert [l.split(" ", 1)[1] for l in stamped] == ["early", "late"], stamped
assert ct.logs(tail=1) == b"late\n", ct.logs(tail=1)
assert ct.logs(stdout=True, stderr=False) == b"early\n"
assert ct.logs(stdout=False, stderr=True) == b"late\n"
assert stamps[1] - stamps[0] >= 1.0, stamped
mid = stamps[0] + (stamps[1] - stamps[0]) / 2
assert ct.logs(since=mid) == b"late\n", ct.logs(since=mid)
assert ct.logs(until=mid) == b"early\n", ct.logs(until=mid)
assert ct.logs(since=mid, until=mid + 0.1) == b""
# top, pause/unpause, rename, diff, export.
top = ct.top()
assert "PID" in top["Titles"] and any("sleep 1000" in " ".join(p) for p in top["Processes"]), top
ct.pause()
ct.reload()
assert ct.status == "paused", ct.status
ct.unpause()
ct.reload()
assert ct.status == "running", ct.status
ct.rename("py2b")
ct.reload()
assert ct.name == "py2b", ct.name
ct.exec_run(["sh", "-c", "echo made > /root/made.txt"])
changes = {(d["Path"], d["Kind"]) for d in ct.diff()}
assert ("/root/made.txt", 1) in changes, changes
exported = b"".join(ct.export())
names = tarfile.open(fileobj=io.BytesIO(exported)).getnames()
assert any(n.lstrip("./") == "bin/busybox" for n in names), names[:10]
# export mounted a second read-write overlay of the running container's snapshot, which reset
# the overlay's work dir under the container: afterwards every copy-up failed with ENOENT, in
# the container itself and for put_archive. Both must still work.
assert ct.exec_run(["sh", "-c", "echo w > /etc/after-export && cat /etc/after-export"]).output == b"w\n"
pbuf = io.BytesIO()
with tarfile.open(fileobj=pbuf, mode="w") as tf:
    info = tarfile.TarInfo("put2b.txt")
    info.size = 3
    tf.addfile(info, io.BytesIO(b"2b\n"))
assert ct.put_archive("/tmp", pbuf.getvalue())
assert ct.exec_run("cat /tmp/put2b.txt").output == b"2b\n"
# cp both ways (the archive endpoints), on a container of its own.
cp = c.containers.run("busybox", ["sh", "-c", "echo made > /root/made.txt; exec sleep 1000"],
                      detach=True, name="pycp")
wait_for(lambda: cp.exec_run("cat /root/made.txt").output == b"made\n", what="made.txt")
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tf:
    data = b"put by docker-py\n"
    info = tarfile.TarInfo("put.txt")
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))
assert cp.put_archive("/tmp", buf.getvalue())
assert cp.exec_run("cat /tmp/put.txt").output == b"put by docker-py\n"
bits, st = cp.get_archive("/root/made.txt")
assert st["name"] == "made.txt" and st["size"] == 5, st
tf = tarfile.open(fileobj=io.BytesIO(b"".join(bits)))
assert tf.extractfile("made.txt").read() == b"made\n"
cp.remove(force=True)
# commit: a new image from the container's changes.
img = ct.commit(repository="pycommit", tag="v1", changes=["CMD cat /root/made.txt"])
assert c.containers.run("pycommit:v1", remove=True) == b"made\n"
# resize of a tty container: the pty takes the new size.
tty = c.containers.run("busybox", ["sh", "-c", "while :; do stty size; sleep 0.1; done"],
                       detach=True, tty=True, name="pytty")
wait_for(lambda: tty.logs() != b"", what="tty output")
tty.resize(height=33, width=111)
wait_for(lambda: b"33 111" in tty.logs(), what="resized tty")
tty.remove(force=True)
# stop (signal, grace), restart, wait conditions.
ct.stop(timeout=1)
ct.reload()
assert ct.status == "exited" and ct.attrs["State"]["ExitCode"] == 137, ct.attrs["State"]
assert ct.wait(condition="not-running")["StatusCode"] == 137
started = ct.attrs["State"]["StartedAt"]
ct.restart(timeout=1)
ct.reload()
assert ct.status == "running" and ct.attrs["State"]["StartedAt"] != started, ct.attrs["State"]
waited = {}
def waiter():
    waited["res"] = ct.wait(condition="removed")
th = threading.Thread(target=waiter)
th.start()
time.sleep(0.5)
assert th.is_alive(), "wait(condition=removed) returned before the removal"
ct.remove(force=True)
th.join(20)
assert not th.is_alive() and "StatusCode" in waited["res"], waited
# restart policy through the API: on-failure:1 restarts once.
rp = c.containers.run("busybox", ["sh", "-c", "exit 3"], detach=True, name="pyrp",
                      restart_policy={"Name": "on-failure", "MaximumRetryCount": 1})
wait_for(lambda: (rp.reload() or True) and rp.attrs["RestartCount"] == 1 and rp.status == "exited",
         secs=20, what="one restart")
rp.remove()
# health checks: reported in inspect and as events.
hc = c.containers.run("busybox", ["sh", "-c", "sleep 0.6; touch /tmp/ok; sleep 1000"], detach=True,
                      name="pyhc", healthcheck={"test": ["CMD", "test", "-f", "/tmp/ok"],
                                                "interval": 200_000_000, "retries": 1,
                                                "timeout": 1_000_000_000, "start_period": 0})
wait_for(lambda: (hc.reload() or True) and hc.attrs["State"]["Health"]["Status"] == "healthy",
         what="healthy")
hc.remove(force=True)
# events: past ones replayed with since/until and filtered by type, container, event, label,
# image; network and volume events under their own filters.
net = c.networks.create("pynet")
vol = c.volumes.create("pyvol")
net.remove()
vol.remove()
t1 = time.time() + 1
def ev(**filters):
    return [e for e in c.events(since=t0, until=t1, filters=filters, decode=True)]
acts = [e["Action"] for e in ev(container=ct.id)]
assert acts[:2] == ["create", "start"], acts
assert "rename" in acts and "pause" in acts and "unpause" in acts, acts
assert all(e["Type"] == "container" for e in ev(type="container"))
dies = ev(event="die", label="suite=sdk")
assert dies and all(e["Action"] == "die" and e["Actor"]["Attributes"].get("suite") == "sdk"
                    for e in dies), dies
assert {e["Actor"]["Attributes"]["name"] for e in ev(event="die", image="pycommit:v1")}, "image filter"
health = ev(container="pyhc", event="health_status")
assert health and health[-1]["Action"] == "health_status: healthy", health
nets = ev(type="network", network="pynet")
assert [e["Action"] for e in nets] == ["create", "destroy"], nets
vols = ev(volume="pyvol")
assert [e["Action"] for e in vols] == ["create", "destroy"], vols
assert ev(container="no-such-container") == []
# An unknown filter is a 400 (docker-py's events() does not check the status: ask directly).
import json
r = c.api._get(c.api._url("/events"), params={"until": str(int(t1)), "filters": json.dumps({"bogus": ["x"]})})
assert r.status_code == 400 and r.json()["message"] == "invalid filter 'bogus'", (r.status_code, r.text)
# system df and prune.
df = c.df()
assert {"LayersSize", "Images", "Containers", "Volumes"} <= set(df), df.keys()
assert any("busybox:latest" in (i.get("RepoTags") or []) for i in df["Images"]), df["Images"]
c.containers.create("busybox", ["true"], name="pyprune")
pr = c.containers.prune()
assert pr["ContainersDeleted"] and "SpaceReclaimed" in pr, pr
assert not any(x.name == "pyprune" for x in c.containers.list(all=True))
c.images.remove("pycommit:v1")
print("ALL OK")
