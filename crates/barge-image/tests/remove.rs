//! Removal and prune with containers (snapshots) in the way: refused unless forced; forced
//! removal and prune never take the layers a snapshot stands on.

mod common;

use barge_image::{Error, Reference, Store};
use common::{tar_of, E};

fn r(s: &str) -> Reference {
    s.parse().expect("reference")
}

fn layer_count(store: &Store) -> usize {
    std::fs::read_dir(store.root().join("layers"))
        .expect("layers")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .count()
}

#[test]
fn forced_remove_keeps_what_a_snapshot_uses_until_it_goes() {
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("s")).expect("store");
    let tar = tar_of(&[E::File("etc/hostname", b"box\n")]);
    let img = store
        .import(&tar[..], Some(&r("app:1")), "")
        .expect("import");
    store.prepare("ctr", &img.diff_ids()).expect("prepare");

    let e = store.remove_image("app:1", false).expect_err("in use");
    assert!(matches!(e, Error::ImageInUse { users: 1, .. }), "{e:?}");
    assert!(
        store.resolve("app:1").is_ok(),
        "refused removal changed nothing"
    );

    let rep = store.remove_image("app:1", true).expect("forced");
    assert_eq!(rep.deleted, vec![img.id.clone()]);
    assert!(store.resolve("app:1").is_err());
    assert!(
        store.has_layer(&img.diff_ids()[0]),
        "the snapshot's layer is kept"
    );
    // The container's rootfs still works: a copy of its mounts names the layer.
    let mounts = store.mounts("ctr").expect("mounts");
    assert!(!mounts.is_empty());

    store.remove_snapshot("ctr").expect("remove snapshot");
    store.gc().expect("gc");
    assert_eq!(layer_count(&store), 0, "freed once the snapshot is gone");
    assert!(store.list_blobs().expect("blobs").is_empty());
}

#[test]
fn prune_spares_dangling_images_a_snapshot_uses() {
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("s")).expect("store");
    let used = store
        .import(&tar_of(&[E::File("a", b"a")])[..], None, "used")
        .expect("import");
    let idle = store
        .import(&tar_of(&[E::File("b", b"b")])[..], None, "idle")
        .expect("import");
    let tagged = store
        .import(&tar_of(&[E::File("c", b"c")])[..], Some(&r("keep:1")), "")
        .expect("import");
    store.prepare("ctr", &used.diff_ids()).expect("prepare");

    let pruned = store.prune_dangling().expect("prune");
    assert_eq!(
        pruned,
        vec![idle.id.clone()],
        "only the idle dangling image"
    );
    assert!(store.resolve(&used.id.to_string()).is_ok());
    assert!(store.resolve("keep:1").is_ok());
    assert!(!store.has_layer(&idle.diff_ids()[0]), "its layer is freed");
    assert_eq!(layer_count(&store), 2);

    store.remove_snapshot("ctr").expect("remove snapshot");
    assert_eq!(
        store.prune_dangling().expect("prune"),
        vec![used.id.clone()]
    );
    assert_eq!(layer_count(&store), 1);
    assert!(store.has_layer(&tagged.diff_ids()[0]));
}
