//! barge-build: the parts of `docker build` that need no runtime or image store.
//!
//! - [`parse`]: a Dockerfile parser with Docker's (BuildKit's) rules, producing a typed
//!   [`Dockerfile`] whose instructions keep their line range and original text;
//! - [`expand`] / [`expand_words`] / [`Lexer`]: Docker's variable substitution, and
//!   [`Keyword::expansion`] telling which instructions get it;
//! - [`DockerIgnore`]: `.dockerignore` matching with Docker's pattern rules;
//! - [`StageGraph`]: the stages of a multi-stage Dockerfile, their dependencies, and the
//!   order (in parallel levels) to build what a `--target` needs.

pub mod shell;

pub use shell::{expand, expand_words, EmptyEnv, Env, ExpandError, ExpandErrorKind, Lexer};
