//! `barge monitor`: the small per-container parent process (owns stdio, writes the log, reaps,
//! records the exit status) so the daemon can restart while containers run.

/// Runs a container's monitor; returns the process exit code.
pub fn main(_args: Vec<std::ffi::OsString>) -> i32 {
    eprintln!("barge monitor: not implemented yet");
    1
}
