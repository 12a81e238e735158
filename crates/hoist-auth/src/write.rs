//! Editing one registry's entry in a credential file and writing the file atomically.
//!
//! An editor holds an exclusive advisory lock on `<file>.lock` from [`ConfigEditor::open`]
//! until it is dropped, so that concurrent logins to different registries all keep their
//! entries instead of the last rename winning. The lock file is removed when the editor is
//! dropped, whether the write succeeded or not.
//!
//! Every member of the file that the edit does not touch is written back as the exact
//! bytes it had (through `serde_json`'s `RawValue`), so numbers, escapes and nested
//! formatting in `credHelpers`, `proxies` or unknown keys survive unchanged.

use std::fmt;
use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::{ConfigFile, FileLookup, OrderedMap};
use crate::credential::Secret;
use crate::error::Error;
use crate::keychain::Source;
use crate::registry::{config_key, find_key, same_registry, validate_registry};

/// The mode of a written credential file: readable by its owner only.
pub const FILE_MODE: u32 = 0o600;

/// The mode of a config directory that the writer creates.
pub const DIR_MODE: u32 = 0o700;

/// The suffix of the lock file next to the credential file, as in `config.json.lock`. The
/// file exists only while an editor holds the lock.
pub const LOCK_SUFFIX: &str = ".lock";

/// The maximum number of symbolic links followed from the credential file's path, the
/// limit of Linux path resolution.
const MAX_LINK_HOPS: usize = 40;

/// The fields of an `auths` entry that hold a credential; a new login replaces them all.
const CREDENTIAL_FIELDS: [&str; 5] = [
    "auth",
    "username",
    "password",
    "identitytoken",
    "registrytoken",
];

/// A JSON value that is either kept as the bytes read or rebuilt by an edit.
enum Member {
    Raw(Box<RawValue>),
    Object(Vec<(String, Member)>),
    Value(Value),
}

impl Serialize for Member {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Raw(raw) => raw.serialize(serializer),
            Self::Value(value) => value.serialize(serializer),
            Self::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

/// A credential file loaded for editing: Docker's `config.json` or podman's `auth.json`.
///
/// The editor holds an exclusive lock on the file's lock file until it is dropped. Another
/// editor of the same file, in this process or another, waits in [`ConfigEditor::open`]
/// until then, so a thread that opens a second editor while it holds the first deadlocks.
///
/// `Debug` shows the path and the top-level keys only, because the members contain `auth`
/// values.
pub struct ConfigEditor {
    path: PathBuf,
    members: Vec<(String, Member)>,
    /// The file as read, for its `credHelpers` and `credsStore`, which edits leave as they are.
    config: ConfigFile,
    /// The lock, released and its file removed when the editor is dropped.
    _lock: LockFile,
}

impl fmt::Debug for ConfigEditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.members.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("ConfigEditor")
            .field("path", &self.path)
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl ConfigEditor {
    /// Locks `path` and loads it for editing. A missing or empty file is an empty
    /// configuration. A file that is not a JSON object, or that the [`Keychain`] cannot
    /// read, is an error, so that it is never overwritten.
    ///
    /// [`Keychain`]: crate::Keychain
    ///
    /// The lock file is `<file>.lock` (mode 0600) next to the file that a symbolic link at
    /// `path` points to, because that is the file [`ConfigEditor::save`] replaces. A missing
    /// directory is created with the mode 0700 to contain it. Blocks while another editor
    /// of the same file is alive. Dropping the editor removes the lock file.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let lock = LockFile::acquire(&link_target(&path)?)?;
        let bytes = match crate::config::read_bounded(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(Error::Read { path, source }),
        };
        let members = if bytes.iter().all(u8::is_ascii_whitespace) {
            Vec::new()
        } else {
            let object: OrderedMap<Box<RawValue>> =
                serde_json::from_slice(&bytes).map_err(|err| Error::invalid_json(&path, &err))?;
            raw_members(object)
        };
        // The keychain must be able to read what a login writes, so a file whose known
        // members have the wrong shape is rejected here as the keychain rejects it.
        let config = ConfigFile::parse(&path, &bytes)?;
        Ok(Self {
            path,
            members,
            config,
            _lock: lock,
        })
    }

