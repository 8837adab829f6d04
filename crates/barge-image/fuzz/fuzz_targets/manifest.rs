//! Fuzzes manifest/index parsing: whatever the bytes and declared media type, parsing must
//! not panic; an accepted image manifest has a valid config digest and only layers of a
//! known compression; platform selection on an accepted index must not panic either.
#![no_main]
use barge_image::manifest::{self, Manifest, PlatformSpec};
use libfuzzer_sys::fuzz_target;

const DECLARED: [Option<&str>; 6] = [
    None,
    Some(manifest::OCI_MANIFEST),
    Some(manifest::OCI_INDEX),
    Some(manifest::DOCKER_MANIFEST),
    Some(manifest::DOCKER_MANIFEST_LIST),
    Some("application/octet-stream"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, doc)) = data.split_first() else {
        return;
    };
    let declared = DECLARED[usize::from(sel) % DECLARED.len()];
    match manifest::parse_manifest(doc, declared, "fuzz") {
        Ok(Manifest::Image { manifest: m, .. }) => {
            manifest::descriptor_digest(m.config(), "fuzz").expect("accepted config digest");
            for l in m.layers() {
                manifest::layer_compression(l, "fuzz").expect("accepted layer media type");
                manifest::descriptor_digest(l, "fuzz").expect("accepted layer digest");
            }
        }
        Ok(Manifest::Index { index, .. }) => {
            if let Ok(d) = manifest::select_platform(&index, &PlatformSpec::host(), "fuzz") {
                manifest::descriptor_digest(d, "fuzz").expect("accepted manifest digest");
            }
        }
        Err(_) => {}
    }
});
