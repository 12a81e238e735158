//! OCI image layout output: what hoist writes, what skopeo and umoci make of it, and how
//! hoist reads it back.

// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use common::{assert_two_layer_root, dir_entries, skopeo_inspect, two_layer_image};
use hoist_image::{
    Compression, ImageError, Layer, ManifestFormat, ReadError, WriteError, digest_bytes,
    read_oci_layout, write_oci_layout,
};

fn layer_digests(image: &hoist_image::Image) -> Vec<String> {
    image
        .layers()
        .iter()
        .map(|layer| layer.digest.to_string())
        .collect()
}

#[test]
fn layout_has_spec_files() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let dir = work.path().join("layout");
    let rendered = write_oci_layout(&image, ManifestFormat::Oci, &dir, &["v1"]).unwrap();

    assert_eq!(
        fs::read_to_string(dir.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    assert_eq!(
        entry["digest"],
        rendered.manifest_descriptor.digest.to_string()
    );
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // Two layers, the config and the manifest.
    assert_eq!(dir_entries(&dir.join("blobs/sha256")).len(), 4);
}

#[test]
fn layout_names_every_tag() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let dir = work.path().join("layout");
    let rendered = write_oci_layout(&image, ManifestFormat::Oci, &dir, &["v1", "latest"]).unwrap();

    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            entry["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, vec!["v1", "latest"]);
    for tag in ["v1", "latest"] {
        let loaded = read_oci_layout(&dir, Some(tag)).unwrap();
        assert_eq!(
            loaded.rendered.manifest_descriptor.digest,
            rendered.manifest_descriptor.digest
        );
        let reference = format!("oci:{}:{tag}", dir.display());
        let inspected = skopeo_inspect(&reference, false, work.path());
        assert_eq!(
            inspected["Digest"],
            rendered.manifest_descriptor.digest.to_string()
        );
    }
    // Two names of one manifest are one image.
    assert!(read_oci_layout(&dir, None).is_ok());
}

#[test]
fn skopeo_inspects_layout() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let dir = work.path().join("layout");
    write_oci_layout(&image, ManifestFormat::Oci, &dir, &["v1"]).unwrap();

    let reference = format!("oci:{}:v1", dir.display());
    let inspected = skopeo_inspect(&reference, false, work.path());
    let layers: Vec<String> = inspected["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(layers, layer_digests(&image));
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Os"], "linux");
    assert_eq!(inspected["Labels"]["org.example.team"], "build");

    let config = skopeo_inspect(&reference, true, work.path());
    assert_eq!(config["config"]["Env"][1], "MODE=test");
    assert_eq!(config["config"]["Cmd"][0], "/app/run.sh");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    assert_eq!(config["history"].as_array().unwrap().len(), 3);
}

#[test]
fn umoci_unpacks_copied_layout() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let dir = work.path().join("layout");
    write_oci_layout(&image, ManifestFormat::Oci, &dir, &["v1"]).unwrap();

    let root = common::unpack_with_umoci(&format!("oci:{}:v1", dir.display()), work.path());
    assert_two_layer_root(&root);
}

#[test]
fn docker_format_layout_reads_back() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let dir = work.path().join("layout");
    write_oci_layout(&image, ManifestFormat::Docker, &dir, &["v1"]).unwrap();

    let loaded = read_oci_layout(&dir, Some("v1")).unwrap();
    assert_eq!(loaded.rendered.format, ManifestFormat::Docker);
    assert_eq!(
        loaded.rendered.manifest.layers[0].media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
}

#[test]
fn layout_reads_back_unchanged() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let dir = work.path().join("layout");
    let written = write_oci_layout(&image, ManifestFormat::Oci, &dir, &["v1"]).unwrap();

    let by_tag = read_oci_layout(&dir, Some("v1")).unwrap();
    assert_eq!(by_tag.rendered.format, written.format);
    assert_eq!(by_tag.rendered.config_json, written.config_json);
    assert_eq!(by_tag.rendered.manifest_json, written.manifest_json);
    assert_eq!(by_tag.rendered.manifest, written.manifest);
    let descriptor = &by_tag.rendered.manifest_descriptor;
    assert_eq!(descriptor.digest, written.manifest_descriptor.digest);
    let name =
        descriptor.annotations.as_ref().unwrap()["org.opencontainers.image.ref.name"].clone();
    assert_eq!(name, "v1");
    assert_eq!(by_tag.image.config(), image.config());
    assert_eq!(layer_digests(&by_tag.image), layer_digests(&image));
    let blob = &by_tag.image.layers()[0].blob;
    assert!(blob.path.starts_with(&dir));

    let only = read_oci_layout(&dir, None).unwrap();
    assert_eq!(only, by_tag);
}

#[test]
fn read_image_detects_layout() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let dir = work.path().join("layout");
    write_oci_layout(&image, ManifestFormat::Oci, &dir, &["v1"]).unwrap();
    let loaded = hoist_image::read_image(&dir, Some("v1")).unwrap();
    assert_eq!(loaded, read_oci_layout(&dir, Some("v1")).unwrap());

    let error = hoist_image::read_image(&work.path().join("absent"), None).unwrap_err();
    assert!(matches!(error, ReadError::Io { .. }), "{error}");
}

