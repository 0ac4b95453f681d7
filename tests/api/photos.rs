//! Photo evidence (issue 14): uploads checked by content, re-encoded without metadata, stored
//! for real (a folder, and an S3-compatible server when TEST_S3_ENDPOINT is set), attached at
//! filing and as a department's evidence, read under the ticket's jurisdiction, cleaned up.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, backends, spawn_app, spawn_app_with, ticket_body, with_declared_size};

// ---- test files --------------------------------------------------------------------------

/// 64×32: red on the left half, blue on the right.
fn two_tone() -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(64, 32, |x, _| if x < 32 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) }))
}

fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encodes");
    out.into_inner()
}

fn jpeg() -> Vec<u8> {
    encoded(&two_tone(), ImageFormat::Jpeg)
}

fn png() -> Vec<u8> {
    encoded(&two_tone(), ImageFormat::Png)
}

fn webp() -> Vec<u8> {
    encoded(&two_tone(), ImageFormat::WebP)
}

fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec()
}

/// A little-endian TIFF (EXIF) block: orientation 6 (turn 90° clockwise to view), a camera
/// make and serial number, and a GPS position (38°24'N).
pub(crate) fn exif_block() -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32) {
        out.extend(tag.to_le_bytes());
        out.extend(kind.to_le_bytes());
        out.extend(count.to_le_bytes());
        out.extend(value.to_le_bytes());
    }
    const ASCII: u16 = 2;
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const RATIONAL: u16 = 5;
    // Layout: header (8) | IFD0 at 8: 4 entries (2 + 48 + 4 = 54) → 62 | make "Canon\0" at 62 (6)
    // → 68 | serial "SN12345678\0" at 68 (11) → 79, pad → 80 | GPS IFD at 80: 2 entries (2 + 24
    // + 4 = 30) → 110 | latitude 3 rationals at 110 (24) → 134.
    let mut t = Vec::new();
    t.extend(b"II*\0");
    t.extend(8u32.to_le_bytes());
    t.extend(4u16.to_le_bytes());
    entry(&mut t, 0x010F, ASCII, 6, 62); // Make
    // Orientation: a SHORT sits in the first two bytes of the value field.
    t.extend(0x0112u16.to_le_bytes());
    t.extend(SHORT.to_le_bytes());
    t.extend(1u32.to_le_bytes());
    t.extend(6u16.to_le_bytes());
    t.extend(0u16.to_le_bytes());
    entry(&mut t, 0x8825, LONG, 1, 80); // GPS IFD pointer
    entry(&mut t, 0xA431, ASCII, 11, 68); // BodySerialNumber (officially in the EXIF IFD; readers take it anywhere)
    t.extend(0u32.to_le_bytes());
    assert_eq!(t.len(), 62);
    t.extend(b"Canon\0");
    t.extend(b"SN12345678\0");
    t.push(0);
    assert_eq!(t.len(), 80);
    t.extend(2u16.to_le_bytes());
    t.extend(0x0001u16.to_le_bytes()); // GPSLatitudeRef "N"
    t.extend(ASCII.to_le_bytes());
    t.extend(2u32.to_le_bytes());
    t.extend(b"N\0\0\0");
    entry(&mut t, 0x0002, RATIONAL, 3, 110); // GPSLatitude
    t.extend(0u32.to_le_bytes());
    assert_eq!(t.len(), 110);
    for (num, den) in [(38u32, 1u32), (24, 1), (0, 1)] {
        t.extend(num.to_le_bytes());
        t.extend(den.to_le_bytes());
    }
    t
}

/// A phone's JPEG: the two-tone picture stored sideways-agnostic, with an APP1 EXIF segment
/// carrying orientation 6, GPS and a camera serial.
fn phone_jpeg() -> Vec<u8> {
    let plain = jpeg();
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(exif_block());
    let mut out = plain[..2].to_vec(); // SOI
    out.extend([0xFF, 0xE1]);
    out.extend(u16::try_from(payload.len() + 2).expect("fits").to_be_bytes());
    out.extend(payload);
    out.extend(&plain[2..]);
    out
}

