//! docker-archive output: what hoist writes, what skopeo and umoci make of it, how hoist reads
//! it back, and how it rejects malformed archives.

// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{
    Entry, assert_two_layer_root, dir_entries, gzip, skopeo_inspect, tar_bytes, two_layer_image,
};
use hoist_image::{
    Compression, ImageConfig, ManifestFormat, Platform, ReadError, WriteError, digest_bytes,
    read_docker_archive, write_docker_archive,
};

fn written_archive(work: &Path) -> (hoist_image::Image, PathBuf) {
    let image = two_layer_image(work);
    let path = work.join("image.tar");
    write_docker_archive(&image, &path, &["example/app:v1", "example/app:latest"]).unwrap();
    (image, path)
}

#[test]
fn skopeo_inspects_archive() {
    let work = tempfile::tempdir().unwrap();
    let (image, path) = written_archive(work.path());

    let reference = format!("docker-archive:{}", path.display());
    let inspected = skopeo_inspect(&reference, false, work.path());
    // skopeo serves docker-archive layers uncompressed, so it names them by diff ID.
    let layers: Vec<&str> = inspected["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer.as_str().unwrap())
        .collect();
    let diff_ids: Vec<String> = image
        .config()
        .rootfs
        .diff_ids
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(layers, diff_ids);
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Labels"]["org.example.team"], "build");

    // skopeo converts the config to the OCI schema, which has no `Shell`.
    let config = skopeo_inspect(&reference, true, work.path());
    assert_eq!(config["config"]["WorkingDir"], "/app");
    assert_eq!(config["author"], "hoist tests");
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
}

#[test]
fn umoci_unpacks_copied_archive() {
    let work = tempfile::tempdir().unwrap();
    let (_, path) = written_archive(work.path());
    let root =
        common::unpack_with_umoci(&format!("docker-archive:{}", path.display()), work.path());
    assert_two_layer_root(&root);
}

#[test]
fn archive_lists_tags_and_blobs() {
    let work = tempfile::tempdir().unwrap();
    let (image, path) = written_archive(work.path());
    let names = entry_names(&path);
    let config_id = digest_bytes(&image.render(ManifestFormat::Oci).unwrap().config_json);
    assert!(names.contains(&format!("blobs/sha256/{}", config_id.digest())));
    for layer in image.layers() {
        assert!(names.contains(&format!("blobs/sha256/{}", layer.digest.digest())));
    }

    let config_name = format!("blobs/sha256/{}", config_id.digest());
    let config: serde_json::Value =
        serde_json::from_slice(&entry_bytes(&path, &config_name)).unwrap();
    assert_eq!(
        config["config"]["Shell"],
        serde_json::json!(["/bin/sh", "-ec"])
    );

    let manifest: serde_json::Value =
        serde_json::from_slice(&entry_bytes(&path, "manifest.json")).unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["example/app:v1", "example/app:latest"])
    );
    assert_eq!(manifest[0]["Layers"].as_array().unwrap().len(), 2);
    let repositories: serde_json::Value =
        serde_json::from_slice(&entry_bytes(&path, "repositories")).unwrap();
    let top = image.layers()[1].digest.digest().to_owned();
    assert_eq!(repositories["example/app"]["v1"], top);
}

#[test]
fn untagged_archive_has_null_repo_tags() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let path = work.path().join("untagged.tar");
    write_docker_archive(&image, &path, &[]).unwrap();

    let manifest: serde_json::Value =
        serde_json::from_slice(&entry_bytes(&path, "manifest.json")).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::Value::Null);
    assert!(!entry_names(&path).contains(&"repositories".to_owned()));
    let loaded = read_docker_archive(&path, None).unwrap();
    assert_eq!(loaded.image.layers().len(), 2);
    let inspected = skopeo_inspect(
        &format!("docker-archive:{}", path.display()),
        false,
        work.path(),
    );
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn archive_write_is_deterministic() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let first = work.path().join("first.tar");
    let second = work.path().join("second.tar");
    write_docker_archive(&image, &first, &["app:v1"]).unwrap();
    write_docker_archive(&image, &second, &["app:v1"]).unwrap();
    assert_eq!(fs::read(first).unwrap(), fs::read(second).unwrap());
}

