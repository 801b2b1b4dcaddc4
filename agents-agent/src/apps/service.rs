//! `cowork.apps.v1.Apps`: proto ⇄ [`Apps`].

use super::manifest::Manifest;
use super::{AppView, Apps, AppsError};
use cowork_proto::pb::apps::{self as pb, apps_server};
use tonic::{Request, Response, Status};

/// The largest message the service takes: a zip of `[apps] max_zip_mb`
/// (50 MiB by default) with room to spare.
pub const MAX_MESSAGE: usize = 256 << 20;

/// The service.
#[derive(Clone)]
pub struct AppsService {
    apps: Apps,
}

impl AppsService {
    /// Serve `apps`.
    pub fn new(apps: Apps) -> Self {
        Self { apps }
    }
}

impl From<AppsError> for Status {
    fn from(e: AppsError) -> Self {
        match &e {
            AppsError::NotFound(_) => Status::not_found(e.to_string()),
            AppsError::Disclosure(_) => Status::failed_precondition(e.to_string()),
            AppsError::Invalid(_) | AppsError::Archive(_) | AppsError::Manifest(_) => {
                Status::invalid_argument(e.to_string())
            }
            AppsError::Bundle(super::bundle::BundleError::NoBundler(_)) => {
                Status::failed_precondition(e.to_string())
            }
            AppsError::Bundle(_) => Status::invalid_argument(e.to_string()),
            AppsError::Config(_) => Status::failed_precondition(e.to_string()),
            AppsError::Listen { .. } => Status::unavailable(e.to_string()),
            AppsError::Io(_) | AppsError::Db(_) => Status::internal(e.to_string()),
        }
    }
}

fn manifest_pb(m: Manifest) -> pb::Manifest {
    pb::Manifest {
        name: m.name,
        description: m.description,
        category: m.category,
        data_use_description: m.data_use_description,
        api_hosts: m.api_hosts,
        source: m.source,
        version: m.version,
    }
}

fn app_pb(v: AppView) -> pb::App {
    pb::App {
        id: v.row.id,
        manifest: Some(manifest_pb(v.row.manifest)),
        installed_unix_ms: v.row.installed_ms,
        url: v.url,
        entry: v.row.entry,
        bundle_bytes: v.row.bundle_bytes,
        files: v.row.files,
        sha256: v.row.sha256,
        last_opened_unix_ms: v.row.last_opened_ms,
        reads: v.reads,
        conversations: v.conversations,
        disclosure: v.row.disclosure,
    }
}

#[tonic::async_trait]
impl apps_server::Apps for AppsService {
    async fn inspect(
        &self,
        r: Request<pb::InspectRequest>,
    ) -> Result<Response<pb::InspectResponse>, Status> {
        let r = r.into_inner();
        let p = self.apps.inspect(r.zip, &r.file_name).await?;
        Ok(Response::new(pb::InspectResponse {
            manifest: Some(manifest_pb(p.manifest)),
            disclosure: p.disclosure,
            sha256: p.sha256,
            files: p.files,
            unpacked_bytes: p.unpacked_bytes,
            entry: p.entry,
            bundle_bytes: p.bundle_bytes,
            bundle_ms: p.bundle_ms,
        }))
    }

    async fn install(&self, r: Request<pb::InstallRequest>) -> Result<Response<pb::App>, Status> {
        let r = r.into_inner();
        let v = self
            .apps
            .install(
                r.zip,
                &r.file_name,
                r.disclosure_accepted,
                &r.expected_sha256,
            )
            .await?;
        Ok(Response::new(app_pb(v)))
    }

    async fn list(
        &self,
        _: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let apps = self.apps.list().await?.into_iter().map(app_pb).collect();
        Ok(Response::new(pb::ListResponse { apps }))
    }

    async fn show(&self, r: Request<pb::ShowRequest>) -> Result<Response<pb::App>, Status> {
        Ok(Response::new(app_pb(
            self.apps.show(&r.into_inner().id).await?,
        )))
    }

    async fn remove(
        &self,
        r: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let id = r.into_inner().id;
        let d = self.apps.remove(&id).await?;
        Ok(Response::new(pb::RemoveResponse {
            id,
            files_deleted: d.files,
            conversations_deleted: d.conversations,
            messages_deleted: d.messages,
            audit_rows_deleted: d.audit_rows,
        }))
    }

    async fn open(
        &self,
        r: Request<pb::OpenRequest>,
    ) -> Result<Response<pb::OpenResponse>, Status> {
        let o = self.apps.open(&r.into_inner().id).await?;
        Ok(Response::new(pb::OpenResponse {
            url: o.url,
            profile_dir: o.profile_dir.display().to_string(),
            chromium: o.chromium,
            log_file: o.log_file.display().to_string(),
        }))
    }

    async fn audit(
        &self,
        r: Request<pb::AuditRequest>,
    ) -> Result<Response<pb::AuditResponse>, Status> {
        let r = r.into_inner();
        let entries = self
            .apps
            .audit_log(&r.id, r.limit)
            .await?
            .into_iter()
            .map(|a| pb::AuditEntry {
                at_unix_ms: a.at_ms,
                method: a.method,
                outcome: a.outcome,
                items: a.items,
                duration_ms: a.duration_ms,
                error: a.error,
            })
            .collect();
        Ok(Response::new(pb::AuditResponse { entries }))
    }

    async fn get_status(
        &self,
        _: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::Status>, Status> {
        let s = self.apps.status().await?;
        Ok(Response::new(pb::Status {
            port: s.port as u32,
            listening: s.listening,
            error: s.error,
            installed: s.installed,
            bundler: s.bundler,
            bundler_error: s.bundler_error,
        }))
    }
}
