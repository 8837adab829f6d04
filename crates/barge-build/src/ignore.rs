//! `.dockerignore` with Docker's rules (moby/patternmatcher and its `ignorefile` reader):
//!
//! - lines starting with `#` are comments; blank lines are skipped; patterns are trimmed;
//! - each pattern is cleaned like a path (`a/./b/../c` is `a/c`) and a leading `/` is
//!   dropped: patterns are relative to the context root;
//! - `*` matches any run of non-`/` characters, `?` one non-`/` character, `[...]` a
//!   character class (`[^...]` negated, ranges, `\` escapes), `\` escapes a character;
//! - `**` matches any number of directories (zero included); `dir/**` everything under
//!   `dir`, `**/name` a `name` at any depth;
//! - `!pattern` re-includes what earlier patterns excluded; the last pattern that matches
//!   decides;
//! - a pattern that matches a directory matches everything under it.

/// A `.dockerignore` pattern that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".dockerignore:{line}: invalid pattern {pattern:?}: {reason}")]
pub struct IgnoreError {
    /// The line (from 1; for [`DockerIgnore::from_patterns`], the pattern's position).
    pub line: usize,
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Compiled `.dockerignore` patterns.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
}

/// Docker's four kinds of pattern: the first three are plain string tests.
#[derive(Debug, Clone)]
enum Kind {
    Exact,
    /// `stem**`: anything starting with the stem.
    Prefix(String),
    /// `**suffix`: anything ending with it (and `**/x` also `x`).
    Suffix(String),
    Tokens(Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: any run of non-`/`.
    Star,
    /// `?`: one non-`/`.
    One,
    /// `[...]`
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` followed by more: `(.*/)?`
    DoubleStar,
    /// `**` at the end: `.*`
    Rest,
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub(crate) fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            _ => out.push(part),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn bad(line: usize, pattern: &str, reason: &'static str) -> IgnoreError {
    IgnoreError {
        line,
        pattern: pattern.to_string(),
        reason,
    }
}

fn compile(cleaned: &str, line: usize, original: &str) -> Result<Kind, IgnoreError> {
    #[derive(PartialEq, Clone, Copy)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = cleaned.chars().collect();
    let mut toks = Vec::new();
    let mut detected = Detected::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is treated as `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        detected = Detected::Regex;
                    }
                    toks.push(Tok::Rest);
                } else {
                    toks.push(Tok::DoubleStar);
                    detected = Detected::Regex;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                detected = Detected::Regex;
            }
            '?' => {
                toks.push(Tok::One);
                detected = Detected::Regex;
            }
            '\\' => match chars.get(i) {
                Some(&c) => {
                    i += 1;
                    toks.push(Tok::Lit(c));
                    detected = Detected::Regex;
                }
                None => return Err(bad(line, original, "trailing backslash")),
            },
            '[' => {
                let (tok, next) = parse_class(&chars, i)
                    .ok_or_else(|| bad(line, original, "bad character class"))?;
                toks.push(tok);
                i = next;
                detected = Detected::Regex;
            }
            ']' => {
                toks.push(Tok::Lit(']'));
                detected = Detected::Regex;
            }
            c => toks.push(Tok::Lit(c)),
        }
        first = false;
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        Detected::Prefix => Kind::Prefix(cleaned[..cleaned.len() - 2].to_string()),
        Detected::Suffix => Kind::Suffix(cleaned[2..].to_string()),
        Detected::Regex => Kind::Tokens(toks),
    })
}

/// Parses a class starting after `[` (Go `filepath.Match` syntax); the token and the
/// index after `]`.
fn parse_class(chars: &[char], mut i: usize) -> Option<(Tok, usize)> {
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    let esc = |i: &mut usize| -> Option<char> {
        let c = *chars.get(*i)?;
        *i += 1;
        match c {
            '-' | ']' => None,
            '\\' => {
                let e = *chars.get(*i)?;
                *i += 1;
                Some(e)
            }
            c => Some(c),
        }
    };
    loop {
        if chars.get(i) == Some(&']') && !ranges.is_empty() {
            return Some((Tok::Class { negated, ranges }, i + 1));
        }
        let lo = esc(&mut i)?;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            i += 1;
            hi = esc(&mut i)?;
            if hi < lo {
                return None;
            }
        }
        ranges.push((lo, hi));
    }
}

/// NFA states over a token list: `at[j]` = before token j; `inside[j]` = within the
/// `(.*/)?` of a `**` at j.
#[derive(Clone)]
struct States {
    at: Vec<bool>,
    inside: Vec<bool>,
}

impl States {
    fn start(toks: &[Tok]) -> States {
        let mut s = States {
            at: vec![false; toks.len() + 1],
            inside: vec![false; toks.len()],
        };
        s.at[0] = true;
        s.close(toks);
        s
    }

    fn close(&mut self, toks: &[Tok]) {
        for (j, tok) in toks.iter().enumerate() {
            if self.at[j] {
                match tok {
                    Tok::Star | Tok::Rest => self.at[j + 1] = true,
                    Tok::DoubleStar => {
                        self.at[j + 1] = true;
                        self.inside[j] = true;
                    }
                    _ => {}
                }
            }
        }
    }

