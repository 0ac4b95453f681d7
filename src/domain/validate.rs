//! Field validation that collects every problem at once, so a client fixes a form in one go.

use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub BTreeMap<String, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_owned()).or_insert_with(|| message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A trimmed, non-empty text of at most `max` characters without control characters;
    /// bidirectional overrides are dropped (see [`strip_bidi_overrides`]).
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> String {
        let cleaned = strip_bidi_overrides(value);
        let trimmed = cleaned.trim();
        if trimmed.is_empty() {
            self.add(field, "must not be empty");
        } else if trimmed.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if trimmed.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
        }
        trimmed.to_owned()
    }

    /// A code: 1–32 of ASCII letters, digits, `-` and `_`.
    pub fn code(&mut self, field: &str, value: &str) -> String {
        let code = value.trim();
        let valid = !code.is_empty()
            && code.len() <= 32
            && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            self.add(field, "must be 1–32 letters, digits, '-' or '_'");
        }
        code.to_owned()
    }

    /// A plausible single mailbox address (the mailer does the real check when it sends).
    pub fn email(&mut self, field: &str, value: &str) -> String {
        let email = value.trim();
        let plausible = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ';')
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            });
        if !plausible {
            self.add(field, "must be an e-mail address like office@example.gov.cn");
        }
        email.to_owned()
    }

    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// Drops the bidirectional embedding, override and isolate controls (U+202A–U+202E,
/// U+2066–U+2069): they make text display differently from what it says (`楼道\u{202E}...`
/// shows reversed), which is a spoofing tool in names, titles and file names.
pub fn strip_bidi_overrides(value: &str) -> String {
    value.chars().filter(|c| !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bidirectional_overrides_are_dropped() {
        assert_eq!(super::strip_bidi_overrides("a\u{202E}b\u{2066}c\u{2069}d\u{202A}"), "abcd");
        assert_eq!(super::strip_bidi_overrides("普通文字"), "普通文字");
    }

    use super::*;

    #[test]
    fn collects_every_error() {
        let mut errors = FieldErrors::new();
        errors.text("name", "  ", 10);
        errors.code("code", "has space");
        errors.email("email", "nobody");
        errors.text("title", "fine", 10);
        assert_eq!(errors.0.keys().collect::<Vec<_>>(), ["code", "email", "name"]);
    }

    #[test]
    fn accepts_good_values() {
        let mut errors = FieldErrors::new();
        assert_eq!(errors.text("name", " 民政局 ", 10), "民政局");
        assert_eq!(errors.code("code", "140902-001"), "140902-001");
        assert_eq!(errors.email("email", "mzj@xinzhou.gov.cn"), "mzj@xinzhou.gov.cn");
        assert!(errors.is_empty());
        errors.text("name", &"长".repeat(11), 10);
        assert!(!errors.is_empty());
    }
}
