//! The stage executor: resolves each stage's base, extracts it into a root
//! directory under the work directory, runs the instructions and records one
//! layer per instruction that changed files.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hoist_dockerfile::dockerignore::{IgnoreMatcher, ignore_file_candidates};
use hoist_dockerfile::instructions::{
    ArgInstruction, CommandLine, CopyInstruction, Instruction, InstructionKind, RunInstruction,
};
use hoist_dockerfile::stages::{Base, BuildPlan, Stage};
use hoist_image::{Digest, History, Image, Layer, Platform};
use hoist_snapshot::{ApplyOptions, Compression, LayerOptions, Snapshotter, WalkSnapshotter};

use crate::copy::{ContextCopy, CopyError};
use crate::run::{RunContext, RunError, run_instruction};
use crate::sandbox::{MountPointStubs, Sandbox};
use crate::user::{UserError, resolve_user};

/// A failure to build a stage.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The base image could not be resolved.
    #[error("failed to resolve base image {reference:?}")]
    Base {
        /// The reference as written in `FROM`.
        reference: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A layer could not be extracted into the stage root.
    #[error("failed to extract layer {digest} into {root}")]
    Extract {
        /// The layer's digest.
        digest: String,
        /// The stage root.
        root: PathBuf,
        /// The cause.
        #[source]
        source: hoist_snapshot::ApplyError,
    },
    /// The work directory could not be created or written.
    #[error("failed to write in the work directory {path}")]
    WorkDir {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A snapshot or layer could not be taken.
    #[error("{file}:{line}: failed to record the layer of {instruction}: {message}")]
    Layer {
        /// The Dockerfile name.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The instruction keyword.
        instruction: &'static str,
        /// The snapshotter's or writer's message.
        message: String,
    },
    /// The `.dockerignore` file is invalid.
    #[error("invalid .dockerignore: {message}")]
    IgnoreFile {
        /// The parser's message, with the line.
        message: String,
    },
    /// An instruction that the executor does not run yet.
    #[error("{file}:{line}: {instruction} is not implemented yet")]
    NotImplemented {
        /// The Dockerfile name.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The instruction keyword.
        instruction: &'static str,
    },
    /// The `USER` of an instruction could not be resolved.
    #[error("{file}:{line}: {source}")]
    User {
        /// The Dockerfile name.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The cause.
        source: UserError,
    },
    /// The `WORKDIR` directory could not be created.
    #[error("{file}:{line}: failed to create WORKDIR {directory:?}")]
    Workdir {
        /// The Dockerfile name.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The directory inside the root.
        directory: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A COPY failed.
    #[error("{file}:{line}: {source}")]
    Copy {
        /// The Dockerfile name.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The cause.
        source: CopyError,
    },
    /// A RUN step failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// A source of base images: given a reference and a platform, returns the
/// image config and its layer blobs.
pub trait BaseImageSource {
    /// Resolves `reference` for `platform`.
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<Image, Box<dyn std::error::Error + Send + Sync>>;
}

/// Base images read from OCI image layouts, one layout per reference.
#[derive(Debug, Clone, Default)]
pub struct LayoutSource {
    layouts: BTreeMap<String, (PathBuf, Option<String>)>,
}

impl LayoutSource {
    /// Maps `reference` to the image tagged `tag` (or the only image) in the
    /// OCI layout at `layout`.
    pub fn insert(&mut self, reference: &str, layout: PathBuf, tag: Option<&str>) {
        self.layouts
            .insert(reference.to_owned(), (layout, tag.map(str::to_owned)));
    }
}

/// A reference that no layout was given for.
#[derive(Debug, thiserror::Error)]
#[error("no OCI layout is configured for {0:?}")]
pub struct UnknownReference(String);

impl BaseImageSource for LayoutSource {
    fn resolve(
        &self,
        reference: &str,
        _platform: &Platform,
    ) -> Result<Image, Box<dyn std::error::Error + Send + Sync>> {
        let (layout, tag) = self
            .layouts
            .get(reference)
            .ok_or_else(|| UnknownReference(reference.to_owned()))?;
        // TODO: pick the platform's entry from an index once the layout
        // reader returns indexes; it returns one manifest today.
        let loaded = hoist_image::read_oci_layout(layout, tag.as_deref())?;
        Ok(loaded.image)
    }
}

/// The settings of a build.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// The Dockerfile name, for errors.
    pub file: String,
    /// The parent of the work directory, such as `/var/tmp`.
    pub work_parent: PathBuf,
    /// The platform of `FROM scratch` stages.
    pub platform: Platform,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The compression of new layers.
    pub compression: Compression,
    /// The build context directory, or `None` for a build without one.
    pub context: Option<PathBuf>,
    /// When set, file mtimes later than this Unix time are written as it in new layers,
    /// as `SOURCE_DATE_EPOCH` does; `Some(0)` for Kaniko's `--reproducible`.
    pub layer_mtime_epoch: Option<i64>,
}

/// A built image and the work directory that contains its new layer blobs.
/// Dropping this value removes the work directory.
#[derive(Debug)]
pub struct BuildOutput {
    /// The image of the target stage.
    pub image: Image,
    work_dir: tempfile::TempDir,
}

impl BuildOutput {
    /// Returns the work directory.
    pub fn work_dir(&self) -> &Path {
        self.work_dir.path()
    }
}

/// Builds the stages that `plan`'s target needs, in order, and returns the
/// target's image. The work directory is removed on failure.
pub fn build(
    plan: &BuildPlan,
    settings: &BuildSettings,
    sandbox: &Sandbox,
    source: &dyn BaseImageSource,
) -> Result<BuildOutput, BuildError> {
    let work_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::WorkDir { path, source }
    };
    let work_dir = tempfile::Builder::new()
        .prefix("hoist-build-")
        .tempdir_in(&settings.work_parent)
        .map_err(work_error(&settings.work_parent))?;
    // TODO: remove the work directory on Ctrl-C too. Dropping the TempDir
    // covers success and failure only, and the binary owns signal handling.
    let blobs = work_dir.path().join("blobs");
    std::fs::create_dir(&blobs).map_err(work_error(&blobs))?;

    let ignore = read_ignore_file(settings)?;
    let mut images: BTreeMap<usize, Image> = BTreeMap::new();
    for &index in &plan.needed {
        let stage = &plan.stages[index];
        let stage_name = stage.name.as_deref().unwrap_or_default();
        let _span = tracing::info_span!("stage", index, stage_name).entered();
        let base = base_image(stage, &images, settings, source)?;
        let executor = StageExecutor {
            plan,
            work_root: work_dir.path().to_path_buf(),
            ignore: ignore.clone(),
            settings,
            sandbox,
            stage_dir: work_dir.path().join(format!("stage-{index}")),
            blobs: blobs.clone(),
        };
        let image = executor.run(stage, base)?;
        images.insert(index, image);
    }
    let image = images
        .remove(&plan.target)
        .unwrap_or_else(|| Image::scratch(&settings.platform));
    Ok(BuildOutput { image, work_dir })
}

/// Reads `<Dockerfile>.dockerignore` or `.dockerignore` from the context.
fn read_ignore_file(settings: &BuildSettings) -> Result<Option<IgnoreMatcher>, BuildError> {
    let Some(context) = &settings.context else {
        return Ok(None);
    };
    let file_name = Path::new(&settings.file)
        .file_name()
        .map_or(settings.file.clone(), |name| {
            name.to_string_lossy().into_owned()
        });
    for candidate in ignore_file_candidates(&file_name) {
        let path = context.join(&candidate);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(BuildError::WorkDir { path, source }),
        };
        return IgnoreMatcher::parse(&text, &candidate)
            .map(Some)
            .map_err(|error| BuildError::IgnoreFile {
                message: error.to_string(),
            });
    }
    Ok(None)
}

