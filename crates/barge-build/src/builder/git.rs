//! Git sources: `ADD <git url> <dest>` and a git repository as the build context
//! (`docker build git://...`, `POST /build?remote=`), fetched with the `git` binary.
//!
//! A source is `<url>[#<ref>[:<subdir>]]` where the URL is `http(s)://...` (Docker wants
//! it to end in `.git`), `git://...`, `ssh://...` or scp-like `git@host:path`. The URL,
//! ref and subdir only ever reach git as separate arguments after `--` (never a shell),
//! and are refused when they could be read as options (a leading `-`: the
//! `--upload-pack=` injection of CVE-2019-13139) or lead out of the checkout (`..`).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Whether `s` names a git repository (`git@host:...`, `git://`, `*.git` URLs, `#ref`).
pub(crate) fn is_git(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    let path = l.split(['#', '?']).next().unwrap_or("");
    l.starts_with("git@")
        || l.starts_with("git://")
        || ((l.starts_with("http://") || l.starts_with("https://") || l.starts_with("ssh://"))
            && path.ends_with(".git"))
}

/// A parsed git source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitSource {
    /// The repository URL (without the fragment).
    pub(crate) url: String,
    /// The branch, tag or commit (`None`: the remote's HEAD).
    pub(crate) reference: Option<String>,
    /// The directory of the repository to use (`None`: its top).
    pub(crate) subdir: Option<String>,
}

impl GitSource {
    /// Parses `<url>[#<ref>[:<subdir>]]`, refusing what git could take for an option
    /// and subdirs leading out of the checkout.
    pub(crate) fn parse(s: &str) -> Result<GitSource, String> {
        let (url, frag) = match s.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (s, None),
        };
        if url.starts_with('-') {
            return Err(format!("invalid git URL {s:?}: it must not start with '-'"));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "invalid git URL {s:?}: it must not contain spaces or control characters"
            ));
        }
        let l = url.to_ascii_lowercase();
        let scheme_ok = ["http://", "https://", "git://", "ssh://"]
            .iter()
            .any(|p| l.starts_with(p) && l.len() > p.len());
        // scp-like `user@host:path` (ssh): the host must not look like an option either.
        let scp_ok = l.starts_with("git@")
            && url[4..]
                .split_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && !h.starts_with('-') && !p.is_empty());
        if !scheme_ok && !scp_ok {
            return Err(format!(
                "invalid git URL {s:?}: want http(s)://, git://, ssh:// or git@host:path"
            ));
        }
        let (reference, subdir) = match frag {
            None => ("", None),
            Some(f) => match f.split_once(':') {
                Some((r, d)) => (r, Some(d)),
                None => (f, None),
            },
        };
        let reference = match reference {
            "" => None,
            r if r.starts_with('-') => {
                return Err(format!(
                    "invalid git reference {r:?} in {s:?}: it must not start with '-'"
                ))
            }
            r if r.contains("..")
                || r.chars().any(|c| {
                    c.is_control()
                        || c.is_whitespace()
                        || matches!(c, '~' | '^' | '?' | '*' | '[' | '\\')
                }) =>
            {
                return Err(format!("invalid git reference {r:?} in {s:?}"))
            }
            r => Some(r.to_string()),
        };
        let subdir = match subdir.map(|d| d.trim_matches('/')) {
            None | Some("") | Some(".") => None,
            Some(d) => {
                if d.starts_with('-') {
                    return Err(format!(
                        "invalid git subdirectory {d:?} in {s:?}: it must not start with '-'"
                    ));
                }
                if d.split('/').any(|c| c == "..") || d.contains('\0') {
                    return Err(format!(
                        "invalid git subdirectory {d:?} in {s:?}: it must stay inside the repository"
                    ));
                }
                Some(d.to_string())
            }
        };
        Ok(GitSource {
            url: url.to_string(),
            reference,
            subdir,
        })
    }

    /// The URL for messages: a password or token in it is masked.
    pub(crate) fn display_url(&self) -> String {
        redact(&self.url)
    }

    /// `<url>#<ref>` for messages.
    fn describe(&self) -> String {
        match &self.reference {
            Some(r) => format!("{} (ref {r})", self.display_url()),
            None => format!("{} (its default branch)", self.display_url()),
        }
    }
}

