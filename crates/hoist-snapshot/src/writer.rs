//! The layer writer: a tar encoder, the diff ID hash, a compressor and the
//! blob hash in one streaming pass.

use crate::changes::ChangeSet;
use crate::compression::{Compression, Encoder};
use crate::digest::{HashingWriter, Sha256Digest};
use crate::error::WriteError;
use crate::metadata::read_xattrs;
use crate::tar_encode::{EntryHeader, EntryKind, TarEncoder, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The prefix that marks a whiteout entry: `.wh.<name>` deletes `<name>`.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The entry that marks its directory as opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Settings of the layer writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerOptions {
    /// The compression of the blob.
    pub compression: Compression,
    /// When set, every mtime later than this epoch is replaced by it, as the
    /// `SOURCE_DATE_EPOCH` convention of reproducible builds specifies.
    pub mtime_epoch: Option<i64>,
}

/// The identity of a written layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDigests {
    /// SHA-256 of the uncompressed tar stream (the OCI diff ID).
    pub diff_id: Sha256Digest,
    /// SHA-256 of the blob as written.
    pub digest: Sha256Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Size of the uncompressed tar stream in bytes.
    pub tar_size: u64,
    /// The OCI media type of the blob.
    pub media_type: &'static str,
}

/// The kind of entry the writer emits at one path of the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Planned {
    /// The file, directory or link found at this path of the source.
    Content,
    /// A whiteout, an empty file named `.wh.<name>`.
    Whiteout,
    /// The opaque marker of the parent directory.
    Opaque,
}

/// Writes the layer of `changes`, reading files from `source`, into `out`.
///
/// Entries come in component order, so every directory precedes its
/// contents, and every parent directory of a change is included. Memory use
/// grows with the number of changed paths, not with the size of the files.
pub fn write_layer<W: Write + Send>(
    source: &Path,
    changes: &ChangeSet,
    options: &LayerOptions,
    out: &mut W,
) -> Result<LayerDigests, WriteError> {
    let plan = plan_entries(changes)?;
    let _span =
        tracing::debug_span!("write_layer", source = %source.display(), entries = plan.len())
            .entered();

    let (tar_size, diff_id, size, digest) = std::thread::scope(|scope| {
        let blob = HashingWriter::new(&mut *out);
        let encoder = Encoder::new(options.compression, blob, scope).map_err(WriteError::Output)?;
        let mut tar = TarEncoder::new(HashingWriter::new(encoder));
        let mut entries = EntryWriter::new(source, options.mtime_epoch);
        for (path, planned) in &plan {
            if let Err(error) = entries.append(&mut tar, path, *planned) {
                abandon(tar);
                return Err(error);
            }
        }
        let tar_stream = tar.finish().map_err(WriteError::Output)?;
        let (encoder, diff_id, tar_size) = tar_stream.finish();
        let blob = encoder.finish().map_err(WriteError::Output)?;
        let (_, digest, size) = blob.finish();
        Ok::<_, WriteError>((tar_size, diff_id, size, digest))
    })?;

    tracing::debug!(%diff_id, %digest, size, tar_size, "layer written");
    Ok(LayerDigests {
        diff_id,
        digest,
        size,
        tar_size,
        media_type: options.compression.media_type(),
    })
}

/// Stops the compressor of a layer that failed and drops its output errors,
/// because the stage error is the one to report. An unfinished `gzp`
/// compressor would finish itself on drop and panic if its output had failed.
fn abandon<W: Write + Send>(tar: TarEncoder<HashingWriter<Encoder<'_, W>>>) {
    let (encoder, _, _) = tar.into_inner().finish();
    if let Err(error) = encoder.finish() {
        tracing::debug!(%error, "output of the failed layer not finished");
    }
}

/// Lists every entry of the layer with its parents, in component order.
fn plan_entries(changes: &ChangeSet) -> Result<BTreeMap<PathBuf, Planned>, WriteError> {
    let mut plan = BTreeMap::new();
    for path in changes.added.iter().chain(&changes.modified) {
        check_relative(path)?;
        insert_with_parents(&mut plan, path.clone(), Planned::Content);
    }
    for path in &changes.opaque {
        check_relative(path)?;
        insert_with_parents(&mut plan, path.clone(), Planned::Content);
        plan.insert(path.join(OPAQUE_MARKER), Planned::Opaque);
    }
    for path in &changes.deleted {
        check_relative(path)?;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(WriteError::InvalidPath { path: path.clone() });
        };
        let mut whiteout = std::ffi::OsString::from(WHITEOUT_PREFIX);
        whiteout.push(name);
        if !parent.as_os_str().is_empty() {
            insert_with_parents(&mut plan, parent.to_path_buf(), Planned::Content);
        }
        plan.insert(parent.join(whiteout), Planned::Whiteout);
    }
    Ok(plan)
}

fn check_relative(path: &Path) -> Result<(), WriteError> {
    let normal = path.components().all(|c| matches!(c, Component::Normal(_)));
    if normal && path.components().next().is_some() {
        Ok(())
    } else {
        Err(WriteError::InvalidPath {
            path: path.to_path_buf(),
        })
    }
}

