//! Layers written by hoist, unpacked by `umoci` from an OCI image layout,
//! give the same tree as hoist's own apply.

// A failed setup step should stop the test.
#![allow(clippy::unwrap_used)]

mod support;

use hoist_snapshot::{
    ApplyOptions, ChangeSet, Compression, LayerDigests, LayerOptions, apply_layer, write_layer,
};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;
use std::process::Command;

/// Stores `data` as a blob of the layout and returns its digest.
fn put_blob(layout: &Path, data: &[u8]) -> String {
    let hex = hex::encode(Sha256::digest(data));
    fs::write(layout.join("blobs/sha256").join(&hex), data).unwrap();
    format!("sha256:{hex}")
}

fn write_image(layout: &Path, layers: &[(LayerDigests, Vec<u8>)]) {
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    for (digests, blob) in layers {
        put_blob(layout, blob);
        diff_ids.push(format!("\"{}\"", digests.diff_id));
        descriptors.push(format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
            digests.media_type, digests.digest, digests.size
        ));
    }

    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let config_digest = put_blob(layout, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
        config_digest,
        config.len(),
        descriptors.join(",")
    );
    let manifest_digest = put_blob(layout, manifest.as_bytes());

    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"test"}}}}]}}"#,
        manifest_digest,
        manifest.len()
    );
    fs::write(layout.join("index.json"), index).unwrap();
}

fn layer(source: &Path, changes: &ChangeSet) -> (LayerDigests, Vec<u8>) {
    let options = LayerOptions {
        compression: Compression::Gzip { level: 6 },
        mtime_epoch: None,
    };
    let mut blob = Vec::new();
    let digests = write_layer(source, changes, &options, &mut blob).unwrap();
    (digests, blob)
}

#[test]
fn umoci_unpacks_hoist_layers_identically() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    fs::create_dir_all(source.join("etc/conf.d")).unwrap();
    fs::create_dir_all(source.join("usr/bin")).unwrap();
    fs::write(source.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(source.join("etc/conf.d/a"), "a\n").unwrap();
    fs::write(source.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
    fs::hard_link(source.join("usr/bin/tool"), source.join("usr/bin/tool2")).unwrap();
    std::os::unix::fs::symlink("../etc/passwd", source.join("usr/passwd-link")).unwrap();
    let base_changes = ChangeSet {
        added: [
            "etc/passwd",
            "etc/conf.d/a",
            "usr/bin/tool",
            "usr/bin/tool2",
            "usr/passwd-link",
        ]
        .map(Into::into)
        .to_vec(),
        ..ChangeSet::default()
    };
    let base = layer(&source, &base_changes);

    fs::remove_file(source.join("etc/passwd")).unwrap();
    fs::write(source.join("etc/conf.d/b"), "b\n").unwrap();
    let step_changes = ChangeSet {
        added: vec!["etc/conf.d/b".into()],
        deleted: vec!["etc/passwd".into()],
        opaque: vec!["etc/conf.d".into()],
        ..ChangeSet::default()
    };
    let step = layer(&source, &step_changes);

    let expected = work.path().join("expected");
    fs::create_dir(&expected).unwrap();
    for (_, blob) in [&base, &step] {
        apply_layer(&blob[..], &expected, &ApplyOptions { privileged: true }).unwrap();
    }

    let layout = work.path().join("layout");
    write_image(&layout, &[base, step]);
    let bundle = work.path().join("bundle");
    let output = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:test", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let unpacked = support::observe(&bundle.join("rootfs"));
    let applied = support::observe(&expected);
    assert_eq!(
        unpacked.keys().collect::<Vec<_>>(),
        applied.keys().collect::<Vec<_>>()
    );
    for (path, observed) in &applied {
        assert_eq!(unpacked.get(path), Some(observed), "{}", path.display());
    }
    assert!(!applied.contains_key(Path::new("etc/passwd")));
    assert!(!applied.contains_key(Path::new("etc/conf.d/a")));
}
