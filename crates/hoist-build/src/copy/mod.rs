//! `COPY` and `ADD`: sources from the build context, an earlier stage, an
//! image, heredocs and (for `ADD`) URLs and local tar archives, written
//! into a stage root.
//!
//! Sources are resolved inside their directory as if it were `/`, so
//! neither `..` nor a symlink leads out of it, and `.dockerignore` hides
//! what it excludes from the build context. A symlink named as a source is
//! followed, and symlinks inside a copied directory stay links. Wildcards
//! follow Go's `filepath.Match`. The destination is resolved inside the
//! root the same way, following its symlinks. Entries get the owner of
//! `--chown` (root by default for the context), their mode changed by
//! `--chmod` and their modification time. Directories that the copy
//! creates get the same owner, and existing ones keep theirs. With
//! `--link`, the copy goes to an empty staging root first and is merged
//! into the stage without following the stage's symlinks.

mod add;
mod chmod;
mod error;
mod tree;
mod wildcard;

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use hoist_dockerfile::dockerignore::IgnoreMatcher;
use hoist_dockerfile::parser::Heredoc;
use rustix::fs::OFlags;

pub use chmod::InvalidChmod;
pub use error::CopyError;
pub use wildcard::BadPattern;

use chmod::Chmod;
use tree::{Owner, RootWriter, TreeFilters, io_error, open_directory, open_in};

/// The directory that path sources are read from.
#[derive(Debug, Clone)]
pub(crate) struct SourceDir<'a> {
    /// The directory: the build context, or an extracted stage or image.
    pub(crate) path: PathBuf,
    /// The name of that directory in errors.
    pub(crate) origin: String,
    /// `.dockerignore`, applied to the build context only.
    pub(crate) ignore: Option<&'a IgnoreMatcher>,
    /// Whether copies keep each entry's owner when `--chown` is absent, as
    /// for `--from`. Files from the build context belong to root.
    pub(crate) keep_owner: bool,
}

/// The options of `ADD` that `COPY` lacks.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AddOptions<'a> {
    /// `--checksum`.
    pub(crate) checksum: Option<&'a str>,
    /// `--keep-git-dir`.
    pub(crate) keep_git_dir: bool,
}

/// One `COPY` or `ADD`.
#[derive(Debug)]
pub(crate) struct CopyRequest<'a> {
    /// The directory of path sources, or `None` for a build without a
    /// context.
    pub(crate) source_dir: Option<SourceDir<'a>>,
    /// The stage root.
    pub(crate) root: &'a Path,
    /// A directory outside the root for heredoc bodies, downloads and
    /// extracted archives.
    pub(crate) scratch: &'a Path,
    /// The current `WORKDIR`.
    pub(crate) workdir: &'a str,
    /// The sources as written.
    pub(crate) sources: &'a [String],
    /// The bodies of the heredoc sources, in order.
    pub(crate) heredocs: &'a [Heredoc],
    /// The destination as written.
    pub(crate) destination: &'a str,
    /// The `--chown` owner.
    pub(crate) chown: Option<(u32, u32)>,
    /// `--chmod`.
    pub(crate) chmod: Option<&'a str>,
    /// `--exclude` patterns.
    pub(crate) exclude: &'a [String],
    /// `--parents`.
    pub(crate) parents: bool,
    /// `--link`.
    pub(crate) link: bool,
    /// The options of `ADD`, or `None` for `COPY`.
    pub(crate) add: Option<AddOptions<'a>>,
}

