//! The opt-in Prometheus endpoint (`barge daemon --metrics-addr 127.0.0.1:9323`, daemon.json
//! `metrics-addr`, as dockerd names it): `GET /metrics` in the Prometheus text exposition
//! format 0.0.4.
//!
//! Per container (labels `id`, `name`, `image`): CPU, memory, block I/O, network and pids,
//! taken with the same `barge_engine::stats::sample` that `GET /containers/{id}/stats` uses
//! (so the two never disagree), plus the restart counter. Engine-wide: containers by state,
//! the image count, the images' and the distinct layers' disk use.
//!
//! The encoder is a few lines written here rather than a metrics crate: every value is read
//! fresh at scrape time, so there is no registry of live metric objects to keep.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

use barge_engine::model::Container;
use barge_engine::stats::Sample;
use barge_engine::Engine;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

use crate::util::{full, Body};

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Docker's container states; each is reported, zero when no container is in it, so a
/// dashboard sees a state go to zero rather than vanish.
const STATES: [&str; 7] = [
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
];

/// Metric type, as written on the `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that only goes up (name ends in `_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
}

/// One metric family: its `# HELP`/`# TYPE` header and its samples.
#[derive(Debug)]
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    /// An empty family.
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample with these labels.
    pub fn add(&mut self, labels: Vec<(&'static str, String)>, v: f64) {
        self.samples.push((labels, v));
    }

    /// Writes the family in the text format. A family with no samples still gets its header,
    /// which the format allows and which documents the metric.
    pub fn encode(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
        for (labels, v) in &self.samples {
            out.push_str(self.name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, val)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_label(val));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", format_value(*v));
        }
    }
}

