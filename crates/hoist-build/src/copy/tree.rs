//! Writing copied entries into the stage root: files, directories,
//! symlinks, devices and FIFOs with their owner, mode, extended attributes
//! and times, and hardlinks kept as hardlinks.
//!
//! Every parent directory in the root is opened with `RESOLVE_IN_ROOT`, so a
//! symlink in the image is followed as if the root were `/` and never leads
//! out of it. The last component is replaced without following symlinks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use hoist_dockerfile::dockerignore::IgnoreMatcher;
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid};

use super::CopyError;
use super::chmod::Chmod;

/// The owner of copied entries: fixed (`--chown`, or root for the build
/// context), or each source entry's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// This uid and gid.
    Fixed(u32, u32),
    /// The source entry's uid and gid.
    Source,
}

impl Owner {
    /// Returns the owner of directories that the copy creates.
    fn of_created_directories(self) -> (u32, u32) {
        match self {
            Self::Fixed(uid, gid) => (uid, gid),
            Self::Source => (0, 0),
        }
    }
}

/// A directory tree being copied, with the filters that apply to its
/// entries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeFilters<'a> {
    /// `.dockerignore`, matched against paths relative to the context.
    pub(crate) ignore: Option<&'a IgnoreMatcher>,
    /// The context path of the copied directory, for `ignore`.
    pub(crate) context_path: &'a Path,
    /// `--exclude`, matched against paths relative to the copied directory.
    pub(crate) exclude: Option<&'a IgnoreMatcher>,
}

impl TreeFilters<'_> {
    /// Returns filters that keep every entry.
    pub(crate) fn none() -> TreeFilters<'static> {
        TreeFilters {
            ignore: None,
            context_path: Path::new(""),
            exclude: None,
        }
    }
}

/// Writes entries into one stage root.
#[derive(Debug)]
pub(crate) struct RootWriter {
    root_fd: OwnedFd,
    root: PathBuf,
    chmod: Option<Chmod>,
    /// Whether the writer merges a staged tree: symlinks in the parents of
    /// a target are rejected instead of followed, and existing directories
    /// keep their metadata.
    merging: bool,
    /// The first target written for each source inode with several links.
    links: RefCell<HashMap<(u64, u64), PathBuf>>,
}

impl RootWriter {
    /// Opens `root` for writing entries with the mode change `chmod`.
    pub(crate) fn open(root: &Path, chmod: Option<Chmod>) -> Result<Self, CopyError> {
        Ok(Self {
            root_fd: open_directory(root)?,
            root: root.to_path_buf(),
            chmod,
            merging: false,
            links: RefCell::new(HashMap::new()),
        })
    }

    /// Opens `root` for merging a staged tree into it top-down. A symlink
    /// met where the tree has a directory is replaced by that directory
    /// before the directory's entries are written, so no parent of a target
    /// may be a symlink.
    pub(crate) fn open_for_merge(root: &Path) -> Result<Self, CopyError> {
        Ok(Self {
            merging: true,
            ..Self::open(root, None)?
        })
    }

    /// Opens the same root in the same mode, without `--chmod`.
    pub(crate) fn without_chmod(&self) -> Result<Self, CopyError> {
        Ok(Self {
            merging: self.merging,
            ..Self::open(&self.root, None)?
        })
    }

