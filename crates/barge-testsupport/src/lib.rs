//! Helpers for the integration tests of more than one barge crate. Only a dev-dependency:
//! these functions panic with a message instead of returning errors, as tests want.

pub mod busybox;
pub mod registry;
