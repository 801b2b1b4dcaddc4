//! `cowork.mcp.v1.Mcp`: a thin adapter from the proto to [`Manager`].

use super::manager::{Manager, McpError, ServerView, DEFAULT_CALL_TIMEOUT, MAX_CALL_TIMEOUT};
use super::Transport;
use cowork_proto::pb::mcp::{
    mcp_server, AbortCallRequest, AbortCallResponse, AddServerRequest, CallToolRequest,
    CallToolResponse, ListServersRequest, ListServersResponse, ListToolsResponse,
    RemoveServerResponse, Server, ServerRef, Tool,
};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// The Mcp service.
#[derive(Debug, Clone)]
pub struct McpService {
    manager: Manager,
}

impl McpService {
    /// Serve `manager`.
    pub fn new(manager: Manager) -> Self {
        Self { manager }
    }
}

impl From<McpError> for Status {
    fn from(e: McpError) -> Self {
        let msg = e.to_string();
        match e {
            McpError::NoServer(_) => Status::not_found(msg),
            McpError::Exists(_) => Status::already_exists(msg),
            McpError::Invalid(_) => Status::invalid_argument(msg),
            McpError::Disabled(_) => Status::failed_precondition(msg),
            McpError::Connect { .. } => Status::unavailable(msg),
            McpError::Timeout { .. } => Status::deadline_exceeded(msg),
            McpError::Aborted(_) => Status::cancelled(msg),
            McpError::Call { .. } => Status::aborted(msg),
            McpError::Db(_) => Status::internal(msg),
        }
    }
}

fn server_pb(v: ServerView) -> Server {
    let (command, url, secret_env) = match &v.row.spec.transport {
        Transport::Stdio {
            command,
            secret_env,
            ..
        } => (command.clone(), String::new(), secret_env.clone()),
        Transport::Http { url } => (Vec::new(), url.clone(), Vec::new()),
    };
    Server {
        name: v.row.spec.name.clone(),
        transport: v.row.spec.transport.kind().into(),
        command,
        url,
        status: v.status.name().into(),
        error: v.error,
        pid: v.pid.unwrap_or(0),
        tool_count: v.tool_count as u32,
        connection_state: v.row.connection_state,
        approval_policy: v.row.spec.approval_policy.name().into(),
        enabled: v.row.spec.enabled,
        secret_env,
    }
}

#[tonic::async_trait]
impl mcp_server::Mcp for McpService {
    async fn add_server(&self, req: Request<AddServerRequest>) -> Result<Response<Server>, Status> {
        let r = req.into_inner();
        let secrets: std::collections::BTreeMap<String, String> =
            r.secret_env.into_iter().collect();
        let spec = super::spec_with_secrets(
            &r.name,
            r.command,
            &r.url,
            r.env.into_iter().collect(),
            secrets.keys().cloned().collect(),
            &r.approval_policy,
        )
        .map_err(Status::invalid_argument)?;
        Ok(Response::new(server_pb(
            self.manager.add(spec, secrets).await?,
        )))
    }

    async fn list_servers(
        &self,
        _: Request<ListServersRequest>,
    ) -> Result<Response<ListServersResponse>, Status> {
        let servers = self.manager.list().await?;
        Ok(Response::new(ListServersResponse {
            servers: servers.into_iter().map(server_pb).collect(),
        }))
    }

    async fn remove_server(
        &self,
        req: Request<ServerRef>,
    ) -> Result<Response<RemoveServerResponse>, Status> {
        self.manager.remove(&req.into_inner().name).await?;
        Ok(Response::new(RemoveServerResponse {}))
    }

    async fn connect_server(&self, req: Request<ServerRef>) -> Result<Response<Server>, Status> {
        let v = self.manager.connect(&req.into_inner().name).await?;
        Ok(Response::new(server_pb(v)))
    }

    async fn disconnect_server(&self, req: Request<ServerRef>) -> Result<Response<Server>, Status> {
        let v = self.manager.disconnect(&req.into_inner().name).await?;
        Ok(Response::new(server_pb(v)))
    }

    async fn list_tools(
        &self,
        req: Request<ServerRef>,
    ) -> Result<Response<ListToolsResponse>, Status> {
        let tools = self.manager.tools(&req.into_inner().name).await?;
        Ok(Response::new(ListToolsResponse {
            tools: tools
                .into_iter()
                .map(|t| Tool {
                    name: t.name.to_string(),
                    description: t.description.map(|d| d.to_string()).unwrap_or_default(),
                    input_schema_json: serde_json::Value::Object((*t.input_schema).clone())
                        .to_string(),
                })
                .collect(),
        }))
    }

    async fn call_tool(
        &self,
        req: Request<CallToolRequest>,
    ) -> Result<Response<CallToolResponse>, Status> {
        let r = req.into_inner();
        let args = if r.arguments_json.trim().is_empty() {
            serde_json::Map::new()
        } else {
            match serde_json::from_str::<serde_json::Value>(&r.arguments_json) {
                Ok(serde_json::Value::Object(m)) => m,
                Ok(_) => return Err(Status::invalid_argument("--args must be a JSON object")),
                Err(e) => return Err(Status::invalid_argument(format!("--args is not JSON: {e}"))),
            }
        };
        let timeout = match r.timeout_ms {
            0 => DEFAULT_CALL_TIMEOUT,
            ms => Duration::from_millis(ms.into()).min(MAX_CALL_TIMEOUT),
        };
        let call_id = if r.call_id.is_empty() {
            crate::chat_store::new_id("call")
        } else {
            r.call_id
        };
        let o = self
            .manager
            .call(&r.server, &r.tool, args, timeout, call_id, "user")
            .await?;
        Ok(Response::new(CallToolResponse {
            call_id: o.call_id,
            is_error: o.is_error,
            text: o.text,
            result_json: o.result.to_string(),
            duration_ms: o.duration.as_millis() as u64,
        }))
    }

    async fn abort_call(
        &self,
        req: Request<AbortCallRequest>,
    ) -> Result<Response<AbortCallResponse>, Status> {
        Ok(Response::new(AbortCallResponse {
            aborted: self.manager.abort(&req.into_inner().call_id),
        }))
    }
}
