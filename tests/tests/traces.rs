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
