//! System verbs: version, info, events, login/logout, system df/prune, `<object> prune`.

use super::out::{err, errln, out, outln};
use std::io::{BufRead, Write};

use hyper::Method;
use serde_json::{json, Value};

use super::args::*;
use super::client::{filters_json, query, Client, API_VERSION};
use super::container::time_arg;
use super::error::{Error, Result};
use super::format::{
    as_context, context_json, human_size4 as human_size, tabulate, unescape, ListFormat, Template,
};
use super::image::registry_of;
use super::stream::JsonLines;

fn tmpl(f: &str) -> Result<Template> {
    Template::parse(&unescape(f)).map_err(|e| Error::Usage(e.to_string()))
}

/// `version`
pub async fn version(c: &Client, a: FormatOnly) -> Result<()> {
    let client = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": API_VERSION,
        "APIVersion": API_VERSION,
        "GoVersion": "n/a (Rust)",
        "Os": std::env::consts::OS,
        "Arch": std::env::consts::ARCH,
        "Platform": {"Name": "barge"},
    });
    let server = c.get_json("/version").await.map(|mut s| {
        // docker's templates name Go fields: APIVersion beside the JSON's ApiVersion.
        if let Some(v) = s.get("ApiVersion").cloned() {
            s["APIVersion"] = v;
        }
        s
    });
    let data = json!({"Client": client, "Server": server.as_ref().ok()});
    if let Some(f) = a.format.as_deref() {
        if f == "json" {
            outln!("{data}");
        } else {
            outln!(
                "{}",
                tmpl(f)?
                    .render(&data)
                    .map_err(|e| Error::Usage(e.to_string()))?
            );
        }
        return server.map(|_| ());
    }
    let mut out = String::new();
    out.push_str("Client:\n");
    out.push_str(&format!(
        " Version:\t{}\n",
        client["Version"].as_str().unwrap_or("")
    ));
    out.push_str(&format!(" API version:\t{API_VERSION}\n"));
    out.push_str(&format!(
        " OS/Arch:\t{}/{}\n",
        std::env::consts::OS,
        std::env::consts::ARCH
    ));
    out!("{}", tabulate(&out));
    let s = server?;
    let g = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let mut out = String::new();
    let name = s
        .pointer("/Platform/Name")
        .and_then(|v| v.as_str())
        .unwrap_or("Engine");
    if name.is_empty() {
        out.push_str("\nServer:\n Engine:\n");
    } else {
        out.push_str(&format!("\nServer: {name}\n Engine:\n"));
    }
    out.push_str(&format!("  Version:\t{}\n", g("Version")));
    out.push_str(&format!(
        "  API version:\t{} (minimum version {})\n",
        g("ApiVersion"),
        g("MinAPIVersion")
    ));
    out.push_str(&format!("  Go version:\t{}\n", g("GoVersion")));
    out.push_str(&format!("  Git commit:\t{}\n", g("GitCommit")));
    out.push_str(&format!("  OS/Arch:\t{}/{}\n", g("Os"), g("Arch")));
    out!("{}", tabulate(&out));
    Ok(())
}

