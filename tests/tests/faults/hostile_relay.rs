//! Hostile input 2: a same-user client that opens big streams and never
//! reads them must cost only itself.

use super::T;
use cowork_e2e::*;
use cowork_proto::pb::worker::{worker_client::WorkerClient, PingRequest, PingStreamRequest};
use std::time::{Duration, Instant};

/// Unread streams the hog holds on its one connection.
const HOG_STREAMS: usize = 4;

fn to<T>(worker: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        cowork_proto::grpc::WORKER_HEADER,
        worker.parse().expect("ascii"),
    );
    r.set_timeout(Duration::from_secs(5));
    r
}

async fn ping(c: &mut WorkerClient<tonic::transport::Channel>) -> Duration {
    let t = Instant::now();
    // The deadline travels as grpc-timeout, but a relayed answer whose
    // body is stalled would wait past it: time it here too.
    tokio::time::timeout(
        Duration::from_secs(5),
        c.ping(to("agents", PingRequest::default())),
    )
    .await
    .expect("a ping from another client answers within 5 s")
    .expect("a ping from another client answers");
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_four_32_mib_streams_stalls_no_one_else() {
    let s = Suite::start("");
    s.wait_state("agents", "running", T).await;
    let mut other = WorkerClient::new(s.channel());
    let mut normal = Duration::ZERO;
    for _ in 0..10 {
        normal = normal.max(ping(&mut other).await);
    }
    // One connection, four streams of 32 MiB each, never read: far more
    // than the flow-control windows and send buffers of both hops (4 MiB a
    // stream, 8 MiB a connection). Two fit in coworkd's buffers; four
    // stalled every caller of the worker when its connection was shared.
    // Opened from a task: the hog's own later calls may wait, and that is
    // its own cost.
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let hog = {
        let (channel, opened) = (s.channel(), opened.clone());
        tokio::spawn(async move {
            let mut hog = WorkerClient::new(channel);
            let mut held = Vec::new();
            for _ in 0..HOG_STREAMS {
                let mut r = tonic::Request::new(PingStreamRequest {
                    count: 32,
                    size: 1 << 20,
                });
                r.metadata_mut().insert(
                    cowork_proto::grpc::WORKER_HEADER,
                    "agents".parse().expect("ascii"),
                );
                held.push(hog.ping_stream(r).await.expect("stream opens").into_inner());
                opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            held
        })
    };
    wait_until(Duration::from_secs(10), "the hog's first streams", || {
        opened.load(std::sync::atomic::Ordering::SeqCst) >= 2
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    // For 30 s, the other client's pings answer as they did before.
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(30) {
        worst = worst.max(ping(&mut other).await);
        n += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("pings: normal worst {normal:?}; with four unread streams, worst of {n}: {worst:?}");
    assert!(
        worst < Duration::from_secs(2).max(normal * 20),
        "a ping took {worst:?} (normally {normal:?})"
    );
    // The hog's streams are still there, unread: it was stalled, not cut.
    let mut held = tokio::time::timeout(Duration::from_secs(10), hog)
        .await
        .expect("the hog's streams open once it is the only one waiting")
        .expect("hog task");
    assert_eq!(held.len(), HOG_STREAMS);
    let first = held[0].message().await.expect("stream").expect("a message");
    assert_eq!(first.payload.len(), 1 << 20);
    record_fault(
        "relay: a client holds four unread 32 MiB streams for 30 s",
        n,
        "nothing (every other client's ping answered within its normal time)",
    );
}
