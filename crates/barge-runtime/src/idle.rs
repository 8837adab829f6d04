//! Shedding memory before a long wait.
//!
//! A foreground `run` or `exec` keeps the runtime process alive only to wait for the
//! container's process and forward signals to it. By then most of the code it ran (spec
//! parsing, mounts, seccomp compilation) will not run again, yet its pages stay mapped and
//! count as the runtime's own resident memory for the container's whole life. Before waiting
//! the runtime therefore returns free heap to the kernel and unmaps the clean, read-only pages
//! of its own executable: they stay in the page cache and fault back in if touched again.

use std::io::{BufRead, BufReader};

/// Releases the runtime's idle memory: trims the heap and drops the resident pages of the
/// executable's read-only mappings that hold no private (modified) page. Best effort: any
/// failure leaves memory as it was and is otherwise ignored.
pub fn shed_clean_pages() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = std::fs::File::open("/proc/self/smaps") else {
        return;
    };
    let exe = exe.to_string_lossy().into_owned();
    let mut candidate: Option<(usize, usize)> = None;
    let mut regions = Vec::new();
    for line in BufReader::new(smaps).lines() {
        let Ok(line) = line else { return };
        if let Some((start, end, perms, path)) = mapping_header(&line) {
            // Only read-only, private, file-backed mappings of our own executable: text and
            // rodata. Writable ones hold live data.
            candidate = (path == exe && !perms.contains('w') && perms.ends_with('p'))
                .then_some((start, end));
        } else if let Some(kb) = line.strip_prefix("Anonymous:") {
            // A page written since mapping (relocated RELRO data) exists only in this
            // mapping: dropping it would lose it. Only wholly clean mappings qualify.
            if let Some(range) = candidate.take() {
                if kb.trim().trim_end_matches("kB").trim() == "0" {
                    regions.push(range);
                }
            }
        }
    }
    for (start, end) in regions {
        // SAFETY: the range is a whole private, read-only file mapping of our executable with
        // no anonymous page (checked above); MADV_DONTNEED on it only unmaps page-cache pages,
        // which fault back in unchanged from the file when next touched.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// Parses an smaps mapping header: `start-end perms offset dev inode path`.
fn mapping_header(line: &str) -> Option<(usize, usize, &str, &str)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    if perms.len() != 4 {
        return None;
    }
    let path = fields.nth(3).unwrap_or("");
    Some((start, end, perms, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_fields_do_not() {
        let h = "5586af7cb000-5586afa1b000 r-xp 000ed000 fe:00 5358522   /usr/bin/barge";
        assert_eq!(
            mapping_header(h),
            Some((0x5586af7cb000, 0x5586afa1b000, "r-xp", "/usr/bin/barge"))
        );
        assert_eq!(mapping_header("Anonymous:            0 kB"), None);
        assert_eq!(mapping_header("Rss:  4 kB"), None);
    }

    #[test]
    fn shedding_keeps_the_process_working_and_lowers_rss() {
        fn rss_kb() -> u64 {
            let s = std::fs::read_to_string("/proc/self/smaps_rollup").expect("smaps_rollup");
            s.lines()
                .find_map(|l| l.strip_prefix("Rss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .expect("an Rss line")
        }
        let before = rss_kb();
        shed_clean_pages();
        // Code and data still work after their pages were dropped.
        let v: Vec<String> = (0..1000).map(|i| format!("{i}")).collect();
        assert_eq!(v[999], "999");
        let after = rss_kb();
        assert!(
            after < before,
            "RSS did not drop: {before} kB -> {after} kB"
        );
    }
}
