//! Pull, push, login and logout against Debian's `docker-registry` started on 127.0.0.1 by
//! each test (config in a temp dir, stopped by PID at the end), and interoperability with
//! `skopeo` and `umoci`.

use barge_image::auth::{self, Credentials};
use barge_image::progress::Progress;
use barge_image::registry::{self, RegistryOptions};
use barge_image::{Digest, Error, Reference, Store};
use barge_testsupport::busybox;
use barge_testsupport::registry::Registry;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What these tests ask of the shared registry beyond its host: references and blob files
/// in barge-image's types.
trait RegistryExt {
    /// `<host>/<name>` as a reference.
    fn r(&self, name: &str) -> Reference;
    /// The file the registry serves for a blob.
    fn blob_file(&self, d: &Digest) -> PathBuf;
}

impl RegistryExt for Registry {
    fn r(&self, name: &str) -> Reference {
        format!("{}/{name}", self.host())
            .parse()
            .expect("reference")
    }

    fn blob_file(&self, d: &Digest) -> PathBuf {
        self.blob_path(d.hex())
    }
}

fn new_store(dir: &Path, name: &str) -> Arc<Store> {
    Arc::new(Store::open(dir.join(name)).expect("open store"))
}

/// A store with busybox imported as `reference`.
fn busybox_store(dir: &Path, reference: &Reference) -> Arc<Store> {
    let store = new_store(dir, "src");
    let tar = busybox::tar(dir);
    store
        .import(&tar[..], Some(reference), "busybox for the registry tests")
        .expect("import busybox");
    store
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Collects progress events.
#[derive(Default, Clone)]
struct Events(Arc<Mutex<Vec<Progress>>>);

impl Events {
    fn sink(&self) -> impl Fn(Progress) + Send + Sync + 'static {
        let v = self.0.clone();
        move |p| v.lock().expect("events").push(p)
    }
    fn all(&self) -> Vec<Progress> {
        self.0.lock().expect("events").clone()
    }
    fn json(&self) -> Vec<serde_json::Value> {
        self.all().iter().flat_map(|p| p.to_docker_json()).collect()
    }
}

fn opts() -> RegistryOptions {
    RegistryOptions {
        // Keep the tests away from the user's ~/.docker.
        docker_config_dir: Some(PathBuf::from("/nonexistent/barge-test-docker-config")),
        ..Default::default()
    }
}

#[test]
fn push_then_pull_into_another_store_gives_the_same_image() {
    let reg = Registry::start(None);
    let td = tempfile::tempdir().expect("tempdir");
    let r = reg.r("busybox:v1");
    let src = busybox_store(td.path(), &r);
    let local = src.resolve(&r.to_string()).expect("resolve");
    let rt = rt();

    let ev = Events::default();
    let sink = ev.sink();
    let pushed = rt
        .block_on(registry::push(src.clone(), &r, &opts(), &sink))
        .expect("push");
    assert_eq!(pushed.digest, local.manifest);
    assert_eq!(pushed.tag, "v1");
    assert_eq!(pushed.uploaded.len(), 2, "layer + config uploaded");
    assert!(pushed.existing.is_empty());
    let json = ev.json();
    assert_eq!(
        json[0]["status"],
        format!("The push refers to repository [{}/busybox]", reg.host())
    );
    assert!(json
        .iter()
        .any(|j| j["status"] == "Pushed" && j["id"] == local.layers[0].blob.short()));
    assert!(json
        .iter()
        .any(|j| j["status"] == "Pushing" && j["progressDetail"]["total"] == local.layers[0].size));
    let n = json.len();
    assert_eq!(
        json[n - 2]["status"],
        format!("v1: digest: {} size: {}", pushed.digest, pushed.size)
    );
    assert_eq!(json[n - 1]["aux"]["Digest"], pushed.digest.to_string());
    // The registry stored exactly our manifest bytes.
    let reg_manifest = std::fs::read(reg.blob_file(&pushed.digest)).expect("registry manifest");
    assert_eq!(Digest::of(&reg_manifest), local.manifest);

    let dst = new_store(td.path(), "dst");
    let ev = Events::default();
    let sink = ev.sink();
    let pulled = rt
        .block_on(registry::pull(dst.clone(), &r, &opts(), &sink))
        .expect("pull");
    assert_eq!(pulled.image.id, local.id);
    assert_eq!(pulled.image.manifest, local.manifest);
    assert_eq!(pulled.image.diff_ids(), local.diff_ids());
    assert_eq!(pulled.digest, local.manifest);
    assert!(pulled.updated);
    assert_eq!(dst.resolve(&r.to_string()).expect("tagged").id, local.id);
    assert!(dst.has_layer(&local.layers[0].diff_id));
    assert_eq!(
        pulled.image.repo_digests,
        vec![format!("{}/busybox@{}", reg.host(), local.manifest)]
    );
    let json = ev.json();
    assert_eq!(json[0]["status"], "Pulling from busybox");
    assert_eq!(json[0]["id"], "v1");
    let id = local.layers[0].blob.short();
    let dl: Vec<_> = json
        .iter()
        .filter(|j| j["status"] == "Downloading" && j["id"] == id)
        .collect();
    assert!(!dl.is_empty());
    assert_eq!(
        dl.last().expect("last")["progressDetail"]["current"],
        local.layers[0].size
    );
    assert!(json
        .iter()
        .any(|j| j["status"] == "Pull complete" && j["id"] == id));
    assert!(json
        .iter()
        .any(|j| j["status"] == format!("Digest: {}", local.manifest)));
    assert_eq!(
        json.last().expect("last")["status"],
        format!("Status: Downloaded newer image for {}", r.familiar())
    );

    // Pulling again: nothing downloaded, up to date.
    let ev = Events::default();
    let sink = ev.sink();
    let again = rt
        .block_on(registry::pull(dst.clone(), &r, &opts(), &sink))
        .expect("pull again");
    assert!(!again.updated);
    assert!(!ev
        .all()
        .iter()
        .any(|p| matches!(p, Progress::Downloading { .. })));
    assert_eq!(
        ev.json().last().expect("last")["status"],
        format!("Status: Image is up to date for {}", r.familiar())
    );
}

