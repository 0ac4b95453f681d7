//! GeoReport's XML: a small writer over the JSON shape of each answer, so both formats say
//! the same thing. Well-formed UTF-8; Chinese text stays as characters; the five markup
//! characters are escaped and characters XML 1.0 cannot carry are dropped.

use serde_json::Value;

pub const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// `<root><item>…</item>…</root>` for a JSON array of objects.
pub fn list(root: &str, item: &str, items: &Value) -> String {
    let mut out = String::from(DECLARATION);
    open(&mut out, root);
    for value in items.as_array().into_iter().flatten() {
        element(&mut out, item, value);
    }
    close(&mut out, root);
    out
}

/// `<root>…</root>` for one JSON object.
pub fn document(root: &str, value: &Value) -> String {
    let mut out = String::from(DECLARATION);
    element(&mut out, root, value);
    out
}

fn open(out: &mut String, tag: &str) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
}

fn close(out: &mut String, tag: &str) {
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

/// One element. An object's fields become children, an array's items children named in the
/// singular (`attributes` → `attribute`), `null` an empty element.
fn element(out: &mut String, tag: &str, value: &Value) {
    match value {
        Value::Null => {
            out.push('<');
            out.push_str(tag);
            out.push_str("/>");
        }
        Value::Object(fields) => {
            open(out, tag);
            for (name, field) in fields {
                element(out, name, field);
            }
            close(out, tag);
        }
        Value::Array(items) => {
            open(out, tag);
            let singular = tag.strip_suffix('s').unwrap_or(tag);
            for item in items {
                element(out, singular, item);
            }
            close(out, tag);
        }
        Value::String(text) => {
            open(out, tag);
            escape_into(out, text);
            close(out, tag);
        }
        Value::Bool(_) | Value::Number(_) => {
            open(out, tag);
            out.push_str(&value.to_string());
            close(out, tag);
        }
    }
}

/// Escapes text for element content and attribute values alike.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if allowed(c) => out.push(c),
            // Not a character an XML 1.0 document may hold, even escaped.
            _ => {}
        }
    }
}

/// XML 1.0's `Char` production (surrogates cannot occur in a Rust string).
fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn markup_is_escaped_and_chinese_stays_as_characters() {
        let xml = list("services", "service", &json!([{"service_name": "市容环境 <&> \"'", "metadata": false}]));
        assert_eq!(
            xml,
            format!(
                "{DECLARATION}<services><service><metadata>false</metadata><service_name>市容环境 &lt;&amp;&gt; &quot;&apos;</service_name></service></services>"
            )
        );
    }

    #[test]
    fn characters_xml_cannot_hold_are_dropped() {
        let mut out = String::new();
        escape_into(&mut out, "a\u{0}b\u{1b}c\u{FFFE}d\te");
        assert_eq!(out, "abcd\te");
    }

    #[test]
    fn nulls_are_empty_and_arrays_singular() {
        let xml =
            document("service_definition", &json!({"service_code": "x", "attributes": [{"code": "a"}], "n": null}));
        assert!(xml.ends_with(
            "<service_definition><attributes><attribute><code>a</code></attribute></attributes><n/><service_code>x</service_code></service_definition>"
        ), "{xml}");
    }
}
