//! Memory's tables in cowork.db: the only SQL for them. `memory_items`
//! (one row per chunk of a source) with its FTS5 index `memory_fts` kept
//! by triggers in the same transaction; one sqlite-vec `vec0` table per
//! type and generation (`embed_<type>`, `embed_<type>_<n>`), listed in
//! `memory_indexes`, each beside its rescoring table `<table>_f32` (the
//! float vectors by rowid, read when a large index is searched by its
//! binary codes first: see [`super::quantize`]); embedding jobs (`memory_jobs`, `memory_job_items`);
//! the sources' high-water marks (`memory_watermarks`); and forgotten
//! sources (`memory_forgotten`), which are never indexed again.

use super::item::{Item, Kind, Source, Stream};
use super::jobs::{self, Progress, Status};
use super::quantize;
use cowork_db::{Owner, Step};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::collections::BTreeMap;

/// Memory as an owner of tables: its schema, oldest first (append only).
pub const OWNER: Owner = Owner {
    name: "memory",
    steps: &[Step::Sql(
        "CREATE TABLE memory_items (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            stream TEXT NOT NULL,
            source_id TEXT NOT NULL,
            chunk INTEGER NOT NULL,
            text TEXT NOT NULL,
            time_ms INTEGER NOT NULL,
            app TEXT NOT NULL,
            app_key TEXT NOT NULL DEFAULT '',
            collection TEXT NOT NULL,
            row INTEGER,
            thread TEXT NOT NULL DEFAULT '',
            seq INTEGER NOT NULL DEFAULT 0,
            UNIQUE (kind, stream, collection, source_id, chunk)
         );
         CREATE INDEX memory_items_source ON memory_items(source_id);
         CREATE INDEX memory_items_time ON memory_items(time_ms);
         CREATE INDEX memory_items_stream_row ON memory_items(stream, row);
         CREATE VIRTUAL TABLE memory_fts USING fts5(
            text, content='memory_items', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2', prefix='3'
         );
         CREATE TRIGGER memory_items_ai AFTER INSERT ON memory_items BEGIN
            INSERT INTO memory_fts(rowid, text) VALUES (new.id, new.text);
         END;
         CREATE TRIGGER memory_items_ad AFTER DELETE ON memory_items BEGIN
            INSERT INTO memory_fts(memory_fts, rowid, text) VALUES ('delete', old.id, old.text);
         END;
         CREATE TRIGGER memory_items_au AFTER UPDATE OF text ON memory_items BEGIN
            INSERT INTO memory_fts(memory_fts, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO memory_fts(rowid, text) VALUES (new.id, new.text);
         END;
         CREATE TABLE memory_indexes (
            kind TEXT NOT NULL,
            generation INTEGER NOT NULL,
            model TEXT NOT NULL,
            dims INTEGER NOT NULL,
            table_name TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL,
            enqueued_upto INTEGER NOT NULL DEFAULT 0,
            vectors INTEGER NOT NULL DEFAULT 0,
            created_ms INTEGER NOT NULL,
            PRIMARY KEY (kind, generation)
         );
         CREATE TABLE memory_jobs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            generation INTEGER NOT NULL,
            embed_status TEXT NOT NULL,
            chunks_embedded INTEGER NOT NULL DEFAULT 0,
            total_chunks INTEGER NOT NULL,
            embed_started_at INTEGER,
            embed_error TEXT,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
         );
         CREATE INDEX memory_jobs_status ON memory_jobs(embed_status, id);
         CREATE TABLE memory_job_items (
            job_id INTEGER NOT NULL,
            ord INTEGER NOT NULL,
            item_id INTEGER NOT NULL,
            PRIMARY KEY (job_id, ord)
         ) WITHOUT ROWID;
         CREATE TABLE memory_watermarks (
            source TEXT PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            row INTEGER NOT NULL
         );
         CREATE TABLE memory_forgotten (
            collection TEXT NOT NULL,
            source_id TEXT NOT NULL,
            forgotten_ms INTEGER NOT NULL,
            PRIMARY KEY (collection, source_id)
         );
         CREATE TABLE memory_forgotten_ranges (
            since_ms INTEGER,
            until_ms INTEGER,
            app_key TEXT NOT NULL,
            forgotten_ms INTEGER NOT NULL
         );",
    )],
};

/// A vector index's state.
pub const SERVING: &str = "serving";
/// A newer generation being built in the background.
pub const BUILDING: &str = "building";

/// A write transaction that takes the write lock at once: one that read
/// first and wrote later would fail (SQLITE_BUSY_SNAPSHOT, no waiting) if
/// capture-agent committed in between.
pub fn begin(c: &Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)
}

