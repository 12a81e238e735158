//! Reading a base image as a registry serves it (index or manifest list, manifest, config)
//! and deriving a child image from it.

// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Entry, gzip, tar_bytes};
use hoist_image::media::{DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST};
use hoist_image::{
    History, Image, Layer, Manifest, ManifestDocument, ManifestError, ManifestFormat, Platform,
    digest_bytes,
};
use serde_json::{Value, json};

/// A base image as `docker build` would have pushed it: a Docker schema 2 manifest, a config
/// with fields hoist's model does not name, and one gzip layer stored under `dir`.
struct Base {
    manifest_json: Vec<u8>,
    config_json: Vec<u8>,
    layer_path: std::path::PathBuf,
}

fn docker_base(dir: &Path) -> Base {
    let tar = tar_bytes(&[
        Entry::Dir("bin/"),
        Entry::File("bin/sh", b"#!shell\n", 0o755),
    ]);
    let blob = gzip(&tar);
    let layer_path = dir.join("base-layer");
    std::fs::write(&layer_path, &blob).unwrap();

    let config = json!({
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "created": "2024-03-01T00:00:00Z",
        "docker_version": "24.0.7",
        "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD [\"sh\"]"]},
        "config": {
            "Hostname": "",
            "Env": ["PATH=/bin"],
            "Cmd": ["sh"],
            "OnBuild": ["RUN echo from-base"],
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5_000_000_000_i64}
        },
        "rootfs": {"type": "layers", "diff_ids": [digest_bytes(&tar).to_string()]},
        "history": [{"created": "2024-03-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:0a1b in / "}]
    });
    let config_json = serde_json::to_vec(&config).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": DOCKER_CONFIG,
            "digest": digest_bytes(&config_json).to_string(),
            "size": config_json.len()
        },
        "layers": [{
            "mediaType": DOCKER_LAYER_GZIP,
            "digest": digest_bytes(&blob).to_string(),
            "size": blob.len()
        }]
    });
    Base {
        manifest_json: serde_json::to_vec(&manifest).unwrap(),
        config_json,
        layer_path,
    }
}

fn parse_manifest(bytes: &[u8]) -> Manifest {
    match ManifestDocument::parse(bytes, Some(DOCKER_MANIFEST)).unwrap() {
        ManifestDocument::Image(manifest) => *manifest,
        ManifestDocument::Index(_) => panic!("a Docker manifest parses as an image manifest"),
    }
}

fn load_base(base: &Base) -> Image {
    let manifest = parse_manifest(&base.manifest_json);
    let config = manifest.read_config(&base.config_json).unwrap();
    let layers = manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(descriptor, diff_id)| {
            Layer::from_descriptor(descriptor, diff_id.clone(), &base.layer_path).unwrap()
        })
        .collect();
    Image::from_parts(config, layers).unwrap()
}

#[test]
fn manifest_list_selects_platform_manifest() {
    let work = tempfile::tempdir().unwrap();
    let base = docker_base(work.path());
    let digest = digest_bytes(&base.manifest_json).to_string();
    let other = format!("sha256:{}", "e".repeat(64));
    let list = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": other, "size": 10,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": DOCKER_MANIFEST, "digest": digest, "size": base.manifest_json.len(),
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
        ]
    });
    let bytes = serde_json::to_vec(&list).unwrap();
    let ManifestDocument::Index(index) = ManifestDocument::parse(&bytes, None).unwrap() else {
        panic!("a manifest list parses as an index");
    };
    let arm64 = index
        .select(&Platform::parse("linux/arm64").unwrap())
        .unwrap();
    assert_eq!(arm64.digest.to_string(), digest);
    let amd64 = index.select(&Platform::linux_amd64()).unwrap();
    assert_eq!(amd64.digest.to_string(), other);
}

#[test]
fn docker_base_reads_into_model() {
    let work = tempfile::tempdir().unwrap();
    let base = docker_base(work.path());
    let manifest = parse_manifest(&base.manifest_json);
    assert_eq!(manifest.format().unwrap(), ManifestFormat::Docker);

    let image = load_base(&base);
    let config = image.config();
    assert_eq!(config.platform().to_string(), "linux/arm64/v8");
    assert_eq!(
        config.config.on_build,
        Some(vec!["RUN echo from-base".to_owned()])
    );
    assert_eq!(
        image.layers()[0].compression,
        hoist_image::Compression::Gzip
    );
}

#[test]
fn child_keeps_unknown_base_fields() {
    let work = tempfile::tempdir().unwrap();
    let base = docker_base(work.path());
    let (mut child, triggers) = load_base(&base).derive_child();
    assert_eq!(triggers, vec!["RUN echo from-base".to_owned()]);

    let tar = tar_bytes(&[Entry::File("hello", b"hi\n", 0o644)]);
    let blob = gzip(&tar);
    let path = work.path().join("child-layer");
    std::fs::write(&path, &blob).unwrap();
    let layer = Layer::from_file(
        &path,
        hoist_image::Compression::Gzip,
        digest_bytes(&blob),
        blob.len() as u64,
        digest_bytes(&tar),
    );
    child.add_layer(
        layer,
        History {
            created_by: Some("COPY hello /".to_owned()),
            ..History::default()
        },
    );

    let rendered = child.render(ManifestFormat::Oci).unwrap();
    let config: Value = serde_json::from_slice(&rendered.config_json).unwrap();
    assert_eq!(config["docker_version"], "24.0.7");
    assert_eq!(config["container_config"]["Cmd"][0], "/bin/sh");
    assert_eq!(config["config"]["Hostname"], "");
    assert_eq!(
        config["config"]["Healthcheck"]["Interval"],
        5_000_000_000_i64
    );
    assert_eq!(config["config"].get("OnBuild"), None);
    assert_eq!(config["variant"], "v8");
    assert_eq!(config["history"].as_array().unwrap().len(), 2);
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    // The base's Docker layer is relabelled, never mixed with OCI types.
    let media_types: Vec<&str> = rendered
        .manifest
        .layers
        .iter()
        .map(|layer| layer.media_type.as_str())
        .collect();
    assert_eq!(
        media_types,
        vec!["application/vnd.oci.image.layer.v1.tar+gzip"; 2]
    );
    assert_eq!(
        rendered.manifest.config.media_type,
        "application/vnd.oci.image.config.v1+json"
    );
}

#[test]
fn tampered_config_is_rejected() {
    let work = tempfile::tempdir().unwrap();
    let mut base = docker_base(work.path());
    let manifest = parse_manifest(&base.manifest_json);
    base.config_json[0] = b' ';
    let error = manifest.read_config(&base.config_json).unwrap_err();
    assert!(
        matches!(error, ManifestError::ConfigMismatch { .. }),
        "{error}"
    );
}

#[test]
fn config_with_wrong_layer_count_is_rejected() {
    let config = json!({"os": "linux", "architecture": "amd64",
                        "rootfs": {"type": "layers", "diff_ids": []}});
    let config_json = serde_json::to_vec(&config).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_bytes(&config_json).to_string(), "size": config_json.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": format!("sha256:{}", "a".repeat(64)), "size": 1}]
    });
    let ManifestDocument::Image(manifest) =
        ManifestDocument::parse(&serde_json::to_vec(&manifest).unwrap(), None).unwrap()
    else {
        panic!("a document with layers parses as an image manifest");
    };
    assert_eq!(manifest.format().unwrap(), ManifestFormat::Oci);
    let error = manifest.read_config(&config_json).unwrap_err();
    assert!(
        matches!(
            error,
            ManifestError::LayerCount {
                diff_ids: 0,
                layers: 1
            }
        ),
        "{error}"
    );
}
