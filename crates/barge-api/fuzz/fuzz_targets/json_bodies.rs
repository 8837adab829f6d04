//! Fuzzes the decoding of every JSON body the API takes from clients
//! (`barge_api::decode`), and what the engine derives from an accepted container create
//! body (`barge_engine::spec::build`: capabilities, resources, mounts, ulimits, seccomp
//! options, ...). The first byte picks the kind of body, the rest is the body.
//! Nothing may panic; a refused body is a 400 whose message says the JSON is invalid;
//! an accepted one is an object.
#![no_main]
use barge_api::decode::{decode, Kind};
use barge_engine::model::{Container, State};
use barge_engine::spec::NetMode;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&k, body)) = data.split_first() else {
        return;
    };
    let kind = Kind::ALL[k as usize % Kind::ALL.len()];
    let v = match decode(kind, body) {
        Ok(v) => v,
        Err(e) => {
            assert_eq!(e.status, 400, "{}", e.message);
            assert!(
                e.message.starts_with("invalid JSON: ")
                    || e.message == "unexpected content after JSON",
                "{}",
                e.message
            );
            return;
        }
    };
    let Value::Object(mut cfg) = v else {
        panic!("accepted a body that is not an object");
    };
    if kind != Kind::ContainerCreate {
        return;
    }
    // As the engine's create does before it touches the disk: the spec must build or fail
    // with an error, never panic. (No user: that needs the image's /etc/passwd.)
    let host_config = match cfg.remove("HostConfig") {
        Some(h @ Value::Object(_)) => h,
        _ => json!({}),
    };
    cfg.insert("User".into(), json!(""));
    let c = Container {
        id: "f".repeat(64),
        name: "fuzz".into(),
        created: String::new(),
        image_name: "busybox".into(),
        image_id: String::new(),
        config: Value::Object(cfg),
        host_config,
        state: State::default(),
        restart_count: 0,
        manually_stopped: false,
        snapshot: String::new(),
        mount_points: Vec::new(),
    };
    let _ = barge_engine::spec::build(
        &c,
        Path::new("/nonexistent"),
        Path::new("/nonexistent"),
        &NetMode::Host,
        &[],
    );
});
