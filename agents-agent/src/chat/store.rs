//! Chat's tables in cowork.db, `agents_threads` and `agents_messages`: the
//! only SQL for them.

use super::Citation;
use crate::util::{new_id, now_ms};
use cowork_db::{Owner, Step};
use rusqlite::{params, Connection, OptionalExtension};

/// A thread row.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadRow {
    /// Id.
    pub id: String,
    /// The first words of its first message.
    pub title: String,
    /// Unix ms.
    pub created_ms: i64,
    /// Unix ms.
    pub updated_ms: i64,
    /// Messages in it.
    pub message_count: u32,
    /// The installed app it belongs to ("" for none).
    pub app_id: String,
}

/// A message row.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    /// Id.
    pub id: String,
    /// Its thread.
    pub thread_id: String,
    /// "user" or "assistant".
    pub role: String,
    /// Text.
    pub content: String,
    /// `provider/model` of an assistant message.
    pub model: String,
    /// The ask it belongs to.
    pub ask_id: String,
    /// Unix ms.
    pub created_ms: i64,
    /// stop, length, error, ... (assistant).
    pub finish_reason: String,
}

/// Chat as an owner of tables: its schema, oldest first (append only).
/// Version 1 is the release before versioning, written so a file that
/// release made is adopted as it is.
pub const OWNER: Owner = Owner {
    name: "chat",
    steps: &[
        Step::Sql(
            "CREATE TABLE IF NOT EXISTS agents_threads (
                id TEXT PRIMARY KEY, title TEXT NOT NULL,
                created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS agents_messages (
                id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, role TEXT NOT NULL,
                content TEXT NOT NULL, model TEXT NOT NULL, ask_id TEXT NOT NULL,
                created_ms INTEGER NOT NULL, finish_reason TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS agents_messages_thread ON agents_messages(thread_id, created_ms);",
        ),
        // 2: past conversations imported from a file (`memory import
        // --type conversation`): who spoke, and the import's collection.
        Step::Sql(
            "ALTER TABLE agents_messages ADD COLUMN speaker TEXT NOT NULL DEFAULT '';
             ALTER TABLE agents_threads ADD COLUMN collection TEXT NOT NULL DEFAULT '';",
        ),
        // 3: the sources an answer was given (its citations), in order.
        Step::Sql(
            "CREATE TABLE agents_citations (
                message_id TEXT NOT NULL, pos INTEGER NOT NULL,
                source_type TEXT NOT NULL, source_id TEXT NOT NULL,
                time_ms INTEGER NOT NULL, snippet TEXT NOT NULL,
                chunk_id INTEGER NOT NULL, layer TEXT NOT NULL,
                PRIMARY KEY (message_id, pos)) WITHOUT ROWID;
             CREATE INDEX agents_citations_source ON agents_citations(source_id);",
        ),
        // 4: an installed app's conversations (`chat --app`): what its read
        // lane's `data.conversations` returns, deleted with the app.
        Step::Sql(
            "ALTER TABLE agents_threads ADD COLUMN app_id TEXT NOT NULL DEFAULT '';
             CREATE INDEX agents_threads_app ON agents_threads(app_id, updated_ms) WHERE app_id != '';",
        ),
    ],
};

/// Create a thread titled after its first message.
pub fn create_thread(c: &Connection, first_message: &str) -> rusqlite::Result<String> {
    create_app_thread(c, first_message, "")
}

/// Create a thread that belongs to the installed app `app_id` ("" none).
pub fn create_app_thread(
    c: &Connection,
    first_message: &str,
    app_id: &str,
) -> rusqlite::Result<String> {
    let id = new_id("th");
    let title: String = first_message.chars().take(60).collect();
    let now = now_ms();
    c.execute(
        "INSERT INTO agents_threads (id, title, created_ms, updated_ms, app_id)
         VALUES (?1, ?2, ?3, ?3, ?4)",
        params![id, title, now, app_id],
    )?;
    Ok(id)
}

/// The app's threads, most recently updated first.
pub fn app_threads(c: &Connection, app_id: &str, limit: u32) -> rusqlite::Result<Vec<ThreadRow>> {
    let mut s = c.prepare(&format!(
        "{THREAD_SQL} WHERE t.app_id = ?1 AND t.app_id != '' ORDER BY t.updated_ms DESC LIMIT ?2"
    ))?;
    let rows = s.query_map(params![app_id, limit], thread_row)?;
    rows.collect()
}

