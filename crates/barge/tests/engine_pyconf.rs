//! Behaviour docker-py's own integration suite expects of a Docker daemon, found by running
//! that suite against barge (docs/conformance-docker-py.md): each test drives the daemon the
//! way the failing docker-py test did (through docker-py, or raw HTTP for status codes).

mod engine;

use engine::{skip, Daemon};

/// Runs a docker-py snippet against `d` (`c` is `docker.from_env()`, `api` its APIClient);
/// asserts it succeeds and returns its stdout.
fn py(d: &Daemon, code: &str) -> String {
    let script = format!(
        "import docker, io, json, os, socket, tarfile, time\n\
         c = docker.from_env()\n\
         api = c.api\n\
         {code}\n\
         print('PY OK')\n"
    );
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .output()
        .expect("python3");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success() && out.contains("PY OK"),
        "docker-py snippet failed:\n{code}\n--- stdout\n{out}\n--- stderr\n{}\n--- daemon\n{}",
        String::from_utf8_lossy(&o.stderr),
        d.log()
    );
    out
}

#[test]
fn swarm_and_plugin_endpoints_answer_as_a_dockerd_outside_a_swarm() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // docker-py's network tests call leave_swarm(force=True) in tearDown: it accepts 503.
    let (code, body) = d.api("POST", "/v1.47/swarm/leave?force=1", None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("This node is not part of a swarm"), "{body}");
    for p in [
        "/swarm",
        "/services",
        "/nodes",
        "/tasks",
        "/secrets",
        "/configs",
    ] {
        let (code, body) = d.api("GET", &format!("/v1.47{p}"), None);
        assert_eq!(code, 503, "{p}: {body}");
        assert!(body.contains("not a swarm manager"), "{p}: {body}");
    }
    let (code, body) = d.api("POST", "/v1.47/swarm/init", Some("{}"));
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("swarm mode"), "{body}");
    let (code, body) = d.api("GET", "/v1.47/plugins", None);
    assert_eq!((code, body.trim()), (200, "[]"));
    let (code, body) = d.api("GET", "/v1.47/plugins/foo/json", None);
    assert_eq!(code, 404, "{body}");
    let (_, info) = d.api("GET", "/v1.47/info", None);
    assert!(info.contains("\"LocalNodeState\":\"inactive\""), "{info}");
    py(&d, "assert api.leave_swarm(force=True) is True");
}

#[test]
fn kill_returns_once_the_container_has_stopped() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // Inspect right after kill (docker-py's KillTest): exited with 137, not running.
    py(
        &d,
        r#"
for i in range(3):
    ct = api.create_container('busybox', ['sleep', '9999'])
    api.start(ct)
    api.kill(ct)
    st = api.inspect_container(ct)['State']
    assert st['Running'] is False and st['ExitCode'] == 137, st
    api.remove_container(ct)
"#,
    );
}

#[test]
fn archive_reaches_the_volumes_and_binds_of_a_stopped_container() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("ro.txt"), "read only").expect("write");
    let out = py(
        &d,
        &format!(
            r#"
ct = api.create_container('busybox', 'sh -c "echo -n maid > /vol1/data.txt"', volumes=['/vol1', '/ro'],
    host_config=api.create_host_config(binds={{'{host}': {{'bind': '/ro', 'mode': 'ro'}}}}))
api.start(ct)
api.wait(ct)
strm, stat = api.get_archive(ct, '/vol1/data.txt')
assert stat['name'] == 'data.txt' and stat['size'] == 4, stat
t = tarfile.open(fileobj=io.BytesIO(b''.join(strm)))
assert t.extractfile('data.txt').read() == b'maid'
# the mount point itself is archived under its own name
strm, stat = api.get_archive(ct, '/vol1')
assert stat['name'] == 'vol1', stat
names = tarfile.open(fileobj=io.BytesIO(b''.join(strm))).getnames()
assert 'vol1/data.txt' in names, names
# put into the volume, read back through a container that has it
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w') as tw:
    ti = tarfile.TarInfo('put.txt'); ti.size = 3
    tw.addfile(ti, io.BytesIO(b'put'))
assert api.put_archive(ct, '/vol1', buf.getvalue())
strm, _ = api.get_archive(ct, '/vol1/put.txt')
assert tarfile.open(fileobj=io.BytesIO(b''.join(strm))).extractfile('put.txt').read() == b'put'
# a bind: read, and a read-only one refuses a write
strm, _ = api.get_archive(ct, '/ro/ro.txt')
assert tarfile.open(fileobj=io.BytesIO(b''.join(strm))).extractfile('ro.txt').read() == b'read only'
try:
    api.put_archive(ct, '/ro', buf.getvalue())
    raise SystemExit('put into a read-only bind succeeded')
except docker.errors.APIError as e:
    assert e.status_code == 403 and 'read-only' in str(e), e
api.remove_container(ct, v=True)
"#,
            host = host.path().display()
        ),
    );
    assert!(out.contains("PY OK"));
    assert!(!host.path().join("put.txt").exists());
}

