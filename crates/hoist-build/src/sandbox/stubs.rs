//! Mount points that the image lacks: created before a RUN step and removed
//! after it, so that they stay out of the step's layer.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;

/// The mount points of the sandbox, parents first, and whether each is a
/// directory.
const MOUNT_POINTS: [(&str, bool); 5] = [
    ("proc", true),
    ("dev", true),
    ("etc", true),
    ("etc/resolv.conf", false),
    ("etc/hosts", false),
];

/// One mount point created for a step.
#[derive(Debug)]
struct Stub {
    relative: PathBuf,
    directory: bool,
    parent_times: Timestamps,
}

/// The mount points created in a root, removed on drop.
///
/// [`Sandbox::run`](super::Sandbox::run) creates them for each step. A
/// build that snapshots the root creates them once before its first
/// snapshot and drops them after its last one, so that neither their
/// creation nor their removal shows up as a change.
#[derive(Debug)]
pub struct MountPointStubs {
    root: PathBuf,
    created: Vec<Stub>,
}

impl MountPointStubs {
    /// Creates every mount point that `root` lacks. A path that exists in
    /// any form, a dangling symlink included, is left alone.
    pub fn create(root: &Path) -> io::Result<Self> {
        Self::create_with(root, &[])
    }

    /// Creates every mount point that `root` lacks, and each of `extra`
    /// with its missing parent directories. An extra entry is a path
    /// relative to the root and whether it is a directory.
    pub fn create_with(root: &Path, extra: &[(PathBuf, bool)]) -> io::Result<Self> {
        let mut stubs = Self {
            root: root.to_path_buf(),
            created: Vec::new(),
        };
        let fixed = MOUNT_POINTS
            .iter()
            .map(|(relative, directory)| (PathBuf::from(relative), *directory));
        let extra = extra
            .iter()
            .flat_map(|(relative, directory)| with_parents(relative, *directory));
        for (relative, directory) in fixed.chain(extra) {
            if let Err(error) = stubs.create_one(&relative, directory) {
                stubs.remove();
                return Err(error);
            }
        }
        Ok(stubs)
    }

    fn create_one(&mut self, relative: &Path, directory: bool) -> io::Result<()> {
        let (parent, name) = split(relative);
        // A parent that does not resolve to a directory inside the root gets
        // no stub: the helper skips mount points that it cannot find.
        let parent_fd = match open_in_root(&self.root, parent) {
            Ok(fd) => fd,
            Err(error) if is_missing(&error) => return Ok(()),
            Err(error) => return Err(error),
        };
        match rustix::fs::statat(&parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => return Ok(()),
            Err(Errno::NOENT) => {}
            Err(error) => return Err(error.into()),
        }
        let parent_stat = rustix::fs::fstat(&parent_fd)?;
        let parent_times = Timestamps {
            last_access: Timespec {
                tv_sec: parent_stat.st_atime,
                tv_nsec: parent_stat.st_atime_nsec as _,
            },
            last_modification: Timespec {
                tv_sec: parent_stat.st_mtime,
                tv_nsec: parent_stat.st_mtime_nsec as _,
            },
        };
        if directory {
            rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o755))?;
        } else {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
            rustix::fs::openat(&parent_fd, name, flags, Mode::from_raw_mode(0o644))?;
        }
        self.created.push(Stub {
            relative: relative.to_path_buf(),
            directory,
            parent_times,
        });
        Ok(())
    }

    /// Removes the stubs that are still empty, children first, and gives
    /// their parents back their earlier times. Failures are logged, because
    /// a leftover stub only adds an empty path to the layer.
    pub fn remove(&mut self) {
        while let Some(stub) = self.created.pop() {
            if let Err(error) = remove_stub(&self.root, &stub) {
                tracing::warn!(
                    path = %stub.relative.display(),
                    %error,
                    "failed to remove a mount point stub"
                );
            }
        }
    }
}

