use super::*;

fn env() -> Vec<(String, String)> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("NULL", ""),
        ("KOREAN", "한국어"),
        ("SPACE", "abc  def"),
        ("LEAD", "  ab c"),
        ("TRAIL", "ab c   "),
        ("FILE", "archive.tar.gz"),
        ("PATHV", "/usr/local/bin"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// (input, expected output or None for an error)
const EXPAND_CASES: &[(&str, Option<&str>)] = &[
    ("plain", Some("plain")),
    ("it's", None),
    ("it'i's", Some("itis")),
    ("it\\'s", Some("it's")),
    ("a\\\\'b", None),
    ("a\\tb", Some("atb")),
    ("\"a\\tb\"", Some("a\\tb")),
    ("\"a\\\\tb\"", Some("a\\tb")),
    ("'a\\tb'", Some("a\\tb")),
    ("trailing\\", Some("trailing")),
    ("trailing\\\\", Some("trailing\\")),
    ("\"open", None),
    ("\"open\\\"", None),
    ("\"it's\"", Some("it's")),
    ("'open", None),
    ("'back\\'", Some("back\\")),
    ("\"''\"", Some("''")),
    ("$.", Some("$.")),
    ("x$1y", Some("xy")),
    ("x$.y", Some("x$.y")),
    ("x$pwd.", Some("x.")),
    ("x$PWD", Some("x/home")),
    ("x\\$PWD", Some("x$PWD")),
    ("x\\\\$PWD", Some("x\\/home")),
    ("\"x\\$PWD\"", Some("x$PWD")),
    ("\"x\\\\$PWD\"", Some("x\\/home")),
    ("\\${}", Some("${}")),
    ("${}", None),
    ("x${}y", None),
    ("${hi}", Some("")),
    ("x${hi}y", Some("xy")),
    ("x${PWD}", Some("x/home")),
    ("x${.}", None),
    ("x${XXX:-000}y", Some("x000y")),
    ("x${PWD:-000}y", Some("x/homey")),
    ("x${XXX:-$PWD}y", Some("x/homey")),
    ("x${XXX:-${PWD:-yyy}}y", Some("x/homey")),
    ("x${XXX:-${YYY:-yyy}}y", Some("xyyyy")),
    ("x${XXX:YYY}", None),
    ("x${XXX?}", None),
    ("x${XXX:?}", None),
    ("x${PWD?}", Some("x/home")),
    ("x${PWD:?}", Some("x/home")),
    ("x${NULL?}", Some("x")),
    ("x${NULL:?}", None),
    ("x${NULL-def}", Some("x")),
    ("x${NULL:-def}", Some("xdef")),
    ("x${NULL+alt}", Some("xalt")),
    ("x${NULL:+alt}", Some("x")),
    ("x${XXX-def}", Some("xdef")),
    ("x${XXX+alt}", Some("x")),
    ("x${XXX:+${PWD}}y", Some("xy")),
    ("x${PWD:+${XXX}}y", Some("xy")),
    ("x${PWD:+${SHELL}}y", Some("xbashy")),
    ("x${PWD:+000}y", Some("x000y")),
    ("'x${XX}'", Some("x${XX}")),
    ("\"x${PWD}\"", Some("x/home")),
    ("\"x'$PWD'\"", Some("x'/home'")),
    ("'$PWD'", Some("$PWD")),
    ("'\\$PWD'", Some("\\$PWD")),
    ("'\"q\"'", Some("\"q\"")),
    ("x${PWD", None),
    ("x${PWD:=000}y", None),
    ("x${PWD:+${PWD}:}y", Some("x/home:y")),
    ("x${XXX:-\\$PWD:}y", Some("x$PWD:y")),
    ("x${XXX:-\\${PWD}z}y", Some("x${PWDz}y")),
    ("안녕$KOREAN", Some("안녕한국어")),
    ("안'녕'하세요", Some("안녕하세요")),
    ("${{aaa}", None),
    ("${aaa}}", Some("}")),
    ("${aaa:-bbb}}", Some("bbb}")),
    ("${aaa:-bbb", None),
    ("${aaa:-bbb {foo}", Some("bbb {foo")),
    ("${aaa:-bbb ${foo}", None),
    ("${:}", None),
    ("${:-bbb}", None),
    ("$1", Some("")),
    ("${1:-one}", Some("one")),
    ("$999aaa", Some("aaa")),
    ("${001:-d}x", Some("dx")),
    ("$@@@", Some("@@")),
    ("${#}", Some("")),
    ("${$:-pid}", Some("pid")),
    ("$0", Some("")),
    ("${FILE%.*}", Some("archive.tar")),
    ("${FILE%%.*}", Some("archive")),
    ("${FILE#*.}", Some("tar.gz")),
    ("${FILE##*.}", Some("gz")),
    ("${FILE#nomatch}", Some("archive.tar.gz")),
    ("${PATHV/local/opt}", Some("/usr/opt/bin")),
    ("${PATHV//\\//:}", Some(":usr:local:bin")),
    ("${PATHV/\\//}", Some("usr/local/bin")),
    ("${FILE/a*e/X}", Some("X.tar.gz")),
    ("${FILE:#x}", None),
    ("${FILE#\\x}", None),
    ("${FILE/a", None),
    ("${x:=y}", None),
    ("${x;}", None),
    ("$(cmd) `cmd`", Some("$(cmd) `cmd`")),
];

#[test]
fn expand_table() {
    let env = env();
    for (input, want) in EXPAND_CASES {
        let got = expand(input, &env);
        match want {
            Some(w) => assert_eq!(got.as_deref(), Ok(*w), "input {input:?}"),
            None => assert!(got.is_err(), "input {input:?} should fail, got {got:?}"),
        }
    }
}

/// (input, expected words joined by ',', or None for an error)
const WORDS_CASES: &[(&str, Option<&str>)] = &[
    ("hello", Some("hello")),
    ("hello${hi}bye", Some("hellobye")),
    ("hello${SPACE}bye", Some("helloabc,defbye")),
    ("hello\"${SPACE}\"bye", Some("helloabc  defbye")),
    ("hello \"${SPACE}\"bye", Some("hello,abc  defbye")),
    ("hello${LEAD}def", Some("hello,ab,cdef")),
    ("hello\"${LEAD}\" def", Some("hello  ab c,def")),
    ("hello${LEAD}", Some("hello,ab,c")),
    ("hello${TRAIL}", Some("helloab,c")),
    ("hello${TRAIL}d", Some("helloab,c,d")),
    ("hello\"${TRAIL}\"d", Some("helloab c   d")),
    ("hello\" there  \"", Some("hello there  ")),
    ("hello there     ", Some("hello,there")),
    ("hello\\ there", Some("hello there")),
    ("hello\" there", None),
    ("hello\\\" there", Some("hello\",there")),
    ("hello'$there'", Some("hello$there")),
    ("80 443/tcp ${NULL} 53/udp", Some("80,443/tcp,53/udp")),
    ("\"\"", Some("")),
    ("a<< b", Some("a<< b")),
];

#[test]
fn expand_words_table() {
    let env = env();
    for (input, want) in WORDS_CASES {
        let got = expand_words(input, &env);
        match want {
            Some(w) => {
                let want: Vec<String> = if w.is_empty() {
                    vec![]
                } else {
                    w.split(',').map(str::to_string).collect()
                };
                assert_eq!(got, Ok(want), "input {input:?}");
            }
            None => assert!(got.is_err(), "input {input:?} should fail, got {got:?}"),
        }
    }
}

#[test]
fn nested_default_keeps_outer_words() {
    // The inner ${...} word must not disturb the words collected before it.
    let env = env();
    assert_eq!(
        expand_words("ab${XXX:-c d} e", &env).unwrap(),
        vec!["abc", "d", "e"]
    );
}

#[test]
fn documented_examples() {
    // docs.docker.com/reference/dockerfile, "Environment replacement".
    let env = [("str", "foobarbaz"), ("FOO", "/bar")];
    let cases = [
        ("${str#f*b}", "arbaz"),
        ("${str##f*b}", "az"),
        ("${str%b*}", "foobar"),
        ("${str%%b*}", "foo"),
        ("${str/ba/fo}", "fooforbaz"),
        ("${str//ba/fo}", "fooforfoz"),
        ("${FOO}", "/bar"),
        ("$FOO", "/bar"),
        ("\\$FOO", "$FOO"),
        ("\\${FOO}", "${FOO}"),
        ("${str/a\\*/x}", "foobarbaz"),
        ("${NOPE-word}", "word"),
        ("${FOO+word}", "word"),
    ];
    for (input, want) in cases {
        assert_eq!(expand(input, &env).unwrap(), want, "{input}");
    }
}

#[test]
fn backtick_escape() {
    let lex = Lexer::new('`');
    let env = env();
    assert_eq!(lex.expand("a`$PWD", &env).unwrap(), "a$PWD");
    assert_eq!(lex.expand("C:\\dir", &env).unwrap(), "C:\\dir");
    assert_eq!(lex.expand("\"q`\"q\"", &env).unwrap(), "q\"q");
    assert_eq!(lex.expand_words("a` b c", &env).unwrap(), vec!["a b", "c"]);
}

#[test]
fn required_messages_name_the_variable() {
    let env = env();
    let e = expand("${NOPE:?set NOPE please}", &env).unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to process \"${NOPE:?set NOPE please}\": NOPE: set NOPE please"
    );
    let e = expand("${NULL:?}", &env).unwrap_err();
    assert!(
        e.to_string().ends_with("NULL: is not allowed to be empty"),
        "{e}"
    );
    let e = expand("${NOPE?}", &env).unwrap_err();
    assert!(
        e.to_string().ends_with("NOPE: is not allowed to be unset"),
        "{e}"
    );
}

