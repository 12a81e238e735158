//! `--chmod` values: an octal mode (`0644`) or a symbolic one in the
//! syntax of chmod(1) (`u+x`, `go-w`, `a=rX,u+s`).

/// A malformed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid --chmod value {value:?}: expected an octal mode such as 0644 or a symbolic one such as u+x,go-w"
)]
pub struct InvalidChmod {
    /// The value as written.
    pub value: String,
}

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chmod {
    /// An octal mode, applied as is.
    Octal(u32),
    /// Symbolic clauses, applied in order to each file's own mode.
    Symbolic(Vec<Clause>),
}

/// One clause of a symbolic mode, such as `go-w`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clause {
    /// The classes: bit 0 user, 1 group, 2 others.
    who: u8,
    actions: Vec<(char, Permissions)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Permissions {
    /// Letters among `rwxXst`.
    Letters(String),
    /// The current bits of another class: `u`, `g` or `o`.
    CopyOf(char),
}

const USER: u8 = 1;
const GROUP: u8 = 2;
const OTHERS: u8 = 4;
const ALL: u8 = USER | GROUP | OTHERS;

impl Chmod {
    /// Parses an octal or symbolic mode.
    pub(crate) fn parse(value: &str) -> Result<Self, InvalidChmod> {
        let invalid = || InvalidChmod {
            value: value.to_owned(),
        };
        if value.chars().next().is_some_and(|ch| ch.is_ascii_digit()) {
            return u32::from_str_radix(value, 8)
                .ok()
                .filter(|mode| *mode <= 0o7777)
                .map(Self::Octal)
                .ok_or_else(invalid);
        }
        value
            .split(',')
            .map(parse_clause)
            .collect::<Option<Vec<_>>>()
            .map(Self::Symbolic)
            .ok_or_else(invalid)
    }

    /// Returns the mode for an entry whose current permission bits are
    /// `mode`. `X` adds execute bits only to directories and to files that
    /// already have one.
    pub(crate) fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Self::Octal(octal) => *octal,
            Self::Symbolic(clauses) => clauses
                .iter()
                .fold(mode & 0o7777, |mode, clause| clause.apply(mode, is_dir)),
        }
    }
}

fn parse_clause(text: &str) -> Option<Clause> {
    let operator_at = text.find(['+', '-', '='])?;
    let who = text[..operator_at].chars().try_fold(0, |who, ch| {
        Some(
            who | match ch {
                'u' => USER,
                'g' => GROUP,
                'o' => OTHERS,
                'a' => ALL,
                _ => return None,
            },
        )
    })?;
    let mut actions = Vec::new();
    let mut rest = &text[operator_at..];
    while let Some(operator) = rest.chars().next() {
        let after = &rest[1..];
        let end = after.find(['+', '-', '=']).unwrap_or(after.len());
        let letters = &after[..end];
        let permissions = match letters {
            "u" | "g" | "o" => Permissions::CopyOf(letters.chars().next()?),
            _ if letters.chars().all(|ch| "rwxXst".contains(ch)) => {
                Permissions::Letters(letters.to_owned())
            }
            _ => return None,
        };
        actions.push((operator, permissions));
        rest = &after[end..];
    }
    Some(Clause { who, actions })
}

impl Clause {
    fn apply(&self, mut mode: u32, is_dir: bool) -> u32 {
        // NOTE: a clause without a class acts on all classes and ignores the
        // umask, because a build has no umask to apply.
        let who = if self.who == 0 { ALL } else { self.who };
        let class_mask = spread(0o7, who);
        for (operator, permissions) in &self.actions {
            let bits = match permissions {
                Permissions::Letters(letters) => letter_bits(letters, who, mode, is_dir),
                Permissions::CopyOf(class) => spread(class_bits(mode, *class), who),
            };
            mode = match operator {
                '+' => mode | bits,
                '-' => mode & !bits,
                _ => (mode & !(class_mask | special_mask(who))) | bits,
            };
        }
        mode
    }
}

/// Repeats the three bits `triple` into the positions of the classes in
/// `who`.
fn spread(triple: u32, who: u8) -> u32 {
    let mut bits = 0;
    if who & USER != 0 {
        bits |= triple << 6;
    }
    if who & GROUP != 0 {
        bits |= triple << 3;
    }
    if who & OTHERS != 0 {
        bits |= triple;
    }
    bits
}

fn class_bits(mode: u32, class: char) -> u32 {
    match class {
        'u' => (mode >> 6) & 0o7,
        'g' => (mode >> 3) & 0o7,
        _ => mode & 0o7,
    }
}

/// Returns the setuid and setgid bits that belong to the classes in `who`,
/// which `=` clears and `s` sets.
fn special_mask(who: u8) -> u32 {
    let mut bits = 0;
    if who & USER != 0 {
        bits |= 0o4000;
    }
    if who & GROUP != 0 {
        bits |= 0o2000;
    }
    bits
}

fn letter_bits(letters: &str, who: u8, mode: u32, is_dir: bool) -> u32 {
    let mut triple = 0;
    let mut special = 0;
    for letter in letters.chars() {
        match letter {
            'r' => triple |= 0o4,
            'w' => triple |= 0o2,
            'x' => triple |= 0o1,
            'X' if is_dir || mode & 0o111 != 0 => triple |= 0o1,
            's' => special |= special_mask(who),
            't' if who & OTHERS != 0 => special |= 0o1000,
            _ => {}
        }
    }
    spread(triple, who) | special
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbolic(value: &str, mode: u32, is_dir: bool) -> u32 {
        Chmod::parse(value).expect("valid mode").apply(mode, is_dir)
    }

    #[test]
    fn octal_modes_parse() {
        assert_eq!(Chmod::parse("0755"), Ok(Chmod::Octal(0o755)));
        assert_eq!(Chmod::parse("4755"), Ok(Chmod::Octal(0o4755)));
        assert!(Chmod::parse("99").is_err());
        assert!(Chmod::parse("17777").is_err());
    }

    #[test]
    fn symbolic_modes_change_bits() {
        assert_eq!(symbolic("u+x", 0o644, false), 0o744);
        assert_eq!(symbolic("go-w", 0o666, false), 0o644);
        assert_eq!(symbolic("a=rX", 0o700, false), 0o555);
        assert_eq!(symbolic("a=rX", 0o600, false), 0o444);
        assert_eq!(symbolic("a=rX", 0o600, true), 0o555);
        assert_eq!(symbolic("+x", 0o600, false), 0o711);
        assert_eq!(symbolic("u=rwx,g=rx,o=", 0o000, false), 0o750);
        assert_eq!(symbolic("u+s,o+t", 0o755, true), 0o5755);
        assert_eq!(symbolic("g=u", 0o640, false), 0o660);
        assert_eq!(symbolic("o-r+x", 0o644, false), 0o641);
    }

    #[test]
    fn malformed_symbolic_modes_fail() {
        for value in ["u+q", "z+x", "u", "", "u+x,", "+ug"] {
            assert!(Chmod::parse(value).is_err(), "{value:?} was accepted");
        }
    }
}
