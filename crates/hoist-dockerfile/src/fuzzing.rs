//! Entry points shared by the fuzz targets in `fuzz/` and the tests that
//! replay their corpora, so that both exercise the same code.

use std::collections::BTreeMap;

use crate::shell::Lexer;
use crate::stages::{BuildOptions, Platform};

/// Parses `data` as a Dockerfile, renders its dump, types its instructions
/// and resolves its stages.
pub fn parse_bytes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Errors are rendered too, so that the fuzzer also runs the escaping of
    // the values they show.
    let dockerfile = match crate::parser::parse(text, "fuzz") {
        Ok(dockerfile) => dockerfile,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let _ = dockerfile.dump();
    let instructions = match crate::instructions::instructions(&dockerfile) {
        Ok(instructions) => instructions,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let platform = Platform {
        os: "linux".to_owned(),
        architecture: "amd64".to_owned(),
        variant: String::new(),
    };
    let options = BuildOptions {
        build_args: BTreeMap::from([("A".to_owned(), "x".to_owned())]),
        target: None,
        target_platform: platform.clone(),
        build_platform: platform,
    };
    if let Err(error) = crate::stages::resolve("fuzz", dockerfile.escape, &instructions, &options) {
        let _ = error.to_string();
    }
}

/// Expands `data` as a shell word. The first byte picks the escape
/// character and the lexer switches; the rest is the word.
pub fn expand_bytes(data: &[u8]) {
    let Some((&switches, word)) = data.split_first() else {
        return;
    };
    let Ok(word) = std::str::from_utf8(word) else {
        return;
    };
    let lexer = Lexer {
        escape: if switches & 1 == 0 { '\\' } else { '`' },
        raw_quotes: switches & 2 != 0,
        raw_escapes: switches & 4 != 0,
        skip_unset: switches & 8 != 0,
    };
    let env: BTreeMap<String, String> = [("A", "a b"), ("EMPTY", ""), ("PATH", "/usr/bin:/bin")]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    if let Err(error) = lexer.process(word, &env) {
        let _ = error.to_string();
    }
}

/// Parses the first line of `data` as an ignore file's path to test and the
/// rest as the ignore file, then matches the path.
pub fn dockerignore_bytes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, patterns) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(matcher) = crate::dockerignore::IgnoreMatcher::parse(patterns, "fuzz") {
        let _ = matcher.is_excluded(path);
    }
}
