//! One registry's HTTP API: requests with authentication and retries, and the
//! distribution-spec operations built on them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::auth::Authenticator;
use crate::error::{Error, Result};
use crate::oci::{BlobStream, OciTransport};
use crate::progress::Progress;
use crate::retry::{RetryPolicy, is_transient_error, is_transient_status, parse_retry_after};

/// The four manifest media types hoist reads, sent as `Accept` on every manifest request.
/// Without them distribution returns 404 for OCI manifests and converts Docker manifests
/// to signed schema 1.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// Size of the reads that feed a streamed upload, in bytes.
const UPLOAD_READ_SIZE: usize = 256 * 1024;

/// Maximum length of an error body quoted in an error message, in bytes.
const MAX_ERROR_BODY: usize = 512;

/// Counters of what a client sent, for reports and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) blob_bytes_sent: AtomicU64,
    pub(crate) blobs_uploaded: AtomicU64,
    pub(crate) blobs_present: AtomicU64,
    pub(crate) blobs_mounted: AtomicU64,
    pub(crate) manifest_puts: AtomicU64,
    pub(crate) retries: AtomicU64,
}

/// The body of a request, rebuilt for every attempt.
#[derive(Clone, Debug)]
pub(crate) enum RequestBody {
    Empty,
    Bytes(Bytes),
    /// Blob bytes held in memory, such as an image config; counted as blob bytes.
    BlobBytes(Bytes),
    /// `length` bytes of a file from `offset` on, streamed and counted as blob bytes of
    /// the blob `digest`.
    File {
        path: PathBuf,
        offset: u64,
        length: u64,
        digest: String,
    },
}

/// A request to send, with the token scopes it needs.
#[derive(Clone, Debug)]
pub(crate) struct ApiRequest {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) headers: Vec<(header::HeaderName, String)>,
    pub(crate) body: RequestBody,
    pub(crate) scopes: Vec<String>,
    /// Whether transient failures are retried here. Requests inside an upload session are
    /// not, because the session's state is unknown after a failure; the whole upload is
    /// retried instead.
    pub(crate) retry: bool,
}

impl ApiRequest {
    pub(crate) fn new(method: Method, url: String, scopes: Vec<String>) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: RequestBody::Empty,
            scopes,
            retry: true,
        }
    }

    pub(crate) fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: RequestBody) -> Self {
        self.body = body;
        self
    }

    pub(crate) fn without_retry(mut self) -> Self {
        self.retry = false;
        self
    }
}

/// The API of one registry.
#[derive(Debug)]
pub(crate) struct RegistryApi {
    /// The registry as written in references.
    pub(crate) registry: String,
    /// `scheme://host[:port]`.
    pub(crate) base_url: String,
    /// hoist's own client: token requests, manifest reads, uploads, and every request
    /// to a registry that `oci` cannot serve.
    pub(crate) http: reqwest::Client,
    /// The `oci-client` of this registry, `None` when it wants a client certificate.
    pub(crate) oci: Option<OciTransport>,
    pub(crate) auth: Authenticator,
    pub(crate) retry: RetryPolicy,
    pub(crate) counters: Arc<Counters>,
    pub(crate) progress: Option<Arc<dyn Progress>>,
}

impl RegistryApi {
    /// Returns the URL of `path` (which starts with `/v2/`) on this registry.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Resolves a `Location` header, which may be relative, against the registry.
    pub(crate) fn resolve_location(&self, location: &str) -> Result<url::Url> {
        let base = url::Url::parse(&self.base_url).map_err(|error| Error::Transport {
            registry: self.registry.clone(),
            reason: format!("invalid base URL {}: {error}", self.base_url),
        })?;
        base.join(location).map_err(|error| Error::Transport {
            registry: self.registry.clone(),
            reason: format!("invalid Location {location:?}: {error}"),
        })
    }

