//! Traces end to end (the first part of issue 22): coworkd records a
//! `relay` span per relayed call in cowork.db, under the caller's W3C trace
//! context (`traceparent`) or a new trace, passes its own span on to the
//! worker as the parent, and answers with `cowork-trace-id`; the worker
//! records its `request` span under it; `coworkctl trace <ID|last>` shows
//! the spans of both processes as one waterfall.

use cowork_e2e::*;
use cowork_proto::pb::capture::{capture_client::CaptureClient, GetStatusRequest};
use cowork_proto::pb::worker::{worker_client::WorkerClient, PingRequest};
use serde_json::Value;
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
    for child in ["memory.ground", "router", "engine", "ledger"] {
        assert_eq!(
            by(child)["parent_span_id"],
            answer["span_id"],
            "{child}: {t}"
        );
        assert_eq!(by(child)["process"], "agents");
    }
    assert_eq!(by("router")["attributes"]["route"], "local", "{t}");
    let engine_span = by("engine");
    assert_eq!(engine_span["attributes"]["engine"], "llamacpp", "{t}");
    assert!(engine_span["attributes"]["ttft_ms"].is_string(), "{t}");
    assert_eq!(engine_span["outcome"], "ok", "{t}");
    assert_eq!(answer["outcome"], "ok", "{t}");
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
