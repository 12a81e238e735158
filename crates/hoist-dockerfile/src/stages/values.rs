//! Checks of expanded instruction values: `EXPOSE` ports, `--chmod` modes,
//! `ADD --checksum` digests, `STOPSIGNAL` signals and tmpfs sizes.
//!
//! Each check runs after expansion, because BuildKit checks these values
//! after it has replaced `$VAR`. A check returns the expected form of the
//! value as its error.

/// Checks an `EXPOSE` port the way BuildKit's Dockerfile frontend does:
/// `[[ip:]host-port:]port[-port][/protocol]`, ports 0 to 65535 and the
/// protocols tcp, udp and sctp in any case. BuildKit still accepts the IP
/// and host-port parts (and only lints them), so they are accepted here too.
pub(super) fn check_port(spec: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected port[-port][/tcp|udp|sctp] with ports from 0 to 65535";
    let (ip, host_ports, container) = split_port_parts(spec);
    let (ports, protocol) = container.split_once('/').unwrap_or((container, ""));
    if !matches!(
        protocol.to_ascii_lowercase().as_str(),
        "" | "tcp" | "udp" | "sctp"
    ) {
        return Err(format!(
            "unknown protocol {protocol:?}: expected tcp, udp or sctp"
        ));
    }
    if let Some(ip) = ip {
        let bare = ip
            .strip_prefix('[')
            .and_then(|ip| ip.strip_suffix(']'))
            .unwrap_or(ip);
        if bare.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("invalid IP address {ip:?}"));
        }
    }
    let (start, end) = port_range(ports).ok_or(EXPECTED)?;
    if let Some(host_ports) = host_ports {
        let (host_start, host_end) = port_range(host_ports).ok_or(EXPECTED)?;
        // A single container port may map to a host range; two ranges must
        // have the same length.
        if end != start && end - start != host_end - host_start {
            return Err("the host and container port ranges differ in length".to_owned());
        }
    }
    Ok(())
}

/// Splits `ip:host:container` at its last two colons; an IPv6 address keeps
/// its own colons.
fn split_port_parts(spec: &str) -> (Option<&str>, Option<&str>, &str) {
    let Some((rest, container)) = spec.rsplit_once(':') else {
        return (None, None, spec);
    };
    match rest.rsplit_once(':') {
        Some((ip, host)) => (Some(ip), Some(host), container),
        None => (None, Some(rest), container),
    }
}

/// Parses `port` or `start-end`; `None` when malformed or reversed.
fn port_range(ports: &str) -> Option<(u32, u32)> {
    let (start, end) = match ports.split_once('-') {
        Some((start, end)) if start != end => (start, Some(end)),
        Some((start, _)) => (start, None),
        None => (ports, None),
    };
    let start = port_number(start)?;
    let end = match end {
        Some(end) => port_number(end)?,
        None => start,
    };
    (end >= start).then_some((start, end))
}

/// Parses a port number as Go's `strconv.ParseInt` does, sign included.
fn port_number(text: &str) -> Option<u32> {
    let number = text.parse::<i64>().ok()?;
    u32::try_from(number).ok().filter(|port| *port <= 65535)
}

/// Checks a `--chmod` value: an octal mode up to 7777 or a symbolic mode as
/// chmod(1) writes it (`u+x`, `go-w`, `a=rX`, `u=rw,g=r`). BuildKit accepts
/// symbolic modes since Dockerfile frontend 1.14. An empty value sets no
/// mode, as in BuildKit.
pub(super) fn check_chmod(mode: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected an octal mode up to 7777 or a symbolic mode such as u+x";
    if mode.is_empty() {
        return Ok(());
    }
    if mode.bytes().all(|byte| byte.is_ascii_digit()) {
        return match u32::from_str_radix(mode, 8) {
            Ok(bits) if bits <= 0o7777 => Ok(()),
            _ => Err(EXPECTED.to_owned()),
        };
    }
    if mode.split(',').all(is_symbolic_clause) {
        Ok(())
    } else {
        Err(EXPECTED.to_owned())
    }
}

/// Checks one clause of a symbolic mode: `[ugoa]*` followed by one or more
/// actions, each an operator `+`, `-` or `=` and then permission letters
/// `rwxXst` or the letters `ugo` that copy another class's bits.
fn is_symbolic_clause(clause: &str) -> bool {
    let actions = clause.trim_start_matches(['u', 'g', 'o', 'a']);
    actions.starts_with(['+', '-', '='])
        && actions
            .chars()
            .all(|letter| "+-=rwxXstugo".contains(letter))
}

