//! Password policy and hashing (argon2id).

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 128;

/// Passwords that lead every leaked-password list, compared case-insensitively. Only ones of
/// `MIN_LENGTH` or more matter; shorter ones are refused for their length already.
const COMMON: &[&str] = &[
    "0000000000",
    "0123456789",
    "1111111111",
    "1122334455",
    "1234512345",
    "1234554321",
    "1234567890",
    "123456789a",
    "123456789q",
    "1234567890a",
    "123456abcd",
    "123123123123",
    "123qweasdzxc",
    "12345qwert",
    "1314520520",
    "147258369a",
    "1q2w3e4r5t",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "1qazxsw23edc",
    "5201314520",
    "a123456789",
    "a1234567890",
    "a1b2c3d4e5",
    "aa123456789",
    "aaaaaaaaaa",
    "abc1234567",
    "abc123456789",
    "abcd123456",
    "abcd1234567",
    "abcdefghij",
    "admin123456",
    "admin12345",
    "administrator",
    "asdf123456",
    "asdfghjkl1",
    "asdfghjkl123",
    "asdfghjkl;",
    "asdfasdfasdf",
    "azertyuiop",
    "baseball12",
    "changeme12",
    "changeme123",
    "computer12",
    "dragon1234",
    "football12",
    "football123",
    "iloveyou12",
    "iloveyou123",
    "letmein123",
    "letmein1234",
    "liverpool1",
    "login12345",
    "master1234",
    "monkey1234",
    "p@ssw0rd12",
    "p@ssw0rd123",
    "p@ssword123",
    "passw0rd12",
    "passw0rd123",
    "password00",
    "password01",
    "password1!",
    "password11",
    "password12",
    "password123",
    "password1234",
    "password12345",
    "password123!",
    "password@123",
    "passwordpassword",
    "princess12",
    "q1w2e3r4t5",
    "q1w2e3r4t5y6",
    "qazwsxedcrfv",
    "qq123456789",
    "qwe1234567",
    "qwe123qwe123",
    "qweasdzxc123",
    "qwer123456",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "qwertyuiop",
    "qwertyuiop123",
    "qwertyuiop[]",
    "sunshine12",
    "superman12",
    "trustno123",
    "welcome123",
    "welcome1234",
    "whatever12",
    "woaini1314",
    "woaini520520",
    "woaiwojia123",
    "zaq12wsxcde",
    "zxcvbnm123",
    "zxcvbnm1234",
    "zxcvbnmasdf",
    "1qaz2wsx1qaz",
    "qwertyqwerty",
    "iloveyou1314",
    "abcabcabcabc",
    "password2025",
    "password2026",
];

/// What a password is checked against besides its own shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Forbidden<'a> {
    /// The product's published demo password: refused for every account except the demo
    /// accounts the demo seed creates.
    pub demo_password: Option<&'a str>,
}

use super::validate::Message;

/// Why a password is refused, phrased for the person choosing it, in Chinese and English.
pub fn policy_violation(username: &str, password: &str, forbidden: Forbidden<'_>) -> Option<Message> {
    let length = password.chars().count();
    if password.chars().any(char::is_control) {
        return Some(Message::said(
            "不能含控制字符（NUL、制表符、换行等）",
            "must not contain control characters (NUL, tab, line breaks and the like)",
        ));
    }
    if password.chars().any(super::validate::is_invisible_or_directional) {
        return Some(Message::said(
            "不能含不可见或改变文字方向的字符（零宽字符、BOM、U+2028 等）",
            "must not contain invisible or direction-changing characters (zero-width, BOM, U+2028…)",
        ));
    }

    if length < MIN_LENGTH {
        return Some(Message::said(
            format!("至少 {MIN_LENGTH} 个字符"),
            format!("must be at least {MIN_LENGTH} characters"),
        ));
    }
    if length > MAX_LENGTH {
        return Some(Message::said(
            format!("最多 {MAX_LENGTH} 个字符"),
            format!("must be at most {MAX_LENGTH} characters"),
        ));
    }
    if password.chars().all(char::is_whitespace) {
        return Some(Message::said("不能全是空格", "must not be only spaces"));
    }
    if password.trim() != password {
        return Some(Message::said("首尾不能是空格", "must not begin or end with a space"));
    }
    let lower = password.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    if chars.windows(2).all(|pair| pair[0] == pair[1]) {
        return Some(Message::said("不能是同一个字符的重复", "must not be one character repeated"));
    }
    if is_run(&chars, 1) || is_run(&chars, -1) {
        return Some(Message::said(
            "不能是 1234567890、abcdefghij 这样的连续字符",
            "must not be a run of consecutive characters such as 1234567890 or abcdefghij",
        ));
    }
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT {
        return Some(Message::said(
            format!("至少要用 {MIN_DISTINCT} 个不同的字符（不要像 a1a1a1a1a1）"),
            format!("must use at least {MIN_DISTINCT} different characters (not like a1a1a1a1a1)"),
        ));
    }
    if is_two_runs(&chars) || is_keyboard_walk(&lower) {
        return Some(Message::said(
            "不能由 12345abcde、zxcvbnmasd 这样的键盘或字母顺序组成",
            "must not be made of keyboard or alphabet sequences such as 12345abcde or zxcvbnmasd",
        ));
    }
    if lower == username.to_lowercase() {
        return Some(Message::said("不能与用户名相同", "must not equal the user name"));
    }
    if forbidden.demo_password.is_some_and(|demo| lower == demo.to_lowercase()) {
        return Some(Message::said(
            "不能使用随产品公开的演示密码",
            "must not be the demo password, which is published with the product",
        ));
    }
    if COMMON.iter().any(|common| lower == *common) {
        return Some(Message::said(
            "是最常见的密码之一，极易被猜中，请换一个",
            "is one of the most common passwords and would be guessed first: choose another",
        ));
    }
    None
}

