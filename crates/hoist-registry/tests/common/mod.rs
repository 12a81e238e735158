//! Helpers shared by the integration tests: clients set up for testkit registries.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hoist_auth::Credential;
use hoist_registry::{
    Client, ClientOptions, Credentials, RetryPolicy, TransportOptions, UploadMode,
};
use hoist_testkit::Registry;

/// Returns client options that reach `registry`: plain HTTP without TLS, its CA with TLS,
/// and quick retries so that fault tests finish fast.
pub fn options_for(registry: &Registry) -> ClientOptions {
    let mut transport = TransportOptions::default();
    match registry.ca_cert() {
        Some(ca) => {
            transport
                .registry_certificates
                .insert(registry.host().to_owned(), ca.to_path_buf());
        }
        None => {
            transport.insecure_registries = BTreeSet::from([registry.host().to_owned()]);
        }
    }
    ClientOptions {
        transport,
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
        },
        upload: UploadMode::Monolithic,
        max_concurrency: 4,
        progress: None,
        registry_mirrors: BTreeMap::new(),
        mirror_fallback: true,
    }
}

/// Returns the registry's credentials, when it has any.
pub fn credentials_for(registry: &Registry) -> Credentials {
    match registry.credentials() {
        Some((user, pass)) => Credentials::Fixed(BTreeMap::from([(
            registry.host().to_owned(),
            Credential::basic(user, pass),
        )])),
        None => Credentials::Anonymous,
    }
}

/// Returns a client for `registry` with monolithic uploads.
pub fn client_for(registry: &Registry) -> Client {
    Client::new(options_for(registry), credentials_for(registry))
}

/// Counts the requests with `method` whose path contains `path_part` in the registry's
/// log, an account of what reached the registry that is independent of the client.
pub fn count_requests(registry: &Registry, method: &str, path_part: &str) -> usize {
    let log = std::fs::read_to_string(registry.log_path()).unwrap_or_default();
    log.lines()
        .filter(|line| line.contains("response completed"))
        .filter(|line| line.contains(&format!("http.request.method={method} ")))
        .filter(|line| {
            line.split_whitespace()
                .any(|field| field.starts_with("http.request.uri=") && field.contains(path_part))
        })
        .count()
}

/// Counts every request in the registry's log, whatever its method and path, the
/// testkit's readiness probe included.
pub fn count_all_requests(registry: &Registry) -> usize {
    let log = std::fs::read_to_string(registry.log_path()).unwrap_or_default();
    log.lines()
        .filter(|line| line.contains("response completed"))
        .count()
}

/// Counts the requests like [`count_requests`] whose `User-Agent` starts with `agent`.
/// `oci-client` sends `hoist/<version>` for hoist, and hoist's own requests send none.
pub fn count_requests_from(
    registry: &Registry,
    method: &str,
    path_part: &str,
    agent: &str,
) -> usize {
    let log = std::fs::read_to_string(registry.log_path()).unwrap_or_default();
    log.lines()
        .filter(|line| line.contains("response completed"))
        .filter(|line| line.contains(&format!("http.request.method={method} ")))
        .filter(|line| {
            line.contains(&format!("http.request.useragent=\"{agent}"))
                || line.contains(&format!("http.request.useragent={agent}"))
        })
        .filter(|line| {
            line.split_whitespace()
                .any(|field| field.starts_with("http.request.uri=") && field.contains(path_part))
        })
        .count()
}
