//! The registry calls of a run: the push access check before the build and the push to
//! every destination after it.

use std::collections::BTreeMap;

use anyhow::Context as _;
use hoist_image::LoadedImage;
use hoist_registry::{Client, ImageReference};

use crate::options::{Options, repositories};

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
