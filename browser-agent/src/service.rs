//! `cowork.browser.v1.Browser`: converts requests to [`Action`]s and
//! [`Outcome`]s to responses; nothing else.

use crate::action::{Action, Caller, Outcome, TabInfo};
use crate::driver::{BrowserError, Driver};
use crate::screenshots::ScreenshotError;
use crate::store::LoggedAction;
use cowork_proto::pb::browser::{self as pb, browser_server};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// The service over one [`Driver`].
#[derive(Debug, Clone)]
pub struct BrowserService {
    driver: Driver,
}

impl BrowserService {
    /// Serve `driver`.
    pub fn new(driver: Driver) -> Self {
        Self { driver }
    }

    async fn act(&self, caller: Option<pb::Caller>, action: Action) -> Result<Outcome, Status> {
        let c = caller.unwrap_or_default();
        let caller = Caller {
            operation_id: c.operation_id,
            agent: c.agent,
            approved: c.approved,
        };
        self.driver.act(&caller, action).await.map_err(status)
    }

    async fn action(
        &self,
        caller: Option<pb::Caller>,
        action: Action,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let o = self.act(caller, action).await?;
        Ok(Response::new(action_response(o)))
    }

    async fn tabs(
        &self,
        caller: Option<pb::Caller>,
        action: Action,
    ) -> Result<Response<pb::TabsResponse>, Status> {
        let o = self.act(caller, action).await?;
        Ok(Response::new(pb::TabsResponse {
            outcome: outcome_name(&o).into(),
            approval_reasons: o.approval_reasons,
            tabs: o.tabs.into_iter().map(tab).collect(),
        }))
    }
}

fn status(e: BrowserError) -> Status {
    match e {
        BrowserError::Invalid(m) => Status::invalid_argument(m),
        BrowserError::NotFound(m) => Status::deadline_exceeded(m),
        BrowserError::Config(e) => Status::failed_precondition(e.to_string()),
        e @ (BrowserError::Launch(_) | BrowserError::Lost(_)) => Status::unavailable(e.to_string()),
        BrowserError::Page(m) => Status::aborted(m),
        e @ BrowserError::Log(_) => Status::internal(e.to_string()),
    }
}

fn outcome_name(o: &Outcome) -> &'static str {
    if o.approval_reasons.is_empty() {
        "ok"
    } else {
        "needs_approval"
    }
}

fn tab(t: TabInfo) -> pb::Tab {
    pb::Tab {
        index: t.index as u32,
        url: t.url,
        title: t.title,
        current: t.current,
    }
}

fn action_response(o: Outcome) -> pb::ActionResponse {
    pb::ActionResponse {
        outcome: outcome_name(&o).into(),
        approval_reasons: o.approval_reasons,
        url: o.url,
        title: o.title,
        text: o.text,
        duration_ms: o.duration_ms,
        dialogs: o.dialogs,
        downloads: o.downloads,
        action_id: o.action_id,
        new_tabs: o.new_tabs.into_iter().map(tab).collect(),
    }
}

fn logged(a: LoggedAction) -> pb::LoggedAction {
    pb::LoggedAction {
        id: a.id,
        at_ms: a.at_ms,
        operation_id: a.operation_id,
        action: a.action,
        target_ref: a.target_ref,
        target_name: a.target_name,
        url_before: a.url_before,
        url_after: a.url_after,
        duration_ms: a.duration_ms,
        outcome: a.outcome,
        screenshot_sha256: a.screenshot_sha256,
        detail: a.detail,
    }
}

#[tonic::async_trait]
impl browser_server::Browser for BrowserService {
    async fn get_status(
        &self,
        _: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        let s = self.driver.status();
        Ok(Response::new(pb::GetStatusResponse {
            pid: std::process::id(),
            browser_open: s.chromium_pid != 0,
            profile_dir: self.driver.profile_dir().display().to_string(),
            chromium_pid: s.chromium_pid,
            headless: s.headless,
            tabs: s.tabs.into_iter().map(tab).collect(),
            relaunches: s.relaunches,
            last_failure: s.last_failure,
            downloads_dir: self.driver.downloads_dir().display().to_string(),
        }))
    }

    async fn navigate(
        &self,
        r: Request<pb::NavigateRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let r = r.into_inner();
        self.action(r.caller, Action::Navigate { url: r.url }).await
    }

    async fn snapshot(
        &self,
        r: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        let r = r.into_inner();
        let o = self
            .act(
                r.caller,
                Action::Snapshot {
                    max_chars: r.max_chars as usize,
                },
            )
            .await?;
        Ok(Response::new(pb::SnapshotResponse {
            outcome: outcome_name(&o).into(),
            approval_reasons: o.approval_reasons,
            url: o.url,
            title: o.title,
            text: o.text,
            elements: o.elements.0 as u32,
            elided: o.elements.1 as u32,
            action_id: o.action_id,
        }))
    }

