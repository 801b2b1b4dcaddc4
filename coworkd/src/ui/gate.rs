//! Who may use the web UI, pure: the Host and Origin rules, the one-time
//! codes and what they are traded for. No sockets and no clock of its own
//! (callers pass `now`), so every rule is unit tested.
//!
//! A code is traded for two secrets of the install ([`Credentials`]): an
//! HttpOnly, SameSite=Strict cookie (out of reach of the page's scripts)
//! and a key the page keeps in its origin's storage and sends in
//! [`KEY_HEADER`]. Both are needed: cookies ignore ports, so a server on
//! another port of 127.0.0.1 that the person browses to is sent the cookie
//! — but never the key, which only this origin's pages can read.
//!
//! The rules, as for the gateway: a loopback Host with our port on every
//! path (a DNS-rebinding page names another host); no state change on GET
//! (only the static files are served there); every POST carries our exact
//! Origin (a page on another port of 127.0.0.1 is the same *site* — cookies
//! ignore ports, SameSite does not help — but never the same origin); every
//! call carries the cookie. No response ever has a CORS header, so another
//! origin can neither read an answer nor send a preflighted request.

use cowork_proto::secret::constant_time_eq;
use http::{Method, StatusCode};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a one-time code works.
pub const CODE_TTL: Duration = Duration::from_secs(300);
/// Codes outstanding at once; minting one more forgets the oldest.
pub const MAX_CODES: usize = 16;
/// The cookie's name, before `_<port>` (cookies ignore ports: two installs
/// on one machine keep their own).
pub const COOKIE_PREFIX: &str = "cowork_ui_";
/// The header that carries the page's key.
pub const KEY_HEADER: &str = "x-cowork-ui-key";
/// The cookie's lifetime in the browser (30 days): the per-install token it
/// holds works until `coworkctl ui --reset`.
pub const COOKIE_MAX_AGE_S: u64 = 30 * 24 * 3600;
/// The path the page posts its one-time code to.
pub const SESSION_PATH: &str = "/session";

/// What the facts of a request allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A static file (GET or HEAD; no cookie needed: nothing in it is
    /// private, and it is what trades the code).
    Asset,
    /// The one-time code exchange (POST, our Origin).
    Session,
    /// A gRPC-Web call, to be relayed (POST, our Origin, the cookie).
    Call,
}

/// Why a request is refused: an HTTP status and a reason the page (or a
/// person reading a log) can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The Host header is not 127.0.0.1/localhost with our port.
    #[error("host {0:?} is not this UI's (only 127.0.0.1 and localhost with its port are)")]
    Host(String),
    /// A POST without our exact Origin.
    #[error("origin {0:?} may not call the Cowork UI")]
    Origin(String),
    /// A call without the cookie and the key, or with old ones.
    #[error("not signed in: run `coworkctl ui` and open the address it prints")]
    NotSignedIn,
    /// A request the UI cannot read (a body too large or too slow).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A one-time code that is unknown, used or expired.
    #[error("this sign-in code is used or expired: run `coworkctl ui` for a new one")]
    Code,
    /// A method the path does not take (a gRPC path on GET, any OPTIONS).
    #[error("{0} is not allowed here")]
    Method(String),
    /// Nothing is served at the path.
    #[error("no such page")]
    NotFound,
}

impl Refusal {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Host(_) => StatusCode::MISDIRECTED_REQUEST,
            Refusal::Origin(_) | Refusal::Code => StatusCode::FORBIDDEN,
            Refusal::NotSignedIn => StatusCode::UNAUTHORIZED,
            Refusal::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// The parts of a request the rules read.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path, without the query.
    pub path: &'a str,
    /// The Host header.
    pub host: Option<&'a str>,
    /// The Origin header.
    pub origin: Option<&'a str>,
    /// Every Cookie header, joined with `; `.
    pub cookie: Option<&'a str>,
    /// The [`KEY_HEADER`] header.
    pub key: Option<&'a str>,
}

/// The install's two secrets (`$COWORK_HOME/ui-token`, one a line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The cookie's value.
    pub cookie: String,
    /// The page's key.
    pub key: String,
}

impl Credentials {
    /// The file's text.
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n", self.cookie, self.key)
    }

    /// Read the file's text: two non-empty lines, else None (made anew).
    pub fn from_text(text: &str) -> Option<Self> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let (cookie, key) = (lines.next()?, lines.next()?);
        Some(Self {
            cookie: cookie.to_owned(),
            key: key.to_owned(),
        })
    }
}

