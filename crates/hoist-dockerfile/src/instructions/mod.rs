//! Typed instructions: one Rust type per Dockerfile instruction, with its
//! builder flags checked. Values are kept as written, and [`crate::stages`]
//! expands them with the ARG and ENV values in scope.

mod duration;
mod flags;
mod mount;
mod print;

use crate::error_value::ErrorValue;
use std::time::Duration;

use serde::Serialize;

pub use mount::{Mount, MountType, Sharing};

use crate::parser::{Dockerfile, Heredoc, Node};
use flags::{FlagType, Flags};

/// A failure to turn a parse-tree node into a typed instruction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct InstructionError {
    /// File name given to the parser.
    pub file: String,
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// The kind of failure.
    pub kind: Box<InstructionErrorKind>,
}

/// The kinds of [`InstructionError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstructionErrorKind {
    /// The keyword is not a Dockerfile instruction.
    #[error("unknown instruction: {keyword}")]
    UnknownInstruction {
        /// Keyword as written.
        keyword: ErrorValue,
    },
    /// The instruction does not accept this flag.
    #[error("unknown flag --{flag} for {instruction}")]
    UnknownFlag {
        /// Instruction keyword, uppercased.
        instruction: String,
        /// Flag name without dashes.
        flag: ErrorValue,
    },
    /// A flag that takes a value was given none.
    #[error("missing a value on flag --{flag} of {instruction}")]
    MissingFlagValue {
        /// Instruction keyword, uppercased.
        instruction: String,
        /// Flag name without dashes.
        flag: ErrorValue,
    },
    /// A flag that may appear once was given twice.
    #[error("duplicate flag --{flag} for {instruction}")]
    DuplicateFlag {
        /// Instruction keyword, uppercased.
        instruction: String,
        /// Flag name without dashes.
        flag: ErrorValue,
    },
    /// A flag value is malformed.
    #[error("invalid value {value:?} for flag --{flag} of {instruction}: {reason}")]
    InvalidFlagValue {
        /// Instruction keyword, uppercased.
        instruction: String,
        /// Flag name without dashes.
        flag: ErrorValue,
        /// The value given.
        value: ErrorValue,
        /// The expected form of the value.
        reason: ErrorValue,
    },
    /// A `RUN --mount` value is malformed.
    #[error("invalid value {value:?} for flag --mount of RUN: {reason}")]
    InvalidMount {
        /// The value given.
        value: ErrorValue,
        /// The reason the value is invalid.
        reason: ErrorValue,
    },
    /// The instruction has the wrong number or shape of arguments.
    #[error("{instruction} {expected}, found {found:?}")]
    InvalidArguments {
        /// Instruction keyword, uppercased.
        instruction: String,
        /// The arguments the instruction requires.
        expected: &'static str,
        /// The instruction as written.
        found: ErrorValue,
    },
    /// A `FROM ... AS name` stage name is invalid.
    #[error(
        "invalid stage name {name:?}: expected a letter followed by letters, digits, '-', '_' or '.'"
    )]
    InvalidStageName {
        /// The name as written.
        name: ErrorValue,
    },
    /// An instruction that `ONBUILD` cannot wrap.
    #[error("{instruction} is not allowed as an ONBUILD trigger")]
    InvalidOnbuildTrigger {
        /// The wrapped keyword, uppercased.
        instruction: String,
    },
}

/// An instruction with the lines it spans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// 1-based first line.
    pub start_line: usize,
    /// 1-based last line, heredoc bodies included.
    pub end_line: usize,
    /// The instruction itself.
    #[serde(flatten)]
    pub kind: InstructionKind,
}

