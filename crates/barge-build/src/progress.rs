//! Build progress: the events a build reports, and their two renderings: Docker's classic
//! builder JSON stream (what `POST /build` answers, one JSON object per line) and a plain
//! human log (`barge build --progress=plain`).

use std::time::Duration;

use serde_json::{json, Value};

/// Something that happened during a build.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A step starts: `Step 2/5 : RUN make`.
    Step {
        /// The step number, from 1.
        number: usize,
        /// How many steps the build has.
        total: usize,
        /// The instruction as written (continuations joined).
        instruction: String,
    },
    /// The step's result came from the build cache.
    CacheHit,
    /// A RUN starts in container `id` (Docker's ` ---> Running in <id>`).
    Running {
        /// The build container's id.
        id: String,
    },
    /// What a RUN wrote to its stdout (whole lines, as they come).
    Output(String),
    /// What a RUN wrote to its stderr: the classic builder's stream shows it in red
    /// (`\u{1b}[91m` ... `\u{1b}[0m`, as dockerd); the plain log uncoloured.
    Stderr(String),
    /// The step ended with the image (config) `id` (`sha256:...`).
    StepDone {
        /// The full id of the step's image config.
        id: String,
        /// How long the step took.
        elapsed: Duration,
    },
    /// A warning (unused build args, ...).
    Warning(String),
    /// Build triggers of the base image run (ONBUILD).
    Triggers {
        /// How many.
        count: usize,
    },
    /// The image is built: `id` is `sha256:<hex>`.
    Built {
        /// The image id.
        id: String,
        /// Quiet mode: only the id is reported.
        quiet: bool,
    },
    /// The image was tagged `name`.
    Tagged(String),
    /// A status line of a base image's pull (`latest: Pulling from library/busybox`).
    Pull(String),
    /// The build failed.
    Error(String),
}

/// What dockerd's classic builder puts before a RUN's stderr in a `stream` message (red).
pub const STDERR_START: &str = "\u{1b}[91m";
/// What it puts after (reset).
pub const STDERR_END: &str = "\u{1b}[0m";

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

fn stream(s: String) -> Value {
    json!({ "stream": s })
}

impl Event {
    /// The objects of Docker's classic-builder JSON stream for this event (each to be
    /// written as one line). Empty for events the classic builder has no message for.
    pub fn to_json(&self) -> Vec<Value> {
        match self {
            Event::Step {
                number,
                total,
                instruction,
            } => vec![stream(format!("Step {number}/{total} : {instruction}\n"))],
            Event::CacheHit => vec![stream(" ---> Using cache\n".into())],
            Event::Running { id } => vec![stream(format!(" ---> Running in {}\n", short(id)))],
            Event::Output(s) => vec![stream(s.clone())],
            Event::Stderr(s) => vec![stream(format!("{STDERR_START}{s}{STDERR_END}"))],
            Event::StepDone { id, .. } => vec![stream(format!(" ---> {}\n", short(id)))],
            Event::Warning(w) => vec![stream(format!("[Warning] {w}\n"))],
            Event::Triggers { count } => vec![stream(format!(
                "# Executing {count} build trigger{}\n",
                if *count == 1 { "" } else { "s" }
            ))],
            Event::Built { id, quiet } => {
                let mut v = vec![json!({ "aux": { "ID": id } })];
                if *quiet {
                    v.push(stream(format!("{id}\n")));
                } else {
                    v.push(stream(format!("Successfully built {}\n", short(id))));
                }
                v
            }
            Event::Tagged(t) => vec![stream(format!("Successfully tagged {t}\n"))],
            Event::Pull(s) => vec![json!({ "status": s })],
            Event::Error(m) => vec![json!({ "errorDetail": { "message": m }, "error": m })],
        }
    }

    /// The plain human rendering (each step, its cache hit, RUN output, timing); `None`
    /// for events that print nothing.
    pub fn to_plain(&self) -> Option<String> {
        Some(match self {
            Event::Step {
                number,
                total,
                instruction,
            } => format!("Step {number}/{total} : {instruction}\n"),
            Event::CacheHit => " ---> Using cache\n".into(),
            Event::Running { id } => format!(" ---> Running in {}\n", short(id)),
            Event::Output(s) | Event::Stderr(s) => s.clone(),
            Event::StepDone { id, elapsed } => {
                format!(" ---> {} ({:.2}s)\n", short(id), elapsed.as_secs_f64())
            }
            Event::Warning(w) => format!("[Warning] {w}\n"),
            Event::Triggers { count } => format!("# Executing {count} build trigger(s)\n"),
            Event::Built { id, quiet: true } => format!("{id}\n"),
            Event::Built { id, .. } => format!("Successfully built {}\n", short(id)),
            Event::Tagged(t) => format!("Successfully tagged {t}\n"),
            Event::Pull(s) => format!("{s}\n"),
            Event::Error(m) => format!("ERROR: {m}\n"),
        })
    }
}

/// Where a build reports its [`Event`]s. Called from the build's threads (stages may build
/// in parallel), so it must be `Sync`; closures `Fn(&Event) + Sync` implement it.
pub trait Progress: Sync {
    /// Reports one event.
    fn event(&self, event: &Event);
}

impl<F: Fn(&Event) + Sync> Progress for F {
    fn event(&self, event: &Event) {
        self(event)
    }
}

/// A [`Progress`] that drops everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: &Event) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_builder_json_stream() {
        let id = format!("sha256:{}", "ab".repeat(32));
        let lines: Vec<String> = [
            Event::Step {
                number: 1,
                total: 5,
                instruction: "FROM busybox".into(),
            },
            Event::CacheHit,
            Event::StepDone {
                id: id.clone(),
                elapsed: Duration::from_millis(3),
            },
            Event::Built {
                id: id.clone(),
                quiet: false,
            },
            Event::Tagged("x:y".into()),
            Event::Error("boom".into()),
        ]
        .iter()
        .flat_map(|e| e.to_json())
        .map(|v| v.to_string())
        .collect();
        assert_eq!(
            lines,
            [
                r#"{"stream":"Step 1/5 : FROM busybox\n"}"#.to_string(),
                r#"{"stream":" ---> Using cache\n"}"#.to_string(),
                r#"{"stream":" ---> abababababab\n"}"#.to_string(),
                format!(r#"{{"aux":{{"ID":"{id}"}}}}"#),
                r#"{"stream":"Successfully built abababababab\n"}"#.to_string(),
                r#"{"stream":"Successfully tagged x:y\n"}"#.to_string(),
                r#"{"error":"boom","errorDetail":{"message":"boom"}}"#.to_string(),
            ]
        );
        let quiet = Event::Built {
            id: id.clone(),
            quiet: true,
        }
        .to_json();
        assert_eq!(quiet[1]["stream"], format!("{id}\n"));
        assert_eq!(
            Event::StepDone {
                id,
                elapsed: Duration::from_millis(1500)
            }
            .to_plain()
            .as_deref(),
            Some(" ---> abababababab (1.50s)\n")
        );
    }
}
