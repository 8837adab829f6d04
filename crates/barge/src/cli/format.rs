//! `--format`: a Go text/template subset as docker uses it (`{{.Field}}`, `{{.A.B}}`,
//! `{{json .X}}`, `{{range}}`, `{{if}}`, `{{index}}`, `{{join}}`...), the `table` prefix with
//! tab-aligned columns, `json`, and docker's human units (sizes, durations).

use serde_json::Value;

/// A parse or evaluation error.
#[derive(Debug, PartialEq)]
pub struct TemplateError(pub String);

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "template: {}", self.0)
    }
}

#[derive(Debug, Clone)]
enum Tok {
    Field(Vec<String>),
    Dot,
    Str(String),
    Num(f64),
    Ident(String),
    Var(String, Vec<String>),
    Sub(Vec<Vec<Tok>>),
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Vec<Vec<Tok>>),
    Range(Vec<String>, Vec<Vec<Tok>>, Vec<Node>, Vec<Node>),
    Assign(String, Vec<Vec<Tok>>),
    If(Vec<Vec<Tok>>, Vec<Node>, Vec<Node>),
    With(Vec<Vec<Tok>>, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

/// Replaces docker's escapes `\t` and `\n` in a format flag.
pub fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

fn lex_pipeline(s: &str) -> Result<Vec<Vec<Tok>>, TemplateError> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let (p, _) = lex_inner(&chars, &mut i, false)?;
    Ok(p)
}

fn lex_inner(
    c: &[char],
    i: &mut usize,
    in_paren: bool,
) -> Result<(Vec<Vec<Tok>>, ()), TemplateError> {
    let mut pipeline = vec![];
    let mut cmd = vec![];
    while *i < c.len() {
        let ch = c[*i];
        if ch.is_whitespace() {
            *i += 1;
        } else if ch == '|' {
            *i += 1;
            pipeline.push(std::mem::take(&mut cmd));
        } else if ch == '(' {
            *i += 1;
            let (p, _) = lex_inner(c, i, true)?;
            cmd.push(Tok::Sub(p));
        } else if ch == ')' {
            if !in_paren {
                return Err(TemplateError("unexpected )".into()));
            }
            *i += 1;
            pipeline.push(cmd);
            return Ok((pipeline, ()));
        } else if ch == '"' || ch == '`' {
            let q = ch;
            *i += 1;
            let mut s = String::new();
            while *i < c.len() && c[*i] != q {
                if q == '"' && c[*i] == '\\' && *i + 1 < c.len() {
                    *i += 1;
                    s.push(match c[*i] {
                        'n' => '\n',
                        't' => '\t',
                        o => o,
                    });
                } else {
                    s.push(c[*i]);
                }
                *i += 1;
            }
            if *i >= c.len() {
                return Err(TemplateError("unterminated quoted string".into()));
            }
            *i += 1;
            cmd.push(Tok::Str(s));
        } else if ch == '.' {
            let start = *i;
            while *i < c.len() && !c[*i].is_whitespace() && !"|()".contains(c[*i]) {
                *i += 1;
            }
            let w: String = c[start..*i].iter().collect();
            if w == "." {
                cmd.push(Tok::Dot);
            } else {
                let parts: Vec<String> = w[1..].split('.').map(|s| s.to_string()).collect();
                if parts.iter().any(|p| p.is_empty()) {
                    return Err(TemplateError(format!("bad field {w:?}")));
                }
                cmd.push(Tok::Field(parts));
            }
        } else if ch == '$' {
            let start = *i;
            while *i < c.len() && !c[*i].is_whitespace() && !"|()".contains(c[*i]) {
                *i += 1;
            }
            let w: String = c[start..*i].iter().collect();
            let (name, fields) = match w[1..].find('.') {
                Some(i) => (
                    w[..i + 1].to_string(),
                    w[i + 2..].split('.').map(|s| s.to_string()).collect(),
                ),
                None => (w.clone(), vec![]),
            };
            cmd.push(Tok::Var(name, fields));
        } else {
            let start = *i;
            while *i < c.len() && !c[*i].is_whitespace() && !"|()".contains(c[*i]) {
                *i += 1;
            }
            let w: String = c[start..*i].iter().collect();
            if let Ok(n) = w.parse::<f64>() {
                cmd.push(Tok::Num(n));
            } else if w.chars().all(|c| c.is_alphanumeric() || c == '_') {
                cmd.push(Tok::Ident(w));
            } else {
                return Err(TemplateError(format!("unexpected {w:?} in action")));
            }
        }
    }
    if in_paren {
        return Err(TemplateError("unclosed (".into()));
    }
    pipeline.push(cmd);
    if pipeline.iter().any(|c| c.is_empty()) {
        return Err(TemplateError("missing value in pipeline".into()));
    }
    Ok((pipeline, ()))
}

