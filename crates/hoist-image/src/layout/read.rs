//! Reading an image back from an OCI image layout.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::LayoutHeader;
use crate::config::ImageConfig;
use crate::digest::{digest_bytes, digest_reader, sha256_hex};
use crate::error::{ReadError, printable};
use crate::image::{Image, ImageError, Layer, LoadedImage, RenderedImage};
use crate::manifest::{Descriptor, Index, Manifest, ManifestDocument, REF_NAME_ANNOTATION};
use crate::media::{Compression, DOCKER_MANIFEST_LIST, OCI_INDEX};
use crate::verify::{MAX_JSON_SIZE, check_digest, check_size};

/// Reads the image named `reference` from the OCI layout at `dir`, or its only image when
/// `reference` is `None`, and checks every blob's size and digest against its descriptor.
///
/// Blobs are looked up only as regular files under `dir/blobs/sha256/`, named by validated
/// digests, so nothing outside the layout is read.
pub fn read_oci_layout(dir: &Path, reference: Option<&str>) -> Result<LoadedImage, ReadError> {
    check_layout_header(dir)?;
    let index_path = dir.join("index.json");
    let index_bytes = read_json_file(&index_path)?;
    let index = Index::from_json(&index_bytes).map_err(|source| ReadError::Manifest {
        path: index_path.clone(),
        source,
    })?;
    let descriptor = select_image(dir, &index, reference)?;
    if matches!(
        descriptor.media_type.as_str(),
        OCI_INDEX | DOCKER_MANIFEST_LIST
    ) {
        return Err(ReadError::NestedIndex {
            path: index_path,
            digest: descriptor.digest.to_string(),
        });
    }

    let manifest_path = blob_file(dir, &index_path, &descriptor.digest)?;
    let manifest_json = read_blob_json(&manifest_path, descriptor)?;
    let manifest = parse_manifest(&manifest_path, &manifest_json, descriptor)?;
    let format = manifest.format().map_err(|source| ReadError::MediaType {
        path: manifest_path.clone(),
        source,
    })?;

    let config_path = blob_file(dir, &manifest_path, &manifest.config.digest)?;
    let config_json = read_blob_json(&config_path, &manifest.config)?;
    let config = ImageConfig::from_json(&config_json).map_err(|source| ReadError::Json {
        path: config_path.clone(),
        source,
    })?;

    let layers = read_layers(dir, &manifest_path, &manifest, &config)?;
    let image = Image::from_parts(config, layers).map_err(|source| ReadError::Image {
        path: manifest_path.clone(),
        source,
    })?;
    tracing::debug!(path = %dir.display(), digest = %descriptor.digest, "read OCI image layout");

    let rendered = RenderedImage {
        format,
        config_json,
        manifest,
        manifest_json,
        manifest_descriptor: descriptor.clone(),
    };
    Ok(LoadedImage { image, rendered })
}

fn check_layout_header(dir: &Path) -> Result<(), ReadError> {
    let path = dir.join("oci-layout");
    let bytes = read_json_file(&path)?;
    let header: LayoutHeader =
        serde_json::from_slice(&bytes).map_err(|source| ReadError::Json {
            path: path.clone(),
            source,
        })?;
    if !header.image_layout_version.starts_with("1.") {
        return Err(ReadError::UnsupportedLayoutVersion {
            path,
            version: header.image_layout_version,
        });
    }
    Ok(())
}

fn parse_manifest(
    path: &Path,
    bytes: &[u8],
    descriptor: &Descriptor,
) -> Result<Manifest, ReadError> {
    match ManifestDocument::parse(bytes, Some(&descriptor.media_type)) {
        Ok(ManifestDocument::Image(manifest)) => Ok(*manifest),
        Ok(ManifestDocument::Index(_)) => Err(ReadError::NestedIndex {
            path: path.to_owned(),
            digest: descriptor.digest.to_string(),
        }),
        Err(source) => Err(ReadError::Manifest {
            path: path.to_owned(),
            source,
        }),
    }
}

fn select_image<'a>(
    dir: &Path,
    index: &'a Index,
    reference: Option<&str>,
) -> Result<&'a Descriptor, ReadError> {
    let Some(reference) = reference else {
        // Several names of one manifest are still one image.
        let first = index.manifests.first();
        let same_image =
            |descriptor: &Descriptor| first.is_some_and(|first| first.digest == descriptor.digest);
        return match first {
            Some(first) if index.manifests.iter().all(same_image) => Ok(first),
            _ => Err(ReadError::NotOneImage {
                path: dir.to_owned(),
                count: index.manifests.len(),
            }),
        };
    };
    let name_of = |descriptor: &Descriptor| {
        descriptor
            .annotations
            .as_ref()?
            .get(REF_NAME_ANNOTATION)
            .cloned()
    };
    let found = index
        .manifests
        .iter()
        .find(|descriptor| name_of(descriptor).as_deref() == Some(reference));
    found.ok_or_else(|| {
        let names: Vec<String> = index
            .manifests
            .iter()
            .filter_map(name_of)
            .map(|name| printable(&name))
            .collect();
        ReadError::ReferenceNotFound {
            path: dir.to_owned(),
            reference: reference.to_owned(),
            available: names.join(", "),
        }
    })
}

