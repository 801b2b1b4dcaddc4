//! `automations`, `automation_runs` and `automation_steps` in cowork.db:
//! flows as JSON with their queryable metadata, and the run log a run
//! resumes from. The only SQL for them.
//!
//! Durability: a step's row is written `running` before it starts (with a
//! delay's deadline), and its result is committed together with the run's
//! cursor and variables in one transaction, so a killed agents-agent
//! finds either the step done (and goes on after it) or in flight (and
//! never re-runs it on a guess). A run is unique per (flow, occurrence):
//! a schedule's minute runs once, however often it is looked at.

use super::{FlowRow, RunRow, StepRow};
use cowork_db::{Owner, Step};
use rusqlite::{params, Connection, OptionalExtension, Row};

/// Automations as an owner of tables.
pub const OWNER: Owner = Owner {
    name: "automations",
    steps: &[Step::Sql(
        "CREATE TABLE automations (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            trigger_type TEXT NOT NULL,
            flow_json TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            trigger_state TEXT NOT NULL DEFAULT '{}',
            trigger_note TEXT NOT NULL DEFAULT ''
         );
         CREATE TABLE automation_runs (
            id TEXT PRIMARY KEY,
            flow_id TEXT NOT NULL,
            flow_name TEXT NOT NULL,
            flow_json TEXT NOT NULL,
            status TEXT NOT NULL,
            trigger TEXT NOT NULL,
            occurrence_key TEXT NOT NULL,
            cursor INTEGER NOT NULL DEFAULT 0,
            vars_json TEXT NOT NULL,
            output_json TEXT NOT NULL DEFAULT 'null',
            error TEXT NOT NULL DEFAULT '',
            waiting_json TEXT NOT NULL DEFAULT '',
            resume_at_ms INTEGER NOT NULL DEFAULT 0,
            started_ms INTEGER NOT NULL,
            finished_ms INTEGER NOT NULL DEFAULT 0,
            UNIQUE (flow_id, occurrence_key)
         );
         CREATE INDEX automation_runs_status ON automation_runs(status);
         CREATE TABLE automation_steps (
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            step_index INTEGER NOT NULL,
            step_id TEXT NOT NULL,
            block TEXT NOT NULL,
            status TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            started_ms INTEGER NOT NULL,
            finished_ms INTEGER NOT NULL DEFAULT 0,
            output_json TEXT NOT NULL DEFAULT 'null',
            error TEXT NOT NULL DEFAULT '',
            deadline_ms INTEGER NOT NULL DEFAULT 0,
            operation_id TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, seq)
         );",
    )],
};

const FLOW_COLS: &str = "id, name, enabled, trigger_type, flow_json, version, created_ms, \
                         updated_ms, trigger_state, trigger_note";

fn flow_row(r: &Row<'_>) -> rusqlite::Result<FlowRow> {
    Ok(FlowRow {
        id: r.get(0)?,
        name: r.get(1)?,
        enabled: r.get(2)?,
        trigger_type: r.get(3)?,
        json: r.get(4)?,
        version: r.get(5)?,
        created_ms: r.get(6)?,
        updated_ms: r.get(7)?,
        trigger_state: r.get(8)?,
        trigger_note: r.get(9)?,
    })
}

/// Insert a flow, or a new version of an existing id.
pub fn put_flow(c: &Connection, f: &FlowRow) -> rusqlite::Result<FlowRow> {
    c.execute(
        "INSERT INTO automations (id, name, enabled, trigger_type, flow_json, version, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, trigger_type = excluded.trigger_type,
            flow_json = excluded.flow_json, version = version + 1, updated_ms = excluded.updated_ms,
            trigger_state = '{}', trigger_note = ''",
        params![f.id, f.name, f.enabled, f.trigger_type, f.json, f.created_ms],
    )?;
    get_flow(c, &f.id).map(|o| o.unwrap_or_else(|| f.clone()))
}

/// One flow.
pub fn get_flow(c: &Connection, id: &str) -> rusqlite::Result<Option<FlowRow>> {
    c.query_row(
        &format!("SELECT {FLOW_COLS} FROM automations WHERE id = ?1"),
        [id],
        flow_row,
    )
    .optional()
}

/// Every flow, newest first.
pub fn list_flows(c: &Connection) -> rusqlite::Result<Vec<FlowRow>> {
    let mut s = c.prepare(&format!(
        "SELECT {FLOW_COLS} FROM automations ORDER BY created_ms DESC, id"
    ))?;
    let rows = s.query_map([], flow_row)?;
    rows.collect()
}