#[test]
fn all_tags_lists_the_repository_and_pulls_each_tag() {
    let reg = Registry::start(None);
    let td = tempfile::tempdir().expect("tempdir");
    let v1 = reg.r("multi:v1");
    let src = busybox_store(td.path(), &v1);
    let rt = rt();
    // Three tags of one image, and another repository that must not be pulled.
    let other = reg.r("elsewhere:v9");
    for t in ["v1", "v2", "latest"] {
        let r = reg.r(&format!("multi:{t}"));
        src.tag(&v1.to_string(), &r).expect("tag");
        rt.block_on(registry::push(
            src.clone(),
            &r,
            &opts(),
            &registry::no_progress,
        ))
        .expect("push");
    }
    src.tag(&v1.to_string(), &other).expect("tag");
    rt.block_on(registry::push(
        src.clone(),
        &other,
        &opts(),
        &registry::no_progress,
    ))
    .expect("push other");

    let repo = Reference::parse_name_only(&format!("{}/multi", reg.host())).expect("repo");
    assert_eq!(
        rt.block_on(registry::list_tags(&repo, &opts()))
            .expect("tags"),
        vec!["latest", "v1", "v2"]
    );
    let dst = new_store(td.path(), "dst");
    let reports = rt
        .block_on(registry::pull_all_tags(
            dst.clone(),
            &repo,
            &opts(),
            &registry::no_progress,
        ))
        .expect("pull all tags");
    let mut pulled: Vec<String> = reports.iter().map(|r| r.reference.to_string()).collect();
    pulled.sort();
    assert_eq!(
        pulled,
        ["latest", "v1", "v2"]
            .iter()
            .map(|t| format!("{}/multi:{t}", reg.host()))
            .collect::<Vec<_>>()
    );
    let id = src.resolve(&v1.to_string()).expect("src").id;
    for t in ["latest", "v1", "v2"] {
        let r = reg.r(&format!("multi:{t}"));
        assert_eq!(dst.resolve(&r.to_string()).expect("tagged").id, id);
    }
    assert!(dst.resolve(&other.to_string()).is_err());

    // A tag with --all-tags is refused before anything is fetched.
    let e = rt
        .block_on(registry::pull_all_tags(
            dst.clone(),
            &v1,
            &opts(),
            &registry::no_progress,
        ))
        .expect_err("tag with all tags");
    assert!(e.to_string().contains("--all-tags"), "{e}");
    // An unknown repository: a clear not-found error, nothing kept.
    let none = Reference::parse_name_only(&format!("{}/nothing-here", reg.host())).expect("r");
    let empty = new_store(td.path(), "empty");
    let e = rt
        .block_on(registry::pull_all_tags(
            empty.clone(),
            &none,
            &opts(),
            &registry::no_progress,
        ))
        .expect_err("unknown repository");
    assert!(matches!(e, Error::RemoteNotFound { .. }), "{e:?}");
    assert!(empty.list_images().expect("list").is_empty());
}

