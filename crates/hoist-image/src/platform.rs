//! Target platforms (`os/architecture/variant`) and how index entries match them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A platform that an image runs on, such as `linux/amd64` or `linux/arm64/v8`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system in Go's `GOOS` terms.
    pub os: String,
    /// CPU architecture in Go's `GOARCH` terms.
    pub architecture: String,
    /// CPU variant, such as `v7` for `arm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A platform string that is not `os/architecture[/variant]`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid platform {0:?}: expected os/architecture[/variant], such as linux/amd64")]
pub struct PlatformError(pub String);

impl Platform {
    /// Parses `os/architecture[/variant]`.
    pub fn parse(text: &str) -> Result<Self, PlatformError> {
        let invalid = || PlatformError(text.to_owned());
        let mut parts = text.split('/');
        let os = parts
            .next()
            .filter(|part| !part.is_empty())
            .ok_or_else(invalid)?;
        let architecture = parts
            .next()
            .filter(|part| !part.is_empty())
            .ok_or_else(invalid)?;
        let variant = match parts.next() {
            None => None,
            Some("") => return Err(invalid()),
            Some(variant) => Some(variant.to_owned()),
        };
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Self {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant,
        })
    }

    /// Returns `linux/amd64`, the default target platform of hoist.
    pub fn linux_amd64() -> Self {
        Self {
            os: "linux".to_owned(),
            architecture: "amd64".to_owned(),
            variant: None,
        }
    }

    /// Tells whether an image for `candidate` runs on this platform.
    ///
    /// Names are normalized first, as container runtimes do: `x86_64` is `amd64`, `aarch64`
    /// is `arm64`, `arm64` without a variant is `arm64/v8`, `arm` without a variant is
    /// `arm/v7`, and `amd64` without a variant is `amd64/v1`. When this platform has no
    /// variant, any variant of the candidate matches.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let wanted = self.normalized();
        let offered = candidate.normalized();
        if wanted.os != offered.os || wanted.architecture != offered.architecture {
            return false;
        }
        self.variant.is_none() || wanted.variant == offered.variant
    }

    /// Tells whether `candidate` is this platform once names and default variants are
    /// normalized, so that a request without a variant prefers the default variant.
    pub fn matches_exactly(&self, candidate: &Platform) -> bool {
        self.normalized() == candidate.normalized()
    }

    fn normalized(&self) -> Self {
        let os = self.os.to_ascii_lowercase();
        let architecture = match self.architecture.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => "amd64".to_owned(),
            "aarch64" => "arm64".to_owned(),
            "armhf" | "armel" => "arm".to_owned(),
            "i386" => "386".to_owned(),
            other => other.to_owned(),
        };
        let default_variant = match architecture.as_str() {
            "arm64" => Some("v8"),
            "arm" => Some("v7"),
            "amd64" => Some("v1"),
            _ => None,
        };
        let variant = self
            .variant
            .as_deref()
            .or(default_variant)
            .map(str::to_ascii_lowercase);
        Self {
            os,
            architecture,
            variant,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    #[test]
    fn parse_accepts_two_or_three_parts() {
        assert_eq!(platform("linux/amd64"), Platform::linux_amd64());
        assert_eq!(platform("linux/arm/v6").variant.as_deref(), Some("v6"));
        assert_eq!(platform("linux/arm/v6").to_string(), "linux/arm/v6");
    }

    #[test]
    fn parse_rejects_malformed_strings() {
        for text in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/",
            "linux/arm/v7/x",
        ] {
            assert_eq!(
                Platform::parse(text),
                Err(PlatformError(text.to_owned())),
                "{text}"
            );
        }
    }

    #[test]
    fn default_variants_match_explicit_ones() {
        assert!(platform("linux/arm64").matches(&platform("linux/arm64/v8")));
        assert!(platform("linux/arm64/v8").matches(&platform("linux/arm64")));
        assert!(platform("linux/arm/v7").matches(&platform("linux/arm")));
        assert!(platform("linux/amd64/v1").matches(&platform("linux/amd64")));
        assert!(platform("linux/arm64").matches_exactly(&platform("linux/arm64/v8")));
    }

    #[test]
    fn missing_variant_matches_any_variant() {
        assert!(platform("linux/amd64").matches(&platform("linux/amd64/v3")));
        assert!(!platform("linux/amd64").matches_exactly(&platform("linux/amd64/v3")));
    }

    #[test]
    fn architecture_aliases_match() {
        assert!(platform("linux/amd64").matches(&platform("linux/x86_64")));
        assert!(platform("linux/arm64").matches(&platform("linux/aarch64")));
    }

    #[test]
    fn different_platforms_do_not_match() {
        assert!(!platform("linux/amd64").matches(&platform("linux/arm64")));
        assert!(!platform("linux/amd64").matches(&platform("windows/amd64")));
        assert!(!platform("linux/arm/v7").matches(&platform("linux/arm/v6")));
        assert!(!platform("linux/amd64").matches(&platform("unknown/unknown")));
    }
}
