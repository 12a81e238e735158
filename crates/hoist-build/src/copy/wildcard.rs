//! Wildcard sources: Go's `filepath.Match` syntax, matched one path
//! component at a time inside the source directory, as BuildKit resolves
//! `COPY *.txt /dest/`.
//!
//! `*` matches any run of characters and `?` one character, neither across
//! a `/`. `[abc]`, `[a-z]` and `[^a-z]` match one character of a class, and
//! `\` escapes the next character. Names that start with a dot are not
//! special.

use std::fs;
use std::path::{Path, PathBuf};

/// A malformed pattern, such as an unclosed `[`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid wildcard pattern {pattern:?}")]
pub struct BadPattern {
    /// The pattern as written.
    pub pattern: String,
}

/// Returns whether `text` contains a wildcard character.
pub(crate) fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Returns the paths under `base` (a directory opened by the caller) that
/// match the cleaned relative `pattern`, sorted, as paths relative to
/// `base`. `list` returns the sorted entry names of a directory given
/// relative to `base`, or `None` when it is not a readable directory.
pub(crate) fn expand(
    pattern: &Path,
    mut list: impl FnMut(&Path) -> Option<Vec<String>>,
    mut exists: impl FnMut(&Path) -> bool,
) -> Result<Vec<PathBuf>, BadPattern> {
    let bad = || BadPattern {
        pattern: pattern.to_string_lossy().into_owned(),
    };
    let mut candidates = vec![PathBuf::new()];
    for component in pattern.iter() {
        let component = component.to_string_lossy();
        if component == "/" {
            continue;
        }
        let mut next = Vec::new();
        for candidate in &candidates {
            if !has_wildcard(&component) {
                next.push(candidate.join(unescape(&component)));
                continue;
            }
            let Some(names) = list(candidate) else {
                continue;
            };
            for name in names {
                if component_matches(&component, &name).map_err(|_| bad())? {
                    next.push(candidate.join(name));
                }
            }
        }
        candidates = next;
    }
    candidates.retain(|candidate| exists(candidate));
    candidates.sort();
    candidates.dedup();
    Ok(candidates)
}

/// Lists the sorted entry names of the directory at `path`.
pub(crate) fn list_directory(path: &Path) -> Option<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Some(names)
}

fn unescape(component: &str) -> String {
    let mut output = String::with_capacity(component.len());
    let mut chars = component.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => output.extend(chars.next()),
            other => output.push(other),
        }
    }
    output
}

/// Matches one path component against one pattern component with Go's
/// `filepath.Match` rules.
pub(crate) fn component_matches(pattern: &str, name: &str) -> Result<bool, ()> {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    validate(&pattern)?;
    Ok(match_from(&pattern, &name))
}

/// Rejects unclosed classes and a trailing `\`, as Go does even when the
/// text would not reach them.
fn validate(pattern: &[char]) -> Result<(), ()> {
    let mut index = 0;
    while index < pattern.len() {
        match pattern[index] {
            '\\' => index += 2,
            '[' => index = class_end(pattern, index).ok_or(())?,
            _ => index += 1,
        }
    }
    if index > pattern.len() {
        Err(())
    } else {
        Ok(())
    }
}

fn match_from(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|skip| match_from(rest, &name[skip..])),
        Some((_, _)) => {
            let Some((&first, remaining)) = name.split_first() else {
                return false;
            };
            let (matched, consumed) = match_one(pattern, first);
            matched && match_from(&pattern[consumed..], remaining)
        }
    }
}

/// Matches `ch` against the single-character pattern at the start of
/// `pattern` and returns whether it matched and the pattern length used.
fn match_one(pattern: &[char], ch: char) -> (bool, usize) {
    match pattern[0] {
        '?' => (true, 1),
        '\\' => (pattern.get(1) == Some(&ch), 2),
        '[' => {
            let end = class_end(pattern, 0).unwrap_or(pattern.len());
            (class_matches(&pattern[1..end - 1], ch), end)
        }
        literal => (literal == ch, 1),
    }
}

