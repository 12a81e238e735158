//! A small synchronous HTTP client for checks against a test registry.
//!
//! It follows the registry's challenge. After `WWW-Authenticate: Basic` it
//! repeats the request with Basic credentials. After `Bearer` it fetches a
//! token from the realm, sending Basic credentials when it has any, and
//! repeats the request with that token.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

use crate::error::{Error, Result, io_error};

/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of a Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of a Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The four manifest media types, for an `Accept` header. Without an
/// `Accept` header distribution 2.8 returns 404 for OCI manifests and
/// rewrites Docker manifests into signed schema 1.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// A response with its whole body read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The header fields, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Returns the first value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Returns the SHA-256 digest of the body as `sha256:<hex>`.
    pub fn body_digest(&self) -> String {
        crate::sha256_digest(&self.body)
    }
}

/// An HTTP client bound to one registry's base URL, CA and credentials.
#[derive(Clone)]
pub struct RegistryClient {
    agent: ureq::Agent,
    base_url: String,
    credentials: Option<(String, String)>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RegistryClient")
            .field("base_url", &self.base_url)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl RegistryClient {
    /// Creates a client for `base_url` (such as `https://127.0.0.1:5000`) that
    /// trusts the PEM CA certificate at `ca_cert`, when given, in place of the
    /// usual roots.
    pub fn new(
        base_url: &str,
        ca_cert: Option<&Path>,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self> {
        let tls = AgentTls {
            ca_cert,
            client_cert: None,
        };
        Self::with_tls(base_url, tls, credentials)
    }

    /// Creates a client for `base_url` with the CA and client certificate of `tls`.
    pub(crate) fn with_tls(
        base_url: &str,
        tls: AgentTls<'_>,
        credentials: Option<(&str, &str)>,
    ) -> Result<Self> {
        Ok(Self {
            agent: agent(tls, REQUEST_TIMEOUT)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials: credentials.map(|(user, pass)| (user.to_owned(), pass.to_owned())),
        })
    }

    /// Returns a copy that sends `credentials` in place of the registry's.
    pub fn with_credentials(&self, credentials: Option<(&str, &str)>) -> Self {
        Self {
            credentials: credentials.map(|(user, pass)| (user.to_owned(), pass.to_owned())),
            ..self.clone()
        }
    }

    /// The underlying agent, for requests this client has no method for. It
    /// trusts the registry's CA and returns 4xx and 5xx responses as `Ok`.
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// Sends `GET base_url + path` and follows the registry's auth challenge.
    ///
    /// When the token server rejects the token request, its response (such
    /// as 401) is returned in place of the registry's.
    pub fn get(&self, path: &str, accept: &[&str]) -> Result<HttpResponse> {
        let url = format!("{}{path}", self.base_url);
        let first = self.send(&url, accept, None)?;
        if first.status != 401 {
            return Ok(first);
        }
        let Some(challenge) = first.header("www-authenticate").map(str::to_owned) else {
            return Ok(first);
        };
        let authorization = match challenge_scheme(&challenge) {
            Scheme::Basic => match self.basic_authorization() {
                Some(basic) => basic,
                None => return Ok(first),
            },
            Scheme::Bearer(parameters) => match self.fetch_token(&url, &parameters)? {
                Ok(token) => format!("Bearer {token}"),
                Err(rejection) => return Ok(rejection),
            },
            Scheme::Other => return Ok(first),
        };
        self.send(&url, accept, Some(&authorization))
    }

    /// Fetches a manifest by tag or digest, accepting all four manifest types.
    pub fn get_manifest(&self, repository: &str, reference: &str) -> Result<HttpResponse> {
        self.get(
            &format!("/v2/{repository}/manifests/{reference}"),
            &MANIFEST_MEDIA_TYPES,
        )
    }

    fn basic_authorization(&self) -> Option<String> {
        let (user, pass) = self.credentials.as_ref()?;
        Some(format!(
            "Basic {}",
            STANDARD.encode(format!("{user}:{pass}"))
        ))
    }

    /// Asks the realm of a Bearer challenge for a token. Returns the token,
    /// or the realm's response when it is not 200.
    fn fetch_token(
        &self,
        url: &str,
        parameters: &[(String, String)],
    ) -> Result<std::result::Result<String, HttpResponse>> {
        let value_of = |key: &str| {
            parameters
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.as_str())
        };
        let realm = value_of("realm").ok_or_else(|| Error::UnexpectedResponse {
            url: url.to_owned(),
            reason: "Bearer challenge without realm".to_owned(),
        })?;
        let mut request = self.agent.get(realm);
        if let Some(service) = value_of("service") {
            request = request.query("service", service);
        }
        if let Some(scope) = value_of("scope") {
            request = request.query("scope", scope);
        }
        if let Some(basic) = self.basic_authorization() {
            request = request.header("Authorization", basic);
        }
        let response = read_response(realm, request.call())?;
        if response.status != 200 {
            return Ok(Err(response));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&response.body).map_err(|source| Error::Json {
                what: format!("token response from {realm}"),
                source,
            })?;
        let token = json["token"]
            .as_str()
            .or_else(|| json["access_token"].as_str())
            .ok_or_else(|| Error::UnexpectedResponse {
                url: realm.to_owned(),
                reason: "token response has neither token nor access_token".to_owned(),
            })?;
        Ok(Ok(token.to_owned()))
    }

    fn send(
        &self,
        url: &str,
        accept: &[&str],
        authorization: Option<&str>,
    ) -> Result<HttpResponse> {
        let mut request = self.agent.get(url);
        if !accept.is_empty() {
            request = request.header("Accept", accept.join(", "));
        }
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        read_response(url, request.call())
    }
}

/// The maximum time of one request of a [`RegistryClient`], body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The TLS files of an agent.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AgentTls<'a> {
    /// PEM CA certificate trusted in place of the usual roots.
    pub(crate) ca_cert: Option<&'a Path>,
    /// PEM client certificate and PEM private key presented to the server.
    pub(crate) client_cert: Option<(&'a Path, &'a Path)>,
}

