//! Replays the committed corpus of the `apply_layer` fuzz target, so that
//! every input that once mattered is checked without cargo-fuzz.

// A failed setup step should stop the test.
#![allow(clippy::unwrap_used)]

use hoist_snapshot::{ApplyOptions, apply_layer};
use std::path::Path;

#[test]
fn apply_layer_corpus_stays_inside_root() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/apply_layer");
    let mut replayed = 0;
    for input in std::fs::read_dir(&corpus).unwrap() {
        let input = input.unwrap().path();
        let data = std::fs::read(&input).unwrap();
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let _ = apply_layer(&data[..], &root, &ApplyOptions { privileged: false });
        let names = std::fs::read_dir(outer.path()).unwrap().count();
        assert_eq!(names, 1, "{} wrote outside the root", input.display());
        replayed += 1;
    }
    assert!(replayed >= 5, "corpus has only {replayed} inputs");
}
