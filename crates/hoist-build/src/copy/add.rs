//! The sources that only `ADD` understands: local tar archives, which are
//! extracted, and URLs, which are downloaded.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::PrimitiveDateTime;
use time::macros::format_description;

use super::CopyError;

/// The compression of a local archive, detected from its first bytes as
/// Docker does, never from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArchiveFormat {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

const TAR_BLOCK: usize = 512;

/// The time allowed to connect to the server of a URL source.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The time allowed for each read of a download: a stalled server fails the
/// build, while a slow but steady download of any size goes on.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Returns the format of the file at `path` when it is a tar archive,
/// plain or compressed, and `None` for any other file, which ADD copies as
/// is.
pub(crate) fn archive_format(path: &Path) -> io::Result<Option<ArchiveFormat>> {
    let mut magic = Vec::with_capacity(6);
    File::open(path)?.take(6).read_to_end(&mut magic)?;
    let format = compression_of(&magic);
    let mut header = Vec::with_capacity(TAR_BLOCK);
    // A compressed stream that fails to decompress is not an archive.
    let read = decompressor(File::open(path)?, format)
        .and_then(|reader| reader.take(TAR_BLOCK as u64).read_to_end(&mut header));
    Ok((read.is_ok() && is_tar_header(&header)).then_some(format))
}

fn compression_of(magic: &[u8]) -> ArchiveFormat {
    if magic.starts_with(&[0x1f, 0x8b]) {
        ArchiveFormat::Gzip
    } else if magic.starts_with(b"BZh") {
        ArchiveFormat::Bzip2
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        ArchiveFormat::Xz
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ArchiveFormat::Zstd
    } else {
        ArchiveFormat::Tar
    }
}

fn decompressor<'a>(file: File, format: ArchiveFormat) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match format {
        ArchiveFormat::Tar => Box::new(file),
        ArchiveFormat::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        ArchiveFormat::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(file)),
        ArchiveFormat::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(file)),
        ArchiveFormat::Zstd => Box::new(zstd::stream::read::Decoder::new(file)?),
    })
}

/// Returns whether `block` is a tar header whose checksum is right, the
/// test Go's `archive/tar` reader applies to the first header.
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < TAR_BLOCK || block.iter().all(|byte| *byte == 0) {
        return false;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(expected) = u32::from_str_radix(field.trim_matches(['\0', ' ']), 8) else {
        return false;
    };
    let unsigned: u32 = block
        .iter()
        .enumerate()
        .map(|(index, byte)| {
            if (148..156).contains(&index) {
                u32::from(b' ')
            } else {
                u32::from(*byte)
            }
        })
        .sum();
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(index, byte)| {
            if (148..156).contains(&index) {
                i64::from(b' ')
            } else {
                i64::from(*byte as i8)
            }
        })
        .sum();
    expected == unsigned || i64::from(expected) == signed
}

/// Extracts the archive at `path` into `directory` through
/// [`hoist_snapshot::apply_layer`], which never writes outside it.
///
/// NOTE: entries named `.wh.*` are applied as layer whiteouts, where Docker
/// would write them as plain files.
pub(crate) fn extract(
    path: &Path,
    format: ArchiveFormat,
    directory: &Path,
) -> Result<(), hoist_snapshot::ApplyError> {
    let file = File::open(path).map_err(hoist_snapshot::ApplyError::Read)?;
    let reader = decompressor(file, format).map_err(hoist_snapshot::ApplyError::Read)?;
    let options = hoist_snapshot::ApplyOptions::default();
    hoist_snapshot::apply_layer(reader, directory, &options).map(drop)
}

/// A downloaded URL source.
#[derive(Debug)]
pub(crate) struct Downloaded {
    /// The file in the staging directory, mode 0600 and with the
    /// `Last-Modified` time when the server sent one.
    pub(crate) path: PathBuf,
    /// The file name: the last segment of the URL path.
    pub(crate) name: String,
}

