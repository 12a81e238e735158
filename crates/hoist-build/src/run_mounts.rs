//! `RUN --mount`: turns the mounts of one step into [`StepMount`]s that the
//! sandbox helper makes, with what they need on the builder's side.
//!
//! - `tmpfs`: an empty tmpfs, with `size` in bytes or with a `k`, `m`, `g`
//!   or `t` suffix (powers of 1024).
//! - `secret`: the file given for its id in [`RunMountSettings::secrets`],
//!   copied with its `mode` (default `0400`), `uid` and `gid` into the
//!   stage's scratch directory, bound read-only at the target and removed
//!   after the step. With `env`, the helper reads the copy into that
//!   variable, so the value is in no command line, log or layer. A missing
//!   secret is skipped unless `required` is set.
//! - `cache`: a directory per id (default: the target) under
//!   [`RunMountSettings::cache_dir`], or under the work directory for one
//!   build. It is created with `mode`, `uid` and `gid`. `sharing=locked`
//!   takes an exclusive `flock` on it for the step, and `shared` a shared
//!   one.
//! - `bind`: a path of the build context or of an earlier stage, resolved
//!   without leaving it. Read-only by default. With `rw`, writes go to an
//!   overlay in the scratch directory and are discarded.
//!
//! A relative target is resolved against `WORKDIR`, as BuildKit does.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use hoist_dockerfile::instructions::{Mount, MountType, Sharing};
use rustix::fs::FlockOperation;

use crate::sandbox::{StepMount, StepMountSource, is_directory_in};

/// Inputs of `RUN --mount` that come from outside the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct RunMountSettings {
    /// Secret files by id, for `--mount=type=secret`. Only the paths are
    /// stored here, so printing the settings shows no secret.
    pub secrets: BTreeMap<String, PathBuf>,
    /// The directory of cache mounts, kept between builds. `None` keeps
    /// them in the work directory, for one build.
    pub cache_dir: Option<PathBuf>,
}

/// A `RUN --mount` that cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum RunMountError {
    /// A required secret has no file in the settings.
    #[error("secret {id:?} is required but was not provided")]
    SecretMissing {
        /// The secret id.
        id: String,
    },
    /// A tmpfs `size` is not a byte count.
    #[error("invalid tmpfs size {value:?}: expected bytes with an optional k, m, g or t suffix")]
    InvalidSize {
        /// The value as written.
        value: String,
    },
    /// A bind mount names no earlier stage, or an image.
    #[error("bind mount from {from:?}: only earlier stages are supported, not images")]
    UnknownStage {
        /// The `from` value.
        from: String,
    },
    /// A mount option that hoist does not implement yet.
    #[error("RUN --mount {feature} is not implemented yet")]
    NotImplemented {
        /// The option.
        feature: &'static str,
    },
    /// A file or directory for a mount could not be prepared.
    #[error("failed to prepare {path} for a mount")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The builder-side sources of a step's mounts.
pub(crate) struct MountSources<'a> {
    /// The settings.
    pub(crate) settings: &'a RunMountSettings,
    /// The build context, if any.
    pub(crate) context: Option<&'a Path>,
    /// Whether the context has a `.dockerignore` file.
    pub(crate) context_filtered: bool,
    /// The work directory, for caches kept for one build.
    pub(crate) work_root: &'a Path,
    /// Finds an earlier stage's root by name or index.
    pub(crate) stage_root: &'a dyn Fn(&str) -> Option<PathBuf>,
    /// A directory outside the root for the step's files.
    pub(crate) scratch: &'a Path,
}

/// The prepared mounts of one step. The secret copies, overlay directories
/// and cache locks last as long as this value.
#[derive(Debug, Default)]
pub(crate) struct PreparedMounts {
    /// The mounts, in the order written.
    pub(crate) mounts: Vec<StepMount>,
    /// Variables whose values the helper reads from files.
    pub(crate) file_env: Vec<(String, PathBuf)>,
    files: Option<tempfile::TempDir>,
    /// The number of directories made in `files`.
    made_dirs: usize,
    _locks: Vec<File>,
}

