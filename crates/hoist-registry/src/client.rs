//! The multi-registry client: options, credentials and one API handle per registry.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use hoist_auth::{Credential, Keychain};

use crate::api::{Counters, RegistryApi};
use crate::auth::Authenticator;
use crate::error::{Error, Result};
use crate::oci::OciTransport;
use crate::progress::Progress;
use crate::reference::api_host;
use crate::retry::RetryPolicy;
use crate::transport::{CONNECT_TIMEOUT, TransportOptions};

/// Default number of blobs transferred at the same time.
pub const DEFAULT_MAX_CONCURRENCY: usize = 4;

/// The way blob uploads send their bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadMode {
    /// One `PUT` with the whole blob, streamed from its file.
    Monolithic,
    /// `PATCH` requests of at most this many bytes each, then a closing `PUT`. Some
    /// registries and proxies limit the size of one request body.
    Chunked(u64),
}

/// Options of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Plain HTTP, TLS verification and certificates per registry.
    pub transport: TransportOptions,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// The way uploads send blob bytes.
    pub upload: UploadMode,
    /// Blobs transferred at the same time, at least 1.
    pub max_concurrency: usize,
    /// Receiver of per-blob progress events, such as a progress bar.
    pub progress: Option<Arc<dyn Progress>>,
    /// Mirrors (host or host:port) tried in order before pulling from a registry, keyed by
    /// the registry as written in references, such as `docker.io`.
    pub registry_mirrors: BTreeMap<String, Vec<String>>,
    /// Whether a pull falls back to the registry itself after its mirrors failed.
    pub mirror_fallback: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            transport: TransportOptions::default(),
            retry: RetryPolicy::default(),
            upload: UploadMode::Monolithic,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            progress: None,
            registry_mirrors: BTreeMap::new(),
            mirror_fallback: true,
        }
    }
}

/// The source of registry credentials.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// No credentials: anonymous access and anonymous tokens only.
    Anonymous,
    /// Docker's and podman's credential files and helpers.
    Keychain(Keychain),
    /// A fixed credential per registry (as written in references), for embedding and tests.
    Fixed(BTreeMap<String, Credential>),
}

impl Credentials {
    fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        match self {
            Self::Anonymous => Ok(None),
            Self::Fixed(map) => Ok(map.get(registry).cloned()),
            Self::Keychain(keychain) => {
                keychain
                    .credential(registry)
                    .map_err(|source| Error::Credentials {
                        registry: registry.to_owned(),
                        source: Box::new(source),
                    })
            }
        }
    }
}

/// Counts of what a client has transferred so far, summed over all registries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Blob bytes sent in upload bodies, resent bytes of retried uploads included.
    pub blob_bytes_sent: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: u64,
    /// Blobs the registry already had, so nothing was sent.
    pub blobs_present: u64,
    /// Blobs mounted from another repository of the same registry.
    pub blobs_mounted: u64,
    /// Manifest `PUT` requests that succeeded.
    pub manifest_puts: u64,
    /// Requests and transfers repeated after a transient failure.
    pub retries: u64,
}

/// A registry client for pulls and pushes across registries.
///
/// It keeps one connection pool and one set of tokens per registry, so reuse one client
/// for a whole build.
#[derive(Debug)]
pub struct Client {
    pub(crate) options: ClientOptions,
    credentials: Credentials,
    apis: Mutex<HashMap<String, Arc<RegistryApi>>>,
    counters: Arc<Counters>,
}

impl Client {
    /// Creates a client. Nothing is contacted until the first pull or push.
    pub fn new(options: ClientOptions, credentials: Credentials) -> Self {
        Self {
            options,
            credentials,
            apis: Mutex::new(HashMap::new()),
            counters: Arc::new(Counters::default()),
        }
    }

    /// Returns what this client has transferred so far.
    pub fn stats(&self) -> TransferStats {
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        TransferStats {
            blob_bytes_sent: load(&self.counters.blob_bytes_sent),
            blobs_uploaded: load(&self.counters.blobs_uploaded),
            blobs_present: load(&self.counters.blobs_present),
            blobs_mounted: load(&self.counters.blobs_mounted),
            manifest_puts: load(&self.counters.manifest_puts),
            retries: load(&self.counters.retries),
        }
    }

