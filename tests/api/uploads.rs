//! Uploads under hostile use: a user's uploads at once are bounded (decoding costs CPU and
//! memory), one user cannot hold the decoder for everyone, a waiting upload is answered 503
//! in time, a form is bounded as a whole, an image declaring an absurd size is refused saying
//! so, and a form with two files is refused instead of keeping one silently.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::helpers::{Reply, TestApp, backends, each_backend, spawn_app_with, with_declared_size};

fn png() -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::new_rgb8(64, 32).write_to(&mut out, ImageFormat::Png).expect("encodes");
    out.into_inner()
}

/// A small PNG whose header declares `width`×`height`.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    with_declared_size(png(), width, height)
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body read");
    Reply { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

async fn upload_form(app: &TestApp, token: &str, form: reqwest::multipart::Form) -> Reply {
    let sent = app.client.post(app.url("/api/v1/uploads")).bearer_auth(token).multipart(form).send().await;
    reply(sent.expect("sent")).await
}

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>) -> Reply {
    let response = app
        .client
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(token)
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await
        .expect("upload sent");
    reply(response).await
}

/// An upload whose body is still on its way: the headers and half the file are sent.
struct SlowUpload {
    socket: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl SlowUpload {
    async fn start(app: &TestApp, token: &str, file: Vec<u8>) -> Self {
        let host = app.address.trim_start_matches("http://");
        let mut socket = tokio::net::TcpStream::connect(host).await.expect("connects");
        let head = format!(
            "POST /api/v1/uploads HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            file.len()
        );
        let (first, rest) = file.split_at(file.len() / 2);
        socket.write_all(head.as_bytes()).await.expect("headers sent");
        socket.write_all(first).await.expect("first half sent");
        Self { socket, rest: rest.to_vec() }
    }

    /// Whether the server already answered (it refused the upload without reading its body).
    fn answered(&self) -> bool {
        let mut byte = [0u8; 1];
        !matches!(self.socket.try_read(&mut byte), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Sends the rest and returns the status line.
    async fn finish(mut self) -> String {
        self.socket.write_all(&self.rest).await.expect("rest sent");
        let mut answer = String::new();
        self.socket.read_to_string(&mut answer).await.expect("answer read");
        answer.lines().next().unwrap_or_default().to_owned()
    }
}

#[tokio::test]
async fn a_user_runs_two_uploads_at_once_and_the_third_waits_its_turn() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let mut slow =
            vec![SlowUpload::start(&app, &demo.grid, png()).await, SlowUpload::start(&app, &demo.grid, png()).await];
        // While two slow ones are being received, the next upload of the same user is refused.
        // A quick one the server reaches first takes a place, and a slow one may be refused
        // instead: that one is started again, until both slow ones hold their places.
        let mut refused = None;
        for _ in 0..200 {
            let reply = upload(&app, &demo.grid, png()).await;
            if reply.status == 429 {
                refused = Some(reply);
                break;
            }
            assert_eq!(reply.status, 201, "{}", reply.body);
            for upload in slow.iter_mut() {
                if upload.answered() {
                    *upload = SlowUpload::start(&app, &demo.grid, png()).await;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let refused = refused.expect("a third upload at once is refused");
        let retry_after = refused.headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)), "Retry-After");
        let problem = refused.problem(429);
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains('2')), "says the limit: {problem}");
        // Someone else uploads meanwhile.
        upload(&app, &demo.dept, png()).await.expect(201);
        // Once one finishes, the user may upload again.
        assert!(slow.remove(0).finish().await.contains("201"), "the slow upload is stored");
        upload(&app, &demo.grid, png()).await.expect(201);
    })
    .await;
}

#[tokio::test]
async fn an_image_declaring_billions_of_pixels_is_refused_naming_the_declared_size() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        // Past the decoder's own side limit, past the pixel budget, past what a PNG decoder would
        // read a header for (a 2147483647-pixel row), past what PNG allows at all (4e9): the
        // refusal says what the header declared, never a made-up 0×0.
        let sizes = [
            (60_000_000, 1),
            (1, 60_000_000),
            (65_536, 32_768),
            (2_147_483_647, 1),
            (1, 2_147_483_647),
            (4_000_000_000, 4_000_000_000),
        ];
        for (width, height) in sizes {
            let problem = upload(&app, &demo.grid, png_declaring(width, height)).await.problem(422);
            let said = problem["errors"]["file"].as_str().unwrap_or_default().to_owned();
            assert!(
                said.contains("过大") && said.contains(&format!("{width}×{height}")),
                "the declared size: {problem}"
            );
        }
        let stored = gridwhistle::storage::Storage::list(&app.ctx.storage).await.expect("lists");
        assert!(stored.is_empty(), "nothing of the refused images was kept: {stored:?}");
    })
    .await;
}

/// The id of the user whose token this is.
async fn user_id(app: &TestApp, token: &str) -> uuid::Uuid {
    let me = app.get("/api/v1/me", token).await.expect(200);
    me["id"].as_str().and_then(|id| id.parse().ok()).expect("an id")
}

