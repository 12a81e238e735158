//! Shell patterns in `${VAR#pattern}`, `${VAR%pattern}` and
//! `${VAR/pattern/replacement}`: `*` matches any text, `?` any one character,
//! and `\*`, `\?`, `\\` match themselves. Bracket expressions are not
//! supported, as in BuildKit.
//!
//! Matching runs a small NFA over the value, so its cost is the product of
//! the value and pattern lengths.
//!
//! NOTE: BuildKit compiles patterns to Go regular expressions, which pick the
//! leftmost-first match. This module picks the shortest or longest match
//! instead. Both agree on the cases tested here, but they are not proven
//! equal for every pattern with several stars.

use super::{ExpandErrorKind, MAX_REPLACEMENT_OUTPUT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Star,
    One,
    Literal(char),
}

/// Compiles a pattern, in which escapes are still present.
fn compile(pattern: &str) -> Result<Vec<Token>, ExpandErrorKind> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(ch) = chars.next() {
        let token = match ch {
            '*' => Token::Star,
            '?' => Token::One,
            // `}` and `/` are escaped only to end the word; the escape is not
            // part of the pattern.
            '\\' if matches!(chars.peek(), Some('}' | '/')) => continue,
            '\\' => match chars.next() {
                Some(escaped @ ('*' | '?' | '\\')) => Token::Literal(escaped),
                other => {
                    return Err(ExpandErrorKind::InvalidPattern {
                        pattern: pattern.into(),
                        escaped: other.map(String::from).unwrap_or_default().into(),
                    });
                }
            },
            _ => Token::Literal(ch),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// The states of the pattern automaton that are active, each with the
/// earliest start position of a match attempt that reached it.
struct Automaton<'a> {
    tokens: &'a [Token],
    starts: Vec<Option<usize>>,
}

impl<'a> Automaton<'a> {
    fn new(tokens: &'a [Token]) -> Self {
        Self {
            tokens,
            starts: vec![None; tokens.len() + 1],
        }
    }

    fn enter(&mut self, state: usize, start: usize) {
        let mut state = state;
        loop {
            match self.starts[state] {
                Some(existing) if existing <= start => return,
                _ => self.starts[state] = Some(start),
            }
            // A star may match nothing, so the next state is active too.
            if self.tokens.get(state) != Some(&Token::Star) {
                return;
            }
            state += 1;
        }
    }

    fn step(&mut self, ch: char) {
        let previous = std::mem::replace(&mut self.starts, vec![None; self.tokens.len() + 1]);
        for (state, start) in previous.into_iter().enumerate() {
            let Some(start) = start else { continue };
            match self.tokens.get(state) {
                Some(Token::Star) => self.enter(state, start),
                Some(Token::One) => self.enter(state + 1, start),
                Some(Token::Literal(literal)) if *literal == ch => self.enter(state + 1, start),
                _ => {}
            }
        }
    }

    fn accepted(&self) -> Option<usize> {
        self.starts[self.tokens.len()]
    }

    fn is_dead(&self) -> bool {
        self.starts.iter().all(Option::is_none)
    }
}

/// Returns the end of the shortest or longest match anchored at the start.
fn prefix_match(value: &[char], tokens: &[Token], longest: bool) -> Option<usize> {
    let mut automaton = Automaton::new(tokens);
    automaton.enter(0, 0);
    let mut found = automaton.accepted().map(|_| 0);
    if found.is_some() && !longest {
        return found;
    }
    for (index, &ch) in value.iter().enumerate() {
        automaton.step(ch);
        if automaton.accepted().is_some() {
            found = Some(index + 1);
            if !longest {
                return found;
            }
        }
        if automaton.is_dead() {
            break;
        }
    }
    found
}

/// Removes the shortest (or longest) prefix of `value` that matches.
pub(super) fn remove_prefix(
    value: &str,
    pattern: &str,
    longest: bool,
) -> Result<String, ExpandErrorKind> {
    let tokens = compile(pattern)?;
    let chars: Vec<char> = value.chars().collect();
    Ok(match prefix_match(&chars, &tokens, longest) {
        Some(end) => chars[end..].iter().collect(),
        None => value.to_owned(),
    })
}

/// Removes the shortest (or longest) suffix of `value` that matches.
pub(super) fn remove_suffix(
    value: &str,
    pattern: &str,
    longest: bool,
) -> Result<String, ExpandErrorKind> {
    let mut tokens = compile(pattern)?;
    tokens.reverse();
    let reversed: Vec<char> = value.chars().rev().collect();
    Ok(match prefix_match(&reversed, &tokens, longest) {
        Some(end) => reversed[end..].iter().rev().collect(),
        None => value.to_owned(),
    })
}

/// Finds the leftmost match at or after `from`, and the longest one there.
fn find(value: &[char], tokens: &[Token], from: usize) -> Option<(usize, usize)> {
    let mut automaton = Automaton::new(tokens);
    let mut best: Option<(usize, usize)> = None;
    for position in from..=value.len() {
        if best.is_none() {
            automaton.enter(0, position);
        }
        if let Some(start) = automaton.accepted()
            && best.is_none_or(|(best_start, _)| start <= best_start)
        {
            best = Some((start, position));
        }
        if let Some((best_start, _)) = best {
            // Attempts that started later can no longer win.
            for start in &mut automaton.starts {
                if start.is_some_and(|start| start > best_start) {
                    *start = None;
                }
            }
        }
        let Some(&ch) = value.get(position) else {
            break;
        };
        automaton.step(ch);
        if best.is_some() && automaton.is_dead() {
            break;
        }
    }
    best
}

/// Replaces the first (or every) match of `pattern` in `value`.
pub(super) fn replace(
    value: &str,
    pattern: &str,
    replacement: &str,
    all: bool,
) -> Result<String, ExpandErrorKind> {
    let tokens = compile(pattern)?;
    let chars: Vec<char> = value.chars().collect();
    if !all {
        let Some((start, end)) = find(&chars, &tokens, 0) else {
            return Ok(value.to_owned());
        };
        let length = chars.len() - (end - start) + replacement.chars().count();
        if length > MAX_REPLACEMENT_OUTPUT {
            return Err(ExpandErrorKind::TooLong);
        }
        let mut out: String = chars[..start].iter().collect();
        out.push_str(replacement);
        out.extend(&chars[end..]);
        return Ok(out);
    }
    replace_all(&chars, &tokens, &expand_template(replacement))
}

/// Replaces every match the way Go's `Regexp.ReplaceAllString` does: an
/// empty match right after a previous match is not replaced, and the search
/// always moves on by at least one character.
fn replace_all(
    chars: &[char],
    tokens: &[Token],
    replacement: &str,
) -> Result<String, ExpandErrorKind> {
    let replacement_length = replacement.chars().count();
    let mut out = String::new();
    let mut length = 0;
    let mut last_end = 0;
    let mut search = 0;
    while search <= chars.len() {
        let Some((start, end)) = find(chars, tokens, search) else {
            break;
        };
        out.extend(&chars[last_end..start]);
        length += start - last_end;
        if end > last_end || start == 0 {
            out.push_str(replacement);
            length += replacement_length;
        }
        if length > MAX_REPLACEMENT_OUTPUT {
            return Err(ExpandErrorKind::TooLong);
        }
        last_end = end;
        search = if search + 1 > end { search + 1 } else { end };
    }
    out.extend(&chars[last_end.min(chars.len())..]);
    Ok(out)
}

/// Applies Go's replacement-template rules for a pattern without groups:
/// `$$` is `$`, `$name` and `${name}` are empty, any other `$` stays.
fn expand_template(template: &str) -> String {
    let chars: Vec<char> = template.chars().collect();
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut index = 0;
    while index < chars.len() {
        let ch = chars[index];
        index += 1;
        if ch != '$' {
            out.push(ch);
            continue;
        }
        match chars.get(index) {
            Some('$') => {
                out.push('$');
                index += 1;
            }
            Some('{') => {
                let name_len = chars[index + 1..]
                    .iter()
                    .take_while(|&&c| is_name(c))
                    .count();
                if name_len > 0 && chars.get(index + 1 + name_len) == Some(&'}') {
                    index += name_len + 2;
                } else {
                    out.push('$');
                }
            }
            _ => {
                let name_len = chars[index..].iter().take_while(|&&c| is_name(c)).count();
                if name_len == 0 {
                    out.push('$');
                }
                index += name_len;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_shortest_and_longest() {
        assert_eq!(remove_prefix("a/b/c", "*/", false).unwrap(), "b/c");
        assert_eq!(remove_prefix("a/b/c", "*/", true).unwrap(), "c");
        assert_eq!(remove_prefix("abc", "x", true).unwrap(), "abc");
    }

    #[test]
    fn suffix_shortest_and_longest() {
        assert_eq!(remove_suffix("a.tar.gz", ".*", false).unwrap(), "a.tar");
        assert_eq!(remove_suffix("a.tar.gz", ".*", true).unwrap(), "a");
    }

    #[test]
    fn replace_first_and_all() {
        assert_eq!(replace("aXbXc", "X", "-", false).unwrap(), "a-bXc");
        assert_eq!(replace("aXbXc", "X", "-", true).unwrap(), "a-b-c");
        assert_eq!(replace("abc", "", "-", true).unwrap(), "-a-b-c-");
        assert_eq!(replace("abab", "a*", "-", true).unwrap(), "-");
        assert_eq!(replace("xaay", "a?", "-", false).unwrap(), "x-y");
    }

    #[test]
    fn invalid_escape_is_rejected() {
        assert!(compile("\\a").is_err());
        assert!(compile("\\").is_err());
        assert_eq!(compile("\\*").unwrap(), [Token::Literal('*')]);
    }

    #[test]
    fn template_dollar_rules() {
        assert_eq!(expand_template("a$$b"), "a$b");
        assert_eq!(expand_template("a$xb"), "a");
        assert_eq!(expand_template("a${x}b"), "ab");
        assert_eq!(expand_template("a$"), "a$");
        assert_eq!(expand_template("a${"), "a${");
    }
}