/// Resolves `--chown`: a user without a group gets the same number as its
/// group, as Docker documents for COPY.
fn chown_ids(root: &Path, owner: &str) -> Result<(u32, u32), CopyError> {
    let identity = resolve_user(root, owner).map_err(|error| CopyError::Io {
        path: PathBuf::from("/etc/passwd"),
        source: io::Error::other(error.to_string()),
    })?;
    let gid = if owner.contains(':') {
        identity.gid
    } else {
        identity.uid
    };
    Ok((identity.uid, gid))
}

fn base_image(
    stage: &Stage,
    images: &BTreeMap<usize, Image>,
    settings: &BuildSettings,
    source: &dyn BaseImageSource,
) -> Result<Image, BuildError> {
    match &stage.base {
        Base::Scratch => Ok(Image::scratch(&settings.platform)),
        Base::Stage(index) => Ok(images
            .get(index)
            .map(|image| image.derive_child().0)
            .unwrap_or_else(|| Image::scratch(&settings.platform))),
        // TODO: expand the stage's instructions with the base image's ENV.
        // The plan is expanded before any base is pulled, so `ENV
        // PATH=/x:$PATH` on an image base loses the image's PATH today.
        Base::Image(reference) => source
            .resolve(reference, &settings.platform)
            .map(|image| image.derive_child().0)
            .map_err(|source| BuildError::Base {
                reference: reference.clone(),
                source,
            }),
    }
}

