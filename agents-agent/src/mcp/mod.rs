//! MCP servers (seed 003 "MCP Connections"): registered in `mcp_servers`,
//! reached with rmcp over stdio (a child process in its own process group,
//! with a lockfile so a crash leaves no orphan) or streamable HTTP.
//!
//! This module holds the pure parts: server specs and their validation,
//! the status lifecycle and the connection flow's states. `store` is the
//! SQL, `manager` the connections and calls, `service` the gRPC adapter.

pub mod catalog;
pub mod manager;
pub mod service;
pub mod store;

use std::collections::BTreeMap;

/// Longest server name.
pub const MAX_NAME: usize = 64;

/// How a server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A child process speaking JSON-RPC on stdin/stdout.
    Stdio {
        /// Program and arguments.
        command: Vec<String>,
        /// Extra environment (not secrets).
        env: BTreeMap<String, String>,
        /// Names of environment variables whose values live in the OS
        /// credential store.
        secret_env: Vec<String>,
    },
    /// Streamable HTTP at this URL.
    Http {
        /// The endpoint.
        url: String,
        /// Extra headers sent with every request (not secrets).
        headers: BTreeMap<String, String>,
        /// Names of headers whose values (tokens, API keys) live in the OS
        /// credential store.
        secret_headers: Vec<String>,
    },
}

impl Transport {
    /// "stdio" or "http".
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Stdio { .. } => "stdio",
            Transport::Http { .. } => "http",
        }
    }
}

/// A registered server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Its name (the `server` part of `server/tool`).
    pub name: String,
    /// How to reach it.
    pub transport: Transport,
    /// Approval policy phase 4.
    pub approval_policy: ServerPolicy,
    /// Whether it should be connected.
    pub enabled: bool,
}

/// A server's own approval policy (phase 4 of the tool approval policy;
/// `mcp add --approval-policy`, kept in its `mcp_servers` row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerPolicy {
    /// No policy of its own: later phases decide.
    #[default]
    Default,
    /// Run its tools (after phases 1–3).
    Auto,
    /// Ask for each of its tools.
    Manual,
}

impl ServerPolicy {
    /// "default", "auto" or "manual".
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "default" => Some(Self::Default),
            "auto" => Some(Self::Auto),
            "manual" => Some(Self::Manual),
            _ => None,
        }
    }

    /// The name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Auto => "auto",
            Self::Manual => "manual",
        }
    }
}

/// The MCPClient status lifecycle: starting → running → stopped (turned
/// off) or error (connection lost), error → starting (reconnect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Connecting.
    Starting,
    /// Connected, tools available.
    Running,
    /// Turned off by the person.
    Stopped,
    /// Failed; the error says why.
    Error,
}

impl Status {
    /// The name shown and stored.
    pub fn name(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Error => "error",
        }
    }
}

/// The connection flow's steps, persisted so a restart shows where a
/// connection stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// A server was picked.
    SelectService,
    /// Waiting for configuration (keys, URLs).
    ConfigRequired,
    /// Checking credentials.
    Authenticating,
    /// Starting the server and listing its tools.
    StartingServer,
    /// Saving the working configuration.
    SavingConfig,
    /// Connected.
    Connected,
}

impl ConnectionState {
    /// The name stored and shown (the seed's).
    pub fn name(self) -> &'static str {
        match self {
            Self::SelectService => "SELECT_SERVICE",
            Self::ConfigRequired => "CONFIG_REQUIRED",
            Self::Authenticating => "AUTHENTICATING",
            Self::StartingServer => "STARTING_SERVER",
            Self::SavingConfig => "SAVING_CONFIG",
            Self::Connected => "CONNECTED",
        }
    }
}

/// Check a server name: 1–64 of `a-z A-Z 0-9 _ - .`, not starting with a
/// dot (it names lockfiles and prefixes tool ids).
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("a server name has 1 to {MAX_NAME} characters"));
    }
    if name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "server name {name:?}: use letters, digits, '_', '-' and '.' (not first)"
        ));
    }
    Ok(())
}

/// Headers the streamable-HTTP transport sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "host",
];

