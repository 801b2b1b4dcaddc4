//! Proactive notifications and the machine's heat, end to end, against a
//! real notification server: Debian's `dunst` on a private session bus
//! (`dbus-daemon --session`) under Xvfb. What dunst received is read back
//! with `dunstctl history`; the person's answers are dunst's own actions
//! (`dunstctl action`, `dunstctl close`), which coworkd maps back to
//! agents-agent. The heat comes from a sysfs directory the test writes.

use cowork_e2e::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Xvfb, a private session bus and dunst; killed on drop.
struct Desktop {
    children: Vec<Child>,
    bus: String,
    display: String,
    _xvfb: Xvfb,
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Desktop {
    fn start() -> Self {
        let xvfb = Xvfb::start();
        let display = xvfb.display.clone();
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let mut line = String::new();
        {
            use std::io::BufRead;
            let out = dbus.stdout.take().unwrap();
            std::io::BufReader::new(out).read_line(&mut line).unwrap();
        }
        let bus = line.trim().to_owned();
        let mut d = Desktop {
            children: vec![dbus],
            bus,
            display,
            _xvfb: xvfb,
        };
        wait_until(Duration::from_secs(10), "Xvfb", || {
            std::path::Path::new(&format!("/tmp/.X11-unix/X{}", &d.display[1..])).exists()
        });
        let dunst = Command::new("dunst")
            .env("DISPLAY", &d.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &d.bus)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dunst (scripts/peers.sh installs it)");
        d.children.push(dunst);
        wait_until(Duration::from_secs(10), "dunst on the bus", || {
            d.ctl(&["count", "displayed"]).is_some()
        });
        d
    }

    fn ctl(&self, args: &[&str]) -> Option<String> {
        let o = Command::new("dunstctl")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Summaries dunst has shown and closed (its history).
    fn history(&self) -> Vec<String> {
        let Some(text) = self.ctl(&["history"]) else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        v["data"][0]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["summary"]["data"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn displayed(&self) -> u32 {
        self.ctl(&["count", "displayed"])
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn notifications(suite: &Suite) -> Vec<Value> {
    suite.ctl_json(&["notifications", "list"])["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn find(suite: &Suite, title_part: &str) -> Option<Value> {
    notifications(suite)
        .into_iter()
        .find(|n| n["title"].as_str().is_some_and(|t| t.contains(title_part)))
}

#[tokio::test]
async fn notifications_reach_a_real_notification_server_and_answers_come_back() {
    let desk = Desktop::start();
    let suite = Suite::start_with_env(
        Suite::temp_home(),
        "[notifications]\nbundle_hold_s = 2\n",
        vec![("DBUS_SESSION_BUS_ADDRESS".into(), Some(desk.bus.clone()))],
    );
    suite.agents_serving().await;
    let flow = suite.home.path().join("n.json");
    std::fs::write(
        &flow,
        r#"{"name": "Tell", "inputs": [{"name": "what"}, {"name": "tier", "default": "urgent"}], "steps": [
              {"id": "n", "type": "notification", "title": "Cowork: ${what}", "body": "from a flow", "tier": "${tier}"}]}"#,
    )
    .unwrap();
    let id = suite.ctl_json(&["automations", "add", &flow.display().to_string()])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Urgent: out at once.
    let run = suite.ctl_json(&["automations", "run", &id, "--var", "what=first"]);
    assert_eq!(run["status"], "done", "{run}");
    let n = wait_for(T, "delivered", || {
        find(&suite, "Cowork: first").filter(|n| n["state"] == "delivered")
    });
    let latency = n["delivered_ms"].as_i64().unwrap() - n["created_ms"].as_i64().unwrap();
    assert!(latency < 1000, "urgent took {latency} ms");
    wait_until(T, "dunst shows it", || desk.displayed() == 1);
    // Accept it on the desktop (dunst's default action): answered here.
    desk.ctl(&["action", "0"]).expect("dunstctl action");
    wait_for(T, "accepted", || {
        find(&suite, "Cowork: first").filter(|n| n["state"] == "accepted")
    });
    // dunst keeps it on screen after the action: close it (already
    // answered, the close changes nothing).
    desk.ctl(&["close"]).expect("dunstctl close");
    wait_until(T, "dunst cleared", || desk.displayed() == 0);
    // Two helpful ones from one flow within the hold: one notification.
    ok(&suite.ctl(&[
        "automations",
        "run",
        &id,
        "--var",
        "what=second",
        "--var",
        "tier=helpful",
    ]));
    ok(&suite.ctl(&[
        "automations",
        "run",
        &id,
        "--var",
        "what=third",
        "--var",
        "tier=helpful",
    ]));
    let b = wait_for(T, "bundle delivered", || {
        find(&suite, "2 updates").filter(|n| n["state"] == "delivered")
    });
    assert_eq!(b["members"].as_array().unwrap().len(), 1, "{b}");
    wait_until(T, "dunst shows the bundle", || desk.displayed() == 1);
    // Dismiss it on the desktop (closed by the person): the answer comes
    // back, and the cooldown holds the next of its kind.
    desk.ctl(&["close"]).expect("dunstctl close");
    wait_for(T, "dismissed", || {
        find(&suite, "2 updates").filter(|n| n["state"] == "dismissed")
    });
    ok(&suite.ctl(&[
        "automations",
        "run",
        &id,
        "--var",
        "what=fourth",
        "--var",
        "tier=helpful",
    ]));
    let d = wait_for(T, "dropped", || {
        find(&suite, "Cowork: fourth").filter(|n| n["state"] != "pending")
    });
    assert_eq!(d["state"], "dropped", "{d}");
    assert!(d["note"].as_str().unwrap().contains("cooldown"), "{d}");
    // What dunst itself received.
    let seen = desk.history();
    assert!(seen.iter().any(|s| s == "Cowork: first"), "{seen:?}");
    assert!(seen.iter().any(|s| s.starts_with("2 updates")), "{seen:?}");
    assert!(!seen.iter().any(|s| s.contains("fourth")), "{seen:?}");
    let status = suite.ctl_json(&["status"]);
    assert_eq!(status["coworkd"]["notifications"], "available", "{status}");
    assert_eq!(find(&suite, "Cowork: first").unwrap()["state"], "accepted");
    let s = suite.ctl_json(&["notifications", "settings"]);
    assert_eq!(s["last_hour"]["urgent"], 1, "{s}");
}

#[tokio::test]
async fn no_session_bus_means_unavailable_and_nothing_crashes() {
    let suite = Suite::start_with_env(
        Suite::temp_home(),
        "",
        vec![("DBUS_SESSION_BUS_ADDRESS".into(), None)],
    );
    suite.agents_serving().await;
    let status = suite.ctl_json(&["status"]);
    assert!(
        status["coworkd"]["notifications"]
            .as_str()
            .unwrap()
            .starts_with("unavailable: no session bus"),
        "{status}"
    );
    let flow = suite.home.path().join("n.json");
    std::fs::write(&flow, r#"{"name": "Tell", "steps": [{"id": "n", "type": "notification", "title": "hello", "tier": "urgent"}]}"#).unwrap();
    let id = suite.ctl_json(&["automations", "add", &flow.display().to_string()])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        suite.ctl_json(&["automations", "run", &id])["status"],
        "done"
    );
    let n = wait_for(T, "undelivered", || {
        find(&suite, "hello").filter(|n| n["state"] == "undelivered")
    });
    assert!(n["note"].as_str().unwrap().contains("session bus"), "{n}");
    // Expand still makes a chat thread with its context.
    let e = suite.ctl_json(&["notifications", "expand", n["id"].as_str().unwrap()]);
    assert!(e["thread_id"].as_str().unwrap().starts_with("th"), "{e}");
    assert_eq!(state(&suite.worker("agents").await), "running");
}

#[tokio::test]
async fn heat_pauses_local_ai_and_only_the_person_restores_it() {
    let sys = tempfile::tempdir().unwrap();
    let zone = sys.path().join("thermal_zone0");
    std::fs::create_dir(&zone).unwrap();
    std::fs::write(zone.join("temp"), "45000\n").unwrap();
    std::fs::write(zone.join("trip_point_0_temp"), "80000\n").unwrap();
    std::fs::write(zone.join("trip_point_0_type"), "passive\n").unwrap();
    std::fs::write(zone.join("trip_point_1_temp"), "100000\n").unwrap();
    std::fs::write(zone.join("trip_point_1_type"), "critical\n").unwrap();
    let log = sys.path().join("ollama.log");
    let standin = ollama_standin(&["gemma3:270m"], 0, Some(&log));
    let config = format!(
        "[thermal]\ninterval_s = 1\nsysfs_root = \"{}\"\n[agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"ollama\"\napi = \"ollama\"\nbase_url = \"http://127.0.0.1:{}\"\n",
        sys.path().display(),
        standin.port
    );
    let suite = Suite::start_with_env(
        Suite::temp_home(),
        &config,
        vec![("DBUS_SESSION_BUS_ADDRESS".into(), None)],
    );
    suite.agents_serving().await;
    let chat = |q: &str| suite.ctl(&["chat", q]);
    assert!(chat("hello").status.success(), "{:?}", chat("hello"));
    let heat = || suite.ctl_json(&["system", "heat"]);
    wait_for(T, "nominal", || {
        (heat()["level"] == "nominal").then_some(())
    });
    // Hot: local AI pauses; with no cloud model chosen, chat says so.
    std::fs::write(zone.join("temp"), "86000\n").unwrap();
    let h = wait_for(T, "paused", || {
        Some(heat()).filter(|h| h["mode"] == "local_paused")
    });
    assert_eq!(h["cloud_allowed"], false, "{h}");
    // Ollama was asked to unload its model (keep_alive 0).
    let asked = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        asked
            .lines()
            .any(|l| l.contains("\"keep_alive\": 0") && l.contains("gemma3:270m")),
        "{asked}"
    );
    assert_eq!(suite.ctl_json(&["status"])["coworkd"]["thermal"], "serious");
    let refused = chat("hello again");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("local AI is paused"),
        "{refused:?}"
    );
    // Flapping at the trip point changes nothing.
    std::fs::write(zone.join("temp"), "79000\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(heat()["mode"], "local_paused");
    // Cool: no automatic restore; an offer to restore.
    std::fs::write(zone.join("temp"), "40000\n").unwrap();
    wait_for(T, "cooled", || (heat()["mode"] == "cooled").then_some(()));
    assert!(!chat("still paused?").status.success());
    let ns = notifications(&suite);
    let titles: Vec<&str> = ns.iter().filter_map(|n| n["title"].as_str()).collect();
    assert!(
        titles.contains(&"Local AI paused — machine was getting hot"),
        "{titles:?}"
    );
    assert!(
        titles.contains(&"Cooled down. Tap to restore local AI."),
        "{titles:?}"
    );
    for n in &ns {
        assert!(!n.to_string().to_lowercase().contains("thermal"), "{n}");
    }
    // Accepting the offer restores (as `system restore-local` does).
    let offer = ns
        .iter()
        .find(|n| n["title"] == "Cooled down. Tap to restore local AI.")
        .unwrap();
    let a = suite.ctl_json(&["notifications", "accept", offer["id"].as_str().unwrap()]);
    assert_eq!(a["state"], "accepted", "{a}");
    assert_eq!(heat()["mode"], "normal");
    wait_until(T, "chat answers again", || chat("back?").status.success());
    // Critical stops everything; restore-local by command.
    std::fs::write(zone.join("temp"), "101000\n").unwrap();
    wait_for(T, "all paused", || {
        (heat()["mode"] == "all_paused").then_some(())
    });
    std::fs::write(zone.join("temp"), "40000\n").unwrap();
    wait_for(T, "cooled", || (heat()["mode"] == "cooled").then_some(()));
    assert_eq!(
        suite.ctl_json(&["system", "restore-local"])["mode"],
        "normal"
    );
}

#[tokio::test]
async fn power_profiles_daemon_degraded_by_heat_pauses_local_ai() {
    // A private bus in the role of the system bus, with a stand-in for
    // power-profiles-daemon on it (tests/python/ppd_standin.py).
    let dir = tempfile::tempdir().unwrap();
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon");
    let mut address = String::new();
    {
        use std::io::BufRead;
        std::io::BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
    }
    let address = address.trim().to_owned();
    let state = dir.path().join("degraded");
    std::fs::write(&state, "").unwrap();
    let mut ppd = Command::new(python())
        .arg(repo_root().join("tests/python/ppd_standin.py"))
        .arg(&state)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .stdout(Stdio::piped())
        .spawn()
        .expect("ppd stand-in");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(ppd.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    let empty = dir.path().join("no-zones");
    std::fs::create_dir(&empty).unwrap();
    let config = format!(
        "[thermal]\ninterval_s = 1\nsysfs_root = \"{}\"\n",
        empty.display()
    );
    let suite = Suite::start_with_env(
        Suite::temp_home(),
        &config,
        vec![
            ("DBUS_SYSTEM_BUS_ADDRESS".into(), Some(address.clone())),
            ("DBUS_SESSION_BUS_ADDRESS".into(), None),
        ],
    );
    suite.agents_serving().await;
    let heat = || suite.ctl_json(&["system", "heat"]);
    let h = wait_for(T, "a reading", || {
        Some(heat())
            .filter(|h| h["level"] == "nominal" && !h["source"].as_str().unwrap_or("").is_empty())
    });
    assert!(
        h["source"]
            .as_str()
            .unwrap()
            .contains("power-profiles-daemon: not degraded"),
        "{h}"
    );
    std::fs::write(&state, "high-operating-temperature").unwrap();
    let h = wait_for(T, "paused", || {
        Some(heat()).filter(|h| h["mode"] == "local_paused")
    });
    assert!(
        h["source"]
            .as_str()
            .unwrap()
            .contains("high-operating-temperature"),
        "{h}"
    );
    // A lap on the sensor is not heat.
    std::fs::write(&state, "lap-detected").unwrap();
    wait_for(T, "cooled", || {
        Some(heat()).filter(|h| h["mode"] == "cooled")
    });
    let _ = ppd.kill();
    let _ = bus.kill();
    let _ = ppd.wait();
    let _ = bus.wait();
}
