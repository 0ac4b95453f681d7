//! The web console's files: served from the binary under /console/ with the right types, a
//! strict Content-Security-Policy, revalidation by ETag, and nothing else exposed.
//! (What the pages do is tested in a real browser: tests/browser.)

use crate::helpers::each_backend;

fn header(reply: &reqwest::Response, name: &str) -> String {
    reply.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_console_page_is_served_with_a_strict_policy_and_needs_no_token() {
    each_backend(|app| async move {
        let page = app.client.get(app.url("/console/")).send().await.expect("page");
        assert_eq!(page.status(), 200);
        assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
        let csp = header(&page, "content-security-policy");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("style-src 'self'"), "{csp}");
        assert!(csp.contains("connect-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(header(&page, "x-frame-options"), "DENY");
        assert_eq!(header(&page, "referrer-policy"), "no-referrer");
        assert_eq!(header(&page, "cache-control"), "no-cache");
        let html = page.text().await.expect("html");
        assert!(html.contains("<html lang=\"zh-CN\">"), "the page is Chinese");
        assert!(html.contains("src=\"/console/js/app.js\""), "it loads the console's script from this origin");
        assert!(!html.contains("http://") && !html.contains("https://"), "no CDN or other origin");
    })
    .await;
}

#[tokio::test]
async fn scripts_styles_and_the_vendored_chart_library_have_their_types_and_cache_rules() {
    each_backend(|app| async move {
        for (path, kind, cache) in [
            ("/console/js/app.js", "text/javascript; charset=utf-8", "no-cache"),
            ("/console/app.css", "text/css; charset=utf-8", "no-cache"),
            ("/console/icon.svg", "image/svg+xml", "no-cache"),
            (
                "/console/vendor/echarts-5.6.0/echarts.min.js",
                "text/javascript; charset=utf-8",
                "public, max-age=86400, immutable",
            ),
            ("/console/vendor/echarts-5.6.0/LICENSE", "text/plain; charset=utf-8", "public, max-age=86400, immutable"),
        ] {
            let reply = app.client.get(app.url(path)).send().await.expect(path);
            assert_eq!(reply.status(), 200, "{path}");
            assert_eq!(header(&reply, "content-type"), kind, "{path}");
            assert_eq!(header(&reply, "cache-control"), cache, "{path}");
            assert_eq!(header(&reply, "x-content-type-options"), "nosniff", "{path}");
            assert!(!header(&reply, "content-security-policy").is_empty(), "{path} carries the policy");
        }
        let license = app.client.get(app.url("/console/vendor/echarts-5.6.0/LICENSE")).send().await.expect("licence");
        assert!(license.text().await.expect("text").contains("Apache License"), "ECharts ships with its licence");
    })
    .await;
}

#[tokio::test]
async fn an_unchanged_file_answers_304_to_its_etag() {
    each_backend(|app| async move {
        let first = app.client.get(app.url("/console/js/outbox.js")).send().await.expect("script");
        let etag = header(&first, "etag");
        assert!(etag.starts_with('"') && etag.len() > 10, "a strong ETag: {etag}");
        let again = app
            .client
            .get(app.url("/console/js/outbox.js"))
            .header("If-None-Match", &etag)
            .send()
            .await
            .expect("again");
        assert_eq!(again.status(), 304);
        assert!(again.bytes().await.expect("body").is_empty());
        let other = app
            .client
            .get(app.url("/console/js/outbox.js"))
            .header("If-None-Match", "\"something-else\"")
            .send()
            .await
            .expect("other");
        assert_eq!(other.status(), 200);
    })
    .await;
}

#[tokio::test]
async fn unknown_files_and_paths_outside_the_console_are_not_served() {
    each_backend(|app| async move {
        for path in [
            "/console/nothing.js",
            "/console/../Cargo.toml",
            "/console/%2e%2e/Cargo.toml",
            "/console/js/../../src/main.rs",
            "/console/vendor/echarts-5.6.0/",
        ] {
            let reply = app.client.get(app.url(path)).send().await.expect(path);
            assert_eq!(reply.status(), 404, "{path}");
            let body = reply.text().await.expect("body");
            assert!(!body.contains("fn main"), "{path} leaked a source file");
        }
        let no_redirects =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let bare = no_redirects.get(app.url("/console")).send().await.expect("bare");
        assert_eq!(bare.status(), 308);
        assert_eq!(header(&bare, "location"), "/console/");
        let post = app.client.post(app.url("/console/")).send().await.expect("post");
        assert_eq!(post.status(), 405, "the console is read-only");
    })
    .await;
}