enum Item {
    Text(String),
    Act(String),
}

fn split_items(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut items = vec![];
    let mut rest = src;
    while let Some(p) = rest.find("{{") {
        let mut text = rest[..p].to_string();
        let mut inner = &rest[p + 2..];
        let e = inner
            .find("}}")
            .ok_or_else(|| TemplateError("unclosed action".into()))?;
        let mut body = &inner[..e];
        if let Some(b) = body.strip_prefix('-') {
            if b.starts_with(char::is_whitespace) {
                text = text.trim_end().to_string();
                body = b;
            }
        }
        let mut trim_after = false;
        if let Some(b) = body.strip_suffix('-') {
            if b.ends_with(char::is_whitespace) {
                trim_after = true;
                body = b;
            }
        }
        if !text.is_empty() {
            items.push(Item::Text(text));
        }
        items.push(Item::Act(body.trim().to_string()));
        inner = &inner[e + 2..];
        rest = if trim_after {
            inner.trim_start()
        } else {
            inner
        };
    }
    if !rest.is_empty() {
        items.push(Item::Text(rest.to_string()));
    }
    Ok(items)
}

fn parse_nodes(
    items: &[Item],
    pos: &mut usize,
    stop: &[&str],
) -> Result<(Vec<Node>, String), TemplateError> {
    let mut nodes = vec![];
    while *pos < items.len() {
        match &items[*pos] {
            Item::Text(t) => {
                nodes.push(Node::Text(t.clone()));
                *pos += 1;
            }
            Item::Act(a) => {
                let kw = a.split_whitespace().next().unwrap_or("");
                if stop.contains(&kw) {
                    *pos += 1;
                    return Ok((nodes, a.clone()));
                }
                *pos += 1;
                if a.starts_with("/*") {
                    continue;
                }
                match kw {
                    "range" | "if" | "with" => {
                        let mut head = a[kw.len()..].trim();
                        let mut vars = vec![];
                        if kw == "range" {
                            if let Some((l, r)) = head.split_once(":=") {
                                vars = l.split(',').map(|v| v.trim().to_string()).collect();
                                if vars.iter().any(|v| !v.starts_with('$') || v.len() < 2)
                                    || vars.len() > 2
                                {
                                    return Err(TemplateError(format!(
                                        "bad range variables in {a:?}"
                                    )));
                                }
                                head = r.trim();
                            }
                        }
                        let p = lex_pipeline(head)?;
                        let (body, end) = parse_nodes(items, pos, &["end", "else"])?;
                        let els = if let Some(rest) = end.strip_prefix("else") {
                            let rest = rest.trim();
                            if let Some(cond) = rest.strip_prefix("if ") {
                                // else if: nest
                                let p2 = lex_pipeline(cond.trim())?;
                                let (b2, end2) = parse_nodes(items, pos, &["end", "else"])?;
                                let e2 = if end2.starts_with("else") {
                                    parse_nodes(items, pos, &["end"])?.0
                                } else {
                                    vec![]
                                };
                                vec![Node::If(p2, b2, e2)]
                            } else {
                                parse_nodes(items, pos, &["end"])?.0
                            }
                        } else {
                            vec![]
                        };
                        nodes.push(match kw {
                            "range" => Node::Range(vars, p, body, els),
                            "if" => Node::If(p, body, els),
                            _ => Node::With(p, body, els),
                        });
                    }
                    "end" | "else" => {
                        return Err(TemplateError(format!("unexpected {{{{{kw}}}}}")))
                    }
                    _ if a.starts_with('$') && a.contains(":=") => {
                        let (l, r) = a.split_once(":=").unwrap_or_default();
                        nodes.push(Node::Assign(l.trim().to_string(), lex_pipeline(r.trim())?));
                    }
                    _ => nodes.push(Node::Action(lex_pipeline(a)?)),
                }
            }
        }
    }
    if !stop.is_empty() {
        return Err(TemplateError("unexpected EOF: missing {{end}}".into()));
    }
    Ok((nodes, String::new()))
}

