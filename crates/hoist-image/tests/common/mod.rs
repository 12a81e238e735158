//! Test support: small gzip layers built in memory, a two-layer image, and runners for the
//! peer tools `skopeo` and `umoci`, which scripts/install-deps.sh installs.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::Compression as GzipLevel;
use flate2::write::GzEncoder;
use hoist_image::{Compression, History, Image, Layer, Platform, digest_bytes};

/// One entry of a test layer.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
}

/// Builds an uncompressed tar stream with fixed times and owners.
pub fn tar_bytes(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
            Entry::File(path, content, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, path, *content).unwrap();
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// Gzips `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), GzipLevel::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Writes a gzip layer made of `entries` into `dir` and describes it.
pub fn gzip_layer(dir: &Path, name: &str, entries: &[Entry<'_>]) -> Layer {
    let tar = tar_bytes(entries);
    let blob = gzip(&tar);
    let path = dir.join(name);
    std::fs::write(&path, &blob).unwrap();
    Layer::from_file(
        path,
        Compression::Gzip,
        digest_bytes(&blob),
        blob.len() as u64,
        digest_bytes(&tar),
    )
}

/// Builds an image of two gzip layers with runtime config set, its blobs under `dir`.
///
/// The second layer replaces `/etc/motd` and adds an executable and a symlink, so an unpacked
/// root shows whether the layers were applied in order.
pub fn two_layer_image(dir: &Path) -> Image {
    let base = gzip_layer(
        dir,
        "base.tar.gz",
        &[
            Entry::Dir("etc/"),
            Entry::File("etc/motd", b"first\n", 0o644),
            Entry::File("etc/os-release", b"ID=test\n", 0o644),
        ],
    );
    let app = gzip_layer(
        dir,
        "app.tar.gz",
        &[
            Entry::Dir("etc/"),
            Entry::File("etc/motd", b"second\n", 0o644),
            Entry::Dir("app/"),
            Entry::File("app/run.sh", b"#!/bin/sh\necho run\n", 0o755),
            Entry::Symlink("app/current", "run.sh"),
        ],
    );

    let mut image = Image::scratch(&Platform::linux_amd64());
    let config = image.config_mut();
    config.created = Some("2025-06-01T12:00:00Z".to_owned());
    config.author = Some("hoist tests".to_owned());
    config.config.env = Some(vec![
        "PATH=/usr/bin:/bin".to_owned(),
        "MODE=test".to_owned(),
    ]);
    config.config.cmd = Some(vec!["/app/run.sh".to_owned()]);
    config.config.working_dir = Some("/app".to_owned());
    config.config.labels = Some(
        [("org.example.team".to_owned(), "build".to_owned())]
            .into_iter()
            .collect(),
    );
    config.config.shell = Some(vec!["/bin/sh".to_owned(), "-ec".to_owned()]);

    image.add_layer(base, history("COPY rootfs / # buildkit"));
    image.add_empty_history(history("ENV MODE=test"));
    image.add_layer(app, history("COPY app /app # buildkit"));
    image
}

fn history(created_by: &str) -> History {
    History {
        created: Some("2025-06-01T12:00:00Z".to_owned()),
        created_by: Some(created_by.to_owned()),
        comment: Some("buildkit.dockerfile.v0".to_owned()),
        ..History::default()
    }
}

/// Runs a peer tool and returns its standard output, failing the test with its standard error
/// when it exits non-zero. `TMPDIR` points into the test's own directory.
pub fn run(program: &str, args: &[&str], tmp: &Path) -> String {
    let mut command = if program == "skopeo" {
        hoist_testkit::skopeo_command()
    } else {
        Command::new(program)
    };
    let output = command
        .args(args)
        .env("TMPDIR", tmp)
        .output()
        .unwrap_or_else(|error| {
            panic!("failed to start {program} (run scripts/install-deps.sh): {error}")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed with {}:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `skopeo inspect` (or `skopeo inspect --config`) on `reference` and parses its output.
pub fn skopeo_inspect(reference: &str, config: bool, tmp: &Path) -> serde_json::Value {
    let mut args = vec!["inspect"];
    if config {
        args.push("--config");
    }
    args.push(reference);
    serde_json::from_str(&run("skopeo", &args, tmp)).unwrap()
}

/// Copies `source` into a new OCI layout with `skopeo copy`, unpacks it with `umoci unpack`
/// and returns the root filesystem directory.
pub fn unpack_with_umoci(source: &str, work: &Path) -> PathBuf {
    unpack_with_umoci_after(source, &[], work)
}

/// Does what [`unpack_with_umoci`] does, passing `copy_options` to `skopeo copy`.
pub fn unpack_with_umoci_after(source: &str, copy_options: &[&str], work: &Path) -> PathBuf {
    let layout = work.join("copied");
    let copied = format!("oci:{}:unpack", layout.display());
    let mut args = vec!["--insecure-policy", "copy"];
    args.extend_from_slice(copy_options);
    args.extend([source, copied.as_str()]);
    run("skopeo", &args, work);

    let bundle = work.join("bundle");
    let image = format!("{}:unpack", layout.display());
    let bundle_arg = bundle.to_str().unwrap();
    run("umoci", &["unpack", "--image", &image, bundle_arg], work);
    bundle.join("rootfs")
}

/// Checks the files that [`two_layer_image`] leaves in an unpacked root.
pub fn assert_two_layer_root(root: &Path) {
    use std::os::unix::fs::PermissionsExt;

    assert_eq!(std::fs::read(root.join("etc/motd")).unwrap(), b"second\n");
    assert_eq!(
        std::fs::read(root.join("etc/os-release")).unwrap(),
        b"ID=test\n"
    );
    let script = root.join("app/run.sh");
    assert_eq!(std::fs::read(&script).unwrap(), b"#!/bin/sh\necho run\n");
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(root.join("app/current")).unwrap(),
        Path::new("run.sh")
    );
}

/// Lists a directory's entry names, sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Writes a zstd layer made of `entries` into `dir` and describes it.
pub fn zstd_layer(dir: &Path, name: &str, entries: &[Entry<'_>]) -> Layer {
    let tar = tar_bytes(entries);
    let blob = zstd::encode_all(tar.as_slice(), 3).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &blob).unwrap();
    Layer::from_file(
        path,
        Compression::Zstd,
        digest_bytes(&blob),
        blob.len() as u64,
        digest_bytes(&tar),
    )
}

/// Builds [`two_layer_image`] plus a zstd layer that adds `/opt/zstd.txt`.
pub fn image_with_zstd_layer(dir: &Path) -> Image {
    let mut image = two_layer_image(dir);
    let layer = zstd_layer(
        dir,
        "extra.tar.zst",
        &[
            Entry::Dir("opt/"),
            Entry::File("opt/zstd.txt", b"zstd\n", 0o600),
        ],
    );
    image.add_layer(layer, history("COPY zstd.txt /opt/"));
    image
}
