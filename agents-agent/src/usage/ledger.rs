//! The one way a model call reaches the usage ledger, for chat and agent
//! operations alike, and the one way the budget check reads it.

use super::period::period_starts;
use super::{store, UsageEntry};
use crate::db::{Db, DbError};
use crate::llm::router::Usage;
use crate::llm::tier::{actual_cost, Tier};
use crate::util::now_ms;

/// Record one model call under `ask_id` (a chat ask, or an agent
/// operation): `tokens` as (prompt, completion), the engine's own count
/// where it gave one, else an estimate; `tier` is the cloud tier billed
/// (None: a local model, free). Returns its list-price cost in USD.
pub async fn record_call(
    db: &Db,
    ask_id: &str,
    model: &str,
    tier: Option<Tier>,
    (tokens_in, tokens_out): (u64, u64),
) -> Result<f64, DbError> {
    let cost = tier.map_or(0.0, |t| actual_cost(t, tokens_in, tokens_out));
    let entry = UsageEntry {
        at_ms: now_ms(),
        ask_id: ask_id.to_owned(),
        model: model.to_owned(),
        tier: tier.map_or("local", Tier::name).to_owned(),
        tokens_in,
        tokens_out,
        cost_usd: cost,
    };
    db.write(move |c| store::record(c, &entry)).await?;
    Ok(cost)
}

/// What the budget check needs now: spend per period, free tokens this
/// month, and what `ask_id` (its retry chain, or an operation) has spent.
pub async fn usage_now(db: &Db, ask_id: Option<String>) -> Result<Usage, DbError> {
    db.read(move |c| store::usage_at(c, now_ms(), ask_id.as_deref()))
        .await
}

/// What has been used so far, and how many model calls this month.
pub async fn this_month(db: &Db) -> Result<(Usage, u64), DbError> {
    let now = now_ms();
    db.read(move |c| {
        let (_, _, month) = period_starts(now);
        Ok((
            store::usage_at(c, now, None)?,
            store::calls_since(c, month)?,
        ))
    })
    .await
}
