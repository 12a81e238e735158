//! The walk snapshotter: a stat walk of the whole tree before and after a
//! step, for machines without overlayfs.

use crate::changes::{ChangeSet, Snapshotter};
use crate::digest::{HashingWriter, Sha256Digest};
use crate::error::{SnapshotError, read_error};
use crate::metadata::read_xattrs;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt};
use std::path::{Path, PathBuf};

/// Settings of the walk snapshotter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkOptions {
    /// Also hash the contents of every regular file, to catch a rewrite that
    /// keeps size, mtime and ctime. Costs a read of the whole tree per step.
    pub hash_contents: bool,
}

/// The metadata that the walk compares for one path.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileState {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    inode: u64,
    rdev: u64,
    link_target: Option<PathBuf>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    content: Option<Sha256Digest>,
}

impl FileState {
    fn is_dir(&self) -> bool {
        self.mode & libc_mode::S_IFMT == libc_mode::S_IFDIR
    }
}

mod libc_mode {
    pub(super) const S_IFMT: u32 = 0o170_000;
    pub(super) const S_IFDIR: u32 = 0o040_000;
}

type Tree = BTreeMap<PathBuf, FileState>;

/// Compares stat walks of a root directory taken before and after a step.
///
/// Cost grows with the size of the tree: one `lstat` and one `llistxattr`
/// per path and step, plus a full read with
/// [`WalkOptions::hash_contents`]. The walk taken at the end of a step is
/// the baseline of the next one, so changes made between two steps are
/// recorded in the second.
#[derive(Debug)]
pub struct WalkSnapshotter {
    root: PathBuf,
    options: WalkOptions,
    baseline: Option<Tree>,
}

impl WalkSnapshotter {
    /// Creates a snapshotter of the tree under `root`.
    pub fn new(root: PathBuf, options: WalkOptions) -> Self {
        Self {
            root,
            options,
            baseline: None,
        }
    }

    fn scan(&self) -> Result<Tree, SnapshotError> {
        let mut tree = Tree::new();
        let walk = walkdir::WalkDir::new(&self.root)
            .min_depth(1)
            .follow_links(false)
            .same_file_system(true);
        for item in walk {
            let item = item.map_err(|e| {
                let path = e.path().unwrap_or(&self.root).to_path_buf();
                SnapshotError::Read {
                    path,
                    source: e.into(),
                }
            })?;
            let relative = item.path().strip_prefix(&self.root).unwrap_or(item.path());
            let state = self.state_of(item.path())?;
            tree.insert(relative.to_path_buf(), state);
        }
        Ok(tree)
    }

    fn state_of(&self, path: &Path) -> Result<FileState, SnapshotError> {
        let meta = path.symlink_metadata().map_err(read_error(path))?;
        let file_type = meta.file_type();
        let link_target = if file_type.is_symlink() {
            Some(std::fs::read_link(path).map_err(read_error(path))?)
        } else {
            None
        };
        let content = if self.options.hash_contents && file_type.is_file() {
            Some(hash_file(path).map_err(read_error(path))?)
        } else {
            None
        };
        let rdev = if file_type.is_char_device() || file_type.is_block_device() {
            meta.rdev()
        } else {
            0
        };
        Ok(FileState {
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: if meta.is_dir() { 0 } else { meta.len() },
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
            rdev,
            link_target,
            xattrs: read_xattrs(path).map_err(read_error(path))?,
            content,
        })
    }
}

fn hash_file(path: &Path) -> io::Result<Sha256Digest> {
    let mut hasher = HashingWriter::new(io::sink());
    io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(hasher.finish().1)
}

