//! Builds: Dockerfiles to layered images through barge-build's `Builder`, on a busybox base
//! made locally (tests/fixtures/busybox-rootfs.sh, imported into a private store), with RUN
//! steps run by this package's barge binary (`barge runtime run`). Root only.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use barge_build::{BuildContext, BuildError, BuildOptions, BuildOutput, Builder, Event};
use barge_image::{Digest, Store};
use serde_json::Value;

struct Env {
    dir: tempfile::TempDir,
    store: Arc<Store>,
    builder: Builder,
}

fn setup() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = dir.path().join("bbroot");
    let st = Command::new("sh")
        .arg(common::fixture("busybox-rootfs.sh"))
        .arg(&rootfs)
        .status()
        .expect("busybox-rootfs.sh");
    assert!(st.success(), "busybox-rootfs.sh failed");
    let tar = dir.path().join("busybox.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let store = Arc::new(Store::open(dir.path().join("store")).expect("store"));
    store
        .import(
            std::fs::File::open(&tar).unwrap(),
            Some(&"busybox:latest".parse().unwrap()),
            "",
        )
        .expect("import busybox");
    let builder = Builder::new(store.clone(), dir.path().join("builder")).expect("builder");
    Env {
        dir,
        store,
        builder,
    }
}

impl Env {
    /// A context directory `name` with `files` (path, content).
    fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let c = self.dir.path().join(name);
        for (p, data) in files {
            let f = c.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, data).unwrap();
        }
        std::fs::create_dir_all(&c).unwrap();
        c
    }

    fn build_with(
        &self,
        ctx: &Path,
        opts: BuildOptions,
    ) -> (Result<BuildOutput, BuildError>, Vec<Event>) {
        let events = Mutex::new(Vec::new());
        let progress = |e: &Event| events.lock().unwrap().push(e.clone());
        let r = self
            .builder
            .build(&opts, BuildContext::Dir(ctx.to_path_buf()), &progress);
        (r, events.into_inner().unwrap())
    }

    fn build(&self, ctx: &Path, tag: &str) -> (Result<BuildOutput, BuildError>, Vec<Event>) {
        self.build_with(ctx, opts(tag))
    }

    /// Builds a context `name` holding only `dockerfile`, tagged `name`, which must fail:
    /// the error's text.
    fn build_err(&self, name: &str, dockerfile: &str) -> String {
        let ctx = self.context(name, &[("Dockerfile", dockerfile)]);
        let (r, _) = self.build(&ctx, name);
        match r {
            Ok(_) => panic!("{name}: the build succeeded"),
            Err(e) => e.to_string(),
        }
    }

    fn config(&self, name: &str) -> Value {
        let rec = self.store.resolve(name).expect("image");
        serde_json::from_slice(&self.store.read_document(&rec.id, "config").unwrap()).unwrap()
    }

    /// The file `path` of image `name`, read from its unpacked layers (topmost first).
    fn file(&self, name: &str, path: &str) -> Option<String> {
        let rec = self.store.resolve(name).expect("image");
        for l in rec.layers.iter().rev() {
            let p = self.store.layer_path(&l.diff_id).join(path);
            if std::fs::symlink_metadata(&p).is_ok() {
                return std::fs::read_to_string(p).ok();
            }
        }
        None
    }

    /// Whether `path` is in any layer of image `name` (a whiteout counts too).
    fn exists(&self, name: &str, path: &str) -> bool {
        let rec = self.store.resolve(name).expect("image");
        rec.layers.iter().any(|l| {
            std::fs::symlink_metadata(self.store.layer_path(&l.diff_id).join(path)).is_ok()
        })
    }

    fn tagged(&self, name: &str) -> bool {
        self.store.resolve(name).is_ok()
    }
}

fn opts(tag: &str) -> BuildOptions {
    BuildOptions {
        tags: vec![tag.to_string()],
        barge_binary: PathBuf::from(env!("CARGO_BIN_EXE_barge")),
        ..Default::default()
    }
}

/// The classic-builder JSON stream of `events`, one object per line.
fn json_stream(events: &[Event]) -> String {
    events
        .iter()
        .flat_map(|e| e.to_json())
        .map(|v| v.to_string() + "\n")
        .collect()
}

fn streams(events: &[Event]) -> String {
    events
        .iter()
        .flat_map(|e| e.to_json())
        .filter_map(|v| v["stream"].as_str().map(String::from))
        .collect()
}

fn count_cache_hits(events: &[Event]) -> usize {
    events.iter().filter(|e| **e == Event::CacheHit).count()
}

#[test]
fn seed_workdir_run_add_cmd() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let ctx = env.context(
        "seed",
        &[
            ("app.sh", "echo hello from app\n"),
            ("requirements.txt", "flask\n"),
            (
                "Dockerfile",
                "FROM busybox\nWORKDIR /code\nRUN echo installed > /installed.txt && pwd > /cwd.txt\nADD . /code\nCMD [\"sh\", \"/code/app.sh\"]\n",
            ),
        ],
    );
    let (r, events) = env.build(&ctx, "seed:v1");
    let out = r.expect("build");
    let s = streams(&events);
    assert!(s.contains("Step 1/5 : FROM busybox\n"), "{s}");
    assert!(s.contains("Step 3/5 : RUN echo installed"), "{s}");
    assert!(
        s.contains(&format!("Successfully built {}\n", &out.id.hex()[..12])),
        "{s}"
    );
    assert!(s.contains("Successfully tagged seed:v1\n"), "{s}");
    let js = json_stream(&events);
    assert!(
        js.contains(&format!("{{\"aux\":{{\"ID\":\"{}\"}}}}", out.id)),
        "{js}"
    );
    assert_eq!(out.tags, vec!["seed:v1".to_string()]);
    let cfg = env.config("seed:v1");
    assert_eq!(cfg["config"]["WorkingDir"], "/code");
    assert_eq!(
        cfg["config"]["Cmd"],
        serde_json::json!(["sh", "/code/app.sh"])
    );
    assert_eq!(
        env.file("seed:v1", "installed.txt").as_deref(),
        Some("installed\n")
    );
    assert_eq!(env.file("seed:v1", "cwd.txt").as_deref(), Some("/code\n"));
    assert_eq!(
        env.file("seed:v1", "code/app.sh").as_deref(),
        Some("echo hello from app\n")
    );
    assert_eq!(
        env.file("seed:v1", "code/requirements.txt").as_deref(),
        Some("flask\n")
    );
    // Base layer + RUN + ADD; WORKDIR and CMD only change the config.
    let rec = env.store.resolve("seed:v1").unwrap();
    assert_eq!(rec.layers.len(), 3);
    let hist = env.store.history("seed:v1").unwrap();
    let created: Vec<String> = hist
        .iter()
        .map(|h| h.created_by.clone().unwrap_or_default())
        .collect();
    assert_eq!(hist.len(), 5, "{created:?}");
    let workdir = hist
        .iter()
        .find(|h| {
            h.created_by
                .as_deref()
                .is_some_and(|c| c.contains("WORKDIR /code"))
        })
        .expect("WORKDIR in history");
    assert!(workdir.empty_layer);
    assert!(
        created
            .iter()
            .any(|c| c.starts_with("/bin/sh -c echo installed")),
        "{created:?}"
    );
    // Only the final image is an image: steps are cache records.
    assert_eq!(env.store.image_ids().unwrap().len(), 2);
    // Run the image: a child build's RUN executes in the built rootfs.
    let ctx2 = env.context(
        "seedrun",
        &[(
            "Dockerfile",
            "FROM seed:v1\nRUN sh /code/app.sh > /ran.txt\n",
        )],
    );
    let (r, _) = env.build(&ctx2, "seedrun");
    r.expect("run the seed image");
    assert_eq!(
        env.file("seedrun", "ran.txt").as_deref(),
        Some("hello from app\n")
    );
}