#[test]
fn repush_skips_existing_blobs_and_other_repo_mounts() {
    let reg = Registry::start(None);
    let td = tempfile::tempdir().expect("tempdir");
    let r = reg.r("base/busybox:v1");
    let src = busybox_store(td.path(), &r);
    let rt = rt();
    let first = rt
        .block_on(registry::push(
            src.clone(),
            &r,
            &opts(),
            &registry::no_progress,
        ))
        .expect("push");
    assert_eq!(first.uploaded.len(), 2);

    let ev = Events::default();
    let sink = ev.sink();
    let second = rt
        .block_on(registry::push(src.clone(), &r, &opts(), &sink))
        .expect("re-push");
    assert!(second.uploaded.is_empty(), "{second:?}");
    assert_eq!(second.existing.len(), 2);
    assert_eq!(second.digest, first.digest);
    assert!(ev
        .json()
        .iter()
        .any(|j| j["status"] == "Layer already exists"));

    // Same registry, other repository: blobs are mounted, not uploaded.
    let other = reg.r("app/copy:v2");
    src.tag(&r.to_string(), &other).expect("tag");
    let ev = Events::default();
    let sink = ev.sink();
    let third = rt
        .block_on(registry::push(src.clone(), &other, &opts(), &sink))
        .expect("push to another repo");
    assert!(third.uploaded.is_empty(), "{third:?}");
    assert_eq!(third.mounted.len(), 2, "{third:?}");
    assert!(third.mounted.iter().all(|(_, from)| from == "base/busybox"));
    assert!(ev
        .json()
        .iter()
        .any(|j| j["status"] == "Mounted from base/busybox"));
    // And it is pullable from there.
    let dst = new_store(td.path(), "dst");
    let p = rt
        .block_on(registry::pull(dst, &other, &opts(), &registry::no_progress))
        .expect("pull mounted");
    assert_eq!(p.digest, first.digest);
}

#[test]
fn pull_by_digest_records_repo_digest_without_tag() {
    let reg = Registry::start(None);
    let td = tempfile::tempdir().expect("tempdir");
    let r = reg.r("busybox:v1");
    let src = busybox_store(td.path(), &r);
    let rt = rt();
    let pushed = rt
        .block_on(registry::push(
            src.clone(),
            &r,
            &opts(),
            &registry::no_progress,
        ))
        .expect("push");
    let by_digest = r.with_digest(pushed.digest.clone());
    let dst = new_store(td.path(), "dst");
    let p = rt
        .block_on(registry::pull(
            dst.clone(),
            &by_digest,
            &opts(),
            &registry::no_progress,
        ))
        .expect("pull by digest");
    assert_eq!(p.digest, pushed.digest);
    assert_eq!(p.image.id, src.resolve(&r.to_string()).expect("src").id);
    assert!(dst.references().expect("refs").is_empty(), "no tag made");
    assert_eq!(
        dst.resolve(&by_digest.to_string()).ok().map(|i| i.id),
        Some(p.image.id.clone())
    );

    // A digest the registry does not have: a clear not-found error, nothing kept.
    let missing = r.with_digest(Digest::of(b"no such manifest"));
    let e = rt
        .block_on(registry::pull(
            new_store(td.path(), "dst2"),
            &missing,
            &opts(),
            &registry::no_progress,
        ))
        .expect_err("unknown digest");
    assert!(matches!(e, Error::RemoteNotFound { .. }), "{e}");
}

