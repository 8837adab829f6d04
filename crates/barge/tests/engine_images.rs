//! The images half of the API end to end: pull, push and login against a local
//! `docker-registry` (Debian's, on 127.0.0.1), and builds through `POST /build`, each with
//! the real docker CLI, barge's CLI and docker-py against a barge daemon on its own roots.
//! Root only (as CI); no internet: busybox is made locally and imported.

mod engine;

use barge_testsupport::registry::Registry;
use engine::{eventually, output_of, skip, text, write_files, Daemon};
use std::path::Path;
use std::process::{Command, Output, Stdio};

#[test]
fn push_and_pull_through_a_local_registry_with_docker_and_barge() {
    if skip() {
        return;
    }
    let reg = Registry::start(None);
    let a = Daemon::start_host_net();
    let b = Daemon::start_host_net();
    let r = reg.host();

    // docker push from daemon a, docker pull into daemon b: the same image id.
    let bb = format!("{r}/tools/busybox:1.0");
    a.ok(&["tag", "busybox:latest", &bb]);
    let out = a.ok(&["push", &bb]);
    assert!(out.contains("digest: sha256:"), "push printed {out}");
    let out = b.ok(&["pull", &bb]);
    assert!(
        out.contains(&format!("Downloaded newer image for {bb}")),
        "{out}"
    );
    assert_eq!(a.image_id(&bb), b.image_id(&bb));
    // Pulled again: nothing new.
    let out = b.ok(&["pull", &bb]);
    assert!(out.contains("Image is up to date"), "{out}");
    // The image runs.
    assert_eq!(b.ok(&["run", "--rm", &bb, "echo", "pulled"]), "pulled");

    // barge push / barge pull through the daemons.
    let other = format!("{r}/barge/bb:2");
    a.barge_ok(&["tag", "busybox:latest", &other]);
    let out = a.barge_ok(&["push", &other]);
    assert!(out.contains("sha256:"), "barge push printed {out}");
    b.barge_ok(&["pull", &other]);
    assert_eq!(a.image_id(&other), b.image_id(&other));
    let images = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.contains(&other), "{images}");
    // `docker run` of an image that is only in the registry pulls it first.
    b.ok(&["rmi", &other]);
    let o = b.docker(&["run", "--rm", &other, "echo", "auto-pulled"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "auto-pulled");
    assert!(
        text(&o.stderr).contains("Unable to find image"),
        "{}",
        text(&o.stderr)
    );

    // Unknown repository and unknown tag: a clear error, nothing tagged.
    for missing in [
        format!("{r}/nope/none:1"),
        format!("{r}/tools/busybox:nope"),
    ] {
        let o = b.docker(&["pull", &missing]);
        assert!(!o.status.success());
        let err = text(&o.stderr);
        assert!(err.contains("not found"), "docker pull {missing}: {err}");
        let o = b.barge(&["pull", &missing], None);
        assert!(!o.status.success());
        assert!(text(&o.stderr).contains("not found"), "{}", text(&o.stderr));
        assert!(!b.docker(&["image", "inspect", &missing]).status.success());
    }
    // Same through the raw API: a 404 with Docker's message body, before any stream.
    let (code, body) = b.api(
        "POST",
        &format!("/v1.47/images/create?fromImage={r}/nope/none&tag=1"),
        None,
    );
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"message\""), "{body}");
    // Pushing an image that is not there.
    let o = a.docker(&["push", &format!("{r}/absent/x:1")]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("does not exist"),
        "{}",
        text(&o.stderr)
    );
    // A registry that is not there: the error names it.
    let o = a.docker(&["pull", "127.0.0.1:1/x/y:1"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("127.0.0.1:1"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn login_with_htpasswd_then_push_and_pull() {
    if skip() {
        return;
    }
    let reg = Registry::start(Some(("alice", "s3cret")));
    let d = Daemon::start_host_net();
    let r = reg.host();
    let img = format!("{r}/alice/bb:1");
    d.ok(&["tag", "busybox:latest", &img]);

    // Without credentials the push is refused with a message saying so.
    let o = d.docker(&["push", &img]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("unauthorized") || err.contains("authentication required"),
        "{err}"
    );

    // Bad password: 401 from the daemon, the CLI reports it and stores nothing.
    let o = d.docker_stdin(
        &["login", "-u", "alice", "--password-stdin", &r],
        b"wrong\n",
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("unauthorized"),
        "{}",
        text(&o.stderr)
    );
    let (code, body) = d.api(
        "POST",
        "/v1.47/auth",
        Some(&format!(
            r#"{{"username":"alice","password":"wrong","serveraddress":"{r}"}}"#
        )),
    );
    assert_eq!(code, 401, "{body}");

    // Good password: docker login, then push and pull use the stored credentials.
    let o = d.docker_stdin(
        &["login", "-u", "alice", "--password-stdin", &r],
        b"s3cret\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("Login Succeeded"));
    d.ok(&["push", &img]);
    d.ok(&["rmi", &img]);
    d.ok(&["pull", &img]);
    let (code, body) = d.api(
        "POST",
        "/v1.47/auth",
        Some(&format!(
            r#"{{"username":"alice","password":"s3cret","serveraddress":"{r}"}}"#
        )),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Login Succeeded"), "{body}");

    // barge logout / login (same config dir) and a push through barge.
    d.barge_ok(&["logout", &r]);
    let o = d.barge(&["push", &img], None);
    assert!(!o.status.success(), "push after logout succeeded");
    let o = d.barge(
        &["login", "-u", "alice", "--password-stdin", &r],
        Some(b"s3cret\n"),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("Login Succeeded"));
    let img2 = format!("{r}/alice/bb:2");
    d.barge_ok(&["tag", "busybox:latest", &img2]);
    d.barge_ok(&["push", &img2]);
    let o = d.barge(
        &["login", "-u", "alice", "--password-stdin", &r],
        Some(b"nope\n"),
    );
    assert!(!o.status.success());
}

/// A fake `docker-credential-fake` (Python) keeping credentials in `<state>/creds.json`
/// and logging each call as `<action> <stdin>` to `<state>/calls.log`.
fn fake_credential_helper(bin: &Path, state: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin).expect("bin");
    std::fs::create_dir_all(state).expect("state");
    let script = format!(
        r#"#!/usr/bin/python3
import json, os, sys
here = {here:?}
action, data = sys.argv[1], sys.stdin.read()
open(os.path.join(here, "calls.log"), "a").write(action + " " + data + "\n")
path = os.path.join(here, "creds.json")
state = json.load(open(path)) if os.path.exists(path) else {{}}
if action == "store":
    j = json.loads(data)
    state[j["ServerURL"]] = [j["Username"], j["Secret"]]
    json.dump(state, open(path, "w"))
elif action in ("get", "erase") and data in state:
    if action == "get":
        print(json.dumps({{"ServerURL": data, "Username": state[data][0], "Secret": state[data][1]}}))
    else:
        del state[data]
        json.dump(state, open(path, "w"))
else:
    print("credentials not found in native keychain")
    sys.exit(1)
"#,
        here = state.display().to_string()
    );
    let p = bin.join("docker-credential-fake");
    std::fs::write(&p, script).expect("helper");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn credential_helper_and_all_tags_with_docker_and_barge_clis() {
    if skip() {
        return;
    }
    let reg = Registry::start(Some(("alice", "s3cret")));
    let d = Daemon::start_host_net();
    let r = reg.host();
    let (bin, state) = (d.dir.path().join("helper-bin"), d.dir.path().join("helper"));
    fake_credential_helper(&bin, &state);
    let cfg = d.dir.path().join("docker-config");
    std::fs::create_dir_all(&cfg).expect("config dir");
    std::fs::write(cfg.join("config.json"), r#"{"credsStore":"fake"}"#).expect("config");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let barge_h = |args: &[&str], stdin: Option<&[u8]>| {
        let mut c = d.barge_cmd(args);
        c.env("PATH", &path);
        output_of(c, stdin)
    };
    let docker_h = |args: &[&str]| {
        let mut c = d.docker_cmd(args);
        c.env("PATH", &path);
        output_of(c, None)
    };
    let calls = || std::fs::read_to_string(state.join("calls.log")).unwrap_or_default();
    let ok = |o: Output, what: &str| {
        assert!(
            o.status.success(),
            "{what}: {}{}\n{}",
            text(&o.stdout),
            text(&o.stderr),
            d.log()
        );
        text(&o.stdout)
    };

    // barge login stores through the helper: the file lists the registry, no secret.
    let o = barge_h(
        &["login", "-u", "alice", "--password-stdin", &r],
        Some(b"s3cret\n"),
    );
    assert!(
        !text(&o.stderr).contains("unencrypted"),
        "{}",
        text(&o.stderr)
    );
    ok(o, "barge login");
    assert!(calls().contains("store {"), "{}", calls());
    let file = std::fs::read_to_string(cfg.join("config.json")).expect("config");
    assert!(!file.contains("s3cret"), "{file}");
    let j: serde_json::Value = serde_json::from_str(&file).expect("json");
    assert_eq!(j["auths"][&r], serde_json::json!({}), "{file}");
    assert_eq!(j["credsStore"], "fake");

    // barge push gets the credentials from the helper; so does the docker CLI (the same
    // config, read by docker's own code).
    let (t1, t2) = (format!("{r}/alice/bb:1"), format!("{r}/alice/bb:2"));
    d.barge_ok(&["tag", "busybox:latest", &t1]);
    d.barge_ok(&["tag", "busybox:latest", &t2]);
    ok(barge_h(&["push", &t1], None), "barge push");
    assert!(calls().contains(&format!("get {r}")), "{}", calls());
    ok(docker_h(&["push", &t2]), "docker push");

    // docker pull -a: the CLI sends no tag, the daemon pulls every tag.
    d.ok(&["rmi", &t1, &t2]);
    ok(
        docker_h(&["pull", "-a", &format!("{r}/alice/bb")]),
        "docker pull -a",
    );
    for t in [&t1, &t2] {
        assert!(d.docker(&["image", "inspect", t]).status.success(), "{t}");
    }
    // barge pull -a the same; a tag with -a is refused.
    d.ok(&["rmi", &t1, &t2]);
    ok(
        barge_h(&["pull", "-a", &format!("{r}/alice/bb")], None),
        "barge pull -a",
    );
    for t in [&t1, &t2] {
        assert!(d.docker(&["image", "inspect", t]).status.success(), "{t}");
    }
    let o = barge_h(&["pull", "-a", &t1], None);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("--all-tags"),
        "{}",
        text(&o.stderr)
    );
    // The raw API with a tag in fromImage pulls only that tag.
    d.ok(&["rmi", &t1, &t2]);
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE.encode(format!(
            r#"{{"username":"alice","password":"s3cret","serveraddress":"{r}"}}"#
        ))
    };
    let mut c = Command::new("curl");
    c.args(["-sf", "-X", "POST", "--unix-socket"])
        .arg(&d.sock)
        .arg("-H")
        .arg(format!("X-Registry-Auth: {auth}"))
        .arg(format!("http://d/v1.47/images/create?fromImage={t1}"));
    ok(output_of(c, None), "API pull of one tag");
    assert!(d.docker(&["image", "inspect", &t1]).status.success());
    assert!(!d.docker(&["image", "inspect", &t2]).status.success());

    // barge logout erases through the helper; pushes are refused again.
    let out = ok(barge_h(&["logout", &r], None), "barge logout");
    assert!(out.contains("Removing login credentials"), "{out}");
    assert!(calls().contains(&format!("erase {r}")), "{}", calls());
    let o = barge_h(&["push", &t1], None);
    assert!(!o.status.success(), "push after logout succeeded");
}

#[test]
fn docker_build_of_the_seed_dockerfiles() {
    if skip() {
        return;
    }
    let d = Daemon::start_host_net();
    let ctx = tempfile::tempdir().expect("tempdir");
    let c = ctx.path();
    write_files(
        c,
        &[
            (
                "Dockerfile",
                "FROM busybox\nWORKDIR /code\nRUN echo built > /built.txt\nADD . /code\nCMD [\"cat\", \"/code/app.txt\"]\n",
            ),
            ("app.txt", "version one\n"),
        ],
    );
    let dir = c.to_str().expect("utf8");
    let o = d.docker_build(&["-t", "seed:1", dir]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("Step 1/5 : FROM busybox"), "{out}");
    assert!(out.contains("Successfully tagged seed:1"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", "seed:1"]), "version one");
    assert_eq!(
        d.ok(&["run", "--rm", "seed:1", "cat", "/built.txt"]),
        "built"
    );
    assert_eq!(d.ok(&["run", "--rm", "seed:1", "pwd"]), "/code");
    // It is listed, and its history has the instructions.
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(images.contains("seed:1"), "{images}");
    let hist = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "seed:1",
    ]);
    for want in ["WORKDIR /code", "echo built > /built.txt", "ADD", "CMD"] {
        assert!(hist.contains(want), "history lacks {want}: {hist}");
    }
    // The aux message carried the id: docker build -q prints it.
    let o = d.docker_build(&["-q", "-t", "seed:1", dir]);
    assert!(o.status.success());
    assert_eq!(text(&o.stdout).trim(), d.image_id("seed:1"));

    // Rebuild: every step from the cache.
    let o = d.docker_build(&["-t", "seed:1", dir]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches("Using cache").count(), 4, "{out}");
    // Editing a source: ADD and after rebuild, RUN before it stays cached.
    std::fs::write(c.join("app.txt"), "version two\n").expect("write");
    let o = d.docker_build(&["-t", "seed:2", dir]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches("Using cache").count(), 2, "{out}");
    assert_eq!(d.ok(&["run", "--rm", "seed:2"]), "version two");

    // ENV, EXPOSE, several RUNs and a multi-line RUN.
    write_files(
        c,
        &[(
            "Dockerfile",
            "FROM busybox\nENV GREETING=hello \\\n    TARGET=world\nEXPOSE 8080/tcp 53/udp\nRUN mkdir -p /srv\nRUN echo \"$GREETING\" > /srv/a && \\\n    echo \"$TARGET\" >> /srv/a && \\\n    cat /srv/a > /srv/b\nCMD cat /srv/b\n",
        )],
    );
    let o = d.docker_build(&["-t", "seed:env", dir]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(d.ok(&["run", "--rm", "seed:env"]), "hello\nworld");
    let cfg = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.ExposedPorts}} {{json .Config.Env}}",
        "seed:env",
    ]);
    assert!(cfg.contains("8080/tcp") && cfg.contains("53/udp"), "{cfg}");
    assert!(cfg.contains("GREETING=hello"), "{cfg}");

    // Multi-stage: the final image holds only the artifact.
    write_files(
        c,
        &[(
            "Dockerfile",
            "FROM busybox AS build\nRUN mkdir /out && echo artifact > /out/app && echo junk > /junk\nFROM scratch\nCOPY --from=build /out/app /app\n",
        )],
    );
    let o = d.docker_build(&["-t", "seed:multi", dir]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let layers = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{len .RootFS.Layers}}",
        "seed:multi",
    ]);
    assert_eq!(layers, "1");
    let cid = d.ok(&["create", "seed:multi", "/app"]);
    let o = d.docker(&["export", &cid]);
    assert!(o.status.success());
    let listing = Command::new("tar")
        .arg("-t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin.take().expect("stdin").write_all(&o.stdout)?;
            ch.wait_with_output()
        })
        .expect("tar -t");
    let names = text(&listing.stdout);
    assert!(
        names.lines().any(|l| l.trim_start_matches("./") == "app"),
        "{names}"
    );
    assert!(
        !names.contains("junk") && !names.contains("bin/busybox"),
        "{names}"
    );

    // A failing RUN: its exit code and output, nothing tagged.
    write_files(
        c,
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo about to fail && exit 3\nCMD true\n",
        )],
    );
    let o = d.docker_build(&["-t", "seed:fail", dir]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(all.contains("about to fail"), "{all}");
    assert!(all.contains("returned a non-zero code: 3"), "{all}");
    assert!(!d
        .docker(&["image", "inspect", "seed:fail"])
        .status
        .success());

    // The build cache is pruned through the API.
    let (code, body) = d.api("POST", "/v1.47/build/prune", None);
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("\"RecordsDeleted\":0"), "{body}");
}

