//! Image endpoints, `system df`, and the container archive (cp) endpoints.

use std::sync::Arc;

use barge_engine::Engine;
use base64::Engine as _;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{json, Value};

use crate::read_body;
use crate::util::{full, json_response, status, ApiError, Body, Query};

type R = Result<Response<Body>, ApiError>;

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(500, e.to_string()))?
}

/// Go's `path.Match` as Docker's `reference` filter uses it: `*` is any run of characters
/// but `/`, `?` one such character; `[...]` classes are taken literally.
fn glob_match(pat: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| go(rest, &s[i..])),
            Some((b'?', rest)) => s.first().is_some_and(|c| *c != b'/') && go(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(pat.as_bytes(), s.as_bytes())
}

fn created_secs(c: &Option<String>) -> i64 {
    created_time(c) as i64
}

/// An image's creation time in seconds since the epoch, with its fraction (0 when unknown).
fn created_time(c: &Option<String>) -> f64 {
    c.as_deref()
        .and_then(barge_engine::util::parse_rfc3339)
        .unwrap_or(0.0)
}

pub(crate) async fn dispatch(
    e: Arc<Engine>,
    m: Method,
    segs: &[&str],
    q: &Query,
    req: Request<Incoming>,
) -> R {
    // Image names contain slashes: /images/{name...}/json
    let joined = segs.join("/");
    match (&m, segs) {
        (&Method::GET, ["json"]) => {
            let filters = q.filters_of(&["before", "dangling", "label", "reference", "since"])?;
            let store = e.store.clone();
            let (list, labels) = blocking(move || {
                let list = store.list_images()?;
                // Each image's config labels (the Labels column and the label filter).
                let labels: Vec<Value> = list
                    .iter()
                    .map(|i| {
                        store
                            .image_config(&i.id)
                            .ok()
                            .and_then(|c| c.config().as_ref().and_then(|c| c.labels().clone()))
                            .map(|l| json!(l))
                            .unwrap_or(json!({}))
                    })
                    .collect();
                Ok((list, labels))
            })
            .await?;
            // before/since name an image; what counts is its creation time.
            let created_of = |k: &str| -> Result<Option<f64>, ApiError> {
                let Some(r) = filters.get(k).and_then(|v| v.first()) else {
                    return Ok(None);
                };
                list.iter()
                    .find(|i| {
                        i.id.to_string() == *r
                            || i.id
                                .to_string()
                                .trim_start_matches("sha256:")
                                .starts_with(r.as_str())
                            || i.tags
                                .iter()
                                .any(|t| t.familiar() == *r || t.familiar_name() == *r)
                    })
                    .map(|i| Some(created_time(&i.created)))
                    .ok_or_else(|| ApiError::new(404, format!("No such image: {r}")))
            };
            let (before, since) = (created_of("before")?, created_of("since")?);
            let ref_ok = |t: &barge_image::Reference| {
                filters.get("reference").is_none_or(|pats| {
                    pats.iter()
                        .any(|p| glob_match(p, &t.familiar()) || glob_match(p, &t.familiar_name()))
                })
            };
            let containers = e.all();
            let mut kept: Vec<_> = list
                .iter()
                .zip(labels)
                .filter(|(i, labels)| {
                    let created = created_time(&i.created);
                    before.is_none_or(|t| created < t)
                        && since.is_none_or(|t| created > t)
                        && filters.iter().all(|(k, vals)| match k.as_str() {
                            "label" => crate::util::json_labels_match(Some(labels), vals),
                            "dangling" => vals
                                .iter()
                                .all(|d| (d == "true" || d == "1") == i.tags.is_empty()),
                            "reference" => i.tags.iter().any(ref_ok),
                            _ => true,
                        })
                })
                .collect();
            // Newest first, as dockerd lists them (clients take the first as the latest).
            kept.sort_by(|a, b| created_time(&b.0.created).total_cmp(&created_time(&a.0.created)));
            let v: Vec<Value> = kept
                .into_iter()
                // With a reference filter, only the tags it matched (as Docker).
                .map(|(i, labels)| image_summary(i, |t| ref_ok(t), labels, &containers))
                .collect();
            Ok(json_response(200, &Value::Array(v)))
        }
        (&Method::POST, ["create"]) => create(e, q, req).await,
        (&Method::POST, ["load"]) => {
            let body = read_body(req, 8 << 30).await?;
            let store = e.store.clone();
            let loaded = blocking(move || Ok(store.load(&body[..], "load")?)).await;
            // As dockerd: a chunked stream of JSON messages (clients read it line by line;
            // docker-py parses a body that is not chunked as one JSON document), and a
            // failure is an `error` message in it, after the 200.
            let mut out = String::new();
            for l in loaded.as_ref().map(Vec::as_slice).unwrap_or_default() {
                if l.tags.is_empty() {
                    out.push_str(&format!(
                        "{}\n",
                        json!({"stream": format!("Loaded image ID: {}\n", l.id)})
                    ));
                }
                for t in &l.tags {
                    out.push_str(&format!(
                        "{}\n",
                        json!({"stream": format!("Loaded image: {}\n", t.familiar())})
                    ));
                }
            }
            if let Err(err) = &loaded {
                out.push_str(&format!(
                    "{}\n",
                    json!({"errorDetail": {"message": err.message}, "error": err.message})
                ));
            }
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx.try_send(Bytes::from(out));
            let mut r = Response::new(crate::util::channel_body(rx));
            r.headers_mut().insert(
                "Content-Type",
                hyper::header::HeaderValue::from_static("application/json"),
            );
            Ok(r)
        }
        (&Method::GET, ["get"]) => {
            let names: Vec<String> = q
                .get("names")
                .map(|n| n.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            save(e, names).await
        }
        (&Method::GET, [.., "get"]) => save(e, vec![segs[..segs.len() - 1].join("/")]).await,
        (&Method::GET, [.., "json"]) => {
            let name = segs[..segs.len() - 1].join("/");
            let store = e.store.clone();
            let n2 = name.clone();
            let (rec, cfg) = blocking(move || {
                let (rec, cfg) = store.inspect(&n2).map_err(|e| not_found(e, &n2))?;
                // The config blob as stored, not its OCI model: Docker's fields that the OCI
                // image spec lacks (OnBuild, Healthcheck, Shell, ArgsEscaped) must show too.
                // inspect() has already parsed and checked it.
                let raw = store
                    .read_document(&rec.id, "image config")
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .filter(Value::is_object)
                    .unwrap_or_else(|| serde_json::to_value(&cfg).unwrap_or(Value::Null));
                Ok::<_, ApiError>((rec, raw))
            })
            .await?;
            let tags: Vec<String> = e
                .store
                .references()
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, d)| *d == rec.id)
                .map(|(r, _)| r.familiar())
                .collect();
            let size: u64 = rec.layers.iter().map(|l| l.uncompressed_size).sum();
            Ok(json_response(
                200,
                &json!({
                    "Id": rec.id.to_string(),
                    "RepoTags": tags,
                    "RepoDigests": rec.repo_digests,
                    "Parent": cfg.get("parent").cloned().unwrap_or(json!("")),
                    "Comment": cfg.get("comment").cloned().unwrap_or(json!("")),
                    "Created": cfg.get("created").cloned().unwrap_or(json!("0001-01-01T00:00:00Z")),
                    "DockerVersion": "",
                    "Author": cfg.get("author").cloned().unwrap_or(json!("")),
                    "Config": docker_image_config(cfg.get("config")),
                    "Architecture": cfg.get("architecture").cloned().unwrap_or(json!("")),
                    "Os": cfg.get("os").cloned().unwrap_or(json!("linux")),
                    "Size": size,
                    "GraphDriver": {"Name": "overlay2", "Data": null},
                    "RootFS": {"Type": "layers", "Layers": rec.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
                    "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
                }),
            ))
        }
        (&Method::GET, [.., "history"]) => {
            let name = segs[..segs.len() - 1].join("/");
            let store = e.store.clone();
            let n2 = name.clone();
            let (id, h) = blocking(move || {
                let id = store.resolve(&n2).map_err(|e| not_found(e, &n2))?.id;
                let h = store.history(&n2).map_err(|e| not_found(e, &n2))?;
                Ok((id, h))
            })
            .await?;
            let tags: Vec<String> = e
                .store
                .references()
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, d)| *d == id)
                .map(|(r, _)| r.familiar())
                .collect();
            // As dockerd: a row's Id is the image made by that step, so the newest row has
            // the image's id and tags; builds keep no intermediate images, so the earlier
            // rows are "<missing>" (a layer's diff id is no image id and must not pose as one).
            let v: Vec<Value> = h
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    json!({
                        "Id": if i == 0 { id.to_string() } else { "<missing>".into() },
                        "Created": created_secs(&s.created),
                        "CreatedBy": s.created_by.unwrap_or_default(),
                        "Tags": if i == 0 && !tags.is_empty() { json!(tags) } else { Value::Null },
                        "Size": s.layer.map(|l| l.1).unwrap_or(0),
                        "Comment": s.comment.unwrap_or_default(),
                    })
                })
                .collect();
            Ok(json_response(200, &Value::Array(v)))
        }
        (&Method::POST, [.., "tag"]) => {
            let name = segs[..segs.len() - 1].join("/");
            let repo = q.get("repo").unwrap_or("").to_string();
            let tag = q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest");
            if matches!(repo.as_str(), "sha256" | "sha384" | "sha512") {
                // `sha256:abc` would read as a digest wherever the image is named later.
                return Err(ApiError::new(
                    400,
                    "refusing to create an ambiguous tag using digest algorithm as name".into(),
                ));
            }
            let r = barge_image::Reference::parse(&format!("{repo}:{tag}"))
                .map_err(|e| ApiError::new(400, e.to_string()))?;
            let store = e.store.clone();
            let n2 = name.clone();
            let new_ref = r.familiar();
            let id = blocking(move || {
                store.tag(&n2, &r).map_err(|e| not_found(e, &n2))?;
                Ok(store
                    .resolve(&n2)
                    .map(|rec| rec.id.to_string())
                    .unwrap_or(n2))
            })
            .await?;
            e.emit_image_event("tag", &id, &new_ref);
            Ok(status(201))
        }
        (&Method::DELETE, _) => {
            let name = joined.clone();
            let force = q.bool("force");
            if !force {
                if let Ok(rec) = e.store.resolve(&name) {
                    // As Docker: removing one of several references only untags, whatever
                    // containers use the image.
                    let hex = rec.id.to_string();
                    let hex = hex.trim_start_matches("sha256:");
                    let n = name.trim_start_matches("sha256:");
                    let by_id = !n.is_empty()
                        && hex.starts_with(n)
                        && n.bytes().all(|b| b.is_ascii_hexdigit());
                    let refs = e
                        .store
                        .list_images()
                        .ok()
                        .and_then(|l| l.into_iter().find(|i| i.id == rec.id))
                        .map(|i| i.tags.len())
                        .unwrap_or(0);
                    let only_untag = !by_id && refs > 1;
                    if let Some(c) = e
                        .all()
                        .into_iter()
                        .find(|c| !only_untag && c.image_id == rec.id.to_string())
                    {
                        return Err(ApiError::new(409, format!("conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}", &c.id[..12], &rec.id.to_string()[7..19])));
                    }
                }
            }
            let store = e.store.clone();
            let n2 = name.clone();
            let (rep, id) = blocking(move || {
                let id = store.resolve(&n2).map(|rec| rec.id.to_string()).ok();
                let rep = store
                    .remove_image(&n2, force)
                    .map_err(|e| not_found(e, &n2))?;
                Ok((rep, id.unwrap_or(n2)))
            })
            .await?;
            let mut v: Vec<Value> = rep
                .untagged
                .iter()
                .map(|r| json!({"Untagged": r.familiar()}))
                .collect();
            v.extend(
                rep.deleted
                    .iter()
                    .map(|d| json!({"Deleted": d.to_string()})),
            );
            // As dockerd: an `untag` per reference removed, a `delete` per image deleted.
            for _ in &rep.untagged {
                e.emit_image_event("untag", &id, &id);
            }
            for d in &rep.deleted {
                e.emit_image_event("delete", &d.to_string(), &d.to_string());
            }
            Ok(json_response(200, &Value::Array(v)))
        }
        (&Method::POST, ["prune"]) => {
            let f = q.filters()?;
            let pf = crate::util::PruneFilters::parse(&f, true, &["dangling"])?;
            // dangling=false (`image prune -a`): every image no container uses.
            let all = match f.get("dangling").map(Vec::as_slice) {
                None | Some([]) => false,
                Some([d]) => match d.as_str() {
                    "true" | "1" => false,
                    "false" | "0" => true,
                    other => {
                        return Err(ApiError::new(
                            400,
                            format!("invalid filter 'dangling={other}'"),
                        ))
                    }
                },
                Some(_) => {
                    return Err(ApiError::new(
                        400,
                        "invalid filter 'dangling': more than one value".into(),
                    ))
                }
            };
            // As dockerd: an image a container uses stays, tagged or not.
            let in_use: std::collections::BTreeSet<barge_image::Digest> = e
                .all()
                .iter()
                .filter_map(|c| c.image_id.parse().ok())
                .collect();
            let store = e.store.clone();
            let rep = blocking(move || {
                let before = store.layers_usage()?.1;
                let rep = store.prune_images(all, &in_use, |id| {
                    let Ok(cfg) = store.image_config(id) else {
                        return false;
                    };
                    let created = cfg
                        .created()
                        .as_deref()
                        .and_then(barge_util::time::parse_rfc3339)
                        .map_or(0.0, |(s, n)| s as f64 + f64::from(n) / 1e9);
                    let labels = cfg.config().as_ref().and_then(|c| c.labels().as_ref());
                    pf.selects(created, |k| {
                        labels.and_then(|l| l.get(k)).map(String::as_str)
                    })
                })?;
                let after = store.layers_usage()?.1;
                Ok((rep, before.saturating_sub(after)))
            })
            .await?;
            let (rep, reclaimed) = rep;
            for d in &rep.deleted {
                e.emit_image_event("delete", &d.to_string(), &d.to_string());
            }
            let mut deleted: Vec<Value> = rep
                .untagged
                .iter()
                .map(|r| json!({"Untagged": r.familiar()}))
                .collect();
            deleted.extend(
                rep.deleted
                    .iter()
                    .map(|x| json!({"Deleted": x.to_string()})),
            );
            e.emit(
                "image",
                "prune",
                "",
                [("reclaimed".to_string(), reclaimed.to_string())].into(),
            );
            Ok(json_response(
                200,
                &json!({"ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) }, "SpaceReclaimed": reclaimed}),
            ))
        }
        (&Method::GET, ["search"]) => {
            Err(ApiError::new(501, "image search is not supported".into()))
        }
        _ => Err(ApiError::new(
            404,
            format!("page not found: {m} /images/{joined}"),
        )),
    }
}

