//! docker-archive tarballs, as `docker save` writes them: `manifest.json`, `repositories` and
//! the blobs.
//!
//! NOTE: the tests check the output with `skopeo copy docker-archive:` only, because neither
//! podman nor Docker is installed on the test machines.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};
use tar::{EntryType, Header};

use crate::atomic;
use crate::config::ImageConfig;
use crate::digest::{DigestingReader, digest_bytes, sha256_hex};
use crate::error::{ReadError, WriteError};
use crate::image::{BlobLocation, Image, Layer};
use crate::layout::{LoadedImage, MAX_JSON_SIZE, check_blob, check_digest};
use crate::media::{Compression, ManifestFormat};

/// Name of the archive entry that lists the images.
const MANIFEST_ENTRY: &str = "manifest.json";

/// Most links followed to resolve one name, so that a cycle of links ends.
const MAX_LINK_HOPS: usize = 16;

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
fn split_tag(reference: &str) -> Result<(String, String), WriteError> {
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

/// An entry of a docker-archive that a name can resolve to.
#[derive(Clone, Debug)]
enum ArchiveEntry {
    /// A regular file: its data's offset in the archive and its size.
    File { offset: u64, size: u64 },
    /// A symbolic link, whose target is relative to the link's directory.
    Symlink(String),
    /// A hard link, whose target is an archive path.
    Hardlink(String),
}

/// The entries of a docker-archive, indexed by normalized name.
struct ArchiveIndex {
    path: PathBuf,
    entries: HashMap<String, ArchiveEntry>,
}

/// Reads the image tagged `reference` (`name:tag`) from the docker-archive at `path`, or its
/// only image when `reference` is `None`, and checks every blob.
///
/// Names in `manifest.json` must be relative and free of `..`, and links inside the archive
/// are followed only while they stay inside it, so nothing outside the archive is read. Each
/// layer's diff ID is checked by decompressing it, and a blob named `blobs/sha256/HEX` or a
/// config named `HEX.json` is also checked against that digest. Layers stay inside the
/// tarball: their [`BlobLocation`]s point at the entries' data.
pub fn read_docker_archive(path: &Path, reference: Option<&str>) -> Result<LoadedImage, ReadError> {
    let index = ArchiveIndex::read(path)?;
    let manifest_bytes = index.read_json(MANIFEST_ENTRY)?;
    let manifest: Vec<ArchiveManifestEntry> =
        serde_json::from_slice(&manifest_bytes).map_err(|source| ReadError::Json {
            path: index.entry_path(MANIFEST_ENTRY),
            source,
        })?;
    let entry = select_entry(path, &manifest, reference)?;

    let config_name = checked_name(path, &entry.config)?;
    let config_json = index.read_json(&config_name)?;
    if let Some(expected) = digest_in_name(&config_name) {
        check_digest(
            &index.entry_path(&config_name),
            &expected,
            &digest_bytes(&config_json),
        )?;
    }
    let config = ImageConfig::from_json(&config_json).map_err(|source| ReadError::Json {
        path: index.entry_path(&config_name),
        source,
    })?;

    let layers = read_archive_layers(&index, entry, &config)?;
    let image = Image::from_parts(config, layers).map_err(|source| ReadError::Image {
        path: index.entry_path(MANIFEST_ENTRY),
        source,
    })?;
    let has_zstd = image
        .layers()
        .iter()
        .any(|layer| layer.compression == Compression::Zstd);
    let format = if has_zstd {
        ManifestFormat::Oci
    } else {
        ManifestFormat::Docker
    };
    let rendered = image
        .render_with_config(config_json, format)
        .map_err(|source| ReadError::Image {
            path: path.to_owned(),
            source,
        })?;
    tracing::debug!(path = %path.display(), layers = image.layers().len(), "read docker-archive");
    Ok(LoadedImage { image, rendered })
}

fn select_entry<'a>(
    path: &Path,
    manifest: &'a [ArchiveManifestEntry],
    reference: Option<&str>,
) -> Result<&'a ArchiveManifestEntry, ReadError> {
    let Some(reference) = reference else {
        return match manifest {
            [only] => Ok(only),
            all => Err(ReadError::NotOneImage {
                path: path.to_owned(),
                count: all.len(),
            }),
        };
    };
    let tags_of = |entry: &'a ArchiveManifestEntry| entry.repo_tags.iter().flatten();
    let found = manifest
        .iter()
        .find(|entry| tags_of(entry).any(|tag| tag == reference));
    found.ok_or_else(|| {
        let available: Vec<&str> = manifest
            .iter()
            .flat_map(tags_of)
            .map(String::as_str)
            .collect();
        ReadError::ReferenceNotFound {
            path: path.to_owned(),
            reference: reference.to_owned(),
            available: available.join(", "),
        }
    })
}