    /// Sends `request`, handling one authentication challenge and retrying transient
    /// failures with backoff. Returns the final response whatever its status.
    pub(crate) async fn send(&self, request: &ApiRequest) -> Result<Response> {
        let mut attempt = 0;
        let mut challenge_handled = false;
        loop {
            attempt += 1;
            let outcome = self.build(request).await?.send().await;
            let response = match outcome {
                Ok(response) => response,
                Err(error) => {
                    if request.retry
                        && is_transient_error(&error)
                        && self.retry.allows_another(attempt)
                    {
                        // The causes name what failed, such as a timeout or a reset.
                        let reason = crate::client::error_chain(&error.without_url());
                        self.wait_before_retry(
                            request.method.as_str(),
                            &request.url,
                            attempt,
                            None,
                            &reason,
                        )
                        .await;
                        continue;
                    }
                    return Err(self.request_error(request, error));
                }
            };

            let status = response.status().as_u16();
            if status == 401 && !challenge_handled {
                challenge_handled = true;
                let header = header_text(response.headers(), header::WWW_AUTHENTICATE);
                if self
                    .auth
                    .handle_challenge(&self.http, header.as_deref(), &request.scopes)
                    .await?
                {
                    continue;
                }
            }
            if request.retry && is_transient_status(status) && self.retry.allows_another(attempt) {
                let retry_after = parse_retry_after(
                    header_text(response.headers(), header::RETRY_AFTER).as_deref(),
                );
                let reason = format!("HTTP {status}");
                self.wait_before_retry(
                    request.method.as_str(),
                    &request.url,
                    attempt,
                    retry_after,
                    &reason,
                )
                .await;
                continue;
            }
            return Ok(response);
        }
    }

    /// Counts a retry of `method url`, logs it and waits the backoff.
    pub(crate) async fn wait_before_retry(
        &self,
        method: &str,
        url: &str,
        attempt: u32,
        retry_after: Option<std::time::Duration>,
        reason: &str,
    ) {
        let wait = self.retry.backoff(attempt, retry_after);
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            registry = %self.registry,
            method,
            url,
            attempt,
            wait_ms = wait.as_millis() as u64,
            reason,
            "retrying registry request"
        );
        tokio::time::sleep(wait).await;
    }

    async fn build(&self, request: &ApiRequest) -> Result<reqwest::RequestBuilder> {
        let mut builder = self.http.request(request.method.clone(), &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(value) = self.auth.header(&request.scopes) {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let builder = match &request.body {
            RequestBody::Empty => builder,
            RequestBody::Bytes(bytes) => builder
                .header(header::CONTENT_LENGTH, bytes.len())
                .body(bytes.clone()),
            RequestBody::BlobBytes(bytes) => {
                self.counters
                    .blob_bytes_sent
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                builder
                    .header(header::CONTENT_LENGTH, bytes.len())
                    .body(bytes.clone())
            }
            RequestBody::File {
                path,
                offset,
                length,
                digest,
            } => builder
                .header(header::CONTENT_LENGTH, *length)
                .body(self.file_body(path, *offset, *length, digest).await?),
        };
        Ok(builder)
    }

    /// Streams `length` bytes of a file in reads of [`UPLOAD_READ_SIZE`], so an upload
    /// keeps at most a few reads in memory whatever the blob size.
    async fn file_body(
        &self,
        path: &PathBuf,
        offset: u64,
        length: u64,
        digest: &str,
    ) -> Result<reqwest::Body> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(crate::error::io_error("open", path))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(crate::error::io_error("seek in", path))?;
        let counters = Arc::clone(&self.counters);
        let progress = self.progress.clone();
        let digest = digest.to_owned();
        let reader = file.take(length);
        let stream = futures::stream::try_unfold(reader, move |mut reader| {
            let counters = Arc::clone(&counters);
            let progress = progress.clone();
            let digest = digest.clone();
            async move {
                let mut buffer = vec![0; UPLOAD_READ_SIZE];
                let read = reader.read(&mut buffer).await?;
                if read == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
                buffer.truncate(read);
                counters
                    .blob_bytes_sent
                    .fetch_add(read as u64, Ordering::Relaxed);
                if let Some(progress) = &progress {
                    progress.advance(&digest, read as u64);
                }
                Ok(Some((Bytes::from(buffer), reader)))
            }
        });
        Ok(reqwest::Body::wrap_stream(stream))
    }

    fn request_error(&self, request: &ApiRequest, source: reqwest::Error) -> Error {
        Error::Request {
            registry: self.registry.clone(),
            method: request.method.to_string(),
            url: request.url.clone(),
            source: source.without_url(),
        }
    }

    /// Turns an unexpected response into an error: [`Error::Unauthorized`] for 401 and 403,
    /// else [`Error::Status`] quoting the start of the body.
    pub(crate) async fn status_error(&self, request: &ApiRequest, response: Response) -> Error {
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Error::Unauthorized {
                registry: self.registry.clone(),
                scope: request.scopes.join(" "),
                status,
                sent_credentials: self.auth.has_credential(),
            };
        }
        let body = read_error_body(response).await;
        if self.is_plain_http_to_tls(status, &body) {
            return Error::PlainHttpToTls {
                registry: self.registry.clone(),
                method: request.method.to_string(),
                url: request.url.clone(),
            };
        }
        Error::Status {
            registry: self.registry.clone(),
            method: request.method.to_string(),
            url: request.url.clone(),
            status,
            body,
        }
    }

    /// Tells whether a status and body over plain HTTP are those of a TLS server, which
    /// responds with 400 and "Client sent an HTTP request to an HTTPS server." (Go) or, to a
    /// HEAD request, with no body.
    pub(crate) fn is_plain_http_to_tls(&self, status: u16, body: &str) -> bool {
        status == 400
            && self.base_url.starts_with("http://")
            && (body.trim().is_empty() || body.contains("HTTPS server"))
    }

    /// Sends `request` and fails unless the status is one of `expected`.
    pub(crate) async fn send_expecting(
        &self,
        request: &ApiRequest,
        expected: &[StatusCode],
    ) -> Result<Response> {
        let response = self.send(request).await?;
        if expected.contains(&response.status()) {
            Ok(response)
        } else {
            Err(self.status_error(request, response).await)
        }
    }

    /// Reads a whole response body of at most `limit` bytes.
    pub(crate) async fn read_limited(
        &self,
        request: &ApiRequest,
        response: Response,
        what: &str,
        limit: u64,
    ) -> Result<Bytes> {
        let too_large = || Error::TooLarge {
            registry: self.registry.clone(),
            what: what.to_owned(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| self.request_error(request, error))?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }

    /// Returns the `Location` header of an upload response, resolved to a URL.
    pub(crate) fn location(&self, request: &ApiRequest, response: &Response) -> Result<url::Url> {
        let location = header_text(response.headers(), header::LOCATION).ok_or_else(|| {
            Error::MissingHeader {
                registry: self.registry.clone(),
                method: request.method.to_string(),
                url: request.url.clone(),
                header: "Location",
            }
        })?;
        self.resolve_location(&location)
    }
}

