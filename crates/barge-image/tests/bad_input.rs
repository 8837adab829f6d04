//! Bad input to `load`: absurd member sizes, oversized documents, malformed OCI indexes and
//! manifests, unknown media types. Each is a clear error naming the cause, and nothing is
//! kept in the store.

mod common;

use barge_image::{Digest, Error, Store};
use common::{tar_of, E};

fn blobs_and_layers(store: &Store) -> (usize, usize) {
    let blobs = store.list_blobs().expect("blobs").len();
    let layers = std::fs::read_dir(store.root().join("layers"))
        .expect("layers")
        .count();
    (blobs, layers)
}

/// A tar of (name, data) members.
fn members(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (n, d) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, n, *d).expect("append");
    }
    b.into_inner().expect("tar")
}

fn assert_refused(store: &Store, name: &str, data: &[u8], needle: &str) -> Error {
    let e = store.load(data, name).expect_err(name);
    assert!(
        e.to_string().contains(needle),
        "{name}: {e} (wanted {needle:?})"
    );
    assert_eq!(
        blobs_and_layers(store),
        (0, 0),
        "{name}: something was kept"
    );
    assert!(store.list_images().expect("list").is_empty(), "{name}");
    let ingest: Vec<_> = std::fs::read_dir(store.root().join("ingest"))
        .expect("ingest")
        .collect();
    assert!(ingest.is_empty(), "{name}: temp files left: {ingest:?}");
    e
}

#[test]
fn archive_member_of_absurd_size_is_refused() {
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("s")).expect("store");
    // The header of l.tar announces 1 TiB; the stream ends after 10 bytes.
    let data = tar_of(&[
        E::File(
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l.tar"]}]"#,
        ),
        E::Truncated("l.tar", 1 << 40, b"0123456789"),
    ]);
    let e = assert_refused(&store, "absurd", &data, "l.tar");
    assert!(
        matches!(e, Error::Archive { .. } | Error::Read { .. }),
        "{e:?}"
    );
}

#[test]
fn oversized_manifest_json_is_refused_naming_the_limit() {
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("s")).expect("store");
    let mut big = b"[".to_vec();
    big.resize(17 << 20, b' ');
    big.push(b']');
    let data = members(&[("manifest.json", &big)]);
    let e = assert_refused(&store, "oversized", &data, "more than");
    assert!(matches!(e, Error::BlobTooLarge { .. }), "{e:?}");
}

/// An OCI layout tar with one image whose index.json, manifest and layer media type can be
/// spoiled.
fn oci_layout(
    index_media_type: &str,
    layer_media_type: &str,
    index_json: Option<&[u8]>,
) -> Vec<u8> {
    let layer = tar_of(&[E::File("a", b"a")]);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(&layer)
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"{layer_media_type}","digest":"{}","size":{}}}]}}"#,
        Digest::of(config.as_bytes()),
        config.len(),
        Digest::of(&layer),
        layer.len()
    );
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{index_media_type}","digest":"{}","size":{},"annotations":{{"io.containerd.image.name":"docker.io/library/x:1"}}}}]}}"#,
        Digest::of(manifest.as_bytes()),
        manifest.len()
    );
    let name = |d: &[u8]| format!("blobs/sha256/{}", Digest::of(d).hex());
    let (nl, nc, nm) = (
        name(&layer),
        name(config.as_bytes()),
        name(manifest.as_bytes()),
    );
    members(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        (&nl, &layer),
        (&nc, config.as_bytes()),
        (&nm, manifest.as_bytes()),
        ("index.json", index_json.unwrap_or(index.as_bytes())),
    ])
}

#[test]
fn oci_layouts_with_unknown_media_types_or_malformed_documents_are_refused() {
    let td = tempfile::tempdir().expect("tempdir");
    let store = Store::open(td.path().join("s")).expect("store");
    const M: &str = "application/vnd.oci.image.manifest.v1+json";
    const L: &str = "application/vnd.oci.image.layer.v1.tar";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown layer media type",
            oci_layout(M, "application/x-bogus", None),
            "unknown layer media type",
        ),
        (
            "foreign layer",
            oci_layout(M, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", None),
            "foreign",
        ),
        (
            "unknown manifest media type",
            oci_layout("text/html", L, None),
            "media type",
        ),
        (
            "malformed index.json",
            oci_layout(M, L, Some(b"{\"manifests\": [")),
            "index.json",
        ),
        (
            "index.json with a bad digest",
            oci_layout(
                M,
                L,
                Some(br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:zz","size":1}]}"#),
            ),
            "digest",
        ),
    ];
    for (name, data, needle) in cases {
        assert_refused(&store, name, &data, needle);
    }
    // The unspoiled layout loads: the failures above are the spoiled parts.
    let loaded = store
        .load(&oci_layout(M, L, None)[..], "good")
        .expect("good layout loads");
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].tags[0].to_string(), "docker.io/library/x:1");
}
