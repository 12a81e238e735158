//! Builder flags (`--name=value`, `--name`) checked against the flags an
//! instruction accepts, like BuildKit's `BFlags`.

use std::collections::BTreeMap;

use super::InstructionErrorKind;

/// The type of value a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlagType {
    /// `--name` or `--name=true|false`.
    Bool,
    /// `--name=value`, at most once.
    String,
    /// `--name=value`, any number of times.
    List,
}

/// The flags given to one instruction, by name.
#[derive(Debug, Default)]
pub(super) struct Flags {
    values: BTreeMap<&'static str, Vec<String>>,
}

impl Flags {
    /// Checks `words` (each `--name[=value]`) against `accepted`.
    pub(super) fn parse(
        instruction: &str,
        words: &[String],
        accepted: &[(&'static str, FlagType)],
    ) -> Result<Self, InstructionErrorKind> {
        let mut flags = Self::default();
        for word in words {
            let body = word.strip_prefix("--").unwrap_or(word);
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let Some(&(name, flag_type)) = accepted.iter().find(|(known, _)| *known == name) else {
                return Err(InstructionErrorKind::UnknownFlag {
                    instruction: instruction.to_owned(),
                    flag: name.into(),
                });
            };
            let value = check_value(instruction, name, flag_type, value)?;
            let values = flags.values.entry(name).or_default();
            if flag_type != FlagType::List && !values.is_empty() {
                return Err(InstructionErrorKind::DuplicateFlag {
                    instruction: instruction.to_owned(),
                    flag: name.into(),
                });
            }
            values.push(value);
        }
        Ok(flags)
    }

    /// Returns the value of a string flag.
    pub(super) fn string(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .and_then(|values| values.first().cloned())
    }

    /// Returns whether a boolean flag is set to true.
    pub(super) fn bool(&self, name: &str) -> bool {
        self.string(name).is_some_and(|value| value == "true")
    }

    /// Returns every value of a list flag.
    pub(super) fn list(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }
}

fn check_value(
    instruction: &str,
    name: &str,
    flag_type: FlagType,
    value: Option<&str>,
) -> Result<String, InstructionErrorKind> {
    match (flag_type, value) {
        (FlagType::Bool, None) => Ok("true".to_owned()),
        (FlagType::Bool, Some(value)) => match value.to_ascii_lowercase().as_str() {
            boolean @ ("true" | "false") => Ok(boolean.to_owned()),
            _ => Err(InstructionErrorKind::InvalidFlagValue {
                instruction: instruction.to_owned(),
                flag: name.into(),
                value: value.into(),
                reason: "expected true or false".into(),
            }),
        },
        (_, Some(value)) => Ok(value.to_owned()),
        (_, None) => Err(InstructionErrorKind::MissingFlagValue {
            instruction: instruction.to_owned(),
            flag: name.into(),
        }),
    }
}