#[test]
fn archive_reads_back_unchanged() {
    let work = tempfile::tempdir().unwrap();
    let (image, path) = written_archive(work.path());

    let loaded = read_docker_archive(&path, Some("example/app:v1")).unwrap();
    assert_eq!(loaded.image.config(), image.config());
    assert_eq!(loaded.rendered.format, ManifestFormat::Docker);
    assert_eq!(
        loaded.rendered.config_json,
        image.render(ManifestFormat::Docker).unwrap().config_json
    );
    for (read, written) in loaded.image.layers().iter().zip(image.layers()) {
        assert_eq!(read.digest, written.digest);
        assert_eq!(read.diff_id, written.diff_id);
        assert_eq!(read.size, written.size);
        assert_eq!(read.compression, Compression::Gzip);
        assert_eq!(read.blob.path, path);
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut read.open().unwrap(), &mut bytes).unwrap();
        assert_eq!(bytes, fs::read(&written.blob.path).unwrap());
    }

    let only = read_docker_archive(&path, None).unwrap();
    assert_eq!(only, loaded);
}

#[test]
fn read_image_detects_archive() {
    let work = tempfile::tempdir().unwrap();
    let (_, path) = written_archive(work.path());
    let loaded = hoist_image::read_image(&path, Some("example/app:latest")).unwrap();
    assert_eq!(
        loaded,
        read_docker_archive(&path, Some("example/app:latest")).unwrap()
    );
}

#[test]
fn reference_without_tag_means_latest() {
    let work = tempfile::tempdir().unwrap();
    let (_, path) = written_archive(work.path());
    let untagged = read_docker_archive(&path, Some("example/app")).unwrap();
    let tagged = read_docker_archive(&path, Some("example/app:latest")).unwrap();
    assert_eq!(untagged, tagged);
}

#[test]
fn unknown_tag_lists_archive_tags() {
    let work = tempfile::tempdir().unwrap();
    let (_, path) = written_archive(work.path());
    let error = read_docker_archive(&path, Some("example/app:v9")).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("it has: example/app:v1, example/app:latest"),
        "{error}"
    );
}

#[test]
fn invalid_tag_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    let error =
        write_docker_archive(&image, &out.join("image.tar"), &["app@sha256:00"]).unwrap_err();
    assert!(matches!(error, WriteError::InvalidTag(_)));
    assert!(dir_entries(&out).is_empty());
}

#[test]
fn corrupt_layer_leaves_no_archive() {
    let work = tempfile::tempdir().unwrap();
    let image = two_layer_image(work.path());
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    let target = out.join("image.tar");

    // Same size, other bytes: the digest check fails after the blob was copied.
    let app = image.layers()[1].blob.path.clone();
    let size = fs::metadata(&app).unwrap().len() as usize;
    fs::write(&app, vec![0_u8; size]).unwrap();
    let error = write_docker_archive(&image, &target, &["app:v1"]).unwrap_err();
    assert!(matches!(error, WriteError::BlobMismatch { .. }), "{error}");
    assert!(dir_entries(&out).is_empty());

    fs::write(&app, b"short").unwrap();
    let error = write_docker_archive(&image, &target, &["app:v1"]).unwrap_err();
    assert!(
        matches!(error, WriteError::BlobMismatch { actual_size: 5, .. }),
        "{error}"
    );
    assert!(dir_entries(&out).is_empty());

    fs::remove_file(&app).unwrap();
    let error = write_docker_archive(&image, &target, &["app:v1"]).unwrap_err();
    assert!(matches!(error, WriteError::ReadBlob { .. }), "{error}");
    assert!(dir_entries(&out).is_empty());
}

#[test]
fn previous_archive_survives_failed_write() {
    let work = tempfile::tempdir().unwrap();
    let (image, path) = written_archive(work.path());
    let before = fs::read(&path).unwrap();
    fs::remove_file(&image.layers()[0].blob.path).unwrap();
    assert!(write_docker_archive(&image, &path, &["app:v2"]).is_err());
    assert_eq!(fs::read(&path).unwrap(), before);
}

// Hand-made archives for the reader.