/// What a redeemed code gives the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The `Set-Cookie` value.
    pub set_cookie: String,
    /// The key, for the page to keep and send.
    pub key: String,
}

/// The UI's sign-in state: the install's credentials and the one-time
/// codes minted for them.
#[derive(Debug)]
pub struct Gate {
    port: u16,
    creds: Credentials,
    codes: HashMap<String, Instant>,
}

impl Gate {
    /// The gate of a UI on `port` with `creds`.
    pub fn new(port: u16, creds: Credentials) -> Self {
        Self {
            port,
            creds,
            codes: HashMap::new(),
        }
    }

    /// The cookie's name on this port.
    pub fn cookie_name(&self) -> String {
        format!("{COOKIE_PREFIX}{}", self.port)
    }

    /// The port the rules expect in Host and Origin.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The one Origin the UI answers.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replace the credentials (`coworkctl ui --reset`): every browser
    /// signed in with the old ones is signed out, and every code minted
    /// for them stops working.
    pub fn set_credentials(&mut self, creds: Credentials) {
        self.creds = creds;
        self.codes.clear();
    }

    /// Remember `code` (random, from the caller) until `now + CODE_TTL`.
    pub fn mint(&mut self, code: String, now: Instant) {
        self.codes.retain(|_, exp| *exp > now);
        while self.codes.len() >= MAX_CODES {
            let oldest = self
                .codes
                .iter()
                .min_by_key(|(_, e)| **e)
                .map(|(c, _)| c.clone());
            match oldest {
                Some(c) => self.codes.remove(&c),
                None => break,
            };
        }
        self.codes.insert(code, now + CODE_TTL);
    }

    /// Trade a code for what signs the browser in. A code works once.
    pub fn redeem(&mut self, code: &str, now: Instant) -> Result<Session, Refusal> {
        let code = code.trim();
        let found = self
            .codes
            .keys()
            .find(|c| constant_time_eq(c.as_bytes(), code.as_bytes()))
            .cloned();
        match found.and_then(|c| self.codes.remove(&c)) {
            Some(exp) if exp > now => Ok(Session {
                set_cookie: format!(
                    "{}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={COOKIE_MAX_AGE_S}",
                    self.cookie_name(),
                    self.creds.cookie
                ),
                key: self.creds.key.clone(),
            }),
            _ => Err(Refusal::Code),
        }
    }

    /// What a request may do, or why it is refused.
    pub fn check(&self, f: &Facts<'_>) -> Result<Access, Refusal> {
        let host = f.host.unwrap_or("").trim();
        if !self.host_ok(host) {
            return Err(Refusal::Host(host.to_owned()));
        }
        let is_call = is_call_path(f.path);
        match *f.method {
            Method::GET | Method::HEAD if is_call || f.path == SESSION_PATH => {
                Err(Refusal::Method(f.method.to_string()))
            }
            Method::GET | Method::HEAD => Ok(Access::Asset),
            Method::POST if f.path == SESSION_PATH || is_call => {
                let origin = f.origin.unwrap_or("").trim();
                // Same origin: the scheme and exactly the host the browser
                // was sent to (so `localhost:<port>` pages work too).
                if origin.strip_prefix("http://") != Some(host) {
                    return Err(Refusal::Origin(origin.to_owned()));
                }
                if f.path == SESSION_PATH {
                    return Ok(Access::Session);
                }
                if self.signed_in(f.cookie, f.key) {
                    Ok(Access::Call)
                } else {
                    Err(Refusal::NotSignedIn)
                }
            }
            Method::POST => Err(Refusal::NotFound),
            _ => Err(Refusal::Method(f.method.to_string())),
        }
    }

    fn host_ok(&self, host: &str) -> bool {
        // The gateway's rule with no trusted hosts, and the port required:
        // a page must name the host and port it was loaded from.
        let lower = host.to_ascii_lowercase();
        cowork_proto::net::host_allowed(Some(&lower), self.port, &[])
            && !lower.starts_with("[::1]")
            && lower.ends_with(&format!(":{}", self.port))
    }

