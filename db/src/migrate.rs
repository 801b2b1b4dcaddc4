//! Versioned migrations: each owner of tables in cowork.db has an
//! append-only list of [`Step`]s (step `i` brings its schema to version
//! `i + 1`), recorded in a ledger table as they are applied, each in its
//! own transaction. A file whose recorded version for any owner is newer
//! than the list is refused before anything is written.

use rusqlite::{params, Connection, TransactionBehavior};

/// One step of an owner's schema.
#[derive(Clone, Copy)]
pub enum Step {
    /// SQL run as one batch.
    Sql(&'static str),
    /// Rust, for what SQL alone cannot say (e.g. add a column only where
    /// it is missing).
    Rust(fn(&Connection) -> rusqlite::Result<()>),
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Sql(s) => f.debug_tuple("Sql").field(s).finish(),
            Step::Rust(_) => f.write_str("Rust(..)"),
        }
    }
}

/// Whoever creates and migrates a set of tables, with its steps in order.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    /// The owner's name, as recorded in a [`Ledger::PerOwner`] table.
    pub name: &'static str,
    /// Its steps, oldest first. Append only: a released step never changes.
    pub steps: &'static [Step],
}

impl Owner {
    /// The schema version this build knows for the owner.
    pub const fn version(&self) -> i64 {
        self.steps.len() as i64
    }
}

/// Where applied versions are recorded.
#[derive(Debug, Clone, Copy)]
pub enum Ledger {
    /// `TABLE(version INTEGER PRIMARY KEY, applied_ms INTEGER)`, for one
    /// owner (capture-agent's `capture_schema_migrations`).
    Single(&'static str),
    /// `TABLE(owner TEXT, version INTEGER, applied_ms INTEGER)`, for
    /// several owners (agents-agent's `agents_schema_migrations`).
    PerOwner(&'static str),
}

impl Ledger {
    fn create_sql(self) -> String {
        match self {
            Ledger::Single(t) => format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    version INTEGER PRIMARY KEY,
                    applied_ms INTEGER NOT NULL)"
            ),
            Ledger::PerOwner(t) => format!(
                "CREATE TABLE IF NOT EXISTS {t} (
                    owner TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    applied_ms INTEGER NOT NULL,
                    PRIMARY KEY (owner, version))"
            ),
        }
    }

    fn version(self, c: &Connection, owner: &str) -> rusqlite::Result<i64> {
        match self {
            Ledger::Single(t) => c.query_row(
                &format!("SELECT coalesce(max(version), 0) FROM {t}"),
                [],
                |r| r.get(0),
            ),
            Ledger::PerOwner(t) => c.query_row(
                &format!("SELECT coalesce(max(version), 0) FROM {t} WHERE owner = ?1"),
                [owner],
                |r| r.get(0),
            ),
        }
    }

    fn record(self, c: &Connection, owner: &str, version: i64) -> rusqlite::Result<()> {
        let now = now_ms();
        match self {
            Ledger::Single(t) => c.execute(
                &format!("INSERT INTO {t} (version, applied_ms) VALUES (?1, ?2)"),
                params![version, now],
            ),
            Ledger::PerOwner(t) => c.execute(
                &format!("INSERT INTO {t} (owner, version, applied_ms) VALUES (?1, ?2, ?3)"),
                params![owner, version, now],
            ),
        }
        .map(|_| ())
    }
}

/// What one owner's migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The owner.
    pub owner: &'static str,
    /// The version found in the file (0: none recorded).
    pub from: i64,
    /// The version it is at now.
    pub to: i64,
}

/// Why cowork.db could not be brought to this build's schema.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The file was migrated by a newer build. Nothing was written.
    #[error(
        "cowork.db has {owner} schema version {found}, newer than this build's {known}: \
         upgrade Cowork (nothing was written)"
    )]
    TooNew {
        /// The owner whose tables are newer.
        owner: &'static str,
        /// The version recorded in the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// SQLite refused the ledger or a step (that step's transaction was
    /// rolled back; earlier steps stay applied).
    #[error("cannot migrate {owner}'s tables to version {version}: {source}")]
    Sql {
        /// The owner.
        owner: &'static str,
        /// The version being applied (0: reading or creating the ledger).
        version: i64,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The version recorded for each owner (0 where none is), in order. A
/// missing ledger table means 0 for all.
pub fn versions(
    c: &Connection,
    ledger: Ledger,
    owners: &[Owner],
) -> Result<Vec<i64>, MigrateError> {
    let table = match ledger {
        Ledger::Single(t) | Ledger::PerOwner(t) => t,
    };
    let sql_err = |owner: &'static str| {
        move |source| MigrateError::Sql {
            owner,
            version: 0,
            source,
        }
    };
    let first = owners.first().map_or("", |o| o.name);
    let exists: bool = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )
        .map_err(sql_err(first))?;
    owners
        .iter()
        .map(|o| {
            if exists {
                ledger.version(c, o.name).map_err(sql_err(o.name))
            } else {
                Ok(0)
            }
        })
        .collect()
}

