//! config.json validation: each bad input names its field (no root needed).

use barge_runtime::spec;
use serde_json::{json, Value};

fn base() -> Value {
    json!({
        "ociVersion": "1.2.0",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "hostname": "h",
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}]}
    })
}

fn check(v: &Value) -> Result<(), String> {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("rootfs")).unwrap();
    std::fs::write(d.path().join("config.json"), v.to_string()).unwrap();
    spec::load(d.path()).map(|_| ()).map_err(|e| e.to_string())
}

fn fails(v: Value, want: &str) {
    let e = check(&v).expect_err(want);
    assert!(e.contains(want), "{e:?} lacks {want:?}");
}

#[test]
fn good_spec_loads() {
    check(&base()).unwrap();
}

#[test]
fn bad_specs_name_the_field() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("config.json"), "{\"ociVersion\": ").unwrap();
    let e = spec::load(d.path()).unwrap_err().to_string();
    assert!(e.contains("malformed JSON"), "{e}");

    let mut v = base();
    v["root"]["path"] = json!("missing");
    fails(v, "root.path");
    let mut v = base();
    v["linux"]["namespaces"][2]["type"] = json!("foo");
    fails(v, "linux.namespaces[2].type: unknown namespace \"foo\"");
    let mut v = base();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "pid"}));
    fails(v, "linux.namespaces[5].type: duplicate namespace");
    let mut v = base();
    v["process"]["capabilities"] = json!({"effective": ["CAP_KILL", "CAP_NOPE"]});
    fails(
        v,
        "process.capabilities.effective[1]: unknown capability \"CAP_NOPE\"",
    );
    let mut v = base();
    v["process"]["cwd"] = json!("rel");
    fails(v, "process.cwd");
    let mut v = base();
    v["process"]["cwd"] = json!("");
    fails(v, "process.cwd");
    for (k, val, want) in [
        ("kernel.shmmax", "1+1", "contains '+'"),
        ("kernel.shmmax", "a=b", "contains '+'"),
        ("kernel.shmmax", "1\n", "newline"),
        ("kernel.core_pattern", "x", "not a namespaced sysctl"),
        ("vm.swappiness", "1", "not a namespaced sysctl"),
        ("net/../../x", "1", "invalid sysctl name"),
    ] {
        let mut v = base();
        v["linux"]["sysctl"] = json!({k: val});
        fails(v, want);
    }
    let mut v = base();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    v["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    fails(
        v,
        "linux.sysctl.\"net.ipv4.ip_forward\": requires a new net namespace",
    );
    let mut v = base();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "uts");
    fails(v, "hostname: requires a uts namespace");
    let mut v = base();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    fails(v, "linux.uidMappings");
    let mut v = base();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    fails(v, "a mount namespace is required");
}
