//! `RUN --mount=type=...,key=value,...` values.

use serde::Serialize;

use super::InstructionErrorKind;

/// The kind of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A directory from the build context or another stage.
    Bind,
    /// A cache directory kept between builds.
    Cache,
    /// An empty in-memory filesystem.
    Tmpfs,
    /// A secret file.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

/// The sharing mode of a cache mount between concurrent builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Every writer uses the same directory.
    Shared,
    /// Each writer gets its own copy.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// One `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// Mount type; `bind` when not given.
    #[serde(rename = "type")]
    pub mount_type: MountType,
    /// Path inside the container.
    pub target: Option<String>,
    /// Path in the source (context, stage or cache).
    pub source: Option<String>,
    /// Stage or image the source comes from.
    pub from: Option<String>,
    /// Whether the mount is read-only.
    pub readonly: bool,
    /// Cache, secret or SSH id.
    pub id: Option<String>,
    /// Cache sharing mode.
    pub sharing: Option<Sharing>,
    /// File mode, parsed from octal.
    pub mode: Option<u32>,
    /// Owner user id.
    pub uid: Option<u32>,
    /// Owner group id.
    pub gid: Option<u32>,
    /// Whether a missing secret or SSH socket is an error.
    pub required: bool,
    /// Size limit of a tmpfs mount, as written.
    pub size: Option<String>,
    /// Environment variable that receives a secret.
    pub env: Option<String>,
}

fn invalid(value: &str, reason: String) -> InstructionErrorKind {
    InstructionErrorKind::InvalidMount {
        value: value.into(),
        reason: reason.into(),
    }
}

/// Parses the value of one `--mount` flag: comma-separated fields, each
/// `key=value` or a bare boolean key; a field may be double-quoted.
pub(super) fn parse_mount(value: &str) -> Result<Mount, InstructionErrorKind> {
    let mut mount = Mount {
        mount_type: MountType::Bind,
        target: None,
        source: None,
        from: None,
        readonly: false,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    };
    let mut readonly_given = None;
    let mut seen = Vec::new();
    for field in split_fields(value).map_err(|reason| invalid(value, reason))? {
        let (key, field_value) = match field.split_once('=') {
            Some((key, field_value)) => (key.to_ascii_lowercase(), Some(field_value.to_owned())),
            None => (field.to_ascii_lowercase(), None),
        };
        // BuildKit lets the last of two equal keys win; hoist rejects them
        // because one of the two values is silently lost.
        let canonical = canonical_key(&key).to_owned();
        if seen.contains(&canonical) {
            return Err(invalid(value, format!("duplicate key {key:?}")));
        }
        seen.push(canonical);
        apply_field(&mut mount, &mut readonly_given, &key, field_value)
            .map_err(|reason| invalid(value, reason))?;
    }
    finish(&mut mount, readonly_given).map_err(|reason| invalid(value, reason))?;
    Ok(mount)
}

/// Returns the name that `key` shares with its aliases, so that `target`
/// and `dst` count as the same key.
fn canonical_key(key: &str) -> &str {
    match key {
        "dst" | "destination" => "target",
        "src" => "source",
        "ro" | "readwrite" | "rw" => "readonly",
        _ => key,
    }
}

fn split_fields(value: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if field.is_empty() => quoted = true,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            _ => field.push(ch),
        }
    }
    if quoted {
        return Err("unterminated quote".to_owned());
    }
    fields.push(field);
    Ok(fields)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!(
            "invalid value {value:?} for {key}: expected true or false"
        )),
    }
}

fn parse_id(key: &str, value: &str) -> Result<u32, String> {
    value
        .parse()
        .map_err(|_| format!("invalid value {value:?} for {key}: expected a non-negative integer"))
}

