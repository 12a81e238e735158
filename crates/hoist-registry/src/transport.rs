//! Per-registry transport: plain HTTP or HTTPS, TLS verification, extra CAs and client
//! certificates.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Time limit for establishing a connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Time limit between two reads of a response, which catches stalled transfers without
/// limiting how long a large blob may take.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// How hoist connects to registries. The default is HTTPS with verified certificates
/// everywhere.
#[derive(Clone, Debug, Default)]
pub struct TransportOptions {
    /// Use plain HTTP for every registry.
    pub insecure: bool,
    /// Registries (host or host:port) reached over plain HTTP.
    pub insecure_registries: BTreeSet<String>,
    /// Accept any TLS certificate from every registry.
    pub skip_tls_verify: bool,
    /// Registries whose TLS certificate is not verified.
    pub skip_tls_verify_registries: BTreeSet<String>,
    /// Extra CA certificates (PEM files) trusted for one registry each.
    pub registry_certificates: BTreeMap<String, PathBuf>,
    /// Client certificates (PEM certificate and PEM private key) for one registry each.
    pub client_certificates: BTreeMap<String, (PathBuf, PathBuf)>,
    /// Time limit between two reads of a response; [`READ_TIMEOUT`] when unset.
    pub read_timeout: Option<Duration>,
}

impl TransportOptions {
    /// Returns the URL scheme for `registry`: `http` when it is insecure, else `https`.
    pub fn scheme(&self, registry: &str) -> &'static str {
        if self.insecure || self.insecure_registries.contains(registry) {
            "http"
        } else {
            "https"
        }
    }

    /// Builds the HTTP client for `registry`.
    pub fn http_client(&self, registry: &str) -> Result<reqwest::Client> {
        let invalid = |reason: String| Error::Transport {
            registry: registry.to_owned(),
            reason,
        };
        let skip_verify =
            self.skip_tls_verify || self.skip_tls_verify_registries.contains(registry);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(self.read_timeout.unwrap_or(READ_TIMEOUT))
            .tls_danger_accept_invalid_certs(skip_verify)
            // Redirects to blob storage are followed, but never with the registry's
            // Authorization header, which reqwest drops on a change of host.
            .redirect(reqwest::redirect::Policy::limited(10));

        if let Some(path) = self.registry_certificates.get(registry) {
            let pem = read_pem_file(path, "CA").map_err(invalid)?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|error| invalid(format!("parsing CA {}: {error}", path.display())))?;
            if certificates.is_empty() {
                return Err(invalid(format!(
                    "CA {} contains no PEM certificate",
                    path.display()
                )));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client_certificate = self.client_certificates.get(registry);
        if let Some((cert, key)) = client_certificate {
            builder = builder.identity(read_identity(cert, key).map_err(invalid)?);
        }
        builder.build().map_err(|error| {
            let reason = error_with_sources(&error);
            match client_certificate {
                // The TLS setup fails here when the key does not belong to the certificate.
                Some((cert, key)) => invalid(format!(
                    "building the HTTP client with client certificate {} and key {}: {reason}",
                    cert.display(),
                    key.display()
                )),
                None => invalid(format!("building the HTTP client: {reason}")),
            }
        })
    }
}

/// Parses `HOST=PATH`, the form of `--registry-certificate`.
pub fn parse_registry_certificate(text: &str) -> std::result::Result<(String, PathBuf), String> {
    let (host, path) = text
        .split_once('=')
        .filter(|(host, path)| !host.is_empty() && !path.is_empty())
        .ok_or_else(|| format!("invalid registry certificate {text:?}: expected HOST=PATH"))?;
    Ok((host.to_owned(), PathBuf::from(path)))
}

/// Parses `HOST=CERT,KEY`, the form of `--registry-client-cert`.
pub fn parse_client_certificate(
    text: &str,
) -> std::result::Result<(String, (PathBuf, PathBuf)), String> {
    let invalid = || format!("invalid client certificate {text:?}: expected HOST=CERT,KEY");
    let (host, files) = text.split_once('=').ok_or_else(invalid)?;
    let (cert, key) = files.split_once(',').ok_or_else(invalid)?;
    if host.is_empty() || cert.is_empty() || key.is_empty() {
        return Err(invalid());
    }
    Ok((host.to_owned(), (PathBuf::from(cert), PathBuf::from(key))))
}

