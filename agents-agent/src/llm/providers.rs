//! Cloud providers' keys (seed 001 §4 "provider system", seed 003 "Cloud
//! Brain"): Gemini direct for the free tier, OpenRouter for the paid
//! tiers (the table is [`super::tier`]), both spoken to through the one
//! OpenAI-compatible client. Pure: where a key comes from, and which base
//! URLs may carry a key at all.

use super::engines::{host_port, is_loopback_host};
use super::tier::CloudProvider;

/// A key may only travel over TLS, or to this machine (a local proxy or a
/// test peer): `https://` anywhere, `http://` only to a loopback host.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let host = host_port(url).map(|(h, _)| h);
    match (scheme.as_deref(), host) {
        (_, None) => Err(format!("{url:?} is not a URL with a host")),
        (Some("https"), Some(_)) => Ok(()),
        (Some("http"), Some(h)) if is_loopback_host(&h) => Ok(()),
        (Some("http"), Some(h)) => Err(format!(
            "{url}: an API key is only sent over https (http is allowed to loopback only, not {h})"
        )),
        _ => Err(format!("{url}: the scheme must be https")),
    }
}

/// A provider ready to be called: a key and where to send it.
#[derive(Clone, PartialEq, Eq)]
pub struct ReadyProvider {
    /// The provider.
    pub provider: CloudProvider,
    /// Its API base (configured or default).
    pub base_url: String,
    /// The API key. Never printed: `Debug` hides it.
    pub api_key: String,
}

impl std::fmt::Debug for ReadyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyProvider")
            .field("provider", &self.provider.id)
            .field("base_url", &self.base_url)
            .field("api_key", &"<hidden>")
            .finish()
    }
}

/// Resolve a provider from its configured key and base URL and the
/// environment (`env` looks a variable up). No key, no provider: the cloud
/// is only used when the person gave it a key.
pub fn resolve(
    p: CloudProvider,
    configured_key: Option<&str>,
    configured_base_url: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ReadyProvider>, String> {
    let key = configured_key
        .map(str::to_owned)
        .or_else(|| env(p.key_env))
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    let Some(api_key) = key else {
        return Ok(None);
    };
    if api_key.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!(
            "the {} API key contains spaces or control characters",
            p.id
        ));
    }
    let base_url = configured_base_url
        .unwrap_or(p.default_base_url)
        .trim_end_matches('/')
        .to_owned();
    check_base_url(&base_url).map_err(|e| format!("[agents.providers.{}] base_url: {e}", p.id))?;
    Ok(Some(ReadyProvider {
        provider: p,
        base_url,
        api_key,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tier::{GEMINI, OPENROUTER};

    #[test]
    fn keys_only_over_tls_or_to_loopback() {
        assert!(check_base_url("https://openrouter.ai/api/v1").is_ok());
        assert!(check_base_url("http://127.0.0.1:8080/v1").is_ok());
        assert!(check_base_url("http://localhost:8080/v1").is_ok());
        assert!(check_base_url("http://[::1]:8080/v1").is_ok());
        assert!(check_base_url("http://192.168.1.5:8080/v1")
            .unwrap_err()
            .contains("https"));
        assert!(check_base_url("http://example.com/v1").is_err());
        assert!(check_base_url("ftp://example.com").is_err());
        assert!(check_base_url("nonsense").is_err());
    }

    #[test]
    fn key_from_config_then_env_and_never_printed() {
        let env = |k: &str| (k == "GEMINI_API_KEY").then(|| "env-key".to_owned());
        let r = resolve(GEMINI, None, None, env).unwrap().unwrap();
        assert_eq!(r.api_key, "env-key");
        assert_eq!(r.base_url, GEMINI.default_base_url);
        assert!(!format!("{r:?}").contains("env-key"));
        let r = resolve(GEMINI, Some("cfg-key"), Some("http://127.0.0.1:9/v1/"), env)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.api_key.as_str(), r.base_url.as_str()),
            ("cfg-key", "http://127.0.0.1:9/v1")
        );
        assert_eq!(resolve(OPENROUTER, None, None, env).unwrap(), None);
        assert_eq!(resolve(OPENROUTER, Some("  "), None, env).unwrap(), None);
        assert!(resolve(GEMINI, Some("k"), Some("http://10.0.0.1/v1"), env).is_err());
        assert!(resolve(GEMINI, Some("a\nb"), None, env).is_err());
    }
}
