//! `GET /api/v1/events/stream`: the caller's timeline events live, as Server-Sent Events.

use std::{collections::HashSet, time::Duration};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    extract::{Query, bearer_token},
    problem::Problem,
};
use crate::{
    context::AppContext,
    domain::{
        access::{Caller, Permission},
        validate::Message,
    },
    error::{AppError, AppResult, Refusal},
    repo::tokens::Session,
    service::{
        self,
        event_stream::{self, Live, StreamFilter},
        in_flight::Slot,
        webhooks::EVENT_KINDS,
    },
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Only events of this kind (`dispatched`, `acknowledged`, …).
    kind: Option<String>,
    /// Only events of this ticket.
    ticket_id: Option<Uuid>,
    /// For browsers' EventSource, which cannot send a bearer token: a token from
    /// `createEventStreamToken`. Never logged.
    stream_token: Option<String>,
    /// Like the `Last-Event-ID` header, for a new EventSource (which cannot set headers)
    /// opened after its stream token ran out. The header wins when both are sent.
    last_event_id: Option<String>,
}

/// Follow your timeline events live (Server-Sent Events).
///
/// `text/event-stream`: every timeline event you may see (the jurisdiction of
/// `listTicketEvents`: department staff their own dispatches, dispatchers their township, …)
/// as it is committed, on whichever replica it was written. Each message is
/// `id: <event id>` and `data: <the event as listTicketEvents shows it>`; a comment line comes
/// every `event_stream.heartbeat` (15 s). Reconnect with `Last-Event-ID` to receive what you
/// missed (from the last `event_stream.replay_window`, 24 h), then live events. A client that
/// falls `event_stream.buffer` events behind is disconnected and reconnects the same way.
/// Authenticate with a bearer token, or `?stream_token=` from `createEventStreamToken`.
/// A session (one login, across `refreshToken`) holds at most
/// `event_stream.max_streams_per_session` (5) streams at once; the next is 429 with
/// `Retry-After` until one ends (a closed tab is noticed at its next heartbeat, so retrying
/// after `Retry-After` finds its place free). A refresh does not end the session's streams;
/// a logout does. A malformed `Last-Event-ID` (or `last_event_id`) is 422.
#[utoipa::path(get, path = "/api/v1/events/stream", operation_id = "streamEvents", tag = "tickets",
    params(StreamQuery,
        ("Last-Event-ID" = Option<Uuid>, Header, description = "the id of the last event received: the stream replays the events after it first")),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "an endless stream of `id:` / `data:` messages and heartbeat comments"),
        (status = 429, body = Problem, description = "the session already holds `event_stream.max_streams_per_session` streams")),
    security(("bearer" = [])))]