#[test]
fn plain_docker_build_uses_the_classic_builder_and_barge_build_works() {
    if skip() {
        return;
    }
    let d = Daemon::start_host_net();
    let ctx = tempfile::tempdir().expect("tempdir");
    let c = ctx.path();
    write_files(
        c,
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY hello.txt /hello.txt\nLABEL made.by=barge\nCMD [\"cat\", \"/hello.txt\"]\n",
            ),
            ("hello.txt", "hi from the context\n"),
            (".dockerignore", "secret.txt\n"),
            ("secret.txt", "no\n"),
        ],
    );
    let dir = c.to_str().expect("utf8");
    // No DOCKER_BUILDKIT: _ping's Builder-Version 1 makes CLI 28 take the classic builder.
    let o = d
        .docker_cmd(&["build", "-t", "plain:1", dir])
        .env_remove("DOCKER_BUILDKIT")
        .stdin(Stdio::null())
        .output()
        .expect("docker build");
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert!(text(&o.stdout).contains("Successfully tagged plain:1"));
    assert_eq!(d.ok(&["run", "--rm", "plain:1"]), "hi from the context");

    // barge build through the daemon; --progress=plain shows each step, its cache hit
    // and its time.
    let out = d.barge_ok(&["build", "-t", "bb:1", dir]);
    assert!(!out.is_empty());
    let out = d.barge_ok(&["build", "--progress=plain", "-t", "bb:1", dir]);
    assert!(
        out.contains("Step 2/4 : COPY hello.txt /hello.txt\n ---> Using cache\n ---> "),
        "{out}"
    );
    let timed = out
        .lines()
        .filter(|l| {
            l.strip_prefix(" ---> ").is_some_and(|r| {
                let (id, t) = r.split_once(' ').unwrap_or((r, ""));
                id.len() == 12 && t.starts_with('(') && t.ends_with("s)")
            })
        })
        .count();
    assert_eq!(timed, 4, "{out}");
    assert_eq!(d.ok(&["run", "--rm", "bb:1"]), "hi from the context");
    let label = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{index .Config.Labels \"made.by\"}}",
        "bb:1",
    ]);
    assert_eq!(label, "barge");
    // The ignored file is not in the context.
    write_files(c, &[("Dockerfile", "FROM busybox\nCOPY secret.txt /s\n")]);
    let o = d.barge(&["build", "-t", "bb:bad", dir], None);
    assert!(!o.status.success());
    assert!(!d.docker(&["image", "inspect", "bb:bad"]).status.success());
    // A syntax error names the line, and nothing is tagged.
    write_files(c, &[("Dockerfile", "FROM busybox\nNOTANINSTRUCTION x\n")]);
    let o = d.docker_build(&["-t", "bad:1", dir]);
    assert!(!o.status.success());
    let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(all.contains('2'), "{all}");
    assert!(!d.docker(&["image", "inspect", "bad:1"]).status.success());
}

