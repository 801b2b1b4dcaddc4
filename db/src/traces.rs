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
    steps: &[
        Step::Sql(
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
        ),
        // Spans a process could not queue (its writer fell behind) or
        // export, counted per process.
        Step::Sql(
            "CREATE TABLE traces_dropped (
            process TEXT PRIMARY KEY,
            dropped INTEGER NOT NULL DEFAULT 0,
            otlp_dropped INTEGER NOT NULL DEFAULT 0,
            otlp_failed INTEGER NOT NULL DEFAULT 0,
            updated_us INTEGER NOT NULL);",
        ),
        // One index fewer to update per span (the writer's SQLite work
        // per span: 14.8 k instructions with it, 10.7 k without; the
        // benchmark in docs/BENCHMARKS.md). What it served goes by rowid,
        // the order spans were written in: the newest relayed call
        // ([`last_trace`]), the oldest spans ([`cap`]).
        Step::Sql("DROP INDEX IF EXISTS traces_spans_start;"),
    ],
};

/// The allowlist, written once: the lists and the match below come from
/// the same words, so they cannot drift apart.
macro_rules! kept_attributes {
    (text: [$($text:literal),* $(,)?], numbers: [$($number:literal),* $(,)?] $(,)?) => {
        /// The span attributes kept: ids, routes, sizes, timings, outcomes.
        /// Anything else a span carries is dropped before it is written
        /// or exported.
        pub const KEPT_ATTRIBUTES: &[&str] = &[$($text,)* $($number,)*];

        /// The kept attributes that are counts or durations: stored (and
        /// exported) as numbers.
        pub const NUMERIC_ATTRIBUTES: &[&str] = &[$($number),*];

        /// Whether `key` is a kept attribute ([`KEPT_ATTRIBUTES`]) and, if
        /// so, whether it is a number ([`NUMERIC_ATTRIBUTES`]): the lists as
        /// one match, for the writer and the exporter (asked for every
        /// attribute of every span).
        pub fn kept_attribute(key: &str) -> Option<Kept> {
            match key {
                $($number)|* => Some(Kept::Number),
                $($text)|* => Some(Kept::Text),
                _ => None,
            }
        }
    };
}

kept_attributes! {
    text: [
        "worker",
        "path",
        "route",
        "grpc.status",
        "outcome",
        "engine",
        "model",
        "op",
        "server",
        "tool",
        "action",
        "decided_by",
        "decision",
    ],
    numbers: [
        "wait_ms",
        "bytes",
        "ttft_ms",
        "prompt_tokens",
        "completion_tokens",
        "rows",
        "items",
        "tokens",
    ],
}

/// How a kept attribute is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// As a JSON string.
    Text,
    /// As a JSON number (a count or a duration).
    Number,
}

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
    /// How it ended: "ok", "error", "grpc-status N", "cancelled" (the
    /// caller hung up), or the span's own word ("needs_approval",
    /// "tool_error", an operation's status...).
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

/// One span to write, borrowed (the batch writer builds its columns in
/// buffers it reuses; see [`insert_with`]).
#[derive(Debug, Clone, Copy)]
pub struct SpanRef<'a> {
    /// 32 hex digits.
    pub trace_id: &'a str,
    /// 16 hex digits.
    pub span_id: &'a str,
    /// 16 hex digits; all zeros for a root.
    pub parent_span_id: &'a str,
    /// "coworkd", "agents", ...
    pub process: &'a str,
    /// The span's name.
    pub name: &'a str,
    /// Start, Unix µs.
    pub start_us: i64,
    /// Duration, µs.
    pub duration_us: i64,
    /// How it ended (as [`SpanRow::outcome`]).
    pub outcome: &'a str,
    /// Kept attributes, as a JSON object.
    pub attributes: &'a str,
}

impl SpanRow {
    /// This row, borrowed.
    pub fn as_ref(&self) -> SpanRef<'_> {
        SpanRef {
            trace_id: &self.trace_id,
            span_id: &self.span_id,
            parent_span_id: &self.parent_span_id,
            process: &self.process,
            name: &self.name,
            start_us: self.start_us,
            duration_us: self.duration_us,
            outcome: &self.outcome,
            attributes: &self.attributes,
        }
    }
}

/// Spans written per INSERT statement while a batch has that many left:
/// SQLite spends about 6.4 k instructions a row on one statement of 32
/// rows, 10.7 k on each of 32 one-row statements (statement start,
/// cursors and bindings are paid per statement; docs/BENCHMARKS.md).
const ROWS_PER_INSERT: usize = 32;

