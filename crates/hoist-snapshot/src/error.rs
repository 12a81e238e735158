//! Errors of layer writing, layer application and snapshots.

use std::io;
use std::path::PathBuf;

/// A failure while writing a layer from a directory.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file, directory or link of the layer could not be read.
    #[error("failed to read {path} for the layer")]
    Read {
        /// The path, inside the source directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A regular file changed size while its contents were copied.
    #[error("{path} changed size while it was written to the layer: expected {expected} bytes")]
    SizeChanged {
        /// The path, inside the source directory.
        path: PathBuf,
        /// The size that the tar header already records.
        expected: u64,
    },
    /// A changed path is absolute or contains `..`.
    #[error("changed path {path} is not a relative path inside the source directory")]
    InvalidPath {
        /// The offending path.
        path: PathBuf,
    },
    /// The compressor or the output failed.
    #[error("failed to write the layer stream")]
    Output(#[source] io::Error),
}

/// A failure while applying a layer to a root directory.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The root directory could not be opened.
    #[error("failed to open the root directory {path}")]
    Root {
        /// The root directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The layer stream could not be decompressed or parsed as tar.
    #[error("failed to read the layer tar stream")]
    Read(#[source] io::Error),
    /// An entry would write outside the root or is malformed.
    #[error("layer entry {entry:?} is rejected: {reason}")]
    Rejected {
        /// The entry path as stored in the tar stream.
        entry: String,
        /// The reason for the rejection.
        reason: &'static str,
    },
    /// A filesystem operation for one entry failed.
    #[error("failed to apply layer entry {entry:?}")]
    Entry {
        /// The entry path as stored in the tar stream.
        entry: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// A failure while recording what a build step changed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A path of the tree could not be read.
    #[error("failed to read {path} while taking a snapshot")]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The overlay filesystem could not be mounted.
    #[error("failed to mount an overlay filesystem on {target}")]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The overlay filesystem could not be unmounted.
    #[error("failed to unmount the overlay filesystem on {target}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The layer of the last step could not be written from the upper
    /// directory while it was merged into the root.
    #[error("failed to write the layer of {upper} to merge it into the root")]
    MergeWrite {
        /// The upper directory of the overlay.
        upper: PathBuf,
        /// The error of the layer writer.
        source: WriteError,
    },
    /// The layer of the last step could not be applied to the root.
    #[error("failed to apply the layer of the last step to {root}")]
    MergeApply {
        /// The root directory, the lower directory of the overlay.
        root: PathBuf,
        /// The error of the layer applier.
        source: ApplyError,
    },
    /// A snapshot was requested before the step started.
    #[error("no build step is in progress: call begin_step first")]
    NoStep,
}

/// Wraps an `io::Error` from reading `path`.
pub(crate) fn read_error(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.into();
    move |source| SnapshotError::Read { path, source }
}
