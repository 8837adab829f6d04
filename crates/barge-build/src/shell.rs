//! Variable substitution and word splitting as Docker's Dockerfile shell lexer does it
//! (moby/buildkit `frontend/dockerfile/shell`): `$VAR`, `${VAR}`, `${VAR:-word}`,
//! `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}`, the pattern
//! forms `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`, `${VAR/pat/repl}` and
//! `${VAR//pat/repl}`, single quotes (literal), double quotes, and the escape character.
//!
//! This is not a shell: nothing is executed, `$(...)` and backquotes are left as they are.

use std::collections::{BTreeMap, HashMap};

/// Where the lexer looks variables up. Names are case-sensitive (as on Linux).
pub trait Env {
    /// The value of `name`, or `None` when it is unset (an empty value is set).
    fn lookup(&self, name: &str) -> Option<String>;
}

impl<S: std::hash::BuildHasher> Env for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for [(String, String)] {
    /// The last pair with the name wins, as in an environment list built by appending.
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Env for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

impl Env for [(&str, &str)] {
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_string())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

/// An environment with nothing set.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn lookup(&self, _name: &str) -> Option<String> {
        None
    }
}

/// What went wrong while expanding a word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandErrorKind {
    /// A `'` without its closing quote.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// A `"` without its closing quote.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// `${` without its `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${var/pattern` without the `/` that ends the pattern.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${:x}`, `${{x}` and the like.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// A modifier Docker does not support, such as `${x:=y}`.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${name?msg}` or `${name:?msg}` on an unset (or, with `:`, empty) variable.
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The word after `?`, or Docker's default message.
        message: String,
    },
    /// A bad escape in a `#`, `%` or `/` pattern.
    #[error("invalid pattern ({pattern}) in substitution: invalid escape '\\{ch}'")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// The escaped character that is not allowed.
        ch: char,
    },
}

/// An error from [`expand`] and friends: the word and what is wrong in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process \"{word}\": {kind}")]
pub struct ExpandError {
    /// The word as given.
    pub word: String,
    /// What is wrong.
    pub kind: ExpandErrorKind,
}

/// A lexer with Docker's options. [`Lexer::new`] with the Dockerfile's escape character
/// is what the builder uses; the free functions use `\`.
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new('\\')
    }
}

impl Lexer {
    /// A lexer whose escape character is `escape` (`\` or `` ` `` in Dockerfiles).
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
        }
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Keep quotes in the output (used to find quoted heredoc delimiters).
    pub(crate) fn raw_quotes(mut self, on: bool) -> Self {
        self.raw_quotes = on;
        self
    }

    /// Keep escape characters in the output.
    pub(crate) fn raw_escapes(mut self, on: bool) -> Self {
        self.raw_escapes = on;
        self
    }

    /// Leave references to unset variables as written instead of expanding them to "".
    pub(crate) fn skip_unset(mut self, on: bool) -> Self {
        self.skip_unset = on;
        self
    }

    /// Expands `word` into one string: quotes removed, escapes applied, variables
    /// substituted, whitespace kept (Docker's `ProcessWord`).
    pub fn expand(&self, word: &str, env: &dyn Env) -> Result<String, ExpandError> {
        self.run(word, env).map(|(s, _)| s)
    }

    /// Expands `word` and splits it into words at unquoted whitespace, after substitution
    /// (Docker's `ProcessWords`, used for EXPOSE): `a${X}b` with `X="1 2"` gives `a1`, `2b`,
    /// while `"${X}"` stays one word.
    pub fn expand_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        self.run(word, env).map(|(_, w)| w)
    }

    fn run(&self, word: &str, env: &dyn Env) -> Result<(String, Vec<String>), ExpandError> {
        let mut sw = ShellWord {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            env,
        };
        sw.process_stop_on(None, self.raw_escapes)
            .map_err(|kind| ExpandError {
                word: word.to_string(),
                kind,
            })
    }
}

/// Expands `word` with Docker's rules and the default escape character `\`.
/// See [`Lexer::expand`].
pub fn expand(word: &str, env: &dyn Env) -> Result<String, ExpandError> {
    Lexer::default().expand(word, env)
}

/// Expands `word` and splits it into words, with the default escape character `\`.
/// See [`Lexer::expand_words`].
pub fn expand_words(word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
    Lexer::default().expand_words(word, env)
}

/// Collects the words of an expansion. Text that came from quotes (or escapes) is added
/// "raw": its whitespace does not split.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

struct ShellWord<'a> {
    lex: Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
}

