//! Fuzzes `Store::load` (docker-archive and OCI-layout tars): it must not panic; a failed
//! load keeps nothing in the store (no image, no blob, no unpacked layer); nothing is
//! written beside the store.
#![no_main]
use barge_image::Store;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn base() -> &'static tempfile::TempDir {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| tempfile::tempdir().expect("tempdir"))
}

fuzz_target!(|data: &[u8]| {
    let root = base().path().join("store");
    let _ = std::fs::remove_dir_all(&root);
    let store = Store::open(&root).expect("open store");
    if store.load(data, "fuzz").is_err() {
        assert!(store.list_images().expect("list").is_empty(), "image kept");
        assert!(store.list_blobs().expect("blobs").is_empty(), "blob kept");
        let layers = std::fs::read_dir(root.join("layers")).expect("layers").count();
        assert_eq!(layers, 0, "unpacked layer kept");
    }
    let names: Vec<_> = std::fs::read_dir(base().path())
        .expect("base")
        .filter_map(|x| x.ok())
        .map(|x| x.file_name())
        .collect();
    assert_eq!(names, ["store"], "something was written beside the store");
    drop(store);
    let _ = std::fs::remove_dir_all(&root);
});