/// A source after wildcards were expanded.
#[derive(Debug)]
enum Item<'a> {
    /// A path in the source directory, relative to it.
    Path {
        relative: PathBuf,
        /// The part of `relative` that `--parents` keeps.
        parents_path: PathBuf,
        written: &'a str,
    },
    Heredoc(&'a Heredoc),
    Url(&'a str),
}

impl CopyRequest<'_> {
    /// Copies every source to the destination.
    pub(crate) fn run(&self) -> Result<(), CopyError> {
        let chmod = self.chmod.map(Chmod::parse).transpose()?;
        let exclude = self.exclude_matcher()?;
        self.check_add_options()?;
        let destination = lexical_clean(&crate::metadata::join_workdir(
            if self.workdir.is_empty() {
                "/"
            } else {
                self.workdir
            },
            self.destination,
        ));
        let items = self.expand_sources()?;
        let destination = if self.link {
            destination
        } else {
            RootWriter::open(self.root, None)?.resolve_symlinks(&destination)?
        };

        let names_directory = self.destination.ends_with('/')
            || self.destination == "."
            || self.destination.ends_with("/.")
            || self.parents
            || RootWriter::open(self.root, None)?.is_directory(&destination);
        if items.len() > 1 && !names_directory {
            return Err(CopyError::DestinationNotDirectory {
                destination: self.destination.to_owned(),
            });
        }
        if self.link {
            return self.copy_linked(
                chmod,
                exclude.as_ref(),
                &destination,
                names_directory,
                &items,
            );
        }
        let writer = RootWriter::open(self.root, chmod)?;
        let context = CopyContext {
            request: self,
            writer: &writer,
            destination: &destination,
            names_directory,
            exclude: exclude.as_ref(),
        };
        context.copy_items(&items)
    }

    /// Copies the items into an empty staging root, then merges that tree
    /// into the stage root without following its symlinks. A directory of
    /// the tree replaces any other entry there, so the destination path
    /// holds only directories, as Docker documents for `--link`.
    ///
    /// NOTE: existing directories keep their metadata, as for a plain
    /// copy. Whether BuildKit's linked layer overrides it was not checked.
    fn copy_linked(
        &self,
        chmod: Option<Chmod>,
        exclude: Option<&IgnoreMatcher>,
        destination: &Path,
        names_directory: bool,
        items: &[Item<'_>],
    ) -> Result<(), CopyError> {
        let staging = tempfile::Builder::new()
            .prefix("link-")
            .tempdir_in(self.scratch)
            .map_err(io_error(self.scratch))?;
        let writer = RootWriter::open(staging.path(), chmod)?;
        let context = CopyContext {
            request: self,
            writer: &writer,
            destination,
            names_directory,
            exclude,
        };
        context.copy_items(items)?;
        let merger = RootWriter::open_for_merge(self.root)?;
        merger.copy_tree(
            staging.path(),
            Path::new("/"),
            Owner::Source,
            &TreeFilters::none(),
        )
    }

    fn exclude_matcher(&self) -> Result<Option<IgnoreMatcher>, CopyError> {
        if self.exclude.is_empty() {
            return Ok(None);
        }
        IgnoreMatcher::parse(&self.exclude.join("\n"), "--exclude")
            .map(Some)
            .map_err(|error| CopyError::InvalidExclude {
                message: error.to_string(),
            })
    }

    fn check_add_options(&self) -> Result<(), CopyError> {
        let Some(add) = self.add else {
            return Ok(());
        };
        if add.keep_git_dir {
            // TODO: Git sources; they need a Git client in the builder.
            return Err(CopyError::NotSupported {
                feature: "ADD --keep-git-dir".to_owned(),
            });
        }
        if add.checksum.is_some() {
            let local = self
                .sources
                .iter()
                .find(|source| !is_url(source) && !is_heredoc(source));
            if let Some(local) = local {
                return Err(CopyError::ChecksumWithoutUrl {
                    source_path: local.clone(),
                });
            }
        }
        Ok(())
    }

    /// Classifies the sources and expands wildcards in path sources.
    fn expand_sources(&self) -> Result<Vec<Item<'_>>, CopyError> {
        let mut heredocs = self.heredocs.iter();
        let mut items = Vec::new();
        for source in self.sources {
            if is_heredoc(source)
                && let Some(heredoc) = heredocs.next()
            {
                items.push(Item::Heredoc(heredoc));
                continue;
            }
            if is_git(source) && self.add.is_some() {
                return Err(CopyError::NotSupported {
                    feature: format!("ADD from the Git repository {source:?}"),
                });
            }
            if is_url(source) {
                if self.add.is_none() {
                    return Err(CopyError::UrlInCopy {
                        url: source.clone(),
                    });
                }
                items.push(Item::Url(source));
                continue;
            }
            self.expand_path(source, &mut items)?;
        }
        Ok(items)
    }

    fn source_dir(&self) -> Result<&SourceDir<'_>, CopyError> {
        self.source_dir
            .as_ref()
            .ok_or_else(|| CopyError::NotSupported {
                feature: "a path source in a build without a context".to_owned(),
            })
    }

    fn expand_path<'s>(
        &'s self,
        source: &'s str,
        items: &mut Vec<Item<'s>>,
    ) -> Result<(), CopyError> {
        let source_dir = self.source_dir()?;
        let (pivot, _) = split_pivot(source);
        let pivot = lexical_clean(pivot);
        let pattern = lexical_clean(source);
        let relative = pattern.strip_prefix("/").unwrap_or(&pattern).to_path_buf();
        let push = |items: &mut Vec<Item<'s>>, relative: PathBuf| {
            let parents_path = Path::new("/")
                .join(&relative)
                .strip_prefix(&pivot)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| relative.clone());
            items.push(Item::Path {
                relative,
                parents_path,
                written: source,
            });
        };
        if !wildcard::has_wildcard(source) {
            push(items, relative);
            return Ok(());
        }

        let dir_fd = open_directory(&source_dir.path)?;
        let list = |path: &Path| {
            let fd = open_in(&dir_fd, path, OFlags::DIRECTORY | OFlags::RDONLY).ok()?;
            wildcard::list_directory(&fd_path(&fd))
        };
        let exists = |path: &Path| {
            open_in(&dir_fd, path, OFlags::PATH).is_ok() && !is_ignored(source_dir, path)
        };
        let matches = wildcard::expand(&relative, list, exists).map_err(|_| BadPattern {
            pattern: source.to_owned(),
        })?;
        if matches.is_empty() {
            return Err(CopyError::NoMatch {
                pattern: source.to_owned(),
                origin: source_dir.origin.clone(),
            });
        }
        for found in matches {
            push(items, found);
        }
        Ok(())
    }
}