#[test]
fn unknown_image_is_a_clear_error() {
    let reg = Registry::start(None);
    let td = tempfile::tempdir().expect("tempdir");
    let rt = rt();
    let dst = new_store(td.path(), "dst");
    let r = reg.r("nothing/here:latest");
    let e = rt
        .block_on(registry::pull(
            dst.clone(),
            &r,
            &opts(),
            &registry::no_progress,
        ))
        .expect_err("unknown image");
    match &e {
        Error::RemoteNotFound { reference, .. } => assert_eq!(reference, &r.familiar()),
        other => panic!("expected RemoteNotFound, got {other}"),
    }
    assert!(e.to_string().contains("not found"), "{e}");
    assert!(dst.list_images().expect("list").is_empty());
    // Pushing something the store does not have names it.
    let e = rt
        .block_on(registry::push(dst, &r, &opts(), &registry::no_progress))
        .expect_err("push unknown");
    assert!(matches!(e, Error::ImageNotFound(_)), "{e}");
    // Nothing listens: a connection error naming the registry.
    drop(reg);
    let e = rt
        .block_on(registry::pull(
            new_store(td.path(), "dst3"),
            &r,
            &opts(),
            &registry::no_progress,
        ))
        .expect_err("no registry");
    assert!(matches!(e, Error::Registry { .. }), "{e}");
}

#[test]
fn tampered_or_truncated_blob_fails_and_leaves_nothing() {
    let reg = Registry::start(None);
    let td = tempfile::tempdir().expect("tempdir");
    let r = reg.r("busybox:v1");
    let src = busybox_store(td.path(), &r);
    let local = src.resolve(&r.to_string()).expect("resolve");
    let rt = rt();
    rt.block_on(registry::push(
        src.clone(),
        &r,
        &opts(),
        &registry::no_progress,
    ))
    .expect("push");
    let layer = reg.blob_file(&local.layers[0].blob);
    let good = std::fs::read(&layer).expect("layer data");

    // Same size, one byte changed.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&layer, &bad).expect("tamper");
    let dst = new_store(td.path(), "dst");
    let e = rt
        .block_on(registry::pull(
            dst.clone(),
            &r,
            &opts(),
            &registry::no_progress,
        ))
        .expect_err("tampered blob");
    match &e {
        Error::DigestMismatch { expected, .. } => assert_eq!(expected, &local.layers[0].blob),
        other => panic!("expected a digest mismatch, got {other}"),
    }
    assert_store_empty(&dst);

    // Truncated.
    std::fs::write(&layer, &good[..good.len() / 3]).expect("truncate");
    let e = rt
        .block_on(registry::pull(
            dst.clone(),
            &r,
            &opts(),
            &registry::no_progress,
        ))
        .expect_err("truncated blob");
    match &e {
        Error::SizeMismatch {
            expected, actual, ..
        } => {
            assert_eq!(*expected, local.layers[0].size);
            assert_eq!(*actual, (good.len() / 3) as u64);
        }
        other => panic!("expected a size mismatch, got {other}"),
    }
    assert_store_empty(&dst);

    // A manifest replaced by another document: refused (its digest is not the one the
    // registry announces), nothing kept.
    std::fs::write(&layer, &good).expect("restore");
    let mfile = reg.blob_file(&local.manifest);
    let mgood = std::fs::read(&mfile).expect("manifest data");
    let mut mbad = mgood.clone();
    mbad.extend_from_slice(b"\n"); // still valid JSON, other bytes
    std::fs::write(&mfile, &mbad).expect("tamper manifest");
    let e = rt
        .block_on(registry::pull(
            dst.clone(),
            &r,
            &opts(),
            &registry::no_progress,
        ))
        .expect_err("tampered manifest");
    match &e {
        Error::DigestMismatch { expected, .. } => assert_eq!(expected, &local.manifest),
        other => panic!("expected a digest mismatch, got {other}"),
    }
    assert_store_empty(&dst);
    // Pinned by digest, a different document is refused too.
    let e = rt
        .block_on(registry::pull(
            dst.clone(),
            &r.with_digest(local.manifest.clone()),
            &opts(),
            &registry::no_progress,
        ))
        .expect_err("tampered manifest by digest");
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert_store_empty(&dst);
    std::fs::write(&mfile, &mgood).expect("restore manifest");

    // Restored: the same store pulls fine.
    rt.block_on(registry::pull(
        dst.clone(),
        &r,
        &opts(),
        &registry::no_progress,
    ))
    .expect("pull after restore");
    assert_eq!(dst.list_images().expect("list").len(), 1);
}

