//! `agent_operations` in cowork.db: each operation's whole state as JSON,
//! saved after every step. The only SQL for it.

use super::operation::{Operation, Status};
use crate::util::now_ms;
use cowork_db::{Owner, Step};
use rusqlite::{params, Connection, OptionalExtension};

/// Agent operations as an owner of tables: their schema, oldest first
/// (append only). Version 1 is the release before versioning, written so
/// a file that release made is adopted as it is.
pub const OWNER: Owner = Owner {
    name: "agent",
    steps: &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS agent_operations (
                id TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                task TEXT NOT NULL,
                state_json TEXT NOT NULL,
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS agent_operations_status ON agent_operations(status);",
    )],
};

/// Insert or update an operation (its whole state).
pub fn save(c: &Connection, op: &Operation) -> rusqlite::Result<()> {
    let state =
        serde_json::to_string(op).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    let now = now_ms();
    c.execute(
        "INSERT INTO agent_operations (id, status, task, state_json, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT(id) DO UPDATE SET status = ?2, state_json = ?4, updated_ms = ?5",
        params![op.id, op.status.name(), op.task, state, now],
    )
    .map(|_| ())
}

fn parse(state: String) -> rusqlite::Result<Operation> {
    serde_json::from_str(&state).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

/// One operation with its created and updated times.
pub fn load(c: &Connection, id: &str) -> rusqlite::Result<Option<(Operation, i64, i64)>> {
    c.query_row(
        "SELECT state_json, created_ms, updated_ms FROM agent_operations WHERE id = ?1",
        [id],
        |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()?
    .map(|(s, a, b)| parse(s).map(|o| (o, a, b)))
    .transpose()
}

/// Operations, newest first (with created and updated times).
pub fn list(c: &Connection, limit: u32) -> rusqlite::Result<Vec<(Operation, i64, i64)>> {
    let mut st = c.prepare(
        "SELECT state_json, created_ms, updated_ms FROM agent_operations
         ORDER BY created_ms DESC, id DESC LIMIT ?1",
    )?;
    let rows = st
        .query_map([limit], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(s, a, b)| parse(s).map(|o| (o, a, b)))
        .collect()
}

/// Operations that were running when agents-agent stopped come back
/// paused, resumable. Returns how many.
pub fn pause_interrupted(c: &Connection) -> rusqlite::Result<usize> {
    let mut st = c.prepare("SELECT state_json FROM agent_operations WHERE status = 'running'")?;
    let ops = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let n = ops.len();
    for s in ops {
        let mut op = parse(s)?;
        op.status = Status::Paused;
        op.reason = format!(
            "agents-agent stopped while this was running; resume it with \
             `coworkctl agent resume {}`",
            op.id
        );
        save(c, &op)?;
    }
    Ok(n)
}

/// Operations waiting for a person, oldest first.
pub fn waiting(c: &Connection) -> rusqlite::Result<Vec<Operation>> {
    let mut st = c.prepare(
        "SELECT state_json FROM agent_operations WHERE status = 'waiting_for_human'
         ORDER BY created_ms",
    )?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupted_operations_come_back_paused() {
        let c = crate::db::migrated(&[OWNER]);
        let mut a = Operation::new("op-a".into(), "a".into(), 0, false, 1);
        a.status = Status::Running;
        let mut b = Operation::new("op-b".into(), "b".into(), 0, false, 2);
        b.status = Status::Done;
        save(&c, &a).unwrap();
        save(&c, &b).unwrap();
        assert_eq!(pause_interrupted(&c).unwrap(), 1);
        let (a2, _, _) = load(&c, "op-a").unwrap().unwrap();
        assert_eq!(a2.status, Status::Paused);
        assert!(a2.reason.contains("coworkctl agent resume op-a"));
        assert_eq!(a2.messages, a.messages, "its conversation survives");
        assert_eq!(load(&c, "op-b").unwrap().unwrap().0.status, Status::Done);
        assert_eq!(list(&c, 10).unwrap().len(), 2);
    }
}