/// A PNG whose header claims 100000×100000 pixels: a decompression bomb's calling card.
fn bomb_png() -> Vec<u8> {
    with_declared_size(png(), 100_000, 100_000)
}

// ---- helpers -------------------------------------------------------------------------------

struct Served {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

impl TestApp {
    async fn upload(&self, token: &str, content_type: &str, bytes: Vec<u8>) -> crate::helpers::Reply {
        let response = self
            .client
            .post(self.url("/api/v1/uploads"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("upload sent");
        reply(response).await
    }

    async fn upload_form(&self, token: &str, part_type: Option<&str>, bytes: Vec<u8>) -> crate::helpers::Reply {
        let mut part = reqwest::multipart::Part::bytes(bytes).file_name("IMG_0001.jpg");
        if let Some(part_type) = part_type {
            part = part.mime_str(part_type).expect("mime");
        }
        let form = reqwest::multipart::Form::new().text("note", "from the phone").part("file", part);
        let response = self
            .client
            .post(self.url("/api/v1/uploads"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload sent");
        reply(response).await
    }

    pub(crate) async fn uploaded(&self, token: &str, content_type: &str, bytes: Vec<u8>) -> String {
        let body = self.upload(token, content_type, bytes).await.expect(201);
        body["id"].as_str().expect("id").to_owned()
    }

    async fn fetch(&self, path: &str, token: &str, range: Option<&str>) -> Served {
        let mut request = self.client.get(self.url(path)).bearer_auth(token);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let response = request.send().await.expect("sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body").to_vec();
        Served { status, headers, bytes }
    }
}

async fn reply(response: reqwest::Response) -> crate::helpers::Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body read");
    crate::helpers::Reply { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

fn header<'a>(served: &'a Served, name: &str) -> &'a str {
    served.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// Every APP1 (EXIF/XMP) segment of a JPEG, by walking its markers up to the image data.
fn app1_segments(jpeg: &[u8]) -> usize {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");
    let (mut at, mut found) = (2, 0);
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let marker = jpeg[at + 1];
        if marker == 0xDA {
            break; // start of scan: no metadata segments after this in practice
        }
        let length = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        if marker == 0xE1 {
            found += 1;
        }
        at += 2 + length;
    }
    found
}

/// Runs `test` on each database with the storage each run needs: the test's own folder, and
/// the S3-compatible server of TEST_S3_ENDPOINT (a fresh bucket per run) when it is set.
async fn each_storage<F, Fut>(test: F)
where
    F: Fn(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in backends() {
        println!("-- on {backend:?}, files in a folder");
        test(spawn_app(backend).await).await;
        match std::env::var("TEST_S3_ENDPOINT") {
            Ok(endpoint) => {
                println!("-- on {backend:?}, files in S3 at {endpoint}");
                test(s3_app(backend, &endpoint).await).await;
            }
            Err(_) => println!("TEST_S3_ENDPOINT is not set: the S3 storage run is skipped (.ci/run sets it)"),
        }
    }
}

async fn s3_app(backend: Backend, endpoint: &str) -> TestApp {
    let bucket = format!("gw-test-{}", uuid::Uuid::now_v7().simple());
    // moto accepts any credentials; a PUT on the bucket's path creates it.
    let created = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.expect("S3 server answers");
    assert!(created.status().is_success(), "bucket created: {}", created.status());
    let url = format!("s3://{bucket}/photos");
    spawn_app_with(
        backend,
        &[
            ("GRIDWHISTLE_STORAGE__URL", url.as_str()),
            ("GRIDWHISTLE_STORAGE__S3_ENDPOINT", endpoint),
            ("GRIDWHISTLE_STORAGE__S3_ALLOW_HTTP", "true"),
            ("GRIDWHISTLE_STORAGE__S3_ACCESS_KEY_ID", "testing"),
            ("GRIDWHISTLE_STORAGE__S3_SECRET_ACCESS_KEY", "testing"),
        ],
    )
    .await
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

// ---- tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn each_type_uploads_and_the_content_decides_the_type() {
    each_storage(|app| async move {
        let demo = app.demo().await;
        for (content_type, bytes) in
            [("image/jpeg", jpeg()), ("image/png", png()), ("image/webp", webp()), ("application/pdf", pdf())]
        {
            let body = app.upload(&demo.grid, content_type, bytes.clone()).await.expect(201);
            assert_eq!(body["content_type"], content_type, "{body}");
            assert!(body["sha256"].as_str().is_some_and(|s| s.len() == 64), "{body}");
            assert!(body["created_at"].is_string());
            if content_type == "application/pdf" {
                assert_eq!(body["size"], bytes.len(), "a PDF is kept as sent");
                assert!(body["width"].is_null());
            } else {
                assert_eq!((body["width"].as_u64(), body["height"].as_u64()), (Some(64), Some(32)), "{body}");
            }
            // The uploader reads it back (before attaching, to preview it), byte for byte what was stored.
            let served = app.fetch(&format!("/api/v1/attachments/{}", id(&body)), &demo.grid, None).await;
            assert_eq!(served.status, 200);
            assert_eq!(header(&served, "content-type"), content_type);
            assert_eq!(served.bytes.len() as u64, body["size"].as_u64().expect("size"));
            if content_type == "application/pdf" {
                assert_eq!(served.bytes, bytes);
            }
        }
        // The same through a phone's multipart form, with and without the part's type.
        let form = app.upload_form(&demo.grid, Some("image/jpeg"), jpeg()).await.expect(201);
        assert_eq!(form["content_type"], "image/jpeg");
        let untyped = app.upload_form(&demo.grid, None, png()).await.expect(201);
        assert_eq!(untyped["content_type"], "image/png", "no declared type: the content decides");
        // Staff of a department upload evidence; a supervisor has nothing to upload.
        app.upload(&demo.dept, "image/png", png()).await.expect(201);
        app.upload(&demo.supervisor, "image/png", png()).await.problem(403);
    })
    .await;
}

#[tokio::test]
async fn wrong_types_are_415_large_files_413_bombs_and_broken_images_422() {
    crate::helpers::each_backend(|app| async move {
        let demo = app.demo().await;
        let problem = app.upload(&demo.grid, "image/png", jpeg()).await.problem(415);
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("image/jpeg")), "{problem}");
        app.upload(&demo.grid, "image/gif", b"GIF89a\x01\0\x01\0\0\0\0;".to_vec()).await.problem(415);
        app.upload(&demo.grid, "image/jpeg", b"<html><script>alert(1)</script></html>".to_vec()).await.problem(415);
        app.upload(&demo.grid, "application/pdf", png()).await.problem(415);
        app.upload_form(&demo.grid, Some("application/pdf"), jpeg()).await.problem(415);
        // Ten MiB and one byte: 413, whatever its content.
        let mut big = jpeg();
        big.resize(10 * 1024 * 1024 + 1, 0);
        app.upload(&demo.grid, "image/jpeg", big).await.problem(413);
        let problem = app.upload(&demo.grid, "image/png", bomb_png()).await.problem(422);
        assert!(problem["errors"]["file"].is_string(), "{problem}");
        let mut truncated = png();
        truncated.truncate(60);
        app.upload(&demo.grid, "image/png", truncated).await.problem(422);
        app.upload(&demo.grid, "image/png", Vec::new()).await.problem(400);
        // Nothing of the refused files was kept.
        let stored = gridwhistle::storage::Storage::list(&app.ctx.storage).await.expect("lists");
        assert!(stored.is_empty(), "refused uploads leave no objects: {stored:?}");
    })
    .await;
}

#[tokio::test]
async fn the_limits_are_configurable() {
    for backend in backends() {
        let app = spawn_app_with(
            backend,
            &[
                ("GRIDWHISTLE_UPLOADS__MAX_BYTES", "32768"),
                // 1 MiB of decoding memory: a 1000×1000 RGB picture (3 MB of pixels) is a bomb here.
                ("GRIDWHISTLE_UPLOADS__MAX_DECODE_BYTES", "1048576"),
            ],
        )
        .await;
        let demo = app.demo().await;
        app.upload(&demo.grid, "application/pdf", vec![b'%'; 40_000]).await.problem(413);
        let big = encoded(&DynamicImage::new_rgb8(1000, 1000), ImageFormat::Png);
        assert!(big.len() < 32768, "a blank PNG compresses well: {}", big.len());
        app.upload(&demo.grid, "image/png", big).await.problem(422);
        app.upload(&demo.grid, "image/png", png()).await.expect(201);
    }
}

#[tokio::test]
async fn a_phone_jpeg_comes_back_upright_without_any_metadata() {
    each_storage(|app| async move {
        let demo = app.demo().await;
        let original = phone_jpeg();
        // The test file really carries what must go.
        let exif = exif::Reader::new().read_from_container(&mut Cursor::new(&original)).expect("the input has EXIF");
        assert!(exif.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY).is_some(), "input has GPS");
        assert!(exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY).is_some(), "input has an orientation");

        let body = app.upload(&demo.grid, "image/jpeg", original.clone()).await.expect(201);
        assert_eq!((body["width"].as_u64(), body["height"].as_u64()), (Some(32), Some(64)), "turned upright: {body}");
        let served = app.fetch(&format!("/api/v1/attachments/{}", id(&body)), &demo.grid, None).await;
        assert_eq!(served.status, 200);
        assert_eq!(app1_segments(&served.bytes), 0, "no EXIF (or XMP) segment at all");
        assert!(
            exif::Reader::new().read_from_container(&mut Cursor::new(&served.bytes)).is_err(),
            "no EXIF data anywhere in the served file"
        );
        assert!(
            !served.bytes.windows(5).any(|w| w == b"Canon") && !served.bytes.windows(10).any(|w| w == b"SN12345678"),
            "no camera make or serial"
        );
        let image = image::load_from_memory(&served.bytes).expect("a JPEG").to_rgb8();
        assert_eq!(image.dimensions(), (32, 64));
        let (top, bottom) = (image.get_pixel(16, 8), image.get_pixel(16, 56));
        assert!(top[0] > 200 && top[2] < 60, "the left (red) half is on top once turned clockwise: {top:?}");
        assert!(bottom[2] > 200 && bottom[0] < 60, "blue below: {bottom:?}");
        assert_eq!(header(&served, "etag"), format!("\"{}\"", body["sha256"].as_str().expect("sha")));
        assert_eq!(header(&served, "cache-control"), "private");
        assert_eq!(
            header(&served, "content-disposition"),
            format!("inline; filename=\"attachment-{}.jpg\"", id(&body))
        );

        // The thumbnail: a JPEG, 320 px on the long side at most, no metadata either.
        let thumb = app.fetch(&format!("/api/v1/attachments/{}/thumbnail", id(&body)), &demo.grid, None).await;
        assert_eq!(thumb.status, 200);
        assert_eq!(header(&thumb, "content-type"), "image/jpeg");
        assert_eq!(app1_segments(&thumb.bytes), 0);
        let small = image::load_from_memory(&thumb.bytes).expect("a JPEG");
        assert_eq!((small.width(), small.height()), (32, 64), "smaller than 320 px: kept as it is");

        let large = encoded(&DynamicImage::new_rgb8(1200, 900), ImageFormat::Png);
        let large = app.upload(&demo.grid, "image/png", large).await.expect(201);
        let thumb = app.fetch(&format!("/api/v1/attachments/{}/thumbnail", id(&large)), &demo.grid, None).await;
        let small = image::load_from_memory(&thumb.bytes).expect("a JPEG");
        assert_eq!((small.width(), small.height()), (320, 240), "320 px on the long side, aspect kept");
        // A PDF has no thumbnail.
        let document = app.uploaded(&demo.grid, "application/pdf", pdf()).await;
        let none = app.fetch(&format!("/api/v1/attachments/{document}/thumbnail"), &demo.grid, None).await;
        assert_eq!(none.status, 404);
    })
    .await;
}

