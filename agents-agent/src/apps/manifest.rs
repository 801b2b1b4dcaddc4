//! An app's metadata (pure): `cowork.manifest.json` (seed 003's format, plus
//! `apiHosts`), else `package.json`, else the zip's name; the app id (a DNS
//! label, its origin's); the API hosts its pages may reach; and the
//! read-lane disclosure shown before install.

use serde_json::Value;

/// The longest id (a DNS label is at most 63 characters).
pub const MAX_ID: usize = 40;
/// The most API hosts one app may declare.
pub const MAX_HOSTS: usize = 16;
/// The Gemini API's host: an AI Studio export (it depends on
/// `@google/genai`) calls it with its own key, so it is allowed without a
/// manifest.
pub const GEMINI_HOST: &str = "generativelanguage.googleapis.com";

/// What an app says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Shown name.
    pub name: String,
    /// One line on what it does.
    pub description: String,
    /// A category (CRM, Writing, ...).
    pub category: String,
    /// What it uses the person's data for, in its own words.
    pub data_use_description: String,
    /// External API hosts its pages may reach (https only).
    pub api_hosts: Vec<String>,
    /// `cowork.manifest.json`, `package.json` or "" (named after the zip).
    pub source: String,
    /// Its version ("" when it gives none).
    pub version: String,
}

/// Why metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not an object.
    #[error("{file} is not a JSON object: {why}")]
    NotJson {
        /// The file.
        file: String,
        /// The parser's words.
        why: String,
    },
    /// A field of the wrong type or length.
    #[error("{file}: {why}")]
    Field {
        /// The file.
        file: String,
        /// What is wrong.
        why: String,
    },
}

fn text(v: &Value, key: &str, file: &str, max: usize) -> Result<String, ManifestError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if s.chars().any(char::is_control) => Err(ManifestError::Field {
            file: file.into(),
            why: format!(
                "{key} holds control characters (they could rewrite what you are asked to accept)"
            ),
        }),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(s.trim().to_owned()),
        Some(Value::String(_)) => Err(ManifestError::Field {
            file: file.into(),
            why: format!("{key} is longer than {max} characters"),
        }),
        Some(_) => Err(ManifestError::Field {
            file: file.into(),
            why: format!("{key} is not a string"),
        }),
    }
}

fn object(bytes: &[u8], file: &str) -> Result<Value, ManifestError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ManifestError::NotJson {
        file: file.into(),
        why: e.to_string(),
    })?;
    if !v.is_object() {
        return Err(ManifestError::NotJson {
            file: file.into(),
            why: "it is not an object".into(),
        });
    }
    Ok(v)
}

/// Whether `package.json` depends on `@google/genai` (an AI Studio export).
fn uses_gemini(pkg: &Value) -> bool {
    ["dependencies", "devDependencies"]
        .iter()
        .any(|k| pkg.get(k).and_then(|d| d.get("@google/genai")).is_some())
}