    fn step(&self, toks: &[Tok], c: char) -> States {
        let mut n = States {
            at: vec![false; toks.len() + 1],
            inside: vec![false; toks.len()],
        };
        for (j, tok) in toks.iter().enumerate() {
            if self.at[j] {
                match tok {
                    Tok::Lit(l) if *l == c => n.at[j + 1] = true,
                    Tok::Star if c != '/' => n.at[j] = true,
                    Tok::One if c != '/' => n.at[j + 1] = true,
                    Tok::Rest if c != '\n' => n.at[j] = true,
                    Tok::Class { negated, ranges } => {
                        let inr = ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi);
                        if inr != *negated {
                            n.at[j + 1] = true;
                        }
                    }
                    _ => {}
                }
            }
            if self.inside[j] && c != '\n' {
                n.inside[j] = true;
                if c == '/' {
                    n.at[j + 1] = true;
                }
            }
        }
        n.close(toks);
        n
    }

    fn alive(&self) -> bool {
        self.at.iter().chain(self.inside.iter()).any(|b| *b)
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix(stem) => path.starts_with(stem.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            Kind::Tokens(toks) => {
                let mut s = States::start(toks);
                for c in path.chars() {
                    s = s.step(toks, c);
                    if !s.alive() {
                        return false;
                    }
                }
                s.at[toks.len()]
            }
        }
    }

    /// Whether the pattern itself matches `path` or one of its parent directories.
    fn matches_or_parent(&self, path: &str) -> bool {
        if self.matches(path) {
            return true;
        }
        path.match_indices('/')
            .any(|(i, _)| self.matches(&path[..i]))
    }

    /// Whether some path starting with `prefix` (which ends with `/`) could match.
    /// Errs on the side of `true`.
    fn could_match_with_prefix(&self, prefix: &str) -> bool {
        match &self.kind {
            Kind::Exact => self.cleaned.starts_with(prefix),
            Kind::Prefix(stem) => stem.starts_with(prefix) || prefix.starts_with(stem.as_str()),
            Kind::Suffix(_) => true,
            Kind::Tokens(toks) => {
                let mut s = States::start(toks);
                for c in prefix.chars() {
                    s = s.step(toks, c);
                    if !s.alive() {
                        return false;
                    }
                }
                true
            }
        }
    }
}

/// A context-relative path in the form patterns are matched against.
fn normalize(path: &str) -> String {
    let c = clean(path);
    match c.strip_prefix('/') {
        Some("") => ".".to_string(),
        Some(rest) => rest.to_string(),
        None => c,
    }
}

impl DockerIgnore {
    /// Reads a `.dockerignore` file's content (Docker's `ignorefile.ReadAll`, then
    /// `patternmatcher.New`). A UTF-8 BOM is skipped.
    pub fn parse(text: &str) -> Result<DockerIgnore, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            // Only a `#` in the first column starts a comment.
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let invert = p.starts_with('!');
            if invert {
                p = p[1..].trim();
            }
            let mut cleaned = if p.is_empty() {
                String::new()
            } else {
                clean(p)
            };
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let full = if invert {
                format!("!{cleaned}")
            } else {
                cleaned
            };
            patterns.push((n + 1, full, raw.to_string()));
        }
        Self::compile_all(patterns)
    }

    /// Compiles patterns already split into lines (Docker's `patternmatcher.New`): each
    /// trimmed and cleaned, a leading `!` marks an exception.
    pub fn from_patterns<I, S>(patterns: I) -> Result<DockerIgnore, IgnoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::compile_all(
            patterns
                .into_iter()
                .enumerate()
                .map(|(i, p)| (i + 1, p.as_ref().to_string(), p.as_ref().to_string()))
                .collect(),
        )
    }

    fn compile_all(list: Vec<(usize, String, String)>) -> Result<DockerIgnore, IgnoreError> {
        let mut patterns = Vec::new();
        for (line, p, original) in list {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean(p);
            let exclusion = p.starts_with('!');
            if exclusion {
                if p.len() == 1 {
                    return Err(bad(line, &original, "illegal exclusion pattern: \"!\""));
                }
                p.remove(0);
            }
            let kind = compile(&p, line, &original)?;
            patterns.push(Pattern {
                cleaned: p,
                exclusion,
                kind,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns after cleaning, with `true` for exceptions (`!`).
    pub fn patterns(&self) -> impl Iterator<Item = (&str, bool)> {
        self.patterns
            .iter()
            .map(|p| (p.cleaned.as_str(), p.exclusion))
    }

    /// Whether `path` (relative to the context root, `/`-separated) is excluded from the
    /// context. Docker's rules do not distinguish files from directories (a trailing `/`
    /// in a pattern is cleaned away), so `is_dir` does not change the answer; it is taken
    /// so that callers state what they walk. The context root itself is never excluded.
    pub fn matches(&self, path: &str, is_dir: bool) -> bool {
        let _ = is_dir;
        self.decide(&normalize(path)).0
    }

    /// (excluded, index of the pattern that decided)
    fn decide(&self, path: &str) -> (bool, Option<usize>) {
        if path == "." || path.is_empty() {
            return (false, None);
        }
        let mut matched = false;
        let mut last = None;
        for (i, p) in self.patterns.iter().enumerate() {
            // An inclusion cannot change an excluded path, nor an exception an included
            // one: skip the work (as Docker does).
            if p.exclusion != matched {
                continue;
            }
            if p.matches_or_parent(path) {
                matched = !p.exclusion;
                last = Some(i);
            }
        }
        (matched, last)
    }

    /// For a directory that [`matches`](Self::matches) excludes: whether a later `!`
    /// exception could re-include something under it, so that a context walker has to
    /// descend into it instead of skipping it whole. `true` when `dir` is not excluded.
    /// Exact for literal patterns; for wildcard patterns it may say `true` when nothing
    /// is actually re-included, never `false` when something is.
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let dir = normalize(dir);
        let (excluded, last) = self.decide(&dir);
        if !excluded {
            return true;
        }
        let prefix = if dir == "." {
            String::new()
        } else {
            format!("{dir}/")
        };
        let from = last.map_or(0, |l| l + 1);
        self.patterns[from..]
            .iter()
            .any(|p| p.exclusion && p.could_match_with_prefix(&prefix))
    }
}

#[cfg(test)]
mod tests;
