//! `compare_rootfs` finds each kind of change between two trees.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use hoist_testkit::{
    Aspect, DifferenceKind, Exception, FileKind, compare_rootfs, compare_rootfs_except,
};
use tempfile::TempDir;

/// Creates a small tree with a file, a directory, a symlink, an xattr and
/// an unusual mode and owner.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("etc")).expect("create etc");
    fs::create_dir_all(root.join("usr/bin")).expect("create usr/bin");
    fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("write passwd");
    fs::write(root.join("usr/bin/tool"), "#!/bin/sh\necho tool\n").expect("write tool");
    // chown clears the setuid bit, so the mode comes after it.
    std::os::unix::fs::chown(root.join("usr/bin/tool"), Some(1000), Some(1000)).expect("chown");
    fs::set_permissions(
        root.join("usr/bin/tool"),
        fs::Permissions::from_mode(0o4755),
    )
    .expect("set mode");
    symlink("/usr/bin/tool", root.join("usr/bin/alias")).expect("symlink");
    xattr::set(root.join("etc/passwd"), "user.origin", b"base").expect("set xattr");
}

/// Two temporary directories holding equal trees.
fn two_trees() -> (TempDir, TempDir) {
    let left = tempfile::tempdir().expect("left tempdir");
    let right = tempfile::tempdir().expect("right tempdir");
    make_tree(left.path());
    make_tree(right.path());
    (left, right)
}

/// Compares and returns the single difference, failing on any other count.
fn only_difference(left: &Path, right: &Path) -> hoist_testkit::Difference {
    let differences = compare_rootfs(left, right).expect("comparison runs");
    assert_eq!(differences.len(), 1, "{differences}");
    differences.into_vec().remove(0)
}

#[test]
fn equal_trees_compare_equal() {
    let (left, right) = two_trees();
    let differences = compare_rootfs(left.path(), right.path()).unwrap();
    assert!(differences.is_empty(), "{differences}");
}

#[test]
fn mode_change_is_reported() {
    let (left, right) = two_trees();
    fs::set_permissions(
        right.path().join("usr/bin/tool"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let difference = only_difference(left.path(), right.path());
    assert_eq!(difference.path, Path::new("/usr/bin/tool"));
    assert_eq!(
        difference.kind,
        DifferenceKind::Mode {
            left: 0o4755,
            right: 0o755
        }
    );
    assert_eq!(difference.to_string(), "/usr/bin/tool: mode 4755 != 0755");
}

#[test]
fn owner_change_is_reported() {
    let (left, right) = two_trees();
    let tool = right.path().join("usr/bin/tool");
    std::os::unix::fs::chown(&tool, Some(0), Some(0)).unwrap();
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o4755)).unwrap();
    let difference = only_difference(left.path(), right.path());
    assert_eq!(
        difference.kind,
        DifferenceKind::Owner {
            left: (1000, 1000),
            right: (0, 0)
        }
    );
}

#[test]
fn same_size_content_change_is_reported() {
    let (left, right) = two_trees();
    fs::write(
        right.path().join("etc/passwd"),
        "ROOT:x:0:0::/root:/bin/sh\n",
    )
    .unwrap();
    let difference = only_difference(left.path(), right.path());
    assert_eq!(difference.path, Path::new("/etc/passwd"));
    assert!(
        matches!(difference.kind, DifferenceKind::Content { .. }),
        "{difference}"
    );
}

#[test]
fn size_change_is_reported() {
    let (left, right) = two_trees();
    fs::write(
        right.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/bash\n",
    )
    .unwrap();
    let difference = only_difference(left.path(), right.path());
    assert_eq!(
        difference.kind,
        DifferenceKind::Size {
            left: 26,
            right: 28
        }
    );
}

#[test]
fn link_target_change_is_reported() {
    let (left, right) = two_trees();
    let alias = right.path().join("usr/bin/alias");
    fs::remove_file(&alias).unwrap();
    symlink("tool", &alias).unwrap();
    let difference = only_difference(left.path(), right.path());
    assert_eq!(
        difference.kind,
        DifferenceKind::LinkTarget {
            left: "/usr/bin/tool".into(),
            right: "tool".into()
        }
    );
}

#[test]
fn xattr_change_is_reported() {
    let (left, right) = two_trees();
    xattr::set(right.path().join("etc/passwd"), "user.origin", b"peer").unwrap();
    let difference = only_difference(left.path(), right.path());
    assert_eq!(
        difference.kind,
        DifferenceKind::Xattr {
            name: "user.origin".to_owned(),
            left: Some(b"base".to_vec()),
            right: Some(b"peer".to_vec())
        }
    );
    assert_eq!(
        difference.to_string(),
        r#"/etc/passwd: xattr user.origin "base" != "peer""#
    );
}

#[test]
fn type_change_is_reported() {
    let (left, right) = two_trees();
    let passwd = right.path().join("etc/passwd");
    fs::remove_file(&passwd).unwrap();
    fs::create_dir(&passwd).unwrap();
    let difference = only_difference(left.path(), right.path());
    assert_eq!(
        difference.kind,
        DifferenceKind::Kind {
            left: FileKind::File,
            right: FileKind::Directory
        }
    );
}

#[test]
fn missing_file_is_reported() {
    let (left, right) = two_trees();
    fs::remove_file(right.path().join("etc/passwd")).unwrap();
    let difference = only_difference(left.path(), right.path());
    assert_eq!(difference.path, Path::new("/etc/passwd"));
    assert_eq!(difference.kind, DifferenceKind::OnlyInLeft);
}

#[test]
fn extra_directory_is_reported_once() {
    let (left, right) = two_trees();
    fs::create_dir_all(right.path().join("app/data/cache")).unwrap();
    fs::write(right.path().join("app/data/file"), "x").unwrap();
    let difference = only_difference(left.path(), right.path());
    assert_eq!(difference.path, Path::new("/app"));
    assert_eq!(difference.kind, DifferenceKind::OnlyInRight);
}

#[test]
fn exceptions_hide_known_differences() {
    let (left, right) = two_trees();
    fs::write(right.path().join("etc/passwd"), "changed\n").unwrap();
    fs::create_dir_all(right.path().join("var/cache/x")).unwrap();
    fs::set_permissions(
        right.path().join("usr/bin/tool"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let exceptions = [
        Exception::path("/etc/passwd"),
        Exception::subtree("/var"),
        Exception::subtree("/usr").only(Aspect::Owner),
    ];
    let differences = compare_rootfs_except(left.path(), right.path(), &exceptions).unwrap();
    assert_eq!(differences.len(), 1, "{differences}");
    assert_eq!(differences.as_slice()[0].kind.aspect(), Aspect::Mode);
}

#[test]
fn display_lists_every_difference() {
    let (left, right) = two_trees();
    fs::remove_file(right.path().join("etc/passwd")).unwrap();
    fs::write(right.path().join("extra"), "x").unwrap();
    let text = compare_rootfs(left.path(), right.path())
        .unwrap()
        .to_string();
    assert!(text.starts_with("2 differences between left "), "{text}");
    assert!(text.contains("  /etc/passwd: only in left\n"), "{text}");
    assert!(text.contains("  /extra: only in right\n"), "{text}");
}