    /// Returns the API handle of `registry`, creating it on first use.
    pub(crate) async fn api(&self, registry: &str) -> Result<Arc<RegistryApi>> {
        if let Some(api) = self.lock_apis().get(registry) {
            return Ok(Arc::clone(api));
        }
        let host = api_host(registry);
        let transport = &self.options.transport;
        let http = transport.http_client(registry)?;
        let mut scheme = transport.scheme(registry);
        if scheme == "https" && is_loopback(host) {
            // Docker treats loopback registries as insecure: HTTPS first, then plain HTTP.
            match probe_https(&http, host).await {
                HttpsProbe::Answers => {}
                HttpsProbe::Silent => {
                    tracing::info!(
                        registry,
                        "loopback registry does not speak HTTPS, using plain HTTP"
                    );
                    scheme = "http";
                }
                HttpsProbe::Refused => scheme = "http",
                HttpsProbe::Failed(reason) => {
                    return Err(Error::Tls {
                        registry: registry.to_owned(),
                        reason,
                    });
                }
            }
        }
        let oci = OciTransport::build(transport, registry, scheme)?;
        let api = Arc::new(RegistryApi {
            registry: registry.to_owned(),
            base_url: format!("{scheme}://{host}"),
            http,
            oci,
            auth: Authenticator::new(registry, self.credentials.lookup(registry)?),
            retry: self.options.retry.clone(),
            counters: Arc::clone(&self.counters),
            progress: self.options.progress.clone(),
        });
        let mut apis = self.lock_apis();
        let api = apis.entry(registry.to_owned()).or_insert(api);
        Ok(Arc::clone(api))
    }

    fn lock_apis(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<RegistryApi>>> {
        self.apis
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Tells whether `host` (with an optional port) is `localhost` or a loopback address.
///
/// Anything after the name other than `:PORT` makes the host not loopback, so that a
/// registry such as `[::1]:1@example.com` is never taken for a local one.
fn is_loopback(host: &str) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((name, port)) => (name, port),
            None => return false,
        },
        None => match host.find(':') {
            Some(colon) => host.split_at(colon),
            None => (host, ""),
        },
    };
    if !port.is_empty() && !crate::reference::is_port_suffix(port) {
        return false;
    }
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The outcome of probing a loopback registry over HTTPS.
#[derive(Debug)]
enum HttpsProbe {
    /// The registry responded to `GET /v2/` over HTTPS, with any status.
    Answers,
    /// A TLS server is listening, but the handshake failed: an untrusted certificate, or a
    /// client certificate that the server requires and did not get. Contains the error of
    /// the verified attempt.
    Failed(String),
    /// No TLS server responded, and the registry responds over plain HTTP.
    Silent,
    /// Nothing listens on the port, so the request over plain HTTP reports the refused
    /// connection rather than a TLS failure.
    Refused,
}

/// Sends `GET https://host/v2/`. When that fails, distinguishes a plain HTTP registry from a
/// TLS one whose handshake failed: once more over HTTPS without certificate checks, then over
/// plain HTTP. None of the requests carries credentials.
async fn probe_https(http: &reqwest::Client, host: &str) -> HttpsProbe {
    let url = format!("https://{host}/v2/");
    let error = match http.get(&url).send().await {
        Ok(_) => return HttpsProbe::Answers,
        Err(error) => error.without_url(),
    };
    tracing::debug!(host, error = %error_chain(&error), "HTTPS probe failed");
    if is_connection_refused(&error) {
        return HttpsProbe::Refused;
    }
    let Ok(unverified) = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
    else {
        return HttpsProbe::Failed(error_chain(&error));
    };
    if unverified.get(&url).send().await.is_ok() {
        return HttpsProbe::Failed(error_chain(&error));
    }
    // A TLS server that rejects the handshake even without certificate checks (it wants a
    // client certificate) responds to plain HTTP with 400, as the Go TLS server of the
    // CNCF distribution registry does.
    match unverified.get(format!("http://{host}/v2/")).send().await {
        Ok(response) if response.status() != reqwest::StatusCode::BAD_REQUEST => HttpsProbe::Silent,
        _ => HttpsProbe::Failed(error_chain(&error)),
    }
}

/// Tells whether an I/O error with kind `ConnectionRefused` is among the causes of `error`.
fn is_connection_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Returns an error's message followed by the messages of its causes, because reqwest's
/// own message does not name the TLS failure.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "[::1]",
            "[0:0:0:0:0:0:0:1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "registry.example",
            "10.0.0.1:5000",
            "[2001:db8::1]:5000",
            "localhost.example",
            "[::1]:1@127.0.0.1:5000",
            "127.0.0.1@registry.example",
            "[::1]:+5000",
            "localhost:5000:1",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