    /// Returns the file this editor writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the credential helper that this file's `credHelpers` entry for `registry`
    /// names ([`Source::Helper`]), else the one its `credsStore` names ([`Source::Store`]),
    /// or `None`.
    ///
    /// Docker reads a registry's credentials from such a helper and ignores its `auths`
    /// entry. hoist does the same for `credHelpers`, but reads an `auths` entry that contains
    /// a credential before `credsStore`.
    pub fn helper_for(&self, registry: &str) -> Option<Source> {
        let path = self.path.clone();
        match self.config.configured_helper(registry)? {
            FileLookup::Helper { helper } => Some(Source::Helper { path, name: helper }),
            FileLookup::Store { helper } => Some(Source::Store { path, name: helper }),
            FileLookup::Entry { .. } => None,
        }
    }

    /// Stores a user name and password for `registry` as Docker does: an `auths` entry under
    /// the registry's host (or `https://index.docker.io/v1/` for Docker Hub) whose `auth` is
    /// the base64 of `user:password`.
    ///
    /// An existing entry for the same registry is updated under its own key: its credential
    /// fields are replaced and its other fields (such as `email`) kept. Returns the key.
    pub fn set_basic_auth(
        &mut self,
        registry: &str,
        username: &str,
        password: &Secret,
    ) -> Result<String, Error> {
        validate_registry(registry)?;
        validate_username(username)?;
        if password.is_empty() {
            return Err(Error::EmptyPassword);
        }
        let auth = STANDARD.encode(format!("{username}:{}", password.expose()));

        let path = self.path.clone();
        let auths = self.auths_mut()?;
        let key = upsert_auth(auths, &path, &config_key(registry), auth)?;
        tracing::debug!(registry, key, path = %self.path.display(), "set auths entry");
        Ok(key)
    }

    /// Removes every `auths` entry for `registry` (logout). Returns the removed keys.
    pub fn remove(&mut self, registry: &str) -> Result<Vec<String>, Error> {
        validate_registry(registry)?;
        if !self.members.iter().any(|(key, _)| key == "auths") {
            return Ok(Vec::new());
        }
        let auths = self.auths_mut()?;
        let mut removed = Vec::new();
        auths.retain(|(key, _)| {
            let matches = same_registry(key, registry);
            if matches {
                removed.push(key.clone());
            }
            !matches
        });
        tracing::debug!(registry, ?removed, "removed auths entries");
        Ok(removed)
    }

    /// Serializes the file as JSON indented with tabs, like the files Docker writes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
        serialize_members(&self.members, &mut serializer).map_err(|err| Error::Write {
            path: self.path.clone(),
            step: "serialize the configuration",
            source: io::Error::other(err),
        })?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Writes the file atomically with the mode 0600, creating its directory with the mode
    /// 0700 when missing. When the path is a symbolic link, the file it points to is
    /// written, even when that file does not exist yet, and the link stays.
    pub fn save(&self) -> Result<(), Error> {
        self.save_with(|from, to| fs::rename(from, to))
    }

    /// Writes the file like [`ConfigEditor::save`], with `rename` as the step that moves the
    /// temporary file over the old one. Tests pass a failing `rename` to show that the old
    /// file survives a crash before that step.
    pub fn save_with(
        &self,
        rename: impl FnOnce(&Path, &Path) -> io::Result<()>,
    ) -> Result<(), Error> {
        let target = link_target(&self.path)?;
        let dir = parent_dir(&target);
        create_private_dir(&target, dir)?;

        let bytes = self.to_bytes()?;
        let temp = write_temp_file(&target, dir, &bytes)?;
        let temp_path = temp.into_temp_path();
        rename(&temp_path, &target).map_err(write_error(&target, "rename the temporary file"))?;
        // The rename consumed the temporary file, so there is nothing left to delete.
        let _ = temp_path.keep();
        sync_dir(&target, dir)?;

        tracing::info!(path = %target.display(), "wrote credential file");
        Ok(())
    }