#[test]
fn layout_write_is_deterministic() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let first = work.path().join("first");
    let second = work.path().join("second");
    write_oci_layout(&image, ManifestFormat::Oci, &first, &["v1"]).unwrap();
    write_oci_layout(&image, ManifestFormat::Oci, &second, &["v1"]).unwrap();
    for name in ["index.json", "oci-layout"] {
        assert_eq!(
            fs::read(first.join(name)).unwrap(),
            fs::read(second.join(name)).unwrap()
        );
    }
    assert_eq!(
        dir_entries(&first.join("blobs/sha256")),
        dir_entries(&second.join("blobs/sha256"))
    );
}

#[test]
fn layout_replaces_previous_layout() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let dir = work.path().join("layout");
    write_oci_layout(&image, ManifestFormat::Oci, &dir, &["old"]).unwrap();
    write_oci_layout(&image, ManifestFormat::Oci, &dir, &["new"]).unwrap();
    assert!(read_oci_layout(&dir, Some("new")).is_ok());
    assert!(matches!(
        read_oci_layout(&dir, Some("old")),
        Err(ReadError::ReferenceNotFound { .. })
    ));
}

#[test]
fn layout_keeps_unrelated_directory() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let dir = work.path().join("documents");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("notes.txt"), b"keep me").unwrap();
    let error = write_oci_layout(&image, ManifestFormat::Oci, &dir, &[]).unwrap_err();
    assert!(matches!(error, WriteError::TargetExists { .. }));
    assert_eq!(fs::read(dir.join("notes.txt")).unwrap(), b"keep me");
}

#[test]
fn corrupt_layer_leaves_no_layout() {
    let work = tempfile::tempdir().unwrap();
    let blobs = work.path().join("blobs");
    fs::create_dir(&blobs).unwrap();
    let mut image = two_layer_image(&blobs);
    // The second layer's file changes after it was described.
    let app = image.layers()[1].blob.path.clone();
    fs::write(&app, b"not the layer").unwrap();
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();

    let error =
        write_oci_layout(&image, ManifestFormat::Oci, &out.join("layout"), &[]).unwrap_err();
    assert!(matches!(error, WriteError::BlobMismatch { .. }), "{error}");
    assert!(dir_entries(&out).is_empty());

    fs::remove_file(&app).unwrap();
    let error =
        write_oci_layout(&image, ManifestFormat::Oci, &out.join("layout"), &[]).unwrap_err();
    assert!(matches!(error, WriteError::ReadBlob { .. }), "{error}");
    assert!(dir_entries(&out).is_empty());

    let zstd = Layer::from_file(
        &app,
        Compression::Zstd,
        digest_bytes(b""),
        0,
        digest_bytes(b""),
    );
    image.add_layer(zstd, hoist_image::History::default());
    let error =
        write_oci_layout(&image, ManifestFormat::Docker, &out.join("layout"), &[]).unwrap_err();
    assert!(matches!(error, WriteError::Image(_)), "{error}");
    assert!(dir_entries(&out).is_empty());
}

fn written_layout(work: &Path) -> std::path::PathBuf {
    let image = two_layer_image(work);
    let dir = work.join("layout");
    write_oci_layout(&image, ManifestFormat::Oci, &dir, &["v1"]).unwrap();
    dir
}

fn manifest_path(dir: &Path) -> std::path::PathBuf {
    let loaded = read_oci_layout(dir, None).unwrap();
    let hex = loaded
        .rendered
        .manifest_descriptor
        .digest
        .digest()
        .to_owned();
    dir.join("blobs/sha256").join(hex)
}

#[test]
fn bad_index_json_names_file() {
    let work = tempfile::tempdir().unwrap();
    let dir = written_layout(work.path());
    fs::write(
        dir.join("index.json"),
        b"{\"schemaVersion\": 2, \"manifests\": [",
    )
    .unwrap();
    let error = read_oci_layout(&dir, None).unwrap_err();
    assert!(matches!(error, ReadError::Manifest { ref path, .. } if path.ends_with("index.json")));
    assert!(error.to_string().contains("index.json"), "{error}");
}

#[test]
fn missing_layer_blob_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let dir = written_layout(work.path());
    let image = two_layer_image(work.path());
    let hex = image.layers()[1].digest.digest().to_owned();
    fs::remove_file(dir.join("blobs/sha256").join(&hex)).unwrap();
    let error = read_oci_layout(&dir, Some("v1")).unwrap_err();
    assert!(
        matches!(error, ReadError::MissingBlob { ref path } if path.ends_with(&hex)),
        "{error}"
    );
}

/// Writes `bytes` as a blob of the layout and returns its descriptor as JSON.
fn add_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let digest = digest_bytes(bytes);
    fs::write(dir.join("blobs/sha256").join(digest.digest()), bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()})
}

