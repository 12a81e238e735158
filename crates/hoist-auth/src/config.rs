//! Reading Docker's `config.json` and podman's `auth.json`, which share one format.

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::credential::{Credential, Secret};
use crate::error::Error;
use crate::registry::find_key;

/// Standard base64 that accepts `auth` values with or without padding, as Docker's
/// `decodeAuth` does in practice (hand-written files often drop the padding).
const AUTH_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A JSON object read as a list of members in file order.
///
/// `auths` keys are matched in file order, and the writer keeps untouched members as they
/// were, so neither may go through a hash map.
#[derive(Debug)]
pub(crate) struct OrderedMap<T>(pub(crate) Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OrderedMap<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(OrderedMapVisitor(PhantomData))
    }
}

struct OrderedMapVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedMapVisitor<T> {
    type Value = OrderedMap<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(OrderedMap(members))
    }
}

impl<T> OrderedMap<T> {
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> + Clone {
        self.0.iter().map(|(key, _)| key.as_str())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&T> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value)
    }
}

/// One `auths` entry. Unknown fields such as `email` are ignored. It has no `Debug`, because
/// its fields contain secrets.
#[derive(Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
    registrytoken: Option<String>,
}

/// The fields of a credential file that the reader uses.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigDocument {
    auths: Option<OrderedMap<AuthEntry>>,
    creds_store: Option<String>,
    cred_helpers: Option<OrderedMap<String>>,
}

/// The source that a credential file names for one registry.
#[derive(Debug)]
pub(crate) enum FileLookup {
    /// `credHelpers` names a helper for the registry.
    Helper { helper: String },
    /// An `auths` entry contains the credential itself.
    Entry { key: String, credential: Credential },
    /// `credsStore` names the default helper.
    Store { helper: String },
}

/// A parsed credential file.
pub(crate) struct ConfigFile {
    path: PathBuf,
    document: ConfigDocument,
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Maximum size of a credential file that hoist reads, 16 MiB. A `config.json` contains a
/// few hundred bytes per registry, and the limit keeps a link to `/dev/zero` from filling memory.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a credential file of at most [`MAX_CONFIG_BYTES`]. Anything but a regular file,
/// such as a device or a FIFO, is an error, and the open does not wait for a FIFO's writer.
pub(crate) fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("file is larger than the limit of {MAX_CONFIG_BYTES} bytes (16 MiB)"),
        ));
    }
    Ok(bytes)
}

