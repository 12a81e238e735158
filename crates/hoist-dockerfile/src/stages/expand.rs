//! The resolver: walks the instructions once, keeping ARG and ENV scopes,
//! expanding values and recording stage dependencies.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::reference::check_image_reference;
use super::values::{check_checksum, check_chmod, check_port, check_signal, check_size};
use super::{
    Base, BaseImages, BuildOptions, BuildPlan, DEFAULT_PATH, MAX_SCOPE_BYTES,
    MAX_TOTAL_EXPANDED_BYTES, PROXY_ARGS, Stage, StageError, StageErrorKind, Variables, is_from,
    platform_args,
};
use crate::instructions::{
    ArgInstruction, FromInstruction, Instruction, InstructionKind, Pair, Pairs, Text, Words,
};
use crate::parser::Heredoc;
use crate::shell::{Env, Lexer};

type Step<T> = Result<T, StageErrorKind>;

pub(super) struct Resolver<'a> {
    file: &'a str,
    lexer: Lexer,
    options: &'a BuildOptions,
    /// ENV and `ONBUILD` triggers of the image bases.
    bases: &'a BaseImages,
    /// Global ARGs in declaration order.
    global_args: Variables,
    /// Values usable in `FROM` and as fallbacks of stage ARGs: the platform
    /// args and the global ARGs that have a value.
    global_scope: BTreeMap<String, String>,
    /// Every ARG name declared anywhere, to find unused build args.
    declared: BTreeSet<String>,
    stages: Vec<Stage>,
    /// Stage indexes by ASCII-lowercased name, so that a lookup does not scan
    /// every earlier stage.
    stage_names: HashMap<String, usize>,
    /// Indexes of every named stage in the file, later ones included, so
    /// that a `--from` naming a later stage is an error and not an image.
    all_stage_names: HashMap<String, usize>,
    /// Number of stages in the file.
    stage_count: usize,
    /// Bytes produced so far over the whole build, checked against
    /// [`MAX_TOTAL_EXPANDED_BYTES`]. A `Cell`, because expansion borrows the
    /// resolver shared.
    produced_bytes: Cell<usize>,
}

/// The ARG and ENV scope of the stage being resolved.
#[derive(Default)]
struct Scope {
    args: Variables,
    env: Variables,
}

impl Scope {
    /// Fails when the variables in scope exceed [`MAX_SCOPE_BYTES`].
    fn check_size(&self) -> Step<()> {
        if self.args.total_bytes() + self.env.total_bytes() > MAX_SCOPE_BYTES {
            return Err(StageErrorKind::ScopeTooLarge);
        }
        Ok(())
    }
}

/// Looks a name up for expansion: ENV wins over an ARG of the same name, and
/// an ARG declared without a value is unset.
impl Env for Scope {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .or_else(|| self.args.get(name))
            .and_then(|variable| variable.value.as_deref())
    }
}

impl<'a> Resolver<'a> {
    pub(super) fn new(
        file: &'a str,
        lexer: Lexer,
        options: &'a BuildOptions,
        bases: &'a BaseImages,
    ) -> Self {
        Self {
            file,
            lexer,
            options,
            bases,
            global_args: Variables::default(),
            global_scope: platform_args(options).into_iter().collect(),
            declared: BTreeSet::new(),
            stages: Vec::new(),
            stage_names: HashMap::new(),
            all_stage_names: HashMap::new(),
            stage_count: 0,
            produced_bytes: Cell::new(0),
        }
    }

    fn error(&self, line: usize, kind: StageErrorKind) -> StageError {
        StageError {
            file: self.file.to_owned(),
            line,
            kind: Box::new(kind),
        }
    }

