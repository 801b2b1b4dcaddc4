//! The browser through the suite vs Playwright for Python, in the same run,
//! driving the same Debian chromium against the same local pages
//! (tests/python/browser_site.py):
//! - action round trip p50 (navigate, type, click, extract text) through
//!   coworkd → browser-agent → CDP, vs Playwright's in-process p50
//!   (target: ≤ 1.5×);
//! - snapshot characters vs Playwright's aria snapshot of the same pages
//!   (what Playwright MCP sends a model; target: ≤ 50 %);
//! - browser-agent's own RSS, without Chromium (target: ≤ 20 MB);
//! - a scripted (no-model) pass over MiniWoB++ tasks from the PyPI
//!   `miniwob` package's pages: success rate (target ≥ 99 %) and hangs
//!   (target 0).

mod common;

use common::percentile;
use cowork_e2e::*;
use cowork_proto::pb::browser::{self as pb, browser_client::BrowserClient};
use std::process::Command;
use std::time::Instant;
use tonic::transport::Channel;

const ROUNDS: usize = 60;
const EPISODES: usize = 20;

type Client = BrowserClient<Channel>;

fn me() -> Option<pb::Caller> {
    Some(pb::Caller::default())
}

async fn navigate(c: &mut Client, url: &str) -> pb::ActionResponse {
    c.navigate(pb::NavigateRequest {
        caller: me(),
        url: url.into(),
    })
    .await
    .expect("navigate")
    .into_inner()
}

async fn snapshot(c: &mut Client) -> String {
    c.snapshot(pb::SnapshotRequest {
        caller: me(),
        max_chars: 100_000,
    })
    .await
    .expect("snapshot")
    .into_inner()
    .text
}

async fn eval(c: &mut Client, js: &str) -> Result<String, tonic::Status> {
    c.evaluate(pb::EvaluateRequest {
        caller: me(),
        expression: js.into(),
    })
    .await
    .map(|r| r.into_inner().text)
}

fn ref_where(snapshot: &str, want: impl Fn(&str) -> bool) -> Option<String> {
    let line = snapshot.lines().find(|l| want(l))?;
    let start = line.find("[e")? + 1;
    let end = start + line[start..].find(']')?;
    Some(line[start..end].to_owned())
}

/// The text between the first pair of double quotes.
fn quoted(s: &str) -> Option<&str> {
    let a = s.find('"')? + 1;
    let b = a + s[a..].find('"')?;
    Some(&s[a..b])
}

/// One scripted MiniWoB++ episode of `task`: Some(true) when rewarded,
/// Some(false) when not, None when an action failed (counted as a hang
/// when it was a time-out or a lost browser).
async fn episode(c: &mut Client, task: &str) -> Result<bool, tonic::Status> {
    let utterance = eval(c, "core.startEpisodeReal(); core.getUtterance()").await?;
    let utterance: String = serde_json::from_str(&utterance).unwrap_or_default();
    let snap = snapshot(c).await;
    let target = quoted(&utterance).unwrap_or("").to_owned();
    let name = format!("\"{target}\"");
    let click = |r: Option<String>| r.unwrap_or_else(|| "e0".into());
    match task {
        "click-button" => {
            let r = click(ref_where(&snap, |l| {
                l.contains("- button ") && l.contains(&name)
            }));
            c.click(pb::TargetRequest {
                caller: me(),
                r#ref: r,
            })
            .await?;
        }
        "click-link" => {
            let r = click(ref_where(&snap, |l| {
                l.contains("- clickable ") && l.contains(&name)
            }));
            c.click(pb::TargetRequest {
                caller: me(),
                r#ref: r,
            })
            .await?;
        }
        "enter-text" => {
            let field = click(ref_where(&snap, |l| l.contains("- textbox")));
            c.r#type(pb::TypeRequest {
                caller: me(),
                r#ref: field,
                text: target.clone(),
                submit: false,
            })
            .await?;
            let submit = click(ref_where(&snap, |l| l.contains("- button \"Submit\"")));
            c.click(pb::TargetRequest {
                caller: me(),
                r#ref: submit,
            })
            .await?;
        }
        "focus-text" => {
            let field = click(ref_where(&snap, |l| l.contains("- textbox")));
            c.click(pb::TargetRequest {
                caller: me(),
                r#ref: field,
            })
            .await?;
        }
        "click-dialog" => {
            let close = click(ref_where(&snap, |l| {
                l.contains("- button \"Close\"") || l.contains("- button \"close\"")
            }));
            c.click(pb::TargetRequest {
                caller: me(),
                r#ref: close,
            })
            .await?;
        }
        other => panic!("no script for {other}"),
    }
    let reward = eval(c, "WOB_DONE_GLOBAL ? WOB_RAW_REWARD_GLOBAL : null").await?;
    Ok(reward.parse::<f64>().is_ok_and(|r| r > 0.0))
}

