//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same functions
//! the fuzz targets call, so that every input that once found new code paths keeps running
//! without a panic.

use std::path::Path;

use hoist_image::fuzzing::{docker_archive_bytes, manifest_bytes};

fn replay(target: &str, run: fn(&[u8])) {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&directory).expect("corpus directory is readable");
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("corpus entry is readable").path();
        let data = std::fs::read(&path).expect("corpus file is readable");
        run(&data);
        count += 1;
    }
    assert!(count > 0, "{} has no inputs", directory.display());
}

#[test]
fn manifest_corpus_replays() {
    replay("manifest", manifest_bytes);
}

#[test]
fn docker_archive_corpus_replays() {
    replay("docker_archive", docker_archive_bytes);
}