fn read_archive_layers(
    index: &ArchiveIndex,
    entry: &ArchiveManifestEntry,
    config: &ImageConfig,
) -> Result<Vec<Layer>, ReadError> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != entry.layers.len() {
        let source = crate::image::ImageError::LayerCount {
            diff_ids: diff_ids.len(),
            layers: entry.layers.len(),
        };
        return Err(ReadError::Image {
            path: index.entry_path(MANIFEST_ENTRY),
            source,
        });
    }
    entry
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(name, diff_id)| read_archive_layer(index, name, diff_id))
        .collect()
}

fn read_archive_layer(
    index: &ArchiveIndex,
    name: &str,
    diff_id: &Digest,
) -> Result<Layer, ReadError> {
    let name = checked_name(&index.path, name)?;
    let (offset, size) = index.resolve(&name)?;
    let entry_path = index.entry_path(&name);
    let location = BlobLocation {
        path: index.path.clone(),
        offset,
    };
    let compression = sniff_compression(&location, size, &entry_path)?;
    let (digest, uncompressed) =
        digest_layer(&location, size, compression).map_err(|source| ReadError::Io {
            path: entry_path.clone(),
            source,
        })?;

    if let Some(expected) = digest_in_name(&name) {
        check_digest(&entry_path, &expected, &digest)?;
    }
    check_digest(&entry_path, diff_id, &uncompressed)?;
    Ok(Layer {
        compression,
        digest,
        size,
        diff_id: diff_id.clone(),
        blob: location,
    })
}

fn sniff_compression(
    location: &BlobLocation,
    size: u64,
    entry_path: &Path,
) -> Result<Compression, ReadError> {
    let io_error = |source| ReadError::Io {
        path: entry_path.to_owned(),
        source,
    };
    let mut prefix = Vec::with_capacity(4);
    location
        .open(size.min(4))
        .map_err(io_error)?
        .read_to_end(&mut prefix)
        .map_err(io_error)?;
    Ok(Compression::sniff(&prefix))
}

/// Returns the digest of a layer blob as stored and the digest of its uncompressed tar
/// stream, reading the blob once.
fn digest_layer(
    location: &BlobLocation,
    size: u64,
    compression: Compression,
) -> io::Result<(Digest, Digest)> {
    let mut stored = DigestingReader::new(BufReader::new(location.open(size)?));
    let uncompressed = match compression {
        Compression::None => None,
        Compression::Gzip => {
            let decoder = flate2::read::MultiGzDecoder::new(&mut stored);
            Some(DigestingReader::new(decoder).finish()?.0)
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(&mut stored)?;
            Some(DigestingReader::new(decoder).finish()?.0)
        }
    };
    let (stored, _) = stored.finish()?;
    let uncompressed = uncompressed.unwrap_or_else(|| stored.clone());
    Ok((stored, uncompressed))
}

/// Returns the digest that a blob's name states: `blobs/sha256/HEX` or `HEX.json`.
fn digest_in_name(name: &str) -> Option<Digest> {
    let file = name.strip_prefix("blobs/sha256/").unwrap_or(name);
    let hex = file.strip_suffix(".json").unwrap_or(file);
    let is_hex = hex.len() == 64
        && hex
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    if !is_hex || hex.contains('/') {
        return None;
    }
    Digest::try_from(format!("sha256:{hex}")).ok()
}

/// Normalizes a name from `manifest.json`, rejecting absolute names and `..`.
fn checked_name(archive: &Path, name: &str) -> Result<String, ReadError> {
    let unsafe_name = || ReadError::UnsafeName {
        archive: archive.to_owned(),
        name: name.to_owned(),
        field: "manifest.json",
    };
    if name.starts_with('/') || name.split('/').any(|part| part == "..") {
        return Err(unsafe_name());
    }
    normalize(name).ok_or_else(unsafe_name)
}

