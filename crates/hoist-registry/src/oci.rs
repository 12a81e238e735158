//! The requests hoist hands to `oci-client`: blob checks (`HEAD`), blob downloads,
//! cross-repository mounts and manifest uploads. Each runs inside hoist's retry loop and
//! carries the token of hoist's own token flow, so `oci-client` never requests a token.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use bytes::Bytes;
use futures::stream::BoxStream;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciEnvelope, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::{RegistryToken, RegistryTokenType};
use oci_client::{Reference, RegistryOperation};
use reqwest::Method;
use reqwest::header::HeaderValue;

use crate::api::{ApiRequest, RegistryApi, truncate_body};
use crate::auth::Authorization;
use crate::error::{Error, Result};
use crate::reference::api_host;
use crate::retry::{is_transient_error, is_transient_status};
use crate::transport::{CONNECT_TIMEOUT, READ_TIMEOUT, TransportOptions};

/// The `User-Agent` of the requests `oci-client` sends for hoist.
const USER_AGENT: &str = concat!("hoist/", env!("CARGO_PKG_VERSION"));

/// The time a token must stay valid, by its `exp` claim and this machine's clock, to be
/// handed to `oci-client`. A token closer to its expiry is renewed first.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

/// A downloaded blob's bytes as they arrive.
pub(crate) type BlobStream = BoxStream<'static, std::io::Result<Bytes>>;

/// The `oci-client` of one registry.
pub(crate) struct OciTransport {
    client: oci_client::Client,
    /// The host the client sends requests to, such as `registry-1.docker.io`.
    host: String,
    /// Whether `GET /v2/` was sent to learn the registry's challenge, locked while it is.
    pinged: tokio::sync::Mutex<bool>,
    /// Cleared when `oci-client` would drop this registry's tokens, so that hoist's own
    /// requests serve it from then on.
    usable: AtomicBool,
}

impl std::fmt::Debug for OciTransport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OciTransport")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl OciTransport {
    /// Builds the client of `registry`, reached with `scheme`. Returns `None` when the
    /// registry wants a client certificate, which `oci-client` has no option for: hoist's
    /// own requests serve such a registry.
    pub(crate) fn build(
        options: &TransportOptions,
        registry: &str,
        scheme: &str,
    ) -> Result<Option<Self>> {
        if options.client_certificates.contains_key(registry) {
            tracing::debug!(
                registry,
                "client certificate configured, requests stay on hoist's HTTP client"
            );
            return Ok(None);
        }
        let invalid = |reason: String| Error::Transport {
            registry: registry.to_owned(),
            reason,
        };
        let config = ClientConfig {
            protocol: if scheme == "http" {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: options.skip_tls_verify
                || options.skip_tls_verify_registries.contains(registry),
            extra_root_certificates: extra_roots(options, registry).map_err(invalid)?,
            read_timeout: Some(options.read_timeout.unwrap_or(READ_TIMEOUT)),
            connect_timeout: Some(CONNECT_TIMEOUT),
            user_agent: USER_AGENT,
            ..ClientConfig::default()
        };
        let client = oci_client::Client::try_from(config)
            .map_err(|error| invalid(format!("building the oci-client: {error}")))?;
        Ok(Some(Self {
            client,
            host: api_host(registry).to_owned(),
            pinged: tokio::sync::Mutex::new(false),
            usable: AtomicBool::new(true),
        }))
    }

    /// Returns the reference `oci-client` builds URLs from: this registry, `repository`,
    /// and the tag or digest `tag` (blob requests ignore it).
    pub(crate) fn reference(&self, repository: &str, tag: &str) -> Reference {
        if tag.starts_with("sha256:") {
            Reference::with_digest(self.host.clone(), repository.to_owned(), tag.to_owned())
        } else {
            Reference::with_tag(self.host.clone(), repository.to_owned(), tag.to_owned())
        }
    }

    /// Puts hoist's credential for `reference` in the client's token cache, where its
    /// requests for `operation` read it. The auth store entry (anonymous) only makes the
    /// client look into that cache.
    async fn hand_over(
        &self,
        reference: &Reference,
        operation: RegistryOperation,
        authorization: Authorization,
    ) {
        self.client
            .store_auth_if_needed(reference.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        let token = match authorization {
            Authorization::Bearer(token) => {
                RegistryTokenType::Bearer(RegistryToken::Token { token })
            }
            Authorization::Basic { username, password } => {
                RegistryTokenType::Basic(username, password)
            }
        };
        self.client.tokens.insert(reference, operation, token).await;
    }
}

/// Reads the extra CA file of `registry`, one certificate per PEM block.
fn extra_roots(
    options: &TransportOptions,
    registry: &str,
) -> std::result::Result<Vec<Certificate>, String> {
    let Some(path) = options.registry_certificates.get(registry) else {
        return Ok(Vec::new());
    };
    let bytes = crate::transport::read_pem_file(path, "CA")?;
    let text = String::from_utf8_lossy(&bytes);
    let blocks = pem_certificates(&text);
    if blocks.is_empty() {
        return Err(format!("CA {} contains no PEM certificate", path.display()));
    }
    Ok(blocks
        .into_iter()
        .map(|block| Certificate {
            encoding: CertificateEncoding::Pem,
            data: block.into_bytes(),
        })
        .collect())
}

/// Splits a PEM bundle into its certificate blocks, because `oci-client` reads one
/// certificate per entry.
fn pem_certificates(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let Some(end) = block.find(END) else {
            break;
        };
        blocks.push(block[..end + END.len()].to_owned());
        rest = &block[end + END.len()..];
    }
    blocks
}