impl Template {
    /// Parses a template.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let items = split_items(src)?;
        let mut pos = 0;
        let (nodes, _) = parse_nodes(&items, &mut pos, &[])?;
        Ok(Template { nodes })
    }

    /// Renders against `data`.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        VARS.with(|v| {
            let mut v = v.borrow_mut();
            v.clear();
            v.push(("$".to_string(), data.clone()));
        });
        let r = render_nodes(&self.nodes, data, &mut out);
        VARS.with(|v| v.borrow_mut().clear());
        r?;
        Ok(out)
    }
}

thread_local! {
    /// Template variables in scope (`$` is the root), innermost last.
    static VARS: std::cell::RefCell<Vec<(String, Value)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn set_var(name: &str, v: Value) {
    VARS.with(|vars| vars.borrow_mut().push((name.to_string(), v)));
}

fn var_mark() -> usize {
    VARS.with(|vars| vars.borrow().len())
}

fn var_reset(mark: usize) {
    VARS.with(|vars| vars.borrow_mut().truncate(mark));
}

fn get_var(name: &str) -> Result<Value, TemplateError> {
    VARS.with(|vars| {
        vars.borrow()
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| TemplateError(format!("undefined variable: {name}")))
    })
}

fn render_nodes(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
    let mark = var_mark();
    let r = render_inner(nodes, dot, out);
    var_reset(mark);
    r
}

fn render_inner(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
    for n in nodes {
        match n {
            Node::Assign(name, p) => {
                let v = eval_pipeline(p, dot)?;
                set_var(name, v);
            }
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval_pipeline(p, dot)?;
                out.push_str(&to_text(&v));
            }
            Node::If(p, a, b) => {
                if truthy(&eval_pipeline(p, dot)?) {
                    render_nodes(a, dot, out)?;
                } else {
                    render_nodes(b, dot, out)?;
                }
            }
            Node::With(p, a, b) => {
                let v = eval_pipeline(p, dot)?;
                if truthy(&v) {
                    render_nodes(a, &v, out)?;
                } else {
                    render_nodes(b, dot, out)?;
                }
            }
            Node::Range(vars, p, body, els) => {
                let v = eval_pipeline(p, dot)?;
                let elems: Vec<(Value, Value)> = match &v {
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, e)| (Value::from(i), e.clone()))
                        .collect(),
                    Value::Object(m) => {
                        let mut keys: Vec<&String> = m.keys().collect();
                        keys.sort();
                        keys.into_iter()
                            .map(|k| (Value::String(k.clone()), m[k].clone()))
                            .collect()
                    }
                    Value::Null => vec![],
                    o => return Err(TemplateError(format!("range can't iterate over {o}"))),
                };
                if elems.is_empty() {
                    render_nodes(els, dot, out)?;
                }
                for (k, e) in &elems {
                    let mark = var_mark();
                    match vars.as_slice() {
                        [v] => set_var(v, e.clone()),
                        [kv, vv] => {
                            set_var(kv, k.clone());
                            set_var(vv, e.clone());
                        }
                        _ => {}
                    }
                    let r = render_nodes(body, e, out);
                    var_reset(mark);
                    r?;
                }
            }
        }
    }
    Ok(())
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn field(v: &Value, path: &[String]) -> Result<Value, TemplateError> {
    let mut cur = v.clone();
    for p in path {
        cur = match &cur {
            Value::Object(m) => m.get(p).cloned().unwrap_or(Value::Null),
            Value::Null => Value::Null,
            other => {
                return Err(TemplateError(format!(
                    "can't evaluate field {p} in type {}",
                    type_name(other)
                )))
            }
        };
    }
    Ok(cur)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn eval_arg(t: &Tok, dot: &Value) -> Result<Value, TemplateError> {
    Ok(match t {
        Tok::Dot => dot.clone(),
        Tok::Field(p) => field(dot, p)?,
        Tok::Str(s) => Value::String(s.clone()),
        Tok::Num(n) => serde_json::Number::from_f64(*n)
            .map(|n| {
                if let Some(i) = n.as_f64().filter(|f| f.fract() == 0.0) {
                    Value::from(i as i64)
                } else {
                    Value::Number(n)
                }
            })
            .unwrap_or(Value::Null),
        Tok::Var(name, fields) => field(&get_var(name)?, fields)?,
        Tok::Sub(p) => eval_pipeline(p, dot)?,
        Tok::Ident(i) => match i.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "nil" => Value::Null,
            _ => call(i, vec![])?,
        },
    })
}

