//! Image verbs: images, pull, push, tag, rmi, save, load, import, history.

use super::out::{out, outln};
use std::collections::HashMap;
use std::io::{Read, Write};

use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use super::args::*;
use super::client::{enc, filters_json, query, Client};
use super::container::{go_time, now_unix, split_ref};
use super::error::{Error, Result};
use super::format::{human_duration, human_size, ListFormat};
use super::stream::JsonLines;
use super::term;

fn short(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

/// Where a JSON message stream is shown: `pull`, `push`, `load` and `import` print their
/// progress on stdout as the docker CLI does (`docker pull x >/dev/null` is silent); `run` and
/// `create` pulling a missing image print it on stderr, keeping stdout for the container.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum ProgressTo {
    Stdout,
    Stderr,
}

/// Shows a JSON message stream (pull/push/load/import): progress bars per layer on a terminal,
/// plain lines otherwise. Returns the messages' error, if any.
pub(crate) async fn show_progress(
    mut body: super::client::Body,
    quiet: bool,
    to: ProgressTo,
) -> Result<Vec<Value>> {
    let (fd, target) = match to {
        ProgressTo::Stdout => (1, ProgressDrawTarget::stdout()),
        ProgressTo::Stderr => (2, ProgressDrawTarget::stderr()),
    };
    let tty = term::is_tty(fd) && !quiet;
    let mp = MultiProgress::with_draw_target(if tty {
        target
    } else {
        ProgressDrawTarget::hidden()
    });
    let show = |text: std::fmt::Arguments<'_>, newline: bool| match to {
        ProgressTo::Stdout => super::out::print(text, newline),
        ProgressTo::Stderr => super::out::eprint(text, newline),
    };
    // A bar only while bytes move (Downloading, Pushing), as docker draws it; a plain
    // status line otherwise.
    let bar_style = ProgressStyle::with_template("{prefix}: {msg} {bar:30} {bytes}/{total_bytes}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let line_style = ProgressStyle::with_template("{prefix}: {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let mut lines = JsonLines::default();
    let mut all = vec![];
    let mut handle = |m: Value, all: &mut Vec<Value>| -> Result<()> {
        if let Some(e) = m.get("error").and_then(|e| e.as_str()) {
            return Err(Error::Msg(e.to_string()));
        }
        if let Some(e) = m.pointer("/errorDetail/message").and_then(|e| e.as_str()) {
            return Err(Error::Msg(e.to_string()));
        }
        let id = m.get("id").and_then(|v| v.as_str()).unwrap_or("");
        let status = m.get("status").and_then(|v| v.as_str()).unwrap_or("");
        if let Some(s) = m.get("stream").and_then(|v| v.as_str()) {
            if !quiet {
                show(format_args!("{s}"), false);
            }
        } else if !quiet && !status.is_empty() {
            if tty && !id.is_empty() {
                let bar = bars.entry(id.to_string()).or_insert_with(|| {
                    let b = mp.add(ProgressBar::new(0));
                    b.set_prefix(id.to_string());
                    b
                });
                let total = m.pointer("/progressDetail/total").and_then(|v| v.as_u64());
                bar.set_style(if total.is_some() {
                    bar_style.clone()
                } else {
                    line_style.clone()
                });
                bar.set_message(status.to_string());
                if let Some(t) = total {
                    bar.set_length(t);
                }
                if let Some(c) = m
                    .pointer("/progressDetail/current")
                    .and_then(|v| v.as_u64())
                {
                    bar.set_position(c);
                }
                if status.starts_with("Pull complete")
                    || status.starts_with("Already exists")
                    || status.starts_with("Pushed")
                    || status.starts_with("Layer already exists")
                {
                    bar.finish_with_message(status.to_string());
                }
            } else if id.is_empty() {
                if tty {
                    let _ = mp.println(status);
                } else {
                    show(format_args!("{status}"), true);
                }
            } else if m
                .get("progressDetail")
                .and_then(|p| p.get("current"))
                .is_none()
            {
                show(format_args!("{id}: {status}"), true);
            }
        }
        all.push(m);
        Ok(())
    };
    while let Some(ch) = body.chunk().await? {
        for m in lines.push(&ch) {
            handle(m, &mut all)?;
        }
    }
    for m in lines.finish() {
        handle(m, &mut all)?;
    }
    for b in bars.values() {
        if !b.is_finished() {
            b.finish();
        }
    }
    Ok(all)
}

/// The registry host of a reference (docker.io when none).
pub(crate) fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "https://index.docker.io/v1/".to_string(),
    }
}

