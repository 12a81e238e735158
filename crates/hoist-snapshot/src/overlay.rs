//! The overlay snapshotter: a build step runs on an overlayfs mount, and its
//! upper directory contains exactly what the step changed.

use crate::apply::{ApplyOptions, apply_layer};
use crate::changes::{ChangeSet, Snapshotter};
use crate::compression::Compression;
use crate::error::{ApplyError, SnapshotError, WriteError, read_error};
use crate::metadata::is_overlay_opaque;
use crate::writer::{LayerOptions, write_layer};
use rustix::mount::{MountFlags, UnmountFlags};
use std::ffi::CString;
use std::io::{self, PipeReader, PipeWriter};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

/// How often a busy overlay unmount is retried before it is detached.
const UNMOUNT_RETRIES: u32 = 20;
/// The wait between two unmount attempts.
const UNMOUNT_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

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
        let upper = self.upper.as_path();
        let lower = self.lower.as_path();
        let streamed = stream_layer(
            |pipe| write_layer(upper, &changes, &options, pipe).map(drop),
            |pipe| apply_layer(pipe, lower, &ApplyOptions::default()).map(drop),
        );
        match streamed {
            Ok(()) => Ok(()),
            Err(StageError::Pipe(source)) => Err(read_error(upper)(source)),
            Err(StageError::Write(source)) => Err(SnapshotError::MergeWrite {
                upper: self.upper.clone(),
                source,
            }),
            Err(StageError::Apply(source)) => Err(SnapshotError::MergeApply {
                root: self.lower.clone(),
                source,
            }),
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

    /// Unmounts the merged directory once the step's processes are gone.
    ///
    /// Another process that briefly has a path under the mount open, or a
    /// mount namespace created at that moment, makes the unmount fail with
    /// `EBUSY`. The unmount is retried for about a second, then the mount
    /// is detached. Detaching is safe because the upper directory, which the
    /// snapshot reads, is complete once the step has ended.
    fn unmount(&mut self) -> Result<(), SnapshotError> {
        if !self.mounted {
            return Ok(());
        }
        let mut result = rustix::mount::unmount(&self.merged, UnmountFlags::empty());
        for _ in 0..UNMOUNT_RETRIES {
            if result != Err(rustix::io::Errno::BUSY) {
                break;
            }
            std::thread::sleep(UNMOUNT_RETRY_DELAY);
            result = rustix::mount::unmount(&self.merged, UnmountFlags::empty());
        }
        if result == Err(rustix::io::Errno::BUSY) {
            tracing::warn!(target = %self.merged.display(), "overlay busy, detaching it");
            result = rustix::mount::unmount(&self.merged, UnmountFlags::DETACH);
        }
        result.map_err(|e| SnapshotError::Unmount {
            target: self.merged.clone(),
            source: e.into(),
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

/// The failed stage of [`stream_layer`].
#[derive(Debug)]
enum StageError {
    /// The pipe could not be created.
    Pipe(io::Error),
    /// The writing stage failed first.
    Write(WriteError),
    /// The applying stage failed first.
    Apply(ApplyError),
}

/// Runs `write` on its own thread, writing a layer into a pipe that `apply`
/// reads on this thread.
///
/// [`apply_layer`] stops reading at the first of the two zero blocks that
/// end an archive, because the `tar` crate (0.4) takes it as the end. The
/// rest of the pipe is then read to its end, so the writer never sees a
/// closed pipe after a successful apply. When `apply` fails, its error is
/// returned, although the closed pipe then also makes `write` fail.
fn stream_layer<W, A>(write: W, apply: A) -> Result<(), StageError>
where
    W: FnOnce(&mut PipeWriter) -> Result<(), WriteError> + Send,
    A: FnOnce(&mut PipeReader) -> Result<(), ApplyError>,
{
    let (mut reader, mut writer) = io::pipe().map_err(StageError::Pipe)?;
    let (written, applied) = std::thread::scope(|scope| {
        let producer = scope.spawn(move || write(&mut writer));
        let applied = apply(&mut reader).and_then(|()| drain(&mut reader));
        drop(reader);
        let written = producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (written, applied)
    });
    match (written, applied) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(write), Ok(())) => Err(StageError::Write(write)),
        (Err(write), Err(_)) if !is_broken_pipe(&write) => Err(StageError::Write(write)),
        (_, Err(apply)) => Err(StageError::Apply(apply)),
    }
}

/// Reads what follows the end of the archive, normally the second zero
/// block, until the writer closes the pipe.
fn drain(reader: &mut PipeReader) -> Result<(), ApplyError> {
    let trailing = io::copy(reader, &mut io::sink()).map_err(ApplyError::Read)?;
    tracing::trace!(trailing, "bytes after the end of the layer archive read");
    Ok(())
}

/// Tells whether the output of the writer was closed by its reader.
fn is_broken_pipe(error: &WriteError) -> bool {
    matches!(error, WriteError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::time::Duration;

    /// Builds a tar archive of one small file, ending with two zero blocks.
    fn archive() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, "hello.txt", &b"hello"[..])
            .unwrap();
        builder.into_inner().unwrap()
    }

    fn write_all(pipe: &mut PipeWriter, bytes: &[u8]) -> Result<(), WriteError> {
        pipe.write_all(bytes).map_err(WriteError::Output)
    }

    #[test]
    fn late_archive_end_is_still_written() {
        let root = tempfile::tempdir().unwrap();
        let archive = archive();
        let (body, last_block) = archive.split_at(archive.len() - 512);

        let streamed = stream_layer(
            |pipe| {
                write_all(pipe, body)?;
                // The reader finishes at the first zero block meanwhile.
                std::thread::sleep(Duration::from_millis(300));
                write_all(pipe, last_block)
            },
            |pipe| apply_layer(pipe, root.path(), &ApplyOptions::default()).map(drop),
        );

        assert!(streamed.is_ok(), "{streamed:?}");
        assert_eq!(
            std::fs::read(root.path().join("hello.txt")).unwrap(),
            b"hello"
        );
    }

    #[test]
    fn apply_error_wins_over_broken_pipe() {
        let root = tempfile::tempdir().unwrap();
        // Far more than a pipe buffers, so the writer is still writing when
        // the reader rejects the first header and closes the pipe.
        let garbage = vec![0xa5; 8 << 20];

        let streamed = stream_layer(
            |pipe| write_all(pipe, &garbage),
            |pipe| apply_layer(pipe, root.path(), &ApplyOptions::default()).map(drop),
        );

        assert!(
            matches!(streamed, Err(StageError::Apply(ApplyError::Read(_)))),
            "{streamed:?}"
        );
    }

    #[test]
    fn write_error_wins_over_truncated_stream() {
        let root = tempfile::tempdir().unwrap();
        let archive = archive();

        let streamed = stream_layer(
            |pipe| {
                write_all(pipe, &archive[..700])?;
                Err(WriteError::Read {
                    path: PathBuf::from("upper/hello.txt"),
                    source: io::Error::from(io::ErrorKind::PermissionDenied),
                })
            },
            |pipe| apply_layer(pipe, root.path(), &ApplyOptions::default()).map(drop),
        );

        assert!(
            matches!(streamed, Err(StageError::Write(WriteError::Read { .. }))),
            "{streamed:?}"
        );
    }
}
