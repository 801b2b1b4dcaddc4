//! Hostile input 10: an engine whose streamed answer is one line that
//! never ends, or one event whose short lines never end.

use super::{engine_config, gateway_on, rss_mib, said, T};
use cowork_e2e::*;
use std::io::{Read, Write};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_whose_line_never_ends_ends_in_an_error_with_memory_bounded() {
    let mut tries = 0;
    for mode in ["endless-event", "endless-line"] {
        let engine = hostile(mode, &[]);
        let s = Suite::start(&engine_config("endless", engine.port));
        s.wait_state("agents", "running", T).await;
        let agents = s.worker("agents").await;
        let before = rss_mib(agents.pid);
        let t = std::time::Instant::now();
        let o = s.ctl(&["chat", "hello"]);
        let out = said(&o);
        assert!(!o.status.success(), "{mode}: {out}");
        assert!(out.contains("line over"), "{mode}: {out}");
        let peak = proc_peak_rss_bytes(agents.pid) >> 20;
        eprintln!(
            "{mode}: error after {:?}; RSS {before} MiB before, peak {peak} MiB",
            t.elapsed()
        );
        assert!(
            peak < before + 100,
            "{mode}: peak RSS {peak} MiB (was {before} MiB)"
        );
        tries += 1;
        if mode != "endless-line" {
            continue;
        }
        // Through the gateway the bytes pass through as they come,
        // unbuffered, for as long as the client reads.
        let (port, key) = gateway_on(&s);
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let body = r#"{"model":"hostile-model","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        write!(
            c,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0usize;
        while got < 64 << 20 {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        drop(c);
        let peak = proc_peak_rss_bytes(agents.pid) >> 20;
        eprintln!("the gateway relayed {} MiB; peak RSS {peak} MiB", got >> 20);
        assert!(got >= 64 << 20, "the gateway relayed only {got} bytes");
        assert!(
            peak < before + 100,
            "peak RSS {peak} MiB (was {before} MiB)"
        );
        assert_eq!(s.worker("agents").await.pid, agents.pid);
        tries += 1;
    }
    record_fault(
        "engines: a streamed answer is one line, or one event, that never ends",
        tries,
        "nothing (chat ends in an error at 1 MiB; the gateway relays it unbuffered; RSS bounded)",
    );
}
