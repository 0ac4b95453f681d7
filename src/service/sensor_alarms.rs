//! Sensor alarms become tickets, without flooding the 接诉即办 flow.
//!
//! One MQTT message is one transaction: its receipt (so a redelivery changes nothing), the
//! device's "last heard", and its effect on the one ticket a device and alarm kind may have
//! open. The caller acknowledges the message only after that transaction committed, so a crash
//! in between means a redelivery, and the receipt makes the redelivery a no-op.
//!
//! - The first `alarm` of a device and kind files a ticket through the same filing flow as
//!   the API (channel `sensor`, filed by the sensor gateway's system account), auto-dispatched
//!   where the category says so.
//! - While that ticket is open (filed, dispatched, in progress), further alarms add a
//!   `sensor_alarm` event and count up; `clear` adds a `sensor_clear` event.
//! - The row per device and kind (`sensor_open_alarms`) is locked while deciding, so two
//!   replicas receiving alarms of one device at once file one ticket between them.
//! - Silence: [`report_silent_devices`] files one `device_offline` ticket per silence.

use chrono::{DateTime, Utc};
use entities::{Role, category, device, grid_unit, sensor_alarm_receipt, sensor_open_alarm, ticket, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
    sea_query::{Expr, LockType, OnConflict},
};
use serde_json::json;
use uuid::Uuid;

use super::{
    devices::{self, kinds_of},
    tickets::{SystemFiling, file_for_system},
};
use crate::{
    context::AppContext,
    db::begin_write,
    domain::{
        geo::Point,
        sensor::{AlarmMessage, AlarmState, OFFLINE_KIND, Topic},
        ticket::{Channel, TicketStatus, event},
    },
    error::AppResult,
    repo,
};

/// The user row sensor tickets are filed by (`tickets.filed_by` names a user). Created on
/// first use; inactive, with no usable password and no unit, so it can neither log in nor
/// see anything.
pub const SENSOR_ACTOR_ID: Uuid = Uuid::from_u128(0x0193_0000_0000_7000_8000_5e05_0000_0001);
const SENSOR_ACTOR_USERNAME: &str = "system:sensors";

/// What one message did. `device` names the device where the topic did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Filed {
        ticket_id: Uuid,
    },
    /// A repeated alarm on the open ticket.
    Repeated {
        ticket_id: Uuid,
        count: i32,
    },
    Cleared {
        ticket_id: Uuid,
    },
    /// A `clear` with no open ticket: nothing to record.
    ClearWithoutTicket,
    Heartbeat,
    Duplicate,
    Malformed {
        device: Option<String>,
        reason: String,
    },
    UnknownDevice {
        device: String,
    },
    DisabledDevice {
        device: String,
    },
    UnknownKind {
        device: String,
        kind: String,
    },
    /// The filing itself was refused (the device's category retired since): not retried.
    Refused {
        device: String,
        reason: String,
    },
}

impl Outcome {
    /// The `outcome` label of `gridwhistle_sensor_messages_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Filed { .. } => "filed",
            Self::Repeated { .. } => "alarm",
            Self::Cleared { .. } | Self::ClearWithoutTicket => "clear",
            Self::Heartbeat => "heartbeat",
            Self::Duplicate => "duplicate",
            Self::Malformed { .. } => "malformed",
            Self::UnknownDevice { .. } => "unknown_device",
            Self::DisabledDevice { .. } => "disabled_device",
            Self::UnknownKind { .. } => "unknown_kind",
            Self::Refused { .. } => "refused",
        }
    }
}

/// Handles one message from `topic`. `Err` only for failures worth a retry (the database);
/// everything about the message itself is an [`Outcome`].
pub async fn handle(ctx: &AppContext, topic: &str, payload: &[u8]) -> AppResult<Outcome> {
    let prefix = ctx.settings.mqtt.topic_prefix.as_str();
    let Some(parsed) = Topic::parse(prefix, topic) else {
        return Ok(Outcome::Malformed {
            device: Topic::device_of(prefix, topic).map(str::to_owned),
            reason: "not a sensor topic".into(),
        });
    };
    match parsed {
        Topic::Heartbeat(device) => heartbeat(ctx, &device).await,
        Topic::Alarm(device) => match AlarmMessage::parse(payload) {
            Ok(message) => alarm(ctx, &device, message).await,
            Err(reason) => Ok(Outcome::Malformed { device: Some(device), reason }),
        },
    }
}

async fn heartbeat(ctx: &AppContext, device_id: &str) -> AppResult<Outcome> {
    let txn = begin_write(&ctx.db).await?;
    let device = match known_device(&txn, device_id).await? {
        Ok(device) => device,
        Err(outcome) => return Ok(outcome),
    };
    mark_heard(&txn, &device, ctx.clock.now()).await?;
    txn.commit().await?;
    Ok(Outcome::Heartbeat)
}

