//! The supervision model: worker names, states and the snapshot coworkd
//! keeps per worker. Pure data; the proto adapters convert it.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

/// One of the three supervised workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkerName {
    /// capture-agent.
    Capture,
    /// agents-agent.
    Agents,
    /// browser-agent (started on demand).
    Browser,
}

impl WorkerName {
    /// Every worker, in display order.
    pub const ALL: [WorkerName; 3] = [Self::Capture, Self::Agents, Self::Browser];

    /// The name used in config, CLI and the API: "capture", "agents", "browser".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Agents => "agents",
            Self::Browser => "browser",
        }
    }

    /// The worker's program name, e.g. "capture-agent".
    pub fn binary(self) -> &'static str {
        match self {
            Self::Capture => "capture-agent",
            Self::Agents => "agents-agent",
            Self::Browser => "browser-agent",
        }
    }

    /// Whether the worker starts on the first call routed to it instead of
    /// at boot, and stops when idle.
    pub fn on_demand(self) -> bool {
        self == Self::Browser
    }
}

impl fmt::Display for WorkerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown worker name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown worker {0:?} (expected capture, agents or browser)")]
pub struct UnknownWorker(pub String);

impl FromStr for WorkerName {
    type Err = UnknownWorker;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "capture" | "capture-agent" => Ok(Self::Capture),
            "agents" | "agents-agent" => Ok(Self::Agents),
            "browser" | "browser-agent" => Ok(Self::Browser),
            other => Err(UnknownWorker(other.to_owned())),
        }
    }
}

/// Supervision state (seed: "Service states", plus `stopped` for the
/// on-demand browser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Spawned, waiting for the ready signal.
    Starting,
    /// Ready and answering probes.
    Running,
    /// Not ready in time, or the worker reports partial service.
    Degraded,
    /// A restart is scheduled.
    Restarting,
    /// Restarts exhausted; waiting for `retry`.
    Failed,
    /// Not running and not wanted.
    Stopped,
}

impl WorkerState {
    /// Lower-case name as shown to people and scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Degraded => "degraded",
            Self::Restarting => "restarting",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code when it exited.
    pub code: Option<i32>,
    /// Signal number when a signal ended it.
    pub signal: Option<i32>,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exited with code {c}"),
            (None, Some(s)) => {
                let name = nix::sys::signal::Signal::try_from(s)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown");
                write!(f, "killed by signal {s} ({name})")
            }
            (None, None) => f.write_str("ended"),
        }
    }
}

/// Everything coworkd knows about one worker at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSnapshot {
    /// Which worker.
    pub name: WorkerName,
    /// Its state.
    pub state: WorkerState,
    /// Why it is in this state.
    pub reason: String,
    /// The live process, if any.
    pub pid: Option<u32>,
    /// Restarts performed (reset by `retry`).
    pub restarts: u32,
    /// Consecutive failures counted against `max_restarts`.
    pub attempt: u32,
    /// The restart budget in force.
    pub max_restarts: u32,
    /// When the current process signalled ready.
    pub ready_at: Option<Instant>,
    /// When the next restart happens (restarting only).
    pub next_retry_at: Option<Instant>,
    /// How the previous process ended.
    pub last_exit: Option<ExitInfo>,
    /// The worker log's last lines at its last abnormal end.
    pub last_log_lines: Vec<String>,
    /// Whether calls may be relayed to it now.
    pub routable: bool,
}

impl WorkerSnapshot {
    /// A worker that has not been started yet.
    pub fn new(name: WorkerName, max_restarts: u32) -> Self {
        Self {
            name,
            state: if name.on_demand() {
                WorkerState::Stopped
            } else {
                WorkerState::Starting
            },
            reason: String::new(),
            pid: None,
            restarts: 0,
            attempt: 0,
            max_restarts,
            ready_at: None,
            next_retry_at: None,
            last_exit: None,
            last_log_lines: Vec::new(),
            routable: false,
        }
    }

    /// Why a call cannot be relayed now, e.g. "agents-agent restarting,
    /// attempt 2/5, next try in 4s (killed by signal 9 (SIGKILL))".
    pub fn unavailable_message(&self, now: Instant) -> String {
        let who = self.name.binary();
        let mut msg = match self.state {
            WorkerState::Restarting => {
                let wait = self
                    .next_retry_at
                    .map(|t| t.saturating_duration_since(now))
                    .unwrap_or_default();
                format!(
                    "{who} restarting, attempt {}/{}, next try in {}",
                    self.attempt,
                    self.max_restarts,
                    human_secs(wait)
                )
            }
            WorkerState::Failed => format!(
                "{who} failed after {} restarts; run `coworkctl retry {}`",
                self.restarts, self.name
            ),
            WorkerState::Starting if self.attempt > 0 => format!(
                "{who} is starting, attempt {}/{}",
                self.attempt, self.max_restarts
            ),
            WorkerState::Starting => format!("{who} is starting"),
            WorkerState::Stopped => format!("{who} is stopped"),
            WorkerState::Degraded => format!("{who} is degraded"),
            WorkerState::Running => format!("{who} is not answering"),
        };
        if !self.reason.is_empty() {
            msg.push_str(&format!(" ({})", self.reason));
        }
        msg
    }
}

/// A duration in whole seconds, rounded up, as "4s" (sub-second: "0.3s").
pub fn human_secs(d: Duration) -> String {
    if d < Duration::from_secs(1) && !d.is_zero() {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}s", d.as_secs() + u64::from(d.subsec_nanos() > 0))
    }
}

/// One state transition, as pushed to `WatchHealth` subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthEvent {
    /// Which worker.
    pub worker: WorkerName,
    /// The new state.
    pub state: WorkerState,
    /// The state before.
    pub previous: WorkerState,
    /// Why.
    pub reason: String,
    /// Monotonic sequence number within this coworkd run.
    pub seq: u64,
    /// Wall-clock time of the transition.
    pub at: SystemTime,
    /// The worker's pid, if a process exists.
    pub pid: Option<u32>,
    /// The restart attempt in force.
    pub attempt: u32,
    /// Restarts so far.
    pub restarts: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for w in WorkerName::ALL {
            assert_eq!(w.as_str().parse::<WorkerName>().unwrap(), w);
            assert_eq!(w.binary().parse::<WorkerName>().unwrap(), w);
        }
        assert!("chrome".parse::<WorkerName>().is_err());
    }

    #[test]
    fn unavailable_message_says_state_attempt_and_wait() {
        let now = Instant::now();
        let mut s = WorkerSnapshot::new(WorkerName::Agents, 5);
        s.state = WorkerState::Restarting;
        s.attempt = 2;
        s.next_retry_at = Some(now + Duration::from_millis(3_200));
        s.reason = "killed by signal 9 (SIGKILL)".into();
        assert_eq!(
            s.unavailable_message(now),
            "agents-agent restarting, attempt 2/5, next try in 4s (killed by signal 9 (SIGKILL))"
        );
        s.state = WorkerState::Failed;
        s.restarts = 5;
        s.reason.clear();
        assert_eq!(
            s.unavailable_message(now),
            "agents-agent failed after 5 restarts; run `coworkctl retry agents`"
        );
    }

    #[test]
    fn exit_descriptions() {
        let code = ExitInfo {
            code: Some(3),
            signal: None,
        };
        assert_eq!(code.to_string(), "exited with code 3");
        let sig = ExitInfo {
            code: None,
            signal: Some(9),
        };
        assert_eq!(sig.to_string(), "killed by signal 9 (SIGKILL)");
    }
}
