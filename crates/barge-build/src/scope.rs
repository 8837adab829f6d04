//! The variables an instruction sees, stage by stage: Docker's ARG and ENV scoping.
//!
//! - meta ARGs (before the first FROM) are visible only in FROM lines, and in a stage that
//!   declares them again without a value (`ARG VERSION`);
//! - an ARG takes effect from its line on: its `--build-arg` value, else its default
//!   (expanded with what is visible at that line), else the meta ARG's value;
//! - ENV overrides an ARG of the same name; one instruction sees the values from before
//!   it (`ENV a=1 b=$a` gives `b` the old `a`);
//! - the predefined proxy ARGs are visible when given with `--build-arg`, without an ARG;
//! - a stage based on another stage starts from that stage's scope (clone it).

use std::collections::BTreeMap;

use crate::ast::{ArgDef, Command, PREDEFINED_ARGS};
use crate::shell::{Env, ExpandError, Lexer};

/// The ARG and ENV state of a stage during a build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    meta: BTreeMap<String, String>,
    build_args: BTreeMap<String, String>,
    /// Declared ARGs with their value (None: declared, unset).
    args: Vec<(String, Option<String>)>,
    /// ENV, including the base image's.
    env: Vec<(String, String)>,
}

impl Env for Scope {
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.env.iter().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        if let Some((_, v)) = self.args.iter().rev().find(|(k, _)| k == name) {
            return v.clone();
        }
        if PREDEFINED_ARGS.contains(&name) {
            return self.build_args.get(name).cloned();
        }
        None
    }
}

impl Scope {
    /// A stage's starting scope: the meta ARG values
    /// ([`crate::Dockerfile::meta_arg_values`], plus any automatic ARGs such as
    /// `TARGETPLATFORM` the builder defines globally), the `--build-arg`s, and the base
    /// image's `Env` entries (`KEY=value`; entries without `=` are ignored).
    pub fn new(
        meta: BTreeMap<String, String>,
        build_args: BTreeMap<String, String>,
        image_env: &[String],
    ) -> Scope {
        let mut s = Scope {
            meta,
            build_args,
            args: Vec::new(),
            env: Vec::new(),
        };
        for e in image_env {
            if let Some((k, v)) = e.split_once('=') {
                s.set_env(k, v);
            }
        }
        s
    }