/// Bring every owner's tables to this build's version. First every
/// owner's recorded version is read; if any is newer than its steps,
/// [`MigrateError::TooNew`] is returned and nothing is written. Then each
/// missing step is applied in its own (immediate) transaction, which
/// re-reads the version first, so two processes migrating at once apply
/// a step once.
pub fn migrate(
    c: &mut Connection,
    ledger: Ledger,
    owners: &[Owner],
) -> Result<Vec<Applied>, MigrateError> {
    assert!(
        matches!(ledger, Ledger::PerOwner(_)) || owners.len() <= 1,
        "a single-owner ledger records one owner's versions"
    );
    let found = versions(c, ledger, owners)?;
    for (o, &v) in owners.iter().zip(&found) {
        if v > o.version() {
            return Err(MigrateError::TooNew {
                owner: o.name,
                found: v,
                known: o.version(),
            });
        }
    }
    let mut applied = Vec::with_capacity(owners.len());
    for (o, &from) in owners.iter().zip(&found) {
        if from < o.version() {
            c.execute_batch(&ledger.create_sql())
                .map_err(|source| MigrateError::Sql {
                    owner: o.name,
                    version: 0,
                    source,
                })?;
        }
        for (i, step) in o.steps.iter().enumerate().skip(from.max(0) as usize) {
            let version = i as i64 + 1;
            let err = |source| MigrateError::Sql {
                owner: o.name,
                version,
                source,
            };
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            if ledger.version(&tx, o.name).map_err(err)? >= version {
                continue;
            }
            match step {
                Step::Sql(sql) => tx.execute_batch(sql),
                Step::Rust(f) => f(&tx),
            }
            .map_err(err)?;
            ledger.record(&tx, o.name, version).map_err(err)?;
            tx.commit().map_err(err)?;
            tracing::info!(owner = o.name, version, "schema migrated");
        }
        applied.push(Applied {
            owner: o.name,
            from,
            to: o.version().max(from),
        });
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTES: Owner = Owner {
        name: "notes",
        steps: &[
            Step::Sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)"),
            Step::Rust(|c| {
                c.execute_batch("ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
            }),
        ],
    };
    const TAGS: Owner = Owner {
        name: "tags",
        steps: &[Step::Sql("CREATE TABLE tags (name TEXT PRIMARY KEY)")],
    };
    const LEDGER: Ledger = Ledger::PerOwner("test_schema_migrations");

    #[test]
    fn applies_each_missing_step_once_per_owner() {
        let mut c = Connection::open_in_memory().unwrap();
        let first = NOTES.steps[..1].to_vec().leak();
        let old = Owner {
            name: "notes",
            steps: first,
        };
        let a = migrate(&mut c, LEDGER, &[old]).unwrap();
        assert_eq!(
            a,
            vec![Applied {
                owner: "notes",
                from: 0,
                to: 1
            }]
        );
        c.execute("INSERT INTO notes (text) VALUES ('kept')", [])
            .unwrap();
        let a = migrate(&mut c, LEDGER, &[NOTES, TAGS]).unwrap();
        assert_eq!(
            a,
            vec![
                Applied {
                    owner: "notes",
                    from: 1,
                    to: 2
                },
                Applied {
                    owner: "tags",
                    from: 0,
                    to: 1
                }
            ]
        );
        let (text, pinned): (String, i64) = c
            .query_row("SELECT text, pinned FROM notes", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((text.as_str(), pinned), ("kept", 0));
        assert_eq!(versions(&c, LEDGER, &[NOTES, TAGS]).unwrap(), vec![2, 1]);
        // Again: nothing to do, nothing recorded twice.
        migrate(&mut c, LEDGER, &[NOTES, TAGS]).unwrap();
        let rows: i64 = c
            .query_row("SELECT count(*) FROM test_schema_migrations", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(rows, 3);
    }

    #[test]
    fn a_newer_owner_is_refused_and_nothing_is_written() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c, LEDGER, &[TAGS]).unwrap();
        c.execute(
            "INSERT INTO test_schema_migrations VALUES ('tags', 2, 0)",
            [],
        )
        .unwrap();
        let changes = c.total_changes();
        let e = migrate(&mut c, LEDGER, &[NOTES, TAGS]).unwrap_err();
        assert!(
            matches!(
                e,
                MigrateError::TooNew {
                    owner: "tags",
                    found: 2,
                    known: 1
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("tags schema version 2"), "{e}");
        assert_eq!(c.total_changes(), changes, "nothing written");
        let notes: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'notes'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(notes, 0, "the older owner was not migrated either");
    }

    #[test]
    fn a_failing_step_rolls_back_alone() {
        const BAD: Owner = Owner {
            name: "bad",
            steps: &[
                Step::Sql("CREATE TABLE bad_a (id INTEGER)"),
                Step::Sql("CREATE TABLE bad_b (id INTEGER); CREATE TABLE bad_a (id INTEGER)"),
            ],
        };
        let mut c = Connection::open_in_memory().unwrap();
        let e = migrate(&mut c, Ledger::Single("bad_schema_migrations"), &[BAD]).unwrap_err();
        assert!(
            matches!(
                e,
                MigrateError::Sql {
                    owner: "bad",
                    version: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            versions(&c, Ledger::Single("bad_schema_migrations"), &[BAD]).unwrap(),
            vec![1]
        );
        let b: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'bad_b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(b, 0, "step 2 rolled back whole");
    }
}