/// Returns the changes between two walks. A deleted directory, or one
/// replaced by another file type, hides its children, so they are not
/// listed as deleted.
fn diff(before: &Tree, after: &Tree) -> ChangeSet {
    let mut changes = ChangeSet::default();
    for (path, new) in after {
        match before.get(path) {
            None => changes.added.push(path.clone()),
            Some(old) if old != new => changes.modified.push(path.clone()),
            Some(_) => {}
        }
    }
    let mut hidden: Option<&Path> = None;
    for (path, old) in before {
        if hidden.is_some_and(|dir| path.starts_with(dir)) {
            continue;
        }
        match after.get(path) {
            None => {
                changes.deleted.push(path.clone());
                hidden = Some(path);
            }
            Some(new) if old.is_dir() && !new.is_dir() => hidden = Some(path),
            Some(_) => {}
        }
    }
    changes
}

impl Snapshotter for WalkSnapshotter {
    fn begin_step(&mut self) -> Result<PathBuf, SnapshotError> {
        if self.baseline.is_none() {
            self.baseline = Some(self.scan()?);
        }
        Ok(self.root.clone())
    }

    fn end_step(&mut self) -> Result<ChangeSet, SnapshotError> {
        let before = self.baseline.take().ok_or(SnapshotError::NoStep)?;
        let after = self.scan()?;
        let changes = diff(&before, &after);
        tracing::debug!(
            root = %self.root.display(),
            paths = after.len(),
            added = changes.added.len(),
            modified = changes.modified.len(),
            deleted = changes.deleted.len(),
            "walk snapshot taken"
        );
        self.baseline = Some(after);
        Ok(changes)
    }

    fn layer_source(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn step(root: &Path, change: impl FnOnce(&Path)) -> ChangeSet {
        let mut snapshotter = WalkSnapshotter::new(root.to_path_buf(), WalkOptions::default());
        snapshotter.begin_step().unwrap();
        change(root);
        let mut changes = snapshotter.end_step().unwrap();
        changes.sort();
        changes
    }

    #[test]
    fn deleted_directory_yields_one_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b/c")).unwrap();
        fs::write(dir.path().join("a/b/c/f"), "x").unwrap();
        let changes = step(dir.path(), |root| {
            fs::remove_dir_all(root.join("a/b")).unwrap();
        });
        assert_eq!(changes.deleted, vec![PathBuf::from("a/b")]);
        assert_eq!(changes.modified, vec![PathBuf::from("a")]);
        assert!(changes.added.is_empty());
    }

    #[test]
    fn added_file_and_parent_change() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        let changes = step(dir.path(), |root| {
            fs::write(root.join("etc/new"), "x").unwrap();
        });
        assert_eq!(changes.added, vec![PathBuf::from("etc/new")]);
        assert_eq!(changes.modified, vec![PathBuf::from("etc")]);
    }

    #[test]
    fn directory_replaced_by_file_hides_children() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/child"), "x").unwrap();
        let changes = step(dir.path(), |root| {
            fs::remove_dir_all(root.join("d")).unwrap();
            fs::write(root.join("d"), "now a file").unwrap();
        });
        assert_eq!(changes.modified, vec![PathBuf::from("d")]);
        assert!(changes.deleted.is_empty());
    }

    #[test]
    fn content_hash_catches_same_stat_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "aaaa").unwrap();
        let options = WalkOptions {
            hash_contents: true,
        };
        let snapshotter = WalkSnapshotter::new(dir.path().to_path_buf(), options);
        let before = snapshotter.scan().unwrap();
        fs::write(&file, "bbbb").unwrap();
        let mut after = snapshotter.scan().unwrap();
        // Pretend the stat did not change, as on filesystems with coarse
        // timestamps: only the content hash differs.
        let old = &before[Path::new("f")];
        let new = after.get_mut(Path::new("f")).unwrap();
        new.mtime = old.mtime;
        new.ctime = old.ctime;
        assert_eq!(diff(&before, &after).modified, vec![PathBuf::from("f")]);
    }

    #[test]
    fn unchanged_tree_yields_no_changes() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), "x").unwrap();
        let changes = step(dir.path(), |_| {});
        assert!(changes.is_empty());
    }
}
