//! Planning a build with its base images: the stages are resolved once to
//! learn which images the target needs, those images are pulled, and the
//! stages are resolved again with each image's ENV and `ONBUILD` triggers.
//!
//! BuildKit expands a stage's values with its base image's ENV, so `ENV
//! PATH=/x:$PATH` keeps the image's `PATH`, and it runs the image's
//! `ONBUILD` triggers before the stage's own instructions.

use std::collections::BTreeMap;

use hoist_dockerfile::instructions::{Instruction, InstructionKind, instructions};
use hoist_dockerfile::stages::{
    Base, BaseImage, BaseImages, BuildOptions, BuildPlan, Stage, StageError, resolve_with_bases,
};
use hoist_image::{Image, Platform};

use crate::stage::BaseImageSource;

/// A failure to plan a build.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The stages could not be resolved.
    #[error(transparent)]
    Resolve(#[from] StageError),
    /// A stage requests with `FROM --platform` a platform other than the one
    /// being built. hoist builds every stage for one platform, so it rejects
    /// the build rather than build the stage for the wrong platform.
    #[error(
        "{file}:{line}: stage {stage} requests platform {requested} with FROM --platform, \
         but this build is for {building}; hoist builds all stages for one platform, so build for \
         {requested} with --custom-platform or drop the flag"
    )]
    OtherPlatform {
        /// The Dockerfile name.
        file: String,
        /// 1-based line of the stage's `FROM`.
        line: usize,
        /// The stage's name, or its index when it has none.
        stage: String,
        /// The value of `--platform`.
        requested: String,
        /// The platform of the build.
        building: String,
    },
    /// A base image could not be resolved.
    #[error("failed to resolve base image {reference:?}")]
    Base {
        /// The reference as `FROM` names it, after expansion.
        reference: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An `ONBUILD` trigger in a base image's config is invalid.
    #[error("base image {reference:?} has an invalid ONBUILD trigger {trigger:?}: {message}")]
    Trigger {
        /// The base image reference.
        reference: String,
        /// The trigger as the config stores it.
        trigger: String,
        /// The parser's message.
        message: String,
    },
}

/// A resolved build plan and the base images it was resolved with.
pub struct PlannedBuild<'a> {
    /// The plan, expanded with the base images' ENV.
    pub plan: BuildPlan,
    /// The base images, to pass to [`crate::stage::build`] so that none is
    /// resolved twice.
    pub bases: ResolvedBases<'a>,
}

/// Base images resolved while planning, in front of the source they came
/// from. A reference the planning did not resolve goes to that source.
pub struct ResolvedBases<'a> {
    images: BTreeMap<String, Image>,
    source: &'a dyn BaseImageSource,
}

impl BaseImageSource for ResolvedBases<'_> {
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<Image, Box<dyn std::error::Error + Send + Sync>> {
        match self.images.get(reference) {
            Some(image) => Ok(image.clone()),
            None => self.source.resolve(reference, platform),
        }
    }
}

/// Resolves the stages of `instructions` with the ENV and `ONBUILD`
/// triggers of the base images that the target needs, which `source`
/// resolves for `platform`.
///
/// Resolution repeats until every needed image base is known, because a
/// trigger such as `COPY --from=stage` can make the target need a stage that
/// the previous pass did not.
pub fn plan_build<'a>(
    file: &str,
    escape: char,
    instructions: &[Instruction],
    options: &BuildOptions,
    platform: &Platform,
    source: &'a dyn BaseImageSource,
) -> Result<PlannedBuild<'a>, PlanError> {
    let mut images = BTreeMap::new();
    let mut bases = BaseImages::new();
    loop {
        let plan = resolve_with_bases(file, escape, instructions, options, &bases)?;
        check_stage_platforms(file, instructions, &plan, platform)?;
        let missing = missing_image_bases(&plan, &images);
        if missing.is_empty() {
            let bases = ResolvedBases { images, source };
            return Ok(PlannedBuild { plan, bases });
        }
        for reference in missing {
            tracing::info!(reference = %reference, "resolving base image");
            let image = source
                .resolve(&reference, platform)
                .map_err(|source| PlanError::Base {
                    reference: reference.clone(),
                    source,
                })?;
            bases.insert(reference.clone(), base_image_of(&reference, &image)?);
            images.insert(reference, image);
        }
    }
}

/// Returns the platform that `stage` requests with `FROM --platform` when it is not
/// `platform`.
pub fn other_platform(stage: &Stage, platform: &Platform) -> Option<Platform> {
    // hoist-dockerfile has checked the form of the value already.
    let requested = Platform::parse(stage.platform.as_deref()?).ok()?;
    let same = requested.matches(platform) || platform.matches(&requested);
    (!same).then_some(requested)
}

