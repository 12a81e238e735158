//! Command-line flags shared by hoist's commands, behind the `clap` feature: the transport
//! flags, the parser of Kaniko's registry mirror flags and variables, and the error line
//! that the commands print.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::reference::DEFAULT_REGISTRY;
use crate::transport::{TransportOptions, parse_client_certificate, parse_registry_certificate};

/// The variable that adds one mirror of docker.io, after those of `--registry-mirror`.
pub const REGISTRY_MIRROR_VARIABLE: &str = "KANIKO_REGISTRY_MIRROR";

/// The variable that adds one registry map, after those of `--registry-map`.
pub const REGISTRY_MAP_VARIABLE: &str = "KANIKO_REGISTRY_MAP";

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

/// An invalid `--registry-mirror`, `--registry-map` or variable of theirs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// A registry map entry without `=`, or with an empty registry or mirror.
    #[error(
        "invalid registry map {text:?} in {origin}: expected REGISTRY=MIRROR[;REGISTRY=MIRROR]"
    )]
    InvalidMap {
        /// `--registry-map` or the variable's name.
        origin: &'static str,
        /// The whole value given.
        text: String,
    },
    /// An empty mirror of docker.io.
    #[error("invalid empty registry mirror in {origin}: expected HOST or HOST:PORT")]
    EmptyMirror {
        /// `--registry-mirror` or the variable's name.
        origin: &'static str,
    },
}

/// The values of [`REGISTRY_MIRROR_VARIABLE`] and [`REGISTRY_MAP_VARIABLE`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorVariables {
    /// `KANIKO_REGISTRY_MIRROR`, a host or host:port.
    pub registry_mirror: Option<String>,
    /// `KANIKO_REGISTRY_MAP`, in the form of `--registry-map`.
    pub registry_map: Option<String>,
}

impl MirrorVariables {
    /// Reads both variables from the process environment. A variable that is set but
    /// empty counts as set.
    pub fn from_process() -> Self {
        let read = |name: &str| std::env::var(name).ok();
        Self {
            registry_mirror: read(REGISTRY_MIRROR_VARIABLE),
            registry_map: read(REGISTRY_MAP_VARIABLE),
        }
    }
}

/// Collects the mirrors per registry from Kaniko's flags and variables, each list in the
/// order the mirrors are tried.
///
/// `registry_maps` are the `--registry-map` values, each `REGISTRY=MIRROR[;REGISTRY=MIRROR]`,
/// and `registry_mirrors` the `--registry-mirror` values, mirrors of docker.io. The
/// variables add one value each after the flags' values, as in Kaniko's executor. Mirrors
/// from the maps come before those from `--registry-mirror`.
pub fn collect_registry_mirrors(
    registry_mirrors: &[String],
    registry_maps: &[String],
    variables: &MirrorVariables,
) -> Result<BTreeMap<String, Vec<String>>, MirrorError> {
    let mut mirrors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let flag_maps = registry_maps.iter().map(|text| ("--registry-map", text));
    let variable_map = variables
        .registry_map
        .iter()
        .map(|text| (REGISTRY_MAP_VARIABLE, text));
    for (origin, text) in flag_maps.chain(variable_map) {
        for (registry, mirror) in parse_registry_map(text, origin)? {
            mirrors.entry(registry).or_default().push(mirror);
        }
    }

    let flag_mirrors = registry_mirrors
        .iter()
        .map(|mirror| ("--registry-mirror", mirror));
    let variable_mirror = variables
        .registry_mirror
        .iter()
        .map(|mirror| (REGISTRY_MIRROR_VARIABLE, mirror));
    for (origin, mirror) in flag_mirrors.chain(variable_mirror) {
        if mirror.is_empty() {
            return Err(MirrorError::EmptyMirror { origin });
        }
        mirrors
            .entry(DEFAULT_REGISTRY.to_owned())
            .or_default()
            .push(mirror.clone());
    }
    Ok(mirrors)
}

/// Parses Kaniko's `REGISTRY=MIRROR[;REGISTRY=MIRROR]` from `origin` (a flag or variable
/// name, for the error). Empty entries are skipped, and `index.docker.io` and
/// `registry-1.docker.io` are the same registry as `docker.io`.
pub fn parse_registry_map(
    text: &str,
    origin: &'static str,
) -> Result<Vec<(String, String)>, MirrorError> {
    let invalid = || MirrorError::InvalidMap {
        origin,
        text: text.to_owned(),
    };
    let mut entries = Vec::new();
    for entry in text
        .split(';')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (registry, mirror) = entry.split_once('=').ok_or_else(invalid)?;
        if registry.is_empty() || mirror.is_empty() {
            return Err(invalid());
        }
        let registry = match registry {
            "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY,
            other => other,
        };
        entries.push((registry.to_owned(), mirror.to_owned()));
    }
    Ok(entries)
}

