//! The build context: a directory as given, or a tarball extracted into a
//! temporary directory, then a sub-path inside it.
//!
//! [`ContextSource::parse`] reads Kaniko's `--context` syntax and
//! [`prepare`] turns the source into the directory that COPY reads from.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use hoist_snapshot::{ApplyError, ApplyOptions, apply_layer};

use crate::cleanup::WorkDirGuard;

/// Kaniko's context schemes that hoist does not fetch.
const REMOTE_SCHEMES: [&str; 6] = ["s3://", "gs://", "az://", "git://", "https://", "http://"];

/// A failure to find or prepare the build context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A remote context, which hoist does not fetch.
    #[error("--context {scheme}... is not supported yet; pass a directory or tar://FILE")]
    RemoteNotSupported {
        /// The scheme, such as `s3://`.
        scheme: &'static str,
    },
    /// The context directory is missing or unreadable.
    #[error("cannot read the context directory {}", path.display())]
    ReadDirectory {
        /// The directory as given.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The context tarball is missing or unreadable.
    #[error("cannot read the context tarball {}", path.display())]
    OpenTarball {
        /// The tarball as given.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The temporary directory for an extracted tarball could not be created.
    #[error("cannot create a directory in {}", path.display())]
    CreateDirectory {
        /// The parent directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The context tarball could not be extracted.
    #[error("cannot extract the context tarball from {origin}")]
    Extract {
        /// The tarball's path, or `standard input`.
        origin: String,
        /// The cause.
        source: ApplyError,
    },
    /// The sub-path does not exist in the context.
    #[error("--context-sub-path {} does not exist in the context", sub_path.display())]
    SubPathMissing {
        /// The sub-path as given.
        sub_path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The sub-path leaves the context or is not a directory.
    #[error("--context-sub-path {} is not a directory inside the context", sub_path.display())]
    SubPathOutside {
        /// The sub-path as given.
        sub_path: PathBuf,
    },
}

impl ContextError {
    /// Tells whether the error comes from the input as given (a missing path,
    /// a remote scheme, a malformed tarball) rather than from this machine,
    /// such as a full disk while extracting.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            Self::CreateDirectory { .. } => false,
            Self::Extract { source, .. } => !is_local_failure(source),
            _ => true,
        }
    }
}

/// Tells whether writing an extracted entry failed because of the machine:
/// no space, no inodes, a read-only or over-quota file system.
fn is_local_failure(error: &ApplyError) -> bool {
    let (ApplyError::Entry { source, .. } | ApplyError::Root { source, .. }) = error else {
        return false;
    };
    matches!(
        source.kind(),
        io::ErrorKind::StorageFull
            | io::ErrorKind::QuotaExceeded
            | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// The origin of a context, chosen by the scheme of Kaniko's `--context`.
#[derive(Debug, PartialEq, Eq)]
pub enum ContextSource {
    /// A directory: a plain path or `dir://PATH`.
    Directory(PathBuf),
    /// A tarball file: `tar://PATH` (gzip, zstd or plain tar).
    Tarball(PathBuf),
    /// A tarball on standard input: `tar://stdin`.
    Stdin,
}

impl ContextSource {
    /// Parses `--context`. Kaniko's remote schemes are rejected as not
    /// supported yet.
    pub fn parse(text: &str) -> Result<Self, ContextError> {
        if let Some(path) = text.strip_prefix("dir://") {
            return Ok(Self::Directory(PathBuf::from(path)));
        }
        if let Some(path) = text.strip_prefix("tar://") {
            return Ok(match path {
                "stdin" => Self::Stdin,
                _ => Self::Tarball(PathBuf::from(path)),
            });
        }
        if let Some(scheme) = REMOTE_SCHEMES
            .iter()
            .find(|scheme| text.starts_with(**scheme))
        {
            return Err(ContextError::RemoteNotSupported { scheme });
        }
        Ok(Self::Directory(PathBuf::from(text)))
    }
}

/// A context directory ready for the build. A context extracted from a
/// tarball lives in a temporary directory that is removed on drop, and on
/// SIGINT or SIGTERM while it lives.
#[derive(Debug)]
pub struct PreparedContext {
    dir: PathBuf,
    _extracted: Option<ExtractedContext>,
}

impl PreparedContext {
    /// Returns the directory that COPY reads from, with the sub-path applied.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A tarball extracted into a temporary directory, registered for removal on
/// SIGINT and SIGTERM.
#[derive(Debug)]
struct ExtractedContext {
    dir: tempfile::TempDir,
    _guard: WorkDirGuard,
}

/// Turns `source` into a directory: a tarball is extracted under
/// `work_parent`, and `sub_path` must name a directory inside the context.
pub fn prepare(
    source: &ContextSource,
    sub_path: Option<&Path>,
    work_parent: &Path,
) -> Result<PreparedContext, ContextError> {
    let (root, extracted) = match source {
        ContextSource::Directory(dir) => (check_directory(dir)?, None),
        ContextSource::Tarball(path) => {
            let file = File::open(path).map_err(|source| ContextError::OpenTarball {
                path: path.clone(),
                source,
            })?;
            let extracted = extract(file, &path.display().to_string(), work_parent)?;
            (extracted.dir.path().to_path_buf(), Some(extracted))
        }
        ContextSource::Stdin => {
            let extracted = extract(io::stdin().lock(), "standard input", work_parent)?;
            (extracted.dir.path().to_path_buf(), Some(extracted))
        }
    };
    let dir = match sub_path {
        Some(sub_path) => resolve_sub_path(&root, sub_path)?,
        None => root,
    };
    Ok(PreparedContext {
        dir,
        _extracted: extracted,
    })
}

/// Checks that `dir` is a readable directory and returns it as an absolute
/// path.
fn check_directory(dir: &Path) -> Result<PathBuf, ContextError> {
    let unreadable = |source| ContextError::ReadDirectory {
        path: dir.to_path_buf(),
        source,
    };
    let absolute = std::fs::canonicalize(dir).map_err(unreadable)?;
    std::fs::read_dir(&absolute).map_err(unreadable)?;
    Ok(absolute)
}

/// Extracts a context tarball with the layer extractor, which rejects entries
/// that leave the directory (absolute paths, `..`, links out of it).
fn extract(
    reader: impl Read,
    origin: &str,
    work_parent: &Path,
) -> Result<ExtractedContext, ContextError> {
    let dir = tempfile::Builder::new()
        .prefix("hoist-context-")
        .tempdir_in(work_parent)
        .map_err(|source| ContextError::CreateDirectory {
            path: work_parent.to_path_buf(),
            source,
        })?;
    let guard = WorkDirGuard::register(dir.path());
    // NOTE: the extractor applies layer semantics, so an entry named
    // `.wh.NAME` in a context tarball deletes NAME instead of being extracted.
    let options = ApplyOptions { privileged: false };
    apply_layer(reader, dir.path(), &options).map_err(|source| ContextError::Extract {
        origin: origin.to_owned(),
        source,
    })?;
    Ok(ExtractedContext { dir, _guard: guard })
}

/// Joins `sub_path` to `root` and checks that the result is a directory
/// inside `root`.
fn resolve_sub_path(root: &Path, sub_path: &Path) -> Result<PathBuf, ContextError> {
    let joined = root.join(sub_path);
    let resolved =
        std::fs::canonicalize(&joined).map_err(|source| ContextError::SubPathMissing {
            sub_path: sub_path.to_path_buf(),
            source,
        })?;
    if !resolved.starts_with(root) || !resolved.is_dir() {
        return Err(ContextError::SubPathOutside {
            sub_path: sub_path.to_path_buf(),
        });
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns a gzip-compressed tarball with one regular file per entry.
    fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
        let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(encoder);
        for (name, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_cksum();
            builder
                .append_data(&mut header, name, *content)
                .expect("append entry");
        }
        builder
            .into_inner()
            .and_then(flate2::write::GzEncoder::finish)
            .expect("finish tarball")
    }

    #[test]
    fn context_schemes_are_parsed() {
        assert_eq!(
            ContextSource::parse("dir:///src").unwrap(),
            ContextSource::Directory("/src".into())
        );
        assert_eq!(
            ContextSource::parse("tar:///ctx.tar.gz").unwrap(),
            ContextSource::Tarball("/ctx.tar.gz".into())
        );
        assert_eq!(
            ContextSource::parse("tar://stdin").unwrap(),
            ContextSource::Stdin
        );
        assert_eq!(
            ContextSource::parse("./src").unwrap(),
            ContextSource::Directory("./src".into())
        );
    }

    #[test]
    fn remote_contexts_are_not_supported() {
        for text in [
            "s3://bucket/ctx.tar.gz",
            "git://example/repo.git",
            "gs://b/c",
        ] {
            let error = ContextSource::parse(text).unwrap_err();
            assert!(error.to_string().contains("not supported yet"), "{error}");
            assert!(error.is_invalid_input(), "{error}");
        }
    }

    #[test]
    fn sub_path_must_stay_inside() {
        let root = tempfile::tempdir().unwrap();
        let root_path = std::fs::canonicalize(root.path()).unwrap();
        std::fs::create_dir(root_path.join("app")).unwrap();
        assert_eq!(
            resolve_sub_path(&root_path, Path::new("app")).unwrap(),
            root_path.join("app")
        );
        assert!(matches!(
            resolve_sub_path(&root_path, Path::new("..")),
            Err(ContextError::SubPathOutside { .. })
        ));
        assert!(matches!(
            resolve_sub_path(&root_path, Path::new("missing")),
            Err(ContextError::SubPathMissing { .. })
        ));
    }

    #[test]
    fn directory_context_is_made_absolute() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("app")).unwrap();
        let source = ContextSource::Directory(root.path().to_path_buf());
        let prepared = prepare(&source, Some(Path::new("app")), root.path()).unwrap();
        let expected = std::fs::canonicalize(root.path().join("app")).unwrap();
        assert_eq!(prepared.dir(), expected);
    }

    #[test]
    fn missing_directory_is_invalid_input() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("missing");
        let error = prepare(&ContextSource::Directory(missing), None, root.path()).unwrap_err();
        assert!(
            matches!(error, ContextError::ReadDirectory { .. }),
            "{error}"
        );
        assert!(error.is_invalid_input());
    }

    #[test]
    fn tarball_is_extracted_and_removed() {
        let work = tempfile::tempdir().unwrap();
        let path = work.path().join("context.tar.gz");
        std::fs::write(&path, tarball(&[("app/Dockerfile", b"FROM scratch\n")])).unwrap();
        let source = ContextSource::Tarball(path);
        let prepared = prepare(&source, Some(Path::new("app")), work.path()).unwrap();
        let dockerfile = std::fs::read_to_string(prepared.dir().join("Dockerfile")).unwrap();
        assert_eq!(dockerfile, "FROM scratch\n");
        let extracted = prepared.dir().parent().unwrap().to_path_buf();
        assert!(extracted.starts_with(work.path()));

        drop(prepared);
        assert!(
            !extracted.exists(),
            "{} is left behind",
            extracted.display()
        );
    }

    #[test]
    fn malformed_tarball_is_invalid_input() {
        let work = tempfile::tempdir().unwrap();
        let path = work.path().join("context.tar");
        std::fs::write(&path, b"not a tarball").unwrap();
        let error = prepare(&ContextSource::Tarball(path), None, work.path()).unwrap_err();
        assert!(matches!(error, ContextError::Extract { .. }), "{error}");
        assert!(error.is_invalid_input());
    }

    #[test]
    fn full_disk_is_not_invalid_input() {
        let error = ContextError::Extract {
            origin: "standard input".to_owned(),
            source: ApplyError::Entry {
                entry: "big".to_owned(),
                source: io::Error::from(io::ErrorKind::StorageFull),
            },
        };
        assert!(!error.is_invalid_input());
    }
}
