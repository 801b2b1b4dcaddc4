//! The `[agents]` section of `$COWORK_HOME/config.toml`, read fresh for
//! each detection so edits apply at once. Other sections are ignored.

use crate::engines::{ApiFamily, ConfiguredEngine};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// `[[agents.engines]]`: an engine declared by the person.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineEntry {
    /// Provider id; ending in `-cron` makes it a cron instance.
    pub id: String,
    /// API base URL (`http://127.0.0.1:11434`, `http://127.0.0.1:8080/v1`).
    pub base_url: String,
    /// "ollama" or "openai".
    #[serde(default = "default_api")]
    pub api: String,
}

fn default_api() -> String {
    "openai".into()
}

/// `[agents]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// Probe the known engines' default ports (and their +1 companions).
    pub probe_ports: bool,
    /// Engines declared by the person.
    pub engines: Vec<EngineEntry>,
    /// Per-instance URL overrides: instance key → URL.
    pub engine_urls: BTreeMap<String, String>,
    /// Longest answer asked of an engine, in tokens (unset: the engine's
    /// own limit).
    pub max_output_tokens: Option<u32>,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            probe_ports: true,
            engines: Vec::new(),
            engine_urls: BTreeMap::new(),
            max_output_tokens: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    agents: AgentsConfig,
}

impl AgentsConfig {
    /// Parse a whole config file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c = toml::from_str::<File>(text)
            .map_err(|e| format!("[agents] is invalid: {e}"))?
            .agents;
        for e in &c.engines {
            if e.api != "ollama" && e.api != "openai" {
                return Err(format!(
                    "[[agents.engines]] {}: api must be \"ollama\" or \"openai\", not {:?}",
                    e.id, e.api
                ));
            }
        }
        Ok(c)
    }

    /// Read `[agents]` from `path`; a missing file means defaults.
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => Self::parse(&t).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The declared engines in the detection's terms.
    pub fn configured(&self) -> Vec<ConfiguredEngine> {
        self.engines
            .iter()
            .map(|e| ConfiguredEngine {
                id: e.id.clone(),
                base_url: e.base_url.clone(),
                api: if e.api == "ollama" {
                    ApiFamily::Ollama
                } else {
                    ApiFamily::OpenAi
                },
            })
            .collect()
    }

    /// The URL overrides as pairs.
    pub fn overrides(&self) -> Vec<(String, String)> {
        self.engine_urls
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engines_and_overrides() {
        let c = AgentsConfig::parse(
            "[capture]\nsource = \"sim\"\n[agents]\nprobe_ports = false\n\
             engine_urls = { \"ollama\" = \"http://192.168.1.2:11434\" }\n\
             [[agents.engines]]\nid = \"ollama\"\nbase_url = \"http://127.0.0.1:11434\"\napi = \"ollama\"\n",
        )
        .unwrap();
        assert!(!c.probe_ports);
        assert_eq!(c.configured()[0].api, ApiFamily::Ollama);
        assert_eq!(c.overrides()[0].1, "http://192.168.1.2:11434");
        assert_eq!(AgentsConfig::parse("").unwrap(), AgentsConfig::default());
        assert!(AgentsConfig::parse(
            "[[agents.engines]]\nid=\"x\"\nbase_url=\"http://a\"\napi=\"grpc\"\n"
        )
        .unwrap_err()
        .contains("grpc"));
    }
}
