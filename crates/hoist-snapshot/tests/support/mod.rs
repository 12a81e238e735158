//! Test support: generated trees, their materialization, and a comparable
//! description of a directory tree.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use proptest::prelude::*;
use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

/// The paths a generated tree may use, parents before children.
pub const PATHS: [&str; 12] = [
    "d1", "d1/d2", "d3", "f1", "f2", "d1/f1", "d1/f2", "d1/d2/f1", "d1/d2/f2", "d3/f1", "d3/f2",
    "l1",
];

/// One generated node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    File {
        content: u8,
        mode: u32,
        uid: u32,
        xattr: Option<u8>,
    },
    Dir {
        mode: u32,
        uid: u32,
    },
    Symlink {
        target: u8,
    },
    /// A hardlink to the n-th regular file of the tree, modulo their count.
    Hardlink {
        file: u8,
    },
}

/// A generated tree: a node, or nothing, at each of [`PATHS`].
pub type Spec = BTreeMap<PathBuf, Node>;

fn node() -> impl Strategy<Value = Node> {
    let mode = prop_oneof![
        Just(0o644),
        Just(0o600),
        Just(0o4755),
        Just(0o2750),
        Just(0o444)
    ];
    let dir_mode = prop_oneof![Just(0o755), Just(0o700), Just(0o1777), Just(0o2775)];
    let uid = prop_oneof![Just(0u32), Just(1000), Just(65534)];
    prop_oneof![
        4 => (0u8..4, mode, uid.clone(), proptest::option::of(0u8..3))
            .prop_map(|(content, mode, uid, xattr)| Node::File { content, mode, uid, xattr }),
        2 => (dir_mode, uid).prop_map(|(mode, uid)| Node::Dir { mode, uid }),
        1 => (0u8..4).prop_map(|target| Node::Symlink { target }),
        1 => (0u8..4).prop_map(|file| Node::Hardlink { file }),
    ]
}

/// Generates a tree whose parents are directories.
pub fn spec() -> impl Strategy<Value = Spec> {
    proptest::collection::vec(proptest::option::weighted(0.6, node()), PATHS.len()).prop_map(
        |nodes| {
            let raw = PATHS
                .iter()
                .zip(nodes)
                .filter_map(|(path, node)| node.map(|n| (PathBuf::from(path), n)))
                .collect();
            normalize(raw)
        },
    )
}

/// Drops nodes under a non-directory and adds missing parent directories.
fn normalize(raw: Spec) -> Spec {
    let mut spec = Spec::new();
    'nodes: for (path, node) in raw {
        for parent in path
            .ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
        {
            match spec.get(parent) {
                Some(Node::Dir { .. }) => {}
                Some(_) => continue 'nodes,
                None => {
                    spec.insert(
                        parent.to_path_buf(),
                        Node::Dir {
                            mode: 0o755,
                            uid: 0,
                        },
                    );
                }
            }
        }
        spec.insert(path, node);
    }
    spec
}

const CONTENTS: [&[u8]; 4] = [b"", b"alpha", b"beta beta beta", b"\x00\x01binary\n"];
const TARGETS: [&str; 4] = ["f1", "../f2", "/etc/passwd", "d1/d2"];

fn file_paths(spec: &Spec) -> Vec<&PathBuf> {
    spec.iter()
        .filter(|(_, n)| matches!(n, Node::File { .. }))
        .map(|(p, _)| p)
        .collect()
}

/// Creates `node` at `path`, which must not exist.
fn create(root: &Path, spec: &Spec, path: &Path, node: &Node) {
    let full = root.join(path);
    let parent_is_dir = full
        .parent()
        .and_then(|p| p.symlink_metadata().ok())
        .is_some_and(|m| m.is_dir());
    if !parent_is_dir {
        return;
    }
    match node {
        Node::File {
            content,
            mode,
            uid,
            xattr,
        } => {
            fs::write(&full, CONTENTS[usize::from(*content)]).unwrap();
            lchown(&full, Some(*uid), Some(*uid)).unwrap();
            fs::set_permissions(&full, fs::Permissions::from_mode(*mode)).unwrap();
            if let Some(x) = xattr {
                xattr::set(&full, "user.test", &[b'v', *x]).unwrap();
            }
        }
        Node::Dir { mode, uid } => {
            if !full.is_dir() {
                fs::create_dir(&full).unwrap();
            }
            lchown(&full, Some(*uid), Some(*uid)).unwrap();
            fs::set_permissions(&full, fs::Permissions::from_mode(*mode)).unwrap();
        }
        Node::Symlink { target } => {
            symlink(TARGETS[usize::from(*target)], &full).unwrap();
        }
        Node::Hardlink { file } => {
            let files = file_paths(spec);
            if files.is_empty() {
                return;
            }
            let target = files[usize::from(*file) % files.len()];
            fs::hard_link(root.join(target), &full).unwrap();
        }
    }
}

