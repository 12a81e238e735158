//! Steps that turn a root filesystem into a one-layer OCI image layout with
//! umoci, and the one-entry image index next to it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use super::{PATH_ENV, SOURCE_DATE_EPOCH};
use crate::client::{OCI_INDEX, OCI_MANIFEST};
use crate::dates::rfc3339;
use crate::error::{Error, Result, io_error};
use crate::process::run;

/// Creates a layout with an empty image and unpacks it, which leaves an
/// empty `bundle/rootfs` that `umoci repack` turns into one layer.
pub(super) fn start_empty_image(layout: &Path, tag: &str, bundle: &Path) -> Result<()> {
    run(Command::new("umoci").args(["init", "--layout"]).arg(layout))?;
    run(Command::new("umoci")
        .args(["new", "--image"])
        .arg(image_arg(layout, tag)))?;
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(image_arg(layout, tag))
        .arg(bundle))?;
    let rootfs = bundle.join("rootfs");
    fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755))
        .map_err(io_error("set mode of", &rootfs))
}

/// Repacks the bundle into one layer and sets the config with pinned dates.
pub(super) fn commit_layer(
    layout: &Path,
    tag: &str,
    bundle: &Path,
    created_by: &str,
    cmd: &str,
) -> Result<()> {
    let created = rfc3339(SOURCE_DATE_EPOCH);
    run(Command::new("umoci")
        .args(["repack", "--image"])
        .arg(image_arg(layout, tag))
        .args([
            "--history.created",
            &created,
            "--history.author",
            "hoist-testkit",
        ])
        .args(["--history.created_by", created_by])
        .arg(bundle))?;
    run(Command::new("umoci")
        .args(["config", "--image"])
        .arg(image_arg(layout, tag))
        .args([
            "--no-history",
            "--created",
            &created,
            "--author",
            "hoist-testkit",
        ])
        .args(["--architecture", oci_architecture(), "--os", "linux"])
        .args(["--config.env", PATH_ENV, "--config.cmd", cmd]))?;
    run(Command::new("umoci").args(["gc", "--layout"]).arg(layout))?;
    Ok(())
}

/// Writes an OCI image index with one entry (this platform) pointing at
/// `tag`, and tags it `index_tag` in the layout.
pub(super) fn add_index(layout: &Path, tag: &str, index_tag: &str) -> Result<()> {
    let index_path = layout.join("index.json");
    let mut index = read_json(&index_path)?;
    let manifest = find_tag(&index, tag).ok_or_else(|| {
        Error::InvalidSetup(format!("tag {tag} missing in {}", index_path.display()))
    })?;
    let image_index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": manifest["digest"],
            "size": manifest["size"],
            "platform": { "architecture": oci_architecture(), "os": "linux" },
        }],
    });
    let bytes = image_index.to_string().into_bytes();
    let digest = crate::sha256_digest(&bytes);
    let blob = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    fs::write(&blob, &bytes).map_err(io_error("write", &blob))?;

    let descriptor = serde_json::json!({
        "mediaType": OCI_INDEX,
        "digest": digest,
        "size": bytes.len(),
        "annotations": { "org.opencontainers.image.ref.name": index_tag },
    });
    match index["manifests"].as_array_mut() {
        Some(manifests) => manifests.push(descriptor),
        None => {
            return Err(Error::InvalidSetup(format!(
                "no manifests in {}",
                index_path.display()
            )));
        }
    }
    fs::write(&index_path, index.to_string()).map_err(io_error("write", &index_path))
}

fn find_tag<'a>(index: &'a serde_json::Value, tag: &str) -> Option<&'a serde_json::Value> {
    index["manifests"].as_array()?.iter().find(|descriptor| {
        descriptor["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag)
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes = fs::read(path).map_err(io_error("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        what: path.display().to_string(),
        source,
    })
}

fn image_arg(layout: &Path, tag: &str) -> std::ffi::OsString {
    let mut text = layout.as_os_str().to_os_string();
    text.push(format!(":{tag}"));
    text
}

/// Returns the OCI name of this machine's architecture.
pub(super) fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
