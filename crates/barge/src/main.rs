//! The barge binary. Invoked as `barge-runc` (by argv[0]) or `barge runtime ...` it is the
//! runc-compatible runtime front end; `barge daemon` is the engine daemon, `barge monitor` the
//! per-container monitor (forked by `barge monitor-zygote`, the daemon's monitor zygote);
//! anything else is the docker-compatible CLI.

mod cli;
mod daemon;
mod monitor;
mod runc;
mod zygote;

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
    match args.get(1).and_then(|a| a.to_str()) {
        Some("runtime") => {
            args.remove(1);
            args[0] = "barge-runc".into();
            std::process::exit(runc::main(args));
        }
        Some("daemon") => std::process::exit(daemon::main(args)),
        Some("monitor") => std::process::exit(monitor::main(args)),
        Some("monitor-zygote") => std::process::exit(zygote::main(args)),
        _ => std::process::exit(cli::main(args)),
    }
}
