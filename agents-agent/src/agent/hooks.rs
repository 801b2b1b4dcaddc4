//! What agent operations use of automations without importing them (the
//! automations domain imports this one): flows offered as `flow_<id>`
//! tools, and the calls runs wait on a person for, listed and decided
//! beside operations' own in `approvals`.

use super::operation::Pending;
use futures::future::BoxFuture;
use serde_json::{Map, Value};

/// The tools' pseudo-server for flows (`flow_<id>`).
pub const FLOWS: &str = "flows";

/// One flow offered as a tool.
#[derive(Debug, Clone)]
pub struct FlowTool {
    /// The flow's id (the tool is `flow_<id>`).
    pub id: String,
    /// The tool's description.
    pub description: String,
    /// Its parameters (JSON Schema).
    pub schema: Map<String, Value>,
}

/// A waiting call of a run, as `approvals` shows it.
#[derive(Debug, Clone)]
pub struct RunPending {
    /// The run (in place of an operation id).
    pub run_id: String,
    /// The flow's name.
    pub flow_name: String,
    /// The call.
    pub pending: Pending,
}

/// Automations, as agent operations see them.
pub trait FlowHooks: Send + Sync {
    /// Enabled flows as tools.
    fn tools(&self) -> BoxFuture<'_, Vec<FlowTool>>;
    /// Run flow `id` with `args` and wait: its result as text.
    fn call(&self, id: String, args: Map<String, Value>) -> BoxFuture<'_, Result<String, String>>;
    /// Calls runs wait on a person for.
    fn pending(&self) -> BoxFuture<'_, Vec<RunPending>>;
    /// Approve or reject one; the run's status and reason after.
    fn decide(
        &self,
        run_id: String,
        call_id: String,
        approve: bool,
    ) -> BoxFuture<'_, Result<(String, String), String>>;
}
