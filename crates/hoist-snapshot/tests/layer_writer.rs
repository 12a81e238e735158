//! The layer writer: entry order, hardlinks, digests, reproducibility, and
//! extraction of its layers by GNU tar.

// Helpers of a test stop it on the first failure.
#![allow(clippy::unwrap_used)]

mod support;

use hoist_snapshot::{
    ChangeSet, Compression, LayerDigests, LayerOptions, WriteError, decompress, write_layer,
};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Command;

fn options(compression: Compression) -> LayerOptions {
    LayerOptions {
        compression,
        mtime_epoch: None,
    }
}

fn write(source: &Path, changes: &ChangeSet, options: &LayerOptions) -> (LayerDigests, Vec<u8>) {
    let mut blob = Vec::new();
    let digests = write_layer(source, changes, options, &mut blob).unwrap();
    (digests, blob)
}

fn sample_tree() -> (tempfile::TempDir, ChangeSet) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-alias")).unwrap();
    std::os::unix::fs::symlink("tool", root.join("usr/bin/link")).unwrap();
    let long = "n".repeat(150);
    std::fs::write(root.join(&long), vec![7u8; 700]).unwrap();
    xattr::set(root.join("usr/bin/tool"), "user.origin", b"hoist\n\x00bin").unwrap();
    support::set_mtime(&root.join("usr/bin/tool"), 1_700_000_000, 500);
    let changes = ChangeSet {
        added: vec![
            "usr/bin/tool".into(),
            "usr/bin/tool-alias".into(),
            "usr/bin/link".into(),
            long.into(),
        ],
        deleted: vec!["etc/old".into()],
        ..ChangeSet::default()
    };
    (dir, changes)
}

fn entries(blob: &[u8]) -> Vec<(String, tar::EntryType, Option<String>)> {
    let mut archive = tar::Archive::new(decompress(blob).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
                link,
            )
        })
        .collect()
}

#[test]
fn entries_are_sorted_with_parents() {
    let (dir, changes) = sample_tree();
    let (_, blob) = write(dir.path(), &changes, &options(Compression::None));
    let names: Vec<String> = entries(&blob).into_iter().map(|e| e.0).collect();
    let long = "n".repeat(150);
    assert_eq!(
        names,
        [
            "etc/",
            "etc/.wh.old",
            &long,
            "usr/",
            "usr/bin/",
            "usr/bin/link",
            "usr/bin/tool",
            "usr/bin/tool-alias"
        ]
    );
}

#[test]
fn hardlinks_use_relative_names() {
    let (dir, changes) = sample_tree();
    let (_, blob) = write(dir.path(), &changes, &options(Compression::None));
    let alias = entries(&blob)
        .into_iter()
        .find(|e| e.0 == "usr/bin/tool-alias")
        .unwrap();
    assert_eq!(alias.1, tar::EntryType::Link);
    assert_eq!(alias.2.as_deref(), Some("usr/bin/tool"));
}

#[test]
fn digests_match_blob_and_tar() {
    let (dir, changes) = sample_tree();
    let (digests, blob) = write(
        dir.path(),
        &changes,
        &options(Compression::Gzip { level: 6 }),
    );
    let mut tar_stream = Vec::new();
    decompress(&blob[..])
        .unwrap()
        .read_to_end(&mut tar_stream)
        .unwrap();
    let hex = |bytes: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    assert_eq!(digests.digest.as_str(), hex(&blob));
    assert_eq!(digests.diff_id.as_str(), hex(&tar_stream));
    assert_eq!(digests.size, blob.len() as u64);
    assert_eq!(digests.tar_size, tar_stream.len() as u64);
    assert_eq!(
        digests.media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
}

#[test]
fn same_tree_gives_same_digests() {
    let (dir, changes) = sample_tree();
    let zstd = Compression::Zstd {
        level: 3,
        workers: NonZeroUsize::MIN,
    };
    let (first, _) = write(dir.path(), &changes, &options(zstd));
    let (second, _) = write(dir.path(), &changes, &options(zstd));
    assert_eq!(first, second);
}

#[test]
fn epoch_clamps_later_mtimes() {
    let (dir, changes) = sample_tree();
    let clamped = LayerOptions {
        compression: Compression::None,
        mtime_epoch: Some(1_000),
    };
    let (_, blob) = write(dir.path(), &changes, &clamped);
    let mut archive = tar::Archive::new(&blob[..]);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        assert!(
            entry.header().mtime().unwrap() <= 1_000,
            "{:?}",
            entry.path()
        );
    }
}

