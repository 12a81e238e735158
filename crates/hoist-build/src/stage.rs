//! The stage executor: resolves each stage's base, extracts it into a root
//! directory under the work directory, runs the instructions and records one
//! layer per instruction that changed files.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hoist_dockerfile::dockerignore::{IgnoreMatcher, ignore_file_candidates};
use hoist_dockerfile::instructions::{
    AddInstruction, ArgInstruction, CommandLine, CopyInstruction, Instruction, InstructionKind,
    RunInstruction,
};
use hoist_dockerfile::stages::{Base, BuildPlan, Stage};
use hoist_image::{Digest, History, Image, Layer, Platform};
use hoist_snapshot::{ApplyOptions, Compression, LayerOptions};

use crate::cleanup::{WorkDirGuard, is_cancelled};
use crate::copy::{AddOptions, CopyError, CopyRequest, SourceDir, heredoc_bodies};
use crate::run::{RunContext, RunError, run_instruction};
use crate::run_mounts::{MountSources, PreparedMounts, RunMountError, RunMountSettings};
use crate::sandbox::{MountPointStubs, Sandbox};
use crate::snapshot::{SnapshotSettings, StageSnapshots};
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
    #[error("{file}:{line}: failed to record the layer of {instruction}")]
    Layer {
        /// The Dockerfile name.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// The instruction keyword.
        instruction: &'static str,
        /// The snapshotter's or writer's error.
        source: LayerError,
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
    #[error(transparent)]
    User(AtLine<UserError>),
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
    #[error(transparent)]
    Copy(AtLine<CopyError>),
    /// A RUN step failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A `RUN --mount` could not be prepared.
    #[error(transparent)]
    RunMount(AtLine<RunMountError>),
    /// A signal cancelled the build before the instruction at `line`.
    #[error("{file}:{line}: build cancelled")]
    Cancelled {
        /// The Dockerfile name.
        file: String,
        /// 1-based line of the instruction that did not run.
        line: usize,
    },
    /// The snapshot of a whole stage could not be taken or applied.
    #[error("failed to snapshot stage {stage}")]
    StageSnapshot {
        /// The stage's index in the Dockerfile.
        stage: usize,
        /// The snapshotter's or writer's error.
        source: LayerError,
    },
}

/// A failure of the snapshotter or the layer writer, boxed because it comes
/// from several crates.
pub type LayerError = Box<dyn std::error::Error + Send + Sync>;

/// An error of the instruction at a Dockerfile line.
///
/// Its message is `FILE:LINE: ` and the inner error's message, and its
/// source is the inner error's source. So the inner message appears once
/// when a caller prints the chain of causes.
#[derive(Debug)]
pub struct AtLine<E> {
    /// The Dockerfile name.
    pub file: String,
    /// 1-based line of the instruction.
    pub line: usize,
    /// The instruction's error.
    pub error: E,
}

impl<E: std::fmt::Display> std::fmt::Display for AtLine<E> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}:{}: {}", self.file, self.line, self.error)
    }
}

impl<E: std::error::Error> std::error::Error for AtLine<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
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
    /// The snapshotter, Kaniko's `--snapshot-mode` and `--single-snapshot`.
    pub snapshot: SnapshotSettings,
    /// Secrets and the cache directory of `RUN --mount`.
    pub run_mounts: RunMountSettings,
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
    work_dir: WorkDir,
}

impl BuildOutput {
    /// Returns the work directory.
    pub fn work_dir(&self) -> &Path {
        self.work_dir.dir.path()
    }
}

