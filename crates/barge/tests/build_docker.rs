//! Builds end to end through `POST /build`, as Docker's users drive it: the real docker CLI's
//! classic builder (`DOCKER_BUILDKIT=0 docker build`) with each option issue #7 lists, the
//! contexts it can send (a directory, a tar on stdin, a Dockerfile alone on stdin, `-f`
//! outside the context), the Dockerfile features a child build or the parser must honour
//! (ONBUILD, heredocs, `# escape=`), the cache across a daemon restart and its pruning, the
//! history `docker history` shows, and docker-py's `images.build` with its options.
//! Expectations come from the Dockerfile reference and the Engine API reference for
//! `POST /build`. Root only (as CI); busybox is made locally and imported.

mod common;
mod engine;

use engine::{skip, table_header, text, write_files, Daemon};
use std::path::Path;
use std::process::{Command, Stdio};

/// [`Daemon::docker_build_with`] that must succeed; returns stdout.
fn build_ok(d: &Daemon, args: &[&str], stdin: Option<&[u8]>) -> String {
    let o = d.docker_build_with(args, stdin);
    assert!(
        o.status.success(),
        "docker build {args:?}: {}{}\n{}",
        text(&o.stdout),
        text(&o.stderr),
        d.log()
    );
    text(&o.stdout)
}

fn tagged(d: &Daemon, name: &str) -> bool {
    d.docker(&["image", "inspect", name]).status.success()
}

/// A tar of directory `dir` (its entries at the top level, as `tar -C dir .`).
fn tar_of(dir: &Path) -> Vec<u8> {
    let o = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .expect("tar");
    assert!(o.status.success(), "tar: {}", text(&o.stderr));
    o.stdout
}