/// Builds an agent with the CA and client certificate of `tls` (when given), which gives
/// up on a request after `timeout` and returns error statuses as responses.
pub(crate) fn agent(tls: AgentTls<'_>, timeout: Duration) -> Result<ureq::Agent> {
    let mut config = TlsConfig::builder();
    if let Some(path) = tls.ca_cert {
        let certificate = read_certificate(path, "CA certificate")?;
        config = config.root_certs(RootCerts::Specific(Arc::new(vec![certificate])));
    }
    if let Some((cert, key)) = tls.client_cert {
        let certificate = read_certificate(cert, "client certificate")?;
        let pem = std::fs::read(key).map_err(io_error("read", key))?;
        let key = PrivateKey::from_pem(&pem).map_err(|error| {
            Error::InvalidSetup(format!("invalid client key {}: {error}", key.display()))
        })?;
        config = config.client_cert(Some(ClientCert::new_with_certs(&[certificate], key)));
    }
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .tls_config(config.build())
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

/// Reads the first certificate of a PEM file. `what` names the file in the error.
fn read_certificate(path: &Path, what: &str) -> Result<Certificate<'static>> {
    let pem = std::fs::read(path).map_err(io_error("read", path))?;
    Certificate::from_pem(&pem)
        .map_err(|error| Error::InvalidSetup(format!("invalid {what} {}: {error}", path.display())))
}

/// Reads a whole response, or turns a transport failure into [`Error::Http`].
pub(crate) fn read_response(
    url: &str,
    response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<HttpResponse> {
    let http_error = |source| Error::Http {
        method: "GET",
        url: url.to_owned(),
        source: Box::new(source),
    };
    let mut response = response.map_err(http_error)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .map_err(http_error)?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// The scheme of a `WWW-Authenticate` challenge with its parameters.
#[derive(Debug, PartialEq)]
enum Scheme {
    Basic,
    Bearer(Vec<(String, String)>),
    Other,
}

fn challenge_scheme(challenge: &str) -> Scheme {
    let (scheme, rest) = challenge.trim().split_once(' ').unwrap_or((challenge, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        Scheme::Basic
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer(challenge_parameters(rest))
    } else {
        Scheme::Other
    }
}

/// Parses `key="value",key=value` pairs; quoted values may contain commas,
/// as scopes with several actions do.
fn challenge_parameters(text: &str) -> Vec<(String, String)> {
    let mut parameters = Vec::new();
    let mut rest = text.trim();
    while let Some((key, after_key)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, after_value) = if let Some(quoted) = after_key.strip_prefix('"') {
            quoted.split_once('"').unwrap_or((quoted, ""))
        } else {
            after_key.split_once(',').unwrap_or((after_key, ""))
        };
        parameters.push((key, value.to_owned()));
        rest = after_value.trim_start_matches(',').trim();
    }
    parameters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_keeps_commas_in_scope() {
        let scheme = challenge_scheme(
            r#"Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:a/b:pull,push""#,
        );
        let expected = vec![
            ("realm".to_owned(), "http://127.0.0.1:1/token".to_owned()),
            ("service".to_owned(), "svc".to_owned()),
            ("scope".to_owned(), "repository:a/b:pull,push".to_owned()),
        ];
        assert_eq!(scheme, Scheme::Bearer(expected));
    }

    #[test]
    fn basic_challenge_is_recognised() {
        assert_eq!(challenge_scheme(r#"Basic realm="x""#), Scheme::Basic);
    }

    #[test]
    fn unquoted_parameters_parse() {
        let parameters = challenge_parameters("realm=r, service=s");
        assert_eq!(parameters[0], ("realm".to_owned(), "r".to_owned()));
        assert_eq!(parameters[1], ("service".to_owned(), "s".to_owned()));
    }
}
