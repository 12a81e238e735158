//! The line reader: directives, comments, continuations and heredoc bodies.

use super::args::build_node;
use super::{
    Directives, Dockerfile, MAX_LINE_BYTES, Node, ParseError, ParseErrorKind, Warning, heredoc,
};

const BOM: char = '\u{feff}';

/// State of one parse run over a text.
pub(super) struct Parser<'a> {
    file: &'a str,
    lines: std::iter::Peekable<std::str::SplitInclusive<'a, char>>,
    /// Number of physical lines read so far, so also the 1-based number of
    /// the line read last.
    line_number: usize,
    escape: char,
    directives: Directives,
    directives_done: bool,
    warnings: Vec<Warning>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str, file: &'a str) -> Self {
        Self {
            file,
            lines: text.split_inclusive('\n').peekable(),
            line_number: 0,
            escape: '\\',
            directives: Directives::default(),
            directives_done: false,
            warnings: Vec::new(),
        }
    }

    pub(super) fn run(mut self) -> Result<Dockerfile, ParseError> {
        let mut nodes = Vec::new();
        while let Some(node) = self.next_instruction()? {
            nodes.push(node);
        }
        if nodes.is_empty() {
            return Err(self.error(self.line_number.max(1), ParseErrorKind::NoInstructions));
        }
        Ok(Dockerfile {
            file: self.file.to_owned(),
            nodes,
            directives: self.directives,
            escape: self.escape,
            warnings: self.warnings,
        })
    }

    fn error(&self, line: usize, kind: ParseErrorKind) -> ParseError {
        ParseError {
            file: self.file.to_owned(),
            line,
            kind,
        }
    }

    /// Reads the next physical line, with its line ending.
    fn next_line(&mut self) -> Result<Option<&'a str>, ParseError> {
        let Some(line) = self.lines.next() else {
            return Ok(None);
        };
        self.line_number += 1;
        let length = trim_newline(line).len();
        if length > MAX_LINE_BYTES {
            return Err(self.error(self.line_number, ParseErrorKind::LineTooLong { length }));
        }
        Ok(Some(line))
    }

    /// Reads lines up to the end of the next instruction and builds its node.
    fn next_instruction(&mut self) -> Result<Option<Node>, ParseError> {
        loop {
            let Some(raw) = self.next_line()? else {
                return Ok(None);
            };
            let raw = if self.line_number == 1 {
                raw.strip_prefix(BOM).unwrap_or(raw)
            } else {
                raw
            };
            let content = trim_newline(raw).trim_start();
            self.read_directive(content)?;
            if is_comment(content) {
                continue;
            }

            let start_line = self.line_number;
            let (first, end_of_line) = trim_continuation(content, self.escape);
            if end_of_line && first.is_empty() {
                continue;
            }
            let line = self.join_continuation_lines(first, end_of_line)?;
            let mut node =
                build_node(&line, self.escape, 0).map_err(|kind| self.error(start_line, kind))?;
            if node.can_contain_heredoc() && line.contains("<<") {
                node.heredocs = self.read_heredocs(&line, start_line)?;
            }
            node.set_lines(start_line, self.line_number);
            return Ok(Some(node));
        }
    }

    /// Appends continuation lines to `first` until a line does not end with
    /// the escape character. Comment lines and blank lines in between are
    /// skipped; blank ones produce a warning, as in BuildKit.
    fn join_continuation_lines(
        &mut self,
        first: &str,
        mut end_of_line: bool,
    ) -> Result<String, ParseError> {
        let mut line = first.to_owned();
        let mut saw_empty_line = false;
        while !end_of_line {
            let Some(raw) = self.next_line()? else {
                break;
            };
            let content = trim_newline(raw);
            if is_comment(content) {
                continue;
            }
            if content.trim_start().is_empty() {
                saw_empty_line = true;
                continue;
            }
            let (part, end) = trim_continuation(content, self.escape);
            line.push_str(part);
            end_of_line = end;
        }
        if saw_empty_line {
            self.warnings.push(Warning {
                line: self.line_number,
                message: format!(
                    "empty continuation line found in: {}",
                    crate::error_value::escape(&line)
                ),
            });
        }
        Ok(line)
    }

    /// Reads the bodies of the heredocs that `line` opens, in order.
    fn read_heredocs(
        &mut self,
        line: &str,
        start_line: usize,
    ) -> Result<Vec<heredoc::Heredoc>, ParseError> {
        let mut heredocs =
            heredoc::heredocs_from_line(line).map_err(|kind| self.error(start_line, kind))?;
        for heredoc in &mut heredocs {
            loop {
                let Some(raw) = self.next_line()? else {
                    let name = heredoc.name.clone();
                    return Err(self.error(
                        start_line,
                        ParseErrorKind::UnterminatedHeredoc { name: name.into() },
                    ));
                };
                let mut candidate = trim_newline(raw);
                if heredoc.chomp {
                    candidate = candidate.trim_start_matches('\t');
                }
                if candidate == heredoc.name {
                    break;
                }
                heredoc.content.push_str(raw);
            }
        }
        Ok(heredocs)
    }

    /// Records a parser directive if `line` is one and directives are still
    /// allowed. The first line that is not a directive ends the block.
    fn read_directive(&mut self, line: &str) -> Result<(), ParseError> {
        if self.directives_done {
            return Ok(());
        }
        let Some((name, value)) = split_directive(line) else {
            self.directives_done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        let repeated = match name.as_str() {
            "syntax" => self.directives.syntax.replace(value.to_owned()).is_some(),
            "check" => self.directives.check.replace(value.to_owned()).is_some(),
            "escape" => {
                let escape = parse_escape_token(value)
                    .ok_or_else(|| ParseErrorKind::InvalidEscapeToken {
                        value: value.into(),
                    })
                    .map_err(|kind| self.error(self.line_number, kind))?;
                self.escape = escape;
                self.directives.escape.replace(escape).is_some()
            }
            _ => {
                self.directives_done = true;
                return Ok(());
            }
        };
        if repeated {
            return Err(self.error(self.line_number, ParseErrorKind::RepeatedDirective { name }));
        }
        Ok(())
    }
}

