//! Shell-word expansion as BuildKit performs it on instruction arguments:
//! quote removal, the escape character, `$VAR` and `${VAR...}` forms, and
//! word splitting.
//!
//! Supported forms: `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`,
//! `${VAR+word}`, `${VAR:?message}`, `${VAR?message}`, `${VAR#pattern}`,
//! `${VAR##pattern}`, `${VAR%pattern}`, `${VAR%%pattern}`,
//! `${VAR/pattern/replacement}` and `${VAR//pattern/replacement}`. Positional
//! and special parameters (`$1`, `$@`, `$#`, ...) always expand to nothing.

mod pattern;

use crate::error_value::ErrorValue;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Maximum nesting of `${...}` inside `${...}` words. Deeper input is an
/// error, so that no input recurses without bound.
pub const MAX_NESTING: usize = 64;

/// Maximum length in characters of a value produced by
/// `${VAR/pattern/replacement}`. Nested replacements multiply lengths, so
/// without a limit a short word could expand to gigabytes.
pub const MAX_REPLACEMENT_OUTPUT: usize = 1 << 20;

/// Maximum length in bytes of one expanded word. Each `$VAR` copies a whole
/// value, so a few lines that each double a variable would otherwise grow it
/// to gigabytes.
pub const MAX_EXPANDED_LENGTH: usize = 1 << 20;

/// A failed expansion, with the input it happened on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to expand {input:?}: {kind}")]
pub struct ExpandError {
    /// The word as given to the lexer.
    pub input: ErrorValue,
    /// The kind of failure.
    pub kind: ExpandErrorKind,
}

/// The kinds of [`ExpandError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandErrorKind {
    /// A single quote is never closed.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// A double quote is never closed.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// The end of the input came before the expected character.
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(char),
    /// `${` is never closed.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${VAR/pattern` has no second `/`.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${:...}` or `${{...`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// An operator other than the supported ones, such as `${VAR:=x}`.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(ErrorValue),
    /// `${VAR?message}` or `${VAR:?message}` on an unset (or empty) variable.
    #[error("{name}: {message}")]
    Required {
        /// Variable name.
        name: String,
        /// The message from the word, or a default one.
        message: ErrorValue,
    },
    /// A pattern contains an escape other than `\*`, `\?` or `\\`.
    #[error("invalid pattern ({pattern}) in substitution: invalid escape '\\{escaped}'")]
    InvalidPattern {
        /// The pattern as written.
        pattern: ErrorValue,
        /// The character after the backslash, empty at the end.
        escaped: ErrorValue,
    },
    /// A replacement produced more than [`MAX_REPLACEMENT_OUTPUT`] characters.
    #[error("substitution result is longer than {MAX_REPLACEMENT_OUTPUT} characters")]
    TooLong,
    /// A word expanded to more than [`MAX_EXPANDED_LENGTH`] bytes.
    #[error("expanded word is longer than {MAX_EXPANDED_LENGTH} bytes")]
    ResultTooLong,
    /// `${...}` nested deeper than [`MAX_NESTING`].
    #[error("substitutions nested more than {MAX_NESTING} levels deep")]
    TooDeep,
}

/// A source of variable values.
pub trait Env {
    /// Returns the value of `name`, or `None` when it is unset.
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// An environment in which every variable is unset.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn lookup(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// The outcome of expanding one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded text, spaces between words kept.
    pub result: String,
    /// The result split into words where BuildKit splits it.
    pub words: Vec<String>,
    /// Names looked up and found.
    pub matched: BTreeSet<String>,
    /// Names looked up and not found.
    pub unmatched: BTreeSet<String>,
}

/// Expands shell words. The defaults match BuildKit's lexer for instruction
/// arguments; the `raw_*` and `skip_unset` switches match its heredoc lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    /// Escape character, `\` or `` ` ``.
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset: bool,
}

impl Lexer {
    /// Creates a lexer with the given escape character.
    pub fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
        }
    }

    /// Expands `word` in `env` and returns the text and its words.
    pub fn process(&self, word: &str, env: &dyn Env) -> Result<Expansion, ExpandError> {
        let mut scanner = Scanner {
            lexer: self,
            env,
            chars: word.chars().collect(),
            position: 0,
            raw_escapes: self.raw_escapes,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        let (result, words) = scanner
            .process_until(None, self.raw_escapes)
            .map_err(|kind| ExpandError {
                input: word.into(),
                kind,
            })?;
        Ok(Expansion {
            result,
            words,
            matched: scanner.matched,
            unmatched: scanner.unmatched,
        })
    }

    /// Expands `word` into one string, as for `ENV` values or `WORKDIR`.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ExpandError> {
        self.process(word, env).map(|expansion| expansion.result)
    }

    /// Expands `word` and splits it into words, as for `COPY` sources.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        self.process(word, env).map(|expansion| expansion.words)
    }
}