/// Downloads `url` into `directory`, checking the content against
/// `checksum` (`sha256:<hex>`) when given. The file is never extracted.
pub(crate) fn download(
    url: &str,
    checksum: Option<&str>,
    directory: &Path,
) -> Result<Downloaded, CopyError> {
    let expected = checksum.map(parse_checksum).transpose()?;
    let download_error = |message: String| CopyError::Download {
        url: url.to_owned(),
        message,
    };
    let _span = tracing::info_span!("download", url).entered();
    // NOTE: proxies from the environment are ignored, so a download goes
    // to the host of the URL and nowhere else.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|error| download_error(error.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(download_error(format!("HTTP status {status}")));
    }
    let last_modified = response
        .headers()
        .get("last-modified")
        .and_then(|value| value.to_str().ok())
        .and_then(parse_http_date);

    let name = file_name(url);
    let path = directory.join(&name);
    let write_error = super::tree::io_error(&path);
    let mut file = File::create(&path).map_err(&write_error)?;
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let actual =
        copy_hashing(&mut reader, &mut file).map_err(|error| download_error(error.to_string()))?;
    if let Some(expected) = expected
        && expected != actual
    {
        return Err(CopyError::ChecksumMismatch {
            url: url.to_owned(),
            expected,
            actual,
        });
    }
    file.flush().map_err(&write_error)?;
    drop(file);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(&write_error)?;
    if let Some(seconds) = last_modified {
        set_mtime(&path, seconds).map_err(&write_error)?;
    }
    tracing::debug!(url, digest = %actual, "downloaded");
    Ok(Downloaded {
        path: path.clone(),
        name,
    })
}

/// Copies `reader` to `writer` and returns the `sha256:<hex>` digest of
/// what was copied.
fn copy_hashing(reader: &mut impl Read, writer: &mut impl Write) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        writer.write_all(&buffer[..read])?;
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(format!("sha256:{hex}"))
}

fn parse_checksum(value: &str) -> Result<String, CopyError> {
    let valid = value.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .chars()
                .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase())
    });
    if valid {
        Ok(value.to_owned())
    } else {
        // TODO: sha384 and sha512 digests, which BuildKit also accepts.
        Err(CopyError::InvalidChecksum {
            value: value.to_owned(),
        })
    }
}

/// Returns the last segment of the URL path, or `__unnamed__` as the
/// Dockerfile frontend of BuildKit names a download without one.
fn file_name(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = without_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .split_once('/')
        .map_or("", |(_, path)| path);
    // NOTE: the segment is used as written, without percent-decoding.
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(name) if !name.is_empty() && name != "." && name != ".." => name.to_owned(),
        _ => "__unnamed__".to_owned(),
    }
}

/// Parses an HTTP date such as `Sun, 06 Nov 1994 08:49:37 GMT` into Unix
/// seconds.
fn parse_http_date(value: &str) -> Option<i64> {
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(value.trim(), format)
        .ok()
        .map(|time| time.assume_utc().unix_timestamp())
}

fn set_mtime(path: &Path, seconds: i64) -> io::Result<()> {
    let time = rustix::fs::Timespec {
        tv_sec: seconds,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::empty())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_is_last_path_segment() {
        assert_eq!(
            file_name("http://127.0.0.1:8/dir/file.tar.gz"),
            "file.tar.gz"
        );
        assert_eq!(file_name("http://127.0.0.1:8/file?x=1#y"), "file");
        assert_eq!(file_name("http://127.0.0.1:8/dir/"), "dir");
        assert_eq!(file_name("http://127.0.0.1:8"), "__unnamed__");
        assert_eq!(file_name("http://127.0.0.1:8/"), "__unnamed__");
    }

    #[test]
    fn http_dates_parse() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn checksums_need_sha256_hex() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(parse_checksum(&good).is_ok());
        assert!(parse_checksum("sha256:abc").is_err());
        assert!(parse_checksum(&format!("md5:{}", "a".repeat(64))).is_err());
    }

    #[test]
    fn compression_detected_from_magic() {
        assert_eq!(compression_of(&[0x1f, 0x8b, 8]), ArchiveFormat::Gzip);
        assert_eq!(compression_of(b"BZh91AY"), ArchiveFormat::Bzip2);
        assert_eq!(
            compression_of(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            ArchiveFormat::Xz
        );
        assert_eq!(
            compression_of(&[0x28, 0xb5, 0x2f, 0xfd]),
            ArchiveFormat::Zstd
        );
        assert_eq!(compression_of(b"plain"), ArchiveFormat::Tar);
    }

    #[test]
    fn tar_header_checksum_is_verified() {
        let mut header = tar::Header::new_gnu();
        header.set_path("a.txt").expect("path");
        header.set_size(0);
        header.set_cksum();
        assert!(is_tar_header(header.as_bytes()));
        let mut corrupted = header.as_bytes().to_vec();
        corrupted[0] = b'b';
        assert!(!is_tar_header(&corrupted));
        assert!(!is_tar_header(&[0; 512]));
        assert!(!is_tar_header(b"hello"));
    }
}
