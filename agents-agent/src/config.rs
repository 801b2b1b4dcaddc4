//! The `[agents]` and `[memory]` sections of `$COWORK_HOME/config.toml`,
//! read fresh for each use so edits apply at once. Other sections are
//! ignored.

use crate::agent::approval::{DefaultMode, Settings};
use crate::llm::engines::{candidates, ApiFamily, ConfiguredEngine, Instance};
use crate::llm::providers::{self, ReadyProvider};
use crate::llm::router::{Caps, Plan, Policy, Preference};
use crate::llm::tier::{provider, Tier, CLOUD_PROVIDERS};
use crate::mcp::ServerPolicy;
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

/// `[agents.providers.<id>]`: a cloud provider's key and API base.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    /// The API key (else the provider's environment variable).
    pub api_key: Option<String>,
    /// The API base (else the provider's public endpoint); `https://`,
    /// or `http://` to loopback only.
    pub base_url: Option<String>,
}

/// `[agents.caps]`: paid plans' spend caps in USD.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapsEntry {
    /// One interaction, its retries included.
    pub per_interaction: f64,
    /// Per UTC day.
    pub daily: f64,
    /// Per ISO week.
    pub weekly: f64,
    /// Per calendar month.
    pub monthly: f64,
}

impl Default for CapsEntry {
    fn default() -> Self {
        let c = Caps::default();
        Self {
            per_interaction: c.per_interaction,
            daily: c.daily,
            weekly: c.weekly,
            monthly: c.monthly,
        }
    }
}

/// The default local context budget (seed 000 §2: "e.g., 4K for local
/// brain").
pub const DEFAULT_LOCAL_CONTEXT: u64 = 4096;

/// `[agents]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// "local" (default: on this machine when the task allows) or "cloud".
    pub preference: String,
    /// "free" (default), "boost", "pro" or "max".
    pub plan: String,
    /// The free plan's monthly token quota.
    pub free_monthly_tokens: u64,
    /// Paid caps.
    pub caps: CapsEntry,
    /// Cloud providers by id ("gemini", "openrouter").
    pub providers: BTreeMap<String, ProviderEntry>,
    /// The tool approval policy's settings.
    pub approval: ApprovalEntry,
    /// Context, in tokens, a local model is given (the fit check's
    /// budget: it estimates the KV cache for min(this, the model's max)).
    pub local_context_tokens: u64,
    /// The local OpenAI-compatible API's settings.
    pub gateway: GatewayEntry,
    /// The `llama-server` sessions Cowork runs itself.
    pub llama: LlamaEntry,
    /// MiB a download keeps free on `$COWORK_HOME`'s filesystem, checked
    /// before and during the transfer (unset: 2 GiB or 5 % of the
    /// filesystem, whichever is smaller).
    pub free_space_floor_mib: Option<u64>,
}

/// `[agents.gateway]` (whether it is on, and its port, are set with
/// `coworkctl gateway enable|disable` and kept in cowork.db).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayEntry {
    /// Host names besides 127.0.0.1, localhost and [::1] that may reach it
    /// (e.g. a name in /etc/hosts for 127.0.0.1).
    pub trusted_hosts: Vec<String>,
}

/// `[agents.llama]`: how Cowork runs `llama-server` sessions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlamaEntry {
    /// The program (found on PATH unless a path is given).
    pub server: String,
    /// CPU threads per session (unset: llama-server's default).
    pub threads: Option<u32>,
    /// More arguments for every session (not host, port, key, model,
    /// context or mode: those are Cowork's).
    pub extra_args: Vec<String>,
    /// Seconds without a request before a session is unloaded (0: never).
    pub idle_unload_s: u64,
    /// Models loaded at start.
    pub autoload: Vec<AutoloadEntry>,
}

impl Default for LlamaEntry {
    fn default() -> Self {
        Self {
            server: "llama-server".into(),
            threads: None,
            extra_args: Vec::new(),
            idle_unload_s: 600,
            autoload: Vec::new(),
        }
    }
}

/// `[[agents.llama.autoload]]`: a model loaded at start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoloadEntry {
    /// A GGUF file (or a file under `$COWORK_HOME/models`).
    pub model: String,
    /// Serve embeddings instead of chat.
    #[serde(default)]
    pub embedding: bool,
}