/// Masks the password of `scheme://user:password@host/...`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let hostpart = rest.split('/').next().unwrap_or(rest);
    match hostpart.rsplit_once('@') {
        Some((cred, _)) if cred.contains(':') => {
            let user = cred.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:xxxxx@{}", &rest[cred.len() + 1..])
        }
        _ => url.to_string(),
    }
}

/// What a git command failed with: [`CANCELLED`] when the build was cancelled.
pub(crate) const CANCELLED: &str = "cancelled";

/// A git command in `dir`, with no prompt for credentials (a build has no terminal) and
/// no system-wide configuration; its stderr is returned in the error. Setting `cancel`
/// kills it (a server that never answers would otherwise hold the build forever).
fn git(dir: &Path, args: &[&str], cancel: Option<&AtomicBool>) -> Result<String, String> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "protocol.ext.allow=never",
            "-c",
            "protocol.file.allow=never",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_ASKPASS", "true")
        .env(
            "GIT_SSH_COMMAND",
            std::env::var("GIT_SSH_COMMAND").unwrap_or_else(|_| "ssh -o BatchMode=yes".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git (is it installed?): {e}"))?;
    // Read on threads, so the pipes never fill while this one watches `cancel`.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for git: {e}")),
        }
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            // Our own child, by its pid; the readers end when its helpers do.
            let _ = child.kill();
            let _ = child.wait();
            return Err(CANCELLED.into());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if status.success() {
        return Ok(String::from_utf8_lossy(&out).trim().to_string());
    }
    let err = String::from_utf8_lossy(&err);
    let err = err
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Err(if err.is_empty() {
        format!("git exited with {status}")
    } else {
        err
    })
}

/// Whether `r` may be an abbreviated or full commit id.
fn looks_like_commit(r: &str) -> bool {
    (7..=64).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit `src`'s ref names on the remote, from `git ls-remote` (run in `dir`, any
/// existing directory): the remote's HEAD, else the ref as given, a tag (peeled) or a
/// branch, in git's order. `None` when no ref matches (a commit id, or a ref that does not
/// exist: [`checkout`] then tries it and reports git's own message). A remote that cannot
/// be reached is an error naming the URL and the ref.
pub(crate) fn resolve(
    src: &GitSource,
    dir: &Path,
    cancel: Option<&AtomicBool>,
) -> Result<Option<String>, String> {
    let out = git(dir, &["ls-remote", "--", &src.url], cancel).map_err(|e| {
        if e == CANCELLED {
            e
        } else {
            format!("cannot list the refs of {}: {e}", src.describe())
        }
    })?;
    let refs: std::collections::HashMap<&str, &str> = out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(sha, name)| (name.trim(), sha.trim()))
        .collect();
    let found = match &src.reference {
        None => refs.get("HEAD").copied(),
        Some(r) => [
            format!("{r}^{{}}"),
            r.clone(),
            format!("refs/tags/{r}^{{}}"),
            format!("refs/tags/{r}"),
            format!("refs/heads/{r}"),
        ]
        .iter()
        .find_map(|c| refs.get(c.as_str()).copied()),
    };
    Ok(found.map(String::from))
}

