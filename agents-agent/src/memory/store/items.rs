//! Items (one row per chunk of a source) with their FTS5 index kept by
//! triggers, the sources' high-water marks, forgetting, keyword search
//! and the counts `memory status` shows.

use super::{app_key, begin, delete_vectors, indexes, kind_of, stream_of};
use crate::memory::item::{Item, Kind, Source, Stream};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::collections::BTreeMap;

/// What storing a source did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Its items were written (this many chunks).
    Written(usize),
    /// It was indexed already with the same text, time and app.
    Unchanged,
    /// It was forgotten, or has no text: nothing is indexed.
    Skipped,
}

/// Delete items by id from the keyword index (the trigger) and every
/// vector index of their type, in the caller's transaction.
pub(super) fn delete_items(c: &Connection, kind: Kind, ids: &[i64]) -> rusqlite::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    // What was made of raw history goes with it: the observations drawn
    // from it, and the snippets answers cited.
    let mut sources = std::collections::BTreeSet::new();
    if matches!(kind, Kind::Activity | Kind::Conversation | Kind::Document) {
        let mut s = c.prepare_cached("SELECT source_id FROM memory_items WHERE id = ?1")?;
        for id in ids {
            if let Some(src) = s.query_row([id], |r| r.get::<_, String>(0)).optional()? {
                sources.insert(src);
            }
        }
    }
    for index in indexes(c, Some(kind))? {
        delete_vectors(c, &index, ids)?;
    }
    let mut s = c.prepare_cached("DELETE FROM memory_items WHERE id = ?1")?;
    for id in ids {
        s.execute([id])?;
    }
    let sources: Vec<String> = sources.into_iter().collect();
    super::drop_derived(c, &sources)?;
    crate::chat::store::drop_citations(c, &sources)?;
    Ok(())
}