/// Read the metadata: `cowork.manifest.json` first, `package.json` for what
/// it leaves out, the zip's name last. An app that depends on
/// `@google/genai` may reach the Gemini API.
pub fn read(
    manifest: Option<&[u8]>,
    package: Option<&[u8]>,
    zip_name: &str,
) -> Result<Manifest, ManifestError> {
    let mut m = Manifest::default();
    let pkg = package.map(|b| object(b, "package.json")).transpose()?;
    if let Some(b) = manifest {
        let f = "cowork.manifest.json";
        let v = object(b, f)?;
        m.name = text(&v, "name", f, 80)?;
        m.description = text(&v, "description", f, 500)?;
        m.category = text(&v, "category", f, 40)?;
        m.data_use_description = text(&v, "dataUseDescription", f, 1000)?;
        m.version = text(&v, "version", f, 40)?;
        match v.get("apiHosts") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => {
                for h in a {
                    let h = h.as_str().ok_or_else(|| ManifestError::Field {
                        file: f.into(),
                        why: "apiHosts holds a value that is not a string".into(),
                    })?;
                    m.api_hosts
                        .push(api_host(h).map_err(|why| ManifestError::Field {
                            file: f.into(),
                            why,
                        })?);
                }
            }
            Some(_) => {
                return Err(ManifestError::Field {
                    file: f.into(),
                    why: "apiHosts is not a list of host names".into(),
                })
            }
        }
        m.source = f.into();
    }
    if let Some(p) = &pkg {
        let f = "package.json";
        if m.name.is_empty() {
            m.name = text(p, "name", f, 214)?;
        }
        if m.description.is_empty() {
            m.description = text(p, "description", f, 500)?;
        }
        if m.version.is_empty() {
            m.version = text(p, "version", f, 40)?;
        }
        if m.source.is_empty() {
            m.source = f.into();
        }
        if uses_gemini(p) && !m.api_hosts.iter().any(|h| h == GEMINI_HOST) {
            m.api_hosts.push(GEMINI_HOST.into());
        }
    }
    if m.name.is_empty() {
        let stem: String = zip_name
            .rsplit('/')
            .next()
            .unwrap_or("")
            .trim_end_matches(".zip")
            .chars()
            .filter(|c| !c.is_control())
            .take(80)
            .collect();
        m.name = if stem.is_empty() { "app".into() } else { stem };
    }
    m.api_hosts.sort();
    m.api_hosts.dedup();
    if m.api_hosts.len() > MAX_HOSTS {
        return Err(ManifestError::Field {
            file: m.source.clone(),
            why: format!("more than {MAX_HOSTS} apiHosts"),
        });
    }
    Ok(m)
}

/// A declared API host, checked: a public DNS name (an optional leading
/// `*.`), no scheme, port or path; never loopback, `localhost` or an IP
/// literal, so an app's pages cannot reach the gateway or a local engine.
pub fn api_host(h: &str) -> Result<String, String> {
    let h = h.trim().to_ascii_lowercase();
    let h = h
        .strip_prefix("https://")
        .unwrap_or(&h)
        .trim_end_matches('/');
    let bare = h.strip_prefix("*.").unwrap_or(h);
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = bare.split('.').collect();
    if bare.len() > 253 || labels.len() < 2 || !labels.iter().all(|l| ok_label(l)) {
        return Err(format!(
            "{h:?} is not a host name (give names like api.example.com, without scheme or path)"
        ));
    }
    let tld = labels.last().copied().unwrap_or("");
    if tld.chars().all(|c| c.is_ascii_digit())
        || matches!(tld, "localhost" | "local" | "internal" | "lan" | "home")
    {
        return Err(format!(
            "{h:?} is a local address: apps reach only public APIs"
        ));
    }
    Ok(h.to_owned())
}

/// An app id from its name: a lowercase DNS label, `suffix` (random hex)
/// appended so two installs of one app are two origins.
pub fn app_id(name: &str, suffix: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let room = MAX_ID.saturating_sub(suffix.len() + 1);
    let slug: String = slug.chars().take(room).collect();
    let slug = slug.trim_matches('-');
    if slug.is_empty() {
        format!("app-{suffix}")
    } else {
        format!("{slug}-{suffix}")
    }
}

/// Whether `id` is an app id's shape (what a Host header must carry).
pub fn is_app_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

