//! Parsers for docker's flag values: memory sizes, `-p` specs, `--mount`, `--ulimit`,
//! `--restart`, `--device`, env files, durations, signals.

use serde_json::{json, Map, Value};

/// A flag value error (printed as `invalid argument ...`, exit 125).
pub type OptResult<T> = Result<T, String>;

/// Docker's `RAMInBytes`: `512`, `64k`, `512m`, `1.5g`, `2gb` (binary multiples).
pub fn parse_mem(s: &str) -> OptResult<i64> {
    let t = s.trim().to_lowercase();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let n: f64 = num.parse().map_err(|_| format!("invalid size: '{s}'"))?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mul: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("invalid size: '{s}'")),
    };
    if n < 0.0 {
        return Err(format!("invalid size: '{s}'"));
    }
    Ok((n * mul) as i64)
}

/// A Go duration: `1h2m3s`, `500ms`, `1.5s`, `10us`, `0`. Returns nanoseconds.
pub fn parse_duration(s: &str) -> OptResult<i64> {
    barge_util::time::parse_go_duration(s)
}

/// One `-p` spec expanded into (container port/proto, host ip, host port) bindings.
pub fn parse_publish(spec: &str) -> OptResult<Vec<(String, String, String)>> {
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, p)) => (b, p.to_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    // Split off an IPv6 host IP in brackets first.
    let (ip, rest) = if let Some(r) = body.strip_prefix('[') {
        let (ip, r) = r
            .split_once("]:")
            .ok_or_else(|| format!("invalid publish spec: {spec}"))?;
        (ip.to_string(), r.to_string())
    } else {
        let parts: Vec<&str> = body.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), body.to_string()),
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => return Err(format!("invalid publish spec: {spec}")),
        }
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    let (host, cont) = match rest.split_once(':') {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => (String::new(), rest.clone()),
    };
    if cont.is_empty() {
        return Err(format!("no port specified: {spec}<empty>"));
    }
    let (cs, ce) = port_range(&cont).map_err(|_| format!("invalid containerPort: {cont}"))?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(port_range(&host).map_err(|_| format!("invalid hostPort: {host}"))?)
    };
    let n = ce - cs + 1;
    if let Some((hs, he)) = host_range {
        let hn = he - hs + 1;
        if hn != n && !(n == 1 && hn > 1) {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {cont} and {host}"
            ));
        }
    }
    let mut out = vec![];
    for i in 0..n {
        let hp = match host_range {
            None => String::new(),
            Some((hs, he)) if n == 1 && he > hs => format!("{hs}-{he}"),
            Some((hs, _)) => (hs + i).to_string(),
        };
        out.push((format!("{}/{proto}", cs + i), ip.clone(), hp));
    }
    Ok(out)
}

fn port_range(s: &str) -> Result<(u32, u32), ()> {
    let p = |x: &str| -> Result<u32, ()> {
        let n: u32 = x.parse().map_err(|_| ())?;
        if n == 0 || n > 65535 {
            return Err(());
        }
        Ok(n)
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (p(a)?, p(b)?);
            if b < a {
                return Err(());
            }
            Ok((a, b))
        }
        None => {
            let a = p(s)?;
            Ok((a, a))
        }
    }
}

fn parse_bool(s: &str) -> OptResult<bool> {
    match s.to_lowercase().as_str() {
        "1" | "true" | "t" => Ok(true),
        "0" | "false" | "f" => Ok(false),
        _ => Err(format!("invalid boolean value {s:?}")),
    }
}

