//! Legacy container links (`--link name:alias`, `HostConfig.Links`) on the default bridge,
//! as dockerd keeps them for old clients: the linking container gets `/etc/hosts` lines for
//! each target (alias, hostname, name) and the environment Docker's documentation of legacy
//! links describes (`ALIAS_NAME`, `ALIAS_PORT`, `ALIAS_PORT_<port>_<PROTO>[_ADDR|_PORT|_PROTO]`,
//! `ALIAS_ENV_<var>`).
//!
//! A link is kept in `HostConfig.Links` as dockerd's inspect shows it, `/target:/linker/alias`,
//! and resolved by the target's name at each start. On user networks links live in the
//! endpoint config instead (`EndpointsConfig.<net>.Links`, where the docker CLI puts `--link`)
//! and are DNS aliases the network's DNS answers for the linking container only
//! (barge-network's `refresh_dns`); `HostConfig.Links` is not used there, as in dockerd.

use super::*;

/// One link of a starting container, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The alias (`db` of `--link mydb:db`).
    pub alias: String,
    /// The full link name, `/linker/alias`.
    pub link_name: String,
    /// The target container.
    pub target: Container,
    /// The target's address on the default bridge.
    pub ip: Option<std::net::Ipv4Addr>,
}

/// Splits a link as clients write it (`name:alias`, `name`, or dockerd's stored
/// `/name:/linker/alias`) into (target name, alias).
pub(crate) fn parse(spec: &str) -> Result<(String, String)> {
    let (name, alias) = spec.split_once(':').unwrap_or((spec, spec));
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    if name.is_empty() || alias.is_empty() {
        return Err(Error::BadRequest(format!(
            "invalid link {spec:?}: want name:alias"
        )));
    }
    Ok((name.to_string(), alias.to_string()))
}

/// Whether a network mode is the default bridge, where legacy links apply.
fn on_default_bridge(netmode: &str) -> bool {
    matches!(netmode, "" | "default" | "bridge")
}

/// The environment a link gives the linking container (Docker's legacy-link variables).
pub(crate) fn env_of(l: &Resolved) -> Vec<String> {
    let alias = l.alias.to_uppercase().replace('-', "_");
    let ip = l.ip.map(|i| i.to_string()).unwrap_or_default();
    let mut ports: Vec<(u16, String)> = l
        .target
        .config
        .get("ExposedPorts")
        .and_then(Value::as_object)
        .map(|m| {
            m.keys()
                .filter_map(|k| {
                    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                    Some((p.parse().ok()?, proto.to_ascii_lowercase()))
                })
                .collect()
        })
        .unwrap_or_default();
    // Lowest port first; on a tie tcp first: the first one is the link's default port.
    ports.sort_by(|a, b| a.0.cmp(&b.0).then((a.1 != "tcp").cmp(&(b.1 != "tcp"))));
    let mut env = Vec::new();
    if let Some((p, proto)) = ports.first() {
        env.push(format!("{alias}_PORT={proto}://{ip}:{p}"));
    }
    for (p, proto) in &ports {
        let prefix = format!("{alias}_PORT_{p}_{}", proto.to_uppercase());
        env.push(format!("{prefix}={proto}://{ip}:{p}"));
        env.push(format!("{prefix}_ADDR={ip}"));
        env.push(format!("{prefix}_PORT={p}"));
        env.push(format!("{prefix}_PROTO={proto}"));
    }
    env.push(format!("{alias}_NAME={}", l.link_name));
    for v in l.target.config_list("Env") {
        let Some((k, val)) = v.split_once('=') else {
            continue;
        };
        // Set by images for their own processes; no use to the linking container.
        if k == "HOME" || k == "PATH" {
            continue;
        }
        env.push(format!("{alias}_ENV_{k}={val}"));
    }
    env
}

/// `env` with the links' variables first; the container's own variables win over them.
pub(crate) fn merge_env(links: &[Resolved], own: Vec<String>) -> Vec<String> {
    let key = |e: &str| e.split('=').next().unwrap_or_default().to_string();
    let mine: std::collections::HashSet<String> = own.iter().map(|e| key(e)).collect();
    let mut env: Vec<String> = links
        .iter()
        .flat_map(env_of)
        .filter(|e| !mine.contains(&key(e)))
        .collect();
    env.extend(own);
    env
}

/// The `/etc/hosts` line of a link: its address, then the alias, the target's hostname and
/// (when it differs from the alias) its name.
pub(crate) fn hosts_line(l: &Resolved) -> Option<String> {
    let ip = l.ip?;
    let mut names = vec![l.alias.clone()];
    let host = l.target.hostname();
    if !names.contains(&host) {
        names.push(host);
    }
    if !names.contains(&l.target.name) {
        names.push(l.target.name.clone());
    }
    Some(format!("{ip}\t{}\n", names.join(" ")))
}

