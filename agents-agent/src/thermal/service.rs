//! `cowork.thermal.v1.Thermal`: proto ⇄ [`Thermal`].

use super::{Level, State, Thermal};
use cowork_proto::pb::thermal::{self as pb, thermal_server};
use tonic::{Request, Response, Status};

/// The service.
#[derive(Debug, Clone)]
pub struct ThermalService {
    thermal: Thermal,
}

impl ThermalService {
    /// Serve `thermal`.
    pub fn new(thermal: Thermal) -> Self {
        Self { thermal }
    }
}

fn to_pb(s: State) -> pb::State {
    pb::State {
        level: s.level.name().into(),
        mode: s.mode.name().into(),
        source: s.source,
        since_ms: s.since_ms,
        cloud_allowed: s.cloud_allowed,
        detail: s.detail,
    }
}

#[tonic::async_trait]
impl thermal_server::Thermal for ThermalService {
    async fn report(&self, r: Request<pb::Reading>) -> Result<Response<pb::State>, Status> {
        let r = r.into_inner();
        let level = Level::parse(&r.level).ok_or_else(|| {
            Status::invalid_argument(format!(
                "level is nominal, fair, serious or critical, not {:?}",
                r.level
            ))
        })?;
        Ok(Response::new(to_pb(
            self.thermal.report(level, r.source).await,
        )))
    }

    async fn get(&self, _: Request<pb::GetRequest>) -> Result<Response<pb::State>, Status> {
        Ok(Response::new(to_pb(self.thermal.get())))
    }

    async fn restore_local(
        &self,
        _: Request<pb::RestoreLocalRequest>,
    ) -> Result<Response<pb::State>, Status> {
        Ok(Response::new(to_pb(self.thermal.restore_local().await)))
    }
}