fn miniwob_dir() -> Option<std::path::PathBuf> {
    let out = Command::new(python())
        .args(["-c", "import importlib.util, os; s = importlib.util.find_spec('miniwob'); print(os.path.join(os.path.dirname(s.origin), 'html', 'miniwob'))"])
        .output()
        .ok()?;
    let dir = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    dir.join("click-button.html").is_file().then_some(dir)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut site_cmd = Command::new(python());
    site_cmd
        .arg(repo_root().join("tests/python/browser_site.py"))
        .arg(dir.path().join("requests.jsonl"));
    let site = PythonPeer::start(site_cmd, "the test site");
    let base = format!("http://127.0.0.1:{}", site.port);
    let s = Suite::start(&format!("[browser]\nallowed_origins = [\"{base}\"]\n"));
    let mut c = BrowserClient::new(s.channel());
    navigate(&mut c, &format!("{base}/bench")).await;

    // Round trips through coworkd.
    let mut t: [Vec<f64>; 5] = Default::default();
    for i in 0..ROUNDS + 3 {
        let t0 = Instant::now();
        navigate(&mut c, &format!("{base}/bench")).await;
        let t1 = Instant::now();
        let snap = snapshot(&mut c).await;
        let t2 = Instant::now();
        let q = ref_where(&snap, |l| l.contains("textbox \"Query\"")).unwrap();
        let go = ref_where(&snap, |l| l.contains("button \"Go\"")).unwrap();
        c.r#type(pb::TypeRequest {
            caller: me(),
            r#ref: q,
            text: "hello".into(),
            submit: false,
        })
        .await
        .unwrap();
        let t3 = Instant::now();
        c.click(pb::TargetRequest {
            caller: me(),
            r#ref: go,
        })
        .await
        .unwrap();
        let t4 = Instant::now();
        let text = c
            .extract_text(pb::TargetRequest {
                caller: me(),
                r#ref: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .text;
        let t5 = Instant::now();
        assert!(text.contains("Echo: hello"), "{text}");
        if i >= 3 {
            for (k, (a, b)) in [(t0, t1), (t2, t3), (t3, t4), (t4, t5), (t1, t2)]
                .into_iter()
                .enumerate()
            {
                t[k].push((b - a).as_secs_f64() * 1e3);
            }
        }
    }
    let ours: Vec<f64> = t.iter_mut().map(|v| percentile(v, 0.5)).collect();

    // Snapshot sizes of the same pages.
    let pages = [
        "/", "/form", "/pay", "/iframe", "/article", "/many", "/bench",
    ];
    let mut our_chars = Vec::new();
    for p in pages {
        navigate(&mut c, &format!("{base}{p}")).await;
        our_chars.push(snapshot(&mut c).await.chars().count());
    }
    let browser_pid = s.ctl_json(&["browser", "status"])["pid"].as_u64().unwrap() as u32;
    let rss = proc_rss_bytes(browser_pid) as f64 / (1 << 20) as f64;
    let peak = proc_peak_rss_bytes(browser_pid) as f64 / (1 << 20) as f64;

    // Playwright in process, same chromium, same pages.
    let out = Command::new(python())
        .arg(repo_root().join("tests/python/playwright_peer.py"))
        .args([base.as_str(), &ROUNDS.to_string(), &pages.join(",")])
        .output()
        .expect("run playwright_peer.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pw: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    println!(
        "\n## Browser: through the suite vs Playwright for Python (same chromium, same run)\n"
    );
    println!("| action | ours p50 (ms) | Playwright p50 (ms) | ratio |");
    println!("|---|---|---|---|");
    let mut sum = (0.0, 0.0);
    for (k, name) in ["navigate", "type", "click", "extract"].iter().enumerate() {
        let theirs = pw["p50_ms"][name].as_f64().unwrap();
        sum.0 += ours[k];
        sum.1 += theirs;
        println!(
            "| {name} | {:.2} | {:.2} | {:.2}× |",
            ours[k],
            theirs,
            ours[k] / theirs
        );
    }
    println!(
        "| **sequence** | **{:.2}** | **{:.2}** | **{:.2}×** |",
        sum.0,
        sum.1,
        sum.0 / sum.1
    );
    println!(
        "| snapshot (ours only: refs for the next action) | {:.2} | – | – |",
        ours[4]
    );
    println!("\n| page | ours (chars) | Playwright MCP `aria_snapshot(mode=\"ai\")` | ratio | plain `aria_snapshot()` |");
    println!("|---|---|---|---|---|");
    let (mut a, mut b, mut c2) = (0usize, 0usize, 0usize);
    for (p, n) in pages.iter().zip(&our_chars) {
        let theirs = pw["mcp_snapshot_chars"][p].as_u64().unwrap() as usize;
        let plain = pw["aria_snapshot_chars"][p].as_u64().unwrap() as usize;
        a += n;
        b += theirs;
        c2 += plain;
        println!(
            "| {p} | {n} | {theirs} | {:.0} % | {plain} |",
            100.0 * *n as f64 / theirs.max(1) as f64
        );
    }
    println!(
        "| **all** | **{a}** | **{b}** | **{:.0} %** | {c2} ({:.0} %) |",
        100.0 * a as f64 / b.max(1) as f64,
        100.0 * a as f64 / c2.max(1) as f64
    );
    println!("\nbrowser-agent RSS (without Chromium): {rss:.1} MiB now, {peak:.1} MiB peak");

    // MiniWoB++ (scripted, no model).
    match miniwob_dir() {
        None => println!(
            "\nMiniWoB++: the miniwob package is not installed (scripts/bench.sh installs it)"
        ),
        Some(dir) => {
            println!("\n| MiniWoB++ task | episodes | rewarded | hangs |");
            println!("|---|---|---|---|");
            let (mut all, mut won, mut hangs) = (0, 0, 0);
            for task in [
                "click-button",
                "click-link",
                "enter-text",
                "focus-text",
                "click-dialog",
            ] {
                let url = format!("file://{}/{task}.html", dir.display());
                navigate(&mut c, &url).await;
                let (mut ok, mut hung) = (0, 0);
                for _ in 0..EPISODES {
                    match episode(&mut c, task).await {
                        Ok(true) => ok += 1,
                        Ok(false) => {}
                        Err(e)
                            if matches!(
                                e.code(),
                                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                            ) =>
                        {
                            hung += 1;
                            eprintln!("{task}: {e}");
                        }
                        Err(e) => eprintln!("{task}: {}", e.message()),
                    }
                }
                println!("| {task} | {EPISODES} | {ok} | {hung} |");
                all += EPISODES;
                won += ok;
                hangs += hung;
            }
            println!(
                "| **all** | **{all}** | **{won} ({:.1} %)** | **{hangs}** |",
                100.0 * won as f64 / all as f64
            );
        }
    }
}
