//! Uploads: a photo or PDF received as a stream, checked by its magic bytes, made safe
//! (images re-encoded without metadata, see [`crate::media`]), stored by sha256 and recorded.
//! An upload belongs to its uploader until it is attached (see `service::attachments`);
//! housekeeping deletes the ones never attached.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, PoisonError},
};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use entities::upload;
use futures_util::{Stream, StreamExt};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::{
    context::AppContext,
    domain::access::{Caller, Permission},
    error::{AppError, AppResult, Refusal},
    media::{DecodeLimits, MediaError, MediaType, Processed},
    service::{
        in_flight::{InFlight, Slot},
        require,
    },
};

// Decoding is shared fairly. Each image may take up to `uploads.max_decode_bytes` of memory
// and seconds of CPU, so only `DECODERS` images are decoded at once in the process (memory is
// the process's, so the count is too, whatever the number of applications in it). Without more,
// one user sending two huge images would hold every decoder and everyone else's 4×4 photo would
// wait behind them. So:
// - a user takes their own turn first (`TURNS`, one per user): their second image waits for
//   their first, holding nothing the others need; only then does it queue for a decoder;
// - both queues are first come, first served (tokio's `Mutex` and `Semaphore` are fair), so an
//   image waits for at most one image of each user ahead of it;
// - a wait longer than `uploads.decode_wait` is answered 503 with Retry-After, before anything
//   is stored: a saturated replica says so instead of holding the request open without bound.

/// Images decoded at the same time in this process.
const DECODERS: usize = 2;
static DECODING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(DECODERS);

/// Each user's turn at the decoder. An entry lives while someone holds or awaits it. User ids are
/// never shared between databases, so one map serves every application in the process.
static TURNS: LazyLock<Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>> = LazyLock::new(Mutex::default);

/// A user's turn at the decoder, held until it drops.
struct Turn {
    user: Uuid,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Turn {
    async fn take(user: Uuid) -> Self {
        let lock = TURNS.lock().unwrap_or_else(PoisonError::into_inner).entry(user).or_default().clone();
        Self { user, guard: Some(lock.lock_owned().await) }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.guard.take());
        // Forgotten once nobody holds or awaits it (the map holds the only handle); the map is
        // locked, so nobody can pick it up meanwhile. A waiter that gave up leaves its entry to
        // the holder's drop.
        let mut turns = TURNS.lock().unwrap_or_else(PoisonError::into_inner);
        if turns.get(&self.user).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            turns.remove(&self.user);
        }
    }
}

/// A place at the decoder for one image of a user: their turn, then one of the `DECODERS`.
pub struct DecodeSlot {
    _decoder: tokio::sync::SemaphorePermit<'static>,
    _turn: Turn,
}

/// Waits for `user`'s turn and a free decoder, at most `uploads.decode_wait`; then 503.
/// Public so that tests can hold the decoder the way a long decode would.
pub async fn decode_slot(ctx: &AppContext, user: Uuid) -> AppResult<DecodeSlot> {
    let wait = ctx.settings.uploads.decode_wait;
    let slot = tokio::time::timeout(wait, async {
        let turn = Turn::take(user).await;
        let decoder = DECODING.acquire().await.map_err(|e| AppError::internal_from("decoder queue", e))?;
        Ok::<_, AppError>(DecodeSlot { _decoder: decoder, _turn: turn })
    })
    .await;
    slot.unwrap_or_else(|_elapsed| {
        tracing::warn!(%user, wait_secs = wait.as_secs(), "an upload waited too long for the image decoder");
        Err(AppError::refused(
            Refusal::Unavailable,
            "图片处理繁忙，请稍后重新上传",
            "the image decoder is busy; upload the file again in a moment",
        ))
    })
}

/// Uploads in progress per user. User ids are never shared between databases, so one count
/// serves every application in the process.
static IN_PROGRESS: LazyLock<InFlight<Uuid>> = LazyLock::new(InFlight::default);

/// A place for one more upload of `caller`, held until the slot drops (the upload stored or
/// refused, or its client gone); 429 once the user has `uploads.max_concurrent_per_user` in
/// progress. Taken before the body is read: one user cannot fill the decoder queue and the
/// temporary files for everyone.
pub fn begin(ctx: &AppContext, caller: &Caller) -> AppResult<Slot<Uuid>> {
    let max = ctx.settings.uploads.max_concurrent_per_user;
    IN_PROGRESS
        .take(&caller.user_id, max)
        .ok_or_else(|| AppError::too_many_requests(crate::error::Limit::UploadsInProgress { max }, 2))
}

/// The request body as it arrived: spooled to a temporary file (never held whole in memory),
/// with its size, its sha256 and its first bytes.
pub struct Received {
    file: tempfile::NamedTempFile,
    pub size: u64,
    pub sha256: String,
    head: Vec<u8>,
}