#[test]
fn exec_tty_attach_without_stream_and_detach_keys() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    py(
        &d,
        r#"
ct = api.create_container('busybox', 'cat', detach=True, stdin_open=True)
api.start(ct)
# The exec's Tty (create) gives it a pty; exec start's Tty (False here, as docker-py sends
# it) only asks for the multiplexed stream.
x = api.exec_create(ct, 'sh -c "echo out; echo err >&2"', tty=True)
assert api.exec_start(x) == b'out\r\nerr\r\n', api.exec_start
x = api.exec_create(ct, 'sh -c "echo out; echo err >&2"', tty=True)
assert api.exec_start(x, demux=True) == (b'out\r\nerr\r\n', None)

def detached(sock, keys):
    s = sock._sock
    for k in keys:
        s.sendall(k)
        time.sleep(0.3)
    s.settimeout(10)
    try:
        s.sendall(b'more\n')
        return s.recv(128) == b''
    except OSError:
        return True

# exec: the detach keys come in the create body (docker-py spells it "detachKeys").
api._general_configs['detachKeys'] = 'ctrl-p'
x = api.exec_create(ct, 'cat', stdin=True, tty=True, stdout=True)
assert api.exec_inspect(x)['DetachKeys'] == 'ctrl-p'
assert detached(api.exec_start(x, tty=True, socket=True), [b'\x10'])
del api._general_configs['detachKeys']
x = api.exec_create(ct, 'cat', stdin=True, tty=True, stdout=True)
assert detached(api.exec_start(x, tty=True, socket=True), [b'\x10', b'\x11'])
try:
    api.exec_create(ct, 'cat', detach_keys='ctrl-1')
    raise SystemExit('bad detach keys accepted')
except docker.errors.APIError as e:
    assert e.status_code == 400 and 'Invalid detach keys' in str(e), e

# attach: default ctrl-p ctrl-q, or detachKeys in the query; the container keeps running.
t = api.create_container('busybox', 'cat', detach=True, stdin_open=True, tty=True)
api.start(t)
assert detached(api.attach_socket(t, {'stdin': True, 'stream': True}), [b'\x10', b'\x11'])
assert detached(api.attach_socket(t, {'stdin': True, 'stream': True, 'detachKeys': 'ctrl-x'}), [b'\x18'])
assert api.inspect_container(t)['State']['Running']

# attach without stream: the logs, to a stopped container too.
e = api.create_container('busybox', 'echo hello')
api.start(e)
api.wait(e)
assert api.attach(e, stream=False, logs=True) == b'hello\n'
for x in (ct, t, e):
    api.remove_container(x, force=True)
"#,
    );
}

