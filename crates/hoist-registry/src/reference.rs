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
/// `docker.io/library/busybox:latest`. A registry may also be an IPv6 address in brackets,
/// with or without a port, such as `[::1]:5000`.
///
/// A reference may carry both a tag and a digest (`repository:tag@digest`). A pull then
/// requests the digest and ignores the tag, as Docker does. A push rejects such a
/// reference, see [`check_push_destination`](Self::check_push_destination).
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
    /// the content, so a tag next to it is ignored), else the tag.
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

    /// Parses `text` as a reference to push to, which names a tag or a digest but not
    /// both.
    pub fn parse_destination(text: &str) -> Result<Self, Error> {
        let reference: Self = text.parse()?;
        reference.check_push_destination()?;
        Ok(reference)
    }

    /// Checks that this reference can be pushed to. A manifest is put under one tag or one
    /// digest, so a reference with both is rejected, as skopeo does, instead of dropping
    /// the tag.
    pub fn check_push_destination(&self) -> Result<(), Error> {
        if let (Some(tag), Some(digest)) = (&self.tag, &self.digest) {
            return Err(Error::InvalidReference {
                reference: self.to_string(),
                reason: format!(
                    "a push destination cannot have both a tag and a digest; push to \
                     {registry}/{repository}:{tag} or to {registry}/{repository}@{digest}",
                    registry = self.registry,
                    repository = self.repository,
                ),
            });
        }
        Ok(())
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
        let invalid = |reason: String| Error::InvalidReference {
            reference: hoist_auth::redact_userinfo(text),
            reason,
        };
        let ipv6_registry = split_ipv6_registry(text).map_err(invalid)?;
        // oci-spec's grammar has no IPv6 hosts, so it parses the rest after `localhost/`,
        // which it takes as a registry, and the bracketed host replaces that registry.
        let parsed = match ipv6_registry {
            Some((_, rest)) => {
                oci_spec::distribution::Reference::from_str(&format!("localhost/{rest}"))
            }
            None => oci_spec::distribution::Reference::from_str(text),
        }
        .map_err(|error| invalid(error.to_string()))?;
        let registry = ipv6_registry.map_or(parsed.registry(), |(host, _)| host);
        // oci-spec reads `UPPER/case` as `docker.io/UPPER/case`; a repository name is
        // lowercase, so such a name is a mistake, never a Docker Hub repository.
        if parsed
            .repository()
            .chars()
            .any(|ch| ch.is_ascii_uppercase())
        {
            return Err(Error::InvalidReference {
                reference: hoist_auth::redact_userinfo(text),
                reason: "repository name must be lowercase".to_owned(),
            });
        }
        // oci-spec matches the tag with a Unicode-aware `\w`, but Docker's tag grammar is
        // ASCII, `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, so other letters and digits are
        // rejected here.
        if let Some(tag) = parsed.tag()
            && !tag.is_ascii()
        {
            return Err(invalid(format!(
                "invalid tag {tag:?}: expected ASCII letters, digits, '_', '.' and '-'"
            )));
        }
        // Docker rejects uppercase hex in a digest, and a registry would not find it.
        if let Some(digest) = parsed.digest()
            && digest.bytes().any(|byte| byte.is_ascii_uppercase())
        {
            return Err(invalid(format!(
                "digest {digest:?} must be lowercase, such as sha256:0123abcd..."
            )));
        }
        if let Some((_, port)) = registry.rsplit_once(':')
            && !port.contains(']')
            && port.parse::<u16>().map_or(true, |port| port == 0)
        {
            return Err(Error::InvalidReference {
                reference: hoist_auth::redact_userinfo(text),
                reason: format!("invalid registry port {port:?}: expected 1 to 65535"),
            });
        }
        Ok(Self::new(
            registry,
            parsed.repository(),
            parsed.tag(),
            parsed.digest(),
        ))
    }
}

/// Splits a reference whose registry is a bracketed IPv6 address, `[address][:port]/rest`,
/// into the registry and the rest. Returns `None` for other references, and an error
/// message when the brackets do not contain an IPv6 address or no repository follows.
fn split_ipv6_registry(text: &str) -> Result<Option<(&str, &str)>, String> {
    let Some(bracketed) = text.strip_prefix('[') else {
        return Ok(None);
    };
    let Some((address, after)) = bracketed.split_once(']') else {
        return Err("missing ']' after the IPv6 address of the registry".to_owned());
    };
    // Docker's grammar allows hex digits and colons only, so zone ids such as `%eth0` and
    // embedded IPv4 forms are rejected even though `Ipv6Addr` would read the latter.
    let only_hex_and_colons = address
        .chars()
        .all(|ch| ch.is_ascii_hexdigit() || ch == ':');
    if !only_hex_and_colons || address.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(format!(
            "invalid IPv6 address {address:?} in the registry: expected an address such as \
             [::1] or [fd00::5]"
        ));
    }
    let host_length = match after.find('/') {
        Some(slash) => 1 + address.len() + 1 + slash,
        None => {
            return Err(
                "a registry given as an IPv6 address needs a repository after it, such as \
                 [::1]:5000/app"
                    .to_owned(),
            );
        }
    };
    let (host, rest) = text.split_at(host_length);
    let port = &host[1 + address.len() + 1..];
    if !port.is_empty() && !is_port_suffix(port) {
        return Err(format!(
            "invalid text {port:?} after the IPv6 address of the registry: expected :PORT or /"
        ));
    }
    Ok(Some((host, &rest[1..])))
}

