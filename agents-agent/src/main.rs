//! agents-agent: models, chat, memory, MCP tools and automations.
//! Serves the worker contract, `cowork.chat.v1.Chat` (threads, routed and
//! streamed answers, usage) and `cowork.engines.v1.Engines` (local engine
//! detection) and `cowork.mcp.v1.Mcp` (MCP servers and tools). Reports
//! itself degraded while no model engine can answer.

fn main() -> std::process::ExitCode {
    cowork_proto::worker::main("agents", |ctx, routes| {
        let watch =
            agents_agent::watch::EngineWatch::new(ctx.paths.config_file(), ctx.health.clone());
        watch.clone().spawn(ctx.shutdown.clone());
        let db = agents_agent::db::Db::new(ctx.paths.home.join("cowork.db"));
        let mcp = agents_agent::mcp::manager::Manager::new(db.clone(), ctx.paths.locks_dir.clone());
        {
            // Reap servers a killed agents-agent left behind, before any
            // connection is made; end ours when the worker stops.
            let (mcp, shutdown) = (mcp.clone(), ctx.shutdown.clone());
            tokio::spawn(async move {
                mcp.sweep_orphans().await;
                shutdown.cancelled().await;
                mcp.close_all_now();
            });
        }
        routes
            .add_service(cowork_proto::pb::chat::chat_server::ChatServer::new(
                agents_agent::chat::ChatService::new(db.clone(), ctx.paths.config_file(), watch),
            ))
            .add_service(cowork_proto::pb::mcp::mcp_server::McpServer::new(
                agents_agent::mcp::service::McpService::new(mcp),
            ))
            .add_service(
                cowork_proto::pb::engines::engines_server::EnginesServer::new(
                    agents_agent::service::EnginesService::new(ctx.paths.config_file()),
                ),
            )
    })
}
