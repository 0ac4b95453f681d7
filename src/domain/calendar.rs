//! Working-time arithmetic over the business calendar: working hours, weekends, statutory
//! holidays and 调休 make-up workdays (a Saturday that is a working day).
//!
//! All arithmetic happens in the city's local time (a fixed offset: China has no daylight
//! saving); instants go in and come out as UTC.
//!
//! Every calculation is bounded: durations are at most a year ([`super::duration::MAX_DAYS`]),
//! the instants a client sends lie within [`MAX_YEARS_FROM_TODAY`] of today, no loop scans more
//! than [`MAX_SCAN_DAYS`] days, and date arithmetic is checked — so a request can neither hang
//! a worker nor panic on an overflow.

use std::collections::{BTreeMap, HashMap};

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

/// The text form parses back to the same duration: working *time* is never written in days,
/// because `"1d working"` means one working *day* (the same time of day, a working day later),
/// not 24 working hours.
impl std::fmt::Display for SlaDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn compact(d: Duration, days: bool) -> String {
            let s = d.num_seconds();
            match s {
                _ if days && s % 86_400 == 0 => format!("{}d", s / 86_400),
                _ if s % 3600 == 0 => format!("{}h", s / 3600),
                _ if s % 60 == 0 => format!("{}m", s / 60),
                _ => format!("{s}s"),
            }
        }
        match self {
            Self::Calendar(d) => f.write_str(&compact(*d, true)),
            Self::WorkingTime(d) => write!(f, "{} working", compact(*d, false)),
            Self::WorkingDays(n) => write!(f, "{n}d working"),
        }
    }
}

/// How far from today a client may place a date or an instant, in years either way.
pub const MAX_YEARS_FROM_TODAY: i32 = 100;

/// At most this many days are scanned for one calculation: enough for a year of working time
/// over a calendar with very short working hours, and a hard stop for anything else.
pub const MAX_SCAN_DAYS: u32 = 200 * 366;

/// `date` lies within [`MAX_YEARS_FROM_TODAY`] years of `today`.
pub fn check_date_near(today: NaiveDate, date: NaiveDate) -> Result<(), String> {
    if (date.year() - today.year()).abs() > MAX_YEARS_FROM_TODAY {
        return Err(format!("must be within {MAX_YEARS_FROM_TODAY} years of today"));
    }
    Ok(())
}

/// `at` lies within [`MAX_YEARS_FROM_TODAY`] years of `now`.
pub fn check_instant_near(now: DateTime<Utc>, at: DateTime<Utc>) -> Result<(), String> {
    check_date_near(now.date_naive(), at.date_naive())
}

/// A calculation left the dates the calendar can represent (or scanned too far).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the deadline falls outside the calendar's range")]
pub struct OutOfRange;

/// An instant as a client writes it: RFC 3339 with an offset, or a local time without one
/// (`2026-11-27T09:00:00`, `2026-11-27 09:00`), read in the city's time zone. A `+` of an
/// offset that arrived as a space (an unencoded query string) is read as `+`.
pub fn parse_instant(text: &str, offset: FixedOffset) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Some((local, zone)) = text.rsplit_once(' ')
        && zone.len() == 5
        && zone.contains(':')
        && let Ok(at) = DateTime::parse_from_rfc3339(&format!("{local}+{zone}"))
    {
        return Ok(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            return local
                .and_local_timezone(offset)
                .single()
                .map(|at| at.with_timezone(&Utc))
                .ok_or_else(|| format!("`{text}` is not a valid local time"));
        }
    }
    Err(format!("`{text}` is not a time like 2026-11-27T09:00:00+08:00 or 2026-11-27T09:00:00 (local time)"))
}

