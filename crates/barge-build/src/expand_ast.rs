//! Applying variable expansion to typed instructions, as the builder does per stage.

use std::collections::BTreeMap;

use crate::ast::*;
use crate::shell::{Env, ExpandError, Lexer};

impl Command {
    /// This command with its arguments expanded the way Docker expands them for its
    /// keyword (see [`Keyword::expansion`]); commands without expansion come back as they
    /// are. `env` is the stage's ARG and ENV values (for FROM: the meta ARGs).
    ///
    /// ARG names are taken literally and defaults expanded; a builder should rather use
    /// [`crate::Scope::apply`], which does not expand a default that a `--build-arg`
    /// replaces (as Docker). ONBUILD triggers are expanded when they run in the child
    /// build, not here.
    /// COPY's `--from` is not expanded (Docker refuses variables there).
    pub fn expand(&self, lexer: &Lexer, env: &dyn Env) -> Result<Command, ExpandError> {
        let w = |s: &str| lexer.expand(s, env);
        let ow = |s: &Option<String>| s.as_deref().map(w).transpose();
        let kvs = |v: &[KeyValue]| -> Result<Vec<KeyValue>, ExpandError> {
            v.iter()
                .map(|kv| {
                    Ok(KeyValue {
                        key: w(&kv.key)?,
                        value: w(&kv.value)?,
                        legacy: kv.legacy,
                    })
                })
                .collect()
        };
        // A COPY/ADD heredoc whose delimiter is not quoted has its body expanded, quotes and
        // escapes kept as written (BuildKit's raw expansion of heredocs).
        let raw = lexer.raw_quotes(true).raw_escapes(true);
        let inline = |v: &[InlineSource]| -> Result<Vec<InlineSource>, ExpandError> {
            v.iter()
                .map(|i| {
                    Ok(InlineSource {
                        data: if i.expand {
                            raw.expand(&i.data, env)?
                        } else {
                            i.data.clone()
                        },
                        ..i.clone()
                    })
                })
                .collect()
        };
        Ok(match self {
            Command::From(f) => Command::From(From {
                image: w(&f.image)?,
                name: f.name.clone(),
                platform: ow(&f.platform)?,
            }),
            Command::Copy(c) => Command::Copy(Copy {
                sources: c.sources.iter().map(|s| w(s)).collect::<Result<_, _>>()?,
                inline: inline(&c.inline)?,
                dest: w(&c.dest)?,
                chown: ow(&c.chown)?,
                chmod: ow(&c.chmod)?,
                ..c.clone()
            }),
            Command::Add(a) => Command::Add(Add {
                sources: a.sources.iter().map(|s| w(s)).collect::<Result<_, _>>()?,
                inline: inline(&a.inline)?,
                dest: w(&a.dest)?,
                chown: ow(&a.chown)?,
                chmod: ow(&a.chmod)?,
                checksum: ow(&a.checksum)?,
                ..a.clone()
            }),
            Command::Env(v) => Command::Env(kvs(v)?),
            Command::Label(v) => Command::Label(kvs(v)?),
            Command::Arg(defs) => Command::Arg(
                defs.iter()
                    .map(|d| {
                        Ok(ArgDef {
                            name: d.name.clone(),
                            default: ow(&d.default)?,
                        })
                    })
                    .collect::<Result<_, ExpandError>>()?,
            ),
            Command::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(lexer.expand_words(p, env)?);
                }
                Command::Expose(out)
            }
            Command::Volume(v) => {
                Command::Volume(v.iter().map(|s| w(s)).collect::<Result<_, _>>()?)
            }
            Command::Workdir(p) => Command::Workdir(w(p)?),
            Command::User(u) => Command::User(w(u)?),
            Command::StopSignal(s) => Command::StopSignal(w(s)?),
            Command::Run(_)
            | Command::Cmd(_)
            | Command::Entrypoint(_)
            | Command::Shell(_)
            | Command::Healthcheck(_)
            | Command::Onbuild(_)
            | Command::Maintainer(_) => self.clone(),
        })
    }
}

impl Dockerfile {
    /// The values of the meta ARGs (those before the first FROM), as FROM lines see them:
    /// each takes its `--build-arg` value if given, else its default expanded with the
    /// meta ARGs before it; an ARG with neither stays unset. Build args that no meta ARG
    /// declares are not visible to FROM, as in Docker.
    pub fn meta_arg_values(
        &self,
        build_args: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ExpandError> {
        let lexer = self.lexer();
        let mut values = BTreeMap::new();
        for inst in &self.meta_args {
            let Command::Arg(defs) = &inst.command else {
                continue;
            };
            for d in defs {
                if let Some(v) = build_args.get(&d.name) {
                    values.insert(d.name.clone(), v.clone());
                } else if let Some(def) = &d.default {
                    let v = lexer.expand(def, &values)?;
                    values.insert(d.name.clone(), v);
                }
            }
        }
        Ok(values)
    }
}
