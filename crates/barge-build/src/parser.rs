//! The Dockerfile parser: physical lines to instructions (directives, comments, line
//! continuations, heredocs), then each instruction to its typed form.
//!
//! It follows BuildKit's `frontend/dockerfile/parser` and `instructions` packages in
//! behaviour (not in code); where barge is stricter, the doc of the item says so.

use std::time::Duration;

use crate::ast::*;
use crate::error::{ParseError, ParseErrorKind as K};
use crate::mount::MountSpec;
use crate::shell::{EmptyEnv, Lexer};
use crate::suggest::suggest;

/// Parses a Dockerfile named `Dockerfile` (the name only shows in errors).
///
/// Docker's parse-time rules apply, and some of its build-time checks are made here so
/// that bad files fail before anything runs: a file without FROM, an unknown ONBUILD
/// trigger, CMD/ENTRYPOINT without arguments, and flags on HEALTHCHECK NONE or
/// STOPSIGNAL (which Docker ignores) are errors.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    parse_named(text, "Dockerfile")
}

/// Parses a Dockerfile; `file` names it in errors (`-f other.Dockerfile`).
pub fn parse_named(text: &str, file: &str) -> Result<Dockerfile, ParseError> {
    let mut p = Lines::new(text, file);
    let nodes = p.run()?;
    let directives = p.directives.clone();
    let mut warnings = p.warnings;
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &nodes {
        let inst = typed(node, file, directives.escape)?;
        if let Command::From(f) = &inst.command {
            if let Some(name) = &f.name {
                if let Some(prev) = stages.iter().find(|s| s.name.as_ref() == Some(name)) {
                    warnings.push(Warning {
                        line: inst.start_line,
                        message: format!(
                            "duplicate stage name {name:?} (also on line {}): references use the last one",
                            prev.from.start_line
                        ),
                    });
                }
            }
            stages.push(Stage {
                index: stages.len(),
                name: f.name.clone(),
                base: f.clone(),
                from: inst,
                instructions: Vec::new(),
            });
            continue;
        }
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(inst),
            None if inst.keyword == Keyword::Arg => meta_args.push(inst),
            None => {
                return Err(node
                    .ctx(file)
                    .err(Some(node.kw_off), K::NoStage(inst.keyword)));
            }
        }
    }
    if stages.is_empty() {
        let last = nodes.last().map_or(1, |n| n.end_line);
        return Err(ParseError {
            file: file.to_string(),
            line: last,
            column: None,
            end_line: last,
            kind: K::NoStages,
        });
    }
    Ok(Dockerfile {
        directives,
        meta_args,
        stages,
        warnings,
    })
}

/// A logical line (continuations joined) and where each piece came from.
#[derive(Debug, Clone, Default)]
struct Logical {
    text: String,
    /// (byte offset in `text`, line, column of that byte) for each physical piece.
    segs: Vec<(usize, usize, usize)>,
}

impl Logical {
    fn push(&mut self, piece: &str, line: usize, col: usize) {
        self.segs.push((self.text.len(), line, col));
        self.text.push_str(piece);
    }

    /// Line and column of byte offset `off` of `text`.
    fn pos(&self, off: usize) -> (usize, usize) {
        let mut best = (0, 1, 1);
        for &(at, line, col) in &self.segs {
            if at <= off {
                best = (at, line, col);
            } else {
                break;
            }
        }
        let (at, line, col) = best;
        let end = off.min(self.text.len());
        let chars = self.text.get(at..end).map_or(0, |s| s.chars().count());
        (line, col + chars)
    }
}

/// An instruction before typing: keyword, flags and the rest, with offsets into the
/// logical line.
#[derive(Debug, Clone)]
struct Node {
    logical: Logical,
    keyword: String,
    kw_off: usize,
    flags: Vec<(String, usize)>,
    rest: String,
    rest_off: usize,
    /// ONBUILD's trigger.
    sub: Option<Box<Node>>,
    start_line: usize,
    end_line: usize,
    heredocs: Vec<Heredoc>,
}

struct Ctx<'a> {
    file: &'a str,
    logical: &'a Logical,
    start: usize,
    end: usize,
}

impl Ctx<'_> {
    fn err(&self, off: Option<usize>, kind: K) -> ParseError {
        let (line, column) = match off {
            Some(o) => {
                let (l, c) = self.logical.pos(o);
                (l, Some(c))
            }
            None => (self.start, None),
        };
        ParseError {
            file: self.file.to_string(),
            line,
            column,
            end_line: self.end.max(line),
            kind,
        }
    }
}

impl Node {
    fn ctx<'a>(&'a self, file: &'a str) -> Ctx<'a> {
        Ctx {
            file,
            logical: &self.logical,
            start: self.start_line,
            end: self.end_line,
        }
    }
}

