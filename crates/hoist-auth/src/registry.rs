//! Matching a registry name to the keys of a config file's `auths` map, as Docker does.
//!
//! Docker stores Docker Hub under the key `https://index.docker.io/v1/` and every other
//! registry under its host name, but files written by hand or by older tools use URLs,
//! paths and trailing slashes. Docker (`ConvertToHostname` in docker/cli 27) compares only
//! the host part: a leading `http://` or `https://` and everything from the first `/` on
//! are ignored. The port stays part of the host, so `localhost:5000` and `localhost` are
//! different registries.

use std::net::Ipv6Addr;

use crate::error::Error;

/// The key under which Docker stores Docker Hub credentials.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The host names that all mean Docker Hub.
const DOCKER_HUB_HOSTS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// Returns the host (with port) that a registry name or config key refers to, in lower
/// case, with every Docker Hub alias mapped to `index.docker.io`.
///
/// Host names are compared without regard to case because DNS names are
/// case-insensitive; Docker itself compares them byte for byte.
pub fn registry_host(name: &str) -> String {
    let without_scheme = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"))
        .unwrap_or(name);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_ascii_lowercase();
    if DOCKER_HUB_HOSTS.contains(&host.as_str()) {
        "index.docker.io".to_owned()
    } else {
        host
    }
}

/// Returns the `auths` key that Docker writes for a registry: `https://index.docker.io/v1/`
/// for Docker Hub, the host (with port) for every other registry.
pub fn config_key(name: &str) -> String {
    let host = registry_host(name);
    if host == "index.docker.io" {
        DOCKER_HUB_KEY.to_owned()
    } else {
        host
    }
}

/// Returns true when a config key and a registry name refer to the same registry.
pub fn same_registry(key: &str, registry: &str) -> bool {
    registry_host(key) == registry_host(registry)
}

/// Checks that `name` is a registry that `docker login` can log in to. That is a host name
/// or an IPv4 address with an optional port (`registry.example`, `localhost:5000`), or a
/// bracketed IPv6 address with an optional port (`[::1]:5000`). Any of those may follow
/// `https://` or `http://`. A path after the host is allowed and ignored, as Docker ignores
/// it (`https://index.docker.io/v1/`).
///
/// Host names follow the domain grammar of image references: dot-separated labels of ASCII
/// letters, digits and inner hyphens.
pub fn validate_registry(name: &str) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidRegistry {
        registry: redact_userinfo(name),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if redact_userinfo(name) != name {
        return Err(invalid("credentials in the name are not supported"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains whitespace or control characters"));
    }
    let without_scheme = match name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"))
    {
        Some(rest) => rest,
        None if has_scheme(name) => return Err(invalid("its scheme is not https:// or http://")),
        None => name,
    };
    let host_and_port = without_scheme.split('/').next().unwrap_or_default();
    check_host_and_port(host_and_port).map_err(invalid)
}

/// Returns `text`, a registry name, URL or image reference, with a user name and password
/// before its host (`user:secret@host/...`) replaced by `***`, so that an error can show it.
///
/// An `@` that introduces a digest (`repo@sha256:...`, `repo:tag@sha256:...`) is kept.
pub fn redact_userinfo(text: &str) -> String {
    let (scheme, rest) = match text.find("://") {
        Some(end) => text.split_at(end + 3),
        None => ("", text),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text.to_owned();
    };
    if is_digest(&rest[at + 1..]) {
        return text.to_owned();
    }
    format!("{scheme}***{}", &rest[at..])
}

/// Tells whether `text` reads `algorithm:hex`, the form of a digest.
fn is_digest(text: &str) -> bool {
    text.split_once(':').is_some_and(|(algorithm, hex)| {
        !algorithm.is_empty()
            && algorithm.bytes().all(|byte| {
                byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'.' | b'_' | b'-')
            })
            && !hex.is_empty()
            && hex.bytes().all(|byte| byte.is_ascii_hexdigit())
    })
}

/// Tells whether `name` starts with a URL scheme (`ftp://`), which would otherwise be read
/// as a host.
fn has_scheme(name: &str) -> bool {
    name.split_once("://")
        .is_some_and(|(scheme, _)| !scheme.is_empty() && !scheme.contains('/'))
}

/// Checks `host`, `host:port` or `[ipv6]:port`, and returns the reason it is invalid.
fn check_host_and_port(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("it has no host name");
    }
    let port = if let Some(bracketed) = text.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or("the IPv6 address has no closing bracket")?;
        address
            .parse::<Ipv6Addr>()
            .map_err(|_| "the address in brackets is not an IPv6 address")?;
        match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("only a port may follow ']'")?,
            ),
        }
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        if port.is_some_and(|port| port.contains(':')) {
            return Err("an IPv6 address must be in brackets, as in [::1]:5000");
        }
        if !is_domain(host) {
            return Err("the host is not a DNS name or an IP address");
        }
        port
    };
    match port {
        Some(port) if !is_port(port) => Err("the port is not a number from 1 to 65535"),
        _ => Ok(()),
    }
}

/// Tells whether `host` is dot-separated labels of letters, digits and inner hyphens, each
/// at most 63 characters long, as DNS allows. IPv4 addresses have this form too.
fn is_domain(host: &str) -> bool {
    let is_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    host.len() <= 253 && host.split('.').all(is_label)
}

fn is_port(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u16>().is_ok_and(|port| port > 0)
}

