//! Values from a Dockerfile as errors show them. Control and invisible
//! characters are escaped, so that an error printed to a terminal cannot
//! send escape sequences or hide a byte order mark. Values are truncated to
//! [`MAX_SHOWN_CHARS`] characters, so that a 60 KB word cannot fill the
//! message.

use std::fmt;
use std::ops::Deref;

/// Maximum number of characters of a value that an error shows. Longer
/// values end in `...`.
pub const MAX_SHOWN_CHARS: usize = 200;

/// A value from a Dockerfile, kept whole, inside an error.
///
/// `Display` shows it escaped and truncated as [`escape`] does. `Debug` shows it
/// quoted, with Rust's `{:?}` escaping, truncated to the same length. The whole
/// value stays available through [`ErrorValue::as_str`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ErrorValue(String);

impl ErrorValue {
    /// Returns the whole value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the whole value as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ErrorValue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&escape(&self.0))
    }
}

impl fmt::Debug for ErrorValue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (head, was_truncated) = truncate(&self.0);
        write!(formatter, "{head:?}")?;
        if was_truncated {
            formatter.write_str("...")?;
        }
        Ok(())
    }
}

impl Deref for ErrorValue {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for ErrorValue {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for ErrorValue {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<&String> for ErrorValue {
    fn from(value: &String) -> Self {
        Self(value.clone())
    }
}

impl PartialEq<str> for ErrorValue {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ErrorValue {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Returns `value` for an error message without quotes: control and
/// invisible characters escaped as Rust's `{:?}` escapes them (`\u{1b}`,
/// `\u{feff}`, `\n`), quotes and backslashes as they are, and truncated to
/// [`MAX_SHOWN_CHARS`] characters followed by `...`.
pub fn escape(value: &str) -> String {
    let (head, was_truncated) = truncate(value);
    let mut escaped = String::with_capacity(head.len());
    for character in head.chars() {
        match character {
            '"' | '\'' | '\\' => escaped.push(character),
            other => escaped.extend(other.escape_debug()),
        }
    }
    if was_truncated {
        escaped.push_str("...");
    }
    escaped
}

/// Returns the first [`MAX_SHOWN_CHARS`] characters of `value`, and whether
/// characters were left out.
fn truncate(value: &str) -> (&str, bool) {
    match value.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((end, _)) => (&value[..end], true),
        None => (value, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_shows_terminal_escapes() {
        assert_eq!(escape("FOO\u{1b}]0;pwned\u{7}"), "FOO\\u{1b}]0;pwned\\u{7}");
    }

    #[test]
    fn escape_shows_byte_order_mark() {
        assert_eq!(escape("\u{feff}FROM"), "\\u{feff}FROM");
    }

    #[test]
    fn escape_shows_line_breaks_and_bidi_controls() {
        assert_eq!(escape("a\r\nb\u{202e}c"), "a\\r\\nb\\u{202e}c");
    }

    #[test]
    fn escape_keeps_quotes_backslashes_and_letters() {
        assert_eq!(escape(r#"C:\a "b" 'c' é ü"#), r#"C:\a "b" 'c' é ü"#);
    }

    #[test]
    fn escape_truncates_long_values() {
        let shown = escape(&"é".repeat(60_000));

        assert_eq!(shown, format!("{}...", "é".repeat(MAX_SHOWN_CHARS)));
    }

    #[test]
    fn escape_keeps_value_at_limit() {
        let value = "a".repeat(MAX_SHOWN_CHARS);

        assert_eq!(escape(&value), value);
    }

    #[test]
    fn debug_quotes_and_truncates() {
        let value = ErrorValue::from(format!("\u{1b}{}", "x".repeat(300)));

        let shown = format!("{value:?}");

        assert_eq!(shown, format!("\"\\u{{1b}}{}\"...", "x".repeat(199)));
    }

    /// Printable text, or up to 400 characters mixing controls, invisible
    /// characters and letters.
    const MIXED_TEXT: &str = "\\PC*|[\\x00-\\x1f\\x7f-\\u{a0}\\u{feff}\\u{202e}a]{0,400}";

    proptest::proptest! {
        #[test]
        fn escape_output_is_bounded_and_visible(value in MIXED_TEXT) {
            let escaped = escape(&value);

            // Each character escapes to at most `\u{10ffff}`, 10 characters.
            proptest::prop_assert!(escaped.chars().count() <= MAX_SHOWN_CHARS * 10 + 3);
            proptest::prop_assert!(!escaped.chars().any(char::is_control), "{escaped:?}");
            proptest::prop_assert!(!escaped.contains('\u{feff}'), "{escaped:?}");
        }
    }

    #[test]
    fn value_is_kept_whole() {
        let text = "x".repeat(1_000);

        let value = ErrorValue::from(text.as_str());

        assert_eq!(value.as_str(), text);
        assert_eq!(value.into_string(), text);
    }
}