/// One `--mount` spec as the API's `Mount` object.
pub fn parse_mount(spec: &str) -> OptResult<Value> {
    let mut m = Map::new();
    let mut typ = "volume".to_string();
    let mut bind = Map::new();
    let mut vol = Map::new();
    let mut vol_labels = Map::new();
    let mut vol_drv_opts = Map::new();
    let mut tmpfs = Map::new();
    let mut target = None;
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), Some(v.to_string())),
            None => (field.trim().to_lowercase(), None),
        };
        let val = || {
            v.clone()
                .ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"))
        };
        match k.as_str() {
            "type" => typ = val()?,
            "source" | "src" => {
                m.insert("Source".into(), json!(val()?));
            }
            "target" | "dst" | "destination" => target = Some(val()?),
            "readonly" | "ro" => {
                let b = match &v {
                    None => true,
                    Some(s) => parse_bool(s)?,
                };
                m.insert("ReadOnly".into(), json!(b));
            }
            "consistency" => {
                m.insert("Consistency".into(), json!(val()?));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(val()?));
            }
            "bind-nonrecursive" => {
                bind.insert("NonRecursive".into(), json!(parse_bool(&val()?)?));
            }
            "bind-recursive" => {
                let key = match val()?.as_str() {
                    "enabled" => None,
                    "disabled" => Some("NonRecursive"),
                    "writable" => Some("ReadOnlyNonRecursive"),
                    "readonly" => Some("ReadOnlyForceRecursive"),
                    other => {
                        return Err(format!(
                            "invalid value for bind-recursive: {other:?} (want enabled, disabled, writable or readonly)"
                        ))
                    }
                };
                if let Some(k) = key {
                    bind.insert(k.into(), json!(true));
                }
            }
            "volume-subpath" => {
                vol.insert("Subpath".into(), json!(val()?));
            }
            "volume-nocopy" => {
                let b = match &v {
                    None => true,
                    Some(s) => parse_bool(s)?,
                };
                vol.insert("NoCopy".into(), json!(b));
            }
            "volume-label" => {
                let s = val()?;
                let (a, b) = s.split_once('=').unwrap_or((&s, ""));
                vol_labels.insert(a.into(), json!(b));
            }
            "volume-driver" => {
                vol.insert("DriverConfig".into(), json!({"Name": val()?}));
            }
            "volume-opt" => {
                let s = val()?;
                let (a, b) = s.split_once('=').unwrap_or((&s, ""));
                vol_drv_opts.insert(a.into(), json!(b));
            }
            "tmpfs-size" => {
                tmpfs.insert("SizeBytes".into(), json!(parse_mem(&val()?)?));
            }
            "tmpfs-mode" => {
                let s = val()?;
                let mode =
                    u32::from_str_radix(&s, 8).map_err(|_| format!("invalid tmpfs-mode {s:?}"))?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            _ => return Err(format!("unexpected key '{k}' in '{field}'")),
        }
    }
    let target = target.ok_or_else(|| "target is required".to_string())?;
    if !matches!(typ.as_str(), "bind" | "volume" | "tmpfs" | "npipe") {
        return Err(format!("invalid mount type {typ:?}"));
    }
    if typ == "bind" && !m.contains_key("Source") {
        return Err("source is required when specifying bind mounts".into());
    }
    m.insert("Type".into(), json!(typ));
    m.insert("Target".into(), json!(target));
    if !bind.is_empty() {
        if typ != "bind" {
            return Err(format!(
                "cannot mix 'bind-*' options with mount type '{typ}'"
            ));
        }
        m.insert("BindOptions".into(), Value::Object(bind));
    }
    if !vol_labels.is_empty() {
        vol.insert("Labels".into(), Value::Object(vol_labels));
    }
    if !vol_drv_opts.is_empty() {
        let dc = vol
            .entry("DriverConfig")
            .or_insert_with(|| json!({"Name": "local"}));
        dc["Options"] = Value::Object(vol_drv_opts);
    }
    if !vol.is_empty() {
        if typ != "volume" {
            return Err(format!(
                "cannot mix 'volume-*' options with mount type '{typ}'"
            ));
        }
        m.insert("VolumeOptions".into(), Value::Object(vol));
    }
    if !tmpfs.is_empty() {
        if typ != "tmpfs" {
            return Err(format!(
                "cannot mix 'tmpfs-*' options with mount type '{typ}'"
            ));
        }
        m.insert("TmpfsOptions".into(), Value::Object(tmpfs));
    }
    Ok(Value::Object(m))
}

const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
    "as",
];