fn assert_store_empty(store: &Store) {
    assert!(store.list_images().expect("list").is_empty());
    assert!(
        store.list_blobs().expect("blobs").is_empty(),
        "blobs left: {:?}",
        store.list_blobs()
    );
    let layers: Vec<_> = std::fs::read_dir(store.root().join("layers"))
        .expect("layers dir")
        .collect();
    assert!(layers.is_empty(), "layers left: {layers:?}");
    let ingest: Vec<_> = std::fs::read_dir(store.root().join("ingest"))
        .expect("ingest dir")
        .collect();
    assert!(ingest.is_empty(), "temp files left: {ingest:?}");
}

#[test]
fn basic_auth_login_logout_and_config_json() {
    let reg = Registry::start(Some(("barge", "s3cret")));
    let td = tempfile::tempdir().expect("tempdir");
    let cfg_dir = td.path().join("docker-config");
    let mut o = opts();
    o.docker_config_dir = Some(cfg_dir.clone());
    let r = reg.r("private/busybox:v1");
    let src = busybox_store(td.path(), &r);
    let rt = rt();

    // No credentials: refused.
    let e = rt
        .block_on(registry::push(src.clone(), &r, &o, &registry::no_progress))
        .expect_err("anonymous push");
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");

    // Wrong password: refused, nothing written.
    let wrong = Credentials {
        username: "barge".into(),
        password: "nope".into(),
    };
    let e = rt
        .block_on(registry::login(&reg.host(), &wrong, &o))
        .expect_err("wrong password");
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(!cfg_dir.join("config.json").exists());

    // Right password: stored as Docker does.
    let right = Credentials {
        username: "barge".into(),
        password: "s3cret".into(),
    };
    rt.block_on(registry::login(&reg.host(), &right, &o))
        .expect("login");
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cfg_dir.join("config.json")).expect("config.json"))
            .expect("json");
    assert_eq!(raw["auths"][reg.host()]["auth"], "YmFyZ2U6czNjcmV0");
    assert_eq!(
        auth::load_credentials(Some(&cfg_dir), &reg.host()).expect("load"),
        Some(right)
    );

    // Push and pull with the stored credentials.
    rt.block_on(registry::push(src.clone(), &r, &o, &registry::no_progress))
        .expect("push with stored credentials");
    let dst = new_store(td.path(), "dst");
    rt.block_on(registry::pull(dst.clone(), &r, &o, &registry::no_progress))
        .expect("pull with stored credentials");

    // Logout removes them; pulls are refused again and leave nothing.
    assert!(rt
        .block_on(registry::logout(&reg.host(), &o))
        .expect("logout"));
    assert!(!rt
        .block_on(registry::logout(&reg.host(), &o))
        .expect("logout twice"));
    assert_eq!(
        auth::load_credentials(Some(&cfg_dir), &reg.host()).expect("load"),
        None
    );
    let dst2 = new_store(td.path(), "dst2");
    let e = rt
        .block_on(registry::pull(dst2.clone(), &r, &o, &registry::no_progress))
        .expect_err("pull after logout");
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(dst2.list_images().expect("list").is_empty());
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn skopeo_and_umoci_read_what_barge_pushes() {
    let reg = Registry::start(None);
    let td = tempfile::tempdir().expect("tempdir");
    let r = reg.r("interop/busybox:v1");
    let src = busybox_store(td.path(), &r);
    let local = src.resolve(&r.to_string()).expect("resolve");
    let rt = rt();
    let pushed = rt
        .block_on(registry::push(
            src.clone(),
            &r,
            &opts(),
            &registry::no_progress,
        ))
        .expect("push");
    let inspect = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/interop/busybox:v1", reg.host()),
    ]));
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("inspect json");
    assert_eq!(v["Digest"], pushed.digest.to_string());
    assert_eq!(v["Layers"][0], local.layers[0].blob.to_string());
    let layout = td.path().join("oci");
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/interop/busybox:v1", reg.host()),
        &format!("oci:{}:v1", layout.display()),
    ]));
    let stat = run(Command::new("umoci").args([
        "stat",
        "--json",
        "--image",
        &format!("{}:v1", layout.display()),
    ]));
    assert!(stat.contains("history"), "{stat}");
    let bundle = td.path().join("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:v1", layout.display()),
        &bundle.to_string_lossy(),
    ]));
    assert!(bundle.join("rootfs/bin/busybox").is_file());
}