/// Creates `spec` under the empty directory `root`, with fixed mtimes.
pub fn materialize(root: &Path, spec: &Spec) {
    for (path, node) in hardlinks_last(spec) {
        create(root, spec, path, node);
    }
    for (i, path) in spec.keys().rev().enumerate() {
        let full = root.join(path);
        if full.symlink_metadata().is_ok() {
            let secs = 1_600_000_000 + i as i64 * 1000;
            set_mtime(&full, secs, 123_456_789);
        }
    }
}

pub fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let time = Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// Lists the nodes with hardlinks after every file they may point to.
fn hardlinks_last(spec: &Spec) -> impl Iterator<Item = (&PathBuf, &Node)> {
    let is_link = |n: &Node| matches!(n, Node::Hardlink { .. });
    let first = spec.iter().filter(move |(_, n)| !is_link(n));
    first.chain(spec.iter().filter(move |(_, n)| is_link(n)))
}

/// Turns the tree `from`, materialized under `root`, into `to`: removes
/// what changed, then creates it again as `to` describes.
pub fn mutate(root: &Path, from: &Spec, to: &Spec) {
    for (path, old) in from.iter().rev() {
        let full = root.join(path);
        let keep_dir = matches!(
            (old, to.get(path)),
            (Node::Dir { .. }, Some(Node::Dir { .. }))
        );
        if to.get(path) == Some(old) || keep_dir || full.symlink_metadata().is_err() {
            continue;
        }
        if full.symlink_metadata().unwrap().is_dir() {
            fs::remove_dir_all(&full).unwrap();
        } else {
            fs::remove_file(&full).unwrap();
        }
    }
    for (path, node) in hardlinks_last(to) {
        let exists = root.join(path).symlink_metadata().is_ok();
        if from.get(path) == Some(node) && exists && !matches!(node, Node::Hardlink { .. }) {
            continue;
        }
        if exists && !matches!(node, Node::Dir { .. }) {
            fs::remove_file(root.join(path)).unwrap();
        }
        create(root, to, path, node);
    }
}

/// What the tests compare of one path.
#[derive(Debug, PartialEq, Eq)]
pub struct Observed {
    kind: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    content: Option<Vec<u8>>,
    link: Option<PathBuf>,
    xattrs: Vec<(String, Vec<u8>)>,
    /// The first path of this file's hardlink group.
    link_group: Option<PathBuf>,
}

/// Describes every path under `root`, not `root` itself.
pub fn observe(root: &Path) -> BTreeMap<PathBuf, Observed> {
    let mut tree = BTreeMap::new();
    let mut groups: BTreeMap<u64, PathBuf> = BTreeMap::new();
    for item in WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let item = item.unwrap();
        let path = item.path();
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        let meta = path.symlink_metadata().unwrap();
        let is_file = meta.file_type().is_file();
        let link_group = (is_file && meta.nlink() > 1).then(|| {
            groups
                .entry(meta.ino())
                .or_insert_with(|| relative.clone())
                .clone()
        });
        let mut xattrs: Vec<(String, Vec<u8>)> = xattr::list(path)
            .unwrap()
            .filter(|name| !name.to_string_lossy().starts_with("trusted.overlay."))
            .map(|name| {
                let value = xattr::get(path, &name).unwrap().unwrap_or_default();
                (name.to_string_lossy().into_owned(), value)
            })
            .collect();
        xattrs.sort();
        tree.insert(
            relative,
            Observed {
                kind: meta.mode() & 0o170_000,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                content: is_file.then(|| fs::read(path).unwrap()),
                link: meta
                    .file_type()
                    .is_symlink()
                    .then(|| fs::read_link(path).unwrap()),
                xattrs,
                link_group,
            },
        );
    }
    tree
}

/// Replaces the hardlink group of every path of `tree` by the group of the
/// same path in `reference`.
pub fn take_link_groups(
    tree: &mut BTreeMap<PathBuf, Observed>,
    reference: &BTreeMap<PathBuf, Observed>,
) {
    for (path, observed) in tree.iter_mut() {
        observed.link_group = reference.get(path).and_then(|r| r.link_group.clone());
    }
}
