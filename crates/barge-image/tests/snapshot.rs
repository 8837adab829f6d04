//! Snapshots (overlay and copy), their cost on disk, many-layer mounts, and diff -> apply.

mod common;

use barge_image::snapshot::{unmount, Snapshotter};
use barge_image::{Digest, Error, Store};
use common::{root_or_skip, tar_of, tree, xattr, E};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct MountGuard(PathBuf);
impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = unmount(&self.0);
    }
}

fn mount(store: &Store, key: &str, target: &Path) -> MountGuard {
    std::fs::create_dir_all(target).expect("mountpoint");
    store.mount(key, target).expect("mount");
    MountGuard(target.to_path_buf())
}

fn disk_usage(p: &Path) -> u64 {
    let md = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(_) => return 0,
    };
    let mut total = md.blocks() * 512;
    if md.is_dir() {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            total += disk_usage(&e.path());
        }
    }
    total
}

fn layers(store: &Store, n: usize) -> Vec<Digest> {
    (0..n)
        .map(|i| {
            let name = format!("f{i}");
            let content = format!("{i}");
            let t = tar_of(&[
                E::Dir("d"),
                E::File(&name, content.as_bytes()),
                E::File("common", content.as_bytes()),
            ]);
            store
                .unpack_layer(&t[..], None, &format!("layer{i}"))
                .expect("unpack")
        })
        .collect()
}

#[test]
fn hundred_layers_mount_and_snapshots_share_layers() {
    if !root_or_skip("hundred_layers_mount_and_snapshots_share_layers") {
        return;
    }
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("store")).expect("store");
    let ids = layers(&store, 120);
    let mounts = store.prepare("c1", &ids).expect("prepare");
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].kind, "overlay");
    assert_eq!(mounts[0].lowerdirs.len(), 120);
    let m1 = td.path().join("m1");
    let g1 = mount(&store, "c1", &m1);
    for i in [0, 57, 119] {
        assert_eq!(
            std::fs::read_to_string(m1.join(format!("f{i}"))).expect("file from layer"),
            i.to_string()
        );
    }
    assert_eq!(
        std::fs::read_to_string(m1.join("common")).expect("common"),
        "119",
        "topmost layer wins"
    );
    std::fs::write(m1.join("new"), b"container write").expect("write in container");
    assert_eq!(
        std::fs::read(store.snapshot_upper("c1").expect("upper").join("new")).expect("upper"),
        b"container write"
    );

    // A second snapshot of the same image: same layer dirs, tiny cost, isolated writes.
    let before = disk_usage(&td.path().join("store"));
    let t0 = Instant::now();
    let n = 20;
    let mut guards = Vec::new();
    for k in 0..n {
        let key = format!("c{}", k + 2);
        store.prepare(&key, &ids).expect("prepare");
        guards.push(mount(&store, &key, &td.path().join(format!("m{}", k + 2))));
    }
    let per = t0.elapsed() / n;
    eprintln!("snapshot prepare+mount of a 120-layer image: {per:?} mean over {n}");
    let after = disk_usage(&td.path().join("store"));
    let per_snapshot = (after - before) / u64::from(n);
    eprintln!("disk per snapshot: {per_snapshot} bytes");
    assert!(
        per_snapshot < 100 * 1024,
        "each snapshot costs {per_snapshot} bytes"
    );
    let m2 = td.path().join("m2");
    assert!(
        !m2.join("new").exists(),
        "writes of one snapshot are not seen by another"
    );
    assert_eq!(
        std::fs::metadata(m1.join("f3")).expect("f3").ino(),
        std::fs::metadata(m2.join("f3")).expect("f3").ino(),
        "both snapshots read the one shared layer file"
    );
    let users = store.layer_users().expect("users");
    assert_eq!(users.get(&ids[0]), Some(&(n as usize + 1)));
    drop(guards);
    drop(g1);
    for k in 1..=n + 1 {
        store.remove_snapshot(&format!("c{k}")).expect("remove");
    }
    assert!(store.list_snapshots().expect("list").is_empty());
    assert!(store.has_layer(&ids[0]), "removing snapshots keeps layers");
}

