//! Local engine detection (seed 004, "Local LLM engines"), the pure part:
//! the engine registry, the local-host rule that is also the SSRF guard,
//! health URLs, candidate instances from config, default ports and cron
//! companions (+1), URL overrides, main/cron grouping, and model lists
//! parsed from both API families. The probing itself is I/O and lives
//! beside it.

/// How an engine lists its models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFamily {
    /// Ollama: `GET /api/tags` → `{"models":[{"name":..}]}`.
    Ollama,
    /// OpenAI-compatible: `GET <base>/models` → `{"data":[{"id":..}]}`.
    OpenAi,
}

/// A known engine and where it listens by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSpec {
    /// Provider id prefix, e.g. "ollama".
    pub id: &'static str,
    /// Human name.
    pub label: &'static str,
    /// Probe family.
    pub api: ApiFamily,
    /// Default port.
    pub default_port: u16,
    /// Path of the API base ("" or "/v1").
    pub base_path: &'static str,
}

/// Engines probed on their default ports.
pub const KNOWN_ENGINES: &[EngineSpec] = &[
    EngineSpec {
        id: "ollama",
        label: "Ollama",
        api: ApiFamily::Ollama,
        default_port: 11434,
        base_path: "",
    },
    EngineSpec {
        id: "lmstudio",
        label: "LM Studio",
        api: ApiFamily::OpenAi,
        default_port: 1234,
        base_path: "/v1",
    },
    EngineSpec {
        id: "vllm",
        label: "vLLM",
        api: ApiFamily::OpenAi,
        default_port: 8000,
        base_path: "/v1",
    },
    EngineSpec {
        id: "llamacpp",
        label: "llama.cpp / LocalAI",
        api: ApiFamily::OpenAi,
        default_port: 8080,
        base_path: "/v1",
    },
    EngineSpec {
        id: "jan",
        label: "Jan",
        api: ApiFamily::OpenAi,
        default_port: 1337,
        base_path: "/v1",
    },
    EngineSpec {
        id: "koboldcpp",
        label: "KoboldCpp",
        api: ApiFamily::OpenAi,
        default_port: 5001,
        base_path: "/v1",
    },
];

/// The cron companion of an engine listens one port up
/// (Ollama's 11434 → 11435 convention, for every engine).
pub const CRON_PORT_OFFSET: u16 = 1;

pub use cowork_proto::net::{host_port, is_local_host, is_loopback_host};

/// Is `url` an http(s) URL to a local or LAN host?
pub fn is_probe_allowed(url: &str) -> bool {
    cowork_proto::net::is_local_url(url)
}

/// The URL that answers whether the engine at `base_url` is up and lists
/// its models.
pub fn health_url(base_url: &str, api: ApiFamily) -> String {
    let base = base_url.trim_end_matches('/');
    match api {
        ApiFamily::Ollama => format!("{base}/api/tags"),
        ApiFamily::OpenAi => format!("{base}/models"),
    }
}

/// Model ids from a model-list body of either family (Ollama
/// `models[].name`, OpenAI `data[].id`).
pub fn parse_model_ids(body: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("model list is not JSON: {e}"))?;
    let (list, key) = if let Some(l) = v.get("models").and_then(|m| m.as_array()) {
        (l, "name")
    } else if let Some(l) = v.get("data").and_then(|m| m.as_array()) {
        (l, "id")
    } else {
        return Err("model list has neither `models` (Ollama) nor `data` (OpenAI)".into());
    };
    Ok(list
        .iter()
        .filter_map(|m| {
            m.get(key)
                .or_else(|| m.get("model"))
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        })
        .collect())
}

/// Main instance (chats) or cron instance (background jobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Interactive chats and agents.
    Main,
    /// Background jobs, isolated from chats.
    Cron,
}

/// Where an instance came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Declared in config.
    Config,
    /// Found on a known default port.
    Port,
    /// Found one port above a main instance.
    Companion,
}

/// An engine instance to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Provider id (config) or `engine:port` (detected); the key of URL
    /// overrides.
    pub key: String,
    /// The engine id ("ollama", "llamacpp", ...).
    pub engine: String,
    /// Probe family.
    pub api: ApiFamily,
    /// Main or cron.
    pub role: Role,
    /// API base URL to probe (after any override).
    pub base_url: String,
    /// How it was found.
    pub origin: Origin,
}

/// An engine declared in config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredEngine {
    /// Provider id, e.g. "ollama" or "ollama-cron".
    pub id: String,
    /// API base URL, e.g. `http://127.0.0.1:11434` or `http://box.local:8080/v1`.
    pub base_url: String,
    /// Probe family.
    pub api: ApiFamily,
}

