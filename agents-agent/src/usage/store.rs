//! `agents_usage` in cowork.db: one row per model call, summed over the
//! current UTC day, ISO week and calendar month, and over one ask's retry
//! chain. The only SQL for the usage ledger.

use super::period::period_starts;
use super::UsageEntry;
use crate::llm::router::Usage;
use cowork_db::{Owner, Step};
use rusqlite::{params, Connection};

/// The usage ledger as an owner of tables: its schema, oldest first
/// (append only). Version 1 is the release before versioning, written so
/// a file that release made is adopted as it is.
pub const OWNER: Owner = Owner {
    name: "usage",
    steps: &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS agents_usage (
                id INTEGER PRIMARY KEY,
                at_ms INTEGER NOT NULL,
                ask_id TEXT NOT NULL,
                model TEXT NOT NULL,
                tier TEXT NOT NULL,
                tokens_in INTEGER NOT NULL,
                tokens_out INTEGER NOT NULL,
                cost_usd REAL NOT NULL
             );
             CREATE INDEX IF NOT EXISTS agents_usage_at ON agents_usage(at_ms);
             CREATE INDEX IF NOT EXISTS agents_usage_ask ON agents_usage(ask_id);",
    )],
};

/// Record one call.
pub fn record(conn: &Connection, e: &UsageEntry) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO agents_usage (at_ms, ask_id, model, tier, tokens_in, tokens_out, cost_usd)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            e.at_ms,
            e.ask_id,
            e.model,
            e.tier,
            e.tokens_in as i64,
            e.tokens_out as i64,
            e.cost_usd
        ],
    )
    .map(|_| ())
}

/// What the router needs to know at `now_ms` for an ask.
pub fn usage_at(conn: &Connection, now_ms: i64, ask_id: Option<&str>) -> rusqlite::Result<Usage> {
    let (day, week, month) = period_starts(now_ms);
    let spent = |from: i64| -> rusqlite::Result<f64> {
        conn.query_row(
            "SELECT coalesce(sum(cost_usd), 0) FROM agents_usage WHERE at_ms >= ?1 AND at_ms <= ?2",
            params![from, now_ms],
            |r| r.get(0),
        )
    };
    let free_tokens: i64 = conn.query_row(
        "SELECT coalesce(sum(tokens_in + tokens_out), 0) FROM agents_usage
         WHERE tier = 'free' AND at_ms >= ?1 AND at_ms <= ?2",
        params![month, now_ms],
        |r| r.get(0),
    )?;
    let spent_this_ask = match ask_id {
        Some(a) => conn.query_row(
            "SELECT coalesce(sum(cost_usd), 0) FROM agents_usage WHERE ask_id = ?1",
            [a],
            |r| r.get(0),
        )?,
        None => 0.0,
    };
    Ok(Usage {
        free_tokens_this_month: free_tokens.max(0) as u64,
        spent_today: spent(day)?,
        spent_this_week: spent(week)?,
        spent_this_month: spent(month)?,
        spent_this_ask,
    })
}

/// Model calls recorded since `from_ms` (local ones included).
pub fn calls_since(conn: &Connection, from_ms: i64) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM agents_usage WHERE at_ms >= ?1",
        [from_ms],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::period::{days_from_civil, DAY_MS};

    #[test]
    fn sums_per_period_and_per_ask() {
        let c = crate::db::migrated(&[OWNER, OWNER]);
        let d = |y, m, dd| days_from_civil(y, m, dd) * DAY_MS + 3_600_000;
        let entry = |at: i64, ask: &str, tier: &str, cost: f64| UsageEntry {
            at_ms: at,
            ask_id: ask.into(),
            model: "m".into(),
            tier: tier.into(),
            tokens_in: 100,
            tokens_out: 50,
            cost_usd: cost,
        };
        for e in [
            entry(d(2026, 10, 31), "a", "pro", 5.0),  // last month
            entry(d(2026, 11, 2), "b", "pro", 4.0),   // this month, earlier week
            entry(d(2026, 11, 17), "c", "pro", 2.0),  // this week
            entry(d(2026, 11, 22), "c", "max", 1.0),  // today, same ask
            entry(d(2026, 11, 22), "f", "free", 0.0), // free tier tokens
        ] {
            record(&c, &e).unwrap();
        }
        let u = usage_at(&c, d(2026, 11, 22) + 1_000, Some("c")).unwrap();
        assert_eq!(u.spent_today, 1.0);
        assert_eq!(u.spent_this_week, 3.0);
        assert_eq!(u.spent_this_month, 7.0);
        assert_eq!(u.spent_this_ask, 3.0);
        assert_eq!(u.free_tokens_this_month, 150);
        let (_, _, month) = period_starts(d(2026, 11, 22));
        assert_eq!(calls_since(&c, month).unwrap(), 4);
    }
}