/// One entry of a hand-made archive.
enum Item<'a> {
    File(&'a [u8]),
    Symlink(&'a str),
}

fn build_archive(path: &Path, items: &[(&str, Item<'_>)]) {
    let mut builder = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, item) in items {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        match item {
            Item::File(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, name, *bytes).unwrap();
            }
            Item::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, name, target).unwrap();
            }
        }
    }
    builder.finish().unwrap();
}

fn config_for(diff_ids: &[&[u8]]) -> Vec<u8> {
    let mut config = ImageConfig::scratch(&Platform::linux_amd64());
    config.rootfs.diff_ids = diff_ids.iter().map(|tar| digest_bytes(tar)).collect();
    config.to_json()
}

fn layer_tar() -> Vec<u8> {
    tar_bytes(&[Entry::File("hello.txt", b"hello\n", 0o644)])
}

fn manifest_json(config: &str, layers: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([
        {"Config": config, "RepoTags": ["legacy:1"], "Layers": layers}
    ]))
    .unwrap()
}

#[test]
fn legacy_archive_with_symlinked_layer_reads() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("legacy.tar");
    let layer = layer_tar();
    let config = config_for(&[&layer, &layer]);
    let config_name = format!("{}.json", digest_bytes(&config).digest());

    build_archive(
        &path,
        &[
            ("aaaa/layer.tar", Item::File(&layer)),
            ("bbbb/layer.tar", Item::Symlink("../aaaa/layer.tar")),
            (&config_name, Item::File(&config)),
            (
                "manifest.json",
                Item::File(&manifest_json(
                    &config_name,
                    &["aaaa/layer.tar", "bbbb/layer.tar"],
                )),
            ),
        ],
    );

    let loaded = read_docker_archive(&path, Some("legacy:1")).unwrap();
    let layers = loaded.image.layers();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0].compression, Compression::None);
    assert_eq!(layers[0].digest, digest_bytes(&layer));
    assert_eq!(layers[1].blob, layers[0].blob);
    assert_eq!(
        loaded.rendered.manifest.layers[0].media_type,
        "application/vnd.docker.image.rootfs.diff.tar"
    );
}

#[test]
fn traversal_names_are_rejected() {
    let work = tempfile::tempdir().unwrap();
    // A readable file beside the archive, which a careless reader would open.
    let layer = layer_tar();
    fs::write(work.path().join("x"), &layer).unwrap();
    let config = config_for(&[&layer]);
    let path = work.path().join("evil.tar");
    for name in ["../x", "/etc/passwd", "a/../../x"] {
        build_archive(
            &path,
            &[
                ("config.json", Item::File(&config)),
                (
                    "manifest.json",
                    Item::File(&manifest_json("config.json", &[name])),
                ),
            ],
        );
        let error = read_docker_archive(&path, None).unwrap_err();
        assert!(
            matches!(error, ReadError::UnsafeName { ref name, .. } if name.contains("..") || name.starts_with('/')),
            "{error}"
        );
        assert!(error.to_string().contains("evil.tar"), "{error}");
    }

    build_archive(
        &path,
        &[(
            "manifest.json",
            Item::File(&manifest_json("../config.json", &[])),
        )],
    );
    let error = read_docker_archive(&path, None).unwrap_err();
    assert!(matches!(error, ReadError::UnsafeName { .. }), "{error}");
}

#[test]
fn escaping_symlink_is_rejected() {
    let work = tempfile::tempdir().unwrap();
    let layer = layer_tar();
    fs::write(work.path().join("x"), &layer).unwrap();
    let config = config_for(&[&layer]);
    let path = work.path().join("evil.tar");
    for target in ["../../x", "/etc/passwd"] {
        build_archive(
            &path,
            &[
                ("layer/layer.tar", Item::Symlink(target)),
                ("config.json", Item::File(&config)),
                (
                    "manifest.json",
                    Item::File(&manifest_json("config.json", &["layer/layer.tar"])),
                ),
            ],
        );
        let error = read_docker_archive(&path, None).unwrap_err();
        assert!(
            matches!(error, ReadError::UnsafeName { .. }),
            "{target}: {error}"
        );
    }
}