#[test]
fn docker_build_options_reach_the_image() {
    if skip() {
        return;
    }
    let d = Daemon::start_host_net();
    let ctx = tempfile::tempdir().expect("tempdir");
    let c = ctx.path();
    // The default Dockerfile would fail: -f must pick the other one.
    write_files(
        c,
        &[
            ("Dockerfile", "FROM busybox\nRUN exit 9\n"),
            (
                "build/other.Dockerfile",
                "FROM busybox AS base\nARG VERSION=0\nRUN echo \"v=$VERSION\" > /version\nCOPY app.txt /app.txt\n\
                 FROM base AS final\nRUN echo final > /final\n\
                 FROM base AS broken\nRUN exit 7\n",
            ),
            ("app.txt", "app\n"),
        ],
    );
    let dir = c.to_str().expect("utf8");
    // The CLI takes -f relative to its working directory, not to the context.
    let other = c.join("build/other.Dockerfile");
    let other = other.to_str().expect("utf8");
    // -t twice, -f, --target, --build-arg, --label.
    let out = build_ok(
        &d,
        &[
            "-f",
            other,
            "--target",
            "final",
            "--build-arg",
            "VERSION=3",
            "--label",
            "team=qa",
            "-t",
            "opt:one",
            "-t",
            "opt:two",
            dir,
        ],
        None,
    );
    assert!(out.contains("Successfully tagged opt:one"), "{out}");
    assert!(out.contains("Successfully tagged opt:two"), "{out}");
    assert!(
        !out.contains("exit 7") && !out.contains("exit 9"),
        "a stage the target does not need was built: {out}"
    );
    assert_eq!(d.image_id("opt:one"), d.image_id("opt:two"));
    assert_eq!(
        d.ok(&["run", "--rm", "opt:one", "cat", "/version", "/final", "/app.txt"]),
        "v=3\nfinal\napp"
    );
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"team\"}}",
            "opt:one"
        ]),
        "qa"
    );
    // Built again: every step from the cache, same image.
    let out = build_ok(
        &d,
        &[
            "-f",
            other,
            "--target",
            "final",
            "--build-arg",
            "VERSION=3",
            "--label",
            "team=qa",
            "-t",
            "opt:again",
            dir,
        ],
        None,
    );
    assert!(
        out.contains("Using cache") && !out.contains("Running in"),
        "{out}"
    );
    assert_eq!(d.image_id("opt:again"), d.image_id("opt:one"));
    // --no-cache runs every RUN again.
    let out = build_ok(
        &d,
        &[
            "--no-cache",
            "-f",
            other,
            "--target",
            "final",
            "--build-arg",
            "VERSION=3",
            "-t",
            "opt:nocache",
            dir,
        ],
        None,
    );
    assert!(!out.contains("Using cache"), "{out}");
    assert_eq!(out.matches("Running in").count(), 2, "{out}");
    // Another build arg value misses the cache from its RUN on.
    let out = build_ok(
        &d,
        &[
            "-f",
            other,
            "--target",
            "base",
            "--build-arg",
            "VERSION=4",
            "-t",
            "opt:base",
            dir,
        ],
        None,
    );
    assert!(out.contains("Running in"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", "opt:base", "cat", "/version"]), "v=4");
    assert!(!d
        .docker(&["run", "--rm", "opt:base", "test", "-e", "/final"])
        .status
        .success());
    // -q prints the image id alone.
    let q = build_ok(
        &d,
        &[
            "-q",
            "-f",
            other,
            "--target",
            "base",
            "--build-arg",
            "VERSION=4",
            dir,
        ],
        None,
    );
    assert_eq!(q.trim(), d.image_id("opt:base"));
    // -f naming a file outside the context: the CLI sends it inside the context.
    let outside = tempfile::tempdir().expect("tempdir");
    let df = outside.path().join("outside.Dockerfile");
    std::fs::write(&df, "FROM busybox\nCOPY app.txt /from-outside.txt\n").expect("write");
    build_ok(
        &d,
        &["-f", df.to_str().expect("utf8"), "-t", "opt:outside", dir],
        None,
    );
    assert_eq!(
        d.ok(&["run", "--rm", "opt:outside", "cat", "/from-outside.txt"]),
        "app"
    );
    // -f naming a file that is not there, and a --target that is no stage: clear errors,
    // nothing tagged.
    let o = d.docker_build_with(&["-f", "nope.Dockerfile", "-t", "opt:bad1", dir], None);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("nope.Dockerfile"),
        "{}",
        text(&o.stderr)
    );
    let o = d.docker_build_with(
        &["-f", other, "--target", "nostage", "-t", "opt:bad2", dir],
        None,
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("nostage"),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(!tagged(&d, "opt:bad1") && !tagged(&d, "opt:bad2"));

    // --cache-from: with the builder's cache pruned, an image's own history serves as cache.
    write_files(c, &[("Dockerfile", "FROM busybox\nRUN echo cached > /c\n")]);
    build_ok(&d, &["-t", "cf:1", dir], None);
    let pruned = d.ok(&["builder", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    let out = build_ok(&d, &["--no-cache", "-t", "cf:nc", dir], None);
    assert!(out.contains("Running in"), "{out}");
    d.ok(&["builder", "prune", "-f"]);
    let out = build_ok(&d, &["--cache-from", "cf:1", "-t", "cf:2", dir], None);
    assert!(
        out.contains("Using cache") && !out.contains("Running in"),
        "{out}"
    );
    assert_eq!(d.image_id("cf:1"), d.image_id("cf:2"));
}

#[test]
fn docker_build_contexts_from_stdin_and_dockerignore_exceptions() {
    if skip() {
        return;
    }
    let d = Daemon::start_host_net();
    let ctx = tempfile::tempdir().expect("tempdir");
    let c = ctx.path();
    write_files(
        c,
        &[
            ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
            ("alt.Dockerfile", "FROM busybox\nCOPY secret/keep /alt\n"),
            (".dockerignore", "*.log\nsecret/\n!secret/keep\n**/*.tmp\n"),
            ("app.txt", "app\n"),
            ("debug.log", "log\n"),
            ("secret/key", "k\n"),
            ("secret/keep", "keep\n"),
            ("deep/er/x.tmp", "t\n"),
            ("deep/er/y.txt", "y\n"),
        ],
    );
    let listing = |img: &str| {
        d.ok(&[
            "run",
            "--rm",
            img,
            "sh",
            "-c",
            "cd /ctx && find . -type f | sort",
        ])
    };
    // The directory (the CLI applies .dockerignore as it makes the tar) ...
    build_ok(&d, &["-t", "ign:dir", c.to_str().expect("utf8")], None);
    let want = "./.dockerignore\n./Dockerfile\n./alt.Dockerfile\n./app.txt\n./deep/er/y.txt\n./secret/keep";
    assert_eq!(listing("ign:dir"), want);
    // ... and the same context as a tar on stdin, which the CLI sends as it is: the daemon
    // applies .dockerignore, exceptions included.
    let tar = tar_of(c);
    build_ok(&d, &["-t", "ign:tar", "-"], Some(&tar));
    assert_eq!(listing("ign:tar"), want);
    // A tar on stdin with -f naming another file in it.
    build_ok(
        &d,
        &["-f", "alt.Dockerfile", "-t", "ign:alt", "-"],
        Some(&tar),
    );
    assert_eq!(d.ok(&["run", "--rm", "ign:alt", "cat", "/alt"]), "keep");
    // A compressed tar on stdin (the Engine API takes gzip).
    let gz = {
        let mut ch = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip");
        {
            use std::io::Write;
            ch.stdin
                .take()
                .expect("stdin")
                .write_all(&tar)
                .expect("gzip in");
        }
        let o = ch.wait_with_output().expect("gzip");
        assert!(o.status.success());
        o.stdout
    };
    build_ok(&d, &["-t", "ign:gz", "-"], Some(&gz));
    assert_eq!(listing("ign:gz"), want);
    // `-` with only a Dockerfile on stdin: no context, RUN still runs.
    let out = build_ok(
        &d,
        &["-t", "stdin:df", "-"],
        Some(b"FROM busybox\nRUN echo from-stdin > /s\nCMD [\"cat\", \"/s\"]\n"),
    );
    assert!(out.contains("Successfully tagged stdin:df"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", "stdin:df"]), "from-stdin");
    // ... and a COPY in it finds no source: a clear error, nothing tagged.
    let o = d.docker_build_with(
        &["-t", "stdin:bad", "-"],
        Some(b"FROM busybox\nCOPY app.txt /app.txt\n"),
    );
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("app.txt") && err.contains("Dockerfile:2"),
        "{err}"
    );
    assert!(!tagged(&d, "stdin:bad"));
    // An ignored file cannot be copied, even named explicitly.
    write_files(c, &[("Dockerfile", "FROM busybox\nCOPY secret/key /k\n")]);
    let o = d.docker_build_with(&["-t", "ign:bad", "-"], Some(&tar_of(c)));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("secret/key"),
        "{}",
        text(&o.stderr)
    );
    assert!(!tagged(&d, "ign:bad"));
}

#[test]
fn docker_build_onbuild_heredocs_escape_and_errors() {
    if skip() {
        return;
    }
    let d = Daemon::start_host_net();
    let ctx = tempfile::tempdir().expect("tempdir");
    let c = ctx.path();
    let dir = c.to_str().expect("utf8");
    // ONBUILD: recorded in the parent, run at the start of a child build (in the child's
    // context), not inherited by the grandchild.
    write_files(
        c,
        &[(
            "Dockerfile",
            "FROM busybox\nONBUILD RUN echo triggered > /trigger\nONBUILD COPY data.txt /data.txt\n",
        )],
    );
    build_ok(&d, &["-t", "parent:1", dir], None);
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.OnBuild}}",
            "parent:1"
        ]),
        r#"["RUN echo triggered > /trigger","COPY data.txt /data.txt"]"#
    );
    assert!(!d
        .docker(&["run", "--rm", "parent:1", "test", "-e", "/trigger"])
        .status
        .success());
    let child = tempfile::tempdir().expect("tempdir");
    write_files(
        child.path(),
        &[
            (
                "Dockerfile",
                "FROM parent:1\nRUN cat /trigger /data.txt > /both\n",
            ),
            ("data.txt", "child data\n"),
        ],
    );
    let out = build_ok(
        &d,
        &["-t", "child:1", child.path().to_str().expect("utf8")],
        None,
    );
    assert!(out.contains("Executing 2 build trigger"), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", "child:1", "cat", "/both"]),
        "triggered\nchild data"
    );
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.OnBuild}}",
            "child:1"
        ]),
        "null"
    );
    // A trigger that fails fails the child build and tags nothing.
    write_files(c, &[("Dockerfile", "FROM busybox\nONBUILD RUN exit 5\n")]);
    build_ok(&d, &["-t", "parent:bad", dir], None);
    write_files(
        child.path(),
        &[("Dockerfile", "FROM parent:bad\nRUN echo never\n")],
    );
    let o = d.docker_build_with(
        &["-t", "child:bad", child.path().to_str().expect("utf8")],
        None,
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o.stderr));
    assert!(!tagged(&d, "child:bad"));

    // Heredocs: RUN with a script, COPY of an inline file, a quoted delimiter (no expansion).
    write_files(
        c,
        &[(
            "Dockerfile",
            "FROM busybox\nENV WHO=world\nRUN <<EOF\necho one > /h1\necho \"two $WHO\" >> /h1\nEOF\n\
             COPY <<EOT /h2\nhello $WHO\nEOT\nRUN <<'EOF'\necho '$WHO' \"$WHO\" > /h3\nEOF\n",
        )],
    );
    build_ok(&d, &["-t", "heredoc:1", dir], None);
    assert_eq!(
        d.ok(&["run", "--rm", "heredoc:1", "cat", "/h1", "/h2", "/h3"]),
        "one\ntwo world\nhello world\n$WHO world"
    );
    // `# escape=` makes the backtick the escape and line continuation character; a
    // backslash is then plain text and reaches the shell as written.
    write_files(
        c,
        &[(
            "Dockerfile",
            "# escape=`\nFROM busybox\nRUN echo a `\n    b > /e && echo 'C:\\dir' >> /e\n",
        )],
    );
    build_ok(&d, &["-t", "escape:1", dir], None);
    assert_eq!(
        d.ok(&["run", "--rm", "escape:1", "cat", "/e"]),
        "a b\nC:\\dir"
    );
    // Errors name the line and column, through the CLI's output; nothing is tagged.
    for (df, want) in [
        ("FROM busybox\n  BOGUS x\n", "Dockerfile:2:3"),
        (
            "FROM busybox\nRUN true\nCOPY missing.txt /m\n",
            "Dockerfile:3",
        ),
        ("FROM busybox\nCOPY ../x /x\n", "Dockerfile:2"),
        ("FROM busybox\nCOPY --from=nostage /a /a\n", "Dockerfile:2"),
    ] {
        write_files(c, &[("Dockerfile", df)]);
        let o = d.docker_build_with(&["-t", "err:1", dir], None);
        let all = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert!(!o.status.success(), "{df}: {all}");
        assert!(all.contains(want), "{df}: no {want} in {all}");
        assert!(!tagged(&d, "err:1"), "{df}");
    }
}

