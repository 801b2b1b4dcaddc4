//! Small gRPC-over-HTTP/2 helpers shared by the servers: service names from
//! paths, `grpc-timeout` parsing, trailers-only status responses, and the
//! standard health and reflection services.

use std::time::Duration;
use tonic::body::Body;

/// Metadata key that addresses a call on the worker contract
/// (`cowork.worker.v1.Worker`) to one worker through the public socket.
pub const WORKER_HEADER: &str = "cowork-worker";

/// The gRPC deadline header (`grpc-timeout`).
pub const GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

/// The fully qualified service name of a gRPC path: `/pkg.Svc/Method` →
/// `pkg.Svc`. `None` for anything that is not a gRPC path.
pub fn service_name(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some(service)
}

/// Parse a `grpc-timeout` header value (`TimeoutValue TimeoutUnit`: at most
/// 8 digits, then one of H M S m u n). `None` when malformed.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The deadline a request carries, if any.
pub fn request_timeout<B>(req: &http::Request<B>) -> Option<Duration> {
    header_timeout(req.headers())
}

/// The `grpc-timeout` in a header map, if present and well formed.
pub fn header_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(GRPC_TIMEOUT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
}

/// A trailers-only gRPC response carrying `status`.
pub fn status_response(status: tonic::Status) -> http::Response<Body> {
    status.into_http()
}

/// The standard `grpc.health.v1.Health` service and a reporter to update it.
pub fn health() -> (
    tonic_health::server::HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// Add server reflection (v1 and v1alpha, for older grpcurl) over every
/// Cowork proto to `routes`.
pub fn add_reflection(routes: tonic::service::Routes) -> tonic::service::Routes {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha();
    let mut routes = routes;
    // The descriptor sets are compiled into the binary: failing to parse them
    // is a build defect, reported once and served without reflection.
    match v1 {
        Ok(s) => routes = routes.add_service(s),
        Err(e) => tracing::error!(error = %e, "reflection v1 unavailable"),
    }
    match v1alpha {
        Ok(s) => routes = routes.add_service(s),
        Err(e) => tracing::error!(error = %e, "reflection v1alpha unavailable"),
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        assert_eq!(
            service_name("/cowork.chat.v1.Chat/SendMessage"),
            Some("cowork.chat.v1.Chat")
        );
        assert_eq!(
            service_name("/grpc.health.v1.Health/Check"),
            Some("grpc.health.v1.Health")
        );
        for bad in ["", "/", "//x", "/svc/", "/svc", "nosl/ash", "/a/b/c"] {
            assert_eq!(service_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "100", "123456789S", "-1S", "1x", "1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }
}
