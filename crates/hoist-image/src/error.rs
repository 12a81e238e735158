//! Errors of writing outputs and of reading them back.
//!
//! Values that come from the files read, such as archive entry names and tags, are passed
//! through [`printable`] before they go into a message, so that an error printed to a
//! terminal cannot carry escape sequences or raw bytes from a damaged or hostile file.

use std::path::PathBuf;

use crate::image::ImageError;
use crate::manifest::ManifestError;
use crate::media::MediaTypeError;

/// A failure to write an OCI layout or a docker-archive. No output is left behind.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file operation failed.
    #[error("failed to write {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A layer blob could not be read.
    #[error("failed to read layer blob {path}")]
    ReadBlob {
        /// The file that contains the blob.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A layer blob's bytes do not match its descriptor.
    #[error(
        "layer blob {path} has digest {actual} and size {actual_size}, expected {expected} and size {expected_size}"
    )]
    BlobMismatch {
        /// The file that contains the blob.
        path: PathBuf,
        /// The digest in the layer descriptor.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
        /// The size in the layer descriptor.
        expected_size: u64,
        /// The number of bytes read.
        actual_size: u64,
    },
    /// The output path exists and is not an output that hoist may replace.
    #[error("{path} exists and is not an OCI image layout; remove it or choose another path")]
    TargetExists {
        /// The output path.
        path: PathBuf,
    },
    /// A docker-archive tag is not `name[:tag]`.
    #[error("invalid image tag {0:?} for a docker-archive: expected name[:tag] without a digest")]
    InvalidTag(String),
    /// A digest that is not SHA-256, which hoist cannot name inside `blobs/sha256`.
    #[error("unsupported digest {0}: only sha256 is supported")]
    UnsupportedDigest(String),
    /// The image cannot be expressed in the chosen format.
    #[error(transparent)]
    Image(#[from] ImageError),
}

/// A failure to read an OCI layout or a docker-archive back into an image.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A file operation failed.
    #[error("failed to read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON document is malformed.
    #[error("invalid JSON in {path}")]
    Json {
        /// The file, or `ARCHIVE:ENTRY` inside a docker-archive.
        path: PathBuf,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
    /// A manifest or index cannot be used.
    #[error("unusable manifest or index {path}")]
    Manifest {
        /// The file, or `ARCHIVE:ENTRY` inside a docker-archive.
        path: PathBuf,
        /// The reason.
        source: ManifestError,
    },
    /// A descriptor's media type cannot be read.
    #[error("unusable layer media type in {path}")]
    MediaType {
        /// The manifest that contains the descriptor.
        path: PathBuf,
        /// The reason.
        source: MediaTypeError,
    },
    /// A blob that a descriptor or `manifest.json` names is missing.
    #[error("missing blob {path}")]
    MissingBlob {
        /// The expected blob path, or `ARCHIVE:ENTRY` inside a docker-archive.
        path: PathBuf,
    },
    /// A blob path is a symbolic link, a directory or another non-regular file.
    #[error("{path} is not a regular file")]
    NotRegularFile {
        /// The path.
        path: PathBuf,
    },
    /// A blob's size differs from its descriptor.
    #[error("blob {path} has size {actual}, expected {expected}")]
    SizeMismatch {
        /// The blob.
        path: PathBuf,
        /// The size in the descriptor.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A blob's digest differs from its descriptor, its name or the config's diff ID.
    #[error("blob {path} has digest {actual}, expected {expected}")]
    DigestMismatch {
        /// The blob.
        path: PathBuf,
        /// The digest that was expected.
        expected: String,
        /// The digest of the bytes found.
        actual: String,
    },
    /// A digest that is not SHA-256.
    #[error("{path}: unsupported digest {digest}: only sha256 is supported")]
    UnsupportedDigest {
        /// The document that contains the digest.
        path: PathBuf,
        /// The digest.
        digest: String,
    },
    /// A JSON document is larger than hoist reads into memory.
    #[error("{path} is {size} bytes, more than the limit of {limit} bytes for a JSON document")]
    TooLarge {
        /// The document.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// No image of the layout or archive has the requested name.
    #[error("{path} has no image named {reference:?}; it has: {available}")]
    ReferenceNotFound {
        /// The layout directory or archive.
        path: PathBuf,
        /// The requested name.
        reference: String,
        /// The names it has, comma-separated, each passed through [`printable`].
        available: String,
    },
    /// No name was given and the layout or archive does not hold exactly one image.
    #[error("{path} contains {count} images; name the one to read")]
    NotOneImage {
        /// The layout directory or archive.
        path: PathBuf,
        /// The number of images.
        count: usize,
    },
    /// The selected entry of a layout's `index.json` is itself an index.
    #[error("{path}: {digest} is an image index; reading a multi-platform image is not supported")]
    NestedIndex {
        /// The `index.json`.
        path: PathBuf,
        /// The digest of the nested index.
        digest: String,
    },
    /// A docker-archive entry name that is absolute, climbs out with `..`, or resolves
    /// through links outside the archive.
    #[error("{archive}: unsafe entry name {name:?} in {field}")]
    UnsafeName {
        /// The archive.
        archive: PathBuf,
        /// The name.
        name: String,
        /// The source of the name: `manifest.json` or a link target.
        field: &'static str,
    },
    /// A docker-archive is not a tar archive, or its tar headers are damaged.
    #[error("{archive} is not a valid tar archive: {reason}")]
    InvalidArchive {
        /// The archive.
        archive: PathBuf,
        /// The tar reader's error, with control characters escaped by [`printable`].
        reason: String,
    },
    /// A docker-archive has two entries with the same name.
    #[error("{archive}: duplicate entry {name:?}")]
    DuplicateEntry {
        /// The archive.
        archive: PathBuf,
        /// The name.
        name: String,
    },
    /// An OCI layout's `oci-layout` file names a version hoist does not read.
    #[error("{path}: unsupported image layout version {version:?}")]
    UnsupportedLayoutVersion {
        /// The `oci-layout` file.
        path: PathBuf,
        /// The version it names.
        version: String,
    },
    /// The layers do not agree with the config.
    #[error("the layers of {path} do not match its image config")]
    Image {
        /// The manifest or archive.
        path: PathBuf,
        /// The reason.
        source: ImageError,
    },
}

/// Returns `text` with control and invisible characters escaped as Rust's `{:?}` escapes them
/// (`\u{1b}`, `\n`, `\u{feff}`), and quotes and backslashes as they are, for error messages.
pub fn printable(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '"' | '\'' | '\\' => escaped.push(character),
            other => escaped.extend(other.escape_debug()),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_terminal_controls() {
        assert_eq!(printable("a\u{1b}[31mb\u{7}"), "a\\u{1b}[31mb\\u{7}");
    }

    #[test]
    fn printable_escapes_line_breaks_and_invisible_characters() {
        assert_eq!(
            printable("a\r\nb\u{feff}c\u{202e}"),
            "a\\r\\nb\\u{feff}c\\u{202e}"
        );
    }

    #[test]
    fn printable_keeps_quotes_backslashes_and_letters() {
        assert_eq!(printable(r#"C:\a "b" 'c' é"#), r#"C:\a "b" 'c' é"#);
    }

    #[test]
    fn printable_output_has_no_control_characters() {
        let all: String = (0..0x3000).filter_map(char::from_u32).collect();

        let shown = printable(&all);

        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }
}
