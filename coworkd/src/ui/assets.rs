//! The page's static files, built into the binary from `coworkd/ui/`, and
//! the descriptor set its protobuf codec reads (the same one reflection
//! serves), so the page spells every message as the `.proto` files do.

use http::{header, HeaderValue, Response, StatusCode};
use tonic::body::Body;

/// The page's Content-Security-Policy: its own scripts, styles and calls
/// only; no inline script, no framing, no form posts. Images may also be
/// `blob:` (the browser log's screenshots, fetched over gRPC-Web).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// One static file.
#[derive(Debug)]
pub struct Asset {
    /// Where it is served.
    pub path: &'static str,
    /// Its Content-Type.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// Every file the UI serves.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../ui/index.html"),
    },
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../ui/app.css"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/app.js"),
    },
    Asset {
        path: "/grpc.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/grpc.js"),
    },
    Asset {
        path: "/pb.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/pb.js"),
    },
    Asset {
        path: "/descriptors.pb",
        content_type: "application/octet-stream",
        body: cowork_proto::pb::FILE_DESCRIPTOR_SET,
    },
    Asset {
        path: "/favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../ui/favicon.svg"),
    },
];

/// The file at `path`, if there is one.
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// The entity tag of a file: a hash of its bytes, so a browser revalidates
/// with a 304 instead of fetching it again until coworkd serves another.
/// Computed once per file, at its first request.
pub fn etag(a: &Asset) -> &'static str {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                a.body.hash(&mut h);
                format!("\"{:016x}\"", h.finish())
            })
            .collect()
    });
    ASSETS
        .iter()
        .position(|x| std::ptr::eq(x, a))
        .map_or("\"\"", |i| tags[i].as_str())
}

/// The response for a GET (or HEAD, without the body) of `path`; a 304
/// when `if_none_match` names the file's current tag.
pub fn response(path: &str, head: bool, if_none_match: Option<&str>) -> Response<Body> {
    let Some(a) = find(path) else {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let tag = etag(a);
    if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == tag)) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        set_cache_headers(r.headers_mut(), tag);
        return r;
    }
    let body = if head {
        Body::empty()
    } else {
        Body::new(http_body_util::Full::new(bytes::Bytes::from_static(a.body)))
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(a.body.len()));
    set_cache_headers(h, tag);
    r
}

/// Revalidated at each load (a new coworkd serves its own page at once),
/// by tag.
fn set_cache_headers(h: &mut http::HeaderMap, tag: &str) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_there_and_the_page_loads_only_its_own_scripts() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{}", a.path);
        }
        let html = std::str::from_utf8(find("/index.html").unwrap().body).unwrap();
        // The CSP allows no inline script: every script is a file served here.
        assert!(!html.contains("<script>"), "inline script in index.html");
        for src in html.split("src=\"").skip(1) {
            let src = src.split('"').next().unwrap();
            assert!(
                find(src).is_some(),
                "index.html loads {src}, which is not served"
            );
        }
        assert!(find("/../Cargo.toml").is_none());
        assert_eq!(
            response("/nope", false, None).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_file_the_browser_has_is_not_sent_again() {
        let r = response("/app.js", false, None);
        assert_eq!(r.status(), StatusCode::OK);
        let tag = r.headers()[header::ETAG].to_str().unwrap().to_owned();
        let again = response("/app.js", false, Some(&format!("\"x\", {tag}")));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], tag.as_str());
        // Another file's tag is not this one's.
        assert_eq!(
            response("/pb.js", false, Some(&tag)).status(),
            StatusCode::OK
        );
    }
}