    /// Resolves every symlink of `path` inside the root, the last component
    /// included, even when its target does not exist yet, so that a copy to
    /// a symlink writes its target. Buildah 1.28 does the same.
    pub(crate) fn resolve_symlinks(&self, path: &Path) -> Result<PathBuf, CopyError> {
        let mut resolved = PathBuf::from("/");
        let mut pending: Vec<OsString> = components_reversed(path);
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                resolved.pop();
                continue;
            }
            let candidate = resolved.join(&part);
            // Every component of `resolved` is a directory or missing, never
            // a symlink, so reading the link relative to the root descriptor
            // follows nothing.
            let relative = candidate.strip_prefix("/").unwrap_or(&candidate);
            let Ok(target) = rustix::fs::readlinkat(&self.root_fd, relative, Vec::new()) else {
                resolved = candidate;
                continue;
            };
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                let loop_error =
                    io::Error::from_raw_os_error(rustix::io::Errno::LOOP.raw_os_error());
                return Err(io_error(path)(loop_error));
            }
            let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
            if target.is_absolute() {
                resolved = PathBuf::from("/");
            }
            pending.extend(components_reversed(&target));
        }
        Ok(resolved)
    }

    /// Returns whether `path` resolves to a directory inside the root.
    pub(crate) fn is_directory(&self, path: &Path) -> bool {
        open_in(&self.root_fd, path, OFlags::DIRECTORY | OFlags::RDONLY).is_ok()
    }

    /// Creates `directory` and its missing parents, owned by `owner`.
    /// Existing directories keep their owner and mode.
    pub(crate) fn create_directory(&self, directory: &Path, owner: Owner) -> Result<(), CopyError> {
        let (uid, gid) = owner.of_created_directories();
        crate::stage::create_directory_in_root(&self.root, directory, uid, gid)
            .map_err(io_error(directory))
    }

    /// Copies the contents of the directory at `source` into `target`,
    /// keeping symlinks as links, and skipping what `filters` exclude.
    pub(crate) fn copy_tree(
        &self,
        source: &Path,
        target: &Path,
        owner: Owner,
        filters: &TreeFilters<'_>,
    ) -> Result<(), CopyError> {
        self.copy_tree_at(source, Path::new(""), target, owner, filters)
    }

    fn copy_tree_at(
        &self,
        source: &Path,
        relative: &Path,
        target: &Path,
        owner: Owner,
        filters: &TreeFilters<'_>,
    ) -> Result<(), CopyError> {
        let context_path = filters.context_path.join(relative);
        let mut entries: Vec<_> = fs::read_dir(source)
            .map_err(io_error(&context_path))?
            .collect::<Result<_, _>>()
            .map_err(io_error(&context_path))?;
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name();
            let entry_relative = relative.join(&name);
            let metadata = entry.metadata().map_err(io_error(&entry_relative))?;
            let excluded = is_excluded(filters, &entry_relative);
            if excluded && !(metadata.is_dir() && has_exceptions(filters)) {
                continue;
            }
            let entry_target = target.join(&name);
            if metadata.is_dir() {
                if excluded {
                    // An exception such as `!dir/keep` may still select
                    // entries below an excluded directory.
                    self.create_directory(&entry_target, owner)?;
                } else {
                    self.copy_entry(&entry.path(), &metadata, &entry_target, owner)?;
                }
                self.copy_tree_at(
                    &entry.path(),
                    &entry_relative,
                    &entry_target,
                    owner,
                    filters,
                )?;
            } else {
                self.copy_entry(&entry.path(), &metadata, &entry_target, owner)?;
            }
        }
        Ok(())
    }

    /// Creates `target` in the root as a copy of the file, directory or
    /// symlink at `source`, replacing a non-directory that is there. A file
    /// whose inode was copied before in this instruction becomes a hardlink
    /// to that copy.
    pub(crate) fn copy_entry(
        &self,
        source: &Path,
        metadata: &fs::Metadata,
        target: &Path,
        owner: Owner,
    ) -> Result<(), CopyError> {
        let (parent, name) = self.open_parent(target)?;
        let write_error = io_error(target);
        let existing_is_dir = remove_existing(&parent, name, metadata.is_dir())
            .map_err(|error| write_error(error.into()))?;

        let file_type = metadata.file_type();
        if file_type.is_symlink() {
            let link = fs::read_link(source).map_err(io_error(source))?;
            rustix::fs::symlinkat(&link, &parent, name).map_err(|e| write_error(e.into()))?;
        } else if file_type.is_dir() {
            if existing_is_dir && self.merging {
                return Ok(());
            }
            if !existing_is_dir {
                rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| write_error(e.into()))?;
            }
        } else if file_type.is_file() {
            if self.link_to_earlier_copy(metadata, &parent, name, target)? {
                return Ok(());
            }
            copy_file_contents(source, &parent, name).map_err(&write_error)?;
        } else if let Some(special) = special_file_type(&file_type) {
            rustix::fs::mknodat(
                &parent,
                name,
                special,
                Mode::from_raw_mode(0o600),
                metadata.rdev(),
            )
            .map_err(|e| write_error(e.into()))?;
        } else {
            // A socket only exists while its server runs, so no copy of one
            // is useful.
            tracing::debug!(path = %source.display(), "skipping a socket");
            return Ok(());
        }
        let mode = metadata.permissions().mode() & 0o7777;
        let mode = self
            .chmod
            .as_ref()
            .map_or(mode, |chmod| chmod.apply(mode, file_type.is_dir()));
        let (uid, gid) = match owner {
            Owner::Fixed(uid, gid) => (uid, gid),
            Owner::Source => (metadata.uid(), metadata.gid()),
        };
        set_metadata(&parent, name, metadata, uid, gid, mode).map_err(|e| write_error(e.into()))?;
        // After chown, which clears security.capability.
        copy_xattrs(source, &parent, name);
        Ok(())
    }

    /// Opens the parent of `target` inside the root and returns it with the
    /// last component.
    fn open_parent<'t>(&self, target: &'t Path) -> Result<(OwnedFd, &'t Path), CopyError> {
        let parent_path = target.parent().unwrap_or(Path::new("/"));
        let name = target.file_name().map_or(Path::new("."), Path::new);
        let flags = OFlags::DIRECTORY | OFlags::RDONLY;
        let parent = if self.merging {
            open_beneath(&self.root_fd, parent_path, flags)
        } else {
            open_in(&self.root_fd, parent_path, flags)
        };
        let parent = parent.map_err(io_error(parent_path))?;
        Ok((parent, name))
    }

    /// Links `name` in `parent` to the earlier copy of the same source inode
    /// and returns true, or records `target` as the first copy and returns
    /// false.
    fn link_to_earlier_copy(
        &self,
        metadata: &fs::Metadata,
        parent: &OwnedFd,
        name: &Path,
        target: &Path,
    ) -> Result<bool, CopyError> {
        if metadata.nlink() < 2 {
            return Ok(false);
        }
        let key = (metadata.dev(), metadata.ino());
        let first = self.links.borrow().get(&key).cloned();
        let Some(first) = first else {
            self.links.borrow_mut().insert(key, target.to_path_buf());
            return Ok(false);
        };
        let (first_parent, first_name) = self.open_parent(&first)?;
        rustix::fs::linkat(&first_parent, first_name, parent, name, AtFlags::empty())
            .map_err(|error| io_error(target)(error.into()))?;
        Ok(true)
    }
}