    /// Returns the `auths` object for editing, turning it from raw bytes into members, and
    /// adding an empty one when the file has none.
    fn auths_mut(&mut self) -> Result<&mut Vec<(String, Member)>, Error> {
        let index = match self.members.iter().position(|(key, _)| key == "auths") {
            Some(index) => index,
            None => {
                self.members
                    .push(("auths".to_owned(), Member::Object(Vec::new())));
                self.members.len() - 1
            }
        };
        let member = &mut self.members[index].1;
        if let Member::Raw(raw) = member {
            let not_object = || Error::NotAnObject {
                path: self.path.clone(),
                field: "auths".to_owned(),
            };
            let parsed = if raw.get() == "null" {
                Vec::new()
            } else {
                let object: OrderedMap<Box<RawValue>> =
                    serde_json::from_str(raw.get()).map_err(|_| not_object())?;
                raw_members(object)
            };
            *member = Member::Object(parsed);
        }
        match member {
            Member::Object(members) => Ok(members),
            _ => Err(Error::NotAnObject {
                path: self.path.clone(),
                field: "auths".to_owned(),
            }),
        }
    }
}

fn raw_members(object: OrderedMap<Box<RawValue>>) -> Vec<(String, Member)> {
    object
        .0
        .into_iter()
        .map(|(key, raw)| (key, Member::Raw(raw)))
        .collect()
}

fn serialize_members<S: Serializer>(
    members: &[(String, Member)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(members.len()))?;
    for (key, value) in members {
        map.serialize_entry(key, value)?;
    }
    map.end()
}

/// Sets `auth` in the entry that matches `key` (keeping that entry's own key and its other
/// fields), or appends a new entry under `key`. Returns the key used.
fn upsert_auth(
    auths: &mut Vec<(String, Member)>,
    path: &Path,
    key: &str,
    auth: String,
) -> Result<String, Error> {
    let existing = find_key(auths.iter().map(|(k, _)| k.as_str()), key).map(str::to_owned);
    let key = existing.unwrap_or_else(|| key.to_owned());
    let slot = auths.iter_mut().find(|(k, _)| *k == key);
    let mut entry = match &slot {
        Some((_, member)) => entry_object(path, &key, member)?,
        None => serde_json::Map::new(),
    };
    replace_credential(&mut entry, auth);

    let member = Member::Value(Value::Object(entry));
    match slot {
        Some((_, old)) => *old = member,
        None => auths.push((key.clone(), member)),
    }
    Ok(key)
}

/// Parses an existing `auths` entry into an object to edit. An entry that is not an object
/// (such as `null`) is replaced whole.
fn entry_object(
    path: &Path,
    key: &str,
    member: &Member,
) -> Result<serde_json::Map<String, Value>, Error> {
    let value = match member {
        Member::Raw(raw) => {
            serde_json::from_str(raw.get()).map_err(|err| Error::invalid_json(path, &err))?
        }
        Member::Value(value) => value.clone(),
        Member::Object(_) => Value::Null,
    };
    tracing::debug!(key, "updating existing auths entry");
    match value {
        Value::Object(object) => Ok(object),
        _ => Ok(serde_json::Map::new()),
    }
}

/// Sets `auth`, keeping its position when the entry had one, and drops the other
/// credential fields so that an old token cannot win over the new password.
fn replace_credential(entry: &mut serde_json::Map<String, Value>, auth: String) {
    entry.insert("auth".to_owned(), Value::String(auth));
    for field in CREDENTIAL_FIELDS.iter().filter(|field| **field != "auth") {
        entry.shift_remove(*field);
    }
}

fn validate_username(username: &str) -> Result<(), Error> {
    if username.is_empty() {
        return Err(Error::InvalidUsername {
            reason: "it is empty",
        });
    }
    if username.contains(':') {
        return Err(Error::InvalidUsername {
            reason: "it contains `:`, which separates user name and password in `auth`",
        });
    }
    // A newline or other control character is most often a variable read with its
    // trailing newline, and no registry accepts it.
    if username.chars().any(char::is_control) {
        return Err(Error::InvalidUsername {
            reason: "it contains a control character, such as a trailing newline",
        });
    }
    Ok(())
}

fn write_error(path: &Path, step: &'static str) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Write { path, step, source }
}

