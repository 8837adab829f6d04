//! `build`: tars the context (honouring .dockerignore), POSTs it to /build, prints the stream.

use super::out::{out, outln};
use std::io::Read;
use std::path::Path;

use hyper::Method;
use serde_json::Value;

use super::args::BuildArgs;
use super::client::{query, Client};
use super::error::{Error, Result};
use super::opts::kv_map;
use super::stream::JsonLines;

/// Adds `dir` (below `root`) to the tar, leaving out what `.dockerignore` excludes (with
/// barge-build's matcher, the one the builder applies to the context it receives).
fn add_dir<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    dir: &Path,
    ignore: &barge_build::DockerIgnore,
    keep: &[String],
) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p
            .strip_prefix(root)
            .map_err(|e| Error::Msg(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let ft = e.file_type()?;
        let excluded = ignore.matches(&rel, ft.is_dir()) && !keep.contains(&rel);
        if ft.is_dir() {
            if !excluded {
                b.append_dir(&rel, &p)?;
            }
            // An excluded directory is still walked if a `!` exception may re-include
            // something below it.
            if !excluded || ignore.may_reinclude_under(&rel) {
                add_dir(b, root, &p, ignore, keep)?;
            }
        } else if !excluded {
            b.append_path_with_name(&p, &rel)?;
        }
    }
    Ok(())
}

/// Tars the build context directory, honouring its .dockerignore (the Dockerfile and
/// .dockerignore themselves are always sent).
pub fn tar_context(dir: &Path, dockerfile: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    write_context(dir, dockerfile, &mut v)?;
    Ok(v)
}

/// Writes the context tar to `w` (see [`tar_context`]).
pub fn write_context(dir: &Path, dockerfile: &str, w: &mut dyn std::io::Write) -> Result<()> {
    let text = std::fs::read_to_string(dir.join(".dockerignore")).unwrap_or_default();
    let ignore = barge_build::DockerIgnore::parse(&text)
        .map_err(|e| Error::Msg(format!(".dockerignore: {e}")))?;
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let keep = vec![dockerfile.to_string(), ".dockerignore".to_string()];
    add_dir(&mut b, dir, dir, &ignore, &keep)?;
    b.finish()?;
    Ok(())
}

/// Reads one `--secret` value (`id=x,src=path`, `id=x,env=VAR`, `id=x` alone: the
/// variable `x`, else the file `x`), as buildx takes it; the error names the problem.
pub fn read_secret(
    spec: &str,
    getenv: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<(String, Vec<u8>)> {
    let bad = |why: String| Error::Msg(format!("invalid --secret {spec:?}: {why}"));
    let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
    for field in spec.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| bad(format!("{field:?} is not key=value")))?;
        match k.trim().to_ascii_lowercase().as_str() {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => env = Some(v.to_string()),
            "type" => kind = Some(v.to_string()),
            other => return Err(bad(format!("unknown key {other:?} (id, src, env, type)"))),
        }
    }
    let id = id
        .or_else(|| {
            src.as_deref()
                .and_then(|s| s.rsplit('/').next())
                .map(String::from)
        })
        .or_else(|| env.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| bad("an id is required".into()))?;
    let from_env = |var: &str| {
        getenv(var)
            .map(|v| v.into_encoded_bytes())
            .ok_or_else(|| bad(format!("the environment variable {var} is not set")))
    };
    let from_file = |p: &str| std::fs::read(p).map_err(|e| bad(format!("{p}: {e}")));
    let data = match (kind.as_deref(), src, env) {
        (Some("env"), Some(v), _) | (_, None, Some(v)) => from_env(&v)?,
        (Some("file") | None, Some(p), None) => from_file(&p)?,
        (None, None, None) => match getenv(&id) {
            Some(v) => v.into_encoded_bytes(),
            None => from_file(&id)?,
        },
        (Some(t), _, _) if t != "file" && t != "env" => {
            return Err(bad(format!("unknown type {t:?} (file, env)")))
        }
        _ => return Err(bad("give either src= or env=".into())),
    };
    Ok((id, data))
}

