//! Registry authentication: the `WWW-Authenticate` challenge, Basic credentials, and
//! Bearer tokens from the registry's token server, including the OAuth2 refresh-token
//! exchange for `identitytoken` credentials.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hoist_auth::Credential;
use serde::Deserialize;

use crate::api::read_body_prefix;
use crate::error::{Error, Result};

/// The client id sent with refresh-token exchanges, which token servers log.
const OAUTH_CLIENT_ID: &str = "hoist";

/// Maximum size of a token server response that is read, in bytes.
const MAX_TOKEN_RESPONSE: usize = 1024 * 1024;

/// An authentication challenge from a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// HTTP Basic: send the user name and password with every request.
    Basic,
    /// Bearer: fetch a token for a scope from `realm`.
    Bearer {
        /// The token server URL.
        realm: String,
        /// The `service` parameter to pass on, when given.
        service: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value. Returns `None` for other schemes.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let parameters = parse_parameters(rest);
    let realm = parameters.get("realm")?.clone();
    Some(Challenge::Bearer {
        realm,
        service: parameters.get("service").cloned(),
    })
}

/// Parses `key="value", key=value` pairs. Quoted values may contain commas, as scopes
/// such as `repository:a:pull,push` do.
fn parse_parameters(text: &str) -> HashMap<String, String> {
    let mut parameters = HashMap::new();
    let mut rest = text.trim();
    while let Some((key, after_key)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after_key = after_key.trim_start();
        let (value, remainder) = match after_key.strip_prefix('"') {
            Some(quoted) => split_quoted(quoted),
            None => {
                let end = after_key.find(',').unwrap_or(after_key.len());
                (after_key[..end].trim().to_owned(), &after_key[end..])
            }
        };
        parameters.insert(key, value);
        rest = remainder.trim_start().trim_start_matches(',');
    }
    parameters
}

/// Splits a quoted string (after its opening quote) into its unescaped value and the text
/// after the closing quote.
fn split_quoted(text: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((position, character)) = chars.next() {
        match character {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            '"' => return (value, &text[position + 1..]),
            other => value.push(other),
        }
    }
    (value, "")
}

/// Returns the token scope for `actions` (`pull` or `pull,push`) on `repository`.
pub(crate) fn repository_scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

/// The credential a request carries: a Bearer token or a Basic user and password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Authorization {
    /// A token from the token server or a fixed registry token.
    Bearer(String),
    /// HTTP Basic credentials.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
}

impl Authorization {
    /// Returns the `Authorization` header value.
    pub(crate) fn header(&self) -> String {
        match self {
            Self::Bearer(token) => format!("Bearer {token}"),
            Self::Basic { username, password } => {
                format!(
                    "Basic {}",
                    STANDARD.encode(format!("{username}:{password}"))
                )
            }
        }
    }
}

impl std::fmt::Debug for Authorization {
    /// Names the kind and the user, never a token or password.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer(_) => formatter.write_str("Bearer(<redacted>)"),
            Self::Basic { username, .. } => formatter
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
        }
    }
}

