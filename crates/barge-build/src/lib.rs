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

pub mod ast;
pub mod error;
mod expand_ast;
pub mod graph;
pub mod ignore;
pub mod mount;
pub mod parser;
pub mod scope;
pub mod shell;
mod suggest;

pub use ast::*;
pub use error::{ParseError, ParseErrorKind};
pub use graph::{BuildPlan, GraphError, StageBase, StageDep, StageGraph, StageNode};
pub use ignore::{DockerIgnore, IgnoreError};
pub use mount::{CacheSharing, Mount, MountError, MountSpec, MountType};
pub use parser::{is_heredoc_word, parse, parse_named};
pub use scope::Scope;
pub use shell::{expand, expand_words, EmptyEnv, Env, ExpandError, ExpandErrorKind, Lexer};

#[cfg(test)]
mod tests;