/// A gzipped tar with the given files.
fn gz_layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append_data(&mut h, name, *data).expect("append");
    }
    let tar = b.into_inner().expect("tar");
    let diff_id = Digest::of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip");
    (gz.finish().expect("gzip"), diff_id)
}

fn put_blob(layout: &Path, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    std::fs::write(layout.join("blobs/sha256").join(d.hex()), data).expect("blob");
    d
}

/// An OCI layout holding a two-platform index (host arch and one other) of two-layer
/// images; returns the host image's (config digest, diff ids).
fn make_oci_layout(layout: &Path) -> (Digest, Vec<Digest>) {
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("layout");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let host_arch = barge_image::manifest::PlatformSpec::host().architecture;
    let other_arch = if host_arch == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let mut entries = Vec::new();
    let mut host = None;
    for arch in [other_arch, host_arch.as_str()] {
        let (l1, d1) = gz_layer(&[("etc/arch", arch.as_bytes())]);
        let (l2, d2) = gz_layer(&[("hello.txt", b"hello from skopeo\n")]);
        let (b1, b2) = (put_blob(layout, &l1), put_blob(layout, &l2));
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [d1.to_string(), d2.to_string()]},
            "history": [{"created_by": "layer 1"}, {"created_by": "layer 2"}],
        });
        let cb = serde_json::to_vec(&config).expect("config");
        let cd = put_blob(layout, &cb);
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": cb.len(), "digest": cd.to_string()},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": l1.len(), "digest": b1.to_string()},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": l2.len(), "digest": b2.to_string()},
            ],
        });
        let mb = serde_json::to_vec(&m).expect("manifest");
        let md = put_blob(layout, &mb);
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": mb.len(), "digest": md.to_string(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
        if arch == host_arch {
            host = Some((cd, vec![d1, d2]));
        }
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let ib = serde_json::to_vec(&index).expect("index");
    let id = put_blob(layout, &ib);
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "size": ib.len(), "digest": id.to_string(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&top).expect("index.json"),
    )
    .expect("index.json");
    host.expect("host image")
}

