//! Working memory's table (`memory_profile`: every value ever set, the
//! current ones not superseded) and the observation anchors
//! (`memory_pins`).

use super::begin;
use crate::memory::item::Item;
use crate::memory::profile::{self, Entry, Origin, Write};
use rusqlite::{params, Connection, OptionalExtension};

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let origin: String = r.get(2)?;
    Ok(Entry {
        key: r.get(0)?,
        value: r.get(1)?,
        origin: Origin::parse(&origin).unwrap_or(Origin::Inferred),
        updated_ms: r.get(3)?,
    })
}

/// The current profile, known keys first.
pub fn profile(c: &Connection) -> rusqlite::Result<Vec<Entry>> {
    let mut s = c.prepare_cached(
        "SELECT key, value, origin, created_ms FROM memory_profile
         WHERE superseded_ms IS NULL AND value != ''",
    )?;
    let mut out: Vec<Entry> = s.query_map([], entry)?.collect::<Result<_, _>>()?;
    profile::sort(&mut out);
    Ok(out)
}

/// What [`set_profile`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// Written (added, or superseding the old value).
    Written,
    /// The same value was there.
    Unchanged,
    /// The person's own value was kept over an inferred one.
    KeptPersons,
    /// The profile has [`profile::MAX_ENTRIES`] keys already.
    Full,
}

/// Set `key` (checked by [`profile::key`]) to `value` as `origin` wrote
/// it, by the rule of [`profile::write`], in one transaction.
pub fn set_profile(
    c: &Connection,
    key: &str,
    value: &str,
    origin: Origin,
    now_ms: i64,
) -> rusqlite::Result<SetOutcome> {
    let tx = begin(c)?;
    let current = tx
        .prepare_cached(
            "SELECT key, value, origin, created_ms FROM memory_profile
             WHERE key = ?1 AND superseded_ms IS NULL",
        )?
        .query_row([key], entry)
        .optional()?;
    let outcome = match profile::write(current.as_ref(), value, origin) {
        Write::Unchanged => SetOutcome::Unchanged,
        Write::KeepPersons => SetOutcome::KeptPersons,
        Write::Supersede => {
            let keys: i64 = tx.query_row(
                "SELECT count(*) FROM memory_profile WHERE superseded_ms IS NULL AND value != ''",
                [],
                |r| r.get(0),
            )?;
            if current.is_none() && keys as usize >= profile::MAX_ENTRIES {
                SetOutcome::Full
            } else {
                tx.execute(
                    "UPDATE memory_profile SET superseded_ms = ?2
                     WHERE key = ?1 AND superseded_ms IS NULL",
                    params![key, now_ms],
                )?;
                tx.execute(
                    "INSERT INTO memory_profile (key, value, origin, created_ms)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![key, value, origin.as_str(), now_ms],
                )?;
                SetOutcome::Written
            }
        }
    };
    tx.commit()?;
    Ok(outcome)
}

/// Supersede `key` (all keys when None) with the person's "nothing" (an
/// empty value, not shown): a key the person removed is not inferred
/// again. Returns the keys removed.
pub fn unset_profile(c: &Connection, key: Option<&str>, now_ms: i64) -> rusqlite::Result<usize> {
    let tx = begin(c)?;
    let keys: Vec<String> = tx
        .prepare_cached(
            "SELECT key FROM memory_profile
             WHERE superseded_ms IS NULL AND value != '' AND (?1 IS NULL OR key = ?1)",
        )?
        .query_map(params![key], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for k in &keys {
        tx.execute(
            "UPDATE memory_profile SET superseded_ms = ?2 WHERE key = ?1 AND superseded_ms IS NULL",
            params![k, now_ms],
        )?;
        tx.execute(
            "INSERT INTO memory_profile (key, value, origin, created_ms) VALUES (?1, '', ?2, ?3)",
            params![k, Origin::Person.as_str(), now_ms],
        )?;
    }
    tx.commit()?;
    Ok(keys.len())
}

/// A pinned source.
#[derive(Debug, Clone, PartialEq)]
pub struct Pinned {
    /// Its id.
    pub source_id: String,
    /// When it was pinned (Unix ms).
    pub pinned_ms: i64,
    /// Its chunks (none when the source has left memory since).
    pub items: Vec<Item>,
}

/// Pins kept at most (each is in every grounded context).
pub const MAX_PINS: usize = 32;

/// What [`pin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutcome {
    /// Pinned (or pinned already).
    Pinned,
    /// Memory holds no such source.
    Unknown,
    /// [`MAX_PINS`] are pinned already.
    Full,
}

/// Pin `source_id`.
pub fn pin(c: &Connection, source_id: &str, now_ms: i64) -> rusqlite::Result<PinOutcome> {
    if super::items_of_source(c, source_id, 1)?.is_empty() {
        return Ok(PinOutcome::Unknown);
    }
    let (pinned, n): (bool, i64) = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM memory_pins WHERE source_id = ?1),
                (SELECT count(*) FROM memory_pins)",
        [source_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if !pinned && n as usize >= MAX_PINS {
        return Ok(PinOutcome::Full);
    }
    c.execute(
        "INSERT INTO memory_pins (source_id, pinned_ms) VALUES (?1, ?2)
         ON CONFLICT(source_id) DO NOTHING",
        params![source_id, now_ms],
    )?;
    Ok(PinOutcome::Pinned)
}

/// Unpin `source_id`; false when it was not pinned.
pub fn unpin(c: &Connection, source_id: &str) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM memory_pins WHERE source_id = ?1", [source_id])? > 0)
}

/// The pins, newest first, each with its first `chunks` chunks.
pub fn pins(c: &Connection, chunks: usize) -> rusqlite::Result<Vec<Pinned>> {
    let rows: Vec<(String, i64)> = c
        .prepare_cached("SELECT source_id, pinned_ms FROM memory_pins ORDER BY pinned_ms DESC")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(source_id, pinned_ms)| {
            let items = super::items_of_source(c, &source_id, chunks)?;
            Ok(Pinned {
                source_id,
                pinned_ms,
                items,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_the_person_removed_is_not_inferred_again_and_history_is_kept() {
        cowork_db::register_sqlite_vec();
        let c = crate::db::migrated(&[crate::chat::store::OWNER, super::super::OWNER]);
        assert_eq!(
            set_profile(&c, "role", "dev", Origin::Inferred, 1).unwrap(),
            SetOutcome::Written
        );
        assert_eq!(
            set_profile(&c, "role", "lead", Origin::Person, 2).unwrap(),
            SetOutcome::Written
        );
        assert_eq!(
            set_profile(&c, "role", "intern", Origin::Inferred, 3).unwrap(),
            SetOutcome::KeptPersons
        );
        assert_eq!(unset_profile(&c, Some("role"), 4).unwrap(), 1);
        assert!(profile(&c).unwrap().is_empty());
        assert_eq!(
            set_profile(&c, "role", "intern", Origin::Inferred, 5).unwrap(),
            SetOutcome::KeptPersons,
            "removed by the person"
        );
        assert_eq!(
            set_profile(&c, "role", "manager", Origin::Person, 6).unwrap(),
            SetOutcome::Written
        );
        assert_eq!(profile(&c).unwrap()[0].value, "manager");
        let rows: i64 = c
            .query_row(
                "SELECT count(*) FROM memory_profile WHERE key = 'role'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 4, "every value kept, superseded");
        assert_eq!(unset_profile(&c, None, 7).unwrap(), 1);
        assert_eq!(unset_profile(&c, None, 8).unwrap(), 0);
    }
}
