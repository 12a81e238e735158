//! Entry points shared by the fuzz targets in `fuzz/` and the tests that replay their
//! corpora, so that both exercise the same code.

use crate::auth::{Challenge, parse_challenge};
use crate::reference::ImageReference;
use crate::retry::{RetryPolicy, parse_retry_after};

/// Feeds `data` to the parsers of text that a Dockerfile, a flag or a registry controls:
/// image references, push destinations, `WWW-Authenticate` challenges and `Retry-After`
/// values. Bytes that are not UTF-8 reach the header parsers with replacement characters.
pub fn registry_bytes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_reference(&text);
    check_destination(&text);
    check_challenge(&text);
    check_retry_after(&text);
}

/// Parses `text` as an image reference. A parsed reference must have a well-formed
/// registry and tag, and its text form must parse again to an equal reference.
fn check_reference(text: &str) {
    let reference = match text.parse::<ImageReference>() {
        Ok(reference) => reference,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    check_registry(&reference);
    check_tag(&reference);
    assert!(
        !reference.repository().is_empty(),
        "{text:?} parsed with an empty repository"
    );
    assert!(
        !reference.manifest_reference().is_empty(),
        "{text:?} parsed with an empty manifest reference"
    );

    let displayed = reference.to_string();
    let reparsed = displayed
        .parse::<ImageReference>()
        .unwrap_or_else(|error| panic!("{text:?} displays as {displayed:?}: {error}"));
    assert_eq!(
        reparsed, reference,
        "{text:?} displays as {displayed:?}, which parses to another reference"
    );
}

/// Checks that the registry of a parsed reference is a host name or address with an
/// optional port: it becomes part of a URL and a credential lookup key.
fn check_registry(reference: &ImageReference) {
    let registry = reference.registry();
    assert!(!registry.is_empty(), "{reference:?} has an empty registry");
    for character in registry.chars() {
        assert!(
            character != '@'
                && character != '/'
                && !character.is_whitespace()
                && !character.is_control(),
            "registry {registry:?} contains {character:?}"
        );
    }
}

/// Checks that a tag follows Docker's grammar, `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` in
/// ASCII, because it is sent in a manifest URL.
fn check_tag(reference: &ImageReference) {
    let Some(tag) = reference.tag() else {
        return;
    };
    let is_tag_byte = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_';
    assert!(
        (1..=128).contains(&tag.len()),
        "tag {tag:?} has {} bytes",
        tag.len()
    );
    assert!(
        is_tag_byte(tag.as_bytes()[0]),
        "tag {tag:?} has an invalid first character"
    );
    assert!(
        tag.bytes()
            .all(|byte| is_tag_byte(byte) || byte == b'.' || byte == b'-'),
        "tag {tag:?} contains a character outside [A-Za-z0-9_.-]"
    );
}

/// Parses `text` as a push destination, which must be a reference without both a tag and
/// a digest.
fn check_destination(text: &str) {
    let parsed = text.parse::<ImageReference>();
    match ImageReference::parse_destination(text) {
        Ok(destination) => {
            assert!(
                destination.tag().is_none() || destination.digest().is_none(),
                "destination {text:?} has both a tag and a digest"
            );
            assert_eq!(
                parsed.ok(),
                Some(destination),
                "{text:?} parses differently as a reference and as a destination"
            );
        }
        Err(error) => {
            let _ = error.to_string();
            if let Ok(reference) = parsed {
                assert!(
                    reference.tag().is_some() && reference.digest().is_some(),
                    "destination {text:?} is rejected with neither both a tag and a digest: \
                     {error}"
                );
            }
        }
    }
}

/// Parses `text` as a `WWW-Authenticate` value. A Bearer challenge must come from a header
/// that names that scheme.
fn check_challenge(text: &str) {
    if let Some(Challenge::Bearer { .. }) = parse_challenge(text) {
        let scheme = text.trim().split(' ').next().unwrap_or_default();
        assert!(
            scheme.eq_ignore_ascii_case("bearer"),
            "{text:?} parsed as a Bearer challenge"
        );
    }
}

/// Parses `text` as a `Retry-After` value. A parsed wait must be the number of seconds
/// written, and the backoff computed from it must stay within the policy's maximum.
fn check_retry_after(text: &str) {
    let Some(wait) = parse_retry_after(Some(text)) else {
        return;
    };
    assert_eq!(
        text.trim().parse::<u64>().ok(),
        Some(wait.as_secs()),
        "{text:?} parsed as {wait:?}"
    );
    let policy = RetryPolicy::default();
    assert!(policy.backoff(1, Some(wait)) <= policy.max_backoff);
}
