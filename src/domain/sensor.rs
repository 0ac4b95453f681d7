//! Community sensors' words: device ids, alarm kinds, MQTT topics and payloads, and what makes
//! two deliveries the same alarm. Pure parsing; the service decides what a message does.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The kind a silent device's ticket is filed under; no device reports it itself.
pub const OFFLINE_KIND: &str = "device_offline";

/// A device id as it appears in a topic level: `SMOKE-001`. No `/`, `+`, `#` or spaces.
pub fn is_device_id(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// An alarm kind: `smoke`, `manhole_tilt`, `water_level`, `elevator`.
pub fn is_kind(text: &str) -> bool {
    (1..=32).contains(&text.len()) && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    Alarm(String),
    Heartbeat(String),
}

impl Topic {
    /// `{prefix}/sensors/{device_id}/alarm` or `…/heartbeat`; `None` for anything else
    /// (including a device level that is not a device id).
    pub fn parse(prefix: &str, topic: &str) -> Option<Self> {
        let rest = topic.strip_prefix(prefix)?.strip_prefix("/sensors/")?;
        let (device, leaf) = rest.split_once('/')?;
        if !is_device_id(device) {
            return None;
        }
        match leaf {
            "alarm" => Some(Self::Alarm(device.to_owned())),
            "heartbeat" => Some(Self::Heartbeat(device.to_owned())),
            _ => None,
        }
    }

    /// The device level of any topic under `{prefix}/sensors/`, even a malformed one, for
    /// counting and logging messages that cannot be parsed.
    pub fn device_of<'a>(prefix: &str, topic: &'a str) -> Option<&'a str> {
        topic.strip_prefix(prefix)?.strip_prefix("/sensors/")?.split('/').next()
    }

    /// The subscriptions that cover both topics, shared by a group of replicas.
    pub fn filters(prefix: &str, shared_group: &str) -> [String; 2] {
        [
            format!("$share/{shared_group}/{prefix}/sensors/+/alarm"),
            format!("$share/{shared_group}/{prefix}/sensors/+/heartbeat"),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    Alarm,
    Clear,
}

/// `{"kind", "state": "alarm"|"clear", "value"?, "at"?, "message_id"?}`. Fields a device adds
/// beyond these are ignored (firmware varies); the ones named must have the right type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AlarmMessage {
    pub kind: String,
    pub state: AlarmState,
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub message_id: Option<String>,
}

impl AlarmMessage {
    /// Parses a payload; the error says what is wrong (for the log, never for filing).
    pub fn parse(payload: &[u8]) -> Result<Self, String> {
        let message: Self = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        if !is_kind(&message.kind) {
            return Err("kind must be 1–32 of a-z, 0-9 and _".into());
        }
        if let Some(id) = &message.message_id
            && (id.is_empty() || id.len() > 128 || id.chars().any(char::is_control))
        {
            return Err("message_id must be 1–128 characters without control characters".into());
        }
        if matches!(&message.value, Some(v) if !(v.is_number() || v.is_string() || v.is_boolean() || v.is_null())) {
            return Err("value must be a number, a string or a boolean".into());
        }
        Ok(message)
    }

    /// What identifies this alarm across deliveries: its `message_id`, else its `at`.
    /// Without either, every delivery counts (the device cannot be told apart from a repeat).
    pub fn dedup_key(&self) -> Option<String> {
        match (&self.message_id, self.at) {
            (Some(id), _) => Some(format!("m:{id}")),
            (None, Some(at)) => Some(format!("t:{}", at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert_eq!(Topic::parse("gw", "gw/sensors/SMOKE-001/alarm"), Some(Topic::Alarm("SMOKE-001".into())));
        assert_eq!(Topic::parse("gw", "gw/sensors/SMOKE-001/heartbeat"), Some(Topic::Heartbeat("SMOKE-001".into())));
        assert_eq!(Topic::parse("gw", "gw/sensors/SMOKE-001/other"), None);
        assert_eq!(Topic::parse("gw", "other/sensors/SMOKE-001/alarm"), None);
        assert_eq!(Topic::parse("gw", "gw/sensors/a b/alarm"), None);
        assert_eq!(Topic::parse("a/b", "a/b/sensors/X/alarm"), Some(Topic::Alarm("X".into())));
        assert_eq!(Topic::device_of("gw", "gw/sensors/X/whatever"), Some("X"));
        assert_eq!(Topic::filters("gw", "g")[0], "$share/g/gw/sensors/+/alarm");
    }

    #[test]
    fn payloads() {
        let m = AlarmMessage::parse(br#"{"kind":"smoke","state":"alarm"}"#).expect("minimal");
        assert_eq!((m.kind.as_str(), m.state, m.dedup_key()), ("smoke", AlarmState::Alarm, None));
        let m =
            AlarmMessage::parse(br#"{"kind":"smoke","state":"clear","message_id":"42","at":"2026-11-29T10:00:00Z"}"#)
                .expect("full");
        assert_eq!(m.dedup_key().as_deref(), Some("m:42"));
        let m =
            AlarmMessage::parse(br#"{"kind":"smoke","state":"alarm","at":"2026-11-29T18:00:00+08:00","value":3.5}"#)
                .expect("at");
        assert_eq!(m.dedup_key().as_deref(), Some("t:2026-11-29T10:00:00.000000Z"));
        for bad in [
            &b"not json"[..],
            br#"{"kind":"smoke"}"#,
            br#"{"kind":"smoke","state":"burning"}"#,
            br#"{"kind":"Smoke!","state":"alarm"}"#,
            br#"{"kind":"smoke","state":"alarm","at":"yesterday"}"#,
            br#"{"kind":"smoke","state":"alarm","value":{"a":1}}"#,
            br#"{"kind":"smoke","state":"alarm","message_id":""}"#,
        ] {
            assert!(AlarmMessage::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn ids_and_kinds() {
        assert!(is_device_id("SMOKE-001") && is_device_id("wl_3.a"));
        assert!(!is_device_id("") && !is_device_id("a/b") && !is_device_id("a+") && !is_device_id("#"));
        assert!(is_kind("smoke") && is_kind("water_level2"));
        assert!(!is_kind("Smoke") && !is_kind("") && !is_kind("a-b"));
    }
}
