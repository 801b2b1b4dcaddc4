//! The local-host rule shared by everything that sends to a URL a person
//! configured without it being a cloud provider (engine probes, trace
//! export): loopback or LAN only, the SSRF guard.

use std::net::IpAddr;

/// The host of an `http(s)://host[:port]/...` URL, and its port (the
/// scheme's default when absent). None for anything else.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let uri: http::Uri = url.parse().ok()?;
    let default = match uri.scheme_str()? {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_ascii_lowercase(), uri.port_u16().unwrap_or(default)))
}

/// Loopback: `localhost`, 127/8, `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Local or LAN: loopback, `0.0.0.0`, `*.local`, private IPv4 (10/8,
/// 172.16/12, 192.168/16), IPv6 unique-local (fc00::/7). The only hosts
/// engine probes are ever sent to (the SSRF guard).
pub fn is_local_host(host: &str) -> bool {
    if is_loopback_host(host) || host.ends_with(".local") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_unspecified() || v4.is_private(),
        Ok(IpAddr::V6(v6)) => v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    }
}

/// Is `url` an http(s) URL to a local or LAN host?
pub fn is_local_url(url: &str) -> bool {
    host_port(url).is_some_and(|(h, _)| is_local_host(&h))
}

/// True when `host` (a Host header) names a server of ours with `port` on loopback
/// (`127.0.0.1`, `localhost`, `[::1]`, with our port or none) or one of
/// the person's `trusted` hosts. Anything else may be a DNS-rebinding page.
pub fn host_allowed(host: Option<&str>, port: u16, trusted: &[String]) -> bool {
    let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let (name, p) = split_host_port(&host);
    if let Some(p) = p {
        if p != port {
            return false;
        }
    }
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
        || trusted
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name) || t.eq_ignore_ascii_case(&host))
}

fn split_host_port(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return match rest.split_once(']') {
            Some((_, tail)) => {
                let name = &host[..host.len() - tail.len()];
                (name, tail.strip_prefix(':').and_then(|p| p.parse().ok()))
            }
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((n, p)) => match p.parse() {
            Ok(p) => (n, Some(p)),
            Err(_) => (host, Some(0)),
        },
        None => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_lan_urls_are_local() {
        assert!(is_local_url("http://127.0.0.1:4318"));
        assert!(is_local_url("http://[::1]:4318/v1/traces"));
        assert!(is_local_url("https://collector.local"));
        assert!(!is_local_url("http://169.254.169.254/latest"));
        assert!(!is_local_url("http://127.0.0.1@evil.com/"));
        assert!(!is_local_url("https://otel.example.com"));
        assert!(!is_local_url("file:///etc/passwd"));
    }
}
