//! Model lifecycle figures against baselines measured in the same run:
//! - download throughput of `coworkctl models pull` (through coworkd and
//!   agents-agent, fsync before the rename included) vs `curl -o` from the
//!   same loopback nginx (target ≥ 0.9×);
//! - SHA-256 verification (`fetch::sha256_file`, what a pull runs) vs
//!   coreutils' `sha256sum` on the same file (target ≥ 0.9×);
//! - GGUF header read time for the real Gemma 3 270M model, from disk and
//!   over HTTP Range from the loopback nginx;
//! - gateway overhead on time to first token: the `openai` client
//!   streaming through the gateway vs straight to the llama.cpp engine,
//!   alternating request by request (target ≤ 2 ms).

use agents_agent::models::{fetch, source};
use cowork_e2e::*;
use std::process::Command;
use std::time::{Duration, Instant};

const SIZE: usize = 512 * 1024 * 1024;
const RUNS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn mib_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / secs
}

#[tokio::main]
async fn main() {
    let www = tempfile::tempdir().unwrap();
    let big = www.path().join("big.bin");
    random_file(&big, SIZE, 7);
    let web = Nginx::start(www.path(), "4m");
    let suite = Suite::start("");
    suite
        .wait_state("agents", "running", Duration::from_secs(30))
        .await;
    let models = suite.paths.models_dir();
    let scratch = tempfile::tempdir_in(suite.home.path()).unwrap();

    // Download: alternate ours and curl, same file, same disk.
    let (mut ours, mut curl) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let name = format!("b{i}.bin");
        let t = Instant::now();
        ok(&suite.ctl(&["models", "pull", &web.url("big.bin"), "--name", &name]));
        ours.push(t.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(models.join(&name));
        let out = scratch.path().join("c.bin");
        let t = Instant::now();
        let st = Command::new("curl")
            .args(["-sS", "-o"])
            .arg(&out)
            .arg(web.url("big.bin"))
            .status()
            .expect("curl");
        assert!(st.success());
        curl.push(t.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&out);
    }
    let (o, c) = (mib_s(SIZE, median(ours)), mib_s(SIZE, median(curl)));
    println!(
        "download 512 MiB from loopback nginx: ours {o:.0} MiB/s, curl {c:.0} MiB/s, ratio {:.2}× (target ≥ 0.9×)",
        o / c
    );

    // SHA-256 of the same (cached) file.
    let token = tokio_util::sync::CancellationToken::new();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut hashes = (String::new(), String::new());
    for _ in 0..RUNS {
        let t = Instant::now();
        hashes.0 = fetch::sha256_file(&big, &token).unwrap().unwrap();
        ours.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        hashes.1 = sha256sum(&big);
        theirs.push(t.elapsed().as_secs_f64());
    }
    assert_eq!(hashes.0, hashes.1);
    let (o, s) = (mib_s(SIZE, median(ours)), mib_s(SIZE, median(theirs)));
    println!(
        "SHA-256 of 512 MiB: ours {o:.0} MiB/s, sha256sum {s:.0} MiB/s, ratio {:.2}× (target ≥ 0.9×)",
        o / s
    );

    // GGUF header of the real model: from disk (cached), and over HTTP
    // Range in 2 MiB steps from the loopback nginx.
    let model = gemma_model_path();
    std::os::unix::fs::symlink(&model, www.path().join("gemma.gguf")).unwrap();
    let (mut disk, mut http) = (Vec::new(), Vec::new());
    let (mut disk_read, mut http_read, mut kv) = (0, 0, 0);
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let t = Instant::now();
        let f = source::read_file(std::path::Path::new(&model)).unwrap();
        disk.push(t.elapsed().as_secs_f64() * 1000.0);
        (disk_read, kv) = (f.read_bytes, f.metadata.kv.len());
        let t = Instant::now();
        let f = source::read_url(&client, &web.url("gemma.gguf"))
            .await
            .unwrap();
        http.push(t.elapsed().as_secs_f64() * 1000.0);
        http_read = f.read_bytes;
    }
    println!(
        "GGUF header of gemma-3-270m ({kv} keys, 262,144-token vocabulary): from disk {:.1} ms \
         median ({disk_read} bytes read); over HTTP Range {:.1} ms median ({http_read} bytes in \
         2 MiB steps)",
        median(disk),
        median(http)
    );

    // Gateway TTFT overhead.
    drop(suite);
    let engine = start_llama(&[]);
    let suite = Suite::start(&format!(
        "[agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"chat\"\n\
         base_url = \"http://127.0.0.1:{}/v1\"\napi = \"openai\"\n",
        engine.port
    ));
    suite
        .wait_state("agents", "running", Duration::from_secs(30))
        .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ok(&suite.ctl(&["gateway", "enable", "--port", &port.to_string()]));
    let key = ok(&suite.ctl(&["gateway", "key"])).trim().to_string();
    let engine_api = format!("http://127.0.0.1:{}/v1", engine.port);
    let gateway_api = format!("http://127.0.0.1:{port}/v1");
    let v = python_json(
        "gateway_client.py",
        &["ttft", &engine_api, &gateway_api, &key, "gemma3-270m", "60"],
    );
    let list = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (direct, gw) = (list("direct"), list("gateway"));
    let paired = median(gw.iter().zip(&direct).map(|(g, d)| g - d).collect());
    let (d, g) = (median(direct), median(gw));
    println!(
        "time to first token, 60 streamed chats each way, alternating: engine direct {d:.2} ms, \
         through the gateway {g:.2} ms; overhead {:.2} ms on the medians, {paired:.2} ms median \
         of paired differences (target ≤ 2 ms)",
        g - d
    );
}
