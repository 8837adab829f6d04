//! `network` and `volume` commands.

use super::out::{errln, out, outln};
use serde_json::{json, Value};

use super::args::*;
use super::client::{enc, filters_json, query, Client};
use super::error::{Error, Result};
use super::format::ListFormat;
use super::opts::kv_map;
use super::report_each;

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

fn fmt_err(e: super::format::TemplateError) -> Error {
    Error::Usage(e.to_string())
}

/// `network ...`
pub async fn network(c: &Client, cmd: NetworkCmd) -> Result<()> {
    match cmd {
        NetworkCmd::Create(a) => {
            let mut ipam = vec![];
            for (i, s) in a.subnet.iter().enumerate() {
                let mut p = json!({"Subnet": s});
                if let Some(g) = a.gateway.get(i) {
                    p["Gateway"] = json!(g);
                }
                if let Some(r) = a.ip_range.get(i) {
                    p["IPRange"] = json!(r);
                }
                ipam.push(p);
            }
            if a.subnet.is_empty() && !a.gateway.is_empty() {
                return Err(Error::Usage("gateway specified without a subnet".into()));
            }
            let mut body = json!({
                "Name": a.name,
                "CheckDuplicate": true,
                "Driver": a.driver,
                "Internal": a.internal,
                "Attachable": a.attachable,
                "Labels": kv_map(&a.label),
                "Options": kv_map(&a.opt),
                "IPAM": {"Driver": "default", "Config": ipam},
            });
            if let Some(v6) = a.ipv6 {
                body["EnableIPv6"] = json!(v6);
            }
            let r = c.post_json("/networks/create", Some(&body)).await?;
            outln!("{}", r.get("Id").and_then(|v| v.as_str()).unwrap_or(""));
            Ok(())
        }
        NetworkCmd::Ls(a) => {
            let mut q = vec![];
            if let Some(f) = filters_json(&a.filter)? {
                q.push(("filters", f));
            }
            let l = c.get_json(&format!("/networks{}", query(&q))).await?;
            let mut rows = vec![];
            for n in l.as_array().into_iter().flatten() {
                let id = n.get("Id").and_then(|v| v.as_str()).unwrap_or("");
                rows.push(json!({
                    "ID": if a.no_trunc { id.to_string() } else { short(id) },
                    "Name": n.get("Name").cloned().unwrap_or(Value::Null),
                    "Driver": n.get("Driver").cloned().unwrap_or(Value::Null),
                    "Scope": n.get("Scope").cloned().unwrap_or(Value::Null),
                    "IPv4": n.get("EnableIPv4").cloned().unwrap_or(json!(false)).to_string(),
                    "IPv6": n.get("EnableIPv6").cloned().unwrap_or(json!(false)).to_string(),
                    "Internal": n.get("Internal").cloned().unwrap_or(json!(false)).to_string(),
                    "CreatedAt": n
                        .get("Created")
                        .and_then(|c| c.as_str())
                        .and_then(super::container::parse_rfc3339)
                        .map_or(String::new(), |(s, ns)| super::container::go_time_nanos(s, ns)),
                    "Labels": super::container::labels_text(n.get("Labels").unwrap_or(&Value::Null)),
                    "_labels": n.get("Labels").cloned().unwrap_or(Value::Null),
                }));
            }
            rows.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
            if a.quiet {
                for r in rows {
                    outln!("{}", r["ID"].as_str().unwrap_or(""));
                }
                return Ok(());
            }
            let f = ListFormat::new(
                a.format.as_deref(),
                "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
                &[
                    ("ID", "NETWORK ID"),
                    ("Name", "NAME"),
                    ("Driver", "DRIVER"),
                    ("Scope", "SCOPE"),
                ],
            )
            .map_err(fmt_err)?;
            out!("{}", f.render(&rows).map_err(fmt_err)?);
            Ok(())
        }
        NetworkCmd::Inspect(a) => super::container::inspect(c, a, Some("network")).await,
        NetworkCmd::Rm(a) => {
            let mut errs = vec![];
            for n in &a.names {
                match c.delete(&format!("/networks/{}", enc(n))).await {
                    Ok(_) => outln!("{n}"),
                    Err(e) => errs.push(e),
                }
            }
            report_each(errs)
        }
        NetworkCmd::Connect(a) => {
            let mut ep = json!({});
            if let Some(ip) = &a.ip {
                ep["IPAMConfig"] = json!({"IPv4Address": ip});
            }
            if let Some(ip) = &a.ip6 {
                ep["IPAMConfig"]["IPv6Address"] = json!(ip);
            }
            if !a.alias.is_empty() {
                ep["Aliases"] = json!(a.alias);
            }
            c.post_json(
                &format!("/networks/{}/connect", enc(&a.network)),
                Some(&json!({"Container": a.container, "EndpointConfig": ep})),
            )
            .await?;
            Ok(())
        }
        NetworkCmd::Disconnect {
            force,
            network,
            container,
        } => {
            c.post_json(
                &format!("/networks/{}/disconnect", enc(&network)),
                Some(&json!({"Container": container, "Force": force})),
            )
            .await?;
            Ok(())
        }
        NetworkCmd::Prune(a) => super::system::prune_one(c, "networks", a).await,
    }
}

