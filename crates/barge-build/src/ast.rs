//! The typed Dockerfile: what [`crate::parse`] returns.

use std::time::Duration;

use crate::mount::MountSpec;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// The parser directives at the top of the file.
    pub directives: Directives,
    /// The `ARG`s before the first `FROM` (visible only in `FROM` lines, and in stages
    /// that declare them again without a value).
    pub meta_args: Vec<Instruction>,
    /// The build stages, in file order.
    pub stages: Vec<Stage>,
    /// Things Docker warns about but accepts (empty continuation lines).
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The escape character in effect (`\` unless `# escape=` said otherwise).
    pub fn escape(&self) -> char {
        self.directives.escape
    }

    /// A variable-expansion lexer using this file's escape character.
    pub fn lexer(&self) -> crate::Lexer {
        crate::Lexer::new(self.directives.escape)
    }

    /// All instructions in file order (meta ARGs, then each stage's FROM and body).
    pub fn instructions(&self) -> impl Iterator<Item = &Instruction> {
        self.meta_args.iter().chain(
            self.stages
                .iter()
                .flat_map(|s| std::iter::once(&s.from).chain(s.instructions.iter())),
        )
    }

    /// The stage called `name` (stage names are case-insensitive).
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
    }
}

/// Parser directives (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` (recorded; barge has one frontend and does not switch on it).
    pub syntax: Option<String>,
    /// `# escape=`: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# check=` (lint configuration; recorded and otherwise ignored).
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// A warning: accepted input that Docker flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The line the warning is about.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A build stage: its FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Position of the stage in the file, from 0 (what `COPY --from=0` refers to).
    pub index: usize,
    /// The stage name from `FROM ... AS name`, lowercased.
    pub name: Option<String>,
    /// The FROM line's arguments (also in `from.command`).
    pub base: From,
    /// The FROM instruction (line range, original text).
    pub from: Instruction,
    /// The instructions after FROM.
    pub instructions: Vec<Instruction>,
}

/// Instruction keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Keyword {
    /// `ADD`
    Add,
    /// `ARG`
    Arg,
    /// `CMD`
    Cmd,
    /// `COPY`
    Copy,
    /// `ENTRYPOINT`
    Entrypoint,
    /// `ENV`
    Env,
    /// `EXPOSE`
    Expose,
    /// `FROM`
    From,
    /// `HEALTHCHECK`
    Healthcheck,
    /// `LABEL`
    Label,
    /// `MAINTAINER`
    Maintainer,
    /// `ONBUILD`
    Onbuild,
    /// `RUN`
    Run,
    /// `SHELL`
    Shell,
    /// `STOPSIGNAL`
    Stopsignal,
    /// `USER`
    User,
    /// `VOLUME`
    Volume,
    /// `WORKDIR`
    Workdir,
}

/// How the builder expands variables in an instruction's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expansion {
    /// Not expanded by the builder (RUN, CMD, ENTRYPOINT and HEALTHCHECK are left to the
    /// shell in the container; SHELL, MAINTAINER and ONBUILD are taken literally).
    None,
    /// Each argument is expanded as one word ([`crate::Lexer::expand`]) with the stage's
    /// ARG and ENV values.
    Word,
    /// Each argument is expanded and split into words ([`crate::Lexer::expand_words`]);
    /// EXPOSE only.
    Words,
    /// Expanded as one word with the meta ARGs (those before the first FROM) only: FROM.
    MetaArgs,
}

impl Keyword {
    /// Every keyword.
    pub const ALL: [Keyword; 18] = [
        Keyword::Add,
        Keyword::Arg,
        Keyword::Cmd,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Expose,
        Keyword::From,
        Keyword::Healthcheck,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Onbuild,
        Keyword::Run,
        Keyword::Shell,
        Keyword::Stopsignal,
        Keyword::User,
        Keyword::Volume,
        Keyword::Workdir,
    ];

