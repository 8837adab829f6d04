//! Decoding the JSON bodies clients send.
//!
//! dockerd decodes each body into Go structs, so a value of the wrong type (a string where
//! a bool goes, a fraction or an out-of-range number where an integer goes) is refused with
//! 400 before anything happens. barge keeps bodies as JSON values for the engine, and checks
//! them here against the same types first, so a malformed body gets 400 with a message that
//! names the field, and the engine only ever sees values of the types it reads. As in Go,
//! `null` is accepted anywhere (it leaves the field unset) and unknown fields are ignored.
//!
//! [`decode`] is the one entry point; the API's handlers and the fuzz target
//! (`crates/barge-api/fuzz`) call it.

use serde_json::Value;

use crate::util::ApiError;

/// The kinds of request bodies the API decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /containers/create`: Docker's `Config` with `HostConfig` and `NetworkingConfig`.
    ContainerCreate,
    /// `POST /containers/{id}/update`: resources and the restart policy.
    ContainerUpdate,
    /// `POST /containers/{id}/exec`.
    ExecCreate,
    /// `POST /exec/{id}/start`.
    ExecStart,
    /// `POST /commit`: a container `Config`.
    Commit,
    /// `POST /networks/create`.
    NetworkCreate,
    /// `POST /networks/{id}/connect`.
    NetworkConnect,
    /// `POST /networks/{id}/disconnect`.
    NetworkDisconnect,
    /// `POST /volumes/create`.
    VolumeCreate,
    /// `POST /auth`.
    Auth,
}

impl Kind {
    /// Every kind (for the fuzz target and tests).
    pub const ALL: [Kind; 10] = [
        Kind::ContainerCreate,
        Kind::ContainerUpdate,
        Kind::ExecCreate,
        Kind::ExecStart,
        Kind::Commit,
        Kind::NetworkCreate,
        Kind::NetworkConnect,
        Kind::NetworkDisconnect,
        Kind::VolumeCreate,
        Kind::Auth,
    ];

    fn schema(self) -> T {
        match self {
            Kind::ContainerCreate => CREATE,
            Kind::ContainerUpdate => UPDATE,
            Kind::ExecCreate => EXEC_CREATE,
            Kind::ExecStart => EXEC_START,
            Kind::Commit => CONFIG,
            Kind::NetworkCreate => NETWORK_CREATE,
            Kind::NetworkConnect => NETWORK_CONNECT,
            Kind::NetworkDisconnect => NETWORK_DISCONNECT,
            Kind::VolumeCreate => VOLUME_CREATE,
            Kind::Auth => AUTH,
        }
    }
}

/// Parses `body` (an empty body is `{}`) and checks it against the Go types dockerd decodes
/// it into. The result is always a JSON object.
pub fn decode(kind: Kind, body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        // One value and nothing after it but white space; dockerd says "unexpected content
        // after JSON" for the rest (serde's own "trailing characters" would name no rule).
        let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
        let v = match values.next() {
            Some(r) => r.map_err(|e| bad(format!("{e}")))?,
            None => Value::Object(Default::default()),
        };
        if !body[values.byte_offset()..]
            .iter()
            .all(u8::is_ascii_whitespace)
        {
            return Err(ApiError::new(400, "unexpected content after JSON".into()));
        }
        v
    };
    let mut v = match v {
        // Go decodes `null` into a struct as "nothing set".
        Value::Null => Value::Object(Default::default()),
        Value::Object(_) => v,
        other => return Err(bad(format!("expected an object, not {}", kind_of(&other)))),
    };
    let mut path = String::new();
    check(&mut v, kind.schema(), &mut path).map_err(bad)?;
    Ok(v)
}

