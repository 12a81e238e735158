//! Checks of blobs against the digests and sizes that describe them.

use std::path::Path;

use oci_spec::image::Digest;

use crate::error::{ReadError, WriteError};
use crate::image::Layer;

/// Largest manifest, index or config that hoist reads into memory, in bytes, so that a hostile
/// file cannot exhaust memory.
pub(crate) const MAX_JSON_SIZE: u64 = 16 * 1024 * 1024;

/// Checks the digest and size of a layer blob that was just copied into an output.
pub(crate) fn check_blob(layer: &Layer, digest: &Digest, size: u64) -> Result<(), WriteError> {
    if digest == &layer.digest && size == layer.size {
        return Ok(());
    }
    Err(WriteError::BlobMismatch {
        path: layer.blob.path.clone(),
        expected: layer.digest.to_string(),
        actual: digest.to_string(),
        expected_size: layer.size,
        actual_size: size,
    })
}

pub(crate) fn check_size(path: &Path, expected: u64, actual: u64) -> Result<(), ReadError> {
    if expected == actual {
        return Ok(());
    }
    Err(ReadError::SizeMismatch {
        path: path.to_owned(),
        expected,
        actual,
    })
}

pub(crate) fn check_digest(
    path: &Path,
    expected: &Digest,
    actual: &Digest,
) -> Result<(), ReadError> {
    if expected == actual {
        return Ok(());
    }
    Err(ReadError::DigestMismatch {
        path: path.to_owned(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    })
}
