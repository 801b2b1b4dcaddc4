//! The vector indexes: one sqlite-vec `vec0` table per type and
//! generation with its rescoring table, their writes, and the KNN.

use super::{begin, kind_of, set_progress, vector_bytes, Filter, BUILDING, SERVING};
use crate::memory::item::Kind;
use crate::memory::jobs::{Progress, Status};
use crate::memory::quantize;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

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
pub(super) fn delete_vectors(
    c: &Connection,
    index: &Index,
    ids: &[i64],
) -> rusqlite::Result<usize> {
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

/// How a KNN query reads a vector index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knn {
    /// Coarse when [`quantize::use_coarse`] says so (a large index, few
    /// hits wanted), else exact.
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
            Knn::Auto => quantize::use_coarse(index.vectors, query.len(), k),
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