/// The read-lane disclosure (seed 003 "App Access Controls"): what the app
/// will be able to read, shown before install and confirmed.
pub fn disclosure(m: &Manifest) -> String {
    let mut out = format!(
        "{} will be able to read, through Cowork's read lane (window.cowork):\n\
         \x20 - your active window and recent activity: app names, window titles and URLs\n\
         \x20 - the local time\n\
         \x20 - your profile and preferences (what `coworkctl memory profile` shows)\n\
         \x20 - its own conversations (chats started with --app), never other conversations\n\
         \x20 - semantic search over your activity (window titles and URLs; never typed text or clipboard)\n\
         It cannot call tools, reach MCP servers, models or API keys, or read other apps' data.\n",
        m.name
    );
    if m.api_hosts.is_empty() {
        out.push_str("Its scripts may send requests to no other server.\n");
    } else {
        out.push_str(&format!(
            "Its scripts may send requests to: {} (with keys of its own), and no other server.\n",
            m.api_hosts.join(", ")
        ));
    }
    if !m.data_use_description.is_empty() {
        out.push_str(&format!(
            "What it says it does with your data: {}\n",
            m.data_use_description
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_comes_first_then_package_json_then_the_zip_name() {
        let m = read(
            Some(br#"{"name":"Zendesk Dashboard","category":"CRM","dataUseDescription":"prioritize tickets","apiHosts":["api.zendesk.com"]}"#),
            Some(br#"{"name":"zd","description":"from package","version":"1.2.0","dependencies":{"@google/genai":"^1"}}"#),
            "x.zip",
        )
        .unwrap();
        assert_eq!(m.name, "Zendesk Dashboard");
        assert_eq!(m.description, "from package");
        assert_eq!(m.category, "CRM");
        assert_eq!(m.version, "1.2.0");
        assert_eq!(m.source, "cowork.manifest.json");
        assert_eq!(m.api_hosts, vec!["api.zendesk.com", GEMINI_HOST]);
        let m = read(None, None, "/tmp/My Notes.zip").unwrap();
        assert_eq!((m.name.as_str(), m.source.as_str()), ("My Notes", ""));
        assert!(m.api_hosts.is_empty());
    }

    #[test]
    fn bad_metadata_is_refused_with_the_file_named() {
        let e = read(Some(b"[1]"), None, "a.zip").unwrap_err();
        assert!(e.to_string().contains("cowork.manifest.json"), "{e}");
        let e = read(Some(br#"{"name": 3}"#), None, "a.zip").unwrap_err();
        assert!(e.to_string().contains("name is not a string"), "{e}");
        let e = read(Some(b"{\"name\": \"Notes\\u001b[2K\"}"), None, "a.zip").unwrap_err();
        assert!(e.to_string().contains("control characters"), "{e}");
        assert_eq!(read(None, None, "a\u{1b}[2Kb.zip").unwrap().name, "a[2Kb");
        let e = read(None, Some(b"{"), "a.zip").unwrap_err();
        assert!(e.to_string().contains("package.json"), "{e}");
    }

    #[test]
    fn api_hosts_are_public_names_only() {
        assert_eq!(
            api_host("https://API.example.com/").unwrap(),
            "api.example.com"
        );
        assert_eq!(api_host("*.example.com").unwrap(), "*.example.com");
        for bad in [
            "localhost",
            "127.0.0.1",
            "x.apps.localhost",
            "http://evil.com:80/x",
            "a b.com",
            "com",
            "printer.local",
            "10.0.0.1",
            "",
        ] {
            assert!(api_host(bad).is_err(), "{bad}");
        }
        let e = read(Some(br#"{"apiHosts":["127.0.0.1"]}"#), None, "a.zip").unwrap_err();
        assert!(e.to_string().contains("local address"), "{e}");
    }

    #[test]
    fn ids_are_dns_labels() {
        assert_eq!(
            app_id("Zendesk Dashboard!", "3f9a1c"),
            "zendesk-dashboard-3f9a1c"
        );
        assert_eq!(app_id("日本", "00aa11"), "app-00aa11");
        let long = app_id(&"x".repeat(200), "abcdef");
        assert!(long.len() <= MAX_ID && is_app_id(&long), "{long}");
        for id in ["zendesk-dashboard-3f9a1c", "a1"] {
            assert!(is_app_id(id));
        }
        for id in ["", "-a", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_app_id(id), "{id}");
        }
    }

    #[test]
    fn the_disclosure_names_what_can_be_read_and_where_pages_connect() {
        let m = Manifest {
            name: "Notes".into(),
            api_hosts: vec![GEMINI_HOST.into()],
            data_use_description: "summaries".into(),
            ..Default::default()
        };
        let d = disclosure(&m);
        for want in [
            "active window",
            "profile",
            "its own conversations",
            GEMINI_HOST,
            "summaries",
            "cannot call tools",
        ] {
            assert!(d.contains(want), "{want}: {d}");
        }
    }
}
