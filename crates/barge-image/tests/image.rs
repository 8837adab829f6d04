//! Images: import, tag/untag/list/inspect/history/remove with reference counting,
//! docker-archive and OCI layout save/load, failed loads keep nothing, podman interop.

mod common;

use barge_image::{Digest, Error, Reference, Store};
use barge_testsupport::busybox;
use common::{root_or_skip, tar_of, E};
use std::path::{Path, PathBuf};
use std::process::Command;

fn r(s: &str) -> Reference {
    Reference::parse(s).expect("reference")
}

fn blob_and_layer_count(s: &Store) -> (usize, usize) {
    let layers = std::fs::read_dir(s.root().join("layers"))
        .expect("layers")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .count();
    (s.list_blobs().expect("blobs").len(), layers)
}

#[test]
fn import_tag_list_history_remove() {
    if !root_or_skip("import_tag_list_history_remove") {
        return;
    }
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("store")).expect("store");
    let tarball = busybox::tar(td.path());
    let img = store
        .import(&tarball[..], Some(&r("busybox")), "from test")
        .expect("import");
    assert_eq!(img.layers.len(), 1);
    assert_eq!(img.layers[0].diff_id, Digest::of(&tarball));
    assert!(store
        .layer_path(&img.layers[0].diff_id)
        .join("bin/busybox")
        .is_file());
    // Resolution by name, full id, short id, and familiar/normalized names.
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        &img.id.to_string(),
        &img.id.hex()[..12],
    ] {
        assert_eq!(store.resolve(name).expect(name).id, img.id);
    }
    assert!(matches!(
        store.resolve("nothere"),
        Err(Error::ImageNotFound(_))
    ));
    store
        .tag("busybox", &r("localhost:5000/bb:v1"))
        .expect("tag");
    let list = store.list_images().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].tags.len(), 2);
    assert_eq!(list[0].size, tarball.len() as u64);
    assert_eq!(list[0].shared_size, 0);
    let hist = store.history("busybox").expect("history");
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].created_by, None);
    assert_eq!(hist[0].comment.as_deref(), Some("from test"));
    let (_, cfg) = store.inspect("busybox").expect("inspect");
    assert_eq!(cfg.os().to_string(), "linux");

    // A second image sharing the layer: shared size shows, the layer is unpacked once.
    let img2 = store
        .import(&tarball[..], Some(&r("other")), "second")
        .expect("import again");
    assert_ne!(
        img2.id, img.id,
        "different configs (comment) make different images"
    );
    let list = store.list_images().expect("list");
    assert!(list.iter().all(|i| i.shared_size == tarball.len() as u64));

    // Removing: a tag with siblings only untags; a snapshot in use refuses removal.
    let rep = store
        .remove_image("localhost:5000/bb:v1", false)
        .expect("untag");
    assert_eq!(rep.untagged, vec![r("localhost:5000/bb:v1")]);
    assert!(rep.deleted.is_empty());
    // `other` has the very same layers: a snapshot on them keeps them either way, so it
    // does not pin `busybox` (the engine refuses by its containers' image ids).
    store.prepare("ctr", &img.diff_ids()).expect("snapshot");
    let rep = store.remove_image("busybox", false).expect("remove");
    assert_eq!(rep.deleted, vec![img.id.clone()]);
    store.remove_snapshot("ctr").expect("remove snapshot");
    // The shared layer and its blob stay for the other image.
    assert!(store.has_layer(&img.layers[0].diff_id));
    assert!(store.has_blob(&img.layers[0].blob));
    assert!(
        !store.has_blob(&img.id),
        "config of the removed image freed"
    );
    // An untagged image is dangling: prune removes it.
    store.untag(&r("other")).expect("untag");
    assert_eq!(
        store.prune_dangling().expect("prune"),
        vec![img2.id.clone()]
    );
    assert_eq!(blob_and_layer_count(&store), (0, 0), "everything freed");
    assert!(store.list_images().expect("list").is_empty());

    // An image alone on its layers: a snapshot on them refuses its removal.
    let img3 = store
        .import(&tarball[..], Some(&r("busybox")), "third")
        .expect("import");
    store.prepare("ctr", &img3.diff_ids()).expect("snapshot");
    let e = store.remove_image("busybox", false).expect_err("in use");
    assert!(matches!(e, Error::ImageInUse { users: 1, .. }), "{e}");
    store.remove_snapshot("ctr").expect("remove snapshot");
    let rep = store.remove_image("busybox", false).expect("remove");
    assert_eq!(rep.deleted, vec![img3.id.clone()]);
}

