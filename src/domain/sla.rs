//! SLA clocks: which clocks exist, their warning point, and how a clock's state reads.

use chrono::{DateTime, Duration, Utc};

use super::calendar::{BusinessCalendar, SlaDuration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClockKind {
    /// 签收/报到 of one dispatch.
    Acknowledge,
    /// 响应: first contact with the resident.
    FirstContact,
    /// 办结: runs from the first dispatch; returns and re-dispatches never reset it.
    Resolve,
    /// 整改 after a 差评.
    Rectify,
}

impl ClockKind {
    pub const ALL: [ClockKind; 4] = [Self::Acknowledge, Self::FirstContact, Self::Resolve, Self::Rectify];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledge => "acknowledge",
            Self::FirstContact => "first_contact",
            Self::Resolve => "resolve",
            Self::Rectify => "rectify",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// 中文 name for mails.
    pub fn label(self) -> &'static str {
        match self {
            Self::Acknowledge => "签收报到",
            Self::FirstContact => "首次响应",
            Self::Resolve => "办结",
            Self::Rectify => "差评整改",
        }
    }
}

/// The durations of one category and priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaDurations {
    pub acknowledge: SlaDuration,
    pub first_contact: SlaDuration,
    pub resolve: SlaDuration,
    pub rectify: SlaDuration,
    pub rating_window: SlaDuration,
}

impl SlaDurations {
    pub fn of(&self, clock: ClockKind) -> SlaDuration {
        match clock {
            ClockKind::Acknowledge => self.acknowledge,
            ClockKind::FirstContact => self.first_contact,
            ClockKind::Resolve => self.resolve,
            ClockKind::Rectify => self.rectify,
        }
    }
}

/// The instant at `fraction` of the way from `start` to `due`, measured the way the clock
/// counts: working time for working durations, plain time otherwise.
pub fn warning_point(
    calendar: &BusinessCalendar,
    duration: SlaDuration,
    start: DateTime<Utc>,
    due: DateTime<Utc>,
    fraction: f64,
) -> DateTime<Utc> {
    match duration {
        SlaDuration::Calendar(_) => start + scale(due - start, fraction),
        SlaDuration::WorkingTime(_) | SlaDuration::WorkingDays(_) => {
            let working = calendar.working_time_between(start, due);
            let part = scale(working, fraction);
            if part.is_zero() { start } else { calendar.add(start, SlaDuration::WorkingTime(part)).at }
        }
    }
}

fn scale(d: Duration, fraction: f64) -> Duration {
    Duration::milliseconds((d.num_milliseconds() as f64 * fraction.clamp(0.0, 1.0)) as i64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaState {
    OnTrack,
    Warning,
    Breached,
}

impl SlaState {
    pub fn at(now: DateTime<Utc>, warn_at: DateTime<Utc>, due_at: DateTime<Utc>) -> Self {
        if now >= due_at {
            Self::Breached
        } else if now >= warn_at {
            Self::Warning
        } else {
            Self::OnTrack
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnTrack => "on_track",
            Self::Warning => "warning",
            Self::Breached => "breached",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::OnTrack, Self::Warning, Self::Breached].into_iter().find(|s| s.as_str() == text)
    }

    /// 中文 name for spreadsheets and mails.
    pub fn label(self) -> &'static str {
        match self {
            Self::OnTrack => "正常",
            Self::Warning => "即将超时",
            Self::Breached => "已超时",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    fn at(text: &str) -> DateTime<Utc> {
        let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("time");
        (local - Duration::hours(8)).and_utc()
    }

    #[test]
    fn warning_at_eighty_percent_of_working_time() {
        let calendar = BusinessCalendar::china_default();
        let two_hours = SlaDuration::parse("2h working").expect("duration");
        // Tue 11:00 + 2 working hours = 15:30 (lunch skipped); 80 % = 96 min: 60 before lunch,
        // 36 after → 15:06.
        let start = at("2026-03-03 11:00");
        let due = calendar.add(start, two_hours).at;
        assert_eq!(due, at("2026-03-03 15:30"));
        assert_eq!(warning_point(&calendar, two_hours, start, due, 0.8), at("2026-03-03 15:06"));

        let thirty_minutes = SlaDuration::parse("30m").expect("duration");
        let due = start + Duration::minutes(30);
        assert_eq!(warning_point(&calendar, thirty_minutes, start, due, 0.8), start + Duration::minutes(24));
    }

    #[test]
    fn states() {
        let (warn, due) = (at("2026-03-03 10:00"), at("2026-03-03 11:00"));
        assert_eq!(SlaState::at(at("2026-03-03 09:59"), warn, due), SlaState::OnTrack);
        assert_eq!(SlaState::at(warn, warn, due), SlaState::Warning);
        assert_eq!(SlaState::at(due, warn, due), SlaState::Breached);
        for kind in ClockKind::ALL {
            assert_eq!(ClockKind::parse(kind.as_str()), Some(kind));
        }
    }
}