#[test]
fn env_expose_runs_multiline_heredoc_and_metadata() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let df = r#"FROM busybox
ENV GREETING=hello NAME=world
EXPOSE 5000 53/udp
LABEL org.example.name="demo app"
MAINTAINER someone@example.com
ARG VERSION=1.0
RUN echo "$GREETING $NAME $VERSION" > /greet
RUN mkdir -p /data && \
    echo one > /data/1 && \
    echo two > /data/2
RUN <<EOF
echo heredoc > /heredoc
id -u >> /heredoc
EOF
RUN <<EOF
#!/bin/sh -e
echo "shebang $0" > /shebang
EOF
USER user
RUN id -u > /tmp/uid
USER root
RUN ["sh", "-c", "echo exec form > /exec; echo $HTTP_PROXY > /proxy"]
USER root
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s CMD true
ENTRYPOINT ["/bin/sh"]
ONBUILD RUN echo triggered > /trigger
"#;
    let ctx = env.context("meta", &[("Dockerfile", df)]);
    let mut o = opts("meta");
    o.build_args.insert("VERSION".into(), "2.0".into());
    o.build_args.insert("UNUSED".into(), "x".into());
    o.build_args
        .insert("HTTP_PROXY".into(), "http://proxy:3128".into());
    let (r, events) = env.build_with(&ctx, o);
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert!(
        events.contains(&Event::Warning(
            "One or more build-args [UNUSED] were not consumed".into()
        )),
        "{}",
        streams(&events)
    );
    assert_eq!(
        env.file("meta", "greet").as_deref(),
        Some("hello world 2.0\n")
    );
    assert_eq!(env.file("meta", "data/1").as_deref(), Some("one\n"));
    assert_eq!(env.file("meta", "data/2").as_deref(), Some("two\n"));
    assert_eq!(env.file("meta", "heredoc").as_deref(), Some("heredoc\n0\n"));
    assert_eq!(env.file("meta", "tmp/uid").as_deref(), Some("1000\n"));
    assert_eq!(env.file("meta", "exec").as_deref(), Some("exec form\n"));
    // The predefined proxy args reach RUN without an ARG, and stay out of the image.
    assert_eq!(
        env.file("meta", "proxy").as_deref(),
        Some("http://proxy:3128\n")
    );
    assert_eq!(
        env.file("meta", "shebang").as_deref(),
        Some("shebang /dev/.barge-heredoc\n")
    );
    let c = env.config("meta");
    let cc = &c["config"];
    assert!(!c.to_string().contains("proxy:3128"), "{c}");
    let envs: Vec<&str> = cc["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        envs.contains(&"GREETING=hello") && envs.contains(&"NAME=world"),
        "{envs:?}"
    );
    assert!(cc["ExposedPorts"]["5000/tcp"].is_object() && cc["ExposedPorts"]["53/udp"].is_object());
    assert_eq!(cc["Labels"]["org.example.name"], "demo app");
    assert_eq!(c["author"], "someone@example.com");
    assert!(cc["Volumes"]["/data"].is_object());
    assert_eq!(cc["StopSignal"], "SIGTERM");
    assert_eq!(
        cc["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(cc["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(cc["Entrypoint"], serde_json::json!(["/bin/sh"]));
    assert_eq!(cc["User"], "root");
    assert_eq!(
        cc["OnBuild"],
        serde_json::json!(["RUN echo triggered > /trigger"])
    );
    // The trigger runs in a child build, and is not inherited further.
    let ctx2 = env.context(
        "child",
        &[("Dockerfile", "FROM meta\nRUN test -f /trigger\n")],
    );
    let (r, events) = env.build(&ctx2, "child");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(env.file("child", "trigger").as_deref(), Some("triggered\n"));
    assert!(env.config("child")["config"]["OnBuild"].is_null());
}

#[test]
fn multi_stage_final_image_holds_only_the_artifact() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let df =
        "FROM busybox AS build\nRUN mkdir /out && echo artifact > /out/app && echo junk > /junk\n\
              FROM busybox AS unused\nRUN exit 1\n\
              FROM busybox AS other\nRUN echo other > /other\n\
              FROM scratch\nCOPY --from=build /out/app /app\nCOPY --from=other /other /other\n";
    let ctx = env.context("ms", &[("Dockerfile", df)]);
    let (r, events) = env.build(&ctx, "ms");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    let rec = env.store.resolve("ms").unwrap();
    assert_eq!(rec.layers.len(), 2);
    let mut names = Vec::new();
    for l in &rec.layers {
        for e in std::fs::read_dir(env.store.layer_path(&l.diff_id)).unwrap() {
            names.push(e.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    assert_eq!(names, ["app", "other"]);
    assert_eq!(env.file("ms", "app").as_deref(), Some("artifact\n"));
    assert!(
        !streams(&events).contains("RUN exit 1"),
        "the unused stage was built"
    );
    // --target builds that stage (and what it needs) only.
    let mut o = opts("ms-build");
    o.target = Some("build".into());
    let (r, _) = env.build_with(&ctx, o);
    r.expect("target build");
    assert_eq!(env.file("ms-build", "junk").as_deref(), Some("junk\n"));
}

#[test]
fn cache_hits_misses_and_prune() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let df = "FROM busybox\nENV A=1\nWORKDIR /app\nRUN echo built > /built\nCOPY a.txt /app/\nRUN cat /app/a.txt > /copy\nCOPY b.txt /app/\nLABEL x=y\nEXPOSE 80\nCMD [\"cat\", \"/copy\"]\n";
    let ctx = env.context(
        "cache",
        &[("Dockerfile", df), ("a.txt", "one\n"), ("b.txt", "b\n")],
    );
    let (r, ev1) = env.build(&ctx, "cached");
    let first = r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&ev1)));
    assert_eq!(count_cache_hits(&ev1), 0);
    let t = Instant::now();
    let (r, ev2) = env.build(&ctx, "cached");
    let rebuild = t.elapsed();
    eprintln!("10-instruction all-cached rebuild: {rebuild:?}");
    let second = r.unwrap();
    assert_eq!(
        second.id, first.id,
        "an all-cached rebuild gives the same image"
    );
    assert_eq!(count_cache_hits(&ev2), 9);
    assert!(!streams(&ev2).contains("Running in"));
    // Editing a.txt: the steps before its COPY hit, it and all later miss.
    std::fs::write(ctx.join("a.txt"), "two\n").unwrap();
    let (r, ev3) = env.build(&ctx, "cached");
    let third = r.unwrap();
    assert_ne!(third.id, first.id);
    assert_eq!(count_cache_hits(&ev3), 3, "{}", streams(&ev3));
    assert_eq!(env.file("cached", "copy").as_deref(), Some("two\n"));
    // A metadata-only change to a source (mode) also invalidates.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ctx.join("b.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let (r, ev4) = env.build(&ctx, "cached");
    r.unwrap();
    assert_eq!(count_cache_hits(&ev4), 5, "{}", streams(&ev4));
    // A build arg used by a RUN is part of its key.
    let ctx_arg = env.context(
        "cache-arg",
        &[("Dockerfile", "FROM busybox\nARG X=1\nRUN echo $X > /x\n")],
    );
    let (r, _) = env.build(&ctx_arg, "arg");
    r.unwrap();
    let mut o = opts("arg");
    o.build_args.insert("X".into(), "2".into());
    let (r, ev) = env.build_with(&ctx_arg, o);
    r.unwrap();
    assert_eq!(count_cache_hits(&ev), 1, "{}", streams(&ev));
    assert_eq!(env.file("arg", "x").as_deref(), Some("2\n"));
    // --no-cache reruns everything.
    let mut o = opts("cached");
    o.no_cache = true;
    let (r, ev5) = env.build_with(&ctx, o);
    r.unwrap();
    assert_eq!(count_cache_hits(&ev5), 0);
    // The cache survives a new Builder (a daemon restart) on the same directories...
    let store2 = Arc::new(Store::open(env.dir.path().join("store")).unwrap());
    let b2 = Builder::new(store2, env.dir.path().join("builder")).unwrap();
    let n = Mutex::new(0);
    let p = |e: &Event| {
        if *e == Event::CacheHit {
            *n.lock().unwrap() += 1
        }
    };
    b2.build(&opts("cached"), BuildContext::Dir(ctx.clone()), &p)
        .unwrap();
    assert_eq!(*n.lock().unwrap(), 9);
    // ...and prune empties it.
    let rep = b2.prune().unwrap();
    assert!(rep.records >= 9, "{rep:?}");
    let n = Mutex::new(0);
    let p = |e: &Event| {
        if *e == Event::CacheHit {
            *n.lock().unwrap() += 1
        }
    };
    b2.build(&opts("cached"), BuildContext::Dir(ctx.clone()), &p)
        .unwrap();
    assert_eq!(*n.lock().unwrap(), 0);
}