#[test]
fn build_cache_survives_a_restart_prunes_and_history_shows_steps() {
    if skip() {
        return;
    }
    let mut d = Daemon::start_host_net();
    let ctx = tempfile::tempdir().expect("tempdir");
    let c = ctx.path();
    let dir = c.to_str().expect("utf8");
    write_files(
        c,
        &[
            (
                "Dockerfile",
                "FROM busybox\nENV A=1\nWORKDIR /app\nRUN echo built > /built\nCOPY a.txt /app/\n\
                 RUN cat /app/a.txt > /copy\nLABEL x=y\nEXPOSE 80\nUSER 1000\nCMD [\"cat\", \"/copy\"]\n",
            ),
            ("a.txt", "one\n"),
        ],
    );
    let first = build_ok(&d, &["-t", "c:1", dir], None);
    assert!(!first.contains("Using cache"), "{first}");
    let id = d.image_id("c:1");

    // History as `docker history` shows it: newest first, one row per instruction on top of
    // the base's, metadata rows with no size, the image's id on the top row only.
    let base_rows = d.ok(&["history", "-q", "busybox"]).lines().count();
    let rows = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}|{{.Size}}",
        "c:1",
    ]);
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len(), base_rows + 9, "{rows:#?}");
    let field = |i: usize, f: usize| rows[i].split('|').nth(f).unwrap_or_default();
    assert_eq!(field(0, 0), id, "{rows:#?}");
    assert!(
        rows[1..9].iter().all(|r| r.starts_with("<missing>|")),
        "{rows:#?}"
    );
    let by: Vec<&str> = (0..9).map(|i| field(i, 1)).collect();
    assert_eq!(
        by[0], r#"/bin/sh -c #(nop)  CMD ["cat" "/copy"]"#,
        "{by:#?}"
    );
    assert_eq!(by[1], "/bin/sh -c #(nop)  USER 1000", "{by:#?}");
    assert_eq!(by[3], "/bin/sh -c #(nop)  LABEL x=y", "{by:#?}");
    assert_eq!(by[4], "/bin/sh -c cat /app/a.txt > /copy", "{by:#?}");
    assert!(
        by[5].starts_with("/bin/sh -c #(nop) COPY file:") && by[5].ends_with(" in /app/ "),
        "{by:#?}"
    );
    assert_eq!(by[6], "/bin/sh -c echo built > /built", "{by:#?}");
    assert_eq!(by[7], "/bin/sh -c #(nop) WORKDIR /app", "{by:#?}");
    assert_eq!(by[8], "/bin/sh -c #(nop)  ENV A=1", "{by:#?}");
    for i in [0, 1, 2, 3, 7, 8] {
        assert_eq!(field(i, 2), "0B", "{rows:#?}");
    }
    for i in [4, 5, 6] {
        assert_ne!(field(i, 2), "0B", "{rows:#?}");
    }
    let table = d.ok(&["history", "c:1"]);
    let header = table_header(&table);
    assert_eq!(
        header,
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        "{table}"
    );

    // The cache survives the daemon's kill -9 and restart.
    d.kill9();
    d.spawn();
    let out = build_ok(&d, &["-t", "c:2", dir], None);
    assert_eq!(out.matches("Using cache").count(), 9, "{out}");
    assert!(!out.contains("Running in"), "{out}");
    assert_eq!(d.image_id("c:2"), id);
    // Editing the copied file: the steps before its COPY still hit, the rest miss.
    write_files(c, &[("a.txt", "two\n")]);
    let out = build_ok(&d, &["-t", "c:3", dir], None);
    assert_eq!(out.matches("Using cache").count(), 3, "{out}");
    assert_eq!(d.ok(&["run", "--rm", "c:3"]), "two");
    // `builder prune` drops the cache...
    let p = d.ok(&["builder", "prune", "-f"]);
    assert!(p.contains("Total reclaimed space"), "{p}");
    let out = build_ok(&d, &["-t", "c:4", dir], None);
    assert!(!out.contains("Using cache"), "{out}");
    assert_eq!(out.matches("Running in").count(), 2, "{out}");
    let again = build_ok(&d, &["-t", "c:4", dir], None);
    assert_eq!(again.matches("Using cache").count(), 9, "{again}");
    // ... and so does `system prune`, which keeps tagged images.
    let p = d.ok(&["system", "prune", "-f"]);
    assert!(p.contains("Total reclaimed space"), "{p}");
    assert!(tagged(&d, "c:4"));
    let out = build_ok(&d, &["-t", "c:5", dir], None);
    assert!(!out.contains("Using cache"), "{out}");
    assert_eq!(d.ok(&["run", "--rm", "c:5"]), "two");
}