fn eval_pipeline(p: &[Vec<Tok>], dot: &Value) -> Result<Value, TemplateError> {
    let mut prev: Option<Value> = None;
    for cmd in p {
        let v = match &cmd[0] {
            Tok::Ident(name) if !matches!(name.as_str(), "true" | "false" | "nil") => {
                let mut args = cmd[1..]
                    .iter()
                    .map(|t| eval_arg(t, dot))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(pv) = prev.take() {
                    args.push(pv);
                }
                call(name, args)?
            }
            // docker's `{{.Label "key"}}` method on list rows (labels kept in `_labels`).
            Tok::Field(p) if p.len() == 1 && p[0] == "Label" && cmd.len() == 2 => {
                let key = to_text(&eval_arg(&cmd[1], dot)?);
                let v = dot
                    .get("_labels")
                    .and_then(|l| l.get(&key))
                    .cloned()
                    .unwrap_or(Value::String(String::new()));
                if prev.is_some() {
                    return Err(TemplateError("can't pipe into a non-function".into()));
                }
                v
            }
            t => {
                if cmd.len() > 1 {
                    return Err(TemplateError("can't give argument to non-function".into()));
                }
                if prev.is_some() {
                    return Err(TemplateError("can't pipe into a non-function".into()));
                }
                eval_arg(t, dot)?
            }
        };
        prev = Some(v);
    }
    Ok(prev.unwrap_or(Value::Null))
}

fn s(v: &Value) -> String {
    to_text(v)
}