    pub(super) fn run(&mut self, instructions: &[Instruction]) -> Result<BuildPlan, StageError> {
        let Some(first_from) = instructions.iter().position(is_from) else {
            return Err(self.error(0, StageErrorKind::NoStages));
        };
        for instruction in &instructions[..first_from] {
            let InstructionKind::Arg(arg) = &instruction.kind else {
                let instruction_name = instruction.kind.keyword().to_owned();
                return Err(self.error(
                    instruction.start_line,
                    StageErrorKind::BeforeFirstFrom {
                        instruction: instruction_name,
                    },
                ));
            };
            self.declare_global(arg)
                .map_err(|kind| self.error(instruction.start_line, kind))?;
        }

        self.all_stage_names = stage_names(&instructions[first_from..]);
        self.stage_count = instructions.iter().filter(|inst| is_from(inst)).count();
        let mut rest = &instructions[first_from..];
        while let Some((from, after)) = rest.split_first() {
            let end = after.iter().position(is_from).unwrap_or(after.len());
            self.resolve_stage(from, &after[..end])?;
            rest = &after[end..];
        }

        let target = self.find_target()?;
        let needed = self.needed(target);
        let warnings = self.unused_build_args();
        Ok(BuildPlan {
            global_args: std::mem::take(&mut self.global_args)
                .iter()
                .cloned()
                .collect(),
            stages: std::mem::take(&mut self.stages),
            target,
            needed,
            warnings,
        })
    }

    fn expand_word(&self, word: &str, scope: &dyn Env) -> Step<String> {
        let value = self.lexer.process_word(word, scope)?;
        self.count_produced(value.len())?;
        Ok(value)
    }

    /// Returns a copy of `value`, counted in the bytes produced over the build.
    fn copy_value(&self, value: &str) -> Step<String> {
        self.count_produced(value.len())?;
        Ok(value.to_owned())
    }

    /// Adds `bytes` to the bytes produced over the build and fails once the
    /// total passes [`MAX_TOTAL_EXPANDED_BYTES`].
    fn count_produced(&self, bytes: usize) -> Step<()> {
        let total = self.produced_bytes.get().saturating_add(bytes);
        self.produced_bytes.set(total);
        if total > MAX_TOTAL_EXPANDED_BYTES {
            return Err(StageErrorKind::ExpansionTooLarge);
        }
        Ok(())
    }

    fn declare_global(&mut self, arg: &ArgInstruction) -> Step<()> {
        for declaration in &arg.args {
            self.declared.insert(declaration.name.clone());
            let value = match self.options.build_args.get(&declaration.name) {
                Some(value) => Some(value.clone()),
                None => match &declaration.default {
                    Some(default) => Some(self.expand_word(default, &self.global_scope)?),
                    None => None,
                },
            };
            if let Some(value) = &value {
                self.global_scope
                    .insert(declaration.name.clone(), value.clone());
            }
            self.global_args.set(declaration.name.clone(), value);
            if self.global_args.total_bytes() > MAX_SCOPE_BYTES {
                return Err(StageErrorKind::ScopeTooLarge);
            }
        }
        Ok(())
    }

    fn resolve_stage(
        &mut self,
        from: &Instruction,
        body: &[Instruction],
    ) -> Result<(), StageError> {
        let index = self.stages.len();
        let InstructionKind::From(from_instruction) = &from.kind else {
            return Ok(());
        };
        let mut stage = self
            .start_stage(index, from_instruction)
            .map_err(|kind| self.error(from.start_line, kind))?;
        let mut scope = self
            .base_scope(&stage.base)
            .map_err(|kind| self.error(from.start_line, kind))?;
        if scope.env.get("PATH").is_none() && self.stage_os(&stage) != "windows" {
            scope
                .env
                .set("PATH".to_owned(), Some(DEFAULT_PATH.to_owned()));
        }
        let triggers = self.base_triggers(&stage.base, from);
        let trigger_bytes = triggers
            .iter()
            .map(|trigger| json_bytes(&trigger.kind))
            .sum();
        self.count_produced(trigger_bytes)
            .map_err(|kind| self.error(from.start_line, kind))?;
        for instruction in triggers.iter().chain(body) {
            let kind = self
                .expand_instruction(&instruction.kind, &mut scope, &mut stage)
                .map_err(|kind| self.error(instruction.start_line, kind))?;
            stage.instructions.push(Instruction {
                start_line: instruction.start_line,
                end_line: instruction.end_line,
                kind,
            });
        }
        stage.args = scope.args;
        stage.env = scope.env;
        if let Some(name) = &stage.name {
            self.stage_names
                .insert(name.to_ascii_lowercase(), stage.index);
        }
        self.stages.push(stage);
        Ok(())
    }