/// The typed instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "instruction", rename_all = "UPPERCASE")]
pub enum InstructionKind {
    /// `FROM [--platform=p] image [AS name]`.
    From(FromInstruction),
    /// `RUN`.
    Run(RunInstruction),
    /// `CMD`.
    Cmd(CommandLine),
    /// `ENTRYPOINT`.
    Entrypoint(CommandLine),
    /// `SHELL ["executable", "parameters"]`.
    Shell(Words),
    /// `COPY`.
    Copy(CopyInstruction),
    /// `ADD`.
    Add(AddInstruction),
    /// `ENV key=value...`.
    Env(Pairs),
    /// `LABEL key=value...`.
    Label(Pairs),
    /// `ARG name[=default]...`.
    Arg(ArgInstruction),
    /// `EXPOSE port[/protocol]...`.
    Expose(Words),
    /// `VOLUME path...`.
    Volume(Words),
    /// `USER user[:group]`.
    User(Text),
    /// `WORKDIR path`.
    Workdir(Text),
    /// `STOPSIGNAL signal`.
    Stopsignal(Text),
    /// `MAINTAINER name` (deprecated).
    Maintainer(Text),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `ONBUILD instruction`.
    Onbuild(OnbuildInstruction),
}

impl InstructionKind {
    /// Returns the instruction keyword in uppercase.
    pub fn keyword(&self) -> &'static str {
        match self {
            Self::From(_) => "FROM",
            Self::Run(_) => "RUN",
            Self::Cmd(_) => "CMD",
            Self::Entrypoint(_) => "ENTRYPOINT",
            Self::Shell(_) => "SHELL",
            Self::Copy(_) => "COPY",
            Self::Add(_) => "ADD",
            Self::Env(_) => "ENV",
            Self::Label(_) => "LABEL",
            Self::Arg(_) => "ARG",
            Self::Expose(_) => "EXPOSE",
            Self::Volume(_) => "VOLUME",
            Self::User(_) => "USER",
            Self::Workdir(_) => "WORKDIR",
            Self::Stopsignal(_) => "STOPSIGNAL",
            Self::Maintainer(_) => "MAINTAINER",
            Self::Healthcheck(_) => "HEALTHCHECK",
            Self::Onbuild(_) => "ONBUILD",
        }
    }
}

/// A single text argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Text {
    /// The argument.
    pub value: String,
}

/// A list of words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Words {
    /// The words.
    pub values: Vec<String>,
}

/// `FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FromInstruction {
    /// Image reference or stage name.
    pub image: String,
    /// Stage name after `AS`, lowercased.
    pub name: Option<String>,
    /// `--platform` value.
    pub platform: Option<String>,
}

/// A command in shell form or exec (JSON) form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", content = "command", rename_all = "lowercase")]
pub enum CommandLine {
    /// Run through the shell.
    Shell(String),
    /// Run directly.
    Exec(Vec<String>),
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInstruction {
    /// The command.
    pub command: CommandLine,
    /// Heredoc bodies.
    pub heredocs: Vec<Heredoc>,
    /// `--mount` values.
    pub mounts: Vec<Mount>,
    /// `--network`: `default`, `none` or `host`.
    pub network: Option<String>,
    /// `--security`: `sandbox` or `insecure`.
    pub security: Option<String>,
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyInstruction {
    /// Source paths (or heredoc names).
    pub sources: Vec<String>,
    /// Destination path.
    pub destination: String,
    /// Heredoc bodies used as sources.
    pub heredocs: Vec<Heredoc>,
    /// `--from` stage, image or context.
    pub from: Option<String>,
    /// `--chown` owner.
    pub chown: Option<String>,
    /// `--chmod` mode.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddInstruction {
    /// Source paths, URLs or heredoc names.
    pub sources: Vec<String>,
    /// Destination path.
    pub destination: String,
    /// Heredoc bodies used as sources.
    pub heredocs: Vec<Heredoc>,
    /// `--chown` owner.
    pub chown: Option<String>,
    /// `--chmod` mode.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--checksum` of a remote source.
    pub checksum: Option<String>,
    /// `--keep-git-dir` for Git sources.
    pub keep_git_dir: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
}

/// A `key=value` pair of `ENV` or `LABEL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pair {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// The pairs of `ENV` or `LABEL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pairs {
    /// The pairs in order.
    pub pairs: Vec<Pair>,
}

/// One `ARG` declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDeclaration {
    /// Argument name.
    pub name: String,
    /// Default value, if given.
    pub default: Option<String>,
}

/// `ARG`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgInstruction {
    /// The declarations in order.
    pub args: Vec<ArgDeclaration>,
}

