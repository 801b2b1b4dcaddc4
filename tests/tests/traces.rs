//! Traces end to end (issue 22): coworkd records a `relay` span per
//! relayed call in cowork.db, under the caller's W3C trace context
//! (`traceparent`) or a new trace, passes its own span on to the worker as
//! the parent, and answers with `cowork-trace-id`; the worker records its
//! `request` span under it; `coworkctl trace <ID|last>` shows the spans of
//! both processes as one waterfall. An agent operation's model calls, tool
//! calls (and the MCP call under them) and approvals make its timeline
//! (`agent show ID --timeline`), and the same spans reach a real OTLP/HTTP
//! receiver (decoded with the `opentelemetry-proto` package) scrubbed of
//! everything but ids, names, timings and outcomes. `[traces]
//! sample_ratio = 0` records nothing.

use cowork_e2e::*;
use cowork_proto::pb::capture::{capture_client::CaptureClient, GetStatusRequest};
use cowork_proto::pb::worker::{worker_client::WorkerClient, PingRequest};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn trace_json(s: &Suite, id: &str) -> Option<Value> {
    let o = s.ctl(&["--json", "trace", id]);
    o.status
        .success()
        .then(|| serde_json::from_slice(&o.stdout).expect("trace --json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_call_is_one_trace_recorded_with_its_callers_context() {
    let s = Suite::start("");
    s.wait_state("agents", "running", T).await;

    // The caller's trace: coworkd's relay span continues it, and the
    // worker gets the relay span as its parent.
    let tid = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = tonic::Request::new(PingRequest::default());
    req.metadata_mut()
        .insert(cowork_proto::grpc::WORKER_HEADER, "agents".parse().unwrap());
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{tid}-00f067aa0ba902b7-01").parse().unwrap(),
    );
    let resp = WorkerClient::new(s.channel()).ping(req).await.unwrap();
    assert_eq!(resp.metadata().get("cowork-trace-id").unwrap(), tid);
    let worker_parent = resp
        .metadata()
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap();
    let relay_span_id = worker_parent.split('-').nth(2).unwrap().to_owned();
    let t = wait_for(T, "the relay span written", || trace_json(&s, tid));
    let spans = t["spans"].as_array().unwrap();
    // The worker contract (health polls, pings) has no span of its own.
    assert_eq!(spans.len(), 1, "{t}");
    let relay = &spans[0];
    assert_eq!(relay["name"], "relay");
    assert_eq!(relay["process"], "coworkd");
    assert_eq!(relay["span_id"], relay_span_id.as_str(), "{t}");
    assert_eq!(relay["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(relay["outcome"], "ok");
    assert_eq!(relay["attributes"]["worker"], "agents");
    assert_eq!(relay["attributes"]["path"], "/cowork.worker.v1.Worker/Ping");
    assert!(relay["attributes"]["wait_ms"].is_u64(), "{t}");
    assert!(relay["attributes"]["bytes"].as_u64().unwrap() > 0, "{t}");
    assert!(relay["duration_us"].as_i64().unwrap() > 0);

    // No trace context: coworkd starts a trace and says which.
    let resp = CaptureClient::new(s.channel())
        .get_status(GetStatusRequest {})
        .await
        .unwrap();
    let id = resp
        .metadata()
        .get("cowork-trace-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32);
    assert_ne!(id, "0".repeat(32));
    // One trace across two processes: coworkd's relay span, and under it
    // capture-agent's request span (each written by its own process).
    let t = wait_for(T, "both processes' spans written", || {
        trace_json(&s, &id).filter(|t| t["spans"].as_array().is_some_and(|a| a.len() == 2))
    });
    let relay = &t["spans"][0];
    let request = &t["spans"][1];
    assert_eq!(relay["process"], "coworkd", "{t}");
    assert_eq!(relay["attributes"]["worker"], "capture", "{t}");
    assert_eq!(relay["parent_span_id"], "0".repeat(16), "a root");
    assert_eq!(request["process"], "capture", "{t}");
    assert_eq!(request["name"], "request", "{t}");
    assert_eq!(request["parent_span_id"], relay["span_id"], "{t}");
    assert_eq!(
        request["attributes"]["path"],
        "/cowork.capture.v1.Capture/GetStatus"
    );
    assert!(
        request["duration_us"].as_i64() <= relay["duration_us"].as_i64(),
        "{t}"
    );
    let waterfall = ok(&s.ctl(&["trace", &id]));
    assert!(waterfall.contains(&format!("trace {id}")), "{waterfall}");
    assert!(waterfall.contains("coworkd    relay"), "{waterfall}");
    assert!(waterfall.contains("capture      request"), "{waterfall}");
    let last = trace_json(&s, "last").expect("trace last");
    assert!(!last["spans"].as_array().unwrap().is_empty(), "{last}");

    // Bad ids are refused with what a trace id is; unknown ones say so.
    let o = s.ctl(&["trace", "not-a-trace"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("32 hex digits"),
        "{o:?}"
    );
    let o = s.ctl(&["trace", &"ab".repeat(16)]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no spans of trace"),
        "{o:?}"
    );

    // Span rows hold ids, routes, timings and outcomes only.
    let c = read_db(s.home.path());
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM traces_spans WHERE attributes LIKE '%payload%'"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_is_one_trace_from_the_client_to_the_engine_and_holds_no_text() {
    // The real llama.cpp server with Gemma 3 270M.
    let engine = start_llama(&[]);
    let s = Suite::start(&format!(
        "{FAST}\n[agents]\nprobe_ports = false\nmax_output_tokens = 40\n\
         [[agents.engines]]\nid = \"llamacpp\"\nbase_url = \"http://127.0.0.1:{}/v1\"\napi = \"openai\"\n",
        engine.port
    ));
    s.wait_state("agents", "running", T).await;
    let secret = "sk-live-PLANTED-9f31c7";
    let out = s.ctl(&[
        "--json",
        "chat",
        "--local",
        &format!("My key is {secret}. Say hi in three words."),
    ]);
    let text = ok(&out);
    let chunks: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let id = chunks[0]["route"]["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace id in the route chunk: {text}"))
        .to_owned();
    let names = [
        "relay",
        "request",
        "chat.answer",
        "memory.ground",
        "context.layer1",
        "router",
        "engine",
        "ledger",
    ];
    let t = wait_for(T, "every span of the chat written", || {
        trace_json(&s, &id).filter(|t| {
            let have: Vec<&str> = t["spans"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|x| x["name"].as_str())
                .collect();
            names.iter().all(|n| have.contains(n))
        })
    });
    let spans = t["spans"].as_array().unwrap();
    let by = |name: &str| spans.iter().find(|x| x["name"] == name).unwrap();
    let (relay, request, answer) = (by("relay"), by("request"), by("chat.answer"));
    assert_eq!(relay["process"], "coworkd");
    assert_eq!(request["process"], "agents");
    assert_eq!(request["parent_span_id"], relay["span_id"], "{t}");
    assert_eq!(answer["parent_span_id"], request["span_id"], "{t}");
    for child in [
        "memory.ground",
        "context.layer1",
        "router",
        "engine",
        "ledger",
    ] {
        assert_eq!(
            by(child)["parent_span_id"],
            answer["span_id"],
            "{child}: {t}"
        );
        assert_eq!(by(child)["process"], "agents");
    }
    assert_eq!(by("router")["attributes"]["route"], "local", "{t}");
    // RAG assembly and Layer 1 say how much they gave, in tokens.
    assert!(
        by("memory.ground")["attributes"]["tokens"].is_number(),
        "{t}"
    );
    assert!(
        by("context.layer1")["attributes"]["tokens"].is_number(),
        "{t}"
    );
    let engine_span = by("engine");
    assert_eq!(engine_span["attributes"]["engine"], "llamacpp", "{t}");
    assert!(engine_span["attributes"]["ttft_ms"].is_number(), "{t}");
    assert_eq!(engine_span["outcome"], "ok", "{t}");
    assert_eq!(answer["outcome"], "ok", "{t}");
    // The relay and request spans last until the stream's trailers pass
    // (not only its headers), and count what it carried.
    for outer in [relay, request] {
        assert!(
            outer["duration_us"].as_i64() >= answer["duration_us"].as_i64(),
            "{t}"
        );
        assert_eq!(outer["outcome"], "ok", "{t}");
        assert!(outer["attributes"]["bytes"].as_u64().unwrap() > 0, "{t}");
    }
    let waterfall = ok(&s.ctl(&["trace", &id]));
    assert!(
        waterfall.contains("agents         chat.answer"),
        "{waterfall}"
    );

    // No span holds what was said: the planted secret is nowhere in the
    // table, in any column.
    let c = read_db(s.home.path());
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM traces_spans WHERE (trace_id || span_id || parent_span_id ||
                process || name || outcome || attributes) LIKE '%PLANTED%'
                OR (trace_id || name || attributes) LIKE '%three words%'"
        ),
        0
    );
    assert!(count(&c, "SELECT count(*) FROM traces_spans") >= names.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_has_a_timeline_and_a_real_otlp_receiver_gets_its_spans_scrubbed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("otlp.jsonl");
    let mut cmd = std::process::Command::new(python());
    cmd.arg(repo_root().join("tests/python/otlp_receiver.py"))
        .arg(&log);
    let collector = PythonPeer::start(cmd, "the OTLP receiver");
    // Real Gemma 3 270M behind llama-cpp-python's server (tool calls), the
    // real mcp-server-time; get_current_time waits for a person.
    let engine = start_llama_cpp_python();
    let s = Suite::start(&format!(
        "{FAST}\n[traces]\notlp_endpoint = \"http://127.0.0.1:{}\"\n\
         [agents]\nprobe_ports = false\n\
         [[agents.engines]]\nid = \"llamacpp\"\nbase_url = \"http://127.0.0.1:{}/v1\"\napi = \"openai\"\n\
         [agents.approval]\nauto_run = [\"time\"]\ndenylist_extra = [\"get_current_time\"]\n",
        collector.port, engine.port
    ));
    s.wait_state("agents", "running", T).await;
    wait_engine_up(&s);
    assert_eq!(add_time_server(&s)["status"], "running");
    let secret = "PLANTED-7c1e9a";
    let op = s.run_time_task(&format!("What time is it in UTC? My password is {secret}."));
    assert_eq!(op["status"], "waiting_for_human", "{op}");
    let op_id = op["id"].as_str().unwrap().to_owned();
    let pending = op["pending"][0]["id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(300));
    let done = s.ctl_json(&["approvals", "approve", &pending]);
    assert_eq!(done["status"], "done", "{done}");

    // The timeline: the operation, its model call, the approval (who,
    // after how long), the call that ran with the MCP call under it.
    let names = ["operation", "model", "approval", "tool", "mcp.call"];
    let shown = wait_for(T, "the operation's spans written", || {
        let o = s.ctl(&["--json", "agent", "show", &op_id, "--timeline"]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        let have: Vec<String> = v["timeline"]
            .as_array()?
            .iter()
            .filter_map(|x| x["name"].as_str().map(str::to_owned))
            .collect();
        names
            .iter()
            .all(|n| have.iter().any(|h| h == n))
            .then_some(v)
    });
    let tl = shown["timeline"].as_array().unwrap();
    let pos = |pred: &dyn Fn(&Value) -> bool| {
        tl.iter()
            .position(pred)
            .unwrap_or_else(|| panic!("{shown}"))
    };
    let model = pos(&|x| x["name"] == "model");
    let approval = pos(&|x| x["name"] == "approval");
    // Ran, or failed on the arguments the small model wrote: either way
    // it was called, after the approval.
    let ran = pos(&|x| x["name"] == "tool");
    let mcp = pos(&|x| x["name"] == "mcp.call");
    // The approval spans the wait: from when it was asked (after the first
    // model call) to the decision, before the call ran.
    assert!(model < approval && approval < ran, "{shown}");
    assert!(tl.iter().any(|x| x["name"] == "ledger"), "{shown}");
    assert_eq!(tl[0]["name"], "operation", "{shown}");
    assert_eq!(tl[model]["parent_span_id"], tl[0]["span_id"], "{shown}");
    let a = &tl[approval]["attributes"];
    assert_eq!(a["decision"], "approved", "{shown}");
    assert_eq!(a["decided_by"], "person (api)", "{shown}");
    assert_eq!(a["tool"], "get_current_time", "{shown}");
    let waited = a["wait_ms"].as_i64().unwrap();
    assert!(
        tl[approval]["duration_us"].as_i64().unwrap() >= waited * 1000 - 1000,
        "the span covers the wait: {shown}"
    );
    assert!(waited >= 300, "{shown}");
    assert_eq!(tl[model]["attributes"]["engine"], "llamacpp", "{shown}");
    assert!(
        tl[model]["attributes"]["prompt_tokens"].is_number(),
        "{shown}"
    );
    assert_eq!(tl[mcp]["attributes"]["server"], "time", "{shown}");
    assert_eq!(tl[mcp]["parent_span_id"], tl[ran]["span_id"], "{shown}");
    let text = ok(&s.ctl(&["agent", "show", &op_id, "--timeline"]));
    assert!(
        text.contains("time/get_current_time approved by person (api) after waiting"),
        "{text}"
    );
    // `trace last --op` is the newest trace of the operation (the approval's).
    let last = s.ctl_json(&["trace", "last", "--op", &op_id]);
    assert_eq!(last["trace_id"], tl[ran]["trace_id"], "{last}");
    let o = s.ctl(&["trace", &"ab".repeat(16), "--op", &op_id]);
    assert!(!o.status.success(), "--op goes with last");

    // The collector got the same spans, from both processes, scrubbed.
    let received = wait_for(T, "the collector to receive the spans", || {
        let text = std::fs::read_to_string(&log).ok()?;
        let spans: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let has = |svc: &str, name: &str| {
            spans
                .iter()
                .any(|x| x["service"] == svc && x["name"] == name)
        };
        (has("coworkd", "relay")
            && has("agents-agent", "approval")
            && has("agents-agent", "mcp.call"))
        .then_some((text, spans))
    });
    let (raw, spans) = received;
    let approval_id = tl[approval]["span_id"].as_str().unwrap();
    let sent = spans
        .iter()
        .find(|x| x["span_id"] == approval_id)
        .expect("the approval span itself was exported");
    assert_eq!(sent["trace_id"], tl[approval]["trace_id"]);
    assert_eq!(sent["attributes"]["decided_by"], "person (api)");
    assert!(!raw.contains(secret), "the task's text never leaves");
    assert!(!raw.contains("UTC?"), "nor the task");
    // Nor anywhere in the spans' protobuf bytes as sent (ids, names,
    // trace state, links, status: every field).
    for x in &spans {
        let hex = x["raw"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(secret) && !text.contains("UTC?"), "{x}");
    }
    for x in &spans {
        assert_eq!(x["events"], 0, "{x}");
        for k in x["attributes"].as_object().unwrap().keys() {
            assert!(
                cowork_db::traces::KEPT_ATTRIBUTES.contains(&k.as_str()),
                "{k} left the process: {x}"
            );
        }
    }
    let st = s.ctl_json(&["trace", "status"]);
    assert_eq!(
        st["otlp_endpoint"],
        format!("http://127.0.0.1:{}", collector.port)
    );
    assert!(st["spans"].as_u64().unwrap() >= names.len() as u64, "{st}");
    for l in st["lost"].as_array().unwrap() {
        assert_eq!(l["otlp_failed"], 0, "{st}");
        assert_eq!(l["dropped"], 0, "{st}");
    }
    assert!(ok(&s.ctl(&["trace", "status"])).contains("export: OTLP/HTTP to http://127.0.0.1:"));
    // Nothing in cowork.db holds the task either.
    let c = read_db(s.home.path());
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM traces_spans WHERE attributes LIKE '%PLANTED%'"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_off_records_nothing_and_a_bad_traces_section_is_shown() {
    let s = Suite::start("[traces]\nsample_ratio = 0.0\n");
    s.wait_state("capture", "running", T).await;
    let resp = CaptureClient::new(s.channel())
        .get_status(GetStatusRequest {})
        .await
        .unwrap();
    assert!(
        resp.metadata().get("cowork-trace-id").is_none(),
        "an unrecorded call has no trace id to look up"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let o = s.ctl(&["trace", "last"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no trace recorded yet"),
        "{o:?}"
    );
    let st = s.ctl_json(&["trace", "status"]);
    assert_eq!(st["sample_ratio"], 0.0, "{st}");
    assert_eq!(st["spans"], 0, "{st}");

    // A collector on the internet is refused: spans only go to this
    // machine or the LAN; the defaults apply and the status says why.
    std::fs::write(
        s.home.path().join("config.toml"),
        "[traces]\notlp_endpoint = \"https://otel.example.com\"\n",
    )
    .unwrap();
    let st = s.ctl_json(&["trace", "status"]);
    assert!(
        st["settings_error"]
            .as_str()
            .unwrap()
            .contains("only exported to a local collector"),
        "{st}"
    );
    assert_eq!(st["otlp_endpoint"], "", "{st}");
}

/// The bytes one connection carried in one direction.
type Recorded = Arc<Mutex<Vec<u8>>>;

/// A proxy at `at` to the socket `to` that records, per connection, the
/// bytes sent toward `to` (`toward`) or back from it.
fn tap(at: &Path, to: PathBuf, toward: bool) -> Arc<Mutex<Vec<Recorded>>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{UnixListener, UnixStream};
    let listener = UnixListener::bind(at).unwrap();
    let conns = Arc::new(Mutex::new(Vec::new()));
    let seen = conns.clone();
    tokio::spawn(async move {
        while let Ok((a, _)) = listener.accept().await {
            let Ok(b) = UnixStream::connect(&to).await else {
                continue;
            };
            let bytes = Arc::new(Mutex::new(Vec::new()));
            seen.lock().unwrap().push(bytes.clone());
            let (ar, aw) = a.into_split();
            let (br, bw) = b.into_split();
            let (mut recorded, mut recorded_to, mut other, mut other_to) = if toward {
                (ar, bw, br, aw)
            } else {
                (br, aw, ar, bw)
            };
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut other, &mut other_to).await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n @ 1..) = recorded.read(&mut buf).await {
                    bytes.lock().unwrap().extend_from_slice(&buf[..n]);
                    if recorded_to.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = recorded_to.shutdown().await;
            });
        }
    });
    conns
}

/// The header blocks (HEADERS frames and their CONTINUATIONs) of one
/// direction of an HTTP/2 connection.
fn header_blocks(mut b: &[u8]) -> Vec<Vec<u8>> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    b = b.strip_prefix(PREFACE).unwrap_or(b);
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    while b.len() >= 9 {
        let len = usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
        let (kind, flags) = (b[3], b[4]);
        let Some(mut p) = b.get(9..9 + len) else {
            break;
        };
        match kind {
            0x1 => {
                if flags & 0x8 != 0 {
                    p = &p[1..p.len() - usize::from(p[0])];
                }
                if flags & 0x20 != 0 {
                    p = &p[5..];
                }
                blocks.push(p.to_vec());
            }
            0x9 => blocks.last_mut().unwrap().extend_from_slice(p),
            _ => {}
        }
        b = &b[9 + len..];
    }
    blocks
}

/// The fields of an HPACK block sent as never-indexed literals (RFC 7541
/// 6.2.3), by the index of their name: 0 when the name is spelled out,
/// above 61 when it is an entry of the connection's (dynamic) table.
fn never_indexed_names(block: &[u8]) -> Vec<usize> {
    fn int(b: &[u8], i: &mut usize, bits: u32) -> usize {
        let max = (1 << bits) - 1;
        let mut v = usize::from(b[*i]) & max;
        *i += 1;
        if v == max {
            let mut shift = 0;
            loop {
                let c = b[*i];
                *i += 1;
                v += usize::from(c & 0x7f) << shift;
                shift += 7;
                if c & 0x80 == 0 {
                    break;
                }
            }
        }
        v
    }
    fn string(b: &[u8], i: &mut usize) {
        let n = int(b, i, 7);
        *i += n;
    }
    let (mut out, mut i) = (Vec::new(), 0);
    while i < block.len() {
        let c = block[i];
        if c & 0x80 != 0 {
            int(block, &mut i, 7);
        } else if c & 0x40 != 0 {
            if int(block, &mut i, 6) == 0 {
                string(block, &mut i);
            }
            string(block, &mut i);
        } else if c & 0x20 != 0 {
            int(block, &mut i, 5);
        } else {
            let name = int(block, &mut i, 4);
            if name == 0 {
                string(block, &mut i);
            }
            string(block, &mut i);
            if c & 0x10 != 0 {
                out.push(name);
            }
        }
    }
    out
}

/// Every never-indexed field's name index on the connections `conns`
/// recorded.
fn never_indexed_on(conns: &Mutex<Vec<Recorded>>) -> Vec<usize> {
    let conns = conns.lock().unwrap();
    conns
        .iter()
        .flat_map(|c| header_blocks(&c.lock().unwrap()))
        .flat_map(|b| never_indexed_names(&b))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_call_headers_spell_their_name_once_per_connection() {
    let s = Suite::start("");
    s.wait_state("capture", "running", T).await;
    // Taps on the client's connection to coworkd (what comes back) and on
    // the relay's connection to capture-agent (what goes to it).
    let worker = s.paths.worker_socket("capture");
    let moved = worker.with_file_name("capture.tapped.sock");
    std::fs::rename(&worker, &moved).unwrap();
    let to_worker = tap(&worker, moved, true);
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("cowork.sock");
    let to_client = tap(&public, s.paths.public_socket(), false);

    const CALLS: usize = 4;
    let mut client = CaptureClient::new(cowork_proto::uds::channel(&public));
    let mut ids = Vec::new();
    for i in 0..CALLS {
        // Deadlines that differ: each call's `grpc-timeout` is new to HPACK.
        let mut req = tonic::Request::new(GetStatusRequest {});
        req.set_timeout(T + Duration::from_millis(100 * i as u64));
        let resp = client.get_status(req).await.unwrap();
        // No `date` either: new every second, it would push the names out
        // of the table within a minute.
        assert!(resp.metadata().get("date").is_none(), "{resp:?}");
        let id = resp.metadata().get("cowork-trace-id").unwrap();
        ids.push(id.to_str().unwrap().to_owned());
    }
    // The first call's `cowork-trace-id` (to the client), `traceparent`
    // and `grpc-timeout` (to the worker) go indexable: name and value into
    // HPACK's table. Every later one is a never-indexed literal whose name
    // is that table entry. Before, the trace headers were never-indexed
    // with the name spelled out (index 0), and every `grpc-timeout` went
    // into the table, pushing out the headers every call repeats.
    let back = never_indexed_on(&to_client);
    assert_eq!(back.len(), CALLS - 1, "{back:?}");
    assert!(back.iter().all(|&i| i > 61), "{back:?}");
    let sent = never_indexed_on(&to_worker);
    assert_eq!(sent.len(), 2 * (CALLS - 1), "{sent:?}");
    assert!(sent.iter().all(|&i| i > 61), "{sent:?}");
    // Both ends still read them: each call is its own trace, and
    // capture-agent's span is under coworkd's in every one.
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), CALLS);
    for id in &ids {
        let t = wait_for(T, "both processes' spans written", || {
            trace_json(&s, id).filter(|t| t["spans"].as_array().is_some_and(|a| a.len() == 2))
        });
        assert_eq!(
            t["spans"][1]["parent_span_id"], t["spans"][0]["span_id"],
            "{t}"
        );
    }
}
