//! The web console at `/console/`: the pages the grid worker, the department clerk, the
//! dispatcher and the supervisor use in a browser, served from files compiled into the binary
//! (`console/` in the repository), so `cargo build` alone produces a working console and
//! nothing is fetched at run time.
//!
//! The console is a client of the same `/api/v1` as everyone else, with the same token and
//! permissions; this module only serves its files. Every answer carries a strict
//! `Content-Security-Policy`: scripts and styles from this origin only (no inline script, no
//! inline style attribute), connections to this origin only, and no framing.
//!
//! `sw.js`, the service worker that keeps the app shell for opening the console without
//! network, is served from `/console/sw.js`, so its scope is `/console/` without a
//! `Service-Worker-Allowed` header; it never keeps API answers.

use std::sync::OnceLock;

use actix_web::{
    HttpRequest, HttpResponse,
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    web,
};
use sha2::{Digest, Sha256};

/// The policy on every console answer. `img-src` allows `blob:`/`data:` for the camera's
/// preview of a photo; `connect-src 'self'` keeps the API (and the event stream) on this origin;
/// `worker-src 'self'` admits our service worker and nothing else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; worker-src 'self'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// One file of the console: its path under `/console/`, its media type, whether it may be kept
/// for a day (vendored files carry their version in the path), and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    immutable: bool,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            immutable: false,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)),
        }
    };
    ($path:literal, $type:expr, immutable) => {
        Asset {
            path: $path,
            content_type: $type,
            immutable: true,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("sw.js", JS),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/format.js", JS),
    asset!("js/session.js", JS),
    asset!("js/outbox.js", JS),
    asset!("js/live.js", JS),
    asset!("js/map.js", JS),
    asset!("js/worker.js", JS),
    asset!("js/clerk.js", JS),
    asset!("js/dispatcher.js", JS),
    asset!("js/supervisor.js", JS),
    asset!("js/ticket.js", JS),
    asset!("vendor/echarts-5.6.0/echarts.min.js", JS, immutable),
    asset!("vendor/echarts-5.6.0/LICENSE", "text/plain; charset=utf-8", immutable),
    asset!("vendor/echarts-5.6.0/LICENSE-d3", "text/plain; charset=utf-8", immutable),
    asset!("vendor/echarts-5.6.0/NOTICE", "text/plain; charset=utf-8", immutable),
];

/// The strong ETag of each asset (SHA-256 of its bytes), computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| ASSETS.iter().map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.bytes))[..20])).collect())
}

/// Routes: `/console` → `/console/`, `/console/` → the page, `/console/{file}` → a file.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(web::get().to(redirect)))
        .service(web::resource("/console/").route(web::get().to(index)))
        .service(web::resource("/console/{path:.+}").route(web::get().to(file)));
}

async fn redirect() -> HttpResponse {
    with_policy(HttpResponse::PermanentRedirect()).insert_header((header::LOCATION, "/console/")).finish()
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve("index.html", &req)
}

async fn file(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    serve(&path.into_inner(), &req)
}

fn with_policy(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header(("Permissions-Policy", "geolocation=(self), camera=(self), microphone=()"))
        .insert_header(("Cross-Origin-Opener-Policy", "same-origin"));
    builder
}

fn serve(path: &str, req: &HttpRequest) -> HttpResponse {
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return with_policy(HttpResponse::NotFound())
            .content_type("text/plain; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body("没有这个页面 (not found)");
    };
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    // The page and our own scripts revalidate on every load (a new binary is seen at once);
    // vendored files carry their version in the path and are kept for a day.
    let cache = if asset.immutable { "public, max-age=86400, immutable" } else { "no-cache" };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let status = if fresh { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    let mut builder = with_policy(HttpResponse::build(status));
    builder.insert_header((header::CACHE_CONTROL, cache));
    if let Ok(value) = HeaderValue::from_str(etag) {
        builder.insert_header((header::ETAG, value));
    }
    if fresh {
        return builder.finish();
    }
    builder.content_type(asset.content_type).body(asset.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_path_and_a_type() {
        let mut paths: Vec<_> = ASSETS.iter().map(|a| a.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len());
        for a in ASSETS {
            assert!(!a.bytes.is_empty(), "{} is empty", a.path);
            let ext = a.path.rsplit('.').next().unwrap_or_default();
            let expected = match ext {
                "html" => "text/html",
                "css" => "text/css",
                "js" => "text/javascript",
                "svg" => "image/svg+xml",
                _ => "text/plain",
            };
            assert!(a.content_type.starts_with(expected), "{} served as {}", a.path, a.content_type);
        }
    }

    #[test]
    fn the_service_worker_keeps_every_file_the_console_runs_on() {
        let worker = ASSETS.iter().find(|a| a.path == "sw.js").map(|a| String::from_utf8_lossy(a.bytes));
        let worker = worker.expect("sw.js is served");
        for a in
            ASSETS.iter().filter(|a| !a.path.contains("LICENSE") && !a.path.ends_with("NOTICE") && a.path != "sw.js")
        {
            let path = if a.path == "index.html" { "/console/".to_owned() } else { format!("/console/{}", a.path) };
            assert!(worker.contains(&format!("'{path}'")), "sw.js does not keep {path}");
        }
    }

    #[test]
    fn no_page_or_script_of_ours_relies_on_inline_code_or_style() {
        for a in ASSETS.iter().filter(|a| !a.immutable) {
            let text = String::from_utf8_lossy(a.bytes);
            for forbidden in ["<script>", " onclick=", " onload=", " onerror=", " style=\"", "javascript:", "eval("] {
                assert!(!text.contains(forbidden), "{} contains {forbidden:?}", a.path);
            }
        }
    }
}
