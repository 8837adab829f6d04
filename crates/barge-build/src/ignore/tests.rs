use super::*;

fn di(text: &str) -> DockerIgnore {
    match DockerIgnore::parse(text) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn clean_like_go() {
    let cases = [
        ("", "."),
        (".", "."),
        ("a/b/../c", "a/c"),
        ("./a//b/", "a/b"),
        ("/../a", "/a"),
        ("../a", "../a"),
        ("a/../..", ".."),
        ("/", "/"),
    ];
    for (i, o) in cases {
        assert_eq!(clean(i), o, "{i}");
    }
}

/// (patterns, path, excluded)
const MATCH_CASES: &[(&str, &str, bool)] = &[
    ("*", "fileutils.go", true),
    ("*.go", "fileutils.go", true),
    ("*.go", "sub/fileutils.go", false),
    ("**/*.go", "sub/fileutils.go", true),
    ("**/*.go", "fileutils.go", true),
    ("**", "anything/at/all", true),
    ("docs", "docs/readme.md", true),
    ("docs/", "docs/readme.md", true),
    ("/docs", "docs/a/b", true),
    ("./docs/../docs", "docs/x", true),
    ("doc", "docs", false),
    ("docs/*.md", "docs/a.md", true),
    ("docs/*.md", "docs/sub/a.md", false),
    ("docs/**/*.md", "docs/sub/deeper/a.md", true),
    ("docs/**/*.md", "docs/a.md", true),
    ("docs/**", "docs/a/b", true),
    ("docs**", "docs-old/x", true),
    ("**/node_modules", "a/b/node_modules/x/y", true),
    ("**/node_modules", "node_modules", true),
    ("a?c", "abc", true),
    ("a?c", "a/c", false),
    ("[a-c]x", "bx", true),
    ("[a-c]x", "dx", false),
    ("[^a-c]x", "dx", true),
    ("[^a-c]x", "ax", false),
    ("[\\]]x", "]x", true),
    ("a\\*b", "a*b", true),
    ("a\\*b", "axb", false),
    ("file.txt", "fileXtxt", false),
    ("a+b(c)", "a+b(c)", true),
    ("*/temp*", "somedir/temporary.txt", true),
    ("*/*/temp*", "somedir/subdir/temporary.txt", true),
    ("temp?", "tempa", true),
    ("temp?", "temp", false),
    ("*.md\n!README.md", "README.md", false),
    ("*.md\n!README.md", "CHANGES.md", true),
    (
        "*.md\n!README*.md\nREADME-secret.md",
        "README-secret.md",
        true,
    ),
    (
        "*.md\n!README*.md\nREADME-secret.md",
        "README-public.md",
        false,
    ),
    ("docs\n!docs/keep.md", "docs/keep.md", false),
    ("docs\n!docs/keep.md", "docs/other.md", true),
    ("docs\n!docs/keep", "docs/keep/deep/file", false),
    ("!keep\n*", "keep", true),
    ("# comment\n*.tmp", "# comment", false),
    (" # not a comment", "# not a comment", true),
    ("  spaced.txt  ", "spaced.txt", true),
    ("!", "x", false),
];

#[test]
fn matches_table() {
    for (patterns, path, want) in MATCH_CASES {
        if *patterns == "!" {
            continue;
        }
        let d = di(patterns);
        assert_eq!(
            d.matches(path, false),
            *want,
            "patterns {patterns:?} path {path:?}"
        );
        assert_eq!(
            d.matches(path, true),
            *want,
            "patterns {patterns:?} path {path:?} (dir)"
        );
    }
}

#[test]
fn root_and_path_forms() {
    let d = di("*\n");
    assert!(!d.matches(".", true), "the context root is never excluded");
    assert!(!d.matches("", true));
    assert!(d.matches("./a", false));
    assert!(d.matches("/a", false));
}

#[test]
fn errors() {
    let e = DockerIgnore::parse("ok\n!\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.to_string().contains("illegal exclusion pattern"), "{e}");
    for bad in ["[", "[]", "[a-]", "[z-a]", "a\\", "[-a]"] {
        assert!(
            DockerIgnore::parse(bad).is_err(),
            "{bad:?} should be invalid"
        );
    }
    let e = DockerIgnore::parse("# c\n\nfine\nbad[\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        ".dockerignore:4: invalid pattern \"bad[\": bad character class"
    );
}

#[test]
fn patterns_are_cleaned_and_listed() {
    let d = di("\u{feff}/a/b/\n! /c/../d\n\n#x\n");
    let p: Vec<(&str, bool)> = d.patterns().collect();
    assert_eq!(p, vec![("a/b", false), ("d", true)]);
    let d = DockerIgnore::from_patterns(["a", "!a/b"]).unwrap();
    assert!(d.matches("a/c", false));
    assert!(!d.matches("a/b", false));
    assert!(DockerIgnore::parse("").unwrap().is_empty());
}

#[test]
fn may_reinclude_under() {
    // No exceptions: an excluded directory can be skipped whole.
    let d = di("node_modules\n");
    assert!(d.matches("node_modules", true));
    assert!(!d.may_reinclude_under("node_modules"));
    // A literal exception under it.
    let d = di("docs\n!docs/keep.md\n");
    assert!(d.may_reinclude_under("docs"));
    assert!(!d.may_reinclude_under("docs/sub") || !d.matches("docs/sub", true));
    // An exception elsewhere does not matter.
    let d = di("docs\n!src/keep.md\n");
    assert!(!d.may_reinclude_under("docs"));
    // A wildcard exception that could match under it.
    let d = di("*\n!*/keep\n");
    assert!(d.may_reinclude_under("a"));
    assert!(
        !d.may_reinclude_under("a/b"),
        "*/keep cannot match below a/b/"
    );
    let d = di("*\n!**/keep\n");
    assert!(d.may_reinclude_under("a/b/c"));
    // An exception before the pattern that excluded the directory does not count.
    let d = di("!docs/keep.md\ndocs\n");
    assert!(!d.may_reinclude_under("docs"));
    // A directory that is not excluded: the walker descends anyway.
    let d = di("*.md\n");
    assert!(d.may_reinclude_under("src"));
    // Prefix patterns.
    let d = di("build\n!build/out**\n");
    assert!(d.may_reinclude_under("build"));
    assert!(d.may_reinclude_under("build/output"));
    let d = di("build\n!build/out**\n");
    assert!(!d.may_reinclude_under("build/other"));
}

#[test]
fn reinclude_answer_is_never_wrong() {
    // For a set of patterns and a small tree, whenever something under an excluded
    // directory is included, may_reinclude_under must say so.
    let pattern_sets = [
        "*\n!a/b/c",
        "a\n!a/*/c",
        "a\n![ab]/b",
        "**/x\n!**/x/y",
        "a/**\n!a/?/c",
        "*\n!**/c",
        "a\n!a/b**",
        "a\n!**c",
    ];
    let paths = [
        "a", "a/b", "a/b/c", "a/x", "a/x/y", "a/c", "b", "b/b", "x", "x/y", "a/bc", "a/b/x/y",
    ];
    for ps in pattern_sets {
        let d = di(ps);
        for dir in paths {
            if !d.matches(dir, true) {
                continue;
            }
            let prefix = format!("{dir}/");
            let reincluded = paths
                .iter()
                .any(|p| p.starts_with(&prefix) && !d.matches(p, false));
            if reincluded {
                assert!(d.may_reinclude_under(dir), "patterns {ps:?} dir {dir}");
            }
        }
    }
}

/// Single patterns against raw strings (no parent-directory rule), Docker's semantics
/// for `**`, `*`, `?`, classes and regexp-special characters.
#[test]
fn single_pattern_semantics() {
    let cases: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "dir/file/", true),
        ("**/", "file", true),
        ("**/**", "dir/file", true),
        ("dir/**", "dir/dir2/file", true),
        ("**/dir", "dir", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**file", "dir/dir/file", true),
        ("**/file*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcZdef", false),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("a\\\\", "a\\", true),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", "bar.foo", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        ("a*/b", "a/c/b", false),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
        ("a*b?c*x", "abxbbxdbxebxczzx", true),
        ("a*b?c*x", "abxbbxdbxebxczzy", false),
        ("ab[^e-g]", "abc", true),
        ("ab[^c]", "abc", false),
    ];
    for (pat, path, want) in cases {
        let d = DockerIgnore::from_patterns([*pat]).unwrap();
        assert_eq!(
            d.patterns[0].matches(path),
            *want,
            "pattern {pat:?} path {path:?}"
        );
    }
}