/// Whether a classic-builder stream line ends a step (` ---> <12 hex>`).
fn is_step_end(s: &str) -> bool {
    s.strip_prefix(" ---> ")
        .map(str::trim_end)
        .is_some_and(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `build`
pub async fn build(c: &Client, a: BuildArgs) -> Result<()> {
    if let Some(s) = a.ssh.first() {
        return Err(Error::Msg(format!(
            "--ssh {s}: barge's builder has no SSH agent forwarding; fetch private sources before the build (RUN --mount=type=ssh is skipped, or refused when required=true)"
        )));
    }
    let mut dockerfile = a.file.clone().unwrap_or_else(|| "Dockerfile".into());
    if barge_build::is_remote_context(&a.context) {
        // A URL: the daemon fetches the context (`remote`), the body is empty.
        let dockerfile = a.file.clone().unwrap_or_else(|| "Dockerfile".into());
        let body = super::client::bytes_body(Vec::new());
        return send_build(c, &a, &dockerfile, body, Some(&a.context)).await;
    }
    let body = if a.context == "-" {
        let mut v = vec![];
        std::io::stdin().read_to_end(&mut v)?;
        let is_tar = v.len() > 262 && &v[257..262] == b"ustar";
        let compressed = v.starts_with(b"\x1f\x8b")
            || v.starts_with(b"BZh")
            || v.starts_with(b"\xfd7zXZ")
            || v.starts_with(b"\x28\xb5\x2f\xfd");
        if !is_tar && !compressed {
            // A Dockerfile on stdin: wrap it in a tar.
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(v.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, "Dockerfile", &v[..])?;
            dockerfile = "Dockerfile".into();
            b.into_inner()?
        } else {
            v
        }
    } else {
        let dir = Path::new(&a.context);
        if !dir.is_dir() {
            return Err(Error::Msg(format!(
                "unable to prepare context: path {:?} not found",
                a.context
            )));
        }
        // A -f outside the context is added to it under a fixed name.
        if let Some(f) = &a.file {
            let fp = Path::new(f);
            let abs = if fp.is_absolute() {
                fp.to_path_buf()
            } else {
                std::env::current_dir()?.join(fp)
            };
            let ctx = std::fs::canonicalize(dir)?;
            match std::fs::canonicalize(&abs) {
                Ok(real) if real.starts_with(&ctx) => {
                    dockerfile = real
                        .strip_prefix(&ctx)
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or(dockerfile);
                }
                Ok(real) => {
                    let mut t = tar_context(dir, "")?;
                    let data = std::fs::read(&real)?;
                    let mut b = tar::Builder::new(Vec::new());
                    let mut ar = tar::Archive::new(&t[..]);
                    for e in ar.entries()? {
                        let mut e = e?;
                        let mut h = e.header().clone();
                        let p = e.path()?.into_owned();
                        let mut d = vec![];
                        e.read_to_end(&mut d)?;
                        b.append_data(&mut h, p, &d[..])?;
                    }
                    let mut h = tar::Header::new_gnu();
                    h.set_size(data.len() as u64);
                    h.set_mode(0o644);
                    h.set_cksum();
                    dockerfile = ".barge-dockerfile".into();
                    b.append_data(&mut h, &dockerfile, &data[..])?;
                    t = b.into_inner()?;
                    return send_build(c, &a, &dockerfile, super::client::bytes_body(t), None)
                        .await;
                }
                Err(e) => return Err(Error::Msg(format!("unable to read {f}: {e}"))),
            }
        }
        // Streamed: the context is tarred while it is sent.
        let (d, df) = (dir.to_path_buf(), dockerfile.clone());
        let body = super::client::writer_body(move |w| {
            write_context(&d, &df, w).map_err(|e| std::io::Error::other(e.to_string()))
        });
        return send_build(c, &a, &dockerfile, body, None).await;
    };
    send_build(c, &a, &dockerfile, super::client::bytes_body(body), None).await
}

async fn send_build(
    c: &Client,
    a: &BuildArgs,
    dockerfile: &str,
    body: super::client::ReqBody,
    remote: Option<&str>,
) -> Result<()> {
    let mut q = vec![("dockerfile", dockerfile.to_string())];
    if let Some(r) = remote {
        q.push(("remote", r.to_string()));
    }
    for t in &a.tag {
        q.push(("t", t.clone()));
    }
    if !a.build_arg.is_empty() {
        let args: Vec<String> = a
            .build_arg
            .iter()
            .map(|b| super::opts::env_entry(b).unwrap_or_else(|_| b.clone()))
            .collect();
        q.push(("buildargs", kv_map(&args).to_string()));
    }
    if let Some(t) = &a.target {
        q.push(("target", t.clone()));
    }
    if a.no_cache {
        q.push(("nocache", "1".into()));
    }
    if a.pull {
        q.push(("pull", "1".into()));
    }
    if !a.label.is_empty() {
        q.push(("labels", kv_map(&a.label).to_string()));
    }
    if a.quiet || a.progress == "quiet" {
        q.push(("q", "1".into()));
    }
    q.push(("rm", (a.rm as u8).to_string()));
    if let Some(n) = &a.network {
        q.push(("networkmode", n.clone()));
    }
    if !a.cache_from.is_empty() {
        q.push((
            "cachefrom",
            serde_json::to_string(&a.cache_from).unwrap_or_default(),
        ));
    }
    let mut headers = Vec::new();
    if !a.secret.is_empty() {
        let mut m = std::collections::BTreeMap::new();
        for s in &a.secret {
            let (id, v) = read_secret(s, |k| std::env::var_os(k))?;
            m.insert(id, barge_build::Secret(v));
        }
        headers.push((barge_build::SECRETS_HEADER, barge_build::encode_secrets(&m)));
    }
    let mut resp = c
        .call_body(
            Method::POST,
            &format!("/build{}", query(&q)),
            body,
            "application/x-tar",
            &headers,
        )
        .await?;
    let mut lines = JsonLines::default();
    let mut id = None;
    let quiet = a.quiet || a.progress == "quiet";
    let plain = a.progress == "plain";
    let mut step_start = std::time::Instant::now();
    let mut handle = |m: Value| -> Result<()> {
        if let Some(e) = m
            .pointer("/errorDetail/message")
            .or_else(|| m.get("error"))
            .and_then(|e| e.as_str())
        {
            return Err(Error::Msg(e.to_string()));
        }
        if let Some(i) = m.pointer("/aux/ID").and_then(|v| v.as_str()) {
            id = Some(i.to_string());
        }
        if !quiet {
            if let Some(s) = m.get("stream").and_then(|v| v.as_str()) {
                if s.starts_with("Step ") {
                    step_start = std::time::Instant::now();
                }
                // --progress=plain: a RUN's stderr uncoloured (by default it keeps
                // dockerd's red, as the docker CLI prints it).
                let s = if plain {
                    use barge_build::progress::{STDERR_END, STDERR_START};
                    s.strip_prefix(STDERR_START)
                        .and_then(|x| x.strip_suffix(STDERR_END))
                        .unwrap_or(s)
                } else {
                    s
                };
                // --progress=plain: each step's end carries its time.
                if plain && is_step_end(s) {
                    let secs = step_start.elapsed().as_secs_f64();
                    outln!("{} ({secs:.2}s)", s.trim_end());
                    return Ok(());
                }
                out!("{s}");
            } else if let Some(s) = m.get("status").and_then(|v| v.as_str()) {
                outln!("{s}");
            }
        } else if let Some(s) = m.get("stream").and_then(|v| v.as_str()) {
            if s.trim().starts_with("sha256:") {
                id = Some(s.trim().to_string());
            }
        }
        Ok(())
    };
    while let Some(ch) = resp.chunk().await? {
        for m in lines.push(&ch) {
            handle(m)?;
        }
    }
    for m in lines.finish() {
        handle(m)?;
    }
    if quiet {
        if let Some(i) = id {
            outln!("{i}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_specs() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "s3cret").unwrap();
        let env = |k: &str| (k == "TOKEN").then(|| std::ffi::OsString::from("from-env"));
        let spec = format!("id=x,src={}", f.display());
        assert_eq!(
            read_secret(&spec, env).unwrap(),
            ("x".into(), b"s3cret".to_vec())
        );
        assert_eq!(
            read_secret(&format!("src={}", f.display()), env).unwrap().0,
            "tok"
        );
        assert_eq!(
            read_secret("id=t,env=TOKEN", env).unwrap(),
            ("t".into(), b"from-env".to_vec())
        );
        assert_eq!(read_secret("id=TOKEN", env).unwrap().1, b"from-env");
        for (bad, why) in [
            ("id=x,env=NOPE", "NOPE is not set"),
            ("id=x,src=/nonexistent/f", "/nonexistent/f"),
            ("id=x,colour=red", "unknown key"),
            ("id=x,src=a,env=b", "either src= or env="),
            ("novalue", "not key=value"),
        ] {
            let e = read_secret(bad, env).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("--secret"), "{bad}: {e}");
        }
    }

    #[test]
    fn context_tar_honours_ignore() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(
            d.path().join(".dockerignore"),
            "*.log\nnode_modules\nbuild/\n!build/keep.txt\n**/*.tmp\n",
        )
        .unwrap();
        std::fs::write(d.path().join("a.log"), "x").unwrap();
        std::fs::write(d.path().join("main.c"), "x").unwrap();
        std::fs::create_dir(d.path().join("node_modules")).unwrap();
        std::fs::write(d.path().join("node_modules/m.js"), "x").unwrap();
        std::fs::create_dir_all(d.path().join("build/sub")).unwrap();
        std::fs::write(d.path().join("build/keep.txt"), "x").unwrap();
        std::fs::write(d.path().join("build/sub/out.o"), "x").unwrap();
        std::fs::create_dir_all(d.path().join("src/deep")).unwrap();
        std::fs::write(d.path().join("src/deep/x.tmp"), "x").unwrap();
        std::fs::write(d.path().join("src/a.log"), "x").unwrap();
        let t = tar_context(d.path(), "Dockerfile").unwrap();
        let mut ar = tar::Archive::new(&t[..]);
        let mut names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // Docker's rules: `*.log` is only at the top; `!` re-includes below an excluded dir.
        assert_eq!(
            names,
            vec![
                ".dockerignore",
                "Dockerfile",
                "build/keep.txt",
                "main.c",
                "src",
                "src/a.log",
                "src/deep",
            ]
        );
    }
}
