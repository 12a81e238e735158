//! Comparison of two root filesystems, for differential tests against a
//! peer builder: paths, file types, modes, owners, sizes, SHA-256 of
//! contents, symlink targets, device numbers and extended attributes.
//!
//! Modification times are not compared, because builders set them to the
//! build time unless configured otherwise. Hard links are compared as separate
//! files; which paths share an inode is not checked.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result, io_error};

/// The kind of a file system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
}

impl FileKind {
    fn of(file_type: fs::FileType) -> Self {
        if file_type.is_dir() {
            Self::Directory
        } else if file_type.is_symlink() {
            Self::Symlink
        } else if file_type.is_char_device() {
            Self::CharDevice
        } else if file_type.is_block_device() {
            Self::BlockDevice
        } else if file_type.is_fifo() {
            Self::Fifo
        } else if file_type.is_socket() {
            Self::Socket
        } else {
            Self::File
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::File => "file",
            Self::Directory => "directory",
            Self::Symlink => "symlink",
            Self::CharDevice => "character device",
            Self::BlockDevice => "block device",
            Self::Fifo => "fifo",
            Self::Socket => "socket",
        };
        formatter.write_str(name)
    }
}

/// A difference at one path. "Left" is the first tree, "right" the second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DifferenceKind {
    /// The path exists only in the left tree (for a directory: the whole
    /// subtree, which is not listed entry by entry).
    OnlyInLeft,
    /// The path exists only in the right tree.
    OnlyInRight,
    /// The entries are of different kinds; nothing else is compared then.
    Kind {
        /// Left kind.
        left: FileKind,
        /// Right kind.
        right: FileKind,
    },
    /// Permission bits, including setuid, setgid and sticky.
    Mode {
        /// Left mode.
        left: u32,
        /// Right mode.
        right: u32,
    },
    /// Owner uid and gid.
    Owner {
        /// Left `(uid, gid)`.
        left: (u32, u32),
        /// Right `(uid, gid)`.
        right: (u32, u32),
    },
    /// Size of a regular file; contents are not compared then.
    Size {
        /// Left size in bytes.
        left: u64,
        /// Right size in bytes.
        right: u64,
    },
    /// Contents of regular files of equal size.
    Content {
        /// SHA-256 of the left contents, hex.
        left: String,
        /// SHA-256 of the right contents, hex.
        right: String,
    },
    /// Symlink target.
    LinkTarget {
        /// Left target.
        left: PathBuf,
        /// Right target.
        right: PathBuf,
    },
    /// Device number of a device node.
    Device {
        /// Left `rdev`.
        left: u64,
        /// Right `rdev`.
        right: u64,
    },
    /// One extended attribute; `None` where it is missing.
    Xattr {
        /// The attribute name, such as `security.capability`.
        name: String,
        /// Left value.
        left: Option<Vec<u8>>,
        /// Right value.
        right: Option<Vec<u8>>,
    },
}

/// The aspect of an entry a [`DifferenceKind`] is about, for exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aspect {
    /// [`DifferenceKind::OnlyInLeft`] and [`DifferenceKind::OnlyInRight`].
    Presence,
    /// [`DifferenceKind::Kind`].
    Kind,
    /// [`DifferenceKind::Mode`].
    Mode,
    /// [`DifferenceKind::Owner`].
    Owner,
    /// [`DifferenceKind::Size`] and [`DifferenceKind::Content`].
    Content,
    /// [`DifferenceKind::LinkTarget`].
    LinkTarget,
    /// [`DifferenceKind::Device`].
    Device,
    /// [`DifferenceKind::Xattr`].
    Xattr,
}

impl DifferenceKind {
    /// Returns the aspect this difference is about.
    pub fn aspect(&self) -> Aspect {
        match self {
            Self::OnlyInLeft | Self::OnlyInRight => Aspect::Presence,
            Self::Kind { .. } => Aspect::Kind,
            Self::Mode { .. } => Aspect::Mode,
            Self::Owner { .. } => Aspect::Owner,
            Self::Size { .. } | Self::Content { .. } => Aspect::Content,
            Self::LinkTarget { .. } => Aspect::LinkTarget,
            Self::Device { .. } => Aspect::Device,
            Self::Xattr { .. } => Aspect::Xattr,
        }
    }
}

/// A difference at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The path inside the trees, absolute as seen from inside (`/etc/passwd`).
    pub path: PathBuf,
    /// What differs.
    pub kind: DifferenceKind,
}

