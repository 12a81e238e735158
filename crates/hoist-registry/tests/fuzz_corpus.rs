//! Replays the committed corpus of the `registry` fuzz target through the function it
//! calls, so that every input that once found new code paths keeps running without a panic.

use std::path::Path;

#[test]
fn registry_corpus_replays() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/registry");
    let entries = std::fs::read_dir(&directory).expect("corpus directory is readable");
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("corpus entry is readable").path();
        let data = std::fs::read(&path).expect("corpus file is readable");
        hoist_registry::fuzzing::registry_bytes(&data);
        count += 1;
    }
    assert!(count > 0, "{} has no inputs", directory.display());
}