#[test]
fn dockerignore_and_tar_context() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let ctx = env.context(
        "ign",
        &[
            ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
            (".dockerignore", "*.log\nsecret/\n!secret/keep\n"),
            ("app.txt", "app\n"),
            ("debug.log", "log\n"),
            ("secret/key", "k\n"),
            ("secret/keep", "keep\n"),
        ],
    );
    let (r, events) = env.build(&ctx, "ign");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(env.file("ign", "ctx/app.txt").as_deref(), Some("app\n"));
    assert_eq!(env.file("ign", "ctx/debug.log"), None);
    assert_eq!(env.file("ign", "ctx/secret/key"), None);
    assert_eq!(
        env.file("ign", "ctx/secret/keep").as_deref(),
        Some("keep\n")
    );
    // The same context as a tar stream (what POST /build receives), with -f.
    std::fs::rename(ctx.join("Dockerfile"), ctx.join("build.df")).unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .arg("-cf")
        .arg("-")
        .arg(".")
        .output()
        .unwrap();
    assert!(tar.status.success());
    let mut o = opts("ign-tar");
    o.dockerfile = Some("build.df".into());
    let r = env.builder.build(
        &o,
        BuildContext::Tar(Box::new(std::io::Cursor::new(tar.stdout))),
        &barge_build::NoProgress,
    );
    r.expect("tar context");
    assert_eq!(
        env.file("ign-tar", "ctx/secret/keep").as_deref(),
        Some("keep\n")
    );
    assert_eq!(env.file("ign-tar", "ctx/debug.log"), None);
}

#[test]
fn copy_semantics_chown_chmod_globs_and_add_tar() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let ctx = env.context(
        "cp",
        &[
            ("src/a.c", "a\n"),
            ("src/b.c", "b\n"),
            ("src/sub/c.h", "c\n"),
            ("one.txt", "1\n"),
        ],
    );
    std::os::unix::fs::symlink("one.txt", ctx.join("inner")).unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(ctx.join("src"))
        .arg("-czf")
        .arg(ctx.join("src.tar.gz"))
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY src/*.c /globbed/\nCOPY src /tree\nCOPY --exclude=**/*.h src /excl\nCOPY inner /inner.txt\nCOPY --link one.txt /linked.txt\nCOPY --chown=user:user --chmod=600 one.txt /owned\nADD src.tar.gz /unpacked/\nCOPY <<EOT /inline.txt\nhello inline\nEOT\nRUN stat -c '%u:%g %a' /owned > /owned.stat\n",
    )
    .unwrap();
    let (r, events) = env.build(&ctx, "cp");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(env.file("cp", "globbed/a.c").as_deref(), Some("a\n"));
    assert_eq!(env.file("cp", "globbed/b.c").as_deref(), Some("b\n"));
    assert_eq!(env.file("cp", "tree/sub/c.h").as_deref(), Some("c\n"));
    assert_eq!(env.file("cp", "tree/a.c").as_deref(), Some("a\n"));
    assert_eq!(env.file("cp", "excl/a.c").as_deref(), Some("a\n"));
    assert_eq!(env.file("cp", "excl/sub/c.h"), None);
    assert_eq!(env.file("cp", "linked.txt").as_deref(), Some("1\n"));
    // A symlink source inside the context is followed.
    assert_eq!(env.file("cp", "inner.txt").as_deref(), Some("1\n"));
    assert_eq!(env.file("cp", "unpacked/sub/c.h").as_deref(), Some("c\n"));
    assert_eq!(
        env.file("cp", "inline.txt").as_deref(),
        Some("hello inline\n")
    );
    assert_eq!(
        env.file("cp", "owned.stat").as_deref(),
        Some("1000:1000 600\n")
    );
}

#[test]
fn failing_run_reports_code_and_output_and_keeps_no_image() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let ctx = env.context(
        "fail",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo step-one\nRUN echo about-to-fail && exit 3\nCMD [\"true\"]\n",
        )],
    );
    let before = env.store.image_ids().unwrap();
    let (r, events) = env.build(&ctx, "fail:latest");
    match r {
        Err(BuildError::RunFailed {
            line, code, output, ..
        }) => {
            assert_eq!(line, 3);
            assert_eq!(code, 3);
            assert!(output.contains("about-to-fail"), "{output}");
        }
        other => panic!("expected RunFailed, got {other:?}"),
    }
    assert!(!env.tagged("fail:latest"));
    assert_eq!(env.store.image_ids().unwrap(), before);
    let js = json_stream(&events);
    assert!(js.contains("\"errorDetail\":{\"message\":"), "{js}");
    assert!(js.contains("returned a non-zero code: 3"), "{js}");
    assert!(streams(&events).contains("about-to-fail"));
    // No snapshot or mount is left behind.
    assert!(env
        .store
        .list_snapshots()
        .unwrap()
        .iter()
        .all(|s| !s.key.starts_with("build-")));
}

#[test]
fn bad_input_names_the_line_and_tags_nothing() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let outside = env.dir.path().join("outside.txt");
    std::fs::write(&outside, "secret\n").unwrap();
    let cases: &[(&str, &str, usize, &str)] = &[
        ("syntax", "FROM busybox\nENV\n", 2, "ENV"),
        (
            "unknown",
            "FROM busybox\nFOO bar\n",
            2,
            "unknown instruction",
        ),
        (
            "missing",
            "FROM busybox\nRUN true\nCOPY nothere.txt /x\n",
            3,
            "not found",
        ),
        (
            "dotdot",
            "FROM busybox\nCOPY ../outside.txt /x\n",
            2,
            "outside the build context",
        ),
        (
            "symlink",
            "FROM busybox\nCOPY link /x\n",
            2,
            "outside the build context",
        ),
        (
            "stage",
            "FROM busybox\nCOPY --from=nostage /a /a\n",
            2,
            "nostage",
        ),
        (
            "cycle",
            "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n",
            4,
            "circular",
        ),
        (
            "offline",
            "FROM busybox\nADD http://127.0.0.1:9/x /x\n",
            2,
            "cannot reach 127.0.0.1:9",
        ),
    ];
    for (name, df, line, what) in cases {
        let ctx = env.context(&format!("bad-{name}"), &[("Dockerfile", df)]);
        if *name == "symlink" {
            std::os::unix::fs::symlink(&outside, ctx.join("link")).unwrap();
        }
        let tag = format!("bad-{name}");
        let (r, events) = env.build(&ctx, &tag);
        let e = r.expect_err(name).to_string();
        assert!(
            e.contains(&format!("Dockerfile:{line}")) || e.contains(&format!("line {line}")),
            "{name}: no line {line} in {e:?}"
        );
        assert!(e.contains(what), "{name}: {e:?} lacks {what:?}");
        assert!(!env.tagged(&tag), "{name}: tagged");
        assert!(matches!(events.last(), Some(Event::Error(_))), "{name}");
    }
    assert_eq!(env.store.image_ids().unwrap().len(), 1);
}

