//! The loopback HTTP/1.1 servers' connections (the gateway's and the
//! apps'): [`serve`] accepts, one task per connection. What one connection may cost us: at most [`MAX_CONNECTIONS`] at
//! once (the rest refused at accept), [`HEADER_TIMEOUT`] to send a request
//! head once its first byte arrived, [`BODY_TIMEOUT`] for its body,
//! [`IDLE_TIMEOUT`] of silence between
//! requests. The rule ([`Activity::verdict`]) is pure; [`Tracked`] feeds it
//! from the socket and [`Busy`] from the request and its response body.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Connections served at once; one more is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 128;
/// From a request's first byte to its last header line.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// From a request's head to the end of its (at most 16 MiB) body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Silence tolerated on a kept-alive connection with no request open.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// What an excess connection is told before it is closed.
pub const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Connection: close\r\nContent-Length: 96\r\n\r\n\
{\"error\":{\"message\":\"too many connections\",\"type\":\"server_error\",\"code\":\"too_many_connections\"}}";

/// Why a connection is closed by us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// A request head took longer than [`HEADER_TIMEOUT`].
    SlowHeaders,
    /// No request and no byte for [`IDLE_TIMEOUT`].
    Idle,
}

/// One connection's activity.
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    /// Requests being served (their response bodies not yet sent).
    pub open: usize,
    /// The last byte in or out, or the end of the last request.
    pub last: Instant,
    /// When the first byte of a request head arrived, while none is open.
    pub head_since: Option<Instant>,
}

impl Activity {
    /// A connection accepted at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            open: 0,
            last: now,
            head_since: None,
        }
    }

    /// Whether to close the connection at `now`.
    pub fn verdict(&self, now: Instant) -> Option<Close> {
        if self.open > 0 {
            return None;
        }
        if let Some(t) = self.head_since {
            return (now.duration_since(t) >= HEADER_TIMEOUT).then_some(Close::SlowHeaders);
        }
        (now.duration_since(self.last) >= IDLE_TIMEOUT).then_some(Close::Idle)
    }
}

/// Shared between a connection's socket, its requests and its watchdog.
pub type Shared = Arc<Mutex<Activity>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Activity> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new connection's activity record.
pub fn shared() -> Shared {
    Arc::new(Mutex::new(Activity::new(Instant::now())))
}

/// Whether to close `s` now.
pub fn verdict(s: &Shared) -> Option<Close> {
    lock(s).verdict(Instant::now())
}

/// Held while a request is served, up to the end of its response body.
pub struct Busy(Shared);

impl Busy {
    /// A request's head has arrived.
    pub fn start(s: &Shared) -> Self {
        let mut a = lock(s);
        a.open += 1;
        a.head_since = None;
        a.last = Instant::now();
        Busy(s.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut a = lock(&self.0);
        a.open = a.open.saturating_sub(1);
        a.last = Instant::now();
    }
}

/// A socket that records its traffic in [`Activity`].
pub struct Tracked<S> {
    inner: S,
    activity: Shared,
}

impl<S> Tracked<S> {
    /// Wrap `inner`.
    pub fn new(inner: S, activity: Shared) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let now = Instant::now();
            let mut a = lock(&self.activity);
            a.last = now;
            if a.open == 0 && a.head_since.is_none() {
                a.head_since = Some(now);
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            lock(&self.activity).last = Instant::now();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A server's request handler: a request in, its response out.
pub type Handler<B> = Arc<
    dyn Fn(
            hyper::Request<hyper::body::Incoming>,
        ) -> futures::future::BoxFuture<'static, hyper::Response<B>>
        + Send
        + Sync,
>;

/// Accept on `listener` until `stop`: at most [`MAX_CONNECTIONS`] at once
/// (the rest refused at accept), one task per connection serving HTTP/1.1
/// through `handler`, each closed by [`verdict`], drained gracefully at
/// `stop`. `name` labels the logs.
pub async fn serve<B>(
    listener: tokio::net::TcpListener,
    stop: tokio_util::sync::CancellationToken,
    handler: Handler<B>,
    name: &'static str,
) where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait for some to
                    // close instead of spinning.
                    tracing::warn!(error = %e, server = name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Refused at once, without a task: it costs nothing beyond
            // this line.
            let _ = stream.try_write(REFUSAL);
            tracing::debug!(server = name, "connection refused: at the cap");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (handler, stop) = (handler.clone(), stop.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let activity = shared();
            let svc = {
                let activity = activity.clone();
                hyper::service::service_fn(move |req| {
                    let (handler, busy) = (handler.clone(), Busy::start(&activity));
                    async move {
                        let resp = handler(req).await;
                        // Busy until the body is sent (a stream).
                        Ok::<_, std::convert::Infallible>(resp.map(|b| {
                            b.map_frame(move |f| {
                                let _busy = &busy;
                                f
                            })
                        }))
                    }
                })
            };
            let io = Tracked::new(stream, activity.clone());
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
            tokio::pin!(conn);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, server = name, "connection ended");
                        }
                        break;
                    }
                    _ = tick.tick() => if let Some(why) = verdict(&activity) {
                        tracing::debug!(?why, server = name, "connection closed");
                        break;
                    },
                    _ = stop.cancelled() => {
                        // Let an answer in flight finish, then close.
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                        break;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_heads_and_idle_connections_are_closed_open_requests_never() {
        let t0 = Instant::now();
        let mut a = Activity::new(t0);
        assert_eq!(a.verdict(t0 + IDLE_TIMEOUT - Duration::from_secs(1)), None);
        assert_eq!(a.verdict(t0 + IDLE_TIMEOUT), Some(Close::Idle));
        // A head started: 10 s to finish it, however fresh the last byte.
        a.head_since = Some(t0);
        a.last = t0 + HEADER_TIMEOUT;
        assert_eq!(a.verdict(t0 + Duration::from_secs(9)), None);
        assert_eq!(a.verdict(t0 + HEADER_TIMEOUT), Some(Close::SlowHeaders));
        // A request being answered (a long stream) is never cut.
        a.open = 1;
        assert_eq!(a.verdict(t0 + Duration::from_secs(3600)), None);
    }

    #[test]
    fn the_refusal_is_a_whole_http_answer() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }
}