#[test]
fn env_impls() {
    let mut h = HashMap::new();
    h.insert("A".to_string(), "1".to_string());
    assert_eq!(expand("$A", &h).unwrap(), "1");
    let mut b = BTreeMap::new();
    b.insert("A".to_string(), "2".to_string());
    assert_eq!(expand("$A", &b).unwrap(), "2");
    assert_eq!(expand("$A", &[("A", "0"), ("A", "3")]).unwrap(), "3");
    assert_eq!(expand("${A:-x}", &EmptyEnv).unwrap(), "x");
}

#[test]
fn skip_unset_keeps_references() {
    let lex = Lexer::default().skip_unset(true);
    let env = env();
    assert_eq!(
        lex.expand("$NOPE ${NOPE} ${NOPE:-x} $PWD", &env).unwrap(),
        "$NOPE ${NOPE} ${NOPE:-x} /home"
    );
}

#[test]
fn raw_quotes_and_escapes() {
    let lex = Lexer::default().raw_quotes(true).raw_escapes(true);
    assert_eq!(
        lex.expand("'a' \"b\" c\\d", &EmptyEnv).unwrap(),
        "'a' \"b\" c\\d"
    );
}

#[test]
fn patterns_do_not_blow_up() {
    let env = vec![("V".to_string(), "a".repeat(200))];
    let got = expand("${V//*a*a*a*a*b/x}", &env).unwrap();
    assert_eq!(got.len(), 200);
    assert_eq!(expand("${V##*}", &env).unwrap(), "");
    assert!(expand("${V3//}", &[("V3", "abc")]).is_err());
    assert_eq!(expand("${V3///}", &[("V3", "abc")]).unwrap(), "abc");
    assert_eq!(expand("${V3///-}", &[("V3", "abc")]).unwrap(), "-a-b-c-");
    assert_eq!(expand("${V3//b/}", &[("V3", "abcb")]).unwrap(), "ac");
}