impl Node {
    fn set_lines(&mut self, start: usize, end: usize) {
        self.start_line = start;
        self.end_line = end;
        if let Some(child) = &mut self.child {
            child.set_lines(start, end);
        }
    }

    /// Returns whether heredocs are read after this instruction: `RUN`, `COPY` and
    /// `ADD` in shell form, also under `ONBUILD`.
    fn can_contain_heredoc(&self) -> bool {
        let target = match &self.child {
            Some(child) if self.command() == "onbuild" => child,
            _ => self,
        };
        matches!(target.command().as_str(), "run" | "copy" | "add") && !target.json
    }
}

fn parse_escape_token(value: &str) -> Option<char> {
    match value {
        "\\" => Some('\\'),
        "`" => Some('`'),
        _ => None,
    }
}

/// Splits `# name = value` into its name and value. The name is an ASCII
/// letter followed by letters or digits; the value is trimmed and non-empty.
fn split_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let name_end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let name = &rest[..name_end];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[name_end..]
        .trim_start_matches(is_go_regexp_space)
        .strip_prefix('=')?
        .trim_matches(is_go_regexp_space);
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

/// Returns whether `c` is in Go's regexp class `\s`.
fn is_go_regexp_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a trailing line-continuation escape (optionally followed by spaces
/// or tabs) and returns whether the logical line ends here. An escape that is
/// itself escaped (`\\` at the end) is not a continuation.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(escape)
        && (before.is_empty() || !before.ends_with(escape))
    {
        return (before, false);
    }
    (line, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_keeps_char_before_escape() {
        assert_eq!(trim_continuation("a \\  ", '\\'), ("a ", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a\\\\", '\\'), ("a\\\\", true));
        assert_eq!(trim_continuation("a`", '`'), ("a", false));
        assert_eq!(trim_continuation("a\\", '`'), ("a\\", true));
    }

    #[test]
    fn directive_syntax_is_lenient_on_spaces() {
        assert_eq!(split_directive("# escape = `"), Some(("escape", "`")));
        assert_eq!(split_directive("#ESCAPE=\\"), Some(("ESCAPE", "\\")));
        assert_eq!(split_directive("# escape ="), None);
        assert_eq!(split_directive("# 1x=y"), None);
        assert_eq!(split_directive("# some comment"), None);
    }
}