impl fmt::Display for Difference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.kind {
            DifferenceKind::OnlyInLeft => write!(formatter, "{path}: only in left"),
            DifferenceKind::OnlyInRight => write!(formatter, "{path}: only in right"),
            DifferenceKind::Kind { left, right } => {
                write!(formatter, "{path}: kind {left} != {right}")
            }
            DifferenceKind::Mode { left, right } => {
                write!(formatter, "{path}: mode {left:04o} != {right:04o}")
            }
            DifferenceKind::Owner { left, right } => write!(
                formatter,
                "{path}: owner {}:{} != {}:{}",
                left.0, left.1, right.0, right.1
            ),
            DifferenceKind::Size { left, right } => {
                write!(formatter, "{path}: size {left} != {right}")
            }
            DifferenceKind::Content { left, right } => {
                write!(formatter, "{path}: content sha256 {left} != {right}")
            }
            DifferenceKind::LinkTarget { left, right } => write!(
                formatter,
                "{path}: link target {} != {}",
                left.display(),
                right.display()
            ),
            DifferenceKind::Device { left, right } => {
                write!(formatter, "{path}: device {left:#x} != {right:#x}")
            }
            DifferenceKind::Xattr { name, left, right } => write!(
                formatter,
                "{path}: xattr {name} {} != {}",
                xattr_text(left.as_deref()),
                xattr_text(right.as_deref())
            ),
        }
    }
}

fn xattr_text(value: Option<&[u8]>) -> String {
    match value {
        None => "(missing)".to_owned(),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => format!("{text:?}"),
            _ => format!("0x{}", hex::encode(bytes)),
        },
    }
}

/// A known difference to leave out of a comparison: all differences at a
/// path or in a subtree, optionally only those about one [`Aspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    path: PathBuf,
    subtree: bool,
    aspect: Option<Aspect>,
}

impl Exception {
    /// Ignores differences at exactly `path` (absolute, as in [`Difference::path`]).
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            subtree: false,
            aspect: None,
        }
    }

    /// Ignores differences at `path` and everything below it.
    pub fn subtree(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            subtree: true,
            aspect: None,
        }
    }

    /// Narrows the exception to differences about `aspect`.
    pub fn only(mut self, aspect: Aspect) -> Self {
        self.aspect = Some(aspect);
        self
    }

    /// Tells whether this exception covers `difference`.
    pub fn covers(&self, difference: &Difference) -> bool {
        let path_matches = if self.subtree {
            difference.path.starts_with(&self.path)
        } else {
            difference.path == self.path
        };
        let aspect_matches = self
            .aspect
            .is_none_or(|aspect| aspect == difference.kind.aspect());
        path_matches && aspect_matches
    }
}

/// The differences between two trees, in path order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Differences {
    left: PathBuf,
    right: PathBuf,
    list: Vec<Difference>,
}

impl Differences {
    /// Tells whether the trees are equal (apart from the exceptions).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Returns the number of differences.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Returns the differences, in path order.
    pub fn as_slice(&self) -> &[Difference] {
        &self.list
    }

    /// Consumes the list and returns the differences.
    pub fn into_vec(self) -> Vec<Difference> {
        self.list
    }
}

impl fmt::Display for Differences {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.list.is_empty() {
            return write!(
                formatter,
                "{} and {} are equal",
                self.left.display(),
                self.right.display()
            );
        }
        writeln!(
            formatter,
            "{} differences between left {} and right {}:",
            self.list.len(),
            self.left.display(),
            self.right.display()
        )?;
        for difference in &self.list {
            writeln!(formatter, "  {difference}")?;
        }
        Ok(())
    }
}

/// Compares the trees at `left` and `right` and returns every difference.
pub fn compare_rootfs(left: &Path, right: &Path) -> Result<Differences> {
    compare_rootfs_except(left, right, &[])
}

/// Compares the trees at `left` and `right` and returns the differences
/// that no exception in `exceptions` covers.
pub fn compare_rootfs_except(
    left: &Path,
    right: &Path,
    exceptions: &[Exception],
) -> Result<Differences> {
    let left_entries = list_tree(left)?;
    let right_entries = list_tree(right)?;
    let mut list = Vec::new();
    let mut missing_dirs: Vec<PathBuf> = Vec::new();

    let all_paths: std::collections::BTreeSet<&PathBuf> =
        left_entries.keys().chain(right_entries.keys()).collect();
    for path in all_paths {
        if missing_dirs.iter().any(|dir| path.starts_with(dir)) {
            continue;
        }
        let inside = Path::new("/").join(path);
        match (left_entries.get(path), right_entries.get(path)) {
            (Some(entry), None) | (None, Some(entry)) => {
                let kind = if left_entries.contains_key(path) {
                    DifferenceKind::OnlyInLeft
                } else {
                    DifferenceKind::OnlyInRight
                };
                if entry.kind == FileKind::Directory {
                    missing_dirs.push(path.clone());
                }
                list.push(Difference { path: inside, kind });
            }
            (Some(left_entry), Some(right_entry)) => {
                let left_path = left.join(path);
                let right_path = right.join(path);
                for kind in compare_entries(left_entry, right_entry, &left_path, &right_path)? {
                    list.push(Difference {
                        path: inside.clone(),
                        kind,
                    });
                }
            }
            (None, None) => {}
        }
    }
    list.retain(|difference| {
        !exceptions
            .iter()
            .any(|exception| exception.covers(difference))
    });
    Ok(Differences {
        left: left.to_path_buf(),
        right: right.to_path_buf(),
        list,
    })
}

