//! The build log on standard error: `text`, `color` or `json`, with or without times, and
//! the error line that ends a failed run.

use tracing_subscriber::EnvFilter;

/// The log settings from `--verbosity`, `--log-format` and `--log-timestamp`.
#[derive(Debug, Clone)]
pub(crate) struct LogSettings {
    /// Kaniko's level name.
    pub(crate) verbosity: String,
    /// `text`, `color` or `json`.
    pub(crate) format: String,
    /// Whether lines start with their time.
    pub(crate) timestamp: bool,
}

impl LogSettings {
    /// Tells whether errors are logged as JSON objects.
    pub(crate) fn is_json(&self) -> bool {
        self.format == "json"
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the level per module.
pub(crate) fn init(settings: &LogSettings) {
    let level = match settings.verbosity.as_str() {
        "fatal" | "panic" => "error",
        other => other,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match (settings.format.as_str(), settings.timestamp) {
        ("json", true) => builder.json().flatten_event(true).init(),
        ("json", false) => builder.json().flatten_event(true).without_time().init(),
        (format, true) => builder.with_ansi(format == "color").init(),
        (format, false) => builder.with_ansi(format == "color").without_time().init(),
    }
}

/// Prints the error and its causes on one line.
pub(crate) fn report(log: &LogSettings, error: &anyhow::Error) {
    let message = error_line(error);
    if log.is_json() {
        tracing::error!(error = %message, "hoist failed");
    } else {
        eprintln!("hoist: error: {message}");
    }
}

/// Joins the error and its causes on one line, each once and escaped.
fn error_line(error: &anyhow::Error) -> String {
    hoist_registry::cli::error_line(error.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let error = anyhow::anyhow!("registry said \x1b]0;title\x07\nnext line");
        assert_eq!(
            error_line(&error),
            "registry said \\u{1b}]0;title\\u{7} next line"
        );
    }

    /// An error whose message repeats its source's text, as some dependencies write them.
    #[derive(Debug)]
    struct Repeating {
        source: std::io::Error,
    }

    impl std::fmt::Display for Repeating {
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(formatter, "push failed: {}", self.source)
        }
    }

    impl std::error::Error for Repeating {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn error_line_joins_causes() {
        let error = anyhow::Error::new(std::io::Error::other("disk on fire"))
            .context("failed to write /out/digest");
        assert_eq!(
            error_line(&error),
            "failed to write /out/digest: disk on fire"
        );
    }

    #[test]
    fn error_line_skips_repeated_cause() {
        let error = anyhow::Error::new(Repeating {
            source: std::io::Error::other("connection refused"),
        })
        .context("cannot push to 127.0.0.1:5000/app");
        assert_eq!(
            error_line(&error),
            "cannot push to 127.0.0.1:5000/app: push failed: connection refused"
        );
    }

    #[test]
    fn error_line_keeps_one_line() {
        let error = anyhow::anyhow!("first\nsecond").context("outer");
        assert_eq!(error_line(&error), "outer: first second");
    }
}
