//! `.dockerignore` semantics.

use hoist_dockerfile::dockerignore::{IgnoreMatcher, ignore_file_candidates};

fn matcher(text: &str) -> IgnoreMatcher {
    IgnoreMatcher::parse(text, ".dockerignore").expect("test patterns are valid")
}

#[test]
fn star_stays_within_one_directory() {
    let ignore = matcher("*.log\n");
    assert!(ignore.is_excluded("a.log"));
    assert!(!ignore.is_excluded("dir/a.log"));
}

#[test]
fn double_star_spans_directories() {
    let ignore = matcher("**/*.log\n");
    assert!(ignore.is_excluded("a.log"));
    assert!(ignore.is_excluded("x/y/z/a.log"));
    assert!(!ignore.is_excluded("x/a.txt"));
    let ignore = matcher("docs/**\n");
    assert!(ignore.is_excluded("docs/a/b"));
    assert!(!ignore.is_excluded("src/docs"));
}

#[test]
fn leading_slash_and_dot_are_cleaned() {
    for text in ["/build\n", "./build\n", "build/\n", "build//\n"] {
        let ignore = matcher(text);
        assert!(ignore.is_excluded("build"), "{text:?}");
        assert!(ignore.is_excluded("build/out/a.o"), "{text:?}");
        assert!(!ignore.is_excluded("src/build"), "{text:?}");
    }
}

#[test]
fn last_matching_line_wins() {
    let ignore = matcher("*.md\n!README.md\n");
    assert!(ignore.is_excluded("CHANGES.md"));
    assert!(!ignore.is_excluded("README.md"));
    let ignore = matcher("!README.md\n*.md\n");
    assert!(ignore.is_excluded("README.md"));
    assert!(ignore.has_exceptions());
}

#[test]
fn exception_inside_excluded_directory() {
    let ignore = matcher("vendor\n!vendor/keep\n");
    assert!(ignore.is_excluded("vendor/other"));
    assert!(!ignore.is_excluded("vendor/keep"));
    assert!(!ignore.is_excluded("vendor/keep/file"));
}

#[test]
fn comments_and_blank_lines_ignored() {
    let ignore = matcher("# secret\n\n   \nsecret\n");
    assert!(ignore.is_excluded("secret"));
    assert!(!ignore.is_excluded("# secret"));
}

#[test]
fn question_mark_and_classes() {
    let ignore = matcher("file?.txt\nlog[0-9]\n[^a]x\n");
    assert!(ignore.is_excluded("file1.txt"));
    assert!(!ignore.is_excluded("file/.txt"));
    assert!(ignore.is_excluded("log7"));
    assert!(!ignore.is_excluded("logx"));
    assert!(ignore.is_excluded("bx"));
    assert!(!ignore.is_excluded("ax"));
}

#[test]
fn escape_makes_literal() {
    let ignore = matcher("\\*.txt\n");
    assert!(ignore.is_excluded("*.txt"));
    assert!(!ignore.is_excluded("a.txt"));
}

#[test]
fn invalid_patterns_name_line() {
    let error = IgnoreMatcher::parse("ok\n!\n", "app/.dockerignore").unwrap_err();
    assert_eq!(error.line, 2);
    insta::assert_snapshot!(error.to_string(), @r#"app/.dockerignore:2: invalid pattern "!": an exception needs a pattern after '!'"#);
    let error = IgnoreMatcher::parse("[a-\n", "app/.dockerignore").unwrap_err();
    insta::assert_snapshot!(error.to_string(), @r#"app/.dockerignore:1: invalid pattern "[a-": unterminated character class"#);
}

#[test]
fn dockerfile_specific_file_comes_first() {
    assert_eq!(
        ignore_file_candidates("build.Dockerfile"),
        ["build.Dockerfile.dockerignore", ".dockerignore"]
    );
}
