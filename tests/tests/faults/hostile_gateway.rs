//! Hostile inputs 1, 4 and 5: the gateway.

use super::{engine_config, gateway_on, T};
use cowork_e2e::*;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A listener that counts the connections it receives.
fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            if c.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (port, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_redirects_gets_a_502_and_the_prompt_goes_nowhere_else() {
    let (elsewhere, reached) = counting_listener();
    let engine = hostile("redirect", &[&elsewhere.to_string()]);
    let s = Suite::start(&engine_config("lan", engine.port));
    s.wait_state("agents", "running", T).await;
    let (port, key) = gateway_on(&s);
    let tries = 3;
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
        let (status, body) = post_json(
            port,
            &key,
            path,
            r#"{"model":"hostile-model","messages":[{"role":"user","content":"a secret prompt"}],"prompt":"p","input":"i"}"#,
        );
        assert_eq!(status, 502, "{path}: {body}");
        assert!(
            body.contains("redirect") && body.contains(&engine.port.to_string()),
            "the 502 names the engine and the redirect: {body}"
        );
        assert!(!body.contains("Location"), "{body}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the redirect target received a connection"
    );
    record_fault(
        "gateway: a LAN engine answers 307 to another host",
        tries,
        "nothing (502 naming the engine; the other host got no connection)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_and_the_spec_need_the_key() {
    let s = Suite::start("");
    s.wait_state("agents", "running", T).await;
    let (port, key) = gateway_on(&s);
    let get = |path: &str, auth: Option<&str>| -> String {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let auth = auth
            .map(|k| format!("Authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    };
    for path in ["/", "/docs", "/openapi.json", "/nope"] {
        let r = get(path, None);
        assert!(r.starts_with("HTTP/1.1 401"), "{path}: {r}");
        assert!(
            !r.contains("openapi") && !r.contains("Cowork local API"),
            "{r}"
        );
    }
    assert!(get("/openapi.json", Some(&key)).starts_with("HTTP/1.1 200"));
    record_fault(
        "gateway: a web page asks for the docs without the key",
        4,
        "nothing (401 on every path)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_idle_sockets_neither_exhaust_agents_agent_nor_stay_forever() {
    let _ = cowork_proto::worker::raise_fd_limit();
    let s = Suite::start("");
    s.wait_state("agents", "running", T).await;
    add_time_server(&s);
    let (port, _) = gateway_on(&s);
    let mut socks = Vec::new();
    for i in 0..1100 {
        let c = std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        socks.push(c);
    }
    // Over the cap: answered 503 and closed at once.
    let mut last = socks.pop().expect("a socket");
    last.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = last.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    let agents = s.worker("agents").await;
    let fds = std::fs::read_dir(format!("/proc/{}/fd", agents.pid))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(fds < 600, "agents-agent holds {fds} descriptors");
    // Everything else still works.
    let engines = s.ctl(&["engines"]);
    ok(&engines);
    let t = ok(&s.ctl(&[
        "mcp",
        "call",
        "time",
        "get_current_time",
        "--args",
        r#"{"timezone":"UTC"}"#,
    ]));
    assert!(t.contains("UTC"), "{t}");
    drop(socks);
    // The slots free up: a real request is served again.
    wait_until(Duration::from_secs(10), "a slot free", || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _ = write!(
            c,
            "OPTIONS /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        );
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 204")
    });
    // Half a request head is cut off after 10 s.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = slow.read(&mut buf).unwrap_or(0);
    let took = started.elapsed();
    assert_eq!(n, 0, "the slow head got an answer instead of a close");
    assert!(
        took >= Duration::from_secs(8) && took < Duration::from_secs(20),
        "closed after {took:?}"
    );
    record_fault(
        "gateway: 1,100 idle connections from a local user",
        1100,
        "nothing (128 served, the rest refused at once; engines and MCP calls answered)",
    );
}