/// Prepares the `--mount`s of a step whose working directory is `workdir`.
pub(crate) fn prepare(
    mounts: &[Mount],
    workdir: &str,
    sources: &MountSources<'_>,
) -> Result<PreparedMounts, RunMountError> {
    let mut prepared = PreparedMounts::default();
    for mount in mounts {
        let target = mount
            .target
            .as_deref()
            .map(|target| resolve_target(workdir, target));
        match mount.mount_type {
            MountType::Tmpfs => {
                let size = mount.size.as_deref().map(parse_size).transpose()?;
                prepared.push(target, StepMountSource::Tmpfs { size }, mount.readonly);
            }
            MountType::Secret => prepare_secret(mount, target, sources, &mut prepared)?,
            MountType::Cache => prepare_cache(mount, target, sources, &mut prepared)?,
            MountType::Bind => prepare_bind(mount, target, sources, &mut prepared)?,
            // `run::run_instruction` rejects SSH mounts with their line.
            MountType::Ssh => {}
        }
    }
    Ok(prepared)
}

impl PreparedMounts {
    fn push(&mut self, target: Option<PathBuf>, source: StepMountSource, readonly: bool) {
        if let Some(target) = target {
            self.mounts.push(StepMount {
                target,
                source,
                readonly,
            });
        }
    }

    /// Returns a new directory for the step's files in `scratch`.
    fn files_dir(&mut self, scratch: &Path) -> Result<PathBuf, RunMountError> {
        if self.files.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("mounts-")
                .tempdir_in(scratch)
                .map_err(io_error(scratch))?;
            self.files = Some(dir);
        }
        let base = self.files.as_ref().map_or(scratch, |dir| dir.path());
        let dir = base.join(self.made_dirs.to_string());
        self.made_dirs += 1;
        std::fs::create_dir(&dir).map_err(io_error(&dir))?;
        Ok(dir)
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> RunMountError + '_ {
    move |source| RunMountError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Resolves a target against `workdir` and returns it relative to the
/// root, with `.` and `..` removed as `path.Join` does in Go.
fn resolve_target(workdir: &str, target: &str) -> PathBuf {
    let joined = if target.starts_with('/') {
        PathBuf::from(target)
    } else {
        Path::new("/").join(workdir).join(target)
    };
    clean_relative(&joined)
}

/// Removes the root, `.` and `..` from `path` without leaving it.
fn clean_relative(path: &Path) -> PathBuf {
    let mut cleaned = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => cleaned.push(name),
            Component::ParentDir => {
                cleaned.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    cleaned
}

/// Parses a tmpfs size: bytes, or a number with a `k`, `m`, `g` or `t`
/// suffix, optionally followed by `b` or `ib`, in powers of 1024.
fn parse_size(value: &str) -> Result<u64, RunMountError> {
    let invalid = || RunMountError::InvalidSize {
        value: value.to_owned(),
    };
    let lower = value.trim().to_ascii_lowercase();
    let unit_start = lower
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(unit_start);
    let number: u64 = digits.parse().map_err(|_| invalid())?;
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(invalid()),
    };
    number.checked_mul(1 << shift).ok_or_else(invalid)
}

fn prepare_secret(
    mount: &Mount,
    target: Option<PathBuf>,
    sources: &MountSources<'_>,
    prepared: &mut PreparedMounts,
) -> Result<(), RunMountError> {
    let id = mount.id.clone().unwrap_or_default();

    let Some(file) = sources.settings.secrets.get(&id) else {
        if mount.required {
            return Err(RunMountError::SecretMissing { id });
        }
        tracing::info!(id = %id, "secret not provided, mount skipped");
        return Ok(());
    };
    // NOTE: the copy is on the work directory's file system, not on a
    // tmpfs as BuildKit keeps secrets, and is removed after the step.
    let dir = prepared.files_dir(sources.scratch)?;
    let copy = dir.join("secret");
    std::fs::copy(file, &copy).map_err(io_error(file))?;
    let mode = mount.mode.unwrap_or(0o400);
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(mode))
        .map_err(io_error(&copy))?;
    std::os::unix::fs::chown(
        &copy,
        Some(mount.uid.unwrap_or(0)),
        Some(mount.gid.unwrap_or(0)),
    )
    .map_err(io_error(&copy))?;

    if let Some(name) = &mount.env {
        prepared.file_env.push((name.clone(), copy.clone()));
    }
    let source = StepMountSource::Tree {
        tree: dir,
        path: PathBuf::from("secret"),
        scratch: None,
    };
    prepared.push(target, source, true);
    Ok(())
}