/// The digest algorithms that BuildKit's digest parser accepts, with the
/// length of their hexadecimal encoding.
const DIGEST_ALGORITHMS: [(&str, usize); 3] = [("sha256", 64), ("sha384", 96), ("sha512", 128)];

/// Checks a digest `algorithm:hex` with a known algorithm and lowercase hex
/// of the algorithm's length, as the OCI digest parser does.
pub(super) fn check_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Err("expected algorithm:hex, such as sha256:<64 hex digits>".to_owned());
    };
    let Some(&(_, length)) = DIGEST_ALGORITHMS
        .iter()
        .find(|(known, _)| *known == algorithm)
    else {
        return Err(format!(
            "unsupported digest algorithm {algorithm:?}: expected sha256, sha384 or sha512"
        ));
    };
    let lowercase_hex = encoded
        .bytes()
        .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if encoded.len() != length || !lowercase_hex {
        return Err(format!(
            "expected {algorithm}:<{length} lowercase hex digits>"
        ));
    }
    Ok(())
}

/// Checks an `ADD --checksum` value. For HTTP sources BuildKit parses it as
/// a digest. For Git sources it is a commit or tag id, or a prefix of one,
/// in hexadecimal.
pub(super) fn check_checksum(checksum: &str, sources: &[String]) -> Result<(), String> {
    let from_git = !sources.is_empty() && sources.iter().all(|source| is_git_source(source));
    let is_commit = !checksum.is_empty()
        && checksum.len() <= 64
        && checksum.bytes().all(|byte| byte.is_ascii_hexdigit());
    if from_git && is_commit {
        return Ok(());
    }
    check_digest(checksum).map_err(|reason| {
        if from_git {
            format!("{reason}, or a hexadecimal commit id for a Git source")
        } else {
            reason
        }
    })
}

/// Tells whether an `ADD` source is a Git repository.
// NOTE: this covers the common forms (git://, ssh://, git@host:path and
// http(s) URLs ending in .git). BuildKit's Git reference parser accepts a
// few more forms, for which a hexadecimal checksum is rejected here.
fn is_git_source(source: &str) -> bool {
    let without_fragment = source.split('#').next().unwrap_or(source);
    source.starts_with("git://")
        || source.starts_with("ssh://")
        || source.starts_with("git@")
        || ((source.starts_with("http://") || source.starts_with("https://"))
            && without_fragment.ends_with(".git"))
}

/// Signal names that Linux defines, without the `SIG` prefix. Real-time
/// signals are checked apart, as `RTMIN+n` and `RTMAX-n`.
const SIGNAL_NAMES: [&str; 34] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
];

/// Number of the last real-time signal on Linux, `SIGRTMAX`.
const MAX_SIGNAL: u32 = 64;

/// Checks a `STOPSIGNAL` value: a number from 1 to 64 or a Linux signal
/// name, in any case and with or without the `SIG` prefix. BuildKit takes
/// any non-zero number; numbers Linux has no signal for are rejected here.
pub(super) fn check_signal(signal: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected a signal name such as SIGTERM or a number from 1 to 64";
    if signal.bytes().all(|byte| byte.is_ascii_digit()) && !signal.is_empty() {
        return match signal.parse::<u32>() {
            Ok(number) if (1..=MAX_SIGNAL).contains(&number) => Ok(()),
            _ => Err(EXPECTED.to_owned()),
        };
    }
    let upper = signal.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNAL_NAMES.contains(&name) || is_realtime_signal(name) {
        Ok(())
    } else {
        Err(EXPECTED.to_owned())
    }
}

/// Tells whether `name` is `RTMIN`, `RTMIN+1` to `RTMIN+15`, `RTMAX-14` to
/// `RTMAX-1` or `RTMAX`.
fn is_realtime_signal(name: &str) -> bool {
    let offset = |rest: &str, sign: char| match rest.strip_prefix(sign) {
        None => rest.is_empty(),
        Some(number) => {
            let limit = if sign == '+' { 15 } else { 14 };
            !number.starts_with('0')
                && number
                    .parse::<u32>()
                    .is_ok_and(|number| (1..=limit).contains(&number))
        }
    };
    match (name.strip_prefix("RTMIN"), name.strip_prefix("RTMAX")) {
        (Some(rest), _) => offset(rest, '+'),
        (_, Some(rest)) => offset(rest, '-'),
        _ => false,
    }
}

