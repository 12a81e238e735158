//! The base images that a Dockerfile's `FROM` lines name, for `--dockerfile`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use hoist_dockerfile::instructions::{Instruction, InstructionKind};
use hoist_dockerfile::stages::{Base, BuildOptions, BuildPlan, Platform as PlanPlatform};
use hoist_image::Platform;
use hoist_registry::ImageReference;

/// Returns the images that the `FROM` lines of every stage in `dockerfile` name, in file
/// order and each once, after expansion with the global ARGs and `build_args`.
///
/// `scratch` and `FROM` lines that name an earlier stage are left out. Every stage counts,
/// not only the ones the last stage needs, as in Kaniko's warmer. Errors name the file and
/// the line.
pub(crate) fn base_images(
    dockerfile: &Path,
    build_args: &BTreeMap<String, String>,
    platform: &Platform,
) -> anyhow::Result<Vec<ImageReference>> {
    let name = dockerfile.display().to_string();
    let text = hoist_dockerfile::read::read_dockerfile(dockerfile)?;
    let parsed = hoist_dockerfile::parser::parse(&text, &name)?;
    let instructions = hoist_dockerfile::instructions::instructions(&parsed)?;
    let options = build_options(build_args, platform);
    let plan = hoist_dockerfile::stages::resolve(&name, parsed.escape, &instructions, &options)?;
    for warning in &plan.warnings {
        tracing::warn!(dockerfile = %name, "{warning}");
    }

    let mut references: Vec<ImageReference> = Vec::new();
    for (reference, line) in image_bases(&plan, &instructions) {
        // The resolver has checked the name against Docker's grammar, so this parse fails
        // only where the registry client's parser is stricter.
        let parsed: ImageReference = reference
            .parse()
            .with_context(|| format!("{name}:{line}"))?;
        if !references.contains(&parsed) {
            references.push(parsed);
        }
    }
    Ok(references)
}

/// Parses `KEY=VALUE` build args. A bare `KEY` takes the environment's value and is left
/// out when the environment has none, as `hoist --build-arg` does.
pub(crate) fn parse_build_args(texts: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut args = BTreeMap::new();
    for text in texts {
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key, Some(value.to_owned())),
            None => (text.as_str(), std::env::var(text).ok()),
        };
        if key.is_empty() {
            bail!("invalid --build-arg {text:?}: expected KEY=VALUE or KEY");
        }
        if let Some(value) = value {
            args.insert(key.to_owned(), value);
        }
    }
    Ok(args)
}

/// Builds the resolution options. The target and build platform are both `platform`,
/// because the warmer runs no instruction.
fn build_options(build_args: &BTreeMap<String, String>, platform: &Platform) -> BuildOptions {
    let platform = PlanPlatform {
        os: platform.os.clone(),
        architecture: platform.architecture.clone(),
        variant: platform.variant.clone().unwrap_or_default(),
    };
    BuildOptions {
        build_args: build_args.clone(),
        target: None,
        target_platform: platform.clone(),
        build_platform: platform,
    }
}

/// Returns each stage's image base, as expanded, with the line of its `FROM`.
fn image_bases<'a>(
    plan: &'a BuildPlan,
    instructions: &[Instruction],
) -> impl Iterator<Item = (&'a str, usize)> {
    // Stage n starts at the n-th FROM, so the FROM lines in order give each stage's line.
    let from_lines: Vec<usize> = instructions
        .iter()
        .filter(|instruction| matches!(instruction.kind, InstructionKind::From(_)))
        .map(|instruction| instruction.start_line)
        .collect();
    plan.stages
        .iter()
        .filter_map(move |stage| match &stage.base {
            Base::Image(reference) => {
                let line = from_lines.get(stage.index).copied().unwrap_or_default();
                Some((reference.as_str(), line))
            }
            Base::Stage(_) | Base::Scratch => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_dockerfile(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("Dockerfile");
        std::fs::write(&path, text).expect("write the Dockerfile");
        (dir, path)
    }

    fn linux_amd64() -> Platform {
        Platform::parse("linux/amd64").expect("valid platform")
    }

    fn names(references: &[ImageReference]) -> Vec<String> {
        references.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn from_lines_expanded_with_args() {
        let (_dir, path) = write_dockerfile(
            "ARG REGISTRY=r.example\nARG TAG\n\
             FROM ${REGISTRY}/base:${TAG} AS build\n\
             FROM build AS again\n\
             FROM scratch\n\
             FROM r.example/other:1\n\
             FROM ${REGISTRY}/base:${TAG}\n",
        );
        let args = BTreeMap::from([("TAG".to_owned(), "7".to_owned())]);

        let references = base_images(&path, &args, &linux_amd64()).expect("base images");

        assert_eq!(
            names(&references),
            ["r.example/base:7", "r.example/other:1"]
        );
    }

    #[test]
    fn only_scratch_and_stages_warm_nothing() {
        let (_dir, path) = write_dockerfile("FROM scratch AS a\nFROM a\n");

        let references = base_images(&path, &BTreeMap::new(), &linux_amd64()).expect("base");

        assert!(references.is_empty(), "{references:?}");
    }

    #[test]
    fn invalid_reference_names_file_and_line() {
        let (_dir, path) = write_dockerfile("ARG NAME\n\nFROM scratch\nFROM r.example/${NAME}\n");
        let args = BTreeMap::from([("NAME".to_owned(), "Upper".to_owned())]);

        let error = base_images(&path, &args, &linux_amd64()).expect_err("invalid reference");

        let message = format!("{error:#}");
        assert!(
            message.contains(&format!("{}:4:", path.display())),
            "{message}"
        );
        assert!(message.contains("r.example/Upper"), "{message}");
    }

    #[test]
    fn unknown_instruction_names_file_and_line() {
        let (_dir, path) = write_dockerfile("FROM r.example/base\nFETCH x\n");

        let error = base_images(&path, &BTreeMap::new(), &linux_amd64()).expect_err("invalid");

        let message = format!("{error:#}");
        assert!(
            message.contains(&format!("{}:2:", path.display())),
            "{message}"
        );
    }

    #[test]
    fn missing_dockerfile_named() {
        let path = Path::new("/nonexistent/hoist-warmer/Dockerfile");

        let error = base_images(path, &BTreeMap::new(), &linux_amd64()).expect_err("missing");

        assert!(format!("{error:#}").contains(&path.display().to_string()));
    }

    #[test]
    fn bare_build_arg_without_value_left_out() {
        let args = parse_build_args(&[
            "A=b=c".to_owned(),
            "HOIST_WARMER_SURELY_UNSET_VARIABLE".to_owned(),
        ])
        .expect("valid build args");

        assert_eq!(args, BTreeMap::from([("A".to_owned(), "b=c".to_owned())]));
        assert!(parse_build_args(&["=x".to_owned()]).is_err());
    }
}