/// `[agents.approval]`: the person's side of the tool approval policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalEntry {
    /// "manual" (default: ask for the rest) or "allow_list".
    pub mode: String,
    /// `server/tool` or `server/*` that run in allow-list mode.
    pub allow_list: Vec<String>,
    /// Servers trusted to run everything (phase 5).
    pub auto_run: Vec<String>,
    /// `server/tool` that always ask (phase 2).
    pub always_ask: Vec<String>,
    /// Extra tool-name patterns for the security denylist (phase 1).
    pub denylist_extra: Vec<String>,
    /// Seconds a call waits for a person before it is rejected — fail
    /// closed: it never runs (default 900; 0: wait for ever).
    pub timeout_s: Option<u64>,
}

impl ApprovalEntry {
    /// [`Self::timeout_s`] in ms (default 15 minutes; 0: never).
    pub fn timeout_ms(&self) -> i64 {
        (self.timeout_s.unwrap_or(900) as i64).saturating_mul(1000)
    }
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            probe_ports: true,
            engines: Vec::new(),
            engine_urls: BTreeMap::new(),
            max_output_tokens: None,
            preference: "local".into(),
            plan: "free".into(),
            free_monthly_tokens: Policy::default().free_monthly_tokens,
            caps: CapsEntry::default(),
            providers: BTreeMap::new(),
            approval: ApprovalEntry::default(),
            local_context_tokens: DEFAULT_LOCAL_CONTEXT,
            gateway: GatewayEntry::default(),
            free_space_floor_mib: None,
            llama: LlamaEntry::default(),
        }
    }
}

/// `[memory]`: what is indexed for search, and by which embedder.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// "auto" (a managed embedding session, else a local engine serving
    /// an embedding model, else none), "none" (keyword search only), or
    /// an engine: `managed:<alias>`, an instance key (`llamacpp:8080`), a
    /// declared engine's id, or a cloud provider's id.
    pub embedder: String,
    /// The embedding model to ask for (else the engine's own choice).
    pub embed_model: Option<String>,
    /// Let a cloud provider embed (never keystroke or clipboard text).
    pub allow_cloud_embeddings: bool,
    /// How often new rows are looked for (ms).
    pub poll_ms: u64,
    /// Characters per embedding request, at most (Ollama embeds a batch
    /// one input at a time, so a batch is bounded by its text).
    pub batch_chars: usize,
    /// Inputs per embedding request, at most.
    pub batch_items: usize,
    /// An input is cut to this many characters (below the model's limit).
    pub max_input_chars: usize,
    /// An embedding request unanswered this long fails its job (s).
    pub hang_timeout_s: u64,
    /// How often rows deleted from capture's tables (retention) are
    /// looked for and removed from every index (s).
    pub sweep_s: u64,
    /// Conversation history: the thread's last messages an answer is
    /// given.
    pub last_messages: usize,
    /// Sources a grounded context aims for (search hits, then earlier
    /// answers' citations).
    pub n_docs: usize,
    /// The memory block's token budget (working memory, pins, recent
    /// capture, search hits, backfill), never exceeded.
    pub context_tokens: u64,
    /// The cosine similarity under which a vector hit does not count as
    /// relevant (None: the floor calibrated for the embedder's model, see
    /// docs/BENCHMARKS.md).
    pub relevance_floor: Option<f64>,
    /// A grounded question naming what memory has never seen (a
    /// capitalised name, an identifier) gets no search hit.
    pub check_names: bool,
    /// Run the Observer and Reflector (observational memory), with the
    /// local model only.
    pub observe: bool,
    /// The Observer starts once this many tokens of raw history are not
    /// yet observed.
    pub observe_tokens: u64,
    /// The Reflector starts once the current observations pass this many
    /// tokens.
    pub reflect_tokens: u64,
    /// Tokens of history (or observations) one request gives the model.
    pub observe_window_tokens: u64,
    /// Tokens one Observer or Reflector reply may have.
    pub observe_max_tokens: u32,
    /// After a rejected reflection, how long before the Reflector tries
    /// again (s).
    pub reflect_retry_s: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            embedder: "auto".into(),
            embed_model: None,
            allow_cloud_embeddings: false,
            poll_ms: 250,
            batch_chars: 32_000,
            batch_items: 32,
            max_input_chars: 1000,
            hang_timeout_s: 300,
            sweep_s: 60,
            last_messages: 10,
            n_docs: 4,
            context_tokens: 1500,
            relevance_floor: None,
            check_names: true,
            observe: true,
            observe_tokens: 30_000,
            reflect_tokens: 40_000,
            observe_window_tokens: 1500,
            observe_max_tokens: 400,
            reflect_retry_s: 600,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct MemoryFile {
    #[serde(default)]
    memory: MemoryConfig,
}

