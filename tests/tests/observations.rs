//! Observational memory end to end: the Observer compresses imported
//! past conversations into dated observations with the REAL local model
//! (Gemma 3 270M on llama.cpp's llama-server, found as a declared
//! engine), stores each once, indexes it for search and embeds it into
//! `embed_observation` (all-MiniLM-L6-v2); a kill -9 of agents-agent
//! mid-observation loses no observation and stores none twice.

use cowork_e2e::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn json_of(o: &std::process::Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A Gemma engine, and an Observer that starts at `observe_tokens` and
/// gives the model `window` tokens of history at a time.
fn config(home: &Path, port: u16, observe_tokens: u64, window: u64) -> String {
    std::fs::write(home.join("script.jsonl"), "").expect("write script");
    format!(
        "{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\n\
         [agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"llamacpp\"\n\
         base_url = \"http://127.0.0.1:{port}/v1\"\napi = \"openai\"\n\
         [agents.llama]\nserver = \"{}\"\nthreads = 2\n\
         [memory]\npoll_ms = 100\nobserve_tokens = {observe_tokens}\nreflect_tokens = 1000000\n\
         observe_window_tokens = {window}\nobserve_max_tokens = 96\n",
        llama_server_path()
    )
}

/// `turns` lines of a past conversation between Ann and Bob over two
/// days, each with something to observe.
fn conversation(turns: usize) -> String {
    const SAID: [&str; 8] = [
        "the Lisbon office moves to the new building on Rua Augusta in March",
        "invoice INV-20931 from Acme is still unpaid and due on Friday",
        "Carla takes over the billing dashboard from next sprint",
        "the release of version 4.2 slips a week because of the login bug",
        "we booked the offsite at the lake house for the second week of June",
        "the new hire, Priya, starts on Monday in the platform team",
        "the budget review with finance is moved to Thursday afternoon",
        "the customer in Porto asked for a German translation of the manual",
    ];
    (0..turns)
        .map(|i| {
            let day = if i < turns / 2 { "03" } else { "04" };
            json!({
                "_id": format!("t{i}"),
                "thread": format!("week-{day}"),
                "speaker": if i % 2 == 0 { "Ann" } else { "Bob" },
                "text": format!("Turn {i}: {}.", SAID[i % SAID.len()]),
                "time": format!("2026-12-{day}T{:02}:{:02}:00Z", 9 + i / 30, (i * 2) % 60),
            })
            .to_string()
                + "\n"
        })
        .collect()
}

fn status(s: &Suite) -> Value {
    json_of(&s.ctl(&["--json", "memory", "status"]))
}

/// (id, normalized text) of every observation stored.
fn observations(home: &Path) -> Vec<(i64, String)> {
    let c = read_db(home);
    let mut s = c
        .prepare("SELECT id, norm FROM memory_observations ORDER BY id")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn import(s: &Suite, turns: usize) {
    let file = s.home.path().join("past.jsonl");
    std::fs::write(&file, conversation(turns)).unwrap();
    let done = s.memory_import(&file, "conversation", "past");
    assert_eq!(
        done["imported"].as_u64().unwrap() + done["unchanged"].as_u64().unwrap(),
        turns as u64,
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_compresses_history_into_dated_sourced_searchable_observations() {
    let engine = start_llama(&["--ctx-size", "2048"]);
    let home = Suite::temp_home();
    let cfg = config(home.path(), engine.port, 300, 500);
    let s = Suite::start_in(home, &cfg);
    s.agents_serving().await;
    s.load_minilm();
    // Under the threshold: nothing is observed.
    import(&s, 4);
    tokio::time::sleep(Duration::from_secs(7)).await;
    let st = status(&s);
    assert_eq!(st["observer"]["observations"], 0, "{st}");
    assert!(st["observer"]["last_run_unix_ms"].is_null(), "{st}");
    // Past it: observed, a window at a time, until all is observed.
    import(&s, 24);
    let st = wait_for(Duration::from_secs(240), "all history observed", || {
        let st = status(&s);
        (st["observer"]["unobserved_tokens"].as_u64()? < 300
            && st["observer"]["last_run_unix_ms"].is_i64())
        .then_some(st)
    });
    eprintln!("observer: {}", st["observer"]);
    let obs = observations(s.home.path());
    assert!(!obs.is_empty(), "Gemma observed nothing: {st}");
    let texts: HashSet<&String> = obs.iter().map(|o| &o.1).collect();
    assert_eq!(texts.len(), obs.len(), "an observation stored twice");
    // Each is dated on a day of the history and names its sources.
    let c = read_db(s.home.path());
    let (bad_days, no_sources): (i64, i64) = c
        .query_row(
            "SELECT count(*) FILTER (WHERE refers_ms NOT IN (?1, ?2)),
                    count(*) FILTER (WHERE sources = '')
             FROM memory_observations",
            [1_796_256_000_000i64, 1_796_342_400_000i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((bad_days, no_sources), (0, 0));
    // Searchable as observations, and embedded into embed_observation.
    let st = wait_for(Duration::from_secs(120), "observations embedded", || {
        let st = status(&s);
        let i = st["indexes"]
            .as_array()?
            .iter()
            .find(|i| i["source_type"] == "observation")?
            .clone();
        (i["items"].as_u64()? == obs.len() as u64 && i["vectors"] == i["items"]).then_some(i)
    });
    assert_eq!(st["table"], "embed_observation", "{st}");
    let first: String = c
        .query_row(
            "SELECT text FROM memory_observations ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let word = first
        .split(|ch: char| !ch.is_alphanumeric())
        .filter(|w| w.len() > 4)
        .max_by_key(|w| w.len())
        .unwrap_or("Turn")
        .to_owned();
    let found = json_of(&s.ctl(&[
        "--json",
        "memory",
        "search",
        &word,
        "--type",
        "observation",
        "--mode",
        "keyword",
    ]));
    assert!(
        found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["source_type"] == "observation")
            && !found["hits"].as_array().unwrap().is_empty(),
        "{word}: {found}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_observation_loses_no_observation_and_stores_none_twice() {
    let engine = start_llama(&["--ctx-size", "2048"]);
    let home = Suite::temp_home();
    let cfg = config(home.path(), engine.port, 200, 300);
    let mut s = Suite::start_in(home, &cfg);
    s.agents_serving().await;
    import(&s, 40);
    // Mid-way: some windows observed, more waiting (the Observer is then
    // almost always inside a model call).
    let before = wait_for(Duration::from_secs(240), "the first observations", || {
        let o = observations(s.home.path());
        let st = status(&s);
        (!o.is_empty() && st["observer"]["unobserved_tokens"].as_u64()? >= 200).then_some(o)
    });
    let pid = s.worker("agents").await.pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    s.wait_worker("agents", "restarted", T, |w| {
        w.pid != pid && matches!(state(w), "running" | "degraded")
    })
    .await;
    let st = wait_for(Duration::from_secs(300), "all history observed", || {
        let st = status(&s);
        (st["observer"]["unobserved_tokens"].as_u64()? < 200).then_some(st)
    });
    let after = observations(s.home.path());
    eprintln!(
        "{} observations before the kill, {} after: {}",
        before.len(),
        after.len(),
        st["observer"]
    );
    // Nothing committed before the kill is lost; nothing is stored twice.
    let ids: HashSet<i64> = after.iter().map(|o| o.0).collect();
    assert!(
        before.iter().all(|o| ids.contains(&o.0)),
        "lost: {before:?} vs {after:?}"
    );
    let texts: HashSet<&String> = after.iter().map(|o| &o.1).collect();
    assert_eq!(texts.len(), after.len(), "stored twice: {after:?}");
    // And the Observer's mark reached the end of the history.
    let c = read_db(s.home.path());
    let (mark, last): (i64, i64) = c
        .query_row(
            "SELECT (SELECT row FROM memory_watermarks WHERE source = 'observer'),
                    (SELECT max(id) FROM memory_items WHERE kind = 'conversation')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(last - mark <= 10, "mark {mark}, last item {last}");
    s.stop_with(nix::sys::signal::Signal::SIGTERM);
}

/// Write what the scripted engine answers next.
fn reply(file: &Path, text: &str) {
    std::fs::write(
        file,
        json!({"message": {"role": "assistant", "content": text}}).to_string(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_empty_or_longer_reflection_changes_nothing_and_a_good_one_replaces() {
    // A real model cannot be made to loop or fail on demand: the cloud
    // STAND-IN, declared as a local engine, answers what the file says.
    let dir = tempfile::tempdir().unwrap();
    let answer = dir.path().join("reply.json");
    reply(
        &answer,
        "2026-12-03: Ann said the Lisbon office moves to Rua Augusta in March\n\
         2026-12-03: Bob said Acme invoice INV-20931 is unpaid and due Friday\n\
         2026-12-04: Ann said Priya starts in the platform team on Monday",
    );
    let engine = cloud_standin_with(&dir.path().join("log.jsonl"), Some(&answer));
    let home = Suite::temp_home();
    let memory = |reflect: u64| {
        format!(
            "{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\n\
             [agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"scripted\"\n\
             base_url = \"http://127.0.0.1:{}/v1\"\napi = \"openai\"\n\
             [memory]\npoll_ms = 100\nembedder = \"none\"\nobserve_tokens = 50\n\
             reflect_tokens = {reflect}\nobserve_window_tokens = 200\nreflect_retry_s = 1\n",
            engine.port
        )
    };
    std::fs::write(home.path().join("script.jsonl"), "").unwrap();
    let s = Suite::start_in(home, &memory(1_000_000));
    s.agents_serving().await;
    import(&s, 16);
    // Every window got the same reply: each observation is stored once.
    wait_for(Duration::from_secs(60), "all history observed", || {
        let st = status(&s);
        (st["observer"]["unobserved_tokens"].as_u64()? < 50).then_some(())
    });
    let observed = observations(s.home.path());
    assert_eq!(observed.len(), 3, "{observed:?}");

    // Reflections the guards reject leave the observations as they are.
    let bad = [
        ("looping", "2026-12-03: the office moves\n".repeat(6)),
        ("empty", String::new()),
        (
            "not shorter",
            format!(
                "2026-12-03: {}",
                (0..80)
                    .map(|i| format!("w{i}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
    ];
    s.write_config(&memory(10));
    for (what, text) in &bad {
        reply(&answer, text);
        let before = status(&s)["observer"]["last_run_unix_ms"]
            .as_i64()
            .unwrap_or(0);
        let st = wait_for(
            Duration::from_secs(30),
            &format!("a {what} reflection"),
            || {
                let st = status(&s);
                (st["observer"]["last_run_unix_ms"].as_i64()? > before
                    && st["observer"]["last_error"]
                        .as_str()?
                        .contains("reflection rejected"))
                .then_some(st)
            },
        );
        eprintln!("{what}: {}", st["observer"]["last_error"]);
        assert_eq!(observations(s.home.path()), observed, "{what} changed them");
        assert_eq!(st["observer"]["observations"], 3, "{st}");
        assert_eq!(st["observer"]["superseded"], 0, "{st}");
    }

    // A good one: shorter, dated; it replaces them (they are kept,
    // superseded) and is what search finds.
    reply(
        &answer,
        "2026-12-03: Office move to Rua Augusta in March; Acme invoice INV-20931 unpaid",
    );
    let st = wait_for(Duration::from_secs(30), "a reflection", || {
        let st = status(&s);
        (st["observer"]["reflections"].as_u64()? == 1).then_some(st)
    });
    assert_eq!(st["observer"]["superseded"], 3, "{st}");
    assert_eq!(st["observer"]["observations"], 1, "{st}");
    let found = json_of(&s.ctl(&[
        "--json",
        "memory",
        "search",
        "INV-20931",
        "--type",
        "observation",
    ]));
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{found}");
    assert!(
        hits[0]["snippet"].as_str().unwrap().contains("Rua Augusta"),
        "{found}"
    );

    // Forgetting a source takes what was made of it: the reflection
    // drawn from that day's turns leaves memory, superseded rows too.
    let f = s.ctl_json(&["memory", "forget", "t0", "--collection", "past"]);
    assert_eq!(f["sources"], 1, "{f}");
    let st = status(&s);
    assert_eq!(st["observer"]["observations"], 0, "{st}");
    let left = observations(s.home.path());
    assert!(
        left.iter().all(|(_, norm)| !norm.contains("rua augusta")),
        "{left:?}"
    );
    let found = s.ctl_json(&["memory", "search", "INV-20931", "--type", "observation"]);
    assert_eq!(found["hits"], json!([]), "{found}");
}
