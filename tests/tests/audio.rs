//! The audio stream end to end (`coworkctl audio`, `cowork.audio.v1`):
//! a real spoken clip (beckett.wav from the useful-moonshine-onnx wheel)
//! replayed by capture-agent's sim audio source through the voice gate
//! into segment files and rows; agents-agent transcribes them with the
//! real whisper.cpp (whisper-rs) and Whisper tiny.en converted from PyPI
//! by scripts/whisper-model.sh; the transcript is searchable with
//! `memory search`; nothing reaches the cloud stand-in
//! (tests/python/cloud_standin.py, a named stand-in: no cloud provider can
//! be reached here) although one is configured with consent to embed; a
//! kill -9 mid-transcription resumes with one transcript per segment;
//! thermal critical pauses transcription until local AI is restored.

use cowork_e2e::*;
use cowork_proto::pb::thermal::{thermal_client::ThermalClient, Reading, RestoreLocalRequest};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(120);

fn json_of(o: &std::process::Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Lower-case words, punctuation dropped.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn segment_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("seg-") && n.ends_with(".wav"))
                .collect()
        })
        .unwrap_or_default()
}

fn config(sim_files: &[String], audio: &str, extra: &str) -> String {
    let files = sim_files
        .iter()
        .map(|f| format!("{f:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{FAST}\n[audio]\nsource = \"sim\"\nsim_files = [{files}]\nsim_speed = 0\n\
         model = \"{}\"\npoll_ms = 100\n{audio}\n[memory]\npoll_ms = 100\n{extra}\n",
        whisper_model_path()
    )
}

/// `clip` three times with 1.5 s of silence between: about 35 s of
/// speech in several segments.
fn long_clip(clip: &str, out: &Path) {
    let mut r = hound::WavReader::open(clip).expect("read the clip");
    let spec = r.spec();
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.expect("sample")).collect();
    let mut w = hound::WavWriter::create(out, spec).expect("write the long clip");
    for _ in 0..3 {
        for s in &samples {
            w.write_sample(*s).unwrap();
        }
        for _ in 0..(spec.sample_rate * 3 / 2) {
            w.write_sample(0i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_is_recorded_with_consent_transcribed_here_and_searchable_and_nothing_leaves() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let cloud = cloud_standin(log.path());
    // A cloud provider with a key, and consent to embed with it: the
    // transcript still never leaves (audio and its text are private).
    let cfg = config(
        &[speech_clip_path()],
        "",
        &format!(
            "embedder = \"openrouter\"\nembed_model = \"text-embedding-3-small\"\n\
             allow_cloud_embeddings = true\n\
             [agents]\nprobe_ports = false\n\
             [agents.providers.openrouter]\nbase_url = \"http://127.0.0.1:{}/v1\"\n",
            cloud.port
        ),
    );
    let s = Suite::start_with_env(
        Suite::temp_home(),
        &cfg,
        vec![("OPENROUTER_API_KEY".into(), Some("or-test-key".into()))],
    );
    s.agents_serving().await;
    let audio_dir = s.home.path().join("audio");

    // Off by default: nothing is recorded until the person turns it on.
    let st = json_of(&s.ctl(&["--json", "audio", "status"]));
    assert_eq!(st["enabled"], false, "{st}");
    assert_eq!(st["recording"]["state"], "off", "{st}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(segment_files(&audio_dir).is_empty());
    let st = json_of(&s.ctl(&["--json", "audio", "status"]));
    assert_eq!(st["transcription"]["state"], "off", "{st}");
    let capture = json_of(&s.ctl(&["--json", "capture", "status"]));
    let audio_stream = capture["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "audio")
        .cloned()
        .unwrap();
    assert_eq!(audio_stream["enabled"], false, "{capture}");

    // Consent: recorded, gated, transcribed.
    let on = json_of(&s.ctl(&["--json", "audio", "enable"]));
    assert_eq!(on["enabled"], true);
    // (Recorded segments reach cowork.db within a flush interval: wait for
    // as many transcripts as the recorder made.)
    wait_until(T, "the clip recorded and transcribed", || {
        let st = json_of(&s.ctl(&["--json", "audio", "status"]));
        st["recording"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("replayed"))
            && st["transcription"]["pending"] == 0
            && st["transcription"]["transcripts"].as_u64() >= Some(1)
            && st["transcription"]["transcripts"] == st["recording"]["segments"]
    });
    let t = json_of(&s.ctl(&["--json", "audio", "transcripts"]));
    let list = t["transcripts"].as_array().unwrap();
    let text: String = list
        .iter()
        .rev()
        .map(|x| x["text"].as_str().unwrap_or("").to_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let heard = words(&text);
    for w in [
        "ever", "tried", "failed", "matter", "try", "again", "fail", "better",
    ] {
        assert!(heard.iter().any(|h| h == w), "{w:?} not in {text:?}: {t}");
    }
    for x in list {
        assert_eq!(x["status"], "done", "{x}");
        assert_eq!(x["model"], "tiny.en", "{x}");
        assert_eq!(x["cloud"], false, "{x}");
        assert_eq!(x["audio_kept"], false, "{x}");
        let audio_ms =
            x["ended_unix_ms"].as_i64().unwrap() - x["started_unix_ms"].as_i64().unwrap();
        for p in x["segments"].as_array().unwrap() {
            let (a, b) = (
                p["start_ms"].as_i64().unwrap(),
                p["end_ms"].as_i64().unwrap(),
            );
            assert!(
                0 <= a && a <= b && b <= audio_ms + 500,
                "{p} in {audio_ms} ms"
            );
        }
    }
    // The gate cut the clip into segments: one row each, each transcribed,
    // each file deleted once its transcript was stored.
    let c = read_db(s.home.path());
    let segments = count(&c, "SELECT count(*) FROM capture_audio_segments");
    assert!(segments >= 1);
    assert_eq!(segments, list.len() as i64);
    assert_eq!(
        count(&c, "SELECT count(*) FROM audio_transcripts WHERE cloud = 0"),
        segments
    );
    assert_eq!(
        count(
            &c,
            "SELECT sum(speech_ms) > 3000 FROM capture_audio_segments"
        ),
        1,
        "the gate heard seconds of speech"
    );
    wait_until(T, "transcribed audio deleted", || {
        segment_files(&audio_dir).is_empty()
    });
    let st = json_of(&s.ctl(&["--json", "audio", "status"]));
    assert_eq!(st["recording"]["source"], "sim", "{st}");
    assert_eq!(st["recording"]["segments"], segments, "{st}");
    assert_eq!(st["transcription"]["model"], "tiny.en", "{st}");
    assert_eq!(st["transcription"]["transcripts"], segments, "{st}");
    assert!(
        st["transcription"]["last_rtf"].as_f64().unwrap() > 0.0,
        "{st}"
    );
    assert!(
        st["transcription"]["cloud"]
            .as_str()
            .unwrap()
            .starts_with("off"),
        "{st}"
    );
    let words_text = ok(&s.ctl(&["audio", "transcripts", "--since", "10m"]));
    assert!(words_text.contains("tiny.en, done"), "{words_text}");

    // Searchable in memory, as activity heard by the microphone.
    let hit = wait_for(T, "the transcript in memory", || {
        let v = json_of(&s.ctl(&["--json", "memory", "search", "fail better"]));
        let hits = v["hits"].as_array()?.clone();
        hits.into_iter().find(|h| {
            h["source_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("audio:"))
        })
    });
    assert_eq!(hit["stream"], "audio", "{hit}");
    assert!(hit["snippet"].as_str().unwrap().contains("Heard"), "{hit}");

    // Nothing left the machine: the cloud stand-in saw no audio and no
    // transcript, although it may embed (with consent) what is not private
    // (the search query "fail better", which the person typed, is).
    std::thread::sleep(Duration::from_secs(2));
    let sent = std::fs::read_to_string(log.path()).unwrap_or_default();
    for w in ["Heard", "tried", "matter", "/audio", "RIFF"] {
        assert!(
            !sent.contains(w),
            "{w:?} reached the cloud stand-in: {sent}"
        );
    }

    // Consent withdrawn: not recorded, and its items leave memory.
    let off = json_of(&s.ctl(&["--json", "audio", "disable"]));
    assert_eq!(off["enabled"], false);
    wait_for(T, "audio items gone from memory", || {
        let v = json_of(&s.ctl(&["--json", "memory", "search", "fail better"]));
        let hits = v["hits"].as_array()?.clone();
        (!hits.iter().any(|h| {
            h["source_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("audio:"))
        }))
        .then_some(())
    });
    let st = json_of(&s.ctl(&["--json", "audio", "status"]));
    assert_eq!(st["recording"]["state"], "off", "{st}");
    wait_until(T, "transcription off", || {
        json_of(&s.ctl(&["--json", "audio", "status"]))["transcription"]["state"] == "off"
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcription_killed_mid_way_resumes_and_critical_heat_pauses_it() {
    let home = Suite::temp_home();
    let clip = home.path().join("long.wav");
    long_clip(&speech_clip_path(), &clip);
    let cfg = config(
        &[clip.display().to_string()],
        "keep_audio = true\nthreads = 1\n",
        "",
    );
    let s = Suite::start_in(home, &cfg);
    s.agents_serving().await;
    let audio_dir = s.home.path().join("audio");
    let c = read_db(s.home.path());

    // Critically hot before anything is heard: recording goes on (capture
    // records), transcription waits.
    let mut thermal = ThermalClient::new(s.channel());
    thermal
        .report(Reading {
            level: "critical".into(),
            source: "e2e".into(),
        })
        .await
        .unwrap();
    s.ctl_json(&["audio", "enable"]);
    let st = wait_for(T, "transcription paused by heat", || {
        let st = json_of(&s.ctl(&["--json", "audio", "status"]));
        (st["transcription"]["state"] == "paused" && st["transcription"]["pending"].as_u64()? >= 2)
            .then_some(st)
    });
    assert!(
        st["transcription"]["detail"]
            .as_str()
            .unwrap()
            .contains("hot"),
        "{st}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&c, "SELECT count(*) FROM audio_transcripts"), 0);
    // Cooling down alone does not restart it; the person restoring local
    // AI does.
    thermal
        .report(Reading {
            level: "nominal".into(),
            source: "e2e".into(),
        })
        .await
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let st = json_of(&s.ctl(&["--json", "audio", "status"]));
    assert_eq!(st["transcription"]["state"], "paused", "{st}");
    thermal.restore_local(RestoreLocalRequest {}).await.unwrap();

    // kill -9 while a segment is being transcribed (one done, more waiting).
    let segments = count(&c, "SELECT count(*) FROM capture_audio_segments");
    assert!(segments >= 2, "{segments} segments");
    // The segment under way, from status ("segment N (… ms of audio)"),
    // with more waiting behind it (the pid read first: the kill follows
    // the status read at once).
    let pid = s.worker("agents").await.pid;
    let seen: i64 = wait_for(T, "a transcription under way", || {
        let st = json_of(&s.ctl(&["--json", "audio", "status"]));
        if st["transcription"]["state"] != "transcribing"
            || st["transcription"]["transcripts"].as_u64()? < 1
            || st["transcription"]["pending"].as_u64()? < 2
        {
            return None;
        }
        st["transcription"]["detail"]
            .as_str()?
            .strip_prefix("segment ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let done_at_kill = count(&c, "SELECT count(*) FROM audio_transcripts");
    assert!(done_at_kill < segments, "all transcribed before the kill");
    // A segment being transcribed has no row until it is done. The one
    // status showed under way is normally cut off; if it finished in the
    // moment between the status read and the kill, the next one was
    // taken (more were waiting): the first without a row is the one the
    // kill cut off, and it must come back transcribed exactly once.
    let in_flight: i64 = c
        .query_row(
            "SELECT min(s.id) FROM capture_audio_segments s
             WHERE s.id >= ?1 AND NOT EXISTS
               (SELECT 1 FROM audio_transcripts t WHERE t.segment_id = s.id)",
            [seen],
            |r| r.get(0),
        )
        .unwrap();
    let in_flight_rows = || {
        count(
            &c,
            &format!("SELECT count(*) FROM audio_transcripts WHERE segment_id = {in_flight}"),
        )
    };
    assert_eq!(in_flight_rows(), 0);
    s.wait_worker("agents", "restarted", T, |w| {
        w.pid != pid && matches!(state(w), "running" | "degraded")
    })
    .await;
    wait_until(T, "every segment transcribed after the restart", || {
        count(&c, "SELECT count(*) FROM audio_transcripts") == segments
    });
    assert_eq!(in_flight_rows(), 1, "segment {in_flight} transcribed once");
    // One transcript per segment, none failed, none lost.
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM capture_audio_segments s JOIN audio_transcripts t
             ON t.segment_id = s.id WHERE t.status IN ('done', 'empty')"
        ),
        segments
    );
    let text: String = {
        let mut st = c
            .prepare("SELECT text FROM audio_transcripts ORDER BY segment_id")
            .unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|t| t.unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let n_better = words(&text).iter().filter(|w| *w == "better").count();
    assert_eq!(n_better, 3, "three times \"fail better\": {text:?}");
    // keep_audio: the files stay, and say so.
    assert_eq!(segment_files(&audio_dir).len() as i64, segments);
    let v = json_of(&s.ctl(&["--json", "audio", "transcripts"]));
    assert!(
        v["transcripts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["audio_kept"] == true),
        "{v}"
    );
}

/// A PulseAudio server of our own (Debian's, on a private socket) with a
/// null sink whose monitor is the default source: what is played into the
/// sink is what a microphone hears. Killed on drop.
struct Pulse {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Pulse {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("native");
        let child = std::process::Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--log-target=stderr",
                &format!(
                    "--load=module-native-protocol-unix socket={} auth-anonymous=1",
                    socket.display()
                ),
                "--load=module-null-sink sink_name=room",
            ])
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start pulseaudio (scripts/peers.sh installs it)");
        let p = Self { child, dir };
        wait_until(Duration::from_secs(20), "pulseaudio answering", || {
            p.pactl(&["set-default-source", "room.monitor"])
        });
        assert!(p.pactl(&["set-default-sink", "room"]));
        p
    }

    fn server(&self) -> String {
        format!("unix:{}", self.dir.path().join("native").display())
    }

    fn pactl(&self, args: &[&str]) -> bool {
        std::process::Command::new("pactl")
            .arg("-s")
            .arg(self.server())
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Play a WAV file into the room (real time).
    fn play(&self, file: &str) {
        let out = std::process::Command::new("paplay")
            .args(["-s", &self.server(), "-d", "room", file])
            .output()
            .expect("paplay");
        assert!(out.status.success(), "paplay: {out:?}");
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_microphone_is_recorded_through_pulseaudio_and_transcribed() {
    let pulse = Pulse::start();
    let cfg = format!(
        "{FAST}\n[audio]\nsource = \"microphone\"\nmodel = \"{}\"\npoll_ms = 100\n",
        whisper_model_path()
    );
    // ALSA's default device goes to PulseAudio while a server runs
    // (libasound2-plugins); capture-agent finds ours through PULSE_SERVER.
    let s = Suite::start_with_env(
        Suite::temp_home(),
        &cfg,
        vec![("PULSE_SERVER".into(), Some(pulse.server()))],
    );
    s.agents_serving().await;
    s.ctl_json(&["audio", "enable"]);
    let st = wait_for(T, "recording from the microphone", || {
        let st = json_of(&s.ctl(&["--json", "audio", "status"]));
        (st["recording"]["state"] == "recording"
            && st["recording"]["detail"]
                .as_str()?
                .starts_with("microphone: "))
        .then_some(st)
    });
    assert_eq!(st["recording"]["source"], "microphone", "{st}");
    // Silence first: nothing is recorded from an empty room.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        json_of(&s.ctl(&["--json", "audio", "status"]))["recording"]["segments"],
        0
    );
    pulse.play(&speech_clip_path());
    let heard = wait_for(T, "the played clip transcribed", || {
        let v = json_of(&s.ctl(&["--json", "audio", "transcripts"]));
        let text = v["transcripts"]
            .as_array()?
            .iter()
            .rev()
            .map(|t| t["text"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let w = words(&text);
        (w.iter().any(|x| x == "tried") && w.iter().any(|x| x == "better")).then_some(text)
    });
    assert!(words(&heard).iter().any(|w| w == "matter"), "{heard}");
    // Off: the device is closed (PulseAudio has no recording stream left).
    s.ctl_json(&["audio", "disable"]);
    wait_until(T, "the microphone closed", || {
        std::process::Command::new("pactl")
            .args(["-s", &pulse.server(), "list", "short", "source-outputs"])
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.is_empty())
    });
}