/// What a person gives to register a server: an argv (stdio) or a URL
/// (HTTP), exactly one of them, and what goes with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewServer {
    /// Its name.
    pub name: String,
    /// stdio: the program and its arguments.
    pub command: Vec<String>,
    /// HTTP: the endpoint.
    pub url: String,
    /// stdio: extra environment (not secrets).
    pub env: BTreeMap<String, String>,
    /// stdio: names of secret environment variables.
    pub secret_env: Vec<String>,
    /// HTTP: extra headers (not secrets).
    pub headers: BTreeMap<String, String>,
    /// HTTP: names of secret headers.
    pub secret_headers: Vec<String>,
    /// "default", "auto" or "manual" ("" is default).
    pub approval_policy: String,
}

/// Build a spec from what a person gave, checking all of it.
pub fn build(n: NewServer) -> Result<ServerSpec, String> {
    validate_name(&n.name)?;
    ServerPolicy::parse(&n.approval_policy).ok_or_else(|| {
        format!(
            "approval policy must be default, auto or manual, not {:?}",
            n.approval_policy
        )
    })?;
    match (n.command.is_empty(), n.url.is_empty()) {
        (false, true) => {
            if n.command[0].trim().is_empty() || n.command.iter().any(|a| a.contains('\0')) {
                return Err("the command must name a program (and contain no NUL bytes)".into());
            }
            if let Some(k) =
                n.env.keys().chain(n.secret_env.iter()).find(|k| {
                    k.is_empty() || k.contains('=') || k.contains('\0') || k.contains('/')
                })
            {
                return Err(format!("bad environment variable name {k:?}"));
            }
            if !n.headers.is_empty() || !n.secret_headers.is_empty() {
                return Err("headers are for HTTP servers (--url)".into());
            }
        }
        (true, false) => {
            if !n.env.is_empty() || !n.secret_env.is_empty() {
                return Err("environment variables are for stdio servers".into());
            }
            let u: http::Uri = n
                .url
                .parse()
                .map_err(|e| format!("bad URL {}: {e}", n.url))?;
            if !matches!(u.scheme_str(), Some("http" | "https")) || u.host().is_none() {
                return Err(format!(
                    "{}: an MCP URL is http:// or https:// with a host",
                    n.url
                ));
            }
            for h in n.headers.keys().chain(n.secret_headers.iter()) {
                http::HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| format!("bad header name {h:?}"))?;
                if RESERVED_HEADERS.iter().any(|r| h.eq_ignore_ascii_case(r)) {
                    return Err(format!("{h} is set by the MCP transport itself"));
                }
            }
            for (h, v) in &n.headers {
                http::HeaderValue::from_str(v).map_err(|_| {
                    format!("header {h}: the value has characters a header cannot carry")
                })?;
            }
            if !n.secret_headers.is_empty() {
                crate::llm::providers::check_base_url(&n.url)?;
            }
        }
        (false, false) => return Err("give a command or a URL, not both".into()),
        (true, true) => return Err("give a command (after --) or --url".into()),
    }
    Ok(build_unchecked(n))
}

/// What `mcp add` asked for, as it came: a bundled server (`catalog_id`
/// and its `config`), or one by command or URL with its environment,
/// headers and secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddRequest {
    /// The server's name.
    pub name: String,
    /// A bundled definition's id ("" for a server by command or URL).
    pub catalog_id: String,
    /// A bundled server's settings.
    pub config: BTreeMap<String, String>,
    /// stdio: the program and its arguments.
    pub command: Vec<String>,
    /// HTTP: the endpoint.
    pub url: String,
    /// stdio: extra environment (not secrets).
    pub env: BTreeMap<String, String>,
    /// HTTP: extra headers (not secrets).
    pub headers: BTreeMap<String, String>,
    /// stdio: secret variables and their values.
    pub secret_env: BTreeMap<String, String>,
    /// HTTP: secret headers and their values.
    pub secret_headers: BTreeMap<String, String>,
    /// "default", "auto" or "manual".
    pub approval_policy: String,
}