/// The columns of a span row, in the INSERT statements' order.
const INSERT_COLUMNS: &str = "INSERT OR REPLACE INTO traces_spans (trace_id, span_id,
    parent_span_id, process, name, start_us, duration_us, outcome, attributes) VALUES ";

/// The parameters (1-based, within a row of `many`) of the text columns
/// that mostly repeat from span to span: parent id (zeros for a root),
/// process, name and outcome. SQLite copies every text it is given and
/// keeps a statement's values from one execution to the next, so these are
/// bound again only when they change (4 of a row's 7 text bindings: 1.6 k
/// instructions a row of SQLite's copying and allocation).
const REPEATING: [usize; 4] = [3, 4, 5, 8];

/// The longest repeating value remembered; a longer one is bound every
/// time.
const REMEMBERED: usize = 24;

/// The text a parameter of `many` holds (when short enough to remember).
#[derive(Debug, Clone, Copy)]
struct Remembered {
    /// Its length; [`Remembered::NONE`]'s is over [`REMEMBERED`].
    len: u8,
    bytes: [u8; REMEMBERED],
}

impl Remembered {
    /// Nothing known: the next value is bound.
    const NONE: Self = Self {
        len: u8::MAX,
        bytes: [0; REMEMBERED],
    };

    /// Whether the parameter holds `v` already.
    fn holds(&self, v: &str) -> bool {
        usize::from(self.len) == v.len() && self.bytes.get(..v.len()) == Some(v.as_bytes())
    }

    /// The parameter now holds `v`.
    fn set(&mut self, v: &str) {
        match self.bytes.get_mut(..v.len()) {
            Some(b) => {
                b.copy_from_slice(v.as_bytes());
                self.len = v.len() as u8;
            }
            None => *self = Self::NONE,
        }
    }
}

/// Where [`insert_with`]'s caller puts the spans of one transaction.
pub struct SpanSink<'c> {
    /// One row.
    one: rusqlite::CachedStatement<'c>,
    /// [`ROWS_PER_INSERT`] rows.
    many: rusqlite::CachedStatement<'c>,
    /// What each row of `many` holds in its [`REPEATING`] parameters.
    held: [[Remembered; REPEATING.len()]; ROWS_PER_INSERT],
    /// Rows still to go through `many`.
    grouped: usize,
    /// Rows bound into `many`, not yet written.
    bound: usize,
    /// Rows announced and not yet put.
    left: usize,
    /// A put failed: the transaction is not committed, whatever the
    /// caller does with the error.
    failed: bool,
}

impl SpanSink<'_> {
    /// Write `span` (a span written twice is replaced). Its columns are
    /// copied: the caller may reuse their buffers at once.
    pub fn put(&mut self, span: &SpanRef<'_>) -> rusqlite::Result<()> {
        let put = self.write(span);
        self.failed |= put.is_err();
        put
    }

    fn write(&mut self, span: &SpanRef<'_>) -> rusqlite::Result<()> {
        self.left = self
            .left
            .checked_sub(1)
            .ok_or(rusqlite::Error::InvalidParameterCount(1, 0))?;
        if self.grouped == 0 {
            return self
                .one
                .execute(params![
                    span.trace_id,
                    span.span_id,
                    span.parent_span_id,
                    span.process,
                    span.name,
                    span.start_us,
                    span.duration_us,
                    span.outcome,
                    span.attributes
                ])
                .map(|_| ());
        }
        let at = self.bound * 9;
        let m = &mut self.many;
        m.raw_bind_parameter(at + 1, span.trace_id)?;
        m.raw_bind_parameter(at + 2, span.span_id)?;
        let repeating = [span.parent_span_id, span.process, span.name, span.outcome];
        let held = &mut self.held[self.bound];
        for ((param, value), held) in REPEATING.iter().zip(repeating).zip(held) {
            if !held.holds(value) {
                // Forgotten first: a failed bind leaves it unknown.
                *held = Remembered::NONE;
                m.raw_bind_parameter(at + param, value)?;
                held.set(value);
            }
        }
        m.raw_bind_parameter(at + 6, span.start_us)?;
        m.raw_bind_parameter(at + 7, span.duration_us)?;
        m.raw_bind_parameter(at + 9, span.attributes)?;
        self.grouped -= 1;
        self.bound += 1;
        if self.bound == ROWS_PER_INSERT {
            self.bound = 0;
            m.raw_execute()?;
        }
        Ok(())
    }
}

