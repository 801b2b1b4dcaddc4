//! The browser's approval facts (issue: "safety on facts, not names"):
//! what an action would really do — submit a form, navigate with a method
//! other than GET, type into a password or payment field, download a file,
//! reach an origin outside `[browser] allowed_origins`, run a script,
//! upload local files. An agent's action with any of these facts waits for
//! a person (agents-agent parks the call as `waiting_for_human`); a
//! person's own action runs and is logged. Pure: facts in, reasons out.

use std::fmt;

/// One fact about an action that needs a person's approval when an agent
/// takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// A click or key that submits a form.
    SubmitsForm {
        /// The form's method (GET, POST, ...).
        method: String,
        /// Where it submits to.
        action: String,
    },
    /// A page load that is not a GET (a POST form, a fetch-style navigation).
    NonGetNavigation {
        /// The method.
        method: String,
        /// The URL.
        url: String,
    },
    /// Typing into a password or payment field.
    SensitiveField {
        /// "password" or "payment".
        kind: String,
    },
    /// A file download.
    Download {
        /// The file's suggested name.
        file: String,
        /// Where it comes from.
        url: String,
    },
    /// A navigation (or a redirect, or a new tab) to an origin outside
    /// `allowed_origins`.
    OutsideOrigin {
        /// The URL.
        url: String,
    },
    /// An agent's own JavaScript.
    RunsScript,
    /// Files of this machine given to a page.
    UploadsFiles {
        /// How many.
        count: usize,
    },
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::SubmitsForm { method, action } => {
                write!(f, "submits a form ({method} {action})")
            }
            Fact::NonGetNavigation { method, url } => {
                write!(f, "a {method} navigation to {url}")
            }
            Fact::SensitiveField { kind } => write!(f, "types into a {kind} field"),
            Fact::Download { file, url } => write!(f, "downloads {file} from {url}"),
            Fact::OutsideOrigin { url } => {
                write!(f, "goes to {url}, outside [browser] allowed_origins")
            }
            Fact::RunsScript => f.write_str("runs the agent's own JavaScript in the page"),
            Fact::UploadsFiles { count } => {
                write!(f, "gives {count} local file(s) to the page")
            }
        }
    }
}

/// Who acts, and whether a person already said yes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gate {
    /// An agent's action (a person's own actions are not asked about).
    pub agent: bool,
    /// A person approved this action.
    pub approved: bool,
}

impl Gate {
    /// Whether facts stop this action (an agent's, not yet approved).
    pub fn checks(&self) -> bool {
        self.agent && !self.approved
    }

    /// The reasons `facts` wait for a person, in words; empty: go ahead.
    pub fn asks(&self, facts: &[Fact]) -> Vec<String> {
        if !self.checks() {
            return Vec::new();
        }
        facts.iter().map(|f| format!("browser: {f}")).collect()
    }
}

/// One entry of `allowed_origins`: `scheme://host[:port]`, where the host
/// may start with `*.` (any subdomain, and the domain itself), or `*` for
/// every origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    scheme: String,
    host: String,
    wildcard: bool,
    port: Option<u16>,
    any: bool,
}