impl ConfigFile {
    /// Reads and parses a file, or returns `None` when it does not exist.
    pub(crate) fn read(path: &Path) -> Result<Option<Self>, Error> {
        let bytes = match read_bounded(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(path, &bytes).map(Some)
    }

    /// Parses the bytes of a file; `path` is only used in errors.
    pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Self, Error> {
        let document = if bytes.iter().all(u8::is_ascii_whitespace) {
            ConfigDocument::default()
        } else {
            serde_json::from_slice(bytes).map_err(|err| Error::invalid_json(path, &err))?
        };
        Ok(Self {
            path: path.to_owned(),
            document,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Looks up the source for `registry` in this file: a `credHelpers` entry first, then an
    /// `auths` entry that contains a credential, then `credsStore`.
    ///
    /// Docker consults `credsStore` before `auths`, but when a store is set Docker leaves
    /// only empty placeholders in `auths`. An entry that does hold a credential was written
    /// on purpose (by hoist-login or by hand), so hoist lets it win. The
    /// `docker_credential` crate uses the same order.
    pub(crate) fn lookup(&self, registry: &str) -> Result<Option<FileLookup>, Error> {
        if let Some(lookup) = self.helper_for(registry) {
            return Ok(Some(lookup));
        }
        if let Some(lookup) = self.entry_for(registry)? {
            return Ok(Some(lookup));
        }
        Ok(self.store())
    }

    /// Returns the helper that Docker sends `registry`'s credentials to: the `credHelpers`
    /// entry for it, else `credsStore`, or `None` when the file names neither.
    pub(crate) fn configured_helper(&self, registry: &str) -> Option<FileLookup> {
        self.helper_for(registry).or_else(|| self.store())
    }

    fn store(&self) -> Option<FileLookup> {
        let helper = self.document.creds_store.as_ref()?;
        (!helper.is_empty()).then(|| FileLookup::Store {
            helper: helper.clone(),
        })
    }

    fn helper_for(&self, registry: &str) -> Option<FileLookup> {
        let helpers = self.document.cred_helpers.as_ref()?;
        let key = find_key(helpers.keys(), registry)?;
        let helper = helpers.get(key).filter(|helper| !helper.is_empty())?;
        Some(FileLookup::Helper {
            helper: helper.clone(),
        })
    }

    fn entry_for(&self, registry: &str) -> Result<Option<FileLookup>, Error> {
        let Some(auths) = self.document.auths.as_ref() else {
            return Ok(None);
        };
        let Some(key) = find_key(auths.keys(), registry) else {
            return Ok(None);
        };
        let Some(entry) = auths.get(key) else {
            return Ok(None);
        };
        let credential = self.decode_entry(key, entry)?;
        Ok(credential.map(|credential| FileLookup::Entry {
            key: key.to_owned(),
            credential,
        }))
    }

    /// Turns an entry into a credential, or `None` for an empty placeholder.
    ///
    /// As in Docker, `auth` wins over separate `username` and `password` fields, and a
    /// registry token wins over an identity token, which wins over a password.
    fn decode_entry(&self, key: &str, entry: &AuthEntry) -> Result<Option<Credential>, Error> {
        let basic = match non_empty(&entry.auth) {
            Some(auth) => Some(self.decode_auth(key, auth)?),
            None => non_empty(&entry.username).map(|username| {
                let password = entry.password.clone().unwrap_or_default();
                (username.to_owned(), Secret::new(password))
            }),
        };

        if let Some(token) = non_empty(&entry.registrytoken) {
            return Ok(Some(Credential::RegistryToken(Secret::new(token))));
        }
        if let Some(token) = non_empty(&entry.identitytoken) {
            return Ok(Some(Credential::IdentityToken {
                username: basic.map(|(username, _)| username),
                token: Secret::new(token),
            }));
        }
        Ok(basic.map(|(username, password)| Credential::Basic { username, password }))
    }

    /// Decodes `auth`: base64 of `user:password`, split at the first `:` because the
    /// password may contain more of them.
    fn decode_auth(&self, key: &str, auth: &str) -> Result<(String, Secret), Error> {
        let invalid_text = |reason| Error::InvalidAuthText {
            path: self.path.clone(),
            key: key.to_owned(),
            reason,
        };
        let bytes = AUTH_BASE64
            .decode(auth.trim())
            .map_err(|_| Error::InvalidBase64 {
                path: self.path.clone(),
                key: key.to_owned(),
            })?;
        let text =
            String::from_utf8(bytes).map_err(|_| invalid_text("bytes that are not UTF-8"))?;
        let (username, password) = text
            .split_once(':')
            .ok_or_else(|| invalid_text("text without the `:` between user name and password"))?;
        Ok((username.to_owned(), Secret::new(password)))
    }
}

fn non_empty(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ConfigFile {
        ConfigFile::parse(Path::new("/cfg/config.json"), text.as_bytes()).unwrap()
    }

    fn credential_for(text: &str, registry: &str) -> Option<Credential> {
        match parse(text).lookup(registry).unwrap() {
            Some(FileLookup::Entry { credential, .. }) => Some(credential),
            _ => None,
        }
    }

    #[test]
    fn auth_splits_at_first_colon() {
        // "alice:pa:ss" in base64.
        let text = r#"{"auths": {"myreg.example": {"auth": "YWxpY2U6cGE6c3M="}}}"#;

        let credential = credential_for(text, "myreg.example");

        assert_eq!(credential, Some(Credential::basic("alice", "pa:ss")));
    }

    #[test]
    fn auth_without_padding_decodes() {
        let text = r#"{"auths": {"myreg.example": {"auth": "YWxpY2U6cGE6c3M"}}}"#;

        let credential = credential_for(text, "myreg.example");

        assert_eq!(credential, Some(Credential::basic("alice", "pa:ss")));
    }

    #[test]
    fn username_password_fields_read() {
        let text = r#"{"auths": {"myreg.example": {"username": "bob", "password": "pw"}}}"#;

        let credential = credential_for(text, "myreg.example");

        assert_eq!(credential, Some(Credential::basic("bob", "pw")));
    }

    #[test]
    fn auth_wins_over_username_fields() {
        let text = r#"{"auths": {"r.example": {"auth": "YWxpY2U6cGE6c3M=", "username": "bob"}}}"#;

        let credential = credential_for(text, "r.example");

        assert_eq!(credential, Some(Credential::basic("alice", "pa:ss")));
    }

    #[test]
    fn identity_token_keeps_auth_username() {
        // "00000000-0000-0000-0000-000000000000:" in base64, as `az acr login` writes it.
        let text = r#"{"auths": {"acr.example": {
            "auth": "MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOg==",
            "identitytoken": "refresh"}}}"#;

        let credential = credential_for(text, "acr.example");

        assert_eq!(
            credential,
            Some(Credential::IdentityToken {
                username: Some("00000000-0000-0000-0000-000000000000".into()),
                token: Secret::new("refresh"),
            })
        );
    }

    #[test]
    fn registry_token_wins() {
        let text = r#"{"auths": {"r.example": {"registrytoken": "bearer", "identitytoken": "x"}}}"#;

        let credential = credential_for(text, "r.example");

        assert_eq!(
            credential,
            Some(Credential::RegistryToken(Secret::new("bearer")))
        );
    }

    #[test]
    fn empty_entry_falls_through_to_store() {
        let text = r#"{"auths": {"r.example": {}}, "credsStore": "desktop"}"#;

        let lookup = parse(text).lookup("r.example").unwrap();

        assert!(
            matches!(lookup, Some(FileLookup::Store { ref helper }) if helper == "desktop"),
            "{lookup:?}"
        );
    }

    #[test]
    fn cred_helper_wins_over_entry() {
        let text = r#"{"auths": {"r.example": {"auth": "YWxpY2U6cGE6c3M="}},
            "credHelpers": {"r.example": "ecr-login"}}"#;

        let lookup = parse(text).lookup("https://r.example/").unwrap();

        assert!(
            matches!(lookup, Some(FileLookup::Helper { ref helper, .. }) if helper == "ecr-login"),
            "{lookup:?}"
        );
    }

