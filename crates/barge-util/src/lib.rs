//! Small helpers that more than one barge crate needs and that belong to none of them:
//! RFC 3339 time formatting and parsing, and atomic file writes. The crate is std-only and sits below
//! every other barge crate (barge-runtime and barge-network included), so using it adds no
//! dependency anywhere.

pub mod fs;
pub mod time;
