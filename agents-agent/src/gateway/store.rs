//! `gateway_settings` in cowork.db: whether the person turned the local
//! API on, and on which port, so it comes back after a restart.

use super::policy::DEFAULT_PORT;
use cowork_db::{Owner, Step};
use rusqlite::{params, Connection, OptionalExtension};

/// The gateway as an owner of tables: its schema, oldest first (append only).
/// Version 1 is the release before versioning, written so a file that
/// release made is adopted as it is.
pub const OWNER: Owner = Owner {
    name: "gateway",
    steps: &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS gateway_settings (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                enabled INTEGER NOT NULL,
                port INTEGER NOT NULL)",
    )],
};

/// The stored settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Turned on.
    pub enabled: bool,
    /// Port on 127.0.0.1.
    pub port: u16,
}

/// The settings (off, default port, when never set).
pub fn get(c: &Connection) -> rusqlite::Result<Settings> {
    Ok(c.query_row(
        "SELECT enabled, port FROM gateway_settings WHERE id = 1",
        [],
        |r| {
            Ok(Settings {
                enabled: r.get::<_, i64>(0)? != 0,
                port: u16::try_from(r.get::<_, i64>(1)?).unwrap_or(DEFAULT_PORT),
            })
        },
    )
    .optional()?
    .unwrap_or(Settings {
        enabled: false,
        port: DEFAULT_PORT,
    }))
}

/// Store the settings.
pub fn put(c: &Connection, s: &Settings) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO gateway_settings (id, enabled, port) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET enabled = ?1, port = ?2",
        params![s.enabled as i64, s.port as i64],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_then_remembered() {
        let c = crate::db::migrated(&[OWNER]);
        assert_eq!(
            get(&c).unwrap(),
            Settings {
                enabled: false,
                port: DEFAULT_PORT
            }
        );
        put(
            &c,
            &Settings {
                enabled: true,
                port: 9000,
            },
        )
        .unwrap();
        assert_eq!(
            get(&c).unwrap(),
            Settings {
                enabled: true,
                port: 9000
            }
        );
    }
}