    /// Returns the operating system of a stage: that of its `--platform`, else
    /// the target platform's.
    fn stage_os<'s>(&'s self, stage: &'s Stage) -> &'s str {
        stage
            .platform
            .as_deref()
            .and_then(|platform| platform.split('/').next())
            .unwrap_or(&self.options.target_platform.os)
    }

    /// Returns the scope a stage starts with: that of its base stage, or the
    /// ENV of its base image. A copy of an image's ENV counts in the bytes
    /// produced over the build.
    fn base_scope(&self, base: &Base) -> Step<Scope> {
        Ok(match base {
            // Sharing the base stage's variables costs O(1): see `Variables`.
            Base::Stage(base) => Scope {
                args: self.stages[*base].args.clone(),
                env: self.stages[*base].env.clone(),
            },
            Base::Image(reference) => {
                let mut env = Variables::default();
                for (name, value) in self.bases.get(reference).into_iter().flat_map(|b| &b.env) {
                    self.count_produced(name.len())?;
                    env.set(name.clone(), Some(self.copy_value(value)?));
                }
                Scope {
                    args: Variables::default(),
                    env,
                }
            }
            Base::Scratch => Scope::default(),
        })
    }

    /// Returns the `ONBUILD` triggers of a stage's base, numbered with the `FROM`
    /// line so that an error in a trigger points there. A base stage's
    /// triggers are its own `ONBUILD` instructions, because the triggers it
    /// inherited ran in it and were cleared.
    fn base_triggers(&self, base: &Base, from: &Instruction) -> Vec<Instruction> {
        let triggers: Vec<InstructionKind> = match base {
            Base::Stage(base) => self.stages[*base]
                .instructions
                .iter()
                .filter_map(|instruction| match &instruction.kind {
                    InstructionKind::Onbuild(onbuild) => Some(*onbuild.trigger.clone()),
                    _ => None,
                })
                .collect(),
            Base::Image(reference) => self
                .bases
                .get(reference)
                .map(|base| base.triggers.clone())
                .unwrap_or_default(),
            Base::Scratch => Vec::new(),
        };
        triggers
            .into_iter()
            .map(|kind| Instruction {
                start_line: from.start_line,
                end_line: from.end_line,
                kind,
            })
            .collect()
    }

    fn start_stage(&self, index: usize, from: &FromInstruction) -> Step<Stage> {
        let image = self.expand_word(&from.image, &self.global_scope)?;
        if image.is_empty() {
            return Err(StageErrorKind::EmptyBaseName {
                written: from.image.as_str().into(),
            });
        }
        if let Some(name) = &from.name
            && self.stage_by_name(name).is_some()
        {
            return Err(StageErrorKind::DuplicateStageName { name: name.clone() });
        }
        let base = if image.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else if let Some(base) = self.stage_by_name(&image) {
            Base::Stage(base)
        } else {
            check_image_reference(&image).map_err(|reason| StageErrorKind::InvalidValue {
                place: "image name in FROM".to_owned(),
                value: image.as_str().into(),
                reason: reason.into(),
            })?;
            Base::Image(image)
        };
        let platform = match &from.platform {
            Some(platform) => Some(self.expand_word(platform, &self.global_scope)?),
            None => None,
        };
        if let Some(platform) = &platform {
            check_platform(platform).map_err(|reason| StageErrorKind::InvalidValue {
                place: "flag --platform of FROM".to_owned(),
                value: platform.as_str().into(),
                reason: reason.into(),
            })?;
        }
        let mut dependencies = BTreeSet::new();
        if let Base::Stage(base) = base {
            dependencies.insert(base);
        }
        Ok(Stage {
            index,
            name: from.name.clone(),
            base,
            platform,
            instructions: Vec::new(),
            dependencies,
            image_references: BTreeSet::new(),
            args: Variables::default(),
            env: Variables::default(),
        })
    }

    /// Finds an earlier stage by name, ignoring ASCII case.
    fn stage_by_name(&self, name: &str) -> Option<usize> {
        self.stage_names.get(&name.to_ascii_lowercase()).copied()
    }

