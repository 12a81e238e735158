//! Feeds arbitrary bytes to the manifest, index, image config and platform parsers, as a
//! registry or an image layout could send them.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_image::fuzzing::manifest_bytes(data));
