//! Observational memory's table (`memory_observations`: every observation
//! and reflection, the superseded ones kept) and the Observer's state.
//! An observation is also a memory item of type observation (so it is
//! keyword-searchable and embedded into `embed_observation`); written in
//! the same transaction as the Observer's high-water mark, so a kill
//! mid-observation loses nothing and repeats nothing.

use super::{begin, delete_items, kind_of, put_source, set_watermark, stream_of, watermark};
use crate::memory::item::{Kind, Source, Stream};
use crate::memory::observe::{normalize, Observation, Raw};
use rusqlite::{params, Connection, OptionalExtension};

/// The Observer's high-water mark in `memory_watermarks` (its `row`: the
/// last memory item observed).
pub const OBSERVER: &str = "observer";

/// The raw history the Observer reads: activity and conversation, but
/// never typed, copied or spoken text (observations may reach a cloud
/// model; see `Stream::is_private_text`).
const RAW: &str =
    "kind IN ('activity', 'conversation') AND stream NOT IN ('keystrokes', 'clipboard', 'audio')";

/// Items of raw history after the Observer's mark, oldest first, at most
/// `limit`.
pub fn unobserved(c: &Connection, limit: usize) -> rusqlite::Result<Vec<Raw>> {
    let (_, after) = watermark(c, OBSERVER)?;
    let mut s = c.prepare_cached(&format!(
        "SELECT id, kind, stream, source_id, time_ms, text FROM memory_items
         WHERE id > ?1 AND {RAW} ORDER BY id LIMIT ?2"
    ))?;
    let rows = s.query_map(params![after, limit as i64], |r| {
        Ok(Raw {
            item_id: r.get(0)?,
            kind: kind_of(&r.get::<_, String>(1)?)?,
            stream: stream_of(&r.get::<_, String>(2)?)?,
            source_id: r.get(3)?,
            time_ms: r.get(4)?,
            text: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// Characters of raw history after the Observer's mark.
pub fn unobserved_chars(c: &Connection) -> rusqlite::Result<u64> {
    let (_, after) = watermark(c, OBSERVER)?;
    c.query_row(
        &format!("SELECT coalesce(sum(length(text)), 0) FROM memory_items WHERE id > ?1 AND {RAW}"),
        [after],
        |r| r.get::<_, i64>(0).map(|n| n.max(0) as u64),
    )
}

/// Store one item for observation `id`.
fn index(c: &Connection, id: i64, o: &Observation) -> rusqlite::Result<()> {
    let source = Source {
        stream: Stream::Observation,
        source_id: format!("observation:{id}"),
        row: Some(id),
        text: o.text.clone(),
        time_ms: o.refers_ms,
        app: String::new(),
        collection: String::new(),
        thread: String::new(),
        seq: 0,
    };
    put_source(c, Kind::Observation, &source, std::slice::from_ref(&o.text))?;
    Ok(())
}

/// Insert `o` at `level` unless the same text is stored already; its id
/// when inserted.
fn insert(
    c: &Connection,
    o: &Observation,
    level: u32,
    now_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    let n = c.execute(
        "INSERT INTO memory_observations (norm, text, observed_ms, refers_ms, sources, level)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(norm) DO NOTHING",
        params![
            normalize(&o.text),
            o.text,
            now_ms,
            o.refers_ms,
            o.sources.join("\n"),
            level
        ],
    )?;
    if n == 0 {
        return Ok(None);
    }
    let id = c.last_insert_rowid();
    let mut s = c.prepare_cached(
        "INSERT OR IGNORE INTO memory_observation_sources (source_id, observation_id)
         VALUES (?1, ?2)",
    )?;
    for src in &o.sources {
        s.execute(params![src, id])?;
    }
    Ok(Some(id))
}

/// Delete observation `id` (current or superseded): its row, its
/// sources and its item, in the caller's transaction.
pub fn delete_observation(c: &Connection, id: i64) -> rusqlite::Result<()> {
    let items: Vec<i64> = c
        .prepare_cached(
            "SELECT id FROM memory_items WHERE kind = 'observation' AND source_id = ?1",
        )?
        .query_map([format!("observation:{id}")], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    delete_items(c, Kind::Observation, &items)?;
    c.execute(
        "DELETE FROM memory_observation_sources WHERE observation_id = ?1",
        [id],
    )?;
    c.execute("DELETE FROM memory_observations WHERE id = ?1", [id])?;
    Ok(())
}

/// Delete every observation (and reflection) made from any of `sources`
/// (they left memory: forgotten, past retention, a stream turned off, or
/// changed and indexed anew), in the caller's transaction.
pub fn drop_derived(c: &Connection, sources: &[String]) -> rusqlite::Result<usize> {
    let mut ids = std::collections::BTreeSet::new();
    {
        let mut s = c.prepare_cached(
            "SELECT observation_id FROM memory_observation_sources WHERE source_id = ?1",
        )?;
        for src in sources {
            for id in s.query_map([src], |r| r.get::<_, i64>(0))? {
                ids.insert(id?);
            }
        }
    }
    for id in &ids {
        delete_observation(c, *id)?;
    }
    Ok(ids.len())
}

/// Store the observations of the raw history up to item `upto` and move
/// the Observer's mark there, in one transaction; returns how many were
/// new (one already stored is not stored again).
pub fn commit_observations(
    c: &Connection,
    obs: &[Observation],
    upto: i64,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let tx = begin(c)?;
    let mut new = 0;
    for o in obs {
        if let Some(id) = insert(&tx, o, 0, now_ms)? {
            index(&tx, id, o)?;
            new += 1;
        }
    }
    set_watermark(&tx, OBSERVER, now_ms, upto)?;
    tx.commit()?;
    Ok(new)
}

/// A current observation (or reflection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Its id.
    pub id: i64,
    /// Its text.
    pub text: String,
    /// The day it refers to.
    pub refers_ms: i64,
    /// Its sources.
    pub sources: Vec<String>,
    /// 0 an observation, 1 and up a reflection.
    pub level: u32,
}

/// The current (not superseded) observations, oldest day first.
pub fn current_observations(c: &Connection) -> rusqlite::Result<Vec<Current>> {
    let mut s = c.prepare_cached(
        "SELECT id, text, refers_ms, sources, level FROM memory_observations
         WHERE superseded_ms IS NULL ORDER BY refers_ms, id",
    )?;
    let rows = s.query_map([], |r| {
        let sources: String = r.get(3)?;
        Ok(Current {
            id: r.get(0)?,
            text: r.get(1)?,
            refers_ms: r.get(2)?,
            sources: sources.lines().map(str::to_owned).collect(),
            level: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Replace observations `inputs` by `reflections`, in one transaction:
/// the reflections stored (and indexed), the inputs superseded (kept in
/// the table, out of the indexes). Returns the reflections stored.
pub fn commit_reflection(
    c: &Connection,
    inputs: &[Current],
    reflections: &[Observation],
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let tx = begin(c)?;
    let level = inputs.iter().map(|i| i.level).max().unwrap_or(0) + 1;
    // The inputs go first: a reflection may say what one of them said.
    let mut gone = Vec::new();
    for i in inputs {
        tx.execute(
            "UPDATE memory_observations SET superseded_ms = ?2, norm = norm || ' #' || id
             WHERE id = ?1 AND superseded_ms IS NULL",
            params![i.id, now_ms],
        )?;
        let items: Vec<i64> = tx
            .prepare_cached(
                "SELECT id FROM memory_items WHERE kind = 'observation' AND source_id = ?1",
            )?
            .query_map([format!("observation:{}", i.id)], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        gone.extend(items);
    }
    delete_items(&tx, Kind::Observation, &gone)?;
    let mut new = 0;
    for r in reflections {
        if let Some(id) = insert(&tx, r, level, now_ms)? {
            index(&tx, id, r)?;
            new += 1;
        }
    }
    tx.commit()?;
    Ok(new)
}

/// Counts for status: current observations, reflections among them,
/// superseded ones.
pub fn observation_counts(c: &Connection) -> rusqlite::Result<(u64, u64, u64)> {
    c.query_row(
        "SELECT count(*) FILTER (WHERE superseded_ms IS NULL),
                count(*) FILTER (WHERE superseded_ms IS NULL AND level > 0),
                count(*) FILTER (WHERE superseded_ms IS NOT NULL)
         FROM memory_observations",
        [],
        |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        },
    )
}

/// Note the Observer's last outcome (`error` "" for success).
pub fn set_observer_state(c: &Connection, error: &str, now_ms: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO memory_observer (id, last_run_ms, last_error) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET last_run_ms = ?1, last_error = ?2",
        params![now_ms, error],
    )?;
    Ok(())
}

/// The Observer's last run and error ("" none).
pub fn observer_state(c: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    c.query_row(
        "SELECT last_run_ms, last_error FROM memory_observer WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::store::OWNER;

    fn db() -> Connection {
        cowork_db::register_sqlite_vec();
        crate::db::migrated(&[crate::chat::store::OWNER, OWNER])
    }

    fn obs(text: &str) -> Observation {
        Observation {
            text: text.into(),
            refers_ms: 86_400_000,
            sources: vec!["activity:1".into()],
        }
    }

    fn count(c: &Connection, sql: &str) -> i64 {
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn observations_are_stored_once_with_the_mark_and_indexed_for_search() {
        let c = db();
        for (i, t) in ["Ann: looked at INV-1", "Ann: standup at ten"]
            .iter()
            .enumerate()
        {
            let src = Source {
                stream: Stream::Window,
                source_id: format!("activity:{i}"),
                row: Some(i as i64),
                text: (*t).into(),
                time_ms: 86_400_000,
                app: String::new(),
                collection: String::new(),
                thread: String::new(),
                seq: 0,
            };
            put_source(&c, Kind::Activity, &src, std::slice::from_ref(&src.text)).unwrap();
        }
        let raw = unobserved(&c, 10).unwrap();
        assert_eq!(raw.len(), 2);
        assert!(unobserved_chars(&c).unwrap() > 0);
        let upto = raw[1].item_id;
        let o = [
            obs("Looked at invoice INV-1"),
            obs("looked at invoice INV-1."),
        ];
        assert_eq!(
            commit_observations(&c, &o, upto, 5).unwrap(),
            1,
            "the same text once"
        );
        assert!(unobserved(&c, 10).unwrap().is_empty(), "the mark moved");
        // The same observation again (a redone window) is not stored twice.
        assert_eq!(commit_observations(&c, &o, upto, 6).unwrap(), 0);
        assert_eq!(count(&c, "SELECT count(*) FROM memory_observations"), 1);
        assert_eq!(
            count(
                &c,
                "SELECT count(*) FROM memory_items WHERE kind = 'observation'"
            ),
            1
        );
        assert_eq!(
            count(
                &c,
                "SELECT count(*) FROM memory_fts WHERE memory_fts MATCH 'invoice'"
            ),
            1
        );
        // Observer items are not raw history.
        assert!(unobserved(&c, 10).unwrap().is_empty());
    }

    #[test]
    fn a_reflection_supersedes_its_inputs_and_keeps_them() {
        let c = db();
        commit_observations(
            &c,
            &[obs("First thing seen"), obs("Second thing seen")],
            0,
            1,
        )
        .unwrap();
        let cur = current_observations(&c).unwrap();
        assert_eq!(cur.len(), 2);
        // A reflection that says exactly what an input said is stored.
        let n = commit_reflection(&c, &cur, &[obs("First thing seen")], 2).unwrap();
        assert_eq!(n, 1);
        let now = current_observations(&c).unwrap();
        assert_eq!(now.len(), 1);
        assert_eq!(now[0].level, 1);
        assert_eq!(observation_counts(&c).unwrap(), (1, 1, 2));
        assert_eq!(
            count(
                &c,
                "SELECT count(*) FROM memory_items WHERE kind = 'observation'"
            ),
            1,
            "superseded observations leave the index"
        );
        set_observer_state(&c, "reflection rejected", 9).unwrap();
        assert_eq!(
            observer_state(&c).unwrap(),
            Some((9, "reflection rejected".into()))
        );
    }
}
