//! Applies arbitrary bytes as a layer into a fresh temporary root. Any
//! outcome but a panic, or a write outside the root, is acceptable.
#![no_main]

use hoist_snapshot::{ApplyOptions, apply_layer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(outer) = tempfile::tempdir() else {
        return;
    };
    let root = outer.path().join("root");
    if std::fs::create_dir(&root).is_err() {
        return;
    }
    let _ = apply_layer(data, &root, &ApplyOptions { privileged: false });
    let escaped = std::fs::read_dir(outer.path())
        .map(|entries| entries.count())
        .unwrap_or(1);
    assert_eq!(escaped, 1, "a layer wrote outside the root");
});