fn apply_field(
    mount: &mut Mount,
    readonly_given: &mut Option<bool>,
    key: &str,
    value: Option<String>,
) -> Result<(), String> {
    let Some(value) = value else {
        match key {
            "readonly" | "ro" => *readonly_given = Some(true),
            "readwrite" | "rw" => *readonly_given = Some(false),
            "required" => mount.required = true,
            _ => return Err(format!("unexpected key {key:?} without a value")),
        }
        return Ok(());
    };
    match key {
        "type" => {
            mount.mount_type = match value.to_ascii_lowercase().as_str() {
                "bind" => MountType::Bind,
                "cache" => MountType::Cache,
                "tmpfs" => MountType::Tmpfs,
                "secret" => MountType::Secret,
                "ssh" => MountType::Ssh,
                _ => return Err(format!("unsupported mount type {value:?}")),
            }
        }
        "target" | "dst" | "destination" => mount.target = Some(value),
        "source" | "src" => mount.source = Some(value),
        "from" => mount.from = Some(value),
        "readonly" | "ro" => *readonly_given = Some(parse_bool(key, &value)?),
        "readwrite" | "rw" => *readonly_given = Some(!parse_bool(key, &value)?),
        "required" => mount.required = parse_bool(key, &value)?,
        "id" => mount.id = Some(value),
        "sharing" => {
            mount.sharing = Some(match value.to_ascii_lowercase().as_str() {
                "shared" => Sharing::Shared,
                "private" => Sharing::Private,
                "locked" => Sharing::Locked,
                _ => return Err(format!("unsupported sharing value {value:?}")),
            });
        }
        "mode" => {
            let mode = u32::from_str_radix(&value, 8)
                .ok()
                .filter(|mode| *mode <= 0o7777)
                .ok_or_else(|| format!("invalid mode {value:?}: expected an octal number"))?;
            mount.mode = Some(mode);
        }
        "uid" => mount.uid = Some(parse_id(key, &value)?),
        "gid" => mount.gid = Some(parse_id(key, &value)?),
        "size" => mount.size = Some(value),
        "env" => mount.env = Some(value),
        _ => return Err(format!("unexpected key {key:?}")),
    }
    Ok(())
}

/// Applies per-type defaults and checks what each type requires.
fn finish(mount: &mut Mount, readonly_given: Option<bool>) -> Result<(), String> {
    let kind = mount.mount_type;
    // Bind mounts are read-only unless asked otherwise; the others writable.
    mount.readonly = readonly_given.unwrap_or(kind == MountType::Bind);
    if matches!(kind, MountType::Bind | MountType::Cache | MountType::Tmpfs)
        && mount.target.is_none()
    {
        return Err("a target is required".to_owned());
    }
    if mount.sharing.is_some() && kind != MountType::Cache {
        return Err("sharing is only allowed for cache mounts".to_owned());
    }
    if mount.size.is_some() && kind != MountType::Tmpfs {
        return Err("size is only allowed for tmpfs mounts".to_owned());
    }
    if mount.env.is_some() && kind != MountType::Secret {
        return Err("env is only allowed for secret mounts".to_owned());
    }
    if kind == MountType::Secret && mount.id.is_none() && mount.target.is_none() {
        return Err("a secret mount needs an id or a target".to_owned());
    }
    if kind == MountType::Secret && mount.id.is_none() {
        mount.id = mount
            .target
            .as_deref()
            .and_then(|target| target.rsplit('/').next())
            .map(str::to_owned);
    }
    if kind == MountType::Secret && mount.target.is_none() && mount.env.is_none() {
        mount.target = mount.id.as_ref().map(|id| format!("/run/secrets/{id}"));
    }
    if kind == MountType::Ssh && mount.id.is_none() {
        mount.id = Some("default".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_mount_fields_parse() {
        let mount = parse_mount("type=cache,target=/root/.cache,sharing=locked,id=pip").unwrap();
        assert_eq!(mount.mount_type, MountType::Cache);
        assert_eq!(mount.target.as_deref(), Some("/root/.cache"));
        assert_eq!(mount.sharing, Some(Sharing::Locked));
        assert!(!mount.readonly);
    }

    #[test]
    fn bind_mount_is_readonly_by_default() {
        let mount = parse_mount("target=/src,from=build,rw").unwrap();
        assert_eq!(mount.mount_type, MountType::Bind);
        assert_eq!(mount.from.as_deref(), Some("build"));
        assert!(!mount.readonly);
        assert!(parse_mount("target=/src").unwrap().readonly);
    }

    #[test]
    fn secret_mount_gets_default_target() {
        let mount = parse_mount("type=secret,id=token,required").unwrap();
        assert_eq!(mount.target.as_deref(), Some("/run/secrets/token"));
        assert!(mount.required);
    }

    #[test]
    fn invalid_mounts_are_rejected() {
        for value in [
            "type=nfs,target=/x",
            "type=cache",
            "target=/x,color=red",
            "type=bind,target=/x,sharing=locked",
            "type=cache,target=/x,mode=9",
            "type=secret",
            "\"target=/x",
            "type=cache,target=/a,target=/b",
            "type=cache,target=/a,dst=/b",
            "target=/a,ro,rw",
            "type=tmpfs,type=cache,target=/a",
        ] {
            assert!(parse_mount(value).is_err(), "{value}");
        }
    }
}
