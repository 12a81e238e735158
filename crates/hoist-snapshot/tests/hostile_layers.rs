//! Hostile layers: each is rejected, or confined to the root, and nothing is
//! written outside the root directory. Layers that name this machine's own
//! files, such as `/etc/passwd`, are tested in `namespace_confinement.rs`,
//! where `/` is read-only.

// Helpers of a test stop it on the first failure.
#![allow(clippy::unwrap_used)]

use hoist_snapshot::{ApplyError, ApplyOptions, ApplyReport, apply_layer};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// A root directory inside an outer directory, so that escapes land in the
/// outer directory, where the test can see them.
struct Sandbox {
    outer: tempfile::TempDir,
    root: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir(&root).unwrap();
        Self { outer, root }
    }

    fn apply(&self, layer: &[u8], privileged: bool) -> Result<ApplyReport, ApplyError> {
        apply_layer(layer, &self.root, &ApplyOptions { privileged })
    }

    /// Returns the names in the outer directory; only `root` belongs there.
    fn outer_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

enum Kind {
    File(&'static [u8]),
    Dir,
    Symlink(String),
    Hardlink(String),
    CharDevice(u32, u32),
}

/// Builds a plain tar from raw entries. Names and link names are written as
/// given, bypassing the checks of the `tar` crate's builder.
fn tar_of(entries: &[(&str, Kind)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind) in entries {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        let mut data: &[u8] = &[];
        match kind {
            Kind::File(content) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(content.len() as u64);
                data = content;
            }
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
            }
            Kind::Symlink(target) | Kind::Hardlink(target) => {
                let kind = match kind {
                    Kind::Symlink(_) => tar::EntryType::Symlink,
                    _ => tar::EntryType::Link,
                };
                header.set_entry_type(kind);
                header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
            }
            Kind::CharDevice(major, minor) => {
                header.set_entry_type(tar::EntryType::Char);
                header.set_device_major(*major).unwrap();
                header.set_device_minor(*minor).unwrap();
            }
        }
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn assert_rejected(result: Result<ApplyReport, ApplyError>, entry: &str) {
    match result {
        Err(ApplyError::Rejected { entry: named, .. } | ApplyError::Entry { entry: named, .. }) => {
            assert_eq!(named, entry);
        }
        other => panic!("expected {entry} to be rejected, got {other:?}"),
    }
}

#[test]
fn parent_components_are_rejected() {
    let sandbox = Sandbox::new();
    let layer = tar_of(&[("../escaped", Kind::File(b"x"))]);
    assert_rejected(sandbox.apply(&layer, true), "../escaped");
    assert_eq!(sandbox.outer_names(), ["root"]);
}

#[test]
fn nested_parent_components_are_rejected() {
    let sandbox = Sandbox::new();
    let layer = tar_of(&[("a/../../escaped", Kind::File(b"x"))]);
    assert_rejected(sandbox.apply(&layer, true), "a/../../escaped");
    assert_eq!(sandbox.outer_names(), ["root"]);
}

#[test]
fn absolute_paths_are_rejected() {
    let sandbox = Sandbox::new();
    let target = sandbox.outer.path().join("escaped");
    let name = target.to_str().unwrap().to_owned();
    let layer = tar_of(&[(name.as_str(), Kind::File(b"x"))]);
    assert_rejected(sandbox.apply(&layer, true), &name);
    assert!(!target.exists());
    assert_eq!(std::fs::read_dir(&sandbox.root).unwrap().count(), 0);
}

#[test]
fn absolute_symlink_is_followed_inside_root() {
    // The symlink names the outer directory by its absolute path. Resolved
    // inside the root, that path does not exist, so the entry through it
    // fails instead of landing in the outer directory.
    let sandbox = Sandbox::new();
    let outer = sandbox.outer.path().to_str().unwrap().to_owned();
    let layer = tar_of(&[
        ("escape", Kind::Symlink(outer)),
        ("escape/pwned", Kind::File(b"x")),
    ]);
    assert_rejected(sandbox.apply(&layer, true), "escape/pwned");
    assert_eq!(sandbox.outer_names(), ["root"]);
}

#[test]
fn symlink_to_root_stays_inside_root() {
    // `/` inside the root is the root itself, so the file lands there.
    let sandbox = Sandbox::new();
    let layer = tar_of(&[
        ("dir", Kind::Dir),
        ("dir/up", Kind::Symlink("../../..".into())),
        ("dir/up/landed", Kind::File(b"x")),
    ]);
    sandbox.apply(&layer, true).unwrap();
    assert_eq!(std::fs::read(sandbox.root.join("landed")).unwrap(), b"x");
    assert_eq!(sandbox.outer_names(), ["root"]);
}

#[test]
fn hardlink_outside_root_is_rejected() {
    let sandbox = Sandbox::new();
    let secret = sandbox.outer.path().join("secret");
    std::fs::write(&secret, "secret").unwrap();
    let layer = tar_of(&[("link", Kind::Hardlink("../secret".into()))]);
    assert_rejected(sandbox.apply(&layer, true), "link");
    assert_eq!(secret.metadata().unwrap().nlink(), 1);
}

#[test]
fn hardlink_through_symlink_stays_inside_root() {
    let sandbox = Sandbox::new();
    let secret = sandbox.outer.path().join("secret");
    std::fs::write(&secret, "secret").unwrap();
    let outer = sandbox.outer.path().to_str().unwrap().to_owned();
    let layer = tar_of(&[
        ("out", Kind::Symlink(outer)),
        ("link", Kind::Hardlink("out/secret".into())),
    ]);
    assert_rejected(sandbox.apply(&layer, true), "link");
    assert_eq!(secret.metadata().unwrap().nlink(), 1);
}

#[test]
fn symlink_loop_is_rejected() {
    let sandbox = Sandbox::new();
    let layer = tar_of(&[
        ("a", Kind::Symlink("b".into())),
        ("b", Kind::Symlink("a".into())),
        ("a/file", Kind::File(b"x")),
    ]);
    assert_rejected(sandbox.apply(&layer, true), "a/file");
    assert_eq!(sandbox.outer_names(), ["root"]);
}

#[test]
fn whiteout_of_parent_is_rejected() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.outer.path().join("keep"), "x").unwrap();
    let layer = tar_of(&[("dir", Kind::Dir), ("dir/.wh...", Kind::File(b""))]);
    assert_rejected(sandbox.apply(&layer, true), "dir/.wh...");
    let at_root = tar_of(&[(".wh...", Kind::File(b""))]);
    assert_rejected(sandbox.apply(&at_root, true), ".wh...");
    assert!(sandbox.root.join("dir").is_dir());
    assert_eq!(sandbox.outer_names(), ["keep", "root"]);
}