/// The test of a `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "command", rename_all = "UPPERCASE")]
pub enum HealthTest {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK CMD ...`.
    Cmd(CommandLine),
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// The test command, or `NONE`.
    pub test: HealthTest,
    /// `--interval`.
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--start-interval`.
    pub start_interval: Option<Duration>,
    /// `--retries`.
    pub retries: Option<u32>,
}

/// `ONBUILD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnbuildInstruction {
    /// The trigger, run when another build uses this image.
    pub trigger: Box<InstructionKind>,
    /// The trigger as written.
    pub original: String,
}

/// Converts every node of a parsed file into a typed instruction.
pub fn instructions(dockerfile: &Dockerfile) -> Result<Vec<Instruction>, InstructionError> {
    dockerfile
        .nodes
        .iter()
        .map(|node| {
            let kind = convert(node, &node.heredocs).map_err(|kind| InstructionError {
                file: dockerfile.file.clone(),
                line: node.start_line,
                kind: Box::new(kind),
            })?;
            Ok(Instruction {
                start_line: node.start_line,
                end_line: node.end_line,
                kind,
            })
        })
        .collect()
}

type Converted = Result<InstructionKind, InstructionErrorKind>;

fn arguments_error(node: &Node, expected: &'static str) -> InstructionErrorKind {
    InstructionErrorKind::InvalidArguments {
        instruction: node.command().to_uppercase(),
        expected,
        found: node.original.trim().into(),
    }
}

