//! Reading an image back from a docker-archive tarball.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use tar::EntryType;

use super::write::split_tag;
use super::{ArchiveManifestEntry, MANIFEST_ENTRY};
use crate::config::ImageConfig;
use crate::digest::{DigestingReader, digest_bytes};
use crate::error::{ReadError, printable};
use crate::image::{BlobLocation, Image, ImageError, Layer, LoadedImage};
use crate::media::{Compression, ManifestFormat};
use crate::verify::{MAX_JSON_SIZE, check_digest};

/// Most links followed to resolve one name, so that a cycle of links ends.
const MAX_LINK_HOPS: usize = 16;

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
    let format = archive_format(&image);
    let rendered = image
        .render_with_config(config_json, format)
        .map_err(|source| ReadError::Image {
            path: path.to_owned(),
            source,
        })?;
    tracing::debug!(path = %path.display(), layers = image.layers().len(), "read docker-archive");
    Ok(LoadedImage { image, rendered })
}

/// Returns the format an image read from an archive is pushed in: Docker schema 2 like the
/// registry images `docker save` came from, unless a zstd layer needs the OCI format.
fn archive_format(image: &Image) -> ManifestFormat {
    let is_zstd = |layer: &Layer| layer.compression == Compression::Zstd;
    if image.layers().iter().any(is_zstd) {
        ManifestFormat::Oci
    } else {
        ManifestFormat::Docker
    }
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
    // `app` names `app:latest`, as it does for `docker save` and `docker load`.
    let normalized = split_tag(reference).map(|(name, tag)| format!("{name}:{tag}"));
    let wanted = normalized.as_deref().unwrap_or(reference);
    let tags_of = |entry: &'a ArchiveManifestEntry| entry.repo_tags.iter().flatten();
    let found = manifest
        .iter()
        .find(|entry| tags_of(entry).any(|tag| tag == wanted));
    found.ok_or_else(|| {
        let available: Vec<String> = manifest
            .iter()
            .flat_map(tags_of)
            .map(|tag| printable(tag))
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
        let source = ImageError::LayerCount {
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
        let invalid = |error: io::Error| match error.raw_os_error() {
            Some(_) => io_error(error),
            None => ReadError::InvalidArchive {
                archive: path.to_owned(),
                reason: printable(&error.to_string()),
            },
        };
        let file = File::open(path).map_err(io_error)?;
        let mut archive = tar::Archive::new(file);
        let mut entries = HashMap::new();
        for entry in archive.entries_with_seek().map_err(invalid)? {
            let entry = entry.map_err(invalid)?;
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

    /// Returns `ARCHIVE:NAME`, the path that errors name for an entry, with control
    /// characters in the name escaped.
    fn entry_path(&self, name: &str) -> PathBuf {
        let mut path = self.path.clone().into_os_string();
        path.push(":");
        path.push(printable(name));
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
