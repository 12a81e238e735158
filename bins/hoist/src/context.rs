//! The build context: a directory as given, or a tarball extracted into a temporary
//! directory, then `--context-sub-path` inside it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use hoist_build::cleanup::WorkDirGuard;
use hoist_snapshot::{ApplyOptions, apply_layer};

/// The origin of a context, chosen by the scheme of `--context`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ContextSource {
    /// A directory: a plain path or `dir://PATH`.
    Directory(PathBuf),
    /// A tarball file: `tar://PATH` (gzip, zstd or plain tar).
    Tarball(PathBuf),
    /// A tarball on standard input: `tar://stdin`.
    Stdin,
}

impl ContextSource {
    /// Parses `--context`. Kaniko's remote schemes are rejected as not supported yet.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        if let Some(path) = text.strip_prefix("dir://") {
            return Ok(Self::Directory(PathBuf::from(path)));
        }
        if let Some(path) = text.strip_prefix("tar://") {
            return Ok(match path {
                "stdin" => Self::Stdin,
                _ => Self::Tarball(PathBuf::from(path)),
            });
        }
        let remote = ["s3://", "gs://", "az://", "git://", "https://", "http://"];
        if let Some(scheme) = remote.iter().find(|scheme| text.starts_with(**scheme)) {
            bail!("--context {scheme}... is not supported yet; pass a directory or tar://FILE");
        }
        Ok(Self::Directory(PathBuf::from(text)))
    }
}

/// A context directory ready for the build, with the temporary directory it was
/// extracted into, which is removed on drop.
#[derive(Debug)]
pub(crate) struct PreparedContext {
    /// The directory that COPY reads from, `--context-sub-path` applied.
    pub(crate) dir: PathBuf,
    /// The extracted tarball, registered for removal on SIGINT and SIGTERM.
    _extracted: Option<(tempfile::TempDir, WorkDirGuard)>,
}

/// Turns `source` into a directory: a tarball is extracted under `work_parent`, and
/// `sub_path` must name a directory inside the context.
pub(crate) fn prepare(
    source: &ContextSource,
    sub_path: Option<&Path>,
    work_parent: &Path,
) -> anyhow::Result<PreparedContext> {
    let (root, extracted) = match source {
        ContextSource::Directory(dir) => (check_directory(dir)?, None),
        ContextSource::Tarball(path) => {
            let file = File::open(path)
                .with_context(|| format!("cannot read the context tarball {}", path.display()))?;
            let dir = extract(file, &path.display().to_string(), work_parent)?;
            (dir.0.path().to_path_buf(), Some(dir))
        }
        ContextSource::Stdin => {
            let dir = extract(std::io::stdin().lock(), "standard input", work_parent)?;
            (dir.0.path().to_path_buf(), Some(dir))
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

/// Checks that `dir` is a readable directory and returns it as an absolute path.
fn check_directory(dir: &Path) -> anyhow::Result<PathBuf> {
    let absolute = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot read the context directory {}", dir.display()))?;
    std::fs::read_dir(&absolute)
        .with_context(|| format!("cannot read the context directory {}", dir.display()))?;
    Ok(absolute)
}

/// Extracts a context tarball with the layer extractor, which rejects entries that
/// leave the directory (absolute paths, `..`, links out of it).
fn extract(
    reader: impl Read,
    origin: &str,
    work_parent: &Path,
) -> anyhow::Result<(tempfile::TempDir, WorkDirGuard)> {
    let dir = tempfile::Builder::new()
        .prefix("hoist-context-")
        .tempdir_in(work_parent)
        .with_context(|| format!("cannot create a directory in {}", work_parent.display()))?;
    let guard = WorkDirGuard::register(dir.path());
    // NOTE: the extractor applies layer semantics, so an entry named `.wh.NAME` in a
    // context tarball deletes NAME instead of being extracted.
    let options = ApplyOptions { privileged: false };
    apply_layer(reader, dir.path(), &options)
        .with_context(|| format!("cannot extract the context tarball from {origin}"))?;
    Ok((dir, guard))
}

/// Joins `sub_path` to `root` and checks that the result is a directory inside `root`.
fn resolve_sub_path(root: &Path, sub_path: &Path) -> anyhow::Result<PathBuf> {
    let joined = root.join(sub_path);
    let resolved = std::fs::canonicalize(&joined).with_context(|| {
        format!(
            "--context-sub-path {} does not exist in the context",
            sub_path.display()
        )
    })?;
    if !resolved.starts_with(root) || !resolved.is_dir() {
        bail!(
            "--context-sub-path {} is not a directory inside the context",
            sub_path.display()
        );
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let error = ContextSource::parse(text).unwrap_err().to_string();
            assert!(error.contains("not supported yet"), "{error}");
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
        assert!(resolve_sub_path(&root_path, Path::new("..")).is_err());
        assert!(resolve_sub_path(&root_path, Path::new("missing")).is_err());
    }
}
