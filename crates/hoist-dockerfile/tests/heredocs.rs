//! Heredoc rules of the line parser, and the expansion of `COPY` and
//! `ADD` heredoc bodies.

use std::collections::BTreeMap;

use hoist_dockerfile::instructions::{InstructionKind, instructions};
use hoist_dockerfile::parser::{Heredoc, ParseError, ParseErrorKind, parse};
use hoist_dockerfile::shell::{ExpandError, ExpandErrorKind};
use hoist_dockerfile::stages::{BuildOptions, Platform, resolve};

#[test]
fn heredoc_body_follows_instruction() {
    let file = parse(
        "FROM a\nRUN <<EOF\necho hi\n# kept\nEOF\nRUN b\n",
        "Dockerfile",
    )
    .unwrap();
    let run = &file.nodes[1];
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].name, "EOF");
    assert_eq!(run.heredocs[0].content, "echo hi\n# kept\n");
    assert!(run.heredocs[0].expand);
    assert_eq!((run.start_line, run.end_line), (2, 5));
    assert_eq!(file.nodes[2].args, ["b"]);
}

#[test]
fn several_heredocs_on_one_line() {
    let text = "FROM a\nCOPY <<one <<two /dest/\nfirst\none\nsecond\ntwo\n";
    let copy = &parse(text, "Dockerfile").unwrap().nodes[1];
    let bodies: Vec<(&str, &str)> = copy
        .heredocs
        .iter()
        .map(|doc| (doc.name.as_str(), doc.content.as_str()))
        .collect();
    assert_eq!(bodies, [("one", "first\n"), ("two", "second\n")]);
    assert_eq!(copy.args, ["<<one", "<<two", "/dest/"]);
}

#[test]
fn dash_heredoc_strips_tabs() {
    let text = "FROM a\nRUN <<-EOF\n\t\techo hi\n\tEOF\n";
    let heredoc = &parse(text, "Dockerfile").unwrap().nodes[1].heredocs[0];
    assert!(heredoc.chomp);
    assert_eq!(heredoc.content, "\t\techo hi\n");
    assert_eq!(heredoc.body(), "echo hi\n");
}

#[test]
fn quoted_delimiter_disables_expansion() {
    for delimiter in ["'EOF'", "\"EOF\"", "E'O'F"] {
        let text = format!("FROM a\nRUN <<{delimiter}\n$HOME\nEOF\n");
        let heredoc = &parse(&text, "Dockerfile").unwrap().nodes[1].heredocs[0];
        assert_eq!(heredoc.name, "EOF", "{delimiter}");
        assert!(!heredoc.expand, "{delimiter}");
    }
}

#[test]
fn file_descriptor_prefix_is_kept() {
    let text = "FROM a\nRUN cat 3<<EOF\nx\nEOF\n";
    let heredoc = &parse(text, "Dockerfile").unwrap().nodes[1].heredocs[0];
    assert_eq!(heredoc.file_descriptor, 3);
    assert_eq!(heredoc.name, "EOF");
}

#[test]
fn missing_terminator_is_an_error() {
    let error = parse("FROM a\nRUN <<EOF\necho hi\n", "Dockerfile").unwrap_err();
    assert_eq!(error.line, 2);
    assert_eq!(
        error.kind,
        ParseErrorKind::UnterminatedHeredoc { name: "EOF".into() }
    );
}

#[test]
fn heredoc_under_onbuild() {
    let file = parse("FROM a\nONBUILD RUN <<EOF\nx\nEOF\n", "Dockerfile").unwrap();
    assert_eq!(file.nodes[1].heredocs[0].content, "x\n");
    assert_eq!(file.dump(), "(from \"a\")\n(onbuild (run \"<<EOF\"))\n");
}

#[test]
fn exec_form_reads_no_heredoc() {
    let file = parse("FROM a\nRUN [\"cat\", \"<<EOF\"]\nEOF\n", "Dockerfile").unwrap();
    assert!(file.nodes[1].heredocs.is_empty());
    assert_eq!(file.nodes.len(), 3);
}

