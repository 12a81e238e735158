//! Hostile layers applied inside a private mount namespace in which this
//! machine's `/` is read-only and the root directory is on a tmpfs. Even a
//! bug in the apply then cannot write to the real `/`.
//!
//! The test re-runs its own binary under `unshare --mount --propagation
//! private`. The child mounts the tmpfs and remounts `/` read-only, both
//! inside its namespace only, applies the layers and checks the results.
//! The parent then checks that nothing changed outside.

// Helpers of a test stop it on the first failure.
#![allow(clippy::unwrap_used)]

use hoist_snapshot::{ApplyError, ApplyOptions, apply_layer};
use rustix::mount::{MountFlags, UnmountFlags};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Scratch directory of the child, set only in the child.
const SCRATCH_VARIABLE: &str = "HOIST_TEST_NAMESPACE_SCRATCH";
/// The parent's mount namespace, so that the child can check it has its own.
const PARENT_NAMESPACE_VARIABLE: &str = "HOIST_TEST_PARENT_MOUNT_NAMESPACE";

const TEST_NAME: &str = "hostile_layers_in_private_namespace";

enum Kind {
    File(&'static [u8]),
    Dir,
    Symlink(&'static str),
    Hardlink(&'static str),
}

/// Builds a plain tar whose names and link names are written as given.
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
                data = content;
            }
            Kind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
            }
            Kind::Symlink(target) | Kind::Hardlink(target) => {
                let entry_type = match kind {
                    Kind::Symlink(_) => tar::EntryType::Symlink,
                    _ => tar::EntryType::Link,
                };
                header.set_entry_type(entry_type);
                header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
            }
        }
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn mount_namespace() -> String {
    let link = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    link.to_string_lossy().into_owned()
}

fn passwd_links() -> u64 {
    Path::new("/etc/passwd").metadata().unwrap().nlink()
}

#[test]
fn hostile_layers_in_private_namespace() {
    match std::env::var_os(SCRATCH_VARIABLE) {
        Some(scratch) => apply_in_child(Path::new(&scratch)),
        None => run_child(),
    }
}

/// Starts this test again in a private mount namespace and checks that
/// nothing changed outside it.
fn run_child() {
    let outer = tempfile::tempdir().unwrap();
    let scratch = outer.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let links_before = passwd_links();

    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(SCRATCH_VARIABLE, &scratch)
        .env(PARENT_NAMESPACE_VARIABLE, mount_namespace())
        .output()
        .unwrap();

    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "child failed:\n{log}");
    assert!(log.contains("1 passed"), "child ran no test:\n{log}");
    // The tmpfs existed only in the child's namespace.
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    assert_eq!(passwd_links(), links_before);
    assert!(!Path::new("/landed").exists());
}

/// Mounts the tmpfs, makes `/` read-only and applies the layers. Runs only
/// in the child, after it checked that its mount namespace is a new one.
fn apply_in_child(scratch: &Path) {
    let parent_namespace = std::env::var(PARENT_NAMESPACE_VARIABLE).unwrap();
    assert_ne!(
        mount_namespace(),
        parent_namespace,
        "not in a private mount namespace: no mount is made"
    );
    rustix::mount::mount("tmpfs", scratch, "tmpfs", MountFlags::NOSUID, None).unwrap();
    // MS_BIND with MS_REMOUNT changes only this namespace's mount of `/`,
    // not the filesystem, so the rest of the machine keeps writing.
    rustix::mount::mount_remount("/", MountFlags::BIND | MountFlags::RDONLY, "").unwrap();
    let probe = scratch.parent().unwrap().join("probe");
    let error = std::fs::write(&probe, "x").unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ReadOnlyFilesystem);

    symlink_to_slash_is_confined(&new_root(scratch, "symlink"));
    hardlink_to_missing_passwd_is_rejected(&new_root(scratch, "missing"));
    hardlink_to_passwd_links_root_copy(&new_root(scratch, "present"));
    hardlink_through_slash_symlink_is_rejected(&new_root(scratch, "through"));

    rustix::mount::unmount(scratch, UnmountFlags::DETACH).unwrap();
}

fn new_root(scratch: &Path, name: &str) -> PathBuf {
    let root = scratch.join(name);
    std::fs::create_dir(&root).unwrap();
    root
}

fn apply(root: &Path, entries: &[(&str, Kind)]) -> Result<(), ApplyError> {
    let options = ApplyOptions { privileged: true };
    apply_layer(tar_of(entries).as_slice(), root, &options).map(drop)
}

fn assert_rejected(result: Result<(), ApplyError>, entry: &str) {
    match result {
        Err(ApplyError::Rejected { entry: named, .. } | ApplyError::Entry { entry: named, .. }) => {
            assert_eq!(named, entry);
        }
        other => panic!("expected {entry} to be rejected, got {other:?}"),
    }
}

/// Checks that an entry through a symlink to `/` lands in the root, because
/// such a symlink is an ordinary symlink inside the image.
fn symlink_to_slash_is_confined(root: &Path) {
    let layer = [
        ("up", Kind::Symlink("/")),
        ("up/landed", Kind::File(b"x")),
        ("up/etc", Kind::Dir),
        ("up/etc/passwd", Kind::File(b"layer\n")),
    ];
    apply(root, &layer).unwrap();
    assert_eq!(std::fs::read(root.join("landed")).unwrap(), b"x");
    assert_eq!(std::fs::read(root.join("etc/passwd")).unwrap(), b"layer\n");
    assert_eq!(std::fs::read_link(root.join("up")).unwrap(), Path::new("/"));
}

/// Checks that a hardlink to `/etc/passwd` is rejected by name when the
/// root has no `etc/passwd`, because the link names the root's copy.
fn hardlink_to_missing_passwd_is_rejected(root: &Path) {
    let links_before = passwd_links();
    assert_rejected(
        apply(root, &[("passwd", Kind::Hardlink("/etc/passwd"))]),
        "passwd",
    );
    assert!(root.join("passwd").symlink_metadata().is_err());
    assert_eq!(passwd_links(), links_before);
}

fn hardlink_to_passwd_links_root_copy(root: &Path) {
    let links_before = passwd_links();
    let layer = [
        ("etc", Kind::Dir),
        ("etc/passwd", Kind::File(b"root:x:0:0::/root:/bin/sh\n")),
        ("passwd", Kind::Hardlink("/etc/passwd")),
    ];
    apply(root, &layer).unwrap();
    let link = root.join("passwd").metadata().unwrap();
    let target = root.join("etc/passwd").metadata().unwrap();
    assert_eq!(link.ino(), target.ino());
    assert_eq!(target.nlink(), 2);
    assert_ne!(
        link.dev(),
        Path::new("/etc/passwd").metadata().unwrap().dev()
    );
    assert_eq!(passwd_links(), links_before);
}

fn hardlink_through_slash_symlink_is_rejected(root: &Path) {
    let links_before = passwd_links();
    let layer = [
        ("up", Kind::Symlink("/")),
        ("link", Kind::Hardlink("up/etc/passwd")),
    ];
    assert_rejected(apply(root, &layer), "link");
    assert!(root.join("link").symlink_metadata().is_err());
    assert_eq!(passwd_links(), links_before);
}
