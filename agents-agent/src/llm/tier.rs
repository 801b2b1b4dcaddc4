//! The tier table: each cloud tier's model, list price and provider, and
//! the providers this build knows. A leaf: the router, the providers'
//! keys, the usage ledger and the gateway all read it, and it reads
//! nothing of theirs.

/// A cloud tier, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// Gemini 2.5 Flash, Gemini direct, monthly token quota.
    Free,
    /// Gemini 3 Flash via OpenRouter.
    Boost,
    /// Claude Sonnet 4.5 via OpenRouter.
    Pro,
    /// Claude Opus 4.6 via OpenRouter.
    Max,
}

/// Every tier, cheapest first.
pub const TIERS: [Tier; 4] = [Tier::Free, Tier::Boost, Tier::Pro, Tier::Max];

impl Tier {
    /// The tier whose model is `model_id` (`provider/model`), if any.
    pub fn of_model(model_id: &str) -> Option<Tier> {
        TIERS.into_iter().find(|t| t.model_id() == model_id)
    }
    /// The next tier up, if any.
    pub fn next(self) -> Option<Tier> {
        match self {
            Tier::Free => Some(Tier::Boost),
            Tier::Boost => Some(Tier::Pro),
            Tier::Pro => Some(Tier::Max),
            Tier::Max => None,
        }
    }
    /// "free", "boost", "pro" or "max".
    pub fn name(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Boost => "boost",
            Tier::Pro => "pro",
            Tier::Max => "max",
        }
    }
    /// The tier's model, as `provider/model`.
    pub fn model_id(self) -> &'static str {
        match self {
            Tier::Free => "gemini/gemini-2.5-flash",
            Tier::Boost => "openrouter/google/gemini-3-flash",
            Tier::Pro => "openrouter/anthropic/claude-sonnet-4.5",
            Tier::Max => "openrouter/anthropic/claude-opus-4.6",
        }
    }
    /// USD per million (input, output) tokens.
    pub fn price_per_mtok(self) -> (f64, f64) {
        match self {
            Tier::Free => (0.30, 2.50),
            Tier::Boost => (0.50, 3.00),
            Tier::Pro => (3.00, 15.00),
            Tier::Max => (5.00, 25.00),
        }
    }
}

/// What a finished call cost at list price (0 for the free tier, whose
/// tokens count against the quota instead).
pub fn actual_cost(tier: Tier, tokens_in: u64, tokens_out: u64) -> f64 {
    if tier == Tier::Free {
        return 0.0;
    }
    let (i, o) = tier.price_per_mtok();
    (tokens_in as f64 * i + tokens_out as f64 * o) / 1e6
}

/// A cloud provider this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudProvider {
    /// The provider part of `provider/model` ids and of
    /// `[agents.providers.<id>]`.
    pub id: &'static str,
    /// Its OpenAI-compatible API base.
    pub default_base_url: &'static str,
    /// The environment variable read when the config has no key.
    pub key_env: &'static str,
}

/// Gemini's OpenAI-compatible endpoint.
pub const GEMINI: CloudProvider = CloudProvider {
    id: "gemini",
    default_base_url: "https://generativelanguage.googleapis.com/v1beta/openai",
    key_env: "GEMINI_API_KEY",
};

/// OpenRouter.
pub const OPENROUTER: CloudProvider = CloudProvider {
    id: "openrouter",
    default_base_url: "https://openrouter.ai/api/v1",
    key_env: "OPENROUTER_API_KEY",
};

/// Every cloud provider, in tier order.
pub const CLOUD_PROVIDERS: [CloudProvider; 2] = [GEMINI, OPENROUTER];

/// The provider known by `id`.
pub fn provider(id: &str) -> Option<CloudProvider> {
    CLOUD_PROVIDERS.into_iter().find(|p| p.id == id)
}

/// Split a `provider/model` id at its first slash
/// (`openrouter/anthropic/claude-sonnet-4.5` → `openrouter`,
/// `anthropic/claude-sonnet-4.5`).
pub fn split_model_id(id: &str) -> Option<(&str, &str)> {
    id.split_once('/')
        .filter(|(p, m)| !p.is_empty() && !m.is_empty())
}

/// The provider and the provider's own model name for a tier.
pub fn for_tier(tier: Tier) -> (CloudProvider, &'static str) {
    let (p, model) = split_model_id(tier.model_id()).unwrap_or(("", ""));
    (provider(p).unwrap_or(OPENROUTER), model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_map_to_providers() {
        assert_eq!(for_tier(Tier::Free), (GEMINI, "gemini-2.5-flash"));
        assert_eq!(for_tier(Tier::Boost), (OPENROUTER, "google/gemini-3-flash"));
        assert_eq!(
            for_tier(Tier::Max),
            (OPENROUTER, "anthropic/claude-opus-4.6")
        );
        assert_eq!(split_model_id("a/b/c"), Some(("a", "b/c")));
        assert_eq!(split_model_id("/b"), None);
        assert_eq!(split_model_id("plain"), None);
    }

    #[test]
    fn tiers_by_model_and_free_costs_nothing() {
        assert_eq!(
            Tier::of_model("openrouter/anthropic/claude-opus-4.6"),
            Some(Tier::Max)
        );
        assert_eq!(Tier::of_model("llamacpp/gemma"), None);
        assert_eq!(actual_cost(Tier::Free, 1_000_000, 1_000_000), 0.0);
        assert_eq!(actual_cost(Tier::Pro, 1_000_000, 0), 3.0);
    }
}
