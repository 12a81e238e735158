//! The errors of reading and writing credential files.
//!
//! No variant contains a password, token or `auth` value: messages name the file, the
//! registry key, the field and the position instead.

use std::io;
use std::path::PathBuf;

use crate::helper::HelperError;

/// A failure to read, interpret or write a credential file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file exists but could not be read.
    #[error("failed to read credential file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },

    /// The file is not valid JSON, or a field has the wrong type. Only the position is kept,
    /// because `serde_json` messages may quote the offending value.
    #[error("invalid JSON in credential file {path} at line {line} column {column}: {reason}")]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the error.
        line: usize,
        /// The 1-based column of the error.
        column: usize,
        /// The kind of error.
        reason: &'static str,
    },

    /// A field that must be a JSON object is something else.
    #[error("`{field}` in credential file {path} is not a JSON object")]
    NotAnObject {
        /// The file.
        path: PathBuf,
        /// The field, such as `auths` or `auths["myreg.example"]`.
        field: String,
    },

    /// The `auth` field of an `auths` entry is not valid base64.
    #[error("invalid base64 in the `auth` field of auths entry \"{key}\" in {path}")]
    InvalidBase64 {
        /// The file.
        path: PathBuf,
        /// The `auths` key.
        key: String,
    },

    /// The `auth` field decodes to something other than `user:password`.
    #[error("the `auth` field of auths entry \"{key}\" in {path} decodes to {reason}")]
    InvalidAuthText {
        /// The file.
        path: PathBuf,
        /// The `auths` key.
        key: String,
        /// The problem with the decoded text.
        reason: &'static str,
    },

    /// A credential helper configured for the registry failed.
    #[error("failed to get credentials for {registry} from {config_field} in {path}")]
    Helper {
        /// The registry looked up.
        registry: String,
        /// The file that names the helper.
        path: PathBuf,
        /// `credHelpers` or `credsStore`.
        config_field: &'static str,
        /// The helper's failure.
        source: HelperError,
    },

    /// The registry name is not one that `docker login` accepts, so it cannot be an `auths`
    /// key. The message shows the name with control characters escaped.
    #[error("invalid registry name {registry:?}: {reason}")]
    InvalidRegistry {
        /// The registry name as given.
        registry: String,
        /// The problem with the value.
        reason: &'static str,
    },

    /// The user name cannot be stored in an `auth` field.
    #[error("invalid user name: {reason}")]
    InvalidUsername {
        /// The problem with the value.
        reason: &'static str,
    },

    /// The password is empty.
    #[error("the password is empty")]
    EmptyPassword,

    /// A step of writing the file failed; the old file, if any, is unchanged.
    #[error("failed to {step} for credential file {path}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The step that failed, such as `rename the temporary file`.
        step: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
}

impl Error {
    /// Builds an [`Error::InvalidJson`] from a `serde_json` error without its message,
    /// which may quote a value from the file.
    pub(crate) fn invalid_json(path: impl Into<PathBuf>, err: &serde_json::Error) -> Self {
        let reason = match err.classify() {
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Eof => "unexpected end of file",
            serde_json::error::Category::Data => "a value has the wrong type",
            serde_json::error::Category::Io => "read error",
        };
        Self::InvalidJson {
            path: path.into(),
            line: err.line(),
            column: err.column(),
            reason,
        }
    }
}
