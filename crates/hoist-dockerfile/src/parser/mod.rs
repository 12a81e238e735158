//! The line parser: turns Dockerfile text into a raw parse tree, the way
//! BuildKit's `parser.Parse` does, without evaluating anything.
//!
//! It handles parser directives, comments, line continuations, builder flags,
//! the argument shape of each instruction and heredoc bodies. Quote removal and
//! variable expansion happen later, in [`crate::shell`].

mod args;
mod dump;
mod heredoc;
mod lines;

use crate::error_value::ErrorValue;
use serde::Serialize;

pub use dump::go_quote;
pub use heredoc::Heredoc;

use crate::shell::ExpandError;

/// Maximum length of one physical line in bytes. BuildKit reads lines with a
/// Go `bufio.Scanner`, which rejects lines of 64 KiB or more. hoist keeps the
/// same limit so that both accept the same files.
pub const MAX_LINE_BYTES: usize = 64 * 1024 - 1;

/// Maximum depth of `ONBUILD` nesting in the parse tree. BuildKit parses
/// `ONBUILD ONBUILD ...` recursively and rejects it only later; hoist stops at
/// this depth so that no input recurses without bound.
pub const MAX_ONBUILD_DEPTH: usize = 8;

/// A parse failure, with the file name and the 1-based line it happened on.
///
/// Its message is `FILE:LINE: ` and the kind's message, and its source is the
/// kind's source, so that each cause appears once in a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// File name given to [`parse`], used only in messages.
    pub file: String,
    /// 1-based line number where the failing instruction or directive starts.
    pub line: usize,
    /// The kind of failure.
    pub kind: ParseErrorKind,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}:{}: {}", self.file, self.line, self.kind)
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// The kinds of [`ParseError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The file holds only comments, directives or blank lines.
    #[error("file with no instructions")]
    NoInstructions,
    /// A parser directive appears twice in the leading block.
    #[error("only one {name} parser directive can be used")]
    RepeatedDirective {
        /// Directive name, lowercased.
        name: String,
    },
    /// The `escape` directive names a character other than `\` or `` ` ``.
    #[error("invalid escape token {value:?}: expected ` or \\")]
    InvalidEscapeToken {
        /// Value given to the directive.
        value: ErrorValue,
    },
    /// A legacy `ENV name value` or `LABEL name value` lacks its value.
    #[error("{keyword} must have two arguments, found {text:?}")]
    MissingValue {
        /// Instruction keyword, uppercased.
        keyword: ErrorValue,
        /// Arguments as written.
        text: ErrorValue,
    },
    /// A `name=value` list contains a word without `=`.
    #[error("syntax error: can't find = in {word:?}, expected the form name=value")]
    MissingEquals {
        /// The word without `=`.
        word: ErrorValue,
    },
    /// A JSON (exec form) array contains something other than strings.
    #[error("when using JSON array syntax, arrays must contain strings only: {text}")]
    NotStringArray {
        /// Arguments as written.
        text: ErrorValue,
    },
    /// A heredoc has no terminator line before the end of the file.
    #[error("unterminated heredoc: no line {name:?} before the end of the file")]
    UnterminatedHeredoc {
        /// Heredoc delimiter that was expected.
        name: ErrorValue,
    },
    /// A heredoc delimiter word cannot be lexed.
    #[error("invalid heredoc delimiter {word:?}")]
    InvalidHeredoc {
        /// The `<<` word as written.
        word: ErrorValue,
        /// The lexer error.
        source: Box<ExpandError>,
    },
    /// A physical line is longer than [`MAX_LINE_BYTES`].
    #[error("line is {length} bytes long, more than the maximum of {MAX_LINE_BYTES}")]
    LineTooLong {
        /// Length of the line in bytes.
        length: usize,
    },
    /// `ONBUILD` is nested deeper than [`MAX_ONBUILD_DEPTH`].
    #[error("ONBUILD is nested more than {MAX_ONBUILD_DEPTH} levels deep")]
    NestingTooDeep,
}

/// Parser directives read from the leading comment block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// Value of `# syntax=`.
    pub syntax: Option<String>,
    /// Value of `# escape=`.
    pub escape: Option<char>,
    /// Value of `# check=`.
    pub check: Option<String>,
}

/// A non-fatal finding of the parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// 1-based line the warning refers to.
    pub line: usize,
    /// Human-readable description.
    pub message: String,
}

/// One instruction of the raw parse tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Instruction keyword as written (`FROM`, `run`, ...).
    pub keyword: String,
    /// Builder flags as `--name=value` words, quotes removed.
    pub flags: Vec<String>,
    /// Arguments in BuildKit's shape for this keyword; for `ENV` and `LABEL`
    /// these are `key, value, separator` triples.
    pub args: Vec<String>,
    /// The instruction nested in an `ONBUILD`.
    pub child: Option<Box<Node>>,
    /// Whether the arguments were written as a JSON array (exec form).
    pub json: bool,
    /// Heredoc bodies that follow the instruction.
    pub heredocs: Vec<Heredoc>,
    /// The logical line after joining continuations, before splitting.
    pub original: String,
    /// 1-based line where the instruction starts.
    pub start_line: usize,
    /// 1-based line where the instruction ends, heredoc bodies included.
    pub end_line: usize,
}

impl Node {
    /// Returns the keyword in lowercase, the form used for dispatch.
    pub fn command(&self) -> String {
        dump::lowercase(&self.keyword)
    }

    /// Renders this node the way BuildKit's `Node.Dump` does.
    pub fn dump(&self) -> String {
        dump::dump_node(self)
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// File name used in messages.
    pub file: String,
    /// Top-level instructions in file order.
    pub nodes: Vec<Node>,
    /// Parser directives.
    pub directives: Directives,
    /// Escape character in effect (`\` unless the `escape` directive changes it).
    pub escape: char,
    /// Non-fatal findings, such as empty continuation lines.
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// Renders the tree in BuildKit's dump format: one line per instruction,
    /// each ending with a newline.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push('(');
            out.push_str(&node.dump());
            out.push_str(")\n");
        }
        out
    }

    /// Returns the first line of the first instruction.
    pub fn start_line(&self) -> usize {
        self.nodes.first().map_or(0, |node| node.start_line)
    }

    /// Returns the last line of the last instruction.
    pub fn end_line(&self) -> usize {
        self.nodes.last().map_or(0, |node| node.end_line)
    }
}

/// Parses Dockerfile `text`; `file` names the source in errors only.
pub fn parse(text: &str, file: &str) -> Result<Dockerfile, ParseError> {
    lines::Parser::new(text, file).run()
}
