//! BuildKit's dump format: `(keyword ["--flag"...] "arg"...)`, with strings
//! quoted the way Go's `strconv.Quote` quotes them.

use std::fmt::Write as _;

use super::Node;

pub(super) fn dump_node(node: &Node) -> String {
    let mut out = lowercase(&node.keyword);
    if !node.flags.is_empty() {
        let quoted: Vec<String> = node.flags.iter().map(|flag| go_quote(flag)).collect();
        out.push_str(" [");
        out.push_str(&quoted.join(" "));
        out.push(']');
    }
    if let Some(child) = &node.child {
        out.push_str(" (");
        out.push_str(&dump_node(child));
        out.push(')');
    }
    for arg in &node.args {
        out.push(' ');
        out.push_str(&go_quote(arg));
    }
    out.trim().to_owned()
}

/// Lowercases character by character, as Go's `strings.ToLower` does (no
/// context-dependent rules such as a final sigma).
pub(super) fn lowercase(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// Quotes `text` as Go's `strconv.Quote` does: double quotes, C-style escapes
/// for `\a \b \f \n \r \t \v`, `\xNN`, `\uNNNN` or `\UNNNNNNNN` for
/// characters that are not printable, other characters as they are.
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            _ if is_go_printable(ch) => out.push(ch),
            _ if (ch as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", ch as u32);
            }
            _ if (ch as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", ch as u32);
            }
            _ => {
                let _ = write!(out, "\\U{:08x}", ch as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `unicode.IsPrint`: letters, marks, numbers, punctuation,
/// symbols and the ASCII space.
// NOTE: without Unicode category tables this treats unassigned code points
// as printable, where Go escapes them. Controls, separators, format
// characters, private-use characters and noncharacters are escaped as in Go.
fn is_go_printable(ch: char) -> bool {
    if ch == ' ' {
        return true;
    }
    if ch.is_control() || ch.is_whitespace() {
        return false;
    }
    let code = ch as u32;
    let format = matches!(
        code,
        0xad | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
    );
    let private_use = matches!(code, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd);
    let noncharacter = matches!(code, 0xfdd0..=0xfdef) || code & 0xfffe == 0xfffe;
    !(format || private_use || noncharacter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go_escapes() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\0\x7f\t"), r#""\x00\x7f\t""#);
        assert_eq!(go_quote("♥ ☃"), "\"♥ ☃\"");
        assert_eq!(go_quote("\u{a0}\u{200b}"), r#""\u00a0\u200b""#);
        assert_eq!(go_quote("\u{f0000}"), r#""\U000f0000""#);
    }
}