/// Picks the key for `registry` among `keys`: an exact match first, otherwise
/// the first key (in file order) that names the same host.
// TODO: podman also accepts repository keys such as `quay.io/team` and picks the longest
// one that prefixes the image; hoist looks up registries, not images, so it matches such
// keys by host only.
pub(crate) fn find_key<'a>(
    keys: impl IntoIterator<Item = &'a str> + Clone,
    registry: &str,
) -> Option<&'a str> {
    keys.clone()
        .into_iter()
        .find(|key| *key == registry)
        .or_else(|| keys.into_iter().find(|key| same_registry(key, registry)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        let cases = [
            (
                "https://ci:S3cret@registry.example/v2/",
                "https://***@registry.example/v2/",
            ),
            (
                "ci:S3cret@127.0.0.1:5000/app:v1",
                "***@127.0.0.1:5000/app:v1",
            ),
            ("ci@registry.example", "***@registry.example"),
            ("registry.example/app:v1", "registry.example/app:v1"),
        ];
        for (text, expected) in cases {
            assert_eq!(redact_userinfo(text), expected, "{text}");
        }
        for kept in [
            format!("busybox@{digest}"),
            format!("busybox:1.36@{digest}"),
        ] {
            assert_eq!(redact_userinfo(&kept), kept);
        }
    }

    #[test]
    fn registry_with_credentials_is_rejected() {
        let error = validate_registry("https://ci:S3cret@registry.example/").unwrap_err();
        let message = error.to_string();
        assert!(!message.contains("S3cret"), "{message}");
        assert!(message.contains("credentials in the name"), "{message}");
    }

    #[test]
    fn docker_hub_aliases_are_one_registry() {
        let aliases = [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "https://index.docker.io/v1/",
            "https://index.docker.io/v1",
            "http://docker.io",
        ];

        for alias in aliases {
            assert_eq!(registry_host(alias), "index.docker.io", "{alias}");
            assert_eq!(config_key(alias), DOCKER_HUB_KEY, "{alias}");
        }
    }

    #[test]
    fn scheme_path_and_slash_match_host() {
        let keys = [
            "myreg.example",
            "myreg.example/",
            "https://myreg.example",
            "https://myreg.example/",
            "http://myreg.example/v2/",
            "myreg.example/team/app",
            "MyReg.Example",
        ];

        for key in keys {
            assert!(same_registry(key, "myreg.example"), "{key}");
        }
    }

    #[test]
    fn port_is_part_of_host() {
        assert!(!same_registry("localhost:5000", "localhost"));
        assert!(!same_registry("localhost", "localhost:5000"));
        assert!(!same_registry("https://localhost:5000/", "localhost:5001"));
        assert!(same_registry("https://localhost:5000/", "localhost:5000"));
    }

    #[test]
    fn other_hosts_do_not_match() {
        assert!(!same_registry("myreg.example.org", "myreg.example"));
        assert!(!same_registry("docker.io", "quay.io"));
        assert!(!same_registry("", "quay.io"));
    }

    #[test]
    fn config_key_is_host_with_port() {
        assert_eq!(config_key("https://localhost:5000/v2/"), "localhost:5000");
        assert_eq!(config_key("myreg.azurecr.io"), "myreg.azurecr.io");
    }

    #[test]
    fn docker_login_forms_are_valid() {
        let names = [
            "registry.example",
            "Registry.Example",
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "my-registry.example:443",
            "[::1]",
            "[::1]:5000",
            "[fe80::1]:65535",
            "docker.io",
            "https://index.docker.io/v1/",
            "http://registry.example:5000",
            "https://registry.example/v2/",
            "registry.example/team/app",
        ];

        for name in names {
            assert!(
                validate_registry(name).is_ok(),
                "{name}: {:?}",
                validate_registry(name)
            );
        }
    }

    #[test]
    fn odd_registry_names_are_invalid() {
        let cases = [
            ("", "it is empty"),
            ("../../etc", "not a DNS name"),
            ("..", "not a DNS name"),
            (".", "not a DNS name"),
            ("/etc/passwd", "no host name"),
            ("https:///", "no host name"),
            ("registry example", "whitespace"),
            (" registry.example", "whitespace"),
            ("registry.example\n", "whitespace"),
            ("reg\u{1b}istry", "control characters"),
            ("ftp://registry.example", "scheme"),
            ("unix:///run/docker.sock", "scheme"),
            ("HTTPS://registry.example", "scheme"),
            ("registry_1.example", "not a DNS name"),
            ("-registry.example", "not a DNS name"),
            ("registry.example.", "not a DNS name"),
            ("user@registry.example", "credentials in the name"),
            ("registry.example?x=1", "not a DNS name"),
            ("registry.example:", "port"),
            ("registry.example:0", "port"),
            ("registry.example:65536", "port"),
            ("registry.example:http", "port"),
            ("::1", "brackets"),
            ("fe80::1:5000", "brackets"),
            ("[::1", "closing bracket"),
            ("[registry.example]:5000", "not an IPv6 address"),
            ("[::1]5000", "only a port"),
        ];

        for (name, reason) in cases {
            let error = validate_registry(name).expect_err(name);
            assert!(
                matches!(error, Error::InvalidRegistry { .. }),
                "{name}: {error:?}"
            );
            let message = error.to_string();
            assert!(message.contains(reason), "{name}: {message}");
        }
    }

    #[test]
    fn long_label_is_invalid() {
        let label = "a".repeat(64);

        assert!(validate_registry(&"a".repeat(63)).is_ok());
        assert!(validate_registry(&format!("{label}.example")).is_err());
    }

    #[test]
    fn find_key_prefers_exact_match() {
        let keys = ["https://myreg.example/", "myreg.example"];

        assert_eq!(find_key(keys, "myreg.example"), Some("myreg.example"));
        assert_eq!(find_key(keys, "myreg.example:443"), None);
        assert_eq!(
            find_key(keys, "http://myreg.example"),
            Some("https://myreg.example/")
        );
    }
}
