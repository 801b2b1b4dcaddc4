//! `cowork.notifications.v1.Notifications`: proto ⇄ [`Notifier`].

use super::{Notifier, NotifyError, Row};
use cowork_proto::pb::notifications::{self as pb, notifications_server::Notifications};
use tonic::{Request, Response, Status};

/// The service.
#[derive(Debug, Clone)]
pub struct NotificationsService {
    notifier: Notifier,
}

impl NotificationsService {
    /// Serve `notifier`.
    pub fn new(notifier: Notifier) -> Self {
        Self { notifier }
    }
}

impl From<NotifyError> for Status {
    fn from(e: NotifyError) -> Self {
        match e {
            NotifyError::NotFound(_) => Status::not_found(e.to_string()),
            NotifyError::Invalid(_) => Status::invalid_argument(e.to_string()),
            NotifyError::Db(_) => Status::internal(e.to_string()),
        }
    }
}

fn to_pb(n: Row) -> pb::Notification {
    pb::Notification {
        id: n.id,
        trigger_type: n.trigger_type,
        tier: n.tier,
        title: n.title,
        body: n.body,
        state: n.state,
        note: n.note,
        created_ms: n.created_ms,
        delivered_ms: n.delivered_ms,
        answered_ms: n.answered_ms,
        action_json: n.action_json,
        members: n.members,
        thread_id: n.thread_id,
    }
}

#[tonic::async_trait]
impl Notifications for NotificationsService {
    async fn list(
        &self,
        r: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let rows = self.notifier.list(r.into_inner().limit).await?;
        Ok(Response::new(pb::ListResponse {
            notifications: rows.into_iter().map(to_pb).collect(),
        }))
    }

    async fn respond(
        &self,
        r: Request<pb::RespondRequest>,
    ) -> Result<Response<pb::Notification>, Status> {
        let r = r.into_inner();
        Ok(Response::new(to_pb(
            self.notifier.respond(&r.id, &r.action).await?,
        )))
    }

    async fn get_settings(
        &self,
        _: Request<pb::GetSettingsRequest>,
    ) -> Result<Response<pb::Settings>, Status> {
        let (s, counts, held, demoted, deep) = self.notifier.status().await?;
        Ok(Response::new(pb::Settings {
            interval_s: s.interval_s as u32,
            urgent_per_hour: s.urgent_per_hour,
            helpful_per_hour: s.helpful_per_hour,
            informational_per_hour: s.informational_per_hour,
            bundle_hold_s: s.bundle_hold_s as u32,
            cooldown_s: (s.cooldown_min * 60.0) as u32,
            deep_work_min: s.deep_work_min.round() as u32,
            urgent_last_hour: counts[0],
            helpful_last_hour: counts[1],
            informational_last_hour: counts[2],
            held: held as u32,
            deep_work: deep,
            demoted,
        }))
    }
}