/// Follows symbolic links from `path` to the file they point to, which need not exist, so
/// that a config file linked from a mounted secret directory stays a link and a dangling
/// link gets its target created. Docker's CLI writes through links the same way
/// (`ConfigFile.Save` in docker/cli's `cli/config/configfile/file.go`).
fn link_target(path: &Path) -> Result<PathBuf, Error> {
    let mut current = path.to_owned();
    for _ in 0..MAX_LINK_HOPS {
        let is_link = fs::symlink_metadata(&current).is_ok_and(|meta| meta.is_symlink());
        if !is_link {
            return Ok(current);
        }
        let target =
            fs::read_link(&current).map_err(write_error(path, "read the symbolic link"))?;
        // A relative target is relative to the link's directory. An absolute one replaces it.
        current = parent_dir(&current).join(target);
    }
    Err(Error::Write {
        path: path.to_owned(),
        step: "follow the symbolic links",
        source: io::Error::from_raw_os_error(libc::ELOOP),
    })
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Creates the directory (and missing parents) with the mode 0700. An existing directory
/// keeps its mode, because it may be a shared one such as the job's working directory.
fn create_private_dir(target: &Path, dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(write_error(target, "create the directory"))
}

fn write_temp_file(
    target: &Path,
    dir: &Path,
    bytes: &[u8],
) -> Result<tempfile::NamedTempFile, Error> {
    let mut temp = tempfile::Builder::new()
        .prefix(".hoist-auth-")
        .suffix(".tmp")
        .permissions(Permissions::from_mode(FILE_MODE))
        .tempfile_in(dir)
        .map_err(write_error(target, "create a temporary file"))?;
    // Set the mode exactly, because the process umask may have narrowed it further.
    temp.as_file()
        .set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(write_error(target, "set the mode of the temporary file"))?;
    temp.write_all(bytes)
        .map_err(write_error(target, "write the temporary file"))?;
    temp.as_file()
        .sync_all()
        .map_err(write_error(target, "sync the temporary file"))?;
    Ok(temp)
}

/// An exclusive lock on `<target>.lock`. Dropping it removes the file and then releases
/// the lock.
struct LockFile {
    path: PathBuf,
    /// The open lock file. Closing it releases the lock.
    _file: File,
}

impl LockFile {
    /// Creates or opens `<target>.lock` and takes an exclusive lock on it, waiting for the
    /// holder to release it.
    ///
    /// The holder removes the file before it releases the lock, so a waiter may get the
    /// lock on a file that is no longer linked. It then starts over on the file now at the
    /// path, so that only one editor at a time has the lock on the file at the path.
    fn acquire(target: &Path) -> Result<Self, Error> {
        let dir = parent_dir(target);
        create_private_dir(target, dir)?;
        let mut name = target.file_name().unwrap_or_default().to_owned();
        name.push(LOCK_SUFFIX);
        let path = dir.join(name);
        loop {
            let file = open_lock_file(target, &path)?;
            tracing::debug!(path = %path.display(), "waiting for the credential file lock");
            fs4::FileExt::lock(&file).map_err(write_error(target, "lock the lock file"))?;
            if is_linked_at(target, &file, &path)? {
                return Ok(Self { path, _file: file });
            }
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if let Err(error) = fs::remove_file(&self.path) {
            tracing::debug!(path = %self.path.display(), %error, "failed to remove the lock file");
        }
    }
}

/// Creates or opens the lock file with the mode 0600. NOFOLLOW keeps a symbolic link
/// planted at the lock file's name from creating a file elsewhere.
fn open_lock_file(target: &Path, path: &Path) -> Result<File, Error> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(write_error(target, "open the lock file"))
}

/// Tells whether `file` is still the file at `path`, which it is not once its holder
/// removed it.
fn is_linked_at(target: &Path, file: &File, path: &Path) -> Result<bool, Error> {
    let open = file
        .metadata()
        .map_err(write_error(target, "inspect the lock file"))?;
    match fs::symlink_metadata(path) {
        Ok(linked) => Ok(open.dev() == linked.dev() && open.ino() == linked.ino()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(write_error(target, "inspect the lock file")(error)),
    }
}

/// Syncs the directory so that the rename itself survives a crash.
fn sync_dir(target: &Path, dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(write_error(target, "sync the directory"))
}