/// One `--ulimit name=soft[:hard]` (`-1` or `unlimited` for no limit), checked: a known
/// resource and a soft limit not above the hard one. Used by `run` and `daemon
/// --default-ulimit` alike.
pub fn parse_ulimit_parts(spec: &str) -> OptResult<(String, i64, i64)> {
    let (name, vals) = spec
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {spec:?}: want name=soft[:hard]"))?;
    if !ULIMITS.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let (soft, hard) = match vals.split_once(':') {
        Some((s, h)) => (s, h),
        None => (vals, vals),
    };
    let value = |x: &str, which: &str| -> OptResult<i64> {
        if x == "unlimited" {
            return Ok(-1);
        }
        x.parse()
            .map_err(|_| format!("invalid ulimit {which} value {x:?} in {spec:?}"))
    };
    let (soft, hard) = (value(soft, "soft")?, value(hard, "hard")?);
    if soft > hard && hard != -1 {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok((name.to_string(), soft, hard))
}

/// `--ulimit name=soft[:hard]` as the API's `{"Name","Soft","Hard"}`.
pub fn parse_ulimit(spec: &str) -> OptResult<Value> {
    let (name, soft, hard) = parse_ulimit_parts(spec)?;
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `--restart no|always|unless-stopped|on-failure[:N]`.
pub fn parse_restart(s: &str) -> OptResult<Value> {
    let (name, max) = match s.split_once(':') {
        Some((n, m)) => (n, Some(m)),
        None => (s, None),
    };
    match (name, max) {
        ("" | "no", None) => Ok(json!({"Name": "no", "MaximumRetryCount": 0})),
        ("always" | "unless-stopped", None) => Ok(json!({"Name": name, "MaximumRetryCount": 0})),
        ("on-failure", m) => {
            let n: i64 = match m {
                None => 0,
                Some(m) => m
                    .parse()
                    .map_err(|_| format!("maximum retry count must be an integer: {m}"))?,
            };
            Ok(json!({"Name": "on-failure", "MaximumRetryCount": n}))
        }
        (_, Some(_)) if name == "always" || name == "unless-stopped" || name == "no" => {
            Err(format!(
            "invalid restart policy: maximum retry count can only be used with 'on-failure': {s}"
        ))
        }
        _ => Err(format!("invalid restart policy format: {s}")),
    }
}

/// `--device host[:container][:perms]`.
pub fn parse_device(s: &str) -> OptResult<Value> {
    let parts: Vec<&str> = s.split(':').collect();
    let valid_perms = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, cont, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, x] if valid_perms(x) => (*h, *h, *x),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if valid_perms(p) => (*h, *c, *p),
        _ => return Err(format!("invalid device specification: {s}")),
    };
    if !cont.starts_with('/') {
        return Err(format!("invalid device specification: {s}"));
    }
    Ok(json!({"PathOnHost": host, "PathInContainer": cont, "CgroupPermissions": perms}))
}

/// `--device-read-bps /dev/sda:1mb` (`bytes`: a size with docker's units) or
/// `--device-read-iops /dev/sda:1000`: a `{"Path", "Rate"}` throttle entry.
pub fn parse_throttle(s: &str, bytes: bool) -> OptResult<Value> {
    let (path, rate) = s
        .rsplit_once(':')
        .filter(|(p, _)| p.starts_with('/'))
        .ok_or_else(|| format!("bad format: {s} (want PATH:RATE, e.g. /dev/sda:1mb)"))?;
    let rate = if bytes {
        parse_mem(rate).map_err(|e| format!("invalid rate in {s}: {e}"))?
    } else {
        rate.parse::<i64>()
            .ok()
            .filter(|r| *r >= 0)
            .ok_or_else(|| format!("invalid rate in {s}: want a number of IO per second"))?
    };
    Ok(json!({"Path": path, "Rate": rate}))
}

/// `-e KEY=VAL` or `-e KEY` (taken from the environment when set).
pub fn env_entry(s: &str) -> OptResult<String> {
    let (k, _) = s.split_once('=').unwrap_or((s, ""));
    if k.is_empty() {
        return Err(format!("invalid environment variable: {s}"));
    }
    if s.contains('=') {
        return Ok(s.to_string());
    }
    Ok(match std::env::var(s) {
        Ok(v) => format!("{s}={v}"),
        Err(_) => s.to_string(),
    })
}