/// Store `source` as `chunks` (its text split for indexing), replacing
/// what was indexed for it when it changed. Keyword-searchable when the
/// transaction commits; embedded later by a job.
pub fn put_source(
    c: &Connection,
    kind: Kind,
    source: &Source,
    chunks: &[String],
) -> rusqlite::Result<Stored> {
    if chunks.is_empty() || is_forgotten(c, source)? {
        return Ok(Stored::Skipped);
    }
    let mut s = c.prepare_cached(
        "SELECT id, text, time_ms, app FROM memory_items
         WHERE kind = ?1 AND collection = ?2 AND source_id = ?3 AND stream = ?4 ORDER BY chunk",
    )?;
    let old: Vec<(i64, String, i64, String)> = s
        .query_map(
            params![
                kind.as_str(),
                source.collection,
                source.source_id,
                source.stream.as_str()
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let same = old.len() == chunks.len()
        && old
            .iter()
            .zip(chunks)
            .all(|(o, t)| &o.1 == t && o.2 == source.time_ms && o.3 == source.app);
    if same {
        return Ok(Stored::Unchanged);
    }
    let ids: Vec<i64> = old.iter().map(|o| o.0).collect();
    delete_items(c, kind, &ids)?;
    let mut ins = c.prepare_cached(
        "INSERT INTO memory_items (kind, stream, source_id, chunk, text, time_ms, app, collection,
            row, thread, seq, app_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for (n, text) in chunks.iter().enumerate() {
        ins.execute(params![
            kind.as_str(),
            source.stream.as_str(),
            source.source_id,
            n as i64,
            text,
            source.time_ms,
            source.app,
            source.collection,
            source.row,
            source.thread,
            source.seq,
            app_key(&source.app)
        ])?;
    }
    Ok(Stored::Written(chunks.len()))
}

/// Store an imported document's `chunks` (see [`put_source`]); a
/// document imported again keeps the time it was first imported, so an
/// unchanged file changes nothing.
pub fn put_document(
    c: &Connection,
    source: &Source,
    chunks: &[String],
) -> rusqlite::Result<Stored> {
    let first: Option<i64> = c
        .prepare_cached(
            "SELECT min(time_ms) FROM memory_items
             WHERE kind = ?1 AND collection = ?2 AND source_id = ?3",
        )?
        .query_row(
            params![Kind::Document.as_str(), source.collection, source.source_id],
            |r| r.get(0),
        )?;
    let mut source = source.clone();
    if let Some(t) = first {
        source.time_ms = t;
    }
    put_source(c, Kind::Document, &source, chunks)
}

/// Items of `kinds`.
pub fn count_items(c: &Connection, kinds: &[Kind]) -> rusqlite::Result<u64> {
    let mut s = c.prepare_cached("SELECT count(*) FROM memory_items WHERE kind = ?1")?;
    let mut n = 0;
    for k in kinds {
        n += s.query_row([k.as_str()], |r| r.get::<_, u64>(0))?;
    }
    Ok(n)
}

/// Remove what was indexed for capture rows of `stream` that no longer
/// exist (retention deleted them): `gone` lists their row ids.
pub fn remove_rows(c: &Connection, stream: Stream, gone: &[i64]) -> rusqlite::Result<usize> {
    let mut ids = Vec::new();
    {
        let mut s =
            c.prepare_cached("SELECT id FROM memory_items WHERE stream = ?1 AND row = ?2")?;
        for row in gone {
            for id in s.query_map(params![stream.as_str(), row], |r| r.get::<_, i64>(0))? {
                ids.push(id?);
            }
        }
    }
    delete_items(c, Kind::Activity, &ids)?;
    Ok(ids.len())
}

/// The capture rows of `stream` that items were made from, in pages
/// after row `after` (for the sweep that notices deleted rows).
pub fn rows_of(
    c: &Connection,
    stream: Stream,
    after: i64,
    limit: u32,
) -> rusqlite::Result<Vec<i64>> {
    let mut s = c.prepare_cached(
        "SELECT DISTINCT row FROM memory_items WHERE stream = ?1 AND row > ?2
         ORDER BY row LIMIT ?3",
    )?;
    let rows = s.query_map(params![stream.as_str(), after, limit], |r| r.get(0))?;
    rows.collect()
}

/// Remove every item of `stream` (its capture was turned off).
pub fn remove_stream(c: &Connection, stream: Stream) -> rusqlite::Result<usize> {
    let ids: Vec<i64> = c
        .prepare_cached("SELECT id FROM memory_items WHERE stream = ?1")?
        .query_map([stream.as_str()], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    delete_items(c, Kind::Activity, &ids)?;
    Ok(ids.len())
}

/// A source's high-water mark: (time, row) of the last row read.
pub fn watermark(c: &Connection, source: &str) -> rusqlite::Result<(i64, i64)> {
    Ok(c.query_row(
        "SELECT at_ms, row FROM memory_watermarks WHERE source = ?1",
        [source],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?
    .unwrap_or((0, 0)))
}

/// Move a source's high-water mark (in the transaction that stored what
/// was read, so a crash never skips a row).
pub fn set_watermark(c: &Connection, source: &str, at_ms: i64, row: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO memory_watermarks (source, at_ms, row) VALUES (?1, ?2, ?3)
         ON CONFLICT(source) DO UPDATE SET at_ms = excluded.at_ms, row = excluded.row",
        params![source, at_ms, row],
    )?;
    Ok(())
}

/// Whether `source` was forgotten: by its id (in its collection), or by
/// a time range (of its app) it falls in.
pub fn is_forgotten(c: &Connection, source: &Source) -> rusqlite::Result<bool> {
    if c.prepare_cached("SELECT 1 FROM memory_forgotten WHERE collection = ?1 AND source_id = ?2")?
        .exists(params![source.collection, source.source_id])?
    {
        return Ok(true);
    }
    c.prepare_cached(
        "SELECT 1 FROM memory_forgotten_ranges
         WHERE (since_ms IS NULL OR ?1 >= since_ms) AND (until_ms IS NULL OR ?1 < until_ms)
           AND (app_key = '' OR app_key = ?2)",
    )?
    .exists(params![source.time_ms, app_key(&source.app)])
}

/// What a forget removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Sources.
    pub sources: u64,
    /// Items (chunks) of theirs.
    pub items: u64,
}

fn forget_where(
    c: &Connection,
    filter: &str,
    args: Vec<rusqlite::types::Value>,
    now_ms: i64,
) -> rusqlite::Result<Forgotten> {
    let tx = begin(c)?;
    let rows: Vec<(i64, String, String, String)> = tx
        .prepare(&format!(
            "SELECT id, kind, collection, source_id FROM memory_items WHERE {filter}"
        ))?
        .query_map(params_from_iter(args), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut by_kind: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut sources = std::collections::BTreeSet::new();
    for (id, kind, collection, source) in &rows {
        by_kind.entry(kind.clone()).or_default().push(*id);
        sources.insert((collection.clone(), source.clone()));
    }
    for (kind, ids) in by_kind {
        delete_items(&tx, kind_of(&kind)?, &ids)?;
    }
    for (collection, source) in &sources {
        tombstone(&tx, collection, source, now_ms)?;
        // A forgotten observation is gone for good, not only from search.
        if let Some(id) = source
            .strip_prefix("observation:")
            .and_then(|n| n.parse().ok())
        {
            super::delete_observation(&tx, id)?;
        }
    }
    tx.commit()?;
    Ok(Forgotten {
        sources: sources.len() as u64,
        items: rows.len() as u64,
    })
}

fn tombstone(
    c: &Connection,
    collection: &str,
    source_id: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR REPLACE INTO memory_forgotten (collection, source_id, forgotten_ms)
         VALUES (?1, ?2, ?3)",
        params![collection, source_id, now_ms],
    )?;
    Ok(())
}

/// Forget sources by id (in `collection` only, when given): their items
/// leave the keyword index and every vector index in one transaction,
/// and they are never indexed again. An id with nothing indexed is still
/// remembered as forgotten (in `collection`, else among capture's and
/// chat's sources), so a row not indexed yet never will be.
pub fn forget_sources(
    c: &Connection,
    ids: &[String],
    collection: Option<&str>,
    now_ms: i64,
) -> rusqlite::Result<Forgotten> {
    use rusqlite::types::Value;
    let mut out = Forgotten::default();
    for id in ids {
        let (filter, mut args) = ("source_id = ?1".to_owned(), vec![Value::Text(id.clone())]);
        let filter = match collection {
            Some(col) => {
                args.push(Value::Text(col.to_owned()));
                format!("{filter} AND collection = ?2")
            }
            None => filter,
        };
        let f = forget_where(c, &filter, args, now_ms)?;
        if f.items == 0 {
            tombstone(c, collection.unwrap_or(""), id, now_ms)?;
        }
        out.sources += f.sources;
        out.items += f.items;
    }
    Ok(out)
}

/// Forget everything in `[since, until)`, optionally of one app
/// (case-insensitive).
pub fn forget_range(
    c: &Connection,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    app: &str,
    now_ms: i64,
) -> rusqlite::Result<Forgotten> {
    use rusqlite::types::Value;
    let mut filter = vec!["1".to_owned()];
    let mut args = Vec::new();
    if let Some(s) = since_ms {
        args.push(Value::Integer(s));
        filter.push(format!("time_ms >= ?{}", args.len()));
    }
    if let Some(u) = until_ms {
        args.push(Value::Integer(u));
        filter.push(format!("time_ms < ?{}", args.len()));
    }
    let key = app_key(app);
    if !key.is_empty() {
        args.push(Value::Text(key.clone()));
        filter.push(format!("app_key = ?{}", args.len()));
    }
    let done = forget_where(c, &filter.join(" AND "), args, now_ms)?;
    // Rows in the range not indexed yet (still open, or not yet read)
    // are never indexed.
    c.execute(
        "INSERT INTO memory_forgotten_ranges (since_ms, until_ms, app_key, forgotten_ms)
         VALUES (?1, ?2, ?3, ?4)",
        params![since_ms, until_ms, key, now_ms],
    )?;
    Ok(done)
}

const ITEM_SQL: &str = "SELECT m.id, m.kind, m.stream, m.source_id, m.chunk, m.text, m.time_ms,
    m.app, m.collection, m.thread, m.seq FROM memory_items m";

fn item(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: r.get(0)?,
        kind: kind_of(&r.get::<_, String>(1)?)?,
        stream: stream_of(&r.get::<_, String>(2)?)?,
        source_id: r.get(3)?,
        chunk: r.get(4)?,
        text: r.get(5)?,
        time_ms: r.get(6)?,
        app: r.get(7)?,
        collection: r.get(8)?,
        thread: r.get(9)?,
        seq: r.get(10)?,
    })
}

/// What a search is limited to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Types (empty: all).
    pub kinds: Vec<Kind>,
    /// From (Unix ms).
    pub since_ms: Option<i64>,
    /// Before (Unix ms).
    pub until_ms: Option<i64>,
    /// App, case-insensitive ("" any).
    pub app: String,
    /// Collection ("" any).
    pub collection: String,
}