/// A temporary work directory that a signal's cleanup removes too.
#[derive(Debug)]
struct WorkDir {
    /// Dropped first, so that the directory is gone before the guard
    /// releases it to the signal thread.
    dir: tempfile::TempDir,
    _guard: WorkDirGuard,
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
    let dir = tempfile::Builder::new()
        .prefix("hoist-build-")
        .tempdir_in(&settings.work_parent)
        .map_err(work_error(&settings.work_parent))?;
    // Removed on drop after success or failure, and by
    // `cleanup::install_signal_handler` on SIGINT and SIGTERM.
    let work_dir = WorkDir {
        _guard: WorkDirGuard::register(dir.path()),
        dir,
    };
    let work_dir_path = work_dir.dir.path().to_path_buf();
    let blobs = work_dir_path.join("blobs");
    std::fs::create_dir(&blobs).map_err(work_error(&blobs))?;

    let ignore = read_ignore_file(settings)?;
    let copy_images = CopyImages::default();
    let mut images: BTreeMap<usize, Image> = BTreeMap::new();
    for &index in &plan.needed {
        let stage = &plan.stages[index];
        let stage_name = stage.name.as_deref().unwrap_or_default();
        let _span = tracing::info_span!("stage", index, stage_name).entered();
        let mut base = base_image(stage, &images, settings, source)?;
        set_default_path(&mut base);
        let executor = StageExecutor {
            plan,
            work_root: work_dir_path.clone(),
            ignore: ignore.clone(),
            settings,
            sandbox,
            stage_dir: work_dir_path.join(format!("stage-{index}")),
            blobs: blobs.clone(),
            source,
            copy_images: &copy_images,
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
    let identity = resolve_user(root, owner).map_err(|source| CopyError::Chown {
        value: owner.to_owned(),
        source,
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
        // The child's config drops the image's ONBUILD triggers, which the
        // plan already contains as the stage's first instructions when it comes
        // from `bases::plan_build`.
        Base::Image(reference) => source
            .resolve(reference, &settings.platform)
            .map(|image| image.derive_child().0)
            .map_err(|source| BuildError::Base {
                reference: reference.clone(),
                source,
            }),
    }
}

/// Adds `PATH` to the config of a stage whose base sets none, as BuildKit
/// does for every operating system but Windows.
fn set_default_path(image: &mut Image) {
    let config = image.config_mut();
    if config.os == "windows" {
        return;
    }
    let env = config.config.env.get_or_insert_with(Vec::new);
    if !env.iter().any(|variable| variable.starts_with("PATH=")) {
        env.push(format!("PATH={}", hoist_dockerfile::stages::DEFAULT_PATH));
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
    source: &'a dyn BaseImageSource,
    copy_images: &'a CopyImages,
}

/// The images that `COPY --from=<image>` named, each extracted once per
/// build into a directory under the work directory.
#[derive(Default)]
struct CopyImages {
    roots: std::cell::RefCell<BTreeMap<String, PathBuf>>,
}

/// The mutable state of a stage while it runs.
pub(crate) struct StageState {
    /// The image so far.
    pub(crate) image: Image,
    /// The build args in scope with their values.
    pub(crate) args: Vec<(String, String)>,
    /// Whether this stage set `CMD`, which a later `ENTRYPOINT` keeps.
    pub(crate) cmd_set: bool,
    /// The history index of the last instruction that could change files,
    /// which gets the layer of a single snapshot.
    pub(crate) last_file_step: Option<usize>,
}

impl StageExecutor<'_> {
    fn run(&self, stage: &Stage, base: Image) -> Result<Image, BuildError> {
        let root = self.stage_dir.join("rootfs");
        let scratch = self.stage_dir.join("scratch");
        let overlay = self.stage_dir.join("overlay");
        for directory in [&root, &scratch, &overlay] {
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

        let stage_error = |source: LayerError| BuildError::StageSnapshot {
            stage: stage.index,
            source,
        };
        let mut snapshots = StageSnapshots::open(&self.settings.snapshot, &root, &overlay)
            .map_err(|error| stage_error(error.into()))?;
        let first_entry = base.config().history.len();
        let mut state = StageState {
            image: base,
            args: Vec::new(),
            cmd_set: false,
            last_file_step: None,
        };
        for instruction in &stage.instructions {
            if is_cancelled() {
                return Err(BuildError::Cancelled {
                    file: self.settings.file.clone(),
                    line: instruction.start_line,
                });
            }
            self.execute(instruction, &mut state, &mut snapshots, &root, &scratch)?;
        }
        self.finish_single_snapshot(&mut snapshots, &mut state, first_entry)
            .map_err(stage_error)?;
        snapshots
            .merge()
            .map_err(|error| stage_error(error.into()))?;
        drop(stubs);
        Ok(state.image)
    }

    /// Writes the layer of a single-snapshot stage and attaches it to the
    /// history entry of the stage's last instruction that could change
    /// files, keeping the history in order.
    fn finish_single_snapshot(
        &self,
        snapshots: &mut StageSnapshots,
        state: &mut StageState,
        first_entry: usize,
    ) -> Result<(), LayerError> {
        let Some(changes) = snapshots.finish()? else {
            return Ok(());
        };
        if changes.is_empty() {
            return Ok(());
        }
        let layer = self.write_layer(snapshots, &changes)?;
        let history = &mut state.image.config_mut().history;
        let layer_entry = state
            .last_file_step
            .unwrap_or(history.len().saturating_sub(1))
            .max(first_entry);
        let entries = history.split_off(first_entry);
        let mut layer = Some(layer);
        for (offset, entry) in entries.into_iter().enumerate() {
            match layer.take_if(|_| first_entry + offset == layer_entry) {
                Some(layer) => state.image.add_layer(layer, entry),
                None => state.image.add_empty_history(entry),
            }
        }
        if let Some(layer) = layer {
            // Only reached when the stage has no history entry of its own.
            state
                .image
                .add_layer(layer, stage_history("single snapshot".to_owned()));
        }
        Ok(())
    }

    fn execute(
        &self,
        instruction: &Instruction,
        state: &mut StageState,
        snapshotter: &mut StageSnapshots,
        root: &Path,
        scratch: &Path,
    ) -> Result<(), BuildError> {
        let line = instruction.start_line;
        let keyword = instruction.kind.keyword();
        tracing::info!(line, "{}", instruction.kind.to_line());
        match &instruction.kind {
            InstructionKind::Run(run) => {
                let context = self.run_context(state, line, root, scratch);
                self.snapshot_step(
                    snapshotter,
                    state,
                    line,
                    keyword,
                    run_history(run),
                    |root| {
                        let mounts = self.prepare_mounts(run, &context.workdir, scratch, line)?;
                        // The overlay snapshotter runs each step in its mount.
                        let context = RunContext {
                            root: root.to_path_buf(),
                            mounts: mounts.mounts.clone(),
                            file_env: mounts.file_env.clone(),
                            ..context
                        };
                        run_instruction(self.sandbox, &context, run).map_err(BuildError::from)
                    },
                )
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
                    self.copy(root, scratch, copy, &runtime)
                        .map_err(|source| self.copy_error(line, source))
                })
            }
            InstructionKind::Add(add) => {
                let created_by = format!("{} # buildkit", instruction.kind.to_line());
                let runtime = state.image.config().config.clone();
                self.snapshot_step(snapshotter, state, line, keyword, created_by, |root| {
                    self.add(root, scratch, add, &runtime)
                        .map_err(|source| self.copy_error(line, source))
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
            mounts: Vec::new(),
            file_env: Vec::new(),
        }
    }

    /// Prepares the `--mount`s of a RUN step. The result keeps secret
    /// copies and cache locks until it is dropped after the step.
    fn prepare_mounts(
        &self,
        run: &RunInstruction,
        workdir: &str,
        scratch: &Path,
        line: usize,
    ) -> Result<PreparedMounts, BuildError> {
        let stage_root = |from: &str| {
            let lower = from.to_ascii_lowercase();
            let by_name = self
                .plan
                .stages
                .iter()
                .position(|stage| stage.name.as_deref() == Some(lower.as_str()));
            let by_index = from
                .parse::<usize>()
                .ok()
                .filter(|index| *index < self.plan.stages.len());
            by_name
                .or(by_index)
                .map(|index| self.work_root.join(format!("stage-{index}/rootfs")))
        };
        let sources = MountSources {
            settings: &self.settings.run_mounts,
            context: self.settings.context.as_deref(),
            context_filtered: self.ignore.is_some(),
            work_root: &self.work_root,
            stage_root: &stage_root,
            scratch,
        };
        crate::run_mounts::prepare(&run.mounts, workdir, &sources).map_err(|source| {
            BuildError::RunMount(AtLine {
                file: self.settings.file.clone(),
                line,
                error: source,
            })
        })
    }

    fn copy_error(&self, line: usize, source: CopyError) -> BuildError {
        BuildError::Copy(AtLine {
            file: self.settings.file.clone(),
            line,
            error: source,
        })
    }

    /// Runs a `COPY` from the build context, a stage or an image.
    fn copy(
        &self,
        root: &Path,
        scratch: &Path,
        copy: &CopyInstruction,
        runtime: &hoist_image::RuntimeConfig,
    ) -> Result<(), CopyError> {
        let source_dir = match &copy.from {
            Some(from) => Some(self.copy_from_directory(from)?),
            None => self.context_directory(),
        };
        let chown = copy
            .chown
            .as_deref()
            .map(|owner| chown_ids(root, owner))
            .transpose()?;
        let heredocs = heredoc_bodies(&copy.heredocs);
        CopyRequest {
            source_dir,
            root,
            scratch,
            workdir: runtime.working_dir.as_deref().unwrap_or("/"),
            sources: &copy.sources,
            heredocs: &heredocs,
            destination: &copy.destination,
            chown,
            chmod: copy.chmod.as_deref(),
            exclude: &copy.exclude,
            parents: copy.parents,
            link: copy.link,
            add: None,
        }
        .run()
    }

    /// Runs an `ADD` from the build context or from URLs.
    fn add(
        &self,
        root: &Path,
        scratch: &Path,
        add: &AddInstruction,
        runtime: &hoist_image::RuntimeConfig,
    ) -> Result<(), CopyError> {
        let chown = add
            .chown
            .as_deref()
            .map(|owner| chown_ids(root, owner))
            .transpose()?;
        let heredocs = heredoc_bodies(&add.heredocs);
        CopyRequest {
            source_dir: self.context_directory(),
            root,
            scratch,
            workdir: runtime.working_dir.as_deref().unwrap_or("/"),
            sources: &add.sources,
            heredocs: &heredocs,
            destination: &add.destination,
            chown,
            chmod: add.chmod.as_deref(),
            exclude: &add.exclude,
            parents: false,
            link: add.link,
            add: Some(AddOptions {
                checksum: add.checksum.as_deref(),
                keep_git_dir: add.keep_git_dir,
            }),
        }
        .run()
    }

    fn context_directory(&self) -> Option<SourceDir<'_>> {
        self.settings.context.as_ref().map(|context| SourceDir {
            path: context.clone(),
            origin: "the build context".to_owned(),
            ignore: self.ignore.as_ref(),
            keep_owner: false,
        })
    }

    /// Returns the root that `COPY --from` names: a stage by name or index,
    /// else an image reference, extracted on first use.
    fn copy_from_directory(&self, from: &str) -> Result<SourceDir<'static>, CopyError> {
        if let Some(index) = self.stage_index(from) {
            return Ok(SourceDir {
                path: self.work_root.join(format!("stage-{index}/rootfs")),
                origin: format!("stage {from:?}"),
                ignore: None,
                keep_owner: true,
            });
        }
        Ok(SourceDir {
            path: self.image_root(from)?,
            origin: format!("image {from:?}"),
            ignore: None,
            keep_owner: true,
        })
    }

    /// Finds the stage that `COPY --from` names, by name or by index.
    fn stage_index(&self, from: &str) -> Option<usize> {
        let by_name = self
            .plan
            .stages
            .iter()
            .position(|stage| stage.name.as_deref() == Some(&from.to_ascii_lowercase()));
        let by_index = from
            .parse::<usize>()
            .ok()
            .filter(|index| *index < self.plan.stages.len());
        by_name.or(by_index)
    }

    /// Resolves `reference` through the base image source and extracts it
    /// under the work directory, once per build.
    fn image_root(&self, reference: &str) -> Result<PathBuf, CopyError> {
        if let Some(root) = self.copy_images.roots.borrow().get(reference) {
            return Ok(root.clone());
        }
        let count = self.copy_images.roots.borrow().len();
        let root = self.work_root.join(format!("copy-image-{count}"));
        let image_error = |source: Box<dyn std::error::Error + Send + Sync>| CopyError::FromImage {
            reference: reference.to_owned(),
            source,
        };
        let image = self
            .source
            .resolve(reference, &self.settings.platform)
            .map_err(image_error)?;
        std::fs::create_dir(&root).map_err(|error| image_error(error.into()))?;
        extract_layers(&image, &root).map_err(|error| image_error(error.into()))?;
        self.copy_images
            .roots
            .borrow_mut()
            .insert(reference.to_owned(), root.clone());
        Ok(root)
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
        let identity = resolve_user(root, user).map_err(|source| {
            BuildError::User(AtLine {
                file: self.settings.file.clone(),
                line,
                error: source,
            })
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
    /// history entry when it changed nothing. With a single snapshot per
    /// stage, adds an empty entry that the stage's layer may replace.
    fn snapshot_step(
        &self,
        snapshotter: &mut StageSnapshots,
        state: &mut StageState,
        line: usize,
        instruction: &'static str,
        created_by: String,
        step: impl FnOnce(&Path) -> Result<(), BuildError>,
    ) -> Result<(), BuildError> {
        let layer_error = |source: LayerError| BuildError::Layer {
            file: self.settings.file.clone(),
            line,
            instruction,
            source,
        };
        let root = snapshotter
            .begin()
            .map_err(|error| layer_error(error.into()))?;
        step(&root)?;
        let ended = snapshotter
            .end()
            .map_err(|error| layer_error(error.into()))?;
        let Some(changes) = ended else {
            state.last_file_step = Some(state.image.config().history.len());
            add_empty_history(state, created_by);
            return Ok(());
        };
        if changes.is_empty() {
            add_empty_history(state, created_by);
            return Ok(());
        }
        let layer = self
            .write_layer(snapshotter, &changes)
            .map_err(layer_error)?;
        state.image.add_layer(layer, stage_history(created_by));
        Ok(())
    }

    fn write_layer(
        &self,
        snapshotter: &mut StageSnapshots,
        changes: &hoist_snapshot::ChangeSet,
    ) -> Result<Layer, LayerError> {
        let options = LayerOptions {
            compression: self.settings.compression,
            mtime_epoch: self.settings.layer_mtime_epoch,
        };
        let temporary = tempfile::NamedTempFile::new_in(&self.blobs)?;
        let mut file = temporary.reopen()?;
        let digests =
            hoist_snapshot::write_layer(snapshotter.layer_source(), changes, &options, &mut file)?;
        let name = digests.digest.as_str().replace(':', "-");
        let path = self.blobs.join(name);
        temporary.persist(&path).map_err(|error| error.error)?;
        let digest = Digest::from_str(digests.digest.as_str())?;
        let diff_id = Digest::from_str(digests.diff_id.as_str())?;
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
    state.image.add_empty_history(stage_history(created_by));
}

/// Returns a history entry as BuildKit writes it for an instruction.
fn stage_history(created_by: String) -> History {
    History {
        created_by: Some(created_by),
        comment: Some("buildkit.dockerfile.v0".to_owned()),
        ..History::default()
    }
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
