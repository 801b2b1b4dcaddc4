//! Harness for the end-to-end tests: start the real `coworkd` (which starts
//! the real workers) in a temporary COWORK_HOME and talk to it over the
//! real socket, with generated clients and with the real `coworkctl`.

use cowork_proto::paths::CoworkPaths;
use cowork_proto::pb::system::{system_client::SystemClient, StatusRequest, WorkerStatus};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Directory holding the built binaries (target/debug).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> → target/debug
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    assert!(
        dir.join("coworkd").exists(),
        "{} has no coworkd: build the binaries first (`cargo build --workspace --bins`, \
         which scripts/test.sh does)",
        dir.display()
    );
    dir.to_path_buf()
}

/// Path of one built binary.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Worker state names as coworkctl prints them.
pub fn state(w: &WorkerStatus) -> &'static str {
    cowork_proto::status::state_name(w.state)
}

/// A running suite in a temporary home. Dropping it shuts coworkd down
/// (SIGTERM, then SIGKILL) and deletes the home.
pub struct Suite {
    /// The temporary home (kept alive with the suite).
    pub home: tempfile::TempDir,
    /// Its layout.
    pub paths: CoworkPaths,
    /// The coworkd process.
    pub coworkd: Option<Child>,
    /// Environment changes for coworkd (and so its workers): `None` removes.
    pub env: Vec<(String, Option<String>)>,
}

/// The sections tests get unless their config has them, so that workers
/// are `running` on a machine with no display and no model engine (where
/// capture and agents are honestly `degraded`):
/// - `[capture]`: a sim source replaying an empty script;
/// - `[agents]`: port probing off and one engine whose model list is served
///   by [`model_list_standin`] in this test process.
pub fn with_capture_default(home: &Path, config: &str) -> String {
    let mut config = config.to_owned();
    if !config.contains("[capture]") {
        let script = home.join("empty.jsonl");
        if !script.exists() {
            std::fs::write(&script, "").expect("write empty sim script");
        }
        config.push_str(&format!(
            "\n[capture]\nsource = \"sim\"\nsim_script = \"{}\"\n",
            script.display()
        ));
    }
    if !config.contains("[agents") {
        config.push_str(&format!(
            "\n[agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"standin\"\n\
             base_url = \"http://127.0.0.1:{}/v1\"\n",
            model_list_standin()
        ));
    }
    config
}

/// A stand-in engine for tests that are not about engines: an HTTP server
/// in this test process (one per process, on a loopback port it returns)
/// that answers every request with a one-model OpenAI model list, so
/// agents-agent finds an engine and reports `running`. It cannot chat;
/// chat tests use the real llama.cpp server or the Ollama stand-in.
pub fn model_list_standin() -> u16 {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *PORT.get_or_init(|| {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind stand-in");
        let port = listener.local_addr().expect("stand-in address").port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = [0u8; 4096];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body =
                        r#"{"object":"list","data":[{"id":"standin-model","object":"model"}]}"#;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        port
    })
}

impl Suite {
    /// Start coworkd with `config` as config.toml and wait until its socket
    /// answers.
    pub fn start(config: &str) -> Self {
        let home = tempfile::Builder::new()
            .prefix("cowork-e2e-")
            .tempdir()
            .expect("temp home");
        Self::start_in(home, config)
    }

    /// Start coworkd in a given home.
    pub fn start_in(home: tempfile::TempDir, config: &str) -> Self {
        Self::start_with_env(home, config, Vec::new())
    }

    /// Start coworkd in a given home with environment changes (`None`
    /// removes a variable).
    pub fn start_with_env(
        home: tempfile::TempDir,
        config: &str,
        env: Vec<(String, Option<String>)>,
    ) -> Self {
        let config = with_capture_default(home.path(), config);
        std::fs::write(home.path().join("config.toml"), config).expect("write config");
        let paths = CoworkPaths::for_home(home.path().to_path_buf());
        let mut suite = Self {
            home,
            paths,
            coworkd: None,
            env,
        };
        suite.spawn_coworkd();
        suite
    }