/// Streams `body` into a temporary file, hashing and counting as it goes; past `max_bytes` it
/// stops reading and answers 413.
pub async fn receive<S, E>(mut body: S, max_bytes: u64) -> AppResult<Received>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let file = tempfile::NamedTempFile::new().map_err(|e| AppError::internal_from("creating a temporary file", e))?;
    let std_file = file.reopen().map_err(|e| AppError::internal_from("opening the temporary file", e))?;
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(std_file));
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut head = Vec::with_capacity(16);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            AppError::refused(
                Refusal::BadRequest,
                "文件未能完整接收，请重新上传",
                format!("the file could not be read completely: {e}"),
            )
        })?;
        size += chunk.len() as u64;
        if size > max_bytes {
            return Err(too_large(max_bytes));
        }
        if head.len() < 16 {
            head.extend(chunk.iter().take(16 - head.len()));
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(|e| AppError::internal_from("spooling the upload", e))?;
    }
    out.flush().await.map_err(|e| AppError::internal_from("spooling the upload", e))?;
    Ok(Received { file, size, sha256: hex::encode(hasher.finalize()), head })
}

pub fn too_large(max_bytes: u64) -> AppError {
    let mib = max_bytes as f64 / (1024.0 * 1024.0);
    AppError::refused(
        Refusal::PayloadTooLarge,
        format!("文件不能超过 {mib:.1} MiB"),
        format!("the file must be at most {mib:.1} MiB"),
    )
}

fn unsupported(detail_zh: String, detail_en: String) -> AppError {
    AppError::refused(Refusal::UnsupportedMediaType, detail_zh, detail_en)
}

/// The file's type from its magic bytes; it must also be what the sender declared (when the
/// sender declared anything): a mismatch is 415, like a type we do not take.
pub fn decide_type(head: &[u8], declared: Option<&str>) -> AppResult<MediaType> {
    let accepted = "image/jpeg, image/png, image/webp, application/pdf";
    let sniffed = MediaType::sniff(head).ok_or_else(|| {
        unsupported(
            format!("只接受 JPEG、PNG、WebP 图片或 PDF 文件（{accepted}）"),
            format!("only JPEG, PNG and WebP images and PDF documents are accepted ({accepted})"),
        )
    })?;
    if let Some(declared) = declared {
        match MediaType::from_mime(declared) {
            Some(named) if named == sniffed => {}
            _ => {
                let actual = sniffed.mime();
                return Err(unsupported(
                    format!("声明的类型（{declared}）与文件内容（{actual}）不符"),
                    format!("the declared type ({declared}) does not match the file's content ({actual})"),
                ));
            }
        }
    }
    Ok(sniffed)
}

/// Makes the received file safe, stores it and records the upload for `caller`.
pub async fn store(
    ctx: &AppContext,
    caller: &Caller,
    received: Received,
    declared: Option<&str>,
) -> AppResult<upload::Model> {
    require(caller, Permission::UploadFile)?;
    if received.size == 0 {
        return Err(AppError::refused(Refusal::BadRequest, "文件为空", "the file is empty"));
    }
    let kind = decide_type(&received.head, declared)?;
    let settings = &ctx.settings.uploads;
    let (sha256, bytes, width, height, thumbnail) = if kind.is_image() {
        let limits = DecodeLimits { max_pixels: settings.max_pixels, max_alloc: settings.max_decode_bytes };
        let processed = decode(ctx, caller, &received, kind, limits).await?;
        let Processed { bytes, width, height, thumbnail } = processed;
        let sha = hex::encode(Sha256::digest(&bytes));
        (sha, Bytes::from(bytes), Some(width), Some(height), Some(Bytes::from(thumbnail)))
    } else {
        // PDFs are kept as sent.
        let bytes = tokio::fs::read(received.file.path())
            .await
            .map_err(|e| AppError::internal_from("reading the spooled upload", e))?;
        (received.sha256.clone(), Bytes::from(bytes), None, None, None)
    };
    drop(received);
    let size = bytes.len() as i64;
    // The bytes first, the row second: a crash in between leaves an object nothing points at
    // (removed by housekeeping), never a row without its bytes.
    ctx.storage.put(&sha256, bytes).await?;
    let (thumbnail_sha256, thumbnail_size) = match thumbnail {
        Some(thumb) => {
            let sha = hex::encode(Sha256::digest(&thumb));
            let len = thumb.len() as i64;
            ctx.storage.put(&sha, thumb).await?;
            (Some(sha), Some(len))
        }
        None => (None, None),
    };
    let row = upload::ActiveModel {
        id: Set(Uuid::now_v7()),
        sha256: Set(sha256),
        content_type: Set(kind.mime().to_owned()),
        size: Set(size),
        width: Set(width.map(|w| i32::try_from(w).unwrap_or(i32::MAX))),
        height: Set(height.map(|h| i32::try_from(h).unwrap_or(i32::MAX))),
        thumbnail_sha256: Set(thumbnail_sha256),
        thumbnail_size: Set(thumbnail_size),
        uploaded_by: Set(caller.user_id),
        created_at: Set(ctx.clock.now()),
        ticket_id: Set(None),
        dispatch_id: Set(None),
        kind: Set(None),
        attached_by: Set(None),
        attached_at: Set(None),
        public_token: Set(None),
    }
    .insert(&ctx.db)
    .await?;
    tracing::info!(upload_id = %row.id, content_type = %row.content_type, size = row.size, "file uploaded");
    Ok(row)
}