impl Filter {
    /// The filter's SQL conditions on columns named with `prefix`, their
    /// parameters numbered after the `start` bound before them.
    pub(super) fn clauses(
        &self,
        prefix: &str,
        app_column: &str,
        start: usize,
    ) -> (String, Vec<rusqlite::types::Value>) {
        use rusqlite::types::Value;
        let mut sql = String::new();
        let mut args: Vec<Value> = Vec::new();
        let mut next = |sql: &mut String, clause: String, v: Value| {
            args.push(v);
            *sql += &clause.replace('?', &format!("?{}", start + args.len()));
        };
        if let Some(s) = self.since_ms {
            next(
                &mut sql,
                format!(" AND {prefix}time_ms >= ?"),
                Value::Integer(s),
            );
        }
        if let Some(u) = self.until_ms {
            next(
                &mut sql,
                format!(" AND {prefix}time_ms < ?"),
                Value::Integer(u),
            );
        }
        if !self.app.is_empty() {
            next(
                &mut sql,
                format!(" AND {prefix}{app_column} = ?"),
                Value::Text(app_key(&self.app)),
            );
        }
        if !self.collection.is_empty() {
            next(
                &mut sql,
                format!(" AND {prefix}collection = ?"),
                Value::Text(self.collection.clone()),
            );
        }
        (sql, args)
    }
}

