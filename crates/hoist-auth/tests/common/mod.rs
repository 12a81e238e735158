//! Helpers shared by the integration tests: log capture and secret-leak assertions.

#![allow(dead_code, unreachable_pub)]

use std::io;
use std::sync::{Arc, Mutex};

/// A `tracing` writer that appends to a shared buffer.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with a `tracing` subscriber that records every event at every level on this
/// thread, and returns `f`'s result with the log text.
pub fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    let buffer = SharedBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let logs = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    (result, logs)
}

/// Lists the forms in which a secret could leak: as is, escaped by `Debug`, and escaped as
/// a JSON string.
fn leak_forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap();
    let json = json.trim_matches('"').to_owned();
    let mut forms = vec![secret.to_owned(), secret.escape_debug().to_string(), json];
    forms.sort();
    forms.dedup();
    forms
}

/// Asserts that `secret` appears in none of `texts` (error messages, `Debug` output, log
/// lines), in any of the forms of [`leak_forms`]. `what` names the texts in the failure.
pub fn assert_no_secret(secret: &str, what: &str, texts: &[&str]) {
    assert!(!secret.is_empty(), "an empty secret cannot be searched for");
    for form in leak_forms(secret) {
        for text in texts {
            assert!(
                !text.contains(&form),
                "{what} contains the secret {form:?}:\n{text}"
            );
        }
    }
}

/// Asserts that an error's message, its source chain and its `Debug` output do not contain
/// `secret`.
pub fn assert_error_has_no_secret(secret: &str, err: &(dyn std::error::Error + 'static)) {
    let mut texts = vec![err.to_string(), format!("{err:?}")];
    let mut source = err.source();
    while let Some(cause) = source {
        texts.push(cause.to_string());
        source = cause.source();
    }
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_no_secret(secret, "error", &texts);
}

/// Returns an error's message and those of its causes joined with `: `, as the binaries
/// print them.
pub fn message_with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Asserts that `text` contains `needle`, showing the text when it does not.
pub fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}