/// `info`
pub async fn info(c: &Client, a: FormatOnly) -> Result<()> {
    let i = c.get_json("/info").await?;
    if let Some(f) = a.format.as_deref() {
        if f == "json" {
            outln!("{i}");
        } else {
            outln!(
                "{}",
                tmpl(f)?
                    .render(&i)
                    .map_err(|e| Error::Usage(e.to_string()))?
            );
        }
        return Ok(());
    }
    let g = |k: &str| match i.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(v) if !v.is_null() => v.to_string(),
        _ => String::new(),
    };
    let mut o = String::new();
    o.push_str("Server:\n");
    o.push_str(&format!(" Containers: {}\n", g("Containers")));
    o.push_str(&format!("  Running: {}\n", g("ContainersRunning")));
    o.push_str(&format!("  Paused: {}\n", g("ContainersPaused")));
    o.push_str(&format!("  Stopped: {}\n", g("ContainersStopped")));
    o.push_str(&format!(" Images: {}\n", g("Images")));
    o.push_str(&format!(" Server Version: {}\n", g("ServerVersion")));
    o.push_str(&format!(" Storage Driver: {}\n", g("Driver")));
    o.push_str(&format!(" Logging Driver: {}\n", g("LoggingDriver")));
    o.push_str(&format!(" Cgroup Driver: {}\n", g("CgroupDriver")));
    o.push_str(&format!(" Cgroup Version: {}\n", g("CgroupVersion")));
    o.push_str(&format!(" Default Runtime: {}\n", g("DefaultRuntime")));
    o.push_str(&format!(" Kernel Version: {}\n", g("KernelVersion")));
    o.push_str(&format!(" Operating System: {}\n", g("OperatingSystem")));
    o.push_str(&format!(" OSType: {}\n", g("OSType")));
    o.push_str(&format!(" Architecture: {}\n", g("Architecture")));
    o.push_str(&format!(" CPUs: {}\n", g("NCPU")));
    o.push_str(&format!(
        " Total Memory: {}\n",
        super::format::bytes_size(i.get("MemTotal").and_then(|v| v.as_f64()).unwrap_or(0.0))
    ));
    o.push_str(&format!(" Name: {}\n", g("Name")));
    o.push_str(&format!(" ID: {}\n", g("ID")));
    o.push_str(&format!(" Docker Root Dir: {}\n", g("DockerRootDir")));
    o.push_str(&format!(" Debug Mode: {}\n", g("Debug")));
    // As docker: the registries reached without TLS (IndexConfigs not Secure, then CIDRs).
    let reg = i.get("RegistryConfig");
    let mut insecure: Vec<String> = reg
        .and_then(|r| r.get("IndexConfigs"))
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|v| v.get("Secure") == Some(&Value::Bool(false)))
        .filter_map(|v| v.get("Name").and_then(Value::as_str).map(str::to_string))
        .collect();
    insecure.extend(
        reg.and_then(|r| r.get("InsecureRegistryCIDRs"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string)),
    );
    if !insecure.is_empty() {
        o.push_str(" Insecure Registries:\n");
        for r in insecure {
            o.push_str(&format!("  {r}\n"));
        }
    }
    out!("{o}");
    for w in i
        .get("Warnings")
        .and_then(|w| w.as_array())
        .into_iter()
        .flatten()
    {
        errln!("{}", w.as_str().unwrap_or(""));
    }
    Ok(())
}

/// `events`
pub async fn events(c: &Client, a: EventsArgs) -> Result<()> {
    let mut q = vec![];
    if let Some(s) = &a.since {
        q.push(("since", time_arg(s)?));
    }
    if let Some(s) = &a.until {
        q.push(("until", time_arg(s)?));
    }
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let t = match a.format.as_deref() {
        None | Some("json") => None,
        Some(f) => Some(tmpl(f)?),
    };
    let json_out = a.format.as_deref() == Some("json");
    let mut body = c
        .call(Method::GET, &format!("/events{}", query(&q)), None, &[])
        .await?;
    let mut lines = JsonLines::default();
    while let Some(ch) = body.chunk().await? {
        for e in lines.push(&ch) {
            let line = if json_out {
                e.to_string()
            } else if let Some(t) = &t {
                t.render(&e).map_err(|e| Error::Usage(e.to_string()))?
            } else {
                event_line(&e)
            };
            let mut o = super::out::stdout();
            let _ = writeln!(o, "{line}");
            let _ = o.flush();
        }
    }
    Ok(())
}

