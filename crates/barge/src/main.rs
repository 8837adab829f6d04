//! The barge binary. Invoked as `barge-runc` (by argv[0]) or `barge runtime ...` it is the
//! runc-compatible runtime front end; as `barge` it is the CLI.

mod runc;

fn main() {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if argv0 == "barge-runc" || argv0 == "runc" {
        std::process::exit(runc::main(args));
    }
    if args.get(1).is_some_and(|a| a == "runtime") {
        args.remove(1);
        args[0] = "barge-runc".into();
        std::process::exit(runc::main(args));
    }
    eprintln!("barge: the CLI is not yet implemented; use `barge runtime` or barge-runc");
    std::process::exit(1);
}