/// An app name as filters compare it (lower case, Unicode-aware: SQLite's
/// `lower()` folds ASCII only).
pub fn app_key(app: &str) -> String {
    app.trim().to_lowercase()
}

/// One vector index (a `vec0` table of one type and generation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Its type.
    pub kind: Kind,
    /// Its generation (a different embedder starts the next).
    pub generation: u32,
    /// The model whose vectors it holds.
    pub model: String,
    /// Their dimension.
    pub dims: u32,
    /// The `vec0` table.
    pub table: String,
    /// [`SERVING`] or [`BUILDING`].
    pub state: String,
    /// Items up to this id have been put in jobs for it.
    pub enqueued_upto: i64,
    /// Vectors it holds.
    pub vectors: u64,
}

impl Index {
    /// The plain table of its float vectors by rowid, for rescoring.
    pub fn rescore_table(&self) -> String {
        format!("{}_f32", self.table)
    }
}

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

fn kind_of(s: &str) -> rusqlite::Result<Kind> {
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn stream_of(s: &str) -> rusqlite::Result<Stream> {
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

/// The vector indexes of `kind` (every kind when None), newest last.
pub fn indexes(c: &Connection, kind: Option<Kind>) -> rusqlite::Result<Vec<Index>> {
    let mut s = c.prepare_cached(
        "SELECT kind, generation, model, dims, table_name, state, enqueued_upto, vectors
         FROM memory_indexes WHERE ?1 IS NULL OR kind = ?1 ORDER BY kind, generation",
    )?;
    let rows = s.query_map([kind.map(Kind::as_str)], |r| {
        Ok(Index {
            kind: kind_of(&r.get::<_, String>(0)?)?,
            generation: r.get(1)?,
            model: r.get(2)?,
            dims: r.get(3)?,
            table: r.get(4)?,
            state: r.get(5)?,
            enqueued_upto: r.get(6)?,
            vectors: r.get(7)?,
        })
    })?;
    rows.collect()
}

/// Start the next generation of `kind`'s vectors, of `model`: serving
/// at once when `kind` has no index yet, else building beside the one
/// serving. Its tables are made when its first vectors arrive (their
/// length is its dimension: see [`commit_batch`]).
pub fn create_index(
    c: &Connection,
    kind: Kind,
    model: &str,
    now_ms: i64,
) -> rusqlite::Result<Index> {
    let tx = begin(c)?;
    let existing = indexes(&tx, Some(kind))?;
    let generation = existing.iter().map(|i| i.generation).max().unwrap_or(0) + 1;
    let table = kind.vector_table(generation);
    let state = if existing.iter().any(|i| i.state == SERVING) {
        BUILDING
    } else {
        SERVING
    };
    // A building generation of another model is dropped: only the newest
    // embedder's is built.
    for old in existing.iter().filter(|i| i.state == BUILDING) {
        drop_index(&tx, old)?;
    }
    tx.execute(
        "INSERT INTO memory_indexes (kind, generation, model, dims, table_name, state, created_ms)
         VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6)",
        params![kind.as_str(), generation, model, table, state, now_ms],
    )?;
    tx.commit()?;
    Ok(Index {
        kind,
        generation,
        model: model.into(),
        dims: 0,
        table,
        state: state.into(),
        enqueued_upto: 0,
        vectors: 0,
    })
}

fn drop_index(c: &Connection, i: &Index) -> rusqlite::Result<()> {
    c.execute_batch(&format!(
        "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {}",
        i.table,
        i.rescore_table()
    ))?;
    c.execute(
        "DELETE FROM memory_job_items WHERE job_id IN
            (SELECT id FROM memory_jobs WHERE kind = ?1 AND generation = ?2)",
        params![i.kind.as_str(), i.generation],
    )?;
    c.execute(
        "DELETE FROM memory_jobs WHERE kind = ?1 AND generation = ?2",
        params![i.kind.as_str(), i.generation],
    )?;
    c.execute(
        "DELETE FROM memory_indexes WHERE kind = ?1 AND generation = ?2",
        params![i.kind.as_str(), i.generation],
    )?;
    Ok(())
}

/// Make the building generation of `kind` the one serving, and drop the
/// one it replaces (its vectors are of another model).
pub fn promote(c: &Connection, kind: Kind) -> rusqlite::Result<()> {
    let tx = begin(c)?;
    for old in indexes(&tx, Some(kind))?
        .iter()
        .filter(|i| i.state == SERVING)
    {
        drop_index(&tx, old)?;
    }
    tx.execute(
        "UPDATE memory_indexes SET state = ?2 WHERE kind = ?1 AND state = ?3",
        params![kind.as_str(), SERVING, BUILDING],
    )?;
    tx.commit()
}

/// Drop every vector index of `kinds` (a reindex builds them again).
pub fn drop_indexes(c: &Connection, kinds: &[Kind]) -> rusqlite::Result<usize> {
    let tx = begin(c)?;
    let mut n = 0;
    for i in indexes(&tx, None)?
        .iter()
        .filter(|i| kinds.contains(&i.kind))
    {
        drop_index(&tx, i)?;
        n += 1;
    }
    tx.commit()?;
    Ok(n)
}

/// Give `index` its dimension and make its tables: the `vec0` table of
/// float vectors (exact KNN by cosine), their binary codes (the coarse
/// pass of a large index) and the metadata the KNN filters on; beside it
/// the float vectors again by rowid, for rescoring.
fn make_tables(c: &Connection, index: &mut Index, dims: u32) -> rusqlite::Result<()> {
    let table = &index.table;
    let coarse = if quantize::has_code(dims as usize) {
        format!("coarse bit[{dims}],")
    } else {
        String::new()
    };
    c.execute_batch(&format!(
        "CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0(
            embedding float[{dims}] distance_metric=cosine, {coarse}
            time_ms integer, app text, collection text);
         CREATE TABLE IF NOT EXISTS {table}_f32 (id INTEGER PRIMARY KEY, embedding BLOB NOT NULL);"
    ))?;
    c.execute(
        "UPDATE memory_indexes SET dims = ?3 WHERE kind = ?1 AND generation = ?2",
        params![index.kind.as_str(), index.generation, dims],
    )?;
    index.dims = dims;
    Ok(())
}

