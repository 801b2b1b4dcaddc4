//! Memory's layers in chat, end to end through coworkd's socket and
//! `coworkctl`: working memory (`memory profile`), observation anchors
//! (`memory pin`), the Context Card (`context`), grounded questions and
//! their refusals (`chat --grounded`), and citations — with the real
//! all-MiniLM-L6-v2 embedder and the real Gemma 3 270M engine
//! (llama.cpp's llama-server) where a model is needed.

use cowork_e2e::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const DAY_S: i64 = 86_400;

fn json_of(o: &std::process::Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Every `--json` line of a streamed command.
fn chunks(o: &std::process::Output) -> Vec<Value> {
    ok(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn script(lines: &[Value]) -> String {
    lines.iter().map(|v| format!("{v}\n")).collect()
}

/// A sim capture replaying `script` (its clock `offset_s` from now),
/// memory with `memory`, and `agents` appended.
fn config(home: &Path, script: &str, offset_s: i64, memory: &str, agents: &str) -> String {
    std::fs::write(home.join("script.jsonl"), script).expect("write script");
    format!(
        "{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\nsim_speed = 0\n\
         sim_clock_offset_s = {offset_s}\n\
         [agents]\nprobe_ports = false\n{agents}\n[agents.llama]\nserver = \"{}\"\nthreads = 2\n\
         [memory]\npoll_ms = 100\n{memory}\n",
        llama_server_path()
    )
}

fn card(s: &Suite, args: &[&str]) -> Value {
    let mut a = vec!["--json", "context"];
    a.extend_from_slice(args);
    json_of(&s.ctl(&a))
}

fn source_ids(card: &Value) -> Vec<String> {
    card["source_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Wait until a keyword search finds `query`; returns the first hit.
fn wait_hit(s: &Suite, query: &str) -> Value {
    wait_for(T, &format!("a hit for {query:?}"), || {
        let v = json_of(&s.ctl(&["--json", "memory", "search", query, "--mode", "keyword"]));
        v["hits"].as_array().and_then(|h| h.first().cloned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grounded_questions_are_refused_without_a_model_and_profile_and_pins_shape_the_context() {
    let home = Suite::temp_home();
    // No embedder and no engine: everything here runs without a model.
    let cfg = config(
        home.path(),
        "",
        0,
        "embedder = \"none\"\ncontext_tokens = 300\n",
        "",
    );
    let s = Suite::start_in(home, &cfg);
    s.agents_serving().await;

    // Checkpoint 1: memory holds nothing → refused, no model called.
    let c = card(
        &s,
        &["--query", "what was the invoice number?", "--grounded"],
    );
    assert_eq!(c["refusal"], true, "{c}");
    assert_eq!(c["refusal_reason"], "memory holds nothing", "{c}");
    let out = s.ctl(&[
        "--json",
        "chat",
        "--grounded",
        "what was the invoice number?",
    ]);
    let ch = chunks(&out);
    assert_eq!(ch[0]["route"]["model"], "", "no model: {ch:?}");
    assert_eq!(ch[0]["route"]["engine"], "", "{ch:?}");
    let refusal: String = ch.iter().filter_map(|c| c["delta"].as_str()).collect();
    assert!(
        refusal.contains("can't answer that from memory"),
        "{refusal}"
    );
    assert_eq!(ch.last().unwrap()["finish"], "refusal", "{ch:?}");
    // Stored and shown, flagged as a refusal.
    let thread = ch[0]["route"]["thread_id"].as_str().unwrap().to_owned();
    let shown = s.ctl(&["--json", "chat", "show", &thread]);
    let msgs = chunks(&shown);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[1]["finish_reason"], "refusal");
    assert_eq!(msgs[1]["content"], refusal.as_str());
    // General chat skips the checkpoints: with no engine it fails for
    // that reason, not with a refusal.
    let general = s.ctl(&["--json", "chat", "what was the invoice number?"]);
    let general = String::from_utf8_lossy(&general.stdout).into_owned();
    assert!(general.contains("\"error\""), "{general}");
    assert!(!general.contains("refusal"), "{general}");

    // Working memory: set, supersede, unset, clear; bad keys refused.
    let p = json_of(&s.ctl(&["--json", "memory", "profile", "set", "name", "Ann", "Lee"]));
    assert_eq!(p["entries"][0]["key"], "name");
    assert_eq!(p["entries"][0]["value"], "Ann Lee");
    assert_eq!(p["entries"][0]["origin"], "person");
    json_of(&s.ctl(&[
        "--json",
        "memory",
        "profile",
        "set",
        "Communication Style",
        "terse",
    ]));
    let p = json_of(&s.ctl(&[
        "--json",
        "memory",
        "profile",
        "set",
        "role",
        "staff engineer",
    ]));
    let keys: Vec<&str> = p["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["name", "role", "communication_style"],
        "known keys in order"
    );
    let bad = s.ctl(&["memory", "profile", "set", "../etc/passwd", "x"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("profile key"));
    let p = json_of(&s.ctl(&["--json", "memory", "profile", "unset", "role"]));
    assert_eq!(p["entries"].as_array().unwrap().len(), 2);
    let shown = s.ctl(&["memory", "profile"]);
    assert!(ok(&shown).contains("Ann Lee"), "{}", ok(&shown));
    // Always in context: the card shows it, and so does the text a
    // question gets.
    let c = card(&s, &[]);
    assert_eq!(c["working_memory"][0]["value"], "Ann Lee", "{c}");
    assert!(c.get("refusal").is_none(), "no query, no assembly: {c}");

    // The questions are indexed as conversation; the refusal never is.
    let q = wait_hit(&s, "invoice");
    assert_eq!(q["source_type"], "conversation", "{q}");
    let st = json_of(&s.ctl(&[
        "--json",
        "memory",
        "search",
        "answer from memory",
        "--mode",
        "keyword",
    ]));
    assert_eq!(st["hits"], json!([]), "a refusal was indexed: {st}");

    // Something to find: an imported note, keyword-searchable at once.
    let tmp = tempfile::tempdir().unwrap();
    let notes = tmp.path().join("notes.jsonl");
    std::fs::write(
        &notes,
        script(&[
            json!({"_id": "n1", "title": "Billing", "text": "The Acme invoice number is INV-20931, due Friday."}),
            json!({"_id": "n2", "title": "Garden", "text": "Tomatoes need watering twice a week in summer."}),
        ]),
    )
    .unwrap();
    s.memory_import(&notes, "document", "");
    wait_hit(&s, "tomatoes");

    // Checkpoint 2: memory holds things, none relevant (and the question
    // names what memory has never seen) → refused.
    let c = card(
        &s,
        &["--query", "When did Zorblax visit Caroline?", "--grounded"],
    );
    assert_eq!(c["refusal"], true, "{c}");
    assert_eq!(c["unknown_names"], json!(["Zorblax", "Caroline"]), "{c}");
    assert!(source_ids(&c).is_empty(), "{c}");
    // Asked in chat, twice (a new thread, then the same one): refused
    // each time — a refused question never becomes its own source — and
    // the question itself leaves memory.
    let ask = |thread: Option<&str>| {
        let mut a = vec!["--json", "chat", "--grounded"];
        if let Some(t) = thread {
            a.extend(["--thread", t]);
        }
        a.push("When did Zorblax visit Caroline?");
        chunks(&s.ctl(&a))
    };
    let first = ask(None);
    assert_eq!(first.last().unwrap()["finish"], "refusal", "{first:?}");
    let t = first[0]["route"]["thread_id"].as_str().unwrap().to_owned();
    let again = ask(None);
    assert_eq!(again.last().unwrap()["finish"], "refusal", "{again:?}");
    let same = ask(Some(&t));
    assert_eq!(same.last().unwrap()["finish"], "refusal", "{same:?}");
    // A message stored after them (general chat: no engine answers, but
    // the question is kept) shows the collector has read past them.
    let _ = s.ctl(&["chat", "zebrafish marker after the refusals"]);
    wait_hit(&s, "zebrafish");
    let z = json_of(&s.ctl(&["--json", "memory", "search", "Zorblax", "--mode", "keyword"]));
    assert_eq!(
        z["hits"],
        json!([]),
        "a refused question stayed in memory: {z}"
    );
    // A relevant question is grounded, with its source cited and the
    // tokens per layer within the budget.
    let c = card(
        &s,
        &["--query", "what is the acme invoice number?", "--grounded"],
    );
    assert_eq!(c["refusal"], false, "{c}");
    assert_eq!(source_ids(&c)[0], "n1", "best first: {c}");
    assert!(c["text"].as_str().unwrap().contains("INV-20931"), "{c}");
    assert!(c["text"].as_str().unwrap().contains("name: Ann Lee"), "{c}");
    let layers: Vec<&str> = c["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(layers, ["working_memory", "search"], "{c}");
    assert!(c["context_tokens"].as_u64().unwrap() <= 300, "{c}");
    assert_eq!(c["budget_tokens"], 300);

    // A pin is always first, and grounds even an unrelated question.
    let p = json_of(&s.ctl(&["--json", "memory", "pin", "n2"]));
    assert_eq!(p["pins"][0]["source_id"], "n2", "{p}");
    assert_eq!(p["pins"][0]["source_type"], "document", "{p}");
    let unknown = s.ctl(&["memory", "pin", "no-such-source"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no source"));
    let c = card(
        &s,
        &["--query", "what is the acme invoice number?", "--grounded"],
    );
    assert_eq!(source_ids(&c)[..2], ["n2", "n1"], "pinned first: {c}");
    assert_eq!(c["citations"][0]["layer"], "pinned", "{c}");
    let c = card(&s, &["--query", "how tall is mount everest?", "--grounded"]);
    assert_eq!(c["refusal"], false, "a pin counts: {c}");
    let p = json_of(&s.ctl(&["--json", "memory", "unpin", "n2"]));
    assert!(p["pins"].as_array().unwrap().is_empty());
    let c = card(&s, &["--query", "how tall is mount everest?", "--grounded"]);
    assert_eq!(c["refusal"], true, "{c}");
    json_of(&s.ctl(&["--json", "memory", "profile", "clear"]));
    assert!(card(&s, &[])["working_memory"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// The weekday of `days_ago` days before now, as the question names it.
fn weekday_ago(days_ago: i64) -> &'static str {
    const NAMES: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    NAMES[((now / DAY_S - days_ago).rem_euclid(7)) as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_captured_two_days_ago_is_cited_in_a_real_models_answer() {
    // Gemma answers (a 2048-token window for the memory block); MiniLM
    // embeds, as a session Cowork runs.
    let engine = start_llama(&["--ctx-size", "2048"]);
    let home = Suite::temp_home();
    // Two days ago, in UTC midday: the invoice, then other windows.
    let start = -2 * DAY_S
        - (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            % DAY_S)
        + 12 * 3600;
    let sc = script(&[
        json!({"t_ms": 0, "kind": "window", "app": "Firefox", "app_id": "firefox",
               "title": "Acme Corp billing — the invoice number is INV-20931 (amount due $4,120)",
               "url": "https://billing.acme.example/invoices/INV-20931"}),
        json!({"t_ms": 240_000, "kind": "window", "app": "Slack", "app_id": "slack",
               "title": "#design — lunch plans"}),
        json!({"t_ms": 480_000, "kind": "window", "app": "xterm", "app_id": "xterm",
               "title": "cargo build"}),
    ]);
    let agents = format!(
        "max_output_tokens = 60\n[[agents.engines]]\nid = \"llamacpp\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n\
         api = \"openai\"\n",
        engine.port
    );
    let cfg = config(home.path(), &sc, start, "context_tokens = 600\n", &agents);
    let s = Suite::start_in(home, &cfg);
    s.agents_serving().await;
    s.load_minilm();
    let hit = wait_hit(&s, "INV-20931");
    let source = hit["source_id"].as_str().unwrap().to_owned();
    wait_for(Duration::from_secs(120), "the activity embedded", || {
        let st = json_of(&s.ctl(&["--json", "memory", "status"]));
        let i = st["indexes"]
            .as_array()?
            .iter()
            .find(|i| i["source_type"] == "activity")?
            .clone();
        (i["vectors"].as_u64()? >= 2).then_some(())
    });

    let question = format!(
        "what was the invoice number I looked at on {}?",
        weekday_ago(2)
    );
    // The card shows what the model will get, without calling it.
    let c = card(&s, &["--query", &question, "--grounded"]);
    assert_eq!(c["refusal"], false, "{c}");
    assert_eq!(
        source_ids(&c),
        [source.as_str()],
        "only that day's invoice: {c}"
    );
    let out = s.ctl(&["--json", "chat", "--local", "--grounded", &question]);
    let ch = chunks(&out);
    assert_eq!(ch[0]["route"]["model"], "llamacpp/gemma3-270m", "{ch:?}");
    let cites = ch
        .iter()
        .find_map(|c| c["citations"].as_array().cloned())
        .unwrap_or_else(|| panic!("no citations chunk: {ch:?}"));
    assert_eq!(cites[0]["source_id"], source.as_str(), "{cites:?}");
    assert_eq!(cites[0]["source_type"], "activity");
    assert!(cites[0]["snippet"].as_str().unwrap().contains("INV-20931"));
    let answer: String = ch.iter().filter_map(|c| c["delta"].as_str()).collect();
    eprintln!("gemma3-270m answered: {answer:?}");
    assert!(!answer.trim().is_empty(), "{ch:?}");
    assert!(
        ch.last().unwrap()["finish"].is_string(),
        "the answer finished: {ch:?}"
    );
    // Stored with the answer; the table output lists the sources after it.
    let thread = ch[0]["route"]["thread_id"].as_str().unwrap().to_owned();
    let msgs = chunks(&s.ctl(&["--json", "chat", "show", &thread]));
    assert_eq!(
        msgs[1]["citations"][0]["source_id"],
        source.as_str(),
        "{msgs:?}"
    );
    let table = ok(&s.ctl(&["chat", "show", &thread]));
    assert!(
        table.contains("Sources:") && table.contains(&source),
        "{table}"
    );

    // A follow-up without the original words: backfill re-injects the
    // chunk the last answer cited.
    let c = card(
        &s,
        &[
            "--query",
            "tell me more about that",
            "--thread",
            &thread,
            "--grounded",
        ],
    );
    assert_eq!(c["refusal"], false, "{c}");
    assert!(source_ids(&c).contains(&source), "{c}");
    assert!(
        c["citations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["layer"] == "backfill"),
        "{c}"
    );
}
