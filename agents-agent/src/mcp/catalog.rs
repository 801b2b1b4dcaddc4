//! Bundled MCP server definitions (seed 003 "MCP Connections": servers ship
//! with the app; the person connects one by giving its configuration).
//!
//! A definition says how to run or reach the server and which settings it
//! needs, each with a title, whether it is required or secret, and where
//! its value goes: into the command line or URL (`${key}`, never a
//! secret), an environment variable (stdio) or an HTTP header (HTTP).
//! Secrets travel only as environment or headers and are kept in the OS
//! credential store.
//!
//! The bundled definitions are `mcp-catalog.json` in this crate; a person's
//! own definitions are JSON files in `$COWORK_HOME/mcp/catalog.d/` (one
//! definition or an array per file; an id there replaces a bundled one).
//! Everything here is pure: [`resolve`] turns a definition and the values
//! given into a [`ServerSpec`] plus the secrets to store, or says what is
//! still missing (the connection flow's CONFIG_REQUIRED).

use super::{NewServer, ServerSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The definitions shipped with Cowork.
pub const BUNDLED: &str = include_str!("../../mcp-catalog.json");

/// Largest definition file read from `catalog.d`.
pub const MAX_FILE: u64 = 256 * 1024;

/// What kind of value a setting takes (checked before anything runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Any text.
    #[default]
    String,
    /// An `http://` or `https://` URL.
    Url,
    /// An absolute path.
    Path,
}

/// One setting of a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Its key (`--config KEY=VALUE`).
    pub key: String,
    /// What it is, for a person.
    pub title: String,
    /// More help, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Must be given (or have a default).
    #[serde(default)]
    pub required: bool,
    /// An API key or token: kept in the credential store, never shown.
    #[serde(default)]
    pub secret: bool,
    /// Used when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The value's kind.
    #[serde(default)]
    pub kind: Kind,
    /// The environment variable that gets the value (stdio servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The HTTP header that gets the value (HTTP servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Put before the value in the header or variable (e.g. `Bearer `).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value_prefix: String,
}

/// A bundled (or the person's own) server definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// Its id (`mcp add NAME --from ID`).
    pub id: String,
    /// Its name for a person.
    pub title: String,
    /// What it gives the agent.
    #[serde(default)]
    pub description: String,
    /// stdio: the program and arguments, with `${key}` placeholders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// HTTP: the endpoint, with `${key}` placeholders.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Its settings.
    #[serde(default)]
    pub config: Vec<Field>,
}