/// One request handed to `oci-client`, described for tokens, retries and messages.
pub(crate) struct OciRequest<'a> {
    method: &'static str,
    /// The path, from `/v2/` on, for messages.
    path: String,
    reference: Reference,
    operation: RegistryOperation,
    scopes: &'a [String],
    /// Whether transient failures are retried here rather than by the caller.
    retry: bool,
}

impl RegistryApi {
    /// Returns the `oci-client` to send a request needing `scopes` with, after making
    /// sure hoist has a credential for them. Returns `None` when hoist's own requests
    /// must serve the registry: it wants a client certificate, or `oci-client` would drop
    /// its tokens.
    ///
    /// `oci-client`'s token cache drops a JWT whose `exp` claim lies in the past by this
    /// machine's clock (with clock skew, that can be every token) or cannot be read, and
    /// then runs its own anonymous token flow. Such a registry stays on hoist's requests.
    pub(crate) async fn oci_for(&self, scopes: &[String]) -> Result<Option<&OciTransport>> {
        let Some(oci) = &self.oci else {
            return Ok(None);
        };
        if !oci.usable.load(Ordering::Acquire) {
            return Ok(None);
        }
        self.prepare_credential(oci, scopes).await?;
        if self.oci_accepts(scopes) {
            return Ok(Some(oci));
        }
        self.auth.renew(&self.http, scopes).await?;
        if self.oci_accepts(scopes) {
            return Ok(Some(oci));
        }
        if oci.usable.swap(false, Ordering::AcqRel) {
            tracing::warn!(registry = %self.registry, "the registry's tokens expire too soon by this machine's clock for oci-client; using hoist's own requests");
        }
        Ok(None)
    }

    /// Learns the registry's challenge with one `GET /v2/` if no request did yet, and
    /// fetches a token for `scopes` when the registry wants one.
    async fn prepare_credential(&self, oci: &OciTransport, scopes: &[String]) -> Result<()> {
        if !self.auth.knows_challenge() {
            let mut pinged = oci.pinged.lock().await;
            if !*pinged && !self.auth.knows_challenge() {
                self.ping(scopes).await?;
                *pinged = true;
            }
        }
        if self.auth.lacks_token(scopes) {
            self.auth.renew(&self.http, scopes).await?;
        }
        Ok(())
    }

    /// Tells whether `oci-client`'s token cache keeps hoist's credential for `scopes`.
    fn oci_accepts(&self, scopes: &[String]) -> bool {
        match self.auth.authorization(scopes) {
            Some(Authorization::Bearer(token)) => token_outlives(&token, SystemTime::now()),
            _ => true,
        }
    }