#[test]
fn docker_py_build_pull_push() {
    if skip() {
        return;
    }
    let reg = Registry::start(None);
    let d = Daemon::start_host_net();
    let ctx = tempfile::tempdir().expect("tempdir");
    write_files(
        ctx.path(),
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo py > /py.txt\nCMD [\"cat\", \"/py.txt\"]\n",
        )],
    );
    let script = r#"
import docker, sys
ctx, reg = sys.argv[1], sys.argv[2]
c = docker.DockerClient(base_url=sys.argv[3], version="1.47")
img, logs = c.images.build(path=ctx, tag="pyimg:1")
assert any("Successfully built" in l.get("stream", "") for l in logs), list(logs)
assert "pyimg:1" in img.tags, img.tags
assert img.tag(f"{reg}/py/img", "1")
out = c.images.push(f"{reg}/py/img", tag="1")
assert "digest: sha256:" in out, out
c.images.remove(f"{reg}/py/img:1")
p = c.images.pull(f"{reg}/py/img", tag="1")
assert p.id == img.id, (p.id, img.id)
try:
    c.images.pull(f"{reg}/py/absent", tag="1")
    raise SystemExit("pulled an absent image")
except docker.errors.NotFound as e:
    print("absent:", e)
print(c.containers.run("pyimg:1", remove=True).decode().strip())
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(ctx.path())
        .arg(reg.host())
        .arg(format!("unix://{}", d.sock.display()))
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "docker-py: {}{}\n{}",
        text(&o.stdout),
        text(&o.stderr),
        d.log()
    );
    let out = text(&o.stdout);
    assert!(out.contains("absent:"), "{out}");
    assert!(out.trim_end().ends_with("py"), "{out}");
    assert!(eventually(5, || d
        .docker(&["image", "inspect", "pyimg:1"])
        .status
        .success()));
}