/// Docker's default event line: `2024-01-02T03:04:05.000000000Z container start <id> (k=v, ...)`.
fn event_line(e: &Value) -> String {
    let nanos = e.get("timeNano").and_then(|v| v.as_i64()).unwrap_or(0);
    let secs = nanos.div_euclid(1_000_000_000);
    let t = super::container::go_time(secs);
    // go_time gives "YYYY-MM-DD HH:MM:SS +0000 UTC"; docker prints RFC3339Nano-ish local time.
    let ts = format!(
        "{}T{}.{:09}Z",
        &t[..10],
        &t[11..19],
        nanos.rem_euclid(1_000_000_000)
    );
    let typ = e.get("Type").and_then(|v| v.as_str()).unwrap_or("");
    let action = e.get("Action").and_then(|v| v.as_str()).unwrap_or("");
    let id = e
        .pointer("/Actor/ID")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let mut attrs: Vec<String> = e
        .pointer("/Actor/Attributes")
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    attrs.sort();
    if attrs.is_empty() {
        format!("{ts} {typ} {action} {id}")
    } else {
        format!("{ts} {typ} {action} {id} ({})", attrs.join(", "))
    }
}

/// `login`
pub async fn login(c: &Client, a: LoginArgs, config: Option<&str>) -> Result<()> {
    let server = a
        .server
        .clone()
        .unwrap_or_else(|| "https://index.docker.io/v1/".into());
    let server =
        registry_of(&format!("{server}/x")).replace("https://index.docker.io/v1/", &server);
    let user = match &a.username {
        Some(u) => u.clone(),
        None => {
            err!("Username: ");
            let mut s = String::new();
            std::io::stdin().lock().read_line(&mut s)?;
            s.trim().to_string()
        }
    };
    let pass = if a.password_stdin {
        if a.password.is_some() {
            return Err(Error::Usage(
                "--password and --password-stdin are mutually exclusive".into(),
            ));
        }
        let mut s = String::new();
        std::io::stdin().lock().read_line(&mut s)?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = &a.password {
        errln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else {
        return Err(Error::Usage(
            "password required: use --password-stdin (no interactive prompt)".into(),
        ));
    };
    if user.is_empty() {
        return Err(Error::Usage("Error: Non-null Username Required".into()));
    }
    let r = c
        .post_json(
            "/auth",
            Some(&json!({"username": user, "password": pass, "serveraddress": server})),
        )
        .await?;
    let dir = config.map(std::path::Path::new);
    let creds = barge_image::auth::Credentials {
        username: user,
        password: pass,
    };
    let registry = barge_image::registry::normalize_registry(&server);
    let store = barge_image::auth::store_credentials(dir, &registry, &creds)
        .map_err(|e| Error::Msg(format!("error saving credentials: {e}")))?;
    if store == barge_image::auth::CredentialStore::File {
        let p = barge_image::auth::docker_config_dir(dir)
            .map(|d| d.join("config.json"))
            .map_err(|e| Error::Msg(e.to_string()))?;
        errln!(
            "WARNING! Your password will be stored unencrypted in {}.",
            p.display()
        );
    }
    outln!(
        "{}",
        r.get("Status")
            .and_then(|s| s.as_str())
            .unwrap_or("Login Succeeded")
    );
    Ok(())
}

/// `logout` (no daemon needed): removes the credentials from the client config and from
/// its credential helper.
pub fn logout(server: Option<&str>, config: Option<&str>) -> Result<()> {
    let server = server.unwrap_or("https://index.docker.io/v1/").to_string();
    let registry = barge_image::registry::normalize_registry(&server);
    let removed =
        barge_image::auth::remove_credentials(config.map(std::path::Path::new), &registry)
            .map_err(|e| Error::Msg(format!("error removing credentials: {e}")))?;
    if removed {
        outln!("Removing login credentials for {server}");
    } else {
        outln!("Not logged in to {server}");
    }
    Ok(())
}

/// `system df`
pub async fn df(c: &Client, a: DfArgs) -> Result<()> {
    let d = c.get_json("/system/df").await?;
    let arr = |k: &str| {
        d.get(k)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let images = arr("Images");
    let containers = arr("Containers");
    let volumes = arr("Volumes");
    let cache = arr("BuildCache");
    let f64of = |v: &Value, k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
    // As docker: the images' size is the layers' (shared once), the reclaimable part what
    // images without containers hold beyond the layers they share.
    let img_size: f64 = d
        .get("LayersSize")
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| images.iter().map(|i| f64of(i, "Size")).sum());
    let img_active = images
        .iter()
        .filter(|i| f64of(i, "Containers") > 0.0)
        .count();
    let img_used: f64 = images
        .iter()
        .filter(|i| f64of(i, "Containers") != 0.0)
        .filter(|i| f64of(i, "Size") >= 0.0 && f64of(i, "SharedSize") >= 0.0)
        .map(|i| f64of(i, "Size") - f64of(i, "SharedSize"))
        .sum();
    let img_reclaim = (img_size - img_used).max(0.0);
    let ctr_size: f64 = containers.iter().map(|i| f64of(i, "SizeRw")).sum();
    let ctr_active = containers
        .iter()
        .filter(|c| {
            matches!(
                c.get("State").and_then(|s| s.as_str()),
                Some("running" | "paused")
            )
        })
        .count();
    let ctr_reclaim: f64 = containers
        .iter()
        .filter(|c| {
            !matches!(
                c.get("State").and_then(|s| s.as_str()),
                Some("running" | "paused")
            )
        })
        .map(|i| f64of(i, "SizeRw"))
        .sum();
    let vsize = |v: &Value| {
        v.pointer("/UsageData/Size")
            .and_then(|x| x.as_f64())
            .unwrap_or(0.0)
            .max(0.0)
    };
    let vol_size: f64 = volumes.iter().map(vsize).sum();
    let vol_active = volumes
        .iter()
        .filter(|v| {
            v.pointer("/UsageData/RefCount")
                .and_then(|x| x.as_i64())
                .unwrap_or(0)
                > 0
        })
        .count();
    let vol_reclaim: f64 = volumes
        .iter()
        .filter(|v| {
            v.pointer("/UsageData/RefCount")
                .and_then(|x| x.as_i64())
                .unwrap_or(0)
                <= 0
        })
        .map(vsize)
        .sum();
    let shared = |c: &&Value| c.get("Shared").and_then(|x| x.as_bool()).unwrap_or(false);
    let in_use = |c: &&Value| c.get("InUse").and_then(|x| x.as_bool()).unwrap_or(false);
    let cache_size: f64 = cache
        .iter()
        .filter(|c| !shared(c))
        .map(|i| f64of(i, "Size"))
        .sum();
    let cache_reclaim: f64 = cache
        .iter()
        .filter(|c| !shared(c) && !in_use(c))
        .map(|i| f64of(i, "Size"))
        .sum();
    let cache_active = cache
        .iter()
        .filter(|c| c.get("InUse").and_then(|x| x.as_bool()).unwrap_or(false))
        .count();
    let pct = |r: f64, t: f64| {
        if t > 0.0 && r > 0.0 {
            format!("{} ({:.0}%)", human_size(r), r / t * 100.0)
        } else {
            human_size(r)
        }
    };
    let rows = vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": img_active.to_string(), "Size": human_size(img_size), "Reclaimable": if img_size > 0.0 { format!("{} ({}%)", human_size(img_reclaim), (img_reclaim * 100.0 / img_size).floor()) } else { human_size(img_reclaim) }}),
        json!({"Type": "Containers", "TotalCount": containers.len().to_string(), "Active": ctr_active.to_string(), "Size": human_size(ctr_size), "Reclaimable": pct(ctr_reclaim, ctr_size)}),
        json!({"Type": "Local Volumes", "TotalCount": volumes.len().to_string(), "Active": vol_active.to_string(), "Size": human_size(vol_size), "Reclaimable": pct(vol_reclaim, vol_size)}),
        json!({"Type": "Build Cache", "TotalCount": cache.len().to_string(), "Active": cache_active.to_string(), "Size": human_size(cache_size), "Reclaimable": human_size(cache_reclaim)}),
    ];
    if a.verbose {
        return df_verbose(a.format.as_deref(), &images, &containers, &volumes, &cache);
    }
    let f = ListFormat::new(
        a.format.as_deref(),
        "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        &[
            ("Type", "TYPE"),
            ("TotalCount", "TOTAL"),
            ("Active", "ACTIVE"),
            ("Size", "SIZE"),
            ("Reclaimable", "RECLAIMABLE"),
        ],
    )
    .map_err(|e| Error::Usage(e.to_string()))?;
    out!(
        "{}",
        f.render(&rows).map_err(|e| Error::Usage(e.to_string()))?
    );
    Ok(())
}

