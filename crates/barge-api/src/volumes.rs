//! `/volumes`: list (filters dangling, name, label, driver), create, inspect, remove, prune.

use std::collections::BTreeMap;
use std::sync::Arc;

use barge_engine::volumes::Volume;
use barge_engine::Engine;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{json, Value};

use crate::util::{json_response, status, ApiError, Body, Query};

type R = Result<Response<Body>, ApiError>;

/// A volume in Docker's shape.
pub(crate) fn volume_json(e: &Engine, v: &Volume, usage: bool) -> Value {
    let mut j = json!({
        "Name": v.name, "Driver": v.driver, "Mountpoint": e.volumes.mountpoint(&v.name),
        "CreatedAt": v.created_at, "Labels": v.labels, "Scope": "local",
        "Options": if v.options.is_empty() { Value::Null } else { json!(v.options) },
    });
    if usage {
        j["UsageData"] = json!({"Size": e.volumes.size(&v.name),
            "RefCount": e.volume_users(&v.name).len()});
    }
    j
}

fn labels_match(v: &Volume, wanted: &[String]) -> bool {
    crate::util::labels_match(|k| v.labels.get(k).map(String::as_str), wanted)
}

/// Routes `/volumes...` (`rest` after "volumes").
pub(crate) async fn dispatch(
    e: Arc<Engine>,
    m: Method,
    rest: &[&str],
    q: &Query,
    req: Request<Incoming>,
) -> R {
    match (&m, rest) {
        (&Method::GET, []) => {
            let f = q.filters_of(&["dangling", "driver", "label", "name"])?;
            let mut out = Vec::new();
            for v in e.volumes.list() {
                if let Some(d) = f.get("dangling") {
                    let dangling = e.volume_users(&v.name).is_empty();
                    if d.iter().any(|x| (x == "true" || x == "1") != dangling) {
                        continue;
                    }
                }
                if let Some(n) = f.get("name") {
                    if !n.iter().any(|x| v.name.contains(x.as_str())) {
                        continue;
                    }
                }
                if let Some(d) = f.get("driver") {
                    if !d.contains(&v.driver) {
                        continue;
                    }
                }
                if let Some(l) = f.get("label") {
                    if !labels_match(&v, l) {
                        continue;
                    }
                }
                out.push(volume_json(&e, &v, false));
            }
            Ok(json_response(
                200,
                &json!({"Volumes": out, "Warnings": null}),
            ))
        }
        (&Method::POST, ["create"]) => {
            let v =
                crate::decode::read_json(crate::decode::Kind::VolumeCreate, req, 1 << 20).await?;
            let driver = v.get("Driver").and_then(Value::as_str).unwrap_or("local");
            if !driver.is_empty() && driver != "local" {
                return Err(ApiError::new(
                    404,
                    format!("error looking up volume plugin {driver}: plugin {driver:?} not found"),
                ));
            }
            let map = |k: &str| -> BTreeMap<String, String> {
                v.get(k)
                    .and_then(Value::as_object)
                    .map(|o| {
                        o.iter()
                            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let name = v.get("Name").and_then(Value::as_str);
            // As dockerd: a volume created without a name is anonymous (prune's default).
            let anonymous = name.is_none_or(str::is_empty);
            let vol = e
                .volumes
                .create(name, map("Labels"), map("DriverOpts"), anonymous)?;
            e.emit(
                "volume",
                "create",
                &vol.name,
                [("driver".to_string(), vol.driver.clone())].into(),
            );
            Ok(json_response(201, &volume_json(&e, &vol, false)))
        }
        (&Method::POST, ["prune"]) => {
            let f = q.filters()?;
            // As dockerd: no `until` for volumes. Since API 1.42 prune takes only anonymous
            // volumes unless `all` is set; before, it took every unused local volume.
            let pf = crate::util::PruneFilters::parse(&f, false, &["all"])?;
            let all = q.api_before(42)
                || f.get("all")
                    .is_some_and(|a| a.iter().any(|x| x == "true" || x == "1"));
            let (names, freed) = e.volume_prune(all, |v| {
                pf.selects(0.0, |k| v.labels.get(k).map(String::as_str))
            });
            Ok(json_response(
                200,
                &json!({"VolumesDeleted": names, "SpaceReclaimed": freed}),
            ))
        }
        (&Method::GET, [name]) => {
            let v = e.volumes.get(name)?;
            Ok(json_response(200, &volume_json(&e, &v, false)))
        }
        (&Method::DELETE, [name]) => {
            e.volume_remove(name, q.bool("force"))?;
            Ok(status(204))
        }
        _ => Err(ApiError::new(
            404,
            format!("page not found: {m} /volumes/{}", rest.join("/")),
        )),
    }
}
