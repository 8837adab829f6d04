//! `barge daemon`: serves the Docker Engine API on a unix socket (barge-api over barge-engine).

/// Runs the daemon in the foreground; returns the process exit code.
pub fn main(_args: Vec<std::ffi::OsString>) -> i32 {
    eprintln!("barge daemon: not implemented yet");
    1
}