#[test]
fn whiteout_through_symlink_stays_inside_root() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.outer.path().join("keep"), "x").unwrap();
    let layer = tar_of(&[
        ("up", Kind::Symlink("..".into())),
        ("up/.wh.keep", Kind::File(b"")),
    ]);
    sandbox.apply(&layer, true).unwrap();
    assert_eq!(sandbox.outer_names(), ["keep", "root"]);
}

#[test]
fn device_node_without_privileges_is_skipped() {
    let sandbox = Sandbox::new();
    let layer = tar_of(&[
        ("null", Kind::CharDevice(1, 3)),
        ("after", Kind::File(b"x")),
    ]);
    let report = sandbox.apply(&layer, false).unwrap();
    assert_eq!(report.skipped_devices, 1);
    assert!(sandbox.root.join("null").symlink_metadata().is_err());
    assert!(sandbox.root.join("after").exists());
}

#[test]
fn device_node_with_privileges_is_created() {
    use std::os::unix::fs::FileTypeExt;
    let sandbox = Sandbox::new();
    let layer = tar_of(&[("null", Kind::CharDevice(1, 3))]);
    let report = sandbox.apply(&layer, true).unwrap();
    assert_eq!(report.skipped_devices, 0);
    let meta = sandbox.root.join("null").symlink_metadata().unwrap();
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), rustix::fs::makedev(1, 3));
}

#[test]
fn file_replaces_symlink_without_following() {
    let sandbox = Sandbox::new();
    let victim = sandbox.outer.path().join("victim");
    std::fs::write(&victim, "original").unwrap();
    let layer = tar_of(&[
        ("f", Kind::Symlink(victim.to_str().unwrap().to_owned())),
        ("f", Kind::File(b"overwritten")),
    ]);
    sandbox.apply(&layer, true).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"original");
    assert_eq!(
        std::fs::read(sandbox.root.join("f")).unwrap(),
        b"overwritten"
    );
}
