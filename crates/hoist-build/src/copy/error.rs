//! The failures of `COPY` and `ADD`.

use std::io;
use std::path::PathBuf;

use super::{BadPattern, InvalidChmod};

/// A failure of a `COPY` or an `ADD`.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source is missing, or excluded by `.dockerignore`.
    #[error("source {source_path:?} not found in {origin}")]
    SourceNotFound {
        /// The source as written.
        source_path: String,
        /// The place searched: the build context, a stage or an image.
        origin: String,
    },
    /// A wildcard source matched nothing.
    #[error("no files in {origin} match the pattern {pattern:?}")]
    NoMatch {
        /// The pattern as written.
        pattern: String,
        /// The place searched.
        origin: String,
    },
    /// The `--chown` owner is not in the image.
    #[error("invalid --chown value {value:?}")]
    Chown {
        /// The value as written.
        value: String,
        /// The cause.
        #[source]
        source: crate::user::UserError,
    },
    /// A heredoc delimiter gives no file name, such as `..`.
    #[error("heredoc delimiter {name:?} is not a valid file name")]
    InvalidHeredocName {
        /// The delimiter.
        name: String,
    },
    /// A wildcard source is malformed.
    #[error(transparent)]
    BadPattern(#[from] BadPattern),
    /// `--chmod` is neither an octal nor a symbolic mode.
    #[error(transparent)]
    InvalidChmod(#[from] InvalidChmod),
    /// An `--exclude` pattern is malformed.
    #[error("invalid --exclude pattern: {message}")]
    InvalidExclude {
        /// The parser's message.
        message: String,
    },
    /// Several sources were given for a destination that is not a
    /// directory.
    #[error(
        "several sources need a directory destination: end {destination:?} with / or create it first"
    )]
    DestinationNotDirectory {
        /// The destination as written.
        destination: String,
    },
    /// `COPY` was given a URL, which only `ADD` downloads.
    #[error("COPY cannot download {url:?}: use ADD for URL sources")]
    UrlInCopy {
        /// The URL.
        url: String,
    },
    /// A feature that hoist does not support yet.
    #[error("{feature} is not supported yet")]
    NotSupported {
        /// The feature.
        feature: String,
    },
    /// `--checksum` is not `sha256:` followed by 64 hex digits.
    #[error("invalid --checksum {value:?}: expected sha256: followed by 64 hex digits")]
    InvalidChecksum {
        /// The value as written.
        value: String,
    },
    /// `--checksum` was given for a source that is not a URL.
    #[error("--checksum applies to URL sources only, not to {source_path:?}")]
    ChecksumWithoutUrl {
        /// The source as written.
        source_path: String,
    },
    /// A download's content does not have the `--checksum` digest.
    #[error("checksum mismatch for {url}: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// The URL.
        url: String,
        /// The digest of `--checksum`.
        expected: String,
        /// The digest of the downloaded content.
        actual: String,
    },
    /// A URL source could not be downloaded.
    #[error("failed to download {url}: {message}")]
    Download {
        /// The URL.
        url: String,
        /// The HTTP status or the transport error.
        message: String,
    },
    /// The image of `COPY --from=<image>` could not be resolved or
    /// extracted.
    #[error("failed to use the image {reference:?} of --from")]
    FromImage {
        /// The reference as written.
        reference: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A local archive could not be extracted.
    #[error("failed to extract the archive {path}")]
    Extract {
        /// The archive's path in its source directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: hoist_snapshot::ApplyError,
    },
    /// Reading a source or writing the root failed.
    #[error("failed to copy {path}")]
    Io {
        /// The path involved, inside the source directory or the root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}
