//! The resolver: walks the instructions once, keeping ARG and ENV scopes,
//! expanding values and recording stage dependencies.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Base, BuildOptions, BuildPlan, PROXY_ARGS, Stage, StageError, StageErrorKind, Variable,
    is_from, platform_args,
};
use crate::instructions::{
    ArgInstruction, FromInstruction, Instruction, InstructionKind, Pair, Pairs, Text, Words,
};
use crate::shell::Lexer;

type Step<T> = Result<T, StageErrorKind>;

pub(super) struct Resolver<'a> {
    file: &'a str,
    lexer: Lexer,
    options: &'a BuildOptions,
    /// Global ARGs in declaration order.
    global_args: Vec<Variable>,
    /// Values usable in `FROM` and as fallbacks of stage ARGs: the platform
    /// args and the global ARGs that have a value.
    global_scope: BTreeMap<String, String>,
    /// Every ARG name declared anywhere, to find unused build args.
    declared: BTreeSet<String>,
    stages: Vec<Stage>,
}

/// The ARG and ENV scope of the stage being resolved.
struct Scope {
    args: Vec<Variable>,
    env: Vec<Variable>,
}

impl Scope {
    /// Returns the variables for expansion: ARGs with a value, then ENV,
    /// which wins over an ARG of the same name.
    fn values(&self) -> BTreeMap<String, String> {
        let mut values = BTreeMap::new();
        for variable in self.args.iter().chain(&self.env) {
            if let Some(value) = &variable.value {
                values.insert(variable.name.clone(), value.clone());
            }
        }
        values
    }
}

fn set(variables: &mut Vec<Variable>, name: String, value: Option<String>) {
    match variables.iter_mut().find(|variable| variable.name == name) {
        Some(variable) => variable.value = value,
        None => variables.push(Variable { name, value }),
    }
}

