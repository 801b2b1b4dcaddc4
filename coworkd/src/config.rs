//! `$COWORK_HOME/config.toml`: every key optional, defaults are the numbers
//! in DESIGN.md "Supervision". Reloaded live: supervisor settings apply at
//! once, a worker's command at its next start.

use crate::state::WorkerName;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{path} is invalid: {message}")]
    Invalid {
        /// The config file.
        path: String,
        /// What is wrong, with the line where TOML says so.
        message: String,
    },
}

/// The whole configuration coworkd reads. Sections it does not know belong
/// to the workers and are ignored here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `[supervisor]`.
    pub supervisor: SupervisorConfig,
    /// `[workers.<capture|agents|browser>]`.
    pub workers: BTreeMap<String, WorkerConfig>,
    /// `[thermal]`: how the machine's heat is read.
    pub thermal: ThermalConfig,
    /// `[ui]`: the web UI.
    pub ui: UiConfig,
}

/// `[ui]`: the web UI coworkd serves on loopback. Off (no `port`) until
/// `coworkctl ui` first runs, which chooses a port and writes it here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// The TCP port on 127.0.0.1; read at start (a change applies at
    /// coworkd's next start).
    pub port: Option<u16>,
}

/// The port `coworkctl ui` tries first when `[ui] port` is not set; a
/// free one is chosen when it is taken.
pub const UI_DEFAULT_PORT: u16 = 7737;

/// `text` (a config.toml) with `[ui] port = port` set, everything else
/// (comments, other tables, key order) kept as it was: the key is added
/// under an existing `[ui]` table, or a table is appended.
pub fn with_ui_port(text: &str, port: u16) -> String {
    let line = format!("port = {port}");
    let mut out = Vec::new();
    let mut in_ui = false;
    let mut done = false;
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') {
            if in_ui && !done {
                out.push(line.clone());
                done = true;
            }
            in_ui = t.trim_start_matches('[').split(']').next().map(str::trim) == Some("ui");
        } else if in_ui && !done {
            let key = t.split('=').next().map(str::trim);
            if key == Some("port") {
                out.push(line.clone());
                done = true;
                continue;
            }
        }
        out.push(l.to_owned());
    }
    if in_ui && !done {
        out.push(line.clone());
        done = true;
    }
    if !done {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.push("# The web UI (written by `coworkctl ui`).".to_owned());
        out.push("[ui]".to_owned());
        out.push(line);
    }
    // The file's own line ending (an editor on Windows writes CRLF).
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut s = out.join(eol);
    s.push_str(eol);
    s
}

/// `[thermal]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThermalConfig {
    /// Read the heat at all.
    pub enabled: bool,
    /// How often (s).
    pub interval_s: u64,
    /// Where Linux's thermal zones are (tests point it at a directory of
    /// their own).
    pub sysfs_root: std::path::PathBuf,
    /// How far below a trip point a zone must cool before its level drops
    /// (°C): a reading flapping at the trip point does not toggle.
    pub hysteresis_c: f64,
    /// Also read power-profiles-daemon's `PerformanceDegraded` on the
    /// system bus, where it runs.
    pub power_profiles: bool,
}

impl Default for ThermalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_s: 30,
            sysfs_root: "/sys/class/thermal".into(),
            hysteresis_c: 3.0,
            power_profiles: true,
        }
    }
}

/// `[supervisor]`: timings of readiness, liveness and restarts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// How long a starting worker has to signal ready before it is
    /// `degraded` and retried.
    pub ready_timeout_ms: u64,
    /// First restart delay; doubles per consecutive failure.
    pub backoff_initial_ms: u64,
    /// Longest restart delay.
    pub backoff_max_ms: u64,
    /// Failed restarts before a worker is `failed`.
    pub max_restarts: u32,
    /// Running this long resets the restart attempt counter.
    pub stable_after_ms: u64,
    /// The on-demand browser worker stops after this long without calls.
    pub browser_idle_ms: u64,
    /// How often a running worker's liveness is probed.
    pub probe_interval_ms: u64,
    /// How long one liveness probe may take.
    pub probe_timeout_ms: u64,
    /// Consecutive failed probes that mark a worker hung.
    pub probe_failures: u32,
    /// Grace between SIGTERM and SIGKILL when stopping a worker.
    pub stop_grace_ms: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            ready_timeout_ms: 10_000,
            backoff_initial_ms: 2_000,
            backoff_max_ms: 32_000,
            max_restarts: 5,
            stable_after_ms: 60_000,
            browser_idle_ms: 300_000,
            probe_interval_ms: 2_000,
            probe_timeout_ms: 1_000,
            probe_failures: 2,
            stop_grace_ms: 3_000,
        }
    }
}