/// `system df -v`: docker's four tables (images, containers, local volumes, build cache),
/// or, with `--format`, the template over `.Images`, `.Containers`, `.Volumes` and
/// `.BuildCache`, each a list of rows with the tables' fields.
fn df_verbose(
    format: Option<&str>,
    images: &[Value],
    containers: &[Value],
    volumes: &[Value],
    cache: &[Value],
) -> Result<()> {
    use super::container::{now_unix, ps_row, short_id, split_ref};
    use super::format::human_duration;
    use super::image::image_row;
    let ago = |t: i64| format!("{} ago", human_duration(now_unix() - t));
    // A --format template sees untruncated ids and commands, as docker's.
    let custom = format.filter(|f| !f.is_empty() && *f != "table");
    let trunc = custom.is_none();
    let image_rows: Vec<Value> = images
        .iter()
        .map(|i| {
            // Only the first tag, as docker's df (dangling images show <none>).
            let (repo, tag) = match i
                .get("RepoTags")
                .and_then(|t| t.as_array())
                .and_then(|t| t.first())
                .and_then(|t| t.as_str())
                .filter(|t| *t != "<none>:<none>")
            {
                Some(t) => {
                    let (r, tg) = split_ref(t);
                    (r, if tg.is_empty() { "<none>".into() } else { tg })
                }
                None => ("<none>".to_string(), "<none>".to_string()),
            };
            let id = i.get("Id").and_then(|x| x.as_str()).unwrap_or("");
            let id = if trunc { short_id(id) } else { id.to_string() };
            image_row(i, &id, &repo, &tag, "")
        })
        .collect();
    let container_rows: Vec<Value> = containers
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if let Value::Object(m) = &mut c {
                m.remove("SizeRootFs");
            }
            ps_row(&c, !trunc)
        })
        .collect();
    let volume_rows: Vec<Value> = volumes.iter().map(super::netvol::volume_row).collect();
    let cache_rows: Vec<Value> = cache
        .iter()
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(|x| x.as_str()).unwrap_or("");
            let since = |k: &str| {
                super::container::time_arg(s(k))
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                    .map_or(String::new(), |t| ago(t as i64))
            };
            json!({
                "ID": if trunc { short_id(s("ID")) } else { s("ID").to_string() },
                "CacheType": s("Type"),
                "Size": human_size(c.get("Size").and_then(|x| x.as_f64()).unwrap_or(0.0)),
                "CreatedSince": since("CreatedAt"),
                "LastUsedSince": since("LastUsedAt"),
                "UsageCount": c.get("UsageCount").cloned().unwrap_or(json!(0)).to_string(),
                "Shared": c.get("Shared").and_then(|x| x.as_bool()).unwrap_or(false).to_string(),
            })
        })
        .collect();
    let table = |rows: &[Value], default: &str, headers: &[(&str, &str)]| -> Result<String> {
        ListFormat::new(None, default, headers)
            .and_then(|f| f.render(rows))
            .map_err(|e| Error::Usage(e.to_string()))
    };
    if let Some(f) = custom {
        let contexts = |rows: Vec<Value>| -> Value {
            Value::Array(rows.into_iter().map(as_context).collect())
        };
        let (images, containers, volumes, cache) = (
            contexts(image_rows),
            contexts(container_rows),
            contexts(volume_rows),
            contexts(cache_rows),
        );
        // As docker's: the output as the template makes it, without a newline added.
        if f == "json" {
            // Its fields in docker's order (serde_json's maps are sorted).
            let list = |v: &Value| context_json(v).unwrap_or_else(|| "[]".into());
            out!(
                "{{\"Images\":{},\"Containers\":{},\"Volumes\":{},\"BuildCache\":{}}}",
                list(&images),
                list(&containers),
                list(&volumes),
                list(&cache)
            );
            return Ok(());
        }
        let data = json!({
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": cache,
        });
        let t = Template::parse(&unescape(f)).map_err(|e| Error::Usage(e.to_string()))?;
        out!(
            "{}",
            t.render(&data).map_err(|e| Error::Usage(e.to_string()))?
        );
        return Ok(());
    }
    out!("Images space usage:\n\n");
    out!(
        "{}",
        table(
            &image_rows,
            "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
            &[
                ("Repository", "REPOSITORY"),
                ("Tag", "TAG"),
                ("ID", "IMAGE ID"),
                ("CreatedSince", "CREATED"),
                ("Size", "SIZE"),
                ("SharedSize", "SHARED SIZE"),
                ("UniqueSize", "UNIQUE SIZE"),
                ("Containers", "CONTAINERS"),
            ],
        )?
    );
    out!("\nContainers space usage:\n\n");
    out!(
        "{}",
        table(
            &container_rows,
            "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
            &[
                ("ID", "CONTAINER ID"),
                ("Image", "IMAGE"),
                ("Command", "COMMAND"),
                ("LocalVolumes", "LOCAL VOLUMES"),
                ("Size", "SIZE"),
                ("RunningFor", "CREATED"),
                ("Status", "STATUS"),
                ("Names", "NAMES"),
            ],
        )?
    );
    out!("\nLocal Volumes space usage:\n\n");
    out!(
        "{}",
        table(
            &volume_rows,
            "{{.Name}}\t{{.Links}}\t{{.Size}}",
            &[
                ("Name", "VOLUME NAME"),
                ("Links", "LINKS"),
                ("Size", "SIZE")
            ],
        )?
    );
    let cache_size: f64 = cache
        .iter()
        .filter(|c| !c.get("Shared").and_then(|x| x.as_bool()).unwrap_or(false))
        .filter_map(|c| c.get("Size").and_then(|x| x.as_f64()))
        .sum();
    out!("\nBuild cache usage: {}\n\n", human_size(cache_size));
    out!(
        "{}",
        table(
            &cache_rows,
            "{{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
            &[
                ("ID", "CACHE ID"),
                ("CacheType", "CACHE TYPE"),
                ("Size", "SIZE"),
                ("CreatedSince", "CREATED"),
                ("LastUsedSince", "LAST USED"),
                ("UsageCount", "USAGE"),
                ("Shared", "SHARED"),
            ],
        )?
    );
    Ok(())
}

