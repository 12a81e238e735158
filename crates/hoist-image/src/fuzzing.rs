//! Entry points shared by the fuzz targets in `fuzz/` and the tests that replay their
//! corpora, so that both exercise the same code.

use std::io::Write as _;

use crate::manifest::{Index, Manifest, ManifestDocument};
use crate::{ImageConfig, Platform, media, read_docker_archive};

/// `Content-Type` values a registry may send with a manifest; the first input byte picks one.
const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some(media::OCI_MANIFEST),
    Some(media::OCI_INDEX),
    Some(media::DOCKER_MANIFEST),
    Some(media::DOCKER_MANIFEST_LIST),
    Some("application/json; charset=utf-8"),
];

/// Parses `data` (after a first byte that picks the content type) as a registry's manifest
/// or index, as an image config and as a platform. Whatever parses must serialize to JSON
/// that parses again.
pub fn manifest_bytes(data: &[u8]) {
    let Some((&selector, document)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    match ManifestDocument::parse(document, content_type) {
        Ok(ManifestDocument::Image(manifest)) => {
            let _ = manifest.format();
            let _ = manifest.read_config(document);
            let reparsed = Manifest::from_json(&manifest.to_json());
            assert!(reparsed.is_ok(), "a serialized manifest does not parse");
        }
        Ok(ManifestDocument::Index(index)) => {
            let _ = index.select(&Platform::linux_amd64());
            let reparsed = Index::from_json(&index.to_json());
            assert!(reparsed.is_ok(), "a serialized index does not parse");
        }
        Err(_) => {}
    }
    if let Ok(config) = ImageConfig::from_json(document) {
        let reparsed = ImageConfig::from_json(&config.to_json());
        assert!(reparsed.is_ok(), "a serialized image config does not parse");
    }
    if let Ok(text) = std::str::from_utf8(document) {
        let _ = Platform::parse(text);
    }
}

/// Reads `data` as a docker-archive tarball (`docker save` output) from a temporary file.
pub fn docker_archive_bytes(data: &[u8]) {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(data).is_err() {
        return;
    }
    let _ = read_docker_archive(file.path(), None);
}
