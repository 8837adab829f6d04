//! Fuzzes .dockerignore parsing and matching, and checks the promise of
//! `may_reinclude_under`: it never says "no" when something under an excluded directory
//! is in fact included.
#![no_main]

use barge_build::DockerIgnore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > 4096 {
        return;
    }
    let text = String::from_utf8_lossy(data);
    // The first line lists paths to try; the rest is the .dockerignore.
    let (paths, patterns) = text.split_once('\n').unwrap_or((&text, ""));
    let Ok(ig) = DockerIgnore::parse(patterns) else {
        return;
    };
    // Plain relative paths only, so that "starts with dir/" means "is under dir".
    let paths: Vec<&str> = paths
        .split(' ')
        .filter(|p| !p.is_empty() && p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."))
        .take(16)
        .collect();
    for dir in &paths {
        if !ig.matches(dir, true) {
            continue;
        }
        let prefix = format!("{dir}/");
        for p in &paths {
            if p.starts_with(&prefix) && !ig.matches(p, false) {
                assert!(ig.may_reinclude_under(dir), "dir {dir:?} path {p:?} patterns {patterns:?}");
            }
        }
    }
});
