//! The stage graph of a multi-stage Dockerfile: which stages each stage needs, and what
//! to build (in which order, with which in parallel) for a `--target`.
//!
//! References resolve as in BuildKit: `FROM name` names an earlier stage (else it is an
//! image); `COPY --from=` and `RUN --mount=from=` name any stage or a stage index (else an
//! image). Where barge is stricter: `FROM` naming a stage that is only defined *later* is
//! an error (Docker would try to pull an image of that name), and a stage referring to
//! itself or a cycle is reported with the line of the reference.

use std::collections::BTreeMap;

use crate::ast::{Command, Dockerfile, Instruction};
use crate::shell::{EmptyEnv, ExpandError};
use crate::suggest::suggest;

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageBase {
    /// `FROM scratch`: an empty filesystem.
    Scratch,
    /// An image reference (FROM expanded with the meta ARGs).
    Image(String),
    /// An earlier stage.
    Stage(usize),
}

/// A reference from a stage to something it needs besides its base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageDep {
    /// Another stage, by index.
    Stage(usize),
    /// An image (`COPY --from=alpine:3`).
    Image(String),
}

/// One stage in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageNode {
    /// Index in the file, from 0.
    pub index: usize,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// The line of the FROM.
    pub line: usize,
    /// What the stage starts from.
    pub base: StageBase,
    /// Everything the stage refers to with `COPY --from` / `RUN --mount=from=`, with the
    /// line of each reference, in file order.
    pub refs: Vec<(StageDep, usize)>,
    /// The stages this stage needs built first (base and references), sorted, unique.
    pub deps: Vec<usize>,
}

/// The stages and their dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageGraph {
    /// The stages, by index.
    pub stages: Vec<StageNode>,
}

/// What to build for a target: the stages it needs, grouped so that each group's stages
/// depend only on earlier groups (a group's stages can be built in parallel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// The target stage.
    pub target: usize,
    /// Groups of stage indices, dependencies first; each group sorted.
    pub levels: Vec<Vec<usize>>,
}

impl BuildPlan {
    /// All the stages to build, dependencies first.
    pub fn order(&self) -> impl Iterator<Item = usize> + '_ {
        self.levels.iter().flatten().copied()
    }

    /// Whether stage `index` has to be built.
    pub fn contains(&self, index: usize) -> bool {
        self.levels.iter().any(|l| l.contains(&index))
    }
}

/// A stage graph that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A FROM whose image did not expand.
    #[error("line {line}: {error}")]
    Expand {
        /// The line.
        line: usize,
        /// The expansion error.
        error: ExpandError,
    },
    /// A FROM that expands to nothing.
    #[error("line {line}: base name ({image}) should not be blank")]
    BlankBase {
        /// The line.
        line: usize,
        /// The FROM as written.
        image: String,
    },
    /// `COPY --from=$X`.
    #[error("line {line}: variable expansion is not supported for --from ({from}), define a new stage with FROM using ARG from global scope as a workaround")]
    FromVariable {
        /// The line.
        line: usize,
        /// The --from value.
        from: String,
    },
    /// `COPY --from=7` with fewer stages.
    #[error("line {line}: invalid stage index {index}: the Dockerfile has {count} stage(s)")]
    StageIndex {
        /// The line.
        line: usize,
        /// The index.
        index: usize,
        /// How many stages there are.
        count: usize,
    },
    /// `FROM name` where stage `name` comes later in the file.
    #[error("line {line}: FROM {name} refers to a stage defined later (line {defined_line}); FROM can only use earlier stages")]
    LaterStage {
        /// The line of the FROM.
        line: usize,
        /// The stage name.
        name: String,
        /// Where the stage is defined.
        defined_line: usize,
    },
    /// A stage that needs itself.
    #[error("line {line}: stage {stage} refers to itself")]
    SelfReference {
        /// The line of the reference.
        line: usize,
        /// The stage (name or index).
        stage: String,
    },
    /// Stages that need each other.
    #[error("line {line}: circular dependency between stages: {}", .cycle.join(" -> "))]
    Cycle {
        /// The line of the reference that closes the cycle.
        line: usize,
        /// The stages around the cycle, first repeated at the end.
        cycle: Vec<String>,
    },
    /// `--target` naming no stage.
    #[error("target stage {target:?} could not be found{}", hint(.suggestion))]
    UnknownTarget {
        /// The target.
        target: String,
        /// The closest stage name.
        suggestion: Option<String>,
    },
}