#[test]
fn commit_and_import_apply_every_change_and_commit_records_the_parent() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    py(
        &d,
        r#"
ct = api.create_container('busybox', ['touch', '/test'])
api.start(ct)
api.wait(ct)
img = api.commit(ct, changes=['EXPOSE 8000', 'CMD ["bash"]'], message='msg')
i = api.inspect_image(img['Id'])
assert '8000/tcp' in i['Config']['ExposedPorts'] and i['Config']['Cmd'] == ['bash'], i['Config']
assert i['Parent'] == api.inspect_image('busybox')['Id'], i['Parent']
assert i['Comment'] == 'msg', i['Comment']
# changes merge into the container's config: its own ENV, LABEL and port stay
ct2 = api.create_container('busybox', 'true', environment=['A=1'], ports=[9000], labels={'l1': 'x'})
img2 = api.commit(ct2, changes=['ENV B=2', 'EXPOSE 8000', 'LABEL l2=y'])
cfg2 = api.inspect_image(img2['Id'])['Config']
assert 'A=1' in cfg2['Env'] and 'B=2' in cfg2['Env'], cfg2['Env']
assert set(cfg2['ExposedPorts']) == {'8000/tcp', '9000/tcp'}, cfg2['ExposedPorts']
assert cfg2['Labels'] == {'l1': 'x', 'l2': 'y'}, cfg2['Labels']
api.remove_container(ct2)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w') as tw:
    ti = tarfile.TarInfo('f'); ti.size = 1
    tw.addfile(ti, io.BytesIO(b'x'))
res = api.import_image_from_data(buf.getvalue(), repository='imp', changes=['USER foobar', 'CMD ["echo"]'])
iid = json.loads(res.splitlines()[-1])['status']
cfg = api.inspect_image(iid)['Config']
assert cfg['Cmd'] == ['echo'] and cfg['User'] == 'foobar', cfg
api.remove_container(ct)
"#,
    );
}

#[test]
fn group_add_diff_prune_runtime_and_log_drivers() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    py(
        &d,
        r#"
# GroupAdd: numbers and names (busybox's /etc/group has nogroup 65534); a user's
# supplementary groups from /etc/group.
ct = api.create_container('busybox', 'id -G', host_config=api.create_host_config(group_add=[1000, 1001, 'nogroup']))
api.start(ct); api.wait(ct)
groups = api.logs(ct).decode().split()
assert {'0', '1000', '1001', '65534'} <= set(groups), groups
bad = api.create_container('busybox', 'true', host_config=api.create_host_config(group_add=['nosuch']))
try:
    api.start(bad)
    raise SystemExit('an unknown group was accepted')
except docker.errors.APIError as e:
    assert 'unable to find group nosuch' in str(e).lower(), e
api.remove_container(bad)
api.remove_container(ct)
# diff: the image's /etc holding the engine's mount points is no change
ct = c.containers.run('busybox', 'touch /test', detach=True)
ct.wait()
assert ct.diff() == [{'Path': '/test', 'Kind': 1}], ct.diff()
# prune: what the writable layers held
c2 = api.create_container('busybox', ['sh', '-c', 'echo hello > /data.txt'])
api.start(c2); api.wait(c2)
r = api.prune_containers()
assert c2['Id'] in r['ContainersDeleted'] and r['SpaceReclaimed'] >= 6, r
# runtime: dockerd's default name; an unknown one is refused
ct = api.create_container('busybox', 'true')
assert api.inspect_container(ct)['HostConfig']['Runtime'] == 'runc'
try:
    api.create_container('busybox', 'true', host_config=api.create_host_config(runtime='nvidia'))
    raise SystemExit('unknown runtime accepted')
except docker.errors.APIError as e:
    assert e.status_code == 400 and 'nvidia' in str(e), e
# log drivers: none keeps no log; an unknown name gets dockerd's words
n = c.containers.run('busybox', 'echo hi', detach=True, log_config={'type': 'none'})
n.wait()
try:
    n.logs()
    raise SystemExit('logs of a none-driver container')
except docker.errors.APIError as e:
    assert 'does not support reading' in str(e), e
try:
    api.create_container('busybox', 'true', host_config=api.create_host_config(log_config={'type': 'asdf'}))
    raise SystemExit('unknown log driver accepted')
except docker.errors.APIError as e:
    assert "logger: no log driver named 'asdf' is registered" in str(e), e
"#,
    );
}