/// The registry domain of a reference as barge-image names it (`docker.io` for Docker Hub).
fn registry_domain(image: &str) -> String {
    barge_image::registry::normalize_registry(&registry_of(image))
}

/// The X-Registry-Auth header (base64 JSON) for `image`, with the credentials that the
/// client config (`--config`, `$DOCKER_CONFIG` or `~/.docker`) holds for its registry, in
/// `auths` or through its credential helper (`credsStore` / `credHelpers`), as the docker
/// CLI reads them. `None` when there are none.
pub(crate) fn registry_auth(image: &str, config: Option<&str>) -> Result<Option<String>> {
    use base64::Engine;
    let dir = config.map(std::path::Path::new);
    let reg = registry_of(image);
    let creds = barge_image::auth::load_credentials(dir, &registry_domain(image))
        .map_err(|e| Error::Msg(format!("error getting credentials: {e}")))?;
    Ok(creds.map(|c| {
        let j = json!({"username": c.username, "password": c.password, "serveraddress": reg});
        base64::engine::general_purpose::URL_SAFE.encode(j.to_string())
    }))
}

/// Pulls `image` for `run`/`create`, showing progress on stderr.
pub(crate) async fn pull_image(
    c: &Client,
    image: &str,
    quiet: bool,
    config: Option<&str>,
) -> Result<()> {
    pull_with(c, image, false, None, quiet, config, ProgressTo::Stderr).await
}

/// `POST /images/create` for `image`, as the docker CLI sends it: the tag (`latest` when
/// none) or digest, or with `all_tags` no tag at all (the daemon then pulls every tag).
async fn pull_with(
    c: &Client,
    image: &str,
    all_tags: bool,
    platform: Option<&str>,
    quiet: bool,
    config: Option<&str>,
    to: ProgressTo,
) -> Result<()> {
    let (repo, tag) = split_ref(image);
    let mut q = vec![("fromImage", repo.clone())];
    if image.contains('@') {
        q = vec![("fromImage", image.to_string())];
    } else if !all_tags {
        q.push(("tag", if tag.is_empty() { "latest".into() } else { tag }));
    }
    if let Some(p) = platform {
        q.push(("platform", p.to_string()));
    }
    let mut headers = vec![];
    if let Some(a) = registry_auth(image, config)? {
        headers.push(("X-Registry-Auth", a));
    }
    let body = c
        .call(
            Method::POST,
            &format!("/images/create{}", query(&q)),
            None,
            &headers,
        )
        .await?;
    show_progress(body, quiet, to).await?;
    if quiet {
        let full = if all_tags || image.contains(':') || image.contains('@') {
            image.to_string()
        } else {
            format!("{image}:latest")
        };
        outln!("{full}");
    }
    Ok(())
}

/// `pull`
pub async fn pull(c: &Client, a: PullArgs, config: Option<&str>) -> Result<()> {
    if a.all_tags {
        let (_, tag) = split_ref(&a.image);
        if !tag.is_empty() || a.image.contains('@') {
            return Err(Error::Usage("tag can't be used with --all-tags/-a".into()));
        }
    } else if !a.quiet && !a.image.contains('@') && split_ref(&a.image).1.is_empty() {
        outln!("Using default tag: latest");
    }
    pull_with(
        c,
        &a.image,
        a.all_tags,
        a.platform.as_deref(),
        a.quiet,
        config,
        ProgressTo::Stdout,
    )
    .await
}

