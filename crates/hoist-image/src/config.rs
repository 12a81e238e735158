//! The image config: platform, runtime defaults, root filesystem and history.
//!
//! Field names follow the OCI image config and Docker's image JSON, so that Docker-only fields
//! (`Healthcheck`, `OnBuild`, `Shell`, `ArgsEscaped`) have a place in the model. Fields that the
//! model does not name are kept in `extra` maps and written back unchanged, so that a child
//! image derived from a base keeps what the base's builder wrote.

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::platform::Platform;

/// An image config, the JSON document that a manifest's `config` descriptor points to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time of the image, an RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author of the image, as set by `MAINTAINER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture in Go's `GOARCH` terms, such as `amd64` or `arm64`.
    #[serde(default)]
    pub architecture: String,
    /// Operating system in Go's `GOOS` terms, such as `linux`.
    #[serde(default)]
    pub os: String,
    /// Operating system version, used by Windows images.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required operating system features, used by Windows images.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant, such as `v8` for `arm64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Defaults for containers run from the image.
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: RuntimeConfig,
    /// Layer diff IDs, base layer first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub rootfs: RootFs,
    /// One entry per build step, base image steps first.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
    /// Top-level fields the model does not name, such as Docker's `container_config`.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Defaults for containers run from the image: the `config` object of an image config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    /// User name or UID, with an optional group, that the process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Exposed ports such as `80/tcp`, stored in JSON as an object with empty values.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "key_set")]
    pub exposed_ports: Option<BTreeSet<String>>,
    /// Environment as `NAME=value` entries, in declaration order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint argument vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments, appended to the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volume mount points, stored in JSON as an object with empty values.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "key_set")]
    pub volumes: Option<BTreeSet<String>>,
    /// Working directory of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Image labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Signal that stops the container, such as `SIGTERM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker field telling Windows that `Cmd` and `Entrypoint` are already escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Docker-only health check, absent from the OCI spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Docker-only `ONBUILD` triggers, absent from the OCI spec: each is the instruction text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// Docker-only shell for the shell form of `RUN`, `CMD` and `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields the model does not name, such as Docker's `Hostname` or `Tty`.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Docker's health check settings. Durations are Go `time.Duration` values in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// The test: `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Time between checks, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Time after which one check counts as failed, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Start-up time during which failures do not count, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// Time between checks during the start period, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// Consecutive failures after which the container is unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Fields the model does not name.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The `rootfs` object: the uncompressed digests of the layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digest of each layer's uncompressed tar stream, base layer first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        Self {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

/// One entry of the image history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Time of the step, an RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command of the step, as Docker writes it (`RUN /bin/sh -c ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Free-form comment, such as `buildkit.dockerfile.v0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step added no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
    /// Fields the model does not name.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ImageConfig {
    /// Creates the config of an empty image (`FROM scratch`) for `platform`.
    pub fn scratch(platform: &Platform) -> Self {
        Self {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            ..Self::default()
        }
    }

    /// Parses an image config from JSON.
    pub fn from_json(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes)
    }

    /// Serializes the config to compact JSON. The same config always gives the same bytes,
    /// because named fields have a fixed order and every map is sorted by key.
    pub fn to_json(&self) -> Vec<u8> {
        match serde_json::to_vec(self) {
            Ok(bytes) => bytes,
            // Every field serializes to JSON: strings, numbers, sequences and string-keyed maps.
            Err(error) => unreachable!("an image config serializes to JSON: {error}"),
        }
    }

    /// Returns the platform the image runs on.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }

    /// Returns the config of a child image built `FROM` this one, and the base's `ONBUILD`
    /// triggers that the child build runs first.
    ///
    /// As Docker does, the child keeps every other field, unknown ones included, and drops the
    /// triggers so they do not run again in a grandchild.
    pub fn derive_child(&self) -> (Self, Vec<String>) {
        let mut child = self.clone();
        let triggers = child.config.on_build.take().unwrap_or_default();
        (child, triggers)
    }
}

/// Reads JSON `null` as the default value, because Go writes a nil map, slice or pointer as
/// `null` where other writers leave the field out.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Serde support for Go's `map[string]struct{}` sets, written as `{"key": {}}`.
mod key_set {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    #[derive(Serialize)]
    struct Empty {}

    pub(super) fn serialize<S: Serializer>(
        set: &Option<BTreeSet<String>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let map: Option<BTreeMap<&str, Empty>> = set
            .as_ref()
            .map(|set| set.iter().map(|key| (key.as_str(), Empty {})).collect());
        map.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<BTreeSet<String>>, D::Error> {
        let map = Option::<BTreeMap<String, Value>>::deserialize(deserializer)?;
        Ok(map.map(|map| map.into_keys().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_CONFIG: &str = r#"{
        "architecture": "amd64",
        "config": {
            "Hostname": "",
            "User": "app",
            "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
            "Env": ["PATH=/usr/bin", "A=1"],
            "Cmd": ["serve"],
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000, "Retries": 3},
            "ArgsEscaped": true,
            "Volumes": {"/data": {}},
            "WorkingDir": "/srv",
            "Entrypoint": null,
            "OnBuild": ["RUN echo child"],
            "Labels": {"b": "2", "a": "1"},
            "StopSignal": "SIGQUIT",
            "Shell": ["/bin/bash", "-c"]
        },
        "container_config": {"Cmd": ["/bin/sh"]},
        "created": "2024-01-02T03:04:05.123456789Z",
        "docker_version": "24.0.7",
        "history": [
            {"created": "2024-01-02T03:04:05Z", "created_by": "ADD file:abc in /", "empty_layer": false},
            {"created_by": "CMD [\"serve\"]", "empty_layer": true, "comment": "buildkit.dockerfile.v0"}
        ],
        "os": "linux",
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]
        }
    }"#;