#[test]
fn snapshot_errors_leave_nothing() {
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path()).expect("store");
    for bad in ["", "../x", ".hidden", "a/b", &"k".repeat(129)] {
        assert!(
            matches!(store.prepare(bad, &[]), Err(Error::BadSnapshotKey(_))),
            "{bad:?}"
        );
    }
    let missing = Digest::of(b"not a layer");
    let e = store.prepare("k", &[missing]).expect_err("missing layer");
    assert!(e.to_string().contains("not unpacked"), "{e}");
    assert!(std::fs::read_dir(td.path().join("snapshots"))
        .expect("dir")
        .next()
        .is_none());
    store
        .prepare_with("k", &[], Snapshotter::Copy)
        .expect("empty snapshot");
    assert!(matches!(
        store.prepare("k", &[]),
        Err(Error::SnapshotExists(_))
    ));
    assert!(matches!(
        store.remove_snapshot("nope"),
        Err(Error::SnapshotNotFound(_))
    ));
}

fn whiteout_layers(store: &Store) -> Vec<Digest> {
    let l1 = tar_of(&[
        E::Dir("a"),
        E::File("a/x", b"x"),
        E::File("a/y", b"y"),
        E::Dir("b"),
        E::File("b/z", b"z"),
        E::Sym("s", "a"),
    ]);
    let l2 = tar_of(&[
        E::File("a/.wh.x", b""),
        E::Dir("b"),
        E::File("b/.wh..wh..opq", b""),
        E::File("b/new", b"n"),
        E::File(".wh.s", b""),
    ]);
    vec![
        store.unpack_layer(&l1[..], None, "l1").expect("l1"),
        store.unpack_layer(&l2[..], None, "l2").expect("l2"),
    ]
}

#[test]
fn overlay_and_copy_snapshotters_agree_on_whiteouts() {
    if !root_or_skip("overlay_and_copy_snapshotters_agree_on_whiteouts") {
        return;
    }
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("store")).expect("store");
    let ids = whiteout_layers(&store);
    store
        .prepare_with("ov", &ids, Snapshotter::Overlay)
        .expect("overlay");
    store
        .prepare_with("cp", &ids, Snapshotter::Copy)
        .expect("copy");
    let mo = td.path().join("mo");
    let mc = td.path().join("mc");
    let _g1 = mount(&store, "ov", &mo);
    let _g2 = mount(&store, "cp", &mc);
    assert!(
        mo.join("a/y").exists() && !mo.join("a/x").exists(),
        "whiteout hides a/x"
    );
    assert!(
        mo.join("b/new").exists() && !mo.join("b/z").exists(),
        "opaque dir hides b/z"
    );
    assert!(std::fs::symlink_metadata(mo.join("s")).is_err());
    let strip = |t: std::collections::BTreeMap<String, String>| -> Vec<(String, String)> {
        // Directory mtimes differ between a merged view and a copy; compare the rest.
        t.into_iter()
            .map(|(k, v)| (k, v.split(" mtime=").next().unwrap_or_default().to_string()))
            .collect()
    };
    assert_eq!(strip(tree(&mo)), strip(tree(&mc)));
}

