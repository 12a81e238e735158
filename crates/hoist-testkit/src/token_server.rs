//! A token server for the registry's `auth: token` mode.
//!
//! It implements the token flow that CNCF distribution 2.8 expects. A client
//! that got `401` with `WWW-Authenticate: Bearer realm=...,service=...`
//! requests a token from the realm, either with `GET` and Basic credentials
//! or with an OAuth2 `POST` (`grant_type=password` or `refresh_token`). Every
//! requested scope is granted, because the point is the handshake, not a
//! policy. Tokens are RS256 JWTs whose header carries the signing certificate
//! in `x5c`, which distribution 2.8 verifies against its `rootcertbundle`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use tiny_http::{Method, Request, Response, Server};

use crate::certs::{SigningFiles, pem_certificate_base64, random_hex};
use crate::error::{Error, Result, io_error};

/// The `iss` claim of every token; the registry config names the same issuer.
pub(crate) const ISSUER: &str = "hoist-testkit-token-issuer";

/// The `service` of the registry and the `aud` claim of every token.
pub(crate) const SERVICE: &str = "hoist-testkit-registry";

/// The leeway distribution 2.8 allows past a token's `exp` claim, for clock
/// skew. Measured with a 1 s token: the registry accepted it for 60.7 s.
pub(crate) const REGISTRY_EXPIRY_LEEWAY: u64 = 60;

/// A running token server on a free loopback port. Dropping it stops it.
pub(crate) struct TokenServer {
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
    state: Arc<State>,
    realm: String,
}

/// The state shared by the request threads.
struct State {
    key: EncodingKey,
    x5c: String,
    credentials: Option<(String, String)>,
    lifetime_seconds: AtomicU64,
    /// Whether `exp` is backdated by [`REGISTRY_EXPIRY_LEEWAY`].
    exact_expiry: bool,
    tokens_issued: AtomicU64,
    /// Refresh tokens handed out so far, each with the user it belongs to.
    refresh_tokens: Mutex<HashMap<String, String>>,
}

/// A grant request after the form or query was decoded.
struct Grant {
    subject: String,
    service: String,
    scopes: Vec<String>,
    wants_refresh_token: bool,
}

impl TokenServer {
    /// Starts a server that signs with `signing` and demands `credentials`
    /// (anonymous tokens for everyone when `None`).
    /// With `exact_expiry`, the `exp` claim is backdated by the registry's
    /// leeway, so that the registry rejects a token once `lifetime` passed.
    pub(crate) fn start(
        signing: &SigningFiles,
        credentials: Option<(String, String)>,
        lifetime: Duration,
        exact_expiry: bool,
    ) -> Result<Self> {
        let mut state = State::load(signing, credentials, lifetime)?;
        state.exact_expiry = exact_expiry;
        let state = Arc::new(state);
        let server = Server::http("127.0.0.1:0").map_err(|error| Error::TokenServer {
            reason: format!("cannot listen on 127.0.0.1: {error}"),
        })?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|address| address.port())
            .ok_or_else(|| Error::TokenServer {
                reason: "listening address is not an IP address".to_owned(),
            })?;
        let server = Arc::new(server);
        let thread = std::thread::Builder::new()
            .name(format!("token-server-{port}"))
            .spawn({
                let server = Arc::clone(&server);
                let state = Arc::clone(&state);
                move || serve(&server, &state)
            })
            .map_err(|error| Error::TokenServer {
                reason: format!("cannot start its thread: {error}"),
            })?;
        let realm = format!("http://127.0.0.1:{port}/token");
        tracing::debug!(%realm, "token server started");
        Ok(Self {
            server,
            thread: Some(thread),
            state,
            realm,
        })
    }

    /// Returns the URL clients fetch tokens from.
    pub(crate) fn realm(&self) -> &str {
        &self.realm
    }

    /// Returns the number of access tokens issued so far.
    pub(crate) fn tokens_issued(&self) -> u64 {
        self.state.tokens_issued.load(Ordering::SeqCst)
    }

    /// Sets the lifetime of the tokens issued from now on.
    pub(crate) fn set_lifetime(&self, lifetime: Duration) {
        self.state
            .lifetime_seconds
            .store(lifetime.as_secs().max(1), Ordering::SeqCst);
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!(realm = %self.realm, "token server thread panicked");
        }
    }
}

impl State {
    fn load(
        signing: &SigningFiles,
        credentials: Option<(String, String)>,
        lifetime: Duration,
    ) -> Result<Self> {
        let key_pem = std::fs::read(&signing.key).map_err(io_error("read", &signing.key))?;
        let key = EncodingKey::from_rsa_pem(&key_pem).map_err(|error| Error::TokenServer {
            reason: format!("invalid RSA key {}: {error}", signing.key.display()),
        })?;
        let cert_pem =
            std::fs::read_to_string(&signing.cert).map_err(io_error("read", &signing.cert))?;
        let x5c = pem_certificate_base64(&cert_pem).ok_or_else(|| Error::TokenServer {
            reason: format!("no certificate in {}", signing.cert.display()),
        })?;
        Ok(Self {
            key,
            x5c,
            credentials,
            lifetime_seconds: AtomicU64::new(lifetime.as_secs().max(1)),
            exact_expiry: false,
            tokens_issued: AtomicU64::new(0),
            refresh_tokens: Mutex::new(HashMap::new()),
        })
    }