    /// Runs `call` with hoist's credential handed over, renewing the token once on a 401
    /// and retrying transient failures with backoff.
    async fn run_oci<'c, T, F, Fut>(
        &'c self,
        oci: &'c OciTransport,
        request: &OciRequest<'_>,
        call: F,
    ) -> Result<T>
    where
        F: Fn(&'c oci_client::Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, OciDistributionError>>,
    {
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            attempt += 1;
            if let Some(authorization) = self.auth.authorization(request.scopes) {
                oci.hand_over(&request.reference, request.operation, authorization)
                    .await;
            }
            let error = match call(&oci.client).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if status_of(&error) == Some(401) && !renewed {
                renewed = true;
                if self.renew_token(request.scopes).await? {
                    continue;
                }
            }
            if request.retry && is_transient(&error) && self.retry.allows_another(attempt) {
                let url = self.url(&request.path);
                let reason = truncate_body(&error.to_string());
                self.wait_before_retry(request.method, &url, attempt, None, &reason)
                    .await;
                continue;
            }
            return Err(self.oci_error(request, error));
        }
    }

    /// Sends `GET /v2/` to learn the challenge of a registry that requires credentials.
    /// [`RegistryApi::send`] then fetches a token for `scopes` on the 401.
    async fn ping(&self, scopes: &[String]) -> Result<()> {
        let request = ApiRequest::new(Method::GET, self.url("/v2/"), scopes.to_vec());
        let response = self.send(&request).await?;
        tracing::debug!(registry = %self.registry, status = response.status().as_u16(), "requested the registry's challenge");
        Ok(())
    }

    /// Fetches a fresh token after a 401. Returns false when there is nothing new to try.
    async fn renew_token(&self, scopes: &[String]) -> Result<bool> {
        if self.auth.knows_challenge() {
            return self.auth.renew(&self.http, scopes).await;
        }
        self.ping(scopes).await?;
        Ok(self.auth.knows_challenge())
    }

    /// Turns an `oci-client` error into hoist's, naming the registry, request and status.
    fn oci_error(&self, request: &OciRequest<'_>, error: OciDistributionError) -> Error {
        let registry = self.registry.clone();
        let method = request.method.to_owned();
        let url = self.url(&request.path);
        match status_of(&error) {
            Some(status @ (401 | 403)) => Error::Unauthorized {
                registry,
                scope: request.scopes.join(" "),
                status,
                sent_credentials: self.auth.has_credential(),
            },
            Some(status) if self.is_plain_http_to_tls(status, &body_of(&error)) => {
                Error::PlainHttpToTls {
                    registry,
                    method,
                    url,
                }
            }
            Some(status) => Error::Status {
                registry,
                method,
                url,
                status,
                body: body_of(&error),
            },
            None => match error {
                OciDistributionError::RequestError(source) => Error::Request {
                    registry,
                    method,
                    url,
                    source: source.without_url(),
                },
                other => Error::Protocol {
                    registry,
                    method,
                    url,
                    reason: truncate_body(&other.to_string()),
                },
            },
        }
    }

    /// Tells whether the blob `digest` is in `repository`, with `HEAD`.
    pub(crate) async fn oci_blob_exists(
        &self,
        oci: &OciTransport,
        repository: &str,
        digest: &str,
        scopes: &[String],
    ) -> Result<bool> {
        let request = OciRequest {
            method: "HEAD",
            path: format!("/v2/{repository}/blobs/{digest}"),
            reference: oci.reference(repository, "latest"),
            operation: RegistryOperation::Pull,
            scopes,
            retry: true,
        };
        self.run_oci(oci, &request, |client| {
            client.blob_exists(&request.reference, digest)
        })
        .await
    }

    /// Starts the download of the blob `digest` of `repository`. With `retry` off,
    /// transient failures are left to the caller, which retries the whole download.
    pub(crate) async fn oci_open_blob(
        &self,
        oci: &OciTransport,
        repository: &str,
        digest: &str,
        scopes: &[String],
        retry: bool,
    ) -> Result<BlobStream> {
        let request = OciRequest {
            method: "GET",
            path: format!("/v2/{repository}/blobs/{digest}"),
            reference: oci.reference(repository, "latest"),
            operation: RegistryOperation::Pull,
            scopes,
            retry,
        };
        let sized = self
            .run_oci(oci, &request, |client| {
                client.pull_blob_stream(&request.reference, digest)
            })
            .await?;
        Ok(sized.stream)
    }

    /// Asks the registry to mount the blob `digest` into `repository` from `from`.
    /// Returns false when it declined: `oci-client` reports the spec's 202 as a spec
    /// violation and drops the upload session the registry opened, which then expires.
    pub(crate) async fn oci_mount(
        &self,
        oci: &OciTransport,
        repository: &str,
        from: &str,
        digest: &str,
        scopes: &[String],
    ) -> Result<bool> {
        let source = oci.reference(from, "latest");
        let request = OciRequest {
            method: "POST",
            path: format!("/v2/{repository}/blobs/uploads/?mount={digest}&from={from}"),
            reference: oci.reference(repository, "latest"),
            operation: RegistryOperation::Push,
            scopes,
            retry: true,
        };
        self.run_oci(oci, &request, |client| {
            let (reference, source) = (&request.reference, &source);
            async move {
                match client.mount_blob(reference, source, digest).await {
                    Ok(()) | Err(OciDistributionError::RegistryNoLocationError) => Ok(true),
                    Err(OciDistributionError::SpecViolationError(_)) => Ok(false),
                    Err(error) => Err(error),
                }
            }
        })
        .await
    }

    /// Puts a manifest under `tag` (a tag or digest) of `repository` and returns the
    /// `Location` header of the registry's response.
    pub(crate) async fn oci_put_manifest(
        &self,
        oci: &OciTransport,
        repository: &str,
        tag: &str,
        manifest: &Bytes,
        media_type: &str,
        scopes: &[String],
    ) -> Result<String> {
        let request = OciRequest {
            method: "PUT",
            path: format!("/v2/{repository}/manifests/{tag}"),
            reference: oci.reference(repository, tag),
            operation: RegistryOperation::Push,
            scopes,
            retry: true,
        };
        let content_type = HeaderValue::from_str(media_type).map_err(|error| Error::Protocol {
            registry: self.registry.clone(),
            method: request.method.to_owned(),
            url: self.url(&request.path),
            reason: format!("invalid media type {media_type:?}: {error}"),
        })?;
        self.run_oci(oci, &request, |client| {
            client.push_manifest_raw(&request.reference, manifest.clone(), content_type.clone())
        })
        .await
    }

    /// Turns an error of a blob stream into hoist's, for the download from `url`.
    pub(crate) fn stream_error(&self, url: &str, error: std::io::Error) -> Error {
        let reason = error.to_string();
        match error
            .into_inner()
            .map(|inner| inner.downcast::<reqwest::Error>())
        {
            Some(Ok(source)) => Error::Request {
                registry: self.registry.clone(),
                method: "GET".to_owned(),
                url: url.to_owned(),
                source: source.without_url(),
            },
            _ => Error::Protocol {
                registry: self.registry.clone(),
                method: "GET".to_owned(),
                url: url.to_owned(),
                reason,
            },
        }
    }
}

