//! Parser tests, from Docker's documented behaviour (docs.docker.com/reference/dockerfile)
//! and the behaviours BuildKit's parser tests pin down (our own cases).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::*;

fn p(text: &str) -> Dockerfile {
    match parse(text) {
        Ok(d) => d,
        Err(e) => panic!("parse failed: {e}\n---\n{text}"),
    }
}

fn perr(text: &str) -> String {
    match parse(text) {
        Ok(d) => panic!("expected an error, got {d:#?}\n---\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// The commands of the last stage.
fn body(text: &str) -> Vec<Command> {
    let d = p(text);
    d.stages
        .last()
        .map(|s| s.instructions.iter().map(|i| i.command.clone()).collect())
        .unwrap_or_default()
}

fn one(text: &str) -> Command {
    let mut b = body(&format!("FROM scratch\n{text}"));
    assert_eq!(b.len(), 1, "{text}");
    b.remove(0)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: v.into(),
        legacy: false,
    }
}

#[test]
fn issue_example_workdir_add_cmd() {
    let d = p("FROM busybox\nWORKDIR /code\nRUN echo hello > /greeting\nADD . /code\nCMD [\"sh\", \"-c\", \"cat /greeting\"]\n");
    assert_eq!(d.stages.len(), 1);
    let s = &d.stages[0];
    assert_eq!(s.base.image, "busybox");
    assert_eq!(s.name, None);
    let cmds: Vec<&Command> = s.instructions.iter().map(|i| &i.command).collect();
    assert_eq!(cmds[0], &Command::Workdir("/code".into()));
    match cmds[1] {
        Command::Run(r) => {
            assert_eq!(
                r.command,
                CommandLine::Shell("echo hello > /greeting".into())
            );
            assert!(r.mounts.is_empty());
            assert_eq!(r.network, None);
        }
        c => panic!("{c:?}"),
    }
    match cmds[2] {
        Command::Add(a) => {
            assert_eq!(a.sources, strs(&["."]));
            assert_eq!(a.dest, "/code");
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(
        cmds[3],
        &Command::Cmd(CommandLine::Exec(strs(&["sh", "-c", "cat /greeting"])))
    );
    let lines: Vec<(usize, usize)> = d
        .instructions()
        .map(|i| (i.start_line, i.end_line))
        .collect();
    assert_eq!(lines, vec![(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]);
    assert_eq!(
        s.instructions[3].original,
        "CMD [\"sh\", \"-c\", \"cat /greeting\"]"
    );
}

#[test]
fn issue_example_env_expose_multiline_run() {
    let text = "FROM busybox\n\
ENV APP_HOME=/app GREETING=\"hello world\"\n\
EXPOSE 8080 53/udp\n\
RUN mkdir -p $APP_HOME\n\
RUN echo one \\\n    && echo two \\\n    && echo three\n\
RUN touch /done\n";
    let d = p(text);
    let s = &d.stages[0];
    assert_eq!(
        s.instructions[0].command,
        Command::Env(vec![
            kv("APP_HOME", "/app"),
            kv("GREETING", "\"hello world\"")
        ])
    );
    assert_eq!(
        s.instructions[1].command,
        Command::Expose(strs(&["8080", "53/udp"]))
    );
    let multi = &s.instructions[3];
    assert_eq!((multi.start_line, multi.end_line), (5, 7));
    assert_eq!(
        multi.command,
        Command::Run(Run {
            command: CommandLine::Shell("echo one     && echo two     && echo three".into()),
            mounts: vec![],
            network: None,
            security: None,
        })
    );
    assert_eq!(s.instructions[4].start_line, 8);
    // Expansion as the builder applies it.
    let env: BTreeMap<String, String> = [("APP_HOME".to_string(), "/app".to_string())].into();
    let expanded = s.instructions[0].command.expand(&d.lexer(), &env).unwrap();
    assert_eq!(
        expanded,
        Command::Env(vec![kv("APP_HOME", "/app"), kv("GREETING", "hello world")])
    );
}

#[test]
fn issue_example_multi_stage() {
    let text = "\
FROM busybox AS build
WORKDIR /src
RUN echo 'int main(){}' > main.c && cp main.c /artifact

FROM scratch
COPY --from=build /artifact /artifact
CMD [\"/artifact\"]
";
    let d = p(text);
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].name.as_deref(), Some("build"));
    assert_eq!(d.stages[1].base.image, "scratch");
    match &d.stages[1].instructions[0].command {
        Command::Copy(c) => {
            assert_eq!(c.from.as_deref(), Some("build"));
            assert_eq!(c.sources, strs(&["/artifact"]));
            assert_eq!(c.dest, "/artifact");
        }
        c => panic!("{c:?}"),
    }
    let g = StageGraph::new(&d, &BTreeMap::new()).unwrap();
    assert_eq!(g.stages[1].deps, vec![0]);
    assert_eq!(g.stages[1].base, StageBase::Scratch);
    let plan = g.plan(None).unwrap();
    assert_eq!(plan.levels, vec![vec![0], vec![1]]);
    let plan = g.plan(Some("build")).unwrap();
    assert_eq!(plan.levels, vec![vec![0]]);
}

#[test]
fn directives() {
    let d = p("# syntax=docker/dockerfile:1\n# escape=`\n# check=skip=all\nFROM x\nRUN a `\n  b\n");
    assert_eq!(d.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(d.directives.check.as_deref(), Some("skip=all"));
    assert_eq!(d.escape(), '`');
    assert_eq!(
        d.stages[0].instructions[0].command,
        Command::Run(Run {
            command: CommandLine::Shell("a   b".into()),
            mounts: vec![],
            network: None,
            security: None
        })
    );
    // Case-insensitive key, spaces around '='.
    assert_eq!(p("#  ESCAPE = `\nFROM x\n").escape(), '`');
    // With backtick escape, a backslash is a plain character (Windows paths).
    let b = body("# escape=`\nFROM x\nWORKDIR C:\\dir\nRUN dir c:\\ `\n  /b\n");
    assert_eq!(b[0], Command::Workdir("C:\\dir".into()));
    // After a comment, a blank line or an instruction, directives are plain comments.
    assert_eq!(p("# a comment\n# escape=`\nFROM x\n").escape(), '\\');
    assert_eq!(p("\n# escape=`\nFROM x\n").escape(), '\\');
    assert_eq!(p("FROM x\n# escape=`\n").escape(), '\\');
    // An unknown directive is a comment, and ends the directives.
    assert_eq!(p("# unknown=1\n# escape=`\nFROM x\n").escape(), '\\');
    // A continuation in a directive makes it a comment.
    assert_eq!(p("# esc \\\n# ape=`\nFROM x\n").escape(), '\\');
    assert_eq!(
        perr("# escape=\\\n# escape=`\nFROM x\n"),
        "Dockerfile:2: only one escape parser directive can be used"
    );
    assert_eq!(
        perr("# ESCAPE=`\n# Escape=`\nFROM x\n"),
        "Dockerfile:2: only one escape parser directive can be used"
    );
    assert_eq!(
        perr("# escape=x\nFROM x\n"),
        "Dockerfile:1: invalid escape token 'x' does not match ` or \\"
    );
}

#[test]
fn continuations_like_buildkit() {
    // Continuation lines keep their leading whitespace; lone escapes join nothing.
    let text = "FROM ubuntu\n\
RUN echo hello\\\n  world\\\n  goodnight  \\\n  moon\\\n  light\\\nning\n\
RUN echo hi \\\n \\\n world \\\n\\\n good\\\n\\\nnight\n\
RUN echo hello  \\  \nworld\n\
RUN echo hello \\\n# this is a comment\n\n# comment with a blank line around it\n\nthis is more\n";
    let b = body(text);
    let shells: Vec<String> = b
        .iter()
        .map(|c| match c {
            Command::Run(r) => match &r.command {
                CommandLine::Shell(s) => s.clone(),
                e => panic!("{e:?}"),
            },
            c => panic!("{c:?}"),
        })
        .collect();
    assert_eq!(
        shells,
        vec![
            "echo hello  world  goodnight    moon  lightning",
            "echo hi   world  goodnight",
            "echo hello  world",
            "echo hello this is more",
        ]
    );
    let d = p(text);
    // The empty continuation lines are accepted with a warning.
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0].message.contains("Empty continuation line"));
    // An escaped escape at the end is not a continuation.
    let b = body("FROM x\nENV GOPATH \\\n\\go\nRUN a \\\\\nRUN b\n");
    assert_eq!(
        b[0],
        Command::Env(vec![KeyValue {
            key: "GOPATH".into(),
            value: "\\go".into(),
            legacy: true
        }])
    );
    assert_eq!(b.len(), 3);
    // A continuation at the end of the file is fine.
    let b = body("FROM x\nRUN something \\");
    assert_eq!(b.len(), 1);
    // A lone continuation at the end is not.
    assert_eq!(
        perr("FROM x\n\\\n"),
        "Dockerfile:2: line continuation at end of file with no instruction after it"
    );
    // A lone escape line before an instruction joins it.
    assert_eq!(body("FROM x\n\\\nRUN y\n").len(), 1);
}

#[test]
fn crlf_bom_and_keyword_case() {
    let d = p("\u{feff}from alpine AS Base\r\nRun echo hi\r\nworkdir /x\r\n");
    assert_eq!(d.stages[0].name.as_deref(), Some("base"));
    assert_eq!(d.stages[0].instructions[0].keyword, Keyword::Run);
    assert_eq!(
        d.stages[0].instructions[1].command,
        Command::Workdir("/x".into())
    );
    let b = body("FROM x\r\nRUN a \\\r\n  b\r\n");
    assert_eq!(
        b[0],
        Command::Run(Run {
            command: CommandLine::Shell("a   b".into()),
            mounts: vec![],
            network: None,
            security: None
        })
    );
}

#[test]
fn comments_and_blank_lines() {
    let d = p("# leading\n\n   # indented comment\nFROM x\n\n\tRUN a\n");
    assert_eq!(d.stages[0].base.image, "x");
    // `FROM x # not a comment` has five words: Docker refuses it.
    let e = perr("FROM x # no\n");
    assert_eq!(
        e,
        "Dockerfile:1: FROM requires either one or three arguments"
    );
    assert_eq!(
        perr("# only comments\n\n"),
        "Dockerfile:2: file with no instructions"
    );
    assert_eq!(perr(""), "Dockerfile:1: file with no instructions");
}

#[test]
fn shell_and_exec_forms() {
    let cases: &[(&str, Command)] = &[
        (
            "CMD [\"a\", \"b c\"]",
            Command::Cmd(CommandLine::Exec(strs(&["a", "b c"]))),
        ),
        (
            "CMD   [ \"a\" ]  ",
            Command::Cmd(CommandLine::Exec(strs(&["a"]))),
        ),
        ("CMD []", Command::Cmd(CommandLine::Exec(vec![]))),
        (
            "CMD echo hi",
            Command::Cmd(CommandLine::Shell("echo hi".into())),
        ),
        // Not valid JSON: the shell form, as written.
        (
            "CMD ['a', 'b']",
            Command::Cmd(CommandLine::Shell("['a', 'b']".into())),
        ),
        (
            "CMD [\"a\" \"b\"]",
            Command::Cmd(CommandLine::Shell("[\"a\" \"b\"]".into())),
        ),
        (
            "CMD [\"unterminated",
            Command::Cmd(CommandLine::Shell("[\"unterminated".into())),
        ),
        (
            "CMD [\"a\"] trailing",
            Command::Cmd(CommandLine::Shell("[\"a\"] trailing".into())),
        ),
        (
            "ENTRYPOINT [\"/bin/app\", \"--flag\"]",
            Command::Entrypoint(CommandLine::Exec(strs(&["/bin/app", "--flag"]))),
        ),
        (
            "ENTRYPOINT exec app",
            Command::Entrypoint(CommandLine::Shell("exec app".into())),
        ),
        (
            "SHELL [\"/bin/bash\", \"-c\"]",
            Command::Shell(strs(&["/bin/bash", "-c"])),
        ),
        (
            "CMD [\"\\u00e9\\n\"]",
            Command::Cmd(CommandLine::Exec(strs(&["é\n"]))),
        ),
    ];
    for (src, want) in cases {
        assert_eq!(&one(src), want, "{src}");
    }
    assert_eq!(
        perr("FROM x\nCMD [\"a\", 1]\n"),
        "Dockerfile:2:5: when using JSON array syntax, arrays must be comprised of strings only"
    );
    assert_eq!(
        perr("FROM x\nSHELL /bin/sh -c\n"),
        "Dockerfile:2: SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        perr("FROM x\nSHELL [\"sh\"\n"),
        "Dockerfile:2: SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        perr("FROM x\nSHELL []\n"),
        "Dockerfile:2: SHELL requires at least one argument"
    );
    assert_eq!(
        perr("FROM x\nRUN\n"),
        "Dockerfile:2: RUN requires at least one argument"
    );
    assert_eq!(
        perr("FROM x\nCMD\n"),
        "Dockerfile:2: CMD requires at least one argument"
    );
}

#[test]
fn heredocs() {
    let d = p("FROM x\nRUN <<EOF\necho $HOME\necho two\nEOF\nRUN <<-EOT bash\n\t\techo tabbed\n\tEOT\nRUN <<\"EOF\" cat > /f\n$NOT_EXPANDED\nEOF\nRUN 3<<A cat - <<B\na\nA\nb\nB\nCOPY <<EOF /dest/file\ncontent $X\nEOF\nCOPY --chmod=755 <<one <<'two' /dir/\n1\none\n2\ntwo\nRUN echo done\n");
    let s = &d.stages[0];
    let r0 = &s.instructions[0];
    assert_eq!((r0.start_line, r0.end_line), (2, 5));
    assert_eq!(
        r0.heredocs,
        vec![Heredoc {
            name: "EOF".into(),
            fd: None,
            expand: true,
            chomp: false,
            content: "echo $HOME\necho two\n".into()
        }]
    );
    assert_eq!(
        r0.command,
        Command::Run(Run {
            command: CommandLine::Shell("<<EOF".into()),
            mounts: vec![],
            network: None,
            security: None
        })
    );
    let r1 = &s.instructions[1];
    assert_eq!(r1.heredocs[0].content, "echo tabbed\n");
    assert!(r1.heredocs[0].chomp);
    let r2 = &s.instructions[2];
    assert_eq!(r2.heredocs[0].name, "EOF");
    assert!(
        !r2.heredocs[0].expand,
        "a quoted delimiter disables expansion"
    );
    let r3 = &s.instructions[3];
    assert_eq!(r3.heredocs.len(), 2);
    assert_eq!(r3.heredocs[0].fd, Some(3));
    assert_eq!(r3.heredocs[0].content, "a\n");
    assert_eq!(r3.heredocs[1].content, "b\n");
    match &s.instructions[4].command {
        Command::Copy(c) => {
            assert!(c.sources.is_empty());
            assert_eq!(
                c.inline,
                vec![InlineSource {
                    path: "EOF".into(),
                    data: "content $X\n".into(),
                    expand: true
                }]
            );
            assert_eq!(c.dest, "/dest/file");
        }
        c => panic!("{c:?}"),
    }
    match &s.instructions[5].command {
        Command::Copy(c) => {
            assert_eq!(c.inline.len(), 2);
            assert_eq!(
                c.inline[1],
                InlineSource {
                    path: "two".into(),
                    data: "2\n".into(),
                    expand: false
                }
            );
            assert_eq!(c.chmod.as_deref(), Some("755"));
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(s.instructions[6].start_line, 25);
    // JSON form: no heredocs.
    let b = body("FROM x\nRUN [\"cat\", \"<<EOF\"]\nRUN echo after\n");
    assert_eq!(b.len(), 2);
    // Other instructions do not take heredocs.
    let b = body("FROM x\nLABEL a=<<EOF\nRUN echo after\n");
    assert_eq!(b.len(), 2);
    assert_eq!(
        perr("FROM x\nRUN <<EOF\necho hi\n"),
        "Dockerfile:2: unterminated heredoc \"EOF\""
    );
    assert_eq!(
        perr("FROM x\nCOPY a <<EOF\nx\nEOF\n"),
        "Dockerfile:2: COPY cannot accept a heredoc as a destination"
    );
    // ONBUILD keeps the heredoc in its trigger expression.
    match &one("ONBUILD RUN <<EOF\necho hi\nEOF") {
        Command::Onbuild(o) => {
            assert_eq!(o.expression, "RUN <<EOF\necho hi\nEOF");
            assert_eq!(o.instruction.heredocs[0].content, "echo hi\n");
        }
        c => panic!("{c:?}"),
    }
}

#[test]
fn copy_add_flags() {
    match one("COPY --from=build --chown=1000:1000 --chmod=0644 --link a b /dst/") {
        Command::Copy(c) => {
            assert_eq!(c.from.as_deref(), Some("build"));
            assert_eq!(c.chown.as_deref(), Some("1000:1000"));
            assert_eq!(c.chmod.as_deref(), Some("0644"));
            assert!(c.link);
            assert_eq!(c.sources, strs(&["a", "b"]));
            assert_eq!(c.dest, "/dst/");
            assert!(!c.json);
        }
        c => panic!("{c:?}"),
    }
    match one("COPY --link=false --exclude=*.md --exclude=*.txt [\"a b\", \"/c d/\"]") {
        Command::Copy(c) => {
            assert!(!c.link);
            assert_eq!(c.exclude, strs(&["*.md", "*.txt"]));
            assert_eq!(c.sources, strs(&["a b"]));
            assert_eq!(c.dest, "/c d/");
            assert!(c.json);
        }
        c => panic!("{c:?}"),
    }
    match one("ADD --keep-git-dir=true --checksum=sha256:abc https://example.com/x.git /src") {
        Command::Add(a) => {
            assert_eq!(a.keep_git_dir, Some(true));
            assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
            assert_eq!(a.sources, strs(&["https://example.com/x.git"]));
        }
        c => panic!("{c:?}"),
    }
    match one("ADD --chown=\"app user\":'grp' a.tar /") {
        Command::Add(a) => assert_eq!(a.chown.as_deref(), Some("app user:grp")),
        c => panic!("{c:?}"),
    }
    // `--` ends the flags.
    match one("COPY -- --weird-name /dst") {
        Command::Copy(c) => assert_eq!(c.sources, strs(&["--weird-name"])),
        c => panic!("{c:?}"),
    }
    let errs: &[(&str, &str)] = &[
        ("COPY --form=build a b", "Dockerfile:2:6: unknown flag: --form (did you mean --from?)"),
        ("COPY --from=a --from=b x y", "Dockerfile:2:15: duplicate flag specified: --from"),
        ("COPY --from a b", "Dockerfile:2:6: missing a value on flag: --from"),
        ("COPY --link=maybe a b", "Dockerfile:2:6: expecting boolean value for flag --link, not: maybe"),
        ("COPY --link= a b", "Dockerfile:2:6: missing a value on flag: --link"),
        ("ADD --from=x a b", "Dockerfile:2:5: unknown flag: --from"),
        ("COPY onlyone", "Dockerfile:2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("ADD", "Dockerfile:2: ADD requires at least two arguments, but only one was provided. Destination could not be determined"),
    ];
    for (src, want) in errs {
        assert_eq!(&perr(&format!("FROM x\n{src}\n")), want, "{src}");
    }
}

#[test]
fn run_flags() {
    match one("RUN --mount=type=cache,target=/root/.cache --mount=type=bind,from=build,source=/out,target=/in --network=none apk add x") {
        Command::Run(r) => {
            assert_eq!(r.mounts.len(), 2);
            assert_eq!(r.mounts[0].from, None);
            assert_eq!(r.mounts[1].from.as_deref(), Some("build"));
            let m = r.mounts[0].resolve(&Lexer::default(), &EmptyEnv).unwrap();
            assert_eq!(m.kind, MountType::Cache);
            assert_eq!(m.target.as_deref(), Some("/root/.cache"));
            assert_eq!(r.network, Some(NetworkMode::None));
            assert_eq!(r.command, CommandLine::Shell("apk add x".into()));
        }
        c => panic!("{c:?}"),
    }
    match one("RUN --security=insecure [\"ls\"]") {
        Command::Run(r) => {
            assert_eq!(r.security, Some(SecurityMode::Insecure));
            assert_eq!(r.command, CommandLine::Exec(strs(&["ls"])));
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(
        perr("FROM x\nRUN --network=bridge ls\n"),
        "Dockerfile:2:5: invalid network mode \"bridge\""
    );
    assert_eq!(
        perr("FROM x\nRUN --mount=type=cache,taget=/x ls\n"),
        "Dockerfile:2:5: unexpected key 'taget' in 'taget=/x' (did you mean target?)"
    );
    assert_eq!(
        perr("FROM x\nRUN --mount=type=bind,from=$S,target=/x ls\n"),
        "Dockerfile:2:5: 'from' doesn't support variable expansion, define alias stage instead"
    );
    assert_eq!(
        perr("FROM x\nRUN --mnt=x ls\n"),
        "Dockerfile:2:5: unknown flag: --mnt (did you mean --mount?)"
    );
}

#[test]
fn from_forms() {
    let d = p("ARG BASE=alpine\nFROM --platform=$BUILDPLATFORM ${BASE}:3 as Builder\nFROM builder\nFROM scratch\n");
    assert_eq!(d.meta_args.len(), 1);
    let f = &d.stages[0].base;
    assert_eq!(f.image, "${BASE}:3");
    assert_eq!(f.name.as_deref(), Some("builder"));
    assert_eq!(f.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(d.stage("BUILDER").map(|s| s.index), Some(0));
    let errs: &[(&str, &str)] = &[
        ("FROM", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a b", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a AS", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a TO b", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a AS 1st", "Dockerfile:1:11: invalid name for build stage: \"1st\", name can't start with a number or contain symbols"),
        ("FROM a AS b$c", "Dockerfile:1:11: invalid name for build stage: \"b$c\", name can't start with a number or contain symbols"),
        ("FROM --plaform=x a", "Dockerfile:1:6: unknown flag: --plaform (did you mean --platform?)"),
    ];
    for (src, want) in errs {
        assert_eq!(&perr(src), want, "{src}");
    }
    // Stage names may use - _ .
    assert_eq!(
        p("FROM a AS my-stage_1.0\n").stages[0].name.as_deref(),
        Some("my-stage_1.0")
    );
}

#[test]
fn env_label_arg() {
    let cases: &[(&str, Command)] = &[
        (
            "ENV A B C",
            Command::Env(vec![KeyValue {
                key: "A".into(),
                value: "B C".into(),
                legacy: true,
            }]),
        ),
        (
            "ENV A=1 B=\"two words\" C=three\\ words",
            Command::Env(vec![
                kv("A", "1"),
                kv("B", "\"two words\""),
                kv("C", "three\\ words"),
            ]),
        ),
        (
            "ENV A= B=''",
            Command::Env(vec![kv("A", ""), kv("B", "''")]),
        ),
        ("ENV A=\"x=y\"", Command::Env(vec![kv("A", "\"x=y\"")])),
        (
            "LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0",
            Command::Label(vec![
                kv("\"com.example.vendor\"", "\"ACME Inc\""),
                kv("version", "1.0"),
            ]),
        ),
        (
            "LABEL description=\"multi \\\n  line\"",
            Command::Label(vec![kv("description", "\"multi   line\"")]),
        ),
        (
            "ARG A",
            Command::Arg(vec![ArgDef {
                name: "A".into(),
                default: None,
            }]),
        ),
        (
            "ARG A=1 B C=",
            Command::Arg(vec![
                ArgDef {
                    name: "A".into(),
                    default: Some("1".into()),
                },
                ArgDef {
                    name: "B".into(),
                    default: None,
                },
                ArgDef {
                    name: "C".into(),
                    default: Some("".into()),
                },
            ]),
        ),
        (
            "ARG MSG=\"hello world\"",
            Command::Arg(vec![ArgDef {
                name: "MSG".into(),
                default: Some("\"hello world\"".into()),
            }]),
        ),
    ];
    for (src, want) in cases {
        assert_eq!(&one(src), want, "{src}");
    }
    let errs: &[(&str, &str)] = &[
        ("ENV", "Dockerfile:2: ENV requires at least one argument"),
        ("ENV A", "Dockerfile:2: ENV must have two arguments"),
        ("ENV =x", "Dockerfile:2: ENV names can not be blank"),
        (
            "ENV A=1 B",
            "Dockerfile:2:9: Syntax error - can't find = in \"B\". Must be of the form: name=value",
        ),
        ("LABEL =x", "Dockerfile:2: LABEL names can not be blank"),
        (
            "LABEL",
            "Dockerfile:2: LABEL requires at least one argument",
        ),
        ("ARG =x", "Dockerfile:2: ARG names can not be blank"),
        ("ARG", "Dockerfile:2: ARG requires at least one argument"),
        ("ENV --x=1 A=1", "Dockerfile:2:5: unknown flag: --x"),
    ];
    for (src, want) in errs {
        assert_eq!(&perr(&format!("FROM x\n{src}\n")), want, "{src}");
    }
    // The brief's example: line 3.
    assert_eq!(
        perr("FROM x\nRUN a\nENV =oops\n"),
        "Dockerfile:3: ENV names can not be blank"
    );
}

#[test]
fn simple_instructions() {
    let cases: &[(&str, Command)] = &[
        (
            "EXPOSE 80 443/tcp ${PORT}",
            Command::Expose(strs(&["80", "443/tcp", "${PORT}"])),
        ),
        (
            "VOLUME /data /logs",
            Command::Volume(strs(&["/data", "/logs"])),
        ),
        (
            "VOLUME [\"/data\", \"/var/log x\"]",
            Command::Volume(strs(&["/data", "/var/log x"])),
        ),
        ("WORKDIR /a b", Command::Workdir("/a b".into())),
        ("USER app:app", Command::User("app:app".into())),
        ("STOPSIGNAL SIGTERM", Command::StopSignal("SIGTERM".into())),
        (
            "MAINTAINER Jane <jane@example.com>",
            Command::Maintainer("Jane <jane@example.com>".into()),
        ),
    ];
    for (src, want) in cases {
        assert_eq!(&one(src), want, "{src}");
    }
    let errs: &[(&str, &str)] = &[
        (
            "EXPOSE",
            "Dockerfile:2: EXPOSE requires at least one argument",
        ),
        (
            "VOLUME",
            "Dockerfile:2: VOLUME requires at least one argument",
        ),
        (
            "VOLUME []",
            "Dockerfile:2: VOLUME requires at least one argument",
        ),
        (
            "VOLUME [\"\"]",
            "Dockerfile:2: VOLUME specified can not be an empty string",
        ),
        (
            "WORKDIR",
            "Dockerfile:2: WORKDIR requires exactly one argument",
        ),
        ("USER", "Dockerfile:2: USER requires exactly one argument"),
        (
            "STOPSIGNAL",
            "Dockerfile:2: STOPSIGNAL requires exactly one argument",
        ),
        (
            "MAINTAINER",
            "Dockerfile:2: MAINTAINER requires exactly one argument",
        ),
        ("WORKDIR --x=1 /a", "Dockerfile:2:9: unknown flag: --x"),
    ];
    for (src, want) in errs {
        assert_eq!(&perr(&format!("FROM x\n{src}\n")), want, "{src}");
    }
}

#[test]
fn healthcheck() {
    assert_eq!(
        one("HEALTHCHECK NONE"),
        Command::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one("healthcheck none"),
        Command::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one("HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --start-interval=500ms --retries=3 CMD curl -f http://localhost/ || exit 1"),
        Command::Healthcheck(Healthcheck::Cmd {
            test: strs(&["CMD-SHELL", "curl -f http://localhost/ || exit 1"]),
            interval: Some(Duration::from_secs(300)),
            timeout: Some(Duration::from_secs(3)),
            start_period: Some(Duration::from_secs(90)),
            start_interval: Some(Duration::from_millis(500)),
            retries: Some(3),
        })
    );
    assert_eq!(
        one("HEALTHCHECK CMD [\"/bin/check\", \"-q\"]"),
        Command::Healthcheck(Healthcheck::Cmd {
            test: strs(&["CMD", "/bin/check", "-q"]),
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        })
    );
    let errs: &[(&str, &str)] = &[
        (
            "HEALTHCHECK",
            "Dockerfile:2: HEALTHCHECK requires at least one argument",
        ),
        (
            "HEALTHCHECK NONE x",
            "Dockerfile:2:13: HEALTHCHECK NONE takes no arguments",
        ),
        (
            "HEALTHCHECK CMD",
            "Dockerfile:2:13: Missing command after HEALTHCHECK CMD",
        ),
        (
            "HEALTHCHECK CMD []",
            "Dockerfile:2:13: Missing command after HEALTHCHECK CMD",
        ),
        (
            "HEALTHCHECK RUN x",
            "Dockerfile:2:13: Unknown type \"RUN\" in HEALTHCHECK (try CMD)",
        ),
        (
            "HEALTHCHECK --interval=5 CMD x",
            "Dockerfile:2:13: invalid duration \"5\" for --interval",
        ),
        (
            "HEALTHCHECK --timeout=10us CMD x",
            "Dockerfile:2:13: Interval \"timeout\" cannot be less than 1ms",
        ),
        (
            "HEALTHCHECK --retries=-1 CMD x",
            "Dockerfile:2:13: --retries cannot be negative (-1)",
        ),
        (
            "HEALTHCHECK --retries=x CMD x",
            "Dockerfile:2:13: invalid value for --retries: \"x\"",
        ),
        (
            "HEALTHCHECK --intervl=1s CMD x",
            "Dockerfile:2:13: unknown flag: --intervl (did you mean --interval?)",
        ),
    ];
    for (src, want) in errs {
        assert_eq!(&perr(&format!("FROM x\n{src}\n")), want, "{src}");
    }
}

#[test]
fn onbuild() {
    match one("ONBUILD ADD . /app/src") {
        Command::Onbuild(o) => {
            assert_eq!(o.expression, "ADD . /app/src");
            assert_eq!(o.instruction.keyword, Keyword::Add);
            assert!(matches!(o.instruction.command, Command::Add(_)));
        }
        c => panic!("{c:?}"),
    }
    match one("onbuild run --mount=type=cache,target=/c make") {
        Command::Onbuild(o) => {
            assert_eq!(o.expression, "run --mount=type=cache,target=/c make");
            assert!(matches!(&o.instruction.command, Command::Run(r) if r.mounts.len() == 1));
        }
        c => panic!("{c:?}"),
    }
    let errs: &[(&str, &str)] = &[
        (
            "ONBUILD ONBUILD RUN x",
            "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        (
            "ONBUILD FROM x",
            "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            "ONBUILD maintainer x",
            "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
        (
            "ONBUILD",
            "Dockerfile:2: ONBUILD requires at least one argument",
        ),
        (
            "ONBUILD RUNN x",
            "Dockerfile:2:9: unknown instruction: RUNN (did you mean RUN?)",
        ),
    ];
    for (src, want) in errs {
        assert_eq!(&perr(&format!("FROM x\n{src}\n")), want, "{src}");
    }
}

#[test]
fn unknown_instruction_names_line_and_column() {
    let text = "FROM x\nRUN a\nRUN b\n\n# c\nRUN d\nFORM y\n";
    assert_eq!(
        perr(text),
        "Dockerfile:7:1: unknown instruction: FORM (did you mean FROM?)"
    );
    assert_eq!(
        perr("FROM x\n  cpoy a b\n"),
        "Dockerfile:2:3: unknown instruction: cpoy (did you mean copy?)"
    );
    assert_eq!(
        perr("FROM x\nBOGUSWORD a\n"),
        "Dockerfile:2:1: unknown instruction: BOGUSWORD"
    );
    let e = parse_named("FROM x\nFORM y\n", "build/app.Dockerfile").unwrap_err();
    assert_eq!(e.line, 2);
    assert_eq!(e.column, Some(1));
    assert!(e.to_string().starts_with("build/app.Dockerfile:2:1: "));
    // A flag error on a continuation line points there.
    let e = parse("FROM x\nCOPY \\\n  --bogus=1 a b\n").unwrap_err();
    assert_eq!((e.line, e.column, e.end_line), (3, Some(3), 3));
}

#[test]
fn stage_structure_errors() {
    assert_eq!(
        perr("RUN echo hi\nFROM x\n"),
        "Dockerfile:1:1: no build stage in current context: RUN must come after a FROM (only ARG can come before the first FROM)"
    );
    assert_eq!(
        perr("ARG A=1\nARG B\n"),
        "Dockerfile:2: the Dockerfile has no build stage (no FROM)"
    );
    let d = p("ARG A=1\nARG B\nFROM x\nARG A\n");
    assert_eq!(d.meta_args.len(), 2);
    assert_eq!(d.stages[0].instructions.len(), 1);
    let d = p("FROM a AS x\nFROM b AS x\n");
    assert_eq!(d.warnings.len(), 1);
}

#[test]
fn expansion_table_is_docker_s() {
    use Expansion::*;
    let want = [
        (Keyword::Add, Word),
        (Keyword::Arg, Word),
        (Keyword::Cmd, None),
        (Keyword::Copy, Word),
        (Keyword::Entrypoint, None),
        (Keyword::Env, Word),
        (Keyword::Expose, Words),
        (Keyword::From, MetaArgs),
        (Keyword::Healthcheck, None),
        (Keyword::Label, Word),
        (Keyword::Maintainer, None),
        (Keyword::Onbuild, None),
        (Keyword::Run, None),
        (Keyword::Shell, None),
        (Keyword::Stopsignal, Word),
        (Keyword::User, Word),
        (Keyword::Volume, Word),
        (Keyword::Workdir, Word),
    ];
    for (k, e) in want {
        assert_eq!(k.expansion(), e, "{k}");
        assert_eq!(Keyword::from_word(&k.as_str().to_lowercase()), Some(k));
    }
    assert!(PREDEFINED_ARGS.contains(&"HTTP_PROXY") && PREDEFINED_ARGS.contains(&"no_proxy"));
}

#[test]
fn expanding_commands() {
    let d = p("FROM x\nCOPY --chown=${U}:${G} $SRC \"${DEST}/a\"\nEXPOSE $PORTS 9000\nWORKDIR ${HOME:-/root}/w\nRUN echo $HOME\nUSER $U\nVOLUME $V\nLABEL \"$K\"=\"$U\"\nSTOPSIGNAL $SIG\n");
    let env: BTreeMap<String, String> = [
        ("U", "app"),
        ("G", "staff"),
        ("SRC", "src/"),
        ("DEST", "/opt"),
        ("PORTS", "80/tcp 443"),
        ("V", "/data"),
        ("K", "key"),
        ("SIG", "SIGINT"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let lex = d.lexer();
    let out: Vec<Command> = d.stages[0]
        .instructions
        .iter()
        .map(|i| i.command.expand(&lex, &env).unwrap())
        .collect();
    match &out[0] {
        Command::Copy(c) => {
            assert_eq!(c.chown.as_deref(), Some("app:staff"));
            assert_eq!(c.sources, strs(&["src/"]));
            assert_eq!(c.dest, "/opt/a");
        }
        c => panic!("{c:?}"),
    }
    assert_eq!(out[1], Command::Expose(strs(&["80/tcp", "443", "9000"])));
    assert_eq!(out[2], Command::Workdir("/root/w".into()));
    assert_eq!(
        out[3], d.stages[0].instructions[3].command,
        "RUN is left to the shell"
    );
    assert_eq!(out[4], Command::User("app".into()));
    assert_eq!(out[5], Command::Volume(strs(&["/data"])));
    assert_eq!(out[6], Command::Label(vec![kv("key", "app")]));
    assert_eq!(out[7], Command::StopSignal("SIGINT".into()));
    // COPY splits on whitespace before expanding, so quotes cannot hold a space (as in
    // Docker; the JSON form can).
    let d2 = p("FROM x\nCOPY a \"/b c\"\n");
    assert!(d2.stages[0].instructions[0]
        .command
        .expand(&lex, &env)
        .is_err());
    // Errors carry the word.
    let bad = Command::Workdir("${NOPE:?must be set}".into())
        .expand(&lex, &env)
        .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "failed to process \"${NOPE:?must be set}\": NOPE: must be set"
    );
}

#[test]
fn meta_args_and_build_args() {
    let d = p(
        "ARG REG=docker.io\nARG IMG=${REG}/library/alpine\nARG TAG\nFROM ${IMG}:${TAG:-latest}\n",
    );
    let mut ba = BTreeMap::new();
    let meta = d.meta_arg_values(&ba).unwrap();
    assert_eq!(
        meta.get("IMG").map(String::as_str),
        Some("docker.io/library/alpine")
    );
    assert_eq!(meta.get("TAG"), None);
    let g = StageGraph::new(&d, &ba).unwrap();
    assert_eq!(
        g.stages[0].base,
        StageBase::Image("docker.io/library/alpine:latest".into())
    );
    ba.insert("REG".to_string(), "localhost:5000".to_string());
    ba.insert("TAG".to_string(), "3.20".to_string());
    ba.insert("UNDECLARED".to_string(), "x".to_string());
    let g = StageGraph::new(&d, &ba).unwrap();
    assert_eq!(
        g.stages[0].base,
        StageBase::Image("localhost:5000/library/alpine:3.20".into())
    );
    // Build args not declared before FROM are not visible there.
    let d = p("FROM ${UNDECLARED:-busybox}\n");
    let g = StageGraph::new(&d, &ba).unwrap();
    assert_eq!(g.stages[0].base, StageBase::Image("busybox".into()));
}

#[test]
fn stage_graph_dependencies_and_parallel_levels() {
    let text = "\
FROM alpine AS base
RUN echo base

FROM base AS deps
RUN echo deps

FROM golang AS tools
RUN echo tools

FROM alpine AS unused
RUN echo unused

FROM deps AS build
COPY --from=tools /go/bin/tool /usr/bin/
RUN --mount=type=bind,from=2,target=/t echo build

FROM scratch AS final
COPY --from=build /app /app
COPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf
";
    let d = p(text);
    let g = StageGraph::new(&d, &BTreeMap::new()).unwrap();
    assert_eq!(g.stages[1].base, StageBase::Stage(0));
    assert_eq!(g.stages[4].deps, vec![1, 2]);
    assert_eq!(
        g.stages[4].refs,
        vec![(StageDep::Stage(2), 14), (StageDep::Stage(2), 15)]
    );
    assert_eq!(
        g.stages[5].refs[1],
        (StageDep::Image("nginx:latest".into()), 19)
    );
    let plan = g.plan(None).unwrap();
    assert_eq!(plan.target, 5);
    // base and tools are independent; unused is not built.
    assert_eq!(plan.levels, vec![vec![0, 2], vec![1], vec![4], vec![5]]);
    assert!(!plan.contains(3));
    assert_eq!(plan.order().collect::<Vec<_>>(), vec![0, 2, 1, 4, 5]);
    let plan = g.plan(Some("UNUSED")).unwrap();
    assert_eq!(plan.levels, vec![vec![3]]);
    let e = g.plan(Some("buidl")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "target stage \"buidl\" could not be found (did you mean build?)"
    );
    // A stage named like its image uses the image (as Docker does).
    let g = StageGraph::new(&p("FROM golang AS golang\nFROM golang\n"), &BTreeMap::new()).unwrap();
    assert_eq!(g.stages[0].base, StageBase::Image("golang".into()));
    assert_eq!(g.stages[1].base, StageBase::Stage(0));
}

#[test]
fn stage_graph_errors() {
    let graph = |t: &str| StageGraph::new(&p(t), &BTreeMap::new());
    let cases: &[(&str, &str)] = &[
        ("FROM a AS one\nCOPY --from=one /x /x\n", "line 2: stage one refers to itself"),
        ("FROM a\nCOPY --from=0 /x /x\n", "line 2: stage 0 refers to itself"),
        ("FROM a AS one\nCOPY --from=5 /x /x\n", "line 2: invalid stage index 5: the Dockerfile has 1 stage(s)"),
        ("FROM later\nFROM b AS later\n", "line 1: FROM later refers to a stage defined later (line 2); FROM can only use earlier stages"),
        (
            "FROM a AS one\nCOPY --from=two /x /x\nFROM a AS two\nCOPY --from=one /y /y\n",
            "line 4: circular dependency between stages: one -> two -> one",
        ),
        ("FROM a\nCOPY --from=$STAGE /x /x\n", "line 2: variable expansion is not supported for --from ($STAGE), define a new stage with FROM using ARG from global scope as a workaround"),
        ("ARG E\nFROM $E\n", "line 2: base name ($E) should not be blank"),
        ("FROM ${X:?required}\n", "line 1: failed to process \"${X:?required}\": X: required"),
    ];
    for (t, want) in cases {
        assert_eq!(graph(t).unwrap_err().to_string(), *want, "{t}");
    }
    // A forward COPY --from without a cycle is allowed (as in BuildKit).
    let g = graph("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\n").unwrap();
    assert_eq!(g.plan(Some("one")).unwrap().levels, vec![vec![1], vec![0]]);
}

#[test]
fn heredoc_delimiters_like_buildkit() {
    let text = "FROM x\n\
USER <<INVALID\n\
RUN <<EMPTY\nEMPTY\n\
RUN 3<<EMPTY2\nEMPTY2\n\
RUN \"<<NOHEREDOC\"\n\
RUN <<eo'f'\necho foo\neof\n\
RUN <<eo\\'f\necho foo\neo'f\n\
RUN <<'e'o\\'f\necho foo\neo'f\n\
RUN <<'one two'\necho bar\none two\n\
RUN <<$EOF\n$EOF\n\
RUN <<  EOF  > foo\nEOF\n\
COPY <<X <<Y /dest\nY\nX\nX\nY\n\
RUN <<INDENT\n\tfoo\nINDENT\n";
    let d = p(text);
    type Doc = (String, bool, Option<u32>, String);
    let got: Vec<Vec<Doc>> = d.stages[0]
        .instructions
        .iter()
        .map(|i| {
            i.heredocs
                .iter()
                .map(|h| (h.name.clone(), h.expand, h.fd, h.content.clone()))
                .collect()
        })
        .collect();
    let h = |n: &str, e: bool, fd: Option<u32>, c: &str| (n.to_string(), e, fd, c.to_string());
    assert_eq!(
        got,
        vec![
            vec![],
            vec![h("EMPTY", true, None, "")],
            vec![h("EMPTY2", true, Some(3), "")],
            vec![],
            vec![h("eof", false, None, "echo foo\n")],
            vec![h("eo'f", true, None, "echo foo\n")],
            vec![h("eo'f", false, None, "echo foo\n")],
            vec![h("one two", false, None, "echo bar\n")],
            vec![h("$EOF", true, None, "")],
            vec![h("EOF", true, None, "")],
            vec![h("X", true, None, "Y\n"), h("Y", true, None, "X\n")],
            vec![h("INDENT", true, None, "\tfoo\n")],
        ]
    );
    assert_eq!(
        d.stages[0].instructions[0].command,
        Command::User("<<INVALID".into())
    );
}