fn flags(
    node: &Node,
    accepted: &[(&'static str, FlagType)],
) -> Result<Flags, InstructionErrorKind> {
    Flags::parse(&node.command().to_uppercase(), &node.flags, accepted)
}

/// Converts one node; `heredocs` are those read after its line, which for an
/// `ONBUILD` trigger belong to the enclosing node.
fn convert(node: &Node, heredocs: &[Heredoc]) -> Converted {
    match node.command().as_str() {
        "from" => convert_from(node),
        "run" => convert_run(node, heredocs),
        "cmd" => no_flags(node).map(|()| InstructionKind::Cmd(command_line(node))),
        "entrypoint" => no_flags(node).map(|()| InstructionKind::Entrypoint(command_line(node))),
        "shell" => convert_shell(node),
        "copy" => convert_copy(node, heredocs),
        "add" => convert_add(node, heredocs),
        "env" => convert_pairs(node).map(InstructionKind::Env),
        "label" => convert_pairs(node).map(InstructionKind::Label),
        "arg" => convert_arg(node),
        "expose" => at_least_one(node).map(InstructionKind::Expose),
        "volume" => at_least_one(node).map(InstructionKind::Volume),
        "user" => single(node).map(InstructionKind::User),
        "workdir" => single(node).map(InstructionKind::Workdir),
        "stopsignal" => single(node).map(InstructionKind::Stopsignal),
        "maintainer" => single(node).map(InstructionKind::Maintainer),
        "healthcheck" => convert_healthcheck(node),
        "onbuild" => convert_onbuild(node),
        _ => Err(InstructionErrorKind::UnknownInstruction {
            keyword: node.keyword.as_str().into(),
        }),
    }
}

fn no_flags(node: &Node) -> Result<(), InstructionErrorKind> {
    flags(node, &[]).map(drop)
}

fn command_line(node: &Node) -> CommandLine {
    if node.json {
        CommandLine::Exec(node.args.clone())
    } else {
        CommandLine::Shell(node.args.first().cloned().unwrap_or_default())
    }
}

fn single(node: &Node) -> Result<Text, InstructionErrorKind> {
    no_flags(node)?;
    match node.args.as_slice() {
        [value] => Ok(Text {
            value: value.clone(),
        }),
        _ => Err(arguments_error(node, "requires exactly one argument")),
    }
}

fn at_least_one(node: &Node) -> Result<Words, InstructionErrorKind> {
    no_flags(node)?;
    if node.args.is_empty() {
        return Err(arguments_error(node, "requires at least one argument"));
    }
    Ok(Words {
        values: node.args.clone(),
    })
}

/// Checks a stage name the way BuildKit does: `[a-z][a-z0-9-_.]*` after
/// lowercasing.
fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn convert_from(node: &Node) -> Converted {
    let flags = flags(node, &[("platform", FlagType::String)])?;
    let (image, name) = match node.args.as_slice() {
        [image] => (image.clone(), None),
        [image, keyword, name] if keyword.eq_ignore_ascii_case("as") => {
            let name = name.to_ascii_lowercase();
            if !is_valid_stage_name(&name) {
                return Err(InstructionErrorKind::InvalidStageName { name: name.into() });
            }
            (image.clone(), Some(name))
        }
        _ => {
            return Err(arguments_error(
                node,
                "requires either one or three arguments (image AS name)",
            ));
        }
    };
    Ok(InstructionKind::From(FromInstruction {
        image,
        name,
        platform: flags.string("platform"),
    }))
}

fn one_of(
    flag: &str,
    value: Option<String>,
    allowed: &[&str],
) -> Result<Option<String>, InstructionErrorKind> {
    match value {
        Some(value) if !allowed.contains(&value.as_str()) => {
            Err(InstructionErrorKind::InvalidFlagValue {
                instruction: "RUN".to_owned(),
                flag: flag.into(),
                reason: format!("expected one of {}", allowed.join(", ")).into(),
                value: value.into(),
            })
        }
        value => Ok(value),
    }
}

fn convert_run(node: &Node, heredocs: &[Heredoc]) -> Converted {
    let flags = flags(
        node,
        &[
            ("mount", FlagType::List),
            ("network", FlagType::String),
            ("security", FlagType::String),
        ],
    )?;
    if node.args.is_empty() {
        return Err(arguments_error(node, "requires a command"));
    }
    let mounts = flags
        .list("mount")
        .iter()
        .map(|value| mount::parse_mount(value))
        .collect::<Result<_, _>>()?;
    Ok(InstructionKind::Run(RunInstruction {
        command: command_line(node),
        heredocs: heredocs.to_vec(),
        mounts,
        network: one_of(
            "network",
            flags.string("network"),
            &["default", "none", "host"],
        )?,
        security: one_of(
            "security",
            flags.string("security"),
            &["sandbox", "insecure"],
        )?,
    }))
}

fn convert_shell(node: &Node) -> Converted {
    no_flags(node)?;
    if !node.json || node.args.is_empty() {
        return Err(arguments_error(node, "requires a non-empty JSON array"));
    }
    Ok(InstructionKind::Shell(Words {
        values: node.args.clone(),
    }))
}

fn sources_and_destination(node: &Node) -> Result<(Vec<String>, String), InstructionErrorKind> {
    match node.args.split_last() {
        Some((destination, sources)) if !sources.is_empty() => {
            Ok((sources.to_vec(), destination.clone()))
        }
        _ => Err(arguments_error(
            node,
            "requires at least two arguments (sources and destination)",
        )),
    }
}

fn convert_copy(node: &Node, heredocs: &[Heredoc]) -> Converted {
    let flags = flags(
        node,
        &[
            ("from", FlagType::String),
            ("chown", FlagType::String),
            ("chmod", FlagType::String),
            ("link", FlagType::Bool),
            ("parents", FlagType::Bool),
            ("exclude", FlagType::List),
        ],
    )?;
    let (sources, destination) = sources_and_destination(node)?;
    Ok(InstructionKind::Copy(CopyInstruction {
        sources,
        destination,
        heredocs: heredocs.to_vec(),
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        exclude: flags.list("exclude"),
    }))
}

fn convert_add(node: &Node, heredocs: &[Heredoc]) -> Converted {
    let flags = flags(
        node,
        &[
            ("chown", FlagType::String),
            ("chmod", FlagType::String),
            ("link", FlagType::Bool),
            ("checksum", FlagType::String),
            ("keep-git-dir", FlagType::Bool),
            ("exclude", FlagType::List),
        ],
    )?;
    let (sources, destination) = sources_and_destination(node)?;
    Ok(InstructionKind::Add(AddInstruction {
        sources,
        destination,
        heredocs: heredocs.to_vec(),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir"),
        exclude: flags.list("exclude"),
    }))
}

fn convert_pairs(node: &Node) -> Result<Pairs, InstructionErrorKind> {
    no_flags(node)?;
    if node.args.is_empty() {
        return Err(arguments_error(
            node,
            "requires at least one key=value pair",
        ));
    }
    let mut pairs = Vec::new();
    for triple in node.args.chunks(3) {
        let [key, value, _separator] = triple else {
            return Err(arguments_error(node, "requires key=value pairs"));
        };
        if key.is_empty() {
            return Err(arguments_error(node, "requires a non-empty key"));
        }
        pairs.push(Pair {
            key: key.clone(),
            value: value.clone(),
        });
    }
    Ok(Pairs { pairs })
}

fn convert_arg(node: &Node) -> Converted {
    no_flags(node)?;
    if node.args.is_empty() {
        return Err(arguments_error(node, "requires at least one argument"));
    }
    let args = node
        .args
        .iter()
        .map(|word| match word.split_once('=') {
            Some((name, default)) => ArgDeclaration {
                name: name.to_owned(),
                default: Some(default.to_owned()),
            },
            None => ArgDeclaration {
                name: word.clone(),
                default: None,
            },
        })
        .collect();
    Ok(InstructionKind::Arg(ArgInstruction { args }))
}

fn duration_flag(flags: &Flags, name: &str) -> Result<Option<Duration>, InstructionErrorKind> {
    let Some(value) = flags.string(name) else {
        return Ok(None);
    };
    let invalid = |reason: &str| InstructionErrorKind::InvalidFlagValue {
        instruction: "HEALTHCHECK".to_owned(),
        flag: name.into(),
        value: value.as_str().into(),
        reason: reason.into(),
    };
    let duration = duration::parse_go_duration(&value)
        .ok_or_else(|| invalid("expected a duration such as 30s or 1m30s"))?;
    if !duration.is_zero() && duration < Duration::from_millis(1) {
        return Err(invalid("expected 0 or at least 1ms"));
    }
    Ok(Some(duration))
}

fn convert_healthcheck(node: &Node) -> Converted {
    let flags = flags(
        node,
        &[
            ("interval", FlagType::String),
            ("timeout", FlagType::String),
            ("start-period", FlagType::String),
            ("start-interval", FlagType::String),
            ("retries", FlagType::String),
        ],
    )?;
    let Some((test_type, command)) = node.args.split_first() else {
        return Err(arguments_error(
            node,
            "requires NONE or CMD followed by a command",
        ));
    };
    let test = match test_type.to_ascii_uppercase().as_str() {
        "NONE" if command.is_empty() && node.flags.is_empty() => HealthTest::None,
        "NONE" => return Err(arguments_error(node, "NONE takes no flags or arguments")),
        "CMD" if command.is_empty() => return Err(arguments_error(node, "CMD requires a command")),
        "CMD" if node.json => HealthTest::Cmd(CommandLine::Exec(command.to_vec())),
        "CMD" => HealthTest::Cmd(CommandLine::Shell(command.join(" "))),
        _ => {
            return Err(arguments_error(
                node,
                "requires NONE or CMD followed by a command",
            ));
        }
    };
    let retries = match flags.string("retries") {
        None => None,
        Some(value) => {
            Some(
                value
                    .parse::<u32>()
                    .map_err(|_| InstructionErrorKind::InvalidFlagValue {
                        instruction: "HEALTHCHECK".to_owned(),
                        flag: "retries".into(),
                        value: value.into(),
                        reason: "expected a non-negative integer".into(),
                    })?,
            )
        }
    };
    Ok(InstructionKind::Healthcheck(Healthcheck {
        test,
        interval: duration_flag(&flags, "interval")?,
        timeout: duration_flag(&flags, "timeout")?,
        start_period: duration_flag(&flags, "start-period")?,
        start_interval: duration_flag(&flags, "start-interval")?,
        retries,
    }))
}

fn convert_onbuild(node: &Node) -> Converted {
    no_flags(node)?;
    let Some(child) = &node.child else {
        return Err(arguments_error(node, "requires an instruction"));
    };
    let command = child.command();
    if matches!(command.as_str(), "onbuild" | "from" | "maintainer") {
        return Err(InstructionErrorKind::InvalidOnbuildTrigger {
            instruction: command.to_uppercase(),
        });
    }
    Ok(InstructionKind::Onbuild(OnbuildInstruction {
        trigger: Box::new(convert(child, &node.heredocs)?),
        original: child.original.clone(),
    }))
}