/// The ids of the app's messages (what memory indexed of them).
pub fn app_message_ids(c: &Connection, app_id: &str) -> rusqlite::Result<Vec<String>> {
    let mut s = c.prepare(
        "SELECT m.id FROM agents_messages m JOIN agents_threads t ON t.id = m.thread_id
         WHERE t.app_id = ?1 AND t.app_id != ''",
    )?;
    let rows = s.query_map([app_id], |r| r.get(0))?;
    rows.collect()
}

/// Delete the app's threads with their messages and citations, in one
/// transaction; returns (threads, messages) deleted.
pub fn delete_app_threads(c: &Connection, app_id: &str) -> rusqlite::Result<(u32, u32)> {
    if app_id.is_empty() {
        return Ok((0, 0));
    }
    let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
    let mine = "SELECT id FROM agents_threads WHERE app_id = ?1";
    tx.execute(
        &format!(
            "DELETE FROM agents_citations WHERE message_id IN
             (SELECT id FROM agents_messages WHERE thread_id IN ({mine}))"
        ),
        [app_id],
    )?;
    let messages = tx.execute(
        &format!("DELETE FROM agents_messages WHERE thread_id IN ({mine})"),
        [app_id],
    )?;
    let threads = tx.execute("DELETE FROM agents_threads WHERE app_id = ?1", [app_id])?;
    tx.commit()?;
    Ok((threads as u32, messages as u32))
}

/// Does the thread exist?
pub fn thread_exists(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    c.query_row("SELECT 1 FROM agents_threads WHERE id = ?1", [id], |_| {
        Ok(())
    })
    .optional()
    .map(|o| o.is_some())
}

/// Store a message (insert or replace by id) and touch its thread.
pub fn put_message(c: &Connection, m: &MessageRow) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR REPLACE INTO agents_messages
            (id, thread_id, role, content, model, ask_id, created_ms, finish_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            m.id,
            m.thread_id,
            m.role,
            m.content,
            m.model,
            m.ask_id,
            m.created_ms,
            m.finish_reason
        ],
    )?;
    c.execute(
        "UPDATE agents_threads SET updated_ms = ?2 WHERE id = ?1",
        params![m.thread_id, now_ms()],
    )?;
    Ok(())
}

fn message(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        thread_id: r.get(1)?,
        role: r.get(2)?,
        content: r.get(3)?,
        model: r.get(4)?,
        ask_id: r.get(5)?,
        created_ms: r.get(6)?,
        finish_reason: r.get(7)?,
    })
}

/// One message by id.
pub fn get_message(c: &Connection, id: &str) -> rusqlite::Result<Option<MessageRow>> {
    c.query_row(
        "SELECT id, thread_id, role, content, model, ask_id, created_ms, finish_reason
         FROM agents_messages WHERE id = ?1",
        [id],
        message,
    )
    .optional()
}

/// A thread's messages, oldest first.
pub fn messages(c: &Connection, thread_id: &str) -> rusqlite::Result<Vec<MessageRow>> {
    let mut s = c.prepare(
        "SELECT id, thread_id, role, content, model, ask_id, created_ms, finish_reason
         FROM agents_messages WHERE thread_id = ?1 ORDER BY created_ms, rowid",
    )?;
    let rows = s.query_map([thread_id], message)?;
    rows.collect()
}

fn thread_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ThreadRow> {
    Ok(ThreadRow {
        id: r.get(0)?,
        title: r.get(1)?,
        created_ms: r.get(2)?,
        updated_ms: r.get(3)?,
        message_count: r.get(4)?,
        app_id: r.get(5)?,
    })
}

const THREAD_SQL: &str = "SELECT t.id, t.title, t.created_ms, t.updated_ms,
    (SELECT count(*) FROM agents_messages m WHERE m.thread_id = t.id), t.app_id
    FROM agents_threads t";

/// Threads, most recently updated first.
pub fn threads(c: &Connection, limit: u32) -> rusqlite::Result<Vec<ThreadRow>> {
    let mut s = c.prepare(&format!("{THREAD_SQL} ORDER BY t.updated_ms DESC LIMIT ?1"))?;
    let rows = s.query_map([limit], thread_row)?;
    rows.collect()
}

/// One thread.
pub fn thread(c: &Connection, id: &str) -> rusqlite::Result<Option<ThreadRow>> {
    c.query_row(&format!("{THREAD_SQL} WHERE t.id = ?1"), [id], thread_row)
        .optional()
}

/// A message as memory indexes it: the row, who spoke (an imported
/// conversation's speaker, else its role) and its thread's collection.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedMessage {
    /// Its rowid: memory's high-water mark (a replaced message gets a
    /// new one, so an edit is noticed).
    pub rowid: i64,
    /// The message.
    pub message: MessageRow,
    /// Who spoke.
    pub speaker: String,
    /// Its thread's collection ("" for the person's own chats).
    pub collection: String,
}