#[test]
fn docker_py_images_build_with_its_options() {
    if skip() {
        return;
    }
    let d = Daemon::start_host_net();
    let ctx = tempfile::tempdir().expect("tempdir");
    write_files(
        ctx.path(),
        &[
            (
                "Dockerfile.alt",
                "FROM busybox AS base\nARG V=0\nRUN echo \"v=$V\" > /v\nCOPY app.txt /app.txt\n\
                 FROM base AS final\nRUN echo final > /final\nFROM base AS broken\nRUN exit 4\n",
            ),
            ("app.txt", "app\n"),
            (".dockerignore", "*.log\n"),
            ("x.log", "no\n"),
        ],
    );
    let script = r#"
import docker, io, sys, tarfile
ctx = sys.argv[1]
c = docker.DockerClient(base_url=sys.argv[2], version="1.47")

def run(img, *cmd):
    return c.containers.run(img, list(cmd), remove=True).decode().strip()

def log_text(logs):
    return "".join(l.get("stream", "") for l in logs)

# path, dockerfile, buildargs, target, labels, tag, rm, forcerm, network_mode
img, logs = c.images.build(path=ctx, dockerfile="Dockerfile.alt", buildargs={"V": "7"},
                           target="final", labels={"team": "py"}, tag="pyb:1", rm=True,
                           forcerm=True, network_mode="none")
text = log_text(logs)
assert "exit 4" not in text, text
assert "pyb:1" in img.tags, img.tags
assert img.labels.get("team") == "py", img.labels
assert run("pyb:1", "cat", "/v", "/final", "/app.txt") == "v=7\nfinal\napp"

# the cache, then nocache
img2, logs = c.images.build(path=ctx, dockerfile="Dockerfile.alt", buildargs={"V": "7"},
                            target="final", labels={"team": "py"}, tag="pyb:2",
                            network_mode="none")
text = log_text(logs)
assert img2.id == img.id and "Using cache" in text and "Running in" not in text, text
img3, logs = c.images.build(path=ctx, dockerfile="Dockerfile.alt", buildargs={"V": "7"},
                            target="final", tag="pyb:3", nocache=True)
text = log_text(logs)
assert "Using cache" not in text and text.count("Running in") == 2, text

# quiet: the stream holds only the id, which images.build still resolves
img4, logs = c.images.build(path=ctx, dockerfile="Dockerfile.alt", target="base", quiet=True)
logs = list(logs)
assert all(set(l) <= {"stream", "aux"} for l in logs), logs
assert any(l.get("stream", "").strip() == img4.id for l in logs), (logs, img4.id)

# fileobj: a Dockerfile alone
df = io.BytesIO(b"FROM busybox\nRUN echo fileobj > /f\nCMD [\"cat\", \"/f\"]\n")
img5, _ = c.images.build(fileobj=df, tag="pyb:fileobj")
assert run("pyb:fileobj") == "fileobj"

# custom_context: a gzipped tar, with .dockerignore applied by the daemon
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as t:
    for name, data in [("Dockerfile", b"FROM busybox\nCOPY . /ctx/\n"),
                       (".dockerignore", b"*.log\n"), ("keep.txt", b"k\n"), ("drop.log", b"d\n")]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
buf.seek(0)
img6, _ = c.images.build(fileobj=buf, custom_context=True, encoding="gzip", tag="pyb:custom")
assert run("pyb:custom", "ls", "-A", "/ctx") == ".dockerignore\nDockerfile\nkeep.txt"

# cache_from: an image's history serves as cache once the builder's cache is gone
c.api.prune_builds()
img7, logs = c.images.build(path=ctx, dockerfile="Dockerfile.alt", buildargs={"V": "7"},
                            target="final", labels={"team": "py"}, cache_from=["pyb:1"],
                            tag="pyb:cf", network_mode="none")
text = log_text(logs)
assert img7.id == img.id and "Running in" not in text, text

# a failing RUN raises BuildError with the output and the code; nothing tagged
try:
    c.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN echo about-to-fail && exit 3\n"),
                   tag="pyb:fail")
    raise SystemExit("a failing build succeeded")
