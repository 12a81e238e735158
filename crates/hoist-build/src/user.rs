//! `USER` resolution against the image's own `/etc/passwd` and `/etc/group`,
//! never the builder's.
//!
//! The rules follow Docker. A name must exist in the image. A numeric user
//! that the image does not list runs with group 0 and home `/`. A user found
//! in `/etc/passwd` gets its primary group and home directory, and every
//! group of `/etc/group` that lists it by name becomes a supplementary group.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde::{Deserialize, Serialize};

/// The maximum size read from `/etc/passwd` or `/etc/group`, so that a
/// hostile image cannot make the builder read a huge file into memory.
const MAX_DATABASE_BYTES: u64 = 16 * 1024 * 1024;

/// A failure to resolve a `USER` value.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The user name is not in the image's `/etc/passwd`.
    #[error("user {name:?} not found in the image's /etc/passwd")]
    UnknownUser {
        /// The name as written.
        name: String,
    },
    /// The group name is not in the image's `/etc/group`.
    #[error("group {name:?} not found in the image's /etc/group")]
    UnknownGroup {
        /// The name as written.
        name: String,
    },
    /// `USER` is empty or has an empty part.
    #[error("invalid USER value {value:?}: expected user[:group]")]
    Invalid {
        /// The value as written.
        value: String,
    },
    /// `/etc/passwd` or `/etc/group` exists but cannot be read.
    #[error("failed to read {path} in the image")]
    Read {
        /// The path inside the image.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The ids a RUN step runs with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Group ids for `setgroups`: the primary group, then the supplementary
    /// groups in ascending order.
    pub groups: Vec<u32>,
    /// Home directory from `/etc/passwd`, or `/`.
    pub home: String,
}

impl Identity {
    /// Returns the identity of `root` in an image without `/etc/passwd`.
    pub fn root() -> Self {
        Self {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            home: "/root".to_owned(),
        }
    }
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `user` (`name`, `uid`, `name:group` or `uid:gid`) against the
/// user and group files of the root directory `root`.
pub fn resolve_user(root: &Path, user: &str) -> Result<Identity, UserError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((user_part, group_part)) => (user_part, Some(group_part)),
        None => (user, None),
    };
    if user_part.is_empty() || group_part.is_some_and(str::is_empty) {
        return Err(UserError::Invalid {
            value: user.to_owned(),
        });
    }

    let passwd = parse_passwd(&read_database(root, "etc/passwd")?);
    let groups = parse_group(&read_database(root, "etc/group")?);
    let mut identity = find_user(&passwd, user_part)?;
    if let Some(entry) = passwd.iter().find(|entry| entry.uid == identity.uid) {
        identity.groups = supplementary_groups(&groups, &entry.name);
    }
    if let Some(group_part) = group_part {
        identity.gid = find_group(&groups, group_part)?;
    }
    // The primary group leads the list, as in Buildah 1.28.2, whose RUN
    // steps show it in `id` output next to the supplementary groups.
    identity.groups.retain(|gid| *gid != identity.gid);
    identity.groups.insert(0, identity.gid);
    Ok(identity)
}

fn find_user(passwd: &[PasswdEntry], user: &str) -> Result<Identity, UserError> {
    let numeric = user.parse::<u32>().ok();
    let found = passwd.iter().find(|entry| match numeric {
        Some(uid) => entry.uid == uid,
        None => entry.name == user,
    });
    match (found, numeric) {
        (Some(entry), _) => Ok(Identity {
            uid: entry.uid,
            gid: entry.gid,
            groups: Vec::new(),
            home: entry.home.clone(),
        }),
        (None, Some(uid)) => Ok(Identity {
            uid,
            gid: 0,
            groups: Vec::new(),
            home: "/".to_owned(),
        }),
        (None, None) => Err(UserError::UnknownUser {
            name: user.to_owned(),
        }),
    }
}

fn find_group(groups: &[GroupEntry], group: &str) -> Result<u32, UserError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    groups
        .iter()
        .find(|entry| entry.name == group)
        .map(|entry| entry.gid)
        .ok_or_else(|| UserError::UnknownGroup {
            name: group.to_owned(),
        })
}

fn supplementary_groups(groups: &[GroupEntry], user: &str) -> Vec<u32> {
    let mut gids: Vec<u32> = groups
        .iter()
        .filter(|entry| entry.members.iter().any(|member| member == user))
        .map(|entry| entry.gid)
        .collect();
    gids.sort_unstable();
    gids.dedup();
    gids
}