#[test]
fn image_load_stream_build_messages_inspect_shape_and_volume_prune() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let ctx = tempfile::tempdir().expect("tempdir");
    let df = tempfile::tempdir().expect("tempdir");
    std::fs::write(ctx.path().join("file.txt"), "hello").expect("write");
    std::fs::write(
        df.path().join("Dockerfile"),
        "FROM busybox\nCOPY . /src\nWORKDIR /src\n",
    )
    .expect("write");
    py(
        &d,
        &format!(
            r#"
# load: a chunked stream of messages (docker-py reads it line by line), errors in it
api.tag('busybox', 'second', 'x')
img = c.images.get('busybox')
data = b''.join(img.save())
# saved by id: no repository tags, as dockerd (docker-py's named=False)
m = json.load(tarfile.open(fileobj=io.BytesIO(data)).extractfile('manifest.json'))
assert [e['RepoTags'] for e in m] == [None], m
res = c.images.load(data)
assert [i.id for i in res] == [img.id], res
data = b''.join(img.save(named='second:x'))
m = json.load(tarfile.open(fileobj=io.BytesIO(data)).extractfile('manifest.json'))
assert [e['RepoTags'] for e in m] == [['second:x']], m
try:
    c.images.load(b'abc')
    raise SystemExit('loading garbage succeeded')
except docker.errors.ImageLoadError as e:
    assert str(e), e
# image inspect has the Config fields dockerd never omits
cfg = api.inspect_image('busybox')['Config']
assert 'OnBuild' in cfg and cfg['OnBuild'] is None and cfg['Entrypoint'] is None, cfg
# a Dockerfile outside the context: docker-py sends `dockerfile` twice (name, content);
# the first one counts, as in Go
lines = list(api.build(path='{ctx}', dockerfile='{df}/Dockerfile', tag='ooc', decode=True))
assert not any('error' in l for l in lines), lines
ct = api.create_container('ooc', 'ls')
api.start(ct); api.wait(ct)
assert api.logs(ct).split() == [b'file.txt'], api.logs(ct)
# a failing RUN reads as the classic builder's message
try:
    c.images.build(fileobj=io.BytesIO(b'FROM busybox\nRUN exit 1'))
    raise SystemExit('build succeeded')
except docker.errors.BuildError as e:
    assert "The command '/bin/sh -c exit 1' returned a non-zero code: 1" in str(e), e
# extra hosts (--add-host) are in RUN steps' /etc/hosts
script = io.BytesIO(b'FROM busybox\nRUN grep -q "127.0.0.1.hello.world.test" /etc/hosts && cp /etc/hosts /hosts-file\n')
lines = list(api.build(fileobj=script, tag='eh', extra_hosts={{'hello.world.test': '127.0.0.1', 'six.test': '::1'}}, decode=True))
assert not any('errorDetail' in l for l in lines), lines
ct = api.create_container('eh', 'cat /hosts-file')
api.start(ct); api.wait(ct)
hosts = api.logs(ct).decode()
assert '127.0.0.1\thello.world.test' in hosts and '::1\tsix.test' in hosts, hosts
try:
    list(api.build(fileobj=io.BytesIO(b'FROM busybox\n'), extra_hosts={{'bad': 'nope'}}, decode=True))
    raise SystemExit('a bad extra host was accepted')
except docker.errors.APIError as e:
    assert 'invalid extra host' in str(e), e
# a volume created without a name is anonymous: prune's default removes it, not a named one
v = api.create_volume()
n = api.create_volume(name='named')
p = api.prune_volumes()
assert v['Name'] in p['VolumesDeleted'] and 'named' not in p['VolumesDeleted'], p
"#,
            ctx = ctx.path().display(),
            df = df.path().display()
        ),
    );
}

#[test]
fn network_names_with_spaces_ipam_options_and_images_newest_first() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    py(
        &d,
        r#"
# api_network_test::test_create_remove_network_with_space_in_name: dockerd accepts it
net = api.create_network('test 01')
assert api.inspect_network('test 01')['Name'] == 'test 01'
api.remove_network(net['Id'])
assert not api.networks(names=['test 01'])
# test_create_network_with_ipam_config: IPAM.Options is null (no IPAM driver options)
ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet='172.28.0.0/16')])
net = api.create_network('ipamnet', ipam=ipam)
info = api.inspect_network(net['Id'])
assert info['IPAM']['Options'] is None, info['IPAM']
api.remove_network(net['Id'])
# a '/' is still refused (names are looked up in API paths)
try:
    api.create_network('a/b')
    raise SystemExit('a/b accepted')
except docker.errors.APIError as e:
    assert e.status_code == 400, e
