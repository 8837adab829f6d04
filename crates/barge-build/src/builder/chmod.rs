//! `COPY/ADD --chmod=`: an octal mode, or a symbolic one as chmod(1) takes it
//! (`u+x,go-w`, `a=rX`, `g=u`), applied to each copied entry's own mode.

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chmod {
    /// `0755`: every entry gets this mode.
    Octal(u32),
    /// `u+x,go=rX`: clauses applied in order to each entry's mode.
    Symbolic(Vec<Clause>),
}

/// One `who op perms [op perms]...` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clause {
    /// Bit set of classes: 4 user, 2 group, 1 other; 0 means all (no umask here).
    who: u8,
    ops: Vec<(u8, Perms)>,
}

/// The right side of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Perms {
    /// Letters among `rwxXst`.
    Letters(String),
    /// A copy of another class's permissions (`g=u`).
    Copy(u8),
}

const U: u8 = 4;
const G: u8 = 2;
const O: u8 = 1;

/// The `rwx` bits of a class at its position (r=4, w=2, x=1 shifted).
fn shift(class: u8) -> u32 {
    match class {
        U => 6,
        G => 3,
        _ => 0,
    }
}

fn class_of(c: char) -> Option<u8> {
    match c {
        'u' => Some(U),
        'g' => Some(G),
        'o' => Some(O),
        _ => None,
    }
}

impl Chmod {
    /// Parses an octal (at most `7777`) or symbolic mode; the error names the value.
    pub(crate) fn parse(s: &str) -> Result<Chmod, String> {
        let bad = |why: &str| format!("invalid --chmod={s}: {why}");
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return u32::from_str_radix(s, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Chmod::Octal)
                .ok_or_else(|| bad("an octal mode is at most 7777 with digits 0-7"));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let mut chars = part.chars().peekable();
            let mut who = 0u8;
            while let Some(&c) = chars.peek() {
                match c {
                    'a' => who |= U | G | O,
                    c => match class_of(c) {
                        Some(b) => who |= b,
                        None => break,
                    },
                }
                chars.next();
            }
            let mut ops = Vec::new();
            while let Some(op) = chars.next() {
                if !matches!(op, '+' | '-' | '=') {
                    return Err(bad(&format!("unexpected {op:?} in {part:?}")));
                }
                let mut letters = String::new();
                let mut copy = None;
                while let Some(&c) = chars.peek() {
                    if matches!(c, '+' | '-' | '=') {
                        break;
                    }
                    match (c, class_of(c)) {
                        (_, Some(b)) if letters.is_empty() && copy.is_none() => copy = Some(b),
                        ('r' | 'w' | 'x' | 'X' | 's' | 't', _) if copy.is_none() => letters.push(c),
                        _ => return Err(bad(&format!("unexpected {c:?} in {part:?}"))),
                    }
                    chars.next();
                }
                ops.push((
                    op as u8,
                    match copy {
                        Some(b) => Perms::Copy(b),
                        None => Perms::Letters(letters),
                    },
                ));
            }
            if ops.is_empty() {
                return Err(bad(&format!(
                    "{part:?} is neither an octal mode nor a symbolic one (like u+x,go-w)"
                )));
            }
            clauses.push(Clause { who, ops });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The mode (permission and set-id bits) an entry whose own mode is `mode` gets.
    pub(crate) fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let mut m = mode & 0o7777;
        let clauses = match self {
            Chmod::Octal(o) => return *o,
            Chmod::Symbolic(c) => c,
        };
        for c in clauses {
            let who = if c.who == 0 { U | G | O } else { c.who };
            for (op, perms) in &c.ops {
                let mut bits = 0u32;
                for class in [U, G, O] {
                    if who & class == 0 {
                        continue;
                    }
                    let rwx = match perms {
                        Perms::Copy(from) => (m >> shift(*from)) & 7,
                        Perms::Letters(l) => {
                            let mut v = 0;
                            for ch in l.chars() {
                                v |= match ch {
                                    'r' => 4,
                                    'w' => 2,
                                    'x' => 1,
                                    // x for directories and for files executable by someone.
                                    'X' if is_dir || m & 0o111 != 0 => 1,
                                    _ => 0,
                                };
                            }
                            v
                        }
                    };
                    bits |= rwx << shift(class);
                    if let Perms::Letters(l) = perms {
                        if l.contains('s') {
                            bits |= match class {
                                U => 0o4000,
                                G => 0o2000,
                                _ => 0,
                            };
                        }
                        if l.contains('t') && class == O {
                            bits |= 0o1000;
                        }
                    }
                }
                match op {
                    b'+' => m |= bits,
                    b'-' => m &= !bits,
                    _ => {
                        let mut clear = 0u32;
                        for class in [U, G, O] {
                            if who & class != 0 {
                                clear |= 7 << shift(class);
                                clear |= match class {
                                    U => 0o4000,
                                    G => 0o2000,
                                    _ => 0o1000,
                                };
                            }
                        }
                        m = (m & !clear) | bits;
                    }
                }
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::Chmod;

    fn ap(s: &str, mode: u32, dir: bool) -> u32 {
        Chmod::parse(s).unwrap().apply(mode, dir)
    }

    #[test]
    fn octal_and_symbolic_modes() {
        assert_eq!(ap("0755", 0o600, false), 0o755);
        assert_eq!(ap("4711", 0o600, false), 0o4711);
        assert_eq!(ap("u+x", 0o644, false), 0o744);
        assert_eq!(ap("go-w", 0o666, false), 0o644);
        assert_eq!(ap("a=r", 0o777, false), 0o444);
        assert_eq!(ap("=rw", 0o700, false), 0o666);
        // X looks at the mode as the earlier clauses left it (as chmod(1)).
        assert_eq!(ap("u=rwx,go=rX", 0o600, false), 0o755);
        assert_eq!(ap("go=rX", 0o600, false), 0o644);
        assert_eq!(ap("u=rwx,go=rX", 0o600, true), 0o755);
        assert_eq!(ap("go=rX", 0o700, false), 0o755);
        assert_eq!(ap("g=u", 0o640, false), 0o660);
        assert_eq!(ap("u+s,o+t", 0o755, false), 0o5755);
        assert_eq!(ap("u-w+x", 0o644, false), 0o544);
        assert_eq!(ap("+x", 0o644, false), 0o755);
        for bad in ["", "8", "17777", "u+y", "z+x", "u", "u+rg", "g=ux"] {
            let e = Chmod::parse(bad).expect_err(bad);
            assert!(e.contains(&format!("--chmod={bad}")), "{e}");
        }
    }
}