/// Turn a flow on or off; false when there is no such flow.
pub fn set_enabled(c: &Connection, id: &str, enabled: bool, now_ms: i64) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "UPDATE automations SET enabled = ?2, updated_ms = ?3, trigger_state = '{}' WHERE id = ?1",
        params![id, enabled, now_ms],
    )? > 0)
}

/// Delete a flow; false when there was none.
pub fn remove_flow(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM automations WHERE id = ?1", [id])? > 0)
}

/// A trigger's remembered state and what it last said.
pub fn set_trigger_state(
    c: &Connection,
    id: &str,
    state: &str,
    note: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE automations SET trigger_state = ?2, trigger_note = ?3 WHERE id = ?1",
        params![id, state, note],
    )
    .map(|_| ())
}

const RUN_COLS: &str = "id, flow_id, flow_name, flow_json, status, trigger, occurrence_key, cursor, \
                        vars_json, output_json, error, waiting_json, resume_at_ms, started_ms, finished_ms";

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        flow_id: r.get(1)?,
        flow_name: r.get(2)?,
        flow_json: r.get(3)?,
        status: r.get(4)?,
        trigger: r.get(5)?,
        occurrence_key: r.get(6)?,
        cursor: r.get::<_, i64>(7)? as usize,
        vars_json: r.get(8)?,
        output_json: r.get(9)?,
        error: r.get(10)?,
        waiting_json: r.get(11)?,
        resume_at_ms: r.get(12)?,
        started_ms: r.get(13)?,
        finished_ms: r.get(14)?,
    })
}

/// Start a run unless this flow already has one for this occurrence:
/// true when inserted.
pub fn insert_run(c: &Connection, r: &RunRow) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "INSERT OR IGNORE INTO automation_runs (id, flow_id, flow_name, flow_json, status, trigger,
            occurrence_key, cursor, vars_json, started_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9)",
        params![
            r.id,
            r.flow_id,
            r.flow_name,
            r.flow_json,
            r.status,
            r.trigger,
            r.occurrence_key,
            r.vars_json,
            r.started_ms
        ],
    )? > 0)
}

/// One run.
pub fn get_run(c: &Connection, id: &str) -> rusqlite::Result<Option<RunRow>> {
    c.query_row(
        &format!("SELECT {RUN_COLS} FROM automation_runs WHERE id = ?1"),
        [id],
        run_row,
    )
    .optional()
}

/// Runs, newest first (of one flow, or all).
pub fn list_runs(
    c: &Connection,
    flow_id: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<RunRow>> {
    let mut s = c.prepare(&format!(
        "SELECT {RUN_COLS} FROM automation_runs WHERE (?1 IS NULL OR flow_id = ?1)
         ORDER BY started_ms DESC, id DESC LIMIT ?2"
    ))?;
    let rows = s.query_map(params![flow_id, limit], run_row)?;
    rows.collect()
}

/// Runs in `status`.
pub fn runs_in(c: &Connection, status: &str) -> rusqlite::Result<Vec<RunRow>> {
    let mut s = c.prepare(&format!(
        "SELECT {RUN_COLS} FROM automation_runs WHERE status = ?1 ORDER BY started_ms"
    ))?;
    let rows = s.query_map([status], run_row)?;
    rows.collect()
}

/// Save a run's state (status, cursor, variables, result, waiting).
pub fn save_run(c: &Connection, r: &RunRow) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE automation_runs SET status = ?2, cursor = ?3, vars_json = ?4, output_json = ?5,
            error = ?6, waiting_json = ?7, resume_at_ms = ?8, finished_ms = ?9 WHERE id = ?1",
        params![
            r.id,
            r.status,
            r.cursor as i64,
            r.vars_json,
            r.output_json,
            r.error,
            r.waiting_json,
            r.resume_at_ms,
            r.finished_ms
        ],
    )
    .map(|_| ())
}

const STEP_COLS: &str =
    "seq, step_index, step_id, block, status, attempt, started_ms, finished_ms, \
                         output_json, error, deadline_ms, operation_id";

fn step_row(r: &Row<'_>) -> rusqlite::Result<StepRow> {
    Ok(StepRow {
        seq: r.get::<_, i64>(0)? as u32,
        index: r.get::<_, i64>(1)? as usize,
        step_id: r.get(2)?,
        block: r.get(3)?,
        status: r.get(4)?,
        attempt: r.get::<_, i64>(5)? as u32,
        started_ms: r.get(6)?,
        finished_ms: r.get(7)?,
        output_json: r.get(8)?,
        error: r.get(9)?,
        deadline_ms: r.get(10)?,
        operation_id: r.get(11)?,
    })
}