/// Runs the instructions of one stage.
struct StageExecutor<'a> {
    plan: &'a BuildPlan,
    work_root: PathBuf,
    ignore: Option<IgnoreMatcher>,
    settings: &'a BuildSettings,
    sandbox: &'a Sandbox,
    stage_dir: PathBuf,
    blobs: PathBuf,
}

/// The mutable state of a stage while it runs.
pub(crate) struct StageState {
    /// The image so far.
    pub(crate) image: Image,
    /// The build args in scope with their values.
    pub(crate) args: Vec<(String, String)>,
    /// Whether this stage set `CMD`, which a later `ENTRYPOINT` keeps.
    pub(crate) cmd_set: bool,
}

impl StageExecutor<'_> {
    fn run(&self, stage: &Stage, base: Image) -> Result<Image, BuildError> {
        let root = self.stage_dir.join("rootfs");
        let scratch = self.stage_dir.join("scratch");
        for directory in [&root, &scratch] {
            std::fs::create_dir_all(directory).map_err(|source| BuildError::WorkDir {
                path: directory.clone(),
                source,
            })?;
        }
        extract_layers(&base, &root)?;
        let stubs = MountPointStubs::create(&root).map_err(|source| BuildError::WorkDir {
            path: root.clone(),
            source,
        })?;

        let mut snapshotter = WalkSnapshotter::new(root.clone(), Default::default());
        let mut state = StageState {
            image: base,
            args: Vec::new(),
            cmd_set: false,
        };
        for instruction in &stage.instructions {
            self.execute(instruction, &mut state, &mut snapshotter, &root, &scratch)?;
        }
        drop(stubs);
        Ok(state.image)
    }

    fn execute(
        &self,
        instruction: &Instruction,
        state: &mut StageState,
        snapshotter: &mut WalkSnapshotter,
        root: &Path,
        scratch: &Path,
    ) -> Result<(), BuildError> {
        let line = instruction.start_line;
        let keyword = instruction.kind.keyword();
        tracing::info!(line, "{}", instruction.kind.to_line());
        match &instruction.kind {
            InstructionKind::Run(run) => {
                let context = self.run_context(state, line, root, scratch);
                self.snapshot_step(snapshotter, state, line, keyword, run_history(run), |_| {
                    run_instruction(self.sandbox, &context, run).map_err(BuildError::from)
                })
            }
            InstructionKind::Arg(arg) => {
                self.declare_args(arg, state);
                add_empty_history(state, instruction.kind.to_line());
                Ok(())
            }
            InstructionKind::Copy(copy) => {
                let created_by = format!("{} # buildkit", instruction.kind.to_line());
                let runtime = state.image.config().config.clone();
                self.snapshot_step(snapshotter, state, line, keyword, created_by, |root| {
                    self.copy_from_context(root, copy, &runtime)
                        .map_err(|source| BuildError::Copy {
                            file: self.settings.file.clone(),
                            line,
                            source,
                        })
                })
            }
            InstructionKind::Add(_) => {
                // TODO: COPY and ADD (context, --from, wildcards, archives,
                // URLs); the sandbox and metadata came first.
                Err(BuildError::NotImplemented {
                    file: self.settings.file.clone(),
                    line,
                    instruction: keyword,
                })
            }
            InstructionKind::Workdir(_) => {
                crate::metadata::apply(&instruction.kind, state);
                let runtime = &state.image.config().config;
                let created_by = crate::metadata::created_by(&instruction.kind, runtime);
                let directory = runtime.working_dir.clone().unwrap_or_default();
                let user = runtime.user.clone().unwrap_or_default();
                self.snapshot_step(snapshotter, state, line, keyword, created_by, |root| {
                    self.create_workdir(root, &directory, &user, line)
                })
            }
            kind => {
                crate::metadata::apply(kind, state);
                let created_by = crate::metadata::created_by(kind, &state.image.config().config);
                add_empty_history(state, created_by);
                Ok(())
            }
        }
    }

    fn run_context(
        &self,
        state: &StageState,
        line: usize,
        root: &Path,
        scratch: &Path,
    ) -> RunContext {
        let runtime = &state.image.config().config;
        RunContext {
            file: self.settings.file.clone(),
            line,
            step: format!("line {line}"),
            root: root.to_path_buf(),
            scratch: scratch.to_path_buf(),
            shell: runtime
                .shell
                .clone()
                .unwrap_or_else(|| vec!["/bin/sh".to_owned(), "-c".to_owned()]),
            env: runtime.env.clone().unwrap_or_default(),
            args: state.args.clone(),
            user: runtime.user.clone().unwrap_or_default(),
            workdir: runtime.working_dir.clone().unwrap_or_default(),
        }
    }

    /// Runs a `COPY` whose sources come from the build context.
    fn copy_from_context(
        &self,
        root: &Path,
        copy: &CopyInstruction,
        runtime: &hoist_image::RuntimeConfig,
    ) -> Result<(), CopyError> {
        // TODO: --parents, --exclude, --link and heredoc sources.
        let unsupported = [
            (copy.parents, "--parents"),
            (!copy.exclude.is_empty(), "--exclude"),
            (copy.link, "--link"),
            (!copy.heredocs.is_empty(), "with heredocs"),
        ];
        if let Some((_, feature)) = unsupported.iter().find(|(used, _)| *used) {
            return Err(CopyError::NotImplemented { feature });
        }
        let (context, origin, ignore) = match &copy.from {
            Some(from) => {
                let index = self.stage_index(from)?;
                let rootfs = self.work_root.join(format!("stage-{index}/rootfs"));
                (rootfs, format!("stage {from:?}"), None)
            }
            None => match &self.settings.context {
                Some(context) => (
                    context.clone(),
                    "the build context".to_owned(),
                    self.ignore.as_ref(),
                ),
                None => {
                    return Err(CopyError::NotImplemented {
                        feature: "without a build context",
                    });
                }
            },
        };
        let owner = match &copy.chown {
            Some(owner) => Some(chown_ids(root, owner)?),
            None if copy.from.is_none() => Some((0, 0)),
            None => None,
        };
        ContextCopy {
            context: &context,
            origin,
            ignore,
            root,
            workdir: runtime.working_dir.as_deref().unwrap_or("/"),
            sources: &copy.sources,
            destination: &copy.destination,
            owner,
            chmod: copy.chmod.as_deref(),
        }
        .run()
    }

    /// Finds the stage that `COPY --from` names, by name or by index.
    fn stage_index(&self, from: &str) -> Result<usize, CopyError> {
        let by_name = self
            .plan
            .stages
            .iter()
            .position(|stage| stage.name.as_deref() == Some(&from.to_ascii_lowercase()));
        let by_index = from
            .parse::<usize>()
            .ok()
            .filter(|index| *index < self.plan.stages.len());
        by_name.or(by_index).ok_or(CopyError::NotImplemented {
            // TODO: --from with an image reference, which needs the base
            // image source and an extracted copy of the image.
            feature: "--from with an image",
        })
    }

    /// Creates the `WORKDIR` directory and its missing parents inside the
    /// root, owned by the current `USER` as BuildKit does.
    fn create_workdir(
        &self,
        root: &Path,
        directory: &str,
        user: &str,
        line: usize,
    ) -> Result<(), BuildError> {
        let user = if user.is_empty() { "0" } else { user };
        let identity = resolve_user(root, user).map_err(|source| BuildError::User {
            file: self.settings.file.clone(),
            line,
            source,
        })?;
        create_directory_in_root(root, Path::new(directory), identity.uid, identity.gid).map_err(
            |source| BuildError::Workdir {
                file: self.settings.file.clone(),
                line,
                directory: directory.to_owned(),
                source,
            },
        )
    }

    /// Records the ARGs of one instruction with their values in scope: a
    /// `--build-arg`, else the default, else the global ARG's value.
    fn declare_args(&self, arg: &ArgInstruction, state: &mut StageState) {
        for declaration in &arg.args {
            let global = self
                .plan
                .global_args
                .iter()
                .find(|variable| variable.name == declaration.name)
                .and_then(|variable| variable.value.clone());
            let value = self
                .settings
                .build_args
                .get(&declaration.name)
                .cloned()
                .or_else(|| declaration.default.clone())
                .or(global);
            state.args.retain(|(name, _)| *name != declaration.name);
            if let Some(value) = value {
                state.args.push((declaration.name.clone(), value));
            }
        }
    }

    /// Runs `step` between two snapshots and adds its layer, or an empty
    /// history entry when it changed nothing.
    fn snapshot_step(
        &self,
        snapshotter: &mut WalkSnapshotter,
        state: &mut StageState,
        line: usize,
        instruction: &'static str,
        created_by: String,
        step: impl FnOnce(&Path) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        let layer_error = |message: String| BuildError::Layer {
            file: self.settings.file.clone(),
            line,
            instruction,
            message,
        };
        let root = snapshotter
            .begin_step()
            .map_err(|error| layer_error(error.to_string()))?;
        step(&root)?;
        let changes = snapshotter
            .end_step()
            .map_err(|error| layer_error(error.to_string()))?;
        if changes.is_empty() {
            add_empty_history(state, created_by);
            return Ok(());
        }
        let layer = self
            .write_layer(snapshotter, &changes)
            .map_err(layer_error)?;
        let history = History {
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".to_owned()),
            ..History::default()
        };
        state.image.add_layer(layer, history);
        Ok(())
    }

    fn write_layer(
        &self,
        snapshotter: &WalkSnapshotter,
        changes: &hoist_snapshot::ChangeSet,
    ) -> Result<Layer, String> {
        let options = LayerOptions {
            compression: self.settings.compression,
            mtime_epoch: self.settings.layer_mtime_epoch,
        };
        let temporary =
            tempfile::NamedTempFile::new_in(&self.blobs).map_err(|error| error.to_string())?;
        let mut file = temporary.reopen().map_err(|error| error.to_string())?;
        let digests =
            hoist_snapshot::write_layer(snapshotter.layer_source(), changes, &options, &mut file)
                .map_err(|error| error.to_string())?;
        let name = digests.digest.as_str().replace(':', "-");
        let path = self.blobs.join(name);
        temporary
            .persist(&path)
            .map_err(|error| error.to_string())?;
        let digest =
            Digest::from_str(digests.digest.as_str()).map_err(|error| error.to_string())?;
        let diff_id =
            Digest::from_str(digests.diff_id.as_str()).map_err(|error| error.to_string())?;
        Ok(Layer::from_file(
            path,
            image_compression(self.settings.compression),
            digest,
            digests.size,
            diff_id,
        ))
    }
}