fn call(name: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
    let need = |n: usize| -> Result<(), TemplateError> {
        if args.len() < n {
            Err(TemplateError(format!("wrong number of args for {name}")))
        } else {
            Ok(())
        }
    };
    Ok(match name {
        "json" => {
            need(1)?;
            Value::String(
                context_json(&args[0])
                    .unwrap_or_else(|| serde_json::to_string(&args[0]).unwrap_or_default()),
            )
        }
        "upper" => {
            need(1)?;
            Value::String(s(&args[0]).to_uppercase())
        }
        "lower" => {
            need(1)?;
            Value::String(s(&args[0]).to_lowercase())
        }
        "title" => {
            need(1)?;
            let t = s(&args[0]);
            let mut c = t.chars();
            Value::String(match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            })
        }
        "len" => {
            need(1)?;
            Value::from(match &args[0] {
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                Value::String(x) => x.len(),
                Value::Null => 0,
                o => return Err(TemplateError(format!("len of {}", type_name(o)))),
            })
        }
        "join" => {
            need(2)?;
            let sep = s(&args[1]);
            match &args[0] {
                Value::Array(a) => Value::String(a.iter().map(s).collect::<Vec<_>>().join(&sep)),
                o => Value::String(s(o)),
            }
        }
        "split" => {
            need(2)?;
            Value::Array(
                s(&args[0])
                    .split(&s(&args[1]))
                    .map(|x| Value::String(x.to_string()))
                    .collect(),
            )
        }
        "truncate" => {
            need(2)?;
            let n = args[1].as_u64().unwrap_or(0) as usize;
            Value::String(s(&args[0]).chars().take(n).collect())
        }
        "pad" => {
            need(3)?;
            let l = args[1].as_u64().unwrap_or(0) as usize;
            let r = args[2].as_u64().unwrap_or(0) as usize;
            Value::String(format!("{}{}{}", " ".repeat(l), s(&args[0]), " ".repeat(r)))
        }
        "index" => {
            need(2)?;
            let mut cur = args[0].clone();
            for k in &args[1..] {
                cur = match (&cur, k) {
                    (Value::Object(m), k) => m.get(&s(k)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                        a.get(i)
                            .cloned()
                            .ok_or_else(|| TemplateError(format!("index out of range: {i}")))?
                    }
                    (Value::Null, _) => Value::Null,
                    (o, _) => return Err(TemplateError(format!("can't index {}", type_name(o)))),
                };
            }
            cur
        }
        "print" => Value::String(args.iter().map(s).collect::<Vec<_>>().join(" ")),
        "println" => Value::String(args.iter().map(s).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => {
            need(1)?;
            Value::String(printf(&s(&args[0]), &args[1..]))
        }
        "eq" => {
            need(2)?;
            Value::Bool(args[1..].iter().any(|a| loose_eq(&args[0], a)))
        }
        "ne" => {
            need(2)?;
            Value::Bool(!loose_eq(&args[0], &args[1]))
        }
        "not" => {
            need(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "and" => {
            need(1)?;
            args.iter()
                .find(|a| !truthy(a))
                .cloned()
                .unwrap_or_else(|| args[args.len() - 1].clone())
        }
        "or" => {
            need(1)?;
            args.iter()
                .find(|a| truthy(a))
                .cloned()
                .unwrap_or_else(|| args[args.len() - 1].clone())
        }
        "lt" | "gt" | "le" | "ge" => {
            need(2)?;
            let (a, b) = (args[0].as_f64(), args[1].as_f64());
            let (a, b) = match (a, b) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err(TemplateError(format!("{name}: incomparable values"))),
            };
            Value::Bool(match name {
                "lt" => a < b,
                "gt" => a > b,
                "le" => a <= b,
                _ => a >= b,
            })
        }
        _ => return Err(TemplateError(format!("function {name:?} not defined"))),
    })
}

fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut ai = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('%') => out.push('%'),
            Some('q') => {
                out.push_str(&format!("{:?}", s(args.get(ai).unwrap_or(&Value::Null))));
                ai += 1;
            }
            Some(_) => {
                out.push_str(&s(args.get(ai).unwrap_or(&Value::Null)));
                ai += 1;
            }
            None => out.push('%'),
        }
    }
    out
}

/// The key that marks a row of a list command as one of docker's formatter contexts.
const CONTEXT_KEY: &str = "_context";

/// Marks `row` (an object) as a formatter context: `json` prints it as docker prints a
/// context (its fields only, HTML-escaped by Go's `json.Marshal`), unlike plain data
/// such as `inspect`'s, which docker's `json` prints unescaped.
pub fn as_context(mut row: Value) -> Value {
    if let Value::Object(m) = &mut row {
        m.insert(CONTEXT_KEY.into(), Value::Bool(true));
    }
    row
}

/// A context row, or a list of them, as docker's `json` prints it; None for other data.
pub fn context_json(v: &Value) -> Option<String> {
    let is_context = |v: &Value| v.get(CONTEXT_KEY).is_some();
    let public = |v: &Value| -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| !k.starts_with('_'))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        }
    };
    match v {
        Value::Object(_) if is_context(v) => Some(go_json(&public(v))),
        Value::Array(a) if !a.is_empty() && a.iter().all(is_context) => {
            Some(go_json(&Value::Array(a.iter().map(public).collect())))
        }
        _ => None,
    }
}

/// JSON as Go's `json.Marshal` writes it (docker's `--format json`): `<`, `>` and `&`
/// escaped as `\u003c`, `\u003e` and `\u0026`, and the JavaScript line separators too.
/// Those characters can only occur inside JSON strings, so replacing them is exact.
pub fn go_json(v: &Value) -> String {
    let text = v.to_string();
    if !text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Prints a value as Go's fmt would (strings raw, maps as `map[k:v]`, slices as `[a b]`).
pub fn to_text(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f.fract() == 0.0 && f.abs() < 1e21 {
                    if f.abs() >= 1e6 {
                        return format!("{f:e}").replace('e', "e+");
                    }
                    return format!("{}", f as i64);
                }
                return f.to_string();
            }
            n.to_string()
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(inner_text).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!("{k}:{}", inner_text(&m[*k])))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

fn inner_text(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        o => to_text(o),
    }
}

