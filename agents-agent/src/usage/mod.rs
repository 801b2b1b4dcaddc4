//! The usage ledger: every model call's tokens and cost (local calls
//! included), which the router's budget check reads. Pure: [`UsageEntry`]
//! and the calendar periods ([`period`]); [`store`] is `agents_usage`;
//! [`ledger`] is the one place a call is recorded, for chat and agent
//! operations alike.

pub mod ledger;
pub mod period;
pub mod store;

/// One model call, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEntry {
    /// When, Unix ms.
    pub at_ms: i64,
    /// The ask (retry chain) it belongs to.
    pub ask_id: String,
    /// `provider/model`.
    pub model: String,
    /// Tier name ("local", "free", "boost", "pro", "max").
    pub tier: String,
    /// Prompt tokens.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
    /// USD charged.
    pub cost_usd: f64,
}
