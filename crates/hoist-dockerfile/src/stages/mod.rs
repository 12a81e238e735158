//! Build stages: ARG and ENV scoping, expansion of instruction values, the
//! stage dependency graph, `--target` and the stages a target needs.
//!
//! Scoping follows BuildKit. `ARG`s before the first `FROM` are global and
//! usable in `FROM`. Inside a stage an ARG is visible only after it is
//! declared there, and an ARG without a default takes the global value.
//! `--build-arg` values override defaults. A stage built `FROM` another stage
//! starts with that stage's ENV and declared ARGs. ENV wins over an ARG of
//! the same name.
//!
//! A stage built `FROM` an image starts with the image's ENV, and the
//! image's `ONBUILD` triggers run first in the stage. This crate does no
//! I/O, so the caller reads those from the pulled images and passes them to
//! [`resolve_with_bases`]. A first [`resolve`] lists the images that the
//! target needs. A stage built `FROM` another stage runs that stage's
//! `ONBUILD` triggers too, as BuildKit does since v0.17.1.
//!
//! As in BuildKit, a stage whose base sets no `PATH` starts with
//! [`DEFAULT_PATH`], except on Windows.

mod expand;
mod reference;
mod values;
mod variables;

use crate::error_value::ErrorValue;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::instructions::{Instruction, InstructionKind};
use crate::shell::{ExpandError, Lexer};

/// The `PATH` that a stage starts with when its base sets none, as BuildKit
/// sets it on Linux.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub use variables::{Variable, Variables};

/// Maximum total size in bytes of the names and values of all ARG and ENV
/// variables in one scope, 16 MiB. Each line can add a variable of up to
/// [`crate::shell::MAX_EXPANDED_LENGTH`] bytes, so without a cap a short
/// file could hold gigabytes of variables.
pub const MAX_SCOPE_BYTES: usize = 16 << 20;

/// Maximum total size in bytes of everything that resolution produces over
/// the whole build, 64 MiB: every expanded word of every instruction in
/// every stage, every copy of an `ONBUILD` trigger that a stage runs, and
/// every copy of a global ARG, build arg or base image ENV that a stage takes.
/// [`MAX_SCOPE_BYTES`] caps one scope, but a short file can expand a large
/// variable on many lines, or run large triggers in many stages, and each
/// result is kept in the [`BuildPlan`]. The limit is 4 times
/// [`crate::read::MAX_DOCKERFILE_BYTES`], far more than a file produces
/// unless it expands large variables again and again.
pub const MAX_TOTAL_EXPANDED_BYTES: usize = 64 << 20;

/// Build arguments that every build accepts without an `ARG` line; they
/// reach `RUN` only, and only when given.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A platform such as `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// Operating system, such as `linux`.
    pub os: String,
    /// Architecture in OCI terms, such as `amd64` or `arm64`.
    pub architecture: String,
    /// Variant, such as `v7`, or empty.
    pub variant: String,
}

impl Platform {
    /// Returns `os/architecture[/variant]`.
    pub fn specifier(&self) -> String {
        if self.variant.is_empty() {
            format!("{}/{}", self.os, self.architecture)
        } else {
            format!("{}/{}/{}", self.os, self.architecture, self.variant)
        }
    }
}

/// The inputs of a build: build args, target and platforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target` stage name, or the last stage when `None`.
    pub target: Option<String>,
    /// Platform the image is built for (`TARGET*` args).
    pub target_platform: Platform,
    /// Platform the build runs on (`BUILD*` args).
    pub build_platform: Platform,
}

/// The parts of a base image's config that resolution reads: its ENV and
/// its `ONBUILD` triggers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImage {
    /// The image's `Env`, as names and values in order.
    pub env: Vec<(String, String)>,
    /// The image's `OnBuild` triggers, parsed, in order.
    pub triggers: Vec<InstructionKind>,
}

/// Base images by the reference that `FROM` names, after expansion.
pub type BaseImages = BTreeMap<String, BaseImage>;

/// A failure to resolve stages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct StageError {
    /// File name given to the parser.
    pub file: String,
    /// 1-based line of the instruction involved, or 0 for the whole file.
    pub line: usize,
    /// The kind of failure.
    pub kind: Box<StageErrorKind>,
}

impl std::fmt::Display for StageError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(formatter, "{}: {}", self.file, self.kind),
            line => write!(formatter, "{}:{line}: {}", self.file, self.kind),
        }
    }
}

