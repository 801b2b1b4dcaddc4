//! agents-agent: models, chat, memory, MCP tools and automations.
//! Serves the worker contract, `cowork.chat.v1.Chat` (a skeleton until chat
//! lands) and `cowork.engines.v1.Engines` (local engine detection).

fn main() -> std::process::ExitCode {
    cowork_proto::worker::main("agents", |ctx, routes| {
        routes
            .add_service(cowork_proto::pb::chat::chat_server::ChatServer::new(
                agents_agent::chat::ChatService::new(
                    ctx.paths.home.join("cowork.db"),
                    ctx.paths.config_file(),
                ),
            ))
            .add_service(
                cowork_proto::pb::engines::engines_server::EnginesServer::new(
                    agents_agent::service::EnginesService::new(ctx.paths.config_file()),
                ),
            )
    })
}
