//! Layer unpacking: hostile tars never write outside the layer, metadata and whiteouts are
//! kept, compressions are detected, and a failed unpack leaves nothing in the store.

mod common;

use barge_image::{Digest, Error, Store};
use common::{make_canary, root_or_skip, tar_of, tree, xattr, E};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

struct Fixture {
    _td: tempfile::TempDir,
    base: std::path::PathBuf,
    store: Store,
}

fn fixture() -> Fixture {
    let td = tempfile::tempdir().expect("tempdir");
    let base = td.path().to_path_buf();
    make_canary(&base.join("canary"));
    let store = Store::open(base.join("store")).expect("store");
    Fixture {
        _td: td,
        base,
        store,
    }
}

fn dir_entries(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The unpacked layers (and leftovers) in the store: everything in layers/ but the
/// `<hex>.size` records.
fn layer_dirs(s: &Store) -> Vec<String> {
    let mut v = dir_entries(&s.root().join("layers"));
    v.retain(|n| !n.ends_with(".size"));
    v
}

/// Unpacks `entries`, expecting an error containing `needle` (or success when `None`),
/// and checks that the canary tree and the world outside the store are unchanged.
fn hostile(name: &str, entries: &[E], needle: Option<&str>) {
    let f = fixture();
    let canary = f.base.join("canary");
    let before = tree(&canary);
    let outside_before = dir_entries(&f.base);
    let res = f.store.unpack_layer(&tar_of(entries)[..], None, name);
    match (needle, &res) {
        (Some(n), Err(e)) => {
            let msg = e.to_string();
            assert!(
                msg.contains(n),
                "{name}: error {msg:?} should mention {n:?}"
            );
            assert!(
                msg.contains(name),
                "{name}: error {msg:?} should name the layer"
            );
            assert!(
                layer_dirs(&f.store).is_empty(),
                "{name}: partial layer kept"
            );
            assert!(
                dir_entries(&f.store.root().join("l")).is_empty(),
                "{name}: link kept"
            );
        }
        (None, Ok(_)) => {}
        (Some(n), Ok(d)) => panic!("{name}: expected an error mentioning {n:?}, got layer {d}"),
        (None, Err(e)) => panic!("{name}: expected success, got {e}"),
    }
    assert_eq!(tree(&canary), before, "{name}: canary tree changed");
    assert_eq!(
        dir_entries(&f.base),
        outside_before,
        "{name}: something appeared beside the store"
    );
    assert!(dir_entries(&f.store.root().join("ingest")).is_empty());
}

#[test]
fn dotdot_is_refused() {
    hostile(
        "dotdot",
        &[E::File("../../../canary/victim", b"evil")],
        Some("escapes the layer root"),
    );
    hostile(
        "dotdot-mid",
        &[E::Dir("a"), E::File("a/../../x", b"evil")],
        Some("escapes"),
    );
    hostile(
        "dotdot-dir",
        &[E::Dir("../../../canary/new")],
        Some("escapes"),
    );
}

#[test]
fn absolute_path_is_refused() {
    let abs = std::env::temp_dir().join(format!("barge-abs-canary-{}", std::process::id()));
    let name = format!("{}", abs.display());
    hostile(
        "absolute",
        &[E::File(&name, b"evil")],
        Some("absolute path"),
    );
    assert!(!abs.exists(), "absolute entry written on the host");
    hostile("root-slash", &[E::Dir("/")], Some("absolute path"));
}

#[test]
fn symlink_then_write_through_it_is_refused() {
    let cases: Vec<(&str, Vec<E>)> = vec![
        (
            "sym-to-root",
            vec![E::Sym("a", "/"), E::File("a/tmp/barge-probe-x", b"evil")],
        ),
        (
            "sym-to-dotdot",
            vec![E::Sym("a", "../../../.."), E::File("a/x", b"evil")],
        ),
        (
            "sym-dir-through",
            vec![
                E::Dir("d"),
                E::Sym("d/s", "/tmp"),
                E::Dir("d/s/barge-probe-dir"),
            ],
        ),
    ];
    for (name, entries) in cases {
        hostile(name, &entries, Some("through symlink"));
    }
    assert!(!Path::new("/tmp/barge-probe-x").exists());
    assert!(!Path::new("/tmp/barge-probe-dir").exists());
}

#[test]
fn symlink_to_canary_then_write_is_refused() {
    // The canary path is only known once the fixture exists: build it inside.
    let f = fixture();
    let canary = f.base.join("canary");
    let before = tree(&canary);
    let target = canary.display().to_string();
    let t = tar_of(&[E::Sym("etc", &target), E::File("etc/victim", b"evil")]);
    let e = f
        .store
        .unpack_layer(&t[..], None, "sym-canary")
        .expect_err("must refuse");
    assert!(e.to_string().contains("through symlink \"etc\""), "{e}");
    // Replacing the symlink itself by a file or a directory is fine and touches only the layer.
    let t = tar_of(&[
        E::Sym("s", &format!("{target}/victim")),
        E::File("s", b"evil"),
        E::Sym("d", &target),
        E::DirMode("d", 0o777, 5),
    ]);
    let d = f
        .store
        .unpack_layer(&t[..], None, "sym-replaced")
        .expect("replacing a symlink");
    let l = f.store.layer_path(&d);
    assert_eq!(std::fs::read(l.join("s")).expect("s"), b"evil");
    assert!(std::fs::symlink_metadata(l.join("d")).expect("d").is_dir());
    assert_eq!(tree(&canary), before);
}

#[test]
fn hardlinks_outside_are_refused() {
    let f = fixture();
    let canary = f.base.join("canary");
    let before = tree(&canary);
    let abs = format!("{}/shadow", canary.display());
    for (name, entries, needle) in [
        ("hl-abs", vec![E::Link("h", "/etc/shadow")], "absolute path"),
        (
            "hl-abs-canary",
            vec![E::Link("h", abs.as_str())],
            "absolute path",
        ),
        ("hl-dotdot", vec![E::Link("h", "../../x")], "escapes"),
        (
            "hl-through-sym",
            vec![
                E::Sym("d", canary.to_str().unwrap_or("/")),
                E::Link("h", "d/shadow"),
            ],
            "through symlink",
        ),
        (
            "hl-missing",
            vec![E::Link("h", "nothere")],
            "hardlink to \"nothere\"",
        ),
    ] {
        let e = f
            .store
            .unpack_layer(&tar_of(&entries)[..], None, name)
            .expect_err(name);
        assert!(e.to_string().contains(needle), "{name}: {e}");
    }
    // A hardlink to a symlink links the symlink itself (never its target).
    let t = tar_of(&[
        E::Sym("s", &abs),
        E::Link("h", "s"),
        E::File("f", b"data"),
        E::Link("g", "./f"),
    ]);
    let d = f
        .store
        .unpack_layer(&t[..], None, "hl-ok")
        .expect("hardlinks inside");
    let l = f.store.layer_path(&d);
    assert!(std::fs::symlink_metadata(l.join("h"))
        .expect("h")
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::metadata(l.join("g")).expect("g").ino(),
        std::fs::metadata(l.join("f")).expect("f").ino()
    );
    assert_eq!(tree(&canary), before);
    assert!(layer_dirs(&f.store).len() == 1);
}

#[test]
fn dot_entries_and_root() {
    hostile("dot-file", &[E::File(".", b"x")], Some("layer root"));
    hostile("dot-sym", &[E::Sym(".", "/")], Some("layer root"));
    hostile(
        "dot-dir-ok",
        &[E::Dir("./"), E::Dir("."), E::File("./a", b"a")],
        None,
    );
}

#[test]
fn truncated_stream_is_refused() {
    hostile(
        "huge",
        &[
            E::File("a", b"a"),
            E::Truncated("big", 1 << 40, b"0123456789"),
        ],
        Some("truncated"),
    );
    // A stream cut inside a header.
    let mut t = tar_of(&[E::File("a", b"hello")]);
    t.truncate(700);
    let f = fixture();
    let e = f
        .store
        .unpack_layer(&t[..], None, "cut")
        .expect_err("cut stream");
    assert!(e.to_string().contains("cut"), "{e}");
    assert!(layer_dirs(&f.store).is_empty());
}

#[test]
fn pax_path_tricks_are_confined() {
    hostile(
        "pax-dotdot",
        &[E::Pax(
            "innocent",
            b"evil",
            vec![("path", b"../../../canary/victim")],
        )],
        Some("escapes"),
    );
    hostile(
        "pax-abs",
        &[E::Pax(
            "innocent",
            b"evil",
            vec![("path", b"/tmp/barge-pax-probe")],
        )],
        Some("absolute"),
    );
    hostile(
        "pax-nul",
        &[E::Pax("innocent", b"evil", vec![("path", b"a\0b")])],
        Some("NUL"),
    );
    assert!(!Path::new("/tmp/barge-pax-probe").exists());
}

#[test]
fn pax_size_desync_is_confined() {
    // A PAX size of 0 over a header announcing data that is itself a tar header for
    // "../../../canary/victim" (the TARmageddon shape): whichever size a parser believes,
    // nothing may land outside the layer.
    let mut inner = tar::Header::new_gnu();
    let n = b"../../../canary/victim";
    inner.as_old_mut().name[..n.len()].copy_from_slice(n);
    inner.set_size(4);
    inner.set_mode(0o644);
    inner.set_entry_type(tar::EntryType::Regular);
    inner.set_cksum();
    let mut smuggled = inner.as_bytes().to_vec();
    smuggled.extend_from_slice(b"evil");
    smuggled.resize(1024, 0);
    let f = fixture();
    let canary = f.base.join("canary");
    let before = tree(&canary);
    let t = tar_of(&[E::Pax("innocent", &smuggled, vec![("size", b"0")])]);
    let res = f.store.unpack_layer(&t[..], None, "pax-size");
    if let Err(e) = &res {
        assert!(
            e.to_string().contains("escapes") || e.to_string().contains("pax-size"),
            "{e}"
        );
    }
    assert_eq!(tree(&canary), before);
    assert!(!f.base.join("victim").exists());
}

#[test]
fn device_nodes_only_as_root_and_inside() {
    if !root_or_skip("device_nodes_only_as_root_and_inside") {
        return;
    }
    let f = fixture();
    let t = tar_of(&[E::Char("null", 1, 3), E::Char("dev/zero", 1, 5)]);
    let d = f
        .store
        .unpack_layer(&t[..], None, "dev")
        .expect("devices as root");
    let l = f.store.layer_path(&d);
    let md = std::fs::symlink_metadata(l.join("null")).expect("null");
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), libc::makedev(1, 3));
    // Unprivileged unpacking skips them.
    let td = tempfile::tempdir().expect("tempdir");
    let stats = barge_image::unpack::unpack(
        &t[..],
        td.path(),
        "dev",
        &barge_image::unpack::UnpackOptions { privileged: false },
    )
    .expect("unpriv");
    assert_eq!(stats.skipped, 2);
    assert!(!td.path().join("null").exists());
}

