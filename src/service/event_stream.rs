//! The live event stream: every committed timeline event reaches every stream on every
//! replica, each stream filtered by its caller's jurisdiction exactly as
//! `GET /tickets/{id}/events` is.
//!
//! One feeder per process turns committed events into an in-process broadcast: on
//! PostgreSQL it `LISTEN`s for the `NOTIFY` each event's transaction sends on commit (payload:
//! the event id) and reads the row; on SQLite — one process, one writer, no notifications —
//! it reads the rows added to the events table since the last look, every
//! `event_stream.sqlite_poll_ms`. Streams subscribe to the broadcast; one that falls
//! `event_stream.buffer` events behind is closed rather than slowing anyone down, and its
//! client reconnects with `Last-Event-ID` to replay what it missed from the table.
//!
//! A replica answers requests only once its feeder listens, so no event committed after it
//! started is missed. When the `LISTEN` connection is lost, notices sent meanwhile are gone:
//! once it listens again the bus says [`Live::Gap`], and every stream ends so its client
//! reconnects with `Last-Event-ID` and replays the gap from the table.

use std::{collections::HashSet, sync::Arc, time::Duration};

use chrono::Utc;
use entities::{event_stream_token, ticket_event};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    config::EventStreamSettings,
    context::AppContext,
    domain::access::{Caller, Permission},
    error::{AppError, AppResult, Limit, Refusal},
    repo::{self, push::EVENTS_CHANNEL, tokens::Session},
    service::{
        in_flight::{InFlight, Slot},
        require, tickets,
    },
};

/// The most events one reconnect replays; a client further behind reads the rest with
/// `GET /tickets/{id}/events`.
pub const REPLAY_LIMIT: u64 = 1000;

/// What the bus carries.
#[derive(Debug, Clone)]
pub enum Live {
    /// A committed timeline event.
    Event(Arc<ticket_event::Model>),
    /// Events may have been committed without reaching the bus (the `LISTEN` connection was
    /// lost); streams end so their clients replay from the table.
    Gap,
}

/// Committed timeline events of this process's database, as they happen.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Live>,
    closing: CancellationToken,
    /// Streams open per session: one login, across its refreshes.
    streams: InFlight<Session>,
}

impl EventBus {
    pub fn new(buffer: usize) -> Self {
        Self {
            sender: broadcast::channel(buffer.max(1)).0,
            closing: CancellationToken::new(),
            streams: InFlight::default(),
        }
    }