/// Write the `count` spans `fill` puts in the sink, in one transaction
/// (none of them when `fill` fails, a put fails, or `fill` puts more or
/// fewer than `count`: `InvalidParameterCount(put, count)`).
pub fn insert_with(
    c: &Connection,
    count: usize,
    fill: impl FnOnce(&mut SpanSink<'_>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    static MANY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let many = MANY.get_or_init(|| {
        let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";
        format!("{INSERT_COLUMNS}{}", vec![row; ROWS_PER_INSERT].join(", "))
    });
    let tx = c.unchecked_transaction()?;
    {
        let mut sink = SpanSink {
            one: tx.prepare_cached(&format!(
                "{INSERT_COLUMNS}(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?,
            many: tx.prepare_cached(many)?,
            // A statement comes out of the cache with its parameters
            // cleared.
            held: [[Remembered::NONE; REPEATING.len()]; ROWS_PER_INSERT],
            grouped: count - count % ROWS_PER_INSERT,
            bound: 0,
            left: count,
            failed: false,
        };
        fill(&mut sink)?;
        if sink.failed || sink.left > 0 {
            // Announced, put.
            return Err(rusqlite::Error::InvalidParameterCount(
                count - sink.left,
                count,
            ));
        }
    }
    tx.commit()
}

/// Write spans in one transaction (a span written twice is replaced).
pub fn insert(c: &Connection, spans: &[SpanRow]) -> rusqlite::Result<()> {
    insert_with(c, spans.len(), |sink| {
        spans.iter().try_for_each(|r| sink.put(&r.as_ref()))
    })
}

/// Every span of `trace_id`, by start time.
pub fn spans_of(c: &Connection, trace_id: &str) -> rusqlite::Result<Vec<SpanRow>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM traces_spans WHERE trace_id = ?1 ORDER BY start_us, span_id"
    ))?;
    let rows = s.query_map([trace_id], row)?;
    rows.collect()
}

/// The trace of the newest call coworkd relayed (None without any):
/// background calls a worker makes to another directly are not "last".
/// "Newest" is the latest start among the 256 relay spans written last
/// (the start time has no index): a call is missed only when 256 calls
/// that started before it ended after it.
pub fn last_trace(c: &Connection) -> rusqlite::Result<Option<String>> {
    c.query_row(
        // The newest relay spans written (by rowid: no index on the start
        // time), the one that started last of them: a long call written
        // after a shorter, later one is not "last".
        "SELECT trace_id FROM
            (SELECT trace_id, start_us FROM traces_spans
             WHERE process = 'coworkd' AND name = 'relay' ORDER BY rowid DESC LIMIT 256)
         ORDER BY start_us DESC LIMIT 1",
        [],
        |r| r.get(0),
    )
    .optional()
}

/// The newest trace with a span of operation `op` (attribute `op`).
pub fn last_trace_of_op(c: &Connection, op: &str) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT trace_id FROM traces_spans WHERE json_extract(attributes, '$.op') = ?1
         ORDER BY start_us DESC LIMIT 1",
        [op],
        |r| r.get(0),
    )
    .optional()
}

/// Every span of operation `op` (attribute `op`), across its traces, by
/// start time: the operation's timeline.
pub fn spans_of_op(c: &Connection, op: &str) -> rusqlite::Result<Vec<SpanRow>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM traces_spans WHERE json_extract(attributes, '$.op') = ?1
             ORDER BY start_us, span_id"
    ))?;
    let rows = s.query_map([op], row)?;
    rows.collect()
}

/// An operation's timeline: its spans (attribute `op`) across traces,
/// and every span under one of them (the MCP call under a tool call,
/// coworkd's relay and browser-agent's request under a browser action),
/// by start time.
pub fn timeline(c: &Connection, op: &str) -> rusqlite::Result<Vec<SpanRow>> {
    let tagged = spans_of_op(c, op)?;
    let mut traces: Vec<&str> = tagged.iter().map(|s| s.trace_id.as_str()).collect();
    traces.sort_unstable();
    traces.dedup();
    let mut all = Vec::new();
    for t in traces {
        all.extend(spans_of(c, t)?);
    }
    let mut keep: std::collections::HashSet<(String, String)> = tagged
        .iter()
        .map(|s| (s.trace_id.clone(), s.span_id.clone()))
        .collect();
    // Descendants: a span is kept when its parent is (bounded passes).
    for _ in 0..16 {
        let before = keep.len();
        for s in &all {
            if keep.contains(&(s.trace_id.clone(), s.parent_span_id.clone())) {
                keep.insert((s.trace_id.clone(), s.span_id.clone()));
            }
        }
        if keep.len() == before {
            break;
        }
    }
    all.retain(|s| keep.contains(&(s.trace_id.clone(), s.span_id.clone())));
    all.sort_by(|a, b| (a.start_us, &a.span_id).cmp(&(b.start_us, &b.span_id)));
    Ok(all)
}