fn image_compression(compression: Compression) -> hoist_image::Compression {
    match compression {
        Compression::None => hoist_image::Compression::None,
        Compression::Gzip { .. } | Compression::ParallelGzip { .. } => {
            hoist_image::Compression::Gzip
        }
        Compression::Zstd { .. } => hoist_image::Compression::Zstd,
    }
}

fn extract_layers(image: &Image, root: &Path) -> Result<(), BuildError> {
    for layer in image.layers() {
        let extract_error = |source| BuildError::Extract {
            digest: layer.digest.to_string(),
            root: root.to_path_buf(),
            source,
        };
        let blob = layer
            .open()
            .map_err(|error| extract_error(hoist_snapshot::ApplyError::Read(error)))?;
        hoist_snapshot::apply_layer(blob, root, &ApplyOptions::default()).map_err(extract_error)?;
    }
    Ok(())
}

fn add_empty_history(state: &mut StageState, created_by: String) {
    state.image.add_empty_history(History {
        created_by: Some(created_by),
        comment: Some("buildkit.dockerfile.v0".to_owned()),
        empty_layer: true,
        ..History::default()
    });
}

/// Formats a RUN history entry as BuildKit writes it.
fn run_history(run: &RunInstruction) -> String {
    let command = match &run.command {
        CommandLine::Shell(text) => format!("/bin/sh -c {text}"),
        CommandLine::Exec(argv) => argv.join(" "),
    };
    format!("RUN {command} # buildkit")
}

/// Creates `directory` and its missing parents inside `root`, resolving
/// every existing component in the root (`openat2` with `RESOLVE_IN_ROOT`),
/// so a symlink in the image cannot lead the creation outside it.
pub(crate) fn create_directory_in_root(
    root: &Path,
    directory: &Path,
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    use rustix::fs::{AtFlags, Gid, Mode, OFlags, ResolveFlags, Uid};

    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let open_in_root = |relative: &Path| {
        rustix::fs::openat2(
            &root_fd,
            relative,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    };
    let mut current = PathBuf::from(".");
    for component in directory.components() {
        let std::path::Component::Normal(name) = component else {
            continue;
        };
        let parent = open_in_root(&current)?;
        current.push(name);
        match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => rustix::fs::chownat(
                &parent,
                name,
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?,
            Err(rustix::io::Errno::EXIST) => {}
            Err(error) => return Err(error.into()),
        }
    }
    open_in_root(&current).map(drop).map_err(io::Error::from)
}
