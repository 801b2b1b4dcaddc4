//! What the web UI costs (issue 23), against baselines of the same run:
//! - coworkd's binary: the bytes of the UI's code (`coworkd::ui`,
//!   tonic-web, hyper's HTTP/1 server) by symbol size (`nm`), plus the
//!   page's files, against the whole binary (the descriptor set the page reads is not counted: it is
//!   in the binary for reflection anyway);
//! - coworkd's RSS before a browser, with one tab open (WatchHealth
//!   streaming, approvals polled), and after it closed;
//! - first contentful paint and time to live data of the page in Debian's
//!   headless chromium, against the same files served by nginx.
//!
//! Targets: ≤ 2 MB of binary, ≤ 5 MB RSS with a tab open, first paint
//! ≤ 300 ms. Run with `scripts/bench.sh` (release binaries); figures, not
//! pass/fail.

use cowork_e2e::*;
use std::time::Duration;

const LOADS: usize = 20;

/// Bytes of the symbols in `bin` whose demangled name contains one of
/// `needles`, and of all symbols.
fn symbol_bytes(bin: &std::path::Path, needles: &[&str]) -> (u64, u64) {
    let out = std::process::Command::new("nm")
        .args(["-S", "-C", "--size-sort"])
        .arg(bin)
        .output()
        .expect("run nm (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut ours, mut all) = (0, 0);
    for line in text.lines() {
        let mut f = line.splitn(4, ' ');
        let (Some(_), Some(size), Some(_), Some(name)) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let Ok(size) = u64::from_str_radix(size, 16) else {
            continue;
        };
        all += size;
        if needles.iter().any(|n| name.contains(n)) {
            ours += size;
        }
    }
    (ours, all)
}

fn main() {
    let coworkd = bin("coworkd");
    let file = std::fs::metadata(&coworkd).expect("coworkd").len();
    // The UI's own code, tonic-web, and what only the UI instantiates in
    // coworkd: hyper's HTTP/1 server (the socket is HTTP/2 only) and the
    // relay's upstream over tonic's body type. hyper's HTTP/1 code that is
    // not named for the server side is shared with the OTLP exporter's
    // client: counted only in the upper bound.
    let ours = [
        "coworkd::ui::",
        "tonic_web::",
        "hyper::server::conn::http1::",
        "role::Server",
        "Upstream<tonic::body::Body>",
    ];
    let (code, symbols) = symbol_bytes(&coworkd, &ours);
    let (code_upper, _) = symbol_bytes(&coworkd, &[&ours[..], &["hyper::proto::h1::"]].concat());
    let ui_dir = repo_root().join("coworkd/ui");
    let assets: u64 = std::fs::read_dir(&ui_dir)
        .expect("coworkd/ui")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!("== web UI (issue 23), release binaries");
    println!(
        "binary: coworkd {:.2} MB; UI code {:.1} to {:.1} KB (of {:.2} MB in symbols) + page files {:.1} KB = {:.1} to {:.1} KB, {:.2} to {:.2}% of the binary (target ≤ 2 MB)",
        file as f64 / 1e6,
        code as f64 / 1e3,
        code_upper as f64 / 1e3,
        symbols as f64 / 1e6,
        assets as f64 / 1e3,
        (code + assets) as f64 / 1e3,
        (code_upper + assets) as f64 / 1e3,
        100.0 * (code + assets) as f64 / file as f64,
        100.0 * (code_upper + assets) as f64 / file as f64
    );

    let s = Suite::start("");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(s.wait_state("agents", "running", Duration::from_secs(30)));
    rt.block_on(s.wait_state("capture", "running", Duration::from_secs(30)));
    let url = s.ctl_json(&["ui", "--no-open"])["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let nginx = Nginx::start(&ui_dir, "1m");
    let v = python_json(
        "ui_bench.py",
        &[
            &url,
            &nginx.url("/index.html"),
            &s.coworkd_pid().to_string(),
            &LOADS.to_string(),
        ],
    );
    let kib = |k: &str| v[k].as_f64().unwrap_or(0.0);
    println!(
        "coworkd RSS: {:.1} MB before a browser, {:.1} MB with a tab open (+{:.2} MB; target ≤ 5 MB), {:.1} MB after it closed",
        kib("rss_before_kib") / 1024.0,
        kib("rss_tab_open_kib") / 1024.0,
        (kib("rss_tab_open_kib") - kib("rss_before_kib")) / 1024.0,
        kib("rss_after_close_kib") / 1024.0
    );
    let ms = |k: &str, q: &str| v[k][q].as_f64().unwrap_or(f64::NAN);
    println!(
        "first contentful paint over {LOADS} loads: p50 {:.0} ms, max {:.0} ms (target ≤ 300 ms); \
         the same files from nginx: p50 {:.0} ms, max {:.0} ms (×{:.2}); first load after sign-in {:.0} ms",
        ms("fcp_ms", "p50"),
        ms("fcp_ms", "max"),
        ms("baseline_fcp_ms", "p50"),
        ms("baseline_fcp_ms", "max"),
        ms("fcp_ms", "p50") / ms("baseline_fcp_ms", "p50"),
        v["cold"]["fcp_ms"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "live data (workers shown from WatchHealth/Status): p50 {:.0} ms, max {:.0} ms; first load with the code exchange {:.0} ms",
        ms("live_ms", "p50"),
        ms("live_ms", "max"),
        v["cold"]["live_ms"].as_f64().unwrap_or(f64::NAN)
    );
}
