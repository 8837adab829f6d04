//! Credential helpers named by `credsStore` / `credHelpers` in Docker's `config.json`:
//! fake `docker-credential-*` programs written by the test into a directory put first on
//! `$PATH`; they keep what they are given in a JSON file and log every call, so the test
//! sees exactly what barge asked (docker-credential-helpers' get/store/erase protocol).
//!
//! One test function only: it changes `$PATH` of this test process before anything else
//! runs in it.

use barge_image::auth::{self, CredentialStore, Credentials};
use barge_image::Error;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A helper in Python: `get`/`erase` read a server URL on stdin, `store` a JSON object;
/// each call appends `<action> <stdin>` to `calls.log` beside its `state.json`.
const FAKE_HELPER: &str = r#"#!/usr/bin/python3
import json, os, sys
here = os.environ["FAKE_HELPER_STATE"]
name = os.path.basename(sys.argv[0])
action = sys.argv[1]
data = sys.stdin.read()
with open(os.path.join(here, "calls.log"), "a") as f:
    f.write(f"{name} {action} {data}\n")
path = os.path.join(here, name + ".json")
state = json.load(open(path)) if os.path.exists(path) else {}
if action == "get":
    if data not in state:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({"ServerURL": data, "Username": state[data][0], "Secret": state[data][1]}))
elif action == "store":
    j = json.loads(data)
    state[j["ServerURL"]] = [j["Username"], j["Secret"]]
    json.dump(state, open(path, "w"))
elif action == "erase":
    if data not in state:
        print("credentials not found in native keychain")
        sys.exit(1)
    del state[data]
    json.dump(state, open(path, "w"))
else:
    print("unknown action")
    sys.exit(1)
"#;

/// A helper that always fails with a message.
const BROKEN_HELPER: &str = "#!/bin/sh\ncat >/dev/null\necho 'keyring is locked' >&2\nexit 3\n";

/// A helper holding only an identity token (docker's `<token>` user).
const TOKEN_HELPER: &str = "#!/bin/sh\ncat >/dev/null\necho '{\"ServerURL\":\"x\",\"Username\":\"<token>\",\"Secret\":\"refresh\"}'\n";