#[tokio::test]
async fn file_with_two_photos_resolve_with_an_after_photo_and_a_supervisor_opens_both() {
    each_storage(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        app.patch(&format!("/api/v1/categories/{environment}"), &demo.admin, json!({"resolve_requires_photo": true}))
            .await
            .expect(200);

        // A grid worker files with two photos from the phone.
        let first = app.uploaded(&demo.grid, "image/jpeg", phone_jpeg()).await;
        let second = app.uploaded(&demo.grid, "image/png", png()).await;
        let mut body = ticket_body(&environment);
        body["attachments"] = json!([{"upload_id": first}, {"upload_id": second}]);
        let ticket = app.post("/api/v1/tickets", &demo.grid, body.clone()).await.expect(201);
        let ticket_id = id(&ticket);
        let attachments = ticket["attachments"].as_array().expect("attachments");
        assert_eq!(attachments.len(), 2, "{ticket}");
        assert_eq!(attachments[0]["id"], first.as_str());
        assert_eq!(attachments[0]["kind"], "filing");
        assert_eq!(attachments[0]["url"], format!("/api/v1/attachments/{first}"));
        assert_eq!(attachments[0]["thumbnail_url"], format!("/api/v1/attachments/{first}/thumbnail"));
        assert_eq!(attachments[1]["content_type"], "image/png");
        for field in ["size", "width", "height", "uploaded_by", "uploaded_at"] {
            assert!(!attachments[0][field].is_null(), "{field} in {}", attachments[0]);
        }
        // An upload attaches once.
        let mut again = ticket_body(&environment);
        again["attachments"] = json!([{"upload_id": first}]);
        let problem = app.post("/api/v1/tickets", &demo.grid, again).await.problem(422);
        assert!(problem["errors"]["attachments[0].upload_id"].is_string(), "{problem}");

        // The department resolves: without an `after` photo the category refuses.
        let dispatch_id = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{dispatch_id}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let before = app.uploaded(&demo.dept, "image/webp", webp()).await;
        let attached = app
            .post(
                &format!("/api/v1/dispatches/{dispatch_id}/attachments"),
                &demo.dept,
                json!({"upload_id": before, "kind": "before"}),
            )
            .await
            .expect(200);
        assert_eq!(attached["ticket"]["attachments"].as_array().map(Vec::len), Some(3));
        let resolve = format!("/api/v1/dispatches/{dispatch_id}/resolve");
        let problem = app.post(&resolve, &demo.dept, json!({"reply": "已清理"})).await.problem(422);
        assert!(problem["errors"]["attachments"].is_string(), "names the field: {problem}");
        // A PDF marked `after` is not a photo.
        let report = app.uploaded(&demo.dept, "application/pdf", pdf()).await;
        let problem = app
            .post(
                &resolve,
                &demo.dept,
                json!({"reply": "已清理", "attachments": [{"upload_id": report, "kind": "after"}]}),
            )
            .await
            .problem(422);
        assert!(problem["errors"]["attachments"].is_string(), "{problem}");
        let unchanged = app.ticket(&ticket_id, &demo.dept).await;
        assert_eq!(unchanged["status"], "in_progress");
        assert_eq!(unchanged["attachments"].as_array().map(Vec::len), Some(3), "the refused resolve attached nothing");

        let after = app.uploaded(&demo.dept, "image/jpeg", jpeg()).await;
        let resolved = app
            .post(
                &resolve,
                &demo.dept,
                json!({"reply": "已清理", "attachments": [{"upload_id": after, "kind": "after"}]}),
            )
            .await
            .expect(200);
        assert_eq!(resolved["ticket"]["status"], "resolved");

        // A supervisor opens the ticket and both pictures; none carries metadata.
        let seen = app.ticket(&ticket_id, &demo.supervisor).await;
        let kinds: Vec<&str> =
            seen["attachments"].as_array().expect("list").iter().map(|a| a["kind"].as_str().unwrap_or("?")).collect();
        assert_eq!(kinds, ["filing", "filing", "before", "after"]);
        for attachment in seen["attachments"].as_array().expect("list") {
            let served = app.fetch(attachment["url"].as_str().expect("url"), &demo.supervisor, None).await;
            assert_eq!(served.status, 200, "{attachment}");
            if header(&served, "content-type") == "image/jpeg" {
                assert_eq!(app1_segments(&served.bytes), 0, "no metadata in {attachment}");
            }
            assert!(
                exif::Reader::new().read_from_container(&mut Cursor::new(&served.bytes)).is_err(),
                "no EXIF in {attachment}"
            );
        }
        // The timeline shows the attachments.
        let timeline = app.timeline(&ticket_id, &demo.supervisor).await;
        assert_eq!(timeline.iter().filter(|k| *k == "attachments_added").count(), 3, "{timeline:?}");
    })
    .await;
}

