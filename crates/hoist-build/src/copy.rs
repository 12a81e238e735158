//! `COPY` from the build context into a stage root.
//!
//! Sources are resolved inside the context as if it were `/`, so neither
//! `..` nor a symlink leads out of it, and the `.dockerignore` patterns
//! hide what they exclude. Destinations are resolved inside the stage root
//! the same way. Files get the owner of `--chown` (root by default), their
//! mode (or `--chmod`) and their modification time. Directories that the
//! copy creates get the same owner, and existing ones keep theirs.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use hoist_dockerfile::dockerignore::IgnoreMatcher;
use rustix::fs::{AtFlags, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid};

/// A failure of a `COPY`.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A source is missing, or excluded by `.dockerignore`.
    #[error("COPY source {source_path:?} not found in {origin}")]
    SourceNotFound {
        /// The source as written.
        source_path: String,
        /// The place searched: the build context or a stage.
        origin: String,
    },
    /// `--chmod` is not an octal mode.
    #[error("invalid --chmod value {value:?}: expected an octal mode such as 0644")]
    InvalidChmod {
        /// The value as written.
        value: String,
    },
    /// A feature of COPY that hoist does not implement yet.
    #[error("COPY {feature} is not implemented yet")]
    NotImplemented {
        /// The feature.
        feature: &'static str,
    },
    /// Reading the context or writing the root failed.
    #[error("failed to copy {path}")]
    Io {
        /// The path involved, inside the context or the root.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// One `COPY` from the context or from an earlier stage's root.
#[derive(Debug)]
pub(crate) struct ContextCopy<'a> {
    /// The directory the sources are resolved in.
    pub(crate) context: &'a Path,
    /// The name of that directory in errors.
    pub(crate) origin: String,
    /// `.dockerignore`, applied to the build context only.
    pub(crate) ignore: Option<&'a IgnoreMatcher>,
    pub(crate) root: &'a Path,
    pub(crate) workdir: &'a str,
    pub(crate) sources: &'a [String],
    pub(crate) destination: &'a str,
    /// The `--chown` owner, or `None` to keep each source's owner (in the
    /// build context, every file belongs to root).
    pub(crate) owner: Option<(u32, u32)>,
    pub(crate) chmod: Option<&'a str>,
}

impl ContextCopy<'_> {
    /// Copies every source to the destination.
    pub(crate) fn run(&self) -> Result<(), CopyError> {
        let chmod = self.chmod.map(parse_chmod).transpose()?;
        if self.sources.iter().any(|source| has_wildcard(source)) {
            // TODO: wildcard sources; they need BuildKit's match rules.
            return Err(CopyError::NotImplemented {
                feature: "with wildcard sources",
            });
        }
        let destination = lexical_clean(&crate::metadata::join_workdir(
            if self.workdir.is_empty() {
                "/"
            } else {
                self.workdir
            },
            self.destination,
        ));
        let into_directory = self.destination.ends_with('/')
            || self.sources.len() > 1
            || is_directory_in_root(self.root, &destination);
        let context_fd = open_directory(self.context)?;
        for source in self.sources {
            self.copy_source(&context_fd, source, &destination, into_directory, chmod)?;
        }
        Ok(())
    }

    fn copy_source(
        &self,
        context_fd: &OwnedFd,
        source: &str,
        destination: &Path,
        into_directory: bool,
        chmod: Option<u32>,
    ) -> Result<(), CopyError> {
        let relative = lexical_clean(source);
        let not_found = || CopyError::SourceNotFound {
            source_path: source.to_owned(),
            origin: self.origin.clone(),
        };
        if self.is_ignored(&relative) {
            return Err(not_found());
        }
        let fd = open_in(context_fd, &relative, OFlags::PATH).map_err(|_| not_found())?;
        let opened = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let metadata = fs::metadata(&opened).map_err(io_error(&relative))?;
        let (uid, gid) = self.owner.unwrap_or((0, 0));
        if metadata.is_dir() {
            crate::stage::create_directory_in_root(self.root, destination, uid, gid)
                .map_err(io_error(destination))?;
            return self.copy_tree(&opened, &relative, destination, chmod);
        }
        let target = match (into_directory, relative.file_name()) {
            (true, Some(name)) => destination.join(name),
            _ => destination.to_path_buf(),
        };
        let parent = target.parent().unwrap_or(Path::new("/"));
        crate::stage::create_directory_in_root(self.root, parent, uid, gid)
            .map_err(io_error(parent))?;
        self.copy_entry(&opened, &metadata, &target, chmod)
    }

    fn is_ignored(&self, relative: &Path) -> bool {
        let text = relative.to_string_lossy();
        let text = text.trim_start_matches('/');
        !text.is_empty() && self.ignore.is_some_and(|matcher| matcher.is_excluded(text))
    }

    /// Copies the contents of the directory at `source` (the context path
    /// `relative`) into `destination`, keeping symlinks as links.
    fn copy_tree(
        &self,
        source: &Path,
        relative: &Path,
        destination: &Path,
        chmod: Option<u32>,
    ) -> Result<(), CopyError> {
        let mut entries: Vec<_> = fs::read_dir(source)
            .map_err(io_error(relative))?
            .collect::<Result<_, _>>()
            .map_err(io_error(relative))?;
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name();
            let entry_relative = relative.join(&name);
            let excluded = self.is_ignored(&entry_relative);
            let metadata = entry.metadata().map_err(io_error(&entry_relative))?;
            let has_exceptions = self.ignore.is_some_and(IgnoreMatcher::has_exceptions);
            if excluded && !(metadata.is_dir() && has_exceptions) {
                continue;
            }
            let target = destination.join(&name);
            if metadata.is_dir() {
                if !excluded {
                    self.copy_entry(&entry.path(), &metadata, &target, chmod)?;
                }
                self.copy_tree(&entry.path(), &entry_relative, &target, chmod)?;
            } else {
                self.copy_entry(&entry.path(), &metadata, &target, chmod)?;
            }
        }
        Ok(())
    }

    /// Creates `target` in the root as a copy of the file, directory or
    /// symlink at `source`, replacing a non-directory that is there.
    fn copy_entry(
        &self,
        source: &Path,
        metadata: &fs::Metadata,
        target: &Path,
        chmod: Option<u32>,
    ) -> Result<(), CopyError> {
        let parent_path = target.parent().unwrap_or(Path::new("/"));
        let name = target.file_name().map(Path::new).unwrap_or(Path::new("."));
        let root_fd = open_directory(self.root)?;
        let parent = open_in(&root_fd, parent_path, OFlags::DIRECTORY | OFlags::RDONLY)
            .map_err(io_error(parent_path))?;
        let write_error = io_error(target);
        let existing = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_is_dir =
            existing.is_some_and(|stat| rustix::fs::FileType::from_raw_mode(stat.st_mode).is_dir());
        if existing.is_some() && !(metadata.is_dir() && existing_is_dir) {
            let flags = if existing_is_dir {
                AtFlags::REMOVEDIR
            } else {
                AtFlags::empty()
            };
            rustix::fs::unlinkat(&parent, name, flags).map_err(|e| write_error(e.into()))?;
        }

        let file_type = metadata.file_type();
        let mode = chmod.unwrap_or(metadata.permissions().mode() & 0o7777);
        if file_type.is_symlink() {
            let link = fs::read_link(source).map_err(io_error(source))?;
            rustix::fs::symlinkat(&link, &parent, name).map_err(|e| write_error(e.into()))?;
        } else if file_type.is_dir() {
            if !existing_is_dir {
                rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| write_error(e.into()))?;
            }
        } else if file_type.is_file() {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
            let fd = rustix::fs::openat(&parent, name, flags, Mode::from_raw_mode(0o600))
                .map_err(|e| write_error(e.into()))?;
            let mut output = File::from(fd);
            let mut input = File::open(source).map_err(io_error(source))?;
            io::copy(&mut input, &mut output).map_err(&write_error)?;
        } else {
            // TODO: devices, FIFOs and sockets in the context.
            return Ok(());
        }
        let (uid, gid) = self.owner.unwrap_or((metadata.uid(), metadata.gid()));
        set_metadata(&parent, name, metadata, uid, gid, mode).map_err(|e| write_error(e.into()))
    }
}