fn not_found(e: barge_image::Error, name: &str) -> ApiError {
    match e {
        barge_image::Error::ImageNotFound(_) | barge_image::Error::Reference(_) => ApiError::new(
            404,
            format!(
                "No such image: {}",
                barge_image::Reference::missing_image_name(name)
            ),
        ),
        e => e.into(),
    }
}

async fn save(e: Arc<Engine>, names: Vec<String>) -> R {
    let store = e.store.clone();
    let data = blocking(move || {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut buf = Vec::new();
        store
            .save_docker_archive(&refs, &mut buf)
            .map_err(|e| match e {
                barge_image::Error::ImageNotFound(n) => {
                    ApiError::new(404, format!("No such image: {n}"))
                }
                e => e.into(),
            })?;
        Ok(buf)
    })
    .await?;
    let mut r = Response::new(full(data));
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/x-tar"),
    );
    Ok(r)
}

async fn create(e: Arc<Engine>, q: &Query, req: Request<Incoming>) -> R {
    if let Some(src) = q.get("fromSrc") {
        if src != "-" {
            return Err(ApiError::new(
                501,
                "importing from a URL is not supported; send the tarball in the body (fromSrc=-)"
                    .into(),
            ));
        }
        let repo = q.get("repo").unwrap_or("");
        let tag = q.get("tag").filter(|t| !t.is_empty());
        let reference = if repo.is_empty() {
            None
        } else {
            let s = match tag {
                Some(t) => format!("{repo}:{t}"),
                None => repo.to_string(),
            };
            Some(barge_image::Reference::parse(&s).map_err(|e| ApiError::new(400, e.to_string()))?)
        };
        // As dockerd: the message, or where the tarball came from ("-": this request).
        let comment = match q.get("message").filter(|m| !m.is_empty()) {
            Some(m) => m.to_string(),
            None => format!("Imported from {}", q.get("fromSrc").unwrap_or("-")),
        };
        // `changes` (repeated, or lines of one value) set the image's config, as dockerd.
        let mut config = json!({});
        crate::containers::apply_changes(&mut config, &q.all("changes").join("\n"))?;
        let platform = import_platform(q.get("platform"))?;
        let body = read_body(req, 8 << 30).await?;
        let store = e.store.clone();
        let rec = blocking(move || {
            Ok(store.import_with_config(
                &body[..],
                reference.as_ref(),
                &comment,
                config,
                platform.as_ref(),
            )?)
        })
        .await?;
        e.emit("image", "import", &rec.id.to_string(), Default::default());
        let line = format!("{}\n", json!({"status": rec.id.to_string()}));
        let mut r = Response::new(full(line));
        r.headers_mut().insert(
            "Content-Type",
            hyper::header::HeaderValue::from_static("application/json"),
        );
        return Ok(r);
    }
    // fromImage (a pull) is routed to crate::distribution before this.
    Err(ApiError::new(
        400,
        "fromImage or fromSrc is required".into(),
    ))
}