fn special_file_type(file_type: &fs::FileType) -> Option<FileType> {
    if file_type.is_char_device() {
        Some(FileType::CharacterDevice)
    } else if file_type.is_block_device() {
        Some(FileType::BlockDevice)
    } else if file_type.is_fifo() {
        Some(FileType::Fifo)
    } else {
        None
    }
}

/// Copies the extended attributes of `source` to `name` in `parent`. An
/// attribute that the target filesystem or the kernel rejects is skipped
/// with a debug event.
fn copy_xattrs(source: &Path, parent: &OwnedFd, name: &Path) {
    // A source given as /proc/self/fd/N was opened by the copy itself, so
    // the link is followed to the file. Any other source is read in place.
    let follow = source.parent() == Some(Path::new("/proc/self/fd"));
    let names = if follow {
        xattr::list_deref(source)
    } else {
        xattr::list(source)
    };
    let Ok(names) = names else {
        return;
    };
    let target = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(name);
    for attribute in names {
        let value = if follow {
            xattr::get_deref(source, &attribute)
        } else {
            xattr::get(source, &attribute)
        };
        let Ok(Some(value)) = value else {
            continue;
        };
        if let Err(error) = xattr::set(&target, &attribute, &value) {
            tracing::debug!(
                path = %target.display(),
                attribute = %attribute.to_string_lossy(),
                %error,
                "skipping an extended attribute"
            );
        }
    }
}