/// Delete the vectors of `ids` from `index` (its vec0 table and its
/// rescoring table) and count them off: the number deleted.
fn delete_vectors(c: &Connection, index: &Index, ids: &[i64]) -> rusqlite::Result<usize> {
    if index.dims == 0 {
        return Ok(0);
    }
    let mut gone = 0;
    {
        let mut rescore = c.prepare_cached(&format!(
            "DELETE FROM {} WHERE id = ?1",
            index.rescore_table()
        ))?;
        let mut vec = c.prepare_cached(&format!("DELETE FROM {} WHERE rowid = ?1", index.table))?;
        for id in ids {
            // The rescoring table says whether the vector exists (a vec0
            // DELETE of a missing rowid is not counted reliably).
            if rescore.execute([id])? > 0 {
                vec.execute([id])?;
                gone += 1;
            }
        }
    }
    if gone > 0 {
        c.execute(
            "UPDATE memory_indexes SET vectors = max(0, vectors - ?3)
             WHERE kind = ?1 AND generation = ?2",
            params![index.kind.as_str(), index.generation, gone as i64],
        )?;
    }
    Ok(gone)
}

/// Delete items by id from the keyword index (the trigger) and every
/// vector index of their type, in the caller's transaction.
fn delete_items(c: &Connection, kind: Kind, ids: &[i64]) -> rusqlite::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    for index in indexes(c, Some(kind))? {
        delete_vectors(c, &index, ids)?;
    }
    let mut s = c.prepare_cached("DELETE FROM memory_items WHERE id = ?1")?;
    for id in ids {
        s.execute([id])?;
    }
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
    delete_items(c, stream.kind(), &ids)?;
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
    delete_items(c, stream.kind(), &ids)?;
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

/// One embedding job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// The type it embeds.
    pub kind: Kind,
    /// Into this generation's index.
    pub generation: u32,
    /// Its state and checkpoint.
    pub progress: Progress,
}

fn job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let status: String = r.get(3)?;
    Ok(Job {
        id: r.get(0)?,
        kind: kind_of(&r.get::<_, String>(1)?)?,
        generation: r.get(2)?,
        progress: Progress {
            status: status.parse().map_err(|e: String| {
                rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, e.into())
            })?,
            chunks_embedded: r.get(4)?,
            total_chunks: r.get(5)?,
            embed_started_at: r.get(6)?,
            embed_error: r.get(7)?,
        },
    })
}

const JOB_SQL: &str = "SELECT id, kind, generation, embed_status, chunks_embedded, total_chunks,
    embed_started_at, embed_error FROM memory_jobs";