fn byte_offset(base: &str, sub: &str) -> usize {
    // `sub` is always a slice of `base`; the subtraction gives its position.
    (sub.as_ptr() as usize).saturating_sub(base.as_ptr() as usize)
}

/// Docker's `reWhitespace`: `[\t\v\f\r ]`.
fn is_re_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Splits a logical line into keyword, flags and rest (BuildKit's `splitCommand`).
fn split_command(logical: &Logical, base_off: usize, escape: char) -> Node {
    let line = &logical.text[base_off..];
    let trimmed = line.trim();
    let kw_off = base_off + byte_offset(line, trimmed);
    let (keyword, after) = match trimmed.find(is_re_ws) {
        Some(i) => (&trimmed[..i], trimmed[i..].trim_start_matches(is_re_ws)),
        None => (trimmed, ""),
    };
    let after_off = base_off + byte_offset(line, after);
    let (rest, flags) = extract_flags(after, escape);
    let rest_trimmed = rest.trim();
    let rest_off = after_off + byte_offset(after, rest_trimmed);
    Node {
        logical: logical.clone(),
        keyword: keyword.to_string(),
        kw_off,
        flags: flags.into_iter().map(|(f, o)| (f, after_off + o)).collect(),
        rest: rest_trimmed.to_string(),
        rest_off,
        sub: None,
        start_line: 0,
        end_line: 0,
        heredocs: Vec::new(),
    }
}

/// Takes the leading `--flag` words off `line` (BuildKit's `extractBuilderFlags`):
/// quotes and the escape character work inside them; a bare `--` ends the flags.
fn extract_flags(line: &str, escape: char) -> (&str, Vec<(String, usize)>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let byte_at = |i: usize| chars.get(i).map_or(line.len(), |c| c.0);
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut word_start = 0;
    let mut blank_ok = false;
    let mut quote = '\0';
    let mut pos = 0;
    while pos <= n {
        let ch = chars.get(pos).map_or('\0', |c| c.1);
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            let next = chars.get(pos + 1).map(|c| c.1);
            if ch != '-' || next != Some('-') {
                return (&line[byte_at(pos)..], words);
            }
            phase = Phase::Word;
            word_start = byte_at(pos);
        }
        if pos == n {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push((word, word_start));
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (&line[byte_at(pos)..], words);
                }
                if blank_ok || !word.is_empty() {
                    words.push((std::mem::take(&mut word), word_start));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = chars[pos].1;
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = chars[pos].1;
        }
        word.push(c);
        pos += 1;
    }
    ("", words)
}

/// Splits on whitespace keeping quotes and escapes in the words (BuildKit's
/// `parseWords`, for ENV, LABEL and ARG; the builder removes them when expanding).
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= n {
        let ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if pos == n {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                // Outside quotes the escape and the next character stay together,
                // even when that is a quote.
                word.push(ch);
                pos += 1;
                word.push(chars[pos]);
                pos += 1;
                continue;
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            word.push(ch);
            pos += 1;
            word.push(chars[pos]);
            pos += 1;
            continue;
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// `Ok(Some(array))` for a JSON array of strings, `Ok(None)` for anything that is not
/// valid JSON (the shell form then applies), an error for a JSON array of non-strings.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, K> {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Ok(None);
    }
    let values: Vec<serde_json::Value> = match serde_json::from_str(t) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(K::NotStringArray),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Splits on Docker's whitespace (`[\t\v\f\r ]+`), for FROM, EXPOSE and the non-JSON
/// forms of COPY, ADD and VOLUME.
fn split_ws(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_re_ws)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The head of a heredoc word (`<<EOF`, `<<-"EOF"`, `3<<EOF`), body not yet read.
struct HeredocHead {
    name: String,
    fd: Option<u32>,
    expand: bool,
    chomp: bool,
}

/// BuildKit's `ParseHeredoc`: `^(\d*)<<(-?)\s*([^<]*)$` and a single-word delimiter.
fn parse_heredoc(src: &str) -> Result<Option<HeredocHead>, K> {
    let digits_end = src.find(|c: char| !c.is_ascii_digit()).unwrap_or(src.len());
    let (digits, after) = src.split_at(digits_end);
    let Some(after) = after.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches(['\t', '\n', '\u{c}', '\r', ' ']);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let fd = if digits.is_empty() {
        None
    } else {
        digits.parse::<u32>().ok()
    };
    // The delimiter is quoted (no expansion of the body) when lexing it with and
    // without keeping quotes gives a different number of quote characters.
    let lex = Lexer::new('\\').skip_unset(true);
    let words = lex
        .expand_words(rest, &EmptyEnv)
        .map_err(|e| K::Heredoc(e.to_string()))?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = lex
        .raw_quotes(true)
        .expand_words(rest, &EmptyEnv)
        .map_err(|e| K::Heredoc(e.to_string()))?;
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let expand = raw.len() == 1 && quotes(&words[0]) == quotes(&raw[0]);
    Ok(Some(HeredocHead {
        name: words[0].clone(),
        fd,
        expand,
        chomp,
    }))
}

fn heredoc_heads(line: &str) -> Result<Vec<HeredocHead>, K> {
    let lex = Lexer::new('\\')
        .raw_quotes(true)
        .raw_escapes(true)
        .skip_unset(true);
    // A line that does not lex has no heredocs (as in BuildKit).
    let words = lex.expand_words(line, &EmptyEnv).unwrap_or_default();
    let mut out = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc(&w)? {
            out.push(h);
        }
    }
    Ok(out)
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// Removes a line-continuation escape at the end of `line`; `true` when there was none
/// (the line ends the instruction). An escaped escape (`\\`) is not a continuation.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (line, true);
    };
    if before.is_empty() {
        return ("", false);
    }
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