/// [`decode`] for a request that says what it carries: as dockerd, a body must come as
/// `application/json` (parameters allowed, e.g. `; charset=utf-8`), and only an empty body
/// may come with no `Content-Type` at all. Checked before the body is read, so a wrong type
/// is refused as 400 whatever the body holds.
pub fn decode_typed(
    kind: Kind,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Value, ApiError> {
    check_content_type(content_type, body.is_empty())?;
    decode(kind, body)
}

/// The `Content-Type` rule of [`decode_typed`].
pub fn check_content_type(content_type: Option<&str>, empty_body: bool) -> Result<(), ApiError> {
    let ct = match content_type {
        None | Some("") if empty_body => return Ok(()),
        None => "",
        Some(ct) => ct,
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (top, sub) = media.split_once('/').unwrap_or((media.as_str(), ""));
    if top.is_empty() || sub.is_empty() {
        return Err(ApiError::new(
            400,
            format!("malformed Content-Type header ({ct}): no media type"),
        ));
    }
    if media != "application/json" {
        return Err(ApiError::new(
            400,
            format!("unsupported Content-Type header ({ct}): must be 'application/json'"),
        ));
    }
    Ok(())
}

/// The request's `Content-Type` header, if it has one (bytes that are not text kept as
/// replacement characters, so the error can still show them).
pub(crate) fn content_type<B>(req: &hyper::Request<B>) -> Option<String> {
    req.headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Reads a JSON request's body (up to `limit` bytes) and decodes it by [`decode_typed`].
pub(crate) async fn read_json(
    kind: Kind,
    req: hyper::Request<hyper::body::Incoming>,
    limit: usize,
) -> Result<Value, ApiError> {
    let ct = content_type(&req);
    let body = crate::read_body(req, limit).await?;
    decode_typed(kind, ct.as_deref(), &body)
}

fn bad(msg: String) -> ApiError {
    // dockerd's words: "invalid JSON: " and what the decoder said.
    ApiError::new(400, format!("invalid JSON: {msg}"))
}

/// A Go type, as far as JSON decoding tells them apart.
#[derive(Clone, Copy)]
enum T {
    Bool,
    /// A signed integer (int, int64): no fraction, within i64.
    Int,
    /// An unsigned integer (uint16, uint32, uint64, os.FileMode).
    Uint,
    Str,
    /// Docker's `StrSlice`: a string or a list of strings.
    StrSlice,
    List(&'static T),
    /// `map[string]T`.
    Map(&'static T),
    Obj(&'static [(&'static str, T)]),
    /// An object whose fields come in several groups (Go's embedded structs).
    Objs(&'static [&'static [(&'static str, T)]]),
    /// Not checked (types barge does not read, or `interface{}`).
    Any,
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn check(v: &mut Value, t: T, path: &mut String) -> Result<(), String> {
    let kind = kind_of(v);
    let wrong = |want: &str, path: &str| {
        let at = if path.is_empty() { "the body" } else { path };
        Err(format!("{at} must be {want}, not {kind}"))
    };
    if v.is_null() {
        return Ok(());
    }
    match t {
        T::Any => Ok(()),
        T::Bool if v.is_boolean() => Ok(()),
        T::Bool => wrong("a boolean", path),
        T::Int if v.as_i64().is_some() => Ok(()),
        T::Int if v.is_number() => Err(format!("{path} must be an integer (64-bit), not {v}")),
        T::Int => wrong("an integer", path),
        T::Uint if v.as_u64().is_some() => Ok(()),
        T::Uint if v.is_number() => Err(format!("{path} must be an unsigned integer, not {v}")),
        T::Uint => wrong("an unsigned integer", path),
        T::Str if v.is_string() => Ok(()),
        T::Str => wrong("a string", path),
        T::StrSlice if v.is_string() => Ok(()),
        T::StrSlice => check(v, T::List(&T::Str), path)
            .map_err(|_| format!("{path} must be a string or a list of strings")),
        T::List(item) => {
            let Some(a) = v.as_array_mut() else {
                return wrong("a list", path);
            };
            for (i, x) in a.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                check(x, *item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        T::Map(item) => {
            let Some(o) = v.as_object_mut() else {
                return wrong("an object", path);
            };
            for (k, x) in o.iter_mut() {
                let len = path.len();
                path.push_str(&format!("[{k:?}]"));
                check(x, *item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        T::Obj(fields) => check_obj(v, &[fields], path),
        T::Objs(groups) => check_obj(v, groups, path),
    }
}

/// Checks the fields of an object. As Go's decoder, a key that matches a field only when
/// case is ignored (`detachKeys` for `DetachKeys`, as docker-py sends it) sets that field:
/// it is renamed to the field's name, unless the body also has the exact one.
fn check_obj(v: &mut Value, groups: &[&[(&str, T)]], path: &mut String) -> Result<(), String> {
    let kind = kind_of(v);
    let Some(o) = v.as_object_mut() else {
        let at = if path.is_empty() { "the body" } else { path };
        return Err(format!("{at} must be an object, not {kind}"));
    };
    for (k, ft) in groups.iter().flat_map(|g| g.iter()) {
        if !o.contains_key(*k) {
            let other = o.keys().find(|x| x.eq_ignore_ascii_case(k)).cloned();
            if let Some(x) = other.and_then(|other| o.remove(&other)) {
                o.insert(k.to_string(), x);
            }
        }
        if let Some(x) = o.get_mut(*k) {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            check(x, *ft, path)?;
            path.truncate(len);
        }
    }
    Ok(())
}

const STR_LIST: T = T::List(&T::Str);
const STR_MAP: T = T::Map(&T::Str);

/// Docker's container `Config`.
const CONFIG_FIELDS: &[(&str, T)] = &[
    ("Hostname", T::Str),
    ("Domainname", T::Str),
    ("User", T::Str),
    ("AttachStdin", T::Bool),
    ("AttachStdout", T::Bool),
    ("AttachStderr", T::Bool),
    ("ExposedPorts", T::Map(&T::Any)),
    ("Tty", T::Bool),
    ("OpenStdin", T::Bool),
    ("StdinOnce", T::Bool),
    ("Env", STR_LIST),
    ("Cmd", T::StrSlice),
    (
        "Healthcheck",
        T::Obj(&[
            ("Test", STR_LIST),
            ("Interval", T::Int),
            ("Timeout", T::Int),
            ("StartPeriod", T::Int),
            ("StartInterval", T::Int),
            ("Retries", T::Int),
        ]),
    ),
    ("ArgsEscaped", T::Bool),
    ("Image", T::Str),
    ("Volumes", T::Map(&T::Any)),
    ("WorkingDir", T::Str),
    ("Entrypoint", T::StrSlice),
    ("NetworkDisabled", T::Bool),
    ("MacAddress", T::Str),
    ("OnBuild", STR_LIST),
    ("Labels", STR_MAP),
    ("StopSignal", T::Str),
    ("StopTimeout", T::Int),
    ("Shell", T::StrSlice),
];
const CONFIG: T = T::Obj(CONFIG_FIELDS);

const THROTTLE: T = T::List(&T::Obj(&[("Path", T::Str), ("Rate", T::Uint)]));

/// Docker's `Resources` (part of `HostConfig`, and the body of update).
const RESOURCES: &[(&str, T)] = &[
    ("CpuShares", T::Int),
    ("Memory", T::Int),
    ("NanoCpus", T::Int),
    ("CgroupParent", T::Str),
    ("BlkioWeight", T::Uint),
    (
        "BlkioWeightDevice",
        T::List(&T::Obj(&[("Path", T::Str), ("Weight", T::Uint)])),
    ),
    ("BlkioDeviceReadBps", THROTTLE),
    ("BlkioDeviceWriteBps", THROTTLE),
    ("BlkioDeviceReadIOps", THROTTLE),
    ("BlkioDeviceWriteIOps", THROTTLE),
    ("CpuPeriod", T::Int),
    ("CpuQuota", T::Int),
    ("CpuRealtimePeriod", T::Int),
    ("CpuRealtimeRuntime", T::Int),
    ("CpusetCpus", T::Str),
    ("CpusetMems", T::Str),
    (
        "Devices",
        T::List(&T::Obj(&[
            ("PathOnHost", T::Str),
            ("PathInContainer", T::Str),
            ("CgroupPermissions", T::Str),
        ])),
    ),
    ("DeviceCgroupRules", STR_LIST),
    ("DeviceRequests", T::List(&T::Any)),
    ("KernelMemory", T::Int),
    ("KernelMemoryTCP", T::Int),
    ("MemoryReservation", T::Int),
    ("MemorySwap", T::Int),
    ("MemorySwappiness", T::Int),
    ("OomKillDisable", T::Bool),
    ("PidsLimit", T::Int),
    (
        "Ulimits",
        T::List(&T::Obj(&[
            ("Name", T::Str),
            ("Hard", T::Int),
            ("Soft", T::Int),
        ])),
    ),
    ("CpuCount", T::Int),
    ("CpuPercent", T::Int),
    ("IOMaximumIOps", T::Uint),
    ("IOMaximumBandwidth", T::Uint),
];

const RESTART_POLICY: T = T::Obj(&[("Name", T::Str), ("MaximumRetryCount", T::Int)]);

const UPDATE: T = T::Objs(&[RESOURCES, &[("RestartPolicy", RESTART_POLICY)]]);

const MOUNT: T = T::Obj(&[
    ("Target", T::Str),
    ("Source", T::Str),
    ("Type", T::Str),
    ("ReadOnly", T::Bool),
    ("Consistency", T::Str),
    (
        "BindOptions",
        T::Obj(&[
            ("Propagation", T::Str),
            ("NonRecursive", T::Bool),
            ("CreateMountpoint", T::Bool),
            ("ReadOnlyNonRecursive", T::Bool),
            ("ReadOnlyForceRecursive", T::Bool),
        ]),
    ),
    (
        "VolumeOptions",
        T::Obj(&[
            ("NoCopy", T::Bool),
            ("Labels", STR_MAP),
            ("Subpath", T::Str),
            (
                "DriverConfig",
                T::Obj(&[("Name", T::Str), ("Options", STR_MAP)]),
            ),
        ]),
    ),
    (
        "TmpfsOptions",
        T::Obj(&[
            ("SizeBytes", T::Int),
            ("Mode", T::Uint),
            ("Options", T::List(&STR_LIST)),
        ]),
    ),
]);

const HOST_ONLY: &[(&str, T)] = &[
    ("Binds", STR_LIST),
    ("ContainerIDFile", T::Str),
    (
        "LogConfig",
        T::Obj(&[("Type", T::Str), ("Config", STR_MAP)]),
    ),
    ("NetworkMode", T::Str),
    (
        "PortBindings",
        T::Map(&T::List(&T::Obj(&[
            ("HostIp", T::Str),
            ("HostPort", T::Str),
        ]))),
    ),
    ("RestartPolicy", RESTART_POLICY),
    ("AutoRemove", T::Bool),
    ("VolumeDriver", T::Str),
    ("VolumesFrom", STR_LIST),
    ("ConsoleSize", T::List(&T::Uint)),
    ("Annotations", STR_MAP),
    ("CapAdd", T::StrSlice),
    ("CapDrop", T::StrSlice),
    ("CgroupnsMode", T::Str),
    ("Dns", STR_LIST),
    ("DnsOptions", STR_LIST),
    ("DnsSearch", STR_LIST),
    ("ExtraHosts", STR_LIST),
    ("GroupAdd", STR_LIST),
    ("IpcMode", T::Str),
    ("Cgroup", T::Str),
    ("Links", STR_LIST),
    ("OomScoreAdj", T::Int),
    ("PidMode", T::Str),
    ("Privileged", T::Bool),
    ("PublishAllPorts", T::Bool),
    ("ReadonlyRootfs", T::Bool),
    ("SecurityOpt", STR_LIST),
    ("StorageOpt", STR_MAP),
    ("Tmpfs", STR_MAP),
    ("UTSMode", T::Str),
    ("UsernsMode", T::Str),
    ("ShmSize", T::Int),
    ("Sysctls", STR_MAP),
    ("Runtime", T::Str),
    ("Isolation", T::Str),
    ("Mounts", T::List(&MOUNT)),
    ("MaskedPaths", STR_LIST),
    ("ReadonlyPaths", STR_LIST),
    ("Init", T::Bool),
];

const HOST_CONFIG: T = T::Objs(&[RESOURCES, HOST_ONLY]);

const ENDPOINT: T = T::Obj(&[
    (
        "IPAMConfig",
        T::Obj(&[
            ("IPv4Address", T::Str),
            ("IPv6Address", T::Str),
            ("LinkLocalIPs", STR_LIST),
        ]),
    ),
    ("Links", STR_LIST),
    ("Aliases", STR_LIST),
    ("MacAddress", T::Str),
    ("DriverOpts", STR_MAP),
    ("NetworkID", T::Str),
    ("EndpointID", T::Str),
    ("Gateway", T::Str),
    ("IPAddress", T::Str),
    ("IPPrefixLen", T::Int),
    ("DNSNames", STR_LIST),
]);

const CREATE: T = T::Objs(&[
    CONFIG_FIELDS,
    &[
        ("HostConfig", HOST_CONFIG),
        (
            "NetworkingConfig",
            T::Obj(&[("EndpointsConfig", T::Map(&ENDPOINT))]),
        ),
    ],
]);

const EXEC_CREATE: T = T::Obj(&[
    ("AttachStdin", T::Bool),
    ("AttachStdout", T::Bool),
    ("AttachStderr", T::Bool),
    ("DetachKeys", T::Str),
    ("Tty", T::Bool),
    ("ConsoleSize", T::List(&T::Uint)),
    ("Env", STR_LIST),
    ("Cmd", STR_LIST),
    ("Privileged", T::Bool),
    ("User", T::Str),
    ("WorkingDir", T::Str),
]);

const EXEC_START: T = T::Obj(&[
    ("Detach", T::Bool),
    ("Tty", T::Bool),
    ("ConsoleSize", T::List(&T::Uint)),
]);

const NETWORK_CREATE: T = T::Obj(&[
    ("Name", T::Str),
    ("CheckDuplicate", T::Bool),
    ("Driver", T::Str),
    ("Scope", T::Str),
    ("EnableIPv4", T::Bool),
    ("EnableIPv6", T::Bool),
    (
        "IPAM",
        T::Obj(&[
            ("Driver", T::Str),
            ("Options", STR_MAP),
            (
                "Config",
                T::List(&T::Obj(&[
                    ("Subnet", T::Str),
                    ("IPRange", T::Str),
                    ("Gateway", T::Str),
                    ("AuxiliaryAddresses", STR_MAP),
                ])),
            ),
        ]),
    ),
    ("Internal", T::Bool),
    ("Attachable", T::Bool),
    ("Ingress", T::Bool),
    ("ConfigOnly", T::Bool),
    ("ConfigFrom", T::Obj(&[("Network", T::Str)])),
    ("Options", STR_MAP),
    ("Labels", STR_MAP),
]);

const NETWORK_CONNECT: T = T::Obj(&[("Container", T::Str), ("EndpointConfig", ENDPOINT)]);

const NETWORK_DISCONNECT: T = T::Obj(&[("Container", T::Str), ("Force", T::Bool)]);

const VOLUME_CREATE: T = T::Obj(&[
    ("Name", T::Str),
    ("Driver", T::Str),
    ("DriverOpts", STR_MAP),
    ("Labels", STR_MAP),
    ("ClusterVolumeSpec", T::Any),
]);

const AUTH: T = T::Obj(&[
    ("username", T::Str),
    ("password", T::Str),
    ("auth", T::Str),
    ("email", T::Str),
    ("serveraddress", T::Str),
    ("identitytoken", T::Str),
    ("registrytoken", T::Str),
]);

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: Kind, body: &str) -> String {
        match decode(kind, body.as_bytes()) {
            Ok(v) => panic!("{body} was accepted: {v}"),
            Err(e) => {
                assert_eq!(e.status, 400, "{body}");
                e.message
            }
        }
    }

    #[test]
    fn well_typed_bodies_pass_unchanged() {
        let body = r#"{"Image":"busybox","Cmd":"echo hi","Entrypoint":null,"Env":["A=b"],
            "Labels":{"a":"b"},"StopTimeout":3,"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},
            "Unknown":{"x":1},
            "HostConfig":{"Init":true,"Memory":67108864,"CapAdd":"NET_ADMIN","ConsoleSize":[24,80],
              "Mounts":[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"Mode":1777}}],
              "PortBindings":{"80/tcp":[{"HostPort":"8080"}]},"RestartPolicy":{"Name":"no"},
              "Ulimits":[{"Name":"nofile","Soft":1,"Hard":2}],"BlkioWeight":10},
            "NetworkingConfig":{"EndpointsConfig":{"n":{"Aliases":["a"],"IPAMConfig":null}}}}"#;
        let v = decode(Kind::ContainerCreate, body.as_bytes()).expect("valid");
        assert_eq!(v["HostConfig"]["Init"], true);
        assert_eq!(
            decode(Kind::ExecStart, b"").expect("empty"),
            serde_json::json!({})
        );
        assert_eq!(
            decode(Kind::Commit, b"null").expect("null"),
            serde_json::json!({})
        );
        for k in Kind::ALL {
            decode(k, b"{}").expect("an empty object is always fine");
        }
    }

    #[test]
    fn content_type_and_trailing_content_as_dockerd() {
        // The Engine API's JSON endpoints take `application/json`; dockerd refuses any other
        // type with 400 and these words, and lets an empty body come without a type.
        let e = decode_typed(Kind::ContainerCreate, Some("text/plain"), b"{}").unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(
            e.message,
            "unsupported Content-Type header (text/plain): must be 'application/json'"
        );
        let e = decode_typed(Kind::VolumeCreate, None, b"{}").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.starts_with("malformed Content-Type header"),
            "{}",
            e.message
        );
        decode_typed(Kind::ExecStart, None, b"").expect("no body, no type");
        decode_typed(Kind::Commit, Some("Application/JSON; charset=utf-8"), b"{}")
            .expect("parameters and case do not matter");
        let e =
            decode_typed(Kind::ExecCreate, Some("application/json"), b"{} trailing").unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (400, "unexpected content after JSON")
        );
        decode(Kind::ExecCreate, b" {} \n").expect("white space around the value is fine");
        let m = msg(Kind::ContainerUpdate, "{invalid json");
        assert!(m.starts_with("invalid JSON: "), "{m}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let m = msg(Kind::ContainerCreate, r#"{"HostConfig":{"Init":"yes"}}"#);
        assert!(
            m.contains("HostConfig.Init must be a boolean, not a string"),
            "{m}"
        );
        let m = msg(Kind::ContainerCreate, r#"{"HostConfig":{"Memory":1.5}}"#);
        assert!(m.contains("HostConfig.Memory must be an integer"), "{m}");
        let m = msg(Kind::ContainerCreate, r#"{"HostConfig":{"Memory":1e30}}"#);
        assert!(m.contains("HostConfig.Memory"), "{m}");
        let m = msg(Kind::ContainerCreate, r#"{"Env":["A=b",3]}"#);
        assert!(m.contains("Env[1] must be a string, not a number"), "{m}");
        let m = msg(Kind::ContainerCreate, r#"{"Labels":{"k":true}}"#);
        assert!(m.contains(r#"Labels["k"] must be a string"#), "{m}");
        let m = msg(Kind::ContainerCreate, r#"{"Cmd":{"a":1}}"#);
        assert!(
            m.contains("Cmd must be a string or a list of strings"),
            "{m}"
        );
        let m = msg(
            Kind::ContainerCreate,
            r#"{"HostConfig":{"Mounts":[{"TmpfsOptions":{"Mode":-1}}]}}"#,
        );
        assert!(
            m.contains("HostConfig.Mounts[0].TmpfsOptions.Mode must be an unsigned integer"),
            "{m}"
        );
        let m = msg(Kind::ExecCreate, r#"{"Cmd":"sh"}"#);
        assert!(m.contains("Cmd must be a list, not a string"), "{m}");
        let m = msg(
            Kind::NetworkCreate,
            r#"{"IPAM":{"Config":[{"Subnet":10}]}}"#,
        );
        assert!(m.contains("IPAM.Config[0].Subnet must be a string"), "{m}");
        let m = msg(Kind::VolumeCreate, "[]");
        assert!(m.contains("expected an object, not a list"), "{m}");
        let m = msg(
            Kind::ContainerUpdate,
            r#"{"RestartPolicy":{"MaximumRetryCount":"3"}}"#,
        );
        assert!(m.contains("RestartPolicy.MaximumRetryCount"), "{m}");
        let m = msg(Kind::ContainerCreate, "{not json");
        assert!(m.starts_with("invalid JSON: key must be a string"), "{m}");
    }
}