#[test]
fn digest_of_config_is_the_image_id() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let ctx = env.context("id", &[("Dockerfile", "FROM busybox\nLABEL a=b\n")]);
    let (r, events) = env.build(&ctx, "idimg");
    let out = r.unwrap();
    let rec = env.store.resolve("idimg").unwrap();
    let bytes = env.store.read_document(&rec.id, "config").unwrap();
    assert_eq!(Digest::of(&bytes), out.id);
    // The last step's id is the image id.
    let last_step = events.iter().rev().find_map(|e| match e {
        Event::StepDone { id, .. } => Some(id.clone()),
        _ => None,
    });
    assert_eq!(last_step, Some(out.id.to_string()));
    // A Dockerfile that changes nothing gives the base image itself.
    let ctx = env.context("same", &[("Dockerfile", "FROM busybox\n")]);
    let (r, _) = env.build(&ctx, "same");
    assert_eq!(r.unwrap().id, env.store.resolve("busybox").unwrap().id);
    let mut o = opts("same2");
    o.labels = BTreeMap::from([("l".to_string(), "v".to_string())]);
    let (r, _) = env.build_with(&ctx, o);
    assert_ne!(r.unwrap().id, env.store.resolve("busybox").unwrap().id);
    assert_eq!(env.config("same2")["config"]["Labels"]["l"], "v");
}

#[test]
fn copy_never_writes_through_symlinks_out_of_the_rootfs() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let canary = env.dir.path().join("canary");
    std::fs::create_dir(&canary).unwrap();
    let h = canary.display().to_string();
    let df = format!(
        "FROM busybox\nRUN mkdir -p {h} && ln -s {h} /escape && ln -s ../../../../../../../..{h} /escape2\n\
         COPY f.txt /escape/f.txt\nCOPY f.txt /escape2/g.txt\n\
         RUN ln -s {h}/made/by/copy /dangling && ln -s ../../../../../../../../../../.. /up\n\
         COPY f.txt /dangling/d.txt\nCOPY f.txt /up/etc/u.txt\n"
    );
    let ctx = env.context("sym", &[("Dockerfile", &df), ("f.txt", "inside\n")]);
    let (r, events) = env.build(&ctx, "sym");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(
        std::fs::read_dir(&canary).unwrap().count(),
        0,
        "wrote on the host"
    );
    let rel = h.trim_start_matches('/');
    assert_eq!(
        env.file("sym", &format!("{rel}/f.txt")).as_deref(),
        Some("inside\n")
    );
    assert_eq!(
        env.file("sym", &format!("{rel}/g.txt")).as_deref(),
        Some("inside\n")
    );
    // A dangling symlink's target is made inside the rootfs; the link stays a link.
    assert_eq!(
        env.file("sym", &format!("{rel}/made/by/copy/d.txt"))
            .as_deref(),
        Some("inside\n")
    );
    let layers = env.store.resolve("sym").unwrap().layers;
    let link = env.store.layer_path(&layers[4].diff_id).join("dangling");
    assert!(std::fs::read_link(link).is_ok());
    let copied = env.store.layer_path(&layers[5].diff_id);
    assert!(std::fs::symlink_metadata(copied.join("dangling")).is_err());
    assert_eq!(env.file("sym", "etc/u.txt").as_deref(), Some("inside\n"));
    assert!(!Path::new("/etc/u.txt").exists());
}

#[test]
fn run_mounts_and_network() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let df = "FROM busybox AS build\nRUN mkdir /out && echo from-stage > /out/app\n\
              FROM busybox\n\
              RUN --mount=type=bind,from=build,source=/out,target=/m cat /m/app > /fromstage\n\
              RUN --mount=type=cache,target=/cache echo hit >> /cache/log && cat /cache/log > /seen\n\
              RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && test -f /scratch/x\n\
              RUN --mount=type=bind,source=data,target=/mnt cat /mnt/d.txt > /bound\n\
              RUN --network=none grep -c : /proc/net/dev > /ifaces\n\
              RUN grep -c : /proc/net/dev > /ifaces-default\n\
              RUN grep -E '^(Seccomp|CapEff):' /proc/self/status > /status\n\
              RUN grep -c localhost /etc/hosts > /hosts-lines\n";
    let ctx = env.context("mnt", &[("Dockerfile", df), ("data/d.txt", "bound data\n")]);
    let (r, events) = env.build(&ctx, "mnt");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(env.file("mnt", "seen").as_deref(), Some("hit\n"));
    assert_eq!(
        env.file("mnt", "fromstage").as_deref(),
        Some("from-stage\n")
    );
    assert_eq!(env.file("mnt", "bound").as_deref(), Some("bound data\n"));
    assert_eq!(
        env.file("mnt", "ifaces").as_deref(),
        Some("1\n"),
        "loopback only"
    );
    assert_eq!(env.file("mnt", "ifaces-default").as_deref(), Some("1\n"));
    // Docker's default capabilities and seccomp filter.
    assert_eq!(
        env.file("mnt", "status").as_deref(),
        Some("CapEff:\t00000000a80425fb\nSeccomp:\t2\n")
    );
    // Mount points made for the RUN's mounts are not in the image.
    assert!(!env.exists("mnt", "cache"));
    assert!(!env.exists("mnt", "scratch"));
    assert!(!env.exists("mnt", "m"));
    assert!(!env.exists("mnt", "mnt/d.txt"));
    assert!(env.exists("mnt", "fromstage"));
    assert_eq!(env.file("mnt", "hosts-lines").as_deref(), Some("2\n"));
    assert!(
        !env.exists("mnt", "etc/hosts"),
        "the /etc/hosts stub is in the image"
    );
    // The cache mount persists across builds.
    let mut o = opts("mnt");
    o.no_cache = true;
    let (r, _) = env.build_with(&ctx, o);
    r.unwrap();
    assert_eq!(env.file("mnt", "seen").as_deref(), Some("hit\nhit\n"));
    // A bind-mounted context source is part of the RUN's cache key.
    let (r, ev) = env.build(&ctx, "mnt");
    r.unwrap();
    assert_eq!(count_cache_hits(&ev), 9, "{}", streams(&ev));
    std::fs::write(ctx.join("data/d.txt"), "changed\n").unwrap();
    let (r, ev) = env.build(&ctx, "mnt");
    r.unwrap();
    assert_eq!(count_cache_hits(&ev), 4, "{}", streams(&ev));
    assert_eq!(env.file("mnt", "bound").as_deref(), Some("changed\n"));
    // A bind source outside the context is refused.
    let e = env.build_err(
        "mnt-bad",
        "FROM busybox\nRUN --mount=type=bind,source=../mnt,target=/m true\n",
    );
    assert!(
        e.contains("Dockerfile:2") && e.contains("outside the build context"),
        "{e}"
    );
}