impl MemoryConfig {
    /// Parse a whole config file's text (other sections are ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        let c = toml::from_str::<MemoryFile>(text)
            .map_err(|e| format!("[memory] is invalid: {e}"))?
            .memory;
        if c.embedder.trim().is_empty() {
            return Err("[memory] embedder must be \"auto\", \"none\" or an engine".into());
        }
        if c.batch_items == 0
            || c.batch_chars == 0
            || c.max_input_chars == 0
            || c.poll_ms == 0
            || c.hang_timeout_s == 0
            || c.sweep_s == 0
            || c.last_messages == 0
            || c.n_docs == 0
            || c.context_tokens < 64
            || c.observe_tokens == 0
            || c.reflect_tokens == 0
            || c.observe_window_tokens < 64
            || c.observe_max_tokens == 0
        {
            return Err(
                "[memory] poll_ms, batch_items, batch_chars, max_input_chars, \
                        hang_timeout_s, sweep_s, last_messages, n_docs, observe_tokens, \
                        reflect_tokens and observe_max_tokens must be above 0, context_tokens \
                        and observe_window_tokens at least 64"
                    .into(),
            );
        }
        if c.relevance_floor
            .is_some_and(|f| !(-1.0..=1.0).contains(&f))
        {
            return Err("[memory] relevance_floor is a cosine similarity, from -1 to 1".into());
        }
        Ok(c)
    }

    /// Read `[memory]` from `path`; a missing file means defaults.
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => Self::parse(&t).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