// The only test that holds a place at the decoder (two of them are shared by the whole test
// process): two such tests at once could leave none for the uploads they wait for.
#[tokio::test]
async fn a_user_holding_the_decoder_leaves_it_to_others_and_their_next_image_waits_for_it_then_503() {
    for backend in backends() {
        let app = spawn_app_with(backend, &[("GRIDWHISTLE_UPLOADS__DECODE_WAIT", "3s")]).await;
        let demo = app.demo().await;
        let grid = user_id(&app, &demo.grid).await;
        // The grid worker's first image is being decoded (the test holds its place at the decoder
        // the way a 7000×7000 16-bit PNG would, for as long as it likes).
        let first = gridwhistle::service::uploads::decode_slot(&app.ctx, grid).await.expect("a decoder is free");
        // Their second image waits for their first, not for a decoder: someone else's photo sent
        // meanwhile is stored, and theirs is 503 once it has waited `uploads.decode_wait`.
        let (theirs, others) = tokio::join!(upload(&app, &demo.grid, png()), upload(&app, &demo.dept, png()));
        let others = others.expect(201);
        assert_eq!(theirs.status, 503, "their second image waits for their first: {}", theirs.body);
        let retry_after = theirs.headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)), "Retry-After");
        let problem = theirs.problem(503);
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("繁忙")), "said in Chinese: {problem}");
        // Nothing of the refused upload was kept: only the other photo and its thumbnail.
        let stored = gridwhistle::storage::Storage::list(&app.ctx.storage).await.expect("lists");
        assert_eq!(stored.len(), 2, "{stored:?}");
        assert!(stored.iter().any(|o| others["sha256"] == o.sha256.as_str()), "{stored:?}");
        let theirs_kept = entities::upload::Entity::find()
            .filter(entities::upload::Column::UploadedBy.eq(grid))
            .count(&app.ctx.db)
            .await
            .expect("counts");
        assert_eq!(theirs_kept, 0, "no upload recorded for the refused image");
        // Once their first is done, their next image is decoded.
        drop(first);
        upload(&app, &demo.grid, png()).await.expect(201);
    }
}

/// Sends a chunked `multipart/form-data` body whose first part, not the file, never ends, until
/// the server answers or `cap` bytes are sent; returns the answer's status line and how much
/// was sent.
async fn endless_form_field(app: &TestApp, token: &str, cap: usize) -> (String, usize) {
    let host = app.address.trim_start_matches("http://");
    let socket = tokio::net::TcpStream::connect(host).await.expect("connects");
    let (mut reader, mut writer) = socket.into_split();
    let head = format!(
        "POST /api/v1/uploads HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.expect("headers sent");
    let chunk = |data: &[u8]| [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat();
    let opening = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n";
    writer.write_all(&chunk(opening)).await.expect("part opened");
    let filler = chunk(&[b'a'; 64 * 1024]);
    let mut sent = 0;
    while sent < cap {
        tokio::select! {
            biased;
            _ = reader.readable() => break,
            written = writer.write_all(&filler) => match written {
                Ok(()) => sent += 64 * 1024,
                // The server closed the connection: its answer is waiting to be read.
                Err(_) => break,
            },
        }
    }
    if sent >= cap {
        // Not answered: end the form, so that the server answers what it read.
        let end = [chunk(b"\r\n--XyZ--\r\n"), b"0\r\n\r\n".to_vec()].concat();
        writer.write_all(&end).await.expect("form ended");
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The status line and headers (the server may keep reading, so not to the end).
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    (answer.lines().next().unwrap_or_default().to_owned(), sent)
}

#[tokio::test]
async fn a_form_is_bounded_as_a_whole_and_refused_before_its_end() {
    for backend in backends() {
        let app = spawn_app_with(backend, &[("GRIDWHISTLE_UPLOADS__MAX_BYTES", "32768")]).await;
        let demo = app.demo().await;
        // A field that is not the file, chunked so no length warns of it: answered 413 once the
        // form passes the file's limit plus a small allowance, long before the 64 MiB are sent.
        let cap = 64 * 1024 * 1024;
        let (status, sent) = endless_form_field(&app, &demo.grid, cap).await;
        assert!(sent < cap, "the server read all {sent} bytes before answering ({status})");
        assert!(status.contains("413"), "{status}");
        // A declared length past the bound is refused before a byte is read.
        let note = "a".repeat(200 * 1024);
        let part = reqwest::multipart::Part::bytes(png()).file_name("IMG.png").mime_str("image/png").expect("mime");
        let form = reqwest::multipart::Form::new().text("note", note).part("file", part);
        let problem = upload_form(&app, &demo.grid, form).await.problem(413);
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("表单")), "{problem}");
        // A file just at its limit fits in a form: the form's own bytes are allowed for.
        let mut pdf = b"%PDF-1.7\n".to_vec();
        pdf.resize(32768, b' ');
        let part = reqwest::multipart::Part::bytes(pdf).file_name("a.pdf").mime_str("application/pdf").expect("mime");
        let form = reqwest::multipart::Form::new().text("note", "from the phone").part("file", part);
        let stored = upload_form(&app, &demo.grid, form).await.expect(201);
        let objects = gridwhistle::storage::Storage::list(&app.ctx.storage).await.expect("lists");
        assert_eq!(objects.len(), 1, "only the accepted PDF was kept: {objects:?}");
        assert_eq!(stored["size"], 32768);
    }
}

#[tokio::test]
async fn a_form_with_two_files_is_refused_naming_the_field_and_keeps_nothing() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let part = || reqwest::multipart::Part::bytes(png()).file_name("IMG.png").mime_str("image/png").expect("mime");
        let form = reqwest::multipart::Form::new().part("file", part()).part("file", part());
        let problem = upload_form(&app, &demo.grid, form).await.problem(400);
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("file")), "names the field: {problem}");
        let stored = gridwhistle::storage::Storage::list(&app.ctx.storage).await.expect("lists");
        assert!(stored.is_empty(), "nothing of the refused form was kept: {stored:?}");
    })
    .await;
}