#[test]
fn build_pulls_a_missing_base_and_pull_refreshes_it() {
    if skip() {
        return;
    }
    let reg = Registry::start(None);
    let d = Daemon::start_host_net();
    let base = format!("{}/build/base:1", reg.host());
    let ctx = tempfile::tempdir().expect("tempdir");
    let c = ctx.path();
    let dir = c.to_str().expect("utf8");
    // Two versions of the base, "one" then "two", pushed under the same tag.
    write_files(
        c,
        &[("Dockerfile", "FROM busybox\nRUN echo one > /which\n")],
    );
    d.barge_ok(&["build", "-q", "-t", &base, dir]);
    let one = d.image_id(&base);
    d.barge_ok(&["push", &base]);
    // The base is only in the registry now: the build pulls it.
    d.ok(&["rmi", &base]);
    write_files(
        c,
        &[(
            "Dockerfile",
            &format!("FROM {base}\nRUN echo \"which=$(cat /which)\"\n"),
        )],
    );
    let out = d.barge_ok(&["build", "--no-cache", "-t", "pulled:1", dir]);
    assert!(out.contains("which=one"), "{out}");
    assert!(out.contains("Pulling from build/base"), "{out}");
    assert_eq!(d.image_id(&base), one);
    // The registry gets "two"; the store keeps "one" under the tag.
    let next = tempfile::tempdir().expect("tempdir");
    write_files(
        next.path(),
        &[("Dockerfile", "FROM busybox\nRUN echo two > /which\n")],
    );
    d.barge_ok(&[
        "build",
        "-q",
        "-t",
        &base,
        next.path().to_str().expect("utf8"),
    ]);
    d.barge_ok(&["push", &base]);
    d.barge_ok(&["tag", &one, &base]);
    // Without --pull the stored base is used; with --pull the registry's.
    let out = d.barge_ok(&["build", "--no-cache", "-t", "pulled:2", dir]);
    assert!(out.contains("which=one"), "{out}");
    let out = d.barge_ok(&["build", "--no-cache", "--pull", "-t", "pulled:3", dir]);
    assert!(out.contains("which=two"), "{out}");
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_ne!(d.image_id(&base), one);
    // A base that is in no registry: the error names it, nothing is tagged.
    let missing = format!("{}/build/absent:1", reg.host());
    write_files(c, &[("Dockerfile", &format!("FROM {missing}\nRUN true\n"))]);
    let o = d.barge(&["build", "-t", "pulled:bad", dir], None);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("build/absent") && err.contains("Dockerfile:1"),
        "{err}"
    );
    assert!(!d
        .docker(&["image", "inspect", "pulled:bad"])
        .status
        .success());
    // --cache-from through the CLI: a fresh builder cache reuses the image's layers.
    write_files(c, &[("Dockerfile", "FROM busybox\nRUN echo cached > /c\n")]);
    d.barge_ok(&["build", "-t", "cf:1", dir]);
    d.barge_ok(&["builder", "prune", "-f"]);
    let out = d.barge_ok(&["build", "--cache-from", "cf:1", "-t", "cf:2", dir]);
    assert!(
        out.contains("Using cache") && !out.contains("Running in"),
        "{out}"
    );
    assert_eq!(d.image_id("cf:1"), d.image_id("cf:2"));
}

