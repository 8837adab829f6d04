//! barge-build: the parts of `docker build` that need no runtime or image store.
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

pub use ast::*;
pub use builder::{BuildContext, BuildError, BuildOptions, BuildOutput, Builder, PruneReport};
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
