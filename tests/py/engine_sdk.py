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
print("ALL OK")
