//! The record of what one build step changed, and the interface of the
//! snapshotters that produce it.

use crate::error::SnapshotError;
use std::path::{Path, PathBuf};

/// The paths that one build step added, changed and deleted, relative to
/// the root directory and without a leading `/`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Paths that did not exist before the step.
    pub added: Vec<PathBuf>,
    /// Paths whose type, metadata, contents or link target changed.
    pub modified: Vec<PathBuf>,
    /// Paths that the step removed. A removed directory is listed once,
    /// without its children.
    pub deleted: Vec<PathBuf>,
    /// Directories whose earlier contents are all hidden: the step removed
    /// the directory and created it again. Each is also in `added` or
    /// `modified`.
    pub opaque: Vec<PathBuf>,
}

impl ChangeSet {
    /// Returns true when the step changed nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.modified.is_empty()
            && self.deleted.is_empty()
            && self.opaque.is_empty()
    }

    /// Sorts every list, so that equal change sets compare equal.
    pub fn sort(&mut self) {
        self.added.sort();
        self.modified.sort();
        self.deleted.sort();
        self.opaque.sort();
    }
}

/// Records the changes that a build step makes to a root filesystem.
///
/// A build calls [`begin_step`](Snapshotter::begin_step), runs the step in
/// the returned directory, then calls [`end_step`](Snapshotter::end_step)
/// and writes a layer from [`layer_source`](Snapshotter::layer_source).
pub trait Snapshotter {
    /// Prepares a step and returns the directory the step runs in.
    fn begin_step(&mut self) -> Result<PathBuf, SnapshotError>;

    /// Ends the step and returns what it changed.
    fn end_step(&mut self) -> Result<ChangeSet, SnapshotError>;

    /// The directory that contains the changed files of the last step, from
    /// which the layer writer reads.
    fn layer_source(&self) -> &Path;
}