#[tokio::test]
async fn only_the_tickets_jurisdiction_reads_its_attachments() {
    crate::helpers::each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let photo = app.uploaded(&demo.grid, "image/png", png()).await;
        let mut body = ticket_body(&environment);
        body["attachments"] = json!([{"upload_id": photo}]);
        let ticket = app.post("/api/v1/tickets", &demo.grid, body).await.expect(201);
        let url = format!("/api/v1/attachments/{photo}");

        // Another township's dispatcher and another department: not theirs, and not there.
        let outsider = app.user_in(&demo.admin, "far-dispatcher", "dispatcher", "140902002000").await;
        let other_department = app.user_in(&demo.admin, "other-clerk", "department_staff", "XF-MZJ").await;
        for token in [&outsider, &other_department] {
            app.get(&format!("/api/v1/tickets/{}", id(&ticket)), token).await.problem(404);
            assert_eq!(app.fetch(&url, token, None).await.status, 404);
            assert_eq!(app.fetch(&format!("{url}/thumbnail"), token, None).await.status, 404);
        }
        // The dispatcher in charge, the supervisor and the department it went to may.
        for token in [&demo.dispatcher, &demo.supervisor, &demo.dept, &demo.admin] {
            assert_eq!(app.fetch(&url, token, None).await.status, 200);
        }
        // An unattached upload is its uploader's only.
        let loose = app.uploaded(&demo.grid, "image/png", png()).await;
        assert_eq!(app.fetch(&format!("/api/v1/attachments/{loose}"), &demo.dispatcher, None).await.status, 404);
        assert_eq!(app.fetch("/api/v1/attachments/not-an-id", &demo.grid, None).await.status, 404);
        let anonymous = app.client.get(app.url(&url)).send().await.expect("sent");
        assert_eq!(anonymous.status(), 401);
    })
    .await;
}