/// Every instance to probe: config engines on local hosts, then known
/// default ports not already configured, then each main instance's cron
/// companion at +1 when not already listed. `overrides` maps an instance
/// key to the URL to use instead.
pub fn candidates(
    configured: &[ConfiguredEngine],
    probe_ports: bool,
    overrides: &[(String, String)],
) -> Vec<Instance> {
    let mut out: Vec<Instance> = Vec::new();
    let taken = |out: &[Instance], port: u16| {
        out.iter()
            .any(|i| host_port(&i.base_url).is_some_and(|(h, p)| p == port && is_loopback_host(&h)))
    };
    for c in configured {
        out.push(Instance {
            key: c.id.clone(),
            engine: c.id.trim_end_matches("-cron").to_owned(),
            api: c.api,
            role: if c.id.ends_with("-cron") {
                Role::Cron
            } else {
                Role::Main
            },
            base_url: c.base_url.clone(),
            origin: Origin::Config,
        });
    }
    if probe_ports {
        for e in KNOWN_ENGINES {
            if !taken(&out, e.default_port) {
                out.push(Instance {
                    key: format!("{}:{}", e.id, e.default_port),
                    engine: e.id.to_owned(),
                    api: e.api,
                    role: Role::Main,
                    base_url: format!("http://127.0.0.1:{}{}", e.default_port, e.base_path),
                    origin: Origin::Port,
                });
            }
        }
    }
    let mains: Vec<Instance> = out
        .iter()
        .filter(|i| i.role == Role::Main)
        .cloned()
        .collect();
    for m in mains {
        let Some((host, port)) = host_port(&m.base_url) else {
            continue;
        };
        let Some(cport) = port.checked_add(CRON_PORT_OFFSET) else {
            continue;
        };
        let has_cron = out
            .iter()
            .any(|i| i.role == Role::Cron && i.engine == m.engine);
        let occupied = out
            .iter()
            .any(|i| host_port(&i.base_url).is_some_and(|(h, p)| p == cport && h == host));
        if has_cron || occupied {
            continue;
        }
        let path = m
            .base_url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
            .unwrap_or_default();
        let scheme = m.base_url.split("://").next().unwrap_or("http");
        let host_fmt = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        out.push(Instance {
            key: format!("{}-cron:{cport}", m.engine),
            engine: m.engine.clone(),
            api: m.api,
            role: Role::Cron,
            base_url: format!("{scheme}://{host_fmt}:{cport}{path}"),
            origin: Origin::Companion,
        });
    }
    for i in &mut out {
        if let Some((_, url)) = overrides.iter().find(|(k, u)| *k == i.key && !u.is_empty()) {
            i.base_url = url.clone();
        }
    }
    out
}

/// An engine's main and cron instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineGroup {
    /// The engine id.
    pub engine: String,
    /// Chats go here.
    pub main: Option<Instance>,
    /// Background jobs go here when present (main/cron isolation).
    pub cron: Option<Instance>,
}

/// Pair main and cron instances per engine (first of each wins).
pub fn group(instances: &[Instance]) -> Vec<EngineGroup> {
    let mut groups: Vec<EngineGroup> = Vec::new();
    for i in instances {
        let g = match groups.iter_mut().find(|g| g.engine == i.engine) {
            Some(g) => g,
            None => {
                groups.push(EngineGroup {
                    engine: i.engine.clone(),
                    main: None,
                    cron: None,
                });
                groups.last_mut().expect("just pushed")
            }
        };
        let slot = match i.role {
            Role::Main => &mut g.main,
            Role::Cron => &mut g.cron,
        };
        if slot.is_none() {
            *slot = Some(i.clone());
        }
    }
    groups
}

/// An instance's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Answered its model list.
    Up,
    /// Did not answer.
    Down,
    /// Not probed: its host is not local or LAN (the SSRF guard).
    Unknown,
}