    /// The keyword in upper case, as Docker prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Add => "ADD",
            Keyword::Arg => "ARG",
            Keyword::Cmd => "CMD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Env => "ENV",
            Keyword::Expose => "EXPOSE",
            Keyword::From => "FROM",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Run => "RUN",
            Keyword::Shell => "SHELL",
            Keyword::Stopsignal => "STOPSIGNAL",
            Keyword::User => "USER",
            Keyword::Volume => "VOLUME",
            Keyword::Workdir => "WORKDIR",
        }
    }

    /// The keyword for `word`, in any case.
    pub fn from_word(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(word))
    }

    /// Which variable expansion the builder applies to this instruction (Docker's list:
    /// ADD, COPY, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and ARG with the
    /// stage's variables, FROM with the meta ARGs, the rest not at all). RUN's
    /// `--mount` option values are expanded too (see [`crate::MountSpec::resolve`]).
    pub fn expansion(self) -> Expansion {
        match self {
            Keyword::Add
            | Keyword::Arg
            | Keyword::Copy
            | Keyword::Env
            | Keyword::Label
            | Keyword::Stopsignal
            | Keyword::User
            | Keyword::Volume
            | Keyword::Workdir => Expansion::Word,
            Keyword::Expose => Expansion::Words,
            Keyword::From => Expansion::MetaArgs,
            Keyword::Cmd
            | Keyword::Entrypoint
            | Keyword::Healthcheck
            | Keyword::Maintainer
            | Keyword::Onbuild
            | Keyword::Run
            | Keyword::Shell => Expansion::None,
        }
    }
}

impl std::fmt::Display for Keyword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The build args Docker predefines: usable with `--build-arg` without an `ARG` line,
/// and left out of the image's history.
pub const PREDEFINED_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// One instruction, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// The keyword.
    pub keyword: Keyword,
    /// The typed arguments.
    pub command: Command,
    /// The instruction as written, continuation lines joined and comments dropped
    /// (Docker's `Original`, shown in history as `/bin/sh -c #(nop) ...`).
    pub original: String,
    /// First line (from 1).
    pub start_line: usize,
    /// Last line, heredoc bodies included.
    pub end_line: usize,
    /// The heredocs of RUN, COPY and ADD (and of their ONBUILD forms), in order.
    pub heredocs: Vec<Heredoc>,
}

/// A heredoc (`<<EOF ... EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// `3<<EOF` gives `Some(3)`.
    pub fd: Option<u32>,
    /// Whether variables in the body are expanded (false when the delimiter was quoted).
    pub expand: bool,
    /// `<<-EOF`: leading tabs were stripped from the body and the terminator.
    pub chomp: bool,
    /// The body, each line with its newline (tabs already stripped when `chomp`).
    pub content: String,
}

/// The typed arguments of an instruction.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `FROM [--platform=p] image [AS name]`
    From(From),
    /// `RUN [flags] command`
    Run(Run),
    /// `CMD command`
    Cmd(CommandLine),
    /// `ENTRYPOINT command`
    Entrypoint(CommandLine),
    /// `SHELL ["exe", "arg"...]` (JSON only)
    Shell(Vec<String>),
    /// `COPY [flags] src... dest`
    Copy(Copy),
    /// `ADD [flags] src... dest`
    Add(Add),
    /// `ENV k=v ...` or `ENV k v`
    Env(Vec<KeyValue>),
    /// `ARG name[=default] ...`
    Arg(Vec<ArgDef>),
    /// `LABEL k=v ...`
    Label(Vec<KeyValue>),
    /// `EXPOSE port[/proto] ...` (unexpanded words)
    Expose(Vec<String>),
    /// `VOLUME path...` or `VOLUME ["path"...]`
    Volume(Vec<String>),
    /// `WORKDIR path`
    Workdir(String),
    /// `USER user[:group]`
    User(String),
    /// `STOPSIGNAL signal`
    StopSignal(String),
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [flags] CMD command`
    Healthcheck(Healthcheck),
    /// `ONBUILD instruction`
    Onbuild(Onbuild),
    /// `MAINTAINER name` (deprecated; the builder records it as the `author` field)
    Maintainer(String),
}

/// A FROM line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The image (or earlier stage) name, unexpanded. `scratch` is the empty image.
    pub image: String,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// `--platform=`, unexpanded.
    pub platform: Option<String>,
}

/// A command in shell form (run with the SHELL, `/bin/sh -c` by default) or exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// Shell form: the text after the keyword and flags, as written.
    Shell(String),
    /// Exec (JSON) form.
    Exec(Vec<String>),
}

/// RUN's network mode (`--network=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// The default network.
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// RUN's security mode (`--security=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityMode {
    /// The normal sandbox.
    Sandbox,
    /// All capabilities (needs the builder's entitlement).
    Insecure,
}