/// The symlinks followed in one path before resolution fails, as Linux
/// limits them (`MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: usize = 40;

/// Returns the normal and `..` components of `path`, last first.
fn components_reversed(path: &Path) -> Vec<OsString> {
    path.components()
        .rev()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Opens `path` inside `base` and fails when any component is a symlink.
fn open_beneath(base: &impl AsFd, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let relative = path.strip_prefix("/").unwrap_or(path);
    let relative = if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    };
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let fd = rustix::fs::openat2(
        base,
        relative,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    )?;
    Ok(fd)
}

fn is_excluded(filters: &TreeFilters<'_>, relative: &Path) -> bool {
    let context_path = filters.context_path.join(relative);
    let ignored = filters
        .ignore
        .is_some_and(|matcher| matcher.is_excluded(&context_path.to_string_lossy()));
    let excluded = filters
        .exclude
        .is_some_and(|matcher| matcher.is_excluded(&relative.to_string_lossy()));
    ignored || excluded
}

fn has_exceptions(filters: &TreeFilters<'_>) -> bool {
    filters.ignore.is_some_and(IgnoreMatcher::has_exceptions)
        || filters.exclude.is_some_and(IgnoreMatcher::has_exceptions)
}

/// Removes what is at `name` unless both it and the new entry are
/// directories, and returns whether a directory stays there.
fn remove_existing(parent: &OwnedFd, name: &Path, new_is_dir: bool) -> rustix::io::Result<bool> {
    let Ok(existing) = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return Ok(false);
    };
    let existing_is_dir = FileType::from_raw_mode(existing.st_mode).is_dir();
    if new_is_dir && existing_is_dir {
        return Ok(true);
    }
    if existing_is_dir {
        // NOTE: only an empty directory can be replaced by a file or link,
        // so a non-empty one fails the copy.
        rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
    } else {
        rustix::fs::unlinkat(parent, name, AtFlags::empty())?;
    }
    Ok(false)
}

fn copy_file_contents(source: &Path, parent: &OwnedFd, name: &Path) -> io::Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(parent, name, flags, Mode::from_raw_mode(0o600))?;
    let mut output = File::from(fd);
    let mut input = File::open(source)?;
    io::copy(&mut input, &mut output)?;
    Ok(())
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
    let time = Timespec {
        tv_sec: metadata.mtime(),
        tv_nsec: metadata.mtime_nsec() as _,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(parent, name, &times, nofollow)
}

pub(crate) fn io_error(path: &Path) -> impl Fn(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn open_directory(path: &Path) -> Result<OwnedFd, CopyError> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|error| io_error(path)(error.into()))
}

/// Opens `path` (absolute or relative) inside the directory `base` as if
/// `base` were `/`.
pub(crate) fn open_in(base: &impl AsFd, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_root() {
        let root = tempfile::tempdir().expect("temporary root");
        fs::create_dir(root.path().join("real")).expect("create real");
        symlink("/real", root.path().join("absolute")).expect("symlink");
        symlink("../../real/file", root.path().join("real/relative")).expect("symlink");
        symlink("/../../outside", root.path().join("escape")).expect("symlink");
        let writer = RootWriter::open(root.path(), None).expect("open root");
        let resolve = |path: &str| writer.resolve_symlinks(Path::new(path)).expect("resolve");
        assert_eq!(resolve("/absolute/x"), Path::new("/real/x"));
        assert_eq!(resolve("/real/relative"), Path::new("/real/file"));
        assert_eq!(resolve("/escape"), Path::new("/outside"));
        assert_eq!(resolve("/missing/../real"), Path::new("/real"));
    }

    #[test]
    fn symlink_loops_fail() {
        let root = tempfile::tempdir().expect("temporary root");
        symlink("/b", root.path().join("a")).expect("symlink");
        symlink("/a", root.path().join("b")).expect("symlink");
        let writer = RootWriter::open(root.path(), None).expect("open root");
        assert!(writer.resolve_symlinks(Path::new("/a")).is_err());
    }
}
