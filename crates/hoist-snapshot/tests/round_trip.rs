//! The central property of the snapshotters: applying the layer made from a
//! step's changes to a copy of the tree before the step yields the tree
//! after it.

// Helpers of a test stop it on the first failure.
#![allow(clippy::unwrap_used)]

mod support;

use hoist_snapshot::{
    ApplyOptions, Compression, LayerOptions, OverlaySnapshotter, Snapshotter, WalkOptions,
    WalkSnapshotter, apply_layer, write_layer,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use std::path::Path;
use support::{Spec, materialize, mutate, observe, spec, take_link_groups};

fn layer_of(snapshotter: &dyn Snapshotter, changes: &hoist_snapshot::ChangeSet) -> Vec<u8> {
    let options = LayerOptions {
        compression: Compression::Gzip { level: 1 },
        mtime_epoch: None,
    };
    let mut blob = Vec::new();
    write_layer(snapshotter.layer_source(), changes, &options, &mut blob).unwrap();
    blob
}

fn apply_to_copy(a: &Spec, layer: &[u8]) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    materialize(copy.path(), a);
    apply_layer(layer, copy.path(), &ApplyOptions { privileged: true }).unwrap();
    copy
}

fn walk_round_trip(a: &Spec, b: &Spec) -> Result<(), TestCaseError> {
    let work = tempfile::tempdir().unwrap();
    materialize(work.path(), a);
    let mut snapshotter = WalkSnapshotter::new(work.path().to_path_buf(), WalkOptions::default());
    let root = snapshotter.begin_step().unwrap();
    mutate(&root, a, b);
    let changes = snapshotter.end_step().unwrap();
    let expected = observe(work.path());

    let copy = apply_to_copy(a, &layer_of(&snapshotter, &changes));
    prop_assert_eq!(observe(copy.path()), expected, "changes: {:?}", changes);
    Ok(())
}

fn overlay_round_trip(a: &Spec, b: &Spec) -> Result<(), TestCaseError> {
    let lower = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    materialize(lower.path(), a);
    let mut snapshotter = OverlaySnapshotter::new(lower.path().to_path_buf(), scratch.path());
    let merged = snapshotter.begin_step().unwrap();
    mutate(&merged, a, b);
    let mut expected = observe(&merged);
    let changes = snapshotter.end_step().unwrap();

    // overlayfs reports the link count of the lower inode for a file that
    // was not copied up, so a file whose other links the step deleted still
    // looks hardlinked. The groups come from the step on a plain directory.
    let plain = tempfile::tempdir().unwrap();
    materialize(plain.path(), a);
    mutate(plain.path(), a, b);
    take_link_groups(&mut expected, &observe(plain.path()));

    let copy = apply_to_copy(a, &layer_of(&snapshotter, &changes));
    prop_assert_eq!(observe(copy.path()), expected, "changes: {:?}", changes);

    snapshotter.merge().unwrap();
    prop_assert_eq!(observe(lower.path()), observe(copy.path()));
    Ok(())
}

proptest! {
    // Integration tests have no lib.rs beside them, so failures are saved
    // next to this file, in round_trip.proptest-regressions.
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(
            FileFailurePersistence::WithSource("proptest-regressions")
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn walk_layer_reproduces_step(a in spec(), b in spec()) {
        walk_round_trip(&a, &b)?;
    }

    #[test]
    fn overlay_layer_reproduces_step(a in spec(), b in spec()) {
        overlay_round_trip(&a, &b)?;
    }
}

#[test]
fn overlay_is_unmounted_after_step() {
    let lower = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut snapshotter = OverlaySnapshotter::new(lower.path().to_path_buf(), scratch.path());
    let merged = snapshotter.begin_step().unwrap();
    std::fs::write(merged.join("new"), "x").unwrap();
    snapshotter.end_step().unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&merged.display().to_string()));
    assert!(!Path::new(&merged).join("new").exists());
}

#[test]
fn overlay_is_unmounted_on_drop() {
    let lower = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let merged = {
        let mut snapshotter = OverlaySnapshotter::new(lower.path().to_path_buf(), scratch.path());
        snapshotter.begin_step().unwrap()
    };
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&merged.display().to_string()));
}
