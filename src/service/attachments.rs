//! Attachments: uploads attached to a ticket at filing or to a dispatch as a department's
//! evidence (before / after / other), who may read them, and the `after` photo some categories
//! require to resolve. Reading follows the ticket's jurisdiction exactly: an attachment of a
//! ticket the caller may not see does not exist for them (404).

use chrono::{DateTime, Utc};
use entities::upload::{self, AttachmentKind};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, sea_query::Expr};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    dispatches::{DispatchOutcome, lock_own},
    require,
    tickets::{TicketView, Viewer, commit},
};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission, own_department_only},
        ticket::{DispatchStatus, event},
        validate::Message,
    },
    error::{AppError, AppResult, Refusal},
    repo,
};

/// A department's evidence: an upload and what it shows.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRef {
    /// The id `POST /api/v1/uploads` answered.
    pub upload_id: Uuid,
    /// before, after or other
    #[schema(value_type = String, example = "after")]
    pub kind: EvidenceKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    Before,
    After,
    Other,
}

impl From<EvidenceKind> for AttachmentKind {
    fn from(kind: EvidenceKind) -> Self {
        match kind {
            EvidenceKind::Before => AttachmentKind::Before,
            EvidenceKind::After => AttachmentKind::After,
            EvidenceKind::Other => AttachmentKind::Other,
        }
    }
}

/// One upload to attach, and the request field that named it (for a 422 that says which).
pub(crate) struct ToAttach {
    pub field: String,
    pub upload_id: Uuid,
    pub kind: AttachmentKind,
}

/// Attaches the caller's own unattached uploads to the ticket (and dispatch) inside `txn`,
/// recording the timeline event. Each upload attaches once: a conditional update claims it, so
/// two requests naming the same upload cannot both have it.
pub(crate) async fn attach_in(
    txn: &DatabaseTransaction,
    caller: &Caller,
    ticket_id: Uuid,
    dispatch_id: Option<Uuid>,
    items: &[ToAttach],
    now: DateTime<Utc>,
) -> AppResult<Vec<upload::Model>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let mut attached = Vec::with_capacity(items.len());
    for item in items {
        let claimed = upload::Entity::update_many()
            .col_expr(upload::Column::TicketId, Expr::value(ticket_id))
            .col_expr(upload::Column::DispatchId, Expr::value(dispatch_id))
            .col_expr(upload::Column::Kind, Expr::value(item.kind))
            .col_expr(upload::Column::AttachedBy, Expr::value(caller.user_id))
            .col_expr(upload::Column::AttachedAt, Expr::value(now))
            .filter(upload::Column::Id.eq(item.upload_id))
            .filter(upload::Column::UploadedBy.eq(caller.user_id))
            .filter(upload::Column::TicketId.is_null())
            .exec(txn)
            .await?
            .rows_affected;
        if claimed != 1 {
            return Err(AppError::invalid(
                &item.field,
                Message::said(
                    "未找到该上传文件，或它不是您上传的，或已被附加",
                    "no such upload of yours that is still unattached",
                ),
            ));
        }
        let row = upload::Entity::find_by_id(item.upload_id)
            .one(txn)
            .await?
            .ok_or_else(|| AppError::internal("an attached upload vanished"))?;
        attached.push(row);
    }
    let listed: Vec<_> = attached
        .iter()
        .map(|a| json!({"attachment_id": a.id, "kind": a.kind, "content_type": a.content_type}))
        .collect();
    repo::tickets::record_event(
        txn,
        ticket_id,
        dispatch_id,
        event::ATTACHMENTS_ADDED,
        Some(caller.user_id),
        now,
        json!({ "attachments": listed }),
    )
    .await?;
    Ok(attached)
}

/// `POST /dispatches/{id}/attachments`: a department adds evidence to its own dispatch.
pub async fn attach_to_dispatch(
    ctx: &AppContext,
    caller: &Caller,
    dispatch_id: Uuid,
    evidence: EvidenceRef,
) -> AppResult<DispatchOutcome> {
    require(caller, Permission::HandleDispatch)?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let (locked, dispatch) = lock_own(ctx, &viewer, dispatch_id).await?;
    let status = DispatchStatus::parse(&dispatch.status);
    if matches!(status, Some(DispatchStatus::Cancelled | DispatchStatus::Returned)) {
        return Err(AppError::refused(
            Refusal::Conflict,
            "该派单已撤销或已退单，不能再附加材料",
            "the dispatch was cancelled or returned; nothing can be attached to it",
        ));
    }
    let item = ToAttach { field: "upload_id".into(), upload_id: evidence.upload_id, kind: evidence.kind.into() };
    attach_in(&locked.txn, caller, dispatch.ticket_id, Some(dispatch_id), &[item], locked.now).await?;
    // The ticket's attachments changed: a new version, so cached copies and ETags move on.
    let row = locked.ticket.clone().into_active_model();
    let view = commit(ctx, locked.txn, &viewer, row, &locked.ticket, locked.now).await?;
    Ok(DispatchOutcome { dispatch, ticket: view })
}