/// Reads `relative` inside `root`, resolving symlinks as if `root` were `/`.
/// A missing file reads as empty.
fn read_database(root: &Path, relative: &str) -> Result<String, UserError> {
    let read_error = |source| UserError::Read {
        path: Path::new("/").join(relative),
        source,
    };
    let file = match open_in_root(root, Path::new(relative)) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(error) => return Err(read_error(error)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_DATABASE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Opens `relative` for reading inside `root`: `..` and absolute symlinks
/// cannot leave the root, because the kernel resolves them with `root` as
/// `/` (`openat2` with `RESOLVE_IN_ROOT`).
pub(crate) fn open_in_root(root: &Path, relative: &Path) -> io::Result<File> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = rustix::fs::openat2(
        &root_fd,
        relative,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(File::from(fd))
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: fields[0].to_owned(),
                uid: fields[2].parse().ok()?,
                gid: fields[3].parse().ok()?,
                home: fields[5].to_owned(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: fields[0].to_owned(),
                gid: fields[2].parse().ok()?,
                members: fields[3]
                    .split(',')
                    .filter(|member| !member.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          app:x:1000:1000:App:/home/app:/bin/sh\n\
                          broken line\n";
    const GROUP: &str = "root:x:0:\n\
                         app:x:1000:\n\
                         audio:x:29:app,other\n\
                         video:x:44:app\n\
                         staff:x:50:\n";

    fn image_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(root.path().join("etc")).expect("create etc");
        std::fs::write(root.path().join("etc/passwd"), PASSWD).expect("write passwd");
        std::fs::write(root.path().join("etc/group"), GROUP).expect("write group");
        root
    }

    #[test]
    fn name_resolves_with_supplementary_groups() {
        let root = image_root();
        let identity = resolve_user(root.path(), "app").expect("resolve");
        assert_eq!(identity.uid, 1000);
        assert_eq!(identity.gid, 1000);
        assert_eq!(identity.groups, vec![1000, 29, 44]);
        assert_eq!(identity.home, "/home/app");
    }

    #[test]
    fn explicit_group_replaces_primary() {
        let root = image_root();
        let identity = resolve_user(root.path(), "app:staff").expect("resolve");
        assert_eq!(identity.gid, 50);
        assert_eq!(identity.groups, vec![50, 29, 44]);
    }

    #[test]
    fn unknown_numeric_uid_gets_group_zero() {
        let root = image_root();
        let identity = resolve_user(root.path(), "4242").expect("resolve");
        assert_eq!(identity.uid, 4242);
        assert_eq!(identity.gid, 0);
        assert_eq!(identity.groups, vec![0]);
        assert_eq!(identity.home, "/");
    }

    #[test]
    fn numeric_uid_in_passwd_uses_entry() {
        let root = image_root();
        let identity = resolve_user(root.path(), "1000:7").expect("resolve");
        assert_eq!(identity.home, "/home/app");
        assert_eq!(identity.gid, 7);
    }

    #[test]
    fn unknown_name_is_an_error() {
        let root = image_root();
        let error = resolve_user(root.path(), "nobody").expect_err("unknown user");
        assert!(matches!(error, UserError::UnknownUser { ref name } if name == "nobody"));
    }

    #[test]
    fn unknown_group_is_an_error() {
        let root = image_root();
        let error = resolve_user(root.path(), "app:wheel").expect_err("unknown group");
        assert!(matches!(error, UserError::UnknownGroup { ref name } if name == "wheel"));
    }

    #[test]
    fn empty_parts_are_invalid() {
        let root = image_root();
        for value in ["", ":0", "app:"] {
            let error = resolve_user(root.path(), value).expect_err(value);
            assert!(matches!(error, UserError::Invalid { .. }), "{value}");
        }
    }

    #[test]
    fn symlinked_passwd_stays_in_root() {
        let outside = tempfile::tempdir().expect("temporary directory");
        let outside_passwd = outside.path().join("passwd");
        std::fs::write(&outside_passwd, "outsider:x:7:7::/:/bin/sh\n").expect("write passwd");
        let root = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(root.path().join("etc")).expect("create etc");
        let target = format!("../../../../../..{}", outside_passwd.display());
        std::os::unix::fs::symlink(target, root.path().join("etc/passwd")).expect("symlink");
        let error = resolve_user(root.path(), "outsider").expect_err("passwd outside root");
        assert!(matches!(error, UserError::UnknownUser { .. }));
    }

    #[test]
    fn missing_files_allow_numeric_root() {
        let root = tempfile::tempdir().expect("temporary directory");
        let identity = resolve_user(root.path(), "0").expect("resolve");
        assert_eq!((identity.uid, identity.gid), (0, 0));
    }
}