#[test]
fn symlink_cycle_is_rejected() {
    let work = tempfile::tempdir().unwrap();
    let layer = layer_tar();
    let config = config_for(&[&layer]);
    let path = work.path().join("cycle.tar");
    build_archive(
        &path,
        &[
            ("a", Item::Symlink("b")),
            ("b", Item::Symlink("a")),
            ("config.json", Item::File(&config)),
            (
                "manifest.json",
                Item::File(&manifest_json("config.json", &["a"])),
            ),
        ],
    );
    let error = read_docker_archive(&path, None).unwrap_err();
    assert!(matches!(error, ReadError::UnsafeName { .. }), "{error}");
}

#[test]
fn missing_layer_entry_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let layer = layer_tar();
    let config = config_for(&[&layer]);
    let path = work.path().join("missing.tar");
    build_archive(
        &path,
        &[
            ("config.json", Item::File(&config)),
            (
                "manifest.json",
                Item::File(&manifest_json("config.json", &["gone/layer.tar"])),
            ),
        ],
    );
    let error = read_docker_archive(&path, None).unwrap_err();
    assert!(matches!(error, ReadError::MissingBlob { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!("missing blob {}:gone/layer.tar", path.display())
    );
}

#[test]
fn bad_manifest_json_names_entry() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("bad.tar");
    build_archive(&path, &[("manifest.json", Item::File(b"[{\"Config\": "))]);
    let error = read_docker_archive(&path, None).unwrap_err();
    assert!(matches!(error, ReadError::Json { .. }), "{error}");
    assert!(
        error.to_string().contains("bad.tar:manifest.json"),
        "{error}"
    );

    build_archive(&path, &[("other.txt", Item::File(b""))]);
    let error = read_docker_archive(&path, None).unwrap_err();
    assert!(matches!(error, ReadError::MissingBlob { .. }), "{error}");

    fs::write(&path, b"this is not a tar archive at all").unwrap();
    assert!(read_docker_archive(&path, None).is_err());
}

/// Returns `len` bytes of a fixed pseudo-random sequence, which contains control bytes and
/// invalid UTF-8.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    let mut next = || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        state.to_be_bytes()[1]
    };
    (0..len).map(|_| next()).collect()
}

fn assert_printable(message: &str) {
    assert!(!message.chars().any(char::is_control), "{message:?}");
}

#[test]
fn random_bytes_are_invalid_archive() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("noise.bin");
    fs::write(&path, noise(4096)).unwrap();

    let error = read_docker_archive(&path, None).unwrap_err();

    assert!(
        matches!(error, ReadError::InvalidArchive { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    let expected = format!("{} is not a valid tar archive: ", path.display());
    assert!(message.starts_with(&expected), "{message:?}");
    assert_printable(&message);
}

#[test]
fn damaged_header_text_is_escaped() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("damaged.tar");
    let mut block = vec![0_u8; 1024];
    let name = b"\x1b[31mred\x07";
    block[..name.len()].copy_from_slice(name);
    block[148..156].copy_from_slice(b"\x1b]0;x\x07\xff\0");
    fs::write(&path, &block).unwrap();

    let error = read_docker_archive(&path, None).unwrap_err();

    let message = error.to_string();
    assert!(
        matches!(error, ReadError::InvalidArchive { .. }),
        "{error:?}"
    );
    assert!(
        message.contains("when getting cksum for \\u{1b}[31mred\\u{7}"),
        "{message:?}"
    );
    assert_printable(&message);
}

#[test]
fn entry_name_controls_are_escaped() {
    let work = tempfile::tempdir().unwrap();
    let layer = layer_tar();
    let config = config_for(&[&layer]);
    let path = work.path().join("names.tar");
    build_archive(
        &path,
        &[
            ("config.json", Item::File(&config)),
            (
                "manifest.json",
                Item::File(&manifest_json("config.json", &["\u{1b}]0;title\u{7}"])),
            ),
        ],
    );

    let error = read_docker_archive(&path, None).unwrap_err();

    assert!(matches!(error, ReadError::MissingBlob { .. }), "{error}");
    let message = error.to_string();
    assert!(message.ends_with(":\\u{1b}]0;title\\u{7}"), "{message:?}");
    assert_printable(&message);
}

#[test]
fn available_tags_are_escaped() {
    let work = tempfile::tempdir().unwrap();
    let layer = layer_tar();
    let config = config_for(&[&layer]);
    let path = work.path().join("tags.tar");
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": "config.json", "RepoTags": ["app:\u{1b}[2J"], "Layers": ["layer.tar"]}
    ]))
    .unwrap();
    build_archive(
        &path,
        &[
            ("layer.tar", Item::File(&layer)),
            ("config.json", Item::File(&config)),
            ("manifest.json", Item::File(&manifest)),
        ],
    );

    let error = read_docker_archive(&path, Some("other:1")).unwrap_err();

    assert!(
        matches!(error, ReadError::ReferenceNotFound { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.ends_with("it has: app:\\u{1b}[2J"), "{message:?}");
    assert_printable(&message);
}

#[test]
fn diff_id_mismatch_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let layer = layer_tar();
    let other = tar_bytes(&[Entry::File("other.txt", b"other\n", 0o644)]);
    let config = config_for(&[&other]);
    let path = work.path().join("mismatch.tar");
    let gzipped = gzip(&layer);
    build_archive(
        &path,
        &[
            ("layer.tar.gz", Item::File(&gzipped)),
            ("config.json", Item::File(&config)),
            (
                "manifest.json",
                Item::File(&manifest_json("config.json", &["layer.tar.gz"])),
            ),
        ],
    );
    let error = read_docker_archive(&path, None).unwrap_err();
    let expected = digest_bytes(&other).to_string();
    assert!(
        matches!(error, ReadError::DigestMismatch { expected: ref wanted, .. } if *wanted == expected),
        "{error}"
    );
}