impl SupervisorConfig {
    /// [`Self::ready_timeout_ms`] as a duration.
    pub fn ready_timeout(&self) -> Duration {
        Duration::from_millis(self.ready_timeout_ms)
    }
    /// [`Self::stable_after_ms`] as a duration.
    pub fn stable_after(&self) -> Duration {
        Duration::from_millis(self.stable_after_ms)
    }
    /// [`Self::browser_idle_ms`] as a duration.
    pub fn browser_idle(&self) -> Duration {
        Duration::from_millis(self.browser_idle_ms)
    }
    /// [`Self::probe_interval_ms`] as a duration.
    pub fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe_interval_ms)
    }
    /// [`Self::probe_timeout_ms`] as a duration.
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms)
    }
    /// [`Self::stop_grace_ms`] as a duration.
    pub fn stop_grace(&self) -> Duration {
        Duration::from_millis(self.stop_grace_ms)
    }
    /// The restart policy these settings describe.
    pub fn backoff(&self) -> crate::backoff::BackoffPolicy {
        crate::backoff::BackoffPolicy {
            initial: Duration::from_millis(self.backoff_initial_ms),
            max: Duration::from_millis(self.backoff_max_ms),
            max_restarts: self.max_restarts,
        }
    }

    fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("ready_timeout_ms", self.ready_timeout_ms),
            ("backoff_initial_ms", self.backoff_initial_ms),
            ("backoff_max_ms", self.backoff_max_ms),
            ("probe_interval_ms", self.probe_interval_ms),
            ("probe_timeout_ms", self.probe_timeout_ms),
            ("browser_idle_ms", self.browser_idle_ms),
        ] {
            if v == 0 {
                return Err(format!("[supervisor] {key} must be greater than 0"));
            }
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err("[supervisor] backoff_max_ms must be at least backoff_initial_ms".into());
        }
        if self.probe_failures == 0 {
            return Err("[supervisor] probe_failures must be at least 1".into());
        }
        Ok(())
    }
}

/// `[workers.<name>]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Replace the worker's program: argv, the first element the executable.
    pub command: Option<Vec<String>>,
}

impl Config {
    /// Parse TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            message,
        };
        let cfg: Config = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        cfg.supervisor.validate().map_err(invalid)?;
        if cfg.thermal.interval_s == 0 || cfg.thermal.hysteresis_c < 0.0 {
            return Err(invalid(
                "[thermal] interval_s is above 0 and hysteresis_c is not negative".into(),
            ));
        }
        if cfg.ui.port == Some(0) {
            return Err(invalid("[ui] port is between 1 and 65535".into()));
        }
        for (name, w) in &cfg.workers {
            if name.parse::<WorkerName>().is_err() {
                return Err(invalid(format!(
                    "[workers.{name}]: unknown worker (expected capture, agents or browser)"
                )));
            }
            if w.command
                .as_ref()
                .is_some_and(|c| c.is_empty() || c[0].is_empty())
            {
                return Err(invalid(format!(
                    "[workers.{name}] command must not be empty"
                )));
            }
        }
        Ok(cfg)
    }

    /// Load `path`; a missing file is the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// The configured command of `worker`, if it is replaced.
    pub fn command_of(&self, worker: WorkerName) -> Option<&[String]> {
        self.workers
            .get(worker.as_str())
            .and_then(|w| w.command.as_deref())
    }
}

/// Keeps the watcher alive; dropping it stops live reload.
pub struct ConfigWatcher {
    _debouncer: notify_debouncer_full::Debouncer<
        notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
}