    /// Records what a `--from` reference points at: an earlier stage, by
    /// name or index, or else an image. The stage itself and later stages
    /// are errors. `place` names the flag in an error.
    fn add_reference(&self, reference: &str, place: &str, stage: &mut Stage) -> Step<()> {
        let named = match reference.parse::<usize>() {
            Ok(index) => Some(index),
            Err(_) => self
                .all_stage_names
                .get(&reference.to_ascii_lowercase())
                .copied(),
        };
        match named {
            Some(index) if index >= self.stage_count => Err(StageErrorKind::UnknownStageIndex {
                index,
                count: self.stage_count,
            }),
            Some(index) if index == stage.index => Err(StageErrorKind::SelfReference {
                reference: reference.into(),
            }),
            Some(index) if index > stage.index => Err(StageErrorKind::ForwardReference {
                reference: reference.into(),
                stage: index,
            }),
            Some(index) => {
                stage.dependencies.insert(index);
                Ok(())
            }
            None => {
                check_image_reference(reference).map_err(|reason| {
                    StageErrorKind::InvalidValue {
                        place: place.to_owned(),
                        value: reference.into(),
                        reason: reason.into(),
                    }
                })?;
                stage.image_references.insert(reference.to_owned());
                Ok(())
            }
        }
    }

    fn expand_option(&self, value: Option<&String>, scope: &dyn Env) -> Step<Option<String>> {
        value
            .map(|value| self.expand_word(value, scope))
            .transpose()
    }

    fn expand_all(&self, values: &[String], scope: &dyn Env) -> Step<Vec<String>> {
        values
            .iter()
            .map(|value| self.expand_word(value, scope))
            .collect()
    }

    fn expand_pairs(&self, pairs: &Pairs, scope: &dyn Env) -> Step<Vec<Pair>> {
        pairs
            .pairs
            .iter()
            .map(|pair| {
                Ok(Pair {
                    key: self.expand_word(&pair.key, scope)?,
                    value: self.expand_word(&pair.value, scope)?,
                })
            })
            .collect()
    }

    /// Declares the ARGs of one instruction in the stage's scope and returns
    /// the instruction with its defaults expanded, as BuildKit runs it.
    fn declare_stage_arg(
        &mut self,
        arg: &ArgInstruction,
        scope: &mut Scope,
    ) -> Step<ArgInstruction> {
        let mut expanded = arg.clone();
        for declaration in &mut expanded.args {
            self.declared.insert(declaration.name.clone());
            if let Some(default) = &declaration.default {
                declaration.default = Some(self.expand_word(default, scope)?);
            }
            // A default was counted when it was expanded; a build arg or a
            // global value is a new copy, so it counts here.
            let value = match self.options.build_args.get(&declaration.name) {
                Some(value) => Some(self.copy_value(value)?),
                None => match &declaration.default {
                    Some(default) => Some(default.clone()),
                    None => match self.global_scope.get(&declaration.name) {
                        Some(value) => Some(self.copy_value(value)?),
                        None => None,
                    },
                },
            };
            scope.args.set(declaration.name.clone(), value);
            scope.check_size()?;
        }
        Ok(expanded)
    }

