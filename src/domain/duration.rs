//! Durations as operators write them: `"15s"`, `"30m"`, `"12h"`, `"7d"`.

use std::time::Duration;

/// The longest duration anyone may write, whatever it measures: a year (leap or not). It keeps
/// every deadline computed from one a short, bounded calculation.
pub const MAX_DAYS: u64 = 366;

/// Parses `<whole number><unit>` with unit `s`, `m`, `h` or `d`, at most [`MAX_DAYS`] long.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration like \"30m\" or \"12h\""))?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => return Err(format!("`{text}` has no unit: use s, m, h or d")),
    };
    match seconds {
        Some(seconds) if seconds <= MAX_DAYS * 86_400 => Ok(Duration::from_secs(seconds)),
        _ => Err(format!("`{text}` is too long: at most {MAX_DAYS} days")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration(" 7d "), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn a_year_is_the_longest() {
        assert_eq!(parse_duration("366d"), Ok(Duration::from_secs(366 * 86_400)));
        assert_eq!(parse_duration("8784h"), Ok(Duration::from_secs(366 * 86_400)));
        assert_eq!(parse_duration("31622400s"), Ok(Duration::from_secs(366 * 86_400)));
        for long in ["367d", "8785h", "527041m", "31622401s"] {
            assert!(parse_duration(long).is_err(), "{long:?} should be rejected");
        }
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["", "h", "12", "12x", "-5m", "1.5h", "99999999999999999999d", "99999999999d", "9999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
