//! browser-agent: drives Chromium over CDP with a persistent profile
//! (`$COWORK_HOME/browser-profile`), serving `cowork.browser.v1.Browser`.
//! coworkd starts it on the first call routed to it and stops it when
//! idle; stopping closes Chromium gracefully (its profile flushed), and a
//! killed browser-agent takes Chromium along (parent-death signal).

use browser_agent::{driver::Driver, service::BrowserService};
use cowork_proto::pb::browser::browser_server::BrowserServer;

fn main() -> std::process::ExitCode {
    cowork_proto::worker::main("browser", |ctx, routes| {
        let driver = Driver::new(&ctx.paths);
        let closing = driver.clone();
        ctx.on_stop.add(async move {
            closing.close().await;
        });
        routes.add_service(BrowserServer::new(BrowserService::new(driver)))
    })
}