/// A run's step log, oldest first.
pub fn steps(c: &Connection, run_id: &str) -> rusqlite::Result<Vec<StepRow>> {
    let mut s = c.prepare(&format!(
        "SELECT {STEP_COLS} FROM automation_steps WHERE run_id = ?1 ORDER BY seq"
    ))?;
    let rows = s.query_map([run_id], step_row)?;
    rows.collect()
}

/// Begin a step: its row (`running`, or `waiting` for a delay), committed
/// before it does anything. Returns its sequence number.
pub fn begin_step(c: &Connection, run_id: &str, s: &StepRow) -> rusqlite::Result<u32> {
    let seq: i64 = c.query_row(
        "SELECT coalesce(max(seq), 0) + 1 FROM automation_steps WHERE run_id = ?1",
        [run_id],
        |r| r.get(0),
    )?;
    c.execute(
        "INSERT INTO automation_steps (run_id, seq, step_index, step_id, block, status, attempt,
            started_ms, deadline_ms, operation_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            run_id,
            seq,
            s.index as i64,
            s.step_id,
            s.block,
            s.status,
            s.attempt as i64,
            s.started_ms,
            s.deadline_ms,
            s.operation_id
        ],
    )?;
    Ok(seq as u32)
}

/// Update a step row's status (and operation) without finishing it.
pub fn mark_step(
    c: &Connection,
    run_id: &str,
    seq: u32,
    status: &str,
    operation_id: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE automation_steps SET status = ?3, operation_id = ?4 WHERE run_id = ?1 AND seq = ?2",
        params![run_id, seq as i64, status, operation_id],
    )
    .map(|_| ())
}

/// Finish a step and save the run in one transaction: the step's result
/// and where the run goes next are committed together.
pub fn finish_step(c: &Connection, run: &RunRow, s: &StepRow) -> rusqlite::Result<()> {
    let tx = c.unchecked_transaction()?;
    tx.execute(
        "UPDATE automation_steps SET status = ?3, finished_ms = ?4, output_json = ?5, error = ?6
         WHERE run_id = ?1 AND seq = ?2",
        params![
            run.id,
            s.seq as i64,
            s.status,
            s.finished_ms,
            s.output_json,
            s.error
        ],
    )?;
    save_run(&tx, run)?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, key: &str) -> RunRow {
        RunRow {
            id: id.into(),
            flow_id: "flow_1".into(),
            flow_name: "f".into(),
            flow_json: "{}".into(),
            status: "running".into(),
            trigger: "schedule".into(),
            occurrence_key: key.into(),
            cursor: 0,
            vars_json: "{}".into(),
            output_json: "null".into(),
            error: String::new(),
            waiting_json: String::new(),
            resume_at_ms: 0,
            started_ms: 1,
            finished_ms: 0,
        }
    }

    #[test]
    fn one_run_per_occurrence() {
        let c = crate::db::migrated(&[OWNER]);
        assert!(insert_run(&c, &run("run_a", "schedule:100")).unwrap());
        assert!(!insert_run(&c, &run("run_b", "schedule:100")).unwrap());
        assert!(insert_run(&c, &run("run_c", "schedule:160")).unwrap());
        assert_eq!(list_runs(&c, Some("flow_1"), 10).unwrap().len(), 2);
    }

    #[test]
    fn a_step_and_the_cursor_commit_together() {
        let c = crate::db::migrated(&[OWNER]);
        let mut r = run("run_a", "manual:1");
        insert_run(&c, &r).unwrap();
        let mut s = StepRow {
            seq: 0,
            index: 0,
            step_id: "a".into(),
            block: "delay".into(),
            status: "running".into(),
            attempt: 1,
            started_ms: 5,
            finished_ms: 0,
            output_json: "null".into(),
            error: String::new(),
            deadline_ms: 99,
            operation_id: String::new(),
        };
        s.seq = begin_step(&c, &r.id, &s).unwrap();
        assert_eq!(s.seq, 1);
        s.status = "done".into();
        s.output_json = "{\"waited_s\":1}".into();
        r.cursor = 1;
        r.vars_json = "{\"a\":{\"waited_s\":1}}".into();
        finish_step(&c, &r, &s).unwrap();
        let back = get_run(&c, "run_a").unwrap().unwrap();
        assert_eq!(back.cursor, 1);
        let log = steps(&c, "run_a").unwrap();
        assert_eq!((log[0].status.as_str(), log[0].deadline_ms), ("done", 99));
    }
}
