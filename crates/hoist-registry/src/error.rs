//! The failures of registry operations, each naming the registry and what was requested.

use std::path::PathBuf;

/// A failed registry operation.
///
/// Messages name the registry, repository, reference or digest and the HTTP status. They
/// never contain a password, token or `Authorization` header.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference that cannot be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text given.
        reference: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A transport option that cannot be applied, such as an unreadable CA file.
    #[error("invalid transport option for registry {registry}: {reason}")]
    Transport {
        /// The registry host the option is for.
        registry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A loopback registry completes a TLS handshake only without certificate checks: it
    /// speaks TLS with a certificate that is not trusted, so plain HTTP is not tried.
    #[error(
        "TLS connection to registry {registry} failed: {reason}. Trust its CA with \
         --registry-certificate {registry}=CA.pem (or skip the check with \
         --skip-tls-verify-registry {registry}), or give the client certificate it \
         requires with --registry-client-cert {registry}=CERT,KEY"
    )]
    Tls {
        /// The registry host.
        registry: String,
        /// The TLS error with its causes.
        reason: String,
    },
    /// The request could not be sent or its response not read, after every retry.
    #[error("{method} {url} on registry {registry} failed: {source}")]
    Request {
        /// The registry host.
        registry: String,
        /// The HTTP method.
        method: String,
        /// The URL, without query credentials (hoist puts none there).
        url: String,
        /// The underlying error.
        source: reqwest::Error,
    },
    /// The registry returned an unexpected status.
    #[error("{method} {url} on registry {registry} returned HTTP {status}: {body}")]
    Status {
        /// The registry host.
        registry: String,
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body, which registries fill with an error code.
        body: String,
    },
    /// A plain HTTP request got the 400 that a TLS server gives it.
    #[error(
        "{method} {url} on registry {registry} returned HTTP 400, as a TLS server does to plain \
         HTTP; if the registry speaks HTTPS, remove it from --insecure-registry and drop \
         --insecure"
    )]
    PlainHttpToTls {
        /// The registry host.
        registry: String,
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
    },
    /// The registry's response breaks the distribution protocol, or it could not be read.
    #[error("{method} {url} on registry {registry} failed: {reason}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// What is wrong with the response.
        reason: String,
    },
    /// The registry or its token server rejected the credentials.
    #[error("registry {registry} denied access to {scope} (HTTP {status}); {}", unauthorized_hint(*.sent_credentials))]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The scope requested, such as `repository:base/busybox:pull`.
        scope: String,
        /// The status code.
        status: u16,
        /// Whether hoist had credentials for the registry, so that the message
        /// distinguishes a wrong password from a missing login.
        sent_credentials: bool,
    },
    /// The token server returned an unusable response.
    #[error("token server {realm} for registry {registry} returned an invalid response: {reason}")]
    Token {
        /// The registry host.
        registry: String,
        /// The token server URL from the challenge.
        realm: String,
        /// What is wrong with the response.
        reason: String,
    },
    /// Credentials could not be looked up.
    #[error("looking up the credentials for registry {registry} failed: {source}")]
    Credentials {
        /// The registry host.
        registry: String,
        /// The keychain error, boxed because it is large.
        source: Box<hoist_auth::Error>,
    },
    /// A blob's bytes do not match its descriptor.
    #[error(
        "blob {expected_digest} from {registry}/{repository} has digest {actual_digest} and \
         size {actual_size} bytes, but {expected_size} bytes were expected; nothing was kept"
    )]
    BlobMismatch {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The digest from the manifest.
        expected_digest: String,
        /// The digest of the received bytes.
        actual_digest: String,
        /// The size from the manifest.
        expected_size: u64,
        /// The number of bytes received.
        actual_size: u64,
    },
    /// A manifest's bytes do not match the digest they were requested by.
    #[error(
        "manifest {reference} from registry {registry} has digest {actual}, expected {expected}"
    )]
    ManifestDigest {
        /// The registry host.
        registry: String,
        /// The reference requested.
        reference: String,
        /// The digest requested or announced.
        expected: String,
        /// The digest of the bytes.
        actual: String,
    },
    /// A manifest or index that cannot be used.
    #[error("manifest {reference} from registry {registry} is unusable: {source}")]
    Manifest {
        /// The registry host.
        registry: String,
        /// The reference.
        reference: String,
        /// The parse or selection error, boxed because it is large.
        source: Box<hoist_image::ManifestError>,
    },
    /// A response is larger than hoist reads into memory.
    #[error("{what} from registry {registry} is larger than the {limit}-byte limit")]
    TooLarge {
        /// The registry host.
        registry: String,
        /// What was read.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// A header the protocol requires is missing or invalid.
    #[error("{method} {url} on registry {registry} returned no usable {header} header")]
    MissingHeader {
        /// The registry host.
        registry: String,
        /// The HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The header name.
        header: &'static str,
    },
    /// A local file could not be read or written.
    #[error("{action} {path} failed: {source}")]
    Io {
        /// What was done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A push destination given by digest names another manifest than the image's. It is
    /// checked before any request is sent.
    #[error(
        "destination {destination} names manifest digest {expected}, but the image to push \
         has manifest digest {actual}; nothing was pushed. Give a tag, or the image's digest"
    )]
    DestinationDigest {
        /// The destination as given.
        destination: String,
        /// The digest the destination names.
        expected: String,
        /// The digest of the image's manifest.
        actual: String,
    },
    /// The layers missing from the cache declare more bytes than the file system of the
    /// cache has free, checked before the download starts.
    #[error(
        "the layers of {registry}/{repository} missing from the cache declare {size} bytes in \
         total (the largest is blob {digest}), but the file system of {path} has only \
         {available} bytes free, so the download was not started. Free some space or choose \
         another cache directory"
    )]
    InsufficientSpace {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The digest of the largest missing layer.
        digest: String,
        /// The sizes of the missing layers from the manifest, summed, in bytes.
        size: u64,
        /// The bytes free for unprivileged users on the file system of `path`.
        available: u64,
        /// The cache's blob directory.
        path: PathBuf,
    },
    /// A blob of the image to push is missing from the registry after its upload.
    #[error("blob {digest} is missing in {registry}/{repository} after its upload")]
    BlobNotConfirmed {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The blob digest.
        digest: String,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Returns a closure that wraps an I/O error with the action and path.
pub(crate) fn io_error(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// Returns what to check after a 401 or 403, depending on whether credentials were sent.
fn unauthorized_hint(sent_credentials: bool) -> &'static str {
    if sent_credentials {
        "check the credentials for it"
    } else {
        "no credentials were found for it: log in with hoist-login, or point DOCKER_CONFIG \
         at the directory of a config.json that has them"
    }
}