/// A span row's columns, in [`row`]'s order.
const COLUMNS: &str =
    "trace_id, span_id, parent_span_id, process, name, start_us, duration_us, outcome, attributes";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SpanRow> {
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
}

/// Spans one process lost, added to its counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    /// Not written to cowork.db: the queue was full, or their write
    /// failed.
    pub dropped: u64,
    /// Not queued for the OTLP collector.
    pub otlp_dropped: u64,
    /// In exports the collector did not take.
    pub otlp_failed: u64,
}

impl Lost {
    /// Nothing lost.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Add `lost` to `process`'s counts.
pub fn add_lost(c: &Connection, process: &str, lost: Lost, now_us: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO traces_dropped (process, dropped, otlp_dropped, otlp_failed, updated_us)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(process) DO UPDATE SET dropped = dropped + ?2,
            otlp_dropped = otlp_dropped + ?3, otlp_failed = otlp_failed + ?4, updated_us = ?5",
        params![
            process,
            lost.dropped as i64,
            lost.otlp_dropped as i64,
            lost.otlp_failed as i64,
            now_us
        ],
    )
    .map(|_| ())
}

/// What the traces table holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Spans stored.
    pub spans: u64,
    /// Their size (bytes of their columns; the file's pages hold a little
    /// more).
    pub bytes: u64,
    /// The oldest span's start, Unix µs (0 without any).
    pub oldest_us: i64,
    /// Per process, what it lost.
    pub lost: Vec<(String, Lost)>,
}

/// The bytes a span's row takes, as [`stats`] and [`cap`] count them.
const ROW_BYTES: &str = "length(trace_id) + length(span_id) + length(parent_span_id)
    + length(process) + length(name) + length(outcome) + length(attributes) + 24";

/// Count what is stored and lost.
pub fn stats(c: &Connection) -> rusqlite::Result<Stats> {
    let (spans, bytes, oldest_us) = c.query_row(
        &format!(
            "SELECT count(*), coalesce(sum({ROW_BYTES}), 0), coalesce(min(start_us), 0)
             FROM traces_spans"
        ),
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(2)?)),
    )?;
    let mut s = c.prepare(
        "SELECT process, dropped, otlp_dropped, otlp_failed FROM traces_dropped ORDER BY process",
    )?;
    let lost = s
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Lost {
                    dropped: r.get::<_, i64>(1)? as u64,
                    otlp_dropped: r.get::<_, i64>(2)? as u64,
                    otlp_failed: r.get::<_, i64>(3)? as u64,
                },
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Stats {
        spans: spans as u64,
        bytes: bytes as u64,
        oldest_us,
        lost,
    })
}

/// Keep the table under `max_bytes`: when it is over, delete the spans
/// written first (1000 at a time) until it is under nine tenths of it. How many
/// went.
pub fn cap(c: &Connection, max_bytes: u64) -> rusqlite::Result<usize> {
    let st = stats(c)?;
    if st.bytes <= max_bytes || st.spans == 0 {
        return Ok(0);
    }
    let per_span = (st.bytes / st.spans).max(1);
    let target = max_bytes / 10 * 9;
    let mut over = (st.bytes - target).div_ceil(per_span) as usize;
    let mut n = 0;
    while over > 0 {
        let k = c.execute(
            "DELETE FROM traces_spans WHERE rowid IN
                (SELECT rowid FROM traces_spans ORDER BY rowid LIMIT ?1)",
            [over.min(1000) as i64],
        )?;
        if k == 0 {
            break;
        }
        n += k;
        over = over.saturating_sub(k);
    }
    Ok(n)
}

