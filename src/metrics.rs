//! Prometheus counters, served at /metrics. Labels never carry personal data.

use std::sync::OnceLock;

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

struct Metrics {
    registry: Registry,
    sla_events: IntCounterVec,
    escalations: IntCounterVec,
    mails: IntCounterVec,
    sweeper_clock_failures: IntCounterVec,
    mail_leases: IntCounterVec,
    outbox: IntGaugeVec,
    smtp_reachable: IntGauge,
    sensor_messages: IntCounterVec,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let counter = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric definition");
            registry.register(Box::new(counter.clone())).expect("metric registered once");
            counter
        };
        Metrics {
            sla_events: counter("gridwhistle_sla_events_total", "SLA warnings and breaches fired", &["kind", "clock"]),
            escalations: counter("gridwhistle_escalations_total", "Escalation rules fired", &["trigger"]),
            mails: counter("gridwhistle_mails_total", "Notification mails by outcome", &["outcome"]),
            sweeper_clock_failures: counter(
                "gridwhistle_sweeper_clock_failures_total",
                "SLA clocks the sweeper could not process and put aside for a retry",
                &["clock"],
            ),
            mail_leases: counter(
                "gridwhistle_mail_leases_lost_total",
                "Mails a sender skipped or could not record because its claim had run out",
                &["stage"],
            ),
            outbox: {
                let gauge = IntGaugeVec::new(
                    Opts::new("gridwhistle_outbox_mails", "Mails in the outbox by status, as the mailer last counted"),
                    &["status"],
                )
                .expect("a valid metric definition");
                registry.register(Box::new(gauge.clone())).expect("metric registered once");
                gauge
            },
            smtp_reachable: {
                let gauge = IntGauge::new(
                    "gridwhistle_smtp_reachable",
                    "1 while this replica's mailer reaches the SMTP server, 0 during an outage",
                )
                .expect("a valid metric definition");
                registry.register(Box::new(gauge.clone())).expect("metric registered once");
                gauge
            },
            sensor_messages: counter(
                "gridwhistle_sensor_messages_total",
                "MQTT sensor messages by outcome (filed, alarm, clear, heartbeat, duplicate, malformed, unknown_device, disabled_device, unknown_kind)",
                &["outcome"],
            ),
            registry,
        }
    })
}

/// `kind` is `warning` or `breach`.
pub fn sla_events() -> &'static IntCounterVec {
    &metrics().sla_events
}

pub fn escalations() -> &'static IntCounterVec {
    &metrics().escalations
}

/// `outcome` is `sent`, `retry` or `dead`.
pub fn mails() -> &'static IntCounterVec {
    &metrics().mails
}

/// `clock` is the clock kind (`unknown` when the stored kind does not parse).
pub fn sweeper_clock_failures() -> &'static IntCounterVec {
    &metrics().sweeper_clock_failures
}

/// Outcomes of the fenced mail update: `lease_lost` when a sender's claim was taken over.
pub fn mail_leases() -> &'static IntCounterVec {
    &metrics().mail_leases
}

/// `status` is `pending` or `dead`: dead mail waits for an admin to re-queue it.
pub fn outbox() -> &'static IntGaugeVec {
    &metrics().outbox
}

pub fn smtp_reachable() -> &'static IntGauge {
    &metrics().smtp_reachable
}

/// Sensor messages by `outcome`; never labelled by device (unbounded, and devices are in the log).
pub fn sensor_messages() -> &'static IntCounterVec {
    &metrics().sensor_messages
}

pub fn render() -> String {
    TextEncoder::new().encode_to_string(&metrics().registry.gather()).unwrap_or_default()
}
