//! Heredocs in `RUN`, `COPY` and `ADD`: `<<EOF`, `<<-EOF`, quoted delimiters
//! and file-descriptor prefixes such as `3<<EOF`.

use serde::Serialize;

use super::ParseErrorKind;
use crate::shell::{EmptyEnv, Lexer};

/// A heredoc body attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// Delimiter word, quotes removed.
    pub name: String,
    /// File descriptor written before `<<` (0 when absent).
    pub file_descriptor: u64,
    /// Whether variables in the body are expanded: false when any part of
    /// the delimiter was quoted.
    pub expand: bool,
    /// Whether `<<-` asked to strip leading tabs from body and terminator.
    pub chomp: bool,
    /// Body lines with their line endings, as written (tabs not stripped).
    /// For a `COPY` or `ADD` heredoc with `expand` set, stage resolution
    /// replaces it with the expanded body, tabs stripped and `chomp` cleared.
    pub content: String,
}

impl Heredoc {
    /// Returns the body with leading tabs removed from every line when
    /// `chomp` is set, else the body as written.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|line| line.trim_start_matches('\t'))
            .collect()
    }
}

/// Finds the heredocs that a logical line opens, in order. Words are split
/// with `\` as the escape whatever the escape directive sets, as in
/// BuildKit. A line that cannot be split opens none.
pub(super) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ParseErrorKind> {
    let lexer = Lexer {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        ..Lexer::new('\\')
    };
    let words = lexer.process_words(line, &EmptyEnv).unwrap_or_default();
    let mut heredocs = Vec::new();
    for word in words {
        if let Some(heredoc) = parse_heredoc(&word)? {
            heredocs.push(heredoc);
        }
    }
    Ok(heredocs)
}

/// Parses a word of the form `[fd]<<[-]delimiter`; other words give `None`.
pub(super) fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, ParseErrorKind> {
    let digits_end = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let Some(rest) = word[digits_end..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let invalid = |source| ParseErrorKind::InvalidHeredoc {
        word: word.into(),
        source: Box::new(source),
    };
    let plain = Lexer {
        skip_unset: true,
        ..Lexer::new('\\')
    };
    let words = plain.process_words(rest, &EmptyEnv).map_err(invalid)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw = Lexer {
        raw_quotes: true,
        ..plain
    };
    let raw_words = raw.process_words(rest, &EmptyEnv).map_err(invalid)?;
    let [raw_name] = raw_words.as_slice() else {
        return Ok(None);
    };
    let quotes = |text: &str| text.chars().filter(|&c| c == '\'' || c == '"').count();
    Ok(Some(Heredoc {
        name: name.clone(),
        // An out-of-range descriptor reads as 0, as in BuildKit.
        file_descriptor: word[..digits_end].parse().unwrap_or(0),
        expand: quotes(name) == quotes(raw_name),
        chomp,
        content: String::new(),
    }))
}