/// Fetches `src` into the new directory `dir` and checks out its ref there (`pinned`:
/// the commit [`resolve`] found for it, which is what is checked out even if the branch
/// moved since); the `.git` directory is removed unless `keep_git_dir`. Returns the
/// commit id checked out. The error names the URL and the ref and carries git's own
/// message; it is [`CANCELLED`] when `cancel` was set.
pub(crate) fn checkout(
    src: &GitSource,
    pinned: Option<&str>,
    dir: &Path,
    keep_git_dir: bool,
    cancel: Option<&AtomicBool>,
) -> Result<String, String> {
    let fail = |what: &str, e: String| {
        if e == CANCELLED {
            e
        } else {
            format!("{what} {}: {e}", src.describe())
        }
    };
    let git = |dir: &Path, args: &[&str]| git(dir, args, cancel);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    git(dir, &["init", "-q", "--template=", "."]).map_err(|e| fail("git init for", e))?;
    let url = src.url.as_str();
    let want = src.reference.as_deref().unwrap_or("HEAD");
    // A commit id: a shallow fetch of it if the server allows that, else every branch
    // and tag, looked up locally.
    let fetch_commit = |c: &str, first: String| -> Result<String, String> {
        let spec = format!("{c}^{{commit}}");
        let parse = || {
            git(
                dir,
                &["rev-parse", "--verify", "-q", "--end-of-options", &spec],
            )
        };
        if git(
            dir,
            &["fetch", "-q", "--depth=1", "--no-tags", "--", url, c],
        )
        .is_ok()
        {
            if let Ok(id) = parse() {
                return Ok(id);
            }
        }
        git(
            dir,
            &[
                "fetch",
                "-q",
                "--tags",
                "--",
                url,
                "+refs/heads/*:refs/remotes/origin/*",
            ],
        )
        .map_err(|e2| fail("cannot fetch", format!("{first}; {e2}")))?;
        parse().map_err(|_| fail("no such commit in", first))
    };
    // A branch or tag (or HEAD): one shallow fetch. git resolves the name as
    // refs/<name>, refs/tags/<name>, refs/heads/<name>, ... (its usual rules).
    let fetched = git(
        dir,
        &["fetch", "-q", "--depth=1", "--no-tags", "--", url, want],
    )
    .and_then(|_| git(dir, &["rev-parse", "--verify", "-q", "FETCH_HEAD^{commit}"]));
    let commit = match (pinned, fetched) {
        (_, Err(e)) if e == CANCELLED => return Err(e),
        (None, Ok(c)) => c,
        (Some(p), Ok(c)) if c == p => c,
        // The ref moved since it was resolved: the commit resolved is what the cache
        // key says.
        (Some(p), Ok(c)) => fetch_commit(p, format!("{want} is now {c}"))?,
        (Some(p), Err(e)) => fetch_commit(p, e)?,
        (None, Err(e)) if looks_like_commit(want) => fetch_commit(want, e)?,
        (None, Err(e)) => return Err(fail("cannot fetch", e)),
    };
    git(
        dir,
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "--detach",
            &commit,
            "--",
        ],
    )
    .map_err(|e| fail("cannot check out", e))?;
    if !keep_git_dir {
        let g = dir.join(".git");
        std::fs::remove_dir_all(&g).map_err(|e| format!("{}: {e}", g.display()))?;
    }
    Ok(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_refs_and_subdirs() {
        let g = GitSource::parse("git://127.0.0.1:9418/repo.git#v1.0:sub/dir").unwrap();
        assert_eq!(g.url, "git://127.0.0.1:9418/repo.git");
        assert_eq!(g.reference.as_deref(), Some("v1.0"));
        assert_eq!(g.subdir.as_deref(), Some("sub/dir"));
        let g = GitSource::parse("https://h/o/r.git").unwrap();
        assert_eq!((g.reference, g.subdir), (None, None));
        let g = GitSource::parse("git@github.com:o/r.git#main").unwrap();
        assert_eq!(g.url, "git@github.com:o/r.git");
        assert_eq!(g.reference.as_deref(), Some("main"));
        let g = GitSource::parse("https://h/r.git#:docs/").unwrap();
        assert_eq!((g.reference, g.subdir.as_deref()), (None, Some("docs")));
        for bad in [
            "-uhttps://h/r.git",
            "https://h/r.git#--upload-pack=touch /x",
            "https://h/r.git#-b",
            "https://h/r.git#main:../../etc",
            "https://h/r.git#main:a/../..",
            "https://h/r.git#main:-x",
            "https://h/r.git#a..b",
            "git@-oProxyCommand=x:r.git",
            "file:///tmp/r.git",
            "ext::sh -c touch% /tmp/pwned",
            "https://h/r .git",
        ] {
            assert!(GitSource::parse(bad).is_err(), "{bad} was accepted");
        }
        let e = GitSource::parse("https://h/r.git#main:../x").unwrap_err();
        assert!(e.contains("inside the repository"), "{e}");
    }

    #[test]
    fn kinds_and_redaction() {
        assert!(is_git("git@github.com:o/r.git") && is_git("https://h/o/r.git#main"));
        assert!(is_git("GIT://h/r") && is_git("https://h/o/r.git#v1:sub"));
        assert!(!is_git("https://h/o/r.tar.gz") && !is_git("sub/r.git"));
        assert_eq!(
            redact("https://me:tok@h/o/r.git"),
            "https://me:xxxxx@h/o/r.git"
        );
        assert_eq!(redact("https://me@h/r.git"), "https://me@h/r.git");
        assert!(looks_like_commit("deadbeef") && !looks_like_commit("main"));
    }
}