fn insert_with_parents(plan: &mut BTreeMap<PathBuf, Planned>, path: PathBuf, planned: Planned) {
    let mut parent = path.parent();
    while let Some(dir) = parent.filter(|p| !p.as_os_str().is_empty()) {
        if plan.contains_key(dir) {
            break;
        }
        plan.insert(dir.to_path_buf(), Planned::Content);
        parent = dir.parent();
    }
    plan.insert(path, planned);
}

/// Turns planned paths into tar entries, remembering the first path of each
/// hardlinked inode.
struct EntryWriter<'a> {
    source: &'a Path,
    mtime_epoch: Option<i64>,
    first_links: HashMap<(u64, u64), Vec<u8>>,
}

impl<'a> EntryWriter<'a> {
    fn new(source: &'a Path, mtime_epoch: Option<i64>) -> Self {
        Self {
            source,
            mtime_epoch,
            first_links: HashMap::new(),
        }
    }

    fn append<W: Write>(
        &mut self,
        tar: &mut TarEncoder<W>,
        path: &Path,
        planned: Planned,
    ) -> Result<(), WriteError> {
        match planned {
            Planned::Content => self.append_content(tar, path),
            Planned::Whiteout | Planned::Opaque => self.append_marker(tar, path),
        }
    }

    fn append_marker<W: Write>(
        &self,
        tar: &mut TarEncoder<W>,
        path: &Path,
    ) -> Result<(), WriteError> {
        let header = EntryHeader {
            path: path.as_os_str().as_bytes(),
            kind: EntryKind::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: self.clamp(Timestamp::default()),
            link: b"",
            device: (0, 0),
            xattrs: &[],
        };
        tar.append(&header, io::empty())
            .map_err(WriteError::Output)?;
        Ok(())
    }

    fn append_content<W: Write>(
        &mut self,
        tar: &mut TarEncoder<W>,
        path: &Path,
    ) -> Result<(), WriteError> {
        let full = self.source.join(path);
        let read_err = |source| WriteError::Read {
            path: full.clone(),
            source,
        };
        let meta = full.symlink_metadata().map_err(read_err)?;
        let file_type = meta.file_type();
        if file_type.is_socket() {
            tracing::debug!(path = %full.display(), "socket left out of the layer");
            return Ok(());
        }

        let mut name = path.as_os_str().as_bytes().to_vec();
        let mut link = Vec::new();
        let kind = if file_type.is_dir() {
            name.push(b'/');
            EntryKind::Directory
        } else if file_type.is_symlink() {
            link = std::fs::read_link(&full)
                .map_err(read_err)?
                .into_os_string()
                .into_vec();
            EntryKind::Symlink
        } else if file_type.is_char_device() {
            EntryKind::CharDevice
        } else if file_type.is_block_device() {
            EntryKind::BlockDevice
        } else if file_type.is_fifo() {
            EntryKind::Fifo
        } else if let Some(first) = self.hardlink_target(&meta, &name) {
            link = first;
            EntryKind::Hardlink
        } else {
            EntryKind::Regular
        };

        let xattrs = read_xattrs(&full).map_err(read_err)?;
        let rdev = meta.rdev();
        let header = EntryHeader {
            path: &name,
            kind,
            mode: meta.mode(),
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            size: if kind == EntryKind::Regular {
                meta.len()
            } else {
                0
            },
            mtime: self.clamp(mtime_of(&meta)),
            link: &link,
            device: (rustix::fs::major(rdev), rustix::fs::minor(rdev)),
            xattrs: &xattrs,
        };
        if kind != EntryKind::Regular {
            tar.append(&header, io::empty())
                .map_err(WriteError::Output)?;
            return Ok(());
        }
        let file = File::options()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&full)
            .map_err(read_err)?;
        let complete = tar.append(&header, ReadErrorTag(file)).map_err(|e| {
            match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<SourceReadError>())
            {
                Some(_) => read_err(e),
                None => WriteError::Output(e),
            }
        })?;
        if !complete {
            return Err(WriteError::SizeChanged {
                path: full,
                expected: meta.len(),
            });
        }
        Ok(())
    }

    /// Returns the first layer path of this inode when it has more than one
    /// link and an earlier entry already carries its contents.
    fn hardlink_target(&mut self, meta: &Metadata, name: &[u8]) -> Option<Vec<u8>> {
        if meta.nlink() < 2 {
            return None;
        }
        let key = (meta.dev(), meta.ino());
        if let Some(first) = self.first_links.get(&key) {
            return Some(first.clone());
        }
        self.first_links.insert(key, name.to_vec());
        None
    }

    fn clamp(&self, mtime: Timestamp) -> Timestamp {
        match self.mtime_epoch {
            Some(epoch) if mtime.secs >= epoch => Timestamp {
                secs: epoch,
                nanos: 0,
            },
            _ => mtime,
        }
    }
}

fn mtime_of(meta: &Metadata) -> Timestamp {
    Timestamp {
        secs: meta.mtime(),
        nanos: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
    }
}

/// Marks read errors of a source file, so that they are not reported as
/// failures of the output.
#[derive(Debug)]
struct SourceReadError(io::Error);

impl std::fmt::Display for SourceReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

struct ReadErrorTag<R>(R);

impl<R: io::Read> io::Read for ReadErrorTag<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), SourceReadError(e)))
    }
}
