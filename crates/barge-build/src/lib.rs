//! barge-build: `docker build` for barge. The parser and the build graph need no runtime or
//! image store; the [`Builder`] turns a Dockerfile and a context into an image in a
//! [`barge_image::Store`].
//!
//! # Building (what the daemon's `POST /build` calls)
//!
//! ```text
//! let builder = Builder::new(store.clone(), data_root.join("builder"))?; // once, at start-up
//! // per request, on a blocking thread (tokio::task::spawn_blocking):
//! let mut opts = BuildOptions::from_query(&query_pairs)?;   // Docker's POST /build query
//! opts.barge_binary = std::env::current_exe()?;
//! opts.cancel = Some(cancel_flag.clone());                   // set it when the client leaves
//! let progress = |e: &Event| for v in e.to_json() { let _ = tx.send(v); };  // one JSON line each
//! // the body, fed chunk by chunk from the async side into a sync_channel:
//! let body_reader = ChannelReader::new(body_rx);
//! let out = builder.build(&opts, BuildContext::Tar(Box::new(body_reader)), &progress);
//! // Ok(out): out.id, out.tags. Err(e): the error was already sent as
//! // {"errorDetail":{"message":...},"error":...}; answer nothing more.
//! builder.prune()?; // `builder prune` / `system prune`
//! ```
//!
//! - [`Builder::build`] is blocking and `&self` (concurrent builds are fine). RUN steps run
//!   as `<barge_binary> runtime --root <builder>/runtime run --bundle <bundle> <id>`
//!   subprocesses: the daemon never forks the runtime in-process.
//! - [`Event::to_json`] gives Docker's classic-builder stream (`{"stream":"Step 1/5 : ..."}`,
//!   `{"stream":" ---> Using cache\n"}`, `{"stream":" ---> <12 hex>\n"}`,
//!   `{"aux":{"ID":"sha256:..."}}`, `Successfully built/tagged`, errors);
//!   [`Event::to_plain`] the human log of `--progress=plain`.
//! - Only the final image is an image in the store; each step is a cache record under
//!   `<builder>/cache/<key>.json` (config + layers), keyed by the parent step's key, the
//!   expanded instruction, RUN's environment and shell, and for COPY/ADD a hash of the
//!   sources' content and metadata. Records survive restarts; a record whose layers were
//!   garbage-collected is a miss.
//! - COPY/ADD sources are opened beneath the context with `openat2(RESOLVE_BENEATH)` (`../x`
//!   and symlinks leading out are refused); destinations are resolved inside the build
//!   rootfs (`RESOLVE_IN_ROOT`) and created with `O_NOFOLLOW|O_EXCL`.
//! - RUN's network: `none` is a namespace with only loopback; `default` joins the network
//!   the caller's [`BuildNetwork`] provides ([`BuildOptions::network_provider`]: the daemon
//!   puts the step on its default bridge; without a provider, loopback only); `host` needs
//!   `--network host` on the build. RUN gets Docker's default capabilities and seccomp
//!   profile; `--mount=type=cache|tmpfs|bind|secret` work (bind read-only, from the context
//!   or a stage; secrets from [`BuildOptions::secrets`], as files on a private tmpfs or
//!   `env=`, never in a layer or a cache key); `type=ssh` is refused when `required`.
//! - With [`BuildOptions::registry`], base images missing from the store are pulled and
//!   `--pull` re-resolves them; ADD fetches http(s) URLs (`--checksum=sha256:`) and git
//!   repositories (`<url>#<ref>:<subdir>`, with the `git` binary, cached by the commit
//!   `git ls-remote` names, fetched only on a miss);
//!   [`BuildContext::Remote`] builds from a git repository, a tar or a Dockerfile URL.
//! - One `Builder` per state directory: `new` clears leftovers of crashed builds there and
//!   makes `<builder>/tmp` (where snapshots are mounted) a private mount, so container
//!   namespaces created meanwhile neither receive nor pin those mounts.
//!
//! # The parts
//!
//! - [`parse`]: a Dockerfile parser with Docker's (BuildKit's) rules, producing a typed
//!   [`Dockerfile`] whose instructions keep their line range and original text;
//! - [`expand`] / [`expand_words`] / [`Lexer`]: Docker's variable substitution, and
//!   [`Keyword::expansion`] telling which instructions get it;
//! - [`DockerIgnore`]: `.dockerignore` matching with Docker's pattern rules;
//! - [`Scope`]: ARG/ENV scoping within a stage, as the builder applies it;
//! - [`StageGraph`]: the stages of a multi-stage Dockerfile, their dependencies, and the
//!   order (in parallel levels) to build what a `--target` needs.
//!
//! How a builder uses them:
//!
//! ```
//! use std::collections::BTreeMap;
//! use barge_build::{parse, Command, Scope, StageGraph};
//!
//! let df = parse("ARG TAG=1.36\n\
//!                 FROM busybox:${TAG} AS build\n\
//!                 ENV OUT=/out\n\
//!                 RUN mkdir $OUT && echo hi > $OUT/hello\n\
//!                 FROM scratch\n\
//!                 COPY --from=build ${OUT:-/out}/hello /hello\n")?;
//! let build_args = BTreeMap::new();
//! let graph = StageGraph::new(&df, &build_args)?;
//! let plan = graph.plan(None)?; // the last stage, and what it needs
//! assert_eq!(plan.levels, vec![vec![0], vec![1]]);
//!
//! let meta = df.meta_arg_values(&build_args)?;
//! let stage = &df.stages[1];
//! let mut scope = Scope::new(meta, build_args.clone(), &[]);
//! let copy = scope.apply(&df.lexer(), &stage.instructions[0].command)?;
//! match copy {
//!     Command::Copy(c) => assert_eq!(c.sources, ["/out/hello"]),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod ast;
pub mod builder;
mod chanread;
pub mod error;
mod expand_ast;
mod fsutil;
pub mod graph;
pub mod ignore;
pub mod mount;
pub mod parser;
pub mod progress;
pub mod scope;
pub mod shell;
mod suggest;
mod tartail;

pub use ast::*;
pub use builder::{
    decode_secrets, encode_secrets, is_remote_context, BuildContext, BuildError, BuildNetwork,
    BuildOptions, BuildOutput, Builder, NetworkAttachment, PruneReport, Secret, SECRETS_HEADER,
};
pub use chanread::ChannelReader;
pub use error::{ParseError, ParseErrorKind};
pub use graph::{BuildPlan, GraphError, StageBase, StageDep, StageGraph, StageNode};
pub use ignore::{DockerIgnore, IgnoreError};
pub use mount::{CacheSharing, Mount, MountError, MountSpec, MountType};
pub use parser::{is_heredoc_word, parse, parse_named};
pub use progress::{Event, NoProgress, Progress};
pub use scope::Scope;
pub use shell::{expand, expand_words, EmptyEnv, Env, ExpandError, ExpandErrorKind, Lexer};

#[cfg(test)]
mod tests;
