//! The layers of the test bed's base images extract to the same tree with
//! hoist's apply as with `umoci unpack`. The Debian image is a real
//! debootstrap tree with hard links, absolute symlinks, setuid files and
//! about 6,600 entries.

// A failed setup step should stop the test.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist_snapshot::{ApplyOptions, apply_layer};
use hoist_testkit::{BaseImage, base_image, compare_rootfs};
use serde_json::Value;

fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|error| panic!("parse {}: {error}", path.display()))
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    layout.join("blobs/sha256").join(hex)
}

/// Returns the layer blobs of the image tagged `tag`, base layer first.
fn layer_blobs(layout: &Path, tag: &str) -> Vec<PathBuf> {
    let index = read_json(&layout.join("index.json"));
    let manifest_digest = index["manifests"]
        .as_array()
        .expect("index.json has manifests")
        .iter()
        .find(|entry| entry["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {}", layout.display()))["digest"]
        .as_str()
        .expect("a digest string")
        .to_owned();
    let manifest = read_json(&blob_path(layout, &manifest_digest));
    manifest["layers"]
        .as_array()
        .expect("the manifest has layers")
        .iter()
        .map(|layer| blob_path(layout, layer["digest"].as_str().expect("a digest string")))
        .collect()
}

fn unpack_with_umoci(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    let output = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle)
        .output()
        .expect("umoci runs (scripts/install-deps.sh installs it)");
    assert!(
        output.status.success(),
        "umoci unpack failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    bundle.join("rootfs")
}

fn assert_same_tree_as_umoci(image: BaseImage) {
    let files = base_image(image).unwrap();
    let tag = image.manifest_tag();
    let work = tempfile::tempdir().unwrap();
    let hoist_root = work.path().join("hoist");
    fs::create_dir(&hoist_root).unwrap();

    let options = ApplyOptions { privileged: true };
    for blob in layer_blobs(&files.layout, tag) {
        let reader = fs::File::open(&blob).unwrap();
        apply_layer(reader, &hoist_root, &options)
            .unwrap_or_else(|error| panic!("apply {}: {error}", blob.display()));
    }
    let umoci_root = unpack_with_umoci(&files.layout, tag, &work.path().join("bundle"));

    let differences = compare_rootfs(&hoist_root, &umoci_root).unwrap();
    assert!(
        differences.is_empty(),
        "hoist and umoci differ:\n{differences}"
    );
}

#[test]
fn busybox_layers_match_umoci() {
    assert_same_tree_as_umoci(BaseImage::Busybox);
}

#[test]
fn debian_layers_match_umoci() {
    assert_same_tree_as_umoci(BaseImage::Debian);
}