/// One year's official schedule in the holiday-cn format: each listed date is either off
/// (a holiday) or a make-up workday; unlisted dates follow the weekday rule. A year's file
/// may list dates of the month on either side of it (2019.json holds 2018-12-29…31, the New
/// Year holiday and its make-up day announced with 2019's schedule); each date belongs to its
/// own year when loaded.
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
        // Name where the schedule is wrong, not how the parser stumbled over it.
        let schedule: YearSchedule = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json))
            .map_err(|e| format!("not a holiday schedule: `{}` is missing or not valid", e.path()))?;
        // The year itself, and the month on either side of it: enough for a New Year holiday
        // announced with the next year, and still refusing a file labelled with the wrong year.
        let reach = schedule
            .year
            .checked_sub(1)
            .and_then(|before| NaiveDate::from_ymd_opt(before, 12, 1))
            .zip(schedule.year.checked_add(1).and_then(|after| NaiveDate::from_ymd_opt(after, 1, 31)));
        let Some((first, last)) = reach else {
            return Err(format!("{} is not a year the calendar can hold", schedule.year));
        };
        if let Some(stray) = schedule.days.iter().find(|d| d.date < first || d.date > last) {
            return Err(format!("{} is neither in {} nor in the month next to it", stray.date, schedule.year));
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
    /// Each loaded schedule's listed days (date → working), by the schedule's year.
    schedules: BTreeMap<i32, HashMap<NaiveDate, bool>>,
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
        Ok(Self { offset, spans, schedules: BTreeMap::new() })
    }

    /// 08:30–12:00 and 14:30–18:00, China Standard Time.
    pub fn china_default() -> Self {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("a valid time of day");
        let offset = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
        Self { offset, spans: vec![(t(8, 30), t(12, 0)), (t(14, 30), t(18, 0))], schedules: BTreeMap::new() }
    }

    /// Adds a year's schedule, replacing what an earlier schedule of that year said.
    pub fn load(&mut self, schedule: &YearSchedule) {
        let days = schedule.days.iter().map(|day| (day.date, !day.is_off_day)).collect();
        self.schedules.insert(schedule.year, days);
    }

    pub fn loaded_years(&self) -> impl Iterator<Item = i32> + '_ {
        self.schedules.keys().copied()
    }

    pub fn offset(&self) -> FixedOffset {
        self.offset
    }

    /// A listed day follows its own year's schedule, else a neighbouring year's listing of it
    /// (the next year's first: that is where holiday-cn puts a New Year holiday's December
    /// days); an unlisted day follows the weekday rule.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        let year = date.year();
        [year, year + 1, year - 1]
            .iter()
            .find_map(|y| self.schedules.get(y).and_then(|days| days.get(&date)).copied())
            .unwrap_or(!matches!(date.weekday(), Weekday::Sat | Weekday::Sun))
    }

    fn knows(&self, date: NaiveDate) -> bool {
        self.schedules.contains_key(&date.year())
    }

    /// `start + duration` in the calendar's terms, or [`OutOfRange`] when the answer would
    /// leave the representable dates or need more than [`MAX_SCAN_DAYS`] days of scanning.
    pub fn try_add(&self, start: DateTime<Utc>, duration: SlaDuration) -> Result<Deadline, OutOfRange> {
        match duration {
            SlaDuration::Calendar(d) => {
                start.checked_add_signed(d).map(|at| Deadline { at, estimated: false }).ok_or(OutOfRange)
            }
            SlaDuration::WorkingTime(d) => self.add_working_time(start, d),
            SlaDuration::WorkingDays(n) => self.add_working_days(start, n),
        }
    }

    /// `start + duration` for the server's own instants and configured or stored durations,
    /// which [`Self::try_add`] always answers (a year at most, from a time near today). Should
    /// it ever fail, the deadline is the last instant of 9999, flagged as estimated: a clock that
    /// never fires is a smaller harm than a panic or a request that never ends.
    pub fn add(&self, start: DateTime<Utc>, duration: SlaDuration) -> Deadline {
        self.try_add(start, duration).unwrap_or_else(|OutOfRange| Deadline { at: far_future(), estimated: true })
    }

    fn add_working_time(&self, start: DateTime<Utc>, amount: Duration) -> Result<Deadline, OutOfRange> {
        let mut now = self.local(start).ok_or(OutOfRange)?;
        let mut left = amount;
        let mut estimated = false;
        for _ in 0..=MAX_SCAN_DAYS {
            let date = now.date();
            estimated |= !self.knows(date);
            if self.is_working_day(date) {
                for &(from, to) in &self.spans {
                    let span_end = date.and_time(to);
                    if now >= span_end {
                        continue;
                    }
                    now = now.max(date.and_time(from));
                    let available = span_end.signed_duration_since(now);
                    if left <= available {
                        let at = now.checked_add_signed(left).ok_or(OutOfRange)?;
                        return Ok(Deadline { at: self.utc(at).ok_or(OutOfRange)?, estimated });
                    }
                    left = left.checked_sub(&available).ok_or(OutOfRange)?;
                    now = span_end;
                }
            }
            now = next_day_start(date)?;
        }
        Err(OutOfRange)
    }

    fn add_working_days(&self, start: DateTime<Utc>, days: u32) -> Result<Deadline, OutOfRange> {
        let (moment, mut estimated) = self.next_working_moment(self.local(start).ok_or(OutOfRange)?)?;
        let mut date = moment.date();
        let mut counted = 0;
        let mut scanned = 0;
        while counted < days {
            if scanned >= MAX_SCAN_DAYS {
                return Err(OutOfRange);
            }
            scanned += 1;
            date = date.succ_opt().ok_or(OutOfRange)?;
            estimated |= !self.knows(date);
            if self.is_working_day(date) {
                counted += 1;
            }
        }
        Ok(Deadline { at: self.utc(date.and_time(moment.time())).ok_or(OutOfRange)?, estimated })
    }

    /// The first instant at or after `t` that lies inside working hours.
    fn next_working_moment(&self, t: NaiveDateTime) -> Result<(NaiveDateTime, bool), OutOfRange> {
        let mut now = t;
        let mut estimated = false;
        for _ in 0..=MAX_SCAN_DAYS {
            let date = now.date();
            estimated |= !self.knows(date);
            if self.is_working_day(date) {
                for &(from, to) in &self.spans {
                    if now < date.and_time(to) {
                        return Ok((now.max(date.and_time(from)), estimated));
                    }
                }
            }
            now = next_day_start(date)?;
        }
        Err(OutOfRange)
    }

    /// Working time inside `[from, to)`; zero when `to` is not after `from`. The loop runs once
    /// per day of the span, which the callers' instants (clock times, near today) keep short.
    pub fn working_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let (Some(from), Some(to)) = (self.local(from), self.local(to)) else {
            // Only instants within hours of the end of time have no local time.
            return Duration::zero();
        };
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

    fn local(&self, t: DateTime<Utc>) -> Option<NaiveDateTime> {
        t.naive_utc().checked_add_signed(Duration::seconds(i64::from(self.offset.local_minus_utc())))
    }

    fn utc(&self, t: NaiveDateTime) -> Option<DateTime<Utc>> {
        // A fixed offset maps every local time to exactly one instant.
        t.checked_sub_signed(Duration::seconds(i64::from(self.offset.local_minus_utc()))).map(|t| t.and_utc())
    }
}

