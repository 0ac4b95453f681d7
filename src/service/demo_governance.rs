//! The demo's share of issue 17, played after the demo tickets: a pair of near-duplicate
//! reports the dispatcher merged (并单), one more left for the dispatcher to find among the
//! possible duplicates, and this month's topic (每月一题) on the demo's most frequent problem.
//! With the demo tickets (filed in two of the four communities, many at one spot) every new
//! report shows something on the first run. Idempotent like the rest of the demo: answers how
//! many rows (tickets, topic) it created and how many were there already.

use chrono::{DateTime, Datelike, Duration, Utc};
use uuid::Uuid;

use crate::{
    clock::ManualClock,
    context::AppContext,
    domain::{access::Caller, ticket::Channel},
    error::{AppError, AppResult, Refusal},
    service::{
        categories, grid_units,
        tickets::{self, Location, MergeRequest, NewTicket, Resident},
        topics::{self, NewTopic},
    },
};

/// Where the grid worker files most (和平社区第一网格), and a point 15 m north of it.
const SPOT: (f64, f64) = (38.410, 112.705);
const NORTH_15M: f64 = 0.000_135;

pub async fn seed(
    ctx: &AppContext,
    clock: &ManualClock,
    now: DateTime<Utc>,
    grid_worker: &Caller,
    dispatcher: &Caller,
    supervisor: &Caller,
) -> AppResult<(usize, usize)> {
    let category = categories::by_code(&ctx.db, "environment")
        .await?
        .ok_or_else(|| AppError::Internal("demo category environment missing".into()))?;
    clock.set(now - Duration::days(2));
    let first = file_near(ctx, grid_worker, category.id, 1.0, "demo-duplicate-1").await?;
    clock.advance(Duration::hours(2));
    let second = file_near(ctx, grid_worker, category.id, 2.0, "demo-duplicate-2").await?;
    let mut created = usize::from(first.is_some()) + usize::from(second.is_some());
    if let (Some(first), Some(second)) = (first, second) {
        clock.advance(Duration::hours(1));
        let merge =
            MergeRequest {
                into: first, reason: "同一处垃圾满溢，重复上报，并单办理".into(), across_categories: false
            };
        tickets::merge(ctx, dispatcher, second, None, merge).await?;
    }
    clock.advance(Duration::hours(3));
    // Left unmerged: its possible duplicates name the survivor above.
    created += usize::from(file_near(ctx, grid_worker, category.id, 0.5, "demo-duplicate-3").await?.is_some());

    let Some(community) = grid_units::by_code(&ctx.db, "140902001001").await? else {
        return Ok((created, 3 - created));
    };
    clock.set(now);
    let today = now.with_timezone(&ctx.calendar().offset()).date_naive();
    let topic = NewTopic {
        title: "和平社区垃圾清运不及时".into(),
        category_id: category.id,
        unit_id: community.id,
        period: format!("{:04}-{:02}", today.year(), today.month()),
    };
    match topics::create(ctx, supervisor, topic).await {
        // Picked on an earlier run.
        Ok(_) => Ok((created + 1, 3 - created)),
        Err(AppError::Refused { kind: Refusal::Conflict, .. }) => Ok((created, 4 - created)),
        Err(other) => Err(other),
    }
}

/// Files a report `steps` × 15 m north of the spot; `None` when it was filed before.
async fn file_near(ctx: &AppContext, filer: &Caller, category: Uuid, steps: f64, key: &str) -> AppResult<Option<Uuid>> {
    let input = NewTicket {
        category_id: category,
        priority: None,
        title: "垃圾桶满溢".into(),
        description: "和平街北口垃圾桶又满了，周边有异味。".into(),
        location: Some(Location { lat: SPOT.0 + steps * NORTH_15M, lon: SPOT.1 }),
        grid_unit_id: None,
        address: Some("忻府区新建路街道和平街北口".into()),
        resident: Some(Resident { name: Some("周海燕".into()), phone: Some("13935049999".into()) }),
        channel: Some(Channel::GridApp),
        attachments: vec![],
    };
    let filed = tickets::file(ctx, filer, input, Some(key.into())).await?;
    Ok((!filed.replayed).then_some(filed.view.ticket.id))
}
