//! Moving images: `POST /images/create?fromImage` (pull), `POST /images/{name}/push` and
//! `POST /auth` (login check), on barge-image's registry client.
//!
//! Progress is Docker's JSON stream, one object per line. An error before the first
//! progress line is an ordinary HTTP error (so `docker pull` of an unknown repository gets
//! a 404 and its message); an error after it is a final `{"errorDetail":..,"error":..}`
//! line, as dockerd does once it has started streaming.

use std::future::Future;

use barge_image::auth::{parse_x_registry_auth, Credentials};
use barge_image::progress::Progress;
use barge_image::registry::{self, RegistryOptions};
use barge_image::Reference;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};

use crate::util::{channel_body, json_response, ApiError, Body, Query};
use crate::Api;

type R = Result<Response<Body>, ApiError>;

/// The HTTP status of a registry-side failure.
fn status_of(e: &barge_image::Error) -> u16 {
    use barge_image::Error as E;
    match e {
        E::RemoteNotFound { .. } | E::ImageNotFound(_) => 404,
        E::Reference(_) => 400,
        // Not 401: the docker CLI answers a 401 on pull/push by prompting for a login.
        E::Unauthorized { .. } => 403,
        E::NoMatchingPlatform { .. } => 404,
        _ => 500,
    }
}

fn api_error(e: barge_image::Error) -> ApiError {
    ApiError::new(status_of(&e), e.to_string())
}

/// Registry options for a request: the daemon's insecure registries, the client's
/// `X-Registry-Auth`, and never the daemon host's own `config.json` (the daemon only uses
/// the credentials a client sends, as dockerd does).
pub(crate) fn options(api: &Api, req: &Request<Incoming>) -> Result<RegistryOptions, ApiError> {
    let credentials = match req
        .headers()
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
    {
        Some(h) => parse_x_registry_auth(h)
            .map_err(|e| ApiError::new(400, format!("invalid X-Registry-Auth header: {e}")))?,
        None => None,
    };
    Ok(RegistryOptions {
        insecure_registries: api.info.insecure_registries.clone(),
        credentials,
        // A directory that holds no config.json: anonymous unless the client sent credentials.
        docker_config_dir: Some(std::path::PathBuf::from(&api.info.data_root).join("no-auth")),
        ..RegistryOptions::default()
    })
}

/// `POST /images/create?fromImage=..&tag=..(&platform=..)`. As dockerd (and the Engine
/// API's description of `tag`): with neither a `tag` nor a tag or digest in `fromImage`,
/// every tag of the repository is pulled; that is what `docker pull --all-tags` sends
/// (the docker CLI always sends a tag otherwise).
pub(crate) async fn pull(api: &Api, q: &Query, req: Request<Incoming>) -> R {
    // dockerd accepts a trailing ':' (old `pull -a` clients sent one).
    let image = q
        .get("fromImage")
        .unwrap_or("")
        .trim_end_matches(':')
        .to_string();
    if image.is_empty() {
        return Err(ApiError::new(
            400,
            "fromImage or fromSrc is required".into(),
        ));
    }
    let full = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.contains(':') => format!("{image}@{t}"),
        Some(t) => format!("{image}:{t}"),
        None => image.clone(),
    };
    let reference = Reference::parse_name_only(&full)
        .map_err(|e| ApiError::new(400, format!("invalid reference format: {e}")))?;
    let all_tags = reference.tag().is_none() && reference.digest().is_none();
    let mut opts = options(api, &req)?;
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        opts.platform =
            Some(barge_image::manifest::PlatformSpec::parse(p).map_err(|e| ApiError::new(400, e))?);
    }
    let store = api.engine.store.clone();
    let engine = api.engine.clone();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let progress = move |p: Progress| {
        for v in p.to_docker_json() {
            let _ = tx.send(v);
        }
    };
    if all_tags {
        let job = async move { registry::pull_all_tags(store, &reference, &opts, &progress).await };
        return stream(job, rx, move |reports| {
            for r in reports {
                engine.emit("image", "pull", &r.reference.familiar(), Default::default());
            }
            Vec::new()
        })
        .await;
    }
    let name = reference.familiar();
    let job = async move { registry::pull(store, &reference, &opts, &progress).await };
    stream(job, rx, move |_| {
        engine.emit("image", "pull", &name, Default::default());
        Vec::new()
    })
    .await
}

/// `POST /images/{name}/push?tag=..`.
pub(crate) async fn push(api: &Api, name: &str, q: &Query, req: Request<Incoming>) -> R {
    let full = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let reference = Reference::parse(&full)
        .map_err(|e| ApiError::new(400, format!("invalid reference format: {e}")))?;
    // An unknown image is a 404 before anything is streamed.
    api.engine
        .store
        .resolve(&reference.to_string())
        .map_err(|_| {
            ApiError::new(
                404,
                format!("An image does not exist locally with the tag: {name}"),
            )
        })?;
    let opts = options(api, &req)?;
    let store = api.engine.store.clone();
    let engine = api.engine.clone();
    let familiar = reference.familiar();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let job = async move {
        let progress = move |p: Progress| {
            for v in p.to_docker_json() {
                let _ = tx.send(v);
            }
        };
        registry::push(store, &reference, &opts, &progress).await
    };
    stream(job, rx, move |_| {
        engine.emit("image", "push", &familiar, Default::default());
        Vec::new()
    })
    .await
}

