//! Peak memory of `hoist-push` for a 1 GiB layer: the upload streams from the file, so
//! the process stays far below the layer size.

// The layout helpers outside `#[test]` functions panic on setup failures too.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hoist_image::{digest_bytes, digest_reader};
use hoist_testkit::{ImageSource, Registry, skopeo_inspect_raw};

const LAYER_SIZE: u64 = 1024 * 1024 * 1024;
const RSS_LIMIT_KIB: u64 = 128 * 1024;

/// Writes an OCI layout with one uncompressed layer of `LAYER_SIZE` bytes and returns the
/// manifest digest. The bytes follow a cheap pattern, because only their count matters.
fn write_large_layout(dir: &Path) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let layer_path = dir.join("layer.tmp");
    let mut file = File::create(&layer_path).unwrap();
    let mut block = vec![0u8; 1024 * 1024];
    for (index, byte) in block.iter_mut().enumerate() {
        *byte = (index % 251) as u8;
    }
    for _ in 0..LAYER_SIZE / block.len() as u64 {
        file.write_all(&block).unwrap();
    }
    drop(file);
    let (layer_digest, size) = digest_reader(File::open(&layer_path).unwrap()).unwrap();
    assert_eq!(size, LAYER_SIZE);
    std::fs::rename(&layer_path, blob_path(dir, layer_digest.as_ref())).unwrap();

    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
    );
    let config_digest = write_blob(dir, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{LAYER_SIZE}}}]}}"#,
        config.len()
    );
    let manifest_digest = write_blob(dir, manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{}}}]}}"#,
        manifest.len()
    );
    std::fs::write(dir.join("index.json"), index).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    manifest_digest
}

fn blob_path(dir: &Path, digest: &str) -> std::path::PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn write_blob(dir: &Path, bytes: &[u8]) -> String {
    let digest = digest_bytes(bytes).to_string();
    std::fs::write(blob_path(dir, &digest), bytes).unwrap();
    digest
}

/// Reads `VmHWM` (peak resident set size, KiB) of a running process.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn one_gib_layer_push_stays_under_128_mib() {
    let registry = Registry::builder().start().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("hoist-memory-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let layout = dir.path().join("layout");
    let expected = write_large_layout(&layout);

    let mut child = Command::new(env!("CARGO_BIN_EXE_hoist-push"))
        .arg(&layout)
        .args(["--destination", &registry.reference("memory/big:v1")])
        .args(["--insecure-registry", registry.host()])
        .env("HOME", dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // NOTE: VmHWM only grows, so the last sample before exit is the peak up to at most
    // one sampling interval before the end.
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Some(sample) = peak_rss_kib(child.id()) {
            peak = peak.max(sample);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();

    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap().trim(), expected);
    eprintln!("hoist-push peak RSS for a 1 GiB layer: {peak} KiB");
    assert!(peak > 0, "no RSS sample was taken");
    assert!(peak < RSS_LIMIT_KIB, "peak RSS {peak} KiB");
    let raw = skopeo_inspect_raw(&ImageSource::in_registry(&registry, "memory/big:v1")).unwrap();
    assert_eq!(hoist_testkit::sha256_digest(&raw), expected);
}