    /// A fresh temporary home.
    pub fn temp_home() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("cowork-e2e-")
            .tempdir()
            .expect("temp home")
    }

    /// (Re)start the coworkd process and wait for its socket.
    pub fn spawn_coworkd(&mut self) {
        let mut cmd = Command::new(bin("coworkd"));
        cmd.arg("--home")
            .arg(self.home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        self.coworkd = Some(cmd.spawn().expect("spawn coworkd"));
        let sock = self.paths.public_socket();
        wait_until(Duration::from_secs(10), "coworkd socket", || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
    }

    /// The coworkd pid.
    pub fn coworkd_pid(&self) -> u32 {
        self.coworkd.as_ref().expect("coworkd running").id()
    }

    /// A channel to the public socket.
    pub fn channel(&self) -> Channel {
        cowork_proto::uds::channel(&self.paths.public_socket())
    }

    /// A System client on the public socket.
    pub fn system(&self) -> SystemClient<Channel> {
        SystemClient::new(self.channel())
    }

    /// Follow every worker state change (after the current states when
    /// `include_current`).
    pub async fn health_events(
        &self,
        include_current: bool,
    ) -> tonic::Streaming<cowork_proto::pb::system::HealthEvent> {
        self.system()
            .watch_health(cowork_proto::pb::system::WatchHealthRequest { include_current })
            .await
            .expect("System/WatchHealth")
            .into_inner()
    }

    /// One worker's status.
    pub async fn worker(&self, name: &str) -> WorkerStatus {
        let s = self
            .system()
            .status(StatusRequest {})
            .await
            .expect("System/Status")
            .into_inner();
        s.workers
            .into_iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no worker {name} in status"))
    }

    /// Wait until `name` satisfies `pred`, polling Status.
    pub async fn wait_worker(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&WorkerStatus) -> bool,
    ) -> WorkerStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let w = self.worker(name).await;
            if pred(&w) {
                return w;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never became {what} within {timeout:?}; last status: {w:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until `name` is in `state`.
    pub async fn wait_state(&self, name: &str, want: &str, timeout: Duration) -> WorkerStatus {
        self.wait_worker(name, want, timeout, |w| state(w) == want)
            .await
    }

    /// Wait (up to 60 s) until agents-agent serves: running, or degraded
    /// for a reason the test expects (no engine, no embedder).
    pub async fn agents_serving(&self) {
        self.wait_worker("agents", "serving", Duration::from_secs(60), |w| {
            matches!(state(w), "running" | "degraded")
        })
        .await;
    }

    /// `coworkctl --json ARGS`, which must succeed, as JSON.
    pub fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let text = ok(&self.ctl(&a));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// `coworkctl agent run` of `task` with its first model call forced to
    /// the time server's `get_current_time` (as a model as small as Gemma
    /// 3 270M needs), at most 3 steps; the operation as JSON.
    pub fn run_time_task(&self, task: &str) -> serde_json::Value {
        self.ctl_json(&[
            "agent",
            "run",
            "--tool-choice",
            "time/get_current_time",
            "--max-steps",
            "3",
            task,
        ])
    }

    /// Load all-MiniLM-L6-v2 as an embedding session Cowork runs
    /// (`models load --embedding`).
    pub fn load_minilm(&self) {
        let loaded = self.ctl_json(&["models", "load", &minilm_model_path(), "--embedding"]);
        assert_eq!(loaded["session"]["state"], "ready", "{loaded}");
    }

    /// `coworkctl memory import FILE --type KIND --collection C`, which
    /// must succeed; its JSON.
    pub fn memory_import(&self, file: &Path, kind: &str, collection: &str) -> serde_json::Value {
        let file = file.display().to_string();
        self.ctl_json(&[
            "memory",
            "import",
            &file,
            "--type",
            kind,
            "--collection",
            collection,
        ])
    }

    /// Run coworkctl against this suite.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("coworkctl"))
            .arg("--home")
            .arg(self.home.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run coworkctl")
    }

    /// Run coworkctl against this suite with `input` on its stdin (how
    /// secrets are given).
    pub fn ctl_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(bin("coworkctl"))
            .arg("--home")
            .arg(self.home.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run coworkctl");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        child.wait_with_output().expect("coworkctl output")
    }

    /// Run coworkctl against this suite with environment changes (`None`
    /// removes a variable).
    pub fn ctl_env(&self, args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
        let mut cmd = Command::new(bin("coworkctl"));
        cmd.arg("--home")
            .arg(self.home.path())
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.output().expect("run coworkctl")
    }

    /// Replace config.toml (coworkd reloads it live).
    pub fn write_config(&self, config: &str) {
        let tmp = self.home.path().join("config.toml.new");
        std::fs::write(&tmp, with_capture_default(self.home.path(), config)).expect("write config");
        std::fs::rename(&tmp, self.home.path().join("config.toml")).expect("replace config");
    }

    /// Stop coworkd with `signal` and wait for it; returns its exit status.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.coworkd.take().expect("coworkd running");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
        wait_child(&mut child, Duration::from_secs(15))
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        if let Some(mut child) = self.coworkd.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Start one of our binaries with `--home home`, output discarded.
pub fn spawn_quiet(binary: &str, home: &Path) -> Child {
    Command::new(bin(binary))
        .arg("--home")
        .arg(home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"))
}

/// Wait for a child to exit, killing it after `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Poll `cond` every 10 ms until true; panic after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(timeout, what, || cond().then_some(()));
}

/// Poll `find` every 10 ms until it finds something; panic after
/// `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut find: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = find() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process with this pid exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => cowork_proto::lockfile::parse_stat(&stat).0 != Some('Z'),
        Err(_) => false,
    }
}

/// Fast supervision settings for tests.
pub const FAST: &str = "[supervisor]\nbackoff_initial_ms = 100\nbackoff_max_ms = 400\n\
    probe_interval_ms = 200\nprobe_timeout_ms = 300\nprobe_failures = 2\nstop_grace_ms = 1000\n";

/// The Python interpreter with grpcio installed (scripts/test.sh sets
/// `COWORK_TEST_PYTHON`; without it the test fails and says how to run).
pub fn python() -> PathBuf {
    match std::env::var_os("COWORK_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "COWORK_TEST_PYTHON is not set: run the suite through scripts/test.sh, \
             which installs grpcio into a virtualenv and sets it"
        ),
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A process's resident memory in bytes (0 when it is gone).
pub fn proc_rss_bytes(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A process's peak resident memory (VmHWM) in bytes.
pub fn proc_peak_rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A process's user + system CPU time in clock ticks (0 when it is gone).
pub fn proc_cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| cowork_proto::procinfo::cpu_ticks(&s))
        .unwrap_or(0)
}

/// CPU time each thread of a process has run, in nanoseconds, by thread
/// id (from `/proc/PID/task/*/schedstat`; empty when it is gone). Finer
/// than [`proc_cpu_ticks`], for per-call figures: see
/// [`proc_cpu_ns_since`].
pub fn proc_threads_cpu_ns(pid: u32) -> std::collections::HashMap<u32, u64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Default::default();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid = t.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            Some((tid, stat.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// CPU a process ran since `before` (its [`proc_threads_cpu_ns`]), in
/// nanoseconds, thread by thread: a thread started since counts whole; a
/// thread that ended since is left out (its time can no longer be read).
pub fn proc_cpu_ns_since(pid: u32, before: &std::collections::HashMap<u32, u64>) -> u64 {
    proc_threads_cpu_ns(pid)
        .into_iter()
        .map(|(tid, now)| now.saturating_sub(before.get(&tid).copied().unwrap_or(0)))
        .sum()
}

/// [`proc_cpu_ns_since`] split in two: the threads whose name (`comm`)
/// starts with `name`, and the others.
pub fn proc_cpu_ns_since_split(
    pid: u32,
    before: &std::collections::HashMap<u32, u64>,
    name: &str,
) -> (u64, u64) {
    let (mut named, mut rest) = (0, 0);
    for (tid, now) in proc_threads_cpu_ns(pid) {
        let ran = now.saturating_sub(before.get(&tid).copied().unwrap_or(0));
        let comm =
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
        if comm.starts_with(name) {
            named += ran;
        } else {
            rest += ran;
        }
    }
    (named, rest)
}

/// The pids of a process's children (`/proc/PID/task/PID/children`).
pub fn proc_children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A Python peer of tests/python/ that prints its loopback port and
/// serves until killed (on drop).
pub struct PythonPeer {
    /// The peer process.
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PythonPeer {
    /// Start `cmd` (its stdout piped here) and read the port it prints.
    pub fn start(mut cmd: Command, what: &str) -> Self {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let mut line = String::new();
        let _ = std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{what} printed {line:?}, not its port"));
        Self { child, port }
    }
}

/// A running stand-in for Ollama (`tests/python/ollama_standin.py`; Ollama
/// itself cannot run here), killed on drop.
pub type OllamaStandin = PythonPeer;

/// Start the Ollama stand-in serving `models`, answering word by word
/// every `delay_ms`, logging each request to `log` when given.
pub fn ollama_standin(models: &[&str], delay_ms: u32, log: Option<&Path>) -> OllamaStandin {
    ollama_standin_with(models, delay_ms, log, &[])
}

/// [`ollama_standin`] with extra environment (e.g. `STANDIN_SHOW`).
pub fn ollama_standin_with(
    models: &[&str],
    delay_ms: u32,
    log: Option<&Path>,
    env: &[(&str, &Path)],
) -> OllamaStandin {
    let mut cmd = Command::new(python());
    cmd.envs(env.iter().copied());
    cmd.arg(repo_root().join("tests/python/ollama_standin.py"))
        .args(models)
        .env("STANDIN_DELAY_MS", delay_ms.to_string())
        .stderr(Stdio::null());
    if let Some(log) = log {
        cmd.env("STANDIN_LOG", log);
    }
    PythonPeer::start(cmd, "the Ollama stand-in")
}

/// Wait for the first text delta of a chat stream, run `kill` (the
/// engine), and return the error chunk that follows with how long after
/// the kill it came. None when the answer finished without any text (a
/// sampled model may stop at once; the caller asks again), without
/// killing. Panics if the stream never errors after the kill.
pub async fn error_after_kill(
    stream: &mut tonic::Streaming<cowork_proto::pb::chat::ChatChunk>,
    kill: impl FnOnce(),
) -> Option<(String, Duration)> {
    use cowork_proto::pb::chat::chat_chunk::Chunk;
    loop {
        let c = stream.message().await.expect("chunk")?.chunk;
        match c {
            Some(Chunk::Delta(_)) => break,
            Some(Chunk::Error(e)) => panic!("engine error before the kill: {}", e.message),
            _ => {}
        }
    }
    kill();
    let killed = Instant::now();
    let mut error = None;
    while let Some(c) = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("no hang after the kill")
        .expect("stream")
    {
        if let Some(Chunk::Error(e)) = c.chunk {
            error = Some((e.message, killed.elapsed()));
        }
    }
    Some(error.expect("an error chunk after the kill"))
}

/// llama.cpp's own `llama-server` (built by scripts/peers.sh from the
/// llama.cpp source in the llama-cpp-python 0.3.36 sdist) started BY HAND
/// on a loopback port, killed on drop: the REAL local engine of the chat,
/// agent and gateway tests that need an engine someone else runs.
pub struct LlamaServer {
    /// The server process.
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer_file(var: &str, what: &str) -> String {
    match std::env::var(var) {
        Ok(p) if Path::new(&p).is_file() => p,
        Ok(p) => panic!("{var}={p} is not a file: run scripts/peers.sh again"),
        Err(_) => panic!(
            "{var} is not set: run the suite through scripts/test.sh, \
             whose install step (scripts/peers.sh) provides {what} and sets it"
        ),
    }
}

/// The Gemma 3 270M model file. scripts/peers.sh assembles it once, before
/// any test runs, and sets `COWORK_TEST_GEMMA`; tests only read the path.
pub fn gemma_model_path() -> String {
    peer_file("COWORK_TEST_GEMMA", "the Gemma 3 270M model")
}

/// The all-MiniLM-L6-v2 embedding model as GGUF (scripts/peers.sh converts
/// it with scripts/st2gguf_bert.py and sets `COWORK_TEST_MINILM`).
pub fn minilm_model_path() -> String {
    peer_file("COWORK_TEST_MINILM", "the all-MiniLM-L6-v2 GGUF")
}

/// cowork.db of `home`, read only (what a test checks, beside the suite).
pub fn read_db(home: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        home.join("cowork.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open cowork.db")
}

/// The one integer `sql` selects (a count), or a panic naming the query.
pub fn count(c: &rusqlite::Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Whisper tiny.en in whisper.cpp's format (scripts/peers.sh runs
/// scripts/whisper-model.sh and sets `COWORK_TEST_WHISPER`).
pub fn whisper_model_path() -> String {
    peer_file("COWORK_TEST_WHISPER", "the Whisper tiny.en model")
}

/// A spoken clip: beckett.wav from the useful-moonshine-onnx wheel, 16 kHz
/// mono, 10 s ("Ever tried. Ever failed. No matter. Try again. Fail again.
/// Fail better."); `COWORK_TEST_SPEECH`, set by scripts/peers.sh.
pub fn speech_clip_path() -> String {
    peer_file("COWORK_TEST_SPEECH", "the spoken test clip")
}

/// The apps runtime (esbuild, react, react-dom, @google/genai) that
/// scripts/apps-runtime.sh installs (`COWORK_TEST_APPS_RUNTIME`, set by
/// scripts/peers.sh): `[apps] runtime_dir` of the apps tests.
pub fn apps_runtime_dir() -> String {
    let dir = std::env::var("COWORK_TEST_APPS_RUNTIME").unwrap_or_else(|_| {
        format!(
            "{}/.cache/cowork/apps-runtime",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        Path::new(&dir).join("node_modules/.bin/esbuild").exists(),
        "the apps runtime is missing in {dir}: run scripts/peers.sh (scripts/test.sh does)"
    );
    dir
}

/// The `llama-server` binary scripts/peers.sh built
/// (`COWORK_TEST_LLAMA_SERVER`).
pub fn llama_server_path() -> String {
    peer_file("COWORK_TEST_LLAMA_SERVER", "llama.cpp's llama-server")
}

/// Does `GET /health` on 127.0.0.1:`port` answer 200? (llama-server
/// answers 503 while it loads its model.)
pub fn llama_health_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Start `llama-server` by hand for Gemma 3 270M as `gemma3-270m` with
/// llama.cpp's built-in gemma chat template and a 1024-token context (`extra`: more server
/// arguments), and wait until it is ready.
pub fn start_llama(extra: &[&str]) -> LlamaServer {
    // `--no-jinja`: with Jinja on, "gemma" is taken for a template's text
    // (the model would be given that word, not the conversation).
    let mut args = vec![
        "--chat-template",
        "gemma",
        "--no-jinja",
        "--ctx-size",
        "1024",
    ];
    args.extend_from_slice(extra);
    start_llama_model(&gemma_model_path(), "gemma3-270m", &args)
}

/// Start `llama-server` by hand for `model` answering as `alias`, and
/// wait until `/health` answers 200.
pub fn start_llama_model(model: &str, alias: &str, extra: &[&str]) -> LlamaServer {
    let port = free_port();
    let child = Command::new(llama_server_path())
        .args(["--model", model, "--alias", alias, "--host", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llama-server");
    let engine = LlamaServer { child, port };
    wait_until(Duration::from_secs(120), "llama-server ready", || {
        llama_health_ok(port)
    });
    engine
}

/// llama-cpp-python's OpenAI-compatible server with Gemma 3 270M as
/// `gemma3-270m`, for the agent tests: its chat format forces a NAMED tool
/// call (`tool_choice: {"type": "function", ...}`), which llama-server
/// does not (it takes only "auto", "none" and "required").
pub fn start_llama_cpp_python() -> LlamaServer {
    let port = free_port();
    let child = Command::new(python())
        .args(["-m", "llama_cpp.server", "--model", &gemma_model_path()])
        .args(["--model_alias", "gemma3-270m", "--chat_format", "gemma"])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--n_ctx", "1024"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llama_cpp.server");
    let engine = LlamaServer { child, port };
    wait_until(Duration::from_secs(120), "llama_cpp.server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    engine
}

/// Files under `dir` (recursively) whose bytes contain `needle`: where a
/// secret must never be.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                found.push(p);
            }
        }
    }
    found
}

/// Run `tests/python/<script>` with `args` in the test venv, assert it
/// succeeded (its stderr in the failure message) and parse its stdout as
/// JSON.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(repo_root().join("tests/python").join(script))
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Wait (up to a minute) until agents-agent reports its first engine up.
pub fn wait_engine_up(suite: &Suite) {
    wait_until(Duration::from_secs(60), "the engine to be detected", || {
        let v: serde_json::Value =
            serde_json::from_slice(&suite.ctl(&["--json", "engines"]).stdout).unwrap_or_default();
        v["engines"][0]["health"] == "up"
    });
}

/// Register the real `mcp-server-time` (PyPI, in the test venv) as MCP
/// server `time` through `coworkctl mcp add`; returns the server as JSON.
pub fn add_time_server(suite: &Suite) -> serde_json::Value {
    let py = python().display().to_string();
    let out = ok(&suite.ctl(&[
        "--json",
        "mcp",
        "add",
        "time",
        "--",
        &py,
        "-m",
        "mcp_server_time",
        "--local-timezone",
        "UTC",
    ]));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A command's stdout, after asserting it succeeded (its output in the
/// failure message).
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A real nginx (Debian's nginx-light) serving a directory on loopback,
/// with HTTP Range support, stopped on drop. `/slow/` serves the same
/// files at a limited rate per connection, so a transfer can be caught
/// half-way.
pub struct Nginx {
    /// The nginx process (foreground, no master).
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its prefix directory (config, logs).
    pub dir: tempfile::TempDir,
}

impl Nginx {
    /// Serve `root`; `/slow/` at `slow_rate` (nginx syntax, e.g. "4m").
    pub fn start(root: &Path, slow_rate: &str) -> Self {
        let dir = tempfile::tempdir().expect("nginx dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let d = dir.path().display();
        let root = root.display();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1;\n\
             pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               log_format ranged '$request_uri $status \"$http_range\" $body_bytes_sent';\n\
               access_log {d}/access.log ranged;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               sendfile on; default_type application/octet-stream;\n\
               server {{ listen 127.0.0.1:{port}; root {root};\n\
                 location /slow/ {{ alias {root}/; limit_rate {slow_rate}; }} }}\n\
             }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("nginx.conf");
        let nginx = ["/usr/sbin/nginx", "nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nginx");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (scripts/peers.sh installs nginx-light)");
        wait_until(Duration::from_secs(10), "nginx listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self { child, port, dir }
    }

    /// `http://127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// The access log so far: `URI STATUS "RANGE" BYTES` per request.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SHA-256 of a file by coreutils' `sha256sum` (independent of ours).
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A file of `len` pseudo-random bytes (xorshift; not compressible).
pub fn random_file(path: &Path, len: usize, seed: u64) {
    let mut x = seed | 1;
    let mut buf = Vec::with_capacity(len + 8);
    while buf.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf.truncate(len);
    std::fs::write(path, buf).expect("write random file");
}

/// The cloud provider stand-in (tests/python/cloud_standin.py), killed on
/// drop.
pub type CloudStandin = PythonPeer;

/// Start the cloud provider stand-in, logging requests to `log`.
pub fn cloud_standin(log: &Path) -> CloudStandin {
    cloud_standin_with(log, None)
}

/// [`cloud_standin`] answering with the reply in `reply` (JSON, read at
/// each request) when given.
pub fn cloud_standin_with(log: &Path, reply: Option<&Path>) -> CloudStandin {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/python/cloud_standin.py"))
        .arg(log)
        .args(reply);
    PythonPeer::start(cmd, "the cloud stand-in")
}

/// Start one of tests/python/hostile.py's HTTP peers (a redirecting
/// engine, an engine whose line never ends, a download server of endless
/// zeros) in `mode` with `args`.
pub fn hostile(mode: &str, args: &[&str]) -> PythonPeer {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/python/hostile.py"))
        .arg(mode)
        .args(args)
        .stderr(Stdio::null());
    PythonPeer::start(cmd, &format!("hostile.py {mode}"))
}

/// The command line of a stdio MCP server from hostile.py (`mcp-env`,
/// `mcp-flood`).
pub fn hostile_mcp(mode: &str) -> Vec<String> {
    vec![
        python().display().to_string(),
        repo_root()
            .join("tests/python/hostile.py")
            .display()
            .to_string(),
        mode.to_owned(),
    ]
}

/// Where the fault suite's records go: `$CARGO_TARGET_DIR/faults` (or
/// the workspace's `target/faults`).
pub fn faults_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                repo_root().join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("faults")
}

/// Record the calling test's row of the fault table (docs/RELIABILITY.md,
/// rendered by scripts/reliability.py from [`faults_dir`]): the fault or
/// hostile input, how many times it was tried, and what was lost
/// ("nothing" is the only passing answer). Call it after the assertions:
/// a test that fails leaves no row, and the table marks it failed.
pub fn record_fault(fault: &str, tries: u32, lost: &str) {
    let dir = faults_dir();
    let _ = std::fs::create_dir_all(&dir);
    // libtest names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned();
    let slug: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let row = serde_json::json!({"test": test, "fault": fault, "tries": tries, "lost": lost,
        "at": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs()).unwrap_or(0)});
    let _ = std::fs::write(dir.join(format!("{slug}.json")), row.to_string());
}

/// A bare Xvfb on a display it picks itself (`-displayfd`), ready once
/// this returns; killed on drop.
pub struct Xvfb {
    child: Child,
    /// `:N`, for `DISPLAY`.
    pub display: String,
    _displayfd: std::io::BufReader<std::process::ChildStdout>,
}

impl Xvfb {
    /// Start one (one at a time: two at once may claim one display).
    pub fn start() -> Self {
        use std::io::BufRead;
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (scripts/peers.sh installs it)");
        let mut reader = std::io::BufReader::new(child.stdout.take().expect("Xvfb stdout"));
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let n: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb printed {line:?}, not a display number"));
        Self {
            child,
            display: format!(":{n}"),
            _displayfd: reader,
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Free loopback TCP port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The body of a whole HTTP/1.1 response as [`post_json`] returns it
/// (headers cut off, a chunked body joined).
pub fn response_body(response: &str) -> String {
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        return String::new();
    };
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    let (mut out, mut rest) = (String::new(), body);
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// POST `body` to `path` with `key`: (status, response).
pub fn post_json(port: u16, key: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // Over 1 MiB the body is only declared: the gateway must refuse it
    // from Content-Length, before reading it.
    if body.len() <= 1 << 20 {
        let _ = c.write_all(body.as_bytes());
    }
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