/// Returns the index after the `]` that closes the class starting at
/// `start`, or `None` when the class is malformed.
fn class_end(pattern: &[char], start: usize) -> Option<usize> {
    let mut index = start + 1;
    if pattern.get(index) == Some(&'^') {
        index += 1;
    }
    let mut first = true;
    loop {
        if pattern.get(index)? == &']' && !first {
            return Some(index + 1);
        }
        index = class_range(pattern, index)?.2;
        first = false;
    }
}

/// Reads one range (`a` or `a-z`) of a class at `index` and returns its
/// bounds and the index after it. An unescaped `-` or `]` where a character
/// is expected makes the pattern malformed, as in Go.
fn class_range(pattern: &[char], index: usize) -> Option<(char, char, usize)> {
    let (low, mut next) = class_char(pattern, index)?;
    let mut high = low;
    if pattern.get(next) == Some(&'-') {
        (high, next) = class_char(pattern, next + 1)?;
    }
    Some((low, high, next))
}

/// Reads one (possibly escaped) character of a class.
fn class_char(pattern: &[char], index: usize) -> Option<(char, usize)> {
    match pattern.get(index)? {
        '\\' => pattern.get(index + 1).map(|ch| (*ch, index + 2)),
        '-' | ']' => None,
        ch => Some((*ch, index + 1)),
    }
}

/// Matches `ch` against the inside of a validated class (between `[` and
/// `]`).
fn class_matches(class: &[char], ch: char) -> bool {
    let (negated, start) = match class.first() {
        Some('^') => (true, 1),
        _ => (false, 0),
    };
    let mut index = start;
    let mut matched = false;
    while let Some((low, high, next)) = class_range(class, index) {
        matched |= low <= ch && ch <= high;
        index = next;
    }
    matched != negated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        component_matches(pattern, name).expect("valid pattern")
    }

    #[test]
    fn star_and_question_mark() {
        assert!(matches("*.txt", "a.txt"));
        assert!(matches("*.txt", ".hidden.txt"));
        assert!(matches("*", ""));
        assert!(!matches("*.txt", "a.txt.bak"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("a*b*c", "aXXbYYc"));
    }

    #[test]
    fn classes_ranges_and_negation() {
        assert!(matches("[abc]x", "bx"));
        assert!(!matches("[abc]x", "dx"));
        assert!(matches("file[0-9]", "file7"));
        assert!(!matches("file[^0-9]", "file7"));
        assert!(matches("file[^0-9]", "filex"));
        assert!(matches("[\\]a]", "]"));
        assert!(matches("[\\-]", "-"));
    }

    #[test]
    fn escapes_match_literally() {
        assert!(matches("a\\*b", "a*b"));
        assert!(!matches("a\\*b", "axb"));
        assert!(matches("\\[x]", "[x]"));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        assert!(component_matches("[abc", "a").is_err());
        assert!(component_matches("abc\\", "abc").is_err());
        assert!(component_matches("[a-]", "a").is_err());
        assert!(component_matches("[]", "a").is_err());
        assert!(component_matches("[]a]", "a").is_err());
    }

    proptest::proptest! {
        #[test]
        fn escaped_names_match_themselves(name in "[^/]{0,12}") {
            let escaped: String = name.chars().flat_map(|ch| ['\\', ch]).collect();
            proptest::prop_assert_eq!(component_matches(&escaped, &name), Ok(true));
            proptest::prop_assert_eq!(component_matches("*", &name), Ok(true));
        }
    }

    #[test]
    fn expand_walks_components() {
        let tree = [
            ("", vec!["a", "b", "c.md"]),
            ("a", vec!["one.txt", "two.md"]),
            ("b", vec!["three.txt"]),
        ];
        let list = |path: &Path| {
            tree.iter()
                .find(|(dir, _)| Path::new(dir) == path)
                .map(|(_, names)| names.iter().map(|name| (*name).to_owned()).collect())
        };
        let found = expand(Path::new("*/*.txt"), list, |_| true).expect("valid");
        assert_eq!(
            found,
            [PathBuf::from("a/one.txt"), PathBuf::from("b/three.txt")]
        );
        let none = expand(Path::new("*.txt"), list, |_| true).expect("valid");
        assert!(none.is_empty());
    }
}
