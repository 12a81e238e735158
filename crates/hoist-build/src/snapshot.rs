//! Snapshot settings and the snapshotter of one stage.
//!
//! Kaniko's `--snapshot-mode` chooses how its filesystem walk detects
//! changes. hoist takes the same values and maps them as follows:
//!
//! | mode   | overlay available             | otherwise                               |
//! |--------|-------------------------------|-----------------------------------------|
//! | `full` | overlay: exact, cost grows with the changes | walk comparing metadata and a hash of every file's contents |
//! | `redo` | overlay                       | walk comparing metadata (mode, owner, size, mtime, ctime, inode, xattrs) |
//! | `time` | overlay                       | walk comparing metadata, as `redo`      |
//!
//! Kaniko's `time` compares mtimes only. hoist's walk also compares ctime,
//! size and inode, so it records every change that `time` records and some
//! that `time` misses. The overlay snapshotter records every file a step
//! wrote, whatever the mode, so the mode only changes the walk.
//!
//! `--single-snapshot` takes one snapshot at the end of the stage: the stage
//! gets one layer, attached to the history entry of its last instruction
//! that can change files (RUN, COPY, ADD, WORKDIR). Every other entry of the
//! stage is marked `empty_layer`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use hoist_snapshot::{
    ChangeSet, OverlaySnapshotter, SnapshotError, Snapshotter, WalkOptions, WalkSnapshotter,
};

/// Kaniko's `--snapshot-mode`. See the [module documentation](self) for
/// what each mode maps to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SnapshotMode {
    /// `full`: the walk also hashes file contents. Kaniko's default.
    #[default]
    Full,
    /// `redo`: the walk compares metadata only.
    Redo,
    /// `time`: the walk compares metadata only, as `redo` does.
    Time,
}

/// A `--snapshot-mode` value that is not `full`, `redo` or `time`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid snapshot mode {0:?}: expected full, redo or time")]
pub struct InvalidSnapshotMode(String);

impl FromStr for SnapshotMode {
    type Err = InvalidSnapshotMode;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "full" => Ok(Self::Full),
            "redo" => Ok(Self::Redo),
            "time" => Ok(Self::Time),
            other => Err(InvalidSnapshotMode(other.to_owned())),
        }
    }
}

/// The snapshotter a build uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SnapshotBackend {
    /// Overlay when a test mount in the work directory succeeds, which
    /// needs `CAP_SYS_ADMIN` and overlayfs in the kernel; walk otherwise.
    #[default]
    Auto,
    /// Overlay, failing the build where it cannot mount.
    Overlay,
    /// The stat walk of the whole root before and after each step.
    Walk,
}

/// Snapshot settings of a build: the snapshotter, the mode and single snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotSettings {
    /// Kaniko's `--snapshot-mode`.
    pub mode: SnapshotMode,
    /// Kaniko's `--single-snapshot`: one layer per stage.
    pub single: bool,
    /// The snapshotter.
    pub backend: SnapshotBackend,
}

/// The snapshotter of one stage.
#[derive(Debug)]
enum Backend {
    Walk(WalkSnapshotter),
    Overlay(OverlaySnapshotter),
}

impl Backend {
    fn snapshotter(&mut self) -> &mut dyn Snapshotter {
        match self {
            Self::Walk(walk) => walk,
            Self::Overlay(overlay) => overlay,
        }
    }
}

/// The snapshots of one stage: one per step, or one for the whole stage
/// with [`SnapshotSettings::single`].
#[derive(Debug)]
pub(crate) struct StageSnapshots {
    backend: Backend,
    single: bool,
    /// The root of the step in progress, kept across steps in single mode.
    open_root: Option<PathBuf>,
}

impl StageSnapshots {
    /// Chooses the snapshotter of the stage whose root is `root`, keeping
    /// overlay directories in `scratch`.
    pub(crate) fn open(
        settings: &SnapshotSettings,
        root: &Path,
        scratch: &Path,
    ) -> Result<Self, SnapshotError> {
        let overlay = match settings.backend {
            SnapshotBackend::Walk => false,
            SnapshotBackend::Overlay => true,
            SnapshotBackend::Auto => overlay_mounts(scratch),
        };
        let backend = if overlay {
            Backend::Overlay(OverlaySnapshotter::new(root.to_path_buf(), scratch))
        } else {
            let options = WalkOptions {
                hash_contents: settings.mode == SnapshotMode::Full,
            };
            Backend::Walk(WalkSnapshotter::new(root.to_path_buf(), options))
        };
        tracing::debug!(
            overlay,
            mode = ?settings.mode,
            single = settings.single,
            "snapshotter chosen"
        );
        Ok(Self {
            backend,
            single: settings.single,
            open_root: None,
        })
    }

