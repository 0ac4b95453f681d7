//! MQTT ingestion of community sensors' alarms and heartbeats (issue 18).
//!
//! One MQTT 5 client per replica, with a stable client id and a persistent session
//! (`clean_start = false` and a session expiry), subscribed at QoS 1 to the shared
//! subscriptions `$share/{group}/{prefix}/sensors/+/alarm` and `…/heartbeat`: the broker queues
//! what arrives while the replica is away, and hands each message to one replica of the group.
//! Acknowledgements are manual and sent only after the message's transaction committed
//! (`service::sensor_alarms::handle`), so a crash before that means a redelivery, which the
//! receipts in the database turn into a no-op.
//!
//! Messages that are malformed, from unknown or disabled devices or of kinds a device does not
//! report are acknowledged and dropped: counted in `gridwhistle_sensor_messages_total` and
//! logged at WARN at most once per device per hour. That limit is kept in memory, per replica
//! (a restart may log a device once more).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use rumqttc::v5::{
    AsyncClient, Event, EventLoop, MqttOptions,
    mqttbytes::{
        QoS,
        v5::{Packet, Publish},
    },
};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    config::MqttSettings,
    context::AppContext,
    domain::sensor::Topic,
    metrics,
    service::sensor_alarms::{self, Outcome},
};

const WARN_EVERY: Duration = Duration::from_secs(3600);
/// Devices remembered for the WARN limit; past this the memory starts afresh (a flood of
/// made-up device ids must not grow it without bound).
const WARN_MEMORY: usize = 10_000;
/// The largest MQTT packet this client accepts; alarms are a few hundred bytes.
const MAX_PACKET_BYTES: u32 = 64 * 1024;
/// Messages the broker may have in flight to this replica (MQTT 5 receive maximum).
const RECEIVE_MAXIMUM: u16 = 32;

/// Runs until cancelled; does nothing when `mqtt.enabled` is false.
pub async fn run(ctx: AppContext, token: CancellationToken) {
    run_notifying(ctx, token, None).await
}

/// As [`run`], and `subscribed` is notified once the subscriptions are in place (a fresh
/// session's SUBACK, or a resumed session's CONNACK) — tests wait for it before publishing.
pub async fn run_notifying(ctx: AppContext, token: CancellationToken, subscribed: Option<Arc<Notify>>) {
    let settings = ctx.settings.mqtt.clone();
    if !settings.enabled {
        return;
    }
    let client_id = settings.effective_client_id();
    let options = match options(&settings, &client_id) {
        Ok(options) => options,
        Err(message) => {
            tracing::error!(%message, "mqtt: not started");
            return;
        }
    };
    let (client, eventloop) = AsyncClient::new(options, 64);
    let (messages, inbox) = mpsc::channel::<Publish>(usize::from(RECEIVE_MAXIMUM) * 2);
    let handler = tokio::spawn(handle_messages(ctx.clone(), client.clone(), inbox, token.clone()));
    tracing::info!(%client_id, url = %settings.url, prefix = %settings.topic_prefix, "mqtt: sensor ingestion starting");
    let mut eventloop = poll(eventloop, &client, &settings, messages, &token, subscribed).await;
    // The handler finishes (and acknowledges) the message in hand; what is not acknowledged
    // stays with the broker's session for the next start.
    let _ = handler.await;
    // Send the acknowledgements still queued, then DISCONNECT (the session stays).
    if client.try_disconnect().is_ok() {
        let flush = async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
    }
    tracing::info!(%client_id, "mqtt: sensor ingestion stopped");
}

