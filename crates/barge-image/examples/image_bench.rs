//! Drives the library for bench/image.sh:
//!
//! ```text
//! image_bench snap    STORE TARBALL RUNS    # mean time of prepare + mount of a snapshot
//! image_bench prepare STORE TARBALL COUNT   # import once, prepare COUNT snapshots (no mount)
//! image_bench push    STORE REF LAYER.tar.gz...  # a multi-layer image made of the layers, pushed
//! image_bench pull    STORE REF             # pull (HTTP for 127.0.0.1)
//! ```

use barge_image::progress::Progress;
use barge_image::registry::{self, RegistryOptions};
use barge_image::{Digest, Reference, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn opts() -> RegistryOptions {
    RegistryOptions {
        docker_config_dir: Some(PathBuf::from("/nonexistent/barge-bench-docker-config")),
        ..Default::default()
    }
}

fn rt() -> Res<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn import(store: &Store, tarball: &str) -> Res<Vec<Digest>> {
    let r: Reference = "bench:1".parse()?;
    let rec = store.import(std::fs::File::open(tarball)?, Some(&r), "bench")?;
    Ok(rec.diff_ids())
}

fn snap(store: &Store, tarball: &str, runs: u32) -> Res<()> {
    let ids = import(store, tarball)?;
    let target = store.root().join("bench-mnt");
    std::fs::create_dir_all(&target)?;
    let mut times: Vec<Duration> = Vec::new();
    for i in 0..runs {
        let key = format!("bench{i}");
        let t = Instant::now();
        store.prepare(&key, &ids)?;
        store.mount(&key, &target)?;
        times.push(t.elapsed());
        barge_image::snapshot::unmount(&target)?;
        store.remove_snapshot(&key)?;
    }
    let total: Duration = times.iter().sum();
    let mean = total / runs.max(1);
    let (min, max) = (
        times.iter().min().copied().unwrap_or_default(),
        times.iter().max().copied().unwrap_or_default(),
    );
    println!(
        "snapshot prepare+mount: mean {:.3} ms  min {:.3} ms  max {:.3} ms  ({runs} runs)",
        mean.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    std::fs::remove_dir(&target)?;
    Ok(())
}

fn prepare(store: &Store, tarball: &str, count: u32) -> Res<()> {
    let ids = import(store, tarball)?;
    for i in 0..count {
        store.prepare(&format!("ctr{i}"), &ids)?;
    }
    println!("prepared {count} snapshots");
    Ok(())
}

fn push(store: Arc<Store>, reference: &str, layers: &[String]) -> Res<()> {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let (d, size) = store.ingest(std::fs::File::open(l)?, None, l)?;
        let diff = store.unpack_layer(store.open_blob(&d)?, None, l)?;
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d.to_string(), "size": size,
        }));
        diff_ids.push(diff.to_string());
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))?;
    let (cd, cs) = store.ingest(&config[..], None, "config")?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cd.to_string(), "size": cs},
        "layers": descs,
    }))?;
    let (md, _) = store.ingest(&manifest[..], None, "manifest")?;
    let rec = store.commit_image(&md)?;
    let r: Reference = reference.parse()?;
    store.tag(&rec.id.to_string(), &r)?;
    let noop = |_: Progress| {};
    let rep = rt()?.block_on(registry::push(store, &r, &opts(), &noop))?;
    println!("pushed {reference}: {rep:?}");
    Ok(())
}

fn pull(store: Arc<Store>, reference: &str) -> Res<()> {
    let r: Reference = reference.parse()?;
    let noop = |_: Progress| {};
    let rep = rt()?.block_on(registry::pull(store, &r, &opts(), &noop))?;
    println!("pulled {reference}: {}", rep.digest);
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: image_bench snap|prepare STORE TARBALL N | push STORE REF LAYER... | pull STORE REF";
    let (Some(cmd), Some(root), Some(arg)) = (args.get(1), args.get(2), args.get(3)) else {
        return Err(usage.into());
    };
    let store = Arc::new(Store::open(Path::new(root))?);
    let n = || -> Res<u32> { Ok(args.get(4).ok_or(usage)?.parse()?) };
    match cmd.as_str() {
        "snap" => snap(&store, arg, n()?),
        "prepare" => prepare(&store, arg, n()?),
        "push" => push(store, arg, &args[4..]),
        "pull" => pull(store, arg),
        _ => Err(usage.into()),
    }
}