impl OriginPattern {
    /// Parse one entry; a clear error names what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(Self {
                scheme: String::new(),
                host: String::new(),
                wildcard: false,
                port: None,
                any: true,
            });
        }
        let bad = || {
            format!("allowed_origins: {s:?} is not scheme://host[:port] (e.g. https://example.com, https://*.example.com, http://127.0.0.1:8080)")
        };
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        if scheme.is_empty() || rest.is_empty() || rest.contains('/') || rest.contains(' ') {
            return Err(bad());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
                (h, Some(p.parse::<u16>().map_err(|_| bad())?))
            }
            _ => (rest, None),
        };
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(h) => (true, h),
            None => (false, host),
        };
        if host.is_empty() || host.contains('*') {
            return Err(bad());
        }
        Ok(Self {
            scheme: scheme.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            wildcard,
            port,
            any: false,
        })
    }

    /// Whether `url`'s origin is this pattern's.
    pub fn matches(&self, url: &url::Url) -> bool {
        if self.any {
            return true;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host_ok =
            host == self.host || (self.wildcard && host.ends_with(&format!(".{}", self.host)));
        host_ok
            && url.scheme() == self.scheme
            && self.port.or_else(|| default_port(&self.scheme)) == url.port_or_known_default()
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// Whether a page at `url` may be reached without asking: `about:` pages
/// always may; a `blob:` URL when the origin it belongs to may; http(s)
/// when an entry of `allowed` matches. Everything else asks: `data:` (a
/// page the agent writes itself runs its script), `file:` (this
/// machine's files), the browser's own pages.
pub fn origin_allowed(allowed: &[OriginPattern], url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    match u.scheme() {
        "about" => true,
        "blob" => origin_allowed(allowed, u.path()),
        "http" | "https" => allowed.iter().any(|p| p.matches(&u)),
        _ => false,
    }
}

/// Parse every entry (config already checked them; a bad one is dropped).
pub fn patterns(entries: &[String]) -> Vec<OriginPattern> {
    entries
        .iter()
        .filter_map(|e| OriginPattern::parse(e).ok())
        .collect()
}

/// The facts of an outside origin at `url`, if it is one.
pub fn origin_fact(allowed: &[OriginPattern], url: &str) -> Option<Fact> {
    (!origin_allowed(allowed, url)).then(|| Fact::OutsideOrigin {
        url: url.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &[&str]) -> Vec<OriginPattern> {
        list.iter()
            .map(|s| OriginPattern::parse(s).unwrap())
            .collect()
    }

    #[test]
    fn origins_match_by_scheme_host_and_port() {
        let a = allowed(&["http://127.0.0.1:8080", "https://*.example.com"]);
        assert!(origin_allowed(&a, "http://127.0.0.1:8080/login?x=1"));
        assert!(!origin_allowed(&a, "http://127.0.0.1:8081/"));
        assert!(!origin_allowed(&a, "https://127.0.0.1:8080/"));
        assert!(origin_allowed(&a, "https://example.com/"));
        assert!(origin_allowed(&a, "https://a.b.example.com:443/"));
        assert!(!origin_allowed(&a, "https://example.com.evil.org/"));
        assert!(!origin_allowed(&a, "https://notexample.com/"));
        assert!(!origin_allowed(&a, "http://example.com/"));
        assert!(origin_allowed(&a, "about:blank"));
        assert!(!origin_allowed(&a, "data:text/html,hi"));
        assert!(!origin_allowed(&allowed(&["*"]), "file:///etc/passwd"));
        assert!(origin_allowed(&a, "blob:http://127.0.0.1:8080/4f1e"));
        assert!(!origin_allowed(&a, "blob:http://evil.org/4f1e"));
        assert!(!origin_allowed(&a, "chrome://settings"));
        assert!(!origin_allowed(&a, "not a url"));
        assert!(origin_allowed(&allowed(&["*"]), "https://anything.org/"));
        assert!(!origin_allowed(&[], "https://anything.org/"));
        assert!(origin_allowed(
            &allowed(&["http://localhost"]),
            "http://LOCALHOST:80/x"
        ));
        for bad in [
            "example.com",
            "https://",
            "https://a/b",
            "https://*",
            "http://h:port",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_an_agents_unapproved_action_is_asked_about() {
        let facts = [
            Fact::SubmitsForm {
                method: "POST".into(),
                action: "http://h/pay".into(),
            },
            Fact::SensitiveField {
                kind: "password".into(),
            },
        ];
        let agent = Gate {
            agent: true,
            approved: false,
        };
        assert_eq!(
            agent.asks(&facts),
            [
                "browser: submits a form (POST http://h/pay)",
                "browser: types into a password field"
            ]
        );
        assert!(agent.asks(&[]).is_empty());
        let approved = Gate {
            agent: true,
            approved: true,
        };
        assert!(approved.asks(&facts).is_empty());
        assert!(Gate::default().asks(&facts).is_empty());
        assert_eq!(
            origin_fact(&[], "https://x.org/").map(|f| f.to_string()),
            Some("goes to https://x.org/, outside [browser] allowed_origins".into())
        );
    }
}