/// An item's source, as one string: its type, collection and source id
/// (a document's chunks share it).
const SOURCE_KEY: &str =
    "m.kind || char(31) || m.stream || char(31) || m.collection || char(31) || m.source_id";

/// Keyword hits for the FTS5 query `fts` (see [`super::search::fts_query`]):
/// (item id, BM25 as higher-is-better, its source's key), best first.
pub fn keyword(
    c: &Connection,
    fts: &str,
    filter: &Filter,
    limit: usize,
) -> rusqlite::Result<Vec<(i64, f64, String)>> {
    let (mut clauses, args) = filter.clauses("m.", "app_key", 1);
    if !filter.kinds.is_empty() {
        let kinds: Vec<String> = filter
            .kinds
            .iter()
            .map(|k| format!("'{}'", k.as_str()))
            .collect();
        clauses += &format!(" AND m.kind IN ({})", kinds.join(","));
    }
    let sql = format!(
        "SELECT m.id, -bm25(memory_fts), {SOURCE_KEY}
         FROM memory_fts JOIN memory_items m ON m.id = memory_fts.rowid
         WHERE memory_fts MATCH ?1{clauses} ORDER BY bm25(memory_fts) LIMIT {limit}"
    );
    let mut all = vec![rusqlite::types::Value::Text(fts.to_owned())];
    all.extend(args);
    let mut s = c.prepare_cached(&sql)?;
    let rows = s.query_map(params_from_iter(all), |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    rows.collect()
}

/// The source key (as [`keyword`] gives it) of each item in `ids` that
/// still exists.
pub fn source_keys(c: &Connection, ids: &[i64]) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {SOURCE_KEY} FROM memory_items m WHERE m.id = ?1"
    ))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(k) = s.query_row([id], |r| r.get(0)).optional()? {
            out.push((*id, k));
        }
    }
    Ok(out)
}

/// Items by id (missing ones left out), in no particular order.
pub fn items(c: &Connection, ids: &[i64]) -> rusqlite::Result<Vec<Item>> {
    let mut s = c.prepare_cached(&format!("{ITEM_SQL} WHERE m.id = ?1"))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(i) = s.query_row([id], item).optional()? {
            out.push(i);
        }
    }
    Ok(out)
}