#[tokio::test]
async fn range_requests() {
    each_storage(|app| async move {
        let demo = app.demo().await;
        let document = pdf();
        let id = app.uploaded(&demo.grid, "application/pdf", document.clone()).await;
        let url = format!("/api/v1/attachments/{id}");
        let size = document.len();

        let part = app.fetch(&url, &demo.grid, Some("bytes=0-9")).await;
        assert_eq!(part.status, 206);
        assert_eq!(part.bytes, document[..10]);
        assert_eq!(header(&part, "content-range"), format!("bytes 0-9/{size}"));
        assert_eq!(header(&part, "accept-ranges"), "bytes");

        let tail = app.fetch(&url, &demo.grid, Some("bytes=-6")).await;
        assert_eq!(tail.status, 206);
        assert_eq!(tail.bytes, document[size - 6..]);

        let rest = app.fetch(&url, &demo.grid, Some("bytes=100-")).await;
        assert_eq!(rest.status, 206);
        assert_eq!(rest.bytes, document[100..]);

        let beyond = app.fetch(&url, &demo.grid, Some(&format!("bytes={size}-"))).await;
        assert_eq!(beyond.status, 416);
        assert_eq!(header(&beyond, "content-range"), format!("bytes */{size}"));

        let several = app.fetch(&url, &demo.grid, Some("bytes=0-1,4-5")).await;
        assert_eq!(several.status, 200, "several ranges: the whole file");
        assert_eq!(several.bytes, document);

        let etag = header(&several, "etag").to_owned();
        let cached = app.client.get(app.url(&url)).bearer_auth(&demo.grid).header("if-none-match", &etag);
        assert_eq!(cached.send().await.expect("sent").status(), 304);
    })
    .await;
}