/// Delete spans that started before `cutoff_us`, 1000 at a time: how
/// many went. The start time has no index, so each batch's rows are found
/// by a read (which takes no write lock) going on through the table by
/// rowid, and deleted by their rowid range in a short write of their own.
pub fn expire(c: &Connection, cutoff_us: i64) -> rusqlite::Result<usize> {
    let (mut n, mut after) = (0, i64::MIN);
    loop {
        let range: Option<(i64, i64)> = c.query_row(
            "SELECT min(rowid), max(rowid) FROM
                (SELECT rowid FROM traces_spans WHERE rowid > ?2 AND start_us < ?1
                 ORDER BY rowid LIMIT 1000)",
            params![cutoff_us, after],
            |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)),
        )?;
        let Some((first, last)) = range else {
            return Ok(n);
        };
        n += c.execute(
            "DELETE FROM traces_spans WHERE rowid BETWEEN ?2 AND ?3 AND start_us < ?1",
            params![cutoff_us, first, last],
        )?;
        after = last;
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
    fn kept_attribute_agrees_with_the_lists() {
        for key in KEPT_ATTRIBUTES {
            let want = if NUMERIC_ATTRIBUTES.contains(key) {
                Kept::Number
            } else {
                Kept::Text
            };
            assert_eq!(kept_attribute(key), Some(want), "{key}");
        }
        for key in NUMERIC_ATTRIBUTES {
            assert!(KEPT_ATTRIBUTES.contains(key), "{key}");
        }
        for key in ["message", "text", "args", "code.file.path", "Path", ""] {
            assert_eq!(kept_attribute(key), None, "{key}");
        }
    }

    #[test]
    fn spans_written_in_groups_and_singly_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("cowork.db")).unwrap();
        // 70: two statements of 32 rows, then 6 rows one at a time.
        let rows: Vec<SpanRow> = (0..70)
            .map(|i| SpanRow {
                trace_id: "t".into(),
                span_id: format!("{i:016x}"),
                parent_span_id: format!("p{i}"),
                process: format!("process {i}"),
                name: format!("name {i}"),
                start_us: 1000 + i,
                duration_us: 7 * i,
                outcome: format!("outcome {i}"),
                attributes: format!("{{\"rows\":{i}}}"),
            })
            .collect();
        insert(&c, &rows).unwrap();
        assert_eq!(spans_of(&c, "t").unwrap(), rows);
        // Fewer spans put than announced: an error, and none written.
        let err = insert_with(&c, 40, |sink| {
            (0..33).try_for_each(|i| sink.put(&span("u", &i.to_string(), "0", i).as_ref()))
        });
        assert!(err.is_err());
        // More than announced, the error ignored by the caller: none.
        let err = insert_with(&c, 1, |sink| {
            for i in 0..2 {
                let _ = sink.put(&span("u", &i.to_string(), "0", i).as_ref());
            }
            Ok(())
        });
        assert!(
            matches!(err, Err(rusqlite::Error::InvalidParameterCount(..))),
            "{err:?}"
        );
        assert!(spans_of(&c, "u").unwrap().is_empty());
    }

    #[test]
    fn repeating_columns_are_right_whether_they_repeat_change_or_are_long() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("cowork.db")).unwrap();
        let long = "a name longer than twenty-four bytes";
        // Four statements of 32 rows per batch: each row of a statement
        // sees values that stay, change, change back, grow past what is
        // remembered (or fill it exactly), shrink to a prefix of what it
        // held, or are empty.
        let rows: Vec<SpanRow> = (0..128)
            .map(|i: i64| SpanRow {
                trace_id: "t".into(),
                span_id: format!("{i:016x}"),
                parent_span_id: if i % 3 == 0 {
                    "0".repeat(16)
                } else {
                    format!("{:016x}", i / 32)
                },
                process: "coworkd".into(),
                name: match (i / 32, i % 4) {
                    (1, 0) | (1, 2) => long.into(),
                    // Exactly what is remembered, and one byte more.
                    (1, 1) => "x".repeat(REMEMBERED),
                    (2, 1) => "x".repeat(REMEMBERED + 1),
                    (2, 3) => String::new(),
                    (2, 0) | (2, 2) => "relay".into(),
                    (3, _) => "rel".into(),
                    _ => "relay".into(),
                },
                start_us: 1000 + i,
                duration_us: i,
                outcome: match (i / 32) % 2 {
                    _ if i % 5 == 4 => String::new(),
                    0 => "ok".into(),
                    _ => format!("grpc-status {}", i % 17),
                },
                attributes: "{}".into(),
            })
            .collect();
        insert(&c, &rows).unwrap();
        // And again in the next transaction (the statement from the cache).
        let again: Vec<SpanRow> = rows
            .iter()
            .map(|r| SpanRow {
                trace_id: "u".into(),
                outcome: "cancelled".into(),
                ..r.clone()
            })
            .collect();
        insert(&c, &again).unwrap();
        let by_id = |mut v: Vec<SpanRow>| {
            v.sort_by(|a, b| a.span_id.cmp(&b.span_id));
            v
        };
        assert_eq!(by_id(spans_of(&c, "t").unwrap()), rows);
        assert_eq!(by_id(spans_of(&c, "u").unwrap()), again);
    }

    #[test]
    fn expiry_goes_through_the_table_in_batches_and_keeps_the_young() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("cowork.db")).unwrap();
        // 2,500 old spans with young ones between them, in three batches.
        let rows: Vec<SpanRow> = (0..3000)
            .map(|i| {
                span(
                    "t",
                    &format!("{i:016}"),
                    "0",
                    if i % 6 == 5 { 10_000 } else { i },
                )
            })
            .collect();
        insert(&c, &rows).unwrap();
        assert_eq!(expire(&c, 5_000).unwrap(), 2500);
        assert_eq!(stats(&c).unwrap().spans, 500);
        assert_eq!(stats(&c).unwrap().oldest_us, 10_000);
        assert_eq!(expire(&c, 5_000).unwrap(), 0);
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
        // Written last, started before "b": "b" is still the last call.
        assert_eq!(last_trace(&c).unwrap().as_deref(), Some("b"));
        // Written in another order than they started: the later start wins.
        insert(&c, &[span("d", "5", "0", 350), span("e", "6", "0", 320)]).unwrap();
        assert_eq!(last_trace(&c).unwrap().as_deref(), Some("d"));
        let mut other = span("c", "4", "0", 400);
        other.process = "agents".into();
        insert(&c, &[other]).unwrap();
        assert_eq!(
            last_trace(&c).unwrap().as_deref(),
            Some("d"),
            "coworkd's only"
        );
        // One index on the table (its key): the writer updates no other.
        let indexes: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'traces_spans'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 1);
        assert_eq!(expire(&c, 200).unwrap(), 2);
        assert!(spans_of(&c, "a").unwrap().is_empty());
    }

    #[test]
    fn the_size_cap_deletes_the_oldest_and_lost_spans_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("cowork.db")).unwrap();
        let rows: Vec<_> = (0..500)
            .map(|i| {
                let mut s = span("t", &format!("{i:016}"), "0", i);
                s.attributes = format!("{{\"op\":\"op-{}\"}}", i % 2);
                s
            })
            .collect();
        insert(&c, &rows).unwrap();
        assert_eq!(last_trace_of_op(&c, "op-1").unwrap().as_deref(), Some("t"));
        assert_eq!(spans_of_op(&c, "op-0").unwrap().len(), 250);
        // A child without `op` under an op span is in the timeline; an
        // unrelated span of the same trace is not.
        let mut child = span("t", "c1", &format!("{:016}", 1), 1000);
        child.name = "request".into();
        let mut other = span("t", "o1", "0", 1001);
        other.name = "unrelated".into();
        insert(&c, &[child, other]).unwrap();
        let tl = timeline(&c, "op-1").unwrap();
        assert_eq!(tl.len(), 251);
        assert_eq!(tl.last().unwrap().name, "request");
        let before = stats(&c).unwrap();
        assert_eq!(before.spans, 502);
        assert_eq!(cap(&c, before.bytes).unwrap(), 0, "not over");
        let gone = cap(&c, before.bytes / 2).unwrap();
        let after = stats(&c).unwrap();
        assert!(after.bytes <= before.bytes / 2, "{after:?}");
        assert!(gone >= 250, "{gone}");
        assert_eq!(after.oldest_us, gone as i64, "the oldest went first");
        add_lost(
            &c,
            "agents",
            Lost {
                dropped: 3,
                ..Default::default()
            },
            1,
        )
        .unwrap();
        add_lost(
            &c,
            "agents",
            Lost {
                dropped: 2,
                otlp_dropped: 1,
                otlp_failed: 4,
            },
            2,
        )
        .unwrap();
        assert_eq!(
            stats(&c).unwrap().lost,
            vec![(
                "agents".to_owned(),
                Lost {
                    dropped: 5,
                    otlp_dropped: 1,
                    otlp_failed: 4
                }
            )]
        );
    }
}