/// How a server is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addition {
    /// From a bundled definition.
    Bundled {
        /// The server's name.
        name: String,
        /// The definition's id.
        catalog_id: String,
        /// Its settings.
        config: BTreeMap<String, String>,
        /// "default", "auto" or "manual".
        approval_policy: String,
    },
    /// By command or URL: the checked spec and the secrets' values.
    Own {
        /// The server.
        spec: ServerSpec,
        /// Values of its secret variables or headers, by name.
        secrets: BTreeMap<String, String>,
    },
}

/// Check what `mcp add` asked for and say how the server is added.
pub fn addition(r: AddRequest) -> Result<Addition, String> {
    if !r.catalog_id.is_empty() {
        if !r.command.is_empty() || !r.url.is_empty() {
            return Err(
                "a bundled server is run as its definition says: give no command or URL".into(),
            );
        }
        return Ok(Addition::Bundled {
            name: r.name,
            catalog_id: r.catalog_id,
            config: r.config,
            approval_policy: r.approval_policy,
        });
    }
    if !r.config.is_empty() {
        return Err("settings (--config) are for bundled servers (--from ID)".into());
    }
    let secret_env: Vec<String> = r
        .secret_env
        .keys()
        .filter(|k| !r.secret_headers.contains_key(*k))
        .cloned()
        .collect();
    let secret_headers: Vec<String> = r.secret_headers.keys().cloned().collect();
    let secrets: BTreeMap<String, String> =
        r.secret_env.into_iter().chain(r.secret_headers).collect();
    let spec = build(NewServer {
        name: r.name,
        command: r.command,
        url: r.url,
        env: r.env,
        secret_env,
        headers: r.headers,
        secret_headers,
        approval_policy: r.approval_policy,
    })?;
    Ok(Addition::Own { spec, secrets })
}

/// A tool call's arguments from their JSON text ("" is no arguments).
pub fn call_arguments(json: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    if json.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err("--args must be a JSON object".into()),
        Err(e) => Err(format!("--args is not JSON: {e}")),
    }
}

/// The spec as given, unchecked (a bundled server still waiting for its
/// configuration is stored like this and never run).
pub fn build_unchecked(n: NewServer) -> ServerSpec {
    let transport = if n.url.is_empty() {
        Transport::Stdio {
            command: n.command,
            env: n.env,
            secret_env: n.secret_env,
        }
    } else {
        Transport::Http {
            url: n.url,
            headers: n.headers,
            secret_headers: n.secret_headers,
        }
    };
    ServerSpec {
        name: n.name,
        transport,
        approval_policy: ServerPolicy::parse(&n.approval_policy).unwrap_or_default(),
        enabled: true,
    }
}

/// [`build`] for the common cases: an argv or a URL, with plain env.
pub fn spec(
    name: &str,
    command: Vec<String>,
    url: &str,
    env: BTreeMap<String, String>,
    approval_policy: &str,
) -> Result<ServerSpec, String> {
    build(NewServer {
        name: name.to_owned(),
        command,
        url: url.to_owned(),
        env,
        approval_policy: approval_policy.to_owned(),
        ..Default::default()
    })
}

impl ServerSpec {
    /// The names of this server's secrets (env variables or headers).
    pub fn secret_names(&self) -> &[String] {
        match &self.transport {
            Transport::Stdio { secret_env, .. } => secret_env,
            Transport::Http { secret_headers, .. } => secret_headers,
        }
    }
}

/// The credential-store name of a server's secret (an environment
/// variable or a header).
pub fn secret_name(server: &str, var: &str) -> String {
    format!("mcp/{server}/{var}")
}