/// Aligns tab-separated cells into columns as docker's tabwriter (min width 10, padding 3).
pub fn tabulate(text: &str) -> String {
    tabulate_min(text, 10)
}

/// [`tabulate`] with another minimum cell width (`docker top` uses 20).
pub fn tabulate_min(text: &str, min_width: usize) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = vec![];
    for l in &lines {
        for (i, c) in l.iter().enumerate() {
            if i + 1 == l.len() {
                break;
            }
            let w = c.chars().count();
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(w);
        }
    }
    let mut out = String::new();
    for l in &lines {
        for (i, c) in l.iter().enumerate() {
            if i + 1 == l.len() {
                out.push_str(c);
            } else {
                let w = (widths[i] + 3).max(min_width);
                out.push_str(c);
                out.push_str(&" ".repeat(w.saturating_sub(c.chars().count())));
            }
        }
        out.push('\n');
    }
    out
}

/// How list commands print rows: a `--format` value resolved against a default table.
pub struct ListFormat {
    table: bool,
    json: bool,
    tmpl: Template,
    header: Option<String>,
}

impl ListFormat {
    /// Resolves `--format` (None, `table`, `table TEMPLATE`, `json`, or a template).
    /// `default` is the table template without the `table ` prefix; `headers` maps field names to
    /// column titles.
    pub fn new(
        format: Option<&str>,
        default: &str,
        headers: &[(&str, &str)],
    ) -> Result<ListFormat, TemplateError> {
        let f = format.map(unescape);
        let (table, body) = match f.as_deref() {
            None | Some("") | Some("table") => (true, unescape(default)),
            Some("json") => {
                return Ok(ListFormat {
                    table: false,
                    json: true,
                    tmpl: Template::parse("")?,
                    header: None,
                })
            }
            Some(t) => match t.strip_prefix("table ") {
                Some(rest) => (true, rest.to_string()),
                None => (false, t.to_string()),
            },
        };
        let tmpl = Template::parse(&body)?;
        let header = if table {
            let mut m = serde_json::Map::new();
            for (k, v) in headers {
                m.insert(k.to_string(), Value::String(v.to_string()));
            }
            // Unknown fields: their upper-cased name.
            let hv = Value::Object(m);
            Some(render_header(&body, &hv)?)
        } else {
            None
        };
        Ok(ListFormat {
            table,
            json: false,
            tmpl,
            header,
        })
    }

    /// Renders all rows to the output text.
    pub fn render(&self, rows: &[Value]) -> Result<String, TemplateError> {
        if self.json {
            let mut out = String::new();
            for r in rows {
                out.push_str(&context_json(&as_context(r.clone())).unwrap_or_default());
                out.push('\n');
            }
            return Ok(out);
        }
        let mut out = String::new();
        if let Some(h) = &self.header {
            out.push_str(h);
            out.push('\n');
        }
        for r in rows {
            out.push_str(&self.tmpl.render(&as_context(r.clone()))?);
            out.push('\n');
        }
        Ok(if self.table { tabulate(&out) } else { out })
    }
}

