//! Working-time arithmetic over the business calendar: working hours, weekends, statutory
//! holidays and 调休 make-up workdays (a Saturday that is a working day).
//!
//! All arithmetic happens in the city's local time (a fixed offset: China has no daylight
//! saving); instants go in and come out as UTC.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};
use serde::Deserialize;

/// A duration as operators write it: `"30m"` (calendar time), `"2h working"` (only time inside
/// working hours counts), `"7d working"` (the same time of day, N working days later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaDuration {
    Calendar(Duration),
    WorkingTime(Duration),
    WorkingDays(u32),
}

impl SlaDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (amount, working) = match text.strip_suffix("working") {
            Some(rest) => (rest.trim_end(), true),
            None => (text, false),
        };
        let std = super::duration::parse_duration(amount)?;
        let duration = Duration::from_std(std).map_err(|_| format!("`{text}` is too long"))?;
        if duration.is_zero() {
            return Err(format!("`{text}` must be longer than zero"));
        }
        match (working, amount.ends_with('d')) {
            (false, _) => Ok(Self::Calendar(duration)),
            (true, true) => {
                u32::try_from(duration.num_days()).map(Self::WorkingDays).map_err(|_| format!("`{text}` is too long"))
            }
            (true, false) => Ok(Self::WorkingTime(duration)),
        }
    }
}

impl std::fmt::Display for SlaDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn compact(d: Duration) -> String {
            let s = d.num_seconds();
            match s {
                _ if s % 86_400 == 0 => format!("{}d", s / 86_400),
                _ if s % 3600 == 0 => format!("{}h", s / 3600),
                _ if s % 60 == 0 => format!("{}m", s / 60),
                _ => format!("{s}s"),
            }
        }
        match self {
            Self::Calendar(d) => f.write_str(&compact(*d)),
            Self::WorkingTime(d) => write!(f, "{} working", compact(*d)),
            Self::WorkingDays(n) => write!(f, "{n}d working"),
        }
    }
}

/// One year's official schedule in the holiday-cn format: each listed date is either off
/// (a holiday) or a make-up workday; unlisted dates follow the weekday rule.
#[derive(Debug, Clone, Deserialize)]
pub struct YearSchedule {
    pub year: i32,
    pub days: Vec<ScheduleDay>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScheduleDay {
    #[serde(default)]
    pub name: String,
    pub date: NaiveDate,
    #[serde(rename = "isOffDay")]
    pub is_off_day: bool,
}

impl YearSchedule {
    pub fn parse(json: &str) -> Result<Self, String> {
        let schedule: YearSchedule = serde_json::from_str(json).map_err(|e| format!("not a holiday schedule: {e}"))?;
        if let Some(stray) = schedule.days.iter().find(|d| d.date.year() != schedule.year) {
            return Err(format!("{} is not in {}", stray.date, schedule.year));
        }
        Ok(schedule)
    }
}

/// A computed instant, and whether it relied on a year with no loaded schedule (weekdays
/// only), so a client can flag it as provisional.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub at: DateTime<Utc>,
    pub estimated: bool,
}

#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    offset: FixedOffset,
    /// Working spans of a working day, sorted and disjoint.
    spans: Vec<(NaiveTime, NaiveTime)>,
    overrides: HashMap<NaiveDate, bool>,
    loaded_years: BTreeSet<i32>,
}

impl BusinessCalendar {
    pub fn new(offset: FixedOffset, spans: Vec<(NaiveTime, NaiveTime)>) -> Result<Self, String> {
        if spans.is_empty() {
            return Err("at least one working span is needed".into());
        }
        for pair in spans.windows(2) {
            if pair[0].1 > pair[1].0 {
                return Err("working spans must be in order and must not overlap".into());
            }
        }
        if spans.iter().any(|(start, end)| start >= end) {
            return Err("a working span must end after it starts".into());
        }
        Ok(Self { offset, spans, overrides: HashMap::new(), loaded_years: BTreeSet::new() })
    }

