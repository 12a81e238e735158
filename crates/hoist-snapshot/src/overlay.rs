//! The overlay snapshotter: a build step runs on an overlayfs mount, and its
//! upper directory contains exactly what the step changed.

use crate::apply::{ApplyOptions, apply_layer};
use crate::changes::{ChangeSet, Snapshotter};
use crate::compression::Compression;
use crate::error::{SnapshotError, read_error};
use crate::metadata::is_overlay_opaque;
use crate::writer::{LayerOptions, write_layer};
use rustix::mount::{MountFlags, UnmountFlags};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

/// Runs each step on an overlay mount whose lower directory is the root.
///
/// The upper, work and mount directories live under a scratch directory,
/// which must be on a filesystem that supports `trusted.*` xattrs (ext4,
/// xfs, tmpfs). Mounting needs `CAP_SYS_ADMIN`. A step's changes are merged
/// into the root when the next step begins or on
/// [`merge`](OverlaySnapshotter::merge); the mount is removed at the end of
/// each step and on drop.
#[derive(Debug)]
pub struct OverlaySnapshotter {
    lower: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    merged: PathBuf,
    mounted: bool,
    pending: Option<ChangeSet>,
}

impl OverlaySnapshotter {
    /// Creates a snapshotter of `root` that keeps its directories in
    /// `scratch`.
    pub fn new(root: PathBuf, scratch: &Path) -> Self {
        Self {
            lower: root,
            upper: scratch.join("upper"),
            work: scratch.join("work"),
            merged: scratch.join("merged"),
            mounted: false,
            pending: None,
        }
    }

    /// Applies the changes of the last step to the root directory and clears
    /// the upper directory. Cost grows with the size of the changes.
    pub fn merge(&mut self) -> Result<(), SnapshotError> {
        let Some(changes) = self.pending.take() else {
            return Ok(());
        };
        let options = LayerOptions {
            compression: Compression::None,
            mtime_epoch: None,
        };
        let (reader, mut writer) = io::pipe().map_err(read_error(&self.upper))?;
        let upper = self.upper.clone();
        let applied = std::thread::scope(|scope| {
            let producer =
                scope.spawn(move || write_layer(&upper, &changes, &options, &mut writer));
            let applied = apply_layer(reader, &self.lower, &ApplyOptions::default());
            let written = producer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (written, applied)
        });
        match applied {
            (Err(write), _) => Err(SnapshotError::Read {
                path: self.upper.clone(),
                source: io::Error::other(write),
            }),
            (_, Err(apply)) => Err(SnapshotError::Read {
                path: self.lower.clone(),
                source: io::Error::other(apply),
            }),
            (Ok(_), Ok(_)) => Ok(()),
        }
    }

    fn prepare_directories(&self) -> Result<(), SnapshotError> {
        for dir in [&self.upper, &self.work] {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(read_error(dir))?;
            }
        }
        for dir in [&self.upper, &self.work, &self.merged] {
            std::fs::create_dir_all(dir).map_err(read_error(dir))?;
        }
        Ok(())
    }

    fn mount(&mut self) -> Result<(), SnapshotError> {
        let mount_error = |source: io::Error| SnapshotError::Mount {
            target: self.merged.clone(),
            source,
        };
        let options = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off",
            escape(&self.lower),
            escape(&self.upper),
            escape(&self.work)
        );
        let options = CString::new(options).map_err(|e| mount_error(io::Error::other(e)))?;
        rustix::mount::mount(
            "overlay",
            &self.merged,
            "overlay",
            MountFlags::empty(),
            Some(options.as_c_str()),
        )
        .map_err(|e| mount_error(e.into()))?;
        self.mounted = true;
        tracing::debug!(merged = %self.merged.display(), "overlay mounted");
        Ok(())
    }

    fn unmount(&mut self) -> Result<(), SnapshotError> {
        if !self.mounted {
            return Ok(());
        }
        rustix::mount::unmount(&self.merged, UnmountFlags::empty()).map_err(|e| {
            SnapshotError::Unmount {
                target: self.merged.clone(),
                source: e.into(),
            }
        })?;
        self.mounted = false;
        Ok(())
    }

    /// Lists what the upper directory holds: overlay whiteouts (character
    /// devices 0/0) become deletions, and directories marked
    /// `trusted.overlay.opaque=y` become opaque.
    fn read_upper(&self) -> Result<ChangeSet, SnapshotError> {
        let mut changes = ChangeSet::default();
        for item in walkdir::WalkDir::new(&self.upper).min_depth(1) {
            let item = item.map_err(|e| SnapshotError::Read {
                path: e.path().unwrap_or(&self.upper).to_path_buf(),
                source: e.into(),
            })?;
            let relative = item.path().strip_prefix(&self.upper).unwrap_or(item.path());
            let meta = item
                .path()
                .symlink_metadata()
                .map_err(read_error(item.path()))?;
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                changes.deleted.push(relative.to_path_buf());
                continue;
            }
            if meta.is_dir() && is_overlay_opaque(item.path()).map_err(read_error(item.path()))? {
                changes.opaque.push(relative.to_path_buf());
            }
            let in_lower = self.lower.join(relative).symlink_metadata().is_ok();
            if in_lower {
                changes.modified.push(relative.to_path_buf());
            } else {
                changes.added.push(relative.to_path_buf());
            }
        }
        Ok(changes)
    }
}

/// Escapes the characters that separate overlay mount options.
fn escape(path: &Path) -> String {
    let mut out = String::new();
    for &byte in path.as_os_str().as_bytes() {
        match byte {
            b',' | b':' | b'\\' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            _ => out.push(char::from(byte)),
        }
    }
    out
}

impl Snapshotter for OverlaySnapshotter {
    fn begin_step(&mut self) -> Result<PathBuf, SnapshotError> {
        self.merge()?;
        self.prepare_directories()?;
        self.mount()?;
        Ok(self.merged.clone())
    }

    fn end_step(&mut self) -> Result<ChangeSet, SnapshotError> {
        if !self.mounted {
            return Err(SnapshotError::NoStep);
        }
        self.unmount()?;
        let changes = self.read_upper()?;
        tracing::debug!(
            upper = %self.upper.display(),
            added = changes.added.len(),
            modified = changes.modified.len(),
            deleted = changes.deleted.len(),
            opaque = changes.opaque.len(),
            "overlay snapshot taken"
        );
        self.pending = Some(changes.clone());
        Ok(changes)
    }

    fn layer_source(&self) -> &Path {
        &self.upper
    }
}

impl Drop for OverlaySnapshotter {
    fn drop(&mut self) {
        if self.mounted
            && let Err(e) = rustix::mount::unmount(&self.merged, UnmountFlags::DETACH)
        {
            tracing::error!(target = %self.merged.display(), error = %e, "failed to unmount overlay");
        }
    }
}