/// Watch the directory holding `path` (editors replace files, so the file
/// itself is not watched) and publish each valid new configuration. An
/// invalid edit is logged and the previous configuration stays in force.
pub fn watch(
    path: &Path,
    tx: tokio::sync::watch::Sender<Config>,
) -> Result<ConfigWatcher, notify::Error> {
    let file = path.to_path_buf();
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(150),
        None,
        move |res: notify_debouncer_full::DebounceEventResult| {
            let Ok(events) = res else { return };
            // Compare names, not whole paths: the OS may report the watched
            // directory resolved (macOS: /private/var/...).
            let name = file.file_name();
            if !events
                .iter()
                .any(|e| e.paths.iter().any(|p| p.file_name() == name))
            {
                return;
            }
            match Config::load(&file) {
                Ok(cfg) => {
                    tx.send_if_modified(|cur| {
                        if *cur == cfg {
                            return false;
                        }
                        tracing::info!("config reloaded");
                        *cur = cfg;
                        true
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, "config change ignored; previous settings stay")
                }
            }
        },
    )?;
    debouncer.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    Ok(ConfigWatcher {
        _debouncer: debouncer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_port_is_added_replaced_or_appended_keeping_the_rest() {
        // No [ui]: a table is appended; what was there stays.
        let text = "# mine\n[supervisor]\nmax_restarts = 3\n";
        let out = with_ui_port(text, 7737);
        assert!(out.starts_with("# mine\n[supervisor]\nmax_restarts = 3\n"));
        let c = Config::parse(&out, "t").unwrap();
        assert_eq!((c.ui.port, c.supervisor.max_restarts), (Some(7737), 3));
        // An empty [ui] in the middle gets the key, before the next table.
        let out = with_ui_port("[ui]\n\n[thermal]\nenabled = false\n", 9000);
        let c = Config::parse(&out, "t").unwrap();
        assert_eq!((c.ui.port, c.thermal.enabled), (Some(9000), false));
        // An existing port is replaced, not duplicated (TOML refuses that).
        let out = with_ui_port("[ ui ]\nport = 1234 # old\n", 4321);
        assert_eq!(Config::parse(&out, "t").unwrap().ui.port, Some(4321));
        assert_eq!(out.matches("port").count(), 1);
        // CRLF stays CRLF.
        let out = with_ui_port("[supervisor]\r\nmax_restarts = 3\r\n", 7737);
        assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
        assert_eq!(Config::parse(&out, "t").unwrap().ui.port, Some(7737));
        // What the line rule cannot see (an inline table) makes TOML that
        // does not read back: the caller checks and refuses.
        let out = with_ui_port("ui = { }\n", 7737);
        assert!(Config::parse(&out, "t").is_err());
        // Off by default; 0 is refused with the key named.
        assert_eq!(Config::parse("", "t").unwrap().ui.port, None);
        let e = Config::parse("[ui]\nport = 0\n", "t").unwrap_err();
        assert!(e.to_string().contains("[ui] port"), "{e}");
    }

    #[test]
    fn empty_file_is_the_design_defaults() {
        let c = Config::parse("", "t").unwrap();
        let s = &c.supervisor;
        assert_eq!(
            (
                s.ready_timeout_ms,
                s.backoff_initial_ms,
                s.backoff_max_ms,
                s.max_restarts
            ),
            (10_000, 2_000, 32_000, 5)
        );
        assert_eq!((s.stable_after_ms, s.browser_idle_ms), (60_000, 300_000));
        assert_eq!(c.command_of(WorkerName::Capture), None);
    }

    #[test]
    fn reads_supervisor_keys_and_worker_commands() {
        let c = Config::parse(
            "[supervisor]\nmax_restarts = 2\nbackoff_initial_ms = 50\nbackoff_max_ms = 100\n\
             [workers.agents]\ncommand = [\"/bin/sh\", \"-c\", \"exit 3\"]\n\
             [capture]\nsource = \"sim\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.supervisor.max_restarts, 2);
        assert_eq!(
            c.command_of(WorkerName::Agents).unwrap(),
            ["/bin/sh", "-c", "exit 3"]
        );
    }

    #[test]
    fn rejects_typos_unknown_workers_and_nonsense() {
        for bad in [
            "[supervisor]\nready_timeout = 5",
            "[workers.chrome]\ncommand = [\"x\"]",
            "[workers.agents]\ncommand = []",
            "[supervisor]\nbackoff_initial_ms = 0",
            "[supervisor]\nbackoff_initial_ms = 10\nbackoff_max_ms = 5",
            "[supervisor\n",
        ] {
            let err = Config::parse(bad, "cfg.toml").unwrap_err().to_string();
            assert!(err.starts_with("cfg.toml is invalid"), "{bad}: {err}");
        }
    }
}