/// The `platform` of `POST /images/create?fromSrc=` (an import), as dockerd takes it: empty
/// is the host's; `os` alone gets the host's architecture; case does not matter; only linux
/// images run here, so another OS (or no OS at all) is a 400.
fn import_platform(
    p: Option<&str>,
) -> Result<Option<barge_image::manifest::PlatformSpec>, ApiError> {
    let Some(p) = p.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let lower = p.to_ascii_lowercase();
    let host = barge_image::manifest::PlatformSpec::host();
    let spec = if lower.contains('/') {
        barge_image::manifest::PlatformSpec::parse(&lower)
    } else {
        // An OS alone.
        barge_image::manifest::PlatformSpec::parse(&format!("{lower}/{}", host.architecture))
    }
    .map_err(|e| ApiError::new(400, e))?;
    // Operating systems Go knows but that cannot run here, in dockerd's words; any other
    // name is not an OS at all.
    const OTHER_OS: &[&str] = &[
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "illumos",
        "ios",
        "js",
        "macos",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "wasip1",
        "windows",
        "zos",
    ];
    match spec.os.as_str() {
        "linux" => Ok(Some(spec)),
        os if OTHER_OS.contains(&os) => Err(ApiError::new(
            400,
            format!("invalid platform {p:?}: operating system is not supported"),
        )),
        _ => Err(ApiError::new(
            400,
            format!("invalid platform {p:?}: unknown operating system or architecture"),
        )),
    }
}