/// `push`
pub async fn push(c: &Client, a: PushArgs, config: Option<&str>) -> Result<()> {
    let (repo, tag) = split_ref(&a.image);
    let mut q = vec![];
    if !a.all_tags && !tag.is_empty() {
        q.push(("tag", tag));
    }
    let auth = registry_auth(&a.image, config)?.unwrap_or_else(|| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE.encode("{}")
    });
    let body = c
        .call(
            Method::POST,
            &format!("/images/{}/push{}", enc(&repo), query(&q)),
            None,
            &[("X-Registry-Auth", auth)],
        )
        .await?;
    let msgs = show_progress(body, a.quiet, ProgressTo::Stdout).await?;
    for m in msgs {
        if let Some(d) = m.pointer("/aux/Digest").and_then(|d| d.as_str()) {
            if !a.quiet {
                outln!(
                    "{}: digest: {d} size: {}",
                    m.pointer("/aux/Tag")
                        .and_then(|t| t.as_str())
                        .unwrap_or("latest"),
                    m.pointer("/aux/Size").and_then(|s| s.as_i64()).unwrap_or(0)
                );
            }
        }
    }
    if a.quiet {
        outln!("{}", a.image);
    }
    Ok(())
}

/// `tag`
pub async fn tag(c: &Client, source: &str, target: &str) -> Result<()> {
    let (repo, tag) = split_ref(target);
    if repo.is_empty() || repo.chars().any(|ch| ch.is_ascii_uppercase()) {
        return Err(Error::Usage(format!(
            "invalid reference format: repository name must be lowercase: {target}"
        )));
    }
    let tag = if tag.is_empty() {
        "latest".to_string()
    } else {
        tag
    };
    c.post_json(
        &format!(
            "/images/{}/tag{}",
            enc(source),
            query(&[("repo", repo), ("tag", tag)])
        ),
        None,
    )
    .await?;
    Ok(())
}

/// `rmi`
pub async fn rmi(c: &Client, a: RmiArgs) -> Result<()> {
    let mut errs = vec![];
    for i in &a.images {
        match c
            .delete(&format!(
                "/images/{}?force={}&noprune={}",
                enc(i),
                a.force as u8,
                a.no_prune as u8
            ))
            .await
        {
            Ok(v) => {
                for e in v.as_array().into_iter().flatten() {
                    if let Some(u) = e.get("Untagged").and_then(|x| x.as_str()) {
                        outln!("Untagged: {u}");
                    }
                    if let Some(d) = e.get("Deleted").and_then(|x| x.as_str()) {
                        outln!("Deleted: {d}");
                    }
                }
            }
            Err(e) => errs.push(e),
        }
    }
    super::report_each(errs)
}

/// `save`
pub async fn save(c: &Client, images: &[String], output: Option<String>) -> Result<()> {
    if output.is_none() && term::is_tty(1) {
        return Err(Error::Msg(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
        ));
    }
    let q: Vec<(&str, String)> = images.iter().map(|i| ("names", i.clone())).collect();
    let body = c
        .call(Method::GET, &format!("/images/get{}", query(&q)), None, &[])
        .await?;
    super::container::body_to_output(body, output).await
}

fn input_reader(path: Option<&str>) -> Result<Box<dyn Read + Send>> {
    Ok(match path {
        None | Some("-") => Box::new(std::io::stdin()),
        Some(p) => {
            Box::new(std::fs::File::open(p).map_err(|e| Error::Msg(format!("open {p}: {e}")))?)
        }
    })
}