/// Tells whether a Bearer token stays valid for [`TOKEN_MARGIN`] after `now` by its
/// `exp` claim, read the way `oci-client`'s token cache reads it. A token that is not a
/// JWT, or has no `exp`, counts as valid. A JWT whose payload cannot be read does not.
fn token_outlives(token: &str, now: SystemTime) -> bool {
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<u64>,
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return true;
    };
    let claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| serde_json::from_slice::<Claims>(&json).ok());
    let Some(claims) = claims else {
        return false;
    };
    let deadline = now
        .checked_add(TOKEN_MARGIN)
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(u64::MAX, |since| since.as_secs());
    claims.exp.is_none_or(|exp| exp >= deadline)
}

/// Tells whether a blob stream failed because `oci-client` found the wrong digest at its
/// end, so that hoist's own check names the digests.
pub(crate) fn is_digest_failure(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<DigestError>())
}

/// Returns the HTTP status of the response behind an `oci-client` error, when known.
fn status_of(error: &OciDistributionError) -> Option<u16> {
    match error {
        OciDistributionError::RequestError(source) => source.status().map(|status| status.as_u16()),
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::UnauthorizedError { .. } => Some(401),
        OciDistributionError::RegistryError { envelope, .. } => Some(envelope_status(envelope)),
        _ => None,
    }
}

