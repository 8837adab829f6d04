//! The busybox root filesystem the tests run and import, made by the repository's
//! tests/fixtures/busybox-rootfs.sh (from the host's static busybox).

use std::path::Path;
use std::process::{Command, Stdio};

/// Fills `dest` (created if missing) with a busybox root filesystem.
pub fn rootfs(dest: &Path) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/busybox-rootfs.sh");
    let st = Command::new("sh")
        .arg(&script)
        .arg(dest)
        .stdout(Stdio::null())
        .status()
        .expect("run busybox-rootfs.sh");
    assert!(st.success(), "busybox-rootfs.sh failed");
}

/// A tar stream of a busybox root filesystem made in `dir`/rootfs.
pub fn tar(dir: &Path) -> Vec<u8> {
    let root = dir.join("rootfs");
    rootfs(&root);
    let out = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-cf", "-", "."])
        .output()
        .expect("tar");
    assert!(out.status.success(), "tar failed");
    out.stdout
}