# images are listed newest first, as dockerd
ctr = api.create_container('busybox', 'true')
time.sleep(1.1)
new = api.commit(ctr['Id'], repository='newest', tag='x')['Id']
ids = [i['Id'] for i in api.images()]
assert ids[0] == new, ids
created = [i['Created'] for i in api.images()]
assert created == sorted(created, reverse=True), created
api.remove_container(ctr['Id'])
"#,
    );
}

#[test]
fn build_streams_a_runs_stderr_in_red_apart_from_stdout() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    // docker-py's test_build_stderr_data: the classic builder wraps a RUN's stderr in
    // `\x1b[91m` ... `\x1b[0m` in the `stream` messages; stdout stays as it is.
    py(
        &d,
        r#"
snippet = 'Ancient Temple (Mystic Oriental Dream ~ Ancient Temple)'
script = io.BytesIO('\n'.join([
    'FROM busybox',
    f'RUN sh -c ">&2 echo \'{snippet}\'"',
    'RUN echo to-stdout',
]).encode('utf-8'))
lines = [l.get('stream') for l in api.build(fileobj=script, decode=True, nocache=True)]
assert '\x1b[91m' + snippet + '\n\x1b[0m' in lines, lines
assert 'to-stdout\n' in lines, lines
assert not any(l and '\x1b' in l and 'to-stdout' in l for l in lines), lines
"#,
    );
    // barge's CLI: the default output keeps the colour (as the docker CLI prints it),
    // --progress=plain prints stderr uncoloured.
    let ctx = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo oops >&2\n",
    )
    .expect("write");
    let run = |extra: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_barge"))
            .env("BARGE_HOST", format!("unix://{}", d.sock.display()))
            .args(
                [
                    &["build", "--no-cache"],
                    extra,
                    &[ctx.path().to_str().unwrap()],
                ]
                .concat(),
            )
            .output()
            .expect("barge build");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = run(&[]);
    assert!(out.contains("\u{1b}[91moops\n\u{1b}[0m"), "{out:?}");
    let out = run(&["--progress=plain"]);
    assert!(out.contains("oops\n") && !out.contains('\u{1b}'), "{out:?}");
}

