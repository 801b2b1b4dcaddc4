//! agents-agent: models, chat, memory, MCP tools and automations.
//! Serves the worker contract, `cowork.chat.v1.Chat` (threads, routed and
//! streamed answers, usage) and `cowork.engines.v1.Engines` (local engine
//! detection). Reports itself degraded while no model engine can answer.

fn main() -> std::process::ExitCode {
    cowork_proto::worker::main("agents", |ctx, routes| {
        let watch =
            agents_agent::watch::EngineWatch::new(ctx.paths.config_file(), ctx.health.clone());
        watch.clone().spawn(ctx.shutdown.clone());
        routes
            .add_service(cowork_proto::pb::chat::chat_server::ChatServer::new(
                agents_agent::chat::ChatService::new(
                    ctx.paths.home.join("cowork.db"),
                    ctx.paths.config_file(),
                    watch,
                ),
            ))
            .add_service(
                cowork_proto::pb::engines::engines_server::EnginesServer::new(
                    agents_agent::service::EnginesService::new(ctx.paths.config_file()),
                ),
            )
    })
}