/// `POST /auth`: checks the credentials against the registry; the client stores them.
pub(crate) async fn auth(api: &Api, body: Bytes) -> R {
    let v = crate::decode::decode(crate::decode::Kind::Auth, &body)
        .map_err(|e| ApiError::new(400, format!("invalid auth configuration: {}", e.message)))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let username = field("username");
    if username.is_empty() {
        return Err(ApiError::new(400, "a user name is required".into()));
    }
    let server = match field("serveraddress") {
        s if s.is_empty() => "docker.io".to_string(),
        s => s,
    };
    let creds = Credentials {
        username,
        password: field("password"),
    };
    let opts = RegistryOptions {
        insecure_registries: api.info.insecure_registries.clone(),
        ..RegistryOptions::default()
    };
    match registry::check_credentials(&server, &creds, &opts).await {
        Ok(()) => Ok(json_response(
            200,
            &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
        )),
        Err(e @ barge_image::Error::Unauthorized { .. }) => Err(ApiError::new(
            401,
            format!("login attempt to {server} failed: {e}"),
        )),
        Err(e) => Err(ApiError::new(500, e.to_string())),
    }
}

/// Runs `job` (which sends its progress on the sender paired with `rx`) and answers with its
/// progress as a JSON-lines stream; `done` gives the last lines of a success.
pub(crate) async fn stream<T: Send + 'static>(
    job: impl Future<Output = barge_image::Result<T>> + Send + 'static,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
    done: impl FnOnce(&T) -> Vec<Value> + Send + 'static,
) -> R {
    let mut task = tokio::spawn(job);
    // Hold the opening lines ("Pulling from ..", "The push refers to ..") back until the job
    // shows it reached the registry's content: a failure before that is an HTTP error.
    let mut held: Vec<Value> = Vec::new();
    loop {
        tokio::select! {
            biased;
            v = rx.recv() => match v {
                Some(v) => {
                    let opening = is_opening(&v);
                    held.push(v);
                    if !opening {
                        break;
                    }
                }
                // The job ended (its progress sender is gone): decide on its result.
                None => {
                    let r = (&mut task).await;
                    return match r {
                        Err(e) => Err(ApiError::new(500, format!("registry task failed: {e}"))),
                        Ok(Err(e)) if held.iter().all(is_opening) => Err(api_error(e)),
                        Ok(res) => Ok(respond(held, rx, async move { res }, done)),
                    };
                }
            },
            r = &mut task => {
                while let Ok(v) = rx.try_recv() {
                    held.push(v);
                }
                return match r {
                    Err(e) => Err(ApiError::new(500, format!("registry task failed: {e}"))),
                    Ok(Err(e)) if held.iter().all(is_opening) => Err(api_error(e)),
                    Ok(res) => Ok(respond(held, rx, async move { res }, done)),
                };
            }
        }
    }
    let rest = async move {
        match task.await {
            Ok(r) => r,
            Err(e) => Err(barge_image::Error::Registry {
                registry: String::new(),
                reason: format!("task failed: {e}"),
            }),
        }
    };
    Ok(respond(held, rx, rest, done))
}

/// Whether a progress line only announces the operation.
fn is_opening(v: &Value) -> bool {
    v.get("status")
        .and_then(Value::as_str)
        .is_some_and(|s| s.starts_with("Pulling from") || s.starts_with("The push refers to"))
}

fn respond<T: Send + 'static>(
    first: Vec<Value>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
    result: impl Future<Output = barge_image::Result<T>> + Send + 'static,
    done: impl FnOnce(&T) -> Vec<Value> + Send + 'static,
) -> Response<Body> {
    let (out, body_rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let line = |v: &Value| Bytes::from(format!("{v}\n"));
        for v in first {
            let _ = out.send(line(&v)).await;
        }
        while let Some(v) = rx.recv().await {
            let _ = out.send(line(&v)).await;
        }
        match result.await {
            Ok(t) => {
                for v in done(&t) {
                    let _ = out.send(line(&v)).await;
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let _ = out
                    .send(line(
                        &json!({"errorDetail": {"message": msg}, "error": msg}),
                    ))
                    .await;
            }
        }
    });
    let mut r = Response::new(channel_body(body_rx));
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_announcements_are_held_back() {
        assert!(is_opening(
            &json!({"status": "Pulling from library/busybox", "id": "1"})
        ));
        assert!(is_opening(
            &json!({"status": "The push refers to repository [127.0.0.1:5000/x]"})
        ));
        assert!(!is_opening(
            &json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "abc"})
        ));
        assert!(!is_opening(&json!({"error": "x"})));
    }

    #[test]
    fn registry_errors_map_to_docker_statuses() {
        let nf = barge_image::Error::RemoteNotFound {
            reference: "x".into(),
            reason: "manifest unknown".into(),
        };
        assert_eq!(status_of(&nf), 404);
        let un = barge_image::Error::Unauthorized {
            registry: "r".into(),
            reason: "401".into(),
        };
        assert_eq!(status_of(&un), 403);
        let conn = barge_image::Error::Registry {
            registry: "r".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(status_of(&conn), 500);
    }
}
