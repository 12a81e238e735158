//! Line-parser rules that BuildKit's corpus does not cover.

use hoist_dockerfile::parser::{MAX_LINE_BYTES, ParseErrorKind, parse};

fn dump(text: &str) -> String {
    parse(text, "Dockerfile")
        .expect("test Dockerfile parses")
        .dump()
}

fn error_kind(text: &str) -> ParseErrorKind {
    parse(text, "Dockerfile")
        .expect_err("test Dockerfile is invalid")
        .kind
}

#[test]
fn byte_order_mark_is_stripped() {
    let file = parse("\u{feff}# escape=`\nFROM a `\n  b\n", "Dockerfile").unwrap();
    assert_eq!(file.escape, '`');
    assert_eq!(file.dump(), "(from \"a\" \"b\")\n");
}

#[test]
fn directives_are_case_insensitive() {
    let file = parse(
        "# SYNTAX=docker/dockerfile:1\n# Check=skip=all\nFROM a\n",
        "D",
    )
    .unwrap();
    assert_eq!(
        file.directives.syntax.as_deref(),
        Some("docker/dockerfile:1")
    );
    assert_eq!(file.directives.check.as_deref(), Some("skip=all"));
}

#[test]
fn directive_after_comment_is_comment() {
    let file = parse("# hello\n# escape=`\nFROM a\n", "Dockerfile").unwrap();
    assert_eq!(file.escape, '\\');
    assert_eq!(file.directives.escape, None);
}

#[test]
fn repeated_directive_is_rejected() {
    assert_eq!(
        error_kind("# syntax=a\n# syntax=b\nFROM a\n"),
        ParseErrorKind::RepeatedDirective {
            name: "syntax".to_owned()
        }
    );
}

#[test]
fn keywords_are_case_insensitive() {
    assert_eq!(dump("from a\nRuN b\n"), "(from \"a\")\n(run \"b\")\n");
    let file = parse("from a\n", "Dockerfile").unwrap();
    assert_eq!(file.nodes[0].keyword, "from");
}

#[test]
fn continuation_allows_trailing_whitespace() {
    assert_eq!(dump("RUN a \\  \t\n  b\n"), "(run \"a   b\")\n");
}

#[test]
fn continuation_skips_comments_and_blank_lines() {
    let file = parse("RUN a \\\n# note\n\n  b\n", "Dockerfile").unwrap();
    assert_eq!(file.dump(), "(run \"a   b\")\n");
    assert_eq!(file.warnings.len(), 1);
    assert_eq!((file.nodes[0].start_line, file.nodes[0].end_line), (1, 4));
}

#[test]
fn crlf_line_endings_are_accepted() {
    assert_eq!(
        dump("FROM a\r\nRUN b \\\r\n c\r\n"),
        "(from \"a\")\n(run \"b  c\")\n"
    );
}

#[test]
fn nested_onbuild_dumps_nested() {
    assert_eq!(
        dump("ONBUILD ONBUILD RUN x\n"),
        "(onbuild (onbuild (run \"x\")))\n"
    );
}

#[test]
fn unknown_keyword_keeps_empty_argument() {
    assert_eq!(dump("FETCH a b\n"), "(fetch \"\")\n");
}

#[test]
fn invalid_json_falls_back_to_shell_form() {
    let file = parse("CMD ['a']\nCOPY [\"a\" b\n", "Dockerfile").unwrap();
    assert!(!file.nodes[0].json);
    assert_eq!(file.nodes[0].args, ["['a']"]);
    assert_eq!(file.nodes[1].args, ["[\"a\"", "b"]);
}

#[test]
fn overlong_line_is_rejected() {
    let text = format!("FROM a\nRUN {}\n", "x".repeat(MAX_LINE_BYTES));
    let error = parse(&text, "Dockerfile").unwrap_err();
    assert_eq!(error.line, 2);
    assert!(matches!(error.kind, ParseErrorKind::LineTooLong { .. }));
}