/// Parses a directive line (`# key=value`); `None` when it is not one.
fn directive_of(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let is_s = |c: char| matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ');
    let mut chars = rest.char_indices();
    let (_, first) = chars.next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let name_end = rest
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphanumeric())
        .map_or(rest.len(), |(i, _)| i);
    let name = &rest[..name_end];
    let after = rest[name_end..].trim_start_matches(is_s);
    let value = after.strip_prefix('=')?.trim_matches(is_s);
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_string()))
}

struct Lines<'a> {
    file: &'a str,
    lines: Vec<&'a str>,
    idx: usize,
    directives: Directives,
    directives_done: bool,
    seen: Vec<String>,
    warnings: Vec<Warning>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str, file: &'a str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Lines {
            file,
            lines: text.split_inclusive('\n').collect(),
            idx: 0,
            directives: Directives::default(),
            directives_done: false,
            seen: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn next_line(&mut self) -> Option<&'a str> {
        let l = self.lines.get(self.idx).copied();
        if l.is_some() {
            self.idx += 1;
        }
        l
    }

    fn err_at(&self, line: usize, end: usize, kind: K) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line,
            column: None,
            end_line: end,
            kind,
        }
    }

    /// Directives are only looked for before anything else (blank lines included).
    fn check_directive(&mut self, line: &str, line_no: usize) -> Result<bool, ParseError> {
        if self.directives_done {
            return Ok(false);
        }
        let Some((key, value)) = directive_of(line) else {
            self.directives_done = true;
            return Ok(false);
        };
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.directives_done = true;
            return Ok(false);
        }
        if self.seen.contains(&key) {
            return Err(self.err_at(line_no, line_no, K::DuplicateDirective(key)));
        }
        self.seen.push(key.clone());
        match key.as_str() {
            "escape" => match value.as_str() {
                "\\" => self.directives.escape = '\\',
                "`" => self.directives.escape = '`',
                _ => return Err(self.err_at(line_no, line_no, K::InvalidEscape(value))),
            },
            "syntax" => self.directives.syntax = Some(value),
            _ => self.directives.check = Some(value),
        }
        Ok(true)
    }

    fn run(&mut self) -> Result<Vec<Node>, ParseError> {
        let mut nodes = Vec::new();
        let mut line_no = 0;
        while let Some(raw) = self.next_line() {
            let token = trim_newline(raw);
            let stripped = token.trim_start();
            let lead_cols = token[..token.len() - stripped.len()].chars().count();
            self.check_directive(stripped, line_no + 1)?;
            let content = if is_comment(stripped) { "" } else { stripped };
            line_no += 1;
            let start_line = line_no;
            let escape = self.directives.escape;
            let (first, mut at_end) = trim_continuation(content, escape);
            if at_end && first.is_empty() {
                continue;
            }
            let mut logical = Logical::default();
            logical.push(first, line_no, lead_cols + 1);
            let mut empty_continuation = false;
            while !at_end {
                let Some(raw) = self.next_line() else { break };
                line_no += 1;
                let token = trim_newline(raw);
                if is_comment(token) {
                    continue;
                }
                if token.trim_start().is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (piece, end) = trim_continuation(token, escape);
                at_end = end;
                logical.push(piece, line_no, 1);
            }
            if empty_continuation {
                self.warnings.push(Warning {
                    line: line_no,
                    message: format!("Empty continuation line found in: {}", logical.text),
                });
            }
            if logical.text.trim().is_empty() {
                return Err(self.err_at(start_line, line_no, K::EmptyContinuation));
            }
            let mut node = split_command(&logical, 0, escape);
            if node.keyword.eq_ignore_ascii_case("onbuild") && !node.rest.is_empty() {
                let sub = split_command(&logical, node.rest_off, escape);
                node.sub = Some(Box::new(sub));
            }
            let target = node.sub.as_deref().unwrap_or(&node);
            let heredoc_ok = ["run", "copy", "add"]
                .iter()
                .any(|k| target.keyword.eq_ignore_ascii_case(k))
                && !matches!(parse_json(&target.rest), Ok(Some(_)));
            if heredoc_ok && logical.text.contains("<<") {
                let heads = heredoc_heads(&logical.text)
                    .map_err(|k| self.err_at(start_line, line_no, k))?;
                for head in heads {
                    let mut content = String::new();
                    let mut terminated = false;
                    while let Some(raw) = self.next_line() {
                        line_no += 1;
                        let mut candidate = trim_newline(raw);
                        if head.chomp {
                            candidate = candidate.trim_start_matches('\t');
                        }
                        if candidate == head.name {
                            terminated = true;
                            break;
                        }
                        content.push_str(raw);
                    }
                    if !terminated {
                        return Err(self.err_at(
                            start_line,
                            line_no,
                            K::UnterminatedHeredoc(head.name),
                        ));
                    }
                    if head.chomp {
                        content = chomp_tabs(&content);
                    }
                    node.heredocs.push(Heredoc {
                        name: head.name,
                        fd: head.fd,
                        expand: head.expand,
                        chomp: head.chomp,
                        content,
                    });
                }
            }
            node.start_line = start_line;
            node.end_line = line_no;
            if let Some(sub) = node.sub.as_deref_mut() {
                sub.start_line = start_line;
                sub.end_line = line_no;
            }
            nodes.push(node);
        }
        if nodes.is_empty() {
            return Err(self.err_at(line_no.max(1), line_no.max(1), K::NoInstructions));
        }
        Ok(nodes)
    }
}

