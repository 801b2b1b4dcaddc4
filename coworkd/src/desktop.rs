//! Desktop notifications, dispatched for agents-agent (which decides what
//! and when; coworkd only shows them): on Linux through the freedesktop
//! `org.freedesktop.Notifications` D-Bus interface on the session bus
//! (notify-rust over zbus), with Accept and Expand actions; the person's
//! answer (accept, expand, or dismiss — closed by the person) goes back
//! to `cowork.notifications.v1.Notifications/Respond`. Without a session
//! bus or a notification server they are `unavailable`, with the reason;
//! nothing crashes. macOS shows them through the notification centre
//! (notify-rust's mac-notification-sys backend), without action buttons.

use cowork_proto::pb::system::{NotifyRequest, NotifyResponse};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The dispatcher (cheap to clone).
#[derive(Debug, Clone)]
pub struct Desktop {
    /// agents-agent's socket, for the answers.
    agents_socket: PathBuf,
    /// "available", or "unavailable: why" (the last attempt).
    state: Arc<Mutex<String>>,
}

/// What the person did with a notification, in Respond's words.
pub fn answer_of(action: Option<&str>, closed_by_person: bool) -> Option<&'static str> {
    match action {
        Some("default") | Some("accept") => Some("accept"),
        Some("expand") => Some("expand"),
        Some(_) => None,
        None if closed_by_person => Some("dismiss"),
        None => None,
    }
}

impl Desktop {
    /// Answers go to agents-agent at `agents_socket`.
    pub fn new(agents_socket: PathBuf) -> Self {
        let state = if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none()
            && cfg!(not(target_os = "macos"))
        {
            "unavailable: no session bus (DBUS_SESSION_BUS_ADDRESS is not set)"
        } else {
            "available (not used yet)"
        };
        Self {
            agents_socket,
            state: Arc::new(Mutex::new(state.into())),
        }
    }

    /// "available" or "unavailable: why".
    pub fn state(&self) -> String {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set_state(&self, s: String) {
        if let Ok(mut g) = self.state.lock() {
            *g = s;
        }
    }

    /// Show one notification.
    pub async fn notify(&self, req: NotifyRequest) -> NotifyResponse {
        match self.show(&req).await {
            Ok(desktop_id) => {
                self.set_state("available".into());
                NotifyResponse {
                    dispatched: true,
                    unavailable_reason: String::new(),
                    desktop_id,
                }
            }
            Err(why) => {
                tracing::warn!(id = %req.id, reason = %why, "notification not shown");
                self.set_state(format!("unavailable: {why}"));
                NotifyResponse {
                    dispatched: false,
                    unavailable_reason: why,
                    desktop_id: 0,
                }
            }
        }
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    async fn show(&self, req: &NotifyRequest) -> Result<u32, String> {
        use notify_rust::{CloseReason, Notification, NotificationResponse, Urgency};
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            return Err("no session bus (DBUS_SESSION_BUS_ADDRESS is not set)".into());
        }
        let mut n = Notification::new();
        n.appname("Cowork").summary(&req.title).body(&req.body);
        n.urgency(match req.tier.as_str() {
            "urgent" => Urgency::Critical,
            "helpful" => Urgency::Normal,
            _ => Urgency::Low,
        });
        if req.actionable {
            n.action("default", "Accept").action("expand", "Expand");
        }
        let handle = tokio::time::timeout(std::time::Duration::from_secs(5), n.show_async())
            .await
            .map_err(|_| "the notification server did not answer in 5 s".to_string())?
            .map_err(|e| format!("no notification server on the session bus: {e}"))?;
        let desktop_id = handle.id();
        let (id, socket) = (req.id.clone(), self.agents_socket.clone());
        tokio::spawn(async move {
            let mut answer: Option<&'static str> = None;
            handle
                .wait_for_action_async(|r: &NotificationResponse| {
                    answer = match r {
                        NotificationResponse::Default => answer_of(Some("default"), false),
                        NotificationResponse::Action(a) => answer_of(Some(a.as_str()), false),
                        NotificationResponse::Closed(CloseReason::Dismissed) => {
                            answer_of(None, true)
                        }
                        _ => None,
                    };
                })
                .await;
            if let Some(a) = answer {
                respond(&socket, &id, a).await;
            }
        });
        Ok(desktop_id)
    }

    #[cfg(target_os = "macos")]
    async fn show(&self, req: &NotifyRequest) -> Result<u32, String> {
        let mut n = notify_rust::Notification::new();
        n.summary(&req.title).body(&req.body);
        tokio::task::spawn_blocking(move || n.show().map(|_| 0).map_err(|e| e.to_string()))
            .await
            .map_err(|e| e.to_string())?
    }

    #[cfg(not(unix))]
    async fn show(&self, _: &NotifyRequest) -> Result<u32, String> {
        Err("desktop notifications are not supported on this platform".into())
    }
}

/// Tell agents-agent what the person did.
#[cfg_attr(target_os = "macos", allow(dead_code))]
async fn respond(socket: &std::path::Path, id: &str, action: &str) {
    use cowork_proto::pb::notifications::{
        notifications_client::NotificationsClient, RespondRequest,
    };
    let r = async {
        let ch = cowork_proto::uds::connect(socket)
            .await
            .map_err(|e| e.to_string())?;
        NotificationsClient::new(ch)
            .respond(RespondRequest {
                id: id.to_owned(),
                action: action.to_owned(),
            })
            .await
            .map_err(|e| e.message().to_string())
    }
    .await;
    match r {
        Ok(_) => tracing::info!(%id, action, "notification answered on the desktop"),
        Err(e) => tracing::warn!(%id, action, error = %e, "the answer did not reach agents-agent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_answers_map_to_respond() {
        assert_eq!(answer_of(Some("default"), false), Some("accept"));
        assert_eq!(answer_of(Some("expand"), false), Some("expand"));
        assert_eq!(answer_of(None, true), Some("dismiss"));
        // Expired or closed by us: no answer.
        assert_eq!(answer_of(None, false), None);
        assert_eq!(answer_of(Some("other"), false), None);
    }
}
