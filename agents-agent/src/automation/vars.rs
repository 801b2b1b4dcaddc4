//! Variable substitution in a step's config (seed 003 "Variable
//! substitution"), pure: `${step1.data.ticketId}`, `${items[0].title}`,
//! dot notation and brackets, walked through every string of a JSON value.
//! A string that is exactly one `${…}` becomes the value itself (a number
//! stays a number); inside longer text a value is written as text. An
//! unresolved reference is kept literally, so a partial resolution is
//! visible rather than silently empty.

use serde_json::Value;

/// One path segment: a key or an index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Parse `a.b[0].c` (also `a["b"]`); None when malformed.
fn parse_path(path: &str) -> Option<Vec<Seg>> {
    let mut segs = Vec::new();
    let mut cur = String::new();
    // Just after `]`: a `.` may follow with nothing before it.
    let mut closed = false;
    let mut chars = path.trim().chars().peekable();
    while let Some(c) = chars.next() {
        let was_closed = std::mem::replace(&mut closed, false);
        match c {
            '.' => {
                if cur.is_empty() && !was_closed {
                    return None;
                }
                if !cur.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut cur)));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut cur)));
                }
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some(']') => break,
                        Some(x) => inner.push(x),
                        None => return None,
                    }
                }
                let inner = inner.trim();
                if let Ok(i) = inner.parse::<usize>() {
                    segs.push(Seg::Index(i));
                } else {
                    let k = inner.trim_matches(|c| c == '"' || c == '\'');
                    if k.is_empty() {
                        return None;
                    }
                    segs.push(Seg::Key(k.to_owned()));
                }
                closed = true;
            }
            c if c.is_whitespace() => return None,
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        segs.push(Seg::Key(cur));
    }
    (!segs.is_empty()).then_some(segs)
}

/// The value at `path` in `vars`, if every segment resolves.
pub fn lookup<'a>(vars: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = vars;
    for seg in parse_path(path)? {
        v = match (seg, v) {
            (Seg::Key(k), Value::Object(m)) => m.get(&k)?,
            (Seg::Index(i), Value::Array(a)) => a.get(i)?,
            // `items.0` reads an array element too.
            (Seg::Key(k), Value::Array(a)) => a.get(k.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Substitute in one string.
pub fn substitute_str(s: &str, vars: &Value) -> Value {
    // Exactly one reference: the value itself, with its type.
    if let Some(inner) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        if !inner.contains("${") && !inner.contains('}') {
            return match lookup(vars, inner) {
                Some(v) => v.clone(),
                None => Value::String(s.to_owned()),
            };
        }
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let path = &after[..end];
                match lookup(vars, path) {
                    Some(Value::String(t)) => out.push_str(t),
                    Some(v) => out.push_str(&v.to_string()),
                    None => {
                        out.push_str("${");
                        out.push_str(path);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Value::String(out)
}

/// Substitute in every string of `v`, recursively (keys are left alone).
pub fn substitute(v: &Value, vars: &Value) -> Value {
    match v {
        Value::String(s) => substitute_str(s, vars),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, vars)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Value {
        json!({
            "step1": {"data": {"ticketId": 42, "title": "Printer"}},
            "items": [{"title": "first"}, {"title": "second"}],
            "name": "Ada",
        })
    }

    #[test]
    fn dots_and_brackets_resolve() {
        let v = vars();
        assert_eq!(substitute_str("${step1.data.ticketId}", &v), json!(42));
        assert_eq!(substitute_str("${items[0].title}", &v), json!("first"));
        assert_eq!(substitute_str("${items.1.title}", &v), json!("second"));
        assert_eq!(
            substitute_str("${step1[\"data\"].title}", &v),
            json!("Printer")
        );
    }

    #[test]
    fn inside_text_values_are_written_as_text() {
        let v = vars();
        assert_eq!(
            substitute_str("Ticket #${step1.data.ticketId} for ${name}", &v),
            json!("Ticket #42 for Ada")
        );
        assert_eq!(
            substitute_str("all: ${items}", &v),
            json!(r#"all: [{"title":"first"},{"title":"second"}]"#)
        );
    }

    #[test]
    fn unresolved_references_stay_literal() {
        let v = vars();
        assert_eq!(substitute_str("${nope.x}", &v), json!("${nope.x}"));
        assert_eq!(
            substitute_str("a ${items[9].title} b ${name}", &v),
            json!("a ${items[9].title} b Ada")
        );
        assert_eq!(substitute_str("open ${name", &v), json!("open ${name"));
        assert_eq!(substitute_str("${bad path}", &v), json!("${bad path}"));
    }

    #[test]
    fn every_string_of_a_config_is_walked() {
        let cfg =
            json!({"arguments": {"id": "${step1.data.ticketId}", "tags": ["${name}", 3]}, "n": 1});
        assert_eq!(
            substitute(&cfg, &vars()),
            json!({"arguments": {"id": 42, "tags": ["Ada", 3]}, "n": 1})
        );
    }
}
