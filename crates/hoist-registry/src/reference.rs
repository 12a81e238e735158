//! Image references (`[registry/]repository[:tag][@digest]`) with Docker's defaults.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The registry of references that name none.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// The host that serves the registry API of [`DEFAULT_REGISTRY`].
const DEFAULT_REGISTRY_API_HOST: &str = "registry-1.docker.io";

/// A parsed image reference.
///
/// Parsing follows Docker's rules (through `oci-spec`): a first path component without a dot
/// or a colon and other than `localhost` is part of the repository, so `busybox` becomes
/// `docker.io/library/busybox:latest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageReference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageReference {
    /// Builds a reference from its parts, for a repository in a known registry.
    pub fn new(registry: &str, repository: &str, tag: Option<&str>, digest: Option<&str>) -> Self {
        Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.map(ToOwned::to_owned),
            digest: digest.map(ToOwned::to_owned),
        }
    }

    /// The registry as written, such as `docker.io` or `127.0.0.1:5000`; also the key for
    /// credentials and transport options.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) the registry API is served from: `registry-1.docker.io` for
    /// `docker.io`, else the registry itself.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// The repository, such as `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, when the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The part of a manifest URL after `/manifests/`: the digest when there is one (it pins
    /// the content), else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// Returns the same repository at `digest`, without a tag.
    pub fn with_digest(&self, digest: &str) -> Self {
        Self::new(&self.registry, &self.repository, None, Some(digest))
    }
}

/// Returns the host that serves the registry API of `registry`.
pub fn api_host(registry: &str) -> &str {
    match registry {
        DEFAULT_REGISTRY | "index.docker.io" => DEFAULT_REGISTRY_API_HOST,
        other => other,
    }
}

impl FromStr for ImageReference {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let parsed = oci_spec::distribution::Reference::from_str(text).map_err(|error| {
            Error::InvalidReference {
                reference: text.to_owned(),
                reason: error.to_string(),
            }
        })?;
        // oci-spec reads `UPPER/case` as `docker.io/UPPER/case`; a repository name is
        // lowercase, so such a name is a mistake, never a Docker Hub repository.
        if parsed
            .repository()
            .chars()
            .any(|ch| ch.is_ascii_uppercase())
        {
            return Err(Error::InvalidReference {
                reference: text.to_owned(),
                reason: "repository name must be lowercase".to_owned(),
            });
        }
        if let Some((_, port)) = parsed.registry().rsplit_once(':')
            && !port.contains(']')
            && port.parse::<u16>().map_or(true, |port| port == 0)
        {
            return Err(Error::InvalidReference {
                reference: text.to_owned(),
                reason: format!("invalid registry port {port:?}: expected 1 to 65535"),
            });
        }
        Ok(Self::new(
            parsed.registry(),
            parsed.repository(),
            parsed.tag(),
            parsed.digest(),
        ))
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ImageReference {
        text.parse().expect("valid reference")
    }

    #[test]
    fn short_name_gets_docker_hub_defaults() {
        let reference = parse("busybox");
        assert_eq!(reference.registry(), "docker.io");
        assert_eq!(reference.repository(), "library/busybox");
        assert_eq!(reference.tag(), Some("latest"));
        assert_eq!(reference.api_host(), "registry-1.docker.io");
    }

    #[test]
    fn user_repository_has_no_library_prefix() {
        let reference = parse("someone/tool:1.2");
        assert_eq!(reference.registry(), "docker.io");
        assert_eq!(reference.repository(), "someone/tool");
        assert_eq!(reference.tag(), Some("1.2"));
    }

    #[test]
    fn legacy_hub_host_is_docker_io() {
        let reference = parse("index.docker.io/library/debian:bookworm");
        assert_eq!(reference.registry(), "docker.io");
        assert_eq!(reference.api_host(), "registry-1.docker.io");
    }

    #[test]
    fn host_with_port_is_registry() {
        let reference = parse("127.0.0.1:5000/base/busybox:index");
        assert_eq!(reference.registry(), "127.0.0.1:5000");
        assert_eq!(reference.api_host(), "127.0.0.1:5000");
        assert_eq!(reference.repository(), "base/busybox");
        assert_eq!(reference.manifest_reference(), "index");
    }

    #[test]
    fn localhost_is_registry() {
        let reference = parse("localhost/app");
        assert_eq!(reference.registry(), "localhost");
        assert_eq!(reference.repository(), "app");
    }

    #[test]
    fn digest_wins_over_tag() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let reference = parse(&format!("example.com/app:1@{digest}"));
        assert_eq!(reference.tag(), Some("1"));
        assert_eq!(reference.manifest_reference(), digest);
        assert_eq!(reference.to_string(), format!("example.com/app:1@{digest}"));
    }

    #[test]
    fn uppercase_repository_is_invalid() {
        let error = "example.com/App".parse::<ImageReference>().unwrap_err();
        assert!(error.to_string().contains("example.com/App"), "{error}");
    }

    #[test]
    fn registry_port_out_of_range_is_invalid() {
        for text in ["host:99999/x", "host:0/x"] {
            let error = text.parse::<ImageReference>().unwrap_err();
            assert!(
                error.to_string().contains("invalid registry port"),
                "{error}"
            );
        }
        assert_eq!(parse("host:65535/x").registry(), "host:65535");
    }

    #[test]
    fn uppercase_first_component_is_invalid() {
        let error = "UPPER/case".parse::<ImageReference>().unwrap_err();
        assert!(error.to_string().contains("must be lowercase"), "{error}");
    }
}