/// Joins `name`'s parts without empty and `.` parts, resolving `..` lexically; `None` when
/// `..` would climb above the archive root or nothing is left.
fn normalize(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

impl ArchiveIndex {
    fn read(path: &Path) -> Result<Self, ReadError> {
        let io_error = |source| ReadError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_error)?;
        let mut archive = tar::Archive::new(file);
        let mut entries = HashMap::new();
        for entry in archive.entries_with_seek().map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            let Some((name, kind)) = index_entry(&entry) else {
                continue;
            };
            if entries.insert(name.clone(), kind).is_some() {
                return Err(ReadError::DuplicateEntry {
                    archive: path.to_owned(),
                    name,
                });
            }
        }
        Ok(Self {
            path: path.to_owned(),
            entries,
        })
    }

    /// Returns `ARCHIVE:NAME`, the path that errors name for an entry.
    fn entry_path(&self, name: &str) -> PathBuf {
        let mut path = self.path.clone().into_os_string();
        path.push(":");
        path.push(name);
        PathBuf::from(path)
    }

    /// Follows links from `name` to a regular file and returns its data's offset and size.
    fn resolve(&self, name: &str) -> Result<(u64, u64), ReadError> {
        let mut current = name.to_owned();
        for _ in 0..=MAX_LINK_HOPS {
            let next = match self.entries.get(&current) {
                None => {
                    return Err(ReadError::MissingBlob {
                        path: self.entry_path(&current),
                    });
                }
                Some(ArchiveEntry::File { offset, size }) => return Ok((*offset, *size)),
                Some(ArchiveEntry::Symlink(target)) if target.starts_with('/') => None,
                Some(ArchiveEntry::Symlink(target)) => {
                    let parent = current.rsplit_once('/').map_or("", |(parent, _)| parent);
                    normalize(&format!("{parent}/{target}"))
                }
                Some(ArchiveEntry::Hardlink(target)) => normalize(target),
            };
            current = next.ok_or_else(|| ReadError::UnsafeName {
                archive: self.path.clone(),
                name: current.clone(),
                field: "a link target",
            })?;
        }
        Err(ReadError::UnsafeName {
            archive: self.path.clone(),
            name: name.to_owned(),
            field: "a chain of more than 16 links",
        })
    }

    fn read_json(&self, name: &str) -> Result<Vec<u8>, ReadError> {
        let (offset, size) = self.resolve(name)?;
        let entry_path = self.entry_path(name);
        if size > MAX_JSON_SIZE {
            return Err(ReadError::TooLarge {
                path: entry_path,
                size,
                limit: MAX_JSON_SIZE,
            });
        }
        let io_error = |source| ReadError::Io {
            path: entry_path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(io_error)?;
        file.seek(SeekFrom::Start(offset)).map_err(io_error)?;
        let mut bytes = Vec::new();
        file.take(size).read_to_end(&mut bytes).map_err(io_error)?;
        Ok(bytes)
    }
}

/// Returns the normalized name and kind of an archive entry, or `None` for entries a name
/// never resolves to: directories, devices, sparse files and names that climb out with `..`.
fn index_entry<R: Read>(entry: &tar::Entry<'_, R>) -> Option<(String, ArchiveEntry)> {
    let raw_name = String::from_utf8(entry.path_bytes().into_owned()).ok()?;
    if raw_name.split('/').any(|part| part == "..") {
        tracing::debug!(name = %raw_name, "skipping docker-archive entry with '..' in its name");
        return None;
    }
    let name = normalize(&raw_name)?;
    let link_target = || {
        let bytes = entry.link_name_bytes()?;
        String::from_utf8(bytes.into_owned()).ok()
    };
    let kind = match entry.header().entry_type() {
        EntryType::Regular | EntryType::Continuous => ArchiveEntry::File {
            offset: entry.raw_file_position(),
            size: entry.size(),
        },
        EntryType::Symlink => ArchiveEntry::Symlink(link_target()?),
        EntryType::Link => ArchiveEntry::Hardlink(link_target()?),
        _ => return None,
    };
    Some((name, kind))
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

    #[test]
    fn normalize_stays_inside_root() {
        assert_eq!(normalize("./a//b/./c").as_deref(), Some("a/b/c"));
        assert_eq!(normalize("a/../b").as_deref(), Some("b"));
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("a/../../x"), None);
        assert_eq!(normalize("."), None);
    }

    #[test]
    fn checked_name_rejects_traversal() {
        let archive = Path::new("image.tar");
        for name in [
            "../x",
            "/etc/passwd",
            "a/../../x",
            "blobs/../manifest.json",
            "",
        ] {
            let result = checked_name(archive, name);
            assert!(
                matches!(result, Err(ReadError::UnsafeName { .. })),
                "{name}"
            );
        }
        assert_eq!(
            checked_name(archive, "./abc/layer.tar").unwrap(),
            "abc/layer.tar"
        );
    }

    #[test]
    fn digest_in_name_reads_both_styles() {
        let hex = "a".repeat(64);
        let expected = Digest::try_from(format!("sha256:{hex}")).unwrap();
        assert_eq!(
            digest_in_name(&format!("blobs/sha256/{hex}")),
            Some(expected.clone())
        );
        assert_eq!(digest_in_name(&format!("{hex}.json")), Some(expected));
        assert_eq!(digest_in_name(&format!("{hex}/layer.tar")), None);
        assert_eq!(digest_in_name("manifest.json"), None);
    }
}