fn confirm(what: &str, force: bool) -> Result<bool> {
    if force {
        return Ok(true);
    }
    err!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
    let mut s = String::new();
    std::io::stdin().lock().read_line(&mut s)?;
    Ok(matches!(s.trim().to_lowercase().as_str(), "y" | "yes"))
}

async fn do_prune(c: &Client, kind: &str, all: bool, filters: &[String]) -> Result<f64> {
    let mut f = filters.to_vec();
    if kind == "images" {
        f.push(format!("dangling={}", !all));
    }
    let mut q = vec![];
    if kind == "build" && all {
        q.push(("all", "1".to_string()));
    }
    if let Some(j) = filters_json(&f)? {
        q.push(("filters", j));
    }
    let path = if kind == "build" {
        format!("/build/prune{}", query(&q))
    } else {
        format!("/{kind}/prune{}", query(&q))
    };
    let r = c.post_json(&path, None).await?;
    let (list_key, label) = match kind {
        "containers" => ("ContainersDeleted", "Deleted Containers:"),
        "images" => ("ImagesDeleted", "Deleted Images:"),
        "networks" => ("NetworksDeleted", "Deleted Networks:"),
        "volumes" => ("VolumesDeleted", "Deleted Volumes:"),
        _ => ("CachesDeleted", "Deleted build cache objects:"),
    };
    if let Some(l) = r
        .get(list_key)
        .and_then(|v| v.as_array())
        .filter(|l| !l.is_empty())
    {
        outln!("{label}");
        for i in l {
            match i {
                Value::String(s) => outln!("{s}"),
                Value::Object(m) => {
                    for (k, v) in m {
                        outln!("{k}: {}", v.as_str().unwrap_or(""));
                    }
                }
                _ => {}
            }
        }
        outln!();
    }
    Ok(r.get("SpaceReclaimed")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0))
}

