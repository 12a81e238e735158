//! Runs BuildKit's own parser and lexer test data (see `tests/data/buildkit/`)
//! against hoist.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hoist_dockerfile::parser::parse;
use hoist_dockerfile::shell::Lexer;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/buildkit")
}

fn case_dirs(group: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(data_dir().join(group))
        .expect("test data directory is readable")
        .map(|entry| entry.expect("directory entry is readable").path())
        .collect();
    dirs.sort();
    dirs
}

fn read_text(path: &Path) -> String {
    let bytes = fs::read(path).expect("test file is readable");
    String::from_utf8(bytes).expect("test file is UTF-8")
}

#[test]
fn positive_cases_dump_like_buildkit() {
    let dirs = case_dirs("buildkit-parser/testfiles");
    assert_eq!(dirs.len(), 33);
    let mut failures = Vec::new();
    for dir in dirs {
        let text = read_text(&dir.join("Dockerfile"));
        let expected = read_text(&dir.join("result"));
        match parse(&text, "Dockerfile") {
            Ok(dockerfile) if dockerfile.dump() == expected => {}
            Ok(dockerfile) => failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{}",
                dir.display(),
                dockerfile.dump()
            )),
            Err(error) => failures.push(format!("{}: {error}", dir.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_cases_fail_to_parse() {
    let dirs = case_dirs("buildkit-parser/testfiles-negative");
    assert_eq!(dirs.len(), 4);
    for dir in dirs {
        let text = read_text(&dir.join("Dockerfile"));
        let outcome = parse(&text, "Dockerfile");
        assert!(outcome.is_err(), "{} parsed: {outcome:?}", dir.display());
    }
}

#[test]
fn line_case_tracks_start_and_end() {
    let text = read_text(&data_dir().join("buildkit-parser/testfile-line/Dockerfile"));
    let dockerfile = parse(&text, "Dockerfile").unwrap();
    assert_eq!(dockerfile.start_line(), 5);
    assert_eq!(dockerfile.end_line(), 31);
    let spans: Vec<(usize, usize)> = dockerfile
        .nodes
        .iter()
        .map(|node| (node.start_line, node.end_line))
        .collect();
    assert_eq!(spans, [(5, 5), (11, 12), (17, 31)]);
}

fn env_var_test_environment() -> BTreeMap<String, String> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect()
}

#[test]
fn env_var_test_linux_lines_expand() {
    let text = read_text(&data_dir().join("buildkit-shell/envVarTest"));
    let env = env_var_test_environment();
    let lexer = Lexer::new('\\');
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [platform, input, expected] = fields[..] else {
            panic!("malformed line {line:?}");
        };
        if platform == "W" {
            continue;
        }
        checked += 1;
        let outcome = lexer.process_word(input, &env);
        let passed = match (&outcome, expected) {
            (Err(_), "error") => true,
            (Ok(result), expected) => result == expected,
            (Err(_), _) => false,
        };
        if !passed {
            failures.push(format!("{input:?}: expected {expected:?}, got {outcome:?}"));
        }
    }
    assert_eq!(checked, 228);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn words_test_splits_like_buildkit() {
    let text = read_text(&data_dir().join("buildkit-shell/wordsTest"));
    let lexer = Lexer::new('\\');
    let mut env = BTreeMap::new();
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(entry) = line.strip_prefix("ENV ") {
            let (key, value) = entry.trim_start().split_once('=').unwrap();
            env.insert(key.to_owned(), value.to_owned());
            continue;
        }
        let (input, expected) = line.split_once('|').unwrap();
        let input = input.trim();
        let expected = expected.trim_start();
        checked += 1;
        let outcome = lexer.process_words(input, &env);
        let passed = match &outcome {
            Err(_) => expected == "error",
            Ok(words) => *words == expected.split(',').collect::<Vec<_>>(),
        };
        if !passed {
            failures.push(format!("{input:?}: expected {expected:?}, got {outcome:?}"));
        }
    }
    assert_eq!(checked, 24);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
