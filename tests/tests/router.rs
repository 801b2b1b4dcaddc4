//! The router end to end: relayed unary and streaming calls, deadlines,
//! the on-demand browser, refusals, and peer checks.

use cowork_e2e::*;
use cowork_proto::pb::browser::{browser_client::BrowserClient, GetStatusRequest};
use cowork_proto::pb::worker::{worker_client::WorkerClient, PingRequest, PingStreamRequest};
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

fn to<T>(worker: &str, req: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(req);
    r.metadata_mut()
        .insert(cowork_proto::grpc::WORKER_HEADER, worker.parse().unwrap());
    r
}

#[tokio::test]
async fn streams_are_relayed_whole_and_in_order() {
    let suite = Suite::start("");
    let agents = suite.wait_state("agents", "running", T).await;
    let mut client = WorkerClient::new(suite.channel());
    let mut stream = client
        .ping_stream(to(
            "agents",
            PingStreamRequest {
                count: 2000,
                size: 1024,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(reply) = stream.message().await.unwrap() {
        assert_eq!(reply.payload.len(), 1024);
        assert_eq!(reply.pid, agents.pid);
        n += 1;
    }
    assert_eq!(n, 2000);
    // Unary with a payload, addressed by header, echoed untouched.
    let payload: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let reply = client
        .ping(to(
            "capture",
            PingRequest {
                payload: payload.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.payload, payload);

    // Trace context crosses the relay in metadata: the same trace, with
    // coworkd's relay span as the worker's parent (tests/traces.rs).
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut req = to("agents", PingRequest::default());
    req.metadata_mut()
        .insert("traceparent", tp.parse().unwrap());
    let resp = client.ping(req).await.unwrap();
    let got = resp
        .metadata()
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        got.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && got.ends_with("-01"),
        "{got}"
    );
    assert_eq!(
        resp.metadata().get("cowork-trace-id").unwrap(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
}

#[tokio::test]
async fn worker_errors_and_bad_requests_come_back_as_grpc_statuses() {
    let suite = Suite::start("");
    suite.wait_state("agents", "running", T).await;
    let mut client = WorkerClient::new(suite.channel());
    // The worker's own error passes through the relay unchanged.
    let err = client
        .ping_stream(to(
            "agents",
            PingStreamRequest {
                count: 1,
                size: u32::MAX,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("exceeds"), "{}", err.message());
    // The worker contract needs an address.
    let err = client.ping(PingRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("cowork-worker"), "{}", err.message());
    // Unknown worker name in the header.
    let err = client
        .ping(to("chrome", PingRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn the_browser_starts_on_the_first_call_and_stops_when_idle() {
    let suite = Suite::start("[supervisor]\nbrowser_idle_ms = 700\n");
    suite.wait_state("agents", "running", T).await;
    assert_eq!(state(&suite.worker("browser").await), "stopped");
    let mut browser = BrowserClient::new(suite.channel());
    let got = browser
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let running = suite.worker("browser").await;
    assert_eq!(state(&running), "running");
    assert_eq!(got.pid, running.pid);
    assert!(got.profile_dir.ends_with("browser-profile"));
    let stopped = suite.wait_state("browser", "stopped", T).await;
    assert!(stopped.reason.contains("idle"), "{stopped:?}");
    assert!(!alive(running.pid));
    // And a later call starts it again.
    let again = browser
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_ne!(again.pid, running.pid);
}

#[tokio::test]
async fn a_long_stream_keeps_the_on_demand_browser_alive() {
    let suite = Suite::start("[supervisor]\nbrowser_idle_ms = 300\n");
    let mut client = WorkerClient::new(suite.channel());
    let mut stream = client
        // 40 MiB: far more than the flow-control windows of both hops, so
        // the stream stays open until this client has read nearly all of it.
        .ping_stream(to(
            "browser",
            PingStreamRequest {
                count: 40,
                size: 1 << 20,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    // Read slowly, past the idle limit: the open stream counts as activity.
    let mut n = 1;
    while let Some(_r) = stream.message().await.unwrap() {
        n += 1;
        if n % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(n, 40);
    let w = suite.worker("browser").await;
    assert_eq!(
        w.pid, first.pid,
        "browser was restarted under an open stream"
    );
}

#[tokio::test]
async fn deadlines_are_honoured_through_the_router() {
    // A browser that never gets ready: the call must end at its deadline,
    // not at the 10 s ready timeout.
    let suite = Suite::start(
        "[supervisor]\nready_timeout_ms = 10000\n[workers.browser]\ncommand = [\"/bin/sh\", \"-c\", \"exec sleep 60\"]\n",
    );
    let mut browser = BrowserClient::new(suite.channel());
    let mut req = tonic::Request::new(GetStatusRequest {});
    req.set_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let err = browser.get_status(req).await.unwrap_err();
    let took = t.elapsed();
    assert!(
        matches!(
            err.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(1), "call took {took:?}");
}

#[tokio::test]
async fn a_call_to_a_worker_that_is_not_running_fails_within_100_ms() {
    // capture never gets ready (starting for 10 s); agents crash-loops
    // (restarting). Neither may hold a call for more than 100 ms.
    let suite = Suite::start(
        "[supervisor]\nready_timeout_ms = 10000\nbackoff_initial_ms = 5000\nbackoff_max_ms = 5000\n\
         [workers.capture]\ncommand = [\"/bin/sh\", \"-c\", \"exec sleep 60\"]\n\
         [workers.agents]\ncommand = [\"/bin/sh\", \"-c\", \"exit 1\"]\n",
    );
    suite.wait_state("agents", "restarting", T).await;
    suite.wait_state("capture", "starting", T).await;
    let _ = suite.worker("capture").await; // warm the connection
    let mut capture =
        cowork_proto::pb::capture::capture_client::CaptureClient::new(suite.channel());
    let mut chat = cowork_proto::pb::chat::chat_client::ChatClient::new(suite.channel());
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        let err = capture
            .get_status(cowork_proto::pb::capture::GetStatusRequest {})
            .await
            .unwrap_err();
        slowest = slowest.max(t.elapsed());
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        assert!(
            err.message().contains("capture-agent is starting"),
            "{}",
            err.message()
        );

        let t = Instant::now();
        let err = chat
            .get_status(cowork_proto::pb::chat::GetStatusRequest {})
            .await
            .unwrap_err();
        slowest = slowest.max(t.elapsed());
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        let msg = err.message();
        assert!(
            msg.contains("agents-agent restarting, attempt 1/5, next try in")
                && msg.contains("exited with code 1"),
            "{msg}"
        );
    }
    assert!(
        slowest < Duration::from_millis(100),
        "slowest UNAVAILABLE took {slowest:?}"
    );
}

#[tokio::test]
async fn unknown_services_are_unimplemented_not_hung() {
    let suite = Suite::start("");
    let out = Command::new(python())
        .arg(repo_root().join("tests/python/thin_client.py"))
        .arg("unknown-service")
        .arg(suite.paths.public_socket())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("UNIMPLEMENTED") && text.contains("cowork.nothing.v1.Nope"),
        "{text}"
    );
}

#[tokio::test]
async fn another_uid_cannot_use_the_socket() {
    use std::os::unix::fs::PermissionsExt;
    let suite = Suite::start("");
    suite.wait_state("agents", "running", T).await;
    let me = nix::unistd::geteuid();
    let nobody = nix::unistd::User::from_name("nobody").ok().flatten();
    let run_as_nobody = me.is_root() && nobody.is_some() && which("setpriv");
    if !run_as_nobody {
        // Not root here: the modes are the guard; assert them.
        let m = std::fs::metadata(&suite.paths.run_dir)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o700);
        return;
    }
    let nobody = nobody.unwrap();
    let ctl_as_nobody = || {
        Command::new("setpriv")
            .args([
                &format!("--reuid={}", nobody.uid),
                &format!("--regid={}", nobody.gid),
                "--clear-groups",
            ])
            .arg(bin("coworkctl"))
            .arg("--home")
            .arg(suite.home.path())
            .arg("status")
            .output()
            .unwrap()
    };
    // 1. The 0700 run dir stops it at the filesystem.
    let out = ctl_as_nobody();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    // 2. With the modes opened up, the server's peer-uid check refuses it.
    //    bin_dir must be reachable too (it normally is: target/ is 0755).
    let set = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    set(suite.home.path(), 0o711);
    set(&suite.paths.run_dir, 0o711);
    set(&suite.paths.public_socket(), 0o666);
    let out = ctl_as_nobody();
    set(&suite.paths.public_socket(), 0o600);
    set(&suite.paths.run_dir, 0o700);
    set(suite.home.path(), 0o700);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        err.contains("PermissionDenied") && err.contains("is not this daemon's uid"),
        "{err}"
    );
}

fn which(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn a_python_grpcio_client_uses_health_reflection_and_status() {
    let suite = Suite::start("");
    suite.wait_state("capture", "running", T).await;
    suite.wait_state("agents", "running", T).await;
    let out = Command::new(python())
        .arg(repo_root().join("tests/python/thin_client.py"))
        .arg("check")
        .arg(suite.paths.public_socket())
        .arg(repo_root().join("proto/proto"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python client failed: {out:?}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("client prints JSON");
    assert_eq!(v["health"][""], "SERVING");
    assert_eq!(v["health"]["cowork.system.v1.System"], "SERVING");
    assert_eq!(v["health"]["cowork.chat.v1.Chat"], "SERVING");
    let services = v["reflection"].as_array().unwrap();
    for s in [
        "cowork.system.v1.System",
        "cowork.chat.v1.Chat",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.iter().any(|x| x == s),
            "reflection lacks {s}: {services:?}"
        );
    }
    let workers = v["status"]["workers"].as_array().unwrap();
    let agents = workers.iter().find(|w| w["name"] == "agents").unwrap();
    assert_eq!(agents["state"], "WORKER_STATE_RUNNING");
    assert_eq!(v["chat_pid"], agents["pid"]);
    // grpc-core reads `cowork-trace-id` whether its name is spelled out
    // (the first call) or an index into the connection's HPACK table.
    let ids: Vec<&str> = v["trace_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.as_str())
        .collect();
    assert_eq!(ids.len(), 3, "{v}");
    assert!(
        ids.iter()
            .all(|i| i.len() == 32 && i.bytes().all(|b| b.is_ascii_hexdigit())),
        "{ids:?}"
    );
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
}
