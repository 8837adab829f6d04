//! Fuzzes the layer unpacker: whatever the input, it must not panic and must not create,
//! change or remove anything outside the target directory (checked on a sibling canary
//! and on the parent directory's listing).
#![no_main]
use barge_image::unpack::{unpack, UnpackOptions};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Env {
    base: tempfile::TempDir,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let base = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(base.path().join("canary")).expect("canary");
        std::fs::write(base.path().join("canary/victim"), b"canary").expect("canary");
        Env { base }
    })
}

fuzz_target!(|data: &[u8]| {
    let e = env();
    let target = e.base.path().join("t");
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir(&target).expect("target");
    let _ = unpack(data, &target, "fuzz", &UnpackOptions::default());
    let mut names: Vec<_> = std::fs::read_dir(e.base.path())
        .expect("read base")
        .filter_map(|x| x.ok())
        .map(|x| x.file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["canary", "t"], "something was created beside the target");
    let canary: Vec<_> = std::fs::read_dir(e.base.path().join("canary"))
        .expect("read canary")
        .filter_map(|x| x.ok())
        .map(|x| x.file_name())
        .collect();
    assert_eq!(canary.len(), 1, "canary directory changed");
    assert_eq!(
        std::fs::read(e.base.path().join("canary/victim")).expect("canary file"),
        b"canary"
    );
    let _ = std::fs::remove_dir_all(&target);
});
