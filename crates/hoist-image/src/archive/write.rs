//! Writing an image as a docker-archive tarball.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use oci_spec::image::Digest;
use serde::Serialize;
use tar::{EntryType, Header};

use super::{ArchiveManifestEntry, MANIFEST_ENTRY};
use crate::atomic;
use crate::digest::{DigestingReader, digest_bytes, sha256_hex};
use crate::error::WriteError;
use crate::image::{Image, Layer};
use crate::media::ManifestFormat;
use crate::verify::check_blob;

/// Writes `image` as a docker-archive tarball at `path`, tagged with each of `tags`
/// (`name[:tag]`, `latest` when the tag is left out), and returns the config digest, which
/// Docker shows as the image ID.
///
/// Blobs are stored under `blobs/sha256/`, as Docker 25 and later name them, and layers keep
/// their compression because every loader decompresses them. Headers carry no time or owner,
/// so the same image gives the same tarball. The tarball is written beside `path` and renamed
/// into place at the end.
pub fn write_docker_archive(
    image: &Image,
    path: &Path,
    tags: &[&str],
) -> Result<Digest, WriteError> {
    let repo_tags = tags
        .iter()
        .map(|tag| split_tag(tag))
        .collect::<Result<Vec<_>, _>>()?;
    // Only the config bytes are used: a docker-archive has no registry manifest.
    let rendered = image.render(ManifestFormat::Oci)?;
    let config_digest = rendered.manifest.config.digest.clone();

    atomic::write_file(path, |file| {
        let mut builder = tar::Builder::new(io::BufWriter::new(file));
        append_archive_entries(&mut builder, image, &rendered.config_json, &repo_tags, path)?;
        let writer = builder
            .into_inner()
            .map_err(|source| write_error(path, source))?;
        writer
            .into_inner()
            .map_err(|error| write_error(path, error.into_error()))?;
        Ok(())
    })?;
    tracing::info!(path = %path.display(), image_id = %config_digest, "wrote docker-archive");
    Ok(config_digest)
}

fn append_archive_entries(
    builder: &mut tar::Builder<impl Write>,
    image: &Image,
    config_json: &[u8],
    repo_tags: &[(String, String)],
    path: &Path,
) -> Result<(), WriteError> {
    append_dir(builder, "blobs/", path)?;
    append_dir(builder, "blobs/sha256/", path)?;

    let mut layer_names = Vec::new();
    for layer in image.layers() {
        let name = blob_name(&layer.digest)?;
        if !layer_names.contains(&name) {
            append_layer(builder, layer, &name, path)?;
        }
        layer_names.push(name);
    }
    let config_name = blob_name(&digest_bytes(config_json))?;
    append_file(builder, &config_name, config_json, path)?;

    let names: Vec<String> = repo_tags
        .iter()
        .map(|(name, tag)| format!("{name}:{tag}"))
        .collect();
    let manifest = [ArchiveManifestEntry {
        config: config_name,
        // Docker writes `null` for an untagged image.
        repo_tags: (!names.is_empty()).then_some(names),
        layers: layer_names,
    }];
    append_file(builder, MANIFEST_ENTRY, &to_json(&manifest), path)?;
    if let Some(top) = image.layers().last()
        && !repo_tags.is_empty()
    {
        let repositories = repositories(repo_tags, &top.digest);
        append_file(builder, "repositories", &to_json(&repositories), path)?;
    }
    Ok(())
}

/// Builds the legacy `repositories` file, which maps each name and tag to the top layer.
fn repositories(
    repo_tags: &[(String, String)],
    top_layer: &Digest,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let top = sha256_hex(top_layer).unwrap_or_default().to_owned();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (name, tag) in repo_tags {
        repositories
            .entry(name.clone())
            .or_default()
            .insert(tag.clone(), top.clone());
    }
    repositories
}

fn append_layer(
    builder: &mut tar::Builder<impl Write>,
    layer: &Layer,
    name: &str,
    path: &Path,
) -> Result<(), WriteError> {
    let read_error = |source| WriteError::ReadBlob {
        path: layer.blob.path.clone(),
        source,
    };
    let mut reader = DigestingReader::new(layer.open().map_err(read_error)?);
    let mut header = file_header(layer.size, 0o644);
    // The tar builder copies what the reader returns even when that differs from the header's
    // size, so `check_blob` catches a blob of the wrong size or content and the archive is
    // discarded.
    builder
        .append_data(&mut header, name, &mut reader)
        .map_err(|source| write_error(path, source))?;
    let (digest, size) = reader.finish().map_err(read_error)?;
    check_blob(layer, &digest, size)
}

fn append_file(
    builder: &mut tar::Builder<impl Write>,
    name: &str,
    bytes: &[u8],
    path: &Path,
) -> Result<(), WriteError> {
    let mut header = file_header(bytes.len() as u64, 0o644);
    builder
        .append_data(&mut header, name, bytes)
        .map_err(|source| write_error(path, source))
}

fn append_dir(
    builder: &mut tar::Builder<impl Write>,
    name: &str,
    path: &Path,
) -> Result<(), WriteError> {
    let mut header = file_header(0, 0o755);
    header.set_entry_type(EntryType::Directory);
    builder
        .append_data(&mut header, name, io::empty())
        .map_err(|source| write_error(path, source))
}

fn file_header(size: u64, mode: u32) -> Header {
    let mut header = Header::new_ustar();
    header.set_entry_type(EntryType::Regular);
    header.set_size(size);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

fn blob_name(digest: &Digest) -> Result<String, WriteError> {
    let hex =
        sha256_hex(digest).ok_or_else(|| WriteError::UnsupportedDigest(digest.to_string()))?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// Splits `name[:tag]` into the name and the tag, `latest` when none is given.
pub(super) fn split_tag(reference: &str) -> Result<(String, String), WriteError> {
    let invalid = || WriteError::InvalidTag(reference.to_owned());
    if reference.is_empty() || reference.contains('@') || reference.contains(char::is_whitespace) {
        return Err(invalid());
    }
    let last_slash = reference.rfind('/').map_or(0, |index| index + 1);
    let (name, tag) = match reference[last_slash..].rfind(':') {
        Some(colon) => {
            let colon = last_slash + colon;
            (&reference[..colon], &reference[colon + 1..])
        }
        None => (reference, "latest"),
    };
    if name.is_empty() || tag.is_empty() || name.ends_with('/') {
        return Err(invalid());
    }
    Ok((name.to_owned(), tag.to_owned()))
}

fn write_error(path: &Path, source: io::Error) -> WriteError {
    WriteError::Io {
        path: path.to_owned(),
        source,
    }
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    match serde_json::to_vec(value) {
        Ok(bytes) => bytes,
        Err(error) => unreachable!("archive metadata serializes to JSON: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_tag_defaults_to_latest() {
        let split = |text| split_tag(text).unwrap();
        assert_eq!(split("app"), ("app".to_owned(), "latest".to_owned()));
        assert_eq!(split("app:1.0"), ("app".to_owned(), "1.0".to_owned()));
        assert_eq!(
            split("localhost:5000/team/app"),
            ("localhost:5000/team/app".to_owned(), "latest".to_owned())
        );
        assert_eq!(
            split("localhost:5000/app:v2"),
            ("localhost:5000/app".to_owned(), "v2".to_owned())
        );
    }

    #[test]
    fn split_tag_rejects_digests_and_blanks() {
        for text in ["", "app@sha256:abc", "app:", ":tag", "a b", "registry/"] {
            assert!(
                matches!(split_tag(text), Err(WriteError::InvalidTag(_))),
                "{text}"
            );
        }
    }
}
