//! `cowork.automations.v1.Automations`: proto ⇄ [`Automations`].

use super::runner::{AutomationError, Automations};
use super::{FlowRow, RunRow, StepRow, Waiting};
use cowork_proto::pb::automations::{self as pb, automations_server};
use tonic::{Request, Response, Status};

/// The service.
#[derive(Debug, Clone)]
pub struct AutomationsService {
    automations: Automations,
}

impl AutomationsService {
    /// Serve `automations`.
    pub fn new(automations: Automations) -> Self {
        Self { automations }
    }
}

impl From<AutomationError> for Status {
    fn from(e: AutomationError) -> Self {
        match e {
            AutomationError::NoFlow(_) | AutomationError::NoRun(_) => {
                Status::not_found(e.to_string())
            }
            AutomationError::Invalid(_) => Status::invalid_argument(e.to_string()),
            AutomationError::State { .. } => Status::failed_precondition(e.to_string()),
            AutomationError::Db(_) => Status::internal(e.to_string()),
        }
    }
}

fn flow_pb(f: FlowRow) -> pb::Flow {
    pb::Flow {
        id: f.id,
        name: f.name,
        enabled: f.enabled,
        trigger_type: f.trigger_type,
        version: f.version as u32,
        json: f.json,
        created_ms: f.created_ms,
        updated_ms: f.updated_ms,
        trigger_note: f.trigger_note,
    }
}

/// A run (with its steps, when given) as the proto says.
pub fn run_pb(r: RunRow, steps: Vec<StepRow>) -> pb::Run {
    let w: Option<Waiting> = serde_json::from_str(&r.waiting_json).ok();
    pb::Run {
        waiting_call: w
            .as_ref()
            .map(|w| {
                if w.operation_id.is_empty() {
                    format!("{}/{}", r.id, w.call_id)
                } else {
                    w.operation_id.clone()
                }
            })
            .unwrap_or_default(),
        waiting_reason: w.map(|w| w.reason).unwrap_or_default(),
        id: r.id,
        flow_id: r.flow_id,
        flow_name: r.flow_name,
        status: r.status,
        trigger: r.trigger,
        occurrence_key: r.occurrence_key,
        started_ms: r.started_ms,
        finished_ms: r.finished_ms,
        error: r.error,
        output_json: r.output_json,
        vars_json: r.vars_json,
        resume_at_ms: r.resume_at_ms,
        steps: steps
            .into_iter()
            .map(|s| pb::RunStep {
                index: s.index as u32,
                step_id: s.step_id,
                block: s.block,
                status: s.status,
                attempt: s.attempt,
                started_ms: s.started_ms,
                finished_ms: s.finished_ms,
                output_json: s.output_json,
                error: s.error,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl automations_server::Automations for AutomationsService {
    async fn add_flow(&self, r: Request<pb::AddFlowRequest>) -> Result<Response<pb::Flow>, Status> {
        Ok(Response::new(flow_pb(
            self.automations.add(&r.into_inner().json).await?,
        )))
    }

    async fn list_flows(
        &self,
        _: Request<pb::ListFlowsRequest>,
    ) -> Result<Response<pb::ListFlowsResponse>, Status> {
        let flows = self.automations.list().await?;
        Ok(Response::new(pb::ListFlowsResponse {
            flows: flows.into_iter().map(flow_pb).collect(),
        }))
    }

    async fn get_flow(&self, r: Request<pb::FlowRef>) -> Result<Response<pb::Flow>, Status> {
        Ok(Response::new(flow_pb(
            self.automations.get(&r.into_inner().id).await?,
        )))
    }

    async fn set_enabled(
        &self,
        r: Request<pb::SetEnabledRequest>,
    ) -> Result<Response<pb::Flow>, Status> {
        let r = r.into_inner();
        Ok(Response::new(flow_pb(
            self.automations.set_enabled(&r.id, r.enabled).await?,
        )))
    }

    async fn remove_flow(
        &self,
        r: Request<pb::FlowRef>,
    ) -> Result<Response<pb::RemoveFlowResponse>, Status> {
        self.automations.remove(&r.into_inner().id).await?;
        Ok(Response::new(pb::RemoveFlowResponse {}))
    }

    async fn run_flow(&self, r: Request<pb::RunFlowRequest>) -> Result<Response<pb::Run>, Status> {
        let r = r.into_inner();
        let run = self
            .automations
            .run_now(&r.id, r.vars.into_iter().collect(), r.wait)
            .await?;
        let (run, steps) = self.automations.run(&run.id).await?;
        Ok(Response::new(run_pb(run, steps)))
    }

    async fn list_runs(
        &self,
        r: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let r = r.into_inner();
        let flow = (!r.flow_id.is_empty()).then_some(r.flow_id);
        let runs = self.automations.runs(flow, r.limit).await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: runs.into_iter().map(|r| run_pb(r, Vec::new())).collect(),
        }))
    }

    async fn get_run(&self, r: Request<pb::RunRef>) -> Result<Response<pb::Run>, Status> {
        let (run, steps) = self.automations.run(&r.into_inner().id).await?;
        Ok(Response::new(run_pb(run, steps)))
    }
}
