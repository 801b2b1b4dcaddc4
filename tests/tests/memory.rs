//! Memory end to end (`coworkctl memory`, `cowork.memory.v1`): capture's
//! rows (replayed by the sim source) and imported files become keyword-
//! searchable, then embedded by a REAL embedder — all-MiniLM-L6-v2 in a
//! llama-server session Cowork runs (scripts/peers.sh builds llama-server
//! and converts the model) — and searchable by meaning; filters; forget
//! and retention reach the keyword index and every vector index; consent
//! per stream; a kill -9 mid-embedding resumes with no duplicate; a hung
//! embedder fails its job; a cloud embedder (tests/python/cloud_standin.py,
//! a named stand-in: no cloud provider can be reached here) embeds only
//! with consent and never sees typed or copied text.

use cowork_e2e::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

fn json_of(o: &std::process::Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn line(v: Value) -> String {
    format!("{v}\n")
}

/// Our llama-server (no engine probing), `[memory]` with `memory`, and a
/// sim capture script.
fn config(home: &Path, script: &str, memory: &str, capture: &str) -> String {
    std::fs::write(home.join("script.jsonl"), script).expect("write script");
    format!(
        "{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\n{capture}\n\
         [agents]\nprobe_ports = false\n[agents.llama]\nserver = \"{}\"\nthreads = 2\n\
         [memory]\npoll_ms = 100\n{memory}\n",
        llama_server_path()
    )
}

/// A keyword-only home: the harness's model-list engine (no embedding
/// model), so nothing is embedded.
fn keyword_config(home: &Path, script: &str, memory: &str, capture: &str) -> String {
    std::fs::write(home.join("script.jsonl"), script).expect("write script");
    format!(
        "{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\n{capture}\n\
         [memory]\npoll_ms = 100\n{memory}\n"
    )
}

/// An empty capture script, one declared engine at `base_url` (`api`:
/// "openai" or "ollama"), our llama-server beside it, and `[memory]` with
/// `memory`.
fn engine_config(home: &Path, id: &str, base_url: &str, api: &str, memory: &str) -> String {
    std::fs::write(home.join("script.jsonl"), "").expect("write script");
    format!(
        "{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\n\
         [agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"{id}\"\n\
         base_url = \"{base_url}\"\napi = \"{api}\"\n\
         [agents.llama]\nserver = \"{}\"\nthreads = 2\n\
         [memory]\npoll_ms = 100\n{memory}\n",
        llama_server_path()
    )
}

/// A suite with [`engine_config`] (the engine at `base_url`), agents
/// serving.
async fn engine_suite(id: &str, base_url: &str, api: &str, memory: &str) -> Suite {
    let home = Suite::temp_home();
    let cfg = engine_config(home.path(), id, base_url, api, memory);
    let s = Suite::start_in(home, &cfg);
    s.agents_serving().await;
    s
}

/// `memory search --json` with `args` after the query.
fn search(s: &Suite, query: &str, args: &[&str]) -> Value {
    let mut a = vec!["--json", "memory", "search", query];
    a.extend_from_slice(args);
    json_of(&s.ctl(&a))
}

fn hits(v: &Value) -> Vec<Value> {
    v["hits"].as_array().cloned().unwrap_or_default()
}

fn ids(v: &Value) -> Vec<String> {
    hits(v)
        .iter()
        .filter_map(|h| h["source_id"].as_str().map(str::to_owned))
        .collect()
}

/// Wait until a search for `query` (with `args`) finds something.
fn wait_hit(s: &Suite, query: &str, args: &[&str]) -> Value {
    wait_for(T, &format!("a hit for {query:?}"), || {
        let v = search(s, query, args);
        (!hits(&v).is_empty()).then_some(v)
    })
}

fn status(s: &Suite) -> Value {
    json_of(&s.ctl(&["--json", "memory", "status"]))
}

fn index<'a>(st: &'a Value, kind: &str) -> &'a Value {
    st["indexes"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["source_type"] == kind))
        .unwrap_or(&Value::Null)
}

