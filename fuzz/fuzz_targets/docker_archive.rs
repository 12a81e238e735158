//! Reads arbitrary bytes as a docker-archive tarball, as `hoist-push` reads one.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hoist_image::fuzzing::docker_archive_bytes(data));