#[test]
fn barge_pulls_what_skopeo_pushes_including_a_multi_platform_index() {
    let reg = Registry::start(None);
    let td = tempfile::tempdir().expect("tempdir");
    let layout = td.path().join("layout");
    let (config, diff_ids) = make_oci_layout(&layout);
    run(Command::new("skopeo").args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/skopeo/multi:v1", reg.host()),
    ]));
    let rt = rt();
    let dst = new_store(td.path(), "dst");
    let r = reg.r("skopeo/multi:v1");
    let ev = Events::default();
    let sink = ev.sink();
    let p = rt
        .block_on(registry::pull(dst.clone(), &r, &opts(), &sink))
        .expect("pull skopeo's image");
    assert_eq!(p.image.id, config, "the host platform's image was selected");
    assert_eq!(p.image.diff_ids(), diff_ids);
    assert_eq!(p.image.layers.len(), 2);
    let complete = ev
        .all()
        .iter()
        .filter(|e| matches!(e, Progress::PullComplete { .. }))
        .count();
    assert_eq!(complete, 2);
    // The index digest is what the pull reports, as docker does.
    let inspect = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/skopeo/multi:v1", reg.host()),
    ]));
    assert_eq!(p.digest, Digest::of(inspect.as_bytes()));
    let arch = std::fs::read_to_string(
        dst.root()
            .join("layers")
            .join(diff_ids[0].hex())
            .join("etc/arch"),
    );
    // The unpacked layer holds the host's file (layout of `layers/<hex>` may nest a
    // directory; fall back to a search).
    let found = match arch {
        Ok(a) => a,
        Err(_) => find_file(&dst.root().join("layers").join(diff_ids[0].hex()), "arch")
            .expect("etc/arch in the unpacked layer"),
    };
    assert_eq!(
        found,
        barge_image::manifest::PlatformSpec::host().architecture
    );

    // Docker v2 schema 2 (skopeo converts): pulled, then pushed back by barge unchanged.
    run(Command::new("skopeo").args([
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/skopeo/v2s2:v1", reg.host()),
    ]));
    let d2 = new_store(td.path(), "dst-v2s2");
    let v2 = rt
        .block_on(registry::pull(
            d2.clone(),
            &reg.r("skopeo/v2s2:v1"),
            &opts(),
            &registry::no_progress,
        ))
        .expect("pull v2s2");
    assert_eq!(v2.image.id, config);
    assert_eq!(
        v2.image.manifest_media_type,
        barge_image::manifest::DOCKER_MANIFEST
    );
    assert_eq!(v2.image.diff_ids(), diff_ids);
    let back = reg.r("barge/v2s2:v1");
    d2.tag(&v2.image.id.to_string(), &back).expect("tag");
    let pushed = rt
        .block_on(registry::push(d2, &back, &opts(), &registry::no_progress))
        .expect("push v2s2");
    assert_eq!(pushed.digest, v2.image.manifest);
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/barge/v2s2:v1", reg.host()),
    ]));
    assert!(
        raw.contains(barge_image::manifest::DOCKER_MANIFEST),
        "{raw}"
    );

    // A Docker manifest list (skopeo converts the index): the host's image is selected.
    run(Command::new("skopeo").args([
        "copy",
        "--all",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/skopeo/list:v1", reg.host()),
    ]));
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/skopeo/list:v1", reg.host()),
    ]));
    assert!(
        raw.contains(barge_image::manifest::DOCKER_MANIFEST_LIST),
        "{raw}"
    );
    let d3 = new_store(td.path(), "dst-list");
    let l = rt
        .block_on(registry::pull(
            d3,
            &reg.r("skopeo/list:v1"),
            &opts(),
            &registry::no_progress,
        ))
        .expect("pull a Docker manifest list");
    assert_eq!(l.image.id, config);
    assert_eq!(l.digest, Digest::of(raw.as_bytes()));

    // The other platform shares the second layer: it is not downloaded again.
    let host_arch = barge_image::manifest::PlatformSpec::host().architecture;
    let other = if host_arch == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let mut o = opts();
    o.platform = Some(
        barge_image::manifest::PlatformSpec::parse(&format!("linux/{other}")).expect("platform"),
    );
    let ev = Events::default();
    let sink = ev.sink();
    let q = rt
        .block_on(registry::pull(
            dst.clone(),
            &reg.r("skopeo/multi:v1"),
            &o,
            &sink,
        ))
        .expect("pull the other platform");
    assert_ne!(q.image.id, p.image.id);
    assert_eq!(q.digest, p.digest, "same index");
    assert_eq!(q.image.layers[1].blob, p.image.layers[1].blob);
    let all = ev.all();
    assert!(all.contains(&Progress::AlreadyExists {
        id: p.image.layers[1].blob.short().to_string()
    }));
    let downloaded: BTreeSet<String> = all
        .iter()
        .filter_map(|e| match e {
            Progress::Downloading { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        downloaded,
        BTreeSet::from([q.image.layers[0].blob.short().to_string()])
    );
}

fn find_file(dir: &Path, name: &str) -> Option<String> {
    for e in std::fs::read_dir(dir).ok()? {
        let e = e.ok()?;
        let p = e.path();
        let ft = e.file_type().ok()?;
        if ft.is_dir() {
            if let Some(s) = find_file(&p, name) {
                return Some(s);
            }
        } else if e.file_name() == name {
            return std::fs::read_to_string(p).ok();
        }
    }
    None
}

/// A token server as Docker Hub has one (`auth.docker.io/token`): anonymous requests get
/// pull-only tokens, `user:password` in basic auth gets what it asks, other credentials
/// get 401. Tokens are RS256 JWTs signed with `openssl`, with the certificate in `x5c`.
struct TokenServer {
    port: u16,
    cert: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// (authenticated user or "", scope) of each request.
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

const SERVICE: &str = "barge-test-registry";
const ISSUER: &str = "barge-test-issuer";

fn b64url(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TokenServer {
    fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        run(Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=barge-test-token",
            "-days",
            "2",
            "-keyout",
            &key.to_string_lossy(),
            "-out",
            &cert.to_string_lossy(),
        ]));
        let pem = std::fs::read_to_string(&cert).expect("cert");
        let der_b64: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        use base64::Engine;
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let user = user.to_string();
        let (st, rq) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        n += 1;
                        let _ = sock.set_nonblocking(false);
                        let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
                        serve_token(sock, &key, &der_b64, &good, &user, n, &rq);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TokenServer {
            port,
            cert,
            stop,
            thread: Some(thread),
            requests,
        }
    }

    fn auth_yaml(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.cert.display()
        )
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_token(
    mut sock: TcpStream,
    key: &Path,
    cert_b64: &str,
    good_auth: &str,
    user: &str,
    n: u64,
    requests: &Mutex<Vec<(String, String)>>,
) {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    let req = String::from_utf8_lossy(&buf).into_owned();
    let target = req.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let scopes: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "scope")
        .map(|(_, v)| percent_decode(v))
        .collect();
    let auth = req.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("authorization")
            .then(|| v.trim().to_string())
    });
    let respond = |sock: &mut TcpStream, status: &str, body: &str| {
        let _ = write!(
            sock,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    let who = match auth.as_deref() {
        None => "",
        Some(a) if a == good_auth => user,
        Some(_) => {
            requests
                .lock()
                .expect("requests")
                .push(("(refused)".into(), scopes.join(" ")));
            respond(
                &mut sock,
                "401 Unauthorized",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#,
            );
            return;
        }
    };
    requests
        .lock()
        .expect("requests")
        .push((who.to_string(), scopes.join(" ")));
    let mut access = Vec::new();
    for sc in &scopes {
        let parts: Vec<&str> = sc.split(':').collect();
        if parts.len() != 3 {
            continue;
        }
        let actions: Vec<&str> = parts[2]
            .split(',')
            .filter(|a| !who.is_empty() || *a == "pull")
            .collect();
        access.push(serde_json::json!({"type": parts[0], "name": parts[1], "actions": actions}));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [cert_b64]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": who, "aud": SERVICE,
        "exp": now + 600, "nbf": now - 60, "iat": now - 60,
        "jti": format!("barge-{now}-{n}"), "access": access,
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl dgst");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("sign");
    assert!(out.status.success(), "openssl dgst failed");
    let token = format!("{input}.{}", b64url(&out.stdout));
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 600});
    respond(&mut sock, "200 OK", &body.to_string());
}