/// `container|image|network|volume|builder prune` (`kind` is the API's path segment).
pub async fn prune_one(c: &Client, kind: &str, a: PruneArgs) -> Result<()> {
    let what = match kind {
        "containers" => "all stopped containers",
        "images" if a.all => "all images without at least one container associated to them",
        "images" => "all dangling images",
        "networks" => "all custom networks not used by at least one container",
        "volumes" => "all local volumes not used by at least one container",
        _ => "all dangling build cache",
    };
    if !confirm(what, a.force)? {
        return Ok(());
    }
    let reclaimed = do_prune(
        c,
        if kind == "networks" { "networks" } else { kind },
        a.all,
        &a.filter,
    )
    .await?;
    if kind != "networks" {
        outln!("Total reclaimed space: {}", human_size(reclaimed));
    }
    Ok(())
}

/// `system prune`
pub async fn prune(c: &Client, a: SystemPruneArgs) -> Result<()> {
    let mut what =
        "all stopped containers, all networks not used by at least one container".to_string();
    if a.volumes {
        what.push_str(", all anonymous volumes not used by at least one container");
    }
    what.push_str(if a.all {
        ", all images without at least one container associated to them, all build cache"
    } else {
        ", all dangling images, all dangling build cache"
    });
    if !confirm(&what, a.force)? {
        return Ok(());
    }
    let mut total = 0.0;
    total += do_prune(c, "containers", false, &a.filter).await?;
    do_prune(c, "networks", false, &a.filter).await?;
    if a.volumes {
        total += do_prune(c, "volumes", false, &a.filter).await?;
    }
    total += do_prune(c, "images", a.all, &a.filter).await?;
    match do_prune(c, "build", a.all, &a.filter).await {
        Ok(t) => total += t,
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    outln!("Total reclaimed space: {}", human_size(total));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines() {
        let e = json!({"Type": "container", "Action": "start", "timeNano": 1_700_000_000_123_456_789i64,
                       "Actor": {"ID": "abc", "Attributes": {"name": "x", "image": "busybox"}}});
        assert_eq!(
            event_line(&e),
            "2023-11-14T22:13:20.123456789Z container start abc (image=busybox, name=x)"
        );
    }

    #[test]
    fn logout_edits_config() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_str().unwrap();
        std::fs::write(
            d.path().join("config.json"),
            r#"{"auths":{"r.example:5000":{"auth":"eDp5"},"keep":{"auth":"a"}}}"#,
        )
        .unwrap();
        logout(Some("r.example:5000"), Some(dir)).unwrap();
        let v: Value =
            serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
        assert!(v["auths"].get("r.example:5000").is_none());
        assert!(v["auths"].get("keep").is_some());
    }
}