#[test]
fn diff_then_apply_is_identity() {
    if !root_or_skip("diff_then_apply_is_identity") {
        return;
    }
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("store")).expect("store");
    let ids = whiteout_layers(&store);
    store
        .prepare_with("c", &ids, Snapshotter::Overlay)
        .expect("prepare");
    let m = td.path().join("m");
    {
        let _g = mount(&store, "c", &m);
        std::fs::write(m.join("a/added"), b"new file").expect("add");
        std::fs::remove_file(m.join("a/y")).expect("delete lower file");
        std::fs::remove_dir_all(m.join("b")).expect("rm dir");
        std::fs::create_dir(m.join("b")).expect("recreate dir (opaque)");
        std::fs::write(m.join("b/inner"), b"i").expect("inner");
        std::os::unix::fs::symlink("../a/added", m.join("b/link")).expect("symlink");
        std::fs::hard_link(m.join("a/added"), m.join("hard")).expect("hardlink");
        std::fs::create_dir_all(m.join("deep/er/still")).expect("deep");
        let long = "n".repeat(150);
        std::fs::write(m.join("deep").join(&long), b"long name").expect("long");
        let p =
            std::ffi::CString::new(m.join("b/inner").as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: valid C strings and a 2-byte value.
        let r = unsafe {
            libc::setxattr(
                p.as_ptr(),
                c"user.note".as_ptr(),
                b"hi".as_ptr().cast(),
                2,
                0,
            )
        };
        assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
    }
    // Export: the merged filesystem, no whiteouts, lower files included.
    let mut exported = Vec::new();
    store.export("c", &mut exported).expect("export");
    let names: Vec<String> = tar::Archive::new(&exported[..])
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    assert!(
        names.contains(&"a/added".to_string()) && names.contains(&"b/inner".to_string()),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains(".wh.")), "{names:?}");
    assert!(
        !names.contains(&"a/y".to_string()) && !names.contains(&"a/x".to_string()),
        "{names:?}"
    );
    assert!(std::fs::read_dir(store.root().join("snapshots"))
        .expect("dir")
        .all(|e| !e
            .expect("e")
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp")));
    let upper = store.snapshot_upper("c").expect("upper");
    let mut t1 = Vec::new();
    let (d1, n1) = store.diff("c", &mut t1).expect("diff");
    let mut t2 = Vec::new();
    let (d2, _) = store.diff("c", &mut t2).expect("diff again");
    assert_eq!(d1, d2, "diff is deterministic");
    assert_eq!(t1, t2);
    assert_eq!(n1, t1.len() as u64);
    assert_eq!(Digest::of(&t1), d1);
    // The tar names whiteouts and opaque dirs Docker's way.
    let names: Vec<String> = tar::Archive::new(&t1[..])
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    assert!(names.contains(&"a/.wh.y".to_string()), "{names:?}");
    assert!(names.contains(&"b/.wh..wh..opq".to_string()), "{names:?}");
    // Applying it gives back the upper dir.
    let back = store
        .unpack_layer(&t1[..], Some(&d1), "diff")
        .expect("apply");
    let applied = store.layer_path(&back);
    let clean = |t: std::collections::BTreeMap<String, String>| -> Vec<(String, String)> {
        // overlayfs makes whiteouts hardlinks of one shared inode: their link count differs.
        t.into_iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| {
                if v.starts_with("other rdev=0 ") {
                    (k, v.split(" nlink=").next().unwrap_or_default().to_string())
                } else {
                    (k, v)
                }
            })
            .collect()
    };
    assert_eq!(clean(tree(&upper)), clean(tree(&applied)));
    assert_eq!(
        xattr(&applied.join("b/inner"), "user.note").as_deref(),
        Some(&b"hi"[..])
    );
    assert_eq!(
        xattr(&applied.join("b"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(std::fs::symlink_metadata(applied.join("a/y"))
        .expect("whiteout")
        .file_type()
        .is_char_device());
}

#[test]
fn diff_never_follows_a_racing_symlink() {
    // A container swaps a file in its upper dir for a symlink to a host file while the
    // engine diffs it (CVE-2018-15664's shape): no diff may contain the host file.
    let td = tempfile::tempdir().expect("tempdir");
    let secret = td.path().join("host-secret");
    std::fs::write(&secret, b"HOST-SECRET-CONTENT").expect("secret");
    let upper = td.path().join("upper");
    std::fs::create_dir_all(upper.join("d")).expect("upper");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (upper, secret, stop) = (upper.clone(), secret.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(upper.join("f"));
                let _ = std::fs::write(upper.join("f"), b"container data");
                let _ = std::fs::remove_file(upper.join("f"));
                let _ = std::os::unix::fs::symlink(&secret, upper.join("f"));
                let _ = std::fs::remove_dir_all(upper.join("d"));
                let _ = std::os::unix::fs::symlink(td_parent(&secret), upper.join("d"));
                let _ = std::fs::remove_file(upper.join("d"));
                let _ = std::fs::create_dir(upper.join("d"));
            }
        })
    };
    let mut ok = 0;
    for _ in 0..300 {
        let mut out = Vec::new();
        if barge_image::diff::diff_dir(&upper, &mut out).is_ok() {
            ok += 1;
        }
        assert!(
            !out.windows(19).any(|w| w == b"HOST-SECRET-CONTENT"),
            "host file leaked into a diff"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    racer.join().expect("racer");
    eprintln!("{ok}/300 diffs completed during the race (the others reported a changed file)");
}

fn td_parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[test]
fn startup_cleanup_detaches_a_leftover_export_mount() {
    if !root_or_skip("startup_cleanup_detaches_a_leftover_export_mount") {
        return;
    }
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("store")).expect("store");
    let ids = layers(&store, 2);
    store.prepare("c", &ids).expect("prepare");
    std::fs::write(
        store.snapshot_upper("c").expect("upper").join("mine"),
        b"data",
    )
    .expect("write");
    // A crash during an export leaves its temp mountpoint mounted.
    let mnt = store.root().join("snapshots/.tmp-export-crashed");
    let _g = mount(&store, "c", &mnt);
    drop(store);
    let store = Store::open(td.path().join("store")).expect("reopen");
    assert!(!mnt.exists(), "leftover mountpoint removed");
    assert_eq!(
        std::fs::read(store.snapshot_upper("c").expect("upper").join("mine"))
            .expect("upper intact"),
        b"data"
    );
    assert!(
        store.layer_path(&ids[0]).join("f0").exists(),
        "layer intact"
    );
}

#[test]
fn volatile_mount_is_an_overlay_without_syncs_and_works() {
    if !root_or_skip("volatile_mount_is_an_overlay_without_syncs_and_works") {
        return;
    }
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("store")).expect("store");
    let lowers = layers(&store, 2);
    store.prepare("v", &lowers).expect("prepare");
    let target = td.path().join("mnt");
    std::fs::create_dir_all(&target).expect("mountpoint");
    store.mount_volatile("v", &target).expect("volatile mount");
    let guard = MountGuard(target.clone());
    // The mount carries overlay's volatile option...
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(target.to_str().expect("utf-8 path")))
        .expect("the snapshot's mount in mountinfo");
    assert!(line.contains(" - overlay "), "{line}");
    assert!(line.contains("volatile"), "{line}");
    // ...and behaves like the durable one: lower content visible, writes land in upper.
    assert_eq!(std::fs::read_to_string(target.join("f1")).expect("f1"), "1");
    std::fs::write(target.join("new"), b"x").expect("write");
    drop(guard);
    let upper = td.path().join("store/snapshots/v/upper");
    assert_eq!(std::fs::read(upper.join("new")).expect("upper file"), b"x");
    store.remove_snapshot("v").expect("remove");
}