/// Tells whether `text` is `:` followed by one to five ASCII digits, the port of a registry.
pub(crate) fn is_port_suffix(text: &str) -> bool {
    text.strip_prefix(':').is_some_and(|digits| {
        (1..=5).contains(&digits.len()) && digits.bytes().all(|byte| byte.is_ascii_digit())
    })
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
    fn digest_and_tag_destination_is_rejected() {
        let digest = format!("sha256:{}", "c".repeat(64));
        let error =
            ImageReference::parse_destination(&format!("r.example/app:v1@{digest}")).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("both a tag and a digest"), "{message}");
        assert!(message.contains("r.example/app:v1 or"), "{message}");
        assert!(
            message.contains(&format!("r.example/app@{digest}")),
            "{message}"
        );

        let tagged = ImageReference::parse_destination("r.example/app:v1").unwrap();
        assert_eq!(tagged.manifest_reference(), "v1");
        let pinned = ImageReference::parse_destination(&format!("r.example/app@{digest}")).unwrap();
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.manifest_reference(), digest);
    }

    #[test]
    fn ipv6_registry_is_accepted() {
        let digest = format!("sha256:{}", "d".repeat(64));
        let cases = [
            ("[::1]:5000/x", "[::1]:5000", "x", Some("latest"), None),
            ("[::1]/team/x:v2", "[::1]", "team/x", Some("v2"), None),
            ("[fd00::5]:443/x:v1", "[fd00::5]:443", "x", Some("v1"), None),
            (
                &format!("[::1]:5000/x@{digest}"),
                "[::1]:5000",
                "x",
                None,
                Some(digest.as_str()),
            ),
        ];
        for (text, registry, repository, tag, digest) in cases {
            let reference = parse(text);
            assert_eq!(reference.registry(), registry, "{text}");
            assert_eq!(reference.api_host(), registry, "{text}");
            assert_eq!(reference.repository(), repository, "{text}");
            assert_eq!(reference.tag(), tag, "{text}");
            assert_eq!(reference.digest(), digest, "{text}");
        }
        assert_eq!(parse("[::1]:5000/x").to_string(), "[::1]:5000/x:latest");
    }

    #[test]
    fn invalid_ipv6_registry_is_rejected() {
        let cases = [
            ("[::1]:0/x", "invalid registry port"),
            ("[::1]:99999/x", "invalid registry port"),
            ("[::1]:port/x", "expected :PORT or /"),
            ("[::1]:1@127.0.0.1:5000/app", "expected :PORT or /"),
            ("[::1]:+5000/x", "expected :PORT or /"),
            ("[::1]:a:5000/x", "expected :PORT or /"),
            ("[::1]5000/x", "expected :PORT or /"),
            ("[::1/x", "missing ']'"),
            ("[::1]:5000", "needs a repository"),
            ("[not-an-address]/x", "invalid IPv6 address"),
            ("[127.0.0.1]/x", "invalid IPv6 address"),
            ("[fe80::1%eth0]/x", "invalid IPv6 address"),
            ("[::ffff:127.0.0.1]/x", "invalid IPv6 address"),
            ("[::1]:5000/UPPER", "invalid reference format"),
        ];
        for (text, expected) in cases {
            let error = text.parse::<ImageReference>().unwrap_err();
            let message = error.to_string();
            assert!(message.contains(expected), "{text}: {message}");
            let shown = hoist_auth::redact_userinfo(text);
            assert!(message.contains(&shown), "{text}: {message}");
        }
    }

    #[test]
    fn uppercase_digest_is_invalid() {
        let text = format!("registry.example/app@sha256:{}", "AB".repeat(32));
        let message = text.parse::<ImageReference>().unwrap_err().to_string();
        assert!(message.contains("must be lowercase"), "{message}");
    }

    #[test]
    fn non_ascii_tag_is_invalid() {
        for text in ["busybox:ŷ", "registry.example/app:v1é", "[::1]/app:١٢"] {
            let error = text.parse::<ImageReference>().unwrap_err();
            let message = error.to_string();
            assert!(message.contains("invalid tag"), "{text}: {message}");
            assert!(message.contains(text), "{text}: {message}");
        }
        assert_eq!(parse("app:v1_2.3-rc").tag(), Some("v1_2.3-rc"));
    }

    #[test]
    fn uppercase_first_component_is_invalid() {
        let error = "UPPER/case".parse::<ImageReference>().unwrap_err();
        assert!(error.to_string().contains("must be lowercase"), "{error}");
    }
}