/// The table `[name]` of the config file at `path` as `T`: its defaults
/// when the file or the table is absent.
pub fn section<T: serde::de::DeserializeOwned + Default>(
    path: &Path,
    name: &str,
) -> Result<T, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("[{name}] is invalid: {e}"))?;
    match table.get(name) {
        None => Ok(T::default()),
        Some(v) => v
            .clone()
            .try_into()
            .map_err(|e| format!("[{name}] is invalid: {e}")),
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
        c.preference()?;
        c.plan()?;
        for id in c.providers.keys() {
            if provider(id).is_none() {
                return Err(format!(
                    "[agents.providers.{id}]: unknown provider; known: gemini, openrouter"
                ));
            }
        }
        c.cloud(|_| None, |_| None)?;
        c.approval_settings(&BTreeMap::new())?;
        let caps = [
            c.caps.per_interaction,
            c.caps.daily,
            c.caps.weekly,
            c.caps.monthly,
        ];
        if caps.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err("[agents.caps] must be non-negative amounts in USD".into());
        }
        Ok(c)
    }

    /// The approval policy's settings, with each server's own policy.
    pub fn approval_settings(
        &self,
        server_policy: &BTreeMap<String, ServerPolicy>,
    ) -> Result<Settings, String> {
        let a = &self.approval;
        let mut s = Settings::default();
        s.security_denylist.extend(a.denylist_extra.iter().cloned());
        s.mandatory = a.always_ask.iter().cloned().collect();
        s.auto_run = a.auto_run.iter().cloned().collect();
        s.server_policy = server_policy.clone();
        s.default_mode = match a.mode.as_str() {
            "" | "manual" => DefaultMode::Manual,
            "allow_list" => DefaultMode::AllowList(a.allow_list.iter().cloned().collect()),
            other => {
                return Err(format!(
                    "[agents.approval] mode must be manual or allow_list, not {other:?}"
                ))
            }
        };
        Ok(s)
    }

    /// The configured preference.
    pub fn preference(&self) -> Result<Preference, String> {
        parse_preference(&self.preference).map_err(|e| format!("[agents] preference: {e}"))
    }

    /// The configured plan.
    pub fn plan(&self) -> Result<Plan, String> {
        match self.plan.as_str() {
            "free" => Ok(Plan::Free),
            "boost" => Ok(Plan::Paid(Tier::Boost)),
            "pro" => Ok(Plan::Paid(Tier::Pro)),
            "max" => Ok(Plan::Paid(Tier::Max)),
            other => Err(format!(
                "[agents] plan must be free, boost, pro or max, not {other:?}"
            )),
        }
    }

    /// The router's policy (without the local model, which detection
    /// supplies).
    pub fn policy(&self) -> Result<Policy, String> {
        Ok(Policy {
            preference: self.preference()?,
            plan: self.plan()?,
            free_monthly_tokens: self.free_monthly_tokens,
            caps: Caps {
                per_interaction: self.caps.per_interaction,
                daily: self.caps.daily,
                weekly: self.caps.weekly,
                monthly: self.caps.monthly,
            },
            ..Policy::default()
        })
    }

    /// The cloud providers that have a key, as agents-agent sees them: the
    /// credential store, the config, the process environment.
    pub fn cloud_here(&self) -> Result<Vec<ReadyProvider>, String> {
        self.cloud(
            |id| crate::secrets::get(&provider_secret(id)).ok().flatten(),
            |k| std::env::var(k).ok(),
        )
    }

    /// The cloud providers that have a key: from `stored` (the OS
    /// credential store, by provider id) first, then the config, then
    /// `env` (by variable name).
    pub fn cloud(
        &self,
        stored: impl Fn(&str) -> Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<ReadyProvider>, String> {
        let mut ready = Vec::new();
        for p in CLOUD_PROVIDERS {
            let entry = self.providers.get(p.id).cloned().unwrap_or_default();
            let key = stored(p.id).or(entry.api_key);
            if let Some(r) = providers::resolve(p, key.as_deref(), entry.base_url.as_deref(), &env)?
            {
                ready.push(r);
            }
        }
        Ok(ready)
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

    /// Every engine instance to probe under this config: declared engines,
    /// known default ports when probing is on, cron companions, overrides.
    pub fn instances(&self) -> Vec<Instance> {
        candidates(&self.configured(), self.probe_ports, &self.overrides())
    }

    /// The URL overrides as pairs.
    pub fn overrides(&self) -> Vec<(String, String)> {
        self.engine_urls
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The credential-store name of a cloud provider's key.
pub fn provider_secret(id: &str) -> String {
    format!("provider/{id}")
}

/// "local" or "cloud" (empty: local).
pub fn parse_preference(s: &str) -> Result<Preference, String> {
    match s {
        "local" | "" => Ok(Preference::Local),
        "cloud" => Ok(Preference::Cloud),
        other => Err(format!("must be local or cloud, not {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_sessions_settings_and_their_defaults() {
        let c = AgentsConfig::parse("").unwrap();
        assert_eq!(c.llama.server, "llama-server");
        assert_eq!(c.llama.idle_unload_s, 600);
        let c = AgentsConfig::parse(
            "[agents.llama]\nserver = \"/opt/llama/llama-server\"\nthreads = 4\n\
             extra_args = [\"--no-webui\"]\nidle_unload_s = 0\n\
             [[agents.llama.autoload]]\nmodel = \"gemma.gguf\"\n\
             [[agents.llama.autoload]]\nmodel = \"minilm.gguf\"\nembedding = true\n",
        )
        .unwrap();
        assert_eq!(c.llama.threads, Some(4));
        assert_eq!(c.llama.idle_unload_s, 0);
        assert_eq!(
            c.llama.autoload,
            vec![
                AutoloadEntry {
                    model: "gemma.gguf".into(),
                    embedding: false
                },
                AutoloadEntry {
                    model: "minilm.gguf".into(),
                    embedding: true
                },
            ]
        );
        assert!(AgentsConfig::parse("[agents.llama]\nservr = \"x\"\n")
            .unwrap_err()
            .contains("servr"));
    }

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

    #[test]
    fn router_settings_and_providers() {
        let c = AgentsConfig::parse(
            "[agents]\npreference = \"cloud\"\nplan = \"pro\"\nfree_monthly_tokens = 10\n\
             [agents.caps]\ndaily = 2.5\n\
             [agents.providers.openrouter]\napi_key = \"or-key\"\n",
        )
        .unwrap();
        let p = c.policy().unwrap();
        assert_eq!(p.preference, Preference::Cloud);
        assert_eq!(p.plan, Plan::Paid(Tier::Pro));
        assert_eq!(p.free_monthly_tokens, 10);
        assert_eq!(p.caps.daily, 2.5);
        assert_eq!(p.caps.monthly, 200.0);
        let env = |k: &str| (k == "GEMINI_API_KEY").then(|| "g".to_owned());
        let ids: Vec<_> = c
            .cloud(|_| None, env)
            .unwrap()
            .iter()
            .map(|r| r.provider.id)
            .collect();
        assert_eq!(ids, ["gemini", "openrouter"]);
        assert!(c.cloud(|_| None, |_| None).unwrap().len() == 1);
        // The credential store wins over the config and the environment.
        let stored = |id: &str| (id == "openrouter").then(|| "from-store".to_owned());
        assert_eq!(c.cloud(stored, env).unwrap()[1].api_key, "from-store");
        for bad in [
            "[agents]\nplan = \"gold\"\n",
            "[agents]\npreference = \"remote\"\n",
            "[agents.providers.acme]\napi_key = \"k\"\n",
            "[agents.providers.gemini]\napi_key = \"k\"\nbase_url = \"http://example.com\"\n",
            "[agents.caps]\ndaily = -1.0\n",
        ] {
            assert!(AgentsConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