#[test]
fn missing_changed_path_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let changes = ChangeSet {
        added: vec!["gone".into()],
        ..ChangeSet::default()
    };
    let mut blob = Vec::new();
    let error = write_layer(dir.path(), &changes, &options(Compression::None), &mut blob)
        .unwrap_err()
        .to_string();
    assert!(error.contains("gone"), "{error}");
}

/// An output whose reader is gone: every write fails with a broken pipe.
struct ClosedOutput;

impl std::io::Write for ClosedOutput {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn read_error_with_closed_output_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let changes = ChangeSet {
        added: vec!["gone".into()],
        ..ChangeSet::default()
    };
    let compressions = [
        Compression::None,
        Compression::Gzip { level: 1 },
        Compression::ParallelGzip {
            level: 1,
            threads: NonZeroUsize::MIN,
        },
        Compression::Zstd {
            level: 1,
            workers: NonZeroUsize::MIN,
        },
    ];
    for compression in compressions {
        let error = write_layer(
            dir.path(),
            &changes,
            &options(compression),
            &mut ClosedOutput,
        )
        .unwrap_err();
        assert!(
            matches!(&error, WriteError::Read { path, .. } if path.ends_with("gone")),
            "{compression:?}: {error:?}"
        );
    }
}

#[test]
fn parent_path_in_changes_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let changes = ChangeSet {
        added: vec![PathBuf::from("../x")],
        ..ChangeSet::default()
    };
    let mut blob = Vec::new();
    assert!(write_layer(dir.path(), &changes, &options(Compression::None), &mut blob).is_err());
}

#[test]
fn gnu_tar_extracts_layer_identically() {
    let (dir, mut changes) = sample_tree();
    changes.deleted.clear();
    std::fs::remove_dir(dir.path().join("etc")).unwrap();

    let (_, blob) = write(
        dir.path(),
        &changes,
        &options(Compression::Gzip { level: 6 }),
    );
    let scratch = tempfile::tempdir().unwrap();
    let layer = scratch.path().join("layer.tar.gz");
    std::fs::write(&layer, &blob).unwrap();
    let out = scratch.path().join("out");
    std::fs::create_dir(&out).unwrap();

    let status = Command::new("tar")
        .args([
            "--extract",
            "--gzip",
            "--same-permissions",
            "--numeric-owner",
        ])
        .args(["--xattrs", "--xattrs-include=*", "--file"])
        .arg(&layer)
        .arg("--directory")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());

    let extracted = support::observe(&out);
    let source = support::observe(dir.path());
    for (path, observed) in &source {
        assert_eq!(extracted.get(path), Some(observed), "{}", path.display());
    }
    assert_eq!(extracted.len(), source.len());
}

#[test]
fn gnu_tar_lists_pax_mtime_and_long_name() {
    let (dir, changes) = sample_tree();
    let (_, blob) = write(dir.path(), &changes, &options(Compression::None));
    let scratch = tempfile::tempdir().unwrap();
    let layer = scratch.path().join("layer.tar");
    std::fs::write(&layer, &blob).unwrap();
    let output = Command::new("tar")
        .args(["--list", "--verbose", "--full-time", "--file"])
        .arg(&layer)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing = String::from_utf8(output.stdout).unwrap();
    assert!(listing.contains(&"n".repeat(150)), "{listing}");
    assert!(
        listing.contains("usr/bin/tool-alias link to usr/bin/tool"),
        "{listing}"
    );
}
