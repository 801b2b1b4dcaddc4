//! `cowork.agents.v1.Agents`: a thin adapter from the proto to [`Agents`].

use super::executor::{AgentError, Agents};
use super::operation::{Operation as Op, Pending};
use cowork_proto::pb::agents::{
    agents_server, ApprovalRef, ListApprovalsRequest, ListApprovalsResponse, ListOperationsRequest,
    ListOperationsResponse, Operation, OperationRef, PendingCall, StartOperationRequest,
    ToolCallRecord,
};
use tonic::{Request, Response, Status};

/// The Agents service.
#[derive(Debug, Clone)]
pub struct AgentsService {
    agents: Agents,
}

impl AgentsService {
    /// Serve `agents`.
    pub fn new(agents: Agents) -> Self {
        Self { agents }
    }
}

impl From<AgentError> for Status {
    fn from(e: AgentError) -> Self {
        let msg = e.to_string();
        match e {
            AgentError::NoOperation(_) | AgentError::NoPending { .. } => Status::not_found(msg),
            AgentError::State { .. } => Status::failed_precondition(msg),
            AgentError::Invalid(_) => Status::invalid_argument(msg),
            AgentError::Db(_) => Status::internal(msg),
        }
    }
}

fn pending_pb(op_id: &str, p: &Pending) -> PendingCall {
    PendingCall {
        operation_id: op_id.to_owned(),
        call_id: p.call.id.clone(),
        server: p.call.server.clone(),
        tool: p.call.tool.clone(),
        arguments_json: p.call.arguments.clone(),
        phase: p.phase.into(),
        reason: p.reason.clone(),
    }
}

fn op_pb(op: &Op, created: i64, updated: i64) -> Operation {
    Operation {
        id: op.id.clone(),
        task: op.task.clone(),
        status: op.status.name().into(),
        step: op.step,
        max_steps: op.max_steps,
        pending: op.pending.iter().map(|p| pending_pb(&op.id, p)).collect(),
        tool_calls: op
            .calls
            .iter()
            .map(|c| ToolCallRecord {
                server: c.call.server.clone(),
                tool: c.call.tool.clone(),
                arguments_json: c.call.arguments.clone(),
                outcome: c.outcome.clone(),
                result: c.result.clone(),
            })
            .collect(),
        result: op.result.clone(),
        reason: op.reason.clone(),
        created_unix_ms: created,
        updated_unix_ms: updated,
        cost_usd: op.cost_usd,
    }
}

fn fresh(op: &Op) -> Operation {
    let now = crate::util::now_ms();
    op_pb(op, op.started_ms, now)
}

#[tonic::async_trait]
impl agents_server::Agents for AgentsService {
    async fn start_operation(
        &self,
        req: Request<StartOperationRequest>,
    ) -> Result<Response<Operation>, Status> {
        let r = req.into_inner();
        let tool_choice = (!r.tool_choice.is_empty()).then_some(r.tool_choice);
        let op = self
            .agents
            .start(r.task, tool_choice, r.automation, r.max_steps, r.wait)
            .await?;
        Ok(Response::new(fresh(&op)))
    }

    async fn get_operation(
        &self,
        req: Request<OperationRef>,
    ) -> Result<Response<Operation>, Status> {
        let (op, c, u) = self.agents.get(&req.into_inner().id).await?;
        Ok(Response::new(op_pb(&op, c, u)))
    }

    async fn list_operations(
        &self,
        req: Request<ListOperationsRequest>,
    ) -> Result<Response<ListOperationsResponse>, Status> {
        let ops = self.agents.list(req.into_inner().limit).await?;
        Ok(Response::new(ListOperationsResponse {
            operations: ops.iter().map(|(o, c, u)| op_pb(o, *c, *u)).collect(),
        }))
    }

    async fn resume_operation(
        &self,
        req: Request<OperationRef>,
    ) -> Result<Response<Operation>, Status> {
        let op = self.agents.resume(&req.into_inner().id, true).await?;
        Ok(Response::new(fresh(&op)))
    }

    async fn list_approvals(
        &self,
        _: Request<ListApprovalsRequest>,
    ) -> Result<Response<ListApprovalsResponse>, Status> {
        let pending = self.agents.pending().await?;
        Ok(Response::new(ListApprovalsResponse {
            pending: pending.iter().map(|(id, p)| pending_pb(id, p)).collect(),
        }))
    }

    async fn approve(&self, req: Request<ApprovalRef>) -> Result<Response<Operation>, Status> {
        let r = req.into_inner();
        let op = self
            .agents
            .decide(
                &r.operation_id,
                &r.call_id,
                true,
                true,
                crate::agent::approval::DecidedBy::Api,
            )
            .await?;
        Ok(Response::new(fresh(&op)))
    }

    async fn reject(&self, req: Request<ApprovalRef>) -> Result<Response<Operation>, Status> {
        let r = req.into_inner();
        let op = self
            .agents
            .decide(
                &r.operation_id,
                &r.call_id,
                false,
                true,
                crate::agent::approval::DecidedBy::Api,
            )
            .await?;
        Ok(Response::new(fresh(&op)))
    }
}