    #[test]
    fn entry_wins_over_store() {
        let text =
            r#"{"auths": {"r.example": {"auth": "YWxpY2U6cGE6c3M="}}, "credsStore": "pass"}"#;

        let credential = credential_for(text, "r.example");

        assert_eq!(credential, Some(Credential::basic("alice", "pa:ss")));
    }

    #[test]
    fn no_lookup_other_registry() {
        let text = r#"{"auths": {"r.example": {"auth": "YWxpY2U6cGE6c3M="}}}"#;

        assert!(parse(text).lookup("other.example").unwrap().is_none());
    }

    #[test]
    fn empty_file_has_no_answer() {
        assert!(parse("  \n").lookup("r.example").unwrap().is_none());
    }

    #[test]
    fn invalid_base64_names_file_and_key() {
        let text = r#"{"auths": {"r.example": {"auth": "not*base64"}}}"#;

        let err = parse(text).lookup("r.example").unwrap_err();
        let message = err.to_string();

        assert!(matches!(err, Error::InvalidBase64 { .. }), "{err:?}");
        assert!(message.contains("/cfg/config.json"), "{message}");
        assert!(message.contains("r.example"), "{message}");
        assert!(!message.contains("not*base64"), "{message}");
    }

    #[test]
    fn auth_without_colon_rejected() {
        // "alice" in base64.
        let text = r#"{"auths": {"r.example": {"auth": "YWxpY2U="}}}"#;

        let err = parse(text).lookup("r.example").unwrap_err();

        assert!(matches!(err, Error::InvalidAuthText { .. }), "{err:?}");
    }

    #[test]
    fn invalid_json_reports_position_only() {
        let err = ConfigFile::parse(
            Path::new("/cfg/config.json"),
            br#"{"auths": {"r": {"password": 918273}}}"#,
        )
        .unwrap_err();
        let message = err.to_string();

        assert!(message.contains("/cfg/config.json"), "{message}");
        assert!(message.contains("line 1"), "{message}");
        assert!(!message.contains("918273"), "{message}");
    }

    #[test]
    fn truncated_json_rejected() {
        let err = ConfigFile::parse(Path::new("/cfg/config.json"), br#"{"auths": {"#).unwrap_err();

        assert!(matches!(
            err,
            Error::InvalidJson {
                reason: "unexpected end of file",
                ..
            }
        ));
    }
}
