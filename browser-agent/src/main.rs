//! browser-agent: drives Chromium over CDP with a persistent profile.
//! Skeleton: serves the worker contract and `cowork.browser.v1.Browser`;
//! CDP control lands with the browser issue. coworkd starts it on the first
//! call routed to it and stops it when idle.

use cowork_proto::pb::browser::{browser_server, GetStatusRequest, GetStatusResponse};
use tonic::{Request, Response, Status};

struct Browser {
    profile_dir: String,
}

#[tonic::async_trait]
impl browser_server::Browser for Browser {
    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(GetStatusResponse {
            pid: std::process::id(),
            browser_open: false,
            profile_dir: self.profile_dir.clone(),
        }))
    }
}

fn main() -> std::process::ExitCode {
    cowork_proto::worker::main("browser", |ctx, routes| {
        routes.add_service(browser_server::BrowserServer::new(Browser {
            profile_dir: ctx.paths.home.join("browser-profile").display().to_string(),
        }))
    })
}