/// An `--env-file`'s contents: `KEY=VAL` lines, `KEY` alone from the environment, `#` comments.
pub fn parse_env_file(text: &str, name: &str) -> OptResult<Vec<String>> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (k, _) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            return Err(format!(
                "{name}:{}: no variable name on line '{line}'",
                i + 1
            ));
        }
        if k.contains(char::is_whitespace) {
            return Err(format!("variable '{k}' contains whitespaces"));
        }
        out.push(if l.contains('=') {
            l.to_string()
        } else {
            env_entry(l)?
        });
    }
    Ok(out)
}

/// Signal names and numbers as docker accepts them (`KILL`, `SIGTERM`, `9`).
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let u = s.to_uppercase();
    let name = u.strip_prefix("SIG").unwrap_or(&u);
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => return None,
    })
}

/// Detach keys (`ctrl-p,ctrl-q`, `a`, `ctrl-@`...) as the byte sequence.
pub fn parse_detach_keys(s: &str) -> OptResult<Vec<u8>> {
    let mut out = vec![];
    for k in s.split(',') {
        let k = k.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b] if b.is_ascii_lowercase() => b - b'a' + 1,
                [b] if b.is_ascii_uppercase() => b - b'A' + 1,
                b"@" => 0,
                b"[" => 27,
                b"\\" => 28,
                b"]" => 29,
                b"^" => 30,
                b"_" => 31,
                _ => return Err(format!("Unknown character: '{k}'")),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(format!("Unknown character: '{k}'"));
        }
    }
    if out.is_empty() {
        return Err("empty detach keys".into());
    }
    Ok(out)
}

