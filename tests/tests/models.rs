//! Model downloads, fit checks and the hardware numbers, end to end through
//! coworkd with the real `coworkctl`, against a real nginx on loopback
//! (HTTP Range, a rate-limited path to catch transfers half-way), the real
//! Gemma 3 270M GGUF file, the `gguf` package's reader as ground truth, and
//! the Ollama stand-in (Ollama itself cannot run here) for `/api/show`.

use cowork_e2e::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const MIB: usize = 1024 * 1024;

fn json(o: &Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The last of the JSON lines `models pull --json` prints.
fn last_json(o: &Output) -> Value {
    let text = ok(o);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn failed(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "expected a failure; stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A suite whose agents-agent is up.
async fn started(config: &str) -> Suite {
    let s = Suite::start(config);
    s.wait_state("agents", "running", Duration::from_secs(30))
        .await;
    s
}

fn download(s: &Suite, id: &str) -> Value {
    let l = json(&s.ctl(&["models", "list", "--json"]));
    l["downloads"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["id"] == id))
        .cloned()
        .unwrap_or(Value::Null)
}

fn leftovers(models: &Path) -> Vec<String> {
    std::fs::read_dir(models)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tmp") || n.ends_with(".url"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_verify_their_hash_fall_back_to_mirrors_and_run_in_parallel() {
    let www = tempfile::tempdir().unwrap();
    random_file(&www.path().join("a.bin"), 24 * MIB + 123, 1);
    random_file(&www.path().join("b.bin"), 12 * MIB, 2);
    let sha_a = sha256sum(&www.path().join("a.bin"));
    let web = Nginx::start(www.path(), "4m");
    let s = started("").await;
    let models = s.paths.models_dir();

    // One file, verified against coreutils' hash.
    let out = ok(&s.ctl(&["models", "pull", &web.url("a.bin"), "--sha256", &sha_a]));
    assert!(
        out.contains("done: a.bin") && out.contains("SHA-256 verified"),
        "{out}"
    );
    assert_eq!(sha256sum(&models.join("a.bin")), sha_a);
    assert!(leftovers(&models).is_empty(), "{:?}", leftovers(&models));

    // A wrong hash: an error naming both hashes, and no file left at all.
    let wrong = "0".repeat(64);
    let err = failed(&s.ctl(&[
        "models",
        "pull",
        &web.url("b.bin"),
        "--sha256",
        &wrong,
        "--name",
        "bad.bin",
    ]));
    assert!(
        err.contains("SHA-256 mismatch") && err.contains(&wrong),
        "{err}"
    );
    assert!(!models.join("bad.bin").exists());
    assert!(leftovers(&models).is_empty(), "{:?}", leftovers(&models));
    assert_eq!(download(&s, "bad.bin")["state"], "error");

    // The first URL is missing: the mirror serves it.
    let out = last_json(&s.ctl(&[
        "models",
        "pull",
        &web.url("missing.bin"),
        "--mirror",
        &web.url("b.bin"),
        "--name",
        "mirrored.bin",
        "--json",
    ]));
    assert_eq!(out["state"], "done", "{out}");
    assert_eq!(out["files"][0]["url"], web.url("b.bin"));
    assert!(web.access_log().contains("/missing.bin 404"));
    assert_eq!(
        std::fs::read(models.join("mirrored.bin")).unwrap(),
        std::fs::read(www.path().join("b.bin")).unwrap()
    );

    // Two files in one task, in parallel, with one aggregated progress
    // (JSON lines), reported at most about every 10 MiB.
    let out = ok(&s.ctl(&[
        "models",
        "pull",
        &web.url("slow/a.bin"),
        &web.url("slow/b.bin"),
        "--id",
        "pair",
        "--json",
    ]));
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last["state"], "done", "{out}");
    let total = (36 * MIB + 123) as u64;
    assert_eq!(last["downloaded"], total);
    assert_eq!(last["total"], total);
    // Both files moved at once: some event shows both part-way.
    assert!(
        events.iter().any(|e| {
            let f = e["files"].as_array().unwrap();
            f.iter().all(|f| f["downloaded"].as_u64().unwrap() > 0)
                && f.iter().any(|f| f["state"] == "downloading")
        }),
        "{out}"
    );
    // Start, state changes per file, and 10 MiB steps: far fewer events
    // than the thousands of body chunks.
    assert!(events.len() <= 16, "{} events: {out}", events.len());
    // Throttled progress still rises monotonically.
    let sums: Vec<u64> = events
        .iter()
        .map(|e| e["downloaded"].as_u64().unwrap())
        .collect();
    assert!(sums.windows(2).all(|w| w[0] <= w[1]), "{sums:?}");

    // list shows the files; rm deletes a task's files and its record.
    let l = json(&s.ctl(&["models", "list", "--json"]));
    let names: Vec<&str> = l["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"a.bin") && names.contains(&"b.bin"), "{l}");
    let table = ok(&s.ctl(&["models", "list"]));
    assert!(
        table.contains("mirrored.bin") && table.contains("pair"),
        "{table}"
    );
    ok(&s.ctl(&["models", "rm", "pair"]));
    assert!(!models.join("b.bin").exists());
    assert_eq!(download(&s, "pair"), Value::Null);
    ok(&s.ctl(&["models", "rm", "mirrored.bin"]));
    assert!(!models.join("mirrored.bin").exists());
    let err = failed(&s.ctl(&["models", "rm", "never-was"]));
    assert!(err.contains("no download or model file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_save_paths_are_refused_with_nothing_written_or_fetched() {
    let www = tempfile::tempdir().unwrap();
    random_file(&www.path().join("m.bin"), MIB, 3);
    let web = Nginx::start(www.path(), "4m");
    let s = started("").await;
    let models = s.paths.models_dir();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(&models).unwrap();
    std::os::unix::fs::symlink(outside.path(), models.join("evil")).unwrap();
    let abs = outside.path().join("abs.bin");
    let abs = abs.to_str().unwrap();
    for name in [
        "../../x.bin",
        "../x.bin",
        abs,
        "evil/x.bin",
        "evil/sub/x.bin",
        "ok/../../x.bin",
    ] {
        let err = failed(&s.ctl(&["models", "pull", &web.url("m.bin"), "--name", name]));
        assert!(
            err.contains("outside of the models directory"),
            "{name}: {err}"
        );
    }
    // A URL whose last segment is not a file name needs --name.
    let err = failed(&s.ctl(&["models", "pull", &web.url("a/..")]));
    assert!(err.contains("is not a file name"), "{err}");
    // Nothing was written outside, nothing fetched, no sidecar made.
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(!s.home.path().join("x.bin").exists());
    assert!(!s.home.path().parent().unwrap().join("x.bin").exists());
    assert!(!web.access_log().contains("/m.bin"), "{}", web.access_log());
    assert!(leftovers(&models).is_empty());
    // Bad URLs and hashes are refused before anything starts.
    let err = failed(&s.ctl(&["models", "pull", "file:///etc/passwd"]));
    assert!(err.contains("not an http:// or https:// URL"), "{err}");
    let err = failed(&s.ctl(&["models", "pull", &web.url("m.bin"), "--sha256", "abc"]));
    assert!(err.contains("64 hex digits"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_transfer_resumes_after_restart_and_a_cancelled_one_on_pull() {
    let www = tempfile::tempdir().unwrap();
    let big = www.path().join("big.bin");
    random_file(&big, 40 * MIB, 4);
    let sha = sha256sum(&big);
    let web = Nginx::start(www.path(), "4m");
    let s = started("").await;
    let models = s.paths.models_dir();
    let tmp = models.join("big.bin.tmp");
    let url = web.url("slow/big.bin");
    let tmp_len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);

    // kill -9 agents-agent half-way: coworkd restarts it, and the record in
    // cowork.db resumes the transfer with a Range request.
    let out = ok(&s.ctl(&["models", "pull", &url, "--sha256", &sha, "--detach"]));
    assert!(out.contains("started big.bin"), "{out}");
    wait_until(Duration::from_secs(30), "8 MiB on disk", || {
        tmp_len(&tmp) >= 8 * MIB as u64
    });
    let before = s.worker("agents").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(before.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let cut = tmp_len(&tmp);
    assert!(cut < 40 * MIB as u64, "finished before the kill");
    s.wait_worker(
        "agents",
        "running (restarted)",
        Duration::from_secs(30),
        |w| w.pid != before.pid && state(w) == "running",
    )
    .await;
    let d = wait_for(
        Duration::from_secs(60),
        "the resumed download to end",
        || {
            let d = download(&s, "big.bin");
            (d["state"] == "done" || d["state"] == "error").then_some(d)
        },
    );
    assert_eq!(d["state"], "done", "{d}");
    let resumed = d["files"][0]["resumed_from"].as_u64().unwrap();
    assert!(
        resumed >= cut.min(8 * MIB as u64) && resumed > 0,
        "resumed at {resumed}, cut at {cut}"
    );
    assert_eq!(sha256sum(&models.join("big.bin")), sha);
    assert!(
        web.access_log()
            .contains(&format!("/slow/big.bin 206 \"bytes={resumed}-\"")),
        "{}",
        web.access_log()
    );
    assert!(leftovers(&models).is_empty());

    // Cancel half-way: the partial file and its URL marker stay; the same
    // pull resumes from them and verifies.
    ok(&s.ctl(&["models", "rm", "big.bin"]));
    ok(&s.ctl(&["models", "pull", &url, "--sha256", &sha, "--detach"]));
    wait_until(Duration::from_secs(30), "4 MiB on disk", || {
        tmp_len(&tmp) >= 4 * MIB as u64
    });
    let out = ok(&s.ctl(&["models", "cancel", "big.bin"]));
    assert!(out.contains("cancelled big.bin"), "{out}");
    assert_eq!(download(&s, "big.bin")["state"], "cancelled");
    let kept = tmp_len(&tmp);
    assert!(kept >= 4 * MIB as u64);
    assert_eq!(
        std::fs::read_to_string(models.join("big.bin.url")).unwrap(),
        url
    );
    // Nothing moves after a cancel.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(tmp_len(&tmp), kept);
    let out = ok(&s.ctl(&["models", "pull", &url, "--sha256", &sha]));
    assert!(out.contains("SHA-256 verified, resumed at"), "{out}");
    assert_eq!(sha256sum(&models.join("big.bin")), sha);
    assert!(
        web.access_log()
            .contains(&format!("/slow/big.bin 206 \"bytes={kept}-\"")),
        "{}",
        web.access_log()
    );
    // A new task with a running task's id replaces it: the old one stops
    // and the new one resumes from what it wrote.
    let r_tmp = models.join("r.bin.tmp");
    ok(&s.ctl(&[
        "models", "pull", &url, "--id", "r1", "--name", "r.bin", "--detach",
    ]));
    wait_until(Duration::from_secs(30), "2 MiB on disk", || {
        tmp_len(&r_tmp) >= 2 * MIB as u64
    });
    let last = last_json(&s.ctl(&[
        "models", "pull", &url, "--id", "r1", "--name", "r.bin", "--sha256", &sha, "--json",
    ]));
    assert_eq!(last["state"], "done", "{last}");
    assert!(
        last["files"][0]["resumed_from"].as_u64().unwrap() >= 2 * MIB as u64,
        "{last}"
    );
    assert_eq!(sha256sum(&models.join("r.bin")), sha);
    let l = json(&s.ctl(&["models", "list", "--json"]));
    assert_eq!(
        l["downloads"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["id"] == "r1")
            .count(),
        1
    );

    // A partial file from another URL is not resumed (the .url marker
    // differs): it starts over from byte 0.
    ok(&s.ctl(&["models", "rm", "big.bin"]));
    std::fs::write(&tmp, b"stale bytes from elsewhere").unwrap();
    std::fs::write(models.join("big.bin.url"), "http://elsewhere/big.bin").unwrap();
    let last = last_json(&s.ctl(&[
        "models",
        "pull",
        &web.url("big.bin"),
        "--sha256",
        &sha,
        "--json",
    ]));
    assert_eq!(last["state"], "done");
    assert_eq!(last["files"][0]["resumed_from"], 0);
    assert_eq!(sha256sum(&models.join("big.bin")), sha);
    // A partial file that is already whole (a stop during verification):
    // the server has nothing left to send (416), so it is only verified.
    ok(&s.ctl(&["models", "rm", "big.bin"]));
    std::fs::copy(&big, &tmp).unwrap();
    std::fs::write(models.join("big.bin.url"), web.url("big.bin")).unwrap();
    let last = last_json(&s.ctl(&[
        "models",
        "pull",
        &web.url("big.bin"),
        "--sha256",
        &sha,
        "--json",
    ]));
    assert_eq!(last["state"], "done", "{last}");
    assert_eq!(last["files"][0]["resumed_from"], 40 * MIB as u64);
    assert!(
        web.access_log()
            .contains(&format!("/big.bin 416 \"bytes={}-\"", 40 * MIB)),
        "{}",
        web.access_log()
    );
}

fn fixture_read(path: &str) -> Value {
    python_json("gguf_fixtures.py", &["read", path])[path].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fit_reads_a_file_a_url_by_range_and_ollama_and_system_matches_the_machine() {
    let model = gemma_model_path();
    let want = fixture_read(&model);
    let est = &want["kv_estimate"];
    let size = std::fs::metadata(&model).unwrap().len();
    let www = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&model, www.path().join("gemma.gguf")).unwrap();
    let web = Nginx::start(www.path(), "4m");
    // Ollama's view of the same model: its GGUF keys as JSON (Ollama leaves
    // the tokenizer arrays out of /api/show).
    let info: serde_json::Map<String, Value> = want["kv"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.starts_with("tokenizer."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let show_dir = tempfile::tempdir().unwrap();
    let show = show_dir.path().join("show.json");
    std::fs::write(
        &show,
        serde_json::json!({"model": "gemma3:270m", "size": size, "model_info": info}).to_string(),
    )
    .unwrap();
    let ollama = ollama_standin_with(&[], 0, None, &[("STANDIN_SHOW", show.as_path())]);
    let s = started(&format!(
        "[agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"ollama\"\n\
         base_url = \"http://127.0.0.1:{}\"\napi = \"ollama\"\n",
        ollama.port
    ))
    .await;

    let sys = json(&s.ctl(&["system", "--json"]));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sys["total_memory_bytes"], kb * 1024, "{sys}");
    let nproc = String::from_utf8(Command::new("nproc").output().unwrap().stdout).unwrap();
    assert_eq!(
        sys["cpu_count"].as_u64().unwrap(),
        nproc.trim().parse::<u64>().unwrap()
    );
    let used = sys["used_memory_bytes"].as_u64().unwrap();
    assert!(used > 0 && used < kb * 1024, "{sys}");
    let text = ok(&s.ctl(&["system"]));
    assert!(text.contains("memory:") && text.contains("cpu:"), "{text}");

    let check = |fit: &Value, what: &str| {
        assert_eq!(
            fit["architecture"], want["kv"]["general.architecture"],
            "{what}: {fit}"
        );
        assert_eq!(fit["context"], est["ctx"], "{what}: {fit}");
        assert_eq!(fit["kv_per_token_bytes"], est["per_token"], "{what}: {fit}");
        assert_eq!(fit["kv_bytes"], est["cache"], "{what}: {fit}");
        assert_eq!(fit["model_bytes"], size, "{what}: {fit}");
        assert_eq!(fit["total_ram_bytes"], sys["total_memory_bytes"], "{what}");
        let required = size + est["cache"].as_u64().unwrap();
        assert_eq!(fit["required_bytes"], required, "{what}");
        // The verdict follows the seed's rule on the machine's numbers.
        let usable = (kb * 1024).saturating_sub(3 << 30);
        let level = if required > usable {
            "RED"
        } else if required as f64 > usable as f64 * 0.8 {
            "YELLOW"
        } else {
            "GREEN"
        };
        assert_eq!(fit["level"], level, "{what}: {fit}");
        assert!(
            fit["explanation"].as_str().unwrap().starts_with(level),
            "{what}"
        );
    };
    // The local file, with the context the fixture estimated for.
    let local = json(&s.ctl(&["models", "fit", &model, "--ctx", "4096", "--json"]));
    check(&local, "file");
    // Over HTTP: only the metadata, in 2 MiB Range steps.
    let remote = json(&s.ctl(&[
        "models",
        "fit",
        &web.url("gemma.gguf"),
        "--ctx",
        "4096",
        "--json",
    ]));
    check(&remote, "url");
    let read = remote["metadata_bytes"].as_u64().unwrap();
    assert!(
        read.is_multiple_of(2 * MIB as u64) && read < size / 4,
        "read {read} of {size}"
    );
    let log = web.access_log();
    assert!(log.contains("/gemma.gguf 206 \"bytes=0-2097151\""), "{log}");
    assert!(!log.contains("/gemma.gguf 200"), "{log}");
    // From Ollama's /api/show and /api/tags.
    let o = json(&s.ctl(&[
        "models",
        "fit",
        "ollama:gemma3:270m",
        "--ctx",
        "4096",
        "--json",
    ]));
    check(&o, "ollama");
    let err = failed(&s.ctl(&["models", "fit", "ollama:nope"]));
    assert!(err.contains("has no model \"nope\""), "{err}");
    // The configured budget applies without --ctx (default 4096), and a
    // context above the model's maximum is capped at it.
    let d = json(&s.ctl(&["models", "fit", &model, "--json"]));
    assert_eq!(d["context"], est["ctx"]);
    let capped = json(&s.ctl(&["models", "fit", &model, "--ctx", "100000000", "--json"]));
    assert_eq!(capped["context"], capped["context_max"]);
    let words = ok(&s.ctl(&["models", "fit", &model]));
    assert!(
        words.contains("KV cache") && words.contains("GB"),
        "{words}"
    );
    // Not a GGUF file: a clear error.
    let junk = show_dir.path().join("junk.gguf");
    std::fs::write(&junk, b"PK\x03\x04 zip, not a model").unwrap();
    let err = failed(&s.ctl(&["models", "fit", junk.to_str().unwrap()]));
    assert!(err.contains("not a GGUF file"), "{err}");
}