/// Every regular file of every layer of `name` (path, content).
fn layer_files(env: &Env, name: &str) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if t.is_dir() {
                walk(root, &e.path(), out);
            } else if t.is_file() {
                out.push((rel, std::fs::read(e.path()).unwrap()));
            } else {
                out.push((rel, Vec::new()));
            }
        }
    }
    let mut out = Vec::new();
    for l in env.store.resolve(name).unwrap().layers {
        let p = env.store.layer_path(&l.diff_id);
        walk(&p, &p, &mut out);
    }
    out
}

#[test]
fn run_secret_mounts_never_reach_a_layer() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let df = "FROM busybox\n\
              RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-64 > /h1 && stat -c '%a %u %g' /run/secrets/tok > /st1\n\
              RUN --mount=type=secret,id=tok,target=/etc/app/key,mode=0440,uid=1000,gid=1000 stat -c '%a %u %g' /etc/app/key > /st2 && cat /etc/app/key | wc -c > /len\n\
              RUN --mount=type=secret,id=tok,env=TOKEN echo \"$TOKEN\" | sha256sum | cut -c1-64 > /h3 && test ! -e /run/secrets/tok\n\
              RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent\n\
              RUN ls /run > /run.ls 2>&1; ls /etc/app >> /run.ls 2>&1; true\n";
    let ctx = env.context("sec", &[("Dockerfile", df)]);
    let secret = "hunter2-very-secret-value";
    let mut o = opts("sec");
    o.secrets.insert(
        "tok".into(),
        barge_build::Secret(secret.as_bytes().to_vec()),
    );
    let (r, events) = env.build_with(&ctx, o.clone());
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    let sha = |d: &[u8]| Digest::of(d).hex().to_string();
    assert_eq!(
        env.file("sec", "h1"),
        Some(format!("{}\n", sha(secret.as_bytes())))
    );
    assert_eq!(env.file("sec", "st1").as_deref(), Some("400 0 0\n"));
    assert_eq!(env.file("sec", "st2").as_deref(), Some("440 1000 1000\n"));
    assert_eq!(env.file("sec", "len"), Some(format!("{}\n", secret.len())));
    let with_nl = format!("{secret}\n");
    assert_eq!(
        env.file("sec", "h3"),
        Some(format!("{}\n", sha(with_nl.as_bytes())))
    );
    // Neither the secret nor its mount points are in any layer, nor in the config.
    let ls = env.file("sec", "run.ls").unwrap();
    assert!(!ls.contains("secrets") && !ls.contains("key"), "{ls}");
    for (path, data) in layer_files(&env, "sec") {
        assert!(
            !path.contains("secrets") && !path.ends_with("app/key"),
            "{path}"
        );
        assert!(
            !String::from_utf8_lossy(&data).contains(secret),
            "the secret is in {path}"
        );
    }
    assert!(!env.config("sec").to_string().contains(secret));
    for e in std::fs::read_dir(env.dir.path().join("builder/cache")).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&data).contains(secret));
    }
    // The secret's content is not in the cache key: another value still hits the cache.
    o.secrets
        .insert("tok".into(), barge_build::Secret(b"another".to_vec()));
    let (r, ev) = env.build_with(&ctx, o);
    r.unwrap();
    assert_eq!(count_cache_hits(&ev), 5, "{}", streams(&ev));
    // A required secret that was not given fails the build, naming it; nothing tagged.
    let e = env.build_err(
        "sec-bad",
        "FROM busybox\nRUN --mount=type=secret,id=npm,required=true true\n",
    );
    assert!(
        e.contains("Dockerfile:2") && e.contains("secret npm is required"),
        "{e}"
    );
    assert!(!env.tagged("sec-bad"));
    // SSH agent forwarding is not supported: a clear error when required.
    let e = env.build_err(
        "ssh-bad",
        "FROM busybox\nRUN --mount=type=ssh,required=true true\n",
    );
    assert!(e.contains("type=ssh is not supported"), "{e}");
    // Not required (BuildKit's default): the step runs without it, with a warning.
    let ssh = env.context(
        "ssh-opt",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=ssh test -z \"$SSH_AUTH_SOCK\"\n",
        )],
    );
    let (r, events) = env.build(&ssh, "ssh-opt");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Warning(w) if w.contains("type=ssh is not supported"))),
        "{}",
        streams(&events)
    );
}

#[test]
fn runs_that_change_nothing_share_the_empty_layer_and_stack() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    // Both RUNs give the same (empty) layer, listed twice in the image: the snapshot of
    // the third step must still mount (overlay refuses a lower dir given twice).
    // The runtime's mount points (/etc/hosts in this rootfs that has none) stay out of
    // the layers, their directory included, whenever the two RUNs happen: the layer is
    // empty. A RUN that changes /etc itself keeps it.
    let df = "FROM busybox\nRUN true\nRUN true\nRUN echo stacked > /ok\nRUN chmod 750 /etc\n";
    let ctx = env.context("empty", &[("Dockerfile", df)]);
    let (r, events) = env.build(&ctx, "empty");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    let ids = env.store.resolve("empty").unwrap().diff_ids();
    let n = ids.len();
    assert_eq!(ids[n - 3], ids[n - 4], "the two empty layers are one");
    let entries = |d: &barge_image::Digest| -> Vec<String> {
        std::fs::read_dir(env.store.layer_path(d))
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        entries(&ids[n - 3]).is_empty(),
        "{:?}",
        entries(&ids[n - 3])
    );
    assert_eq!(entries(&ids[n - 1]), vec!["etc".to_string()]);
    assert_eq!(env.file("empty", "ok").as_deref(), Some("stacked\n"));
}

#[test]
fn escape_directive_and_variable_escapes() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    // With `# escape=`` the backtick continues lines and escapes `$`; a backslash is a
    // plain character. With the default escape, `\$` keeps a literal `$`.
    let tick = "# escape=`\nFROM busybox\nENV A=x\nENV B=`$A C=${A:-d}\\z\nRUN echo \"$B $C\" `\n    > /e1\n";
    let ctx = env.context("esc", &[("Dockerfile", tick)]);
    let (r, events) = env.build(&ctx, "esc");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(env.file("esc", "e1").as_deref(), Some("$A x\\z\n"));
    let back = "FROM busybox\nENV A=x\nENV B=\\$A C=${A:+set} D=${NOPE:-dflt}\nRUN echo \"$B $C $D\" \\\n    > /e2\n";
    let ctx = env.context("esc2", &[("Dockerfile", back)]);
    let (r, events) = env.build(&ctx, "esc2");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(env.file("esc2", "e2").as_deref(), Some("$A set dflt\n"));
}

#[test]
fn independent_stages_build_in_parallel() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    // A rendezvous, not a stopwatch: each stage marks its arrival in a shared cache mount
    // and waits for the other's mark, so the build only succeeds if both RUNs are running
    // at the same time (one after the other, the first gives up with exit 7).
    let wait = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,id=rendezvous,target=/rv touch /rv/{me} && i=0 && \
             while [ ! -e /rv/{other} ]; do i=$((i+1)); [ $i -lt 600 ] || exit 7; sleep 0.1; done && \
             echo {me} > /{me}\n"
        )
    };
    let df = format!(
        "FROM busybox AS a\n{}FROM busybox AS b\n{}FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
        wait("a", "b"),
        wait("b", "a")
    );
    let ctx = env.context("par", &[("Dockerfile", &df)]);
    let (r, events) = env.build(&ctx, "par");
    r.unwrap_or_else(|e| panic!("stages did not run together: {e}\n{}", streams(&events)));
    assert_eq!(env.file("par", "a").as_deref(), Some("a\n"));
    assert_eq!(env.file("par", "b").as_deref(), Some("b\n"));
}

