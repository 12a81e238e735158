//! The steps after a build that need no registry: the final labels and
//! creation times, the docker-archive and OCI layout outputs, and the files
//! that record the pushed digest.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use hoist_image::{Image, ImageError, LoadedImage, ManifestFormat, WriteError};
use hoist_registry::ImageReference;

/// The creation time of a reproducible image.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// A failure to finish the image or to write an output file.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The manifest of the finished image could not be rendered.
    #[error("failed to render the image manifest")]
    Render {
        /// The cause.
        source: ImageError,
    },
    /// The docker-archive could not be written.
    #[error("failed to write the tarball {}", path.display())]
    Tarball {
        /// The tarball path.
        path: PathBuf,
        /// The cause.
        source: WriteError,
    },
    /// The OCI image layout could not be written.
    #[error("failed to write the OCI layout {}", path.display())]
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// The cause.
        source: WriteError,
    },
    /// A digest file could not be written.
    #[error("failed to write {}", path.display())]
    DigestFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// The creation time written into the image config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreationTime {
    /// The current time, to the second, for the image config only.
    Now,
    /// The Unix epoch, for the image config and every history entry, so that
    /// the same input gives the same digest.
    Epoch,
}

/// Adds `labels` to the image config, sets the creation time and renders the
/// OCI manifest.
pub fn finalize(
    mut image: Image,
    labels: &BTreeMap<String, String>,
    created: CreationTime,
) -> Result<LoadedImage, OutputError> {
    let config = image.config_mut();
    if !labels.is_empty() {
        let image_labels = config.config.labels.get_or_insert_with(BTreeMap::new);
        image_labels.extend(labels.clone());
    }
    match created {
        CreationTime::Epoch => {
            config.created = Some(EPOCH.to_owned());
            for entry in &mut config.history {
                entry.created = Some(EPOCH.to_owned());
            }
        }
        CreationTime::Now => config.created = Some(now_rfc3339()),
    }
    let rendered = image
        .render(ManifestFormat::Oci)
        .map_err(|source| OutputError::Render { source })?;
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

/// The output files of a build, each written when its path is set. The
/// names are those of Kaniko's flags.
#[derive(Debug, Clone, Default)]
pub struct OutputFiles {
    /// `--tar-path`: a docker-archive (`docker load` format).
    pub tar_path: Option<PathBuf>,
    /// `--oci-layout-path`: an OCI image layout directory.
    pub oci_layout_path: Option<PathBuf>,
    /// `--digest-file`: the manifest digest.
    pub digest_file: Option<PathBuf>,
    /// `--image-name-with-digest-file`: `registry/repository@digest` of each
    /// repository, one a line.
    pub image_name_with_digest_file: Option<PathBuf>,
    /// `--image-name-tag-with-digest-file`: `registry/repository:tag@digest`
    /// of each destination, one a line.
    pub image_name_tag_with_digest_file: Option<PathBuf>,
}

impl OutputFiles {
    /// Writes the docker-archive and the OCI layout, tagged with the tags of
    /// `destinations`.
    pub fn write_image(
        &self,
        image: &LoadedImage,
        destinations: &[ImageReference],
    ) -> Result<(), OutputError> {
        if let Some(path) = &self.tar_path {
            write_tarball(image, path, destinations)?;
        }
        if let Some(dir) = &self.oci_layout_path {
            write_layout(image, dir, destinations)?;
        }
        Ok(())
    }

    /// Writes the files that record `digest` for `destinations`.
    pub fn write_digests(
        &self,
        digest: &str,
        destinations: &[ImageReference],
    ) -> Result<(), OutputError> {
        if let Some(path) = &self.digest_file {
            write_file(path, digest)?;
        }
        if let Some(path) = &self.image_name_with_digest_file {
            write_file(path, &names_with_digest(digest, destinations))?;
        }
        if let Some(path) = &self.image_name_tag_with_digest_file {
            write_file(path, &name_tags_with_digest(digest, destinations))?;
        }
        Ok(())
    }
}

/// Writes a docker-archive named after the destinations that have a tag.
fn write_tarball(
    image: &LoadedImage,
    path: &Path,
    destinations: &[ImageReference],
) -> Result<(), OutputError> {
    let names: Vec<String> = destinations
        .iter()
        .filter(|destination| destination.tag().is_some())
        .map(ToString::to_string)
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    hoist_image::write_docker_archive(&image.image, path, &names).map_err(|source| {
        OutputError::Tarball {
            path: path.to_path_buf(),
            source,
        }
    })?;
    tracing::info!(path = %path.display(), "wrote the image tarball");
    Ok(())
}

/// Writes an OCI layout with the destinations' tags.
fn write_layout(
    image: &LoadedImage,
    dir: &Path,
    destinations: &[ImageReference],
) -> Result<(), OutputError> {
    let mut tags: Vec<&str> = destinations
        .iter()
        .filter_map(ImageReference::tag)
        .collect();
    tags.dedup();
    hoist_image::write_oci_layout(&image.image, ManifestFormat::Oci, dir, &tags).map_err(
        |source| OutputError::Layout {
            path: dir.to_path_buf(),
            source,
        },
    )?;
    tracing::info!(path = %dir.display(), "wrote the OCI image layout");
    Ok(())
}

/// Returns `registry/repository@digest` for each repository once, in the
/// order of `destinations`.
fn names_with_digest(digest: &str, destinations: &[ImageReference]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for destination in destinations {
        let line = format!(
            "{}/{}@{digest}\n",
            destination.registry(),
            destination.repository()
        );
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    lines.concat()
}

/// Returns `registry/repository:tag@digest` for each destination, with
/// `latest` for a destination without a tag, and `registry/repository@digest`
/// for a destination given by digest, which has no tag pushed.
fn name_tags_with_digest(digest: &str, destinations: &[ImageReference]) -> String {
    destinations
        .iter()
        .map(|destination| {
            let name = format!("{}/{}", destination.registry(), destination.repository());
            match (destination.tag(), destination.digest()) {
                (None, Some(_)) => format!("{name}@{digest}\n"),
                (tag, _) => format!("{name}:{}@{digest}\n", tag.unwrap_or("latest")),
            }
        })
        .collect()
}

fn write_file(path: &Path, text: &str) -> Result<(), OutputError> {
    std::fs::write(path, text).map_err(|source| OutputError::DigestFile {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use hoist_image::Platform;

    use super::*;

    const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn references(texts: &[&str]) -> Vec<ImageReference> {
        texts
            .iter()
            .map(|text| text.parse().expect("valid reference"))
            .collect()
    }

    fn empty_image() -> Image {
        Image::scratch(&Platform::linux_amd64())
    }

    #[test]
    fn reproducible_image_is_dated_epoch() {
        let mut image = empty_image();
        image.config_mut().history.push(Default::default());
        let labels = BTreeMap::from([("team".to_owned(), "infra".to_owned())]);
        let first = finalize(image.clone(), &labels, CreationTime::Epoch).unwrap();
        let second = finalize(image, &labels, CreationTime::Epoch).unwrap();

        let config = first.image.config();
        assert_eq!(config.created.as_deref(), Some(EPOCH));
        assert_eq!(config.history[0].created.as_deref(), Some(EPOCH));
        let image_labels = config.config.labels.as_ref().unwrap();
        assert_eq!(image_labels["team"], "infra");
        assert_eq!(
            first.rendered.manifest_descriptor.digest,
            second.rendered.manifest_descriptor.digest
        );
    }

    #[test]
    fn current_time_is_rfc3339_seconds() {
        let finished = finalize(empty_image(), &BTreeMap::new(), CreationTime::Now).unwrap();
        let created = finished.image.config().created.clone().unwrap();
        let format = time::format_description::well_known::Rfc3339;
        let parsed = time::OffsetDateTime::parse(&created, &format).unwrap();
        assert_eq!(parsed.nanosecond(), 0);
        assert_ne!(created, EPOCH);
    }

    #[test]
    fn digest_files_name_each_destination() {
        let dir = tempfile::tempdir().unwrap();
        let files = OutputFiles {
            digest_file: Some(dir.path().join("digest")),
            image_name_with_digest_file: Some(dir.path().join("name")),
            image_name_tag_with_digest_file: Some(dir.path().join("name-tag")),
            ..OutputFiles::default()
        };
        let destinations = references(&[
            "127.0.0.1:5000/app:v1",
            "127.0.0.1:5000/app:v2",
            "127.0.0.1:5000/other",
            &format!("127.0.0.1:5000/pinned@{DIGEST}"),
        ]);
        files.write_digests(DIGEST, &destinations).unwrap();

        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("digest"), DIGEST);
        assert_eq!(
            read("name"),
            format!(
                "127.0.0.1:5000/app@{DIGEST}\n127.0.0.1:5000/other@{DIGEST}\n\
                 127.0.0.1:5000/pinned@{DIGEST}\n"
            )
        );
        assert_eq!(
            read("name-tag"),
            format!(
                "127.0.0.1:5000/app:v1@{DIGEST}\n127.0.0.1:5000/app:v2@{DIGEST}\n\
                 127.0.0.1:5000/other:latest@{DIGEST}\n127.0.0.1:5000/pinned@{DIGEST}\n"
            )
        );
    }

    #[test]
    fn unwritable_digest_file_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("digest");
        let files = OutputFiles {
            digest_file: Some(path.clone()),
            ..OutputFiles::default()
        };
        let error = files.write_digests(DIGEST, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("failed to write {}", path.display())
        );
    }

    #[test]
    fn layout_output_is_tagged() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let files = OutputFiles {
            oci_layout_path: Some(layout.clone()),
            tar_path: Some(dir.path().join("image.tar")),
            ..OutputFiles::default()
        };
        let image = finalize(empty_image(), &BTreeMap::new(), CreationTime::Epoch).unwrap();
        let destinations = references(&["127.0.0.1:5000/app:v1"]);
        files.write_image(&image, &destinations).unwrap();

        let read = hoist_image::read_oci_layout(&layout, Some("v1")).unwrap();
        assert_eq!(
            read.rendered.manifest_descriptor.digest,
            image.rendered.manifest_descriptor.digest
        );
        let archive_path = dir.path().join("image.tar");
        let archive =
            hoist_image::read_docker_archive(&archive_path, Some("127.0.0.1:5000/app:v1")).unwrap();
        assert_eq!(archive.image.config(), image.image.config());
    }
}
