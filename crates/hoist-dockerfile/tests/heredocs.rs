//! Heredoc rules of the line parser.

use hoist_dockerfile::parser::{ParseErrorKind, parse};

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
        ParseErrorKind::UnterminatedHeredoc {
            name: "EOF".to_owned()
        }
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