    #[test]
    fn docker_only_fields_survive_round_trip() {
        let config = ImageConfig::from_json(DOCKER_CONFIG.as_bytes()).unwrap();
        let again = ImageConfig::from_json(&config.to_json()).unwrap();
        assert_eq!(again, config);

        let runtime = &again.config;
        assert_eq!(
            runtime.shell,
            Some(vec!["/bin/bash".to_owned(), "-c".to_owned()])
        );
        assert_eq!(runtime.on_build, Some(vec!["RUN echo child".to_owned()]));
        assert_eq!(runtime.args_escaped, Some(true));
        let healthcheck = runtime.healthcheck.as_ref().unwrap();
        assert_eq!(healthcheck.interval, Some(30_000_000_000));
        assert_eq!(healthcheck.retries, Some(3));
    }

    #[test]
    fn unknown_fields_are_kept() {
        let config = ImageConfig::from_json(DOCKER_CONFIG.as_bytes()).unwrap();
        assert_eq!(config.extra["docker_version"], "24.0.7");
        assert!(config.extra.contains_key("container_config"));
        assert_eq!(config.config.extra["Hostname"], "");

        let written: Value = serde_json::from_slice(&config.to_json()).unwrap();
        assert_eq!(written["docker_version"], "24.0.7");
        assert_eq!(written["container_config"]["Cmd"][0], "/bin/sh");
        assert_eq!(written["config"]["Hostname"], "");
    }

    #[test]
    fn sets_serialize_as_empty_objects() {
        let config = ImageConfig::from_json(DOCKER_CONFIG.as_bytes()).unwrap();
        let written: Value = serde_json::from_slice(&config.to_json()).unwrap();
        assert_eq!(
            written["config"]["ExposedPorts"]["443/tcp"],
            serde_json::json!({})
        );
        assert_eq!(written["config"]["Volumes"]["/data"], serde_json::json!({}));
    }

    #[test]
    fn null_entrypoint_reads_as_absent() {
        let config = ImageConfig::from_json(DOCKER_CONFIG.as_bytes()).unwrap();
        assert_eq!(config.config.entrypoint, None);
    }

    #[test]
    fn serialization_is_deterministic() {
        let config = ImageConfig::from_json(DOCKER_CONFIG.as_bytes()).unwrap();
        let first = config.to_json();
        let reparsed = ImageConfig::from_json(&first).unwrap();
        assert_eq!(reparsed.to_json(), first);
        assert_eq!(config.clone().to_json(), first);
    }

    #[test]
    fn derive_child_moves_onbuild_triggers() {
        let base = ImageConfig::from_json(DOCKER_CONFIG.as_bytes()).unwrap();
        let (child, triggers) = base.derive_child();
        assert_eq!(triggers, vec!["RUN echo child".to_owned()]);
        assert_eq!(child.config.on_build, None);
        assert_eq!(child.config.shell, base.config.shell);
        assert_eq!(child.extra, base.extra);
        assert_eq!(child.rootfs, base.rootfs);
    }

    #[test]
    fn null_sections_read_as_empty() {
        let json = r#"{"os":"linux","architecture":"amd64","config":null,"history":null,
                       "rootfs":{"type":"layers","diff_ids":null}}"#;
        let config = ImageConfig::from_json(json.as_bytes()).unwrap();
        assert_eq!(config.config, RuntimeConfig::default());
        assert!(config.history.is_empty());
        assert!(config.rootfs.diff_ids.is_empty());
    }

    #[test]
    fn invalid_diff_id_is_rejected() {
        let json = r#"{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:xyz"]}}"#;
        assert!(ImageConfig::from_json(json.as_bytes()).is_err());
    }

    #[test]
    fn scratch_config_snapshot() {
        let platform = Platform::parse("linux/arm64/v8").unwrap();
        let mut config = ImageConfig::scratch(&platform);
        config.created = Some("1970-01-01T00:00:00Z".to_owned());
        config.config.env = Some(vec!["PATH=/usr/bin:/bin".to_owned()]);
        config.config.cmd = Some(vec!["sh".to_owned()]);
        config.config.labels = Some(BTreeMap::from([
            ("z".to_owned(), "last".to_owned()),
            ("a".to_owned(), "first".to_owned()),
        ]));
        config.config.exposed_ports = Some(BTreeSet::from(["8080/tcp".to_owned()]));
        config.config.healthcheck = Some(Healthcheck {
            test: Some(vec!["NONE".to_owned()]),
            ..Healthcheck::default()
        });
        config.history.push(History {
            created_by: Some("CMD [\"sh\"]".to_owned()),
            empty_layer: true,
            ..History::default()
        });
        let json = String::from_utf8(config.to_json()).unwrap();
        insta::assert_snapshot!(json);
    }
}