#[tokio::test]
async fn unattached_uploads_go_after_a_day_attached_ones_stay() {
    each_storage(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let kept = app.uploaded(&demo.grid, "image/png", png()).await;
        let loose = app.uploaded(&demo.grid, "image/jpeg", jpeg()).await;
        let mut body = ticket_body(&environment);
        body["attachments"] = json!([{"upload_id": kept}]);
        app.post("/api/v1/tickets", &demo.grid, body).await.expect(201);

        app.clock.advance(chrono::Duration::hours(23));
        gridwhistle::service::housekeeping::run(&app.ctx).await.expect("runs");
        // The morning's token has expired by now: log in again.
        let grid = app.demo_token("demo-grid").await;
        assert_eq!(app.fetch(&format!("/api/v1/attachments/{loose}"), &grid, None).await.status, 200);

        app.clock.advance(chrono::Duration::hours(2));
        gridwhistle::service::housekeeping::run(&app.ctx).await.expect("runs");
        assert_eq!(app.fetch(&format!("/api/v1/attachments/{loose}"), &grid, None).await.status, 404);
        assert_eq!(app.fetch(&format!("/api/v1/attachments/{kept}"), &grid, None).await.status, 200);
        let problem = app
            .post("/api/v1/tickets", &grid, {
                let mut body = ticket_body(&environment);
                body["attachments"] = json!([{"upload_id": loose}]);
                body
            })
            .await
            .problem(422);
        assert!(problem["errors"]["attachments[0].upload_id"].is_string());
        // Its bytes went too: what remains is the kept picture and its thumbnail.
        let stored = app.ctx.storage.list().await.expect("lists");
        assert_eq!(stored.len(), 2, "{stored:?}");
    })
    .await;
}