/// Returns the message of `error` followed by those of its sources, which is where reqwest
/// puts the TLS library's reason.
fn error_with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads a client certificate and its key into one identity.
/// The largest certificate or key file read; a CA bundle of every public root is about
/// 200 KiB.
const MAX_PEM_FILE: u64 = 4 << 20;

/// Reads a PEM file (`kind` names it in errors) of at most [`MAX_PEM_FILE`] bytes, so that a
/// path such as `/dev/zero` fails instead of filling memory.
pub(crate) fn read_pem_file(path: &Path, kind: &str) -> std::result::Result<Vec<u8>, String> {
    let file = std::fs::File::open(path)
        .map_err(|error| format!("reading {kind} {}: {error}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("reading {kind} {}: {error}", path.display()))?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(format!(
            "{kind} {} is larger than {MAX_PEM_FILE} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

fn read_identity(cert: &Path, key: &Path) -> std::result::Result<reqwest::Identity, String> {
    let mut pem = read_pem_file(cert, "client certificate")?;
    let key_pem = read_pem_file(key, "client key")?;
    pem.push(b'\n');
    pem.extend_from_slice(&key_pem);
    // The messages of reqwest's error and its sources name no key material.
    reqwest::Identity::from_pem(&pem).map_err(|error| {
        format!(
            "parsing client certificate {} with key {}: {}",
            cert.display(),
            key.display(),
            error_with_sources(&error)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_is_default_scheme() {
        let options = TransportOptions::default();
        assert_eq!(options.scheme("registry.example"), "https");
    }

    #[test]
    fn insecure_registry_uses_http() {
        let options = TransportOptions {
            insecure_registries: BTreeSet::from(["127.0.0.1:5000".to_owned()]),
            ..TransportOptions::default()
        };
        assert_eq!(options.scheme("127.0.0.1:5000"), "http");
        assert_eq!(options.scheme("127.0.0.1:5001"), "https");
    }

    #[test]
    fn insecure_flag_covers_all_registries() {
        let options = TransportOptions {
            insecure: true,
            ..TransportOptions::default()
        };
        assert_eq!(options.scheme("registry.example"), "http");
    }

    #[test]
    fn certificate_options_parse() {
        assert_eq!(
            parse_registry_certificate("r.example:5000=/etc/ca.pem"),
            Ok(("r.example:5000".to_owned(), PathBuf::from("/etc/ca.pem")))
        );
        assert_eq!(
            parse_client_certificate("r.example=/c.pem,/k.pem"),
            Ok((
                "r.example".to_owned(),
                (PathBuf::from("/c.pem"), PathBuf::from("/k.pem"))
            ))
        );
        assert!(parse_registry_certificate("r.example").is_err());
        assert!(parse_client_certificate("r.example=/c.pem").is_err());
    }

    #[test]
    fn missing_ca_file_names_registry() {
        let options = TransportOptions {
            registry_certificates: BTreeMap::from([(
                "registry.example".to_owned(),
                PathBuf::from("/nonexistent/ca.pem"),
            )]),
            ..TransportOptions::default()
        };
        let error = options.http_client("registry.example").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("registry.example"), "{message}");
        assert!(message.contains("/nonexistent/ca.pem"), "{message}");
    }

    fn ca_error(path: &Path) -> String {
        let options = TransportOptions {
            registry_certificates: BTreeMap::from([(
                "registry.example".to_owned(),
                path.to_path_buf(),
            )]),
            ..TransportOptions::default()
        };
        options
            .http_client("registry.example")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn ca_file_without_certificate_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "root:x:0:0:root:/root:/bin/sh\n").unwrap();

        let message = ca_error(&path);

        assert!(message.contains("contains no PEM certificate"), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn endless_ca_file_rejected() {
        let message = ca_error(Path::new("/dev/zero"));

        assert!(message.contains("larger than"), "{message}");
        assert!(message.contains("/dev/zero"), "{message}");
    }
}
