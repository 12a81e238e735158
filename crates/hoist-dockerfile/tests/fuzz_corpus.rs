//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the
//! same functions the fuzz targets call, so that every input that once
//! found new code paths keeps running without a panic.

use std::collections::BTreeMap;
use std::path::Path;

use hoist_dockerfile::fuzzing::{dockerignore_bytes, expand_bytes, parse_bytes};
use hoist_dockerfile::shell::{ExpandErrorKind, Lexer};

fn replay(target: &str, run: fn(&[u8])) {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&directory).expect("corpus directory is readable");
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("corpus entry is readable").path();
        let data = std::fs::read(&path).expect("corpus file is readable");
        run(&data);
        count += 1;
    }
    assert!(count > 0, "{} has no inputs", directory.display());
}

#[test]
fn parse_corpus_replays() {
    replay("parse", parse_bytes);
}

#[test]
fn expand_corpus_replays() {
    replay("expand", expand_bytes);
}

#[test]
fn dockerignore_corpus_replays() {
    replay("dockerignore", dockerignore_bytes);
}

/// The expand target once spent 11 seconds on this input, because nested
/// `${A///?...}` replacements multiplied the length of their output.
#[test]
fn nested_replacement_input_is_bounded() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz/expand-nested-replacements");
    let data = std::fs::read(path).expect("regression input is readable");
    let word = std::str::from_utf8(&data[1..]).expect("regression input is UTF-8");
    let env: BTreeMap<String, String> = [("A", "a b"), ("EMPTY", ""), ("PATH", "/usr/bin:/bin")]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    let outcome = Lexer::new('\\').process(word, &env);
    assert_eq!(
        outcome.map_err(|error| error.kind),
        Err(ExpandErrorKind::TooLong)
    );
    expand_bytes(&data);
}