impl Engine {
    /// Checks and normalizes `HostConfig.Links` of a container being created as `name`:
    /// on the default bridge each target must exist (dockerd's "could not get container
    /// for"), and links are stored as `/target:/name/alias`; host and container network
    /// modes cannot have links at all.
    pub(crate) fn plan_links(&self, name: &str, host_config: &mut Value) -> Result<()> {
        let links = str_list(host_config.get("Links"));
        if links.is_empty() {
            return Ok(());
        }
        let netmode = host_config
            .get("NetworkMode")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if netmode == "host" {
            return Err(Error::BadRequest(
                "conflicting options: host type networking can't be used with links. This would result in undefined behavior".into(),
            ));
        }
        if netmode.starts_with("container:") {
            return Err(Error::BadRequest(
                "conflicting options: container type network can't be used with links. This would result in undefined behavior".into(),
            ));
        }
        if !on_default_bridge(&netmode) {
            return Ok(());
        }
        let mut stored = Vec::new();
        for l in &links {
            let (target, alias) = parse(l)?;
            let t = self.get(&target).map_err(|e| {
                Error::BadRequest(format!("could not get container for {target}: {e}"))
            })?;
            if t.name == name {
                return Err(Error::BadRequest(format!(
                    "could not link {target} as {alias}: a container cannot link to itself"
                )));
            }
            let entry = format!("/{}:/{name}/{alias}", t.name);
            if !stored.contains(&entry) {
                stored.push(entry);
            }
        }
        host_config["Links"] = json!(stored);
        Ok(())
    }

    /// The link names (`/linker/alias`) that point at each container, by target name:
    /// dockerd lists them among a target's `Names`.
    pub fn link_names(&self) -> std::collections::HashMap<String, Vec<String>> {
        let mut m: std::collections::HashMap<String, Vec<String>> = Default::default();
        for c in self.all() {
            if !on_default_bridge(&c.host_str("NetworkMode")) {
                continue;
            }
            for l in str_list(c.host_config.get("Links")) {
                if let Ok((target, alias)) = parse(&l) {
                    m.entry(target)
                        .or_default()
                        .push(format!("/{}/{alias}", c.name));
                }
            }
        }
        m
    }

    /// The links of `c` resolved for its start (default bridge only: elsewhere none).
    /// Every target must be running, as dockerd requires.
    pub(crate) fn resolve_links(&self, c: &Container) -> Result<Vec<Resolved>> {
        self.resolve_links_as(c, true)
    }

    /// [`Engine::resolve_links`]; not `strict`, targets that are not running are left out
    /// (a hosts file rewritten after the start).
    pub(crate) fn resolve_links_as(&self, c: &Container, strict: bool) -> Result<Vec<Resolved>> {
        if !on_default_bridge(&c.host_str("NetworkMode")) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for l in str_list(c.host_config.get("Links")) {
            let (target, alias) = parse(&l)?;
            let link_name = format!("/{}/{alias}", c.name);
            let t = match self.get(&target).ok().filter(Container::running) {
                Some(t) => t,
                None if !strict => continue,
                None => {
                    return Err(Error::Conflict(format!(
                        "Cannot link to a non running container: /{target} AS {link_name}"
                    )))
                }
            };
            let ip = self.network_manager().and_then(|nm| {
                nm.endpoints_of(&t.id)
                    .into_iter()
                    .find(|e| e.network_name == "bridge")
                    .map(|e| e.ip)
            });
            out.push(Resolved {
                alias,
                link_name,
                target: t,
                ip,
            });
        }
        Ok(out)
    }

    /// Keeps the stored links (`/target:/linker/alias`) right when container `id` is renamed
    /// from `old` to `new`: as a target in other containers' links, as the linker in its own.
    pub(crate) fn rename_in_links(&self, id: &str, old: &str, new: &str) -> Result<()> {
        for x in self.all() {
            if !on_default_bridge(&x.host_str("NetworkMode")) {
                continue;
            }
            let links = str_list(x.host_config.get("Links"));
            let linker = if x.id == id { new } else { x.name.as_str() };
            let renamed: Vec<String> = links
                .iter()
                .map(|l| match parse(l) {
                    Ok((t, a)) => {
                        let t = if t == old { new.to_string() } else { t };
                        format!("/{t}:/{linker}/{a}")
                    }
                    Err(_) => l.clone(),
                })
                .collect();
            if renamed != links {
                self.update(&x.id, |c| c.host_config["Links"] = json!(renamed))?;
            }
        }
        Ok(())
    }