#[test]
fn ipv6_networks_and_mac_addresses_as_docker_py_sends_them() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    py(
        &d,
        r#"
from docker.types import IPAMConfig, IPAMPool
def ipv6_of(ctr, net):
    return api.inspect_container(ctr)['NetworkSettings']['Networks'][net]
# test_create_network_ipv6_enabled: a subnet written with host bits, EnableIPv6 true
net = api.create_network('v6on', enable_ipv6=True, ipam=IPAMConfig(driver='default',
    pool_configs=[IPAMPool(subnet='2001:389::1/64', iprange='2001:389::0/96',
                           gateway='2001:389::ffff')]))
info = api.inspect_network(net['Id'])
assert info['EnableIPv6'] is True, info
assert {'Subnet': '2001:389::/64', 'IPRange': '2001:389::/96', 'Gateway': '2001:389::ffff'} \
    in info['IPAM']['Config'], info['IPAM']
api.remove_network(net['Id'])
# test_create_with_ipv6_address: no EnableIPv6, an IPv6 pool only, a static address
net = api.create_network('v6a', ipam=IPAMConfig(driver='default',
    pool_configs=[IPAMPool(subnet='2001:389::1/64')]))
assert api.inspect_network(net['Id'])['EnableIPv6'] is True
ctr = api.create_container('busybox', 'top',
    host_config=api.create_host_config(network_mode='v6a'),
    networking_config=api.create_networking_config({
        'v6a': api.create_endpoint_config(ipv6_address='2001:389::f00d')}))
api.start(ctr)
s = ipv6_of(ctr, 'v6a')
assert s['IPAMConfig']['IPv6Address'] == '2001:389::f00d', s
assert s['GlobalIPv6Address'] == '2001:389::f00d', s
api.remove_container(ctr, force=True)
api.remove_network(net['Id'])
# test_connect_with_ipv6_address: disconnect, then connect with a static address
net = api.create_network('v6c', ipam=IPAMConfig(driver='default',
    pool_configs=[IPAMPool(subnet='2001:389::1/64', iprange='2001:389::0/96',
                           gateway='2001:389::ffff')]))
ctr = api.create_container('busybox', 'top',
    host_config=api.create_host_config(network_mode='v6c'))
api.start(ctr)
assert ipv6_of(ctr, 'v6c')['GlobalIPv6Address'] == '2001:389::1', ipv6_of(ctr, 'v6c')
api.disconnect_container_from_network(ctr, 'v6c')
api.connect_container_to_network(ctr, 'v6c', ipv6_address='2001:389::f00d')
s = ipv6_of(ctr, 'v6c')
assert s['IPAMConfig']['IPv6Address'] == '2001:389::f00d', s
assert s['GlobalIPv6Address'] == '2001:389::f00d', s
assert s['IPv6Gateway'] == '2001:389::ffff', s
api.remove_container(ctr, force=True)
api.remove_network(net['Id'])
# api_container_test::test_create_with_mac_address: Config.MacAddress
ctr = api.create_container('busybox', ['sleep', '60'], mac_address='02:42:ac:11:00:0a')
api.start(ctr)
assert api.inspect_container(ctr)['NetworkSettings']['MacAddress'] == '02:42:ac:11:00:0a'
api.kill(ctr)
api.remove_container(ctr, force=True)
# test_connect_with_mac_address: an endpoint's MacAddress on network connect of a
# container that was only created; once started, its interface has that MAC
net = api.create_network('macpy')
ctr = api.create_container('busybox', 'top')
api.connect_container_to_network(ctr, 'macpy', mac_address='02:42:ac:11:00:02')
s = ipv6_of(ctr, 'macpy')
assert s['MacAddress'] == '02:42:ac:11:00:02', s
api.start(ctr)
assert ipv6_of(ctr, 'macpy')['MacAddress'] == '02:42:ac:11:00:02'
ex = api.exec_create(ctr, 'cat /sys/class/net/eth1/address')
assert api.exec_start(ex).decode().strip() == '02:42:ac:11:00:02'
api.remove_container(ctr, force=True)
api.remove_network(net['Id'])
"#,
    );
}