    /// 08:30–12:00 and 14:30–18:00, China Standard Time.
    pub fn china_default() -> Self {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("a valid time of day");
        let offset = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
        Self {
            offset,
            spans: vec![(t(8, 30), t(12, 0)), (t(14, 30), t(18, 0))],
            overrides: HashMap::new(),
            loaded_years: BTreeSet::new(),
        }
    }

    pub fn load(&mut self, schedule: &YearSchedule) {
        self.overrides.retain(|date, _| date.year() != schedule.year);
        for day in &schedule.days {
            self.overrides.insert(day.date, !day.is_off_day);
        }
        self.loaded_years.insert(schedule.year);
    }

    pub fn loaded_years(&self) -> impl Iterator<Item = i32> + '_ {
        self.loaded_years.iter().copied()
    }

    pub fn offset(&self) -> FixedOffset {
        self.offset
    }

    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        self.overrides.get(&date).copied().unwrap_or(!matches!(date.weekday(), Weekday::Sat | Weekday::Sun))
    }

    fn knows(&self, date: NaiveDate) -> bool {
        self.loaded_years.contains(&date.year())
    }

    /// `start + duration` in the calendar's terms.
    pub fn add(&self, start: DateTime<Utc>, duration: SlaDuration) -> Deadline {
        match duration {
            SlaDuration::Calendar(d) => Deadline { at: start + d, estimated: false },
            SlaDuration::WorkingTime(d) => self.add_working_time(start, d),
            SlaDuration::WorkingDays(n) => self.add_working_days(start, n),
        }
    }

    fn add_working_time(&self, start: DateTime<Utc>, amount: Duration) -> Deadline {
        let mut now = self.local(start);
        let mut left = amount;
        let mut estimated = false;
        loop {
            estimated |= !self.knows(now.date());
            if self.is_working_day(now.date()) {
                for &(from, to) in &self.spans {
                    let span_end = now.date().and_time(to);
                    let span_start = now.date().and_time(from);
                    if now >= span_end {
                        continue;
                    }
                    now = now.max(span_start);
                    let available = span_end - now;
                    if left <= available {
                        return Deadline { at: self.utc(now + left), estimated };
                    }
                    left -= available;
                    now = span_end;
                }
            }
            now = self.next_day_start(now.date());
        }
    }

    fn add_working_days(&self, start: DateTime<Utc>, days: u32) -> Deadline {
        let (moment, mut estimated) = self.next_working_moment(self.local(start));
        let mut date = moment.date();
        let mut counted = 0;
        while counted < days {
            date = date.succ_opt().unwrap_or(date);
            estimated |= !self.knows(date);
            if self.is_working_day(date) {
                counted += 1;
            }
        }
        Deadline { at: self.utc(date.and_time(moment.time())), estimated }
    }

    /// The first instant at or after `t` that lies inside working hours.
    fn next_working_moment(&self, t: NaiveDateTime) -> (NaiveDateTime, bool) {
        let mut now = t;
        let mut estimated = false;
        loop {
            estimated |= !self.knows(now.date());
            if self.is_working_day(now.date()) {
                for &(from, to) in &self.spans {
                    if now < now.date().and_time(to) {
                        return (now.max(now.date().and_time(from)), estimated);
                    }
                }
            }
            now = self.next_day_start(now.date());
        }
    }

    /// Working time inside `[from, to)`; zero when `to` is not after `from`.
    pub fn working_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let (from, to) = (self.local(from), self.local(to));
        let mut total = Duration::zero();
        let mut date = from.date();
        while date <= to.date() {
            if self.is_working_day(date) {
                for &(start, end) in &self.spans {
                    let start = date.and_time(start).max(from);
                    let end = date.and_time(end).min(to);
                    if end > start {
                        total += end - start;
                    }
                }
            }
            date = match date.succ_opt() {
                Some(next) => next,
                None => break,
            };
        }
        total
    }

    fn next_day_start(&self, date: NaiveDate) -> NaiveDateTime {
        date.succ_opt().unwrap_or(date).and_time(NaiveTime::MIN)
    }

    fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.offset).naive_local()
    }

    fn utc(&self, t: NaiveDateTime) -> DateTime<Utc> {
        // A fixed offset maps every local time to exactly one instant.
        (t - Duration::seconds(i64::from(self.offset.local_minus_utc()))).and_utc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar() -> BusinessCalendar {
        let mut calendar = BusinessCalendar::china_default();
        for json in [include_str!("../../config/holidays/2025.json"), include_str!("../../config/holidays/2026.json")] {
            calendar.load(&YearSchedule::parse(json).expect("schedule parses"));
        }
        calendar
    }

    /// Beijing time in, UTC out: `at("2026-02-13 17:00")`.
    fn at(text: &str) -> DateTime<Utc> {
        let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("time");
        (local - Duration::hours(8)).and_utc()
    }

    fn add(start: &str, duration: &str) -> Deadline {
        calendar().add(at(start), SlaDuration::parse(duration).expect("duration"))
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(SlaDuration::parse("30m"), Ok(SlaDuration::Calendar(Duration::minutes(30))));
        assert_eq!(SlaDuration::parse("2h working"), Ok(SlaDuration::WorkingTime(Duration::hours(2))));
        assert_eq!(SlaDuration::parse("7d working"), Ok(SlaDuration::WorkingDays(7)));
        assert_eq!(SlaDuration::parse("15s"), Ok(SlaDuration::Calendar(Duration::seconds(15))));
        for bad in ["", "working", "0m", "2 hours", "7d workin", "-1h working"] {
            assert!(SlaDuration::parse(bad).is_err(), "{bad:?}");
        }
        for text in ["30m", "2h working", "7d working", "15s", "3d", "90s working"] {
            assert_eq!(SlaDuration::parse(text).expect("parses").to_string(), text);
        }
    }

    #[test]
    fn spring_festival_2026_with_make_up_saturdays() {
        let c = calendar();
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert!(c.is_working_day(date("2026-02-14")), "Saturday 2026-02-14 is a 调休 workday");
        assert!(!c.is_working_day(date("2026-02-23")), "Monday 2026-02-23 is still the holiday");
        assert!(c.is_working_day(date("2026-02-28")), "Saturday 2026-02-28 is a 调休 workday");
        assert!(c.is_working_day(date("2026-02-24")));

        // Friday 17:00 before the holiday: one working hour that day, the second on the
        // make-up Saturday morning.
        assert_eq!(add("2026-02-13 17:00", "2h working").at, at("2026-02-14 09:30"));
        // Saturday 14 Feb 17:00 + 2 working hours: 1 h that day, then nothing until Tue 24 Feb.
        assert_eq!(add("2026-02-14 17:00", "2h working").at, at("2026-02-24 09:30"));
        // 7 working days from Thursday 12 Feb 10:00: 13, 14 (Sat), 24, 25, 26, 27, 28 (Sat).
        assert_eq!(add("2026-02-12 10:00", "7d working").at, at("2026-02-28 10:00"));
        // Calendar time ignores all of that.
        assert_eq!(add("2026-02-13 17:00", "24h").at, at("2026-02-14 17:00"));
    }

    #[test]
    fn national_day_2025_and_2026() {
        // 2025: Oct 1–8 off, Sunday 28 Sep and Saturday 11 Oct are workdays.
        // Saturday 27 Sep is off: the clock starts at 08:30 on the make-up Sunday.
        assert_eq!(add("2025-09-27 10:00", "1d working").at, at("2025-09-29 08:30"));
        assert_eq!(add("2025-09-26 10:00", "1d working").at, at("2025-09-28 10:00"), "Fri → make-up Sun");
        assert_eq!(add("2025-09-30 10:00", "1d working").at, at("2025-10-09 10:00"));
        assert_eq!(add("2025-09-30 10:00", "3d working").at, at("2025-10-11 10:00"), "9, 10, 11 (Sat)");
        assert_eq!(add("2025-09-30 17:30", "1h working").at, at("2025-10-09 09:00"));
        // 2026: Oct 1–7 off, Sunday 20 Sep and Saturday 10 Oct are workdays.
        // 15 working days from Wed 30 Sep (rectification after a 差评): Oct 8, 9, 10 (Sat),
        // 12–16, 19–23, 26, 27.
        assert_eq!(add("2026-09-30 16:00", "15d working").at, at("2026-10-27 16:00"));
        assert_eq!(add("2026-09-18 09:00", "1d working").at, at("2026-09-20 09:00"), "Fri → make-up Sun");
        assert_eq!(add("2026-10-09 09:00", "1d working").at, at("2026-10-10 09:00"), "Fri → make-up Sat");
    }

    #[test]
    fn outside_working_hours_moves_to_the_next_working_moment() {
        // Lunch break: 12:30 → 14:30, then one day later at 14:30.
        assert_eq!(add("2026-03-03 12:30", "1d working").at, at("2026-03-04 14:30"));
        // Friday evening → Monday 08:30.
        assert_eq!(add("2026-03-06 20:00", "1d working").at, at("2026-03-10 08:30"));
        assert_eq!(add("2026-03-06 20:00", "30m working").at, at("2026-03-09 09:00"));
        // Across lunch: 11:30 + 1 h = 15:00.
        assert_eq!(add("2026-03-03 11:30", "1h working").at, at("2026-03-03 15:00"));
        // Ending exactly at the close of a span stays there.
        assert_eq!(add("2026-03-03 11:00", "1h working").at, at("2026-03-03 12:00"));
    }

    #[test]
    fn a_year_without_a_schedule_is_weekdays_only_and_flagged() {
        let inside = add("2026-06-01 09:00", "5d working");
        assert!(!inside.estimated);
        let crossing = add("2026-12-30 09:00", "5d working");
        assert!(crossing.estimated, "2027 has no schedule loaded");
        // 31 Dec, then 2027: Fri 1 Jan, Mon 4, Tue 5, Wed 6 (weekdays; no holiday known).
        assert_eq!(crossing.at, at("2027-01-06 09:00"));
    }

    #[test]
    fn elapsed_working_time() {
        let c = calendar();
        assert_eq!(c.working_time_between(at("2026-03-03 08:00"), at("2026-03-03 20:00")), Duration::hours(7));
        assert_eq!(
            c.working_time_between(at("2026-02-13 17:00"), at("2026-02-24 09:00")),
            Duration::minutes(60 + 420 + 30)
        );
        assert_eq!(c.working_time_between(at("2026-03-03 20:00"), at("2026-03-03 08:00")), Duration::zero());
    }

    /// Adding working time and then measuring it gives back what was added, from any start.
    #[test]
    fn adding_then_measuring_round_trips() {
        let c = calendar();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let base = at("2025-01-01 00:00");
        for _ in 0..2000 {
            let start = base + Duration::minutes((next() % (2 * 365 * 24 * 60)) as i64);
            let amount = Duration::minutes(1 + (next() % (40 * 7 * 60)) as i64);
            let deadline = c.add(start, SlaDuration::WorkingTime(amount)).at;
            assert_eq!(c.working_time_between(start, deadline), amount, "from {start} adding {amount}");
            assert!(deadline > start);
        }
    }

    #[test]
    fn rejects_a_schedule_with_dates_of_another_year() {
        let json = r#"{"year": 2027, "days": [{"name": "元旦", "date": "2026-01-01", "isOffDay": true}]}"#;
        assert!(YearSchedule::parse(json).is_err());
        assert!(YearSchedule::parse("{}").is_err());
    }
}

#[cfg(test)]
mod cross_check {
    use super::*;

    /// The shipped schedules agree, day by day, with an independent table of the State
    /// Council notices (the `chinese_holiday` crate, which covers 2004 to 2026-12-25).
    #[test]
    fn shipped_schedules_match_an_independent_table() {
        let mut calendar = BusinessCalendar::china_default();
        for json in [include_str!("../../config/holidays/2025.json"), include_str!("../../config/holidays/2026.json")] {
            calendar.load(&YearSchedule::parse(json).expect("schedule parses"));
        }
        let mut date = NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
        let last = NaiveDate::from_ymd_opt(2026, 12, 25).expect("date");
        while date <= last {
            let ymd = chinese_holiday::Ymd::new(date.year() as u16, date.month() as u8, date.day() as u8);
            assert_eq!(calendar.is_working_day(date), chinese_holiday::chinese_holiday(ymd).is_workday(), "{date}");
            date = date.succ_opt().expect("next day");
        }
    }
}
