//! Residents' personal data: the audited reveal and erasure.

use super::*;
use entities::idempotency_key;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set, sea_query::Expr};
use serde_json::json;
use uuid::Uuid;

use crate::service::require;
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        access::{Caller, Permission},
        ticket::event,
        validate::FieldErrors,
    },
    error::{AppError, AppResult},
    repo::{self},
};

// ---- residents' personal data -------------------------------------------------------------

/// The resident's personal data, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentContact {
    pub name: Option<String>,
    pub phone: Option<String>,
    /// Where the problem is; often the resident's home, so personal data too.
    pub address: Option<String>,
}

/// The resident's name, phone and address, unmasked, for the people who must call back or
/// go there: the only read that shows them, and every such read is audited with its reason.
pub async fn contact(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    reason: Option<String>,
) -> AppResult<ResidentContact> {
    require(caller, Permission::ReadTickets)?;
    let view = get(ctx, caller, id).await?;
    if !view.contact_revealable {
        return Err(AppError::refused(
            crate::error::Refusal::Forbidden,
            "您的角色无权查看该居民的联系方式",
            "your role may not see this resident's contact details",
        ));
    }
    let mut errors = FieldErrors::new();
    let reason = long_text(&mut errors, "reason", reason.as_deref().unwrap_or_default(), 200);
    errors.into_result()?;
    let txn = begin_write(&ctx.db).await?;
    let entry = crate::service::audit::Entry::by(
        caller,
        "contact_revealed",
        "ticket",
        id,
        json!({"number": view.ticket.number, "reason": reason}),
    )
    .in_unit(Some(view.ticket.unit_id));
    crate::service::audit::record(&txn, entry, ctx.clock.now()).await?;
    txn.commit().await?;
    let t = view.ticket;
    Ok(ResidentContact { name: t.resident_name, phone: t.resident_phone, address: t.address })
}

/// The body of an erasure.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    pub reason: String,
    /// Also delete the resident-supplied attachments (the photos and documents sent with the
    /// filing) and their stored bytes. Departments' evidence stays.
    #[serde(default)]
    pub remove_attachments: bool,
}

/// Blanks the resident's name, phone and address at their request, and every derived copy
/// (with `remove_attachments`, the filing's photos too); the ticket and its history stay.
pub async fn erase_personal_data(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    request: ErasureRequest,
) -> AppResult<TicketView> {
    require(caller, Permission::ErasePersonalData)?;
    let mut errors = FieldErrors::new();
    let reason = long_text(&mut errors, "reason", &request.reason, 500);
    errors.into_result()?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    let Locked { txn, ticket, now, .. } = lock_in_scope(ctx, &viewer, id, None).await?;
    let mut row = ticket.clone().into_active_model();
    row.resident_name = Set(None);
    row.resident_phone = Set(None);
    row.address = Set(None);
    // The idempotency record's fingerprint of the filing body would let the phone be
    // guessed back (replay with a guess: 200 or 422); it no longer describes any body.
    idempotency_key::Entity::update_many()
        .col_expr(idempotency_key::Column::RequestHash, Expr::val(ERASED_FINGERPRINT))
        .filter(idempotency_key::Column::TicketId.eq(id))
        .exec(&txn)
        .await?;
    let (attachments_removed, objects) = if request.remove_attachments {
        crate::service::attachments::erase_resident_attachments(&txn, id).await?
    } else {
        (0, Vec::new())
    };
    if attachments_removed > 0 {
        repo::tickets::record_event(
            &txn,
            id,
            None,
            event::ATTACHMENTS_ERASED,
            Some(caller.user_id),
            now,
            json!({"count": attachments_removed}),
        )
        .await?;
    }
    repo::tickets::record_event(
        &txn,
        id,
        None,
        event::PERSONAL_DATA_ERASED,
        Some(caller.user_id),
        now,
        json!({"reason": reason}),
    )
    .await?;
    let entry = crate::service::audit::Entry::by(
        caller,
        "personal_data_erased",
        "ticket",
        id,
        json!({"number": ticket.number, "reason": reason, "attachments_removed": attachments_removed}),
    )
    .in_unit(Some(ticket.unit_id));
    crate::service::audit::record(&txn, entry, now).await?;
    let view = commit(ctx, txn, &viewer, row, &ticket, now).await?;
    // The bytes go once the rows are gone for good (no network call inside the transaction).
    // If this fails, housekeeping removes the unreferenced objects later.
    if let Err(err) = crate::service::uploads::delete_unreferenced(ctx, objects).await {
        tracing::error!(error = %err.chain(), ticket_id = %id, "erased attachments' objects remain until housekeeping");
    }
    Ok(view)
}

/// The idempotency fingerprint of a ticket whose personal data was erased: a replay of its key
/// answers the ticket whatever the body, so the key tells nothing about what was sent.
pub(crate) const ERASED_FINGERPRINT: &str = "erased";
