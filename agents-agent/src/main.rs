//! agents-agent: models, chat, memory, MCP tools and automations.
//! Serves the worker contract, `cowork.chat.v1.Chat` (threads, routed and
//! streamed answers, usage), `cowork.engines.v1.Engines` (local engine
//! detection), `cowork.mcp.v1.Mcp` (MCP servers and tools),
//! `cowork.agents.v1.Agents` (agent operations and tool approvals),
//! `cowork.models.v1.Models` (model downloads, fit checks, hardware, and
//! the llama-server sessions it runs itself),
//! `cowork.gateway.v1.Gateway` (the local OpenAI-compatible API) and
//! `cowork.memory.v1.Memory` (everything captured or said, indexed for
//! keyword and vector search in the background) and `cowork.apps.v1.Apps`
//! (installed web apps, served on loopback with their read lane).
//! Reports itself degraded while no model engine can answer, or while
//! cowork.db cannot be used (e.g. it was migrated by a newer build).

use agents_agent::{
    agent, apps, audio, automation, browser, chat, db, gateway, llm, mcp, memory, models,
    notifications, schema, thermal,
};
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
        let browser_tools = browser::client::BrowserTools::new(ctx.paths.public_socket());
        let agents =
            agent::executor::Agents::new(db.clone(), config.clone(), mcp.clone(), resolver.clone())
                .with_browser(browser_tools.clone());
        // Notifications are decided here and shown by coworkd (its
        // public socket); automations run flows; the heat coworkd reads
        // pauses local AI.
        let notifier =
            notifications::Notifier::new(db.clone(), config.clone(), ctx.paths.public_socket());
        let automations = automation::runner::Automations::new(
            db.clone(),
            config.clone(),
            mcp.clone(),
            agents.clone(),
            Some(browser_tools),
            notifier.clone(),
        );
        agents.set_flows(std::sync::Arc::new(automations.clone()));
        let heat =
            thermal::Thermal::new(resolver.watch().clone(), notifier.clone(), config.clone());
        notifier.set_accept_handler(accept_handler(
            automations.clone(),
            agents.clone(),
            heat.clone(),
        ));
        let memory = memory::Memory::new(db.clone(), config.clone(), sessions.clone());
        // Whisper models: the home's own, then where scripts/whisper-model.sh
        // puts them.
        let mut whisper_dirs = vec![ctx.paths.models_dir().join("whisper")];
        if let Some(cache) = std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))
        {
            whisper_dirs.push(cache.join("cowork/whisper"));
        }
        let transcription = audio::Audio::new(
            db.clone(),
            config.clone(),
            ctx.paths.audio_dir(),
            whisper_dirs,
            Some(heat.clone()),
        );
        transcription.spawn(ctx.shutdown.clone());
        // Chat answers with memory's layers (working memory, pins, recent
        // capture, search, backfill; grounded questions' refusals).
        // Installed apps read context through their lane (data, never
        // tools); a chat thread may belong to one.
        let installed_apps = apps::Apps::new(
            db.clone(),
            memory.clone(),
            config.clone(),
            ctx.paths.apps_dir(),
            ctx.paths.logs_dir.clone(),
            ctx.shutdown.clone(),
        );
        let chat = chat::Chat::new(db.clone(), config.clone(), resolver.clone())
            .with_grounding(std::sync::Arc::new(memory.clone()))
            .with_apps(std::sync::Arc::new(installed_apps.clone()));
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
        // Runs a killed agents-agent was driving go on from their last
        // committed step (a step in flight is never re-run on a guess).
        let interrupted = automations.interrupted().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read interrupted automation runs");
            Vec::new()
        });
        let resumer_runs = automations.clone();
        tokio::spawn(async move { resumer_runs.resume_interrupted(interrupted).await });
        automation::triggers::spawn(automations.clone(), ctx.shutdown.clone());
        let recovering = installed_apps.clone();
        tokio::spawn(async move {
            if let Err(e) = recovering.recover().await {
                tracing::warn!(error = %e, "installed apps are not served");
            }
        });
        notifier.spawn(ctx.shutdown.clone());
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
            .add_service(pb::automations::automations_server::AutomationsServer::new(
                automation::service::AutomationsService::new(automations),
            ))
            .add_service(
                pb::notifications::notifications_server::NotificationsServer::new(
                    notifications::service::NotificationsService::new(notifier),
                ),
            )
            .add_service(pb::thermal::thermal_server::ThermalServer::new(
                thermal::service::ThermalService::new(heat),
            ))
            .add_service(
                pb::apps::apps_server::AppsServer::new(apps::service::AppsService::new(
                    installed_apps,
                ))
                .max_decoding_message_size(apps::service::MAX_MESSAGE),
            )
            .add_service(pb::audio::audio_server::AudioServer::new(
                audio::service::AudioService::new(transcription),
            ))
    })
}

/// What an accepted notification does: its action's `kind` decides.
fn accept_handler(
    automations: automation::runner::Automations,
    agents: agent::executor::Agents,
    heat: thermal::Thermal,
) -> notifications::AcceptHandler {
    std::sync::Arc::new(move |action: serde_json::Value| {
        let (automations, agents, heat) = (automations.clone(), agents.clone(), heat.clone());
        Box::pin(async move {
            let s = |k: &str| {
                action
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            match s("kind").as_str() {
                "restore_local" => {
                    let st = heat.restore_local().await;
                    Ok(format!("local AI {}", st.mode.name()))
                }
                "approval" => {
                    let id = s("id");
                    let (run, call) = id.split_once('/').ok_or("a malformed approval id")?;
                    let op = agents
                        .decide(
                            run,
                            call,
                            true,
                            false,
                            agents_agent::agent::approval::DecidedBy::Notification,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(format!("approved {id}: {}", op.status.name()))
                }
                "run_flow" => {
                    let r = automations
                        .run_now(&s("flow"), Default::default(), false)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(format!("started run {}", r.id))
                }
                "agent" => {
                    let op = agents
                        .start(s("task"), None, false, 8, false)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(format!("started operation {}", op.id))
                }
                other => Err(format!("nothing to do for {other:?}")),
            }
        })
    })
}
