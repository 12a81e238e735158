//! `.dockerignore` files: which paths of the build context are left out.
//!
//! Each line is a Go `filepath.Match`-style pattern on slash-separated paths
//! relative to the context root, cleaned first (`./a//b/` is `a/b`, a leading
//! `/` is dropped). `*` and `?` never match `/`, `**` matches any number of
//! directories, `[...]` is a character class, and `\` escapes the next
//! character. A line starting with `!` is an exception. The last matching
//! line wins, and a pattern that matches a parent directory matches
//! everything under it. Lines starting with `#` and blank lines are ignored.

/// Names to look for beside a Dockerfile, in order of precedence:
/// `<Dockerfile>.dockerignore` first, then `.dockerignore` at the context
/// root. The walker uses the first that exists.
pub fn ignore_file_candidates(dockerfile_name: &str) -> [String; 2] {
    [
        format!("{dockerfile_name}.dockerignore"),
        ".dockerignore".to_owned(),
    ]
}

/// An invalid line in an ignore file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: invalid pattern {pattern:?}: {reason}")]
pub struct IgnoreError {
    /// File name given to [`IgnoreMatcher::parse`].
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// The pattern as written.
    pub pattern: String,
    /// The reason the pattern is invalid.
    pub reason: &'static str,
}

/// One state of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// One given character.
    Literal(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` in the middle: nothing, or any text ending with `/`.
    Directories,
    /// `**` at the end: any text.
    Anything,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    exception: bool,
    tokens: Vec<Token>,
}

/// Decides whether context paths are excluded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
}

impl IgnoreMatcher {
    /// Parses the text of an ignore file; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let written = line.trim();
            if written.is_empty() {
                continue;
            }
            let error = |reason| IgnoreError {
                file: file.to_owned(),
                line: index + 1,
                pattern: written.to_owned(),
                reason,
            };
            let (exception, body) = match written.strip_prefix('!') {
                Some(body) => (true, body.trim()),
                None => (false, written),
            };
            if body.is_empty() {
                return Err(error("an exception needs a pattern after '!'"));
            }
            let mut cleaned = clean_path(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let tokens = compile(&cleaned).map_err(error)?;
            patterns.push(Pattern { exception, tokens });
        }
        Ok(Self { patterns })
    }

    /// Returns whether any line is an exception (`!pattern`). A walker must then
    /// look inside excluded directories, since an exception may re-include
    /// something there.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|pattern| pattern.exception)
    }

    /// Returns whether `path` (relative to the context root, `/`-separated) is
    /// excluded from the build context.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean_path(path);
        let path = path.trim_start_matches('/');
        let chars: Vec<char> = path.chars().collect();
        let parents: Vec<usize> = chars
            .iter()
            .enumerate()
            .filter(|(_, ch)| **ch == '/')
            .map(|(index, _)| index)
            .collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            // Only a pattern that can change the outcome is evaluated.
            if pattern.exception != excluded {
                continue;
            }
            let matched = matches(&pattern.tokens, &chars)
                || parents
                    .iter()
                    .any(|&end| matches(&pattern.tokens, &chars[..end]));
            if matched {
                excluded = !pattern.exception;
            }
        }
        excluded
    }
}

/// Cleans a path lexically like Go's `path.Clean`: collapses `//`, removes
/// `.` elements, resolves `..` against earlier elements and drops a
/// trailing `/`. An empty result is `.`.
fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

fn compile(pattern: &str) -> Result<Vec<Token>, &'static str> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(ch) = chars.next() {
        let token = match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    Token::Anything
                } else {
                    Token::Directories
                }
            }
            '*' => Token::Star,
            '?' => Token::One,
            '\\' => match chars.next() {
                Some(escaped) => Token::Literal(escaped),
                None => Token::Literal('\\'),
            },
            '[' => compile_class(&mut chars)?,
            _ => Token::Literal(ch),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

fn compile_class(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) -> Result<Token, &'static str> {
    let negated = chars.next_if_eq(&'^').is_some();
    let mut ranges = Vec::new();
    loop {
        let low = match chars.next() {
            None => return Err("unterminated character class"),
            Some(']') if !ranges.is_empty() => break,
            Some('\\') => chars.next().ok_or("unterminated character class")?,
            Some(ch) => ch,
        };
        let high = if chars.next_if_eq(&'-').is_some() {
            match chars.next() {
                None => return Err("unterminated character class"),
                Some('\\') => chars.next().ok_or("unterminated character class")?,
                Some(ch) => ch,
            }
        } else {
            low
        };
        if high < low {
            return Err("invalid character class range");
        }
        ranges.push((low, high));
    }
    Ok(Token::Class { negated, ranges })
}

/// Runs the pattern automaton over `text`. Each token is a state; a second
/// set of states marks being inside the text a `**/` consumes.
fn matches(tokens: &[Token], text: &[char]) -> bool {
    let count = tokens.len();
    let mut active = vec![false; count + 1];
    let mut inside = vec![false; count];
    enter(tokens, &mut active, 0);
    for &ch in text {
        let mut next_active = vec![false; count + 1];
        let mut next_inside = vec![false; count];
        for state in 0..count {
            if inside[state] {
                next_inside[state] = true;
                if ch == '/' {
                    enter(tokens, &mut next_active, state + 1);
                }
            }
            if !active[state] {
                continue;
            }
            match &tokens[state] {
                Token::Literal(literal) if *literal == ch => {
                    enter(tokens, &mut next_active, state + 1);
                }
                Token::One if ch != '/' => enter(tokens, &mut next_active, state + 1),
                Token::Star if ch != '/' => enter(tokens, &mut next_active, state),
                Token::Anything => enter(tokens, &mut next_active, state),
                Token::Directories => {
                    next_inside[state] = true;
                    if ch == '/' {
                        enter(tokens, &mut next_active, state + 1);
                    }
                }
                Token::Class { negated, ranges } => {
                    let in_class = ranges
                        .iter()
                        .any(|(low, high)| (*low..=*high).contains(&ch));
                    if in_class != *negated {
                        enter(tokens, &mut next_active, state + 1);
                    }
                }
                _ => {}
            }
        }
        active = next_active;
        inside = next_inside;
        if !active.iter().any(|state| *state) && !inside.iter().any(|state| *state) {
            return false;
        }
    }
    active[count]
}

/// Activates `state` and the states reachable from it without input.
fn enter(tokens: &[Token], active: &mut [bool], state: usize) {
    let mut state = state;
    while state < active.len() && !active[state] {
        active[state] = true;
        match tokens.get(state) {
            Some(Token::Star | Token::Anything | Token::Directories) => state += 1,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_like_go() {
        assert_eq!(clean_path("./a//b/"), "a/b");
        assert_eq!(clean_path("a/../../b"), "../b");
        assert_eq!(clean_path("/../a"), "/a");
        assert_eq!(clean_path(""), ".");
    }
}