/// Returns a header's value as text, when present and valid.
pub(crate) fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(ToOwned::to_owned)
}

async fn read_error_body(response: Response) -> String {
    let bytes = read_body_prefix(response, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// Reads at most `limit` bytes of a response body and leaves the rest unread, so that a
/// huge body cannot exhaust memory.
pub(crate) async fn read_body_prefix(
    response: Response,
    limit: usize,
) -> std::result::Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = limit - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Returns at most the first [`MAX_ERROR_BODY`] bytes of a registry's response body, cut
/// at a character boundary, for an error message.
pub(crate) fn truncate_body(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR_BODY);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_owned()
}

/// Reads a whole blob stream of at most `limit` bytes, for a blob read into memory.
pub(crate) async fn read_stream_limited(
    api: &RegistryApi,
    url: &str,
    mut stream: BlobStream,
    what: &str,
    limit: u64,
) -> Result<Bytes> {
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| api.stream_error(url, error))?;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(Error::TooLarge {
                registry: api.registry.clone(),
                what: what.to_owned(),
                limit,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn body_prefix_stops_at_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 1048576\r\n\r\n";
            let chunk = vec![b'x'; 64 * 1024];
            let _ = socket.write_all(head.as_bytes()).await;
            for _ in 0..16 {
                if socket.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });

        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let response = client
            .get(format!("http://{address}/"))
            .send()
            .await
            .unwrap();
        let body = read_body_prefix(response, 100).await.unwrap();

        assert_eq!(body.len(), 100);
        server.abort();
    }
}