/// `load`
pub async fn load(c: &Client, a: LoadArgs) -> Result<()> {
    if a.input.is_none() && term::is_tty(0) {
        return Err(Error::Msg(
            "requested load from stdin, but stdin is empty".into(),
        ));
    }
    let data = super::client::reader_body(input_reader(a.input.as_deref())?);
    let body = c
        .call_body(
            Method::POST,
            &format!("/images/load?quiet={}", a.quiet as u8),
            data,
            "application/x-tar",
            &[],
        )
        .await?;
    let msgs = show_progress(body, true, ProgressTo::Stdout).await?;
    for m in msgs {
        if let Some(s) = m.get("stream").and_then(|s| s.as_str()) {
            out!("{s}");
        }
    }
    Ok(())
}

/// `import`
pub async fn import(c: &Client, a: ImportArgs) -> Result<()> {
    let mut q = vec![];
    let data: Box<dyn Read + Send> =
        if a.file.starts_with("http://") || a.file.starts_with("https://") {
            q.push(("fromSrc", a.file.clone()));
            Box::new(std::io::empty())
        } else {
            q.push(("fromSrc", "-".to_string()));
            input_reader(Some(&a.file))?
        };
    if let Some(r) = &a.repository {
        let (repo, tag) = split_ref(r);
        q.push(("repo", repo));
        if !tag.is_empty() {
            q.push(("tag", tag));
        }
    }
    if let Some(m) = &a.message {
        q.push(("message", m.clone()));
    }
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    let body = c
        .call_body(
            Method::POST,
            &format!("/images/create{}", query(&q)),
            super::client::reader_body(data),
            "application/x-tar",
            &[],
        )
        .await?;
    let msgs = show_progress(body, true, ProgressTo::Stdout).await?;
    for m in msgs {
        if let Some(s) = m.get("status").and_then(|s| s.as_str()) {
            if s.starts_with("sha256:") {
                outln!("{s}");
            }
        }
    }
    Ok(())
}

/// `images`
/// An image as docker's formatter shows it (`images`, `system df -v`), under one of its
/// names.
pub(crate) fn image_row(i: &Value, id: &str, repo: &str, tag: &str, digest: &str) -> Value {
    let num = |k: &str| i.get(k).and_then(|v| v.as_f64()).unwrap_or(-1.0);
    let created = i.get("Created").and_then(|v| v.as_i64()).unwrap_or(0);
    let (size, shared) = (num("Size").max(0.0), num("SharedSize"));
    // -1: the daemon did not compute what is shared.
    let or_na = |n: f64| {
        if shared < 0.0 {
            "N/A".to_string()
        } else {
            human_size(n)
        }
    };
    json!({
        "ID": id,
        "Repository": repo,
        "Tag": tag,
        "Digest": digest,
        "CreatedSince": format!("{} ago", human_duration(now_unix() - created)),
        "CreatedAt": go_time(created),
        "Size": human_size(size),
        "VirtualSize": human_size(size),
        "SharedSize": or_na(shared),
        "UniqueSize": or_na(size - shared),
        "Containers": i.get("Containers").cloned().unwrap_or(json!(-1)).to_string(),
    })
}