async fn decode(
    ctx: &AppContext,
    caller: &Caller,
    received: &Received,
    kind: MediaType,
    limits: DecodeLimits,
) -> AppResult<Processed> {
    let slot = decode_slot(ctx, caller.user_id).await?;
    let file = received.file.reopen().map_err(|e| AppError::internal_from("reopening the spooled upload", e))?;
    // The slot goes with the work: a client that leaves mid-decode does not free a decoder that
    // is still busy with its image.
    let result = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        crate::media::process_image(std::io::BufReader::new(file), kind, limits)
    })
    .await
    .map_err(|e| AppError::internal_from("the image decoder stopped", e))?;
    result.map_err(|err| match err {
        // The size its header declares, when it could be read that far.
        MediaError::TooLarge { width, height } if width > 0 && height > 0 => AppError::invalid(
            "file",
            crate::domain::validate::Message::said(
                format!(
                    "图片过大（声明为 {width}×{height} 像素）或解码所需内存超出限制；最多 {} 像素",
                    limits.max_pixels
                ),
                format!(
                    "the image is too large (declared {width}×{height}) or needs more memory to decode than allowed; at most {} pixels",
                    limits.max_pixels
                ),
            ),
        ),
        MediaError::TooLarge { .. } => AppError::invalid(
            "file",
            crate::domain::validate::Message::said(
                format!("图片过大，或解码所需内存超出限制；最多 {} 像素", limits.max_pixels),
                format!(
                    "the image is too large or needs more memory to decode than allowed; at most {} pixels",
                    limits.max_pixels
                ),
            ),
        ),
        MediaError::Unreadable(reason) => {
            tracing::info!(%reason, "an uploaded image could not be decoded");
            AppError::invalid(
                "file",
                crate::domain::validate::Message::said(
                    format!("无法读取该{}图片：文件不完整或已损坏", kind.extension().to_uppercase()),
                    format!("the {} image cannot be read: it is truncated or corrupt", kind.extension().to_uppercase()),
                ),
            )
        }
        MediaError::Encode(source) => AppError::internal_from("re-encoding an image", source),
    })
}

/// Deletes uploads attached to nothing and older than `uploads.unattached_ttl`, then every
/// stored object no upload points at (older than the same age, so a file being uploaded now is
/// never taken). Returns how many uploads and objects went.
pub async fn forget_unattached(ctx: &AppContext) -> AppResult<u64> {
    let ttl = chrono::Duration::from_std(ctx.settings.uploads.unattached_ttl)
        .map_err(|e| AppError::internal_from("uploads.unattached_ttl", e))?;
    let before = ctx.clock.now() - ttl;
    let removed = upload::Entity::delete_many()
        .filter(upload::Column::TicketId.is_null())
        .filter(upload::Column::CreatedAt.lt(before))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    let objects = forget_unreferenced_objects(ctx, Some(before)).await?;
    Ok(removed + objects)
}

/// Deletes stored objects that no upload row names (as content or thumbnail). With `older_than`,
/// only objects last written before then; without, all of them (after an erasure, whose
/// objects must go now).
pub async fn forget_unreferenced_objects(ctx: &AppContext, older_than: Option<DateTime<Utc>>) -> AppResult<u64> {
    let candidates: Vec<String> = ctx
        .storage
        .list()
        .await?
        .into_iter()
        .filter(|o| older_than.is_none_or(|before| o.last_modified < before))
        .map(|o| o.sha256)
        .collect();
    delete_unreferenced(ctx, candidates).await
}

/// Deletes those of `shas` that no upload row names any more; returns how many.
pub async fn delete_unreferenced(ctx: &AppContext, shas: Vec<String>) -> AppResult<u64> {
    let mut deleted = 0;
    for chunk in shas.chunks(200) {
        let named: Vec<(String, Option<String>)> = upload::Entity::find()
            .select_only()
            .column(upload::Column::Sha256)
            .column(upload::Column::ThumbnailSha256)
            .filter(
                sea_orm::Condition::any()
                    .add(upload::Column::Sha256.is_in(chunk.to_vec()))
                    .add(upload::Column::ThumbnailSha256.is_in(chunk.to_vec())),
            )
            .into_tuple()
            .all(&ctx.db)
            .await?;
        for sha in chunk {
            if !named.iter().any(|(content, thumb)| content == sha || thumb.as_deref() == Some(sha.as_str())) {
                ctx.storage.delete(sha).await?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_decides_and_must_match_what_was_declared() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 0];
        assert_eq!(decide_type(&jpeg, Some("image/jpeg")).ok(), Some(MediaType::Jpeg));
        assert_eq!(decide_type(&jpeg, None).ok(), Some(MediaType::Jpeg));
        assert!(decide_type(&jpeg, Some("image/png")).is_err());
        assert!(decide_type(&jpeg, Some("text/plain")).is_err());
        assert!(decide_type(b"GIF89a", Some("image/gif")).is_err());
    }
}