fn next_day_start(date: NaiveDate) -> Result<NaiveDateTime, OutOfRange> {
    Ok(date.succ_opt().ok_or(OutOfRange)?.and_time(NaiveTime::MIN))
}

/// 9999-12-31 23:59:59 UTC: later than any real deadline, and storable in every database.
fn far_future() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_with_and_without_an_offset() {
        let cst = FixedOffset::east_opt(8 * 3600).expect("UTC+8");
        let nine_local = "2026-11-27T01:00:00Z".parse::<DateTime<Utc>>().expect("instant");
        for text in [
            "2026-11-27T09:00:00+08:00",
            "2026-11-27T01:00:00Z",
            "2026-11-27T09:00:00 08:00",
            "2026-11-27T09:00:00",
            "2026-11-27T09:00",
            "2026-11-27 09:00",
        ] {
            assert_eq!(parse_instant(text, cst), Ok(nine_local), "{text}");
        }
        assert!(parse_instant("tomorrow", cst).is_err());
        assert!(parse_instant("2026-13-01T00:00:00", cst).is_err());
    }

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
    fn rejects_a_schedule_with_dates_of_a_distant_year() {
        let with =
            |date: &str| format!(r#"{{"year": 2027, "days": [{{"name": "x", "date": "{date}", "isOffDay": true}}]}}"#);
        for far in ["2025-01-01", "2026-01-01", "2026-11-30", "2028-02-01", "2029-01-01"] {
            assert!(YearSchedule::parse(&with(far)).is_err(), "{far}");
        }
        for near in ["2026-12-01", "2026-12-31", "2027-06-01", "2028-01-01", "2028-01-31"] {
            assert!(YearSchedule::parse(&with(near)).is_ok(), "{near}");
        }
        let json = r#"{"year": -2147483648, "days": [{"name": "x", "date": "2025-01-01", "isOffDay": true}]}"#;
        assert!(YearSchedule::parse(json).is_err());
        assert!(YearSchedule::parse("{}").is_err());
    }

    /// holiday-cn's 2019.json as published (abridged to its first holidays): the New Year
    /// holiday of 2019 began on 30 December 2018, with Saturday 29 December a make-up workday.
    const HOLIDAY_CN_2019: &str = r#"{
        "$schema": "https://raw.githubusercontent.com/NateScarlet/holiday-cn/master/schema.json",
        "$id": "https://raw.githubusercontent.com/NateScarlet/holiday-cn/master/2019.json",
        "year": 2019,
        "papers": ["http://www.gov.cn/zhengce/content/2018-12/06/content_5346276.htm"],
        "days": [
            {"name": "元旦", "date": "2018-12-29", "isOffDay": false},
            {"name": "元旦", "date": "2018-12-30", "isOffDay": true},
            {"name": "元旦", "date": "2018-12-31", "isOffDay": true},
            {"name": "元旦", "date": "2019-01-01", "isOffDay": true},
            {"name": "春节", "date": "2019-02-02", "isOffDay": false},
            {"name": "春节", "date": "2019-02-03", "isOffDay": false},
            {"name": "春节", "date": "2019-02-04", "isOffDay": true},
            {"name": "春节", "date": "2019-02-05", "isOffDay": true},
            {"name": "春节", "date": "2019-02-06", "isOffDay": true},
            {"name": "春节", "date": "2019-02-07", "isOffDay": true},
            {"name": "春节", "date": "2019-02-08", "isOffDay": true},
            {"name": "春节", "date": "2019-02-09", "isOffDay": true},
            {"name": "春节", "date": "2019-02-10", "isOffDay": true}
        ]
    }"#;

    #[test]
    fn a_schedule_may_list_the_neighbouring_years_dates() {
        let schedule = YearSchedule::parse(HOLIDAY_CN_2019).expect("holiday-cn's 2019.json loads");
        let mut c = BusinessCalendar::china_default();
        c.load(&schedule);
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert!(c.is_working_day(date("2018-12-29")), "Saturday 29 Dec 2018: make-up workday");
        assert!(!c.is_working_day(date("2018-12-31")), "Monday 31 Dec 2018: New Year holiday");
        assert!(!c.is_working_day(date("2019-01-01")));
        assert_eq!(c.loaded_years().collect::<Vec<_>>(), [2019], "2018 itself is still unknown");
        // Fri 28 Dec 2018 17:00 + 2 working hours: 1 h that day, the second on Saturday 29th.
        let deadline = c.add(at("2018-12-28 17:00"), SlaDuration::WorkingTime(Duration::hours(2)));
        assert_eq!(deadline.at, at("2018-12-29 09:30"));
        assert!(deadline.estimated, "2018's own schedule is not loaded");

        // A date's own year decides: 2018's schedule (however it is ordered) wins over 2019's
        // listing of its days; reloading 2019 changes nothing.
        let own = r#"{"year": 2018, "days": [{"name": "x", "date": "2018-12-29", "isOffDay": true}]}"#;
        let own = YearSchedule::parse(own).expect("parses");
        for order in [[&own, &schedule], [&schedule, &own]] {
            let mut c = BusinessCalendar::china_default();
            for s in order {
                c.load(s);
            }
            c.load(&schedule);
            assert!(!c.is_working_day(date("2018-12-29")), "2018's own listing wins");
            assert!(!c.is_working_day(date("2018-12-31")), "2019's listing fills in the rest");
        }

        // The independent table agrees with every listed day.
        for day in &schedule.days {
            let d = day.date;
            let ymd = chinese_holiday::Ymd::new(d.year() as u16, d.month() as u8, d.day() as u8);
            assert_eq!(c.is_working_day(d), chinese_holiday::chinese_holiday(ymd).is_workday(), "{d}");
        }
    }

    /// Every duration's text form parses back to the same duration, for every kind, over many
    /// amounts (a deterministic sweep of each unit and of mixed amounts up to a year).
    #[test]
    fn text_form_round_trips_for_every_kind() {
        let year = 366 * 86_400_i64;
        let mut amounts: Vec<i64> = (1..=3 * 86_400).step_by(7).collect();
        amounts.extend((1..=366).map(|d| d * 86_400));
        amounts.extend((1..=366 * 24).map(|h| h * 3600));
        amounts.extend((1..=2000).map(|m| m * 60));
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        amounts.extend((0..20_000).map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            1 + (seed % year as u64) as i64
        }));
        for seconds in amounts {
            let d = Duration::seconds(seconds);
            for duration in [SlaDuration::Calendar(d), SlaDuration::WorkingTime(d)] {
                let text = duration.to_string();
                assert_eq!(SlaDuration::parse(&text), Ok(duration), "{duration:?} printed as {text:?}");
            }
        }
        for n in 1..=366 {
            let text = SlaDuration::WorkingDays(n).to_string();
            assert_eq!(SlaDuration::parse(&text), Ok(SlaDuration::WorkingDays(n)), "{text:?}");
        }
        // The issue's case: 24 working hours stay 24 working hours, not one working day.
        assert_eq!(SlaDuration::WorkingTime(Duration::hours(24)).to_string(), "24h working");
        assert_eq!(SlaDuration::parse("24h working").expect("parses").to_string(), "24h working");
        assert_eq!(
            add("2026-03-03 09:00", &SlaDuration::parse("24h working").expect("p").to_string()).at,
            at("2026-03-06 12:00")
        );
    }

    #[test]
    fn durations_are_at_most_a_year_whatever_the_kind() {
        for ok in ["366d", "8784h", "366d working", "8784h working", "527040m working"] {
            assert!(SlaDuration::parse(ok).is_ok(), "{ok:?}");
        }
        for long in ["367d", "8785h", "367d working", "9999999999h working", "99999999999d", "99999999999d working"] {
            assert!(SlaDuration::parse(long).is_err(), "{long:?}");
        }
    }

    /// The longest durations from the edges of the allowed dates answer at once; arithmetic at
    /// the end of time is refused instead of looping or panicking.
    #[test]
    fn arithmetic_is_bounded_and_checked() {
        let c = calendar();
        let now = at("2026-11-30 09:00");
        for start in [now - Duration::days(100 * 366), now, now + Duration::days(100 * 366)] {
            for text in ["366d", "8784h working", "366d working", "1s working"] {
                let duration = SlaDuration::parse(text).expect("parses");
                let deadline = c.try_add(start, duration).expect("answers");
                assert!(deadline.at > start);
                assert!(deadline.at - start < Duration::days(6 * 366), "{text} from {start}: {}", deadline.at);
            }
        }
        let end = DateTime::<Utc>::MAX_UTC - Duration::hours(1);
        for duration in [
            SlaDuration::Calendar(Duration::days(2)),
            SlaDuration::WorkingTime(Duration::hours(20)),
            SlaDuration::WorkingDays(3),
        ] {
            assert_eq!(c.try_add(end, duration), Err(OutOfRange), "{duration:?}");
            assert!(c.add(end, duration).estimated, "never a panic");
        }
        assert_eq!(c.working_time_between(end, DateTime::<Utc>::MAX_UTC), Duration::zero());

        // A calendar with no working day in reach gives up after a bounded scan.
        let mut closed = BusinessCalendar::china_default();
        for year in 2026..=2300 {
            let days = (1..=366)
                .filter_map(|o| NaiveDate::from_yo_opt(year, o))
                .map(|date| ScheduleDay { name: String::new(), date, is_off_day: true })
                .collect();
            closed.load(&YearSchedule { year, days });
        }
        assert_eq!(closed.try_add(now, SlaDuration::WorkingTime(Duration::hours(1))), Err(OutOfRange));
        assert_eq!(closed.try_add(now, SlaDuration::WorkingDays(1)), Err(OutOfRange));
    }

    #[test]
    fn dates_and_instants_near_today() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 30).expect("date");
        for ok in ["1926-01-01", "2026-11-30", "2126-12-31"] {
            assert!(check_date_near(today, NaiveDate::parse_from_str(ok, "%Y-%m-%d").expect("d")).is_ok(), "{ok}");
        }
        for far in ["1925-12-31", "2127-01-01"] {
            assert!(check_date_near(today, NaiveDate::parse_from_str(far, "%Y-%m-%d").expect("d")).is_err(), "{far}");
        }
        assert!(check_date_near(today, NaiveDate::MAX).is_err());
        assert!(check_date_near(today, NaiveDate::MIN).is_err());
        assert!(check_instant_near(at("2026-11-30 09:00"), DateTime::<Utc>::MAX_UTC).is_err());
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
