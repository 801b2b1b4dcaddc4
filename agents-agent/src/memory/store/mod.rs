//! Memory's tables in cowork.db: the only SQL for them. `memory_items`
//! (one row per chunk of a source) with its FTS5 index `memory_fts` kept
//! by triggers in the same transaction; one sqlite-vec `vec0` table per
//! type and generation (`embed_<type>`, `embed_<type>_<n>`), listed in
//! `memory_indexes`, each beside its rescoring table `<table>_f32` (the
//! float vectors by rowid, read when a large index is searched by its
//! binary codes first: see [`super::quantize`]); embedding jobs
//! (`memory_jobs`, `memory_job_items`); the sources' high-water marks
//! (`memory_watermarks`); and forgotten sources and time ranges
//! (`memory_forgotten`, `memory_forgotten_ranges`), never indexed again.
//!
//! By concern: [`items`] (items and their keyword index, high-water
//! marks, forgetting, keyword search, counts), [`vectors`] (the vector
//! indexes per type and generation, their writes and the KNN) and
//! [`queue`] (embedding jobs and their checkpoints). Everything is
//! re-exported here: callers say `store::put_source`.

mod items;
mod observations;
mod profile;
mod queue;
mod vectors;

pub use items::*;
pub use observations::*;
pub use profile::*;
pub use queue::*;
pub use vectors::*;

use super::item::{Kind, Stream};
use cowork_db::{Owner, Step};
use rusqlite::Connection;

/// Memory as an owner of tables: its schema, oldest first (append only).
pub const OWNER: Owner = Owner {
    name: "memory",
    steps: &[
        Step::Sql(
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
        ),
        // 2: working memory (the profile: every value kept, the current ones
        // not superseded) and observation anchors (pins).
        Step::Sql(
            "CREATE TABLE memory_profile (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            origin TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            superseded_ms INTEGER
         );
         CREATE UNIQUE INDEX memory_profile_current ON memory_profile(key)
            WHERE superseded_ms IS NULL;
         CREATE TABLE memory_pins (
            source_id TEXT PRIMARY KEY,
            pinned_ms INTEGER NOT NULL
         );",
        ),
        // 3: observational memory (observations and reflections, the
        // superseded ones kept) and the Observer's last outcome.
        Step::Sql(
            "CREATE TABLE memory_observations (
            id INTEGER PRIMARY KEY,
            norm TEXT NOT NULL UNIQUE,
            text TEXT NOT NULL,
            observed_ms INTEGER NOT NULL,
            refers_ms INTEGER NOT NULL,
            sources TEXT NOT NULL,
            level INTEGER NOT NULL DEFAULT 0,
            superseded_ms INTEGER
         );
         CREATE TABLE memory_observation_sources (
            source_id TEXT NOT NULL,
            observation_id INTEGER NOT NULL,
            PRIMARY KEY (source_id, observation_id)
         ) WITHOUT ROWID;
         CREATE INDEX memory_observation_sources_observation
            ON memory_observation_sources(observation_id);
         CREATE TABLE memory_observer (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last_run_ms INTEGER NOT NULL,
            last_error TEXT NOT NULL
         );",
        ),
    ],
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

/// Little-endian f32 bytes, as sqlite-vec reads a vector.
pub fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::item::Source;
    use crate::memory::jobs::{self, Progress, Status};

    /// The next job of the newest activity index.
    fn newest_job(c: &Connection) -> Job {
        let newest = indexes(c, Some(Kind::Activity)).unwrap().pop().unwrap();
        next_job(c, &newest).unwrap().unwrap()
    }

    fn db() -> Connection {
        cowork_db::register_sqlite_vec();
        crate::db::migrated(&[crate::chat::store::OWNER, OWNER])
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
        let j = newest_job(&c);
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
        let mut p = newest_job(&c);
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