#[test]
fn docker_archive_and_oci_layout_round_trip() {
    if !root_or_skip("docker_archive_and_oci_layout_round_trip") {
        return;
    }
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("a")).expect("store");
    let l1 = tar_of(&[E::Dir("etc"), E::File("etc/hostname", b"one")]);
    let l2 = tar_of(&[
        E::File("etc/.wh.hostname", b""),
        E::File("etc/motd", b"two"),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &l2).expect("gz");
    let l2gz = gz.finish().expect("gz");
    // Build a two-layer image by hand (one layer gzip-compressed), as a pull would store it.
    let b1 = store.put_blob(&l1).expect("b1");
    let b2 = store.put_blob(&l2gz).expect("b2");
    let cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{}","{}"]}},"history":[{{"created_by":"one"}},{{"created_by":"meta","empty_layer":true}},{{"created_by":"two"}}]}}"#,
        Digest::of(&l1),
        Digest::of(&l2)
    );
    let c = store.put_blob(cfg.as_bytes()).expect("config");
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{},"digest":"{c}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","size":{},"digest":"{b1}"}},{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{},"digest":"{b2}"}}]}}"#,
        cfg.len(),
        l1.len(),
        l2gz.len()
    );
    let md = store.put_blob(m.as_bytes()).expect("manifest");
    let img = store.commit_image(&md).expect("commit");
    store
        .tag(&img.id.to_string(), &r("example.com/app:1"))
        .expect("tag");
    let hist = store.history("example.com/app:1").expect("history");
    assert_eq!(
        hist.iter()
            .map(|h| h.created_by.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["two", "meta", "one"]
    );
    assert_eq!(
        hist[0].layer.as_ref().map(|l| l.0.clone()),
        Some(Digest::of(&l2))
    );

    // docker-archive
    let mut archive = Vec::new();
    store
        .save_docker_archive(&["example.com/app:1"], &mut archive)
        .expect("save");
    let mut again = Vec::new();
    store
        .save_docker_archive(&["example.com/app:1"], &mut again)
        .expect("save again");
    assert_eq!(archive, again, "saving is deterministic");
    let names: Vec<String> = tar::Archive::new(&archive[..])
        .entries()
        .expect("entries")
        .map(|e| e.expect("e").path().expect("p").display().to_string())
        .collect();
    assert!(
        names.contains(&"manifest.json".to_string()) && names.contains(&"repositories".to_string()),
        "{names:?}"
    );
    // As `docker save` since Docker 25: also an OCI layout, every file a blob, layers
    // uncompressed under their diff ids.
    for want in ["oci-layout", "index.json"] {
        assert!(names.contains(&want.to_string()), "{want}: {names:?}");
    }
    for d in img.diff_ids() {
        assert!(
            names.contains(&format!("blobs/sha256/{}", d.hex())),
            "{d}: {names:?}"
        );
    }
    assert!(names.iter().all(|n| !n.ends_with(".tar")), "{names:?}");
    // The OCI half alone loads to the same image.
    let mut oci_only = tar::Builder::new(Vec::new());
    for e in tar::Archive::new(&archive[..]).entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").display().to_string();
        if name == "manifest.json" || name == "repositories" {
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).expect("read");
        oci_only
            .append_data(&mut h, &name, &data[..])
            .expect("append");
    }
    let oci_only = oci_only.into_inner().expect("tar");
    let s5 = Store::open(td.path().join("e")).expect("store e");
    let loaded = s5
        .load(&oci_only[..], "oci half")
        .expect("load the OCI half");
    assert_eq!(loaded[0].id, img.id, "same config, same image id");
    assert_eq!(loaded[0].tags, vec![r("example.com/app:1")]);
    let s2 = Store::open(td.path().join("b")).expect("store b");
    let loaded = s2.load(&archive[..], "archive").expect("load");
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, img.id, "same config, same image id");
    assert_eq!(loaded[0].tags, vec![r("example.com/app:1")]);
    let rec = s2.resolve("example.com/app:1").expect("resolve");
    assert_eq!(rec.diff_ids(), img.diff_ids());
    assert_eq!(
        std::fs::read(s2.layer_path(&rec.layers[1].diff_id).join("etc/motd")).expect("motd"),
        b"two"
    );

    // OCI layout, tar and directory.
    let mut oci = Vec::new();
    store
        .save_oci_archive(&["example.com/app:1"], &mut oci)
        .expect("save oci");
    let s3 = Store::open(td.path().join("c")).expect("store c");
    let loaded = s3.load(&oci[..], "oci").expect("load oci");
    assert_eq!(loaded[0].id, img.id);
    assert_eq!(loaded[0].tags, vec![r("example.com/app:1")]);
    assert_eq!(
        s3.resolve("example.com/app:1").expect("resolve").manifest,
        img.manifest,
        "blobs kept as they were"
    );
    let dir = td.path().join("ocidir");
    store
        .save_oci_dir(&["example.com/app:1"], &dir)
        .expect("save oci dir");
    let s4 = Store::open(td.path().join("d")).expect("store d");
    let loaded = s4.load_oci_dir(&dir).expect("load oci dir");
    assert_eq!(loaded[0].id, img.id);
}