/// Put the items of `index`'s type after its `enqueued_upto` into jobs of
/// at most `per_job` items; `private` says whether keystroke and
/// clipboard text may go to this embedder. Returns the jobs created.
pub fn enqueue(
    c: &Connection,
    index: &Index,
    per_job: usize,
    private: bool,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let tx = begin(c)?;
    let items: Vec<(i64, String)> = tx
        .prepare_cached(
            "SELECT id, stream FROM memory_items WHERE kind = ?1 AND id > ?2 ORDER BY id",
        )?
        .query_map(params![index.kind.as_str(), index.enqueued_upto], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let Some(last) = items.last().map(|i| i.0) else {
        return Ok(0);
    };
    let mut wanted = Vec::with_capacity(items.len());
    for (id, stream) in &items {
        if private || !stream_of(stream)?.is_private_text() {
            wanted.push(*id);
        }
    }
    let mut jobs = 0;
    for part in wanted.chunks(per_job.max(1)) {
        tx.execute(
            "INSERT INTO memory_jobs (kind, generation, embed_status, total_chunks, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![
                index.kind.as_str(),
                index.generation,
                Status::Pending.as_str(),
                part.len() as i64,
                now_ms
            ],
        )?;
        let job = tx.last_insert_rowid();
        let mut s = tx.prepare_cached(
            "INSERT INTO memory_job_items (job_id, ord, item_id) VALUES (?1, ?2, ?3)",
        )?;
        for (ord, id) in part.iter().enumerate() {
            s.execute(params![job, ord as i64, id])?;
        }
        jobs += 1;
    }
    tx.execute(
        "UPDATE memory_indexes SET enqueued_upto = ?3 WHERE kind = ?1 AND generation = ?2",
        params![index.kind.as_str(), index.generation, last],
    )?;
    tx.commit()?;
    Ok(jobs)
}

/// The job of `index` to work on next: one left `processing`, else the
/// oldest `pending`.
pub fn next_job(c: &Connection, index: &Index) -> rusqlite::Result<Option<Job>> {
    c.query_row(
        &format!(
            "{JOB_SQL} WHERE kind = ?1 AND generation = ?2
               AND embed_status IN ('processing', 'pending')
             ORDER BY embed_status = 'processing' DESC, id LIMIT 1"
        ),
        params![index.kind.as_str(), index.generation],
        job,
    )
    .optional()
}

/// One job by id.
pub fn get_job(c: &Connection, id: i64) -> rusqlite::Result<Option<Job>> {
    c.query_row(&format!("{JOB_SQL} WHERE id = ?1"), [id], job)
        .optional()
}

/// Whether a generation still has work queued.
pub fn has_open_jobs(c: &Connection, kind: Kind, generation: u32) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT 1 FROM memory_jobs WHERE kind = ?1 AND generation = ?2
         AND embed_status IN ('pending', 'processing', 'paused')",
    )?
    .exists(params![kind.as_str(), generation])
}

/// Write a job's progress.
pub fn set_progress(c: &Connection, id: i64, p: &Progress, now_ms: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE memory_jobs SET embed_status = ?2, chunks_embedded = ?3, total_chunks = ?4,
            embed_started_at = ?5, embed_error = ?6, updated_ms = ?7 WHERE id = ?1",
        params![
            id,
            p.status.as_str(),
            p.chunks_embedded,
            p.total_chunks,
            p.embed_started_at,
            p.embed_error,
            now_ms
        ],
    )?;
    Ok(())
}

/// At start: every job a killed process left `processing` is paused (or
/// failed, when it hung), then paused jobs are pending again. Returns
/// how many jobs changed state.
pub fn recover_jobs(c: &Connection, now_ms: i64, hang_ms: i64) -> rusqlite::Result<usize> {
    let tx = begin(c)?;
    let open: Vec<Job> = tx
        .prepare(&format!(
            "{JOB_SQL} WHERE embed_status IN ('processing', 'paused')"
        ))?
        .query_map([], job)?
        .collect::<rusqlite::Result<_>>()?;
    for j in &open {
        set_progress(
            &tx,
            j.id,
            &jobs::recover(&j.progress, now_ms, hang_ms),
            now_ms,
        )?;
    }
    tx.commit()?;
    Ok(open.len())
}

/// One chunk of a job, to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct JobItem {
    /// Its position in the job.
    pub ord: u64,
    /// The item (None: deleted since the job was made).
    pub item: Option<Item>,
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