#[test]
fn a_read_only_mount_beside_a_running_one_shows_its_changes_and_breaks_nothing() {
    if !root_or_skip("a_read_only_mount_beside_a_running_one_shows_its_changes_and_breaks_nothing")
    {
        return;
    }
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("store")).expect("store");
    let lowers = layers(&store, 2);
    store.prepare("run", &lowers).expect("prepare");
    let live = td.path().join("live");
    let _live = mount(&store, "run", &live);
    // The running container's changes: a new file, a deleted lower file (a whiteout).
    std::fs::write(live.join("d").join("new"), b"n").expect("write");
    std::fs::remove_file(live.join("f0")).expect("rm f0");
    let ro = td.path().join("ro");
    std::fs::create_dir_all(&ro).expect("mountpoint");
    store.mount_readonly("run", &ro).expect("read-only mount");
    let ro_guard = MountGuard(ro.clone());
    assert_eq!(std::fs::read(ro.join("d/new")).expect("d/new"), b"n");
    assert!(!ro.join("f0").exists(), "the whiteout applies");
    assert_eq!(std::fs::read_to_string(ro.join("f1")).expect("f1"), "1");
    let e = std::fs::write(ro.join("x"), b"x").expect_err("read-only");
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    drop(ro_guard);
    // The read-write mount still copies up (a second read-write mount would have emptied
    // its work dir, and this would fail with ENOENT): the lower dir `d` was copied up above,
    // a lower file's first write needs a copy-up now.
    std::fs::write(live.join("f1"), b"changed").expect("copy-up after the read-only mount");
    std::fs::write(live.join("d").join("more"), b"m").expect("write");
}
