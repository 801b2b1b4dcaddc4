//! capture-agent: records what the person works on into cowork.db.
//! Skeleton: serves the worker contract and `cowork.capture.v1.Capture`;
//! the capture streams land with the capture issue.

use cowork_proto::pb::capture::{capture_server, GetStatusRequest, GetStatusResponse};
use tonic::{Request, Response, Status};

struct Capture {
    database_path: String,
}

#[tonic::async_trait]
impl capture_server::Capture for Capture {
    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(GetStatusResponse {
            pid: std::process::id(),
            streams: Vec::new(),
            database_path: self.database_path.clone(),
        }))
    }
}

fn main() -> std::process::ExitCode {
    cowork_proto::worker::main("capture", |ctx, routes| {
        routes.add_service(capture_server::CaptureServer::new(Capture {
            database_path: ctx.paths.home.join("cowork.db").display().to_string(),
        }))
    })
}
