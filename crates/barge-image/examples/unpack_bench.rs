//! Times unpacking a layer tar (plain, gzip or zstd) into an empty directory, for
//! comparison with `tar -x` of the same file:
//! `cargo run --release -p barge-image --example unpack_bench -- LAYER.tar EMPTY_DIR`.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(layer), Some(dir)) = (args.get(1), args.get(2)) else {
        return Err("usage: unpack_bench LAYER.tar EMPTY_DIR".into());
    };
    let f = std::fs::File::open(layer)?;
    let t = Instant::now();
    let stats = barge_image::unpack::unpack(
        f,
        std::path::Path::new(dir),
        layer,
        &barge_image::unpack::UnpackOptions::default(),
    )?;
    println!(
        "unpacked {} entries ({} bytes uncompressed) in {:?}; diff id {}",
        stats.entries,
        stats.uncompressed_size,
        t.elapsed(),
        stats.diff_id
    );
    Ok(())
}