/// A job's chunks at positions `[from, to)`.
pub fn job_items(c: &Connection, job: i64, from: u64, to: u64) -> rusqlite::Result<Vec<JobItem>> {
    let mut s = c.prepare_cached(
        "SELECT j.ord, m.id, m.kind, m.stream, m.source_id, m.chunk, m.text, m.time_ms, m.app,
                m.collection, m.thread, m.seq
         FROM memory_job_items j LEFT JOIN memory_items m ON m.id = j.item_id
         WHERE j.job_id = ?1 AND j.ord >= ?2 AND j.ord < ?3 ORDER BY j.ord",
    )?;
    let rows = s.query_map(params![job, from, to], |r| {
        let ord: u64 = r.get(0)?;
        let id: Option<i64> = r.get(1)?;
        let item = match id {
            None => None,
            Some(_) => Some(Item {
                id: r.get(1)?,
                kind: kind_of(&r.get::<_, String>(2)?)?,
                stream: stream_of(&r.get::<_, String>(3)?)?,
                source_id: r.get(4)?,
                chunk: r.get(5)?,
                text: r.get(6)?,
                time_ms: r.get(7)?,
                app: r.get(8)?,
                collection: r.get(9)?,
                thread: r.get(10)?,
                seq: r.get(11)?,
            }),
        };
        Ok(JobItem { ord, item })
    })?;
    rows.collect()
}

