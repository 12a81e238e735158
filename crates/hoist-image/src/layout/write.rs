//! Writing an image as an OCI image layout.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use serde::Serialize;

use super::{LAYOUT_VERSION, LayoutHeader};
use crate::atomic;
use crate::digest::{DigestingReader, sha256_hex};
use crate::error::WriteError;
use crate::image::{Image, Layer, RenderedImage};
use crate::manifest::{Index, REF_NAME_ANNOTATION};
use crate::media::{ManifestFormat, OCI_INDEX};
use crate::verify::check_blob;

/// Size of the buffer that layer blobs are copied through, in bytes.
const COPY_BUFFER_SIZE: usize = 1024 * 1024;

/// Writes `image` as an OCI image layout at `dir` and returns the documents written.
///
/// `index.json` lists the manifest once per entry of `tags`, each named through the
/// `org.opencontainers.image.ref.name` annotation, or once without a name when `tags` is
/// empty.
///
/// The layout is built beside `dir` and renamed into place at the end. An existing `dir` is
/// replaced only if it is an OCI layout (it has an `oci-layout` file) or empty. Every layer
/// blob is copied and checked against its digest and size on the way.
///
/// NOTE: skopeo 1.9.3 (Debian 12) looks only for OCI-typed manifests in `index.json`, so it
/// does not find an image written here in [`ManifestFormat::Docker`]; hoist reads both.
pub fn write_oci_layout(
    image: &Image,
    format: ManifestFormat,
    dir: &Path,
    tags: &[&str],
) -> Result<RenderedImage, WriteError> {
    let rendered = image.render(format)?;
    atomic::write_dir(dir, is_replaceable_layout, |temporary| {
        write_layout_files(temporary, image, &rendered, tags)
    })?;
    tracing::info!(
        path = %dir.display(),
        digest = %rendered.manifest_descriptor.digest,
        %format,
        "wrote OCI image layout"
    );
    Ok(rendered)
}

fn write_layout_files(
    root: &Path,
    image: &Image,
    rendered: &RenderedImage,
    tags: &[&str],
) -> Result<(), WriteError> {
    let blobs = root.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|source| WriteError::Io {
        path: blobs.clone(),
        source,
    })?;

    for layer in image.layers() {
        copy_layer(layer, &blob_path(&blobs, &layer.digest)?)?;
    }
    let config_digest = &rendered.manifest.config.digest;
    write_new(&blob_path(&blobs, config_digest)?, &rendered.config_json)?;
    let manifest_digest = &rendered.manifest_descriptor.digest;
    write_new(
        &blob_path(&blobs, manifest_digest)?,
        &rendered.manifest_json,
    )?;

    let header = LayoutHeader {
        image_layout_version: LAYOUT_VERSION.to_owned(),
    };
    write_new(&root.join("oci-layout"), &json_bytes(&header))?;
    let index = layout_index(rendered, tags);
    write_new(&root.join("index.json"), &index.to_json())
}

fn layout_index(rendered: &RenderedImage, tags: &[&str]) -> Index {
    let named = |tag: &&str| {
        let mut descriptor = rendered.manifest_descriptor.clone();
        let annotation = (REF_NAME_ANNOTATION.to_owned(), (*tag).to_owned());
        descriptor.annotations = Some(BTreeMap::from([annotation]));
        descriptor
    };
    let manifests = if tags.is_empty() {
        vec![rendered.manifest_descriptor.clone()]
    } else {
        tags.iter().map(named).collect()
    };
    Index {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_owned()),
        manifests,
        annotations: None,
    }
}

fn is_replaceable_layout(dir: &Path) -> bool {
    let is_layout = dir.join("oci-layout").is_file();
    let is_empty = fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none());
    is_layout || is_empty
}

/// Copies a layer blob, checking its digest and size, unless an earlier layer with the same
/// digest already put it there.
fn copy_layer(layer: &Layer, target: &Path) -> Result<(), WriteError> {
    if target.exists() {
        return Ok(());
    }
    let read_error = |source| WriteError::ReadBlob {
        path: layer.blob.path.clone(),
        source,
    };
    let write_error = |source| WriteError::Io {
        path: target.to_owned(),
        source,
    };
    let mut reader = DigestingReader::new(layer.open().map_err(read_error)?);
    let mut file = File::create(target).map_err(write_error)?;

    let mut buffer = vec![0_u8; COPY_BUFFER_SIZE];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(read_error(error)),
        };
        file.write_all(&buffer[..read]).map_err(write_error)?;
    }

    let (digest, size) = reader.finish().map_err(read_error)?;
    check_blob(layer, &digest, size)?;
    file.sync_all().map_err(write_error)
}

fn blob_path(blobs: &Path, digest: &Digest) -> Result<PathBuf, WriteError> {
    let hex =
        sha256_hex(digest).ok_or_else(|| WriteError::UnsupportedDigest(digest.to_string()))?;
    Ok(blobs.join(hex))
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let io_error = |source| WriteError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::create(path).map_err(io_error)?;
    file.write_all(bytes).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

fn json_bytes(value: &impl Serialize) -> Vec<u8> {
    match serde_json::to_vec(value) {
        Ok(bytes) => bytes,
        Err(error) => unreachable!("a layout header serializes to JSON: {error}"),
    }
}
