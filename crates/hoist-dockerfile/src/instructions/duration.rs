//! Durations in Go's `time.ParseDuration` syntax, as `HEALTHCHECK` takes
//! them: a sequence of decimal numbers with units, such as `1m30s` or `1.5h`.

use std::time::Duration;

/// Parses a Go duration. Returns `None` for invalid syntax, negative values
/// and values that overflow.
pub(super) fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.strip_prefix('+').unwrap_or(text);
    if text == "0" {
        return Some(Duration::ZERO);
    }
    if text.is_empty() || text.starts_with('-') {
        return None;
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (nanos, after) = parse_component(rest)?;
        total = total.checked_add(nanos)?;
        rest = after;
    }
    let total = u64::try_from(total).ok()?;
    Some(Duration::from_nanos(total))
}

/// Parses one `<number><unit>` component and returns it in nanoseconds.
fn parse_component(text: &str) -> Option<(u128, &str)> {
    let number_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let number = &text[..number_end];
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let rest = &text[number_end..];
    let unit_end = rest
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(rest.len());
    let scale: u128 = match &rest[..unit_end] {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole.checked_mul(scale)?;
    let mut place = scale;
    for digit in fraction.bytes().take(30) {
        place /= 10;
        nanos = nanos.checked_add(u128::from(digit - b'0') * place)?;
    }
    Some((nanos, &rest[unit_end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
    }

    #[test]
    fn invalid_durations_are_rejected() {
        for text in ["", "5", "s", "-1s", "1x", "1..5s", "99999999999999999999h"] {
            assert_eq!(parse_go_duration(text), None, "{text}");
        }
    }
}
