//! `cowork.mcp.v1.Mcp`: a thin adapter from the proto to [`Manager`].

use super::manager::{Manager, McpError, ServerView};
use super::{AddRequest, Transport};
use cowork_proto::pb::mcp::{
    mcp_server, AbortCallRequest, AbortCallResponse, AddServerRequest, CallToolRequest,
    CallToolResponse, CatalogEntry, ConfigureServerRequest, ListCatalogRequest,
    ListCatalogResponse, ListServersRequest, ListServersResponse, ListToolsResponse,
    RemoveServerResponse, Server, ServerRef, Tool,
};
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
            McpError::Disabled(_) | McpError::ConfigRequired { .. } => {
                Status::failed_precondition(msg)
            }
            McpError::Connect { .. } => Status::unavailable(msg),
            McpError::Timeout { .. } => Status::deadline_exceeded(msg),
            McpError::Aborted(_) => Status::cancelled(msg),
            McpError::Call { .. } => Status::aborted(msg),
            McpError::Db(_) => Status::internal(msg),
        }
    }
}

fn server_pb(v: ServerView) -> Server {
    let spec = &v.row.spec;
    let (command, url, headers) = match &spec.transport {
        Transport::Stdio { command, .. } => (command.clone(), String::new(), Default::default()),
        Transport::Http { url, headers, .. } => (Vec::new(), url.clone(), headers.clone()),
    };
    let (secret_env, secret_headers) = match &spec.transport {
        Transport::Stdio { secret_env, .. } => (secret_env.clone(), Vec::new()),
        Transport::Http { secret_headers, .. } => (Vec::new(), secret_headers.clone()),
    };
    Server {
        name: spec.name.clone(),
        transport: spec.transport.kind().into(),
        command,
        url,
        status: v.status.name().into(),
        error: v.error,
        pid: v.pid.unwrap_or(0),
        tool_count: v.tool_count as u32,
        connection_state: v.row.connection_state,
        approval_policy: spec.approval_policy.name().into(),
        enabled: spec.enabled,
        secret_env,
        secret_headers,
        headers: headers.into_iter().collect(),
        catalog_id: v.row.bundled.catalog_id,
        config: v.row.bundled.config.into_iter().collect(),
    }
}

#[tonic::async_trait]
impl mcp_server::Mcp for McpService {
    async fn add_server(&self, req: Request<AddServerRequest>) -> Result<Response<Server>, Status> {
        let r = req.into_inner();
        let v = self
            .manager
            .add_request(AddRequest {
                name: r.name,
                catalog_id: r.catalog_id,
                config: r.config.into_iter().collect(),
                command: r.command,
                url: r.url,
                env: r.env.into_iter().collect(),
                headers: r.headers.into_iter().collect(),
                secret_env: r.secret_env.into_iter().collect(),
                secret_headers: r.secret_headers.into_iter().collect(),
                approval_policy: r.approval_policy,
            })
            .await?;
        Ok(Response::new(server_pb(v)))
    }

    async fn list_catalog(
        &self,
        _: Request<ListCatalogRequest>,
    ) -> Result<Response<ListCatalogResponse>, Status> {
        let (defs, problems) = self.manager.catalog().await;
        Ok(Response::new(ListCatalogResponse {
            entries: defs
                .into_iter()
                .map(|d| CatalogEntry {
                    transport: d.transport().into(),
                    config_schema_json: d.config_schema().to_string(),
                    id: d.id,
                    title: d.title,
                    description: d.description,
                    command: d.command,
                    url: d.url,
                })
                .collect(),
            problems,
        }))
    }

    async fn configure_server(
        &self,
        req: Request<ConfigureServerRequest>,
    ) -> Result<Response<Server>, Status> {
        let r = req.into_inner();
        let v = self
            .manager
            .configure(&r.name, r.config.into_iter().collect())
            .await?;
        Ok(Response::new(server_pb(v)))
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
        let o = self
            .manager
            .call_by_user(
                &r.server,
                &r.tool,
                &r.arguments_json,
                r.timeout_ms,
                r.call_id,
            )
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