/// The metadata of one entry that the comparison uses.
struct Entry {
    kind: FileKind,
    mode: u32,
    owner: (u32, u32),
    size: u64,
    rdev: u64,
}

/// Lists every entry below `root` (the root itself as the empty path)
/// without following symlinks.
fn list_tree(root: &Path) -> Result<BTreeMap<PathBuf, Entry>> {
    let mut entries = BTreeMap::new();
    for item in walkdir::WalkDir::new(root).follow_links(false) {
        let item = item.map_err(|error| {
            let path = error.path().unwrap_or(root).to_path_buf();
            let source = error
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("file system loop"));
            Error::Io {
                operation: "walk",
                path,
                source,
            }
        })?;
        let metadata = item.metadata().map_err(|error| Error::Io {
            operation: "read metadata of",
            path: item.path().to_path_buf(),
            source: error
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("no metadata")),
        })?;
        let relative = item
            .path()
            .strip_prefix(root)
            .unwrap_or(item.path())
            .to_path_buf();
        entries.insert(
            relative,
            Entry {
                kind: FileKind::of(metadata.file_type()),
                mode: metadata.mode() & 0o7777,
                owner: (metadata.uid(), metadata.gid()),
                size: metadata.len(),
                rdev: metadata.rdev(),
            },
        );
    }
    Ok(entries)
}

fn compare_entries(
    left: &Entry,
    right: &Entry,
    left_path: &Path,
    right_path: &Path,
) -> Result<Vec<DifferenceKind>> {
    if left.kind != right.kind {
        return Ok(vec![DifferenceKind::Kind {
            left: left.kind,
            right: right.kind,
        }]);
    }
    let mut found = Vec::new();
    // Symlink permission bits are not meaningful on Linux.
    if left.mode != right.mode && left.kind != FileKind::Symlink {
        found.push(DifferenceKind::Mode {
            left: left.mode,
            right: right.mode,
        });
    }
    if left.owner != right.owner {
        found.push(DifferenceKind::Owner {
            left: left.owner,
            right: right.owner,
        });
    }
    match left.kind {
        FileKind::File => found.extend(compare_contents(left, right, left_path, right_path)?),
        FileKind::Symlink => {
            let left_target = fs::read_link(left_path).map_err(io_error("read link", left_path))?;
            let right_target =
                fs::read_link(right_path).map_err(io_error("read link", right_path))?;
            if left_target != right_target {
                found.push(DifferenceKind::LinkTarget {
                    left: left_target,
                    right: right_target,
                });
            }
        }
        FileKind::CharDevice | FileKind::BlockDevice if left.rdev != right.rdev => {
            found.push(DifferenceKind::Device {
                left: left.rdev,
                right: right.rdev,
            });
        }
        _ => {}
    }
    found.extend(compare_xattrs(left_path, right_path)?);
    Ok(found)
}

fn compare_contents(
    left: &Entry,
    right: &Entry,
    left_path: &Path,
    right_path: &Path,
) -> Result<Option<DifferenceKind>> {
    if left.size != right.size {
        return Ok(Some(DifferenceKind::Size {
            left: left.size,
            right: right.size,
        }));
    }
    let left_hash = sha256_file(left_path)?;
    let right_hash = sha256_file(right_path)?;
    Ok(
        (left_hash != right_hash).then_some(DifferenceKind::Content {
            left: left_hash,
            right: right_hash,
        }),
    )
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).map_err(io_error("open", path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer).map_err(io_error("read", path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Compares extended attributes without following symlinks.
fn compare_xattrs(left_path: &Path, right_path: &Path) -> Result<Vec<DifferenceKind>> {
    let left = read_xattrs(left_path)?;
    let right = read_xattrs(right_path)?;
    let names: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    Ok(names
        .into_iter()
        .filter(|name| left.get(*name) != right.get(*name))
        .map(|name| DifferenceKind::Xattr {
            name: name.clone(),
            left: left.get(name).cloned(),
            right: right.get(name).cloned(),
        })
        .collect())
}

fn read_xattrs(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut attributes = BTreeMap::new();
    let names = match xattr::list(path) {
        Ok(names) => names,
        // File systems without xattr support have no attributes to compare.
        Err(error) if error.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
            return Ok(attributes);
        }
        Err(error) => return Err(io_error("list xattrs of", path)(error)),
    };
    for name in names {
        let value = xattr::get(path, &name).map_err(io_error("read xattr of", path))?;
        if let Some(value) = value {
            attributes.insert(name.to_string_lossy().into_owned(), value);
        }
    }
    Ok(attributes)
}