#[test]
fn bearer_tokens_anonymous_pull_and_login_push_as_docker_hub_does() {
    let td = tempfile::tempdir().expect("tempdir");
    let tok = TokenServer::start(td.path(), "barge", "t0ken-pass");
    let reg = Registry::start_with(None, &tok.auth_yaml());
    let cfg_dir = td.path().join("docker-config");
    let mut o = opts();
    o.docker_config_dir = Some(cfg_dir.clone());
    let r = reg.r("hub/busybox:v1");
    let src = busybox_store(td.path(), &r);
    let local = src.resolve(&r.to_string()).expect("resolve");
    let rt = rt();

    // Anonymous: the token grants pull only, so a push is refused.
    let e = rt
        .block_on(registry::push(src.clone(), &r, &o, &registry::no_progress))
        .expect_err("anonymous push");
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");

    // Login goes to the token endpoint with basic auth, as docker login does.
    let wrong = Credentials {
        username: "barge".into(),
        password: "wrong".into(),
    };
    let e = rt
        .block_on(registry::login(&reg.host(), &wrong, &o))
        .expect_err("wrong password");
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(!cfg_dir.join("config.json").exists());
    let right = Credentials {
        username: "barge".into(),
        password: "t0ken-pass".into(),
    };
    rt.block_on(registry::login(&reg.host(), &right, &o))
        .expect("login");
    let pushed = rt
        .block_on(registry::push(src.clone(), &r, &o, &registry::no_progress))
        .expect("push with a token got with the stored credentials");
    assert_eq!(pushed.digest, local.manifest);
    assert!(tok
        .requests
        .lock()
        .expect("requests")
        .iter()
        .any(|(who, scope)| who == "barge" && scope == "repository:hub/busybox:pull,push"));

    // Logged out: an anonymous token is enough to pull.
    assert!(rt
        .block_on(registry::logout(&reg.host(), &o))
        .expect("logout"));
    let dst = new_store(td.path(), "dst");
    let p = rt
        .block_on(registry::pull(dst, &r, &o, &registry::no_progress))
        .expect("anonymous pull with a bearer token");
    assert_eq!(p.image.id, local.id);
    assert!(tok
        .requests
        .lock()
        .expect("requests")
        .iter()
        .any(|(who, scope)| who.is_empty() && scope == "repository:hub/busybox:pull"));
}
