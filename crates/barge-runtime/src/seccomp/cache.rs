//! A cache of compiled filters, keyed by the profile and everything else the BPF depends on.
//!
//! libseccomp needs 10-30 ms to compile Docker's default profile for x86_64 + x86 + x32
//! (most of it in the compat architectures), against ~1 ms for the `seccomp(2)` side; every
//! container of an engine typically uses the same profile, so the BPF is kept on disk and
//! reused. The cache file holds the full key, compared byte for byte on a hit, so a hash
//! collision can only cause a miss, never the wrong filter.
//!
//! The cache directory must be writable by the runtime alone (it decides which filter a
//! container gets): a directory not owned by the effective uid, or writable by group or
//! others, is not used.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;

use super::compile::{compile, profile_flags, BPF_MAXINSNS};
use super::{SeccompError, SeccompFilter};

/// The cache file format's magic and version.
const MAGIC: &[u8; 8] = b"BRGSCMP1";

/// The size of one encoded BPF instruction.
const INSN: usize = 8;

/// Like [`compile`], but reuses the BPF compiled earlier for the same profile on this host
/// (same kernel release, libseccomp version and barge version) from `cache_dir`, and stores
/// it there after a miss. Cache problems (unreadable, corrupt, unwritable) only cost a
/// recompilation; profile errors are reported exactly as by [`compile`].
pub fn compile_cached(
    profile: &LinuxSeccomp,
    cache_dir: &Path,
) -> Result<SeccompFilter, SeccompError> {
    let Some(key) = cache_key(profile) else {
        return compile(profile);
    };
    let path = cache_dir.join(file_name(&key));
    let dir_ok = trusted_dir(cache_dir);
    if dir_ok {
        if let Some((notify, program)) = read_entry(&path, &key) {
            // The profile compiled before with this exact key, so it is valid; the flags
            // are probed again since they are cheap and the kernel is the authority.
            return Ok(SeccompFilter {
                program,
                flags: profile_flags(profile)?,
                notify,
                listener_path: profile.listener_path().clone(),
                listener_metadata: profile.listener_metadata().clone(),
            });
        }
    }
    let filter = compile(profile)?;
    if dir_ok || create_dir(cache_dir) {
        // Best effort: a failed write only means the next start compiles again.
        let _ = write_entry(&path, &key, &filter);
    }
    Ok(filter)
}

/// Everything the BPF depends on: the profile, the kernel (libseccomp probes which actions
/// it supports), libseccomp's version (its syscall tables), barge's version (this code) and
/// the architecture.
fn cache_key(profile: &LinuxSeccomp) -> Option<Vec<u8>> {
    let mut key = serde_json::to_vec(profile).ok()?;
    let release = nix::sys::utsname::uname()
        .ok()
        .map(|u| u.release().to_string_lossy().into_owned())?;
    let lib = libseccomp::ScmpVersion::current().ok()?;
    key.extend_from_slice(
        format!(
            "\0kernel={release}\0libseccomp={}.{}.{}\0barge={}\0arch={}",
            lib.major,
            lib.minor,
            lib.micro,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        )
        .as_bytes(),
    );
    Some(key)
}

/// The cache file's name for `key`: a hash (collisions are caught by the key comparison).
fn file_name(key: &[u8]) -> String {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    format!("{:016x}.bpf", h.finish())
}

/// Whether `dir` is a directory owned by us and writable by nobody else.
fn trusted_dir(dir: &Path) -> bool {
    match fs::symlink_metadata(dir) {
        Ok(m) => m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o022 == 0,
        Err(_) => false,
    }
}

/// Creates `dir` (0700) if it does not exist; true when it is then trusted.
fn create_dir(dir: &Path) -> bool {
    let _ = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    trusted_dir(dir)
}