async fn poll(
    mut eventloop: EventLoop,
    client: &AsyncClient,
    settings: &MqttSettings,
    messages: mpsc::Sender<Publish>,
    token: &CancellationToken,
    subscribed: Option<Arc<Notify>>,
) -> EventLoop {
    let mut backoff = Duration::from_millis(500);
    loop {
        let event = tokio::select! {
            _ = token.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(500);
                tracing::info!(session_present = ack.session_present, "mqtt: connected");
                if ack.session_present {
                    if let Some(notify) = &subscribed {
                        notify.notify_one();
                    }
                } else {
                    for filter in Topic::filters(&settings.topic_prefix, &settings.shared_group) {
                        if let Err(err) = client.try_subscribe(filter, QoS::AtLeastOnce) {
                            tracing::error!(error = %err, "mqtt: subscribe failed");
                        }
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(notify) = &subscribed {
                    notify.notify_one();
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if messages.send(publish).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "mqtt: connection lost; reconnecting");
                if !super::pause(token, backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    eventloop
}

async fn handle_messages(
    ctx: AppContext,
    client: AsyncClient,
    mut inbox: mpsc::Receiver<Publish>,
    token: CancellationToken,
) {
    let mut warned = WarnLimit::default();
    loop {
        let publish = tokio::select! {
            _ = token.cancelled() => break,
            next = inbox.recv() => match next {
                Some(publish) => publish,
                None => break,
            },
        };
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        let Some(outcome) = handle_until_done(&ctx, &topic, &publish.payload, &token).await else {
            // Cancelled before the transaction committed: not acknowledged, redelivered later.
            break;
        };
        metrics::sensor_messages().with_label_values(&[outcome.label()]).inc();
        report(&outcome, &mut warned);
        if let Err(err) = client.ack(&publish).await {
            tracing::warn!(error = %err, "mqtt: acknowledgement not sent; the broker will redeliver");
        }
    }
}

/// Retries a message whose transaction failed (the database away) until it commits or the
/// worker is cancelled; `None` when cancelled.
async fn handle_until_done(
    ctx: &AppContext,
    topic: &str,
    payload: &[u8],
    token: &CancellationToken,
) -> Option<Outcome> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match sensor_alarms::handle(ctx, topic, payload).await {
            Ok(outcome) => return Some(outcome),
            Err(err) => {
                tracing::error!(error = %err.chain(), %topic, retry_in = ?backoff, "sensor message not recorded; retrying");
                if !super::pause(token, backoff).await {
                    return None;
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

fn report(outcome: &Outcome, warned: &mut WarnLimit) {
    match outcome {
        Outcome::Filed { ticket_id } => tracing::info!(%ticket_id, "sensor alarm filed a ticket"),
        Outcome::Malformed { device, reason } => {
            let key = device.as_deref().unwrap_or("(no device)");
            if warned.first_in_a_while(key) {
                tracing::warn!(device = %key, %reason, "sensor message malformed; dropped (logged once an hour per device)");
            }
        }
        Outcome::UnknownDevice { device } if warned.first_in_a_while(device) => {
            tracing::warn!(%device, "sensor message from an unregistered device; dropped (logged once an hour per device)")
        }
        Outcome::DisabledDevice { device } if warned.first_in_a_while(device) => {
            tracing::warn!(%device, "sensor message from a disabled device; dropped (logged once an hour per device)")
        }
        Outcome::UnknownKind { device, kind } if warned.first_in_a_while(device) => {
            tracing::warn!(%device, %kind, "sensor alarm of a kind the device is not registered for; dropped (logged once an hour per device)")
        }
        Outcome::Refused { device, reason } if warned.first_in_a_while(device) => {
            tracing::warn!(%device, %reason, "sensor alarm could not be filed; dropped (logged once an hour per device)")
        }
        _ => {}
    }
}

/// At most one WARN per device per hour, in this replica's memory.
#[derive(Default)]
struct WarnLimit {
    last: HashMap<String, Instant>,
}

impl WarnLimit {
    fn first_in_a_while(&mut self, device: &str) -> bool {
        let now = Instant::now();
        if self.last.get(device).is_some_and(|at| now.duration_since(*at) < WARN_EVERY) {
            return false;
        }
        if self.last.len() >= WARN_MEMORY {
            self.last.retain(|_, at| now.duration_since(*at) < WARN_EVERY);
            if self.last.len() >= WARN_MEMORY {
                self.last.clear();
            }
        }
        self.last.insert(device.to_owned(), now);
        true
    }
}

/// Client options from `[mqtt]`: persistent session, manual acks, TLS for `mqtts://`.
fn options(settings: &MqttSettings, client_id: &str) -> Result<MqttOptions, String> {
    let (tls, rest) = if let Some(rest) = settings.url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = settings.url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err("mqtt.url must start with mqtt:// or mqtts://".into());
    };
    let authority = rest.trim_end_matches('/');
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| format!("mqtt.url: bad port `{port}`"))?),
        None => (authority, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() || host.contains(['/', '@', '?']) {
        return Err("mqtt.url must look like mqtt://host:1883".into());
    }
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_keep_alive(settings.keep_alive)
        .set_clean_start(false)
        .set_session_expiry_interval(Some(u32::try_from(settings.session_expiry.as_secs()).unwrap_or(u32::MAX)))
        .set_receive_maximum(Some(RECEIVE_MAXIMUM))
        // Told to the broker in CONNECT: it discards a larger message instead of sending it
        // (MQTT 5, Maximum Packet Size). Without it one oversized message on the persistent
        // session would be handed back on every reconnect and stop all ingestion.
        .set_max_packet_size(Some(MAX_PACKET_BYTES))
        .set_manual_acks(true);
    if !settings.username.is_empty() {
        options.set_credentials(settings.username.clone(), settings.password.clone());
    }
    if tls {
        options.set_transport(rumqttc::Transport::tls_with_config(tls_config()?));
    }
    Ok(options)
}

/// rustls with the ring provider and the system's trusted roots.
fn tls_config() -> Result<rumqttc::TlsConfiguration, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("mqtt TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(rumqttc::TlsConfiguration::Rustls(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_per_device_per_hour() {
        let mut limit = WarnLimit::default();
        assert!(limit.first_in_a_while("A"));
        assert!(!limit.first_in_a_while("A"));
        assert!(limit.first_in_a_while("B"));
        limit.last.insert("A".into(), Instant::now() - WARN_EVERY);
        assert!(limit.first_in_a_while("A"));
    }
}
