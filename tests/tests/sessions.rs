//! llama-server sessions agents-agent runs itself (`coworkctl models
//! load|unload|sessions`), end to end against llama.cpp's REAL
//! `llama-server` (built by scripts/peers.sh) with Gemma 3 270M and
//! all-MiniLM-L6-v2, and no other engine anywhere: chat through a session,
//! a crash mid-answer and the restart, idle unload and transparent reload,
//! a RED fit refused, chat and embedding sessions side by side behind the
//! gateway, the key found nowhere, and no orphan after agents-agent is
//! killed.

use cowork_e2e::*;
use cowork_proto::pb::chat::{chat_client::ChatClient, SendMessageRequest};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// No probing (nothing else may answer), our llama-server, and `more`.
fn config(idle_unload_s: u64, more: &str) -> String {
    format!(
        "{FAST}\n[agents]\nprobe_ports = false\nmax_output_tokens = 60\n\
         local_context_tokens = 2048\n\
         [agents.llama]\nserver = \"{}\"\nthreads = 2\nidle_unload_s = {idle_unload_s}\n{more}",
        llama_server_path()
    )
}

fn json(o: &std::process::Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn chat_chunks(s: &Suite, text: &str) -> Vec<Value> {
    let out = s.ctl(&["--json", "chat", "--local", text]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn answer_text(chunks: &[Value]) -> String {
    chunks.iter().filter_map(|c| c["delta"].as_str()).collect()
}

fn sessions(s: &Suite) -> Vec<Value> {
    try_sessions(s).expect("models sessions")
}

/// `models sessions`, or None while agents-agent cannot answer.
fn try_sessions(s: &Suite) -> Option<Vec<Value>> {
    let o = s.ctl(&["--json", "models", "sessions"]);
    if !o.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&o.stdout).ok()?;
    v["sessions"].as_array().cloned()
}

/// The value of `LLAMA_API_KEY` in a process's environment.
fn key_of(pid: u32) -> String {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"LLAMA_API_KEY="))
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .expect("the session's server has its key in its environment")
}

/// Every process's argv that contains `needle`.
fn argvs_containing(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                found.push(c);
            }
        }
    }
    found
}