impl<'a> Resolver<'a> {
    pub(super) fn new(file: &'a str, lexer: Lexer, options: &'a BuildOptions) -> Self {
        Self {
            file,
            lexer,
            options,
            global_args: Vec::new(),
            global_scope: platform_args(options).into_iter().collect(),
            declared: BTreeSet::new(),
            stages: Vec::new(),
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
            global_args: std::mem::take(&mut self.global_args),
            stages: std::mem::take(&mut self.stages),
            target,
            needed,
            warnings,
        })
    }

    fn expand_word(&self, word: &str, scope: &BTreeMap<String, String>) -> Step<String> {
        Ok(self.lexer.process_word(word, scope)?)
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
            set(&mut self.global_args, declaration.name.clone(), value);
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
        let mut scope = match stage.base {
            Base::Stage(base) => Scope {
                args: self.stages[base].args.clone(),
                env: self.stages[base].env.clone(),
            },
            _ => Scope {
                args: Vec::new(),
                env: Vec::new(),
            },
        };
        for instruction in body {
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
        self.stages.push(stage);
        Ok(())
    }

    fn start_stage(&self, index: usize, from: &FromInstruction) -> Step<Stage> {
        let image = self.expand_word(&from.image, &self.global_scope)?;
        if image.is_empty() {
            return Err(StageErrorKind::EmptyBaseName {
                written: from.image.clone(),
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
            Base::Image(image)
        };
        let platform = match &from.platform {
            Some(platform) => Some(self.expand_word(platform, &self.global_scope)?),
            None => None,
        };
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
            args: Vec::new(),
            env: Vec::new(),
        })
    }

    /// Finds an earlier stage by name, ignoring ASCII case.
    fn stage_by_name(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|stage| {
            stage
                .name
                .as_deref()
                .is_some_and(|own| own.eq_ignore_ascii_case(name))
        })
    }

    /// Records what a `--from` reference points at: an earlier stage, by
    /// name or index, or else an image.
    fn add_reference(&self, reference: &str, stage: &mut Stage) -> Step<()> {
        if let Ok(index) = reference.parse::<usize>() {
            if index >= stage.index {
                return Err(StageErrorKind::ForwardReference {
                    reference: reference.to_owned(),
                });
            }
            stage.dependencies.insert(index);
        } else if let Some(index) = self.stage_by_name(reference) {
            stage.dependencies.insert(index);
        } else {
            stage.image_references.insert(reference.to_owned());
        }
        Ok(())
    }

    fn expand_option(
        &self,
        value: Option<&String>,
        scope: &BTreeMap<String, String>,
    ) -> Step<Option<String>> {
        value
            .map(|value| self.expand_word(value, scope))
            .transpose()
    }

    fn expand_all(&self, values: &[String], scope: &BTreeMap<String, String>) -> Step<Vec<String>> {
        values
            .iter()
            .map(|value| self.expand_word(value, scope))
            .collect()
    }

    fn expand_pairs(&self, pairs: &Pairs, scope: &BTreeMap<String, String>) -> Step<Vec<Pair>> {
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

    fn declare_stage_arg(&mut self, arg: &ArgInstruction, scope: &mut Scope) -> Step<()> {
        for declaration in &arg.args {
            self.declared.insert(declaration.name.clone());
            let value = match self.options.build_args.get(&declaration.name) {
                Some(value) => Some(value.clone()),
                None => match &declaration.default {
                    Some(default) => Some(self.expand_word(default, &scope.values())?),
                    None => self.global_scope.get(&declaration.name).cloned(),
                },
            };
            set(&mut scope.args, declaration.name.clone(), value);
        }
        Ok(())
    }

    /// Expands the values of one instruction in the current scope and
    /// updates the scope and the stage's dependencies.
    fn expand_instruction(
        &mut self,
        kind: &InstructionKind,
        scope: &mut Scope,
        stage: &mut Stage,
    ) -> Step<InstructionKind> {
        let values = scope.values();
        let text = |resolver: &Self, text: &Text| -> Step<Text> {
            Ok(Text {
                value: resolver.expand_word(&text.value, &values)?,
            })
        };
        Ok(match kind {
            InstructionKind::Arg(arg) => {
                self.declare_stage_arg(arg, scope)?;
                kind.clone()
            }
            InstructionKind::Env(pairs) => {
                let pairs = self.expand_pairs(pairs, &values)?;
                for pair in &pairs {
                    set(&mut scope.env, pair.key.clone(), Some(pair.value.clone()));
                }
                InstructionKind::Env(Pairs { pairs })
            }
            InstructionKind::Label(pairs) => InstructionKind::Label(Pairs {
                pairs: self.expand_pairs(pairs, &values)?,
            }),
            InstructionKind::Copy(copy) => {
                let mut copy = copy.clone();
                copy.from = self.expand_option(copy.from.as_ref(), &values)?;
                if let Some(from) = &copy.from {
                    self.add_reference(from, stage)?;
                }
                copy.chown = self.expand_option(copy.chown.as_ref(), &values)?;
                copy.chmod = self.expand_option(copy.chmod.as_ref(), &values)?;
                copy.sources = self.expand_all(&copy.sources, &values)?;
                copy.destination = self.expand_word(&copy.destination, &values)?;
                copy.exclude = self.expand_all(&copy.exclude, &values)?;
                // TODO: expand heredoc bodies whose delimiter was unquoted;
                // BuildKit's exact lexer settings for bodies are not checked yet.
                InstructionKind::Copy(copy)
            }
            InstructionKind::Add(add) => {
                let mut add = add.clone();
                add.chown = self.expand_option(add.chown.as_ref(), &values)?;
                add.chmod = self.expand_option(add.chmod.as_ref(), &values)?;
                add.checksum = self.expand_option(add.checksum.as_ref(), &values)?;
                add.sources = self.expand_all(&add.sources, &values)?;
                add.destination = self.expand_word(&add.destination, &values)?;
                add.exclude = self.expand_all(&add.exclude, &values)?;
                InstructionKind::Add(add)
            }
            InstructionKind::Run(run) => {
                let mut run = run.clone();
                for mount in &mut run.mounts {
                    mount.from = self.expand_option(mount.from.as_ref(), &values)?;
                    if let Some(from) = &mount.from {
                        self.add_reference(from, stage)?;
                    }
                    mount.source = self.expand_option(mount.source.as_ref(), &values)?;
                    mount.target = self.expand_option(mount.target.as_ref(), &values)?;
                    mount.id = self.expand_option(mount.id.as_ref(), &values)?;
                }
                InstructionKind::Run(run)
            }
            InstructionKind::Expose(words) => {
                let mut ports = Vec::new();
                for word in &words.values {
                    ports.extend(self.lexer.process_words(word, &values)?);
                }
                InstructionKind::Expose(Words { values: ports })
            }
            InstructionKind::Volume(words) => InstructionKind::Volume(Words {
                values: self.expand_all(&words.values, &values)?,
            }),
            InstructionKind::User(value) => InstructionKind::User(text(self, value)?),
            InstructionKind::Workdir(value) => InstructionKind::Workdir(text(self, value)?),
            InstructionKind::Stopsignal(value) => InstructionKind::Stopsignal(text(self, value)?),
            // The shell expands commands at run time; the rest has no values.
            _ => kind.clone(),
        })
    }

    fn find_target(&self) -> Result<usize, StageError> {
        let Some(name) = &self.options.target else {
            return Ok(self.stages.len().saturating_sub(1));
        };
        self.stage_by_name(name)
            .ok_or_else(|| self.error(0, StageErrorKind::TargetNotFound { name: name.clone() }))
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
