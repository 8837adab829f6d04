//! "Did you mean ...?" suggestions, as BuildKit makes them (Levenshtein distance < 3).

/// Levenshtein distance between two strings, by characters.
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The option closest to `val` (distance below 3), or `None` when `val` is itself an
/// option or nothing is close. Without `case_sensitive` the answer takes `val`'s case
/// when `val` is all upper or all lower case.
pub(crate) fn suggest<'a>(
    val: &str,
    options: impl IntoIterator<Item = &'a str>,
    case_sensitive: bool,
) -> Option<String> {
    let v = if case_sensitive {
        val.to_string()
    } else {
        val.to_lowercase()
    };
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let o = if case_sensitive {
            opt.to_string()
        } else {
            opt.to_lowercase()
        };
        if o == v {
            return None;
        }
        let d = levenshtein(&v, &o);
        if d < min {
            min = d;
            best = Some(if case_sensitive {
                o
            } else if val == val.to_uppercase() {
                o.to_uppercase()
            } else {
                o
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("form", "from"), 2);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let opts = ["FROM", "RUN", "COPY"];
        assert_eq!(suggest("FORM", opts, false).as_deref(), Some("FROM"));
        assert_eq!(suggest("form", opts, false).as_deref(), Some("from"));
        assert_eq!(suggest("CPY", opts, false).as_deref(), Some("COPY"));
        assert_eq!(suggest("XYZZY", opts, false), None);
        assert_eq!(suggest("run", opts, false), None);
    }
}