impl Drop for MountPointStubs {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Returns the parent directories of `relative`, outermost first, then
/// `relative` itself.
fn with_parents(relative: &Path, directory: bool) -> Vec<(PathBuf, bool)> {
    let mut paths: Vec<(PathBuf, bool)> = relative
        .ancestors()
        .skip(1)
        .filter(|parent| !parent.as_os_str().is_empty())
        .map(|parent| (parent.to_path_buf(), true))
        .collect();
    paths.reverse();
    paths.push((relative.to_path_buf(), directory));
    paths
}

/// Tells whether `relative` names a directory inside `tree`, resolved
/// without leaving it. A path that cannot be resolved counts as one.
pub(crate) fn is_directory_in(tree: &Path, relative: &Path) -> bool {
    let Ok(tree_fd) = open_in_root(tree, Path::new("")) else {
        return true;
    };
    let opened = rustix::fs::openat2(
        &tree_fd,
        relative,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    );
    match opened.and_then(|fd| rustix::fs::fstat(&fd)) {
        Ok(stat) => FileType::from_raw_mode(stat.st_mode) == FileType::Directory,
        Err(_) => true,
    }
}

fn split(relative: &Path) -> (&Path, &Path) {
    let parent = relative.parent().unwrap_or(Path::new(""));
    let name = relative
        .file_name()
        .map_or(Path::new(""), |name| Path::new(name));
    (parent, name)
}

fn is_missing(error: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(error),
        Some(Errno::NOENT | Errno::NOTDIR | Errno::LOOP)
    )
}

fn open_in_root(root: &Path, relative: &Path) -> io::Result<OwnedFd> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if relative.as_os_str().is_empty() {
        return Ok(root_fd);
    }
    let fd = rustix::fs::openat2(
        &root_fd,
        relative,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(fd)
}

fn remove_stub(root: &Path, stub: &Stub) -> io::Result<()> {
    let (parent, name) = split(&stub.relative);
    let parent_fd = open_in_root(root, parent)?;
    let stat = match rustix::fs::statat(&parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    let file_type = FileType::from_raw_mode(stat.st_mode);
    let removed = if stub.directory && file_type == FileType::Directory {
        match rustix::fs::unlinkat(&parent_fd, name, AtFlags::REMOVEDIR) {
            Ok(()) => true,
            Err(Errno::NOTEMPTY | Errno::EXIST | Errno::BUSY) => false,
            Err(error) => return Err(error.into()),
        }
    } else if !stub.directory && file_type == FileType::RegularFile && stat.st_size == 0 {
        rustix::fs::unlinkat(&parent_fd, name, AtFlags::empty())?;
        true
    } else {
        false
    };
    if removed {
        rustix::fs::futimens(&parent_fd, &stub.parent_times)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_vanish_after_removal() {
        let root = tempfile::tempdir().expect("temporary directory");
        let mut stubs = MountPointStubs::create(root.path()).expect("create stubs");
        assert!(root.path().join("proc").is_dir());
        assert!(root.path().join("etc/hosts").is_file());
        stubs.remove();
        let left: Vec<_> = std::fs::read_dir(root.path()).expect("read root").collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn existing_paths_are_kept() {
        let root = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(root.path().join("etc")).expect("create etc");
        std::fs::write(root.path().join("etc/hosts"), "127.0.0.1 here\n").expect("write hosts");
        drop(MountPointStubs::create(root.path()).expect("create stubs"));
        let hosts = std::fs::read_to_string(root.path().join("etc/hosts")).expect("read hosts");
        assert_eq!(hosts, "127.0.0.1 here\n");
        assert!(!root.path().join("etc/resolv.conf").exists());
        assert!(!root.path().join("proc").exists());
    }

    #[test]
    fn symlinked_etc_stays_in_root() {
        let outside = tempfile::tempdir().expect("temporary directory");
        let root = tempfile::tempdir().expect("temporary directory");
        let target = format!("../../../../../..{}", outside.path().display());
        std::os::unix::fs::symlink(target, root.path().join("etc")).expect("symlink");
        drop(MountPointStubs::create(root.path()).expect("create stubs"));
        let left: Vec<_> = std::fs::read_dir(outside.path())
            .expect("read outside")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn extra_mount_point_gets_parents() {
        let root = tempfile::tempdir().expect("temporary directory");
        let extra = [(PathBuf::from("run/secrets/token"), false)];
        let mut stubs = MountPointStubs::create_with(root.path(), &extra).expect("create stubs");
        assert!(root.path().join("run/secrets").is_dir());
        assert!(root.path().join("run/secrets/token").is_file());
        stubs.remove();
        assert!(!root.path().join("run").exists());
    }

    #[test]
    fn filled_directory_stub_is_kept() {
        let root = tempfile::tempdir().expect("temporary directory");
        let mut stubs = MountPointStubs::create(root.path()).expect("create stubs");
        std::fs::write(root.path().join("etc/written"), "x").expect("write into stub");
        stubs.remove();
        assert!(root.path().join("etc/written").is_file());
        assert!(!root.path().join("etc/hosts").exists());
        assert!(!root.path().join("proc").exists());
    }
}