fn prepare_cache(
    mount: &Mount,
    target: Option<PathBuf>,
    sources: &MountSources<'_>,
    prepared: &mut PreparedMounts,
) -> Result<(), RunMountError> {
    if mount.from.is_some() || mount.source.is_some() {
        // TODO: seed a new cache from a stage (`from`, `source`).
        return Err(RunMountError::NotImplemented {
            feature: "type=cache with from or source",
        });
    }
    let Some(target) = target else {
        return Ok(());
    };
    let id = mount
        .id
        .clone()
        .unwrap_or_else(|| format!("/{}", target.display()));
    let caches = match &sources.settings.cache_dir {
        Some(dir) => dir.clone(),
        None => sources.work_root.join("cache-mounts"),
    };
    let name = hex_name(&id);
    let dir = caches.join(&name);
    create_cache_dir(&dir, mount)?;
    // TODO: `sharing=private` should give a writer its own copy while the
    // cache is in use. It is locked like `sharing=locked` for now.
    let operation = match mount.sharing.unwrap_or(Sharing::Shared) {
        Sharing::Shared => FlockOperation::LockShared,
        Sharing::Private | Sharing::Locked => FlockOperation::LockExclusive,
    };
    let lock_path = caches.join(format!("{name}.lock"));
    let lock = File::create(&lock_path).map_err(io_error(&lock_path))?;
    rustix::fs::flock(&lock, operation).map_err(|error| io_error(&lock_path)(error.into()))?;
    prepared._locks.push(lock);

    let source = StepMountSource::Tree {
        tree: caches,
        path: PathBuf::from(name),
        scratch: None,
    };
    prepared.push(Some(target), source, mount.readonly);
    Ok(())
}

/// Encodes a cache id as a file name: hexadecimal, so any id is one safe
/// name.
fn hex_name(id: &str) -> String {
    id.bytes().map(|byte| format!("{byte:02x}")).collect()
}

/// Creates a cache directory with the mount's mode and owner, unless it
/// exists from an earlier step or build.
fn create_cache_dir(dir: &Path, mount: &Mount) -> Result<(), RunMountError> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(error) => return Err(io_error(dir)(error)),
    }
    let mode = mount.mode.unwrap_or(0o755);
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(io_error(dir))?;
    std::os::unix::fs::chown(
        dir,
        Some(mount.uid.unwrap_or(0)),
        Some(mount.gid.unwrap_or(0)),
    )
    .map_err(io_error(dir))
}

fn prepare_bind(
    mount: &Mount,
    target: Option<PathBuf>,
    sources: &MountSources<'_>,
    prepared: &mut PreparedMounts,
) -> Result<(), RunMountError> {
    let tree = match &mount.from {
        Some(from) => (sources.stage_root)(from)
            .ok_or_else(|| RunMountError::UnknownStage { from: from.clone() })?,
        None => {
            // TODO: bind the context filtered by `.dockerignore`, which
            // needs a filtered copy; BuildKit never shows ignored files.
            if sources.context_filtered {
                return Err(RunMountError::NotImplemented {
                    feature: "type=bind from a context with a .dockerignore",
                });
            }
            let context = sources.context.ok_or(RunMountError::NotImplemented {
                feature: "type=bind without a build context",
            })?;
            context.to_path_buf()
        }
    };
    let mut path = clean_relative(Path::new(mount.source.as_deref().unwrap_or("/")));
    if path.as_os_str().is_empty() {
        path = PathBuf::from(".");
    }
    let scratch = if mount.readonly {
        None
    } else if is_directory_in(&tree, &path) {
        Some(prepared.files_dir(sources.scratch)?)
    } else {
        // TODO: a writable bind of a file needs a copy, because an overlay
        // only covers directories.
        return Err(RunMountError::NotImplemented {
            feature: "type=bind,rw of a file",
        });
    };
    let source = StepMountSource::Tree {
        tree,
        path,
        scratch,
    };
    prepared.push(target, source, mount.readonly);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_target_joins_workdir() {
        assert_eq!(resolve_target("/app", "cache"), PathBuf::from("app/cache"));
        assert_eq!(
            resolve_target("", "/root/.cache"),
            PathBuf::from("root/.cache")
        );
        assert_eq!(resolve_target("/app", "../../etc"), PathBuf::from("etc"));
    }

    #[test]
    fn tmpfs_size_accepts_units() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2tb").unwrap(), 2 << 40);
    }

    #[test]
    fn invalid_tmpfs_size_is_rejected() {
        for value in ["", "m", "1.5g", "10x", "99999999999999999999"] {
            assert!(parse_size(value).is_err(), "{value:?}");
        }
    }

    #[test]
    fn cache_id_becomes_hex_name() {
        assert_eq!(hex_name("/root/.cache"), "2f726f6f742f2e6361636865");
    }
}