/// Strips leading tabs from each line (`<<-`).
fn chomp_tabs(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Bool,
    Str,
    Strs,
}

#[derive(Default)]
struct Flags {
    used: Vec<(&'static str, FlagValue)>,
}

enum FlagValue {
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
}

impl Flags {
    fn get(&self, name: &str) -> Option<&FlagValue> {
        self.used.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
    fn string(&self, name: &str) -> Option<String> {
        match self.get(name) {
            Some(FlagValue::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }
    fn boolean(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(FlagValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    fn strings(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            Some(FlagValue::Strs(v)) => v.clone(),
            _ => Vec::new(),
        }
    }
}

/// Checks the flags against what the instruction takes (BuildKit's `BFlags.Parse`).
fn parse_flags(
    node: &Node,
    ctx: &Ctx<'_>,
    defs: &[(&'static str, FlagKind)],
) -> Result<Flags, ParseError> {
    let mut flags = Flags::default();
    for (word, off) in &node.flags {
        if word == "--" {
            break;
        }
        let body = word.strip_prefix("--").unwrap_or(word);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&(def_name, kind)) = defs.iter().find(|(n, _)| *n == name) else {
            return Err(ctx.err(
                Some(*off),
                K::UnknownFlag {
                    flag: name.to_string(),
                    suggestion: suggest(name, defs.iter().map(|d| d.0), true)
                        .map(|s| format!("--{s}")),
                },
            ));
        };
        let existing = flags.used.iter().position(|(n, _)| *n == def_name);
        if existing.is_some() && kind != FlagKind::Strs {
            return Err(ctx.err(Some(*off), K::DuplicateFlag(name.to_string())));
        }
        let v = match kind {
            FlagKind::Bool => match value {
                Some("") => return Err(ctx.err(Some(*off), K::MissingFlagValue(name.to_string()))),
                None => FlagValue::Bool(true),
                Some(v) => match v.to_ascii_lowercase().as_str() {
                    "true" => FlagValue::Bool(true),
                    "false" => FlagValue::Bool(false),
                    _ => {
                        return Err(ctx.err(
                            Some(*off),
                            K::BadBoolFlag {
                                flag: name.to_string(),
                                value: v.to_string(),
                            },
                        ))
                    }
                },
            },
            FlagKind::Str | FlagKind::Strs => {
                let Some(v) = value else {
                    return Err(ctx.err(Some(*off), K::MissingFlagValue(name.to_string())));
                };
                if kind == FlagKind::Str {
                    FlagValue::Str(v.to_string())
                } else {
                    FlagValue::Strs(vec![v.to_string()])
                }
            }
        };
        match (existing, v) {
            (Some(i), FlagValue::Strs(mut more)) => {
                if let FlagValue::Strs(list) = &mut flags.used[i].1 {
                    list.append(&mut more);
                }
            }
            (_, v) => flags.used.push((def_name, v)),
        }
    }
    Ok(flags)
}

/// Go's `time.ParseDuration`, in nanoseconds (may be negative).
fn parse_go_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let mult: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let ns = total as i128;
    Some(if neg { -ns } else { ns })
}

fn opt_interval(
    node: &Node,
    ctx: &Ctx<'_>,
    flags: &Flags,
    name: &str,
) -> Result<Option<Duration>, ParseError> {
    let Some(v) = flags.string(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let off = flag_offset(node, name);
    let ns = parse_go_duration(&v).ok_or_else(|| {
        ctx.err(
            off,
            K::Duration {
                flag: name.to_string(),
                value: v.clone(),
            },
        )
    })?;
    if ns == 0 {
        return Ok(None);
    }
    if ns < 1_000_000 {
        return Err(ctx.err(off, K::IntervalTooShort(name.to_string())));
    }
    Ok(Some(Duration::from_nanos(
        u64::try_from(ns).unwrap_or(u64::MAX),
    )))
}

/// Where the (last) flag `name` is, for errors about its value.
fn flag_offset(node: &Node, name: &str) -> Option<usize> {
    node.flags
        .iter()
        .rev()
        .find(|(w, _)| {
            let body = w.strip_prefix("--").unwrap_or(w);
            body.split('=').next() == Some(name)
        })
        .map(|(_, o)| *o)
}

/// Docker's stage names: `^[a-z][a-z0-9-_.]*$` (after lowercasing).
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Types one node.
fn typed(node: &Node, file: &str, escape: char) -> Result<Instruction, ParseError> {
    let ctx = node.ctx(file);
    let Some(keyword) = Keyword::from_word(&node.keyword) else {
        let names = Keyword::ALL.map(Keyword::as_str);
        return Err(ctx.err(
            Some(node.kw_off),
            K::UnknownInstruction {
                name: node.keyword.clone(),
                suggestion: suggest(&node.keyword, names, false),
            },
        ));
    };
    let rest = node.rest.as_str();
    let at_rest = Some(node.rest_off);
    // Errors about the arguments as a whole name the line (as Docker's do); errors about
    // one word or flag also name its column.
    let err = |kind: K| ctx.err(None, kind);
    let no_flags = |node: &Node| parse_flags(node, &ctx, &[]);
    let json_or = |rest: &str| parse_json(rest).map_err(|k| ctx.err(at_rest, k));
    let one = |node: &Node| -> Result<String, ParseError> {
        no_flags(node)?;
        if rest.is_empty() {
            return Err(err(K::ExactlyOneArgument(keyword)));
        }
        Ok(rest.to_string())
    };

    let command = match keyword {
        Keyword::From => {
            let flags = parse_flags(node, &ctx, &[("platform", FlagKind::Str)])?;
            let args = split_ws(rest);
            let name = match args.len() {
                1 => None,
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let lower = args[2].to_ascii_lowercase();
                    if !valid_stage_name(&lower) {
                        let col = rest.rfind(args[2].as_str()).map(|i| node.rest_off + i);
                        return Err(ctx.err(col, K::StageName(args[2].clone())));
                    }
                    Some(lower)
                }
                _ => return Err(err(K::FromArguments)),
            };
            Command::From(From {
                image: args[0].clone(),
                name,
                platform: flags.string("platform"),
            })
        }
        Keyword::Run => {
            let flags = parse_flags(
                node,
                &ctx,
                &[
                    ("mount", FlagKind::Strs),
                    ("network", FlagKind::Str),
                    ("security", FlagKind::Str),
                ],
            )?;
            let mut mounts = Vec::new();
            for spec in flags.strings("mount") {
                let off = flag_offset(node, "mount");
                mounts
                    .push(MountSpec::new(&spec).map_err(|e| ctx.err(off, K::Mount(Box::new(e))))?);
            }
            let network = match flags.string("network") {
                None => None,
                Some(v) => Some(match v.as_str() {
                    "default" => NetworkMode::Default,
                    "none" => NetworkMode::None,
                    "host" => NetworkMode::Host,
                    _ => return Err(ctx.err(flag_offset(node, "network"), K::NetworkMode(v))),
                }),
            };
            let security = match flags.string("security") {
                None => None,
                Some(v) => Some(match v.as_str() {
                    "sandbox" => SecurityMode::Sandbox,
                    "insecure" => SecurityMode::Insecure,
                    _ => return Err(ctx.err(flag_offset(node, "security"), K::SecurityMode(v))),
                }),
            };
            let command = match json_or(rest)? {
                Some(v) => CommandLine::Exec(v),
                None if rest.is_empty() => return Err(err(K::AtLeastOneArgument(keyword))),
                None => CommandLine::Shell(rest.to_string()),
            };
            Command::Run(Run {
                command,
                mounts,
                network,
                security,
            })
        }
        Keyword::Cmd | Keyword::Entrypoint => {
            no_flags(node)?;
            let cl = match json_or(rest)? {
                Some(v) => CommandLine::Exec(v),
                None if rest.is_empty() => return Err(err(K::AtLeastOneArgument(keyword))),
                None => CommandLine::Shell(rest.to_string()),
            };
            if keyword == Keyword::Cmd {
                Command::Cmd(cl)
            } else {
                Command::Entrypoint(cl)
            }
        }
        Keyword::Shell => {
            no_flags(node)?;
            match json_or(rest)? {
                Some(v) if v.is_empty() => return Err(err(K::AtLeastOneArgument(keyword))),
                Some(v) => Command::Shell(v),
                None if rest.is_empty() => return Err(err(K::AtLeastOneArgument(keyword))),
                None => return Err(err(K::NotJson(keyword))),
            }
        }
        Keyword::Copy | Keyword::Add => {
            let is_copy = keyword == Keyword::Copy;
            let defs: &[(&'static str, FlagKind)] = if is_copy {
                &[
                    ("chown", FlagKind::Str),
                    ("from", FlagKind::Str),
                    ("chmod", FlagKind::Str),
                    ("link", FlagKind::Bool),
                    ("exclude", FlagKind::Strs),
                    ("parents", FlagKind::Bool),
                ]
            } else {
                &[
                    ("chown", FlagKind::Str),
                    ("chmod", FlagKind::Str),
                    ("link", FlagKind::Bool),
                    ("keep-git-dir", FlagKind::Bool),
                    ("checksum", FlagKind::Str),
                    ("unpack", FlagKind::Bool),
                    ("exclude", FlagKind::Strs),
                ]
            };
            let json = json_or(rest)?;
            let is_json = json.is_some();
            let args = json.unwrap_or_else(|| split_ws(rest));
            if args.len() < 2 {
                return Err(err(K::NoDestination(keyword)));
            }
            let flags = parse_flags(node, &ctx, defs)?;
            let (srcs, dest) = args.split_at(args.len() - 1);
            let dest = dest[0].clone();
            if matches!(parse_heredoc(&dest), Ok(Some(_))) {
                return Err(err(K::HeredocDestination(keyword)));
            }
            let mut sources = Vec::new();
            let mut inline = Vec::new();
            for src in srcs {
                match parse_heredoc(src) {
                    Ok(Some(h)) => {
                        let data = node
                            .heredocs
                            .iter()
                            .find(|d| d.name == h.name)
                            .map(|d| d.content.clone())
                            .unwrap_or_default();
                        inline.push(InlineSource {
                            path: h.name,
                            data,
                            expand: h.expand,
                        });
                    }
                    _ => sources.push(src.clone()),
                }
            }
            let link = flags.boolean("link").unwrap_or(false);
            if is_copy {
                Command::Copy(Copy {
                    sources,
                    inline,
                    dest,
                    from: flags.string("from"),
                    chown: flags.string("chown"),
                    chmod: flags.string("chmod"),
                    link,
                    parents: flags.boolean("parents").unwrap_or(false),
                    exclude: flags.strings("exclude"),
                    json: is_json,
                })
            } else {
                Command::Add(Add {
                    sources,
                    inline,
                    dest,
                    chown: flags.string("chown"),
                    chmod: flags.string("chmod"),
                    link,
                    keep_git_dir: flags.boolean("keep-git-dir"),
                    checksum: flags.string("checksum"),
                    unpack: flags.boolean("unpack"),
                    exclude: flags.strings("exclude"),
                    json: is_json,
                })
            }
        }
        Keyword::Env | Keyword::Label => {
            no_flags(node)?;
            let words = parse_words(rest, escape);
            if words.is_empty() {
                return Err(err(K::AtLeastOneArgument(keyword)));
            }
            let mut kvs = Vec::new();
            if !words[0].contains('=') {
                // Legacy `ENV key value...`: the value is the rest of the line.
                let Some(i) = rest.find(is_re_ws) else {
                    return Err(err(K::TwoArguments(keyword)));
                };
                let key = &rest[..i];
                let value = rest[i..].trim_start_matches(is_re_ws);
                kvs.push(KeyValue {
                    key: key.to_string(),
                    value: value.to_string(),
                    legacy: true,
                });
            } else {
                for w in &words {
                    let Some((k, v)) = w.split_once('=') else {
                        let col = rest.find(w.as_str()).map(|i| node.rest_off + i);
                        return Err(ctx.err(col, K::MissingEquals(w.clone())));
                    };
                    kvs.push(KeyValue {
                        key: k.to_string(),
                        value: v.to_string(),
                        legacy: false,
                    });
                }
            }
            if kvs.iter().any(|kv| kv.key.is_empty()) {
                return Err(err(K::BlankName(keyword)));
            }
            if keyword == Keyword::Env {
                Command::Env(kvs)
            } else {
                Command::Label(kvs)
            }
        }
        Keyword::Arg => {
            no_flags(node)?;
            let words = parse_words(rest, escape);
            if words.is_empty() {
                return Err(err(K::AtLeastOneArgument(keyword)));
            }
            let mut defs = Vec::new();
            for w in words {
                let def = match w.split_once('=') {
                    Some((k, v)) => {
                        if k.is_empty() {
                            return Err(err(K::BlankName(keyword)));
                        }
                        ArgDef {
                            name: k.to_string(),
                            default: Some(v.to_string()),
                        }
                    }
                    None => ArgDef {
                        name: w,
                        default: None,
                    },
                };
                defs.push(def);
            }
            Command::Arg(defs)
        }
        Keyword::Expose => {
            no_flags(node)?;
            let ports = split_ws(rest);
            if ports.is_empty() {
                return Err(err(K::AtLeastOneArgument(keyword)));
            }
            Command::Expose(ports)
        }
        Keyword::Volume => {
            no_flags(node)?;
            let args = json_or(rest)?.unwrap_or_else(|| split_ws(rest));
            if args.is_empty() {
                return Err(err(K::AtLeastOneArgument(keyword)));
            }
            let mut vols = Vec::new();
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err(err(K::EmptyVolume));
                }
                vols.push(v.to_string());
            }
            Command::Volume(vols)
        }
        Keyword::Workdir => Command::Workdir(one(node)?),
        Keyword::User => Command::User(one(node)?),
        Keyword::Stopsignal => Command::StopSignal(one(node)?),
        Keyword::Maintainer => Command::Maintainer(one(node)?),
        Keyword::Healthcheck => healthcheck(node, &ctx)?,
        Keyword::Onbuild => {
            no_flags(node)?;
            let Some(sub) = node.sub.as_deref() else {
                return Err(err(K::AtLeastOneArgument(keyword)));
            };
            match Keyword::from_word(&sub.keyword) {
                Some(Keyword::Onbuild) => return Err(err(K::OnbuildChain)),
                Some(k @ (Keyword::From | Keyword::Maintainer)) => {
                    return Err(err(K::OnbuildTrigger(k)))
                }
                _ => {}
            }
            let mut expression = node.logical.text[node.rest_off..].to_string();
            for h in &node.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            let mut inner = typed(sub, file, escape)?;
            inner.original = expression.clone();
            inner.heredocs = node.heredocs.clone();
            Command::Onbuild(Onbuild {
                expression,
                instruction: Box::new(inner),
            })
        }
    };
    Ok(Instruction {
        keyword,
        command,
        original: node.logical.text.clone(),
        start_line: node.start_line,
        end_line: node.end_line,
        heredocs: node.heredocs.clone(),
    })
}

fn healthcheck(node: &Node, ctx: &Ctx<'_>) -> Result<Command, ParseError> {
    let rest = node.rest.as_str();
    let at = Some(node.rest_off);
    if rest.is_empty() {
        return Err(ctx.err(None, K::AtLeastOneArgument(Keyword::Healthcheck)));
    }
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let typ = rest[..sep].to_ascii_uppercase();
    let args = rest[sep..].trim_start();
    if typ == "NONE" {
        // BuildKit ignores flags here; barge refuses them like any unknown flag.
        parse_flags(node, ctx, &[])?;
        if !args.is_empty() {
            return Err(ctx.err(at, K::HealthcheckNoneArguments));
        }
        return Ok(Command::Healthcheck(Healthcheck::None));
    }
    let flags = parse_flags(
        node,
        ctx,
        &[
            ("interval", FlagKind::Str),
            ("timeout", FlagKind::Str),
            ("start-period", FlagKind::Str),
            ("start-interval", FlagKind::Str),
            ("retries", FlagKind::Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(ctx.err(at, K::HealthcheckType(rest[..sep].to_string())));
    }
    let test = match parse_json(args).map_err(|k| ctx.err(at, k))? {
        Some(v) if v.is_empty() => return Err(ctx.err(at, K::HealthcheckMissingCommand)),
        Some(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
        None if args.is_empty() => return Err(ctx.err(at, K::HealthcheckMissingCommand)),
        None => vec!["CMD-SHELL".to_string(), args.to_string()],
    };
    let retries = match flags.string("retries").filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => {
            let off = flag_offset(node, "retries");
            let n: i64 = r
                .parse::<i32>()
                .map_err(|_| ctx.err(off, K::Retries(r.clone())))?
                .into();
            if n < 0 {
                return Err(ctx.err(off, K::NegativeRetries(n)));
            }
            u32::try_from(n).ok().filter(|n| *n > 0)
        }
    };
    Ok(Command::Healthcheck(Healthcheck::Cmd {
        test,
        interval: opt_interval(node, ctx, &flags, "interval")?,
        timeout: opt_interval(node, ctx, &flags, "timeout")?,
        start_period: opt_interval(node, ctx, &flags, "start-period")?,
        start_interval: opt_interval(node, ctx, &flags, "start-interval")?,
        retries,
    }))
}

/// Whether `src` is a heredoc reference (`<<EOF`), as COPY and ADD see their sources.
pub fn is_heredoc_word(src: &str) -> bool {
    matches!(parse_heredoc(src), Ok(Some(_)))
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn flags_extraction() {
        let (rest, flags) = extract_flags("--a=1 --b=\"x y\" --c='q' rest of --line", '\\');
        assert_eq!(rest, "rest of --line");
        let words: Vec<&str> = flags.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(words, vec!["--a=1", "--b=x y", "--c=q"]);
        assert_eq!(flags[1].1, 6);
        let (rest, flags) = extract_flags("--x -- --y z", '\\');
        assert_eq!(rest, " --y z");
        assert_eq!(flags.len(), 1);
        let (rest, flags) = extract_flags("--only", '\\');
        assert_eq!(rest, "");
        assert_eq!(flags[0].0, "--only");
        let (rest, flags) = extract_flags("-x y", '\\');
        assert_eq!(rest, "-x y");
        assert!(flags.is_empty());
        let (_, flags) = extract_flags("--a=b\\ c d", '\\');
        assert_eq!(flags[0].0, "--a=b c");
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            parse_words("a=\"b c\" d='e f' g\\ h", '\\'),
            vec!["a=\"b c\"", "d='e f'", "g\\ h"]
        );
        assert_eq!(parse_words("  x   y  ", '\\'), vec!["x", "y"]);
        assert_eq!(parse_words("a=\"\"", '\\'), vec!["a=\"\""]);
        assert_eq!(parse_words("'it\\'s' x", '\\'), vec!["'it\\'s' x"]);
        assert_eq!(parse_words("a=`\" b", '`'), vec!["a=`\"", "b"]);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("1s"), Some(1_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("300ms"), Some(300_000_000));
        assert_eq!(parse_go_duration("2us"), Some(2_000));
        assert_eq!(parse_go_duration("-1s"), Some(-1_000_000_000));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("1x"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration("1..2s"), None);
    }

    #[test]
    fn continuation_rule() {
        assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
        assert_eq!(trim_continuation("a \\ \t", '\\'), ("a ", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a \\\\", '\\'), ("a \\\\", true));
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
        assert_eq!(trim_continuation("plain", '\\'), ("plain", true));
    }

    #[test]
    fn heredoc_words() {
        let h = parse_heredoc("<<EOF").unwrap().unwrap();
        assert_eq!(
            (h.name.as_str(), h.expand, h.chomp, h.fd),
            ("EOF", true, false, None)
        );
        let h = parse_heredoc("<<-'EOF'").unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.expand, h.chomp), ("EOF", false, true));
        let h = parse_heredoc("2<<E\"O\"F").unwrap().unwrap();
        assert_eq!((h.name.as_str(), h.expand, h.fd), ("EOF", false, Some(2)));
        assert!(parse_heredoc("<<").unwrap().is_none());
        assert!(parse_heredoc("<<a b").unwrap().is_none());
        assert!(parse_heredoc("x<<EOF").unwrap().is_none());
        assert!(parse_heredoc("<<EOF<").unwrap().is_none());
        assert!(is_heredoc_word("<< EOF"));
    }

    #[test]
    fn directive_lines() {
        assert_eq!(
            directive_of("# escape=`"),
            Some(("escape".into(), "`".into()))
        );
        assert_eq!(
            directive_of("#syntax = a b "),
            Some(("syntax".into(), "a b".into()))
        );
        assert_eq!(directive_of("# escape="), None);
        assert_eq!(directive_of("# 1x=y"), None);
        assert_eq!(directive_of("escape=`"), None);
    }
}
