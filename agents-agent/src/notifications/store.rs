//! `notifications` in cowork.db: every notification raised, with its state
//! (pending → delivered / held / dropped / bundled → accepted / dismissed
//! / expanded). Throttling reads its history from here, so a restart never
//! bypasses an hourly cap or a cooldown. The only SQL for it.

use super::Row as NRow;
use cowork_db::{Owner, Step};
use rusqlite::{params, Connection, OptionalExtension, Row};

/// Notifications as an owner of tables.
pub const OWNER: Owner = Owner {
    name: "notifications",
    steps: &[Step::Sql(
        "CREATE TABLE notifications (
            id TEXT PRIMARY KEY,
            trigger_type TEXT NOT NULL,
            tier TEXT NOT NULL,
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            bundle_key TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            action_json TEXT NOT NULL DEFAULT '',
            members_json TEXT NOT NULL DEFAULT '[]',
            created_ms INTEGER NOT NULL,
            release_ms INTEGER NOT NULL,
            delivered_ms INTEGER NOT NULL DEFAULT 0,
            answered_ms INTEGER NOT NULL DEFAULT 0,
            thread_id TEXT NOT NULL DEFAULT '',
            dedupe_key TEXT UNIQUE
         );
         CREATE INDEX notifications_state ON notifications(state, release_ms);
         CREATE INDEX notifications_type ON notifications(trigger_type, answered_ms);",
    )],
};

const COLS: &str = "id, trigger_type, tier, title, body, bundle_key, state, note, action_json, \
                    members_json, created_ms, release_ms, delivered_ms, answered_ms, thread_id";

fn row(r: &Row<'_>) -> rusqlite::Result<NRow> {
    Ok(NRow {
        id: r.get(0)?,
        trigger_type: r.get(1)?,
        tier: r.get(2)?,
        title: r.get(3)?,
        body: r.get(4)?,
        bundle_key: r.get(5)?,
        state: r.get(6)?,
        note: r.get(7)?,
        action_json: r.get(8)?,
        members: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
        created_ms: r.get(10)?,
        release_ms: r.get(11)?,
        delivered_ms: r.get(12)?,
        answered_ms: r.get(13)?,
        thread_id: r.get(14)?,
    })
}

/// Insert a notification; false when its `dedupe_key` was raised before.
pub fn insert(c: &Connection, n: &NRow, dedupe_key: Option<&str>) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "INSERT OR IGNORE INTO notifications (id, trigger_type, tier, title, body, bundle_key, state,
            note, action_json, members_json, created_ms, release_ms, delivered_ms, dedupe_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            n.id,
            n.trigger_type,
            n.tier,
            n.title,
            n.body,
            n.bundle_key,
            n.state,
            n.note,
            n.action_json,
            serde_json::to_string(&n.members).unwrap_or_else(|_| "[]".into()),
            n.created_ms,
            n.release_ms,
            n.delivered_ms,
            dedupe_key
        ],
    )? > 0)
}

/// One notification.
pub fn get(c: &Connection, id: &str) -> rusqlite::Result<Option<NRow>> {
    c.query_row(
        &format!("SELECT {COLS} FROM notifications WHERE id = ?1"),
        [id],
        row,
    )
    .optional()
}

/// The id a dedupe key was raised under.
pub fn by_dedupe(c: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT id FROM notifications WHERE dedupe_key = ?1",
        [key],
        |r| r.get(0),
    )
    .optional()
}

/// Newest first.
pub fn list(c: &Connection, limit: u32) -> rusqlite::Result<Vec<NRow>> {
    let mut s = c.prepare(&format!(
        "SELECT {COLS} FROM notifications ORDER BY created_ms DESC, id DESC LIMIT ?1"
    ))?;
    let rows = s.query_map([limit], row)?;
    rows.collect()
}

/// Rows in `state`, oldest first (pending ones only when due by `now_ms`).
pub fn in_state(c: &Connection, state: &str, due_by_ms: i64) -> rusqlite::Result<Vec<NRow>> {
    let mut s = c.prepare(&format!(
        "SELECT {COLS} FROM notifications WHERE state = ?1 AND release_ms <= ?2
         ORDER BY release_ms, created_ms, id"
    ))?;
    let rows = s.query_map(params![state, due_by_ms], row)?;
    rows.collect()
}

/// Save what changed in a row (state, note, text, tier, members, times).
pub fn update(c: &Connection, n: &NRow) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE notifications SET state = ?2, note = ?3, title = ?4, body = ?5, tier = ?6,
            members_json = ?7, delivered_ms = ?8, answered_ms = ?9, thread_id = ?10 WHERE id = ?1",
        params![
            n.id,
            n.state,
            n.note,
            n.title,
            n.body,
            n.tier,
            serde_json::to_string(&n.members).unwrap_or_else(|_| "[]".into()),
            n.delivered_ms,
            n.answered_ms,
            n.thread_id
        ],
    )
    .map(|_| ())
}

/// Deliveries since `since_ms`, per tier (urgent, helpful, informational).
pub fn delivered_since(c: &Connection, since_ms: i64) -> rusqlite::Result<[u32; 3]> {
    let mut out = [0u32; 3];
    let mut s = c.prepare(
        "SELECT tier, count(*) FROM notifications WHERE delivered_ms >= ?1 AND delivered_ms > 0
         GROUP BY tier",
    )?;
    let rows = s.query_map([since_ms], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for r in rows {
        let (tier, n) = r?;
        if let Some(t) = super::throttle::Tier::parse(&tier) {
            out[t.index()] = n as u32;
        }
    }
    Ok(out)
}

/// A trigger type's answers since `since_ms`: (last dismissal, dismissals,
/// accepts and expands).
pub fn answers(
    c: &Connection,
    trigger_type: &str,
    since_ms: i64,
) -> rusqlite::Result<(Option<i64>, u32, u32)> {
    c.query_row(
        "SELECT max(CASE WHEN state = 'dismissed' THEN answered_ms END),
                count(CASE WHEN state = 'dismissed' THEN 1 END),
                count(CASE WHEN state IN ('accepted', 'expanded') THEN 1 END)
         FROM notifications WHERE trigger_type = ?1 AND answered_ms >= ?2 AND answered_ms > 0",
        params![trigger_type, since_ms],
        |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as u32,
                r.get::<_, i64>(2)? as u32,
            ))
        },
    )
}

/// Trigger types with at least `n` dismissals since `since_ms`.
pub fn often_dismissed(c: &Connection, since_ms: i64, n: u32) -> rusqlite::Result<Vec<String>> {
    let mut s = c.prepare(
        "SELECT trigger_type FROM notifications WHERE state = 'dismissed' AND answered_ms >= ?1
         GROUP BY trigger_type HAVING count(*) >= ?2",
    )?;
    let rows = s.query_map(params![since_ms, n], |r| r.get(0))?;
    rows.collect()
}