    /// Removes the links to the container named `target` (being removed) from the others.
    pub(crate) fn drop_links_to(&self, target: &str) -> Result<()> {
        for x in self.all() {
            if !on_default_bridge(&x.host_str("NetworkMode")) {
                continue;
            }
            let links = str_list(x.host_config.get("Links"));
            let keep: Vec<String> = links
                .iter()
                .filter(|l| parse(l).map(|(t, _)| t != target).unwrap_or(true))
                .cloned()
                .collect();
            if keep.len() != links.len() {
                self.update(&x.id, |c| c.host_config["Links"] = json!(keep))?;
            }
        }
        Ok(())
    }

    /// `DELETE /containers/{linker}/{alias}?link=1`: removes the link `alias` of the
    /// container `linker` (the containers stay); a running linker's /etc/hosts loses it.
    pub async fn remove_link(&self, linker: &str, alias: &str) -> Result<()> {
        let c = self.get(linker)?;
        let link_name = format!("/{}/{alias}", c.name);
        let links = str_list(c.host_config.get("Links"));
        let keep: Vec<String> = links
            .iter()
            .filter(|l| parse(l).map(|(_, a)| a != alias).unwrap_or(true))
            .cloned()
            .collect();
        if keep.len() == links.len() {
            return Err(Error::NotFound(format!(
                "No such container: {}",
                link_name.trim_start_matches('/')
            )));
        }
        let c = self.update(&c.id, |c| c.host_config["Links"] = json!(keep))?;
        if c.running() {
            let files = self.exec_dir(&c.id).join("files");
            if files.join("hosts").exists() {
                self.write_hosts(&c, &files)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(env: &[&str], ports: &[&str]) -> Container {
        Container {
            id: "a".repeat(64),
            name: "db".into(),
            created: String::new(),
            image_name: String::new(),
            image_id: String::new(),
            config: json!({
                "Hostname": "dbhost",
                "Env": env,
                "ExposedPorts": ports
                    .iter()
                    .map(|p| (p.to_string(), json!({})))
                    .collect::<serde_json::Map<_, _>>(),
            }),
            host_config: json!({}),
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            snapshot: String::new(),
            mount_points: Vec::new(),
        }
    }

    #[test]
    fn links_parse_in_every_form_clients_send() {
        assert_eq!(parse("db:alias").unwrap(), ("db".into(), "alias".into()));
        assert_eq!(parse("db").unwrap(), ("db".into(), "db".into()));
        assert_eq!(
            parse("/db:/web/alias").unwrap(),
            ("db".into(), "alias".into())
        );
        assert!(parse(":x").is_err() && parse("db:").is_err());
    }

    #[test]
    fn env_follows_dockers_legacy_link_variables() {
        let l = Resolved {
            alias: "my-db".into(),
            link_name: "/web/my-db".into(),
            target: target(
                &["PATH=/bin", "HOME=/root", "PASSWORD=s3cret", "X=a=b"],
                &["5432/tcp", "53/udp", "53/tcp"],
            ),
            ip: Some("172.17.0.5".parse().unwrap()),
        };
        let env = env_of(&l);
        let want = [
            "MY_DB_PORT=tcp://172.17.0.5:53",
            "MY_DB_PORT_53_TCP=tcp://172.17.0.5:53",
            "MY_DB_PORT_53_TCP_ADDR=172.17.0.5",
            "MY_DB_PORT_53_TCP_PORT=53",
            "MY_DB_PORT_53_TCP_PROTO=tcp",
            "MY_DB_PORT_53_UDP=udp://172.17.0.5:53",
            "MY_DB_PORT_53_UDP_PROTO=udp",
            "MY_DB_PORT_5432_TCP=tcp://172.17.0.5:5432",
            "MY_DB_NAME=/web/my-db",
            "MY_DB_ENV_PASSWORD=s3cret",
            "MY_DB_ENV_X=a=b",
        ];
        for w in want {
            assert!(env.contains(&w.to_string()), "{w} missing from {env:?}");
        }
        assert!(!env
            .iter()
            .any(|e| e.contains("_ENV_PATH") || e.contains("_ENV_HOME")));
        // The container's own variables win.
        let merged = merge_env(std::slice::from_ref(&l), vec!["MY_DB_NAME=mine".into()]);
        assert!(merged.contains(&"MY_DB_NAME=mine".to_string()));
        assert!(!merged.contains(&"MY_DB_NAME=/web/my-db".to_string()));
        assert_eq!(hosts_line(&l).unwrap(), "172.17.0.5\tmy-db dbhost db\n");
    }
}