/// Fewer different characters than this is a pattern, not a password (`a1a1a1a1a1`).
const MIN_DISTINCT: usize = 5;

/// Two consecutive runs, each ascending or descending (`12345abcde`, `abcde54321`).
fn is_two_runs(chars: &[char]) -> bool {
    (3..chars.len().saturating_sub(2)).any(|cut| {
        let (a, b) = chars.split_at(cut);
        (is_run(a, 1) || is_run(a, -1)) && (is_run(b, 1) || is_run(b, -1))
    })
}

/// Every character follows its neighbour on a keyboard row (`qwertyuiop`, `zxcvbnmasd`
/// walks along `zxcvbnm` then `asd`): at most two walks, each along one row.
fn is_keyboard_walk(lower: &str) -> bool {
    const ROWS: [&str; 4] = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"];
    let chars: Vec<char> = lower.chars().collect();
    let neighbours = |a: char, b: char| {
        ROWS.iter().any(|row| {
            let row: Vec<char> = row.chars().collect();
            row.windows(2).any(|w| (w[0] == a && w[1] == b) || (w[1] == a && w[0] == b))
        })
    };
    let breaks = chars.windows(2).filter(|w| !neighbours(w[0], w[1])).count();
    breaks <= 1
}

/// The whole password steps by `step` from one character to the next (…8, 9, 0 continues an
/// ascending run of digits the way the keyboard row does, 0, 9, 8… a descending one).
fn is_run(chars: &[char], step: i64) -> bool {
    chars.windows(2).all(|pair| {
        let (a, b) = (pair[0], pair[1]);
        let wraps = if step > 0 { a == '9' && b == '0' } else { a == '0' && b == '9' };
        i64::from(u32::from(b)) - i64::from(u32::from(a)) == step || wraps
    })
}

pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// False for a wrong password and for a stored hash that does not parse.
pub fn verify(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that a wrong user name takes
/// as long as a wrong password and does not reveal which accounts exist.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password never matches").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_padding_and_invisible_characters_are_refused() {
        for weak in [
            " password12",
            "password12 ",
            "\u{feff}password12",
            "gridwhistle-demo ",
            "1234567890\u{200b}",
            "\u{202e}abcdefghijk",
            "\u{2028}abcdefghij",
            "1111111111a",
            "a1a1a1a1a1",
            "12345abcde",
            "zxcvbnmasd",
            "qwertyuiop",
        ] {
            assert!(policy_violation("someone", weak, Forbidden::default()).is_some(), "{weak:?} should be refused");
        }
        for fine in ["correct horse battery", "忻州市城管局2026值班", "a long test password", "Tr0ub4dor&3xyz"]
        {
            assert_eq!(policy_violation("someone", fine, Forbidden::default()), None, "{fine:?}");
        }
    }

    #[test]
    fn hash_round_trips_and_rejects_wrong_password() {
        let stored = hash("correct horse battery").expect("hash");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterz", &stored));
        assert!(!verify("anything", "not a hash"));
    }

    fn check(password: &str) -> Option<String> {
        policy_violation("alice", password, Forbidden { demo_password: Some("gridwhistle-demo") })
            .map(|m| m.text(crate::domain::validate::Lang::En))
    }

    #[test]
    fn policy() {
        assert!(check("short").is_some());
        assert!(policy_violation("alice-admin1", "ALICE-ADMIN1", Forbidden::default()).is_some());
        assert!(check(&"x".repeat(129)).is_some());
        assert_eq!(check("a long enough phrase"), None);
    }

    #[test]
    fn refuses_what_the_issue_found_accepted() {
        for weak in ["          ", "1234567890", "password12", "PassWord12", "gridwhistle-demo", "GridWhistle-Demo"] {
            assert!(check(weak).is_some(), "{weak:?} should be refused");
        }
        assert!(check("a long\0enough phrase").is_some_and(|m| m.contains("control")));
        assert!(check("a long\tenough phrase").is_some());
        assert!(check("a long\u{7f}enough phrase").is_some());
    }

    #[test]
    fn refuses_repeats_and_runs_in_either_direction() {
        for weak in
            ["aaaaaaaaaaaa", "ZZZZZZZZZZ", "abcdefghijkl", "ZYXWVUTSRQ", "0987654321", "9876543210", "3456789012"]
        {
            assert!(check(weak).is_some(), "{weak:?} should be refused");
        }
        // A run or a repeat with one character stuck on is still a pattern.
        for weak in ["1234567890x", "aaaaaaaaab"] {
            assert!(check(weak).is_some(), "{weak:?} should be refused");
        }
        // A run that is only part of a longer password is fine.
        for fine in ["abcdefghij! 城管局值班", "1234 river stones"] {
            assert_eq!(check(fine), None, "{fine:?}");
        }
    }

    #[test]
    fn demo_password_is_refused_only_when_forbidden() {
        assert_eq!(policy_violation("demo-admin", "gridwhistle-demo", Forbidden::default()), None);
        assert!(check("gridwhistle-demo").is_some_and(|m| m.contains("demo")));
    }

    #[test]
    fn common_list_is_lower_case_and_long_enough_to_matter() {
        for common in COMMON {
            assert_eq!(*common, common.to_lowercase(), "{common}");
            assert!(common.chars().count() >= MIN_LENGTH, "{common} is refused for its length already");
        }
        assert!(COMMON.len() >= 90);
    }
}