pub(crate) async fn system_df(e: Arc<Engine>) -> R {
    let store = e.store.clone();
    // Each layer counts once, however many images share it (dockerd's LayersSize).
    let (list, (_, layers)) =
        blocking(move || Ok((store.list_images()?, store.layers_usage()?))).await?;
    let cs = e.all();
    let images: Vec<Value> = list
        .iter()
        .map(|i| image_summary(i, |_| true, json!({}), &cs))
        .collect();
    let sizes = image_sizes(&list);
    let containers: Vec<Value> = cs
        .iter()
        .map(|c| crate::containers::summary_with_size(&e, c, &sizes))
        .collect();
    let volumes: Vec<Value> = e
        .volumes
        .list()
        .iter()
        .map(|v| crate::volumes::volume_json(&e, v, true))
        .collect();
    Ok(json_response(
        200,
        &json!({"LayersSize": layers, "Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": [], "BuilderSize": 0}),
    ))
}

/// An image's `Config` as dockerd shows it: the Go struct's fields that are never omitted
/// are there (`null`, `""`, `false`) even when the image config lacks them, so clients can
/// index `Config["OnBuild"]`, `Config["Env"]`...
fn docker_image_config(c: Option<&Value>) -> Value {
    let mut v = c.filter(|c| c.is_object()).cloned().unwrap_or(json!({}));
    for (k, default) in [
        ("Hostname", json!("")),
        ("Domainname", json!("")),
        ("User", json!("")),
        ("AttachStdin", json!(false)),
        ("AttachStdout", json!(false)),
        ("AttachStderr", json!(false)),
        ("Tty", json!(false)),
        ("OpenStdin", json!(false)),
        ("StdinOnce", json!(false)),
        ("Env", Value::Null),
        ("Cmd", Value::Null),
        ("Image", json!("")),
        ("Volumes", Value::Null),
        ("WorkingDir", json!("")),
        ("Entrypoint", Value::Null),
        ("OnBuild", Value::Null),
        ("Labels", Value::Null),
    ] {
        if v.get(k).is_none() {
            v[k] = default;
        }
    }
    v
}