/// The first `chunks` chunks of a source (any type or stream), oldest
/// stored first.
pub fn items_of_source(
    c: &Connection,
    source_id: &str,
    chunks: usize,
) -> rusqlite::Result<Vec<Item>> {
    let mut s = c.prepare_cached(&format!(
        "{ITEM_SQL} WHERE m.source_id = ?1 ORDER BY m.chunk, m.id LIMIT ?2"
    ))?;
    let rows = s.query_map(params![source_id, chunks as i64], item)?;
    rows.collect()
}

/// Capture items since `since_ms` that `index` has not embedded (all of
/// them when there is no index, or it has no vectors yet), newest first,
/// at most `limit`: the recent buffer a search cannot find by meaning yet.
pub fn recent_unembedded(
    c: &Connection,
    index: Option<&super::Index>,
    since_ms: i64,
    limit: usize,
) -> rusqlite::Result<Vec<Item>> {
    let embedded = match index {
        Some(i) if i.dims > 0 => format!(
            " AND NOT EXISTS (SELECT 1 FROM {} v WHERE v.rowid = m.id)",
            i.rescore_table()
        ),
        _ => String::new(),
    };
    let mut s = c.prepare_cached(&format!(
        "{ITEM_SQL} WHERE m.kind = 'activity' AND m.time_ms >= ?1{embedded}
         ORDER BY m.time_ms DESC, m.id DESC LIMIT ?2"
    ))?;
    let rows = s.query_map(params![since_ms, limit as i64], item)?;
    rows.collect()
}

/// Does any item hold `phrase` (as FTS5 tokenizes it)?
pub fn phrase_known(c: &Connection, phrase: &str) -> rusqlite::Result<bool> {
    let q = format!("\"{}\"", phrase.replace('"', "\"\""));
    c.prepare_cached("SELECT 1 FROM memory_fts WHERE memory_fts MATCH ?1 LIMIT 1")?
        .exists([q])
}

/// Does memory hold nothing at all (no item, no pin)?
pub fn is_empty(c: &Connection) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM memory_items) AND NOT EXISTS (SELECT 1 FROM memory_pins)",
        [],
        |r| r.get(0),
    )
}

/// One index's counts, for status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Items per type.
    pub items: BTreeMap<String, u64>,
    /// Vectors per table.
    pub vectors: BTreeMap<String, u64>,
    /// Jobs per status: (jobs, chunks embedded, chunks in all).
    pub jobs: BTreeMap<String, (u64, u64, u64)>,
    /// The newest embedding error (a failed job, an embedder that could
    /// not be reached, inputs refused).
    pub last_error: Option<String>,
}

/// Counts for `memory status`.
pub fn counts(c: &Connection) -> rusqlite::Result<Counts> {
    let mut out = Counts::default();
    for r in c
        .prepare("SELECT kind, count(*) FROM memory_items GROUP BY kind")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?
    {
        let (k, n) = r?;
        out.items.insert(k, n);
    }
    for i in indexes(c, None)? {
        out.vectors.insert(i.table, i.vectors);
    }
    for r in c
        .prepare(
            "SELECT embed_status, count(*), sum(chunks_embedded), sum(total_chunks)
             FROM memory_jobs GROUP BY embed_status",
        )?
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get(1)?, r.get::<_, u64>(2)?, r.get::<_, u64>(3)?),
            ))
        })?
    {
        let (s, n) = r?;
        out.jobs.insert(s, n);
    }
    out.last_error = c
        .query_row(
            "SELECT embed_error FROM memory_jobs WHERE embed_error IS NOT NULL
             ORDER BY updated_ms DESC, id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    Ok(out)
}

/// Bytes of memory's tables and indexes (their pages, read by `dbstat`
/// one table at a time: it reads every page of them, so callers cache
/// it). 0 when this SQLite has no `dbstat`.
pub fn size_bytes(c: &Connection) -> rusqlite::Result<u64> {
    let names: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_master
             WHERE name LIKE 'memory\\_%' ESCAPE '\\' OR name LIKE 'embed\\_%' ESCAPE '\\'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut s = match c.prepare("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?1") {
        Ok(s) => s,
        Err(_) => return Ok(0),
    };
    let mut total = 0u64;
    for n in names {
        total += s.query_row([n], |r| r.get::<_, u64>(0)).unwrap_or(0);
    }
    Ok(total)
}
