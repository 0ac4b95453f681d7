//! Uploads under hostile use: a user's uploads at once are bounded (decoding costs CPU and
//! memory), an image declaring an absurd size is refused saying so, and a form with two
//! files is refused instead of keeping one silently.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Reply, TestApp, each_backend, with_declared_size};

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
async fn an_image_declaring_billions_of_pixels_is_refused_as_too_large_never_as_0x0() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        // Past the decoder's own side limit, and past the pixel budget: the declared size is said.
        for (width, height) in [(60_000_000, 1), (1, 60_000_000), (65_536, 32_768)] {
            let problem = upload(&app, &demo.grid, png_declaring(width, height)).await.problem(422);
            let said = problem["errors"]["file"].as_str().unwrap_or_default().to_owned();
            assert!(said.contains(&format!("{width}×{height}")), "the declared size: {problem}");
        }
        // So large that even its header cannot be read within the memory limit: "too large",
        // never a made-up size.
        for (width, height) in [(2_147_483_647, 1), (1, 2_147_483_647)] {
            let problem = upload(&app, &demo.grid, png_declaring(width, height)).await.problem(422);
            let said = problem["errors"]["file"].as_str().unwrap_or_default().to_owned();
            assert!(said.contains("过大") && !said.contains("0×0"), "{problem}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_form_with_two_files_is_refused_naming_the_field_and_keeps_nothing() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let part = || reqwest::multipart::Part::bytes(png()).file_name("IMG.png").mime_str("image/png").expect("mime");
        let form = reqwest::multipart::Form::new().part("file", part()).part("file", part());
        let response = app
            .client
            .post(app.url("/api/v1/uploads"))
            .bearer_auth(&demo.grid)
            .multipart(form)
            .send()
            .await
            .expect("sent");
        let problem = reply(response).await.problem(400);
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("file")), "names the field: {problem}");
        let stored = gridwhistle::storage::Storage::list(&app.ctx.storage).await.expect("lists");
        assert!(stored.is_empty(), "nothing of the refused form was kept: {stored:?}");
    })
    .await;
}
