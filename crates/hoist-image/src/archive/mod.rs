//! docker-archive tarballs, as `docker save` writes them: `manifest.json`, `repositories` and
//! the blobs.
//!
//! NOTE: the tests check the output with `skopeo copy docker-archive:` only, because neither
//! podman nor Docker is installed on the test machines.

use serde::{Deserialize, Serialize};

mod read;
mod write;

pub use read::read_docker_archive;
pub use write::write_docker_archive;

/// Name of the archive entry that lists the images.
const MANIFEST_ENTRY: &str = "manifest.json";

/// One image of an archive's `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifestEntry {
    /// Archive path of the image config.
    config: String,
    /// Names of the image, each `name:tag`.
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    /// Archive paths of the layer blobs, base layer first.
    layers: Vec<String>,
}
