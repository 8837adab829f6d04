//! Build benchmarks (the targets), for `bench/` to call in release mode:
//!
//! - a 10-instruction Dockerfile rebuilt with everything cached (target: < 100 ms);
//! - a context of 10,000 small files sent as a tar (as `POST /build` gets it) and copied
//!   with one COPY (to compare with `DOCKER_BUILDKIT=0 docker build` on the same machine).
//!
//! `cargo run --release -p barge --example build_bench -- [BARGE_BINARY] [RUNS]` as root;
//! BARGE_BINARY defaults to the `barge` next to this example's directory.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use barge_build::{BuildContext, BuildOptions, Builder, NoProgress};
use barge_image::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let barge = match args.next() {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()?
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("barge"))
            .ok_or("cannot find the barge binary; pass its path")?,
    };
    let runs: u32 = args.next().map(|r| r.parse()).transpose()?.unwrap_or(20);
    let dir = tempfile::tempdir()?;
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/busybox-rootfs.sh");
    let rootfs = dir.path().join("bbroot");
    if !Command::new("sh")
        .arg(&fixture)
        .arg(&rootfs)
        .status()?
        .success()
    {
        return Err("busybox-rootfs.sh failed".into());
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-cf", "-", "."])
        .output()?;
    let store = Arc::new(Store::open(dir.path().join("store"))?);
    store.import(
        std::io::Cursor::new(tar.stdout),
        Some(&"busybox:latest".parse()?),
        "",
    )?;
    let builder = Builder::new(store, dir.path().join("builder"))?;

    let ctx = dir.path().join("ten");
    std::fs::create_dir_all(&ctx)?;
    std::fs::write(ctx.join("a.txt"), "a\n")?;
    std::fs::write(ctx.join("b.txt"), "b\n")?;
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nENV A=1\nWORKDIR /app\nRUN echo built > /built\nCOPY a.txt /app/\n\
         RUN cat /app/a.txt > /copy\nCOPY b.txt /app/\nLABEL x=y\nEXPOSE 80\nCMD [\"cat\", \"/copy\"]\n",
    )?;
    let opts = BuildOptions {
        tags: vec!["bench:ten".into()],
        barge_binary: barge,
        ..Default::default()
    };
    let t = Instant::now();
    builder.build(&opts, BuildContext::Dir(ctx.clone()), &NoProgress)?;
    println!(
        "10 instructions, cold:           {:>10.1} ms",
        ms(t.elapsed())
    );
    let mut total = Duration::ZERO;
    for _ in 0..runs {
        let t = Instant::now();
        builder.build(&opts, BuildContext::Dir(ctx.clone()), &NoProgress)?;
        total += t.elapsed();
    }
    println!(
        "10 instructions, all cached:     {:>10.1} ms (mean of {runs})",
        ms(total / runs)
    );

    let big = dir.path().join("big");
    for d in 0..100 {
        std::fs::create_dir_all(big.join(format!("d{d}")))?;
        for f in 0..100 {
            std::fs::write(big.join(format!("d{d}/f{f}")), format!("{d} {f}\n"))?;
        }
    }
    std::fs::write(big.join("Dockerfile"), "FROM busybox\nCOPY . /src/\n")?;
    let body = Command::new("tar")
        .arg("-C")
        .arg(&big)
        .args(["-cf", "-", "."])
        .output()?
        .stdout;
    let opts = BuildOptions {
        tags: vec!["bench:big".into()],
        no_cache: true,
        ..opts
    };
    let t = Instant::now();
    builder.build(
        &opts,
        BuildContext::Tar(Box::new(std::io::Cursor::new(body))),
        &NoProgress,
    )?;
    println!(
        "10,000 files, tar context + COPY: {:>9.1} ms",
        ms(t.elapsed())
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
