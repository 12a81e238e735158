//! The build log on standard error: `text`, `color` or `json`, with or without times.

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