    async fn click(
        &self,
        r: Request<pb::TargetRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let r = r.into_inner();
        self.action(r.caller, Action::Click { reference: r.r#ref })
            .await
    }

    async fn r#type(
        &self,
        r: Request<pb::TypeRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let r = r.into_inner();
        self.action(
            r.caller,
            Action::Type {
                reference: r.r#ref,
                text: r.text,
                submit: r.submit,
            },
        )
        .await
    }

    async fn press(
        &self,
        r: Request<pb::PressRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let r = r.into_inner();
        self.action(r.caller, Action::Press { key: r.key }).await
    }

    async fn select(
        &self,
        r: Request<pb::SelectRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let r = r.into_inner();
        self.action(
            r.caller,
            Action::Select {
                reference: r.r#ref,
                value: r.value,
            },
        )
        .await
    }

    async fn scroll(
        &self,
        r: Request<pb::ScrollRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let r = r.into_inner();
        self.action(
            r.caller,
            Action::Scroll {
                reference: r.r#ref,
                dy: r.dy,
            },
        )
        .await
    }

    async fn hover(
        &self,
        r: Request<pb::TargetRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let r = r.into_inner();
        self.action(r.caller, Action::Hover { reference: r.r#ref })
            .await
    }

    async fn upload(
        &self,
        r: Request<pb::UploadRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let r = r.into_inner();
        self.action(
            r.caller,
            Action::Upload {
                reference: r.r#ref,
                paths: r.paths,
            },
        )
        .await
    }

    async fn extract_text(
        &self,
        r: Request<pb::TargetRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let r = r.into_inner();
        self.action(r.caller, Action::ExtractText { reference: r.r#ref })
            .await
    }

    async fn evaluate(
        &self,
        r: Request<pb::EvaluateRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let r = r.into_inner();
        self.action(
            r.caller,
            Action::Evaluate {
                expression: r.expression,
            },
        )
        .await
    }

    async fn screenshot(
        &self,
        r: Request<pb::ScreenshotRequest>,
    ) -> Result<Response<pb::ScreenshotResponse>, Status> {
        let r = r.into_inner();
        let o = self
            .act(
                r.caller,
                Action::Screenshot {
                    full_page: r.full_page,
                },
            )
            .await?;
        Ok(Response::new(pb::ScreenshotResponse {
            outcome: outcome_name(&o).into(),
            approval_reasons: o.approval_reasons,
            png: o.png,
            sha256: o.png_sha256,
            action_id: o.action_id,
        }))
    }

    async fn tabs(
        &self,
        _: Request<pb::TabsRequest>,
    ) -> Result<Response<pb::TabsResponse>, Status> {
        BrowserService::tabs(self, None, Action::Tabs).await
    }

    async fn new_tab(
        &self,
        r: Request<pb::NavigateRequest>,
    ) -> Result<Response<pb::TabsResponse>, Status> {
        let r = r.into_inner();
        BrowserService::tabs(self, r.caller, Action::NewTab { url: r.url }).await
    }

    async fn close_tab(
        &self,
        r: Request<pb::TabRequest>,
    ) -> Result<Response<pb::TabsResponse>, Status> {
        let r = r.into_inner();
        BrowserService::tabs(
            self,
            r.caller,
            Action::CloseTab {
                index: r.index as usize,
            },
        )
        .await
    }

    async fn switch_tab(
        &self,
        r: Request<pb::TabRequest>,
    ) -> Result<Response<pb::TabsResponse>, Status> {
        let r = r.into_inner();
        BrowserService::tabs(
            self,
            r.caller,
            Action::SwitchTab {
                index: r.index as usize,
            },
        )
        .await
    }

    async fn back(
        &self,
        r: Request<pb::BackRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        self.action(r.into_inner().caller, Action::Back).await
    }

    async fn wait_for(
        &self,
        r: Request<pb::WaitForRequest>,
    ) -> Result<Response<pb::ActionResponse>, Status> {
        let r = r.into_inner();
        self.action(
            r.caller,
            Action::WaitFor {
                text: r.text,
                timeout: Duration::from_millis(r.timeout_ms as u64),
            },
        )
        .await
    }

    async fn log(&self, r: Request<pb::LogRequest>) -> Result<Response<pb::LogResponse>, Status> {
        let r = r.into_inner();
        let rows = self
            .driver
            .log()
            .list(r.limit, r.operation_id)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::LogResponse {
            actions: rows.into_iter().map(logged).collect(),
        }))
    }

    async fn get_screenshot(
        &self,
        r: Request<pb::GetScreenshotRequest>,
    ) -> Result<Response<pb::GetScreenshotResponse>, Status> {
        let sha = r.into_inner().sha256;
        let store = self.driver.screenshots().clone();
        let png = tokio::task::spawn_blocking(move || store.load(&sha))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| match e {
                ScreenshotError::BadHash(_) => Status::invalid_argument(e.to_string()),
                ScreenshotError::NotKept(_) => Status::not_found(e.to_string()),
                ScreenshotError::Io { .. } => Status::internal(e.to_string()),
            })?;
        Ok(Response::new(pb::GetScreenshotResponse { png }))
    }

    async fn close(
        &self,
        _: Request<pb::CloseRequest>,
    ) -> Result<Response<pb::CloseResponse>, Status> {
        Ok(Response::new(pb::CloseResponse {
            was_open: self.driver.close().await,
        }))
    }
}
