//! Feeds arbitrary bytes to the `.dockerignore` matcher: the first line is
//! the path to test, the rest the ignore file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_dockerfile::fuzzing::dockerignore_bytes(data));