/// For a category with `resolve_requires_photo`: the dispatch being resolved must carry an
/// `after` image (attached earlier or in the same request), else 422 on `attachments`.
pub(crate) async fn check_after_photo(
    txn: &DatabaseTransaction,
    category_id: Uuid,
    dispatch_id: Uuid,
) -> AppResult<()> {
    let required =
        entities::category::Entity::find_by_id(category_id).one(txn).await?.is_some_and(|c| c.resolve_requires_photo);
    if !required {
        return Ok(());
    }
    let photo = upload::Entity::find()
        .filter(upload::Column::DispatchId.eq(dispatch_id))
        .filter(upload::Column::Kind.eq(AttachmentKind::After))
        .filter(upload::Column::ContentType.starts_with("image/"))
        .one(txn)
        .await?;
    if photo.is_none() {
        return Err(AppError::invalid(
            "attachments",
            Message::said(
                "该类别办结时须上传处置后照片：请附上 kind 为 after 的图片",
                "this category needs a photo of the result to resolve: attach an image with kind \"after\"",
            ),
        ));
    }
    Ok(())
}

/// Whether the viewer of a ticket may see one of its attachments: everyone who sees the ticket
/// sees its filing pictures; department staff see only their own department's evidence, like
/// they see only their own dispatches.
pub(crate) fn visible_in(caller: &Caller, readable_dispatches: &[Uuid], attachment: &upload::Model) -> bool {
    match (own_department_only(caller), attachment.dispatch_id) {
        (Some(_), Some(dispatch)) => readable_dispatches.contains(&dispatch),
        _ => true,
    }
}

/// Which bytes of an upload to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendition {
    Original,
    Thumbnail,
}

/// What a read of an attachment's bytes needs: where they are and how to label them.
#[derive(Debug, Clone)]
pub struct Readable {
    pub id: Uuid,
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub file_name: String,
}

/// An attachment (or the caller's own unattached upload) the caller may read; anything else,
/// including an attachment of a ticket outside the caller's jurisdiction, is 404.
pub async fn readable(ctx: &AppContext, caller: &Caller, id: Uuid, rendition: Rendition) -> AppResult<Readable> {
    require(caller, Permission::ReadTickets)?;
    let not_found = || AppError::refused(Refusal::NotFound, "未找到该附件", "attachment not found");
    let row = upload::Entity::find_by_id(id).one(&ctx.db).await?.ok_or_else(not_found)?;
    match row.ticket_id {
        None if row.uploaded_by == caller.user_id => {}
        None => return Err(not_found()),
        Some(ticket_id) => {
            let view: TicketView = super::tickets::get(ctx, caller, ticket_id)
                .await
                .map_err(|e| if e.is_not_found() { not_found() } else { e })?;
            let readable: Vec<Uuid> = view.dispatches.iter().map(|d| d.id).collect();
            if !visible_in(caller, &readable, &row) {
                return Err(not_found());
            }
        }
    }
    let extension = crate::media::MediaType::from_mime(&row.content_type).map_or("bin", |t| t.extension());
    match rendition {
        Rendition::Original => Ok(Readable {
            id,
            sha256: row.sha256,
            size: u64::try_from(row.size).unwrap_or_default(),
            content_type: row.content_type,
            file_name: format!("attachment-{id}.{extension}"),
        }),
        Rendition::Thumbnail => match (row.thumbnail_sha256, row.thumbnail_size) {
            (Some(sha256), Some(size)) => Ok(Readable {
                id,
                sha256,
                size: u64::try_from(size).unwrap_or_default(),
                content_type: "image/jpeg".into(),
                file_name: format!("attachment-{id}-thumbnail.jpg"),
            }),
            _ => Err(AppError::refused(
                Refusal::NotFound,
                "该附件不是图片，没有缩略图",
                "this attachment is not an image and has no thumbnail",
            )),
        },
    }
}

/// Removes the ticket's resident-supplied attachments (those sent with the filing) inside
/// `txn`; returns how many, and the objects they used, to delete once the transaction has
/// committed.
pub(crate) async fn erase_resident_attachments(
    txn: &DatabaseTransaction,
    ticket_id: Uuid,
) -> AppResult<(usize, Vec<String>)> {
    let rows = upload::Entity::find()
        .filter(upload::Column::TicketId.eq(ticket_id))
        .filter(upload::Column::Kind.eq(AttachmentKind::Filing))
        .all(txn)
        .await?;
    if rows.is_empty() {
        return Ok((0, Vec::new()));
    }
    upload::Entity::delete_many()
        .filter(upload::Column::Id.is_in(rows.iter().map(|r| r.id).collect::<Vec<_>>()))
        .exec(txn)
        .await?;
    let count = rows.len();
    Ok((count, rows.into_iter().flat_map(|r| std::iter::once(r.sha256).chain(r.thumbnail_sha256)).collect()))
}