fn llama_locks(home: &Path) -> Vec<String> {
    std::fs::read_dir(home.join("run/locks"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("llama-"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_gguf_file_alone_chats_survives_a_crash_mid_answer_and_keeps_its_key_secret() {
    let suite = Suite::start(&config(0, ""));
    suite
        .wait_state("agents", "running", Duration::from_secs(30))
        .await;
    // Nothing can answer before the load.
    let none = sessions(&suite);
    assert!(none.is_empty(), "{none:?}");

    let t0 = Instant::now();
    let loaded = json(&suite.ctl(&["--json", "models", "load", &gemma_model_path()]));
    eprintln!(
        "load to ready: {} ms (server), {:?} (coworkctl)",
        loaded["load_ms"],
        t0.elapsed()
    );
    let s = &loaded["session"];
    assert_eq!(s["state"], "ready", "{loaded}");
    assert_eq!(s["mode"], "chat");
    assert_eq!(s["ctx"], 2048, "the agreed context: local_context_tokens");
    assert_eq!(s["engine"], "managed:gemma-3-270m-q4_k_m");
    assert_eq!(loaded["fit"]["level"], "GREEN", "{loaded}");
    assert_eq!(loaded["already_loaded"], false);
    let pid = s["pid"].as_u64().unwrap() as u32;
    let port = s["port"].as_u64().unwrap() as u16;
    assert!(alive(pid));
    // Loopback only, and the key is enforced: no key, no answer.
    let (status, _) = post_json(port, "", "/v1/chat/completions", "{}");
    assert_eq!(status, 401, "the session's server requires its key");

    // The same load again is the same session.
    let again = json(&suite.ctl(&["--json", "models", "load", &gemma_model_path()]));
    assert_eq!(again["already_loaded"], true);
    assert_eq!(again["session"]["id"], s["id"]);
    // Another context for a loaded model is refused, not a silent reload.
    let other = suite.ctl(&["models", "load", &gemma_model_path(), "--ctx", "512"]);
    assert!(!other.status.success());
    let why = String::from_utf8_lossy(&other.stderr);
    assert!(
        why.contains("loaded already") && why.contains("ctx 2048"),
        "{why}"
    );

    // An engine like any other.
    let engines = json(&suite.ctl(&["--json", "engines"]));
    let e = &engines["engines"][0];
    assert_eq!(e["key"], "managed:gemma-3-270m-q4_k_m", "{engines}");
    assert_eq!(e["origin"], "managed");
    assert_eq!(e["health"], "up");
    assert_eq!(e["models"], serde_json::json!(["gemma-3-270m-q4_k_m"]));

    // A real answer through it, no other engine running.
    let c = chat_chunks(&suite, "Say hello in one short sentence.");
    assert_eq!(
        c[0]["route"]["engine"], "managed:gemma-3-270m-q4_k_m",
        "{c:?}"
    );
    assert!(
        c[0]["route"]["reload_ms"].is_null(),
        "it was running: {c:?}"
    );
    let text = answer_text(&c);
    eprintln!("gemma via session said: {text:?}");
    assert!(!text.trim().is_empty(), "{c:?}");
    assert!(c.last().unwrap()["finish"].is_string(), "{c:?}");

    // The key: in the server's environment only. Not in any process's
    // argv, not in any file of the home.
    let key = key_of(pid);
    assert!(key.len() >= 32, "{key}");
    assert_eq!(argvs_containing(&key), Vec::<String>::new());
    assert_eq!(
        files_containing(suite.home.path(), key.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );

    // kill -9 the server mid-answer: the answer ends with an error chunk.
    let mut chat = ChatClient::new(suite.channel());
    let mut killed = None;
    for _ in 0..5 {
        let current = sessions(&suite)[0]["pid"].as_u64().unwrap() as u32;
        let mut stream = chat
            .send_message(SendMessageRequest {
                text: "Write a very long story about a lighthouse keeper, at least 500 words."
                    .into(),
                preference: "local".into(),
                ..Default::default()
            })
            .await
            .expect("send")
            .into_inner();
        killed = error_after_kill(&mut stream, || {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(current as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        })
        .await;
        if killed.is_some() {
            break;
        }
        // No text before the end: the session may have crashed anyway;
        // wait for it to be ready again.
        wait_for(Duration::from_secs(60), "session ready", || {
            (sessions(&suite)[0]["state"] == "ready").then_some(())
        });
    }
    let (msg, after) = killed.expect("one of 5 answers had text");
    eprintln!("error chunk {after:?} after kill -9 of the session: {msg}");
    assert!(after < Duration::from_secs(2), "{after:?}");
    // It is restarted (with backoff), and the next message works.
    let restarted = wait_for(Duration::from_secs(60), "session restarted", || {
        let s = sessions(&suite).remove(0);
        (s["state"] == "ready" && s["pid"].as_u64() != Some(u64::from(pid))).then_some(s)
    });
    assert!(restarted["restarts"].as_u64().unwrap() >= 1, "{restarted}");
    assert!(
        restarted["last_error"]
            .as_str()
            .unwrap()
            .contains("signal 9"),
        "{restarted}"
    );
    let c = chat_chunks(&suite, "Say hello in one short sentence.");
    assert!(!answer_text(&c).trim().is_empty(), "{c:?}");
    let new_pid = restarted["pid"].as_u64().unwrap() as u32;
    assert_ne!(key_of(new_pid), key, "a fresh key per server");

    // Unload: the server is gone, its lock too.
    let u = json(&suite.ctl(&["--json", "models", "unload", "gemma-3-270m-q4_k_m"]));
    assert_eq!(u["unloaded"]["id"], s["id"]);
    wait_until(Duration::from_secs(10), "the server gone", || {
        !alive(new_pid)
    });
    assert!(sessions(&suite).is_empty());
    assert!(llama_locks(suite.home.path()).is_empty());
}

#[tokio::test]
async fn an_idle_session_is_unloaded_and_the_next_request_reloads_it() {
    let suite = Suite::start(&config(3, ""));
    suite
        .wait_state("agents", "running", Duration::from_secs(30))
        .await;
    let loaded = json(&suite.ctl(&["--json", "models", "load", &gemma_model_path()]));
    let pid = loaded["session"]["pid"].as_u64().unwrap() as u32;
    // Unused for 3 s: stopped, but still a session.
    let idle = wait_for(Duration::from_secs(30), "idle unload", || {
        let s = sessions(&suite).remove(0);
        (s["state"] == "idle").then_some(s)
    });
    assert_eq!(idle["pid"], 0, "{idle}");
    wait_until(Duration::from_secs(10), "the idle server gone", || {
        !alive(pid)
    });
    let locks = llama_locks(suite.home.path());
    assert!(
        locks.is_empty(),
        "{locks:?}: {:?}\n{:?}",
        locks
            .iter()
            .map(|l| std::fs::read_to_string(suite.home.path().join("run/locks").join(l)))
            .collect::<Vec<_>>(),
        std::fs::read_to_string(suite.home.path().join("logs/agents.log"))
    );
    let text = ok(&suite.ctl(&["models", "sessions"]));
    assert!(
        text.contains("idle") && text.contains("gemma-3-270m-q4_k_m"),
        "{text}"
    );

    // The next message starts it again, and says how long that took.
    let c = chat_chunks(&suite, "Say hello in one short sentence.");
    let reload = c[0]["route"]["reload_ms"].as_u64();
    eprintln!("transparent reload took {reload:?} ms");
    assert!(reload.is_some_and(|ms| ms > 0), "{c:?}");
    assert!(!answer_text(&c).trim().is_empty(), "{c:?}");
    let s = sessions(&suite).remove(0);
    assert_eq!(s["restarts"], 0, "a reload is not a crash: {s}");
}

#[tokio::test]
async fn a_model_that_does_not_fit_is_refused_and_a_forced_one_shows_why_it_failed() {
    let suite = Suite::start(&config(0, ""));
    suite
        .wait_state("agents", "running", Duration::from_secs(30))
        .await;
    // A GGUF whose metadata asks for a KV cache far beyond this machine
    // (written with the gguf package), with no tensors to load.
    let huge = suite.home.path().join("huge.gguf");
    let out = Command::new(python())
        .args([
            "-c",
            "import sys, gguf\n\
             w = gguf.GGUFWriter(sys.argv[1], 'llama')\n\
             w.add_block_count(400); w.add_context_length(1048576)\n\
             w.add_embedding_length(16384); w.add_head_count(128); w.add_head_count_kv(128)\n\
             w.add_feed_forward_length(1); w.add_layer_norm_rms_eps(1e-5)\n\
             w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()",
        ])
        .arg(&huge)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let huge = huge.display().to_string();
    let refused = suite.ctl(&["models", "load", &huge, "--ctx", "1048576"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    eprintln!("RED load: {why}");
    assert!(
        why.contains("RED") && why.contains("--force") && why.contains("GB usable"),
        "{why}"
    );
    assert!(sessions(&suite).is_empty());
    assert!(argvs_containing(&huge).is_empty(), "nothing was started");

    // Forced: llama-server starts and fails; the person sees its exit
    // status and its own last words.
    let forced = suite.ctl(&["models", "load", &huge, "--ctx", "1048576", "--force"]);
    assert!(!forced.status.success());
    let why = String::from_utf8_lossy(&forced.stderr);
    eprintln!("forced load: {why}");
    assert!(
        why.contains("exited before it was ready") && why.contains("exit status"),
        "{why}"
    );
    assert!(why.contains("its last output"), "{why}");
    assert!(sessions(&suite).is_empty());
    assert!(llama_locks(suite.home.path()).is_empty());
}

#[tokio::test]
async fn chat_and_embedding_sessions_serve_side_by_side_through_the_gateway() {
    let suite = Suite::start(&config(0, ""));
    suite
        .wait_state("agents", "running", Duration::from_secs(30))
        .await;
    json(&suite.ctl(&["--json", "models", "load", &gemma_model_path()]));
    let e = json(&suite.ctl(&[
        "--json",
        "models",
        "load",
        &minilm_model_path(),
        "--embedding",
    ]));
    assert_eq!(e["session"]["mode"], "embedding", "{e}");
    let all = sessions(&suite);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all
        .iter()
        .all(|s| s["state"] == "ready" && s["rss_bytes"].as_u64() > Some(1 << 20)));

    let port = free_port();
    ok(&suite.ctl(&["gateway", "enable", "--port", &port.to_string()]));
    let key = ok(&suite.ctl(&["gateway", "key"])).trim().to_owned();
    wait_until(Duration::from_secs(10), "the gateway listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (status, body) = post_json(
        port,
        &key,
        "/v1/embeddings",
        r#"{"model":"all-minilm-l6-v2-f16","input":["a cat sat on the mat","a kitten rested on the rug","quarterly tax filing deadline"]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&response_body(&body)).unwrap();
    let vecs: Vec<Vec<f64>> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(vecs.len(), 3);
    assert!(vecs.iter().all(|v| v.len() == 384));
    // Unit length (L2-normalised), so a dot product is the cosine.
    for v in &vecs {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    let cos = |a: &[f64], b: &[f64]| {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        dot / (n(a) * n(b))
    };
    let (related, unrelated) = (cos(&vecs[0], &vecs[1]), cos(&vecs[0], &vecs[2]));
    eprintln!("MiniLM through the gateway: related {related:.3}, unrelated {unrelated:.3}");
    assert!(related > unrelated + 0.2, "{related} vs {unrelated}");
    // And chat through the gateway, to the chat session.
    let (status, body) = post_json(
        port,
        &key,
        "/v1/chat/completions",
        r#"{"model":"gemma-3-270m-q4_k_m","messages":[{"role":"user","content":"Say hi."}],"max_tokens":16}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"choices\""), "{body}");
    // The gateway lists both.
    let models = ok(&suite.ctl(&["--json", "engines"]));
    assert!(
        models.contains("managed:all-minilm-l6-v2-f16") && models.contains("\"embedding\""),
        "{models}"
    );
}

#[tokio::test]
async fn killing_agents_agent_leaves_no_llama_server_and_autoload_brings_the_model_back() {
    let more = format!(
        "[[agents.llama.autoload]]\nmodel = \"{}\"\n",
        gemma_model_path()
    );
    let suite = Suite::start(&config(0, &more));
    suite
        .wait_state("agents", "running", Duration::from_secs(30))
        .await;
    let first = wait_for(Duration::from_secs(120), "autoloaded", || {
        sessions(&suite).into_iter().find(|s| s["state"] == "ready")
    });
    let pid = first["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid));
    assert_eq!(llama_locks(suite.home.path()).len(), 1);

    let agents = suite.worker("agents").await;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agents.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    // No orphan: the parent-death signal ends it, the sweeps reap what
    // is left.
    wait_until(Duration::from_secs(20), "the orphan gone", || !alive(pid));
    let back = wait_for(Duration::from_secs(120), "autoloaded again", || {
        try_sessions(&suite)?
            .into_iter()
            .find(|s| s["state"] == "ready")
    });
    assert_ne!(back["pid"], first["pid"]);
    let locks = llama_locks(suite.home.path());
    assert_eq!(locks.len(), 1, "only the new server's lock: {locks:?}");
    let c = chat_chunks(&suite, "Say hello in one short sentence.");
    assert!(!answer_text(&c).trim().is_empty(), "{c:?}");
}

#[tokio::test]
async fn a_missing_server_program_is_named_with_the_setting_to_fix() {
    let cfg = config(0, "").replace(&llama_server_path(), "/nonexistent/llama-server");
    let suite = Suite::start(&cfg);
    suite
        .wait_state("agents", "running", Duration::from_secs(30))
        .await;
    let out = suite.ctl(&["models", "load", &gemma_model_path()]);
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("cannot run /nonexistent/llama-server")
            && why.contains("[agents.llama] server"),
        "{why}"
    );
    assert!(sessions(&suite).is_empty());
    // A model file that is not there, and a name that is nothing.
    let out = suite.ctl(&["models", "load", "/nonexistent/model.gguf"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not"),
        "{out:?}"
    );
    let out = suite.ctl(&["models", "load", "../../etc/passwd"]);
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && why.contains("neither a model file"),
        "{why}"
    );
}