#[tokio::test]
async fn erasure_can_remove_the_residents_photos() {
    each_storage(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let photo = app.uploaded(&demo.grid, "image/jpeg", phone_jpeg()).await;
        let mut body = ticket_body(&environment);
        body["attachments"] = json!([{"upload_id": photo}]);
        let ticket = app.post("/api/v1/tickets", &demo.grid, body).await.expect(201);
        let ticket_id = id(&ticket);
        let dispatch_id = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{dispatch_id}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let evidence = app.uploaded(&demo.dept, "image/png", png()).await;
        app.post(
            &format!("/api/v1/dispatches/{dispatch_id}/attachments"),
            &demo.dept,
            json!({"upload_id": evidence, "kind": "before"}),
        )
        .await
        .expect(200);

        let erase = format!("/api/v1/tickets/{ticket_id}/erase-personal-data");
        // Without the flag the photos stay.
        app.post(&erase, &demo.admin, json!({"reason": "居民申请删除"})).await.expect(200);
        assert_eq!(app.fetch(&format!("/api/v1/attachments/{photo}"), &demo.admin, None).await.status, 200);

        let erased = app
            .post(&erase, &demo.admin, json!({"reason": "居民申请删除照片", "remove_attachments": true}))
            .await
            .expect(200);
        let left: Vec<&str> =
            erased["attachments"].as_array().expect("list").iter().filter_map(|a| a["kind"].as_str()).collect();
        assert_eq!(left, ["before"], "the department's evidence stays");
        assert_eq!(app.fetch(&format!("/api/v1/attachments/{photo}"), &demo.admin, None).await.status, 404);
        assert_eq!(app.fetch(&format!("/api/v1/attachments/{evidence}"), &demo.admin, None).await.status, 200);
        // The bytes are gone from storage: only the evidence and its thumbnail remain.
        assert_eq!(app.ctx.storage.list().await.expect("lists").len(), 2);
        assert!(app.timeline(&ticket_id, &demo.admin).await.contains(&"attachments_erased".to_owned()));
        let audit = app.get("/api/v1/audit?action=personal_data_erased", &demo.admin).await.expect(200);
        assert_eq!(audit["items"][0]["detail"]["attachments_removed"], 1, "{audit}");
    })
    .await;
}

