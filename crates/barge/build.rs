//! Links the barge executable as a non-PIE binary: its relocated read-only data
//! (`.data.rel.ro`, ~0.8 MiB) then needs no load-time relocation, so those pages stay clean
//! and shared by every process of the binary, in particular the one monitor per container
//! (otherwise each monitor carries them as private dirty memory).

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux") && !target.contains("musl") {
        println!("cargo:rustc-link-arg-bin=barge=-no-pie");
    }
}