#[test]
fn attach_over_a_websocket_as_docker_py_drives_it() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    // docker-py turns its base URL into ws://, so the websocket attach needs the API on TCP
    // (plain, inside the test's network namespace: explicitly --tls=false).
    d.restart_with(&["-H", "tcp://127.0.0.1:2375", "--tls=false"]);
    let py_tcp = |code: &str| {
        let script = format!(
            "import docker, time\n\
             api = docker.APIClient(base_url='tcp://127.0.0.1:2375')\n\
             {code}\n\
             print('PY OK')\n"
        );
        let o = std::process::Command::new("ip")
            .args(["netns", "exec", d.netns(), "python3", "-c", &script])
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
            .output()
            .expect("python3");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success() && out.contains("PY OK"),
            "docker-py snippet failed:\n{code}\n--- stdout\n{out}\n--- stderr\n{}\n--- daemon\n{}",
            String::from_utf8_lossy(&o.stderr),
            d.log()
        );
        out
    };
    let up = || {
        d.sh("curl -s --max-time 5 http://127.0.0.1:2375/_ping")
            .stdout
            .starts_with(b"OK")
    };
    assert!(engine::eventually(10, up), "{}", d.log());
    // docker-py's test_run_container_reading_socket_ws: attached before the start, the
    // output arrives in a binary frame (bytes in Python), unframed.
    py_tcp(
        "line = 'hi there and stuff and things, words!'\n\
         c = api.create_container('busybox', \"printf '%s'\" % line, detach=True)\n\
         ws = api.attach_socket(c, {'stdout': 1, 'stream': 1, 'logs': 1}, ws=True)\n\
         api.start(c)\n\
         data = ws.recv()\n\
         assert isinstance(data, bytes), repr(data)\n\
         assert data.decode() == line, repr(data)\n\
         ws.close()\n\
         api.remove_container(c, force=True)",
    );
    // stdin through the websocket; with API >= 1.42 only the streams asked for (no stderr
    // here), and the close frame when the container's output ends.
    py_tcp(
        "c = api.create_container('busybox', ['sh', '-c', 'read l; echo err >&2; echo got:$l'],\n\
                                  stdin_open=True, detach=True)\n\
         ws = api.attach_socket(c, {'stdin': 1, 'stdout': 1, 'stream': 1}, ws=True)\n\
         api.start(c)\n\
         ws.send('hello\\n')\n\
         got = b''\n\
         while True:\n\
         \x20   op, data = ws.recv_data()\n\
         \x20   if op == 8:\n\
         \x20       break\n\
         \x20   got += data\n\
         assert got == b'got:hello\\n', repr(got)\n\
         api.remove_container(c, force=True)",
    );
    // Before API 1.28 dockerd sent text frames, and before 1.42 all three streams.
    py_tcp(
        "old = docker.APIClient(base_url='tcp://127.0.0.1:2375', version='1.27')\n\
         c = old.create_container('busybox', ['sh', '-c', 'echo out; sleep 0.2; echo err >&2'], detach=True)\n\
         ws = old.attach_socket(c, {'stdout': 1, 'stream': 1}, ws=True)\n\
         old.start(c)\n\
         got = []\n\
         while True:\n\
         \x20   op, data = ws.recv_data()\n\
         \x20   if op == 8:\n\
         \x20       break\n\
         \x20   assert op == 1, op\n\
         \x20   got.append(data)\n\
         assert b''.join(got) == b'out\\nerr\\n', repr(got)\n\
         old.remove_container(c, force=True)",
    );
    // Not a websocket handshake: 400 naming what is missing; no such container: 404.
    d.ok(&["create", "--name", "wsbox", "busybox", "true"]);
    let o = d.sh("curl -s -w ' %{http_code}' --max-time 5 \
         'http://127.0.0.1:2375/v1.47/containers/wsbox/attach/ws?stream=1&stdout=1'");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.ends_with(" 400") && out.contains("Upgrade: websocket"),
        "{out}"
    );
    let o = d.sh(
        "curl -s -w ' %{http_code}' --max-time 5 -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
         -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
         'http://127.0.0.1:2375/v1.47/containers/nosuch/attach/ws?stream=1'",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.ends_with(" 404") && out.contains("No such container"),
        "{out}"
    );
    d.ok(&["rm", "wsbox"]);
    d.restart_with(&[]);
}

