//! Atomic output: everything is written under a temporary name in the target's directory and
//! renamed into place at the end, so a failure leaves no partial output.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, RenameFlags, renameat_with};
use rustix::io::Errno;
use tempfile::{NamedTempFile, TempDir};

use crate::error::WriteError;

/// Writes a file at `target` through `write`, which receives a temporary file in the same
/// directory. The file is synced and renamed over `target` only when `write` succeeds.
pub(crate) fn write_file<T>(
    target: &Path,
    write: impl FnOnce(&mut File) -> Result<T, WriteError>,
) -> Result<T, WriteError> {
    let parent = parent_dir(target);
    let mut temporary = tempfile::Builder::new()
        .prefix(&temporary_prefix(target))
        .tempfile_in(&parent)
        .map_err(|source| WriteError::Io {
            path: parent.clone(),
            source,
        })?;

    let value = write(temporary.as_file_mut())?;

    sync(&temporary, target)?;
    set_mode(temporary.path(), 0o644)?;
    temporary.persist(target).map_err(|error| WriteError::Io {
        path: target.to_owned(),
        source: error.error,
    })?;
    Ok(value)
}

/// Writes a directory at `target` through `write`, which receives a temporary directory
/// beside it. On success the temporary directory takes the place of `target`.
///
/// An existing `target` is replaced only when `replaceable` accepts it, and the exchange is
/// one `renameat2(RENAME_EXCHANGE)` call, so readers see the old or the new directory.
pub(crate) fn write_dir<T>(
    target: &Path,
    replaceable: impl FnOnce(&Path) -> bool,
    write: impl FnOnce(&Path) -> Result<T, WriteError>,
) -> Result<T, WriteError> {
    let parent = parent_dir(target);
    let temporary = tempfile::Builder::new()
        .prefix(&temporary_prefix(target))
        .tempdir_in(&parent)
        .map_err(|source| WriteError::Io {
            path: parent.clone(),
            source,
        })?;

    let value = write(temporary.path())?;

    set_mode(temporary.path(), 0o755)?;
    install_dir(temporary, target, replaceable)?;
    Ok(value)
}

fn install_dir(
    temporary: TempDir,
    target: &Path,
    replaceable: impl FnOnce(&Path) -> bool,
) -> Result<(), WriteError> {
    let io_error = |source| WriteError::Io {
        path: target.to_owned(),
        source,
    };
    match fs::symlink_metadata(target) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let path = temporary.keep();
            fs::rename(&path, target).map_err(|source| {
                let _ = fs::remove_dir_all(&path);
                io_error(source)
            })
        }
        Err(error) => Err(io_error(error)),
        Ok(metadata) if !metadata.is_dir() || !replaceable(target) => {
            Err(WriteError::TargetExists {
                path: target.to_owned(),
            })
        }
        Ok(_) => {
            // After the exchange the temporary directory contains the old output, and dropping
            // `temporary` removes it.
            match renameat_with(CWD, temporary.path(), CWD, target, RenameFlags::EXCHANGE) {
                Ok(()) => Ok(()),
                Err(Errno::INVAL | Errno::NOSYS) => replace_in_two_steps(&temporary, target),
                Err(errno) => Err(io_error(io::Error::from(errno))),
            }
        }
    }
}

/// Replaces `target` by `temporary` on file systems without `RENAME_EXCHANGE`: the old output
/// moves aside, the new one moves in, and the old one comes back if that fails. Between the
/// two renames `target` is missing for a moment.
fn replace_in_two_steps(temporary: &TempDir, target: &Path) -> Result<(), WriteError> {
    let io_error = |source| WriteError::Io {
        path: target.to_owned(),
        source,
    };
    let parent = parent_dir(target);
    let backup = tempfile::Builder::new()
        .prefix(&temporary_prefix(target))
        .tempdir_in(&parent)
        .map_err(io_error)?;
    // Renaming a directory over an empty directory replaces it.
    fs::rename(target, backup.path()).map_err(io_error)?;
    if let Err(error) = fs::rename(temporary.path(), target) {
        let _ = fs::rename(backup.path(), target);
        return Err(io_error(error));
    }
    Ok(())
}

fn sync(temporary: &NamedTempFile, target: &Path) -> Result<(), WriteError> {
    temporary
        .as_file()
        .sync_all()
        .map_err(|source| WriteError::Io {
            path: target.to_owned(),
            source,
        })
}

/// Sets the usual modes of outputs, because temporary files and directories are created
/// readable by the owner only.
fn set_mode(path: &Path, mode: u32) -> Result<(), WriteError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| WriteError::Io {
        path: path.to_owned(),
        source,
    })
}

fn parent_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Returns `.NAME.tmp-`, a hidden prefix that names the output the temporary file belongs to.
fn temporary_prefix(target: &Path) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(target.file_name().unwrap_or_default());
    prefix.push(".tmp-");
    prefix
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn failed_file_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("image.tar");
        let result: Result<(), _> = write_file(&target, |file| {
            file.write_all(b"half").unwrap();
            Err(WriteError::TargetExists {
                path: target.clone(),
            })
        });
        assert!(result.is_err());
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn file_write_replaces_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("image.tar");
        fs::write(&target, b"old").unwrap();
        write_file(&target, |file| {
            file.write_all(b"new").map_err(|source| WriteError::Io {
                path: target.clone(),
                source,
            })
        })
        .unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(entries(dir.path()), vec!["image.tar"]);
    }

    #[test]
    fn failed_dir_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("layout");
        let result: Result<(), _> = write_dir(
            &target,
            |_| true,
            |temporary| {
                fs::write(temporary.join("index.json"), b"{}").unwrap();
                Err(WriteError::TargetExists {
                    path: target.clone(),
                })
            },
        );
        assert!(result.is_err());
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn dir_write_exchanges_replaceable_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("layout");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("old"), b"").unwrap();
        write_dir(
            &target,
            |_| true,
            |temporary| {
                fs::write(temporary.join("new"), b"").unwrap();
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(entries(&target), vec!["new"]);
        assert_eq!(entries(dir.path()), vec!["layout"]);
    }

    #[test]
    fn two_step_replace_swaps_directories() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("layout");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("old"), b"").unwrap();
        let temporary = tempfile::tempdir_in(dir.path()).unwrap();
        fs::write(temporary.path().join("new"), b"").unwrap();

        replace_in_two_steps(&temporary, &target).unwrap();
        assert_eq!(entries(&target), vec!["new"]);
        drop(temporary);
        assert_eq!(entries(dir.path()), vec!["layout"]);
    }

    #[test]
    fn dir_write_keeps_unreplaceable_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("layout");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("precious"), b"").unwrap();
        let result = write_dir(&target, |_| false, |_| Ok(()));
        assert!(matches!(result, Err(WriteError::TargetExists { .. })));
        assert_eq!(entries(&target), vec!["precious"]);
        assert_eq!(entries(dir.path()), vec!["layout"]);
    }
}