/// `# HELP` text: backslash and newline escaped.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value: backslash, double quote and newline escaped.
pub fn escape_label(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// Integers print without a fraction (counters of bytes stay exact up to 2^53).
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn labels(c: &Container) -> Vec<(&'static str, String)> {
    vec![
        ("id", c.id.clone()),
        ("name", c.name.clone()),
        ("image", c.image_name.clone()),
    ]
}

fn with(
    mut l: Vec<(&'static str, String)>,
    k: &'static str,
    v: String,
) -> Vec<(&'static str, String)> {
    l.push((k, v));
    l
}

/// Builds the whole exposition text. Blocking (reads cgroup files and the image index): call
/// it on a blocking thread.
pub fn render(e: &Engine) -> String {
    use Kind::{Counter, Gauge};
    let cs = e.all();
    let mut out = String::with_capacity(4096 + cs.len() * 2048);

    let mut by_state = Family::new("barge_engine_containers", Gauge, "Containers by state.");
    for s in STATES {
        let n = cs.iter().filter(|c| c.state.status == s).count();
        by_state.add(vec![("state", s.to_string())], n as f64);
    }
    by_state.encode(&mut out);

    let images = e.store.list_images();
    let layers = e.store.layers_usage();
    let mut fam = Family::new("barge_engine_images", Gauge, "Images in the store.");
    let mut img_bytes = Family::new(
        "barge_engine_images_size_bytes",
        Gauge,
        "Sum of the images' uncompressed sizes (a layer shared by images counts once per image).",
    );
    if let Ok(list) = &images {
        fam.add(vec![], list.len() as f64);
        img_bytes.add(vec![], list.iter().map(|i| i.size).sum::<u64>() as f64);
    }
    fam.encode(&mut out);
    img_bytes.encode(&mut out);
    let mut nl = Family::new(
        "barge_engine_layers",
        Gauge,
        "Distinct image layers (each is unpacked once).",
    );
    let mut lb = Family::new(
        "barge_engine_layers_size_bytes",
        Gauge,
        "Uncompressed bytes of the distinct image layers.",
    );
    if let Ok((n, bytes)) = layers {
        nl.add(vec![], n as f64);
        lb.add(vec![], bytes as f64);
    }
    nl.encode(&mut out);
    lb.encode(&mut out);

    let mut restarts = Family::new(
        "barge_container_restarts_total",
        Counter,
        "Times the container was restarted by its restart policy.",
    );
    for c in &cs {
        restarts.add(labels(c), c.restart_count as f64);
    }
    restarts.encode(&mut out);

    // Only running (or paused) containers have a cgroup to read; one that stops between the
    // listing and the read is skipped rather than reported as zeros.
    let samples: Vec<(&Container, Sample)> = cs
        .iter()
        .filter(|c| c.running())
        .filter_map(|c| barge_engine::stats::sample(c).ok().map(|s| (c, s)))
        .collect();
    container_families(&samples, &mut out);
    out
}

/// Nanoseconds as seconds.
fn ns(v: u64) -> f64 {
    v as f64 / 1e9
}

fn container_families(samples: &[(&Container, Sample)], out: &mut String) {
    use Kind::{Counter, Gauge};
    type Get = fn(&Sample) -> f64;
    let simple: [(&'static str, Kind, &'static str, Get); 11] = [
        (
            "barge_container_cpu_usage_seconds_total",
            Counter,
            "CPU time used by the container's processes.",
            |s| ns(s.cg.cpu.usage_total_ns),
        ),
        (
            "barge_container_cpu_user_seconds_total",
            Counter,
            "CPU time in user mode.",
            |s| ns(s.cg.cpu.usage_user_ns),
        ),
        (
            "barge_container_cpu_system_seconds_total",
            Counter,
            "CPU time in kernel mode.",
            |s| ns(s.cg.cpu.usage_system_ns),
        ),
        (
            "barge_container_cpu_throttled_periods_total",
            Counter,
            "CFS periods in which the container was throttled.",
            |s| s.cg.cpu.throttled_periods as f64,
        ),
        (
            "barge_container_cpu_throttled_seconds_total",
            Counter,
            "Time the container was throttled for.",
            |s| ns(s.cg.cpu.throttled_time_ns),
        ),
        (
            "barge_container_memory_usage_bytes",
            Gauge,
            "Memory in use, page cache included (the cgroup's usage).",
            |s| s.cg.memory.usage as f64,
        ),
        (
            "barge_container_memory_max_usage_bytes",
            Gauge,
            "Highest memory use recorded (cgroup v1 max_usage_in_bytes, v2 memory.peak).",
            |s| s.cg.memory.max_usage as f64,
        ),
        (
            "barge_container_memory_cache_bytes",
            Gauge,
            "Page cache charged to the container.",
            |s| s.cg.memory.cache as f64,
        ),
        (
            "barge_container_memory_failcnt_total",
            Counter,
            "Times the memory limit was hit.",
            |s| s.cg.memory.failcnt as f64,
        ),
        (
            "barge_container_oom_kills_total",
            Counter,
            "Processes of the container killed by the OOM killer.",
            |s| s.cg.memory.oom_kill as f64,
        ),
        (
            "barge_container_pids",
            Gauge,
            "Processes and threads in the container.",
            |s| s.cg.pids.current as f64,
        ),
    ];
    for (name, kind, help, get) in simple {
        let mut f = Family::new(name, kind, help);
        for (c, s) in samples {
            f.add(labels(c), get(s));
        }
        f.encode(out);
    }

    // A limit is reported only when there is one (unlimited is the kernel's huge number).
    let mut lim = Family::new(
        "barge_container_memory_limit_bytes",
        Gauge,
        "The container's memory limit, when it has one.",
    );
    for (c, s) in samples {
        let l = s.cg.memory.limit;
        if l > 0 && l < i64::MAX as u64 / 2 {
            lim.add(labels(c), l as f64);
        }
    }
    lim.encode(out);

    let blk = [
        (
            "barge_container_blkio_bytes_total",
            "Bytes read and written on block devices (labels: device major:minor, op).",
            false,
        ),
        (
            "barge_container_blkio_ops_total",
            "Block I/O operations (labels: device major:minor, op).",
            true,
        ),
    ];
    for (name, help, ops) in blk {
        let mut f = Family::new(name, Counter, help);
        for (c, s) in samples {
            let b = &s.cg.blkio;
            for e in if ops {
                &b.io_serviced
            } else {
                &b.io_service_bytes
            } {
                let op = e.op.to_ascii_lowercase();
                // v1 also has Sync/Async (another split of the same I/O) and Total: only
                // read and write, so summing over `op` counts each byte once.
                if op != "read" && op != "write" {
                    continue;
                }
                let l = with(labels(c), "device", format!("{}:{}", e.major, e.minor));
                f.add(with(l, "op", op), e.value as f64);
            }
        }
        f.encode(out);
    }

    let net: [(&'static str, &'static str, usize); 8] = [
        (
            "barge_container_network_receive_bytes_total",
            "Bytes received, per interface.",
            0,
        ),
        (
            "barge_container_network_receive_packets_total",
            "Packets received, per interface.",
            1,
        ),
        (
            "barge_container_network_receive_errors_total",
            "Receive errors, per interface.",
            2,
        ),
        (
            "barge_container_network_receive_dropped_total",
            "Received packets dropped, per interface.",
            3,
        ),
        (
            "barge_container_network_transmit_bytes_total",
            "Bytes sent, per interface.",
            4,
        ),
        (
            "barge_container_network_transmit_packets_total",
            "Packets sent, per interface.",
            5,
        ),
        (
            "barge_container_network_transmit_errors_total",
            "Transmit errors, per interface.",
            6,
        ),
        (
            "barge_container_network_transmit_dropped_total",
            "Sent packets dropped, per interface.",
            7,
        ),
    ];
    for (name, help, i) in net {
        let mut f = Family::new(name, Counter, help);
        for (c, s) in samples {
            for (ifname, v) in &s.net {
                f.add(with(labels(c), "interface", ifname.clone()), v[i] as f64);
            }
        }
        f.encode(out);
    }
}

/// Serves `GET /metrics` on `listener` until the process ends. Everything else is 404; the
/// Docker API is never reachable here.
pub async fn serve_metrics(engine: Arc<Engine>, listener: tokio::net::TcpListener) {
    loop {
        let Some((stream, _)) = crate::accepted("metrics accept", listener.accept().await).await
        else {
            continue;
        };
        let engine = engine.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let engine = engine.clone();
                async move { Ok::<_, Infallible>(handle(engine, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
}

async fn handle(engine: Arc<Engine>, req: Request<Incoming>) -> Response<Body> {
    let text = |code: u16, s: String| {
        let mut r = Response::new(full(s));
        *r.status_mut() =
            hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        r
    };
    if req.uri().path() != "/metrics" {
        return text(404, "404 page not found\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(405, "only GET is allowed on /metrics\n".into());
    }
    let head = req.method() == Method::HEAD;
    let body = match tokio::task::spawn_blocking(move || render(&engine)).await {
        Ok(b) => b,
        Err(e) => return text(500, format!("collecting metrics failed: {e}\n")),
    };
    let mut r = text(200, if head { String::new() } else { body });
    r.headers_mut().insert(
        "Content-Type",
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("plain"), "plain");
    }

    #[test]
    fn family_encodes_header_and_samples() {
        let mut f = Family::new("x_total", Kind::Counter, "Help with \\ and\nnewline.");
        f.add(vec![("id", "a\"b".into()), ("op", "read".into())], 42.0);
        f.add(vec![], 0.5);
        let mut s = String::new();
        f.encode(&mut s);
        assert_eq!(
            s,
            "# HELP x_total Help with \\\\ and\\nnewline.\n# TYPE x_total counter\n\
             x_total{id=\"a\\\"b\",op=\"read\"} 42\nx_total 0.5\n"
        );
    }

    #[test]
    fn values_keep_integers_exact() {
        assert_eq!(format_value(1234567890123.0), "1234567890123");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(0.25), "0.25");
    }
}