/// Collects words: whitespace from expansions and plain text splits, quoted
/// and escaped text does not.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if !ch.is_whitespace() {
            self.add_raw_char(ch);
        } else if self.in_word && !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
            self.in_word = false;
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, text: &str) {
        text.chars().for_each(|ch| self.add_char(ch));
    }

    fn add_raw_string(&mut self, text: &str) {
        self.word.push_str(text);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Scanner<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    chars: Vec<char>,
    position: usize,
    raw_escapes: bool,
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

type Step<T> = Result<T, ExpandErrorKind>;

impl Scanner<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.position).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.position += 1;
        Some(ch)
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        let value = self.env.lookup(name).map(str::to_owned);
        if value.is_some() {
            self.matched.insert(name.to_owned());
        } else {
            self.unmatched.insert(name.to_owned());
        }
        value
    }

    /// Processes text up to `stop` (consumed) or the end of input, with
    /// escapes kept when `raw_escapes` is set.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Step<(String, Vec<String>)> {
        if self.depth >= MAX_NESTING {
            return Err(ExpandErrorKind::TooDeep);
        }
        self.depth += 1;
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let outcome = self.process_body(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        outcome
    }

    fn process_body(&mut self, stop: Option<char>) -> Step<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.position += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.process_dollar()?;
                    push_checked(&mut result, &value)?;
                    words.add_string(&value);
                }
                '\'' => {
                    let value = self.process_single_quote()?;
                    words.add_raw_string(&value);
                    result.push_str(&value);
                }
                '"' => {
                    let value = self.process_double_quote()?;
                    push_checked(&mut result, &value)?;
                    words.add_raw_string(&value);
                }
                _ => {
                    self.position += 1;
                    if ch != self.lexer.escape {
                        words.add_char(ch);
                        result.push(ch);
                        continue;
                    }
                    if self.raw_escapes {
                        words.add_raw_char(ch);
                        result.push(ch);
                    }
                    // An escape at the very end is dropped.
                    let Some(escaped) = self.next() else {
                        break;
                    };
                    words.add_raw_char(escaped);
                    result.push(escaped);
                }
            }
        }
        match stop {
            Some(stop) => Err(ExpandErrorKind::Unterminated(stop)),
            None => Ok((result, words.finish())),
        }
    }

    /// Single quotes keep every character as it is; nothing can be escaped.
    fn process_single_quote(&mut self) -> Step<String> {
        let mut result = String::new();
        let quote = self.next();
        if self.lexer.raw_quotes {
            result.extend(quote);
        }
        loop {
            match self.next() {
                None => return Err(ExpandErrorKind::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    /// Double quotes expand `$` and let the escape character escape only `"`,
    /// `$` and itself; any other escape stays in the text.
    fn process_double_quote(&mut self) -> Step<String> {
        let mut result = String::new();
        let quote = self.next();
        if self.lexer.raw_quotes {
            result.extend(quote);
        }
        loop {
            match self.peek() {
                None => return Err(ExpandErrorKind::UnterminatedDoubleQuote),
                Some('"') => {
                    self.position += 1;
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    push_checked(&mut result, &value)?;
                }
                Some(ch) => {
                    self.position += 1;
                    if ch != self.lexer.escape {
                        result.push(ch);
                        continue;
                    }
                    if self.raw_escapes {
                        result.push(ch);
                    }
                    match self.peek() {
                        // The loop reports the missing closing quote.
                        None => continue,
                        Some(next) if next == '"' || next == '$' || next == self.lexer.escape => {
                            self.position += 1;
                            result.push(next);
                        }
                        Some(_) => result.push(ch),
                    }
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Step<String> {
        self.position += 1;
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.position += 1;
        match self.peek() {
            None => return Err(ExpandErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return Err(ExpandErrorKind::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        match self.next() {
            Some('}') => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':') => {
                let operator = self.next();
                self.process_modifier(&name, operator, true)
            }
            Some(operator @ ('+' | '-' | '?' | '#' | '%')) => {
                self.process_modifier(&name, Some(operator), false)
            }
            Some('/') => self.process_replace(&name),
            other => Err(ExpandErrorKind::UnsupportedModifier(
                other.map(String::from).unwrap_or_default().into(),
            )),
        }
    }

    /// Handles `${name<op>word}`; `colon` means the operator was written as
    /// `:<op>`, which treats an empty value like an unset one.
    fn process_modifier(
        &mut self,
        name: &str,
        operator: Option<char>,
        colon: bool,
    ) -> Step<String> {
        let spelled = format!(
            "{}{}",
            if colon { ":" } else { "" },
            operator.map(String::from).unwrap_or_default()
        );
        let raw_escapes = matches!(operator, Some('#' | '%'));
        let word = match self.process_until(Some('}'), raw_escapes) {
            Ok((word, _)) => word,
            Err(_) if self.peek().is_none() => return Err(ExpandErrorKind::MissingBrace),
            Err(error) => return Err(error),
        };
        let value = self.lookup(name);
        let Some(operator) = operator else {
            return Err(ExpandErrorKind::UnsupportedModifier(spelled.into()));
        };
        if self.lexer.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{spelled}{word}}}"));
        }
        let empty_or_unset = value
            .as_deref()
            .is_none_or(|value| colon && value.is_empty());
        match operator {
            '-' if empty_or_unset => Ok(word),
            '-' => Ok(value.unwrap_or_default()),
            '+' if empty_or_unset => Ok(String::new()),
            '+' => Ok(word),
            '?' => match value {
                None => Err(required(name, word, "is not allowed to be unset")),
                Some(value) if colon && value.is_empty() => {
                    Err(required(name, word, "is not allowed to be empty"))
                }
                Some(value) => Ok(value),
            },
            '#' | '%' => {
                let (longest, pattern) = match word.strip_prefix(operator) {
                    Some(pattern) => (true, pattern),
                    None => (false, word.as_str()),
                };
                let value = value.unwrap_or_default();
                if operator == '#' {
                    pattern::remove_prefix(&value, pattern, longest)
                } else {
                    pattern::remove_suffix(&value, pattern, longest)
                }
            }
            _ => Err(ExpandErrorKind::UnsupportedModifier(spelled.into())),
        }
    }

    /// Handles `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn process_replace(&mut self, name: &str) -> Step<String> {
        let all = self.peek() == Some('/');
        if all {
            self.position += 1;
        }
        let pattern = match self.process_until(Some('/'), true) {
            Ok((pattern, _)) => pattern,
            Err(_) if self.peek().is_none() => return Err(ExpandErrorKind::MissingSlash),
            Err(error) => return Err(error),
        };
        let replacement = match self.process_until(Some('}'), true) {
            Ok((replacement, _)) => replacement,
            Err(_) if self.peek().is_none() => return Err(ExpandErrorKind::MissingBrace),
            Err(error) => return Err(error),
        };
        let Some(value) = self.lookup(name) else {
            if self.lexer.skip_unset {
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            return pattern::replace("", &pattern, &replacement, all);
        };
        pattern::replace(&value, &pattern, &replacement, all)
    }

    /// Reads a variable name: letters, digits and `_`; or a run of digits (a
    /// positional parameter); or one special parameter character.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(digit) = self.peek().filter(|&c| is_digit(c)) {
                    self.position += 1;
                    name.push(digit);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.position += 1;
                return ch.to_string();
            }
            if !(ch.is_alphabetic() || is_digit(ch) || ch == '_') {
                break;
            }
            self.position += 1;
            name.push(ch);
        }
        name
    }
}

/// Returns whether `ch` is a decimal digit, as Go's `unicode.IsDigit`
/// (category Nd) defines it.
// NOTE: `char::is_numeric` also covers letter-like and other numbers (Nl,
// No), so non-ASCII digits are approximated.
/// Appends `value` to `result` unless that makes it longer than
/// [`MAX_EXPANDED_LENGTH`].
fn push_checked(result: &mut String, value: &str) -> Step<()> {
    if result.len() + value.len() > MAX_EXPANDED_LENGTH {
        return Err(ExpandErrorKind::ResultTooLong);
    }
    result.push_str(value);
    Ok(())
}

fn is_digit(ch: char) -> bool {
    ch.is_ascii_digit() || (!ch.is_ascii() && ch.is_numeric())
}

fn required(name: &str, word: String, default: &str) -> ExpandErrorKind {
    let message = if word.is_empty() {
        default.to_owned()
    } else {
        word
    };
    ExpandErrorKind::Required {
        name: name.to_owned(),
        message: message.into(),
    }
}