/// The state shared by the items of one request.
struct CopyContext<'a> {
    request: &'a CopyRequest<'a>,
    writer: &'a RootWriter,
    destination: &'a Path,
    names_directory: bool,
    exclude: Option<&'a IgnoreMatcher>,
}

impl CopyContext<'_> {
    fn copy_items(&self, items: &[Item<'_>]) -> Result<(), CopyError> {
        for item in items {
            self.copy_item(item)?;
        }
        Ok(())
    }

    fn copy_item(&self, item: &Item<'_>) -> Result<(), CopyError> {
        match item {
            Item::Path {
                relative,
                parents_path,
                written,
            } => self.copy_path(relative, parents_path, written),
            Item::Heredoc(heredoc) => self.copy_heredoc(heredoc),
            Item::Url(url) => self.copy_url(url),
        }
    }

    /// Copies a path source: a directory's contents, an archive's contents
    /// for ADD, or a file.
    fn copy_path(
        &self,
        relative: &Path,
        parents_path: &Path,
        written: &str,
    ) -> Result<(), CopyError> {
        let source_dir = self.request.source_dir()?;
        let not_found = || CopyError::SourceNotFound {
            source_path: written.to_owned(),
            origin: source_dir.origin.clone(),
        };
        let dir_fd = open_directory(&source_dir.path)?;
        let fd = open_in(&dir_fd, relative, OFlags::PATH).map_err(|_| not_found())?;
        let opened = fd_path(&fd);
        let metadata = fs::metadata(&opened).map_err(io_error(relative))?;
        // An ignored directory stays a source when an exception such as
        // `!dir/keep` brings entries below it back into the context.
        let has_exceptions = source_dir.ignore.is_some_and(IgnoreMatcher::has_exceptions);
        if is_ignored(source_dir, relative) && !(metadata.is_dir() && has_exceptions) {
            return Err(not_found());
        }
        let owner = match (self.request.chown, source_dir.keep_owner) {
            (Some((uid, gid)), _) => Owner::Fixed(uid, gid),
            (None, true) => Owner::Source,
            (None, false) => Owner::Fixed(0, 0),
        };
        let top_level_excluded = self
            .exclude
            .is_some_and(|exclude| exclude.is_excluded(&relative.to_string_lossy()));
        if top_level_excluded && (self.request.parents || !metadata.is_dir()) {
            return Ok(());
        }

        if metadata.is_dir() {
            let target = if self.request.parents {
                self.destination.join(parents_path)
            } else {
                self.destination.to_path_buf()
            };
            self.writer.create_directory(&target, owner)?;
            let filters = TreeFilters {
                ignore: source_dir.ignore,
                context_path: relative,
                exclude: self.exclude,
            };
            return self.writer.copy_tree(&opened, &target, owner, &filters);
        }
        let archive = match self.request.add {
            Some(_) => add::archive_format(&opened).map_err(io_error(relative))?,
            None => None,
        };
        if let Some(format) = archive {
            return self.extract_archive(&opened, relative, format);
        }
        let target = if self.request.parents {
            self.destination.join(parents_path)
        } else {
            self.file_target(relative.file_name().map(Path::new))
        };
        self.create_parent(&target, owner)?;
        self.writer.copy_entry(&opened, &metadata, &target, owner)
    }

    /// Returns the path of a file source named `name`: inside the
    /// destination when it names or is a directory, else the destination.
    fn file_target(&self, name: Option<&Path>) -> PathBuf {
        match (self.names_directory, name) {
            (true, Some(name)) => self.destination.join(name),
            _ => self.destination.to_path_buf(),
        }
    }

    fn create_parent(&self, target: &Path, owner: Owner) -> Result<(), CopyError> {
        let parent = target.parent().unwrap_or(Path::new("/"));
        self.writer.create_directory(parent, owner)
    }

    /// Returns the owner of heredoc bodies and downloads: `--chown`, else
    /// root.
    fn fixed_owner(&self) -> Owner {
        let (uid, gid) = self.request.chown.unwrap_or((0, 0));
        Owner::Fixed(uid, gid)
    }

    /// Writes a heredoc body as a file with mode 0644, named after its
    /// delimiter.
    fn copy_heredoc(&self, heredoc: &Heredoc) -> Result<(), CopyError> {
        // The file is named after the last component of the delimiter, so a
        // delimiter such as `../x` cannot point outside the staging
        // directory.
        let cleaned = lexical_clean(&heredoc.name);
        let name = cleaned
            .file_name()
            .ok_or_else(|| CopyError::InvalidHeredocName {
                name: heredoc.name.clone(),
            })?;
        let staging = self.staging_directory()?;
        let path = staging.path().join(name);
        fs::write(&path, heredoc.body()).map_err(io_error(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).map_err(io_error(&path))?;
        let metadata = fs::symlink_metadata(&path).map_err(io_error(&path))?;
        let target = self.file_target(Some(Path::new(name)));
        let owner = self.fixed_owner();
        self.create_parent(&target, owner)?;
        self.writer.copy_entry(&path, &metadata, &target, owner)
    }

    fn copy_url(&self, url: &str) -> Result<(), CopyError> {
        let staging = self.staging_directory()?;
        let checksum = self.request.add.and_then(|add| add.checksum);
        let downloaded = add::download(url, checksum, staging.path())?;
        let metadata =
            fs::symlink_metadata(&downloaded.path).map_err(io_error(&downloaded.path))?;
        let target = self.file_target(Some(Path::new(&downloaded.name)));
        let owner = self.fixed_owner();
        self.create_parent(&target, owner)?;
        self.writer
            .copy_entry(&downloaded.path, &metadata, &target, owner)
    }

    /// Extracts a tar archive into a staging directory through the safe
    /// layer apply, then copies its tree into the destination directory.
    /// Entries keep the archive's owners unless `--chown` is given.
    fn extract_archive(
        &self,
        archive: &Path,
        relative: &Path,
        format: add::ArchiveFormat,
    ) -> Result<(), CopyError> {
        let staging = self.staging_directory()?;
        add::extract(archive, format, staging.path()).map_err(|source| CopyError::Extract {
            path: relative.to_path_buf(),
            source,
        })?;
        let owner = match self.request.chown {
            Some((uid, gid)) => Owner::Fixed(uid, gid),
            None => Owner::Source,
        };
        self.writer.create_directory(self.destination, owner)?;
        // NOTE: the entries of an extracted archive keep the archive's modes
        // under --chmod. This was not compared with BuildKit.
        let plain = self.writer.without_chmod()?;
        plain.copy_tree(
            staging.path(),
            self.destination,
            owner,
            &TreeFilters::none(),
        )
    }

    fn staging_directory(&self) -> Result<tempfile::TempDir, CopyError> {
        tempfile::Builder::new()
            .prefix("copy-")
            .tempdir_in(self.request.scratch)
            .map_err(io_error(self.request.scratch))
    }
}

/// Returns the heredocs with their final bodies: leading tabs of `<<-`
/// bodies removed. The build plan has already expanded the variables of
/// bodies whose delimiter was unquoted.
pub(crate) fn heredoc_bodies(heredocs: &[Heredoc]) -> Vec<Heredoc> {
    heredocs
        .iter()
        .map(|heredoc| Heredoc {
            content: heredoc.body(),
            chomp: false,
            ..heredoc.clone()
        })
        .collect()
}

fn is_ignored(source_dir: &SourceDir<'_>, relative: &Path) -> bool {
    let text = relative.to_string_lossy();
    let text = text.trim_start_matches('/');
    !text.is_empty()
        && source_dir
            .ignore
            .is_some_and(|matcher| matcher.is_excluded(text))
}

/// Returns the part of `source` before a `/./` pivot, which `--parents`
/// strips, and the rest. Without a pivot the whole path is kept.
fn split_pivot(source: &str) -> (&str, &str) {
    let trimmed = source.strip_prefix("./").unwrap_or(source);
    match trimmed.find("/./") {
        Some(index) => (&trimmed[..index], &trimmed[index + 3..]),
        None => ("", trimmed),
    }
}

fn is_heredoc(source: &str) -> bool {
    source
        .trim_start_matches(|ch: char| ch.is_ascii_digit())
        .starts_with("<<")
}

fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// Recognises Git sources: `git@`, `git://` and `ssh://` addresses, and
/// HTTP URLs of `.git` repositories.
fn is_git(source: &str) -> bool {
    source.starts_with("git@")
        || source.starts_with("git://")
        || source.starts_with("ssh://")
        || (is_url(source) && (source.ends_with(".git") || source.contains(".git#")))
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Cleans `path` as an absolute path: `.` is dropped and `..` stops at `/`.
fn lexical_clean(path: &str) -> PathBuf {
    let mut clean = PathBuf::from("/");
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::ParentDir => {
                clean.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotdot_stops_at_root() {
        assert_eq!(lexical_clean("../../etc/passwd"), Path::new("/etc/passwd"));
        assert_eq!(lexical_clean("./a/./b/../c"), Path::new("/a/c"));
        assert_eq!(lexical_clean("."), Path::new("/"));
    }

    #[test]
    fn pivot_splits_parents_path() {
        assert_eq!(split_pivot("./x/./y/a.txt"), ("x", "y/a.txt"));
        assert_eq!(split_pivot("x/y/a.txt"), ("", "x/y/a.txt"));
        assert_eq!(split_pivot("./a.txt"), ("", "a.txt"));
    }

    #[test]
    fn source_kinds_are_recognised() {
        assert!(is_heredoc("<<EOF"));
        assert!(is_heredoc("<<-EOF"));
        assert!(!is_heredoc("file<<x"));
        assert!(is_url("https://example.invalid/file"));
        assert!(!is_url("file.txt"));
        assert!(is_git("git@host.invalid:repo.git"));
        assert!(is_git("https://host.invalid/repo.git"));
        assert!(!is_git("https://host.invalid/file.tar.gz"));
    }
}