fn read_layers(
    dir: &Path,
    manifest_path: &Path,
    manifest: &Manifest,
    config: &ImageConfig,
) -> Result<Vec<Layer>, ReadError> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        let source = ImageError::LayerCount {
            diff_ids: diff_ids.len(),
            layers: manifest.layers.len(),
        };
        return Err(ReadError::Image {
            path: manifest_path.to_owned(),
            source,
        });
    }
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (descriptor, diff_id) in manifest.layers.iter().zip(diff_ids) {
        let compression =
            Compression::from_layer_media_type(&descriptor.media_type).map_err(|source| {
                ReadError::MediaType {
                    path: manifest_path.to_owned(),
                    source,
                }
            })?;
        let path = blob_file(dir, manifest_path, &descriptor.digest)?;
        verify_blob_file(&path, descriptor)?;
        layers.push(Layer::from_file(
            path,
            compression,
            descriptor.digest.clone(),
            descriptor.size,
            diff_id.clone(),
        ));
    }
    Ok(layers)
}

/// Returns `dir/blobs/sha256/HEX` after checking that every part of it is a real directory or
/// regular file, not a link that could lead outside the layout.
fn blob_file(dir: &Path, referrer: &Path, digest: &Digest) -> Result<PathBuf, ReadError> {
    let hex = sha256_hex(digest).ok_or_else(|| ReadError::UnsupportedDigest {
        path: referrer.to_owned(),
        digest: digest.to_string(),
    })?;
    let blobs = dir.join("blobs");
    let sha256 = blobs.join("sha256");
    let path = sha256.join(hex);
    for (component, want_dir) in [(&blobs, true), (&sha256, true), (&path, false)] {
        let metadata = match fs::symlink_metadata(component) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(ReadError::MissingBlob { path: path.clone() });
            }
            Err(source) => {
                return Err(ReadError::Io {
                    path: component.clone(),
                    source,
                });
            }
        };
        let expected_kind = if want_dir {
            metadata.is_dir()
        } else {
            metadata.is_file()
        };
        if !expected_kind {
            return Err(ReadError::NotRegularFile {
                path: component.clone(),
            });
        }
    }
    Ok(path)
}

/// Opens a regular file for reading without following a symbolic link in its last component,
/// so a link in the layout cannot lead the reader outside it.
fn open_regular(path: &Path) -> Result<File, ReadError> {
    // O_NONBLOCK keeps a FIFO from blocking the open. Regular files ignore it.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let descriptor = rustix::fs::open(path, flags, Mode::empty()).map_err(|errno| {
        if errno == Errno::LOOP {
            ReadError::NotRegularFile {
                path: path.to_owned(),
            }
        } else {
            ReadError::Io {
                path: path.to_owned(),
                source: io::Error::from(errno),
            }
        }
    })?;
    let file = File::from(descriptor);
    let metadata = file.metadata().map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !metadata.is_file() {
        return Err(ReadError::NotRegularFile {
            path: path.to_owned(),
        });
    }
    Ok(file)
}

fn read_json_file(path: &Path) -> Result<Vec<u8>, ReadError> {
    let io_error = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = open_regular(path)?;
    let size = file.metadata().map_err(io_error)?.len();
    if size > MAX_JSON_SIZE {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            size,
            limit: MAX_JSON_SIZE,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_JSON_SIZE)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    Ok(bytes)
}

fn read_blob_json(path: &Path, descriptor: &Descriptor) -> Result<Vec<u8>, ReadError> {
    if descriptor.size > MAX_JSON_SIZE {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
            size: descriptor.size,
            limit: MAX_JSON_SIZE,
        });
    }
    let bytes = read_json_file(path)?;
    let actual = digest_bytes(&bytes);
    check_size(path, descriptor.size, bytes.len() as u64)?;
    check_digest(path, &descriptor.digest, &actual)?;
    Ok(bytes)
}

fn verify_blob_file(path: &Path, descriptor: &Descriptor) -> Result<(), ReadError> {
    let io_error = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = open_regular(path)?;
    let size = file.metadata().map_err(io_error)?.len();
    check_size(path, descriptor.size, size)?;
    let (digest, _) = digest_reader(file).map_err(io_error)?;
    check_digest(path, &descriptor.digest, &digest)
}