fn hint(s: &Option<String>) -> String {
    match s {
        Some(m) => format!(" (did you mean {m}?)"),
        None => String::new(),
    }
}

impl StageGraph {
    /// Builds the graph of `df`, expanding FROM lines with the meta ARGs (and the build
    /// args that override them).
    pub fn new(
        df: &Dockerfile,
        build_args: &BTreeMap<String, String>,
    ) -> Result<StageGraph, GraphError> {
        let meta = df
            .meta_arg_values(build_args)
            .map_err(|error| GraphError::Expand {
                line: df.meta_args.first().map_or(1, |i| i.start_line),
                error,
            })?;
        let lexer = df.lexer();
        let count = df.stages.len();
        let names: Vec<Option<&str>> = df.stages.iter().map(|s| s.name.as_deref()).collect();
        // The last stage with the name wins (as in BuildKit), optionally among those
        // before `before`.
        let find = |name: &str, before: usize| -> Option<usize> {
            let lower = name.to_ascii_lowercase();
            (0..before)
                .rev()
                .find(|&i| names[i] == Some(lower.as_str()))
        };
        let mut stages = Vec::with_capacity(count);
        for stage in &df.stages {
            let line = stage.from.start_line;
            let from = &stage.base;
            let image = lexer
                .expand(&from.image, &meta)
                .map_err(|error| GraphError::Expand { line, error })?;
            if image.is_empty() {
                return Err(GraphError::BlankBase {
                    line,
                    image: from.image.clone(),
                });
            }
            let base = if let Some(i) = find(&image, stage.index) {
                StageBase::Stage(i)
            } else if image == "scratch" {
                StageBase::Scratch
            } else if let Some(later) = find(&image, count).filter(|&i| i > stage.index) {
                return Err(GraphError::LaterStage {
                    line,
                    name: image,
                    defined_line: df.stages[later].from.start_line,
                });
            } else {
                StageBase::Image(image)
            };
            let mut refs = Vec::new();
            for inst in &stage.instructions {
                collect_refs(inst, &find, count, &mut refs)?;
            }
            let mut deps: Vec<usize> = refs
                .iter()
                .filter_map(|(d, _)| match d {
                    StageDep::Stage(i) => Some(*i),
                    StageDep::Image(_) => None,
                })
                .collect();
            if let StageBase::Stage(i) = base {
                deps.push(i);
            }
            deps.sort_unstable();
            deps.dedup();
            if let Some((_, line)) = refs
                .iter()
                .find(|(d, _)| *d == StageDep::Stage(stage.index))
            {
                return Err(GraphError::SelfReference {
                    line: *line,
                    stage: stage
                        .name
                        .clone()
                        .unwrap_or_else(|| stage.index.to_string()),
                });
            }
            stages.push(StageNode {
                index: stage.index,
                name: stage.name.clone(),
                line,
                base,
                refs,
                deps,
            });
        }
        let graph = StageGraph { stages };
        graph.check_cycles()?;
        Ok(graph)
    }

    fn label(&self, i: usize) -> String {
        match &self.stages[i].name {
            Some(n) => n.clone(),
            None => format!("stage {i}"),
        }
    }

    /// The line of the reference from stage `from` to stage `to`.
    fn ref_line(&self, from: usize, to: usize) -> usize {
        let s = &self.stages[from];
        if s.base == StageBase::Stage(to) {
            return s.line;
        }
        s.refs
            .iter()
            .find(|(d, _)| *d == StageDep::Stage(to))
            .map_or(s.line, |(_, l)| *l)
    }

    fn check_cycles(&self) -> Result<(), GraphError> {
        // 0 = not visited, 1 = on the current path, 2 = done.
        let mut state = vec![0u8; self.stages.len()];
        let mut path = Vec::new();
        for start in 0..self.stages.len() {
            self.dfs(start, &mut state, &mut path)?;
        }
        Ok(())
    }