/// `key=value` list (labels, options) as a JSON object; `key` alone maps to "".
pub fn kv_map(items: &[String]) -> Value {
    let mut m = Map::new();
    for i in items {
        let (k, v) = i.split_once('=').unwrap_or((i, ""));
        m.insert(k.to_string(), json!(v));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mem("512").unwrap(), 512);
        assert_eq!(parse_mem("64k").unwrap(), 65536);
        assert_eq!(parse_mem("512m").unwrap(), 512 << 20);
        assert_eq!(parse_mem("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_mem("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_mem("2GiB").unwrap(), 2 << 30);
        assert!(parse_mem("12x").is_err());
        assert!(parse_mem("m").is_err());
        assert!(parse_mem("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), 30_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("1.5h").unwrap(), 5_400_000_000_000);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn publish_specs() {
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            vec![("80/tcp".into(), "".into(), "8080".into())]
        );
        assert_eq!(
            parse_publish("127.0.0.1:53:53/udp").unwrap(),
            vec![("53/udp".into(), "127.0.0.1".into(), "53".into())]
        );
        assert_eq!(
            parse_publish("80").unwrap(),
            vec![("80/tcp".into(), "".into(), "".into())]
        );
        assert_eq!(
            parse_publish("127.0.0.1::80").unwrap(),
            vec![("80/tcp".into(), "127.0.0.1".into(), "".into())]
        );
        assert_eq!(
            parse_publish("[::1]:8080:80").unwrap(),
            vec![("80/tcp".into(), "::1".into(), "8080".into())]
        );
        assert_eq!(parse_publish("8000-8001:80-81").unwrap().len(), 2);
        assert_eq!(parse_publish("8000-8001:80-81").unwrap()[1].2, "8001");
        assert_eq!(parse_publish("8000-8010:80").unwrap()[0].2, "8000-8010");
        assert!(parse_publish("8000-8002:80-81").is_err());
        assert!(parse_publish("99999:80").is_err());
        assert!(parse_publish("80/xyz").is_err());
        assert!(parse_publish("1.2.3:80:80").is_err());
        assert!(parse_publish("a:b:c:d").is_err());
    }

    #[test]
    fn mounts() {
        let m =
            parse_mount("type=bind,source=/a,target=/b,readonly,bind-propagation=rslave").unwrap();
        assert_eq!(m["Type"], "bind");
        assert_eq!(m["Source"], "/a");
        assert_eq!(m["Target"], "/b");
        assert_eq!(m["ReadOnly"], true);
        assert_eq!(m["BindOptions"]["Propagation"], "rslave");
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(m["TmpfsOptions"]["SizeBytes"], 64 << 20);
        assert_eq!(m["TmpfsOptions"]["Mode"], 0o1770);
        let m = parse_mount("src=data,dst=/d,volume-opt=o=bind,ro=false").unwrap();
        assert_eq!(m["Type"], "volume");
        assert_eq!(m["ReadOnly"], false);
        assert_eq!(m["VolumeOptions"]["DriverConfig"]["Options"]["o"], "bind");
        assert!(parse_mount("type=bind,target=/b").is_err());
        assert!(parse_mount("type=bind,src=/a").is_err());
        assert!(parse_mount("type=tmpfs,dst=/t,bind-propagation=shared").is_err());
        assert!(parse_mount("type=weird,dst=/t").is_err());
        assert!(parse_mount("dst=/t,bogus=1").is_err());
        let m = parse_mount("type=bind,src=/a,dst=/b,ro,bind-recursive=writable").unwrap();
        assert_eq!(m["BindOptions"]["ReadOnlyNonRecursive"], true);
        let m = parse_mount("type=bind,src=/a,dst=/b,bind-recursive=disabled").unwrap();
        assert_eq!(m["BindOptions"]["NonRecursive"], true);
        let m = parse_mount("type=bind,src=/a,dst=/b,bind-recursive=enabled").unwrap();
        assert!(m.get("BindOptions").is_none());
        assert!(parse_mount("type=bind,src=/a,dst=/b,bind-recursive=maybe").is_err());
        let m = parse_mount("src=v,dst=/d,volume-subpath=a/b").unwrap();
        assert_eq!(m["VolumeOptions"]["Subpath"], "a/b");
    }

    #[test]
    fn ulimits_restart_devices() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048").unwrap(),
            json!({"Name": "nofile", "Soft": 1024, "Hard": 2048})
        );
        assert_eq!(parse_ulimit("nproc=10").unwrap()["Hard"], 10);
        assert!(parse_ulimit("nofile=2048:1024").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        assert!(parse_ulimit("nofile").is_err());
        assert!(parse_ulimit("nofile=x").is_err());
        assert_eq!(
            parse_restart("on-failure:3").unwrap()["MaximumRetryCount"],
            3
        );
        assert_eq!(parse_restart("always").unwrap()["Name"], "always");
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("sometimes").is_err());
        assert_eq!(
            parse_device("/dev/fuse").unwrap()["PathInContainer"],
            "/dev/fuse"
        );
        assert_eq!(
            parse_device("/dev/sda:/dev/xvda:r").unwrap()["CgroupPermissions"],
            "r"
        );
        assert_eq!(
            parse_device("/dev/sda:rw").unwrap()["PathInContainer"],
            "/dev/sda"
        );
        assert!(parse_device("/dev/sda:rel").is_err());
    }

    #[test]
    fn env_files_and_signals() {
        std::env::set_var("BARGE_TEST_ENV_X", "from-env");
        let v = parse_env_file(
            "# c\nA=1\n\n  B=two words\nBARGE_TEST_ENV_X\nBARGE_TEST_UNSET_Y\n",
            "f",
        )
        .unwrap();
        assert_eq!(
            v,
            vec![
                "A=1",
                "B=two words",
                "BARGE_TEST_ENV_X=from-env",
                "BARGE_TEST_UNSET_Y"
            ]
        );
        assert!(parse_env_file("BAD KEY=1\n", "f").is_err());
        assert!(parse_env_file("=1\n", "f").is_err());
        assert!(env_entry("=x").is_err());
        assert_eq!(signal_number("KILL"), Some(9));
        assert_eq!(signal_number("sigterm"), Some(15));
        assert_eq!(signal_number("10"), Some(10));
        assert_eq!(signal_number("NOPE"), None);
        assert_eq!(signal_number("99"), None);
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("abc").is_err());
    }
}
