//! agents-agent: models, chat, memory, MCP tools and automations.
//! Serves the worker contract, `cowork.chat.v1.Chat` (threads, routed and
//! streamed answers, usage), `cowork.engines.v1.Engines` (local engine
//! detection), `cowork.mcp.v1.Mcp` (MCP servers and tools),
//! `cowork.agents.v1.Agents` (agent operations and tool approvals),
//! `cowork.models.v1.Models` (model downloads, fit checks, hardware, and
//! the llama-server sessions it runs itself),
//! `cowork.gateway.v1.Gateway` (the local OpenAI-compatible API) and
//! `cowork.memory.v1.Memory` (everything captured or said, indexed for
//! keyword and vector search in the background).
//! Reports itself degraded while no model engine can answer, or while
//! cowork.db cannot be used (e.g. it was migrated by a newer build).

use agents_agent::{agent, browser, chat, db, gateway, llm, mcp, memory, models, schema};
use cowork_proto::pb;

/// The health part under which a cowork.db that cannot be used is reported.
const DATABASE: &str = "database";

fn main() -> std::process::ExitCode {
    cowork_proto::worker::main("agents", |ctx, routes| {
        let config = ctx.paths.config_file();
        agents_agent::secrets::set_scope(&ctx.paths.home);
        // The llama-server sessions we run ourselves: preferred by chat,
        // agents and the gateway; ended when the worker stops.
        let sessions = llm::managed::sessions::Sessions::new(
            config.clone(),
            ctx.paths.locks_dir.clone(),
            ctx.shutdown.clone(),
        );
        sessions.spawn_idle_watch();
        let watch =
            llm::detect::EngineWatch::new(config.clone(), ctx.health.clone(), sessions.clone());
        watch.clone().spawn(ctx.shutdown.clone());
        let resolver = llm::resolve::Resolver::new(config.clone(), watch);
        let db = db::Db::new(ctx.paths.home.join("cowork.db"), schema::OWNERS);
        let mcp = mcp::manager::Manager::new(
            db.clone(),
            ctx.paths.locks_dir.clone(),
            ctx.paths.mcp_catalog_dir(),
        );
        let downloads = models::manager::Downloads::new(
            db.clone(),
            ctx.paths.models_dir(),
            config.clone(),
            ctx.shutdown.clone(),
        );
        let gateway = gateway::server::Gateway::new(
            db.clone(),
            config.clone(),
            ctx.shutdown.clone(),
            sessions.clone(),
        );
        let checker = models::check::Checker::new(config.clone(), ctx.paths.models_dir());
        let loader =
            models::load::Loader::new(checker.clone(), downloads.clone(), sessions.clone());
        // Browser tools go through coworkd's public socket, never to
        // browser-agent directly: a crash of either side stays contained.
        let agents =
            agent::executor::Agents::new(db.clone(), config.clone(), mcp.clone(), resolver.clone())
                .with_browser(browser::client::BrowserTools::new(
                    ctx.paths.public_socket(),
                ));
        let memory = memory::Memory::new(db.clone(), config.clone(), sessions.clone());
        // Chat answers with memory's layers (working memory, pins, recent
        // capture, search, backfill; grounded questions' refusals).
        let chat = chat::Chat::new(db.clone(), config.clone(), resolver.clone())
            .with_grounding(std::sync::Arc::new(memory.clone()));
        // Before serving: cowork.db is opened and migrated (a file it
        // cannot use is reported, and nothing is written to it);
        // operations a killed agents-agent was running come back paused;
        // servers it left behind are reaped before any new one starts;
        // ours end when the worker stops.
        // Calls nobody approves in time are rejected (fail closed).
        agents.spawn_expiry(ctx.shutdown.clone());
        match agents.recover() {
            Ok(0) => {}
            Ok(n) => tracing::warn!(operations = n, "interrupted operations paused"),
            // A cowork.db it cannot use (migrated by a newer build, not a
            // database at all) stays unusable until the person acts: say
            // so in the worker's health, and write nothing to it.
            Err(agent::executor::AgentError::Db(e)) if e.unusable_file() => {
                tracing::error!(error = %e, "cowork.db cannot be used");
                ctx.health.set_degraded_part(DATABASE, e.to_string());
            }
            Err(e) => tracing::error!(error = %e, "cannot recover operations"),
        }
        // Memory indexes new rows and embeds them in the background
        // (interrupted embedding jobs resume at their checkpoint).
        memory::indexer::spawn(memory.clone(), ctx.shutdown.clone());
        // The Observer and Reflector compress history with the local
        // model, in the background.
        memory::observer::spawn(memory.clone(), resolver.clone(), ctx.shutdown.clone());
        let sweep = mcp.sweep_orphans();
        let resumer = downloads.clone();
        let restorer = gateway.clone();
        let (autoloader, autoload_config) = (loader.clone(), config.clone());
        tokio::spawn(async move {
            // Servers a killed agents-agent left are reaped, then the
            // configured models load.
            autoloader.autoload(&autoload_config).await;
        });
        tokio::spawn(async move {
            // The local API comes back on if the person left it on.
            restorer.restore().await;
            // Downloads a previous run left unfinished resume.
            match resumer.recover().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(n, "resumed unfinished downloads"),
                Err(e) => tracing::warn!(error = %e, "could not resume downloads"),
            }
        });
        let (closer, shutdown) = (mcp.clone(), ctx.shutdown.clone());
        tokio::spawn(async move {
            sweep.await;
            shutdown.cancelled().await;
            closer.close_all_now();
        });
        routes
            .add_service(pb::chat::chat_server::ChatServer::new(
                chat::service::ChatService::new(chat),
            ))
            .add_service(pb::mcp::mcp_server::McpServer::new(
                mcp::service::McpService::new(mcp),
            ))
            .add_service(pb::agents::agents_server::AgentsServer::new(
                agent::service::AgentsService::new(agents),
            ))
            .add_service(pb::gateway::gateway_server::GatewayServer::new(
                gateway::service::GatewayService::new(gateway),
            ))
            .add_service(pb::models::models_server::ModelsServer::new(
                models::service::ModelsService::new(downloads, checker, loader),
            ))
            .add_service(pb::memory::memory_server::MemoryServer::new(
                memory::service::MemoryService::new(memory),
            ))
            .add_service(pb::engines::engines_server::EnginesServer::new(
                llm::service::EnginesService::new(config, sessions),
            ))
    })
}