except docker.errors.BuildError as e:
    text = log_text(e.build_log)
    assert "about-to-fail" in text, text
    assert "returned a non-zero code: 3" in str(e), str(e)
try:
    c.images.get("pyb:fail")
    raise SystemExit("a failed build was tagged")
except docker.errors.ImageNotFound:
    pass

# a syntax error names the line
try:
    c.images.build(fileobj=io.BytesIO(b"FROM busybox\nBOGUS x\n"), tag="pyb:syntax")
    raise SystemExit("a bad Dockerfile built")
except (docker.errors.BuildError, docker.errors.APIError) as e:
    assert "Dockerfile:2" in str(e), str(e)
print("ok")
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(ctx.path())
        .arg(format!("unix://{}", d.sock.display()))
        .output()
        .expect("python3");
    assert!(
        o.status.success() && text(&o.stdout).trim_end().ends_with("ok"),
        "docker-py: {}{}\n{}",
        text(&o.stdout),
        text(&o.stderr),
        d.log()
    );
}

#[test]
fn shell_platform_copy_from_an_image_maintainer_and_barge_build_flags() {
    if skip() {
        return;
    }
    let d = Daemon::start_host_net();
    let ctx = tempfile::tempdir().expect("tempdir");
    let c = ctx.path();
    let dir = c.to_str().expect("utf8");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    // SHELL changes the shell of later shell-form RUNs (and CMD), FROM --platform takes the
    // host's platform, COPY --from takes an image that is no stage, MAINTAINER sets the
    // author (and the maintainer label, as BuildKit).
    write_files(
        c,
        &[(
            "Dockerfile",
            &format!(
                "FROM --platform=linux/{arch} busybox\nMAINTAINER someone@example.com\n\
                 SHELL [\"/bin/sh\", \"-xc\"]\nRUN echo traced > /traced\n\
                 COPY --from=busybox /etc/passwd /passwd.copy\nCMD echo from-cmd\n"
            ),
        )],
    );
    let out = build_ok(&d, &["-t", "sh:1", dir], None);
    // -x traces the command: the shell really was SHELL's.
    assert!(out.contains("+ echo traced"), "{out}");
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Shell}} {{json .Config.Cmd}} {{.Author}} {{.Config.Labels.maintainer}}",
            "sh:1"
        ]),
        r#"["/bin/sh","-xc"] ["/bin/sh","-xc","echo from-cmd"] someone@example.com someone@example.com"#
    );
    assert_eq!(
        d.ok(&["run", "--rm", "sh:1", "cmp", "/etc/passwd", "/passwd.copy"]),
        ""
    );
    // Another platform is refused with the line and what is supported; nothing tagged.
    write_files(
        c,
        &[(
            "Dockerfile",
            "FROM --platform=linux/s390x busybox\nRUN true\n",
        )],
    );
    let o = d.docker_build_with(&["-t", "sh:bad", dir], None);
    let err = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("Dockerfile:1") && err.contains("linux/s390x"),
        "{err}"
    );
    assert!(!tagged(&d, "sh:bad"));

    // barge build's own flags: -f (a path outside the context), --target, -t twice,
    // --build-arg, --label, --no-cache, -q; and a tar context on stdin.
    write_files(
        c,
        &[
            ("Dockerfile", "FROM busybox\nRUN exit 9\n"),
            ("data.txt", "data\n"),
        ],
    );
    let other = tempfile::tempdir().expect("tempdir");
    let df = other.path().join("multi.Dockerfile");
    std::fs::write(
        &df,
        "FROM busybox AS one\nARG N=0\nCOPY data.txt /d\nRUN echo \"n=$N\" > /n\n\
         FROM one AS two\nRUN echo two > /two\nFROM busybox AS bad\nRUN exit 3\n",
    )
    .expect("write");
    let df = df.to_str().expect("utf8");
    let args = [
        "build",
        "-f",
        df,
        "--target",
        "two",
        "-t",
        "bb:x",
        "-t",
        "bb:y",
        "--build-arg",
        "N=5",
        "--label",
        "k=v",
        dir,
    ];
    let o = d.barge(&args, None);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(d.image_id("bb:x"), d.image_id("bb:y"));
    assert_eq!(
        d.ok(&["run", "--rm", "bb:x", "cat", "/d", "/n", "/two"]),
        "data\nn=5\ntwo"
    );
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Config.Labels.k}}", "bb:x"]),
        "v"
    );
    let mut nc = args.to_vec();
    nc.insert(1, "--no-cache");
    nc.insert(1, "--progress=plain");
    let o = d.barge(&nc, None);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("Using cache"), "{out}");
    let mut q = args.to_vec();
    q.insert(1, "-q");
    let o = d.barge(&q, None);
    assert!(o.status.success());
    assert_eq!(text(&o.stdout).trim(), d.image_id("bb:x"));
    // A tar context on stdin, with -f naming a file inside it.
    write_files(
        c,
        &[("in.Dockerfile", "FROM busybox\nCOPY data.txt /from-tar\n")],
    );
    let o = d.barge(
        &["build", "-f", "in.Dockerfile", "-t", "bb:tar", "-"],
        Some(&tar_of(c)),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(d.ok(&["run", "--rm", "bb:tar", "cat", "/from-tar"]), "data");
    // --ssh: no agent forwarding, said before anything is sent.
    let o = d.barge(&["build", "--ssh", "default", "-t", "bb:ssh", dir], None);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("--ssh default: barge's builder has no SSH agent forwarding"),
        "{}",
        text(&o.stderr)
    );
    assert!(!tagged(&d, "bb:ssh"));
}