    /// A place for one more stream of `session`, held until the slot drops (the stream
    /// ended); 429 once the session holds `event_stream.max_streams_per_session`. Each open
    /// stream costs a task, a bus receiver and a session check per heartbeat: a client opening
    /// hundreds under one login would hold them without bound.
    pub fn hold_stream(&self, settings: &EventStreamSettings, session: &Session) -> AppResult<Slot<Session>> {
        let max = settings.max_streams_per_session;
        self.streams.take(session, max).ok_or_else(|| {
            let retry_after = closed_stream_noticed_within(settings.heartbeat).as_secs_f64().ceil() as u64;
            AppError::too_many_requests(Limit::StreamsOpen { max }, retry_after)
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.sender.subscribe()
    }

    fn publish(&self, event: ticket_event::Model) {
        // No stream open: nobody to tell.
        let _ = self.sender.send(Live::Event(Arc::new(event)));
    }

    fn gap(&self) {
        let _ = self.sender.send(Live::Gap);
    }

    /// Ends every stream and the feeder (a drain has started).
    pub fn close(&self) {
        self.closing.cancel();
    }

    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }
}

/// How long a starting replica waits for its feeder to listen before it serves anyway (the
/// feeder keeps trying in the background and says so in the log).
const READY_WAIT: Duration = Duration::from_secs(10);

/// Starts the feeder of [`EventBus`] and returns once it listens (or after [`READY_WAIT`]).
pub async fn start_feed(ctx: AppContext) {
    let (ready, listening) = oneshot::channel();
    tokio::spawn(feed(ctx, ready));
    if tokio::time::timeout(READY_WAIT, listening).await.is_err() {
        tracing::warn!("the live event stream is not listening yet; streams opened now may miss events");
    }
}

/// Feeds [`EventBus`] until it is closed; `ready` is told once it listens.
async fn feed(ctx: AppContext, ready: oneshot::Sender<()>) {
    let closing = ctx.events.closing();
    let fed = match ctx.db.get_database_backend() {
        DbBackend::Postgres => tokio::select! {
            _ = closing.cancelled() => Ok(()),
            fed = listen(&ctx, ready) => fed,
        },
        _ => tokio::select! {
            _ = closing.cancelled() => Ok(()),
            fed = tail(&ctx, ready) => fed,
        },
    };
    if let Err(err) = fed {
        tracing::error!(error = %err.chain(), "the live event stream stopped; streams get no new events");
    }
}

/// PostgreSQL: one connection of its own `LISTEN`s; each notice names a committed event.
async fn listen(ctx: &AppContext, ready: oneshot::Sender<()>) -> AppResult<()> {
    use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
    let options = ctx.db.get_postgres_connection_pool().connect_options();
    let mut ready = Some(ready);
    loop {
        // A pool of one, outside the application's, so a busy pool cannot starve the listener.
        let pool = PgPoolOptions::new().max_connections(1).connect_lazy_with((*options).clone());
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(EVENTS_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let mut listener = match listening.await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %crate::error::chain(&err), "cannot LISTEN for timeline events; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match ready.take() {
            Some(ready) => {
                let _ = ready.send(());
            }
            // Listening again after a loss: what was committed meanwhile never came.
            None => ctx.events.gap(),
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(notice)) => {
                    let Ok(id) = notice.payload().parse::<Uuid>() else { continue };
                    match ticket_event::Entity::find_by_id(id).one(&ctx.db).await {
                        Ok(Some(event)) => ctx.events.publish(event),
                        Ok(None) => {}
                        Err(err) => {
                            tracing::warn!(error = %err, "a timeline event could not be read; open streams end to replay it");
                            ctx.events.gap();
                        }
                    }
                }
                // The connection was lost and (eager reconnect) listens again: what was
                // committed meanwhile never came.
                Ok(None) => {
                    tracing::warn!(
                        "the LISTEN connection was lost and is back; open streams end to replay what they missed"
                    );
                    ctx.events.gap();
                }
                Err(err) => {
                    tracing::warn!(error = %crate::error::chain(&err), "LISTEN failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

/// SQLite: the rows added since the last look. Every writer takes the database's write lock
/// before it makes an event's id (`db::begin_write`), so ids grow in commit order and one
/// watermark misses nothing.
async fn tail(ctx: &AppContext, ready: oneshot::Sender<()>) -> AppResult<()> {
    let every = Duration::from_millis(ctx.settings.event_stream.sqlite_poll_ms);
    let mut watermark = ticket_event::Entity::find()
        .order_by_desc(ticket_event::Column::Id)
        .one(&ctx.db)
        .await?
        .map(|e| e.id)
        .unwrap_or(Uuid::nil());
    let _ = ready.send(());
    loop {
        tokio::time::sleep(every).await;
        if ctx.events.sender.receiver_count() == 0 {
            // Nobody listens: skip the read but keep the watermark current.
            if let Ok(Some(last)) =
                ticket_event::Entity::find().order_by_desc(ticket_event::Column::Id).one(&ctx.db).await
            {
                watermark = watermark.max(last.id);
            }
            continue;
        }
        let fresh = ticket_event::Entity::find()
            .filter(ticket_event::Column::Id.gt(watermark))
            .order_by_asc(ticket_event::Column::Id)
            .limit(500)
            .all(&ctx.db)
            .await;
        match fresh {
            Ok(events) => {
                for event in events {
                    watermark = event.id;
                    ctx.events.publish(event);
                }
            }
            Err(err) => tracing::warn!(error = %err, "new timeline events could not be read for live streams"),
        }
    }
}

/// How long after a heartbeat a stream writes again to learn whether its client is still
/// there. A client that closed its connection (a closed tab) answers the first write after
/// it with a reset, and only the write after that fails: without this second write a closed
/// stream would hold its slot for up to two heartbeats. Capped at half a heartbeat.
pub fn probe_after(heartbeat: Duration) -> Duration {
    (heartbeat / 2).min(Duration::from_secs(1))
}

/// The longest a stream whose client left keeps its place — the first heartbeat after it
/// left, the probe that follows, and a second's margin — and so the 429's `Retry-After`. (A
/// client whose reset takes longer than the probe delay to arrive is noticed a heartbeat
/// later; one behind a firewall that drops it instead, only when TCP gives up.)
pub fn closed_stream_noticed_within(heartbeat: Duration) -> Duration {
    heartbeat + probe_after(heartbeat) + Duration::from_secs(1)
}

/// What a stream asks for beyond its jurisdiction.
#[derive(Debug, Clone, Default)]
pub struct StreamFilter {
    pub kind: Option<String>,
    pub ticket_id: Option<Uuid>,
}

impl StreamFilter {
    pub fn takes(&self, event: &ticket_event::Model) -> bool {
        self.kind.as_ref().is_none_or(|k| *k == event.kind) && self.ticket_id.is_none_or(|t| t == event.ticket_id)
    }
}

/// The event as `caller` may read it, or `None`: the rules of `GET /tickets/{id}/events`.
pub async fn visible(
    ctx: &AppContext,
    caller: &Caller,
    event: &ticket_event::Model,
) -> AppResult<Option<ticket_event::Model>> {
    tickets::visible_event(ctx, caller, event.clone()).await
}

/// The events after `last_event_id` (at most `event_stream.replay_window` old, at most
/// [`REPLAY_LIMIT`]) that the caller may see, oldest first.
pub async fn replay(
    ctx: &AppContext,
    caller: &Caller,
    last_event_id: Uuid,
    filter: &StreamFilter,
) -> AppResult<Vec<ticket_event::Model>> {
    require(caller, Permission::ReadTickets)?;
    let window = chrono::Duration::from_std(ctx.settings.event_stream.replay_window).unwrap_or(chrono::Duration::MAX);
    let viewer = tickets::Viewer::of(&ctx.db, caller).await?;
    let mut select = ticket_event::Entity::find()
        .filter(ticket_event::Column::Id.gt(last_event_id))
        .filter(ticket_event::Column::At.gte(ctx.clock.now() - window))
        .filter(ticket_event::Column::TicketId.in_subquery(repo::tickets::ids_in_scope(&viewer.scope())));
    if let Some(kind) = &filter.kind {
        select = select.filter(ticket_event::Column::Kind.eq(kind.as_str()));
    }
    if let Some(ticket) = filter.ticket_id {
        select = select.filter(ticket_event::Column::TicketId.eq(ticket));
    }
    let candidates = select.order_by_asc(ticket_event::Column::Id).limit(REPLAY_LIMIT).all(&ctx.db).await?;
    let mut visible_events = Vec::with_capacity(candidates.len());
    for event in candidates {
        if let Some(event) = tickets::visible_event(ctx, caller, event).await? {
            visible_events.push(event);
        }
    }
    Ok(visible_events)
}

/// Ids already sent by a replay, so the live part does not send them twice.
pub type Sent = HashSet<Uuid>;

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub struct StreamToken {
    pub token: String,
    pub expires_in: u64,
}

/// A token that opens the event stream (as `?stream_token=`) and nothing else, for
/// `event_stream.stream_token_ttl`, and only while the session it came from lasts.
pub async fn issue_token(ctx: &AppContext, caller: &Caller, bearer: &str) -> AppResult<StreamToken> {
    require(caller, Permission::ReadTickets)?;
    let now = ctx.clock.now();
    let ttl = chrono::Duration::from_std(ctx.settings.event_stream.stream_token_ttl)
        .map_err(|e| AppError::internal_from("event_stream.stream_token_ttl", e))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("gws_{}", hex::encode(bytes));
    let txn = crate::db::begin_write(&ctx.db).await?;
    event_stream_token::Entity::delete_many().filter(event_stream_token::Column::ExpiresAt.lte(now)).exec(&txn).await?;
    event_stream_token::ActiveModel {
        token_hash: Set(hash(&token)),
        user_id: Set(caller.user_id),
        session_token_hash: Set(hash(bearer)),
        expires_at: Set(now + ttl),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(StreamToken { token, expires_in: ttl.num_seconds().max(0) as u64 })
}

/// The caller behind a stream token and the session it was issued to; 401 for an unknown or
/// expired one, or one whose session has ended. A refresh continues the session, so a token
/// issued before it keeps working until its own expiry.
pub async fn authenticate_stream_token(ctx: &AppContext, token: &str) -> AppResult<(Caller, Session)> {
    let now = ctx.clock.now();
    let refused = || {
        AppError::refused(
            Refusal::Unauthenticated,
            "事件流令牌无效或已过期，请重新获取（POST /api/v1/events/stream-token）",
            "the stream token is unknown or expired; get a new one from POST /api/v1/events/stream-token",
        )
    };
    let Some(row) = event_stream_token::Entity::find_by_id(hash(token))
        .filter(event_stream_token::Column::ExpiresAt.gt(now))
        .one(&ctx.db)
        .await?
    else {
        return Err(refused());
    };
    // The session of the bearer token it was taken with must still be live — through that
    // token or one refreshed from it (logout ends both).
    let session = repo::tokens::session_of(&ctx.db, &row.session_token_hash).await?.ok_or_else(refused)?;
    let found = repo::tokens::live_caller_of_session(&ctx.db, &session, now).await?.ok_or_else(refused)?;
    if found.user_id != row.user_id {
        return Err(refused());
    }
    Ok((super::auth::caller_of_live(found), session))
}

/// One SSE message: `id:` the event id, `data:` the event as the timeline shows it.
pub fn message(event: &ticket_event::Model) -> String {
    let data = serde_json::json!({
        "id": event.id,
        "ticket_id": event.ticket_id,
        "dispatch_id": event.dispatch_id,
        "kind": event.kind,
        "actor_id": event.actor_id,
        "at": event.at,
        "payload": event.payload,
    });
    format!("id: {}\ndata: {}\n\n", event.id, data)
}

/// Keeps `Utc` in use for the heartbeat comment's time.
pub fn heartbeat() -> String {
    format!(": heartbeat {}\n\n", Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
