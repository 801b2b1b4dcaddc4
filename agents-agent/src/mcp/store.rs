//! `mcp_servers` in cowork.db: each registered server, its transport, its
//! approval policy, whether it is enabled, and the connection flow's last
//! state (so a restart shows where a connection stopped).

use super::ServerPolicy;
use super::{ConnectionState, ServerSpec, Transport};
use crate::util::now_ms;
use cowork_db::{Owner, Step};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;

/// MCP as an owner of tables: its schema, oldest first (append only).
pub const OWNER: Owner = Owner {
    name: "mcp",
    steps: &[Step::Rust(schema_v1)],
};

/// Version 1: the release before versioning, written so a file that
/// release (or an older one, before the header and catalog columns) made
/// is adopted as it is.
fn schema_v1(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS mcp_servers (
            name TEXT PRIMARY KEY,
            transport TEXT NOT NULL,
            command_json TEXT NOT NULL,
            env_json TEXT NOT NULL,
            secret_env_json TEXT NOT NULL DEFAULT '[]',
            url TEXT NOT NULL,
            approval_policy TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            connection_state TEXT NOT NULL,
            last_error TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS mcp_tool_calls (
            id INTEGER PRIMARY KEY,
            call_id TEXT NOT NULL,
            server TEXT NOT NULL,
            tool TEXT NOT NULL,
            arguments_json TEXT NOT NULL,
            source TEXT NOT NULL,
            started_ms INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            error TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS mcp_tool_calls_started ON mcp_tool_calls(started_ms);",
    )?;
    // Columns added after the table first shipped.
    for (col, def) in [
        ("headers_json", "TEXT NOT NULL DEFAULT '{}'"),
        ("secret_headers_json", "TEXT NOT NULL DEFAULT '[]'"),
        ("catalog_id", "TEXT NOT NULL DEFAULT ''"),
        ("config_json", "TEXT NOT NULL DEFAULT '{}'"),
    ] {
        let has: bool = c.query_row(
            "SELECT count(*) FROM pragma_table_info('mcp_servers') WHERE name = ?1",
            [col],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !has {
            c.execute_batch(&format!("ALTER TABLE mcp_servers ADD COLUMN {col} {def}"))?;
        }
    }
    Ok(())
}

/// One audited tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The call's id.
    pub call_id: String,
    /// The server.
    pub server: String,
    /// The tool.
    pub tool: String,
    /// Its arguments.
    pub arguments_json: String,
    /// "user" (a direct call) or "agent" (a model asked).
    pub source: String,
    /// When it started, Unix ms.
    pub started_ms: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// ok, tool_error, error, timeout or aborted.
    pub outcome: String,
    /// The error, if any.
    pub error: String,
}

/// Append to the audit log (`mcp_tool_calls`).
pub fn audit(c: &Connection, e: &AuditEntry) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO mcp_tool_calls (call_id, server, tool, arguments_json, source, started_ms,
            duration_ms, outcome, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            e.call_id,
            e.server,
            e.tool,
            e.arguments_json,
            e.source,
            e.started_ms,
            e.duration_ms,
            e.outcome,
            e.error
        ],
    )
    .map(|_| ())
}

/// Where a bundled server came from: its definition and the non-secret
/// values it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundled {
    /// The definition's id ("" for a server added by command or URL).
    pub catalog_id: String,
    /// Its non-secret settings.
    pub config: BTreeMap<String, String>,
}

/// A row: the spec and the connection state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The server.
    pub spec: ServerSpec,
    /// Its definition, when it came from the catalog.
    pub bundled: Bundled,
    /// The connection flow's last state.
    pub connection_state: String,
    /// The last connection error.
    pub last_error: String,
}

/// Insert or replace a server.
pub fn put(
    c: &Connection,
    s: &ServerSpec,
    bundled: &Bundled,
    state: ConnectionState,
    error: &str,
) -> rusqlite::Result<()> {
    fn json(v: &impl serde::Serialize) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    let (command, env, secrets, url, headers, secret_headers) = match &s.transport {
        Transport::Stdio {
            command,
            env,
            secret_env,
        } => (
            json(command),
            json(env),
            json(secret_env),
            String::new(),
            "{}".into(),
            "[]".into(),
        ),
        Transport::Http {
            url,
            headers,
            secret_headers,
        } => (
            "[]".into(),
            "{}".into(),
            "[]".into(),
            url.clone(),
            json(headers),
            json(secret_headers),
        ),
    };
    let now = now_ms();
    c.execute(
        "INSERT INTO mcp_servers (name, transport, command_json, env_json, url, approval_policy,
            enabled, connection_state, last_error, created_ms, updated_ms, secret_env_json,
            headers_json, secret_headers_json, catalog_id, config_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT(name) DO UPDATE SET transport = ?2, command_json = ?3, env_json = ?4,
            url = ?5, approval_policy = ?6, enabled = ?7, connection_state = ?8,
            last_error = ?9, updated_ms = ?10, secret_env_json = ?11, headers_json = ?12,
            secret_headers_json = ?13, catalog_id = ?14, config_json = ?15",
        params![
            s.name,
            s.transport.kind(),
            command,
            env,
            url,
            s.approval_policy.name(),
            s.enabled,
            state.name(),
            error,
            now,
            secrets,
            headers,
            secret_headers,
            bundled.catalog_id,
            json(&bundled.config),
        ],
    )
    .map(|_| ())
}

