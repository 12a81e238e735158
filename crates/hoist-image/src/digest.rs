//! SHA-256 content digests of blobs.

use std::io::{self, Read};

use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256};

/// Returns the `sha256:` digest of `bytes`.
pub fn digest_bytes(bytes: &[u8]) -> Digest {
    from_sha256(Sha256::digest(bytes).as_slice())
}

/// Reads `reader` to its end and returns the `sha256:` digest and the length of what it read.
pub fn digest_reader(reader: impl Read) -> io::Result<(Digest, u64)> {
    DigestingReader::new(reader).finish()
}

/// Returns the hexadecimal part of a `sha256:` digest, or `None` for another algorithm.
///
/// The value is 64 lowercase hexadecimal characters, because [`Digest`] checks that when it
/// is parsed, so it is safe to use as a file name.
pub fn sha256_hex(digest: &Digest) -> Option<&str> {
    match digest.algorithm() {
        DigestAlgorithm::Sha256 => Some(digest.digest()),
        _ => None,
    }
}

/// A reader that computes the `sha256:` digest and the length of what passes through it.
pub struct DigestingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> DigestingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Reads what is left of the inner reader, then returns the digest and length of
    /// everything read.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((from_sha256(self.hasher.finalize().as_slice()), self.size))
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        self.size += read as u64;
        Ok(read)
    }
}

fn from_sha256(hash: &[u8]) -> Digest {
    let text = format!("sha256:{}", hex::encode(hash));
    match Digest::try_from(text) {
        Ok(digest) => digest,
        // A SHA-256 hash always encodes as 64 lowercase hexadecimal characters.
        Err(error) => unreachable!("a SHA-256 hash is a valid digest: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(digest_bytes(b"").to_string(), EMPTY);
        let (digest, size) = digest_reader(&b""[..]).unwrap();
        assert_eq!(digest.to_string(), EMPTY);
        assert_eq!(size, 0);
    }

    #[test]
    fn reader_and_bytes_digests_agree() {
        let data = vec![7_u8; 200_000];
        let (digest, size) = digest_reader(&data[..]).unwrap();
        assert_eq!(digest, digest_bytes(&data));
        assert_eq!(size, 200_000);
    }

    #[test]
    fn digesting_reader_counts_partial_reads() {
        let mut reader = DigestingReader::new(&b"hello world"[..]);
        let mut first = [0_u8; 5];
        reader.read_exact(&mut first).unwrap();
        let (digest, size) = reader.finish().unwrap();
        assert_eq!(digest, digest_bytes(b"hello world"));
        assert_eq!(size, 11);
    }

    #[test]
    fn sha256_hex_rejects_other_algorithms() {
        let sha512 = Digest::try_from(format!("sha512:{}", "a".repeat(128))).unwrap();
        assert_eq!(sha256_hex(&sha512), None);
        let sha256 = Digest::try_from(EMPTY).unwrap();
        assert_eq!(sha256_hex(&sha256), Some(&EMPTY[7..]));
    }
}
