//! Residents' personal data: the audited reveal and erasure.

use super::*;
use sea_orm::{IntoActiveModel, Set};
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

/// The resident's name and phone, unmasked, for the people who must call back; every reveal
/// is audited with its reason.
pub async fn contact(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    reason: Option<String>,
) -> AppResult<(Option<String>, Option<String>)> {
    require(caller, Permission::ReadTickets)?;
    let mut errors = FieldErrors::new();
    let reason = reason.as_deref().map(|r| long_text(&mut errors, "reason", r, 200));
    errors.into_result()?;
    let view = get(ctx, caller, id).await?;
    if !view.show_contact {
        return Err(AppError::Forbidden("your role may not see this resident's contact details".into()));
    }
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
    Ok((view.ticket.resident_name, view.ticket.resident_phone))
}

/// Blanks the resident's name and phone at their request; the ticket and its history stay.
pub async fn erase_personal_data(
    ctx: &AppContext,
    caller: &Caller,
    id: Uuid,
    request: ReasonRequest,
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
        json!({"number": ticket.number, "reason": reason}),
    )
    .in_unit(Some(ticket.unit_id));
    crate::service::audit::record(&txn, entry, now).await?;
    commit(ctx, txn, &viewer, row, &ticket, now).await
}
