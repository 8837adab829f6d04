//! `/networks...`: list, inspect, create, remove, connect, disconnect, prune, on top of
//! barge-network's manager (plus Docker's pre-defined `host` and `none`).

use std::collections::BTreeMap;
use std::sync::Arc;

use barge_engine::engine::net::net_error;
use barge_engine::Engine;
use barge_network::{Ipv4Net, Ipv6Net, NetworkError, NetworkManager, NetworkSpec};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{json, Value};

use crate::util::{json_response, status, ApiError, Body, Query};

type R = Result<Response<Body>, ApiError>;

fn err(e: NetworkError) -> ApiError {
    match e {
        NetworkError::Predefined(_) => ApiError::new(403, e.to_string()),
        e => net_error(e).into(),
    }
}

fn nm(e: &Engine) -> Result<Arc<NetworkManager>, ApiError> {
    e.network_manager()
        .ok_or_else(|| ApiError::new(501, "networking is not enabled in this daemon".into()))
}

async fn blocking<T: Send + 'static>(
    nm: Arc<NetworkManager>,
    f: impl FnOnce(&NetworkManager) -> Result<T, NetworkError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || f(&nm))
        .await
        .map_err(|e| ApiError::new(500, e.to_string()))?
        .map_err(err)
}

/// Docker's pre-defined networks that are not bridges.
fn special(name: &str) -> Option<Value> {
    let driver = match name {
        "host" => "host",
        "none" => "null",
        _ => return None,
    };
    Some(json!({
        "Name": name, "Id": name, "Created": "0001-01-01T00:00:00Z", "Scope": "local",
        "Driver": driver, "EnableIPv4": false, "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": []},
        "Internal": false, "Attachable": false, "Ingress": false,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
        "Containers": {}, "Options": {}, "Labels": {},
    }))
}

fn list(e: Arc<Engine>, q: &Query) -> R {
    let filters = q.filters_of(&["dangling", "driver", "id", "label", "name", "scope", "type"])?;
    let nm = nm(&e)?;
    let mut all: Vec<Value> = nm
        .list()
        .into_iter()
        .map(|n| {
            let eps = nm.inspect(&n.id).map(|x| x.1).unwrap_or_default();
            n.to_docker(&eps)
        })
        .collect();
    all.extend(["host", "none"].iter().filter_map(|n| special(n)));
    let out: Vec<Value> = all
        .into_iter()
        .filter(|v| {
            let name = v["Name"].as_str().unwrap_or_default();
            let id = v["Id"].as_str().unwrap_or_default();
            let builtin = matches!(name, "bridge" | "host" | "none");
            filters.iter().all(|(k, vals)| {
                if k == "label" {
                    return crate::util::json_labels_match(v.get("Labels"), vals);
                }
                vals.iter().any(|f| match k.as_str() {
                    "name" => name.contains(f.as_str()),
                    "id" => id.starts_with(f.as_str()),
                    "driver" => v["Driver"].as_str() == Some(f.as_str()),
                    "scope" => f == "local",
                    "type" => match f.as_str() {
                        "builtin" => builtin,
                        "custom" => !builtin,
                        _ => false,
                    },
                    "dangling" => {
                        let empty = v["Containers"].as_object().is_none_or(|m| m.is_empty());
                        (f == "true" || f == "1") == (empty && !builtin)
                    }
                    _ => true,
                })
            })
        })
        .collect();
    Ok(json_response(200, &Value::Array(out)))
}

async fn inspect(e: Arc<Engine>, id: &str) -> R {
    if let Some(v) = special(id) {
        return Ok(json_response(200, &v));
    }
    let id = id.to_string();
    let (info, eps) = blocking(nm(&e)?, move |nm| nm.inspect(&id)).await?;
    Ok(json_response(200, &info.to_docker(&eps)))
}

fn parse_net(s: &str, what: &str) -> Result<Ipv4Net, ApiError> {
    s.parse::<Ipv4Net>()
        .map_err(|_| ApiError::new(400, format!("invalid {what} {s:?}: want an IPv4 CIDR")))
}