    fn lifetime(&self) -> u64 {
        self.lifetime_seconds.load(Ordering::SeqCst)
    }

    /// Checks a user name and password against the configured credentials.
    fn accepts(&self, user: Option<&str>, password: Option<&str>) -> bool {
        match &self.credentials {
            None => true,
            Some((expected_user, expected_password)) => {
                user == Some(expected_user.as_str()) && password == Some(expected_password.as_str())
            }
        }
    }

    fn user_of_refresh_token(&self, token: &str) -> Option<String> {
        let tokens = self
            .refresh_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tokens.get(token).cloned()
    }

    fn new_refresh_token(&self, user: &str) -> Result<String> {
        let token = random_hex()?;
        let mut tokens = self
            .refresh_tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tokens.insert(token.clone(), user.to_owned());
        Ok(token)
    }
}

fn serve(server: &Server, state: &State) {
    for request in server.incoming_requests() {
        let method = request.method().clone();
        let url = request.url().to_owned();
        let reply = handle(request, state);
        if let Err(error) = reply {
            tracing::warn!(%method, %url, %error, "token server failed to reply");
        }
    }
}

/// The JSON body of a successful token response.
#[derive(Serialize)]
struct TokenResponse {
    token: String,
    access_token: String,
    expires_in: u64,
    /// RFC 3339, as distribution and containers/image parse it.
    issued_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

fn handle(mut request: Request, state: &State) -> std::io::Result<()> {
    let (path, query) = split_url(request.url());
    if path != "/token" {
        return request.respond(json_response(404, r#"{"error":"not found"}"#));
    }
    let grant = match *request.method() {
        Method::Get => grant_from_get(&request, query, state),
        Method::Post => {
            let mut body = String::new();
            request.as_reader().read_to_string(&mut body)?;
            grant_from_post(&body, state)
        }
        _ => Err(Rejection::BadRequest("only GET and POST are supported")),
    };
    match grant.and_then(|grant| issue(&grant, state)) {
        Ok(body) => request.respond(json_response(200, &body)),
        Err(Rejection::Unauthorized) => {
            let challenge = tiny_http::Header::from_bytes(
                "WWW-Authenticate",
                r#"Basic realm="hoist-testkit-token""#,
            )
            .map_err(|()| std::io::Error::other("invalid header"))?;
            let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid credentials"}]}"#;
            request.respond(json_response(401, body).with_header(challenge))
        }
        Err(Rejection::BadRequest(reason)) => {
            let body =
                serde_json::json!({ "error": "invalid_request", "error_description": reason });
            request.respond(json_response(400, &body.to_string()))
        }
        Err(Rejection::Internal(reason)) => {
            tracing::warn!(%reason, "token server cannot issue a token");
            request.respond(json_response(500, r#"{"error":"server_error"}"#))
        }
    }
}

/// The reason a token request is not granted.
enum Rejection {
    Unauthorized,
    BadRequest(&'static str),
    Internal(String),
}

/// Reads a Docker token request: credentials in a Basic `Authorization` header.
fn grant_from_get(
    request: &Request,
    query: &str,
    state: &State,
) -> std::result::Result<Grant, Rejection> {
    let parameters = parse_form(query);
    let basic = request
        .headers()
        .iter()
        .find(|header| header.field.equiv("Authorization"))
        .and_then(|header| decode_basic(header.value.as_str()));
    let (user, password) = match &basic {
        Some((user, password)) => (Some(user.as_str()), Some(password.as_str())),
        None => (None, None),
    };
    if !state.accepts(user, password) {
        return Err(Rejection::Unauthorized);
    }
    Ok(Grant {
        subject: user.unwrap_or_default().to_owned(),
        service: first(&parameters, "service"),
        scopes: all(&parameters, "scope"),
        wants_refresh_token: first(&parameters, "offline_token") == "true",
    })
}

/// Reads an OAuth2 request: a form body with `grant_type=password` or
/// `refresh_token`.
fn grant_from_post(body: &str, state: &State) -> std::result::Result<Grant, Rejection> {
    let form = parse_form(body);
    let subject = match first(&form, "grant_type").as_str() {
        "password" => {
            let user = first(&form, "username");
            let password = first(&form, "password");
            if !state.accepts(Some(&user), Some(&password)) {
                return Err(Rejection::Unauthorized);
            }
            user
        }
        "refresh_token" => state
            .user_of_refresh_token(&first(&form, "refresh_token"))
            .ok_or(Rejection::Unauthorized)?,
        _ => {
            return Err(Rejection::BadRequest(
                "grant_type must be password or refresh_token",
            ));
        }
    };
    Ok(Grant {
        subject,
        service: first(&form, "service"),
        scopes: all(&form, "scope"),
        // OAuth2 clients keep using the refresh token they already have, so
        // every POST response contains one.
        wants_refresh_token: true,
    })
}

/// Issues an access token (and a refresh token when requested) and returns
/// the JSON response body.
fn issue(grant: &Grant, state: &State) -> std::result::Result<String, Rejection> {
    let internal = |error: String| Rejection::Internal(error);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|error| internal(error.to_string()))?
        .as_secs();
    let lifetime = state.lifetime();

    let token = sign_token(grant, state, now, lifetime)?;

    let refresh_token = if grant.wants_refresh_token {
        let token = state
            .new_refresh_token(&grant.subject)
            .map_err(|error| internal(error.to_string()))?;
        Some(token)
    } else {
        None
    };

    state.tokens_issued.fetch_add(1, Ordering::SeqCst);
    tracing::debug!(subject = %grant.subject, scopes = ?grant.scopes, "token issued");
    let response = TokenResponse {
        token: token.clone(),
        access_token: token,
        expires_in: lifetime,
        issued_at: crate::dates::rfc3339(now),
        refresh_token,
    };
    serde_json::to_string(&response).map_err(|error| internal(error.to_string()))
}

/// Returns an RS256 JWT for `grant` with the signing certificate in `x5c`.
fn sign_token(
    grant: &Grant,
    state: &State,
    now: u64,
    lifetime: u64,
) -> std::result::Result<String, Rejection> {
    let expires = if state.exact_expiry {
        (now + lifetime).saturating_sub(REGISTRY_EXPIRY_LEEWAY)
    } else {
        now + lifetime
    };
    let access: Vec<_> = grant
        .scopes
        .iter()
        .filter_map(|scope| parse_scope(scope))
        .collect();
    let token_id = random_hex().map_err(|error| Rejection::Internal(error.to_string()))?;
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": grant.subject,
        "aud": grant.service,
        "exp": expires,
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": token_id,
        "access": access,
    });

    let mut header = Header::new(Algorithm::RS256);
    header.x5c = Some(vec![state.x5c.clone()]);
    jsonwebtoken::encode(&header, &claims, &state.key)
        .map_err(|error| Rejection::Internal(error.to_string()))
}

/// Turns `repository:a/b:pull,push` into the `access` claim entry. The name
/// may itself contain colons (`registry:catalog:*`), so the type ends at the
/// first colon and the actions start after the last.
fn parse_scope(scope: &str) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions
        .split(',')
        .filter(|action| !action.is_empty())
        .collect();
    Some(serde_json::json!({ "type": kind, "name": name, "actions": actions }))
}

fn split_url(url: &str) -> (&str, &str) {
    url.split_once('?').unwrap_or((url, ""))
}

/// Decodes `application/x-www-form-urlencoded` text, also used for queries.
fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let escaped = bytes
            .get(index + 1..index + 3)
            .and_then(|hex_digits| std::str::from_utf8(hex_digits).ok())
            .and_then(|hex_digits| u8::from_str_radix(hex_digits, 16).ok());
        match (byte, escaped) {
            (b'%', Some(value)) => {
                decoded.push(value);
                index += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                index += 1;
            }
            _ => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn first(parameters: &[(String, String)], key: &str) -> String {
    parameters
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}

/// Collects every value of `key`. A value may hold several scopes separated
/// by spaces, as the OAuth2 form allows.
fn all(parameters: &[(String, String)], key: &str) -> Vec<String> {
    parameters
        .iter()
        .filter(|(name, _)| name == key)
        .flat_map(|(_, value)| value.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter(|value| !value.is_empty())
        .collect()
}

fn decode_basic(value: &str) -> Option<(String, String)> {
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn json_response(status: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let content_type = tiny_http::Header::from_bytes("Content-Type", "application/json")
        .unwrap_or_else(|()| unreachable!("a constant header is valid"));
    Response::from_string(body)
        .with_status_code(status)
        .with_header(content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_with_colons_in_name() {
        let access = parse_scope("registry:catalog:*").unwrap();
        assert_eq!(access["type"], "registry");
        assert_eq!(access["name"], "catalog");
        assert_eq!(access["actions"], serde_json::json!(["*"]));
    }

    #[test]
    fn scope_with_several_actions() {
        let access = parse_scope("repository:base/busybox:pull,push").unwrap();
        assert_eq!(access["name"], "base/busybox");
        assert_eq!(access["actions"], serde_json::json!(["pull", "push"]));
    }

    #[test]
    fn form_decoding_handles_escapes() {
        let form = parse_form("scope=repository%3Aa%2Fb%3Apull+repository%3Ac%3Apush&x=");
        assert_eq!(
            all(&form, "scope"),
            vec!["repository:a/b:pull", "repository:c:push"]
        );
        assert_eq!(first(&form, "x"), "");
    }

    #[test]
    fn basic_header_decodes() {
        let header = format!("Basic {}", STANDARD.encode("user:pa:ss"));
        assert_eq!(
            decode_basic(&header),
            Some(("user".to_owned(), "pa:ss".to_owned()))
        );
    }
}
