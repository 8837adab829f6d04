//! barge-engine: containers, logs, events and restart policies on top of barge-image (the
//! store) and barge-runtime (run by the per-container monitor, never in this process).
//!
//! On-disk layout:
//! ```text
//! <data-root>/image/                       the image store (barge-image)
//! <data-root>/containers/<id>/config.v2.json   the container record (temp + fsync + rename)
//! <data-root>/containers/<id>/<id>-json.log    json-file log (+ .1, .2 ... rotated)
//! <data-root>/containers/<id>/exit.json        exit status, written by the monitor
//! <data-root>/volumes/<name>/_data           a local volume's data; volume.json its record
//! <exec-root>/containers/<id>/config.json      the OCI bundle's spec; rootfs/ the mount
//! <exec-root>/containers/<id>/monitor.json     what the monitor is asked ([`monitor::MonitorConfig`])
//! <exec-root>/containers/<id>/ctl.sock         the monitor's control socket (0700 dir)
//! <exec-root>/netns/<id>                       the container's network namespace (bind mount)
//! <exec-root>/runtime/                         barge-runtime's state root
//! ```
//!
//! Seams for the other pieces: [`netns`] makes the per-container network namespace that a
//! network driver configures before the container starts ([`engine::net`], barge-network).

pub mod archive;
pub mod engine;
pub mod error;
pub mod limits;
pub mod logs;
pub mod model;
pub mod monitor;
pub mod mounts;
pub mod netns;
pub mod spec;
pub mod stats;
pub mod util;
pub mod volumes;
pub mod zygote;

pub use engine::Engine;
pub use error::{Error, Result};