#[test]
fn ipam_auxiliary_addresses_endpoint_driver_opts_link_local_ips_and_volume_driver() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    py(
        &d,
        r#"
from docker.types import IPAMConfig, IPAMPool
# api_network_test::test_create_network_with_ipam_config: AuxiliaryAddresses shown as sent
net = api.create_network('auxnet', ipam=IPAMConfig(driver='default', pool_configs=[
    IPAMPool(subnet='172.28.0.0/16', iprange='172.28.5.0/24', gateway='172.28.5.254',
             aux_addresses={'a': '172.28.1.5', 'b': '172.28.1.6', 'c': '172.28.1.7'})]))
want = [{'Subnet': '172.28.0.0/16', 'IPRange': '172.28.5.0/24', 'Gateway': '172.28.5.254',
         'AuxiliaryAddresses': {'a': '172.28.1.5', 'b': '172.28.1.6', 'c': '172.28.1.7'}}]
ipam = api.inspect_network(net['Id'])['IPAM']
assert ipam['Config'] == want, ipam
# an auxiliary address is never a container's: not dynamically, not as a static --ip
small = api.create_network('auxsmall', ipam=IPAMConfig(pool_configs=[
    IPAMPool(subnet='10.98.0.0/29', aux_addresses={'router': '10.98.0.2'})]))
ctr = api.create_container('busybox', 'top',
    host_config=api.create_host_config(network_mode='auxsmall'))
api.start(ctr)
s = api.inspect_container(ctr)['NetworkSettings']['Networks']['auxsmall']
assert s['IPAddress'] == '10.98.0.3', s
# DriverOpts is null when not given (models_containers_test, undeclared network)
assert s['DriverOpts'] is None, s
api.remove_container(ctr, force=True)
try:
    api.create_container('busybox', 'top',
        host_config=api.create_host_config(network_mode='auxsmall'),
        networking_config=api.create_networking_config({
            'auxsmall': api.create_endpoint_config(ipv4_address='10.98.0.2')}))
    raise SystemExit('a static --ip on an auxiliary address was accepted')
except docker.errors.APIError as e:
    assert e.status_code == 409 and 'already in use' in str(e) and 'router' in str(e), e
# an auxiliary address outside its subnet is a 400 naming it, and no network is made
for aux in ({'x': '10.1.2.3'}, {'y': 'nonsense'}):
    try:
        api.create_network('auxbad', ipam=IPAMConfig(pool_configs=[
            IPAMPool(subnet='10.97.0.0/24', aux_addresses=aux)]))
        raise SystemExit('bad auxiliary address accepted: %r' % aux)
    except docker.errors.APIError as e:
        (name, addr), = aux.items()
        assert e.status_code == 400 and name in str(e) and addr in str(e), e
assert not api.networks(names=['auxbad'])
# api_network_test::test_create_with_driveropt: an endpoint's DriverOpts are kept
ctr = api.create_container('busybox', 'top',
    host_config=api.create_host_config(network_mode='bridge'),
    networking_config=api.create_networking_config({
        'bridge': api.create_endpoint_config(driver_opt={'com.docker-py.setting': 'on'})}))
s = api.inspect_container(ctr)['NetworkSettings']['Networks']['bridge']
assert s['DriverOpts'] == {'com.docker-py.setting': 'on'}, s
api.start(ctr)
s = api.inspect_container(ctr)['NetworkSettings']['Networks']['bridge']
assert s['DriverOpts'] == {'com.docker-py.setting': 'on'}, s
api.remove_container(ctr, force=True)
# test_create_with_linklocal_ips: kept, shown, and on the container's interface
ctr = api.create_container('busybox', 'top',
    host_config=api.create_host_config(network_mode='bridge'),
    networking_config=api.create_networking_config({
        'bridge': api.create_endpoint_config(link_local_ips=['169.254.8.8', 'fe80::8'])}))
api.start(ctr)
s = api.inspect_container(ctr)['NetworkSettings']['Networks']['bridge']
assert s['IPAMConfig']['LinkLocalIPs'] == ['169.254.8.8', 'fe80::8'], s
ex = api.exec_create(ctr, 'ip addr show eth0')
out = api.exec_start(ex).decode()
assert 'inet 169.254.8.8/16' in out and 'inet6 fe80::8/64' in out, out
api.remove_container(ctr, force=True)
try:
    api.create_container('busybox', 'top', networking_config=api.create_networking_config({
        'bridge': api.create_endpoint_config(link_local_ips=['10.0.0.8'])}))
    raise SystemExit('a link-local IP outside 169.254/16 was accepted')
except docker.errors.APIError as e:
    assert e.status_code == 400 and '10.0.0.8' in str(e), e
# models_containers_test::test_create_with_volume_driver: accepted while no volume needs it
ctr = c.containers.create('busybox', 'sleep 300', volume_driver='foo')
assert ctr.attrs['HostConfig']['VolumeDriver'] == 'foo'
ctr.remove(force=True)
try:
    c.containers.create('busybox', 'true', volume_driver='foo', volumes=['vdvol:/v'])
    raise SystemExit('a volume with driver foo was made')
except docker.errors.APIError as e:
    assert e.status_code == 400 and 'VolumeDriver' in str(e) and 'vdvol' in str(e), e
assert 'vdvol' not in [v.name for v in c.volumes.list()]
"#,
    );
    // the auxiliary addresses are part of the network's record
    d.restart_with(&[]);
    py(
        &d,
        r#"
ipam = api.inspect_network('auxnet')['IPAM']
assert ipam['Config'][0]['AuxiliaryAddresses'] == \
    {'a': '172.28.1.5', 'b': '172.28.1.6', 'c': '172.28.1.7'}, ipam
ctr = api.create_container('busybox', 'top',
    host_config=api.create_host_config(network_mode='auxsmall'))
api.start(ctr)
s = api.inspect_container(ctr)['NetworkSettings']['Networks']['auxsmall']
assert s['IPAddress'] == '10.98.0.3', s
api.remove_container(ctr, force=True)
"#,
    );
}