/// `volume ...`
pub async fn volume(c: &Client, cmd: VolumeCmd) -> Result<()> {
    match cmd {
        VolumeCmd::Create(a) => {
            let mut body = json!({
                "Driver": a.driver,
                "DriverOpts": kv_map(&a.opt),
                "Labels": kv_map(&a.label),
            });
            if let Some(n) = &a.name {
                body["Name"] = json!(n);
            }
            let r = c.post_json("/volumes/create", Some(&body)).await?;
            outln!("{}", r.get("Name").and_then(|v| v.as_str()).unwrap_or(""));
            Ok(())
        }
        VolumeCmd::Ls(a) => {
            let mut q = vec![];
            if let Some(f) = filters_json(&a.filter)? {
                q.push(("filters", f));
            }
            let l = c.get_json(&format!("/volumes{}", query(&q))).await?;
            let mut rows = vec![];
            for v in l
                .get("Volumes")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                rows.push(volume_row(v));
            }
            rows.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
            if a.quiet {
                for r in rows {
                    outln!("{}", r["Name"].as_str().unwrap_or(""));
                }
                return Ok(());
            }
            let f = ListFormat::new(
                a.format.as_deref(),
                "{{.Driver}}\t{{.Name}}",
                &[
                    ("Driver", "DRIVER"),
                    ("Name", "VOLUME NAME"),
                    ("Mountpoint", "MOUNTPOINT"),
                ],
            )
            .map_err(fmt_err)?;
            out!("{}", f.render(&rows).map_err(fmt_err)?);
            for w in l
                .get("Warnings")
                .and_then(|w| w.as_array())
                .into_iter()
                .flatten()
            {
                errln!("WARNING: {}", w.as_str().unwrap_or(""));
            }
            Ok(())
        }
        VolumeCmd::Inspect(a) => super::container::inspect(c, a, Some("volume")).await,
        VolumeCmd::Rm(a) => {
            let mut errs = vec![];
            for n in &a.names {
                match c
                    .delete(&format!("/volumes/{}?force={}", enc(n), a.force as u8))
                    .await
                {
                    Ok(_) => outln!("{n}"),
                    Err(e) => errs.push(e),
                }
            }
            report_each(errs)
        }
        VolumeCmd::Prune(a) => super::system::prune_one(c, "volumes", a).await,
    }
}

/// A volume as docker's formatter shows it (`volume ls`, `system df -v`): Links and Size
/// from the usage data when the daemon measured it, "N/A" otherwise; Group, Availability
/// and Status belong to cluster volumes.
pub(crate) fn volume_row(v: &Value) -> Value {
    let usage = |k: &str| {
        v.pointer(&format!("/UsageData/{k}"))
            .and_then(|x| x.as_f64())
    };
    json!({
        "Name": v.get("Name").cloned().unwrap_or(Value::Null),
        "Driver": v.get("Driver").cloned().unwrap_or(Value::Null),
        "Scope": v.get("Scope").cloned().unwrap_or(Value::Null),
        "Mountpoint": v.get("Mountpoint").cloned().unwrap_or(Value::Null),
        "Labels": super::container::labels_text(v.get("Labels").unwrap_or(&Value::Null)),
        "Links": usage("RefCount").filter(|n| *n >= 0.0).map_or("N/A".to_string(), |n| n.to_string()),
        "Size": usage("Size")
            .filter(|n| *n >= 0.0)
            .map_or("N/A".to_string(), super::format::human_size4),
        "Group": "N/A",
        "Availability": "N/A",
        "Status": "N/A",
        "_labels": v.get("Labels").cloned().unwrap_or(Value::Null),
    })
}
