//! The names of the System service's worker states, and the fields of
//! `coworkctl status --json` that scripts rely on: one spelling for
//! coworkctl, thin clients and the tests.

use crate::pb::system as pb;

/// The lower-case name of a proto worker state.
pub fn state_name(state: i32) -> &'static str {
    match pb::WorkerState::try_from(state) {
        Ok(pb::WorkerState::Starting) => "starting",
        Ok(pb::WorkerState::Running) => "running",
        Ok(pb::WorkerState::Degraded) => "degraded",
        Ok(pb::WorkerState::Restarting) => "restarting",
        Ok(pb::WorkerState::Failed) => "failed",
        Ok(pb::WorkerState::Stopped) => "stopped",
        _ => "unknown",
    }
}

/// The per-worker fields of `status --json` that scripts rely on (issue 2's
/// contract); more may follow, none of these may be renamed.
pub const STATUS_JSON_FIELDS: [&str; 8] = [
    "name",
    "state",
    "pid",
    "restarts",
    "uptime_s",
    "rss_bytes",
    "cpu_percent",
    "reason",
];