/// A tiny HTTP/1.1 server on 127.0.0.1 for ADD: each path answers a fixed status,
/// headers and body; it logs the paths asked. Stopped (and joined) on drop.
struct HttpServer {
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    fn start(routes: Vec<(&'static str, u16, &'static str, &'static str)>) -> HttpServer {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (st, lg) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                let mut c = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                };
                c.set_nonblocking(false).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 2048];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&req).into_owned();
                let path = req.split(' ').nth(1).unwrap_or("").to_string();
                lg.lock().unwrap().push(path.clone());
                let (status, headers, body) = routes
                    .iter()
                    .find(|r| r.0 == path)
                    .map(|r| (r.1, r.2, r.3))
                    .unwrap_or((404, "", "not found\n"));
                let _ = write!(
                    c,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
                    body.len()
                );
            }
        });
        HttpServer {
            port,
            stop,
            log,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn add_fetches_an_http_url() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let body = "downloaded\n";
    let sum = Digest::of(body.as_bytes());
    let srv = HttpServer::start(vec![
        (
            "/files/hello.txt",
            200,
            "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
            "downloaded\n",
        ),
        ("/moved", 302, "Location: /files/hello.txt\r\n", ""),
        ("/broken", 500, "", "oops\n"),
    ]);
    let df = format!(
        "FROM busybox\n\
         ADD {} /dl/\n\
         ADD --checksum={sum} {} /named.txt\n\
         ADD {} /dl2/\n\
         RUN stat -c '%a %Y %u' /dl/hello.txt /named.txt > /mode\n",
        srv.url("/files/hello.txt"),
        srv.url("/files/hello.txt"),
        srv.url("/moved"),
    );
    let ctx = env.context("url", &[("Dockerfile", &df)]);
    let (r, events) = env.build(&ctx, "url");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(
        env.file("url", "dl/hello.txt").as_deref(),
        Some("downloaded\n")
    );
    // A destination without a trailing / is the file's name; redirects are followed and
    // the file is named from the final URL.
    assert_eq!(
        env.file("url", "named.txt").as_deref(),
        Some("downloaded\n")
    );
    assert_eq!(
        env.file("url", "dl2/hello.txt").as_deref(),
        Some("downloaded\n")
    );
    // Mode 600, owned by root, mtime from Last-Modified (784111777).
    assert_eq!(
        env.file("url", "mode").as_deref(),
        Some("600 784111777 0\n600 784111777 0\n")
    );
    assert!(srv.log.lock().unwrap().contains(&"/moved".to_string()));

    // A wrong checksum, a failing status and a git URL: clear errors, nothing tagged.
    let wrong = Digest::of(b"something else");
    let cases = [
        (
            format!("ADD --checksum={wrong} {} /x\n", srv.url("/files/hello.txt")),
            vec![format!("--checksum={wrong}"), format!("downloaded {sum}")],
        ),
        (
            format!("ADD {} /x\n", srv.url("/broken")),
            vec![
                format!("127.0.0.1:{}", srv.port),
                "HTTP status 500".to_string(),
            ],
        ),
        (
            format!("ADD {} /x\n", srv.url("/missing.txt")),
            vec!["HTTP status 404".to_string()],
        ),
        (
            "ADD --checksum=sha256:abc http://127.0.0.1:1/x /x\n".to_string(),
            vec!["invalid --checksum=sha256:abc".to_string()],
        ),
        (
            "ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 Dockerfile /x\n".to_string(),
            vec!["only for http(s) sources".to_string()],
        ),
        (
            // TLS against a plain HTTP server: the handshake fails, the error names the host.
            format!("ADD https://127.0.0.1:{}/files/hello.txt /x\n", srv.port),
            vec![format!("cannot reach 127.0.0.1:{}", srv.port)],
        ),
    ];
    for (i, (line, wants)) in cases.iter().enumerate() {
        let df = format!("FROM busybox\n{line}");
        let ctx = env.context(&format!("url-bad-{i}"), &[("Dockerfile", &df)]);
        let tag = format!("url-bad:{i}");
        let (r, _) = env.build(&ctx, &tag);
        let e = r.expect_err(line).to_string();
        assert!(e.contains("Dockerfile:2"), "{e}");
        for w in wants {
            assert!(e.contains(w.as_str()), "{line}: want {w:?} in {e}");
        }
        assert!(!env.tagged(&tag), "{line}");
    }
}

