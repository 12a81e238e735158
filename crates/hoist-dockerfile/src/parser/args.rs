//! Splitting one logical line into keyword, builder flags and arguments, in
//! the argument shape BuildKit gives each instruction.

use super::{MAX_ONBUILD_DEPTH, Node, ParseErrorKind};

/// Separators of BuildKit's whitespace split (`[\t\v\f\r ]+`).
fn is_separator(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Builds the node for one logical line. `depth` counts enclosing `ONBUILD`s.
pub(super) fn build_node(line: &str, escape: char, depth: usize) -> Result<Node, ParseErrorKind> {
    let (keyword, flags, rest) = split_command(line, escape);
    let mut node = Node {
        keyword: keyword.to_owned(),
        flags,
        args: Vec::new(),
        child: None,
        json: false,
        heredocs: Vec::new(),
        original: line.to_owned(),
        start_line: 0,
        end_line: 0,
    };
    match node.command().as_str() {
        "add" | "copy" | "volume" => (node.args, node.json) = parse_maybe_json_to_list(&rest)?,
        "arg" => node.args = parse_words(&rest, escape),
        "cmd" | "entrypoint" | "run" | "shell" => (node.args, node.json) = parse_maybe_json(&rest)?,
        "env" | "label" => node.args = parse_name_value(&rest, &node.keyword, escape)?,
        "expose" | "from" => node.args = split_whitespace(&rest),
        "healthcheck" => (node.args, node.json) = parse_healthcheck(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if !rest.is_empty() {
                node.args = vec![rest];
            }
        }
        "onbuild" => {
            if !rest.is_empty() {
                if depth >= MAX_ONBUILD_DEPTH {
                    return Err(ParseErrorKind::NestingTooDeep);
                }
                node.child = Some(Box::new(build_node(&rest, escape, depth + 1)?));
            }
        }
        // BuildKit keeps an unknown keyword and drops its arguments; the later
        // instruction stage reports it.
        _ => node.args = vec![String::new()],
    }
    Ok(node)
}

/// Splits a line into its keyword, its leading `--flag` words and the rest.
fn split_command(line: &str, escape: char) -> (&str, Vec<String>, String) {
    let line = line.trim();
    let Some(separator) = line.find(is_separator) else {
        return (line, Vec::new(), String::new());
    };
    let keyword = &line[..separator];
    let after = line[separator..].trim_start_matches(is_separator);
    let (rest, flags) = extract_flags(after, escape);
    (keyword, flags, rest.trim().to_owned())
}

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Spaces,
    Word,
    Quote(char),
}

