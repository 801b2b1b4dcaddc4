//! `traces_spans`: the spans every process records of the requests it
//! serves (W3C trace context; one trace across processes), written by each
//! process for itself, read by coworkd for `coworkctl trace`. A span row
//! holds names, ids, timings, outcomes and sizes, never message text,
//! typed text, clipboard, secrets or tool arguments (the writers keep only
//! allowlisted attributes: see [`KEPT_ATTRIBUTES`]).

use crate::{Ledger, MigrateError, Owner, Step};
use rusqlite::{params, OptionalExtension};

pub use rusqlite::Connection;

/// Where the traces table's versions are recorded.
pub const LEDGER: Ledger = Ledger::Single("traces_schema_migrations");

/// The traces table as an owner (append only). Every process that records
/// spans migrates it; a step is applied once whoever comes first.
pub const OWNER: Owner = Owner {
    name: "traces",
    steps: &[Step::Sql(
        "CREATE TABLE traces_spans (
            trace_id TEXT NOT NULL,
            span_id TEXT NOT NULL,
            parent_span_id TEXT NOT NULL,
            process TEXT NOT NULL,
            name TEXT NOT NULL,
            start_us INTEGER NOT NULL,
            duration_us INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            attributes TEXT NOT NULL,
            PRIMARY KEY (trace_id, span_id));
         CREATE INDEX traces_spans_start ON traces_spans(start_us);",
    )],
};

/// The span attributes kept: ids, routes, sizes, timings, outcomes.
/// Anything else a span carries is dropped before it is written.
pub const KEPT_ATTRIBUTES: &[&str] = &[
    "worker",
    "path",
    "route",
    "grpc.status",
    "wait_ms",
    "bytes",
    "outcome",
    "engine",
    "model",
    "ttft_ms",
    "prompt_tokens",
    "completion_tokens",
];

/// One span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRow {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; all zeros for a root.
    pub parent_span_id: String,
    /// "coworkd", "agents", ...
    pub process: String,
    /// The span's name ("relay", ...).
    pub name: String,
    /// Start, Unix µs.
    pub start_us: i64,
    /// Duration, µs.
    pub duration_us: i64,
    /// "ok", "error", or a gRPC status name.
    pub outcome: String,
    /// Kept attributes, as a JSON object.
    pub attributes: String,
}

/// Open cowork.db at `path` for writing spans (traces table migrated).
pub fn open(path: &std::path::Path) -> Result<Connection, MigrateError> {
    let mut c = crate::open(path).map_err(|source| MigrateError::Sql {
        owner: OWNER.name,
        version: 0,
        source,
    })?;
    crate::migrate(&mut c, LEDGER, &[OWNER])?;
    Ok(c)
}

/// Write spans in one transaction (a span written twice is replaced).
pub fn insert(c: &Connection, spans: &[SpanRow]) -> rusqlite::Result<()> {
    let tx = c.unchecked_transaction()?;
    {
        let mut s = tx.prepare_cached(
            "INSERT OR REPLACE INTO traces_spans (trace_id, span_id, parent_span_id, process,
                name, start_us, duration_us, outcome, attributes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for r in spans {
            s.execute(params![
                r.trace_id,
                r.span_id,
                r.parent_span_id,
                r.process,
                r.name,
                r.start_us,
                r.duration_us,
                r.outcome,
                r.attributes
            ])?;
        }
    }
    tx.commit()
}

/// Every span of `trace_id`, by start time.
pub fn spans_of(c: &Connection, trace_id: &str) -> rusqlite::Result<Vec<SpanRow>> {
    let mut s = c.prepare_cached(
        "SELECT trace_id, span_id, parent_span_id, process, name, start_us, duration_us,
            outcome, attributes FROM traces_spans WHERE trace_id = ?1 ORDER BY start_us, span_id",
    )?;
    let rows = s.query_map([trace_id], |r| {
        Ok(SpanRow {
            trace_id: r.get(0)?,
            span_id: r.get(1)?,
            parent_span_id: r.get(2)?,
            process: r.get(3)?,
            name: r.get(4)?,
            start_us: r.get(5)?,
            duration_us: r.get(6)?,
            outcome: r.get(7)?,
            attributes: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// The trace of the newest call coworkd relayed (None without any):
/// background calls a worker makes to another directly are not "last".
pub fn last_trace(c: &Connection) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT trace_id FROM traces_spans WHERE process = 'coworkd' AND name = 'relay'
         ORDER BY start_us DESC LIMIT 1",
        [],
        |r| r.get(0),
    )
    .optional()
}

/// Delete spans that started before `cutoff_us`, 1000 at a time (no one
/// transaction holds the write lock long): how many went.
pub fn expire(c: &Connection, cutoff_us: i64) -> rusqlite::Result<usize> {
    let mut n = 0;
    loop {
        let k = c.execute(
            "DELETE FROM traces_spans WHERE rowid IN
                (SELECT rowid FROM traces_spans WHERE start_us < ?1 LIMIT 1000)",
            [cutoff_us],
        )?;
        n += k;
        if k < 1000 {
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: &str, id: &str, parent: &str, start: i64) -> SpanRow {
        SpanRow {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            process: "coworkd".into(),
            name: "relay".into(),
            start_us: start,
            duration_us: 10,
            outcome: "ok".into(),
            attributes: "{}".into(),
        }
    }

    #[test]
    fn spans_are_stored_per_trace_the_last_found_and_old_ones_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cowork.db");
        let c = open(&path).unwrap();
        // A second process migrating the same file changes nothing.
        drop(open(&path).unwrap());
        assert_eq!(last_trace(&c).unwrap(), None);
        insert(
            &c,
            &[
                span("a", "1", "0", 100),
                span("a", "2", "1", 150),
                span("b", "3", "0", 300),
            ],
        )
        .unwrap();
        insert(&c, &[span("a", "2", "1", 150)]).unwrap();
        assert_eq!(spans_of(&c, "a").unwrap().len(), 2);
        assert_eq!(last_trace(&c).unwrap().as_deref(), Some("b"));
        assert_eq!(expire(&c, 200).unwrap(), 2);
        assert!(spans_of(&c, "a").unwrap().is_empty());
    }
}