#[test]
fn barge_build_secrets_reach_only_their_run() {
    if skip() {
        return;
    }
    let d = Daemon::start_host_net();
    let ctx = tempfile::tempdir().expect("tempdir");
    let c = ctx.path();
    let secret = "s3cr3t-from-a-file";
    write_files(
        c,
        &[
            ("token.txt", secret),
            (
                "Dockerfile",
                "FROM busybox\n\
                 RUN --mount=type=secret,id=tok echo \"len=$(wc -c < /run/secrets/tok)\"\n\
                 RUN --mount=type=secret,id=api,env=API_KEY echo \"api=${#API_KEY}\"\n\
                 RUN ls /run > /ls.txt 2>&1; echo marker-7781 > /marker\n",
            ),
        ],
    );
    let dir = c.to_str().expect("utf8");
    let file = c.join("token.txt");
    let mut cmd = d.barge_cmd(&["build", "-t", "sec:1", "--secret"]);
    cmd.env("API_KEY_SRC", "k3y-v4lue-zq")
        .arg(format!("id=tok,src={}", file.display()))
        .args(["--secret", "id=api,env=API_KEY_SRC", dir]);
    let o = cmd.output().expect("barge build");
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{out}\n{}", d.log());
    assert!(out.contains(&format!("len={}", secret.len())), "{out}");
    assert!(out.contains("api=12"), "{out}");
    // Not in the image: its config, history and files (a save of it).
    let inspect = d.ok(&["image", "inspect", "sec:1"]);
    let hist = d.ok(&["history", "--no-trunc", "sec:1"]);
    assert!(!inspect.contains(secret) && !hist.contains(secret) && !hist.contains("k3y-v4lue-zq"));
    let saved = d.docker(&["save", "sec:1"]);
    assert!(saved.status.success());
    let blob = String::from_utf8_lossy(&saved.stdout);
    // The save holds the layers' files in plain (so the search below means something).
    assert!(blob.contains("marker-7781"));
    assert!(!blob.contains(secret) && !blob.contains("k3y-v4lue-zq"));
    // A secret file that is not there: the CLI says so and sends nothing.
    let o = d.barge(
        &[
            "build",
            "--secret",
            "id=x,src=/nonexistent/secret",
            "-t",
            "sec:2",
            dir,
        ],
        None,
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("/nonexistent/secret"),
        "{}",
        text(&o.stderr)
    );
    assert!(!d.docker(&["image", "inspect", "sec:2"]).status.success());
}

