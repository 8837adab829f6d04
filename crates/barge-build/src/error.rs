//! Parse errors, located by file, line and (where known) column.

use crate::ast::Keyword;
use crate::mount::MountError;

/// A Dockerfile that does not parse. Displays as `Dockerfile:7:1: unknown instruction:
/// FORM (did you mean FROM?)` (the column is left out when it is not known).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}{}: {kind}", col(.column))]
pub struct ParseError {
    /// The file name given to [`crate::parse_named`] (`Dockerfile` for [`crate::parse`]).
    pub file: String,
    /// The line, from 1 (the first line of the instruction at fault).
    pub line: usize,
    /// The column, from 1, in characters.
    pub column: Option<usize>,
    /// The last line of the instruction at fault.
    pub end_line: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

fn col(c: &Option<usize>) -> String {
    match c {
        Some(c) => format!(":{c}"),
        None => String::new(),
    }
}

fn hint(s: &Option<String>) -> String {
    match s {
        Some(m) => format!(" (did you mean {m}?)"),
        None => String::new(),
    }
}

/// What is wrong in a Dockerfile. The messages are Docker's where Docker has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// A parser directive given twice.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// Only comments, directives and blank lines.
    #[error("file with no instructions")]
    NoInstructions,
    /// Only ARGs: nothing to build.
    #[error("the Dockerfile has no build stage (no FROM)")]
    NoStages,
    /// A heredoc whose terminator never comes.
    #[error("unterminated heredoc {0:?}")]
    UnterminatedHeredoc(String),
    /// The file ends in a line continuation that has no instruction.
    #[error("line continuation at end of file with no instruction after it")]
    EmptyContinuation,
    /// An instruction keyword Docker does not know.
    #[error("unknown instruction: {name}{}", hint(.suggestion))]
    UnknownInstruction {
        /// The word as written.
        name: String,
        /// The closest keyword.
        suggestion: Option<String>,
    },
    /// An instruction other than ARG before the first FROM.
    #[error("no build stage in current context: {0} must come after a FROM (only ARG can come before the first FROM)")]
    NoStage(Keyword),
    /// A flag the instruction does not take.
    #[error("unknown flag: --{flag}{}", hint(.suggestion))]
    UnknownFlag {
        /// The flag name.
        flag: String,
        /// The closest flag of this instruction.
        suggestion: Option<String>,
    },
    /// A flag given twice.
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    /// `--from` without `=value` (or `--link=`).
    #[error("missing a value on flag: --{0}")]
    MissingFlagValue(String),
    /// A boolean flag with a value other than true/false.
    #[error("expecting boolean value for flag --{flag}, not: {value}")]
    BadBoolFlag {
        /// The flag.
        flag: String,
        /// The value.
        value: String,
    },
    /// An instruction without arguments.
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(Keyword),
    /// An instruction that takes exactly one argument.
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(Keyword),
    /// COPY/ADD with only one argument.
    #[error("{0} requires at least two arguments, but only one was provided. Destination could not be determined")]
    NoDestination(Keyword),
    /// COPY/ADD with a heredoc as destination.
    #[error("{0} cannot accept a heredoc as a destination")]
    HeredocDestination(Keyword),
    /// `ENV =x` and the like.
    #[error("{0} names can not be blank")]
    BlankName(Keyword),
    /// `ENV name` without a value.
    #[error("{0} must have two arguments")]
    TwoArguments(Keyword),
    /// `ENV a=b c`: a later word without `=`.
    #[error("Syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    /// A JSON array with something other than strings.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    /// SHELL not in JSON form (or invalid JSON).
    #[error("{0} requires the arguments to be in JSON form")]
    NotJson(Keyword),
    /// FROM with two or more than three words.
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    /// A stage name that is not `[a-z][a-z0-9-_.]*`.
    #[error(
        "invalid name for build stage: {0:?}, name can't start with a number or contain symbols"
    )]
    StageName(String),
    /// `ONBUILD ONBUILD`
    #[error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")]
    OnbuildChain,
    /// `ONBUILD FROM` / `ONBUILD MAINTAINER`
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(Keyword),
    /// `HEALTHCHECK NONE something`
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArguments,
    /// `HEALTHCHECK CMD` alone.
    #[error("Missing command after HEALTHCHECK CMD")]
    HealthcheckMissingCommand,
    /// `HEALTHCHECK FOO`
    #[error("Unknown type {0:?} in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    /// A duration flag that does not parse.
    #[error("invalid duration {value:?} for --{flag}")]
    Duration {
        /// The flag.
        flag: String,
        /// The value.
        value: String,
    },
    /// A duration below 1ms (and not 0).
    #[error("Interval {0:?} cannot be less than 1ms")]
    IntervalTooShort(String),
    /// `--retries` that is not an integer.
    #[error("invalid value for --retries: {0:?}")]
    Retries(String),
    /// `--retries=-1`
    #[error("--retries cannot be negative ({0})")]
    NegativeRetries(i64),
    /// `VOLUME ""`
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// `RUN --network=bogus`
    #[error("invalid network mode {0:?}")]
    NetworkMode(String),
    /// `RUN --security=bogus`
    #[error("security {0:?} is not valid")]
    SecurityMode(String),
    /// A bad `--mount=`.
    #[error(transparent)]
    Mount(Box<MountError>),
    /// A heredoc delimiter that does not lex.
    #[error("{0}")]
    Heredoc(String),
}
