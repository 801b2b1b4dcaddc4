//! The usage ledger the router's budget check reads: every model call's
//! tokens and cost, persisted in agents-agent's own `agents_usage` table of
//! cowork.db, summed over the current UTC day, ISO week (from Monday) and
//! calendar month, and over one ask's retry chain.

use crate::router::Usage;
use rusqlite::{params, Connection};

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic
/// Gregorian (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Starts (Unix ms, UTC) of the day, ISO week and month containing `now_ms`.
pub fn period_starts(now_ms: i64) -> (i64, i64, i64) {
    let days = now_ms.div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: Monday-based weekday = (days + 3) mod 7.
    let week = days - (days + 3).rem_euclid(7);
    let (y, m, _) = civil_from_days(days);
    (
        days * DAY_MS,
        week * DAY_MS,
        days_from_civil(y, m, 1) * DAY_MS,
    )
}

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

/// Create agents-agent's usage table if needed (its own; versioned with
/// the rest of agents-agent's schema as it grows).
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
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
    )
}

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

    #[test]
    fn calendar_math() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        for d in [-800_000i64, -1, 0, 59, 11_016, 20_000, 20_779, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d, "{d}");
        }
        // Sunday 2026-11-22 12:00 UTC: day, week from Monday 11-16, month 11-01.
        let now = days_from_civil(2026, 11, 22) * DAY_MS + 12 * 3_600_000;
        let (day, week, month) = period_starts(now);
        assert_eq!(day, days_from_civil(2026, 11, 22) * DAY_MS);
        assert_eq!(week, days_from_civil(2026, 11, 16) * DAY_MS);
        assert_eq!(month, days_from_civil(2026, 11, 1) * DAY_MS);
        // A Monday starts its own week.
        let monday = days_from_civil(2026, 11, 16) * DAY_MS;
        assert_eq!(period_starts(monday).1, monday);
    }

    #[test]
    fn sums_per_period_and_per_ask() {
        let c = Connection::open_in_memory().unwrap();
        migrate(&c).unwrap();
        migrate(&c).unwrap();
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