#[test]
fn whiteouts() {
    if !root_or_skip("whiteouts") {
        return;
    }
    hostile(
        "bare-wh",
        &[E::Dir("etc"), E::File("etc/.wh.", b"")],
        Some("bare whiteout"),
    );
    hostile("wh-dotdot", &[E::File(".wh...", b"")], Some("refused"));
    let f = fixture();
    let t = tar_of(&[
        E::Dir("a"),
        E::File("a/.wh..wh..opq", b""),
        E::File("a/b", b"b"),
        E::File(".wh.gone", b""),
        E::File("c/.wh..wh.plnk", b""),
    ]);
    let d = f.store.unpack_layer(&t[..], None, "wh").expect("whiteouts");
    let l = f.store.layer_path(&d);
    let md = std::fs::symlink_metadata(l.join("gone")).expect("whiteout");
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), 0);
    assert!(!l.join(".wh.gone").exists());
    assert_eq!(
        xattr(&l.join("a"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!l.join("a/.wh..wh..opq").exists());
    assert!(!l.join("c/.wh..wh.plnk").exists());
}

#[test]
fn whiteout_after_symlinked_ancestor_in_lower_layer() {
    if !root_or_skip("whiteout_after_symlinked_ancestor_in_lower_layer") {
        return;
    }
    let f = fixture();
    let canary = f.base.join("canary");
    let before = tree(&canary);
    let l1 = tar_of(&[E::Sym("etc", canary.to_str().unwrap_or("/"))]);
    let l2 = tar_of(&[
        E::File("etc/.wh.victim", b""),
        E::File("etc/.wh..wh..opq", b""),
    ]);
    f.store
        .unpack_layer(&l1[..], None, "layer1")
        .expect("layer 1");
    let d2 = f
        .store
        .unpack_layer(&l2[..], None, "layer2")
        .expect("layer 2");
    // Layer 2's whiteout lives in layer 2's own etc/, never in the symlink's target.
    let wh = f.store.layer_path(&d2).join("etc/victim");
    assert!(std::fs::symlink_metadata(&wh)
        .expect("whiteout")
        .file_type()
        .is_char_device());
    assert_eq!(tree(&canary), before);
    assert!(xattr(&canary, "trusted.overlay.opaque").is_none());
    // In one layer, the same sequence is refused.
    let same = tar_of(&[
        E::Sym("etc", canary.to_str().unwrap_or("/")),
        E::File("etc/.wh.victim", b""),
    ]);
    let e = f
        .store
        .unpack_layer(&same[..], None, "same")
        .expect_err("through symlink");
    assert!(e.to_string().contains("through symlink"), "{e}");
    assert_eq!(tree(&canary), before);
}

#[test]
fn metadata_is_kept() {
    if !root_or_skip("metadata_is_kept") {
        return;
    }
    let f = fixture();
    let t = tar_of(&[
        E::DirMode("d", 0o750, 1_500_000_000),
        E::FileMode("d/suid", b"#!", 0o4755, 1000, 1001),
        E::FileMode("d/ro", b"ro", 0o400, 7, 8),
        E::Pax(
            "d/x",
            b"x",
            vec![
                ("SCHILY.xattr.user.note", b"hi"),
                ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
                ("mtime", b"1234567890.5"),
            ],
        ),
        E::Sym("d/link", "suid"),
        E::DirMode("d/sub", 0o700, 1_400_000_000),
        E::File("d/sub/inner", b"i"),
    ]);
    let d = f.store.unpack_layer(&t[..], None, "meta").expect("unpack");
    let l = f.store.layer_path(&d);
    let m = |p: &str| std::fs::symlink_metadata(l.join(p)).expect(p);
    assert_eq!(m("d").permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        m("d").mtime(),
        1_500_000_000,
        "dir mtime set after its children"
    );
    assert_eq!(m("d/sub").mtime(), 1_400_000_000);
    assert_eq!(
        m("d/suid").permissions().mode() & 0o7777,
        0o4755,
        "setuid kept as root"
    );
    assert_eq!((m("d/suid").uid(), m("d/suid").gid()), (1000, 1001));
    assert_eq!((m("d/ro").uid(), m("d/ro").gid()), (7, 8));
    assert_eq!(m("d/ro").permissions().mode() & 0o7777, 0o400);
    assert_eq!(m("d/x").mtime(), 1_234_567_890);
    assert_eq!(m("d/suid").mtime(), 1_600_000_000);
    assert_eq!(
        xattr(&l.join("d/x"), "user.note").as_deref(),
        Some(&b"hi"[..])
    );
    assert!(
        xattr(&l.join("d/x"), "trusted.overlay.redirect").is_none(),
        "overlay xattrs dropped"
    );
    assert_eq!(
        std::fs::read_link(l.join("d/link")).expect("link"),
        Path::new("suid")
    );
    // Unprivileged: setuid dropped.
    let td = tempfile::tempdir().expect("tempdir");
    barge_image::unpack::unpack(
        &t[..],
        td.path(),
        "meta",
        &barge_image::unpack::UnpackOptions { privileged: false },
    )
    .expect("unpriv");
    let md = std::fs::metadata(td.path().join("d/suid")).expect("suid");
    assert_eq!(md.permissions().mode() & 0o7777, 0o755);
}

#[test]
fn compressions_and_diff_id() {
    let f = fixture();
    let plain = tar_of(&[E::Dir("a"), E::File("a/b", &b"content".repeat(1000))]);
    let want = Digest::of(&plain);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let zst = zstd::encode_all(&plain[..], 3).expect("zstd");
    for (name, data) in [("plain", &plain), ("gzip", &gz), ("zstd", &zst)] {
        let stats = barge_image::unpack::unpack(
            &data[..],
            tempfile::tempdir().expect("td").path(),
            name,
            &Default::default(),
        )
        .expect(name);
        assert_eq!(stats.diff_id, want, "{name}");
        assert_eq!(stats.uncompressed_size, plain.len() as u64);
    }
    // Stored once and shared; a wrong expected diff id keeps nothing.
    let d1 = f
        .store
        .unpack_layer(&gz[..], Some(&want), "gz")
        .expect("gz");
    let d2 = f
        .store
        .unpack_layer(&zst[..], Some(&want), "zst")
        .expect("zst");
    assert_eq!(d1, d2);
    assert_eq!(layer_dirs(&f.store), vec![want.hex().to_string()]);
    assert_eq!(
        std::fs::read(
            f.store
                .layer_short_path(&want)
                .expect("short link")
                .join("a/b")
        )
        .expect("via short link"),
        b"content".repeat(1000)
    );
    let other = tar_of(&[E::File("z", b"z")]);
    let e = f
        .store
        .unpack_layer(&other[..], Some(&Digest::of(b"nope")), "wrong")
        .expect_err("mismatch");
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert_eq!(layer_dirs(&f.store).len(), 1);
    let e = f
        .store
        .unpack_layer(&b"BZh91AY&SY"[..], None, "bz")
        .expect_err("bzip2");
    assert!(e.to_string().contains("bzip2"), "{e}");
}

#[test]
fn short_link_collision_never_repoints() {
    let f = fixture();
    let t = tar_of(&[E::File("x", b"x")]);
    let d = Digest::of(&t);
    // Another "layer" already owns the 16-hex short name.
    let short = f.store.root().join("l").join(&d.hex()[..16]);
    std::os::unix::fs::symlink("../layers/other", &short).expect("plant");
    f.store
        .unpack_layer(&t[..], Some(&d), "collide")
        .expect("unpack");
    assert_eq!(
        std::fs::read_link(&short).expect("link"),
        Path::new("../layers/other")
    );
    assert_eq!(f.store.layer_short_path(&d), None);
    f.store
        .prepare_with(
            "s",
            std::slice::from_ref(&d),
            barge_image::snapshot::Snapshotter::Overlay,
        )
        .expect("prepare");
    let m = &f.store.mounts("s").expect("mounts")[0];
    assert!(
        m.options[0].contains(&d.hex().to_string()),
        "full path used: {}",
        m.options[0]
    );
    assert_eq!(m.lowerdirs, vec![f.store.layer_path(&d)]);
}

/// The `.unsynced` marker of a layer, if any.
fn marker(s: &Store, d: &Digest) -> Option<String> {
    std::fs::read_to_string(
        s.root()
            .join("layers")
            .join(format!("{}.unsynced", d.hex())),
    )
    .ok()
}

#[test]
fn a_layer_unpacked_from_a_blob_is_repaired_after_a_crash_of_the_machine() {
    let f = fixture();
    let plain = tar_of(&[E::Dir("a"), E::File("a/b", &b"content".repeat(1000))]);
    let diff = Digest::of(&plain);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).expect("gzip");
    let blob = f.store.put_blob(&gz.finish().expect("gzip")).expect("blob");
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");

    // Published before its files were synced: behind a marker naming this boot and the
    // blob; settling (one syncfs) removes it.
    f.store.unpack_layer_blob(&blob, &diff).expect("unpack");
    assert_eq!(
        marker(&f.store, &diff),
        Some(format!("{}\n{blob}\n", boot.trim()))
    );
    barge_image::unpack::settle_unsynced_layers(f.store.root()).expect("settle");
    assert_eq!(marker(&f.store, &diff), None);

    // A stream without a stored blob behind it is synced before it is published.
    let other = tar_of(&[E::File("z", b"z")]);
    let od = f
        .store
        .unpack_layer(&other[..], None, "other")
        .expect("other");
    assert_eq!(marker(&f.store, &od), None);

    // The machine went down before the layer was known to be on disk: the marker names
    // another boot and the layer is torn (a file cut short, one that never was).
    let layer = f.store.layer_path(&diff);
    f.store.remove_layer(&diff).expect("remove");
    f.store.unpack_layer_blob(&blob, &diff).expect("unpack");
    let m = f
        .store
        .root()
        .join("layers")
        .join(format!("{}.unsynced", diff.hex()));
    std::fs::write(&m, format!("00000000-dead-boot\n{blob}\n")).expect("marker");
    std::fs::write(layer.join("a/b"), b"cont").expect("tear");
    std::fs::write(layer.join("junk"), b"x").expect("junk");
    // And a marker whose layer was never renamed into place (the crash came before).
    let ghost = Digest::of(b"never published");
    let gm = f
        .store
        .root()
        .join("layers")
        .join(format!("{}.unsynced", ghost.hex()));
    std::fs::write(&gm, format!("00000000-dead-boot\n{blob}\n")).expect("ghost marker");

    let s2 = Store::open(f.store.root()).expect("reopen");
    assert_eq!(
        std::fs::read(layer.join("a/b")).expect("a/b"),
        b"content".repeat(1000),
        "unpacked again from its blob"
    );
    assert!(!layer.join("junk").exists());
    assert_eq!(marker(&s2, &diff), None, "settled at start-up");
    assert!(!gm.exists(), "a marker without its layer is dropped");
    assert!(!s2.layer_path(&ghost).exists());
    // The other layer (synced, no marker) was left alone.
    assert!(s2.has_layer(&od));

    // A marker of another boot whose blob is gone: the layer cannot be trusted nor
    // rebuilt, so it is removed (a pull of an image using it unpacks it again).
    std::fs::write(&m, format!("00000000-dead-boot\n{}\n", Digest::of(b"gone"))).expect("m");
    let s3 = Store::open(f.store.root()).expect("reopen");
    assert!(!s3.has_layer(&diff));
    assert_eq!(marker(&s3, &diff), None);
    assert!(!layer.exists());
}