/// Little-endian f32 bytes, as sqlite-vec reads a vector.
pub fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Commit one batch of a job: its vectors (replacing any a crashed run
/// wrote, so a resumed job never duplicates one; an item deleted since is
/// skipped) and the job's checkpoint, in one transaction.
pub fn commit_batch(
    c: &Connection,
    index: &Index,
    job: i64,
    vectors: &[(i64, Vec<f32>)],
    progress: &Progress,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let tx = begin(c)?;
    // The index as it is now (a reindex may have dropped it; an earlier
    // batch may have made its tables).
    let Some(mut index) = indexes(&tx, Some(index.kind))?
        .into_iter()
        .find(|i| i.generation == index.generation)
    else {
        return Ok(0);
    };
    if index.dims == 0 {
        if let Some((_, v)) = vectors.first() {
            make_tables(&tx, &mut index, v.len() as u32)?;
        }
    }
    let index = &index;
    let ids: Vec<i64> = vectors.iter().map(|v| v.0).collect();
    delete_vectors(&tx, index, &ids)?;
    let mut written = 0;
    {
        let table = &index.table;
        let coarse = quantize::has_code(index.dims as usize);
        let mut ins = tx.prepare_cached(&if coarse {
            format!(
                "INSERT INTO {table} (rowid, embedding, coarse, time_ms, app, collection)
                 SELECT id, ?2, vec_bit(?3), time_ms, app_key, collection
                 FROM memory_items WHERE id = ?1"
            )
        } else {
            format!(
                "INSERT INTO {table} (rowid, embedding, time_ms, app, collection)
                 SELECT id, ?2, time_ms, app_key, collection FROM memory_items WHERE id = ?1"
            )
        })?;
        let mut rescore = tx.prepare_cached(&format!(
            "INSERT INTO {} (id, embedding) VALUES (?1, ?2)",
            index.rescore_table()
        ))?;
        for (id, v) in vectors {
            if v.len() != index.dims as usize {
                continue;
            }
            let bytes = vector_bytes(v);
            let n = if coarse {
                ins.execute(params![id, bytes, quantize::code(v)])?
            } else {
                ins.execute(params![id, bytes])?
            };
            // An item deleted since its job was made has no row to copy.
            if n > 0 {
                rescore.execute(params![id, bytes])?;
                written += 1;
            }
        }
    }
    tx.execute(
        "UPDATE memory_indexes SET vectors = vectors + ?3 WHERE kind = ?1 AND generation = ?2",
        params![index.kind.as_str(), index.generation, written as i64],
    )?;
    set_progress(&tx, job, progress, now_ms)?;
    if progress.status == Status::Done {
        // A finished job's list of items is not needed again.
        tx.execute("DELETE FROM memory_job_items WHERE job_id = ?1", [job])?;
    }
    tx.commit()?;
    Ok(written)
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
    fn clauses(
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

/// How a KNN query reads a vector index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knn {
    /// Exact below [`quantize::EXACT_UNDER`] vectors, coarse above.
    Auto,
    /// sqlite-vec's scan of every float vector.
    Exact,
    /// The binary codes' Hamming KNN (oversampled), then the candidates
    /// rescored exactly from the rescoring table.
    Coarse,
}

/// The `k` nearest items in `index` to `query` (unit length) under
/// `filter`'s time, app and collection (inside the KNN, by the table's
/// metadata columns): (item id, cosine similarity), best first. Always
/// `MATCH … AND k = ?`, never a scan by `ORDER BY vec_distance`.
pub fn nearest(
    c: &Connection,
    index: &Index,
    query: &[f32],
    filter: &Filter,
    k: usize,
    how: Knn,
) -> rusqlite::Result<Vec<(i64, f64)>> {
    if k == 0 || query.len() != index.dims as usize {
        return Ok(Vec::new());
    }
    let k = k.min(quantize::MAX_K);
    let coarse = quantize::has_code(query.len())
        && match how {
            Knn::Auto => index.vectors >= quantize::EXACT_UNDER,
            Knn::Exact => false,
            Knn::Coarse => true,
        };
    let table = &index.table;
    let (clauses, args) = filter.clauses("", "app", 1);
    let (column, probe, want) = if coarse {
        (
            "coarse",
            rusqlite::types::Value::Blob(quantize::code(query)),
            quantize::candidates(k),
        )
    } else {
        (
            "embedding",
            rusqlite::types::Value::Blob(vector_bytes(query)),
            k,
        )
    };
    let matcher = if coarse { "vec_bit(?1)" } else { "?1" };
    let sql = format!(
        "SELECT rowid, distance FROM {table} WHERE {column} MATCH {matcher} AND k = {want}{clauses}
         ORDER BY distance"
    );
    let mut all = vec![probe];
    all.extend(args);
    let mut s = c.prepare_cached(&sql)?;
    let found: Vec<(i64, f64)> = s
        .query_map(params_from_iter(all), |r| {
            Ok((r.get::<_, i64>(0)?, 1.0 - r.get::<_, f64>(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if !coarse {
        return Ok(found);
    }
    let mut read = c.prepare_cached(&format!(
        "SELECT embedding FROM {} WHERE id = ?1",
        index.rescore_table()
    ))?;
    let mut candidates = Vec::with_capacity(found.len());
    for (id, _) in found {
        let bytes: Option<Vec<u8>> = read.query_row([id], |r| r.get(0)).optional()?;
        if let Some(v) = bytes.as_deref().and_then(quantize::floats) {
            candidates.push((id, v));
        }
    }
    Ok(quantize::rescore(query, &candidates, k))
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

/// The time of the oldest item of `index`'s type it still has to embed:
/// in an open job past its checkpoint, or not yet in a job (None when
/// there is none).
pub fn oldest_unembedded(c: &Connection, index: &Index) -> rusqlite::Result<Option<i64>> {
    let queued: Option<i64> = c.query_row(
        "SELECT min(m.time_ms) FROM memory_jobs j
         JOIN memory_job_items ji ON ji.job_id = j.id
         JOIN memory_items m ON m.id = ji.item_id
         WHERE j.kind = ?1 AND j.generation = ?2
           AND j.embed_status IN ('pending', 'processing', 'paused')
           AND ji.ord >= j.chunks_embedded",
        params![index.kind.as_str(), index.generation],
        |r| r.get(0),
    )?;
    let new: Option<i64> = c.query_row(
        "SELECT min(time_ms) FROM memory_items WHERE kind = ?1 AND id > ?2",
        params![index.kind.as_str(), index.enqueued_upto],
        |r| r.get(0),
    )?;
    Ok(match (queued, new) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// The newest item id of `kind` (0 when none).
pub fn last_item(c: &Connection, kind: Kind) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT coalesce(max(id), 0) FROM memory_items WHERE kind = ?1",
        [kind.as_str()],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        cowork_db::register_sqlite_vec();
        crate::db::migrated(&[OWNER])
    }

    fn source(id: &str, text: &str, stream: Stream) -> Source {
        Source {
            stream,
            source_id: id.into(),
            row: Some(1),
            text: text.into(),
            time_ms: 1000,
            app: "Code".into(),
            collection: String::new(),
            thread: String::new(),
            seq: 0,
        }
    }

    fn hits(c: &Connection, q: &str) -> Vec<i64> {
        keyword(c, q, &Filter::default(), 10)
            .unwrap()
            .into_iter()
            .map(|h| h.0)
            .collect()
    }

    #[test]
    fn a_source_is_keyword_searchable_replaced_when_changed_and_forgotten_everywhere() {
        let c = db();
        let s = source("activity:1", "Fixing E0432 in main.rs", Stream::Window);
        let chunks = vec![s.text.clone()];
        assert_eq!(
            put_source(&c, Kind::Activity, &s, &chunks).unwrap(),
            Stored::Written(1)
        );
        assert_eq!(
            put_source(&c, Kind::Activity, &s, &chunks).unwrap(),
            Stored::Unchanged
        );
        assert_eq!(hits(&c, "\"e0432\"").len(), 1);
        assert_eq!(
            hits(&c, "\"main rs\"").len(),
            1,
            "file names match as a phrase"
        );
        assert_eq!(hits(&c, "fix").len(), 1, "porter stems fixing → fix");
        let index = create_index(&c, Kind::Activity, "m", 0).unwrap();
        assert_eq!(index.state, SERVING);
        let id = hits(&c, "fix")[0];
        let p = Progress {
            status: Status::Done,
            chunks_embedded: 1,
            total_chunks: 1,
            embed_started_at: None,
            embed_error: None,
        };
        // A vector written twice (a resumed batch) is one vector.
        for _ in 0..2 {
            commit_batch(&c, &index, 0, &[(id, vec![1.0, 0.0, 0.0])], &p, 0).unwrap();
        }
        assert_eq!(counts(&c).unwrap().vectors["embed_activity"], 1);
        let index = indexes(&c, Some(Kind::Activity)).unwrap().remove(0);
        assert_eq!(
            (index.dims, index.vectors),
            (3, 1),
            "the first vectors gave the dimension"
        );
        let near = nearest(
            &c,
            &index,
            &[1.0, 0.0, 0.0],
            &Filter::default(),
            5,
            Knn::Exact,
        )
        .unwrap();
        assert_eq!(near.len(), 1);
        assert!((near[0].1 - 1.0).abs() < 1e-5, "{near:?}");
        let app = Filter {
            app: "code".into(),
            ..Filter::default()
        };
        assert_eq!(
            nearest(&c, &index, &[1.0, 0.0, 0.0], &app, 5, Knn::Exact)
                .unwrap()
                .len(),
            1
        );
        let other = Filter {
            app: "firefox".into(),
            ..Filter::default()
        };
        assert!(nearest(&c, &index, &[1.0, 0.0, 0.0], &other, 5, Knn::Exact)
            .unwrap()
            .is_empty());
        // Changed text replaces the items, and the old vector goes too.
        let s2 = source("activity:1", "Reading the tokio docs", Stream::Window);
        put_source(&c, Kind::Activity, &s2, std::slice::from_ref(&s2.text)).unwrap();
        assert!(hits(&c, "\"e0432\"").is_empty());
        assert_eq!(counts(&c).unwrap().vectors["embed_activity"], 0);
        let f = forget_sources(&c, &["activity:1".into()], None, 5).unwrap();
        assert_eq!(
            f,
            Forgotten {
                sources: 1,
                items: 1
            }
        );
        assert!(hits(&c, "tokio").is_empty());
        assert_eq!(
            put_source(&c, Kind::Activity, &s2, std::slice::from_ref(&s2.text)).unwrap(),
            Stored::Skipped,
            "a forgotten source is never indexed again"
        );
    }

    #[test]
    fn jobs_enqueue_resume_and_leave_private_text_to_local_embedders() {
        let c = db();
        for (n, stream) in [Stream::Window, Stream::Keystrokes, Stream::Clipboard]
            .into_iter()
            .enumerate()
        {
            let s = source(&format!("s{n}"), "some text", stream);
            put_source(&c, Kind::Activity, &s, std::slice::from_ref(&s.text)).unwrap();
        }
        let index = create_index(&c, Kind::Activity, "m", 0).unwrap();
        assert_eq!(enqueue(&c, &index, 10, false, 0).unwrap(), 1);
        let j = next_job(
            &c,
            &indexes(&c, Some(Kind::Activity))
                .unwrap()
                .last()
                .unwrap()
                .clone(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            j.progress.total_chunks, 1,
            "a cloud embedder gets window titles only"
        );
        let index = indexes(&c, Some(Kind::Activity)).unwrap().remove(0);
        assert_eq!(enqueue(&c, &index, 10, true, 0).unwrap(), 0, "nothing new");
        // Building generation beside the serving one.
        let b = create_index(&c, Kind::Activity, "m2", 0).unwrap();
        assert_eq!(
            (b.state.as_str(), b.table.as_str()),
            (BUILDING, "embed_activity_2")
        );
        assert_eq!(
            enqueue(&c, &b, 2, true, 0).unwrap(),
            2,
            "3 items in jobs of 2"
        );
        let mut p = next_job(
            &c,
            &indexes(&c, Some(Kind::Activity))
                .unwrap()
                .last()
                .unwrap()
                .clone(),
        )
        .unwrap()
        .unwrap();
        p.progress.status = Status::Processing;
        p.progress.embed_started_at = Some(0);
        set_progress(&c, p.id, &p.progress, 0).unwrap();
        assert_eq!(recover_jobs(&c, 1, jobs::HANG_MS).unwrap(), 1);
        assert_eq!(
            get_job(&c, p.id).unwrap().unwrap().progress.status,
            Status::Pending
        );
        promote(&c, Kind::Activity).unwrap();
        let now = indexes(&c, Some(Kind::Activity)).unwrap();
        assert_eq!(now.len(), 1);
        assert_eq!(
            (now[0].model.as_str(), now[0].state.as_str()),
            ("m2", SERVING)
        );
    }

    #[test]
    fn forgetting_is_per_collection_and_a_range_keeps_later_rows_out() {
        let c = db();
        let doc = |id: &str, collection: &str| Source {
            stream: Stream::Import,
            source_id: id.into(),
            row: None,
            text: format!("note {id} in {collection}"),
            time_ms: 1000,
            app: String::new(),
            collection: collection.into(),
            thread: String::new(),
            seq: 0,
        };
        for col in ["a", "b"] {
            let d = doc("5", col);
            put_document(&c, &d, std::slice::from_ref(&d.text)).unwrap();
        }
        let f = forget_sources(&c, &["5".into()], Some("a"), 9).unwrap();
        assert_eq!((f.sources, f.items), (1, 1));
        assert_eq!(hits(&c, "note").len(), 1, "b's 5 stays");
        let again = doc("5", "a");
        assert_eq!(
            put_document(&c, &again, std::slice::from_ref(&again.text)).unwrap(),
            Stored::Skipped
        );
        // A time range of one app (any case, any script): what is indexed
        // goes, and what arrives later in the range never comes in.
        let mut s = source("activity:1", "Ärzte Kalender", Stream::Window);
        s.app = "Ärzte".into();
        put_source(&c, Kind::Activity, &s, std::slice::from_ref(&s.text)).unwrap();
        let f = forget_range(&c, Some(500), Some(2000), "ÄRZTE", 9).unwrap();
        assert_eq!(f.sources, 1);
        let mut later = source("activity:2", "Ärzte Termine", Stream::Window);
        later.app = "ärzte".into();
        assert_eq!(
            put_source(
                &c,
                Kind::Activity,
                &later,
                std::slice::from_ref(&later.text)
            )
            .unwrap(),
            Stored::Skipped
        );
        let mut other = source("activity:3", "Code", Stream::Window);
        other.app = "Code".into();
        assert_eq!(
            put_source(
                &c,
                Kind::Activity,
                &other,
                std::slice::from_ref(&other.text)
            )
            .unwrap(),
            Stored::Written(1),
            "another app in the range is kept"
        );
        // The app filter folds non-ASCII case too.
        let f = Filter {
            app: "CODE".into(),
            ..Filter::default()
        };
        assert_eq!(keyword(&c, "\"code\"", &f, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_large_index_is_searched_by_codes_then_rescored() {
        let c = db();
        let n = 300;
        for i in 0..n {
            let s = source(&format!("activity:{i}"), &format!("w{i}"), Stream::Window);
            put_source(&c, Kind::Activity, &s, std::slice::from_ref(&s.text)).unwrap();
        }
        let index = create_index(&c, Kind::Activity, "m", 0).unwrap();
        // 16-dimensional unit vectors from a fixed sequence.
        let mut x: u64 = 7;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2001) as f32 / 1000.0 - 1.0
        };
        let mut unit = |_: usize| {
            let mut v: Vec<f32> = (0..16).map(|_| next()).collect();
            crate::memory::embedder::normalize(&mut v);
            v
        };
        let vectors: Vec<(i64, Vec<f32>)> = (1..=n as i64).map(|id| (id, unit(0))).collect();
        let done = Progress {
            status: Status::Done,
            chunks_embedded: 0,
            total_chunks: 0,
            embed_started_at: None,
            embed_error: None,
        };
        commit_batch(&c, &index, 0, &vectors, &done, 0).unwrap();
        let index = indexes(&c, Some(Kind::Activity)).unwrap().remove(0);
        assert_eq!((index.dims, index.vectors), (16, n as u64));
        let q = &vectors[42].1;
        let exact = nearest(&c, &index, q, &Filter::default(), 5, Knn::Exact).unwrap();
        let coarse = nearest(&c, &index, q, &Filter::default(), 5, Knn::Coarse).unwrap();
        assert_eq!(exact[0].0, 43, "the vector itself first");
        assert_eq!(coarse[0].0, 43);
        assert!(
            (coarse[0].1 - 1.0).abs() < 1e-5,
            "rescored exactly: {coarse:?}"
        );
        let same = coarse
            .iter()
            .filter(|h| exact.iter().any(|e| e.0 == h.0))
            .count();
        assert!(same >= 4, "{exact:?} vs {coarse:?}");
    }
}