#[test]
fn add_a_git_repository_at_a_tag_branch_and_commit() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let git = common::GitServer::start(
        &env.dir.path().join("git"),
        &[
            ("top.txt", "top v1\n"),
            ("sub/a.txt", "a v1\n"),
            ("sub/run.sh", "#!/bin/sh\necho hi\n"),
        ],
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let p = git.work().join("sub/run.sh");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    git.commit(&[], "make run.sh executable");
    git.tag("v1");
    let v1 = git.git(&["rev-parse", "v1^{commit}"]);
    let df = format!(
        "FROM busybox\n\
         ADD {} /src\n\
         ADD --chown=7:8 --chmod=640 {} /branch/\n\
         ADD --keep-git-dir=true {} /kept\n\
         ADD {} /bycommit\n\
         RUN stat -c '%n %a %u:%g' /src/a.txt /src/run.sh /branch/top.txt /branch/sub/a.txt > /stat; \\\n\
             ls -a /src /bycommit > /ls; git_dir=no; test -d /kept/.git && git_dir=yes; echo $git_dir > /kept.txt\n",
        git.url("#v1:sub"),
        git.url("#main"),
        git.url(""),
        git.url(&format!("#{v1}")),
    );
    let ctx = env.context("git", &[("Dockerfile", &df)]);
    let (r, events) = env.build(&ctx, "git:1");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    // The tag's subdir is the destination's content; the .git dir is dropped.
    assert_eq!(env.file("git:1", "src/a.txt").as_deref(), Some("a v1\n"));
    assert!(!env.exists("git:1", "src/top.txt"));
    assert_eq!(
        env.file("git:1", "stat").as_deref(),
        Some(
            "/src/a.txt 644 0:0\n/src/run.sh 755 0:0\n/branch/top.txt 640 7:8\n/branch/sub/a.txt 640 7:8\n"
        )
    );
    let ls = env.file("git:1", "ls").unwrap();
    assert!(!ls.contains(".git"), "{ls}");
    assert!(ls.contains("top.txt"), "{ls}");
    assert_eq!(env.file("git:1", "kept.txt").as_deref(), Some("yes\n"));

    // Unchanged repository: every step from the cache.
    let (r, events) = env.build(&ctx, "git:2");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(count_cache_hits(&events), 5, "{}", streams(&events));

    // A new commit on main: the tag and the commit still hit, the branch misses (and
    // so does what follows it).
    git.commit(&[("top.txt", "top v2\n")], "second");
    let (r, events) = env.build(&ctx, "git:3");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(count_cache_hits(&events), 1, "{}", streams(&events));
    assert_eq!(
        env.file("git:3", "branch/top.txt").as_deref(),
        Some("top v2\n")
    );
    assert_eq!(env.file("git:3", "src/a.txt").as_deref(), Some("a v1\n"));

    // A cache hit only asks the server what the ref names (one request); a miss also
    // fetches.
    let one = env.context(
        "git-one",
        &[(
            "Dockerfile",
            &format!("FROM busybox\nADD {} /src\n", git.url("#v1:sub")),
        )],
    );
    let (r, events) = env.build_with(
        &one,
        BuildOptions {
            no_cache: true,
            ..opts("git:one")
        },
    );
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    let n = git.requests();
    let (r, events) = env.build(&one, "git:one");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(count_cache_hits(&events), 1, "{}", streams(&events));
    assert_eq!(git.requests() - n, 1);
    let (r, events) = env.build_with(
        &one,
        BuildOptions {
            no_cache: true,
            ..opts("git:one")
        },
    );
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert!(git.requests() - n >= 3, "{}", git.requests() - n);

    // Bad sources: clear errors naming the URL and ref (with git's message), nothing tagged.
    let cases = [
        (
            git.url("#nosuchref"),
            vec![
                git.url(""),
                "ref nosuchref".into(),
                "couldn't find remote ref".into(),
            ],
        ),
        (
            "git://127.0.0.1:1/gone.git#main".into(),
            vec![
                "git://127.0.0.1:1/gone.git (ref main)".into(),
                "unable to connect".into(),
            ],
        ),
        (
            git.url("#--upload-pack=touch${IFS}/tmp/pwned"),
            vec!["must not start with '-'".into()],
        ),
        (
            git.url("#main:../../etc"),
            vec!["must stay inside the repository".into()],
        ),
        (
            git.url("#main:nosuchdir"),
            vec!["no directory \"nosuchdir\"".into()],
        ),
    ];
    for (i, (src, wants)) in cases.iter().enumerate() {
        let df = format!("FROM busybox\nADD {src} /src\n");
        let ctx = env.context(&format!("git-bad-{i}"), &[("Dockerfile", &df)]);
        let tag = format!("git-bad:{i}");
        let (r, _) = env.build(&ctx, &tag);
        let e = r.expect_err(src).to_string();
        assert!(e.contains("Dockerfile:2"), "{e}");
        for w in wants {
            assert!(e.contains(w.as_str()), "{src}: want {w:?} in {e}");
        }
        assert!(!env.tagged(&tag), "{src}");
    }
    assert!(!Path::new("/tmp/pwned").exists());
    // No checkout is left behind in the builder's directory.
    let left: Vec<_> = std::fs::read_dir(env.dir.path().join("builder/tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("git-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A server that accepts and never answers: cancelling the build stops git.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let df = format!("FROM busybox\nADD git://127.0.0.1:{port}/r.git#main /src\n");
    let ctx = env.context("git-hang", &[("Dockerfile", &df)]);
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut o = opts("git-hang");
    o.cancel = Some(cancel.clone());
    let setter = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(1));
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let t = Instant::now();
    let (r, _) = env.build_with(&ctx, o);
    setter.join().unwrap();
    assert!(matches!(r, Err(BuildError::Cancelled)), "{r:?}");
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
    assert!(!env.tagged("git-hang"));
    drop(silent);
}

#[test]
fn remote_contexts_a_tar_a_dockerfile_and_a_git_subdir() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("Dockerfile", "FROM busybox\nCOPY f.txt /f.txt\n"),
        ("f.txt", "from the tar\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_bytes()).unwrap();
    }
    // Text files' tar is UTF-8 (ASCII and NULs), which the test server serves.
    let tar: &'static str = Box::leak(String::from_utf8(b.into_inner().unwrap()).unwrap().into());
    let srv = HttpServer::start(vec![
        ("/ctx.tar", 200, "", tar),
        (
            "/Dockerfile",
            200,
            "",
            "FROM busybox\nRUN echo plain > /p\n",
        ),
    ]);
    let git = common::GitServer::start(
        &env.dir.path().join("git"),
        &[
            ("app/Dockerfile", "FROM busybox\nCOPY x.txt /x.txt\n"),
            ("app/x.txt", "x\n"),
        ],
    );
    let build = |url: String, tag: &str| {
        let events = Mutex::new(Vec::new());
        let progress = |e: &Event| events.lock().unwrap().push(e.clone());
        let r = env
            .builder
            .build(&opts(tag), BuildContext::Remote(url), &progress);
        (r, events.into_inner().unwrap())
    };
    let (r, ev) = build(srv.url("/ctx.tar"), "remote:tar");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&ev)));
    assert_eq!(
        env.file("remote:tar", "f.txt").as_deref(),
        Some("from the tar\n")
    );
    let (r, ev) = build(srv.url("/Dockerfile"), "remote:df");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&ev)));
    assert_eq!(env.file("remote:df", "p").as_deref(), Some("plain\n"));
    let (r, ev) = build(git.url("#main:app"), "remote:git");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&ev)));
    assert_eq!(env.file("remote:git", "x.txt").as_deref(), Some("x\n"));
    // Failures name the URL (and the ref); nothing is tagged.
    for (url, want) in [
        (srv.url("/missing"), "HTTP status 404".to_string()),
        (
            git.url("#main:nosuchdir"),
            "no directory \"nosuchdir\"".to_string(),
        ),
        (
            git.url("#nosuchref"),
            format!("{} (ref nosuchref)", git.url("")),
        ),
    ] {
        let (r, _) = build(url.clone(), "remote:bad");
        let e = r.expect_err(&url).to_string();
        assert!(e.contains(&want), "{url}: want {want:?} in {e}");
        assert!(!env.tagged("remote:bad"));
    }
}