/// Record a step of the connection flow (and the error, if it failed).
pub fn set_state(
    c: &Connection,
    name: &str,
    state: ConnectionState,
    error: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE mcp_servers SET connection_state = ?2, last_error = ?3, updated_ms = ?4
         WHERE name = ?1",
        params![name, state.name(), error, now_ms()],
    )
    .map(|_| ())
}

/// Turn a server on or off.
pub fn set_enabled(c: &Connection, name: &str, enabled: bool) -> rusqlite::Result<bool> {
    c.execute(
        "UPDATE mcp_servers SET enabled = ?2, updated_ms = ?3 WHERE name = ?1",
        params![name, enabled, now_ms()],
    )
    .map(|n| n > 0)
}

/// Forget a server.
pub fn remove(c: &Connection, name: &str) -> rusqlite::Result<bool> {
    c.execute("DELETE FROM mcp_servers WHERE name = ?1", [name])
        .map(|n| n > 0)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let (name, transport, command, env, url): (String, String, String, String, String) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
    let transport = if transport == "http" {
        Transport::Http {
            url,
            headers: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or_default(),
            secret_headers: serde_json::from_str(&r.get::<_, String>(11)?).unwrap_or_default(),
        }
    } else {
        Transport::Stdio {
            command: serde_json::from_str(&command).unwrap_or_default(),
            env: serde_json::from_str(&env).unwrap_or_default(),
            secret_env: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
        }
    };
    Ok(Row {
        spec: ServerSpec {
            name,
            transport,
            approval_policy: ServerPolicy::parse(&r.get::<_, String>(5)?).unwrap_or_default(),
            enabled: r.get(6)?,
        },
        bundled: Bundled {
            catalog_id: r.get(12)?,
            config: serde_json::from_str(&r.get::<_, String>(13)?).unwrap_or_default(),
        },
        connection_state: r.get(7)?,
        last_error: r.get(8)?,
    })
}

const COLUMNS: &str = "name, transport, command_json, env_json, url, approval_policy, enabled,
    connection_state, last_error, secret_env_json, headers_json, secret_headers_json,
    catalog_id, config_json";

/// One server.
pub fn get(c: &Connection, name: &str) -> rusqlite::Result<Option<Row>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM mcp_servers WHERE name = ?1"),
        [name],
        row,
    )
    .optional()
}

/// Every server, by name.
pub fn all(c: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM mcp_servers ORDER BY name"))?;
    let rows = st.query_map([], row)?.collect();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = crate::db::migrated(&[OWNER]);
        let env = [("TZ".to_string(), "UTC".to_string())]
            .into_iter()
            .collect();
        let s = super::super::spec(
            "time",
            vec!["python".into(), "-m".into(), "t".into()],
            "",
            env,
            "manual",
        )
        .unwrap();
        put(
            &c,
            &s,
            &Bundled::default(),
            ConnectionState::StartingServer,
            "",
        )
        .unwrap();
        set_state(&c, "time", ConnectionState::Connected, "").unwrap();
        let r = get(&c, "time").unwrap().unwrap();
        assert_eq!(r.spec, s);
        assert_eq!(r.connection_state, "CONNECTED");
        assert!(set_enabled(&c, "time", false).unwrap());
        assert!(!get(&c, "time").unwrap().unwrap().spec.enabled);
        let h = super::super::build(super::super::NewServer {
            name: "web".into(),
            url: "http://127.0.0.1:1/mcp".into(),
            headers: [("X-Org".to_string(), "acme".to_string())].into(),
            secret_headers: vec!["Authorization".into()],
            ..Default::default()
        })
        .unwrap();
        let b = Bundled {
            catalog_id: "github".into(),
            config: [("org".to_string(), "acme".to_string())].into(),
        };
        put(&c, &h, &b, ConnectionState::ConfigRequired, "needs: token").unwrap();
        let r = get(&c, "web").unwrap().unwrap();
        assert_eq!((r.spec.clone(), r.bundled.clone()), (h.clone(), b));
        assert_eq!(r.last_error, "needs: token");
        assert_eq!(all(&c).unwrap().len(), 2);
        assert!(remove(&c, "time").unwrap());
        assert!(!remove(&c, "time").unwrap());
        assert_eq!(all(&c).unwrap()[0].spec, h);
    }

    #[test]
    fn a_table_from_before_the_header_columns_is_upgraded() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE mcp_servers (name TEXT PRIMARY KEY, transport TEXT NOT NULL,
                command_json TEXT NOT NULL, env_json TEXT NOT NULL,
                secret_env_json TEXT NOT NULL DEFAULT '[]', url TEXT NOT NULL,
                approval_policy TEXT NOT NULL, enabled INTEGER NOT NULL,
                connection_state TEXT NOT NULL, last_error TEXT NOT NULL,
                created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
             INSERT INTO mcp_servers VALUES ('old', 'http', '[]', '{}', '[]',
                'https://h/mcp', 'default', 1, 'CONNECTED', '', 1, 1);",
        )
        .unwrap();
        cowork_db::migrate(&mut c, crate::db::LEDGER, &[OWNER]).unwrap();
        cowork_db::migrate(&mut c, crate::db::LEDGER, &[OWNER]).unwrap();
        let r = get(&c, "old").unwrap().unwrap();
        assert_eq!(r.spec.transport.kind(), "http");
        assert!(r.spec.secret_names().is_empty() && r.bundled.catalog_id.is_empty());
    }
}