/// Messages stored after rowid `after`, oldest first, at most `limit`.
pub fn messages_after(
    c: &Connection,
    after: i64,
    limit: u32,
) -> rusqlite::Result<Vec<IndexedMessage>> {
    let mut s = c.prepare_cached(
        "SELECT m.id, m.thread_id, m.role, m.content, m.model, m.ask_id, m.created_ms,
                m.finish_reason, m.rowid, m.speaker, coalesce(t.collection, '')
         FROM agents_messages m LEFT JOIN agents_threads t ON t.id = m.thread_id
         WHERE m.rowid > ?1 ORDER BY m.rowid LIMIT ?2",
    )?;
    let rows = s.query_map(params![after, limit], |r| {
        let speaker: String = r.get(9)?;
        let message = message(r)?;
        Ok(IndexedMessage {
            rowid: r.get(8)?,
            speaker: if speaker.is_empty() {
                message.role.clone()
            } else {
                speaker
            },
            collection: r.get(10)?,
            message,
        })
    })?;
    rows.collect()
}

/// Where a message stands in its thread: its position (0 for the first;
/// by time, then by when it was stored) and the message before it, as
/// (speaker, content), refusals and failed answers passed over: what
/// memory indexes a message with.
pub fn context_of(
    c: &Connection,
    thread_id: &str,
    created_ms: i64,
    id: &str,
) -> rusqlite::Result<(i64, Option<(String, String)>)> {
    let rowid: i64 = c
        .prepare_cached("SELECT rowid FROM agents_messages WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .unwrap_or(i64::MAX);
    let before = "thread_id = ?1 AND (created_ms < ?2 OR (created_ms = ?2 AND rowid < ?3))";
    let seq: i64 = c
        .prepare_cached(&format!(
            "SELECT count(*) FROM agents_messages WHERE {before}"
        ))?
        .query_row(params![thread_id, created_ms, rowid], |r| r.get(0))?;
    let prev = c
        .prepare_cached(&format!(
            "SELECT CASE speaker WHEN '' THEN role ELSE speaker END, content
             FROM agents_messages WHERE {before} AND finish_reason NOT IN ('refusal', 'error')
             ORDER BY created_ms DESC, rowid DESC LIMIT 1"
        ))?
        .query_row(params![thread_id, created_ms, rowid], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok((seq, prev))
}

/// The `finish_reason` of a grounded question's refusal: shown and
/// stored, never in a later context window, never indexed.
pub const REFUSAL: &str = "refusal";

/// Store the citations of message `message_id` (replacing any).
pub fn put_citations(c: &Connection, message_id: &str, cites: &[Citation]) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM agents_citations WHERE message_id = ?1",
        [message_id],
    )?;
    let mut s = c.prepare_cached(
        "INSERT INTO agents_citations
            (message_id, pos, source_type, source_id, time_ms, snippet, chunk_id, layer)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (i, x) in cites.iter().enumerate() {
        s.execute(params![
            message_id,
            i as i64,
            x.source_type,
            x.source_id,
            x.time_ms,
            x.snippet,
            x.chunk_id,
            x.layer
        ])?;
    }
    Ok(())
}

/// Delete every citation of `sources` (they left memory; what an answer
/// showed of them goes too). Returns the citations deleted.
pub fn drop_citations(c: &Connection, sources: &[String]) -> rusqlite::Result<usize> {
    let mut s = c.prepare_cached("DELETE FROM agents_citations WHERE source_id = ?1")?;
    let mut n = 0;
    for src in sources {
        n += s.execute([src])?;
    }
    Ok(n)
}

/// The citations of message `message_id`, in order.
pub fn citations(c: &Connection, message_id: &str) -> rusqlite::Result<Vec<Citation>> {
    let mut s = c.prepare_cached(
        "SELECT source_type, source_id, time_ms, snippet, chunk_id, layer
         FROM agents_citations WHERE message_id = ?1 ORDER BY pos",
    )?;
    let rows = s.query_map([message_id], |r| {
        Ok(Citation {
            source_type: r.get(0)?,
            source_id: r.get(1)?,
            time_ms: r.get(2)?,
            snippet: r.get(3)?,
            chunk_id: r.get(4)?,
            layer: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// The citations of the last `answers` assistant messages of a thread,
/// newest answer first (refusals and failed answers have none).
pub fn recent_citations(
    c: &Connection,
    thread_id: &str,
    answers: u32,
) -> rusqlite::Result<Vec<Vec<Citation>>> {
    let ids: Vec<String> = c
        .prepare_cached(
            "SELECT id FROM agents_messages WHERE thread_id = ?1 AND role = 'assistant'
             AND finish_reason NOT IN ('error', 'refusal')
             ORDER BY created_ms DESC, rowid DESC LIMIT ?2",
        )?
        .query_map(params![thread_id, answers], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ids.iter().map(|id| citations(c, id)).collect()
}

/// The ids of a thread's last `n` messages (what an answer's
/// conversation history holds).
pub fn last_ids(c: &Connection, thread_id: &str, n: usize) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached(
        "SELECT id FROM agents_messages WHERE thread_id = ?1
         ORDER BY created_ms DESC, rowid DESC LIMIT ?2",
    )?
    .query_map(params![thread_id, n as i64], |r| r.get(0))?
    .collect()
}

/// The messages of a thread at positions `seq - radius ..= seq + radius`
/// (by time, then by when stored; refusals and failed answers count
/// but are left out), as (speaker, content): a hit with its neighbours.
pub fn around(
    c: &Connection,
    thread_id: &str,
    seq: i64,
    radius: i64,
) -> rusqlite::Result<Vec<(String, String)>> {
    let from = (seq - radius).max(0);
    let mut s = c.prepare_cached(
        "SELECT CASE speaker WHEN '' THEN role ELSE speaker END, content, finish_reason
         FROM agents_messages WHERE thread_id = ?1
         ORDER BY created_ms, rowid LIMIT ?2 OFFSET ?3",
    )?;
    let rows = s.query_map(params![thread_id, seq + radius - from + 1, from], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (who, text, finish) = row?;
        if finish != "error" && finish != REFUSAL && !text.trim().is_empty() {
            out.push((who, text));
        }
    }
    Ok(out)
}

/// The `finish_reason` of a message imported from a file (`memory
/// import --type conversation`).
pub const IMPORTED: &str = "imported";

/// One line of an imported conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedMessage {
    /// The line's `_id`: the message's id.
    pub id: String,
    /// Its thread's name in the file.
    pub thread: String,
    /// Who spoke.
    pub speaker: String,
    /// What they said.
    pub text: String,
    /// When (Unix ms).
    pub time_ms: i64,
}

/// The thread an imported conversation's `thread` is stored as.
pub fn imported_thread_id(collection: &str, thread: &str) -> String {
    format!("imported:{collection}:{thread}")
}

/// The message id an imported line's `_id` is stored as: its own
/// namespace per collection, so an import never replaces one of the
/// person's messages, nor another collection's.
pub fn imported_message_id(collection: &str, id: &str) -> String {
    format!("imported:{collection}:{id}")
}

/// Store an imported message as a past conversation message (its thread
/// `imported:<collection>:<thread>` made on first use). Returns false
/// when it was stored already with the same content: import is
/// idempotent by id.
pub fn import_message(
    c: &Connection,
    collection: &str,
    m: &ImportedMessage,
) -> rusqlite::Result<bool> {
    let thread_id = imported_thread_id(collection, &m.thread);
    let id = imported_message_id(collection, &m.id);
    let same = c
        .prepare_cached(
            "SELECT 1 FROM agents_messages WHERE id = ?1 AND thread_id = ?2 AND content = ?3
             AND speaker = ?4 AND created_ms = ?5",
        )?
        .exists(params![id, thread_id, m.text, m.speaker, m.time_ms])?;
    if same {
        return Ok(false);
    }
    c.execute(
        "INSERT INTO agents_threads (id, title, created_ms, updated_ms, collection)
         VALUES (?1, ?2, ?3, ?3, ?4) ON CONFLICT(id) DO NOTHING",
        params![thread_id, m.thread, m.time_ms, collection],
    )?;
    c.execute(
        "INSERT OR REPLACE INTO agents_messages
            (id, thread_id, role, content, model, ask_id, created_ms, finish_reason, speaker)
         VALUES (?1, ?2, 'user', ?3, '', '', ?4, ?6, ?5)",
        params![id, thread_id, m.text, m.time_ms, m.speaker, IMPORTED],
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_and_messages() {
        let c = crate::db::migrated(&[OWNER]);
        let t = create_thread(&c, "hello there").unwrap();
        let m = MessageRow {
            id: new_id("m"),
            thread_id: t.clone(),
            role: "user".into(),
            content: "hello there".into(),
            model: String::new(),
            ask_id: "a1".into(),
            created_ms: 1,
            finish_reason: String::new(),
        };
        put_message(&c, &m).unwrap();
        assert_eq!(messages(&c, &t).unwrap(), vec![m.clone()]);
        assert_eq!(threads(&c, 10).unwrap()[0].message_count, 1);
        assert_eq!(get_message(&c, &m.id).unwrap(), Some(m));
    }
}
