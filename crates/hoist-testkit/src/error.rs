//! The error type of the test kit.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong while setting up or using a test component.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program could not be started at all, usually because it is not installed.
    #[error("failed to start {program}: {source} (is it installed? see scripts/install-deps.sh)")]
    Spawn {
        /// The program name.
        program: String,
        /// The error from the operating system.
        source: std::io::Error,
    },

    /// A program ran and exited with a failure status.
    #[error("{command} failed with {status}: {stderr_tail}")]
    CommandFailed {
        /// The command line, without secrets.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its standard error.
        stderr_tail: String,
    },

    /// A file system operation failed.
    #[error("{operation} {path} failed: {source}")]
    Io {
        /// The attempted operation, such as "create directory".
        operation: &'static str,
        /// The path it was attempted on.
        path: PathBuf,
        /// The error from the operating system.
        source: std::io::Error,
    },

    /// The registry process exited before it responded to `GET /v2/`.
    #[error("registry on {url} exited during start-up with {status}; log tail:\n{log_tail}")]
    RegistryExited {
        /// The URL it was meant to serve.
        url: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its log.
        log_tail: String,
    },

    /// The registry process kept running but did not respond to `GET /v2/` with 200 or 401.
    #[error(
        "registry on {url} did not respond to GET /v2/ within {seconds} s; log tail:\n{log_tail}"
    )]
    RegistryNotReady {
        /// The URL it was meant to serve.
        url: String,
        /// How long the start waited.
        seconds: u64,
        /// The last lines of its log.
        log_tail: String,
    },

    /// An HTTP request failed below the HTTP level (connection, TLS, I/O).
    #[error("HTTP request {method} {url} failed: {source}")]
    Http {
        /// The request method.
        method: &'static str,
        /// The request URL.
        url: String,
        /// The error from the HTTP client.
        source: Box<ureq::Error>,
    },

    /// A registry or token server sent a response the kit cannot use.
    #[error("unexpected response from {url}: {reason}")]
    UnexpectedResponse {
        /// The request URL.
        url: String,
        /// The problem with the response.
        reason: String,
    },

    /// The token server could not be set up.
    #[error("token server: {reason}")]
    TokenServer {
        /// What failed.
        reason: String,
    },

    /// A loopback server of the kit could not be started.
    #[error("cannot start the {server} on 127.0.0.1: {reason}")]
    ServerStart {
        /// The server name, such as "release server".
        server: &'static str,
        /// What failed.
        reason: String,
    },

    /// JSON output of a tool or a file in an image layout could not be parsed.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        /// The file or tool output that was parsed.
        what: String,
        /// The parser error.
        source: serde_json::Error,
    },

    /// A caller passed options that cannot work together.
    #[error("invalid test setup: {0}")]
    InvalidSetup(String),
}

/// The result type of the test kit.
pub type Result<T> = std::result::Result<T, Error>;

/// Returns a closure that wraps an [`std::io::Error`] into [`Error::Io`].
pub(crate) fn io_error(
    operation: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io {
        operation,
        path,
        source,
    }
}