pub async fn stream(
    req: HttpRequest,
    ctx: web::Data<AppContext>,
    Query(q): Query<StreamQuery>,
) -> AppResult<HttpResponse> {
    // The stream lives as long as the session (the login, across refreshes) it was opened under.
    let (caller, session) = match (bearer_token(&req), q.stream_token.as_deref()) {
        (Some(token), _) => service::auth::authenticate_session(&ctx, &token).await?,
        (None, Some(token)) => event_stream::authenticate_stream_token(&ctx, token).await?,
        (None, None) => {
            return Err(AppError::refused(
                Refusal::Unauthenticated,
                "请先登录：发送 Authorization: Bearer <令牌>，或以 ?stream_token= 附上 POST /api/v1/events/stream-token 取得的令牌",
                "send Authorization: Bearer <token>, or ?stream_token= from POST /api/v1/events/stream-token",
            ));
        }
    };
    service::require(&caller, Permission::ReadTickets)?;
    if let Some(kind) = q.kind.as_deref()
        && !EVENT_KINDS.contains(&kind)
    {
        return Err(AppError::invalid("kind", Message::OneOf(EVENT_KINDS.iter().map(|k| k.to_string()).collect())));
    }
    let last_event_id = last_event_id(&req, q.last_event_id.as_deref())?;
    // Held by the stream's task until it ends: a refused or failed opening gives it back at once.
    let slot = ctx.events.hold_stream(&ctx.settings.event_stream, &session)?;
    let filter = StreamFilter { kind: q.kind, ticket_id: q.ticket_id };
    // Subscribed before the replay is read, so nothing committed in between is lost.
    let live = ctx.events.subscribe();
    let replayed = match last_event_id {
        Some(last) => event_stream::replay(&ctx, &caller, last, &filter).await?,
        None => Vec::new(),
    };
    let (tx, rx) = mpsc::channel::<web::Bytes>(16);
    let stream = Stream { caller, session, filter, _slot: slot };
    actix_web::rt::spawn(pump(ctx.into_inner().as_ref().clone(), stream, replayed, live, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, actix_web::Error>(bytes), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Reverse proxies (nginx) pass each message on at once instead of buffering.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// Where to resume: the `Last-Event-ID` header, else the `last_event_id` parameter; empty
/// means from now. A malformed one is 422 naming the one the client sent — also a header that
/// is not text at all, which would otherwise resume from now without a word.
fn last_event_id(req: &HttpRequest, parameter: Option<&str>) -> AppResult<Option<Uuid>> {
    let malformed = |name: &str| {
        AppError::invalid(name, Message::said("应为此前收到的事件编号", "must be the id of an event received before"))
    };
    let (name, text) = match (req.headers().get("last-event-id"), parameter) {
        (Some(header), _) => ("Last-Event-ID", header.to_str().map_err(|_| malformed("Last-Event-ID"))?),
        (None, Some(text)) => ("last_event_id", text),
        (None, None) => return Ok(None),
    };
    match text.trim() {
        "" => Ok(None),
        text => text.parse::<Uuid>().map(Some).map_err(|_| malformed(name)),
    }
}

/// Whose stream it is and what it asks for; its place among the session's streams is given
/// back when the stream ends.
struct Stream {
    caller: Caller,
    session: Session,
    filter: StreamFilter,
    _slot: Slot<Session>,
}

/// Writes one stream until its client leaves, it falls too far behind, its session ends
/// (checked at each heartbeat), or a drain starts. Holds no database connection between
/// messages: each check borrows one from the pool and gives it back.
async fn pump(
    ctx: AppContext,
    stream: Stream,
    replayed: Vec<entities::ticket_event::Model>,
    mut live: tokio::sync::broadcast::Receiver<Live>,
    tx: mpsc::Sender<web::Bytes>,
) {
    let Stream { caller, session, filter, _slot } = stream;
    let send = |text: String| {
        let tx = tx.clone();
        async move { tx.send(web::Bytes::from(text)).await.is_ok() }
    };
    if !send(": connected\nretry: 3000\n\n".into()).await {
        return;
    }
    let mut replayed_ids: HashSet<Uuid> = HashSet::with_capacity(replayed.len());
    for event in &replayed {
        replayed_ids.insert(event.id);
        if !send(event_stream::message(event)).await {
            return;
        }
    }
    let closing = ctx.events.closing();
    let every = ctx.settings.event_stream.heartbeat;
    let mut heartbeat = tokio::time::interval(every);
    heartbeat.tick().await;
    // Armed after each heartbeat (see `event_stream::probe_after`): a client that left answered
    // the heartbeat with a reset, so this write fails and the stream's slot is freed now
    // rather than a heartbeat later.
    let probe = tokio::time::sleep(Duration::MAX);
    tokio::pin!(probe);
    let mut probing = false;
    loop {
        tokio::select! {
            _ = closing.cancelled() => break,
            _ = tx.closed() => break,
            _ = heartbeat.tick() => {
                // A logout (or a revoked session) ends its streams within one heartbeat.
                if !service::auth::session_is_live(&ctx, &session).await.unwrap_or(true) {
                    let _ = send(": session ended; log in again\n\n".into()).await;
                    break;
                }
                if !send(event_stream::heartbeat()).await {
                    break;
                }
                probe.as_mut().reset(tokio::time::Instant::now() + event_stream::probe_after(every));
                probing = true;
            }
            _ = &mut probe, if probing => {
                probing = false;
                if !send(":\n\n".into()).await {
                    break;
                }
            }
            received = live.recv() => match received {
                Ok(Live::Gap) => {
                    let _ = tx.try_send(web::Bytes::from_static(
                        b": events may have been missed; reconnect with Last-Event-ID to replay them\n\n",
                    ));
                    break;
                }
                Ok(Live::Event(event)) => {
                    if replayed_ids.remove(&event.id) || !filter.takes(&event) {
                        continue;
                    }
                    match event_stream::visible(&ctx, &caller, &event).await {
                        Ok(Some(visible)) => {
                            if !send(event_stream::message(&visible)).await {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(err) => tracing::warn!(error = %err.chain(), "an event could not be checked for a live stream"),
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "a live event stream fell too far behind and is closed");
                    let _ = tx.try_send(web::Bytes::from_static(
                        b": too far behind; reconnect with Last-Event-ID to replay what was missed\n\n",
                    ));
                    break;
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamToken {
    /// Pass as `?stream_token=` to `streamEvents`; it opens nothing else.
    pub stream_token: String,
    /// Seconds it stays valid (`event_stream.stream_token_ttl`); it also ends with your session
    /// (a logout, not a refresh).
    pub expires_in: u64,
}

/// Get a short-lived token for the event stream (browsers' EventSource).
///
/// EventSource cannot send an `Authorization` header: pass this token as
/// `GET /api/v1/events/stream?stream_token=…`. It opens the event stream and nothing else,
/// expires after `event_stream.stream_token_ttl` (60 s) and with your session (logout).
#[utoipa::path(post, path = "/api/v1/events/stream-token", operation_id = "createEventStreamToken", tag = "tickets",
    responses((status = 200, body = StreamToken), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn stream_token(
    req: HttpRequest,
    ctx: web::Data<AppContext>,
    caller: Caller,
) -> AppResult<web::Json<StreamToken>> {
    let bearer = bearer_token(&req).unwrap_or_default();
    let issued = event_stream::issue_token(&ctx, &caller, &bearer).await?;
    Ok(web::Json(StreamToken { stream_token: issued.token, expires_in: issued.expires_in }))
}