#[test]
fn failed_loads_keep_nothing() {
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("s")).expect("store");
    let layer = tar_of(&[E::File("a", b"a")]);
    let good_cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(&layer)
    );
    let bad_cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(b"other")
    );
    let archive = |cfg: &str, manifest: &str, layer: &[u8]| -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (n, d) in [
            ("c.json", cfg.as_bytes()),
            ("l.tar", layer),
            ("manifest.json", manifest.as_bytes()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, n, d).expect("append");
        }
        b.into_inner().expect("tar")
    };
    let manifest = r#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l.tar"]}]"#;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "wrong diff id",
            archive(&bad_cfg, manifest, &layer),
            "digest mismatch",
        ),
        (
            "missing member",
            archive(
                &good_cfg,
                r#"[{"Config":"c.json","Layers":["nope.tar"]}]"#,
                &layer,
            ),
            "\"nope.tar\" not found",
        ),
        (
            "bad manifest.json",
            archive(&good_cfg, "{", &layer),
            "manifest.json",
        ),
        (
            "bad tag",
            archive(
                &good_cfg,
                r#"[{"Config":"c.json","RepoTags":["UPPER:1"],"Layers":["l.tar"]}]"#,
                &layer,
            ),
            "lowercase",
        ),
        (
            "hostile layer",
            archive(
                &good_cfg.replace(
                    &Digest::of(&layer).to_string(),
                    &Digest::of(&tar_of(&[E::File("../x", b"x")])).to_string(),
                ),
                manifest,
                &tar_of(&[E::File("../x", b"x")]),
            ),
            "escapes",
        ),
        (
            "second image fails",
            archive(
                &good_cfg,
                r#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l.tar"]},{"Config":"c.json","RepoTags":["y:1"],"Layers":["gone.tar"]}]"#,
                &layer,
            ),
            "\"gone.tar\" not found",
        ),
        ("not an archive", b"garbage".repeat(100), "archive"),
        ("empty", tar_of(&[]), "neither manifest.json"),
    ];
    for (name, data, needle) in cases {
        let e = store.load(&data[..], name).expect_err(name);
        assert!(e.to_string().contains(needle), "{name}: {e}");
        assert_eq!(
            blob_and_layer_count(&store),
            (0, 0),
            "{name}: something was kept"
        );
        assert!(store.list_images().expect("list").is_empty());
    }
    // Truncated archive.
    let mut a = archive(&good_cfg, manifest, &layer);
    a.truncate(1500);
    assert!(store.load(&a[..], "truncated").is_err());
    assert_eq!(blob_and_layer_count(&store), (0, 0));
    // And the good one loads.
    let loaded = store
        .load(&archive(&good_cfg, manifest, &layer)[..], "good")
        .expect("good");
    assert_eq!(loaded[0].tags, vec![r("x:1")]);
    let (blobs, layers) = blob_and_layer_count(&store);
    assert_eq!(
        (blobs, layers),
        (3, 1),
        "config, layer and manifest blobs, one layer; member files dropped"
    );
}