#[tokio::test]
async fn a_crash_between_writing_and_recording_leaves_nothing_visible() {
    crate::helpers::each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        // The bytes were written, then the process died before the row was recorded: an object
        // nothing names. (Written the way an upload writes, through the store.)
        let bytes = bytes::Bytes::from(encoded(&DynamicImage::new_rgb8(3, 3), ImageFormat::Png));
        let sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        app.ctx.storage.put(&sha, bytes).await.expect("written");
        // A half-written staging file of the local store is not an object either.
        std::fs::write(app.blobs.path().join("half-written#1"), b"\x89PNG\r\n").expect("staging file");
        let ticket = app.file(&demo.grid, &environment).await;
        assert_eq!(
            ticket["attachments"].as_array().map(|a| a.iter().filter(|a| a["id"].is_string()).count()),
            Some(0),
            "no attachment appears"
        );
        // A resolution refused half-way (after attaching) keeps nothing it attached either.
        app.patch(&format!("/api/v1/categories/{environment}"), &demo.admin, json!({"resolve_requires_photo": true}))
            .await
            .expect(200);
        let dispatch_id = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{dispatch_id}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let before = app.uploaded(&demo.dept, "image/png", png()).await;
        app.post(
            &format!("/api/v1/dispatches/{dispatch_id}/resolve"),
            &demo.dept,
            json!({"reply": "已处理", "attachments": [{"upload_id": before, "kind": "before"}]}),
        )
        .await
        .problem(422);
        let seen = app.ticket(&id(&ticket), &demo.dept).await;
        assert_eq!(seen["attachments"].as_array().map(|a| a.iter().filter(|a| a["id"].is_string()).count()), Some(0));
        assert!(!app.timeline(&id(&ticket), &demo.dept).await.contains(&"attachments_added".to_owned()));

        // A day later housekeeping removes the orphan object (and the refused upload).
        app.clock.advance(chrono::Duration::hours(25));
        let objects_before = app.ctx.storage.list().await.expect("lists").len();
        assert!(objects_before >= 1);
        gridwhistle::service::housekeeping::run(&app.ctx).await.expect("runs");
        let left = app.ctx.storage.list().await.expect("lists");
        assert!(left.iter().all(|o| o.sha256 != sha), "the orphan went: {left:?}");
    })
    .await;
}

#[tokio::test]
async fn corrupt_truncated_and_bit_flipped_images_never_crash_the_server() {
    crate::helpers::each_backend(|app| async move {
        let demo = app.demo().await;
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut outcomes = std::collections::BTreeMap::new();
        for (content_type, good) in [("image/jpeg", phone_jpeg()), ("image/png", png()), ("image/webp", webp())] {
            let mut variants: Vec<Vec<u8>> = Vec::new();
            for cut in [16, 40, good.len() / 3, good.len() / 2, good.len() - 8, good.len() - 1] {
                variants.push(good[..cut].to_vec());
            }
            for _ in 0..12 {
                let mut flipped = good.clone();
                for _ in 0..4 {
                    // Past the magic bytes, so each variant still claims its type.
                    let at = 12 + (next() as usize) % (flipped.len() - 12);
                    flipped[at] ^= 1 << (next() % 8);
                }
                variants.push(flipped);
            }
            let mut zeroed = good.clone();
            let middle = zeroed.len() / 2;
            zeroed[middle..].fill(0);
            variants.push(zeroed);
            let mut garbage = good[..16].to_vec();
            garbage.extend((0..2000).map(|_| next() as u8));
            variants.push(garbage);
            for (i, variant) in variants.into_iter().enumerate() {
                let reply = app.upload(&demo.grid, content_type, variant).await;
                let status = reply.status.as_u16();
                assert!(
                    status == 201 || (400..500).contains(&status),
                    "{content_type} variant {i}: {status} {}",
                    reply.body
                );
                if status != 201 {
                    reply.problem(status);
                }
                *outcomes.entry((content_type, status)).or_insert(0) += 1;
            }
        }
        println!("outcomes: {outcomes:?}");
        assert!(outcomes.keys().any(|(_, status)| *status == 422), "broken images are refused: {outcomes:?}");
        // Still up, and still taking good files.
        assert_eq!(app.client.get(app.url("/healthz")).send().await.expect("sent").status(), 200);
        app.upload(&demo.grid, "image/png", png()).await.expect(201);
    })
    .await;
}