impl Definition {
    /// "stdio" or "http".
    pub fn transport(&self) -> &'static str {
        if self.url.is_empty() {
            "stdio"
        } else {
            "http"
        }
    }

    /// The settings as a JSON Schema object (what a config form is drawn
    /// from); secrets are marked `"writeOnly": true`.
    pub fn config_schema(&self) -> serde_json::Value {
        let mut props = serde_json::Map::new();
        for f in &self.config {
            let mut p = serde_json::json!({"type": "string", "title": f.title});
            if !f.description.is_empty() {
                p["description"] = f.description.clone().into();
            }
            if let Some(d) = &f.default {
                p["default"] = d.clone().into();
            }
            match f.kind {
                Kind::Url => p["format"] = "uri".into(),
                Kind::Path => p["format"] = "path".into(),
                Kind::String => {}
            }
            if f.secret {
                p["writeOnly"] = true.into();
            }
            props.insert(f.key.clone(), p);
        }
        let required: Vec<&str> = self
            .config
            .iter()
            .filter(|f| f.required)
            .map(|f| f.key.as_str())
            .collect();
        serde_json::json!({
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// Check the definition itself: one transport, placeholders that name
    /// non-secret settings, every secret delivered by env or header.
    pub fn validate(&self) -> Result<(), String> {
        let at = |m: String| format!("MCP definition {:?}: {m}", self.id);
        super::validate_name(&self.id).map_err(at)?;
        if self.command.is_empty() == self.url.is_empty() {
            return Err(at("give exactly one of command and url".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.config {
            if f.key.is_empty() || !f.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(at(format!("setting key {:?}: letters, digits, '_'", f.key)));
            }
            if !seen.insert(f.key.as_str()) {
                return Err(at(format!("setting {:?} twice", f.key)));
            }
            if f.env.is_some() && !self.url.is_empty() {
                return Err(at(format!("{}: env is for stdio servers", f.key)));
            }
            if f.header.is_some() && self.url.is_empty() {
                return Err(at(format!("{}: header is for HTTP servers", f.key)));
            }
            if f.secret && f.env.is_none() && f.header.is_none() {
                return Err(at(format!(
                    "secret {} must go to an env variable or a header",
                    f.key
                )));
            }
            if f.secret && f.default.is_some() {
                return Err(at(format!("secret {} cannot have a default", f.key)));
            }
        }
        for part in self.command.iter().chain(std::iter::once(&self.url)) {
            for key in placeholders(part)? {
                match self.config.iter().find(|f| f.key == key) {
                    None => return Err(at(format!("${{{key}}} names no setting"))),
                    Some(f) if f.secret => {
                        return Err(at(format!(
                            "secret {key} cannot go into the command line or URL (others could read it)"
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }
}

/// The `${key}` placeholders in `s`.
fn placeholders(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    Ok(out)
}

fn substitute(s: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = s.to_owned();
    for (k, v) in values {
        out = out.replace(&format!("${{{k}}}"), v);
    }
    out
}

/// Parse definitions: one object or an array of them, each validated.
pub fn parse(text: &str) -> Result<Vec<Definition>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let defs: Vec<Definition> = if v.is_array() {
        serde_json::from_value(v)
    } else {
        serde_json::from_value(v).map(|d| vec![d])
    }
    .map_err(|e| format!("not an MCP definition: {e}"))?;
    for d in &defs {
        d.validate()?;
    }
    Ok(defs)
}

/// The bundled definitions, then the person's own from `dir` (an id there
/// replaces a bundled one). A bad file is reported in the second value and
/// skipped, so one typo does not hide the whole catalog.
pub fn load(dir: &Path) -> (Vec<Definition>, Vec<String>) {
    let mut defs = parse(BUNDLED).unwrap_or_default();
    let mut problems = Vec::new();
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(r) => r
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    for path in files {
        let read = std::fs::metadata(&path)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if m.len() > MAX_FILE {
                    Err(format!("larger than {MAX_FILE} bytes"))
                } else {
                    std::fs::read_to_string(&path).map_err(|e| e.to_string())
                }
            })
            .and_then(|t| parse(&t));
        match read {
            Ok(mine) => {
                for d in mine {
                    defs.retain(|b| b.id != d.id);
                    defs.push(d);
                }
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    defs.sort_by(|a, b| a.id.cmp(&b.id));
    (defs, problems)
}

/// A definition turned into a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The server to run (placeholders of missing settings left empty).
    pub spec: ServerSpec,
    /// Secret values by env variable or header name (to the credential
    /// store).
    pub secrets: BTreeMap<String, String>,
    /// The non-secret values, to keep in cowork.db.
    pub config: BTreeMap<String, String>,
    /// Required settings still without a value (CONFIG_REQUIRED while not
    /// empty).
    pub missing: Vec<Field>,
}

/// Check `values` against `def` and build the server `name` from them.
pub fn resolve(
    def: &Definition,
    name: &str,
    values: &BTreeMap<String, String>,
    approval_policy: &str,
) -> Result<Resolved, String> {
    super::validate_name(name)?;
    if let Some(k) = values
        .keys()
        .find(|k| !def.config.iter().any(|f| &f.key == *k))
    {
        let known: Vec<&str> = def.config.iter().map(|f| f.key.as_str()).collect();
        return Err(format!(
            "{} has no setting {k:?}; its settings: {}",
            def.id,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    }
    let mut plain = BTreeMap::new();
    let mut out = NewServer {
        name: name.to_owned(),
        approval_policy: approval_policy.to_owned(),
        ..Default::default()
    };
    let mut secrets = BTreeMap::new();
    let mut missing = Vec::new();
    for f in &def.config {
        let value = values
            .get(&f.key)
            .filter(|v| !v.is_empty())
            .or(f.default.as_ref());
        let Some(value) = value else {
            if f.required {
                missing.push(f.clone());
            }
            plain.insert(f.key.clone(), String::new());
            continue;
        };
        check_kind(f, value)?;
        let delivered = format!("{}{value}", f.value_prefix);
        match (&f.env, &f.header, f.secret) {
            (Some(var), _, true) => {
                out.secret_env.push(var.clone());
                secrets.insert(var.clone(), delivered);
            }
            (_, Some(h), true) => {
                out.secret_headers.push(h.clone());
                secrets.insert(h.clone(), delivered);
            }
            (Some(var), _, false) => {
                out.env.insert(var.clone(), delivered);
            }
            (_, Some(h), false) => {
                out.headers.insert(h.clone(), delivered);
            }
            (None, None, _) => {}
        }
        if !f.secret {
            plain.insert(f.key.clone(), value.clone());
        }
    }
    out.command = def.command.iter().map(|a| substitute(a, &plain)).collect();
    out.url = substitute(&def.url, &plain);
    plain.retain(|_, v| !v.is_empty());
    let spec = if missing.is_empty() {
        super::build(out)?
    } else {
        // Not runnable yet: kept as given so `configure` can finish it.
        super::build_unchecked(out)
    };
    Ok(Resolved {
        spec,
        secrets,
        config: plain,
        missing,
    })
}

fn check_kind(f: &Field, value: &str) -> Result<(), String> {
    match f.kind {
        Kind::String => Ok(()),
        Kind::Url => match value.split_once("://") {
            Some(("http" | "https", rest)) if !rest.is_empty() => Ok(()),
            _ => Err(format!("{} must be an http(s) URL, not {value:?}", f.key)),
        },
        Kind::Path if Path::new(value).is_absolute() && !value.contains('\0') => Ok(()),
        Kind::Path => Err(format!("{} must be an absolute path, not {value:?}", f.key)),
    }
}

/// How to tell a person what is missing.
pub fn missing_text(name: &str, missing: &[Field]) -> String {
    let what: Vec<String> = missing
        .iter()
        .map(|f| format!("{} ({})", f.key, f.title))
        .collect();
    format!(
        "needs configuration: {}; run `coworkctl mcp configure {name} --config KEY=VALUE`{}",
        what.join(", "),
        if missing.iter().any(|f| f.secret) {
            " (a secret: `--config KEY` alone reads it from stdin)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::Transport;

    fn values(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_bundled_definition_is_valid_and_has_a_schema() {
        let defs = parse(BUNDLED).expect("bundled catalog");
        assert!(defs.len() >= 5, "{}", defs.len());
        let mut ids: Vec<&str> = defs.iter().map(|d| d.id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), defs.len(), "duplicate ids");
        for d in &defs {
            let s = d.config_schema();
            assert_eq!(s["type"], "object");
            assert_eq!(
                s["properties"].as_object().map(|p| p.len()),
                Some(d.config.len())
            );
        }
        // The ones with secrets keep them out of argv.
        let gh = defs.iter().find(|d| d.id == "github").expect("github");
        assert_eq!(gh.transport(), "http");
        assert!(gh.config.iter().any(|f| f.secret && f.header.is_some()));
    }

    fn clock() -> Definition {
        parse(
            r#"{"id":"clock","title":"Clock","command":["python3","-m","t","--tz","${tz}"],
            "config":[
              {"key":"tz","title":"Time zone","default":"UTC"},
              {"key":"token","title":"API token","secret":true,"required":true,"env":"CLOCK_TOKEN"},
              {"key":"root","title":"Root","kind":"path","env":"CLOCK_ROOT"}]}"#,
        )
        .unwrap()
        .remove(0)
    }

    #[test]
    fn resolve_fills_defaults_and_keeps_secrets_apart() {
        let r = resolve(&clock(), "c1", &values(&[("token", "s3cret")]), "").unwrap();
        assert!(r.missing.is_empty());
        let Transport::Stdio {
            command,
            env,
            secret_env,
        } = &r.spec.transport
        else {
            panic!("stdio")
        };
        assert_eq!(command, &["python3", "-m", "t", "--tz", "UTC"]);
        assert!(env.is_empty());
        assert_eq!(secret_env, &["CLOCK_TOKEN"]);
        assert_eq!(r.secrets, values(&[("CLOCK_TOKEN", "s3cret")]));
        // The secret is in no stored value.
        assert_eq!(r.config, values(&[("tz", "UTC")]));
        assert!(!format!("{:?}", r.spec).contains("s3cret"));
    }

    #[test]
    fn a_missing_required_setting_is_config_required_not_an_error() {
        let r = resolve(&clock(), "c1", &values(&[("tz", "Europe/Paris")]), "").unwrap();
        assert_eq!(r.missing.len(), 1);
        assert_eq!(r.missing[0].key, "token");
        let t = missing_text("c1", &r.missing);
        assert!(
            t.contains("token (API token)") && t.contains("stdin"),
            "{t}"
        );
        assert_eq!(r.config, values(&[("tz", "Europe/Paris")]));
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused() {
        let c = clock();
        let e = resolve(&c, "c", &values(&[("token", "x"), ("nope", "1")]), "").unwrap_err();
        assert!(
            e.contains("no setting \"nope\"") && e.contains("tz, token, root"),
            "{e}"
        );
        let e = resolve(&c, "c", &values(&[("token", "x"), ("root", "rel/dir")]), "").unwrap_err();
        assert!(e.contains("absolute path"), "{e}");
        assert!(resolve(&c, "../x", &values(&[("token", "x")]), "").is_err());
    }

    #[test]
    fn http_secrets_go_to_headers_with_their_prefix() {
        let d = parse(
            r#"{"id":"web","title":"Web","url":"https://example.com/${tenant}/mcp",
            "config":[{"key":"tenant","title":"Tenant","required":true},
              {"key":"token","title":"Token","secret":true,"required":true,
               "header":"Authorization","value_prefix":"Bearer "}]}"#,
        )
        .unwrap()
        .remove(0);
        let r = resolve(
            &d,
            "w",
            &values(&[("tenant", "acme"), ("token", "t0k")]),
            "",
        )
        .unwrap();
        let Transport::Http {
            url,
            secret_headers,
            ..
        } = &r.spec.transport
        else {
            panic!("http")
        };
        assert_eq!(url, "https://example.com/acme/mcp");
        assert_eq!(secret_headers, &["Authorization"]);
        assert_eq!(r.secrets, values(&[("Authorization", "Bearer t0k")]));
    }

    #[test]
    fn definitions_that_would_leak_or_cannot_run_are_refused() {
        for (bad, why) in [
            (r#"{"id":"a","title":"A"}"#, "exactly one"),
            (
                r#"{"id":"a","title":"A","command":["x","${k}"],"config":[{"key":"k","title":"K","secret":true,"env":"K"}]}"#,
                "command line",
            ),
            (
                r#"{"id":"a","title":"A","command":["x"],"config":[{"key":"k","title":"K","secret":true}]}"#,
                "env variable or a header",
            ),
            (
                r#"{"id":"a","title":"A","command":["x","${nope}"]}"#,
                "names no setting",
            ),
            (
                r#"{"id":"a","title":"A","url":"https://h","config":[{"key":"k","title":"K","env":"K"}]}"#,
                "env is for stdio",
            ),
            (
                r#"{"id":"../a","title":"A","command":["x"]}"#,
                "server name",
            ),
            (
                r#"{"id":"a","title":"A","command":["x"],"surprise":1}"#,
                "unknown field",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn own_definitions_replace_bundled_ones_and_bad_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("time.json"),
            r#"{"id":"time","title":"My time","command":["/opt/time"]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.json"), "{").unwrap();
        let (defs, problems) = load(dir.path());
        let time: Vec<_> = defs.iter().filter(|d| d.id == "time").collect();
        assert_eq!(time.len(), 1);
        assert_eq!(time[0].title, "My time");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("broken.json"), "{problems:?}");
    }
}
