//! The barge binary. Invoked as `barge-runc` (by argv[0]) it is the runc-compatible runtime
//! front end; as `barge` it is the CLI.

fn main() {
    eprintln!("barge: not yet implemented");
    std::process::exit(1);
}