/// Takes the leading words that start with `--` as flags, removing quotes and
/// escapes inside them. A bare `--` ends the flags and is dropped. Returns the
/// remaining text and the flags.
fn extract_flags(line: &str, escape: char) -> (&str, Vec<String>) {
    let mut flags = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut chars = line.char_indices().peekable();
    while let Some((position, ch)) = chars.next() {
        match phase {
            Phase::Spaces => {
                if ch.is_whitespace() {
                    continue;
                }
                if !line[position..].starts_with("--") {
                    return (&line[position..], flags);
                }
                phase = Phase::Word;
                word.push(ch);
            }
            Phase::Word if ch.is_whitespace() => {
                if word == "--" {
                    return (&line[position..], flags);
                }
                if blank_ok || !word.is_empty() {
                    flags.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                phase = Phase::Spaces;
            }
            Phase::Word if ch == '\'' || ch == '"' => {
                blank_ok = true;
                phase = Phase::Quote(ch);
            }
            Phase::Quote(quote) if ch == quote => phase = Phase::Word,
            Phase::Word | Phase::Quote(_) => {
                if ch == escape {
                    match chars.next() {
                        Some((_, escaped)) => word.push(escaped),
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(ch);
                }
            }
        }
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        flags.push(word);
    }
    ("", flags)
}

/// Splits on runs of BuildKit's whitespace, without looking at quotes.
fn split_whitespace(rest: &str) -> Vec<String> {
    rest.split(is_separator)
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `rest` as a JSON array of strings. Returns `None` when it is not
/// JSON, and an error when it is a JSON array holding something else.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, ParseErrorKind> {
    let trimmed = rest.trim_start();
    if !trimmed.starts_with('[') {
        return Ok(None);
    }
    let not_strings = || ParseErrorKind::NotStringArray { text: rest.into() };
    let values: Vec<serde_json::Value> = match serde_json::from_str(trimmed) {
        Ok(values) => values,
        // NOTE: serde_json stops at 128 levels of nesting where Go's decoder
        // allows 10,000. Such an array cannot hold only strings either way.
        Err(error) if error.to_string().contains("recursion limit") => return Err(not_strings()),
        Err(_) => return Ok(None),
    };
    values
        .into_iter()
        .map(|value| match value {
            serde_json::Value::String(text) => Ok(text),
            _ => Err(not_strings()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `RUN`, `CMD`, `ENTRYPOINT`, `SHELL`: a JSON array, or else the whole text
/// as one argument.
fn parse_maybe_json(rest: &str) -> Result<(Vec<String>, bool), ParseErrorKind> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest)? {
        Some(args) => Ok((args, true)),
        None => Ok((vec![rest.to_owned()], false)),
    }
}

/// `ADD`, `COPY`, `VOLUME`: a JSON array, or else whitespace-separated words.
fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), ParseErrorKind> {
    match parse_json(rest)? {
        Some(args) => Ok((args, true)),
        None => Ok((split_whitespace(rest), false)),
    }
}

/// `HEALTHCHECK`: the first word (`CMD`, `NONE`, ...) and then a command in
/// the `CMD` shape.
fn parse_healthcheck(rest: &str) -> Result<(Vec<String>, bool), ParseErrorKind> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    let separator = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let command = rest[separator..].trim_start();
    let (mut args, json) = parse_maybe_json(command)?;
    args.insert(0, rest[..separator].to_owned());
    Ok((args, json))
}

/// Splits into words on whitespace outside quotes, keeping the quotes and
/// escapes in the words (they are removed later by the shell lexer).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut chars = rest.chars().peekable();
    while let Some(ch) = chars.next() {
        match phase {
            Phase::Spaces if ch.is_whitespace() => continue,
            Phase::Spaces | Phase::Word => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    phase = Phase::Spaces;
                    continue;
                }
                phase = Phase::Word;
                if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(ch);
                }
                if ch == escape {
                    let Some(escaped) = chars.next() else {
                        continue;
                    };
                    word.push(ch);
                    word.push(escaped);
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                }
                if ch == escape && quote != '\'' {
                    let Some(escaped) = chars.next() else {
                        phase = Phase::Word;
                        continue;
                    };
                    word.push(ch);
                    word.push(escaped);
                    continue;
                }
                word.push(ch);
            }
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// `ENV` and `LABEL`: `key value separator` triples, from either the legacy
/// `name value` form (separator empty) or `name=value` words (separator `=`).
fn parse_name_value(
    rest: &str,
    keyword: &str,
    escape: char,
) -> Result<Vec<String>, ParseErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let Some((name, value)) = rest.split_once(is_separator) else {
            return Err(ParseErrorKind::MissingValue {
                keyword: keyword.to_uppercase().into(),
                text: rest.into(),
            });
        };
        let value = value.trim_start_matches(is_separator);
        return Ok(vec![name.to_owned(), value.to_owned(), String::new()]);
    }
    let mut triples = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(ParseErrorKind::MissingEquals { word: word.into() });
        };
        triples.extend([name.to_owned(), value.to_owned(), "=".to_owned()]);
    }
    Ok(triples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_stop_at_double_dash() {
        let (rest, flags) = extract_flags("--a=1 -- --b x", '\\');
        assert_eq!(flags, ["--a=1"]);
        assert_eq!(rest.trim(), "--b x");
    }

    #[test]
    fn flags_remove_quotes_and_escapes() {
        let (rest, flags) = extract_flags("--a=\"x y\" --b=c\\ d e", '\\');
        assert_eq!(flags, ["--a=x y", "--b=c d"]);
        assert_eq!(rest, "e");
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            parse_words("abc=\"123 456\" def", '\\'),
            ["abc=\"123 456\"", "def"]
        );
    }
}