/// Reads and checks a cache entry: `(notify, program)`, or `None` on any mismatch.
fn read_entry(path: &Path, key: &[u8]) -> Option<(bool, Vec<libc::sock_filter>)> {
    let data = fs::read(path).ok()?;
    let rest = data.strip_prefix(MAGIC.as_slice())?;
    let (key_len, rest) = take_u32(rest)?;
    let stored_key = rest.get(..usize::try_from(key_len).ok()?)?;
    if stored_key != key {
        return None;
    }
    let rest = rest.get(stored_key.len()..)?;
    let (&notify, rest) = rest.split_first()?;
    let (count, rest) = take_u32(rest)?;
    let count = usize::try_from(count).ok()?;
    if count == 0 || count > BPF_MAXINSNS || rest.len() != count.checked_mul(INSN)? {
        return None;
    }
    let program = rest
        .chunks_exact(INSN)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Some((notify == 1, program))
}

/// Splits a little-endian u32 off the front of `b`.
fn take_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = b.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), rest))
}

/// Writes a cache entry atomically (temporary file + rename).
fn write_entry(path: &Path, key: &[u8], filter: &SeccompFilter) -> std::io::Result<()> {
    let too_big = |_| std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let mut out = Vec::with_capacity(MAGIC.len() + 9 + key.len() + filter.program.len() * INSN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(key.len()).map_err(too_big)?.to_le_bytes());
    out.extend_from_slice(key);
    out.push(u8::from(filter.notify));
    out.extend_from_slice(
        &u32::try_from(filter.program.len())
            .map_err(too_big)?
            .to_le_bytes(),
    );
    for i in &filter.program {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&out)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A temporary name beside `path`, unique to this process and moment.
fn tmp_path(path: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp.{}.{nanos}", std::process::id()));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("valid profile")
    }

    fn insns(f: &SeccompFilter) -> Vec<(u16, u8, u8, u32)> {
        f.instructions()
            .iter()
            .map(|i| (i.code, i.jt, i.jf, i.k))
            .collect()
    }

    #[test]
    fn hit_returns_the_same_program_and_mismatches_miss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        let a = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}));
        let b = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}));

        let first = compile_cached(&a, &cache).expect("compiles");
        let key_a = cache_key(&a).expect("key");
        let path_a = cache.join(file_name(&key_a));
        assert!(path_a.exists(), "the entry was written");
        let mode = fs::metadata(&cache).expect("cache dir").mode();
        assert_eq!(mode & 0o777, 0o700);

        // A hit: same program and notify, read from the file (make that observable by
        // planting a recognisable program under the right key).
        let mut planted = first.clone();
        planted.program.truncate(1);
        write_entry(&path_a, &key_a, &planted).expect("plant");
        let hit = compile_cached(&a, &cache).expect("hit");
        assert_eq!(insns(&hit), insns(&planted));
        assert!(hit.uses_notify());

        // Profile b's entry name holding a's key (a collision): a miss, b compiled afresh.
        let key_b = cache_key(&b).expect("key");
        let path_b = cache.join(file_name(&key_b));
        write_entry(&path_b, &key_a, &planted).expect("plant collision");
        let fresh_b = compile(&b).expect("compiles");
        let got_b = compile_cached(&b, &cache).expect("miss");
        assert_eq!(insns(&got_b), insns(&fresh_b));
        assert!(!got_b.uses_notify());
        // ... and the entry was rewritten with b's own key.
        assert!(read_entry(&path_b, &key_b).is_some());

        // Corrupt entries are misses.
        fs::write(&path_a, b"BRGSCMP1\xff\xff\xff\xff").expect("corrupt");
        let again = compile_cached(&a, &cache).expect("recompiled");
        assert_eq!(insns(&again), insns(&first));
    }

    #[test]
    fn untrusted_dir_is_not_used_and_errors_still_surface() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("open");
        fs::create_dir(&cache).expect("mkdir");
        fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
        let a = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}));
        let key = cache_key(&a).expect("key");
        let real = compile(&a).expect("compiles");
        // A planted entry in a world-writable directory is ignored.
        let mut planted = real.clone();
        planted.program.truncate(1);
        write_entry(&cache.join(file_name(&key)), &key, &planted).expect("plant");
        let got = compile_cached(&a, &cache).expect("compiles");
        assert_eq!(insns(&got), insns(&real));

        let bad = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}));
        let err = compile_cached(&bad, &dir.path().join("c2")).expect_err("invalid");
        assert!(err
            .to_string()
            .starts_with("linux.seccomp.syscalls[0].names"));
    }
}