/// Checks a tmpfs `size` the way Docker's `RAMInBytes` reads it. A size is a
/// non-negative decimal number and an optional space, then either nothing,
/// a plain `b`, or a unit `k`, `m`, `g`, `t` or `p` (powers of 1024) with an
/// optional `b` or `ib`, in any case: `64m`, `1.5GiB`, `100`, `512 kb`.
pub(super) fn check_size(size: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected a size such as 64m, 1g or 512KiB";
    let split = size
        .rfind(|letter: char| letter.is_ascii_digit() || letter == '.' || letter == ' ')
        .ok_or(EXPECTED)?;
    // A space before the unit is dropped; any other character stays with
    // the number, which then fails to parse.
    let (number, suffix) = match size.as_bytes()[split] {
        b' ' => (&size[..split], &size[split + 1..]),
        _ => size.split_at(split + 1),
    };
    let is_decimal = number.bytes().filter(|byte| *byte == b'.').count() <= 1
        && number.bytes().any(|byte| byte.is_ascii_digit())
        && number
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.');
    let suffix = suffix.to_ascii_lowercase();
    let known_suffix = match suffix.as_bytes() {
        [] | [b'b'] => true,
        [unit, rest @ ..] => b"kmgtp".contains(unit) && matches!(rest, [] | [b'b'] | [b'i', b'b']),
    };
    if is_decimal && known_suffix {
        Ok(())
    } else {
        Err(EXPECTED.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_buildkit_accepts() {
        for spec in [
            "80",
            "80/tcp",
            "53/UDP",
            "9000/sctp",
            "8000-8010/udp",
            "0",
            "65535",
            "8080:80",
            "127.0.0.1:8080:80/tcp",
            "[::1]:8080:80",
            "8000-8001:80",
            "80-80",
        ] {
            assert_eq!(check_port(spec), Ok(()), "{spec}");
        }
    }

    #[test]
    fn ports_buildkit_rejects() {
        for spec in [
            "abc",
            "",
            "/tcp",
            "80/http",
            "65536",
            "-1",
            "8010-8000",
            "8000-",
            "80:",
            "999.0.0.1:80:80",
            "8000-8002:80-81",
        ] {
            assert!(check_port(spec).is_err(), "{spec}");
        }
    }

    #[test]
    fn chmod_octal_and_symbolic() {
        for mode in [
            "",
            "755",
            "0644",
            "7777",
            "u+x",
            "go-w",
            "a=rX",
            "u=rw,g=r,o=",
            "+x",
            "g=u",
            "u+s",
            "o+t",
            "u+rw-x",
        ] {
            assert_eq!(check_chmod(mode), Ok(()), "{mode}");
        }
        for mode in [
            "999", "17777", "u", "x+u", "u+z", "u+x,", "rwx", "0o755", "-1",
        ] {
            assert!(check_chmod(mode).is_err(), "{mode}");
        }
    }

    #[test]
    fn checksum_digests_and_commits() {
        let http = ["https://example.invalid/file.tar".to_owned()];
        let git = ["https://example.invalid/repo.git#v1".to_owned()];
        let sha256 = format!("sha256:{}", "a".repeat(64));
        let sha512 = format!("sha512:{}", "0".repeat(128));
        assert_eq!(check_checksum(&sha256, &http), Ok(()));
        assert_eq!(check_checksum(&sha512, &http), Ok(()));
        assert_eq!(check_checksum("0123abcd", &git), Ok(()));
        assert!(check_checksum("0123abcd", &http).is_err());
        assert!(check_checksum(&format!("sha256:{}", "A".repeat(64)), &http).is_err());
        assert!(check_checksum(&format!("sha256:{}", "a".repeat(63)), &http).is_err());
        assert!(check_checksum(&format!("md5:{}", "a".repeat(32)), &http).is_err());
        assert!(check_checksum("foobar", &git).is_err());
    }

    #[test]
    fn signals_linux_knows() {
        for signal in [
            "SIGTERM",
            "term",
            "SIGKILL",
            "9",
            "1",
            "64",
            "SIGRTMIN",
            "RTMIN+15",
            "SIGRTMAX-14",
            "sigusr1",
        ] {
            assert_eq!(check_signal(signal), Ok(()), "{signal}");
        }
        for signal in [
            "SIGNOPE", "0", "65", "", "SIG", "RTMIN+16", "RTMAX-0", "RTMIN+01", "-9",
        ] {
            assert!(check_signal(signal).is_err(), "{signal}");
        }
    }

    #[test]
    fn tmpfs_sizes() {
        for size in [
            "64m", "1.5GiB", "100", "512 kb", "10b", "2P", "1k", "1.m", ".5g",
        ] {
            assert_eq!(check_size(size), Ok(()), "{size}");
        }
        for size in [
            "abc", "", "m", "1x", "1kk", "1kib2", "-1m", "1..2m", "1  m", ". m",
        ] {
            assert!(check_size(size).is_err(), "{size}");
        }
    }
}
