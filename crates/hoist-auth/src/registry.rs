//! Matching a registry name to the keys of a config file's `auths` map, as Docker does.
//!
//! Docker stores Docker Hub under the key `https://index.docker.io/v1/` and every other
//! registry under its host name, but files written by hand or by older tools use URLs,
//! paths and trailing slashes. Docker (`ConvertToHostname` in docker/cli 27) compares only
//! the host part: a leading `http://` or `https://` and everything from the first `/` on
//! are ignored. The port stays part of the host, so `localhost:5000` and `localhost` are
//! different registries.

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