/// The state of one registry's authentication, shared by concurrent requests.
pub(crate) struct Authenticator {
    registry: String,
    credential: Option<Credential>,
    challenge: Mutex<Option<Challenge>>,
    /// Bearer tokens by their space-joined scopes.
    tokens: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Authenticator {
    /// Shows the registry and the credential kind, never a token or password.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Authenticator")
            .field("registry", &self.registry)
            .field("credential", &self.credential)
            .field("tokens", &lock(&self.tokens).len())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl Authenticator {
    pub(crate) fn new(registry: &str, credential: Option<Credential>) -> Self {
        Self {
            registry: registry.to_owned(),
            credential,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the `Authorization` header value for a request needing `scopes`, from what
    /// earlier challenges taught, or `None` to send the request without one.
    pub(crate) fn header(&self, scopes: &[String]) -> Option<String> {
        self.authorization(scopes)
            .map(|authorization| authorization.header())
    }

    /// Returns the credential a request needing `scopes` carries, from what earlier
    /// challenges taught, or `None` to send the request without one.
    pub(crate) fn authorization(&self, scopes: &[String]) -> Option<Authorization> {
        if let Some(Credential::RegistryToken(token)) = &self.credential {
            return Some(Authorization::Bearer(token.expose().to_owned()));
        }
        let challenge = lock(&self.challenge).clone()?;
        match challenge {
            Challenge::Basic => self.basic_authorization(),
            Challenge::Bearer { .. } => lock(&self.tokens)
                .get(&scopes.join(" "))
                .cloned()
                .map(Authorization::Bearer),
        }
    }

    fn basic_authorization(&self) -> Option<Authorization> {
        match &self.credential {
            Some(Credential::Basic { username, password }) => Some(Authorization::Basic {
                username: username.clone(),
                password: password.expose().to_owned(),
            }),
            _ => None,
        }
    }

    /// Tells whether a challenge from this registry is known, so that requests can be
    /// authorized before they are sent.
    /// Tells whether there are credentials for the registry.
    pub(crate) fn has_credential(&self) -> bool {
        self.credential.is_some()
    }

    pub(crate) fn knows_challenge(&self) -> bool {
        lock(&self.challenge).is_some()
    }

    /// Tells whether the registry wants a Bearer token for `scopes` that this
    /// authenticator has not fetched yet.
    pub(crate) fn lacks_token(&self, scopes: &[String]) -> bool {
        let bearer = matches!(*lock(&self.challenge), Some(Challenge::Bearer { .. }));
        let fixed = matches!(self.credential, Some(Credential::RegistryToken(_)));
        bearer && !fixed && !lock(&self.tokens).contains_key(&scopes.join(" "))
    }

    /// Fetches a fresh token for `scopes` from the token server of the known Bearer
    /// challenge. Returns false when there is no such challenge, so nothing new to try.
    pub(crate) async fn renew(&self, http: &reqwest::Client, scopes: &[String]) -> Result<bool> {
        let Some(Challenge::Bearer { realm, service }) = lock(&self.challenge).clone() else {
            return Ok(false);
        };
        let token = self
            .fetch_token(http, &realm, service.as_deref(), scopes)
            .await?;
        lock(&self.tokens).insert(scopes.join(" "), token);
        Ok(true)
    }

    /// Handles a 401: records the challenge and, for Bearer, fetches a new token for
    /// `scopes`. Returns false when there is nothing new to try, so the 401 is final.
    pub(crate) async fn handle_challenge(
        &self,
        http: &reqwest::Client,
        header: Option<&str>,
        scopes: &[String],
    ) -> Result<bool> {
        let Some(challenge) = header.and_then(parse_challenge) else {
            return Ok(false);
        };
        *lock(&self.challenge) = Some(challenge.clone());
        match challenge {
            Challenge::Basic => Ok(self.basic_authorization().is_some()),
            Challenge::Bearer { .. } => self.renew(http, scopes).await,
        }
    }

    /// Fetches a token: a `POST` with the refresh token for identity tokens, else a `GET`
    /// with Basic credentials when there are any, else an anonymous `GET`.
    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String> {
        let request = match &self.credential {
            Some(Credential::IdentityToken { token, .. }) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("client_id", OAUTH_CLIENT_ID);
                form.append_pair("refresh_token", token.expose());
                if let Some(service) = service {
                    form.append_pair("service", service);
                }
                for scope in scopes {
                    form.append_pair("scope", scope);
                }
                http.post(realm)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form.finish())
            }
            credential => {
                let mut url = self.realm_url(realm)?;
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in scopes {
                        query.append_pair("scope", scope);
                    }
                }
                let request = http.get(url);
                match credential {
                    Some(Credential::Basic { username, password }) => {
                        request.basic_auth(username, Some(password.expose()))
                    }
                    _ => request,
                }
            }
        };
        tracing::debug!(registry = %self.registry, %realm, scope = %scopes.join(" "), "fetching a registry token");
        let response = request
            .send()
            .await
            .map_err(|error| self.token_error(realm, &error))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(Error::Unauthorized {
                registry: self.registry.clone(),
                scope: scopes.join(" "),
                status,
                sent_credentials: self.has_credential(),
            });
        }
        if !(200..300).contains(&status) {
            return Err(self.invalid_token(realm, format!("HTTP {status}")));
        }
        let body = read_body_prefix(response, MAX_TOKEN_RESPONSE + 1)
            .await
            .map_err(|error| self.token_error(realm, &error))?;
        if body.len() > MAX_TOKEN_RESPONSE {
            return Err(self.invalid_token(realm, "response larger than 1 MiB".to_owned()));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|error| self.invalid_token(realm, format!("invalid JSON: {error}")))?;
        parsed
            .token
            .or(parsed.access_token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| self.invalid_token(realm, "no token in the response".to_owned()))
    }

    fn realm_url(&self, realm: &str) -> Result<url::Url> {
        url::Url::parse(realm)
            .map_err(|error| self.invalid_token(realm, format!("invalid realm URL: {error}")))
    }

    fn token_error(&self, realm: &str, error: &reqwest::Error) -> Error {
        // reqwest's message names the URL, which carries no secret: credentials travel in
        // headers or in the POST body.
        self.invalid_token(realm, format!("request failed: {error}"))
    }

    fn invalid_token(&self, realm: &str, reason: String) -> Error {
        Error::Token {
            registry: self.registry.clone(),
            realm: realm.to_owned(),
            reason,
        }
    }
}

/// Locks a mutex, recovering the data when another thread panicked while holding it,
/// because the maps stay consistent after every single insert.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_keeps_quoted_commas() {
        let header = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#;
        assert_eq!(
            parse_challenge(header),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".to_owned(),
                service: Some("registry.example".to_owned()),
            })
        );
        let parameters = parse_parameters(header.trim_start_matches("Bearer "));
        assert_eq!(parameters["scope"], "repository:a/b:pull,push");
    }

    #[test]
    fn basic_challenge_is_recognised() {
        assert_eq!(
            parse_challenge(r#"Basic realm="hoist-testkit""#),
            Some(Challenge::Basic)
        );
    }

    #[test]
    fn bearer_without_realm_is_ignored() {
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
    }

    #[test]
    fn unknown_scheme_is_ignored() {
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn unquoted_parameters_parse() {
        let parameters = parse_parameters("realm=https://a.example/t, service=reg");
        assert_eq!(parameters["realm"], "https://a.example/t");
        assert_eq!(parameters["service"], "reg");
    }

    #[test]
    fn basic_header_encodes_credentials() {
        let auth = Authenticator::new("r.example", Some(Credential::basic("user", "pass")));
        *lock(&auth.challenge) = Some(Challenge::Basic);
        assert_eq!(auth.header(&[]).as_deref(), Some("Basic dXNlcjpwYXNz"));
    }

    #[test]
    fn authorization_debug_hides_secrets() {
        let bearer = Authorization::Bearer("token-secret".to_owned());
        let basic = Authorization::Basic {
            username: "user".to_owned(),
            password: "hunter2".to_owned(),
        };
        let debug = format!("{bearer:?} {basic:?}");
        assert!(!debug.contains("token-secret"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("user"), "{debug}");
    }

    #[test]
    fn authenticator_debug_hides_password() {
        let auth = Authenticator::new("r.example", Some(Credential::basic("user", "hunter2")));
        let debug = format!("{auth:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
