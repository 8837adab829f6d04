//! The `barge` CLI: docker's verbs and flags, a client of the Docker Engine API.

/// Runs the CLI; returns the process exit code (Docker's: 125 engine error, else the command's).
pub fn main(_args: Vec<std::ffi::OsString>) -> i32 {
    eprintln!("barge: the CLI is not yet implemented; use `barge runtime` or barge-runc");
    125
}