    /// Sets an environment variable (replacing an earlier value in place).
    pub fn set_env(&mut self, key: &str, value: &str) {
        match self.env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.env.push((key.to_string(), value.to_string())),
        }
    }

    /// Declares an ARG and returns its value (None when it has none). The default is
    /// expanded only when no `--build-arg` replaces it, so a bad default that is
    /// overridden is no error (as in Docker).
    pub fn declare_arg(
        &mut self,
        lexer: &Lexer,
        def: &ArgDef,
    ) -> Result<Option<String>, ExpandError> {
        let value = if let Some(v) = self.build_args.get(&def.name) {
            Some(v.clone())
        } else if let Some(d) = &def.default {
            Some(lexer.expand(d, self)?)
        } else {
            self.meta.get(&def.name).cloned()
        };
        self.args.push((def.name.clone(), value.clone()));
        Ok(value)
    }

    /// Expands `cmd` with this scope and applies what it declares (ENV, ARG) to the
    /// scope; returns the expanded command (ARG with the resolved values as defaults).
    pub fn apply(&mut self, lexer: &Lexer, cmd: &Command) -> Result<Command, ExpandError> {
        if let Command::Arg(defs) = cmd {
            let mut out = Vec::with_capacity(defs.len());
            for d in defs {
                let value = self.declare_arg(lexer, d)?;
                out.push(ArgDef {
                    name: d.name.clone(),
                    default: value,
                });
            }
            return Ok(Command::Arg(out));
        }
        let expanded = cmd.expand(lexer, self)?;
        if let Command::Env(kvs) = &expanded {
            for kv in kvs {
                self.set_env(&kv.key, &kv.value);
            }
        }
        Ok(expanded)
    }

    /// The ENV variables (what the image config's `Env` gets), in order.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The environment of a RUN: ENV, then the declared ARGs with a value and the
    /// predefined proxy ARGs given with `--build-arg` (ENV wins over both).
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut out = self.env.clone();
        let mut add = |k: &str, v: &str| {
            if !out.iter().any(|(ok, _)| ok == k) {
                out.push((k.to_string(), v.to_string()));
            }
        };
        for (k, v) in self.args.iter().rev() {
            if let Some(v) = v {
                add(k, v);
            }
        }
        for k in PREDEFINED_ARGS {
            if let Some(v) = self.build_args.get(k) {
                add(k, v);
            }
        }
        out
    }

    /// The declared ARGs a RUN sees (with a value, not shadowed by an ENV of the same
    /// name), as `KEY=value`, sorted: what the classic builder records in front of a RUN's
    /// history entry (`|2 A=1 B=2 /bin/sh -c ...`).
    pub fn run_args_for_history(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (k, v) in self.args.iter().rev() {
            let Some(v) = v else { continue };
            if !seen.insert(k.as_str()) || self.env.iter().any(|(e, _)| e == k) {
                continue;
            }
            out.push(format!("{k}={v}"));
        }
        out.sort();
        out
    }

    /// The `--build-arg` names that neither an ARG of this scope nor a meta ARG nor the
    /// predefined list uses (Docker warns about them).
    pub fn unconsumed_build_args(&self) -> Vec<String> {
        self.build_args
            .keys()
            .filter(|k| {
                !self.args.iter().any(|(a, _)| a == *k)
                    && !self.meta.contains_key(*k)
                    && !PREDEFINED_ARGS.contains(&k.as_str())
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, Command};

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Runs a one-stage Dockerfile through a scope; the expanded commands.
    fn run(text: &str, build_args: &[(&str, &str)]) -> (Vec<Command>, Scope) {
        let df = parse(text).unwrap();
        let ba = args(build_args);
        let meta = df.meta_arg_values(&ba).unwrap();
        let mut scope = Scope::new(meta, ba, &["PATH=/usr/bin:/bin".to_string()]);
        let lexer = df.lexer();
        let out = df.stages[0]
            .instructions
            .iter()
            .map(|i| scope.apply(&lexer, &i.command).unwrap())
            .collect();
        (out, scope)
    }

    #[test]
    fn arg_takes_effect_from_its_line() {
        // The documented example: USER before and after ARG username.
        let (out, _) = run(
            "FROM busybox\nUSER ${username:-some_user}\nARG username\nUSER $username\n",
            &[("username", "what_user")],
        );
        assert_eq!(out[0], Command::User("some_user".into()));
        assert_eq!(out[2], Command::User("what_user".into()));
    }

    #[test]
    fn env_overrides_arg() {
        let (out, scope) = run(
            "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nWORKDIR /$CONT_IMG_VER\n",
            &[("CONT_IMG_VER", "v2.0.1")],
        );
        assert_eq!(out[2], Command::Workdir("/v1.0.0".into()));
        assert!(scope
            .run_env()
            .contains(&("CONT_IMG_VER".to_string(), "v1.0.0".to_string())));
        let text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n";
        let (_, scope) = run(text, &[("CONT_IMG_VER", "v2.0.1")]);
        assert_eq!(scope.env().last().unwrap().1, "v2.0.1");
        let (_, scope) = run(text, &[]);
        assert_eq!(scope.env().last().unwrap().1, "v1.0.0");
    }

    #[test]
    fn meta_args_need_redeclaring() {
        let text = "ARG VERSION=latest\nFROM busybox:$VERSION\nLABEL before=\"$VERSION\"\nARG VERSION\nLABEL after=$VERSION\n";
        let (out, _) = run(text, &[]);
        assert_eq!(
            out[0],
            Command::Label(vec![crate::KeyValue {
                key: "before".into(),
                value: "".into(),
                legacy: false
            }])
        );
        assert_eq!(
            out[2],
            Command::Label(vec![crate::KeyValue {
                key: "after".into(),
                value: "latest".into(),
                legacy: false
            }])
        );
        let (out, _) = run(text, &[("VERSION", "1.36")]);
        assert_eq!(
            out[2],
            Command::Label(vec![crate::KeyValue {
                key: "after".into(),
                value: "1.36".into(),
                legacy: false
            }])
        );
    }

    #[test]
    fn same_instruction_sees_old_values() {
        let (out, scope) = run(
            "FROM x\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n",
            &[],
        );
        assert_eq!(
            out[1],
            Command::Env(vec![
                crate::KeyValue {
                    key: "abc".into(),
                    value: "bye".into(),
                    legacy: false
                },
                crate::KeyValue {
                    key: "def".into(),
                    value: "hello".into(),
                    legacy: false
                },
            ])
        );
        let env: Vec<(&str, &str)> = scope
            .env()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            vec![
                ("PATH", "/usr/bin:/bin"),
                ("abc", "bye"),
                ("def", "hello"),
                ("ghi", "bye")
            ]
        );
    }

    #[test]
    fn arg_defaults_and_overrides() {
        let (out, scope) = run(
            "FROM x\nARG A=1 B=${A}2 C\nARG BAD=${NOPE:?x}\nWORKDIR /$A/$B/${C-unset}\n",
            &[("BAD", "fine"), ("EXTRA", "y")],
        );
        assert_eq!(
            out[0],
            Command::Arg(vec![
                ArgDef {
                    name: "A".into(),
                    default: Some("1".into())
                },
                ArgDef {
                    name: "B".into(),
                    default: Some("12".into())
                },
                ArgDef {
                    name: "C".into(),
                    default: None
                },
            ])
        );
        // The bad default is replaced by the build arg, so it is never expanded.
        assert_eq!(
            out[1],
            Command::Arg(vec![ArgDef {
                name: "BAD".into(),
                default: Some("fine".into())
            }])
        );
        assert_eq!(out[2], Command::Workdir("/1/12/unset".into()));
        assert_eq!(scope.unconsumed_build_args(), vec!["EXTRA".to_string()]);
    }

    #[test]
    fn documented_env_forms() {
        let (_, scope) = run(
            "FROM x\nENV MY_NAME=\"John Doe\"\nENV MY_DOG=Rex\\ The\\ Dog\nENV MY_CAT=fluffy\nENV A=\"a b\" B=c\\ d \\\n    C=e\nENV LEGACY some value here\n",
            &[],
        );
        let env: Vec<(&str, &str)> = scope
            .env()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env[1..],
            [
                ("MY_NAME", "John Doe"),
                ("MY_DOG", "Rex The Dog"),
                ("MY_CAT", "fluffy"),
                ("A", "a b"),
                ("B", "c d"),
                ("C", "e"),
                ("LEGACY", "some value here"),
            ]
        );
    }

    #[test]
    fn proxy_args_without_declaration() {
        let (out, scope) = run(
            "FROM x\nRUN wget example.com\nWORKDIR /$HTTP_PROXY\n",
            &[("HTTP_PROXY", "proxy:3128"), ("OTHER", "no")],
        );
        assert_eq!(out[1], Command::Workdir("/proxy:3128".into()));
        let env = scope.run_env();
        assert!(env.contains(&("HTTP_PROXY".to_string(), "proxy:3128".to_string())));
        assert!(!env.iter().any(|(k, _)| k == "OTHER"));
    }
}
