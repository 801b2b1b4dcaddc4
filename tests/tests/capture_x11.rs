//! The X11 source against a real X server: Xvfb with openbox (an EWMH
//! window manager), real xterm windows driven by xdotool, the clipboard
//! owned by xclip. scripts/test.sh installs them.

use cowork_e2e::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// Xvfb + openbox on a free display, killed on drop.
struct Display {
    number: u32,
    children: Vec<Child>,
    /// Xvfb's -displayfd pipe, kept open so Xvfb never writes to a closed pipe.
    _displayfd: Option<std::io::BufReader<std::process::ChildStdout>>,
}

impl Display {
    fn start() -> Self {
        // Two Xvfb -displayfd started at once can both claim the same
        // display; start them one at a time, and retry a display whose
        // window manager does not come up.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = String::new();
        for _attempt in 0..3 {
            match Self::try_start() {
                Ok(d) => return d,
                Err(e) => last = e,
            }
        }
        panic!("no X display with openbox after 3 attempts: {last}");
    }

    fn try_start() -> Result<Self, String> {
        // Xvfb picks a free display itself and writes its number to
        // -displayfd; the pipe stays open for Xvfb's lifetime.
        let xvfb = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is installed by scripts/test.sh");
        // Owned by the Display from here, so every error path cleans up.
        let mut d = Self {
            number: 0,
            children: vec![xvfb],
            _displayfd: None,
        };
        let mut reader = std::io::BufReader::new(d.children[0].stdout.take().expect("Xvfb stdout"));
        let mut line = String::new();
        {
            use std::io::BufRead;
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
        }
        d._displayfd = Some(reader);
        d.number = line
            .trim()
            .parse()
            .map_err(|_| format!("Xvfb printed {line:?}, not a display number"))?;
        let number = d.number;
        let wm = Command::new("openbox")
            .arg("--sm-disable")
            .env("DISPLAY", d.name())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openbox is installed by scripts/test.sh");
        d.children.push(wm);
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            let o = d.run("xprop", &["-root", "_NET_SUPPORTING_WM_CHECK"]);
            if o.as_deref().is_some_and(|o| o.contains("window id")) {
                return Ok(d);
            }
            if Instant::now() > deadline {
                let xvfb = d.children[0].try_wait().ok().flatten();
                let wm = d.children[1].try_wait().ok().flatten();
                return Err(format!(
                    "display :{number}: xprop said {o:?}; Xvfb exit {xvfb:?}, openbox exit {wm:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn name(&self) -> String {
        format!(":{}", self.number)
    }

    fn spawn(&self, program: &str, args: &[&str]) -> Child {
        Command::new(program)
            .args(args)
            .env("DISPLAY", self.name())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"))
    }

    /// Run an X client to completion; its stdout when it succeeded.
    fn run(&self, program: &str, args: &[&str]) -> Option<String> {
        let out = Command::new(program)
            .args(args)
            .env("DISPLAY", self.name())
            .stdin(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn xdotool(&self, args: &[&str]) -> String {
        self.run("xdotool", args)
            .unwrap_or_else(|| panic!("xdotool {args:?} failed"))
    }

    /// Open an xterm titled `title` running cat; returns its window id.
    fn xterm(&mut self, title: &str) -> String {
        let child = self.spawn("xterm", &["-T", title, "-e", "cat"]);
        self.children.push(child);
        let mut id = String::new();
        wait_until(T, "the xterm window", || {
            match self.run("xdotool", &["search", "--name", title]) {
                Some(out) if !out.trim().is_empty() => {
                    id = out.lines().next().unwrap_or("").trim().to_owned();
                    true
                }
                _ => false,
            }
        });
        self.xdotool(&["windowactivate", "--sync", &id]);
        id
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        // SIGTERM, so Xvfb removes its socket and lock file.
        for c in self.children.iter_mut().rev() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ctl_json(suite: &Suite, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = suite.ctl(&a);
    assert!(
        out.status.success(),
        "coworkctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Poll until `f` returns Some, or panic with the last value seen.
fn poll<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + T;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => {
                panic!("timed out waiting for {what}: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn records(suite: &Suite, stream: &str) -> Vec<Value> {
    ctl_json(
        suite,
        &["capture", "recent", "--stream", stream, "--limit", "200"],
    )["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn x11_windows_titles_keys_clipboard_and_idle_are_captured() {
    let mut display = Display::start();
    let first = display.xterm("cowork first");
    let config = format!(
        "{FAST}\n[capture]\nsource = \"x11\"\nidle_threshold_s = 4\nkeystroke_debounce_ms = 5000\n"
    );
    let suite = Suite::start_with_env(
        Suite::temp_home(),
        &config,
        vec![("DISPLAY".into(), Some(display.name()))],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(suite.wait_state("capture", "running", T));

    // The active window, from _NET_ACTIVE_WINDOW and WM_CLASS.
    let w = poll("the first window", || {
        let w = ctl_json(&suite, &["capture", "window"]);
        if w["title"] == "cowork first" {
            Ok(w)
        } else {
            Err(w.to_string())
        }
    });
    assert_eq!(w["app"], "XTerm");
    assert_eq!(w["app_id"], "xterm");
    // Input, so the person is present (Xvfb may have counted as idle).
    display.xdotool(&["mousemove", "20", "20"]);
    poll("presence", || {
        let s = ctl_json(&suite, &["capture", "status"]);
        if s["away"].is_null() {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });

    // A title change is a new activity.
    display.xdotool(&["set_window", "--name", "cowork second", &first]);
    poll("the retitled window", || {
        let w = ctl_json(&suite, &["capture", "window"]);
        if w["title"] == "cowork second" {
            Ok(())
        } else {
            Err(w.to_string())
        }
    });

    // Typed keys arrive as a chunk with their app context.
    display.xdotool(&["type", "--delay", "30", "hello x11"]);
    display.xdotool(&["key", "Return"]);
    let chunk = poll("the typed chunk", || {
        let recs = records(&suite, "keystrokes");
        recs.iter()
            .find(|r| r["text"] == "hello x11")
            .cloned()
            .ok_or_else(|| Value::Array(recs).to_string())
    });
    assert_eq!(chunk["app"], "XTerm");
    assert_eq!(chunk["title"], "cowork second");
    assert_eq!(chunk["detail"], "enter");

    // Paste: the CLIPBOARD selection (owned by xclip) is read on Ctrl+V.
    let mut xclip = Command::new("xclip")
        .args(["-selection", "clipboard", "-loops", "5"])
        .env("DISPLAY", display.name())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xclip is installed by scripts/test.sh");
    {
        use std::io::Write;
        let mut stdin = xclip.stdin.take().unwrap();
        stdin.write_all(b"clip from xclip").unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    display.xdotool(&["key", "ctrl+v"]);
    let clip = poll("the paste", || {
        let recs = records(&suite, "clipboard");
        recs.iter()
            .find(|r| r["detail"] == "paste")
            .cloned()
            .ok_or_else(|| Value::Array(recs).to_string())
    });
    assert_eq!(clip["text"], "clip from xclip");
    assert_eq!(clip["app"], "XTerm");
    let _ = xclip.kill();
    let _ = xclip.wait();

    // A password manager marks its copies (KDE's x-kde-passwordManagerHint):
    // that paste is never read; the next ordinary one is.
    let own = |target: &str, text: &str| {
        let mut c = Command::new("xclip")
            .args(["-selection", "clipboard", "-loops", "5", "-t", target])
            .env("DISPLAY", display.name())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("xclip");
        {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        c
    };
    let mut secret = own("x-kde-passwordManagerHint", "s3cret-pw");
    display.xdotool(&["key", "ctrl+v"]);
    std::thread::sleep(Duration::from_millis(300));
    let _ = secret.kill();
    let _ = secret.wait();
    let mut plain = own("UTF8_STRING", "after the secret");
    display.xdotool(&["key", "ctrl+shift+v"]);
    let recs = poll("the paste after the secret", || {
        let recs = records(&suite, "clipboard");
        if recs.iter().any(|r| r["text"] == "after the secret") {
            Ok(recs)
        } else {
            Err(Value::Array(recs).to_string())
        }
    });
    let _ = plain.kill();
    let _ = plain.wait();
    assert_eq!(recs.len(), 2, "the marked paste wrote nothing: {recs:?}");

    // Another window takes focus.
    display.xterm("cowork other");
    poll("the other window", || {
        let w = ctl_json(&suite, &["capture", "window"]);
        if w["title"] == "cowork other" {
            Ok(())
        } else {
            Err(w.to_string())
        }
    });
    let mut titles: Vec<String> = records(&suite, "window")
        .iter()
        .filter(|r| r["kind"] == "activity")
        .map(|r| r["title"].as_str().unwrap_or("").to_owned())
        .collect();
    titles.reverse();
    titles.dedup();
    let pos = |t: &str| titles.iter().position(|x| x == t);
    assert!(
        pos("cowork first") < pos("cowork second") && pos("cowork second") < pos("cowork other"),
        "activities follow the windows in order: {titles:?}"
    );
    assert!(pos("cowork first").is_some());

    // No input for the idle threshold: away; input brings the person back.
    poll("idle", || {
        let s = ctl_json(&suite, &["capture", "status"]);
        if s["away"] == "idle" {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    let seen_idle_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    display.xdotool(&["mousemove", "40", "40"]);
    poll("back from idle", || {
        let s = ctl_json(&suite, &["capture", "status"]);
        if s["away"].is_null() {
            Ok(())
        } else {
            Err(s.to_string())
        }
    });
    let idle = records(&suite, "focus");
    let period = idle
        .iter()
        .find(|r| r["kind"] == "idle" && !r["ended_unix_ms"].is_null())
        .unwrap_or_else(|| panic!("an ended idle period: {idle:?}"));
    // Dated back to the last input, not to when the threshold was crossed.
    let started = period["started_unix_ms"].as_i64().unwrap();
    assert!(
        seen_idle_at - started >= 3_000,
        "idle starts {} ms before it was seen (threshold 4 s)",
        seen_idle_at - started
    );
}

#[test]
fn x11_with_keystrokes_and_clipboard_off_records_no_keys() {
    let mut display = Display::start();
    display.xterm("cowork consent");
    let config = format!("{FAST}\n[capture]\nsource = \"x11\"\nkeystroke_debounce_ms = 300\n");
    let suite = Suite::start_with_env(
        Suite::temp_home(),
        &config,
        vec![("DISPLAY".into(), Some(display.name()))],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(suite.wait_state("capture", "running", T));
    ctl_json(&suite, &["capture", "disable", "keystrokes"]);
    ctl_json(&suite, &["capture", "disable", "clipboard"]);
    display.xdotool(&["type", "--delay", "20", "not recorded"]);
    display.xdotool(&["key", "Return"]);
    // Keys flow again once enabled: proof the hook was really off before.
    ctl_json(&suite, &["capture", "enable", "keystrokes"]);
    std::thread::sleep(Duration::from_millis(300));
    display.xdotool(&["type", "--delay", "20", "recorded"]);
    display.xdotool(&["key", "Return"]);
    let recs = poll("the second chunk", || {
        let recs = records(&suite, "keystrokes");
        if recs.iter().any(|r| r["text"] == "recorded") {
            Ok(recs)
        } else {
            Err(Value::Array(recs).to_string())
        }
    });
    assert!(recs.iter().all(|r| r["text"] != "not recorded"), "{recs:?}");
    assert_eq!(recs.len(), 1, "{recs:?}");
}