/// The lockfile stem of a stdio server: `mcp-<sha256(name)[..16]>`.
pub fn lock_stem(name: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(name.as_bytes());
    let hex: String = h.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("mcp-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_specs() {
        for ok in ["time", "server-everything", "a.b_c"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "../x", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        let s = spec(
            "time",
            vec!["uvx".into(), "mcp-server-time".into()],
            "",
            BTreeMap::new(),
            "",
        )
        .unwrap();
        assert_eq!(s.transport.kind(), "stdio");
        let h = spec(
            "e",
            vec![],
            "http://127.0.0.1:3001/mcp",
            BTreeMap::new(),
            "auto",
        )
        .unwrap();
        assert_eq!(h.transport.kind(), "http");
        assert_eq!(h.approval_policy, ServerPolicy::Auto);
        assert!(spec("e", vec![], "", BTreeMap::new(), "").is_err());
        assert!(spec("e", vec!["x".into()], "http://a", BTreeMap::new(), "").is_err());
        assert!(spec("e", vec![], "file:///etc/passwd", BTreeMap::new(), "").is_err());
        assert!(spec("e", vec!["x".into()], "", BTreeMap::new(), "sometimes").is_err());
        let env = [("A=B".to_string(), "1".to_string())].into_iter().collect();
        assert!(spec("e", vec!["x".into()], "", env, "").is_err());
        let http = |url: &str, secret: &str, header: (&str, &str)| {
            build(NewServer {
                name: "w".into(),
                url: url.into(),
                secret_headers: vec![secret.into()],
                headers: [(header.0.to_string(), header.1.to_string())].into(),
                ..Default::default()
            })
        };
        assert!(http("https://mcp.example.com/", "Authorization", ("X-Org", "1")).is_ok());
        assert!(http("http://127.0.0.1:9/mcp", "Authorization", ("X-Org", "1")).is_ok());
        // A token never goes over plain http off this machine.
        let e = http("http://mcp.example.com/", "Authorization", ("X-Org", "1")).unwrap_err();
        assert!(e.contains("only sent over https"), "{e}");
        assert!(http("https://h/", "Bad Header", ("X-Org", "1")).is_err());
        assert!(http("https://h/", "Authorization", ("X-Org", "a\r\nInjected: 1")).is_err());
        assert!(build(NewServer {
            name: "s".into(),
            command: vec!["x".into()],
            headers: [("A".to_string(), "b".to_string())].into(),
            ..Default::default()
        })
        .is_err());
        assert_eq!(lock_stem("time"), lock_stem("time"));
        assert_ne!(lock_stem("time"), lock_stem("time2"));
        assert!(lock_stem("../../x").starts_with("mcp-") && !lock_stem("../../x").contains('/'));
    }

    #[test]
    fn an_addition_is_bundled_or_checked_and_its_secrets_split() {
        let bundled = addition(AddRequest {
            name: "t".into(),
            catalog_id: "time".into(),
            config: BTreeMap::from([("timezone".into(), "UTC".into())]),
            ..Default::default()
        })
        .unwrap();
        assert!(
            matches!(bundled, Addition::Bundled { ref catalog_id, .. } if catalog_id == "time")
        );
        let both = AddRequest {
            name: "t".into(),
            catalog_id: "time".into(),
            command: vec!["x".into()],
            ..Default::default()
        };
        assert!(addition(both)
            .unwrap_err()
            .contains("give no command or URL"));
        let stray = AddRequest {
            name: "t".into(),
            command: vec!["x".into()],
            config: BTreeMap::from([("k".into(), "v".into())]),
            ..Default::default()
        };
        assert!(addition(stray).unwrap_err().contains("--config"));
        let own = addition(AddRequest {
            name: "gh".into(),
            command: vec!["server".into()],
            secret_env: BTreeMap::from([("TOKEN".into(), "s3cret".into())]),
            ..Default::default()
        })
        .unwrap();
        let Addition::Own { spec, secrets } = own else {
            panic!("by command")
        };
        assert_eq!(spec.secret_names(), vec!["TOKEN"]);
        assert_eq!(secrets.get("TOKEN").map(String::as_str), Some("s3cret"));
    }

    #[test]
    fn call_arguments_are_a_json_object() {
        assert!(call_arguments("").unwrap().is_empty());
        assert_eq!(call_arguments("{\"a\": 1}").unwrap()["a"], 1);
        assert_eq!(
            call_arguments("[1]").unwrap_err(),
            "--args must be a JSON object"
        );
        assert!(call_arguments("{")
            .unwrap_err()
            .starts_with("--args is not JSON"));
    }
}