pub async fn ls(c: &Client, a: ImagesArgs) -> Result<()> {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.repository {
        filters.push(format!("reference={r}"));
    }
    let mut q = vec![];
    if a.all {
        q.push(("all", "1".to_string()));
    }
    if let Some(f) = filters_json(&filters)? {
        q.push(("filters", f));
    }
    let list = c.get_json(&format!("/images/json{}", query(&q))).await?;
    let mut rows = vec![];
    for i in list.as_array().into_iter().flatten() {
        let id = i.get("Id").and_then(|v| v.as_str()).unwrap_or("");
        let id = if a.no_trunc {
            id.to_string()
        } else {
            short(id)
        };
        let digests: Vec<String> = i
            .get("RepoDigests")
            .and_then(|v| v.as_array())
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str())
                    .map(|s| s.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let digest = digests
            .first()
            .and_then(|d| d.split_once('@'))
            .map(|d| d.1.to_string())
            .unwrap_or_else(|| "<none>".into());
        let tags: Vec<String> = i
            .get("RepoTags")
            .and_then(|v| v.as_array())
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str())
                    .map(|s| s.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let pairs: Vec<(String, String)> = if tags.is_empty() || tags == ["<none>:<none>"] {
            vec![("<none>".into(), "<none>".into())]
        } else {
            tags.iter()
                .map(|t| {
                    let (r, tg) = split_ref(t);
                    (r, if tg.is_empty() { "<none>".into() } else { tg })
                })
                .collect()
        };
        for (repo, tag) in pairs {
            rows.push(image_row(i, &id, &repo, &tag, &digest));
        }
    }
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            let id = r["ID"].as_str().unwrap_or("");
            if seen.insert(id.to_string()) {
                outln!("{id}");
            }
        }
        return Ok(());
    }
    let default = if a.digests {
        "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let f = ListFormat::new(
        a.format.as_deref(),
        default,
        &[
            ("ID", "IMAGE ID"),
            ("Repository", "REPOSITORY"),
            ("Tag", "TAG"),
            ("Digest", "DIGEST"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("Size", "SIZE"),
        ],
    )
    .map_err(|e| Error::Usage(e.to_string()))?;
    let out = f.render(&rows).map_err(|e| Error::Usage(e.to_string()))?;
    let _ = super::out::stdout().write_all(out.as_bytes());
    Ok(())
}

/// `history`
pub async fn history(c: &Client, a: HistoryArgs) -> Result<()> {
    let v = c
        .get_json(&format!("/images/{}/history", enc(&a.image)))
        .await?;
    let mut rows = vec![];
    for h in v.as_array().into_iter().flatten() {
        let id = h.get("Id").and_then(|v| v.as_str()).unwrap_or("<missing>");
        let id = if id == "<missing>" || a.no_trunc {
            id.to_string()
        } else {
            short(id)
        };
        let created = h.get("Created").and_then(|v| v.as_i64()).unwrap_or(0);
        let by = h.get("CreatedBy").and_then(|v| v.as_str()).unwrap_or("");
        let by = if a.no_trunc || by.chars().count() <= 45 {
            by.to_string()
        } else {
            by.chars().take(44).collect::<String>() + "…"
        };
        let size = h.get("Size").and_then(|v| v.as_f64()).unwrap_or(0.0);
        rows.push(json!({
            "ID": id,
            "CreatedSince": if a.human { format!("{} ago", human_duration(now_unix() - created)) } else { go_time(created) },
            "CreatedAt": go_time(created),
            "CreatedBy": by,
            "Size": if a.human { human_size(size) } else { (size as i64).to_string() },
            "Comment": h.get("Comment").and_then(|v| v.as_str()).unwrap_or(""),
        }));
    }
    if a.quiet {
        for r in &rows {
            outln!("{}", r["ID"].as_str().unwrap_or(""));
        }
        return Ok(());
    }
    let f = ListFormat::new(
        a.format.as_deref(),
        "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        &[
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
            ("Size", "SIZE"),
            ("Comment", "COMMENT"),
        ],
    )
    .map_err(|e| Error::Usage(e.to_string()))?;
    out!(
        "{}",
        f.render(&rows).map_err(|e| Error::Usage(e.to_string()))?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_and_auth() {
        assert_eq!(registry_of("busybox"), "https://index.docker.io/v1/");
        assert_eq!(
            registry_of("library/busybox"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(registry_of("localhost:5000/x"), "localhost:5000");
        assert_eq!(registry_of("ghcr.io/a/b"), "ghcr.io");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            r#"{"auths":{"localhost:5000":{"auth":"dXNlcjpwYXNz"}}}"#,
        )
        .unwrap();
        let h = registry_auth("localhost:5000/x:1", d.path().to_str())
            .unwrap()
            .unwrap();
        use base64::Engine;
        let j: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE.decode(h).unwrap())
                .unwrap();
        assert_eq!(j["username"], "user");
        assert_eq!(j["password"], "pass");
        assert!(registry_auth("other.io/x", d.path().to_str())
            .unwrap()
            .is_none());
    }
}