/// Joins an error and its causes, outermost first, with `: `, for the one line that a
/// command prints when it fails. Control characters are escaped.
///
/// Each cause is printed once: the libraries of hoist leave a source's text out of the
/// message of the error that wraps it, so the chain is the only place it appears. Errors
/// that still repeat their source's text, such as those of hoist-registry and some
/// third-party crates, are caught here: a cause whose text the line already contains is
/// skipped.
pub fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut source = Some(error);
    while let Some(cause) = source {
        source = cause.source();
        // A registry's response body can carry terminal escapes: print them escaped.
        let text = hoist_image::printable(&cause.to_string().replace('\n', " "));
        let text = text.trim();
        if line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| (*value).to_owned()).collect()
    }

    #[test]
    fn registry_map_takes_kaniko_format() {
        let entries = parse_registry_map(
            "index.docker.io=a.example;gcr.io=127.0.0.1:5000",
            "--registry-map",
        )
        .unwrap();
        assert_eq!(
            entries,
            [
                ("docker.io".to_owned(), "a.example".to_owned()),
                ("gcr.io".to_owned(), "127.0.0.1:5000".to_owned()),
            ]
        );
    }

    #[test]
    fn registry_map_skips_empty_entries() {
        let entries = parse_registry_map(" ;gcr.io=m.example; ", "--registry-map").unwrap();
        assert_eq!(entries, [("gcr.io".to_owned(), "m.example".to_owned())]);
        assert_eq!(parse_registry_map("", "--registry-map").unwrap(), []);
    }

    #[test]
    fn registry_map_rejects_missing_parts() {
        for text in ["gcr.io", "=mirror", "gcr.io=", "gcr.io=m.example;quay.io"] {
            let error = parse_registry_map(text, "--registry-map").unwrap_err();
            assert_eq!(
                error,
                MirrorError::InvalidMap {
                    origin: "--registry-map",
                    text: text.to_owned()
                }
            );
        }
    }

    #[test]
    fn mirror_list_form_is_rejected() {
        // The form `REGISTRY=MIRROR;MIRROR` that hoist-warmer once read.
        let error = parse_registry_map("gcr.io=a.example;b.example", REGISTRY_MAP_VARIABLE);
        let message = error.unwrap_err().to_string();
        assert!(message.contains("KANIKO_REGISTRY_MAP"), "{message}");
        assert!(
            message.contains("\"gcr.io=a.example;b.example\""),
            "{message}"
        );
        assert!(
            message.contains("REGISTRY=MIRROR[;REGISTRY=MIRROR]"),
            "{message}"
        );
    }

    #[test]
    fn flags_come_before_variables() {
        let variables = MirrorVariables {
            registry_mirror: Some("env-mirror.example".to_owned()),
            registry_map: Some("gcr.io=env-map.example".to_owned()),
        };
        let mirrors = collect_registry_mirrors(
            &strings(&["flag-mirror.example"]),
            &strings(&[
                "gcr.io=one.example;gcr.io=two.example",
                "docker.io=map.example",
            ]),
            &variables,
        )
        .unwrap();
        assert_eq!(
            mirrors,
            BTreeMap::from([
                (
                    "docker.io".to_owned(),
                    strings(&["map.example", "flag-mirror.example", "env-mirror.example"])
                ),
                (
                    "gcr.io".to_owned(),
                    strings(&["one.example", "two.example", "env-map.example"])
                ),
            ])
        );
    }

    #[test]
    fn no_flags_give_no_mirrors() {
        let mirrors = collect_registry_mirrors(&[], &[], &MirrorVariables::default()).unwrap();
        assert!(mirrors.is_empty());
    }

    #[test]
    fn empty_mirror_names_its_origin() {
        let error = collect_registry_mirrors(&strings(&[""]), &[], &MirrorVariables::default());
        assert_eq!(
            error.unwrap_err(),
            MirrorError::EmptyMirror {
                origin: "--registry-mirror"
            }
        );
        let variables = MirrorVariables {
            registry_mirror: Some(String::new()),
            registry_map: None,
        };
        let error = collect_registry_mirrors(&[], &[], &variables).unwrap_err();
        assert_eq!(
            error,
            MirrorError::EmptyMirror {
                origin: "KANIKO_REGISTRY_MIRROR"
            }
        );
    }

    #[test]
    fn invalid_map_variable_names_variable() {
        let variables = MirrorVariables {
            registry_mirror: None,
            registry_map: Some("gcr.io".to_owned()),
        };
        let error = collect_registry_mirrors(&[], &[], &variables).unwrap_err();
        assert_eq!(
            error,
            MirrorError::InvalidMap {
                origin: "KANIKO_REGISTRY_MAP",
                text: "gcr.io".to_owned()
            }
        );
    }
}