fn parse_net6(s: &str, what: &str) -> Result<Ipv6Net, ApiError> {
    s.parse::<Ipv6Net>()
        .map_err(|_| ApiError::new(400, format!("invalid {what} {s:?}: want an IPv6 CIDR")))
}

/// An IPAM config's `AuxiliaryAddresses` (name -> address; the decoder checked the shape),
/// kept as sent: the network manager validates them against the subnet.
fn aux_addresses(c: &Value) -> BTreeMap<String, String> {
    c.get("AuxiliaryAddresses")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

async fn create(e: Arc<Engine>, req: Request<Incoming>) -> R {
    let v = crate::decode::read_json(crate::decode::Kind::NetworkCreate, req, 1 << 20).await?;
    let name = v
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err(ApiError::new(400, "network name must not be empty".into()));
    }
    if special(&name).is_some() || name == "bridge" {
        return Err(ApiError::new(
            403,
            format!("{name} is a pre-defined network and cannot be created"),
        ));
    }
    match v.get("Driver").and_then(Value::as_str).unwrap_or("") {
        "" | "bridge" => {}
        d => {
            return Err(ApiError::new(
                400,
                format!("network driver {d:?} is not supported: barge has bridge networks only"),
            ))
        }
    }
    let mut spec = NetworkSpec {
        name,
        internal: v.get("Internal").and_then(Value::as_bool).unwrap_or(false),
        ..Default::default()
    };
    if let Some(l) = v.get("Labels").and_then(Value::as_object) {
        spec.labels = l
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect::<BTreeMap<_, _>>();
    }
    let configs = v
        .get("IPAM")
        .and_then(|i| i.get("Config"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // One IPv4 and one IPv6 config at most, told apart by their subnet (a config without
    // one is IPv4's, as dockerd reads it).
    let (mut v4, mut v6) = (None, None);
    for c in &configs {
        let slot = match c.get("Subnet").and_then(Value::as_str) {
            Some(s) if s.contains(':') => &mut v6,
            _ => &mut v4,
        };
        if slot.replace(c).is_some() {
            return Err(ApiError::new(
                400,
                "only one IPv4 and one IPv6 IPAM config (subnet) per network are supported".into(),
            ));
        }
    }
    if let Some(c) = v4 {
        let s = |k: &str| c.get(k).and_then(Value::as_str).filter(|x| !x.is_empty());
        spec.subnet = s("Subnet").map(|x| parse_net(x, "subnet")).transpose()?;
        spec.ip_range = s("IPRange").map(|x| parse_net(x, "ip-range")).transpose()?;
        spec.gateway = s("Gateway")
            .map(|x| {
                x.parse().map_err(|_| {
                    ApiError::new(400, format!("invalid gateway {x:?}: want an IPv4 address"))
                })
            })
            .transpose()?;
        spec.aux_addresses = aux_addresses(c);
        if spec.subnet.is_none()
            && (spec.gateway.is_some() || spec.ip_range.is_some() || !spec.aux_addresses.is_empty())
        {
            return Err(ApiError::new(
                400,
                "a gateway, ip-range or auxiliary address needs a subnet".into(),
            ));
        }
    }
    if let Some(c) = v6 {
        spec.aux_addresses6 = aux_addresses(c);
        let s = |k: &str| c.get(k).and_then(Value::as_str).filter(|x| !x.is_empty());
        spec.subnet6 = s("Subnet").map(|x| parse_net6(x, "subnet")).transpose()?;
        spec.ip_range6 = s("IPRange")
            .map(|x| parse_net6(x, "ip-range"))
            .transpose()?;
        spec.gateway6 = s("Gateway")
            .map(|x| {
                x.parse().map_err(|_| {
                    ApiError::new(400, format!("invalid gateway {x:?}: want an IPv6 address"))
                })
            })
            .transpose()?;
    }
    // `EnableIPv6` unset with an IPv6 subnet turns IPv6 on (as podman does; dockerd keeps
    // such a config but gives no container an IPv6 address, which docker-py's tests and
    // users asking for `--subnet fd00::/64` do not expect); `false` with one is refused.
    spec.ipv6 = match v.get("EnableIPv6").and_then(Value::as_bool) {
        Some(b) => b,
        None => spec.subnet6.is_some(),
    };
    let info = blocking(nm(&e)?, move |nm| nm.create_network(spec)).await?;
    e.emit(
        "network",
        "create",
        &info.id,
        [
            ("name".to_string(), info.name.clone()),
            ("type".to_string(), "bridge".to_string()),
        ]
        .into(),
    );
    Ok(json_response(201, &json!({"Id": info.id, "Warning": ""})))
}

async fn remove(e: Arc<Engine>, id: &str) -> R {
    if special(id).is_some() {
        return Err(ApiError::new(
            403,
            format!("{id} is a pre-defined network and cannot be removed"),
        ));
    }
    let nm = nm(&e)?;
    let id2 = id.to_string();
    let (info, _) = blocking(nm.clone(), move |nm| nm.inspect(&id2)).await?;
    let nid = info.id.clone();
    blocking(nm, move |nm| nm.remove_network(&nid)).await?;
    e.emit(
        "network",
        "destroy",
        &info.id,
        [
            ("name".to_string(), info.name.clone()),
            ("type".to_string(), "bridge".to_string()),
        ]
        .into(),
    );
    Ok(status(204))
}

/// `POST /networks/prune`: user networks without endpoints, filtered by `until` and
/// `label`/`label!`.
async fn prune(e: Arc<Engine>, q: &Query) -> R {
    let pf = crate::util::PruneFilters::parse(&q.filters()?, true, &[])?;
    // Without networking there is no user network to prune: an empty answer, not an error,
    // so `docker system prune` works against such a daemon.
    let Some(nm) = e.network_manager() else {
        return Ok(json_response(200, &json!({"NetworksDeleted": []})));
    };
    let removed = blocking(nm, move |nm| {
        nm.prune(|n| pf.selects(n.created as f64, |k| n.labels.get(k).map(String::as_str)))
    })
    .await?;
    Ok(json_response(200, &json!({"NetworksDeleted": removed})))
}

async fn connect(e: Arc<Engine>, id: &str, req: Request<Incoming>, on: bool) -> R {
    let kind = if on {
        crate::decode::Kind::NetworkConnect
    } else {
        crate::decode::Kind::NetworkDisconnect
    };
    let v = crate::decode::read_json(kind, req, 1 << 20).await?;
    let container = v
        .get("Container")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if container.is_empty() {
        return Err(ApiError::new(400, "no container given".into()));
    }
    if !on && id == "none" {
        e.network_disconnect_none(&container)?;
        return Ok(status(200));
    }
    if !on && id == "none" {
        e.network_disconnect_none(&container)?;
        return Ok(status(200));
    }
    if special(id).is_some() {
        return Err(ApiError::new(
            400,
            format!("container cannot be connected to or disconnected from network {id}"),
        ));
    }
    if on {
        let cfg = v.get("EndpointConfig").cloned().unwrap_or(json!({}));
        e.network_connect(id, &container, &cfg).await?;
    } else {
        e.network_disconnect(id, &container).await?;
    }
    Ok(status(200))
}

/// Routes `/networks/...` (`segs` without the leading `networks`).
pub(crate) async fn dispatch(
    e: Arc<Engine>,
    m: Method,
    segs: &[&str],
    q: &Query,
    req: Request<Incoming>,
) -> R {
    match (&m, segs) {
        (&Method::GET, []) => list(e, q),
        (&Method::POST, ["create"]) => create(e, req).await,
        (&Method::POST, ["prune"]) => prune(e, q).await,
        (&Method::GET, [id]) => inspect(e, id).await,
        (&Method::DELETE, [id]) => remove(e, id).await,
        (&Method::POST, [id, "connect"]) => connect(e, id, req, true).await,
        (&Method::POST, [id, "disconnect"]) => connect(e, id, req, false).await,
        _ => Err(ApiError::new(
            404,
            format!("page not found: {m} /networks/{}", segs.join("/")),
        )),
    }
}