/// One image of `GET /images/json` (and of `system df`): `tag_shown` picks the tags listed.
fn image_summary(
    i: &barge_image::image::ImageSummary,
    tag_shown: impl Fn(&barge_image::Reference) -> bool,
    labels: Value,
    containers: &[barge_engine::model::Container],
) -> Value {
    let id = i.id.to_string();
    json!({
        "Id": id,
        "ParentId": "",
        "RepoTags": i.tags.iter().filter(|t| tag_shown(t)).map(|t| t.familiar()).collect::<Vec<_>>(),
        "RepoDigests": [],
        "Created": created_secs(&i.created),
        "Size": i.size,
        "SharedSize": i.shared_size,
        "VirtualSize": i.size,
        "Labels": labels,
        "Containers": containers.iter().filter(|c| c.image_id == id).count(),
    })
}

/// Image id -> size, for containers' `SizeRootFs`.
pub(crate) fn image_sizes(
    list: &[barge_image::image::ImageSummary],
) -> std::collections::HashMap<String, u64> {
    list.iter().map(|i| (i.id.to_string(), i.size)).collect()
}

/// GET/HEAD/PUT /containers/{id}/archive.
pub(crate) async fn archive(
    e: Arc<Engine>,
    m: Method,
    id: &str,
    q: &Query,
    req: Request<Incoming>,
) -> R {
    let c = e.get(id)?;
    let path = q.get("path").unwrap_or("").to_string();
    if path.is_empty() {
        return Err(ApiError::new(400, "path is required".into()));
    }
    let body = if m == Method::PUT {
        read_body(req, 8 << 30).await?
    } else {
        Bytes::new()
    };
    let e2 = e.clone();
    let m2 = m.clone();
    let cid = c.id.clone();
    // dockerd names the container as the client did (its full ID, or its name).
    let reference = id.to_string();
    let in_container = move |err: barge_engine::Error| -> ApiError {
        match err {
            barge_engine::Error::NotFound(m) => ApiError::new(404, format!("{m} {reference}")),
            err => err.into(),
        }
    };
    let (stat, data) = blocking(move || {
        // A path in a volume or bind mount is read from (written to) the mount's source.
        let mounted = barge_engine::archive::in_mount(&c.mount_points, &path);
        if let (Some((mp, _)), true) = (&mounted, m2 == Method::PUT) {
            if !mp.rw {
                return Err(ApiError::new(
                    403,
                    format!("{path}: mounted volume is marked read-only"),
                ));
            }
        }
        let (root, unmount) = match &mounted {
            Some((mp, _)) => (std::path::PathBuf::from(&mp.source), false),
            None => e2.mount_rootfs(&c)?,
        };
        let inner = mounted.map(|(_, p)| p).unwrap_or_else(|| path.clone());
        let r = (|| -> Result<(Option<barge_engine::archive::PathStat>, Vec<u8>), ApiError> {
            if m2 == Method::PUT {
                barge_engine::archive::put(&root, &inner, &body).map_err(&in_container)?;
                return Ok((None, Vec::new()));
            }
            let st = barge_engine::archive::stat_named(&root, &inner, &path)
                .map_err(|err| in_container(barge_engine::archive::path_error(&path, err)))?;
            let data = if m2 == Method::GET {
                barge_engine::archive::get_named(&root, &inner, &path)
                    .map_err(|err| ApiError::new(500, format!("{path}: {err}")))?
            } else {
                Vec::new()
            };
            Ok((Some(st), data))
        })();
        if unmount {
            let _ = barge_image::snapshot::unmount(&root);
        }
        r
    })
    .await?;
    let mut attrs = std::collections::HashMap::new();
    attrs.insert("path".to_string(), q.get("path").unwrap_or("").to_string());
    if m == Method::PUT {
        e.emit("container", "extract-to-dir", &cid, attrs);
    } else if m == Method::GET {
        e.emit("container", "archive-path", &cid, attrs);
    }
    let mut r = if m == Method::PUT {
        status(200)
    } else {
        Response::new(full(data))
    };
    if let Some(st) = stat {
        let hdr = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(&st).unwrap_or_default());
        if let Ok(v) = hyper::header::HeaderValue::from_str(&hdr) {
            r.headers_mut().insert("X-Docker-Container-Path-Stat", v);
        }
        r.headers_mut().insert(
            "Content-Type",
            hyper::header::HeaderValue::from_static("application/x-tar"),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod glob_tests {
    use super::glob_match;

    #[test]
    fn reference_patterns_match_as_go_path_match() {
        assert!(glob_match("busybox", "busybox"));
        assert!(glob_match("busy*", "busybox:latest"));
        assert!(glob_match("*:latest", "busybox:latest"));
        assert!(!glob_match("*", "library/busybox"));
        assert!(glob_match("*/*", "library/busybox"));
        assert!(glob_match("b?sybox", "busybox"));
        assert!(!glob_match("busybox", "busybox:latest"));
        assert!(!glob_match("", "x"));
    }
}