fn podman(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .arg("--root")
        .arg(root.join("storage"))
        .arg("--runroot")
        .arg(root.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ])
        .args(args)
        .output()
        .expect("run podman")
}

#[test]
fn podman_interop_both_ways() {
    if !root_or_skip("podman_interop_both_ways") {
        return;
    }
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("podman_interop_both_ways: skipped: podman is not installed");
        return;
    }
    let td = tempfile::tempdir().expect("tempdir");
    let proot: PathBuf = td.path().join("podman");
    let tarball = busybox::tar(td.path());
    let tar_path = td.path().join("rootfs.tar");
    std::fs::write(&tar_path, &tarball).expect("write");

    // podman import + save -> barge load.
    let out = podman(
        &proot,
        &[
            "import",
            tar_path.to_str().unwrap_or_default(),
            "localhost/pbox:1",
        ],
    );
    assert!(
        out.status.success(),
        "podman import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_podman = td.path().join("from-podman.tar");
    let out = podman(
        &proot,
        &[
            "save",
            "--format",
            "docker-archive",
            "-o",
            from_podman.to_str().unwrap_or_default(),
            "localhost/pbox:1",
        ],
    );
    assert!(
        out.status.success(),
        "podman save: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(td.path().join("store")).expect("store");
    let f = std::fs::File::open(&from_podman).expect("open");
    let loaded = store
        .load(f, "podman archive")
        .expect("barge loads podman's archive");
    assert_eq!(loaded[0].tags, vec![r("localhost/pbox:1")]);
    let rec = store.resolve("localhost/pbox:1").expect("resolve");
    assert!(store
        .layer_path(&rec.layers[0].diff_id)
        .join("bin/busybox")
        .is_file());

    // barge import + save -> podman load.
    store
        .import(&tarball[..], Some(&r("localhost/bbox:2")), "")
        .expect("import");
    let to_podman = td.path().join("to-podman.tar");
    let f = std::fs::File::create(&to_podman).expect("create");
    store
        .save_docker_archive(&["localhost/bbox:2"], f)
        .expect("save");
    let out = podman(
        &proot,
        &["load", "-i", to_podman.to_str().unwrap_or_default()],
    );
    assert!(
        out.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = store.resolve("localhost/bbox:2").expect("resolve").id;
    let out = podman(
        &proot,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "localhost/bbox:2",
        ],
    );
    assert!(
        out.status.success(),
        "podman inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        id.hex(),
        "podman sees the same image id"
    );
    // The same archive read as an OCI layout (as skopeo reads `docker save` of Docker 25+).
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci-archive:{}", to_podman.display()))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect oci-archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: serde_json::Value = serde_json::from_slice(&out.stdout).expect("config JSON");
    assert_eq!(
        cfg["rootfs"]["diff_ids"][0],
        rec_diff(&store, "localhost/bbox:2"),
        "skopeo reads the layer barge wrote"
    );
    // OCI archive too.
    let oci = td.path().join("to-podman-oci.tar");
    store
        .save_oci_archive(
            &["localhost/bbox:2"],
            std::fs::File::create(&oci).expect("create"),
        )
        .expect("save oci");
    let out = podman(&proot, &["load", "-i", oci.to_str().unwrap_or_default()]);
    assert!(
        out.status.success(),
        "podman load oci-archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = podman(&proot, &["rmi", "-a", "-f"]);
}

fn rec_diff(store: &Store, name: &str) -> serde_json::Value {
    serde_json::Value::String(
        store.resolve(name).expect("resolve").layers[0]
            .diff_id
            .to_string(),
    )
}

#[test]
fn leases_protect_from_gc_and_failed_imports_keep_nothing() {
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path()).expect("store");
    let lease = store.lease();
    let d = lease.put_blob(b"in flight").expect("put");
    let layer = tar_of(&[E::File("a", b"a")]);
    let diff = store.unpack_layer(&layer[..], None, "l").expect("unpack");
    lease.hold(&diff);
    assert_eq!(
        store.gc().expect("gc"),
        0,
        "held blob and layer survive a concurrent gc"
    );
    assert!(store.has_blob(&d) && store.has_layer(&diff));
    drop(lease);
    assert_eq!(store.gc().expect("gc"), 2, "released: collected");
    assert_eq!(blob_and_layer_count(&store), (0, 0));

    if !root_or_skip("failed imports keep nothing") {
        return;
    }
    for (name, data) in [
        (
            "hostile",
            tar_of(&[E::File("ok", b"x"), E::File("../../x", b"evil")]),
        ),
        (
            "truncated",
            tar_of(&[E::Truncated("big", 1 << 30, b"short")]),
        ),
    ] {
        let e = store
            .import(&data[..], Some(&r("imp")), "")
            .expect_err(name);
        assert!(!e.to_string().is_empty());
        assert_eq!(
            blob_and_layer_count(&store),
            (0, 0),
            "{name}: something kept"
        );
        assert!(store.list_images().expect("list").is_empty());
    }
}

#[test]
fn commit_snapshot_makes_a_new_image() {
    if !root_or_skip("commit_snapshot_makes_a_new_image") {
        return;
    }
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("s")).expect("store");
    let lease = store.lease();
    let base = tar_of(&[
        E::Dir("etc"),
        E::File("etc/base", b"base"),
        E::File("etc/gone", b"x"),
    ]);
    let blob = lease.put_blob(&base).expect("blob");
    let diff = store
        .unpack_layer(&base[..], Some(&blob), "base")
        .expect("unpack");
    let layer = barge_image::image::LayerRecord {
        blob: blob.clone(),
        media_type: barge_image::manifest::OCI_LAYER.into(),
        size: base.len() as u64,
        diff_id: diff.clone(),
        uncompressed_size: base.len() as u64,
    };
    let cfg = |ids: &[&Digest]| {
        let ids: Vec<String> = ids.iter().map(|d| format!("\"{d}\"")).collect();
        format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            ids.join(",")
        )
    };
    let img = store
        .create_image(
            &lease,
            cfg(&[&diff]).as_bytes(),
            std::slice::from_ref(&layer),
            Some(&r("base")),
        )
        .expect("create");
    let e = store
        .create_image(
            &lease,
            cfg(&[]).as_bytes(),
            std::slice::from_ref(&layer),
            None,
        )
        .expect_err("mismatch");
    assert!(e.to_string().contains("do not match"), "{e}");

    store.prepare("work", &img.diff_ids()).expect("prepare");
    let m = td.path().join("m");
    std::fs::create_dir(&m).expect("mkdir");
    store.mount("work", &m).expect("mount");
    let res = (|| -> std::io::Result<()> {
        std::fs::write(m.join("etc/added"), b"added")?;
        std::fs::remove_file(m.join("etc/gone"))
    })();
    barge_image::snapshot::unmount(&m).expect("unmount");
    res.expect("changes");
    let top = store
        .commit_snapshot("work", &lease)
        .expect("commit snapshot");
    let img2 = store
        .create_image(
            &lease,
            cfg(&[&diff, &top.diff_id]).as_bytes(),
            &[layer, top.clone()],
            Some(&r("derived")),
        )
        .expect("create derived");
    drop(lease);
    store.remove_snapshot("work").expect("remove");
    store.gc().expect("gc");
    assert_eq!(store.resolve("derived").expect("derived").layers.len(), 2);
    store.prepare("c2", &img2.diff_ids()).expect("prepare 2");
    std::fs::create_dir_all(td.path().join("m2")).expect("mkdir");
    store.mount("c2", &td.path().join("m2")).expect("mount 2");
    let seen = (
        std::fs::read(td.path().join("m2/etc/added")).ok(),
        td.path().join("m2/etc/gone").exists(),
        std::fs::read(td.path().join("m2/etc/base")).ok(),
    );
    barge_image::snapshot::unmount(&td.path().join("m2")).expect("unmount 2");
    assert_eq!(
        seen,
        (Some(b"added".to_vec()), false, Some(b"base".to_vec()))
    );
}