/// Renders a table header: every `{{.Field}}` becomes its title (or the upper-cased name).
fn render_header(body: &str, headers: &Value) -> Result<String, TemplateError> {
    let items = split_items(body)?;
    let mut out = String::new();
    for it in items {
        match it {
            Item::Text(t) => out.push_str(&t),
            Item::Act(a) => {
                // The last field named in the action is the column.
                let name = a
                    .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
                    .filter_map(|w| w.strip_prefix('.'))
                    .rfind(|w| !w.is_empty())
                    .map(|w| w.split('.').next().unwrap_or(w).to_string());
                if let Some(n) = name {
                    match headers.get(&n).and_then(|v| v.as_str()) {
                        Some(h) => out.push_str(h),
                        None => out.push_str(&n.to_uppercase()),
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Docker's `units.HumanSizeWithPrecision(n, 3)` as its list commands print sizes: decimal
/// units, 3 significant digits ("1.98MB", "4.1kB", "0B").
pub fn human_size(n: f64) -> String {
    human_size_prec(n, 3)
}

/// Docker's `units.HumanSize` (4 significant digits), used by `system df`.
pub fn human_size4(n: f64) -> String {
    human_size_prec(n, 4)
}

fn human_size_prec(n: f64, prec: usize) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = if n > 0.0 { n } else { 0.0 };
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", sig(v, prec), units[i])
}

/// Docker's `units.BytesSize`: binary units ("1.5GiB"), used by stats.
pub fn bytes_size(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = if n > 0.0 { n } else { 0.0 };
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", sig(v, 4), units[i])
}

/// Go's `%.Ng` for 0 <= v < 1024: N significant digits, trailing zeros trimmed.
fn sig(v: f64, prec: usize) -> String {
    let int_digits = if v < 1.0 {
        1
    } else {
        (v.log10().floor() as usize) + 1
    };
    let decimals = prec.saturating_sub(int_digits);
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Docker's `units.HumanDuration` ("Less than a second", "5 minutes", "About an hour"...).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let m = s / 60;
    let h = m / 60;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".into()
    } else if m < 60 {
        format!("{m} minutes")
    } else if (s as f64 / 3600.0).round() == 1.0 {
        "About an hour".into()
    } else if h < 48 {
        format!("{h} hours")
    } else if h < 24 * 7 * 2 {
        format!("{} days", h / 24)
    } else if h < 24 * 30 * 2 {
        format!("{} weeks", h / 24 / 7)
    } else if h < 24 * 365 * 2 {
        format!("{} months", h / 24 / 30)
    } else {
        format!("{} years", h / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn contexts_print_as_go_marshals_them_and_plain_data_does_not() {
        let row =
            as_context(json!({"Ports": "0.0.0.0:80->80/tcp", "Tag": "<none>", "_labels": {}}));
        assert_eq!(
            context_json(&row).as_deref(),
            Some(r#"{"Ports":"0.0.0.0:80-\u003e80/tcp","Tag":"\u003cnone\u003e"}"#)
        );
        let t = Template::parse("{{json .}}|{{json .Ports}}").expect("template");
        assert_eq!(
            t.render(&row).expect("render"),
            r#"{"Ports":"0.0.0.0:80-\u003e80/tcp","Tag":"\u003cnone\u003e"}|"0.0.0.0:80->80/tcp""#
        );
        // Plain data (inspect's) is printed as it is.
        let t = Template::parse("{{json .}}").expect("template");
        assert_eq!(
            t.render(&json!({"a": "<&>"})).expect("render"),
            r#"{"a":"<&>"}"#
        );
        assert_eq!(go_json(&json!("a&b")), r#""a\u0026b""#);
    }

    use super::*;
    use serde_json::json;

    fn r(t: &str, v: Value) -> String {
        Template::parse(t).unwrap().render(&v).unwrap()
    }

    #[test]
    fn fields_and_nesting() {
        let v = json!({"Name": "/web", "State": {"Status": "running", "Pid": 42}, "N": 1.5});
        assert_eq!(r("{{.Name}}", v.clone()), "/web");
        assert_eq!(
            r("{{.State.Status}} {{.State.Pid}}", v.clone()),
            "running 42"
        );
        assert_eq!(r("{{.Missing}}", v.clone()), "<no value>");
        assert_eq!(r("x{{.N}}y", v.clone()), "x1.5y");
        assert_eq!(
            r("{{json .State}}", v.clone()),
            r#"{"Pid":42,"Status":"running"}"#
        );
        assert_eq!(
            r("{{.State | json}}", v.clone()),
            r#"{"Pid":42,"Status":"running"}"#
        );
        assert_eq!(r("{{.State}}", v), "map[Pid:42 Status:running]");
    }

    #[test]
    fn range_index_if() {
        let v = json!({"Args": ["a", "b"], "Labels": {"x": "1", "y": "2"},
                       "Net": {"bridge": {"IPAddress": "10.0.0.2"}}, "T": true, "E": ""});
        assert_eq!(r("{{range .Args}}[{{.}}]{{end}}", v.clone()), "[a][b]");
        assert_eq!(r("{{range .Nope}}x{{else}}none{{end}}", v.clone()), "none");
        assert_eq!(r(r#"{{index .Labels "y"}}"#, v.clone()), "2");
        assert_eq!(r("{{index .Args 1}}", v.clone()), "b");
        assert_eq!(
            r("{{range .Net}}{{.IPAddress}}{{end}}", v.clone()),
            "10.0.0.2"
        );
        assert_eq!(r("{{if .T}}yes{{else}}no{{end}}", v.clone()), "yes");
        assert_eq!(r("{{if .E}}yes{{else}}no{{end}}", v.clone()), "no");
        assert_eq!(r(r#"{{if eq .E ""}}empty{{end}}"#, v.clone()), "empty");
        assert_eq!(r(r#"{{join .Args ","}}"#, v.clone()), "a,b");
        assert_eq!(
            r("{{len .Args}} {{upper (index .Args 0)}}", v.clone()),
            "2 A"
        );
        assert_eq!(r("{{- .T -}}  ", v.clone()), "true");
        assert_eq!(r(r#"{{printf "%s-%d" "a" 3}}"#, v.clone()), "a-3");
        assert_eq!(
            r(
                "{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}",
                v.clone()
            ),
            "x=1;y=2;"
        );
        assert_eq!(
            r("{{range $i, $a := .Args}}{{$i}}{{$a}}{{end}}", v.clone()),
            "0a1b"
        );
        assert_eq!(
            r(
                "{{range $n, $c := .Net}}{{$n}}:{{$c.IPAddress}}{{end}}",
                v.clone()
            ),
            "bridge:10.0.0.2"
        );
        assert_eq!(
            r("{{$x := .T}}{{range .Args}}{{$x}}{{$.E}}{{end}}", v.clone()),
            "truetrue"
        );
        assert!(Template::parse("{{$u}}").unwrap().render(&v).is_err());
    }

    #[test]
    fn errors() {
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{range .A}}").is_err());
        assert!(Template::parse("{{end}}").is_err());
        let t = Template::parse("{{nosuch .A}}").unwrap();
        assert!(t.render(&json!({})).is_err());
        let t = Template::parse("{{.A.B}}").unwrap();
        assert!(t.render(&json!({"A": "str"})).is_err());
        let t = Template::parse("{{index .A 5}}").unwrap();
        assert!(t.render(&json!({"A": [1]})).is_err());
    }

    #[test]
    fn tables() {
        let f = ListFormat::new(
            None,
            "{{.ID}}\\t{{.Name}}",
            &[("ID", "CONTAINER ID"), ("Name", "NAMES")],
        )
        .unwrap();
        let out = f
            .render(&[
                json!({"ID": "abc", "Name": "x"}),
                json!({"ID": "defghijklmnop", "Name": "y"}),
            ])
            .unwrap();
        assert_eq!(
            out,
            "CONTAINER ID    NAMES\nabc             x\ndefghijklmnop   y\n"
        );
        let f =
            ListFormat::new(Some("table {{.Name}}\t{{.Size}}"), "", &[("Name", "NAMES")]).unwrap();
        let out = f.render(&[json!({"Name": "a", "Size": "1B"})]).unwrap();
        assert_eq!(out, "NAMES     SIZE\na         1B\n");
        let f = ListFormat::new(Some("{{.Name}}"), "", &[]).unwrap();
        assert_eq!(
            f.render(&[json!({"Name": "a"}), json!({"Name": "b"})])
                .unwrap(),
            "a\nb\n"
        );
        let f = ListFormat::new(Some("json"), "", &[]).unwrap();
        assert_eq!(
            f.render(&[json!({"A": 1, "_labels": {}})]).unwrap(),
            "{\"A\":1}\n"
        );
        let f = ListFormat::new(Some(r#"{{.Label "x"}}|{{.Label "nope"}}"#), "", &[]).unwrap();
        assert_eq!(f.render(&[json!({"_labels": {"x": "1"}})]).unwrap(), "1|\n");
    }

    #[test]
    fn units() {
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(-0.0), "0B");
        assert_eq!(human_size4(1234.0), "1.234kB");
        assert_eq!(human_size(1234.0), "1.23kB");
        assert_eq!(human_size(1_984_000.0), "1.98MB");
        assert_eq!(human_size(19_840.0), "19.8kB");
        assert_eq!(human_size(198_400.0), "198kB");
        assert_eq!(human_size(1_500_000.0), "1.5MB");
        assert_eq!(human_size(4_860_000_000.0), "4.86GB");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3700), "About an hour");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
