//! Field validation that collects every problem at once, so a client fixes a form in one go,
//! and the catalogue of messages a client is shown, each said in Chinese and in English.

use std::{borrow::Cow, collections::BTreeMap, fmt};

/// The language a message is said in: Chinese unless the client asks for English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

/// What JSON type a field should have held, as a client's user would call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Number,
    Integer,
    Text,
    Boolean,
    List,
    Object,
    Id,
    Time,
}

impl Expected {
    fn said(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Expected::Number, Lang::Zh) => "数字",
            (Expected::Number, Lang::En) => "a number",
            (Expected::Integer, Lang::Zh) => "整数",
            (Expected::Integer, Lang::En) => "a whole number",
            (Expected::Text, Lang::Zh) => "文本",
            (Expected::Text, Lang::En) => "a text",
            (Expected::Boolean, Lang::Zh) => "true 或 false",
            (Expected::Boolean, Lang::En) => "true or false",
            (Expected::List, Lang::Zh) => "数组（列表）",
            (Expected::List, Lang::En) => "a list",
            (Expected::Object, Lang::Zh) => "对象",
            (Expected::Object, Lang::En) => "an object",
            (Expected::Id, Lang::Zh) => "编号（UUID）",
            (Expected::Id, Lang::En) => "an id (UUID)",
            (Expected::Time, Lang::Zh) => "带时区的时间，如 2026-11-27T09:00:00+08:00",
            (Expected::Time, Lang::En) => "a time with offset, like 2026-11-27T09:00:00+08:00",
        }
    }
}

/// One message for a client: a catalogue entry (with its parameters) said in either language.
/// Messages are predicates about a field ("不能为空" / "must not be empty"); the field's name
/// is the key they are filed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Required,
    Empty,
    TooLong {
        max: usize,
    },
    ControlCharacters,
    Code,
    Email,
    /// The JSON value has the wrong type.
    Expected(Expected),
    /// One of a fixed set of words.
    OneOf(Vec<String>),
    UnknownField,
    /// Well-formed JSON of the right type whose value is not acceptable (an impossible date…).
    Malformed,
    /// A message of one use site, given in both languages.
    Said {
        zh: Cow<'static, str>,
        en: Cow<'static, str>,
    },
    /// Not translated yet: the English text, shown in every language.
    Untranslated(String),
}

impl Message {
    /// A message given in both languages at its use site.
    pub fn said(zh: impl Into<Cow<'static, str>>, en: impl Into<Cow<'static, str>>) -> Self {
        Self::Said { zh: zh.into(), en: en.into() }
    }

    /// The catalogue key: stable, for clients that carry their own wording.
    pub fn key(&self) -> &'static str {
        match self {
            Message::Required => "required",
            Message::Empty => "empty",
            Message::TooLong { .. } => "too_long",
            Message::ControlCharacters => "control_characters",
            Message::Code => "code",
            Message::Email => "email",
            Message::Expected(_) => "wrong_type",
            Message::OneOf(_) => "one_of",
            Message::UnknownField => "unknown_field",
            Message::Malformed => "malformed",
            Message::Said { .. } | Message::Untranslated(_) => "invalid",
        }
    }

    pub fn text(&self, lang: Lang) -> String {
        let zh = lang == Lang::Zh;
        match self {
            Message::Required => if zh { "必填" } else { "is required" }.into(),
            Message::Empty => if zh { "不能为空" } else { "must not be empty" }.into(),
            Message::TooLong { max } => {
                if zh {
                    format!("最多 {max} 个字")
                } else {
                    format!("must be at most {max} characters")
                }
            }
            Message::ControlCharacters => {
                if zh { "不能含控制字符" } else { "must not contain control characters" }.into()
            }
            Message::Code => if zh {
                "应为 1–32 个字母、数字、“-”或“_”"
            } else {
                "must be 1–32 letters, digits, '-' or '_'"
            }
            .into(),
            Message::Email => if zh {
                "应为电子邮件地址，如 office@example.gov.cn"
            } else {
                "must be an e-mail address like office@example.gov.cn"
            }
            .into(),
            Message::Expected(kind) => {
                if zh {
                    format!("应为{}", kind.said(lang))
                } else {
                    format!("must be {}", kind.said(lang))
                }
            }
            Message::OneOf(words) => {
                if zh {
                    format!("应为以下之一：{}", words.join("、"))
                } else {
                    format!("must be one of {}", words.join(", "))
                }
            }
            Message::UnknownField => if zh { "不是本接口的字段" } else { "is not a field of this request" }.into(),
            Message::Malformed => if zh { "格式不正确" } else { "is not in a valid form" }.into(),
            Message::Said { zh: text_zh, en } => if zh { text_zh } else { en }.to_string(),
            Message::Untranslated(text) => text.clone(),
        }
    }
}

/// For logs and `Display` of errors: the English text.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text(Lang::En))
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::Untranslated(text.to_owned())
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::Untranslated(text)
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub BTreeMap<String, Message>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: &str, message: impl Into<Message>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: &str, message: impl Into<Message>) {
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
            self.add(field, Message::Empty);
        } else if trimmed.chars().count() > max {
            self.add(field, Message::TooLong { max });
        } else if trimmed.chars().any(char::is_control) {
            self.add(field, Message::ControlCharacters);
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
            self.add(field, Message::Code);
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
            self.add(field, Message::Email);
        }
        email.to_owned()
    }

    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// Zero-width and formatting characters, line and paragraph separators, direction changes,
/// the byte-order mark and the soft hyphen: they make two texts that look the same differ, or
/// show something other than what is there. Refused outright where a text must be exactly
/// what it shows (passwords, file names).
pub fn is_invisible_or_directional(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{00AD}')
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

    #[test]
    fn every_catalogue_message_is_said_in_both_languages() {
        let messages = [
            Message::Required,
            Message::Empty,
            Message::TooLong { max: 5 },
            Message::ControlCharacters,
            Message::Code,
            Message::Email,
            Message::Expected(Expected::Number),
            Message::OneOf(vec!["normal".into(), "urgent".into()]),
            Message::UnknownField,
            Message::Malformed,
            Message::said("中文", "English"),
        ];
        for message in messages {
            let (zh, en) = (message.text(Lang::Zh), message.text(Lang::En));
            let chinese = |text: &str| text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
            assert!(chinese(&zh), "{zh}");
            assert!(!chinese(&en), "{en}");
        }
        assert_eq!(Message::Expected(Expected::Number).text(Lang::Zh), "应为数字");
    }
}
