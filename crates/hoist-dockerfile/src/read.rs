//! Reading a Dockerfile from a path with a size limit, for the tools that
//! take a Dockerfile argument.
//!
//! The path may name a device or a pipe as well as a regular file, so that
//! `/dev/stdin` and `<(...)` work. The limit keeps a device such as
//! `/dev/zero` from filling memory, and the file is opened without blocking,
//! so that a FIFO that no process writes to cannot hang the caller.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

/// Maximum size of a Dockerfile that [`read_dockerfile`] reads, 16 MiB. The
/// limit is generous, because it only stops a device such as `/dev/zero` or
/// a huge file from filling memory.
pub const MAX_DOCKERFILE_BYTES: u64 = 16 * 1024 * 1024;

/// A failure to read a Dockerfile.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file cannot be opened or read.
    #[error("failed to read {}", path.display())]
    Io {
        /// The path given.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is longer than [`MAX_DOCKERFILE_BYTES`].
    #[error(
        "{}: file is larger than the limit of {MAX_DOCKERFILE_BYTES} bytes (16 MiB)",
        path.display()
    )]
    TooLarge {
        /// The path given.
        path: PathBuf,
    },
    /// The file is not UTF-8 text.
    #[error("{}:{line}: invalid UTF-8", path.display())]
    InvalidUtf8 {
        /// The path given.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
    },
}

/// Reads the Dockerfile at `path` as UTF-8 text, at most
/// [`MAX_DOCKERFILE_BYTES`] of it.
///
/// The open does not wait for a writer on a FIFO, and a FIFO that no process
/// has open for writing reads as empty, which the parser then reports.
pub fn read_dockerfile(path: &Path) -> Result<String, ReadError> {
    let io_error = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = open_without_blocking(path).map_err(io_error)?;

    let mut bytes = Vec::new();
    file.take(MAX_DOCKERFILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_DOCKERFILE_BYTES {
        return Err(ReadError::TooLarge {
            path: path.to_owned(),
        });
    }

    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        ReadError::InvalidUtf8 {
            path: path.to_owned(),
            line: valid.iter().filter(|&&byte| byte == b'\n').count() + 1,
        }
    })
}

/// Opens `path` for reading with `O_NONBLOCK`, so that opening a FIFO
/// returns at once, and then clears the flag, so that reads wait for data
/// from a writer that is still running.
fn open_without_blocking(path: &Path) -> std::io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let descriptor = rustix::fs::open(path, flags, Mode::empty())?;
    let status = rustix::fs::fcntl_getfl(&descriptor)?;
    rustix::fs::fcntl_setfl(&descriptor, status - OFlags::NONBLOCK)?;
    Ok(File::from(descriptor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_file_is_read() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("Dockerfile");
        std::fs::write(&path, "FROM scratch\n").expect("write the Dockerfile");

        assert_eq!(read_dockerfile(&path).expect("readable"), "FROM scratch\n");
    }

    #[test]
    fn endless_device_stops_at_limit() {
        let error = read_dockerfile(Path::new("/dev/zero")).expect_err("too large");

        assert!(matches!(error, ReadError::TooLarge { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "/dev/zero: file is larger than the limit of 16777216 bytes (16 MiB)"
        );
    }

    #[test]
    fn fifo_without_writer_reads_empty() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("create a FIFO");

        assert_eq!(read_dockerfile(&path).expect("readable"), "");
    }

    #[test]
    fn directory_is_read_error() {
        let directory = tempfile::tempdir().expect("temporary directory");

        let error = read_dockerfile(directory.path()).expect_err("a directory");

        assert!(matches!(error, ReadError::Io { .. }), "{error:?}");
    }

    #[test]
    fn invalid_utf8_names_line() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("Dockerfile");
        std::fs::write(&path, b"FROM scratch\nRUN \xff\n").expect("write the Dockerfile");

        let error = read_dockerfile(&path).expect_err("invalid UTF-8");

        assert_eq!(
            error.to_string(),
            format!("{}:2: invalid UTF-8", path.display())
        );
    }
}
