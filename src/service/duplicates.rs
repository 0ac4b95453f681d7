//! Duplicate reports (重复诉求): the open tickets of the same category filed near a ticket, at
//! about the same time — offered when a ticket is filed and on request, so a dispatcher can
//! merge them (see `service::tickets::merge`). The search is an index-friendly box on
//! latitude/longitude and filing time in SQL, then the exact distance in Rust; it sees only
//! what the caller's jurisdiction covers.

use chrono::{DateTime, Duration, Utc};
use entities::ticket;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{require, tickets::Viewer};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission},
        geo::{BoundingBox, Point, distance_m},
        ticket::TicketStatus,
    },
    error::AppResult,
    repo,
};

/// At most this many candidates are offered, nearest first.
pub const MAX_CANDIDATES: usize = 20;

/// An open ticket that may report the same problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DuplicateCandidate {
    pub id: Uuid,
    pub number: String,
    pub title: String,
    /// filed, dispatched, in_progress or resolved
    pub status: String,
    /// Metres from the ticket, to the decimetre.
    pub distance_m: f64,
    pub created_at: DateTime<Utc>,
}

/// The statuses a duplicate can still be merged into: every one that has not ended.
pub fn open_statuses() -> Vec<String> {
    TicketStatus::ALL.iter().filter(|s| !s.is_terminal()).map(ToString::to_string).collect()
}

/// The possible duplicates of ticket `id`, as `caller` may see them.
pub async fn of_ticket(ctx: &AppContext, caller: &Caller, id: Uuid) -> AppResult<Vec<DuplicateCandidate>> {
    require(caller, Permission::ReadTickets)?;
    let view = super::tickets::get(ctx, caller, id).await?;
    let viewer = Viewer::of(&ctx.db, caller).await?;
    candidates(ctx, &ctx.db, &viewer, &view.ticket).await
}

/// The possible duplicates of a ticket just filed by `caller`.
pub async fn for_ticket(ctx: &AppContext, caller: &Caller, of: &ticket::Model) -> AppResult<Vec<DuplicateCandidate>> {
    let viewer = Viewer::of(&ctx.db, caller).await?;
    candidates(ctx, &ctx.db, &viewer, of).await
}

/// Open tickets of `ticket`'s category within `governance.duplicate_radius_m` of it, filed
/// within `governance.duplicate_window_days` of it (before or after), in the viewer's
/// jurisdiction; nearest first, then oldest. A ticket without a location has none.
pub async fn candidates(
    ctx: &AppContext,
    db: &impl ConnectionTrait,
    viewer: &Viewer<'_>,
    of: &ticket::Model,
) -> AppResult<Vec<DuplicateCandidate>> {
    let (Some(lat), Some(lon)) = (of.lat, of.lon) else {
        return Ok(Vec::new());
    };
    let settings = &ctx.settings.governance;
    let center = Point { lat, lon };
    let bbox = BoundingBox::around(center, settings.duplicate_radius_m);
    let window = Duration::days(settings.duplicate_window_days);
    type Row = (Uuid, String, String, String, Option<f64>, Option<f64>, DateTime<Utc>);
    let rows: Vec<Row> = ticket::Entity::find()
        .select_only()
        .columns([
            ticket::Column::Id,
            ticket::Column::Number,
            ticket::Column::Title,
            ticket::Column::Status,
            ticket::Column::Lat,
            ticket::Column::Lon,
            ticket::Column::CreatedAt,
        ])
        .filter(repo::tickets::scope_condition(&viewer.scope()))
        .filter(ticket::Column::CategoryId.eq(of.category_id))
        .filter(ticket::Column::Id.ne(of.id))
        .filter(ticket::Column::Status.is_in(open_statuses()))
        .filter(ticket::Column::CreatedAt.gte(of.created_at - window))
        .filter(ticket::Column::CreatedAt.lte(of.created_at + window))
        .filter(ticket::Column::Lat.between(bbox.min_lat, bbox.max_lat))
        .filter(ticket::Column::Lon.between(bbox.min_lon, bbox.max_lon))
        .limit(1000)
        .into_tuple()
        .all(db)
        .await?;
    let mut found: Vec<DuplicateCandidate> = rows
        .into_iter()
        .filter_map(|(id, number, title, status, lat, lon, created_at)| {
            let distance = distance_m(center, Point { lat: lat?, lon: lon? });
            (distance <= settings.duplicate_radius_m).then(|| DuplicateCandidate {
                id,
                number,
                title,
                status,
                distance_m: (distance * 10.0).round() / 10.0,
                created_at,
            })
        })
        .collect();
    found.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m).then(a.created_at.cmp(&b.created_at)));
    found.truncate(MAX_CANDIDATES);
    Ok(found)
}
