//! barge-image: image references, a content-addressed and verified blob store, OCI and
//! Docker manifests, secure layer unpacking, overlay snapshots, registry pull and push,
//! and save/load/import/export.