    fn signed_in(&self, cookie: Option<&str>, key: Option<&str>) -> bool {
        let name = self.cookie_name();
        let cookie_ok = cookie
            .into_iter()
            .flat_map(|c| c.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| {
                k == name && constant_time_eq(v.trim().as_bytes(), self.creds.cookie.as_bytes())
            });
        let key_ok =
            key.is_some_and(|k| constant_time_eq(k.trim().as_bytes(), self.creds.key.as_bytes()));
        // Both compared whatever the first says: no early exit to time.
        cookie_ok & key_ok
    }
}

/// A gRPC method path: `/<package.Service>/<Method>`.
pub fn is_call_path(path: &str) -> bool {
    let mut parts = path.strip_prefix('/').unwrap_or("").split('/');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(svc), Some(m), None) if svc.contains('.') && !svc.starts_with('.') && !m.is_empty()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: u16 = 7737;

    fn creds(cookie: &str, key: &str) -> Credentials {
        Credentials {
            cookie: cookie.into(),
            key: key.into(),
        }
    }

    fn gate() -> Gate {
        Gate::new(PORT, creds("cookie-token", "page-key"))
    }

    fn facts<'a>(
        method: &'a Method,
        path: &'a str,
        host: Option<&'a str>,
        origin: Option<&'a str>,
        cookie: Option<&'a str>,
        key: Option<&'a str>,
    ) -> Facts<'a> {
        Facts {
            method,
            path,
            host,
            origin,
            cookie,
            key,
        }
    }

    const CALL: &str = "/cowork.capture.v1.Capture/SetStreamEnabled";
    const HOST: &str = "127.0.0.1:7737";
    const ORIGIN: &str = "http://127.0.0.1:7737";
    const SIGNED: &str = "theme=dark; cowork_ui_7737=cookie-token";
    const KEY: Option<&str> = Some("page-key");

    #[test]
    fn a_call_needs_our_host_our_origin_the_cookie_and_the_key() {
        let g = gate();
        let post = Method::POST;
        let ok = facts(&post, CALL, Some(HOST), Some(ORIGIN), Some(SIGNED), KEY);
        assert_eq!(g.check(&ok), Ok(Access::Call));
        // localhost works when the page was loaded from localhost.
        let lh = facts(
            &post,
            CALL,
            Some("localhost:7737"),
            Some("http://localhost:7737"),
            Some(SIGNED),
            KEY,
        );
        assert_eq!(g.check(&lh), Ok(Access::Call));
        // A rebinding page: its own name in Host.
        let rebound = facts(
            &post,
            CALL,
            Some("evil.example:7737"),
            Some(ORIGIN),
            Some(SIGNED),
            KEY,
        );
        assert_eq!(
            g.check(&rebound),
            Err(Refusal::Host("evil.example:7737".into()))
        );
        for host in [None, Some("127.0.0.1"), Some("127.0.0.1:80"), Some("")] {
            let f = facts(&post, CALL, host, Some(ORIGIN), Some(SIGNED), KEY);
            assert!(matches!(g.check(&f), Err(Refusal::Host(_))), "{host:?}");
        }
        // Another origin, even on 127.0.0.1 (same site, other port), a
        // missing Origin, https, or a mismatched host/origin pair.
        for origin in [
            None,
            Some("http://127.0.0.1:8080"),
            Some("https://127.0.0.1:7737"),
            Some("http://localhost:7737"),
            Some("null"),
            Some("http://127.0.0.1:7737.evil.example"),
        ] {
            let f = facts(&post, CALL, Some(HOST), origin, Some(SIGNED), KEY);
            assert!(matches!(g.check(&f), Err(Refusal::Origin(_))), "{origin:?}");
        }
        // No cookie, another cookie, another port's name, an old value, a
        // value with more after it; the cookie without the key (what a
        // server on another port is sent), or a wrong key.
        for (cookie, key) in [
            (None, KEY),
            (Some("theme=dark"), KEY),
            (Some("cowork_ui_8080=cookie-token"), KEY),
            (Some("cowork_ui_7737=old"), KEY),
            (Some("cowork_ui_7737=cookie-token-and-more"), KEY),
            (Some("xcowork_ui_7737=cookie-token"), KEY),
            (Some(SIGNED), None),
            (Some(SIGNED), Some("page-kez")),
            (Some(SIGNED), Some("")),
        ] {
            let f = facts(&post, CALL, Some(HOST), Some(ORIGIN), cookie, key);
            assert_eq!(g.check(&f), Err(Refusal::NotSignedIn), "{cookie:?} {key:?}");
        }
    }

    #[test]
    fn get_only_reads_files_and_other_methods_are_refused() {
        let g = gate();
        let get = Method::GET;
        assert_eq!(
            g.check(&facts(&get, "/", Some(HOST), None, None, None)),
            Ok(Access::Asset)
        );
        // No state change on GET, even signed in.
        let f = facts(&get, CALL, Some(HOST), Some(ORIGIN), Some(SIGNED), KEY);
        assert_eq!(g.check(&f), Err(Refusal::Method("GET".into())));
        let f = facts(&get, SESSION_PATH, Some(HOST), Some(ORIGIN), None, None);
        assert_eq!(g.check(&f), Err(Refusal::Method("GET".into())));
        // A preflight never succeeds; neither does PUT.
        for m in [Method::OPTIONS, Method::PUT, Method::DELETE] {
            let f = facts(&m, CALL, Some(HOST), Some(ORIGIN), Some(SIGNED), KEY);
            assert_eq!(g.check(&f), Err(Refusal::Method(m.to_string())));
        }
        let post = Method::POST;
        let f = facts(
            &post,
            "/upload",
            Some(HOST),
            Some(ORIGIN),
            Some(SIGNED),
            KEY,
        );
        assert_eq!(g.check(&f), Err(Refusal::NotFound));
        let f = facts(&post, SESSION_PATH, Some(HOST), Some(ORIGIN), None, None);
        assert_eq!(g.check(&f), Ok(Access::Session));
        let f = facts(
            &post,
            SESSION_PATH,
            Some(HOST),
            Some("http://evil.example"),
            None,
            None,
        );
        assert!(matches!(g.check(&f), Err(Refusal::Origin(_))));
    }

    #[test]
    fn a_code_works_once_until_it_expires_and_a_reset_signs_everyone_out() {
        let mut g = gate();
        let t0 = Instant::now();
        g.mint("code-a".into(), t0);
        g.mint("code-b".into(), t0);
        let s = g.redeem("code-a", t0 + Duration::from_secs(1)).unwrap();
        assert!(
            s.set_cookie.starts_with("cowork_ui_7737=cookie-token;"),
            "{s:?}"
        );
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(s.set_cookie.contains(attr), "{s:?}");
        }
        assert_eq!(s.key, "page-key");
        assert_eq!(g.redeem("code-a", t0), Err(Refusal::Code), "used twice");
        assert_eq!(
            g.redeem("code-b", t0 + CODE_TTL),
            Err(Refusal::Code),
            "expired"
        );
        assert_eq!(g.redeem("", t0), Err(Refusal::Code));
        // Codes are bounded: the oldest goes.
        for i in 0..MAX_CODES + 3 {
            g.mint(format!("c{i}"), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(g.redeem("c0", t0), Err(Refusal::Code));
        assert!(g.redeem(&format!("c{}", MAX_CODES + 2), t0).is_ok());
        // A reset: the old secrets and any code minted for them stop working.
        g.mint("code-c".into(), t0);
        g.set_credentials(creds("new-cookie", "new-key"));
        assert_eq!(g.redeem("code-c", t0), Err(Refusal::Code));
        let post = Method::POST;
        let f = facts(&post, CALL, Some(HOST), Some(ORIGIN), Some(SIGNED), KEY);
        assert_eq!(g.check(&f), Err(Refusal::NotSignedIn));
        let f = facts(
            &post,
            CALL,
            Some(HOST),
            Some(ORIGIN),
            Some("cowork_ui_7737=new-cookie"),
            Some("new-key"),
        );
        assert_eq!(g.check(&f), Ok(Access::Call));
    }

    #[test]
    fn credentials_round_trip_and_a_short_file_is_made_anew() {
        let c = creds("a", "b");
        assert_eq!(Credentials::from_text(&c.to_text()), Some(c));
        assert_eq!(Credentials::from_text("only-one\n"), None);
        assert_eq!(Credentials::from_text(""), None);
    }

    #[test]
    fn call_paths_are_service_and_method() {
        assert!(is_call_path("/cowork.system.v1.System/Status"));
        assert!(is_call_path("/grpc.health.v1.Health/Check"));
        for p in [
            "/", "/app.js", "/session", "/a.b/", "/a.b/c/d", "/.x/y", "//x",
        ] {
            assert!(!is_call_path(p), "{p}");
        }
    }
}