#[test]
fn docker_build_from_a_git_repository_and_remote_contexts() {
    if skip() {
        return;
    }
    let d = Daemon::start_host_net();
    let tmp = tempfile::tempdir().expect("tempdir");
    let git = common::GitServer::start(
        tmp.path(),
        &[
            ("Dockerfile", "FROM busybox\nCOPY hello.txt /hello.txt\n"),
            ("hello.txt", "hello v1\n"),
            ("app/Dockerfile", "FROM busybox\nCOPY . /app/\n"),
            ("app/x.txt", "x\n"),
        ],
    );
    git.tag("v1");
    git.commit(&[("hello.txt", "hello v2\n")], "second");
    // The real docker CLI's classic builder with a git:// context (it clones the
    // repository itself, defaulting to `master`, and sends the tar: name the branch).
    let url = git.url("");
    let out = build_ok(&d, &["-t", "fromgit:1", &git.url("#main")], None);
    assert!(out.contains("Successfully tagged fromgit:1"), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", "fromgit:1", "cat", "/hello.txt"]),
        "hello v2"
    );
    // #ref:subdir: the tag's app/ directory is the context (its .git is not in it).
    build_ok(&d, &["-t", "fromgit:2", &git.url("#v1:app")], None);
    assert_eq!(
        d.ok(&["run", "--rm", "fromgit:2", "ls", "-a", "/app"]),
        ".\n..\nDockerfile\nx.txt"
    );
    // barge's own CLI sends the URL as `remote`; the daemon fetches it (no ref: the
    // repository's default branch; a tag).
    for (suffix, want) in [("", "hello v2"), ("#v1", "hello v1")] {
        let o = d.barge(&["build", "-t", "fromgit:3", &git.url(suffix)], None);
        assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
        assert_eq!(
            d.ok(&["run", "--rm", "fromgit:3", "cat", "/hello.txt"]),
            want
        );
    }
    // `POST /build?remote=` with an unknown ref: the stream's error names the URL, the
    // ref and git's message; nothing is tagged.
    let (code, body) = d.api(
        "POST",
        &format!("/build?t=fromgit:bad&remote={url}%23nosuchref"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("errorDetail"), "{body}");
    for want in [url.as_str(), "ref nosuchref", "couldn't find remote ref"] {
        assert!(body.contains(want), "want {want:?} in {body}");
    }
    assert!(!tagged(&d, "fromgit:bad"));
    // A ref git could take for an option, a subdir out of the checkout and a URL of
    // another scheme are refused up front (400).
    for bad in [
        format!("{url}%23--upload-pack=touch"),
        format!("{url}%23main:../.."),
        "file:///etc".to_string(),
    ] {
        let (code, body) = d.api("POST", &format!("/build?remote={bad}"), None);
        assert_eq!(code, 400, "{bad}: {body}");
    }
}

/// The history and config a build gives, as the classic builder writes them: a base
/// without PATH gets the default one (so `$PATH` expands and the image finds its
/// programs), RUN's entry starts with the ARGs it sees, metadata entries show what they
/// set (expanded, sorted, as Go prints lists) after the stage's shell, and COPY names its
/// destination as written.
#[test]
fn history_and_path_as_the_classic_builder_writes_them() {
    if skip() {
        return;
    }
    let d = Daemon::start_host_net();
    let ctx = tempfile::tempdir().expect("tempdir");
    let dir = ctx.path().to_str().expect("utf8");
    write_files(
        ctx.path(),
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG NAME=world\nENV GREETING=\"hello $NAME\" PATH=/usr/local/bin:$PATH\n\
                 LABEL version=\"1.0\"\nEXPOSE 8080 53/udp\nVOLUME [\"/data\"]\nWORKDIR /app\n\
                 COPY a.txt ./\nRUN echo \"$GREETING\" > /app/greeting\nSHELL [\"/bin/sh\", \"-ec\"]\n\
                 CMD echo done\n",
            ),
            ("a.txt", "one\n"),
        ],
    );
    build_ok(&d, &["-t", "h:1", "--build-arg", "NAME=you", dir], None);
    let rows = d.ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "h:1"]);
    let by: Vec<&str> = rows.lines().take(10).collect();
    let path = "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    assert_eq!(
        by[0], r#"/bin/sh -ec #(nop)  CMD ["/bin/sh" "-ec" "echo done"]"#,
        "{by:#?}"
    );
    assert_eq!(by[1], "/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]", "{by:#?}");
    assert_eq!(
        by[2], "|1 NAME=you /bin/sh -c echo \"$GREETING\" > /app/greeting",
        "{by:#?}"
    );
    assert!(
        by[3].starts_with("/bin/sh -c #(nop) COPY file:") && by[3].ends_with(" in ./ "),
        "{by:#?}"
    );
    assert_eq!(by[4], "/bin/sh -c #(nop) WORKDIR /app", "{by:#?}");
    assert_eq!(by[5], "/bin/sh -c #(nop)  VOLUME [/data]", "{by:#?}");
    assert_eq!(
        by[6], "/bin/sh -c #(nop)  EXPOSE 53/udp 8080/tcp",
        "{by:#?}"
    );
    assert_eq!(by[7], "/bin/sh -c #(nop)  LABEL version=1.0", "{by:#?}");
    assert_eq!(
        by[8],
        format!("/bin/sh -c #(nop)  ENV GREETING=hello you PATH={path}"),
        "{by:#?}"
    );
    assert_eq!(by[9], "/bin/sh -c #(nop)  ARG NAME=world", "{by:#?}");
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{json .Config.Env}}", "h:1"]),
        format!(r#"["PATH={path}","GREETING=hello you"]"#)
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "h:1",
            "sh",
            "-c",
            "cat /app/greeting; ls /app"
        ]),
        "hello you\na.txt\ngreeting"
    );
}