    fn dfs(&self, i: usize, state: &mut [u8], path: &mut Vec<usize>) -> Result<(), GraphError> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let from = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle: Vec<String> = path[from..].iter().map(|&p| self.label(p)).collect();
                cycle.push(self.label(i));
                let last = path.last().copied().unwrap_or(i);
                return Err(GraphError::Cycle {
                    line: self.ref_line(last, i),
                    cycle,
                });
            }
            _ => {}
        }
        state[i] = 1;
        path.push(i);
        for &d in &self.stages[i].deps {
            self.dfs(d, state, path)?;
        }
        path.pop();
        state[i] = 2;
        Ok(())
    }

    /// The stage for `--target` (by name, case-insensitive); the last stage without one.
    pub fn target(&self, target: Option<&str>) -> Result<usize, GraphError> {
        let Some(t) = target else {
            // A parsed Dockerfile has at least one stage; a hand-made one may not.
            return self
                .stages
                .len()
                .checked_sub(1)
                .ok_or_else(|| GraphError::UnknownTarget {
                    target: String::new(),
                    suggestion: None,
                });
        };
        let lower = t.to_ascii_lowercase();
        self.stages
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .map(|s| s.index)
            .ok_or_else(|| GraphError::UnknownTarget {
                target: t.to_string(),
                suggestion: suggest(
                    t,
                    self.stages.iter().filter_map(|s| s.name.as_deref()),
                    true,
                ),
            })
    }

    /// What to build for `target` (`None`: the last stage): only the stages it needs,
    /// dependencies first, independent stages grouped together.
    pub fn plan(&self, target: Option<&str>) -> Result<BuildPlan, GraphError> {
        let t = self.target(target)?;
        let mut needed = vec![false; self.stages.len()];
        let mut stack = vec![t];
        while let Some(i) = stack.pop() {
            if !needed[i] {
                needed[i] = true;
                stack.extend(self.stages[i].deps.iter().copied());
            }
        }
        // Level of a stage: 0 without dependencies, else one more than its deepest one.
        // The graph is acyclic (checked in `new`), so a few passes settle it.
        let mut level: Vec<Option<usize>> = vec![None; self.stages.len()];
        let mut remaining: Vec<usize> = (0..self.stages.len()).filter(|&i| needed[i]).collect();
        while !remaining.is_empty() {
            let before = remaining.len();
            remaining.retain(|&i| {
                let deps = &self.stages[i].deps;
                if deps.iter().all(|&d| level[d].is_some()) {
                    level[i] = Some(
                        deps.iter()
                            .filter_map(|&d| level[d])
                            .max()
                            .map_or(0, |m| m + 1),
                    );
                    false
                } else {
                    true
                }
            });
            if remaining.len() == before {
                // Unreachable for graphs from `new`; avoid looping forever regardless.
                let i = remaining[0];
                return Err(GraphError::Cycle {
                    line: self.stages[i].line,
                    cycle: vec![self.label(i)],
                });
            }
        }
        let depth = level.iter().flatten().max().map_or(0, |m| m + 1);
        let mut levels = vec![Vec::new(); depth];
        for (i, l) in level.iter().enumerate() {
            if let Some(l) = l {
                levels[*l].push(i);
            }
        }
        Ok(BuildPlan { target: t, levels })
    }
}

fn resolve_ref(
    from: &str,
    line: usize,
    find: &dyn Fn(&str, usize) -> Option<usize>,
    count: usize,
) -> Result<StageDep, GraphError> {
    if let Ok(index) = from.parse::<usize>() {
        if index >= count {
            return Err(GraphError::StageIndex { line, index, count });
        }
        return Ok(StageDep::Stage(index));
    }
    Ok(match find(from, count) {
        Some(i) => StageDep::Stage(i),
        None => StageDep::Image(from.to_string()),
    })
}

fn collect_refs(
    inst: &Instruction,
    find: &dyn Fn(&str, usize) -> Option<usize>,
    count: usize,
    refs: &mut Vec<(StageDep, usize)>,
) -> Result<(), GraphError> {
    let line = inst.start_line;
    match &inst.command {
        Command::Copy(c) => {
            if let Some(from) = &c.from {
                // Docker refuses variables here: the graph must be known before building.
                let plain = crate::shell::Lexer::default().expand(from, &EmptyEnv);
                if plain.as_deref() != Ok(from.as_str()) {
                    return Err(GraphError::FromVariable {
                        line,
                        from: from.clone(),
                    });
                }
                refs.push((resolve_ref(from, line, find, count)?, line));
            }
        }
        Command::Run(r) => {
            for m in &r.mounts {
                if let Some(from) = &m.from {
                    refs.push((resolve_ref(from, line, find, count)?, line));
                }
            }
        }
        _ => {}
    }
    Ok(())
}
