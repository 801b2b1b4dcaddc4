//! agents-agent: models, chat, memory, MCP tools and automations.
//! Skeleton: serves the worker contract and `cowork.chat.v1.Chat`; engines
//! and chat land with the chat issue.

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
    cowork_proto::worker::main("agents", |_, routes| {
        routes.add_service(chat_server::ChatServer::new(Chat))
    })
}