type Res<T> = Result<T, ExpandErrorKind>;

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&self, name: &str) -> Option<String> {
        self.env.lookup(name)
    }

    /// Processes until the end of input or `stop` (consumed). Reaching the end while
    /// looking for `stop` is an error.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&tmp);
                }
                '<' => {
                    let tmp = self.process_possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '\'' => {
                    let tmp = self.process_single_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '"' => {
                    let tmp = self.process_double_quote(raw_escapes)?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                _ => {
                    self.pos += 1;
                    if ch == self.lex.escape {
                        if raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // The escape character escapes the next one; at the end of
                        // the word it is dropped.
                        match self.next() {
                            None => break,
                            Some(c) => {
                                words.add_raw_char(c);
                                result.push(c);
                            }
                        }
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(if stop == '}' {
                ExpandErrorKind::MissingBrace
            } else {
                ExpandErrorKind::MissingSlash
            });
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Res<String> {
        // Everything up to the next ' is literal; a ' cannot be escaped inside.
        let mut out = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(ExpandErrorKind::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn process_double_quote(&mut self, raw_escapes: bool) -> Res<String> {
        // Literal except `$` and the escape character, which escapes only `"`, `$`
        // and itself (other escapes stay as written, as in sh).
        let mut out = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err(ExpandErrorKind::UnterminatedDoubleQuote),
                Some('"') => {
                    self.pos += 1;
                    if self.lex.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    out.push_str(&v);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.lex.escape {
                        if raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                self.pos += 1;
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.pos += 1;
        // `<< EOF` keeps its spaces so that the heredoc word stays one word.
        let mut out = String::from("<<");
        while let Some(c @ ('\t' | '\r' | ' ')) = self.peek() {
            out.push(c);
            self.pos += 1;
        }
        out
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                // Positional parameters: all the digits.
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.pos += 1;
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }

    fn process_dollar(&mut self) -> Res<String> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // '{'
        match self.peek() {
            None => return Err(ExpandErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return Err(ExpandErrorKind::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err(ExpandErrorKind::MissingBrace);
        };
        let mut modifier = ch.to_string();
        let mut null_is_unset = false;
        match ch {
            '}' => {
                return Ok(match self.get_env(&name) {
                    Some(v) => v,
                    None if self.lex.skip_unset => format!("${{{name}}}"),
                    None => String::new(),
                });
            }
            '/' => return self.process_replace(&name),
            ':' => {
                null_is_unset = true;
                match self.next() {
                    Some(c) => {
                        ch = c;
                        modifier.push(c);
                    }
                    None => return Err(ExpandErrorKind::MissingBrace),
                }
            }
            '+' | '-' | '?' | '#' | '%' => {}
            _ => return Err(ExpandErrorKind::UnsupportedModifier(modifier)),
        }
        let pattern_like = ch == '#' || ch == '%';
        if null_is_unset && pattern_like {
            return Err(ExpandErrorKind::UnsupportedModifier(modifier));
        }
        let (word, _) = self.process_stop_on(Some('}'), pattern_like)?;
        let value = self.get_env(&name);
        if self.lex.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        let unset = value.is_none() || (null_is_unset && value.as_deref() == Some(""));
        match ch {
            '-' => Ok(if unset {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset { String::new() } else { word }),
            '?' => match value {
                None => Err(ExpandErrorKind::Required {
                    name,
                    message: if word.is_empty() {
                        "is not allowed to be unset".into()
                    } else {
                        word
                    },
                }),
                Some(v) if null_is_unset && v.is_empty() => Err(ExpandErrorKind::Required {
                    name,
                    message: if word.is_empty() {
                        "is not allowed to be empty".into()
                    } else {
                        word
                    },
                }),
                Some(v) => Ok(v),
            },
            '#' | '%' => {
                let value = value.unwrap_or_default();
                let (greedy, pat) = match word.strip_prefix(ch) {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, word.clone()),
                };
                let pattern = Pattern::compile(&pat)?;
                let v: Vec<char> = value.chars().collect();
                if ch == '#' {
                    Ok(trim_prefix(&pattern, &v, greedy))
                } else {
                    Ok(trim_suffix(&pattern, &v, greedy))
                }
            }
            _ => Err(ExpandErrorKind::UnsupportedModifier(modifier)),
        }
    }

    fn process_replace(&mut self, name: &str) -> Res<String> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let (pat, _) = self.process_stop_on(Some('/'), true)?;
        let (replacement, _) = self.process_stop_on(Some('}'), true)?;
        let value = self.get_env(name);
        let Some(value) = value else {
            if self.lex.skip_unset {
                return Ok(format!("${{{name}/{pat}/{replacement}}}"));
            }
            // An unset variable is empty; an empty pattern can still match it.
            return Ok(replace(&Pattern::compile(&pat)?, &[], &replacement, all));
        };
        let pattern = Pattern::compile(&pat)?;
        let v: Vec<char> = value.chars().collect();
        Ok(replace(&pattern, &v, &replacement, all))
    }
}

fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// A shell pattern of `${x#pat}` and friends: `*` any string, `?` one character (neither
/// matches a newline, as in Docker's translation to a Go regexp), `\` escapes `*`, `?`, `\`.
#[derive(Debug)]
struct Pattern(Vec<PatTok>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum PatTok {
    Star,
    Any,
    Lit(char),
}

impl Pattern {
    fn compile(src: &str) -> Res<Pattern> {
        let chars: Vec<char> = src.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => toks.push(PatTok::Star),
                '?' => toks.push(PatTok::Any),
                '\\' => {
                    // `\}` and `\/` are escapes of the ${} syntax, not of the pattern.
                    match chars.get(i) {
                        Some('}' | '/') => {}
                        Some(&e @ ('*' | '?' | '\\')) => {
                            toks.push(PatTok::Lit(e));
                            i += 1;
                        }
                        Some(&e) => {
                            return Err(ExpandErrorKind::InvalidPattern {
                                pattern: src.to_string(),
                                ch: e,
                            })
                        }
                        None => {
                            return Err(ExpandErrorKind::InvalidPattern {
                                pattern: src.to_string(),
                                ch: ' ',
                            })
                        }
                    }
                }
                c => toks.push(PatTok::Lit(c)),
            }
        }
        Ok(Pattern(toks))
    }

    /// Whether the pattern matches all of `s` (dynamic programming, no backtracking blowup).
    fn matches(&self, s: &[char]) -> bool {
        let toks = &self.0;
        // cur[j]: the first j tokens match the text read so far.
        let mut cur = vec![false; toks.len() + 1];
        cur[0] = true;
        close_stars(toks, &mut cur);
        for &c in s {
            let mut nxt = vec![false; toks.len() + 1];
            for j in 0..toks.len() {
                if !cur[j] {
                    continue;
                }
                match toks[j] {
                    PatTok::Star => {
                        if c != '\n' {
                            nxt[j] = true;
                        }
                    }
                    PatTok::Any => {
                        if c != '\n' {
                            nxt[j + 1] = true;
                        }
                    }
                    PatTok::Lit(l) => {
                        if l == c {
                            nxt[j + 1] = true;
                        }
                    }
                }
            }
            close_stars(toks, &mut nxt);
            if !nxt.iter().any(|b| *b) {
                return false;
            }
            cur = nxt;
        }
        cur[toks.len()]
    }
}

fn close_stars(toks: &[PatTok], states: &mut [bool]) {
    for j in 0..toks.len() {
        if states[j] && toks[j] == PatTok::Star {
            states[j + 1] = true;
        }
    }
}

fn trim_prefix(p: &Pattern, v: &[char], greedy: bool) -> String {
    let ends: Box<dyn Iterator<Item = usize>> = if greedy {
        Box::new((0..=v.len()).rev())
    } else {
        Box::new(0..=v.len())
    };
    for end in ends {
        if p.matches(&v[..end]) {
            return v[end..].iter().collect();
        }
    }
    v.iter().collect()
}

fn trim_suffix(p: &Pattern, v: &[char], greedy: bool) -> String {
    let starts: Box<dyn Iterator<Item = usize>> = if greedy {
        Box::new(0..=v.len())
    } else {
        Box::new((0..=v.len()).rev())
    };
    for start in starts {
        if p.matches(&v[start..]) {
            return v[..start].iter().collect();
        }
    }
    v.iter().collect()
}

/// The longest match of `p` starting at `at`, if any.
fn longest_at(p: &Pattern, v: &[char], at: usize) -> Option<usize> {
    (at..=v.len())
        .rev()
        .find(|&end| p.matches(&v[at..end]))
        .map(|end| end - at)
}

fn replace(p: &Pattern, v: &[char], replacement: &str, all: bool) -> String {
    let mut out = String::new();
    let mut i = 0;
    let mut prev_end: Option<usize> = None;
    while i <= v.len() {
        match longest_at(p, v, i) {
            // An empty match right after the previous match is skipped, as Go does.
            Some(len) if !(len == 0 && prev_end == Some(i)) => {
                out.push_str(replacement);
                i += len;
                prev_end = Some(i);
                if !all {
                    out.extend(&v[i..]);
                    return out;
                }
                if len == 0 {
                    if let Some(c) = v.get(i) {
                        out.push(*c);
                    }
                    i += 1;
                }
            }
            _ => {
                if let Some(c) = v.get(i) {
                    out.push(*c);
                }
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