    /// Expands the values of one instruction in the current scope and
    /// updates the scope and the stage's dependencies.
    fn expand_instruction(
        &mut self,
        kind: &InstructionKind,
        scope: &mut Scope,
        stage: &mut Stage,
    ) -> Step<InstructionKind> {
        let text = |resolver: &Self, scope: &Scope, text: &Text| -> Step<Text> {
            Ok(Text {
                value: resolver.expand_word(&text.value, scope)?,
            })
        };
        Ok(match kind {
            InstructionKind::Arg(arg) => InstructionKind::Arg(self.declare_stage_arg(arg, scope)?),
            InstructionKind::Env(pairs) => {
                let pairs = self.expand_pairs(pairs, &*scope)?;
                for pair in &pairs {
                    scope.env.set(pair.key.clone(), Some(pair.value.clone()));
                    scope.check_size()?;
                }
                InstructionKind::Env(Pairs { pairs })
            }
            InstructionKind::Label(pairs) => InstructionKind::Label(Pairs {
                pairs: self.expand_pairs(pairs, &*scope)?,
            }),
            InstructionKind::Copy(copy) => {
                let mut copy = copy.clone();
                copy.from = self.expand_option(copy.from.as_ref(), &*scope)?;
                if let Some(from) = &copy.from {
                    self.add_reference(from, "flag --from of COPY", stage)?;
                }
                copy.chown = self.expand_option(copy.chown.as_ref(), &*scope)?;
                copy.chmod = self.expand_option(copy.chmod.as_ref(), &*scope)?;
                check_value(copy.chmod.as_deref(), "flag --chmod of COPY", check_chmod)?;
                copy.sources = self.expand_all(&copy.sources, &*scope)?;
                copy.destination = self.expand_word(&copy.destination, &*scope)?;
                copy.exclude = self.expand_all(&copy.exclude, &*scope)?;
                copy.heredocs = expand_heredocs(self, &copy.heredocs, &*scope)?;
                InstructionKind::Copy(copy)
            }
            InstructionKind::Add(add) => {
                let mut add = add.clone();
                add.chown = self.expand_option(add.chown.as_ref(), &*scope)?;
                add.chmod = self.expand_option(add.chmod.as_ref(), &*scope)?;
                check_value(add.chmod.as_deref(), "flag --chmod of ADD", check_chmod)?;
                add.checksum = self.expand_option(add.checksum.as_ref(), &*scope)?;
                add.sources = self.expand_all(&add.sources, &*scope)?;
                let sources = &add.sources;
                check_value(
                    add.checksum.as_deref(),
                    "flag --checksum of ADD",
                    |checksum| check_checksum(checksum, sources),
                )?;
                add.destination = self.expand_word(&add.destination, &*scope)?;
                add.exclude = self.expand_all(&add.exclude, &*scope)?;
                add.heredocs = expand_heredocs(self, &add.heredocs, &*scope)?;
                InstructionKind::Add(add)
            }
            InstructionKind::Run(run) => {
                let mut run = run.clone();
                for mount in &mut run.mounts {
                    mount.from = self.expand_option(mount.from.as_ref(), &*scope)?;
                    if let Some(from) = &mount.from {
                        let place = "key from in flag --mount of RUN";
                        self.add_reference(from, place, stage)?;
                    }
                    mount.source = self.expand_option(mount.source.as_ref(), &*scope)?;
                    mount.target = self.expand_option(mount.target.as_ref(), &*scope)?;
                    mount.id = self.expand_option(mount.id.as_ref(), &*scope)?;
                    mount.size = self.expand_option(mount.size.as_ref(), &*scope)?;
                    let place = "key size in flag --mount of RUN";
                    check_value(mount.size.as_deref(), place, check_size)?;
                }
                InstructionKind::Run(run)
            }
            InstructionKind::Expose(words) => {
                let mut ports = Vec::new();
                for word in &words.values {
                    let expanded = self.lexer.process_words(word, &*scope)?;
                    self.count_produced(expanded.iter().map(String::len).sum())?;
                    ports.extend(expanded);
                }
                for port in &ports {
                    check_value(Some(port), "EXPOSE", check_port)?;
                }
                InstructionKind::Expose(Words { values: ports })
            }
            InstructionKind::Volume(words) => InstructionKind::Volume(Words {
                values: self.expand_all(&words.values, &*scope)?,
            }),
            InstructionKind::User(value) => InstructionKind::User(text(self, scope, value)?),
            InstructionKind::Workdir(value) => InstructionKind::Workdir(text(self, scope, value)?),
            InstructionKind::Stopsignal(value) => {
                let signal = text(self, scope, value)?;
                check_value(Some(&signal.value), "STOPSIGNAL", check_signal)?;
                InstructionKind::Stopsignal(signal)
            }
            // The shell expands commands at run time; the rest has no values.
            _ => kind.clone(),
        })
    }

    fn find_target(&self) -> Result<usize, StageError> {
        let Some(name) = &self.options.target else {
            return Ok(self.stages.len().saturating_sub(1));
        };
        self.stage_by_name(name)
            .ok_or_else(|| self.error(0, StageErrorKind::TargetNotFound { name: name.into() }))
    }

    /// Returns the target and every stage it depends on, directly or not.
    fn needed(&self, target: usize) -> Vec<usize> {
        let mut needed = BTreeSet::new();
        let mut pending = vec![target];
        while let Some(index) = pending.pop() {
            if needed.insert(index) {
                pending.extend(self.stages[index].dependencies.iter().copied());
            }
        }
        needed.into_iter().collect()
    }

