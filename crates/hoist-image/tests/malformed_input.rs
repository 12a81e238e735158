//! Property tests: readers of untrusted input return errors, never panic, on arbitrary bytes
//! and on damaged copies of valid outputs.

// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use common::two_layer_image;
use hoist_image::{
    ImageConfig, ManifestDocument, ManifestFormat, read_docker_archive, read_oci_layout,
    write_docker_archive, write_oci_layout,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Byte replacements (position taken modulo the length, new value) and a length to cut to.
type Damage = (Vec<(usize, u8)>, usize);

fn damage_strategy() -> impl Strategy<Value = Damage> {
    (vec((any::<usize>(), any::<u8>()), 1..8), any::<usize>())
}

fn damage(original: &[u8], (edits, keep): &Damage) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for (position, value) in edits {
        let index = position % bytes.len();
        bytes[index] = *value;
    }
    bytes.truncate((*keep).max(1));
    bytes
}

/// Returns a runner of 128 cases. The tests write their valid originals once, outside the
/// cases, because writing an output syncs every file and would dominate the run time.
fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    })
}

fn copy_dir(source: &Path, target: &Path) {
    fs::create_dir(target).unwrap();
    for entry in fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        let destination = target.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &destination);
        } else {
            fs::copy(entry.path(), destination).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn manifest_parse_never_panics(bytes in vec(any::<u8>(), 0..512), typed in any::<bool>()) {
        let content_type = typed.then_some("application/vnd.oci.image.index.v1+json");
        let _ = ManifestDocument::parse(&bytes, content_type);
        let _ = ImageConfig::from_json(&bytes);
    }
}

#[test]
fn damaged_archive_gives_error_or_image() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let original_path = work.path().join("valid.tar");
    write_docker_archive(&image, &original_path, &["app:v1"]).unwrap();
    let original = fs::read(&original_path).unwrap();
    let path = work.path().join("damaged.tar");

    runner()
        .run(&damage_strategy(), |damage_case| {
            fs::write(&path, damage(&original, &damage_case)).unwrap();
            let _ = read_docker_archive(&path, None);
            Ok(())
        })
        .unwrap();
}

#[test]
fn damaged_layout_json_gives_error() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let original_layout = work.path().join("layout");
    write_oci_layout(&image, ManifestFormat::Oci, &original_layout, &["v1"]).unwrap();
    let strategy = (
        damage_strategy(),
        prop_oneof![Just("index.json"), Just("oci-layout")],
    );

    runner()
        .run(&strategy, |(damage_case, file)| {
            let case_dir = tempfile::tempdir_in(work.path()).unwrap();
            let dir = case_dir.path().join("layout");
            copy_dir(&original_layout, &dir);
            let path = dir.join(file);
            let original = fs::read(&path).unwrap();
            fs::write(&path, damage(&original, &damage_case)).unwrap();

            // A change can leave the JSON valid and equivalent (a changed space), so a read
            // may succeed, but only with the same image.
            if let Ok(loaded) = read_oci_layout(&dir, Some("v1")) {
                prop_assert_eq!(loaded.image.config(), image.config());
            }
            Ok(())
        })
        .unwrap();
}