/// The registered, active device; otherwise the outcome saying why not.
async fn known_device(db: &impl ConnectionTrait, device_id: &str) -> AppResult<Result<device::Model, Outcome>> {
    Ok(match devices::by_device_id(db, device_id).await? {
        None => Err(Outcome::UnknownDevice { device: device_id.to_owned() }),
        Some(device) if !device.active => Err(Outcome::DisabledDevice { device: device_id.to_owned() }),
        Some(device) => Ok(device),
    })
}

async fn alarm(ctx: &AppContext, device_id: &str, message: AlarmMessage) -> AppResult<Outcome> {
    let txn = begin_write(&ctx.db).await?;
    let device = match known_device(&txn, device_id).await? {
        Ok(device) => device,
        Err(outcome) => return Ok(outcome),
    };
    if !kinds_of(&device).contains(&message.kind) {
        return Ok(Outcome::UnknownKind { device: device_id.to_owned(), kind: message.kind });
    }
    let now = ctx.clock.now();
    if let Some(key) = message.dedup_key() {
        let receipt = sensor_alarm_receipt::ActiveModel {
            device_id: Set(device.id),
            kind: Set(message.kind.clone()),
            dedup_key: Set(key),
            received_at: Set(now),
        };
        let inserted = sensor_alarm_receipt::Entity::insert(receipt)
            .on_conflict(
                OnConflict::columns([
                    sensor_alarm_receipt::Column::DeviceId,
                    sensor_alarm_receipt::Column::Kind,
                    sensor_alarm_receipt::Column::DedupKey,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        if inserted == 0 {
            return Ok(Outcome::Duplicate);
        }
    }
    mark_heard(&txn, &device, now).await?;
    let open = lock_open_alarm(&txn, device.id, &message.kind, now).await?;
    let ticket = open_ticket(&txn, open.ticket_id).await?;
    let mut details = json!({
        "device_id": device.device_id,
        "kind": message.kind,
        "value": message.value,
        "at": message.at,
        "message_id": message.message_id,
    });
    // A device clock that is wrong must not lose a real alarm, nor date the timeline in the
    // future: recorded at the server's time, with what the device said beside it. (The receipt
    // above keeps the device's own time, so a redelivery is still the same alarm.)
    let tolerance = chrono::Duration::from_std(ctx.settings.mqtt.max_clock_ahead).unwrap_or(chrono::Duration::MAX);
    if let Some(claimed) = message.at
        && claimed - now > tolerance
    {
        tracing::warn!(
            device = %device.device_id,
            device_at = %claimed,
            "sensor alarm dated ahead of the server's clock; recorded at the server's time (check the device's clock)"
        );
        details["at"] = json!(now);
        details["device_at"] = json!(claimed);
    }
    let outcome = match (message.state, ticket) {
        (AlarmState::Alarm, Some(ticket)) => {
            let count = open.alarm_count + 1;
            record(&txn, ticket.id, event::SENSOR_ALARM, now, with_count(details, count)).await?;
            save_open_alarm(&txn, &open, Some(ticket.id), count, now).await?;
            Outcome::Repeated { ticket_id: ticket.id, count }
        }
        (AlarmState::Alarm, None) => {
            let title = format!("{}告警：{}", kind_label(&message.kind), device.name);
            let description = format!(
                "感知设施 {}（{}）报告“{}”告警。该工单由设备告警自动立案；设备恢复正常时时间线上会记录 sensor_clear，仍需人工办结。",
                device.name,
                device.device_id,
                kind_label(&message.kind)
            );
            let filed = match file(ctx, &txn, &device, title, description, now).await? {
                Ok(ticket) => ticket,
                Err(reason) => return Ok(Outcome::Refused { device: device_id.to_owned(), reason }),
            };
            record(&txn, filed.id, event::SENSOR_ALARM, now, with_count(details, 1)).await?;
            save_open_alarm(&txn, &open, Some(filed.id), 1, now).await?;
            Outcome::Filed { ticket_id: filed.id }
        }
        (AlarmState::Clear, Some(ticket)) => {
            record(&txn, ticket.id, event::SENSOR_CLEAR, now, details).await?;
            Outcome::Cleared { ticket_id: ticket.id }
        }
        (AlarmState::Clear, None) => Outcome::ClearWithoutTicket,
    };
    txn.commit().await?;
    Ok(outcome)
}

fn with_count(mut details: serde_json::Value, count: i32) -> serde_json::Value {
    details["count"] = json!(count);
    details
}

fn kind_label(kind: &str) -> String {
    match kind {
        "smoke" => "烟感".into(),
        "manhole_tilt" => "井盖倾斜".into(),
        "water_level" => "积水水位".into(),
        "elevator" => "电梯".into(),
        OFFLINE_KIND => "设备离线".into(),
        other => other.to_owned(),
    }
}

async fn record(
    txn: &DatabaseTransaction,
    ticket_id: Uuid,
    kind: &str,
    now: DateTime<Utc>,
    payload: serde_json::Value,
) -> AppResult<()> {
    repo::tickets::record_event(txn, ticket_id, None, kind, Some(SENSOR_ACTOR_ID), now, payload).await?;
    Ok(())
}

/// The row of this device and kind, created when missing and locked until commit (on SQLite
/// the write transaction already holds the only write lock).
async fn lock_open_alarm(
    txn: &DatabaseTransaction,
    device: Uuid,
    kind: &str,
    now: DateTime<Utc>,
) -> AppResult<sensor_open_alarm::Model> {
    let blank = sensor_open_alarm::ActiveModel {
        device_id: Set(device),
        kind: Set(kind.to_owned()),
        ticket_id: Set(None),
        alarm_count: Set(0),
        updated_at: Set(now),
    };
    sensor_open_alarm::Entity::insert(blank)
        .on_conflict(
            OnConflict::columns([sensor_open_alarm::Column::DeviceId, sensor_open_alarm::Column::Kind])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    let mut select = sensor_open_alarm::Entity::find()
        .filter(sensor_open_alarm::Column::DeviceId.eq(device))
        .filter(sensor_open_alarm::Column::Kind.eq(kind));
    if txn.get_database_backend() == DbBackend::Postgres {
        select = select.lock(LockType::Update);
    }
    select.one(txn).await?.ok_or_else(|| crate::error::AppError::Internal("sensor alarm row vanished".into()))
}

async fn save_open_alarm(
    txn: &DatabaseTransaction,
    open: &sensor_open_alarm::Model,
    ticket_id: Option<Uuid>,
    count: i32,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let mut row: sensor_open_alarm::ActiveModel = open.clone().into();
    row.ticket_id = Set(ticket_id);
    row.alarm_count = Set(count);
    row.updated_at = Set(now);
    row.update(txn).await?;
    Ok(())
}

/// The ticket, if it is still open: filed, dispatched or in progress. A resolved, closed or
/// cancelled ticket takes no more alarms; the next alarm files anew.
async fn open_ticket(db: &impl ConnectionTrait, id: Option<Uuid>) -> AppResult<Option<ticket::Model>> {
    let Some(id) = id else { return Ok(None) };
    let ticket = ticket::Entity::find_by_id(id).one(db).await?;
    Ok(ticket.filter(|t| {
        matches!(
            TicketStatus::parse(&t.status),
            Some(TicketStatus::Filed | TicketStatus::Dispatched | TicketStatus::InProgress)
        )
    }))
}

/// The device was heard from: its silence clock restarts, and a silence already reported
/// ends (noted on the offline ticket while that is open).
async fn mark_heard(txn: &DatabaseTransaction, device: &device::Model, now: DateTime<Utc>) -> AppResult<()> {
    device::Entity::update_many()
        .col_expr(device::Column::LastSeenAt, Expr::value(now))
        .col_expr(
            device::Column::SilentAfter,
            Expr::value(devices::silent_after(now, device.heartbeat_timeout_seconds)),
        )
        .col_expr(device::Column::OfflineReportedAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(device::Column::OfflineTicketId, Expr::value(Option::<Uuid>::None))
        .filter(device::Column::Id.eq(device.id))
        .exec(txn)
        .await?;
    if device.offline_reported_at.is_some()
        && let Some(ticket) = open_ticket(txn, device.offline_ticket_id).await?
    {
        let payload = json!({"device_id": device.device_id, "silent_since": device.last_seen_at});
        record(txn, ticket.id, event::SENSOR_ONLINE, now, payload).await?;
    }
    Ok(())
}

/// Files the device's ticket; `Ok(Err(reason))` when the filing is refused for good (its
/// category retired, its grid gone): retrying the message would not help.
async fn file(
    ctx: &AppContext,
    txn: &DatabaseTransaction,
    device: &device::Model,
    title: String,
    description: String,
    now: DateTime<Utc>,
) -> AppResult<Result<ticket::Model, String>> {
    ensure_sensor_actor(txn, now).await?;
    let Some(category) = category::Entity::find_by_id(device.category_id).one(txn).await? else {
        return Ok(Err("the device's category no longer exists".into()));
    };
    if !category.active {
        return Ok(Err(format!("the device's category {} is retired", category.code)));
    }
    let Some(unit) = grid_unit::Entity::find_by_id(device.unit_id).one(txn).await? else {
        return Ok(Err("the device's grid unit no longer exists".into()));
    };
    let point = match (device.lat, device.lon) {
        (Some(lat), Some(lon)) => Point::parse(lat, lon).ok(),
        _ => None,
    };
    let filing = SystemFiling {
        category: &category,
        unit: &unit,
        title,
        description,
        point,
        address: Some(format!("{}（设备 {}）", device.name, device.device_id)),
        channel: Channel::Sensor,
        filed_by: SENSOR_ACTOR_ID,
    };
    Ok(Ok(file_for_system(ctx, txn, filing, now).await?))
}

/// The sensor gateway's user row, created once (any replica, any time: a conflict is fine).
async fn ensure_sensor_actor(txn: &DatabaseTransaction, now: DateTime<Utc>) -> AppResult<()> {
    let actor = user::ActiveModel {
        id: Set(SENSOR_ACTOR_ID),
        username: Set(SENSOR_ACTOR_USERNAME.into()),
        display_name: Set("社区感知设施（自动立案）".into()),
        role: Set(Role::Dispatcher),
        unit_id: Set(None),
        department_id: Set(None),
        // Not a hash: no password ever verifies against it.
        password_hash: Set("!".into()),
        email: Set(None),
        failed_logins: Set(0),
        locked_until: Set(None),
        active: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    };
    user::Entity::insert(actor)
        .on_conflict(OnConflict::column(user::Column::Id).do_nothing().to_owned())
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Files one `device_offline` ticket for each active device silent past its heartbeat
/// timeout and not yet reported; returns how many. The conditional update claims a device,
/// so two replicas sweeping at once file one ticket between them.
pub async fn report_silent_devices(ctx: &AppContext, batch: u64) -> AppResult<usize> {
    let now = ctx.clock.now();
    let due: Vec<Uuid> = device::Entity::find()
        .select_only()
        .column(device::Column::Id)
        .filter(device::Column::Active.eq(true))
        .filter(device::Column::OfflineReportedAt.is_null())
        .filter(device::Column::SilentAfter.lte(now))
        .order_by_asc(device::Column::SilentAfter)
        .limit(batch)
        .into_tuple()
        .all(&ctx.db)
        .await?;
    let mut filed = 0;
    for id in due {
        let txn = begin_write(&ctx.db).await?;
        let claimed = device::Entity::update_many()
            .col_expr(device::Column::OfflineReportedAt, Expr::value(now))
            .filter(device::Column::Id.eq(id))
            .filter(device::Column::Active.eq(true))
            .filter(device::Column::OfflineReportedAt.is_null())
            .filter(device::Column::SilentAfter.lte(now))
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            continue;
        }
        let Some(device) = device::Entity::find_by_id(id).one(&txn).await? else { continue };
        let silent_since = device.last_seen_at.unwrap_or(device.created_at);
        let title = format!("设备离线：{}", device.name);
        let description = format!(
            "感知设施 {}（{}）自 {} 起未上报心跳，超过设定的心跳超时。该工单由系统自动立案；设备恢复上报时时间线上会记录 sensor_online，仍需人工办结。",
            device.name,
            device.device_id,
            silent_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        match file(ctx, &txn, &device, title, description, now).await? {
            Ok(ticket) => {
                let payload =
                    json!({"device_id": device.device_id, "kind": OFFLINE_KIND, "silent_since": silent_since});
                record(&txn, ticket.id, event::SENSOR_ALARM, now, with_count(payload, 1)).await?;
                device::Entity::update_many()
                    .col_expr(device::Column::OfflineTicketId, Expr::value(Some(ticket.id)))
                    .filter(device::Column::Id.eq(id))
                    .exec(&txn)
                    .await?;
                filed += 1;
            }
            // Claimed all the same, so a refused filing is not retried every tick.
            Err(reason) => tracing::warn!(device = %device.device_id, %reason, "offline device not filed"),
        }
        txn.commit().await?;
    }
    Ok(filed)
}

/// Forgets alarm receipts no redelivery can match any more: the broker redelivers within its
/// session expiry, publishers retry within minutes. Kept for the session expiry plus a day,
/// and at least a week.
pub async fn forget_old_receipts(ctx: &AppContext) -> AppResult<u64> {
    let session = chrono::Duration::from_std(ctx.settings.mqtt.session_expiry).unwrap_or(chrono::Duration::days(7));
    let keep = (session + chrono::Duration::days(1)).max(chrono::Duration::days(7));
    let removed = sensor_alarm_receipt::Entity::delete_many()
        .filter(sensor_alarm_receipt::Column::ReceivedAt.lt(ctx.clock.now() - keep))
        .exec(&ctx.db)
        .await?
        .rows_affected;
    Ok(removed)
}
