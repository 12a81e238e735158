//! The steps after the build: labels and timestamps, the tarball and layout outputs, the
//! push to every destination and the digest files.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use hoist_image::{Image, LoadedImage, ManifestFormat};
use hoist_registry::{Client, ImageReference};

use crate::options::{Options, repositories};

/// The creation time that `--reproducible` writes everywhere.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Applies `--label` and the creation time (now, or the epoch with `--reproducible`) to
/// the image config, and renders the manifest.
pub(crate) fn finalize(mut image: Image, options: &Options) -> anyhow::Result<LoadedImage> {
    let config = image.config_mut();
    if !options.labels.is_empty() {
        let labels = config.config.labels.get_or_insert_with(BTreeMap::new);
        labels.extend(options.labels.clone());
    }
    if options.reproducible {
        config.created = Some(EPOCH.to_owned());
        for entry in &mut config.history {
            entry.created = Some(EPOCH.to_owned());
        }
    } else {
        config.created = Some(now_rfc3339());
    }
    let rendered = image
        .render(ManifestFormat::Oci)
        .context("failed to render the image manifest")?;
    Ok(LoadedImage { image, rendered })
}

fn now_rfc3339() -> String {
    let format = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|now| now.format(&format).ok())
        .unwrap_or_else(|| EPOCH.to_owned())
}

/// Writes `--tar-path` and `--oci-layout-path`, tagged with the destinations' tags.
pub(crate) fn write_outputs(image: &LoadedImage, options: &Options) -> anyhow::Result<()> {
    if let Some(path) = &options.tar_path {
        let names: Vec<String> = options
            .destinations
            .iter()
            .filter(|destination| destination.tag().is_some())
            .map(ToString::to_string)
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        hoist_image::write_docker_archive(&image.image, path, &names)
            .with_context(|| format!("failed to write the tarball {}", path.display()))?;
        tracing::info!(path = %path.display(), "wrote the image tarball");
    }
    if let Some(dir) = &options.oci_layout_path {
        let mut tags: Vec<&str> = options
            .destinations
            .iter()
            .filter_map(ImageReference::tag)
            .collect();
        tags.dedup();
        hoist_image::write_oci_layout(&image.image, ManifestFormat::Oci, dir, &tags)
            .with_context(|| format!("failed to write the OCI layout {}", dir.display()))?;
        tracing::info!(path = %dir.display(), "wrote the OCI image layout");
    }
    Ok(())
}

/// Checks push access to each destination repository before the build.
pub(crate) fn check_push_access(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    destinations: &[ImageReference],
) -> anyhow::Result<()> {
    for destination in repositories(destinations) {
        runtime
            .block_on(client.check_push_access(destination))
            .with_context(|| {
                format!(
                    "cannot push to {}/{}",
                    destination.registry(),
                    destination.repository()
                )
            })?;
    }
    Ok(())
}

/// Pushes the image to every destination, repeating the whole push `--push-retry` times,
/// and logs one line per tag. Returns the manifest digest.
pub(crate) fn push(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    image: &LoadedImage,
    options: &Options,
    mount_from: &BTreeMap<String, ImageReference>,
) -> anyhow::Result<String> {
    let attempts = options.push_retries.saturating_add(1);
    let mut attempt = 1;
    let outcome = loop {
        let result = runtime.block_on(client.push(image, &options.destinations, mount_from));
        match result {
            Ok(outcome) => break outcome,
            Err(error) if attempt < attempts => {
                tracing::warn!(attempt, %error, "push failed, retrying");
                std::thread::sleep(std::time::Duration::from_secs(1 << (attempt - 1).min(5)));
                attempt += 1;
            }
            Err(error) => {
                return Err(error).with_context(|| {
                    format!("failed to push the image after {attempt} attempt(s)")
                });
            }
        }
    };
    for destination in &outcome.references {
        tracing::info!(digest = %outcome.digest, "pushed {destination}");
    }
    Ok(outcome.digest)
}

/// Writes `--digest-file`, `--image-name-with-digest-file` and
/// `--image-name-tag-with-digest-file`.
pub(crate) fn write_digest_files(digest: &str, options: &Options) -> anyhow::Result<()> {
    if let Some(path) = &options.digest_file {
        write_file(path, digest)?;
    }
    if let Some(path) = &options.image_name_with_digest_file {
        let mut seen = Vec::new();
        let mut text = String::new();
        for destination in &options.destinations {
            let line = format!(
                "{}/{}@{digest}\n",
                destination.registry(),
                destination.repository()
            );
            if !seen.contains(&line) {
                text.push_str(&line);
                seen.push(line);
            }
        }
        write_file(path, &text)?;
    }
    if let Some(path) = &options.image_name_tag_with_digest_file {
        let text: String = options
            .destinations
            .iter()
            .map(|destination| {
                let name = format!("{}/{}", destination.registry(), destination.repository());
                let tag = destination.tag().unwrap_or("latest");
                format!("{name}:{tag}@{digest}\n")
            })
            .collect();
        write_file(path, &text)?;
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))
}