/// `image prune` (dangling, `-a`, label and until filters), `container prune` and
/// `network prune` with filters, and `rmi` of an image whose layers a running container's
/// image shares, as dockerd answers them.
#[test]
fn prunes_take_filters_and_shared_layers_do_not_pin_images() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let tar = engine::busybox_tar().to_str().unwrap_or_default();
    // More images of busybox's very layer, imported a second apart (so other ids).
    let import = |name: &str| {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        d.ok(&["import", "--change", "LABEL team=qa", tar, name])
    };
    d.ok(&["run", "-d", "--name", "c1", "busybox", "sleep", "100"]);
    // rmi of an image with the same layers as the running container's: deleted.
    let twin2 = import("twin2:1");
    let o = d.ok(&["rmi", "twin2:1"]);
    assert!(o.contains(&format!("Deleted: {twin2}")), "{o}");

    // image prune: a dangling image goes; a dangling one a container uses stays.
    let used = import("used:1");
    d.ok(&["create", "--name", "u", "used:1", "true"]);
    d.ok(&["tag", "busybox", "used:1"]);
    let gone = import("gone:1");
    d.ok(&["tag", "busybox", "gone:1"]);
    let twin = import("twin:1");
    let ids = || d.ok(&["images", "-a", "-q", "--no-trunc"]);
    assert!(ids().contains(&used) && ids().contains(&gone), "{}", ids());
    let o = d.ok(&["image", "prune", "-f"]);
    assert!(o.contains(&gone), "{o}");
    assert!(!ids().contains(&gone), "{o}\n{}", ids());
    assert!(ids().contains(&used) && ids().contains(&twin), "{}", ids());
    // -a with a label filter: only labelled images no container uses (twin has the
    // label; busybox has none; the image of `u` is in use).
    let (code, body) = d.api(
        "POST",
        "/images/prune?filters=%7B%22dangling%22%3A%5B%22false%22%5D%2C%22label%22%3A%5B%22team%3Dqa%22%5D%7D",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let deleted = v["ImagesDeleted"].to_string();
    assert!(deleted.contains("\"Untagged\":\"twin:1\""), "{deleted}");
    assert!(deleted.contains(&twin), "{deleted}");
    assert!(!deleted.contains(&used), "{deleted}");
    assert!(v["SpaceReclaimed"].is_u64(), "{body}");
    // until in the past: nothing is old enough.
    let o = d.ok(&["image", "prune", "-a", "-f", "--filter", "until=2000-01-01"]);
    assert!(!o.contains("Deleted"), "{o}");
    assert!(ids().contains(&used), "{}", ids());
    // Bad filters: a 400 naming them.
    let (code, body) = d.api(
        "POST",
        "/images/prune?filters=%7B%22color%22%3A%5B%22red%22%5D%7D",
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalid filter 'color'"), "{body}");
    let (code, body) = d.api(
        "POST",
        "/containers/prune?filters=%7B%22until%22%3A%5B%22soon%22%5D%7D",
        None,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("until=soon"), "{body}");

    // container prune: until, label! and label.
    d.ok(&["create", "--name", "l1", "-l", "k=v", "busybox", "true"]);
    d.ok(&["create", "--name", "l2", "busybox", "true"]);
    let o = d.ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    assert!(!o.contains("Deleted"), "nothing is an hour old: {o}");
    d.ok(&["container", "prune", "-f", "--filter", "label!=k=v"]);
    let names = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(
        names.contains("l1") && !names.contains("l2") && !names.lines().any(|l| l == "u"),
        "{names}"
    );
    d.ok(&["container", "prune", "-f", "--filter", "label=k"]);
    assert_eq!(
        d.ok(&["ps", "-a", "--format", "{{.Names}}"]),
        "c1",
        "the running container stays"
    );

    // network prune with a label filter.
    d.ok(&["network", "create", "--label", "env=ci", "n-ci"]);
    d.ok(&["network", "create", "n-other"]);
    let o = d.ok(&["network", "prune", "-f", "--filter", "label=env=ci"]);
    assert!(o.contains("n-ci") && !o.contains("n-other"), "{o}");
    let nets = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(nets.contains("n-other") && !nets.contains("n-ci"), "{nets}");
    d.ok(&["network", "rm", "n-other"]);
    d.ok(&["rm", "-f", "c1"]);
}