    /// Starts a step and returns the directory it runs in. In single mode,
    /// every step runs in the snapshot that the first one opened.
    pub(crate) fn begin(&mut self) -> Result<PathBuf, SnapshotError> {
        if let Some(root) = &self.open_root {
            return Ok(root.clone());
        }
        let root = self.backend.snapshotter().begin_step()?;
        if self.single {
            self.open_root = Some(root.clone());
        }
        Ok(root)
    }

    /// Ends a step and returns its changes, or `None` in single mode, where
    /// [`finish`](Self::finish) returns the changes of the stage.
    pub(crate) fn end(&mut self) -> Result<Option<ChangeSet>, SnapshotError> {
        if self.single {
            return Ok(None);
        }
        self.backend.snapshotter().end_step().map(Some)
    }

    /// Ends the stage's snapshot in single mode and returns its changes.
    /// Returns `None` when no step ran or not in single mode.
    pub(crate) fn finish(&mut self) -> Result<Option<ChangeSet>, SnapshotError> {
        if self.open_root.take().is_none() {
            return Ok(None);
        }
        self.backend.snapshotter().end_step().map(Some)
    }

    /// Returns the directory that contains the files of the last changes.
    pub(crate) fn layer_source(&mut self) -> &Path {
        self.backend.snapshotter().layer_source()
    }

    /// Applies the last step's changes to the stage root, so that later
    /// stages and `COPY --from` see them. The walk changes the root in
    /// place and has nothing to apply.
    pub(crate) fn merge(&mut self) -> Result<(), SnapshotError> {
        match &mut self.backend {
            Backend::Walk(_) => Ok(()),
            Backend::Overlay(overlay) => overlay.merge(),
        }
    }
}

/// Tells whether an overlay mounts in `scratch`, by mounting and removing
/// one over an empty directory there.
fn overlay_mounts(scratch: &Path) -> bool {
    let probe = scratch.join("overlay-probe");
    let lower = probe.join("lower");
    let mounted = std::fs::create_dir_all(&lower)
        .map_err(|source| SnapshotError::Read {
            path: lower.clone(),
            source,
        })
        .and_then(|()| {
            let mut overlay = OverlaySnapshotter::new(lower.clone(), &probe);
            overlay.begin_step()?;
            overlay.end_step().map(drop)
        });
    if let Err(error) = std::fs::remove_dir_all(&probe) {
        tracing::warn!(path = %probe.display(), %error, "failed to remove the overlay probe");
    }
    match mounted {
        Ok(()) => true,
        Err(error) => {
            tracing::info!(%error, "overlay unavailable, using the walk snapshotter");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_mode_parses_kaniko_values() {
        assert_eq!("full".parse(), Ok(SnapshotMode::Full));
        assert_eq!("redo".parse(), Ok(SnapshotMode::Redo));
        assert_eq!("time".parse(), Ok(SnapshotMode::Time));
    }

    #[test]
    fn unknown_snapshot_mode_is_rejected() {
        let error = "Full".parse::<SnapshotMode>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid snapshot mode \"Full\": expected full, redo or time"
        );
    }

    #[test]
    fn single_mode_keeps_one_open_step() {
        let root = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let settings = SnapshotSettings {
            single: true,
            backend: SnapshotBackend::Walk,
            ..SnapshotSettings::default()
        };
        let mut snapshots = StageSnapshots::open(&settings, root.path(), scratch.path()).unwrap();

        let first = snapshots.begin().unwrap();
        std::fs::write(first.join("a"), "a").unwrap();
        assert_eq!(snapshots.end().unwrap(), None);
        let second = snapshots.begin().unwrap();
        std::fs::write(second.join("b"), "b").unwrap();
        assert_eq!(snapshots.end().unwrap(), None);

        let mut changes = snapshots.finish().unwrap().expect("stage changes");
        changes.sort();
        assert_eq!(changes.added, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(snapshots.finish().unwrap(), None);
    }

    #[test]
    fn per_step_mode_returns_each_change() {
        let root = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let settings = SnapshotSettings {
            backend: SnapshotBackend::Walk,
            ..SnapshotSettings::default()
        };
        let mut snapshots = StageSnapshots::open(&settings, root.path(), scratch.path()).unwrap();

        let step_root = snapshots.begin().unwrap();
        std::fs::write(step_root.join("a"), "a").unwrap();
        let changes = snapshots.end().unwrap().expect("step changes");
        assert_eq!(changes.added, [PathBuf::from("a")]);
        assert_eq!(snapshots.finish().unwrap(), None);
    }
}