#[test]
fn named_blob_digest_is_checked() {
    let work = tempfile::tempdir().unwrap();
    let layer = layer_tar();
    let config = config_for(&[&layer]);
    let path = work.path().join("named.tar");
    let wrong = format!("blobs/sha256/{}", "0".repeat(64));
    build_archive(
        &path,
        &[
            (&wrong, Item::File(&layer)),
            ("config.json", Item::File(&config)),
            (
                "manifest.json",
                Item::File(&manifest_json("config.json", &[&wrong])),
            ),
        ],
    );
    let error = read_docker_archive(&path, None).unwrap_err();
    assert!(matches!(error, ReadError::DigestMismatch { .. }), "{error}");
}

#[test]
fn layer_count_mismatch_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let layer = layer_tar();
    let config = config_for(&[&layer, &layer]);
    let path = work.path().join("count.tar");
    build_archive(
        &path,
        &[
            ("layer.tar", Item::File(&layer)),
            ("config.json", Item::File(&config)),
            (
                "manifest.json",
                Item::File(&manifest_json("config.json", &["layer.tar"])),
            ),
        ],
    );
    let error = read_docker_archive(&path, None).unwrap_err();
    assert!(matches!(error, ReadError::Image { .. }), "{error}");
}

#[test]
fn duplicate_entries_are_rejected() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("dup.tar");
    build_archive(
        &path,
        &[
            ("manifest.json", Item::File(b"[]")),
            ("./manifest.json", Item::File(b"[]")),
        ],
    );
    let error = read_docker_archive(&path, None).unwrap_err();
    assert!(matches!(error, ReadError::DuplicateEntry { .. }), "{error}");
}

fn entry_names(path: &Path) -> Vec<String> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            entry
                .unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn entry_bytes(path: &Path, name: &str) -> Vec<u8> {
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap() == Path::new(name) {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            return bytes;
        }
    }
    panic!("{name} is not in {}", path.display());
}

#[test]
fn zstd_archive_reads_back_as_oci() {
    let work = tempfile::tempdir().unwrap();
    let image = common::image_with_zstd_layer(work.path());
    let path = work.path().join("image.tar");
    write_docker_archive(&image, &path, &["app:zstd"]).unwrap();

    let loaded = read_docker_archive(&path, None).unwrap();
    assert_eq!(loaded.image.layers()[2].compression, Compression::Zstd);
    assert_eq!(loaded.image.layers()[2].diff_id, image.layers()[2].diff_id);
    // Docker schema 2 has no zstd layer type, so the image reads back in the OCI format.
    assert_eq!(loaded.rendered.format, ManifestFormat::Oci);

    let root =
        common::unpack_with_umoci(&format!("docker-archive:{}", path.display()), work.path());
    assert_eq!(fs::read(root.join("opt/zstd.txt")).unwrap(), b"zstd\n");
}
