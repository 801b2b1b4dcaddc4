//! `cowork.gateway.v1.Gateway`: a thin adapter to [`Gateway`].

use super::server::{Gateway, GatewayError, Status};
use cowork_proto::pb::gateway as pb;
use tonic::{Request, Response};

impl From<GatewayError> for tonic::Status {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Listen { .. } => tonic::Status::failed_precondition(e.to_string()),
            _ => tonic::Status::internal(e.to_string()),
        }
    }
}

/// The Gateway service.
#[derive(Clone)]
pub struct GatewayService {
    gateway: Gateway,
}

impl GatewayService {
    /// Serve `gateway`.
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway }
    }
}

fn status(s: Status) -> pb::GatewayStatus {
    pb::GatewayStatus {
        enabled: s.enabled,
        url: format!("http://127.0.0.1:{}", s.port),
        port: s.port.into(),
        listening: s.listening,
        error: s.error,
        requests: s.requests,
    }
}

#[tonic::async_trait]
impl pb::gateway_server::Gateway for GatewayService {
    async fn enable(
        &self,
        req: Request<pb::EnableRequest>,
    ) -> Result<Response<pb::GatewayStatus>, tonic::Status> {
        let port = match req.into_inner().port {
            0 => None,
            p => Some(u16::try_from(p).map_err(|_| {
                tonic::Status::invalid_argument(format!("port {p} is not 1–65535"))
            })?),
        };
        Ok(Response::new(status(self.gateway.enable(port).await?)))
    }

    async fn disable(
        &self,
        _: Request<pb::DisableRequest>,
    ) -> Result<Response<pb::GatewayStatus>, tonic::Status> {
        Ok(Response::new(status(self.gateway.disable().await?)))
    }

    async fn get_status(
        &self,
        _: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GatewayStatus>, tonic::Status> {
        Ok(Response::new(status(self.gateway.status().await?)))
    }

    async fn get_key(
        &self,
        req: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::GatewayKey>, tonic::Status> {
        let key = self.gateway.key(req.into_inner().rotate)?;
        Ok(Response::new(pb::GatewayKey { key }))
    }
}
