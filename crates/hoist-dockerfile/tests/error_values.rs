//! Values from the Dockerfile in error messages: control and invisible
//! characters escaped, long values truncated to `MAX_SHOWN_CHARS` characters, and
//! the whole value kept in the error.

use hoist_dockerfile::error_value::MAX_SHOWN_CHARS;
use hoist_dockerfile::instructions::{InstructionErrorKind, instructions};
use hoist_dockerfile::parser::{ParseError, parse};
use hoist_dockerfile::shell::ExpandErrorKind;
use hoist_dockerfile::stages::{BuildOptions, Platform, StageErrorKind, resolve};

/// Returns the first error that checking `text` finds, as the checker
/// prints it.
fn first_error(text: &str) -> String {
    let file = match parse(text, "Dockerfile") {
        Ok(file) => file,
        Err(error) => return error.to_string(),
    };
    let typed = match instructions(&file) {
        Ok(typed) => typed,
        Err(error) => return error.to_string(),
    };
    match resolve("Dockerfile", file.escape, &typed, &options()) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(error) => error.to_string(),
    }
}

fn options() -> BuildOptions {
    let platform = Platform {
        os: "linux".to_owned(),
        architecture: "amd64".to_owned(),
        variant: String::new(),
    };
    BuildOptions {
        build_args: Default::default(),
        target: None,
        target_platform: platform.clone(),
        build_platform: platform,
    }
}

fn has_control_characters(message: &str) -> bool {
    message.chars().any(|character| character.is_control())
}

#[test]
fn terminal_escape_in_keyword_escaped() {
    let message = first_error("FROM scratch\nFOO\u{1b}]0;pwned\u{7}\n");

    assert_eq!(
        message,
        "Dockerfile:2: unknown instruction: FOO\\u{1b}]0;pwned\\u{7}"
    );
    assert!(!has_control_characters(&message), "{message:?}");
}

#[test]
fn byte_order_mark_mid_file_shown() {
    let message = first_error("\u{feff}# syntax=docker/dockerfile:1\n\u{feff}FROM scratch\n");

    assert_eq!(message, "Dockerfile:2: unknown instruction: \\u{feff}FROM");
}

#[test]
fn escape_in_modifier_escaped() {
    let message = first_error("FROM scratch\nENV A=1\nARG B=${A\u{1b}[31m}\n");

    assert!(
        message.contains("unsupported modifier (\\u{1b}) in substitution"),
        "{message}"
    );
    assert!(!has_control_characters(&message), "{message:?}");
}

#[test]
fn long_expression_truncated_in_message() {
    let expression = format!("${{a:-{}", "{a:-".repeat(15_000));
    assert!(expression.len() > 60_000);

    let message = first_error(&format!("FROM scratch\nARG x={expression}\n"));

    assert!(
        message.starts_with("Dockerfile:2: failed to expand "),
        "{message}"
    );
    assert!(message.contains("\"..."), "{message}");
    assert!(
        message.len() < 2 * MAX_SHOWN_CHARS,
        "{} bytes",
        message.len()
    );
}

#[test]
fn long_image_name_truncated_in_reason() {
    let image = "A".repeat(60_000);

    let message = first_error(&format!("FROM {image}\n"));

    assert!(
        message.starts_with("Dockerfile:1: invalid value \""),
        "{message}"
    );
    assert!(
        message.len() < 3 * MAX_SHOWN_CHARS,
        "{} bytes",
        message.len()
    );
}

#[test]
fn long_heredoc_name_truncated() {
    let name = "E".repeat(1_000);
    let error: ParseError =
        parse(&format!("FROM scratch\nRUN <<{name}\necho\n"), "Dockerfile").expect_err("open");

    let message = error.to_string();

    assert!(
        message.contains(&format!("\"{}\"...", "E".repeat(MAX_SHOWN_CHARS))),
        "{message}"
    );
    assert!(
        message.len() < 2 * MAX_SHOWN_CHARS,
        "{} bytes",
        message.len()
    );
}

#[test]
fn error_keeps_whole_value() {
    let keyword = format!("FOO{}", "O".repeat(1_000));
    let file = parse(&format!("FROM scratch\n{keyword}\n"), "Dockerfile").expect("parses");

    let error = instructions(&file).expect_err("unknown instruction");

    let InstructionErrorKind::UnknownInstruction { keyword: kept } = *error.kind else {
        panic!("unexpected error {error}");
    };
    assert_eq!(kept.as_str(), keyword);
}

#[test]
fn expand_error_keeps_whole_input() {
    let file = parse("FROM scratch\nARG B=${A\u{1b}}\n", "Dockerfile").expect("parses");
    let typed = instructions(&file).expect("valid instructions");

    let error = resolve("Dockerfile", file.escape, &typed, &options()).expect_err("bad modifier");

    let StageErrorKind::Expand(expand) = *error.kind else {
        panic!("unexpected error {error}");
    };
    assert_eq!(expand.input.as_str(), "${A\u{1b}}");
    assert_eq!(
        expand.kind,
        ExpandErrorKind::UnsupportedModifier("\u{1b}".into())
    );
}

#[test]
fn continuation_warning_escaped() {
    let file = parse("FROM scratch\nRUN a \\\n\nb\u{1b}[2J\n", "Dockerfile").expect("parses");

    let warning = file.warnings.first().expect("a warning");

    assert!(
        warning.message.contains("b\\u{1b}[2J"),
        "{}",
        warning.message
    );
    assert!(
        !has_control_characters(&warning.message),
        "{:?}",
        warning.message
    );
}