fn install(bin: &Path, name: &str, script: &str) {
    let p = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&p, script).expect("write helper");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn calls(state: &Path) -> Vec<String> {
    std::fs::read_to_string(state.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn config(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("config.json"))
        .expect("json")
}

#[test]
fn creds_store_and_cred_helpers_are_used_as_docker_uses_them() {
    let td = tempfile::tempdir().expect("tempdir");
    let (bin, state, cfg) = (
        td.path().join("bin"),
        td.path().join("state"),
        td.path().join("docker-config"),
    );
    for d in [&bin, &state, &cfg] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    install(&bin, "fake", FAKE_HELPER);
    install(&bin, "other", FAKE_HELPER);
    install(&bin, "broken", BROKEN_HELPER);
    install(&bin, "token", TOKEN_HELPER);
    let path = std::env::var("PATH").unwrap_or_default();
    // Only this test runs in this process, and it sets these before any other thread
    // of it reads the environment.
    std::env::set_var("PATH", format!("{}:{path}", bin.display()));
    std::env::set_var("FAKE_HELPER_STATE", &state);

    std::fs::write(
        cfg.join("config.json"),
        r#"{"credsStore":"fake","credHelpers":{"other.example:5000":"other","broken.example":"broken","token.example":"token"},"psFormat":"table"}"#,
    )
    .expect("config");
    let c = Some(cfg.as_path());
    let bob = Credentials {
        username: "bob".into(),
        password: "s3cret-pw".into(),
    };

    // Which store each registry uses: credHelpers by host, else credsStore.
    assert_eq!(
        auth::credential_store(c, "127.0.0.1:5000").expect("store"),
        CredentialStore::Helper("fake".into())
    );
    assert_eq!(
        auth::credential_store(c, "other.example:5000").expect("store"),
        CredentialStore::Helper("other".into())
    );

    // store: the helper gets the JSON; the file only lists the registry, no secret.
    assert_eq!(
        auth::store_credentials(c, "127.0.0.1:5000", &bob).expect("store"),
        CredentialStore::Helper("fake".into())
    );
    let raw = std::fs::read_to_string(cfg.join("config.json")).expect("read");
    assert!(
        !raw.contains("s3cret-pw"),
        "secret written to the file: {raw}"
    );
    let j = config(&cfg);
    assert_eq!(j["auths"]["127.0.0.1:5000"], serde_json::json!({}));
    assert_eq!(j["psFormat"], "table");
    let log = calls(&state);
    assert_eq!(log.len(), 1, "{log:?}");
    let sent = log[0]
        .strip_prefix("docker-credential-fake store ")
        .expect("a store call");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(sent).expect("JSON on stdin"),
        serde_json::json!({"ServerURL": "127.0.0.1:5000", "Username": "bob", "Secret": "s3cret-pw"})
    );

    // get: through the helper, with the server as docker passes it.
    assert_eq!(
        auth::load_credentials(c, "127.0.0.1:5000").expect("load"),
        Some(bob.clone())
    );
    assert_eq!(
        calls(&state).last().map(String::as_str),
        Some("docker-credential-fake get 127.0.0.1:5000")
    );
    // Docker Hub goes by docker's historical key; not found is "no credentials".
    assert_eq!(auth::load_credentials(c, "docker.io").expect("hub"), None);
    assert_eq!(
        calls(&state).last().map(String::as_str),
        Some("docker-credential-fake get https://index.docker.io/v1/")
    );

    // credHelpers wins over credsStore for its host.
    auth::store_credentials(c, "other.example:5000", &bob).expect("store other");
    assert_eq!(
        calls(&state)
            .last()
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>()),
        Some(vec!["docker-credential-other", "store"])
    );
    assert_eq!(
        auth::load_credentials(c, "other.example:5000").expect("load other"),
        Some(bob.clone())
    );

    // A failing helper is a clear error naming it and its message; nothing written.
    let before = std::fs::read(cfg.join("config.json")).expect("read");
    let e = auth::load_credentials(c, "broken.example").expect_err("broken get");
    assert!(matches!(e, Error::CredentialHelper { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("docker-credential-broken get") && msg.contains("keyring is locked"),
        "{msg}"
    );
    let e = auth::store_credentials(c, "broken.example", &bob).expect_err("broken store");
    assert!(e.to_string().contains("keyring is locked"), "{e}");
    assert_eq!(
        std::fs::read(cfg.join("config.json")).expect("read"),
        before,
        "a failed store changed config.json"
    );
    // An identity token alone is not usable: anonymous.
    assert_eq!(
        auth::load_credentials(c, "token.example").expect("token"),
        None
    );

    // erase: through the helper and out of the file.
    assert!(auth::remove_credentials(c, "127.0.0.1:5000").expect("erase"));
    assert_eq!(
        calls(&state).last().map(String::as_str),
        Some("docker-credential-fake erase 127.0.0.1:5000")
    );
    assert!(config(&cfg)["auths"].get("127.0.0.1:5000").is_none());
    assert_eq!(
        auth::load_credentials(c, "127.0.0.1:5000").expect("load"),
        None
    );
    assert!(!auth::remove_credentials(c, "127.0.0.1:5000").expect("erase twice"));

    // A helper name that would be a path is refused, and so is a missing helper.
    std::fs::write(cfg.join("config.json"), r#"{"credsStore":"../../tmp/x"}"#).expect("cfg");
    let e = auth::load_credentials(c, "127.0.0.1:5000").expect_err("path name");
    assert!(e.to_string().contains("invalid helper name"), "{e}");
    std::fs::write(cfg.join("config.json"), r#"{"credsStore":"absent"}"#).expect("cfg");
    let e = auth::load_credentials(c, "127.0.0.1:5000").expect_err("missing helper");
    assert!(e.to_string().contains("docker-credential-absent"), "{e}");
}