/// Wait until every item of `kind` has its vector (at least `min` items).
fn wait_embedded(s: &Suite, kind: &str, min: u64) -> Value {
    wait_for(
        Duration::from_secs(180),
        &format!("{kind} embedded"),
        || {
            let st = status(s);
            let i = index(&st, kind);
            let (items, vectors) = (i["items"].as_u64()?, i["vectors"].as_u64()?);
            (items >= min && items == vectors).then_some(st)
        },
    )
}

fn script() -> String {
    [
        json!({"t_ms": 0, "kind": "window", "app": "Firefox", "app_id": "firefox",
               "title": "Tokio tutorial: spawning async tasks on the runtime",
               "url": "https://tokio.rs/tokio/tutorial/spawning"}),
        json!({"t_ms": 200, "kind": "window", "app": "LibreOffice Calc", "app_id": "calc",
               "title": "Quarterly invoices for the Lisbon office"}),
        json!({"t_ms": 300, "kind": "keys", "text": "cargo test --workspace"}),
        json!({"t_ms": 400, "kind": "key", "key": "Enter"}),
        json!({"t_ms": 500, "kind": "clipboard", "op": "copy", "text": "ticket PRJ-4411 blocks the release"}),
        json!({"t_ms": 700, "kind": "window", "app": "xterm", "app_id": "xterm", "title": "build log"}),
    ]
    .into_iter()
    .map(line)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_rows_are_found_by_keyword_then_by_meaning_and_forget_reaches_every_index() {
    let home = Suite::temp_home();
    let cfg = config(home.path(), &script(), "", "");
    let s = Suite::start_in(home, &cfg);
    s.agents_serving().await;

    // Keyword-searchable once committed, before any embedder exists.
    let v = wait_hit(&s, "invoices", &["--mode", "keyword"]);
    let h = &hits(&v)[0];
    assert_eq!(h["source_type"], "activity");
    assert_eq!(h["stream"], "window");
    assert_eq!(h["app"], "LibreOffice Calc");
    assert!(h["snippet"].as_str().unwrap().contains("[invoices]"), "{h}");
    let invoices = h["source_id"].as_str().unwrap().to_owned();
    assert!(invoices.starts_with("activity:"), "{invoices}");
    let typed = wait_hit(&s, "workspace", &["--mode", "keyword"]);
    assert_eq!(hits(&typed)[0]["stream"], "keystrokes");
    assert!(ids(&typed)[0].starts_with("keystrokes:"));
    let copied = wait_hit(&s, "PRJ-4411", &["--mode", "keyword"]);
    assert_eq!(hits(&copied)[0]["stream"], "clipboard");
    // The open activity (xterm) is not indexed until it closes.
    assert!(hits(&search(&s, "build log", &["--mode", "keyword"])).is_empty());
    // No embedder yet: hybrid falls back to keyword and says why.
    let fallback = search(&s, "invoices", &[]);
    assert_eq!(fallback["mode"], "keyword", "{fallback}");
    assert!(
        fallback["note"].as_str().unwrap().contains("no embedder"),
        "{fallback}"
    );
    let refused = s.ctl(&["memory", "search", "invoices", "--mode", "vector"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no embedder"));

    // A real embedder: every activity item gets its vector.
    s.load_minilm();
    let st = wait_embedded(&s, "activity", 4);
    assert_eq!(st["embedder"]["model"], "all-minilm-l6-v2-f16", "{st}");
    assert_eq!(st["embedder"]["dims"], 384, "{st}");
    assert_eq!(index(&st, "activity")["table"], "embed_activity");
    assert_eq!(st["jobs"]["failed"]["jobs"], 0, "{st}");

    // By meaning: no word of the query is in the title.
    let meaning = search(
        &s,
        "learning asynchronous Rust programming",
        &["--mode", "vector", "-k", "2"],
    );
    let top = &hits(&meaning)[0];
    assert!(
        top["snippet"].as_str().unwrap().contains("Tokio"),
        "the Tokio page should come first: {meaning}"
    );
    let tokio = top["source_id"].as_str().unwrap().to_owned();
    assert!(top["vector_score"].as_f64().unwrap() > 0.2, "{top}");
    // Hybrid: both lists, fused; a hit in both carries both ranks.
    let both = search(&s, "Tokio async tasks", &[]);
    assert_eq!(both["mode"], "hybrid");
    let first = &hits(&both)[0];
    assert_eq!(first["source_id"], tokio.as_str());
    assert!(
        first["keyword_rank"].is_u64() && first["vector_rank"].is_u64(),
        "{first}"
    );
    // Filters: app, type, time.
    let firefox = search(
        &s,
        "tasks invoices ticket workspace",
        &["--app", "firefox", "--mode", "keyword"],
    );
    assert!(
        hits(&firefox).iter().all(|h| h["app"] == "Firefox"),
        "{firefox}"
    );
    assert!(!hits(&firefox).is_empty());
    let none = search(&s, "invoices", &["--type", "conversation"]);
    assert!(hits(&none).is_empty(), "{none}");
    let old = search(&s, "invoices", &["--until", "1h"]);
    assert!(hits(&old).is_empty(), "nothing is over an hour old: {old}");
    let recent = search(&s, "invoices", &["--since", "10m"]);
    assert_eq!(ids(&recent)[0], invoices);
    // A time word in the query is a filter, taken out of the text.
    let today = search(&s, "invoices today", &[]);
    assert_eq!(today["text"], "invoices");
    assert!(today["since_ms"].is_i64(), "{today}");
    assert_eq!(ids(&today)[0], invoices);

    // Reindex: the vectors are dropped and embedded again.
    let r = json_of(&s.ctl(&["--json", "memory", "reindex", "--type", "activity"]));
    assert_eq!(r["items"], 4, "{r}");
    wait_embedded(&s, "activity", 4);
    assert_eq!(ids(&search(&s, "Tokio async tasks", &[]))[0], tokio);

    // Forget the Tokio page: gone from the keyword index and every vector
    // index at once, and never indexed again.
    let vectors_before = index(&status(&s), "activity")["vectors"].as_u64().unwrap();
    let f = json_of(&s.ctl(&["--json", "memory", "forget", &tokio]));
    assert_eq!(
        (f["sources"].as_u64(), f["items"].as_u64()),
        (Some(1), Some(1)),
        "{f}"
    );
    assert!(hits(&search(&s, "tokio", &["--mode", "keyword"])).is_empty());
    let after = search(
        &s,
        "learning asynchronous Rust programming",
        &["--mode", "vector"],
    );
    assert!(!ids(&after).contains(&tokio), "{after}");
    let c = read_db(s.home.path());
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM memory_fts WHERE memory_fts MATCH 'tokio'"
        ),
        0
    );
    assert_eq!(
        count(
            &c,
            &format!("SELECT count(*) FROM memory_items WHERE source_id = '{tokio}'")
        ),
        0
    );
    let items = count(
        &c,
        "SELECT count(*) FROM memory_items WHERE kind = 'activity'",
    );
    assert_eq!(count(&c, "SELECT count(*) FROM embed_activity_f32"), items);
    assert_eq!(
        count(&c, "SELECT count(*) FROM embed_activity_rowids"),
        items
    );
    assert_eq!(
        index(&status(&s), "activity")["vectors"].as_u64().unwrap(),
        vectors_before - 1
    );
    // The capture row is still there; a few polls later it is still not
    // indexed.
    std::thread::sleep(Duration::from_millis(600));
    assert!(hits(&search(&s, "tokio", &["--mode", "keyword"])).is_empty());
    // Forgetting by time range, of one app: the Calc window, and what
    // was typed and copied in it.
    let f = json_of(&s.ctl(&[
        "--json",
        "memory",
        "forget",
        "--since",
        "1h",
        "--app",
        "libreoffice calc",
    ]));
    assert_eq!(f["sources"], 3, "{f}");
    for word in ["invoices", "workspace", "PRJ-4411"] {
        assert!(
            hits(&search(&s, word, &["--mode", "keyword"])).is_empty(),
            "{word}"
        );
    }
    // A range with nothing in it is refused, not "forget everything".
    assert!(!s.ctl(&["memory", "forget"]).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_are_idempotent_by_id_and_hits_carry_the_files_ids() {
    let home = Suite::temp_home();
    let cfg = keyword_config(home.path(), "", "", "");
    let s = Suite::start_in(home, &cfg);
    s.agents_serving().await;
    let dir = tempfile::tempdir().unwrap();
    let long: String = (0..300)
        .map(|i| format!("sentence {i} about glaciers"))
        .collect::<Vec<_>>()
        .join(". ")
        + ". The last chunk mentions a narwhal.";
    let docs = [
        json!({"_id": "d1", "title": "Coral reefs", "text": "Bleaching follows marine heatwaves."}),
        json!({"_id": 42, "title": "Glaciers", "text": long}),
        json!({"_id": "d3", "text": "Untitled note about sourdough starters."}),
    ];
    let file = dir.path().join("docs.jsonl");
    std::fs::write(&file, docs.iter().cloned().map(line).collect::<String>()).unwrap();
    let first = s.memory_import(&file, "document", "notes");
    assert_eq!(first["imported"], 3, "{first}");
    assert!(
        first["chunks"].as_u64().unwrap() >= 5,
        "the long text is chunked: {first}"
    );
    // Searchable at once, by the file's ids; a chunked document's hit
    // carries the document's id.
    assert_eq!(ids(&search(&s, "narwhal", &[])), vec!["42"]);
    let g = search(&s, "glaciers", &["-k", "10"]);
    assert_eq!(ids(&g), vec!["42"], "one hit per document: {g}");
    assert_eq!(hits(&g)[0]["source_type"], "document");
    assert_eq!(hits(&g)[0]["collection"], "notes");
    assert_eq!(
        ids(&search(&s, "sourdough", &["--collection", "notes"])),
        vec!["d3"]
    );
    assert!(hits(&search(&s, "sourdough", &["--collection", "other"])).is_empty());
    // Again: nothing changes. A changed line replaces its document.
    let again = s.memory_import(&file, "document", "notes");
    assert_eq!(
        (again["imported"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(3)),
        "{again}"
    );
    std::fs::write(
        &file,
        line(
            json!({"_id": "d1", "title": "Coral reefs", "text": "Reefs recover when waters cool."}),
        ),
    )
    .unwrap();
    let changed = s.memory_import(&file, "document", "notes");
    assert_eq!(changed["imported"], 1);
    assert!(
        hits(&search(&s, "bleaching", &[])).is_empty(),
        "the old text is gone"
    );
    assert_eq!(ids(&search(&s, "recover", &[])), vec!["d1"]);
    let st = status(&s);
    assert_eq!(
        index(&st, "document")["items"].as_u64(),
        Some(first["chunks"].as_u64().unwrap())
    );

    // Conversations: past messages with their speaker and time.
    let convo = [
        json!({"_id": "c:1", "thread": "trip", "speaker": "Ann", "text": "Where should we camp in June?", "time": "2023-05-08T13:56:00Z"}),
        json!({"_id": "c:2", "thread": "trip", "speaker": "Bob", "text": "By the lake, near the old pier.", "time": "2023-05-08T13:57:00Z"}),
        json!({"_id": "c:3", "thread": "work", "speaker": "Ann", "text": "The quarterly report is late.", "time": "2024-01-10T09:00:00Z"}),
    ];
    let cfile = dir.path().join("chat.jsonl");
    std::fs::write(&cfile, convo.iter().cloned().map(line).collect::<String>()).unwrap();
    let c = s.memory_import(&cfile, "conversation", "");
    assert_eq!(c["imported"], 3, "{c}");
    // A reply is indexed after the message it answers: "camp" finds the
    // answer's hit as one hit with its question.
    let camp = search(&s, "where to camp lake", &["--type", "conversation"]);
    assert_eq!(
        ids(&camp),
        vec!["c:2"],
        "neighbouring messages are one hit: {camp}"
    );
    assert!(hits(&camp)[0]["snippet"].as_str().unwrap().contains("Bob"));
    assert_eq!(hits(&camp)[0]["time"], "2023-05-08T13:57:00.000Z");
    // Time filters apply to the messages' own times.
    let late = search(&s, "quarterly report", &["--since", "2023-12-01T00:00:00Z"]);
    assert_eq!(ids(&late), vec!["c:3"]);
    assert!(hits(&search(&s, "quarterly report", &["--until", "2023-12-01"])).is_empty());
    // The imported messages are past conversations, in their threads.
    let threads = ok(&s.ctl(&["chat", "threads"]));
    assert!(threads.contains("trip"), "{threads}");

    // Bad lines are named, the good ones imported, and the exit is 1.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{}not json\n{}{}",
            line(json!({"_id": "ok1", "text": "fine"})),
            line(json!({"title": "no id", "text": "x"})),
            line(json!({"_id": "ok2", "text": "also fine"}))
        ),
    )
    .unwrap();
    let out = s.ctl(&[
        "memory",
        "import",
        &bad.display().to_string(),
        "--type",
        "document",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2: not a JSON object") && err.contains("line 3:"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2 line(s)"));
    let wrong = s.ctl(&[
        "memory",
        "import",
        &bad.display().to_string(),
        "--type",
        "activity",
    ]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("document or conversation"));
    let missing = s.ctl(&[
        "memory",
        "import",
        "/nonexistent/x.jsonl",
        "--type",
        "document",
    ]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot open /nonexistent/x.jsonl"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_turned_off_leaves_memory_and_comes_back_with_consent() {
    let home = Suite::temp_home();
    let script = [
        json!({"t_ms": 0, "kind": "window", "app": "Code", "app_id": "code", "title": "main.rs"}),
        json!({"t_ms": 100, "kind": "keys", "text": "fn parse_invoice_total"}),
        json!({"t_ms": 200, "kind": "key", "key": "Enter"}),
    ]
    .into_iter()
    .map(line)
    .collect::<String>();
    let cfg = keyword_config(home.path(), &script, "", "");
    let s = Suite::start_in(home, &cfg);
    s.agents_serving().await;
    wait_hit(&s, "parse_invoice_total", &[]);
    ok(&s.ctl(&["capture", "disable", "keystrokes"]));
    wait_until(T, "typed text leaves memory", || {
        hits(&search(&s, "parse_invoice_total", &[])).is_empty()
    });
    let c = read_db(s.home.path());
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM memory_items WHERE stream = 'keystrokes'"
        ),
        0
    );
    ok(&s.ctl(&["capture", "enable", "keystrokes"]));
    wait_hit(&s, "parse_invoice_total", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_deleted_by_retention_leave_the_keyword_index_and_every_vector_index() {
    let home = Suite::temp_home();
    let script = [
        json!({"t_ms": 0, "kind": "window", "app": "Firefox", "app_id": "firefox", "title": "Ephemeral flamingo page"}),
        json!({"t_ms": 100, "kind": "window", "app": "xterm", "app_id": "xterm", "title": "shell"}),
    ]
    .into_iter()
    .map(line)
    .collect::<String>();
    // Rows older than 15 s go, checked every second; memory sweeps every
    // second too.
    let cfg = config(
        home.path(),
        &script,
        "sweep_s = 1",
        "retention_days = 0.0001736\nretention_interval_s = 1",
    );
    let s = Suite::start_in(home, &cfg);
    s.agents_serving().await;
    s.load_minilm();
    let v = wait_hit(&s, "flamingo", &["--mode", "keyword"]);
    let id = ids(&v)[0].clone();
    wait_embedded(&s, "activity", 1);
    let c = read_db(s.home.path());
    assert_eq!(count(&c, "SELECT count(*) FROM embed_activity_f32"), 1);
    // Capture's retention deletes the row; memory's next sweep removes
    // its item from FTS5 and its vector from every table, together.
    wait_until(Duration::from_secs(30), "retention reaches memory", || {
        count(&c, "SELECT count(*) FROM memory_items") == 0
    });
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM capture_activities WHERE ended_ms IS NOT NULL"
        ),
        0
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM memory_fts WHERE memory_fts MATCH 'flamingo'"
        ),
        0
    );
    assert_eq!(count(&c, "SELECT count(*) FROM embed_activity_f32"), 0);
    assert_eq!(count(&c, "SELECT count(*) FROM embed_activity_rowids"), 0);
    assert!(!ids(&search(&s, "flamingo page", &[])).contains(&id));
    assert_eq!(index(&status(&s), "activity")["vectors"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_embedding_resumes_at_its_checkpoint_with_nothing_lost_or_doubled() {
    let home = Suite::temp_home();
    // Small requests, so the kill lands between many checkpoints.
    let cfg = config(home.path(), "", "batch_items = 4", "");
    let mut s = Suite::start_in(home, &cfg);
    s.agents_serving().await;
    s.load_minilm();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docs.jsonl");
    let n = 600;
    std::fs::write(
        &file,
        (0..n)
            .map(|i| line(json!({"_id": format!("doc{i}"), "text": format!("note {i}: the heron number {i} flew over lake {} at dawn", i % 17)})))
            .collect::<String>(),
    )
    .unwrap();
    s.memory_import(&file, "document", "");
    // Kill agents-agent once some, not all, batches are committed.
    let embedded = |st: &Value| -> u64 {
        ["pending", "processing", "done", "paused"]
            .iter()
            .filter_map(|k| st["jobs"][k]["chunks_embedded"].as_u64())
            .sum()
    };
    let at = wait_for(T, "embedding under way", || {
        let e = embedded(&status(&s));
        (e >= 8).then_some(e)
    });
    assert!(
        at < n,
        "all {n} embedded before the kill: make the test slower"
    );
    let pid = s.worker("agents").await.pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let c = read_db(s.home.path());
    let jobs_before = count(&c, "SELECT count(*) FROM memory_jobs");
    s.wait_worker("agents", "restarted", T, |w| {
        w.pid != pid && matches!(state(w), "running" | "degraded")
    })
    .await;
    // The session died with its agents-agent: load it again.
    s.load_minilm();
    let st = wait_embedded(&s, "document", n);
    assert_eq!(index(&st, "document")["vectors"], n, "{st}");
    assert_eq!(st["jobs"]["failed"]["jobs"], 0, "{st}");
    assert_eq!(st["jobs"]["done"]["chunks_embedded"], n, "{st}");
    // No duplicate, nothing lost: one vector per item in both tables, and
    // the same jobs finished (resumed, not enqueued again).
    assert_eq!(
        count(&c, "SELECT count(*) FROM embed_document_f32"),
        n as i64
    );
    assert_eq!(
        count(&c, "SELECT count(DISTINCT id) FROM embed_document_f32"),
        n as i64
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM embed_document_rowids"),
        n as i64
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM memory_items m WHERE NOT EXISTS (SELECT 1 FROM embed_document_f32 v WHERE v.id = m.id)"),
        0
    );
    assert_eq!(count(&c, "SELECT count(*) FROM memory_jobs"), jobs_before);
    let v = search(
        &s,
        "heron over the lake at dawn",
        &["--mode", "vector", "-k", "3"],
    );
    assert_eq!(hits(&v).len(), 3, "{v}");
    let _ = s.stop_with(nix::sys::signal::Signal::SIGTERM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_embedder_fails_its_job_and_searches_go_on_by_keyword() {
    let hung = hostile("embed-hang", &[]);
    let url = format!("http://127.0.0.1:{}/v1", hung.port);
    let s = engine_suite("hung", &url, "openai", "hang_timeout_s = 2").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.jsonl");
    std::fs::write(
        &file,
        line(json!({"_id": "p1", "text": "a pelican on the pier"})),
    )
    .unwrap();
    let t = Instant::now();
    s.memory_import(&file, "document", "");
    let st = wait_for(T, "the job to fail", || {
        let st = status(&s);
        (st["jobs"]["failed"]["jobs"].as_u64() == Some(1)).then_some(st)
    });
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "failed before the deadline: {took:?}"
    );
    let why = st["last_error"].as_str().unwrap();
    assert!(why.contains("did not answer within 2 s"), "{st}");
    assert_eq!(st["embedder"]["model"], "hostile-embed");
    // Keyword search is untouched; a hybrid search does not wait for the
    // hung embedder more than once.
    let t = Instant::now();
    let v = search(&s, "pelican", &[]);
    assert_eq!(ids(&v), vec!["p1"]);
    assert_eq!(v["mode"], "keyword", "{v}");
    let t2 = Instant::now();
    let again = search(&s, "pelican", &[]);
    assert_eq!(ids(&again), vec!["p1"]);
    assert!(
        t2.elapsed() < Duration::from_secs(2),
        "the second search waited for the hung embedder again ({:?}; first {:?})",
        t2.elapsed(),
        t2 - t
    );
    assert!(
        again["note"].as_str().unwrap().contains("did not answer"),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_embedder_needs_consent_and_never_sees_typed_or_copied_text() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let cloud = cloud_standin(log.path());
    let home = Suite::temp_home();
    let script = [
        json!({"t_ms": 0, "kind": "window", "app": "Figma", "app_id": "figma", "title": "Cloud design review"}),
        json!({"t_ms": 100, "kind": "keys", "text": "hunter2typedsecret"}),
        json!({"t_ms": 150, "kind": "key", "key": "Enter"}),
        json!({"t_ms": 200, "kind": "clipboard", "op": "copy", "text": "copiedsecrettoken"}),
        json!({"t_ms": 300, "kind": "window", "app": "xterm", "app_id": "xterm", "title": "shell"}),
    ]
    .into_iter()
    .map(line)
    .collect::<String>();
    std::fs::write(home.path().join("script.jsonl"), script).unwrap();
    let cfg = |allow: bool| {
        format!(
            "{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\n\
             [agents]\nprobe_ports = false\n\
             [agents.providers.openrouter]\nbase_url = \"http://127.0.0.1:{}/v1\"\n\
             [memory]\npoll_ms = 100\nembedder = \"openrouter\"\n\
             embed_model = \"text-embedding-3-small\"\nallow_cloud_embeddings = {allow}\n",
            cloud.port
        )
    };
    let s = Suite::start_with_env(
        home,
        &cfg(false),
        vec![("OPENROUTER_API_KEY".into(), Some("or-test-key".into()))],
    );
    s.agents_serving().await;
    wait_hit(&s, "copiedsecrettoken", &[]);
    wait_hit(&s, "hunter2typedsecret", &[]);
    wait_hit(&s, "design review", &[]);
    // Without consent: nothing sent, and status says what to set.
    std::thread::sleep(Duration::from_secs(3));
    let st = status(&s);
    assert!(
        st["embedder"]["note"]
            .as_str()
            .unwrap()
            .contains("allow_cloud_embeddings"),
        "{st}"
    );
    let sent = || std::fs::read_to_string(log.path()).unwrap_or_default();
    assert!(!sent().contains("/embeddings"), "{}", sent());
    // With consent: window titles are embedded, typed and copied text never.
    s.write_config(&cfg(true));
    let st = wait_for(T, "the window item embedded", || {
        let st = status(&s);
        (index(&st, "activity")["vectors"].as_u64() == Some(1)).then_some(st)
    });
    assert_eq!(st["embedder"]["cloud"], true, "{st}");
    assert_eq!(index(&st, "activity")["items"], 3, "{st}");
    std::thread::sleep(Duration::from_secs(2));
    let log_text = sent();
    assert!(log_text.contains("Cloud design review"), "{log_text}");
    assert!(
        !log_text.contains("hunter2typedsecret"),
        "typed text left the machine"
    );
    assert!(
        !log_text.contains("copiedsecrettoken"),
        "copied text left the machine"
    );
    assert!(log_text.contains("Bearer or-test-key"));
    let v = search(&s, "design review", &["--mode", "vector"]);
    assert_eq!(hits(&v).len(), 1, "only the window has a vector: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ollama_engine_embeds_through_api_embed_in_batches_bounded_by_characters() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let ollama = ollama_standin(
        &["llama3.2:3b", "nomic-embed-text:latest"],
        0,
        Some(log.path()),
    );
    let url = format!("http://127.0.0.1:{}", ollama.port);
    let s = engine_suite("ollama", &url, "ollama", "batch_chars = 100").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.jsonl");
    std::fs::write(
        &file,
        (0..12)
            .map(|i| line(json!({"_id": format!("o{i}"), "text": format!("otter {i} swims in the river near stone bridge number {i}")})))
            .collect::<String>(),
    )
    .unwrap();
    s.memory_import(&file, "document", "");
    let st = wait_embedded(&s, "document", 12);
    assert_eq!(st["embedder"]["model"], "nomic-embed-text:latest", "{st}");
    assert_eq!(st["embedder"]["dims"], 8);
    // Ollama embeds a batch one input after another: each request stays
    // within batch_chars (an input longer than that goes alone).
    let requests: Vec<Value> = std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r.get("input").is_some())
        .collect();
    assert!(requests.len() >= 6, "{} requests", requests.len());
    for r in &requests {
        assert_eq!(r["model"], "nomic-embed-text:latest");
        assert_eq!(r["truncate"], true);
        let inputs = r["input"].as_array().unwrap();
        let chars: usize = inputs
            .iter()
            .map(|i| i.as_str().unwrap().chars().count())
            .sum();
        assert!(chars <= 100 || inputs.len() == 1, "{r}");
    }
    let v = search(&s, "otter river bridge", &["--mode", "vector", "-k", "3"]);
    assert_eq!(hits(&v).len(), 3, "{v}");

    // Another embedder (auto prefers a session Cowork runs): its vectors
    // go to a new generation, built beside the old one, which it then
    // replaces; the two models' vectors never share a table.
    ok(&s.ctl(&["models", "load", &minilm_model_path(), "--embedding"]));
    let st = wait_for(
        Duration::from_secs(120),
        "the new generation serving",
        || {
            let st = status(&s);
            let i = index(&st, "document");
            (i["table"] == "embed_document_2" && i["vectors"] == 12 && i["building_table"] == "")
                .then_some(st)
        },
    );
    let i = index(&st, "document");
    assert_eq!(
        (i["model"].as_str(), i["dims"].as_u64()),
        (Some("all-minilm-l6-v2-f16"), Some(384)),
        "{st}"
    );
    assert_eq!(i["generation"], 2);
    let c = read_db(s.home.path());
    assert_eq!(
        count(&c, "SELECT count(*) FROM sqlite_master WHERE name IN ('embed_document', 'embed_document_f32')"),
        0,
        "the old model's tables are dropped"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM embed_document_2_f32"), 12);
    let v = search(
        &s,
        "an otter swimming in a river",
        &["--mode", "vector", "-k", "3"],
    );
    assert_eq!(hits(&v).len(), 3, "{v}");
    assert!(v["note"].as_str().unwrap_or("").is_empty(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_the_embedder_refuses_are_tried_shorter_then_passed_over_and_embedding_goes_on() {
    let refusing = hostile("embed-refuse-long", &[]);
    let url = format!("http://127.0.0.1:{}/v1", refusing.port);
    let s = engine_suite("refusing", &url, "openai", "").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.jsonl");
    // Short notes, one of 200 characters (accepted once cut to 50), one
    // of 900 (still over 60 at 225: passed over).
    let mut lines: String = (0..6)
        .map(|i| line(json!({"_id": format!("s{i}"), "text": format!("short note {i}")})))
        .collect();
    lines += &line(json!({"_id": "medium", "text": "pelican ".repeat(25)}));
    lines += &line(json!({"_id": "long", "text": "cormorant ".repeat(90)}));
    std::fs::write(&file, lines).unwrap();
    s.memory_import(&file, "document", "");
    let st = wait_for(T, "the job done", || {
        let st = status(&s);
        (st["jobs"]["done"]["jobs"].as_u64() == Some(1)).then_some(st)
    });
    assert_eq!(index(&st, "document")["items"], 8, "{st}");
    assert_eq!(
        index(&st, "document")["vectors"],
        7,
        "all but the long one: {st}"
    );
    assert_eq!(st["jobs"]["failed"]["jobs"], 0, "{st}");
    let why = st["last_error"].as_str().unwrap();
    assert!(
        why.contains("1 input(s) refused") && why.contains("HTTP 400"),
        "{st}"
    );
    // Keyword search still finds it; later imports are embedded.
    assert_eq!(
        ids(&search(&s, "cormorant", &["--mode", "keyword"])),
        vec!["long"]
    );
    std::fs::write(&file, line(json!({"_id": "after", "text": "a later note"}))).unwrap();
    s.memory_import(&file, "document", "");
    wait_for(T, "the later note embedded", || {
        (index(&status(&s), "document")["vectors"].as_u64() == Some(8)).then_some(())
    });
}
