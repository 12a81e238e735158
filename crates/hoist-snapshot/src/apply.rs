//! Applying a layer: extracting a tar stream into a root directory without
//! ever writing outside it.
//!
//! Every path is opened relative to a descriptor of the root. Parent
//! directories are resolved by `openat2` with `RESOLVE_IN_ROOT`, so the
//! kernel treats the root as `/` for `..` components and absolute symlinks
//! met on the way. The last component is then created, replaced or removed
//! relative to the parent descriptor without following symlinks.

use crate::compression::decompress;
use crate::error::ApplyError;
use crate::tar_encode::Timestamp;
use crate::writer::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Settings of [`apply_layer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Create character and block devices and set owners. Without it, device
    /// entries are skipped and counted, and files belong to the caller.
    pub privileged: bool,
}

impl Default for ApplyOptions {
    /// Privileged when the process runs as root.
    fn default() -> Self {
        Self {
            privileged: rustix::process::geteuid().is_root(),
        }
    }
}

/// A summary of one applied layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Tar entries read.
    pub entries: u64,
    /// Device entries skipped because the apply was not privileged.
    pub skipped_devices: u64,
    /// Extended attributes that the filesystem or the kernel rejected.
    pub skipped_xattrs: u64,
}

/// Extracts the layer in `layer` (gzip, zstd or plain tar, detected from
/// its first bytes) into `root`, applying whiteouts and opaque markers.
///
/// Hostile entries are either rejected or confined to the root:
///
/// - Rejected, with an error that names the entry: an entry path that is
///   absolute or has a `..` component, and a whiteout of `.` or `..`. So is
///   a hardlink whose target has a `..` component, is a directory or is not
///   found inside the root. The apply stops there, and entries before it
///   stay applied.
/// - Confined: symlinks, because images rely on them (`bin -> usr/bin`,
///   absolute targets). A symlink is written as given, and a later entry or
///   hardlink target through it is resolved with the root as `/`, so an
///   entry through a symlink to `/` lands in the root. A hardlink to an
///   absolute path such as `/etc/passwd` links the root's `etc/passwd`.
pub fn apply_layer<R: Read>(
    layer: R,
    root: &Path,
    options: &ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ApplyError::Root {
        path: root.to_path_buf(),
        source: e.into(),
    })?;
    let _span = tracing::debug_span!("apply_layer", root = %root.display()).entered();

    let reader = decompress(layer).map_err(ApplyError::Read)?;
    let mut archive = tar::Archive::new(reader);
    let mut applier = Applier::new(root_fd, *options);
    let mut extensions = Extensions::default();
    // Raw mode hands PAX and GNU long-name headers to this loop, which parses
    // them itself: the tar crate splits PAX records at newlines, which
    // breaks binary xattr values such as `security.capability`.
    let entries = archive.entries().map_err(ApplyError::Read)?.raw(true);
    for entry in entries {
        let mut entry = entry.map_err(ApplyError::Read)?;
        applier.report.entries += 1;
        if extensions.absorb(&mut entry)? {
            continue;
        }
        let parsed = ParsedEntry::read(&entry, &std::mem::take(&mut extensions))?;
        applier.apply(&parsed, &mut entry)?;
    }
    applier.finish_directories()?;

    let report = applier.report;
    if report.skipped_devices > 0 {
        tracing::warn!(
            count = report.skipped_devices,
            "device nodes skipped because the layer was applied without privileges"
        );
    }
    if report.skipped_xattrs > 0 {
        tracing::warn!(
            count = report.skipped_xattrs,
            "extended attributes rejected by the filesystem"
        );
    }
    Ok(report)
}

/// The fields of one tar entry, with PAX records applied.
struct ParsedEntry {
    name: String,
    components: Vec<OsString>,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Timestamp,
    link: Option<Vec<u8>>,
    device: (u32, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The largest PAX or GNU long-name header accepted, far above what real
/// layers use (a few xattrs of at most 64 KiB each).
const MAX_EXTENSION_SIZE: u64 = 16 << 20;

/// One PAX record: key and value.
type PaxRecord = (Vec<u8>, Vec<u8>);

/// PAX records and GNU long names that describe the next entry.
#[derive(Debug, Default)]
struct Extensions {
    records: Vec<(Vec<u8>, Vec<u8>)>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Extensions {
    /// Stores the extension header `entry` describes and returns true, or
    /// returns false for an ordinary entry.
    fn absorb<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<bool, ApplyError> {
        let kind = entry.header().entry_type();
        let extension = kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink();
        if !extension {
            return Ok(false);
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if entry.size() > MAX_EXTENSION_SIZE {
            return Err(rejected(&name, "extension header larger than 16 MiB"));
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(ApplyError::Read)?;
        if kind.is_pax_local_extensions() {
            let records = parse_pax_records(&data).map_err(|reason| rejected(&name, reason))?;
            self.records.extend(records);
        } else if kind.is_gnu_longname() {
            self.long_name = Some(trim_nul(data));
        } else if kind.is_gnu_longlink() {
            self.long_link = Some(trim_nul(data));
        }
        // Global PAX headers (`g`) carry nothing that a layer needs.
        Ok(true)
    }

    fn record(&self, key: &[u8]) -> Option<&[u8]> {
        self.records
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

fn trim_nul(mut data: Vec<u8>) -> Vec<u8> {
    while data.last() == Some(&0) {
        data.pop();
    }
    data
}

/// Parses PAX records `"<length> <key>=<value>\n"`. The length counts the
/// whole record, so values may contain newlines and any other byte.
fn parse_pax_records(mut data: &[u8]) -> Result<Vec<PaxRecord>, &'static str> {
    const INVALID: &str = "invalid PAX record";
    let mut records = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let space = data.iter().position(|&b| b == b' ').ok_or(INVALID)?;
        let length: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or(INVALID)?;
        if length <= space + 1 || length > data.len() || data[length - 1] != b'\n' {
            return Err(INVALID);
        }
        let body = &data[space + 1..length - 1];
        let equals = body.iter().position(|&b| b == b'=').ok_or(INVALID)?;
        records.push((body[..equals].to_vec(), body[equals + 1..].to_vec()));
        data = &data[length..];
    }
    Ok(records)
}

impl ParsedEntry {
    fn read<R: Read>(
        entry: &tar::Entry<'_, R>,
        extensions: &Extensions,
    ) -> Result<Self, ApplyError> {
        let header = entry.header();
        let path = match (extensions.record(b"path"), &extensions.long_name) {
            (Some(path), _) => path.to_vec(),
            (None, Some(long)) => long.clone(),
            (None, None) => header.path_bytes().into_owned(),
        };
        let name = String::from_utf8_lossy(&path).into_owned();
        let components = clean_path(&path).map_err(|reason| rejected(&name, reason))?;
        let malformed = |e: io::Error| ApplyError::Entry {
            entry: name.clone(),
            source: e,
        };
        if let Some(size) = extensions.record(b"size") {
            // Raw mode reads the data by the header's size field, so the two
            // must agree. This writer and GNU tar keep them equal.
            let expected = header.entry_size().map_err(malformed)?.to_string();
            if size != expected.as_bytes() {
                return Err(rejected(&name, "PAX size differs from the header size"));
            }
        }
        let link = match (extensions.record(b"linkpath"), &extensions.long_link) {
            (Some(link), _) => Some(link.to_vec()),
            (None, Some(long)) => Some(long.clone()),
            (None, None) => header.link_name_bytes().map(|l| l.into_owned()),
        };
        let mut parsed = ParsedEntry {
            kind: header.entry_type(),
            mode: header.mode().map_err(malformed)? & 0o7777,
            uid: header.uid().map_err(malformed)?,
            gid: header.gid().map_err(malformed)?,
            mtime: Timestamp {
                secs: i64::try_from(header.mtime().map_err(malformed)?).unwrap_or(i64::MAX),
                nanos: 0,
            },
            link,
            device: (
                header.device_major().ok().flatten().unwrap_or(0),
                header.device_minor().ok().flatten().unwrap_or(0),
            ),
            xattrs: Vec::new(),
            components,
            name,
        };
        parsed.apply_records(&extensions.records)?;
        Ok(parsed)
    }

    fn apply_records(&mut self, records: &[(Vec<u8>, Vec<u8>)]) -> Result<(), ApplyError> {
        for (key, value) in records {
            if let Some(xattr) = key.strip_prefix(b"SCHILY.xattr.") {
                self.xattrs.push((xattr.to_vec(), value.clone()));
                continue;
            }
            let text = std::str::from_utf8(value).unwrap_or("");
            match key.as_slice() {
                b"mtime" => {
                    self.mtime = parse_pax_time(text)
                        .ok_or_else(|| rejected(&self.name, "invalid PAX mtime"))?;
                }
                b"uid" => {
                    self.uid = text
                        .parse()
                        .map_err(|_| rejected(&self.name, "invalid PAX uid"))?;
                }
                b"gid" => {
                    self.gid = text
                        .parse()
                        .map_err(|_| rejected(&self.name, "invalid PAX gid"))?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn rejected(entry: &str, reason: &'static str) -> ApplyError {
    ApplyError::Rejected {
        entry: entry.to_owned(),
        reason,
    }
}

/// Splits a tar path into its components, dropping empty and `.` ones.
fn clean_path(path: &[u8]) -> Result<Vec<OsString>, &'static str> {
    if path.starts_with(b"/") {
        return Err("absolute path");
    }
    let mut components = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("path contains a `..` component"),
            _ => components.push(OsStr::from_bytes(part).to_os_string()),
        }
    }
    Ok(components)
}

/// Parses a PAX time such as `1700000000.5` or `-1.25`.
fn parse_pax_time(text: &str) -> Option<Timestamp> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let whole: i64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = &frac[..frac.len().min(9)];
    let nanos: u32 = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    if !negative {
        return Some(Timestamp { secs: whole, nanos });
    }
    if nanos == 0 {
        return Some(Timestamp {
            secs: -whole,
            nanos: 0,
        });
    }
    Some(Timestamp {
        secs: -whole - 1,
        nanos: 1_000_000_000 - nanos,
    })
}

fn join(components: &[OsString]) -> PathBuf {
    if components.is_empty() {
        return PathBuf::from(".");
    }
    components.iter().collect()
}

/// A directory whose mode and mtime are set after every entry is written,
/// because writing its children would change the mtime and a read-only mode
/// would block them.
struct DeferredDirectory {
    components: Vec<OsString>,
    mode: u32,
    mtime: Timestamp,
}

struct Applier {
    root: OwnedFd,
    options: ApplyOptions,
    /// Paths written by this layer and their parents, which opaque markers
    /// and whiteouts of the same layer leave in place.
    created: HashSet<Vec<OsString>>,
    directories: Vec<DeferredDirectory>,
    report: ApplyReport,
}

impl Applier {
    fn new(root: OwnedFd, options: ApplyOptions) -> Self {
        Self {
            root,
            options,
            created: HashSet::new(),
            directories: Vec::new(),
            report: ApplyReport::default(),
        }
    }

    fn apply(&mut self, entry: &ParsedEntry, data: &mut impl Read) -> Result<(), ApplyError> {
        let Some((name, parent)) = entry.components.split_last() else {
            // The root directory itself: its metadata belongs to the caller.
            return Ok(());
        };
        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE_MARKER.as_bytes() {
            return self.make_opaque(parent).map_err(|e| entry_error(entry, e));
        }
        if let Some(target) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(entry, parent, target);
        }

        let parent_fd = self
            .open_dir_creating(parent)
            .map_err(|e| entry_error(entry, e))?;
        self.write_entry(entry, parent_fd.as_fd(), name, data)?;
        for end in 1..=entry.components.len() {
            self.created.insert(entry.components[..end].to_vec());
        }
        Ok(())
    }

    fn write_entry(
        &mut self,
        entry: &ParsedEntry,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        data: &mut impl Read,
    ) -> Result<(), ApplyError> {
        use tar::EntryType as T;
        let fail = |e: io::Error| entry_error(entry, e);
        match entry.kind {
            T::Regular | T::Continuous => {
                self.write_regular(entry, parent, name, data).map_err(fail)
            }
            T::Directory => self.write_directory(entry, parent, name).map_err(fail),
            T::Symlink => self.write_symlink(entry, parent, name).map_err(fail),
            T::Link => self.write_hardlink(entry, parent, name),
            T::Char | T::Block | T::Fifo => self.write_special(entry, parent, name).map_err(fail),
            _ => Err(rejected(&entry.name, "unsupported entry type")),
        }
    }

    fn write_regular(
        &mut self,
        entry: &ParsedEntry,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        data: &mut impl Read,
    ) -> io::Result<()> {
        remove_unless_directory(parent, name, false)?;
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut file = File::from(fd);
        io::copy(data, &mut file)?;
        self.set_owner(&file, entry)?;
        rustix::fs::fchmod(&file, Mode::from_raw_mode(entry.mode))?;
        self.set_xattrs_fd(&file, entry)?;
        rustix::fs::futimens(&file, &timestamps(entry.mtime))?;
        Ok(())
    }

    fn write_directory(
        &mut self,
        entry: &ParsedEntry,
        parent: BorrowedFd<'_>,
        name: &OsStr,
    ) -> io::Result<()> {
        if !remove_unless_directory(parent, name, true)? {
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))?;
        }
        let dir = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        self.set_owner(&dir, entry)?;
        self.set_xattrs_fd(&dir, entry)?;
        self.directories.push(DeferredDirectory {
            components: entry.components.clone(),
            mode: entry.mode,
            mtime: entry.mtime,
        });
        Ok(())
    }

    fn write_symlink(
        &mut self,
        entry: &ParsedEntry,
        parent: BorrowedFd<'_>,
        name: &OsStr,
    ) -> io::Result<()> {
        let target = entry.link.as_deref().unwrap_or_default();
        remove_unless_directory(parent, name, false)?;
        rustix::fs::symlinkat(OsStr::from_bytes(target), parent, name)?;
        self.finish_special(entry, parent, name, false)
    }

    fn write_hardlink(
        &mut self,
        entry: &ParsedEntry,
        parent: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<(), ApplyError> {
        let link = entry.link.as_deref().unwrap_or_default();
        // Absolute link names, which some builders write, are read relative
        // to the root like every other path.
        let relative = link.strip_prefix(b"/").unwrap_or(link);
        let target = clean_path(relative)
            .map_err(|_| rejected(&entry.name, "hardlink target contains a `..` component"))?;
        let Some((target_name, target_parent)) = target.split_last() else {
            return Err(rejected(
                &entry.name,
                "hardlink target is the root directory",
            ));
        };
        let fail = |e: io::Error| entry_error(entry, e);
        let target_dir = self.open_dir(target_parent).map_err(fail)?;
        let target_stat = rustix::fs::statat(&target_dir, target_name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fail(e.into()))?;
        if FileType::from_raw_mode(target_stat.st_mode) == FileType::Directory {
            return Err(rejected(&entry.name, "hardlink target is a directory"));
        }
        if let Ok(existing) = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            && existing.st_ino == target_stat.st_ino
            && existing.st_dev == target_stat.st_dev
        {
            return Ok(());
        }
        remove_unless_directory(parent, name, false).map_err(fail)?;
        rustix::fs::linkat(&target_dir, target_name, parent, name, AtFlags::empty())
            .map_err(|e| fail(e.into()))
    }

    fn write_special(
        &mut self,
        entry: &ParsedEntry,
        parent: BorrowedFd<'_>,
        name: &OsStr,
    ) -> io::Result<()> {
        let file_type = match entry.kind {
            tar::EntryType::Char => FileType::CharacterDevice,
            tar::EntryType::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        if file_type != FileType::Fifo && !self.options.privileged {
            self.report.skipped_devices += 1;
            tracing::debug!(entry = %entry.name, "device node skipped without privileges");
            return Ok(());
        }
        remove_unless_directory(parent, name, false)?;
        let device = rustix::fs::makedev(entry.device.0, entry.device.1);
        rustix::fs::mknodat(parent, name, file_type, Mode::from_raw_mode(0o600), device)?;
        self.finish_special(entry, parent, name, true)
    }

    /// Sets owner, mode, xattrs and mtime of a node that cannot be opened
    /// for writing: a symlink, device or FIFO.
    fn finish_special(
        &mut self,
        entry: &ParsedEntry,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        set_mode: bool,
    ) -> io::Result<()> {
        if self.options.privileged {
            rustix::fs::chownat(
                parent,
                name,
                uid(entry.uid),
                gid(entry.gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        if set_mode {
            // The node was created just now by this process and is not a
            // symlink, so following the last component is safe here.
            rustix::fs::chmodat(
                parent,
                name,
                Mode::from_raw_mode(entry.mode),
                AtFlags::empty(),
            )?;
        }
        if !entry.xattrs.is_empty() {
            // lsetxattr through the descriptor's /proc entry, which names
            // the parent that is already resolved inside the root.
            let path = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(name);
            for (key, value) in &entry.xattrs {
                let result = rustix::fs::lsetxattr(
                    &path,
                    OsStr::from_bytes(key),
                    value,
                    rustix::fs::XattrFlags::empty(),
                );
                self.count_xattr_result(entry, key, result)?;
            }
        }
        rustix::fs::utimensat(
            parent,
            name,
            &timestamps(entry.mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    fn set_owner(&self, fd: impl AsFd, entry: &ParsedEntry) -> io::Result<()> {
        if self.options.privileged {
            rustix::fs::fchown(fd, uid(entry.uid), gid(entry.gid))?;
        }
        Ok(())
    }

    fn set_xattrs_fd(&mut self, fd: impl AsFd, entry: &ParsedEntry) -> io::Result<()> {
        for (key, value) in &entry.xattrs {
            let result = rustix::fs::fsetxattr(
                fd.as_fd(),
                OsStr::from_bytes(key),
                value,
                rustix::fs::XattrFlags::empty(),
            );
            self.count_xattr_result(entry, key, result)?;
        }
        Ok(())
    }

    /// Counts an xattr that the filesystem does not support or the process
    /// may not set, and passes every other error on.
    fn count_xattr_result(
        &mut self,
        entry: &ParsedEntry,
        key: &[u8],
        result: rustix::io::Result<()>,
    ) -> io::Result<()> {
        match result {
            Ok(()) => Ok(()),
            Err(Errno::PERM | Errno::OPNOTSUPP | Errno::ACCESS) => {
                self.report.skipped_xattrs += 1;
                tracing::debug!(
                    entry = %entry.name,
                    xattr = %String::from_utf8_lossy(key),
                    "extended attribute not set"
                );
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn whiteout(
        &mut self,
        entry: &ParsedEntry,
        parent: &[OsString],
        target: &[u8],
    ) -> Result<(), ApplyError> {
        if target.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // Other `.wh..wh.` names are aufs bookkeeping, not whiteouts.
            return Ok(());
        }
        if matches!(target, b"" | b"." | b"..") {
            return Err(rejected(&entry.name, "whiteout of an invalid name"));
        }
        let target = OsStr::from_bytes(target);
        let mut path = parent.to_vec();
        path.push(target.to_os_string());
        if self.created.contains(&path) {
            return Ok(());
        }
        let dir = match self.open_dir(parent) {
            Ok(dir) => dir,
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(entry_error(entry, e)),
        };
        remove_all_at(dir.as_fd(), target).map_err(|e| entry_error(entry, e))
    }

    fn make_opaque(&mut self, dir: &[OsString]) -> io::Result<()> {
        let fd = match self.open_dir(dir) {
            Ok(fd) => fd,
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        for child in list_names(fd.as_fd())? {
            let mut path = dir.to_vec();
            path.push(child.clone());
            if !self.created.contains(&path) {
                remove_all_at(fd.as_fd(), &child)?;
            }
        }
        for end in 1..=dir.len() {
            self.created.insert(dir[..end].to_vec());
        }
        Ok(())
    }

    /// Opens a directory inside the root, following symlinks only within it.
    fn open_dir(&self, components: &[OsString]) -> io::Result<OwnedFd> {
        open_in_root(self.root.as_fd(), &join(components), OFlags::empty())
    }

    /// Opens a directory inside the root, creating missing ones with mode
    /// 0755 as extractors commonly do for parents without an entry.
    fn open_dir_creating(&self, components: &[OsString]) -> io::Result<OwnedFd> {
        let missing = match self.open_dir(components) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => e,
            result => return result,
        };
        let Some((name, parent)) = components.split_last() else {
            return Err(missing);
        };
        let parent_fd = self.open_dir_creating(parent)?;
        match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        self.open_dir(components)
    }

    /// Sets the mode and mtime of every directory, children first.
    fn finish_directories(&mut self) -> Result<(), ApplyError> {
        while let Some(dir) = self.directories.pop() {
            let path = join(&dir.components);
            let fd = match open_in_root(self.root.as_fd(), &path, OFlags::NOFOLLOW) {
                Ok(fd) => fd,
                // A later entry of the layer replaced or removed it.
                Err(e)
                    if is_missing(&e) || e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) =>
                {
                    continue;
                }
                Err(source) => {
                    return Err(ApplyError::Entry {
                        entry: path.display().to_string(),
                        source,
                    });
                }
            };
            let result = rustix::fs::fchmod(&fd, Mode::from_raw_mode(dir.mode))
                .and_then(|()| rustix::fs::futimens(&fd, &timestamps(dir.mtime)));
            result.map_err(|e| ApplyError::Entry {
                entry: path.display().to_string(),
                source: e.into(),
            })?;
        }
        Ok(())
    }
}

fn entry_error(entry: &ParsedEntry, source: io::Error) -> ApplyError {
    ApplyError::Entry {
        entry: entry.name.clone(),
        source,
    }
}

fn is_missing(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound
        || error.raw_os_error() == Some(Errno::NOTDIR.raw_os_error())
}

fn open_in_root(root: BorrowedFd<'_>, path: &Path, extra: OFlags) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | extra;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    // The kernel returns EAGAIN when a concurrent rename could have let the
    // lookup escape, and openat2(2) documents a retry as the remedy.
    let mut attempts = 0;
    loop {
        match rustix::fs::openat2(root, path, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if attempts < 16 => attempts += 1,
            result => return result.map_err(Into::into),
        }
    }
}

/// Removes whatever is at `name` unless it is a directory and
/// `keep_directory` is set. Returns whether a directory was kept.
fn remove_unless_directory(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    keep_directory: bool,
) -> io::Result<bool> {
    let stat = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if keep_directory && FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        return Ok(true);
    }
    remove_all_at(parent, name)?;
    Ok(false)
}

/// Removes `name` under `parent` and, for a directory, everything in it,
/// without following symlinks.
pub(crate) fn remove_all_at(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let stat = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(Into::into);
    }
    let dir = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in list_names(dir.as_fd())? {
        remove_all_at(dir.as_fd(), &child)?;
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(Into::into)
}

fn list_names(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for item in rustix::fs::Dir::read_from(dir)? {
        let item = item?;
        let name = item.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}

fn timestamps(mtime: Timestamp) -> Timestamps {
    let time = Timespec {
        tv_sec: mtime.secs,
        tv_nsec: i64::from(mtime.nanos),
    };
    Timestamps {
        last_access: time,
        last_modification: time,
    }
}

fn uid(value: u64) -> Option<rustix::fs::Uid> {
    Some(rustix::fs::Uid::from_raw(
        u32::try_from(value).unwrap_or(u32::MAX - 1),
    ))
}

fn gid(value: u64) -> Option<rustix::fs::Gid> {
    Some(rustix::fs::Gid::from_raw(
        u32::try_from(value).unwrap_or(u32::MAX - 1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_drops_dot_components() {
        let parts = clean_path(b"./usr//bin/./env").unwrap();
        assert_eq!(
            parts,
            vec![OsString::from("usr"), "bin".into(), "env".into()]
        );
    }

    #[test]
    fn clean_path_rejects_parent_components() {
        assert!(clean_path(b"usr/../../etc/passwd").is_err());
    }

    #[test]
    fn clean_path_rejects_absolute_paths() {
        assert!(clean_path(b"/etc/passwd").is_err());
    }

    #[test]
    fn pax_records_keep_newlines_in_values() {
        let records = parse_pax_records(b"29 SCHILY.xattr.user.a=x\ny=z\n10 uid=70\n").unwrap();
        assert_eq!(
            records[0],
            (b"SCHILY.xattr.user.a".to_vec(), b"x\ny=z".to_vec())
        );
        assert_eq!(records[1], (b"uid".to_vec(), b"70".to_vec()));
    }

    #[test]
    fn pax_records_reject_wrong_length() {
        assert!(parse_pax_records(b"99 uid=70\n").is_err());
        assert!(parse_pax_records(b"5 uid=70\n").is_err());
    }

    #[test]
    fn pax_time_parses_fractions() {
        assert_eq!(
            parse_pax_time("12.5"),
            Some(Timestamp {
                secs: 12,
                nanos: 500_000_000
            })
        );
        assert_eq!(parse_pax_time("7"), Some(Timestamp { secs: 7, nanos: 0 }));
        assert_eq!(
            parse_pax_time("-1.75"),
            Some(Timestamp {
                secs: -2,
                nanos: 250_000_000
            })
        );
        assert_eq!(
            parse_pax_time("1.0000000019"),
            Some(Timestamp { secs: 1, nanos: 1 })
        );
        assert_eq!(parse_pax_time("x"), None);
    }
}
