//! Command-line flags shared by hoist's commands, behind the `clap` feature.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::transport::{TransportOptions, parse_client_certificate, parse_registry_certificate};

/// Transport options, named as in Kaniko so that existing CI jobs carry over.
#[derive(Debug, clap::Args)]
pub struct TransportArgs {
    /// Use plain HTTP for every registry.
    #[arg(long)]
    pub insecure: bool,
    /// Use plain HTTP for this registry (host or host:port); repeatable.
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Accept any TLS certificate from every registry.
    #[arg(long)]
    pub skip_tls_verify: bool,
    /// Accept any TLS certificate from this registry; repeatable.
    #[arg(long, value_name = "HOST")]
    pub skip_tls_verify_registry: Vec<String>,
    /// Trust the CA certificates in PATH (PEM) for HOST; repeatable.
    #[arg(long, value_name = "HOST=PATH", value_parser = parse_registry_certificate)]
    pub registry_certificate: Vec<(String, PathBuf)>,
    /// Present the client certificate CERT with key KEY (both PEM) to HOST; repeatable.
    #[arg(long, value_name = "HOST=CERT,KEY", value_parser = parse_client_certificate)]
    pub registry_client_cert: Vec<(String, (PathBuf, PathBuf))>,
}

impl TransportArgs {
    /// Returns the transport options these flags select.
    pub fn options(&self) -> TransportOptions {
        TransportOptions {
            insecure: self.insecure,
            insecure_registries: self
                .insecure_registry
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>(),
            skip_tls_verify: self.skip_tls_verify,
            skip_tls_verify_registries: self.skip_tls_verify_registry.iter().cloned().collect(),
            registry_certificates: self.registry_certificate.iter().cloned().collect(),
            client_certificates: self.registry_client_cert.iter().cloned().collect(),
            read_timeout: None,
        }
    }
}