/// Recovers the status of a 4xx response with an error envelope, which `oci-client`
/// drops, from the first error code and the status the distribution spec gives it.
fn envelope_status(envelope: &OciEnvelope) -> u16 {
    match envelope.errors.first().map(|error| &error.code) {
        Some(OciErrorCode::Unauthorized) => 401,
        Some(OciErrorCode::Denied) => 403,
        Some(OciErrorCode::Toomanyrequests) => 429,
        Some(
            OciErrorCode::BlobUnknown
            | OciErrorCode::BlobUploadUnknown
            | OciErrorCode::ManifestUnknown
            | OciErrorCode::NameUnknown
            | OciErrorCode::NotFound,
        ) => 404,
        Some(OciErrorCode::Unsupported) => 405,
        _ => 400,
    }
}

/// Returns the start of the registry's response body carried by an error.
fn body_of(error: &OciDistributionError) -> String {
    match error {
        OciDistributionError::ServerError { message, .. } => truncate_body(message),
        OciDistributionError::RegistryError { envelope, .. } => {
            truncate_body(&envelope.to_string())
        }
        _ => String::new(),
    }
}

/// Tells whether repeating the request may help: 5xx, 429, and connection failures.
fn is_transient(error: &OciDistributionError) -> bool {
    match status_of(error) {
        Some(status) => is_transient_status(status),
        None => match error {
            OciDistributionError::RequestError(source) => is_transient_error(source),
            OciDistributionError::IoError(_) => true,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(code: &str) -> OciEnvelope {
        serde_json::from_str(&format!(r#"{{"errors":[{{"code":"{code}"}}]}}"#))
            .expect("valid envelope")
    }

    fn jwt(payload: &str) -> String {
        format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn token_validity_follows_exp_claim() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(token_outlives(&jwt(r#"{"exp":1000060}"#), now));
        assert!(!token_outlives(&jwt(r#"{"exp":1000005}"#), now));
        assert!(!token_outlives(&jwt(r#"{"exp":999000}"#), now));
        assert!(token_outlives(&jwt(r#"{"sub":"x"}"#), now));
        assert!(token_outlives("opaque-token", now));
        assert!(!token_outlives("a.%%%.c", now));
    }

    #[test]
    fn bundle_splits_into_certificates() {
        let bundle = "junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\
                      -----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let blocks = pem_certificates(bundle);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[0].contains("AAA"));
        assert!(!blocks[0].contains("BBB"));
        assert!(blocks[1].starts_with("-----BEGIN"));
        assert!(blocks[1].ends_with("-----"));
    }

    #[test]
    fn envelope_codes_recover_status() {
        assert_eq!(envelope_status(&envelope("UNAUTHORIZED")), 401);
        assert_eq!(envelope_status(&envelope("DENIED")), 403);
        assert_eq!(envelope_status(&envelope("TOOMANYREQUESTS")), 429);
        assert_eq!(envelope_status(&envelope("BLOB_UNKNOWN")), 404);
        assert_eq!(envelope_status(&envelope("SIZE_INVALID")), 400);
    }

    #[test]
    fn server_errors_are_classified() {
        let server = |code: u16| OciDistributionError::ServerError {
            code,
            url: "http://r.example/v2/".to_owned(),
            message: String::new(),
        };
        assert!(is_transient(&server(503)));
        assert!(is_transient(&server(429)));
        assert!(!is_transient(&server(404)));
        assert!(!is_transient(&OciDistributionError::SpecViolationError(
            "202".to_owned()
        )));
        assert_eq!(
            status_of(&OciDistributionError::UnauthorizedError { url: String::new() }),
            Some(401)
        );
    }

    #[test]
    fn client_certificate_keeps_hoist_requests() {
        let mut options = TransportOptions::default();
        options
            .client_certificates
            .insert("r.example".to_owned(), ("/c.pem".into(), "/k.pem".into()));
        let oci = OciTransport::build(&options, "r.example", "https").expect("builds");
        assert!(oci.is_none());
        let other = OciTransport::build(&options, "s.example", "https").expect("builds");
        assert!(other.is_some());
    }

    #[test]
    fn digest_tags_become_digest_references() {
        let oci = OciTransport::build(&TransportOptions::default(), "docker.io", "https")
            .expect("builds")
            .expect("no client certificate");
        let digest = format!("sha256:{}", "a".repeat(64));
        let reference = oci.reference("library/busybox", &digest);
        assert_eq!(reference.digest(), Some(digest.as_str()));
        assert_eq!(reference.resolve_registry(), "registry-1.docker.io");
        assert_eq!(oci.reference("app", "v1").tag(), Some("v1"));
    }
}
