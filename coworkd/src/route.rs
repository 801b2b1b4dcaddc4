//! The routing table: which process serves a gRPC service. Pure. coworkd
//! reads only the request path (and, for the worker contract, one header);
//! it never decodes a relayed message.

use crate::state::WorkerName;

/// Where a call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Served by coworkd itself (System, health, reflection).
    Local,
    /// Relayed to a worker.
    Worker(WorkerName),
}

/// Why a call cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The path is not `/package.Service/Method`.
    #[error("{0:?} is not a gRPC method path")]
    NotGrpc(String),
    /// No process serves this service.
    #[error("no Cowork process serves {0}")]
    UnknownService(String),
    /// A worker-contract call without a valid `cowork-worker` header.
    #[error("calls to cowork.worker.v1.Worker need the `cowork-worker` metadata key set to capture, agents or browser{0}")]
    MissingWorker(String),
}

/// The worker contract's service, addressed by header.
pub const WORKER_SERVICE: &str = "cowork.worker.v1.Worker";

/// One table: `cowork.<domain>.v1.*` → the process that serves the domain.
/// Adding a method needs nothing here; adding a domain adds one line.
const DOMAINS: &[(&str, Option<WorkerName>)] = &[
    ("system", None),
    ("capture", Some(WorkerName::Capture)),
    ("chat", Some(WorkerName::Agents)),
    ("engines", Some(WorkerName::Agents)),
    ("mcp", Some(WorkerName::Agents)),
    ("agents", Some(WorkerName::Agents)),
    ("models", Some(WorkerName::Agents)),
    ("gateway", Some(WorkerName::Agents)),
    ("memory", Some(WorkerName::Agents)),
    ("automations", Some(WorkerName::Agents)),
    ("notifications", Some(WorkerName::Agents)),
    ("thermal", Some(WorkerName::Agents)),
    ("apps", Some(WorkerName::Agents)),
    ("audio", Some(WorkerName::Agents)),
    ("browser", Some(WorkerName::Browser)),
];

/// Route a call by its path; `worker_header` is the `cowork-worker`
/// metadata value, used only for the worker contract.
pub fn route(path: &str, worker_header: Option<&str>) -> Result<Route, RouteError> {
    let service = cowork_proto::grpc::service_name(path)
        .ok_or_else(|| RouteError::NotGrpc(path.to_owned()))?;
    if service == WORKER_SERVICE {
        return match worker_header.map(str::parse::<WorkerName>) {
            Some(Ok(w)) => Ok(Route::Worker(w)),
            Some(Err(e)) => Err(RouteError::MissingWorker(format!(" ({e})"))),
            None => Err(RouteError::MissingWorker(String::new())),
        };
    }
    if service.starts_with("grpc.") {
        return Ok(Route::Local); // health, reflection
    }
    let domain = service
        .strip_prefix("cowork.")
        .and_then(|rest| rest.split('.').next());
    match domain.and_then(|d| DOMAINS.iter().find(|(name, _)| *name == d)) {
        Some((_, Some(worker))) => Ok(Route::Worker(*worker)),
        Some((_, None)) => Ok(Route::Local),
        None => Err(RouteError::UnknownService(service.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_service_name() {
        let cases = [
            ("/cowork.system.v1.System/Status", Route::Local),
            ("/grpc.health.v1.Health/Check", Route::Local),
            (
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                Route::Local,
            ),
            (
                "/cowork.capture.v1.Capture/GetStatus",
                Route::Worker(WorkerName::Capture),
            ),
            (
                "/cowork.chat.v1.Chat/SendMessage",
                Route::Worker(WorkerName::Agents),
            ),
            (
                "/cowork.chat.v1.Chat/AMethodAddedLater",
                Route::Worker(WorkerName::Agents),
            ),
            (
                "/cowork.memory.v1.Memory/Search",
                Route::Worker(WorkerName::Agents),
            ),
            (
                "/cowork.mcp.v1.Mcp/CallTool",
                Route::Worker(WorkerName::Agents),
            ),
            (
                "/cowork.browser.v1.Browser/Navigate",
                Route::Worker(WorkerName::Browser),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(route(path, None), Ok(want), "{path}");
        }
    }

    #[test]
    fn worker_contract_is_addressed_by_header() {
        let p = "/cowork.worker.v1.Worker/Ping";
        assert_eq!(
            route(p, Some("agents")),
            Ok(Route::Worker(WorkerName::Agents))
        );
        assert!(matches!(route(p, None), Err(RouteError::MissingWorker(_))));
        assert!(matches!(
            route(p, Some("nope")),
            Err(RouteError::MissingWorker(_))
        ));
    }

    #[test]
    fn unknown_and_malformed_paths_are_refused() {
        assert_eq!(
            route("/cowork.unknown.v1.X/Y", None),
            Err(RouteError::UnknownService("cowork.unknown.v1.X".into()))
        );
        assert!(matches!(
            route("/other.pkg.Svc/M", None),
            Err(RouteError::UnknownService(_))
        ));
        assert!(matches!(
            route("/index.html", None),
            Err(RouteError::NotGrpc(_))
        ));
    }
}