    fn unused_build_args(&self) -> Vec<String> {
        self.options
            .build_args
            .keys()
            .filter(|name| !self.declared.contains(*name) && !PROXY_ARGS.contains(&name.as_str()))
            .map(|name| format!("build arg {name:?} was not consumed: no ARG declares it"))
            .collect()
    }
}

/// Returns the index of every named stage by lowercased name; the first of
/// two stages with one name wins, and the second is reported later.
fn stage_names(instructions: &[Instruction]) -> HashMap<String, usize> {
    let mut names = HashMap::new();
    let froms = instructions
        .iter()
        .filter_map(|instruction| match &instruction.kind {
            InstructionKind::From(from) => Some(from),
            _ => None,
        });
    for (index, from) in froms.enumerate() {
        if let Some(name) = &from.name {
            names.entry(name.to_ascii_lowercase()).or_insert(index);
        }
    }
    names
}

/// Runs `check` on an expanded value when it was given; `place` names the
/// flag or instruction in the error, such as `flag --chmod of COPY`.
fn check_value(
    value: Option<&str>,
    place: &str,
    check: impl FnOnce(&str) -> Result<(), String>,
) -> Step<()> {
    let Some(value) = value else {
        return Ok(());
    };
    check(value).map_err(|reason| StageErrorKind::InvalidValue {
        place: place.to_owned(),
        value: value.into(),
        reason: reason.into(),
    })
}

/// Expands the bodies of `COPY` and `ADD` heredocs whose delimiter was not
/// quoted. BuildKit uses a lexer with `\` as the escape character whatever
/// the escape directive sets, and keeps quote characters, because the body
/// is file content and not Dockerfile words. Tabs that `<<-` strips are
/// stripped before expansion, so an expanded body has `chomp` cleared, and
/// `expand` is cleared so that nothing expands the body a second time.
// NOTE: an expanded body is limited to `MAX_EXPANDED_LENGTH` bytes like any
// expanded word; a longer body that needs expansion is rejected.
fn expand_heredocs(
    resolver: &Resolver<'_>,
    heredocs: &[Heredoc],
    scope: &Scope,
) -> Step<Vec<Heredoc>> {
    let lexer = Lexer {
        raw_quotes: true,
        ..Lexer::new('\\')
    };
    heredocs
        .iter()
        .map(|heredoc| {
            if !heredoc.expand {
                return Ok(heredoc.clone());
            }
            let content = lexer.process_word(&heredoc.body(), scope)?;
            resolver.count_produced(content.len())?;
            Ok(Heredoc {
                content,
                chomp: false,
                expand: false,
                ..heredoc.clone()
            })
        })
        .collect()
}

/// Returns the length of `kind` serialized as JSON, an estimate of the
/// memory that a copy of it takes.
fn json_bytes(kind: &InstructionKind) -> usize {
    let mut counter = ByteCounter(0);
    // The counter accepts every write. A serialization error would stop
    // early and leave a smaller count.
    match serde_json::to_writer(&mut counter, kind) {
        Ok(()) | Err(_) => counter.0,
    }
}

/// A writer that only counts the bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks that `platform` reads `os/architecture[/variant]`, each part made of
/// ASCII letters, digits, `_`, `-` and `.`.
fn check_platform(platform: &str) -> Result<(), &'static str> {
    let parts: Vec<&str> = platform.split('/').collect();
    let valid_part = |part: &&str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'))
    };
    if (2..=3).contains(&parts.len()) && parts.iter().all(valid_part) {
        Ok(())
    } else {
        Err("expected os/architecture[/variant], such as linux/amd64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_env_wins_over_arg() {
        let mut scope = Scope::default();
        scope.args.set("NAME".to_owned(), Some("arg".to_owned()));
        scope
            .args
            .set("ONLY_ARG".to_owned(), Some("arg".to_owned()));
        scope.args.set("UNSET".to_owned(), None);
        scope.env.set("NAME".to_owned(), Some("env".to_owned()));
        assert_eq!(scope.lookup("NAME"), Some("env"));
        assert_eq!(scope.lookup("ONLY_ARG"), Some("arg"));
        assert_eq!(scope.lookup("UNSET"), None);
        assert_eq!(scope.lookup("MISSING"), None);
    }
}
