//! The one model of a registry credential, whatever source it came from.

use std::fmt;

/// A secret string (password or token) whose `Debug` and `Display` never show it.
///
/// The value is reachable only through [`Secret::expose`], so that every place that sends it
/// somewhere is easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret value, for the code that sends it to a registry or writes it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns true when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// A credential for one registry, as Docker's config file and credential helpers hand it out.
///
/// `Debug` shows the user name but never the password or token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password for HTTP basic authentication, or for the token server's
    /// basic-authenticated `GET`.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken` in `config.json`, or a helper's response
    /// with the user name `<token>`), exchanged at the registry's token server for an
    /// access token. Azure Container Registry hands these out.
    IdentityToken {
        /// The user name stored beside the token, when the entry has one.
        username: Option<String>,
        /// The refresh token.
        token: Secret,
    },
    /// A bearer token sent to the registry as is (`registrytoken` in `config.json`).
    RegistryToken(Secret),
}

impl Credential {
    /// Builds a basic credential from a user name and password.
    pub fn basic(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// Returns the user name, when the credential has one.
    pub fn username(&self) -> Option<&str> {
        match self {
            Self::Basic { username, .. } => Some(username),
            Self::IdentityToken { username, .. } => username.as_deref(),
            Self::RegistryToken(_) => None,
        }
    }

    /// Returns the secret part: the password or the token.
    pub fn secret(&self) -> &Secret {
        match self {
            Self::Basic { password, .. } => password,
            Self::IdentityToken { token, .. } => token,
            Self::RegistryToken(token) => token,
        }
    }

    /// Names the kind of credential for messages: `password`, `identity token` or
    /// `registry token`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Basic { .. } => "password",
            Self::IdentityToken { .. } => "identity token",
            Self::RegistryToken(_) => "registry token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let secret = Secret::new("hunter2");

        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{secret}"), "<redacted>");
    }

    #[test]
    fn credential_debug_hides_every_secret() {
        let credentials = [
            Credential::basic("alice", "pa:ss\"word"),
            Credential::IdentityToken {
                username: Some("00000000-0000-0000-0000-000000000000".into()),
                token: Secret::new("pa:ss\"word"),
            },
            Credential::RegistryToken(Secret::new("pa:ss\"word")),
        ];

        for credential in credentials {
            let debug = format!("{credential:?}");
            let pretty = format!("{credential:#?}");
            assert!(!debug.contains("pa:ss"), "{debug}");
            assert!(!pretty.contains("pa:ss"), "{pretty}");
        }
    }

    #[test]
    fn credential_debug_keeps_username() {
        let debug = format!("{:?}", Credential::basic("alice", "x"));

        assert!(debug.contains("alice"), "{debug}");
    }
}