#[test]
fn other_instructions_read_no_heredoc() {
    let file = parse("FROM a\nLABEL x=<<EOF\nENV y=z\n", "Dockerfile").unwrap();
    assert_eq!(file.nodes.len(), 3);
}

#[test]
fn quoted_heredoc_word_is_not_a_heredoc() {
    let file = parse("FROM a\nRUN echo \"<<EOF\"\n", "Dockerfile").unwrap();
    assert!(file.nodes[1].heredocs.is_empty());
}

/// Resolves `text` with no build args and returns the heredocs of the
/// instruction at `index` in the first stage.
fn resolved_heredocs(text: &str, index: usize) -> Vec<Heredoc> {
    let file = parse(text, "Dockerfile").expect("test Dockerfile parses");
    let typed = instructions(&file).expect("test Dockerfile has valid instructions");
    let platform = Platform {
        os: "linux".to_owned(),
        architecture: "amd64".to_owned(),
        variant: String::new(),
    };
    let options = BuildOptions {
        build_args: BTreeMap::new(),
        target: None,
        target_platform: platform.clone(),
        build_platform: platform,
    };
    let plan = resolve("Dockerfile", file.escape, &typed, &options).expect("stages resolve");
    match &plan.stages[0].instructions[index].kind {
        InstructionKind::Copy(copy) => copy.heredocs.clone(),
        InstructionKind::Add(add) => add.heredocs.clone(),
        InstructionKind::Run(run) => run.heredocs.clone(),
        other => panic!("expected COPY, ADD or RUN, got {other:?}"),
    }
}

#[test]
fn copy_heredoc_body_is_expanded() {
    let text = "FROM scratch\nENV NAME=world\nCOPY <<EOF /greeting\nhello $NAME, ${MISSING:-x}\n'$NAME' \"$NAME\" \\$NAME\nEOF\n";
    let heredocs = resolved_heredocs(text, 1);
    // Quote characters stay in the file, and BuildKit's lexer still takes
    // single-quoted text as written; the escape character still works.
    assert_eq!(
        heredocs[0].content,
        "hello world, x\n'$NAME' \"world\" $NAME\n"
    );
}

#[test]
fn add_heredoc_body_is_expanded() {
    let text = "FROM scratch\nARG V=1\nADD <<-EOF /version\n\tv$V\n\tEOF\n";
    let heredocs = resolved_heredocs(text, 1);
    assert_eq!(heredocs[0].body(), "v1\n");
    assert_eq!(heredocs[0].content, "v1\n");
}

#[test]
fn quoted_copy_heredoc_stays_literal() {
    let text = "FROM scratch\nENV NAME=world\nCOPY <<'EOF' /greeting\nhello $NAME\nEOF\n";
    let heredocs = resolved_heredocs(text, 1);
    assert_eq!(heredocs[0].content, "hello $NAME\n");
}

#[test]
fn copy_heredoc_ignores_escape_directive() {
    let text =
        "# escape=`\nFROM scratch\nENV NAME=world\nCOPY <<EOF /greeting\n\\$NAME `$NAME\nEOF\n";
    let heredocs = resolved_heredocs(text, 1);
    assert_eq!(heredocs[0].content, "$NAME `world\n");
}

#[test]
fn run_heredoc_is_left_to_the_shell() {
    let text = "FROM scratch\nENV NAME=world\nRUN <<EOF\necho $NAME\nEOF\n";
    let heredocs = resolved_heredocs(text, 1);
    assert_eq!(heredocs[0].content, "echo $NAME\n");
}

#[test]
fn invalid_delimiter_keeps_lexer_cause() {
    let lexer_error = ExpandError {
        input: "${x".to_owned().into(),
        kind: ExpandErrorKind::MissingBrace,
    };
    let error = ParseError {
        file: "Dockerfile".to_owned(),
        line: 2,
        kind: ParseErrorKind::InvalidHeredoc {
            word: "<<${x".to_owned().into(),
            source: Box::new(lexer_error.clone()),
        },
    };
    assert_eq!(
        error.to_string(),
        "Dockerfile:2: invalid heredoc delimiter \"<<${x\""
    );
    let cause = std::error::Error::source(&error).expect("the lexer error");
    assert_eq!(cause.to_string(), lexer_error.to_string());
}