/// A RUN.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The command (heredocs are in [`Instruction::heredocs`]).
    pub command: CommandLine,
    /// `--mount=` options, in order.
    pub mounts: Vec<MountSpec>,
    /// `--network=`, if given.
    pub network: Option<NetworkMode>,
    /// `--security=`, if given.
    pub security: Option<SecurityMode>,
}

/// A heredoc used as a COPY/ADD source: a file made from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSource {
    /// The file name (the heredoc's delimiter).
    pub path: String,
    /// The content.
    pub data: String,
    /// Whether variables in the content are expanded.
    pub expand: bool,
}

/// A COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Source paths or globs, unexpanded (heredoc sources are in `inline`).
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub inline: Vec<InlineSource>,
    /// The destination, unexpanded.
    pub dest: String,
    /// `--from=` a stage name, a stage index or an image.
    pub from: Option<String>,
    /// `--chown=`
    pub chown: Option<String>,
    /// `--chmod=`
    pub chmod: Option<String>,
    /// `--link`
    pub link: bool,
    /// `--parents`
    pub parents: bool,
    /// `--exclude=` patterns.
    pub exclude: Vec<String>,
    /// Whether the sources were given as a JSON array.
    pub json: bool,
}

/// An ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// Source paths, globs or URLs, unexpanded (heredoc sources are in `inline`).
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub inline: Vec<InlineSource>,
    /// The destination, unexpanded.
    pub dest: String,
    /// `--chown=`
    pub chown: Option<String>,
    /// `--chmod=`
    pub chmod: Option<String>,
    /// `--link`
    pub link: bool,
    /// `--keep-git-dir`, if given.
    pub keep_git_dir: Option<bool>,
    /// `--checksum=`
    pub checksum: Option<String>,
    /// `--unpack`, if given.
    pub unpack: Option<bool>,
    /// `--exclude=` patterns.
    pub exclude: Vec<String>,
    /// Whether the sources were given as a JSON array.
    pub json: bool,
}

/// A key and value of ENV or LABEL, unexpanded (quotes still in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Written in the legacy `ENV key value` form (no `=`).
    pub legacy: bool,
}

/// An ARG declaration, unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    /// The name.
    pub name: String,
    /// The default value, if given (`ARG a=` gives `Some("")`).
    pub default: Option<String>,
}

/// A HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK CMD ...`
    Cmd {
        /// Docker's `Test`: `["CMD", args...]` (exec form) or `["CMD-SHELL", command]`.
        test: Vec<String>,
        /// `--interval` (absent or zero: the default).
        interval: Option<Duration>,
        /// `--timeout`
        timeout: Option<Duration>,
        /// `--start-period`
        start_period: Option<Duration>,
        /// `--start-interval`
        start_interval: Option<Duration>,
        /// `--retries` (absent or zero: the default).
        retries: Option<u32>,
    },
}

/// An ONBUILD: the trigger as text (stored in the image config) and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Onbuild {
    /// The trigger text, as the image config's `OnBuild` entry holds it.
    pub expression: String,
    /// The trigger instruction.
    pub instruction: Box<Instruction>,
}
