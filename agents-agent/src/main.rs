//! agents-agent: models, chat, memory, MCP tools and automations.
//! Serves the worker contract, `cowork.chat.v1.Chat` (a skeleton until chat
//! lands) and `cowork.engines.v1.Engines` (local engine detection).

use cowork_proto::pb::chat::{chat_server, GetStatusRequest, GetStatusResponse};
use tonic::{Request, Response, Status};

struct Chat;

#[tonic::async_trait]
impl chat_server::Chat for Chat {
    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(GetStatusResponse {
            pid: std::process::id(),
            engines: Vec::new(),
        }))
    }
}

fn main() -> std::process::ExitCode {
    cowork_proto::worker::main("agents", |ctx, routes| {
        routes
            .add_service(chat_server::ChatServer::new(Chat))
            .add_service(
                cowork_proto::pb::engines::engines_server::EnginesServer::new(
                    agents_agent::service::EnginesService::new(ctx.paths.config_file()),
                ),
            )
    })
}