#[test]
fn copy_parents_symbolic_chmod_and_link() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let ctx = env.context(
        "par",
        &[
            ("app/x/one.go", "1\n"),
            ("app/y/two.go", "2\n"),
            ("app/y/skip.md", "md\n"),
            ("src/pkg/lib/a.rs", "a\n"),
            ("run.sh", "#!/bin/sh\n"),
            ("dir/f", "f\n"),
        ],
    );
    std::fs::set_permissions(
        ctx.join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    std::fs::set_permissions(
        ctx.join("dir/f"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         COPY --parents app/*/*.go /p/\n\
         COPY --parents src/./pkg/lib /piv/\n\
         COPY --parents --exclude=*.md app/y /pe/\n\
         COPY --chmod=go+rX,u-w run.sh /sym.sh\n\
         COPY --chmod=u=rwX,go=rX dir /symdir\n\
         COPY --chmod=640 run.sh /oct.sh\n\
         RUN ln -s /tmp /lnk && mkdir -p /kept && echo base > /kept/base\n\
         COPY --link dir/f /lnk/\n\
         COPY dir/f /viaplain/\n\
         RUN stat -c '%n %a' /sym.sh /symdir /symdir/f /oct.sh > /modes && ls -l /lnk > /lnk.ls\n\
         COPY --link --chown=user:user dir/f /linkown/\n\
         RUN stat -c '%u:%g' /linkown/f > /linkown.st\n",
    )
    .unwrap();
    let (r, events) = env.build(&ctx, "par");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    assert_eq!(env.file("par", "p/app/x/one.go").as_deref(), Some("1\n"));
    assert_eq!(env.file("par", "p/app/y/two.go").as_deref(), Some("2\n"));
    assert!(!env.exists("par", "p/one.go"));
    // The part above the ./ pivot is dropped.
    assert_eq!(env.file("par", "piv/pkg/lib/a.rs").as_deref(), Some("a\n"));
    assert!(!env.exists("par", "piv/src"));
    assert_eq!(env.file("par", "pe/app/y/two.go").as_deref(), Some("2\n"));
    assert!(!env.exists("par", "pe/app/y/skip.md"));
    assert_eq!(
        env.file("par", "modes").as_deref(),
        Some("/sym.sh 555\n/symdir 755\n/symdir/f 644\n/oct.sh 640\n")
    );
    // --link: the layer holds only the copied file, made on an empty rootfs, so the
    // /lnk symlink of the stage is not followed (the new directory hides it).
    let rec = env.store.resolve("par").unwrap();
    let layers = &rec.layers;
    let link_layer = env.store.layer_path(&layers[layers.len() - 5].diff_id);
    let mut names: Vec<String> = std::fs::read_dir(&link_layer)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["lnk"]);
    assert!(link_layer.join("lnk/f").is_file());
    assert!(env.file("par", "lnk.ls").unwrap().contains(" f\n"));
    assert!(!env.exists("par", "tmp/f"));
    // --link --chown by name: looked up in the stage's /etc/passwd.
    assert_eq!(
        env.file("par", "linkown.st").as_deref(),
        Some("1000:1000\n")
    );

    // Bad --chmod values name the flag.
    let e = env.build_err("par-bad", "FROM busybox\nCOPY --chmod=u+q Dockerfile /x\n");
    assert!(
        e.contains("Dockerfile:2") && e.contains("--chmod=u+q"),
        "{e}"
    );
    assert!(!env.tagged("par-bad"));
}

#[test]
fn cache_from_an_image_reuses_its_layers() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let df =
        "FROM busybox\nENV A=1\nRUN echo ran > /ran\nCOPY f.txt /f.txt\nRUN echo later > /later\n";
    let ctx = env.context("cf", &[("Dockerfile", df), ("f.txt", "f\n")]);
    let (r, _) = env.build(&ctx, "cf:1");
    let first = r.unwrap();
    // A builder with an empty cache (another host, a pruned cache) on the same store.
    let b2 = Builder::new(env.store.clone(), env.dir.path().join("builder2")).unwrap();
    let events = Mutex::new(Vec::new());
    let p = |e: &Event| events.lock().unwrap().push(e.clone());
    let mut o = opts("cf:2");
    o.cache_from = vec!["cf:1".into()];
    b2.build(&o, BuildContext::Dir(ctx.clone()), &p).unwrap();
    let ev = events.into_inner().unwrap();
    assert!(!streams(&ev).contains("Running in"), "{}", streams(&ev));
    // Every step hits, the metadata-only ENV too, and the image is the cache image itself.
    assert_eq!(count_cache_hits(&ev), 4);
    let l1 = env.store.resolve("cf:1").unwrap().diff_ids();
    let l2 = env.store.resolve("cf:2").unwrap().diff_ids();
    assert_eq!(l1, l2);
    assert_eq!(env.store.resolve("cf:2").unwrap().id, first.id);
    // After the source changes, the COPY and what follows are built again.
    std::fs::write(ctx.join("f.txt"), "g\n").unwrap();
    let events = Mutex::new(Vec::new());
    let p = |e: &Event| events.lock().unwrap().push(e.clone());
    let b3 = Builder::new(env.store.clone(), env.dir.path().join("builder3")).unwrap();
    b3.build(&o, BuildContext::Dir(ctx.clone()), &p).unwrap();
    let ev = events.into_inner().unwrap();
    assert_eq!(count_cache_hits(&ev), 2, "{}", streams(&ev));
    assert_ne!(env.store.resolve("cf:2").unwrap().id, first.id);
    assert_eq!(env.file("cf:2", "f.txt").as_deref(), Some("g\n"));
}

/// (relative path, type+mode, uid, gid, size, content or link target, rdev, opaque xattr)
type TreeRow = (String, u32, u32, u32, u64, Vec<u8>, u64, bool);

fn tree(root: &Path) -> Vec<TreeRow> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let data = if m.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            } else if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                vec![]
            };
            let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
            let mut v = [0u8; 4];
            // SAFETY: c is NUL-terminated, v a 4-byte buffer.
            let n = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    c"trusted.overlay.opaque".as_ptr(),
                    v.as_mut_ptr().cast(),
                    v.len(),
                )
            };
            let opaque = n == 1 && v[0] == b'y';
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let size = if m.is_dir() { 0 } else { m.size() };
            out.push((
                rel,
                m.mode(),
                m.uid(),
                m.gid(),
                size,
                data,
                m.rdev(),
                opaque,
            ));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn adopted_layers_equal_their_unpacked_blobs() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let df = "FROM busybox\n\
              RUN rm /bin/ls && mkdir -p /d/sub && echo x > /d/sub/f && ln -s /d/sub/f /d/link \
                  && chown 1000:1000 /d/sub/f && chmod 4755 /d/sub/f \
                  && rm -rf /home/user && mkdir /home/user && echo n > /home/user/new && mkfifo /d/fifo\n\
              COPY . /ctx/\n";
    let ctx = env.context("adopt", &[("Dockerfile", df), ("a/b.txt", "b\n")]);
    let (r, events) = env.build(&ctx, "adopt");
    r.unwrap_or_else(|e| panic!("{e}\n{}", streams(&events)));
    let rec = env.store.resolve("adopt").unwrap();
    assert_eq!(rec.layers.len(), 3);
    for l in &rec.layers[1..] {
        let dir = tempfile::tempdir().unwrap();
        barge_image::unpack::unpack(
            env.store.open_blob(&l.blob).unwrap(),
            dir.path(),
            "check",
            &Default::default(),
        )
        .unwrap();
        let adopted = tree(&env.store.layer_path(&l.diff_id));
        assert_eq!(adopted, tree(dir.path()), "layer {}", l.diff_id);
        assert!(!adopted.is_empty());
    }
    let run_layer = tree(&env.store.layer_path(&rec.layers[1].diff_id));
    assert!(
        run_layer
            .iter()
            .any(|r| r.0 == "bin/ls" && r.1 & 0o170000 == 0o020000),
        "whiteout"
    );
    assert!(
        run_layer.iter().any(|r| r.0 == "home/user" && r.7),
        "opaque dir"
    );
}

#[test]
fn a_cancelled_build_stops_its_run_and_cleans_up() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let ctx = env.context(
        "cancel",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN while true; do echo tick; sleep 0.1; done\n",
        )],
    );
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut o = opts("cancel");
    o.cancel = Some(cancel.clone());
    let c2 = cancel.clone();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        c2.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    // The RUN loops forever: the build returning at all shows the cancel stopped it.
    let (r, events) = env.build_with(&ctx, o);
    setter.join().unwrap();
    assert!(matches!(r, Err(BuildError::Cancelled)), "{r:?}");
    assert!(streams(&events).contains("tick"));
    assert!(!env.tagged("cancel"));
    assert!(env
        .store
        .list_snapshots()
        .unwrap()
        .iter()
        .all(|s| !s.key.starts_with("build-")));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(
        &env.dir
            .path()
            .join("builder/tmp/build-")
            .display()
            .to_string()
    ));
}

// The daemon shares one Builder between requests on blocking threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Builder>();
    send_sync::<BuildOptions>();
};

#[test]
fn a_hostile_context_tar_is_refused() {
    if common::skip_unless_root() {
        return;
    }
    let env = setup();
    let ctx = env.context("hostile", &[("Dockerfile", "FROM busybox\nCOPY . /ctx/\n")]);
    std::fs::write(env.dir.path().join("outside.txt"), "x\n").unwrap();
    // -P keeps the leading "../" in the member name.
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .args(["-cPf", "-", "Dockerfile", "../outside.txt"])
        .output()
        .unwrap();
    assert!(
        tar.status.success(),
        "{}",
        String::from_utf8_lossy(&tar.stderr)
    );
    assert!(String::from_utf8_lossy(&tar.stdout).contains("../outside.txt"));
    let r = env.builder.build(
        &opts("hostile"),
        BuildContext::Tar(Box::new(std::io::Cursor::new(tar.stdout))),
        &barge_build::NoProgress,
    );
    let e = r.expect_err("a context with ../ entries").to_string();
    assert!(e.starts_with("build context:"), "{e}");
    assert!(!env.dir.path().join("builder/tmp/outside.txt").exists());
    assert!(!env.dir.path().join("builder/outside.txt").exists());
    assert!(!env.tagged("hostile"));
}