/// Which instance a job goes to, among the instances that are up with
/// models (in candidate order). A chat goes to the first main instance. A
/// background job goes to that engine's cron companion when it is up, else
/// any cron instance, else the main one (main/cron isolation: a long
/// automation never queues behind the person's chat).
pub fn choose(up: &[Instance], background: bool) -> Option<&Instance> {
    let main = up.iter().find(|i| i.role == Role::Main);
    if !background {
        return main;
    }
    let crons = || up.iter().filter(|i| i.role == Role::Cron);
    main.and_then(|m| crons().find(|c| c.engine == m.engine))
        .or_else(|| crons().next())
        .or(main)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chats_go_to_main_and_background_jobs_to_cron() {
        let inst = |key: &str, engine: &str, role| Instance {
            key: key.into(),
            engine: engine.into(),
            api: ApiFamily::Ollama,
            role,
            base_url: String::new(),
            origin: Origin::Config,
        };
        let main = inst("ollama", "ollama", Role::Main);
        let cron = inst("ollama-cron", "ollama", Role::Cron);
        let other_cron = inst("jan-cron", "jan", Role::Cron);
        let key = |i: Option<&Instance>| i.map(|i| i.key.clone());
        let all = [other_cron.clone(), main.clone(), cron.clone()];
        assert_eq!(key(choose(&all, false)), Some("ollama".into()));
        assert_eq!(key(choose(&all, true)), Some("ollama-cron".into()));
        let no_own_cron = [main.clone(), other_cron.clone()];
        assert_eq!(key(choose(&no_own_cron, true)), Some("jan-cron".into()));
        assert_eq!(
            key(choose(std::slice::from_ref(&main), true)),
            Some("ollama".into())
        );
        // A cron instance alone never takes chats.
        assert_eq!(key(choose(std::slice::from_ref(&cron), false)), None);
        assert_eq!(key(choose(&[], true)), None);
    }

    #[test]
    fn the_local_host_rule() {
        for h in [
            "localhost",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "0.0.0.0",
            "box.local",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.20",
            "fd12::1",
        ] {
            assert!(is_local_host(h), "{h}");
        }
        for h in [
            "8.8.8.8",
            "172.32.0.1",
            "172.15.0.1",
            "169.254.169.254",
            "example.com",
            "localhost.evil.com",
            "2001:db8::1",
            "",
        ] {
            assert!(!is_local_host(h), "{h}");
        }
    }

    #[test]
    fn the_ssrf_guard_parses_urls_not_strings() {
        assert!(is_probe_allowed("http://127.0.0.1:11434"));
        assert!(is_probe_allowed("http://[::1]:8080/v1"));
        assert!(!is_probe_allowed("http://169.254.169.254/latest/meta-data"));
        assert!(!is_probe_allowed("http://127.0.0.1@evil.com/"));
        assert!(!is_probe_allowed("file:///etc/passwd"));
        assert!(!is_probe_allowed("gopher://127.0.0.1:70"));
        assert!(!is_probe_allowed("not a url"));
        assert_eq!(
            host_port("https://Box.Local/v1"),
            Some(("box.local".into(), 443))
        );
    }

    #[test]
    fn health_urls_per_family() {
        assert_eq!(
            health_url("http://127.0.0.1:11434/", ApiFamily::Ollama),
            "http://127.0.0.1:11434/api/tags"
        );
        assert_eq!(
            health_url("http://127.0.0.1:8080/v1", ApiFamily::OpenAi),
            "http://127.0.0.1:8080/v1/models"
        );
    }

    #[test]
    fn model_lists_of_both_families() {
        let ollama = r#"{"models":[{"name":"llama3.2:3b","size":1},{"name":"qwen3:8b"}]}"#;
        assert_eq!(
            parse_model_ids(ollama).unwrap(),
            ["llama3.2:3b", "qwen3:8b"]
        );
        let openai = r#"{"object":"list","data":[{"id":"gemma3-270m","object":"model"}]}"#;
        assert_eq!(parse_model_ids(openai).unwrap(), ["gemma3-270m"]);
        assert!(parse_model_ids("{}").unwrap_err().contains("neither"));
        assert!(parse_model_ids("<html>").is_err());
    }

    #[test]
    fn candidates_from_config_ports_and_companions() {
        let configured = vec![ConfiguredEngine {
            id: "ollama".into(),
            base_url: "http://127.0.0.1:11434".into(),
            api: ApiFamily::Ollama,
        }];
        let c = candidates(&configured, true, &[]);
        let keys: Vec<&str> = c.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ollama",
                "lmstudio:1234",
                "vllm:8000",
                "llamacpp:8080",
                "jan:1337",
                "koboldcpp:5001",
                "ollama-cron:11435",
                "lmstudio-cron:1235",
                "vllm-cron:8001",
                "llamacpp-cron:8081",
                "jan-cron:1338",
                "koboldcpp-cron:5002",
            ],
            "Ollama's default port is configured, so not probed twice"
        );
        let llama_cron = c.iter().find(|i| i.key == "llamacpp-cron:8081").unwrap();
        assert_eq!(llama_cron.base_url, "http://127.0.0.1:8081/v1");
        assert_eq!(llama_cron.role, Role::Cron);
        // No companion port collides with another engine's main port.
        for e in KNOWN_ENGINES {
            assert!(!KNOWN_ENGINES
                .iter()
                .any(|o| o.default_port == e.default_port + CRON_PORT_OFFSET));
        }
    }

    #[test]
    fn a_configured_cron_and_overrides_win() {
        let configured = vec![
            ConfiguredEngine {
                id: "ollama".into(),
                base_url: "http://127.0.0.1:11434".into(),
                api: ApiFamily::Ollama,
            },
            ConfiguredEngine {
                id: "ollama-cron".into(),
                base_url: "http://127.0.0.1:21434".into(),
                api: ApiFamily::Ollama,
            },
        ];
        let c = candidates(
            &configured,
            false,
            &[("ollama".into(), "http://192.168.1.5:11434".into())],
        );
        assert_eq!(c.len(), 2, "no companion when a cron is configured: {c:?}");
        assert_eq!(c[0].base_url, "http://192.168.1.5:11434");
        let g = group(&c);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].main.as_ref().unwrap().key, "ollama");
        assert_eq!(g[0].cron.as_ref().unwrap().key, "ollama-cron");
    }
}