/// The kinds of [`StageError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageErrorKind {
    /// An instruction other than `ARG` comes before the first `FROM`.
    #[error("{instruction} is not allowed before the first FROM: only ARG is")]
    BeforeFirstFrom {
        /// The instruction keyword.
        instruction: String,
    },
    /// The file has no `FROM`.
    #[error("no build stage: the file has no FROM")]
    NoStages,
    /// Two stages have the same name.
    #[error("duplicate stage name {name:?}")]
    DuplicateStageName {
        /// The name.
        name: String,
    },
    /// `--target` names no stage.
    #[error("target stage {name:?} could not be found")]
    TargetNotFound {
        /// The requested name.
        name: ErrorValue,
    },
    /// `FROM` expands to an empty image name.
    #[error("FROM {written:?} expands to an empty image name")]
    EmptyBaseName {
        /// The image as written.
        written: ErrorValue,
    },
    /// A `COPY --from` or `RUN --mount=from=` refers to the stage it is in.
    #[error("circular dependency: --from={reference} refers to the stage it is in")]
    SelfReference {
        /// The reference as expanded.
        reference: ErrorValue,
    },
    /// A `COPY --from` or `RUN --mount=from=` refers to a later stage.
    /// BuildKit accepts such a reference when it forms no cycle, but hoist
    /// builds stages in file order, so it rejects it.
    #[error(
        "--from={reference} refers to stage {stage}, which is defined later: \
         only earlier stages can be used"
    )]
    ForwardReference {
        /// The reference as expanded.
        reference: ErrorValue,
        /// Index of the stage it names.
        stage: usize,
    },
    /// A `--from` index names no stage.
    #[error("--from={index} names no stage: the file has {count} stages, numbered from 0")]
    UnknownStageIndex {
        /// The index given.
        index: usize,
        /// Number of stages in the file.
        count: usize,
    },
    /// A value is invalid after expansion.
    #[error("invalid value {value:?} for {place}: {reason}")]
    InvalidValue {
        /// The instruction or flag that took the value, such as `EXPOSE` or
        /// `flag --chmod of COPY`.
        place: String,
        /// The value after expansion.
        value: ErrorValue,
        /// The expected form of the value.
        reason: ErrorValue,
    },
    /// The ARG and ENV variables of one scope grew past [`MAX_SCOPE_BYTES`].
    #[error("ARG and ENV variables in scope total more than {MAX_SCOPE_BYTES} bytes")]
    ScopeTooLarge,
    /// The values that resolution produced over the whole build grew past
    /// [`MAX_TOTAL_EXPANDED_BYTES`]. The error's line is the instruction
    /// that crossed the limit.
    #[error(
        "expanded values in the build total more than {MAX_TOTAL_EXPANDED_BYTES} bytes (64 MiB)"
    )]
    ExpansionTooLarge,
    /// A word cannot be expanded.
    #[error(transparent)]
    Expand(#[from] ExpandError),
}

/// The base of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Base {
    /// An image reference to pull.
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
    /// The empty `scratch` image.
    Scratch,
}

/// One resolved build stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// 0-based index in the file.
    pub index: usize,
    /// Name given with `AS`, lowercased.
    pub name: Option<String>,
    /// The starting point: an image, an earlier stage or scratch.
    pub base: Base,
    /// `--platform` of the `FROM`, expanded.
    pub platform: Option<String>,
    /// Instructions after `FROM`, with values expanded.
    pub instructions: Vec<Instruction>,
    /// Stages this stage uses (base, `COPY --from`, `RUN --mount=from=`).
    pub dependencies: BTreeSet<usize>,
    /// Images this stage uses through `COPY --from` or `RUN --mount=from=`.
    pub image_references: BTreeSet<String>,
    /// ARGs declared in this stage (or inherited), at the end of the stage.
    pub args: Variables,
    /// ENV at the end of the stage, inherited values included.
    pub env: Variables,
}

/// The resolved build: stages, the target and what it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildPlan {
    /// Global ARGs with their resolved values.
    pub global_args: Vec<Variable>,
    /// Every stage in file order.
    pub stages: Vec<Stage>,
    /// Index of the target stage.
    pub target: usize,
    /// Indexes of the stages the target needs, itself included, ascending.
    pub needed: Vec<usize>,
    /// Non-fatal findings, such as unused build args.
    pub warnings: Vec<String>,
}

/// Resolves stages for a list of typed instructions, as if every image base
/// had no ENV and no `ONBUILD` triggers.
pub fn resolve(
    file: &str,
    escape: char,
    instructions: &[Instruction],
    options: &BuildOptions,
) -> Result<BuildPlan, StageError> {
    resolve_with_bases(file, escape, instructions, options, &BaseImages::new())
}

/// Resolves stages for a list of typed instructions, starting each stage
/// built `FROM` an image with that image's ENV and `ONBUILD` triggers from
/// `bases`. An image missing from `bases` counts as having neither.
pub fn resolve_with_bases(
    file: &str,
    escape: char,
    instructions: &[Instruction],
    options: &BuildOptions,
    bases: &BaseImages,
) -> Result<BuildPlan, StageError> {
    let mut resolver = expand::Resolver::new(file, Lexer::new(escape), options, bases);
    resolver.run(instructions)
}

/// Returns the platform args (`TARGETPLATFORM`, `BUILDOS`, ...) for `options`.
pub fn platform_args(options: &BuildOptions) -> Vec<(String, String)> {
    let mut args = Vec::new();
    for (prefix, platform) in [
        ("TARGET", &options.target_platform),
        ("BUILD", &options.build_platform),
    ] {
        args.push((format!("{prefix}PLATFORM"), platform.specifier()));
        args.push((format!("{prefix}OS"), platform.os.clone()));
        args.push((format!("{prefix}ARCH"), platform.architecture.clone()));
        args.push((format!("{prefix}VARIANT"), platform.variant.clone()));
    }
    args
}

/// Returns true for instructions whose kind is `FROM`.
fn is_from(instruction: &Instruction) -> bool {
    matches!(instruction.kind, InstructionKind::From(_))
}
