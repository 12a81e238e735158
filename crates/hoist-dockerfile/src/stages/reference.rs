//! Image reference checks, following the grammar of Docker's reference
//! parser (`ParseNormalizedNamed` in the distribution reference package):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component [ "/" path-component ]*
//! domain     := host [ ":" port ]
//! path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! ```
//!
//! The first component is a domain when it contains `.` or `:`, is
//! `localhost`, or (in recent versions of that package) has an uppercase
//! letter. So `NotLower/image` names the registry `NotLower`, while
//! `NotLower/Image` is invalid either way.

use super::values::check_digest;

/// Maximum length of a name without tag and digest, as Docker sets it.
const MAX_NAME_LENGTH: usize = 255;

/// Checks that `reference` is a valid image reference; the error gives the
/// reason.
pub(super) fn check_image_reference(reference: &str) -> Result<(), String> {
    if reference.len() == 64 && reference.bytes().all(is_lowercase_hex) {
        return Err("a 64-character hexadecimal string is an image ID, not a name".to_owned());
    }
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((name_and_tag, digest)) => (name_and_tag, Some(digest)),
        None => (reference, None),
    };
    let (name, tag) = split_tag(name_and_tag);
    let (domain, path) = split_domain(name);

    if path.is_empty() {
        return Err("missing a repository name".to_owned());
    }
    if path.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return Err(format!("repository name {path:?} must be lowercase"));
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(format!(
            "repository name is longer than {MAX_NAME_LENGTH} characters"
        ));
    }

    if let Some(domain) = domain
        && !is_domain(domain)
    {
        return Err(format!("invalid registry host {domain:?}"));
    }
    if !path.split('/').all(is_path_component) {
        return Err(format!(
            "invalid repository name {path:?}: expected lowercase letters, digits and \
             separators '.', '_', '__' or '-' between them"
        ));
    }

    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return Err(format!(
            "invalid tag {tag:?}: expected up to 128 letters, digits, '_', '.' or '-', \
             not starting with '.' or '-'"
        ));
    }
    if let Some(digest) = digest {
        check_digest(digest).map_err(|reason| format!("invalid digest {digest:?}: {reason}"))?;
    }
    Ok(())
}

fn is_lowercase_hex(byte: u8) -> bool {
    byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)
}

/// Splits `name[:tag]`; the tag starts at a colon after the last slash,
/// because a colon before it separates a registry port.
fn split_tag(name_and_tag: &str) -> (&str, Option<&str>) {
    let last_slash = name_and_tag.rfind('/').map_or(0, |slash| slash + 1);
    match name_and_tag[last_slash..].find(':') {
        Some(colon) => {
            let colon = last_slash + colon;
            (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
        }
        None => (name_and_tag, None),
    }
}

/// Splits the registry domain off a name when the first component is one.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|byte| byte.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// `host[:port]` where host is a DNS name, an IPv4 address or a bracketed
/// IPv6 address.
fn is_domain(domain: &str) -> bool {
    let (valid_host, port) = match domain.strip_prefix('[') {
        Some(bracketed) => {
            let Some((address, after)) = bracketed.split_once(']') else {
                return false;
            };
            let port = match after {
                "" => None,
                _ => match after.strip_prefix(':') {
                    Some(port) => Some(port),
                    None => return false,
                },
            };
            let valid_address =
                !address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
            (valid_address, port)
        }
        None => {
            let (host, port) = match domain.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (domain, None),
            };
            (host.split('.').all(is_domain_component), port)
        }
    };
    valid_host
        && port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn is_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or one or more `-`.
fn is_path_component(component: &str) -> bool {
    let is_alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut index = 0;
    loop {
        let start = index;
        while index < bytes.len() && is_alphanumeric(bytes[index]) {
            index += 1;
        }
        if index == start {
            return false;
        }
        if index == bytes.len() {
            return true;
        }
        let separator_start = index;
        while index < bytes.len() && !is_alphanumeric(bytes[index]) {
            index += 1;
        }
        let separator = &component[separator_start..index];
        let valid = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    bytes.first().is_some_and(|first| word(*first))
        && bytes.len() <= 128
        && bytes.iter().all(|b| word(*b) || *b == b'.' || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_docker_accepts() {
        let digest = format!("sha256:{}", "0".repeat(64));
        for reference in [
            "alpine".to_owned(),
            "alpine:3.19".to_owned(),
            "library/alpine:latest".to_owned(),
            "example.invalid/team/app_one:v1.2-rc".to_owned(),
            "localhost/app".to_owned(),
            "localhost:5000/app:tag".to_owned(),
            "127.0.0.1:5000/a/b/c".to_owned(),
            "[::1]:5000/app".to_owned(),
            "NotLower/image".to_owned(),
            "my-registry.invalid/a__b/c---d".to_owned(),
            format!("alpine@{digest}"),
            format!("alpine:3@{digest}"),
        ] {
            assert_eq!(check_image_reference(&reference), Ok(()), "{reference}");
        }
    }

    #[test]
    fn references_docker_rejects() {
        for reference in [
            ":tag",
            "NotLower/Image",
            "Alpine",
            "alpine:",
            "alpine:.tag",
            "a/b/",
            "/alpine",
            "a..b",
            "a___b",
            "-alpine",
            "alpine@sha256:abc",
            "alpine@md5:0123",
            "bad_host.invalid/app",
            "example.invalid:port/app",
            "a b",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(check_image_reference(reference).is_err(), "{reference}");
        }
        let long = format!("a/{}", "b".repeat(300));
        assert!(check_image_reference(&long).is_err());
        let long_tag = format!("alpine:{}", "t".repeat(129));
        assert!(check_image_reference(&long_tag).is_err());
    }
}