/// Sets owner, mode (not for symlinks) and times of `name` in `parent`.
fn set_metadata(
    parent: &OwnedFd,
    name: &Path,
    metadata: &fs::Metadata,
    uid: u32,
    gid: u32,
    mode: u32,
) -> rustix::io::Result<()> {
    let nofollow = AtFlags::SYMLINK_NOFOLLOW;
    rustix::fs::chownat(
        parent,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        nofollow,
    )?;
    if !metadata.file_type().is_symlink() {
        // The mode comes after the owner, because chown clears setuid bits.
        rustix::fs::chmodat(parent, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
    }
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: metadata.mtime(),
            tv_nsec: metadata.mtime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: metadata.mtime(),
            tv_nsec: metadata.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(parent, name, &times, nofollow)
}

fn has_wildcard(source: &str) -> bool {
    source.contains(['*', '?', '['])
}

fn parse_chmod(value: &str) -> Result<u32, CopyError> {
    // TODO: symbolic modes such as u+x, which BuildKit accepts since
    // Dockerfile syntax 1.14.
    u32::from_str_radix(value, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| CopyError::InvalidChmod {
            value: value.to_owned(),
        })
}

/// Cleans `path` as an absolute path: `.` is dropped and `..` stops at `/`.
fn lexical_clean(path: &str) -> PathBuf {
    let mut clean = PathBuf::from("/");
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::ParentDir => {
                clean.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    clean
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn open_directory(path: &Path) -> Result<OwnedFd, CopyError> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|error| io_error(path)(error.into()))
}

/// Opens `path` (absolute or relative) inside the directory `base` as if
/// `base` were `/`.
fn open_in(base: &impl AsFd, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let relative = path.strip_prefix("/").unwrap_or(path);
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    let fd = rustix::fs::openat2(
        base,
        relative,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(fd)
}

fn is_directory_in_root(root: &Path, path: &Path) -> bool {
    let Ok(root_fd) = open_directory(root) else {
        return false;
    };
    open_in(&root_fd, path, OFlags::DIRECTORY | OFlags::RDONLY).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotdot_stops_at_root() {
        assert_eq!(lexical_clean("../../etc/passwd"), Path::new("/etc/passwd"));
        assert_eq!(lexical_clean("./a/./b/../c"), Path::new("/a/c"));
        assert_eq!(lexical_clean("."), Path::new("/"));
    }

    #[test]
    fn chmod_accepts_octal_only() {
        assert_eq!(parse_chmod("0755").ok(), Some(0o755));
        assert_eq!(parse_chmod("4755").ok(), Some(0o4755));
        assert!(parse_chmod("u+x").is_err());
        assert!(parse_chmod("99").is_err());
    }
}
