//! Reading an image from either output kind, chosen by what the path is.

use std::fs;
use std::path::Path;

use crate::archive::read_docker_archive;
use crate::error::ReadError;
use crate::image::LoadedImage;
use crate::layout::read_oci_layout;

/// Reads the image named `reference` (or the only image) from `path`: an OCI image layout when
/// `path` is a directory, a docker-archive tarball otherwise.
///
/// In a layout `reference` is matched against the `org.opencontainers.image.ref.name`
/// annotation, and in an archive against `RepoTags` entries (`name:tag`).
pub fn read_image(path: &Path, reference: Option<&str>) -> Result<LoadedImage, ReadError> {
    let metadata = fs::metadata(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    if metadata.is_dir() {
        read_oci_layout(path, reference)
    } else {
        read_docker_archive(path, reference)
    }
}
