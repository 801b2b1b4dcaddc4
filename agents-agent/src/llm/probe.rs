//! Probing engines: one HTTP GET of the model list per instance, with a
//! timeout and a body cap, only to local or LAN hosts — checked on the
//! resolved addresses too, so a name cannot rebind to the internet.

use super::engines::{
    health_url, host_port, is_local_host, is_probe_allowed, parse_model_ids, Health, Instance,
};
use http_body_util::{BodyExt, Limited};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long one probe may take, connect to last byte.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Largest model-list body read.
pub const MAX_BODY: usize = 1 << 20;

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// The instance probed.
    pub instance: Instance,
    /// Up, down or unknown.
    pub health: Health,
    /// Its models, when up.
    pub models: Vec<String>,
    /// Why down or unknown.
    pub error: String,
    /// How long the probe took.
    pub latency: Duration,
}

/// The task driving one connection, aborted (closing the socket) when
/// dropped: a caller that stops reading an answer hangs up on the engine,
/// which then stops generating.
#[derive(Debug)]
pub struct Connection(tokio::task::JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A request sender on one HTTP/1.1 connection.
pub type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// Open an HTTP/1.1 connection to the local or LAN host of `url` (the
/// resolved address is checked too). Returns the sender, the parsed URI
/// and the connection, which closes when dropped.
pub async fn connect_local(url: &str) -> Result<(Sender, http::Uri, Connection), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// engines can be reached".into());
    }
    let (host, port) = host_port(url).ok_or("URL has no host")?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| is_local_host(&a.ip().to_string()))
        .ok_or_else(|| format!("{host} does not resolve to a local or LAN address"))?;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let task = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "engine connection ended");
        }
    });
    Ok((send, uri, Connection(task)))
}

async fn get(url: &str) -> Result<String, String> {
    let (mut send, uri, _conn) = connect_local(url).await?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = http::Request::get(path)
        .header(
            http::header::HOST,
            uri.authority().map_or("localhost", |a| a.as_str()),
        )
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the model list: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| "model list is not UTF-8".into())
}

/// Probe one instance.
pub async fn probe(instance: Instance) -> Probed {
    let t = Instant::now();
    let url = health_url(&instance.base_url, instance.api);
    if !is_probe_allowed(&url) {
        return Probed {
            error: format!(
                "not probed: {} is not a local or LAN host",
                instance.base_url
            ),
            instance,
            health: Health::Unknown,
            models: Vec::new(),
            latency: t.elapsed(),
        };
    }
    let result = match tokio::time::timeout(PROBE_TIMEOUT, get(&url)).await {
        Ok(r) => r.and_then(|body| parse_model_ids(&body)),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    };
    let (health, models, error) = match result {
        Ok(m) => (Health::Up, m, String::new()),
        Err(e) => (Health::Down, Vec::new(), e),
    };
    Probed {
        instance,
        health,
        models,
        error,
        latency: t.elapsed(),
    }
}

/// Probe every instance at once.
pub async fn probe_all(instances: Vec<Instance>) -> Vec<Probed> {
    let handles: Vec<_> = instances
        .into_iter()
        .map(|i| tokio::spawn(probe(i)))
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(p) = h.await {
            out.push(p);
        }
    }
    out
}