/// Checks that every needed stage with `FROM --platform` requests `platform`.
fn check_stage_platforms(
    file: &str,
    instructions: &[Instruction],
    plan: &BuildPlan,
    platform: &Platform,
) -> Result<(), PlanError> {
    for &index in &plan.needed {
        let stage = &plan.stages[index];
        if let Some(requested) = other_platform(stage, platform) {
            // Stage N starts at the Nth FROM.
            let line = instructions
                .iter()
                .filter(|instruction| matches!(instruction.kind, InstructionKind::From(_)))
                .nth(index)
                .map_or(0, |instruction| instruction.start_line);
            return Err(PlanError::OtherPlatform {
                file: file.to_owned(),
                line,
                stage: stage.name.clone().unwrap_or_else(|| index.to_string()),
                requested: requested.to_string(),
                building: platform.to_string(),
            });
        }
    }
    Ok(())
}

/// Returns the image references that needed stages are built `FROM` and
/// that are not resolved yet, each once.
fn missing_image_bases(plan: &BuildPlan, images: &BTreeMap<String, Image>) -> Vec<String> {
    let mut missing: Vec<String> = plan
        .needed
        .iter()
        .filter_map(|&index| match &plan.stages[index].base {
            Base::Image(reference) if !images.contains_key(reference) => Some(reference.clone()),
            _ => None,
        })
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// Reads what resolution needs from an image config: its ENV and its parsed
/// `ONBUILD` triggers.
fn base_image_of(reference: &str, image: &Image) -> Result<BaseImage, PlanError> {
    let runtime = &image.config().config;
    let env = runtime
        .env
        .iter()
        .flatten()
        .map(|entry| match entry.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (entry.clone(), String::new()),
        })
        .collect();
    let triggers = runtime
        .on_build
        .iter()
        .flatten()
        .map(|trigger| parse_trigger(reference, trigger))
        .collect::<Result<_, _>>()?;
    Ok(BaseImage { env, triggers })
}

/// Parses one stored trigger, such as `RUN make`, with the rules of an
/// `ONBUILD` line, which reject `FROM`, `MAINTAINER` and `ONBUILD` triggers.
fn parse_trigger(reference: &str, trigger: &str) -> Result<InstructionKind, PlanError> {
    let invalid = |message: String| PlanError::Trigger {
        reference: reference.to_owned(),
        trigger: trigger.to_owned(),
        message,
    };
    let text = format!("ONBUILD {trigger}\n");
    let parsed = hoist_dockerfile::parser::parse(&text, "ONBUILD trigger")
        .map_err(|error| invalid(message_with_causes(&error)))?;
    let mut typed = instructions(&parsed).map_err(|error| invalid(message_with_causes(&error)))?;
    match (typed.pop(), typed.is_empty()) {
        (Some(instruction), true) => match instruction.kind {
            InstructionKind::Onbuild(onbuild) => Ok(*onbuild.trigger),
            _ => Err(invalid("not an instruction".to_owned())),
        },
        _ => Err(invalid("expected exactly one instruction".to_owned())),
    }
}

/// Joins an error's message and those of its causes with `: `, for a
/// message field that carries a parser error without keeping it as a source.
fn message_with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        message.push_str(": ");
        message.push_str(&error.to_string());
        cause = error.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_parses_like_onbuild_line() {
        let kind = parse_trigger("base", "RUN make install").unwrap();
        assert_eq!(kind.to_line(), "RUN make install");
    }

    #[test]
    fn from_trigger_is_rejected() {
        let error = parse_trigger("base", "FROM other").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"base\""), "{message}");
        assert!(message.contains("\"FROM other\""), "{message}");
    }

    #[test]
    fn two_line_trigger_is_rejected() {
        let error = parse_trigger("base", "RUN a\nRUN b").unwrap_err();
        assert!(matches!(error, PlanError::Trigger { .. }), "{error}");
    }

    #[test]
    fn env_entry_without_value_reads_empty() {
        let mut image = Image::scratch(&Platform::linux_amd64());
        image.config_mut().config.env = Some(vec!["A=1=2".to_owned(), "B".to_owned()]);
        let base = base_image_of("base", &image).unwrap();
        assert_eq!(
            base.env,
            [
                ("A".to_owned(), "1=2".to_owned()),
                ("B".to_owned(), String::new())
            ]
        );
    }
}