/// Rewrites the layout's only image so that its config lists `extra` more diff IDs than the
/// manifest has layers (or fewer, when `extra` is negative), with every digest consistent.
fn change_diff_id_count(dir: &Path, extra: isize) {
    let manifest_path = manifest_path(dir);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    let config_hex = manifest["config"]["digest"].as_str().unwrap()["sha256:".len()..].to_owned();
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("blobs/sha256").join(config_hex)).unwrap())
            .unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array_mut().unwrap();
    if extra >= 0 {
        let first = diff_ids[0].clone();
        diff_ids.extend(std::iter::repeat_n(first, extra.unsigned_abs()));
    } else {
        diff_ids.truncate(diff_ids.len() - extra.unsigned_abs());
    }

    let config_type = manifest["config"]["mediaType"].clone();
    let config_bytes = serde_json::to_vec(&config).unwrap();
    manifest["config"] = add_blob(dir, config_type.as_str().unwrap(), &config_bytes);
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let manifest_type = manifest["mediaType"].as_str().unwrap().to_owned();
    let descriptor = add_blob(dir, &manifest_type, &manifest_bytes);

    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    for entry in index["manifests"].as_array_mut().unwrap() {
        entry["digest"] = descriptor["digest"].clone();
        entry["size"] = descriptor["size"].clone();
    }
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn diff_id_count_mismatch_is_reported() {
    for extra in [1, -1] {
        let work = tempfile::tempdir().unwrap();
        let dir = written_layout(work.path());
        change_diff_id_count(&dir, extra);

        let error = read_oci_layout(&dir, Some("v1")).unwrap_err();

        let (diff_ids, layers) = if extra > 0 { (3, 2) } else { (1, 2) };
        assert!(
            matches!(
                error,
                ReadError::Image {
                    source: ImageError::LayerCount { diff_ids: d, layers: l },
                    ..
                } if d == diff_ids && l == layers
            ),
            "{extra}: {error:?}"
        );
        assert!(
            error.to_string().contains("do not match its image config"),
            "{error}"
        );
    }
}

#[test]
fn tampered_layer_fails_digest_check() {
    let work = tempfile::tempdir().unwrap();
    let dir = written_layout(work.path());
    let image = two_layer_image(work.path());
    let layer = &image.layers()[0];
    let path = dir.join("blobs/sha256").join(layer.digest.digest());
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let error = read_oci_layout(&dir, Some("v1")).unwrap_err();
    assert!(matches!(error, ReadError::DigestMismatch { .. }), "{error}");

    bytes.push(0);
    fs::write(&path, &bytes).unwrap();
    let error = read_oci_layout(&dir, Some("v1")).unwrap_err();
    assert!(matches!(error, ReadError::SizeMismatch { .. }), "{error}");
}

#[test]
fn symlinked_blob_is_not_followed() {
    let work = tempfile::tempdir().unwrap();
    let dir = written_layout(work.path());
    let manifest = manifest_path(&dir);
    let outside = work.path().join("outside.json");
    fs::copy(&manifest, &outside).unwrap();
    fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink(&outside, &manifest).unwrap();
    let error = read_oci_layout(&dir, None).unwrap_err();
    assert!(matches!(error, ReadError::NotRegularFile { .. }), "{error}");
}

#[test]
fn symlinked_index_is_not_followed() {
    let work = tempfile::tempdir().unwrap();
    let dir = written_layout(work.path());
    let outside = work.path().join("index-outside.json");
    fs::rename(dir.join("index.json"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("index.json")).unwrap();
    let error = read_oci_layout(&dir, None).unwrap_err();
    assert!(
        matches!(error, ReadError::NotRegularFile { ref path } if path.ends_with("index.json")),
        "{error}"
    );
}

#[test]
fn unknown_tag_lists_available_names() {
    let work = tempfile::tempdir().unwrap();
    let dir = written_layout(work.path());
    let error = read_oci_layout(&dir, Some("v2")).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{} has no image named \"v2\"; it has: v1", dir.display())
    );
}

#[test]
fn missing_oci_layout_file_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let dir = written_layout(work.path());
    fs::remove_file(dir.join("oci-layout")).unwrap();
    let error = read_oci_layout(&dir, None).unwrap_err();
    assert!(matches!(error, ReadError::Io { ref path, .. } if path.ends_with("oci-layout")));
}

#[test]
fn zstd_layer_unpacks() {
    let work = tempfile::tempdir().unwrap();
    let image = common::image_with_zstd_layer(work.path());
    let dir = work.path().join("layout");
    let rendered = write_oci_layout(&image, ManifestFormat::Oci, &dir, &["v1"]).unwrap();
    assert_eq!(
        rendered.manifest.layers[2].media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );

    // umoci 0.4.7 (Debian 12) cannot unpack zstd layers, so skopeo recompresses them to gzip,
    // which also shows that skopeo decompresses the zstd layer.
    let source = format!("oci:{}:v1", dir.display());
    let to_gzip = ["--dest-compress", "--dest-compress-format", "gzip"];
    let root = common::unpack_with_umoci_after(&source, &to_gzip, work.path());
    assert_two_layer_root(&root);
    assert_eq!(fs::read(root.join("opt/zstd.txt")).unwrap(), b"zstd\n");
}
